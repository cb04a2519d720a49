/* SPDX-License-Identifier: MIT */
/*
 * VM exits of the VMX instructions executed by a guest (each exits
 * unconditionally in VMX non-root operation), with the exit
 * qualification (the memory operand's displacement) and the VM-exit
 * instruction-information field of SDM Vol. 3C 28.2.5.
 */
#include "vmx.h"

/* each instruction between two labels: its length is the distance */
extern const char vmx_ii_0[], vmx_ii_1[], vmx_ii_2[], vmx_ii_3[], vmx_ii_4[], vmx_ii_5[],
    vmx_ii_6[], vmx_ii_7[], vmx_ii_8[], vmx_ii_9[], vmx_ii_10[], vmx_ii_11[], vmx_ii_12[],
    vmx_ii_13[];
GUEST(vmx_ii_guest, "vmx_ii_0:\n"
                    "    vmclear 0x18(%rbx)\n"
                    "vmx_ii_1:\n"
                    "    vmptrld 0x20(%rbx)\n"
                    "vmx_ii_2:\n"
                    "    vmptrst 0x28(%rbx,%rsi,4)\n"
                    "vmx_ii_3:\n"
                    "    vmxon 0x30(%rbx)\n"
                    "vmx_ii_4:\n"
                    "    vmread %rax, 0x38(%rbx)\n"
                    "vmx_ii_5:\n"
                    "    vmwrite 0x40(%rbx), %rax\n"
                    "vmx_ii_6:\n"
                    "    vmread %rdx, %r9\n"
                    "vmx_ii_7:\n"
                    "    vmwrite %r10, %rcx\n"
                    "vmx_ii_8:\n"
                    "    invept 0x48(%rbx), %rcx\n"
                    "vmx_ii_9:\n"
                    "    invvpid 0x50(%rbx,%rdi,8), %r11\n"
                    "vmx_ii_10:\n"
                    "    vmlaunch\n"
                    "vmx_ii_11:\n"
                    "    vmresume\n"
                    "vmx_ii_12:\n"
                    "    vmxoff\n"
                    "vmx_ii_13:\n"
                    "    vmcall\n"
                    "    ud2");

/* defined bits: memory operand of VMCLEAR/VMPTRLD/VMPTRST/VMXON */
#define II_MASK_M64  0x0fff8783u
/* VMREAD/VMWRITE and INVEPT/INVVPID with a memory operand */
#define II_MASK_MEM2 0xffff8783u
/* VMREAD/VMWRITE with register operands */
#define II_MASK_REG2 0xf0000478u

PROBE(vmx_insn_info_vmx, "vmx.intercept.vmx_insn_info", "VMX",
      "Each VMX instruction a guest executes exits unconditionally with its own reason and the "
      "instruction length: VMCLEAR (19), VMPTRLD (21), VMPTRST (22), VMXON (27), VMREAD (23) and "
      "VMWRITE (25) with memory and register operands, INVEPT (50), INVVPID (53) with exit "
      "qualification = the displacement and the defined bits of the VM-exit instruction "
      "information (scaling, address size 64, segment DS, index and base registers, or the "
      "register operands); VMLAUNCH (20), VMRESUME (24), VMXOFF (26)",
      "Intel SDM Vol. 3C 26.1.2, 28.2.1, 28.2.5 (Tables 28-11, 28-13, 28-14, 28-15)",
      "sdm.C.reason-19-vmclear", "sdm.C.reason-20-vmlaunch", "sdm.C.reason-21-vmptrld",
      "sdm.C.reason-22-vmptrst", "sdm.C.reason-23-vmread", "sdm.C.reason-24-vmresume",
      "sdm.C.reason-25-vmwrite", "sdm.C.reason-26-vmxoff", "sdm.C.reason-27-vmxon",
      "sdm.C.reason-50-invept", "sdm.C.reason-53-invvpid", "sdm.26.1.2.unconditional",
      "sdm.28.2.4.insn-info-vmx", "sdm.28.2.4.insn-info-inv", "sdm.28.2.1.qual-insn-displacement",
      "sdm.28.2.4.insn-length")
{
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ii_guest);
    uint64_t *page = alloc_page();
    v->gpr[VMX_GPR_RBX] = (uintptr_t)page;
    v->gpr[VMX_GPR_RSI] = 0;
    v->gpr[VMX_GPR_RDI] = 0;
    v->gpr[VMX_GPR_RAX] = VMCS_GUEST_RIP;
    v->gpr[VMX_GPR_RDX] = VMCS_GUEST_RIP;
    v->gpr[VMX_GPR_RCX] = 1;
    v->gpr[VMX_GPR_R11] = 1;
    const uint32_t m64 = II_ADDR64 | II_SEG(II_SEG_DS) | II_NO_INDEX | II_BASE(3);
    const struct vmx_insn_case cs[] = {
        {vmx_ii_0, vmx_ii_1, "VMCLEAR 0x18(%rbx)", EXIT_VMCLEAR, m64, II_MASK_M64, true, 0x18},
        {vmx_ii_1, vmx_ii_2, "VMPTRLD 0x20(%rbx)", EXIT_VMPTRLD, m64, II_MASK_M64, true, 0x20},
        {vmx_ii_2, vmx_ii_3, "VMPTRST 0x28(%rbx,%rsi,4)", EXIT_VMPTRST,
         II_SCALE(2) | II_ADDR64 | II_SEG(II_SEG_DS) | II_INDEX(6) | II_BASE(3), II_MASK_M64, true,
         0x28},
        {vmx_ii_3, vmx_ii_4, "VMXON 0x30(%rbx)", EXIT_VMXON, m64, II_MASK_M64, true, 0x30},
        {vmx_ii_4, vmx_ii_5, "VMREAD %rax, 0x38(%rbx)", EXIT_VMREAD, m64 | II_REG2(0), II_MASK_MEM2,
         true, 0x38},
        {vmx_ii_5, vmx_ii_6, "VMWRITE 0x40(%rbx), %rax", EXIT_VMWRITE, m64 | II_REG2(0),
         II_MASK_MEM2, true, 0x40},
        {vmx_ii_6, vmx_ii_7, "VMREAD %rdx, %r9", EXIT_VMREAD, II_REG1(9) | II_REGFORM | II_REG2(2),
         II_MASK_REG2, true, 0},
        {vmx_ii_7, vmx_ii_8, "VMWRITE %r10, %rcx", EXIT_VMWRITE,
         II_REG1(10) | II_REGFORM | II_REG2(1), II_MASK_REG2, true, 0},
        {vmx_ii_8, vmx_ii_9, "INVEPT 0x48(%rbx), %rcx", EXIT_INVEPT, m64 | II_REG2(1), II_MASK_MEM2,
         true, 0x48},
        {vmx_ii_9, vmx_ii_10, "INVVPID 0x50(%rbx,%rdi,8), %r11", EXIT_INVVPID,
         II_SCALE(3) | II_ADDR64 | II_SEG(II_SEG_DS) | II_INDEX(7) | II_BASE(3) | II_REG2(11),
         II_MASK_MEM2, true, 0x50},
        {vmx_ii_10, vmx_ii_11, "VMLAUNCH", EXIT_VMLAUNCH, 0, 0, false, 0},
        {vmx_ii_11, vmx_ii_12, "VMRESUME", EXIT_VMRESUME, 0, 0, false, 0},
        {vmx_ii_12, vmx_ii_13, "VMXOFF", EXIT_VMXOFF, 0, 0, false, 0},
    };
    vmx_run_insn_cases(v, cs, ARRAY_SIZE(cs));
    vmcs_write(VMCS_GUEST_RIP, (uintptr_t)vmx_ii_13);
    vmx_run_expect(v, EXIT_VMCALL, "guest VMCALL after the VMX instructions");
}
