/* SPDX-License-Identifier: MIT */
/*
 * VM entry: every reserved bit of every control field, sub-page write
 * permissions, and activity-state checks that need a CPL-3 guest state or
 * the shutdown state.
 */
#include "vmx_cases.h"

GUEST(vmx_em_loop_guest, "1: vmcall", "jmp 1b");

#define F(field, val)  \
    {                  \
        (field), (val) \
    }

PROBE(vmx_entry_ctl_reserved_every_bit, "vmx.entry.ctl_reserved_every_bit", "VMX",
      "Every bit of the pin-based, primary and secondary processor-based (with the secondary "
      "controls active), VM-exit and VM-entry controls that the (TRUE) capability MSR fixes: "
      "VMLAUNCH with that one bit flipped (a must-be-1 bit cleared, a must-be-0 bit set) gives "
      "VMfailValid(7); the unmodified VMCS then launches",
      "Intel SDM Vol. 3C 27.2.1.1, 27.2.1.2, 27.2.1.3, A.3-A.5", "sdm.27.2.1.1.pinbased-reserved",
      "sdm.27.2.1.1.procbased-reserved", "sdm.27.2.1.1.procbased2-reserved",
      "sdm.27.2.1.2.exit-reserved", "sdm.27.2.1.3.entry-reserved")
{
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_em_loop_guest);
    vc_baseline(v);
    const struct vmx_caps *c = vmx_caps();
    static const struct {
        enum vmx_ctl ctl;
        uint64_t field;
        const char *name;
    } f[] = {{VMX_CTL_PIN, VMCS_PIN_CTLS, "pin-based"},
             {VMX_CTL_PROC, VMCS_PROC_CTLS, "primary processor-based"},
             {VMX_CTL_PROC2, VMCS_PROC_CTLS2, "secondary processor-based"},
             {VMX_CTL_EXIT, VMCS_EXIT_CTLS, "VM-exit"},
             {VMX_CTL_ENTRY, VMCS_ENTRY_CTLS, "VM-entry"}};
    unsigned tried = 0, ok = 0;
    uint64_t proc = vmcs_read(VMCS_PROC_CTLS);
    for (unsigned i = 0; i < ARRAY_SIZE(f); i++) {
        if (f[i].ctl == VMX_CTL_PROC2 && !c->has_proc2)
            continue;
        const struct vmx_ctl_cap *k = &c->ctl[f[i].ctl];
        uint32_t cur = (uint32_t)vmcs_read(f[i].field);
        for (unsigned b = 0; b < 32; b++) {
            uint32_t bit = 1u << b, val;
            if (k->must1 & bit)
                val = cur & ~bit;
            else if (!(k->may1 & bit))
                val = cur | bit;
            else
                continue;
            char what[96];
            snprintf(what, sizeof(what), "%s controls bit %u %s", f[i].name, b,
                     (k->must1 & bit) ? "cleared (must be 1)" : "set (must be 0)");
            struct vc_case cs = {what, VC_CTL, 0, 1, {F(f[i].field, val)}};
            if (f[i].ctl == VMX_CTL_PROC2) {
                cs.n = 2;
                cs.f[1] = (struct vc_field)F(VMCS_PROC_CTLS, proc | PROC_SECONDARY_CTLS);
            }
            tried++;
            ok += vc_run(v, &cs);
        }
    }
    note("%u of %u fixed control bits flipped gave VMfailValid(7)", ok, tried);
    v->launched = 0;
    vmx_run_expect(v, EXIT_VMCALL, "VMLAUNCH of the unmodified VMCS");
}

PROBE(vmx_entry_ctl_spp, "vmx.entry.ctl_spp", "EPT",
      "With sub-page write permissions (secondary control 23): VMLAUNCH without enable EPT, or "
      "with the SPPTP bits 11:0 not 0 (+0x800) or at 1 << MAXPHYADDR, gives VMfailValid(7); with "
      "EPT and a valid SPPTP it launches",
      "Intel SDM Vol. 3C 27.2.1.1, 25.6.21", "sdm.27.2.1.1.spp")
{
    vmx_require_ctl(VMX_CTL_PROC2, PROC2_SPP | PROC2_EPT, "sub-page write permissions and EPT");
    vmx_on();
    uint64_t eptp = vmx_ept_identity();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_em_loop_guest);
    vmx_use_ept(v, eptp);
    vc_baseline(v);
    uint64_t spp = (uintptr_t)alloc_page();
    vmcs_write(VMCS_SPPTP, spp);
    uint32_t p2 = (uint32_t)vmcs_read(VMCS_PROC_CTLS2) | PROC2_SPP;
    const struct vc_case cs[] = {
        {"SPP with EPT and a valid SPPTP", VC_LAUNCH, 0, 1, {F(VMCS_PROC_CTLS2, p2)}},
        {"SPP without enable EPT", VC_CTL, 0, 1, {F(VMCS_PROC_CTLS2, p2 & ~PROC2_EPT)}},
        {"SPPTP + 0x800", VC_CTL, 0, 2, {F(VMCS_PROC_CTLS2, p2), F(VMCS_SPPTP, spp + 0x800)}},
        {"SPPTP at 1 << MAXPHYADDR",
         VC_CTL,
         0,
         2,
         {F(VMCS_PROC_CTLS2, p2), F(VMCS_SPPTP, vc_beyond_maxphy())}},
    };
    vc_run_all(v, cs, ARRAY_SIZE(cs));
}

#define AR_DATA3 (VMX_AR_TYPE(3) | VMX_AR_S | VMX_AR_DPL(3) | VMX_AR_P | VMX_AR_DB | VMX_AR_G)
#define AR_CODE3 (VMX_AR_TYPE(11) | VMX_AR_S | VMX_AR_DPL(3) | VMX_AR_P | VMX_AR_L | VMX_AR_G)

PROBE(vmx_entry_guest_activity_cpl3, "vmx.entry.guest_activity_cpl3", "VMX",
      "A consistent CPL-3 guest state (CS, SS, DS, ES with DPL 3 and selectors with RPL 3) in "
      "activity state HLT is a VM-entry failure (exit reason 0x80000021, qualification 0): HLT "
      "requires SS.DPL = 0; the same state in the active state enters the guest (some VM exit)",
      "Intel SDM Vol. 3C 27.3.1.5 (activity state), A.6", "sdm.27.3.1.5.activity-hlt-dpl")
{
    if (!(vmx_caps()->misc & VMX_MISC_ACT_HLT))
        skip("IA32_VMX_MISC[6]=0: activity state HLT not supported");
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_em_loop_guest);
    static const unsigned segs[] = {0, 2, 3}; /* ES, SS, DS */
    for (unsigned i = 0; i < ARRAY_SIZE(segs); i++) {
        vmcs_write(VMCS_GUEST_ES_SEL + 2 * segs[i], 0x13);
        vmcs_write(VMCS_GUEST_ES_BASE + 2 * segs[i], 0);
        vmcs_write(VMCS_GUEST_ES_LIMIT + 2 * segs[i], 0xffffffffu);
        vmcs_write(VMCS_GUEST_ES_AR + 2 * segs[i], AR_DATA3);
    }
    vmcs_write(VMCS_GUEST_CS_SEL, 0x1b);
    vmcs_write(VMCS_GUEST_CS_AR, AR_CODE3);
    v->launched = 0;
    uint32_t r = vmx_run(v);
    check(r != VMX_RUN_VMFAIL && !(r & EXIT_REASON_ENTRY_FAIL),
          "the active CPL-3 guest state: want a VM entry (then any VM exit), got %s",
          vmx_exit_str(v));
    note("the active CPL-3 guest: %s", vmx_exit_str(v));
    if (v->launched) {
        vmclear(v->vmcs_pa);
        vmptrld(v->vmcs_pa);
        v->launched = 0;
    }
    const struct vc_case cs = {"activity state HLT with SS.DPL = 3",
                               VC_GUEST,
                               0,
                               1,
                               {F(VMCS_GUEST_ACTIVITY_STATE, ACTIVITY_HLT)}};
    v->watchdog = "the VM-entry failure (0x80000021)";
    vc_run(v, &cs);
    v->watchdog = NULL;
}

#define INJ(type, vec) (INTR_INFO_VALID | ((uint32_t)(type) << 8) | (vec))

PROBE(vmx_entry_guest_activity_shutdown, "vmx.entry.guest_activity_shutdown", "VMX",
      "VM entry in activity state shutdown injecting a hardware exception #UD (only NMI and "
      "machine check may be injected there) fails: exit reason 0x80000021, qualification 0; so "
      "does shutdown with blocking by STI",
      "Intel SDM Vol. 3C 27.3.1.5 (activity state), A.6", "sdm.27.3.1.5.activity-shutdown-inject",
      "sdm.27.3.1.5.activity-blocking")
{
    if (!(vmx_caps()->misc & VMX_MISC_ACT_SHUTDOWN))
        skip("IA32_VMX_MISC[7]=0: activity state shutdown not supported");
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_em_loop_guest);
    vmx_guest_idt(v);
    vc_baseline(v);
    const uint64_t AS = VMCS_GUEST_ACTIVITY_STATE;
    const struct vc_case cs[] = {
        {"shutdown while injecting #UD",
         VC_GUEST,
         0,
         2,
         {F(AS, ACTIVITY_SHUTDOWN), F(VMCS_ENTRY_INTR_INFO, INJ(INTR_TYPE_HW_EXC, UD_VECTOR))}},
        {"shutdown with blocking by STI",
         VC_GUEST,
         0,
         3,
         {F(AS, ACTIVITY_SHUTDOWN), F(VMCS_GUEST_RFLAGS, 0x202),
          F(VMCS_GUEST_INTERRUPTIBILITY, INTERRUPTIBILITY_STI)}},
    };
    v->watchdog = "the VM-entry failure (0x80000021)";
    vc_run_all(v, cs, ARRAY_SIZE(cs));
    v->watchdog = NULL;
}
