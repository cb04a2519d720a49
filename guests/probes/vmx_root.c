/* SPDX-License-Identifier: MIT */
/*
 * VMX root operation: VMXON/VMXOFF and the VMCS-maintenance instructions,
 * their VMsucceed/VMfailInvalid/VMfailValid outcomes and error numbers.
 */
#include "vmx.h"

/* a VMX instruction that must not fault; returns its outcome */
static struct vmx_res insn(enum vmx_insn op, uint64_t a, uint64_t b, uint64_t *out,
                           const char *what)
{
    struct vmx_res r = {VMX_SUCCEED, 0};
    struct fault f;
    if (vmx_insn_safe(op, a, b, 0, &r, out, &f) != NO_FAULT)
        fail("%s raised %s", what, fault_str(&f));
    return r;
}

static void write_cr4_fn(void *p) { write_cr4(*(uint64_t *)p); }

PROBE(vmx_root_vmxon, "vmx.vmxon.basic", "VMX",
      "With CR4.VMXE=1 and a valid VMXON region, VMXON gives VMsucceed; a second VMXON gives "
      "VMfailInvalid (no current VMCS) and, after VMPTRLD of a VMCS, VMfailValid(15); clearing "
      "CR4.VMXE in VMX operation raises #GP(0); VMXOFF gives VMsucceed, after which CR4.VMXE can "
      "be cleared and VMXOFF raises #UD",
      "Intel SDM Vol. 3C 31.3 (VMXON, VMXOFF), 24.8", "sdm.31.3.vmxon-in-root",
      "sdm.24.7.vmxe-clear", "sdm.24.7.vmxoff-leaves")
{
    uint64_t pa = vmx_prepare();
    struct vmx_res r = insn(VMX_INSN_VMXON, pa, 0, NULL, "VMXON");
    if (!check_vmx("VMXON", r, VMX_SUCCEED, 0))
        return;
    r = insn(VMX_INSN_VMXON, pa, 0, NULL, "VMXON in VMX root operation");
    check_vmx("VMXON in VMX root operation, no current VMCS", r, VMX_FAIL_INVALID, 0);
    void *vmcs = vmx_alloc_vmcs();
    uint64_t vpa = (uint64_t)(uintptr_t)vmcs;
    r = insn(VMX_INSN_VMCLEAR, vpa, 0, NULL, "VMCLEAR");
    if (!check_vmx("VMCLEAR", r, VMX_SUCCEED, 0))
        return;
    r = insn(VMX_INSN_VMPTRLD, vpa, 0, NULL, "VMPTRLD");
    if (!check_vmx("VMPTRLD", r, VMX_SUCCEED, 0))
        return;
    r = insn(VMX_INSN_VMXON, pa, 0, NULL, "VMXON in VMX root operation");
    check_vmx("VMXON in VMX root operation with a current VMCS", r, VMX_FAIL_VALID,
              VMXERR_VMXON_IN_ROOT);

    struct fault f;
    uint64_t cr4 = read_cr4(), cr4_off = cr4 & ~CR4_VMXE;
    int vec = catch_fault(write_cr4_fn, &cr4_off, &f);
    check(vec == GP_VECTOR && f.error_code == 0,
          "MOV CR4 clearing VMXE in VMX operation: got %s, want #GP(0)", fault_str(&f));
    check(read_cr4() & CR4_VMXE, "CR4.VMXE clear after the faulting MOV to CR4");

    r = insn(VMX_INSN_VMXOFF, 0, 0, NULL, "VMXOFF");
    if (!check_vmx("VMXOFF", r, VMX_SUCCEED, 0))
        return;
    vec = vmx_insn_safe(VMX_INSN_VMXOFF, 0, 0, 0, &r, NULL, &f);
    check(vec == UD_VECTOR, "VMXOFF outside VMX operation: got %s, want #UD", fault_str(&f));
    vec = catch_fault(write_cr4_fn, &cr4_off, &f);
    check(vec == NO_FAULT, "MOV CR4 clearing VMXE after VMXOFF raised %s", fault_str(&f));
    check(!(read_cr4() & CR4_VMXE), "CR4.VMXE still set after clearing it");
}

PROBE(vmx_root_vmxon_vmxe_clear, "vmx.root.vmxon_vmxe_clear", "VMX",
      "VMXON with a valid region but CR4.VMXE=0 raises #UD; VMXON succeeds once VMXE is set",
      "Intel SDM Vol. 3C 31.3 (VMXON)", "sdm.24.7.cr4-vmxe")
{
    uint64_t pa = vmx_prepare();
    uint64_t cr4 = read_cr4();
    write_cr4(cr4 & ~CR4_VMXE);
    struct vmx_res r;
    struct fault f;
    int vec = vmx_insn_safe(VMX_INSN_VMXON, pa, 0, 0, &r, NULL, &f);
    check(vec == UD_VECTOR, "VMXON with CR4.VMXE=0: got %s%s%s, want #UD", fault_str(&f),
          vec == NO_FAULT ? " " : "", vec == NO_FAULT ? vmx_res_str(r) : "");
    write_cr4(cr4);
    r = insn(VMX_INSN_VMXON, pa, 0, NULL, "VMXON with CR4.VMXE=1");
    check_vmx("VMXON with CR4.VMXE=1 afterwards", r, VMX_SUCCEED, 0);
}

PROBE(vmx_root_vmxon_bad_region, "vmx.root.vmxon_bad_region", "VMX",
      "VMXON gives VMfailInvalid (and stays outside VMX operation) with a region whose revision "
      "id is wrong, whose bit 31 is set, with a pointer not 4 KiB aligned, and with a pointer "
      "beyond MAXPHYADDR; VMXON with the correct revision id and the rest of the region all ones "
      "then succeeds (the region needs only the revision id)",
      "Intel SDM Vol. 3C 31.3 (VMXON), 25.2, 25.11.5", "sdm.31.3.vmxon-pointer",
      "sdm.25.2.revision-id", "sdm.24.7.vmxon-region", "sdm.25.11.5.vmxon-region")
{
    uint64_t pa = vmx_prepare();
    uint32_t *region = (uint32_t *)(uintptr_t)pa;
    uint32_t rev = region[0];
    unsigned maxpa = cpu_phys_addr_bits();
    struct vmx_res r;
    struct {
        const char *what;
        uint64_t ptr;
        uint32_t rev;
    } cases[] = {
        {"wrong revision id", pa, (rev + 1) & 0x7fffffffu},
        {"revision id with bit 31 set", pa, rev | 0x80000000u},
        {"pointer not 4 KiB aligned", pa + 0x800, rev},
        {"pointer beyond MAXPHYADDR", pa | (1ull << maxpa), rev},
    };
    for (unsigned i = 0; i < ARRAY_SIZE(cases); i++) {
        region[0] = cases[i].rev;
        r = insn(VMX_INSN_VMXON, cases[i].ptr, 0, NULL, cases[i].what);
        char what[96];
        snprintf(what, sizeof(what), "VMXON, %s (ptr %#llx rev %#x)", cases[i].what,
                 (unsigned long long)cases[i].ptr, cases[i].rev);
        check_vmx(what, r, VMX_FAIL_INVALID, 0);
        if (r.outcome == VMX_SUCCEED)
            insn(VMX_INSN_VMXOFF, 0, 0, NULL, "VMXOFF");
    }
    region[0] = rev;
    for (unsigned i = 1; i < 1024; i++)
        region[i] = ~0u;
    r = insn(VMX_INSN_VMXON, pa, 0, NULL, "VMXON");
    check_vmx("VMXON with the correct revision id, the rest all ones", r, VMX_SUCCEED, 0);
}

PROBE(vmx_root_vmxon_cr0_fixed, "vmx.root.vmxon_cr0_fixed", "VMX",
      "With CR0.NE=0 while IA32_VMX_CR0_FIXED0 requires NE=1, VMXON raises #GP(0); with CR0.NE=1 "
      "it succeeds",
      "Intel SDM Vol. 3C 31.3 (VMXON), 24.8, A.7", "sdm.24.8.vmxon-fixed")
{
    const struct vmx_caps *c = vmx_caps();
    if (!(c->cr0_fixed0 & CR0_NE))
        skip("IA32_VMX_CR0_FIXED0=%#llx: bit 5 (NE) is not fixed to 1",
             (unsigned long long)c->cr0_fixed0);
    uint64_t pa = vmx_prepare();
    uint64_t cr0 = read_cr0();
    write_cr0(cr0 & ~CR0_NE);
    struct vmx_res r;
    struct fault f;
    int vec = vmx_insn_safe(VMX_INSN_VMXON, pa, 0, 0, &r, NULL, &f);
    write_cr0(cr0);
    check(vec == GP_VECTOR && f.error_code == 0, "VMXON with CR0.NE=0: got %s%s%s, want #GP(0)",
          fault_str(&f), vec == NO_FAULT ? " " : "", vec == NO_FAULT ? vmx_res_str(r) : "");
    if (vec == NO_FAULT && r.outcome == VMX_SUCCEED)
        insn(VMX_INSN_VMXOFF, 0, 0, NULL, "VMXOFF");
    r = insn(VMX_INSN_VMXON, pa, 0, NULL, "VMXON with CR0.NE=1");
    check_vmx("VMXON with CR0.NE=1 afterwards", r, VMX_SUCCEED, 0);
}

static void do_vmlaunch(void *p)
{
    (void)p;
    __asm__ volatile("vmlaunch" ::: "cc", "memory");
}

PROBE(vmx_root_outside_vmx_ud, "vmx.root.outside_vmx_ud", "VMX",
      "With CR4.VMXE=1 but before VMXON, VMXOFF, VMCLEAR, VMPTRLD, VMPTRST, VMREAD, VMWRITE, "
      "VMLAUNCH, INVEPT and INVVPID each raise #UD",
      "Intel SDM Vol. 3C 31.3", "sdm.31.3.ud-outside-vmx")
{
    uint64_t pa = vmx_prepare();
    void *vmcs = vmx_alloc_vmcs();
    uint64_t vpa = (uint64_t)(uintptr_t)vmcs;
    static const struct {
        enum vmx_insn op;
        const char *name;
    } ops[] = {
        {VMX_INSN_VMXOFF, "VMXOFF"},   {VMX_INSN_VMCLEAR, "VMCLEAR"}, {VMX_INSN_VMPTRLD, "VMPTRLD"},
        {VMX_INSN_VMPTRST, "VMPTRST"}, {VMX_INSN_VMREAD, "VMREAD"},   {VMX_INSN_VMWRITE, "VMWRITE"},
        {VMX_INSN_INVEPT, "INVEPT"},   {VMX_INSN_INVVPID, "INVVPID"},
    };
    (void)pa;
    for (unsigned i = 0; i < ARRAY_SIZE(ops); i++) {
        struct vmx_res r;
        struct fault f;
        uint64_t a = vpa, b = 0, out = 0;
        if (ops[i].op == VMX_INSN_VMREAD || ops[i].op == VMX_INSN_VMWRITE)
            a = VMCS_GUEST_RIP;
        if (ops[i].op == VMX_INSN_INVEPT || ops[i].op == VMX_INSN_INVVPID)
            a = 2; /* all-context */
        int vec = vmx_insn_safe(ops[i].op, a, b, 0, &r, &out, &f);
        check(vec == UD_VECTOR, "%s outside VMX operation: got %s%s%s, want #UD", ops[i].name,
              fault_str(&f), vec == NO_FAULT ? " " : "", vec == NO_FAULT ? vmx_res_str(r) : "");
    }
    struct fault f;
    int vec = catch_fault(do_vmlaunch, NULL, &f);
    check(vec == UD_VECTOR, "VMLAUNCH outside VMX operation: got %s, want #UD", fault_str(&f));
}

PROBE(vmx_root_current_vmcs, "vmx.root.current_vmcs", "VMX",
      "VMPTRST gives FFFFFFFF_FFFFFFFF after VMXON, the VMCS address after VMPTRLD, and "
      "FFFFFFFF_FFFFFFFF again after VMCLEAR of the current VMCS; VMREAD and VMWRITE without a "
      "current VMCS give VMfailInvalid",
      "Intel SDM Vol. 3C 31.3 (VMXON, VMPTRLD, VMPTRST, VMCLEAR, VMREAD, VMWRITE)",
      "sdm.31.3.vmptrst", "sdm.31.3.vmread-no-vmcs", "sdm.31.3.vmclear-state")
{
    vmx_on();
    uint64_t cur = 0;
    struct vmx_res r = insn(VMX_INSN_VMPTRST, 0, 0, &cur, "VMPTRST");
    check_vmx("VMPTRST after VMXON", r, VMX_SUCCEED, 0);
    check_eq("current-VMCS pointer after VMXON", cur, ~0ull);
    r = insn(VMX_INSN_VMREAD, VMCS_GUEST_RIP, 0, &cur, "VMREAD");
    check_vmx("VMREAD without a current VMCS", r, VMX_FAIL_INVALID, 0);
    r = insn(VMX_INSN_VMWRITE, VMCS_GUEST_RIP, 0, NULL, "VMWRITE");
    check_vmx("VMWRITE without a current VMCS", r, VMX_FAIL_INVALID, 0);

    uint64_t vpa = (uint64_t)(uintptr_t)vmx_alloc_vmcs();
    r = insn(VMX_INSN_VMCLEAR, vpa, 0, NULL, "VMCLEAR");
    check_vmx("VMCLEAR", r, VMX_SUCCEED, 0);
    r = insn(VMX_INSN_VMPTRLD, vpa, 0, NULL, "VMPTRLD");
    if (!check_vmx("VMPTRLD", r, VMX_SUCCEED, 0))
        return;
    r = insn(VMX_INSN_VMPTRST, 0, 0, &cur, "VMPTRST");
    check_vmx("VMPTRST after VMPTRLD", r, VMX_SUCCEED, 0);
    check_eq("current-VMCS pointer after VMPTRLD", cur, vpa);
    r = insn(VMX_INSN_VMWRITE, VMCS_GUEST_RIP, 0x123456, NULL, "VMWRITE");
    check_vmx("VMWRITE GUEST_RIP with a current VMCS", r, VMX_SUCCEED, 0);
    cur = 0;
    r = insn(VMX_INSN_VMREAD, VMCS_GUEST_RIP, 0, &cur, "VMREAD");
    check_vmx("VMREAD GUEST_RIP with a current VMCS", r, VMX_SUCCEED, 0);
    check_eq("GUEST_RIP read back", cur, 0x123456);

    r = insn(VMX_INSN_VMCLEAR, vpa, 0, NULL, "VMCLEAR");
    check_vmx("VMCLEAR of the current VMCS", r, VMX_SUCCEED, 0);
    r = insn(VMX_INSN_VMPTRST, 0, 0, &cur, "VMPTRST");
    check_vmx("VMPTRST after VMCLEAR", r, VMX_SUCCEED, 0);
    check_eq("current-VMCS pointer after VMCLEAR of the current VMCS", cur, ~0ull);
    r = insn(VMX_INSN_VMREAD, VMCS_GUEST_RIP, 0, &cur, "VMREAD");
    check_vmx("VMREAD after VMCLEAR of the current VMCS", r, VMX_FAIL_INVALID, 0);
}

/* VMXON, then a current VMCS so that failures are VMfailValid */
static uint64_t on_with_vmcs(uint64_t *vmcs_pa)
{
    uint64_t pa = vmx_on();
    uint64_t vpa = (uint64_t)(uintptr_t)vmx_alloc_vmcs();
    struct vmx_res r = vmclear(vpa);
    if (!vmx_ok(r))
        fail("VMCLEAR of a fresh VMCS: %s", vmx_res_str(r));
    r = vmptrld(vpa);
    if (!vmx_ok(r))
        fail("VMPTRLD of a fresh VMCS: %s", vmx_res_str(r));
    *vmcs_pa = vpa;
    return pa;
}

static void check_current(uint64_t want, const char *after)
{
    uint64_t cur = 0;
    struct vmx_res r = vmptrst(&cur);
    char what[96];
    snprintf(what, sizeof(what), "current-VMCS pointer after %s", after);
    if (check_vmx("VMPTRST", r, VMX_SUCCEED, 0))
        check_eq(what, cur, want);
}

PROBE(vmx_root_vmclear_errors, "vmx.root.vmclear_errors", "VMX",
      "With a current VMCS, VMCLEAR of an unaligned pointer or one beyond MAXPHYADDR gives "
      "VMfailValid(2), VMCLEAR of the VMXON pointer VMfailValid(3), and the current VMCS stays "
      "current; without one, VMCLEAR of the VMXON pointer gives VMfailInvalid",
      "Intel SDM Vol. 3C 31.3 (VMCLEAR), 31.4", "sdm.31.3.vmclear-errors")
{
    uint64_t vpa;
    uint64_t pa = on_with_vmcs(&vpa);
    uint64_t other = (uint64_t)(uintptr_t)vmx_alloc_vmcs();
    unsigned maxpa = cpu_phys_addr_bits();
    struct vmx_res r = insn(VMX_INSN_VMCLEAR, other + 0x800, 0, NULL, "VMCLEAR");
    check_vmx("VMCLEAR of an unaligned pointer", r, VMX_FAIL_VALID, VMXERR_VMCLEAR_BAD_ADDR);
    r = insn(VMX_INSN_VMCLEAR, other | (1ull << maxpa), 0, NULL, "VMCLEAR");
    check_vmx("VMCLEAR of a pointer beyond MAXPHYADDR", r, VMX_FAIL_VALID, VMXERR_VMCLEAR_BAD_ADDR);
    r = insn(VMX_INSN_VMCLEAR, pa, 0, NULL, "VMCLEAR");
    check_vmx("VMCLEAR of the VMXON pointer", r, VMX_FAIL_VALID, VMXERR_VMCLEAR_VMXON_PTR);
    check_current(vpa, "the failed VMCLEARs");
    r = insn(VMX_INSN_VMCLEAR, vpa, 0, NULL, "VMCLEAR");
    check_vmx("VMCLEAR of the current VMCS", r, VMX_SUCCEED, 0);
    r = insn(VMX_INSN_VMCLEAR, pa, 0, NULL, "VMCLEAR");
    check_vmx("VMCLEAR of the VMXON pointer without a current VMCS", r, VMX_FAIL_INVALID, 0);
}

PROBE(vmx_root_vmptrld_errors, "vmx.root.vmptrld_errors", "VMX",
      "With a current VMCS, VMPTRLD of an unaligned pointer or one beyond MAXPHYADDR gives "
      "VMfailValid(9), of the VMXON pointer VMfailValid(10), of a region with a wrong revision id "
      "VMfailValid(11), and of a region with bit 31 set VMfailValid(11) unless VMCS shadowing is "
      "supported (then VMsucceed); the current VMCS stays current after each failure",
      "Intel SDM Vol. 3C 31.3 (VMPTRLD), 31.4, 25.10", "sdm.31.3.vmptrld-errors",
      "sdm.31.3.vmptrld-shadow")
{
    uint64_t vpa;
    uint64_t pa = on_with_vmcs(&vpa);
    uint32_t *other = vmx_alloc_vmcs();
    uint64_t opa = (uint64_t)(uintptr_t)other;
    uint32_t rev = other[0];
    unsigned maxpa = cpu_phys_addr_bits();
    struct vmx_res r = insn(VMX_INSN_VMPTRLD, opa + 0x800, 0, NULL, "VMPTRLD");
    check_vmx("VMPTRLD of an unaligned pointer", r, VMX_FAIL_VALID, VMXERR_VMPTRLD_BAD_ADDR);
    r = insn(VMX_INSN_VMPTRLD, opa | (1ull << maxpa), 0, NULL, "VMPTRLD");
    check_vmx("VMPTRLD of a pointer beyond MAXPHYADDR", r, VMX_FAIL_VALID, VMXERR_VMPTRLD_BAD_ADDR);
    r = insn(VMX_INSN_VMPTRLD, pa, 0, NULL, "VMPTRLD");
    check_vmx("VMPTRLD of the VMXON pointer", r, VMX_FAIL_VALID, VMXERR_VMPTRLD_VMXON_PTR);
    other[0] = (rev + 1) & 0x7fffffffu;
    r = insn(VMX_INSN_VMPTRLD, opa, 0, NULL, "VMPTRLD");
    check_vmx("VMPTRLD of a region with a wrong revision id", r, VMX_FAIL_VALID,
              VMXERR_VMPTRLD_BAD_REVISION);
    check_current(vpa, "the failed VMPTRLDs");

    other[0] = rev | 0x80000000u;
    bool shadowing = vmx_ctl_can_set(VMX_CTL_PROC2, PROC2_VMCS_SHADOWING) && vmx_caps()->has_proc2;
    r = insn(VMX_INSN_VMPTRLD, opa, 0, NULL, "VMPTRLD");
    if (shadowing) {
        check_vmx("VMPTRLD of a shadow VMCS (bit 31 set, VMCS shadowing supported)", r, VMX_SUCCEED,
                  0);
        check_current(opa, "VMPTRLD of a shadow VMCS");
    } else {
        check_vmx("VMPTRLD of a region with bit 31 set (no VMCS shadowing)", r, VMX_FAIL_VALID,
                  VMXERR_VMPTRLD_BAD_REVISION);
    }
}

PROBE(vmx_root_vmread_unsupported, "vmx.root.vmread_unsupported", "VMX",
      "With a current VMCS, VMREAD and VMWRITE of encodings that name no field (0x0001: high "
      "access to a 16-bit field; 0x1000: reserved bit 12 set; GUEST_RIP with bit 32 set) give "
      "VMfailValid(12) and VMREAD leaves its destination unchanged",
      "Intel SDM Vol. 3C 31.3 (VMREAD, VMWRITE), 25.11.2, Appendix B",
      "sdm.31.3.vmread-unsupported", "sdm.25.11.2.field-encoding")
{
    uint64_t vpa;
    on_with_vmcs(&vpa);
    static const uint64_t bad[] = {0x0001, 0x1000, (1ull << 32) | VMCS_GUEST_RIP};
    for (unsigned i = 0; i < ARRAY_SIZE(bad); i++) {
        char what[64];
        uint64_t out = 0x5a5a5a5a5a5a5a5aull;
        struct vmx_res r = insn(VMX_INSN_VMREAD, bad[i], 0, &out, "VMREAD");
        snprintf(what, sizeof(what), "VMREAD of encoding %#llx", (unsigned long long)bad[i]);
        check_vmx(what, r, VMX_FAIL_VALID, VMXERR_UNSUPPORTED_FIELD);
        check(out == 0x5a5a5a5a5a5a5a5aull, "%s changed its destination to %#llx", what,
              (unsigned long long)out);
        r = insn(VMX_INSN_VMWRITE, bad[i], 0, NULL, "VMWRITE");
        snprintf(what, sizeof(what), "VMWRITE of encoding %#llx", (unsigned long long)bad[i]);
        check_vmx(what, r, VMX_FAIL_VALID, VMXERR_UNSUPPORTED_FIELD);
    }
}

PROBE(vmx_root_vmwrite_read_only, "vmx.root.vmwrite_read_only", "VMX",
      "With a current VMCS, VMWRITE to the read-only data fields exit reason (0x4402), exit "
      "qualification (0x6400), VM-instruction error (0x4400) and guest-physical address (0x2400) "
      "gives VMfailValid(13) if IA32_VMX_MISC[29]=0; if it is 1, VMsucceed and the value reads "
      "back",
      "Intel SDM Vol. 3C 31.3 (VMWRITE), 25.9, A.6", "sdm.31.3.vmwrite-read-only",
      "sdm.25.9.exit-info-read-only")
{
    uint64_t vpa;
    on_with_vmcs(&vpa);
    bool any = (vmx_caps()->misc & VMX_MISC_VMWRITE_ANY) != 0;
    note("IA32_VMX_MISC[29] (VMWRITE to VM-exit information fields) = %d", any);
    static const struct {
        uint64_t field;
        const char *name;
    } ro[] = {{VMCS_EXIT_REASON, "exit reason"},
              {VMCS_EXIT_QUAL, "exit qualification"},
              {VMCS_INSN_ERROR, "VM-instruction error"},
              {VMCS_GUEST_PHYS_ADDR, "guest-physical address"}};
    for (unsigned i = 0; i < ARRAY_SIZE(ro); i++) {
        if (ro[i].field == VMCS_GUEST_PHYS_ADDR && !vmx_ctl_can_set(VMX_CTL_PROC2, PROC2_EPT))
            continue; /* the field exists only with EPT */
        char what[80];
        snprintf(what, sizeof(what), "VMWRITE of %s (%#llx)", ro[i].name,
                 (unsigned long long)ro[i].field);
        struct vmx_res r = insn(VMX_INSN_VMWRITE, ro[i].field, 0x1c, NULL, "VMWRITE");
        if (any) {
            if (check_vmx(what, r, VMX_SUCCEED, 0)) {
                uint64_t out = 0;
                insn(VMX_INSN_VMREAD, ro[i].field, 0, &out, "VMREAD");
                check_eq(ro[i].name, out, 0x1c);
            }
        } else {
            check_vmx(what, r, VMX_FAIL_VALID, VMXERR_VMWRITE_READ_ONLY);
        }
    }
}

/* guest: VMCALL forever */
GUEST(vmx_root_loop_guest, "1: vmcall", "jmp 1b");

static bool run_fails(struct vmx_vcpu *v, uint32_t err, const char *what)
{
    uint32_t r = vmx_run(v);
    return check(r == VMX_RUN_VMFAIL && vmx_res_is(v->entry, VMX_FAIL_VALID, err),
                 "%s: want VMfailValid(%u: %s), got %s", what, err, vmx_error_name(err),
                 vmx_exit_str(v));
}

PROBE(vmx_root_launch_state, "vmx.root.launch_state", "VMX",
      "VMRESUME of a clear VMCS gives VMfailValid(5); VMLAUNCH of it exits (VMCALL); VMLAUNCH of "
      "the now launched VMCS gives VMfailValid(4) and VMRESUME exits again; after VMCLEAR and "
      "VMPTRLD, VMRESUME gives VMfailValid(5) and VMLAUNCH exits",
      "Intel SDM Vol. 3C 31.3 (VMLAUNCH/VMRESUME, VMCLEAR), 25.11.3, 31.4",
      "sdm.27.1.vmresume-clear", "sdm.27.1.vmlaunch-launched", "sdm.25.11.3.vmclear-init",
      "sdm.28.5.5.launch-state")
{
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_root_loop_guest);
    v->launched = 1; /* VMRESUME */
    run_fails(v, VMXERR_VMRESUME_NOT_LAUNCHED, "VMRESUME of a clear VMCS");
    v->launched = 0;
    if (!vmx_run_expect(v, EXIT_VMCALL, "VMLAUNCH of a clear VMCS"))
        return;
    vmx_skip_insn(v);
    v->launched = 0; /* VMLAUNCH */
    run_fails(v, VMXERR_VMLAUNCH_NOT_CLEAR, "VMLAUNCH of a launched VMCS");
    v->launched = 1;
    if (!vmx_run_expect(v, EXIT_VMCALL, "VMRESUME of a launched VMCS"))
        return;
    vmx_skip_insn(v);
    struct vmx_res r = vmclear(v->vmcs_pa);
    if (!check_vmx("VMCLEAR of the launched VMCS", r, VMX_SUCCEED, 0))
        return;
    r = vmptrld(v->vmcs_pa);
    if (!check_vmx("VMPTRLD after VMCLEAR", r, VMX_SUCCEED, 0))
        return;
    run_fails(v, VMXERR_VMRESUME_NOT_LAUNCHED, "VMRESUME after VMCLEAR");
    v->launched = 0;
    vmx_run_expect(v, EXIT_VMCALL, "VMLAUNCH after VMCLEAR");
}

PROBE(vmx_root_vmcs_field_width, "vmx.root.vmcs_field_width", "VMX",
      "VMWRITE of all ones then VMREAD returns 0xffff for a 16-bit field (guest ES selector), "
      "0xffffffff for a 32-bit field (guest ES limit) and all 64 bits for a 64-bit (TSC offset) "
      "and a natural-width field (CR0 guest/host mask); VMREAD of the TSC offset's high access "
      "(0x2011) returns bits 63:32, VMWRITE through it changes only bits 63:32; the values "
      "survive VMCLEAR and VMPTRLD",
      "Intel SDM Vol. 3C 25.11.2, 31.3 (VMREAD, VMWRITE), 25.11.1, Appendix B",
      "sdm.31.3.vmread-widths")
{
    uint64_t vpa;
    on_with_vmcs(&vpa);
    static const struct {
        uint64_t field;
        const char *name;
        uint64_t want;
    } f[] = {
        {VMCS_GUEST_ES_SEL, "16-bit guest ES selector", 0xffff},
        {VMCS_GUEST_ES_LIMIT, "32-bit guest ES limit", 0xffffffffull},
        {VMCS_TSC_OFFSET, "64-bit TSC offset", ~0ull},
        {VMCS_CR0_MASK, "natural-width CR0 guest/host mask", ~0ull},
    };
    for (unsigned i = 0; i < ARRAY_SIZE(f); i++) {
        struct vmx_res r = insn(VMX_INSN_VMWRITE, f[i].field, ~0ull, NULL, "VMWRITE");
        if (!check_vmx(f[i].name, r, VMX_SUCCEED, 0))
            continue;
        uint64_t out = 0;
        r = insn(VMX_INSN_VMREAD, f[i].field, 0, &out, "VMREAD");
        if (check_vmx(f[i].name, r, VMX_SUCCEED, 0))
            check(out == f[i].want, "%s: VMREAD after VMWRITE of all ones gave %#llx, want %#llx",
                  f[i].name, (unsigned long long)out, (unsigned long long)f[i].want);
    }
    uint64_t out = 0;
    insn(VMX_INSN_VMWRITE, VMCS_TSC_OFFSET, 0x1122334455667788ull, NULL, "VMWRITE");
    struct vmx_res r = insn(VMX_INSN_VMREAD, VMCS_HIGH(VMCS_TSC_OFFSET), 0, &out, "VMREAD");
    if (check_vmx("VMREAD of the TSC offset's high access (0x2011)", r, VMX_SUCCEED, 0))
        check_eq("TSC offset high access", out, 0x11223344);
    r = insn(VMX_INSN_VMWRITE, VMCS_HIGH(VMCS_TSC_OFFSET), 0xaabbccdd, NULL, "VMWRITE");
    if (check_vmx("VMWRITE of the TSC offset's high access", r, VMX_SUCCEED, 0)) {
        insn(VMX_INSN_VMREAD, VMCS_TSC_OFFSET, 0, &out, "VMREAD");
        check_eq("TSC offset after VMWRITE of its high half", out, 0xaabbccdd55667788ull);
    }
    insn(VMX_INSN_VMWRITE, VMCS_GUEST_RIP, 0x12345678abcull, NULL, "VMWRITE");
    r = insn(VMX_INSN_VMCLEAR, vpa, 0, NULL, "VMCLEAR");
    check_vmx("VMCLEAR", r, VMX_SUCCEED, 0);
    r = insn(VMX_INSN_VMPTRLD, vpa, 0, NULL, "VMPTRLD");
    if (!check_vmx("VMPTRLD after VMCLEAR", r, VMX_SUCCEED, 0))
        return;
    insn(VMX_INSN_VMREAD, VMCS_TSC_OFFSET, 0, &out, "VMREAD");
    check_eq("TSC offset after VMCLEAR+VMPTRLD", out, 0xaabbccdd55667788ull);
    insn(VMX_INSN_VMREAD, VMCS_GUEST_RIP, 0, &out, "VMREAD");
    check_eq("guest RIP after VMCLEAR+VMPTRLD", out, 0x12345678abcull);
    insn(VMX_INSN_VMREAD, VMCS_GUEST_ES_SEL, 0, &out, "VMREAD");
    check_eq("guest ES selector after VMCLEAR+VMPTRLD", out, 0xffff);
}
