/* SPDX-License-Identifier: MIT */
/*
 * SVM ASIDs and VMCB state caching across VMCBs (AMD APM Vol. 2 15.16.1,
 * 15.15): a translation cached for one ASID is not used by a guest with
 * another ASID, and a VMRUN of a VMCB other than the last one reloads its
 * state whatever its clean bits say.
 */
#include "nvct.h"
#include "svm.h"
#include "guests_svm.h"

/* Guest tables: a copy of the kernel's PML4 and of the PDPT behind
 * PML4[0], plus one PD/PT mapping the 4 KiB page at `va` (a 1 GiB slot the
 * kernel leaves unmapped). Returns the guest CR3; *pte the PTE. */
static uint64_t asid_tables(uint64_t va, uint64_t **pte)
{
    const uint64_t mask = 0x000ffffffffff000ull;
    uint64_t *pml4 = alloc_page(), *pdpt = alloc_page(), *pd = alloc_page(), *pt = alloc_page();
    const uint64_t *kpml4 = (const uint64_t *)(uintptr_t)(read_cr3() & mask);
    memcpy(pml4, kpml4, 4096);
    memcpy(pdpt, (const void *)(uintptr_t)(kpml4[0] & mask), 4096);
    pml4[0] = A(pdpt) | (kpml4[0] & ~mask);
    pdpt[(va >> 30) & 511] = A(pd) | 3;
    pd[(va >> 21) & 511] = A(pt) | 3;
    *pte = &pt[(va >> 12) & 511];
    return A(pml4);
}

static uint64_t asid_read(uint64_t addr) { return *(volatile uint64_t *)(uintptr_t)addr; }

static uint64_t read_as(struct svm_vcpu *v, uint32_t asid, uint8_t tlb, uint64_t va,
                        const char *what)
{
    svm_vcpu_set_entry(v, asid_read, va);
    v->vmcb->control.asid = asid;
    v->vmcb->control.tlb_control = tlb;
    uint64_t code = svm_run(v);
    if (!svm_check_exit(v, code, SVM_EXIT_VMMCALL, what))
        return ~0ull;
    return v->vmcb->save.rax;
}

PROBE(svm_ac_asid_isolation, "svm.asid.isolation", "SVM",
      "Guest (own page tables) with ASID 1 and TLB_CONTROL=1 reads VA mapped to page P1; the host "
      "remaps the guest PTE to P2 without any flush; the same guest run with ASID 2 and "
      "TLB_CONTROL=0 must read P2 (ASID 1's cached translation is not used for ASID 2); ASID 1 "
      "again without a flush may read either (noted)",
      "AMD APM Vol. 2 15.16, 15.16.1", "apm.15.16.1.asid-isolation")
{
    svm_require();
    if (svm_num_asids() < 3)
        skip("CPUID 0x8000000A EBX = %u ASIDs: no ASID 2", svm_num_asids());
    uint64_t va = svm_unmapped_address();
    uint64_t *p1 = alloc_page(), *p2 = alloc_page(), *pte;
    p1[0] = 1;
    p2[0] = 2;
    struct svm_vcpu v;
    svm_vcpu_init(&v, asid_read, va);
    v.vmcb->save.cr3 = asid_tables(va, &pte);
    *pte = A(p1) | 3;
    check_eq("ASID 1 read after a flush (P1)",
             read_as(&v, 1, TLB_CONTROL_FLUSH_ALL, va, "ASID 1, TLB_CONTROL=1"), 1);
    *pte = A(p2) | 3;
    check_eq("ASID 2 read after the remap, no flush (P2)",
             read_as(&v, 2, TLB_CONTROL_DO_NOTHING, va, "ASID 2, TLB_CONTROL=0"), 2);
    uint64_t again = read_as(&v, 1, TLB_CONTROL_DO_NOTHING, va, "ASID 1 again, TLB_CONTROL=0");
    note("ASID 1 again without a flush: %llu (%s)", (unsigned long long)again,
         again == 1 ? "its stale entry" : "a fresh walk");
}

PROBE(svm_ac_clean_new_vmcb, "svm.features.vmcb_clean_other_vmcb", "VMCB clean",
      "With CPUID 0x8000000A EDX.VmcbClean[5]=1: VMRUN of VMCB A (CPUID not intercepted), then "
      "of VMCB B (another page, CPUID intercepted) with every clean bit set: B's state is loaded "
      "(exit 0x72); then A again with every clean bit set: A's state is loaded (the guest's CPUID "
      "runs, VMMCALL): a VMCB other than the last one is reloaded whatever its clean bits say",
      "AMD APM Vol. 2 15.15.1", "apm.15.15.clean-new-vmcb")
{
    svm_require();
    if (!svm_has(SVM_FEAT_VMCB_CLEAN))
        skip("CPUID 0x8000000A EDX.VmcbClean[5]=0");
    struct svm_vcpu a, b;
    svm_vcpu_init(&a, (svm_guest_fn)(uintptr_t)svm_i_cpuid, 0);
    svm_vcpu_init(&b, (svm_guest_fn)(uintptr_t)svm_i_cpuid, 0);
    b.vmcb->control.intercept_misc1 |= SVM_INTERCEPT_CPUID;
    a.vmcb->save.rax = 0;
    a.regs.rcx = 0;
    a.vmcb->control.clean = 0;
    uint64_t code = svm_run(&a);
    if (!svm_check_exit(&a, code, SVM_EXIT_VMMCALL, "VMCB A, CPUID not intercepted"))
        return;
    b.vmcb->save.rax = 0;
    b.regs.rcx = 0;
    b.vmcb->control.clean = 0xffffffffu;
    code = svm_run(&b);
    if (!svm_check_exit(&b, code, SVM_EXIT_CPUID, "VMCB B (CPUID intercepted), all clean bits set"))
        return;
    svm_vcpu_set_entry(&a, (svm_guest_fn)(uintptr_t)svm_i_cpuid, 0);
    a.vmcb->save.rax = 0;
    a.regs.rcx = 0;
    a.vmcb->control.clean = 0xffffffffu;
    code = svm_run(&a);
    svm_check_exit(&a, code, SVM_EXIT_VMMCALL, "VMCB A again, all clean bits set");
}
