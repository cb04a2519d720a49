/* SPDX-License-Identifier: MIT */
/*
 * More basic SVM operation: RFLAGS and XMM across VMRUN/#VMEXIT, the
 * VM_HSAVE_PA and VM_CR MSRs (AMD APM Vol. 2 15.5.1, 15.6, 15.30).
 */
#include "nvct.h"
#include "svm.h"

/* RAX = RFLAGS as loaded; then RFLAGS = RBX; VMMCALL */
GUEST(svm_b_flags, "pushfq", "pop %rax", "push %rbx", "popfq", "svm_b_flags_end:", "vmmcall",
      "ud2");
/* RAX = XMM0 (the host's), XMM1 = RBX; VMMCALL */
GUEST(svm_b_xmm, "movq %xmm0, %rax", "movq %rbx, %xmm1", "vmmcall", "ud2");
extern char svm_b_flags_end[];

/* Host helpers: XMM0/XMM1 without the compiler's help (-mgeneral-regs-only). */
__asm__(".pushsection .text\n"
        ".globl svm_b_set_xmm0, svm_b_get_xmm1, svm_b_set_xmm1\n"
        "svm_b_set_xmm0:\n    movq %rdi, %xmm0\n    ret\n"
        "svm_b_set_xmm1:\n    movq %rdi, %xmm1\n    ret\n"
        "svm_b_get_xmm1:\n    movq %xmm1, %rax\n    ret\n"
        ".popsection");
void svm_b_set_xmm0(uint64_t), svm_b_set_xmm1(uint64_t);
uint64_t svm_b_get_xmm1(void);

PROBE(svm_basic_rflags, "svm.basic.rflags", "SVM",
      "VMCB RFLAGS = CF|PF|AF|ZF|SF|DF|OF (IF=0): the guest's PUSHF sees exactly that; the guest "
      "then loads RFLAGS = CF|ZF via POPF: the VMCB RFLAGS after #VMEXIT is CF|ZF|bit 1; the "
      "host's RFLAGS after the exit has DF=0 (host flags are not affected by the guest's)",
      "AMD APM Vol. 2 15.5.1, 15.6", "apm.15.5.1.rflags", "apm.15.6.vmexit-host-rflags")
{
    svm_require();
    const uint64_t in =
        0x2 | RFLAGS_CF | RFLAGS_PF | RFLAGS_AF | RFLAGS_ZF | RFLAGS_SF | RFLAGS_DF | RFLAGS_OF;
    const uint64_t out = 0x2 | RFLAGS_CF | RFLAGS_ZF;
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_b_flags, 0);
    v.vmcb->save.rflags = in;
    v.regs.rbx = out;
    uint64_t code = svm_run(&v);
    uint64_t host = read_rflags();
    if (!svm_check_exit(&v, code, SVM_EXIT_VMMCALL, "guest PUSHF/POPF"))
        return;
    check_eq("RFLAGS seen by the guest's PUSHF", v.vmcb->save.rax, in);
    check_eq("VMCB RFLAGS after #VMEXIT", v.vmcb->save.rflags, out);
    check_eq("host RFLAGS.DF after #VMEXIT", host & RFLAGS_DF, 0);
}

/* SVM enabled and SSE usable in the host, whose CR0 and CR4 the guest gets. */
static void xmm_require(void)
{
    svm_require();
    if (!(cpuid(1, 0).d & BIT(26)))
        skip("CPUID 1 EDX.SSE2[26]=0");
    write_cr0(read_cr0() & ~(CR0_EM | CR0_TS)); /* the runner restores CR0 and CR4 */
    write_cr4(read_cr4() | CR4_OSFXSR);
}

PROBE(svm_basic_xmm, "svm.basic.xmm", "SVM",
      "VMRUN and #VMEXIT do not switch XMM state: with host XMM0 = A the guest reads A from XMM0; "
      "the guest writes B to XMM1 and the host reads B from XMM1 after the exit (needs CPUID 1 "
      "EDX.SSE2[26], CR4.OSFXSR set by the probe)",
      "AMD APM Vol. 2 15.5.1, 15.6", "apm.15.5.1.no-fpu-switch")
{
    xmm_require();
    const uint64_t a = 0x0123456789abcdefull, b = 0xfedcba9876543210ull;
    svm_b_set_xmm0(a);
    svm_b_set_xmm1(0);
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_b_xmm, 0);
    v.vmcb->save.cr0 = read_cr0();
    v.vmcb->save.cr4 = read_cr4();
    v.regs.rbx = b;
    uint64_t code = svm_run(&v);
    uint64_t got = svm_b_get_xmm1();
    svm_b_set_xmm0(0);
    svm_b_set_xmm1(0);
    if (!svm_check_exit(&v, code, SVM_EXIT_VMMCALL, "guest XMM access"))
        return;
    check_eq("XMM0 read by the guest (the host's value)", v.vmcb->save.rax, a);
    check_eq("host XMM1 after #VMEXIT (the guest's value)", got, b);
}

/* The same rule as svm.basic.xmm, checked on many round trips: a hypervisor
 * that switches FPU state lazily can get it wrong only when something else
 * ran on the CPU in between (its own dom0 or host thread), which one round
 * trip rarely meets. */
#define XMM_ROUNDS 1000

PROBE(svm_basic_xmm_repeat, "svm.basic.xmm_repeat", "SVM",
      "VMRUN and #VMEXIT do not switch XMM state, 1000 times over: each round sets host XMM0 to a "
      "new value A and XMM1 to 0, runs a guest that copies XMM0 to RAX and RBX (a new B) to XMM1, "
      "and checks RAX = A and host XMM1 = B after the exit; the first round that differs is "
      "reported with both values",
      "AMD APM Vol. 2 15.5.1, 15.6", "apm.15.5.1.no-fpu-switch")
{
    xmm_require();
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_b_xmm, 0);
    v.vmcb->save.cr0 = read_cr0();
    v.vmcb->save.cr4 = read_cr4();
    for (unsigned round = 0; round < XMM_ROUNDS; round++) {
        const uint64_t a = 0x0123456789abcdefull ^ (round * 0x9e3779b97f4a7c15ull);
        const uint64_t b = ~a;
        svm_b_set_xmm0(a);
        svm_b_set_xmm1(0);
        v.vmcb->save.rip = A(svm_b_xmm);
        v.regs.rbx = b;
        uint64_t code = svm_run(&v);
        uint64_t got = svm_b_get_xmm1();
        if (!svm_check_exit(&v, code, SVM_EXIT_VMMCALL, "guest XMM access"))
            break;
        if (!check(v.vmcb->save.rax == a,
                   "round %u of %u: XMM0 read by the guest: got %#llx, want %#llx (the host's)",
                   round + 1, XMM_ROUNDS, (unsigned long long)v.vmcb->save.rax,
                   (unsigned long long)a) ||
            !check(got == b,
                   "round %u of %u: host XMM1 after #VMEXIT: got %#llx, want %#llx (the guest's)",
                   round + 1, XMM_ROUNDS, (unsigned long long)got, (unsigned long long)b))
            break;
    }
    svm_b_set_xmm0(0);
    svm_b_set_xmm1(0);
}

PROBE(svm_basic_vm_hsave_pa, "svm.basic.vm_hsave_pa", "SVM",
      "WRMSR VM_HSAVE_PA (0xC0010117) of a new page-aligned address reads back; a VMRUN/#VMEXIT "
      "round trip through it (guest VMMCALL) returns to the host with its RSP, CR3 and EFER "
      "intact; the original value is restored",
      "AMD APM Vol. 2 15.30.4, 15.5.1", "apm.15.30.4.hsave-pa", "apm.15.5.1.host-save")
{
    svm_require();
    uint64_t orig = rdmsr(MSR_VM_HSAVE_PA);
    uint64_t page = (uint64_t)(uintptr_t)alloc_page();
    int vec = wrmsr_safe(MSR_VM_HSAVE_PA, page);
    uint64_t got = rdmsr(MSR_VM_HSAVE_PA);
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)guest_vmmcall, 0);
    uint64_t cr3 = read_cr3(), efer = rdmsr(MSR_EFER), rsp0, rsp1;
    __asm__ volatile("mov %%rsp, %0" : "=r"(rsp0));
    uint64_t code = svm_run(&v);
    __asm__ volatile("mov %%rsp, %0" : "=r"(rsp1));
    uint64_t cr3b = read_cr3(), eferb = rdmsr(MSR_EFER);
    wrmsr(MSR_VM_HSAVE_PA, orig);
    check(vec == NO_FAULT, "WRMSR VM_HSAVE_PA=%#llx raised vector %d", (unsigned long long)page,
          vec);
    check_eq("VM_HSAVE_PA read back", got, page);
    svm_check_exit(&v, code, SVM_EXIT_VMMCALL, "VMRUN with the new host save area");
    check_eq("host RSP after #VMEXIT", rsp1, rsp0);
    check_eq("host CR3 after #VMEXIT", cr3b, cr3);
    check_eq("host EFER after #VMEXIT", eferb, efer);
}

/*
 * Not probed here: WRMSR VM_CR.SVMDIS=1 with EFER.SVME=1 must #GP (15.30.1).
 * KVM (nested) latches SVMDIS=1 even though the write faults, and then
 * refuses to clear it, so the probe would disable SVM for every later
 * probe of the boot (docs/probes/svm.md, "Not probed").
 */
PROBE(svm_basic_vm_cr, "svm.basic.vm_cr", "SVM",
      "With SVM exposed: RDMSR VM_CR (0xC0010114) succeeds, SVMDIS[4]=0 (SVM usable) and the "
      "reserved bits 63:5 read 0",
      "AMD APM Vol. 2 15.4, 15.30.1", "apm.15.30.1.vm-cr")
{
    svm_require();
    uint64_t vmcr;
    int vec = rdmsr_safe(MSR_VM_CR, &vmcr);
    if (!check(vec == NO_FAULT, "RDMSR VM_CR raised vector %d", vec))
        return;
    check_eq("VM_CR.SVMDIS with SVM usable", vmcr & VM_CR_SVMDIS, 0);
    check_eq("VM_CR reserved bits 63:5", vmcr >> 5, 0);
}
