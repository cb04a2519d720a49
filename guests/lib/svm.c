/* SPDX-License-Identifier: MIT */
/*
 * nvct: the AMD SVM library -- enabling SVM, a default 64-bit guest, and
 * the world switch (svm_run). See include/svm.h.
 */
#include "nvct.h"
#include "svm.h"

/* What svm_run() leaves in EXITCODE before VMRUN: a value no #VMEXIT can
 * write, so that "VMRUN did not write an exit code" is visible. */
#define SVM_EXIT_SENTINEL 0x7e57c0de7e57c0deull

/* ---- CPUID -------------------------------------------------------------- */

static bool svm_leaf_present(void) { return cpuid(0x80000000, 0).a >= 0x8000000a; }

bool svm_supported(void)
{
    if (cpuid(0x80000000, 0).a < 0x80000001)
        return false;
    return (cpuid(0x80000001, 0).c & CPUID_80000001_ECX_SVM) != 0;
}

uint32_t svm_features(void)
{
    if (!svm_supported() || !svm_leaf_present())
        return 0;
    return cpuid(0x8000000a, 0).d;
}

uint32_t svm_revision(void)
{
    if (!svm_supported() || !svm_leaf_present())
        return 0;
    return cpuid(0x8000000a, 0).a & 0xff;
}

uint32_t svm_num_asids(void)
{
    if (!svm_supported() || !svm_leaf_present())
        return 0;
    return cpuid(0x8000000a, 0).b;
}

/* ---- enabling ------------------------------------------------------------ */

uint64_t svm_enable(void)
{
    uint64_t efer = rdmsr(MSR_EFER);
    int v = wrmsr_safe(MSR_EFER, efer | EFER_SVME);
    if (v != NO_FAULT)
        fail("WRMSR EFER (%#llx) with SVME=1 raised vector %d",
             (unsigned long long)(efer | EFER_SVME), v);
    if (!(rdmsr(MSR_EFER) & EFER_SVME))
        fail("EFER.SVME reads back 0 after WRMSR EFER.SVME=1");

    void *hsave = alloc_page();
    uint64_t pa = (uint64_t)(uintptr_t)hsave;
    v = wrmsr_safe(MSR_VM_HSAVE_PA, pa);
    if (v != NO_FAULT)
        fail("WRMSR VM_HSAVE_PA=%#llx raised vector %d", (unsigned long long)pa, v);
    uint64_t got;
    if (rdmsr_safe(MSR_VM_HSAVE_PA, &got) != NO_FAULT)
        fail("RDMSR VM_HSAVE_PA faulted");
    if (got != pa)
        fail("VM_HSAVE_PA reads back %#llx, wrote %#llx", (unsigned long long)got,
             (unsigned long long)pa);
    return pa;
}

void svm_require_exposed(void)
{
    if (!svm_supported())
        skip("CPUID 0x80000001 ECX.SVM[2]=0");
    if (!svm_leaf_present())
        fail("CPUID 0x80000001 ECX.SVM=1 but max extended leaf %#x < 0x8000000a",
             cpuid(0x80000000, 0).a);
    uint64_t vmcr;
    int v = rdmsr_safe(MSR_VM_CR, &vmcr);
    if (v != NO_FAULT)
        fail("RDMSR VM_CR (0xc0010114) raised vector %d with SVM exposed", v);
    if (vmcr & VM_CR_SVMDIS)
        skip("VM_CR.SVMDIS[4]=1: SVM disabled by firmware (VM_CR=%#llx)", (unsigned long long)vmcr);
}

void svm_require(void)
{
    svm_require_exposed();
    svm_enable();
}

/* ---- the default guest ------------------------------------------------------ */

struct __packed dtr {
    uint16_t limit;
    uint64_t base;
};

static struct dtr sgdt(void)
{
    struct dtr d;
    __asm__ volatile("sgdt %0" : "=m"(d));
    return d;
}

void svm_seg_from_gdt(struct vmcb_seg *s, uint16_t sel)
{
    memset(s, 0, sizeof(*s));
    s->selector = sel;
    struct dtr g = sgdt();
    if ((sel & ~3u) == 0 || (sel & 4) || (uint32_t)(sel | 7) > g.limit)
        return; /* null (or not in the GDT): attributes 0, P=0 */
    uint64_t d = *(const uint64_t *)(uintptr_t)(g.base + (sel & ~7u));
    s->attrib = (uint16_t)(((d >> 40) & 0xff) | (((d >> 52) & 0xf) << 8));
    uint32_t limit = (uint32_t)((d & 0xffff) | ((d >> 32) & 0xf0000));
    if (d & BIT(55))
        limit = (limit << 12) | 0xfff;
    s->limit = limit;
    s->base = ((d >> 16) & 0xffffff) | (((d >> 56) & 0xff) << 24);
}

static uint16_t read_sel(int which)
{
    uint16_t v = 0;
    switch (which) {
    case 0: __asm__ volatile("mov %%cs, %0" : "=r"(v)); break;
    case 1: __asm__ volatile("mov %%ss, %0" : "=r"(v)); break;
    case 2: __asm__ volatile("mov %%ds, %0" : "=r"(v)); break;
    case 3: __asm__ volatile("mov %%es, %0" : "=r"(v)); break;
    }
    return v;
}

/* 256 64-bit interrupt gates (16 bytes each) to svm_guest_exc_stubs. */
static uint64_t guest_idt[512] __aligned(16);

static void guest_idt_build(void)
{
    for (unsigned v = 0; v < 256; v++) {
        uint64_t off = (uint64_t)(uintptr_t)svm_guest_exc_stubs + SVM_GUEST_EXC_STUB_SIZE * v;
        guest_idt[2 * v] = (off & 0xffff) | ((uint64_t)KERNEL_CS << 16) | (0x8eull << 40) |
                           (((off >> 16) & 0xffff) << 48);
        guest_idt[2 * v + 1] = off >> 32;
    }
}

int svm_guest_exc_vector(const struct svm_vcpu *v)
{
    const struct vmcb *vm = v->vmcb;
    if (vm->control.exit_code != SVM_EXIT_VMMCALL ||
        vm->save.rip != (uint64_t)(uintptr_t)svm_guest_exc_vmmcall ||
        (vm->save.rax & ~0xffull) != SVM_GUEST_EXC_MAGIC)
        return -1;
    return (int)(vm->save.rax & 0xff);
}

void svm_vcpu_set_entry(struct svm_vcpu *v, svm_guest_fn fn, uint64_t arg)
{
    uint64_t top = (uint64_t)(uintptr_t)v->stack + SVM_GUEST_STACK_PAGES * 4096ull;
    /* As if fn had been called: RSP = 16n + 8, return address on top. */
    top -= 8;
    *(uint64_t *)(uintptr_t)top = (uint64_t)(uintptr_t)svm_guest_return;
    v->vmcb->save.rsp = top;
    v->vmcb->save.rip = (uint64_t)(uintptr_t)fn;
    v->regs.rdi = arg;
    /* The guest IDT stubs empty the IDTR when they run: a fresh entry gets
     * the full guest IDT back. */
    guest_idt_build();
    v->vmcb->save.idtr.base = (uint64_t)(uintptr_t)guest_idt;
    v->vmcb->save.idtr.limit = sizeof(guest_idt) - 1;
}

void svm_vcpu_init(struct svm_vcpu *v, svm_guest_fn fn, uint64_t arg)
{
    memset(v, 0, sizeof(*v));
    v->vmcb = alloc_page();
    v->host_save = alloc_page();
    v->iopm = alloc_pages(3);
    v->msrpm = alloc_pages(2);
    v->stack = alloc_pages(SVM_GUEST_STACK_PAGES);

    struct vmcb *vm = v->vmcb;
    struct vmcb_control *c = &vm->control;
    struct vmcb_save *s = &vm->save;

    c->intercept_misc1 = SVM_INTERCEPT_SHUTDOWN;
    c->intercept_misc2 = SVM_INTERCEPT_VMRUN | SVM_INTERCEPT_VMMCALL;
    c->intercept_exceptions = SVM_DEFAULT_EXCEPTIONS;
    c->iopm_base_pa = (uint64_t)(uintptr_t)v->iopm;
    c->msrpm_base_pa = (uint64_t)(uintptr_t)v->msrpm;
    c->asid = 1;
    c->tlb_control = TLB_CONTROL_DO_NOTHING;

    /* FS, GS, TR, LDTR, KernelGsBase, STAR/LSTAR/CSTAR/SFMASK and
     * SYSENTER_*: the host's current values. Needs EFER.SVME=1. */
    svm_vmsave((uint64_t)(uintptr_t)vm);

    svm_seg_from_gdt(&s->cs, read_sel(0));
    svm_seg_from_gdt(&s->ss, read_sel(1));
    svm_seg_from_gdt(&s->ds, read_sel(2));
    svm_seg_from_gdt(&s->es, read_sel(3));
    struct dtr g = sgdt();
    s->gdtr.base = g.base;
    s->gdtr.limit = g.limit;
    guest_idt_build();
    s->idtr.base = (uint64_t)(uintptr_t)guest_idt;
    s->idtr.limit = sizeof(guest_idt) - 1;
    s->cpl = 0;
    s->efer = rdmsr(MSR_EFER);
    s->cr0 = read_cr0();
    s->cr3 = read_cr3();
    s->cr4 = read_cr4();
    s->cr2 = 0;
    s->dr6 = 0xffff0ff0;
    s->dr7 = 0x400;
    s->rflags = 0x2;
    s->g_pat = 0x0007040600070406ull; /* the reset value of IA32_PAT */
    s->rax = 0;

    svm_vcpu_set_entry(v, fn, arg);
}

uint64_t svm_unmapped_address(void)
{
    const uint64_t *pml4 = (const uint64_t *)(uintptr_t)(read_cr3() & 0x000ffffffffff000ull);
    if (!(pml4[0] & 1))
        error("kernel PML4[0] not present");
    const uint64_t *pdpt = (const uint64_t *)(uintptr_t)(pml4[0] & 0x000ffffffffff000ull);
    for (unsigned i = 4; i < 512; i++)
        if (!(pdpt[i] & 1))
            return (uint64_t)i << 30;
    error("no unmapped 1 GiB slot between 4 GiB and 512 GiB");
}

/* ---- running ------------------------------------------------------------------ */

uint64_t svm_run(struct svm_vcpu *v)
{
    struct vmcb *vm = v->vmcb;
    vm->control.exit_code = SVM_EXIT_SENTINEL;
    if (!(v->flags & SVM_RUN_KEEP_NEXT_RIP))
        vm->control.next_rip = 0;
    uint64_t hs = (v->flags & SVM_RUN_NO_VMLOAD) ? 0 : (uint64_t)(uintptr_t)v->host_save;
    uint64_t how = (v->flags & SVM_RUN_KEEP_GIF0) ? SVM_ASM_KEEP_GIF0 : 0;
    bool masking = (vm->control.int_ctl & V_INTR_MASKING) != 0;
    bool watched = v->watchdog && !how && !(vm->control.intercept_misc1 & SVM_INTERCEPT_INTR) &&
                   watchdog_arm(WATCHDOG_MS);
    if (watched) {
        vm->control.intercept_misc1 |= SVM_INTERCEPT_INTR;
        vm->control.int_ctl |= V_INTR_MASKING;
        how |= SVM_ASM_STI;
    }
    svm_vmrun_asm((uint64_t)(uintptr_t)vm, &v->regs, hs, how);
    v->runs++;
    if (watched) {
        /* STGI has let the host take a pending timer interrupt already. */
        __asm__ volatile("cli" ::: "memory");
        bool fired = watchdog_disarm();
        vm->control.intercept_misc1 &= ~(uint32_t)SVM_INTERCEPT_INTR;
        if (!masking)
            vm->control.int_ctl &= ~V_INTR_MASKING;
        if (fired && vm->control.exit_code == SVM_EXIT_INTR)
            check(false,
                  "watchdog: no exit within %u ms, awaiting %s; the timer interrupt ended "
                  "the run: %s",
                  WATCHDOG_MS, v->watchdog, svm_exit_str(v));
    }
    return vm->control.exit_code;
}

void svm_skip_insn(struct svm_vcpu *v, unsigned len)
{
    struct vmcb *vm = v->vmcb;
    if (svm_has(SVM_FEAT_NRIPS) && vm->control.next_rip != 0)
        vm->save.rip = vm->control.next_rip;
    else
        vm->save.rip += len;
}

bool svm_msrpm_set(struct svm_vcpu *v, uint32_t msr, bool read, bool write)
{
    static const struct {
        uint32_t first;
        uint32_t byte;
    } ranges[] = {
        {0x00000000, 0x000},
        {0xc0000000, 0x800},
        {0xc0010000, 0x1000},
    };
    for (unsigned i = 0; i < ARRAY_SIZE(ranges); i++) {
        if (msr - ranges[i].first >= 0x2000)
            continue;
        uint32_t bit = ranges[i].byte * 8 + (msr - ranges[i].first) * 2;
        uint8_t *b = &v->msrpm[bit / 8];
        uint8_t m = (uint8_t)(3u << (bit % 8));
        *b = (uint8_t)((*b & ~m) | ((read ? 1u : 0u) << (bit % 8)) |
                       ((write ? 2u : 0u) << (bit % 8)));
        return true;
    }
    return false;
}

void svm_iopm_set(struct svm_vcpu *v, uint16_t port, bool intercept)
{
    uint8_t m = (uint8_t)(1u << (port % 8));
    if (intercept)
        v->iopm[port / 8] |= m;
    else
        v->iopm[port / 8] &= (uint8_t)~m;
}

/* ---- describing exits ------------------------------------------------------------ */

static const char *const exit_names_60[] = {
    [0x00] = "INTR",
    [0x01] = "NMI",
    [0x02] = "SMI",
    [0x03] = "INIT",
    [0x04] = "VINTR",
    [0x05] = "CR0_SEL_WRITE",
    [0x06] = "IDTR_READ",
    [0x07] = "GDTR_READ",
    [0x08] = "LDTR_READ",
    [0x09] = "TR_READ",
    [0x0a] = "IDTR_WRITE",
    [0x0b] = "GDTR_WRITE",
    [0x0c] = "LDTR_WRITE",
    [0x0d] = "TR_WRITE",
    [0x0e] = "RDTSC",
    [0x0f] = "RDPMC",
    [0x10] = "PUSHF",
    [0x11] = "POPF",
    [0x12] = "CPUID",
    [0x13] = "RSM",
    [0x14] = "IRET",
    [0x15] = "SWINT",
    [0x16] = "INVD",
    [0x17] = "PAUSE",
    [0x18] = "HLT",
    [0x19] = "INVLPG",
    [0x1a] = "INVLPGA",
    [0x1b] = "IOIO",
    [0x1c] = "MSR",
    [0x1d] = "TASK_SWITCH",
    [0x1e] = "FERR_FREEZE",
    [0x1f] = "SHUTDOWN",
    [0x20] = "VMRUN",
    [0x21] = "VMMCALL",
    [0x22] = "VMLOAD",
    [0x23] = "VMSAVE",
    [0x24] = "STGI",
    [0x25] = "CLGI",
    [0x26] = "SKINIT",
    [0x27] = "RDTSCP",
    [0x28] = "ICEBP",
    [0x29] = "WBINVD",
    [0x2a] = "MONITOR",
    [0x2b] = "MWAIT",
    [0x2c] = "MWAIT_CONDITIONAL",
    [0x2d] = "XSETBV",
    [0x2e] = "RDPRU",
    [0x2f] = "EFER_WRITE_TRAP",
    [0x40] = "INVLPGB",
    [0x41] = "INVLPGB_ILLEGAL",
    [0x42] = "INVPCID",
    [0x43] = "MCOMMIT",
    [0x44] = "TLBSYNC",
    [0x45] = "BUSLOCK",
    [0x46] = "IDLE_HLT",
};

static const char *const excp_names[32] = {
    "EXCP_DE", "EXCP_DB", "EXCP_NMI", "EXCP_BP", "EXCP_OF", "EXCP_BR", "EXCP_UD", "EXCP_NM",
    "EXCP_DF", "EXCP_9",  "EXCP_TS",  "EXCP_NP", "EXCP_SS", "EXCP_GP", "EXCP_PF", "EXCP_15",
    "EXCP_MF", "EXCP_AC", "EXCP_MC",  "EXCP_XF", "EXCP_VE", "EXCP_CP", "EXCP_22", "EXCP_23",
    "EXCP_24", "EXCP_25", "EXCP_26",  "EXCP_27", "EXCP_HV", "EXCP_VC", "EXCP_SX", "EXCP_31",
};

static const char *const cr_names[2][16] = {
    {"CR0_READ", "CR1_READ", "CR2_READ", "CR3_READ", "CR4_READ", "CR5_READ", "CR6_READ", "CR7_READ",
     "CR8_READ", "CR9_READ", "CR10_READ", "CR11_READ", "CR12_READ", "CR13_READ", "CR14_READ",
     "CR15_READ"},
    {"CR0_WRITE", "CR1_WRITE", "CR2_WRITE", "CR3_WRITE", "CR4_WRITE", "CR5_WRITE", "CR6_WRITE",
     "CR7_WRITE", "CR8_WRITE", "CR9_WRITE", "CR10_WRITE", "CR11_WRITE", "CR12_WRITE", "CR13_WRITE",
     "CR14_WRITE", "CR15_WRITE"},
};

const char *svm_exit_name(uint64_t code)
{
    if (code < 0x20)
        return cr_names[code >> 4][code & 15];
    if (code < 0x30)
        return "DR_READ";
    if (code < 0x40)
        return "DR_WRITE";
    if (code < 0x60)
        return excp_names[code - 0x40];
    if (code >= 0x60 && code < 0x60 + ARRAY_SIZE(exit_names_60) && exit_names_60[code - 0x60])
        return exit_names_60[code - 0x60];
    if (code >= 0x90 && code < 0xa0)
        return "CR_WRITE_TRAP";
    switch (code) {
    case SVM_EXIT_NPF: return "NPF";
    case SVM_EXIT_AVIC_INCOMPLETE_IPI: return "AVIC_INCOMPLETE_IPI";
    case SVM_EXIT_AVIC_NOACCEL: return "AVIC_NOACCEL";
    case SVM_EXIT_VMGEXIT: return "VMGEXIT";
    case SVM_EXIT_INVALID: return "INVALID";
    case SVM_EXIT_BUSY: return "BUSY";
    case SVM_EXIT_SENTINEL: return "none written";
    case 0xffffffffull: return "INVALID[31:0] only";
    }
    return "?";
}

const char *svm_exit_str(const struct svm_vcpu *v)
{
    static char buf[240];
    const struct vmcb *vm = v->vmcb;
    uint64_t code = vm->control.exit_code;
    snprintf(buf, sizeof(buf), "exit %#llx (%s) info1=%#llx info2=%#llx intinfo=%#llx rip=%#llx",
             (unsigned long long)code, svm_exit_name(code),
             (unsigned long long)vm->control.exit_info_1,
             (unsigned long long)vm->control.exit_info_2,
             (unsigned long long)vm->control.exit_int_info, (unsigned long long)vm->save.rip);
    int vec = svm_guest_exc_vector(v);
    if (vec >= 0) {
        size_t n = strlen(buf);
        snprintf(buf + n, sizeof(buf) - n, " [guest IDT took vector %d]", vec);
    }
    return buf;
}

bool svm_check_exit(const struct svm_vcpu *v, uint64_t got, uint64_t want, const char *what)
{
    if (want == SVM_EXIT_INVALID && got == 0xffffffffull)
        note("%s: EXITCODE[31:0]=0xffffffff but EXITCODE[63:32]=0: VMEXIT_INVALID "
             "written as a 32-bit -1 (EXITCODE is 64 bits at VMCB offset 0x70)",
             what);
    return check(got == want, "%s: want exit %#llx (%s), got %s", what, (unsigned long long)want,
                 svm_exit_name(want), svm_exit_str(v));
}
