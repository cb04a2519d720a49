/* SPDX-License-Identifier: MIT */
/*
 * More VMX non-root exits: CR4 guest/host mask and read shadow, INVPCID,
 * PAUSE-loop exiting, GETSEC, the high MSR ranges of the MSR bitmap and
 * string I/O with its exit information.
 */
#include "vmx.h"

#define CR4_TSD  BIT(2)
#define CR4_SMXE BIT(14)

extern const char vmx_ix_cr4_mov[];
GUEST(vmx_ix_cr4_guest, "    mov %cr4, %rax\n"
                        "    mov %rax, %cr4\n"
                        "    mov %rax, %rcx\n"
                        "    and $~4, %rcx\n"
                        "vmx_ix_cr4_mov:\n"
                        "    mov %rcx, %cr4\n"
                        "    vmcall\n"
                        "    ud2");

PROBE(vmx_intercept_cr4_shadow, "vmx.intercept.cr4_shadow", "VMX",
      "With CR4 guest/host mask = TSD and read shadow TSD=1 (real guest CR4.TSD=0): guest MOV from "
      "CR4 reads TSD=1 without exit; MOV to CR4 of that value does not exit and leaves the real "
      "TSD 0; MOV CR4,RCX with TSD=0 (differing from the shadow) exits with reason 28, "
      "qualification 0x104 (CR4, MOV to CR, RCX), length 3",
      "Intel SDM Vol. 3C 25.6.6, 26.1.3, 26.3, 28.2.1", "sdm.25.6.6.cr-read-shadow",
      "sdm.25.6.6.cr-write-exit")
{
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ix_cr4_guest);
    uint64_t cr4 = vmcs_read(VMCS_GUEST_CR4);
    if (cr4 & CR4_TSD)
        error("the host runs with CR4.TSD=1");
    vmcs_write(VMCS_CR4_MASK, CR4_TSD);
    vmcs_write(VMCS_CR4_SHADOW, cr4 | CR4_TSD);
    if (!vmx_run_expect(v, EXIT_CR_ACCESS, "MOV CR4 with TSD differing from the shadow"))
        return;
    check_eq("guest RIP at the exit (earlier MOVs did not exit)", v->guest_rip,
             (uintptr_t)vmx_ix_cr4_mov);
    check_eq("exit qualification of MOV CR4, RCX", v->exit_qual, 0x104);
    check_eq("VM-exit instruction length", v->insn_len, 3);
    check_eq("guest RAX from MOV from CR4 (TSD from the read shadow)", v->gpr[VMX_GPR_RAX],
             cr4 | CR4_TSD);
    check_eq("guest CR4 after MOV to CR4 with TSD=1 (host-owned bit unchanged)",
             vmcs_read(VMCS_GUEST_CR4), cr4);
}

/* ---- INVPCID ---------------------------------------------------------------------- */

GUEST(vmx_ix_invpcid_guest, "invpcid (%rdi), %rax", "vmcall", "ud2");

/* instruction information of INVPCID (%rdi), %rax: 64-bit address size, DS,
 * no index, base RDI, reg2 RAX; bits 6:2 and 14:10 are undefined */
#define INVPCID_INFO_MASK (~0x7c7cu)
#define INVPCID_INFO_WANT ((2u << 7) | (3u << 15) | (1u << 22) | (7u << 23))

PROBE(vmx_intercept_invpcid, "vmx.intercept.invpcid", "VMX",
      "Guest INVPCID (type 2, all contexts): with enable INVPCID=0 it raises #UD (exit 0, vector "
      "6); "
      "with enable INVPCID=1 and INVLPG exiting=1 it exits with reason 58, length 5, qualification "
      "0 (no displacement) and instruction information 0x3c18100 (64-bit, DS, base RDI, reg2 RAX); "
      "with INVLPG exiting=0 it executes without exit",
      "Intel SDM Vol. 3C 25.6.2, 26.1.3, 26.3, 28.2.1, 28.2.5", "sdm.26.3.invpcid-ud",
      "sdm.26.1.3.invlpg-invpcid", "sdm.C.reason-58-invpcid")
{
    vmx_require_ctl(VMX_CTL_PROC2, PROC2_INVPCID, "enable INVPCID");
    vmx_require_ctl(VMX_CTL_PROC, PROC_INVLPG_EXITING, "INVLPG exiting");
    if (!(cpuid(0, 0).a >= 7 && (cpuid(7, 0).b & BIT(10))))
        skip("CPUID.(EAX=07H,ECX=0):EBX.INVPCID[bit 10]=0");
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ix_invpcid_guest);
    uint64_t *desc = alloc_page();
    v->gpr[VMX_GPR_RDI] = (uintptr_t)desc;
    v->gpr[VMX_GPR_RAX] = 2;
    vmcs_set_bits(VMCS_PROC_CTLS, PROC_SECONDARY_CTLS);
    vmcs_clear_bits(VMCS_PROC_CTLS2, PROC2_INVPCID);
    if (vmx_run_expect(v, EXIT_EXCEPTION_NMI, "INVPCID with enable INVPCID=0")) {
        check_eq("VM-exit interruption information (#UD)", v->exit_intr_info,
                 INTR_INFO_VALID | (INTR_TYPE_HW_EXC << 8) | UD_VECTOR);
        check_eq("guest RIP", v->guest_rip, (uintptr_t)vmx_ix_invpcid_guest);
    }
    vmcs_set_bits(VMCS_PROC_CTLS2, PROC2_INVPCID);
    vmcs_set_bits(VMCS_PROC_CTLS, PROC_INVLPG_EXITING);
    vmcs_write(VMCS_GUEST_RIP, (uintptr_t)vmx_ix_invpcid_guest);
    if (vmx_run_expect(v, EXIT_INVPCID, "INVPCID with enable INVPCID=1 and INVLPG exiting")) {
        check_eq("guest RIP", v->guest_rip, (uintptr_t)vmx_ix_invpcid_guest);
        check_eq("VM-exit instruction length", v->insn_len, 5);
        check_eq("exit qualification (displacement)", v->exit_qual, 0);
        check_eq("VM-exit instruction information (defined bits)", v->insn_info & INVPCID_INFO_MASK,
                 INVPCID_INFO_WANT);
    }
    if (!vmx_ctl_can_clear(VMX_CTL_PROC, PROC_INVLPG_EXITING))
        return;
    vmcs_clear_bits(VMCS_PROC_CTLS, PROC_INVLPG_EXITING);
    vmcs_write(VMCS_GUEST_RIP, (uintptr_t)vmx_ix_invpcid_guest);
    vmx_run_expect(v, EXIT_VMCALL, "INVPCID with enable INVPCID=1 and INVLPG exiting=0");
}

/* ---- PAUSE-loop exiting ----------------------------------------------------------- */

extern const char vmx_ix_ple_pause[];
GUEST(vmx_ix_ple_guest, "vmx_ix_ple_pause:", "pause", "add $1, %rbx", "jmp vmx_ix_ple_pause");

/* A CPL-0 guest spinning on PAUSE with PAUSE-loop exiting, PLE_Gap = gap,
 * PLE_Window = 4096: it must loop before the exit (reason 40 at a PAUSE). */
static void ple_run(uint32_t gap, const char *what)
{
    vmx_require_ctl(VMX_CTL_PROC2, PROC2_PLE, "PAUSE-loop exiting");
    if (!vmx_ctl_can_clear(VMX_CTL_PROC, PROC_PAUSE_EXITING))
        skip("%s requires PAUSE exiting: PAUSE-loop exiting is not reached",
             vmx_ctl_name(VMX_CTL_PROC));
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ix_ple_guest);
    vmcs_set_bits(VMCS_PROC_CTLS, PROC_SECONDARY_CTLS);
    vmcs_set_bits(VMCS_PROC_CTLS2, PROC2_PLE);
    vmcs_write(VMCS_PLE_GAP, gap);
    vmcs_write(VMCS_PLE_WINDOW, 4096);
    if (vmx_ctl_can_set(VMX_CTL_PIN, PIN_PREEMPTION_TIMER)) {
        vmcs_set_bits(VMCS_PIN_CTLS, PIN_PREEMPTION_TIMER);
        vmcs_write(VMCS_PREEMPTION_TIMER, 200000000u >> VMX_MISC_TIMER_RATIO(vmx_caps()->misc));
    } else {
        v->watchdog = "the PAUSE-loop exit (40)"; /* the APIC timer bounds the loop */
    }
    if (!vmx_run_expect(v, EXIT_PAUSE, what))
        return;
    note("PLE_Gap %u: the guest looped %llu times before the PAUSE-loop exit", gap,
         (unsigned long long)v->gpr[VMX_GPR_RBX]);
    check_eq("guest RIP (the PAUSE)", v->guest_rip, (uintptr_t)vmx_ix_ple_pause);
    check_eq("VM-exit instruction length", v->insn_len, 2);
    check(v->gpr[VMX_GPR_RBX] > 0,
          "PLE_Gap %u: PAUSE-loop exit on the first PAUSE after VM entry "
          "(that PAUSE starts a loop: no exit before PLE_Window has passed)",
          gap);
}

PROBE(vmx_intercept_ple, "vmx.intercept.ple", "VMX",
      "With PAUSE-loop exiting (PAUSE exiting off), PLE_Gap = 128 and PLE_Window = 4096, a CPL-0 "
      "guest spinning on PAUSE loops and then exits with reason 40 at a PAUSE, length 2; the "
      "VMX-preemption timer (where offered) bounds the wait",
      "Intel SDM Vol. 3C 25.6.13, 26.1.3", "sdm.25.6.13.ple-fields", "sdm.26.1.3.pause-ple")
{
    ple_run(128, "guest PAUSE loop, PLE_Gap 128");
}

PROBE(vmx_intercept_ple_first_pause, "vmx.intercept.ple_first_pause", "VMX",
      "PAUSE-loop exiting with PLE_Gap = 0x7fffffff and PLE_Window = 4096: the first PAUSE at "
      "CPL 0 after VM entry is the first of a loop whatever the gap, so the guest loops for "
      "PLE_Window before the exit with reason 40 at a PAUSE",
      "Intel SDM Vol. 3C 26.1.3 (PAUSE-loop exiting)", "sdm.26.1.3.pause-ple")
{
    ple_run(0x7fffffffu, "guest PAUSE loop, PLE_Gap 0x7fffffff");
}

/* ---- GETSEC ----------------------------------------------------------------------- */

GUEST(vmx_ix_getsec_guest, "    xor %eax, %eax\n"
                           "    xor %ebx, %ebx\n"
                           "vmx_ix_getsec:\n"
                           "    getsec\n"
                           "    vmcall\n"
                           "    ud2");
extern const char vmx_ix_getsec[];

PROBE(vmx_intercept_getsec, "vmx.intercept.getsec", "VMX",
      "Guest GETSEC[CAPABILITIES] with guest CR4.SMXE=0 raises #UD (exit 0, vector 6, RIP = the "
      "GETSEC): the #UD has priority over the unconditional VM exit; where SMX is offered "
      "(CPUID.1:ECX.SMX and IA32_VMX_CR4_FIXED1 bit 14), with guest CR4.SMXE=1 it exits with "
      "reason 11, length 2",
      "Intel SDM Vol. 3C 26.1.1, 26.1.2, 28.2.1", "sdm.26.1.1.fault-priority",
      "sdm.C.reason-11-getsec")
{
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ix_getsec_guest);
    uint64_t cr4 = vmcs_read(VMCS_GUEST_CR4);
    vmcs_write(VMCS_GUEST_CR4, cr4 & ~CR4_SMXE);
    if (vmx_run_expect(v, EXIT_EXCEPTION_NMI, "GETSEC with guest CR4.SMXE=0")) {
        check_eq("VM-exit interruption information (#UD)", v->exit_intr_info,
                 INTR_INFO_VALID | (INTR_TYPE_HW_EXC << 8) | UD_VECTOR);
        check_eq("guest RIP (the GETSEC)", v->guest_rip, (uintptr_t)vmx_ix_getsec);
    }
    if (!(cpuid(1, 0).c & CPUID_1_ECX_SMX) || !(vmx_caps()->cr4_fixed1 & CR4_SMXE)) {
        note("SMX not offered (CPUID.1:ECX.SMX[bit 6]=%u, IA32_VMX_CR4_FIXED1[14]=%u): GETSEC exit "
             "part not run",
             (cpuid(1, 0).c & CPUID_1_ECX_SMX) ? 1 : 0,
             (vmx_caps()->cr4_fixed1 & CR4_SMXE) ? 1 : 0);
        return;
    }
    vmcs_write(VMCS_GUEST_CR4, cr4 | CR4_SMXE);
    vmcs_write(VMCS_GUEST_RIP, (uintptr_t)vmx_ix_getsec_guest);
    if (vmx_run_expect(v, EXIT_GETSEC, "GETSEC with guest CR4.SMXE=1")) {
        check_eq("guest RIP (the GETSEC)", v->guest_rip, (uintptr_t)vmx_ix_getsec);
        check_eq("VM-exit instruction length", v->insn_len, 2);
    }
}

/* ---- MSR bitmap: high range, write-only bits -------------------------------------- */

extern const char vmx_ix_msrhi_rd[], vmx_ix_msrhi_wr[], vmx_ix_msrlo_rd[], vmx_ix_msrlo_wr[];
GUEST(vmx_ix_msrhi_guest, "    mov $0xc0000102, %ecx\n"
                          "vmx_ix_msrhi_rd:\n"
                          "    rdmsr\n"
                          "vmx_ix_msrhi_wr:\n"
                          "    wrmsr\n"
                          "    mov $0x174, %ecx\n"
                          "vmx_ix_msrlo_rd:\n"
                          "    rdmsr\n"
                          "vmx_ix_msrlo_wr:\n"
                          "    wrmsr\n"
                          "    vmcall\n"
                          "    ud2");

static void bm_set(uint8_t *bm, uint32_t msr, bool write)
{
    unsigned base = (write ? 2048 : 0) + (msr >= 0xc0000000u ? 1024 : 0);
    uint32_t n = msr & 0x1fff;
    bm[base + n / 8] |= (uint8_t)(1u << (n % 8));
}

PROBE(vmx_intercept_msr_bitmap_high, "vmx.intercept.msr_bitmap_high", "VMX",
      "MSR bitmaps, high range and write bits: with the read-high bit of IA32_KERNEL_GS_BASE "
      "(0xC0000102, byte 1024+0x20) set, guest RDMSR of it exits with reason 31 while its WRMSR "
      "(write-high bit clear) does not; with the write-low bit of IA32_SYSENTER_CS set, its RDMSR "
      "does not exit and its WRMSR exits with reason 32; with only the write-high bit (byte "
      "3072+0x20) set, RDMSR 0xC0000102 runs and WRMSR exits with RCX = 0xC0000102",
      "Intel SDM Vol. 3C 25.6.9, 26.1.3", "sdm.25.6.9.msr-bitmaps")
{
    vmx_require_ctl(VMX_CTL_PROC, PROC_MSR_BITMAPS, "use MSR bitmaps");
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ix_msrhi_guest);
    uint8_t *bm = alloc_page();
    bm_set(bm, MSR_KERNEL_GS_BASE, false);
    bm_set(bm, MSR_IA32_SYSENTER_CS, true);
    vmcs_write(VMCS_MSR_BITMAP, (uintptr_t)bm);
    vmcs_set_bits(VMCS_PROC_CTLS, PROC_MSR_BITMAPS);
    uint64_t kgs = rdmsr(MSR_KERNEL_GS_BASE);
    if (!vmx_run_expect(v, EXIT_RDMSR, "RDMSR 0xC0000102 with its read-high bit set"))
        return;
    check_eq("guest RIP", v->guest_rip, (uintptr_t)vmx_ix_msrhi_rd);
    check_eq("guest RCX", v->gpr[VMX_GPR_RCX], MSR_KERNEL_GS_BASE);
    /* emulate the read: the guest then writes the same value back */
    v->gpr[VMX_GPR_RAX] = (uint32_t)kgs;
    v->gpr[VMX_GPR_RDX] = kgs >> 32;
    vmx_skip_insn(v);
    if (!vmx_run_expect(v, EXIT_WRMSR, "WRMSR 0x174 with its write-low bit set"))
        return;
    check_eq("guest RIP (WRMSR 0xC0000102 and RDMSR 0x174 ran)", v->guest_rip,
             (uintptr_t)vmx_ix_msrlo_wr);
    check_eq("guest RCX", v->gpr[VMX_GPR_RCX], MSR_IA32_SYSENTER_CS);
    check_eq("IA32_KERNEL_GS_BASE after the guest's WRMSR of its own value",
             rdmsr(MSR_KERNEL_GS_BASE), kgs);
    memset(bm, 0, 4096);
    bm_set(bm, MSR_KERNEL_GS_BASE, true);
    vmcs_write(VMCS_GUEST_RIP, (uintptr_t)vmx_ix_msrhi_guest);
    if (!vmx_run_expect(v, EXIT_WRMSR, "WRMSR 0xC0000102 with its write-high bit set"))
        return;
    check_eq("guest RIP (RDMSR 0xC0000102 ran)", v->guest_rip, (uintptr_t)vmx_ix_msrhi_wr);
    check_eq("guest RCX", v->gpr[VMX_GPR_RCX], MSR_KERNEL_GS_BASE);
    check_eq("guest RDX:RAX from the unintercepted RDMSR",
             (v->gpr[VMX_GPR_RDX] << 32) | (uint32_t)v->gpr[VMX_GPR_RAX], kgs);
    wrmsr(MSR_KERNEL_GS_BASE, kgs);
}

/* ---- string I/O ----------------------------------------------------------------------- */

extern const char vmx_ix_ios_in[];
GUEST(vmx_ix_ios_guest, "rep outsb", "vmx_ix_ios_in:", "rep insb", "vmcall", "ud2");

PROBE(vmx_intercept_io_string, "vmx.intercept.io_string", "VMX",
      "With unconditional I/O exiting, guest REP OUTSB (DX=0x80, RCX=2, RSI=buffer) exits with "
      "reason 30 before executing: qualification 0x800030 (size 1, OUT, string, REP, port 0x80), "
      "guest-linear address = RSI, length 2, RCX still 2, and where IA32_VMX_BASIC[54] is set "
      "instruction information with address size 64-bit and segment DS; REP INSB exits with "
      "qualification 0x800038 and guest-linear address = RDI",
      "Intel SDM Vol. 3C 25.6.4, 28.2.1 (Table 28-5), 28.2.5 (Table 28-8), A.1",
      "sdm.28.2.1.qual-io", "sdm.28.2.1.guest-linear-address", "sdm.28.2.4.insn-info-ins-outs")
{
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ix_ios_guest);
    if (!(vmcs_read(VMCS_PROC_CTLS) & PROC_UNCOND_IO_EXITING) ||
        (vmcs_read(VMCS_PROC_CTLS) & PROC_IO_BITMAPS))
        skip("%s: unconditional I/O exiting cannot be 1", vmx_ctl_name(VMX_CTL_PROC));
    uint8_t *buf = alloc_page();
    bool info = (vmx_caps()->basic & VMX_BASIC_INOUT) != 0;
    v->gpr[VMX_GPR_RDX] = 0x80;
    v->gpr[VMX_GPR_RCX] = 2;
    v->gpr[VMX_GPR_RSI] = (uintptr_t)buf;
    v->gpr[VMX_GPR_RDI] = (uintptr_t)buf + 0x100;
    if (vmx_run_expect(v, EXIT_IO, "guest REP OUTSB")) {
        check_eq("guest RIP", v->guest_rip, (uintptr_t)vmx_ix_ios_guest);
        check_eq("exit qualification of REP OUTSB", v->exit_qual, 0x800030);
        check_eq("guest-linear address (RSI)", vmcs_read(VMCS_GUEST_LINEAR_ADDR), (uintptr_t)buf);
        check_eq("VM-exit instruction length", v->insn_len, 2);
        check_eq("guest RCX (nothing transferred)", v->gpr[VMX_GPR_RCX], 2);
        if (info)
            check_eq("instruction information (address size, segment)",
                     v->insn_info & ((7u << 7) | (7u << 15)), (2u << 7) | (3u << 15));
    }
    vmx_skip_insn(v);
    if (vmx_run_expect(v, EXIT_IO, "guest REP INSB")) {
        check_eq("guest RIP", v->guest_rip, (uintptr_t)vmx_ix_ios_in);
        check_eq("exit qualification of REP INSB", v->exit_qual, 0x800038);
        check_eq("guest-linear address (RDI)", vmcs_read(VMCS_GUEST_LINEAR_ADDR),
                 (uintptr_t)buf + 0x100);
        check_eq("VM-exit instruction length", v->insn_len, 2);
        if (info)
            check_eq("instruction information (address size)", v->insn_info & (7u << 7), 2u << 7);
    }
}
