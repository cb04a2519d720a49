/* SPDX-License-Identifier: MIT */
/*
 * nvct: the VMX world switch (see vmx_run() in include/vmx.h).
 */
#include "vmx.h"

#define G(n) VMX_VCPU_GPR(VMX_GPR_##n)

    .text
    .code64

/*
 * int vmx_enter(struct vmx_vcpu *v)
 *
 * Saves the host's callee-saved registers and v on the stack, writes the
 * VMCS host RSP (that stack) and host RIP (vmx_exit_stub), loads the guest
 * GPRs from v and executes VMLAUNCH (v->launched == 0) or VMRESUME.
 * Returns 1 if the instruction fails (VMfail: RFLAGS in v->fail_rflags),
 * 0 after a VM exit (guest GPRs saved in v). A VM exit loads GDTR and IDTR
 * with limit 0xffff (SDM Vol. 3C 28.5.2): the stub reloads the host's own.
 */
    .globl vmx_enter
    .type vmx_enter, @function
vmx_enter:
    push %rbp
    push %rbx
    push %r12
    push %r13
    push %r14
    push %r15
    push %rdi                       /* 0(%rsp): v, until the exit */

    sgdt VMX_VCPU_HOST_GDTR(%rdi)
    sidt VMX_VCPU_HOST_IDTR(%rdi)
    mov $VMCS_HOST_RSP, %eax
    vmwrite %rsp, %rax
    lea vmx_exit_stub(%rip), %rdx
    mov $VMCS_HOST_RIP, %eax
    vmwrite %rdx, %rax

    cmpq $0, VMX_VCPU_LAUNCHED(%rdi)    /* mov does not touch the flags */
    mov G(RAX)(%rdi), %rax
    mov G(RCX)(%rdi), %rcx
    mov G(RDX)(%rdi), %rdx
    mov G(RBX)(%rdi), %rbx
    mov G(RBP)(%rdi), %rbp
    mov G(RSI)(%rdi), %rsi
    mov G(R8)(%rdi), %r8
    mov G(R9)(%rdi), %r9
    mov G(R10)(%rdi), %r10
    mov G(R11)(%rdi), %r11
    mov G(R12)(%rdi), %r12
    mov G(R13)(%rdi), %r13
    mov G(R14)(%rdi), %r14
    mov G(R15)(%rdi), %r15
    mov G(RDI)(%rdi), %rdi
    jne 1f
    vmlaunch
    jmp 2f
1:  vmresume
2:  /* VMfail: the instruction fell through */
    pushfq
    mov 8(%rsp), %rdi
    popq VMX_VCPU_FAIL_RFLAGS(%rdi)
    mov $1, %eax
    jmp 3f

    .globl vmx_exit_stub
    .type vmx_exit_stub, @function
vmx_exit_stub:
    /* host state loaded; RSP = the host RSP written above */
    push %rdi
    pushfq                          /* the RFLAGS the VM exit loaded */
    mov 16(%rsp), %rdi
    popq VMX_VCPU_EXIT_RFLAGS(%rdi)
    mov 8(%rsp), %rdi
    mov %rax, G(RAX)(%rdi)
    mov %rcx, G(RCX)(%rdi)
    mov %rdx, G(RDX)(%rdi)
    mov %rbx, G(RBX)(%rdi)
    mov %rbp, G(RBP)(%rdi)
    mov %rsi, G(RSI)(%rdi)
    mov %r8, G(R8)(%rdi)
    mov %r9, G(R9)(%rdi)
    mov %r10, G(R10)(%rdi)
    mov %r11, G(R11)(%rdi)
    mov %r12, G(R12)(%rdi)
    mov %r13, G(R13)(%rdi)
    mov %r14, G(R14)(%rdi)
    mov %r15, G(R15)(%rdi)
    popq G(RDI)(%rdi)
    sgdt VMX_VCPU_EXIT_GDTR(%rdi)
    sidt VMX_VCPU_EXIT_IDTR(%rdi)
    lgdt VMX_VCPU_HOST_GDTR(%rdi)
    lidt VMX_VCPU_HOST_IDTR(%rdi)
    xor %eax, %eax
3:
    pop %rdi
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %rbx
    pop %rbp
    ret

/*
 * Where a guest entry function returns to (vmx_setup_vmcs() puts this
 * address on top of the guest stack): VMCALL with RAX = VMX_GUEST_RETURNED.
 */
    .globl vmx_guest_return
    .type vmx_guest_return, @function
vmx_guest_return:
    mov $VMX_GUEST_RETURNED, %eax
    vmcall
    ud2

/*
 * A guest IDT's handlers (vmx_guest_idt()): 256 stubs of 16 bytes. Each
 * pushes ~0 if its vector has no error code (so that an error code, which
 * is at most 32 bits, is told apart), then its vector, and jumps to the
 * common part, which executes VMCALL with RAX = VMX_GUEST_EVENT,
 * RBX = vector, RCX = error code or ~0, RDX = the RIP the event pushed, and
 * IRETs when resumed after the VMCALL.
 */
    .align 16
    .globl vmx_guest_vectors
vmx_guest_vectors:
    .set vec, 0
    .rept 256
    .align 16
    .if (vec == 8) || ((vec >= 10) && (vec <= 14)) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
    .else
    pushq $-1
    .endif
    pushq $vec
    jmp vmx_guest_event_common
    .set vec, vec + 1
    .endr

vmx_guest_event_common:
    pop %rbx
    pop %rcx
    mov (%rsp), %rdx
    mov $VMX_GUEST_EVENT, %eax
    vmcall
    iretq
