// SPDX-License-Identifier: MIT
/*
 * Builds Linux's zero page (struct boot_params) from the bzImage's setup
 * header and the multiboot memory map, moves the protected-mode kernel to
 * its preferred address, and enters it. The command line, from GRUB:
 *
 *     [linuxboot.elf] KERNEL KSIZE KSUM INITRD ISIZE ISUM [Linux's command line ...]
 *
 * with the six numbers in hex (0x...): where the bzImage and the initrd lie
 * in RAM, their lengths, and the sum of each as little-endian 32-bit words
 * (zero-padded), which proves that nothing overwrote them before now. Every check that fails is said on COM1.
 * Offsets: Linux's boot protocol (Documentation/arch/x86/boot.rst) and
 * zero-page layout (Documentation/arch/x86/zero-page.rst).
 */
#include <stdint.h>

#define MB1_BOOT_MAGIC 0x2BADB002
#define HDRS 0x53726448 /* "HdrS" at 0x202 */

struct mb_info {
	uint32_t flags, mem_lower, mem_upper, boot_device, cmdline;
	uint32_t mods_count, mods_addr, syms[4], mmap_length, mmap_addr;
};

struct __attribute__((packed)) mb_mmap {
	uint32_t size;
	uint64_t addr, len;
	uint32_t type;
};

struct __attribute__((packed)) e820 {
	uint64_t addr, size;
	uint32_t type;
};

void enter_linux(uint32_t entry, void *zero_page) __attribute__((noreturn));

static uint8_t zero_page[4096] __attribute__((aligned(4096)));
static char cmdline[4096];

static inline void outb(uint16_t port, uint8_t v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline uint8_t inb(uint16_t port)
{
	uint8_t v;
	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static void putc(char c)
{
	for (int spin = 0; spin < 100000 && !(inb(0x3fd) & 0x20); spin++)
		;
	outb(0x3f8, (uint8_t)c);
}

static void puts(const char *s)
{
	while (*s)
		putc(*s++);
}

static void puthex(uint32_t v)
{
	puts("0x");
	for (int shift = 28; shift >= 0; shift -= 4)
		putc("0123456789abcdef"[(v >> shift) & 15]);
}

static void fail(const char *why, uint32_t value)
{
	puts("nvct linuxboot: ");
	puts(why);
	puts(" ");
	puthex(value);
	puts("\r\n");
}

static void copy(void *dst, const void *src, uint32_t n)
{
	__asm__ volatile("rep movsb" : "+D"(dst), "+S"(src), "+c"(n) : : "memory");
}

static void zero(void *dst, uint32_t n)
{
	__asm__ volatile("rep stosb" : "+D"(dst), "+c"(n) : "a"(0) : "memory");
}

static const char *hex(const char *s, uint32_t *out)
{
	uint32_t v = 0;
	while (*s == ' ')
		s++;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
		s += 2;
	for (;; s++) {
		int d = *s >= '0' && *s <= '9' ? *s - '0' : *s >= 'a' && *s <= 'f' ? *s - 'a' + 10 : -1;
		if (d < 0)
			break;
		v = v << 4 | (uint32_t)d;
	}
	*out = v;
	return s;
}

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const uint8_t *p) { return rd16(p) | (uint32_t)rd16(p + 2) << 16; }
static void wr16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void wr32(uint8_t *p, uint32_t v) { wr16(p, (uint16_t)v); wr16(p + 2, (uint16_t)(v >> 16)); }

static uint32_t word_sum(uint32_t start, uint32_t len)
{
	const uint32_t *w = (const uint32_t *)start;
	uint32_t sum = 0, n = len / 4;
	for (uint32_t i = 0; i < n; i++)
		sum += w[i];
	if (len % 4) {
		uint32_t last = 0;
		const uint8_t *tail = (const uint8_t *)(start + n * 4);
		for (uint32_t i = 0; i < len % 4; i++)
			last |= (uint32_t)tail[i] << (8 * i);
		sum += last;
	}
	return sum;
}

/* Whether [start, start + len) lies in one usable range of the memory map. */
static int usable(const struct e820 *map, int n, uint32_t start, uint32_t len)
{
	for (int i = 0; i < n; i++)
		if (map[i].type == 1 && map[i].addr <= start && start + (uint64_t)len <= map[i].addr + map[i].size)
			return 1;
	return 0;
}

void linuxboot_main(uint32_t magic, const struct mb_info *mbi)
{
	if (magic != MB1_BOOT_MAGIC)
		return fail("not started by a multiboot loader, eax", magic);
	if (!(mbi->flags & (1u << 2)))
		return fail("no command line from the loader, flags", mbi->flags);
	if (!(mbi->flags & (1u << 6)))
		return fail("no memory map from the loader, flags", mbi->flags);

	/* GRUB may or may not put our own path first: skip words up to the
	 * first number. */
	const char *s = (const char *)mbi->cmdline;
	while (*s == ' ' || (*s && !(s[0] == '0' && s[1] == 'x'))) {
		while (*s && *s != ' ')
			s++;
		while (*s == ' ')
			s++;
	}
	uint32_t kaddr, ksize, ksum, iaddr, isize, isum;
	s = hex(s, &kaddr);
	s = hex(s, &ksize);
	s = hex(s, &ksum);
	s = hex(s, &iaddr);
	s = hex(s, &isize);
	s = hex(s, &isum);
	while (*s == ' ')
		s++;

	if (word_sum(kaddr, ksize) != ksum)
		return fail("the bzImage in RAM is not the one preloaded: its word sum is", word_sum(kaddr, ksize));
	if (word_sum(iaddr, isize) != isum)
		return fail("the initrd in RAM is not the one preloaded: its word sum is", word_sum(iaddr, isize));
	const uint8_t *bz = (const uint8_t *)kaddr;
	if (rd32(bz + 0x202) != HDRS)
		return fail("no bzImage setup header (HdrS) at", kaddr);
	uint16_t version = rd16(bz + 0x206);
	if (version < 0x20c)
		return fail("boot protocol older than 2.12:", version);
	const uint8_t *ird = (const uint8_t *)iaddr;
	if (!(ird[0] == 0x1f && ird[1] == 0x8b) && !(ird[0] == '0' && ird[1] == '7'))
		return fail("no gzip or cpio initrd at", iaddr);
	if (iaddr + isize > rd32(bz + 0x22c))
		return fail("initrd above the kernel's initrd_addr_max", rd32(bz + 0x22c));

	uint32_t setup_sects = bz[0x1f1] ? bz[0x1f1] : 4;
	uint32_t pm_size = rd32(bz + 0x1f4) * 16;
	uint32_t load = rd32(bz + 0x258); /* pref_address, low half */
	uint32_t init_size = rd32(bz + 0x260);

	/* The memory map, in Linux's own format. */
	struct e820 *map = (struct e820 *)(zero_page + 0x2d0);
	int n = 0;
	for (uint32_t at = mbi->mmap_addr; at < mbi->mmap_addr + mbi->mmap_length && n < 128;) {
		const struct mb_mmap *m = (const struct mb_mmap *)at;
		map[n].addr = m->addr;
		map[n].size = m->len;
		map[n].type = m->type;
		n++;
		at += m->size + 4;
	}
	if (!usable(map, n, load, init_size))
		return fail("no RAM for the kernel at its preferred address", load);
	if (!usable(map, n, iaddr, isize))
		return fail("the initrd is not in usable RAM, at", iaddr);
	if (load + init_size > kaddr && load < kaddr + (setup_sects + 1) * 512 + pm_size)
		return fail("the kernel's room overlaps the bzImage, at", kaddr);

	/* The setup header as the kernel gave it, then what a loader fills in. */
	uint8_t hdr_end = bz[0x201];
	uint8_t *zp = zero_page;
	uint8_t saved_n = (uint8_t)n;
	copy(zp + 0x1f1, bz + 0x1f1, 0x202u + hdr_end - 0x1f1u);
	zp[0x1e8] = saved_n;      /* e820_entries */
	zp[0x210] = 0xff;         /* type_of_loader: undefined */
	zp[0x211] |= 0x80;        /* loadflags: CAN_USE_HEAP */
	wr16(zp + 0x224, 0xfe00); /* heap_end_ptr */
	wr32(zp + 0x218, iaddr);  /* ramdisk_image */
	wr32(zp + 0x21c, isize);  /* ramdisk_size */
	uint32_t len = 0;
	while (s[len] && len < sizeof(cmdline) - 1)
		len++;
	copy(cmdline, s, len);
	cmdline[len] = 0;
	wr32(zp + 0x228, (uint32_t)cmdline); /* cmd_line_ptr */
	wr32(zp + 0x214, load);              /* code32_start */

	/* The protected-mode kernel to where it wants to run; the space it
	 * decompresses into starts clean. */
	copy((void *)load, bz + (setup_sects + 1) * 512, pm_size);
	zero((void *)(load + pm_size), init_size > pm_size ? init_size - pm_size : 0);
	enter_linux(load, zp);
}
