/* SPDX-License-Identifier: MIT */
/*
 * More VM exits and their information: LMSW and MOV CR with other
 * registers (exit qualification), XSAVES without its control, the debug
 * state a VM exit saves and clears, and the host's single-step trap
 * (RFLAGS.TF) across VMLAUNCH.
 */
#include "vmx.h"

/* ---- LMSW ----------------------------------------------------------------------- */

extern const char vmx_xm_lmsw0[], vmx_xm_lmsw1[], vmx_xm_lmsw2[], vmx_xm_lmsw3[];
GUEST(vmx_xm_lmsw_guest, "vmx_xm_lmsw0:\n"
                         "    lmsw %cx\n"
                         "vmx_xm_lmsw1:\n"
                         "    lmsw %ax\n"
                         "vmx_xm_lmsw2:\n"
                         "    lmsw (%rdi)\n"
                         "vmx_xm_lmsw3:\n"
                         "    vmcall\n"
                         "    ud2");

PROBE(vmx_exit_lmsw, "vmx.intercept.lmsw", "VMX",
      "With CR0 guest/host mask = PE|MP|EM|TS and the read shadow = guest CR0: LMSW of a value "
      "that only clears PE does not exit (LMSW cannot clear PE); LMSW AX setting TS exits with "
      "reason 28, qualification (AX << 16) | 0x30 (LMSW, register operand), length 3; LMSW (RDI) "
      "exits with qualification (source << 16) | 0x70 (memory operand), guest-linear address = "
      "RDI",
      "Intel SDM Vol. 3C 26.1.3, 28.2.1 (Table 28-3), 28.2.2", "sdm.26.1.3.clts-lmsw",
      "sdm.28.2.1.qual-cr-access", "sdm.28.2.1.guest-linear-address", "sdm.C.reason-28-cr-access")
{
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_xm_lmsw_guest);
    uint64_t cr0 = vmcs_read(VMCS_GUEST_CR0);
    if (cr0 & CR0_TS)
        error("the host runs with CR0.TS=1");
    vmcs_write(VMCS_CR0_MASK, 0xf);
    vmcs_write(VMCS_CR0_SHADOW, cr0);
    uint16_t low = (uint16_t)cr0, ts = (uint16_t)(low | CR0_TS);
    uint16_t *mem = alloc_page();
    *mem = ts;
    v->gpr[VMX_GPR_RCX] = low & ~CR0_PE;
    v->gpr[VMX_GPR_RAX] = ts;
    v->gpr[VMX_GPR_RDI] = (uintptr_t)mem;
    if (!vmx_run_expect(v, EXIT_CR_ACCESS, "LMSW AX setting TS"))
        return;
    check_eq("guest RIP (the LMSW clearing only PE did not exit)", v->guest_rip,
             (uintptr_t)vmx_xm_lmsw1);
    check_eq("exit qualification of LMSW AX", v->exit_qual, ((uint64_t)ts << 16) | 0x30);
    check_eq("VM-exit instruction length of LMSW AX", v->insn_len, vmx_xm_lmsw2 - vmx_xm_lmsw1);
    vmx_skip_insn(v);
    if (!vmx_run_expect(v, EXIT_CR_ACCESS, "LMSW (RDI) setting TS"))
        return;
    check_eq("guest RIP", v->guest_rip, (uintptr_t)vmx_xm_lmsw2);
    check_eq("exit qualification of LMSW (RDI)", v->exit_qual, ((uint64_t)ts << 16) | 0x70);
    check_eq("guest-linear address of the LMSW operand", vmcs_read(VMCS_GUEST_LINEAR_ADDR),
             (uintptr_t)mem);
    check_eq("VM-exit instruction length of LMSW (RDI)", v->insn_len, vmx_xm_lmsw3 - vmx_xm_lmsw2);
    check_eq("guest CR0 (unchanged by the exits)", vmcs_read(VMCS_GUEST_CR0), cr0);
}

/* ---- MOV CR with other registers -------------------------------------------------- */

extern const char vmx_xm_cr0[], vmx_xm_cr1[], vmx_xm_cr2[], vmx_xm_cr3[];
GUEST(vmx_xm_cr_guest, "vmx_xm_cr0:\n"
                       "    mov %r13, %cr4\n"
                       "vmx_xm_cr1:\n"
                       "    mov %r15, %cr8\n"
                       "vmx_xm_cr2:\n"
                       "    mov %cr8, %r12\n"
                       "vmx_xm_cr3:\n"
                       "    vmcall\n"
                       "    ud2");

PROBE(vmx_exit_cr_regs, "vmx.intercept.cr_qual_regs", "VMX",
      "MOV-CR exit qualifications name the register: with CR4 guest/host mask = PGE and the "
      "shadow = CR4, MOV CR4,R13 (PGE flipped) exits with qualification 0xd04, length 4; with "
      "CR8-load and CR8-store exiting (no TPR shadow), MOV CR8,R15 exits with 0xf08 and "
      "MOV R12,CR8 with 0xc18 (MOV from CR), each length 4",
      "Intel SDM Vol. 3C 25.6.6, 26.1.3, 28.2.1 (Table 28-3)", "sdm.28.2.1.qual-cr-access",
      "sdm.26.1.3.mov-cr8")
{
    vmx_require_ctl(VMX_CTL_PROC, PROC_CR8_LOAD_EXITING | PROC_CR8_STORE_EXITING,
                    "CR8-load and CR8-store exiting");
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_xm_cr_guest);
    uint64_t cr4 = vmcs_read(VMCS_GUEST_CR4);
    vmcs_write(VMCS_CR4_MASK, CR4_PGE);
    vmcs_write(VMCS_CR4_SHADOW, cr4);
    vmcs_clear_bits(VMCS_PROC_CTLS, PROC_TPR_SHADOW);
    vmcs_set_bits(VMCS_PROC_CTLS, PROC_CR8_LOAD_EXITING | PROC_CR8_STORE_EXITING);
    v->gpr[VMX_GPR_R13] = cr4 ^ CR4_PGE;
    v->gpr[VMX_GPR_R15] = 0;
    static const struct {
        const char *at, *next, *what;
        uint64_t qual;
    } cs[] = {{vmx_xm_cr0, vmx_xm_cr1, "MOV CR4, R13", 0xd04},
              {vmx_xm_cr1, vmx_xm_cr2, "MOV CR8, R15", 0xf08},
              {vmx_xm_cr2, vmx_xm_cr3, "MOV R12, CR8", 0xc18}};
    for (unsigned i = 0; i < ARRAY_SIZE(cs); i++) {
        if (!vmx_run_expect(v, EXIT_CR_ACCESS, cs[i].what))
            return;
        check(v->guest_rip == (uintptr_t)cs[i].at, "%s: guest RIP %#llx", cs[i].what,
              (unsigned long long)v->guest_rip);
        check(v->exit_qual == cs[i].qual, "%s: exit qualification %#llx, want %#llx", cs[i].what,
              (unsigned long long)v->exit_qual, (unsigned long long)cs[i].qual);
        check(v->insn_len == (unsigned)(cs[i].next - cs[i].at), "%s: length %u, want %u",
              cs[i].what, v->insn_len, (unsigned)(cs[i].next - cs[i].at));
        vmx_skip_insn(v);
    }
    vmx_run_expect(v, EXIT_VMCALL, "VMRESUME after the MOV CR exits");
    check_eq("guest CR4 (the exiting MOV changed nothing)", vmcs_read(VMCS_GUEST_CR4), cr4);
}

/* ---- XSAVES ------------------------------------------------------------------------- */

extern const char vmx_xm_xsaves[];
GUEST(vmx_xm_xsaves_guest, "    mov %esi, %eax\n"
                           "    xor %edx, %edx\n"
                           "vmx_xm_xsaves:\n"
                           "    xsaves64 (%rdi)\n"
                           "    vmcall\n"
                           "    ud2");

PROBE(vmx_exit_xsaves, "vmx.intercept.xsaves", "VMX",
      "With enable XSAVES/XRSTORS = 0, a guest XSAVES raises #UD (exit 0, vector 6, at the "
      "XSAVES); with the control = 1 and an XSS-exiting bitmap of 0, XSAVES of x87 state (EDX:EAX "
      "= 1, CR4.OSXSAVE set) runs without exit to the guest's VMCALL; where IA32_XSS offers a "
      "supervisor state component n (CPUID.(EAX=0DH,ECX=1):ECX), with IA32_XSS = bit n and "
      "XSS-exiting bitmap bit n set, XSAVES with EDX:EAX = 1 | bit n exits with reason 63 at "
      "the XSAVES",
      "Intel SDM Vol. 3C 25.6.2, 25.6.20, 26.1.3, 26.3", "sdm.26.3.xsaves-ud",
      "sdm.26.1.3.xsaves-xrstors", "sdm.C.reason-63-xsaves")
{
    (void)vmx_caps(); /* no VMX is the reason to name first */
    if (!(cpuid(0xd, 1).a & BIT(3)))
        skip("CPUID.(EAX=0DH,ECX=1):EAX.XSAVES[3]=0");
    if (!(cpuid(1, 0).c & BIT(26)))
        skip("CPUID.1:ECX.XSAVE[26]=0");
    write_cr4(read_cr4() | CR4_OSXSAVE); /* the runner restores CR4; XCR0 stays x87 */
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_xm_xsaves_guest);
    v->gpr[VMX_GPR_RDI] = (uintptr_t)alloc_pages(4);
    v->gpr[VMX_GPR_RSI] = 1; /* EDX:EAX of the XSAVES: x87 */
    if (vmx_ctl_can_clear(VMX_CTL_PROC2, PROC2_XSAVES) || !vmx_caps()->has_proc2) {
        if (vmx_caps()->has_proc2)
            vmcs_clear_bits(VMCS_PROC_CTLS2, PROC2_XSAVES);
        if (vmx_run_expect(v, EXIT_EXCEPTION_NMI, "XSAVES with enable XSAVES/XRSTORS = 0")) {
            check_eq("vector", INTR_INFO_VECTOR(v->exit_intr_info), UD_VECTOR);
            check_eq("guest RIP", v->guest_rip, (uintptr_t)vmx_xm_xsaves);
        }
    }
    if (!vmx_ctl_can_set(VMX_CTL_PROC2, PROC2_XSAVES)) {
        note("enable XSAVES/XRSTORS not allowed: the XSAVES run not tried");
        return;
    }
    vmcs_set_bits(VMCS_PROC_CTLS, PROC_SECONDARY_CTLS);
    vmcs_set_bits(VMCS_PROC_CTLS2, PROC2_XSAVES);
    vmcs_write(VMCS_XSS_EXIT_BITMAP, 0);
    vmcs_write(VMCS_GUEST_RIP, (uintptr_t)vmx_xm_xsaves_guest);
    v->launched = 0;
    vmclear(v->vmcs_pa);
    vmptrld(v->vmcs_pa);
    if (!vmx_run_expect(v, EXIT_VMCALL,
                        "XSAVES with enable XSAVES/XRSTORS = 1, XSS-exiting bitmap 0"))
        return;
    /* a supervisor component in EDX:EAX, IA32_XSS and the XSS-exiting bitmap: a VM exit */
    uint32_t sup = cpuid(0xd, 1).c & 0x7fffffffu;
    if (!sup) {
        note("CPUID.(EAX=0DH,ECX=1):ECX=0: no supervisor state component, the exit not tried");
        return;
    }
    uint32_t bit = sup & -sup;
    uint64_t xss = rdmsr(0xda0); /* IA32_XSS */
    wrmsr(0xda0, bit);
    vmcs_write(VMCS_XSS_EXIT_BITMAP, bit);
    vmcs_write(VMCS_GUEST_RIP, (uintptr_t)vmx_xm_xsaves_guest);
    v->gpr[VMX_GPR_RSI] = 1 | bit;
    if (vmx_run_expect(v, EXIT_XSAVES, "XSAVES of a component set in IA32_XSS and the bitmap")) {
        check_eq("guest RIP at the XSAVES exit", v->guest_rip, (uintptr_t)vmx_xm_xsaves);
        check_eq("VM-exit instruction length of XSAVES", v->insn_len, 4);
    }
    note("supervisor component bit %#x (IA32_XSS was %#llx)", bit, (unsigned long long)xss);
    wrmsr(0xda0, xss);
}

/* ---- IA32_DEBUGCTL and DR7 across the VM exit --------------------------------------------- */

GUEST(vmx_xm_dbg_guest, "    mov $0x1d9, %ecx\n"
                        "    mov $2, %eax\n"
                        "    xor %edx, %edx\n"
                        "    wrmsr\n"
                        "    rdmsr\n"
                        "    mov %rax, %rbx\n"
                        "    mov $0x401, %eax\n"
                        "    mov %rax, %dr7\n"
                        "    vmcall\n"
                        "    ud2");

PROBE(vmx_exit_debugctl, "vmx.exit.debugctl", "VMX",
      "With save debug controls (exit control 2), no MOV-DR exiting and a zero MSR bitmap, a guest "
      "that writes IA32_DEBUGCTL = 2 (BTF), reads it back, and writes DR7 = 0x401 exits with "
      "VMCALL: "
      "the guest DEBUGCTL and DR7 fields hold the value read back (2 where BTF exists) and 0x401, "
      "and the host runs with IA32_DEBUGCTL = 0 and DR7 = 0x400 "
      "(a VM exit clears both)",
      "Intel SDM Vol. 3C 25.7.1, 28.3.1, 28.3.3, 28.5.1", "sdm.28.5.1.dr7-debugctl",
      "sdm.28.3.1.cr-save", "sdm.28.5.1.debugctl-clear")
{
    vmx_require_ctl(VMX_CTL_EXIT, EXIT_SAVE_DEBUG, "save debug controls");
    vmx_require_ctl(VMX_CTL_PROC, PROC_MSR_BITMAPS, "use MSR bitmaps");
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_xm_dbg_guest);
    vmcs_write(VMCS_MSR_BITMAP, (uintptr_t)alloc_page());
    vmcs_set_bits(VMCS_PROC_CTLS, PROC_MSR_BITMAPS);
    vmcs_clear_bits(VMCS_PROC_CTLS, PROC_MOV_DR_EXITING);
    vmcs_set_bits(VMCS_EXIT_CTLS, EXIT_SAVE_DEBUG);
    if (!vmx_run_expect(v, EXIT_VMCALL, "guest writing DEBUGCTL and DR7"))
        return;
    uint64_t dr7, dbgctl = rdmsr(MSR_IA32_DEBUGCTL);
    __asm__ volatile("mov %%dr7, %0" : "=r"(dr7));
    check_eq("host IA32_DEBUGCTL after the VM exit", dbgctl, 0);
    check_eq("host DR7 after the VM exit", dr7, 0x400);
    uint64_t seen = v->gpr[VMX_GPR_RBX];
    if (seen != 2)
        note("the guest read IA32_DEBUGCTL = %#llx back after writing 2 (BTF not implemented)",
             (unsigned long long)seen);
    check_eq("guest IA32_DEBUGCTL field (the value the guest read back)",
             vmcs_read(VMCS_GUEST_DEBUGCTL), seen);
    check_eq("guest DR7 field", vmcs_read(VMCS_GUEST_DR7), 0x401);
}

/* ---- host RFLAGS.TF across VMLAUNCH --------------------------------------------------- */

/*
 * int vmx_xm_tf_launch(uint64_t *exit_rflags): sets HOST_RSP/HOST_RIP to its
 * own frame and landing point, sets RFLAGS.TF with POPF and executes
 * VMLAUNCH right after it. Returns 1 if VMLAUNCH fell through (VMfail;
 * the single-step trap then belongs to the host, after VMLAUNCH), 0 after a
 * VM exit, with the RFLAGS the exit left in *exit_rflags. Clears TF before
 * returning either way. GDTR/IDTR limits are left as the exit made them
 * (0xffff; the runner restores the descriptor tables).
 */
void vmx_xm_tf_launch_fall(void);
int vmx_xm_tf_launch(uint64_t *exit_rflags);
__asm__(".pushsection .text\n"
        ".type vmx_xm_tf_launch, @function\n"
        "vmx_xm_tf_launch:\n"
        "    push %rbp\n"
        "    push %rbx\n"
        "    push %r12\n"
        "    push %r13\n"
        "    push %r14\n"
        "    push %r15\n"
        "    push %rdi\n"
        "    mov $0x6c14, %eax\n" /* HOST_RSP */
        "    vmwrite %rsp, %rax\n"
        "    lea 1f(%rip), %rdx\n"
        "    mov $0x6c16, %eax\n" /* HOST_RIP */
        "    vmwrite %rdx, %rax\n"
        "    pushfq\n"
        "    orq $0x100, (%rsp)\n"
        "    popfq\n"
        "    vmlaunch\n"
        ".globl vmx_xm_tf_launch_fall\n"
        "vmx_xm_tf_launch_fall:\n"
        "    pushfq\n"
        "    andq $~0x100, (%rsp)\n"
        "    popfq\n"
        "    mov $1, %eax\n"
        "    jmp 2f\n"
        "1:  pushfq\n"
        "    pop %rdx\n"
        "    mov (%rsp), %rdi\n"
        "    mov %rdx, (%rdi)\n"
        "    xor %eax, %eax\n"
        "2:  pop %rdi\n"
        "    pop %r15\n"
        "    pop %r14\n"
        "    pop %r13\n"
        "    pop %r12\n"
        "    pop %rbx\n"
        "    pop %rbp\n"
        "    ret\n"
        ".size vmx_xm_tf_launch, . - vmx_xm_tf_launch\n"
        ".popsection");

struct tf_run {
    uint64_t exit_rflags;
    int ret;
};

static void tf_run(void *p)
{
    struct tf_run *t = p;
    t->ret = vmx_xm_tf_launch(&t->exit_rflags);
}

GUEST(vmx_xm_tf_guest, "1: vmcall", "jmp 1b");

PROBE(vmx_exit_host_tf, "vmx.exit.host_tf", "VMX",
      "Host RFLAGS.TF=1 (set by POPF right before VMLAUNCH): a VMLAUNCH that fails (VMfailValid, "
      "host CR4.VMXE=0 in the host-state area) completes as an instruction and the host takes "
      "the single-step #DB right after it (DR6.BS=1); a VMLAUNCH that enters the guest delivers "
      "no single-step trap in the guest (its VMCALL exits, reason 18) and the VM exit lands at "
      "host RIP with RFLAGS = 2 and no #DB in the host",
      "Intel SDM Vol. 3C 27.1, 28.5.3, Vol. 3B 17.3.1.4", "sdm.27.1.host-tf",
      "sdm.28.5.3.rip-rsp-rflags", "sdm.28.5.3.host-tf")
{
    vmx_on();
    (void)vmx_vcpu_new(vmx_xm_tf_guest);
    uint64_t cr4 = vmcs_read(VMCS_HOST_CR4);
    vmcs_write(VMCS_HOST_CR4, cr4 & ~CR4_VMXE);
    struct tf_run t = {0, -1};
    struct fault f;
    __asm__ volatile("mov %0, %%dr6" ::"r"(0xffff0ff0ull));
    int vec = catch_fault(tf_run, &t, &f);
    uint64_t dr6;
    __asm__ volatile("mov %%dr6, %0" : "=r"(dr6));
    if (check(vec == DB_VECTOR, "failing VMLAUNCH with TF=1: want #DB after it, got %s",
              vec == NO_FAULT ? "no exception" : fault_str(&f))) {
        check_eq("RIP of the #DB (after VMLAUNCH)", f.rip, (uintptr_t)vmx_xm_tf_launch_fall);
        check(dr6 & BIT(14), "DR6 %#llx: BS (bit 14) clear", (unsigned long long)dr6);
        check_eq("VM-instruction error", vmcs_read(VMCS_INSN_ERROR), VMXERR_ENTRY_BAD_HOST);
    }
    __asm__ volatile("pushfq; andq $~0x100, (%%rsp); popfq" ::: "cc", "memory");
    vmcs_write(VMCS_HOST_CR4, cr4);
    __asm__ volatile("mov %0, %%dr6" ::"r"(0xffff0ff0ull));
    t = (struct tf_run){0, -1};
    vec = catch_fault(tf_run, &t, &f);
    check(vec == NO_FAULT, "successful VMLAUNCH with host TF=1: %s in the host",
          vec == NO_FAULT ? "no exception" : fault_str(&f));
    check_eq("VMLAUNCH entered the guest (returned through the VM exit)", t.ret, 0);
    if (t.ret == 0) {
        check_eq("exit reason (the guest's VMCALL, no #DB in the guest)",
                 vmcs_read(VMCS_EXIT_REASON), EXIT_VMCALL);
        check_eq("host RFLAGS at the VM exit", t.exit_rflags, 0x2);
    }
}

/* ---- what a VM exit saves ------------------------------------------------------------------- */

GUEST(vmx_xm_seg_guest, "    xor %eax, %eax\n"
                        "    mov %ax, %es\n"
                        "    mov %ax, %ds\n"
                        "    sub $16, %rsp\n"
                        "    sidt (%rsp)\n"
                        "    movw $0x123, (%rsp)\n"
                        "    lidt (%rsp)\n"
                        "    add $16, %rsp\n"
                        "    vmcall\n"
                        "    ud2");

PROBE(vmx_exit_segment_save, "vmx.exit.segment_save", "VMX",
      "A guest that loads the null selector into ES and DS (usable flat segments at entry) and "
      "its IDTR with limit 0x123 exits with VMCALL: the guest ES and DS selector fields are 0 "
      "with the unusable bit (16) set in their access rights, the IDTR limit field is 0x123 and "
      "its base unchanged",
      "Intel SDM Vol. 3C 28.3.2", "sdm.28.3.2.segment-save")
{
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_xm_seg_guest);
    for (unsigned s = 0; s < 4; s += 3) {
        vmcs_write(VMCS_GUEST_ES_SEL + 2 * s, 0x10);
        vmcs_write(VMCS_GUEST_ES_BASE + 2 * s, 0);
        vmcs_write(VMCS_GUEST_ES_LIMIT + 2 * s, 0xffffffffu);
        vmcs_write(VMCS_GUEST_ES_AR + 2 * s,
                   VMX_AR_TYPE(3) | VMX_AR_S | VMX_AR_P | VMX_AR_DB | VMX_AR_G);
    }
    uint64_t idt_base = vmcs_read(VMCS_GUEST_IDTR_BASE);
    if (!vmx_run_expect(v, EXIT_VMCALL, "guest loading null ES, DS and a new IDTR limit"))
        return;
    check_eq("guest ES selector", vmcs_read(VMCS_GUEST_ES_SEL), 0);
    check_eq("guest DS selector", vmcs_read(VMCS_GUEST_DS_SEL), 0);
    check(vmcs_read(VMCS_GUEST_ES_AR) & VMX_AR_UNUSABLE,
          "guest ES access rights %#llx: not unusable",
          (unsigned long long)vmcs_read(VMCS_GUEST_ES_AR));
    check(vmcs_read(VMCS_GUEST_DS_AR) & VMX_AR_UNUSABLE,
          "guest DS access rights %#llx: not unusable",
          (unsigned long long)vmcs_read(VMCS_GUEST_DS_AR));
    check_eq("guest IDTR limit", vmcs_read(VMCS_GUEST_IDTR_LIMIT), 0x123);
    check_eq("guest IDTR base", vmcs_read(VMCS_GUEST_IDTR_BASE), idt_base);
}

extern const char vmx_xm_sti_call[], vmx_xm_movss_call[];
GUEST(vmx_xm_block_guest, "    sti\n"
                          "vmx_xm_sti_call:\n"
                          "    vmcall\n"
                          "    cli\n"
                          "    mov %ss, %ax\n"
                          "    mov %ax, %ss\n"
                          "vmx_xm_movss_call:\n"
                          "    vmcall\n"
                          "    vmcall\n"
                          "    ud2");

PROBE(vmx_exit_interruptibility_save, "vmx.exit.interruptibility_save", "VMX",
      "A VMCALL right after STI (IF was 0) exits with blocking by STI (bit 0) in the saved "
      "interruptibility state and RFLAGS.IF = 1; a VMCALL right after MOV SS exits with blocking "
      "by "
      "MOV SS (bit 1); a later VMCALL with neither",
      "Intel SDM Vol. 3C 28.3.4", "sdm.28.3.4.interruptibility")
{
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_xm_block_guest);
    if (!vmx_run_expect(v, EXIT_VMCALL, "VMCALL after STI"))
        return;
    check_eq("guest RIP", v->guest_rip, (uintptr_t)vmx_xm_sti_call);
    check_eq("interruptibility after STI; VMCALL", vmcs_read(VMCS_GUEST_INTERRUPTIBILITY) & 3,
             INTERRUPTIBILITY_STI);
    check(v->guest_rflags & BIT(9), "guest RFLAGS %#llx: IF clear after STI",
          (unsigned long long)v->guest_rflags);
    vmx_skip_insn(v);
    /* the STI blocking ends with the VMCALL; entering with it would need IF=1 */
    vmcs_write(VMCS_GUEST_INTERRUPTIBILITY, 0);
    if (!vmx_run_expect(v, EXIT_VMCALL, "VMCALL after MOV SS"))
        return;
    check_eq("guest RIP", v->guest_rip, (uintptr_t)vmx_xm_movss_call);
    check_eq("interruptibility after MOV SS; VMCALL", vmcs_read(VMCS_GUEST_INTERRUPTIBILITY) & 3,
             INTERRUPTIBILITY_MOVSS);
    vmx_skip_insn(v);
    vmcs_write(VMCS_GUEST_INTERRUPTIBILITY, 0);
    if (vmx_run_expect(v, EXIT_VMCALL, "a later VMCALL"))
        check_eq("interruptibility", vmcs_read(VMCS_GUEST_INTERRUPTIBILITY) & 3, 0);
}

extern const char vmx_xm_ud[];
GUEST(vmx_xm_inj_guest, "vmx_xm_ud:\n"
                        "    vmcall\n"
                        "    ud2");

PROBE(vmx_exit_entry_intr_cleared, "vmx.exit.entry_intr_cleared", "VMX",
      "VM entry injecting #UD (delivered through a guest IDT, whose handler VMCALLs): at the "
      "VMCALL exit the valid bit of the VM-entry interruption-information field is clear; a "
      "VMRESUME then injects nothing",
      "Intel SDM Vol. 3C 27.6.1, 28.2.5", "sdm.28.2.5.entry-intr-cleared",
      "sdm.27.6.1.interrupt-info-cleared")
{
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_xm_inj_guest);
    vmx_guest_idt(v);
    vmcs_write(VMCS_ENTRY_INTR_INFO, INTR_INFO_VALID | (INTR_TYPE_HW_EXC << 8) | UD_VECTOR);
    if (!vmx_run_expect(v, EXIT_VMCALL, "the injected #UD's handler"))
        return;
    check_eq("vector delivered", v->gpr[VMX_GPR_RBX], UD_VECTOR);
    check_eq("VM-entry interruption information after the exit",
             vmcs_read(VMCS_ENTRY_INTR_INFO) & INTR_INFO_VALID, 0);
}

extern const char vmx_xm_int3[], vmx_xm_int1[], vmx_xm_after[];
GUEST(vmx_xm_swexc_guest, "vmx_xm_int3:\n"
                          "    int3\n"
                          "vmx_xm_int1:\n"
                          "    .byte 0xf1\n"
                          "vmx_xm_after:\n"
                          "    vmcall\n"
                          "    ud2");

PROBE(vmx_exit_sw_exception_type, "vmx.intercept.sw_exception_type", "VMX",
      "With #BP and #DB in the exception bitmap: guest INT3 exits with reason 0, interruption "
      "type 6 (software exception), vector 3, length 1, RIP = the INT3; INT1 (ICEBP, 0xF1) exits "
      "with type 5 (privileged software exception), vector 1, length 1",
      "Intel SDM Vol. 3C 28.2.2, 28.2.4", "sdm.28.2.2.sw-exception-type",
      "sdm.C.reason-0-exception-nmi", "sdm.26.2.exceptions")
{
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_xm_swexc_guest);
    if (vmx_run_expect(v, EXIT_EXCEPTION_NMI, "guest INT3")) {
        check_eq("INT3: vector", INTR_INFO_VECTOR(v->exit_intr_info), BP_VECTOR);
        check_eq("INT3: interruption type", INTR_INFO_TYPE(v->exit_intr_info), INTR_TYPE_SW_EXC);
        check_eq("INT3: instruction length", v->insn_len, 1);
        check_eq("INT3: guest RIP", v->guest_rip, (uintptr_t)vmx_xm_int3);
    }
    vmcs_write(VMCS_GUEST_RIP, (uintptr_t)vmx_xm_int1);
    if (vmx_run_expect(v, EXIT_EXCEPTION_NMI, "guest INT1")) {
        check_eq("INT1: vector", INTR_INFO_VECTOR(v->exit_intr_info), DB_VECTOR);
        check_eq("INT1: interruption type", INTR_INFO_TYPE(v->exit_intr_info),
                 INTR_TYPE_PRIV_SW_EXC);
        check_eq("INT1: instruction length", v->insn_len, 1);
        check_eq("INT1: guest RIP", v->guest_rip, (uintptr_t)vmx_xm_int1);
    }
}

extern const char vmx_xm_ss_nop[], vmx_xm_ss_next[], vmx_xm_bp_at[];
GUEST(vmx_xm_dbq_guest, "    pushfq\n"
                        "    orq $0x100, (%rsp)\n"
                        "    popfq\n"
                        "vmx_xm_ss_nop:\n"
                        "    nop\n"
                        "vmx_xm_ss_next:\n"
                        "    nop\n"
                        "    vmcall\n"
                        "vmx_xm_bp_at:\n"
                        "    nop\n"
                        "    vmcall\n"
                        "    ud2");

PROBE(vmx_exit_db_qual, "vmx.intercept.db_qual", "VMX",
      "With #DB in the exception bitmap: a guest single-step trap (TF set by POPF, after the NOP "
      "that follows) exits with reason 0, vector 1, RIP after the NOP and exit qualification BS "
      "(0x4000); an instruction breakpoint (guest DR0 = an address, DR7 L0 with R/W0 = 00) exits "
      "before that instruction with qualification B0 (0x1)",
      "Intel SDM Vol. 3C 28.2.1 (Table 28-1), 28.1", "sdm.28.2.1.qual-debug",
      "sdm.28.1.exception-no-side-effects")
{
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_xm_dbq_guest);
    vmcs_clear_bits(VMCS_PROC_CTLS, PROC_MOV_DR_EXITING);
    if (vmx_run_expect(v, EXIT_EXCEPTION_NMI, "single-step trap")) {
        check_eq("single step: vector", INTR_INFO_VECTOR(v->exit_intr_info), DB_VECTOR);
        check_eq("single step: guest RIP (after the traced NOP)", v->guest_rip,
                 (uintptr_t)vmx_xm_ss_next);
        check_eq("single step: exit qualification", v->exit_qual & 0x600f, 0x4000);
    }
    vmcs_write(VMCS_GUEST_RFLAGS, 0x2);
    vmcs_write(VMCS_GUEST_PENDING_DBG, 0);
    vmcs_write(VMCS_GUEST_RIP, (uintptr_t)vmx_xm_ss_next);
    if (!vmx_ctl_can_set(VMX_CTL_ENTRY, ENTRY_LOAD_DEBUG)) {
        note("load debug controls not allowed: the breakpoint part not run");
        return;
    }
    vmcs_set_bits(VMCS_ENTRY_CTLS, ENTRY_LOAD_DEBUG);
    vmcs_write(VMCS_GUEST_DEBUGCTL, 0);
    vmcs_write(VMCS_GUEST_DR7, 0x401);
    __asm__ volatile("mov %0, %%dr0" ::"r"((uint64_t)(uintptr_t)vmx_xm_bp_at));
    if (vmx_run_expect(v, EXIT_VMCALL, "the VMCALL before the breakpoint")) {
        vmx_skip_insn(v);
        if (vmx_run_expect(v, EXIT_EXCEPTION_NMI, "instruction breakpoint")) {
            check_eq("breakpoint: vector", INTR_INFO_VECTOR(v->exit_intr_info), DB_VECTOR);
            check_eq("breakpoint: guest RIP", v->guest_rip, (uintptr_t)vmx_xm_bp_at);
            check_eq("breakpoint: exit qualification", v->exit_qual & 0x600f, 0x1);
        }
    }
    __asm__ volatile("mov %0, %%dr0" ::"r"(0ull));
}

/* ---- secondary controls off, VMFUNC without its control ------------------------------------ */

extern const char vmx_xm_rdtscp[], vmx_xm_vmfunc[];
GUEST(vmx_xm_sec_guest, "vmx_xm_rdtscp:\n"
                        "    rdtscp\n"
                        "    vmcall\n"
                        "vmx_xm_vmfunc:\n"
                        "    xor %eax, %eax\n"
                        "    xor %ecx, %ecx\n"
                        "    vmfunc\n"
                        "    vmcall\n"
                        "    ud2");

PROBE(vmx_exit_secondary_off, "vmx.intercept.secondary_off", "VMX",
      "With enable RDTSCP and enable VM functions set in the secondary controls but activate "
      "secondary controls = 0, every secondary control counts as 0: guest RDTSCP raises #UD (exit "
      "0, vector 6, at the RDTSCP) and VMFUNC raises #UD; with the secondary controls active "
      "RDTSCP runs to the VMCALL",
      "Intel SDM Vol. 3C 25.6.2, 26.3, 26.5.5.1", "sdm.25.6.2.secondary-off", "sdm.26.3.rdtscp-ud",
      "sdm.26.5.5.1.vmfunc-ud")
{
    vmx_require_ctl(VMX_CTL_PROC2, PROC2_RDTSCP, "enable RDTSCP");
    if (!(cpuid(0x80000001, 0).d & BIT(27)))
        skip("CPUID 0x80000001 EDX.RDTSCP[27]=0");
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_xm_sec_guest);
    uint32_t p2 = PROC2_RDTSCP;
    if (vmx_ctl_can_set(VMX_CTL_PROC2, PROC2_VMFUNC))
        p2 |= PROC2_VMFUNC;
    vmcs_write(VMCS_PROC_CTLS2, vmcs_read(VMCS_PROC_CTLS2) | p2);
    vmcs_clear_bits(VMCS_PROC_CTLS, PROC_SECONDARY_CTLS);
    if (vmx_run_expect(v, EXIT_EXCEPTION_NMI, "RDTSCP with the secondary controls off")) {
        check_eq("RDTSCP: vector", INTR_INFO_VECTOR(v->exit_intr_info), UD_VECTOR);
        check_eq("RDTSCP: guest RIP", v->guest_rip, (uintptr_t)vmx_xm_rdtscp);
    }
    if (p2 & PROC2_VMFUNC) {
        vmcs_write(VMCS_GUEST_RIP, (uintptr_t)vmx_xm_vmfunc);
        if (vmx_run_expect(v, EXIT_EXCEPTION_NMI, "VMFUNC with the secondary controls off")) {
            check_eq("VMFUNC: vector", INTR_INFO_VECTOR(v->exit_intr_info), UD_VECTOR);
            check_eq("VMFUNC: guest RIP", v->guest_rip, (uintptr_t)vmx_xm_vmfunc + 4);
        }
    } else {
        note("enable VM functions not allowed: the VMFUNC case not run");
    }
    vmcs_set_bits(VMCS_PROC_CTLS, PROC_SECONDARY_CTLS);
    vmcs_write(VMCS_GUEST_RIP, (uintptr_t)vmx_xm_rdtscp);
    vmx_run_expect(v, EXIT_VMCALL, "RDTSCP with the secondary controls active");
}

extern const char vmx_xm_after_hlt[];
GUEST(vmx_xm_hlt_guest, "    hlt\n"
                        "vmx_xm_after_hlt:\n"
                        "    vmcall\n"
                        "    ud2");

PROBE(vmx_exit_hlt_activity, "vmx.exit.hlt_activity", "VMX",
      "With HLT exiting = 0 and RFLAGS.IF = 0, a guest HLT halts the guest; the VMX-preemption "
      "timer (value 20000) ends it with exit 52 that saves activity state HLT (1) and RIP after "
      "the HLT; a VMRESUME with the activity state set back to active runs the VMCALL",
      "Intel SDM Vol. 3C 26.3, 26.5.1, 28.3.4", "sdm.26.3.hlt-activity",
      "sdm.28.3.4.activity-state", "sdm.26.5.1.timer-hlt")
{
    vmx_require_ctl(VMX_CTL_PIN, PIN_PREEMPTION_TIMER, "activate VMX-preemption timer");
    if (!vmx_ctl_can_clear(VMX_CTL_PROC, PROC_HLT_EXITING))
        skip("HLT exiting cannot be 0");
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_xm_hlt_guest);
    vmcs_clear_bits(VMCS_PROC_CTLS, PROC_HLT_EXITING);
    vmcs_set_bits(VMCS_PIN_CTLS, PIN_PREEMPTION_TIMER);
    vmcs_write(VMCS_PREEMPTION_TIMER, 20000);
    v->watchdog = "the VMX-preemption timer exit (52) from HLT";
    note("watched run: guest HLT, the timer at 20000"); /* names the run if the level hangs */
    bool ok = vmx_run_expect(v, EXIT_PREEMPT_TIMER, "guest HLT, then the timer");
    v->watchdog = NULL;
    if (!ok)
        return;
    check_eq("saved activity state", vmcs_read(VMCS_GUEST_ACTIVITY_STATE), ACTIVITY_HLT);
    check_eq("guest RIP (after the HLT)", v->guest_rip, (uintptr_t)vmx_xm_after_hlt);
    vmcs_clear_bits(VMCS_PIN_CTLS, PIN_PREEMPTION_TIMER);
    vmcs_write(VMCS_GUEST_ACTIVITY_STATE, ACTIVITY_ACTIVE);
    vmx_run_expect(v, EXIT_VMCALL, "VMRESUME in the active state");
}
