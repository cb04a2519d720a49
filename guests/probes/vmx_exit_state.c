/* SPDX-License-Identifier: MIT */
/*
 * What a VM exit loads from the host-state area (control registers,
 * selectors, FS/GS bases, IA32_PERF_GLOBAL_CTRL), what it saves and
 * updates (pending debug exceptions, the IA-32e mode guest control, an
 * event it interrupted in delivery) and the NMI blocking it leaves; and
 * what VM entry loads from the guest-state area (SYSENTER MSRs, IA32_PAT,
 * IA32_EFER, IA32_PERF_GLOBAL_CTRL, blocking by MOV SS and STI). (VM entry
 * clearing address-range monitoring: vmx.intercept.monitor_mwait; a VM exit
 * right after entry by the TPR threshold: vmx.apic.tpr_threshold_entry;
 * entry into the shutdown state: vmx.entry.guest_activity_shutdown.)
 */
#include "vmx.h"

/* A vCPU for guest g with a zero MSR bitmap (no RDMSR/WRMSR exits). */
static struct vmx_vcpu *msr_vcpu(void (*g)(void))
{
    vmx_require_ctl(VMX_CTL_PROC, PROC_MSR_BITMAPS, "use MSR bitmaps");
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(g);
    vmcs_write(VMCS_MSR_BITMAP, (uintptr_t)alloc_page());
    vmcs_set_bits(VMCS_PROC_CTLS, PROC_MSR_BITMAPS);
    return v;
}

/* ---- 28.5.1: host CR0, CR3, CR4 ----------------------------------------------------- */

GUEST(vmx_es_call_guest, "vmcall", "ud2");

/* A CR bit that the fixed-bit MSRs let software flip, or 0. */
static uint64_t flippable(uint64_t fixed0, uint64_t fixed1, uint64_t bit)
{
    return (fixed1 & bit) && !(fixed0 & bit) ? bit : 0;
}

PROBE(vmx_exit_cr_load, "vmx.exit.cr_load", "VMX",
      "The host-state CR0 has WP flipped, CR4 has TSD flipped (where the CR0/CR4 fixed MSRs "
      "allow) and CR3 points to a copy of the host's PML4; the guest runs with the host's own "
      "CR0, CR3 and CR4 and exits with VMCALL: afterwards the host's CR0, CR3 and CR4 are the "
      "host-state fields, not the values before VM entry",
      "Intel SDM Vol. 3C 28.5.1", "sdm.28.5.1.cr-load")
{
    vmx_on();
    const struct vmx_caps *c = vmx_caps();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_es_call_guest);
    const uint64_t cr0 = read_cr0(), cr3 = read_cr3(), cr4 = read_cr4();
    uint64_t *pml4 = alloc_page();
    memcpy(pml4, (void *)(uintptr_t)(cr3 & ~0xfffull), 4096);
    const uint64_t h0 = cr0 ^ flippable(c->cr0_fixed0, c->cr0_fixed1, CR0_WP);
    const uint64_t h3 = (uintptr_t)pml4 | (cr3 & 0xfff);
    const uint64_t h4 = cr4 ^ flippable(c->cr4_fixed0, c->cr4_fixed1, BIT(2));
    note("host CR0 %#llx -> field %#llx, CR3 %#llx -> %#llx, CR4 %#llx -> %#llx",
         (unsigned long long)cr0, (unsigned long long)h0, (unsigned long long)cr3,
         (unsigned long long)h3, (unsigned long long)cr4, (unsigned long long)h4);
    vmcs_write(VMCS_HOST_CR0, h0);
    vmcs_write(VMCS_HOST_CR3, h3);
    vmcs_write(VMCS_HOST_CR4, h4);
    uint32_t r = vmx_run(v);
    const uint64_t got0 = read_cr0(), got3 = read_cr3(), got4 = read_cr4();
    write_cr3(cr3);
    write_cr4(cr4);
    write_cr0(cr0);
    if (!check(r == EXIT_VMCALL, "guest VMCALL: want exit reason 18 (VMCALL), got %s",
               vmx_exit_str(v)))
        return;
    check_eq("host CR0 after the VM exit (the host-state field)", got0, h0);
    check_eq("host CR3 after the VM exit (the host-state field)", got3, h3);
    check_eq("host CR4 after the VM exit (the host-state field)", got4, h4);
}

/* ---- 28.5.2: host selectors and FS/GS bases ---------------------------------------- */

/* guest: null DS, ES, FS, GS; IA32_FS_BASE <- RBX, IA32_GS_BASE <- RSI; VMCALL */
GUEST(vmx_es_seg_guest, "    xor %eax, %eax\n"
                        "    mov %ax, %ds\n"
                        "    mov %ax, %es\n"
                        "    mov %ax, %fs\n"
                        "    mov %ax, %gs\n"
                        "    mov $0xc0000100, %ecx\n"
                        "    mov %rbx, %rax\n"
                        "    mov %rbx, %rdx\n"
                        "    shr $32, %rdx\n"
                        "    wrmsr\n"
                        "    mov $0xc0000101, %ecx\n"
                        "    mov %rsi, %rax\n"
                        "    mov %rsi, %rdx\n"
                        "    shr $32, %rdx\n"
                        "    wrmsr\n"
                        "    vmcall\n"
                        "    ud2");

struct segs {
    uint16_t cs, ss, ds, es, fs, gs, tr;
};

static void read_segs(struct segs *s)
{
    __asm__ volatile("mov %%cs, %0" : "=r"(s->cs));
    __asm__ volatile("mov %%ss, %0" : "=r"(s->ss));
    __asm__ volatile("mov %%ds, %0" : "=r"(s->ds));
    __asm__ volatile("mov %%es, %0" : "=r"(s->es));
    __asm__ volatile("mov %%fs, %0" : "=r"(s->fs));
    __asm__ volatile("mov %%gs, %0" : "=r"(s->gs));
    __asm__ volatile("str %0" : "=r"(s->tr));
}

static void write_data_segs(const struct segs *s)
{
    __asm__ volatile("mov %0, %%ds" ::"r"(s->ds));
    __asm__ volatile("mov %0, %%es" ::"r"(s->es));
    __asm__ volatile("mov %0, %%fs" ::"r"(s->fs));
    __asm__ volatile("mov %0, %%gs" ::"r"(s->gs));
}

PROBE(vmx_exit_segment_load, "vmx.exit.segment_load", "VMX",
      "With host-state DS, ES, FS, GS selectors = 0x10 (the kernel data segment) and host FS/GS "
      "bases 0x7f0000001000/0x7f0000002000 (zero MSR bitmap), a guest that loads the null "
      "selector into DS, ES, FS and GS and writes IA32_FS_BASE = 0x12345000 and IA32_GS_BASE = "
      "0x23456000 exits with VMCALL: the host's CS, SS, DS, ES, FS, GS and TR selectors are the "
      "host-state fields and IA32_FS_BASE/IA32_GS_BASE the host-state bases",
      "Intel SDM Vol. 3C 28.5.2, 28.5.1", "sdm.28.5.2.segment-load")
{
    struct vmx_vcpu *v = msr_vcpu(vmx_es_seg_guest);
    struct segs before, after;
    read_segs(&before);
    const uint64_t fs0 = rdmsr(MSR_FS_BASE), gs0 = rdmsr(MSR_GS_BASE);
    const uint64_t hfs = 0x7f0000001000ull, hgs = 0x7f0000002000ull;
    vmcs_write(VMCS_HOST_DS_SEL, KERNEL_DS);
    vmcs_write(VMCS_HOST_ES_SEL, KERNEL_DS);
    vmcs_write(VMCS_HOST_FS_SEL, KERNEL_DS);
    vmcs_write(VMCS_HOST_GS_SEL, KERNEL_DS);
    vmcs_write(VMCS_HOST_FS_BASE, hfs);
    vmcs_write(VMCS_HOST_GS_BASE, hgs);
    v->gpr[VMX_GPR_RBX] = 0x12345000;
    v->gpr[VMX_GPR_RSI] = 0x23456000;
    uint32_t r = vmx_run(v);
    read_segs(&after);
    const uint64_t fs = rdmsr(MSR_FS_BASE), gs = rdmsr(MSR_GS_BASE);
    write_data_segs(&before);
    wrmsr(MSR_FS_BASE, fs0);
    wrmsr(MSR_GS_BASE, gs0);
    if (!check(r == EXIT_VMCALL, "guest loading null DS-GS: want exit reason 18 (VMCALL), got %s",
               vmx_exit_str(v)))
        return;
    check_eq("guest DS selector saved (the guest loaded null)", vmcs_read(VMCS_GUEST_DS_SEL), 0);
    check_eq("host CS after the VM exit", after.cs, vmcs_read(VMCS_HOST_CS_SEL));
    check_eq("host SS after the VM exit", after.ss, vmcs_read(VMCS_HOST_SS_SEL));
    check_eq("host DS after the VM exit", after.ds, KERNEL_DS);
    check_eq("host ES after the VM exit", after.es, KERNEL_DS);
    check_eq("host FS after the VM exit", after.fs, KERNEL_DS);
    check_eq("host GS after the VM exit", after.gs, KERNEL_DS);
    check_eq("host TR after the VM exit", after.tr, vmcs_read(VMCS_HOST_TR_SEL));
    check_eq("host IA32_FS_BASE after the VM exit", fs, hfs);
    check_eq("host IA32_GS_BASE after the VM exit", gs, hgs);
}

/* ---- 28.5.1: host IA32_PERF_GLOBAL_CTRL -------------------------------------------- */

/* IA32_PERF_GLOBAL_CTRL exists (architectural PMU version 2 or later, else
 * SKIP) and holds a value: the host writes its value with EN_PMC0 (bit 0)
 * flipped, reads it back and puts the old value back. Returns that flipped
 * value in *flipped, false (a failed check) if the MSR did not hold it. */
static bool perf_global_holds(uint64_t *host, uint64_t *flipped)
{
    if (cpuid(0, 0).a < 0xa)
        skip("CPUID leaf 0AH not reported (max leaf %#x): no architectural PMU", cpuid(0, 0).a);
    const uint32_t a = cpuid(0xa, 0).a;
    if ((a & 0xff) < 2 || !((a >> 8) & 0xff))
        skip("CPUID.0AH:EAX = %#x: PMU version %u < 2 or no general-purpose counter "
             "(no IA32_PERF_GLOBAL_CTRL.EN_PMC0)",
             a, a & 0xff);
    uint64_t got = 0;
    if (!check(rdmsr_safe(MSR_IA32_PERF_GLOBAL_CTRL, host) == NO_FAULT,
               "RDMSR IA32_PERF_GLOBAL_CTRL faulted (CPUID.0AH:EAX = %#x)", a))
        return false;
    *flipped = *host ^ BIT(0);
    int vec = wrmsr_safe(MSR_IA32_PERF_GLOBAL_CTRL, *flipped);
    rdmsr_safe(MSR_IA32_PERF_GLOBAL_CTRL, &got);
    wrmsr_safe(MSR_IA32_PERF_GLOBAL_CTRL, *host);
    return check(vec == NO_FAULT && got == *flipped,
                 "host WRMSR IA32_PERF_GLOBAL_CTRL = %#llx (%s) then RDMSR: got %#llx; "
                 "CPUID.0AH:EAX "
                 "= %#x reports the MSR, but it does not hold a value, so no VM entry or exit "
                 "can be seen loading it",
                 (unsigned long long)*flipped, vec == NO_FAULT ? "no fault" : "faulted",
                 (unsigned long long)got, a);
}

/* guest: RAX:RDX <- IA32_PERF_GLOBAL_CTRL; VMCALL */
GUEST(vmx_es_perf_guest, "mov $0x38f, %ecx", "rdmsr", "vmcall", "ud2");

PROBE(vmx_exit_perf_global_ctrl, "vmx.exit.perf_global_ctrl", "VMX",
      "With load IA32_PERF_GLOBAL_CTRL (exit control 12) and the host-state field = the host's "
      "value with EN_PMC0 (bit 0) flipped, a guest VMCALL exit leaves IA32_PERF_GLOBAL_CTRL = "
      "the host-state field (needs CPUID.0AH PMU version 2 or later; first the host's own WRMSR of "
      "that value must read back)",
      "Intel SDM Vol. 3C 28.5.1, 25.7.1", "sdm.28.5.1.perf-global-ctrl")
{
    vmx_require_ctl(VMX_CTL_EXIT, EXIT_LOAD_PERF_GLOBAL, "load IA32_PERF_GLOBAL_CTRL (exit)");
    uint64_t host, want;
    if (!perf_global_holds(&host, &want))
        return;
    struct vmx_vcpu *v = msr_vcpu(vmx_es_perf_guest);
    vmcs_set_bits(VMCS_EXIT_CTLS, EXIT_LOAD_PERF_GLOBAL);
    vmcs_write(VMCS_HOST_PERF_GLOBAL_CTRL, want);
    uint32_t r = vmx_run(v);
    const uint64_t got = rdmsr(MSR_IA32_PERF_GLOBAL_CTRL);
    wrmsr(MSR_IA32_PERF_GLOBAL_CTRL, host);
    if (!check(r == EXIT_VMCALL, "guest VMCALL: want exit reason 18 (VMCALL), got %s",
               vmx_exit_str(v)))
        return;
    check_eq("guest IA32_PERF_GLOBAL_CTRL (not loaded by VM entry: the host's)",
             (v->gpr[VMX_GPR_RDX] << 32) | (uint32_t)v->gpr[VMX_GPR_RAX], host);
    check_eq("host IA32_PERF_GLOBAL_CTRL after the VM exit (the host-state field)", got, want);
}

PROBE(vmx_entry_perf_global_ctrl, "vmx.entry.perf_global_ctrl", "VMX",
      "With load IA32_PERF_GLOBAL_CTRL (entry control 13) and the guest-state field = the "
      "host's value with EN_PMC0 (bit 0) flipped and a zero MSR bitmap, the guest's RDMSR of "
      "IA32_PERF_GLOBAL_CTRL reads the guest-state field (needs CPUID.0AH PMU version 2 or later; "
      "first the host's own WRMSR of that value must read back)",
      "Intel SDM Vol. 3C 27.3.2.1, 25.8.1", "sdm.27.3.2.1.perf-global-ctrl-load")
{
    vmx_require_ctl(VMX_CTL_ENTRY, ENTRY_LOAD_PERF_GLOBAL, "load IA32_PERF_GLOBAL_CTRL (entry)");
    uint64_t host, want;
    if (!perf_global_holds(&host, &want))
        return;
    struct vmx_vcpu *v = msr_vcpu(vmx_es_perf_guest);
    vmcs_set_bits(VMCS_ENTRY_CTLS, ENTRY_LOAD_PERF_GLOBAL);
    vmcs_write(VMCS_GUEST_PERF_GLOBAL_CTRL, want);
    uint32_t r = vmx_run(v);
    wrmsr(MSR_IA32_PERF_GLOBAL_CTRL, host);
    if (!check(r == EXIT_VMCALL, "guest RDMSR, VMCALL: want exit reason 18 (VMCALL), got %s",
               vmx_exit_str(v)))
        return;
    check_eq("guest IA32_PERF_GLOBAL_CTRL (the guest-state field)",
             (v->gpr[VMX_GPR_RDX] << 32) | (uint32_t)v->gpr[VMX_GPR_RAX], want);
}

/* ---- 27.3.2.1: SYSENTER MSRs, IA32_PAT and IA32_EFER loaded by VM entry ------------ */

/* guest: RBX <- SYSENTER_CS, RSI <- SYSENTER_ESP, RDI <- SYSENTER_EIP; VMCALL */
GUEST(vmx_es_sysenter_guest, "    mov $0x174, %ecx\n"
                             "    rdmsr\n"
                             "    shl $32, %rdx\n"
                             "    or %rax, %rdx\n"
                             "    mov %rdx, %rbx\n"
                             "    mov $0x175, %ecx\n"
                             "    rdmsr\n"
                             "    shl $32, %rdx\n"
                             "    or %rax, %rdx\n"
                             "    mov %rdx, %rsi\n"
                             "    mov $0x176, %ecx\n"
                             "    rdmsr\n"
                             "    shl $32, %rdx\n"
                             "    or %rax, %rdx\n"
                             "    mov %rdx, %rdi\n"
                             "    vmcall\n"
                             "    ud2");

PROBE(vmx_entry_sysenter_load, "vmx.entry.sysenter_load", "VMX",
      "With guest-state IA32_SYSENTER_CS = 0x1230, IA32_SYSENTER_ESP = 0xffff800012345678 and "
      "IA32_SYSENTER_EIP = 0x00007f00abcdef00 and a zero MSR bitmap, the guest's RDMSR of the "
      "three MSRs reads those values; after the VM exit the host's are its host-state fields",
      "Intel SDM Vol. 3C 27.3.2.1, 28.5.1", "sdm.27.3.2.1.sysenter-load",
      "sdm.28.5.1.sysenter-fs-gs")
{
    struct vmx_vcpu *v = msr_vcpu(vmx_es_sysenter_guest);
    const uint64_t cs = 0x1230, esp = 0xffff800012345678ull, eip = 0x00007f00abcdef00ull;
    vmcs_write(VMCS_GUEST_SYSENTER_CS, cs);
    vmcs_write(VMCS_GUEST_SYSENTER_ESP, esp);
    vmcs_write(VMCS_GUEST_SYSENTER_EIP, eip);
    if (!vmx_run_expect(v, EXIT_VMCALL, "guest reading the SYSENTER MSRs"))
        return;
    check_eq("guest IA32_SYSENTER_CS", v->gpr[VMX_GPR_RBX], cs);
    check_eq("guest IA32_SYSENTER_ESP", v->gpr[VMX_GPR_RSI], esp);
    check_eq("guest IA32_SYSENTER_EIP", v->gpr[VMX_GPR_RDI], eip);
    check_eq("host IA32_SYSENTER_CS after the exit", rdmsr(MSR_IA32_SYSENTER_CS),
             vmcs_read(VMCS_HOST_SYSENTER_CS));
    check_eq("host IA32_SYSENTER_ESP after the exit", rdmsr(MSR_IA32_SYSENTER_ESP),
             vmcs_read(VMCS_HOST_SYSENTER_ESP));
    check_eq("host IA32_SYSENTER_EIP after the exit", rdmsr(MSR_IA32_SYSENTER_EIP),
             vmcs_read(VMCS_HOST_SYSENTER_EIP));
}

/* guest: RBX <- IA32_PAT, RSI <- IA32_EFER; VMCALL */
GUEST(vmx_es_pat_guest, "    mov $0x277, %ecx\n"
                        "    rdmsr\n"
                        "    shl $32, %rdx\n"
                        "    or %rax, %rdx\n"
                        "    mov %rdx, %rbx\n"
                        "    mov $0xc0000080, %ecx\n"
                        "    rdmsr\n"
                        "    shl $32, %rdx\n"
                        "    or %rax, %rdx\n"
                        "    mov %rdx, %rsi\n"
                        "    vmcall\n"
                        "    ud2");

PROBE(vmx_entry_pat_efer_load, "vmx.entry.pat_efer_load", "VMX",
      "With load IA32_PAT and load IA32_EFER (entry controls 14, 15), guest-state IA32_PAT = "
      "0x0007040600070406 and IA32_EFER = the host's with SCE flipped, and a zero MSR bitmap, the "
      "guest's RDMSR of IA32_PAT and IA32_EFER reads the guest-state fields",
      "Intel SDM Vol. 3C 27.3.2.1", "sdm.27.3.2.1.pat-load", "sdm.27.3.2.1.efer-load")
{
    vmx_require_ctl(VMX_CTL_ENTRY, ENTRY_LOAD_PAT | ENTRY_LOAD_EFER,
                    "load IA32_PAT and load IA32_EFER (entry)");
    struct vmx_vcpu *v = msr_vcpu(vmx_es_pat_guest);
    const uint64_t pat0 = rdmsr(MSR_IA32_PAT), efer0 = rdmsr(MSR_EFER);
    const uint64_t pat = 0x0007040600070406ull, efer = efer0 ^ EFER_SCE;
    vmcs_set_bits(VMCS_ENTRY_CTLS, ENTRY_LOAD_PAT | ENTRY_LOAD_EFER);
    vmcs_write(VMCS_GUEST_PAT, pat);
    vmcs_write(VMCS_GUEST_EFER, efer);
    uint32_t r = vmx_run(v);
    wrmsr(MSR_IA32_PAT, pat0); /* in case the exit controls do not load them */
    wrmsr(MSR_EFER, efer0);
    if (!check(r == EXIT_VMCALL, "guest reading PAT and EFER: want exit reason 18, got %s",
               vmx_exit_str(v)))
        return;
    check_eq("guest IA32_PAT (the guest-state field)", v->gpr[VMX_GPR_RBX], pat);
    check_eq("guest IA32_EFER (the guest-state field)", v->gpr[VMX_GPR_RSI], efer);
}

/* ---- 27.7.1: blocking by MOV SS loaded by VM entry -------------------------------- */

GUEST(vmx_es_win_guest, "nop", "vmcall", "ud2");

PROBE(vmx_entry_movss_blocking, "vmx.entry.movss_blocking", "VMX",
      "With interrupt-window and external-interrupt exiting and guest RFLAGS.IF = 1: a guest "
      "entered with blocking by MOV SS (interruptibility bit 1) executes its first instruction "
      "(a 1-byte NOP) and exits with reason 7 at entry + 1; entered with blocking by STI (bit 0) "
      "the same; entered with neither it exits before the NOP",
      "Intel SDM Vol. 3C 27.7.1, 27.7.5, 25.4.2", "sdm.27.7.1.blocking-load")
{
    vmx_require_ctl(VMX_CTL_PROC, PROC_INTR_WINDOW, "interrupt-window exiting");
    vmx_require_ctl(VMX_CTL_PIN, PIN_EXTINT_EXITING, "external-interrupt exiting");
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_es_win_guest);
    const uint64_t entry = vmcs_read(VMCS_GUEST_RIP);
    vmcs_set_bits(VMCS_PIN_CTLS, PIN_EXTINT_EXITING);
    vmcs_set_bits(VMCS_PROC_CTLS, PROC_INTR_WINDOW);
    static const struct {
        uint32_t blocking;
        uint64_t rip;
        const char *what;
    } cases[] = {
        {INTERRUPTIBILITY_MOVSS, 1, "entry with IF=1 and blocking by MOV SS"},
        {INTERRUPTIBILITY_STI, 1, "entry with IF=1 and blocking by STI"},
        {0, 0, "entry with IF=1 and no blocking"},
    };
    for (unsigned i = 0; i < ARRAY_SIZE(cases); i++) {
        vmcs_write(VMCS_GUEST_RIP, entry);
        vmcs_write(VMCS_GUEST_RFLAGS, 0x202);
        vmcs_write(VMCS_GUEST_INTERRUPTIBILITY, cases[i].blocking);
        if (vmx_run_expect(v, EXIT_INTR_WINDOW, cases[i].what))
            check(v->guest_rip == entry + cases[i].rip,
                  "%s: guest RIP at the interrupt-window exit %#llx, want entry + %llu",
                  cases[i].what, (unsigned long long)v->guest_rip,
                  (unsigned long long)cases[i].rip);
    }
}

/* ---- 28.3.4: pending debug exceptions saved by a VM exit ------------------------- */

extern const char vmx_es_movss_call[];
GUEST(vmx_es_movss_guest, "    mov %ax, %ss\n"
                          "vmx_es_movss_call:\n"
                          "    vmcall\n"
                          "    ud2");

PROBE(vmx_exit_pending_dbg, "vmx.exit.pending_dbg", "VMX",
      "A guest entered with RFLAGS.TF = 1 executes MOV SS (its single-step trap held back by the "
      "MOV SS blocking), then VMCALL: the VM exit is the VMCALL's (reason 18, no #DB exit) at "
      "the VMCALL, and saves blocking by MOV SS in the interruptibility state and the pending "
      "single-step trap as BS (bit 14) in the pending debug exceptions field (0x4000)",
      "Intel SDM Vol. 3C 28.3.4, 25.4.2; Vol. 3A 6.8.3", "sdm.28.3.4.pending-dbg",
      "sdm.28.3.4.interruptibility")
{
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_es_movss_guest);
    uint16_t ss;
    __asm__ volatile("mov %%ss, %0" : "=r"(ss));
    v->gpr[VMX_GPR_RAX] = ss;
    vmcs_write(VMCS_GUEST_RFLAGS, 0x102);
    if (!vmx_run_expect(v, EXIT_VMCALL, "VMCALL right after MOV SS with TF=1"))
        return;
    check_eq("guest RIP (the VMCALL)", v->guest_rip, (uintptr_t)vmx_es_movss_call);
    check_eq("interruptibility state (blocking by MOV SS)",
             vmcs_read(VMCS_GUEST_INTERRUPTIBILITY) & 0xf, INTERRUPTIBILITY_MOVSS);
    check_eq("pending debug exceptions (BS)", vmcs_read(VMCS_GUEST_PENDING_DBG), BIT(14));
}

/* ---- 28.5.5: no NMI blocking after an exit not caused by an NMI ------------------ */

static volatile uint32_t *es_apic;

/* Sends an NMI to this processor (xAPIC ICR, physical destination = its own
 * APIC ID) and waits a little for it. */
static void es_self_nmi(void *arg)
{
    (void)arg;
    es_apic[APIC_ICR2 / 4] = es_apic[APIC_ID / 4] & 0xff000000u;
    es_apic[APIC_ICR / 4] = (1u << 14) | (4u << 8); /* assert, delivery mode NMI */
    for (volatile int i = 0; i < 100000; i++)
        ;
}

PROBE(vmx_exit_nmi_unblocked, "vmx.exit.nmi_unblocked", "VMX",
      "A VM exit not caused by an NMI (the guest's VMCALL; NMI exiting and virtual NMIs 0, "
      "guest entered without blocking by NMI) leaves NMIs unblocked in the host: a self-NMI "
      "sent through the xAPIC ICR right after the exit is delivered at once (vector 2), before "
      "any IRET (needs CPUID.1:EDX.APIC)",
      "Intel SDM Vol. 3C 28.5.5, 28.1; Vol. 3A 6.7.1", "sdm.28.5.5.blocking")
{
    if (!vmx_supported())
        skip("CPUID.1:ECX.VMX[bit 5]=0");
    if (!(cpuid(1, 0).d & BIT(9)))
        skip("CPUID.1:EDX.APIC[bit 9]=0: no local APIC");
    const uint64_t base = rdmsr(MSR_IA32_APIC_BASE);
    if (!(base & APIC_BASE_ENABLE) || (base & APIC_BASE_X2APIC))
        error("the local APIC is not in xAPIC mode (IA32_APIC_BASE=%#llx)",
              (unsigned long long)base);
    es_apic = (volatile uint32_t *)(uintptr_t)(base & 0xfffff000ull);
    const uint32_t svr = es_apic[APIC_SVR / 4];
    es_apic[APIC_SVR / 4] = svr | 0x1ff;
    catch_fault(iret_self, NULL, NULL); /* no NMI blocking before the entry */
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_es_call_guest);
    vmcs_write(VMCS_GUEST_INTERRUPTIBILITY, 0);
    if (vmx_run_expect(v, EXIT_VMCALL, "guest VMCALL")) {
        struct fault f;
        int vec = catch_fault(es_self_nmi, NULL, &f);
        check(vec == NMI_VECTOR,
              "host self-NMI after the VMCALL exit: got %s, want the NMI delivered at once "
              "(NMIs blocked after a VM exit not caused by an NMI)",
              vec == NO_FAULT ? "no exception" : fault_str(&f));
    }
    catch_fault(iret_self, NULL, NULL); /* leave NMIs unblocked */
    es_apic[APIC_SVR / 4] = svr;
}

/* ---- 28.2.5: IA-32e mode guest follows the guest's EFER.LMA ------------------------- */

/* 32-bit protected-mode guest without paging: EFER.LME <- 1, CR0.PG <- 1
 * (IA-32e mode, compatibility mode), VMCALL. */
void vmx_es_lm_guest(void);
extern const char vmx_es_lm_call[];
__asm__(".pushsection .text\n"
        ".code32\n"
        "vmx_es_lm_guest:\n"
        "    mov $0xc0000080, %ecx\n"
        "    rdmsr\n"
        "    or $0x100, %eax\n"
        "    wrmsr\n"
        "    mov %cr0, %eax\n"
        "    or $0x80000000, %eax\n"
        "    mov %eax, %cr0\n"
        "vmx_es_lm_call:\n"
        "    vmcall\n"
        "    ud2\n"
        ".code64\n"
        ".popsection");

PROBE(vmx_exit_ia32e_update, "vmx.exit.ia32e_update", "unrestricted guest",
      "With unrestricted guest and EPT (identity), a guest entered with IA-32e mode guest = 0 in "
      "32-bit protected mode without paging (CR4.PAE = 1, CR3 = the host's 4-level tables, "
      "EFER.LME = LMA = 0 loaded by load IA32_EFER, zero MSR bitmap) sets EFER.LME and CR0.PG, "
      "entering IA-32e mode, and executes VMCALL: after the exit the IA-32e mode guest entry "
      "control (bit 9) is 1, the saved CR0 has PG and, with save IA32_EFER, the saved EFER has "
      "LME and LMA",
      "Intel SDM Vol. 3C 28.2.5, 28.3.1, 25.8.1", "sdm.28.2.5.ia32e-guest-update")
{
    vmx_require_ctl(VMX_CTL_PROC2, PROC2_UNRESTRICTED | PROC2_EPT, "unrestricted guest and EPT");
    vmx_require_ctl(VMX_CTL_ENTRY, ENTRY_LOAD_EFER, "load IA32_EFER (entry)");
    if (!vmx_ctl_can_clear(VMX_CTL_ENTRY, ENTRY_IA32E_GUEST))
        skip("%s: IA-32e mode guest (bit 9) cannot be 0", vmx_ctl_name(VMX_CTL_ENTRY));
    struct vmx_vcpu *v = msr_vcpu(vmx_es_lm_guest);
    const uint64_t eptp = vmx_ept_identity();
    vmx_use_ept(v, eptp);
    vmcs_set_bits(VMCS_PROC_CTLS2, PROC2_UNRESTRICTED);
    vmcs_clear_bits(VMCS_ENTRY_CTLS, ENTRY_IA32E_GUEST);
    vmcs_set_bits(VMCS_ENTRY_CTLS, ENTRY_LOAD_EFER);
    const bool save_efer = vmx_ctl_can_set(VMX_CTL_EXIT, EXIT_SAVE_EFER);
    if (save_efer)
        vmcs_set_bits(VMCS_EXIT_CTLS, EXIT_SAVE_EFER);
    vmcs_write(VMCS_GUEST_EFER, rdmsr(MSR_EFER) & ~(EFER_LME | EFER_LMA));
    vmcs_write(VMCS_GUEST_CR0, read_cr0() & ~CR0_PG);
    vmcs_write(VMCS_GUEST_CR4, (read_cr4() | CR4_PAE) & ~(BIT(17) | BIT(12))); /* PCIDE, LA57 */
    vmcs_write(VMCS_GUEST_CR3, read_cr3() & ~0xfffull);
    for (unsigned s = 0; s < 6; s++) {
        const uint32_t off = 2 * s;
        const bool cs = s == 1;
        vmcs_write(VMCS_GUEST_ES_SEL + off, cs ? KERNEL_CS32 : KERNEL_DS);
        vmcs_write(VMCS_GUEST_ES_BASE + off, 0);
        vmcs_write(VMCS_GUEST_ES_LIMIT + off, 0xffffffffu);
        vmcs_write(VMCS_GUEST_ES_AR + off,
                   VMX_AR_TYPE(cs ? 11 : 3) | VMX_AR_S | VMX_AR_P | VMX_AR_DB | VMX_AR_G);
    }
    vmcs_write(VMCS_GUEST_RFLAGS, 0x2);
    if (!vmx_run_expect(v, EXIT_VMCALL, "32-bit guest entering IA-32e mode"))
        return;
    check_eq("guest RIP (the VMCALL)", v->guest_rip, (uintptr_t)vmx_es_lm_call);
    check(vmcs_read(VMCS_GUEST_CR0) & CR0_PG, "saved guest CR0 %#llx: PG clear",
          (unsigned long long)vmcs_read(VMCS_GUEST_CR0));
    check(vmcs_read(VMCS_ENTRY_CTLS) & ENTRY_IA32E_GUEST,
          "VM-entry controls %#llx after the exit: IA-32e mode guest (bit 9) still 0 with the "
          "guest's EFER.LMA = 1",
          (unsigned long long)vmcs_read(VMCS_ENTRY_CTLS));
    if (save_efer)
        check_eq("saved guest EFER.LME|LMA", vmcs_read(VMCS_GUEST_EFER) & (EFER_LME | EFER_LMA),
                 EFER_LME | EFER_LMA);
}

/* ---- 28.1: an exit during event delivery comes before the delivery ------------------ */

extern const char vmx_es_int_insn[];
GUEST(vmx_es_int_guest, "vmx_es_int_insn:\n"
                        "    int $0x80\n"
                        "    vmcall\n"
                        "    ud2");

PROBE(vmx_exit_during_delivery, "vmx.exit.during_delivery", "VMX",
      "A guest whose IDTR limit is 0x7ff executes INT 0x80 (its gate beyond the limit): the #GP "
      "raised while delivering it exits (exception bitmap, reason 0, #GP error code 0x402) before "
      "anything is delivered: guest RIP is the INT and RSP the entry RSP (nothing pushed), and the "
      "IDT-vectoring information records the software interrupt 0x80 (0x80000480, no error code) "
      "with instruction length 2",
      "Intel SDM Vol. 3C 28.1, 28.2.3, 28.2.4", "sdm.28.1.exit-during-delivery",
      "sdm.28.2.3.idt-vectoring")
{
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_es_int_guest);
    const uint64_t rsp = vmcs_read(VMCS_GUEST_RSP);
    vmcs_write(VMCS_GUEST_IDTR_LIMIT, 0x7ff);
    if (!vmx_run_expect(v, EXIT_EXCEPTION_NMI, "INT 0x80 beyond the guest IDT limit"))
        return;
    check_eq("VM-exit interruption information (#GP with error code)", v->exit_intr_info,
             INTR_INFO_VALID | INTR_INFO_ERRCODE | (INTR_TYPE_HW_EXC << 8) | GP_VECTOR);
    check_eq("#GP error code (IDT, index 0x80)", v->exit_intr_err, 0x402);
    check_eq("IDT-vectoring information", v->idt_info,
             INTR_INFO_VALID | (INTR_TYPE_SW_INTR << 8) | 0x80);
    check_eq("VM-exit instruction length", v->insn_len, 2);
    check_eq("guest RIP (the INT, not delivered)", v->guest_rip, (uintptr_t)vmx_es_int_insn);
    check_eq("guest RSP (nothing pushed)", v->guest_rsp, rsp);
}

/* ---- CET state: IA32_S_CET and IA32_INTERRUPT_SSP_TABLE_ADDR ------------------------- */

#define MSR_IA32_S_CET 0x6a2
#define MSR_IA32_ISST  0x6a8

/* guest: R8 <- IA32_S_CET, R9 <- IA32_INTERRUPT_SSP_TABLE_ADDR, then
 * IA32_S_CET <- RBX, IA32_INTERRUPT_SSP_TABLE_ADDR <- RSI; VMCALL */
GUEST(vmx_es_cet_guest, "    mov $0x6a2, %ecx\n"
                        "    rdmsr\n"
                        "    shl $32, %rdx\n"
                        "    or %rax, %rdx\n"
                        "    mov %rdx, %r8\n"
                        "    mov $0x6a8, %ecx\n"
                        "    rdmsr\n"
                        "    shl $32, %rdx\n"
                        "    or %rax, %rdx\n"
                        "    mov %rdx, %r9\n"
                        "    mov $0x6a2, %ecx\n"
                        "    mov %rbx, %rax\n"
                        "    mov %rbx, %rdx\n"
                        "    shr $32, %rdx\n"
                        "    wrmsr\n"
                        "    mov $0x6a8, %ecx\n"
                        "    mov %rsi, %rax\n"
                        "    mov %rsi, %rdx\n"
                        "    shr $32, %rdx\n"
                        "    wrmsr\n"
                        "    vmcall\n"
                        "    ud2");

/* Values with no effect while CR4.CET = 0: an S_CET of only the legacy
 * code-page bitmap base (bits 63:12), and canonical 8-byte aligned ISST
 * addresses. G_* the guest writes, H_* the host-state fields, E_* the
 * guest-state fields loaded by VM entry. */
#define CET_G_SCET 0x0000000012345000ull
#define CET_G_ISST 0x0000000023456000ull
#define CET_H_SCET 0x00007f0000003000ull
#define CET_H_ISST 0x00007f0000004000ull
#define CET_E_SCET 0x0000000034567000ull
#define CET_E_ISST 0x0000000045678000ull

/* The CET MSRs exist (CPUID.(7,0):ECX.CET_SS, which has both), else SKIP;
 * a vCPU of vmx_es_cet_guest; the host's two MSRs in *scet, *isst. */
static struct vmx_vcpu *cet_vcpu(uint64_t *scet, uint64_t *isst)
{
    vmx_caps(); /* SKIPs naming CPUID.1:ECX.VMX first */
    if (cpuid(0, 0).a < 7 || !(cpuid(7, 0).c & BIT(7)))
        skip("CPUID.(EAX=7,ECX=0):ECX.CET_SS[bit 7]=0: no IA32_S_CET and "
             "IA32_INTERRUPT_SSP_TABLE_ADDR");
    struct vmx_vcpu *v = msr_vcpu(vmx_es_cet_guest);
    *scet = rdmsr(MSR_IA32_S_CET);
    *isst = rdmsr(MSR_IA32_ISST);
    v->gpr[VMX_GPR_RBX] = CET_G_SCET;
    v->gpr[VMX_GPR_RSI] = CET_G_ISST;
    return v;
}

PROBE(vmx_exit_cet_load, "vmx.exit.cet_load", "VMX",
      "With load CET state (exit control 28) and host-state IA32_S_CET = 0x7f0000003000, "
      "interrupt SSP table address = 0x7f0000004000 and SSP = 0, a guest that writes "
      "IA32_S_CET = 0x12345000 and IA32_INTERRUPT_SSP_TABLE_ADDR = 0x23456000 (zero MSR bitmap) "
      "exits with VMCALL: the host's two MSRs are the host-state fields (needs CPUID.(7,0):ECX."
      "CET_SS)",
      "Intel SDM Vol. 3C 28.5.1, 25.7.1", "sdm.28.5.1.cet-pkrs")
{
    vmx_require_ctl(VMX_CTL_EXIT, EXIT_LOAD_CET, "load CET state (exit)");
    uint64_t scet, isst;
    struct vmx_vcpu *v = cet_vcpu(&scet, &isst);
    vmcs_set_bits(VMCS_EXIT_CTLS, EXIT_LOAD_CET);
    vmcs_write(VMCS_HOST_S_CET, CET_H_SCET);
    vmcs_write(VMCS_HOST_ISST_ADDR, CET_H_ISST);
    vmcs_write(VMCS_HOST_SSP, 0);
    uint32_t r = vmx_run(v);
    const uint64_t got_scet = rdmsr(MSR_IA32_S_CET), got_isst = rdmsr(MSR_IA32_ISST);
    wrmsr(MSR_IA32_S_CET, scet);
    wrmsr(MSR_IA32_ISST, isst);
    if (!check(r == EXIT_VMCALL, "guest writing the CET MSRs: want exit reason 18, got %s",
               vmx_exit_str(v)))
        return;
    check_eq("host IA32_S_CET after the VM exit (the host-state field)", got_scet, CET_H_SCET);
    check_eq("host IA32_INTERRUPT_SSP_TABLE_ADDR after the VM exit (the host-state field)",
             got_isst, CET_H_ISST);
}

PROBE(vmx_exit_cet_save, "vmx.exit.cet_save", "VMX",
      "On a processor that offers load CET state (entry control 20), a guest that writes "
      "IA32_S_CET = 0x12345000 and IA32_INTERRUPT_SSP_TABLE_ADDR = 0x23456000 (zero MSR bitmap) "
      "exits with VMCALL: the guest IA32_S_CET and interrupt SSP table address fields hold those "
      "values (needs CPUID.(7,0):ECX.CET_SS)",
      "Intel SDM Vol. 3C 28.3.1, 25.4.1", "sdm.28.3.1.other-msr-save")
{
    vmx_require_ctl(VMX_CTL_ENTRY, ENTRY_LOAD_CET, "load CET state (entry)");
    uint64_t scet, isst;
    struct vmx_vcpu *v = cet_vcpu(&scet, &isst);
    vmcs_write(VMCS_GUEST_S_CET, 0);
    vmcs_write(VMCS_GUEST_ISST_ADDR, 0);
    uint32_t r = vmx_run(v);
    wrmsr(MSR_IA32_S_CET, scet); /* no exit control loads them back */
    wrmsr(MSR_IA32_ISST, isst);
    if (!check(r == EXIT_VMCALL, "guest writing the CET MSRs: want exit reason 18, got %s",
               vmx_exit_str(v)))
        return;
    check_eq("guest IA32_S_CET field saved by the exit", vmcs_read(VMCS_GUEST_S_CET), CET_G_SCET);
    check_eq("guest interrupt SSP table address field saved by the exit",
             vmcs_read(VMCS_GUEST_ISST_ADDR), CET_G_ISST);
}

PROBE(vmx_entry_cet_load, "vmx.entry.cet_load", "VMX",
      "With load CET state (entry control 20), guest-state IA32_S_CET = 0x34567000, interrupt "
      "SSP table address = 0x45678000 and SSP = 0, and a zero MSR bitmap, the guest's RDMSR of "
      "IA32_S_CET and IA32_INTERRUPT_SSP_TABLE_ADDR reads the guest-state fields (needs "
      "CPUID.(7,0):ECX.CET_SS)",
      "Intel SDM Vol. 3C 27.3.2.1, 25.8.1", "sdm.27.3.2.1.other-msr-load")
{
    vmx_require_ctl(VMX_CTL_ENTRY, ENTRY_LOAD_CET, "load CET state (entry)");
    uint64_t scet, isst;
    struct vmx_vcpu *v = cet_vcpu(&scet, &isst);
    vmcs_set_bits(VMCS_ENTRY_CTLS, ENTRY_LOAD_CET);
    vmcs_write(VMCS_GUEST_S_CET, CET_E_SCET);
    vmcs_write(VMCS_GUEST_ISST_ADDR, CET_E_ISST);
    vmcs_write(VMCS_GUEST_SSP, 0);
    uint32_t r = vmx_run(v);
    wrmsr(MSR_IA32_S_CET, scet);
    wrmsr(MSR_IA32_ISST, isst);
    if (!check(r == EXIT_VMCALL, "guest reading the CET MSRs: want exit reason 18, got %s",
               vmx_exit_str(v)))
        return;
    check_eq("guest IA32_S_CET (the guest-state field)", v->gpr[VMX_GPR_R8], CET_E_SCET);
    check_eq("guest IA32_INTERRUPT_SSP_TABLE_ADDR (the guest-state field)", v->gpr[VMX_GPR_R9],
             CET_E_ISST);
}

/* ---- 28.2.2: NMI unblocking due to IRET ------------------------------------------ */

extern const char vmx_es_iret_insn[];
/* guest: IRETQ to a null CS selector (#GP(0)), then VMCALL */
GUEST(vmx_es_iret_guest, "    mov %rsp, %rcx\n"
                         "    mov %ss, %eax\n"
                         "    push %rax\n"
                         "    push %rcx\n"
                         "    pushfq\n"
                         "    pushq $0\n"
                         "    lea 1f(%rip), %rax\n"
                         "    push %rax\n"
                         "vmx_es_iret_insn:\n"
                         "    iretq\n"
                         "1:  vmcall\n"
                         "    ud2");

PROBE(vmx_exit_nmi_unblocking_iret, "vmx.exit.nmi_unblocking_iret", "VMX",
      "With NMI exiting and virtual NMIs, a guest IRETQ whose frame has a null CS faults (#GP(0), "
      "exception bitmap): entered with virtual-NMI blocking (interruptibility bit 3) the #GP exit "
      "sets bit 12 (NMI unblocking due to IRET) of the VM-exit interruption information and the "
      "saved interruptibility has no virtual-NMI blocking; entered without it, bit 12 is 0",
      "Intel SDM Vol. 3C 28.2.2, 28.1, 28.3.4", "sdm.28.2.2.nmi-unblocking-iret")
{
    vmx_require_ctl(VMX_CTL_PIN, PIN_NMI_EXITING | PIN_VIRTUAL_NMIS,
                    "NMI exiting and virtual NMIs");
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_es_iret_guest);
    vmcs_set_bits(VMCS_PIN_CTLS, PIN_NMI_EXITING | PIN_VIRTUAL_NMIS);
    const uint64_t rip = vmcs_read(VMCS_GUEST_RIP), rsp = vmcs_read(VMCS_GUEST_RSP);
    const uint32_t gp = INTR_INFO_VALID | INTR_INFO_ERRCODE | (INTR_TYPE_HW_EXC << 8) | GP_VECTOR;
    for (int blocked = 1; blocked >= 0; blocked--) {
        const char *what = blocked ? "IRETQ to a null CS with virtual-NMI blocking"
                                   : "IRETQ to a null CS without virtual-NMI blocking";
        vmcs_write(VMCS_GUEST_RIP, rip);
        vmcs_write(VMCS_GUEST_RSP, rsp);
        vmcs_write(VMCS_GUEST_INTERRUPTIBILITY, blocked ? INTERRUPTIBILITY_NMI : 0);
        if (!vmx_run_expect(v, EXIT_EXCEPTION_NMI, what))
            continue;
        check(v->guest_rip == (uintptr_t)vmx_es_iret_insn, "%s: guest RIP %#llx, want the IRETQ",
              what, (unsigned long long)v->guest_rip);
        check(v->exit_intr_info == (gp | (blocked ? INTR_INFO_NMI_UNBLOCK : 0)) &&
                  v->exit_intr_err == 0,
              "%s: VM-exit interruption information %#x error code %#x, want %#x, 0", what,
              v->exit_intr_info, v->exit_intr_err, gp | (blocked ? INTR_INFO_NMI_UNBLOCK : 0));
        check(!(vmcs_read(VMCS_GUEST_INTERRUPTIBILITY) & INTERRUPTIBILITY_NMI),
              "%s: saved interruptibility %#llx has virtual-NMI blocking (bit 3)", what,
              (unsigned long long)vmcs_read(VMCS_GUEST_INTERRUPTIBILITY));
    }
}
