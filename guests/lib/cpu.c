/* SPDX-License-Identifier: MIT */
/* Register, MSR and port accessors, and CPU identification. */
#include "kernel.h"

struct cpuid cpuid(uint32_t leaf, uint32_t subleaf)
{
    struct cpuid r;

    __asm__ volatile("cpuid"
                     : "=a"(r.a), "=b"(r.b), "=c"(r.c), "=d"(r.d)
                     : "a"(leaf), "c"(subleaf));
    return r;
}

uint64_t rdmsr(uint32_t msr)
{
    uint32_t lo, hi;

    __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr) : "memory");
    return (uint64_t)hi << 32 | lo;
}

void wrmsr(uint32_t msr, uint64_t val)
{
    __asm__ volatile("wrmsr"
                     :
                     : "c"(msr), "a"((uint32_t)val), "d"((uint32_t)(val >> 32))
                     : "memory");
}

uint64_t rdtsc(void)
{
    uint32_t lo, hi;

    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return (uint64_t)hi << 32 | lo;
}

uint64_t read_cr0(void)
{
    uint64_t v;
    __asm__ volatile("mov %%cr0, %0" : "=r"(v));
    return v;
}

uint64_t read_cr2(void)
{
    uint64_t v;
    __asm__ volatile("mov %%cr2, %0" : "=r"(v));
    return v;
}

uint64_t read_cr3(void)
{
    uint64_t v;
    __asm__ volatile("mov %%cr3, %0" : "=r"(v));
    return v;
}

uint64_t read_cr4(void)
{
    uint64_t v;
    __asm__ volatile("mov %%cr4, %0" : "=r"(v));
    return v;
}

uint64_t read_cr8(void)
{
    uint64_t v;
    __asm__ volatile("mov %%cr8, %0" : "=r"(v));
    return v;
}

void write_cr0(uint64_t v) { __asm__ volatile("mov %0, %%cr0" : : "r"(v) : "memory"); }

void write_cr3(uint64_t v) { __asm__ volatile("mov %0, %%cr3" : : "r"(v) : "memory"); }

void write_cr4(uint64_t v) { __asm__ volatile("mov %0, %%cr4" : : "r"(v) : "memory"); }

void write_cr8(uint64_t v) { __asm__ volatile("mov %0, %%cr8" : : "r"(v) : "memory"); }

uint64_t read_rflags(void)
{
    uint64_t v;

    __asm__ volatile("pushfq; popq %0" : "=r"(v));
    return v;
}

void outb(uint16_t port, uint8_t v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
void outw(uint16_t port, uint16_t v) { __asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port)); }
void outl(uint16_t port, uint32_t v) { __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port)); }

uint8_t inb(uint16_t port)
{
    uint8_t v;

    __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

uint16_t inw(uint16_t port)
{
    uint16_t v;

    __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

uint32_t inl(uint16_t port)
{
    uint32_t v;

    __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

static bool vendor_is(const char *v)
{
    struct cpuid r = cpuid(0, 0);
    char s[12];

    memcpy(s, &r.b, 4);
    memcpy(s + 4, &r.d, 4);
    memcpy(s + 8, &r.c, 4);
    return memcmp(s, v, 12) == 0;
}

bool cpu_is_amd(void) { return vendor_is("AuthenticAMD") || vendor_is("HygonGenuine"); }

bool cpu_is_intel(void) { return vendor_is("GenuineIntel"); }

unsigned cpu_phys_addr_bits(void)
{
    if (cpuid(0x80000000, 0).a >= 0x80000008)
        return cpuid(0x80000008, 0).a & 0xff;
    return 36;
}

uint64_t kernel_cr3(void)
{
    extern char kernel_pml4[];

    return (uint64_t)kernel_pml4;
}

uint64_t user_cr3(void)
{
    uint64_t *pml4 = alloc_page(), *pdpt = alloc_page(), *pd = alloc_pages(4);
    for (uint64_t i = 0; i < 4 * 512; i++)
        pd[i] = (i << 21) | 0x87; /* P, W, U, PS */
    for (uint64_t i = 0; i < 4; i++)
        pdpt[i] = (uintptr_t)&pd[i * 512] | 0x7;
    pml4[0] = (uintptr_t)pdpt | 0x7;
    return (uintptr_t)pml4;
}

uint64_t *slot1_tables(uint64_t page, uint64_t **pte)
{
    uint64_t *pml4 = alloc_page(), *pdpt = alloc_page(), *pd = alloc_page(), *pt = alloc_page();
    memcpy(pml4, (void *)(uintptr_t)(kernel_cr3() & 0x000ffffffffff000ull), 4096);
    if (pml4[1] & 1)
        error("the kernel maps PML4 slot 1; pick another linear address");
    pml4[1] = (uintptr_t)pdpt | 0x23; /* P, W, A */
    pdpt[0] = (uintptr_t)pd | 0x23;
    pd[0] = (uintptr_t)pt | 0x23;
    pt[0] = page | 0x63; /* P, W, A, D */
    if (pte)
        *pte = &pt[0];
    return pml4;
}

void iret_self(void *unused)
{
    (void)unused;
    __asm__ volatile("mov %%rsp, %%rcx\n\t"
                     "mov %%ss, %%eax\n\t"
                     "pushq %%rax\n\t"
                     "pushq %%rcx\n\t"
                     "pushfq\n\t"
                     "mov %%cs, %%eax\n\t"
                     "pushq %%rax\n\t"
                     "leaq 1f(%%rip), %%rax\n\t"
                     "pushq %%rax\n\t"
                     "iretq\n"
                     "1:"
                     :
                     :
                     : "rax", "rcx", "memory");
}
