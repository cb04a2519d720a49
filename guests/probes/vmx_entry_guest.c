/* SPDX-License-Identifier: MIT */
/*
 * VM entry: the checks on the guest-state area (SDM Vol. 3C 27.3.1):
 * control and debug registers, MSRs, segment and descriptor-table
 * registers, RIP and RFLAGS, pending debug exceptions, the VMCS link
 * pointer. Each check is a VM-entry failure with exit reason 0x80000021
 * (qualification 0, or 4 for the link pointer); guest state the checks
 * allow launches.
 */
#include "vmx_cases.h"

GUEST(vmx_eg_loop_guest, "1: vmcall", "jmp 1b");

#define F(field, val)  \
    {                  \
        (field), (val) \
    }

/* segment register numbers of the guest-state fields (ES ... GS, LDTR, TR) */
enum { S_ES, S_CS, S_SS, S_DS, S_FS, S_GS, S_LDTR, S_TR };
#define SEL(s)   (VMCS_GUEST_ES_SEL + 2 * (s))
#define LIMIT(s) (VMCS_GUEST_ES_LIMIT + 2 * (s))
#define AR(s)    (VMCS_GUEST_ES_AR + 2 * (s))
#define BASE(s)  (VMCS_GUEST_ES_BASE + 2 * (s))

#define AR_DATA  (VMX_AR_TYPE(3) | VMX_AR_S | VMX_AR_P | VMX_AR_DB | VMX_AR_G)
#define AR_CODE  (VMX_AR_TYPE(11) | VMX_AR_S | VMX_AR_P | VMX_AR_L | VMX_AR_G)
#define SEL_DATA 0x10

/* A vCPU whose ES, SS and DS are usable flat data segments (selector 0x10,
 * RPL 0), which launches. */
static struct vmx_vcpu *eg_vcpu(void)
{
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_eg_loop_guest);
    static const int segs[] = {S_ES, S_SS, S_DS};
    for (unsigned i = 0; i < ARRAY_SIZE(segs); i++) {
        vmcs_write(SEL(segs[i]), SEL_DATA);
        vmcs_write(BASE(segs[i]), 0);
        vmcs_write(LIMIT(segs[i]), 0xffffffffu);
        vmcs_write(AR(segs[i]), AR_DATA);
    }
    vc_baseline(v);
    return v;
}

static uint64_t low_bit(uint64_t m) { return m & -m; }

PROBE(vmx_entry_guest_cr0_cr4, "vmx.entry.guest_cr0_cr4", "VMX",
      "VM entry fails (exit reason 0x80000021, qualification 0) with guest CR0.NE=0 or CR4.VMXE=0 "
      "(fixed to 1 by IA32_VMX_CR0_FIXED0 / CR4_FIXED0), with a guest CR0 or CR4 bit set that "
      "CR0_FIXED1 / CR4_FIXED1 does not allow, with CR4.PAE=0 in an IA-32e mode guest, and (where "
      "CR4_FIXED1 allows CET) with CR4.CET=1 but CR0.WP=0",
      "Intel SDM Vol. 3C 27.3.1.1, A.7, A.8", "sdm.27.3.1.1.cr0-fixed-bits",
      "sdm.27.3.1.1.cr4-fixed-bits", "sdm.27.3.1.1.ia32e-pg-pae", "sdm.27.8.invalid-guest-state",
      "sdm.27.3.1.1.cr4-cet-wp")
{
    struct vmx_vcpu *v = eg_vcpu();
    const struct vmx_caps *c = vmx_caps();
    uint64_t cr0 = vmcs_read(VMCS_GUEST_CR0), cr4 = vmcs_read(VMCS_GUEST_CR4);
    uint64_t cr0_bad1 = low_bit(~c->cr0_fixed1), cr4_bad1 = low_bit(~c->cr4_fixed1);
    struct vc_case cs[6] = {
        {"guest CR0.NE=0", VC_GUEST, 0, 1, {F(VMCS_GUEST_CR0, cr0 & ~CR0_NE)}},
        {"guest CR4.VMXE=0", VC_GUEST, 0, 1, {F(VMCS_GUEST_CR4, cr4 & ~CR4_VMXE)}},
        {"guest CR4.PAE=0 in an IA-32e mode guest",
         VC_GUEST,
         0,
         1,
         {F(VMCS_GUEST_CR4, cr4 & ~CR4_PAE)}},
    };
    unsigned n = 3;
    if (cr0_bad1)
        cs[n++] = (struct vc_case){"guest CR0 with a FIXED1-zero bit",
                                   VC_GUEST,
                                   0,
                                   1,
                                   {F(VMCS_GUEST_CR0, cr0 | cr0_bad1)}};
    if ((c->cr4_fixed1 & CR4_CET) && !(c->cr0_fixed0 & CR0_WP))
        cs[n++] =
            (struct vc_case){"guest CR4.CET=1 with CR0.WP=0",
                             VC_GUEST,
                             0,
                             2,
                             {F(VMCS_GUEST_CR0, cr0 & ~CR0_WP), F(VMCS_GUEST_CR4, cr4 | CR4_CET)}};
    else
        note("CR4.CET=1 with CR0.WP=0 not tried: CR4_FIXED1 %#llx, CR0_FIXED0 %#llx",
             (unsigned long long)c->cr4_fixed1, (unsigned long long)c->cr0_fixed0);
    if (cr4_bad1)
        cs[n++] = (struct vc_case){"guest CR4 with a FIXED1-zero bit",
                                   VC_GUEST,
                                   0,
                                   1,
                                   {F(VMCS_GUEST_CR4, cr4 | cr4_bad1)}};
    vc_run_all(v, cs, n);
}

PROBE(vmx_entry_guest_cr3, "vmx.entry.guest_cr3", "VMX",
      "VM entry with a guest CR3 with bit MAXPHYADDR set fails: exit reason 0x80000021, "
      "qualification 0",
      "Intel SDM Vol. 3C 27.3.1.1", "sdm.27.3.1.1.cr3-width")
{
    struct vmx_vcpu *v = eg_vcpu();
    const struct vc_case cs[] = {
        {"guest CR3 beyond MAXPHYADDR",
         VC_GUEST,
         0,
         1,
         {F(VMCS_GUEST_CR3, vmcs_read(VMCS_GUEST_CR3) | vc_beyond_maxphy())}},
    };
    vc_run_all(v, cs, ARRAY_SIZE(cs));
}

PROBE(vmx_entry_guest_debug, "vmx.entry.guest_debug", "VMX",
      "With load debug controls = 1, VM entry with guest DR7 bit 32 set, or with reserved bit 2 "
      "or bit 63 of the guest IA32_DEBUGCTL field set, fails: exit reason 0x80000021, "
      "qualification 0; DR7 = 0x400 and DEBUGCTL = 0 launch",
      "Intel SDM Vol. 3C 27.3.1.1", "sdm.27.3.1.1.dr7-high", "sdm.27.3.1.1.debugctl-reserved")
{
    vmx_require_ctl(VMX_CTL_ENTRY, ENTRY_LOAD_DEBUG, "load debug controls");
    struct vmx_vcpu *v = eg_vcpu();
    uint32_t e = (uint32_t)vmcs_read(VMCS_ENTRY_CTLS) | ENTRY_LOAD_DEBUG;
    const struct vc_case cs[] = {
        {"load debug controls with DR7 0x400, DEBUGCTL 0",
         VC_LAUNCH,
         0,
         3,
         {F(VMCS_ENTRY_CTLS, e), F(VMCS_GUEST_DR7, 0x400), F(VMCS_GUEST_DEBUGCTL, 0)}},
        {"guest DR7 bit 32",
         VC_GUEST,
         0,
         2,
         {F(VMCS_ENTRY_CTLS, e), F(VMCS_GUEST_DR7, 0x400 | BIT(32))}},
        {"guest IA32_DEBUGCTL bit 2 (reserved)",
         VC_GUEST,
         0,
         2,
         {F(VMCS_ENTRY_CTLS, e), F(VMCS_GUEST_DEBUGCTL, BIT(2))}},
        {"guest IA32_DEBUGCTL bit 63 (reserved)",
         VC_GUEST,
         0,
         2,
         {F(VMCS_ENTRY_CTLS, e), F(VMCS_GUEST_DEBUGCTL, BIT(63))}},
    };
    vc_run_all(v, cs, ARRAY_SIZE(cs));
}

PROBE(vmx_entry_guest_sysenter, "vmx.entry.guest_sysenter", "VMX",
      "VM entry with a non-canonical guest IA32_SYSENTER_ESP or IA32_SYSENTER_EIP field "
      "(0x0000800000000000) fails: exit reason 0x80000021, qualification 0",
      "Intel SDM Vol. 3C 27.3.1.1", "sdm.27.3.1.1.sysenter-canonical")
{
    struct vmx_vcpu *v = eg_vcpu();
    const struct vc_case cs[] = {
        {"guest IA32_SYSENTER_ESP non-canonical",
         VC_GUEST,
         0,
         1,
         {F(VMCS_GUEST_SYSENTER_ESP, VC_NONCANON)}},
        {"guest IA32_SYSENTER_EIP non-canonical",
         VC_GUEST,
         0,
         1,
         {F(VMCS_GUEST_SYSENTER_EIP, VC_NONCANON)}},
    };
    vc_run_all(v, cs, ARRAY_SIZE(cs));
}

PROBE(vmx_entry_guest_pat, "vmx.entry.guest_pat", "VMX",
      "With load IA32_PAT on VM entry, a guest PAT field with memory type 2, 3 or 8 in one entry "
      "makes VM entry fail: exit reason 0x80000021, qualification 0; types 0, 1, 4-7 launch",
      "Intel SDM Vol. 3C 27.3.1.1", "sdm.27.3.1.1.pat")
{
    vmx_require_ctl(VMX_CTL_ENTRY, ENTRY_LOAD_PAT, "load IA32_PAT (entry)");
    struct vmx_vcpu *v = eg_vcpu();
    vmcs_set_bits(VMCS_ENTRY_CTLS, ENTRY_LOAD_PAT);
    uint64_t pat = rdmsr(MSR_IA32_PAT);
    vmcs_write(VMCS_GUEST_PAT, pat);
    const struct vc_case cs[] = {
        {"guest PAT entry 1 = 2", VC_GUEST, 0, 1, {F(VMCS_GUEST_PAT, (pat & ~0xff00ull) | 0x0200)}},
        {"guest PAT entry 7 = 3",
         VC_GUEST,
         0,
         1,
         {F(VMCS_GUEST_PAT, (pat & ~(0xffull << 56)) | (3ull << 56))}},
        {"guest PAT entry 0 = 8", VC_GUEST, 0, 1, {F(VMCS_GUEST_PAT, (pat & ~0xffull) | 8)}},
        {"guest PAT 0x0007050406010000",
         VC_LAUNCH,
         0,
         1,
         {F(VMCS_GUEST_PAT, 0x0007050406010000ull)}},
    };
    vc_run_all(v, cs, ARRAY_SIZE(cs));
}

PROBE(vmx_entry_guest_efer, "vmx.entry.guest_efer", "VMX",
      "With load IA32_EFER on VM entry and an IA-32e mode guest with CR0.PG=1, VM entry with a "
      "guest EFER that sets reserved bit 2, clears LMA, or clears LME fails: exit reason "
      "0x80000021, qualification 0",
      "Intel SDM Vol. 3C 27.3.1.1", "sdm.27.3.1.1.efer-reserved", "sdm.27.3.1.1.efer-lma")
{
    vmx_require_ctl(VMX_CTL_ENTRY, ENTRY_LOAD_EFER, "load IA32_EFER (entry)");
    struct vmx_vcpu *v = eg_vcpu();
    vmcs_set_bits(VMCS_ENTRY_CTLS, ENTRY_LOAD_EFER);
    uint64_t efer = rdmsr(MSR_EFER);
    vmcs_write(VMCS_GUEST_EFER, efer);
    const struct vc_case cs[] = {
        {"guest EFER reserved bit 2", VC_GUEST, 0, 1, {F(VMCS_GUEST_EFER, efer | BIT(2))}},
        {"guest EFER.LMA=0 with IA-32e mode guest",
         VC_GUEST,
         0,
         1,
         {F(VMCS_GUEST_EFER, efer & ~EFER_LMA)}},
        {"guest EFER.LME=0 with LMA=1 and CR0.PG=1",
         VC_GUEST,
         0,
         1,
         {F(VMCS_GUEST_EFER, efer & ~EFER_LME)}},
    };
    vc_run_all(v, cs, ARRAY_SIZE(cs));
}

PROBE(vmx_entry_guest_perf_global, "vmx.entry.guest_perf_global", "VMX",
      "With load IA32_PERF_GLOBAL_CTRL on VM entry, a guest IA32_PERF_GLOBAL_CTRL field with "
      "reserved bit 63 set makes VM entry fail: exit reason 0x80000021, qualification 0; 0 "
      "launches",
      "Intel SDM Vol. 3C 27.3.1.1", "sdm.27.3.1.1.perf-global-ctrl")
{
    vmx_require_ctl(VMX_CTL_ENTRY, ENTRY_LOAD_PERF_GLOBAL, "load IA32_PERF_GLOBAL_CTRL (entry)");
    struct vmx_vcpu *v = eg_vcpu();
    uint32_t e = (uint32_t)vmcs_read(VMCS_ENTRY_CTLS) | ENTRY_LOAD_PERF_GLOBAL;
    const struct vc_case cs[] = {
        {"guest IA32_PERF_GLOBAL_CTRL bit 63",
         VC_GUEST,
         0,
         2,
         {F(VMCS_ENTRY_CTLS, e), F(VMCS_GUEST_PERF_GLOBAL_CTRL, BIT(63))}},
        {"guest IA32_PERF_GLOBAL_CTRL 0",
         VC_LAUNCH,
         0,
         2,
         {F(VMCS_ENTRY_CTLS, e), F(VMCS_GUEST_PERF_GLOBAL_CTRL, 0)}},
    };
    vc_run_all(v, cs, ARRAY_SIZE(cs));
}

PROBE(vmx_entry_guest_bndcfgs, "vmx.entry.guest_bndcfgs", "VMX",
      "With load IA32_BNDCFGS on VM entry, a guest IA32_BNDCFGS field with reserved bit 2 set, or "
      "with a non-canonical base (bits 63:12), makes VM entry fail: exit reason 0x80000021, "
      "qualification 0; 0 launches",
      "Intel SDM Vol. 3C 27.3.1.1", "sdm.27.3.1.1.bndcfgs")
{
    vmx_require_ctl(VMX_CTL_ENTRY, ENTRY_LOAD_BNDCFGS, "load IA32_BNDCFGS");
    struct vmx_vcpu *v = eg_vcpu();
    uint32_t e = (uint32_t)vmcs_read(VMCS_ENTRY_CTLS) | ENTRY_LOAD_BNDCFGS;
    const struct vc_case cs[] = {
        {"guest IA32_BNDCFGS 0",
         VC_LAUNCH,
         0,
         2,
         {F(VMCS_ENTRY_CTLS, e), F(VMCS_GUEST_BNDCFGS, 0)}},
        {"guest IA32_BNDCFGS reserved bit 2",
         VC_GUEST,
         0,
         2,
         {F(VMCS_ENTRY_CTLS, e), F(VMCS_GUEST_BNDCFGS, BIT(2))}},
        {"guest IA32_BNDCFGS non-canonical base",
         VC_GUEST,
         0,
         2,
         {F(VMCS_ENTRY_CTLS, e), F(VMCS_GUEST_BNDCFGS, VC_NONCANON)}},
    };
    vc_run_all(v, cs, ARRAY_SIZE(cs));
}

PROBE(vmx_entry_guest_rflags, "vmx.entry.guest_rflags", "VMX",
      "VM entry with guest RFLAGS reserved bit 3, 5, 22 or 63 set, or with RFLAGS.VM=1 in an "
      "IA-32e mode guest, fails: exit reason 0x80000021, qualification 0",
      "Intel SDM Vol. 3C 27.3.1.4", "sdm.27.3.1.4.rflags-reserved", "sdm.27.3.1.4.rflags-vm")
{
    struct vmx_vcpu *v = eg_vcpu();
    const uint64_t RF = VMCS_GUEST_RFLAGS;
    const struct vc_case cs[] = {
        {"RFLAGS bit 3", VC_GUEST, 0, 1, {F(RF, 0x2 | BIT(3))}},
        {"RFLAGS bit 5", VC_GUEST, 0, 1, {F(RF, 0x2 | BIT(5))}},
        {"RFLAGS bit 22", VC_GUEST, 0, 1, {F(RF, 0x2 | BIT(22))}},
        {"RFLAGS bit 63", VC_GUEST, 0, 1, {F(RF, 0x2 | BIT(63))}},
        {"RFLAGS.VM in an IA-32e mode guest", VC_GUEST, 0, 1, {F(RF, 0x2 | BIT(17))}},
    };
    vc_run_all(v, cs, ARRAY_SIZE(cs));
}

PROBE(vmx_entry_guest_rip, "vmx.entry.guest_rip", "VMX",
      "VM entry of an IA-32e mode guest in compatibility mode (CS.L=0, D=1) with guest RIP bit 32 "
      "set fails (exit reason 0x80000021, qualification 0); with CS.L=1 a non-canonical RIP "
      "(0x0000800000000000, 48-bit linear addresses) fails too",
      "Intel SDM Vol. 3C 27.3.1.4", "sdm.27.3.1.4.rip-high", "sdm.27.3.1.4.rip-canonical")
{
    struct vmx_vcpu *v = eg_vcpu();
    uint64_t rip = vmcs_read(VMCS_GUEST_RIP);
    uint32_t compat = (AR_CODE & ~VMX_AR_L) | VMX_AR_DB;
    if (cpuid(0x80000008, 0).a >> 8 != 48 - 0 && ((cpuid(0x80000008, 0).a >> 8) & 0xff) != 48)
        note("linear-address width %u", (cpuid(0x80000008, 0).a >> 8) & 0xff);
    const struct vc_case cs[] = {
        {"compatibility mode with RIP bit 32",
         VC_GUEST,
         0,
         2,
         {F(AR(S_CS), compat), F(VMCS_GUEST_RIP, rip | BIT(32))}},
        {"64-bit mode with a non-canonical RIP", VC_GUEST, 0, 1, {F(VMCS_GUEST_RIP, VC_NONCANON)}},
    };
    v->watchdog = "the VM-entry failure (0x80000021)";
    vc_run_all(v, cs, ARRAY_SIZE(cs));
}

PROBE(vmx_entry_guest_cs, "vmx.entry.guest_cs", "VMX",
      "Guest CS checks, each a VM-entry failure (0x80000021, qualification 0): type 3 (data); type "
      "10 (code not accessed); S=0; P=0; access-rights bits 11:8 set; L=1 with "
      "D=1; DPL 3 for non-conforming code while SS.DPL=0; G=1 with limit bits 11:0 not all 1; "
      "G=0 with a limit above 0xfffff",
      "Intel SDM Vol. 3C 27.3.1.2", "sdm.27.3.1.2.cs-type", "sdm.27.3.1.2.s-bit",
      "sdm.27.3.1.2.present", "sdm.27.3.1.2.ar-reserved", "sdm.27.3.1.2.cs-l-db",
      "sdm.27.3.1.2.cs-dpl", "sdm.27.3.1.2.granularity")
{
    struct vmx_vcpu *v = eg_vcpu();
    const uint64_t A = AR(S_CS), L = LIMIT(S_CS);
    const struct vc_case cs[] = {
        {"CS type 3 (data)", VC_GUEST, 0, 1, {F(A, (AR_CODE & ~0xf) | 3)}},
        {"CS type 10 (not accessed)", VC_GUEST, 0, 1, {F(A, (AR_CODE & ~0xf) | 10)}},
        {"CS S=0", VC_GUEST, 0, 1, {F(A, AR_CODE & ~VMX_AR_S)}},
        {"CS P=0", VC_GUEST, 0, 1, {F(A, AR_CODE & ~VMX_AR_P)}},
        {"CS access rights bit 8", VC_GUEST, 0, 1, {F(A, AR_CODE | BIT(8))}},
        {"CS L=1 and D=1", VC_GUEST, 0, 1, {F(A, AR_CODE | VMX_AR_DB)}},
        {"CS DPL 3 (non-conforming, SS.DPL 0)", VC_GUEST, 0, 1, {F(A, AR_CODE | VMX_AR_DPL(3))}},
        {"CS G=1 with limit 0xfffff000", VC_GUEST, 0, 1, {F(L, 0xfffff000u)}},
        {"CS G=0 with limit 0x100000", VC_GUEST, 0, 2, {F(A, AR_CODE & ~VMX_AR_G), F(L, 0x100000)}},
    };
    v->watchdog = "the VM-entry failure (0x80000021)";
    vc_run_all(v, cs, ARRAY_SIZE(cs));
}

PROBE(vmx_entry_guest_ss, "vmx.entry.guest_ss", "VMX",
      "Guest SS checks, each a VM-entry failure (0x80000021, qualification 0): SS selector RPL 1 "
      "while CS.RPL=0; SS type 11 (code); SS DPL 3 with RPL 0; SS usable with P=0. An unusable SS "
      "(selector 0) in a 64-bit guest launches",
      "Intel SDM Vol. 3C 27.3.1.2", "sdm.27.3.1.2.ss-rpl-cs-rpl", "sdm.27.3.1.2.ss-type",
      "sdm.27.3.1.2.ss-dpl", "sdm.27.3.1.2.present")
{
    struct vmx_vcpu *v = eg_vcpu();
    const uint64_t A = AR(S_SS);
    const struct vc_case cs[] = {
        {"SS.RPL 1, CS.RPL 0", VC_GUEST, 0, 1, {F(SEL(S_SS), SEL_DATA | 1)}},
        {"SS type 11 (code)", VC_GUEST, 0, 1, {F(A, (AR_DATA & ~0xf) | 11)}},
        {"SS DPL 3, RPL 0", VC_GUEST, 0, 1, {F(A, AR_DATA | VMX_AR_DPL(3))}},
        {"SS P=0", VC_GUEST, 0, 1, {F(A, AR_DATA & ~VMX_AR_P)}},
        {"SS unusable, selector 0", VC_LAUNCH, 0, 2, {F(SEL(S_SS), 0), F(A, VMX_AR_UNUSABLE)}},
    };
    vc_run_all(v, cs, ARRAY_SIZE(cs));
}

PROBE(vmx_entry_guest_data_segs, "vmx.entry.guest_data_segs", "VMX",
      "Guest DS/ES/FS/GS checks, each a VM-entry failure (0x80000021, qualification 0) for a "
      "usable segment: DS type 2 (not accessed); DS type 8 (execute-only code); DS S=0; DS P=0; "
      "DS DPL 0 below its selector's RPL 3; ES access-rights bit 17 set; GS G=1 with limit "
      "0xffff0000. An unusable ES with type 0 and an FS of readable code (type 11) launch",
      "Intel SDM Vol. 3C 27.3.1.2", "sdm.27.3.1.2.data-type", "sdm.27.3.1.2.s-bit",
      "sdm.27.3.1.2.present", "sdm.27.3.1.2.data-dpl", "sdm.27.3.1.2.ar-reserved",
      "sdm.27.3.1.2.granularity")
{
    struct vmx_vcpu *v = eg_vcpu();
    const uint64_t A = AR(S_DS);
    const struct vc_case cs[] = {
        {"DS type 2 (not accessed)", VC_GUEST, 0, 1, {F(A, (AR_DATA & ~0xf) | 2)}},
        {"DS type 8 (execute-only code)", VC_GUEST, 0, 1, {F(A, (AR_DATA & ~0xf) | 8)}},
        {"DS S=0", VC_GUEST, 0, 1, {F(A, AR_DATA & ~VMX_AR_S)}},
        {"DS P=0", VC_GUEST, 0, 1, {F(A, AR_DATA & ~VMX_AR_P)}},
        {"DS DPL 0 with selector RPL 3", VC_GUEST, 0, 1, {F(SEL(S_DS), SEL_DATA | 3)}},
        {"ES access rights bit 17", VC_GUEST, 0, 1, {F(AR(S_ES), AR_DATA | BIT(17))}},
        {"GS G=1 with limit 0xffff0000",
         VC_GUEST,
         0,
         4,
         {F(SEL(S_GS), SEL_DATA), F(AR(S_GS), AR_DATA), F(LIMIT(S_GS), 0xffff0000u),
          F(BASE(S_GS), vmcs_read(BASE(S_GS)))}},
        {"ES unusable with type 0",
         VC_LAUNCH,
         0,
         2,
         {F(SEL(S_ES), 0), F(AR(S_ES), VMX_AR_UNUSABLE)}},
        {"FS readable code (type 11)",
         VC_LAUNCH,
         0,
         3,
         {F(SEL(S_FS), SEL_DATA), F(AR(S_FS), (AR_DATA & ~0xf) | 11), F(LIMIT(S_FS), 0xffffffffu)}},
    };
    vc_run_all(v, cs, ARRAY_SIZE(cs));
}

PROBE(vmx_entry_guest_seg_bases, "vmx.entry.guest_seg_bases", "VMX",
      "Guest segment bases, each a VM-entry failure (0x80000021, qualification 0): FS or GS base "
      "non-canonical; CS base bit 32; usable SS base bit 32; usable DS base bit 40. An unusable "
      "ES with base bit 40 launches",
      "Intel SDM Vol. 3C 27.3.1.2", "sdm.27.3.1.2.base-canonical", "sdm.27.3.1.2.base-high-zero")
{
    struct vmx_vcpu *v = eg_vcpu();
    const struct vc_case cs[] = {
        {"FS base non-canonical", VC_GUEST, 0, 1, {F(BASE(S_FS), VC_NONCANON)}},
        {"GS base non-canonical", VC_GUEST, 0, 1, {F(BASE(S_GS), VC_NONCANON)}},
        {"CS base bit 32", VC_GUEST, 0, 1, {F(BASE(S_CS), BIT(32))}},
        {"SS base bit 32", VC_GUEST, 0, 1, {F(BASE(S_SS), BIT(32))}},
        {"DS base bit 40", VC_GUEST, 0, 1, {F(BASE(S_DS), BIT(40))}},
        {"unusable ES with base bit 40",
         VC_LAUNCH,
         0,
         3,
         {F(SEL(S_ES), 0), F(AR(S_ES), VMX_AR_UNUSABLE), F(BASE(S_ES), BIT(40))}},
    };
    vc_run_all(v, cs, ARRAY_SIZE(cs));
}

PROBE(vmx_entry_guest_tr, "vmx.entry.guest_tr", "VMX",
      "Guest TR checks, each a VM-entry failure (0x80000021, qualification 0): TR unusable; "
      "selector TI=1; type 9 (available 64-bit TSS); type 3 (16-bit busy TSS) in an IA-32e mode "
      "guest; S=1; P=0; access-rights bit 8; base non-canonical; G=1 with limit bits 11:0 not "
      "all 1",
      "Intel SDM Vol. 3C 27.3.1.2", "sdm.27.3.1.2.tr-ti", "sdm.27.3.1.2.tr-type",
      "sdm.27.3.1.2.tr-ar", "sdm.27.3.1.2.base-canonical")
{
    struct vmx_vcpu *v = eg_vcpu();
    uint32_t ar = (uint32_t)vmcs_read(AR(S_TR));
    uint64_t sel = vmcs_read(SEL(S_TR)), lim = vmcs_read(LIMIT(S_TR));
    const uint64_t A = AR(S_TR);
    const struct vc_case cs[] = {
        {"TR unusable", VC_GUEST, 0, 1, {F(A, ar | VMX_AR_UNUSABLE)}},
        {"TR selector TI=1", VC_GUEST, 0, 1, {F(SEL(S_TR), sel | 4)}},
        {"TR type 9 (available)", VC_GUEST, 0, 1, {F(A, (ar & ~0xf) | 9)}},
        {"TR type 3 (16-bit busy) in IA-32e mode", VC_GUEST, 0, 1, {F(A, (ar & ~0xf) | 3)}},
        {"TR S=1", VC_GUEST, 0, 1, {F(A, ar | VMX_AR_S)}},
        {"TR P=0", VC_GUEST, 0, 1, {F(A, ar & ~VMX_AR_P)}},
        {"TR access rights bit 8", VC_GUEST, 0, 1, {F(A, ar | BIT(8))}},
        {"TR base non-canonical", VC_GUEST, 0, 1, {F(BASE(S_TR), VC_NONCANON)}},
        {"TR G=1 with limit bits 11:0 not all 1",
         VC_GUEST,
         0,
         2,
         {F(A, ar | VMX_AR_G), F(LIMIT(S_TR), (lim | 0xfff) & ~1ull)}},
    };
    vc_run_all(v, cs, ARRAY_SIZE(cs));
}

#define AR_LDT (VMX_AR_TYPE(2) | VMX_AR_P)

PROBE(vmx_entry_guest_ldtr, "vmx.entry.guest_ldtr", "VMX",
      "Guest LDTR checks for a usable LDTR, each a VM-entry failure (0x80000021, qualification "
      "0): type 3; selector TI=1; S=1; P=0; base non-canonical. A usable LDT (type 2, P=1, "
      "selector 0x20, limit 0xfff) launches",
      "Intel SDM Vol. 3C 27.3.1.2", "sdm.27.3.1.2.ldtr-ti", "sdm.27.3.1.2.ldtr-ar",
      "sdm.27.3.1.2.base-canonical")
{
    struct vmx_vcpu *v = eg_vcpu();
    const uint64_t S = SEL(S_LDTR), A = AR(S_LDTR), L = LIMIT(S_LDTR), B = BASE(S_LDTR);
    uint64_t base = (uintptr_t)alloc_page();
    const struct vc_case cs[] = {
        {"usable LDT", VC_LAUNCH, 0, 4, {F(S, 0x20), F(A, AR_LDT), F(L, 0xfff), F(B, base)}},
        {"LDTR type 3",
         VC_GUEST,
         0,
         4,
         {F(S, 0x20), F(A, (AR_LDT & ~0xf) | 3), F(L, 0xfff), F(B, base)}},
        {"LDTR selector TI=1", VC_GUEST, 0, 4, {F(S, 0x24), F(A, AR_LDT), F(L, 0xfff), F(B, base)}},
        {"LDTR S=1",
         VC_GUEST,
         0,
         4,
         {F(S, 0x20), F(A, AR_LDT | VMX_AR_S), F(L, 0xfff), F(B, base)}},
        {"LDTR P=0",
         VC_GUEST,
         0,
         4,
         {F(S, 0x20), F(A, AR_LDT & ~VMX_AR_P), F(L, 0xfff), F(B, base)}},
        {"LDTR base non-canonical",
         VC_GUEST,
         0,
         4,
         {F(S, 0x20), F(A, AR_LDT), F(L, 0xfff), F(B, VC_NONCANON)}},
    };
    vc_run_all(v, cs, ARRAY_SIZE(cs));
}

PROBE(vmx_entry_guest_gdtr_idtr, "vmx.entry.guest_gdtr_idtr", "VMX",
      "VM entry with a non-canonical guest GDTR or IDTR base, or with a GDTR or IDTR limit of "
      "0x10000 (bits 31:16 must be 0), fails: exit reason 0x80000021, qualification 0",
      "Intel SDM Vol. 3C 27.3.1.3", "sdm.27.3.1.3.base-canonical", "sdm.27.3.1.3.limit-high")
{
    struct vmx_vcpu *v = eg_vcpu();
    const struct vc_case cs[] = {
        {"GDTR base non-canonical", VC_GUEST, 0, 1, {F(VMCS_GUEST_GDTR_BASE, VC_NONCANON)}},
        {"IDTR base non-canonical", VC_GUEST, 0, 1, {F(VMCS_GUEST_IDTR_BASE, VC_NONCANON)}},
        {"GDTR limit 0x10000", VC_GUEST, 0, 1, {F(VMCS_GUEST_GDTR_LIMIT, 0x10000)}},
        {"IDTR limit 0x10000", VC_GUEST, 0, 1, {F(VMCS_GUEST_IDTR_LIMIT, 0x10000)}},
    };
    vc_run_all(v, cs, ARRAY_SIZE(cs));
}

PROBE(vmx_entry_guest_pending_dbg, "vmx.entry.guest_pending_dbg", "VMX",
      "VM entry with reserved bit 4 or bit 40 set in the guest pending debug exceptions field "
      "fails: exit reason 0x80000021, qualification 0; so does the RTM bit (16) without enabled "
      "breakpoint (bit 12), or with bits 12 and 0 (B0); B0 (bit 0) alone launches; B0 with "
      "enabled breakpoint (bit 12) is delivered to the guest as #DB (vector 1 through its IDT)",
      "Intel SDM Vol. 3C 27.3.1.5, 27.7.3", "sdm.27.3.1.5.pending-dbg-reserved",
      "sdm.27.7.3.pending-dbg", "sdm.27.3.1.5.pending-dbg-rtm")
{
    struct vmx_vcpu *v = eg_vcpu();
    vmx_guest_idt(v); /* a #DB delivered from the pending B0 ends in a VMCALL */
    vmcs_clear_bits(VMCS_EXCEPTION_BITMAP, BIT(DB_VECTOR));
    const uint64_t PD = VMCS_GUEST_PENDING_DBG;
    const struct vc_case cs[] = {
        {"pending debug exceptions bit 4", VC_GUEST, 0, 1, {F(PD, BIT(4))}},
        {"pending debug exceptions bit 40", VC_GUEST, 0, 1, {F(PD, BIT(40))}},
        /* RTM (bit 16) needs bit 12 set and bits 11:0 clear, whether or not RTM exists */
        {"pending debug exceptions RTM without bit 12", VC_GUEST, 0, 1, {F(PD, BIT(16))}},
        {"pending debug exceptions RTM with bits 12 and 0",
         VC_GUEST,
         0,
         1,
         {F(PD, BIT(16) | BIT(12) | BIT(0))}},
        {"pending debug exceptions B0", VC_LAUNCH, 0, 1, {F(PD, BIT(0))}},
    };
    vc_run_all(v, cs, ARRAY_SIZE(cs));
    /* B0 with enabled breakpoint (bit 12): a #DB is pending and is delivered through the
     * guest IDT right after the entry */
    vmcs_write(PD, BIT(12) | BIT(0));
    v->launched = 0;
    if (vmx_run_expect(v, EXIT_VMCALL, "VM entry with pending B0 and enabled breakpoint")) {
        check_eq("guest handler's VMCALL: RAX (an event)", v->gpr[VMX_GPR_RAX], VMX_GUEST_EVENT);
        check_eq("vector delivered for the pending debug exception", v->gpr[VMX_GPR_RBX],
                 DB_VECTOR);
    }
}

PROBE(vmx_entry_guest_pending_dbg_bs, "vmx.entry.guest_pending_dbg_bs", "VMX",
      "With blocking by STI (RFLAGS.IF=1) and IA32_DEBUGCTL.BTF=0: RFLAGS.TF=1 with the BS bit "
      "(14) of the pending debug exceptions clear, or RFLAGS.TF=0 with BS set, makes VM entry "
      "fail: exit reason 0x80000021, qualification 0",
      "Intel SDM Vol. 3C 27.3.1.5", "sdm.27.3.1.5.pending-dbg-bs")
{
    struct vmx_vcpu *v = eg_vcpu();
    vmx_guest_idt(v); /* a #DB delivered by mistake ends in a VMCALL */
    vmcs_clear_bits(VMCS_EXCEPTION_BITMAP, BIT(DB_VECTOR));
    const uint64_t PD = VMCS_GUEST_PENDING_DBG, RF = VMCS_GUEST_RFLAGS,
                   IS = VMCS_GUEST_INTERRUPTIBILITY;
    const struct vc_case cs[] = {
        {"TF=1, BTF=0, blocking by STI, BS=0",
         VC_GUEST,
         0,
         3,
         {F(RF, 0x302), F(IS, INTERRUPTIBILITY_STI), F(PD, 0)}},
        {"TF=0, blocking by STI, BS=1",
         VC_GUEST,
         0,
         3,
         {F(RF, 0x202), F(IS, INTERRUPTIBILITY_STI), F(PD, BIT(14))}},
        {"TF=1, BTF=0, blocking by STI, BS=1",
         VC_LAUNCH,
         0,
         3,
         {F(RF, 0x302), F(IS, INTERRUPTIBILITY_STI), F(PD, BIT(14))}},
    };
    vc_run_all(v, cs, ARRAY_SIZE(cs));
}

PROBE(vmx_entry_guest_link_ptr, "vmx.entry.guest_link_ptr", "VMX",
      "VM entry with a VMCS link pointer at 1 << MAXPHYADDR fails with exit reason 0x80000021 and "
      "qualification 4; with VMCS shadowing = 1, a link pointer to a region whose revision id is "
      "wrong, or whose shadow-VMCS indicator (bit 31) is clear, fails the same way; a shadow VMCS "
      "(revision id | bit 31) launches",
      "Intel SDM Vol. 3C 27.3.1.5, 27.8, 25.10", "sdm.27.3.1.5.link-pointer",
      "sdm.27.8.failed-entry-qualification")
{
    struct vmx_vcpu *v = eg_vcpu();
    const uint64_t LP = VMCS_LINK_PTR;
    struct vc_case cs[4] = {
        {"link pointer at 1 << MAXPHYADDR",
         VC_GUEST,
         ENTRY_FAIL_QUAL_LINK_PTR,
         1,
         {F(LP, vc_beyond_maxphy())}},
    };
    unsigned n = 1;
    if (vmx_ctl_can_set(VMX_CTL_PROC2, PROC2_VMCS_SHADOWING) &&
        vmx_ctl_can_set(VMX_CTL_PROC, PROC_SECONDARY_CTLS)) {
        uint32_t rev = VMX_BASIC_REVISION(vmx_caps()->basic);
        uint32_t *good = alloc_page(), *norev = alloc_page(), *noshadow = alloc_page();
        good[0] = rev | 0x80000000u;
        norev[0] = (rev ^ 1) | 0x80000000u;
        noshadow[0] = rev;
        uint64_t p = vmcs_read(VMCS_PROC_CTLS) | PROC_SECONDARY_CTLS;
        uint64_t p2 = vmcs_read(VMCS_PROC_CTLS2) | PROC2_VMCS_SHADOWING;
        vmcs_write(VMCS_VMREAD_BITMAP, (uintptr_t)alloc_page());
        vmcs_write(VMCS_VMWRITE_BITMAP, (uintptr_t)alloc_page());
        cs[n++] = (struct vc_case){"shadowing, link pointer to a shadow VMCS",
                                   VC_LAUNCH,
                                   0,
                                   3,
                                   {F(VMCS_PROC_CTLS, p), F(VMCS_PROC_CTLS2, p2),
                                    F(LP, (uintptr_t)good)}};
        cs[n++] = (struct vc_case){"shadowing, link pointer to a wrong revision id",
                                   VC_GUEST,
                                   ENTRY_FAIL_QUAL_LINK_PTR,
                                   3,
                                   {F(VMCS_PROC_CTLS, p), F(VMCS_PROC_CTLS2, p2),
                                    F(LP, (uintptr_t)norev)}};
        cs[n++] = (struct vc_case){"shadowing, link pointer without the shadow indicator",
                                   VC_GUEST,
                                   ENTRY_FAIL_QUAL_LINK_PTR,
                                   3,
                                   {F(VMCS_PROC_CTLS, p), F(VMCS_PROC_CTLS2, p2),
                                    F(LP, (uintptr_t)noshadow)}};
    } else {
        note("VMCS shadowing not allowed: the shadow cases not tried");
    }
    vc_run_all(v, cs, n);
}

PROBE(vmx_entry_guest_msr_load, "vmx.entry.guest_msr_load", "VMX",
      "VM-entry MSR loading fails with exit reason 0x80000022 and the 1-based index of the bad "
      "entry as qualification for: an entry with reserved bits 63:32 of its first quadword set; "
      "an x2APIC MSR (0x808); IA32_SMM_MONITOR_CTL (0x9b); IA32_GS_BASE; a non-canonical "
      "IA32_KERNEL_GS_BASE (WRMSR would #GP); MSR 0x2ff0 where WRMSR of it faults; each as entry 2 "
      "after a valid IA32_SYSENTER_CS entry",
      "Intel SDM Vol. 3C 27.4, 27.8", "sdm.27.4.msr-load-fs-gs-base", "sdm.27.4.msr-load-x2apic",
      "sdm.27.4.msr-load-smm-monitor", "sdm.27.4.msr-load-reserved", "sdm.27.4.msr-load-gp",
      "sdm.27.8.msr-load-failure")
{
    struct vmx_vcpu *v = eg_vcpu();
    static const struct {
        uint32_t index, hi;
        uint64_t val;
        const char *what;
    } bad[] = {
        {MSR_IA32_SYSENTER_CS, 1, 0, "entry 2 with reserved bits 63:32 set"},
        {0x808, 0, 0, "entry 2: x2APIC TPR (0x808)"},
        {0x9b, 0, 0, "entry 2: IA32_SMM_MONITOR_CTL"},
        {MSR_GS_BASE, 0, 0, "entry 2: IA32_GS_BASE"},
        {MSR_KERNEL_GS_BASE, 0, VC_NONCANON, "entry 2: IA32_KERNEL_GS_BASE non-canonical"},
        {0x2ff0, 0, 0, "entry 2: MSR 0x2ff0 (none)"},
    };
    struct vc_case cs[ARRAY_SIZE(bad)];
    unsigned n = 0;
    for (unsigned i = 0; i < ARRAY_SIZE(bad); i++) {
        if (bad[i].index == 0x2ff0 && wrmsr_safe(0x2ff0, 0) == NO_FAULT) {
            note("WRMSR of MSR 0x2ff0 does not fault here: that case not tried");
            continue;
        }
        uint32_t *list = alloc_page();
        list[0] = MSR_IA32_SYSENTER_CS;
        list[4] = bad[i].index;
        list[5] = bad[i].hi;
        list[6] = (uint32_t)bad[i].val;
        list[7] = (uint32_t)(bad[i].val >> 32);
        cs[n++] = (struct vc_case){bad[i].what,
                                   VC_ENTRY(EXIT_MSR_LOAD_FAIL),
                                   2,
                                   2,
                                   {F(VMCS_ENTRY_MSR_LOAD_ADDR, (uintptr_t)list),
                                    F(VMCS_ENTRY_MSR_LOAD_COUNT, 2)}};
    }
    note("WRMSR of IA32_SMM_MONITOR_CTL (0x9b) outside VMX non-root: %s",
         wrmsr_safe(0x9b, 0) == NO_FAULT ? "no fault" : "faults");
    vc_run_all(v, cs, n);
}
