/* SPDX-License-Identifier: MIT */
/*
 * Still more VM exits and their information: the instruction information
 * of descriptor-table exits (LGDT/LIDT/SGDT/SIDT, LLDT/LTR/SLDT/STR) and of
 * RDRAND/RDSEED exits, XRSTORS exiting by the XSS-exiting bitmap, and the
 * unconditional exits of a guest running at CPL 3.
 */
#include "vmx.h"

/* defined bits of the instruction information (SDM Vol. 3C 28.2.5): a memory operand with the
   instruction identity (bit 11, the operand size of LGDT etc., is undefined in 64-bit mode) */
#define II_MASK_DT   0x3fff8783u
/* LLDT/LTR/SLDT/STR with a register operand: Reg1, Mem/Reg, identity */
#define II_MASK_DTR  0x30000478u
/* RDRAND/RDSEED: destination register and operand size */
#define II_MASK_RAND 0x00001878u

/* ---- descriptor-table exits ---------------------------------------------------------- */

extern const char vmx_x2_dt0[], vmx_x2_dt1[], vmx_x2_dt2[], vmx_x2_dt3[], vmx_x2_dt4[],
    vmx_x2_dt5[], vmx_x2_dt6[], vmx_x2_dt7[], vmx_x2_dt8[];
GUEST(vmx_x2_dt_guest, "vmx_x2_dt0:\n"
                       "    sgdt 0x10(%rdi)\n"
                       "vmx_x2_dt1:\n"
                       "    sidt 0x20(%rdi,%rsi,2)\n"
                       "vmx_x2_dt2:\n"
                       "    lgdt 0x30(%rdi)\n"
                       "vmx_x2_dt3:\n"
                       "    lidt 0x40(%rdi)\n"
                       "vmx_x2_dt4:\n"
                       "    sldt 0x50(%rdi)\n"
                       "vmx_x2_dt5:\n"
                       "    str %r11d\n"
                       "vmx_x2_dt6:\n"
                       "    lldt %cx\n"
                       "vmx_x2_dt7:\n"
                       "    ltr 0x58(%rdi,%rsi,8)\n"
                       "vmx_x2_dt8:\n"
                       "    vmcall\n"
                       "    ud2");

PROBE(vmx_exit_desc_table_info, "vmx.intercept.desc_table_info", "VMX",
      "With descriptor-table exiting, SGDT 0x10(RDI), SIDT 0x20(RDI,RSI,2), LGDT 0x30(RDI) and "
      "LIDT 0x40(RDI) exit with reason 46 and SLDT 0x50(RDI), STR R11D, LLDT CX and LTR "
      "0x58(RDI,RSI,8) with reason 47, each at its RIP with its length; the instruction "
      "information gives the instruction identity (SGDT 0, SIDT 1, LGDT 2, LIDT 3; SLDT 0, STR 1, "
      "LLDT 2, LTR 3), for memory operands scaling, address size 64, segment DS, index and base "
      "registers (qualification = the displacement), for register operands Reg1 and Mem/Reg = 1",
      "Intel SDM Vol. 3C 26.1.3, 28.2.1, 28.2.5", "sdm.28.2.4.insn-info-descriptor",
      "sdm.28.2.1.qual-insn-displacement", "sdm.C.reason-46-gdtr-idtr", "sdm.C.reason-47-ldtr-tr")
{
    vmx_require_ctl(VMX_CTL_PROC2, PROC2_DESC_TABLE_EXITING, "descriptor-table exiting");
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_x2_dt_guest);
    vmcs_set_bits(VMCS_PROC_CTLS, PROC_SECONDARY_CTLS);
    vmcs_set_bits(VMCS_PROC_CTLS2, PROC2_DESC_TABLE_EXITING);
    uint8_t *page = alloc_page();
    /* operands an executed load would take harmlessly: the host's own GDTR, IDTR, TR */
    __asm__ volatile("sgdt %0" : "=m"(*(uint8_t(*)[10])(page + 0x30)));
    __asm__ volatile("sidt %0" : "=m"(*(uint8_t(*)[10])(page + 0x40)));
    __asm__ volatile("str %0" : "=m"(*(uint16_t *)(page + 0x58)));
    v->gpr[VMX_GPR_RDI] = (uintptr_t)page;
    v->gpr[VMX_GPR_RSI] = 0;
    v->gpr[VMX_GPR_RCX] = 0;
    const uint32_t m = II_ADDR64 | II_SEG(II_SEG_DS) | II_NO_INDEX | II_BASE(7);
    const uint32_t mx = II_ADDR64 | II_SEG(II_SEG_DS) | II_BASE(7) | II_INDEX(6);
    const struct vmx_insn_case cs[] = {
        {vmx_x2_dt0, vmx_x2_dt1, "SGDT 0x10(%rdi)", EXIT_GDTR_IDTR, m | II_IDENT(0), II_MASK_DT,
         true, 0x10},
        {vmx_x2_dt1, vmx_x2_dt2, "SIDT 0x20(%rdi,%rsi,2)", EXIT_GDTR_IDTR,
         mx | II_SCALE(1) | II_IDENT(1), II_MASK_DT, true, 0x20},
        {vmx_x2_dt2, vmx_x2_dt3, "LGDT 0x30(%rdi)", EXIT_GDTR_IDTR, m | II_IDENT(2), II_MASK_DT,
         true, 0x30},
        {vmx_x2_dt3, vmx_x2_dt4, "LIDT 0x40(%rdi)", EXIT_GDTR_IDTR, m | II_IDENT(3), II_MASK_DT,
         true, 0x40},
        {vmx_x2_dt4, vmx_x2_dt5, "SLDT 0x50(%rdi)", EXIT_LDTR_TR, m | II_IDENT(0), II_MASK_DT, true,
         0x50},
        {vmx_x2_dt5, vmx_x2_dt6, "STR %r11d", EXIT_LDTR_TR, II_REG1(11) | II_REGFORM | II_IDENT(1),
         II_MASK_DTR, false, 0},
        {vmx_x2_dt6, vmx_x2_dt7, "LLDT %cx", EXIT_LDTR_TR, II_REG1(1) | II_REGFORM | II_IDENT(2),
         II_MASK_DTR, false, 0},
        {vmx_x2_dt7, vmx_x2_dt8, "LTR 0x58(%rdi,%rsi,8)", EXIT_LDTR_TR,
         mx | II_SCALE(3) | II_IDENT(3), II_MASK_DT, true, 0x58},
    };
    vmx_run_insn_cases(v, cs, ARRAY_SIZE(cs));
    vmcs_write(VMCS_GUEST_RIP, (uintptr_t)vmx_x2_dt8);
    vmx_run_expect(v, EXIT_VMCALL, "guest VMCALL after the descriptor-table instructions");
}

/* ---- RDRAND / RDSEED ------------------------------------------------------------------- */

extern const char vmx_x2_rd0[], vmx_x2_rd1[], vmx_x2_rd2[], vmx_x2_rd3[], vmx_x2_rd4[],
    vmx_x2_rd5[], vmx_x2_rd6[];
GUEST(vmx_x2_rd_guest, "vmx_x2_rd0:\n"
                       "    rdrand %ax\n"
                       "vmx_x2_rd1:\n"
                       "    rdrand %r9d\n"
                       "vmx_x2_rd2:\n"
                       "    rdrand %r14\n"
                       "vmx_x2_rd3:\n"
                       "    rdseed %dx\n"
                       "vmx_x2_rd4:\n"
                       "    rdseed %ebx\n"
                       "vmx_x2_rd5:\n"
                       "    rdseed %r12\n"
                       "vmx_x2_rd6:\n"
                       "    vmcall\n"
                       "    ud2");

static void rand_info(const struct vmx_insn_case *cs, uint32_t ctl, const char *what)
{
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_x2_rd_guest);
    vmcs_set_bits(VMCS_PROC_CTLS, PROC_SECONDARY_CTLS);
    vmcs_set_bits(VMCS_PROC_CTLS2, ctl);
    vmx_run_insn_cases(v, cs, 3);
    vmcs_write(VMCS_GUEST_RIP, (uintptr_t)vmx_x2_rd6);
    char msg[64];
    snprintf(msg, sizeof(msg), "guest VMCALL after the %s exits", what);
    vmx_run_expect(v, EXIT_VMCALL, msg);
}

PROBE(vmx_exit_rdrand_info, "vmx.intercept.rdrand_info", "VMX",
      "With RDRAND exiting, RDRAND AX, RDRAND R9D and RDRAND R14 exit with reason 57 at their "
      "RIP with their length; the instruction information gives the destination register (0, 9, "
      "14) in bits 6:3 and the operand size (0 16-bit, 1 32-bit, 2 64-bit) in bits 12:11",
      "Intel SDM Vol. 3C 26.1.3, 28.2.5", "sdm.28.2.4.insn-info-rdrand", "sdm.C.reason-57-rdrand")
{
    (void)vmx_caps();
    if (!(cpuid(1, 0).c & BIT(30)))
        skip("CPUID.1:ECX.RDRAND[bit 30]=0");
    vmx_require_ctl(VMX_CTL_PROC2, PROC2_RDRAND_EXITING, "RDRAND exiting");
    const struct vmx_insn_case cs[] = {
        {vmx_x2_rd0, vmx_x2_rd1, "RDRAND %ax", EXIT_RDRAND, II_REG1(0) | II_OSZ(0), II_MASK_RAND,
         false, 0},
        {vmx_x2_rd1, vmx_x2_rd2, "RDRAND %r9d", EXIT_RDRAND, II_REG1(9) | II_OSZ(1), II_MASK_RAND,
         false, 0},
        {vmx_x2_rd2, vmx_x2_rd3, "RDRAND %r14", EXIT_RDRAND, II_REG1(14) | II_OSZ(2), II_MASK_RAND,
         false, 0},
    };
    rand_info(cs, PROC2_RDRAND_EXITING, "RDRAND");
}

PROBE(vmx_exit_rdseed_info, "vmx.intercept.rdseed_info", "VMX",
      "With RDSEED exiting, RDSEED DX, RDSEED EBX and RDSEED R12 exit with reason 61 at their "
      "RIP with their length; the instruction information gives the destination register (2, 3, "
      "12) in bits 6:3 and the operand size (0 16-bit, 1 32-bit, 2 64-bit) in bits 12:11",
      "Intel SDM Vol. 3C 26.1.3, 28.2.5", "sdm.28.2.4.insn-info-rdrand", "sdm.C.reason-61-rdseed")
{
    (void)vmx_caps();
    if (!(cpuid(7, 0).b & BIT(18)))
        skip("CPUID.(EAX=7,ECX=0):EBX.RDSEED[bit 18]=0");
    vmx_require_ctl(VMX_CTL_PROC2, PROC2_RDSEED_EXITING, "RDSEED exiting");
    const struct vmx_insn_case cs[] = {
        {vmx_x2_rd3, vmx_x2_rd4, "RDSEED %dx", EXIT_RDSEED, II_REG1(2) | II_OSZ(0), II_MASK_RAND,
         false, 0},
        {vmx_x2_rd4, vmx_x2_rd5, "RDSEED %ebx", EXIT_RDSEED, II_REG1(3) | II_OSZ(1), II_MASK_RAND,
         false, 0},
        {vmx_x2_rd5, vmx_x2_rd6, "RDSEED %r12", EXIT_RDSEED, II_REG1(12) | II_OSZ(2), II_MASK_RAND,
         false, 0},
    };
    rand_info(cs, PROC2_RDSEED_EXITING, "RDSEED");
}

/* ---- XRSTORS ----------------------------------------------------------------------------- */

extern const char vmx_x2_xrstors[], vmx_x2_xrstors_end[];
GUEST(vmx_x2_xrstors_guest, "    mov %esi, %eax\n"
                            "    xor %edx, %edx\n"
                            "    xsaves64 (%rdi)\n"
                            "    mov %ebx, %eax\n"
                            "vmx_x2_xrstors:\n"
                            "    xrstors64 (%rdi)\n"
                            "vmx_x2_xrstors_end:\n"
                            "    vmcall\n"
                            "    ud2");

PROBE(vmx_exit_xrstors, "vmx.intercept.xrstors", "VMX",
      "With enable XSAVES/XRSTORS, a supervisor state component n (CPUID.(EAX=0DH,ECX=1):ECX) "
      "in IA32_XSS and an XSS-exiting bitmap of 0, XSAVES and then XRSTORS of x87 | bit n (the "
      "compacted area XSAVES wrote) run without exit to the guest's VMCALL; with XSS-exiting "
      "bitmap bit n set, XRSTORS with EDX:EAX = x87 | bit n exits with reason 64 at the XRSTORS, "
      "length 4, qualification 0 (no displacement), instruction information base RDI, no index, "
      "address size 64, segment DS; XRSTORS with EDX:EAX = x87 only does not exit",
      "Intel SDM Vol. 3C 25.6.20, 26.1.3, 28.2.1, 28.2.5", "sdm.C.reason-64-xrstors",
      "sdm.26.1.3.xsaves-xrstors", "sdm.28.2.4.insn-info-vmx")
{
    (void)vmx_caps();
    if (!(cpuid(1, 0).c & BIT(26)))
        skip("CPUID.1:ECX.XSAVE[26]=0");
    if (!(cpuid(0xd, 1).a & BIT(3)))
        skip("CPUID.(EAX=0DH,ECX=1):EAX.XSAVES[3]=0");
    vmx_require_ctl(VMX_CTL_PROC2, PROC2_XSAVES, "enable XSAVES/XRSTORS");
    uint32_t sup = cpuid(0xd, 1).c & 0x7fffffffu;
    if (!sup)
        skip("CPUID.(EAX=0DH,ECX=1):ECX[30:0]=0 (no supervisor state component)");
    const uint32_t bit = sup & -sup;
    write_cr4(read_cr4() | CR4_OSXSAVE); /* the runner restores CR4; XCR0 stays x87 */
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_x2_xrstors_guest);
    vmcs_set_bits(VMCS_PROC_CTLS, PROC_SECONDARY_CTLS);
    vmcs_set_bits(VMCS_PROC_CTLS2, PROC2_XSAVES);
    vmcs_write(VMCS_XSS_EXIT_BITMAP, 0);
    const uint64_t xss = rdmsr(0xda0); /* IA32_XSS */
    wrmsr(0xda0, bit);
    v->gpr[VMX_GPR_RDI] = (uintptr_t)alloc_pages(4);
    v->gpr[VMX_GPR_RSI] = 1 | bit;
    v->gpr[VMX_GPR_RBX] = 1 | bit;
    note("supervisor component bit %#x (IA32_XSS was %#llx)", bit, (unsigned long long)xss);
    if (!vmx_run_expect(v, EXIT_VMCALL, "XSAVES and XRSTORS with XSS-exiting bitmap 0"))
        goto out;
    vmcs_write(VMCS_XSS_EXIT_BITMAP, bit);
    vmcs_write(VMCS_GUEST_RIP, (uintptr_t)vmx_x2_xrstors);
    v->gpr[VMX_GPR_RAX] = 1 | bit;
    v->gpr[VMX_GPR_RDX] = 0;
    if (vmx_run_expect(v, EXIT_XRSTORS, "XRSTORS of x87 | bit n with bitmap bit n set")) {
        check_eq("guest RIP at the XRSTORS exit", v->guest_rip, (uintptr_t)vmx_x2_xrstors);
        check_eq("VM-exit instruction length of XRSTORS", v->insn_len,
                 vmx_x2_xrstors_end - vmx_x2_xrstors);
        check_eq("exit qualification (displacement)", v->exit_qual, 0);
        check_eq("instruction information (defined bits)", v->insn_info & 0x0fff8783u,
                 II_ADDR64 | II_SEG(II_SEG_DS) | II_NO_INDEX | II_BASE(7));
    }
    vmcs_write(VMCS_GUEST_RIP, (uintptr_t)vmx_x2_xrstors);
    v->gpr[VMX_GPR_RAX] = 1;
    vmx_run_expect(v, EXIT_VMCALL, "XRSTORS of x87 only with bitmap bit n set");
out:
    wrmsr(0xda0, xss);
}

/* ---- unconditional exits at CPL 3 ------------------------------------------------------- */

extern const char vmx_x2_u_cpuid[], vmx_x2_u_vmxoff[], vmx_x2_u_invd[], vmx_x2_u_vmcall[];
GUEST(vmx_x2_user_guest, "vmx_x2_u_cpuid:\n"
                         "    cpuid\n"
                         "vmx_x2_u_vmxoff:\n"
                         "    vmxoff\n"
                         "vmx_x2_u_invd:\n"
                         "    invd\n"
                         "vmx_x2_u_vmcall:\n"
                         "    vmcall\n"
                         "    ud2");

PROBE(vmx_exit_cpl3, "vmx.intercept.cpl3_exits", "VMX",
      "A guest entered at CPL 3 (CS = USER_CS and SS = USER_DS at DPL 3, 64-bit, user-accessible "
      "page tables): CPUID exits with reason 10 and VMXOFF with reason 26 (the VM exit precedes "
      "the CPL check), the saved SS.DPL is 3; INVD, whose #GP for CPL > 0 has priority over its "
      "exit, exits with reason 0, #GP(0) at the INVD; VMCALL exits with reason 18",
      "Intel SDM Vol. 3C 26.1.1, 26.1.2, 31.3 (VMXOFF, VMCALL operation)", "sdm.26.1.1.cpl-exits",
      "sdm.26.1.2.unconditional", "sdm.C.reason-10-cpuid")
{
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_x2_user_guest);
    vmcs_write(VMCS_GUEST_CR3, user_cr3());
    vmcs_write(VMCS_GUEST_CS_SEL, USER_CS);
    vmcs_write(VMCS_GUEST_SS_SEL, USER_DS);
    vmcs_write(VMCS_GUEST_CS_AR, vmcs_read(VMCS_GUEST_CS_AR) | (3u << 5));
    vmcs_write(VMCS_GUEST_SS_AR, vmcs_read(VMCS_GUEST_SS_AR) | (3u << 5));
    v->gpr[VMX_GPR_RAX] = 0;
    v->gpr[VMX_GPR_RCX] = 0;
    if (vmx_run_expect(v, EXIT_CPUID, "CPUID at CPL 3")) {
        check_eq("guest RIP", v->guest_rip, (uintptr_t)vmx_x2_u_cpuid);
        check_eq("saved guest SS.DPL (the CPL)", (vmcs_read(VMCS_GUEST_SS_AR) >> 5) & 3, 3);
        check_eq("saved guest CS selector", vmcs_read(VMCS_GUEST_CS_SEL), USER_CS);
    }
    vmcs_write(VMCS_GUEST_RIP, (uintptr_t)vmx_x2_u_vmxoff);
    if (vmx_run_expect(v, EXIT_VMXOFF, "VMXOFF at CPL 3"))
        check_eq("guest RIP", v->guest_rip, (uintptr_t)vmx_x2_u_vmxoff);
    vmcs_write(VMCS_GUEST_RIP, (uintptr_t)vmx_x2_u_invd);
    if (vmx_run_expect(v, EXIT_EXCEPTION_NMI, "INVD at CPL 3 (#GP before the exit)")) {
        check_eq("interruption information", v->exit_intr_info,
                 INTR_INFO_VALID | INTR_INFO_ERRCODE | (INTR_TYPE_HW_EXC << 8) | GP_VECTOR);
        check_eq("error code", v->exit_intr_err, 0);
        check_eq("guest RIP", v->guest_rip, (uintptr_t)vmx_x2_u_invd);
    }
    vmcs_write(VMCS_GUEST_RIP, (uintptr_t)vmx_x2_u_vmcall);
    if (vmx_run_expect(v, EXIT_VMCALL, "VMCALL at CPL 3"))
        check_eq("saved guest SS.DPL (the CPL)", (vmcs_read(VMCS_GUEST_SS_AR) >> 5) & 3, 3);
}
