/* SPDX-License-Identifier: MIT */
/*
 * SVM instruction intercepts (AMD APM Vol. 2 15.9, Table 15-7; exit codes
 * Appendix C): each intercepted instruction exits before it executes,
 * with the VMCB RIP at the instruction; resuming after it reaches the next
 * VMMCALL. Where running the instruction in the guest is harmless, the
 * probe also runs it with the intercept clear and expects no exit.
 * nRIP is not checked here (svm.exitinfo.next_rip is its subject).
 */
#include "nvct.h"
#include "svm.h"
#include "guests_svm.h"

struct insn_case {
    const char *what;
    const char *site, *end; /* the instruction, and the VMMCALL after it */
    unsigned vec;           /* 3: intercept_misc1, 4: intercept_misc2 */
    uint32_t bit;
    uint64_t exit;
    bool run_clear; /* also run it with the intercept clear */
};

/* Sets up registers the stubs use: RAX = a page (VMLOAD/VMSAVE/VMRUN/
 * MONITOR/INVLPGA address), RBX = a mapped address for INVLPG, RCX = 0,
 * RDX = 0. */
static void regs_for(struct svm_vcpu *v, void *page)
{
    v->vmcb->save.rax = A(page);
    v->regs.rbx = A(page);
    v->regs.rcx = 0;
    v->regs.rdx = 0;
}

static void set_bit(struct svm_vcpu *v, const struct insn_case *t, bool on)
{
    struct vmcb_control *c = &v->vmcb->control;
    if (t->vec == 3)
        c->intercept_misc1 = on ? (c->intercept_misc1 | t->bit) : (c->intercept_misc1 & ~t->bit);
    else
        c->intercept_misc2 = on ? (c->intercept_misc2 | t->bit) : (c->intercept_misc2 & ~t->bit);
}

static void insn_intercept(const struct insn_case *t)
{
    struct svm_vcpu v;
    void *page = alloc_page();
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)t->site, 0);
    set_bit(&v, t, true);
    regs_for(&v, page);
    /* An MWAIT that runs may wait for an interrupt: that run is watched. */
    v.watchdog = t->exit == SVM_EXIT_MWAIT ? "the MWAIT exit (0x8B)" : NULL;
    uint64_t code = svm_run(&v);
    v.watchdog = NULL;
    if (!svm_check_exit(&v, code, t->exit, t->what))
        return;
    if (!check(v.vmcb->save.rip == A(t->site), "%s: VMCB RIP %#llx, want the instruction at %#llx",
               t->what, (unsigned long long)v.vmcb->save.rip, (unsigned long long)A(t->site)))
        return;
    v.vmcb->save.rip = A(t->end);
    code = svm_run(&v);
    if (!svm_check_exit(&v, code, SVM_EXIT_VMMCALL, "VMMCALL after resuming past the instruction"))
        return;
    check(v.vmcb->save.rip == A(t->end), "resumed %s: VMMCALL at %#llx, want %#llx", t->what,
          (unsigned long long)v.vmcb->save.rip, (unsigned long long)A(t->end));
    if (!t->run_clear)
        return;

    svm_vcpu_set_entry(&v, (svm_guest_fn)(uintptr_t)t->site, 0);
    set_bit(&v, t, false);
    regs_for(&v, page);
    code = svm_run(&v);
    if (!svm_check_exit(&v, code, SVM_EXIT_VMMCALL, "intercept clear: the instruction executes"))
        return;
    check(v.vmcb->save.rip == A(t->end), "%s not intercepted: VMMCALL at %#llx, want %#llx",
          t->what, (unsigned long long)v.vmcb->save.rip, (unsigned long long)A(t->end));
}

#define ICASE(fn_, id_, desc_, what_, stub_, vec_, bit_, exit_, clear_, ...)                      \
    PROBE(fn_, id_, "SVM", desc_, "AMD APM Vol. 2 15.9", __VA_ARGS__)                             \
    {                                                                                             \
        svm_require();                                                                            \
        static const struct insn_case t = {what_, stub_, stub_##_end, vec_, bit_, exit_, clear_}; \
        insn_intercept(&t);                                                                       \
    }

ICASE(svm_icpt_rdpmc, "svm.intercept.rdpmc",
      "Guest RDPMC (ECX=0) with the RDPMC intercept set: exit 0x6F with RIP at the RDPMC; resuming "
      "past it reaches the next VMMCALL",
      "RDPMC", svm_x_rdpmc, 3, SVM_INTERCEPT_RDPMC, SVM_EXIT_RDPMC, false, "apm.15.9.rdpmc")

ICASE(svm_icpt_invd, "svm.intercept.invd",
      "Guest INVD with the INVD intercept set: exit 0x76 with RIP at the INVD; resuming past it "
      "reaches the next VMMCALL",
      "INVD", svm_x_invd, 3, SVM_INTERCEPT_INVD, SVM_EXIT_INVD, false, "apm.15.9.invd")

ICASE(svm_icpt_wbinvd, "svm.intercept.wbinvd",
      "Guest WBINVD with the WBINVD intercept set: exit 0x89 with RIP at the WBINVD; resuming past "
      "it reaches the next VMMCALL; with the intercept clear WBINVD runs in the guest",
      "WBINVD", svm_x_wbinvd, 4, SVM_INTERCEPT_WBINVD, SVM_EXIT_WBINVD, true, "apm.15.9.wbinvd")

ICASE(svm_icpt_invlpg, "svm.intercept.invlpg",
      "Guest INVLPG of a mapped address with the INVLPG intercept set: exit 0x79 with RIP at the "
      "INVLPG; resuming past it reaches the next VMMCALL; with the intercept clear INVLPG runs in "
      "the guest",
      "INVLPG", svm_x_invlpg, 3, SVM_INTERCEPT_INVLPG, SVM_EXIT_INVLPG, true, "apm.15.9.invlpg")

ICASE(svm_icpt_invlpga, "svm.intercept.invlpga",
      "Guest INVLPGA (RAX = an address, ECX = ASID 0) with the INVLPGA intercept set: exit 0x7A "
      "with RIP at the INVLPGA; resuming past it reaches the next VMMCALL; with the intercept "
      "clear INVLPGA runs in the guest (guest EFER.SVME=1)",
      "INVLPGA", svm_x_invlpga, 3, SVM_INTERCEPT_INVLPGA, SVM_EXIT_INVLPGA, true,
      "apm.15.9.invlpga")

ICASE(svm_icpt_vmrun, "svm.intercept.vmrun",
      "Guest VMRUN (RAX = a page) with the VMRUN intercept set (it must be): exit 0x80 with RIP at "
      "the VMRUN; resuming past it reaches the next VMMCALL",
      "guest VMRUN", svm_x_vmrun, 4, SVM_INTERCEPT_VMRUN, SVM_EXIT_VMRUN, false, "apm.15.9.vmrun")

ICASE(svm_icpt_vmload, "svm.intercept.vmload",
      "Guest VMLOAD (RAX = a zeroed page) with the VMLOAD intercept set: exit 0x82 with RIP at the "
      "VMLOAD; resuming past it reaches the next VMMCALL",
      "guest VMLOAD", svm_x_vmload, 4, SVM_INTERCEPT_VMLOAD, SVM_EXIT_VMLOAD, false,
      "apm.15.9.vmload")

ICASE(svm_icpt_vmsave, "svm.intercept.vmsave",
      "Guest VMSAVE (RAX = a page) with the VMSAVE intercept set: exit 0x83 with RIP at the "
      "VMSAVE; resuming past it reaches the next VMMCALL",
      "guest VMSAVE", svm_x_vmsave, 4, SVM_INTERCEPT_VMSAVE, SVM_EXIT_VMSAVE, false,
      "apm.15.9.vmsave")

ICASE(svm_icpt_stgi, "svm.intercept.stgi",
      "Guest STGI with the STGI intercept set: exit 0x84 with RIP at the STGI; resuming past it "
      "reaches the next VMMCALL",
      "guest STGI", svm_x_stgi, 4, SVM_INTERCEPT_STGI, SVM_EXIT_STGI, false, "apm.15.9.stgi")

ICASE(svm_icpt_clgi, "svm.intercept.clgi",
      "Guest CLGI with the CLGI intercept set: exit 0x85 with RIP at the CLGI; resuming past it "
      "reaches the next VMMCALL",
      "guest CLGI", svm_x_clgi, 4, SVM_INTERCEPT_CLGI, SVM_EXIT_CLGI, false, "apm.15.9.clgi")

PROBE(svm_icpt_pause, "svm.intercept.pause", "SVM",
      "Guest PAUSE with the PAUSE intercept set and PAUSE_FILTER_COUNT=0: exit 0x77 with RIP at "
      "the PAUSE; resuming past it reaches the next VMMCALL; with the intercept clear PAUSE runs "
      "in the guest",
      "AMD APM Vol. 2 15.9, 15.14.4", "apm.15.9.pause")
{
    svm_require();
    static const struct insn_case t = {"PAUSE", svm_x_pause,         svm_x_pause_end,
                                       3,       SVM_INTERCEPT_PAUSE, SVM_EXIT_PAUSE,
                                       true};
    insn_intercept(&t);
}

PROBE(svm_icpt_monitor_mwait, "svm.intercept.monitor_mwait", "SVM",
      "With CPUID 1 ECX.MONITOR[3]=1: guest MONITOR (RAX = a page) with the MONITOR intercept set "
      "exits 0x8A at the MONITOR; guest MWAIT with the unconditional MWAIT intercept set exits "
      "0x8B at the MWAIT; each resumed past reaches the next VMMCALL",
      "AMD APM Vol. 2 15.9", "apm.15.9.monitor", "apm.15.9.mwait")
{
    svm_require();
    if (!(cpuid(1, 0).c & BIT(3)))
        skip("CPUID 1 ECX.MONITOR[3]=0");
    static const struct insn_case m = {"MONITOR", svm_x_monitor,         svm_x_monitor_end,
                                       4,         SVM_INTERCEPT_MONITOR, SVM_EXIT_MONITOR,
                                       false};
    static const struct insn_case w = {"MWAIT", svm_x_mwait,         svm_x_mwait_end,
                                       4,       SVM_INTERCEPT_MWAIT, SVM_EXIT_MWAIT,
                                       false};
    insn_intercept(&m);
    insn_intercept(&w);
}

PROBE(svm_icpt_xsetbv, "svm.intercept.xsetbv", "SVM",
      "With CPUID 1 ECX.XSAVE[26]=1 and guest CR4.OSXSAVE=1: guest XSETBV (ECX=0, EDX:EAX = the "
      "current XCR0) with the XSETBV intercept set exits 0x8D with RIP at the XSETBV; resuming "
      "past it reaches the next VMMCALL",
      "AMD APM Vol. 2 15.9", "apm.15.9.xsetbv")
{
    svm_require();
    if (!(cpuid(1, 0).c & BIT(26)))
        skip("CPUID 1 ECX.XSAVE[26]=0");
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_x_xsetbv, 0);
    v.vmcb->control.intercept_misc2 |= SVM_INTERCEPT_XSETBV;
    v.vmcb->save.cr4 |= CR4_OSXSAVE;
    /* The current XCR0 (its reset value 1 if the host never enabled
     * XSAVE), so that a model that wrongly executes XSETBV changes nothing. */
    uint64_t xcr0 = 1;
    if (read_cr4() & CR4_OSXSAVE) {
        uint32_t lo, hi;
        __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        xcr0 = lo | ((uint64_t)hi << 32);
    }
    v.vmcb->save.rax = xcr0 & 0xffffffff;
    v.regs.rcx = 0;
    v.regs.rdx = xcr0 >> 32;
    uint64_t code = svm_run(&v);
    if (!svm_check_exit(&v, code, SVM_EXIT_XSETBV, "XSETBV"))
        return;
    check_eq("XSETBV exit: VMCB RIP", v.vmcb->save.rip, A(svm_x_xsetbv));
    v.vmcb->save.rip = A(svm_x_xsetbv_end);
    code = svm_run(&v);
    svm_check_exit(&v, code, SVM_EXIT_VMMCALL, "VMMCALL after resuming past XSETBV");
}
