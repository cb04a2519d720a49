/* SPDX-License-Identifier: MIT */
/*
 * SVM basics: CPUID, EFER.SVME gating, the first VMRUN, VMCB address
 * checks, VMLOAD/VMSAVE, register preservation.
 */
#include "nvct.h"
#include "svm.h"

/* ---- helpers ---------------------------------------------------------------- */

static void do_vmrun(void *p) { svm_vmrun_raw((uint64_t)(uintptr_t)p); }
static void do_vmload(void *p) { svm_vmload((uint64_t)(uintptr_t)p); }
static void do_vmsave(void *p) { svm_vmsave((uint64_t)(uintptr_t)p); }
static void do_stgi(void *p)
{
    (void)p;
    svm_stgi();
}
static void do_clgi(void *p)
{
    (void)p;
    svm_clgi();
}
static void do_invlpga(void *p) { svm_invlpga((uint64_t)(uintptr_t)p, 1); }
static void do_vmmcall(void *p)
{
    (void)p;
    __asm__ volatile("vmmcall" ::: "memory");
}

/* A VMRUN of the default guest running guest_vmmcall must exit with
 * VMMCALL: the baseline that makes a later VMEXIT_INVALID meaningful. */
static void control_run(struct svm_vcpu *v)
{
    uint64_t code = svm_run(v);
    if (code != SVM_EXIT_VMMCALL)
        error("control VMRUN of the default guest did not exit with VMMCALL: %s", svm_exit_str(v));
}

/* ---- svm.cpuid.exposed -------------------------------------------------------- */

PROBE(svm_cpuid_exposed, "svm.cpuid.exposed", "SVM",
      "With CPUID 0x80000001 ECX.SVM[2]=1: leaf 0x8000000A is within the extended max leaf, the "
      "SVM revision EAX[7:0] is nonzero and EBX reports at least 2 ASIDs (ASID 0 is the host)",
      "AMD APM Vol. 2 15.4, 15.5.1", "apm.15.4.cpuid-svm", "apm.15.16.1.asid-range")
{
    struct cpuid max = cpuid(0x80000000, 0);
    if (max.a < 0x80000001)
        skip("CPUID 0x80000000 EAX=%#x: no leaf 0x80000001, so no SVM bit", max.a);
    struct cpuid l1 = cpuid(0x80000001, 0);
    if (!(l1.c & CPUID_80000001_ECX_SVM))
        skip("CPUID 0x80000001 ECX.SVM[2]=0 (ECX=%#x)", l1.c);
    if (!check(max.a >= 0x8000000a, "CPUID 0x80000000 EAX=%#x < 0x8000000a with SVM=1", max.a))
        return;
    struct cpuid a = cpuid(0x8000000a, 0);
    note("SVM revision %u, %u ASIDs, features EDX=%#x", a.a & 0xff, a.b, a.d);
    check((a.a & 0xff) != 0, "SVM revision EAX[7:0]=0");
    check(a.b >= 2, "CPUID 0x8000000A EBX=%u ASIDs: no ASID left for a guest", a.b);
}

/* ---- svm.efer.svme ---------------------------------------------------------------- */

PROBE(svm_efer_svme, "svm.efer.svme", "SVM",
      "With SVM exposed and VM_CR.SVMDIS=0: VMRUN with EFER.SVME=0 raises #UD; WRMSR EFER.SVME=1 "
      "succeeds and reads back 1; then CLGI and STGI execute without a fault",
      "AMD APM Vol. 2 15.4, 15.5.1", "apm.15.4.efer-svme")
{
    svm_require_exposed();
    void *vmcb = alloc_page();
    uint64_t efer = rdmsr(MSR_EFER);
    if (efer & EFER_SVME)
        error("EFER.SVME is already 1 at probe start (EFER=%#llx)", (unsigned long long)efer);

    struct fault f;
    catch_fault(do_vmrun, vmcb, &f);
    check(f.vector == UD_VECTOR, "VMRUN with EFER.SVME=0: want #UD, got %s", fault_str(&f));

    int v = wrmsr_safe(MSR_EFER, efer | EFER_SVME);
    if (!check(v == NO_FAULT, "WRMSR EFER|SVME raised vector %d", v))
        return;
    uint64_t got = rdmsr(MSR_EFER);
    if (!check(got & EFER_SVME, "EFER reads %#llx after setting SVME", (unsigned long long)got))
        return;
    check_eq("EFER after setting SVME", got, efer | EFER_SVME);

    catch_fault(do_clgi, NULL, &f);
    check(f.vector == NO_FAULT, "CLGI with EFER.SVME=1 raised %s", fault_str(&f));
    catch_fault(do_stgi, NULL, &f);
    check(f.vector == NO_FAULT, "STGI with EFER.SVME=1 raised %s", fault_str(&f));
}

/* ---- svm.basic.svme_gating ---------------------------------------------------------- */

PROBE(svm_basic_svme_gating, "svm.basic.svme_gating", "SVM",
      "With EFER.SVME=0: VMRUN, VMLOAD, VMSAVE, CLGI, INVLPGA and VMMCALL each raise #UD; STGI "
      "raises #UD unless CPUID 0x80000001 ECX.SKINIT[12]=1 (then it is allowed)",
      "AMD APM Vol. 2 15.4", "apm.15.4.efer-svme")
{
    svm_require_exposed();
    if (rdmsr(MSR_EFER) & EFER_SVME)
        error("EFER.SVME is already 1 at probe start");
    void *page = alloc_page();
    struct {
        const char *name;
        void (*fn)(void *);
        void *arg;
    } ops[] = {
        {"VMRUN", do_vmrun, page}, {"VMLOAD", do_vmload, page},   {"VMSAVE", do_vmsave, page},
        {"CLGI", do_clgi, NULL},   {"INVLPGA", do_invlpga, page}, {"VMMCALL", do_vmmcall, NULL},
    };
    for (unsigned i = 0; i < ARRAY_SIZE(ops); i++) {
        struct fault f;
        catch_fault(ops[i].fn, ops[i].arg, &f);
        check(f.vector == UD_VECTOR, "%s with EFER.SVME=0: want #UD, got %s", ops[i].name,
              fault_str(&f));
    }
    struct fault f;
    note("CPUID 0x80000001 ECX.SKINIT[12]=%d",
         (cpuid(0x80000001, 0).c & CPUID_80000001_ECX_SKINIT) ? 1 : 0);
    if (cpuid(0x80000001, 0).c & CPUID_80000001_ECX_SKINIT) {
        catch_fault(do_stgi, NULL, &f);
        check(f.vector == NO_FAULT,
              "STGI with EFER.SVME=0 and CPUID SKINIT=1: want no fault, got %s", fault_str(&f));
    } else {
        catch_fault(do_stgi, NULL, &f);
        check(f.vector == UD_VECTOR, "STGI with EFER.SVME=0 and CPUID SKINIT=0: want #UD, got %s",
              fault_str(&f));
    }
}

/* ---- svm.vmrun.vmmcall ------------------------------------------------------------ */

#define T_RAX1 0x5641d1a1c0ffee01ull
#define T_RBX1 0xb0b0b0b0a1a1a1a1ull
#define T_RAX2 0x5641d1a1c0ffee02ull
#define T_RBX2 0xb1b1b1b1a2a2a2a2ull

/* Sets RAX/RBX, VMMCALL, sets them again, VMMCALL again. */
GUEST(svm_t_vmmcall_guest, "    movabs $0x5641d1a1c0ffee01, %rax\n"
                           "    movabs $0xb0b0b0b0a1a1a1a1, %rbx\n"
                           "svm_t_vmmcall_site1:\n"
                           "    vmmcall\n"
                           "    movabs $0x5641d1a1c0ffee02, %rax\n"
                           "    movabs $0xb1b1b1b1a2a2a2a2, %rbx\n"
                           "svm_t_vmmcall_site2:\n"
                           "    vmmcall\n"
                           "    ud2");
extern char svm_t_vmmcall_site1[], svm_t_vmmcall_site2[];

PROBE(svm_vmrun_vmmcall, "svm.vmrun.vmmcall", "SVM",
      "VMRUN a 64-bit guest (ASID 1, VMMCALL intercepted) that sets RAX and RBX and executes "
      "VMMCALL: exit code 0x81, VMCB RIP = the VMMCALL (fault-like intercept), next_rip = RIP+3 if "
      "NRIPS, VMCB RAX and the returned RBX are the guest values, EXITINTINFO.V=0; resuming at "
      "RIP+3 reaches a second VMMCALL with the same checks",
      "AMD APM Vol. 2 15.5, 15.6, 15.7.1, 15.9", "apm.15.6.vmexit-state", "apm.15.6.exitcode",
      "apm.15.9.vmmcall-exit", "apm.15.7.1.rip-fault-like")
{
    svm_require();
    bool nrips = svm_has(SVM_FEAT_NRIPS);
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_t_vmmcall_guest, 0);
    v.regs.rbx = 0x1234;
    uint64_t cr3 = read_cr3(), cr0 = read_cr0(), cr4 = read_cr4(), efer = rdmsr(MSR_EFER);

    const uint64_t site[2] = {(uint64_t)(uintptr_t)svm_t_vmmcall_site1,
                              (uint64_t)(uintptr_t)svm_t_vmmcall_site2};
    const uint64_t rax[2] = {T_RAX1, T_RAX2}, rbx[2] = {T_RBX1, T_RBX2};
    for (int i = 0; i < 2; i++) {
        uint64_t code = svm_run(&v);
        if (!svm_check_exit(&v, code, SVM_EXIT_VMMCALL, i ? "second VMRUN" : "first VMRUN"))
            return;
        struct vmcb *vm = v.vmcb;
        check(vm->save.rip == site[i], "VMMCALL %d: VMCB RIP %#llx, want the VMMCALL at %#llx",
              i + 1, (unsigned long long)vm->save.rip, (unsigned long long)site[i]);
        if (nrips)
            check(vm->control.next_rip == site[i] + VMMCALL_LEN,
                  "VMMCALL %d: next_rip %#llx, want %#llx (NRIPS=1)", i + 1,
                  (unsigned long long)vm->control.next_rip,
                  (unsigned long long)(site[i] + VMMCALL_LEN));
        check(vm->save.rax == rax[i], "VMMCALL %d: VMCB RAX %#llx, want %#llx", i + 1,
              (unsigned long long)vm->save.rax, (unsigned long long)rax[i]);
        check(v.regs.rbx == rbx[i], "VMMCALL %d: guest RBX %#llx, want %#llx", i + 1,
              (unsigned long long)v.regs.rbx, (unsigned long long)rbx[i]);
        check(!(vm->control.exit_int_info & SVM_EVTINJ_VALID),
              "VMMCALL %d: EXITINTINFO %#llx has V=1 with no event in delivery", i + 1,
              (unsigned long long)vm->control.exit_int_info);
        check(vm->save.cpl == 0, "VMMCALL %d: VMCB CPL %u, want 0", i + 1, vm->save.cpl);
        /* Resume after the VMMCALL, whatever next_rip said. */
        vm->save.rip = site[i] + VMMCALL_LEN;
    }
    check_eq("host CR3 after #VMEXIT", read_cr3(), cr3);
    check_eq("host CR0 after #VMEXIT", read_cr0(), cr0);
    check_eq("host CR4 after #VMEXIT", read_cr4(), cr4);
    check_eq("host EFER after #VMEXIT", rdmsr(MSR_EFER), efer);
    if (!nrips)
        note("NRIPS not exposed: next_rip not checked");
}

/* ---- svm.basic.gprs ---------------------------------------------------------------- */

/* Guest: checks that RBX..R15 and RAX hold what the host put there, sets
 * each to a new value, VMMCALLs with RAX = bitmask of mismatches
 * (bit i for register i of struct svm_gprs, bit 14 for RAX). */
#define GPAT(i) (0x1111111111111111ull * (i))
#define GRAX_IN 0x0123456789abcdefull
__asm__(".pushsection .text\n"
        ".macro nvct_chk reg, val, bit\n"
        "    movabs $\\val, %rax\n"
        "    cmp %rax, \\reg\n"
        "    je 1f\n"
        "    orq $(1 << \\bit), (%rsp)\n"
        "1:\n"
        ".endm\n"
        ".globl svm_t_gprs_guest\n"
        "svm_t_gprs_guest:\n"
        "    push %rax\n"
        "    pushq $0\n"
        "    movabs $0x0123456789abcdef, %rax\n"
        "    cmp %rax, 8(%rsp)\n"
        "    je 2f\n"
        "    orq $(1 << 14), (%rsp)\n"
        "2:\n"
        "    nvct_chk %rbx, 0x1111111111111111, 0\n"
        "    nvct_chk %rcx, 0x2222222222222222, 1\n"
        "    nvct_chk %rdx, 0x3333333333333333, 2\n"
        "    nvct_chk %rsi, 0x4444444444444444, 3\n"
        "    nvct_chk %rdi, 0x5555555555555555, 4\n"
        "    nvct_chk %rbp, 0x6666666666666666, 5\n"
        "    nvct_chk %r8,  0x7777777777777777, 6\n"
        "    nvct_chk %r9,  0x8888888888888888, 7\n"
        "    nvct_chk %r10, 0x9999999999999999, 8\n"
        "    nvct_chk %r11, 0xaaaaaaaaaaaaaaaa, 9\n"
        "    nvct_chk %r12, 0xbbbbbbbbbbbbbbbb, 10\n"
        "    nvct_chk %r13, 0xcccccccccccccccc, 11\n"
        "    nvct_chk %r14, 0xdddddddddddddddd, 12\n"
        "    nvct_chk %r15, 0xeeeeeeeeeeeeeeee, 13\n"
        "    movabs $0xeeeeeeeeeeeeeeee, %rbx\n"
        "    movabs $0xdddddddddddddddd, %rcx\n"
        "    movabs $0xcccccccccccccccc, %rdx\n"
        "    movabs $0xbbbbbbbbbbbbbbbb, %rsi\n"
        "    movabs $0xaaaaaaaaaaaaaaaa, %rdi\n"
        "    movabs $0x9999999999999999, %rbp\n"
        "    movabs $0x8888888888888888, %r8\n"
        "    movabs $0x7777777777777777, %r9\n"
        "    movabs $0x6666666666666666, %r10\n"
        "    movabs $0x5555555555555555, %r11\n"
        "    movabs $0x4444444444444444, %r12\n"
        "    movabs $0x3333333333333333, %r13\n"
        "    movabs $0x2222222222222222, %r14\n"
        "    movabs $0x1111111111111111, %r15\n"
        "    pop %rax\n"
        "    add $8, %rsp\n"
        "    vmmcall\n"
        "    ud2\n"
        ".purgem nvct_chk\n"
        ".popsection");
extern char svm_t_gprs_guest[];

PROBE(svm_basic_gprs, "svm.basic.gprs", "SVM",
      "VMRUN with distinct values in RAX (VMCB) and RBX..R15 (registers): the guest sees each of "
      "them unchanged; it writes new values to all fourteen and VMMCALLs; after #VMEXIT the host "
      "reads them back unchanged and the VMCB RAX is the guest result",
      "AMD APM Vol. 2 15.5.1, 15.6", "apm.15.5.1.gprs")
{
    svm_require();
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_t_gprs_guest, 0);
    uint64_t *r = (uint64_t *)&v.regs;
    for (unsigned i = 0; i < 14; i++)
        r[i] = GPAT(i + 1);
    v.vmcb->save.rax = GRAX_IN;
    uint64_t code = svm_run(&v);
    if (!svm_check_exit(&v, code, SVM_EXIT_VMMCALL, "VMRUN"))
        return;
    static const char *const names[15] = {"RBX", "RCX", "RDX", "RSI", "RDI", "RBP", "R8", "R9",
                                          "R10", "R11", "R12", "R13", "R14", "R15", "RAX"};
    uint64_t mask = v.vmcb->save.rax;
    check(mask < (1ull << 15), "guest result RAX %#llx is not a mismatch mask",
          (unsigned long long)mask);
    for (unsigned i = 0; i < 15 && mask < (1ull << 15); i++)
        check(!(mask & (1ull << i)), "guest saw a wrong %s at entry", names[i]);
    for (unsigned i = 0; i < 14; i++)
        check(r[i] == GPAT(14 - i), "%s after #VMEXIT: %#llx, want %#llx", names[i],
              (unsigned long long)r[i], (unsigned long long)GPAT(14 - i));
}

/* ---- svm.basic.asid_zero / vmrun_intercept -------------------------------------------- */

PROBE(svm_basic_asid_zero, "svm.basic.asid_zero", "SVM",
      "VMRUN of a guest that otherwise runs (control run exits with VMMCALL) but with ASID=0 in "
      "the VMCB: exit code VMEXIT_INVALID (-1)",
      "AMD APM Vol. 2 15.5.1", "apm.15.5.1.cons-asid-zero")
{
    svm_require();
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)guest_vmmcall, 0);
    control_run(&v);
    v.vmcb->save.rip = (uint64_t)(uintptr_t)guest_vmmcall;
    v.vmcb->control.asid = 0;
    uint64_t code = svm_run(&v);
    svm_check_exit(&v, code, SVM_EXIT_INVALID, "VMRUN with ASID 0");
}

PROBE(svm_basic_vmrun_intercept, "svm.basic.vmrun_intercept", "SVM",
      "VMRUN of a guest that otherwise runs (control run exits with VMMCALL) but with the VMRUN "
      "intercept bit (vector 4 bit 0) clear: exit code VMEXIT_INVALID (-1)",
      "AMD APM Vol. 2 15.5.1", "apm.15.5.1.cons-vmrun-intercept")
{
    svm_require();
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)guest_vmmcall, 0);
    control_run(&v);
    v.vmcb->save.rip = (uint64_t)(uintptr_t)guest_vmmcall;
    v.vmcb->control.intercept_misc2 &= ~(uint32_t)SVM_INTERCEPT_VMRUN;
    uint64_t code = svm_run(&v);
    svm_check_exit(&v, code, SVM_EXIT_INVALID, "VMRUN with the VMRUN intercept clear");
}

/* ---- svm.basic.vmcb_addr ------------------------------------------------------------------ */

PROBE(svm_basic_vmcb_addr, "svm.basic.vmcb_addr", "SVM",
      "With EFER.SVME=1: VMRUN, VMLOAD and VMSAVE with rAX not 4 KiB aligned (page+0x800), or at "
      "2^MAXPHYADDR (CPUID 0x80000008 EAX[7:0]), each raise #GP(0)",
      "AMD APM Vol. 3 VMRUN, VMLOAD, VMSAVE; AMD APM Vol. 2 15.5.1", "apm.15.5.1.vmcb-pa",
      "apm.15.5.1.vmcb-addr-check")
{
    svm_require();
    /* A host VMSAVE image at page A and again at A+0x800, so that a model
     * that wrongly accepts the misaligned address loads sane state. */
    uint8_t *a = alloc_pages(2);
    struct vmcb *host = alloc_page();
    uint64_t host_pa = (uint64_t)(uintptr_t)host;
    svm_vmsave(host_pa);
    memcpy(a + 0x400, (uint8_t *)host + 0x400, 0x300);
    memcpy(a + 0x800 + 0x400, (uint8_t *)host + 0x400, 0x300);

    unsigned bits = cpu_phys_addr_bits();
    const uint64_t addrs[2] = {(uint64_t)(uintptr_t)a + 0x800, 1ull << bits};
    const char *const what[2] = {"misaligned", "beyond MAXPHYADDR"};
    struct {
        const char *name;
        void (*fn)(void *);
    } ops[] = {
        {"VMRUN", do_vmrun},
        {"VMLOAD", do_vmload},
        {"VMSAVE", do_vmsave},
    };
    for (unsigned j = 0; j < 2; j++) {
        for (unsigned i = 0; i < ARRAY_SIZE(ops); i++) {
            struct fault f;
            catch_fault(ops[i].fn, (void *)(uintptr_t)addrs[j], &f);
            if (f.vector == NO_FAULT && ops[i].fn == do_vmload)
                svm_vmload(host_pa); /* undo whatever it loaded */
            check(f.vector == GP_VECTOR && f.error_code == 0,
                  "%s with %s rAX=%#llx: want #GP(0), got %s", ops[i].name, what[j],
                  (unsigned long long)addrs[j], fault_str(&f));
        }
    }
    note("MAXPHYADDR %u", bits);
}

/* ---- svm.basic.vmload_vmsave -------------------------------------------------------------- */

struct vls_state {
    uint64_t fs_base, gs_base, kgs, star, lstar, cstar, sfmask, se_cs, se_esp, se_eip;
    uint16_t fs, gs;
};

static void read_vls_state(struct vls_state *s)
{
    s->fs_base = rdmsr(MSR_FS_BASE);
    s->gs_base = rdmsr(MSR_GS_BASE);
    s->kgs = rdmsr(MSR_KERNEL_GS_BASE);
    s->star = rdmsr(MSR_STAR);
    s->lstar = rdmsr(MSR_LSTAR);
    s->cstar = rdmsr(MSR_CSTAR);
    s->sfmask = rdmsr(MSR_SFMASK);
    s->se_cs = rdmsr(MSR_SYSENTER_CS);
    s->se_esp = rdmsr(MSR_SYSENTER_ESP);
    s->se_eip = rdmsr(MSR_SYSENTER_EIP);
    __asm__ volatile("mov %%fs, %0" : "=r"(s->fs));
    __asm__ volatile("mov %%gs, %0" : "=r"(s->gs));
}

PROBE(svm_basic_vmload_vmsave, "svm.basic.vmload_vmsave", "SVM",
      "VMSAVE matches the current FS/GS base, KernelGsBase, STAR, LSTAR, CSTAR, SFMASK and "
      "SYSENTER_CS/ESP/EIP MSRs; VMLOAD of a VMCB with new values (FS/GS selector, base) makes "
      "RDMSR and MOV from FS/GS return them; VMSAVE then stores the same values back; the host "
      "state is restored with VMLOAD",
      "AMD APM Vol. 2 15.5.2", "apm.15.5.2.vmload-vmsave")
{
    svm_require();
    struct vmcb *orig = alloc_page(), *mod = alloc_page(), *back = alloc_page();
    struct vls_state h, n;
    read_vls_state(&h);
    svm_vmsave((uint64_t)(uintptr_t)orig);
    struct vmcb_save *o = &orig->save;
    check_eq("VMSAVE FS.base vs FS_BASE", o->fs.base, h.fs_base);
    check_eq("VMSAVE GS.base vs GS_BASE", o->gs.base, h.gs_base);
    check_eq("VMSAVE FS.sel", o->fs.selector, h.fs);
    check_eq("VMSAVE GS.sel", o->gs.selector, h.gs);
    check_eq("VMSAVE KernelGsBase", o->kernel_gs_base, h.kgs);
    check_eq("VMSAVE STAR", o->star, h.star);
    check_eq("VMSAVE LSTAR", o->lstar, h.lstar);
    check_eq("VMSAVE CSTAR", o->cstar, h.cstar);
    check_eq("VMSAVE SFMASK", o->sfmask, h.sfmask);
    check_eq("VMSAVE SYSENTER_CS", o->sysenter_cs, h.se_cs);
    check_eq("VMSAVE SYSENTER_ESP", o->sysenter_esp, h.se_esp);
    check_eq("VMSAVE SYSENTER_EIP", o->sysenter_eip, h.se_eip);

    /* New values: canonical addresses; SYSENTER_ESP/EIP within 32 bits. */
    memcpy(mod, orig, sizeof(*mod));
    struct vmcb_save *m = &mod->save;
    svm_seg_from_gdt(&m->fs, KERNEL_DS);
    m->fs.base = 0xffff800012345000ull;
    svm_seg_from_gdt(&m->gs, KERNEL_DS);
    m->gs.base = 0x00007fff89abc000ull;
    m->kernel_gs_base = 0xffff8000fedcb000ull;
    m->star = 0x0023001000000000ull | 0x1234;
    m->lstar = 0xffffffff81234560ull;
    m->cstar = 0xffffffff81234570ull;
    m->sfmask = 0x47700;
    m->sysenter_cs = 0x10;
    m->sysenter_esp = 0x12345000;
    m->sysenter_eip = 0x23456780;

    svm_vmload((uint64_t)(uintptr_t)mod);
    read_vls_state(&n);
    svm_vmsave((uint64_t)(uintptr_t)back);
    svm_vmload((uint64_t)(uintptr_t)orig);

    check_eq("FS_BASE after VMLOAD", n.fs_base, m->fs.base);
    check_eq("GS_BASE after VMLOAD", n.gs_base, m->gs.base);
    check_eq("FS after VMLOAD", n.fs, KERNEL_DS);
    check_eq("GS after VMLOAD", n.gs, KERNEL_DS);
    check_eq("KERNEL_GS_BASE after VMLOAD", n.kgs, m->kernel_gs_base);
    check_eq("STAR after VMLOAD", n.star, m->star);
    check_eq("LSTAR after VMLOAD", n.lstar, m->lstar);
    check_eq("CSTAR after VMLOAD", n.cstar, m->cstar);
    check_eq("SFMASK after VMLOAD", n.sfmask, m->sfmask);
    check_eq("SYSENTER_CS after VMLOAD", n.se_cs, m->sysenter_cs);
    check_eq("SYSENTER_ESP after VMLOAD", n.se_esp, m->sysenter_esp);
    check_eq("SYSENTER_EIP after VMLOAD", n.se_eip, m->sysenter_eip);

    struct vmcb_save *b = &back->save;
    check_eq("VMSAVE FS.sel after VMLOAD", b->fs.selector, m->fs.selector);
    check_eq("VMSAVE FS.base after VMLOAD", b->fs.base, m->fs.base);
    check_eq("VMSAVE FS.limit after VMLOAD", b->fs.limit, m->fs.limit);
    check_eq("VMSAVE GS.sel after VMLOAD", b->gs.selector, m->gs.selector);
    check_eq("VMSAVE GS.base after VMLOAD", b->gs.base, m->gs.base);
    check_eq("VMSAVE GS.limit after VMLOAD", b->gs.limit, m->gs.limit);
    check_eq("VMSAVE TR.sel after VMLOAD", b->tr.selector, m->tr.selector);
    check_eq("VMSAVE TR.base after VMLOAD", b->tr.base, m->tr.base);
    check_eq("VMSAVE LDTR.sel after VMLOAD", b->ldtr.selector, m->ldtr.selector);
    check_eq("VMSAVE KernelGsBase after VMLOAD", b->kernel_gs_base, m->kernel_gs_base);
    check_eq("VMSAVE STAR after VMLOAD", b->star, m->star);
    check_eq("VMSAVE LSTAR after VMLOAD", b->lstar, m->lstar);
    check_eq("VMSAVE CSTAR after VMLOAD", b->cstar, m->cstar);
    check_eq("VMSAVE SFMASK after VMLOAD", b->sfmask, m->sfmask);
    check_eq("VMSAVE SYSENTER_CS after VMLOAD", b->sysenter_cs, m->sysenter_cs);
    check_eq("VMSAVE SYSENTER_ESP after VMLOAD", b->sysenter_esp, m->sysenter_esp);
    check_eq("VMSAVE SYSENTER_EIP after VMLOAD", b->sysenter_eip, m->sysenter_eip);

    struct vls_state r;
    read_vls_state(&r);
    check(memcmp(&r, &h, sizeof(r)) == 0, "host state not restored by VMLOAD of the VMSAVE image");
}

/* ---- svm.basic.tsc_offset ------------------------------------------------------------------ */

static uint64_t guest_rdtsc(uint64_t arg)
{
    (void)arg;
    return rdtsc();
}

PROBE(svm_basic_tsc_offset, "svm.basic.tsc_offset", "SVM",
      "A guest RDTSC with TSC_OFFSET=+2^50 and then -2^40 returns host TSC + offset (mod 2^64), "
      "bracketed by host RDTSCs before and after VMRUN; the host TSC read after #VMEXIT carries no "
      "offset",
      "AMD APM Vol. 2 15.5.1, 15.6", "apm.15.5.1.tsc-offset")
{
    svm_require();
    struct svm_vcpu v;
    svm_vcpu_init(&v, guest_rdtsc, 0);
    const uint64_t offs[2] = {1ull << 50, -(1ull << 40)};
    for (int i = 0; i < 2; i++) {
        svm_vcpu_set_entry(&v, guest_rdtsc, 0);
        v.vmcb->control.tsc_offset = offs[i];
        uint64_t t0 = rdtsc();
        uint64_t code = svm_run(&v);
        uint64_t t1 = rdtsc();
        if (!svm_check_exit(&v, code, SVM_EXIT_VMMCALL, "VMRUN"))
            return;
        uint64_t g = v.vmcb->save.rax, d = g - offs[i];
        check(d >= t0 && d <= t1,
              "TSC_OFFSET %#llx: guest TSC %#llx - offset = %#llx, not within host [%#llx, %#llx]",
              (unsigned long long)offs[i], (unsigned long long)g, (unsigned long long)d,
              (unsigned long long)t0, (unsigned long long)t1);
        check(t1 - t0 < (1ull << 39), "host TSC after #VMEXIT jumped by %#llx (offset %#llx)",
              (unsigned long long)(t1 - t0), (unsigned long long)offs[i]);
    }
}

/* ---- svm.basic.guest_pm32 / guest_real ------------------------------------------------------- */

__asm__(".pushsection .text\n"
        ".code32\n"
        ".globl svm_t_pm32_guest, svm_t_pm32_site\n"
        "svm_t_pm32_guest:\n"
        "    mov $0x32323232, %eax\n"
        "    mov %cr0, %ebx\n"
        "    mov %cs, %ecx\n"
        "svm_t_pm32_site:\n"
        "    vmmcall\n"
        "    ud2\n"
        ".code64\n"
        ".code16\n"
        ".globl svm_t_real_guest, svm_t_real_site, svm_t_real_end\n"
        "svm_t_real_guest:\n"
        "    mov $0x1616, %ax\n"
        "    mov %cr0, %ebx\n"
        "svm_t_real_site:\n"
        "    vmmcall\n"
        "    ud2\n"
        "svm_t_real_end:\n"
        ".code64\n"
        ".popsection");
extern char svm_t_pm32_guest[], svm_t_pm32_site[];
extern char svm_t_real_guest[], svm_t_real_site[], svm_t_real_end[];

PROBE(svm_basic_guest_pm32, "svm.basic.guest_pm32", "SVM",
      "From a long-mode host, VMRUN a 32-bit protected-mode guest (CR0.PE=1, PG=0, EFER.LME=0, "
      "32-bit CS) that executes MOV EAX,imm; MOV EBX,CR0; MOV ECX,CS; VMMCALL: exit 0x81 at the "
      "VMMCALL with EAX, CR0.PE=1/PG=0 and CS as loaded, VMCB EFER.LMA=0; the host is back in long "
      "mode",
      "AMD APM Vol. 2 15.5.1, 15.6", "apm.15.5.1.guest-modes")
{
    svm_require();
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_t_pm32_guest, 0);
    struct vmcb_save *s = &v.vmcb->save;
    s->cr0 = CR0_PE | CR0_ET | CR0_NE;
    s->cr4 = 0;
    s->efer = EFER_SVME;
    svm_seg_from_gdt(&s->cs, KERNEL_CS32);
    svm_seg_from_gdt(&s->ds, KERNEL_DS);
    svm_seg_from_gdt(&s->es, KERNEL_DS);
    svm_seg_from_gdt(&s->ss, KERNEL_DS);
    uint64_t code = svm_run(&v);
    if (!svm_check_exit(&v, code, SVM_EXIT_VMMCALL, "VMRUN of the 32-bit guest"))
        return;
    check_eq("guest RIP", s->rip, (uintptr_t)svm_t_pm32_site);
    check_eq("guest EAX", s->rax & 0xffffffff, 0x32323232);
    check((v.regs.rbx & (CR0_PE | CR0_PG)) == CR0_PE, "guest CR0 %#llx: want PE=1 PG=0",
          (unsigned long long)v.regs.rbx);
    check_eq("guest CS", v.regs.rcx & 0xffff, KERNEL_CS32);
    check(!(s->efer & EFER_LMA), "VMCB EFER %#llx has LMA=1 for a legacy-mode guest",
          (unsigned long long)s->efer);
    check(rdmsr(MSR_EFER) & EFER_LMA, "host EFER.LMA=0 after #VMEXIT");
}

PROBE(svm_basic_guest_real, "svm.basic.guest_real", "SVM",
      "From a long-mode host, VMRUN a real-mode guest (CR0.PE=0, CS.base from the VMCB, IP=0) that "
      "executes MOV AX,imm; MOV EBX,CR0; VMMCALL: exit 0x81 with VMCB RIP = the VMMCALL offset, AX "
      "as set, CR0.PE=0 and VMCB CPL=0",
      "AMD APM Vol. 2 15.5.1, 15.6", "apm.15.5.1.guest-modes", "apm.15.5.1.cpl-from-vmcb")
{
    svm_require();
    struct svm_vcpu v;
    svm_vcpu_init(&v, guest_rdtsc, 0);
    uint8_t *page = alloc_page();
    memcpy(page, svm_t_real_guest, (size_t)(svm_t_real_end - svm_t_real_guest));
    uint64_t base = (uint64_t)(uintptr_t)page;
    struct vmcb_save *s = &v.vmcb->save;
    s->cr0 = CR0_ET;
    s->cr4 = 0;
    s->efer = EFER_SVME;
    struct vmcb_seg code_seg = {.selector = 0, .attrib = 0x9b, .limit = 0xffff, .base = base};
    struct vmcb_seg data_seg = {.selector = 0, .attrib = 0x93, .limit = 0xffff, .base = base};
    s->cs = code_seg;
    s->ds = s->es = s->ss = s->fs = s->gs = data_seg;
    s->rip = 0;
    s->rsp = 0xff0;
    s->cpl = 0;
    uint64_t code = svm_run(&v);
    if (!svm_check_exit(&v, code, SVM_EXIT_VMMCALL, "VMRUN of the real-mode guest"))
        return;
    check_eq("guest IP", s->rip, (uint64_t)(svm_t_real_site - svm_t_real_guest));
    check_eq("guest AX", s->rax & 0xffff, 0x1616);
    check(!(v.regs.rbx & CR0_PE), "guest CR0 %#llx has PE=1", (unsigned long long)v.regs.rbx);
    check_eq("VMCB CPL", s->cpl, 0);
    check_eq("VMCB CS.base", s->cs.base, base);
}

/* ---- svm.basic.cr2 ------------------------------------------------------------------------ */

GUEST(svm_t_cr2_guest, "mov %cr2, %rax", "mov %rbx, %cr2", "vmmcall", "ud2");

PROBE(svm_basic_cr2, "svm.basic.cr2", "SVM",
      "VMRUN with VMCB CR2 = A: the guest reads CR2 = A (VMRUN loads CR2), writes CR2 = B and "
      "VMMCALLs: the VMCB CR2 after #VMEXIT is B (#VMEXIT saves CR2)",
      "AMD APM Vol. 2 15.5.1, 15.6", "apm.15.5.1.guest-load", "apm.15.7.1.state-saved")
{
    svm_require();
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_t_cr2_guest, 0);
    const uint64_t a = 0xffff800011110000ull, b = 0x0000000022220000ull;
    v.vmcb->save.cr2 = a;
    v.regs.rbx = b;
    uint64_t code = svm_run(&v);
    if (!svm_check_exit(&v, code, SVM_EXIT_VMMCALL, "VMRUN"))
        return;
    check_eq("CR2 read by the guest", v.vmcb->save.rax, a);
    check_eq("VMCB CR2 after #VMEXIT", v.vmcb->save.cr2, b);
}
