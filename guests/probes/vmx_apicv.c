/* SPDX-License-Identifier: MIT */
/*
 * APIC virtualization without a real interrupt: EOI, PPR and self-IPI
 * virtualization, TPR virtualization with virtual-interrupt delivery,
 * APIC-write VM exits, the TPR threshold at VM entry, and the x2APIC MSR
 * accesses that virtualize x2APIC mode turns into virtual-APIC page accesses.
 * The guest touches only its APIC-access page (an ordinary page) or the
 * x2APIC MSRs; the real local APIC is not used.
 */
#include "vmx.h"

#define VAPIC_TPR  0x080
#define VAPIC_PPR  0x0a0
#define VAPIC_ISR  0x100
#define VAPIC_IRR  0x200
#define VAPIC_ICR  0x300
#define VAPIC_VER  0x030
#define VAPIC_TMIC 0x380

static uint32_t vreg(const uint8_t *vapic, unsigned off)
{
    return *(const volatile uint32_t *)(vapic + off);
}
static void vreg_set(uint8_t *vapic, unsigned off, uint32_t val)
{
    *(volatile uint32_t *)(vapic + off) = val;
}
static bool vbit(const uint8_t *vapic, unsigned base, unsigned vector)
{
    return (vreg(vapic, base + 0x10 * (vector / 32)) >> (vector % 32)) & 1;
}
static void vbit_set(uint8_t *vapic, unsigned base, unsigned vector)
{
    vreg_set(vapic, base + 0x10 * (vector / 32),
             vreg(vapic, base + 0x10 * (vector / 32)) | 1u << (vector % 32));
}

static void require_tpr_shadow(void)
{
    vmx_require_ctl(VMX_CTL_PROC, PROC_TPR_SHADOW, "use TPR shadow");
    if (!vmx_ctl_can_clear(VMX_CTL_PROC, PROC_CR8_LOAD_EXITING | PROC_CR8_STORE_EXITING))
        skip("%s requires CR8-load/store exiting: the TPR shadow is not reached",
             vmx_ctl_name(VMX_CTL_PROC));
}

/* use TPR shadow with a fresh virtual-APIC page, threshold 0, and the
 * secondary controls proc2 */
static uint8_t *vapic_setup(uint32_t proc2)
{
    uint8_t *vapic = alloc_page();
    vmcs_clear_bits(VMCS_PROC_CTLS, PROC_CR8_LOAD_EXITING | PROC_CR8_STORE_EXITING);
    vmcs_set_bits(VMCS_PROC_CTLS, PROC_TPR_SHADOW | PROC_SECONDARY_CTLS);
    vmcs_write(VMCS_VIRTUAL_APIC_ADDR, (uintptr_t)vapic);
    vmcs_write(VMCS_TPR_THRESHOLD, 0);
    vmcs_set_bits(VMCS_PROC_CTLS2, proc2);
    if (proc2 & PROC2_VIRT_INTR_DELIVERY) {
        vmcs_set_bits(VMCS_PIN_CTLS, PIN_EXTINT_EXITING);
        for (uint64_t f = VMCS_EOI_EXIT_BITMAP0; f <= VMCS_EOI_EXIT_BITMAP3; f += 2)
            vmcs_write(f, 0);
        vmcs_write(VMCS_GUEST_INTR_STATUS, 0);
    }
    return vapic;
}

/* an APIC-access page, its address in the guest's RDI */
static void apic_access_page(struct vmx_vcpu *v)
{
    uint8_t *page = alloc_page();
    vmcs_write(VMCS_APIC_ACCESS_ADDR, (uintptr_t)page);
    v->gpr[VMX_GPR_RDI] = (uintptr_t)page;
}

static void require_vid(void)
{
    vmx_require_ctl(VMX_CTL_PROC2, PROC2_VIRT_APIC_ACCESS | PROC2_VIRT_INTR_DELIVERY,
                    "virtualize APIC accesses and virtual-interrupt delivery");
    vmx_require_ctl(VMX_CTL_PIN, PIN_EXTINT_EXITING, "external-interrupt exiting");
    require_tpr_shadow();
}

/* ---- EOI virtualization and PPR virtualization ------------------------------------ */

extern const char vmx_av_eoi_write[], vmx_av_eoi_after[];
GUEST(vmx_av_eoi_guest, "vmx_av_eoi_write:\n"
                        "    movl $0, 0xb0(%rdi)\n"
                        "vmx_av_eoi_after:\n"
                        "    vmcall\n"
                        "    ud2");

PROBE(vmx_apic_eoi_virt, "vmx.apic.eoi_virt", "VMX",
      "Virtual-interrupt delivery with an APIC-access page: VISR holds 0x50 and 0x30, SVI = 0x50, "
      "VTPR = 0x20, EOI-exit bitmap bit 0x50 set; a guest write of 0 to APIC-access page + 0xB0 "
      "(EOI) clears VISR bit 0x50 and exits with reason 45 (virtualized EOI) after the write "
      "(guest RIP = the next instruction), qualification 0x50, guest interrupt status 0x3000 (SVI "
      "0x30), VPPR = 0x30 (SVI & 0xF0 above VTPR); the EOI again, with bit 0x30 of the bitmap "
      "clear, clears VISR bit 0x30 without exit: guest interrupt status 0, VPPR = VTPR = 0x20",
      "Intel SDM Vol. 3C 30.1.1, 30.1.3, 30.1.4, 30.4.3, 28.2.1 (Table 28-1), 28.3.4",
      "sdm.30.1.4.eoi", "sdm.C.reason-45-virtualized-eoi", "sdm.28.2.1.qual-eoi", "sdm.30.1.3.ppr",
      "sdm.28.3.4.guest-intr-status", "sdm.30.1.1.virtual-apic-page")
{
    require_vid();
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_av_eoi_guest);
    uint8_t *vapic = vapic_setup(PROC2_VIRT_APIC_ACCESS | PROC2_VIRT_INTR_DELIVERY);
    apic_access_page(v);
    vreg_set(vapic, VAPIC_TPR, 0x20);
    vreg_set(vapic, VAPIC_PPR, 0x50);
    vbit_set(vapic, VAPIC_ISR, 0x50);
    vbit_set(vapic, VAPIC_ISR, 0x30);
    vmcs_write(VMCS_GUEST_INTR_STATUS, 0x5000);
    vmcs_write(VMCS_EOI_EXIT_BITMAP0 + 2 * (0x50 / 64), 1ull << (0x50 % 64));
    if (vmx_run_expect(v, EXIT_VIRT_EOI, "guest EOI of vector 0x50 (EOI-exit bitmap bit set)")) {
        check_eq("guest RIP (trap-like: after the EOI write)", v->guest_rip,
                 (uintptr_t)vmx_av_eoi_after);
        check_eq("exit qualification (the vector)", v->exit_qual, 0x50);
        check(!vbit(vapic, VAPIC_ISR, 0x50), "VISR bit 0x50 still set after the EOI");
        check(vbit(vapic, VAPIC_ISR, 0x30), "VISR bit 0x30 cleared by the EOI of 0x50");
        check_eq("guest interrupt status (SVI 0x30, RVI 0)", vmcs_read(VMCS_GUEST_INTR_STATUS),
                 0x3000);
        check_eq("VPPR (SVI 0x30 above VTPR 0x20)", vreg(vapic, VAPIC_PPR), 0x30);
    }
    vmcs_write(VMCS_GUEST_RIP, (uintptr_t)vmx_av_eoi_write);
    if (!vmx_run_expect(v, EXIT_VMCALL, "guest EOI of vector 0x30 (bitmap bit clear)"))
        return;
    check(!vbit(vapic, VAPIC_ISR, 0x30), "VISR bit 0x30 still set after the EOI");
    check_eq("guest interrupt status (SVI 0, RVI 0)", vmcs_read(VMCS_GUEST_INTR_STATUS), 0);
    check_eq("VPPR (VTPR 0x20, nothing in service)", vreg(vapic, VAPIC_PPR), 0x20);
}

/* ---- self-IPI virtualization ------------------------------------------------------ */

extern const char vmx_av_ipi_after[];
GUEST(vmx_av_ipi_guest, "    movl $0x40050, 0x300(%rdi)\n"
                        "vmx_av_ipi_after:\n"
                        "    vmcall\n"
                        "    jmp vmx_av_ipi_after");

PROBE(vmx_apic_self_ipi_virt, "vmx.apic.self_ipi_virt", "VMX",
      "Virtual-interrupt delivery with an APIC-access page, VTPR 0, nothing pending: a guest "
      "(RFLAGS.IF=0) writes 0x40050 (fixed, edge, shorthand self, vector 0x50) to APIC-access "
      "page + 0x300 (ICR low) and reaches its VMCALL without another exit; VICR low = 0x40050, "
      "VIRR has bit 0x50, guest interrupt status 0x0050 (RVI 0x50); resumed with IF=1 the guest "
      "receives vector 0x50 through its IDT at once",
      "Intel SDM Vol. 3C 30.1.1, 30.1.5, 30.4.3.1, 30.4.3.3, 30.2, 28.3.4", "sdm.30.1.5.self-ipi",
      "sdm.30.1.1.virtual-apic-page", "sdm.28.3.4.guest-intr-status")
{
    require_vid();
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_av_ipi_guest);
    vmx_guest_idt(v);
    uint8_t *vapic = vapic_setup(PROC2_VIRT_APIC_ACCESS | PROC2_VIRT_INTR_DELIVERY);
    apic_access_page(v);
    if (!vmx_run_expect(v, EXIT_VMCALL, "guest self-IPI through the ICR (IF=0)"))
        return;
    check_eq("guest RIP (the VMCALL after the ICR write)", v->guest_rip,
             (uintptr_t)vmx_av_ipi_after);
    check_eq("VICR low (virtual-APIC page + 0x300)", vreg(vapic, VAPIC_ICR), 0x40050);
    check(vbit(vapic, VAPIC_IRR, 0x50), "VIRR lacks vector 0x50 after the self-IPI");
    check_eq("guest interrupt status (RVI 0x50)", vmcs_read(VMCS_GUEST_INTR_STATUS), 0x50);
    vmcs_write(VMCS_GUEST_RFLAGS, 0x202);
    if (!vmx_run_expect(v, EXIT_VMCALL, "the guest resumed with IF=1"))
        return;
    if (check(v->gpr[VMX_GPR_RAX] == VMX_GUEST_EVENT,
              "the virtual interrupt was not delivered with IF=1 (VMCALL at %#llx)",
              (unsigned long long)v->guest_rip))
        check_eq("vector delivered", v->gpr[VMX_GPR_RBX], 0x50);
}

/* ---- APIC-write VM exits ---------------------------------------------------------- */

extern const char vmx_av_tmict_after[];
GUEST(vmx_av_tmict_guest, "    movl $0x12345, 0x380(%rdi)\n"
                          "vmx_av_tmict_after:\n"
                          "    vmcall\n"
                          "    ud2");

PROBE(vmx_apic_write_exit, "vmx.apic.write_exit", "VMX",
      "With virtualize APIC accesses, use TPR shadow and APIC-register virtualization, a guest "
      "write of 0x12345 to APIC-access page + 0x380 (timer initial count) is written to the "
      "virtual-APIC page at 0x380 and exits with reason 56 (APIC write) after the write (guest RIP "
      "= the next instruction), qualification 0x380",
      "Intel SDM Vol. 3C 30.4.3.1, 30.4.3.2, 30.4.3.3, 28.1, 28.2.1 (Table 28-1)",
      "sdm.30.4.3.apic-write-exit", "sdm.C.reason-56-apic-write", "sdm.28.2.1.qual-apic-write",
      "sdm.28.1.trap-like")
{
    vmx_require_ctl(VMX_CTL_PROC2, PROC2_VIRT_APIC_ACCESS | PROC2_APIC_REG_VIRT,
                    "virtualize APIC accesses and APIC-register virtualization");
    require_tpr_shadow();
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_av_tmict_guest);
    uint8_t *vapic = vapic_setup(PROC2_VIRT_APIC_ACCESS | PROC2_APIC_REG_VIRT);
    apic_access_page(v);
    if (!vmx_run_expect(v, EXIT_APIC_WRITE, "guest write of the timer initial count"))
        return;
    check_eq("guest RIP (trap-like: after the write)", v->guest_rip, (uintptr_t)vmx_av_tmict_after);
    check_eq("exit qualification (the page offset)", v->exit_qual, 0x380);
    check_eq("virtual-APIC page + 0x380", vreg(vapic, VAPIC_TMIC), 0x12345);
}

/* ---- TPR virtualization with virtual-interrupt delivery --------------------------- */

extern const char vmx_av_cr8_load[], vmx_av_cr8_next[];
GUEST(vmx_av_cr8_guest, "vmx_av_cr8_load:\n"
                        "    mov %rax, %cr8\n"
                        "vmx_av_cr8_next:\n"
                        "    vmcall\n"
                        "    ud2");

PROBE(vmx_apic_tpr_vid, "vmx.apic.tpr_vid", "VMX",
      "With virtual-interrupt delivery, VTPR = 0x50, TPR threshold 15 and vector 0x30 pending "
      "(VIRR, RVI 0x30): a guest with RFLAGS.IF=0 executes MOV CR8 of 2: no TPR-below-threshold "
      "exit, VTPR = 0x20 and VPPR = 0x20 (PPR virtualization); again from VTPR = VPPR = 0x50 with "
      "IF=1: the MOV CR8 makes vector 0x30 deliverable and the guest receives it through its IDT "
      "right after the MOV (pushed RIP = the next instruction), without a VM exit",
      "Intel SDM Vol. 3C 30.1.2, 30.1.3, 30.2.1, 30.3", "sdm.30.1.2.tpr-vid", "sdm.30.1.3.ppr")
{
    require_vid();
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_av_cr8_guest);
    vmx_guest_idt(v);
    uint8_t *vapic = vapic_setup(PROC2_VIRT_APIC_ACCESS | PROC2_VIRT_INTR_DELIVERY);
    apic_access_page(v);
    vmcs_write(VMCS_TPR_THRESHOLD, 15);
    vbit_set(vapic, VAPIC_IRR, 0x30);
    vmcs_write(VMCS_GUEST_INTR_STATUS, 0x30);
    vreg_set(vapic, VAPIC_TPR, 0x50);
    vreg_set(vapic, VAPIC_PPR, 0x50);
    v->gpr[VMX_GPR_RAX] = 2;
    if (vmx_run_expect(v, EXIT_VMCALL, "guest MOV CR8 of 2 with IF=0")) {
        check_eq("guest RIP (the VMCALL)", v->guest_rip, (uintptr_t)vmx_av_cr8_next);
        check_eq("VTPR", vreg(vapic, VAPIC_TPR), 0x20);
        check_eq("VPPR after PPR virtualization", vreg(vapic, VAPIC_PPR), 0x20);
    }
    vreg_set(vapic, VAPIC_TPR, 0x50);
    vreg_set(vapic, VAPIC_PPR, 0x50);
    vmcs_write(VMCS_GUEST_RIP, (uintptr_t)vmx_av_cr8_load);
    vmcs_write(VMCS_GUEST_RFLAGS, 0x202);
    if (!vmx_run_expect(v, EXIT_VMCALL, "guest MOV CR8 of 2 with IF=1"))
        return;
    if (!check(v->gpr[VMX_GPR_RAX] == VMX_GUEST_EVENT,
               "no virtual interrupt delivered after the MOV CR8 lowered VTPR (VMCALL at %#llx)",
               (unsigned long long)v->guest_rip))
        return;
    check_eq("vector delivered", v->gpr[VMX_GPR_RBX], 0x30);
    check_eq("RIP pushed (after the MOV CR8)", v->gpr[VMX_GPR_RDX], (uintptr_t)vmx_av_cr8_next);
}

/* ---- the TPR threshold at VM entry ------------------------------------------------ */

GUEST(vmx_av_loop_guest, "1: vmcall", "jmp 1b");

PROBE(vmx_apic_tpr_threshold_entry, "vmx.apic.tpr_threshold_entry", "VMX",
      "With use TPR shadow and virtualize APIC accesses (so that VM entry does not check the "
      "threshold against VTPR), no virtual-interrupt delivery, VTPR = 0x50 and TPR threshold 6: "
      "VMLAUNCH succeeds and a VM exit with reason 43 follows at once, before the guest's first "
      "instruction (guest RIP = the entry RIP), qualification 0; with threshold 5 the guest runs",
      "Intel SDM Vol. 3C 27.7.7, 27.2.1.1, 30.1.2", "sdm.27.7.7.tpr-threshold")
{
    vmx_require_ctl(VMX_CTL_PROC2, PROC2_VIRT_APIC_ACCESS, "virtualize APIC accesses");
    require_tpr_shadow();
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_av_loop_guest);
    uint64_t rip = vmcs_read(VMCS_GUEST_RIP);
    uint8_t *vapic = vapic_setup(PROC2_VIRT_APIC_ACCESS);
    apic_access_page(v);
    vreg_set(vapic, VAPIC_TPR, 0x50);
    vmcs_write(VMCS_TPR_THRESHOLD, 6);
    if (vmx_run_expect(v, EXIT_TPR_BELOW, "VM entry with TPR threshold 6 above VTPR[7:4] 5")) {
        check_eq("guest RIP (no instruction executed)", v->guest_rip, rip);
        check_eq("exit qualification", v->exit_qual, 0);
    }
    vmcs_write(VMCS_TPR_THRESHOLD, 5);
    vmx_run_expect(v, EXIT_VMCALL, "VM entry with TPR threshold 5");
}

/* ---- APIC-access page: priority, and accesses that are not linear ----------------- */

#define AV_L SLOT1_LINEAR

/* Loads slot1_tables() mapping AV_L to `page` as the guest's CR3; *pte
 * gets the PTE. */
static void guest_tables(uint64_t page, uint64_t **pte)
{
    vmcs_write(VMCS_GUEST_CR3, (uintptr_t)slot1_tables(page, pte) | (read_cr3() & 0xfff));
}

extern const char vmx_av_store[];
GUEST(vmx_av_store_guest, "vmx_av_store:", "movl $0, (%rdi)", "vmcall", "ud2");

PROBE(vmx_apic_access_priority, "vmx.apic.access_priority", "VMX",
      "With virtualize APIC accesses, the guest's own page tables mapping linear 512 GiB to the "
      "APIC-access page through a read-only PTE and CR0.WP=1: a guest write there takes the page "
      "fault (exit 0, vector 14, error code 3, qualification = the linear address), not an "
      "APIC-access VM exit; with the PTE writable the write exits with reason 44, qualification "
      "0x1000 (linear write, offset 0)",
      "Intel SDM Vol. 3C 30.4.1 (Priority of APIC-Access VM Exits), 28.2.1",
      "sdm.30.4.1.access-priority")
{
    vmx_require_ctl(VMX_CTL_PROC2, PROC2_VIRT_APIC_ACCESS, "virtualize APIC accesses");
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_av_store_guest);
    uint8_t *page = alloc_page();
    vmcs_set_bits(VMCS_PROC_CTLS, PROC_SECONDARY_CTLS);
    vmcs_set_bits(VMCS_PROC_CTLS2, PROC2_VIRT_APIC_ACCESS);
    vmcs_write(VMCS_APIC_ACCESS_ADDR, (uintptr_t)page);
    vmcs_write(VMCS_GUEST_CR0, vmcs_read(VMCS_GUEST_CR0) | CR0_WP);
    uint64_t *pte;
    guest_tables((uintptr_t)page, &pte);
    *pte &= ~2ull;
    v->gpr[VMX_GPR_RDI] = AV_L;
    if (vmx_run_expect(v, EXIT_EXCEPTION_NMI, "guest write through a read-only PTE")) {
        check_eq("VM-exit interruption information", v->exit_intr_info,
                 INTR_INFO_VALID | INTR_INFO_ERRCODE | (INTR_TYPE_HW_EXC << 8) | 14);
        check_eq("page-fault error code", v->exit_intr_err, 3);
        check_eq("exit qualification (the faulting linear address)", v->exit_qual, AV_L);
    }
    *pte |= 2;
    vmcs_write(VMCS_GUEST_RIP, (uintptr_t)vmx_av_store);
    if (vmx_run_expect(v, EXIT_APIC_ACCESS, "guest write through a writable PTE")) {
        check_eq("guest RIP (the write)", v->guest_rip, (uintptr_t)vmx_av_store);
        check_eq("exit qualification (linear write, offset 0)", v->exit_qual, 0x1000);
    }
}

GUEST(vmx_av_read_guest, "mov (%rdi), %rax", "vmcall", "ud2");

PROBE(vmx_apic_gpa_access, "vmx.apic.gpa_access", "VMX",
      "With EPT and virtualize APIC accesses, the APIC-access page is the guest's own PT page T "
      "(its PTE for linear 512 GiB at T + 0): a guest read of linear 512 GiB makes the page walk "
      "read T, a guest-physical access: it exits with reason 44, access type 15 (qualification "
      "bits 15:12; guest-physical access during instruction execution), guest RIP = the read",
      "Intel SDM Vol. 3C 30.4.6.1, 28.2.1 (Table 28-6)", "sdm.30.4.6.gpa-access")
{
    vmx_require_ctl(VMX_CTL_PROC2, PROC2_VIRT_APIC_ACCESS | PROC2_EPT,
                    "virtualize APIC accesses and enable EPT");
    vmx_on();
    uint64_t eptp = vmx_ept_identity();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_av_read_guest);
    vmx_use_ept(v, eptp);
    uint64_t *pte;
    guest_tables((uintptr_t)alloc_page(), &pte);
    vmcs_set_bits(VMCS_PROC_CTLS2, PROC2_VIRT_APIC_ACCESS);
    vmcs_write(VMCS_APIC_ACCESS_ADDR, (uintptr_t)pte & ~0xfffull);
    v->gpr[VMX_GPR_RDI] = AV_L;
    if (!vmx_run_expect(v, EXIT_APIC_ACCESS, "guest read whose PTE is in the APIC-access page"))
        return;
    check_eq("guest RIP (the read)", v->guest_rip, (uintptr_t)vmx_av_read_guest);
    check(((v->exit_qual >> 12) & 0xf) == 15,
          "access type (exit qualification bits 15:12) %llu, want 15 (qualification %#llx)",
          (unsigned long long)((v->exit_qual >> 12) & 0xf), (unsigned long long)v->exit_qual);
}

/* ---- virtualize x2APIC mode --------------------------------------------------------- */

GUEST(vmx_av_rdmsr_guest, "mov %esi, %ecx", "rdmsr", "vmcall", "ud2");
GUEST(vmx_av_wrmsr_guest, "mov %esi, %ecx", "wrmsr", "vmcall", "ud2");

/* virtualize x2APIC mode (and extra) with MSR bitmaps that intercept nothing */
static uint8_t *x2apic_setup(uint32_t extra)
{
    uint8_t *vapic = vapic_setup(PROC2_VIRT_X2APIC | extra);
    vmcs_set_bits(VMCS_PROC_CTLS, PROC_MSR_BITMAPS);
    vmcs_write(VMCS_MSR_BITMAP, (uintptr_t)alloc_page());
    return vapic;
}

static void require_x2apic_virt(uint32_t extra, const char *what)
{
    vmx_require_ctl(VMX_CTL_PROC2, PROC2_VIRT_X2APIC | extra, what);
    vmx_require_ctl(VMX_CTL_PROC, PROC_MSR_BITMAPS, "use MSR bitmaps");
    require_tpr_shadow();
}

PROBE(vmx_apic_x2apic_read, "vmx.apic.x2apic_read", "VMX",
      "With virtualize x2APIC mode, APIC-register virtualization, use TPR shadow and MSR bitmaps "
      "of zeros: guest RDMSR 0x808 (TPR) returns EDX:EAX = the 8 bytes at virtual-APIC page + "
      "0x80 (0:0x40) and RDMSR 0x803 (version) those at + 0x30 (0:0x00aa0014), both without a VM "
      "exit",
      "Intel SDM Vol. 3C 30.5 (Virtualizing MSR-Based APIC Accesses)", "sdm.30.5.x2apic-read")
{
    require_x2apic_virt(PROC2_APIC_REG_VIRT,
                        "virtualize x2APIC mode and APIC-register virtualization");
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_av_rdmsr_guest);
    uint8_t *vapic = x2apic_setup(PROC2_APIC_REG_VIRT);
    vreg_set(vapic, VAPIC_TPR, 0x40);
    vreg_set(vapic, VAPIC_VER, 0x00aa0014);
    static const struct {
        uint32_t msr, want;
        const char *what;
    } rd[] = {{0x808, 0x40, "RDMSR 0x808 (TPR)"}, {0x803, 0x00aa0014, "RDMSR 0x803 (version)"}};
    uint64_t rip = vmcs_read(VMCS_GUEST_RIP);
    for (unsigned i = 0; i < ARRAY_SIZE(rd); i++) {
        vmcs_write(VMCS_GUEST_RIP, rip);
        v->gpr[VMX_GPR_RSI] = rd[i].msr;
        v->gpr[VMX_GPR_RAX] = v->gpr[VMX_GPR_RDX] = 0xdeadbeefull;
        if (!vmx_run_expect(v, EXIT_VMCALL, rd[i].what))
            continue;
        check(v->gpr[VMX_GPR_RAX] == rd[i].want && v->gpr[VMX_GPR_RDX] == 0,
              "%s: EDX:EAX = %#llx:%#llx, want 0:%#x", rd[i].what,
              (unsigned long long)v->gpr[VMX_GPR_RDX], (unsigned long long)v->gpr[VMX_GPR_RAX],
              rd[i].want);
    }
}

PROBE(vmx_apic_x2apic_write, "vmx.apic.x2apic_write", "VMX",
      "With virtualize x2APIC mode, use TPR shadow (threshold 0) and MSR bitmaps of zeros: guest "
      "WRMSR 0x808 (TPR) of 0x60 writes VTPR = 0x60 without a VM exit; where virtual-interrupt "
      "delivery is offered (and on), WRMSR 0x83F (self IPI) of 0x50 sets VIRR bit 0x50 and RVI "
      "0x50, and WRMSR 0x80B (EOI) of 0 with 0x30 in service (VISR, SVI) clears VISR bit 0x30 and "
      "SVI, each without a VM exit (guest RFLAGS.IF=0)",
      "Intel SDM Vol. 3C 30.5 (Virtualizing MSR-Based APIC Accesses), 30.1.2, 30.1.4, 30.1.5",
      "sdm.30.5.x2apic-write")
{
    require_x2apic_virt(0, "virtualize x2APIC mode");
    bool vid = vmx_ctl_can_set(VMX_CTL_PROC2, PROC2_VIRT_INTR_DELIVERY) &&
               vmx_ctl_can_set(VMX_CTL_PIN, PIN_EXTINT_EXITING);
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_av_wrmsr_guest);
    uint64_t rip = vmcs_read(VMCS_GUEST_RIP);
    uint8_t *vapic = x2apic_setup(vid ? PROC2_VIRT_INTR_DELIVERY : 0);
    v->gpr[VMX_GPR_RSI] = 0x808;
    v->gpr[VMX_GPR_RAX] = 0x60;
    v->gpr[VMX_GPR_RDX] = 0;
    if (vmx_run_expect(v, EXIT_VMCALL, "WRMSR 0x808 (TPR) of 0x60"))
        check_eq("VTPR", vreg(vapic, VAPIC_TPR), 0x60);
    if (!vid) {
        note("virtual-interrupt delivery not offered: the self-IPI and EOI writes not run");
        return;
    }
    vreg_set(vapic, VAPIC_TPR, 0);
    vreg_set(vapic, VAPIC_PPR, 0x30);
    vbit_set(vapic, VAPIC_ISR, 0x30);
    vmcs_write(VMCS_GUEST_INTR_STATUS, 0x3000);
    vmcs_write(VMCS_GUEST_RIP, rip);
    v->gpr[VMX_GPR_RSI] = 0x80b;
    v->gpr[VMX_GPR_RAX] = 0;
    if (vmx_run_expect(v, EXIT_VMCALL, "WRMSR 0x80B (EOI) of 0")) {
        check(!vbit(vapic, VAPIC_ISR, 0x30), "VISR bit 0x30 still set after the EOI");
        check_eq("guest interrupt status after the EOI", vmcs_read(VMCS_GUEST_INTR_STATUS), 0);
    }
    vmcs_write(VMCS_GUEST_RIP, rip);
    v->gpr[VMX_GPR_RSI] = 0x83f;
    v->gpr[VMX_GPR_RAX] = 0x50;
    if (vmx_run_expect(v, EXIT_VMCALL, "WRMSR 0x83F (self IPI) of 0x50")) {
        check(vbit(vapic, VAPIC_IRR, 0x50), "VIRR lacks vector 0x50 after the self IPI");
        check_eq("guest interrupt status (RVI 0x50)", vmcs_read(VMCS_GUEST_INTR_STATUS), 0x50);
    }
}
