/* SPDX-License-Identifier: MIT */
/* CPUID as the level reports it: consistent with what the CPU does. */
#include "nvct.h"

static bool printable(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x20 || s[i] > 0x7e)
            return false;
    return true;
}

static void do_fninit(void *p)
{
    uint16_t *sw = p;

    __asm__ volatile("fninit; fnstsw %0; fnstcw %1" : "=m"(sw[0]), "=m"(sw[1]));
}

PROBE(cpuid_basic, "cpu.cpuid.basic", "CPUID",
      "CPUID leaf 0 gives max leaf >= 1 and a printable 12-byte vendor; leaves 1 and 0x80000001 "
      "report FPU, TSC, MSR, PAE, APIC (= IA32_APIC_BASE.EN) and LM consistently with the running "
      "64-bit kernel",
      "Intel SDM Vol. 2A CPUID; Intel SDM Vol. 3A 11.4.3; AMD APM Vol. 3 Appendix E.3")
{
    struct cpuid r = cpuid(0, 0);
    char vendor[12];

    memcpy(vendor, &r.b, 4);
    memcpy(vendor + 4, &r.d, 4);
    memcpy(vendor + 8, &r.c, 4);
    note("CPUID.0: max leaf %#x, vendor \"%.12s\"", r.a, vendor);
    if (!check(r.a >= 1, "CPUID.0:EAX = %#x, a 64-bit CPU has leaf 1", r.a))
        return;
    check(printable(vendor, sizeof(vendor)), "CPUID.0 vendor string is not 12 printable bytes");

    struct cpuid l1 = cpuid(1, 0);
    note("CPUID.1: eax=%#x ebx=%#x ecx=%#x edx=%#x", l1.a, l1.b, l1.c, l1.d);

    /* The kernel reached long mode with CR4.PAE=1 (SDM Vol. 3A 10.8.5),
     * read EFER with RDMSR and reads the TSC with RDTSC: the features that
     * make those work must be reported. */
    check(read_cr4() & CR4_PAE, "CR4.PAE is clear in long mode");
    check(l1.d & BIT(6), "CPUID.1:EDX.PAE[6] = 0, yet CR4.PAE=1 and paging works");
    check(l1.d & BIT(5), "CPUID.1:EDX.MSR[5] = 0, yet RDMSR of IA32_EFER works");
    check(l1.d & BIT(4), "CPUID.1:EDX.TSC[4] = 0, yet RDTSC works");

    /* An x87 that initialises (FSW = 0, FCW = 0x37F after FNINIT, SDM
     * Vol. 1 8.1.5, table 8-3) must be reported by CPUID.1:EDX.FPU. */
    uint16_t fpu[2] = {0xffff, 0xffff};
    uint64_t cr0 = read_cr0();
    write_cr0(cr0 & ~(CR0_EM | CR0_TS));
    struct fault f;
    int v = catch_fault(do_fninit, fpu, &f);
    write_cr0(cr0);
    if (v == NO_FAULT && fpu[0] == 0 && fpu[1] == 0x37f)
        check(l1.d & BIT(0), "CPUID.1:EDX.FPU[0] = 0, yet FNINIT initialised an x87 FPU");
    else
        check(!(l1.d & BIT(0)), "CPUID.1:EDX.FPU[0] = 1, yet FNINIT gave %s fsw=%#x fcw=%#x",
              fault_str(&f), fpu[0], fpu[1]);

    /* CPUID.1:EDX.APIC reads 0 while IA32_APIC_BASE[11] is clear (SDM
     * Vol. 3A 11.4.3), so the two must agree. */
    uint64_t apic_base;
    v = rdmsr_safe(0x1b, &apic_base);
    if (l1.d & BIT(9)) {
        if (check(v == NO_FAULT, "CPUID.1:EDX.APIC[9] = 1, yet RDMSR IA32_APIC_BASE raised %s",
                  v == GP_VECTOR ? "#GP" : "an exception"))
            check(apic_base & BIT(11),
                  "CPUID.1:EDX.APIC[9] = 1, yet IA32_APIC_BASE = %#lx (EN[11] clear)", apic_base);
    } else if (v == NO_FAULT) {
        check(!(apic_base & BIT(11)),
              "CPUID.1:EDX.APIC[9] = 0, yet IA32_APIC_BASE = %#lx (EN[11] set)", apic_base);
    }

    /* Long mode is active (EFER.LMA): CPUID 0x80000001 must exist and say LM. */
    uint32_t max_ext = cpuid(0x80000000, 0).a;
    note("CPUID.80000000: max extended leaf %#x", max_ext);
    check(rdmsr(MSR_EFER) & EFER_LMA, "EFER.LMA is clear in 64-bit mode");
    if (!check(max_ext >= 0x80000001,
               "CPUID.80000000:EAX = %#x, no leaf 0x80000001 on a 64-bit CPU", max_ext))
        return;
    struct cpuid e1 = cpuid(0x80000001, 0);
    note("CPUID.80000001: ecx=%#x edx=%#x", e1.c, e1.d);
    check(e1.d & BIT(29), "CPUID.80000001:EDX.LM[29] = 0 while in long mode");
    if (rdmsr(MSR_EFER) & EFER_NXE)
        check(e1.d & BIT(20), "CPUID.80000001:EDX.NX[20] = 0, yet EFER.NXE is set");
}

PROBE(hv_signature, "cpu.hypervisor.signature", "CPUID",
      "With CPUID.1:ECX.HV[31] set, leaf 0x40000000 gives EAX >= 0x40000000 and a 12-byte "
      "printable (NUL-padded) hypervisor signature in EBX:ECX:EDX",
      "AMD APM Vol. 3 Appendix E.3.2 (Fn0000_0001_ECX[31]); Intel SDM Vol. 2A CPUID "
      "(40000000H-4FFFFFFFH); Microsoft Hypervisor TLFS 2.4")
{
    if (!(cpuid(1, 0).c & BIT(31)))
        skip("CPUID.1:ECX.HV[31]=0: no hypervisor reported");

    struct cpuid r = cpuid(0x40000000, 0);
    char sig[12];
    memcpy(sig, &r.b, 4);
    memcpy(sig + 4, &r.c, 4);
    memcpy(sig + 8, &r.d, 4);

    /* Signatures shorter than 12 bytes are NUL-padded ("KVMKVMKVM\0\0\0"). */
    size_t len = 0;
    while (len < sizeof(sig) && sig[len])
        len++;
    bool padding_ok = true;
    for (size_t i = len; i < sizeof(sig); i++)
        padding_ok &= sig[i] == 0;

    note("CPUID.40000000: max leaf %#x, signature \"%.*s\"", r.a, (int)len, sig);
    check(r.a >= 0x40000000, "CPUID.40000000:EAX = %#x, below 0x40000000", r.a);
    check(len > 0 && printable(sig, len) && padding_ok,
          "CPUID.40000000 signature is not printable text (NUL-padded): %08x %08x %08x", r.b, r.c,
          r.d);
}
