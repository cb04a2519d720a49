/* SPDX-License-Identifier: MIT */
/*
 * VM entry: the checks on controls (VMfailValid 7), host state (VMfailValid
 * 8) and guest state (VM-entry failure, exit reason 33), and MSR loading
 * (exit reason 34).
 */
#include "vmx.h"

/* guest: VMCALL forever */
GUEST(vmx_en_loop_guest, "1: vmcall", "jmp 1b");

/* Writes field=val, runs, expects outcome, restores the field. */
static void expect_vmfail(struct vmx_vcpu *v, uint64_t field, uint64_t val, uint32_t err,
                          const char *what)
{
    uint64_t old = vmcs_read(field);
    vmcs_write(field, val);
    uint32_t r = vmx_run(v);
    check(r == VMX_RUN_VMFAIL && vmx_res_is(v->entry, VMX_FAIL_VALID, err),
          "%s (field %#llx=%#llx): want VMfailValid(%u), got %s", what, (unsigned long long)field,
          (unsigned long long)val, err, vmx_exit_str(v));
    vmcs_write(field, old);
}

/* the VMCS is sound: VMLAUNCH reaches the guest's VMCALL */
static bool launch_ok(struct vmx_vcpu *v, const char *when)
{
    v->launched = 0;
    return vmx_run_expect(v, EXIT_VMCALL, when);
}

static const struct {
    enum vmx_ctl ctl;
    uint64_t field;
    const char *name;
} ctl_fields[] = {
    {VMX_CTL_PIN, VMCS_PIN_CTLS, "pin-based controls"},
    {VMX_CTL_PROC, VMCS_PROC_CTLS, "primary processor-based controls"},
    {VMX_CTL_EXIT, VMCS_EXIT_CTLS, "VM-exit controls"},
    {VMX_CTL_ENTRY, VMCS_ENTRY_CTLS, "VM-entry controls"},
};

PROBE(vmx_entry_ctl_reserved, "vmx.entry.ctl_reserved", "VMX",
      "For the pin-based, primary processor-based, VM-exit and VM-entry controls, VMLAUNCH with "
      "the lowest must-be-1 bit cleared, or the lowest must-be-0 bit set, per the (TRUE) "
      "capability MSR, gives VMfailValid(7); a CR3-target count above IA32_VMX_MISC[24:16] gives "
      "VMfailValid(7); the unmodified VMCS then launches",
      "Intel SDM Vol. 3C 27.2.1.1, A.3-A.5", "sdm.27.2.1.1.pinbased-reserved",
      "sdm.27.2.1.1.procbased-reserved", "sdm.27.2.1.2.exit-reserved",
      "sdm.27.2.1.3.entry-reserved", "sdm.27.1.control-check-error", "sdm.A.3.1.pinbased",
      "sdm.A.3.2.procbased", "sdm.A.4.1.exit", "sdm.A.5.entry", "sdm.27.2.1.1.cr3-target-count")
{
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_en_loop_guest);
    const struct vmx_caps *c = vmx_caps();
    unsigned tested = 0;
    for (unsigned i = 0; i < ARRAY_SIZE(ctl_fields); i++) {
        const struct vmx_ctl_cap *k = &c->ctl[ctl_fields[i].ctl];
        uint32_t cur = (uint32_t)vmcs_read(ctl_fields[i].field);
        char what[96];
        if (k->must1) {
            uint32_t bit = k->must1 & -k->must1;
            snprintf(what, sizeof(what), "%s with must-be-1 bit %#x clear (%s)", ctl_fields[i].name,
                     bit, vmx_ctl_name(ctl_fields[i].ctl));
            expect_vmfail(v, ctl_fields[i].field, cur & ~bit, VMXERR_ENTRY_BAD_CTRL, what);
            tested++;
        }
        if (~k->may1) {
            uint32_t bit = ~k->may1 & -~k->may1;
            snprintf(what, sizeof(what), "%s with must-be-0 bit %#x set (%s)", ctl_fields[i].name,
                     bit, vmx_ctl_name(ctl_fields[i].ctl));
            expect_vmfail(v, ctl_fields[i].field, cur | bit, VMXERR_ENTRY_BAD_CTRL, what);
            tested++;
        }
    }
    unsigned n = VMX_MISC_CR3_TARGETS(c->misc);
    if (n < 256) {
        expect_vmfail(v, VMCS_CR3_TARGET_COUNT, n + 1, VMXERR_ENTRY_BAD_CTRL,
                      "CR3-target count above IA32_VMX_MISC[24:16]");
        tested++;
    }
    note("%u invalid control settings tried", tested);
    launch_ok(v, "VMLAUNCH with the controls restored");
}

PROBE(vmx_entry_host_state, "vmx.entry.host_state", "VMX",
      "VMLAUNCH with host CR4.VMXE=0, with host CS selector 0, with host TR selector 0, or with "
      "a host SS selector whose RPL is 3, gives VMfailValid(8); the unmodified VMCS then launches",
      "Intel SDM Vol. 3C 27.2.2, 27.2.3, 31.4", "sdm.27.2.2.host-cr4-fixed",
      "sdm.27.2.3.host-cs-nonzero", "sdm.27.2.3.host-tr-nonzero", "sdm.27.2.3.host-selector-rpl-ti",
      "sdm.27.1.host-check-error")
{
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_en_loop_guest);
    expect_vmfail(v, VMCS_HOST_CR4, read_cr4() & ~CR4_VMXE, VMXERR_ENTRY_BAD_HOST,
                  "host CR4 without VMXE");
    expect_vmfail(v, VMCS_HOST_CS_SEL, 0, VMXERR_ENTRY_BAD_HOST, "host CS selector 0");
    expect_vmfail(v, VMCS_HOST_TR_SEL, 0, VMXERR_ENTRY_BAD_HOST, "host TR selector 0");
    expect_vmfail(v, VMCS_HOST_SS_SEL, vmcs_read(VMCS_HOST_SS_SEL) | 3, VMXERR_ENTRY_BAD_HOST,
                  "host SS selector with RPL 3");
    launch_ok(v, "VMLAUNCH with the host state restored");
}

/* Writes field=val, launches, expects a VM-entry failure with reason and qual. */
static void expect_entry_fail(struct vmx_vcpu *v, uint64_t field, uint64_t val, unsigned reason,
                              uint64_t qual, const char *what)
{
    uint64_t old = vmcs_read(field);
    vmcs_write(field, val);
    v->launched = 0;
    uint32_t r = vmx_run(v);
    if (check(r == (EXIT_REASON_ENTRY_FAIL | reason),
              "%s: want VM-entry failure, exit reason %#x, got %s", what,
              EXIT_REASON_ENTRY_FAIL | reason, vmx_exit_str(v)))
        check(v->exit_qual == qual, "%s: exit qualification %#llx, want %#llx", what,
              (unsigned long long)v->exit_qual, (unsigned long long)qual);
    check(!v->launched, "%s: the launch state became launched", what);
    vmcs_write(field, old);
}

PROBE(vmx_entry_guest_state, "vmx.entry.guest_state", "VMX",
      "VMLAUNCH with guest RFLAGS bit 1 clear, with guest RFLAGS reserved bit 15 set, or with an "
      "unaligned VMCS link pointer (0x1001) fails after the control and host checks: exit reason "
      "0x80000021 (bit 31 | 33), exit qualification 0, 0 and 4 (invalid VMCS link pointer), the "
      "VMCS stays clear; the unmodified VMCS then launches",
      "Intel SDM Vol. 3C 27.3.1.4, 27.3.1.5, 27.8", "sdm.27.3.1.4.rflags-reserved",
      "sdm.27.3.1.5.link-pointer", "sdm.27.8.invalid-guest-state",
      "sdm.27.8.failed-entry-qualification")
{
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_en_loop_guest);
    expect_entry_fail(v, VMCS_GUEST_RFLAGS, 0, EXIT_INVALID_GUEST, 0,
                      "guest RFLAGS=0 (bit 1 clear)");
    expect_entry_fail(v, VMCS_GUEST_RFLAGS, 0x8002, EXIT_INVALID_GUEST, 0,
                      "guest RFLAGS=0x8002 (reserved bit 15 set)");
    expect_entry_fail(v, VMCS_LINK_PTR, 0x1001, EXIT_INVALID_GUEST, ENTRY_FAIL_QUAL_LINK_PTR,
                      "VMCS link pointer 0x1001");
    launch_ok(v, "VMLAUNCH with the guest state restored");
}

PROBE(vmx_entry_msr_load_fail, "vmx.entry.msr_load_fail", "VMX",
      "A VM-entry MSR-load list whose second entry names IA32_FS_BASE (not loadable from the "
      "list) makes VMLAUNCH fail with exit reason 0x80000022 (bit 31 | 34) and exit "
      "qualification 2 (the 1-based index of the failing entry); the VMCS stays clear",
      "Intel SDM Vol. 3C 27.4, 27.8", "sdm.27.4.msr-load-fs-gs-base", "sdm.27.8.msr-load-failure",
      "sdm.C.reason-34-msr-loading")
{
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_en_loop_guest);
    uint32_t *list = alloc_page();
    /* entry 1: IA32_SYSENTER_CS <- 0 (valid); entry 2: IA32_FS_BASE (invalid) */
    list[0] = MSR_IA32_SYSENTER_CS;
    list[4] = MSR_FS_BASE;
    vmcs_write(VMCS_ENTRY_MSR_LOAD_ADDR, (uintptr_t)list);
    expect_entry_fail(v, VMCS_ENTRY_MSR_LOAD_COUNT, 2, EXIT_MSR_LOAD_FAIL, 2,
                      "VM-entry MSR-load list with IA32_FS_BASE as entry 2");
    launch_ok(v, "VMLAUNCH with an empty MSR-load list");
}

/* Real-address-mode guest state: CS:IP = 0:0 with CS base = code, 16-bit
 * segments of limit 0xffff, CR0.PE = CR0.PG = 0, not IA-32e mode. */
static void real_mode_guest(struct vmx_vcpu *v, uint64_t code, uint64_t stack)
{
    (void)v;
    vmcs_write(VMCS_GUEST_CR0, vmcs_read(VMCS_GUEST_CR0) & ~(CR0_PE | CR0_PG));
    vmcs_clear_bits(VMCS_ENTRY_CTLS, ENTRY_IA32E_GUEST);
    vmcs_write(VMCS_GUEST_EFER, vmcs_read(VMCS_GUEST_EFER) & ~(EFER_LME | EFER_LMA));
    for (unsigned i = 0; i < 6; i++) {
        uint32_t off = 2 * i; /* ES, CS, SS, DS, FS, GS */
        vmcs_write(VMCS_GUEST_ES_SEL + off, 0);
        vmcs_write(VMCS_GUEST_ES_BASE + off, i == 1 ? code : i == 2 ? stack : 0);
        vmcs_write(VMCS_GUEST_ES_LIMIT + off, 0xffff);
        vmcs_write(VMCS_GUEST_ES_AR + off, VMX_AR_TYPE(i == 1 ? 11 : 3) | VMX_AR_S | VMX_AR_P);
    }
    vmcs_write(VMCS_GUEST_RIP, 0);
    vmcs_write(VMCS_GUEST_RSP, 0x1000);
    vmcs_write(VMCS_GUEST_RFLAGS, 0x2);
}

PROBE(vmx_entry_unrestricted_guest, "vmx.entry.unrestricted_guest", "unrestricted guest",
      "A real-address-mode guest (CR0.PE=PG=0, IA-32e mode guest=0) running MOV AX,0x1234; VMCALL: "
      "without unrestricted guest VMLAUNCH fails with exit reason 0x80000021 (CR0 violates "
      "FIXED0); with unrestricted guest and EPT it exits with reason 18 at IP 3, length 3, "
      "AX=0x1234 (16-bit operand size). VM entry then injecting #UD at IP 6 delivers it through "
      "the real-mode IVT at the IDTR base (vector 6 -> 0800:0000, guest-physical 0x8000 mapped "
      "by EPT to a VMCALL): exit 18 at CS 0x800, IP 0, with SP 0x1000 - 6 and IP 6, CS 0, FLAGS "
      "pushed (no error code); the handler then sets CR0.PE with MOV CR0 (CR0 guest/host mask "
      "0) without a VM exit and reaches a VMCALL at IP 13 with guest CR0.PE = 1",
      "Intel SDM Vol. 3C 25.6.2, 26.6, 27.3.1.1, 27.6.1.3, 27.8", "sdm.27.3.1.1.cr0-fixed-bits",
      "sdm.26.6.unrestricted-real-mode", "sdm.C.reason-33-invalid-guest-state",
      "sdm.27.6.1.3.inject-real-mode", "sdm.26.6.unrestricted-mode-switch")
{
    vmx_require_ctl(VMX_CTL_PROC2, PROC2_UNRESTRICTED | PROC2_EPT, "unrestricted guest and EPT");
    vmx_require_ctl(VMX_CTL_ENTRY, ENTRY_LOAD_EFER, "load IA32_EFER");
    vmx_on();
    uint64_t eptp = vmx_ept_identity();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_en_loop_guest);
    uint8_t *code = alloc_page();
    static const uint8_t insns[] = {0xb8, 0x34, 0x12, 0x0f, 0x01, 0xc1, 0x0f, 0x0b};
    memcpy(code, insns, sizeof(insns));
    real_mode_guest(v, (uintptr_t)code, (uintptr_t)alloc_page());
    vmx_use_ept(v, eptp);
    uint32_t r = vmx_run(v);
    check(r == (EXIT_REASON_ENTRY_FAIL | EXIT_INVALID_GUEST),
          "real-mode guest without unrestricted guest: want VM-entry failure 0x80000021, got %s",
          vmx_exit_str(v));
    vmcs_set_bits(VMCS_PROC_CTLS2, PROC2_UNRESTRICTED);
    v->launched = 0;
    if (!vmx_run_expect(v, EXIT_VMCALL, "real-mode guest with unrestricted guest"))
        return;
    check_eq("guest RIP at the VMCALL", v->guest_rip, 3);
    check_eq("VM-exit instruction length", v->insn_len, 3);
    check_eq("guest AX", v->gpr[VMX_GPR_RAX] & 0xffff, 0x1234);
    check_eq("guest CR0.PE", vmcs_read(VMCS_GUEST_CR0) & CR0_PE, 0);
    /* injection into the real-mode guest: through the IVT, no error code. The handler
     * (VMCALL) sits at guest-physical 0x8000 = 0800:0000, mapped by EPT to a page of ours. */
    uint8_t *isr = alloc_page();
    /* VMCALL; then MOV EAX,CR0; OR EAX,1; MOV CR0,EAX; VMCALL; UD2 */
    static const uint8_t handler[] = {0x0f, 0x01, 0xc1, 0x0f, 0x20, 0xc0, 0x66, 0x83, 0xc8,
                                      0x01, 0x0f, 0x22, 0xc0, 0x0f, 0x01, 0xc1, 0x0f, 0x0b};
    memcpy(isr, handler, sizeof(handler));
    uint64_t *pte = vmx_ept_pte(eptp, 0x8000);
    *pte = (*pte & ~EPT_ADDR_MASK) | (uintptr_t)isr;
    vmx_ept_flush(eptp);
    uint16_t *ivt = alloc_page();
    ivt[2 * UD_VECTOR] = 0, ivt[2 * UD_VECTOR + 1] = 0x800;
    vmcs_write(VMCS_GUEST_IDTR_BASE, (uintptr_t)ivt);
    vmcs_write(VMCS_GUEST_IDTR_LIMIT, 0x3ff);
    vmx_skip_insn(v); /* IP 6: the UD2 */
    vmcs_write(VMCS_ENTRY_INTR_INFO, INTR_INFO_VALID | (INTR_TYPE_HW_EXC << 8) | UD_VECTOR);
    if (!vmx_run_expect(v, EXIT_VMCALL, "real-mode guest, VM entry injecting #UD"))
        return;
    check_eq("guest CS selector in the IVT handler", vmcs_read(VMCS_GUEST_CS_SEL), 0x800);
    check_eq("guest IP at the handler's VMCALL", v->guest_rip, 0);
    check_eq("guest SP after the delivery (three words, no error code)",
             vmcs_read(VMCS_GUEST_RSP) & 0xffff, 0x1000 - 6);
    const uint16_t *st = (const uint16_t *)(uintptr_t)(vmcs_read(VMCS_GUEST_SS_BASE) + 0x1000 - 6);
    check_eq("pushed IP", st[0], 6);
    check_eq("pushed CS", st[1], 0);
    check_eq("pushed FLAGS", st[2] & 0xffd7, 0x2);
    /* the unrestricted guest sets CR0.PE itself (CR0 guest/host mask 0): no VM exit */
    vmcs_write(VMCS_CR0_MASK, 0);
    vmx_skip_insn(v);
    if (!vmx_run_expect(v, EXIT_VMCALL, "real-mode guest MOV CR0 setting PE"))
        return;
    check_eq("guest IP at the VMCALL after MOV CR0", v->guest_rip, 13);
    check_eq("guest CR0.PE after the guest's MOV CR0", vmcs_read(VMCS_GUEST_CR0) & CR0_PE, CR0_PE);
}

/* Sets the listed fields, launches, expects a VM-entry failure with exit
 * reason 33 and qualification 0, restores the fields. */
struct field_val {
    uint64_t field, val;
};

static void expect_guest_fail(struct vmx_vcpu *v, const struct field_val *fv, unsigned n,
                              const char *what)
{
    uint64_t old[4];
    for (unsigned i = 0; i < n; i++) {
        old[i] = vmcs_read(fv[i].field);
        vmcs_write(fv[i].field, fv[i].val);
    }
    v->launched = 0;
    uint32_t r = vmx_run(v);
    if (v->launched) {
        /* the entry wrongly succeeded: make the VMCS clear again for the next case */
        vmclear(v->vmcs_pa);
        vmptrld(v->vmcs_pa);
        v->launched = 0;
        vmcs_write(VMCS_ENTRY_INTR_INFO, 0);
    }
    if (check(r == (EXIT_REASON_ENTRY_FAIL | EXIT_INVALID_GUEST),
              "%s: want VM-entry failure 0x80000021, got %s", what, vmx_exit_str(v)))
        check(v->exit_qual == 0, "%s: exit qualification %#llx, want 0", what,
              (unsigned long long)v->exit_qual);
    for (unsigned i = n; i-- > 0;)
        vmcs_write(fv[i].field, old[i]);
}

/* The activity-state cases: an entry that a hypervisor accepts by mistake
 * leaves the guest halted, shut down, or in a state of no defined meaning,
 * with nothing to end the wait, and the whole level hangs. The run is
 * watched (vmx_run(): the VMX-preemption timer where it exists, a control
 * the checks under test do not involve; else the local APIC timer with
 * external-interrupt exiting), so that such an entry ends in a watchdog
 * exit, which the failed checks then name. A wait-for-SIPI guest cannot be
 * watched so: the timer does not exit in that state and external
 * interrupts are blocked in it (SDM Vol. 3C 26.5.1, 27.7.4). */
static void expect_guest_fail_watched(struct vmx_vcpu *v, const struct field_val *fv, unsigned n,
                                      const char *what)
{
    v->watchdog = "the VM-entry failure (0x80000021)";
    note("watched entry: %s", what); /* names the case if the level hangs after all */
    expect_guest_fail(v, fv, n, what);
    v->watchdog = NULL;
}

#define INJ(type, vec) (INTR_INFO_VALID | ((uint32_t)(type) << 8) | (vec))

PROBE(vmx_entry_interruptibility, "vmx.entry.interruptibility", "VMX",
      "Guest-state checks on the interruptibility state and RFLAGS.IF, each a VM-entry failure "
      "with "
      "exit reason 0x80000021 and qualification 0: reserved bit 5 set; blocking by STI and by MOV "
      "SS together; blocking by STI with RFLAGS.IF=0; blocking by SMI outside SMM; injecting an "
      "external interrupt with RFLAGS.IF=0, with blocking by STI, or with blocking by MOV SS; "
      "injecting an NMI with blocking by MOV SS. The unmodified VMCS then launches",
      "Intel SDM Vol. 3C 27.3.1.4, 27.3.1.5", "sdm.27.3.1.5.intr-reserved",
      "sdm.27.3.1.5.intr-sti-movss", "sdm.27.3.1.5.intr-sti-if", "sdm.27.8.invalid-guest-state",
      "sdm.27.3.1.4.rflags-if-extint", "sdm.27.3.1.5.intr-smi-blocking",
      "sdm.27.3.1.5.intr-inject-extint")
{
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_en_loop_guest);
    vmx_guest_idt(v); /* an event delivered by mistake ends in a VMCALL */
    const uint64_t IS = VMCS_GUEST_INTERRUPTIBILITY, RF = VMCS_GUEST_RFLAGS,
                   II = VMCS_ENTRY_INTR_INFO;
    const struct {
        struct field_val fv[3];
        unsigned n;
        const char *what;
    } cases[] = {
        {{{IS, 1u << 5}}, 1, "interruptibility reserved bit 5"},
        {{{RF, 0x202}, {IS, INTERRUPTIBILITY_STI | INTERRUPTIBILITY_MOVSS}},
         2,
         "blocking by STI and by MOV SS"},
        {{{RF, 0x2}, {IS, INTERRUPTIBILITY_STI}}, 2, "blocking by STI with RFLAGS.IF=0"},
        {{{IS, INTERRUPTIBILITY_SMI}}, 1, "blocking by SMI outside SMM"},
        {{{RF, 0x2}, {II, INJ(INTR_TYPE_EXT_INTR, 0x40)}},
         2,
         "injecting an external interrupt with RFLAGS.IF=0"},
        {{{RF, 0x202}, {IS, INTERRUPTIBILITY_STI}, {II, INJ(INTR_TYPE_EXT_INTR, 0x40)}},
         3,
         "injecting an external interrupt with blocking by STI"},
        {{{RF, 0x202}, {IS, INTERRUPTIBILITY_MOVSS}, {II, INJ(INTR_TYPE_EXT_INTR, 0x40)}},
         3,
         "injecting an external interrupt with blocking by MOV SS"},
        {{{IS, INTERRUPTIBILITY_MOVSS}, {II, INJ(INTR_TYPE_NMI, NMI_VECTOR)}},
         2,
         "injecting an NMI with blocking by MOV SS"},
    };
    for (unsigned i = 0; i < ARRAY_SIZE(cases); i++)
        expect_guest_fail(v, cases[i].fv, cases[i].n, cases[i].what);
    launch_ok(v, "VMLAUNCH with the interruptibility state restored");
}

PROBE(vmx_entry_activity_state, "vmx.entry.activity_state", "VMX",
      "Guest-state checks on the activity state, each a VM-entry failure with exit reason "
      "0x80000021 and qualification 0: activity state 4 (undefined); an activity state that "
      "IA32_VMX_MISC[8:6] does not offer (if any); HLT with blocking by STI. The unmodified VMCS "
      "then launches",
      "Intel SDM Vol. 3C 27.3.1.5, A.6", "sdm.27.3.1.5.activity-valid",
      "sdm.27.3.1.5.activity-blocking", "sdm.27.8.invalid-guest-state")
{
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_en_loop_guest);
    vmx_guest_idt(v); /* an event delivered by mistake ends in a VMCALL */
    const uint64_t AS = VMCS_GUEST_ACTIVITY_STATE, IS = VMCS_GUEST_INTERRUPTIBILITY,
                   RF = VMCS_GUEST_RFLAGS;
    uint64_t misc = vmx_caps()->misc;
    const struct field_val undef[] = {{AS, 4}};
    expect_guest_fail_watched(v, undef, 1, "activity state 4");
    static const uint64_t act_bit[] = {0, VMX_MISC_ACT_HLT, VMX_MISC_ACT_SHUTDOWN,
                                       VMX_MISC_ACT_WAIT_SIPI};
    for (unsigned s = 1; s <= 3; s++) {
        if (misc & act_bit[s])
            continue;
        const struct field_val fv[] = {{AS, s}};
        char what[64];
        snprintf(what, sizeof(what), "activity state %u not in IA32_VMX_MISC", s);
        expect_guest_fail_watched(v, fv, 1, what);
    }
    if (misc & VMX_MISC_ACT_HLT) {
        const struct field_val sti[] = {{RF, 0x202},
                                        {IS, INTERRUPTIBILITY_STI},
                                        {AS, ACTIVITY_HLT}};
        expect_guest_fail_watched(v, sti, 3, "HLT with blocking by STI");
    }
    launch_ok(v, "VMLAUNCH with the activity state restored");
}

/* A probe of its own, in a boot of its own: an entry into wait-for-SIPI
 * that a hypervisor accepts by mistake can leave the level with nothing
 * that ends it (KVM at L2: docs/probes/vmx.md, K9). */
PROBE_ISOLATED_(vmx_entry_activity_sipi_inject, "vmx.entry.activity_sipi_inject", "VMX",
                "Guest-state check on the activity state: wait-for-SIPI while injecting an NMI is "
                "a "
                "VM-entry failure with exit reason 0x80000021 and qualification 0 (SKIP where "
                "IA32_VMX_MISC[8] does not offer wait-for-SIPI). The unmodified VMCS then launches",
                "Intel SDM Vol. 3C 27.3.1.5, A.6", "sdm.27.3.1.5.activity-sipi-inject",
                "sdm.27.8.invalid-guest-state")
{
    vmx_on();
    if (!(vmx_caps()->misc & VMX_MISC_ACT_WAIT_SIPI))
        skip("IA32_VMX_MISC[8]=0: no wait-for-SIPI activity state");
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_en_loop_guest);
    vmx_guest_idt(v); /* an event delivered by mistake ends in a VMCALL */
    const struct field_val sipi[] = {{VMCS_GUEST_ACTIVITY_STATE, ACTIVITY_WAIT_SIPI},
                                     {VMCS_ENTRY_INTR_INFO, INJ(INTR_TYPE_NMI, NMI_VECTOR)}};
    expect_guest_fail_watched(v, sipi, 2, "wait-for-SIPI while injecting an NMI");
    launch_ok(v, "VMLAUNCH with the activity state restored");
}

PROBE(vmx_entry_unrestricted_cr0, "vmx.entry.unrestricted_cr0", "unrestricted guest",
      "Unrestricted guest and CR0: VMLAUNCH with unrestricted guest=1 but enable EPT=0 gives "
      "VMfailValid(7); with both, guest CR0.PG=1 and PE=0 is still invalid (VM-entry failure "
      "0x80000021, qualification 0), both for the 64-bit guest with PE cleared and for a real-mode "
      "guest state with PG set; the real-mode guest (PE=PG=0, IA-32e mode guest=0) launches and "
      "reaches its VMCALL",
      "Intel SDM Vol. 3C 25.6.2, 27.2.1.1, 27.3.1.1", "sdm.27.2.1.1.unrestricted-ept",
      "sdm.27.3.1.1.cr0-pg-pe")
{
    vmx_require_ctl(VMX_CTL_PROC2, PROC2_UNRESTRICTED | PROC2_EPT, "unrestricted guest and EPT");
    vmx_require_ctl(VMX_CTL_ENTRY, ENTRY_LOAD_EFER, "load IA32_EFER");
    vmx_on();
    uint64_t eptp = vmx_ept_identity();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_en_loop_guest);
    uint64_t cr0 = vmcs_read(VMCS_GUEST_CR0);
    vmcs_set_bits(VMCS_PROC_CTLS, PROC_SECONDARY_CTLS);
    expect_vmfail(v, VMCS_PROC_CTLS2, vmcs_read(VMCS_PROC_CTLS2) | PROC2_UNRESTRICTED,
                  VMXERR_ENTRY_BAD_CTRL, "unrestricted guest without enable EPT");
    vmx_use_ept(v, eptp);
    vmcs_set_bits(VMCS_PROC_CTLS2, PROC2_UNRESTRICTED);
    /* the 64-bit guest with CR0.PE cleared (PG still 1). Not tried: IA-32e mode
     * guest with PE=PG=0 -- Bochs 2.7 accepts that entry and then aborts
     * (docs/probes/vmx.md, "Not covered yet"). */
    const struct field_val lm[] = {{VMCS_GUEST_CR0, cr0 & ~CR0_PE}};
    expect_guest_fail(v, lm, 1, "64-bit guest with CR0.PE=0 and PG=1");
    uint8_t *code = alloc_page();
    static const uint8_t insns[] = {0x0f, 0x01, 0xc1, 0x0f, 0x0b}; /* VMCALL; UD2 */
    memcpy(code, insns, sizeof(insns));
    real_mode_guest(v, (uintptr_t)code, (uintptr_t)alloc_page());
    uint64_t rm_cr0 = vmcs_read(VMCS_GUEST_CR0);
    const struct field_val pg[] = {{VMCS_GUEST_CR0, rm_cr0 | CR0_PG}};
    expect_guest_fail(v, pg, 1, "CR0.PG=1 with CR0.PE=0 under unrestricted guest");
    v->launched = 0;
    if (vmx_run_expect(v, EXIT_VMCALL, "real-mode guest under unrestricted guest"))
        check_eq("guest RIP at the VMCALL", v->guest_rip, 0);
}

PROBE(vmx_entry_vnmi_blocking_inject, "vmx.entry.vnmi_blocking_inject", "VMX",
      "With NMI exiting and virtual NMIs, VMLAUNCH injecting an NMI while the guest "
      "interruptibility state has blocking by NMI (bit 3) is a VM-entry failure: exit reason "
      "0x80000021, qualification 0; without the blocking bit the NMI is delivered",
      "Intel SDM Vol. 3C 27.3.1.5 (interruptibility state)", "sdm.27.3.1.5.intr-inject-nmi",
      "sdm.27.8.invalid-guest-state")
{
    vmx_require_ctl(VMX_CTL_PIN, PIN_NMI_EXITING | PIN_VIRTUAL_NMIS,
                    "NMI exiting and virtual NMIs");
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_en_loop_guest);
    vmx_guest_idt(v);
    vmcs_set_bits(VMCS_PIN_CTLS, PIN_NMI_EXITING | PIN_VIRTUAL_NMIS);
    const struct field_val fv[] = {{VMCS_GUEST_INTERRUPTIBILITY, INTERRUPTIBILITY_NMI},
                                   {VMCS_ENTRY_INTR_INFO, INJ(INTR_TYPE_NMI, NMI_VECTOR)}};
    expect_guest_fail(v, fv, 2, "injecting an NMI with virtual-NMI blocking");
    vmcs_write(VMCS_ENTRY_INTR_INFO, INJ(INTR_TYPE_NMI, NMI_VECTOR));
    v->launched = 0;
    if (vmx_run_expect(v, EXIT_VMCALL, "injecting an NMI without virtual-NMI blocking"))
        check_eq("vector delivered through the guest IDT", v->gpr[VMX_GPR_RBX], NMI_VECTOR);
}

PROBE(vmx_entry_activity_hlt_inject, "vmx.entry.activity_hlt_inject", "VMX",
      "VMLAUNCH with activity state HLT injecting a hardware exception #UD (only external "
      "interrupts, NMIs, #DB, #MC and pending MTF may be injected in HLT) is a VM-entry failure: "
      "exit reason 0x80000021, qualification 0; injecting #UD in the active state is delivered",
      "Intel SDM Vol. 3C 27.3.1.5 (activity state), A.6", "sdm.27.3.1.5.activity-hlt-inject",
      "sdm.27.8.invalid-guest-state")
{
    if (!(vmx_caps()->misc & VMX_MISC_ACT_HLT))
        skip("IA32_VMX_MISC[6]=0: activity state HLT not supported");
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_en_loop_guest);
    vmx_guest_idt(v);
    const struct field_val fv[] = {{VMCS_GUEST_ACTIVITY_STATE, ACTIVITY_HLT},
                                   {VMCS_ENTRY_INTR_INFO, INJ(INTR_TYPE_HW_EXC, UD_VECTOR)}};
    expect_guest_fail_watched(v, fv, 2, "activity state HLT while injecting #UD");
    vmcs_write(VMCS_ENTRY_INTR_INFO, INJ(INTR_TYPE_HW_EXC, UD_VECTOR));
    v->launched = 0;
    if (vmx_run_expect(v, EXIT_VMCALL, "injecting #UD in the active state"))
        check_eq("vector delivered through the guest IDT", v->gpr[VMX_GPR_RBX], UD_VECTOR);
}
