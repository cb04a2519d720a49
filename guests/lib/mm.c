/* SPDX-License-Identifier: MIT */
/*
 * The page allocator: a bump pointer over the RAM above the kernel image
 * and below 4 GiB (what the identity map covers), from the loader's memory
 * map. Memory below 1 MiB and below the image is never handed out. The
 * runner takes a mark before each probe and releases back to it after.
 */
#include "kernel.h"

#define PAGE_SIZE 4096ull
#define LIMIT     (1ull << 32)

static struct mem_range free_ranges[MAX_MEM_RANGES];
static unsigned nr_free;
static struct mm_mark cur; /* the next page: free_ranges[cur.range] at cur.next */

void mm_init(void)
{
    uint64_t floor = ((uint64_t)__image_end + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);

    nr_free = 0;
    for (unsigned i = 0; i < boot_info.nr_ranges; i++) {
        uint64_t s = boot_info.ranges[i].start, e = boot_info.ranges[i].end;

        s = (s + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
        e &= ~(PAGE_SIZE - 1);
        if (s < floor)
            s = floor;
        if (e > LIMIT)
            e = LIMIT;
        if (s >= e)
            continue;
        /* Insert sorted by start (maps are usually sorted already). */
        unsigned j = nr_free++;
        while (j > 0 && free_ranges[j - 1].start > s) {
            free_ranges[j] = free_ranges[j - 1];
            j--;
        }
        free_ranges[j].start = s;
        free_ranges[j].end = e;
    }
    cur.range = 0;
    cur.next = nr_free ? free_ranges[0].start : 0;
}

void *alloc_pages(unsigned count)
{
    uint64_t bytes = (uint64_t)count * PAGE_SIZE;

    if (count == 0)
        error("alloc_pages(0)");
    while (cur.range < nr_free) {
        struct mem_range *r = &free_ranges[cur.range];

        if (cur.next < r->start)
            cur.next = r->start;
        if (r->end - cur.next >= bytes) {
            void *p = (void *)(uintptr_t)cur.next;

            cur.next += bytes;
            memset(p, 0, bytes);
            return p;
        }
        /* Does not fit: the rest of this range is left unused. */
        cur.range++;
        cur.next = 0;
    }
    error("alloc_pages(%u): out of memory (%lu bytes free)", count, mm_free_bytes());
}

struct mm_mark mm_mark(void) { return cur; }

void mm_release(struct mm_mark m) { cur = m; }

uint64_t mm_free_bytes(void)
{
    uint64_t n = 0;

    for (unsigned i = cur.range; i < nr_free; i++) {
        uint64_t s = free_ranges[i].start;
        if (i == cur.range && cur.next > s)
            s = cur.next;
        n += free_ranges[i].end - s;
    }
    return n;
}
