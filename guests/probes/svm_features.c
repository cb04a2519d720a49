/* SPDX-License-Identifier: MIT */
/*
 * Optional SVM features, each gated on its CPUID 0x8000000A EDX bit:
 * virtual GIF (15.33), pause intercept filtering (15.14.4), LBR
 * virtualization (15.23), flush by ASID (15.16.1), VMCB clean bits
 * (15.15.4).
 */
#include "nvct.h"
#include "svm.h"
#include "guests_svm.h"

/* CLGI; VMMCALL; STGI; VMMCALL */
GUEST(svm_f_clgi, "clgi", "svm_f_clgi_end:", "vmmcall", "svm_f_stgi:", "stgi",
      "svm_f_stgi_end:", "vmmcall", "ud2");
/* RBX counts the PAUSEs executed */
GUEST(svm_f_pause_loop, "    inc %rbx\n"
                        "svm_f_pause:\n"
                        "    pause\n"
                        "    cmp $1000, %rbx\n"
                        "    jb svm_f_pause_loop\n"
                        "    vmmcall\n"
                        "    ud2");
/* a taken JMP, then VMMCALL */
GUEST(svm_f_jmp, "jmp svm_f_jmp_target", "ud2", "svm_f_jmp_target:", "vmmcall", "ud2");
extern char svm_f_clgi_end[], svm_f_stgi[], svm_f_stgi_end[], svm_f_pause[], svm_f_jmp_target[];

PROBE(svm_features_vgif, "svm.features.vgif", "vGIF",
      "With CPUID 0x8000000A EDX.vGIF[16]=1, V_GIF_ENABLE=1 and V_GIF=1, CLGI/STGI not "
      "intercepted: guest CLGI runs without an exit and clears V_GIF (VMCB int_ctl bit 9 = 0 at "
      "the next VMMCALL); guest STGI sets it again",
      "AMD APM Vol. 2 15.33", "apm.15.33.2.vgif")
{
    svm_require();
    if (!svm_has(SVM_FEAT_VGIF))
        skip("CPUID 0x8000000A EDX.vGIF[16]=0");
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_f_clgi, 0);
    v.vmcb->control.int_ctl = V_GIF_ENABLE | V_GIF;
    uint64_t code = svm_run(&v);
    if (!svm_check_exit(&v, code, SVM_EXIT_VMMCALL, "guest CLGI with vGIF"))
        return;
    check_eq("VMMCALL after CLGI: VMCB RIP", v.vmcb->save.rip, A(svm_f_clgi_end));
    check_eq("V_GIF after guest CLGI", v.vmcb->control.int_ctl & V_GIF, 0);
    v.vmcb->save.rip = A(svm_f_stgi);
    code = svm_run(&v);
    if (!svm_check_exit(&v, code, SVM_EXIT_VMMCALL, "guest STGI with vGIF"))
        return;
    check_eq("V_GIF after guest STGI", v.vmcb->control.int_ctl & V_GIF, V_GIF);
}

PROBE(svm_features_pause_filter, "svm.features.pause_filter", "pause filter",
      "With CPUID 0x8000000A EDX.PauseFilter[10]=1, PAUSE intercepted, PAUSE_FILTER_COUNT=3 "
      "(threshold 0): the guest loops over PAUSE; VMRUN loads the counter, each PAUSE decrements "
      "it and the intercept occurs when it goes below zero: the exit is at the 4th PAUSE (RIP at "
      "it, RBX=4)",
      "AMD APM Vol. 2 15.9 (Table 15-7, PAUSE), 15.14.4", "apm.15.14.4.pause-filter")
{
    svm_require();
    if (!svm_has(SVM_FEAT_PAUSE_FILTER))
        skip("CPUID 0x8000000A EDX.PauseFilter[10]=0");
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_f_pause_loop, 0);
    v.vmcb->control.intercept_misc1 |= SVM_INTERCEPT_PAUSE;
    v.vmcb->control.pause_filter_count = 3;
    v.vmcb->control.pause_filter_thresh = 0;
    v.regs.rbx = 0;
    uint64_t code = svm_run(&v);
    if (!svm_check_exit(&v, code, SVM_EXIT_PAUSE, "PAUSE loop with a filter count of 3"))
        return;
    check_eq("PAUSE exit: VMCB RIP", v.vmcb->save.rip, A(svm_f_pause));
    check_eq("PAUSEs executed when the exit came (RBX)", v.regs.rbx, 4);
}

PROBE(svm_features_lbrv, "svm.features.lbrv", "LBRV",
      "With CPUID 0x8000000A EDX.LbrVirt[1]=1, VMCB LBR_VIRTUALIZATION_ENABLE=1 and guest DBGCTL=1 "
      "(LBR): the guest executes a taken JMP then VMMCALL: VMCB BR_FROM = the JMP, BR_TO = its "
      "target; the host's DEBUGCTL is unchanged by the world switch",
      "AMD APM Vol. 2 15.23.1", "apm.15.23.lbrv-swap", "apm.15.23.lbrv-records")
{
    svm_require();
    if (!svm_has(SVM_FEAT_LBRV))
        skip("CPUID 0x8000000A EDX.LbrVirt[1]=0");
    uint64_t host_dbgctl = rdmsr(MSR_IA32_DEBUGCTL);
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_f_jmp, 0);
    v.vmcb->control.virt_ext |= SVM_VIRT_EXT_LBRV;
    v.vmcb->save.dbgctl = 1;
    uint64_t code = svm_run(&v);
    uint64_t after = rdmsr(MSR_IA32_DEBUGCTL);
    if (after != host_dbgctl)
        wrmsr(MSR_IA32_DEBUGCTL, host_dbgctl);
    if (!svm_check_exit(&v, code, SVM_EXIT_VMMCALL, "guest JMP with LBR virtualization"))
        return;
    check_eq("VMCB BR_FROM", v.vmcb->save.br_from, A(svm_f_jmp));
    check_eq("VMCB BR_TO", v.vmcb->save.br_to, A(svm_f_jmp_target));
    check_eq("VMCB DBGCTL after the exit", v.vmcb->save.dbgctl & 1, 1);
    check_eq("host DEBUGCTL after the exit", after, host_dbgctl);
}

/* ---- TLB control on a guest page table of its own ---------------------------------- */

/* Guest tables: a copy of the kernel's PML4 and of the PDPT behind
 * PML4[0], plus one new PD/PT mapping the 4 KiB page at `va` (a 1 GiB slot
 * the kernel leaves unmapped). Returns the guest CR3; *pte the PTE. */
static uint64_t guest_tables(uint64_t va, uint64_t **pte)
{
    const uint64_t mask = 0x000ffffffffff000ull;
    uint64_t *pml4 = alloc_page(), *pdpt = alloc_page(), *pd = alloc_page(), *pt = alloc_page();
    const uint64_t *kpml4 = (const uint64_t *)(uintptr_t)(read_cr3() & mask);
    memcpy(pml4, kpml4, 4096);
    memcpy(pdpt, (const void *)(uintptr_t)(kpml4[0] & mask), 4096);
    pml4[0] = (uint64_t)(uintptr_t)pdpt | (kpml4[0] & ~mask);
    pdpt[(va >> 30) & 511] = (uint64_t)(uintptr_t)pd | 3;
    pd[(va >> 21) & 511] = (uint64_t)(uintptr_t)pt | 3;
    *pte = &pt[(va >> 12) & 511];
    return (uint64_t)(uintptr_t)pml4;
}

static uint64_t guest_read(uint64_t addr) { return *(volatile uint64_t *)(uintptr_t)addr; }

/* Reads va in the guest and returns what it saw (or ~0 after a failed check). */
static uint64_t read_in_guest(struct svm_vcpu *v, uint64_t va, const char *what)
{
    svm_vcpu_set_entry(v, guest_read, va);
    uint64_t code = svm_run(v);
    if (!svm_check_exit(v, code, SVM_EXIT_VMMCALL, what))
        return ~0ull;
    return v->vmcb->save.rax;
}

PROBE(svm_features_flush_by_asid, "svm.features.flush_by_asid", "flush by ASID",
      "With CPUID 0x8000000A EDX.FlushByAsid[6]=1: guest (ASID 1, own page tables) reads VA mapped "
      "to page P1; the host remaps the guest PTE to P2; VMRUN with TLB_CONTROL=3 (flush this "
      "guest's ASID) reads P2; with TLB_CONTROL=7 (flush this ASID's non-global entries) after a "
      "remap to P3 it reads P3",
      "AMD APM Vol. 2 15.16.1", "apm.15.16.1.tlb-control")
{
    svm_require();
    if (!svm_has(SVM_FEAT_FLUSH_BY_ASID))
        skip("CPUID 0x8000000A EDX.FlushByAsid[6]=0");
    uint64_t va = svm_unmapped_address();
    uint64_t *p1 = alloc_page(), *p2 = alloc_page(), *p3 = alloc_page(), *pte;
    p1[0] = 1;
    p2[0] = 2;
    p3[0] = 3;
    struct svm_vcpu v;
    svm_vcpu_init(&v, guest_read, va);
    v.vmcb->save.cr3 = guest_tables(va, &pte);
    *pte = (uint64_t)(uintptr_t)p1 | 3;
    v.vmcb->control.tlb_control = TLB_CONTROL_FLUSH_ALL;
    check_eq("first read of VA (P1)", read_in_guest(&v, va, "first read"), 1);
    *pte = (uint64_t)(uintptr_t)p2 | 3;
    v.vmcb->control.tlb_control = TLB_CONTROL_FLUSH_ASID;
    check_eq("read after remap and TLB_CONTROL=3 (P2)", read_in_guest(&v, va, "TLB_CONTROL=3"), 2);
    *pte = (uint64_t)(uintptr_t)p3 | 3;
    v.vmcb->control.tlb_control = TLB_CONTROL_FLUSH_ASID_LOCAL;
    check_eq("read after remap and TLB_CONTROL=7 (P3)", read_in_guest(&v, va, "TLB_CONTROL=7"), 3);
}

PROBE(svm_basic_invlpga, "svm.basic.invlpga", "SVM",
      "Guest (ASID 1, own page tables) reads VA mapped to page P1; the host remaps the guest PTE "
      "to P2 and runs the guest with TLB_CONTROL=0 (a stale entry is allowed: noted); after host "
      "INVLPGA (RAX=VA, ECX=1) the guest must read P2",
      "AMD APM Vol. 2 15.16.2; Vol. 3 INVLPGA", "apm.15.16.2.invlpga")
{
    svm_require();
    uint64_t va = svm_unmapped_address();
    uint64_t *p1 = alloc_page(), *p2 = alloc_page(), *pte;
    p1[0] = 1;
    p2[0] = 2;
    struct svm_vcpu v;
    svm_vcpu_init(&v, guest_read, va);
    v.vmcb->save.cr3 = guest_tables(va, &pte);
    *pte = (uint64_t)(uintptr_t)p1 | 3;
    v.vmcb->control.tlb_control = TLB_CONTROL_FLUSH_ALL;
    check_eq("first read of VA (P1)", read_in_guest(&v, va, "first read"), 1);
    *pte = (uint64_t)(uintptr_t)p2 | 3;
    v.vmcb->control.tlb_control = TLB_CONTROL_DO_NOTHING;
    uint64_t stale = read_in_guest(&v, va, "read after the remap, no flush");
    note("read after the remap without a flush: %llu (%s)", (unsigned long long)stale,
         stale == 1 ? "stale TLB entry" : "fresh walk");
    svm_invlpga(va, 1);
    check_eq("read after INVLPGA VA, ASID 1 (P2)", read_in_guest(&v, va, "after INVLPGA"), 2);
}

PROBE(svm_features_vmcb_clean, "svm.features.vmcb_clean", "VMCB clean",
      "With CPUID 0x8000000A EDX.VmcbClean[5]=1: after a VMRUN of the VMCB, the CPUID intercept is "
      "set and VMCB clean = all ones except bit 0 (I: intercepts): the next VMRUN must honour the "
      "new intercept (exit 0x72); a clean bit cleared always forces a reload",
      "AMD APM Vol. 2 15.15.1", "apm.15.15.clean-bits")
{
    svm_require();
    if (!svm_has(SVM_FEAT_VMCB_CLEAN))
        skip("CPUID 0x8000000A EDX.VmcbClean[5]=0");
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_i_cpuid, 0);
    v.vmcb->save.rax = 0;
    v.regs.rcx = 0;
    v.vmcb->control.clean = 0;
    uint64_t code = svm_run(&v);
    if (!svm_check_exit(&v, code, SVM_EXIT_VMMCALL, "first VMRUN, CPUID not intercepted"))
        return;
    svm_vcpu_set_entry(&v, (svm_guest_fn)(uintptr_t)svm_i_cpuid, 0);
    v.vmcb->save.rax = 0;
    v.regs.rcx = 0;
    v.vmcb->control.intercept_misc1 |= SVM_INTERCEPT_CPUID;
    v.vmcb->control.clean = 0xffffffffu & ~(uint32_t)VMCB_CLEAN_I;
    code = svm_run(&v);
    svm_check_exit(&v, code, SVM_EXIT_CPUID, "CPUID intercept set, clean bit I cleared");
}
