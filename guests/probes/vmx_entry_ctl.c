/* SPDX-License-Identifier: MIT */
/*
 * VM entry: the checks on the VM-execution, VM-exit and VM-entry control
 * fields (SDM Vol. 3C 27.2.1), each failing with VMfailValid(7), and the
 * settings those checks ignore, which launch.
 */
#include "vmx_cases.h"

GUEST(vmx_ec_loop_guest, "1: vmcall", "jmp 1b");
GUEST(vmx_ec_read_guest, "mov (%rdi), %rax", "vmcall", "ud2");

#define F(field, val)  \
    {                  \
        (field), (val) \
    }

static struct vmx_vcpu *ec_vcpu(void)
{
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ec_loop_guest);
    vc_baseline(v);
    return v;
}

static uint32_t proc_with(uint32_t bits) { return (uint32_t)vmcs_read(VMCS_PROC_CTLS) | bits; }
static uint32_t proc2_with(uint32_t bits)
{
    return (vmx_caps()->has_proc2 ? (uint32_t)vmcs_read(VMCS_PROC_CTLS2) : 0) | bits;
}
static uint32_t pin_with(uint32_t bits) { return (uint32_t)vmcs_read(VMCS_PIN_CTLS) | bits; }

PROBE(vmx_entry_ctl_proc2_reserved, "vmx.entry.ctl_proc2_reserved", "VMX",
      "With activate secondary controls = 1, VMLAUNCH with the lowest secondary control that "
      "IA32_VMX_PROCBASED_CTLS2 does not allow set gives VMfailValid(7); with activate secondary "
      "controls = 0 the same secondary-controls field is ignored and the guest runs to its VMCALL",
      "Intel SDM Vol. 3C 27.2.1.1, 25.6.2, A.3.3", "sdm.27.2.1.1.procbased2-reserved",
      "sdm.27.1.control-check-error")
{
    vmx_require_ctl(VMX_CTL_PROC, PROC_SECONDARY_CTLS, "activate secondary controls");
    uint32_t may1 = vmx_caps()->ctl[VMX_CTL_PROC2].may1;
    if (!~may1)
        skip("IA32_VMX_PROCBASED_CTLS2 allows every secondary control: no reserved one to set");
    uint32_t bit = ~may1 & -~may1;
    struct vmx_vcpu *v = ec_vcpu();
    uint32_t p = (uint32_t)vmcs_read(VMCS_PROC_CTLS);
    note("secondary control bit %#x is not allowed", bit);
    const struct vc_case cs[] = {
        {"disallowed secondary control set, secondary controls active",
         VC_CTL,
         0,
         2,
         {F(VMCS_PROC_CTLS, p | PROC_SECONDARY_CTLS), F(VMCS_PROC_CTLS2, bit)}},
        {"disallowed secondary control set, secondary controls not active",
         VC_LAUNCH,
         0,
         2,
         {F(VMCS_PROC_CTLS, p & ~PROC_SECONDARY_CTLS), F(VMCS_PROC_CTLS2, bit)}},
    };
    vc_run_all(v, cs, ARRAY_SIZE(cs));
}

PROBE(vmx_entry_ctl_io_bitmap_addr, "vmx.entry.ctl_io_bitmap_addr", "VMX",
      "With use I/O bitmaps = 1, VMLAUNCH with I/O-bitmap address A or B not 4 KiB aligned "
      "(+0x800) or at 1 << MAXPHYADDR gives VMfailValid(7); with use I/O bitmaps = 0 the same "
      "addresses are ignored and the guest runs",
      "Intel SDM Vol. 3C 27.2.1.1, 25.6.4", "sdm.27.2.1.1.io-bitmap-addr")
{
    vmx_require_ctl(VMX_CTL_PROC, PROC_IO_BITMAPS, "use I/O bitmaps");
    struct vmx_vcpu *v = ec_vcpu();
    uint64_t a = (uintptr_t)alloc_page(), b = (uintptr_t)alloc_page(), hi = vc_beyond_maxphy();
    vmcs_write(VMCS_IO_BITMAP_A, a);
    vmcs_write(VMCS_IO_BITMAP_B, b);
    uint32_t on = proc_with(PROC_IO_BITMAPS), off = on & ~PROC_IO_BITMAPS;
    const struct vc_case cs[] = {
        {"I/O bitmaps valid", VC_LAUNCH, 0, 1, {F(VMCS_PROC_CTLS, on)}},
        {"I/O-bitmap A address + 0x800",
         VC_CTL,
         0,
         2,
         {F(VMCS_PROC_CTLS, on), F(VMCS_IO_BITMAP_A, a + 0x800)}},
        {"I/O-bitmap B address + 0x800",
         VC_CTL,
         0,
         2,
         {F(VMCS_PROC_CTLS, on), F(VMCS_IO_BITMAP_B, b + 0x800)}},
        {"I/O-bitmap A address at 1 << MAXPHYADDR",
         VC_CTL,
         0,
         2,
         {F(VMCS_PROC_CTLS, on), F(VMCS_IO_BITMAP_A, hi)}},
        {"I/O-bitmap B address at 1 << MAXPHYADDR",
         VC_CTL,
         0,
         2,
         {F(VMCS_PROC_CTLS, on), F(VMCS_IO_BITMAP_B, hi)}},
        {"unaligned I/O-bitmap addresses with use I/O bitmaps = 0",
         VC_LAUNCH,
         0,
         3,
         {F(VMCS_PROC_CTLS, off), F(VMCS_IO_BITMAP_A, a + 0x800), F(VMCS_IO_BITMAP_B, b + 0x800)}},
    };
    vc_run_all(v, cs, ARRAY_SIZE(cs));
}

PROBE(vmx_entry_ctl_msr_bitmap_addr, "vmx.entry.ctl_msr_bitmap_addr", "VMX",
      "With use MSR bitmaps = 1, VMLAUNCH with the MSR-bitmap address not 4 KiB aligned (+0x10) "
      "or at 1 << MAXPHYADDR gives VMfailValid(7); with use MSR bitmaps = 0 the unaligned address "
      "is ignored and the guest runs",
      "Intel SDM Vol. 3C 27.2.1.1, 25.6.9", "sdm.27.2.1.1.msr-bitmap-addr")
{
    vmx_require_ctl(VMX_CTL_PROC, PROC_MSR_BITMAPS, "use MSR bitmaps");
    struct vmx_vcpu *v = ec_vcpu();
    uint64_t m = (uintptr_t)alloc_page();
    vmcs_write(VMCS_MSR_BITMAP, m);
    uint32_t on = proc_with(PROC_MSR_BITMAPS), off = on & ~PROC_MSR_BITMAPS;
    const struct vc_case cs[] = {
        {"MSR bitmap valid", VC_LAUNCH, 0, 1, {F(VMCS_PROC_CTLS, on)}},
        {"MSR-bitmap address + 0x10",
         VC_CTL,
         0,
         2,
         {F(VMCS_PROC_CTLS, on), F(VMCS_MSR_BITMAP, m + 0x10)}},
        {"MSR-bitmap address at 1 << MAXPHYADDR",
         VC_CTL,
         0,
         2,
         {F(VMCS_PROC_CTLS, on), F(VMCS_MSR_BITMAP, vc_beyond_maxphy())}},
        {"unaligned MSR-bitmap address with use MSR bitmaps = 0",
         VC_LAUNCH,
         0,
         2,
         {F(VMCS_PROC_CTLS, off), F(VMCS_MSR_BITMAP, m + 0x10)}},
    };
    vc_run_all(v, cs, ARRAY_SIZE(cs));
}

PROBE(vmx_entry_ctl_nmi_controls, "vmx.entry.ctl_nmi_controls", "VMX",
      "VMLAUNCH with virtual NMIs = 1 but NMI exiting = 0 gives VMfailValid(7); with NMI-window "
      "exiting = 1 but virtual NMIs = 0 gives VMfailValid(7); NMI exiting and virtual NMIs "
      "together launch",
      "Intel SDM Vol. 3C 27.2.1.1, 25.6.1, 25.6.2", "sdm.27.2.1.1.nmi-exiting-virtual-nmis",
      "sdm.27.2.1.1.virtual-nmis-nmi-window")
{
    vmx_require_ctl(VMX_CTL_PIN, PIN_NMI_EXITING | PIN_VIRTUAL_NMIS,
                    "NMI exiting and virtual NMIs");
    struct vmx_vcpu *v = ec_vcpu();
    uint32_t pin = pin_with(0) & ~(PIN_NMI_EXITING | PIN_VIRTUAL_NMIS);
    struct vc_case cs[3] = {
        {"virtual NMIs without NMI exiting",
         VC_CTL,
         0,
         1,
         {F(VMCS_PIN_CTLS, pin | PIN_VIRTUAL_NMIS)}},
        {"NMI exiting and virtual NMIs",
         VC_LAUNCH,
         0,
         1,
         {F(VMCS_PIN_CTLS, pin | PIN_VIRTUAL_NMIS | PIN_NMI_EXITING)}},
    };
    unsigned n = 2;
    if (vmx_ctl_can_set(VMX_CTL_PROC, PROC_NMI_WINDOW))
        cs[n++] = (struct vc_case){"NMI-window exiting without virtual NMIs",
                                   VC_CTL,
                                   0,
                                   2,
                                   {F(VMCS_PIN_CTLS, pin | PIN_NMI_EXITING),
                                    F(VMCS_PROC_CTLS, proc_with(PROC_NMI_WINDOW))}};
    else
        note("NMI-window exiting not allowed: that case not tried");
    vc_run_all(v, cs, n);
}

PROBE(vmx_entry_ctl_virtual_apic_addr, "vmx.entry.ctl_virtual_apic_addr", "VMX",
      "With use TPR shadow = 1, VMLAUNCH with the virtual-APIC address at 1 << MAXPHYADDR gives "
      "VMfailValid(7); with use TPR shadow = 0 an unaligned virtual-APIC address is ignored and "
      "the guest runs",
      "Intel SDM Vol. 3C 27.2.1.1, 25.6.8", "sdm.27.2.1.1.virtual-apic-addr")
{
    vmx_require_ctl(VMX_CTL_PROC, PROC_TPR_SHADOW, "use TPR shadow");
    struct vmx_vcpu *v = ec_vcpu();
    uint64_t page = (uintptr_t)alloc_page();
    vmcs_write(VMCS_VIRTUAL_APIC_ADDR, page);
    vmcs_write(VMCS_TPR_THRESHOLD, 0);
    uint32_t on = proc_with(PROC_TPR_SHADOW), off = on & ~PROC_TPR_SHADOW;
    const struct vc_case cs[] = {
        {"TPR shadow with a valid virtual-APIC page", VC_LAUNCH, 0, 1, {F(VMCS_PROC_CTLS, on)}},
        {"virtual-APIC address at 1 << MAXPHYADDR",
         VC_CTL,
         0,
         2,
         {F(VMCS_PROC_CTLS, on), F(VMCS_VIRTUAL_APIC_ADDR, vc_beyond_maxphy())}},
        {"unaligned virtual-APIC address with use TPR shadow = 0",
         VC_LAUNCH,
         0,
         2,
         {F(VMCS_PROC_CTLS, off), F(VMCS_VIRTUAL_APIC_ADDR, page + 0x80)}},
    };
    vc_run_all(v, cs, ARRAY_SIZE(cs));
}

PROBE(vmx_entry_ctl_apic_virt_tpr, "vmx.entry.ctl_apic_virt_tpr", "VMX",
      "With use TPR shadow = 0, VMLAUNCH with virtualize x2APIC mode, with APIC-register "
      "virtualization, or with virtual-interrupt delivery (each where allowed, the last with "
      "external-interrupt exiting) gives VMfailValid(7)",
      "Intel SDM Vol. 3C 27.2.1.1, 25.6.2", "sdm.27.2.1.1.tpr-shadow-dependents")
{
    vmx_require_ctl(VMX_CTL_PROC, PROC_SECONDARY_CTLS, "activate secondary controls");
    struct vmx_vcpu *v = ec_vcpu();
    uint32_t p = proc_with(PROC_SECONDARY_CTLS) & ~PROC_TPR_SHADOW;
    if (!vmx_ctl_can_clear(VMX_CTL_PROC, PROC_TPR_SHADOW))
        skip("use TPR shadow cannot be 0");
    struct vc_case cs[3];
    unsigned n = 0;
    static const struct {
        uint32_t bit;
        const char *what;
    } b[] = {{PROC2_VIRT_X2APIC, "virtualize x2APIC mode without use TPR shadow"},
             {PROC2_APIC_REG_VIRT, "APIC-register virtualization without use TPR shadow"},
             {PROC2_VIRT_INTR_DELIVERY, "virtual-interrupt delivery without use TPR shadow"}};
    for (unsigned i = 0; i < ARRAY_SIZE(b); i++) {
        if (!vmx_ctl_can_set(VMX_CTL_PROC2, b[i].bit)) {
            note("secondary control %#x not allowed: \"%s\" not tried", b[i].bit, b[i].what);
            continue;
        }
        uint32_t pin = pin_with(b[i].bit == PROC2_VIRT_INTR_DELIVERY ? PIN_EXTINT_EXITING : 0);
        cs[n++] = (struct vc_case){b[i].what,
                                   VC_CTL,
                                   0,
                                   3,
                                   {F(VMCS_PROC_CTLS, p), F(VMCS_PROC_CTLS2, proc2_with(b[i].bit)),
                                    F(VMCS_PIN_CTLS, pin)}};
    }
    if (!n)
        skip("none of virtualize x2APIC mode, APIC-register virtualization, virtual-interrupt "
             "delivery is allowed (IA32_VMX_PROCBASED_CTLS2 bits 36, 40, 41)");
    vc_run_all(v, cs, n);
}

PROBE(vmx_entry_ctl_apic_virt, "vmx.entry.ctl_apic_virt", "VMX",
      "With use TPR shadow: VMLAUNCH with virtualize x2APIC mode and virtualize APIC accesses "
      "together, with virtual-interrupt delivery but external-interrupt exiting = 0, with an "
      "APIC-access address +0x10 or at 1 << MAXPHYADDR (virtualize APIC accesses = 1) each gives "
      "VMfailValid(7); virtualize APIC accesses with a valid page launches. Where process posted "
      "interrupts is offered: with virtual-interrupt delivery, external-interrupt exiting, "
      "acknowledge interrupt on exit, notification vector 0xf2 and a page-aligned descriptor it "
      "launches; without virtual-interrupt delivery, without acknowledge interrupt on exit, with "
      "notification vector 0x1f2 or with the descriptor address + 0x20 it gives VMfailValid(7)",
      "Intel SDM Vol. 3C 27.2.1.1, 25.6.8", "sdm.27.2.1.1.apic-access-addr",
      "sdm.27.2.1.1.x2apic-apic-access", "sdm.27.2.1.1.vid-extint-exiting",
      "sdm.27.2.1.1.posted-intr")
{
    vmx_require_ctl(VMX_CTL_PROC, PROC_TPR_SHADOW | PROC_SECONDARY_CTLS,
                    "use TPR shadow and activate secondary controls");
    vmx_require_ctl(VMX_CTL_PROC2, PROC2_VIRT_APIC_ACCESS, "virtualize APIC accesses");
    struct vmx_vcpu *v = ec_vcpu();
    uint64_t vapic = (uintptr_t)alloc_page(), acc = (uintptr_t)alloc_page();
    vmcs_write(VMCS_VIRTUAL_APIC_ADDR, vapic);
    vmcs_write(VMCS_APIC_ACCESS_ADDR, acc);
    vmcs_write(VMCS_TPR_THRESHOLD, 0);
    uint32_t p = proc_with(PROC_TPR_SHADOW | PROC_SECONDARY_CTLS);
    uint32_t p2 = proc2_with(PROC2_VIRT_APIC_ACCESS);
    struct vc_case cs[10] = {
        {"virtualize APIC accesses with a valid APIC-access page",
         VC_LAUNCH,
         0,
         2,
         {F(VMCS_PROC_CTLS, p), F(VMCS_PROC_CTLS2, p2)}},
        {"APIC-access address + 0x10",
         VC_CTL,
         0,
         3,
         {F(VMCS_PROC_CTLS, p), F(VMCS_PROC_CTLS2, p2), F(VMCS_APIC_ACCESS_ADDR, acc + 0x10)}},
        {"APIC-access address at 1 << MAXPHYADDR",
         VC_CTL,
         0,
         3,
         {F(VMCS_PROC_CTLS, p), F(VMCS_PROC_CTLS2, p2),
          F(VMCS_APIC_ACCESS_ADDR, vc_beyond_maxphy())}},
    };
    unsigned n = 3;
    if (vmx_ctl_can_set(VMX_CTL_PROC2, PROC2_VIRT_X2APIC))
        cs[n++] =
            (struct vc_case){"virtualize x2APIC mode with virtualize APIC accesses",
                             VC_CTL,
                             0,
                             2,
                             {F(VMCS_PROC_CTLS, p), F(VMCS_PROC_CTLS2, p2 | PROC2_VIRT_X2APIC)}};
    if (vmx_ctl_can_set(VMX_CTL_PROC2, PROC2_VIRT_INTR_DELIVERY) &&
        vmx_ctl_can_clear(VMX_CTL_PIN, PIN_EXTINT_EXITING))
        cs[n++] = (struct vc_case){"virtual-interrupt delivery without external-interrupt exiting",
                                   VC_CTL,
                                   0,
                                   3,
                                   {F(VMCS_PROC_CTLS, p),
                                    F(VMCS_PROC_CTLS2, p2 | PROC2_VIRT_INTR_DELIVERY),
                                    F(VMCS_PIN_CTLS, pin_with(0) & ~PIN_EXTINT_EXITING)}};
    if (vmx_ctl_can_set(VMX_CTL_PIN, PIN_POSTED_INTR | PIN_EXTINT_EXITING) &&
        vmx_ctl_can_set(VMX_CTL_PROC2, PROC2_VIRT_INTR_DELIVERY) &&
        vmx_ctl_can_set(VMX_CTL_EXIT, EXIT_ACK_INTR)) {
        /* the cases set at most 4 fields: the primary controls stay p for all of them */
        uint64_t desc = (uintptr_t)alloc_page();
        vmcs_write(VMCS_PROC_CTLS, p);
        vmcs_write(VMCS_POSTED_INTR_NV, 0xf2);
        vmcs_write(VMCS_POSTED_INTR_DESC, desc);
        uint32_t pin = pin_with(PIN_EXTINT_EXITING | PIN_POSTED_INTR),
                 vid = p2 | PROC2_VIRT_INTR_DELIVERY,
                 ex = (uint32_t)vmcs_read(VMCS_EXIT_CTLS) | EXIT_ACK_INTR;
        cs[n++] = (struct vc_case){"process posted interrupts with valid settings",
                                   VC_LAUNCH,
                                   0,
                                   3,
                                   {F(VMCS_PIN_CTLS, pin), F(VMCS_PROC_CTLS2, vid),
                                    F(VMCS_EXIT_CTLS, ex)}};
        cs[n++] = (struct vc_case){"process posted interrupts without virtual-interrupt delivery",
                                   VC_CTL,
                                   0,
                                   3,
                                   {F(VMCS_PIN_CTLS, pin), F(VMCS_PROC_CTLS2, p2),
                                    F(VMCS_EXIT_CTLS, ex)}};
        if (vmx_ctl_can_clear(VMX_CTL_EXIT, EXIT_ACK_INTR))
            cs[n++] = (struct vc_case){"process posted interrupts without acknowledge interrupt "
                                       "on exit",
                                       VC_CTL,
                                       0,
                                       3,
                                       {F(VMCS_PIN_CTLS, pin), F(VMCS_PROC_CTLS2, vid),
                                        F(VMCS_EXIT_CTLS, ex & ~EXIT_ACK_INTR)}};
        cs[n++] = (struct vc_case){"posted-interrupt notification vector 0x1f2",
                                   VC_CTL,
                                   0,
                                   4,
                                   {F(VMCS_PIN_CTLS, pin), F(VMCS_PROC_CTLS2, vid),
                                    F(VMCS_EXIT_CTLS, ex), F(VMCS_POSTED_INTR_NV, 0x1f2)}};
        cs[n++] = (struct vc_case){"posted-interrupt descriptor address + 0x20",
                                   VC_CTL,
                                   0,
                                   4,
                                   {F(VMCS_PIN_CTLS, pin), F(VMCS_PROC_CTLS2, vid),
                                    F(VMCS_EXIT_CTLS, ex), F(VMCS_POSTED_INTR_DESC, desc + 0x20)}};
    } else {
        note("process posted interrupts (with virtual-interrupt delivery and acknowledge "
             "interrupt on exit) not offered");
    }
    vc_run_all(v, cs, n);
}

PROBE(vmx_entry_ctl_eptp_more, "vmx.entry.ctl_eptp_more", "EPT",
      "With enable EPT, VMLAUNCH with an EPTP whose address is at 1 << MAXPHYADDR, whose page-walk "
      "length is 3 (value 2), with reserved bit 8 set, with a page-walk length of 5 when "
      "IA32_VMX_EPT_VPID_CAP[7]=0, or with the A/D enable bit when bit 21 is 0, gives "
      "VMfailValid(7); so does mode-based execute control for EPT (where offered) with enable "
      "EPT = 0, while with enable EPT = 1 it launches",
      "Intel SDM Vol. 3C 27.2.1.1, 25.6.11, A.10", "sdm.27.2.1.1.eptp-walk-length",
      "sdm.27.2.1.1.eptp-ad-enable", "sdm.27.2.1.1.eptp-reserved", "sdm.27.2.1.1.mbec-ept")
{
    vmx_on();
    uint64_t eptp = vmx_ept_identity();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ec_loop_guest);
    vmx_use_ept(v, eptp);
    vc_baseline(v);
    uint64_t cap = vmx_caps()->ept_vpid;
    uint64_t mask = ~EPT_ADDR_MASK;
    struct vc_case cs[7] = {
        {"EPTP address at 1 << MAXPHYADDR",
         VC_CTL,
         0,
         1,
         {F(VMCS_EPTP, (eptp & mask) | vc_beyond_maxphy())}},
        {"EPTP page-walk length 3", VC_CTL, 0, 1, {F(VMCS_EPTP, (eptp & ~(7ull << 3)) | (2 << 3))}},
        {"EPTP reserved bit 8", VC_CTL, 0, 1, {F(VMCS_EPTP, eptp | (1ull << 8))}},
    };
    unsigned n = 3;
    if (!(cap & VMX_EPT_PWL5))
        cs[n++] = (struct vc_case){"EPTP page-walk length 5 (not supported)",
                                   VC_CTL,
                                   0,
                                   1,
                                   {F(VMCS_EPTP, (eptp & ~(7ull << 3)) | (4 << 3))}};
    if (!(cap & VMX_EPT_AD))
        cs[n++] = (struct vc_case){"EPTP A/D enable (not supported)",
                                   VC_CTL,
                                   0,
                                   1,
                                   {F(VMCS_EPTP, eptp | EPTP_AD)}};
    if (vmx_ctl_can_set(VMX_CTL_PROC2, PROC2_MBEC)) {
        uint32_t p2 = (uint32_t)vmcs_read(VMCS_PROC_CTLS2) | PROC2_MBEC;
        cs[n++] = (struct vc_case){"mode-based execute control with enable EPT = 1",
                                   VC_LAUNCH,
                                   0,
                                   1,
                                   {F(VMCS_PROC_CTLS2, p2)}};
        cs[n++] = (struct vc_case){"mode-based execute control with enable EPT = 0",
                                   VC_CTL,
                                   0,
                                   1,
                                   {F(VMCS_PROC_CTLS2, p2 & ~PROC2_EPT)}};
    } else {
        note("mode-based execute control for EPT not offered");
    }
    vc_run_all(v, cs, n);
}

PROBE(vmx_entry_ctl_pml, "vmx.entry.ctl_pml", "PML",
      "With enable PML: VMLAUNCH without enable EPT, or with the PML address +0x800 or at "
      "1 << MAXPHYADDR, gives VMfailValid(7); with EPT and a valid PML page it launches",
      "Intel SDM Vol. 3C 27.2.1.1, 25.6.18", "sdm.27.2.1.1.pml-ept")
{
    vmx_require_ctl(VMX_CTL_PROC2, PROC2_PML | PROC2_EPT, "enable PML and EPT");
    vmx_on();
    uint64_t eptp = vmx_ept_identity();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ec_loop_guest);
    vmx_use_ept(v, eptp);
    vc_baseline(v);
    uint64_t pml = (uintptr_t)alloc_page();
    vmcs_write(VMCS_PML_ADDR, pml);
    vmcs_write(VMCS_GUEST_PML_INDEX, 511);
    uint32_t p2 = proc2_with(PROC2_PML);
    const struct vc_case cs[] = {
        {"PML with EPT and a valid PML page", VC_LAUNCH, 0, 1, {F(VMCS_PROC_CTLS2, p2)}},
        {"PML without enable EPT", VC_CTL, 0, 1, {F(VMCS_PROC_CTLS2, p2 & ~PROC2_EPT)}},
        {"PML address + 0x800",
         VC_CTL,
         0,
         2,
         {F(VMCS_PROC_CTLS2, p2), F(VMCS_PML_ADDR, pml + 0x800)}},
        {"PML address at 1 << MAXPHYADDR",
         VC_CTL,
         0,
         2,
         {F(VMCS_PROC_CTLS2, p2), F(VMCS_PML_ADDR, vc_beyond_maxphy())}},
    };
    vc_run_all(v, cs, ARRAY_SIZE(cs));
}

PROBE(vmx_entry_ctl_vmfunc, "vmx.entry.ctl_vmfunc", "VMFUNC",
      "With enable VM functions: VMLAUNCH with a VM-function control bit that IA32_VMX_VMFUNC does "
      "not allow, with EPTP switching but enable EPT = 0, or with the EPTP-list address +0x800 or "
      "at 1 << MAXPHYADDR, gives VMfailValid(7); EPTP switching with a valid list launches",
      "Intel SDM Vol. 3C 27.2.1.1, 25.6.14, A.11", "sdm.27.2.1.1.vmfunc-reserved",
      "sdm.27.2.1.1.eptp-switching")
{
    vmx_require_ctl(VMX_CTL_PROC2, PROC2_VMFUNC | PROC2_EPT, "enable VM functions and EPT");
    uint64_t caps = vmx_caps()->vmfunc;
    if (!(caps & 1))
        skip("IA32_VMX_VMFUNC=%#llx: bit 0 (EPTP switching) clear", (unsigned long long)caps);
    vmx_on();
    uint64_t eptp = vmx_ept_identity();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ec_loop_guest);
    vmx_use_ept(v, eptp);
    vc_baseline(v);
    uint64_t *list = alloc_page();
    list[0] = eptp;
    uint64_t l = (uintptr_t)list;
    vmcs_write(VMCS_EPTP_LIST_ADDR, l);
    vmcs_write(VMCS_VMFUNC_CTRL, 0);
    uint32_t p2 = proc2_with(PROC2_VMFUNC);
    uint64_t bad = ~caps & -~caps;
    const struct vc_case cs[] = {
        {"EPTP switching with a valid EPTP list",
         VC_LAUNCH,
         0,
         2,
         {F(VMCS_PROC_CTLS2, p2), F(VMCS_VMFUNC_CTRL, 1)}},
        {"VM-function control bit not in IA32_VMX_VMFUNC",
         VC_CTL,
         0,
         2,
         {F(VMCS_PROC_CTLS2, p2), F(VMCS_VMFUNC_CTRL, bad)}},
        {"EPTP switching without enable EPT",
         VC_CTL,
         0,
         2,
         {F(VMCS_PROC_CTLS2, p2 & ~PROC2_EPT), F(VMCS_VMFUNC_CTRL, 1)}},
        {"EPTP-list address + 0x800",
         VC_CTL,
         0,
         3,
         {F(VMCS_PROC_CTLS2, p2), F(VMCS_VMFUNC_CTRL, 1), F(VMCS_EPTP_LIST_ADDR, l + 0x800)}},
        {"EPTP-list address at 1 << MAXPHYADDR",
         VC_CTL,
         0,
         3,
         {F(VMCS_PROC_CTLS2, p2), F(VMCS_VMFUNC_CTRL, 1),
          F(VMCS_EPTP_LIST_ADDR, vc_beyond_maxphy())}},
    };
    note("VM-function control bit %#llx not allowed", (unsigned long long)bad);
    vc_run_all(v, cs, ARRAY_SIZE(cs));
}

PROBE(vmx_entry_ctl_shadow_bitmaps, "vmx.entry.ctl_shadow_bitmaps", "VMCS shadowing",
      "With VMCS shadowing = 1: VMLAUNCH with the VMREAD-bitmap or VMWRITE-bitmap address +0x800 "
      "or at 1 << MAXPHYADDR gives VMfailValid(7); valid bitmaps launch",
      "Intel SDM Vol. 3C 27.2.1.1, 25.6.15", "sdm.27.2.1.1.vmcs-shadowing-bitmaps")
{
    vmx_require_ctl(VMX_CTL_PROC2, PROC2_VMCS_SHADOWING, "VMCS shadowing");
    struct vmx_vcpu *v = ec_vcpu();
    uint64_t r = (uintptr_t)alloc_page(), w = (uintptr_t)alloc_page(), hi = vc_beyond_maxphy();
    vmcs_write(VMCS_VMREAD_BITMAP, r);
    vmcs_write(VMCS_VMWRITE_BITMAP, w);
    uint32_t p = proc_with(PROC_SECONDARY_CTLS), p2 = proc2_with(PROC2_VMCS_SHADOWING);
    const struct vc_case cs[] = {
        {"VMCS shadowing with valid bitmaps",
         VC_LAUNCH,
         0,
         2,
         {F(VMCS_PROC_CTLS, p), F(VMCS_PROC_CTLS2, p2)}},
        {"VMREAD-bitmap address + 0x800",
         VC_CTL,
         0,
         3,
         {F(VMCS_PROC_CTLS, p), F(VMCS_PROC_CTLS2, p2), F(VMCS_VMREAD_BITMAP, r + 0x800)}},
        {"VMWRITE-bitmap address + 0x800",
         VC_CTL,
         0,
         3,
         {F(VMCS_PROC_CTLS, p), F(VMCS_PROC_CTLS2, p2), F(VMCS_VMWRITE_BITMAP, w + 0x800)}},
        {"VMREAD-bitmap address at 1 << MAXPHYADDR",
         VC_CTL,
         0,
         3,
         {F(VMCS_PROC_CTLS, p), F(VMCS_PROC_CTLS2, p2), F(VMCS_VMREAD_BITMAP, hi)}},
        {"VMWRITE-bitmap address at 1 << MAXPHYADDR",
         VC_CTL,
         0,
         3,
         {F(VMCS_PROC_CTLS, p), F(VMCS_PROC_CTLS2, p2), F(VMCS_VMWRITE_BITMAP, hi)}},
    };
    vc_run_all(v, cs, ARRAY_SIZE(cs));
}

PROBE(vmx_entry_ctl_ve_info, "vmx.entry.ctl_ve_info", "EPT",
      "With EPT-violation #VE = 1 (and EPT): VMLAUNCH with the virtualization-exception "
      "information address +0x800 or at 1 << MAXPHYADDR gives VMfailValid(7); a valid page "
      "launches. A guest read of a page P whose EPT entry is not present with suppress #VE "
      "(bit 63) = 0, information word (offset 4) 0 and exception-bitmap bit 20 = 0 raises #VE "
      "(vector 20, no error code) through the guest IDT instead of a VM exit, and the "
      "information area holds exit reason 48, FFFFFFFFH at offset 4, a read qualification, "
      "guest-linear and guest-physical address P and the EPTP-index field's 3; the same read exits "
      "with reason 48 instead when the word is FFFFFFFFH, or when suppress #VE is 1; with "
      "exception-bitmap bit 20 = 1 the #VE exits with reason 0, vector 20",
      "Intel SDM Vol. 3C 27.2.1.1, 25.6.16, 26.5.6", "sdm.27.2.1.1.ve-info-addr",
      "sdm.26.5.6.1.convertible", "sdm.26.5.6.1.suppress-ve", "sdm.26.5.6.2.ve-info",
      "sdm.26.5.6.3.ve-delivery", "sdm.25.6.19.ve-controls")
{
    vmx_require_ctl(VMX_CTL_PROC2, PROC2_EPT_VE | PROC2_EPT, "EPT-violation #VE and EPT");
    vmx_on();
    uint64_t eptp = vmx_ept_identity();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ec_loop_guest);
    vmx_use_ept(v, eptp);
    vc_baseline(v);
    uint64_t ve = (uintptr_t)alloc_page();
    vmcs_write(VMCS_VE_INFO_ADDR, ve);
    uint32_t p2 = proc2_with(PROC2_EPT_VE);
    const struct vc_case cs[] = {
        {"#VE with a valid information page", VC_LAUNCH, 0, 1, {F(VMCS_PROC_CTLS2, p2)}},
        {"#VE information address + 0x800",
         VC_CTL,
         0,
         2,
         {F(VMCS_PROC_CTLS2, p2), F(VMCS_VE_INFO_ADDR, ve + 0x800)}},
        {"#VE information address at 1 << MAXPHYADDR",
         VC_CTL,
         0,
         2,
         {F(VMCS_PROC_CTLS2, p2), F(VMCS_VE_INFO_ADDR, vc_beyond_maxphy())}},
    };
    vc_run_all(v, cs, ARRAY_SIZE(cs));
    /* #VE: a guest read of P through a not-present EPT entry with suppress #VE = 0 */
    uint64_t pg = (uintptr_t)alloc_page();
    uint64_t *pte = vmx_ept_pte(eptp, pg), good = *pte;
    *pte = good & ~(EPT_RWX | (1ull << 63));
    vmx_ept_flush(eptp);
    struct vmx_vcpu *w = vmx_vcpu_new(vmx_ec_read_guest);
    vmx_use_ept(w, eptp);
    vmx_guest_idt(w);
    vmcs_clear_bits(VMCS_EXCEPTION_BITMAP, BIT(VE_VECTOR));
    vmcs_set_bits(VMCS_PROC_CTLS2, PROC2_EPT_VE);
    uint32_t *info = alloc_page();
    vmcs_write(VMCS_VE_INFO_ADDR, (uintptr_t)info);
    vmcs_write(VMCS_EPTP_INDEX, 3);
    w->gpr[VMX_GPR_RDI] = pg;
    if (vmx_run_expect(w, EXIT_VMCALL, "guest read of P (not present, suppress #VE 0)")) {
        check_eq("handler's VMCALL: RAX (an event)", w->gpr[VMX_GPR_RAX], VMX_GUEST_EVENT);
        check_eq("vector delivered for the EPT violation (#VE)", w->gpr[VMX_GPR_RBX], VE_VECTOR);
        check_eq("error code of #VE (none pushed: the handler's ~0)", w->gpr[VMX_GPR_RCX], ~0ull);
        check_eq("pushed RIP (the read)", w->gpr[VMX_GPR_RDX], (uintptr_t)vmx_ec_read_guest);
        check_eq("#VE information: exit reason", info[0], EXIT_EPT_VIOLATION);
        check_eq("#VE information: word at offset 4", info[1], 0xffffffffu);
        const uint64_t *q = (const uint64_t *)(info + 2);
        check(q[0] & EPT_VQ_READ, "#VE information: qualification %#llx without the read bit",
              (unsigned long long)q[0]);
        check_eq("#VE information: guest-linear address", q[1], pg);
        check_eq("#VE information: guest-physical address", q[2], pg);
        check_eq("#VE information: EPTP index (the field's 3)", *(const uint16_t *)(info + 8), 3);
    }
    /* no #VE while the word is FFFFFFFFH, nor with suppress #VE = 1: EPT-violation exits */
    const struct {
        uint32_t word;
        uint64_t sve;
        const char *what;
    } ex[] = {{0xffffffffu, 0, "information word FFFFFFFFH"}, {0, 1ull << 63, "suppress #VE 1"}};
    for (unsigned i = 0; i < ARRAY_SIZE(ex); i++) {
        info[1] = ex[i].word;
        *pte = (good & ~(EPT_RWX | (1ull << 63))) | ex[i].sve;
        vmx_ept_flush(eptp);
        vmcs_write(VMCS_GUEST_RIP, (uintptr_t)vmx_ec_read_guest);
        vmx_run_expect(w, EXIT_EPT_VIOLATION, ex[i].what);
    }
    /* with exception-bitmap bit 20 = 1 the #VE itself exits */
    info[1] = 0;
    *pte = good & ~(EPT_RWX | (1ull << 63));
    vmx_ept_flush(eptp);
    vmcs_set_bits(VMCS_EXCEPTION_BITMAP, BIT(VE_VECTOR));
    vmcs_write(VMCS_GUEST_RIP, (uintptr_t)vmx_ec_read_guest);
    if (vmx_run_expect(w, EXIT_EXCEPTION_NMI, "#VE with exception-bitmap bit 20 = 1"))
        check_eq("vector of the exception exit", INTR_INFO_VECTOR(w->exit_intr_info), VE_VECTOR);
    *pte = good;
    vmx_ept_flush(eptp);
}

PROBE(vmx_entry_ctl_timer_save, "vmx.entry.ctl_timer_save", "preemption timer",
      "VMLAUNCH with the save VMX-preemption timer value exit control = 1 but activate "
      "VMX-preemption timer = 0 gives VMfailValid(7); with both (and a large timer value) it "
      "launches",
      "Intel SDM Vol. 3C 27.2.1.2, 25.7.1", "sdm.27.2.1.2.timer-save")
{
    vmx_require_ctl(VMX_CTL_EXIT, EXIT_SAVE_TIMER, "save VMX-preemption timer value");
    vmx_require_ctl(VMX_CTL_PIN, PIN_PREEMPTION_TIMER, "activate VMX-preemption timer");
    struct vmx_vcpu *v = ec_vcpu();
    uint32_t ex = (uint32_t)vmcs_read(VMCS_EXIT_CTLS) | EXIT_SAVE_TIMER;
    uint32_t pin = pin_with(0);
    vmcs_write(VMCS_PREEMPTION_TIMER, 0xffffffffu);
    const struct vc_case cs[] = {
        {"save timer value without the timer",
         VC_CTL,
         0,
         2,
         {F(VMCS_EXIT_CTLS, ex), F(VMCS_PIN_CTLS, pin & ~PIN_PREEMPTION_TIMER)}},
        {"save timer value with the timer",
         VC_LAUNCH,
         0,
         2,
         {F(VMCS_EXIT_CTLS, ex), F(VMCS_PIN_CTLS, pin | PIN_PREEMPTION_TIMER)}},
    };
    vc_run_all(v, cs, ARRAY_SIZE(cs));
}

PROBE(vmx_entry_ctl_msr_list_addr, "vmx.entry.ctl_msr_list_addr", "VMX",
      "With a count of 1, VMLAUNCH with the VM-exit MSR-store, VM-exit MSR-load or VM-entry "
      "MSR-load address +8 (bits 3:0 must be 0) or with the list ending beyond MAXPHYADDR gives "
      "VMfailValid(7); with counts of 0 the unaligned addresses are ignored and the guest runs",
      "Intel SDM Vol. 3C 27.2.1.2, 27.2.1.3, 25.7.2, 25.8.2", "sdm.27.2.1.2.msr-store-addr",
      "sdm.27.2.1.2.msr-load-addr", "sdm.27.2.1.3.msr-load-addr")
{
    struct vmx_vcpu *v = ec_vcpu();
    uint32_t *list = alloc_page();
    list[0] = MSR_IA32_SYSENTER_CS; /* a harmless entry for the valid case */
    uint64_t l = (uintptr_t)list, hi = vc_beyond_maxphy() - 16;
    static const struct {
        uint64_t addr, count;
        const char *name;
    } lists[] = {{VMCS_EXIT_MSR_STORE_ADDR, VMCS_EXIT_MSR_STORE_COUNT, "VM-exit MSR-store"},
                 {VMCS_EXIT_MSR_LOAD_ADDR, VMCS_EXIT_MSR_LOAD_COUNT, "VM-exit MSR-load"},
                 {VMCS_ENTRY_MSR_LOAD_ADDR, VMCS_ENTRY_MSR_LOAD_COUNT, "VM-entry MSR-load"}};
    struct vc_case cs[7];
    static char what[6][64];
    unsigned n = 0;
    for (unsigned i = 0; i < 3; i++) {
        snprintf(what[2 * i], sizeof(what[0]), "%s address + 8", lists[i].name);
        cs[n++] = (struct vc_case){what[2 * i],
                                   VC_CTL,
                                   0,
                                   2,
                                   {F(lists[i].count, 1), F(lists[i].addr, l + 8)}};
        snprintf(what[2 * i + 1], sizeof(what[0]), "%s list ending at 1 << MAXPHYADDR + 16",
                 lists[i].name);
        cs[n++] = (struct vc_case){what[2 * i + 1],
                                   VC_CTL,
                                   0,
                                   2,
                                   {F(lists[i].count, 1), F(lists[i].addr, hi + 16)}};
    }
    cs[n++] =
        (struct vc_case){"unaligned MSR-list addresses with counts of 0",
                         VC_LAUNCH,
                         0,
                         3,
                         {F(VMCS_EXIT_MSR_STORE_ADDR, l + 8), F(VMCS_EXIT_MSR_LOAD_ADDR, l + 8),
                          F(VMCS_ENTRY_MSR_LOAD_ADDR, l + 8)}};
    vc_run_all(v, cs, n);
}

PROBE(vmx_entry_ctl_entry_smm, "vmx.entry.ctl_entry_smm", "VMX",
      "Outside SMM, VMLAUNCH with the entry to SMM VM-entry control = 1, or with deactivate "
      "dual-monitor treatment = 1 (each where IA32_VMX_ENTRY_CTLS allows it), gives "
      "VMfailValid(7)",
      "Intel SDM Vol. 3C 27.2.1.3, 25.8.1", "sdm.27.2.1.3.smm-controls")
{
    struct vmx_vcpu *v = ec_vcpu();
    uint32_t e = (uint32_t)vmcs_read(VMCS_ENTRY_CTLS);
    struct vc_case cs[2];
    unsigned n = 0;
    if (vmx_ctl_can_set(VMX_CTL_ENTRY, ENTRY_SMM))
        cs[n++] = (struct vc_case){"entry to SMM outside SMM",
                                   VC_CTL,
                                   0,
                                   1,
                                   {F(VMCS_ENTRY_CTLS, e | ENTRY_SMM)}};
    if (vmx_ctl_can_set(VMX_CTL_ENTRY, ENTRY_DEACT_DUAL_MONITOR))
        cs[n++] = (struct vc_case){"deactivate dual-monitor treatment outside SMM",
                                   VC_CTL,
                                   0,
                                   1,
                                   {F(VMCS_ENTRY_CTLS, e | ENTRY_DEACT_DUAL_MONITOR)}};
    if (!n)
        skip("IA32_VMX_ENTRY_CTLS allows neither entry to SMM (bit 42) nor deactivate "
             "dual-monitor treatment (bit 43)");
    vc_run_all(v, cs, n);
}

#define INJ(type, vec) (INTR_INFO_VALID | ((uint32_t)(type) << 8) | (vec))

PROBE(vmx_entry_ctl_event_type_vector, "vmx.entry.ctl_event_type_vector", "VMX",
      "VM-entry checks on the injected event's type and vector: an NMI (type 2) with vector 3, "
      "and type 7 (other event) with vector 1 when the monitor trap flag control is supported, "
      "each give VMfailValid(7); an NMI with "
      "vector 2 is delivered (guest IDT handler's VMCALL)",
      "Intel SDM Vol. 3C 27.2.1.3, 25.8.3", "sdm.27.2.1.3.inject-vector",
      "sdm.27.2.1.3.inject-type-reserved")
{
    struct vmx_vcpu *v = ec_vcpu();
    vmx_guest_idt(v);
    const uint64_t II = VMCS_ENTRY_INTR_INFO;
    struct vc_case cs[3] = {
        {"NMI with vector 3", VC_CTL, 0, 1, {F(II, INJ(INTR_TYPE_NMI, 3))}},
        {"NMI with vector 2", VC_LAUNCH, 0, 1, {F(II, INJ(INTR_TYPE_NMI, NMI_VECTOR))}},
    };
    unsigned n = 2;
    if (vmx_ctl_can_set(VMX_CTL_PROC, PROC_MTF))
        cs[n++] = (struct vc_case){"type 7 (pending MTF) with vector 1",
                                   VC_CTL,
                                   0,
                                   1,
                                   {F(II, INJ(INTR_TYPE_OTHER, 1))}};
    else
        note("monitor trap flag not supported: type 7 not tried (Bochs 2.7 aborts the simulation "
             "on it, docs/probes/vmx.md)");
    v->watchdog = "the VMfailValid(7) of the injection";
    vc_run_all(v, cs, n);
    v->watchdog = NULL;
}

PROBE(vmx_entry_ctl_event_errcode, "vmx.entry.ctl_event_errcode", "VMX",
      "VM-entry checks on the injected event's error code: #GP with deliver-error-code and error "
      "code bit 16 set gives VMfailValid(7); a software interrupt (type 4) or an NMI with "
      "deliver-error-code = 1 gives VMfailValid(7); #GP with error code 0x8 is delivered with that "
      "error code",
      "Intel SDM Vol. 3C 27.2.1.3, 25.8.3", "sdm.27.2.1.3.inject-error-code-reserved",
      "sdm.27.2.1.3.inject-error-code-valid")
{
    struct vmx_vcpu *v = ec_vcpu();
    vmx_guest_idt(v);
    const uint64_t II = VMCS_ENTRY_INTR_INFO, EC = VMCS_ENTRY_EXC_ERRCODE, IL = VMCS_ENTRY_INSN_LEN;
    const struct vc_case cs[] = {
        {"#GP with error code 0x10000",
         VC_CTL,
         0,
         2,
         {F(II, INJ(INTR_TYPE_HW_EXC, GP_VECTOR) | INTR_INFO_ERRCODE), F(EC, 0x10000)}},
        {"software interrupt 0x40 with deliver-error-code",
         VC_CTL,
         0,
         3,
         {F(II, INJ(INTR_TYPE_SW_INTR, 0x40) | INTR_INFO_ERRCODE), F(EC, 0), F(IL, 2)}},
        {"NMI with deliver-error-code",
         VC_CTL,
         0,
         2,
         {F(II, INJ(INTR_TYPE_NMI, NMI_VECTOR) | INTR_INFO_ERRCODE), F(EC, 0)}},
        {"#GP with error code 8",
         VC_LAUNCH,
         0,
         2,
         {F(II, INJ(INTR_TYPE_HW_EXC, GP_VECTOR) | INTR_INFO_ERRCODE), F(EC, 8)}},
    };
    vc_run_all(v, cs, ARRAY_SIZE(cs));
}

PROBE(vmx_entry_ctl_event_insn_len, "vmx.entry.ctl_event_insn_len", "VMX",
      "VM-entry checks on the VM-entry instruction length: injecting a software interrupt, a "
      "privileged software exception or a software exception with length 16 gives "
      "VMfailValid(7), with length 0 too unless IA32_VMX_MISC[30]=1; INT 0x40 with length 2 is "
      "delivered",
      "Intel SDM Vol. 3C 27.2.1.3, 25.8.3, A.6", "sdm.27.2.1.3.inject-insn-length")
{
    struct vmx_vcpu *v = ec_vcpu();
    vmx_guest_idt(v);
    const uint64_t II = VMCS_ENTRY_INTR_INFO, IL = VMCS_ENTRY_INSN_LEN;
    struct vc_case cs[7] = {
        {"software interrupt, length 16",
         VC_CTL,
         0,
         2,
         {F(II, INJ(INTR_TYPE_SW_INTR, 0x40)), F(IL, 16)}},
        {"privileged software exception, length 16",
         VC_CTL,
         0,
         2,
         {F(II, INJ(INTR_TYPE_PRIV_SW_EXC, DB_VECTOR)), F(IL, 16)}},
        {"software exception #BP, length 16",
         VC_CTL,
         0,
         2,
         {F(II, INJ(INTR_TYPE_SW_EXC, BP_VECTOR)), F(IL, 16)}},
        {"software interrupt, length 2",
         VC_LAUNCH,
         0,
         2,
         {F(II, INJ(INTR_TYPE_SW_INTR, 0x40)), F(IL, 2)}},
    };
    unsigned n = 4;
    if (!(vmx_caps()->misc & VMX_MISC_INJECT_ZERO_LEN)) {
        cs[n++] = (struct vc_case){"software interrupt, length 0",
                                   VC_CTL,
                                   0,
                                   2,
                                   {F(II, INJ(INTR_TYPE_SW_INTR, 0x40)), F(IL, 0)}};
        cs[n++] = (struct vc_case){"software exception #BP, length 0",
                                   VC_CTL,
                                   0,
                                   2,
                                   {F(II, INJ(INTR_TYPE_SW_EXC, BP_VECTOR)), F(IL, 0)}};
    } else {
        note("IA32_VMX_MISC[30]=1: length 0 is allowed, not tried");
    }
    vc_run_all(v, cs, n);
}

PROBE(vmx_entry_ctl_host_addr_space, "vmx.entry.ctl_host_addr_space", "VMX",
      "In IA-32e mode (IA32_EFER.LMA=1), VMLAUNCH with the host address-space size exit control "
      "= 0 gives VMfailValid(8) (a host-state check), whether or not IA-32e mode guest is 1",
      "Intel SDM Vol. 3C 27.2.4, 25.7.1", "sdm.27.2.4.host-size-in-ia32e",
      "sdm.27.1.host-check-error")
{
    struct vmx_vcpu *v = ec_vcpu();
    uint32_t ex = (uint32_t)vmcs_read(VMCS_EXIT_CTLS) & ~EXIT_HOST_ADDR_64;
    uint32_t en = (uint32_t)vmcs_read(VMCS_ENTRY_CTLS);
    const struct vc_case cs[] = {
        {"host address-space size 0, IA-32e mode guest 1", VC_HOST, 0, 1, {F(VMCS_EXIT_CTLS, ex)}},
        {"host address-space size 0, IA-32e mode guest 0",
         VC_HOST,
         0,
         2,
         {F(VMCS_EXIT_CTLS, ex), F(VMCS_ENTRY_CTLS, en & ~ENTRY_IA32E_GUEST)}},
    };
    vc_run_all(v, cs, ARRAY_SIZE(cs));
}
