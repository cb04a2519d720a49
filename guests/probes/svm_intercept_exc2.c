/* SPDX-License-Identifier: MIT */
/*
 * More SVM exception intercepts (AMD APM Vol. 2 15.12): #NM, #NP, #SS,
 * #MF, #XF and #DF, each raised by the guest itself, intercepted with exit
 * 0x40 + vector, RIP at the faulting instruction and EXITINFO1 = the error
 * code where the exception has one (15.12: "the error code ... is saved in
 * EXITINFO1"). svm_intercept.c and svm_intercept_exc.c cover #DE, #DB,
 * #BP, #UD, #GP and #PF.
 */
#include "nvct.h"
#include "svm.h"

GUEST(svm_x2_fnop, "fnop", "svm_x2_fnop_end:", "vmmcall", "ud2");
/* BX = a selector */
GUEST(svm_x2_movds, "mov %bx, %ds", "svm_x2_movds_end:", "vmmcall", "ud2");
/* BX = a selector */
GUEST(svm_x2_movss, "mov %bx, %ss", "vmmcall", "ud2");
/* x87 divide by zero, zero-divide unmasked (control word in RBX[15:0]) */
GUEST(svm_x2_fdiv, "fninit", "push %rbx", "fldcw (%rsp)", "pop %rbx", "fldz", "fld1",
      "fdivp %st, %st(1)", "svm_x2_fwait:", "fwait", "vmmcall", "ud2");
/* SSE divide by zero, zero-divide unmasked (MXCSR in EBX) */
GUEST(svm_x2_divss, "push %rbx", "ldmxcsr (%rsp)", "pop %rbx", "xorps %xmm0, %xmm0", "mov $1, %eax",
      "cvtsi2ss %eax, %xmm1", "svm_x2_divss_at:", "divss %xmm0, %xmm1", "vmmcall", "ud2");
extern char svm_x2_fwait[], svm_x2_divss_at[];

/* Host helpers: x87 and SSE state the guest leaves behind (shared with the
 * host: VMRUN does not switch it). */
__asm__(".pushsection .text\n"
        "svm_x2_fpu_reset:\n    fnclex\n    fninit\n    ret\n"
        "svm_x2_mxcsr_reset:\n    push $0x1f80\n    ldmxcsr (%rsp)\n    pop %rax\n    ret\n"
        ".popsection");
void svm_x2_fpu_reset(void), svm_x2_mxcsr_reset(void);

/* The host may use x87 instructions (CR0.EM=TS=0; the runner restores CR0). */
static void host_fpu_on(void) { write_cr0(read_cr0() & ~(CR0_EM | CR0_TS)); }

static bool expect_excp(struct svm_vcpu *v, unsigned vec, const void *site, const char *what)
{
    uint64_t code = svm_run(v);
    if (!svm_check_exit(v, code, SVM_EXIT_EXCP(vec), what))
        return false;
    return check(v->vmcb->save.rip == A(site), "%s: VMCB RIP %#llx, want %#llx (the instruction)",
                 what, (unsigned long long)v->vmcb->save.rip, (unsigned long long)A(site));
}

PROBE(svm_x2_nm, "svm.intercept.exception_nm", "SVM",
      "Guest with CR0.TS=1 executes FNOP with #NM intercepted: exit 0x47 at the FNOP, "
      "EXITINTINFO.V=0; with TS=0 the FNOP runs to VMMCALL",
      "AMD APM Vol. 2 15.12, 15.12.8", "apm.15.12.exception-intercept")
{
    svm_require();
    host_fpu_on();
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_x2_fnop, 0);
    v.vmcb->save.cr0 = (v.vmcb->save.cr0 | CR0_TS) & ~CR0_EM;
    if (!expect_excp(&v, NM_VECTOR, svm_x2_fnop, "FNOP with CR0.TS=1"))
        return;
    check_eq("#NM exit: EXITINTINFO.V", v.vmcb->control.exit_int_info & SVM_EVTINJ_VALID, 0);
    v.vmcb->save.cr0 &= ~CR0_TS;
    uint64_t code = svm_run(&v);
    svm_check_exit(&v, code, SVM_EXIT_VMMCALL, "FNOP with CR0.TS=0");
    svm_x2_fpu_reset();
}

/* A copy of the GDT for the guest, with a not-present data segment at the
 * first slot past the kernel's descriptors; returns its selector. */
static uint16_t gdt_with_np_segment(struct svm_vcpu *v)
{
    uint64_t *gdt = alloc_page();
    uint16_t limit = v->vmcb->save.gdtr.limit;
    if (limit > 4096 - 17)
        error("GDT limit %#x", limit);
    memcpy(gdt, (const void *)(uintptr_t)v->vmcb->save.gdtr.base, limit + 1u);
    unsigned slot = (limit + 1u + 7) / 8;
    /* data, read/write, accessed, DPL 0, P=0, base 0, limit 0xfffff, G */
    gdt[slot] = 0x00cf13000000ffffull;
    v->vmcb->save.gdtr.base = A(gdt);
    v->vmcb->save.gdtr.limit = (uint16_t)(slot * 8 + 7);
    return (uint16_t)(slot * 8);
}

PROBE(svm_x2_np, "svm.intercept.exception_np", "SVM",
      "Guest MOV to DS of a data-segment selector whose descriptor has P=0 (in a GDT of the "
      "guest's own) with #NP intercepted: exit 0x4B at the MOV, EXITINFO1 = the #NP error code "
      "(the selector), DS unchanged",
      "AMD APM Vol. 2 15.12, 15.12.12", "apm.15.12.exception-intercept")
{
    svm_require();
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_x2_movds, 0);
    uint16_t sel = gdt_with_np_segment(&v);
    uint16_t ds = v.vmcb->save.ds.selector;
    v.regs.rbx = sel;
    if (!expect_excp(&v, NP_VECTOR, svm_x2_movds, "MOV DS of a not-present segment"))
        return;
    check_eq("#NP exit: EXITINFO1 (error code = the selector)", v.vmcb->control.exit_info_1, sel);
    check_eq("#NP exit: VMCB DS selector", v.vmcb->save.ds.selector, ds);
}

PROBE(svm_x2_ss, "svm.intercept.exception_ss", "SVM",
      "Guest MOV to SS of a writable data-segment selector whose descriptor has P=0 (in a GDT of "
      "the guest's own) with #SS intercepted: exit 0x4C at the MOV (a not-present stack segment "
      "raises #SS, not #NP), EXITINFO1 = the #SS error code (the selector), SS unchanged",
      "AMD APM Vol. 2 15.12, 15.12.13", "apm.15.12.exception-intercept")
{
    svm_require();
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_x2_movss, 0);
    uint16_t sel = gdt_with_np_segment(&v);
    uint16_t ss = v.vmcb->save.ss.selector;
    v.regs.rbx = sel;
    if (!expect_excp(&v, SS_VECTOR, svm_x2_movss, "MOV SS of a not-present segment"))
        return;
    check_eq("#SS exit: EXITINFO1 (error code = the selector)", v.vmcb->control.exit_info_1, sel);
    check_eq("#SS exit: VMCB SS selector", v.vmcb->save.ss.selector, ss);
}

PROBE(svm_x2_mf, "svm.intercept.exception_mf", "SVM",
      "Guest with CR0.NE=1 divides by zero on the x87 FPU with the zero-divide exception unmasked "
      "(FCW 0x37B), then FWAIT, #MF intercepted: exit 0x50 at the FWAIT (where the pending x87 "
      "exception is reported); the host clears the x87 state after",
      "AMD APM Vol. 2 15.12, 15.12.11", "apm.15.12.exception-intercept")
{
    svm_require();
    host_fpu_on();
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_x2_fdiv, 0);
    v.vmcb->save.cr0 = (v.vmcb->save.cr0 | CR0_NE | CR0_MP) & ~(CR0_TS | CR0_EM);
    v.regs.rbx = 0x37b;
    bool ok = expect_excp(&v, MF_VECTOR, svm_x2_fwait, "FWAIT after an unmasked x87 #Z");
    svm_x2_fpu_reset();
    if (ok)
        check_eq("#MF exit: EXITINTINFO.V", v.vmcb->control.exit_int_info & SVM_EVTINJ_VALID, 0);
}

PROBE(svm_x2_xf, "svm.intercept.exception_xf", "SVM",
      "With CPUID 1 EDX.SSE[25]=1: guest with CR4.OSFXSR=OSXMMEXCPT=1 executes DIVSS by zero with "
      "MXCSR.ZM=0 (MXCSR 0x1D80), #XF intercepted: exit 0x53 at the DIVSS; the host restores "
      "MXCSR after",
      "AMD APM Vol. 2 15.12, 15.12.17", "apm.15.12.exception-intercept")
{
    svm_require();
    if (!(cpuid(1, 0).d & BIT(25)))
        skip("CPUID 1 EDX.SSE[25]=0");
    write_cr4(read_cr4() | CR4_OSFXSR); /* the host's MXCSR restore; the runner restores CR4 */
    write_cr0(read_cr0() & ~(CR0_EM | CR0_TS));
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_x2_divss, 0);
    v.vmcb->save.cr4 |= CR4_OSFXSR | CR4_OSXMMEXCPT;
    v.vmcb->save.cr0 &= ~(CR0_EM | CR0_TS);
    v.regs.rbx = 0x1d80;
    bool ok = expect_excp(&v, XM_VECTOR, svm_x2_divss_at, "DIVSS by zero, ZM=0");
    svm_x2_mxcsr_reset();
    if (ok)
        check_eq("#XF exit: EXITINTINFO.V", v.vmcb->control.exit_int_info & SVM_EVTINJ_VALID, 0);
}

PROBE(svm_x2_df, "svm.intercept.exception_df", "SVM",
      "Guest MOV DS of a selector beyond the GDT limit (#GP) with the guest IDT limit below gate "
      "13, #GP not intercepted and #DF intercepted: the #GP cannot be delivered (a second #GP), "
      "which gives #DF: exit 0x48 at the MOV with EXITINFO1 = 0 (the #DF error code)",
      "AMD APM Vol. 2 15.12, 15.12.9; 8.2.9", "apm.15.12.double-fault")
{
    svm_require();
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_x2_movds, 0);
    if (v.vmcb->save.gdtr.limit >= 0xfff8)
        error("GDT limit %#x covers selector 0xfff8", v.vmcb->save.gdtr.limit);
    v.regs.rbx = 0xfff8;
    v.vmcb->control.intercept_exceptions &= ~(uint32_t)BIT(GP_VECTOR);
    v.vmcb->save.idtr.limit = 13 * 16 - 1;
    if (!expect_excp(&v, DF_VECTOR, svm_x2_movds, "#GP during delivery of #GP"))
        return;
    check_eq("#DF exit: EXITINFO1 (error code)", v.vmcb->control.exit_info_1, 0);
    note("#DF exit: EXITINTINFO %#llx", (unsigned long long)v.vmcb->control.exit_int_info);
}

PROBE(svm_x2_not_intercepted, "svm.intercept.exception_not_intercepted", "SVM",
      "Guest UD2 with the #UD intercept clear (the other exceptions intercepted): no #VMEXIT for "
      "the #UD; the guest takes vector 6 through its own IDT with the frame's RIP = the UD2",
      "AMD APM Vol. 2 15.12", "apm.15.12.not-intercepted")
{
    svm_require();
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)guest_ud2, 0);
    v.vmcb->control.intercept_exceptions &= ~(uint32_t)BIT(UD_VECTOR);
    uint64_t code = svm_run(&v);
    if (!svm_check_exit(&v, code, SVM_EXIT_VMMCALL, "UD2 with #UD not intercepted"))
        return;
    if (!check(svm_guest_exc_vector(&v) == UD_VECTOR,
               "UD2 with #UD not intercepted: %s, want the guest IDT's vector 6", svm_exit_str(&v)))
        return;
    check_eq("frame RIP (the UD2)", *(const uint64_t *)(uintptr_t)v.vmcb->save.rsp, A(guest_ud2));
}
