/* SPDX-License-Identifier: MIT */
/*
 * SVM event injection and virtual interrupts (AMD APM Vol. 2 15.20 Event
 * Injection, 15.21 Interrupt and LINT Support: 15.21.4 virtual interrupt
 * injection, V_TPR, V_INTR_MASKING; 15.21.5 interrupt shadows; 15.7.2
 * EXITINTINFO).
 *
 * Delivery is observed through the default guest's IDT: every one of its
 * 256 gates leads to a stub that VMMCALLs with RAX = SVM_GUEST_EXC_MAGIC |
 * vector, leaving the interrupt frame (and an error code, if one was
 * pushed) on the guest stack, where the probe reads it.
 */
#include "nvct.h"
#include "svm.h"

GUEST(svm_ev_nop, "nop", "svm_ev_nop_end:", "vmmcall", "ud2");
/* STI; CPUID (in the STI shadow); VMMCALL; STI; NOP; CPUID */
GUEST(svm_ev_sti_cpuid, "    sti\n"
                        "svm_ev_cpuid1:\n"
                        "    cpuid\n"
                        "    vmmcall\n"
                        "svm_ev_sti_nop_cpuid:\n"
                        "    sti\n"
                        "    nop\n"
                        "svm_ev_cpuid2:\n"
                        "    cpuid\n"
                        "    vmmcall\n"
                        "    ud2");
GUEST(svm_ev_sti_nop, "sti", "nop", "svm_ev_sti_nop_end:", "vmmcall", "ud2");
/* MOV from CR8 to RBX; MOV RAX to CR8; VMMCALL */
GUEST(svm_ev_tpr, "mov %cr8, %rbx", "svm_ev_tpr_wr:", "mov %rax, %cr8",
      "svm_ev_tpr_end:", "vmmcall", "ud2");
extern char svm_ev_nop_end[], svm_ev_cpuid1[], svm_ev_sti_nop_cpuid[], svm_ev_cpuid2[];
extern char svm_ev_tpr_wr[], svm_ev_tpr_end[], svm_ev_sti_nop_end[];

/* The guest took `vector` through its IDT: returns the guest stack at the
 * stub's VMMCALL (error code, if any, then RIP, CS, RFLAGS, RSP, SS), or
 * NULL after a failed check. */
static const uint64_t *took(struct svm_vcpu *v, uint64_t code, unsigned vector, const char *what)
{
    if (!svm_check_exit(v, code, SVM_EXIT_VMMCALL, what))
        return NULL;
    int got = svm_guest_exc_vector(v);
    if (!check(got == (int)vector, "%s: want delivery through guest IDT vector %#x, got %s", what,
               vector, got < 0 ? "a VMMCALL not from the guest IDT" : "another vector") ||
        got < 0) {
        if (got >= 0)
            note("%s: delivered through vector %#x", what, (unsigned)got);
        return NULL;
    }
    return (const uint64_t *)(uintptr_t)v->vmcb->save.rsp;
}

static void inject(struct svm_vcpu *v, uint64_t type, unsigned vector, bool ev, uint32_t err)
{
    v->vmcb->control.event_inj = SVM_EVTINJ_VALID | type | vector |
                                 (ev ? SVM_EVTINJ_VALID_ERR : 0) |
                                 ((uint64_t)err << SVM_EVTINJ_ERR_SHIFT);
    /* The exception intercepts stay set: injected events are not subject
     * to intercept checks (15.20). */
}

static void check_after_injection(const struct svm_vcpu *v, const char *what)
{
    check(!(v->vmcb->control.event_inj & SVM_EVTINJ_VALID),
          "%s: EVENTINJ %#llx still has V=1 after the event was delivered", what,
          (unsigned long long)v->vmcb->control.event_inj);
    check(!(v->vmcb->control.exit_int_info & SVM_EVTINJ_VALID),
          "%s: EXITINTINFO %#llx has V=1 (the exit was not during event delivery)", what,
          (unsigned long long)v->vmcb->control.exit_int_info);
}

PROBE(svm_event_inject_exception, "svm.event.inject_exception", "SVM",
      "EVENTINJ = #DE (vector 0, type 3 exception, EV=0), with #DE intercepted (injected events "
      "are not subject to intercepts): VMRUN delivers it through the guest IDT before the first "
      "guest instruction: vector 0 taken with the frame's RIP = the VMCB RIP and no error code; "
      "EVENTINJ.V and EXITINTINFO.V are 0 after the exit",
      "AMD APM Vol. 2 15.20", "apm.15.20.inject-exception", "apm.15.20.inject-not-intercepted")
{
    svm_require();
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_ev_nop, 0);
    inject(&v, SVM_EVTINJ_TYPE_EXEPT, DE_VECTOR, false, 0);
    const uint64_t *f = took(&v, svm_run(&v), DE_VECTOR, "injected #DE");
    if (!f)
        return;
    check_eq("injected #DE: frame RIP (no error code on the stack)", f[0], A(svm_ev_nop));
    check_eq("injected #DE: frame CS", f[1] & 0xffff, KERNEL_CS);
    check_after_injection(&v, "injected #DE");
}

PROBE(svm_event_inject_exception_errcode, "svm.event.inject_exception_errcode", "SVM",
      "EVENTINJ = #GP (vector 13, type 3, EV=1, error code 0x1234), #GP intercepted: no exit, the "
      "guest takes vector 13 with error code 0x1234 on the stack and the frame's RIP = the VMCB "
      "RIP; EVENTINJ.V and EXITINTINFO.V are 0 after the exit",
      "AMD APM Vol. 2 15.20", "apm.15.20.inject-exception", "apm.15.20.inject-not-intercepted")
{
    svm_require();
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_ev_nop, 0);
    inject(&v, SVM_EVTINJ_TYPE_EXEPT, GP_VECTOR, true, 0x1234);
    const uint64_t *f = took(&v, svm_run(&v), GP_VECTOR, "injected #GP(0x1234)");
    if (!f)
        return;
    check_eq("injected #GP: error code on the guest stack", f[0], 0x1234);
    check_eq("injected #GP: frame RIP", f[1], A(svm_ev_nop));
    check_after_injection(&v, "injected #GP");
}

PROBE(svm_event_inject_nmi, "svm.event.inject_nmi", "SVM",
      "EVENTINJ = NMI (type 2, vector 2): the guest takes vector 2 through its IDT with the "
      "frame's RIP = the VMCB RIP; EVENTINJ.V is 0 after the exit",
      "AMD APM Vol. 2 15.20", "apm.15.20.inject-nmi")
{
    svm_require();
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_ev_nop, 0);
    inject(&v, SVM_EVTINJ_TYPE_NMI, NMI_VECTOR, false, 0);
    const uint64_t *f = took(&v, svm_run(&v), NMI_VECTOR, "injected NMI");
    if (!f)
        return;
    check_eq("injected NMI: frame RIP", f[0], A(svm_ev_nop));
    check_after_injection(&v, "injected NMI");
}

PROBE(svm_event_inject_intr, "svm.event.inject_intr", "SVM",
      "EVENTINJ = external interrupt (type 0, vector 0x40) with guest RFLAGS.IF=0: injection "
      "ignores IF; the guest takes vector 0x40 with the frame's RIP = the VMCB RIP and no error "
      "code; EVENTINJ.V is 0 after the exit",
      "AMD APM Vol. 2 15.20", "apm.15.20.inject-intr")
{
    svm_require();
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_ev_nop, 0);
    inject(&v, SVM_EVTINJ_TYPE_INTR, 0x40, false, 0);
    const uint64_t *f = took(&v, svm_run(&v), 0x40, "injected INTR 0x40");
    if (!f)
        return;
    check_eq("injected INTR: frame RIP", f[0], A(svm_ev_nop));
    check_eq("injected INTR: frame RFLAGS.IF (the guest's, 0)", f[2] & RFLAGS_IF, 0);
    check_after_injection(&v, "injected INTR");
}

PROBE(svm_event_inject_soft_int, "svm.event.inject_soft_int", "SVM",
      "With CPUID 0x8000000A EDX.NRIPS[3]=1: EVENTINJ = software interrupt (type 4, vector 0x80), "
      "VMCB next_rip = RIP+2 (as after an INT 0x80): the guest takes vector 0x80 and the frame's "
      "return RIP is next_rip (without NextRIP software interrupts cannot be properly injected)",
      "AMD APM Vol. 2 15.20, 15.7.1", "apm.15.20.inject-soft-int")
{
    svm_require();
    if (!svm_has(SVM_FEAT_NRIPS))
        skip("CPUID 0x8000000A EDX.NRIPS[3]=0: software interrupts cannot be properly injected "
             "without NextRIP (APM 15.20)");
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_ev_nop, 0);
    inject(&v, SVM_EVTINJ_TYPE_SOFT, 0x80, false, 0);
    v.flags |= SVM_RUN_KEEP_NEXT_RIP;
    v.vmcb->control.next_rip = A(svm_ev_nop) + 2;
    const uint64_t *f = took(&v, svm_run(&v), 0x80, "injected INT 0x80");
    if (!f)
        return;
    check_eq("injected INT 0x80: frame RIP (= next_rip)", f[0], A(svm_ev_nop) + 2);
    check_after_injection(&v, "injected INT 0x80");
}

PROBE(svm_event_exitintinfo, "svm.event.exitintinfo", "SVM",
      "EVENTINJ = #UD (vector 6, type 3) with the guest IDT limit 0x5F (gate 6 beyond it) and #GP "
      "intercepted: delivery raises #GP with a selector error code for IDT vector 6: exit 0x4D "
      "with EXITINFO1[15:1] = 0x32 >> 1 (index 6, IDT=1; EXT, bit 0, not compared), RIP = the VMCB "
      "RIP, and EXITINTINFO = the injected event with V=1 (0x80000306)",
      "AMD APM Vol. 2 15.7.2, 15.20", "apm.15.7.2.exitintinfo", "apm.15.20.inject-exitintinfo")
{
    svm_require();
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_ev_nop, 0);
    inject(&v, SVM_EVTINJ_TYPE_EXEPT, UD_VECTOR, false, 0);
    v.vmcb->control.intercept_exceptions |= BIT(GP_VECTOR);
    v.vmcb->save.idtr.limit = 6 * 16 - 1;
    uint64_t code = svm_run(&v);
    if (!svm_check_exit(&v, code, SVM_EXIT_EXCP(GP_VECTOR),
                        "#UD delivery through a gate beyond the IDT limit"))
        return;
    uint64_t err = v.vmcb->control.exit_info_1;
    check((err & ~1ull) == 6 * 8 + 2,
          "#GP during delivery: EXITINFO1 %#llx, want 0x32 (selector index 6 = the vector, IDT=1) "
          "| EXT",
          (unsigned long long)err);
    note("#GP during delivery: EXT = %llu", (unsigned long long)(err & 1));
    check_eq("#GP during delivery: VMCB RIP", v.vmcb->save.rip, A(svm_ev_nop));
    check_eq("EXITINTINFO (the #UD being delivered)", v.vmcb->control.exit_int_info,
             SVM_EVTINJ_VALID | SVM_EVTINJ_TYPE_EXEPT | UD_VECTOR);
}

/* ---- virtual interrupts ------------------------------------------------------------- */

static void v_irq(struct svm_vcpu *v, unsigned vector, unsigned prio, unsigned tpr)
{
    v->vmcb->control.int_ctl = V_IRQ | V_INTR_MASKING | ((uint64_t)prio << V_INTR_PRIO_SHIFT) |
                               ((uint64_t)vector << V_INTR_VECTOR_SHIFT) | tpr;
    v->vmcb->save.rflags |= RFLAGS_IF;
}

PROBE(svm_event_v_irq, "svm.event.v_irq", "SVM",
      "V_IRQ=1, V_INTR_VECTOR=0x50, V_INTR_PRIO=15, V_TPR=0, V_INTR_MASKING=1, guest RFLAGS.IF=1, "
      "VINTR not intercepted: the guest takes vector 0x50 through its IDT before its first "
      "instruction (frame RIP = the VMCB RIP); after the exit the VMCB V_IRQ is 0 (the virtual "
      "interrupt was taken)",
      "AMD APM Vol. 2 15.21.4", "apm.15.21.4.v-irq")
{
    svm_require();
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_ev_nop, 0);
    v_irq(&v, 0x50, 15, 0);
    const uint64_t *f = took(&v, svm_run(&v), 0x50, "virtual interrupt 0x50");
    if (!f)
        return;
    check_eq("virtual interrupt: frame RIP", f[0], A(svm_ev_nop));
    check_eq("VMCB V_IRQ after the virtual interrupt was taken", v.vmcb->control.int_ctl & V_IRQ,
             0);
}

PROBE(svm_event_vintr, "svm.event.vintr_intercept", "SVM",
      "The same pending virtual interrupt (V_IRQ=1, vector 0x50, guest IF=1) with the VINTR "
      "intercept set: exit 0x64 before delivery, RIP = the first guest instruction, VMCB V_IRQ "
      "still 1",
      "AMD APM Vol. 2 15.13.5, 15.21.6", "apm.15.13.5.vintr")
{
    svm_require();
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_ev_nop, 0);
    v_irq(&v, 0x50, 15, 0);
    v.vmcb->control.intercept_misc1 |= SVM_INTERCEPT_VINTR;
    uint64_t code = svm_run(&v);
    if (!svm_check_exit(&v, code, SVM_EXIT_VINTR, "pending virtual interrupt, VINTR intercepted"))
        return;
    check_eq("VINTR exit: VMCB RIP", v.vmcb->save.rip, A(svm_ev_nop));
    check_eq("VINTR exit: VMCB V_IRQ", v.vmcb->control.int_ctl & V_IRQ, V_IRQ);
}

PROBE(svm_event_v_tpr, "svm.event.v_tpr", "SVM",
      "V_INTR_MASKING=1, V_TPR=5, no virtual interrupt pending: guest MOV from CR8 reads 5 "
      "(V_TPR), its MOV to CR8 of 2 writes V_TPR: VMCB V_TPR = 2 after the exit; the host's CR8 "
      "(the physical TPR) is unchanged",
      "AMD APM Vol. 2 15.21.2", "apm.15.21.2.v-tpr")
{
    svm_require();
    uint64_t host_cr8 = read_cr8();
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_ev_tpr, 0);
    v.vmcb->control.int_ctl = V_INTR_MASKING | 5;
    v.vmcb->save.rax = 2;
    v.regs.rbx = 0xbb;
    uint64_t code = svm_run(&v);
    uint64_t cr8 = read_cr8();
    if (cr8 != host_cr8)
        write_cr8(host_cr8);
    if (!svm_check_exit(&v, code, SVM_EXIT_VMMCALL, "guest MOV from/to CR8"))
        return;
    check_eq("guest MOV from CR8 (V_TPR)", v.regs.rbx, 5);
    check_eq("VMCB V_TPR after the guest's MOV to CR8", v.vmcb->control.int_ctl & V_TPR_MASK, 2);
    check_eq("host CR8 after the exit", cr8, host_cr8);
}

PROBE(svm_event_v_tpr_unmask, "svm.event.v_tpr_unmask", "SVM",
      "V_INTR_MASKING=1, V_TPR=5, V_IRQ pending with priority 3 (vector 0x50), guest IF=1: not "
      "delivered at VMRUN (priority <= V_TPR); the guest's MOV to CR8 of 0 lowers V_TPR and the "
      "interrupt is then taken right after that MOV (frame RIP = the next instruction); VMCB V_TPR "
      "= 0 after the exit; the host's CR8 is unchanged",
      "AMD APM Vol. 2 15.21.2, 15.21.4", "apm.15.21.4.v-irq-priority")
{
    svm_require();
    uint64_t host_cr8 = read_cr8();
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_ev_tpr, 0);
    v_irq(&v, 0x50, 3, 5);
    v.vmcb->save.rax = 0;
    v.regs.rbx = 0xbb;
    const uint64_t *f =
        took(&v, svm_run(&v), 0x50, "virtual interrupt after MOV to CR8 lowered V_TPR");
    uint64_t cr8 = read_cr8();
    if (cr8 != host_cr8)
        write_cr8(host_cr8);
    if (f)
        check_eq("frame RIP (after the MOV to CR8)", f[0], A(svm_ev_tpr_end));
    check_eq("guest MOV from CR8 (V_TPR)", v.regs.rbx, 5);
    check_eq("VMCB V_TPR after the exit", v.vmcb->control.int_ctl & V_TPR_MASK, 0);
    check_eq("host CR8 after the exit", cr8, host_cr8);
}

PROBE(svm_event_v_irq_sti, "svm.event.v_irq_sti", "SVM",
      "V_IRQ pending (vector 0x50, priority 15, V_TPR=0, V_INTR_MASKING=1) with guest RFLAGS.IF=0: "
      "not taken at VMRUN; the guest executes STI; NOP and takes vector 0x50 after the NOP (the "
      "STI shadow), frame RIP = the instruction after the NOP",
      "AMD APM Vol. 2 15.21.4, 15.21.5", "apm.15.21.4.v-irq")
{
    svm_require();
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_ev_sti_nop, 0);
    v_irq(&v, 0x50, 15, 0);
    v.vmcb->save.rflags = 0x2;
    const uint64_t *f = took(&v, svm_run(&v), 0x50, "virtual interrupt after STI; NOP");
    if (!f)
        return;
    check_eq("frame RIP (after STI; NOP)", f[0], A(svm_ev_sti_nop_end));
}

PROBE(svm_event_int_shadow_saved, "svm.event.int_shadow_saved", "SVM",
      "Guest STI; CPUID with CPUID intercepted: at the exit (RIP = the CPUID, which is in the STI "
      "shadow) VMCB INTERRUPT_SHADOW (offset 0x68 bit 0) = 1; guest STI; NOP; CPUID: at the exit "
      "it is 0",
      "AMD APM Vol. 2 15.21.5", "apm.15.21.5.shadow-saved")
{
    svm_require();
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_ev_sti_cpuid, 0);
    v.vmcb->control.intercept_misc1 |= SVM_INTERCEPT_CPUID;
    v.vmcb->save.rax = 0;
    v.regs.rcx = 0;
    uint64_t code = svm_run(&v);
    if (!svm_check_exit(&v, code, SVM_EXIT_CPUID, "CPUID right after STI"))
        return;
    check_eq("CPUID exit in the STI shadow: VMCB RIP", v.vmcb->save.rip, A(svm_ev_cpuid1));
    check_eq("CPUID exit in the STI shadow: INTERRUPT_SHADOW",
             v.vmcb->control.int_state & SVM_INTERRUPT_SHADOW, 1);
    svm_vcpu_set_entry(&v, (svm_guest_fn)(uintptr_t)svm_ev_sti_nop_cpuid, 0);
    v.vmcb->save.rflags = 0x2;
    code = svm_run(&v);
    if (!svm_check_exit(&v, code, SVM_EXIT_CPUID, "CPUID one instruction after STI"))
        return;
    check_eq("CPUID exit after STI; NOP: VMCB RIP", v.vmcb->save.rip, A(svm_ev_cpuid2));
    check_eq("CPUID exit after STI; NOP: INTERRUPT_SHADOW",
             v.vmcb->control.int_state & SVM_INTERRUPT_SHADOW, 0);
}

PROBE(svm_event_int_shadow_loaded, "svm.event.int_shadow_loaded", "SVM",
      "VMRUN with VMCB INTERRUPT_SHADOW=1, guest IF=1 and a virtual interrupt pending (V_IRQ, "
      "vector 0x50, priority 15): the first guest instruction (NOP) runs in the shadow and the "
      "interrupt is taken after it (frame RIP = the instruction after the NOP)",
      "AMD APM Vol. 2 15.21.5, 15.21.4", "apm.15.21.5.shadow-loaded")
{
    svm_require();
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_ev_nop, 0);
    v_irq(&v, 0x50, 15, 0);
    v.vmcb->control.int_state = SVM_INTERRUPT_SHADOW;
    const uint64_t *f = took(&v, svm_run(&v), 0x50, "virtual interrupt with the shadow loaded");
    if (!f)
        return;
    check_eq("frame RIP (after the NOP in the shadow)", f[0], A(svm_ev_nop_end));
}
