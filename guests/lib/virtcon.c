/* SPDX-License-Identifier: MIT */
/*
 * A virtio console (legacy virtio-pci, device 1af4:1003): a record line
 * leaves in one buffer and one notification, where a 16550 takes a port
 * write per byte. Under nesting every port write is an exit that travels
 * through each level below, so deep levels print through this when their
 * hypervisor offers it (the linux-kvm backend's QEMU does).
 *
 * Facts used (virtio 0.9.5 / virtio 1.x "legacy interface"): the I/O BAR 0
 * holds device features (0x00), guest features (0x04), queue PFN (0x08,
 * 4 KiB pages), queue size (0x0c), queue select (0x0e), queue notify
 * (0x10), device status (0x12). A console without the multiport feature
 * has queue 0 (port 0 receive) and queue 1 (port 0 transmit). The split
 * ring: descriptors (16 bytes each), then the available ring (flags, idx,
 * ring[size]), then, at the next 4 KiB boundary, the used ring.
 */
#include "kernel.h"

#define PCI_ADDR 0xcf8
#define PCI_DATA 0xcfc

#define VIRTIO_VENDOR  0x1af4
#define VIRTIO_CONSOLE 0x1003

#define VP_GUEST_FEATURES 0x04
#define VP_QUEUE_PFN      0x08
#define VP_QUEUE_SIZE     0x0c
#define VP_QUEUE_SELECT   0x0e
#define VP_QUEUE_NOTIFY   0x10
#define VP_STATUS         0x12

#define STATUS_ACKNOWLEDGE 1
#define STATUS_DRIVER      2
#define STATUS_DRIVER_OK   4

#define TX_QUEUE           1
#define QUEUE_MAX          256 /* the largest ring the static area below holds */
#define LINE_MAX           2048
/* Give up on a device that never takes a buffer: losing output beats hanging. */
#define VIRTCON_SPIN_LIMIT 100000000u

struct vring_desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};

static uint8_t ring[3 * 4096] __aligned(4096);
static char line[LINE_MAX];
static uint16_t io_base, queue_size;
static volatile uint16_t *avail_idx, *avail_ring, *used_idx;
static uint16_t next_avail;

static uint32_t pci_read(unsigned dev, unsigned reg)
{
    outl(PCI_ADDR, 0x80000000u | (dev << 11) | (reg & 0xfc));
    return inl(PCI_DATA);
}

static void pci_write(unsigned dev, unsigned reg, uint32_t value)
{
    outl(PCI_ADDR, 0x80000000u | (dev << 11) | (reg & 0xfc));
    outl(PCI_DATA, value);
}

/* The first virtio console on bus 0 with an I/O BAR 0; 0 if none. */
static uint16_t find_device(unsigned *where)
{
    for (unsigned dev = 0; dev < 32; dev++) {
        uint32_t id = pci_read(dev, 0x00);
        if ((id & 0xffff) != VIRTIO_VENDOR || (id >> 16) != VIRTIO_CONSOLE)
            continue;
        uint32_t bar = pci_read(dev, 0x10);
        if (!(bar & 1) || !(bar & 0xfffc))
            continue;
        *where = dev;
        return (uint16_t)(bar & 0xfffc);
    }
    return 0;
}

/* Found and set up at once: a console that is detected can be written to. */
bool virtcon_detect(void)
{
    unsigned dev;
    uint16_t base = find_device(&dev);
    io_base = 0;
    if (!base)
        return false;
    /* I/O space and bus mastering: the device reads our buffers. */
    pci_write(dev, 0x04, (pci_read(dev, 0x04) & 0xffff) | 0x5);
    outb(base + VP_STATUS, 0); /* reset */
    outb(base + VP_STATUS, STATUS_ACKNOWLEDGE);
    outb(base + VP_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
    outl(base + VP_GUEST_FEATURES, 0); /* no multiport, no emergency write */
    outw(base + VP_QUEUE_SELECT, TX_QUEUE);
    uint16_t size = inw(base + VP_QUEUE_SIZE);
    if (size == 0 || size > QUEUE_MAX || (size & (size - 1))) {
        outb(base + VP_STATUS, 0);
        return false;
    }
    memset(ring, 0, sizeof(ring));
    uint64_t avail = 16u * size;
    uint64_t used = (avail + 4 + 2u * size + 2 + 4095) & ~4095ull;
    avail_idx = (volatile uint16_t *)(ring + avail + 2);
    avail_ring = (volatile uint16_t *)(ring + avail + 4);
    used_idx = (volatile uint16_t *)(ring + used + 2);
    outl(base + VP_QUEUE_PFN, (uint32_t)((uintptr_t)ring >> 12));
    outb(base + VP_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_DRIVER_OK);
    queue_size = size;
    next_avail = 0;
    io_base = base;
    return true;
}

/* One buffer per call, and back only once the device has used it: the
 * buffer is ours again, and nothing is in flight when the kernel ends. */
void virtcon_write(const uint8_t *s, size_t n)
{
    while (n && io_base) {
        size_t count = n < LINE_MAX ? n : LINE_MAX;
        memcpy(line, s, count);
        struct vring_desc *desc = (struct vring_desc *)ring;
        desc[0].addr = (uint64_t)(uintptr_t)line;
        desc[0].len = (uint32_t)count;
        desc[0].flags = 0; /* device-readable, no next */
        desc[0].next = 0;
        avail_ring[next_avail % queue_size] = 0;
        __asm__ volatile("" ::
                             : "memory"); /* the entry before the index (x86 keeps stores in order)
                                           */
        *avail_idx = ++next_avail;
        outw(io_base + VP_QUEUE_NOTIFY, TX_QUEUE);
        for (unsigned spins = 0; *used_idx != next_avail; spins++) {
            if (spins > VIRTCON_SPIN_LIMIT) {
                io_base = 0; /* a device that does not take buffers: stop using it */
                return;
            }
            __asm__ volatile("pause");
        }
        s += count;
        n -= count;
    }
}

void virtcon_putc(uint8_t c) { virtcon_write(&c, 1); }
