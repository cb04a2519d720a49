/* SPDX-License-Identifier: MIT */
/*
 * VPID: INVVPID and the VM-entry check on the VPID.
 */
#include "vmx.h"

GUEST(vmx_vp_guest, "1: vmcall", "jmp 1b");

PROBE(vmx_vpid_invvpid, "vmx.vpid.invvpid", "VPID",
      "With a current VMCS: INVVPID type 4 gives VMfailValid(28); each supported type (bits "
      "40-43 of IA32_VMX_EPT_VPID_CAP) with VPID 1 and a canonical address gives VMsucceed; "
      "individual-address with a non-canonical address, and individual-address / single-context "
      "with VPID 0, give VMfailValid(28); an unsupported type gives VMfailValid(28)",
      "Intel SDM Vol. 3C 31.3 (INVVPID), A.10", "sdm.31.3.invvpid-types")
{
    const struct vmx_caps *c = vmx_caps();
    vmx_require_ctl(VMX_CTL_PROC2, PROC2_VPID, "enable VPID");
    if (!(c->ept_vpid & VMX_VPID_INVVPID))
        skip("IA32_VMX_EPT_VPID_CAP=%#llx: bit 32 (INVVPID) clear",
             (unsigned long long)c->ept_vpid);
    vmx_on();
    vmx_vcpu_new(vmx_vp_guest);
    struct vmx_res r = invvpid(4, 1, 0);
    check_vmx("INVVPID type 4", r, VMX_FAIL_VALID, VMXERR_INVEPT_INVVPID_OPERAND);
    static const struct {
        uint64_t type, cap;
        const char *name;
    } types[] = {
        {INVVPID_ADDR, VMX_VPID_INV_ADDR, "individual-address"},
        {INVVPID_SINGLE, VMX_VPID_INV_SINGLE, "single-context"},
        {INVVPID_ALL, VMX_VPID_INV_ALL, "all-context"},
        {INVVPID_SINGLE_NG, VMX_VPID_INV_SINGLE_NG, "single-context-retaining-globals"},
    };
    for (unsigned i = 0; i < ARRAY_SIZE(types); i++) {
        char what[96];
        bool sup = (c->ept_vpid & types[i].cap) != 0;
        r = invvpid(types[i].type, 1, 0x1000);
        snprintf(what, sizeof(what), "INVVPID %s (%s), VPID 1", types[i].name,
                 sup ? "supported" : "not supported");
        if (sup)
            check_vmx(what, r, VMX_SUCCEED, 0);
        else
            check_vmx(what, r, VMX_FAIL_VALID, VMXERR_INVEPT_INVVPID_OPERAND);
        if (!sup || types[i].type == INVVPID_ALL)
            continue;
        r = invvpid(types[i].type, 0, 0x1000);
        snprintf(what, sizeof(what), "INVVPID %s with VPID 0", types[i].name);
        check_vmx(what, r, VMX_FAIL_VALID, VMXERR_INVEPT_INVVPID_OPERAND);
        if (types[i].type == INVVPID_ADDR) {
            r = invvpid(INVVPID_ADDR, 1, 0x8000000000000000ull);
            check_vmx("INVVPID individual-address with a non-canonical address", r, VMX_FAIL_VALID,
                      VMXERR_INVEPT_INVVPID_OPERAND);
        }
    }
}

PROBE(vmx_entry_vpid_zero, "vmx.entry.vpid_zero", "VPID",
      "VMLAUNCH with enable VPID=1 and VPID 0 gives VMfailValid(7); with VPID 1 it launches",
      "Intel SDM Vol. 3C 27.2.1.1", "sdm.27.2.1.1.vpid-nonzero")
{
    vmx_require_ctl(VMX_CTL_PROC2, PROC2_VPID, "enable VPID");
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_vp_guest);
    vmcs_set_bits(VMCS_PROC_CTLS, PROC_SECONDARY_CTLS);
    vmcs_set_bits(VMCS_PROC_CTLS2, PROC2_VPID);
    vmcs_write(VMCS_VPID, 0);
    uint32_t r = vmx_run(v);
    check(r == VMX_RUN_VMFAIL && vmx_res_is(v->entry, VMX_FAIL_VALID, VMXERR_ENTRY_BAD_CTRL),
          "VMLAUNCH with VPID 0: want VMfailValid(7), got %s", vmx_exit_str(v));
    vmcs_write(VMCS_VPID, 1);
    v->launched = 0;
    vmx_run_expect(v, EXIT_VMCALL, "VMLAUNCH with VPID 1");
}

/* ---- INVVPID invalidates what it names ----------------------------------------------- */

/* guest: RAX = [RDI], VMCALL, again */
GUEST(vmx_vp_read_guest, "1: mov (%rdi), %rax", "vmcall", "jmp 1b");

#define VP_LINEAR  0x8000000000ull /* 512 GiB: PML4 slot 1, unused by the kernel */
#define VP_MAGIC_A 0xaaaa0000aaaa0001ull
#define VP_MAGIC_B 0xbbbb0000bbbb0002ull

/*
 * A guest with VPID 1 and its own page tables (the kernel's PML4 plus slot 1
 * mapping VP_LINEAR to page A with a 4 KiB PTE) reads VP_LINEAR; the host then
 * points the PTE at page B and executes INVVPID `type`; the guest's next read
 * must return B's data.
 */
static void invvpid_flush(uint64_t type, uint64_t cap_bit, unsigned cap_no, const char *name)
{
    const struct vmx_caps *c = vmx_caps();
    vmx_require_ctl(VMX_CTL_PROC2, PROC2_VPID, "enable VPID");
    if (!(c->ept_vpid & VMX_VPID_INVVPID))
        skip("IA32_VMX_EPT_VPID_CAP=%#llx: bit 32 (INVVPID) clear",
             (unsigned long long)c->ept_vpid);
    if (!(c->ept_vpid & cap_bit))
        skip("IA32_VMX_EPT_VPID_CAP=%#llx: bit %u (%s INVVPID) clear",
             (unsigned long long)c->ept_vpid, cap_no, name);
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_vp_read_guest);
    uint64_t *pml4 = alloc_page(), *pdpt = alloc_page(), *pd = alloc_page(), *pt = alloc_page();
    memcpy(pml4, (void *)(uintptr_t)(kernel_cr3() & EPT_ADDR_MASK), 4096);
    if (pml4[1] & 1)
        error("the kernel maps PML4 slot 1; pick another linear address");
    volatile uint64_t *a = alloc_page(), *b = alloc_page();
    *a = VP_MAGIC_A;
    *b = VP_MAGIC_B;
    pml4[1] = (uintptr_t)pdpt | 3;
    pdpt[0] = (uintptr_t)pd | 3;
    pd[0] = (uintptr_t)pt | 3;
    pt[0] = (uintptr_t)a | 3; /* present, writable, not global */
    vmcs_write(VMCS_GUEST_CR3, (uintptr_t)pml4 | (read_cr3() & 0xfff));
    vmcs_set_bits(VMCS_PROC_CTLS, PROC_SECONDARY_CTLS);
    vmcs_set_bits(VMCS_PROC_CTLS2, PROC2_VPID);
    vmcs_write(VMCS_VPID, 1);
    v->gpr[VMX_GPR_RDI] = VP_LINEAR;
    if (!vmx_run_expect(v, EXIT_VMCALL, "guest read through page A"))
        return;
    check_eq("guest read through the PTE of page A", v->gpr[VMX_GPR_RAX], VP_MAGIC_A);
    pt[0] = (uintptr_t)b | 3;
    struct vmx_res r = invvpid(type, 1, VP_LINEAR);
    char what[96];
    snprintf(what, sizeof(what), "INVVPID %s (VPID 1, address %#llx)", name,
             (unsigned long long)VP_LINEAR);
    if (!check_vmx(what, r, VMX_SUCCEED, 0))
        return;
    vmx_skip_insn(v);
    if (!vmx_run_expect(v, EXIT_VMCALL, "guest read after the PTE change and INVVPID"))
        return;
    check(v->gpr[VMX_GPR_RAX] == VP_MAGIC_B,
          "after %s the guest still reads %#llx through a "
          "stale translation (want page B's %#llx)",
          what, (unsigned long long)v->gpr[VMX_GPR_RAX], VP_MAGIC_B);
}

PROBE(vmx_vpid_flush_addr, "vmx.vpid.flush_addr", "VPID",
      "A guest with VPID 1 reads a linear address L through its own 4 KiB PTE (page A); the host "
      "points the PTE at page B and executes individual-address INVVPID (type 0) for VPID 1 and "
      "L: VMsucceed, and the guest's next read of L returns B's data",
      "Intel SDM Vol. 3C 29.4.3 (Guidelines for Use of the INVVPID Instruction), 31.3 (INVVPID)",
      "sdm.29.4.3.invvpid-address", "sdm.29.1.vpid-kept")
{
    invvpid_flush(INVVPID_ADDR, VMX_VPID_INV_ADDR, 40, "individual-address");
}

PROBE(vmx_vpid_flush_single, "vmx.vpid.flush_single", "VPID",
      "As vmx.vpid.flush_addr with single-context INVVPID (type 1) for VPID 1: VMsucceed, and the "
      "guest's next read of L returns B's data",
      "Intel SDM Vol. 3C 29.4.3, 31.3 (INVVPID)", "sdm.29.4.3.invvpid-single")
{
    invvpid_flush(INVVPID_SINGLE, VMX_VPID_INV_SINGLE, 41, "single-context");
}

PROBE(vmx_vpid_flush_all, "vmx.vpid.flush_all", "VPID",
      "As vmx.vpid.flush_addr with all-contexts INVVPID (type 2): VMsucceed, and the guest's next "
      "read of L returns B's data",
      "Intel SDM Vol. 3C 29.4.3, 31.3 (INVVPID)", "sdm.29.4.3.invvpid-all")
{
    invvpid_flush(INVVPID_ALL, VMX_VPID_INV_ALL, 42, "all-contexts");
}

PROBE(vmx_vpid_flush_single_nonglobal, "vmx.vpid.flush_single_nonglobal", "VPID",
      "As vmx.vpid.flush_addr with single-context-retaining-globals INVVPID (type 3) for VPID 1 "
      "and a non-global PTE (G=0): VMsucceed, and the guest's next read of L returns B's data",
      "Intel SDM Vol. 3C 29.4.3, 31.3 (INVVPID)", "sdm.29.4.3.invvpid-single-nonglobal")
{
    invvpid_flush(INVVPID_SINGLE_NG, VMX_VPID_INV_SINGLE_NG, 43,
                  "single-context-retaining-globals");
}
