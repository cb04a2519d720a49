/* SPDX-License-Identifier: MIT */
/*
 * The runner: selects probes from the command line, runs each one in a
 * clean state, and reports HELLO, FACTs, START/RESULT pairs and END.
 */
#include "kernel.h"
#include "buildid.h"

extern const struct nvct_probe __probes_start[], __probes_end[];

#define MAX_PROBES 4096
static const struct nvct_probe *probes[MAX_PROBES];
static bool selected[MAX_PROBES];
static unsigned nr_probes;

static void collect(void)
{
    const struct nvct_probe *p;

    for (p = __probes_start; p < __probes_end && nr_probes < MAX_PROBES; p++) {
        /* Insertion sort by id, byte order: the list is short. */
        unsigned j = nr_probes++;
        while (j > 0 && strcmp(probes[j - 1]->id, p->id) > 0) {
            probes[j] = probes[j - 1];
            j--;
        }
        probes[j] = p;
    }
}

/*
 * A hidden probe is matched only by a glob that spells out the probe's
 * first id component and a dot: "selftest.*" and "selftest.hang" match
 * selftest.hang, "*" and "s*" do not (protocol.md; the same rule as the
 * harness's conformance/catalog.py, for positive and negative globs).
 */
static bool glob_names_hidden(const char *glob, const char *id)
{
    const char *dot = strchr(id, '.');
    size_t n = dot ? (size_t)(dot - id) + 1 : strlen(id);

    return dot && strncmp(glob, id, n) == 0;
}

/* "K/N" with N >= 1 and K < N, in decimal. */
static bool parse_shard(const char *s, unsigned *k, unsigned *n)
{
    unsigned v[2] = {0, 0};

    for (int part = 0; part < 2; part++) {
        if (*s < '0' || *s > '9')
            return false;
        while (*s >= '0' && *s <= '9' && v[part] < 100000)
            v[part] = v[part] * 10 + (unsigned)(*s++ - '0');
        if (part == 0 && *s++ != '/')
            return false;
    }
    if (*s != '\0' || v[1] == 0 || v[0] >= v[1])
        return false;
    *k = v[0];
    *n = v[1];
    return true;
}

#define STR_(x) #x
#define STR(x)  STR_(x)

/* Why this boot selects nothing, when its command line cannot be trusted
 * to say what the harness meant (HELLO's error=): NULL when it can. */
static const char *select_error;

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* sel=HEX: one bit per probe in id order, probe i being bit i % 4 of
 * digit i / 4; exactly one digit per four probes of this kernel, so that
 * a map made for another catalogue is refused, not misread. */
static bool select_map(const char *hex)
{
    if (strlen(hex) != (nr_probes + 3) / 4) {
        select_error = "sel= does not have one hex digit per four probes of this kernel";
        return false;
    }
    for (unsigned i = 0; i < (nr_probes + 3) / 4 * 4; i++) {
        int digit = hex_value(hex[i / 4]);
        if (digit < 0) {
            select_error = "sel= holds a character that is not a hex digit";
            return false;
        }
        bool bit = (digit >> (i % 4)) & 1;
        if (i >= nr_probes && bit) {
            select_error = "sel= selects a probe past the last one of this kernel";
            return false;
        }
        if (i < nr_probes)
            selected[i] = bit;
    }
    return true;
}

/* protocol.md, "The kernel command line". Returns how many are selected. */
static unsigned select_probes(const char *cmdline)
{
    static char spec[CMDLINE_MAX], map[CMDLINE_MAX], after[CMDLINE_MAX], shard[CMDLINE_MAX];
    unsigned n = 0;
    bool have_spec = cmdline_get(cmdline, "probes", spec, sizeof(spec));
    bool have_map = cmdline_get(cmdline, "sel", map, sizeof(map));
    char *words[256];
    unsigned nw = 0;

    for (unsigned i = 0; i < nr_probes; i++)
        selected[i] = false;
    if (boot_info.cmdline_cut) {
        select_error =
            "the command line is longer than the kernel keeps (" STR(CMDLINE_MAX) " bytes with its "
                                                                                  "NUL)";
        return 0;
    }
    if (have_spec && have_map) {
        select_error = "both probes= and sel= given";
        return 0;
    }

    /* Split at commas; empty words are ignored. */
    if (have_spec) {
        char *w = spec;
        for (char *c = spec;; c++) {
            if (*c == ',' || *c == '\0') {
                bool end = *c == '\0';
                *c = '\0';
                if (*w) {
                    if (nw == ARRAY_SIZE(words)) {
                        select_error = "probes= has more globs than the kernel keeps (256)";
                        return 0;
                    }
                    words[nw++] = w;
                }
                if (end)
                    break;
                w = c + 1;
            }
        }
    }

    if (have_map) {
        if (!select_map(map)) {
            for (unsigned i = 0; i < nr_probes; i++)
                selected[i] = false;
            return 0;
        }
    } else {
        /* From nothing if the first word is positive, else the default set. */
        bool from_default = nw == 0 || words[0][0] == '-';
        for (unsigned i = 0; i < nr_probes; i++)
            selected[i] = from_default && !(probes[i]->flags & PROBE_HIDDEN);
    }

    for (unsigned k = 0; k < nw; k++) {
        bool neg = words[k][0] == '-';
        const char *g = neg ? words[k] + 1 : words[k];

        for (unsigned i = 0; i < nr_probes; i++) {
            if ((probes[i]->flags & PROBE_HIDDEN) && !glob_names_hidden(g, probes[i]->id))
                continue;
            if (glob_match(g, probes[i]->id))
                selected[i] = !neg;
        }
    }

    /* shard=K/N: of the probes selected so far, in id order, keep those
     * whose position i has i % N == K (the harness's --jobs splits a run
     * into N boots this way). Applied before after=, so that a boot that
     * resumes a shard after a crash stays within it. */
    unsigned k, nshards;
    if (cmdline_get(cmdline, "shard", shard, sizeof(shard)) && parse_shard(shard, &k, &nshards)) {
        unsigned pos = 0;
        for (unsigned i = 0; i < nr_probes; i++)
            if (selected[i])
                selected[i] = pos++ % nshards == k;
    }

    if (cmdline_get(cmdline, "after", after, sizeof(after)))
        for (unsigned i = 0; i < nr_probes; i++)
            if (strcmp(probes[i]->id, after) <= 0)
                selected[i] = false;

    for (unsigned i = 0; i < nr_probes; i++)
        n += selected[i];
    return n;
}

/* ---- the state each probe starts from ------------------------------------ */

struct cpu_state {
    uint64_t cr0, cr4, efer;
    struct mm_mark mark;
};

static void save_state(struct cpu_state *s)
{
    s->cr0 = read_cr0();
    s->cr4 = read_cr4();
    s->efer = rdmsr(MSR_EFER);
    s->mark = mm_mark();
}

static void do_vmxoff(void *arg)
{
    (void)arg;
    __asm__ volatile("vmxoff" : : : "cc", "memory");
}

static void do_stgi(void *arg)
{
    (void)arg;
    __asm__ volatile("stgi" : : : "memory");
}

static bool cpu_has_svm(void)
{
    return cpuid(0x80000000, 0).a >= 0x80000001 && (cpuid(0x80000001, 0).c & BIT(2));
}

static void restore_state(const struct cpu_state *s)
{
    /* IF, DF, AC, TF, NT and IOPL back to 0. */
    __asm__ volatile("pushq $2; popfq" : : : "cc", "memory");

    /* Leave VMX operation (VMXOFF #UDs outside it: harmless here), then
     * CR4.VMXE can be cleared (SDM Vol. 3C 24.7, 24.8). */
    if (read_cr4() & CR4_VMXE) {
        catch_fault(do_vmxoff, NULL, NULL);
        write_cr4(read_cr4() & ~CR4_VMXE);
    }

    /* A probe that ended between CLGI and STGI left GIF = 0 (APM Vol. 2
     * 15.17); STGI needs EFER.SVME = 1. */
    if (cpu_has_svm()) {
        uint64_t efer = rdmsr(MSR_EFER);
        if (efer & EFER_SVME || wrmsr_safe(MSR_EFER, efer | EFER_SVME) == NO_FAULT)
            catch_fault(do_stgi, NULL, NULL);
        wrmsr(MSR_EFER, efer & ~EFER_SVME);
    }

    write_cr3(kernel_cr3());
    write_cr4(s->cr4);
    write_cr0(s->cr0);
    wrmsr(MSR_EFER, s->efer);
    /* Only if a probe left it set: in a guest run with V_INTR_MASKING, a
     * MOV to CR8 while V_IRQ is set makes QEMU 7.2's TCG abort
     * ("tcg_handle_interrupt: assertion failed": helper_write_crN raises
     * the virtual interrupt outside the big lock). Seen at L2 under Xen as
     * an HVM domU, where Xen's interrupt-window request for an interrupt
     * that came while IF was 0 (a firmware PIT tick) stays set. */
    if (read_cr8() != 0)
        write_cr8(0);
    __asm__ volatile("mov %0, %%dr7" : : "r"(0x400ull)); /* no breakpoints armed */
    desc_load();
    mm_release(s->mark);
}

/* ---- running ------------------------------------------------------------- */

static struct probe_run run;
static struct fault unexpected;
static struct unexpected_hook hook = {&run.end, &unexpected};
static unsigned counts[4];

static void run_one(const struct nvct_probe *p, unsigned index)
{
    struct record r;
    struct cpu_state saved;
    static volatile uint64_t t0, t1;

    record_begin(&r, "START");
    record_field(&r, "probe", p->id, true);
    record_fieldf(&r, "index", "%u", index);
    record_emit(&r);

    memset(&run, 0, sizeof(run));
    run.probe = p;
    run.verdict = V_PASS;
    save_state(&saved);
    current_run = &run;

    t0 = rdtsc();
    int how = jmp_save(&run.end);
    if (how == 0) {
        unexpected_hook = &hook;
        p->fn();
    }
    t1 = rdtsc();
    unexpected_hook = NULL;
    catch_reset();
    watchdog_disarm(); /* a probe that ended inside a watched run */

    if (how == UNEXPECTED_FAULT) {
        char msg[DETAIL_MAX];
        int n = snprintf(msg, sizeof(msg), "unexpected %s at rip=%#lx", fault_str(&unexpected),
                         unexpected.rip);
        if (unexpected.vector == PF_VECTOR)
            snprintf(msg + n, sizeof(msg) - n, " cr2=%#lx", unexpected.cr2);
        run_note(&run, msg);
        run_verdict(&run, V_FAIL, msg);
    }
    current_run = NULL;

    restore_state(&saved);

    record_begin(&r, "RESULT");
    record_field(&r, "probe", p->id, true);
    record_field(&r, "verdict", verdict_name(run.verdict), true);
    record_fieldf(&r, "ticks", "%lu", t1 - t0);
    if (run.verdict != V_PASS)
        record_field(&r, "detail", run.detail[0] ? run.detail : "(no detail given)", true);
    record_emit(&r);
    counts[run.verdict]++;
}

void run_probes(void)
{
    struct record r;

    collect();
    unsigned nsel = select_probes(boot_info.cmdline);

    record_begin(&r, "HELLO");
    record_field(&r, "proto", "1", false);
    record_field(&r, "build", NVCT_BUILD_ID, false);
    record_fieldf(&r, "total", "%u", nr_probes);
    record_fieldf(&r, "selected", "%u", nsel);
    record_field(&r, "console", console_name(), false);
    if (select_error)
        record_field(&r, "error", select_error, true);
    record_field(&r, "cmdline", boot_info.cmdline, true);
    record_emit(&r);

    facts_emit();

    unsigned index = 0;
    for (unsigned i = 0; i < nr_probes; i++)
        if (selected[i])
            run_one(probes[i], index++);

    record_begin(&r, "END");
    record_fieldf(&r, "run", "%u", index);
    record_fieldf(&r, "pass", "%u", counts[V_PASS]);
    record_fieldf(&r, "fail", "%u", counts[V_FAIL]);
    record_fieldf(&r, "skip", "%u", counts[V_SKIP]);
    record_fieldf(&r, "error", "%u", counts[V_ERROR]);
    record_emit(&r);
}
