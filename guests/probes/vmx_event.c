/* SPDX-License-Identifier: MIT */
/*
 * VMX event injection (VM-entry interruption information) and the
 * IDT-vectoring information of exits during event delivery.
 */
#include "vmx.h"

/* guest: VMCALL forever (the injected event's handler runs first) */
GUEST(vmx_ev_loop_guest, "1: vmcall", "jmp 1b");

static struct vmx_vcpu *event_vcpu(void)
{
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ev_loop_guest);
    vmx_guest_idt(v);
    return v;
}

/* the VMCALL of the guest IDT's handler for vector, error code err */
static bool expect_handler(struct vmx_vcpu *v, unsigned vector, uint64_t err, uint64_t rip,
                           const char *what)
{
    if (!vmx_run_expect(v, EXIT_VMCALL, what))
        return false;
    if (!check(v->gpr[VMX_GPR_RAX] == VMX_GUEST_EVENT,
               "%s: the guest did not reach an IDT handler (VMCALL at %#llx, RAX=%#llx)", what,
               (unsigned long long)v->guest_rip, (unsigned long long)v->gpr[VMX_GPR_RAX]))
        return false;
    check_eq("vector delivered through the guest IDT", v->gpr[VMX_GPR_RBX], vector);
    check_eq("error code pushed (~0 = none)", v->gpr[VMX_GPR_RCX], err);
    check_eq("RIP pushed by the event", v->gpr[VMX_GPR_RDX], rip);
    check(!(vmcs_read(VMCS_ENTRY_INTR_INFO) & INTR_INFO_VALID),
          "VM-entry interruption information still valid after the VM exit: %#llx",
          (unsigned long long)vmcs_read(VMCS_ENTRY_INTR_INFO));
    return true;
}

PROBE(vmx_event_inject_exception, "vmx.event.inject_exception", "VMX",
      "VM entry injecting a hardware exception #GP with error code 0x1234 delivers it through the "
      "guest IDT (the exception bitmap, all ones, is not consulted): the handler sees vector 13, "
      "error code 0x1234, pushed RIP = guest RIP; the VM exit clears the valid bit of the VM-entry "
      "interruption information; after IRET the guest resumes at its entry point",
      "Intel SDM Vol. 3C 25.8.3, 27.6.1, 28.2.1", "sdm.27.6.1.1.inject-hw-exception",
      "sdm.27.6.1.inject-delivery", "sdm.25.8.3.interruption-info")
{
    struct vmx_vcpu *v = event_vcpu();
    uint64_t rip = vmcs_read(VMCS_GUEST_RIP);
    vmcs_write(VMCS_ENTRY_INTR_INFO,
               INTR_INFO_VALID | INTR_INFO_ERRCODE | (INTR_TYPE_HW_EXC << 8) | GP_VECTOR);
    vmcs_write(VMCS_ENTRY_EXC_ERRCODE, 0x1234);
    if (!expect_handler(v, GP_VECTOR, 0x1234, rip, "injected #GP(0x1234)"))
        return;
    vmx_skip_insn(v);
    if (vmx_run_expect(v, EXIT_VMCALL, "VMRESUME into the handler's IRET"))
        check_eq("guest RIP after IRET", v->guest_rip, rip);
}

PROBE(vmx_event_inject_soft_int, "vmx.event.inject_soft_int", "VMX",
      "VM entry injecting a software interrupt (type 4) INT 0x80 with VM-entry instruction length "
      "2 delivers vector 0x80 without error code and pushes RIP = guest RIP + 2",
      "Intel SDM Vol. 3C 25.8.3, 27.6.1.1", "sdm.27.6.1.1.inject-soft-int",
      "sdm.25.8.3.interruption-info")
{
    struct vmx_vcpu *v = event_vcpu();
    uint64_t rip = vmcs_read(VMCS_GUEST_RIP);
    vmcs_write(VMCS_ENTRY_INTR_INFO, INTR_INFO_VALID | (INTR_TYPE_SW_INTR << 8) | 0x80);
    vmcs_write(VMCS_ENTRY_INSN_LEN, 2);
    expect_handler(v, 0x80, VMX_NO_ERRCODE, rip + 2, "injected INT 0x80");
}

PROBE(vmx_event_inject_nmi, "vmx.event.inject_nmi", "VMX",
      "VM entry injecting an NMI (type 2, vector 2) delivers vector 2 through the guest IDT; in "
      "the handler the guest interruptibility state has blocking by NMI (bit 3) set; after the "
      "handler's IRET it is clear",
      "Intel SDM Vol. 3C 25.4.2, 25.8.3, 27.6.1, 28.3.4", "sdm.27.6.1.1.inject-nmi")
{
    struct vmx_vcpu *v = event_vcpu();
    uint64_t rip = vmcs_read(VMCS_GUEST_RIP);
    vmcs_write(VMCS_ENTRY_INTR_INFO, INTR_INFO_VALID | (INTR_TYPE_NMI << 8) | NMI_VECTOR);
    if (!expect_handler(v, NMI_VECTOR, VMX_NO_ERRCODE, rip, "injected NMI"))
        return;
    uint64_t is = vmcs_read(VMCS_GUEST_INTERRUPTIBILITY);
    check(is & INTERRUPTIBILITY_NMI,
          "interruptibility state %#llx in the NMI handler lacks "
          "blocking by NMI",
          (unsigned long long)is);
    vmx_skip_insn(v);
    if (!vmx_run_expect(v, EXIT_VMCALL, "VMRESUME into the NMI handler's IRET"))
        return;
    check_eq("guest RIP after IRET", v->guest_rip, rip);
    is = vmcs_read(VMCS_GUEST_INTERRUPTIBILITY);
    check(!(is & INTERRUPTIBILITY_NMI),
          "interruptibility state %#llx after IRET still has "
          "blocking by NMI",
          (unsigned long long)is);
}

PROBE(vmx_event_idt_vectoring, "vmx.event.idt_vectoring", "VMX",
      "Injecting INT 0x80 (length 2) with a guest IDT limit of 0x7ff (vector 0x80 beyond it) "
      "raises #GP during delivery: exit reason 0 with vector 13, error code 0x402 (IDT, index "
      "0x80), IDT-vectoring information 0x80000480 (valid, software interrupt, 0x80), "
      "instruction length 2, guest RIP unchanged",
      "Intel SDM Vol. 3C 27.6.1.1, 28.2.2, 28.2.4, 28.2.5", "sdm.28.2.3.idt-vectoring-injected",
      "sdm.27.6.1.2.inject-vmexit", "sdm.28.2.2.intr-info", "sdm.28.2.2.intr-error-code")
{
    struct vmx_vcpu *v = event_vcpu();
    uint64_t rip = vmcs_read(VMCS_GUEST_RIP);
    vmcs_write(VMCS_GUEST_IDTR_LIMIT, 0x7ff);
    vmcs_write(VMCS_ENTRY_INTR_INFO, INTR_INFO_VALID | (INTR_TYPE_SW_INTR << 8) | 0x80);
    vmcs_write(VMCS_ENTRY_INSN_LEN, 2);
    if (!vmx_run_expect(v, EXIT_EXCEPTION_NMI, "INT 0x80 beyond the IDT limit"))
        return;
    check_eq("VM-exit interruption information", v->exit_intr_info,
             INTR_INFO_VALID | INTR_INFO_ERRCODE | (INTR_TYPE_HW_EXC << 8) | GP_VECTOR);
    check_eq("#GP error code", v->exit_intr_err, 0x402);
    check_eq("IDT-vectoring information", v->idt_info,
             INTR_INFO_VALID | (INTR_TYPE_SW_INTR << 8) | 0x80);
    check_eq("VM-exit instruction length", v->insn_len, 2);
    check_eq("guest RIP", v->guest_rip, rip);
}

PROBE(vmx_entry_event_injection, "vmx.entry.event_injection", "VMX",
      "VM-entry checks on the interruption-information field: type 1 (reserved) gives "
      "VMfailValid(7); a hardware exception with vector 32 gives VMfailValid(7); reserved bit 30 "
      "set gives VMfailValid(7); #UD with deliver-error-code=1 gives VMfailValid(7) if "
      "IA32_VMX_BASIC[56]=0 and is delivered if it is 1",
      "Intel SDM Vol. 3C 27.2.1.3, A.1", "sdm.27.2.1.3.inject-type-reserved",
      "sdm.27.2.1.3.inject-vector", "sdm.27.2.1.3.inject-reserved-bits",
      "sdm.27.2.1.3.inject-error-code-valid")
{
    struct vmx_vcpu *v = event_vcpu();
    static const struct {
        uint32_t info;
        const char *what;
    } bad[] = {
        {INTR_INFO_VALID | (1u << 8) | 0x20, "type 1 (reserved)"},
        {INTR_INFO_VALID | (INTR_TYPE_HW_EXC << 8) | 32, "hardware exception with vector 32"},
        {INTR_INFO_VALID | (1u << 30) | (INTR_TYPE_HW_EXC << 8) | UD_VECTOR, "reserved bit 30 set"},
    };
    for (unsigned i = 0; i < ARRAY_SIZE(bad); i++) {
        vmcs_write(VMCS_ENTRY_INTR_INFO, bad[i].info);
        v->launched = 0;
        uint32_t r = vmx_run(v);
        check(r == VMX_RUN_VMFAIL && vmx_res_is(v->entry, VMX_FAIL_VALID, VMXERR_ENTRY_BAD_CTRL),
              "injection %#x (%s): want VMfailValid(7), got %s", bad[i].info, bad[i].what,
              vmx_exit_str(v));
    }
    bool nocheck = (vmx_caps()->basic & VMX_BASIC_NO_ERRCODE_CHECK) != 0;
    vmcs_write(VMCS_ENTRY_INTR_INFO,
               INTR_INFO_VALID | INTR_INFO_ERRCODE | (INTR_TYPE_HW_EXC << 8) | UD_VECTOR);
    vmcs_write(VMCS_ENTRY_EXC_ERRCODE, 0x55);
    v->launched = 0;
    uint32_t r = vmx_run(v);
    if (nocheck) {
        /* the #UD stub pushes its ~0 marker on top of the error code */
        if (check(r == EXIT_VMCALL && v->gpr[VMX_GPR_RAX] == VMX_GUEST_EVENT,
                  "#UD with error code, IA32_VMX_BASIC[56]=1: want delivery, got %s",
                  vmx_exit_str(v)))
            check_eq("vector delivered", v->gpr[VMX_GPR_RBX], UD_VECTOR);
    } else {
        check(r == VMX_RUN_VMFAIL && vmx_res_is(v->entry, VMX_FAIL_VALID, VMXERR_ENTRY_BAD_CTRL),
              "#UD with deliver-error-code=1, IA32_VMX_BASIC[56]=0: want VMfailValid(7), got %s",
              vmx_exit_str(v));
    }
}

/* ---- more injected event types ---------------------------------------------------- */

PROBE(vmx_event_inject_extint, "vmx.event.inject_extint", "VMX",
      "VM entry injecting an external interrupt (type 0, vector 0x40) into a guest with "
      "RFLAGS.IF=1 "
      "delivers vector 0x40 through the guest IDT without error code, pushed RIP = guest RIP, and "
      "without touching the local APIC (nothing in service)",
      "Intel SDM Vol. 3C 25.8.3, 27.6.1", "sdm.27.6.1.1.inject-extint")
{
    struct vmx_vcpu *v = event_vcpu();
    uint64_t rip = vmcs_read(VMCS_GUEST_RIP);
    vmcs_write(VMCS_GUEST_RFLAGS, 0x202);
    vmcs_write(VMCS_ENTRY_INTR_INFO, INTR_INFO_VALID | (INTR_TYPE_EXT_INTR << 8) | 0x40);
    expect_handler(v, 0x40, VMX_NO_ERRCODE, rip, "injected external interrupt 0x40");
}

PROBE(vmx_event_inject_exception_noerr, "vmx.event.inject_exception_noerr", "VMX",
      "VM entry injecting hardware exceptions without error code (#UD, then #DE; type 3, "
      "deliver-error-code=0) delivers each through the guest IDT with no error code pushed and "
      "pushed RIP = guest RIP (a fault: the RIP of the instruction not executed)",
      "Intel SDM Vol. 3C 25.8.3, 27.6.1.1, 27.6.1.2", "sdm.27.6.1.1.inject-hw-exception")
{
    struct vmx_vcpu *v = event_vcpu();
    uint64_t rip = vmcs_read(VMCS_GUEST_RIP);
    static const unsigned vec[] = {UD_VECTOR, DE_VECTOR};
    for (unsigned i = 0; i < ARRAY_SIZE(vec); i++) {
        vmcs_write(VMCS_GUEST_RIP, rip);
        vmcs_write(VMCS_ENTRY_INTR_INFO, INTR_INFO_VALID | (INTR_TYPE_HW_EXC << 8) | vec[i]);
        char what[48];
        snprintf(what, sizeof(what), "injected hardware exception %u", vec[i]);
        if (!expect_handler(v, vec[i], VMX_NO_ERRCODE, rip, what))
            return;
    }
}

PROBE(vmx_event_inject_soft_exception, "vmx.event.inject_soft_exception", "VMX",
      "VM entry injecting software exceptions (type 6) #BP (vector 3, as INT3) and #OF (vector 4, "
      "as "
      "INTO), each with VM-entry instruction length 1, delivers the vector without error code and "
      "pushes RIP = guest RIP + 1 (a trap past the instruction)",
      "Intel SDM Vol. 3C 25.8.3, 27.6.1.1", "sdm.27.6.1.1.inject-soft-int")
{
    struct vmx_vcpu *v = event_vcpu();
    uint64_t rip = vmcs_read(VMCS_GUEST_RIP);
    static const unsigned vec[] = {BP_VECTOR, OF_VECTOR};
    for (unsigned i = 0; i < ARRAY_SIZE(vec); i++) {
        vmcs_write(VMCS_GUEST_RIP, rip);
        vmcs_write(VMCS_ENTRY_INTR_INFO, INTR_INFO_VALID | (INTR_TYPE_SW_EXC << 8) | vec[i]);
        vmcs_write(VMCS_ENTRY_INSN_LEN, 1);
        char what[48];
        snprintf(what, sizeof(what), "injected software exception %u", vec[i]);
        if (!expect_handler(v, vec[i], VMX_NO_ERRCODE, rip + 1, what))
            return;
    }
}

PROBE(vmx_event_inject_priv_soft_exception, "vmx.event.inject_priv_soft_exception", "VMX",
      "VM entry injecting a privileged software exception (type 5, vector 1, as ICEBP/INT1) with "
      "VM-entry instruction length 1 delivers #DB without error code and pushes RIP = guest RIP + "
      "1",
      "Intel SDM Vol. 3C 25.8.3, 27.6.1.1", "sdm.27.6.1.1.inject-priv-sw-exception")
{
    struct vmx_vcpu *v = event_vcpu();
    uint64_t rip = vmcs_read(VMCS_GUEST_RIP);
    vmcs_write(VMCS_ENTRY_INTR_INFO, INTR_INFO_VALID | (INTR_TYPE_PRIV_SW_EXC << 8) | DB_VECTOR);
    vmcs_write(VMCS_ENTRY_INSN_LEN, 1);
    expect_handler(v, DB_VECTOR, VMX_NO_ERRCODE, rip + 1, "injected privileged software exception");
}

PROBE(vmx_event_virtual_nmi, "vmx.event.virtual_nmi", "VMX",
      "With NMI exiting and virtual NMIs, VM entry injecting an NMI delivers vector 2 and sets "
      "virtual-NMI blocking (interruptibility bit 3) in the handler; with NMI-window exiting then "
      "set, VMRESUME runs the handler's IRET, which ends virtual-NMI blocking, and the NMI-window "
      "VM exit (reason 8) follows at the instruction after the IRET (the interrupted guest RIP)",
      "Intel SDM Vol. 3C 25.6.1, 25.6.2, 26.3 (IRET), 26.7.2 (NMI-window exiting), 27.6.1",
      "sdm.25.6.1.virtual-nmis", "sdm.26.3.iret-nmi", "sdm.27.7.6.nmi-window")
{
    vmx_require_ctl(VMX_CTL_PIN, PIN_NMI_EXITING | PIN_VIRTUAL_NMIS,
                    "NMI exiting and virtual NMIs");
    vmx_require_ctl(VMX_CTL_PROC, PROC_NMI_WINDOW, "NMI-window exiting");
    struct vmx_vcpu *v = event_vcpu();
    uint64_t rip = vmcs_read(VMCS_GUEST_RIP);
    vmcs_set_bits(VMCS_PIN_CTLS, PIN_NMI_EXITING | PIN_VIRTUAL_NMIS);
    vmcs_write(VMCS_ENTRY_INTR_INFO, INTR_INFO_VALID | (INTR_TYPE_NMI << 8) | NMI_VECTOR);
    if (!expect_handler(v, NMI_VECTOR, VMX_NO_ERRCODE, rip, "injected virtual NMI"))
        return;
    uint64_t is = vmcs_read(VMCS_GUEST_INTERRUPTIBILITY);
    check(is & INTERRUPTIBILITY_NMI,
          "interruptibility state %#llx in the NMI handler lacks "
          "virtual-NMI blocking",
          (unsigned long long)is);
    vmcs_set_bits(VMCS_PROC_CTLS, PROC_NMI_WINDOW);
    vmx_skip_insn(v);
    if (!vmx_run_expect(v, EXIT_NMI_WINDOW,
                        "VMRESUME into the handler's IRET with NMI-window exiting"))
        return;
    check_eq("guest RIP at the NMI-window exit (after the IRET)", v->guest_rip, rip);
    is = vmcs_read(VMCS_GUEST_INTERRUPTIBILITY);
    check(!(is & INTERRUPTIBILITY_NMI),
          "interruptibility state %#llx after IRET still has "
          "virtual-NMI blocking",
          (unsigned long long)is);
}

/* ---- activity state HLT ----------------------------------------------------------- */

PROBE(vmx_event_activity_hlt, "vmx.event.activity_hlt", "VMX",
      "VM entry with guest activity state HLT (IA32_VMX_MISC[6]) and the VMX-preemption timer at "
      "1000: the guest executes nothing and exits with reason 52, guest RIP unchanged, activity "
      "state still HLT; VM entry in HLT injecting an NMI delivers it (the handler runs) and the "
      "activity state becomes active",
      "Intel SDM Vol. 3C 25.4.2, 27.7.4 (activity state), 27.6.1, 28.3.4, A.6",
      "sdm.27.7.2.activity-hlt", "sdm.26.5.1.timer-hlt", "sdm.28.3.4.activity-state")
{
    if (!(vmx_caps()->misc & VMX_MISC_ACT_HLT))
        skip("IA32_VMX_MISC[6]=0: activity state HLT not supported");
    vmx_require_ctl(VMX_CTL_PIN, PIN_PREEMPTION_TIMER, "VMX-preemption timer");
    struct vmx_vcpu *v = event_vcpu();
    uint64_t rip = vmcs_read(VMCS_GUEST_RIP);
    vmcs_set_bits(VMCS_PIN_CTLS, PIN_PREEMPTION_TIMER);
    vmcs_write(VMCS_PREEMPTION_TIMER, 1000);
    vmcs_write(VMCS_GUEST_ACTIVITY_STATE, ACTIVITY_HLT);
    /* A guest left in HLT by a timer that does not expire, or by an NMI
     * that is not delivered, waits for good: both runs are watched. */
    v->watchdog = "the VMX-preemption timer exit (52) from HLT";
    note("watched run: entry in HLT, the timer at 1000"); /* names the run if the level hangs */
    if (vmx_run_expect(v, EXIT_PREEMPT_TIMER, "VM entry in HLT with the timer at 1000")) {
        check_eq("guest RIP (nothing executed)", v->guest_rip, rip);
        check_eq("guest activity state after the exit", vmcs_read(VMCS_GUEST_ACTIVITY_STATE),
                 ACTIVITY_HLT);
    }
    vmcs_clear_bits(VMCS_PIN_CTLS, PIN_PREEMPTION_TIMER);
    vmcs_write(VMCS_GUEST_ACTIVITY_STATE, ACTIVITY_HLT);
    vmcs_write(VMCS_ENTRY_INTR_INFO, INTR_INFO_VALID | (INTR_TYPE_NMI << 8) | NMI_VECTOR);
    v->watchdog = "the injected NMI's handler (its VMCALL) from HLT";
    note("watched run: entry in HLT injecting an NMI");
    if (expect_handler(v, NMI_VECTOR, VMX_NO_ERRCODE, rip, "VM entry in HLT injecting an NMI"))
        check_eq("guest activity state after the handler's VMCALL",
                 vmcs_read(VMCS_GUEST_ACTIVITY_STATE), ACTIVITY_ACTIVE);
}

PROBE(vmx_event_idt_vectoring_reinject, "vmx.event.idt_vectoring_reinject", "EPT",
      "VM entry injects #GP with error code 0x1234 while the guest stack page is read-only in EPT: "
      "the delivery's push causes an EPT violation (reason 48, write) with IDT-vectoring "
      "information "
      "0x80000b0d (valid, hardware exception with error code, vector 13) and IDT-vectoring error "
      "code 0x1234; with the page writable again and the IDT-vectoring fields copied into the "
      "VM-entry interruption fields, VMRESUME delivers #GP(0x1234) to the guest handler",
      "Intel SDM Vol. 3C 27.6.1, 28.2.4, 29.3.3.2", "sdm.28.2.3.idt-vectoring",
      "sdm.27.6.1.2.inject-vmexit")
{
    struct vmx_vcpu *v = event_vcpu();
    uint64_t eptp = vmx_ept_identity();
    vmx_use_ept(v, eptp);
    uint64_t rip = vmcs_read(VMCS_GUEST_RIP), rsp = vmcs_read(VMCS_GUEST_RSP);
    uint64_t *pte = vmx_ept_pte(eptp, (rsp - 8) & ~0xfffull);
    const uint64_t rwx = *pte;
    *pte = (rwx & ~EPT_RWX) | EPT_R;
    vmx_ept_flush(eptp);
    vmcs_write(VMCS_ENTRY_INTR_INFO,
               INTR_INFO_VALID | INTR_INFO_ERRCODE | (INTR_TYPE_HW_EXC << 8) | GP_VECTOR);
    vmcs_write(VMCS_ENTRY_EXC_ERRCODE, 0x1234);
    if (!vmx_run_expect(v, EXIT_EPT_VIOLATION, "injected #GP pushing onto a read-only stack page"))
        return;
    check(v->exit_qual & EPT_VQ_WRITE, "exit qualification %#llx lacks the write bit",
          (unsigned long long)v->exit_qual);
    check_eq("IDT-vectoring information", v->idt_info,
             INTR_INFO_VALID | INTR_INFO_ERRCODE | (INTR_TYPE_HW_EXC << 8) | GP_VECTOR);
    check_eq("IDT-vectoring error code", v->idt_err, 0x1234);
    check_eq("guest RIP (delivery did not complete)", v->guest_rip, rip);
    *pte = rwx;
    vmx_ept_flush(eptp);
    vmcs_write(VMCS_ENTRY_INTR_INFO, v->idt_info & ~(1u << 12));
    vmcs_write(VMCS_ENTRY_EXC_ERRCODE, v->idt_err);
    expect_handler(v, GP_VECTOR, 0x1234, rip, "re-injected #GP(0x1234)");
}
