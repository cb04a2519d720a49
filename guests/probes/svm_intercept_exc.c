/* SPDX-License-Identifier: MIT */
/*
 * SVM exception intercepts beyond #UD/#BP/#PF (AMD APM Vol. 2 15.12):
 * #DE (fault: RIP at the DIV), #DB (single-step trap: RIP after the
 * instruction), #GP with its error code in EXITINFO1.
 */
#include "nvct.h"
#include "svm.h"

GUEST(svm_e_div, "divl %ecx", "svm_e_div_end:", "vmmcall", "ud2");
GUEST(svm_e_nop, "nop", "svm_e_nop_end:", "vmmcall", "ud2");
/* BX = a selector beyond the GDT limit */
GUEST(svm_e_gp, "mov %bx, %ds", "svm_e_gp_end:", "vmmcall", "ud2");
extern char svm_e_div_end[], svm_e_nop_end[], svm_e_gp_end[];

PROBE(svm_icpt_exception_de, "svm.intercept.exception_de", "SVM",
      "Guest DIV by zero (EDX:EAX=0, ECX=0) with #DE intercepted: exit 0x40 with RIP at the DIV "
      "(fault), EXITINTINFO.V=0",
      "AMD APM Vol. 2 15.12, 15.12.1", "apm.15.12.exception-intercept")
{
    svm_require();
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_e_div, 0);
    v.vmcb->save.rax = 0;
    v.regs.rdx = 0;
    v.regs.rcx = 0;
    uint64_t code = svm_run(&v);
    if (!svm_check_exit(&v, code, SVM_EXIT_EXCP(DE_VECTOR), "DIV by zero"))
        return;
    check_eq("#DE exit: VMCB RIP (the DIV)", v.vmcb->save.rip, A(svm_e_div));
    check_eq("#DE exit: EXITINTINFO.V", v.vmcb->control.exit_int_info & SVM_EVTINJ_VALID, 0);
}

PROBE(svm_icpt_exception_db, "svm.intercept.exception_db", "SVM",
      "Guest entered with RFLAGS.TF=1, first instruction NOP, #DB intercepted: no trap between "
      "VMRUN and the first instruction; the single-step trap after the NOP exits 0x41 with RIP = "
      "the instruction after the NOP and VMCB DR6.BS (bit 14) = 1 (DR6 is written before the "
      "intercept)",
      "AMD APM Vol. 2 15.5.1 (TF), 15.12.2", "apm.15.12.exception-intercept", "apm.15.5.1.guest-tf",
      "apm.15.12.db-state")
{
    svm_require();
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_e_nop, 0);
    v.vmcb->save.rflags = 0x2 | BIT(8); /* TF */
    uint64_t code = svm_run(&v);
    if (!svm_check_exit(&v, code, SVM_EXIT_EXCP(DB_VECTOR), "single step over NOP"))
        return;
    check_eq("#DB exit: VMCB RIP (after the NOP)", v.vmcb->save.rip, A(svm_e_nop_end));
    check_eq("#DB exit: VMCB DR6.BS", v.vmcb->save.dr6 & BIT(14), BIT(14));
    note("#DB exit: VMCB DR6 = %#llx, RFLAGS = %#llx", (unsigned long long)v.vmcb->save.dr6,
         (unsigned long long)v.vmcb->save.rflags);
}

PROBE(svm_icpt_exception_gp, "svm.intercept.exception_gp", "SVM",
      "Guest MOV to DS of selector 0xFFF8 (beyond the GDT limit) with #GP intercepted: exit 0x4D "
      "with RIP at the MOV, EXITINFO1 = the #GP error code 0xFFF8, DS unchanged",
      "AMD APM Vol. 2 15.12, 15.12.14", "apm.15.12.exception-intercept",
      "apm.15.12.errcode-exitinfo1")
{
    svm_require();
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_e_gp, 0);
    if (v.vmcb->save.gdtr.limit >= 0xfff8)
        error("GDT limit %#x covers selector 0xfff8", v.vmcb->save.gdtr.limit);
    v.regs.rbx = 0xfff8;
    uint16_t ds = v.vmcb->save.ds.selector;
    uint64_t code = svm_run(&v);
    if (!svm_check_exit(&v, code, SVM_EXIT_EXCP(GP_VECTOR), "MOV DS, 0xfff8"))
        return;
    check_eq("#GP exit: VMCB RIP (the MOV)", v.vmcb->save.rip, A(svm_e_gp));
    check_eq("#GP exit: EXITINFO1 (error code)", v.vmcb->control.exit_info_1, 0xfff8);
    check_eq("#GP exit: VMCB DS selector", v.vmcb->save.ds.selector, ds);
}
