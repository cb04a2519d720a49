/* SPDX-License-Identifier: MIT */
/*
 * nvct: the Intel VMX library.
 *
 * Architectural constants (VMCS field encodings, control bits, exit
 * reasons, VM-instruction error numbers, capability MSRs) with the SDM
 * section that defines them, and the helpers probes use to enter VMX
 * operation and run a guest. Section numbers follow the current layout of
 * the Intel SDM Vol. 3C (chapter 24 "Introduction to Virtual Machine
 * Extensions" ... chapter 31 "VMX Instruction Reference", appendices A-C);
 * older editions number the same chapters one lower.
 *
 * Everything above "library" is usable from assembly too.
 */
#ifndef NVCT_VMX_H
#define NVCT_VMX_H

#ifndef __ASSEMBLER__
#include "nvct.h"
#include "guest.h"
#endif

/* ---- CPUID and MSRs ------------------------------------------------------ */

#define CPUID_1_ECX_VMX (1u << 5) /* CPUID.1:ECX.VMX[bit 5] */
#define CPUID_1_ECX_SMX (1u << 6)

/* IA32_FEATURE_CONTROL (0x3A), SDM Vol. 3C 24.7 */
#define FEATURE_CONTROL_LOCK            (1ull << 0)
#define FEATURE_CONTROL_VMX_IN_SMX      (1ull << 1)
#define FEATURE_CONTROL_VMX_OUTSIDE_SMX (1ull << 2)

/* Capability MSRs, SDM Vol. 3C Appendix A */
#define MSR_IA32_VMX_PINBASED_CTLS       0x481
#define MSR_IA32_VMX_PROCBASED_CTLS      0x482
#define MSR_IA32_VMX_EXIT_CTLS           0x483
#define MSR_IA32_VMX_ENTRY_CTLS          0x484
#define MSR_IA32_VMX_MISC                0x485
#define MSR_IA32_VMX_CR0_FIXED0          0x486
#define MSR_IA32_VMX_CR0_FIXED1          0x487
#define MSR_IA32_VMX_CR4_FIXED0          0x488
#define MSR_IA32_VMX_CR4_FIXED1          0x489
#define MSR_IA32_VMX_VMCS_ENUM           0x48a
#define MSR_IA32_VMX_PROCBASED_CTLS2     0x48b
#define MSR_IA32_VMX_EPT_VPID_CAP        0x48c
#define MSR_IA32_VMX_TRUE_PINBASED_CTLS  0x48d
#define MSR_IA32_VMX_TRUE_PROCBASED_CTLS 0x48e
#define MSR_IA32_VMX_TRUE_EXIT_CTLS      0x48f
#define MSR_IA32_VMX_TRUE_ENTRY_CTLS     0x490
#define MSR_IA32_VMX_VMFUNC              0x491
#define MSR_IA32_VMX_PROCBASED_CTLS3     0x492
#define MSR_IA32_VMX_EXIT_CTLS2          0x493

#define MSR_IA32_SYSENTER_CS      0x174
#define MSR_IA32_SYSENTER_ESP     0x175
#define MSR_IA32_SYSENTER_EIP     0x176
#define MSR_IA32_DEBUGCTL         0x1d9
#define MSR_IA32_PAT              0x277
#define MSR_IA32_PERF_GLOBAL_CTRL 0x38f
#define MSR_IA32_TSC              0x010
#define MSR_IA32_TSC_AUX          0xc0000103

/* IA32_VMX_BASIC, SDM Vol. 3C A.1 */
#define VMX_BASIC_REVISION(b)      ((uint32_t)(b)&0x7fffffffu)
#define VMX_BASIC_BIT31            (1ull << 31)
#define VMX_BASIC_REGION_SIZE(b)   ((unsigned)(((b) >> 32) & 0x1fff))
#define VMX_BASIC_ADDR32           (1ull << 48) /* VMX pointers limited to 32 bits */
#define VMX_BASIC_DUAL_MONITOR     (1ull << 49)
#define VMX_BASIC_MEMTYPE(b)       ((unsigned)(((b) >> 50) & 0xf))
#define VMX_BASIC_INOUT            (1ull << 54) /* INS/OUTS instruction info */
#define VMX_BASIC_TRUE_CTLS        (1ull << 55) /* IA32_VMX_TRUE_*_CTLS exist */
#define VMX_BASIC_NO_ERRCODE_CHECK (1ull << 56)
#define VMX_MEMTYPE_UC             0
#define VMX_MEMTYPE_WB             6

/* IA32_VMX_MISC, SDM Vol. 3C A.6 */
#define VMX_MISC_TIMER_RATIO(m)  ((unsigned)((m)&0x1f))
#define VMX_MISC_EXIT_SAVES_LMA  (1ull << 5)
#define VMX_MISC_ACT_HLT         (1ull << 6)
#define VMX_MISC_ACT_SHUTDOWN    (1ull << 7)
#define VMX_MISC_ACT_WAIT_SIPI   (1ull << 8)
#define VMX_MISC_PT_IN_VMX       (1ull << 14)
#define VMX_MISC_SMBASE_RDMSR    (1ull << 15)
#define VMX_MISC_CR3_TARGETS(m)  ((unsigned)(((m) >> 16) & 0x1ff))
#define VMX_MISC_MSR_LIST_MAX(m) (512u * ((unsigned)(((m) >> 25) & 7) + 1))
#define VMX_MISC_SMM_BLOCK_SMI   (1ull << 28)
#define VMX_MISC_VMWRITE_ANY     (1ull << 29) /* VMWRITE to exit-info fields */
#define VMX_MISC_INJECT_ZERO_LEN (1ull << 30)
#define VMX_MISC_MSEG_REV(m)     ((uint32_t)((m) >> 32))

/* IA32_VMX_VMCS_ENUM, SDM Vol. 3C A.9: highest index in bits 9:1 */
#define VMX_VMCS_ENUM_MAX_INDEX(e) ((unsigned)(((e) >> 1) & 0x1ff))

/* IA32_VMX_EPT_VPID_CAP, SDM Vol. 3C A.10 */
#define VMX_EPT_EXEC_ONLY      (1ull << 0)
#define VMX_EPT_PWL4           (1ull << 6)
#define VMX_EPT_PWL5           (1ull << 7)
#define VMX_EPT_MT_UC          (1ull << 8)
#define VMX_EPT_MT_WB          (1ull << 14)
#define VMX_EPT_2M             (1ull << 16)
#define VMX_EPT_1G             (1ull << 17)
#define VMX_EPT_INVEPT         (1ull << 20)
#define VMX_EPT_AD             (1ull << 21)
#define VMX_EPT_ADV_EXITINFO   (1ull << 22)
#define VMX_EPT_SSS            (1ull << 23)
#define VMX_EPT_INVEPT_SINGLE  (1ull << 25)
#define VMX_EPT_INVEPT_ALL     (1ull << 26)
#define VMX_VPID_INVVPID       (1ull << 32)
#define VMX_VPID_INV_ADDR      (1ull << 40)
#define VMX_VPID_INV_SINGLE    (1ull << 41)
#define VMX_VPID_INV_ALL       (1ull << 42)
#define VMX_VPID_INV_SINGLE_NG (1ull << 43)

/* INVEPT / INVVPID types, SDM Vol. 3C 31.3 */
#define INVEPT_SINGLE     1
#define INVEPT_ALL        2
#define INVVPID_ADDR      0
#define INVVPID_SINGLE    1
#define INVVPID_ALL       2
#define INVVPID_SINGLE_NG 3

/* ---- VMCS field encodings, SDM Vol. 3C Appendix B -------------------------
 * Bits 14:13 give the width (0 16-bit, 1 64-bit, 2 32-bit, 3 natural),
 * bits 11:10 the type (0 control, 1 read-only data, 2 guest, 3 host),
 * bit 0 the access type (1 = high 32 bits of a 64-bit field). */
#define VMCS_FIELD_WIDTH(f) (((f) >> 13) & 3)
#define VMCS_FIELD_TYPE(f)  (((f) >> 10) & 3)
#define VMCS_FIELD_INDEX(f) (((f) >> 1) & 0x1ff)
#define VMCS_WIDTH_16       0
#define VMCS_WIDTH_64       1
#define VMCS_WIDTH_32       2
#define VMCS_WIDTH_NAT      3
#define VMCS_TYPE_CTRL      0
#define VMCS_TYPE_RO        1
#define VMCS_TYPE_GUEST     2
#define VMCS_TYPE_HOST      3
#define VMCS_HIGH(f)        ((f) | 1)

/* 16-bit control fields (B.1.1) */
#define VMCS_VPID              0x0000
#define VMCS_POSTED_INTR_NV    0x0002
#define VMCS_EPTP_INDEX        0x0004
/* 16-bit guest-state fields (B.1.2) */
#define VMCS_GUEST_ES_SEL      0x0800
#define VMCS_GUEST_CS_SEL      0x0802
#define VMCS_GUEST_SS_SEL      0x0804
#define VMCS_GUEST_DS_SEL      0x0806
#define VMCS_GUEST_FS_SEL      0x0808
#define VMCS_GUEST_GS_SEL      0x080a
#define VMCS_GUEST_LDTR_SEL    0x080c
#define VMCS_GUEST_TR_SEL      0x080e
#define VMCS_GUEST_INTR_STATUS 0x0810
#define VMCS_GUEST_PML_INDEX   0x0812
/* 16-bit host-state fields (B.1.3) */
#define VMCS_HOST_ES_SEL       0x0c00
#define VMCS_HOST_CS_SEL       0x0c02
#define VMCS_HOST_SS_SEL       0x0c04
#define VMCS_HOST_DS_SEL       0x0c06
#define VMCS_HOST_FS_SEL       0x0c08
#define VMCS_HOST_GS_SEL       0x0c0a
#define VMCS_HOST_TR_SEL       0x0c0c

/* 64-bit control fields (B.2.1) */
#define VMCS_IO_BITMAP_A            0x2000
#define VMCS_IO_BITMAP_B            0x2002
#define VMCS_MSR_BITMAP             0x2004
#define VMCS_EXIT_MSR_STORE_ADDR    0x2006
#define VMCS_EXIT_MSR_LOAD_ADDR     0x2008
#define VMCS_ENTRY_MSR_LOAD_ADDR    0x200a
#define VMCS_EXECUTIVE_VMCS_PTR     0x200c
#define VMCS_PML_ADDR               0x200e
#define VMCS_TSC_OFFSET             0x2010
#define VMCS_VIRTUAL_APIC_ADDR      0x2012
#define VMCS_APIC_ACCESS_ADDR       0x2014
#define VMCS_POSTED_INTR_DESC       0x2016
#define VMCS_VMFUNC_CTRL            0x2018
#define VMCS_EPTP                   0x201a
#define VMCS_EOI_EXIT_BITMAP0       0x201c
#define VMCS_EOI_EXIT_BITMAP1       0x201e
#define VMCS_EOI_EXIT_BITMAP2       0x2020
#define VMCS_EOI_EXIT_BITMAP3       0x2022
#define VMCS_EPTP_LIST_ADDR         0x2024
#define VMCS_VMREAD_BITMAP          0x2026
#define VMCS_VMWRITE_BITMAP         0x2028
#define VMCS_VE_INFO_ADDR           0x202a
#define VMCS_XSS_EXIT_BITMAP        0x202c
#define VMCS_ENCLS_EXIT_BITMAP      0x202e
#define VMCS_SPPTP                  0x2030
#define VMCS_TSC_MULTIPLIER         0x2032
#define VMCS_PROC_CTLS3             0x2034
#define VMCS_ENCLV_EXIT_BITMAP      0x2036
/* 64-bit read-only data field (B.2.2) */
#define VMCS_GUEST_PHYS_ADDR        0x2400
/* 64-bit guest-state fields (B.2.3) */
#define VMCS_LINK_PTR               0x2800
#define VMCS_GUEST_DEBUGCTL         0x2802
#define VMCS_GUEST_PAT              0x2804
#define VMCS_GUEST_EFER             0x2806
#define VMCS_GUEST_PERF_GLOBAL_CTRL 0x2808
#define VMCS_GUEST_PDPTE0           0x280a
#define VMCS_GUEST_PDPTE1           0x280c
#define VMCS_GUEST_PDPTE2           0x280e
#define VMCS_GUEST_PDPTE3           0x2810
#define VMCS_GUEST_BNDCFGS          0x2812
#define VMCS_GUEST_RTIT_CTL         0x2814
#define VMCS_GUEST_PKRS             0x2818
/* 64-bit host-state fields (B.2.4) */
#define VMCS_HOST_PAT               0x2c00
#define VMCS_HOST_EFER              0x2c02
#define VMCS_HOST_PERF_GLOBAL_CTRL  0x2c04
#define VMCS_HOST_PKRS              0x2c06

/* 32-bit control fields (B.3.1) */
#define VMCS_PIN_CTLS               0x4000
#define VMCS_PROC_CTLS              0x4002
#define VMCS_EXCEPTION_BITMAP       0x4004
#define VMCS_PF_ERRCODE_MASK        0x4006
#define VMCS_PF_ERRCODE_MATCH       0x4008
#define VMCS_CR3_TARGET_COUNT       0x400a
#define VMCS_EXIT_CTLS              0x400c
#define VMCS_EXIT_MSR_STORE_COUNT   0x400e
#define VMCS_EXIT_MSR_LOAD_COUNT    0x4010
#define VMCS_ENTRY_CTLS             0x4012
#define VMCS_ENTRY_MSR_LOAD_COUNT   0x4014
#define VMCS_ENTRY_INTR_INFO        0x4016
#define VMCS_ENTRY_EXC_ERRCODE      0x4018
#define VMCS_ENTRY_INSN_LEN         0x401a
#define VMCS_TPR_THRESHOLD          0x401c
#define VMCS_PROC_CTLS2             0x401e
#define VMCS_PLE_GAP                0x4020
#define VMCS_PLE_WINDOW             0x4022
/* 32-bit read-only data fields (B.3.2) */
#define VMCS_INSN_ERROR             0x4400
#define VMCS_EXIT_REASON            0x4402
#define VMCS_EXIT_INTR_INFO         0x4404
#define VMCS_EXIT_INTR_ERRCODE      0x4406
#define VMCS_IDT_VECTORING_INFO     0x4408
#define VMCS_IDT_VECTORING_ERRCODE  0x440a
#define VMCS_EXIT_INSN_LEN          0x440c
#define VMCS_EXIT_INSN_INFO         0x440e
/* 32-bit guest-state fields (B.3.3) */
#define VMCS_GUEST_ES_LIMIT         0x4800
#define VMCS_GUEST_CS_LIMIT         0x4802
#define VMCS_GUEST_SS_LIMIT         0x4804
#define VMCS_GUEST_DS_LIMIT         0x4806
#define VMCS_GUEST_FS_LIMIT         0x4808
#define VMCS_GUEST_GS_LIMIT         0x480a
#define VMCS_GUEST_LDTR_LIMIT       0x480c
#define VMCS_GUEST_TR_LIMIT         0x480e
#define VMCS_GUEST_GDTR_LIMIT       0x4810
#define VMCS_GUEST_IDTR_LIMIT       0x4812
#define VMCS_GUEST_ES_AR            0x4814
#define VMCS_GUEST_CS_AR            0x4816
#define VMCS_GUEST_SS_AR            0x4818
#define VMCS_GUEST_DS_AR            0x481a
#define VMCS_GUEST_FS_AR            0x481c
#define VMCS_GUEST_GS_AR            0x481e
#define VMCS_GUEST_LDTR_AR          0x4820
#define VMCS_GUEST_TR_AR            0x4822
#define VMCS_GUEST_INTERRUPTIBILITY 0x4824
#define VMCS_GUEST_ACTIVITY_STATE   0x4826
#define VMCS_GUEST_SMBASE           0x4828
#define VMCS_GUEST_SYSENTER_CS      0x482a
#define VMCS_PREEMPTION_TIMER       0x482e
/* 32-bit host-state field (B.3.4) */
#define VMCS_HOST_SYSENTER_CS       0x4c00

/* natural-width control fields (B.4.1) */
#define VMCS_CR0_MASK           0x6000
#define VMCS_CR4_MASK           0x6002
#define VMCS_CR0_SHADOW         0x6004
#define VMCS_CR4_SHADOW         0x6006
#define VMCS_CR3_TARGET0        0x6008
#define VMCS_CR3_TARGET1        0x600a
#define VMCS_CR3_TARGET2        0x600c
#define VMCS_CR3_TARGET3        0x600e
/* natural-width read-only data fields (B.4.2) */
#define VMCS_EXIT_QUAL          0x6400
#define VMCS_IO_RCX             0x6402
#define VMCS_IO_RSI             0x6404
#define VMCS_IO_RDI             0x6406
#define VMCS_IO_RIP             0x6408
#define VMCS_GUEST_LINEAR_ADDR  0x640a
/* natural-width guest-state fields (B.4.3) */
#define VMCS_GUEST_CR0          0x6800
#define VMCS_GUEST_CR3          0x6802
#define VMCS_GUEST_CR4          0x6804
#define VMCS_GUEST_ES_BASE      0x6806
#define VMCS_GUEST_CS_BASE      0x6808
#define VMCS_GUEST_SS_BASE      0x680a
#define VMCS_GUEST_DS_BASE      0x680c
#define VMCS_GUEST_FS_BASE      0x680e
#define VMCS_GUEST_GS_BASE      0x6810
#define VMCS_GUEST_LDTR_BASE    0x6812
#define VMCS_GUEST_TR_BASE      0x6814
#define VMCS_GUEST_GDTR_BASE    0x6816
#define VMCS_GUEST_IDTR_BASE    0x6818
#define VMCS_GUEST_DR7          0x681a
#define VMCS_GUEST_RSP          0x681c
#define VMCS_GUEST_RIP          0x681e
#define VMCS_GUEST_RFLAGS       0x6820
#define VMCS_GUEST_PENDING_DBG  0x6822
#define VMCS_GUEST_SYSENTER_ESP 0x6824
#define VMCS_GUEST_SYSENTER_EIP 0x6826
#define VMCS_GUEST_S_CET        0x6828
#define VMCS_GUEST_SSP          0x682a
#define VMCS_GUEST_ISST_ADDR    0x682c
/* natural-width host-state fields (B.4.4) */
#define VMCS_HOST_CR0           0x6c00
#define VMCS_HOST_CR3           0x6c02
#define VMCS_HOST_CR4           0x6c04
#define VMCS_HOST_FS_BASE       0x6c06
#define VMCS_HOST_GS_BASE       0x6c08
#define VMCS_HOST_TR_BASE       0x6c0a
#define VMCS_HOST_GDTR_BASE     0x6c0c
#define VMCS_HOST_IDTR_BASE     0x6c0e
#define VMCS_HOST_SYSENTER_ESP  0x6c10
#define VMCS_HOST_SYSENTER_EIP  0x6c12
#define VMCS_HOST_RSP           0x6c14
#define VMCS_HOST_RIP           0x6c16
#define VMCS_HOST_S_CET         0x6c18
#define VMCS_HOST_SSP           0x6c1a
#define VMCS_HOST_ISST_ADDR     0x6c1c

/* ---- VM-execution, VM-exit and VM-entry controls ---------------------------- */

/* pin-based VM-execution controls, SDM Vol. 3C 25.6.1 */
#define PIN_EXTINT_EXITING   (1u << 0)
#define PIN_NMI_EXITING      (1u << 3)
#define PIN_VIRTUAL_NMIS     (1u << 5)
#define PIN_PREEMPTION_TIMER (1u << 6)
#define PIN_POSTED_INTR      (1u << 7)

/* primary processor-based VM-execution controls, SDM Vol. 3C 25.6.2 */
#define PROC_INTR_WINDOW       (1u << 2)
#define PROC_TSC_OFFSETTING    (1u << 3)
#define PROC_HLT_EXITING       (1u << 7)
#define PROC_INVLPG_EXITING    (1u << 9)
#define PROC_MWAIT_EXITING     (1u << 10)
#define PROC_RDPMC_EXITING     (1u << 11)
#define PROC_RDTSC_EXITING     (1u << 12)
#define PROC_CR3_LOAD_EXITING  (1u << 15)
#define PROC_CR3_STORE_EXITING (1u << 16)
#define PROC_TERTIARY_CTLS     (1u << 17)
#define PROC_CR8_LOAD_EXITING  (1u << 19)
#define PROC_CR8_STORE_EXITING (1u << 20)
#define PROC_TPR_SHADOW        (1u << 21)
#define PROC_NMI_WINDOW        (1u << 22)
#define PROC_MOV_DR_EXITING    (1u << 23)
#define PROC_UNCOND_IO_EXITING (1u << 24)
#define PROC_IO_BITMAPS        (1u << 25)
#define PROC_MTF               (1u << 27)
#define PROC_MSR_BITMAPS       (1u << 28)
#define PROC_MONITOR_EXITING   (1u << 29)
#define PROC_PAUSE_EXITING     (1u << 30)
#define PROC_SECONDARY_CTLS    (1u << 31)

/* secondary processor-based VM-execution controls, SDM Vol. 3C 25.6.2 */
#define PROC2_VIRT_APIC_ACCESS   (1u << 0)
#define PROC2_EPT                (1u << 1)
#define PROC2_DESC_TABLE_EXITING (1u << 2)
#define PROC2_RDTSCP             (1u << 3)
#define PROC2_VIRT_X2APIC        (1u << 4)
#define PROC2_VPID               (1u << 5)
#define PROC2_WBINVD_EXITING     (1u << 6)
#define PROC2_UNRESTRICTED       (1u << 7)
#define PROC2_APIC_REG_VIRT      (1u << 8)
#define PROC2_VIRT_INTR_DELIVERY (1u << 9)
#define PROC2_PLE                (1u << 10)
#define PROC2_RDRAND_EXITING     (1u << 11)
#define PROC2_INVPCID            (1u << 12)
#define PROC2_VMFUNC             (1u << 13)
#define PROC2_VMCS_SHADOWING     (1u << 14)
#define PROC2_ENCLS_EXITING      (1u << 15)
#define PROC2_RDSEED_EXITING     (1u << 16)
#define PROC2_PML                (1u << 17)
#define PROC2_EPT_VE             (1u << 18)
#define PROC2_PT_CONCEAL         (1u << 19)
#define PROC2_XSAVES             (1u << 20)
#define PROC2_MBEC               (1u << 22)
#define PROC2_SPP                (1u << 23)
#define PROC2_PT_GPA             (1u << 24)
#define PROC2_TSC_SCALING        (1u << 25)
#define PROC2_USER_WAIT_PAUSE    (1u << 26)
#define PROC2_ENCLV_EXITING      (1u << 28)

/* primary VM-exit controls, SDM Vol. 3C 25.7.1 */
#define EXIT_SAVE_DEBUG       (1u << 2)
#define EXIT_HOST_ADDR_64     (1u << 9)
#define EXIT_LOAD_PERF_GLOBAL (1u << 12)
#define EXIT_ACK_INTR         (1u << 15)
#define EXIT_SAVE_PAT         (1u << 18)
#define EXIT_LOAD_PAT         (1u << 19)
#define EXIT_SAVE_EFER        (1u << 20)
#define EXIT_LOAD_EFER        (1u << 21)
#define EXIT_SAVE_TIMER       (1u << 22)
#define EXIT_CLEAR_BNDCFGS    (1u << 23)
#define EXIT_PT_CONCEAL       (1u << 24)
#define EXIT_CLEAR_RTIT_CTL   (1u << 25)
#define EXIT_LOAD_CET         (1u << 28)
#define EXIT_LOAD_PKRS        (1u << 29)
#define EXIT_SECONDARY_CTLS   (1u << 31)

/* VM-entry controls, SDM Vol. 3C 25.8.1 */
#define ENTRY_LOAD_DEBUG         (1u << 2)
#define ENTRY_IA32E_GUEST        (1u << 9)
#define ENTRY_SMM                (1u << 10)
#define ENTRY_DEACT_DUAL_MONITOR (1u << 11)
#define ENTRY_LOAD_PERF_GLOBAL   (1u << 13)
#define ENTRY_LOAD_PAT           (1u << 14)
#define ENTRY_LOAD_EFER          (1u << 15)
#define ENTRY_LOAD_BNDCFGS       (1u << 16)
#define ENTRY_PT_CONCEAL         (1u << 17)
#define ENTRY_LOAD_RTIT_CTL      (1u << 18)
#define ENTRY_LOAD_CET           (1u << 20)
#define ENTRY_LOAD_PKRS          (1u << 22)

/* interruption-information format (VM-entry 25.8.3, VM-exit 25.9.2) */
#define INTR_INFO_VECTOR(i)   ((i)&0xff)
#define INTR_INFO_TYPE(i)     (((i) >> 8) & 7)
#define INTR_INFO_ERRCODE     (1u << 11)
#define INTR_INFO_NMI_UNBLOCK (1u << 12)
#define INTR_INFO_VALID       (1u << 31)
#define INTR_TYPE_EXT_INTR    0
#define INTR_TYPE_NMI         2
#define INTR_TYPE_HW_EXC      3
#define INTR_TYPE_SW_INTR     4
#define INTR_TYPE_PRIV_SW_EXC 5
#define INTR_TYPE_SW_EXC      6
#define INTR_TYPE_OTHER       7

/* guest interruptibility state (25.4.2) and activity state */
#define INTERRUPTIBILITY_STI   (1u << 0)
#define INTERRUPTIBILITY_MOVSS (1u << 1)
#define INTERRUPTIBILITY_SMI   (1u << 2)
#define INTERRUPTIBILITY_NMI   (1u << 3)
#define ACTIVITY_ACTIVE        0
#define ACTIVITY_HLT           1
#define ACTIVITY_SHUTDOWN      2
#define ACTIVITY_WAIT_SIPI     3

/* segment access rights in the VMCS (25.4.1) */
#define VMX_AR_TYPE(t)  ((t)&0xf)
#define VMX_AR_S        (1u << 4)
#define VMX_AR_DPL(d)   (((d)&3) << 5)
#define VMX_AR_P        (1u << 7)
#define VMX_AR_AVL      (1u << 12)
#define VMX_AR_L        (1u << 13)
#define VMX_AR_DB       (1u << 14)
#define VMX_AR_G        (1u << 15)
#define VMX_AR_UNUSABLE (1u << 16)

/* ---- exit reasons, SDM Vol. 3C Appendix C and 28.2.1 ------------------------- */

#define EXIT_REASON_BASIC(r)    ((r)&0xffff)
#define EXIT_REASON_ENCLAVE     (1u << 27)
#define EXIT_REASON_PENDING_MTF (1u << 28)
#define EXIT_REASON_FROM_ROOT   (1u << 29)
#define EXIT_REASON_ENTRY_FAIL  (1u << 31)

#define EXIT_EXCEPTION_NMI    0
#define EXIT_EXTERNAL_INTR    1
#define EXIT_TRIPLE_FAULT     2
#define EXIT_INIT             3
#define EXIT_SIPI             4
#define EXIT_IO_SMI           5
#define EXIT_OTHER_SMI        6
#define EXIT_INTR_WINDOW      7
#define EXIT_NMI_WINDOW       8
#define EXIT_TASK_SWITCH      9
#define EXIT_CPUID            10
#define EXIT_GETSEC           11
#define EXIT_HLT              12
#define EXIT_INVD             13
#define EXIT_INVLPG           14
#define EXIT_RDPMC            15
#define EXIT_RDTSC            16
#define EXIT_RSM              17
#define EXIT_VMCALL           18
#define EXIT_VMCLEAR          19
#define EXIT_VMLAUNCH         20
#define EXIT_VMPTRLD          21
#define EXIT_VMPTRST          22
#define EXIT_VMREAD           23
#define EXIT_VMRESUME         24
#define EXIT_VMWRITE          25
#define EXIT_VMXOFF           26
#define EXIT_VMXON            27
#define EXIT_CR_ACCESS        28
#define EXIT_DR_ACCESS        29
#define EXIT_IO               30
#define EXIT_RDMSR            31
#define EXIT_WRMSR            32
#define EXIT_INVALID_GUEST    33
#define EXIT_MSR_LOAD_FAIL    34
#define EXIT_MWAIT            36
#define EXIT_MTF              37
#define EXIT_MONITOR          39
#define EXIT_PAUSE            40
#define EXIT_MCE_DURING_ENTRY 41
#define EXIT_TPR_BELOW        43
#define EXIT_APIC_ACCESS      44
#define EXIT_VIRT_EOI         45
#define EXIT_GDTR_IDTR        46
#define EXIT_LDTR_TR          47
#define EXIT_EPT_VIOLATION    48
#define EXIT_EPT_MISCONFIG    49
#define EXIT_INVEPT           50
#define EXIT_RDTSCP           51
#define EXIT_PREEMPT_TIMER    52
#define EXIT_INVVPID          53
#define EXIT_WBINVD           54
#define EXIT_XSETBV           55
#define EXIT_APIC_WRITE       56
#define EXIT_RDRAND           57
#define EXIT_INVPCID          58
#define EXIT_VMFUNC           59
#define EXIT_ENCLS            60
#define EXIT_RDSEED           61
#define EXIT_PML_FULL         62
#define EXIT_XSAVES           63
#define EXIT_XRSTORS          64
#define EXIT_PCONFIG          65
#define EXIT_SPP              66
#define EXIT_UMWAIT           67
#define EXIT_TPAUSE           68
#define EXIT_LOADIWKEY        69
#define EXIT_ENCLV            70
#define EXIT_ENQCMD_PASID     72
#define EXIT_ENQCMDS_PASID    73
#define EXIT_BUS_LOCK         74
#define EXIT_INSN_TIMEOUT     75

/* exit qualification of exit 33 (invalid guest state), SDM Vol. 3C 27.8 */
#define ENTRY_FAIL_QUAL_PDPTE    2
#define ENTRY_FAIL_QUAL_NMI_STI  3
#define ENTRY_FAIL_QUAL_LINK_PTR 4

/* ---- VM-instruction error numbers, SDM Vol. 3C 31.4 (Table 31-1) -------------- */

#define VMXERR_VMCALL_IN_ROOT          1
#define VMXERR_VMCLEAR_BAD_ADDR        2
#define VMXERR_VMCLEAR_VMXON_PTR       3
#define VMXERR_VMLAUNCH_NOT_CLEAR      4
#define VMXERR_VMRESUME_NOT_LAUNCHED   5
#define VMXERR_VMRESUME_AFTER_VMXOFF   6
#define VMXERR_ENTRY_BAD_CTRL          7
#define VMXERR_ENTRY_BAD_HOST          8
#define VMXERR_VMPTRLD_BAD_ADDR        9
#define VMXERR_VMPTRLD_VMXON_PTR       10
#define VMXERR_VMPTRLD_BAD_REVISION    11
#define VMXERR_UNSUPPORTED_FIELD       12
#define VMXERR_VMWRITE_READ_ONLY       13
#define VMXERR_VMXON_IN_ROOT           15
#define VMXERR_ENTRY_BAD_EXEC_VMCS     16
#define VMXERR_ENTRY_EXEC_NOT_LAUNCHED 17
#define VMXERR_ENTRY_EXEC_NOT_VMXON    18
#define VMXERR_VMCALL_NOT_CLEAR        19
#define VMXERR_VMCALL_BAD_EXIT_CTRL    20
#define VMXERR_VMCALL_BAD_MSEG_REV     22
#define VMXERR_VMXOFF_DUAL_MONITOR     23
#define VMXERR_VMCALL_BAD_SMM_FEAT     24
#define VMXERR_ENTRY_BAD_EXEC_CTRL     25
#define VMXERR_ENTRY_MOVSS_BLOCKING    26
#define VMXERR_INVEPT_INVVPID_OPERAND  28

/* ---- struct vmx_vcpu layout, shared with vmx_entry.S ------------------------- */

/* guest GPR slots, indexed by the x86 register number (RSP lives in the VMCS) */
#define VMX_GPR_RAX          0
#define VMX_GPR_RCX          1
#define VMX_GPR_RDX          2
#define VMX_GPR_RBX          3
#define VMX_GPR_RSP          4 /* unused slot */
#define VMX_GPR_RBP          5
#define VMX_GPR_RSI          6
#define VMX_GPR_RDI          7
#define VMX_GPR_R8           8
#define VMX_GPR_R9           9
#define VMX_GPR_R10          10
#define VMX_GPR_R11          11
#define VMX_GPR_R12          12
#define VMX_GPR_R13          13
#define VMX_GPR_R14          14
#define VMX_GPR_R15          15
#define VMX_VCPU_GPR(n)      ((n)*8)
#define VMX_VCPU_LAUNCHED    128
#define VMX_VCPU_FAIL_RFLAGS 136
#define VMX_VCPU_HOST_GDTR   144 /* 2-byte limit + 8-byte base, 16 reserved */
#define VMX_VCPU_HOST_IDTR   160
#define VMX_VCPU_EXIT_RFLAGS 176 /* host RFLAGS right after the VM exit */
#define VMX_VCPU_EXIT_GDTR   184 /* host GDTR/IDTR right after the VM exit */
#define VMX_VCPU_EXIT_IDTR   200

/* RAX of the VMCALL a guest entry function makes when it returns ("nvct") */
#define VMX_GUEST_RETURNED 0x6e766374
/* RAX of the VMCALL the handlers of vmx_guest_idt() make ("evnt") */
#define VMX_GUEST_EVENT    0x65766e74

#ifndef __ASSEMBLER__

/* ===== library ============================================================== */

/* ---- outcome of a VMX instruction (SDM Vol. 3C 31.2) ----------------------- */

enum vmx_outcome {
    VMX_SUCCEED = 0,      /* CF = ZF = 0 */
    VMX_FAIL_INVALID = 1, /* CF = 1: no current VMCS to hold an error number */
    VMX_FAIL_VALID = 2,   /* ZF = 1: error number in the VM-instruction error field */
};

struct vmx_res {
    enum vmx_outcome outcome;
    uint32_t error; /* VM-instruction error field, for VMX_FAIL_VALID; else 0 */
};

static inline bool vmx_ok(struct vmx_res r) { return r.outcome == VMX_SUCCEED; }
static inline bool vmx_res_is(struct vmx_res r, enum vmx_outcome o, uint32_t err)
{
    return r.outcome == o && (o != VMX_FAIL_VALID || r.error == err);
}
/* "VMsucceed", "VMfailInvalid", "VMfailValid(15: VMXON executed in VMX root operation)" */
const char *vmx_res_str(struct vmx_res r);

/* check() that r is the outcome wanted (err only matters for VMX_FAIL_VALID) */
#define check_vmx(what, r, want, err)                                                    \
    check(vmx_res_is((r), (want), (err)), "%s: got %s, want %s", (what), vmx_res_str(r), \
          vmx_res_str((struct vmx_res){(want), (want) == VMX_FAIL_VALID ? (err) : 0}))

/* ---- instruction wrappers --------------------------------------------------
 * Each executes the instruction once and decodes RFLAGS; on VMfailValid it
 * reads the VM-instruction error field. They raise whatever the instruction
 * raises (#UD outside VMX operation, #GP ...): use vmx_insn_safe() where a
 * fault is the expected outcome. */
struct vmx_res vmxon(uint64_t pa);
struct vmx_res vmxoff(void);
struct vmx_res vmclear(uint64_t pa);
struct vmx_res vmptrld(uint64_t pa);
struct vmx_res vmptrst(uint64_t *pa);
struct vmx_res vmread(uint64_t field, uint64_t *val);
struct vmx_res vmwrite(uint64_t field, uint64_t val);
struct vmx_res invept(uint64_t type, uint64_t eptp);
struct vmx_res invvpid(uint64_t type, uint16_t vpid, uint64_t gla);

enum vmx_insn {
    VMX_INSN_VMXON,
    VMX_INSN_VMXOFF,
    VMX_INSN_VMCLEAR,
    VMX_INSN_VMPTRLD,
    VMX_INSN_VMPTRST,
    VMX_INSN_VMREAD,
    VMX_INSN_VMWRITE,
    VMX_INSN_INVEPT,
    VMX_INSN_INVVPID,
};
/* Runs one wrapper under catch_fault(): a is the address/field/type, b the
 * value/second operand (INVVPID: vpid in b[15:0], address in c), *out gets
 * VMREAD's value or VMPTRST's pointer. Returns the vector or NO_FAULT; *res
 * is valid only for NO_FAULT. */
int vmx_insn_safe(enum vmx_insn op, uint64_t a, uint64_t b, uint64_t c, struct vmx_res *res,
                  uint64_t *out, struct fault *f);

/* Checked VMCS access for setup: a failure is the hypervisor's (FAIL, with
 * the field and the error number). */
uint64_t vmcs_read(uint64_t field);
void vmcs_write(uint64_t field, uint64_t val);
static inline void vmcs_set_bits(uint64_t field, uint64_t bits)
{
    vmcs_write(field, vmcs_read(field) | bits);
}
static inline void vmcs_clear_bits(uint64_t field, uint64_t bits)
{
    vmcs_write(field, vmcs_read(field) & ~bits);
}

/* ---- capabilities, SDM Vol. 3C Appendix A ------------------------------------ */

/* A control's allowed settings: bits set in must1 must be 1 (allowed-0
 * settings are 1), bits clear in may1 must be 0 (allowed-1 settings). */
struct vmx_ctl_cap {
    uint32_t must1;
    uint32_t may1;
    uint32_t msr; /* the MSR it was read from, for messages */
};

enum vmx_ctl { VMX_CTL_PIN, VMX_CTL_PROC, VMX_CTL_PROC2, VMX_CTL_EXIT, VMX_CTL_ENTRY, VMX_CTL_N };

struct vmx_caps {
    uint64_t basic, misc, vmcs_enum, ept_vpid, vmfunc, proc3;
    uint64_t cr0_fixed0, cr0_fixed1, cr4_fixed0, cr4_fixed1;
    /* effective allowed settings: the TRUE_* MSRs when IA32_VMX_BASIC[55]
     * is set; PROC2 all zero when the primary controls cannot set bit 31 */
    struct vmx_ctl_cap ctl[VMX_CTL_N];
    /* the non-TRUE MSRs (same as ctl[] without TRUE controls) */
    struct vmx_ctl_cap legacy[VMX_CTL_N];
    bool has_true, has_proc2, has_ept_vpid, has_vmfunc, has_proc3;
};

/* CPUID.1:ECX.VMX */
bool vmx_supported(void);
/* Reads every capability MSR the CPU advertises (cached for the probe).
 * An MSR that CPUID/VMX_BASIC/the controls say exists but that faults ->
 * fail(). Skips if VMX is not supported. */
const struct vmx_caps *vmx_caps(void);
const char *vmx_ctl_name(enum vmx_ctl c); /* "IA32_VMX_TRUE_PROCBASED_CTLS" etc. */

/* Adjusts want to the allowed settings of control c: sets the bits that
 * must be 1, clears the bits that cannot be 1. *missing (if not NULL) gets
 * the bits of want that cannot be 1. */
uint32_t vmx_ctl_adjust(enum vmx_ctl c, uint32_t want, uint32_t *missing);
/* true if every bit of bits may be 1 / may be 0 */
bool vmx_ctl_can_set(enum vmx_ctl c, uint32_t bits);
bool vmx_ctl_can_clear(enum vmx_ctl c, uint32_t bits);
/* skip() unless every bit of bits may be 1; what names the control(s) */
void vmx_require_ctl(enum vmx_ctl c, uint32_t bits, const char *what);

/* ---- entering VMX operation --------------------------------------------------
 * SDM Vol. 3C 24.7: IA32_FEATURE_CONTROL locked with VMXON outside SMX
 * (locks it if the firmware left it unlocked, skips if it is locked
 * without), CR0/CR4 adjusted to the FIXED0/FIXED1 MSRs, CR4.VMXE set, a
 * VMXON region with the revision id. */

/* Prepares everything but VMXON; returns the VMXON region's address.
 * skip() if VMX is not usable. */
uint64_t vmx_prepare(void);
/* vmx_prepare() + VMXON, which must succeed (else fail()). Returns the
 * VMXON pointer. */
uint64_t vmx_on(void);
/* A fresh VMCS region with the revision id (not yet VMCLEARed). */
void *vmx_alloc_vmcs(void);

/* ---- running a guest ------------------------------------------------------------- */

struct vmx_vcpu {
    uint64_t gpr[16];     /* guest GPRs (VMX_GPR_*), loaded at entry, saved at exit */
    uint64_t launched;    /* VMLAUNCH succeeded: vmx_run() uses VMRESUME */
    uint64_t fail_rflags; /* RFLAGS after a VMLAUNCH/VMRESUME that failed */
    uint8_t host_gdtr[16];
    uint8_t host_idtr[16];
    uint64_t exit_rflags;  /* host RFLAGS as the VM exit left them */
    uint8_t exit_gdtr[16]; /* host GDTR/IDTR as the VM exit left them (the stub */
    uint8_t exit_idtr[16]; /* then reloads the kernel's own limits) */
    /* ---- not used by assembly ---- */
    void *vmcs;
    uint64_t vmcs_pa;
    void *stack;          /* guest stack (pages), RSP starts at its top */
    struct vmx_res entry; /* outcome of the last VMLAUNCH/VMRESUME */
    bool tried_launch;    /* the last vmx_run() executed VMLAUNCH (not VMRESUME) */
    /* VM-exit information of the last exit (SDM Vol. 3C 28.2) */
    uint32_t exit_reason, exit_intr_info, exit_intr_err, idt_info, idt_err;
    uint32_t insn_len, insn_info;
    uint64_t exit_qual, guest_rip, guest_rsp, guest_rflags, gpa;
    /* What the guest run awaits ("the HLT exit"), or NULL: see vmx_run(). */
    const char *watchdog;
};

/* Returned by vmx_run() when VMLAUNCH/VMRESUME itself failed (VMfail):
 * v->entry holds the outcome. */
#define VMX_RUN_VMFAIL 0xffffffffu

/*
 * Allocates a vCPU with a new VMCS, VMCLEARs and VMPTRLDs it and fills in
 * the default state (vmx_setup_vmcs()): the guest starts at entry in
 * 64-bit mode at CPL 0 with the host's CR0/CR3/CR4/EFER/PAT, GDT, IDT and
 * segments, RSP at the top of its own 16 KiB stack, RFLAGS = 2. If entry
 * returns, the guest executes VMCALL with RAX = VMX_GUEST_RETURNED.
 * Controls: only the must-be-1 bits, plus "host address-space size",
 * "IA-32e mode guest", load/save IA32_EFER and IA32_PAT where allowed,
 * "unconditional I/O exiting" where allowed; exception bitmap all ones.
 * Requires VMX operation (vmx_on()).
 */
struct vmx_vcpu *vmx_vcpu_new(void (*entry)(void));
/* Writes the default host and guest state and controls into the current VMCS. */
void vmx_setup_vmcs(struct vmx_vcpu *v, void (*entry)(void));

/* VMLAUNCH (v->launched == 0) or VMRESUME of the current VMCS (which must
 * be v's: vmx_run() does not VMPTRLD), with the guest GPRs of v. Returns
 * the full exit reason (exit info in v), or VMX_RUN_VMFAIL. A successful
 * VM entry (no VMfail, exit reason bit 31 clear) sets v->launched.
 *
 * With v->watchdog set the run is watched, so that a guest that gives no
 * exit of its own (halted, waiting, spinning) ends after about a second
 * (WATCHDOG_MS): if the VMCS does not activate the VMX-preemption timer and
 * IA32_VMX_PINBASED_CTLS allows it, the timer is activated for this entry
 * with a value worth WATCHDOG_MS of TSC (exit 52); and if external-
 * interrupt exiting is on or allowed, it is set for this entry and the
 * local APIC timer is armed (exit 1; the host then takes the interrupt),
 * a second after the preemption timer where that was added, so that a
 * hypervisor that loses the timer's expiry does not hang the level. The
 * controls and the timer field are restored after the exit. A watchdog
 * exit is recorded as a failed check naming v->watchdog and what ended
 * the run, and returned as usual. */
uint32_t vmx_run(struct vmx_vcpu *v);
/* The assembly core: returns 0 after a VM exit, 1 after VMfail. */
int vmx_enter(struct vmx_vcpu *v);
/* Host RIP of every VM exit (vmx_entry.S). */
void vmx_exit_stub(void);
/* Where a guest entry function returns to (vmx_entry.S). */
void vmx_guest_return(void);

/*
 * Gives the guest its own IDT (GUEST_IDTR): 256 64-bit interrupt gates
 * (selector = the host CS) whose handlers execute VMCALL with
 * RAX = VMX_GUEST_EVENT, RBX = vector, RCX = error code (~0 if the vector
 * has none), RDX = the RIP the event pushed; resumed after that VMCALL
 * (vmx_skip_insn()), a handler IRETs. Returns the IDT.
 */
void *vmx_guest_idt(struct vmx_vcpu *v);
#define VMX_NO_ERRCODE (~0ull)

/* Guest RIP += VM-exit instruction length (for instruction exits). */
void vmx_skip_insn(struct vmx_vcpu *v);

/* vmx_run() and check that it is a VM exit with basic reason `reason`
 * (and no entry failure); on anything else a failed check with
 * vmx_exit_str(), and false. */
bool vmx_run_expect(struct vmx_vcpu *v, unsigned reason, const char *what);

/* The VM-exit instruction-information field, SDM Vol. 3C 28.2.5 (Tables
 * 28-11 to 28-15): its encodings, and a table of instruction exits to check. */
#define II_SCALE(s) ((uint32_t)(s))
#define II_REG1(r)  ((uint32_t)(r) << 3)
#define II_ADDR64   (2u << 7)
#define II_REGFORM  (1u << 10)
#define II_OSZ(n)   ((uint32_t)(n) << 11)
#define II_SEG(s)   ((uint32_t)(s) << 15)
#define II_INDEX(r) ((uint32_t)(r) << 18)
#define II_NO_INDEX (1u << 22)
#define II_BASE(r)  ((uint32_t)(r) << 23)
#define II_NO_BASE  (1u << 27)
#define II_REG2(r)  ((uint32_t)(r) << 28) /* VMX instructions: the second register */
#define II_IDENT(n) ((uint32_t)(n) << 28) /* descriptor-table exits: which instruction */
#define II_SEG_DS   3

struct vmx_insn_case {
    const char *at, *next, *name; /* the instruction is [at, next) */
    unsigned reason;
    uint32_t info, mask; /* mask 0: the field is undefined, not checked */
    bool qual_defined;   /* the exit qualification is the displacement `qual` */
    uint64_t qual;
};

/* Runs each case from its own RIP and checks the exit reason, the guest RIP,
 * the instruction length, the defined bits of the instruction information
 * and (where defined) the exit qualification. */
void vmx_run_insn_cases(struct vmx_vcpu *v, const struct vmx_insn_case *cs, unsigned n);

/* "exit 18 (VMCALL) qual=0 rip=0x1234 len=3", "VMLAUNCH VMfailValid(7: ...)",
 * "entry failure 33 (invalid guest state) qual=0", with the vector for
 * exit 0. Static buffer. */
const char *vmx_exit_str(const struct vmx_vcpu *v);
const char *vmx_exit_reason_name(unsigned basic);
const char *vmx_error_name(uint32_t err);

/* ---- EPT, SDM Vol. 3C 29.3 ------------------------------------------------------ */

#define EPT_R          (1ull << 0)
#define EPT_W          (1ull << 1)
#define EPT_X          (1ull << 2)
#define EPT_RWX        (EPT_R | EPT_W | EPT_X)
#define EPT_MT(t)      ((uint64_t)(t) << 3) /* leaf memory type */
#define EPT_IGNORE_PAT (1ull << 6)
#define EPT_PS         (1ull << 7)
#define EPT_A          (1ull << 8)
#define EPT_D          (1ull << 9)
#define EPT_ADDR_MASK  0x000ffffffffff000ull
#define EPTP_MT(t)     ((uint64_t)(t) << 0)
#define EPTP_PWL(n)    ((uint64_t)((n)-1) << 3)
#define EPTP_AD        (1ull << 6)

/* EPT violation exit qualification, SDM Vol. 3C 28.2.1 (Table 28-7) */
#define EPT_VQ_READ        (1ull << 0)
#define EPT_VQ_WRITE       (1ull << 1)
#define EPT_VQ_FETCH       (1ull << 2)
#define EPT_VQ_READABLE    (1ull << 3)
#define EPT_VQ_WRITABLE    (1ull << 4)
#define EPT_VQ_EXECUTABLE  (1ull << 5)
#define EPT_VQ_GLA_VALID   (1ull << 7)
#define EPT_VQ_TRANSLATED  (1ull << 8)
#define EPT_VQ_NMI_UNBLOCK (1ull << 12)

/*
 * An identity EPT for the low 4 GiB (2 MiB pages, RWX, WB if supported
 * else UC, 4-level). skip() unless the capability MSRs allow enable EPT,
 * a 4-level walk and 2 MiB pages. Returns the EPTP.
 */
uint64_t vmx_ept_identity(void);
/* The 4 KiB EPT entry that maps gpa (< 4 GiB), splitting its 2 MiB page
 * into 4 KiB pages with the same attributes first. */
uint64_t *vmx_ept_pte(uint64_t eptp, uint64_t gpa);
/* Enables the secondary controls and "enable EPT" with eptp in the current
 * VMCS, then INVEPT. */
void vmx_use_ept(struct vmx_vcpu *v, uint64_t eptp);
/* INVEPT of eptp (single-context if supported, else all-context); fail()s
 * unless VMsucceed. */
void vmx_ept_flush(uint64_t eptp);

#endif /* !__ASSEMBLER__ */
#endif
