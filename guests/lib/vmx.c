/* SPDX-License-Identifier: MIT */
/*
 * nvct: the Intel VMX library (see include/vmx.h).
 */
#include "kernel.h"
#include "vmx.h"

_Static_assert(offsetof(struct vmx_vcpu, gpr) == 0, "vmx_vcpu layout");
_Static_assert(offsetof(struct vmx_vcpu, launched) == VMX_VCPU_LAUNCHED, "vmx_vcpu layout");
_Static_assert(offsetof(struct vmx_vcpu, fail_rflags) == VMX_VCPU_FAIL_RFLAGS, "vmx_vcpu layout");
_Static_assert(offsetof(struct vmx_vcpu, host_gdtr) == VMX_VCPU_HOST_GDTR, "vmx_vcpu layout");
_Static_assert(offsetof(struct vmx_vcpu, host_idtr) == VMX_VCPU_HOST_IDTR, "vmx_vcpu layout");
_Static_assert(offsetof(struct vmx_vcpu, exit_rflags) == VMX_VCPU_EXIT_RFLAGS, "vmx_vcpu layout");
_Static_assert(offsetof(struct vmx_vcpu, exit_gdtr) == VMX_VCPU_EXIT_GDTR, "vmx_vcpu layout");
_Static_assert(offsetof(struct vmx_vcpu, exit_idtr) == VMX_VCPU_EXIT_IDTR, "vmx_vcpu layout");
_Static_assert(sizeof(struct vmx_vcpu) <= 4096, "vmx_vcpu fits a page");

/* ---- names ------------------------------------------------------------------ */

const char *vmx_error_name(uint32_t err)
{
    switch (err) {
    case 1: return "VMCALL executed in VMX root operation";
    case 2: return "VMCLEAR with invalid physical address";
    case 3: return "VMCLEAR with VMXON pointer";
    case 4: return "VMLAUNCH with non-clear VMCS";
    case 5: return "VMRESUME with non-launched VMCS";
    case 6: return "VMRESUME after VMXOFF";
    case 7: return "VM entry with invalid control field(s)";
    case 8: return "VM entry with invalid host-state field(s)";
    case 9: return "VMPTRLD with invalid physical address";
    case 10: return "VMPTRLD with VMXON pointer";
    case 11: return "VMPTRLD with incorrect VMCS revision identifier";
    case 12: return "VMREAD/VMWRITE from/to unsupported VMCS component";
    case 13: return "VMWRITE to read-only VMCS component";
    case 15: return "VMXON executed in VMX root operation";
    case 16: return "VM entry with invalid executive-VMCS pointer";
    case 17: return "VM entry with non-launched executive VMCS";
    case 18: return "VM entry with executive-VMCS pointer not VMXON pointer";
    case 19: return "VMCALL with non-clear VMCS";
    case 20: return "VMCALL with invalid VM-exit control fields";
    case 22: return "VMCALL with incorrect MSEG revision identifier";
    case 23: return "VMXOFF under dual-monitor treatment of SMIs and SMM";
    case 24: return "VMCALL with invalid SMM-monitor features";
    case 25: return "VM entry with invalid VM-execution control fields in executive VMCS";
    case 26: return "VM entry with events blocked by MOV SS";
    case 28: return "invalid operand to INVEPT/INVVPID";
    default: return "unknown error number";
    }
}

const char *vmx_exit_reason_name(unsigned basic)
{
    static const char *const names[] = {
        [0] = "exception or NMI",
        [1] = "external interrupt",
        [2] = "triple fault",
        [3] = "INIT",
        [4] = "SIPI",
        [5] = "I/O SMI",
        [6] = "other SMI",
        [7] = "interrupt window",
        [8] = "NMI window",
        [9] = "task switch",
        [10] = "CPUID",
        [11] = "GETSEC",
        [12] = "HLT",
        [13] = "INVD",
        [14] = "INVLPG",
        [15] = "RDPMC",
        [16] = "RDTSC",
        [17] = "RSM",
        [18] = "VMCALL",
        [19] = "VMCLEAR",
        [20] = "VMLAUNCH",
        [21] = "VMPTRLD",
        [22] = "VMPTRST",
        [23] = "VMREAD",
        [24] = "VMRESUME",
        [25] = "VMWRITE",
        [26] = "VMXOFF",
        [27] = "VMXON",
        [28] = "control-register access",
        [29] = "MOV DR",
        [30] = "I/O instruction",
        [31] = "RDMSR",
        [32] = "WRMSR",
        [33] = "invalid guest state",
        [34] = "MSR loading",
        [36] = "MWAIT",
        [37] = "monitor trap flag",
        [39] = "MONITOR",
        [40] = "PAUSE",
        [41] = "machine-check event",
        [43] = "TPR below threshold",
        [44] = "APIC access",
        [45] = "virtualized EOI",
        [46] = "GDTR/IDTR access",
        [47] = "LDTR/TR access",
        [48] = "EPT violation",
        [49] = "EPT misconfiguration",
        [50] = "INVEPT",
        [51] = "RDTSCP",
        [52] = "VMX-preemption timer expired",
        [53] = "INVVPID",
        [54] = "WBINVD/WBNOINVD",
        [55] = "XSETBV",
        [56] = "APIC write",
        [57] = "RDRAND",
        [58] = "INVPCID",
        [59] = "VMFUNC",
        [60] = "ENCLS",
        [61] = "RDSEED",
        [62] = "page-modification log full",
        [63] = "XSAVES",
        [64] = "XRSTORS",
        [65] = "PCONFIG",
        [66] = "SPP-related event",
        [67] = "UMWAIT",
        [68] = "TPAUSE",
        [69] = "LOADIWKEY",
        [70] = "ENCLV",
        [72] = "ENQCMD PASID translation failure",
        [73] = "ENQCMDS PASID translation failure",
        [74] = "bus lock",
        [75] = "instruction timeout",
    };
    if (basic < ARRAY_SIZE(names) && names[basic])
        return names[basic];
    return "unknown";
}

const char *vmx_res_str(struct vmx_res r)
{
    static char buf[4][96];
    static unsigned n;
    char *b = buf[n++ % 4];
    switch (r.outcome) {
    case VMX_SUCCEED: return "VMsucceed";
    case VMX_FAIL_INVALID: return "VMfailInvalid";
    case VMX_FAIL_VALID:
        snprintf(b, sizeof(buf[0]), "VMfailValid(%u: %s)", r.error, vmx_error_name(r.error));
        return b;
    }
    return "?";
}

/* ---- instruction wrappers -------------------------------------------------------- */

static struct vmx_res vmx_decode(bool cf, bool zf)
{
    struct vmx_res r = {VMX_SUCCEED, 0};
    if (cf) {
        r.outcome = VMX_FAIL_INVALID;
    } else if (zf) {
        uint64_t err = 0;
        r.outcome = VMX_FAIL_VALID;
        __asm__ volatile("vmread %1, %0" : "+r"(err) : "r"((uint64_t)VMCS_INSN_ERROR) : "cc");
        r.error = (uint32_t)err;
    }
    return r;
}

struct vmx_res vmxon(uint64_t pa)
{
    bool cf, zf;
    __asm__ volatile("vmxon %2" : "=@ccc"(cf), "=@ccz"(zf) : "m"(pa) : "memory");
    return vmx_decode(cf, zf);
}

struct vmx_res vmxoff(void)
{
    bool cf, zf;
    __asm__ volatile("vmxoff" : "=@ccc"(cf), "=@ccz"(zf) : : "memory");
    return vmx_decode(cf, zf);
}

struct vmx_res vmclear(uint64_t pa)
{
    bool cf, zf;
    __asm__ volatile("vmclear %2" : "=@ccc"(cf), "=@ccz"(zf) : "m"(pa) : "memory");
    return vmx_decode(cf, zf);
}

struct vmx_res vmptrld(uint64_t pa)
{
    bool cf, zf;
    __asm__ volatile("vmptrld %2" : "=@ccc"(cf), "=@ccz"(zf) : "m"(pa) : "memory");
    return vmx_decode(cf, zf);
}

struct vmx_res vmptrst(uint64_t *pa)
{
    bool cf, zf;
    __asm__ volatile("vmptrst %0" : "=m"(*pa), "=@ccc"(cf), "=@ccz"(zf) : : "memory");
    return vmx_decode(cf, zf);
}

struct vmx_res vmread(uint64_t field, uint64_t *val)
{
    bool cf, zf;
    uint64_t v = *val;
    __asm__ volatile("vmread %3, %0" : "+r"(v), "=@ccc"(cf), "=@ccz"(zf) : "r"(field) : "memory");
    *val = v;
    return vmx_decode(cf, zf);
}

struct vmx_res vmwrite(uint64_t field, uint64_t val)
{
    bool cf, zf;
    __asm__ volatile("vmwrite %2, %3" : "=@ccc"(cf), "=@ccz"(zf) : "r"(val), "r"(field) : "memory");
    return vmx_decode(cf, zf);
}

struct vmx_res invept(uint64_t type, uint64_t eptp)
{
    struct {
        uint64_t eptp, rsvd;
    } desc = {eptp, 0};
    bool cf, zf;
    __asm__ volatile("invept %2, %3" : "=@ccc"(cf), "=@ccz"(zf) : "m"(desc), "r"(type) : "memory");
    return vmx_decode(cf, zf);
}

struct vmx_res invvpid(uint64_t type, uint16_t vpid, uint64_t gla)
{
    struct {
        uint64_t vpid, gla;
    } desc = {vpid, gla};
    bool cf, zf;
    __asm__ volatile("invvpid %2, %3" : "=@ccc"(cf), "=@ccz"(zf) : "m"(desc), "r"(type) : "memory");
    return vmx_decode(cf, zf);
}

struct insn_call {
    enum vmx_insn op;
    uint64_t a, b, c, out;
    struct vmx_res res;
};

static void insn_call_fn(void *arg)
{
    struct insn_call *k = arg;
    switch (k->op) {
    case VMX_INSN_VMXON: k->res = vmxon(k->a); break;
    case VMX_INSN_VMXOFF: k->res = vmxoff(); break;
    case VMX_INSN_VMCLEAR: k->res = vmclear(k->a); break;
    case VMX_INSN_VMPTRLD: k->res = vmptrld(k->a); break;
    case VMX_INSN_VMPTRST: k->res = vmptrst(&k->out); break;
    case VMX_INSN_VMREAD: k->res = vmread(k->a, &k->out); break;
    case VMX_INSN_VMWRITE: k->res = vmwrite(k->a, k->b); break;
    case VMX_INSN_INVEPT: k->res = invept(k->a, k->b); break;
    case VMX_INSN_INVVPID: k->res = invvpid(k->a, (uint16_t)k->b, k->c); break;
    }
}

int vmx_insn_safe(enum vmx_insn op, uint64_t a, uint64_t b, uint64_t c, struct vmx_res *res,
                  uint64_t *out, struct fault *f)
{
    struct insn_call k = {op, a, b, c, out ? *out : 0, {VMX_SUCCEED, 0}};
    int vec = catch_fault(insn_call_fn, &k, f);
    if (vec == NO_FAULT) {
        if (res)
            *res = k.res;
        if (out)
            *out = k.out;
    }
    return vec;
}

uint64_t vmcs_read(uint64_t field)
{
    uint64_t v = 0;
    struct vmx_res r = vmread(field, &v);
    if (!vmx_ok(r))
        fail("VMREAD %#llx: %s", (unsigned long long)field, vmx_res_str(r));
    return v;
}

void vmcs_write(uint64_t field, uint64_t val)
{
    struct vmx_res r = vmwrite(field, val);
    if (!vmx_ok(r))
        fail("VMWRITE %#llx=%#llx: %s", (unsigned long long)field, (unsigned long long)val,
             vmx_res_str(r));
}

/* ---- capabilities ------------------------------------------------------------------ */

bool vmx_supported(void) { return (cpuid(1, 0).c & CPUID_1_ECX_VMX) != 0; }

static struct vmx_caps caps;
static bool caps_valid;

static uint64_t cap_msr(uint32_t msr, const char *why)
{
    uint64_t v = 0;
    int vec = rdmsr_safe(msr, &v);
    if (vec != NO_FAULT)
        fail("RDMSR %#x raised vector %d although %s", msr, vec, why);
    return v;
}

static const uint32_t ctl_msr[VMX_CTL_N][2] = {
    [VMX_CTL_PIN] = {MSR_IA32_VMX_PINBASED_CTLS, MSR_IA32_VMX_TRUE_PINBASED_CTLS},
    [VMX_CTL_PROC] = {MSR_IA32_VMX_PROCBASED_CTLS, MSR_IA32_VMX_TRUE_PROCBASED_CTLS},
    [VMX_CTL_PROC2] = {MSR_IA32_VMX_PROCBASED_CTLS2, 0},
    [VMX_CTL_EXIT] = {MSR_IA32_VMX_EXIT_CTLS, MSR_IA32_VMX_TRUE_EXIT_CTLS},
    [VMX_CTL_ENTRY] = {MSR_IA32_VMX_ENTRY_CTLS, MSR_IA32_VMX_TRUE_ENTRY_CTLS},
};

static struct vmx_ctl_cap ctl_from(uint32_t msr, uint64_t v)
{
    return (struct vmx_ctl_cap){(uint32_t)v, (uint32_t)(v >> 32), msr};
}

const struct vmx_caps *vmx_caps(void)
{
    if (caps_valid)
        return &caps;
    if (!vmx_supported())
        skip("CPUID.1:ECX.VMX[bit 5]=0");
    struct vmx_caps c;
    memset(&c, 0, sizeof(c));
    const char *why = "CPUID.1:ECX.VMX=1";
    c.basic = cap_msr(MSR_IA32_VMX_BASIC, why);
    c.has_true = (c.basic & VMX_BASIC_TRUE_CTLS) != 0;
    for (int i = 0; i < VMX_CTL_N; i++) {
        if (i == VMX_CTL_PROC2)
            continue;
        c.legacy[i] = ctl_from(ctl_msr[i][0], cap_msr(ctl_msr[i][0], why));
        c.ctl[i] = c.legacy[i];
        if (c.has_true)
            c.ctl[i] = ctl_from(ctl_msr[i][1], cap_msr(ctl_msr[i][1], "IA32_VMX_BASIC[55]=1"));
    }
    c.misc = cap_msr(MSR_IA32_VMX_MISC, why);
    c.cr0_fixed0 = cap_msr(MSR_IA32_VMX_CR0_FIXED0, why);
    c.cr0_fixed1 = cap_msr(MSR_IA32_VMX_CR0_FIXED1, why);
    c.cr4_fixed0 = cap_msr(MSR_IA32_VMX_CR4_FIXED0, why);
    c.cr4_fixed1 = cap_msr(MSR_IA32_VMX_CR4_FIXED1, why);
    c.vmcs_enum = cap_msr(MSR_IA32_VMX_VMCS_ENUM, why);
    c.has_proc2 = (c.legacy[VMX_CTL_PROC].may1 & PROC_SECONDARY_CTLS) != 0;
    c.ctl[VMX_CTL_PROC2] = ctl_from(MSR_IA32_VMX_PROCBASED_CTLS2, 0);
    if (c.has_proc2) {
        c.legacy[VMX_CTL_PROC2] =
            ctl_from(MSR_IA32_VMX_PROCBASED_CTLS2,
                     cap_msr(MSR_IA32_VMX_PROCBASED_CTLS2, "IA32_VMX_PROCBASED_CTLS[63]=1"));
        c.ctl[VMX_CTL_PROC2] = c.legacy[VMX_CTL_PROC2];
        uint32_t p2 = c.ctl[VMX_CTL_PROC2].may1;
        c.has_ept_vpid = (p2 & (PROC2_EPT | PROC2_VPID)) != 0;
        if (c.has_ept_vpid)
            c.ept_vpid = cap_msr(MSR_IA32_VMX_EPT_VPID_CAP,
                                 "IA32_VMX_PROCBASED_CTLS2 allows enable EPT or enable VPID");
        c.has_vmfunc = (p2 & PROC2_VMFUNC) != 0;
        if (c.has_vmfunc)
            c.vmfunc = cap_msr(MSR_IA32_VMX_VMFUNC, "IA32_VMX_PROCBASED_CTLS2[45]=1");
    }
    c.has_proc3 = (c.legacy[VMX_CTL_PROC].may1 & PROC_TERTIARY_CTLS) != 0;
    if (c.has_proc3)
        c.proc3 = cap_msr(MSR_IA32_VMX_PROCBASED_CTLS3, "IA32_VMX_PROCBASED_CTLS[49]=1");
    caps = c;
    caps_valid = true;
    return &caps;
}

const char *vmx_ctl_name(enum vmx_ctl c)
{
    switch (vmx_caps()->ctl[c].msr) {
    case MSR_IA32_VMX_PINBASED_CTLS: return "IA32_VMX_PINBASED_CTLS";
    case MSR_IA32_VMX_PROCBASED_CTLS: return "IA32_VMX_PROCBASED_CTLS";
    case MSR_IA32_VMX_PROCBASED_CTLS2: return "IA32_VMX_PROCBASED_CTLS2";
    case MSR_IA32_VMX_EXIT_CTLS: return "IA32_VMX_EXIT_CTLS";
    case MSR_IA32_VMX_ENTRY_CTLS: return "IA32_VMX_ENTRY_CTLS";
    case MSR_IA32_VMX_TRUE_PINBASED_CTLS: return "IA32_VMX_TRUE_PINBASED_CTLS";
    case MSR_IA32_VMX_TRUE_PROCBASED_CTLS: return "IA32_VMX_TRUE_PROCBASED_CTLS";
    case MSR_IA32_VMX_TRUE_EXIT_CTLS: return "IA32_VMX_TRUE_EXIT_CTLS";
    case MSR_IA32_VMX_TRUE_ENTRY_CTLS: return "IA32_VMX_TRUE_ENTRY_CTLS";
    }
    return "?";
}

uint32_t vmx_ctl_adjust(enum vmx_ctl c, uint32_t want, uint32_t *missing)
{
    const struct vmx_ctl_cap *k = &vmx_caps()->ctl[c];
    if (missing)
        *missing = want & ~k->may1;
    return (want | k->must1) & k->may1;
}

bool vmx_ctl_can_set(enum vmx_ctl c, uint32_t bits)
{
    return (vmx_caps()->ctl[c].may1 & bits) == bits;
}

bool vmx_ctl_can_clear(enum vmx_ctl c, uint32_t bits)
{
    return (vmx_caps()->ctl[c].must1 & bits) == 0;
}

void vmx_require_ctl(enum vmx_ctl c, uint32_t bits, const char *what)
{
    uint32_t missing;
    vmx_ctl_adjust(c, bits, &missing);
    if (c == VMX_CTL_PROC2 && !vmx_caps()->has_proc2)
        skip("IA32_VMX_PROCBASED_CTLS[63]=0 (no secondary controls, needed for %s)", what);
    if (missing) {
        unsigned bit = (unsigned)__builtin_ctz(missing);
        skip("%s[%u]=0: %s cannot be 1 (control bit %u%s)", vmx_ctl_name(c), 32 + bit, what, bit,
             (missing & (missing - 1)) ? ", and others" : "");
    }
}

/* ---- VMX operation ---------------------------------------------------------------- */

void *vmx_alloc_vmcs(void)
{
    uint32_t *p = alloc_page();
    p[0] = VMX_BASIC_REVISION(vmx_caps()->basic);
    return p;
}

uint64_t vmx_prepare(void)
{
    const struct vmx_caps *c = vmx_caps();
    uint64_t fc;
    int vec = rdmsr_safe(MSR_IA32_FEATURE_CONTROL, &fc);
    if (vec != NO_FAULT)
        fail("RDMSR IA32_FEATURE_CONTROL (0x3a) raised vector %d on a VMX CPU", vec);
    if (fc & FEATURE_CONTROL_LOCK) {
        if (!(fc & FEATURE_CONTROL_VMX_OUTSIDE_SMX))
            skip("disabled by firmware: IA32_FEATURE_CONTROL=%#llx locked (bit 0) with "
                 "VMXON outside SMX (bit 2) clear",
                 (unsigned long long)fc);
    } else {
        uint64_t want = fc | FEATURE_CONTROL_LOCK | FEATURE_CONTROL_VMX_OUTSIDE_SMX;
        vec = wrmsr_safe(MSR_IA32_FEATURE_CONTROL, want);
        if (vec != NO_FAULT)
            fail("WRMSR IA32_FEATURE_CONTROL=%#llx (unlocked) raised vector %d",
                 (unsigned long long)want, vec);
    }
    uint64_t cr0 = read_cr0(), cr0w = (cr0 | c->cr0_fixed0) & c->cr0_fixed1;
    if (cr0w != cr0)
        write_cr0(cr0w);
    uint64_t cr4 = read_cr4(), cr4w = (cr4 | c->cr4_fixed0 | CR4_VMXE) & c->cr4_fixed1;
    if (!(cr4w & CR4_VMXE))
        fail("IA32_VMX_CR4_FIXED1=%#llx does not allow CR4.VMXE",
             (unsigned long long)c->cr4_fixed1);
    if (cr4w != cr4)
        write_cr4(cr4w);
    return (uint64_t)(uintptr_t)vmx_alloc_vmcs();
}

uint64_t vmx_on(void)
{
    uint64_t pa = vmx_prepare();
    struct vmx_res r = vmxon(pa);
    if (!vmx_ok(r))
        fail("VMXON with a valid region (CR0=%#llx CR4=%#llx): %s", (unsigned long long)read_cr0(),
             (unsigned long long)read_cr4(), vmx_res_str(r));
    return pa;
}

/* ---- default VMCS ------------------------------------------------------------------ */

struct dtr {
    uint16_t limit;
    uint64_t base;
} __packed;

static uint16_t read_sel(int which)
{
    uint16_t s = 0;
    switch (which) {
    case 0: __asm__ volatile("mov %%es, %0" : "=r"(s)); break;
    case 1: __asm__ volatile("mov %%cs, %0" : "=r"(s)); break;
    case 2: __asm__ volatile("mov %%ss, %0" : "=r"(s)); break;
    case 3: __asm__ volatile("mov %%ds, %0" : "=r"(s)); break;
    case 4: __asm__ volatile("mov %%fs, %0" : "=r"(s)); break;
    case 5: __asm__ volatile("mov %%gs, %0" : "=r"(s)); break;
    case 6: __asm__ volatile("str %0" : "=r"(s)); break;
    }
    return s;
}

static uint64_t msr_or0(uint32_t msr)
{
    uint64_t v = 0;
    if (rdmsr_safe(msr, &v) != NO_FAULT)
        v = 0;
    return v;
}

void vmx_setup_vmcs(struct vmx_vcpu *v, void (*entry)(void))
{
    struct dtr gdtr, idtr;
    __asm__ volatile("sgdt %0" : "=m"(gdtr));
    __asm__ volatile("sidt %0" : "=m"(idtr));

    /* controls (SDM Vol. 3C 25.6-25.8), adjusted to the capability MSRs */
    vmcs_write(VMCS_PIN_CTLS, vmx_ctl_adjust(VMX_CTL_PIN, 0, NULL));
    vmcs_write(VMCS_PROC_CTLS,
               vmx_ctl_adjust(VMX_CTL_PROC, PROC_HLT_EXITING | PROC_UNCOND_IO_EXITING, NULL));
    if (vmx_caps()->has_proc2)
        vmcs_write(VMCS_PROC_CTLS2, vmx_ctl_adjust(VMX_CTL_PROC2, 0, NULL));
    vmx_require_ctl(VMX_CTL_EXIT, EXIT_HOST_ADDR_64, "host address-space size");
    vmcs_write(VMCS_EXIT_CTLS, vmx_ctl_adjust(VMX_CTL_EXIT,
                                              EXIT_HOST_ADDR_64 | EXIT_SAVE_EFER | EXIT_LOAD_EFER |
                                                  EXIT_SAVE_PAT | EXIT_LOAD_PAT,
                                              NULL));
    vmx_require_ctl(VMX_CTL_ENTRY, ENTRY_IA32E_GUEST, "IA-32e mode guest");
    uint32_t entry_ctls =
        vmx_ctl_adjust(VMX_CTL_ENTRY, ENTRY_IA32E_GUEST | ENTRY_LOAD_EFER | ENTRY_LOAD_PAT, NULL);
    vmcs_write(VMCS_ENTRY_CTLS, entry_ctls);
    uint32_t exit_ctls = (uint32_t)vmcs_read(VMCS_EXIT_CTLS);
    vmcs_write(VMCS_EXCEPTION_BITMAP, 0xffffffffu);
    vmcs_write(VMCS_PF_ERRCODE_MASK, 0);
    vmcs_write(VMCS_PF_ERRCODE_MATCH, 0);
    vmcs_write(VMCS_CR3_TARGET_COUNT, 0);
    vmcs_write(VMCS_EXIT_MSR_STORE_COUNT, 0);
    vmcs_write(VMCS_EXIT_MSR_LOAD_COUNT, 0);
    vmcs_write(VMCS_ENTRY_MSR_LOAD_COUNT, 0);
    vmcs_write(VMCS_ENTRY_INTR_INFO, 0);
    vmcs_write(VMCS_CR0_MASK, 0);
    vmcs_write(VMCS_CR4_MASK, 0);
    vmcs_write(VMCS_CR0_SHADOW, 0);
    vmcs_write(VMCS_CR4_SHADOW, 0);
    vmcs_write(VMCS_TSC_OFFSET, 0);

    /* host state (SDM Vol. 3C 25.5, 27.2.3) */
    uint64_t cr0 = read_cr0(), cr3 = read_cr3(), cr4 = read_cr4();
    uint64_t efer = rdmsr(MSR_EFER), pat = msr_or0(MSR_IA32_PAT);
    uint16_t sel[7];
    for (int i = 0; i < 7; i++)
        sel[i] = read_sel(i);
    uint16_t tr = sel[6];
    if (!tr)
        error("the kernel runs with TR=0; VMX needs a host TR");
    const uint64_t *gdt = (const uint64_t *)(uintptr_t)gdtr.base;
    uint64_t lo = gdt[tr >> 3], hi = gdt[(tr >> 3) + 1];
    uint64_t tr_base = ((lo >> 16) & 0xffffff) | (((lo >> 56) & 0xff) << 24) | (hi << 32);
    uint32_t tr_limit = (uint32_t)((lo & 0xffff) | (((lo >> 48) & 0xf) << 16));
    uint32_t tr_ar = (uint32_t)(((lo >> 40) & 0xff) | (((lo >> 52) & 0xf) << 12));
    if (tr_ar & VMX_AR_G)
        tr_limit = (tr_limit << 12) | 0xfff;
    tr_ar |= 2; /* the loaded TSS is busy */

    vmcs_write(VMCS_HOST_CR0, cr0);
    vmcs_write(VMCS_HOST_CR3, cr3);
    vmcs_write(VMCS_HOST_CR4, cr4);
    vmcs_write(VMCS_HOST_ES_SEL, sel[0] & ~7);
    vmcs_write(VMCS_HOST_CS_SEL, sel[1] & ~7);
    vmcs_write(VMCS_HOST_SS_SEL, sel[2] & ~7);
    vmcs_write(VMCS_HOST_DS_SEL, sel[3] & ~7);
    vmcs_write(VMCS_HOST_FS_SEL, sel[4] & ~7);
    vmcs_write(VMCS_HOST_GS_SEL, sel[5] & ~7);
    vmcs_write(VMCS_HOST_TR_SEL, tr & ~7);
    vmcs_write(VMCS_HOST_FS_BASE, msr_or0(MSR_FS_BASE));
    vmcs_write(VMCS_HOST_GS_BASE, msr_or0(MSR_GS_BASE));
    vmcs_write(VMCS_HOST_TR_BASE, tr_base);
    vmcs_write(VMCS_HOST_GDTR_BASE, gdtr.base);
    vmcs_write(VMCS_HOST_IDTR_BASE, idtr.base);
    vmcs_write(VMCS_HOST_SYSENTER_CS, msr_or0(MSR_IA32_SYSENTER_CS));
    vmcs_write(VMCS_HOST_SYSENTER_ESP, msr_or0(MSR_IA32_SYSENTER_ESP));
    vmcs_write(VMCS_HOST_SYSENTER_EIP, msr_or0(MSR_IA32_SYSENTER_EIP));
    vmcs_write(VMCS_HOST_RIP, (uint64_t)(uintptr_t)vmx_exit_stub);
    vmcs_write(VMCS_HOST_RSP, 0); /* vmx_enter() writes the real one */
    if (exit_ctls & EXIT_LOAD_EFER)
        vmcs_write(VMCS_HOST_EFER, efer);
    if (exit_ctls & EXIT_LOAD_PAT)
        vmcs_write(VMCS_HOST_PAT, pat);

    /* guest state (SDM Vol. 3C 25.4, 27.3.1): a copy of the host's */
    vmcs_write(VMCS_GUEST_CR0, cr0);
    vmcs_write(VMCS_GUEST_CR3, cr3);
    vmcs_write(VMCS_GUEST_CR4, cr4);
    vmcs_write(VMCS_GUEST_DR7, 0x400);
    static const uint32_t seg_sel[6] = {VMCS_GUEST_ES_SEL, VMCS_GUEST_CS_SEL, VMCS_GUEST_SS_SEL,
                                        VMCS_GUEST_DS_SEL, VMCS_GUEST_FS_SEL, VMCS_GUEST_GS_SEL};
    for (int i = 0; i < 6; i++) {
        uint32_t field_off = seg_sel[i] - VMCS_GUEST_ES_SEL; /* 2 * segment number */
        uint32_t ar = i == 1 ? (VMX_AR_TYPE(11) | VMX_AR_S | VMX_AR_P | VMX_AR_L | VMX_AR_G)
                             : (VMX_AR_TYPE(3) | VMX_AR_S | VMX_AR_P | VMX_AR_DB | VMX_AR_G);
        if (i != 1 && sel[i] == 0)
            ar = VMX_AR_UNUSABLE;
        vmcs_write(seg_sel[i], sel[i]);
        vmcs_write(VMCS_GUEST_ES_LIMIT + field_off, 0xffffffffu);
        vmcs_write(VMCS_GUEST_ES_AR + field_off, ar);
        vmcs_write(VMCS_GUEST_ES_BASE + field_off, 0);
    }
    vmcs_write(VMCS_GUEST_FS_BASE, msr_or0(MSR_FS_BASE));
    vmcs_write(VMCS_GUEST_GS_BASE, msr_or0(MSR_GS_BASE));
    vmcs_write(VMCS_GUEST_LDTR_SEL, 0);
    vmcs_write(VMCS_GUEST_LDTR_BASE, 0);
    vmcs_write(VMCS_GUEST_LDTR_LIMIT, 0);
    vmcs_write(VMCS_GUEST_LDTR_AR, VMX_AR_UNUSABLE);
    vmcs_write(VMCS_GUEST_TR_SEL, tr);
    vmcs_write(VMCS_GUEST_TR_BASE, tr_base);
    vmcs_write(VMCS_GUEST_TR_LIMIT, tr_limit);
    vmcs_write(VMCS_GUEST_TR_AR, tr_ar);
    vmcs_write(VMCS_GUEST_GDTR_BASE, gdtr.base);
    vmcs_write(VMCS_GUEST_GDTR_LIMIT, gdtr.limit);
    vmcs_write(VMCS_GUEST_IDTR_BASE, idtr.base);
    vmcs_write(VMCS_GUEST_IDTR_LIMIT, idtr.limit);
    if (entry_ctls & ENTRY_LOAD_EFER)
        vmcs_write(VMCS_GUEST_EFER, efer);
    if (entry_ctls & ENTRY_LOAD_PAT)
        vmcs_write(VMCS_GUEST_PAT, pat);
    vmcs_write(VMCS_GUEST_DEBUGCTL, 0);
    vmcs_write(VMCS_GUEST_SYSENTER_CS, 0);
    vmcs_write(VMCS_GUEST_SYSENTER_ESP, 0);
    vmcs_write(VMCS_GUEST_SYSENTER_EIP, 0);
    vmcs_write(VMCS_LINK_PTR, ~0ull);
    vmcs_write(VMCS_GUEST_ACTIVITY_STATE, ACTIVITY_ACTIVE);
    vmcs_write(VMCS_GUEST_INTERRUPTIBILITY, 0);
    vmcs_write(VMCS_GUEST_PENDING_DBG, 0);
    vmcs_write(VMCS_GUEST_RFLAGS, 0x2);

    uint64_t *top = (uint64_t *)((uint8_t *)v->stack + 4 * 4096);
    top[-1] = (uint64_t)(uintptr_t)vmx_guest_return; /* entry's return address */
    vmcs_write(VMCS_GUEST_RSP, (uint64_t)(uintptr_t)&top[-1]);
    vmcs_write(VMCS_GUEST_RIP, (uint64_t)(uintptr_t)entry);
}

struct vmx_vcpu *vmx_vcpu_new(void (*entry)(void))
{
    struct vmx_vcpu *v = alloc_page();
    v->vmcs = vmx_alloc_vmcs();
    v->vmcs_pa = (uint64_t)(uintptr_t)v->vmcs;
    v->stack = alloc_pages(4);
    struct vmx_res r = vmclear(v->vmcs_pa);
    if (!vmx_ok(r))
        fail("VMCLEAR of a fresh VMCS: %s", vmx_res_str(r));
    r = vmptrld(v->vmcs_pa);
    if (!vmx_ok(r))
        fail("VMPTRLD of a fresh VMCS: %s", vmx_res_str(r));
    vmx_setup_vmcs(v, entry);
    return v;
}

/* ---- running ------------------------------------------------------------------------ */

static uint32_t vmx_run_unwatched(struct vmx_vcpu *v);

/* ---- the watchdog (vmx_run() with v->watchdog set) ------------------------------- */

/* What watch_begin() added for one run, and what it must undo. */
struct vmx_watch {
    bool preempt; /* the VMX-preemption timer was activated */
    bool apic;    /* the local APIC timer was armed */
    uint64_t pin, timer;
};

/* The VMX-preemption timer value worth ms milliseconds. */
static uint32_t watch_ticks(unsigned ms)
{
    static uint64_t tsc_hz;
    if (!tsc_hz)
        tsc_hz = tsc_calibrate();
    if (!tsc_hz)
        tsc_hz = 1ull << 31; /* the PIT did not answer: guess 2 GHz */
    uint64_t t = (tsc_hz * ms / 1000) >> VMX_MISC_TIMER_RATIO(vmx_caps()->misc);
    return t > 0xffffffffu ? 0xffffffffu : t ? (uint32_t)t : 1;
}

/* The preemption timer where the run does not use it already; the local
 * APIC timer with external-interrupt exiting as well (or instead, where
 * there is no preemption timer to add), a second after the preemption
 * timer: a hypervisor that loses the timer's expiry while its guest is
 * halted must not leave the whole level hanging. */
static void watch_begin(struct vmx_watch *w)
{
    w->preempt = w->apic = false;
    w->pin = vmcs_read(VMCS_PIN_CTLS);
    uint64_t pin = w->pin;
    if (!(pin & PIN_PREEMPTION_TIMER) && vmx_ctl_can_set(VMX_CTL_PIN, PIN_PREEMPTION_TIMER)) {
        w->timer = vmcs_read(VMCS_PREEMPTION_TIMER);
        vmcs_write(VMCS_PREEMPTION_TIMER, watch_ticks(WATCHDOG_MS));
        pin |= PIN_PREEMPTION_TIMER;
        w->preempt = true;
    }
    if (((pin & PIN_EXTINT_EXITING) || vmx_ctl_can_set(VMX_CTL_PIN, PIN_EXTINT_EXITING)) &&
        watchdog_arm(w->preempt ? 2 * WATCHDOG_MS : WATCHDOG_MS)) {
        pin |= PIN_EXTINT_EXITING;
        w->apic = true;
    }
    if (pin != w->pin)
        vmcs_write(VMCS_PIN_CTLS, pin);
}

static void watch_end(struct vmx_vcpu *v, const struct vmx_watch *w)
{
    if (!w->preempt && !w->apic)
        return;
    vmcs_write(VMCS_PIN_CTLS, w->pin);
    if (w->preempt)
        vmcs_write(VMCS_PREEMPTION_TIMER, w->timer);
    bool apic_fired = w->apic && watchdog_disarm() && v->exit_reason == EXIT_EXTERNAL_INTR;
    const char *by = NULL;
    if (w->preempt && v->exit_reason == EXIT_PREEMPT_TIMER)
        by = "the VMX-preemption timer";
    else if (apic_fired && w->preempt)
        by = "the local APIC timer's interrupt (the VMX-preemption timer, due a second "
             "earlier, caused no exit)";
    else if (apic_fired)
        by = "the local APIC timer's interrupt";
    if (by)
        check(false, "watchdog: no exit within %u ms, awaiting %s; %s ended the run: %s",
              WATCHDOG_MS, v->watchdog, by, vmx_exit_str(v));
}

uint32_t vmx_run(struct vmx_vcpu *v)
{
    struct vmx_watch w = {false, false, 0, 0};
    if (v->watchdog)
        watch_begin(&w);
    uint32_t r = vmx_run_unwatched(v);
    watch_end(v, &w);
    return r;
}

static uint32_t vmx_run_unwatched(struct vmx_vcpu *v)
{
    v->tried_launch = !v->launched;
    if (vmx_enter(v)) {
        v->entry = vmx_decode(v->fail_rflags & 1, (v->fail_rflags >> 6) & 1);
        v->exit_reason = VMX_RUN_VMFAIL;
        return VMX_RUN_VMFAIL;
    }
    v->entry = (struct vmx_res){VMX_SUCCEED, 0};
    v->exit_reason = (uint32_t)vmcs_read(VMCS_EXIT_REASON);
    v->exit_qual = vmcs_read(VMCS_EXIT_QUAL);
    v->exit_intr_info = (uint32_t)vmcs_read(VMCS_EXIT_INTR_INFO);
    v->exit_intr_err = (uint32_t)vmcs_read(VMCS_EXIT_INTR_ERRCODE);
    v->idt_info = (uint32_t)vmcs_read(VMCS_IDT_VECTORING_INFO);
    v->idt_err = (uint32_t)vmcs_read(VMCS_IDT_VECTORING_ERRCODE);
    v->insn_len = (uint32_t)vmcs_read(VMCS_EXIT_INSN_LEN);
    v->insn_info = (uint32_t)vmcs_read(VMCS_EXIT_INSN_INFO);
    v->guest_rip = vmcs_read(VMCS_GUEST_RIP);
    v->guest_rsp = vmcs_read(VMCS_GUEST_RSP);
    v->guest_rflags = vmcs_read(VMCS_GUEST_RFLAGS);
    unsigned basic = EXIT_REASON_BASIC(v->exit_reason);
    v->gpa = 0;
    if (basic == EXIT_EPT_VIOLATION || basic == EXIT_EPT_MISCONFIG)
        v->gpa = vmcs_read(VMCS_GUEST_PHYS_ADDR);
    if (!(v->exit_reason & EXIT_REASON_ENTRY_FAIL))
        v->launched = 1;
    return v->exit_reason;
}

void vmx_skip_insn(struct vmx_vcpu *v)
{
    v->guest_rip += v->insn_len;
    vmcs_write(VMCS_GUEST_RIP, v->guest_rip);
}

const char *vmx_exit_str(const struct vmx_vcpu *v)
{
    static char buf[256];
    const char *insn = v->tried_launch ? "VMLAUNCH" : "VMRESUME";
    if (v->exit_reason == VMX_RUN_VMFAIL) {
        snprintf(buf, sizeof(buf), "%s %s", insn, vmx_res_str(v->entry));
        return buf;
    }
    unsigned basic = EXIT_REASON_BASIC(v->exit_reason);
    if (v->exit_reason & EXIT_REASON_ENTRY_FAIL) {
        snprintf(buf, sizeof(buf), "%s: VM-entry failure, exit reason %#x (%s) qual=%#llx", insn,
                 v->exit_reason, vmx_exit_reason_name(basic), (unsigned long long)v->exit_qual);
        return buf;
    }
    int n = snprintf(buf, sizeof(buf), "exit %u (%s)", basic, vmx_exit_reason_name(basic));
    if (v->exit_reason != basic)
        n += snprintf(buf + n, sizeof(buf) - n, " reason=%#x", v->exit_reason);
    if (basic == EXIT_EXCEPTION_NMI || basic == EXIT_EXTERNAL_INTR)
        n += snprintf(buf + n, sizeof(buf) - n, " vector=%u type=%u",
                      INTR_INFO_VECTOR(v->exit_intr_info), INTR_INFO_TYPE(v->exit_intr_info));
    if (basic == EXIT_EXCEPTION_NMI && (v->exit_intr_info & INTR_INFO_ERRCODE))
        n += snprintf(buf + n, sizeof(buf) - n, " err=%#x", v->exit_intr_err);
    n += snprintf(buf + n, sizeof(buf) - n, " qual=%#llx rip=%#llx len=%u",
                  (unsigned long long)v->exit_qual, (unsigned long long)v->guest_rip, v->insn_len);
    if (basic == EXIT_EPT_VIOLATION || basic == EXIT_EPT_MISCONFIG)
        n += snprintf(buf + n, sizeof(buf) - n, " gpa=%#llx", (unsigned long long)v->gpa);
    if (v->idt_info & INTR_INFO_VALID)
        snprintf(buf + n, sizeof(buf) - n, " idt_info=%#x", v->idt_info);
    return buf;
}

bool vmx_run_expect(struct vmx_vcpu *v, unsigned reason, const char *what)
{
    uint32_t r = vmx_run(v);
    return check(r == reason, "%s: want exit %u (%s), got %s", what, reason,
                 vmx_exit_reason_name(reason), vmx_exit_str(v));
}

extern const char vmx_guest_vectors[];

void *vmx_guest_idt(struct vmx_vcpu *v)
{
    (void)v;
    uint64_t *idt = alloc_page();
    uint64_t cs = vmcs_read(VMCS_GUEST_CS_SEL);
    for (unsigned i = 0; i < 256; i++) {
        uint64_t h = (uint64_t)(uintptr_t)vmx_guest_vectors + 16 * i;
        idt[2 * i] = (h & 0xffff) | (cs << 16) | (0x8eull << 40) | ((h >> 16) & 0xffff) << 48;
        idt[2 * i + 1] = h >> 32;
    }
    vmcs_write(VMCS_GUEST_IDTR_BASE, (uintptr_t)idt);
    vmcs_write(VMCS_GUEST_IDTR_LIMIT, 4095);
    return idt;
}

/* ---- EPT -------------------------------------------------------------------------- */

uint64_t vmx_ept_identity(void)
{
    vmx_require_ctl(VMX_CTL_PROC2, PROC2_EPT, "enable EPT");
    uint64_t cap = vmx_caps()->ept_vpid;
    if (!(cap & VMX_EPT_PWL4))
        skip("IA32_VMX_EPT_VPID_CAP=%#llx: bit 6 (4-level page walk) clear",
             (unsigned long long)cap);
    if (!(cap & VMX_EPT_2M))
        skip("IA32_VMX_EPT_VPID_CAP=%#llx: bit 16 (2 MiB EPT pages) clear",
             (unsigned long long)cap);
    unsigned mt = (cap & VMX_EPT_MT_WB) ? VMX_MEMTYPE_WB : VMX_MEMTYPE_UC;
    uint64_t *pml4 = alloc_page(), *pdpt = alloc_page();
    pml4[0] = (uintptr_t)pdpt | EPT_RWX;
    for (unsigned i = 0; i < 4; i++) {
        uint64_t *pd = alloc_page();
        pdpt[i] = (uintptr_t)pd | EPT_RWX;
        for (unsigned j = 0; j < 512; j++)
            pd[j] = (((uint64_t)i << 30) + ((uint64_t)j << 21)) | EPT_PS | EPT_MT(mt) | EPT_RWX;
    }
    return (uintptr_t)pml4 | EPTP_PWL(4) | EPTP_MT(mt);
}

uint64_t *vmx_ept_pte(uint64_t eptp, uint64_t gpa)
{
    if (gpa >> 32)
        error("vmx_ept_pte: gpa %#llx beyond the identity EPT", (unsigned long long)gpa);
    uint64_t *pml4 = (uint64_t *)(uintptr_t)(eptp & EPT_ADDR_MASK);
    uint64_t *pdpt = (uint64_t *)(uintptr_t)(pml4[0] & EPT_ADDR_MASK);
    uint64_t *pd = (uint64_t *)(uintptr_t)(pdpt[(gpa >> 30) & 511] & EPT_ADDR_MASK);
    uint64_t *pde = &pd[(gpa >> 21) & 511];
    if (*pde & EPT_PS) {
        uint64_t *pt = alloc_page();
        uint64_t base = *pde & ~0x1fffffull & EPT_ADDR_MASK;
        uint64_t attr = *pde & (EPT_RWX | EPT_MT(7) | EPT_IGNORE_PAT);
        for (unsigned k = 0; k < 512; k++)
            pt[k] = (base + ((uint64_t)k << 12)) | attr;
        *pde = (uintptr_t)pt | EPT_RWX;
    }
    uint64_t *pt = (uint64_t *)(uintptr_t)(*pde & EPT_ADDR_MASK);
    return &pt[(gpa >> 12) & 511];
}

void vmx_ept_flush(uint64_t eptp)
{
    uint64_t cap = vmx_caps()->ept_vpid;
    if (!(cap & VMX_EPT_INVEPT) || !(cap & (VMX_EPT_INVEPT_SINGLE | VMX_EPT_INVEPT_ALL)))
        return; /* no INVEPT: nothing can be flushed (and nothing is cached across VMCSs) */
    uint64_t type = (cap & VMX_EPT_INVEPT_SINGLE) ? INVEPT_SINGLE : INVEPT_ALL;
    struct vmx_res r = invept(type, eptp);
    if (!vmx_ok(r))
        fail("INVEPT type %llu of EPTP %#llx: %s", (unsigned long long)type,
             (unsigned long long)eptp, vmx_res_str(r));
}

void vmx_use_ept(struct vmx_vcpu *v, uint64_t eptp)
{
    (void)v;
    vmx_require_ctl(VMX_CTL_PROC2, PROC2_EPT, "enable EPT");
    vmcs_set_bits(VMCS_PROC_CTLS, PROC_SECONDARY_CTLS);
    vmcs_set_bits(VMCS_PROC_CTLS2, PROC2_EPT);
    vmcs_write(VMCS_EPTP, eptp);
    vmx_ept_flush(eptp);
}

void vmx_run_insn_cases(struct vmx_vcpu *v, const struct vmx_insn_case *cs, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        vmcs_write(VMCS_GUEST_RIP, (uintptr_t)cs[i].at);
        char what[80];
        snprintf(what, sizeof(what), "guest %s", cs[i].name);
        if (!vmx_run_expect(v, cs[i].reason, what))
            continue;
        check(v->guest_rip == (uintptr_t)cs[i].at, "%s: guest RIP %#llx, want %#llx", what,
              (unsigned long long)v->guest_rip, (unsigned long long)(uintptr_t)cs[i].at);
        check(v->insn_len == (uintptr_t)(cs[i].next - cs[i].at),
              "%s: VM-exit instruction length %u, want %u", what, v->insn_len,
              (unsigned)(cs[i].next - cs[i].at));
        if (cs[i].mask)
            check((v->insn_info & cs[i].mask) == cs[i].info,
                  "%s: instruction information %#x (defined bits %#x), want %#x", what,
                  v->insn_info, v->insn_info & cs[i].mask, cs[i].info);
        if (cs[i].qual_defined)
            check(v->exit_qual == cs[i].qual, "%s: exit qualification %#llx, want %#llx", what,
                  (unsigned long long)v->exit_qual, (unsigned long long)cs[i].qual);
    }
}
