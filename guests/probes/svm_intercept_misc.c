/* SPDX-License-Identifier: MIT */
/*
 * SVM intercepts of Appendix C not probed elsewhere (AMD APM Vol. 2 15.9,
 * Table 15-7; intercept vectors 3, 4 and 5, Table B-1): the descriptor-
 * table reads and writes (SIDT/SGDT/SLDT/STR, LIDT/LGDT/LLDT/LTR, exits
 * 0x66-0x6D), PUSHF, POPF, IRET, INTn, ICEBP, RDPRU, INVPCID and the
 * conditional MWAIT intercept. Each intercepted instruction exits before
 * it executes, with the VMCB RIP at the instruction; resuming after it
 * reaches the next VMMCALL. Where running it in the guest is harmless the
 * probe also runs it with the intercept clear and checks what it did.
 * nRIP is not checked here (svm.exitinfo.next_rip is its subject).
 */
#include "nvct.h"
#include "svm.h"

/* RBX = a scratch page for the memory operands, AX = a selector. */
#define XSTUB(name, insn)                               \
    GUEST(name, insn, #name "_end:", "vmmcall", "ud2"); \
    extern char name##_end[]

XSTUB(svm_m_sidt, "sidt (%rbx)");
XSTUB(svm_m_sgdt, "sgdt (%rbx)");
XSTUB(svm_m_sldt, "sldt %ax");
XSTUB(svm_m_str, "str %ax");
XSTUB(svm_m_lidt, "lidt (%rbx)");
XSTUB(svm_m_lgdt, "lgdt (%rbx)");
XSTUB(svm_m_lldt, "lldt %ax");
XSTUB(svm_m_ltr, "ltr %ax");
XSTUB(svm_m_pushf, "pushfq");
XSTUB(svm_m_popf, "popfq");
XSTUB(svm_m_iret, "iretq");
XSTUB(svm_m_int, "int $0x21");
XSTUB(svm_m_icebp, ".byte 0xf1");
XSTUB(svm_m_rdpru, ".byte 0x0f, 0x01, 0xfd");
XSTUB(svm_m_invpcid, "invpcid (%rbx), %rax");
/* MONITOR (RAX = page, ECX = EDX = 0); MWAIT (EAX = ECX = 0); VMMCALL */
GUEST(svm_m_monmwait, "monitor %rax, %ecx, %edx", "xor %eax, %eax",
      "svm_m_mwait:", "mwait %eax, %ecx", "svm_m_mwait_end:", "vmmcall", "ud2");
extern char svm_m_mwait[], svm_m_mwait_end[];

struct mcase {
    const char *what;
    void (*site)(void);
    const char *end;
    unsigned vec; /* 3, 4, 5: intercept_misc1/2/3 */
    uint32_t bit;
    uint64_t exit;
};

static void set_icpt(struct svm_vcpu *v, unsigned vec, uint32_t bit, bool on)
{
    /* intercept vectors 3, 4, 5: VMCB offsets 0x0C, 0x10, 0x14 */
    uint32_t *w = (uint32_t *)(uintptr_t)((uint8_t *)v->vmcb + 0x0c + 4 * (vec - 3));
    *w = on ? (*w | bit) : (*w & ~bit);
}

struct mrun {
    struct svm_vcpu v;
    uint8_t *scratch;
};

static void mrun_init(struct mrun *m, const struct mcase *t)
{
    svm_require();
    m->scratch = alloc_page();
    svm_vcpu_init(&m->v, (svm_guest_fn)(uintptr_t)t->site, 0);
    m->v.regs.rbx = A(m->scratch);
}

/* Intercept set: exit t->exit at the instruction; resumed after it, the
 * VMMCALL. Returns false after a failed check. */
static bool intercepted(struct mrun *m, const struct mcase *t)
{
    struct svm_vcpu *v = &m->v;
    set_icpt(v, t->vec, t->bit, true);
    v->vmcb->save.rip = A(t->site);
    uint64_t code = svm_run(v);
    if (!svm_check_exit(v, code, t->exit, t->what))
        return false;
    if (!check(v->vmcb->save.rip == A(t->site), "%s: VMCB RIP %#llx, want the instruction at %#llx",
               t->what, (unsigned long long)v->vmcb->save.rip, (unsigned long long)A(t->site)))
        return false;
    v->vmcb->save.rip = A(t->end);
    code = svm_run(v);
    if (!svm_check_exit(v, code, SVM_EXIT_VMMCALL, "VMMCALL after resuming past the instruction"))
        return false;
    set_icpt(v, t->vec, t->bit, false);
    return true;
}

/* Intercept clear: the instruction runs and the guest reaches VMMCALL. */
static bool runs_clear(struct mrun *m, const struct mcase *t)
{
    struct svm_vcpu *v = &m->v;
    svm_vcpu_set_entry(v, (svm_guest_fn)(uintptr_t)t->site, 0);
    set_icpt(v, t->vec, t->bit, false);
    uint64_t code = svm_run(v);
    if (!svm_check_exit(v, code, SVM_EXIT_VMMCALL, "intercept clear: the instruction executes"))
        return false;
    return check(v->vmcb->save.rip == A(t->end), "%s not intercepted: VMMCALL at %#llx, want %#llx",
                 t->what, (unsigned long long)v->vmcb->save.rip, (unsigned long long)A(t->end));
}

#define REF "AMD APM Vol. 2 15.9 (Table 15-7), Appendix C"

/* ---- descriptor-table reads ---------------------------------------------------------- */

PROBE(svm_mi_sidt, "svm.intercept.idtr_read", "SVM",
      "Guest SIDT with the IDTR-read intercept (vector 3 bit 6) set: exit 0x66 at the SIDT, "
      "nothing stored; resumed after it the guest reaches VMMCALL; with the intercept clear SIDT "
      "stores the VMCB IDTR (limit, base)",
      REF, "apm.15.9.idtr-gdtr-read")
{
    static const struct mcase t =
        {"SIDT", svm_m_sidt, svm_m_sidt_end, 3, SVM_INTERCEPT_IDTR_READ, SVM_EXIT_IDTR_READ};
    struct mrun m;
    mrun_init(&m, &t);
    memset(m.scratch, 0xa5, 16);
    if (!intercepted(&m, &t))
        return;
    check_eq("memory after the intercepted SIDT", *(uint16_t *)m.scratch, 0xa5a5);
    if (!runs_clear(&m, &t))
        return;
    check_eq("SIDT limit", *(uint16_t *)m.scratch, m.v.vmcb->save.idtr.limit);
    check_eq("SIDT base", *(uint64_t *)(m.scratch + 2), m.v.vmcb->save.idtr.base);
}

PROBE(svm_mi_sgdt, "svm.intercept.gdtr_read", "SVM",
      "Guest SGDT with the GDTR-read intercept (vector 3 bit 7) set: exit 0x67 at the SGDT, "
      "nothing stored; resumed after it the guest reaches VMMCALL; with the intercept clear SGDT "
      "stores the VMCB GDTR (limit, base)",
      REF, "apm.15.9.idtr-gdtr-read")
{
    static const struct mcase t =
        {"SGDT", svm_m_sgdt, svm_m_sgdt_end, 3, SVM_INTERCEPT_GDTR_READ, SVM_EXIT_GDTR_READ};
    struct mrun m;
    mrun_init(&m, &t);
    memset(m.scratch, 0xa5, 16);
    if (!intercepted(&m, &t))
        return;
    check_eq("memory after the intercepted SGDT", *(uint16_t *)m.scratch, 0xa5a5);
    if (!runs_clear(&m, &t))
        return;
    check_eq("SGDT limit", *(uint16_t *)m.scratch, m.v.vmcb->save.gdtr.limit);
    check_eq("SGDT base", *(uint64_t *)(m.scratch + 2), m.v.vmcb->save.gdtr.base);
}

PROBE(svm_mi_sldt, "svm.intercept.ldtr_read", "SVM",
      "Guest SLDT AX (AX = 0x1234) with the LDTR-read intercept (vector 3 bit 8) set: exit 0x68 "
      "at the SLDT, AX unchanged; resumed after it the guest reaches VMMCALL; with the intercept "
      "clear SLDT returns the VMCB LDTR selector",
      REF, "apm.15.9.ldtr-tr-read")
{
    static const struct mcase t =
        {"SLDT", svm_m_sldt, svm_m_sldt_end, 3, SVM_INTERCEPT_LDTR_READ, SVM_EXIT_LDTR_READ};
    struct mrun m;
    mrun_init(&m, &t);
    m.v.vmcb->save.rax = 0x1234;
    if (!intercepted(&m, &t))
        return;
    check_eq("AX after the intercepted SLDT", m.v.vmcb->save.rax & 0xffff, 0x1234);
    m.v.vmcb->save.rax = 0x1234;
    if (!runs_clear(&m, &t))
        return;
    check_eq("SLDT result", m.v.vmcb->save.rax & 0xffff, m.v.vmcb->save.ldtr.selector);
}

PROBE(svm_mi_str, "svm.intercept.tr_read", "SVM",
      "Guest STR AX (AX = 0x1234) with the TR-read intercept (vector 3 bit 9) set: exit 0x69 at "
      "the STR, AX unchanged; resumed after it the guest reaches VMMCALL; with the intercept "
      "clear STR returns the VMCB TR selector",
      REF, "apm.15.9.ldtr-tr-read")
{
    static const struct mcase t =
        {"STR", svm_m_str, svm_m_str_end, 3, SVM_INTERCEPT_TR_READ, SVM_EXIT_TR_READ};
    struct mrun m;
    mrun_init(&m, &t);
    m.v.vmcb->save.rax = 0x1234;
    if (!intercepted(&m, &t))
        return;
    check_eq("AX after the intercepted STR", m.v.vmcb->save.rax & 0xffff, 0x1234);
    m.v.vmcb->save.rax = 0x1234;
    if (!runs_clear(&m, &t))
        return;
    check_eq("STR result", m.v.vmcb->save.rax & 0xffff, m.v.vmcb->save.tr.selector);
}

/* ---- descriptor-table writes ----------------------------------------------------------- */

PROBE(svm_mi_lidt, "svm.intercept.idtr_write", "SVM",
      "Guest LIDT of an image with limit 0 and base 0x1000 with the IDTR-write intercept (vector "
      "3 bit 10) set: exit 0x6A at the LIDT and the VMCB IDTR unchanged (not executed); resumed "
      "after it the guest reaches VMMCALL",
      REF, "apm.15.9.idtr-gdtr-write")
{
    static const struct mcase t =
        {"LIDT", svm_m_lidt, svm_m_lidt_end, 3, SVM_INTERCEPT_IDTR_WRITE, SVM_EXIT_IDTR_WRITE};
    struct mrun m;
    mrun_init(&m, &t);
    *(uint16_t *)m.scratch = 0;
    *(uint64_t *)(m.scratch + 2) = 0x1000;
    uint64_t base = m.v.vmcb->save.idtr.base;
    if (intercepted(&m, &t))
        check_eq("VMCB IDTR base after the intercepted LIDT", m.v.vmcb->save.idtr.base, base);
}

PROBE(svm_mi_lgdt, "svm.intercept.gdtr_write", "SVM",
      "Guest LGDT of an image with limit 0 and base 0x1000 with the GDTR-write intercept (vector "
      "3 bit 11) set: exit 0x6B at the LGDT and the VMCB GDTR unchanged (not executed); resumed "
      "after it the guest reaches VMMCALL",
      REF, "apm.15.9.idtr-gdtr-write")
{
    static const struct mcase t =
        {"LGDT", svm_m_lgdt, svm_m_lgdt_end, 3, SVM_INTERCEPT_GDTR_WRITE, SVM_EXIT_GDTR_WRITE};
    struct mrun m;
    mrun_init(&m, &t);
    *(uint16_t *)m.scratch = 0;
    *(uint64_t *)(m.scratch + 2) = 0x1000;
    uint64_t base = m.v.vmcb->save.gdtr.base;
    if (intercepted(&m, &t))
        check_eq("VMCB GDTR base after the intercepted LGDT", m.v.vmcb->save.gdtr.base, base);
}

PROBE(svm_mi_lldt, "svm.intercept.ldtr_write", "SVM",
      "Guest LLDT of the null selector with the LDTR-write intercept (vector 3 bit 12) set: exit "
      "0x6C at the LLDT; resumed after it the guest reaches VMMCALL; with the intercept clear "
      "LLDT of the null selector runs in the guest",
      REF, "apm.15.9.ldtr-tr-write")
{
    static const struct mcase t =
        {"LLDT", svm_m_lldt, svm_m_lldt_end, 3, SVM_INTERCEPT_LDTR_WRITE, SVM_EXIT_LDTR_WRITE};
    struct mrun m;
    mrun_init(&m, &t);
    m.v.vmcb->save.rax = 0;
    if (!intercepted(&m, &t))
        return;
    m.v.vmcb->save.rax = 0;
    runs_clear(&m, &t);
}

PROBE(svm_mi_ltr, "svm.intercept.tr_write", "SVM",
      "Guest LTR of the kernel's TSS selector (busy, so an executed LTR would #GP) with the "
      "TR-write intercept (vector 3 bit 13) set: exit 0x6D at the LTR, before the descriptor is "
      "checked; resumed after it the guest reaches VMMCALL",
      REF, "apm.15.9.ldtr-tr-write", "apm.15.9.intercept-priority")
{
    static const struct mcase t =
        {"LTR", svm_m_ltr, svm_m_ltr_end, 3, SVM_INTERCEPT_TR_WRITE, SVM_EXIT_TR_WRITE};
    struct mrun m;
    mrun_init(&m, &t);
    m.v.vmcb->save.rax = TSS_SEL;
    intercepted(&m, &t);
}

/* ---- flags, IRET, INTn ------------------------------------------------------------------ */

PROBE(svm_mi_pushf, "svm.intercept.pushf", "SVM",
      "Guest PUSHFQ with the PUSHF intercept (vector 3 bit 16) set: exit 0x70 at the PUSHF with "
      "RSP unchanged; resumed after it the guest reaches VMMCALL; with the intercept clear PUSHF "
      "runs and pushes the guest RFLAGS",
      REF, "apm.15.9.pushf")
{
    static const struct mcase t = {"PUSHF", svm_m_pushf,         svm_m_pushf_end,
                                   3,       SVM_INTERCEPT_PUSHF, SVM_EXIT_PUSHF};
    struct mrun m;
    mrun_init(&m, &t);
    m.v.vmcb->save.rflags = 0x2 | RFLAGS_ZF | RFLAGS_CF;
    uint64_t rsp = m.v.vmcb->save.rsp;
    m.v.vmcb->save.rip = A(t.site);
    set_icpt(&m.v, 3, t.bit, true);
    uint64_t code = svm_run(&m.v);
    if (!svm_check_exit(&m.v, code, t.exit, "PUSHF"))
        return;
    check_eq("PUSHF exit: VMCB RIP", m.v.vmcb->save.rip, A(t.site));
    check_eq("PUSHF exit: VMCB RSP (nothing pushed)", m.v.vmcb->save.rsp, rsp);
    set_icpt(&m.v, 3, t.bit, false);
    if (!runs_clear(&m, &t))
        return;
    const uint64_t *sp = (const uint64_t *)(uintptr_t)m.v.vmcb->save.rsp;
    check_eq("RFLAGS pushed by the guest", sp[0] & 0xfff, 0x2 | RFLAGS_ZF | RFLAGS_CF);
}

PROBE(svm_mi_popf, "svm.intercept.popf", "SVM",
      "Guest POPFQ with the POPF intercept (vector 3 bit 17) set: exit 0x71 at the POPF with RSP "
      "and RFLAGS unchanged; resumed after it the guest reaches VMMCALL",
      REF, "apm.15.9.popf")
{
    static const struct mcase t = {"POPF", svm_m_popf,         svm_m_popf_end,
                                   3,      SVM_INTERCEPT_POPF, SVM_EXIT_POPF};
    struct mrun m;
    mrun_init(&m, &t);
    uint64_t rsp = m.v.vmcb->save.rsp;
    if (!intercepted(&m, &t))
        return;
    svm_vcpu_set_entry(&m.v, (svm_guest_fn)(uintptr_t)t.site, 0);
    set_icpt(&m.v, 3, t.bit, true);
    uint64_t code = svm_run(&m.v);
    if (svm_check_exit(&m.v, code, t.exit, "POPF (again)")) {
        check_eq("POPF exit: VMCB RSP (nothing popped)", m.v.vmcb->save.rsp, rsp);
        check_eq("POPF exit: VMCB RFLAGS", m.v.vmcb->save.rflags, 0x2);
    }
}

PROBE(svm_mi_iret, "svm.intercept.iret", "SVM",
      "Guest IRETQ with the IRET intercept (vector 3 bit 20) set: exit 0x74 at the IRET with RSP "
      "unchanged (nothing popped); resumed after it the guest reaches VMMCALL",
      REF, "apm.15.9.iret")
{
    static const struct mcase t = {"IRET", svm_m_iret,         svm_m_iret_end,
                                   3,      SVM_INTERCEPT_IRET, SVM_EXIT_IRET};
    struct mrun m;
    mrun_init(&m, &t);
    uint64_t rsp = m.v.vmcb->save.rsp;
    set_icpt(&m.v, 3, t.bit, true);
    uint64_t code = svm_run(&m.v);
    if (!svm_check_exit(&m.v, code, t.exit, "IRET"))
        return;
    check_eq("IRET exit: VMCB RIP", m.v.vmcb->save.rip, A(t.site));
    check_eq("IRET exit: VMCB RSP", m.v.vmcb->save.rsp, rsp);
}

PROBE(svm_mi_intn, "svm.intercept.intn", "SVM",
      "Guest INT 0x21 with the INTn intercept (vector 3 bit 21) set: exit 0x75 at the INT, the "
      "guest IDT not used; with CPUID 0x8000000A EDX.DecodeAssists[7]=1 EXITINFO1 = 0x21 (the "
      "vector); with the intercept clear the guest takes vector 0x21 through its IDT with the "
      "frame's RIP after the INT",
      "AMD APM Vol. 2 15.9 (Table 15-7), 15.8.2, Appendix C", "apm.15.9.intn",
      "apm.15.8.2.decode-intn")
{
    static const struct mcase t = {"INT 0x21", svm_m_int,          svm_m_int_end,
                                   3,          SVM_INTERCEPT_INTN, SVM_EXIT_SWINT};
    struct mrun m;
    mrun_init(&m, &t);
    set_icpt(&m.v, 3, t.bit, true);
    uint64_t code = svm_run(&m.v);
    if (!svm_check_exit(&m.v, code, t.exit, "INT 0x21"))
        return;
    check_eq("INTn exit: VMCB RIP", m.v.vmcb->save.rip, A(t.site));
    if (svm_has(SVM_FEAT_DECODE_ASSISTS))
        check_eq("INTn exit: EXITINFO1 (decode assists: the vector)", m.v.vmcb->control.exit_info_1,
                 0x21);
    svm_vcpu_set_entry(&m.v, (svm_guest_fn)(uintptr_t)t.site, 0);
    set_icpt(&m.v, 3, t.bit, false);
    code = svm_run(&m.v);
    if (!svm_check_exit(&m.v, code, SVM_EXIT_VMMCALL, "INT 0x21 not intercepted"))
        return;
    if (check(svm_guest_exc_vector(&m.v) == 0x21,
              "INT 0x21 not intercepted: %s, want the guest "
              "IDT's vector 0x21",
              svm_exit_str(&m.v)))
        check_eq("frame RIP (after the INT)", *(uint64_t *)(uintptr_t)m.v.vmcb->save.rsp, A(t.end));
}

/* ---- ICEBP ----------------------------------------------------------------------------------- */

PROBE(svm_mi_icebp, "svm.intercept.icebp", "SVM",
      "Guest ICEBP (opcode F1) with the ICEBP intercept (vector 4 bit 8) set: exit 0x88 at the "
      "ICEBP, before the #DB it raises; resumed after it the guest reaches VMMCALL",
      REF, "apm.15.9.icebp")
{
    static const struct mcase t = {"ICEBP", svm_m_icebp,         svm_m_icebp_end,
                                   4,       SVM_INTERCEPT_ICEBP, SVM_EXIT_ICEBP};
    struct mrun m;
    mrun_init(&m, &t);
    intercepted(&m, &t);
}

/* ---- optional instructions ---------------------------------------------------------------- */

PROBE(svm_mi_rdpru, "svm.intercept.rdpru", "SVM",
      "With CPUID 0x80000008 EBX.RDPRU[4]=1: guest RDPRU (ECX=0) with the RDPRU intercept "
      "(vector 4 bit 14) set: exit 0x8E at the RDPRU; resumed after it the guest reaches VMMCALL",
      REF, "apm.15.9.rdpru")
{
    svm_require();
    if (cpuid(0x80000000, 0).a < 0x80000008 || !(cpuid(0x80000008, 0).b & BIT(4)))
        skip("CPUID 0x80000008 EBX.RDPRU[4]=0");
    static const struct mcase t = {"RDPRU", svm_m_rdpru,         svm_m_rdpru_end,
                                   4,       SVM_INTERCEPT_RDPRU, SVM_EXIT_RDPRU};
    struct mrun m;
    mrun_init(&m, &t);
    m.v.regs.rcx = 0;
    intercepted(&m, &t);
}

PROBE(svm_mi_invpcid, "svm.intercept.invpcid", "SVM",
      "With CPUID 7 EBX.INVPCID[10]=1: guest INVPCID type 2 (all contexts incl. globals) with the "
      "INVPCID intercept (vector 5 bit 2) set: exit 0xA2 at the INVPCID; resumed after it the "
      "guest reaches VMMCALL; with the intercept clear INVPCID runs in the guest",
      REF, "apm.15.9.invpcid")
{
    svm_require();
    if (cpuid(0, 0).a < 7 || !(cpuid(7, 0).b & BIT(10)))
        skip("CPUID 7 EBX.INVPCID[10]=0");
    static const struct mcase t = {"INVPCID", svm_m_invpcid,         svm_m_invpcid_end,
                                   5,         SVM_INTERCEPT_INVPCID, SVM_EXIT_INVPCID};
    struct mrun m;
    mrun_init(&m, &t);
    m.v.vmcb->save.rax = 2;
    if (!intercepted(&m, &t))
        return;
    m.v.vmcb->save.rax = 2;
    runs_clear(&m, &t);
}

PROBE(svm_mi_mwait_cond, "svm.intercept.mwait_armed", "SVM",
      "With CPUID 1 ECX.MONITOR[3]=1: the guest arms a monitor (MONITOR not intercepted), then "
      "MWAIT with only the conditional MWAIT intercept (vector 4 bit 12, 'if the monitor "
      "hardware is armed') set: exit 0x8C at the MWAIT; resumed after it the guest reaches "
      "VMMCALL",
      REF, "apm.15.9.mwait-armed")
{
    svm_require();
    if (!(cpuid(1, 0).c & BIT(3)))
        skip("CPUID 1 ECX.MONITOR[3]=0");
    struct svm_vcpu v;
    void *page = alloc_page();
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_m_monmwait, 0);
    v.vmcb->control.intercept_misc2 |= SVM_INTERCEPT_MWAIT_ARMED;
    v.vmcb->save.rax = A(page);
    v.regs.rcx = 0;
    v.regs.rdx = 0;
    v.watchdog = "the conditional MWAIT exit (0x8C)";
    uint64_t code = svm_run(&v);
    v.watchdog = NULL;
    if (!svm_check_exit(&v, code, SVM_EXIT_MWAIT_COND, "MWAIT with the monitor armed"))
        return;
    check_eq("MWAIT exit: VMCB RIP", v.vmcb->save.rip, A(svm_m_mwait));
    v.vmcb->save.rip = A(svm_m_mwait_end);
    code = svm_run(&v);
    svm_check_exit(&v, code, SVM_EXIT_VMMCALL, "VMMCALL after resuming past the MWAIT");
}

/* ---- MSR intercepts before the #GP ---------------------------------------------------------- */

/* RCX = MSR, EDX:EAX = value: RDMSR; VMMCALL; WRMSR; VMMCALL */
GUEST(svm_m_rdmsr, "rdmsr", "vmmcall", "svm_m_wrmsr:", "wrmsr", "vmmcall", "ud2");
extern char svm_m_wrmsr[];

static bool msr_exit(struct svm_vcpu *v, const void *site, uint32_t msr, uint64_t info1,
                     const char *what)
{
    v->vmcb->save.rip = A(site);
    v->regs.rcx = msr;
    uint64_t code = svm_run(v);
    if (!svm_check_exit(v, code, SVM_EXIT_MSR, what))
        return false;
    check(v->vmcb->save.rip == A(site), "%s: VMCB RIP %#llx, want %#llx", what,
          (unsigned long long)v->vmcb->save.rip, (unsigned long long)A(site));
    return check(v->vmcb->control.exit_info_1 == info1, "%s: EXITINFO1 %#llx, want %#llx", what,
                 (unsigned long long)v->vmcb->control.exit_info_1, (unsigned long long)info1);
}

PROBE(svm_mi_msr_priority, "svm.intercept.msr_before_gp", "SVM",
      "MSR_PROT set: guest WRMSR EFER with bit 63 set (a value that raises #GP) with the MSRPM "
      "write bit of EFER set exits 0x7C with EXITINFO1 = 1 and the guest EFER unchanged; RDMSR of "
      "MSR 0x1FFF (no such MSR, inside the map's first range) with its read bit set exits 0x7C "
      "with EXITINFO1 = 0; RDMSR of 0xC0002000 (outside the three ranges the map covers) exits "
      "0x7C; each at the instruction, before the #GP it would raise (#GP is intercepted: a 0x4D "
      "exit would show it)",
      "AMD APM Vol. 2 15.11", "apm.15.11.msr-priority", "apm.15.11.msrpm-outside")
{
    svm_require();
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_m_rdmsr, 0);
    v.vmcb->control.intercept_misc1 |= SVM_INTERCEPT_MSR_PROT;
    if (!svm_msrpm_set(&v, MSR_EFER, false, true) || !svm_msrpm_set(&v, 0x1fff, true, false))
        error("svm_msrpm_set failed");
    uint64_t efer = v.vmcb->save.efer;
    v.vmcb->save.rax = efer & 0xffffffff;
    v.regs.rdx = (efer >> 32) | 0x80000000u;
    if (msr_exit(&v, svm_m_wrmsr, MSR_EFER, 1, "WRMSR EFER with bit 63 set"))
        check_eq("guest EFER after the intercepted WRMSR", v.vmcb->save.efer, efer);
    msr_exit(&v, svm_m_rdmsr, 0x1fff, 0, "RDMSR 0x1FFF (no such MSR, read bit set)");
    msr_exit(&v, svm_m_rdmsr, 0xc0002000, 0, "RDMSR 0xC0002000 (outside the map)");
}
