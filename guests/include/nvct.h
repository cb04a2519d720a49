/* SPDX-License-Identifier: MIT */
/*
 * nvct probe kernel: the interface a probe is written against.
 *
 * A probe is a function registered with PROBE(). The runner calls it once,
 * with interrupts disabled, in 64-bit mode at CPL 0 on an identity-mapped
 * address space, and turns what it reports into one RESULT record
 * (docs/protocol.md). A probe reports with check()/note() and ends early
 * with skip()/fail()/error(); returning normally means "every check held".
 *
 * Between probes the runner restores CR0, CR4, EFER, the IDT, the GDT and
 * the page allocator, and leaves VMX operation / disables SVM, so that no
 * probe sees state that an earlier one left behind.
 */
#ifndef NVCT_H
#define NVCT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define noreturn      _Noreturn
#define __packed      __attribute__((packed))
#define __aligned(n)  __attribute__((aligned(n)))
#define __used        __attribute__((used))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define BIT(n)        (1ull << (n))

/* ---- probe registration ------------------------------------------------ */

/* PROBE_HIDDEN: runs only when a positive glob names it. PROBE_ISOLATED:
 * the harness runs it in a boot of its own: it changes state that not
 * every hypervisor lets it restore (VM_CR.SVMDIS under KVM). */
#define PROBE_HIDDEN   1u
#define PROBE_ISOLATED 2u

struct nvct_probe {
    const char *id;      /* stable dotted id, e.g. "svm.npt.nx" */
    const char *feature; /* the feature it belongs to, e.g. "NPT" */
    const char *desc;    /* one line: what is executed, what is expected */
    const char *ref;     /* "AMD APM Vol. 2 15.25.5" / "Intel SDM Vol. 3C 26.2.1" */
    void (*fn)(void);
    unsigned flags;
};

/*
 * PROBE(fn, "id", "FEATURE", "description", "spec reference"[, "req", ...]) { body }
 *
 * Defines the probe function and registers it twice: a descriptor in the
 * loaded section .probes (what the runner iterates) and a text line in the
 * non-loaded section .nvct_catalog (what `nvct list` reads from the ELF).
 * The optional trailing arguments (up to 32) are the ids of the manual's
 * requirements the probe checks, from the map in requirements/ (id scheme
 * in docs/adding-a-probe.md), e.g. "sdm.27.3.1.1.cr0-fixed-bits"; they go
 * to the catalogue line only. All strings must be string literals without
 * tabs, newlines, double quotes or backslashes; a requirement id also
 * without spaces.
 */
/* clang-format off */
#define NVCT_PROBE_(fn_, id_, feat_, desc_, ref_, flags_, fstr_, reqs_)              \
    static void fn_(void);                                                          \
    static const struct nvct_probe nvct_probe_##fn_                                 \
        __attribute__((used, section(".probes"), aligned(8))) = {                   \
            id_, feat_, desc_, ref_, fn_, flags_};                                  \
    __asm__(".pushsection .nvct_catalog,\"\",@progbits\n\t.ascii \"" id_ "\\t" feat_ \
            "\\t" fstr_ "\\t" desc_ "\\t" ref_ "\\t" reqs_ "\\n\"\n\t.popsection");  \
    static void fn_(void)

/* The requirement ids, as one string literal: " a b c" (space-separated). */
#define NVCT_NARG_(...) NVCT_NARG_I_(_, ##__VA_ARGS__, 32, 31, 30, 29, 28, 27, 26, 25, 24, 23, \
    22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0)
#define NVCT_NARG_I_(_0, _1, _2, _3, _4, _5, _6, _7, _8, _9, _10, _11, _12, _13, _14, _15, _16, \
    _17, _18, _19, _20, _21, _22, _23, _24, _25, _26, _27, _28, _29, _30, _31, _32, n, ...) n
#define NVCT_CAT_(a, b)  NVCT_CAT2_(a, b)
#define NVCT_CAT2_(a, b) a##b
#define NVCT_REQS_(...)  NVCT_CAT_(NVCT_R, NVCT_NARG_(__VA_ARGS__))(__VA_ARGS__)
#define NVCT_R0()        ""
#define NVCT_R1(a)       " " a
#define NVCT_R2(a, ...) " " a NVCT_R1(__VA_ARGS__)
#define NVCT_R3(a, ...) " " a NVCT_R2(__VA_ARGS__)
#define NVCT_R4(a, ...) " " a NVCT_R3(__VA_ARGS__)
#define NVCT_R5(a, ...) " " a NVCT_R4(__VA_ARGS__)
#define NVCT_R6(a, ...) " " a NVCT_R5(__VA_ARGS__)
#define NVCT_R7(a, ...) " " a NVCT_R6(__VA_ARGS__)
#define NVCT_R8(a, ...) " " a NVCT_R7(__VA_ARGS__)
#define NVCT_R9(a, ...) " " a NVCT_R8(__VA_ARGS__)
#define NVCT_R10(a, ...) " " a NVCT_R9(__VA_ARGS__)
#define NVCT_R11(a, ...) " " a NVCT_R10(__VA_ARGS__)
#define NVCT_R12(a, ...) " " a NVCT_R11(__VA_ARGS__)
#define NVCT_R13(a, ...) " " a NVCT_R12(__VA_ARGS__)
#define NVCT_R14(a, ...) " " a NVCT_R13(__VA_ARGS__)
#define NVCT_R15(a, ...) " " a NVCT_R14(__VA_ARGS__)
#define NVCT_R16(a, ...) " " a NVCT_R15(__VA_ARGS__)
#define NVCT_R17(a, ...) " " a NVCT_R16(__VA_ARGS__)
#define NVCT_R18(a, ...) " " a NVCT_R17(__VA_ARGS__)
#define NVCT_R19(a, ...) " " a NVCT_R18(__VA_ARGS__)
#define NVCT_R20(a, ...) " " a NVCT_R19(__VA_ARGS__)
#define NVCT_R21(a, ...) " " a NVCT_R20(__VA_ARGS__)
#define NVCT_R22(a, ...) " " a NVCT_R21(__VA_ARGS__)
#define NVCT_R23(a, ...) " " a NVCT_R22(__VA_ARGS__)
#define NVCT_R24(a, ...) " " a NVCT_R23(__VA_ARGS__)
#define NVCT_R25(a, ...) " " a NVCT_R24(__VA_ARGS__)
#define NVCT_R26(a, ...) " " a NVCT_R25(__VA_ARGS__)
#define NVCT_R27(a, ...) " " a NVCT_R26(__VA_ARGS__)
#define NVCT_R28(a, ...) " " a NVCT_R27(__VA_ARGS__)
#define NVCT_R29(a, ...) " " a NVCT_R28(__VA_ARGS__)
#define NVCT_R30(a, ...) " " a NVCT_R29(__VA_ARGS__)
#define NVCT_R31(a, ...) " " a NVCT_R30(__VA_ARGS__)
#define NVCT_R32(a, ...) " " a NVCT_R31(__VA_ARGS__)
/* clang-format on */

#define PROBE(fn, id, feat, desc, ref, ...) \
    NVCT_PROBE_(fn, id, feat, desc, ref, 0, "-", NVCT_REQS_(__VA_ARGS__))
#define PROBE_HIDDEN_(fn, id, feat, desc, ref, ...) \
    NVCT_PROBE_(fn, id, feat, desc, ref, PROBE_HIDDEN, "hidden", NVCT_REQS_(__VA_ARGS__))
#define PROBE_ISOLATED_(fn, id, feat, desc, ref, ...) \
    NVCT_PROBE_(fn, id, feat, desc, ref, PROBE_ISOLATED, "isolated", NVCT_REQS_(__VA_ARGS__))

/* ---- reporting, kvm-unit-tests style ----------------------------------- */

/* Records a check. On false: a NOTE with the message, and the probe's
 * verdict becomes FAIL (the first failed message is the RESULT detail).
 * Returns cond, so that a probe can stop early: if (!check(...)) return; */
bool check(bool cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Compares two integers and reports both in hex on a mismatch. */
#define check_eq(what, got, want)                                                   \
    check((uint64_t)(got) == (uint64_t)(want), "%s: got %#llx, want %#llx", (what), \
          (unsigned long long)(got), (unsigned long long)(want))

void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* End the probe now. skip(): the feature is not exposed (give the CPUID
 * leaf/bit or MSR that says so). fail(): the hypervisor misbehaved.
 * error(): the probe itself could not do its job. */
noreturn void skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
noreturn void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
noreturn void error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- exceptions -------------------------------------------------------- */

enum {
    DE_VECTOR = 0,
    DB_VECTOR = 1,
    NMI_VECTOR = 2,
    BP_VECTOR = 3,
    OF_VECTOR = 4,
    BR_VECTOR = 5,
    UD_VECTOR = 6,
    NM_VECTOR = 7,
    DF_VECTOR = 8,
    TS_VECTOR = 10,
    NP_VECTOR = 11,
    SS_VECTOR = 12,
    GP_VECTOR = 13,
    PF_VECTOR = 14,
    MF_VECTOR = 16,
    AC_VECTOR = 17,
    MC_VECTOR = 18,
    XM_VECTOR = 19,
    VE_VECTOR = 20,
    CP_VECTOR = 21,
};

#define NO_FAULT (-1)

struct fault {
    int vector; /* NO_FAULT, or the vector raised */
    bool has_error_code;
    uint32_t error_code;
    uint64_t rip; /* where it was raised */
    uint64_t cr2; /* for #PF */
};

/*
 * Runs fn(arg) and catches the first exception it raises (any vector
 * 0..31). Returns the vector, or NO_FAULT if fn returned normally. *f (if
 * not NULL) receives the details. After a fault, execution resumes after
 * catch_fault() with the stack and callee-saved registers of its caller.
 */
int catch_fault(void (*fn)(void *), void *arg, struct fault *f);

/* IRETQ to the next instruction at the same privilege: ends the blocking of
 * NMIs (SDM Vol. 3A 6.7.1). The argument is unused (a catch_fault() fn). */
void iret_self(void *unused);

/* "#GP(0)", "#UD", "none": for details. Returns a static buffer. */
const char *fault_str(const struct fault *f);

/* Single-instruction helpers built on the same mechanism. Each returns the
 * vector raised or NO_FAULT. */
int rdmsr_safe(uint32_t msr, uint64_t *val);
int wrmsr_safe(uint32_t msr, uint64_t val);

/* ---- CPU access --------------------------------------------------------- */

struct cpuid {
    uint32_t a, b, c, d;
};
struct cpuid cpuid(uint32_t leaf, uint32_t subleaf);
uint64_t rdmsr(uint32_t msr);
void wrmsr(uint32_t msr, uint64_t val);
uint64_t rdtsc(void);
uint64_t read_cr0(void), read_cr2(void), read_cr3(void), read_cr4(void), read_cr8(void);
void write_cr0(uint64_t), write_cr3(uint64_t), write_cr4(uint64_t), write_cr8(uint64_t);
uint64_t read_rflags(void);
void outb(uint16_t port, uint8_t v);
uint8_t inb(uint16_t port);
void outw(uint16_t port, uint16_t v);
uint16_t inw(uint16_t port);
void outl(uint16_t port, uint32_t v);
uint32_t inl(uint16_t port);

bool cpu_is_amd(void);             /* AuthenticAMD (or HygonGenuine) */
bool cpu_is_intel(void);           /* GenuineIntel */
unsigned cpu_phys_addr_bits(void); /* CPUID 0x80000008 EAX[7:0], 36 if absent */

#define MSR_IA32_FEATURE_CONTROL 0x0000003a
#define MSR_IA32_VMX_BASIC       0x00000480
#define MSR_EFER                 0xc0000080
#define MSR_STAR                 0xc0000081
#define MSR_LSTAR                0xc0000082
#define MSR_CSTAR                0xc0000083
#define MSR_SFMASK               0xc0000084
#define MSR_FS_BASE              0xc0000100
#define MSR_GS_BASE              0xc0000101
#define MSR_KERNEL_GS_BASE       0xc0000102
#define MSR_VM_CR                0xc0010114
#define MSR_VM_HSAVE_PA          0xc0010117

#define MSR_IA32_APIC_BASE 0x0000001b
#define APIC_BASE_X2APIC   BIT(10)
#define APIC_BASE_ENABLE   BIT(11)

/* xAPIC register offsets in the APIC's MMIO page. */
#define APIC_ID   0x020
#define APIC_TPR  0x080
#define APIC_EOI  0x0b0
#define APIC_SVR  0x0f0
#define APIC_ISR  0x100
#define APIC_IRR  0x200
#define APIC_ICR  0x300
#define APIC_ICR2 0x310

#define RFLAGS_CF BIT(0)
#define RFLAGS_PF BIT(2)
#define RFLAGS_AF BIT(4)
#define RFLAGS_ZF BIT(6)
#define RFLAGS_SF BIT(7)
#define RFLAGS_IF BIT(9)
#define RFLAGS_DF BIT(10)
#define RFLAGS_OF BIT(11)

#define EFER_SCE  BIT(0)
#define EFER_LME  BIT(8)
#define EFER_LMA  BIT(10)
#define EFER_NXE  BIT(11)
#define EFER_SVME BIT(12)

#define CR0_PE BIT(0)
#define CR0_MP BIT(1)
#define CR0_EM BIT(2)
#define CR0_TS BIT(3)
#define CR0_ET BIT(4)
#define CR0_NE BIT(5)
#define CR0_WP BIT(16)
#define CR0_AM BIT(18)
#define CR0_NW BIT(29)
#define CR0_CD BIT(30)
#define CR0_PG BIT(31)

#define CR4_PAE        BIT(5)
#define CR4_PGE        BIT(7)
#define CR4_OSFXSR     BIT(9)
#define CR4_OSXMMEXCPT BIT(10)
#define CR4_VMXE       BIT(13)
#define CR4_OSXSAVE    BIT(18)
#define CR4_CET        BIT(23) /* control-flow enforcement */

/* ---- watchdog (lib/watchdog.c) ------------------------------------------ */

/*
 * A one-shot local APIC timer interrupt (vector WATCHDOG_VECTOR) ms
 * milliseconds after watchdog_arm(), for guest runs that could otherwise
 * never end. svm_run() and vmx_run() arm it themselves for a vCPU whose
 * ->watchdog is set (include/svm.h, include/vmx.h); a probe rarely calls
 * these directly. watchdog_arm() returns false (and arms nothing) without a
 * usable local APIC or while the vector is pending; watchdog_disarm()
 * stops the timer, takes a pending watchdog interrupt on the host, restores
 * the APIC and returns whether the interrupt came.
 */
#define WATCHDOG_VECTOR 0xef
#define WATCHDOG_MS     1000
bool watchdog_arm(unsigned ms);
bool watchdog_disarm(void);

/* ---- memory ------------------------------------------------------------- */

/* Zeroed, 4 KiB-aligned pages; physical address == virtual address. The
 * runner frees everything a probe allocated when the probe ends. Never
 * returns NULL: runs out -> error(). */
void *alloc_pages(unsigned count);
static inline void *alloc_page(void) { return alloc_pages(1); }

/* The kernel's own page tables: identity map of the low 4 GiB with 2 MiB
 * pages. Probes that need a different mapping build their own tables. */
uint64_t kernel_cr3(void);

/* A copy of that identity map with every page user-accessible (for code run
 * at CPL 3): fresh tables from alloc_pages(). */
uint64_t user_cr3(void);

/* Linear 512 GiB: PML4 slot 1, which the kernel leaves unmapped. */
#define SLOT1_LINEAR 0x8000000000ull

/* A copy of the kernel's PML4 whose slot 1 maps linear SLOT1_LINEAR through
 * a 4 KiB PTE to physical `page` (present, writable, accessed, dirty, so
 * that a guest never writes its tables). *pte (if not NULL) gets that PTE.
 * Returns the PML4 (a CR3 with PCD/PWT clear). */
uint64_t *slot1_tables(uint64_t page, uint64_t **pte);

/* The selectors of the kernel's GDT. */
#define KERNEL_CS   0x08
#define KERNEL_DS   0x10
#define KERNEL_CS32 0x18 /* 32-bit code, for guests in protected mode */
#define USER_CS     0x2b
#define USER_DS     0x23
#define TSS_SEL     0x30

/* ---- strings and formatting --------------------------------------------- */

void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);
/* %d %i %u %x %X %p %s %c %%, with l/ll/z modifiers, width, 0-pad and #. */
int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
int snprintf(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
