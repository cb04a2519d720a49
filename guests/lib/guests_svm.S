/* SPDX-License-Identifier: MIT */
/*
 * SVM guest code that more than one probe file runs (declared in
 * include/guests_svm.h). Each label is the exact address of an
 * instruction: the probes expect an exit there, or resume there. A guest
 * that only one probe file runs stays in that file.
 */

    .text
    .code64

/*
 * Single instructions followed by VMMCALL; UD2 (probes/svm_intercept.c,
 * svm_exitinfo.c, svm_features.c, svm_intercept_io.c, svm_npt.c). The
 * VMMCALLs in between mark "the guest got here".
 */
    .globl svm_i_cpuid, svm_i_cpuid_vmmcall
svm_i_cpuid:
    cpuid
svm_i_cpuid_vmmcall:
    vmmcall
    ud2

    .globl svm_i_hlt, svm_i_hlt_vmmcall
svm_i_hlt:
    hlt
svm_i_hlt_vmmcall:
    vmmcall
    ud2

    .globl svm_i_rdtsc, svm_i_rdtsc_vmmcall, svm_i_rdtscp, svm_i_rdtscp_vmmcall
svm_i_rdtsc:
    rdtsc
svm_i_rdtsc_vmmcall:
    vmmcall
    ud2
svm_i_rdtscp:
    rdtscp
svm_i_rdtscp_vmmcall:
    vmmcall
    ud2

    .globl svm_i_int3, svm_i_int3_vmmcall
svm_i_int3:
    int3
svm_i_int3_vmmcall:
    vmmcall
    ud2

/* RBX = an unmapped address */
    .globl svm_i_pf_read, svm_i_pf_write, svm_i_pf_vmmcall
svm_i_pf_read:
    mov (%rbx), %rax
svm_i_pf_write:
    mov %rax, 8(%rbx)
svm_i_pf_vmmcall:
    vmmcall
    ud2

/* RCX = MSR; RDMSR, VMMCALL, WRMSR (of what was read), VMMCALL */
    .globl svm_i_msr_rd, svm_i_msr_vmmcall1, svm_i_msr_wr, svm_i_msr_vmmcall2
svm_i_msr_rd:
    rdmsr
svm_i_msr_vmmcall1:
    vmmcall
svm_i_msr_wr:
    wrmsr
svm_i_msr_vmmcall2:
    vmmcall
    ud2

/* OUT 0x80,AL; VMMCALL; IN AL,0x80; VMMCALL; OUT DX(=0x7f),AX; VMMCALL */
    .globl svm_i_io_out, svm_i_io_vmmcall1, svm_i_io_in, svm_i_io_vmmcall2
    .globl svm_i_io_outw, svm_i_io_vmmcall3
svm_i_io_out:
    outb %al, $0x80
svm_i_io_vmmcall1:
    vmmcall
svm_i_io_in:
    inb $0x80, %al
svm_i_io_vmmcall2:
    vmmcall
svm_i_io_outw:
    outw %ax, %dx
svm_i_io_vmmcall3:
    vmmcall
    ud2

/*
 * The instructions of probes/svm_intercept_insn.c (svm_exitinfo.c runs
 * PAUSE, WBINVD and INVLPG too): <name>: the instruction; <name>_end:
 * VMMCALL; UD2.
 */
.macro svm_x_stub name, insn:vararg
    .globl \name, \name\()_end
\name:
    \insn
\name\()_end:
    vmmcall
    ud2
.endm

    svm_x_stub svm_x_rdpmc, rdpmc
    svm_x_stub svm_x_invd, invd
    svm_x_stub svm_x_wbinvd, wbinvd
    svm_x_stub svm_x_pause, pause
    svm_x_stub svm_x_invlpg, invlpg (%rbx)
    svm_x_stub svm_x_invlpga, invlpga %rax, %ecx
    svm_x_stub svm_x_monitor, monitor %rax, %ecx, %edx
    svm_x_stub svm_x_mwait, mwait %eax, %ecx
    svm_x_stub svm_x_xsetbv, xsetbv
    svm_x_stub svm_x_vmrun, vmrun %rax
    svm_x_stub svm_x_vmload, vmload %rax
    svm_x_stub svm_x_vmsave, vmsave %rax
    svm_x_stub svm_x_stgi, stgi
    svm_x_stub svm_x_clgi, clgi

    .section .note.GNU-stack, "", @progbits
