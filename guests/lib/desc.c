/* SPDX-License-Identifier: MIT */
/*
 * The GDT, the TSS and the IDT (SDM Vol. 3A 3.4.5, 7.2.3, 6.14; APM Vol. 2
 * 4.8, 12.2.5, 8.9).
 */
#include "kernel.h"

/*
 * Flat segments. Access byte: P | DPL | S | type; flags: G | D/B | L.
 * 64-bit code has L=1, D=0; the 32-bit code segment (for guests in
 * protected mode, and for the boot code before long mode) has D=1.
 */
#define SEG(access, flags) \
    (0xffffull | ((uint64_t)(access) << 40) | (0xfull << 48) | ((uint64_t)(flags) << 52))

static const uint64_t gdt_pristine[] = {
    [0] = 0,
    [KERNEL_CS >> 3] = SEG(0x9b, 0xa),   /* P, DPL 0, code exec/read/accessed; G, L */
    [KERNEL_DS >> 3] = SEG(0x93, 0xc),   /* P, DPL 0, data read/write/accessed; G, B */
    [KERNEL_CS32 >> 3] = SEG(0x9b, 0xc), /* P, DPL 0, code; G, D */
    [USER_DS >> 3] = SEG(0xf3, 0xc),     /* P, DPL 3, data */
    [USER_CS >> 3] = SEG(0xfb, 0xa),     /* P, DPL 3, 64-bit code */
    [TSS_SEL >> 3] = 0,                  /* 16 bytes, filled in at run time */
    [(TSS_SEL >> 3) + 1] = 0,
};

/* The boot code loads this GDT from 32-bit mode, so it is static data. */
uint64_t gdt[ARRAY_SIZE(gdt_pristine)] __aligned(16) = {
    [KERNEL_CS >> 3] = SEG(0x9b, 0xa),
    [KERNEL_DS >> 3] = SEG(0x93, 0xc),
    [KERNEL_CS32 >> 3] = SEG(0x9b, 0xc),
};

struct desc_ptr {
    uint16_t limit;
    uint64_t base;
} __packed;

/* lgdt in 32-bit mode reads the limit and the low 32 bits of the base. */
struct desc_ptr gdt_ptr = {sizeof(gdt) - 1, (uint64_t)gdt};

/* The 64-bit TSS (SDM Vol. 3A 8.7, figure 8-11). */
struct tss64 {
    uint32_t reserved0;
    uint64_t rsp[3];
    uint64_t reserved1;
    uint64_t ist[7];
    uint64_t reserved2;
    uint16_t reserved3;
    uint16_t iomap_base;
} __packed;

static struct tss64 tss __aligned(16);

/*
 * Interrupt stacks: #DF, NMI and #MC get their own (IST), so that they are
 * delivered even with a broken RSP. RSP0 is the stack for exceptions taken
 * at CPL 3 (a probe that runs user code).
 */
#define IST_DF         1
#define IST_NMI        2
#define IST_MC         3
#define INT_STACK_SIZE 8192
static uint8_t ist_stacks[3][INT_STACK_SIZE] __aligned(16);
static uint8_t rsp0_stack[16384] __aligned(16);

struct idt_gate {
    uint16_t off0, sel;
    uint8_t ist, type; /* type: P | DPL | 0 | 0xE (64-bit interrupt gate) */
    uint16_t off1;
    uint32_t off2, reserved;
} __packed;

static struct idt_gate idt[256] __aligned(16);
static const struct desc_ptr idt_ptr = {sizeof(idt) - 1, (uint64_t)idt};

static void set_gate(int vec, uint64_t handler, int ist, int dpl)
{
    struct idt_gate *g = &idt[vec];

    g->off0 = handler & 0xffff;
    g->sel = KERNEL_CS;
    g->ist = ist;
    g->type = 0x8e | (dpl << 5);
    g->off1 = (handler >> 16) & 0xffff;
    g->off2 = handler >> 32;
    g->reserved = 0;
}

static void build_tables(void)
{
    uint64_t base = (uint64_t)&tss;
    uint64_t limit = sizeof(tss) - 1;

    memset(&tss, 0, sizeof(tss));
    tss.rsp[0] = (uint64_t)rsp0_stack + sizeof(rsp0_stack);
    tss.ist[IST_DF - 1] = (uint64_t)ist_stacks[0] + INT_STACK_SIZE;
    tss.ist[IST_NMI - 1] = (uint64_t)ist_stacks[1] + INT_STACK_SIZE;
    tss.ist[IST_MC - 1] = (uint64_t)ist_stacks[2] + INT_STACK_SIZE;
    tss.iomap_base = sizeof(tss); /* no I/O bitmap: CPL 3 gets #GP on I/O */

    memcpy(gdt, gdt_pristine, sizeof(gdt));
    /* 64-bit available TSS descriptor, type 9 (SDM Vol. 3A 8.2.3). */
    gdt[TSS_SEL >> 3] = (limit & 0xffff) | ((base & 0xffffff) << 16) | (0x89ull << 40) |
                        ((limit >> 16 & 0xf) << 48) | ((base >> 24 & 0xff) << 56);
    gdt[(TSS_SEL >> 3) + 1] = base >> 32;

    for (int v = 0; v < 256; v++) {
        int ist = v == DF_VECTOR ? IST_DF : v == NMI_VECTOR ? IST_NMI : v == MC_VECTOR ? IST_MC : 0;
        /* #BP and #OF at DPL 3 so that int3/into work from user code. */
        int dpl = (v == BP_VECTOR || v == OF_VECTOR) ? 3 : 0;
        set_gate(v, (uint64_t)trap_stubs + v * TRAP_STUB_SIZE, ist, dpl);
    }
}

static void load_tables(void)
{
    __asm__ volatile("lgdt %0" : : "m"(gdt_ptr));
    __asm__ volatile("lidt %0" : : "m"(idt_ptr));
    /* Reload CS with a far return, then the data segments. */
    __asm__ volatile("pushq %[cs]\n\t"
                     "leaq 1f(%%rip), %%rax\n\t"
                     "pushq %%rax\n\t"
                     "lretq\n"
                     "1:\n\t"
                     "movl %[ds], %%eax\n\t"
                     "movl %%eax, %%ds\n\t"
                     "movl %%eax, %%es\n\t"
                     "movl %%eax, %%ss\n\t"
                     "movl %%eax, %%fs\n\t"
                     "movl %%eax, %%gs\n\t"
                     :
                     : [cs] "i"(KERNEL_CS), [ds] "i"(KERNEL_DS)
                     : "rax", "memory");
    /* ltr marks the descriptor busy; it was just rewritten as available. */
    __asm__ volatile("ltr %w0" : : "r"(TSS_SEL));
    wrmsr(MSR_FS_BASE, 0);
    wrmsr(MSR_GS_BASE, 0);
    wrmsr(MSR_KERNEL_GS_BASE, 0);
}

void desc_load(void)
{
    build_tables();
    load_tables();
}
