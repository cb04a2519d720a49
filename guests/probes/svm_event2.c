/* SPDX-License-Identifier: MIT */
/*
 * More SVM events (AMD APM Vol. 2): virtual-interrupt conditions
 * (15.21.4: V_IRQ against the guest's IF, V_TPR and V_IGN_TPR; the VINTR
 * intercept), event injection corner cases (15.20: the EV bit, #DF, #PF
 * and CR2) and EXITINTINFO for an exit during the delivery of an injected
 * event (15.7.2), the host's single step over VMRUN (15.5.1, "VMRUN and
 * TF/RF Bits in EFLAGS"), and the branch records of LBR virtualization as
 * the guest reads them (15.23.1).
 *
 * Delivery is observed through the default guest's IDT (see svm_event.c):
 * each gate's stub VMMCALLs with RAX = SVM_GUEST_EXC_MAGIC | vector and the
 * interrupt frame on the guest stack.
 */
#include "nvct.h"
#include "svm.h"

GUEST(svm_e2_nop, "nop", "svm_e2_nop_end:", "vmmcall", "ud2");
GUEST(svm_e2_nops, "nop", "nop", "nop", "vmmcall", "ud2");
/* a taken JMP, then RBX = LastBranchFromIP, RAX = LastBranchToIP */
GUEST(svm_e2_lbr, "    jmp svm_e2_lbr_to\n"
                  "    ud2\n"
                  "svm_e2_lbr_to:\n"
                  "    mov $0x1db, %ecx\n"
                  "    rdmsr\n"
                  "    shl $32, %rdx\n"
                  "    or %rdx, %rax\n"
                  "    mov %rax, %rbx\n"
                  "    mov $0x1dc, %ecx\n"
                  "    rdmsr\n"
                  "    shl $32, %rdx\n"
                  "    or %rdx, %rax\n"
                  "    vmmcall\n"
                  "    ud2");
extern char svm_e2_nop_end[], svm_e2_lbr_to[];

/* void svm_e2_tf_vmrun(void *vmcb_pa): POPF sets TF, so the single-step
 * trap comes after the next instruction, the VMRUN; svm_e2_tf_after is
 * where it must be reported. */
__asm__(".pushsection .text\n"
        "svm_e2_tf_vmrun:\n"
        "    mov %rdi, %rax\n"
        "    pushfq\n"
        "    orq $0x100, (%rsp)\n"
        "    popfq\n"
        "    vmrun %rax\n"
        "svm_e2_tf_after:\n"
        "    pushfq\n"
        "    andq $~0x100, (%rsp)\n"
        "    popfq\n"
        "    ret\n"
        ".popsection");
void svm_e2_tf_vmrun(void *vmcb_pa);
extern char svm_e2_tf_after[];

/* The guest took `vector` through its IDT: the guest stack at the stub's
 * VMMCALL (error code, if any, then RIP, CS, RFLAGS, RSP, SS), else NULL. */
static const uint64_t *took(struct svm_vcpu *v, uint64_t code, unsigned vector, const char *what)
{
    if (!svm_check_exit(v, code, SVM_EXIT_VMMCALL, what))
        return NULL;
    int got = svm_guest_exc_vector(v);
    if (!check(got == (int)vector, "%s: want delivery through guest IDT vector %#x, got %s", what,
               vector, svm_exit_str(v)))
        return NULL;
    return (const uint64_t *)(uintptr_t)v->vmcb->save.rsp;
}

/* The guest ran to its own VMMCALL without taking an event. */
static bool no_event(struct svm_vcpu *v, uint64_t code, const void *at, const char *what)
{
    if (!svm_check_exit(v, code, SVM_EXIT_VMMCALL, what))
        return false;
    return check(v->vmcb->save.rip == A(at) && svm_guest_exc_vector(v) < 0,
                 "%s: want the guest's VMMCALL at %#llx, got %s", what, (unsigned long long)A(at),
                 svm_exit_str(v));
}

static void v_irq(struct svm_vcpu *v, unsigned vector, unsigned prio, unsigned tpr, bool ign)
{
    v->vmcb->control.int_ctl = V_IRQ | V_INTR_MASKING | ((uint64_t)prio << V_INTR_PRIO_SHIFT) |
                               ((uint64_t)vector << V_INTR_VECTOR_SHIFT) | tpr |
                               (ign ? V_IGN_TPR : 0);
}

/* ---- virtual interrupts ----------------------------------------------------------------- */

PROBE(svm_e2_v_irq_masked, "svm.event.v_irq_masked", "SVM",
      "V_IRQ=1 (vector 0x50, priority 15, V_TPR=0, V_INTR_MASKING=1) with guest RFLAGS.IF=0: the "
      "virtual interrupt is not taken; the guest runs to its VMMCALL and the VMCB V_IRQ is still "
      "1 after the exit",
      "AMD APM Vol. 2 15.21.4", "apm.15.21.4.v-irq")
{
    svm_require();
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_e2_nop, 0);
    v_irq(&v, 0x50, 15, 0, false);
    v.vmcb->save.rflags = 0x2;
    if (no_event(&v, svm_run(&v), svm_e2_nop_end, "V_IRQ pending, guest IF=0"))
        check_eq("VMCB V_IRQ after the exit", v.vmcb->control.int_ctl & V_IRQ, V_IRQ);
}

PROBE(svm_e2_v_irq_prio_equal, "svm.event.v_irq_prio_tpr", "SVM",
      "V_IRQ=1 (vector 0x50) with V_INTR_PRIO = V_TPR = 5, V_IGN_TPR=0, guest IF=1: the priority "
      "is not above V_TPR, so the virtual interrupt is not taken: the guest runs to its VMMCALL, "
      "V_IRQ still 1 after the exit",
      "AMD APM Vol. 2 15.21.4", "apm.15.21.4.v-irq-priority")
{
    svm_require();
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_e2_nop, 0);
    v_irq(&v, 0x50, 5, 5, false);
    v.vmcb->save.rflags = 0x2 | RFLAGS_IF;
    if (no_event(&v, svm_run(&v), svm_e2_nop_end, "V_INTR_PRIO = V_TPR = 5"))
        check_eq("VMCB V_IRQ after the exit", v.vmcb->control.int_ctl & V_IRQ, V_IRQ);
}

PROBE(svm_e2_v_ign_tpr, "svm.event.v_ign_tpr", "SVM",
      "V_IRQ=1 (vector 0x50) with V_INTR_PRIO=3 below V_TPR=5 but V_IGN_TPR=1, guest IF=1: the "
      "TPR is ignored and the guest takes vector 0x50 before its first instruction (frame RIP = "
      "the VMCB RIP); V_IRQ is 0 after the exit",
      "AMD APM Vol. 2 15.21.4", "apm.15.21.4.v-ign-tpr")
{
    svm_require();
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_e2_nop, 0);
    v_irq(&v, 0x50, 3, 5, true);
    v.vmcb->save.rflags = 0x2 | RFLAGS_IF;
    const uint64_t *f = took(&v, svm_run(&v), 0x50, "V_IGN_TPR=1, priority 3 below V_TPR 5");
    if (!f)
        return;
    check_eq("frame RIP", f[0], A(svm_e2_nop));
    check_eq("VMCB V_IRQ after the exit", v.vmcb->control.int_ctl & V_IRQ, 0);
}

PROBE(svm_e2_vintr_masked, "svm.event.vintr_masked", "SVM",
      "V_IRQ=1 (vector 0x50, priority 15, V_TPR=0) with the VINTR intercept set and guest "
      "RFLAGS.IF=0: no virtual interrupt can be taken, so there is no VINTR exit: the guest runs "
      "to its VMMCALL with V_IRQ still 1",
      "AMD APM Vol. 2 15.13.5, 15.21.4", "apm.15.13.5.vintr")
{
    svm_require();
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_e2_nop, 0);
    v_irq(&v, 0x50, 15, 0, false);
    v.vmcb->control.intercept_misc1 |= SVM_INTERCEPT_VINTR;
    v.vmcb->save.rflags = 0x2;
    if (no_event(&v, svm_run(&v), svm_e2_nop_end, "VINTR intercepted, guest IF=0"))
        check_eq("VMCB V_IRQ after the exit", v.vmcb->control.int_ctl & V_IRQ, V_IRQ);
}

/* ---- event injection ------------------------------------------------------------------------ */

static void inject(struct svm_vcpu *v, unsigned vector, bool ev, uint32_t err)
{
    v->vmcb->control.event_inj = SVM_EVTINJ_VALID | SVM_EVTINJ_TYPE_EXEPT | vector |
                                 (ev ? SVM_EVTINJ_VALID_ERR : 0) |
                                 ((uint64_t)err << SVM_EVTINJ_ERR_SHIFT);
}

PROBE(svm_e2_inject_ev0, "svm.event.inject_ev_clear", "SVM",
      "EVENTINJ = #GP (vector 13, type 3) with EV=0 (error code 0x1234 in the field): the guest "
      "takes vector 13 and no error code is pushed: the frame starts with the return RIP (= the "
      "VMCB RIP); EV, not the vector, decides",
      "AMD APM Vol. 2 15.20", "apm.15.20.inject-exception")
{
    svm_require();
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_e2_nop, 0);
    inject(&v, GP_VECTOR, false, 0x1234);
    const uint64_t *f = took(&v, svm_run(&v), GP_VECTOR, "#GP injected with EV=0");
    if (!f)
        return;
    check_eq("first word of the frame (the RIP: no error code pushed)", f[0], A(svm_e2_nop));
}

PROBE(svm_e2_inject_ev1, "svm.event.inject_ev_set", "SVM",
      "EVENTINJ = #UD (vector 6, type 3) with EV=1 and error code 0x55: the guest takes vector 6 "
      "with the error code 0x55 pushed (EV, not the vector, decides) and the frame's RIP = the "
      "VMCB RIP",
      "AMD APM Vol. 2 15.20", "apm.15.20.inject-exception")
{
    svm_require();
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_e2_nop, 0);
    inject(&v, UD_VECTOR, true, 0x55);
    const uint64_t *f = took(&v, svm_run(&v), UD_VECTOR, "#UD injected with EV=1");
    if (!f)
        return;
    check_eq("error code on the guest stack", f[0], 0x55);
    check_eq("frame RIP", f[1], A(svm_e2_nop));
}

PROBE(svm_e2_inject_df, "svm.event.inject_df", "SVM",
      "EVENTINJ = #DF (vector 8, type 3, EV=1, error code 0), #DF intercepted: the guest takes "
      "vector 8 with error code 0 and the frame's RIP = the VMCB RIP; EVENTINJ.V is 0 after the "
      "exit",
      "AMD APM Vol. 2 15.20", "apm.15.20.inject-exception", "apm.15.20.inject-not-intercepted",
      "apm.15.6.vmexit-cleared")
{
    svm_require();
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_e2_nop, 0);
    inject(&v, DF_VECTOR, true, 0);
    const uint64_t *f = took(&v, svm_run(&v), DF_VECTOR, "injected #DF");
    if (!f)
        return;
    check_eq("error code on the guest stack", f[0], 0);
    check_eq("frame RIP", f[1], A(svm_e2_nop));
    check_eq("EVENTINJ.V after the exit", v.vmcb->control.event_inj & SVM_EVTINJ_VALID, 0);
}

PROBE(svm_e2_inject_pf, "svm.event.inject_pf_cr2", "SVM",
      "EVENTINJ = #PF (vector 14, EV=1, error code 2) with VMCB CR2 = 0x5a5a5000: the guest takes "
      "vector 14 with error code 2, and CR2 is what the VMM put in the VMCB (injection does not "
      "write CR2): the VMCB CR2 after the exit is 0x5a5a5000",
      "AMD APM Vol. 2 15.20, 15.5.1", "apm.15.20.inject-pf-cr2")
{
    svm_require();
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_e2_nop, 0);
    inject(&v, PF_VECTOR, true, 2);
    v.vmcb->save.cr2 = 0x5a5a5000;
    const uint64_t *f = took(&v, svm_run(&v), PF_VECTOR, "injected #PF");
    if (!f)
        return;
    check_eq("error code on the guest stack", f[0], 2);
    check_eq("frame RIP", f[1], A(svm_e2_nop));
    check_eq("VMCB CR2 after the exit", v.vmcb->save.cr2, 0x5a5a5000);
}

PROBE(svm_e2_exitintinfo_errcode, "svm.event.exitintinfo_errcode", "SVM",
      "EVENTINJ = #AC (vector 17, type 3, EV=1, error code 0x1234) with the guest IDT limit below "
      "gate 17 and #GP intercepted: delivery raises #GP: exit 0x4D at the VMCB RIP with "
      "EXITINTINFO = the injected event with its error code: V|EV|type 3|17 and ERRORCODE "
      "(bits 63:32) = 0x1234 (0x0000123480000B11)",
      "AMD APM Vol. 2 15.7.2, 15.20", "apm.15.7.2.exitintinfo", "apm.15.20.inject-exitintinfo")
{
    svm_require();
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_e2_nop, 0);
    inject(&v, AC_VECTOR, true, 0x1234);
    v.vmcb->save.idtr.limit = AC_VECTOR * 16 - 1;
    uint64_t code = svm_run(&v);
    if (!svm_check_exit(&v, code, SVM_EXIT_EXCP(GP_VECTOR),
                        "#AC delivery through a gate beyond "
                        "the IDT limit"))
        return;
    check_eq("#GP during delivery: VMCB RIP", v.vmcb->save.rip, A(svm_e2_nop));
    check_eq("EXITINTINFO", v.vmcb->control.exit_int_info,
             (0x1234ull << 32) | SVM_EVTINJ_VALID | SVM_EVTINJ_VALID_ERR | SVM_EVTINJ_TYPE_EXEPT |
                 AC_VECTOR);
}

/* The guest IDT's gate for `vector`, as the default guest's VMCB has it. */
static uint64_t gate_addr(const struct svm_vcpu *v, unsigned vector)
{
    return v->vmcb->save.idtr.base + 16ull * vector;
}

PROBE(svm_e2_exitintinfo_npf, "svm.event.exitintinfo_npf", "NPT",
      "NP enabled, EVENTINJ = #UD (vector 6, type 3) and the nested PTE of the guest IDT page "
      "holding gate 6 not present: delivery exits 0x400 (#NPF) at the VMCB RIP with EXITINFO1 = "
      "US|bit 32 (0x100000004), EXITINFO2 = the gate's guest-physical address and EXITINTINFO = "
      "the injected event (0x80000306), EVENTINJ.V = 0; re-injected from EXITINTINFO with the "
      "page present, the guest takes vector 6",
      "AMD APM Vol. 2 15.7.2, 15.20, 15.25.6", "apm.15.7.2.exitintinfo",
      "apm.15.20.inject-exitintinfo", "apm.15.25.6.npf-not-present", "apm.15.6.vmexit-cleared")
{
    svm_require_npt();
    struct svm_vcpu v;
    struct npt n;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_e2_nop, 0);
    npt_build(&n, false);
    svm_npt_enable(&v, &n);
    uint64_t gate = gate_addr(&v, UD_VECTOR);
    uint64_t *pte = npt_pte(&n, gate & ~0xfffull), good = *pte;
    if ((A(svm_e2_nop) & ~0xfffull) == (gate & ~0xfffull) ||
        (v.vmcb->save.rsp & ~0xfffull) == (gate & ~0xfffull))
        error("the guest IDT shares a page with the guest code or stack");
    inject(&v, UD_VECTOR, false, 0);
    *pte = 0;
    uint64_t code = svm_run(&v);
    *pte = good;
    if (!svm_check_exit(&v, code, SVM_EXIT_NPF, "#UD delivery with the IDT page not present"))
        return;
    check_eq("#NPF during delivery: VMCB RIP", v.vmcb->save.rip, A(svm_e2_nop));
    check_eq("#NPF during delivery: EXITINFO1", v.vmcb->control.exit_info_1,
             SVM_NPF_GUEST_FINAL | SVM_NPF_US);
    uint64_t i2 = v.vmcb->control.exit_info_2;
    check(i2 >= gate && i2 < gate + 16,
          "#NPF during delivery: EXITINFO2 %#llx, want the gate's address %#llx (+0..15)",
          (unsigned long long)i2, (unsigned long long)gate);
    check_eq("EXITINTINFO (the #UD being delivered)", v.vmcb->control.exit_int_info,
             SVM_EVTINJ_VALID | SVM_EVTINJ_TYPE_EXEPT | UD_VECTOR);
    check_eq("EVENTINJ.V after the exit", v.vmcb->control.event_inj & SVM_EVTINJ_VALID, 0);
    v.vmcb->control.event_inj = v.vmcb->control.exit_int_info;
    const uint64_t *f = took(&v, svm_run(&v), UD_VECTOR, "#UD re-injected from EXITINTINFO");
    if (f)
        check_eq("frame RIP", f[0], A(svm_e2_nop));
}

/* ---- the host's single step over VMRUN -------------------------------------------------- */

static uint64_t read_dr6(void)
{
    uint64_t v;
    __asm__ volatile("mov %%db6, %0" : "=r"(v));
    return v;
}

PROBE(svm_e2_host_tf, "svm.basic.host_tf", "SVM",
      "Host single-steps over VMRUN (POPF sets RFLAGS.TF, VMRUN is the next instruction; guest "
      "RFLAGS.TF=0, #DB intercepted): the guest runs NOP; NOP; NOP; VMMCALL without a #DB exit, "
      "and the host's single-step #DB trap comes once #VMEXIT has completed, on the host "
      "instruction after VMRUN (trap RIP = that instruction), with DR6.BS=1",
      "AMD APM Vol. 2 15.5.1 (VMRUN and TF/RF Bits in EFLAGS)", "apm.15.5.1.host-tf")
{
    svm_require();
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_e2_nops, 0);
    v.vmcb->control.exit_code = 0;
    struct fault f;
    int vec = catch_fault(svm_e2_tf_vmrun, (void *)(uintptr_t)v.vmcb, &f);
    uint64_t dr6 = read_dr6();
    svm_stgi(); /* #VMEXIT left GIF = 0 */
    if (!svm_check_exit(&v, v.vmcb->control.exit_code, SVM_EXIT_VMMCALL,
                        "guest under a single-stepping host"))
        return;
    check_eq("guest VMMCALL: VMCB RIP (the guest ran all three NOPs)", v.vmcb->save.rip,
             A(svm_e2_nops) + 3);
    if (!check(vec == DB_VECTOR, "host single step over VMRUN: want #DB, got %s", fault_str(&f)))
        return;
    check_eq("host #DB trap RIP (the instruction after VMRUN)", f.rip, A(svm_e2_tf_after));
    check_eq("host DR6.BS", dr6 & BIT(14), BIT(14));
}

/* ---- LBR virtualization ------------------------------------------------------------------ */

PROBE(svm_e2_lbrv_msrs, "svm.features.lbrv_guest_msrs", "LBRV",
      "With CPUID 0x8000000A EDX.LbrVirt[1]=1, LBR_VIRTUALIZATION_ENABLE=1 and guest DBGCTL=1 "
      "(LBR), MSRs not intercepted: after a taken JMP the guest's own RDMSR of LastBranchFromIP "
      "(0x1DB) and LastBranchToIP (0x1DC) return the JMP and its target (the guest's records are "
      "real), and #VMEXIT saves the same values in VMCB BR_FROM/BR_TO; the host's DEBUGCTL is "
      "unchanged",
      "AMD APM Vol. 2 15.23.1; 13.1.1", "apm.15.23.lbrv-records")
{
    svm_require();
    if (!svm_has(SVM_FEAT_LBRV))
        skip("CPUID 0x8000000A EDX.LbrVirt[1]=0");
    uint64_t host_dbgctl = rdmsr(MSR_IA32_DEBUGCTL);
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_e2_lbr, 0);
    v.vmcb->control.virt_ext |= SVM_VIRT_EXT_LBRV;
    v.vmcb->save.dbgctl = 1;
    uint64_t code = svm_run(&v);
    uint64_t after = rdmsr(MSR_IA32_DEBUGCTL);
    if (after != host_dbgctl)
        wrmsr(MSR_IA32_DEBUGCTL, host_dbgctl);
    if (!svm_check_exit(&v, code, SVM_EXIT_VMMCALL, "guest JMP and RDMSRs with LBRV"))
        return;
    check_eq("guest RDMSR LastBranchFromIP", v.regs.rbx, A(svm_e2_lbr));
    check_eq("guest RDMSR LastBranchToIP", v.vmcb->save.rax, A(svm_e2_lbr_to));
    check_eq("VMCB BR_FROM", v.vmcb->save.br_from, A(svm_e2_lbr));
    check_eq("VMCB BR_TO", v.vmcb->save.br_to, A(svm_e2_lbr_to));
    check_eq("host DEBUGCTL after the exit", after, host_dbgctl);
}

/* ---- the host's DR7 after #VMEXIT -------------------------------------------------------- */

static void write_dr(unsigned n, uint64_t v)
{
    if (n == 0)
        __asm__ volatile("mov %0, %%db0" ::"r"(v));
    else
        __asm__ volatile("mov %0, %%db7" ::"r"(v));
}

static uint64_t read_dr7(void)
{
    uint64_t v;
    __asm__ volatile("mov %%db7, %0" : "=r"(v));
    return v;
}

/* Never executed: the address of the host's DR0 breakpoint. */
GUEST(svm_e2_never, "ud2");

PROBE(svm_e2_host_dr7, "svm.basic.host_dr7", "SVM",
      "Host DR7 = 0x401 (L0: an execute breakpoint at DR0 = code that never runs) at VMRUN; the "
      "guest VMMCALLs: after #VMEXIT the host's DR7 reads 0x400 (#VMEXIT disables the host's "
      "breakpoints); the probe restores DR7 = 0x400 and DR0 = 0",
      "AMD APM Vol. 2 15.6", "apm.15.6.vmexit-host-rflags")
{
    svm_require();
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_e2_nop, 0);
    write_dr(0, A(svm_e2_never));
    write_dr(7, 0x401);
    uint64_t code = svm_run(&v);
    uint64_t dr7 = read_dr7();
    write_dr(7, 0x400);
    write_dr(0, 0);
    if (!svm_check_exit(&v, code, SVM_EXIT_VMMCALL, "guest VMMCALL"))
        return;
    check_eq("host DR7 after #VMEXIT", dr7, 0x400);
}
