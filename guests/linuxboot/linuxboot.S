/* SPDX-License-Identifier: MIT */
/*
 * linuxboot: a Multiboot 1 program that starts a Linux bzImage which is
 * already in RAM (Bochs's `optramimage` put it and the initrd there before
 * the first instruction), so that GRUB reads nothing large through the
 * BIOS. GRUB loads this small image; linuxboot.c builds the zero page and
 * this file enters the kernel by the 32-bit boot protocol.
 */
#define MB1_MAGIC  0x1BADB002
#define MB1_FLAGS  0x00000003   /* page-aligned modules, memory information */

    .section .multiboot, "a"
    .balign 4
    .long MB1_MAGIC
    .long MB1_FLAGS
    .long -(MB1_MAGIC + MB1_FLAGS)

    .text
    .code32
    .globl start
start:
    cli
    mov $stack_top, %esp
    push %ebx                   /* the multiboot information */
    push %eax                   /* the loader's magic */
    call linuxboot_main         /* returns only when it could not boot */
1:  hlt
    jmp 1b

/* enter_linux(entry, zero_page): the 32-bit boot protocol (Linux's
 * Documentation/arch/x86/boot.rst): flat segments __BOOT_CS = 0x10 and
 * __BOOT_DS = 0x18, interrupts off, paging off, %esi the zero page,
 * %ebp, %edi and %ebx zero. */
    .globl enter_linux
enter_linux:
    mov 4(%esp), %eax
    mov 8(%esp), %esi
    lgdt gdt_desc
    ljmp $0x10, $2f
2:  mov $0x18, %ecx
    mov %ecx, %ds
    mov %ecx, %es
    mov %ecx, %ss
    mov %ecx, %fs
    mov %ecx, %gs
    xor %ebp, %ebp
    xor %edi, %edi
    xor %ebx, %ebx
    jmp *%eax

    .section .rodata
    .balign 8
gdt:
    .quad 0
    .quad 0
    .quad 0x00cf9a000000ffff    /* 0x10: code, base 0, 4 GiB, 32-bit */
    .quad 0x00cf92000000ffff    /* 0x18: data, base 0, 4 GiB */
gdt_end:
gdt_desc:
    .word gdt_end - gdt - 1
    .long gdt

    .bss
    .balign 16
    .space 8192
stack_top:
