/* SPDX-License-Identifier: MIT */
/*
 * SVM CR and DR access intercepts (AMD APM Vol. 2 15.9, Table 15-7: CR
 * and DR reads/writes, the selective CR0 write intercept; intercept
 * vectors 0 and 1, Table B-1): MOV from/to CRn and DRn exit with 0x00+n /
 * 0x10+n / 0x20+n / 0x30+n before executing, RIP at the MOV.
 */
#include "nvct.h"
#include "svm.h"

/* <name>_rd: mov %crN,%rax; vmmcall; <name>_wr: mov %rax,%crN; vmmcall */
#define CRSTUB(name, reg)                                                       \
    GUEST(name##_rd, "mov %" reg ", %rax", #name "_rd_end:", "vmmcall",         \
          #name "_wr:", "mov %rax, %" reg, #name "_wr_end:", "vmmcall", "ud2"); \
    extern char name##_rd_end[], name##_wr[], name##_wr_end[]

CRSTUB(svm_c_cr0, "cr0");
CRSTUB(svm_c_cr3, "cr3");
CRSTUB(svm_c_cr4, "cr4");
CRSTUB(svm_c_cr8, "cr8");
CRSTUB(svm_c_dr0, "db0");
CRSTUB(svm_c_dr7, "db7");

/* selective CR0 write: RBX = CR0 ^ TS, RCX = CR0 ^ WP, RDX = MSW ^ EM */
GUEST(svm_c_sel_ts, "    mov %rbx, %cr0\n"
                    "svm_c_sel_ts_end:\n"
                    "    vmmcall\n"
                    "svm_c_sel_wp:\n"
                    "    mov %rcx, %cr0\n"
                    "svm_c_sel_wp_end:\n"
                    "    vmmcall\n"
                    "svm_c_clts:\n"
                    "    clts\n"
                    "svm_c_clts_end:\n"
                    "    vmmcall\n"
                    "svm_c_lmsw:\n"
                    "    lmsw %dx\n"
                    "svm_c_lmsw_end:\n"
                    "    vmmcall\n"
                    "    ud2");
extern char svm_c_sel_ts_end[], svm_c_sel_wp[], svm_c_sel_wp_end[];
extern char svm_c_clts[], svm_c_clts_end[], svm_c_lmsw[], svm_c_lmsw_end[];

static bool run_expect(struct svm_vcpu *v, const void *site, uint64_t exit, const char *what)
{
    v->vmcb->save.rip = A(site);
    uint64_t code = svm_run(v);
    if (!svm_check_exit(v, code, exit, what))
        return false;
    uint64_t want = exit == SVM_EXIT_VMMCALL ? v->vmcb->save.rip : A(site);
    return check(v->vmcb->save.rip == want, "%s: VMCB RIP %#llx, want %#llx", what,
                 (unsigned long long)v->vmcb->save.rip, (unsigned long long)want);
}

/* Read intercept only: MOV from exits, MOV to runs; then write intercept
 * only: MOV from runs, MOV to exits; then none: both run. The value the
 * guest writes back is the one it read (or, when the read was
 * intercepted, the VMCB value put in RAX). */
static void access_case(const char *name, void (*rd)(void), char *rd_end, char *wr, char *wr_end,
                        bool dr, unsigned n, uint64_t value)
{
    struct svm_vcpu v;
    char what[64];
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)rd, 0);
    uint64_t rd_exit = dr ? SVM_EXIT_DR_READ(n) : SVM_EXIT_CR_READ(n);
    uint64_t wr_exit = dr ? SVM_EXIT_DR_WRITE(n) : SVM_EXIT_CR_WRITE(n);

    /* read intercepted */
    if (dr)
        v.vmcb->control.intercept_dr = SVM_INTERCEPT_DR_READ(n);
    else
        v.vmcb->control.intercept_cr = SVM_INTERCEPT_CR_READ(n);
    v.vmcb->save.rax = value;
    snprintf(what, sizeof(what), "MOV from %s (read intercept)", name);
    if (!run_expect(&v, rd, rd_exit, what))
        return;
    snprintf(what, sizeof(what), "MOV to %s (read intercept only)", name);
    if (!run_expect(&v, rd_end, SVM_EXIT_VMMCALL, what))
        return;
    check(v.vmcb->save.rip == A(rd_end), "%s: VMMCALL at %#llx", what,
          (unsigned long long)v.vmcb->save.rip);
    v.vmcb->save.rip = A(wr);
    if (!run_expect(&v, wr, SVM_EXIT_VMMCALL, what))
        return;
    check(v.vmcb->save.rip == A(wr_end), "%s: VMMCALL at %#llx, want %#llx", what,
          (unsigned long long)v.vmcb->save.rip, (unsigned long long)A(wr_end));

    /* write intercepted */
    if (dr)
        v.vmcb->control.intercept_dr = SVM_INTERCEPT_DR_WRITE(n);
    else
        v.vmcb->control.intercept_cr = SVM_INTERCEPT_CR_WRITE(n);
    snprintf(what, sizeof(what), "MOV from %s (write intercept only)", name);
    if (!run_expect(&v, rd, SVM_EXIT_VMMCALL, what))
        return;
    check(v.vmcb->save.rip == A(rd_end), "%s: VMMCALL at %#llx, want %#llx", what,
          (unsigned long long)v.vmcb->save.rip, (unsigned long long)A(rd_end));
    snprintf(what, sizeof(what), "MOV to %s (write intercept)", name);
    run_expect(&v, wr, wr_exit, what);
}

#define CRCASE(fn_, id_, name_, stub_, dr_, n_, ref_, ...)                                        \
    PROBE(fn_, id_, "SVM",                                                                        \
          "Intercept read of " name_ " only: guest MOV from " name_                               \
          " exits with the read code at the MOV, MOV to " name_                                   \
          " (same value) runs; intercept write only: MOV from runs, MOV to exits with the write " \
          "code at the MOV",                                                                      \
          ref_, __VA_ARGS__)                                                                      \
    {                                                                                             \
        svm_require();                                                                            \
        access_case(name_, stub_##_rd, stub_##_rd_end, stub_##_wr, stub_##_wr_end, dr_, n_,       \
                    init_value(dr_, n_));                                                         \
    }

/* The value the guest's MOV-to writes if its MOV-from was intercepted:
 * what it would have read. */
static uint64_t init_value(bool dr, unsigned n)
{
    if (dr)
        return n == 7 ? 0x400 : 0;
    switch (n) {
    case 0: return read_cr0();
    case 3: return read_cr3();
    case 4: return read_cr4();
    case 8: return read_cr8();
    }
    return 0;
}

CRCASE(svm_icpt_cr0, "svm.intercept.cr0", "CR0", svm_c_cr0, false, 0,
       "AMD APM Vol. 2 15.9 (Table 15-7)", "apm.15.9.cr0-read-write")
CRCASE(svm_icpt_cr3, "svm.intercept.cr3", "CR3", svm_c_cr3, false, 3,
       "AMD APM Vol. 2 15.9 (Table 15-7)", "apm.15.9.cr3-read-write")
CRCASE(svm_icpt_cr4, "svm.intercept.cr4", "CR4", svm_c_cr4, false, 4,
       "AMD APM Vol. 2 15.9 (Table 15-7)", "apm.15.9.cr4-read-write")
CRCASE(svm_icpt_cr8, "svm.intercept.cr8", "CR8", svm_c_cr8, false, 8,
       "AMD APM Vol. 2 15.9 (Table 15-7), 15.21.2", "apm.15.9.cr8-read-write",
       "apm.15.21.2.cr8-intercept")
CRCASE(svm_icpt_dr0, "svm.intercept.dr0", "DR0", svm_c_dr0, true, 0,
       "AMD APM Vol. 2 15.9 (Table 15-7)", "apm.15.9.dr0-3-read-write")
CRCASE(svm_icpt_dr7, "svm.intercept.dr7", "DR7", svm_c_dr7, true, 7,
       "AMD APM Vol. 2 15.9 (Table 15-7)", "apm.15.9.dr7-read-write")

PROBE(svm_icpt_cr0_selective, "svm.intercept.cr0_selective", "SVM",
      "Selective CR0 write intercept only (vector 3 bit 5): guest MOV to CR0 changing only TS runs "
      "(VMCB CR0 shows it); MOV to CR0 changing WP exits 0x65 at the MOV with CR0 unchanged; CLTS "
      "runs (it never checks this intercept)",
      "AMD APM Vol. 2 15.9 (Table 15-7)", "apm.15.9.cr0-selective")
{
    svm_require();
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_c_sel_ts, 0);
    uint64_t cr0 = v.vmcb->save.cr0;
    v.vmcb->control.intercept_misc1 |= SVM_INTERCEPT_CR0_SEL_WRITE;
    v.regs.rbx = cr0 ^ CR0_TS;
    v.regs.rcx = cr0 ^ CR0_TS ^ CR0_WP;
    v.regs.rdx = 0; /* set below: the MSW as it is then, unchanged */
    if (!run_expect(&v, svm_c_sel_ts, SVM_EXIT_VMMCALL, "MOV to CR0 changing only TS"))
        return;
    check_eq("after MOV to CR0 (TS only): VMCB RIP", v.vmcb->save.rip, A(svm_c_sel_ts_end));
    check_eq("after MOV to CR0 (TS only): VMCB CR0", v.vmcb->save.cr0, cr0 ^ CR0_TS);
    if (!run_expect(&v, svm_c_sel_wp, SVM_EXIT_CR0_SEL_WRITE, "MOV to CR0 changing WP"))
        return;
    check_eq("after the CR0_SEL_WRITE exit: VMCB CR0 (not written)", v.vmcb->save.cr0,
             cr0 ^ CR0_TS);
    if (!run_expect(&v, svm_c_clts, SVM_EXIT_VMMCALL, "CLTS (selective intercept only)"))
        return;
    check_eq("after CLTS: VMCB RIP", v.vmcb->save.rip, A(svm_c_clts_end));
    check_eq("after CLTS: VMCB CR0.TS", v.vmcb->save.cr0 & CR0_TS, 0);
}

PROBE(svm_icpt_cr0_selective_lmsw, "svm.intercept.cr0_selective_lmsw", "SVM",
      "Selective CR0 write intercept only: guest LMSW writing the unchanged MSW exits 0x65 at the "
      "LMSW with CR0 unchanged (LMSW treats the selective intercept as non-selective, intercepting "
      "regardless of the value); LMSW changing EM exits 0x65 as well",
      "AMD APM Vol. 2 15.9 (Table 15-7)", "apm.15.9.cr0-selective")
{
    svm_require();
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_c_lmsw, 0);
    v.vmcb->control.intercept_misc1 |= SVM_INTERCEPT_CR0_SEL_WRITE;
    uint64_t cr0 = v.vmcb->save.cr0;
    v.regs.rdx = cr0 & 0xffff;
    if (run_expect(&v, svm_c_lmsw, SVM_EXIT_CR0_SEL_WRITE, "LMSW of the unchanged MSW"))
        check_eq("after the LMSW exit: VMCB CR0", v.vmcb->save.cr0, cr0);
    svm_vcpu_set_entry(&v, (svm_guest_fn)(uintptr_t)svm_c_lmsw, 0);
    v.vmcb->save.cr0 = cr0;
    v.regs.rdx = (cr0 ^ CR0_EM) & 0xffff;
    if (run_expect(&v, svm_c_lmsw, SVM_EXIT_CR0_SEL_WRITE, "LMSW changing EM"))
        check_eq("after the LMSW exit: VMCB CR0", v.vmcb->save.cr0, cr0);
}

PROBE(svm_icpt_cr0_clts_lmsw, "svm.intercept.clts_lmsw", "SVM",
      "CR0 write intercept (intercept_cr bit 16) only: guest CLTS exits 0x10 at the CLTS, guest "
      "LMSW exits 0x10 at the LMSW (both are CR0 writes); with the selective CR0 write intercept "
      "also set, MOV to CR0 changing WP exits 0x10, not 0x65 (the non-selective intercept takes "
      "priority)",
      "AMD APM Vol. 2 15.9 (Table 15-7)", "apm.15.9.cr0-read-write", "apm.15.9.cr0-selective")
{
    svm_require();
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_c_clts, 0);
    v.vmcb->control.intercept_cr = SVM_INTERCEPT_CR_WRITE(0);
    v.vmcb->save.cr0 |= CR0_TS;
    v.regs.rdx = (uint16_t)(v.vmcb->save.cr0 & 0xffff);
    if (!run_expect(&v, svm_c_clts, SVM_EXIT_CR_WRITE(0), "CLTS"))
        return;
    if (!run_expect(&v, svm_c_lmsw, SVM_EXIT_CR_WRITE(0), "LMSW"))
        return;
    v.vmcb->control.intercept_misc1 |= SVM_INTERCEPT_CR0_SEL_WRITE;
    v.regs.rcx = v.vmcb->save.cr0 ^ CR0_WP;
    run_expect(&v, svm_c_sel_wp, SVM_EXIT_CR_WRITE(0),
               "MOV to CR0 changing WP, both CR0 write intercepts set");
}
