/* SPDX-License-Identifier: MIT */
/*
 * VM exits: the guest state they save and the host state they load.
 */
#include "vmx.h"

GUEST(vmx_ex_guest, "    mov $0x500, %eax\n"
                    "    mov %rax, %dr7\n"
                    "    mov $0xc0000100, %ecx\n"
                    "    mov $0x12345000, %eax\n"
                    "    xor %edx, %edx\n"
                    "    wrmsr\n"
                    "    mov $0x174, %ecx\n"
                    "    mov $0x1234, %eax\n"
                    "    wrmsr\n"
                    "    pushq $0x55\n"
                    "    stc\n"
                    "    std\n"
                    "    vmcall\n"
                    "    ud2");

struct dtr {
    uint16_t limit;
    uint64_t base;
} __packed;

static struct vmx_vcpu *exit_vcpu(void)
{
    vmx_require_ctl(VMX_CTL_PROC, PROC_MSR_BITMAPS, "use MSR bitmaps");
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ex_guest);
    vmcs_write(VMCS_MSR_BITMAP, (uintptr_t)alloc_page());
    vmcs_set_bits(VMCS_PROC_CTLS, PROC_MSR_BITMAPS);
    vmcs_clear_bits(VMCS_PROC_CTLS, PROC_MOV_DR_EXITING);
    return v;
}

PROBE(vmx_exit_host_state, "vmx.exit.host_state", "VMX",
      "After a guest that sets DR7=0x500, IA32_FS_BASE=0x12345000, IA32_SYSENTER_CS=0x1234 (MSR "
      "bitmap all zero), CF and DF, exits with VMCALL: host RFLAGS = 0x2, DR7 = 0x400, "
      "IA32_FS_BASE and IA32_SYSENTER_CS = the host-state fields, GDTR and IDTR limits = 0xffff "
      "with the host-state bases",
      "Intel SDM Vol. 3C 28.5.1, 28.5.2", "sdm.28.5.1.dr7-debugctl", "sdm.28.5.1.sysenter-fs-gs",
      "sdm.28.5.3.rip-rsp-rflags")
{
    struct vmx_vcpu *v = exit_vcpu();
    if (!vmx_run_expect(v, EXIT_VMCALL, "guest changing DR7, FS base, SYSENTER_CS, CF and DF"))
        return;
    uint64_t dr7, fs = rdmsr(MSR_FS_BASE), cs = rdmsr(MSR_IA32_SYSENTER_CS);
    __asm__ volatile("mov %%dr7, %0" : "=r"(dr7));
    check_eq("host RFLAGS after the VM exit", v->exit_rflags, 0x2);
    check_eq("host DR7 after the VM exit", dr7, 0x400);
    check_eq("host IA32_FS_BASE after the VM exit", fs, vmcs_read(VMCS_HOST_FS_BASE));
    check_eq("host IA32_SYSENTER_CS after the VM exit", cs, vmcs_read(VMCS_HOST_SYSENTER_CS));
    struct dtr g, i;
    memcpy(&g, v->exit_gdtr, sizeof(g));
    memcpy(&i, v->exit_idtr, sizeof(i));
    check_eq("host GDTR limit after the VM exit", g.limit, 0xffff);
    check_eq("host GDTR base after the VM exit", g.base, vmcs_read(VMCS_HOST_GDTR_BASE));
    check_eq("host IDTR limit after the VM exit", i.limit, 0xffff);
    check_eq("host IDTR base after the VM exit", i.base, vmcs_read(VMCS_HOST_IDTR_BASE));
}

PROBE(vmx_exit_guest_state, "vmx.exit.guest_state", "VMX",
      "The VMCALL exit of that guest saves RFLAGS with CF and DF set and RF clear, RSP = entry RSP "
      "- 8, IA32_FS_BASE = 0x12345000, IA32_SYSENTER_CS = 0x1234, and DR7 = 0x500 when the save "
      "debug controls exit control is 1",
      "Intel SDM Vol. 3C 28.3.1, 28.3.2, 28.3.3, 25.7.1", "sdm.28.3.1.cr-save",
      "sdm.28.3.1.sysenter-save", "sdm.28.3.1.debugctl-save", "sdm.28.3.3.rip-rsp-rflags")
{
    struct vmx_vcpu *v = exit_vcpu();
    bool save_dbg = vmx_ctl_can_set(VMX_CTL_EXIT, EXIT_SAVE_DEBUG);
    if (save_dbg)
        vmcs_set_bits(VMCS_EXIT_CTLS, EXIT_SAVE_DEBUG);
    uint64_t rsp0 = vmcs_read(VMCS_GUEST_RSP);
    if (!vmx_run_expect(v, EXIT_VMCALL, "guest changing DR7, FS base, SYSENTER_CS, CF and DF"))
        return;
    uint64_t rf = v->guest_rflags;
    check((rf & 0x401) == 0x401, "guest RFLAGS %#llx: CF or DF not saved", (unsigned long long)rf);
    check(!(rf & (1u << 16)), "guest RFLAGS %#llx: RF set for a VMCALL exit",
          (unsigned long long)rf);
    check_eq("guest RSP", v->guest_rsp, rsp0 - 8);
    check_eq("guest IA32_FS_BASE", vmcs_read(VMCS_GUEST_FS_BASE), 0x12345000);
    check_eq("guest IA32_SYSENTER_CS", vmcs_read(VMCS_GUEST_SYSENTER_CS), 0x1234);
    if (save_dbg)
        check_eq("guest DR7 (save debug controls = 1)", vmcs_read(VMCS_GUEST_DR7), 0x500);
}

/* guest: PAT <- RBX (EDX:EAX), EFER <- EFER | NXE, VMCALL */
GUEST(vmx_ex_pat_guest, "    mov $0x277, %ecx\n"
                        "    mov %rbx, %rax\n"
                        "    mov %rbx, %rdx\n"
                        "    shr $32, %rdx\n"
                        "    wrmsr\n"
                        "    mov $0xc0000080, %ecx\n"
                        "    rdmsr\n"
                        "    xor $0x800, %eax\n"
                        "    wrmsr\n"
                        "    vmcall\n"
                        "    ud2");

PROBE(vmx_exit_pat_efer, "vmx.exit.pat_efer", "VMX",
      "With save/load IA32_PAT and save/load IA32_EFER (exit controls 18-21) and a zero MSR "
      "bitmap, "
      "a guest that writes IA32_PAT = 0x0007040600070406 and toggles EFER.NXE exits with VMCALL: "
      "the guest PAT and EFER fields hold the guest's values, and the host runs with its own PAT "
      "and EFER again (the host-state fields)",
      "Intel SDM Vol. 3C 25.7.1, 28.3.3, 28.5.1", "sdm.28.3.1.pat-save", "sdm.28.3.1.efer-save",
      "sdm.28.5.1.pat", "sdm.28.5.1.efer")
{
    vmx_require_ctl(VMX_CTL_EXIT, EXIT_SAVE_PAT | EXIT_LOAD_PAT | EXIT_SAVE_EFER | EXIT_LOAD_EFER,
                    "save/load IA32_PAT and IA32_EFER");
    vmx_require_ctl(VMX_CTL_ENTRY, ENTRY_LOAD_PAT | ENTRY_LOAD_EFER, "load IA32_PAT and IA32_EFER");
    vmx_require_ctl(VMX_CTL_PROC, PROC_MSR_BITMAPS, "use MSR bitmaps");
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ex_pat_guest);
    vmcs_write(VMCS_MSR_BITMAP, (uintptr_t)alloc_page());
    vmcs_set_bits(VMCS_PROC_CTLS, PROC_MSR_BITMAPS);
    vmcs_set_bits(VMCS_EXIT_CTLS, EXIT_SAVE_PAT | EXIT_LOAD_PAT | EXIT_SAVE_EFER | EXIT_LOAD_EFER);
    vmcs_set_bits(VMCS_ENTRY_CTLS, ENTRY_LOAD_PAT | ENTRY_LOAD_EFER);
    const uint64_t host_pat = rdmsr(MSR_IA32_PAT), host_efer = rdmsr(MSR_EFER);
    const uint64_t guest_pat = 0x0007040600070406ull;
    v->gpr[VMX_GPR_RBX] = guest_pat;
    if (!vmx_run_expect(v, EXIT_VMCALL, "guest writing PAT and EFER.NXE"))
        return;
    check_eq("guest PAT field saved by the exit", vmcs_read(VMCS_GUEST_PAT), guest_pat);
    check_eq("guest EFER field saved by the exit", vmcs_read(VMCS_GUEST_EFER),
             host_efer ^ EFER_NXE);
    check_eq("host IA32_PAT after the exit", rdmsr(MSR_IA32_PAT), host_pat);
    check_eq("host IA32_EFER after the exit", rdmsr(MSR_EFER), host_efer);
}

GUEST(vmx_ex_dr7_guest, "mov %dr7, %rbx", "mov $0x1d9, %ecx", "rdmsr", "vmcall", "ud2");

PROBE(vmx_entry_load_debug, "vmx.entry.load_debug", "VMX",
      "With load debug controls (entry control 2), MOV-DR exiting off and a zero MSR bitmap, VM "
      "entry loads DR7 = 0x700 (LE and GE set, no breakpoint enabled) and IA32_DEBUGCTL = 0 "
      "from the guest-state fields: the guest reads them back; after the exit the host's DR7 is "
      "0x400 (SDM 28.5.1)",
      "Intel SDM Vol. 3C 25.8.1, 27.3.2.1, 28.5.1", "sdm.27.3.2.1.cr-dr-load",
      "sdm.27.3.2.1.debugctl-load", "sdm.28.5.1.dr7-debugctl")
{
    vmx_require_ctl(VMX_CTL_ENTRY, ENTRY_LOAD_DEBUG, "load debug controls");
    vmx_require_ctl(VMX_CTL_PROC, PROC_MSR_BITMAPS, "use MSR bitmaps");
    if (!vmx_ctl_can_clear(VMX_CTL_PROC, PROC_MOV_DR_EXITING))
        skip("%s requires MOV-DR exiting", vmx_ctl_name(VMX_CTL_PROC));
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ex_dr7_guest);
    vmcs_write(VMCS_MSR_BITMAP, (uintptr_t)alloc_page());
    vmcs_set_bits(VMCS_PROC_CTLS, PROC_MSR_BITMAPS);
    vmcs_clear_bits(VMCS_PROC_CTLS, PROC_MOV_DR_EXITING);
    vmcs_set_bits(VMCS_ENTRY_CTLS, ENTRY_LOAD_DEBUG);
    vmcs_write(VMCS_GUEST_DR7, 0x700);
    vmcs_write(VMCS_GUEST_DEBUGCTL, 0);
    if (!vmx_run_expect(v, EXIT_VMCALL, "guest reading DR7 and IA32_DEBUGCTL"))
        return;
    check_eq("guest DR7", v->gpr[VMX_GPR_RBX], 0x700);
    check_eq("guest IA32_DEBUGCTL", (v->gpr[VMX_GPR_RDX] << 32) | (uint32_t)v->gpr[VMX_GPR_RAX], 0);
    uint64_t dr7;
    __asm__ volatile("mov %%dr7, %0" : "=r"(dr7));
    check_eq("host DR7 after the exit", dr7, 0x400);
}

/* ---- XMM state: VM entries and exits neither save nor load it ------------ */

void vmx_ex_set_xmm0(uint64_t), vmx_ex_set_xmm1(uint64_t);
uint64_t vmx_ex_get_xmm1(void);
/* RAX = XMM0 (the host's), XMM1 = RBX; VMCALL */
GUEST(vmx_ex_xmm_guest, "movq %xmm0, %rax", "movq %rbx, %xmm1", "vmcall", "ud2");

/* Host helpers: XMM0/XMM1 without the compiler's help (-mgeneral-regs-only). */
__asm__(".pushsection .text\n"
        "vmx_ex_set_xmm0:\n    movq %rdi, %xmm0\n    ret\n"
        "vmx_ex_set_xmm1:\n    movq %rdi, %xmm1\n    ret\n"
        "vmx_ex_get_xmm1:\n    movq %xmm1, %rax\n    ret\n"
        ".popsection\n");

/* A guest that copies XMM0 to RAX and RBX to XMM1, with SSE usable in the
 * host and (its CR0 and CR4 copied) in the guest. */
static struct vmx_vcpu *xmm_vcpu(void)
{
    if (!(cpuid(1, 0).d & BIT(26)))
        skip("CPUID 1 EDX.SSE2[26]=0");
    write_cr0(read_cr0() & ~(CR0_EM | CR0_TS)); /* the runner restores CR0 and CR4 */
    write_cr4(read_cr4() | CR4_OSFXSR);
    vmx_on();
    return vmx_vcpu_new(vmx_ex_xmm_guest);
}

/* One round: host XMM0 = a, the guest loads b into XMM1; false once a
 * check failed (its NOTE says which round). */
static bool xmm_round(struct vmx_vcpu *v, uint64_t a, uint64_t b, unsigned round, unsigned rounds)
{
    vmx_ex_set_xmm0(a);
    vmx_ex_set_xmm1(0);
    v->gpr[VMX_GPR_RBX] = b;
    uint32_t r = vmx_run(v);
    uint64_t got = vmx_ex_get_xmm1();
    if (!check(r == EXIT_VMCALL, "round %u of %u: want exit reason 18 (VMCALL), got %s", round,
               rounds, vmx_exit_str(v)))
        return false;
    vmcs_write(VMCS_GUEST_RIP, (uintptr_t)vmx_ex_xmm_guest); /* the next round starts over */
    return check(v->gpr[VMX_GPR_RAX] == a,
                 "round %u of %u: XMM0 read by the guest: got %#llx, want %#llx (the host's)",
                 round, rounds, (unsigned long long)v->gpr[VMX_GPR_RAX], (unsigned long long)a) &&
           check(got == b,
                 "round %u of %u: host XMM1 after the VM exit: got %#llx, want %#llx (the guest's)",
                 round, rounds, (unsigned long long)got, (unsigned long long)b);
}

PROBE(vmx_exit_xmm, "vmx.exit.xmm", "VMX",
      "VM entry and VM exit do not switch XMM state: with host XMM0 = A the guest reads A from "
      "XMM0; the guest writes B to XMM1 and the host reads B from XMM1 after the VMCALL exit "
      "(needs CPUID 1 EDX.SSE2[26], CR4.OSFXSR set by the probe)",
      "Intel SDM Vol. 3C 25.4, 25.5 (no XMM state in the guest- or host-state area), 28.3, 28.5",
      "sdm.25.4.1.guest-register-fields")
{
    struct vmx_vcpu *v = xmm_vcpu();
    xmm_round(v, 0x0123456789abcdefull, 0xfedcba9876543210ull, 1, 1);
    vmx_ex_set_xmm0(0);
    vmx_ex_set_xmm1(0);
}

#define XMM_ROUNDS 1000

PROBE(vmx_exit_xmm_repeat, "vmx.exit.xmm_repeat", "VMX",
      "The same, 1000 times over with a new A and B each round; the first round that differs is "
      "reported with both values (a hypervisor that switches FPU state lazily can get it wrong "
      "only when something else ran on the CPU in between)",
      "Intel SDM Vol. 3C 25.4, 25.5, 28.3, 28.5", "sdm.25.4.1.guest-register-fields")
{
    struct vmx_vcpu *v = xmm_vcpu();
    for (unsigned round = 1; round <= XMM_ROUNDS; round++) {
        const uint64_t a = 0x0123456789abcdefull ^ (round * 0x9e3779b97f4a7c15ull);
        if (!xmm_round(v, a, ~a, round, XMM_ROUNDS))
            break;
    }
    vmx_ex_set_xmm0(0);
    vmx_ex_set_xmm1(0);
}
