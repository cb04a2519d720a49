/* SPDX-License-Identifier: MIT */
/*
 * EPT and VPID: what the EPT walk translates and how (the index bits, the
 * guest's own paging structures, ignored bits, A/D flags off), the guest's
 * CR3 under EPT, the state an EPT violation leaves, the order of guest page
 * faults, EPT misconfigurations and violations, 1 GiB EPT pages where they
 * are not supported, and the flushes of linear translations a guest MOV to
 * CR3 and VM entries without VPID must make. Only the required direction of
 * the TLB rules is checked: after a flush the new translation is used.
 */
#include "vmx.h"

#define EM_L     SLOT1_LINEAR
#define EM_MAGIC 0x1122334455667788ull

/* guest: RAX = [RDI], VMCALL, again */
GUEST(vmx_em_read_guest, "1: mov (%rdi), %rax", "vmcall", "jmp 1b");

static void need_slot1_gpa(void)
{
    if (cpu_phys_addr_bits() < 40)
        skip("MAXPHYADDR %u: guest-physical 512 GiB is beyond it", cpu_phys_addr_bits());
}

static uint64_t guest_cr3(const uint64_t *pml4) { return (uintptr_t)pml4 | (read_cr3() & 0xfff); }

/* ---- the EPT walk ----------------------------------------------------------------- */

PROBE(vmx_ept_walk_indices, "vmx.ept.walk_indices", "EPT",
      "A 4-level EPT walk indexes its tables with guest-physical bits 47:39, 38:30, 29:21 and "
      "20:12: with X = 512 GiB + 2 GiB + 6 MiB + 16 KiB (indices 1, 2, 3, 4) mapped to data page "
      "D and every other entry of the PDPT, PD and PT on that path (and of PML4 slots 2-511) "
      "leading to decoy tables that map a page E, a guest read of X + 8 (its own page tables map "
      "linear 512 GiB to X) returns D's data, not E's",
      "Intel SDM Vol. 3C 29.3.2 (EPT Translation Mechanism)", "sdm.29.3.2.ept-4-level")
{
    need_slot1_gpa();
    vmx_on();
    uint64_t eptp = vmx_ept_identity();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_em_read_guest);
    vmx_use_ept(v, eptp);
    uint64_t mt = eptp & 7;
    uint64_t *d = alloc_page(), *e = alloc_page();
    d[1] = EM_MAGIC;
    e[1] = 0xeeeeeeeeeeeeeeeeull;
    uint64_t *dpt = alloc_page(), *dpd = alloc_page(), *dpdpt = alloc_page();
    uint64_t *rpt = alloc_page(), *rpd = alloc_page(), *rpdpt = alloc_page();
    for (unsigned i = 0; i < 512; i++) {
        dpt[i] = (uintptr_t)e | EPT_MT(mt) | EPT_RWX;
        dpd[i] = (uintptr_t)dpt | EPT_RWX;
        dpdpt[i] = (uintptr_t)dpd | EPT_RWX;
        rpt[i] = dpt[i];
        rpd[i] = dpd[i];
        rpdpt[i] = dpdpt[i];
    }
    rpt[4] = (uintptr_t)d | EPT_MT(mt) | EPT_RWX;
    rpd[3] = (uintptr_t)rpt | EPT_RWX;
    rpdpt[2] = (uintptr_t)rpd | EPT_RWX;
    uint64_t *epml4 = (uint64_t *)(uintptr_t)(eptp & EPT_ADDR_MASK);
    for (unsigned i = 2; i < 512; i++)
        epml4[i] = (uintptr_t)dpdpt | EPT_RWX;
    epml4[1] = (uintptr_t)rpdpt | EPT_RWX;
    vmx_ept_flush(eptp);
    const uint64_t x = (1ull << 39) | (2ull << 30) | (3ull << 21) | (4ull << 12);
    vmcs_write(VMCS_GUEST_CR3, guest_cr3(slot1_tables(x, NULL)));
    v->gpr[VMX_GPR_RDI] = EM_L + 8;
    if (vmx_run_expect(v, EXIT_VMCALL, "guest read of X + 8"))
        check_eq("guest read of X + 8 (D's data; E's is 0xeeee...)", v->gpr[VMX_GPR_RAX], EM_MAGIC);
}

PROBE(vmx_ept_guest_tables_gpa, "vmx.ept.guest_tables_gpa", "EPT",
      "The guest's CR3 and paging-structure addresses are guest-physical and go through EPT: "
      "guest CR3 = Y0 and the guest PML4E, PDPTE and PDE for linear 512 GiB pointing at Y1, Y2, "
      "Y3, the PTE at Y4 (Yk = 512 GiB + k * 4 KiB, no memory there), with an EPT PT mapping each "
      "Yk to the page that holds that table (Y4: data page D): a guest read of linear 512 GiB "
      "returns D's data",
      "Intel SDM Vol. 3C 29.3.1 (EPT Overview), 29.3.2", "sdm.29.3.1.ept-gpa")
{
    need_slot1_gpa();
    vmx_on();
    uint64_t eptp = vmx_ept_identity();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_em_read_guest);
    vmx_use_ept(v, eptp);
    uint64_t mt = eptp & 7;
    uint64_t *d = alloc_page();
    d[0] = EM_MAGIC;
    const uint64_t y = EM_L;
    uint64_t *pml4 = alloc_page(), *pdpt = alloc_page(), *pd = alloc_page(), *pt = alloc_page();
    memcpy(pml4, (void *)(uintptr_t)(kernel_cr3() & EPT_ADDR_MASK), 4096);
    if (pml4[1] & 1)
        error("the kernel maps PML4 slot 1; pick another linear address");
    pml4[1] = (y + 0x1000) | 0x23;
    pdpt[0] = (y + 0x2000) | 0x23;
    pd[0] = (y + 0x3000) | 0x23;
    pt[0] = (y + 0x4000) | 0x63;
    uint64_t *epdpt = alloc_page(), *epd = alloc_page(), *ept = alloc_page();
    uint64_t *epml4 = (uint64_t *)(uintptr_t)(eptp & EPT_ADDR_MASK);
    epml4[1] = (uintptr_t)epdpt | EPT_RWX;
    epdpt[0] = (uintptr_t)epd | EPT_RWX;
    epd[0] = (uintptr_t)ept | EPT_RWX;
    uint64_t *pages[] = {pml4, pdpt, pd, pt, d};
    for (unsigned k = 0; k < ARRAY_SIZE(pages); k++)
        ept[k] = (uintptr_t)pages[k] | EPT_MT(mt) | EPT_RWX;
    vmx_ept_flush(eptp);
    vmcs_write(VMCS_GUEST_CR3, y | (read_cr3() & 0xfff));
    v->gpr[VMX_GPR_RDI] = EM_L;
    if (vmx_run_expect(v, EXIT_VMCALL, "guest read through paging structures at Y0-Y3"))
        check_eq("guest read of linear 512 GiB", v->gpr[VMX_GPR_RAX], EM_MAGIC);
}

/* ---- CR3 under EPT -------------------------------------------------------------- */

extern const char vmx_em_cr3_end[];
GUEST(vmx_em_cr3_guest, "    mov %rsi, %cr3\n"
                        "    mov (%rdi), %rax\n"
                        "    mov %cr3, %rbx\n"
                        "vmx_em_cr3_end:\n"
                        "    vmcall\n"
                        "    ud2");

PROBE(vmx_ept_cr3_no_exit, "vmx.ept.cr3_no_exit", "EPT",
      "With EPT and CR3-load and CR3-store exiting clear, a guest entered with its own page "
      "tables "
      "T1 (linear 512 GiB -> page A) executes MOV CR3 to tables T2 (-> page B), reads linear 512 "
      "GiB and MOV from CR3, all without a VM exit: it reads B's data and T2's CR3 value, and the "
      "guest CR3 field holds T2 at the VMCALL exit",
      "Intel SDM Vol. 3C 29.3.1 (EPT Overview), 25.6.2, 26.1.3", "sdm.29.3.1.ept-cr3-no-exit")
{
    if (!vmx_ctl_can_clear(VMX_CTL_PROC, PROC_CR3_LOAD_EXITING | PROC_CR3_STORE_EXITING))
        skip("%s requires CR3-load/store exiting", vmx_ctl_name(VMX_CTL_PROC));
    need_slot1_gpa();
    vmx_on();
    uint64_t eptp = vmx_ept_identity();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_em_cr3_guest);
    vmx_use_ept(v, eptp);
    vmcs_clear_bits(VMCS_PROC_CTLS, PROC_CR3_LOAD_EXITING | PROC_CR3_STORE_EXITING);
    uint64_t *a = alloc_page(), *b = alloc_page();
    *a = 0xaaaaaaaa00000001ull;
    *b = 0xbbbbbbbb00000002ull;
    uint64_t cr3_1 = guest_cr3(slot1_tables((uintptr_t)a, NULL));
    uint64_t cr3_2 = guest_cr3(slot1_tables((uintptr_t)b, NULL));
    vmcs_write(VMCS_GUEST_CR3, cr3_1);
    v->gpr[VMX_GPR_RSI] = cr3_2;
    v->gpr[VMX_GPR_RDI] = EM_L;
    if (!vmx_run_expect(v, EXIT_VMCALL, "guest MOV to CR3, read, MOV from CR3"))
        return;
    check_eq("guest RIP (no exit before the VMCALL)", v->guest_rip, (uintptr_t)vmx_em_cr3_end);
    check_eq("guest read through the new tables (page B)", v->gpr[VMX_GPR_RAX],
             0xbbbbbbbb00000002ull);
    check_eq("guest MOV from CR3", v->gpr[VMX_GPR_RBX], cr3_2);
    check_eq("guest CR3 field", vmcs_read(VMCS_GUEST_CR3), cr3_2);
}

/* ---- ignored bits, A/D flags disabled ------------------------------------------------ */

PROBE(vmx_ept_ignored_bits, "vmx.ept.ignored_bits", "EPT",
      "Ignored bits of EPT entries change nothing: on the path to X = 512 GiB + D (own EPT "
      "PDPT, PD, PT) the PML4E, PDPTE and PDE with bits 9, 11 and 52-62 set and the 4 KiB PTE "
      "with bits 7, 11, 52-56 and 62 set (A/D flags off): a guest read of X + 0x7F8 returns D's "
      "data at offset 0x7F8 (the page offset is kept)",
      "Intel SDM Vol. 3C 29.3.2 (Tables 29-1, 29-3, 29-5, 29-6)", "sdm.29.3.2.ignored-bits")
{
    need_slot1_gpa();
    vmx_on();
    uint64_t eptp = vmx_ept_identity();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_em_read_guest);
    vmx_use_ept(v, eptp);
    uint64_t mt = eptp & 7;
    volatile uint64_t *d = alloc_page();
    d[0xff] = EM_MAGIC;
    const uint64_t x = EM_L + (uintptr_t)d;
    const uint64_t nonleaf = BIT(9) | BIT(11) | (0x7ffull << 52);
    const uint64_t leaf = BIT(7) | BIT(11) | (0x1full << 52) | BIT(62);
    uint64_t *epdpt = alloc_page(), *epd = alloc_page(), *ept = alloc_page();
    uint64_t *epml4 = (uint64_t *)(uintptr_t)(eptp & EPT_ADDR_MASK);
    epml4[1] = (uintptr_t)epdpt | EPT_RWX | nonleaf;
    epdpt[(x >> 30) & 511] = (uintptr_t)epd | EPT_RWX | nonleaf;
    epd[(x >> 21) & 511] = (uintptr_t)ept | EPT_RWX | nonleaf;
    ept[(x >> 12) & 511] = (uintptr_t)d | EPT_MT(mt) | EPT_RWX | leaf;
    vmx_ept_flush(eptp);
    vmcs_write(VMCS_GUEST_CR3, guest_cr3(slot1_tables(x, NULL)));
    v->gpr[VMX_GPR_RDI] = EM_L + 0x7f8;
    if (!vmx_run_expect(v, EXIT_VMCALL, "guest read through entries with ignored bits set"))
        return;
    check_eq("guest read of X + 0x7F8", v->gpr[VMX_GPR_RAX], EM_MAGIC);
}

extern const char vmx_em_rw_write[];
GUEST(vmx_em_rw_guest, "mov (%rdi), %rax", "vmcall", "vmx_em_rw_write:", "mov %rsi, (%rdi)",
      "vmcall", "ud2");

PROBE(vmx_ept_ad_disabled, "vmx.ept.ad_disabled", "EPT",
      "With EPTP bit 6 = 0 (A/D flags off), a guest read and then a write of a data page P leave "
      "bits 8 and 9 clear in P's 4 KiB EPT entry and bit 8 clear in the PDE, PDPTE and PML4E on "
      "its path; with bits 8 and 9 set in the entry of another page Q beforehand, a guest read "
      "of Q returns Q's data",
      "Intel SDM Vol. 3C 29.3.4 (Accessed and Dirty Flags for EPT), 29.3.2",
      "sdm.29.3.4.ad-disabled")
{
    vmx_on();
    uint64_t eptp = vmx_ept_identity();
    if (eptp & EPTP_AD)
        error("the identity EPTP has bit 6 set");
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_em_rw_guest);
    vmx_use_ept(v, eptp);
    volatile uint64_t *p = alloc_page(), *q = alloc_page();
    *q = EM_MAGIC;
    uint64_t *pte = vmx_ept_pte(eptp, (uintptr_t)p), *qte = vmx_ept_pte(eptp, (uintptr_t)q);
    *qte |= EPT_A | EPT_D;
    vmx_ept_flush(eptp);
    uint64_t *pml4e = (uint64_t *)(uintptr_t)(eptp & EPT_ADDR_MASK);
    uint64_t *pdpte = (uint64_t *)(uintptr_t)(*pml4e & EPT_ADDR_MASK) + ((uintptr_t)p >> 30);
    uint64_t *pde = (uint64_t *)(uintptr_t)(*pdpte & EPT_ADDR_MASK) + (((uintptr_t)p >> 21) & 511);
    v->gpr[VMX_GPR_RDI] = (uintptr_t)p;
    v->gpr[VMX_GPR_RSI] = 1;
    if (!vmx_run_expect(v, EXIT_VMCALL, "guest read of P"))
        return;
    vmx_skip_insn(v);
    if (!vmx_run_expect(v, EXIT_VMCALL, "guest write of P"))
        return;
    check_eq("P's EPT PTE bits 9:8", *pte & (EPT_A | EPT_D), 0);
    check_eq("EPT PDE bit 8", *pde & EPT_A, 0);
    check_eq("EPT PDPTE bit 8", *pdpte & EPT_A, 0);
    check_eq("EPT PML4E bit 8", *pml4e & EPT_A, 0);
    check_eq("P after the guest's write", *p, 1);
    vmcs_write(VMCS_GUEST_RIP, (uintptr_t)vmx_em_rw_guest);
    v->gpr[VMX_GPR_RDI] = (uintptr_t)q;
    if (vmx_run_expect(v, EXIT_VMCALL, "guest read of Q (EPT entry with bits 8 and 9 set)"))
        check_eq("guest read of Q", v->gpr[VMX_GPR_RAX], EM_MAGIC);
}

/* ---- the state an EPT violation leaves -------------------------------------------------- */

extern const char vmx_em_movs[], vmx_em_split[];
GUEST(vmx_em_state_guest, "vmx_em_movs:", "movsq", "vmcall", "vmx_em_split:", "mov %rax, (%rdx)",
      "vmcall", "ud2");

PROBE(vmx_ept_violation_state, "vmx.ept.violation_state", "EPT",
      "An EPT violation leaves the guest as before the instruction: MOVSQ from an ordinary page "
      "to a page P whose EPT entry is R+X exits with reason 48 at the MOVSQ with RSI, RDI and P "
      "unchanged; an 8-byte store at A + 0xFFC, A writable and the next page B R+X, exits with "
      "reason 48, GPA = B, at the store, with A's last 4 bytes unchanged",
      "Intel SDM Vol. 3C 29.3.3.2 (EPT Violations), 28.2.1", "sdm.29.3.3.2.no-guest-state-change")
{
    vmx_on();
    uint64_t eptp = vmx_ept_identity();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_em_state_guest);
    vmx_use_ept(v, eptp);
    volatile uint64_t *src = alloc_page(), *p = alloc_page();
    uint8_t *ab = alloc_pages(2);
    *src = EM_MAGIC;
    *p = 0x5050505050505050ull;
    memset(ab, 0x11, 8192);
    uint64_t *pte_p = vmx_ept_pte(eptp, (uintptr_t)p);
    uint64_t *pte_b = vmx_ept_pte(eptp, (uintptr_t)ab + 4096);
    *pte_p &= ~EPT_W;
    *pte_b &= ~EPT_W;
    vmx_ept_flush(eptp);
    v->gpr[VMX_GPR_RSI] = (uintptr_t)src;
    v->gpr[VMX_GPR_RDI] = (uintptr_t)p;
    if (vmx_run_expect(v, EXIT_EPT_VIOLATION, "MOVSQ to a page without EPT write permission")) {
        check_eq("guest RIP (the MOVSQ)", v->guest_rip, (uintptr_t)vmx_em_movs);
        check_eq("guest RSI", v->gpr[VMX_GPR_RSI], (uintptr_t)src);
        check_eq("guest RDI", v->gpr[VMX_GPR_RDI], (uintptr_t)p);
        check_eq("GPA", v->gpa, (uintptr_t)p);
        check_eq("P", *p, 0x5050505050505050ull);
    }
    vmcs_write(VMCS_GUEST_RIP, (uintptr_t)vmx_em_split);
    v->gpr[VMX_GPR_RDX] = (uintptr_t)ab + 0xffc;
    v->gpr[VMX_GPR_RAX] = 0x2222222222222222ull;
    if (vmx_run_expect(v, EXIT_EPT_VIOLATION, "store across A (writable) and B (R+X)")) {
        check_eq("guest RIP (the store)", v->guest_rip, (uintptr_t)vmx_em_split);
        check_eq("GPA (page B)", v->gpa, (uintptr_t)ab + 4096);
        check_eq("A's last 4 bytes", *(volatile uint32_t *)(ab + 0xffc), 0x11111111);
        check_eq("B's first 4 bytes", *(volatile uint32_t *)(ab + 0x1000), 0x11111111);
    }
}

/* ---- priority: guest page faults, misconfigurations and violations in walk order ------ */

extern const char vmx_em_store[];
GUEST(vmx_em_store_guest, "vmx_em_store:", "mov %rax, (%rdi)", "vmcall", "ud2");

PROBE(vmx_ept_priority, "vmx.ept.priority", "EPT",
      "Guest linear 512 GiB maps data page D through the guest's own PTE in page T: (1) PTE "
      "read-only, CR0.WP=1, D's EPT entry not present: a guest write gives the page fault (exit "
      "0, vector 14, error code 3, qualification = the linear address), not an EPT violation; (2) "
      "T's EPT entry with memory type 2 and D's not present: a guest read exits with reason 49 "
      "(GPA = the PTE's address); (3) T's EPT entry not present and D's with memory type 2: "
      "reason 48, same GPA",
      "Intel SDM Vol. 3C 29.3.3.3 (Prioritization of EPT Misconfigurations and EPT Violations)",
      "sdm.29.3.3.3.priority")
{
    need_slot1_gpa();
    vmx_on();
    uint64_t eptp = vmx_ept_identity();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_em_store_guest);
    vmx_use_ept(v, eptp);
    uint64_t *d = alloc_page(), *pte;
    uint64_t *pml4 = slot1_tables((uintptr_t)d, &pte);
    vmcs_write(VMCS_GUEST_CR3, guest_cr3(pml4));
    vmcs_write(VMCS_GUEST_CR0, vmcs_read(VMCS_GUEST_CR0) | CR0_WP);
    uint64_t t = (uintptr_t)pte & ~0xfffull;
    uint64_t *ept_d = vmx_ept_pte(eptp, (uintptr_t)d), *ept_t = vmx_ept_pte(eptp, t);
    const uint64_t d0 = *ept_d, t0 = *ept_t;
    v->gpr[VMX_GPR_RDI] = EM_L;

    *pte &= ~2ull;
    *ept_d = d0 & ~EPT_RWX;
    vmx_ept_flush(eptp);
    if (vmx_run_expect(v, EXIT_EXCEPTION_NMI, "guest write: read-only PTE, D not present in EPT")) {
        check_eq("VM-exit interruption information", v->exit_intr_info,
                 INTR_INFO_VALID | INTR_INFO_ERRCODE | (INTR_TYPE_HW_EXC << 8) | 14);
        check_eq("page-fault error code", v->exit_intr_err, 3);
        check_eq("exit qualification (the faulting linear address)", v->exit_qual, EM_L);
    }
    *pte |= 2;

    *ept_t = (t0 & ~EPT_MT(7)) | EPT_MT(2);
    vmx_ept_flush(eptp);
    vmcs_write(VMCS_GUEST_RIP, (uintptr_t)vmx_em_read_guest);
    if (vmx_run_expect(v, EXIT_EPT_MISCONFIG, "guest read: T misconfigured, D not present"))
        check_eq("GPA (the guest PTE)", v->gpa, (uintptr_t)pte);

    *ept_t = t0 & ~EPT_RWX;
    *ept_d = (d0 & ~EPT_MT(7)) | EPT_MT(2);
    vmx_ept_flush(eptp);
    vmcs_write(VMCS_GUEST_RIP, (uintptr_t)vmx_em_read_guest);
    if (vmx_run_expect(v, EXIT_EPT_VIOLATION, "guest read: T not present, D misconfigured"))
        check_eq("GPA (the guest PTE)", v->gpa, (uintptr_t)pte);
    *ept_t = t0;
    *ept_d = d0;
    vmx_ept_flush(eptp);
}

/* ---- EPT A/D flags: guest paging-structure accesses are writes ------------------------ */

PROBE(vmx_ept_ad_paging_write, "vmx.ept.ad_paging_write", "EPT",
      "With EPT accessed/dirty flags on (EPTP bit 6), the guest's PT page T mapped read+execute "
      "(W=0) by EPT: a guest read of linear 512 GiB (whose PTE is in T, its A and D already set) "
      "exits with reason 48, GPA = the PTE's address, qualification bit 1 (write) set, bit 7 "
      "(linear address valid) set and bit 8 clear; with EPTP bit 6 clear the same read "
      "completes",
      "Intel SDM Vol. 3C 29.3.3.2, 29.3.4, 28.2.1 (Table 28-7)", "sdm.29.3.3.2.ad-write")
{
    if (!(vmx_caps()->ept_vpid & VMX_EPT_AD))
        skip("IA32_VMX_EPT_VPID_CAP=%#llx: bit 21 (EPT accessed and dirty flags) clear",
             (unsigned long long)vmx_caps()->ept_vpid);
    need_slot1_gpa();
    vmx_on();
    uint64_t eptp = vmx_ept_identity();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_em_read_guest);
    vmx_use_ept(v, eptp | EPTP_AD);
    uint64_t *d = alloc_page(), *pte;
    *d = EM_MAGIC;
    vmcs_write(VMCS_GUEST_CR3, guest_cr3(slot1_tables((uintptr_t)d, &pte)));
    uint64_t *ept_t = vmx_ept_pte(eptp, (uintptr_t)pte & ~0xfffull);
    const uint64_t t0 = *ept_t;
    *ept_t = t0 & ~EPT_W;
    vmx_ept_flush(eptp | EPTP_AD);
    v->gpr[VMX_GPR_RDI] = EM_L;
    if (vmx_run_expect(v, EXIT_EPT_VIOLATION, "guest read, its PT page read-only in EPT, A/D on")) {
        check_eq("GPA (the guest PTE)", v->gpa, (uintptr_t)pte);
        uint64_t m = EPT_VQ_WRITE | EPT_VQ_GLA_VALID | EPT_VQ_TRANSLATED;
        check(((v->exit_qual ^ (EPT_VQ_WRITE | EPT_VQ_GLA_VALID)) & m) == 0,
              "exit qualification %#llx: want bit 1 (write) and bit 7 set, bit 8 clear",
              (unsigned long long)v->exit_qual);
    }
    vmcs_write(VMCS_EPTP, eptp);
    vmx_ept_flush(eptp);
    vmcs_write(VMCS_GUEST_RIP, (uintptr_t)vmx_em_read_guest);
    if (vmx_run_expect(v, EXIT_VMCALL, "the same read with A/D off"))
        check_eq("guest read with A/D off", v->gpr[VMX_GPR_RAX], EM_MAGIC);
    *ept_t = t0;
    vmx_ept_flush(eptp);
}

/* ---- 1 GiB EPT pages where they are not supported ----------------------------------- */

PROBE(vmx_ept_1g_unsupported, "vmx.ept.1g_unsupported", "EPT",
      "Where IA32_VMX_EPT_VPID_CAP[17] = 0 (no 1 GiB EPT pages), an EPT PDPTE with bit 7 set "
      "(mapping guest-physical 2 GiB onto 0) is an EPT misconfiguration: a guest read of 2 GiB "
      "exits with reason 49, GPA = 2 GiB",
      "Intel SDM Vol. 3C 29.3.3.1, A.10", "sdm.29.3.3.1.large-page-unsupported")
{
    vmx_on();
    uint64_t eptp = vmx_ept_identity();
    uint64_t cap = vmx_caps()->ept_vpid;
    if (cap & VMX_EPT_1G)
        skip("IA32_VMX_EPT_VPID_CAP=%#llx: bit 17 set (1 GiB EPT pages supported)",
             (unsigned long long)cap);
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_em_read_guest);
    vmx_use_ept(v, eptp);
    uint64_t *epml4 = (uint64_t *)(uintptr_t)(eptp & EPT_ADDR_MASK);
    uint64_t *epdpt = (uint64_t *)(uintptr_t)(epml4[0] & EPT_ADDR_MASK);
    epdpt[2] = 0 | EPT_PS | EPT_MT(eptp & 7) | EPT_RWX;
    vmx_ept_flush(eptp);
    v->gpr[VMX_GPR_RDI] = 0x80000000ull;
    if (vmx_run_expect(v, EXIT_EPT_MISCONFIG, "guest read through a 1 GiB EPT PDPTE"))
        check_eq("GPA", v->gpa, 0x80000000ull);
}

/* ---- linear translations: MOV to CR3, VPID tags, VM entry without VPID -------------- */

extern const char vmx_em_cr3f_again[];
GUEST(vmx_em_cr3f_guest, "    mov (%rdi), %rax\n"
                         "    vmcall\n"
                         "vmx_em_cr3f_again:\n"
                         "    mov %cr3, %rbx\n"
                         "    mov %rbx, %cr3\n"
                         "    mov (%rdi), %rax\n"
                         "    vmcall\n"
                         "    ud2");

/* The guest's own tables (512 GiB -> A, non-global), VPID vpid if not 0. */
static uint64_t *vpid_guest(struct vmx_vcpu *v, uint16_t vpid, volatile uint64_t **a,
                            volatile uint64_t **b)
{
    *a = alloc_page();
    *b = alloc_page();
    **a = 0xaaaaaaaa00000001ull;
    **b = 0xbbbbbbbb00000002ull;
    uint64_t *pte;
    vmcs_write(VMCS_GUEST_CR3, guest_cr3(slot1_tables((uintptr_t)*a, &pte)));
    if (vpid) {
        vmcs_set_bits(VMCS_PROC_CTLS, PROC_SECONDARY_CTLS);
        vmcs_set_bits(VMCS_PROC_CTLS2, PROC2_VPID);
        vmcs_write(VMCS_VPID, vpid);
    }
    v->gpr[VMX_GPR_RDI] = EM_L;
    return pte;
}

/* Empties VPID vpid of what earlier probes left (they use VPID 1 and linear
 * 512 GiB too): single-context INVVPID, else all-contexts; false (with a
 * note) where neither exists. */
static bool vpid_empty(uint16_t vpid)
{
    uint64_t cap = vmx_caps()->ept_vpid;
    if (!(cap & VMX_VPID_INVVPID) || !(cap & (VMX_VPID_INV_SINGLE | VMX_VPID_INV_ALL))) {
        note("no single-context or all-contexts INVVPID: VPID %u not emptied first", vpid);
        return false;
    }
    uint64_t type = (cap & VMX_VPID_INV_SINGLE) ? INVVPID_SINGLE : INVVPID_ALL;
    char what[48];
    snprintf(what, sizeof(what), "INVVPID of VPID %u", vpid);
    return check_vmx(what, invvpid(type, vpid, 0), VMX_SUCCEED, 0);
}

PROBE(vmx_vpid_mov_cr3_flush, "vmx.vpid.mov_cr3_flush", "VPID",
      "After an INVVPID that empties VPID 1 (where offered), a guest with VPID 1 (CR3-load "
      "exiting clear, CR4.PCIDE as the host's, CR3[63] clear) reads linear 512 GiB through its own "
      "non-global 4 KiB PTE (page A); the host points the PTE at "
      "page B without INVVPID; the guest executes MOV CR3 with its own CR3 and reads again: it "
      "gets B's data",
      "Intel SDM Vol. 3C 29.4.3.1 (Operations that Invalidate Cached Mappings); Vol. 3A 4.10.4.1",
      "sdm.29.4.3.1.mov-cr3-flush")
{
    vmx_require_ctl(VMX_CTL_PROC2, PROC2_VPID, "enable VPID");
    if (!vmx_ctl_can_clear(VMX_CTL_PROC, PROC_CR3_LOAD_EXITING | PROC_CR3_STORE_EXITING))
        skip("%s requires CR3-load/store exiting", vmx_ctl_name(VMX_CTL_PROC));
    need_slot1_gpa();
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_em_cr3f_guest);
    vmcs_clear_bits(VMCS_PROC_CTLS, PROC_CR3_LOAD_EXITING | PROC_CR3_STORE_EXITING);
    volatile uint64_t *a, *b;
    uint64_t *pte = vpid_guest(v, 1, &a, &b);
    vpid_empty(1);
    if (!vmx_run_expect(v, EXIT_VMCALL, "guest read through page A"))
        return;
    check_eq("guest read through A", v->gpr[VMX_GPR_RAX], *a);
    *pte = (uintptr_t)b | 0x63;
    vmx_skip_insn(v);
    if (!vmx_run_expect(v, EXIT_VMCALL, "guest MOV CR3, then read"))
        return;
    check(v->gpr[VMX_GPR_RAX] == *b,
          "after its MOV to CR3 the guest reads %#llx through a stale translation "
          "(want page B's %#llx)",
          (unsigned long long)v->gpr[VMX_GPR_RAX], (unsigned long long)*b);
}

PROBE(vmx_vpid_tagging, "vmx.vpid.tagging", "VPID",
      "Translations cached for VPID 1 are not used for VPID 2: after INVVPIDs that empty VPIDs "
      "1 and 2 (single-context, else all-contexts), a guest with VPID 1 reads linear 512 GiB "
      "through "
      "its own 4 KiB PTE (page A); the host points the PTE at page B without INVVPID and sets the "
      "VPID field to 2: the guest's next read returns B's data",
      "Intel SDM Vol. 3C 29.1 (Virtual Processor Identifiers), 29.4.1, 25.6.12",
      "sdm.29.1.vpid-tagging", "sdm.25.6.12.vpid-field")
{
    const struct vmx_caps *c = vmx_caps();
    vmx_require_ctl(VMX_CTL_PROC2, PROC2_VPID, "enable VPID");
    if (!(c->ept_vpid & VMX_VPID_INVVPID) ||
        !(c->ept_vpid & (VMX_VPID_INV_SINGLE | VMX_VPID_INV_ALL)))
        skip("IA32_VMX_EPT_VPID_CAP=%#llx: no single-context or all-contexts INVVPID (bits 32, "
             "41, 42)",
             (unsigned long long)c->ept_vpid);
    need_slot1_gpa();
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_em_read_guest);
    volatile uint64_t *a, *b;
    uint64_t *pte = vpid_guest(v, 1, &a, &b);
    if (!vpid_empty(1) || !vpid_empty(2))
        return;
    if (!vmx_run_expect(v, EXIT_VMCALL, "VPID 1: guest read through page A"))
        return;
    check_eq("VPID 1: guest read through A", v->gpr[VMX_GPR_RAX], *a);
    *pte = (uintptr_t)b | 0x63;
    vmcs_write(VMCS_VPID, 2);
    vmx_skip_insn(v);
    if (!vmx_run_expect(v, EXIT_VMCALL, "VPID 2: guest read"))
        return;
    check(v->gpr[VMX_GPR_RAX] == *b,
          "with VPID 2 the guest reads %#llx: VPID 1's translation was used (want page B's "
          "%#llx)",
          (unsigned long long)v->gpr[VMX_GPR_RAX], (unsigned long long)*b);
}

PROBE(vmx_vpid_disabled_flush, "vmx.vpid.disabled_flush", "VMX",
      "With enable VPID = 0, a guest reads linear 512 GiB through its own 4 KiB PTE (page A); "
      "the host points the PTE at page B without INVLPG, INVVPID or a CR3 load of its own and "
      "resumes the guest: the VM exit and VM entry invalidated VPID 0's linear mappings, and the "
      "guest's next read returns B's data",
      "Intel SDM Vol. 3C 29.1 (Virtual Processor Identifiers), 29.4.3.1",
      "sdm.29.1.vpid-disabled-flush")
{
    need_slot1_gpa();
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_em_read_guest);
    if (vmx_caps()->has_proc2 && (vmcs_read(VMCS_PROC_CTLS2) & PROC2_VPID))
        error("enable VPID set in the default VMCS");
    volatile uint64_t *a, *b;
    uint64_t *pte = vpid_guest(v, 0, &a, &b);
    if (!vmx_run_expect(v, EXIT_VMCALL, "guest read through page A"))
        return;
    check_eq("guest read through A", v->gpr[VMX_GPR_RAX], *a);
    *pte = (uintptr_t)b | 0x63;
    vmx_skip_insn(v);
    if (!vmx_run_expect(v, EXIT_VMCALL, "guest read after the PTE change"))
        return;
    check(v->gpr[VMX_GPR_RAX] == *b,
          "after a VM exit and entry without VPID the guest reads %#llx through a stale "
          "translation (want page B's %#llx)",
          (unsigned long long)v->gpr[VMX_GPR_RAX], (unsigned long long)*b);
}
