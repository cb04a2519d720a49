/* SPDX-License-Identifier: MIT */
/*
 * What the loader tells us: the command line and the RAM map, from a
 * multiboot 1 information structure (multiboot spec 3.3) or a PVH
 * struct hvm_start_info (xen/include/public/arch-x86/hvm/start_info.h).
 * Everything is copied: the loader's structures lie in memory that the
 * page allocator will hand out.
 */
#include "kernel.h"

struct boot_info boot_info;

/* Multiboot 1 information, the fields used here. */
struct mb1_info {
    uint32_t flags;
    uint32_t mem_lower, mem_upper; /* KiB, flags bit 0 */
    uint32_t boot_device;
    uint32_t cmdline; /* flags bit 2 */
    uint32_t mods_count, mods_addr;
    uint32_t syms[4];
    uint32_t mmap_length, mmap_addr; /* flags bit 6 */
} __packed;

#define MB1_INFO_MEM     BIT(0)
#define MB1_INFO_CMDLINE BIT(2)
#define MB1_INFO_MMAP    BIT(6)

struct mb1_mmap_entry {
    uint32_t size; /* of the rest of the entry, not counting this field */
    uint64_t addr, len;
    uint32_t type;
} __packed;

struct hvm_start_info {
    uint32_t magic, version, flags, nr_modules;
    uint64_t modlist_paddr, cmdline_paddr, rsdp_paddr;
    uint64_t memmap_paddr; /* version >= 1 */
    uint32_t memmap_entries;
    uint32_t reserved;
} __packed;

struct hvm_memmap_entry {
    uint64_t addr, size;
    uint32_t type, reserved;
} __packed;

#define E820_RAM 1

/* Physical memory the kernel may read: the identity map covers 4 GiB. */
static const void *phys(uint64_t pa, uint64_t len)
{
    if (pa == 0 || pa >= (1ull << 32) || len > (1ull << 32) - pa)
        return NULL;
    return (const void *)(uintptr_t)pa;
}

static void copy_cmdline(uint64_t pa)
{
    const char *s = phys(pa, 1);

    if (!s)
        return;
    size_t n = 0;
    while (n < CMDLINE_MAX - 1 && s[n])
        n++;
    memcpy(boot_info.cmdline, s, n);
    boot_info.cmdline[n] = 0;
    /* A cut command line could select other probes than the one given
     * (a lost after= restarts a resumed boot from the first probe): the
     * runner refuses it rather than guess. */
    boot_info.cmdline_cut = s[n] != 0;
}

static void add_ram(uint64_t start, uint64_t len)
{
    if (!len || boot_info.nr_ranges >= MAX_MEM_RANGES)
        return;
    boot_info.ranges[boot_info.nr_ranges].start = start;
    boot_info.ranges[boot_info.nr_ranges].end = start + len;
    boot_info.nr_ranges++;
}

static void parse_multiboot(uint32_t info)
{
    const struct mb1_info *mbi = phys(info, sizeof(*mbi));

    if (!mbi)
        return;
    if (mbi->flags & MB1_INFO_CMDLINE)
        copy_cmdline(mbi->cmdline);
    if ((mbi->flags & MB1_INFO_MMAP) && phys(mbi->mmap_addr, mbi->mmap_length)) {
        uint64_t p = mbi->mmap_addr, end = p + mbi->mmap_length;

        while (p + sizeof(struct mb1_mmap_entry) <= end) {
            const struct mb1_mmap_entry *e = (const void *)(uintptr_t)p;

            if (e->type == E820_RAM)
                add_ram(e->addr, e->len);
            p += e->size + sizeof(e->size);
        }
    } else if (mbi->flags & MB1_INFO_MEM) {
        add_ram(0, (uint64_t)mbi->mem_lower * 1024);
        add_ram(1 << 20, (uint64_t)mbi->mem_upper * 1024);
    }
}

static void parse_pvh(uint32_t info)
{
    const struct hvm_start_info *si = phys(info, sizeof(*si));

    if (!si)
        return;
    copy_cmdline(si->cmdline_paddr);
    if (si->version >= 1) {
        const struct hvm_memmap_entry *e =
            phys(si->memmap_paddr, (uint64_t)si->memmap_entries * sizeof(*e));

        for (uint32_t i = 0; e && i < si->memmap_entries; i++)
            if (e[i].type == E820_RAM)
                add_ram(e[i].addr, e[i].size);
    }
}

void boot_info_parse(int kind, uint32_t info)
{
    boot_info.kind = kind;
    if (kind == BOOT_MULTIBOOT)
        parse_multiboot(info);
    else if (kind == BOOT_PVH)
        parse_pvh(info);
}
