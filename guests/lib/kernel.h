/* SPDX-License-Identifier: MIT */
/*
 * The kernel's internal interfaces (not for probes: probes use nvct.h).
 */
#ifndef NVCT_KERNEL_H
#define NVCT_KERNEL_H

#include "nvct.h"
#include "asm.h"

/* ---- boot information (boot.c) ----------------------------------------- */

#define MAX_MEM_RANGES 32
#define CMDLINE_MAX    1024

struct mem_range {
    uint64_t start, end;
}; /* usable RAM, [start, end) */

struct boot_info {
    int kind;                  /* BOOT_* */
    char cmdline[CMDLINE_MAX]; /* copied: the loader's copy may be reused */
    bool cmdline_cut;          /* the loader's was longer: select nothing, say so */
    unsigned nr_ranges;
    struct mem_range ranges[MAX_MEM_RANGES];
};
extern struct boot_info boot_info;
void boot_info_parse(int kind, uint32_t info);

/* ---- descriptor tables (desc.c) ---------------------------------------- */

/* Writes the GDT, TSS and IDT with their pristine contents and loads
 * GDTR, IDTR, TR, the segment registers and FS/GS bases: at boot, and after
 * each probe (which may have changed any of them). */
void desc_load(void);

/* ---- traps (traps.c, traps.S) ------------------------------------------- */

/* What the common exception stub pushes; see traps.S. */
struct trap_frame {
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
    uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
    uint64_t vector, error_code;
    uint64_t rip, cs, rflags, rsp, ss; /* pushed by the CPU */
};

/* A setjmp()/longjmp() pair (traps.S). jmp_save() returns 0 when saving
 * and the (non-zero) value passed to jmp_restore() when resumed. */
struct jmp_ctx {
    uint64_t rbx, rbp, r12, r13, r14, r15, rsp, rip;
};
int jmp_save(struct jmp_ctx *ctx) __attribute__((returns_twice));
noreturn void jmp_restore(struct jmp_ctx *ctx, int val);

/* The entry stubs, 16 bytes apart, one per vector (traps.S). */
extern const char trap_stubs[];
#define TRAP_STUB_SIZE 16

/*
 * What happens on an exception that no catch_fault() is waiting for. The
 * runner sets this while a probe runs: the handler copies the fault into
 * *fault and resumes *ctx with jmp value UNEXPECTED_FAULT.
 */
struct unexpected_hook {
    struct jmp_ctx *ctx;
    struct fault *fault;
};
extern struct unexpected_hook *unexpected_hook;
#define UNEXPECTED_FAULT 0x7f00
void catch_reset(void); /* disarms every catch_fault() (the runner, after a probe) */
const char *vector_name(int vector);

/* ---- console (console.c) ------------------------------------------------ */

void console_init(void);
void console_select(const char *cmdline); /* console=NAME */
const char *console_name(void);
void console_write(const char *s, size_t n);
void console_drain(void);  /* wait until every byte has left */
bool virtcon_detect(void); /* lib/virtcon.c: a virtio serial port, set up if found */
void virtcon_write(const uint8_t *s, size_t n);
void virtcon_putc(uint8_t c);

/* ---- records (record.c) ------------------------------------------------- */

#define RECORD_MAX 1024
struct record {
    char buf[RECORD_MAX + 8]; /* the record, then "\r\n" */
    size_t len;
    bool truncated;
};
void record_begin(struct record *r, const char *kind);
/* Appends " key=value" with value escaped; returns false (and appends
 * nothing) if the field would not fit, unless truncate is set, in which
 * case as much of the value as fits is kept, followed by "...". */
bool record_field(struct record *r, const char *key, const char *value, bool truncate);
void record_fieldf(struct record *r, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void record_emit(struct record *r); /* adds seq and CRC, writes it out */
uint32_t crc32(const void *data, size_t n);

/* ---- facts (facts.c, tsc.c) -------------------------------------------- */

void facts_emit(void);
uint64_t tsc_calibrate(void); /* Hz, 0 if the PIT could not be used */

/* ---- watchdog (watchdog.c) ---------------------------------------------- */

void watchdog_irq(void); /* trap_dispatch(): WATCHDOG_VECTOR arrived */

/* ---- memory (mm.c) ------------------------------------------------------ */

void mm_init(void);
struct mm_mark {
    unsigned range;
    uint64_t next;
};
struct mm_mark mm_mark(void);
void mm_release(struct mm_mark m);
uint64_t mm_free_bytes(void);

/* ---- command line (cmdline.c) ------------------------------------------- */

/* Finds key=value in the command line; copies the value. */
bool cmdline_get(const char *cmdline, const char *key, char *val, size_t size);
bool glob_match(const char *glob, const char *str);

/* ---- runner (runner.c, report.c) --------------------------------------- */

/* Verdicts, best first: a worse one replaces a better one. */
enum verdict { V_PASS, V_SKIP, V_FAIL, V_ERROR };
#define DETAIL_MAX RECORD_MAX /* longer details are cut when emitted */
#define MAX_NOTES  16

/* The probe that is running: what report.c's check()/skip()/... update. */
struct probe_run {
    const struct nvct_probe *probe;
    enum verdict verdict;
    char detail[DETAIL_MAX];
    unsigned notes;
    struct jmp_ctx end; /* skip()/fail()/error() resume the runner here */
};
extern struct probe_run *current_run;
void run_note(struct probe_run *run, const char *msg);
void run_verdict(struct probe_run *run, enum verdict v, const char *detail);
const char *verdict_name(enum verdict v);

void run_probes(void);

/* ---- misc --------------------------------------------------------------- */

void *memmove(void *d, const void *s, size_t n);
char *strchr(const char *s, int c);
size_t strlcpy(char *d, const char *s, size_t size);
noreturn void machine_exit(void); /* the exit sequence of protocol.md */
noreturn void panic(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void raw_print(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

extern char __image_start[], __image_end[];

#endif
