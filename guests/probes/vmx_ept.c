// SPDX-License-Identifier: MIT
/*
 * EPT: violations, misconfigurations, INVEPT, and the VM-entry checks on
 * the EPTP.
 */
#include "vmx.h"

void vmx_ep_guest(void);
extern const char vmx_ep_read[], vmx_ep_write[], vmx_ep_fetch[];
__asm__(".pushsection .text\n"
        ".type vmx_ep_guest, @function\n"
        "vmx_ep_guest:\n"
        "vmx_ep_read:\n"
        "   mov (%rdi), %rax\n"
        "   vmcall\n"
        "vmx_ep_write:\n"
        "   mov %rax, (%rdi)\n"
        "   vmcall\n"
        "vmx_ep_fetch:\n"
        "   jmp *%rdi\n"
        ".popsection\n");

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
      "Intel SDM Vol. 3C 29.3.3.2, 28.2.1, 31.3 (INVEPT)")
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
      "Intel SDM Vol. 3C 29.3.3.1, 28.2.1")
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
      "with a valid EPTP, an unsupported one VMfailValid(28); single-context INVEPT with an EPTP of "
      "memory type 2 gives VMfailValid(28)",
      "Intel SDM Vol. 3C 31.3 (INVEPT), A.10")
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
      "Intel SDM Vol. 3C 27.2.1.1, 25.6.11")
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
      "Intel SDM Vol. 3C 29.3.4 (Accessed and Dirty Flags for EPT), 25.6.11, A.10")
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
