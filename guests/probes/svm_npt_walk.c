/* SPDX-License-Identifier: MIT */
/*
 * SVM nested paging at every level of the nested walk (AMD APM Vol. 2
 * 15.25.5, 15.25.6; the entry formats of 5.3 and 5.4): not-present
 * entries, reserved bits (#NPF with RSV), and the access rights each level
 * contributes (R/W, U/S: nested walks are user accesses; NX with the
 * host's EFER.NXE=1), in nPML4E, nPDPE, nPDE and nPTE, and in 2 MiB and
 * 1 GiB nested pages. svm_npt.c probes the nPTE level alone.
 *
 * Every probe uses one guest address far from the guest's own code, stack
 * and page tables, so that one nested entry at any level covers that
 * address only: guest-physical FAR + P, FAR = 512 GiB (nPML4 index 1),
 * where P is a host page below 1 GiB. The guest has page tables of its own
 * (a copy of the kernel's PML4 whose entry 1 maps linear FAR..FAR+1 GiB to
 * guest-physical FAR..FAR+1 GiB with 2 MiB pages), and the nested tables
 * map guest-physical FAR + P to host P through nPML4[1] -> nPDPT -> nPD ->
 * nPT (or through a 2 MiB / 1 GiB nested page). A read of FAR + P through
 * a faulting entry must exit 0x400 at the MOV with EXITINFO2 = FAR + P and
 * EXITINFO1 = the #PF-style error code | bit 32 (the final guest-physical
 * address); with the entry repaired the same MOV must read P's value.
 */
#include "nvct.h"
#include "svm.h"

#define FAR     (512ull << 30)
#define ADDR_M  0x000ffffffffff000ull
#define NPF_FIN SVM_NPF_GUEST_FINAL
#define ALL     (NPT_P | NPT_RW | NPT_US)

/* RBX = the address: read; VMMCALL. Write entry: write; VMMCALL. */
GUEST(svm_w_read, "mov (%rbx), %rax", "svm_w_read_end:", "vmmcall",
      "svm_w_write:", "mov %rax, 8(%rbx)", "svm_w_write_end:", "vmmcall", "ud2");
extern char svm_w_read_end[], svm_w_write[], svm_w_write_end[];

enum level { L_PML4E, L_PDPE, L_PDE, L_PTE, L_COUNT };
static const char *const level_name[L_COUNT] = {"nPML4E", "nPDPE", "nPDE", "nPTE"};

struct far {
    struct svm_vcpu v;
    struct npt n;
    uint64_t *npdpt, *npd, *npt; /* nested tables behind nPML4[1] */
    uint64_t *gpd;               /* the guest's PD of FAR..FAR+1 GiB (2 MiB pages) */
    uint64_t *page;              /* host page P */
    uint64_t gpa;                /* FAR + P: guest-linear = guest-physical */
};

static void far_init(struct far *f)
{
    svm_require_npt();
    if (cpu_phys_addr_bits() < 40)
        error("MAXPHYADDR %u: guest-physical 512 GiB + 1 GiB does not fit", cpu_phys_addr_bits());
    f->page = alloc_page();
    f->page[0] = 0x5151515151515151ull;
    f->gpa = FAR + A(f->page);
    if (A(f->page) >= (1ull << 30))
        error("page %#llx above 1 GiB", (unsigned long long)A(f->page));

    svm_vcpu_init(&f->v, (svm_guest_fn)(uintptr_t)svm_w_read, 0);
    f->v.regs.rbx = f->gpa;

    /* Guest tables: kernel PML4 copy, entry 1 -> PDPT -> PD of 2 MiB pages. */
    uint64_t *gpml4 = alloc_page(), *gpdpt = alloc_page(), *gpd = alloc_page();
    memcpy(gpml4, (void *)(uintptr_t)(read_cr3() & ADDR_M), 4096);
    gpml4[1] = A(gpdpt) | NPT_P | NPT_RW;
    gpdpt[0] = A(gpd) | NPT_P | NPT_RW;
    for (unsigned i = 0; i < 512; i++)
        gpd[i] = (FAR + ((uint64_t)i << 21)) | NPT_P | NPT_RW | NPT_PS;
    f->v.vmcb->save.cr3 = A(gpml4);
    f->gpd = gpd;

    /* Nested: identity 0..4 GiB, plus FAR + P -> P through 4 KiB pages. */
    npt_build(&f->n, false);
    f->npdpt = alloc_page();
    f->npd = alloc_page();
    f->npt = alloc_page();
    f->n.pml4[1] = A(f->npdpt) | ALL;
    f->npdpt[0] = A(f->npd) | ALL;
    f->npd[(A(f->page) >> 21) & 511] = A(f->npt) | ALL;
    f->npt[(A(f->page) >> 12) & 511] = A(f->page) | ALL;
    svm_npt_enable(&f->v, &f->n); /* TLB_CONTROL = flush all, on every VMRUN */
}

static uint64_t *far_entry(struct far *f, enum level l)
{
    switch (l) {
    case L_PML4E: return &f->n.pml4[1];
    case L_PDPE: return &f->npdpt[0];
    case L_PDE: return &f->npd[(A(f->page) >> 21) & 511];
    case L_PTE:
    case L_COUNT: break;
    }
    return &f->npt[(A(f->page) >> 12) & 511];
}

/* Runs the guest from `site` and expects #NPF there with info1 and the
 * address gpa. */
static bool far_npf(struct far *f, const void *site, uint64_t info1, uint64_t gpa, const char *what)
{
    f->v.vmcb->save.rip = A(site);
    uint64_t code = svm_run(&f->v);
    if (!svm_check_exit(&f->v, code, SVM_EXIT_NPF, what))
        return false;
    check(f->v.vmcb->save.rip == A(site), "%s: VMCB RIP %#llx, want %#llx (the faulting access)",
          what, (unsigned long long)f->v.vmcb->save.rip, (unsigned long long)A(site));
    check(f->v.vmcb->control.exit_info_1 == info1, "%s: EXITINFO1 %#llx, want %#llx", what,
          (unsigned long long)f->v.vmcb->control.exit_info_1, (unsigned long long)info1);
    check(f->v.vmcb->control.exit_info_2 == gpa,
          "%s: EXITINFO2 %#llx, want the guest-physical address %#llx", what,
          (unsigned long long)f->v.vmcb->control.exit_info_2, (unsigned long long)gpa);
    return true;
}

/* With the entries repaired: the read at FAR + P returns P's value. */
static void far_read_ok(struct far *f, const char *what)
{
    f->v.vmcb->save.rip = A(svm_w_read);
    f->v.vmcb->save.rax = 0;
    uint64_t code = svm_run(&f->v);
    if (!svm_check_exit(&f->v, code, SVM_EXIT_VMMCALL, what))
        return;
    check_eq(what, f->v.vmcb->save.rax, f->page[0]);
}

/* ---- not present ------------------------------------------------------------------ */

static void not_present(enum level l)
{
    struct far f;
    far_init(&f);
    far_read_ok(&f, "control read of FAR + P");
    uint64_t *e = far_entry(&f, l), good = *e;
    char what[80];
    snprintf(what, sizeof(what), "read through a not-present %s", level_name[l]);
    *e = 0;
    bool ok = far_npf(&f, svm_w_read, NPF_FIN | SVM_NPF_US, f.gpa, what);
    *e = good;
    if (ok)
        far_read_ok(&f, "the MOV resumed with the entry present");
}

#define NP_PROBE(fn_, id_, lvl_, name_, ...)                                                      \
    PROBE(fn_, id_, "NPT",                                                                        \
          "Guest read of guest-physical 512 GiB + P with the " name_ " of that address not "      \
          "present: exit 0x400 at the MOV, EXITINFO1 = US|bit 32 (0x100000004), EXITINFO2 = the " \
          "address; with the entry present again the MOV reads P's value",                        \
          "AMD APM Vol. 2 15.25.5, 15.25.6", __VA_ARGS__)                                         \
    {                                                                                             \
        not_present(lvl_);                                                                        \
    }

NP_PROBE(svm_nw_np_pml4e, "svm.npt.not_present_pml4e", L_PML4E, "nPML4E",
         "apm.15.25.6.npf-not-present", "apm.15.25.5.walk-levels")
NP_PROBE(svm_nw_np_pdpe, "svm.npt.not_present_pdpe", L_PDPE, "nPDPE", "apm.15.25.6.npf-not-present",
         "apm.15.25.5.walk-levels")
NP_PROBE(svm_nw_np_pde, "svm.npt.not_present_pde", L_PDE, "nPDE", "apm.15.25.6.npf-not-present",
         "apm.15.25.5.walk-levels")

/* ---- reserved bits -------------------------------------------------------------------- */

/* Each bit of mask set in turn in entry e (read of FAR + P must give #NPF
 * with P|RSV|US|bit 32), then the entry restored and the read repeated. */
static void rsvd_sweep(struct far *f, uint64_t *e, const char *name, uint64_t mask)
{
    uint64_t good = *e;
    char what[96];
    unsigned n = 0;
    for (unsigned b = 0; b < 64; b++) {
        if (!(mask & BIT(b)))
            continue;
        *e = good | BIT(b);
        snprintf(what, sizeof(what), "read through an %s with reserved bit %u set", name, b);
        far_npf(f, svm_w_read, NPF_FIN | SVM_NPF_RSV | SVM_NPF_P | SVM_NPF_US, f->gpa, what);
        *e = good;
        n++;
    }
    note("%s: %u reserved bits tried (mask %#llx)", name, n, (unsigned long long)mask);
    far_read_ok(f, "read with the entry restored");
}

/* Address bits MAXPHYADDR..51 of an entry. */
static uint64_t addr_rsvd(void)
{
    unsigned bits = cpu_phys_addr_bits();
    return bits >= 52 ? 0 : (BIT(52) - 1) & ~(BIT(bits) - 1);
}

PROBE(svm_nw_rsvd_pml4e, "svm.npt.rsvd_pml4e", "NPT",
      "nPML4E of guest-physical 512 GiB + P with each reserved bit set in turn (bit 7, PS, MBZ in "
      "a PML4E; each address bit from MAXPHYADDR to 51): every guest read exits 0x400 at the MOV "
      "with EXITINFO1 = P|RSV|US|bit 32 (0x10000000D) and EXITINFO2 = the address; restored, "
      "the read returns P's value",
      "AMD APM Vol. 2 15.25.5, 15.25.6, 5.3.3", "apm.15.25.6.npf-rsvd-pml4")
{
    struct far f;
    far_init(&f);
    far_read_ok(&f, "control read of FAR + P");
    rsvd_sweep(&f, far_entry(&f, L_PML4E), "nPML4E", BIT(7) | addr_rsvd());
}

PROBE(svm_nw_rsvd_pdpe, "svm.npt.rsvd_pdpe", "NPT",
      "nPDPE (pointing to an nPD) of guest-physical 512 GiB + P with each address bit from "
      "MAXPHYADDR to 51 set in turn (reserved): every guest read exits 0x400 at the MOV with "
      "EXITINFO1 = P|RSV|US|bit 32 (0x10000000D) and EXITINFO2 = the address; restored, the read "
      "returns P's value",
      "AMD APM Vol. 2 15.25.5, 15.25.6, 5.3.3", "apm.15.25.6.npf-rsvd-pdpe")
{
    struct far f;
    far_init(&f);
    if (!addr_rsvd())
        skip("MAXPHYADDR = 52 (CPUID 0x80000008 EAX[7:0]): no reserved address bit");
    far_read_ok(&f, "control read of FAR + P");
    rsvd_sweep(&f, far_entry(&f, L_PDPE), "nPDPE", addr_rsvd());
}

PROBE(svm_nw_rsvd_pde, "svm.npt.rsvd_pde", "NPT",
      "nPDE (pointing to an nPT) of guest-physical 512 GiB + P with each address bit from "
      "MAXPHYADDR to 51 set in turn (reserved): every guest read exits 0x400 at the MOV with "
      "EXITINFO1 = P|RSV|US|bit 32 (0x10000000D) and EXITINFO2 = the address; restored, the read "
      "returns P's value",
      "AMD APM Vol. 2 15.25.5, 15.25.6, 5.3.3", "apm.15.25.6.npf-rsvd-pde")
{
    struct far f;
    far_init(&f);
    if (!addr_rsvd())
        skip("MAXPHYADDR = 52 (CPUID 0x80000008 EAX[7:0]): no reserved address bit");
    far_read_ok(&f, "control read of FAR + P");
    rsvd_sweep(&f, far_entry(&f, L_PDE), "nPDE", addr_rsvd());
}

PROBE(svm_nw_rsvd_pte_far, "svm.npt.rsvd_pte_bits", "NPT",
      "nPTE of guest-physical 512 GiB + P with each address bit from MAXPHYADDR to 51 set in turn "
      "(reserved): every guest read exits 0x400 at the MOV with EXITINFO1 = P|RSV|US|bit 32 "
      "(0x10000000D) and EXITINFO2 = the address; restored, the read returns P's value",
      "AMD APM Vol. 2 15.25.5, 15.25.6, 5.4.1", "apm.15.25.6.npf-rsvd-pte")
{
    struct far f;
    far_init(&f);
    if (!addr_rsvd())
        skip("MAXPHYADDR = 52 (CPUID 0x80000008 EAX[7:0]): no reserved address bit");
    far_read_ok(&f, "control read of FAR + P");
    rsvd_sweep(&f, far_entry(&f, L_PTE), "nPTE", addr_rsvd());
}

/* The nPDE of FAR + P as a 2 MiB page mapping P's 2 MiB region. */
static uint64_t *far_pde_2m(struct far *f)
{
    uint64_t *e = far_entry(f, L_PDE);
    *e = (A(f->page) & ~0x1fffffull) | ALL | NPT_PS;
    return e;
}

PROBE(svm_nw_rsvd_pde_2m, "svm.npt.rsvd_pde_2m", "NPT",
      "nPDE of guest-physical 512 GiB + P as a 2 MiB page (PS=1) mapping P's 2 MiB region, with "
      "each reserved bit set in turn (bits 20:13, and each address bit from MAXPHYADDR to 51): "
      "every guest read exits 0x400 at the MOV with EXITINFO1 = P|RSV|US|bit 32 (0x10000000D) "
      "and EXITINFO2 = the address; restored, the read returns P's value",
      "AMD APM Vol. 2 15.25.5, 15.25.6, 5.3.4", "apm.15.25.6.npf-rsvd-pde",
      "apm.15.25.5.large-pages")
{
    struct far f;
    far_init(&f);
    uint64_t *e = far_pde_2m(&f);
    far_read_ok(&f, "control read of FAR + P through a 2 MiB nested page");
    rsvd_sweep(&f, e, "nPDE (2 MiB page)", 0x1fe000ull | addr_rsvd());
}

PROBE(svm_nw_rsvd_pdpe_1g, "svm.npt.rsvd_pdpe_1g", "NPT",
      "With CPUID 0x80000001 EDX.Page1GB[26]=1: nPDPE of guest-physical 512 GiB + P as a 1 GiB "
      "page (PS=1) mapping host 0..1 GiB, with each reserved bit set in turn (bits 29:13, and "
      "each address bit from MAXPHYADDR to 51): every guest read exits 0x400 at the MOV with "
      "EXITINFO1 = P|RSV|US|bit 32 (0x10000000D) and EXITINFO2 = the address; restored, the read "
      "returns P's value",
      "AMD APM Vol. 2 15.25.5, 15.25.6, 5.3.5", "apm.15.25.6.npf-rsvd-pdpe",
      "apm.15.25.5.large-pages")
{
    struct far f;
    far_init(&f);
    if (!(cpuid(0x80000001, 0).d & BIT(26)))
        skip("CPUID 0x80000001 EDX.Page1GB[26]=0");
    uint64_t *e = far_entry(&f, L_PDPE);
    *e = ALL | NPT_PS; /* host 0 */
    far_read_ok(&f, "control read of FAR + P through a 1 GiB nested page");
    rsvd_sweep(&f, e, "nPDPE (1 GiB page)", 0x3fffe000ull | addr_rsvd());
}

PROBE(svm_nw_pdpe_ps_no_1g, "svm.npt.rsvd_pdpe_ps", "NPT",
      "With CPUID 0x80000001 EDX.Page1GB[26]=0: an nPDPE with PS=1 (no 1 GiB pages: bit 7 is "
      "reserved) makes a guest read of 512 GiB + P exit 0x400 at the MOV with EXITINFO1 = "
      "P|RSV|US|bit 32 (0x10000000D), EXITINFO2 = the address",
      "AMD APM Vol. 2 15.25.6, 5.3.3", "apm.15.25.6.npf-rsvd-pdpe")
{
    struct far f;
    far_init(&f);
    if (cpuid(0x80000001, 0).d & BIT(26))
        skip("CPUID 0x80000001 EDX.Page1GB[26]=1: PS=1 in a PDPE is a 1 GiB page, not reserved");
    far_read_ok(&f, "control read of FAR + P");
    uint64_t *e = far_entry(&f, L_PDPE), good = *e;
    *e = ALL | NPT_PS;
    far_npf(&f, svm_w_read, NPF_FIN | SVM_NPF_RSV | SVM_NPF_P | SVM_NPF_US, f.gpa,
            "read through an nPDPE with PS=1 without 1 GiB pages");
    *e = good;
}

/* ---- access rights at each level ------------------------------------------------------- */

static void rw_level(enum level l)
{
    struct far f;
    far_init(&f);
    far_read_ok(&f, "control read of FAR + P");
    uint64_t *e = far_entry(&f, l);
    *e &= ~NPT_RW;
    char what[80];
    snprintf(what, sizeof(what), "read through an %s with R/W=0", level_name[l]);
    far_read_ok(&f, what);
    snprintf(what, sizeof(what), "write through an %s with R/W=0", level_name[l]);
    if (far_npf(&f, svm_w_write, NPF_FIN | SVM_NPF_P | SVM_NPF_RW | SVM_NPF_US, f.gpa + 8, what))
        check_eq("P[1] after the faulting write", f.page[1], 0);
    *e |= NPT_RW;
    f.v.vmcb->save.rip = A(svm_w_write);
    uint64_t code = svm_run(&f.v);
    if (svm_check_exit(&f.v, code, SVM_EXIT_VMMCALL, "the write with R/W=1 again"))
        check_eq("P[1] after the write", f.page[1], f.v.vmcb->save.rax);
}

#define RW_PROBE(fn_, id_, lvl_, name_, ...)                                                    \
    PROBE(fn_, id_, "NPT",                                                                      \
          "The " name_ " of guest-physical 512 GiB + P with R/W=0 (all other levels R/W=1): a " \
          "guest read of the address succeeds, a guest write to it + 8 exits 0x400 at the MOV " \
          "with EXITINFO1 = P|RW|US|bit 32 (0x100000007), EXITINFO2 = the address + 8, P "      \
          "unchanged; with R/W=1 again the write lands in P",                                   \
          "AMD APM Vol. 2 15.25.5, 15.25.6, 5.6.1", __VA_ARGS__)                                \
    {                                                                                           \
        rw_level(lvl_);                                                                         \
    }

RW_PROBE(svm_nw_rw_pml4e, "svm.npt.write_pml4e", L_PML4E, "nPML4E", "apm.15.25.6.npf-write",
         "apm.15.25.7.attributes")
RW_PROBE(svm_nw_rw_pdpe, "svm.npt.write_pdpe", L_PDPE, "nPDPE", "apm.15.25.6.npf-write",
         "apm.15.25.7.attributes")
RW_PROBE(svm_nw_rw_pde, "svm.npt.write_pde", L_PDE, "nPDE", "apm.15.25.6.npf-write",
         "apm.15.25.7.attributes")

static void us_level(enum level l)
{
    struct far f;
    far_init(&f);
    far_read_ok(&f, "control read of FAR + P");
    uint64_t *e = far_entry(&f, l);
    *e &= ~NPT_US;
    char what[80];
    snprintf(what, sizeof(what), "CPL-0 read through an %s with U/S=0", level_name[l]);
    bool ok = far_npf(&f, svm_w_read, NPF_FIN | SVM_NPF_P | SVM_NPF_US, f.gpa, what);
    *e |= NPT_US;
    if (ok)
        far_read_ok(&f, "the MOV resumed with U/S=1");
}

#define US_PROBE(fn_, id_, lvl_, name_, ...)                                                      \
    PROBE(fn_, id_, "NPT",                                                                        \
          "The " name_ " of guest-physical 512 GiB + P with U/S=0: a guest read at CPL 0 exits "  \
          "0x400 at the MOV with EXITINFO1 = P|US|bit 32 (0x100000005), EXITINFO2 = the address " \
          "(nested walks are user accesses, whatever the guest CPL); with U/S=1 again the MOV "   \
          "reads P's value",                                                                      \
          "AMD APM Vol. 2 15.25.5, 15.25.6", __VA_ARGS__)                                         \
    {                                                                                             \
        us_level(lvl_);                                                                           \
    }

US_PROBE(svm_nw_us_pml4e, "svm.npt.user_pml4e", L_PML4E, "nPML4E", "apm.15.25.6.npf-user")
US_PROBE(svm_nw_us_pdpe, "svm.npt.user_pdpe", L_PDPE, "nPDPE", "apm.15.25.6.npf-user")
US_PROBE(svm_nw_us_pde, "svm.npt.user_pde", L_PDE, "nPDE", "apm.15.25.6.npf-user")
US_PROBE(svm_nw_us_pte, "svm.npt.user_pte", L_PTE, "nPTE", "apm.15.25.6.npf-user")

static const uint8_t vmmcall_ud2[] = {0x0f, 0x01, 0xd9, 0x0f, 0x0b};

static void require_nx(void)
{
    if (!(cpuid(0x80000001, 0).d & BIT(20)))
        skip("CPUID 0x80000001 EDX.NX[20]=0");
    wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_NXE); /* the runner restores EFER */
}

/* Guest jumps to FAR + P (VMMCALL there) with NX set in one entry. */
static void nx_entry(struct far *f, uint64_t *e, const char *name)
{
    memcpy(f->page, vmmcall_ud2, sizeof(vmmcall_ud2));
    char what[80];
    snprintf(what, sizeof(what), "fetch through an %s with NX=1", name);
    *e |= NPT_NX;
    bool ok = far_npf(f, (const void *)(uintptr_t)f->gpa,
                      NPF_FIN | SVM_NPF_P | SVM_NPF_ID | SVM_NPF_US, f->gpa, what);
    *e &= ~NPT_NX;
    if (!ok)
        return;
    f->v.vmcb->save.rip = f->gpa;
    uint64_t code = svm_run(&f->v);
    if (svm_check_exit(&f->v, code, SVM_EXIT_VMMCALL, "fetch with NX clear"))
        check_eq("the VMMCALL at 512 GiB + P: VMCB RIP", f->v.vmcb->save.rip, f->gpa);
}

static void nx_level(enum level l)
{
    struct far f;
    far_init(&f);
    require_nx();
    nx_entry(&f, far_entry(&f, l), level_name[l]);
}

#define NX_PROBE(fn_, id_, lvl_, name_, ...)                                                   \
    PROBE(fn_, id_, "NPT",                                                                     \
          "Host EFER.NXE=1, the " name_ " of guest-physical 512 GiB + P (code: VMMCALL) with " \
          "NX=1: a guest jump there exits 0x400 with RIP = the address, EXITINFO1 = "          \
          "P|ID|US|bit 32 (0x100000015), EXITINFO2 = the address; with NX clear the guest "    \
          "executes the VMMCALL there",                                                        \
          "AMD APM Vol. 2 15.25.5, 15.25.6, 5.6.3", __VA_ARGS__)                               \
    {                                                                                          \
        nx_level(lvl_);                                                                        \
    }

NX_PROBE(svm_nw_nx_pml4e, "svm.npt.nx_pml4e", L_PML4E, "nPML4E", "apm.15.25.6.npf-nx",
         "apm.15.25.7.attributes")
NX_PROBE(svm_nw_nx_pdpe, "svm.npt.nx_pdpe", L_PDPE, "nPDPE", "apm.15.25.6.npf-nx",
         "apm.15.25.7.attributes")
NX_PROBE(svm_nw_nx_pde, "svm.npt.nx_pde", L_PDE, "nPDE", "apm.15.25.6.npf-nx",
         "apm.15.25.7.attributes")

PROBE(svm_nw_nx_2m, "svm.npt.nx_2m", "NPT",
      "Host EFER.NXE=1, guest-physical 512 GiB + P (code: VMMCALL) mapped by a 2 MiB nested page "
      "with NX=1: a guest jump there exits 0x400 with RIP = the address, EXITINFO1 = "
      "P|ID|US|bit 32 (0x100000015), EXITINFO2 = the address; with NX clear the guest executes "
      "the VMMCALL there",
      "AMD APM Vol. 2 15.25.6, 5.3.4", "apm.15.25.6.npf-nx", "apm.15.25.5.large-pages")
{
    struct far f;
    far_init(&f);
    require_nx();
    nx_entry(&f, far_pde_2m(&f), "nPDE (2 MiB page)");
}

PROBE(svm_nw_write_2m_pml4e_ok, "svm.npt.write_1g", "NPT",
      "With CPUID 0x80000001 EDX.Page1GB[26]=1: guest-physical 512 GiB + P mapped by a 1 GiB "
      "nested page (nPDPE PS=1, host 0) with R/W=0: a guest read returns P's value, a write to "
      "the address + 8 exits 0x400 at the MOV with EXITINFO1 = P|RW|US|bit 32 (0x100000007), "
      "EXITINFO2 = the address + 8, P unchanged",
      "AMD APM Vol. 2 15.25.6, 5.3.5", "apm.15.25.6.npf-write", "apm.15.25.5.large-pages")
{
    struct far f;
    far_init(&f);
    if (!(cpuid(0x80000001, 0).d & BIT(26)))
        skip("CPUID 0x80000001 EDX.Page1GB[26]=0");
    uint64_t *e = far_entry(&f, L_PDPE);
    *e = NPT_P | NPT_US | NPT_PS; /* host 0, read-only */
    far_read_ok(&f, "read through a read-only 1 GiB nested page");
    if (far_npf(&f, svm_w_write, NPF_FIN | SVM_NPF_P | SVM_NPF_RW | SVM_NPF_US, f.gpa + 8,
                "write through a read-only 1 GiB nested page"))
        check_eq("P[1] after the faulting write", f.page[1], 0);
}

PROBE(svm_nw_ad_levels, "svm.npt.ad_levels", "NPT",
      "Nested entries of guest-physical 512 GiB + P with A=0 at every level and D=0 in the nPTE: "
      "after a guest read every level has A=1 and the nPTE D=0; after a guest write the nPTE has "
      "D=1",
      "AMD APM Vol. 2 15.25.5, 5.4.2", "apm.15.25.5.ad-bits")
{
    struct far f;
    far_init(&f);
    for (unsigned l = 0; l < L_COUNT; l++)
        *far_entry(&f, (enum level)l) &= ~(NPT_A | NPT_D);
    far_read_ok(&f, "guest read of FAR + P");
    for (unsigned l = 0; l < L_COUNT; l++)
        check(*far_entry(&f, (enum level)l) & NPT_A, "%s after a guest read: %#llx, A=0",
              level_name[l], (unsigned long long)*far_entry(&f, (enum level)l));
    check(!(*far_entry(&f, L_PTE) & NPT_D), "nPTE after a guest read: %#llx, D=1",
          (unsigned long long)*far_entry(&f, L_PTE));
    f.v.vmcb->save.rip = A(svm_w_write);
    uint64_t code = svm_run(&f.v);
    if (svm_check_exit(&f.v, code, SVM_EXIT_VMMCALL, "guest write of FAR + P + 8"))
        check(*far_entry(&f, L_PTE) & NPT_D, "nPTE after a guest write: %#llx, D=0",
              (unsigned long long)*far_entry(&f, L_PTE));
}

PROBE(svm_nw_gmet, "svm.npt.gmet", "GMET",
      "With CPUID 0x8000000A EDX.GMET[17]=1 and NP_ENABLE and GMET_ENABLE (nested control bit 3) "
      "set: a guest fetch at CPL 0 from guest-physical 512 GiB + P, whose nested entries all have "
      "U/S=1 (a user page for GMET), exits 0x400 with RIP = the address, EXITINFO1 with ID (bit 4) "
      "and bit 32 set, EXITINFO2 = the address; a data read of the same page at CPL 0 succeeds",
      "AMD APM Vol. 2 15.25.6, 15.25.8 (GMET)", "apm.15.25.7.gmet")
{
    struct far f;
    far_init(&f);
    if (!svm_has(SVM_FEAT_GMET))
        skip("CPUID 0x8000000A EDX.GMET[17]=0");
    require_nx();
    f.v.vmcb->control.nested_ctl |= SVM_NESTED_CTL_GMET;
    memcpy(f.page, vmmcall_ud2, sizeof(vmmcall_ud2));
    f.v.vmcb->save.rip = f.gpa;
    uint64_t code = svm_run(&f.v);
    if (!svm_check_exit(&f.v, code, SVM_EXIT_NPF, "CPL-0 fetch from a GMET user page"))
        return;
    uint64_t i1 = f.v.vmcb->control.exit_info_1;
    check((i1 & (SVM_NPF_ID | NPF_FIN)) == (SVM_NPF_ID | NPF_FIN),
          "GMET #NPF: EXITINFO1 %#llx, want ID (bit 4) and bit 32 set", (unsigned long long)i1);
    check_eq("GMET #NPF: VMCB RIP", f.v.vmcb->save.rip, f.gpa);
    check_eq("GMET #NPF: EXITINFO2", f.v.vmcb->control.exit_info_2, f.gpa);
    uint64_t want = f.page[0];
    f.v.vmcb->save.rip = A(svm_w_read);
    code = svm_run(&f.v);
    if (svm_check_exit(&f.v, code, SVM_EXIT_VMMCALL, "CPL-0 data read of the GMET user page"))
        check_eq("data read of the GMET user page", f.v.vmcb->save.rax, want);
}

/* ---- the guest's own page-table accesses -------------------------------------------------- */

/* The default guest with CR3 = a copy of the kernel's PML4 in page G:
 * returns G; nPTE of G in *pte. */
static uint64_t *guest_pml4_page(struct far *f, uint64_t **pte)
{
    uint64_t *g = alloc_page();
    memcpy(g, (void *)(uintptr_t)(read_cr3() & ADDR_M), 4096);
    svm_vcpu_set_entry(&f->v, (svm_guest_fn)(uintptr_t)guest_vmmcall, 0);
    f->v.vmcb->save.cr3 = A(g);
    *pte = npt_pte(&f->n, A(g));
    return g;
}

static void guest_table_npf(struct far *f, uint64_t *g, uint64_t info1, const char *what)
{
    uint64_t code = svm_run(&f->v);
    if (!svm_check_exit(&f->v, code, SVM_EXIT_NPF, what))
        return;
    uint64_t i2 = f->v.vmcb->control.exit_info_2;
    check_eq("EXITINFO1", f->v.vmcb->control.exit_info_1, info1);
    check((i2 & ~0xfffull) == A(g), "%s: EXITINFO2 %#llx, not in the guest PML4 page %#llx", what,
          (unsigned long long)i2, (unsigned long long)A(g));
    check_eq("VMCB RIP (no instruction completed)", f->v.vmcb->save.rip, A(guest_vmmcall));
}

PROBE(svm_nw_rsvd_guest_walk, "svm.npt.rsvd_guest_walk", "NPT",
      "Guest CR3 = a copy of the kernel's PML4 in page G, nested PTE of G with address bit "
      "MAXPHYADDR set (reserved): the guest's first fetch walks its tables and exits 0x400 with "
      "EXITINFO1 = bit 33|RSV|US|RW|P (0x20000000F: a guest page-table access, treated as a user "
      "write) and EXITINFO2 in page G; with the bit clear the guest runs to VMMCALL",
      "AMD APM Vol. 2 15.25.5, 15.25.6", "apm.15.25.6.npf-guest-walk", "apm.15.25.6.npf-rsvd-pte")
{
    struct far f;
    far_init(&f);
    if (!addr_rsvd())
        skip("MAXPHYADDR = 52 (CPUID 0x80000008 EAX[7:0]): no reserved address bit");
    uint64_t *pte, *g = guest_pml4_page(&f, &pte), good = *pte;
    *pte |= BIT(cpu_phys_addr_bits());
    guest_table_npf(&f, g, SVM_NPF_GUEST_TABLE | SVM_NPF_RSV | SVM_NPF_US | SVM_NPF_RW | SVM_NPF_P,
                    "guest walk through a nested PTE with a reserved bit");
    *pte = good;
    uint64_t code = svm_run(&f.v);
    svm_check_exit(&f.v, code, SVM_EXIT_VMMCALL, "guest with its PML4 page mapped again");
}

PROBE(svm_nw_ro_guest_table, "svm.npt.readonly_guest_table", "NPT",
      "Guest CR3 = a copy of the kernel's PML4 in page G, nested PTE of G present with R/W=0: "
      "the guest's first fetch walks its tables, and a guest page-table access is a user write "
      "for the nested walk: exit 0x400 with EXITINFO1 = bit 33|P|RW|US (0x200000007) and "
      "EXITINFO2 in page G; with R/W=1 the guest runs to VMMCALL",
      "AMD APM Vol. 2 15.25.5, 15.25.6", "apm.15.25.6.npf-guest-walk", "apm.15.25.6.npf-write")
{
    struct far f;
    far_init(&f);
    uint64_t *pte, *g = guest_pml4_page(&f, &pte);
    *pte &= ~NPT_RW;
    guest_table_npf(&f, g, SVM_NPF_GUEST_TABLE | SVM_NPF_P | SVM_NPF_RW | SVM_NPF_US,
                    "guest walk through a read-only nested page");
    *pte |= NPT_RW;
    uint64_t code = svm_run(&f.v);
    svm_check_exit(&f.v, code, SVM_EXIT_VMMCALL, "guest with its PML4 page writable again");
}

PROBE(svm_nw_fault_order, "svm.npt.fault_order", "NPT",
      "Guest linear 512 GiB + P not present in the guest's own page tables and its guest-physical "
      "address not present in the nested tables either, #PF intercepted: a guest read exits 0x4E "
      "(#PF: the guest fault is detected first), EXITINFO1 = 0 (read, not present), EXITINFO2 = "
      "the linear address, not 0x400 (#NPF)",
      "AMD APM Vol. 2 15.25.6", "apm.15.25.6.fault-order")
{
    struct far f;
    far_init(&f);
    f.gpd[(A(f.page) >> 21) & 511] = 0;
    *far_entry(&f, L_PTE) = 0;
    f.v.vmcb->save.rip = A(svm_w_read);
    uint64_t code = svm_run(&f.v);
    if (!svm_check_exit(&f.v, code, SVM_EXIT_EXCP(PF_VECTOR),
                        "read with both the guest and the nested entry not present"))
        return;
    check_eq("#PF exit: VMCB RIP (the MOV)", f.v.vmcb->save.rip, A(svm_w_read));
    check_eq("#PF exit: EXITINFO1 (error code)", f.v.vmcb->control.exit_info_1, 0);
    check_eq("#PF exit: EXITINFO2 (the linear address)", f.v.vmcb->control.exit_info_2, f.gpa);
}
