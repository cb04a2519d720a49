/* SPDX-License-Identifier: MIT */
/*
 * VMX non-root operation: instructions and events that cause VM exits, and
 * the VM-exit information they record.
 */
#include "vmx.h"

extern const char vmx_ic_vmcall_1[], vmx_ic_vmcall_2[];
GUEST(vmx_ic_vmcall_guest, "    mov %rdx, %rbx\n"
                           "    not %rbx\n"
                           "    movabs $0x0123456789abcdef, %r15\n"
                           "vmx_ic_vmcall_1:\n"
                           "    vmcall\n"
                           "    add $1, %rbx\n"
                           "vmx_ic_vmcall_2:\n"
                           "    vmcall\n"
                           "    ud2");

PROBE(vmx_intercept_vmcall, "vmx.vmlaunch.vmcall", "VMX",
      "VMLAUNCH of a 64-bit guest that executes VMCALL: exit reason exactly 18 (bit 31 clear), "
      "guest RIP = the VMCALL, instruction length 3, exit qualification 0, IDT-vectoring info "
      "invalid, guest GPRs and RSP saved; after RIP += 3, VMRESUME reaches a second VMCALL with "
      "the guest's registers intact",
      "Intel SDM Vol. 3C 26.1.2, 28.2.1, 28.2.4, 28.2.5, 31.3 (VMLAUNCH/VMRESUME)",
      "sdm.C.reason-18-vmcall", "sdm.28.2.1.exit-reason-format", "sdm.28.2.4.insn-length",
      "sdm.28.2.3.idt-vectoring")
{
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ic_vmcall_guest);
    const uint64_t in = 0x1111222233334444ull;
    v->gpr[VMX_GPR_RDX] = in;
    uint64_t rsp0 = vmcs_read(VMCS_GUEST_RSP);
    uint32_t r = vmx_run(v);
    if (!check(r == EXIT_VMCALL, "VMLAUNCH: want exit reason 18 (VMCALL), got %s", vmx_exit_str(v)))
        return;
    check_eq("guest RIP at the first VMCALL exit", v->guest_rip, (uintptr_t)vmx_ic_vmcall_1);
    check_eq("VM-exit instruction length of VMCALL", v->insn_len, 3);
    check_eq("exit qualification of VMCALL", v->exit_qual, 0);
    check(!(v->idt_info & INTR_INFO_VALID), "IDT-vectoring information valid: %#x", v->idt_info);
    check_eq("guest RBX (NOT of the RDX the host loaded)", v->gpr[VMX_GPR_RBX], ~in);
    check_eq("guest R15 (set by the guest)", v->gpr[VMX_GPR_R15], 0x0123456789abcdefull);
    check_eq("guest RDX", v->gpr[VMX_GPR_RDX], in);
    check_eq("guest RSP", v->guest_rsp, rsp0);

    vmx_skip_insn(v);
    r = vmx_run(v);
    if (!check(r == EXIT_VMCALL, "VMRESUME: want exit reason 18 (VMCALL), got %s", vmx_exit_str(v)))
        return;
    check_eq("guest RIP at the second VMCALL exit", v->guest_rip, (uintptr_t)vmx_ic_vmcall_2);
    check_eq("VM-exit instruction length of VMCALL", v->insn_len, 3);
    check_eq("guest RBX after the resumed ADD", v->gpr[VMX_GPR_RBX], ~in + 1);
    check_eq("guest R15 after VMRESUME", v->gpr[VMX_GPR_R15], 0x0123456789abcdefull);
}

extern const char vmx_ic_cpuid_1[];
GUEST(vmx_ic_cpuid_guest, "    xor %eax, %eax\n"
                          "    xor %ecx, %ecx\n"
                          "    mov $0x5a5a, %ebx\n"
                          "    mov $0xa5a5, %edx\n"
                          "vmx_ic_cpuid_1:\n"
                          "    cpuid\n"
                          "    vmcall\n"
                          "    ud2");

PROBE(vmx_intercept_cpuid, "vmx.intercept.cpuid", "VMX",
      "A guest CPUID (leaf 0) exits unconditionally with exit reason 10 before executing: guest "
      "RIP = the CPUID, instruction length 2, exit qualification 0, RAX/RBX/RCX/RDX unchanged",
      "Intel SDM Vol. 3C 26.1.2, 28.2.1, 28.2.5", "sdm.26.1.2.unconditional",
      "sdm.C.reason-10-cpuid", "sdm.28.2.1.qual-zero", "sdm.28.2.4.insn-length",
      "sdm.28.1.fault-like-instruction")
{
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ic_cpuid_guest);
    if (!vmx_run_expect(v, EXIT_CPUID, "guest CPUID"))
        return;
    check_eq("guest RIP at the CPUID exit", v->guest_rip, (uintptr_t)vmx_ic_cpuid_1);
    check_eq("VM-exit instruction length of CPUID", v->insn_len, 2);
    check_eq("exit qualification of CPUID", v->exit_qual, 0);
    check_eq("guest RAX", v->gpr[VMX_GPR_RAX], 0);
    check_eq("guest RBX", v->gpr[VMX_GPR_RBX], 0x5a5a);
    check_eq("guest RCX", v->gpr[VMX_GPR_RCX], 0);
    check_eq("guest RDX", v->gpr[VMX_GPR_RDX], 0xa5a5);
    vmx_skip_insn(v);
    vmx_run_expect(v, EXIT_VMCALL, "VMRESUME after the CPUID exit");
}

extern const char vmx_ic_hlt_1[];
GUEST(vmx_ic_hlt_guest, "vmx_ic_hlt_1:", "hlt", "vmcall", "ud2");

PROBE(vmx_intercept_hlt, "vmx.intercept.hlt", "VMX",
      "With HLT exiting=1, a guest HLT exits with reason 12, guest RIP = the HLT, instruction "
      "length 1, exit qualification 0, activity state active; VMRESUME after RIP += 1 reaches the "
      "following VMCALL",
      "Intel SDM Vol. 3C 25.6.2, 26.1.3, 28.2.1", "sdm.26.1.3.hlt-mwait-monitor",
      "sdm.C.reason-12-hlt", "sdm.25.6.2.primary-controls")
{
    vmx_require_ctl(VMX_CTL_PROC, PROC_HLT_EXITING, "HLT exiting");
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ic_hlt_guest);
    vmcs_set_bits(VMCS_PROC_CTLS, PROC_HLT_EXITING);
    v->watchdog = "the HLT exit (12)"; /* an HLT that runs halts with IF=0 for good */
    if (!vmx_run_expect(v, EXIT_HLT, "guest HLT with HLT exiting"))
        return;
    v->watchdog = NULL;
    check_eq("guest RIP at the HLT exit", v->guest_rip, (uintptr_t)vmx_ic_hlt_1);
    check_eq("VM-exit instruction length of HLT", v->insn_len, 1);
    check_eq("exit qualification of HLT", v->exit_qual, 0);
    check_eq("guest activity state", vmcs_read(VMCS_GUEST_ACTIVITY_STATE), ACTIVITY_ACTIVE);
    vmx_skip_insn(v);
    vmx_run_expect(v, EXIT_VMCALL, "VMRESUME after the HLT exit");
}

extern const char vmx_ic_exc_ud[], vmx_ic_exc_gp[], vmx_ic_exc_bp[];
GUEST(vmx_ic_exc_guest, "vmx_ic_exc_ud:\n"
                        "    ud2\n"
                        "    movabs $0x8000000000000000, %rax\n"
                        "vmx_ic_exc_gp:\n"
                        "    mov (%rax), %rax\n"
                        "vmx_ic_exc_bp:\n"
                        "    int3\n"
                        "    vmcall\n"
                        "    ud2");

PROBE(vmx_intercept_exception_bitmap, "vmx.intercept.exception_bitmap", "VMX",
      "With the exception bitmap all ones, guest UD2 exits with reason 0 and interruption info "
      "valid/hardware exception/vector 6/no error code; a non-canonical load exits with vector 13, "
      "error code valid and 0; INT3 exits with vector 3, type software exception, instruction "
      "length 1; guest RIP is the faulting instruction each time",
      "Intel SDM Vol. 3C 25.6.3, 26.2, 28.2.2", "sdm.25.6.3.exception-bitmap",
      "sdm.26.2.exceptions", "sdm.28.2.2.intr-info", "sdm.28.2.2.intr-error-code",
      "sdm.C.reason-0-exception-nmi")
{
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ic_exc_guest);
    if (!vmx_run_expect(v, EXIT_EXCEPTION_NMI, "guest UD2"))
        return;
    check_eq("interruption info for #UD", v->exit_intr_info,
             INTR_INFO_VALID | (INTR_TYPE_HW_EXC << 8) | UD_VECTOR);
    check_eq("guest RIP at the #UD exit", v->guest_rip, (uintptr_t)vmx_ic_exc_ud);
    vmcs_write(VMCS_GUEST_RIP, v->guest_rip + 2);
    if (!vmx_run_expect(v, EXIT_EXCEPTION_NMI, "guest non-canonical load"))
        return;
    check_eq("interruption info for #GP", v->exit_intr_info,
             INTR_INFO_VALID | INTR_INFO_ERRCODE | (INTR_TYPE_HW_EXC << 8) | GP_VECTOR);
    check_eq("#GP error code", v->exit_intr_err, 0);
    check_eq("guest RIP at the #GP exit", v->guest_rip, (uintptr_t)vmx_ic_exc_gp);
    vmcs_write(VMCS_GUEST_RIP, (uintptr_t)vmx_ic_exc_bp);
    if (!vmx_run_expect(v, EXIT_EXCEPTION_NMI, "guest INT3"))
        return;
    check_eq("interruption info for INT3", v->exit_intr_info,
             INTR_INFO_VALID | (INTR_TYPE_SW_EXC << 8) | BP_VECTOR);
    check_eq("VM-exit instruction length of INT3", v->insn_len, 1);
    check_eq("guest RIP at the #BP exit", v->guest_rip, (uintptr_t)vmx_ic_exc_bp);
}

extern const char vmx_ic_msr_rd[], vmx_ic_msr_wr[];
GUEST(vmx_ic_msr_guest, "vmx_ic_msr_rd:\n"
                        "    rdmsr\n"
                        "    vmcall\n"
                        "vmx_ic_msr_wr:\n"
                        "    wrmsr\n"
                        "    vmcall\n"
                        "    ud2");

/* MSR bitmap bit for msr: read-low 0, read-high 1024, write-low 2048, write-high 3072 */
static void msr_bitmap_set(uint8_t *bm, uint32_t msr, bool write)
{
    unsigned base = (write ? 2048 : 0) + (msr >= 0xc0000000u ? 1024 : 0);
    uint32_t n = msr & 0x1fff;
    bm[base + n / 8] |= (uint8_t)(1u << (n % 8));
}

PROBE(vmx_intercept_msr, "vmx.intercept.msr", "VMX",
      "Without MSR bitmaps, guest RDMSR and WRMSR of IA32_SYSENTER_CS exit with reasons 31 and 32 "
      "(length 2, RCX preserved). With a zeroed MSR bitmap they execute without exit; with the "
      "read bit (and then write bit) of 0x174 set they exit again; RDMSR of 0x40000100, outside "
      "both bitmap ranges, exits even with bitmaps",
      "Intel SDM Vol. 3C 25.6.9, 26.1.3", "sdm.26.1.3.msr", "sdm.C.reason-31-rdmsr",
      "sdm.C.reason-32-wrmsr", "sdm.25.6.2.primary-controls")
{
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ic_msr_guest);
    const char *rip0 = vmx_ic_msr_rd;
    v->gpr[VMX_GPR_RCX] = MSR_IA32_SYSENTER_CS;
    if (vmcs_read(VMCS_PROC_CTLS) & PROC_MSR_BITMAPS)
        error("the default VMCS uses MSR bitmaps");
    if (vmx_run_expect(v, EXIT_RDMSR, "RDMSR without MSR bitmaps")) {
        check_eq("guest RIP at the RDMSR exit", v->guest_rip, (uintptr_t)vmx_ic_msr_rd);
        check_eq("VM-exit instruction length of RDMSR", v->insn_len, 2);
        check_eq("guest RCX", v->gpr[VMX_GPR_RCX], MSR_IA32_SYSENTER_CS);
    }
    vmcs_write(VMCS_GUEST_RIP, (uintptr_t)vmx_ic_msr_wr);
    if (vmx_run_expect(v, EXIT_WRMSR, "WRMSR without MSR bitmaps")) {
        check_eq("guest RIP at the WRMSR exit", v->guest_rip, (uintptr_t)vmx_ic_msr_wr);
        check_eq("VM-exit instruction length of WRMSR", v->insn_len, 2);
    }
    if (!vmx_ctl_can_set(VMX_CTL_PROC, PROC_MSR_BITMAPS)) {
        note("IA32_VMX_PROCBASED_CTLS allowed-1 bit 28 (use MSR bitmaps) clear: bitmap part not "
             "run");
        return;
    }
    uint8_t *bm = alloc_page();
    vmcs_write(VMCS_MSR_BITMAP, (uintptr_t)bm);
    vmcs_set_bits(VMCS_PROC_CTLS, PROC_MSR_BITMAPS);
    uint64_t sysenter_cs = rdmsr(MSR_IA32_SYSENTER_CS);
    vmcs_write(VMCS_GUEST_RIP, (uintptr_t)rip0);
    if (vmx_run_expect(v, EXIT_VMCALL, "RDMSR with a zeroed MSR bitmap")) {
        check_eq("guest RDX:RAX from RDMSR IA32_SYSENTER_CS (host value)",
                 (v->gpr[VMX_GPR_RDX] << 32) | (uint32_t)v->gpr[VMX_GPR_RAX], sysenter_cs);
    }
    vmx_skip_insn(v);
    vmx_run_expect(v, EXIT_VMCALL, "WRMSR with a zeroed MSR bitmap");
    msr_bitmap_set(bm, MSR_IA32_SYSENTER_CS, false);
    vmcs_write(VMCS_GUEST_RIP, (uintptr_t)rip0);
    vmx_run_expect(v, EXIT_RDMSR, "RDMSR with its read bit set");
    msr_bitmap_set(bm, MSR_IA32_SYSENTER_CS, true);
    vmcs_write(VMCS_GUEST_RIP, (uintptr_t)vmx_ic_msr_wr);
    vmx_run_expect(v, EXIT_WRMSR, "WRMSR with its write bit set");
    v->gpr[VMX_GPR_RCX] = 0x40000100;
    vmcs_write(VMCS_GUEST_RIP, (uintptr_t)rip0);
    vmx_run_expect(v, EXIT_RDMSR, "RDMSR 0x40000100 (outside the bitmap ranges)");
}

extern const char vmx_ic_io_1[], vmx_ic_io_2[];
GUEST(vmx_ic_io_guest, "vmx_ic_io_1:\n"
                       "    outb %al, $0x80\n"
                       "    mov $0x1234, %edx\n"
                       "vmx_ic_io_2:\n"
                       "    inl %dx, %eax\n"
                       "    vmcall\n"
                       "    ud2");

PROBE(vmx_intercept_io, "vmx.intercept.io", "VMX",
      "With unconditional I/O exiting, guest OUT 0x80,AL exits with reason 30, qualification "
      "0x800040 (size 1, OUT, immediate operand, port 0x80), length 2; IN EAX,DX with DX=0x1234 "
      "exits with qualification 0x1234000b (size 4, IN, DX operand), length 1",
      "Intel SDM Vol. 3C 25.6.4, 26.1.3, 28.2.1", "sdm.26.1.3.io", "sdm.28.2.1.qual-io",
      "sdm.C.reason-30-io", "sdm.25.6.2.primary-controls")
{
    vmx_require_ctl(VMX_CTL_PROC, PROC_UNCOND_IO_EXITING, "unconditional I/O exiting");
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ic_io_guest);
    vmcs_clear_bits(VMCS_PROC_CTLS, PROC_IO_BITMAPS);
    vmcs_set_bits(VMCS_PROC_CTLS, PROC_UNCOND_IO_EXITING);
    if (vmx_run_expect(v, EXIT_IO, "OUT 0x80, AL")) {
        check_eq("exit qualification of OUT 0x80, AL", v->exit_qual, 0x800040);
        check_eq("VM-exit instruction length of OUT imm8", v->insn_len, 2);
        check_eq("guest RIP at the OUT exit", v->guest_rip, (uintptr_t)vmx_ic_io_1);
    }
    vmx_skip_insn(v);
    if (vmx_run_expect(v, EXIT_IO, "IN EAX, DX")) {
        check_eq("exit qualification of IN EAX, DX", v->exit_qual, 0x12340000 | 0x8 | 3);
        check_eq("VM-exit instruction length of IN EAX, DX", v->insn_len, 1);
        check_eq("guest RIP at the IN exit", v->guest_rip, (uintptr_t)vmx_ic_io_2);
    }
}

extern const char vmx_ic_mtf_1[], vmx_ic_mtf_2[], vmx_ic_mtf_3[];
GUEST(vmx_ic_mtf_guest, "    nop\n"
                        "vmx_ic_mtf_1:\n"
                        "    add $1, %rbx\n"
                        "vmx_ic_mtf_2:\n"
                        "    add $1, %rbx\n"
                        "vmx_ic_mtf_3:\n"
                        "    vmcall\n"
                        "    ud2");

PROBE(vmx_intercept_mtf, "vmx.intercept.mtf", "MTF",
      "With monitor trap flag=1, each VM entry executes one guest instruction and exits with "
      "reason 37, qualification 0, guest RIP at the next instruction (NOP, then ADD, then ADD); "
      "with MTF cleared the guest runs to its VMCALL",
      "Intel SDM Vol. 3C 25.6.2, 26.5.2, 28.1, 28.2.1", "sdm.26.5.2.mtf-instruction",
      "sdm.C.reason-37-mtf", "sdm.28.1.trap-like", "sdm.25.6.2.primary-controls")
{
    vmx_require_ctl(VMX_CTL_PROC, PROC_MTF, "monitor trap flag");
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ic_mtf_guest);
    vmcs_set_bits(VMCS_PROC_CTLS, PROC_MTF);
    const char *want[] = {vmx_ic_mtf_1, vmx_ic_mtf_2, vmx_ic_mtf_3};
    for (unsigned i = 0; i < ARRAY_SIZE(want); i++) {
        if (!vmx_run_expect(v, EXIT_MTF, "single step with MTF"))
            return;
        check_eq("guest RIP after one MTF step", v->guest_rip, (uintptr_t)want[i]);
        check_eq("exit qualification of MTF", v->exit_qual, 0);
        check_eq("guest RBX (ADDs executed)", v->gpr[VMX_GPR_RBX], i);
    }
    vmcs_clear_bits(VMCS_PROC_CTLS, PROC_MTF);
    vmx_run_expect(v, EXIT_VMCALL, "guest with MTF cleared");
}

extern const char vmx_ic_rdtsc_1[];
GUEST(vmx_ic_rdtsc_guest, "vmx_ic_rdtsc_1:", "rdtsc", "vmcall", "ud2");
/* TPAUSE ECX, then UMWAIT ECX (EDX:EAX = 0: a deadline already passed), then VMCALL */
extern const char vmx_ic_tpause[], vmx_ic_umwait[];
GUEST(vmx_ic_uwait_guest, "xor %eax, %eax", "xor %edx, %edx", "xor %ecx, %ecx",
      "vmx_ic_tpause:", "tpause %ecx", "vmx_ic_umwait:", "umwait %ecx", "vmcall", "ud2");

PROBE(vmx_intercept_rdtsc, "vmx.intercept.rdtsc", "VMX",
      "With RDTSC exiting=1, guest RDTSC exits with reason 16, length 2, guest RIP at the RDTSC; "
      "with RDTSC exiting=0 and TSC offsetting with offset 2^40, the guest's RDTSC returns a value "
      "at least host TSC + 2^40 and no exit occurs before the VMCALL. Where WAITPKG "
      "(CPUID.7:ECX[5]) and enable user wait and pause exist, with that control and RDTSC "
      "exiting = 1 guest TPAUSE exits with reason 68 and UMWAIT with reason 67, each length 4 "
      "and guest RIP at the instruction",
      "Intel SDM Vol. 3C 25.6.2, 25.6.5, 26.1.3, 26.3", "sdm.26.1.3.rdtsc-rdpmc",
      "sdm.25.6.5.tsc-offset", "sdm.C.reason-16-rdtsc", "sdm.26.1.3.user-wait",
      "sdm.C.reason-67-umwait", "sdm.C.reason-68-tpause", "sdm.25.6.2.primary-controls")
{
    vmx_require_ctl(VMX_CTL_PROC, PROC_RDTSC_EXITING, "RDTSC exiting");
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ic_rdtsc_guest);
    vmcs_set_bits(VMCS_PROC_CTLS, PROC_RDTSC_EXITING);
    if (vmx_run_expect(v, EXIT_RDTSC, "RDTSC with RDTSC exiting")) {
        check_eq("VM-exit instruction length of RDTSC", v->insn_len, 2);
        check_eq("guest RIP at the RDTSC exit", v->guest_rip, (uintptr_t)vmx_ic_rdtsc_1);
    }
    if ((cpuid(7, 0).c & BIT(5)) && vmx_ctl_can_set(VMX_CTL_PROC2, PROC2_USER_WAIT_PAUSE)) {
        /* TPAUSE and UMWAIT exit with enable user wait and pause and RDTSC exiting */
        struct vmx_vcpu *u = vmx_vcpu_new(vmx_ic_uwait_guest);
        vmcs_set_bits(VMCS_PROC_CTLS, PROC_RDTSC_EXITING | PROC_SECONDARY_CTLS);
        vmcs_set_bits(VMCS_PROC_CTLS2, PROC2_USER_WAIT_PAUSE);
        const struct {
            uint32_t reason;
            const char *at, *what;
        } w[] = {{EXIT_TPAUSE, vmx_ic_tpause, "guest TPAUSE"},
                 {EXIT_UMWAIT, vmx_ic_umwait, "guest UMWAIT"}};
        for (unsigned i = 0; i < ARRAY_SIZE(w); i++) {
            if (!vmx_run_expect(u, w[i].reason, w[i].what))
                break;
            check_eq("guest RIP at the exit", u->guest_rip, (uintptr_t)w[i].at);
            check_eq("VM-exit instruction length", u->insn_len, 4);
            vmx_skip_insn(u);
        }
        vmptrld(v->vmcs_pa);
    } else {
        note("WAITPKG or enable user wait and pause not offered: TPAUSE/UMWAIT not tried");
    }
    if (!vmx_ctl_can_set(VMX_CTL_PROC, PROC_TSC_OFFSETTING) ||
        !vmx_ctl_can_clear(VMX_CTL_PROC, PROC_RDTSC_EXITING)) {
        note("TSC offsetting not available or RDTSC exiting fixed: offset part not run");
        return;
    }
    vmcs_clear_bits(VMCS_PROC_CTLS, PROC_RDTSC_EXITING);
    vmcs_set_bits(VMCS_PROC_CTLS, PROC_TSC_OFFSETTING);
    vmcs_write(VMCS_TSC_OFFSET, 1ull << 40);
    uint64_t before = rdtsc();
    if (vmx_run_expect(v, EXIT_VMCALL, "RDTSC with TSC offsetting")) {
        uint64_t g = (v->gpr[VMX_GPR_RDX] << 32) | (uint32_t)v->gpr[VMX_GPR_RAX];
        uint64_t after = rdtsc();
        check(g >= before + (1ull << 40) && g <= after + (1ull << 40),
              "guest TSC %#llx not within host [%#llx, %#llx] + 2^40", (unsigned long long)g,
              (unsigned long long)before, (unsigned long long)after);
    }
}

/* ---- control-register accesses ------------------------------------------------ */

extern const char vmx_ic_cr3_st[], vmx_ic_cr3_ld[], vmx_ic_cr3_ld2[];
GUEST(vmx_ic_cr3_guest, "vmx_ic_cr3_st:\n"
                        "    mov %cr3, %rbx\n"
                        "    mov %rbx, %r9\n"
                        "vmx_ic_cr3_ld:\n"
                        "    mov %r9, %cr3\n"
                        "vmx_ic_cr3_ld2:\n"
                        "    mov %r9, %cr3\n"
                        "    vmcall\n"
                        "    ud2");

PROBE(vmx_intercept_cr3, "vmx.intercept.cr3", "VMX",
      "With CR3-store and CR3-load exiting and CR3-target count 0, guest MOV RBX,CR3 exits with "
      "reason 28, qualification 0x313 (CR3, MOV from CR, RBX), length 3, and MOV CR3,R9 exits with "
      "qualification 0x903 (CR3, MOV to CR, R9), length 4; with CR3-target count 1 and target 0 = "
      "the value loaded, MOV CR3,R9 does not exit",
      "Intel SDM Vol. 3C 25.6.7, 26.1.3, 28.2.1", "sdm.26.1.3.mov-cr3", "sdm.28.2.1.qual-cr-access",
      "sdm.C.reason-28-cr-access", "sdm.25.6.7.cr3-target", "sdm.25.6.2.primary-controls")
{
    vmx_require_ctl(VMX_CTL_PROC, PROC_CR3_LOAD_EXITING | PROC_CR3_STORE_EXITING,
                    "CR3-load/CR3-store exiting");
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ic_cr3_guest);
    vmcs_set_bits(VMCS_PROC_CTLS, PROC_CR3_LOAD_EXITING | PROC_CR3_STORE_EXITING);
    vmcs_write(VMCS_CR3_TARGET_COUNT, 0);
    if (vmx_run_expect(v, EXIT_CR_ACCESS, "MOV RBX, CR3 with CR3-store exiting")) {
        check_eq("exit qualification of MOV RBX, CR3", v->exit_qual, 0x313);
        check_eq("VM-exit instruction length of MOV RBX, CR3", v->insn_len, 3);
        check_eq("guest RIP at the CR3-store exit", v->guest_rip, (uintptr_t)vmx_ic_cr3_st);
    }
    /* emulate the store, as a VMM would */
    v->gpr[VMX_GPR_RBX] = vmcs_read(VMCS_GUEST_CR3);
    vmx_skip_insn(v);
    if (vmx_run_expect(v, EXIT_CR_ACCESS, "MOV CR3, R9 with CR3-load exiting")) {
        check_eq("exit qualification of MOV CR3, R9", v->exit_qual, 0x903);
        check_eq("VM-exit instruction length of MOV CR3, R9", v->insn_len, 4);
        check_eq("guest RIP at the CR3-load exit", v->guest_rip, (uintptr_t)vmx_ic_cr3_ld);
        check_eq("guest R9", v->gpr[VMX_GPR_R9], vmcs_read(VMCS_GUEST_CR3));
    }
    if (VMX_MISC_CR3_TARGETS(vmx_caps()->misc) < 1) {
        note("IA32_VMX_MISC[24:16]=0: no CR3-target values, target part not run");
        return;
    }
    vmx_skip_insn(v);
    vmcs_write(VMCS_CR3_TARGET0, vmcs_read(VMCS_GUEST_CR3));
    vmcs_write(VMCS_CR3_TARGET_COUNT, 1);
    if (vmx_run_expect(v, EXIT_VMCALL, "MOV CR3, R9 with R9 = CR3-target value 0"))
        check_eq("guest RIP at the VMCALL", v->guest_rip, (uintptr_t)vmx_ic_cr3_ld2 + 4);
}

extern const char vmx_ic_cr0_clts[], vmx_ic_cr0_mov[];
GUEST(vmx_ic_cr0_guest, "    mov %cr0, %rax\n"
                        "    mov %rax, %cr0\n"
                        "vmx_ic_cr0_clts:\n"
                        "    clts\n"
                        "    mov %rax, %rcx\n"
                        "    and $~8, %rcx\n"
                        "vmx_ic_cr0_mov:\n"
                        "    mov %rcx, %cr0\n"
                        "    vmcall\n"
                        "    ud2");

PROBE(vmx_intercept_cr0_shadow, "vmx.intercept.cr0_shadow", "VMX",
      "With CR0 guest/host mask = TS and read shadow TS=1 (real guest CR0.TS=0): guest MOV from "
      "CR0 "
      "reads TS=1 without exit; MOV to CR0 of that value (TS equal to the shadow) does not exit "
      "and "
      "leaves the real TS 0; CLTS exits with reason 28, qualification 0x20 (CLTS), length 2; "
      "MOV CR0,RCX with TS=0 exits with qualification 0x100 (CR0, MOV to CR, RCX), length 3",
      "Intel SDM Vol. 3C 25.6.6, 26.1.3, 26.3, 28.2.1", "sdm.25.6.6.cr-read-shadow",
      "sdm.25.6.6.cr-write-exit", "sdm.26.3.cr-reads", "sdm.26.3.cr-writes")
{
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ic_cr0_guest);
    uint64_t cr0 = vmcs_read(VMCS_GUEST_CR0);
    if (cr0 & CR0_TS)
        error("the host runs with CR0.TS=1");
    vmcs_write(VMCS_CR0_MASK, CR0_TS);
    vmcs_write(VMCS_CR0_SHADOW, cr0 | CR0_TS);
    if (!vmx_run_expect(v, EXIT_CR_ACCESS, "CLTS with TS owned by the host and shadow TS=1"))
        return;
    check_eq("guest RIP at the CLTS exit (earlier MOVs did not exit)", v->guest_rip,
             (uintptr_t)vmx_ic_cr0_clts);
    check_eq("exit qualification of CLTS", v->exit_qual, 0x20);
    check_eq("VM-exit instruction length of CLTS", v->insn_len, 2);
    check_eq("guest RAX from MOV from CR0 (TS from the read shadow)", v->gpr[VMX_GPR_RAX],
             cr0 | CR0_TS);
    check_eq("guest CR0 after MOV to CR0 with TS=1 (host-owned bit unchanged)",
             vmcs_read(VMCS_GUEST_CR0), cr0);
    vmx_skip_insn(v);
    if (!vmx_run_expect(v, EXIT_CR_ACCESS, "MOV CR0, RCX with TS differing from the shadow"))
        return;
    check_eq("guest RIP at the MOV to CR0 exit", v->guest_rip, (uintptr_t)vmx_ic_cr0_mov);
    check_eq("exit qualification of MOV CR0, RCX", v->exit_qual, 0x100);
    check_eq("VM-exit instruction length of MOV CR0, RCX", v->insn_len, 3);
}

/* ---- other instruction exits --------------------------------------------------- */

struct insn_exit {
    void (*guest)(void);
    enum vmx_ctl ctl; /* control to set, VMX_CTL_N for an unconditional exit */
    uint32_t bit;
    const char *ctl_name;
    unsigned reason;
    unsigned len;
    bool check_qual;
    uint64_t qual;
};

/* Runs e->guest (first instruction = the one under test, then VMCALL),
 * expects exit e->reason at its entry with length and qualification. */
static void insn_exit(const struct insn_exit *e, const char *insn)
{
    if (e->ctl != VMX_CTL_N)
        vmx_require_ctl(e->ctl, e->bit, e->ctl_name);
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(e->guest);
    if (e->ctl == VMX_CTL_PROC2)
        vmcs_set_bits(VMCS_PROC_CTLS, PROC_SECONDARY_CTLS);
    if (e->ctl != VMX_CTL_N)
        vmcs_set_bits(e->ctl == VMX_CTL_PROC2 ? VMCS_PROC_CTLS2 : VMCS_PROC_CTLS, e->bit);
    char what[64];
    snprintf(what, sizeof(what), "guest %s", insn);
    if (!vmx_run_expect(v, e->reason, what))
        return;
    check_eq("guest RIP at the exit", v->guest_rip, (uintptr_t)e->guest);
    check_eq("VM-exit instruction length", v->insn_len, e->len);
    if (e->check_qual)
        check_eq("exit qualification", v->exit_qual, e->qual);
    vmx_skip_insn(v);
    snprintf(what, sizeof(what), "VMRESUME after the %s exit", insn);
    vmx_run_expect(v, EXIT_VMCALL, what);
}

GUEST(vmx_ic_invlpg_guest, "invlpg 0x123456", "vmcall", "ud2");
PROBE(vmx_intercept_invlpg, "vmx.intercept.invlpg", "VMX",
      "With INVLPG exiting, guest INVLPG [0x123456] exits with reason 14, qualification 0x123456 "
      "(the linear address), length 8, RIP = the INVLPG",
      "Intel SDM Vol. 3C 25.6.2, 26.1.3, 28.2.1", "sdm.26.1.3.invlpg-invpcid",
      "sdm.28.2.1.qual-invlpg", "sdm.C.reason-14-invlpg", "sdm.25.6.2.primary-controls")
{
    static const struct insn_exit e = {vmx_ic_invlpg_guest,
                                       VMX_CTL_PROC,
                                       PROC_INVLPG_EXITING,
                                       "INVLPG exiting",
                                       EXIT_INVLPG,
                                       8,
                                       true,
                                       0x123456};
    insn_exit(&e, "INVLPG");
}

GUEST(vmx_ic_rdpmc_guest, "xor %ecx, %ecx", "rdpmc", "vmcall", "ud2");
PROBE(vmx_intercept_rdpmc, "vmx.intercept.rdpmc", "VMX",
      "With RDPMC exiting, guest RDPMC (ECX=0) exits with reason 15, length 2, qualification 0",
      "Intel SDM Vol. 3C 25.6.2, 26.1.3", "sdm.26.1.3.rdtsc-rdpmc", "sdm.C.reason-15-rdpmc",
      "sdm.25.6.2.primary-controls")
{
    /* the guest starts with XOR ECX,ECX (2 bytes) */
    vmx_require_ctl(VMX_CTL_PROC, PROC_RDPMC_EXITING, "RDPMC exiting");
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ic_rdpmc_guest);
    vmcs_set_bits(VMCS_PROC_CTLS, PROC_RDPMC_EXITING);
    if (!vmx_run_expect(v, EXIT_RDPMC, "guest RDPMC"))
        return;
    check_eq("guest RIP at the exit", v->guest_rip, (uintptr_t)vmx_ic_rdpmc_guest + 2);
    check_eq("VM-exit instruction length", v->insn_len, 2);
    check_eq("exit qualification", v->exit_qual, 0);
}

GUEST(vmx_ic_pause_guest, "pause", "vmcall", "ud2");
PROBE(vmx_intercept_pause, "vmx.intercept.pause", "VMX",
      "With PAUSE exiting, guest PAUSE exits with reason 40, length 2, qualification 0",
      "Intel SDM Vol. 3C 25.6.2, 26.1.3", "sdm.26.1.3.pause-ple", "sdm.C.reason-40-pause",
      "sdm.25.6.2.primary-controls")
{
    static const struct insn_exit e = {vmx_ic_pause_guest,
                                       VMX_CTL_PROC,
                                       PROC_PAUSE_EXITING,
                                       "PAUSE exiting",
                                       EXIT_PAUSE,
                                       2,
                                       true,
                                       0};
    insn_exit(&e, "PAUSE");
}

GUEST(vmx_ic_invd_guest, "invd", "vmcall", "ud2");
PROBE(vmx_intercept_invd, "vmx.intercept.invd", "VMX",
      "Guest INVD exits unconditionally with reason 13, length 2, qualification 0",
      "Intel SDM Vol. 3C 26.1.2", "sdm.C.reason-13-invd")
{
    static const struct insn_exit e = {vmx_ic_invd_guest, VMX_CTL_N, 0,    NULL,
                                       EXIT_INVD,         2,         true, 0};
    insn_exit(&e, "INVD");
}

GUEST(vmx_ic_wbinvd_guest, "wbinvd", "vmcall", "ud2");
PROBE(vmx_intercept_wbinvd, "vmx.intercept.wbinvd", "VMX",
      "With WBINVD exiting (secondary control), guest WBINVD exits with reason 54, length 2, "
      "qualification 0",
      "Intel SDM Vol. 3C 25.6.2, 26.1.3", "sdm.26.1.3.wbinvd", "sdm.C.reason-54-wbinvd")
{
    static const struct insn_exit e = {vmx_ic_wbinvd_guest,
                                       VMX_CTL_PROC2,
                                       PROC2_WBINVD_EXITING,
                                       "WBINVD exiting",
                                       EXIT_WBINVD,
                                       2,
                                       true,
                                       0};
    insn_exit(&e, "WBINVD");
}

GUEST(vmx_ic_rdrand_guest, "rdrand %rax", "vmcall", "ud2");
PROBE(vmx_intercept_rdrand, "vmx.intercept.rdrand", "VMX",
      "With RDRAND exiting (secondary control), guest RDRAND RAX exits with reason 57, length 4",
      "Intel SDM Vol. 3C 25.6.2, 26.1.3", "sdm.26.1.3.rdrand-rdseed", "sdm.C.reason-57-rdrand")
{
    vmx_caps();
    if (!(cpuid(1, 0).c & (1u << 30)))
        skip("CPUID.1:ECX.RDRAND[bit 30]=0");
    static const struct insn_exit e = {vmx_ic_rdrand_guest,
                                       VMX_CTL_PROC2,
                                       PROC2_RDRAND_EXITING,
                                       "RDRAND exiting",
                                       EXIT_RDRAND,
                                       4,
                                       false,
                                       0};
    insn_exit(&e, "RDRAND");
}

GUEST(vmx_ic_rdseed_guest, "rdseed %rax", "vmcall", "ud2");
PROBE(vmx_intercept_rdseed, "vmx.intercept.rdseed", "VMX",
      "With RDSEED exiting (secondary control), guest RDSEED RAX exits with reason 61, length 4",
      "Intel SDM Vol. 3C 25.6.2, 26.1.3", "sdm.26.1.3.rdrand-rdseed", "sdm.C.reason-61-rdseed")
{
    vmx_caps();
    if (!(cpuid(7, 0).b & (1u << 18)))
        skip("CPUID.(EAX=7,ECX=0):EBX.RDSEED[bit 18]=0");
    static const struct insn_exit e = {vmx_ic_rdseed_guest,
                                       VMX_CTL_PROC2,
                                       PROC2_RDSEED_EXITING,
                                       "RDSEED exiting",
                                       EXIT_RDSEED,
                                       4,
                                       false,
                                       0};
    insn_exit(&e, "RDSEED");
}

GUEST(vmx_ic_vmread_guest, "mov $0x681e, %eax", "vmread %rax, %rbx", "vmcall", "ud2");
PROBE(vmx_intercept_vmx_insn, "vmx.intercept.vmx_insn", "VMX",
      "A guest VMREAD (0F 78, register operands) exits unconditionally with reason 23 and length "
      "3; "
      "the guest's RAX (the field encoding) is preserved",
      "Intel SDM Vol. 3C 26.1.2, 28.2.5", "sdm.C.reason-23-vmread")
{
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ic_vmread_guest);
    if (!vmx_run_expect(v, EXIT_VMREAD, "guest VMREAD"))
        return;
    check_eq("guest RIP at the exit", v->guest_rip, (uintptr_t)vmx_ic_vmread_guest + 5);
    check_eq("VM-exit instruction length", v->insn_len, 3);
    check_eq("guest RAX", v->gpr[VMX_GPR_RAX], 0x681e);
}

extern const char vmx_guest_vectors[];
GUEST(vmx_ic_mtf_ud_guest, "ud2", "vmcall", "ud2");

PROBE(vmx_intercept_mtf_inject, "vmx.intercept.mtf_inject", "MTF",
      "With monitor trap flag=1 and VM entry injecting #UD through a guest IDT, an MTF VM exit "
      "(reason 37) occurs before the handler's first instruction: guest RIP = the #UD handler, "
      "qualification 0; likewise a guest UD2 whose #UD is delivered through the guest IDT "
      "(exception bitmap bit 6 = 0) is followed by an MTF exit at the #UD handler",
      "Intel SDM Vol. 3C 26.5.2, 27.6.1", "sdm.26.5.2.mtf-injection", "sdm.27.7.8.mtf-after-entry",
      "sdm.26.5.2.mtf-fault")
{
    vmx_require_ctl(VMX_CTL_PROC, PROC_MTF, "monitor trap flag");
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ic_mtf_guest);
    vmx_guest_idt(v);
    vmcs_set_bits(VMCS_PROC_CTLS, PROC_MTF);
    vmcs_write(VMCS_ENTRY_INTR_INFO, INTR_INFO_VALID | (INTR_TYPE_HW_EXC << 8) | UD_VECTOR);
    if (vmx_run_expect(v, EXIT_MTF, "VM entry injecting #UD with MTF")) {
        check_eq("guest RIP at the MTF exit (the #UD handler)", v->guest_rip,
                 (uintptr_t)vmx_guest_vectors + 16 * UD_VECTOR);
        check_eq("exit qualification of MTF", v->exit_qual, 0);
    }
    /* a fault of the guest's own instruction, delivered through its IDT */
    struct vmx_vcpu *w = vmx_vcpu_new(vmx_ic_mtf_ud_guest);
    vmx_guest_idt(w);
    vmcs_clear_bits(VMCS_EXCEPTION_BITMAP, BIT(UD_VECTOR));
    vmcs_set_bits(VMCS_PROC_CTLS, PROC_MTF);
    if (!vmx_run_expect(w, EXIT_MTF, "guest UD2 (#UD delivered) with MTF"))
        return;
    check_eq("guest RIP at the MTF exit after the UD2 (the #UD handler)", w->guest_rip,
             (uintptr_t)vmx_guest_vectors + 16 * UD_VECTOR);
    check_eq("exit qualification of MTF after the UD2", w->exit_qual, 0);
}

/* ---- interrupt and NMI windows ---------------------------------------------------- */

GUEST(vmx_ic_win_guest, "nop", "vmcall", "ud2");

PROBE(vmx_intercept_intr_window, "vmx.intercept.intr_window", "VMX",
      "With interrupt-window exiting (and external-interrupt exiting): a guest entered with "
      "RFLAGS.IF=1 exits with reason 7 before its first instruction; entered with IF=1 and "
      "blocking by STI, after one instruction (RIP = entry + 1); entered with IF=0, not at all "
      "(it reaches VMCALL)",
      "Intel SDM Vol. 3C 25.6.2, 27.7.5, 25.4.2", "sdm.27.7.5.intr-window",
      "sdm.C.reason-7-interrupt-window")
{
    vmx_require_ctl(VMX_CTL_PROC, PROC_INTR_WINDOW, "interrupt-window exiting");
    vmx_require_ctl(VMX_CTL_PIN, PIN_EXTINT_EXITING, "external-interrupt exiting");
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ic_win_guest);
    uint64_t entry = vmcs_read(VMCS_GUEST_RIP);
    vmcs_set_bits(VMCS_PIN_CTLS, PIN_EXTINT_EXITING);
    vmcs_set_bits(VMCS_PROC_CTLS, PROC_INTR_WINDOW);
    vmcs_write(VMCS_GUEST_RFLAGS, 0x202);
    if (vmx_run_expect(v, EXIT_INTR_WINDOW, "entry with IF=1"))
        check_eq("guest RIP at the interrupt-window exit", v->guest_rip, entry);
    vmcs_write(VMCS_GUEST_INTERRUPTIBILITY, INTERRUPTIBILITY_STI);
    if (vmx_run_expect(v, EXIT_INTR_WINDOW, "entry with IF=1 and blocking by STI"))
        check_eq("guest RIP at the interrupt-window exit", v->guest_rip, entry + 1);
    vmcs_write(VMCS_GUEST_RIP, entry);
    vmcs_write(VMCS_GUEST_RFLAGS, 0x2);
    vmcs_write(VMCS_GUEST_INTERRUPTIBILITY, 0);
    vmx_run_expect(v, EXIT_VMCALL, "entry with IF=0");
}

PROBE(vmx_intercept_nmi_window, "vmx.intercept.nmi_window", "VMX",
      "With NMI exiting, virtual NMIs and NMI-window exiting: a guest entered without virtual-NMI "
      "blocking exits with reason 8 before its first instruction; entered with virtual-NMI "
      "blocking (interruptibility bit 3), it runs to its VMCALL",
      "Intel SDM Vol. 3C 25.6.1, 25.6.2, 27.7.6, 27.2.1.1", "sdm.27.7.6.nmi-window",
      "sdm.C.reason-8-nmi-window")
{
    vmx_require_ctl(VMX_CTL_PIN, PIN_NMI_EXITING | PIN_VIRTUAL_NMIS,
                    "NMI exiting and virtual NMIs");
    vmx_require_ctl(VMX_CTL_PROC, PROC_NMI_WINDOW, "NMI-window exiting");
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ic_win_guest);
    uint64_t entry = vmcs_read(VMCS_GUEST_RIP);
    vmcs_set_bits(VMCS_PIN_CTLS, PIN_NMI_EXITING | PIN_VIRTUAL_NMIS);
    vmcs_set_bits(VMCS_PROC_CTLS, PROC_NMI_WINDOW);
    if (vmx_run_expect(v, EXIT_NMI_WINDOW, "entry without virtual-NMI blocking"))
        check_eq("guest RIP at the NMI-window exit", v->guest_rip, entry);
    vmcs_write(VMCS_GUEST_INTERRUPTIBILITY, INTERRUPTIBILITY_NMI);
    vmx_run_expect(v, EXIT_VMCALL, "entry with virtual-NMI blocking");
}

GUEST(vmx_ic_tf_guest, "ud2", "vmcall", "ud2");
PROBE(vmx_intercept_triple_fault, "vmx.intercept.triple_fault", "VMX",
      "With an exception bitmap of 0 and a guest IDT limit of 0, a guest UD2 escalates (#UD, #GP "
      "on delivery, #DF) to a triple fault, which exits with reason 2 and guest RIP at the UD2",
      "Intel SDM Vol. 3C 26.2, 28.2.1", "sdm.C.reason-2-triple-fault")
{
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ic_tf_guest);
    vmcs_write(VMCS_EXCEPTION_BITMAP, 0);
    vmcs_write(VMCS_GUEST_IDTR_LIMIT, 0);
    /* A triple fault that does not exit leaves the guest in the shutdown
     * state, which only the preemption timer (or an NMI/INIT) ends. */
    v->watchdog = "the triple-fault exit (2)";
    if (vmx_run_expect(v, EXIT_TRIPLE_FAULT, "guest UD2 with an empty IDT"))
        check_eq("guest RIP at the triple-fault exit", v->guest_rip, (uintptr_t)vmx_ic_tf_guest);
}

/* ---- #PF and the error-code mask/match -------------------------------------------- */

extern const char vmx_ic_pf_1[];
GUEST(vmx_ic_pf_guest, "vmx_ic_pf_1:", "mov (%rdi), %rax", "vmcall", "ud2");

#define PF_ADDR 0x100000000ull /* 4 GiB: not mapped by the kernel's page tables */

PROBE(vmx_intercept_pf_mask, "vmx.intercept.pf_mask", "VMX",
      "A guest read of an unmapped linear address (4 GiB, #PF error code 0): with exception-bitmap "
      "bit 14 = 1 it exits (reason 0, vector 14, error code 0, qualification = the address, CR2 "
      "unchanged) iff PFEC & mask == match (mask 0/match 0: exit; mask 1/match 1: no exit, #PF "
      "delivered through the guest IDT); with bit 14 = 0 the sense inverts (mask 1/match 1: exit; "
      "mask 0/match 0: delivered)",
      "Intel SDM Vol. 3C 25.6.3, 26.2, 28.1, 28.2.1", "sdm.25.6.3.pf-mask-match",
      "sdm.28.2.1.qual-page-fault", "sdm.28.1.exception-no-side-effects")
{
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ic_pf_guest);
    vmx_guest_idt(v);
    static const struct {
        bool bit14;
        uint32_t mask, match;
        bool exits;
    } cases[] = {
        {true, 0, 0, true},
        {true, 1, 1, false},
        {false, 1, 1, true},
        {false, 0, 0, false},
    };
    for (unsigned i = 0; i < ARRAY_SIZE(cases); i++) {
        char what[96];
        snprintf(what, sizeof(what), "#PF with bitmap bit 14=%d, mask %u, match %u", cases[i].bit14,
                 cases[i].mask, cases[i].match);
        vmcs_write(VMCS_EXCEPTION_BITMAP, cases[i].bit14 ? 0xffffffffu : ~(1u << PF_VECTOR));
        vmcs_write(VMCS_PF_ERRCODE_MASK, cases[i].mask);
        vmcs_write(VMCS_PF_ERRCODE_MATCH, cases[i].match);
        vmcs_write(VMCS_GUEST_RIP, (uintptr_t)vmx_ic_pf_guest);
        vmcs_write(VMCS_GUEST_RSP, (uintptr_t)v->stack + 4 * 4096 - 8);
        v->gpr[VMX_GPR_RDI] = PF_ADDR;
        uint64_t cr2 = 0x5a5a5000, cr2_after;
        __asm__ volatile("mov %0, %%cr2" : : "r"(cr2));
        uint32_t r = vmx_run(v);
        cr2_after = read_cr2();
        if (cases[i].exits) {
            if (!check(r == EXIT_EXCEPTION_NMI && INTR_INFO_VECTOR(v->exit_intr_info) == PF_VECTOR,
                       "%s: want exit 0 with vector 14, got %s", what, vmx_exit_str(v)))
                continue;
            check_eq("#PF exit: interruption info", v->exit_intr_info,
                     INTR_INFO_VALID | INTR_INFO_ERRCODE | (INTR_TYPE_HW_EXC << 8) | PF_VECTOR);
            check_eq("#PF exit: error code", v->exit_intr_err, 0);
            check_eq("#PF exit: exit qualification (linear address)", v->exit_qual, PF_ADDR);
            check_eq("#PF exit: guest RIP", v->guest_rip, (uintptr_t)vmx_ic_pf_1);
            check_eq("CR2 after a #PF VM exit (unchanged)", cr2_after, cr2);
        } else {
            if (!check(r == EXIT_VMCALL && v->gpr[VMX_GPR_RAX] == VMX_GUEST_EVENT,
                       "%s: want delivery through the guest IDT, got %s", what, vmx_exit_str(v)))
                continue;
            check_eq("vector delivered", v->gpr[VMX_GPR_RBX], PF_VECTOR);
            check_eq("error code delivered", v->gpr[VMX_GPR_RCX], 0);
            check_eq("RIP pushed by the #PF", v->gpr[VMX_GPR_RDX], (uintptr_t)vmx_ic_pf_1);
            check_eq("CR2 after the #PF delivered in the guest", cr2_after, PF_ADDR);
        }
    }
}

/* ---- MOV DR --------------------------------------------------------------------------- */

extern const char vmx_ic_dr_wr[], vmx_ic_dr_rd[];
GUEST(vmx_ic_dr_guest, "vmx_ic_dr_wr:\n"
                       "    mov %rdx, %dr7\n"
                       "vmx_ic_dr_rd:\n"
                       "    mov %dr0, %rsi\n"
                       "    vmcall\n"
                       "    ud2");

PROBE(vmx_intercept_mov_dr, "vmx.intercept.mov_dr", "VMX",
      "With MOV-DR exiting, guest MOV DR7,RDX exits with reason 29, qualification 0x207 (DR7, "
      "MOV to DR, RDX), length 3; MOV RSI,DR0 exits with qualification 0x610 (DR0, MOV from DR, "
      "RSI), length 3",
      "Intel SDM Vol. 3C 25.6.2, 26.1.3, 28.2.1", "sdm.26.1.3.mov-dr", "sdm.28.2.1.qual-mov-dr",
      "sdm.C.reason-29-mov-dr", "sdm.25.6.2.primary-controls")
{
    vmx_require_ctl(VMX_CTL_PROC, PROC_MOV_DR_EXITING, "MOV-DR exiting");
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ic_dr_guest);
    vmcs_set_bits(VMCS_PROC_CTLS, PROC_MOV_DR_EXITING);
    v->gpr[VMX_GPR_RDX] = 0x400;
    if (vmx_run_expect(v, EXIT_DR_ACCESS, "MOV DR7, RDX")) {
        check_eq("exit qualification of MOV DR7, RDX", v->exit_qual, 0x207);
        check_eq("VM-exit instruction length", v->insn_len, 3);
        check_eq("guest RIP", v->guest_rip, (uintptr_t)vmx_ic_dr_wr);
    }
    vmx_skip_insn(v);
    if (vmx_run_expect(v, EXIT_DR_ACCESS, "MOV RSI, DR0")) {
        check_eq("exit qualification of MOV RSI, DR0", v->exit_qual, 0x610);
        check_eq("VM-exit instruction length", v->insn_len, 3);
        check_eq("guest RIP", v->guest_rip, (uintptr_t)vmx_ic_dr_rd);
    }
}

/* ---- I/O bitmaps ------------------------------------------------------------------------ */

extern const char vmx_ic_iobm_in[], vmx_ic_iobm_b[], vmx_ic_iobm_wrap[];
GUEST(vmx_ic_iobm_guest, "    outb %al, $0x80\n"
                         "    mov $0x1234, %edx\n"
                         "vmx_ic_iobm_in:\n"
                         "    inb %dx, %al\n"
                         "    mov $0xa000, %edx\n"
                         "vmx_ic_iobm_b:\n"
                         "    inb %dx, %al\n"
                         "    mov $0xffff, %edx\n"
                         "vmx_ic_iobm_wrap:\n"
                         "    inw %dx, %ax\n"
                         "    vmcall\n"
                         "    ud2");

PROBE(vmx_intercept_io_bitmap, "vmx.intercept.io_bitmap", "VMX",
      "With I/O bitmaps: OUT 0x80 (bit clear in bitmap A) executes without exit; IN AL,DX with "
      "DX=0x1234 (bit set in A) exits with reason 30; IN AL,DX with DX=0xa000 (bit set in B) "
      "exits; "
      "IN AX,DX with DX=0xffff, whose access wraps past port 0xffff, exits although bits 0xffff "
      "and 0 are clear",
      "Intel SDM Vol. 3C 25.6.4, 26.1.3", "sdm.25.6.4.io-bitmaps", "sdm.25.6.2.primary-controls")
{
    vmx_require_ctl(VMX_CTL_PROC, PROC_IO_BITMAPS, "use I/O bitmaps");
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ic_iobm_guest);
    uint8_t *a = alloc_page(), *b = alloc_page();
    a[0x1234 / 8] |= (uint8_t)(1u << (0x1234 % 8));
    b[(0xa000 - 0x8000) / 8] |= (uint8_t)(1u << (0xa000 % 8));
    vmcs_write(VMCS_IO_BITMAP_A, (uintptr_t)a);
    vmcs_write(VMCS_IO_BITMAP_B, (uintptr_t)b);
    vmcs_set_bits(VMCS_PROC_CTLS, PROC_IO_BITMAPS);
    if (vmx_run_expect(v, EXIT_IO, "IN from port 0x1234 (bitmap A bit set)")) {
        check_eq("guest RIP (OUT 0x80 ran without exit)", v->guest_rip, (uintptr_t)vmx_ic_iobm_in);
        check_eq("exit qualification", v->exit_qual, 0x12340000 | 0x8 | 0);
    }
    vmx_skip_insn(v);
    if (vmx_run_expect(v, EXIT_IO, "IN from port 0xa000 (bitmap B bit set)")) {
        check_eq("guest RIP", v->guest_rip, (uintptr_t)vmx_ic_iobm_b);
        check_eq("exit qualification", v->exit_qual, 0xa0000000 | 0x8 | 0);
    }
    vmx_skip_insn(v);
    if (vmx_run_expect(v, EXIT_IO, "IN AX from port 0xffff (wraps around)")) {
        check_eq("guest RIP", v->guest_rip, (uintptr_t)vmx_ic_iobm_wrap);
        check_eq("exit qualification", v->exit_qual, 0xffff0000 | 0x8 | 1);
    }
}

/* ---- descriptor-table exiting --------------------------------------------------------- */

extern const char vmx_ic_dt_sgdt[], vmx_ic_dt_str[];
GUEST(vmx_ic_dt_guest, "vmx_ic_dt_sgdt:\n"
                       "    sgdt (%rdi)\n"
                       "vmx_ic_dt_str:\n"
                       "    str %eax\n"
                       "    vmcall\n"
                       "    ud2");

PROBE(vmx_intercept_desc_table, "vmx.intercept.desc_table", "VMX",
      "With descriptor-table exiting (secondary control), guest SGDT [RDI] exits with reason 46 "
      "(GDTR/IDTR access), length 3, and STR EAX with reason 47 (LDTR/TR access), length 3",
      "Intel SDM Vol. 3C 25.6.2, 26.1.3, 28.2.5", "sdm.26.1.3.descriptor-tables",
      "sdm.C.reason-46-gdtr-idtr", "sdm.C.reason-47-ldtr-tr")
{
    vmx_require_ctl(VMX_CTL_PROC2, PROC2_DESC_TABLE_EXITING, "descriptor-table exiting");
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ic_dt_guest);
    vmcs_set_bits(VMCS_PROC_CTLS, PROC_SECONDARY_CTLS);
    vmcs_set_bits(VMCS_PROC_CTLS2, PROC2_DESC_TABLE_EXITING);
    v->gpr[VMX_GPR_RDI] = (uintptr_t)alloc_page();
    if (vmx_run_expect(v, EXIT_GDTR_IDTR, "guest SGDT")) {
        check_eq("guest RIP", v->guest_rip, (uintptr_t)vmx_ic_dt_sgdt);
        check_eq("VM-exit instruction length", v->insn_len, 3);
    }
    vmx_skip_insn(v);
    if (vmx_run_expect(v, EXIT_LDTR_TR, "guest STR")) {
        check_eq("guest RIP", v->guest_rip, (uintptr_t)vmx_ic_dt_str);
        check_eq("VM-exit instruction length", v->insn_len, 3);
    }
}

/* ---- RDTSCP, MONITOR/MWAIT, XSETBV -------------------------------------------------------- */

GUEST(vmx_ic_rdtscp_guest, "rdtscp", "vmcall", "ud2");
PROBE(vmx_intercept_rdtscp, "vmx.intercept.rdtscp", "VMX",
      "With enable RDTSCP=0, guest RDTSCP raises #UD (exit 0, vector 6 under the all-ones "
      "exception bitmap); with enable RDTSCP=1 and RDTSC exiting=1 it exits with reason 51, "
      "length 3",
      "Intel SDM Vol. 3C 25.6.2, 26.1.3, 26.3", "sdm.26.3.rdtscp-ud", "sdm.C.reason-51-rdtscp")
{
    vmx_caps();
    if (!(cpuid(0x80000001, 0).d & (1u << 27)))
        skip("CPUID.80000001H:EDX.RDTSCP[bit 27]=0");
    vmx_require_ctl(VMX_CTL_PROC2, PROC2_RDTSCP, "enable RDTSCP");
    vmx_require_ctl(VMX_CTL_PROC, PROC_RDTSC_EXITING, "RDTSC exiting");
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ic_rdtscp_guest);
    vmcs_set_bits(VMCS_PROC_CTLS, PROC_SECONDARY_CTLS | PROC_RDTSC_EXITING);
    if (vmx_run_expect(v, EXIT_EXCEPTION_NMI, "RDTSCP with enable RDTSCP=0"))
        check_eq("interruption info", v->exit_intr_info,
                 INTR_INFO_VALID | (INTR_TYPE_HW_EXC << 8) | UD_VECTOR);
    vmcs_set_bits(VMCS_PROC_CTLS2, PROC2_RDTSCP);
    if (vmx_run_expect(v, EXIT_RDTSCP, "RDTSCP with enable RDTSCP=1 and RDTSC exiting")) {
        check_eq("guest RIP", v->guest_rip, (uintptr_t)vmx_ic_rdtscp_guest);
        check_eq("VM-exit instruction length", v->insn_len, 3);
    }
}

GUEST(vmx_ic_mwait_guest, "xor %eax, %eax", "xor %ecx, %ecx", "mwait", "vmcall", "ud2");
extern const char vmx_ic_mon_1[], vmx_ic_mon_2[];
GUEST(vmx_ic_mon_guest, "    mov %rdi, %rax\n"
                        "    xor %ecx, %ecx\n"
                        "    xor %edx, %edx\n"
                        "vmx_ic_mon_1:\n"
                        "    monitor\n"
                        "    xor %eax, %eax\n"
                        "vmx_ic_mon_2:\n"
                        "    mwait\n"
                        "    vmcall\n"
                        "    ud2");

PROBE(vmx_intercept_monitor_mwait, "vmx.intercept.monitor_mwait", "VMX",
      "With MONITOR exiting and MWAIT exiting, guest MONITOR exits with reason 39 and MWAIT with "
      "reason 36, each with length 3 and guest RIP at the instruction. Where MWAIT exiting can be "
      "0 and the VMX-preemption timer exists: the host arms MONITOR on a line nobody writes, and "
      "a guest MWAIT right after VM entry does not wait (VM entry cleared the monitoring): it "
      "reaches its VMCALL before the timer (10^6) expires",
      "Intel SDM Vol. 3C 25.6.2, 26.1.3, 27.3.3", "sdm.26.1.3.hlt-mwait-monitor",
      "sdm.C.reason-36-mwait", "sdm.C.reason-39-monitor", "sdm.27.3.3.monitor-clear",
      "sdm.25.6.2.primary-controls")
{
    vmx_caps();
    if (!(cpuid(1, 0).c & (1u << 3)))
        skip("CPUID.1:ECX.MONITOR[bit 3]=0");
    vmx_require_ctl(VMX_CTL_PROC, PROC_MONITOR_EXITING | PROC_MWAIT_EXITING,
                    "MONITOR exiting and MWAIT exiting");
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ic_mon_guest);
    vmcs_set_bits(VMCS_PROC_CTLS, PROC_MONITOR_EXITING | PROC_MWAIT_EXITING);
    v->gpr[VMX_GPR_RDI] = (uintptr_t)alloc_page();
    /* A MONITOR and MWAIT that run wait for a write to the page or an
     * interrupt: both runs are watched. */
    v->watchdog = "the MONITOR exit (39)";
    if (vmx_run_expect(v, EXIT_MONITOR, "guest MONITOR")) {
        check_eq("guest RIP", v->guest_rip, (uintptr_t)vmx_ic_mon_1);
        check_eq("VM-exit instruction length", v->insn_len, 3);
    }
    vmx_skip_insn(v);
    v->watchdog = "the MWAIT exit (36)";
    if (vmx_run_expect(v, EXIT_MWAIT, "guest MWAIT")) {
        check_eq("guest RIP", v->guest_rip, (uintptr_t)vmx_ic_mon_2);
        check_eq("VM-exit instruction length", v->insn_len, 3);
    }
    if (!vmx_ctl_can_clear(VMX_CTL_PROC, PROC_MWAIT_EXITING) ||
        !vmx_ctl_can_set(VMX_CTL_PIN, PIN_PREEMPTION_TIMER)) {
        note("MWAIT exiting fixed or no VMX-preemption timer: monitor clearing not tried");
        return;
    }
    /* VM entry clears address-range monitoring: the guest's MWAIT does not wait */
    struct vmx_vcpu *w = vmx_vcpu_new(vmx_ic_mwait_guest);
    vmcs_clear_bits(VMCS_PROC_CTLS, PROC_MWAIT_EXITING);
    vmcs_set_bits(VMCS_PIN_CTLS, PIN_PREEMPTION_TIMER);
    vmcs_write(VMCS_PREEMPTION_TIMER, 1000000);
    const volatile uint8_t *line = alloc_page();
    __asm__ volatile("monitor" : : "a"(line), "c"(0), "d"(0) : "memory");
    w->watchdog = "the guest's VMCALL after MWAIT (or the timer exit)";
    vmx_run_expect(w, EXIT_VMCALL, "guest MWAIT after the host armed MONITOR before VM entry");
}

GUEST(vmx_ic_xsetbv_guest, "xsetbv", "vmcall", "ud2");

PROBE(vmx_intercept_xsetbv, "vmx.intercept.xsetbv", "VMX",
      "With guest CR4.OSXSAVE=1, guest XSETBV (ECX=0, EDX:EAX=1) exits unconditionally with "
      "reason 55, length 3, and the guest's RCX/RAX preserved",
      "Intel SDM Vol. 3C 26.1.2", "sdm.C.reason-55-xsetbv")
{
    vmx_caps();
    if (!(cpuid(1, 0).c & (1u << 26)))
        skip("CPUID.1:ECX.XSAVE[bit 26]=0");
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ic_xsetbv_guest);
    vmcs_set_bits(VMCS_GUEST_CR4, CR4_OSXSAVE);
    v->gpr[VMX_GPR_RAX] = 1;
    v->gpr[VMX_GPR_RCX] = 0;
    v->gpr[VMX_GPR_RDX] = 0;
    if (vmx_run_expect(v, EXIT_XSETBV, "guest XSETBV")) {
        check_eq("guest RIP", v->guest_rip, (uintptr_t)vmx_ic_xsetbv_guest);
        check_eq("VM-exit instruction length", v->insn_len, 3);
        check_eq("guest RAX", v->gpr[VMX_GPR_RAX], 1);
    }
}

PROBE(vmx_intercept_mtf_pending, "vmx.intercept.mtf_pending", "MTF",
      "VM entry with the VM-entry interruption information = other event (type 7), vector 0 (a "
      "pending MTF VM exit), MTF control 0: an MTF VM exit (reason 37, qualification 0) occurs "
      "before the guest's first instruction (guest RIP = entry point, RBX unchanged)",
      "Intel SDM Vol. 3C 25.8.3, 27.2.1.3, 27.6.2 (Injection of Pending MTF VM Exits)",
      "sdm.27.6.2.inject-mtf")
{
    vmx_require_ctl(VMX_CTL_PROC, PROC_MTF, "monitor trap flag (needed for interruption type 7)");
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ic_mtf_guest);
    vmcs_write(VMCS_ENTRY_INTR_INFO, INTR_INFO_VALID | (INTR_TYPE_OTHER << 8) | 0);
    if (!vmx_run_expect(v, EXIT_MTF, "VM entry with a pending MTF VM exit injected"))
        return;
    check_eq("guest RIP at the MTF exit (entry point)", v->guest_rip, (uintptr_t)vmx_ic_mtf_guest);
    check_eq("guest RBX (no instruction executed)", v->gpr[VMX_GPR_RBX], 0);
    check_eq("exit qualification of MTF", v->exit_qual, 0);
}
