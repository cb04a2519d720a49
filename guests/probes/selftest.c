/* SPDX-License-Identifier: MIT */
/*
 * Hidden probes that exercise the kernel's own machinery: the runner's
 * verdicts, catch_fault(), the record limits. They run only when named
 * (probes=selftest.*), and every one of them must end as its description
 * says; the harness's tests rely on that.
 */
#include "nvct.h"

PROBE_HIDDEN_(selftest_pass, "selftest.pass", "selftest",
              "Returns without a check: the runner must report PASS", "docs/protocol.md")
{
}

PROBE_HIDDEN_(selftest_fault, "selftest.fault", "selftest",
              "Executes UD2 outside catch_fault(): the runner must report FAIL with an unexpected "
              "#UD",
              "Intel SDM Vol. 2B UD; docs/verdicts.md")
{
    __asm__ volatile("ud2");
}

PROBE_HIDDEN_(selftest_worst_wins, "selftest.worst_wins", "selftest",
              "Calls skip() after one failed check(): the verdict must stay FAIL (the worst wins)",
              "docs/verdicts.md")
{
    check(false, "selftest: this check fails on purpose");
    skip("selftest: skip() after a failed check");
}

PROBE_HIDDEN_(selftest_error, "selftest.error", "selftest",
              "Calls error() from inside a catch_fault() callee: the runner must report ERROR",
              "docs/verdicts.md")
{
    extern void selftest_error_callee(void *);
    catch_fault(selftest_error_callee, NULL, NULL);
    fail("selftest: error() did not end the probe");
}

void selftest_error_callee(void *arg);
void selftest_error_callee(void *arg)
{
    (void)arg;
    error("selftest: error() from inside catch_fault()");
}

/* ---- catch_fault() ---- */

static void do_ud2(void *arg)
{
    (void)arg;
    __asm__ volatile("ud2");
}

static void do_nothing(void *arg) { (void)arg; }

static void do_gp(void *arg)
{
    (void)arg;
    /* A non-canonical address: #GP(0) (SDM Vol. 3A 6.15, interrupt 13). */
    __asm__ volatile("movq (%0), %%rax" : : "r"(0x8000000000000000ull) : "rax", "memory");
}

static volatile uint64_t pf_addr = 0x123456789000ull; /* above the 4 GiB map */

static void do_pf(void *arg)
{
    (void)arg;
    __asm__ volatile("movq $1, (%0)" : : "r"(pf_addr) : "memory");
}

static void do_nested(void *arg)
{
    struct fault *inner = arg;

    /* The inner catch takes the #UD; the outer one must see nothing. */
    catch_fault(do_ud2, NULL, inner);
}

static void do_nested_then_fault(void *arg)
{
    catch_fault(do_nothing, NULL, NULL);
    do_gp(arg); /* the outer catch must take this one */
}

PROBE_HIDDEN_(selftest_catch, "selftest.catch", "selftest",
              "catch_fault() returns the vector, error code, RIP and CR2 of #UD, #GP and #PF, "
              "nests; rdmsr_safe()/wrmsr_safe() report the vector",
              "Intel SDM Vol. 3A 6.15")
{
    struct fault f, inner;
    int v;

    v = catch_fault(do_nothing, NULL, &f);
    check(v == NO_FAULT && f.vector == NO_FAULT, "no fault: got %s", fault_str(&f));

    v = catch_fault(do_ud2, NULL, &f);
    check(v == UD_VECTOR && !f.has_error_code, "ud2: got %s", fault_str(&f));
    check(f.rip != 0, "ud2: no RIP");

    v = catch_fault(do_gp, NULL, &f);
    check(v == GP_VECTOR && f.has_error_code && f.error_code == 0, "non-canonical load: got %s",
          fault_str(&f));

    v = catch_fault(do_pf, NULL, &f);
    /* Error code: P=0 (not present), W/R=1 (write), U/S=0 (SDM Vol. 3A 4.7). */
    check(v == PF_VECTOR && f.has_error_code && (f.error_code & 7) == 2,
          "write to unmapped page: got %s", fault_str(&f));
    check_eq("#PF CR2", f.cr2, pf_addr);

    inner.vector = 12345;
    v = catch_fault(do_nested, &inner, &f);
    check(v == NO_FAULT && inner.vector == UD_VECTOR, "nested: outer %s, inner %s", fault_str(&f),
          fault_str(&inner));

    v = catch_fault(do_nested_then_fault, NULL, &f);
    check(v == GP_VECTOR, "fault after a finished inner catch: got %s", fault_str(&f));

    /* An unimplemented MSR #GPs on hardware (SDM Vol. 2B RDMSR); some
     * emulators (QEMU TCG) return 0 instead, which is not this probe's
     * business: only the fault path of rdmsr_safe() is checked. */
    uint64_t val = 1;
    v = rdmsr_safe(0xdeadbeef, &val);
    note("rdmsr_safe(0xdeadbeef): %s", v == NO_FAULT    ? "no fault"
                                       : v == GP_VECTOR ? "#GP"
                                                        : "other");
    check(v == NO_FAULT || (v == GP_VECTOR && val == 0),
          "rdmsr_safe(0xdeadbeef): vector %d value %#lx", v, val);
    v = rdmsr_safe(MSR_EFER, &val);
    check(v == NO_FAULT && (val & EFER_LMA), "rdmsr_safe(EFER): vector %d value %#lx", v, val);
    check(wrmsr_safe(MSR_EFER, val) == NO_FAULT, "wrmsr_safe(EFER, its own value) faulted");
    /* EFER[63] is reserved: WRMSR must #GP (SDM Vol. 2B WRMSR). */
    v = wrmsr_safe(MSR_EFER, val | BIT(63));
    note("wrmsr_safe(EFER | bit 63): %s", v == NO_FAULT    ? "no fault"
                                          : v == GP_VECTOR ? "#GP"
                                                           : "other");
    if (v == NO_FAULT)
        wrmsr(MSR_EFER, val);
    check(v == NO_FAULT || v == GP_VECTOR, "wrmsr_safe(EFER | bit 63): vector %d", v);
}

PROBE_HIDDEN_(selftest_limits, "selftest.limits", "selftest",
              "Emits 20 notes (only 16 may appear) and fails with a 2000-byte detail (truncated to "
              "fit "
              "a 1024-byte record, ending in ...)",
              "docs/protocol.md")
{
    static char big[2001];

    for (int i = 0; i < 20; i++)
        note("note %d of 20; escaped: %% # tab\t end", i + 1);
    for (int i = 0; i < 2000; i++)
        big[i] = i % 10 == 9 ? ' ' : 'a' + i % 26;
    fail("%s", big);
}

PROBE_HIDDEN_(selftest_alloc, "selftest.alloc", "selftest",
              "alloc_pages() returns zeroed, 4 KiB-aligned, distinct pages above the image",
              "guests/include/nvct.h")
{
    uint8_t *a = alloc_pages(1), *b = alloc_pages(3);

    check(((uintptr_t)a & 0xfff) == 0 && ((uintptr_t)b & 0xfff) == 0, "unaligned: %p %p", a, b);
    check(a != b && (b >= a + 4096 || a >= b + 3 * 4096), "overlap: %p %p", a, b);
    for (int i = 0; i < 3 * 4096; i++)
        if (!check(b[i] == 0, "page not zeroed at %p", b + i))
            break;
    memset(b, 0xa5, 3 * 4096); /* the next probe's pages must be zeroed again */
}

/* Ends the boot on purpose (selftest_death.c has the triple fault and the hang). */
PROBE_HIDDEN_(selftest_double_fault, "selftest.double_fault", "selftest",
              "Loads RSP with an unmapped address and executes UD2: #PF on delivery, then #DF on "
              "its IST stack; the kernel must report a NOTE and end the boot (the harness gives "
              "CRASH)",
              "Intel SDM Vol. 3A 6.15 (interrupt 8), 6.14.5")
{
    __asm__ volatile("movq $0x100000000000, %%rsp\n\tud2" : : : "memory");
}
