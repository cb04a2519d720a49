/* SPDX-License-Identifier: MIT */
/*
 * VMX and the local APIC: external-interrupt and NMI exiting with real
 * interrupts (self-IPIs sent by the guest through the xAPIC ICR),
 * acknowledge interrupt on exit, CR8 exiting, the TPR shadow and its
 * threshold, and APIC-access VM exits.
 *
 * The probes use the xAPIC MMIO page (identity-mapped by the kernel and
 * shared with the guest). They software-enable the APIC through the
 * spurious-interrupt vector register if the firmware left it disabled and
 * put SVR back at the end; interrupts stay disabled in the host, and every
 * interrupt a probe raises is acknowledged and EOIed before it returns.
 */
#include "vmx.h"

#define ICR_FIXED  (0u << 8)
#define ICR_NMI    (4u << 8)
#define ICR_ASSERT (1u << 14)
#define ICR_SELF   (1u << 18)

#define TEST_VECTOR 0x40

static volatile uint32_t *apic;
static uint32_t apic_svr_saved;

static uint32_t apic_read(unsigned reg) { return apic[reg / 4]; }
static void apic_write(unsigned reg, uint32_t v) { apic[reg / 4] = v; }

static bool apic_bit(unsigned base, unsigned vector)
{
    return (apic_read(base + 0x10 * (vector / 32)) >> (vector % 32)) & 1;
}

/* The xAPIC, software-enabled, TPR 0. skip() without an APIC. */
static void apic_setup(void)
{
    if (!(cpuid(1, 0).d & BIT(9)))
        skip("CPUID.1:EDX.APIC[bit 9]=0: no local APIC");
    uint64_t base = rdmsr(MSR_IA32_APIC_BASE);
    if (!(base & APIC_BASE_ENABLE))
        error("the local APIC is globally disabled (IA32_APIC_BASE=%#llx)",
              (unsigned long long)base);
    if (base & APIC_BASE_X2APIC)
        error("the local APIC is in x2APIC mode (IA32_APIC_BASE=%#llx); the probe uses xAPIC MMIO",
              (unsigned long long)base);
    apic = (volatile uint32_t *)(uintptr_t)(base & 0xfffff000ull);
    apic_svr_saved = apic_read(APIC_SVR);
    apic_write(APIC_SVR, apic_svr_saved | 0x1ff);
    apic_write(APIC_TPR, 0);
}

/* Nothing of TEST_VECTOR left in service or requested; SVR as it was. */
static void apic_done(void)
{
    for (int i = 0; i < 4 && apic_bit(APIC_ISR, TEST_VECTOR); i++)
        apic_write(APIC_EOI, 0);
    check(!apic_bit(APIC_IRR, TEST_VECTOR), "vector %#x still requested in the APIC IRR",
          TEST_VECTOR);
    apic_write(APIC_SVR, apic_svr_saved);
}

/*
 * Guest: writes ECX to the ICR (RDI = its address), then counts RBX down
 * from 100000 (the window in which the interrupt arrives) and VMCALLs.
 */
extern const char vmx_ap_ipi_sent[], vmx_ap_ipi_end[];
GUEST(vmx_ap_ipi_guest, "    mov $100000, %ebx\n"
                        "    movl %ecx, (%rdi)\n"
                        "vmx_ap_ipi_sent:\n"
                        "    1: dec %ebx\n"
                        "    jnz 1b\n"
                        "vmx_ap_ipi_end:\n"
                        "    vmcall\n"
                        "    jmp vmx_ap_ipi_end");

GUEST(vmx_ap_cli_guest, "cli", "jmp vmx_ap_ipi_guest");

static struct vmx_vcpu *ipi_vcpu(uint32_t icr)
{
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ap_ipi_guest);
    v->gpr[VMX_GPR_RDI] = (uintptr_t)&apic[APIC_ICR / 4];
    v->gpr[VMX_GPR_RCX] = icr;
    return v;
}

/* the exit came after the ICR write and before the guest's VMCALL */
static void check_in_window(struct vmx_vcpu *v, const char *what)
{
    check(v->guest_rip >= (uintptr_t)vmx_ap_ipi_sent && v->guest_rip < (uintptr_t)vmx_ap_ipi_end,
          "%s: guest RIP %#llx not between the ICR write (%#llx) and the VMCALL (%#llx)", what,
          (unsigned long long)v->guest_rip, (unsigned long long)(uintptr_t)vmx_ap_ipi_sent,
          (unsigned long long)(uintptr_t)vmx_ap_ipi_end);
}

/* Consumes a pending TEST_VECTOR: a guest entered with IF=1, external-interrupt
 * exiting and acknowledge interrupt on exit exits at once, acknowledging it;
 * then EOI. */
static void consume_pending(struct vmx_vcpu *v)
{
    if (!apic_bit(APIC_IRR, TEST_VECTOR) || !vmx_ctl_can_set(VMX_CTL_EXIT, EXIT_ACK_INTR))
        return;
    vmcs_set_bits(VMCS_PIN_CTLS, PIN_EXTINT_EXITING);
    vmcs_set_bits(VMCS_EXIT_CTLS, EXIT_ACK_INTR);
    vmcs_write(VMCS_GUEST_RFLAGS, 0x202);
    vmcs_write(VMCS_GUEST_RIP, (uintptr_t)vmx_ap_ipi_end);
    vmx_run(v);
    if (apic_bit(APIC_ISR, TEST_VECTOR))
        apic_write(APIC_EOI, 0);
}

PROBE(vmx_intercept_extint, "vmx.intercept.extint", "VMX",
      "With external-interrupt exiting and acknowledge interrupt on exit=0, a guest (RFLAGS.IF=1) "
      "sends itself a fixed IPI (vector 0x40) through the xAPIC ICR: VM exit with reason 1 at an "
      "instruction boundary after the ICR write, exit qualification 0, VM-exit interruption "
      "information invalid (bit 31 clear), the vector still requested in the APIC IRR and not in "
      "service",
      "Intel SDM Vol. 3C 25.6.1, 25.7.1, 26.2, 28.1, 28.2.2", "sdm.25.6.1.extint-exiting",
      "sdm.28.1.extint-not-acked", "sdm.C.reason-1-external-interrupt")
{
    vmx_require_ctl(VMX_CTL_PIN, PIN_EXTINT_EXITING, "external-interrupt exiting");
    if (!vmx_ctl_can_clear(VMX_CTL_EXIT, EXIT_ACK_INTR))
        skip("%s requires acknowledge interrupt on exit (control bit 15)",
             vmx_ctl_name(VMX_CTL_EXIT));
    apic_setup();
    vmx_on();
    struct vmx_vcpu *v = ipi_vcpu(ICR_SELF | ICR_ASSERT | ICR_FIXED | TEST_VECTOR);
    vmcs_set_bits(VMCS_PIN_CTLS, PIN_EXTINT_EXITING);
    vmcs_clear_bits(VMCS_EXIT_CTLS, EXIT_ACK_INTR);
    vmcs_write(VMCS_GUEST_RFLAGS, 0x202);
    if (vmx_run_expect(v, EXIT_EXTERNAL_INTR, "guest self-IPI")) {
        check_in_window(v, "external-interrupt exit");
        check(!(v->exit_intr_info & INTR_INFO_VALID),
              "VM-exit interruption information %#x valid without acknowledge interrupt on exit",
              v->exit_intr_info);
        check_eq("exit qualification", v->exit_qual, 0);
        check(apic_bit(APIC_IRR, TEST_VECTOR),
              "vector %#x not requested in the APIC IRR after "
              "the exit (the interrupt was not left pending)",
              TEST_VECTOR);
        check(!apic_bit(APIC_ISR, TEST_VECTOR),
              "vector %#x in service after an exit without "
              "acknowledge",
              TEST_VECTOR);
    }
    consume_pending(v);
    apic_done();
}

PROBE(vmx_intercept_extint_ack, "vmx.intercept.extint_ack", "VMX",
      "With external-interrupt exiting and acknowledge interrupt on exit=1, a guest self-IPI "
      "(fixed, vector 0x40) exits with reason 1 and VM-exit interruption information 0x80000040 "
      "(valid, external interrupt, vector 0x40); the interrupt was acknowledged: the vector is in "
      "service (ISR) and no longer requested (IRR) until the host's EOI",
      "Intel SDM Vol. 3C 25.7.1, 26.2, 28.1, 28.2.2", "sdm.28.1.extint-not-acked",
      "sdm.28.2.2.intr-info")
{
    vmx_require_ctl(VMX_CTL_PIN, PIN_EXTINT_EXITING, "external-interrupt exiting");
    vmx_require_ctl(VMX_CTL_EXIT, EXIT_ACK_INTR, "acknowledge interrupt on exit");
    apic_setup();
    vmx_on();
    struct vmx_vcpu *v = ipi_vcpu(ICR_SELF | ICR_ASSERT | ICR_FIXED | TEST_VECTOR);
    vmcs_set_bits(VMCS_PIN_CTLS, PIN_EXTINT_EXITING);
    vmcs_set_bits(VMCS_EXIT_CTLS, EXIT_ACK_INTR);
    vmcs_write(VMCS_GUEST_RFLAGS, 0x202);
    if (vmx_run_expect(v, EXIT_EXTERNAL_INTR, "guest self-IPI")) {
        check_in_window(v, "external-interrupt exit");
        check_eq("VM-exit interruption information", v->exit_intr_info,
                 INTR_INFO_VALID | (INTR_TYPE_EXT_INTR << 8) | TEST_VECTOR);
        check(apic_bit(APIC_ISR, TEST_VECTOR),
              "vector %#x not in service after an "
              "acknowledging exit",
              TEST_VECTOR);
        check(!apic_bit(APIC_IRR, TEST_VECTOR),
              "vector %#x still requested after an "
              "acknowledging exit",
              TEST_VECTOR);
        check(!(v->idt_info & INTR_INFO_VALID), "IDT-vectoring information valid: %#x",
              v->idt_info);
    }
    consume_pending(v);
    apic_done();
}

PROBE(vmx_intercept_extint_if0, "vmx.intercept.extint_if0", "VMX",
      "With external-interrupt exiting (and acknowledge on exit where offered), RFLAGS.IF does not "
      "block external interrupts: a guest entered with IF=1 that executes CLI and then sends "
      "itself "
      "a fixed IPI exits with reason 1; so does a guest entered with IF=0",
      "Intel SDM Vol. 3C 25.6.1 (Table 25-5, external-interrupt exiting), 26.2", "sdm.26.2.extint",
      "sdm.26.4.1.extint-blocking")
{
    vmx_require_ctl(VMX_CTL_PIN, PIN_EXTINT_EXITING, "external-interrupt exiting");
    apic_setup();
    vmx_on();
    struct vmx_vcpu *v = ipi_vcpu(ICR_SELF | ICR_ASSERT | ICR_FIXED | TEST_VECTOR);
    vmcs_set_bits(VMCS_PIN_CTLS, PIN_EXTINT_EXITING);
    if (vmx_ctl_can_set(VMX_CTL_EXIT, EXIT_ACK_INTR))
        vmcs_set_bits(VMCS_EXIT_CTLS, EXIT_ACK_INTR);
    /* entered with IF=1, CLI as the first instruction */
    vmcs_write(VMCS_GUEST_RFLAGS, 0x202);
    vmcs_write(VMCS_GUEST_RIP, (uintptr_t)vmx_ap_cli_guest);
    if (vmx_run_expect(v, EXIT_EXTERNAL_INTR, "guest CLI, then self-IPI"))
        check_in_window(v, "external-interrupt exit after CLI");
    consume_pending(v);
    if (apic_bit(APIC_ISR, TEST_VECTOR))
        apic_write(APIC_EOI, 0);
    /* entered with IF=0 */
    vmcs_write(VMCS_GUEST_RFLAGS, 0x2);
    vmcs_write(VMCS_GUEST_RIP, (uintptr_t)vmx_ap_ipi_guest);
    if (vmx_run_expect(v, EXIT_EXTERNAL_INTR, "guest entered with IF=0, then self-IPI"))
        check_in_window(v, "external-interrupt exit with IF=0 from VM entry");
    consume_pending(v);
    apic_done();
}

static void send_self_nmi(void *arg)
{
    (void)arg;
    apic_write(APIC_ICR, ICR_ASSERT | ICR_NMI);
    for (volatile int i = 0; i < 1000; i++)
        ;
}

PROBE(vmx_intercept_nmi_exiting, "vmx.intercept.nmi_exiting", "VMX",
      "With NMI exiting (virtual NMIs off, then on), a guest sends itself an NMI through the xAPIC "
      "ICR (delivery mode NMI, physical destination = its APIC ID): VM exit with reason 0 and "
      "VM-exit interruption information 0x80000202 (valid, NMI, vector 2) after the ICR write; "
      "after the exit NMIs are blocked in the host: a second self-NMI is held until the host "
      "executes IRET, then delivered",
      "Intel SDM Vol. 3C 25.6.1, 26.2, 28.1, 28.2.2; Vol. 3A 6.7.1", "sdm.25.6.1.nmi-exiting",
      "sdm.26.2.nmi", "sdm.28.2.2.intr-info", "sdm.28.1.nmi-blocking")
{
    vmx_require_ctl(VMX_CTL_PIN, PIN_NMI_EXITING, "NMI exiting");
    apic_setup();
    vmx_on();
    apic_write(APIC_ICR2, apic_read(APIC_ID) & 0xff000000u);
    for (int vnmi = 0; vnmi < 2; vnmi++) {
        if (vnmi && !vmx_ctl_can_set(VMX_CTL_PIN, PIN_VIRTUAL_NMIS)) {
            note("virtual NMIs not offered (%s[37]=0): that half not run",
                 vmx_ctl_name(VMX_CTL_PIN));
            break;
        }
        struct vmx_vcpu *v = ipi_vcpu(ICR_ASSERT | ICR_NMI);
        vmx_guest_idt(v);
        vmcs_set_bits(VMCS_PIN_CTLS, PIN_NMI_EXITING | (vnmi ? PIN_VIRTUAL_NMIS : 0));
        const char *what = vnmi ? "guest self-NMI, virtual NMIs=1" : "guest self-NMI";
        bool exited = vmx_run_expect(v, EXIT_EXCEPTION_NMI, what);
        if (exited) {
            check_in_window(v, what);
            check_eq("VM-exit interruption information of the NMI exit", v->exit_intr_info,
                     INTR_INFO_VALID | (INTR_TYPE_NMI << 8) | NMI_VECTOR);
            check(!(v->idt_info & INTR_INFO_VALID), "IDT-vectoring information valid: %#x",
                  v->idt_info);
            struct fault f;
            int vec = catch_fault(send_self_nmi, NULL, &f);
            check(vec == NO_FAULT,
                  "%s: a host self-NMI after the NMI exit was delivered (%s): "
                  "NMIs not blocked after the VM exit",
                  what, fault_str(&f));
            if (vec == NO_FAULT) {
                vec = catch_fault(iret_self, NULL, &f);
                check(vec == NMI_VECTOR,
                      "%s: the held NMI was not delivered after the host's "
                      "IRET (got %s)",
                      what, fault_str(&f));
            }
        }
        catch_fault(iret_self, NULL, NULL); /* leave NMIs unblocked */
    }
    apic_done();
}

/* ---- CR8 and the TPR shadow ------------------------------------------------------- */

extern const char vmx_ap_cr8_load[], vmx_ap_cr8_store[], vmx_ap_cr8_end[];
GUEST(vmx_ap_cr8_guest, "vmx_ap_cr8_load:\n"
                        "    mov %rax, %cr8\n"
                        "vmx_ap_cr8_store:\n"
                        "    mov %cr8, %rbx\n"
                        "vmx_ap_cr8_end:\n"
                        "    vmcall\n"
                        "    ud2");

PROBE(vmx_intercept_cr8, "vmx.intercept.cr8", "VMX",
      "With CR8-load and CR8-store exiting (TPR shadow off), guest MOV CR8,RAX exits with reason "
      "28, "
      "qualification 0x8 (CR8, MOV to CR, RAX), length 4, and MOV RBX,CR8 with qualification "
      "0x318 (CR8, MOV from CR, RBX), length 4; the real CR8 is not changed",
      "Intel SDM Vol. 3C 25.6.2, 26.1.3, 28.2.1", "sdm.26.1.3.mov-cr8", "sdm.28.2.1.qual-cr-access",
      "sdm.25.6.2.primary-controls")
{
    vmx_require_ctl(VMX_CTL_PROC, PROC_CR8_LOAD_EXITING | PROC_CR8_STORE_EXITING,
                    "CR8-load and CR8-store exiting");
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ap_cr8_guest);
    vmcs_set_bits(VMCS_PROC_CTLS, PROC_CR8_LOAD_EXITING | PROC_CR8_STORE_EXITING);
    v->gpr[VMX_GPR_RAX] = 7;
    if (!vmx_run_expect(v, EXIT_CR_ACCESS, "guest MOV CR8,RAX"))
        return;
    check_eq("guest RIP", v->guest_rip, (uintptr_t)vmx_ap_cr8_load);
    check_eq("exit qualification of MOV CR8,RAX", v->exit_qual, 0x8);
    check_eq("VM-exit instruction length", v->insn_len, 4);
    check_eq("host CR8 (the load did not happen)", read_cr8(), 0);
    vmx_skip_insn(v);
    if (!vmx_run_expect(v, EXIT_CR_ACCESS, "guest MOV RBX,CR8"))
        return;
    check_eq("guest RIP", v->guest_rip, (uintptr_t)vmx_ap_cr8_store);
    check_eq("exit qualification of MOV RBX,CR8", v->exit_qual, 0x318);
    check_eq("VM-exit instruction length", v->insn_len, 4);
    vmx_skip_insn(v);
    vmx_run_expect(v, EXIT_VMCALL, "VMRESUME after the CR8 exits");
}

/* TPR shadow: a virtual-APIC page with VTPR = vtpr, threshold thr */
static uint8_t *tpr_shadow_setup(uint32_t vtpr, uint32_t thr)
{
    uint8_t *vapic = alloc_page();
    *(volatile uint32_t *)(vapic + APIC_TPR) = vtpr;
    vmcs_clear_bits(VMCS_PROC_CTLS, PROC_CR8_LOAD_EXITING | PROC_CR8_STORE_EXITING);
    vmcs_set_bits(VMCS_PROC_CTLS, PROC_TPR_SHADOW);
    vmcs_write(VMCS_VIRTUAL_APIC_ADDR, (uintptr_t)vapic);
    vmcs_write(VMCS_TPR_THRESHOLD, thr);
    return vapic;
}

static void require_tpr_shadow(void)
{
    vmx_require_ctl(VMX_CTL_PROC, PROC_TPR_SHADOW, "use TPR shadow");
    if (!vmx_ctl_can_clear(VMX_CTL_PROC, PROC_CR8_LOAD_EXITING | PROC_CR8_STORE_EXITING))
        skip("%s requires CR8-load/store exiting: the TPR shadow is not reached",
             vmx_ctl_name(VMX_CTL_PROC));
}

PROBE(vmx_intercept_tpr_shadow, "vmx.intercept.tpr_shadow", "VMX",
      "With use TPR shadow (virtual-APIC page VTPR = 0x30, TPR threshold 0) and CR8 exiting off, "
      "guest MOV RBX,CR8 reads 3 (VTPR[7:4]) and MOV CR8,RAX with RAX=5 writes VTPR = 0x50 (bits "
      "3:0 and 31:8 cleared), both without a VM exit; the real CR8 stays 0",
      "Intel SDM Vol. 3C 25.6.2, 25.6.8, 30.3 (Virtualizing CR8-Based TPR Accesses)",
      "sdm.30.3.cr8-read", "sdm.30.3.cr8-write", "sdm.25.6.2.primary-controls")
{
    require_tpr_shadow();
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ap_cr8_guest);
    uint8_t *vapic = tpr_shadow_setup(0x30, 0);
    v->gpr[VMX_GPR_RAX] = 5;
    /* store first: start at the MOV RBX,CR8, then the load via a second run */
    vmcs_write(VMCS_GUEST_RIP, (uintptr_t)vmx_ap_cr8_store);
    if (!vmx_run_expect(v, EXIT_VMCALL, "guest MOV RBX,CR8 with TPR shadow"))
        return;
    check_eq("guest RBX = VTPR[7:4]", v->gpr[VMX_GPR_RBX], 3);
    *(volatile uint32_t *)(vapic + APIC_TPR) = 0xffffff3c;
    vmcs_write(VMCS_GUEST_RIP, (uintptr_t)vmx_ap_cr8_load);
    if (!vmx_run_expect(v, EXIT_VMCALL, "guest MOV CR8,RAX with TPR shadow"))
        return;
    check_eq("VTPR after MOV CR8 of 5", *(volatile uint32_t *)(vapic + APIC_TPR), 0x50);
    check_eq("guest RBX read back from CR8", v->gpr[VMX_GPR_RBX], 5);
    check_eq("host CR8", read_cr8(), 0);
}

PROBE(vmx_intercept_tpr_threshold, "vmx.intercept.tpr_threshold", "VMX",
      "With use TPR shadow, VTPR = 0x50 and TPR threshold 4: guest MOV CR8 of 6 does not exit; "
      "MOV CR8 of 2 (VTPR[7:4] drops below the threshold) exits with reason 43 (TPR below "
      "threshold) after the instruction (trap-like: guest RIP = the next instruction), "
      "qualification 0, VTPR = 0x20",
      "Intel SDM Vol. 3C 25.6.8, 30.1.2 (TPR Virtualization), 28.1, 28.2.1",
      "sdm.30.1.2.tpr-threshold", "sdm.C.reason-43-tpr-below-threshold", "sdm.28.1.trap-like")
{
    require_tpr_shadow();
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ap_cr8_guest);
    uint8_t *vapic = tpr_shadow_setup(0x50, 4);
    v->gpr[VMX_GPR_RAX] = 6;
    if (!vmx_run_expect(v, EXIT_VMCALL, "MOV CR8 of 6 (above the threshold)"))
        return;
    check_eq("VTPR after MOV CR8 of 6", *(volatile uint32_t *)(vapic + APIC_TPR), 0x60);
    vmcs_write(VMCS_GUEST_RIP, (uintptr_t)vmx_ap_cr8_load);
    v->gpr[VMX_GPR_RAX] = 2;
    if (!vmx_run_expect(v, EXIT_TPR_BELOW, "MOV CR8 of 2 (below threshold 4)"))
        return;
    check_eq("guest RIP (after the MOV CR8)", v->guest_rip, (uintptr_t)vmx_ap_cr8_store);
    check_eq("exit qualification", v->exit_qual, 0);
    check_eq("VTPR after MOV CR8 of 2", *(volatile uint32_t *)(vapic + APIC_TPR), 0x20);
}

PROBE(vmx_entry_tpr_threshold, "vmx.entry.tpr_threshold", "VMX",
      "With use TPR shadow (no virtual-interrupt delivery, no APIC-access virtualization), "
      "VMLAUNCH with TPR threshold 6 above VTPR[7:4] = 5, with threshold bit 4 set, or with a "
      "virtual-APIC address not 4 KiB aligned gives VMfailValid(7); threshold 5 launches. Where "
      "virtualize APIC accesses is offered, with it (and an APIC-access page) threshold 6 "
      "launches and exits with reason 43 right after the entry (guest RIP = the entry point)",
      "Intel SDM Vol. 3C 27.2.1.1, 27.7.7", "sdm.27.2.1.1.tpr-threshold-vtpr",
      "sdm.27.2.1.1.tpr-threshold-reserved", "sdm.27.2.1.1.virtual-apic-addr",
      "sdm.27.7.7.tpr-threshold")
{
    require_tpr_shadow();
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ap_cr8_guest);
    uint8_t *vapic = tpr_shadow_setup(0x50, 5);
    vmcs_write(VMCS_GUEST_RIP, (uintptr_t)vmx_ap_cr8_end);
    static const struct {
        uint64_t field, val;
        const char *what;
    } bad[] = {
        {VMCS_TPR_THRESHOLD, 6, "TPR threshold 6 > VTPR[7:4] 5"},
        {VMCS_TPR_THRESHOLD, 0x10, "TPR threshold with bit 4 set"},
        {VMCS_VIRTUAL_APIC_ADDR, 0x800, "virtual-APIC address + 0x800"},
    };
    for (unsigned i = 0; i < ARRAY_SIZE(bad); i++) {
        uint64_t old = vmcs_read(bad[i].field);
        uint64_t val =
            bad[i].field == VMCS_VIRTUAL_APIC_ADDR ? (uintptr_t)vapic + bad[i].val : bad[i].val;
        vmcs_write(bad[i].field, val);
        v->launched = 0;
        uint32_t r = vmx_run(v);
        check(r == VMX_RUN_VMFAIL && vmx_res_is(v->entry, VMX_FAIL_VALID, VMXERR_ENTRY_BAD_CTRL),
              "%s: want VMfailValid(7), got %s", bad[i].what, vmx_exit_str(v));
        vmcs_write(bad[i].field, old);
    }
    v->launched = 0;
    vmx_run_expect(v, EXIT_VMCALL, "VMLAUNCH with threshold 5 = VTPR[7:4]");
    /* with virtualize APIC accesses the check is not made: the VM entry exits at once */
    if (!vmx_ctl_can_set(VMX_CTL_PROC2, PROC2_VIRT_APIC_ACCESS)) {
        note("virtualize APIC accesses not offered: no TPR-below-threshold exit after entry");
        return;
    }
    vmcs_set_bits(VMCS_PROC_CTLS, PROC_SECONDARY_CTLS);
    vmcs_set_bits(VMCS_PROC_CTLS2, PROC2_VIRT_APIC_ACCESS);
    vmcs_write(VMCS_APIC_ACCESS_ADDR, (uintptr_t)alloc_page());
    vmcs_write(VMCS_TPR_THRESHOLD, 6);
    vmcs_write(VMCS_GUEST_RIP, (uintptr_t)vmx_ap_cr8_end);
    /* VMRESUME if the launch above succeeded */
    if (vmx_run_expect(v, EXIT_TPR_BELOW,
                       "VM entry with virtualize APIC accesses and threshold 6 > VTPR[7:4] 5")) {
        check_eq("guest RIP at the TPR-below-threshold exit (the entry point)", v->guest_rip,
                 (uintptr_t)vmx_ap_cr8_end);
        check_eq("exit qualification", v->exit_qual, 0);
    }
}

/* ---- APIC-access page ------------------------------------------------------------- */

extern const char vmx_ap_access_read[], vmx_ap_access_write[];
GUEST(vmx_ap_access_guest, "vmx_ap_access_read:\n"
                           "    mov 0x30(%rdi), %eax\n"
                           "vmx_ap_access_write:\n"
                           "    movl %eax, 0x80(%rdi)\n"
                           "    vmcall\n"
                           "    ud2");

PROBE(vmx_misc_apic_access, "vmx.misc.apic_access", "VMX",
      "With virtualize APIC accesses and an APIC-access page A (use TPR shadow off), a guest read "
      "of A+0x30 exits with reason 44, qualification 0x030 (offset 0x30, linear read), guest RIP "
      "= the read; a write to A+0x80 exits with qualification 0x1080 (offset 0x80, linear write)",
      "Intel SDM Vol. 3C 25.6.2, 30.4 (Virtualizing Memory-Mapped APIC Accesses), 28.2.1",
      "sdm.30.4.2.read-exit", "sdm.30.4.3.write-exit", "sdm.28.2.1.qual-apic-access",
      "sdm.C.reason-44-apic-access")
{
    vmx_require_ctl(VMX_CTL_PROC2, PROC2_VIRT_APIC_ACCESS, "virtualize APIC accesses");
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ap_access_guest);
    uint8_t *page = alloc_page();
    vmcs_set_bits(VMCS_PROC_CTLS, PROC_SECONDARY_CTLS);
    vmcs_set_bits(VMCS_PROC_CTLS2, PROC2_VIRT_APIC_ACCESS);
    vmcs_write(VMCS_APIC_ACCESS_ADDR, (uintptr_t)page);
    v->gpr[VMX_GPR_RDI] = (uintptr_t)page;
    if (!vmx_run_expect(v, EXIT_APIC_ACCESS, "guest read of APIC-access page + 0x30"))
        return;
    check_eq("guest RIP (the read)", v->guest_rip, (uintptr_t)vmx_ap_access_read);
    check_eq("exit qualification (offset 0x30, linear read)", v->exit_qual, 0x030);
    vmcs_write(VMCS_GUEST_RIP, (uintptr_t)vmx_ap_access_write);
    if (!vmx_run_expect(v, EXIT_APIC_ACCESS, "guest write of APIC-access page + 0x80"))
        return;
    check_eq("guest RIP (the write)", v->guest_rip, (uintptr_t)vmx_ap_access_write);
    check_eq("exit qualification (offset 0x80, linear write)", v->exit_qual, 0x1080);
}

/* ---- virtual-interrupt delivery --------------------------------------------------- */

GUEST(vmx_ap_loop_guest, "1: vmcall", "jmp 1b");

#define VID_VECTOR 0x50

static bool vapic_bit(const uint8_t *vapic, unsigned base, unsigned vector)
{
    return (*(const volatile uint32_t *)(vapic + base + 0x10 * (vector / 32)) >> (vector % 32)) & 1;
}

PROBE(vmx_event_virtual_intr_delivery, "vmx.event.virtual_intr_delivery", "VMX",
      "Virtual-interrupt delivery (with use TPR shadow and external-interrupt exiting): vector "
      "0x50 "
      "requested in the virtual-APIC page's VIRR and RVI = 0x50 (guest interrupt status 0x0050), "
      "VTPR 0: a guest entered with RFLAGS.IF=0 is not interrupted (it reaches its VMCALL); "
      "entered with IF=1 it receives vector 0x50 through its IDT before its first instruction, "
      "after which VISR has 0x50, VIRR no longer does, the guest interrupt status is 0x5000 "
      "(SVI 0x50, RVI 0) and VPPR = 0x50",
      "Intel SDM Vol. 3C 25.4.2, 25.6.8, 27.2.1.1, 30.2 (Evaluation and Delivery of Virtual "
      "Interrupts)",
      "sdm.27.7.5.vid-evaluation", "sdm.30.2.1.evaluation", "sdm.30.2.2.delivery",
      "sdm.28.3.4.guest-intr-status")
{
    vmx_require_ctl(VMX_CTL_PROC2, PROC2_VIRT_INTR_DELIVERY, "virtual-interrupt delivery");
    vmx_require_ctl(VMX_CTL_PIN, PIN_EXTINT_EXITING, "external-interrupt exiting");
    require_tpr_shadow();
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ap_loop_guest);
    vmx_guest_idt(v);
    uint64_t rip = vmcs_read(VMCS_GUEST_RIP);
    uint8_t *vapic = tpr_shadow_setup(0, 0);
    *(volatile uint32_t *)(vapic + 0x200 + 0x10 * (VID_VECTOR / 32)) |= 1u << (VID_VECTOR % 32);
    vmcs_set_bits(VMCS_PIN_CTLS, PIN_EXTINT_EXITING);
    vmcs_set_bits(VMCS_PROC_CTLS, PROC_SECONDARY_CTLS);
    vmcs_set_bits(VMCS_PROC_CTLS2, PROC2_VIRT_INTR_DELIVERY);
    for (uint64_t f = VMCS_EOI_EXIT_BITMAP0; f <= VMCS_EOI_EXIT_BITMAP3; f += 2)
        vmcs_write(f, 0);
    vmcs_write(VMCS_GUEST_INTR_STATUS, VID_VECTOR);
    if (vmx_run_expect(v, EXIT_VMCALL, "guest with IF=0 and a pending virtual interrupt"))
        check(v->gpr[VMX_GPR_RAX] != VMX_GUEST_EVENT && v->guest_rip == rip,
              "the virtual interrupt was delivered with RFLAGS.IF=0 (vector %llu at RIP %#llx)",
              (unsigned long long)v->gpr[VMX_GPR_RBX], (unsigned long long)v->guest_rip);
    vmcs_write(VMCS_GUEST_RFLAGS, 0x202);
    if (!vmx_run_expect(v, EXIT_VMCALL, "guest with IF=1 and a pending virtual interrupt"))
        return;
    if (!check(v->gpr[VMX_GPR_RAX] == VMX_GUEST_EVENT,
               "no virtual interrupt delivered with "
               "RFLAGS.IF=1 (VMCALL at %#llx)",
               (unsigned long long)v->guest_rip))
        return;
    check_eq("vector delivered", v->gpr[VMX_GPR_RBX], VID_VECTOR);
    check_eq("RIP pushed (before the first instruction)", v->gpr[VMX_GPR_RDX], rip);
    check(vapic_bit(vapic, 0x100, VID_VECTOR), "VISR lacks vector %#x after delivery", VID_VECTOR);
    check(!vapic_bit(vapic, 0x200, VID_VECTOR), "VIRR still has vector %#x after delivery",
          VID_VECTOR);
    check_eq("guest interrupt status (SVI:RVI)", vmcs_read(VMCS_GUEST_INTR_STATUS),
             VID_VECTOR << 8);
    check_eq("VPPR (virtual-APIC page offset 0xA0)", *(volatile uint32_t *)(vapic + 0xa0),
             VID_VECTOR);
}

extern const char vmx_ap_regvirt_ccr[];
GUEST(vmx_ap_regvirt_guest, "    mov 0x30(%rdi), %eax\n"
                            "    movl $0x40, 0x80(%rdi)\n"
                            "    mov 0x80(%rdi), %ebx\n"
                            "vmx_ap_regvirt_ccr:\n"
                            "    mov 0x390(%rdi), %ecx\n"
                            "    vmcall\n"
                            "    ud2");

PROBE(vmx_misc_apic_reg_virt, "vmx.misc.apic_reg_virt", "VMX",
      "With virtualize APIC accesses, use TPR shadow and APIC-register virtualization: a guest "
      "read "
      "of APIC-access page + 0x30 (version) returns the virtual-APIC page's value at 0x30 without "
      "exit; a write of 0x40 to + 0x80 (TPR) sets VTPR to 0x40 without exit and reads back 0x40; "
      "a read of + 0x390 (timer current count, not virtualized) exits with reason 44, "
      "qualification 0x390 (linear read)",
      "Intel SDM Vol. 3C 25.6.2, 30.4.1, 30.4.2, 30.4.3", "sdm.30.4.2.read-virtualized",
      "sdm.30.4.3.write-virtualized")
{
    vmx_require_ctl(VMX_CTL_PROC2, PROC2_VIRT_APIC_ACCESS | PROC2_APIC_REG_VIRT,
                    "virtualize APIC accesses and APIC-register virtualization");
    require_tpr_shadow();
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ap_regvirt_guest);
    uint8_t *page = alloc_page();
    uint8_t *vapic = tpr_shadow_setup(0, 0);
    *(volatile uint32_t *)(vapic + 0x30) = 0x00aa0014;
    vmcs_set_bits(VMCS_PROC_CTLS, PROC_SECONDARY_CTLS);
    vmcs_set_bits(VMCS_PROC_CTLS2, PROC2_VIRT_APIC_ACCESS | PROC2_APIC_REG_VIRT);
    vmcs_write(VMCS_APIC_ACCESS_ADDR, (uintptr_t)page);
    v->gpr[VMX_GPR_RDI] = (uintptr_t)page;
    if (!vmx_run_expect(v, EXIT_APIC_ACCESS, "guest read of the timer current count"))
        return;
    check_eq("guest RIP (earlier accesses were virtualized)", v->guest_rip,
             (uintptr_t)vmx_ap_regvirt_ccr);
    check_eq("exit qualification (offset 0x390, linear read)", v->exit_qual, 0x390);
    check_eq("guest EAX from the version register (virtual-APIC page)",
             v->gpr[VMX_GPR_RAX] & 0xffffffffu, 0x00aa0014);
    check_eq("VTPR after the guest's TPR write", *(volatile uint32_t *)(vapic + APIC_TPR), 0x40);
    check_eq("guest EBX read back from TPR", v->gpr[VMX_GPR_RBX] & 0xffffffffu, 0x40);
}
