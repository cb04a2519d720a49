/* SPDX-License-Identifier: MIT */
/*
 * Boot entry: from 32-bit protected mode (multiboot 1 or PVH) to 64-bit
 * long mode with the low 4 GiB identity-mapped, then kmain() in C.
 *
 * Both loaders start us in flat 32-bit protected mode with paging off and
 * interrupts off, but with a GDT that may be gone by now (multiboot spec
 * 3.2: "the OS image must create its own GDT"), so the first thing done is
 * loading ours.
 */
#include "asm.h"

#define MB1_MAGIC       0x1BADB002
#define MB1_FLAGS       0x00000003  /* bit 0: page-align modules, bit 1: memory info */
#define MB1_BOOT_MAGIC  0x2BADB002  /* in EAX from a multiboot 1 loader */

#define XEN_ELFNOTE_PHYS32_ENTRY 18

/* ---- multiboot 1 header (multiboot spec 3.1.1) ------------------------ */
    .section .multiboot, "a"
    .balign 4
    .long MB1_MAGIC
    .long MB1_FLAGS
    .long -(MB1_MAGIC + MB1_FLAGS)

/* ---- PVH entry note (xen/include/public/elfnote.h) -------------------- */
    .section .note.Xen, "a", @note
    .balign 4
    .long 4                         /* namesz: "Xen\0" */
    .long 4                         /* descsz: a 32-bit physical address */
    .long XEN_ELFNOTE_PHYS32_ENTRY
    .asciz "Xen"
    .long pvh_entry
    .balign 4

/* ---- 32-bit entries ---------------------------------------------------- */
    .section .text.entry, "ax"
    .code32

/* Multiboot 1: EAX = 0x2BADB002, EBX = physical address of the info. */
GLOBAL(mb_entry)
    cli
    mov $BOOT_MULTIBOOT, %edi
    cmp $MB1_BOOT_MAGIC, %eax
    je 1f
    mov $BOOT_UNKNOWN, %edi
1:  mov %ebx, %esi
    jmp common32

/* PVH: EBX = physical address of struct hvm_start_info (magic first). */
GLOBAL(pvh_entry)
    cli
    mov $BOOT_UNKNOWN, %edi
    cmpl $PVH_START_MAGIC, (%ebx)
    jne 1f
    mov $BOOT_PVH, %edi
1:  mov %ebx, %esi
    jmp common32

/*
 * EDI = boot kind, ESI = boot info address: kept in boot_args (in .data,
 * which the .bss clearing spares) for kmain()'s two arguments.
 */
common32:
    cld
    lgdt gdt_ptr
    ljmp $KERNEL_CS32, $1f
1:  mov $KERNEL_DS, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    mov %eax, %fs
    mov %eax, %gs

    /*
     * Clear .bss: not every loader does (multiboot leaves it to the ELF
     * loader's good will). The boot info lies outside the image, so this
     * cannot destroy it.
     */
    mov %edi, boot_args
    mov %esi, boot_args + 4
    mov $__bss_start, %edi
    mov $__bss_end, %ecx
    sub %edi, %ecx
    shr $2, %ecx
    xor %eax, %eax
    rep stosl

    mov $boot_stack_top, %esp

    /* Long mode needs CPUID 0x80000001 EDX.LM (bit 29). */
    mov $0x80000000, %eax
    cpuid
    cmp $0x80000001, %eax
    jb no_long_mode
    mov $0x80000001, %eax
    cpuid
    bt $29, %edx
    jnc no_long_mode
    mov %edx, %ebp                  /* keep EDX.NX (bit 20) for EFER.NXE */

    /*
     * Identity map of 0..4 GiB with 2 MiB pages: one PML4 entry, four PDPT
     * entries, four page directories of 512 entries each (SDM Vol. 3A
     * 4.5, table 4-18). No 1 GiB pages: not every CPU model has them.
     * The top GiB (local APIC, I/O APIC, HPET, PCI holes) is mapped
     * uncacheable with PCD|PWT so that MMIO is never cached whatever the
     * MTRRs say.
     */
    mov $kernel_pml4, %edi
    lea (kernel_pdpt + PTE_P + PTE_W), %eax
    mov %eax, (%edi)

    mov $kernel_pdpt, %edi
    lea (kernel_pd + PTE_P + PTE_W), %eax
    mov $4, %ecx
1:  mov %eax, (%edi)
    add $4096, %eax
    add $8, %edi
    loop 1b

    mov $kernel_pd, %edi
    mov $(PTE_P + PTE_W + PTE_PS), %eax
    xor %ecx, %ecx
1:  mov %eax, (%edi,%ecx,8)
    cmp $1536, %ecx                 /* 1536 * 2 MiB = 3 GiB */
    jb 2f
    orl $(PTE_PWT + PTE_PCD), (%edi,%ecx,8)
2:  add $0x200000, %eax
    inc %ecx
    cmp $2048, %ecx
    jb 1b

    /* SDM Vol. 3A 10.8.5: PAE, CR3, EFER.LME, then CR0.PG. */
    mov %cr4, %eax
    or $CR4_PAE_BIT, %eax
    mov %eax, %cr4
    mov $kernel_pml4, %eax
    mov %eax, %cr3

    mov $MSR_EFER_NUM, %ecx
    rdmsr
    or $EFER_LME_BIT, %eax
    bt $20, %ebp                    /* CPUID 0x80000001 EDX.NX */
    jnc 1f
    or $EFER_NXE_BIT, %eax
1:  wrmsr

    /* PG | WP | NE | ET | MP | PE; caches on (CD = NW = 0). */
    mov $0x80010033, %eax
    mov %eax, %cr0

    ljmp $KERNEL_CS, $entry64

no_long_mode:
    /* Say so on COM1 without initialising it (best effort), then end the
     * boot as after END (protocol.md): there is nothing to run. */
    mov $no_lm_msg, %esi
    mov $0x3f8, %dx
    call out_string
    mov $shutdown_str, %esi
    mov $0x8900, %dx                /* Bochs */
    call out_string
    mov $0x31, %al
    out %al, $0xf4                  /* QEMU isa-debug-exit */
1:  cli
    hlt
    jmp 1b

/* Writes the string at ESI, byte by byte, to port DX. */
out_string:
    lodsb
    test %al, %al
    jz 1f
    out %al, %dx
    jmp out_string
1:  ret

    .code64
entry64:
    mov $KERNEL_DS, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    mov %eax, %fs
    mov %eax, %gs
    mov $boot_stack_top, %esp       /* zero-extends into RSP */
    xor %ebp, %ebp
    mov boot_args, %edi             /* kmain(boot kind, boot info) */
    mov boot_args + 4, %esi
    call kmain
1:  cli
    hlt
    jmp 1b

    .section .rodata
no_lm_msg:
    .asciz "nvct: CPUID 0x80000001 EDX.LM=0: no long mode, cannot run\r\n"
shutdown_str:
    .asciz "Shutdown"

    .section .data
    .balign 4
boot_args:
    .long 0, 0

    .section .bss
    .balign 4096
GLOBAL_DATA(kernel_pml4)
    .skip 4096
kernel_pdpt:
    .skip 4096
kernel_pd:
    .skip 4 * 4096
    .balign 16
GLOBAL_DATA(boot_stack)
    .skip BOOT_STACK_SIZE
GLOBAL_DATA(boot_stack_top)
