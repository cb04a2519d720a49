/* SPDX-License-Identifier: MIT */
/*
 * The VMX-preemption timer.
 */
#include "vmx.h"

/* The spinning guest runs with RFLAGS.IF=1 (vmx_tm_spinner()). The timer
 * does not depend on IF, but a hypervisor that runs this guest for us lets
 * its own interrupts exit the guest, and a CPU under it with Bochs's
 * deviation D2 (an IF=0 guest from VM entry takes no external-interrupt
 * exit) would never give it control back: the whole level would hang and
 * take the records still in its buffers with it (docs/probes/vmx.md). */
GUEST(vmx_tm_spin_guest, "1: add $1, %rbx", "jmp 1b");

/* A timer that never expires leaves the guest spinning: the runs are
 * watched (vmx_run(): with the preemption timer active, by the local APIC
 * timer and external-interrupt exiting, which IF=1 also lets through). */
static struct vmx_vcpu *vmx_tm_spinner(void)
{
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_tm_spin_guest);
    vmcs_write(VMCS_GUEST_RFLAGS, 0x202);
    v->watchdog = "the VMX-preemption timer exit (52)";
    return v;
}

PROBE(vmx_timer_zero, "vmx.timer.zero", "preemption timer",
      "With activate VMX-preemption timer=1 and a timer value of 0, VM entry exits with reason 52 "
      "before the guest executes any instruction (guest RIP = entry point, RBX unchanged)",
      "Intel SDM Vol. 3C 25.6.1, 26.5.1", "sdm.27.7.4.timer-load", "sdm.26.5.1.timer-zero")
{
    vmx_require_ctl(VMX_CTL_PIN, PIN_PREEMPTION_TIMER, "VMX-preemption timer");
    vmx_on();
    struct vmx_vcpu *v = vmx_tm_spinner();
    vmcs_set_bits(VMCS_PIN_CTLS, PIN_PREEMPTION_TIMER);
    vmcs_write(VMCS_PREEMPTION_TIMER, 0);
    if (!vmx_run_expect(v, EXIT_PREEMPT_TIMER, "VM entry with timer value 0"))
        return;
    check_eq("guest RIP at the timer exit", v->guest_rip, (uintptr_t)vmx_tm_spin_guest);
    check_eq("guest RBX (no instruction executed)", v->gpr[VMX_GPR_RBX], 0);
    check_eq("exit qualification of the timer exit", v->exit_qual, 0);
}

PROBE(vmx_timer_expire, "vmx.timer.expire", "preemption timer",
      "With a timer value of 1000 and save VMX-preemption timer value=1, a spinning guest exits "
      "with reason 52 after executing instructions, and the saved timer value is 0",
      "Intel SDM Vol. 3C 25.6.1, 25.7.1, 26.5.1, 28.3", "sdm.25.6.1.timer-control",
      "sdm.28.3.4.timer-save", "sdm.C.reason-52-preemption-timer")
{
    vmx_require_ctl(VMX_CTL_PIN, PIN_PREEMPTION_TIMER, "VMX-preemption timer");
    vmx_require_ctl(VMX_CTL_EXIT, EXIT_SAVE_TIMER, "save VMX-preemption timer value");
    vmx_on();
    struct vmx_vcpu *v = vmx_tm_spinner();
    vmcs_set_bits(VMCS_PIN_CTLS, PIN_PREEMPTION_TIMER);
    vmcs_set_bits(VMCS_EXIT_CTLS, EXIT_SAVE_TIMER);
    vmcs_write(VMCS_PREEMPTION_TIMER, 1000);
    if (!vmx_run_expect(v, EXIT_PREEMPT_TIMER, "spinning guest with timer value 1000"))
        return;
    note("guest executed %llu loop iterations; TSC ratio IA32_VMX_MISC[4:0]=%u",
         (unsigned long long)v->gpr[VMX_GPR_RBX], VMX_MISC_TIMER_RATIO(vmx_caps()->misc));
    check(v->gpr[VMX_GPR_RBX] > 0, "the guest executed no instruction before the timer exit");
    check_eq("saved VMX-preemption timer value", vmcs_read(VMCS_PREEMPTION_TIMER), 0);
}

GUEST(vmx_tm_call_guest, "vmcall", "ud2");

PROBE(vmx_timer_save, "vmx.timer.save", "preemption timer",
      "With the timer active at value 1000000 and save VMX-preemption timer value=1, a guest that "
      "exits at once with VMCALL leaves a saved timer value below 1000000 and above 0; the host "
      "then spins for twice that value's TSC ticks (<< IA32_VMX_MISC[4:0]) before VMRESUME, and "
      "the guest again reaches its VMCALL (no exit 52) with a saved value above 0 and below the "
      "first (the timer does not count in the host); with save=0 the field keeps the value "
      "written",
      "Intel SDM Vol. 3C 25.7.1, 26.5.1, 28.3.4", "sdm.28.3.4.timer-save",
      "sdm.26.5.1.timer-non-root-only")
{
    vmx_require_ctl(VMX_CTL_PIN, PIN_PREEMPTION_TIMER, "VMX-preemption timer");
    vmx_require_ctl(VMX_CTL_EXIT, EXIT_SAVE_TIMER, "save VMX-preemption timer value");
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_tm_call_guest);
    vmcs_set_bits(VMCS_PIN_CTLS, PIN_PREEMPTION_TIMER);
    vmcs_set_bits(VMCS_EXIT_CTLS, EXIT_SAVE_TIMER);
    vmcs_write(VMCS_PREEMPTION_TIMER, 1000000);
    if (!vmx_run_expect(v, EXIT_VMCALL, "VMCALL with the timer at 1000000"))
        return;
    uint64_t t = vmcs_read(VMCS_PREEMPTION_TIMER);
    note("saved VMX-preemption timer value %llu", (unsigned long long)t);
    check(t > 0 && t < 1000000, "saved timer value %llu not in (0, 1000000)",
          (unsigned long long)t);
    /* the host spins well past the remaining timer value: it must not count in root */
    uint64_t spin = (2 * t) << VMX_MISC_TIMER_RATIO(vmx_caps()->misc);
    for (uint64_t t0 = rdtsc(); rdtsc() - t0 < spin;)
        __asm__ volatile("pause");
    vmcs_write(VMCS_GUEST_RIP, (uintptr_t)vmx_tm_call_guest);
    if (vmx_run_expect(v, EXIT_VMCALL, "VMCALL after the host spun past the saved timer value")) {
        uint64_t t2 = vmcs_read(VMCS_PREEMPTION_TIMER);
        note("saved VMX-preemption timer value %llu after %llu TSC ticks in the host",
             (unsigned long long)t2, (unsigned long long)spin);
        check(t2 > 0 && t2 < t, "second saved timer value %llu not in (0, %llu)",
              (unsigned long long)t2, (unsigned long long)t);
    }
    if (!vmx_ctl_can_clear(VMX_CTL_EXIT, EXIT_SAVE_TIMER))
        return;
    vmcs_clear_bits(VMCS_EXIT_CTLS, EXIT_SAVE_TIMER);
    vmcs_write(VMCS_PREEMPTION_TIMER, 1000000);
    vmcs_write(VMCS_GUEST_RIP, (uintptr_t)vmx_tm_call_guest);
    if (vmx_run_expect(v, EXIT_VMCALL, "VMCALL with save VMX-preemption timer value=0"))
        check_eq("timer field with save=0", vmcs_read(VMCS_PREEMPTION_TIMER), 1000000);
}

PROBE(vmx_timer_rate, "vmx.timer.rate", "preemption timer",
      "The VMX-preemption timer counts down by 1 each time bit X of the TSC changes, X = "
      "IA32_VMX_MISC[4:0]: a spinning guest with timer value 20000 exits with reason 52 no earlier "
      "than (20000 - 1) << X TSC ticks after VM entry, measured from the host around VMLAUNCH; a "
      "guest that VMCALLs at once, with save VMX-preemption timer value, leaves a value decreased "
      "by at most (elapsed TSC >> X) + 1",
      "Intel SDM Vol. 3C 26.5.1, A.6", "sdm.26.5.1.timer-rate")
{
    vmx_require_ctl(VMX_CTL_PIN, PIN_PREEMPTION_TIMER, "VMX-preemption timer");
    unsigned x = VMX_MISC_TIMER_RATIO(vmx_caps()->misc);
    vmx_on();
    struct vmx_vcpu *v = vmx_tm_spinner();
    vmcs_set_bits(VMCS_PIN_CTLS, PIN_PREEMPTION_TIMER);
    const uint64_t n = 20000;
    vmcs_write(VMCS_PREEMPTION_TIMER, n);
    uint64_t t0 = rdtsc();
    bool ok = vmx_run_expect(v, EXIT_PREEMPT_TIMER, "spinning guest with timer value 20000");
    uint64_t t1 = rdtsc();
    if (ok) {
        note("timer value %llu, X=%u: %llu TSC ticks from VMLAUNCH to the exit, %llu loop "
             "iterations",
             (unsigned long long)n, x, (unsigned long long)(t1 - t0),
             (unsigned long long)v->gpr[VMX_GPR_RBX]);
        check(t1 - t0 >= ((n - 1) << x),
              "timer expired after %llu TSC ticks, before (%llu - 1) << "
              "%u",
              (unsigned long long)(t1 - t0), (unsigned long long)n, x);
    }
    if (!vmx_ctl_can_set(VMX_CTL_EXIT, EXIT_SAVE_TIMER))
        return;
    struct vmx_vcpu *w = vmx_vcpu_new(vmx_tm_call_guest);
    vmcs_set_bits(VMCS_PIN_CTLS, PIN_PREEMPTION_TIMER);
    vmcs_set_bits(VMCS_EXIT_CTLS, EXIT_SAVE_TIMER);
    vmcs_write(VMCS_PREEMPTION_TIMER, 1000000);
    t0 = rdtsc();
    ok = vmx_run_expect(w, EXIT_VMCALL, "VMCALL with the timer at 1000000");
    t1 = rdtsc();
    if (ok) {
        uint64_t dec = 1000000 - vmcs_read(VMCS_PREEMPTION_TIMER);
        note("timer decreased by %llu over %llu TSC ticks (X=%u)", (unsigned long long)dec,
             (unsigned long long)(t1 - t0), x);
        check(dec <= ((t1 - t0) >> x) + 1,
              "timer decreased by %llu in %llu TSC ticks: faster "
              "than 1 per 2^%u ticks",
              (unsigned long long)dec, (unsigned long long)(t1 - t0), x);
    }
}
