/* SPDX-License-Identifier: MIT */
/*
 * The console: one sink that every record goes to. A sink is a name and a
 * function that writes a byte; the first one found present wins.
 */
#include "kernel.h"

struct sink {
    const char *name; /* the HELLO console= value */
    bool (*detect)(void);
    void (*init)(void);
    void (*putc)(uint8_t c);
    void (*write)(const uint8_t *s, size_t n); /* many bytes at once; NULL: putc each */
    void (*drain)(void);
};

/* ---- 16550 UARTs at COM1 and COM2 --------------------------------------- */
/*
 * COM1 (0x3f8) is the serial port of QEMU, Bochs, OVMF, ESXi ("serial port
 * 1") and Hyper-V (Set-VMComPort -Number 1; a generation 2 VM shows the
 * port only while a named pipe is attached). COM2 (0x2f8) is the second
 * port of the same machines, used only when COM1 is absent.
 */

#define COM1     0x3f8
#define COM2     0x2f8
#define UART_THR 0 /* transmit holding register (DLAB = 0) */
#define UART_DLL 0 /* divisor latch, low (DLAB = 1) */
#define UART_IER 1
#define UART_DLM 1
#define UART_FCR 2
#define UART_IIR 2 /* read: IIR[7:6] = 11 when the FIFOs are on (a 16550A) */
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define UART_SCR 7
#define LSR_THRE 0x20 /* transmit holding register empty */
#define LSR_TEMT 0x40 /* transmitter empty: the last bit has left */

/* A byte takes 87 us at 115200 baud; this bound only matters if the UART
 * is broken, when losing output beats hanging forever. */
#define UART_POLL_LIMIT 10000000u

static bool uart_detect(uint16_t base)
{
    /* The scratch register holds what is written to it on a 16450/16550;
     * with no UART, the port reads back 0xff. */
    outb(base + UART_SCR, 0x5a);
    if (inb(base + UART_SCR) != 0x5a)
        return false;
    outb(base + UART_SCR, 0xa5);
    return inb(base + UART_SCR) == 0xa5;
}

/* Bytes a UART takes at once once THRE says it is empty: its transmit FIFO
 * (16 on a 16550A), else the one holding register. Per port, set by init. */
static unsigned com1_burst = 1, com2_burst = 1;

static unsigned uart_init(uint16_t base)
{
    outb(base + UART_IER, 0x00); /* no interrupts: the kernel polls */
    outb(base + UART_LCR, 0x80); /* DLAB */
    outb(base + UART_DLL, 1);    /* 115200 = 1.8432 MHz / 16 / 1 */
    outb(base + UART_DLM, 0);
    outb(base + UART_LCR, 0x03); /* 8 data bits, no parity, 1 stop bit */
    outb(base + UART_FCR, 0x07); /* FIFO on, both FIFOs cleared */
    outb(base + UART_MCR, 0x03); /* DTR, RTS; OUT2 off: no IRQ */
    return (inb(base + UART_IIR) & 0xc0) == 0xc0 ? 16 : 1;
}

static void uart_wait(uint16_t base, uint8_t bit)
{
    for (unsigned i = 0; i < UART_POLL_LIMIT; i++)
        if (inb(base + UART_LSR) & bit)
            return;
}

/* Poll THRE before every byte: some models (Bochs) drop bytes written to a
 * full transmitter rather than queueing them. */
static void uart_putc(uint16_t base, uint8_t c)
{
    uart_wait(base, LSR_THRE);
    outb(base + UART_THR, c);
}

/*
 * A line in bursts: wait for THRE (in FIFO mode: the transmit FIFO is
 * empty), then fill the FIFO with one REP OUTSB. Two port accesses per
 * burst instead of two per byte: each is an exit where a hypervisor
 * emulates the UART, and under nesting an exit costs a trip through every
 * level below (at L3 about 15 ms a byte with a poll per byte).
 */
static void uart_write(uint16_t base, unsigned burst, const uint8_t *s, size_t n)
{
    while (n) {
        size_t count = n < burst ? n : burst;
        n -= count;
        uart_wait(base, LSR_THRE);
        __asm__ volatile("rep outsb"
                         : "+S"(s), "+c"(count)
                         : "d"((uint16_t)(base + UART_THR))
                         : "memory");
    }
}

static bool com1_detect(void) { return uart_detect(COM1); }
static void com1_init(void) { com1_burst = uart_init(COM1); }
static void com1_putc(uint8_t c) { uart_putc(COM1, c); }
static void com1_write(const uint8_t *s, size_t n) { uart_write(COM1, com1_burst, s, n); }
static void com1_drain(void) { uart_wait(COM1, LSR_TEMT); }

static bool com2_detect(void) { return uart_detect(COM2); }
static void com2_init(void) { com2_burst = uart_init(COM2); }
static void com2_putc(uint8_t c) { uart_putc(COM2, c); }
static void com2_write(const uint8_t *s, size_t n) { uart_write(COM2, com2_burst, s, n); }
static void com2_drain(void) { uart_wait(COM2, LSR_TEMT); }

/* ---- port 0xE9 (Bochs, QEMU's isa-debugcon, Xen HVM/PVH) ---------------- */
/* A PVH guest of Xen has no UART unless one is configured: Xen prints what
 * the guest writes to 0xE9 on its own console, `(d1) ` before each line. */

static bool e9_detect(void) { return true; /* writes cannot be checked: the last resort */ }

static void e9_init(void) {}
static void e9_putc(uint8_t c) { outb(0xe9, c); }
static void e9_drain(void) {}

/* ---- the Xen console (a PVH or HVM guest of Xen; console=xen) ----------- */
/*
 * The domain's console ring (xen/include/public/io/console.h), drained by
 * xenconsoled in dom0 into a pty the toolstack can read: lossless, since
 * the guest waits while the ring is full, and printed whatever Xen's log
 * levels are. Only on request (console=xen), never detected: under Xen the
 * harness may read port 0xE9 on Xen's own console instead.
 *
 * Found through the hypercall page (CPUID leaf base+2: the MSR that asks
 * Xen to write it), then HVMOP_get_param for the ring's frame and its
 * event channel (xen/include/public/hvm/{hvm_op,params}.h).
 */

#define XEN_HYPERCALL_EVENT_CHANNEL_OP 32
#define XEN_HYPERCALL_HVM_OP           34
#define XEN_HVMOP_GET_PARAM            1
#define XEN_EVTCHNOP_SEND              4
#define XEN_DOMID_SELF                 0x7ff0
#define XEN_HVM_PARAM_CONSOLE_PFN      17
#define XEN_HVM_PARAM_CONSOLE_EVTCHN   18
#define XEN_CONSOLE_SPIN_LIMIT         100000000u /* give up on a ring nobody drains */

struct xen_console_ring {
    char in[1024];
    char out[2048];
    uint32_t in_cons, in_prod;
    uint32_t out_cons, out_prod;
};

static uint8_t xen_hypercall_page[4096] __aligned(4096);
static volatile struct xen_console_ring *xen_ring;
static uint32_t xen_port;

static long xen_hypercall2(unsigned op, uint64_t a1, uint64_t a2)
{
    register uint64_t rdi __asm__("rdi") = a1;
    register uint64_t rsi __asm__("rsi") = a2;
    long ret;

    /* The page holds one 32-byte stub per hypercall; arguments in RDI, RSI,
     * RDX, R10, R8; Xen may clobber the argument registers. */
    __asm__ volatile("call *%[stub]"
                     : "=a"(ret), "+r"(rdi), "+r"(rsi)
                     : [stub] "r"(xen_hypercall_page + op * 32)
                     : "rcx", "rdx", "r8", "r10", "r11", "memory");
    return ret;
}

static uint32_t xen_cpuid_base(void)
{
    for (uint32_t base = 0x40000000; base < 0x40010000; base += 0x100) {
        struct cpuid r = cpuid(base, 0);
        /* "XenVMMXenVMM" in EBX, ECX, EDX */
        if (r.b == 0x566e6558 && r.c == 0x65584d4d && r.d == 0x4d4d566e && r.a >= base + 2)
            return base;
    }
    return 0;
}

static bool xen_get_param(uint32_t index, uint64_t *value)
{
    struct {
        uint16_t domid;
        uint16_t pad;
        uint32_t index;
        uint64_t value;
    } param = {XEN_DOMID_SELF, 0, index, 0};

    if (xen_hypercall2(XEN_HYPERCALL_HVM_OP, XEN_HVMOP_GET_PARAM, (uint64_t)(uintptr_t)&param) != 0)
        return false;
    *value = param.value;
    return true;
}

static void xen_notify(void)
{
    struct {
        uint32_t port;
    } send = {xen_port};
    xen_hypercall2(XEN_HYPERCALL_EVENT_CHANNEL_OP, XEN_EVTCHNOP_SEND, (uint64_t)(uintptr_t)&send);
}

static bool xen_detect(void)
{
    uint32_t base = xen_cpuid_base();
    if (!base)
        return false;
    struct cpuid r = cpuid(base + 2, 0);
    if (r.a < 1)
        return false;
    /* The page's physical address: the kernel runs identity-mapped. */
    if (wrmsr_safe(r.b, (uint64_t)(uintptr_t)xen_hypercall_page) != NO_FAULT)
        return false;
    uint64_t pfn, port;
    if (!xen_get_param(XEN_HVM_PARAM_CONSOLE_PFN, &pfn) || !pfn || pfn >= (1ull << 20))
        return false; /* no ring, or one above the 4 GiB the identity map covers */
    if (!xen_get_param(XEN_HVM_PARAM_CONSOLE_EVTCHN, &port))
        return false;
    xen_ring = (volatile struct xen_console_ring *)(uintptr_t)(pfn << 12);
    xen_port = (uint32_t)port;
    return true;
}

static void xen_init(void) {}

static void xen_putc(uint8_t c)
{
    uint32_t prod = xen_ring->out_prod;

    for (unsigned spins = 0; prod - xen_ring->out_cons >= sizeof(xen_ring->out); spins++) {
        if (spins % 1024 == 0)
            xen_notify();
        if (spins > XEN_CONSOLE_SPIN_LIMIT)
            return;
        __asm__ volatile("pause");
    }
    xen_ring->out[prod % sizeof(xen_ring->out)] = (char)c;
    __asm__ volatile("" ::: "memory"); /* the byte before the index (x86 keeps stores in order) */
    xen_ring->out_prod = prod + 1;
    if (c == '\n')
        xen_notify();
}

/* Until xenconsoled has taken every byte: the domain may end right after. */
static void xen_drain(void)
{
    xen_notify();
    for (unsigned spins = 0; xen_ring->out_cons != xen_ring->out_prod; spins++) {
        if (spins > XEN_CONSOLE_SPIN_LIMIT)
            return;
        if (spins % 1024 == 0)
            xen_notify();
        __asm__ volatile("pause");
    }
}

/* ---- a virtio serial port (lib/virtcon.c) ------------------------------ */
/* First when present: under nesting a 16550 costs an exit per byte or per
 * burst through every level below; the port costs one per line. */

static void virtcon_init(void) {}  /* detection set it up */
static void virtcon_drain(void) {} /* a write returns once the device has the bytes */

struct sink_entry {
    struct sink sink;
    bool detected; /* found by console_init(); else only by console=NAME */
};

static const struct sink_entry sinks[] = {
    {{"virtio", virtcon_detect, virtcon_init, virtcon_putc, virtcon_write, virtcon_drain}, true},
    {{"com1", com1_detect, com1_init, com1_putc, com1_write, com1_drain}, true},
    {{"com2", com2_detect, com2_init, com2_putc, com2_write, com2_drain}, true},
    {{"e9", e9_detect, e9_init, e9_putc, NULL, e9_drain}, true},
    {{"xen", xen_detect, xen_init, xen_putc, NULL, xen_drain}, false},
};

static const struct sink *sink;

void console_init(void)
{
    for (size_t i = 0; i < ARRAY_SIZE(sinks); i++) {
        if (sinks[i].detected && sinks[i].sink.detect()) {
            sink = &sinks[i].sink;
            sink->init();
            return;
        }
    }
}

/* console=NAME on the command line: that sink, if it is there; else the
 * one console_init() found stays. */
void console_select(const char *cmdline)
{
    char name[16];

    if (!cmdline_get(cmdline, "console", name, sizeof(name)))
        return;
    for (size_t i = 0; i < ARRAY_SIZE(sinks); i++) {
        if (strcmp(sinks[i].sink.name, name) == 0 && sinks[i].sink.detect()) {
            if (sink)
                sink->drain();
            sink = &sinks[i].sink;
            sink->init();
            return;
        }
    }
}

const char *console_name(void) { return sink ? sink->name : "none"; }

void console_write(const char *s, size_t n)
{
    /* Before console_init() (a fault that early), try COM1 as it is. */
    void (*putc)(uint8_t) = sink ? sink->putc : com1_putc;

    if (sink && sink->write) {
        sink->write((const uint8_t *)s, n);
        return;
    }
    while (n--)
        putc((uint8_t)*s++);
}

void console_drain(void)
{
    if (sink)
        sink->drain();
}
