/* SPDX-License-Identifier: MIT */
/*
 * EPT: every level of the walk. A data page D is reached by the guest at
 * linear 512 GiB through its own page tables, which map it to
 * guest-physical X = 512 GiB + D (4-level EPT: PML4 slot 1, a PDPT, a PD
 * and a PT of its own, or a 2 MiB or 1 GiB leaf mapping X back onto D).
 * Reserved bits, write-only entries and reserved memory types at each
 * level are EPT misconfigurations (exit 49, GPA = X); entries that are not
 * present are EPT violations (exit 48) whatever else they hold; an entry
 * without X makes a fetch an EPT violation.
 */
#include "vmx.h"

extern const char vmx_ew_read[], vmx_ew_fetch[], vmx_ew_write[];
GUEST(vmx_ew_guest, "vmx_ew_read:\n"
                    "    mov (%rdi), %rax\n"
                    "    vmcall\n"
                    "vmx_ew_write:\n"
                    "    mov %rax, (%rdi)\n"
                    "    vmcall\n"
                    "vmx_ew_fetch:\n"
                    "    jmp *%rdi");

#define EW_G     0x8000000000ull /* 512 GiB: guest-physical base and guest-linear address */
#define EW_MAGIC 0x5a5a00005a5a0001ull
#define EW_4K    1
#define EW_2M    2
#define EW_1G    3

struct ew {
    struct vmx_vcpu *v;
    uint64_t eptp, mt;
    uint64_t *epml4, *epdpt, *epd, *ept;
    uint64_t x; /* guest-physical address of the data */
    uint8_t *data;
    unsigned pdi, pti;
};

/* Builds the guest's page tables and the EPT path to D with a leaf at level. */
static void ew_setup(struct ew *w, unsigned level)
{
    if (cpu_phys_addr_bits() < 40)
        skip("MAXPHYADDR %u: guest-physical 512 GiB is beyond it", cpu_phys_addr_bits());
    vmx_on();
    uint64_t cap = vmx_caps()->ept_vpid;
    w->eptp = vmx_ept_identity();
    if (level == EW_1G && !(cap & VMX_EPT_1G))
        skip("IA32_VMX_EPT_VPID_CAP=%#llx: bit 17 (1 GiB EPT pages) clear",
             (unsigned long long)cap);
    w->v = vmx_vcpu_new(vmx_ew_guest);
    vmx_use_ept(w->v, w->eptp);
    w->mt = w->eptp & 7;
    w->data = alloc_page();
    memcpy(w->data, (const uint8_t[]){0x01, 0x00, 0x5a, 0x5a, 0x00, 0x00, 0x5a, 0x5a}, 8);
    uint64_t d = (uintptr_t)w->data;
    if (d >> 30)
        error("data page above 1 GiB");
    w->x = EW_G + d;
    /* the guest's page tables: linear EW_G -> guest-physical X */
    uint64_t *pml4 = alloc_page(), *pdpt = alloc_page(), *pd = alloc_page(), *pt = alloc_page();
    memcpy(pml4, (void *)(uintptr_t)(kernel_cr3() & EPT_ADDR_MASK), 4096);
    if (pml4[1] & 1)
        error("the kernel maps PML4 slot 1");
    pml4[1] = (uintptr_t)pdpt | 0x23;
    pdpt[0] = (uintptr_t)pd | 0x23;
    pd[0] = (uintptr_t)pt | 0x23;
    pt[0] = w->x | 0x63;
    vmcs_write(VMCS_GUEST_CR3, (uintptr_t)pml4 | (read_cr3() & 0xfff));
    /* the EPT: PML4 slot 1 -> PDPT -> PD -> PT -> D (or a large leaf) */
    w->epml4 = (uint64_t *)(uintptr_t)(w->eptp & EPT_ADDR_MASK);
    w->epdpt = alloc_page();
    w->epd = alloc_page();
    w->ept = alloc_page();
    w->pdi = (unsigned)(d >> 21) & 511;
    w->pti = (unsigned)(d >> 12) & 511;
    w->epml4[1] = (uintptr_t)w->epdpt | EPT_RWX;
    if (level == EW_1G) {
        w->epdpt[0] = 0 | EPT_PS | EPT_MT(w->mt) | EPT_RWX;
    } else {
        w->epdpt[0] = (uintptr_t)w->epd | EPT_RWX;
        if (level == EW_2M) {
            w->epd[w->pdi] = (d & ~0x1fffffull) | EPT_PS | EPT_MT(w->mt) | EPT_RWX;
        } else {
            w->epd[w->pdi] = (uintptr_t)w->ept | EPT_RWX;
            w->ept[w->pti] = d | EPT_MT(w->mt) | EPT_RWX;
        }
    }
    vmx_ept_flush(w->eptp);
    w->v->gpr[VMX_GPR_RDI] = EW_G;
    vmcs_write(VMCS_GUEST_RIP, (uintptr_t)vmx_ew_read);
    if (!vmx_run_expect(w->v, EXIT_VMCALL, "guest read of D through the valid EPT path"))
        fail("the valid path does not work: %s", vmx_exit_str(w->v));
    check_eq("guest read of D through the valid EPT path", w->v->gpr[VMX_GPR_RAX], EW_MAGIC);
}

/* Sets *e = val, reads (or fetches), expects reason with GPA X; restores *e. */
static void ew_expect(struct ew *w, uint64_t *e, uint64_t val, unsigned reason, uint64_t qual,
                      const char *what)
{
    const uint64_t old = *e;
    *e = val;
    vmx_ept_flush(w->eptp);
    const char *rip =
        reason == EXIT_EPT_VIOLATION && (qual & EPT_VQ_FETCH) ? vmx_ew_fetch : vmx_ew_read;
    vmcs_write(VMCS_GUEST_RIP, (uintptr_t)rip);
    w->v->gpr[VMX_GPR_RDI] = EW_G;
    if (vmx_run_expect(w->v, reason, what)) {
        uint64_t want_gpa = w->x;
        check(w->v->gpa == want_gpa, "%s: GPA %#llx, want %#llx", what,
              (unsigned long long)w->v->gpa, (unsigned long long)want_gpa);
        uint64_t want_rip = (qual & EPT_VQ_FETCH) ? EW_G : (uintptr_t)rip;
        check(w->v->guest_rip == want_rip, "%s: guest RIP %#llx, want %#llx", what,
              (unsigned long long)w->v->guest_rip, (unsigned long long)want_rip);
        if (reason == EXIT_EPT_VIOLATION) {
            uint64_t mask = (vmx_caps()->ept_vpid & VMX_EPT_ADV_EXITINFO) ? ~0xe00ull : ~0ull;
            check(((w->v->exit_qual ^ qual) & mask) == 0,
                  "%s: exit qualification %#llx, want %#llx", what,
                  (unsigned long long)w->v->exit_qual, (unsigned long long)qual);
        }
    }
    *e = old;
    vmx_ept_flush(w->eptp);
}

static void ew_misconfig(struct ew *w, uint64_t *e, uint64_t val, const char *what)
{
    ew_expect(w, e, val, EXIT_EPT_MISCONFIG, 0, what);
}

/* the last run: the path restored, the read returns D's data */
static void ew_done(struct ew *w)
{
    vmcs_write(VMCS_GUEST_RIP, (uintptr_t)vmx_ew_read);
    w->v->gpr[VMX_GPR_RDI] = EW_G;
    if (vmx_run_expect(w->v, EXIT_VMCALL, "guest read with the EPT path restored"))
        check_eq("guest read with the EPT path restored", w->v->gpr[VMX_GPR_RAX], EW_MAGIC);
}

static uint64_t maxpa_bit(void)
{
    unsigned n = cpu_phys_addr_bits();
    return n < 52 ? 1ull << n : 0;
}

PROBE(vmx_ept_rsvd_pml4e, "vmx.ept.rsvd_pml4e", "EPT",
      "EPT PML4E (slot 1, on the path to guest-physical X = 512 GiB + D) with reserved bit 3, "
      "with reserved bit 7, with address bit MAXPHYADDR set, or write-only (R=0, W=1): a guest "
      "read of X exits with reason 49 (EPT misconfiguration), GPA = X, RIP = the load; restored, "
      "the read returns D's data",
      "Intel SDM Vol. 3C 29.3.2 (Table 29-1), 29.3.3.1, 28.2.1", "sdm.29.3.3.1.rsvd-pml4e",
      "sdm.29.3.3.1.write-no-read", "sdm.29.3.3.1.misconfig-gpa", "sdm.C.reason-49-ept-misconfig")
{
    struct ew w;
    ew_setup(&w, EW_4K);
    uint64_t *e = &w.epml4[1], e0 = *e;
    ew_misconfig(&w, e, e0 | BIT(3), "PML4E reserved bit 3");
    ew_misconfig(&w, e, e0 | BIT(7), "PML4E reserved bit 7");
    if (maxpa_bit())
        ew_misconfig(&w, e, e0 | maxpa_bit(), "PML4E address bit MAXPHYADDR");
    ew_misconfig(&w, e, (e0 & ~EPT_RWX) | EPT_W, "PML4E write-only");
    ew_done(&w);
}

PROBE(vmx_ept_rsvd_pdpte, "vmx.ept.rsvd_pdpte", "EPT",
      "Non-leaf EPT PDPTE on the path to X with reserved bit 5, reserved bit 6, address bit "
      "MAXPHYADDR, or write-only: a guest read of X exits with reason 49, GPA = X, RIP = the "
      "load; restored, the read returns D's data",
      "Intel SDM Vol. 3C 29.3.2 (Table 29-3), 29.3.3.1", "sdm.29.3.3.1.rsvd-pdpte",
      "sdm.29.3.3.1.write-no-read", "sdm.29.3.3.1.misconfig-gpa")
{
    struct ew w;
    ew_setup(&w, EW_4K);
    uint64_t *e = &w.epdpt[0], e0 = *e;
    ew_misconfig(&w, e, e0 | BIT(5), "PDPTE reserved bit 5");
    ew_misconfig(&w, e, e0 | BIT(6), "PDPTE reserved bit 6");
    if (maxpa_bit())
        ew_misconfig(&w, e, e0 | maxpa_bit(), "PDPTE address bit MAXPHYADDR");
    ew_misconfig(&w, e, (e0 & ~EPT_RWX) | EPT_W | EPT_X, "PDPTE write+execute without read");
    ew_done(&w);
}

PROBE(vmx_ept_rsvd_pde, "vmx.ept.rsvd_pde", "EPT",
      "Non-leaf EPT PDE on the path to X with reserved bit 4, reserved bit 6, address bit "
      "MAXPHYADDR, or write-only: a guest read of X exits with reason 49, GPA = X, RIP = the "
      "load; restored, the read returns D's data",
      "Intel SDM Vol. 3C 29.3.2 (Table 29-5), 29.3.3.1", "sdm.29.3.3.1.rsvd-pde",
      "sdm.29.3.3.1.write-no-read", "sdm.29.3.3.1.misconfig-gpa")
{
    struct ew w;
    ew_setup(&w, EW_4K);
    uint64_t *e = &w.epd[w.pdi], e0 = *e;
    ew_misconfig(&w, e, e0 | BIT(4), "PDE reserved bit 4");
    ew_misconfig(&w, e, e0 | BIT(6), "PDE reserved bit 6");
    if (maxpa_bit())
        ew_misconfig(&w, e, e0 | maxpa_bit(), "PDE address bit MAXPHYADDR");
    ew_misconfig(&w, e, (e0 & ~EPT_RWX) | EPT_W, "PDE write-only");
    ew_done(&w);
}

PROBE(vmx_ept_rsvd_pte, "vmx.ept.rsvd_pte", "EPT",
      "EPT PTE (4 KiB leaf) mapping X with memory type 3 or 7 (reserved), or write+execute without "
      "read: a guest read of X exits with reason 49, GPA = X, RIP = the load; restored, the read "
      "returns D's data",
      "Intel SDM Vol. 3C 29.3.2 (Table 29-6), 29.3.3.1, 29.3.7", "sdm.29.3.3.1.memtype",
      "sdm.29.3.3.1.write-no-read", "sdm.29.3.3.1.misconfig-gpa")
{
    struct ew w;
    ew_setup(&w, EW_4K);
    uint64_t *e = &w.ept[w.pti], e0 = *e;
    ew_misconfig(&w, e, (e0 & ~EPT_MT(7)) | EPT_MT(3), "PTE memory type 3");
    ew_misconfig(&w, e, (e0 & ~EPT_MT(7)) | EPT_MT(7), "PTE memory type 7");
    ew_misconfig(&w, e, (e0 & ~EPT_RWX) | EPT_W | EPT_X, "PTE write+execute without read");
    ew_done(&w);
}

PROBE(vmx_ept_rsvd_pde_2m, "vmx.ept.rsvd_pde_2m", "EPT",
      "EPT PDE mapping a 2 MiB page (bit 7) at X with reserved bit 12 or bit 20 of the address "
      "field set, with memory type 2, or write-only: a guest read of X exits with reason 49, GPA "
      "= X, RIP = the load; restored, the read returns D's data",
      "Intel SDM Vol. 3C 29.3.2 (Table 29-4), 29.3.3.1", "sdm.29.3.3.1.rsvd-pde",
      "sdm.29.3.3.1.memtype", "sdm.29.3.3.1.write-no-read", "sdm.29.3.2.ept-large-pages")
{
    struct ew w;
    ew_setup(&w, EW_2M);
    uint64_t *e = &w.epd[w.pdi], e0 = *e;
    ew_misconfig(&w, e, e0 | BIT(12), "2 MiB PDE reserved bit 12");
    ew_misconfig(&w, e, e0 | BIT(20), "2 MiB PDE reserved bit 20");
    ew_misconfig(&w, e, (e0 & ~EPT_MT(7)) | EPT_MT(2), "2 MiB PDE memory type 2");
    ew_misconfig(&w, e, (e0 & ~EPT_RWX) | EPT_W, "2 MiB PDE write-only");
    ew_done(&w);
}

PROBE(vmx_ept_rsvd_pdpte_1g, "vmx.ept.rsvd_pdpte_1g", "EPT",
      "Where 1 GiB EPT pages exist, an EPT PDPTE mapping a 1 GiB page (bit 7) at X with reserved "
      "bit 12 or bit 29 of the address field set, with memory type 3, or write-only: a guest "
      "read of X exits with reason 49, GPA = X, RIP = the load; restored, the read returns D's "
      "data",
      "Intel SDM Vol. 3C 29.3.2 (Table 29-2), 29.3.3.1, A.10", "sdm.29.3.3.1.rsvd-pdpte",
      "sdm.29.3.3.1.memtype", "sdm.29.3.3.1.write-no-read", "sdm.29.3.2.ept-large-pages")
{
    struct ew w;
    ew_setup(&w, EW_1G);
    uint64_t *e = &w.epdpt[0], e0 = *e;
    ew_misconfig(&w, e, e0 | BIT(12), "1 GiB PDPTE reserved bit 12");
    ew_misconfig(&w, e, e0 | BIT(29), "1 GiB PDPTE reserved bit 29");
    ew_misconfig(&w, e, (e0 & ~EPT_MT(7)) | EPT_MT(3), "1 GiB PDPTE memory type 3");
    ew_misconfig(&w, e, (e0 & ~EPT_RWX) | EPT_W, "1 GiB PDPTE write-only");
    ew_done(&w);
}

PROBE(vmx_ept_not_present_levels, "vmx.ept.not_present_levels", "EPT",
      "An EPT entry with bits 2:0 = 0 is not present whatever else it holds: the PML4E, the "
      "PDPTE, the PDE and the PTE on the path to X each made not present, with reserved bits 3-7 "
      "(and bit MAXPHYADDR) set as well, give an EPT violation (exit 48, not 49) for a guest "
      "read of X: GPA = X, qualification 0x181 (read, linear address valid, translated access; "
      "bits 5:3 clear)",
      "Intel SDM Vol. 3C 29.3.2, 29.3.3.1, 29.3.3.2, 28.2.1 (Table 28-7)",
      "sdm.29.3.3.2.not-present", "sdm.28.2.1.qual-ept-violation", "sdm.C.reason-48-ept-violation")
{
    struct ew w;
    ew_setup(&w, EW_4K);
    uint64_t junk = 0xf8 | maxpa_bit();
    struct {
        uint64_t *e;
        const char *what;
    } lv[] = {{&w.epml4[1], "PML4E not present, reserved bits set"},
              {&w.epdpt[0], "PDPTE not present, reserved bits set"},
              {&w.epd[w.pdi], "PDE not present, reserved bits set"},
              {&w.ept[w.pti], "PTE not present, reserved bits set"}};
    for (unsigned i = 0; i < ARRAY_SIZE(lv); i++)
        ew_expect(&w, lv[i].e, (*lv[i].e & ~EPT_RWX) | junk, EXIT_EPT_VIOLATION,
                  EPT_VQ_READ | EPT_VQ_GLA_VALID | EPT_VQ_TRANSLATED, lv[i].what);
    ew_done(&w);
}

PROBE(vmx_ept_exec_levels, "vmx.ept.exec_levels", "EPT",
      "Execute permission at every level: D holds VMCALL; with X clear in the PML4E, the PDPTE, "
      "the PDE or the PTE (R and W set everywhere) a guest jump to linear 512 GiB (guest-physical "
      "X) exits with reason 48 at RIP = X, qualification 0x19c (fetch, readable, writable, linear "
      "address valid, translated); with X everywhere the VMCALL runs",
      "Intel SDM Vol. 3C 29.3.2, 29.3.3.2, 28.2.1 (Table 28-7)", "sdm.29.3.3.2.fetch",
      "sdm.29.3.2.ept-permissions", "sdm.28.2.1.qual-ept-violation")
{
    struct ew w;
    ew_setup(&w, EW_4K);
    static const uint8_t vmcall[] = {0x0f, 0x01, 0xc1, 0x0f, 0x0b};
    memcpy(w.data, vmcall, sizeof(vmcall));
    uint64_t q =
        EPT_VQ_FETCH | EPT_VQ_READABLE | EPT_VQ_WRITABLE | EPT_VQ_GLA_VALID | EPT_VQ_TRANSLATED;
    struct {
        uint64_t *e;
        const char *what;
    } lv[] = {{&w.epml4[1], "fetch with X clear in the PML4E"},
              {&w.epdpt[0], "fetch with X clear in the PDPTE"},
              {&w.epd[w.pdi], "fetch with X clear in the PDE"},
              {&w.ept[w.pti], "fetch with X clear in the PTE"}};
    for (unsigned i = 0; i < ARRAY_SIZE(lv); i++)
        ew_expect(&w, lv[i].e, *lv[i].e & ~EPT_X, EXIT_EPT_VIOLATION, q, lv[i].what);
    vmcs_write(VMCS_GUEST_RIP, (uintptr_t)vmx_ew_fetch);
    w.v->gpr[VMX_GPR_RDI] = EW_G;
    if (vmx_run_expect(w.v, EXIT_VMCALL, "fetch with X at every level"))
        check_eq("guest RIP at the VMCALL", w.v->guest_rip, EW_G);
}

PROBE(vmx_ept_write_levels, "vmx.ept.write_levels", "EPT",
      "Write permission at every level: with W clear in the PML4E, the PDPTE, the PDE or the PTE "
      "on the path to X (R and X set), a guest write to linear 512 GiB exits with reason 48, GPA "
      "= X, qualification 0x1aa (write, readable, executable, linear address valid, translated)",
      "Intel SDM Vol. 3C 29.3.2, 29.3.3.2, 28.2.1 (Table 28-7)", "sdm.29.3.3.2.write",
      "sdm.29.3.2.ept-permissions", "sdm.28.2.1.qual-ept-violation")
{
    struct ew w;
    ew_setup(&w, EW_4K);
    uint64_t q =
        EPT_VQ_WRITE | EPT_VQ_READABLE | EPT_VQ_EXECUTABLE | EPT_VQ_GLA_VALID | EPT_VQ_TRANSLATED;
    struct {
        uint64_t *e;
        const char *what;
    } lv[] = {{&w.epml4[1], "write with W clear in the PML4E"},
              {&w.epdpt[0], "write with W clear in the PDPTE"},
              {&w.epd[w.pdi], "write with W clear in the PDE"},
              {&w.ept[w.pti], "write with W clear in the PTE"}};
    for (unsigned i = 0; i < ARRAY_SIZE(lv); i++) {
        const uint64_t old = *lv[i].e;
        *lv[i].e = old & ~EPT_W;
        vmx_ept_flush(w.eptp);
        vmcs_write(VMCS_GUEST_RIP, (uintptr_t)vmx_ew_write);
        w.v->gpr[VMX_GPR_RDI] = EW_G;
        if (vmx_run_expect(w.v, EXIT_EPT_VIOLATION, lv[i].what)) {
            check(w.v->gpa == w.x, "%s: GPA %#llx, want %#llx", lv[i].what,
                  (unsigned long long)w.v->gpa, (unsigned long long)w.x);
            check(w.v->guest_rip == (uintptr_t)vmx_ew_write, "%s: guest RIP %#llx", lv[i].what,
                  (unsigned long long)w.v->guest_rip);
            uint64_t mask = (vmx_caps()->ept_vpid & VMX_EPT_ADV_EXITINFO) ? ~0xe00ull : ~0ull;
            check(((w.v->exit_qual ^ q) & mask) == 0, "%s: exit qualification %#llx, want %#llx",
                  lv[i].what, (unsigned long long)w.v->exit_qual, (unsigned long long)q);
        }
        *lv[i].e = old;
        vmx_ept_flush(w.eptp);
    }
    ew_done(&w);
}
