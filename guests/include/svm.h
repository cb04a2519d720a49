/* SPDX-License-Identifier: MIT */
/*
 * nvct: AMD SVM (AMD-V) definitions and the SVM probe library.
 *
 * Layouts and numbers follow the AMD64 Architecture Programmer's Manual,
 * Vol. 2, chapter 15 and appendices B (VMCB layout) and C (SVM intercept
 * exit codes). Every field offset that a probe relies on is pinned with a
 * _Static_assert below, so that a typo in the structs breaks the build
 * instead of a probe.
 */
#ifndef NVCT_SVM_H
#define NVCT_SVM_H

#include "nvct.h"
#include "guest.h"

/* ---- CPUID ---------------------------------------------------------------- */

#define CPUID_80000001_ECX_SVM    BIT(2)  /* SVM */
#define CPUID_80000001_ECX_SKINIT BIT(12) /* SKINIT/STGI */

/* CPUID Fn8000_000A: EAX[7:0] SVM revision, EBX number of ASIDs, EDX: */
#define SVM_FEAT_NP             BIT(0)  /* nested paging */
#define SVM_FEAT_LBRV           BIT(1)  /* LBR virtualization */
#define SVM_FEAT_SVML           BIT(2)  /* SVM lock */
#define SVM_FEAT_NRIPS          BIT(3)  /* next_rip saved on #VMEXIT */
#define SVM_FEAT_TSC_RATE       BIT(4)  /* MSR TSC ratio */
#define SVM_FEAT_VMCB_CLEAN     BIT(5)  /* VMCB clean bits */
#define SVM_FEAT_FLUSH_BY_ASID  BIT(6)  /* TLB_CONTROL 3/7 */
#define SVM_FEAT_DECODE_ASSISTS BIT(7)  /* decode assists */
#define SVM_FEAT_PAUSE_FILTER   BIT(10) /* pause intercept filter */
#define SVM_FEAT_PAUSE_THRESH   BIT(12) /* pause filter threshold */
#define SVM_FEAT_AVIC           BIT(13) /* AMD virtual interrupt controller */
#define SVM_FEAT_VLS            BIT(15) /* virtualized VMSAVE/VMLOAD */
#define SVM_FEAT_VGIF           BIT(16) /* virtualized GIF */
#define SVM_FEAT_GMET           BIT(17) /* guest mode execute trap */
#define SVM_FEAT_X2AVIC         BIT(18) /* AVIC in x2APIC mode */
#define SVM_FEAT_SSS_CHECK      BIT(19) /* supervisor shadow stack restrictions */
#define SVM_FEAT_SPEC_CTRL      BIT(20) /* SPEC_CTRL virtualization */
#define SVM_FEAT_ROGPT          BIT(21) /* read-only guest page tables */
#define SVM_FEAT_HOST_MCE_OVR   BIT(23) /* host MCE override */
#define SVM_FEAT_TLBICTL        BIT(24) /* INVLPGB/TLBSYNC hypervisor enable */
#define SVM_FEAT_VNMI           BIT(25) /* virtual NMI */
#define SVM_FEAT_IBS_VIRT       BIT(26) /* IBS virtualization */
#define SVM_FEAT_EXTLVT_AVIC    BIT(27) /* extended LVT AVIC access change */
/* intercept checked before rAX #GP for VMRUN/VMLOAD/VMSAVE */
#define SVM_FEAT_VMCB_ADDR_CHK  BIT(28)
#define SVM_FEAT_BUS_LOCK_THR   BIT(29) /* bus lock threshold */
#define SVM_FEAT_IDLE_HLT       BIT(30) /* idle HLT intercept */

/* ---- MSRs ------------------------------------------------------------------ */

/* MSR_VM_CR (0xC0010114) and MSR_VM_HSAVE_PA (0xC0010117) are in nvct.h. */
#define MSR_TSC_RATIO     0xc0000104
#define MSR_SYSENTER_CS   0x00000174
#define MSR_SYSENTER_ESP  0x00000175
#define MSR_SYSENTER_EIP  0x00000176
#define MSR_IA32_DEBUGCTL 0x000001d9
#define MSR_IA32_PAT      0x00000277

#define VM_CR_DPD      BIT(0)
#define VM_CR_R_INIT   BIT(1)
#define VM_CR_DIS_A20M BIT(2)
#define VM_CR_LOCK     BIT(3)
#define VM_CR_SVMDIS   BIT(4)

/* ---- VMCB: control area (APM Vol. 2 Appendix B, Table B-1) ------------------ */

/* Intercept vector 3 (offset 0x0C). */
#define SVM_INTERCEPT_INTR          BIT(0)
#define SVM_INTERCEPT_NMI           BIT(1)
#define SVM_INTERCEPT_SMI           BIT(2)
#define SVM_INTERCEPT_INIT          BIT(3)
#define SVM_INTERCEPT_VINTR         BIT(4)
#define SVM_INTERCEPT_CR0_SEL_WRITE BIT(5) /* CR0 writes changing bits other than TS/MP */
#define SVM_INTERCEPT_IDTR_READ     BIT(6)
#define SVM_INTERCEPT_GDTR_READ     BIT(7)
#define SVM_INTERCEPT_LDTR_READ     BIT(8)
#define SVM_INTERCEPT_TR_READ       BIT(9)
#define SVM_INTERCEPT_IDTR_WRITE    BIT(10)
#define SVM_INTERCEPT_GDTR_WRITE    BIT(11)
#define SVM_INTERCEPT_LDTR_WRITE    BIT(12)
#define SVM_INTERCEPT_TR_WRITE      BIT(13)
#define SVM_INTERCEPT_RDTSC         BIT(14)
#define SVM_INTERCEPT_RDPMC         BIT(15)
#define SVM_INTERCEPT_PUSHF         BIT(16)
#define SVM_INTERCEPT_POPF          BIT(17)
#define SVM_INTERCEPT_CPUID         BIT(18)
#define SVM_INTERCEPT_RSM           BIT(19)
#define SVM_INTERCEPT_IRET          BIT(20)
#define SVM_INTERCEPT_INTN          BIT(21)
#define SVM_INTERCEPT_INVD          BIT(22)
#define SVM_INTERCEPT_PAUSE         BIT(23)
#define SVM_INTERCEPT_HLT           BIT(24)
#define SVM_INTERCEPT_INVLPG        BIT(25)
#define SVM_INTERCEPT_INVLPGA       BIT(26)
#define SVM_INTERCEPT_IOIO_PROT     BIT(27)
#define SVM_INTERCEPT_MSR_PROT      BIT(28)
#define SVM_INTERCEPT_TASK_SWITCH   BIT(29)
#define SVM_INTERCEPT_FERR_FREEZE   BIT(30)
#define SVM_INTERCEPT_SHUTDOWN      BIT(31)

/* Intercept vector 4 (offset 0x10). */
#define SVM_INTERCEPT_VMRUN            BIT(0)
#define SVM_INTERCEPT_VMMCALL          BIT(1)
#define SVM_INTERCEPT_VMLOAD           BIT(2)
#define SVM_INTERCEPT_VMSAVE           BIT(3)
#define SVM_INTERCEPT_STGI             BIT(4)
#define SVM_INTERCEPT_CLGI             BIT(5)
#define SVM_INTERCEPT_SKINIT           BIT(6)
#define SVM_INTERCEPT_RDTSCP           BIT(7)
#define SVM_INTERCEPT_ICEBP            BIT(8)
#define SVM_INTERCEPT_WBINVD           BIT(9)  /* WBINVD and WBNOINVD */
#define SVM_INTERCEPT_MONITOR          BIT(10) /* MONITOR/MONITORX */
#define SVM_INTERCEPT_MWAIT            BIT(11) /* MWAIT/MWAITX, unconditionally */
#define SVM_INTERCEPT_MWAIT_ARMED      BIT(12) /* MWAIT/MWAITX, if the monitor is armed */
#define SVM_INTERCEPT_XSETBV           BIT(13)
#define SVM_INTERCEPT_RDPRU            BIT(14)
#define SVM_INTERCEPT_EFER_WRITE_TRAP  BIT(15)
#define SVM_INTERCEPT_CR_WRITE_TRAP(n) BIT(16 + (n)) /* CR0..CR15 writes, trap-like */

/* Intercept vector 5 (offset 0x14). */
#define SVM_INTERCEPT_INVLPGB         BIT(0)
#define SVM_INTERCEPT_INVLPGB_ILLEGAL BIT(1)
#define SVM_INTERCEPT_INVPCID         BIT(2)
#define SVM_INTERCEPT_MCOMMIT         BIT(3)
#define SVM_INTERCEPT_TLBSYNC         BIT(4)
#define SVM_INTERCEPT_BUS_LOCK        BIT(5)
#define SVM_INTERCEPT_IDLE_HLT        BIT(6)

/* Bits of intercept_cr (offset 0x00) and intercept_dr (offset 0x04). */
#define SVM_INTERCEPT_CR_READ(n)  BIT(n)
#define SVM_INTERCEPT_CR_WRITE(n) BIT(16 + (n))
#define SVM_INTERCEPT_DR_READ(n)  BIT(n)
#define SVM_INTERCEPT_DR_WRITE(n) BIT(16 + (n))

/* TLB_CONTROL (offset 0x5C). */
#define TLB_CONTROL_DO_NOTHING       0
#define TLB_CONTROL_FLUSH_ALL        1
#define TLB_CONTROL_FLUSH_ASID       3
#define TLB_CONTROL_FLUSH_ASID_LOCAL 7

/* VINTR control (offset 0x60). */
#define V_TPR_MASK          0xffull
#define V_IRQ               BIT(8)
#define V_GIF               BIT(9)
#define V_NMI_PENDING       BIT(11)
#define V_NMI_BLOCKING      BIT(12)
#define V_INTR_PRIO_SHIFT   16
#define V_INTR_PRIO_MASK    (0xfull << 16)
#define V_IGN_TPR           BIT(20)
#define V_INTR_MASKING      BIT(24)
#define V_GIF_ENABLE        BIT(25)
#define V_NMI_ENABLE        BIT(26)
#define AVIC_ENABLE         BIT(31)
#define V_INTR_VECTOR_SHIFT 32
#define V_INTR_VECTOR_MASK  (0xffull << 32)

/* Interrupt shadow (offset 0x68). */
#define SVM_INTERRUPT_SHADOW BIT(0)
#define SVM_GUEST_INTR_MASK  BIT(1)

/* NP/SEV control (offset 0x90). */
#define SVM_NESTED_CTL_NP_ENABLE     BIT(0)
#define SVM_NESTED_CTL_SEV_ENABLE    BIT(1)
#define SVM_NESTED_CTL_SEV_ES_ENABLE BIT(2)
#define SVM_NESTED_CTL_GMET          BIT(3)
#define SVM_NESTED_CTL_SSS_CHECK     BIT(4)
#define SVM_NESTED_CTL_VTE           BIT(5)
#define SVM_NESTED_CTL_ROGPT         BIT(6)
#define SVM_NESTED_CTL_INVLPGB_EN    BIT(7)

/* Virtualization extensions (offset 0xB8). */
#define SVM_VIRT_EXT_LBRV BIT(0)
#define SVM_VIRT_EXT_VLS  BIT(1) /* virtualized VMSAVE/VMLOAD */
#define SVM_VIRT_EXT_IBS  BIT(2)

/* VMCB clean bits (offset 0xC0). */
#define VMCB_CLEAN_I    BIT(0) /* intercepts, TSC offset, pause filter */
#define VMCB_CLEAN_IOPM BIT(1) /* IOPM_BASE, MSRPM_BASE */
#define VMCB_CLEAN_ASID BIT(2)
#define VMCB_CLEAN_TPR  BIT(3) /* V_TPR, V_IRQ, V_INTR_* */
#define VMCB_CLEAN_NP   BIT(4) /* NP enable, nCR3, gPAT */
#define VMCB_CLEAN_CRX  BIT(5) /* CR0, CR3, CR4, EFER */
#define VMCB_CLEAN_DRX  BIT(6) /* DR6, DR7 */
#define VMCB_CLEAN_DT   BIT(7) /* GDTR, IDTR */
#define VMCB_CLEAN_SEG  BIT(8) /* CS, DS, SS, ES, CPL */
#define VMCB_CLEAN_CR2  BIT(9)
#define VMCB_CLEAN_LBR  BIT(10) /* DbgCtlMsr, br_from/to, lastint_from/to */
#define VMCB_CLEAN_AVIC BIT(11)
#define VMCB_CLEAN_CET  BIT(12)

/* EVENTINJ (offset 0xA8) and EXITINTINFO (offset 0x88): same format. */
#define SVM_EVTINJ_VEC_MASK   0xffull
#define SVM_EVTINJ_TYPE_SHIFT 8
#define SVM_EVTINJ_TYPE_MASK  (7ull << 8)
#define SVM_EVTINJ_TYPE_INTR  (0ull << 8)
#define SVM_EVTINJ_TYPE_NMI   (2ull << 8)
#define SVM_EVTINJ_TYPE_EXEPT (3ull << 8)
#define SVM_EVTINJ_TYPE_SOFT  (4ull << 8)
#define SVM_EVTINJ_VALID_ERR  BIT(11)
#define SVM_EVTINJ_VALID      BIT(31)
#define SVM_EVTINJ_ERR_SHIFT  32

/* EXITINFO1 of an IOIO intercept. */
#define SVM_IOIO_TYPE_IN    BIT(0)
#define SVM_IOIO_STR        BIT(2)
#define SVM_IOIO_REP        BIT(3)
#define SVM_IOIO_SZ8        BIT(4)
#define SVM_IOIO_SZ16       BIT(5)
#define SVM_IOIO_SZ32       BIT(6)
#define SVM_IOIO_A16        BIT(7)
#define SVM_IOIO_A32        BIT(8)
#define SVM_IOIO_A64        BIT(9)
#define SVM_IOIO_SEG_SHIFT  10
#define SVM_IOIO_PORT_SHIFT 16

/* EXITINFO1 of a #NPF: a #PF-style error code, plus: */
#define SVM_NPF_P           BIT(0)
#define SVM_NPF_RW          BIT(1)
#define SVM_NPF_US          BIT(2)
#define SVM_NPF_RSV         BIT(3)
#define SVM_NPF_ID          BIT(4)
#define SVM_NPF_SS          BIT(6)
#define SVM_NPF_GUEST_FINAL BIT(32) /* fault on the final guest physical address */
#define SVM_NPF_GUEST_TABLE BIT(33) /* fault on a guest page-table access */

/* Segment register image in the VMCB (Table B-2): 16 bytes. */
struct __packed vmcb_seg {
    uint16_t selector;
    uint16_t attrib; /* descriptor bits 47:40 -> 7:0, 55:52 -> 11:8 */
    uint32_t limit;  /* expanded (granularity applied) */
    uint64_t base;
};

#define SVM_SEG_ATTR_TYPE_MASK 0x000f
#define SVM_SEG_ATTR_S         BIT(4)
#define SVM_SEG_ATTR_DPL_SHIFT 5
#define SVM_SEG_ATTR_P         BIT(7)
#define SVM_SEG_ATTR_AVL       BIT(8)
#define SVM_SEG_ATTR_L         BIT(9)
#define SVM_SEG_ATTR_DB        BIT(10)
#define SVM_SEG_ATTR_G         BIT(11)

struct __packed vmcb_control {
    uint32_t intercept_cr;         /* 0x000: reads [15:0], writes [31:16] */
    uint32_t intercept_dr;         /* 0x004: reads [15:0], writes [31:16] */
    uint32_t intercept_exceptions; /* 0x008: one bit per vector */
    uint32_t intercept_misc1;      /* 0x00C: vector 3, SVM_INTERCEPT_INTR ... SHUTDOWN */
    uint32_t intercept_misc2;      /* 0x010: vector 4, SVM_INTERCEPT_VMRUN ... */
    uint32_t intercept_misc3;      /* 0x014: vector 5, SVM_INTERCEPT_INVLPGB ... */
    uint8_t reserved_018[0x03c - 0x018];
    uint16_t pause_filter_thresh; /* 0x03C */
    uint16_t pause_filter_count;  /* 0x03E */
    uint64_t iopm_base_pa;        /* 0x040 */
    uint64_t msrpm_base_pa;       /* 0x048 */
    uint64_t tsc_offset;          /* 0x050 */
    uint32_t asid;                /* 0x058 */
    uint8_t tlb_control;          /* 0x05C */
    uint8_t reserved_05d[3];
    uint64_t int_ctl;       /* 0x060: V_TPR, V_IRQ, V_GIF, ..., V_INTR_VECTOR */
    uint64_t int_state;     /* 0x068: interrupt shadow, guest interrupt mask */
    uint64_t exit_code;     /* 0x070 */
    uint64_t exit_info_1;   /* 0x078 */
    uint64_t exit_info_2;   /* 0x080 */
    uint64_t exit_int_info; /* 0x088 */
    uint64_t nested_ctl;    /* 0x090: NP_ENABLE, SEV, SEV-ES, GMET, ... */
    uint64_t avic_apic_bar; /* 0x098 */
    uint64_t ghcb_pa;       /* 0x0A0 */
    uint64_t event_inj;     /* 0x0A8 */
    uint64_t nested_cr3;    /* 0x0B0 */
    uint64_t virt_ext;      /* 0x0B8: LBR virtualization, VLS, IBS */
    uint32_t clean;         /* 0x0C0 */
    uint32_t reserved_0c4;
    uint64_t next_rip;          /* 0x0C8 */
    uint8_t insn_len;           /* 0x0D0: bytes fetched (decode assists) */
    uint8_t insn_bytes[15];     /* 0x0D1 */
    uint64_t avic_backing_page; /* 0x0E0 */
    uint64_t reserved_0e8;
    uint64_t avic_logical_id;  /* 0x0F0 */
    uint64_t avic_physical_id; /* 0x0F8 */
    uint64_t reserved_100;
    uint64_t vmsa_pa;     /* 0x108: SEV-ES */
    uint64_t vmgexit_rax; /* 0x110 */
    uint8_t vmgexit_cpl;  /* 0x118 */
    uint8_t reserved_119[7];
    uint16_t bus_lock_counter; /* 0x120 */
    uint8_t reserved_122[0x3e0 - 0x122];
    uint8_t reserved_host[0x400 - 0x3e0]; /* 0x3E0: reserved for host use */
};

/* ---- VMCB: state-save area (APM Vol. 2 Appendix B, Table B-2) ---------------- */

struct __packed vmcb_save {
    struct vmcb_seg es;   /* 0x000 */
    struct vmcb_seg cs;   /* 0x010 */
    struct vmcb_seg ss;   /* 0x020 */
    struct vmcb_seg ds;   /* 0x030 */
    struct vmcb_seg fs;   /* 0x040 */
    struct vmcb_seg gs;   /* 0x050 */
    struct vmcb_seg gdtr; /* 0x060: base and limit only */
    struct vmcb_seg ldtr; /* 0x070 */
    struct vmcb_seg idtr; /* 0x080: base and limit only */
    struct vmcb_seg tr;   /* 0x090 */
    uint8_t reserved_0a0[0x0cb - 0x0a0];
    uint8_t cpl; /* 0x0CB */
    uint32_t reserved_0cc;
    uint64_t efer; /* 0x0D0 */
    uint8_t reserved_0d8[0x148 - 0x0d8];
    uint64_t cr4;    /* 0x148 */
    uint64_t cr3;    /* 0x150 */
    uint64_t cr0;    /* 0x158 */
    uint64_t dr7;    /* 0x160 */
    uint64_t dr6;    /* 0x168 */
    uint64_t rflags; /* 0x170 */
    uint64_t rip;    /* 0x178 */
    uint8_t reserved_180[0x1d8 - 0x180];
    uint64_t rsp;            /* 0x1D8 */
    uint64_t s_cet;          /* 0x1E0 */
    uint64_t ssp;            /* 0x1E8 */
    uint64_t isst_addr;      /* 0x1F0 */
    uint64_t rax;            /* 0x1F8 */
    uint64_t star;           /* 0x200 */
    uint64_t lstar;          /* 0x208 */
    uint64_t cstar;          /* 0x210 */
    uint64_t sfmask;         /* 0x218 */
    uint64_t kernel_gs_base; /* 0x220 */
    uint64_t sysenter_cs;    /* 0x228 */
    uint64_t sysenter_esp;   /* 0x230 */
    uint64_t sysenter_eip;   /* 0x238 */
    uint64_t cr2;            /* 0x240 */
    uint8_t reserved_248[0x268 - 0x248];
    uint64_t g_pat;          /* 0x268 */
    uint64_t dbgctl;         /* 0x270 */
    uint64_t br_from;        /* 0x278 */
    uint64_t br_to;          /* 0x280 */
    uint64_t last_excp_from; /* 0x288 */
    uint64_t last_excp_to;   /* 0x290 */
    uint8_t reserved_298[0xc00 - 0x298];
};

struct __packed vmcb {
    struct vmcb_control control; /* 0x000 */
    struct vmcb_save save;       /* 0x400 */
};

#define VMCB_CHECK(field, off) \
    _Static_assert(__builtin_offsetof(struct vmcb, field) == (off), "VMCB offset of " #field)
VMCB_CHECK(control.intercept_cr, 0x000);
VMCB_CHECK(control.intercept_dr, 0x004);
VMCB_CHECK(control.intercept_exceptions, 0x008);
VMCB_CHECK(control.intercept_misc1, 0x00c);
VMCB_CHECK(control.intercept_misc2, 0x010);
VMCB_CHECK(control.intercept_misc3, 0x014);
VMCB_CHECK(control.pause_filter_thresh, 0x03c);
VMCB_CHECK(control.pause_filter_count, 0x03e);
VMCB_CHECK(control.iopm_base_pa, 0x040);
VMCB_CHECK(control.msrpm_base_pa, 0x048);
VMCB_CHECK(control.tsc_offset, 0x050);
VMCB_CHECK(control.asid, 0x058);
VMCB_CHECK(control.tlb_control, 0x05c);
VMCB_CHECK(control.int_ctl, 0x060);
VMCB_CHECK(control.int_state, 0x068);
VMCB_CHECK(control.exit_code, 0x070);
VMCB_CHECK(control.exit_info_1, 0x078);
VMCB_CHECK(control.exit_info_2, 0x080);
VMCB_CHECK(control.exit_int_info, 0x088);
VMCB_CHECK(control.nested_ctl, 0x090);
VMCB_CHECK(control.avic_apic_bar, 0x098);
VMCB_CHECK(control.event_inj, 0x0a8);
VMCB_CHECK(control.nested_cr3, 0x0b0);
VMCB_CHECK(control.virt_ext, 0x0b8);
VMCB_CHECK(control.clean, 0x0c0);
VMCB_CHECK(control.next_rip, 0x0c8);
VMCB_CHECK(control.insn_len, 0x0d0);
VMCB_CHECK(control.insn_bytes, 0x0d1);
VMCB_CHECK(control.avic_backing_page, 0x0e0);
VMCB_CHECK(control.avic_logical_id, 0x0f0);
VMCB_CHECK(control.avic_physical_id, 0x0f8);
VMCB_CHECK(control.vmsa_pa, 0x108);
VMCB_CHECK(control.bus_lock_counter, 0x120);
VMCB_CHECK(save.es, 0x400);
VMCB_CHECK(save.cs, 0x410);
VMCB_CHECK(save.ss, 0x420);
VMCB_CHECK(save.ds, 0x430);
VMCB_CHECK(save.fs, 0x440);
VMCB_CHECK(save.gs, 0x450);
VMCB_CHECK(save.gdtr, 0x460);
VMCB_CHECK(save.ldtr, 0x470);
VMCB_CHECK(save.idtr, 0x480);
VMCB_CHECK(save.tr, 0x490);
VMCB_CHECK(save.cpl, 0x4cb);
VMCB_CHECK(save.efer, 0x4d0);
VMCB_CHECK(save.cr4, 0x548);
VMCB_CHECK(save.cr3, 0x550);
VMCB_CHECK(save.cr0, 0x558);
VMCB_CHECK(save.dr7, 0x560);
VMCB_CHECK(save.dr6, 0x568);
VMCB_CHECK(save.rflags, 0x570);
VMCB_CHECK(save.rip, 0x578);
VMCB_CHECK(save.rsp, 0x5d8);
VMCB_CHECK(save.s_cet, 0x5e0);
VMCB_CHECK(save.rax, 0x5f8);
VMCB_CHECK(save.star, 0x600);
VMCB_CHECK(save.lstar, 0x608);
VMCB_CHECK(save.cstar, 0x610);
VMCB_CHECK(save.sfmask, 0x618);
VMCB_CHECK(save.kernel_gs_base, 0x620);
VMCB_CHECK(save.sysenter_cs, 0x628);
VMCB_CHECK(save.sysenter_esp, 0x630);
VMCB_CHECK(save.sysenter_eip, 0x638);
VMCB_CHECK(save.cr2, 0x640);
VMCB_CHECK(save.g_pat, 0x668);
VMCB_CHECK(save.dbgctl, 0x670);
VMCB_CHECK(save.br_from, 0x678);
VMCB_CHECK(save.last_excp_to, 0x690);
_Static_assert(sizeof(struct vmcb) == 4096, "VMCB is one page");
#undef VMCB_CHECK

/* ---- exit codes (APM Vol. 2 Appendix C, Table C-1) -------------------------- */

#define SVM_EXIT_CR_READ(n)          (0x000 + (n)) /* 0x00..0x0F */
#define SVM_EXIT_CR_WRITE(n)         (0x010 + (n)) /* 0x10..0x1F */
#define SVM_EXIT_DR_READ(n)          (0x020 + (n)) /* 0x20..0x2F */
#define SVM_EXIT_DR_WRITE(n)         (0x030 + (n)) /* 0x30..0x3F */
#define SVM_EXIT_EXCP_BASE           0x040         /* + vector, 0x40..0x5F */
#define SVM_EXIT_EXCP(v)             (0x040 + (v))
#define SVM_EXIT_INTR                0x060
#define SVM_EXIT_NMI                 0x061
#define SVM_EXIT_SMI                 0x062
#define SVM_EXIT_INIT                0x063
#define SVM_EXIT_VINTR               0x064
#define SVM_EXIT_CR0_SEL_WRITE       0x065
#define SVM_EXIT_IDTR_READ           0x066
#define SVM_EXIT_GDTR_READ           0x067
#define SVM_EXIT_LDTR_READ           0x068
#define SVM_EXIT_TR_READ             0x069
#define SVM_EXIT_IDTR_WRITE          0x06a
#define SVM_EXIT_GDTR_WRITE          0x06b
#define SVM_EXIT_LDTR_WRITE          0x06c
#define SVM_EXIT_TR_WRITE            0x06d
#define SVM_EXIT_RDTSC               0x06e
#define SVM_EXIT_RDPMC               0x06f
#define SVM_EXIT_PUSHF               0x070
#define SVM_EXIT_POPF                0x071
#define SVM_EXIT_CPUID               0x072
#define SVM_EXIT_RSM                 0x073
#define SVM_EXIT_IRET                0x074
#define SVM_EXIT_SWINT               0x075
#define SVM_EXIT_INVD                0x076
#define SVM_EXIT_PAUSE               0x077
#define SVM_EXIT_HLT                 0x078
#define SVM_EXIT_INVLPG              0x079
#define SVM_EXIT_INVLPGA             0x07a
#define SVM_EXIT_IOIO                0x07b
#define SVM_EXIT_MSR                 0x07c
#define SVM_EXIT_TASK_SWITCH         0x07d
#define SVM_EXIT_FERR_FREEZE         0x07e
#define SVM_EXIT_SHUTDOWN            0x07f
#define SVM_EXIT_VMRUN               0x080
#define SVM_EXIT_VMMCALL             0x081
#define SVM_EXIT_VMLOAD              0x082
#define SVM_EXIT_VMSAVE              0x083
#define SVM_EXIT_STGI                0x084
#define SVM_EXIT_CLGI                0x085
#define SVM_EXIT_SKINIT              0x086
#define SVM_EXIT_RDTSCP              0x087
#define SVM_EXIT_ICEBP               0x088
#define SVM_EXIT_WBINVD              0x089
#define SVM_EXIT_MONITOR             0x08a
#define SVM_EXIT_MWAIT               0x08b
#define SVM_EXIT_MWAIT_COND          0x08c
#define SVM_EXIT_XSETBV              0x08d
#define SVM_EXIT_RDPRU               0x08e
#define SVM_EXIT_EFER_WRITE_TRAP     0x08f
#define SVM_EXIT_CR_WRITE_TRAP(n)    (0x090 + (n)) /* 0x90..0x9F */
#define SVM_EXIT_INVLPGB             0x0a0
#define SVM_EXIT_INVLPGB_ILLEGAL     0x0a1
#define SVM_EXIT_INVPCID             0x0a2
#define SVM_EXIT_MCOMMIT             0x0a3
#define SVM_EXIT_TLBSYNC             0x0a4
#define SVM_EXIT_BUSLOCK             0x0a5
#define SVM_EXIT_IDLE_HLT            0x0a6
#define SVM_EXIT_NPF                 0x400
#define SVM_EXIT_AVIC_INCOMPLETE_IPI 0x401
#define SVM_EXIT_AVIC_NOACCEL        0x402
#define SVM_EXIT_VMGEXIT             0x403
#define SVM_EXIT_INVALID             ((uint64_t)-1) /* VMEXIT_INVALID */
#define SVM_EXIT_BUSY                ((uint64_t)-2) /* SEV-ES VMSA busy */

/* Name of an exit code ("CPUID", "EXCP_PF", "CR3_WRITE", "INVALID", ...). */
const char *svm_exit_name(uint64_t code);

/* ---- instruction helpers ------------------------------------------------------ */

static inline void svm_vmload(uint64_t pa)
{
    __asm__ volatile("vmload %%rax" ::"a"(pa) : "memory");
}
static inline void svm_vmsave(uint64_t pa)
{
    __asm__ volatile("vmsave %%rax" ::"a"(pa) : "memory");
}
static inline void svm_stgi(void) { __asm__ volatile("stgi" ::: "memory"); }
static inline void svm_clgi(void) { __asm__ volatile("clgi" ::: "memory"); }
static inline void svm_invlpga(uint64_t va, uint32_t asid)
{
    __asm__ volatile("invlpga %%rax, %%ecx" ::"a"(va), "c"(asid) : "memory");
}

/* ---- the library ----------------------------------------------------------------- */

/* The GPRs that the VMCB does not hold; svm_run() swaps them with the host's.
 * RAX, RSP, RIP and RFLAGS of the guest live in vmcb->save. The layout is
 * fixed: lib/svm_entry.S uses the offsets below. */
struct svm_gprs {
    uint64_t rbx, rcx, rdx, rsi, rdi, rbp;
    uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
};

/* vcpu->flags */
#define SVM_RUN_NO_VMLOAD     1u /* svm_run(): no VMLOAD/VMSAVE around VMRUN */
#define SVM_RUN_KEEP_GIF0     2u /* svm_run(): no STGI after #VMEXIT (GIF stays 0) */
#define SVM_RUN_KEEP_NEXT_RIP 4u /* svm_run(): leave VMCB next_rip as the probe set it */

struct svm_vcpu {
    struct vmcb *vmcb;    /* guest VMCB (one page) */
    struct svm_gprs regs; /* guest GPRs not in the VMCB */
    void *host_save;      /* page for VMSAVE/VMLOAD of the host's state */
    uint8_t *iopm;        /* 12 KiB I/O permission map (all 0: nothing intercepted) */
    uint8_t *msrpm;       /* 8 KiB MSR permission map (all 0) */
    uint8_t *stack;       /* guest stack (SVM_GUEST_STACK_PAGES pages) */
    unsigned flags;       /* SVM_RUN_* */
    unsigned runs;        /* VMRUNs performed by svm_run() */
    /* What the guest run awaits ("the HLT exit"), or NULL: see svm_run(). */
    const char *watchdog;
};

#define SVM_GUEST_STACK_PAGES 2

/* CPUID says SVM is there: 0x80000001 ECX.SVM and leaf 0x8000000A exists. */
bool svm_supported(void);
uint32_t svm_features(void);  /* CPUID 0x8000000A EDX, 0 without SVM */
uint32_t svm_revision(void);  /* CPUID 0x8000000A EAX[7:0] */
uint32_t svm_num_asids(void); /* CPUID 0x8000000A EBX */
static inline bool svm_has(uint32_t feat) { return (svm_features() & feat) == feat; }

/*
 * SKIP unless CPUID exposes SVM, FAIL if leaf 0x8000000A is missing or
 * VM_CR cannot be read, SKIP if VM_CR.SVMDIS is set (disabled by
 * firmware). Leaves EFER.SVME as it is.
 */
void svm_require_exposed(void);

/* Standard probe prologue: svm_require_exposed(), then svm_enable(). */
void svm_require(void);

/* EFER.SVME = 1 and VM_HSAVE_PA = a fresh page. ERROR()s if either does
 * not stick. Returns the host save area's physical address. */
uint64_t svm_enable(void);

/*
 * Guest entry points: the guest starts at fn with RDI = arg, on its own
 * stack, in 64-bit mode with the host's CR0/CR3/CR4/EFER, GDT and
 * segments, an IDT of its own (see svm_guest_exc_stubs), CPL 0, RFLAGS = 2 (IF = 0), ASID 1. When
 * fn returns, the guest executes VMMCALL at svm_guest_return with RAX = fn's return value (the
 * exit's guest RIP is then (uint64_t)svm_guest_return).
 * Intercepted by default: VMRUN, VMMCALL, SHUTDOWN and every defined
 * exception vector (SVM_DEFAULT_EXCEPTIONS), so that a stray guest
 * exception is an EXCP exit instead of running the host's handlers inside
 * the guest.
 */
typedef uint64_t (*svm_guest_fn)(uint64_t arg);
void svm_vcpu_init(struct svm_vcpu *v, svm_guest_fn fn, uint64_t arg);
/* Points the guest at a new entry point with a fresh stack; keeps the rest. */
void svm_vcpu_set_entry(struct svm_vcpu *v, svm_guest_fn fn, uint64_t arg);

/* Every architecturally defined exception vector except #VC (29): vectors 2
 * and 9 are "not implemented, effect undefined" (APM Vol. 2 15.12.3,
 * 15.12.10) and the reserved vectors never occur. */
#define SVM_DEFAULT_EXCEPTIONS                                                                    \
    ((uint32_t)(BIT(0) | BIT(1) | BIT(3) | BIT(4) | BIT(5) | BIT(6) | BIT(7) | BIT(8) | BIT(10) | \
                BIT(11) | BIT(12) | BIT(13) | BIT(14) | BIT(16) | BIT(17) | BIT(18) | BIT(19) |   \
                BIT(20) | BIT(21) | BIT(28) | BIT(30)))

/* VMLOAD, VMRUN, VMSAVE (with CLGI/STGI around) on v->vmcb, swapping the
 * GPRs in v->regs. Returns vmcb->control.exit_code.
 *
 * With v->watchdog set (and SVM_RUN_KEEP_GIF0 and the INTR intercept
 * clear), the run is watched: the INTR intercept and V_INTR_MASKING are set
 * for it, the host's RFLAGS.IF is 1 at VMRUN (so that physical interrupts
 * reach the intercept, 15.21.1) and the local APIC timer is armed
 * (watchdog_arm(WATCHDOG_MS)). A guest that gives no exit of its own then
 * exits 0x60 (INTR) after about a second; svm_run() records a failed check
 * naming v->watchdog, the host takes the timer interrupt, and the exit is
 * returned as usual. Both VMCB bits are cleared again afterwards. */
uint64_t svm_run(struct svm_vcpu *v);

/* Low level, lib/svm_entry.S: CLGI; [VMSAVE host_save; VMLOAD vmcb;]
 * VMRUN vmcb; [VMSAVE vmcb; VMLOAD host_save;] STGI. host_save == 0 skips
 * the VMLOAD/VMSAVE pairs; how is a mask of SVM_ASM_*. */
void svm_vmrun_asm(uint64_t vmcb_pa, struct svm_gprs *gprs, uint64_t host_save_pa, uint64_t how);
#define SVM_ASM_KEEP_GIF0 1u /* how: no STGI after #VMEXIT */
#define SVM_ASM_STI       2u /* how: STI right after CLGI (host IF=1 at VMRUN) */

/* Executes a bare VMRUN with RAX = pa (no CLGI/STGI, no GPR swap): for
 * catch_fault() around VMRUN with bad operands. Returns only if VMRUN did
 * not fault (i.e. after a #VMEXIT). */
void svm_vmrun_raw(uint64_t pa);

/* MSRPM/IOPM bits (APM Vol. 2 15.10.1, 15.11). svm_msrpm_set() returns
 * false for an MSR outside the three ranges the map covers. Setting a bit
 * does not turn on SVM_INTERCEPT_MSR_PROT / IOIO_PROT. */
bool svm_msrpm_set(struct svm_vcpu *v, uint32_t msr, bool read, bool write);
void svm_iopm_set(struct svm_vcpu *v, uint16_t port, bool intercept);

/* Guest RIP past the intercepted instruction: next_rip when CPUID says
 * NRIPS (and next_rip is not 0), else rip + len. */
void svm_skip_insn(struct svm_vcpu *v, unsigned len);

/* "exit 0x72 (CPUID) info1=... info2=... intinfo=... rip=..." (static buffer). */
const char *svm_exit_str(const struct svm_vcpu *v);

/* Expects one exit code; on a mismatch a failed check with svm_exit_str(). */
bool svm_check_exit(const struct svm_vcpu *v, uint64_t got, uint64_t want, const char *what);

/* A guest label (or any object) as a 64-bit guest address for the VMCB:
 * A(svm_i_cpuid) + CPUID_LEN. */
#define A(sym) ((uint64_t)(uintptr_t)(sym))

/* A canonical address that the kernel's page tables (which the default
 * guest shares) leave unmapped: the first not-present 1 GiB slot of the
 * PDPT behind PML4[0], at or above 4 GiB. error()s if there is none. */
uint64_t svm_unmapped_address(void);

/* Encodes a GDT descriptor as VMCB segment state. */
void svm_seg_from_gdt(struct vmcb_seg *s, uint16_t sel);

/* Guest code stubs (lib/svm_entry.S). Each names the address of its first
 * instruction; lengths are fixed by the encodings. */
extern char svm_guest_return[]; /* vmmcall; ud2 -- where guest fns return to */
extern char guest_vmmcall[];    /* vmmcall; ud2 */
extern char guest_vmmcall2[];   /* vmmcall; vmmcall; ud2 */
extern char guest_hlt[];        /* hlt; ud2 */
extern char guest_ud2[];        /* ud2 */

/* The default guest's IDT (256 gates): vector v's gate is
 * svm_guest_exc_stubs + SVM_GUEST_EXC_STUB_SIZE * v;
 * every stub ends at svm_guest_exc_vmmcall with RAX = magic | vector. */
extern char svm_guest_exc_stubs[];
extern char svm_guest_exc_vmmcall[];
#define SVM_GUEST_EXC_MAGIC     0x4e56435445584300ull
#define SVM_GUEST_EXC_STUB_SIZE 16
/* The exit is a VMMCALL from the guest IDT stubs: returns the vector, else -1. */
int svm_guest_exc_vector(const struct svm_vcpu *v);
/* ---- nested paging (lib/npt.c) ---------------------------------------------------- */

#define NPT_P   BIT(0)
#define NPT_RW  BIT(1)
#define NPT_US  BIT(2)
#define NPT_PWT BIT(3)
#define NPT_PCD BIT(4)
#define NPT_A   BIT(5)
#define NPT_D   BIT(6)
#define NPT_PS  BIT(7)
#define NPT_NX  BIT(63)

/* Nested page tables mapping guest-physical 0..4 GiB to the same host
 * physical addresses, P|RW|US, with 2 MiB pages (or 1 GiB pages). */
struct npt {
    uint64_t *pml4, *pdpt;
    uint64_t *pd[4]; /* NULL with 1 GiB pages */
};
/* Builds the tables; returns nCR3. */
uint64_t npt_build(struct npt *n, bool gib_pages);
/* The nested PDE (2 MiB) mapping gpa. */
uint64_t *npt_pde(struct npt *n, uint64_t gpa);
/* The nested PTE of gpa's 4 KiB page; splits its 2 MiB page on first use. */
uint64_t *npt_pte(struct npt *n, uint64_t gpa);
/* NP_ENABLE, nCR3 = n's PML4, TLB_CONTROL = flush all. */
void svm_npt_enable(struct svm_vcpu *v, struct npt *n);
/* svm_require(), then SKIP unless CPUID 0x8000000A EDX.NP[0]=1. */
void svm_require_npt(void);

#define VMMCALL_LEN 3 /* 0F 01 D9 */
#define VMRUN_LEN   3 /* 0F 01 D8 */
#define HLT_LEN     1
#define CPUID_LEN   2

#endif
