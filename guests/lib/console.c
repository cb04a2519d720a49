/* SPDX-License-Identifier: MIT */
/*
 * The console: one sink that every record goes to. A sink is a name and a
 * function that writes a byte; the first one found present wins.
 */
#include "kernel.h"

struct sink {
    const char *name;       /* the HELLO console= value */
    bool (*detect)(void);
    void (*init)(void);
    void (*putc)(uint8_t c);
    void (*drain)(void);
};

/* ---- 16550 UARTs at COM1 and COM2 --------------------------------------- */
/*
 * COM1 (0x3f8) is the serial port of QEMU, Bochs, OVMF, ESXi ("serial port
 * 1") and Hyper-V (Set-VMComPort -Number 1; a generation 2 VM shows the
 * port only while a named pipe is attached). COM2 (0x2f8) is the second
 * port of the same machines, used only when COM1 is absent.
 */

#define COM1 0x3f8
#define COM2 0x2f8
#define UART_THR 0 /* transmit holding register (DLAB = 0) */
#define UART_DLL 0 /* divisor latch, low (DLAB = 1) */
#define UART_IER 1
#define UART_DLM 1
#define UART_FCR 2
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

static void uart_init(uint16_t base)
{
    outb(base + UART_IER, 0x00); /* no interrupts: the kernel polls */
    outb(base + UART_LCR, 0x80); /* DLAB */
    outb(base + UART_DLL, 1);    /* 115200 = 1.8432 MHz / 16 / 1 */
    outb(base + UART_DLM, 0);
    outb(base + UART_LCR, 0x03); /* 8 data bits, no parity, 1 stop bit */
    outb(base + UART_FCR, 0x07); /* FIFO on, both FIFOs cleared */
    outb(base + UART_MCR, 0x03); /* DTR, RTS; OUT2 off: no IRQ */
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

static bool com1_detect(void) { return uart_detect(COM1); }
static void com1_init(void) { uart_init(COM1); }
static void com1_putc(uint8_t c) { uart_putc(COM1, c); }
static void com1_drain(void) { uart_wait(COM1, LSR_TEMT); }

static bool com2_detect(void) { return uart_detect(COM2); }
static void com2_init(void) { uart_init(COM2); }
static void com2_putc(uint8_t c) { uart_putc(COM2, c); }
static void com2_drain(void) { uart_wait(COM2, LSR_TEMT); }

/* ---- port 0xE9 (Bochs, QEMU's isa-debugcon, Xen HVM/PVH) ---------------- */
/* A PVH guest of Xen has no UART unless one is configured: Xen prints what
 * the guest writes to 0xE9 on its own console, `(d1) ` before each line. */

static bool e9_detect(void)
{
    return true; /* writes cannot be checked: the last resort */
}

static void e9_init(void) {}
static void e9_putc(uint8_t c) { outb(0xe9, c); }
static void e9_drain(void) {}

static const struct sink sinks[] = {
    { "com1", com1_detect, com1_init, com1_putc, com1_drain },
    { "com2", com2_detect, com2_init, com2_putc, com2_drain },
    { "e9", e9_detect, e9_init, e9_putc, e9_drain },
};

static const struct sink *sink;

void console_init(void)
{
    for (size_t i = 0; i < ARRAY_SIZE(sinks); i++) {
        if (sinks[i].detect()) {
            sink = &sinks[i];
            sink->init();
            return;
        }
    }
}

const char *console_name(void)
{
    return sink ? sink->name : "none";
}

void console_write(const char *s, size_t n)
{
    /* Before console_init() (a fault that early), try COM1 as it is. */
    void (*putc)(uint8_t) = sink ? sink->putc : com1_putc;

    while (n--)
        putc((uint8_t)*s++);
}

void console_drain(void)
{
    if (sink)
        sink->drain();
}
