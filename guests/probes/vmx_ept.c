/* SPDX-License-Identifier: MIT */
/*
 * EPT: violations, misconfigurations, INVEPT, and the VM-entry checks on
 * the EPTP.
 */
#include "vmx.h"

extern const char vmx_ep_read[], vmx_ep_write[], vmx_ep_fetch[];
GUEST(vmx_ep_guest, "vmx_ep_read:\n"
                    "    mov (%rdi), %rax\n"
                    "    vmcall\n"
                    "vmx_ep_write:\n"
                    "    mov %rax, (%rdi)\n"
                    "    vmcall\n"
                    "vmx_ep_fetch:\n"
                    "    jmp *%rdi");

/* bits 11:9 are defined only with advanced EPT violation information */
static uint64_t qual_mask(void)
{
    return (vmx_caps()->ept_vpid & VMX_EPT_ADV_EXITINFO) ? ~0xe00ull : ~0ull;
}

static void expect_violation(struct vmx_vcpu *v, uint64_t page, const char *rip, uint64_t qual,
                             const char *what)
{
    if (!vmx_run_expect(v, EXIT_EPT_VIOLATION, what))
        return;
    check_eq("guest RIP at the EPT violation", v->guest_rip, (uintptr_t)rip);
    check_eq("guest-physical address", v->gpa, page);
    check_eq("guest-linear address", vmcs_read(VMCS_GUEST_LINEAR_ADDR), page);
    check(((v->exit_qual ^ qual) & qual_mask()) == 0, "%s: exit qualification %#llx, want %#llx",
          what, (unsigned long long)v->exit_qual, (unsigned long long)qual);
}

PROBE(vmx_ept_violation, "vmx.ept.violation", "EPT",
      "With an identity EPT whose 4 KiB entry for a data page P is not present, a guest read of P "
      "exits with reason 48, qualification 0x181 (read, linear address valid, translated access), "
      "GPA = linear address = P; with the entry R+X, a write gives 0x1aa (write, readable, "
      "executable); with the entry R+W, a jump to P gives 0x19c (fetch, readable, writable); "
      "after the entry is made RWX and INVEPT, each access completes",
      "Intel SDM Vol. 3C 29.3.3.2, 28.2.1, 31.3 (INVEPT)", "sdm.29.3.3.2.not-present",
      "sdm.28.2.1.qual-ept-violation", "sdm.28.2.1.guest-physical-address",
      "sdm.C.reason-48-ept-violation")
{
    vmx_on();
    uint64_t eptp = vmx_ept_identity();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ep_guest);
    vmx_use_ept(v, eptp);
    uint8_t *page = alloc_page();
    uint64_t pa = (uintptr_t)page;
    page[0] = 0x0f, page[1] = 0x01, page[2] = 0xc1; /* VMCALL */
    uint64_t *pte = vmx_ept_pte(eptp, pa);
    const uint64_t rwx = *pte;
    v->gpr[VMX_GPR_RDI] = pa;

    *pte = rwx & ~EPT_RWX;
    vmx_ept_flush(eptp);
    expect_violation(v, pa, vmx_ep_read, EPT_VQ_READ | EPT_VQ_GLA_VALID | EPT_VQ_TRANSLATED,
                     "read of a page whose EPT entry is not present");
    *pte = rwx;
    vmx_ept_flush(eptp);
    if (!vmx_run_expect(v, EXIT_VMCALL, "the read again with the entry RWX"))
        return;
    vmx_skip_insn(v);

    *pte = (rwx & ~EPT_RWX) | EPT_R | EPT_X;
    vmx_ept_flush(eptp);
    expect_violation(v, pa, vmx_ep_write,
                     EPT_VQ_WRITE | EPT_VQ_READABLE | EPT_VQ_EXECUTABLE | EPT_VQ_GLA_VALID |
                         EPT_VQ_TRANSLATED,
                     "write to a page whose EPT entry is R+X");
    *pte = rwx;
    vmx_ept_flush(eptp);
    if (!vmx_run_expect(v, EXIT_VMCALL, "the write again with the entry RWX"))
        return;
    vmx_skip_insn(v);

    *pte = (rwx & ~EPT_RWX) | EPT_R | EPT_W;
    vmx_ept_flush(eptp);
    expect_violation(v, pa, (const char *)page,
                     EPT_VQ_FETCH | EPT_VQ_READABLE | EPT_VQ_WRITABLE | EPT_VQ_GLA_VALID |
                         EPT_VQ_TRANSLATED,
                     "instruction fetch from a page whose EPT entry is R+W");
    *pte = rwx;
    vmx_ept_flush(eptp);
    if (vmx_run_expect(v, EXIT_VMCALL, "the fetch again with the entry RWX"))
        check_eq("guest RIP at the VMCALL on page P", v->guest_rip, pa);
}

PROBE(vmx_ept_misconfig, "vmx.ept.misconfig", "EPT",
      "A guest read of a page whose 4 KiB EPT entry is write-only (R=0, W=1) exits with reason 49 "
      "(EPT misconfiguration), GPA = the page, RIP = the load; so does a read-write entry with the "
      "reserved memory type 2",
      "Intel SDM Vol. 3C 29.3.3.1, 28.2.1", "sdm.29.3.3.1.write-no-read", "sdm.29.3.3.1.memtype",
      "sdm.29.3.3.1.misconfig-gpa", "sdm.C.reason-49-ept-misconfig")
{
    vmx_on();
    uint64_t eptp = vmx_ept_identity();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ep_guest);
    vmx_use_ept(v, eptp);
    uint64_t pa = (uintptr_t)alloc_page();
    uint64_t *pte = vmx_ept_pte(eptp, pa);
    const uint64_t rwx = *pte;
    v->gpr[VMX_GPR_RDI] = pa;
    *pte = (rwx & ~EPT_RWX) | EPT_W;
    vmx_ept_flush(eptp);
    if (vmx_run_expect(v, EXIT_EPT_MISCONFIG, "read through a write-only EPT entry")) {
        check_eq("guest-physical address", v->gpa, pa);
        check_eq("guest RIP", v->guest_rip, (uintptr_t)vmx_ep_read);
    }
    *pte = (rwx & ~EPT_MT(7)) | EPT_MT(2);
    vmx_ept_flush(eptp);
    if (vmx_run_expect(v, EXIT_EPT_MISCONFIG, "read through an EPT entry with memory type 2")) {
        check_eq("guest-physical address", v->gpa, pa);
        check_eq("guest RIP", v->guest_rip, (uintptr_t)vmx_ep_read);
    }
}

PROBE(vmx_ept_invept, "vmx.ept.invept", "EPT",
      "With a current VMCS: INVEPT with type 0 and type 3 gives VMfailValid(28); each type "
      "IA32_VMX_EPT_VPID_CAP reports (single-context bit 25, all-context bit 26) gives VMsucceed "
      "with a valid EPTP, an unsupported one VMfailValid(28); single-context INVEPT with an EPTP "
      "of "
      "memory type 2 gives VMfailValid(28)",
      "Intel SDM Vol. 3C 31.3 (INVEPT), A.10", "sdm.31.3.invept-types")
{
    const struct vmx_caps *c = vmx_caps();
    vmx_require_ctl(VMX_CTL_PROC2, PROC2_EPT, "enable EPT");
    if (!(c->ept_vpid & VMX_EPT_INVEPT))
        skip("IA32_VMX_EPT_VPID_CAP=%#llx: bit 20 (INVEPT) clear", (unsigned long long)c->ept_vpid);
    vmx_on();
    uint64_t eptp = vmx_ept_identity();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ep_guest);
    (void)v;
    static const uint64_t bad_types[] = {0, 3};
    for (unsigned i = 0; i < ARRAY_SIZE(bad_types); i++) {
        struct vmx_res r = invept(bad_types[i], eptp);
        char what[48];
        snprintf(what, sizeof(what), "INVEPT type %llu", (unsigned long long)bad_types[i]);
        check_vmx(what, r, VMX_FAIL_VALID, VMXERR_INVEPT_INVVPID_OPERAND);
    }
    struct vmx_res r = invept(INVEPT_SINGLE, eptp);
    if (c->ept_vpid & VMX_EPT_INVEPT_SINGLE)
        check_vmx("INVEPT single-context (supported)", r, VMX_SUCCEED, 0);
    else
        check_vmx("INVEPT single-context (not supported)", r, VMX_FAIL_VALID,
                  VMXERR_INVEPT_INVVPID_OPERAND);
    r = invept(INVEPT_ALL, 0);
    if (c->ept_vpid & VMX_EPT_INVEPT_ALL)
        check_vmx("INVEPT all-context (supported)", r, VMX_SUCCEED, 0);
    else
        check_vmx("INVEPT all-context (not supported)", r, VMX_FAIL_VALID,
                  VMXERR_INVEPT_INVVPID_OPERAND);
    if (c->ept_vpid & VMX_EPT_INVEPT_SINGLE) {
        r = invept(INVEPT_SINGLE, (eptp & ~7ull) | 2);
        check_vmx("INVEPT single-context with EPTP memory type 2", r, VMX_FAIL_VALID,
                  VMXERR_INVEPT_INVVPID_OPERAND);
    }
}

PROBE(vmx_entry_eptp, "vmx.entry.eptp", "EPT",
      "VMLAUNCH with enable EPT and an EPTP of memory type 2 (reserved), of page-walk length 1, "
      "or with reserved bit 11 set gives VMfailValid(7); the valid EPTP then launches",
      "Intel SDM Vol. 3C 27.2.1.1, 25.6.11", "sdm.27.2.1.1.eptp-memtype",
      "sdm.27.2.1.1.eptp-walk-length", "sdm.27.2.1.1.eptp-reserved")
{
    vmx_on();
    uint64_t eptp = vmx_ept_identity();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ep_guest);
    vmx_use_ept(v, eptp);
    v->gpr[VMX_GPR_RDI] = (uintptr_t)alloc_page();
    static const struct {
        uint64_t clear, set;
        const char *what;
    } bad[] = {
        {7, 2, "memory type 2"},
        {7ull << 3, 0, "page-walk length 1"},
        {0, 1ull << 11, "reserved bit 11 set"},
    };
    for (unsigned i = 0; i < ARRAY_SIZE(bad); i++) {
        uint64_t e = (eptp & ~bad[i].clear) | bad[i].set;
        vmcs_write(VMCS_EPTP, e);
        v->launched = 0;
        uint32_t r = vmx_run(v);
        check(r == VMX_RUN_VMFAIL && vmx_res_is(v->entry, VMX_FAIL_VALID, VMXERR_ENTRY_BAD_CTRL),
              "EPTP %#llx (%s): want VMfailValid(7), got %s", (unsigned long long)e, bad[i].what,
              vmx_exit_str(v));
    }
    vmcs_write(VMCS_EPTP, eptp);
    v->launched = 0;
    vmx_run_expect(v, EXIT_VMCALL, "VMLAUNCH with the valid EPTP");
}

PROBE(vmx_ept_ad, "vmx.ept.ad", "EPT",
      "With EPT accessed/dirty flags enabled (EPTP bit 6) and A=D=0 in the 4 KiB EPT entry of a "
      "data page P, a guest read of P sets A (bit 8) and leaves D (bit 9) clear; a guest write "
      "then sets D",
      "Intel SDM Vol. 3C 29.3.4 (Accessed and Dirty Flags for EPT), 25.6.11, A.10",
      "sdm.29.3.4.ad-accessed", "sdm.29.3.4.ad-dirty")
{
    vmx_caps();
    if (!(vmx_caps()->ept_vpid & VMX_EPT_AD))
        skip("IA32_VMX_EPT_VPID_CAP=%#llx: bit 21 (EPT accessed and dirty flags) clear",
             (unsigned long long)vmx_caps()->ept_vpid);
    vmx_on();
    uint64_t eptp = vmx_ept_identity() | EPTP_AD;
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ep_guest);
    uint64_t pa = (uintptr_t)alloc_page();
    uint64_t *pte = vmx_ept_pte(eptp, pa);
    vmx_use_ept(v, eptp);
    v->gpr[VMX_GPR_RDI] = pa;
    if (!check_eq("A/D of the fresh entry", *pte & (EPT_A | EPT_D), 0))
        return;
    if (!vmx_run_expect(v, EXIT_VMCALL, "guest read of P"))
        return;
    check_eq("EPT A/D after the read", *pte & (EPT_A | EPT_D), EPT_A);
    vmx_skip_insn(v);
    if (!vmx_run_expect(v, EXIT_VMCALL, "guest write of P"))
        return;
    check_eq("EPT A/D after the write", *pte & (EPT_A | EPT_D), EPT_A | EPT_D);
}

PROBE(vmx_ept_exec_only, "vmx.ept.exec_only", "EPT",
      "With execute-only translations (IA32_VMX_EPT_VPID_CAP[0]), a 4 KiB EPT entry with X=1 and "
      "R=W=0 for a page P holding VMCALL is no misconfiguration: a guest jump to P executes the "
      "VMCALL (exit 18 at RIP = P); a guest read of P exits with reason 48, qualification 0x1a1 "
      "(read, executable, linear address valid, translated access), GPA = P",
      "Intel SDM Vol. 3C 29.3.2, 29.3.3.1, 29.3.3.2, A.10", "sdm.29.3.2.ept-execute-only",
      "sdm.29.3.3.1.execute-only-unsupported")
{
    vmx_on();
    uint64_t eptp = vmx_ept_identity();
    if (!(vmx_caps()->ept_vpid & VMX_EPT_EXEC_ONLY))
        skip("IA32_VMX_EPT_VPID_CAP[0]=0: no execute-only EPT translations");
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ep_guest);
    vmx_use_ept(v, eptp);
    uint8_t *page = alloc_page();
    uint64_t pa = (uintptr_t)page;
    page[0] = 0x0f, page[1] = 0x01, page[2] = 0xc1; /* VMCALL */
    uint64_t *pte = vmx_ept_pte(eptp, pa);
    *pte = (*pte & ~EPT_RWX) | EPT_X;
    vmx_ept_flush(eptp);
    v->gpr[VMX_GPR_RDI] = pa;
    vmcs_write(VMCS_GUEST_RIP, (uintptr_t)vmx_ep_fetch);
    if (vmx_run_expect(v, EXIT_VMCALL, "jump to an execute-only page"))
        check_eq("guest RIP (the VMCALL on the execute-only page)", v->guest_rip, pa);
    vmcs_write(VMCS_GUEST_RIP, (uintptr_t)vmx_ep_read);
    if (!vmx_run_expect(v, EXIT_EPT_VIOLATION, "read of an execute-only page"))
        return;
    check_eq("guest RIP at the EPT violation", v->guest_rip, (uintptr_t)vmx_ep_read);
    check_eq("guest-physical address", v->gpa, pa);
    /* bit 6 is defined only with mode-based execute control; bits 11:9 only with
     * advanced EPT violation information */
    uint64_t mask = qual_mask() & ~0x40ull,
             want = EPT_VQ_READ | EPT_VQ_EXECUTABLE | EPT_VQ_GLA_VALID | EPT_VQ_TRANSLATED;
    check(((v->exit_qual ^ want) & mask) == 0, "exit qualification %#llx, want %#llx",
          (unsigned long long)v->exit_qual, (unsigned long long)want);
}

/* guest: reads (%rdi) into RAX, VMCALL, then writes RSI to (%rdi), VMCALL */
GUEST(vmx_ep_alias_guest, "mov (%rdi), %rax", "vmcall", "mov %rsi, (%rdi)", "vmcall", "ud2");

#define ALIAS_GPA 0x80000000ull /* 2 GiB: no RAM there on the reference models */

static void alias_check(struct vmx_vcpu *v, volatile uint64_t *data, const char *what)
{
    *data = 0x5555aaaa12345678ull;
    v->gpr[VMX_GPR_RDI] = ALIAS_GPA + ((uintptr_t)data & 0x1fffff);
    v->gpr[VMX_GPR_RSI] = 0x0badc0de0badc0deull;
    vmcs_write(VMCS_GUEST_RIP, (uintptr_t)vmx_ep_alias_guest);
    if (!vmx_run_expect(v, EXIT_VMCALL, what))
        return;
    check(v->gpr[VMX_GPR_RAX] == 0x5555aaaa12345678ull,
          "%s: guest read %#llx through the alias, "
          "want the data page's %#llx",
          what, (unsigned long long)v->gpr[VMX_GPR_RAX], 0x5555aaaa12345678ull);
    vmx_skip_insn(v);
    if (vmx_run_expect(v, EXIT_VMCALL, what))
        check(*data == 0x0badc0de0badc0deull,
              "%s: the guest's write through the alias did not "
              "reach the data page (%#llx)",
              what, (unsigned long long)*data);
}

PROBE(vmx_ept_large_pages, "vmx.ept.large_pages", "EPT",
      "EPT large pages: a 2 MiB EPT page (PDE with bit 7) mapping guest-physical 2 GiB onto the 2 "
      "MiB frame of a data page D makes a guest read at 2 GiB + (D mod 2 MiB) return D's contents "
      "and a guest write there change D; where IA32_VMX_EPT_VPID_CAP[17] offers 1 GiB pages, an "
      "EPT built of 1 GiB PDPTEs (identity, with guest-physical 2 GiB mapped onto 0) does the same",
      "Intel SDM Vol. 3C 29.3.2 (Tables 29-4, 29-5), A.10", "sdm.29.3.2.ept-large-pages")
{
    vmx_on();
    uint64_t eptp = vmx_ept_identity();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ep_alias_guest);
    vmx_use_ept(v, eptp);
    volatile uint64_t *data = alloc_page();
    uint64_t mt = eptp & 7;
    uint64_t *pml4 = (uint64_t *)(uintptr_t)(eptp & EPT_ADDR_MASK);
    uint64_t *pdpt = (uint64_t *)(uintptr_t)(pml4[0] & EPT_ADDR_MASK);
    uint64_t *pd = (uint64_t *)(uintptr_t)(pdpt[ALIAS_GPA >> 30] & EPT_ADDR_MASK);
    pd[(ALIAS_GPA >> 21) & 511] = ((uintptr_t)data & ~0x1fffffull) | EPT_PS | EPT_MT(mt) | EPT_RWX;
    vmx_ept_flush(eptp);
    alias_check(v, data, "access through a 2 MiB EPT alias");
    if (!(vmx_caps()->ept_vpid & VMX_EPT_1G)) {
        note("IA32_VMX_EPT_VPID_CAP[17]=0: no 1 GiB EPT pages, that part not run");
        return;
    }
    uint64_t *pml4g = alloc_page(), *pdptg = alloc_page();
    pml4g[0] = (uintptr_t)pdptg | EPT_RWX;
    for (uint64_t i = 0; i < 4; i++)
        pdptg[i] = (i << 30) | EPT_PS | EPT_MT(mt) | EPT_RWX;
    pdptg[ALIAS_GPA >> 30] = 0 | EPT_PS | EPT_MT(mt) | EPT_RWX;
    uint64_t eptp1g = (uintptr_t)pml4g | (eptp & 0xfff);
    vmcs_write(VMCS_EPTP, eptp1g);
    vmx_ept_flush(eptp1g);
    /* with a 1 GiB alias of 0..1 GiB the offset of D is its whole address */
    data[0] = 0;
    v->gpr[VMX_GPR_RDI] = ALIAS_GPA + (uintptr_t)data;
    v->gpr[VMX_GPR_RSI] = 0x0badc0de0badc0deull;
    *data = 0x5555aaaa12345678ull;
    vmcs_write(VMCS_GUEST_RIP, (uintptr_t)vmx_ep_alias_guest);
    if (!vmx_run_expect(v, EXIT_VMCALL, "read through a 1 GiB EPT alias"))
        return;
    check_eq("guest read through the 1 GiB alias", v->gpr[VMX_GPR_RAX], 0x5555aaaa12345678ull);
    vmx_skip_insn(v);
    if (vmx_run_expect(v, EXIT_VMCALL, "write through a 1 GiB EPT alias"))
        check_eq("data page after the guest's write through the 1 GiB alias", *data,
                 0x0badc0de0badc0deull);
}

PROBE(vmx_ept_invept_flush, "vmx.ept.invept_flush", "EPT",
      "A guest reads guest-physical page G through a 4 KiB EPT entry mapping it to page A; the "
      "host "
      "points the entry at page B and executes single-context INVEPT (where "
      "IA32_VMX_EPT_VPID_CAP[25]) for the EPTP: the guest's next read of G returns B's data; the "
      "entry back at A and an all-contexts INVEPT (where bit 26): the guest reads A's data again",
      "Intel SDM Vol. 3C 29.4.2, 29.4.3.1, 31.3 (INVEPT), A.10", "sdm.29.4.3.invept-single",
      "sdm.29.4.3.invept-global", "sdm.29.4.2.stale")
{
    vmx_on();
    uint64_t eptp = vmx_ept_identity();
    uint64_t cap = vmx_caps()->ept_vpid;
    if (!(cap & VMX_EPT_INVEPT))
        skip("IA32_VMX_EPT_VPID_CAP=%#llx: bit 20 (INVEPT) clear", (unsigned long long)cap);
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ep_guest);
    vmx_use_ept(v, eptp);
    volatile uint64_t *g = alloc_page(), *b = alloc_page();
    *g = 0xaaaa0000aaaa0001ull;
    *b = 0xbbbb0000bbbb0002ull;
    uint64_t *pte = vmx_ept_pte(eptp, (uintptr_t)g);
    const uint64_t orig = *pte;
    vmx_ept_flush(eptp);
    v->gpr[VMX_GPR_RDI] = (uintptr_t)g;
    static const struct {
        uint64_t type, cap;
        const char *name;
    } types[] = {{INVEPT_SINGLE, VMX_EPT_INVEPT_SINGLE, "single-context"},
                 {INVEPT_ALL, VMX_EPT_INVEPT_ALL, "all-contexts"}};
    bool to_b = true;
    for (unsigned i = 0; i < ARRAY_SIZE(types); i++) {
        if (!(cap & types[i].cap)) {
            note("%s INVEPT not offered: not run", types[i].name);
            continue;
        }
        uint64_t want = to_b ? 0xbbbb0000bbbb0002ull : 0xaaaa0000aaaa0001ull;
        vmcs_write(VMCS_GUEST_RIP, (uintptr_t)vmx_ep_read);
        if (!vmx_run_expect(v, EXIT_VMCALL, "guest read of G"))
            return;
        *pte = to_b ? (((uintptr_t)b) | (orig & 0xfff)) : orig;
        char what[64];
        snprintf(what, sizeof(what), "INVEPT %s", types[i].name);
        if (!check_vmx(what, invept(types[i].type, eptp), VMX_SUCCEED, 0))
            return;
        vmcs_write(VMCS_GUEST_RIP, (uintptr_t)vmx_ep_read);
        if (!vmx_run_expect(v, EXIT_VMCALL, "guest read of G after the EPT change and INVEPT"))
            return;
        check(v->gpr[VMX_GPR_RAX] == want,
              "after %s the guest reads %#llx (want %#llx): stale "
              "EPT translation",
              what, (unsigned long long)v->gpr[VMX_GPR_RAX], (unsigned long long)want);
        to_b = !to_b;
    }
    *pte = orig;
    vmx_ept_flush(eptp);
}

PROBE(vmx_ept_misconfig_reserved, "vmx.ept.misconfig_reserved", "EPT",
      "EPT misconfigurations from reserved bits on the path to a data page mapped alone at "
      "guest-physical 2 GiB (its own EPT PD and PT), each exiting with reason 49, GPA = 2 GiB, RIP "
      "= the load: the 4 KiB EPT entry with address bit MAXPHYADDR set; the non-leaf PDE with "
      "reserved bit 3 set; the non-leaf PDPTE with reserved bit 3 set; with the bits cleared and "
      "INVEPT the read completes and returns the page's data",
      "Intel SDM Vol. 3C 29.3.2 (Tables 29-1 to 29-6), 29.3.3.1, 28.2.1", "sdm.29.3.3.1.rsvd-pte",
      "sdm.29.3.3.1.rsvd-pde", "sdm.29.3.3.1.rsvd-pdpte", "sdm.29.3.3.1.rsvd-pml4e")
{
    vmx_on();
    uint64_t eptp = vmx_ept_identity();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ep_guest);
    vmx_use_ept(v, eptp);
    volatile uint64_t *data = alloc_page();
    *data = 0x1234567887654321ull;
    uint64_t *pml4 = (uint64_t *)(uintptr_t)(eptp & EPT_ADDR_MASK);
    uint64_t *pdpt = (uint64_t *)(uintptr_t)(pml4[0] & EPT_ADDR_MASK);
    uint64_t *pd2 = alloc_page(), *pt2 = alloc_page();
    uint64_t mt = eptp & 7;
    pt2[0] = (uintptr_t)data | EPT_MT(mt) | EPT_RWX;
    pd2[0] = (uintptr_t)pt2 | EPT_RWX;
    pdpt[ALIAS_GPA >> 30] = (uintptr_t)pd2 | EPT_RWX;
    vmx_ept_flush(eptp);
    v->gpr[VMX_GPR_RDI] = ALIAS_GPA;
    unsigned maxpa = cpu_phys_addr_bits();
    struct {
        uint64_t *entry, bit;
        const char *what;
    } cases[] = {
        {&pt2[0], maxpa < 52 ? 1ull << maxpa : 0,
         "read through a 4 KiB EPT entry with address bit MAXPHYADDR"},
        {&pd2[0], 1ull << 3, "read through a non-leaf EPT PDE with reserved bit 3"},
        {&pdpt[ALIAS_GPA >> 30], 1ull << 3,
         "read through a non-leaf EPT PDPTE with reserved bit 3"},
    };
    for (unsigned i = 0; i < ARRAY_SIZE(cases); i++) {
        if (!cases[i].bit) {
            note("MAXPHYADDR 52: no reserved address bit, case not run");
            continue;
        }
        const uint64_t old = *cases[i].entry;
        *cases[i].entry = old | cases[i].bit;
        vmx_ept_flush(eptp);
        vmcs_write(VMCS_GUEST_RIP, (uintptr_t)vmx_ep_read);
        if (vmx_run_expect(v, EXIT_EPT_MISCONFIG, cases[i].what)) {
            check(v->gpa == ALIAS_GPA, "%s: GPA %#llx, want %#llx", cases[i].what,
                  (unsigned long long)v->gpa, ALIAS_GPA);
            check(v->guest_rip == (uintptr_t)vmx_ep_read, "%s: guest RIP %#llx", cases[i].what,
                  (unsigned long long)v->guest_rip);
        }
        *cases[i].entry = old;
        vmx_ept_flush(eptp);
    }
    vmcs_write(VMCS_GUEST_RIP, (uintptr_t)vmx_ep_read);
    if (vmx_run_expect(v, EXIT_VMCALL, "the read with the reserved bits cleared"))
        check_eq("guest read through the restored entries", v->gpr[VMX_GPR_RAX],
                 0x1234567887654321ull);
}

/* ---- an EPT violation during the guest's own page walk ------------------------------ */

#define WALK_LINEAR 0x8000000000ull /* 512 GiB: PML4 slot 1, unused by the kernel */

PROBE(vmx_ept_violation_walk, "vmx.ept.violation_walk", "EPT",
      "A guest with its own page tables reads linear L (PML4 slot 1) whose guest PTE lies in a "
      "page "
      "T whose EPT entry is not present: EPT violation (reason 48) on the walk's read of the PTE, "
      "GPA = T + 8 * PT index of L, guest-linear address = L, qualification 0x81 (read, linear "
      "address valid, bit 8 clear: an access to a guest paging-structure entry); with T mapped "
      "again the read completes",
      "Intel SDM Vol. 3C 28.2.1 (Table 28-7, bits 7 and 8), 29.3.3.2",
      "sdm.29.3.3.2.guest-paging-access", "sdm.28.2.1.qual-ept-violation")
{
    vmx_on();
    uint64_t eptp = vmx_ept_identity();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ep_guest);
    vmx_use_ept(v, eptp);
    uint64_t *pml4 = alloc_page(), *pdpt = alloc_page(), *pd = alloc_page(), *pt = alloc_page();
    memcpy(pml4, (void *)(uintptr_t)(kernel_cr3() & EPT_ADDR_MASK), 4096);
    if (pml4[1] & 1)
        error("the kernel maps PML4 slot 1; pick another linear address");
    volatile uint64_t *data = alloc_page();
    *data = 0x7777666655554444ull;
    const unsigned idx = 5; /* L = WALK_LINEAR + 5 pages: PTE at T + 0x28 */
    const uint64_t l = WALK_LINEAR + ((uint64_t)idx << 12);
    pml4[1] = (uintptr_t)pdpt | 0x23; /* present, writable, accessed */
    pdpt[0] = (uintptr_t)pd | 0x23;
    pd[0] = (uintptr_t)pt | 0x23;
    pt[idx] = (uintptr_t)data | 0x63; /* present, writable, accessed, dirty */
    vmcs_write(VMCS_GUEST_CR3, (uintptr_t)pml4 | (read_cr3() & 0xfff));
    uint64_t *ept_t = vmx_ept_pte(eptp, (uintptr_t)pt);
    const uint64_t rwx = *ept_t;
    *ept_t = rwx & ~EPT_RWX;
    vmx_ept_flush(eptp);
    v->gpr[VMX_GPR_RDI] = l;
    vmcs_write(VMCS_GUEST_RIP, (uintptr_t)vmx_ep_read);
    if (vmx_run_expect(v, EXIT_EPT_VIOLATION, "guest read whose PTE page is not mapped by EPT")) {
        check_eq("guest RIP", v->guest_rip, (uintptr_t)vmx_ep_read);
        check_eq("guest-physical address (the guest PTE)", v->gpa, (uintptr_t)pt + 8 * idx);
        check_eq("guest-linear address", vmcs_read(VMCS_GUEST_LINEAR_ADDR), l);
        uint64_t want = EPT_VQ_READ | EPT_VQ_GLA_VALID;
        check(((v->exit_qual ^ want) & qual_mask()) == 0,
              "exit qualification %#llx, want %#llx (bit 8 clear: paging-structure access)",
              (unsigned long long)v->exit_qual, (unsigned long long)want);
    }
    *ept_t = rwx;
    vmx_ept_flush(eptp);
    if (vmx_run_expect(v, EXIT_VMCALL, "the read with the PTE page mapped again"))
        check_eq("guest read through its own page tables", v->gpr[VMX_GPR_RAX],
                 0x7777666655554444ull);
}
