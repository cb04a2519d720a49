/* SPDX-License-Identifier: MIT */
/*
 * SVM guest code shared by probe files (lib/guests_svm.S). Every name is
 * the exact address of an instruction; see the .S file for what runs
 * between them.
 */
#ifndef NVCT_GUESTS_SVM_H
#define NVCT_GUESTS_SVM_H

/* <insn>: the instruction; <insn>_vmmcall: VMMCALL; UD2 after it. */
extern char svm_i_cpuid[], svm_i_cpuid_vmmcall[];
extern char svm_i_hlt[], svm_i_hlt_vmmcall[];
extern char svm_i_rdtsc[], svm_i_rdtsc_vmmcall[], svm_i_rdtscp[], svm_i_rdtscp_vmmcall[];
extern char svm_i_int3[], svm_i_int3_vmmcall[];
/* RBX = an unmapped address: MOV (%rbx),%rax; MOV %rax,8(%rbx); VMMCALL */
extern char svm_i_pf_read[], svm_i_pf_write[], svm_i_pf_vmmcall[];
/* RCX = the MSR: RDMSR; VMMCALL; WRMSR; VMMCALL */
extern char svm_i_msr_rd[], svm_i_msr_vmmcall1[], svm_i_msr_wr[], svm_i_msr_vmmcall2[];
/* OUT 0x80,AL; VMMCALL; IN AL,0x80; VMMCALL; OUT DX,AX; VMMCALL */
extern char svm_i_io_out[], svm_i_io_vmmcall1[], svm_i_io_in[], svm_i_io_vmmcall2[];
extern char svm_i_io_outw[], svm_i_io_vmmcall3[];

/* svm_x_<insn>: the instruction; svm_x_<insn>_end: VMMCALL; UD2. */
extern char svm_x_rdpmc[], svm_x_rdpmc_end[];
extern char svm_x_invd[], svm_x_invd_end[];
extern char svm_x_wbinvd[], svm_x_wbinvd_end[];
extern char svm_x_pause[], svm_x_pause_end[];
extern char svm_x_invlpg[], svm_x_invlpg_end[];
extern char svm_x_invlpga[], svm_x_invlpga_end[];
extern char svm_x_monitor[], svm_x_monitor_end[];
extern char svm_x_mwait[], svm_x_mwait_end[];
extern char svm_x_xsetbv[], svm_x_xsetbv_end[];
extern char svm_x_vmrun[], svm_x_vmrun_end[];
extern char svm_x_vmload[], svm_x_vmload_end[];
extern char svm_x_vmsave[], svm_x_vmsave_end[];
extern char svm_x_stgi[], svm_x_stgi_end[];
extern char svm_x_clgi[], svm_x_clgi_end[];

#endif
