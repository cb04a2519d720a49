/* SPDX-License-Identifier: MIT */
/*
 * The probe kernel's watchdog: a one-shot local APIC timer interrupt about
 * a second after it is armed (include/nvct.h). svm_run() and vmx_run() arm
 * it around a guest run whose vCPU names what it awaits (->watchdog): a
 * guest that would otherwise never give control back (halted, waiting, or
 * stuck in a hypervisor that mishandles it) then ends in an INTR (SVM) or
 * external-interrupt (VMX) exit, and the probe can FAIL instead of the
 * whole level running into the harness's per-probe timeout.
 *
 * The timer's rate is measured once against the 8254 PIT's channel 2 (as
 * tsc.c measures the TSC), the least of three tries. The handler (trap_dispatch() calls it for
 * WATCHDOG_VECTOR) counts the interrupt and EOIs it; watchdog_disarm()
 * stops the timer, takes an interrupt still pending and restores the
 * APIC registers it changed.
 */
#include "kernel.h"

#define PIT_HZ    1193182u
#define PIT_CH2   0x42
#define PIT_CMD   0x43
#define PORT_B    0x61
#define CAL_MS    10
#define CAL_COUNT (PIT_HZ * CAL_MS / 1000)
#define POLL_MAX  20000000u

#define APIC_LVT_TIMER 0x320
#define APIC_TMICT     0x380 /* initial count */
#define APIC_TMCCT     0x390 /* current count */
#define APIC_TDCR      0x3e0 /* divide configuration */
#define TDCR_DIV16     0x3
#define LVT_MASKED     BIT(16)

/* Ticks (divide by 16) per second when the PIT cannot measure them: a
 * 1 GHz APIC bus clock, what QEMU and KVM emulate. */
#define DEFAULT_HZ (1000000000u / 16)

static struct {
    bool x2apic, armed;
    volatile uint8_t *mmio;
    uint32_t svr, lvt, tdcr;
    uint64_t hz; /* timer ticks per second at divide-by-16, 0 = not measured */
} wd;

static volatile unsigned wd_fired;

static uint32_t apic_get(unsigned off)
{
    if (wd.x2apic)
        return (uint32_t)rdmsr(0x800 + off / 16);
    return *(volatile uint32_t *)(wd.mmio + off);
}

static void apic_put(unsigned off, uint32_t v)
{
    if (wd.x2apic)
        wrmsr(0x800 + off / 16, v);
    else
        *(volatile uint32_t *)(wd.mmio + off) = v;
}

static bool apic_pending(unsigned reg)
{
    return (apic_get(reg + 0x10 * (WATCHDOG_VECTOR / 32)) >> (WATCHDOG_VECTOR % 32)) & 1;
}

/* Timer ticks in CAL_MS, timed by the PIT; 0 if the PIT does not behave. */
static uint64_t measure(void)
{
    uint8_t b = inb(PORT_B);

    outb(PORT_B, (b & ~0x02) | 0x01);
    outb(PIT_CMD, 0xb0);
    outb(PIT_CH2, CAL_COUNT & 0xff);
    outb(PIT_CH2, CAL_COUNT >> 8);
    apic_put(APIC_TMICT, 0xffffffffu);
    if (inb(PORT_B) & 0x20) {
        apic_put(APIC_TMICT, 0);
        outb(PORT_B, b);
        return 0;
    }
    unsigned i;
    for (i = 0; i < POLL_MAX; i++)
        if (inb(PORT_B) & 0x20)
            break;
    uint32_t left = apic_get(APIC_TMCCT);
    apic_put(APIC_TMICT, 0);
    outb(PORT_B, b);
    if (i == POLL_MAX || left == 0)
        return 0;
    return (uint64_t)(0xffffffffu - left) * 1000 / CAL_MS;
}

void watchdog_irq(void)
{
    wd_fired++;
    apic_put(APIC_EOI, 0);
}

bool watchdog_arm(unsigned ms)
{
    if (wd.armed)
        return false;
    if (!(cpuid(1, 0).d & BIT(9)))
        return false;
    uint64_t base = rdmsr(MSR_IA32_APIC_BASE);
    if (!(base & APIC_BASE_ENABLE))
        return false;
    wd.x2apic = (base & APIC_BASE_X2APIC) != 0;
    wd.mmio = (volatile uint8_t *)(uintptr_t)(base & 0xfffff000ull);
    if (apic_pending(APIC_IRR) || apic_pending(APIC_ISR))
        return false;
    wd.svr = apic_get(APIC_SVR);
    wd.lvt = apic_get(APIC_LVT_TIMER);
    wd.tdcr = apic_get(APIC_TDCR);
    if (!(wd.svr & BIT(8)))
        apic_put(APIC_SVR, wd.svr | BIT(8) | 0xff);
    apic_put(APIC_TDCR, TDCR_DIV16);
    apic_put(APIC_LVT_TIMER, LVT_MASKED | WATCHDOG_VECTOR);
    if (!wd.hz) {
        /* The least of three: a preemption after the PIT's terminal count
         * only adds timer ticks, and would stretch every watchdog. */
        for (int i = 0; i < 3; i++) {
            uint64_t hz = measure();
            if (hz && (!wd.hz || hz < wd.hz))
                wd.hz = hz;
        }
        if (!wd.hz)
            wd.hz = DEFAULT_HZ;
    }
    uint64_t count = wd.hz * ms / 1000;
    if (count > 0xffffffffu)
        count = 0xffffffffu;
    if (count == 0)
        count = 1;
    wd_fired = 0;
    wd.armed = true;
    apic_put(APIC_LVT_TIMER, WATCHDOG_VECTOR); /* one-shot, fixed, unmasked */
    apic_put(APIC_TMICT, (uint32_t)count);
    return true;
}

bool watchdog_disarm(void)
{
    if (!wd.armed)
        return false;
    apic_put(APIC_TMICT, 0);
    apic_put(APIC_LVT_TIMER, LVT_MASKED | WATCHDOG_VECTOR);
    /* A timer interrupt still pending (the exit left it in the IRR): take
     * it now, through watchdog_irq(). */
    if (apic_pending(APIC_IRR)) {
        __asm__ volatile("sti; nop; cli" ::: "memory");
    }
    if (apic_pending(APIC_ISR))
        apic_put(APIC_EOI, 0); /* acknowledged on exit (VMX) and not EOIed */
    apic_put(APIC_LVT_TIMER, wd.lvt);
    apic_put(APIC_TDCR, wd.tdcr);
    apic_put(APIC_SVR, wd.svr);
    wd.armed = false;
    return wd_fired != 0;
}
