/* SPDX-License-Identifier: MIT */
/*
 * Hidden probes that damage the console on purpose, to prove that the
 * harness catches it: the probe that did it gets ERROR with what was seen,
 * and the probes after it are unaffected.
 */
#include "nvct.h"
#include "../lib/kernel.h"

static void raw(const char *s) { console_write(s, strlen(s)); }

PROBE_HIDDEN_(selftest_garbage, "selftest.garbage", "selftest",
              "Writes noise to the console (bytes that are no record, then a record whose CRC does "
              "not match): the harness must ignore the noise and give this probe ERROR for the "
              "corrupted record",
              "docs/protocol.md")
{
    raw("\x1b[2J noise \x7f\x01 that is no record\n");
    raw("@NVCT1 1 NOTE probe=selftest.garbage msg=forged #00000000\n");
}

static void fault_now(void *arg)
{
    (void)arg;
    __asm__ volatile("ud2");
}

PROBE_HIDDEN_(selftest_record_fault, "selftest.record_fault", "selftest",
              "Starts a record without finishing it (no CRC, no newline), then raises #UD: the "
              "runner's RESULT runs into the broken record on the same line; the harness must "
              "report this probe ERROR and still read the RESULT",
              "docs/protocol.md")
{
    raw("@NVCT1 1 NOTE probe=selftest.record_fault msg=cut");
    fault_now(NULL);
}
