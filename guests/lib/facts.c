/* SPDX-License-Identifier: MIT */
/*
 * FACT records: what the CPU at this level says about itself
 * (protocol.md, "Facts"). Facts are packed into as few records as fit.
 */
#include "kernel.h"

static struct record rec;
static bool pending; /* rec holds facts not yet emitted */

static void flush(void)
{
    if (pending)
        record_emit(&rec);
    pending = false;
}

static void fact(const char *key, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fact(const char *key, const char *fmt, ...)
{
    char val[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(val, sizeof(val), fmt, ap);
    va_end(ap);
    if (pending && record_field(&rec, key, val, false))
        return;
    flush();
    record_begin(&rec, "FACT");
    pending = true;
    record_field(&rec, key, val, true);
}

static void regs_text(char *s, uint32_t a, uint32_t b, uint32_t c)
{
    memcpy(s, &a, 4);
    memcpy(s + 4, &b, 4);
    memcpy(s + 8, &c, 4);
    s[12] = 0;
}

static void cpu_facts(void)
{
    struct cpuid r = cpuid(0, 0);
    char vendor[13], brand[49];

    regs_text(vendor, r.b, r.d, r.c);
    fact("cpu.vendor", "%s", vendor);

    if (r.a >= 1) {
        /* SDM Vol. 2A CPUID, figure 3-6: the extended family is added only
         * for family 0xF, the extended model is used for families 6 and
         * 0xF. AMD (APM Vol. 3 E.3.2) uses the same rule for its families
         * (0xF and above). */
        uint32_t eax = cpuid(1, 0).a;
        uint32_t fam = (eax >> 8) & 0xf, model = (eax >> 4) & 0xf;
        if (fam == 0xf)
            fam += (eax >> 20) & 0xff;
        if (fam == 0x6 || fam >= 0xf)
            model |= ((eax >> 16) & 0xf) << 4;
        fact("cpu.family", "%#x", fam);
        fact("cpu.model", "%#x", model);
        fact("cpu.stepping", "%#x", eax & 0xf);
    }

    if (cpuid(0x80000000, 0).a >= 0x80000004) {
        for (unsigned i = 0; i < 3; i++) {
            struct cpuid b = cpuid(0x80000002 + i, 0);
            memcpy(brand + 16 * i, &b, 16);
        }
        brand[48] = 0;
        /* Brand strings are padded with spaces, leading on some parts,
         * trailing on others. */
        const char *s = brand;
        while (*s == ' ')
            s++;
        for (size_t n = strlen(s); n && s[n - 1] == ' '; n--)
            brand[s - brand + n - 1] = 0;
        fact("cpu.brand", "%s", s);
    }
}

static void hv_facts(void)
{
    bool hv = cpuid(0, 0).a >= 1 && (cpuid(1, 0).c & BIT(31));

    fact("hv.present", "%d", hv);
    if (hv) {
        struct cpuid r = cpuid(0x40000000, 0);
        char sig[13];
        regs_text(sig, r.b, r.c, r.d);
        fact("hv.signature", "%s", sig);
        fact("hv.max_leaf", "%#x", r.a);
    }
}

static void svm_facts(void)
{
    uint32_t max_ext = cpuid(0x80000000, 0).a;
    bool svm = max_ext >= 0x80000001 && (cpuid(0x80000001, 0).c & BIT(2));

    fact("svm", "%d", svm);
    if (svm && max_ext >= 0x8000000a) {
        struct cpuid r = cpuid(0x8000000a, 0);
        fact("svm.revision", "%#x", r.a & 0xff);
        fact("svm.asids", "%u", r.b);
        fact("svm.features", "%#x", r.d);
    }
}

static bool vmx_fact(const char *key, uint32_t msr, uint64_t *out)
{
    uint64_t v;

    if (rdmsr_safe(msr, &v) != NO_FAULT)
        return false;
    fact(key, "%#lx", v);
    if (out)
        *out = v;
    return true;
}

/* The IA32_VMX_* capability MSRs (SDM Vol. 3D appendix A), each read only
 * where the SDM says it exists. */
static void vmx_facts(void)
{
    bool vmx = cpuid(0, 0).a >= 1 && (cpuid(1, 0).c & BIT(5));
    uint64_t basic, proc = 0, proc2 = 0, exit = 0;

    fact("vmx", "%d", vmx);
    if (!vmx || !vmx_fact("vmx.basic", 0x480, &basic))
        return;
    vmx_fact("vmx.pinbased", 0x481, NULL);
    vmx_fact("vmx.procbased", 0x482, &proc);
    vmx_fact("vmx.exit", 0x483, &exit);
    vmx_fact("vmx.entry", 0x484, NULL);
    vmx_fact("vmx.misc", 0x485, NULL);
    vmx_fact("vmx.cr0_fixed0", 0x486, NULL);
    vmx_fact("vmx.cr0_fixed1", 0x487, NULL);
    vmx_fact("vmx.cr4_fixed0", 0x488, NULL);
    vmx_fact("vmx.cr4_fixed1", 0x489, NULL);
    vmx_fact("vmx.vmcs_enum", 0x48a, NULL);
    /* A.3.3: exists if the primary controls allow bit 31 to be 1. */
    if (proc & BIT(63))
        vmx_fact("vmx.procbased2", 0x48b, &proc2);
    /* A.10: if secondary controls allow "enable EPT" (1) or "enable VPID" (5). */
    if (proc2 & (BIT(32 + 1) | BIT(32 + 5)))
        vmx_fact("vmx.ept_vpid", 0x48c, NULL);
    /* A.1: IA32_VMX_BASIC[55] says the TRUE_* MSRs exist. */
    if (basic & BIT(55)) {
        vmx_fact("vmx.true_pinbased", 0x48d, NULL);
        vmx_fact("vmx.true_procbased", 0x48e, NULL);
        vmx_fact("vmx.true_exit", 0x48f, NULL);
        vmx_fact("vmx.true_entry", 0x490, NULL);
    }
    /* A.11: if secondary controls allow "enable VM functions" (13). */
    if (proc2 & BIT(32 + 13))
        vmx_fact("vmx.vmfunc", 0x491, NULL);
    /* A.3.4: if primary controls allow "activate tertiary controls" (17). */
    if (proc & BIT(32 + 17))
        vmx_fact("vmx.procbased3", 0x492, NULL);
    /* A.4.2: if primary exit controls allow "activate secondary controls" (31). */
    if (exit & BIT(63))
        vmx_fact("vmx.exit2", 0x493, NULL);
}

void facts_emit(void)
{
    cpu_facts();
    hv_facts();
    fact("tsc.hz", "%lu", tsc_calibrate());
    svm_facts();
    vmx_facts();
    if (cpu_is_intel()) {
        uint64_t fc;
        if (rdmsr_safe(MSR_IA32_FEATURE_CONTROL, &fc) == NO_FAULT)
            fact("feature_control", "%#lx", fc);
    }
    fact("mem.free", "%lu", mm_free_bytes());
    fact("boot", "%s",
         boot_info.kind == BOOT_MULTIBOOT ? "multiboot"
         : boot_info.kind == BOOT_PVH     ? "pvh"
                                          : "unknown");
    flush();
}
