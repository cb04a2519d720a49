/* SPDX-License-Identifier: MIT */
/*
 * nvct: nested page tables for SVM probes (AMD APM Vol. 2 15.25). An
 * identity map of guest-physical 0..4 GiB with 2 MiB (or 1 GiB) pages,
 * every entry P|RW|US (nested walks are user accesses, 15.25.5), and a
 * helper that splits one 2 MiB page into 4 KiB pages so that a probe can
 * change the nested PTE of a single page.
 */
#include "nvct.h"
#include "svm.h"

#define PTE_ADDR 0x000ffffffffff000ull

uint64_t npt_build(struct npt *n, bool gib_pages)
{
    memset(n, 0, sizeof(*n));
    n->pml4 = alloc_page();
    n->pdpt = alloc_page();
    n->pml4[0] = (uint64_t)(uintptr_t)n->pdpt | NPT_P | NPT_RW | NPT_US;
    for (unsigned g = 0; g < 4; g++) {
        if (gib_pages) {
            n->pdpt[g] = ((uint64_t)g << 30) | NPT_P | NPT_RW | NPT_US | NPT_PS;
            continue;
        }
        n->pd[g] = alloc_page();
        n->pdpt[g] = (uint64_t)(uintptr_t)n->pd[g] | NPT_P | NPT_RW | NPT_US;
        for (unsigned i = 0; i < 512; i++)
            n->pd[g][i] =
                ((uint64_t)g << 30) + ((uint64_t)i << 21) + (NPT_P | NPT_RW | NPT_US | NPT_PS);
    }
    return (uint64_t)(uintptr_t)n->pml4;
}

uint64_t *npt_pde(struct npt *n, uint64_t gpa)
{
    if (gpa >= (4ull << 30) || !n->pd[gpa >> 30])
        error("npt_pde(%#llx): not a 2 MiB-mapped address", (unsigned long long)gpa);
    return &n->pd[gpa >> 30][(gpa >> 21) & 511];
}

uint64_t *npt_pte(struct npt *n, uint64_t gpa)
{
    uint64_t *pde = npt_pde(n, gpa);
    if (*pde & NPT_PS) {
        uint64_t *pt = alloc_page();
        uint64_t base = *pde & 0x000fffffffe00000ull;
        for (unsigned i = 0; i < 512; i++)
            pt[i] = (base + ((uint64_t)i << 12)) | NPT_P | NPT_RW | NPT_US;
        *pde = (uint64_t)(uintptr_t)pt | NPT_P | NPT_RW | NPT_US;
    }
    uint64_t *pt = (uint64_t *)(uintptr_t)(*pde & PTE_ADDR);
    return &pt[(gpa >> 12) & 511];
}

void svm_npt_enable(struct svm_vcpu *v, struct npt *n)
{
    v->vmcb->control.nested_ctl |= SVM_NESTED_CTL_NP_ENABLE;
    v->vmcb->control.nested_cr3 = (uint64_t)(uintptr_t)n->pml4;
    v->vmcb->control.tlb_control = TLB_CONTROL_FLUSH_ALL;
}

void svm_require_npt(void)
{
    svm_require();
    if (!svm_has(SVM_FEAT_NP))
        skip("CPUID 0x8000000A EDX.NP[0]=0");
}
