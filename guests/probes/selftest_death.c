/* SPDX-License-Identifier: MIT */
/*
 * Hidden probes that end the boot on purpose, to prove the harness's
 * handling of a guest that dies or hangs with a probe in flight: the probe
 * gets CRASH or TIMEOUT, and the run goes on in a new boot after it.
 */
#include "nvct.h"

struct __packed idtr_null {
    uint16_t limit;
    uint64_t base;
};

PROBE_HIDDEN_(selftest_triple_fault, "selftest.triple_fault", "selftest",
              "Loads an empty IDT and raises #UD: the #UD, the #DF and the shutdown that follow "
              "end the boot; the harness must report CRASH and resume with the next probe",
              "Intel SDM Vol. 3A 6.15 (interrupt 8); AMD APM Vol. 2 8.2.9")
{
    static const struct idtr_null empty = {0, 0};

    __asm__ volatile("lidt %0\n\tud2" : : "m"(empty) : "memory");
}

PROBE_HIDDEN_(selftest_hang, "selftest.hang", "selftest",
              "Halts with interrupts off forever: the harness's watchdog must report TIMEOUT "
              "and resume with the next probe",
              "docs/verdicts.md")
{
    for (;;)
        __asm__ volatile("cli; hlt");
}
