/* SPDX-License-Identifier: MIT */
/* kmain(), and the ways the kernel stops. */
#include "kernel.h"

void kmain(int boot_kind, uint32_t boot_data);
void kmain(int boot_kind, uint32_t boot_data)
{
    console_init();
    desc_load();

    /* Interrupts stay off for the whole boot; mask the 8259s as well so
     * that a probe that sets IF sees no stray legacy IRQ. The local APIC
     * is left as the firmware set it: Bochs cannot re-enable one that was
     * disabled through IA32_APIC_BASE. */
    outb(0x21, 0xff);
    outb(0xa1, 0xff);

    boot_info_parse(boot_kind, boot_data);
    console_select(boot_info.cmdline);
    mm_init();
    run_probes();
    machine_exit();
}

/* protocol.md, "Ending the boot". */
void machine_exit(void)
{
    console_drain();
    for (const char *s = "Shutdown"; *s; s++)
        outb(0x8900, (uint8_t)*s); /* Bochs: ends the simulation */
    outb(0xf4, 0x31);              /* QEMU isa-debug-exit: exit status 0x63 */
    for (;;)
        __asm__ volatile("cli; hlt");
}

void raw_print(const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    console_write(buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

/*
 * The kernel cannot go on: say why in a NOTE (attributed to the probe in
 * flight, if any) and end the boot. No END follows, so the harness sees
 * the console end with the probe unfinished: CRASH.
 */
void panic(const char *fmt, ...)
{
    static int panicking;
    struct record r;
    char msg[DETAIL_MAX];
    va_list ap;

    __asm__ volatile("cli");
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (panicking++) {
        raw_print("\r\nnvct: panic while panicking: %s\r\n", msg);
    } else {
        record_begin(&r, "NOTE");
        record_field(&r, "probe", current_run ? current_run->probe->id : "-", true);
        record_fieldf(&r, "msg", "kernel panic: %s", msg);
        record_emit(&r);
    }
    machine_exit();
}
