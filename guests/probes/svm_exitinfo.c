/* SPDX-License-Identifier: MIT */
/*
 * SVM exit information: the next sequential instruction pointer (nRIP).
 */
#include "nvct.h"
#include "svm.h"
#include "guests_svm.h"

enum {
    NR_CPUID,
    NR_HLT,
    NR_VMMCALL,
    NR_MSR,
    NR_IOIO,
    NR_INT3,
    NR_RDTSC,
    NR_WRMSR,
    NR_IN,
    NR_PAUSE,
    NR_WBINVD,
    NR_INVLPG,
    NR_UD,
    NR_PF,
    NR_COUNT
};

PROBE(svm_exitinfo_next_rip, "svm.exitinfo.next_rip", "NRIPS",
      "With CPUID 0x8000000A EDX.NRIPS[3]=1, next_rip (VMCB 0xC8) after each exit: CPUID, HLT, "
      "VMMCALL, RDMSR, WRMSR, OUT imm8, IN imm8, RDTSC, PAUSE, WBINVD, INVLPG (m) and INT3 #BP "
      "give the address after the instruction; #UD from UD2 and #PF from a MOV give 0",
      "AMD APM Vol. 2 15.7.1", "apm.15.7.1.nrip")
{
    svm_require();
    if (!svm_has(SVM_FEAT_NRIPS))
        skip("CPUID 0x8000000A EDX.NRIPS[3]=0");
    static const struct {
        const char *what;
        uint64_t exit;
        unsigned len; /* 0: no nRIP */
    } t[NR_COUNT] = {
        [NR_CPUID] = {"CPUID", SVM_EXIT_CPUID, 2},
        [NR_HLT] = {"HLT", SVM_EXIT_HLT, 1},
        [NR_VMMCALL] = {"VMMCALL", SVM_EXIT_VMMCALL, 3},
        [NR_MSR] = {"RDMSR", SVM_EXIT_MSR, 2},
        [NR_IOIO] = {"OUT 0x80,AL", SVM_EXIT_IOIO, 2},
        [NR_INT3] = {"INT3", SVM_EXIT_EXCP(BP_VECTOR), 1},
        [NR_RDTSC] = {"RDTSC", SVM_EXIT_RDTSC, 2},
        [NR_WRMSR] = {"WRMSR", SVM_EXIT_MSR, 2},
        [NR_IN] = {"IN AL,0x80", SVM_EXIT_IOIO, 2},
        [NR_PAUSE] = {"PAUSE", SVM_EXIT_PAUSE, 2},
        [NR_WBINVD] = {"WBINVD", SVM_EXIT_WBINVD, 2},
        [NR_INVLPG] = {"INVLPG (%rbx)", SVM_EXIT_INVLPG, 3},
        [NR_UD] = {"UD2", SVM_EXIT_EXCP(UD_VECTOR), 0},
        [NR_PF] = {"MOV from an unmapped address", SVM_EXIT_EXCP(PF_VECTOR), 0},
    };
    const char *const site[NR_COUNT] = {
        [NR_CPUID] = svm_i_cpuid,   [NR_HLT] = svm_i_hlt,       [NR_VMMCALL] = guest_vmmcall,
        [NR_MSR] = svm_i_msr_rd,    [NR_IOIO] = svm_i_io_out,   [NR_INT3] = svm_i_int3,
        [NR_UD] = guest_ud2,        [NR_PF] = svm_i_pf_read,    [NR_RDTSC] = svm_i_rdtsc,
        [NR_WRMSR] = svm_i_msr_wr,  [NR_IN] = svm_i_io_in,      [NR_PAUSE] = svm_x_pause,
        [NR_WBINVD] = svm_x_wbinvd, [NR_INVLPG] = svm_x_invlpg,
    };
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)guest_vmmcall, 0);
    struct vmcb_control *c = &v.vmcb->control;
    c->intercept_misc1 |= SVM_INTERCEPT_CPUID | SVM_INTERCEPT_HLT | SVM_INTERCEPT_MSR_PROT |
                          SVM_INTERCEPT_IOIO_PROT | SVM_INTERCEPT_RDTSC | SVM_INTERCEPT_PAUSE |
                          SVM_INTERCEPT_INVLPG;
    c->intercept_misc2 |= SVM_INTERCEPT_WBINVD;
    svm_msrpm_set(&v, MSR_KERNEL_GS_BASE, true, true);
    svm_iopm_set(&v, 0x80, true);

    uint64_t unmapped = svm_unmapped_address();
    for (unsigned i = 0; i < NR_COUNT; i++) {
        svm_vcpu_set_entry(&v, (svm_guest_fn)(uintptr_t)site[i], 0);
        v.vmcb->save.rax = 0;
        v.regs.rcx = MSR_KERNEL_GS_BASE;
        v.regs.rbx = i == NR_INVLPG ? (uint64_t)(uintptr_t)v.stack : unmapped;
        /* An HLT that runs halts with IF=0 for good: watched. */
        v.watchdog = i == NR_HLT ? "the HLT exit (0x78)" : NULL;
        uint64_t code = svm_run(&v);
        if (!svm_check_exit(&v, code, t[i].exit, t[i].what))
            continue;
        uint64_t want = t[i].len ? A(site[i]) + t[i].len : 0;
        check(c->next_rip == want, "%s (exit %#llx): next_rip %#llx, want %#llx", t[i].what,
              (unsigned long long)code, (unsigned long long)c->next_rip, (unsigned long long)want);
    }
}
