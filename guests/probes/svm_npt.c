/* SPDX-License-Identifier: MIT */
/*
 * SVM nested paging (AMD APM Vol. 2 15.25): translation through the nested
 * page tables, #NPF (exit 0x400) with EXITINFO1 = a #PF-style error code
 * plus bit 32 (fault on the final guest-physical address) or bit 33 (fault
 * on a guest page-table access) and EXITINFO2 = the guest-physical address
 * (15.25.6), accessed/dirty bits, large pages, the guest PAT (15.25.8)
 * and TLB control.
 *
 * The tables (lib/npt.c) map guest-physical 0..4 GiB to the same host
 * addresses, so the default guest (which shares the kernel's page tables)
 * runs unchanged; a probe then edits the nested entry of one page. Every
 * nested entry has U/S=1: nested walks are user accesses (15.25.5).
 */
#include "nvct.h"
#include "svm.h"
#include "guests_svm.h"

#define NPF_FINAL (SVM_NPF_GUEST_FINAL | SVM_NPF_US)

static uint64_t guest_read(uint64_t addr) { return *(volatile uint64_t *)(uintptr_t)addr; }

struct npt_vcpu {
    struct svm_vcpu v;
    struct npt n;
};

static void npt_vcpu_init(struct npt_vcpu *nv, svm_guest_fn fn, uint64_t arg, bool gib)
{
    svm_vcpu_init(&nv->v, fn, arg);
    npt_build(&nv->n, gib);
    svm_npt_enable(&nv->v, &nv->n);
}

static bool expect_npf(struct svm_vcpu *v, const char *site, uint64_t info1, uint64_t gpa,
                       const char *what)
{
    uint64_t code = svm_run(v);
    if (!svm_check_exit(v, code, SVM_EXIT_NPF, what))
        return false;
    check(v->vmcb->save.rip == A(site), "%s: VMCB RIP %#llx, want %#llx (the faulting MOV)", what,
          (unsigned long long)v->vmcb->save.rip, (unsigned long long)A(site));
    check(v->vmcb->control.exit_info_1 == info1, "%s: EXITINFO1 %#llx, want %#llx", what,
          (unsigned long long)v->vmcb->control.exit_info_1, (unsigned long long)info1);
    check(v->vmcb->control.exit_info_2 == gpa,
          "%s: EXITINFO2 %#llx, want the guest-physical address %#llx", what,
          (unsigned long long)v->vmcb->control.exit_info_2, (unsigned long long)gpa);
    return true;
}

static bool expect_vmmcall(struct svm_vcpu *v, const char *what)
{
    uint64_t code = svm_run(v);
    return svm_check_exit(v, code, SVM_EXIT_VMMCALL, what);
}

PROBE(svm_npt_basic, "svm.npt.basic", "NPT",
      "NP enabled, nested map identity except guest-physical page P1 -> host page P2: the guest "
      "reads P1 and gets P2's value, its write to P1+8 lands in P2; with NP disabled the same read "
      "returns P1's value",
      "AMD APM Vol. 2 15.25.1, 15.25.3, 15.25.4", "apm.15.25.3.np-enable",
      "apm.15.25.4.guest-cr3-gpa")
{
    svm_require_npt();
    uint64_t *p1 = alloc_page(), *p2 = alloc_page();
    p1[0] = 0x1111111111111111ull;
    p2[0] = 0x2222222222222222ull;
    struct npt_vcpu nv;
    npt_vcpu_init(&nv, guest_read, A(p1), false);
    *npt_pte(&nv.n, A(p1)) = A(p2) | NPT_P | NPT_RW | NPT_US;
    if (!expect_vmmcall(&nv.v, "guest read of P1 through the nested map"))
        return;
    check_eq("guest read of P1 (nested -> P2)", nv.v.vmcb->save.rax, p2[0]);

    svm_vcpu_set_entry(&nv.v, (svm_guest_fn)(uintptr_t)svm_i_pf_read, 0);
    nv.v.regs.rbx = A(p1);
    if (!expect_vmmcall(&nv.v, "guest read and write of P1"))
        return;
    check_eq("host P2[1] after the guest's write to P1+8", p2[1], p2[0]);
    check_eq("host P1[1] (untouched)", p1[1], 0);

    svm_vcpu_set_entry(&nv.v, guest_read, A(p1));
    nv.v.vmcb->control.nested_ctl = 0;
    if (!expect_vmmcall(&nv.v, "guest read of P1 with NP disabled"))
        return;
    check_eq("guest read of P1 (NP disabled)", nv.v.vmcb->save.rax, p1[0]);
}

PROBE(svm_npt_not_present, "svm.npt.not_present", "NPT",
      "Nested PTE of page P not present: guest read of P+0x18 exits 0x400 (#NPF) at the MOV with "
      "EXITINFO1 = US|bit 32 (0x100000004) and EXITINFO2 = P+0x18; with the entry present again "
      "the resumed MOV completes and reaches VMMCALL",
      "AMD APM Vol. 2 15.25.6", "apm.15.25.6.npf-not-present", "apm.15.25.6.npf-exitinfo2")
{
    svm_require_npt();
    uint64_t *p = alloc_page();
    struct npt_vcpu nv;
    npt_vcpu_init(&nv, (svm_guest_fn)(uintptr_t)svm_i_pf_read, 0, false);
    uint64_t *pte = npt_pte(&nv.n, A(p));
    uint64_t good = *pte;
    *pte = 0;
    nv.v.regs.rbx = A(p) + 0x18;
    if (!expect_npf(&nv.v, svm_i_pf_read, NPF_FINAL, A(p) + 0x18, "read of a not-present page"))
        return;
    *pte = good;
    expect_vmmcall(&nv.v, "the MOV resumed with the nested entry present");
}

PROBE(svm_npt_write, "svm.npt.write", "NPT",
      "Nested PTE of page P present, RW=0: the guest's read of P succeeds, its write to P+8 exits "
      "0x400 at the MOV with EXITINFO1 = P|RW|US|bit 32 (0x100000007), EXITINFO2 = P+8; P is not "
      "modified",
      "AMD APM Vol. 2 15.25.6", "apm.15.25.6.npf-write")
{
    svm_require_npt();
    uint64_t *p = alloc_page();
    p[0] = 0xabcdef;
    struct npt_vcpu nv;
    npt_vcpu_init(&nv, (svm_guest_fn)(uintptr_t)svm_i_pf_read, 0, false);
    *npt_pte(&nv.n, A(p)) &= ~NPT_RW;
    nv.v.regs.rbx = A(p);
    if (!expect_npf(&nv.v, svm_i_pf_write, NPF_FINAL | SVM_NPF_P | SVM_NPF_RW, A(p) + 8,
                    "write to a read-only page"))
        return;
    check_eq("guest RAX after the read of P", nv.v.vmcb->save.rax, 0xabcdef);
    check_eq("P[1] after the faulting write", p[1], 0);
}

PROBE(svm_npt_nx, "svm.npt.nx", "NPT",
      "Host EFER.NXE=1, nested PTE of a code page P with NX=1: a guest jump to P (VMMCALL there) "
      "exits 0x400 with RIP = P, EXITINFO1 = P|ID|US|bit 32 (0x100000015), EXITINFO2 = P; with NX "
      "clear the guest executes the VMMCALL at P",
      "AMD APM Vol. 2 15.25.6, 15.25.7", "apm.15.25.6.npf-nx", "apm.15.25.7.attributes")
{
    svm_require_npt();
    if (!(cpuid(0x80000001, 0).d & BIT(20)))
        skip("CPUID 0x80000001 EDX.NX[20]=0");
    if (!(rdmsr(MSR_EFER) & EFER_NXE))
        wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_NXE); /* the runner restores EFER */
    uint8_t *p = alloc_page();
    static const uint8_t code[] = {0x0f, 0x01, 0xd9, 0x0f, 0x0b}; /* vmmcall; ud2 */
    memcpy(p, code, sizeof(code));
    struct npt_vcpu nv;
    npt_vcpu_init(&nv, (svm_guest_fn)(uintptr_t)p, 0, false);
    uint64_t *pte = npt_pte(&nv.n, A(p));
    *pte |= NPT_NX;
    if (!expect_npf(&nv.v, (const char *)p, NPF_FINAL | SVM_NPF_P | SVM_NPF_ID, A(p),
                    "fetch from an NX page"))
        return;
    *pte &= ~NPT_NX;
    if (!expect_vmmcall(&nv.v, "fetch with NX clear"))
        return;
    check_eq("VMMCALL at P: VMCB RIP", nv.v.vmcb->save.rip, A(p));
}

PROBE(svm_npt_rsvd, "svm.npt.rsvd", "NPT",
      "Nested PTE of page P with bit MAXPHYADDR set (reserved, MAXPHYADDR < 52): guest read of P "
      "exits 0x400 with EXITINFO1 = P|RSV|US|bit 32 (0x10000000D), EXITINFO2 = P",
      "AMD APM Vol. 2 15.25.6", "apm.15.25.6.npf-rsvd-pte")
{
    svm_require_npt();
    unsigned bits = cpu_phys_addr_bits();
    if (bits >= 52)
        skip("MAXPHYADDR = 52 (CPUID 0x80000008 EAX[7:0]): no reserved address bit in a PTE");
    uint64_t *p = alloc_page();
    struct npt_vcpu nv;
    npt_vcpu_init(&nv, (svm_guest_fn)(uintptr_t)svm_i_pf_read, 0, false);
    *npt_pte(&nv.n, A(p)) |= BIT(bits);
    nv.v.regs.rbx = A(p);
    expect_npf(&nv.v, svm_i_pf_read, NPF_FINAL | SVM_NPF_P | SVM_NPF_RSV, A(p),
               "read through a nested PTE with a reserved bit set");
}

PROBE(svm_npt_ad_bits, "svm.npt.ad_bits", "NPT",
      "Nested PTE of page P with A=0, D=0: after a guest read of P the entry has A=1, D=0; after a "
      "guest write to P it has D=1",
      "AMD APM Vol. 2 15.25.5, 15.25.6", "apm.15.25.5.ad-bits")
{
    svm_require_npt();
    uint64_t *p = alloc_page();
    struct npt_vcpu nv;
    npt_vcpu_init(&nv, guest_read, A(p), false);
    uint64_t *pte = npt_pte(&nv.n, A(p));
    *pte &= ~(NPT_A | NPT_D);
    if (!expect_vmmcall(&nv.v, "guest read of P"))
        return;
    check(*pte & NPT_A, "nested PTE after a guest read: %#llx, A=0", (unsigned long long)*pte);
    check(!(*pte & NPT_D), "nested PTE after a guest read: %#llx, D=1", (unsigned long long)*pte);
    svm_vcpu_set_entry(&nv.v, (svm_guest_fn)(uintptr_t)svm_i_pf_read, 0);
    nv.v.regs.rbx = A(p);
    if (!expect_vmmcall(&nv.v, "guest write to P"))
        return;
    check(*pte & NPT_D, "nested PTE after a guest write: %#llx, D=0", (unsigned long long)*pte);
}

/*
 * Large pages are checked on an alias, so that the guest's own page tables
 * (the kernel's, in the low 2 MiB/1 GiB regions) are not under the
 * read-only entry: guest-physical ALIAS_BASE + x maps to host x through a
 * large nested page, and the kernel's page tables map guest-linear
 * ALIAS_BASE + x to guest-physical ALIAS_BASE + x (identity, low 4 GiB).
 */
#define ALIAS_BASE 0xc0000000ull

PROBE(svm_npt_page_2m, "svm.npt.page_2m", "NPT",
      "Nested 2 MiB page (PDE with PS=1) mapping guest-physical 3 GiB + R to host R (R = the 2 MiB "
      "region of page P): the guest reads 3 GiB + P and gets P's value; with that PDE RW=0 its "
      "write to 3 GiB + P + 8 exits 0x400 with EXITINFO1 = P|RW|US|bit 32 (0x100000007), EXITINFO2 "
      "= 3 GiB + P + 8",
      "AMD APM Vol. 2 15.25.6, 5.3.4", "apm.15.25.5.large-pages")
{
    svm_require_npt();
    uint64_t *p = alloc_page();
    p[0] = 0x2020;
    struct npt_vcpu nv;
    npt_vcpu_init(&nv, guest_read, ALIAS_BASE + A(p), false);
    uint64_t *pde = npt_pde(&nv.n, ALIAS_BASE + A(p));
    *pde = (A(p) & ~0x1fffffull) | NPT_P | NPT_RW | NPT_US | NPT_PS;
    if (!expect_vmmcall(&nv.v, "guest read through a 2 MiB nested page"))
        return;
    check_eq("guest read of 3 GiB + P (2 MiB nested page -> P)", nv.v.vmcb->save.rax, 0x2020);
    *pde &= ~NPT_RW;
    svm_vcpu_set_entry(&nv.v, (svm_guest_fn)(uintptr_t)svm_i_pf_read, 0);
    nv.v.regs.rbx = ALIAS_BASE + A(p);
    expect_npf(&nv.v, svm_i_pf_write, NPF_FINAL | SVM_NPF_P | SVM_NPF_RW, ALIAS_BASE + A(p) + 8,
               "write into a read-only 2 MiB nested page");
    check_eq("P[1] after the faulting write", p[1], 0);
}

PROBE(svm_npt_page_1g, "svm.npt.page_1g", "NPT",
      "With CPUID 0x80000001 EDX.Page1GB[26]=1: nested tables of 1 GiB pages (PDPTE PS=1), the one "
      "for guest-physical 3 GiB mapping host 0: the guest reads 3 GiB + P and gets P's value; with "
      "that PDPTE RW=0 its write to 3 GiB + P + 8 exits 0x400 with EXITINFO1 = P|RW|US|bit 32 "
      "(0x100000007), EXITINFO2 = 3 GiB + P + 8",
      "AMD APM Vol. 2 15.25.6, 5.3.5", "apm.15.25.5.large-pages")
{
    svm_require_npt();
    if (!(cpuid(0x80000001, 0).d & BIT(26)))
        skip("CPUID 0x80000001 EDX.Page1GB[26]=0");
    uint64_t *p = alloc_page();
    p[0] = 0x1616;
    struct npt_vcpu nv;
    npt_vcpu_init(&nv, guest_read, ALIAS_BASE + A(p), true);
    nv.n.pdpt[ALIAS_BASE >> 30] = NPT_P | NPT_RW | NPT_US | NPT_PS; /* host 0 */
    if (!expect_vmmcall(&nv.v, "guest read through 1 GiB nested pages"))
        return;
    check_eq("guest read of 3 GiB + P (1 GiB nested page -> P)", nv.v.vmcb->save.rax, 0x1616);
    nv.n.pdpt[ALIAS_BASE >> 30] &= ~NPT_RW;
    svm_vcpu_set_entry(&nv.v, (svm_guest_fn)(uintptr_t)svm_i_pf_read, 0);
    nv.v.regs.rbx = ALIAS_BASE + A(p);
    expect_npf(&nv.v, svm_i_pf_write, NPF_FINAL | SVM_NPF_P | SVM_NPF_RW, ALIAS_BASE + A(p) + 8,
               "write into a read-only 1 GiB nested page");
    check_eq("P[1] after the faulting write", p[1], 0);
}

/* A guest CR3 of its own: a copy of the kernel's PML4 (the page a probe
 * can then hide from the guest in the nested tables). */
static uint64_t *guest_pml4_copy(void)
{
    uint64_t *pml4 = alloc_page();
    memcpy(pml4, (void *)(uintptr_t)(read_cr3() & 0x000ffffffffff000ull), 4096);
    return pml4;
}

PROBE(svm_npt_guest_walk, "svm.npt.guest_walk", "NPT",
      "Guest CR3 = a copy of the kernel's PML4 in page G, nested PTE of G not present (A=D=0): the "
      "guest's first fetch walks its tables and exits 0x400 with EXITINFO1 = bit 33 | US | RW "
      "(0x200000006: a guest page-table access, treated as a user data write) and EXITINFO2 in "
      "page G (the PML4 entry); with G present the guest runs to VMMCALL and G's nested PTE then "
      "has A=1 and D=1",
      "AMD APM Vol. 2 15.25.5, 15.25.6", "apm.15.25.6.npf-guest-walk",
      "apm.15.25.6.npf-guest-ad-write")
{
    svm_require_npt();
    uint64_t *g = guest_pml4_copy();
    struct npt_vcpu nv;
    npt_vcpu_init(&nv, (svm_guest_fn)(uintptr_t)guest_vmmcall, 0, false);
    nv.v.vmcb->save.cr3 = A(g);
    uint64_t *pte = npt_pte(&nv.n, A(g));
    uint64_t good = *pte;
    *pte = 0;
    uint64_t code = svm_run(&nv.v);
    if (!svm_check_exit(&nv.v, code, SVM_EXIT_NPF, "guest walk through a not-present PML4 page"))
        return;
    uint64_t i1 = nv.v.vmcb->control.exit_info_1, i2 = nv.v.vmcb->control.exit_info_2;
    check_eq("guest-walk #NPF: EXITINFO1", i1, SVM_NPF_GUEST_TABLE | SVM_NPF_US | SVM_NPF_RW);
    check((i2 & ~0xfffull) == A(g), "EXITINFO2 %#llx: not in the guest PML4 page %#llx",
          (unsigned long long)i2, (unsigned long long)A(g));
    uint64_t want = A(g) + 8 * ((A(guest_vmmcall) >> 39) & 511);
    if (i2 != want)
        note("EXITINFO2 %#llx, the PML4 entry for RIP is at %#llx", (unsigned long long)i2,
             (unsigned long long)want);
    check_eq("VMCB RIP (no instruction completed)", nv.v.vmcb->save.rip, A(guest_vmmcall));
    *pte = good & ~(NPT_A | NPT_D);
    if (!expect_vmmcall(&nv.v, "guest with its PML4 page present"))
        return;
    check((*pte & (NPT_A | NPT_D)) == (NPT_A | NPT_D),
          "nested PTE of the guest PML4 page after the walk: %#llx, want A=1 and D=1",
          (unsigned long long)*pte);
}

static uint64_t guest_pat_rw(uint64_t newval)
{
    uint64_t old = rdmsr(MSR_IA32_PAT);
    wrmsr(MSR_IA32_PAT, newval);
    return old;
}

PROBE(svm_npt_gpat, "svm.npt.gpat", "NPT",
      "NP enabled, VMCB G_PAT = 0x0007010600070106: guest RDMSR PAT returns G_PAT; the guest's "
      "WRMSR PAT of 0x0001040500010405 is in VMCB G_PAT after #VMEXIT and the host PAT is "
      "unchanged",
      "AMD APM Vol. 2 15.25.4, 15.25.8", "apm.15.25.4.gpat")
{
    svm_require_npt();
    const uint64_t gpat = 0x0007010600070106ull, newpat = 0x0001040500010405ull;
    uint64_t host = rdmsr(MSR_IA32_PAT);
    struct npt_vcpu nv;
    npt_vcpu_init(&nv, guest_pat_rw, newpat, false);
    nv.v.vmcb->save.g_pat = gpat;
    uint64_t code = svm_run(&nv.v);
    uint64_t after = rdmsr(MSR_IA32_PAT);
    if (after != host)
        wrmsr(MSR_IA32_PAT, host);
    if (!svm_check_exit(&nv.v, code, SVM_EXIT_VMMCALL, "guest PAT read/write"))
        return;
    check_eq("guest RDMSR PAT", nv.v.vmcb->save.rax, gpat);
    check_eq("VMCB G_PAT after the guest's WRMSR", nv.v.vmcb->save.g_pat, newpat);
    check_eq("host PAT after #VMEXIT", after, host);
}

PROBE(svm_npt_tlb_flush, "svm.npt.tlb_flush", "NPT",
      "Guest reads gPA P1 mapped to host P2; the host remaps P1 to P3 in the nested PTE: with "
      "TLB_CONTROL=0 the guest may see either page (noted); with TLB_CONTROL=1 (flush all) it must "
      "read P3's value",
      "AMD APM Vol. 2 15.16.1", "apm.15.16.1.tlb-control")
{
    svm_require_npt();
    uint64_t *p1 = alloc_page(), *p2 = alloc_page(), *p3 = alloc_page();
    p1[0] = 1;
    p2[0] = 2;
    p3[0] = 3;
    struct npt_vcpu nv;
    npt_vcpu_init(&nv, guest_read, A(p1), false);
    uint64_t *pte = npt_pte(&nv.n, A(p1));
    *pte = A(p2) | NPT_P | NPT_RW | NPT_US;
    if (!expect_vmmcall(&nv.v, "first read"))
        return;
    check_eq("first guest read (P2)", nv.v.vmcb->save.rax, 2);
    *pte = A(p3) | NPT_P | NPT_RW | NPT_US;
    nv.v.vmcb->control.tlb_control = TLB_CONTROL_DO_NOTHING;
    svm_vcpu_set_entry(&nv.v, guest_read, A(p1));
    if (!expect_vmmcall(&nv.v, "read after the remap, no flush"))
        return;
    note("read after the remap without a flush: %llu (%s)", (unsigned long long)nv.v.vmcb->save.rax,
         nv.v.vmcb->save.rax == 2 ? "stale TLB entry" : "fresh walk");
    nv.v.vmcb->control.tlb_control = TLB_CONTROL_FLUSH_ALL;
    svm_vcpu_set_entry(&nv.v, guest_read, A(p1));
    if (!expect_vmmcall(&nv.v, "read after TLB_CONTROL=1"))
        return;
    check_eq("guest read after TLB_CONTROL=1 (P3)", nv.v.vmcb->save.rax, 3);
}
