// SPDX-License-Identifier: MIT
/*
 * VPID: INVVPID and the VM-entry check on the VPID.
 */
#include "vmx.h"

void vmx_vp_guest(void);
__asm__(".pushsection .text\n"
        ".type vmx_vp_guest, @function\n"
        "vmx_vp_guest:\n"
        "1: vmcall\n"
        "   jmp 1b\n"
        ".popsection\n");

PROBE(vmx_vpid_invvpid, "vmx.vpid.invvpid", "VPID",
      "With a current VMCS: INVVPID type 4 gives VMfailValid(28); each supported type (bits "
      "40-43 of IA32_VMX_EPT_VPID_CAP) with VPID 1 and a canonical address gives VMsucceed; "
      "individual-address with a non-canonical address, and individual-address / single-context "
      "with VPID 0, give VMfailValid(28); an unsupported type gives VMfailValid(28)",
      "Intel SDM Vol. 3C 31.3 (INVVPID), A.10")
{
    const struct vmx_caps *c = vmx_caps();
    vmx_require_ctl(VMX_CTL_PROC2, PROC2_VPID, "enable VPID");
    if (!(c->ept_vpid & VMX_VPID_INVVPID))
        skip("IA32_VMX_EPT_VPID_CAP=%#llx: bit 32 (INVVPID) clear", (unsigned long long)c->ept_vpid);
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
      "Intel SDM Vol. 3C 27.2.1.1")
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
