/* SPDX-License-Identifier: MIT */
/*
 * Exception entry stubs and the setjmp/longjmp pair behind catch_fault()
 * and the runner.
 */
#include "asm.h"

    .text

/*
 * One 16-byte stub per vector. The CPU pushes an error code for vectors
 * 8, 10-14, 17, 21, 29 and 30 (SDM Vol. 3A 6.15; APM Vol. 2 8.2, 15.35);
 * for the others the stub pushes a zero in its place so that every frame
 * has the same layout. (An INT n to one of those vectors pushes no error
 * code; the frame is then off by one slot. Probes that use INT n on them
 * must not rely on the handler.)
 */
    .balign 16
    .globl trap_stubs
trap_stubs:
    vec = 0
    .rept 256
    .balign 16
    .if !(vec == 8 || (vec >= 10 && vec <= 14) || vec == 17 || vec == 21 || vec == 29 || vec == 30)
    pushq $0
    .endif
    pushq $vec
    jmp trap_common
    vec = vec + 1
    .endr

/*
 * The frame layout is struct trap_frame in kernel.h. The CPU aligns RSP to
 * 16 bytes before pushing its 5-word frame (SDM Vol. 3A 6.14.2); with the
 * vector, the error code and 15 registers the total is 22 words, so RSP is
 * still 16-byte aligned at the call.
 */
trap_common:
    pushq %rax
    pushq %rbx
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rbp
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    cld
    mov %rsp, %rdi
    call trap_dispatch
    /* trap_dispatch may have rewritten the frame to resume elsewhere. */
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rbp
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rbx
    popq %rax
    add $16, %rsp
    iretq

/* int jmp_save(struct jmp_ctx *ctx): ctx = { rbx, rbp, r12..r15, rsp, rip } */
GLOBAL(jmp_save)
    mov %rbx, 0(%rdi)
    mov %rbp, 8(%rdi)
    mov %r12, 16(%rdi)
    mov %r13, 24(%rdi)
    mov %r14, 32(%rdi)
    mov %r15, 40(%rdi)
    lea 8(%rsp), %rax               /* RSP as it will be after the return */
    mov %rax, 48(%rdi)
    mov (%rsp), %rax                /* the return address */
    mov %rax, 56(%rdi)
    xor %eax, %eax
    ret

/* noreturn void jmp_restore(struct jmp_ctx *ctx, int val) */
GLOBAL(jmp_restore)
    mov %esi, %eax
    test %eax, %eax
    jnz 1f
    inc %eax                        /* jmp_save() must never see 0 again */
1:  mov 0(%rdi), %rbx
    mov 8(%rdi), %rbp
    mov 16(%rdi), %r12
    mov 24(%rdi), %r13
    mov 32(%rdi), %r14
    mov 40(%rdi), %r15
    mov 48(%rdi), %rsp
    jmp *56(%rdi)
