/* SPDX-License-Identifier: MIT */
/*
 * VM entry: every reserved bit of every control field, sub-page write
 * permissions, and activity-state checks that need a CPL-3 guest state or
 * the shutdown state.
 */
#include "vmx_cases.h"

GUEST(vmx_em_loop_guest, "1: vmcall", "jmp 1b");

#define VMCS_EXIT_CTLS2 0x2044 /* secondary VM-exit controls */

#define F(field, val)  \
    {                  \
        (field), (val) \
    }

PROBE(vmx_entry_ctl_reserved_every_bit, "vmx.entry.ctl_reserved_every_bit", "VMX",
      "Every bit of the pin-based, primary and secondary processor-based (with the secondary "
      "controls active), VM-exit and VM-entry controls that the (TRUE) capability MSR fixes, "
      "and, where offered, every bit of the tertiary processor-based controls that "
      "IA32_VMX_PROCBASED_CTLS3 and of the secondary VM-exit controls that IA32_VMX_EXIT_CTLS2 "
      "report unsupported (with those controls activated): VMLAUNCH with that one bit flipped (a "
      "must-be-1 bit cleared, a must-be-0 bit set) gives VMfailValid(7); the unmodified VMCS then "
      "launches",
      "Intel SDM Vol. 3C 27.2.1.1, 27.2.1.2, 27.2.1.3, A.3-A.5", "sdm.27.2.1.1.pinbased-reserved",
      "sdm.27.2.1.1.procbased-reserved", "sdm.27.2.1.1.procbased2-reserved",
      "sdm.27.2.1.2.exit-reserved", "sdm.27.2.1.3.entry-reserved",
      "sdm.27.2.1.1.procbased3-reserved", "sdm.27.2.1.2.exit2-reserved")
{
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_em_loop_guest);
    vc_baseline(v);
    const struct vmx_caps *c = vmx_caps();
    static const struct {
        enum vmx_ctl ctl;
        uint64_t field;
        const char *name;
    } f[] = {{VMX_CTL_PIN, VMCS_PIN_CTLS, "pin-based"},
             {VMX_CTL_PROC, VMCS_PROC_CTLS, "primary processor-based"},
             {VMX_CTL_PROC2, VMCS_PROC_CTLS2, "secondary processor-based"},
             {VMX_CTL_EXIT, VMCS_EXIT_CTLS, "VM-exit"},
             {VMX_CTL_ENTRY, VMCS_ENTRY_CTLS, "VM-entry"}};
    unsigned tried = 0, ok = 0;
    uint64_t proc = vmcs_read(VMCS_PROC_CTLS);
    for (unsigned i = 0; i < ARRAY_SIZE(f); i++) {
        if (f[i].ctl == VMX_CTL_PROC2 && !c->has_proc2)
            continue;
        const struct vmx_ctl_cap *k = &c->ctl[f[i].ctl];
        uint32_t cur = (uint32_t)vmcs_read(f[i].field);
        for (unsigned b = 0; b < 32; b++) {
            uint32_t bit = 1u << b, val;
            if (k->must1 & bit)
                val = cur & ~bit;
            else if (!(k->may1 & bit))
                val = cur | bit;
            else
                continue;
            char what[96];
            snprintf(what, sizeof(what), "%s controls bit %u %s", f[i].name, b,
                     (k->must1 & bit) ? "cleared (must be 1)" : "set (must be 0)");
            struct vc_case cs = {what, VC_CTL, 0, 1, {F(f[i].field, val)}};
            if (f[i].ctl == VMX_CTL_PROC2) {
                cs.n = 2;
                cs.f[1] = (struct vc_field)F(VMCS_PROC_CTLS, proc | PROC_SECONDARY_CTLS);
            }
            tried++;
            ok += vc_run(v, &cs);
        }
    }
    /* the 64-bit tertiary and secondary VM-exit controls: allowed-1 MSRs only */
    const struct {
        bool offered;
        uint64_t field, may1, act_field;
        uint32_t act_bit;
        const char *name;
    } g[] = {{c->has_proc3 && (c->ctl[VMX_CTL_PROC].may1 & PROC_TERTIARY_CTLS), VMCS_PROC_CTLS3,
              c->proc3, VMCS_PROC_CTLS, PROC_TERTIARY_CTLS, "tertiary processor-based"},
             {(c->ctl[VMX_CTL_EXIT].may1 & EXIT_SECONDARY_CTLS) != 0, VMCS_EXIT_CTLS2, 0,
              VMCS_EXIT_CTLS, EXIT_SECONDARY_CTLS, "secondary VM-exit"}};
    for (unsigned i = 0; i < ARRAY_SIZE(g); i++) {
        if (!g[i].offered) {
            note("%s controls not offered", g[i].name);
            continue;
        }
        uint64_t may1 = g[i].field == VMCS_EXIT_CTLS2 ? rdmsr(MSR_IA32_VMX_EXIT_CTLS2) : g[i].may1;
        uint64_t act = vmcs_read(g[i].act_field) | g[i].act_bit; /* the field itself 0 */
        for (unsigned b = 0; b < 64; b++) {
            if (may1 & (1ull << b))
                continue;
            char what[96];
            snprintf(what, sizeof(what), "%s controls bit %u set (must be 0)", g[i].name, b);
            struct vc_case cs = {what,
                                 VC_CTL,
                                 0,
                                 2,
                                 {F(g[i].field, 1ull << b), F(g[i].act_field, act)}};
            tried++;
            ok += vc_run(v, &cs);
        }
    }
    note("%u of %u fixed control bits flipped gave VMfailValid(7)", ok, tried);
    v->launched = 0;
    vmx_run_expect(v, EXIT_VMCALL, "VMLAUNCH of the unmodified VMCS");
}

PROBE(vmx_entry_ctl_spp, "vmx.entry.ctl_spp", "EPT",
      "With sub-page write permissions (secondary control 23): VMLAUNCH without enable EPT, or "
      "with the SPPTP bits 11:0 not 0 (+0x800) or at 1 << MAXPHYADDR, gives VMfailValid(7); with "
      "EPT and a valid SPPTP it launches",
      "Intel SDM Vol. 3C 27.2.1.1, 25.6.21", "sdm.27.2.1.1.spp")
{
    vmx_require_ctl(VMX_CTL_PROC2, PROC2_SPP | PROC2_EPT, "sub-page write permissions and EPT");
    vmx_on();
    uint64_t eptp = vmx_ept_identity();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_em_loop_guest);
    vmx_use_ept(v, eptp);
    vc_baseline(v);
    uint64_t spp = (uintptr_t)alloc_page();
    vmcs_write(VMCS_SPPTP, spp);
    uint32_t p2 = (uint32_t)vmcs_read(VMCS_PROC_CTLS2) | PROC2_SPP;
    const struct vc_case cs[] = {
        {"SPP with EPT and a valid SPPTP", VC_LAUNCH, 0, 1, {F(VMCS_PROC_CTLS2, p2)}},
        {"SPP without enable EPT", VC_CTL, 0, 1, {F(VMCS_PROC_CTLS2, p2 & ~PROC2_EPT)}},
        {"SPPTP + 0x800", VC_CTL, 0, 2, {F(VMCS_PROC_CTLS2, p2), F(VMCS_SPPTP, spp + 0x800)}},
        {"SPPTP at 1 << MAXPHYADDR",
         VC_CTL,
         0,
         2,
         {F(VMCS_PROC_CTLS2, p2), F(VMCS_SPPTP, vc_beyond_maxphy())}},
    };
    vc_run_all(v, cs, ARRAY_SIZE(cs));
}

#define AR_DATA3 (VMX_AR_TYPE(3) | VMX_AR_S | VMX_AR_DPL(3) | VMX_AR_P | VMX_AR_DB | VMX_AR_G)
#define AR_CODE3 (VMX_AR_TYPE(11) | VMX_AR_S | VMX_AR_DPL(3) | VMX_AR_P | VMX_AR_L | VMX_AR_G)

PROBE(vmx_entry_guest_activity_cpl3, "vmx.entry.guest_activity_cpl3", "VMX",
      "A consistent CPL-3 guest state (CS, SS, DS, ES with DPL 3 and selectors with RPL 3) in "
      "activity state HLT is a VM-entry failure (exit reason 0x80000021, qualification 0): HLT "
      "requires SS.DPL = 0; the same state in the active state enters the guest (some VM exit)",
      "Intel SDM Vol. 3C 27.3.1.5 (activity state), A.6", "sdm.27.3.1.5.activity-hlt-dpl")
{
    if (!(vmx_caps()->misc & VMX_MISC_ACT_HLT))
        skip("IA32_VMX_MISC[6]=0: activity state HLT not supported");
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_em_loop_guest);
    static const unsigned segs[] = {0, 2, 3}; /* ES, SS, DS */
    for (unsigned i = 0; i < ARRAY_SIZE(segs); i++) {
        vmcs_write(VMCS_GUEST_ES_SEL + 2 * segs[i], 0x13);
        vmcs_write(VMCS_GUEST_ES_BASE + 2 * segs[i], 0);
        vmcs_write(VMCS_GUEST_ES_LIMIT + 2 * segs[i], 0xffffffffu);
        vmcs_write(VMCS_GUEST_ES_AR + 2 * segs[i], AR_DATA3);
    }
    vmcs_write(VMCS_GUEST_CS_SEL, 0x1b);
    vmcs_write(VMCS_GUEST_CS_AR, AR_CODE3);
    v->launched = 0;
    uint32_t r = vmx_run(v);
    check(r != VMX_RUN_VMFAIL && !(r & EXIT_REASON_ENTRY_FAIL),
          "the active CPL-3 guest state: want a VM entry (then any VM exit), got %s",
          vmx_exit_str(v));
    note("the active CPL-3 guest: %s", vmx_exit_str(v));
    if (v->launched) {
        vmclear(v->vmcs_pa);
        vmptrld(v->vmcs_pa);
        v->launched = 0;
    }
    const struct vc_case cs = {"activity state HLT with SS.DPL = 3",
                               VC_GUEST,
                               0,
                               1,
                               {F(VMCS_GUEST_ACTIVITY_STATE, ACTIVITY_HLT)}};
    v->watchdog = "the VM-entry failure (0x80000021)";
    vc_run(v, &cs);
    v->watchdog = NULL;
}

#define INJ(type, vec) (INTR_INFO_VALID | ((uint32_t)(type) << 8) | (vec))

PROBE(vmx_entry_guest_activity_shutdown, "vmx.entry.guest_activity_shutdown", "VMX",
      "VM entry in activity state shutdown injecting a hardware exception #UD (only NMI and "
      "machine check may be injected there) fails: exit reason 0x80000021, qualification 0; so "
      "does shutdown with blocking by STI. Where the VMX-preemption timer exists, VM entry in "
      "shutdown with the timer at 1000 executes nothing: exit 52 with guest RIP unchanged and "
      "the activity state still shutdown",
      "Intel SDM Vol. 3C 27.3.1.5 (activity state), 27.7.2, A.6",
      "sdm.27.3.1.5.activity-shutdown-inject", "sdm.27.3.1.5.activity-blocking",
      "sdm.27.7.2.activity-shutdown")
{
    if (!(vmx_caps()->misc & VMX_MISC_ACT_SHUTDOWN))
        skip("IA32_VMX_MISC[7]=0: activity state shutdown not supported");
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_em_loop_guest);
    vmx_guest_idt(v);
    vc_baseline(v);
    const uint64_t AS = VMCS_GUEST_ACTIVITY_STATE;
    const struct vc_case cs[] = {
        {"shutdown while injecting #UD",
         VC_GUEST,
         0,
         2,
         {F(AS, ACTIVITY_SHUTDOWN), F(VMCS_ENTRY_INTR_INFO, INJ(INTR_TYPE_HW_EXC, UD_VECTOR))}},
        {"shutdown with blocking by STI",
         VC_GUEST,
         0,
         3,
         {F(AS, ACTIVITY_SHUTDOWN), F(VMCS_GUEST_RFLAGS, 0x202),
          F(VMCS_GUEST_INTERRUPTIBILITY, INTERRUPTIBILITY_STI)}},
    };
    v->watchdog = "the VM-entry failure (0x80000021)";
    vc_run_all(v, cs, ARRAY_SIZE(cs));
    v->watchdog = NULL;
    if (!vmx_ctl_can_set(VMX_CTL_PIN, PIN_PREEMPTION_TIMER)) {
        note("no VMX-preemption timer: the entry into shutdown not tried");
        return;
    }
    /* a valid entry into shutdown: the guest stays there until the timer's VM exit */
    uint64_t rip = vmcs_read(VMCS_GUEST_RIP);
    vmcs_set_bits(VMCS_PIN_CTLS, PIN_PREEMPTION_TIMER);
    vmcs_write(VMCS_PREEMPTION_TIMER, 1000);
    vmcs_write(AS, ACTIVITY_SHUTDOWN);
    v->launched = 0;
    v->watchdog = "the VMX-preemption timer exit (52) from shutdown";
    note("watched run: entry in shutdown, the timer at 1000"); /* names it if the level hangs */
    if (vmx_run_expect(v, EXIT_PREEMPT_TIMER, "VM entry in shutdown with the timer at 1000")) {
        check_eq("guest RIP (nothing executed)", v->guest_rip, rip);
        check_eq("guest activity state after the exit", vmcs_read(AS), ACTIVITY_SHUTDOWN);
    }
    v->watchdog = NULL;
}

/* ---- the basic checks of VMLAUNCH (SDM Vol. 3C 27.1) --------------------------------- */

/*
 * int vmx_em_launch(int movss): VMLAUNCH right after MOV SS (movss != 0)
 * or plain, with HOST_RSP/HOST_RIP set to its own frame; returns the RFLAGS
 * after a VMLAUNCH that fell through (VMfail), or ~0 after a VM exit.
 */
uint64_t vmx_em_launch(int movss);
__asm__(".pushsection .text\n"
        ".type vmx_em_launch, @function\n"
        "vmx_em_launch:\n"
        "    push %rbp\n"
        "    push %rbx\n"
        "    push %r12\n"
        "    push %r13\n"
        "    push %r14\n"
        "    push %r15\n"
        "    mov $0x6c14, %eax\n" /* HOST_RSP */
        "    vmwrite %rsp, %rax\n"
        "    lea 1f(%rip), %rdx\n"
        "    mov $0x6c16, %eax\n" /* HOST_RIP */
        "    vmwrite %rdx, %rax\n"
        "    mov %ss, %ax\n"
        "    test %edi, %edi\n"
        "    jz 3f\n"
        "    mov %ax, %ss\n"
        "3:  vmlaunch\n"
        "    pushfq\n"
        "    pop %rax\n"
        "    jmp 2f\n"
        "1:  mov $-1, %rax\n"
        "2:  pop %r15\n"
        "    pop %r14\n"
        "    pop %r13\n"
        "    pop %r12\n"
        "    pop %rbx\n"
        "    pop %rbp\n"
        "    ret\n"
        ".size vmx_em_launch, . - vmx_em_launch\n"
        ".popsection");

static const char *rflags_outcome(uint64_t rf)
{
    if (rf == ~0ull)
        return "a VM entry (and exit)";
    if (rf & 1)
        return "VMfailInvalid";
    if (rf & 0x40)
        return "VMfailValid";
    return "VMsucceed without an entry";
}

PROBE(vmx_entry_basic_checks, "vmx.entry.basic_checks", "VMX",
      "The basic VM-entry checks: VMLAUNCH right after MOV SS (events blocked by MOV SS) gives "
      "VMfailValid(26); VMLAUNCH with no current VMCS (after VMCLEAR of it) gives VMfailInvalid; "
      "where VMCS shadowing exists, VMLAUNCH and VMRESUME with a shadow VMCS (revision id | bit "
      "31) as the current VMCS give VMfailInvalid",
      "Intel SDM Vol. 3C 27.1, 25.10, 31.3 (VMLAUNCH/VMRESUME), 31.4", "sdm.27.1.mov-ss-blocking",
      "sdm.27.1.no-current-vmcs", "sdm.27.1.shadow-vmcs-current", "sdm.25.10.shadow-vmcs")
{
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_em_loop_guest);
    uint64_t rf = vmx_em_launch(1);
    if (check((rf & 0x41) == 0x40 && rf != ~0ull,
              "VMLAUNCH after MOV SS: want VMfailValid(26), got %s", rflags_outcome(rf)))
        check_eq("VM-instruction error after MOV SS", vmcs_read(VMCS_INSN_ERROR),
                 VMXERR_ENTRY_MOVSS_BLOCKING);
    vmclear(v->vmcs_pa);
    rf = vmx_em_launch(0);
    check(rf != ~0ull && (rf & 0x41) == 0x01,
          "VMLAUNCH with no current VMCS: want VMfailInvalid, got %s", rflags_outcome(rf));
    if (!vmx_ctl_can_set(VMX_CTL_PROC2, PROC2_VMCS_SHADOWING)) {
        note("VMCS shadowing not allowed: the shadow-VMCS case not tried");
        return;
    }
    uint32_t *shadow = vmx_alloc_vmcs();
    shadow[0] |= 0x80000000u;
    struct vmx_res r = vmclear((uintptr_t)shadow);
    if (!vmx_ok(r))
        fail("VMCLEAR of the shadow VMCS: %s", vmx_res_str(r));
    r = vmptrld((uintptr_t)shadow);
    if (!check_vmx("VMPTRLD of a shadow VMCS", r, VMX_SUCCEED, 0))
        return;
    rf = vmx_em_launch(0);
    check(rf != ~0ull && (rf & 0x41) == 0x01,
          "VMLAUNCH with a shadow VMCS current: want VMfailInvalid, got %s", rflags_outcome(rf));
    v->launched = 1; /* vmx_run: VMRESUME of the current (shadow) VMCS */
    uint32_t e = vmx_run(v);
    check(e == VMX_RUN_VMFAIL && vmx_res_is(v->entry, VMX_FAIL_INVALID, 0),
          "VMRESUME with a shadow VMCS current: want VMfailInvalid, got %s", vmx_exit_str(v));
}

PROBE(vmx_entry_failed_entry_state, "vmx.entry.failed_entry_state", "VMX",
      "After a VM entry that fails a guest-state check (guest RFLAGS bit 1 clear; exit reason "
      "0x80000021) the host runs at host RIP with the host state loaded as by a VM exit: RFLAGS = "
      "2, DR7 = 0x400; the VMCS stays clear: VMRESUME gives VMfailValid(5) and, with the field "
      "fixed, VMLAUNCH enters the guest",
      "Intel SDM Vol. 3C 27.8, 28.5", "sdm.27.8.failed-entry-state", "sdm.27.8.invalid-guest-state",
      "sdm.C.reason-33-invalid-guest-state")
{
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_em_loop_guest);
    vmcs_write(VMCS_GUEST_RFLAGS, 0);
    __asm__ volatile("mov %0, %%dr7" ::"r"(0x401ull));
    uint32_t r = vmx_run(v);
    uint64_t dr7;
    __asm__ volatile("mov %%dr7, %0" : "=r"(dr7));
    __asm__ volatile("mov %0, %%dr7" ::"r"(0x400ull));
    if (!check(r == (EXIT_REASON_ENTRY_FAIL | EXIT_INVALID_GUEST),
               "guest RFLAGS 0: want VM-entry failure 0x80000021, got %s", vmx_exit_str(v)))
        return;
    check_eq("host RFLAGS after the failed entry", v->exit_rflags, 0x2);
    check_eq("host DR7 after the failed entry", dr7, 0x400);
    v->launched = 1; /* VMRESUME */
    vmx_run(v);
    check(v->exit_reason == VMX_RUN_VMFAIL &&
              vmx_res_is(v->entry, VMX_FAIL_VALID, VMXERR_VMRESUME_NOT_LAUNCHED),
          "VMRESUME after the failed VMLAUNCH: want VMfailValid(5), got %s", vmx_exit_str(v));
    vmcs_write(VMCS_GUEST_RFLAGS, 0x2);
    v->launched = 0;
    vmx_run_expect(v, EXIT_VMCALL, "VMLAUNCH with guest RFLAGS fixed");
}

/* guest: report RFLAGS, DS, ES, RSP and EFER (MSR bitmap all zero), then VMCALL */
GUEST(vmx_em_state_guest, "    pushfq\n"
                          "    pop %rax\n"
                          "    mov %ds, %ebx\n"
                          "    mov %es, %esi\n"
                          "    mov %rsp, %rdi\n"
                          "    mov $0xc0000080, %ecx\n"
                          "    push %rax\n"
                          "    rdmsr\n"
                          "    shl $32, %rdx\n"
                          "    or %rax, %rdx\n"
                          "    pop %rax\n"
                          "    mov %rdx, %r8\n"
                          "    cld\n"
                          "    vmcall\n"
                          "    ud2");

PROBE(vmx_entry_state_load, "vmx.entry.state_load", "VMX",
      "VM entry loads the guest state from the VMCS: a guest entered with RFLAGS = 0x8d7 (CF, PF, "
      "AF, ZF, SF, OF), DS selector 0x10 and ES selector 0x18 (usable flat data segments), and "
      "RSP = its stack top - 64 reads back exactly those; with load IA32_EFER = 0 and a guest "
      "EFER field holding garbage (NXE flipped, bit 2 set), the guest's EFER is the host's with "
      "LMA = LME = 1 (from IA-32e mode guest)",
      "Intel SDM Vol. 3C 27.3.2.1, 27.3.2.2, 27.3.2.3", "sdm.27.3.2.2.segment-load",
      "sdm.27.3.2.3.rip-rsp-rflags", "sdm.27.3.2.1.efer-no-load")
{
    vmx_require_ctl(VMX_CTL_PROC, PROC_MSR_BITMAPS, "use MSR bitmaps");
    if (!vmx_ctl_can_clear(VMX_CTL_ENTRY, ENTRY_LOAD_EFER))
        skip("load IA32_EFER (entry) cannot be 0");
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_em_state_guest);
    vmcs_write(VMCS_MSR_BITMAP, (uintptr_t)alloc_page());
    vmcs_set_bits(VMCS_PROC_CTLS, PROC_MSR_BITMAPS);
    static const unsigned segs[] = {0, 3};
    static const uint16_t sels[] = {0x18, 0x10};
    for (unsigned i = 0; i < 2; i++) {
        vmcs_write(VMCS_GUEST_ES_SEL + 2 * segs[i], sels[i]);
        vmcs_write(VMCS_GUEST_ES_BASE + 2 * segs[i], 0);
        vmcs_write(VMCS_GUEST_ES_LIMIT + 2 * segs[i], 0xffffffffu);
        vmcs_write(VMCS_GUEST_ES_AR + 2 * segs[i],
                   VMX_AR_TYPE(3) | VMX_AR_S | VMX_AR_P | VMX_AR_DB | VMX_AR_G);
    }
    uint64_t rsp = vmcs_read(VMCS_GUEST_RSP) - 64;
    vmcs_write(VMCS_GUEST_RSP, rsp);
    vmcs_write(VMCS_GUEST_RFLAGS, 0x8d7);
    uint64_t efer = rdmsr(MSR_EFER);
    vmcs_clear_bits(VMCS_ENTRY_CTLS, ENTRY_LOAD_EFER);
    vmcs_write(VMCS_GUEST_EFER, (efer ^ EFER_NXE) | BIT(2));
    if (!vmx_run_expect(v, EXIT_VMCALL, "guest reporting its state"))
        return;
    check_eq("guest RFLAGS", v->gpr[VMX_GPR_RAX], 0x8d7);
    check_eq("guest DS selector", v->gpr[VMX_GPR_RBX] & 0xffff, 0x10);
    check_eq("guest ES selector", v->gpr[VMX_GPR_RSI] & 0xffff, 0x18);
    check_eq("guest RSP", v->gpr[VMX_GPR_RDI], rsp);
    check_eq("guest EFER (load IA32_EFER = 0)", v->gpr[VMX_GPR_R8], efer | EFER_LMA | EFER_LME);
}
