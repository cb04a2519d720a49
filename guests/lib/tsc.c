/* SPDX-License-Identifier: MIT */
/*
 * TSC frequency, measured against the 8254 PIT's channel 2, whose gate
 * and output the kernel can reach through port 0x61 without interrupts.
 */
#include "kernel.h"

#define PIT_HZ     1193182u
#define PIT_CH2    0x42
#define PIT_CMD    0x43
#define PORT_B     0x61 /* bit 0: channel 2 gate, bit 1: speaker, bit 5: OUT2 */
#define CAL_MS     10
#define CAL_COUNT  (PIT_HZ * CAL_MS / 1000)
/* How many reads of port 0x61 to allow before giving up: on the slowest
 * host (every read a VM exit under nested virtualization) 10 ms is far
 * fewer than this. */
#define POLL_LIMIT 20000000u

static uint64_t tsc_measure(void)
{
    uint8_t b = inb(PORT_B);

    /* Gate on, speaker off; channel 2, lobyte/hibyte, mode 0 (interrupt on
     * terminal count: OUT goes low now and high when the count runs out). */
    outb(PORT_B, (b & ~0x02) | 0x01);
    outb(PIT_CMD, 0xb0);
    outb(PIT_CH2, CAL_COUNT & 0xff);
    outb(PIT_CH2, CAL_COUNT >> 8);

    uint64_t t0 = rdtsc();
    /* If OUT2 is already high, port 0x61 does not behave like a PC's. */
    if (inb(PORT_B) & 0x20) {
        outb(PORT_B, b);
        return 0;
    }
    unsigned i;
    for (i = 0; i < POLL_LIMIT; i++)
        if (inb(PORT_B) & 0x20)
            break;
    uint64_t t1 = rdtsc();
    outb(PORT_B, b);
    if (i == POLL_LIMIT || t1 <= t0)
        return 0;
    return (t1 - t0) * PIT_HZ / CAL_COUNT;
}

/* The least of three measurements: a host that takes the CPU away between
 * the PIT's terminal count and the second RDTSC only ever adds TSC ticks, so
 * one such preemption would make every timeout derived from the result
 * (the VMX watchdog's preemption-timer value) as much longer. */
uint64_t tsc_calibrate(void)
{
    uint64_t best = 0;
    for (int i = 0; i < 3; i++) {
        uint64_t hz = tsc_measure();
        if (hz && (!best || hz < best))
            best = hz;
    }
    return best;
}
