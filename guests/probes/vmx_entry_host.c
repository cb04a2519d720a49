/* SPDX-License-Identifier: MIT */
/*
 * VM entry: the checks on the host-state area (SDM Vol. 3C 27.2.2-27.2.4),
 * each failing with VMfailValid(8), and host state they allow, which
 * launches.
 */
#include "vmx_cases.h"

GUEST(vmx_eh_loop_guest, "1: vmcall", "jmp 1b");

#define F(field, val)  \
    {                  \
        (field), (val) \
    }

static struct vmx_vcpu *eh_vcpu(void)
{
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_eh_loop_guest);
    vc_baseline(v);
    return v;
}

/* the lowest bit set in m, or 0 */
static uint64_t low_bit(uint64_t m) { return m & -m; }

PROBE(vmx_entry_host_cr0_cr4, "vmx.entry.host_cr0_cr4", "VMX",
      "VMLAUNCH with a host CR0 that lacks a bit IA32_VMX_CR0_FIXED0 requires (PE, and NE), with a "
      "host CR0 or CR4 bit set that IA32_VMX_CR0_FIXED1 / CR4_FIXED1 does not allow, or with host "
      "CR4.PAE=0 while the host address-space size is 1, or (where CR4_FIXED1 allows CET) with "
      "host CR4.CET=1 but CR0.WP=0, gives VMfailValid(8)",
      "Intel SDM Vol. 3C 27.2.2, 27.2.4, A.7, A.8", "sdm.27.2.2.host-cr0-fixed",
      "sdm.27.2.2.host-cr4-fixed", "sdm.27.2.4.host-size-1", "sdm.27.2.2.host-cr4-cet-wp")
{
    struct vmx_vcpu *v = eh_vcpu();
    const struct vmx_caps *c = vmx_caps();
    uint64_t cr0 = vmcs_read(VMCS_HOST_CR0), cr4 = vmcs_read(VMCS_HOST_CR4);
    uint64_t cr0_bad1 = low_bit(~c->cr0_fixed1), cr4_bad1 = low_bit(~c->cr4_fixed1);
    note("CR0 bit %#llx and CR4 bit %#llx are fixed to 0", (unsigned long long)cr0_bad1,
         (unsigned long long)cr4_bad1);
    struct vc_case cs[6] = {
        {"host CR0.PE=0", VC_HOST, 0, 1, {F(VMCS_HOST_CR0, cr0 & ~CR0_PE)}},
        {"host CR0.NE=0", VC_HOST, 0, 1, {F(VMCS_HOST_CR0, cr0 & ~CR0_NE)}},
        {"host CR4.PAE=0 with host address-space size 1",
         VC_HOST,
         0,
         1,
         {F(VMCS_HOST_CR4, cr4 & ~CR4_PAE)}},
    };
    unsigned n = 3;
    if (cr0_bad1)
        cs[n++] = (struct vc_case){"host CR0 with a FIXED1-zero bit",
                                   VC_HOST,
                                   0,
                                   1,
                                   {F(VMCS_HOST_CR0, cr0 | cr0_bad1)}};
    if ((c->cr4_fixed1 & CR4_CET) && !(c->cr0_fixed0 & CR0_WP))
        cs[n++] =
            (struct vc_case){"host CR4.CET=1 with CR0.WP=0",
                             VC_HOST,
                             0,
                             2,
                             {F(VMCS_HOST_CR0, cr0 & ~CR0_WP), F(VMCS_HOST_CR4, cr4 | CR4_CET)}};
    else
        note("CR4.CET=1 with CR0.WP=0 not tried: CR4_FIXED1 %#llx, CR0_FIXED0 %#llx",
             (unsigned long long)c->cr4_fixed1, (unsigned long long)c->cr0_fixed0);
    if (cr4_bad1)
        cs[n++] = (struct vc_case){"host CR4 with a FIXED1-zero bit",
                                   VC_HOST,
                                   0,
                                   1,
                                   {F(VMCS_HOST_CR4, cr4 | cr4_bad1)}};
    vc_run_all(v, cs, n);
}

PROBE(vmx_entry_host_cr3, "vmx.entry.host_cr3", "VMX",
      "VMLAUNCH with a host CR3 with bit MAXPHYADDR set gives VMfailValid(8)",
      "Intel SDM Vol. 3C 27.2.2", "sdm.27.2.2.host-cr3-width")
{
    struct vmx_vcpu *v = eh_vcpu();
    const struct vc_case cs[] = {
        {"host CR3 beyond MAXPHYADDR",
         VC_HOST,
         0,
         1,
         {F(VMCS_HOST_CR3, vmcs_read(VMCS_HOST_CR3) | vc_beyond_maxphy())}},
    };
    vc_run_all(v, cs, ARRAY_SIZE(cs));
}

PROBE(vmx_entry_host_selectors, "vmx.entry.host_selectors", "VMX",
      "VMLAUNCH with the RPL or TI bit set in a host selector field (ES TI, CS RPL 1, DS RPL 2, FS "
      "RPL 1, GS TI, TR RPL 1) gives VMfailValid(8); host SS selector 0 with host address-space "
      "size 1 is allowed and launches",
      "Intel SDM Vol. 3C 27.2.3", "sdm.27.2.3.host-selector-rpl-ti", "sdm.27.2.3.host-ss-nonzero")
{
    struct vmx_vcpu *v = eh_vcpu();
    uint64_t cs_sel = vmcs_read(VMCS_HOST_CS_SEL), ss = vmcs_read(VMCS_HOST_SS_SEL),
             tr = vmcs_read(VMCS_HOST_TR_SEL);
    const struct vc_case cs[] = {
        {"host ES selector with TI=1", VC_HOST, 0, 1, {F(VMCS_HOST_ES_SEL, ss | 4)}},
        {"host CS selector with RPL 1", VC_HOST, 0, 1, {F(VMCS_HOST_CS_SEL, cs_sel | 1)}},
        {"host DS selector with RPL 2", VC_HOST, 0, 1, {F(VMCS_HOST_DS_SEL, ss | 2)}},
        {"host FS selector with RPL 1", VC_HOST, 0, 1, {F(VMCS_HOST_FS_SEL, ss | 1)}},
        {"host GS selector with TI=1", VC_HOST, 0, 1, {F(VMCS_HOST_GS_SEL, ss | 4)}},
        {"host TR selector with RPL 1", VC_HOST, 0, 1, {F(VMCS_HOST_TR_SEL, tr | 1)}},
        {"host SS selector 0 (64-bit host)", VC_LAUNCH, 0, 1, {F(VMCS_HOST_SS_SEL, 0)}},
    };
    vc_run_all(v, cs, ARRAY_SIZE(cs));
}

PROBE(vmx_entry_host_canonical, "vmx.entry.host_canonical", "VMX",
      "VMLAUNCH with a non-canonical address (0x0000800000000000) in the host FS base, GS base, "
      "TR base, GDTR base, IDTR base, IA32_SYSENTER_ESP, IA32_SYSENTER_EIP or RIP field gives "
      "VMfailValid(8)",
      "Intel SDM Vol. 3C 27.2.2, 27.2.3, 27.2.4", "sdm.27.2.3.host-base-canonical",
      "sdm.27.2.2.host-sysenter-canonical")
{
    struct vmx_vcpu *v = eh_vcpu();
    const uint64_t nc = VC_NONCANON;
    const struct vc_case cs[] = {
        {"host FS base non-canonical", VC_HOST, 0, 1, {F(VMCS_HOST_FS_BASE, nc)}},
        {"host GS base non-canonical", VC_HOST, 0, 1, {F(VMCS_HOST_GS_BASE, nc)}},
        {"host TR base non-canonical", VC_HOST, 0, 1, {F(VMCS_HOST_TR_BASE, nc)}},
        {"host GDTR base non-canonical", VC_HOST, 0, 1, {F(VMCS_HOST_GDTR_BASE, nc)}},
        {"host IDTR base non-canonical", VC_HOST, 0, 1, {F(VMCS_HOST_IDTR_BASE, nc)}},
        {"host IA32_SYSENTER_ESP non-canonical", VC_HOST, 0, 1, {F(VMCS_HOST_SYSENTER_ESP, nc)}},
        {"host IA32_SYSENTER_EIP non-canonical", VC_HOST, 0, 1, {F(VMCS_HOST_SYSENTER_EIP, nc)}},
    };
    vc_run_all(v, cs, ARRAY_SIZE(cs));
}

/* vmx_enter() writes HOST_RIP itself: a bad host RIP is tried with our own VMLAUNCH */
static uint64_t eh_launch_rflags(void)
{
    uint64_t rf;
    __asm__ volatile("vmlaunch\n\t"
                     "pushf\n\t"
                     "pop %0"
                     : "=r"(rf)
                     :
                     : "cc", "memory");
    return rf;
}

PROBE(vmx_entry_host_rip, "vmx.entry.host_rip", "VMX",
      "VMLAUNCH with a non-canonical host RIP (0x0000800000000000, host address-space size 1) "
      "gives VMfailValid(8) (ZF=1, error field 8) and falls through to the next instruction",
      "Intel SDM Vol. 3C 27.2.4", "sdm.27.2.4.host-size-1", "sdm.27.1.host-check-error")
{
    vmx_on();
    (void)vmx_vcpu_new(vmx_eh_loop_guest);
    vmcs_write(VMCS_HOST_RSP, 0x1000);
    vmcs_write(VMCS_HOST_RIP, VC_NONCANON);
    uint64_t rf = eh_launch_rflags();
    check((rf & 0x41) == 0x40, "RFLAGS after VMLAUNCH: %#llx, want ZF=1 CF=0 (VMfailValid)",
          (unsigned long long)rf);
    check_eq("VM-instruction error", vmcs_read(VMCS_INSN_ERROR), VMXERR_ENTRY_BAD_HOST);
}

PROBE(vmx_entry_host_pat, "vmx.entry.host_pat", "VMX",
      "With load IA32_PAT on VM exit, VMLAUNCH with a host PAT field holding memory type 2, 3 or "
      "8 in one entry gives VMfailValid(8); types 0, 1, 4, 5, 6, 7 launch",
      "Intel SDM Vol. 3C 27.2.2", "sdm.27.2.2.host-pat")
{
    vmx_require_ctl(VMX_CTL_EXIT, EXIT_LOAD_PAT, "load IA32_PAT (exit)");
    struct vmx_vcpu *v = eh_vcpu();
    vmcs_set_bits(VMCS_EXIT_CTLS, EXIT_LOAD_PAT);
    uint64_t pat = rdmsr(MSR_IA32_PAT);
    vmcs_write(VMCS_HOST_PAT, pat);
    const struct vc_case cs[] = {
        {"host PAT entry 1 = 2", VC_HOST, 0, 1, {F(VMCS_HOST_PAT, (pat & ~0xff00ull) | 0x0200)}},
        {"host PAT entry 7 = 3",
         VC_HOST,
         0,
         1,
         {F(VMCS_HOST_PAT, (pat & ~(0xffull << 56)) | (3ull << 56))}},
        {"host PAT entry 0 = 8", VC_HOST, 0, 1, {F(VMCS_HOST_PAT, (pat & ~0xffull) | 8)}},
        {"host PAT 0x0007050406010000 (types 0,1,4,5,6,7)",
         VC_LAUNCH,
         0,
         1,
         {F(VMCS_HOST_PAT, 0x0007050406010000ull)}},
    };
    vc_run_all(v, cs, ARRAY_SIZE(cs));
}

PROBE(vmx_entry_host_efer, "vmx.entry.host_efer", "VMX",
      "With load IA32_EFER on VM exit and host address-space size 1, VMLAUNCH with a host EFER "
      "that sets reserved bit 2, or clears LMA, or clears LME, gives VMfailValid(8)",
      "Intel SDM Vol. 3C 27.2.2", "sdm.27.2.2.host-efer")
{
    vmx_require_ctl(VMX_CTL_EXIT, EXIT_LOAD_EFER, "load IA32_EFER (exit)");
    struct vmx_vcpu *v = eh_vcpu();
    vmcs_set_bits(VMCS_EXIT_CTLS, EXIT_LOAD_EFER);
    uint64_t efer = rdmsr(MSR_EFER);
    vmcs_write(VMCS_HOST_EFER, efer);
    const struct vc_case cs[] = {
        {"host EFER reserved bit 2", VC_HOST, 0, 1, {F(VMCS_HOST_EFER, efer | BIT(2))}},
        {"host EFER.LMA=0", VC_HOST, 0, 1, {F(VMCS_HOST_EFER, efer & ~EFER_LMA)}},
        {"host EFER.LME=0", VC_HOST, 0, 1, {F(VMCS_HOST_EFER, efer & ~EFER_LME)}},
        {"host EFER as the host runs", VC_LAUNCH, 0, 1, {F(VMCS_HOST_EFER, efer)}},
    };
    vc_run_all(v, cs, ARRAY_SIZE(cs));
}

PROBE(vmx_entry_host_perf_global, "vmx.entry.host_perf_global", "VMX",
      "With load IA32_PERF_GLOBAL_CTRL on VM exit, VMLAUNCH with bit 63 (reserved) set in the "
      "host IA32_PERF_GLOBAL_CTRL field gives VMfailValid(8); 0 launches",
      "Intel SDM Vol. 3C 27.2.2", "sdm.27.2.2.host-perf-global-ctrl")
{
    vmx_require_ctl(VMX_CTL_EXIT, EXIT_LOAD_PERF_GLOBAL, "load IA32_PERF_GLOBAL_CTRL (exit)");
    struct vmx_vcpu *v = eh_vcpu();
    vmcs_set_bits(VMCS_EXIT_CTLS, EXIT_LOAD_PERF_GLOBAL);
    const struct vc_case cs[] = {
        {"host IA32_PERF_GLOBAL_CTRL bit 63",
         VC_HOST,
         0,
         1,
         {F(VMCS_HOST_PERF_GLOBAL_CTRL, BIT(63))}},
        {"host IA32_PERF_GLOBAL_CTRL 0", VC_LAUNCH, 0, 1, {F(VMCS_HOST_PERF_GLOBAL_CTRL, 0)}},
    };
    vc_run_all(v, cs, ARRAY_SIZE(cs));
}
