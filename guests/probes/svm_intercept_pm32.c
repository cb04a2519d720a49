/* SPDX-License-Identifier: MIT */
/*
 * SVM intercepts that need a 32-bit protected-mode guest (no paging,
 * EFER.LME=0): #BR from BOUND and #OF from INTO (both #UD in 64-bit
 * mode; AMD APM Vol. 2 15.12.5, 15.12.6, nRIP 15.7.1) and the task-switch
 * intercept (exit 0x7D, 15.14.1; EXITINFO1/2 in Appendix C), which a JMP
 * to a TSS and an IRET with NT=1 raise.
 *
 * Each guest has a GDT of its own (a copy of the kernel's plus the
 * descriptors it needs) and a TR of its own (a scratch 32-bit TSS), so
 * that a model that performed a task switch instead of intercepting it
 * would write guest memory only.
 */
#include "nvct.h"
#include "svm.h"

__asm__(".pushsection .text\n"
        ".code32\n"
        /* EAX = 5, EBX = bounds {0, 1} */
        "svm_p32_bound:\n"
        "    bound %eax, (%ebx)\n"
        "svm_p32_bound_end:\n"
        "    vmmcall\n"
        "    ud2\n"
        /* OF = 1, then INTO */
        "svm_p32_into_pre:\n"
        "    mov $0x7fffffff, %eax\n"
        "    add $1, %eax\n"
        "svm_p32_into:\n"
        "    into\n"
        "svm_p32_into_end:\n"
        "    vmmcall\n"
        "    ud2\n"
        /* JMP far to the TSS selector in BX (through memory at ECX) */
        "svm_p32_jmptss:\n"
        "    ljmp *(%ecx)\n"
        "svm_p32_jmptss_end:\n"
        "    vmmcall\n"
        "    ud2\n"
        /* IRET with EFLAGS.NT = 1: a return to the previous task */
        "svm_p32_iretnt:\n"
        "    pushl $0x4002\n"
        "    popfl\n"
        "svm_p32_iret:\n"
        "    iret\n"
        "svm_p32_iret_end:\n"
        "    vmmcall\n"
        "    ud2\n"
        ".code64\n"
        ".popsection");
extern char svm_p32_bound[], svm_p32_bound_end[], svm_p32_into_pre[], svm_p32_into[],
    svm_p32_into_end[], svm_p32_jmptss[], svm_p32_jmptss_end[], svm_p32_iretnt[], svm_p32_iret[],
    svm_p32_iret_end[];

/* A 32-bit TSS descriptor (type 9 available / 0xB busy), base and limit 0x67. */
static uint64_t tss_desc(uint64_t base, unsigned type)
{
    return 0x67 | ((base & 0xffffff) << 16) | ((uint64_t)(0x80 | type) << 40) |
           (((base >> 24) & 0xff) << 56);
}

struct pm32 {
    struct svm_vcpu v;
    uint64_t *gdt;
    uint8_t *scratch; /* operands; the guest's TSS at +0x800 */
    uint8_t *tss2;    /* the target TSS */
    uint16_t tss2_sel;
};

/* A 32-bit guest at `entry`, its own GDT (kernel copy + slot for an
 * available TSS at tss2) and its own busy TR at scratch + 0x800. */
static void pm32_init(struct pm32 *p, const char *entry)
{
    svm_require();
    p->scratch = alloc_page();
    p->tss2 = alloc_page();
    svm_vcpu_init(&p->v, (svm_guest_fn)(uintptr_t)entry, 0);
    struct vmcb_save *s = &p->v.vmcb->save;
    if (A(p->scratch) >= (1ull << 32) || A(p->tss2) >= (1ull << 32) || A(entry) >= (1ull << 32))
        error("guest memory above 4 GiB");
    p->gdt = alloc_page();
    uint16_t limit = s->gdtr.limit;
    if (limit > 2048)
        error("GDT limit %#x", limit);
    memcpy(p->gdt, (const void *)(uintptr_t)s->gdtr.base, limit + 1u);
    unsigned slot = (limit + 1u + 7) / 8;
    p->gdt[slot] = tss_desc(A(p->tss2), 9);
    p->tss2_sel = (uint16_t)(slot * 8);
    s->gdtr.base = A(p->gdt);
    s->gdtr.limit = (uint16_t)(slot * 8 + 7);

    s->cr0 = CR0_PE | CR0_ET | CR0_NE;
    s->cr4 = 0;
    s->efer = EFER_SVME;
    svm_seg_from_gdt(&s->cs, KERNEL_CS32);
    svm_seg_from_gdt(&s->ds, KERNEL_DS);
    svm_seg_from_gdt(&s->es, KERNEL_DS);
    svm_seg_from_gdt(&s->ss, KERNEL_DS);
    s->rsp = A(p->scratch) + 0x700;
    s->tr.selector = TSS_SEL;
    s->tr.base = A(p->scratch) + 0x800;
    s->tr.limit = 0x67;
    s->tr.attrib = SVM_SEG_ATTR_P | 0xb;
    /* 32-bit guest IDT: not used (every exception intercepted) */
    s->idtr.limit = 0;
}

static bool run_exit(struct pm32 *p, uint64_t want, const char *at, const char *what)
{
    uint64_t code = svm_run(&p->v);
    if (!svm_check_exit(&p->v, code, want, what))
        return false;
    return check(p->v.vmcb->save.rip == A(at), "%s: VMCB RIP %#llx, want %#llx", what,
                 (unsigned long long)p->v.vmcb->save.rip, (unsigned long long)A(at));
}

static void check_nrip(struct pm32 *p, const char *after, const char *what)
{
    if (!svm_has(SVM_FEAT_NRIPS))
        return;
    check(p->v.vmcb->control.next_rip == A(after),
          "%s: next_rip %#llx, want %#llx (15.7.1: nRIP "
          "is saved for exceptions caused by INT3, INTO and BOUND)",
          what, (unsigned long long)p->v.vmcb->control.next_rip, (unsigned long long)A(after));
}

PROBE(svm_p32_br, "svm.intercept.exception_br", "SVM",
      "32-bit protected-mode guest: BOUND EAX=5 against bounds {0, 1} with #BR intercepted: exit "
      "0x45 at the BOUND (a fault), EXITINTINFO.V=0; with CPUID 0x8000000A EDX.NRIPS[3]=1 "
      "next_rip = the instruction after the BOUND",
      "AMD APM Vol. 2 15.12, 15.12.6, 15.7.1", "apm.15.12.exception-intercept", "apm.15.7.1.nrip")
{
    struct pm32 p;
    pm32_init(&p, svm_p32_bound);
    uint32_t *bounds = (uint32_t *)(void *)p.scratch;
    bounds[0] = 0;
    bounds[1] = 1;
    p.v.vmcb->save.rax = 5;
    p.v.regs.rbx = A(bounds);
    if (!run_exit(&p, SVM_EXIT_EXCP(BR_VECTOR), svm_p32_bound, "BOUND out of range"))
        return;
    check_eq("#BR exit: EXITINTINFO.V", p.v.vmcb->control.exit_int_info & SVM_EVTINJ_VALID, 0);
    check_nrip(&p, svm_p32_bound_end, "#BR exit");
}

PROBE(svm_p32_of, "svm.intercept.exception_of", "SVM",
      "32-bit protected-mode guest: ADD overflows (OF=1), then INTO with #OF intercepted: exit "
      "0x44 "
      "at the INTO (as for INT3, the reported rIP is that of the instruction); with CPUID "
      "0x8000000A EDX.NRIPS[3]=1 next_rip = the instruction after the INTO",
      "AMD APM Vol. 2 15.12, 15.12.5, 15.7.1", "apm.15.12.soft-exceptions", "apm.15.7.1.nrip")
{
    struct pm32 p;
    pm32_init(&p, svm_p32_into_pre);
    uint64_t code = svm_run(&p.v);
    if (!svm_check_exit(&p.v, code, SVM_EXIT_EXCP(OF_VECTOR), "INTO with OF=1"))
        return;
    uint64_t rip = p.v.vmcb->save.rip;
    check(rip == A(svm_p32_into), "#OF exit: VMCB RIP %#llx, want the INTO at %#llx%s",
          (unsigned long long)rip, (unsigned long long)A(svm_p32_into),
          rip == A(svm_p32_into_end) ? " (got the next instruction)" : "");
    check_nrip(&p, svm_p32_into_end, "#OF exit");
}

PROBE(svm_p32_ts_jmp, "svm.intercept.task_switch_jmp", "SVM",
      "32-bit protected-mode guest: JMP far to an available 32-bit TSS selector with the "
      "task-switch intercept (vector 3 bit 29) set: exit 0x7D at the JMP before the switch, "
      "EXITINFO1 = the TSS selector, EXITINFO2 = bit 38 (the switch is due to a JMP; no error "
      "code, not IRET); the guest's TR is unchanged",
      "AMD APM Vol. 2 15.9 (Table 15-7), 15.14.1, Appendix C", "apm.15.14.1.task-switch")
{
    struct pm32 p;
    pm32_init(&p, svm_p32_jmptss);
    p.v.vmcb->control.intercept_misc1 |= SVM_INTERCEPT_TASK_SWITCH;
    uint8_t *far = p.scratch + 0x100; /* m16:32 */
    *(uint32_t *)(void *)far = 0;
    *(uint16_t *)(void *)(far + 4) = p.tss2_sel;
    p.v.regs.rcx = A(far);
    if (!run_exit(&p, SVM_EXIT_TASK_SWITCH, svm_p32_jmptss, "JMP far to a TSS"))
        return;
    check_eq("task switch exit: EXITINFO1 (the TSS selector)",
             p.v.vmcb->control.exit_info_1 & 0xffff, p.tss2_sel);
    check_eq("task switch exit: EXITINFO2 (bit 38: JMP)", p.v.vmcb->control.exit_info_2, BIT(38));
    check_eq("task switch exit: VMCB TR selector", p.v.vmcb->save.tr.selector, TSS_SEL);
}

PROBE(svm_p32_ts_iret, "svm.intercept.task_switch_iret", "SVM",
      "32-bit protected-mode guest: IRET with EFLAGS.NT=1 (a return to the task in the current "
      "TSS's link field, a busy 32-bit TSS) with the task-switch intercept set: exit 0x7D at the "
      "IRET before the switch, EXITINFO1 = the link selector, EXITINFO2 = bit 36 (the switch is "
      "due to an IRET; no error code, not JMP)",
      "AMD APM Vol. 2 15.9 (Table 15-7), 15.14.1, Appendix C", "apm.15.14.1.task-switch")
{
    struct pm32 p;
    pm32_init(&p, svm_p32_iretnt);
    p.gdt[p.tss2_sel / 8] = tss_desc(A(p.tss2), 0xb); /* busy: the task IRET returns to */
    p.v.vmcb->control.intercept_misc1 |= SVM_INTERCEPT_TASK_SWITCH;
    *(uint16_t *)(void *)(p.scratch + 0x800) = p.tss2_sel; /* link of the current TSS */
    if (!run_exit(&p, SVM_EXIT_TASK_SWITCH, svm_p32_iret, "IRET with NT=1"))
        return;
    check_eq("task switch exit: EXITINFO1 (the link selector)",
             p.v.vmcb->control.exit_info_1 & 0xffff, p.tss2_sel);
    check_eq("task switch exit: EXITINFO2 (bit 36: IRET)", p.v.vmcb->control.exit_info_2, BIT(36));
}
