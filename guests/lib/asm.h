/* SPDX-License-Identifier: MIT */
/* Constants shared by the kernel's assembly and C files. */
#ifndef NVCT_ASM_H
#define NVCT_ASM_H

/* kmain()'s first argument: how the kernel was started. */
#define BOOT_UNKNOWN   0
#define BOOT_MULTIBOOT 1
#define BOOT_PVH       2

#define PVH_START_MAGIC 0x336ec578 /* struct hvm_start_info.magic */

#define BOOT_STACK_SIZE (64 * 1024)

/* Page-table entry bits (SDM Vol. 3A 4.5, tables 4-15..4-20). */
#define PTE_P   0x001
#define PTE_W   0x002
#define PTE_U   0x004
#define PTE_PWT 0x008
#define PTE_PCD 0x010
#define PTE_PS  0x080

#define CR4_PAE_BIT  0x20
#define MSR_EFER_NUM 0xc0000080
#define EFER_LME_BIT 0x100
#define EFER_NXE_BIT 0x800

#ifdef __ASSEMBLY__
/* Same values as nvct.h, which assembly cannot include. */
#define KERNEL_CS   0x08
#define KERNEL_DS   0x10
#define KERNEL_CS32 0x18

#define GLOBAL(name)       \
    .globl name;           \
    .type name, @function; \
    name:
#define GLOBAL_DATA(name) \
    .globl name;          \
    .type name, @object;  \
    name:
#endif

#endif
