/* SPDX-License-Identifier: MIT */
/*
 * A virtio serial port (legacy virtio-pci, device 1af4:1003, multiport):
 * a record line leaves in one buffer and one notification, where a 16550
 * takes a port write per byte or per FIFO burst. Under nesting every port
 * write is an exit that travels through each level below, so deep levels
 * print through this when their hypervisor offers it (the linux-kvm
 * backend's QEMU does, a `virtserialport` at port 1).
 *
 * Why a port and not port 0, the console: QEMU writes what a console port
 * gets to its chardev and drops what the chardev does not take at once; a
 * serial port (`virtserialport`) is throttled instead (the buffer stays in
 * the queue until the chardev can take it), so nothing is lost however
 * slow the line below is. A port other than 0 needs the multiport protocol
 * (VIRTIO_CONSOLE_F_MULTIPORT): the control queues, the device's PORT_ADD
 * answered by PORT_READY, the device's PORT_OPEN (the host side is
 * connected: data to a port that is not is dropped) and ours.
 *
 * Facts used (virtio 1.x, "Console Device" and "Legacy Interface"): the
 * I/O BAR 0 holds device features (0x00), guest features (0x04), queue PFN
 * (0x08, 4 KiB pages), queue size (0x0c), queue select (0x0e), queue
 * notify (0x10), device status (0x12), then (MSI-X off) the device's
 * configuration: cols, rows (16 bits each), max_nr_ports (32 bits) at
 * 0x14. Queues: 0 and 1 are port 0's receive and transmit, 2 and 3 the
 * control receive and transmit queues, then 2 per port: port N transmits
 * on queue 2 * (N + 1) + 1. A control message is a 32-bit port id, a
 * 16-bit event and a 16-bit value. The split ring: descriptors (16 bytes
 * each), the available ring (flags, idx, ring[size]), then, at the next
 * 4 KiB boundary, the used ring (flags, idx, {id, len}[size]).
 */
#include "kernel.h"

#define PCI_ADDR 0xcf8
#define PCI_DATA 0xcfc

#define VIRTIO_VENDOR  0x1af4
#define VIRTIO_CONSOLE 0x1003

#define VP_DEVICE_FEATURES 0x00
#define VP_GUEST_FEATURES  0x04
#define VP_QUEUE_PFN       0x08
#define VP_QUEUE_SIZE      0x0c
#define VP_QUEUE_SELECT    0x0e
#define VP_QUEUE_NOTIFY    0x10
#define VP_STATUS          0x12
#define VP_MAX_NR_PORTS    0x18 /* the configuration at 0x14: cols, rows, max_nr_ports */

#define STATUS_ACKNOWLEDGE 1
#define STATUS_DRIVER      2
#define STATUS_DRIVER_OK   4

#define F_MULTIPORT BIT(1)

#define EV_DEVICE_READY 0
#define EV_PORT_ADD     1
#define EV_PORT_READY   3
#define EV_PORT_OPEN    6

#define PORT            1 /* the port the harness's QEMU offers (nr=1) */
#define Q_CONTROL_RX    2
#define Q_CONTROL_TX    3
#define Q_PORT_TX       (2 * (PORT + 1) + 1)
#define QUEUE_MAX       256 /* the largest ring a queue's area below holds */
#define QUEUE_AREA      (3 * 4096)
#define DESC_WRITE      2 /* VRING_DESC_F_WRITE: the device writes the buffer */
#define AVAIL_NO_IRQ    1 /* VRING_AVAIL_F_NO_INTERRUPT: we poll */
#define CONTROL_BUFS    8
#define CONTROL_LEN     64
#define LINE_MAX        2048
/* How long a step of the handshake may take before the 16550 is used
 * instead: TSC ticks (the TSC is not measured yet; 2^32 is 1 to 4 s at the
 * rates met here). The device answers within microseconds when it answers
 * at all. Not a count of PAUSE loops: under TCG a PAUSE leaves the
 * translated code, and 50 million took more than a minute. */
#define HANDSHAKE_TICKS (1ull << 32)

struct vring_desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};

struct control {
    uint32_t id;
    uint16_t event;
    uint16_t value;
};

struct queue {
    uint16_t index, size, next_avail, last_used;
    struct vring_desc *desc;
    volatile uint16_t *avail_idx, *avail_ring;
    volatile uint16_t *used_idx;
    volatile uint32_t *used_ring; /* {id, len} pairs */
};

static uint8_t areas[3][QUEUE_AREA] __aligned(4096);
static struct queue control_rx, control_tx, port_tx;
static uint8_t control_in[CONTROL_BUFS][CONTROL_LEN];
static struct control control_out;
static char line[LINE_MAX];
static uint16_t io_base;

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

/* Give queue `index` the ring in `area`; false if its size does not fit. */
static bool queue_setup(struct queue *q, uint16_t base, uint16_t index, uint8_t *area)
{
    outw(base + VP_QUEUE_SELECT, index);
    uint16_t size = inw(base + VP_QUEUE_SIZE);
    if (size == 0 || size > QUEUE_MAX || (size & (size - 1)))
        return false;
    memset(area, 0, QUEUE_AREA);
    uint64_t avail = 16u * size;
    uint64_t used = (avail + 6 + 2u * size + 4095) & ~4095ull;
    q->index = index;
    q->size = size;
    q->next_avail = 0;
    q->last_used = 0;
    q->desc = (struct vring_desc *)area;
    area[avail] = AVAIL_NO_IRQ;
    q->avail_idx = (volatile uint16_t *)(area + avail + 2);
    q->avail_ring = (volatile uint16_t *)(area + avail + 4);
    q->used_idx = (volatile uint16_t *)(area + used + 2);
    q->used_ring = (volatile uint32_t *)(area + used + 4);
    outl(base + VP_QUEUE_PFN, (uint32_t)((uintptr_t)area >> 12));
    return true;
}

/* Offer descriptor `d` (one buffer) to the device; no notification. */
static void queue_post(struct queue *q, uint16_t d, const void *buf, uint32_t len, uint16_t flags)
{
    q->desc[d].addr = (uint64_t)(uintptr_t)buf;
    q->desc[d].len = len;
    q->desc[d].flags = flags;
    q->desc[d].next = 0;
    q->avail_ring[q->next_avail % q->size] = d;
    __asm__ volatile("" ::: "memory"); /* the entry before the index (x86 keeps stores in order) */
    *q->avail_idx = ++q->next_avail;
}

static void queue_notify(uint16_t base, struct queue *q)
{
    __asm__ volatile("" ::: "memory");
    outw(base + VP_QUEUE_NOTIFY, q->index);
}

/* Until the device has used every buffer offered on `q`; `ticks` bounds
 * the wait (0: none). False if it ran out. */
static bool queue_wait(struct queue *q, uint64_t ticks)
{
    uint64_t start = rdtsc();

    while (*q->used_idx != q->next_avail) {
        if (ticks && rdtsc() - start > ticks)
            return false;
        __asm__ volatile("pause");
    }
    return true;
}

/* One control message to the device, back once it has taken it. */
static bool control_send(uint16_t base, uint32_t id, uint16_t event, uint16_t value)
{
    control_out = (struct control){id, event, value};
    queue_post(&control_tx, 0, &control_out, sizeof(control_out), 0);
    queue_notify(base, &control_tx);
    return queue_wait(&control_tx, HANDSHAKE_TICKS);
}

/*
 * The next control message from the device, into `*msg`; false if none
 * came within the bound. The buffer goes back to the device at once.
 */
static bool control_receive(uint16_t base, struct control *msg)
{
    struct queue *q = &control_rx;
    uint64_t start = rdtsc();

    while (*q->used_idx == q->last_used) {
        if (rdtsc() - start > HANDSHAKE_TICKS)
            return false;
        __asm__ volatile("pause");
    }
    __asm__ volatile("" ::: "memory");
    unsigned slot = q->last_used++ % q->size;
    uint16_t d = (uint16_t)q->used_ring[2 * slot];
    uint32_t len = q->used_ring[2 * slot + 1];
    if (d >= CONTROL_BUFS)
        return false;
    memset(msg, 0xff, sizeof(*msg));
    if (len >= sizeof(*msg))
        memcpy(msg, control_in[d], sizeof(*msg));
    queue_post(q, d, control_in[d], CONTROL_LEN, DESC_WRITE);
    queue_notify(base, q);
    return true;
}

/* The handshake up to a port both sides have open; false if it fails. */
static bool port_open(uint16_t base)
{
    struct control msg;
    bool added = false, host_open = false;

    if (!control_send(base, 0, EV_DEVICE_READY, 1))
        return false;
    /* The device announces its ports (PORT_ADD), says for ours whether the
     * host side is connected once we say it is ready (PORT_OPEN), and may
     * send more (a name, a console flag) that we do not need. */
    while (!host_open) {
        if (!control_receive(base, &msg))
            return false;
        if (msg.id != PORT)
            continue;
        if (msg.event == EV_PORT_ADD && !added) {
            added = true;
            if (!control_send(base, PORT, EV_PORT_READY, 1))
                return false;
        } else if (msg.event == EV_PORT_OPEN) {
            host_open = msg.value == 1;
            if (!host_open)
                return false;
        }
    }
    return control_send(base, PORT, EV_PORT_OPEN, 1);
}

/* Found and set up at once: a port that is detected can be written to. */
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
    if (!(inl(base + VP_DEVICE_FEATURES) & F_MULTIPORT) || inl(base + VP_MAX_NR_PORTS) <= PORT)
        goto fail;
    outl(base + VP_GUEST_FEATURES, F_MULTIPORT);
    if (!queue_setup(&control_rx, base, Q_CONTROL_RX, areas[0]) ||
        !queue_setup(&control_tx, base, Q_CONTROL_TX, areas[1]) ||
        !queue_setup(&port_tx, base, Q_PORT_TX, areas[2]))
        goto fail;
    for (uint16_t d = 0; d < CONTROL_BUFS && d < control_rx.size; d++)
        queue_post(&control_rx, d, control_in[d], CONTROL_LEN, DESC_WRITE);
    outb(base + VP_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_DRIVER_OK);
    queue_notify(base, &control_rx);
    if (!port_open(base))
        goto fail;
    io_base = base;
    return true;
fail:
    outb(base + VP_STATUS, 0); /* reset: the device forgets our rings */
    return false;
}

/*
 * One buffer per call, and back only once the device has used it: the
 * buffer is ours again, what a probe prints is out before the probe can
 * crash its level, and nothing is in flight when the kernel ends. The wait
 * has no bound: a throttled port (the line below is slow) is the device
 * doing its job, and a level that never drains is the harness's timeout.
 */
void virtcon_write(const uint8_t *s, size_t n)
{
    while (n && io_base) {
        size_t count = n < LINE_MAX ? n : LINE_MAX;
        memcpy(line, s, count);
        queue_post(&port_tx, 0, line, (uint32_t)count, 0);
        queue_notify(io_base, &port_tx);
        queue_wait(&port_tx, 0);
        s += count;
        n -= count;
    }
}

void virtcon_putc(uint8_t c) { virtcon_write(&c, 1); }
