/* SPDX-License-Identifier: MIT */
/*
 * VMX discovery: CPUID, IA32_FEATURE_CONTROL and the VMX capability MSRs.
 */
#include "vmx.h"

static void need_vmx(void)
{
    if (!vmx_supported())
        skip("CPUID.1:ECX.VMX[bit 5]=0");
}

PROBE(vmx_cpuid_exposed, "vmx.cpuid.exposed", "VMX",
      "CPUID.1:ECX.VMX=1 and RDMSR IA32_VMX_BASIC (0x480) succeeds: revision id nonzero, bit 31 "
      "and bits 47:45 clear, VMCS region size 1..4096, bit 48 clear on an Intel 64 CPU, memory "
      "type UC (0) or WB (6)",
      "Intel SDM Vol. 3C 24.6, A.1", "sdm.24.6.cpuid-vmx", "sdm.A.1.basic")
{
    need_vmx();
    uint64_t b;
    int vec = rdmsr_safe(MSR_IA32_VMX_BASIC, &b);
    if (!check(vec == NO_FAULT, "RDMSR IA32_VMX_BASIC raised vector %d with CPUID.1:ECX.VMX=1",
               vec))
        return;
    unsigned size = VMX_BASIC_REGION_SIZE(b), mt = VMX_BASIC_MEMTYPE(b);
    note("IA32_VMX_BASIC=%#llx revision=%#x size=%u memtype=%u true_ctls=%d inout=%d",
         (unsigned long long)b, VMX_BASIC_REVISION(b), size, mt, !!(b & VMX_BASIC_TRUE_CTLS),
         !!(b & VMX_BASIC_INOUT));
    check(VMX_BASIC_REVISION(b) != 0, "revision identifier (bits 30:0) is 0");
    check(!(b & VMX_BASIC_BIT31), "IA32_VMX_BASIC bit 31 is set (always 0)");
    check(!(b & (7ull << 45)), "IA32_VMX_BASIC bits 47:45 (reserved) = %#llx",
          (unsigned long long)((b >> 45) & 7));
    check(size >= 1 && size <= 4096, "VMCS region size %u not in 1..4096", size);
    if (cpuid(0x80000000, 0).a >= 0x80000001 && (cpuid(0x80000001, 0).d & (1u << 29)))
        check(!(b & VMX_BASIC_ADDR32),
              "IA32_VMX_BASIC bit 48 (32-bit VMX addresses) set on an Intel 64 CPU");
    check(mt == VMX_MEMTYPE_UC || mt == VMX_MEMTYPE_WB,
          "VMCS memory type %u is neither UC(0) nor WB(6)", mt);
}

struct wr_arg {
    uint32_t msr;
    uint64_t val;
};

static void do_wrmsr(void *p)
{
    struct wr_arg *a = p;
    wrmsr(a->msr, a->val);
}

PROBE(vmx_msr_feature_control, "vmx.feature_control", "VMX",
      "IA32_FEATURE_CONTROL (0x3A) reads without fault; if unlocked, WRMSR of "
      "lock|VMXON-outside-SMX "
      "succeeds and reads back; once locked (VMXON outside SMX must be enabled, else SKIP), WRMSR "
      "raises #GP(0) and the value is unchanged",
      "Intel SDM Vol. 3C 24.7", "sdm.24.7.feature-control")
{
    need_vmx();
    uint64_t fc;
    int vec = rdmsr_safe(MSR_IA32_FEATURE_CONTROL, &fc);
    if (!check(vec == NO_FAULT, "RDMSR IA32_FEATURE_CONTROL raised vector %d on a VMX CPU", vec))
        return;
    note("IA32_FEATURE_CONTROL=%#llx", (unsigned long long)fc);
    if (!(fc & FEATURE_CONTROL_LOCK)) {
        uint64_t want = fc | FEATURE_CONTROL_LOCK | FEATURE_CONTROL_VMX_OUTSIDE_SMX;
        vec = wrmsr_safe(MSR_IA32_FEATURE_CONTROL, want);
        if (!check(vec == NO_FAULT,
                   "WRMSR IA32_FEATURE_CONTROL=%#llx while unlocked raised vector %d",
                   (unsigned long long)want, vec))
            return;
        uint64_t got = 0;
        rdmsr_safe(MSR_IA32_FEATURE_CONTROL, &got);
        if (!check_eq("IA32_FEATURE_CONTROL after locking", got, want))
            return;
        fc = got;
    } else if (!(fc & FEATURE_CONTROL_VMX_OUTSIDE_SMX)) {
        skip("disabled by firmware: IA32_FEATURE_CONTROL=%#llx locked with VMXON outside SMX "
             "(bit 2) clear",
             (unsigned long long)fc);
    }
    /* locked: any write faults, even one that changes nothing */
    struct fault f;
    struct wr_arg a = {MSR_IA32_FEATURE_CONTROL, fc};
    vec = catch_fault(do_wrmsr, &a, &f);
    check(vec == GP_VECTOR && f.error_code == 0,
          "WRMSR IA32_FEATURE_CONTROL=%#llx (same value) while locked: got %s, want #GP(0)",
          (unsigned long long)fc, fault_str(&f));
    a.val = fc & ~FEATURE_CONTROL_VMX_OUTSIDE_SMX;
    vec = catch_fault(do_wrmsr, &a, &f);
    check(vec == GP_VECTOR && f.error_code == 0,
          "WRMSR IA32_FEATURE_CONTROL=%#llx (clearing bit 2) while locked: got %s, want #GP(0)",
          (unsigned long long)a.val, fault_str(&f));
    uint64_t after = 0;
    rdmsr_safe(MSR_IA32_FEATURE_CONTROL, &after);
    check_eq("IA32_FEATURE_CONTROL after the faulting writes", after, fc);
}

/* default1 classes, SDM Vol. 3C A.2-A.5 */
static const uint32_t default1[VMX_CTL_N] = {
    [VMX_CTL_PIN] = 0x16,        /* bits 1, 2, 4 */
    [VMX_CTL_PROC] = 0x0401e172, /* bits 1, 4-6, 8, 13-16, 26 */
    [VMX_CTL_PROC2] = 0,
    [VMX_CTL_EXIT] = 0x00036dff,  /* bits 0-8, 10, 11, 13, 14, 16, 17 */
    [VMX_CTL_ENTRY] = 0x000011ff, /* bits 0-8, 12 */
};

static const char *const ctl_label[VMX_CTL_N] = {"pin-based", "primary processor-based",
                                                 "secondary processor-based", "VM-exit",
                                                 "VM-entry"};

PROBE(vmx_msr_capabilities, "vmx.msr.capabilities", "VMX",
      "The VMX capability MSRs are consistent: in every control MSR the allowed-0 bits are a "
      "subset of the allowed-1 bits; the non-TRUE MSRs report every default1 control as must-be-1; "
      "with IA32_VMX_BASIC[55] the TRUE MSRs differ from them only in the default1 allowed-0 bits; "
      "CR0/CR4 FIXED0 is a subset of FIXED1; CR4_FIXED0 has VMXE",
      "Intel SDM Vol. 3C A.2-A.8, 24.8", "sdm.A.2.true-controls", "sdm.A.7.cr0-fixed",
      "sdm.A.8.cr4-fixed")
{
    const struct vmx_caps *c = vmx_caps();
    note("basic=%#llx misc=%#llx ept_vpid=%#llx vmfunc=%#llx enum=%#llx",
         (unsigned long long)c->basic, (unsigned long long)c->misc, (unsigned long long)c->ept_vpid,
         (unsigned long long)c->vmfunc, (unsigned long long)c->vmcs_enum);
    note("cr0 fixed0=%#llx fixed1=%#llx cr4 fixed0=%#llx fixed1=%#llx",
         (unsigned long long)c->cr0_fixed0, (unsigned long long)c->cr0_fixed1,
         (unsigned long long)c->cr4_fixed0, (unsigned long long)c->cr4_fixed1);
    for (int i = 0; i < VMX_CTL_N; i++) {
        if (i == VMX_CTL_PROC2 && !c->has_proc2)
            continue;
        const struct vmx_ctl_cap *l = &c->legacy[i], *t = &c->ctl[i];
        note("%s: %#x/%#x true %#x/%#x", ctl_label[i], l->must1, l->may1, t->must1, t->may1);
        check(!(l->must1 & ~l->may1), "%s controls (MSR %#x): allowed-0 bits %#x not allowed-1",
              ctl_label[i], l->msr, l->must1 & ~l->may1);
        check((l->must1 & default1[i]) == default1[i],
              "%s controls (MSR %#x): default1 bits %#x reported as allowed-0", ctl_label[i],
              l->msr, default1[i] & ~l->must1);
        if (!c->has_true || i == VMX_CTL_PROC2)
            continue;
        check(!(t->must1 & ~t->may1), "%s controls (MSR %#x): allowed-0 bits %#x not allowed-1",
              ctl_label[i], t->msr, t->must1 & ~t->may1);
        check((t->must1 & ~default1[i]) == (l->must1 & ~default1[i]),
              "%s controls: allowed-0 outside default1 differ: TRUE %#x, MSR %#x %#x", ctl_label[i],
              t->must1 & ~default1[i], l->msr, l->must1 & ~default1[i]);
        check(!(t->must1 & ~l->must1),
              "%s controls: TRUE MSR requires bits %#x the MSR %#x allows 0", ctl_label[i],
              t->must1 & ~l->must1, l->msr);
        check(t->may1 == l->may1, "%s controls: allowed-1 differ: TRUE %#x, MSR %#x %#x",
              ctl_label[i], t->may1, l->msr, l->may1);
    }
    check(!(c->cr0_fixed0 & ~c->cr0_fixed1),
          "CR0 bits %#llx fixed to 1 (FIXED0) but not allowed 1 (FIXED1)",
          (unsigned long long)(c->cr0_fixed0 & ~c->cr0_fixed1));
    check(!(c->cr4_fixed0 & ~c->cr4_fixed1),
          "CR4 bits %#llx fixed to 1 (FIXED0) but not allowed 1 (FIXED1)",
          (unsigned long long)(c->cr4_fixed0 & ~c->cr4_fixed1));
    check(c->cr4_fixed0 & CR4_VMXE, "IA32_VMX_CR4_FIXED0=%#llx lacks VMXE (bit 13)",
          (unsigned long long)c->cr4_fixed0);
}

static const uint32_t cap_msrs[] = {
    MSR_IA32_VMX_BASIC,      MSR_IA32_VMX_PINBASED_CTLS, MSR_IA32_VMX_PROCBASED_CTLS,
    MSR_IA32_VMX_EXIT_CTLS,  MSR_IA32_VMX_ENTRY_CTLS,    MSR_IA32_VMX_MISC,
    MSR_IA32_VMX_CR0_FIXED0, MSR_IA32_VMX_CR0_FIXED1,    MSR_IA32_VMX_CR4_FIXED0,
    MSR_IA32_VMX_CR4_FIXED1, MSR_IA32_VMX_VMCS_ENUM,
};

PROBE(vmx_msr_read_only, "vmx.msr.read_only", "VMX",
      "WRMSR of its own value to each VMX capability MSR the CPU reports (0x480-0x48A, and "
      "PROCBASED_CTLS2, EPT_VPID_CAP, TRUE_*, VMFUNC where they exist) raises #GP(0) and leaves it "
      "unchanged",
      "Intel SDM Vol. 3C A.1, Vol. 4 Table 2-2", "sdm.A.read-only")
{
    const struct vmx_caps *c = vmx_caps();
    uint32_t list[ARRAY_SIZE(cap_msrs) + 8];
    unsigned n = 0;
    for (unsigned i = 0; i < ARRAY_SIZE(cap_msrs); i++)
        list[n++] = cap_msrs[i];
    if (c->has_proc2)
        list[n++] = MSR_IA32_VMX_PROCBASED_CTLS2;
    if (c->has_ept_vpid)
        list[n++] = MSR_IA32_VMX_EPT_VPID_CAP;
    if (c->has_true)
        for (uint32_t m = MSR_IA32_VMX_TRUE_PINBASED_CTLS; m <= MSR_IA32_VMX_TRUE_ENTRY_CTLS; m++)
            list[n++] = m;
    if (c->has_vmfunc)
        list[n++] = MSR_IA32_VMX_VMFUNC;
    for (unsigned i = 0; i < n; i++) {
        uint64_t before = 0, after = 0;
        if (!check(rdmsr_safe(list[i], &before) == NO_FAULT, "RDMSR %#x faulted", list[i]))
            continue;
        struct fault f;
        struct wr_arg a = {list[i], before};
        int vec = catch_fault(do_wrmsr, &a, &f);
        check(vec == GP_VECTOR && f.error_code == 0, "WRMSR %#x=%#llx: got %s, want #GP(0)",
              list[i], (unsigned long long)before, fault_str(&f));
        rdmsr_safe(list[i], &after);
        check(after == before, "MSR %#x changed from %#llx to %#llx", list[i],
              (unsigned long long)before, (unsigned long long)after);
    }
}
