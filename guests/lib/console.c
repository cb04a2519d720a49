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

/* ---- 16550 UART at COM1 ------------------------------------------------- */

#define COM1 0x3f8
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

static bool com1_detect(void)
{
    /* The scratch register holds what is written to it on a 16450/16550;
     * with no UART, the port reads back 0xff. */
    outb(COM1 + UART_SCR, 0x5a);
    if (inb(COM1 + UART_SCR) != 0x5a)
        return false;
    outb(COM1 + UART_SCR, 0xa5);
    return inb(COM1 + UART_SCR) == 0xa5;
}

static void com1_init(void)
{
    outb(COM1 + UART_IER, 0x00); /* no interrupts: the kernel polls */
    outb(COM1 + UART_LCR, 0x80); /* DLAB */
    outb(COM1 + UART_DLL, 1);    /* 115200 = 1.8432 MHz / 16 / 1 */
    outb(COM1 + UART_DLM, 0);
    outb(COM1 + UART_LCR, 0x03); /* 8 data bits, no parity, 1 stop bit */
    outb(COM1 + UART_FCR, 0x07); /* FIFO on, both FIFOs cleared */
    outb(COM1 + UART_MCR, 0x03); /* DTR, RTS; OUT2 off: no IRQ */
}

static void com1_wait(uint8_t bit)
{
    for (unsigned i = 0; i < UART_POLL_LIMIT; i++)
        if (inb(COM1 + UART_LSR) & bit)
            return;
}

/* Poll THRE before every byte: some models (Bochs) drop bytes written to a
 * full transmitter rather than queueing them. */
static void com1_putc(uint8_t c)
{
    com1_wait(LSR_THRE);
    outb(COM1 + UART_THR, c);
}

static void com1_drain(void)
{
    com1_wait(LSR_TEMT);
}

/* ---- port 0xE9 (Bochs, QEMU's isa-debugcon, Xen HVM/PVH) ---------------- */

static bool e9_detect(void)
{
    return true; /* writes cannot be checked: the last resort */
}

static void e9_init(void) {}
static void e9_putc(uint8_t c) { outb(0xe9, c); }
static void e9_drain(void) {}

static const struct sink sinks[] = {
    { "com1", com1_detect, com1_init, com1_putc, com1_drain },
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
