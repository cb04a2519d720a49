/* SPDX-License-Identifier: MIT */
/*
 * nvct: the SVM world switch and small guest code stubs.
 */

/* Offsets in struct svm_gprs (include/svm.h). */
#define G_RBX 0
#define G_RCX 8
#define G_RDX 16
#define G_RSI 24
#define G_RDI 32
#define G_RBP 40
#define G_R8  48
#define G_R9  56
#define G_R10 64
#define G_R11 72
#define G_R12 80
#define G_R13 88
#define G_R14 96
#define G_R15 104

    .text
    .code64

/*
 * void svm_vmrun_asm(uint64_t vmcb_pa, struct svm_gprs *gprs,
 *                    uint64_t host_save_pa, uint64_t how)
 *
 * CLGI; [STI;] [VMSAVE host_save; VMLOAD vmcb;] VMRUN vmcb; [VMSAVE vmcb;
 * VMLOAD host_save;] [STGI]. how bit 0 (SVM_ASM_KEEP_GIF0): no STGI;
 * bit 1 (SVM_ASM_STI): STI once GIF is 0, so that VMRUN saves the host's
 * RFLAGS.IF as 1 (svm_run()'s watchdog). The guest's RBX..R15 come from *gprs and go back
 * there; the host's callee-saved registers are kept on the stack. VMRUN
 * saves the host's RAX (the VMCB address) and RSP and #VMEXIT restores
 * them, so the stack is usable right after VMRUN.
 */
    .globl svm_vmrun_asm
    .type svm_vmrun_asm, @function
svm_vmrun_asm:
    push %rbp
    push %rbx
    push %r12
    push %r13
    push %r14
    push %r15
    push %rcx                   /* 24(%rsp): how */
    push %rsi                   /* 16(%rsp): gprs */
    push %rdi                   /*  8(%rsp): vmcb_pa */
    push %rdx                   /*  0(%rsp): host_save_pa */

    clgi
    testq $2, 24(%rsp)
    jz 0f
    sti
0:
    test %rdx, %rdx
    jz 1f
    mov %rdx, %rax
    vmsave %rax
    mov %rdi, %rax
    vmload %rax
1:
    mov %rdi, %rax
    mov G_RBX(%rsi), %rbx
    mov G_RCX(%rsi), %rcx
    mov G_RDX(%rsi), %rdx
    mov G_RDI(%rsi), %rdi
    mov G_RBP(%rsi), %rbp
    mov G_R8(%rsi), %r8
    mov G_R9(%rsi), %r9
    mov G_R10(%rsi), %r10
    mov G_R11(%rsi), %r11
    mov G_R12(%rsi), %r12
    mov G_R13(%rsi), %r13
    mov G_R14(%rsi), %r14
    mov G_R15(%rsi), %r15
    mov G_RSI(%rsi), %rsi

    vmrun %rax

    /* #VMEXIT (or VMEXIT_INVALID): RAX = vmcb_pa, RSP as before VMRUN,
     * GIF = 0, everything else in RBX..R15 belongs to the guest. */
    xchg %rsi, 16(%rsp)         /* guest RSI to the stack, gprs to RSI */
    mov %rbx, G_RBX(%rsi)
    mov %rcx, G_RCX(%rsi)
    mov %rdx, G_RDX(%rsi)
    mov %rdi, G_RDI(%rsi)
    mov %rbp, G_RBP(%rsi)
    mov %r8, G_R8(%rsi)
    mov %r9, G_R9(%rsi)
    mov %r10, G_R10(%rsi)
    mov %r11, G_R11(%rsi)
    mov %r12, G_R12(%rsi)
    mov %r13, G_R13(%rsi)
    mov %r14, G_R14(%rsi)
    mov %r15, G_R15(%rsi)
    mov 16(%rsp), %rax
    mov %rax, G_RSI(%rsi)

    mov 0(%rsp), %rdx
    test %rdx, %rdx
    jz 2f
    mov 8(%rsp), %rax
    vmsave %rax
    mov %rdx, %rax
    vmload %rax
2:
    testq $1, 24(%rsp)
    jnz 3f
    stgi
3:
    add $32, %rsp
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %rbx
    pop %rbp
    ret
    .size svm_vmrun_asm, . - svm_vmrun_asm

/*
 * void svm_vmrun_raw(uint64_t pa): a bare VMRUN with RAX = pa, for probes
 * that expect VMRUN itself to fault (run it under catch_fault()). If it
 * does not fault, the guest state it loaded is whatever is at pa: the
 * callee-saved registers are kept on the stack in case a guest ran.
 */
    .globl svm_vmrun_raw
    .type svm_vmrun_raw, @function
svm_vmrun_raw:
    push %rbp
    push %rbx
    push %r12
    push %r13
    push %r14
    push %r15
    mov %rdi, %rax
    vmrun %rax
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %rbx
    pop %rbp
    ret
    .size svm_vmrun_raw, . - svm_vmrun_raw

/*
 * The default guest's IDT (lib/svm.c points 32 gates here): an exception
 * that reaches the guest's IDT -- one the VMCB does not intercept, or one a
 * hypervisor failed to intercept -- ends in a VMMCALL at
 * svm_guest_exc_vmmcall with RAX = SVM_GUEST_EXC_MAGIC | vector, instead
 * of running the host kernel's handlers in guest mode. The IDT is emptied
 * first, so that a further exception shuts the guest down instead of
 * recursing.
 */
#define SVM_GUEST_EXC_MAGIC 0x4e56435445584300 /* "NVCTEXC\0" */
    .balign 16
    .globl svm_guest_exc_stubs
svm_guest_exc_stubs:
    .set v, 0
    .rept 256
    .balign 16
    pushq $v
    jmp svm_guest_exc_common
    .set v, v + 1
    .endr

svm_guest_exc_common:
    lidt svm_guest_null_idtr(%rip)
    pop %rax
    movabs $SVM_GUEST_EXC_MAGIC, %rcx
    or %rcx, %rax
    .globl svm_guest_exc_vmmcall
svm_guest_exc_vmmcall:
    vmmcall
    ud2

    .section .rodata
    .balign 16
svm_guest_null_idtr:
    .word 0
    .quad 0
    .text

/* ---- guest code stubs ----------------------------------------------------- */

/* Where a guest function returns to (svm_vcpu_init puts it on the guest
 * stack): VMMCALL with RAX = the function's return value. */
    .globl svm_guest_return
svm_guest_return:
    vmmcall
    ud2

    .globl guest_vmmcall
guest_vmmcall:
    vmmcall
    ud2

    .globl guest_vmmcall2
guest_vmmcall2:
    vmmcall
    vmmcall
    ud2

    .globl guest_hlt
guest_hlt:
    hlt
    ud2

    .globl guest_ud2
guest_ud2:
    ud2

    .section .note.GNU-stack, "", @progbits
