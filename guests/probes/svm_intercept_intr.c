/* SPDX-License-Identifier: MIT */
/*
 * SVM physical interrupt and NMI intercepts (AMD APM Vol. 2 15.13.1 INTR,
 * 15.13.2 NMI; 15.21.1 V_INTR_MASKING; 15.17 GIF; 15.21.9 NMI support). The interrupt source is
 * the local APIC (a self-IPI, an NMI IPI to the own APIC ID) in xAPIC
 * mode at its architectural base. The probes consume what they raise
 * (the guest takes the interrupt through its IDT, the host EOIs) and
 * restore the spurious-vector register if they had to software-enable
 * the APIC.
 */
#include "nvct.h"
#include "svm.h"

#define INTR_VECTOR 0x60

GUEST(svm_in_nop, "nop", "svm_in_nop_end:", "vmmcall", "ud2");
extern char svm_in_nop_end[];

struct apic {
    volatile uint8_t *base;
    uint32_t svr;
};

static uint32_t apic_rd(struct apic *a, unsigned off)
{
    return *(volatile uint32_t *)(a->base + off);
}
static void apic_wr(struct apic *a, unsigned off, uint32_t v)
{
    *(volatile uint32_t *)(a->base + off) = v;
}

/* SKIP without an APIC; xAPIC mode required (the kernel leaves the APIC
 * as the firmware set it). Software-enables it if needed. */
static void apic_open(struct apic *a)
{
    if (!(cpuid(1, 0).d & BIT(9)))
        skip("CPUID 1 EDX.APIC[9]=0");
    uint64_t base = rdmsr(MSR_IA32_APIC_BASE);
    if (!(base & BIT(11)))
        error("IA32_APIC_BASE.EN=0 (%#llx): the APIC was disabled by firmware",
              (unsigned long long)base);
    if (base & BIT(10))
        error("the APIC is in x2APIC mode (IA32_APIC_BASE %#llx)", (unsigned long long)base);
    a->base = (volatile uint8_t *)(uintptr_t)(base & 0xfffff000ull);
    a->svr = apic_rd(a, APIC_SVR);
    if (!(a->svr & BIT(8)))
        apic_wr(a, APIC_SVR, a->svr | BIT(8) | 0xff);
}

static void apic_close(struct apic *a) { apic_wr(a, APIC_SVR, a->svr); }

static bool apic_bit(struct apic *a, unsigned reg, unsigned vector)
{
    return (apic_rd(a, reg + 0x10 * (vector / 32)) >> (vector % 32)) & 1;
}

static void apic_icr(struct apic *a, uint32_t hi, uint32_t lo)
{
    apic_wr(a, APIC_ICR2, hi);
    apic_wr(a, APIC_ICR, lo);
    for (unsigned i = 0; i < 100000 && (apic_rd(a, APIC_ICR) & BIT(12)); i++)
        __asm__ volatile("pause");
}

/* Ends NMI blocking on the host (an NMI the guest took without IRET). */
static void iret_to_self(void)
{
    __asm__ volatile("mov %%ss, %%eax\n\t"
                     "push %%rax\n\t"
                     "push %%rsp\n\t"
                     "addq $8, (%%rsp)\n\t"
                     "pushfq\n\t"
                     "mov %%cs, %%eax\n\t"
                     "push %%rax\n\t"
                     "lea 1f(%%rip), %%rax\n\t"
                     "push %%rax\n\t"
                     "iretq\n"
                     "1:" ::
                         : "rax", "memory", "cc");
}

PROBE(svm_icpt_intr, "svm.intercept.intr", "SVM",
      "A fixed self-IPI (vector 0x60) pending in the APIC, host RFLAGS.IF=0, guest IF=1: with "
      "V_INTR_MASKING=1 (host IF masks physical interrupts) and the INTR intercept set the guest "
      "runs to VMMCALL without an exit; with V_INTR_MASKING=0 (guest IF masks them) it exits 0x60 "
      "(INTR) and the interrupt stays pending; with the intercept clear the guest takes vector "
      "0x60 through its IDT; the host then EOIs",
      "AMD APM Vol. 2 15.13.1, 15.21.1", "apm.15.13.1.intr", "apm.15.21.1.v-intr-masking",
      "apm.15.21.1.no-v-intr-masking")
{
    svm_require();
    struct apic a;
    apic_open(&a);
    if (apic_bit(&a, APIC_IRR, INTR_VECTOR) || apic_bit(&a, APIC_ISR, INTR_VECTOR)) {
        apic_close(&a);
        error("vector %#x already pending or in service in the APIC", INTR_VECTOR);
    }
    apic_icr(&a, 0, (1u << 18) | INTR_VECTOR); /* shorthand self, fixed, edge */
    if (!apic_bit(&a, APIC_IRR, INTR_VECTOR)) {
        apic_close(&a);
        error("the self-IPI did not set IRR[%#x]", INTR_VECTOR);
    }

    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_in_nop, 0);
    v.vmcb->control.intercept_misc1 |= SVM_INTERCEPT_INTR;
    v.vmcb->control.int_ctl = V_INTR_MASKING;
    v.vmcb->save.rflags = 0x2 | RFLAGS_IF;
    uint64_t code = svm_run(&v);
    if (svm_check_exit(&v, code, SVM_EXIT_VMMCALL, "V_INTR_MASKING=1, host IF=0: interrupt masked"))
        check(v.vmcb->save.rip == A(svm_in_nop_end),
              "V_INTR_MASKING=1, host IF=0: want the guest's VMMCALL at %#llx, got %s",
              (unsigned long long)A(svm_in_nop_end), svm_exit_str(&v));

    svm_vcpu_set_entry(&v, (svm_guest_fn)(uintptr_t)svm_in_nop, 0);
    v.vmcb->control.int_ctl = 0;
    v.vmcb->save.rflags = 0x2 | RFLAGS_IF;
    code = svm_run(&v);
    if (svm_check_exit(&v, code, SVM_EXIT_INTR, "V_INTR_MASKING=0, guest IF=1: INTR intercept")) {
        check(v.vmcb->save.rip == A(svm_in_nop) || v.vmcb->save.rip == A(svm_in_nop_end),
              "INTR exit: VMCB RIP %#llx, want an instruction boundary of the guest (%#llx or "
              "%#llx)",
              (unsigned long long)v.vmcb->save.rip, (unsigned long long)A(svm_in_nop),
              (unsigned long long)A(svm_in_nop_end));
        check(apic_bit(&a, APIC_IRR, INTR_VECTOR),
              "INTR exit: IRR[%#x] clear, the interrupt was acknowledged", INTR_VECTOR);
    }

    /* Consume it in the guest, then EOI. */
    v.vmcb->control.intercept_misc1 &= ~(uint32_t)SVM_INTERCEPT_INTR;
    svm_vcpu_set_entry(&v, (svm_guest_fn)(uintptr_t)svm_in_nop, 0);
    v.vmcb->save.rflags = 0x2 | RFLAGS_IF;
    code = svm_run(&v);
    bool in_service = apic_bit(&a, APIC_ISR, INTR_VECTOR);
    if (in_service)
        apic_wr(&a, APIC_EOI, 0);
    if (apic_bit(&a, APIC_IRR, INTR_VECTOR))
        note("IRR[%#x] still set after the guest ran with the intercept clear", INTR_VECTOR);
    apic_close(&a);
    if (svm_check_exit(&v, code, SVM_EXIT_VMMCALL, "INTR not intercepted"))
        check(svm_guest_exc_vector(&v) == INTR_VECTOR,
              "INTR not intercepted: %s, want the guest IDT's vector %#x", svm_exit_str(&v),
              INTR_VECTOR);
    check(in_service, "ISR[%#x] clear after the guest took the interrupt", INTR_VECTOR);
}

PROBE(svm_icpt_nmi, "svm.intercept.nmi", "SVM",
      "Host CLGI, then an NMI IPI to the own APIC ID: held pending while GIF=0; VMRUN (GIF=1 in "
      "the guest) with the NMI intercept set exits 0x61 (NMI) with the NMI still pending; VMRUN "
      "again with the intercept clear: the guest takes vector 2 through its IDT; host STGI then "
      "sees no NMI",
      "AMD APM Vol. 2 15.13.2, 15.17 (Table 15-10), 15.21.9", "apm.15.13.2.nmi",
      "apm.15.17.gif-nmi", "apm.15.21.9.nmi-blocking")
{
    svm_require();
    struct apic a;
    apic_open(&a);
    uint32_t id = apic_rd(&a, APIC_ID) >> 24;

    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_in_nop, 0);
    v.vmcb->control.intercept_misc1 |= SVM_INTERCEPT_NMI;
    v.flags |= SVM_RUN_KEEP_GIF0;

    svm_clgi();
    apic_icr(&a, id << 24, (4u << 8) | BIT(14)); /* NMI, assert, physical destination */
    uint64_t code = svm_run(&v);
    bool ok = svm_check_exit(&v, code, SVM_EXIT_NMI, "pending NMI, NMI intercepted");
    if (ok)
        check(v.vmcb->save.rip == A(svm_in_nop) || v.vmcb->save.rip == A(svm_in_nop_end),
              "NMI exit: VMCB RIP %#llx, want an instruction boundary of the guest",
              (unsigned long long)v.vmcb->save.rip);

    v.vmcb->control.intercept_misc1 &= ~(uint32_t)SVM_INTERCEPT_NMI;
    svm_vcpu_set_entry(&v, (svm_guest_fn)(uintptr_t)svm_in_nop, 0);
    code = svm_run(&v);
    if (svm_check_exit(&v, code, SVM_EXIT_VMMCALL, "NMI not intercepted"))
        check(svm_guest_exc_vector(&v) == NMI_VECTOR,
              "NMI not intercepted: %s, want the guest IDT's vector 2", svm_exit_str(&v));
    svm_stgi();
    iret_to_self();
    apic_close(&a);
}
