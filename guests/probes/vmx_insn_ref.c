/* SPDX-License-Identifier: MIT */
/*
 * The VMX instruction reference (SDM Vol. 3C chapter 31) and VMX operation
 * (chapter 24): the RFLAGS conventions of VMsucceed/VMfail, the VM-instruction
 * error field, VMX instructions at CPL 3 and in compatibility mode, VMCALL and
 * VMFUNC in VMX root operation, memory operands of VMREAD/VMWRITE, the CR0/CR4
 * fixed bits in VMX operation, launch states and the order of the VMLAUNCH
 * errors.
 */
#include "vmx.h"
#include "vmx_cases.h"

/* CF, PF, AF, ZF, SF, OF: what VMsucceed clears (SDM Vol. 3C 31.2) */
#define ARITH_FLAGS 0x8d5ull
#define FLAG_CF     0x001ull
#define FLAG_ZF     0x040ull

/* what the six arithmetic flags say */
static const char *flags_str(uint64_t rf)
{
    static char buf[64];
    snprintf(buf, sizeof(buf), "CF=%d PF=%d AF=%d ZF=%d SF=%d OF=%d", !!(rf & 1), !!(rf & 4),
             !!(rf & 0x10), !!(rf & 0x40), !!(rf & 0x80), !!(rf & 0x800));
    return buf;
}

/* each runs one VMX instruction with all six arithmetic flags set first and
 * returns RFLAGS after it */
static uint64_t fl_vmptrld(uint64_t pa)
{
    uint64_t rf;
    __asm__ volatile("pushfq\n\torq $0x8d5, (%%rsp)\n\tpopfq\n\tvmptrld %1\n\tpushfq\n\tpop %0"
                     : "=r"(rf)
                     : "m"(pa)
                     : "cc", "memory");
    return rf;
}

static uint64_t fl_vmclear(uint64_t pa)
{
    uint64_t rf;
    __asm__ volatile("pushfq\n\torq $0x8d5, (%%rsp)\n\tpopfq\n\tvmclear %1\n\tpushfq\n\tpop %0"
                     : "=r"(rf)
                     : "m"(pa)
                     : "cc", "memory");
    return rf;
}

static uint64_t fl_vmread(uint64_t field, uint64_t *val)
{
    uint64_t rf, v = *val;
    __asm__ volatile("pushfq\n\torq $0x8d5, (%%rsp)\n\tpopfq\n\tvmread %2, %1\n\tpushfq\n\tpop %0"
                     : "=r"(rf), "+r"(v)
                     : "r"(field)
                     : "cc", "memory");
    *val = v;
    return rf;
}

static uint64_t fl_vmwrite(uint64_t field, uint64_t val)
{
    uint64_t rf;
    __asm__ volatile("pushfq\n\torq $0x8d5, (%%rsp)\n\tpopfq\n\tvmwrite %2, %1\n\tpushfq\n\tpop %0"
                     : "=r"(rf)
                     : "r"(field), "r"(val)
                     : "cc", "memory");
    return rf;
}

static uint64_t fl_vmcall(void)
{
    uint64_t rf;
    __asm__ volatile("pushfq\n\torq $0x8d5, (%%rsp)\n\tpopfq\n\tvmcall\n\tpushfq\n\tpop %0"
                     : "=r"(rf)
                     :
                     : "cc", "memory");
    return rf;
}

/* check the six flags after an instruction: want is 0 (VMsucceed), CF
 * (VMfailInvalid) or ZF (VMfailValid) */
static bool check_flags(const char *what, uint64_t rf, uint64_t want)
{
    return check((rf & ARITH_FLAGS) == want,
                 "%s with CF/PF/AF/ZF/SF/OF all 1 before: got %s, want %s", what, flags_str(rf),
                 want == 0         ? "all 0 (VMsucceed)"
                 : want == FLAG_CF ? "CF=1, the rest 0 (VMfailInvalid)"
                                   : "ZF=1, the rest 0 (VMfailValid)");
}

static uint64_t insn_error(void)
{
    uint64_t e = 0;
    struct vmx_res r = vmread(VMCS_INSN_ERROR, &e);
    if (!vmx_ok(r))
        fail("VMREAD of the VM-instruction error field: %s", vmx_res_str(r));
    return e;
}

PROBE(vmx_insn_vmfail_flags, "vmx.root.vmfail_flags", "VMX",
      "With CF, PF, AF, ZF, SF and OF all set before it: VMREAD without a current VMCS leaves "
      "CF=1 and the other five 0 (VMfailInvalid); VMPTRLD of a VMCS leaves all six 0 "
      "(VMsucceed); VMPTRLD of the VMXON pointer leaves ZF=1 and the others 0, and the "
      "VM-instruction error field reads 10; a VMWRITE that succeeds leaves it 10; VMCLEAR of an "
      "unaligned pointer then makes it 2",
      "Intel SDM Vol. 3C 31.2, 31.4 (Table 31-1)", "sdm.31.2.vmfail-conventions",
      "sdm.31.4.error-numbers")
{
    uint64_t pa = vmx_on();
    uint64_t vpa = (uint64_t)(uintptr_t)vmx_alloc_vmcs();
    uint64_t out = 0x77;
    check_flags("VMREAD without a current VMCS", fl_vmread(VMCS_GUEST_RIP, &out), FLAG_CF);
    if (!check_flags("VMCLEAR of a fresh VMCS", fl_vmclear(vpa), 0) ||
        !check_flags("VMPTRLD of a clear VMCS", fl_vmptrld(vpa), 0))
        return;
    if (check_flags("VMPTRLD of the VMXON pointer", fl_vmptrld(pa), FLAG_ZF))
        check_eq("VM-instruction error after VMPTRLD of the VMXON pointer", insn_error(),
                 VMXERR_VMPTRLD_VMXON_PTR);
    if (check_flags("VMWRITE of GUEST_RIP", fl_vmwrite(VMCS_GUEST_RIP, 0x1234), 0))
        check_eq("VM-instruction error after a VMWRITE that succeeded", insn_error(),
                 VMXERR_VMPTRLD_VMXON_PTR);
    out = 0;
    if (check_flags("VMREAD of GUEST_RIP", fl_vmread(VMCS_GUEST_RIP, &out), 0))
        check_eq("GUEST_RIP read back", out, 0x1234);
    if (check_flags("VMCLEAR of an unaligned pointer", fl_vmclear(vpa + 0x800), FLAG_ZF))
        check_eq("VM-instruction error after VMCLEAR of an unaligned pointer", insn_error(),
                 VMXERR_VMCLEAR_BAD_ADDR);
    check_eq("VM-instruction error read a second time", insn_error(), VMXERR_VMCLEAR_BAD_ADDR);
}

GUEST(vmx_ir_loop_guest, "1: vmcall", "jmp 1b");

PROBE(vmx_insn_vmcall_root, "vmx.root.vmcall_root", "VMX",
      "VMCALL in VMX root operation (no dual-monitor treatment) without a current VMCS gives "
      "VMfailInvalid; with a current (launched) VMCS it gives VMfailValid(1: VMCALL executed in "
      "VMX root operation), all other arithmetic flags 0",
      "Intel SDM Vol. 3C 31.3 (VMCALL), 31.4", "sdm.31.3.vmcall-root")
{
    vmx_on();
    check_flags("VMCALL in VMX root operation without a current VMCS", fl_vmcall(), FLAG_CF);
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ir_loop_guest);
    if (!vmx_run_expect(v, EXIT_VMCALL, "VMLAUNCH"))
        return;
    if (check_flags("VMCALL in VMX root operation with a current VMCS", fl_vmcall(), FLAG_ZF))
        check_eq("VM-instruction error after VMCALL in VMX root operation", insn_error(),
                 VMXERR_VMCALL_IN_ROOT);
}

static void do_vmfunc(void *p)
{
    (void)p;
    __asm__ volatile("xor %%eax, %%eax\n\txor %%ecx, %%ecx\n\tvmfunc" ::: "rax", "rcx", "memory");
}

PROBE(vmx_insn_vmfunc_root, "vmx.root.vmfunc_root", "VMX",
      "VMFUNC (EAX=0, ECX=0) in VMX root operation, with a current VMCS, raises #UD",
      "Intel SDM Vol. 3C 31.3 (VMFUNC), 26.5.5", "sdm.31.3.vmfunc-root")
{
    vmx_on();
    uint64_t vpa = (uint64_t)(uintptr_t)vmx_alloc_vmcs();
    if (!check_vmx("VMCLEAR", vmclear(vpa), VMX_SUCCEED, 0) ||
        !check_vmx("VMPTRLD", vmptrld(vpa), VMX_SUCCEED, 0))
        return;
    struct fault f;
    int vec = catch_fault(do_vmfunc, NULL, &f);
    check(vec == UD_VECTOR, "VMFUNC in VMX root operation: got %s, want #UD", fault_str(&f));
}

/* ---- VMX instructions at CPL 3 and in compatibility mode ----------------------------- */

/*
 * Stubs, each one VMX instruction followed by UD2: a fault on the VMX
 * instruction has its address as RIP, one that executed reaches the UD2.
 * The operands: memory at (%rdi) / (%edi), field in RAX, value in RBX.
 */
extern const char vmx_ir_u_vmxon[], vmx_ir_u_vmxoff[], vmx_ir_u_vmclear[], vmx_ir_u_vmptrld[],
    vmx_ir_u_vmptrst[], vmx_ir_u_vmread[], vmx_ir_u_vmwrite[], vmx_ir_u_vmlaunch[],
    vmx_ir_u_vmresume[], vmx_ir_u_invept[], vmx_ir_u_invvpid[];
extern const char vmx_ir_c_vmxon[], vmx_ir_c_vmxoff[], vmx_ir_c_vmclear[], vmx_ir_c_vmptrld[],
    vmx_ir_c_vmptrst[], vmx_ir_c_vmread[], vmx_ir_c_vmwrite[], vmx_ir_c_vmlaunch[],
    vmx_ir_c_vmresume[], vmx_ir_c_invept[], vmx_ir_c_invvpid[];
__asm__(".pushsection .text\n"
        "vmx_ir_u_vmxon: vmxon (%rdi)\n ud2\n"
        "vmx_ir_u_vmxoff: vmxoff\n ud2\n"
        "vmx_ir_u_vmclear: vmclear (%rdi)\n ud2\n"
        "vmx_ir_u_vmptrld: vmptrld (%rdi)\n ud2\n"
        "vmx_ir_u_vmptrst: vmptrst (%rdi)\n ud2\n"
        "vmx_ir_u_vmread: vmread %rax, %rbx\n ud2\n"
        "vmx_ir_u_vmwrite: vmwrite %rbx, %rax\n ud2\n"
        "vmx_ir_u_vmlaunch: vmlaunch\n ud2\n"
        "vmx_ir_u_vmresume: vmresume\n ud2\n"
        "vmx_ir_u_invept: invept (%rdi), %rax\n ud2\n"
        "vmx_ir_u_invvpid: invvpid (%rdi), %rax\n ud2\n"
        ".code32\n"
        "vmx_ir_c_vmxon: vmxon (%edi)\n ud2\n"
        "vmx_ir_c_vmxoff: vmxoff\n ud2\n"
        "vmx_ir_c_vmclear: vmclear (%edi)\n ud2\n"
        "vmx_ir_c_vmptrld: vmptrld (%edi)\n ud2\n"
        "vmx_ir_c_vmptrst: vmptrst (%edi)\n ud2\n"
        "vmx_ir_c_vmread: vmread %eax, %ebx\n ud2\n"
        "vmx_ir_c_vmwrite: vmwrite %ebx, %eax\n ud2\n"
        "vmx_ir_c_vmlaunch: vmlaunch\n ud2\n"
        "vmx_ir_c_vmresume: vmresume\n ud2\n"
        "vmx_ir_c_invept: invept (%edi), %eax\n ud2\n"
        "vmx_ir_c_invvpid: invvpid (%edi), %eax\n ud2\n"
        ".code64\n"
        ".popsection");

/*
 * void vmx_ir_far(rip, rsp, rdi, rax, cs): IRETQ to cs:rip with SS = the
 * matching data selector and RFLAGS = 2, RDI = rdi, RAX = RBX = rax. Returns
 * only through a fault (catch_fault()).
 */
void vmx_ir_far(uint64_t rip, uint64_t rsp, uint64_t rdi, uint64_t rax, uint64_t cs);
__asm__(".pushsection .text\n"
        "vmx_ir_far:\n"
        "    mov $0x10, %eax\n" /* KERNEL_DS */
        "    mov $0x23, %r9d\n" /* USER_DS */
        "    test $3, %r8d\n"
        "    cmovnz %r9d, %eax\n"
        "    push %rax\n"
        "    push %rsi\n"
        "    push $2\n"
        "    push %r8\n"
        "    push %rdi\n"
        "    mov %rdx, %rdi\n"
        "    mov %rcx, %rax\n"
        "    mov %rcx, %rbx\n"
        "    iretq\n"
        ".popsection");

struct far_arg {
    uint64_t rip, rsp, rdi, rax, cs;
};

static void far_fn(void *p)
{
    struct far_arg *a = p;
    vmx_ir_far(a->rip, a->rsp, a->rdi, a->rax, a->cs);
}

struct stub {
    const char *name;
    const char *u, *c;
    uint64_t rax;
    int need; /* 1: INVEPT (enable EPT), 2: INVVPID (enable VPID) */
};

/* all the VMX instructions but VMCALL and VMFUNC; VMXOFF last */
static const struct stub stubs[] = {
    {"VMXON", vmx_ir_u_vmxon, vmx_ir_c_vmxon, 0, 0},
    {"VMCLEAR", vmx_ir_u_vmclear, vmx_ir_c_vmclear, 0, 0},
    {"VMPTRLD", vmx_ir_u_vmptrld, vmx_ir_c_vmptrld, 0, 0},
    {"VMPTRST", vmx_ir_u_vmptrst, vmx_ir_c_vmptrst, 0, 0},
    {"VMREAD", vmx_ir_u_vmread, vmx_ir_c_vmread, VMCS_GUEST_RIP, 0},
    {"VMWRITE", vmx_ir_u_vmwrite, vmx_ir_c_vmwrite, VMCS_GUEST_RIP, 0},
    {"VMLAUNCH", vmx_ir_u_vmlaunch, vmx_ir_c_vmlaunch, 0, 0},
    {"VMRESUME", vmx_ir_u_vmresume, vmx_ir_c_vmresume, 0, 0},
    {"INVEPT", vmx_ir_u_invept, vmx_ir_c_invept, INVEPT_ALL, 1},
    {"INVVPID", vmx_ir_u_invvpid, vmx_ir_c_invvpid, INVVPID_ALL, 2},
    {"VMXOFF", vmx_ir_u_vmxoff, vmx_ir_c_vmxoff, 0, 0},
};

static bool stub_usable(const struct stub *s)
{
    if (s->need == 1)
        return vmx_ctl_can_set(VMX_CTL_PROC2, PROC2_EPT);
    if (s->need == 2)
        return vmx_ctl_can_set(VMX_CTL_PROC2, PROC2_VPID);
    return true;
}

/*
 * VMX operation with a current VMCS that cannot be entered (a fresh,
 * cleared VMCS: its controls lack the must-be-1 bits), so that a VMLAUNCH
 * that is not stopped gives VMfailValid(7) and no entry. Returns a page
 * whose first quadword holds the VMCS pointer (the memory operand).
 */
static uint64_t *on_with_dead_vmcs(void)
{
    uint64_t pa = vmx_on();
    uint64_t vpa = (uint64_t)(uintptr_t)vmx_alloc_vmcs();
    if (!vmx_ok(vmclear(vpa)) || !vmx_ok(vmptrld(vpa)))
        fail("VMCLEAR/VMPTRLD of a fresh VMCS failed");
    uint64_t *op = alloc_page();
    op[0] = vpa;
    op[1] = 0;   /* INVEPT/INVVPID descriptor: op[0..1] */
    op[2] = vpa; /* op[0] for the instructions that take a VMCS pointer */
    op[3] = pa;  /* op[0] for VMXON */
    return op;
}

static void check_stub_fault(const char *name, const char *where, const char *at, int vec,
                             const struct fault *f, int want_vec)
{
    const char *how = vec == UD_VECTOR && f->rip != (uintptr_t)at ? " (it executed, then UD2)" : "";
    bool ok =
        vec == want_vec && f->rip == (uintptr_t)at && (want_vec != GP_VECTOR || f->error_code == 0);
    check(ok, "%s %s: got %s at rip %#llx%s, want %s at %#llx", name, where, fault_str(f),
          (unsigned long long)f->rip, how, want_vec == GP_VECTOR ? "#GP(0)" : "#UD",
          (unsigned long long)(uintptr_t)at);
}

PROBE(vmx_insn_cpl3_gp, "vmx.root.cpl3_gp", "VMX",
      "In VMX root operation with a current VMCS, each of VMXON, VMCLEAR, VMPTRLD, VMPTRST, "
      "VMREAD, VMWRITE, VMLAUNCH, VMRESUME, INVEPT and INVVPID (where their controls exist) and "
      "VMXOFF executed at CPL 3 (64-bit user code, user-accessible pages) raises #GP(0) on the "
      "instruction",
      "Intel SDM Vol. 3C 31.3 (each instruction's Protected Mode Exceptions), 24.8",
      "sdm.31.3.gp-cpl")
{
    uint64_t *op = on_with_dead_vmcs();
    uint64_t cr4 = read_cr4();
    if (cr4 & ((1ull << 20) | (1ull << 21)))
        write_cr4(cr4 & ~((1ull << 20) | (1ull << 21))); /* SMEP, SMAP: kernel code on U pages */
    uint64_t cr3 = read_cr3();
    write_cr3(user_cr3());
    uint8_t *ustack = alloc_pages(2);
    for (unsigned i = 0; i < ARRAY_SIZE(stubs); i++) {
        const struct stub *s = &stubs[i];
        if (!stub_usable(s))
            continue;
        op[0] = s->u == vmx_ir_u_vmxon ? op[3] : op[2];
        struct far_arg a = {(uintptr_t)s->u, (uintptr_t)ustack + 8192 - 64, (uintptr_t)op, s->rax,
                            USER_CS};
        struct fault f;
        int vec = catch_fault(far_fn, &a, &f);
        check_stub_fault(s->name, "at CPL 3", s->u, vec, &f, GP_VECTOR);
    }
    write_cr3(cr3);
    write_cr4(cr4);
}

PROBE(vmx_insn_compat_ud, "vmx.root.compat_ud", "VMX",
      "In VMX root operation with a current VMCS, each of VMXON, VMCLEAR, VMPTRLD, VMPTRST, "
      "VMREAD, VMWRITE, VMLAUNCH, VMRESUME, INVEPT and INVVPID (where their controls exist) and "
      "VMXOFF executed at CPL 0 in compatibility mode (the 32-bit code segment, IA32_EFER.LMA=1, "
      "CS.L=0) raises #UD on the instruction",
      "Intel SDM Vol. 3C 31.3 (each instruction's Compatibility Mode Exceptions)",
      "sdm.31.3.ud-mode")
{
    uint64_t *op = on_with_dead_vmcs();
    uint8_t *stack = alloc_pages(2);
    for (unsigned i = 0; i < ARRAY_SIZE(stubs); i++) {
        const struct stub *s = &stubs[i];
        if (!stub_usable(s))
            continue;
        op[0] = s->c == vmx_ir_c_vmxon ? op[3] : op[2];
        struct far_arg a = {(uintptr_t)s->c, (uintptr_t)stack + 8192 - 64, (uintptr_t)op, s->rax,
                            KERNEL_CS32};
        struct fault f;
        int vec = catch_fault(far_fn, &a, &f);
        check_stub_fault(s->name, "in compatibility mode", s->c, vec, &f, UD_VECTOR);
    }
}

/* ---- memory operands of VMREAD and VMWRITE --------------------------------------------- */

struct mem_arg {
    uint64_t field, addr;
};

static void vmread_mem(void *p)
{
    struct mem_arg *a = p;
    __asm__ volatile("vmread %0, (%1)" ::"r"(a->field), "r"(a->addr) : "cc", "memory");
}

static void vmwrite_mem(void *p)
{
    struct mem_arg *a = p;
    __asm__ volatile("vmwrite (%1), %0" ::"r"(a->field), "r"(a->addr) : "cc", "memory");
}

PROBE(vmx_insn_vmread_memory, "vmx.root.vmread_memory", "VMX",
      "In 64-bit mode, VMREAD of a 16-bit field (guest ES selector 0x1234) to memory writes 8 "
      "bytes (0x1234 zero-extended) and not the next quadword; VMWRITE from memory of the TSC "
      "offset and of guest RIP takes all 64 bits; VMREAD to a non-canonical address raises "
      "#GP(0), VMREAD to and VMWRITE from an unmapped address above 4 GiB raise #PF with that "
      "address in CR2, and the field keeps its value",
      "Intel SDM Vol. 3C 31.3 (VMREAD, VMWRITE)", "sdm.31.3.vmread-operand")
{
    vmx_on();
    uint64_t vpa = (uint64_t)(uintptr_t)vmx_alloc_vmcs();
    if (!check_vmx("VMCLEAR", vmclear(vpa), VMX_SUCCEED, 0) ||
        !check_vmx("VMPTRLD", vmptrld(vpa), VMX_SUCCEED, 0))
        return;
    vmcs_write(VMCS_GUEST_ES_SEL, 0x1234);
    uint64_t *buf = alloc_page();
    buf[0] = buf[1] = ~0ull;
    struct mem_arg a = {VMCS_GUEST_ES_SEL, (uintptr_t)buf};
    struct fault f;
    int vec = catch_fault(vmread_mem, &a, &f);
    if (check(vec == NO_FAULT, "VMREAD to memory raised %s", fault_str(&f))) {
        check_eq("quadword VMREAD wrote for the 16-bit guest ES selector", buf[0], 0x1234);
        check_eq("the next quadword", buf[1], ~0ull);
    }
    static const struct {
        uint64_t field;
        const char *name;
    } w[] = {{VMCS_TSC_OFFSET, "TSC offset"}, {VMCS_GUEST_RIP, "guest RIP"}};
    for (unsigned i = 0; i < ARRAY_SIZE(w); i++) {
        buf[0] = 0x8877665544332211ull;
        if (w[i].field == VMCS_GUEST_RIP)
            buf[0] = 0xffff876543210ull;
        a = (struct mem_arg){w[i].field, (uintptr_t)buf};
        vec = catch_fault(vmwrite_mem, &a, &f);
        if (check(vec == NO_FAULT, "VMWRITE of the %s from memory raised %s", w[i].name,
                  fault_str(&f)))
            check_eq(w[i].name, vmcs_read(w[i].field), buf[0]);
    }

    a = (struct mem_arg){VMCS_GUEST_ES_SEL, 1ull << 63};
    vec = catch_fault(vmread_mem, &a, &f);
    check(vec == GP_VECTOR && f.error_code == 0,
          "VMREAD to the non-canonical address %#llx: got %s, want #GP(0)",
          (unsigned long long)a.addr, fault_str(&f));
    uint64_t far = 0x100000000ull + 0x1000 * 7;
    a = (struct mem_arg){VMCS_GUEST_ES_SEL, far};
    vec = catch_fault(vmread_mem, &a, &f);
    check(vec == PF_VECTOR && f.cr2 == far,
          "VMREAD to the unmapped %#llx: got %s cr2=%#llx, want #PF", (unsigned long long)far,
          fault_str(&f), (unsigned long long)f.cr2);
    a = (struct mem_arg){VMCS_GUEST_ES_SEL, far};
    vec = catch_fault(vmwrite_mem, &a, &f);
    check(vec == PF_VECTOR && f.cr2 == far,
          "VMWRITE from the unmapped %#llx: got %s cr2=%#llx, want #PF", (unsigned long long)far,
          fault_str(&f), (unsigned long long)f.cr2);
    check_eq("guest ES selector after the faulting VMWRITE", vmcs_read(VMCS_GUEST_ES_SEL), 0x1234);
}

/* ---- CR0 and CR4 in VMX operation -------------------------------------------------------- */

struct cr_arg {
    int cr;
    uint64_t val, old;
};

static void write_cr_fn(void *p)
{
    struct cr_arg *a = p;
    if (a->cr == 0) {
        write_cr0(a->val);
        write_cr0(a->old);
    } else {
        write_cr4(a->val);
        write_cr4(a->old);
    }
}

static void try_cr(int cr, uint64_t val, uint64_t old, const char *what, unsigned bit)
{
    struct cr_arg a = {cr, val, old};
    struct fault f;
    int vec = catch_fault(write_cr_fn, &a, &f);
    check(vec == GP_VECTOR && f.error_code == 0,
          "MOV to CR%d %s bit %u (%#llx) in VMX operation: got %s, want #GP(0)", cr, what, bit,
          (unsigned long long)val, fault_str(&f));
    uint64_t now = cr == 0 ? read_cr0() : read_cr4();
    check(now == old, "CR%d = %#llx after the MOV, was %#llx", cr, (unsigned long long)now,
          (unsigned long long)old);
}

PROBE(vmx_insn_cr_fixed, "vmx.root.cr_fixed", "VMX",
      "In VMX operation, MOV to CR0 clearing a bit other than PE/PG that IA32_VMX_CR0_FIXED0 "
      "fixes to 1 (NE), MOV to CR4 clearing a bit IA32_VMX_CR4_FIXED0 fixes to 1 (VMXE), and MOV "
      "to CR0/CR4 setting a bit of 31:0 that FIXED1 fixes to 0 each raise #GP(0) and leave the "
      "register unchanged",
      "Intel SDM Vol. 3C 24.8, A.7, A.8", "sdm.24.8.cr0-fixed", "sdm.24.8.cr4-fixed")
{
    const struct vmx_caps *c = vmx_caps();
    vmx_on();
    uint64_t cr0 = read_cr0(), cr4 = read_cr4();
    note("CR0=%#llx FIXED0=%#llx FIXED1=%#llx; CR4=%#llx FIXED0=%#llx FIXED1=%#llx",
         (unsigned long long)cr0, (unsigned long long)c->cr0_fixed0,
         (unsigned long long)c->cr0_fixed1, (unsigned long long)cr4,
         (unsigned long long)c->cr4_fixed0, (unsigned long long)c->cr4_fixed1);
    unsigned n = 0;
    for (unsigned b = 0; b < 32; b++) {
        uint64_t m = 1ull << b;
        /* PE and PG cannot be cleared in 64-bit mode anyway */
        if ((c->cr0_fixed0 & m) && m != CR0_PE && m != CR0_PG)
            try_cr(0, cr0 & ~m, cr0, "clearing FIXED0", b), n++;
        if (!(c->cr0_fixed1 & m))
            try_cr(0, cr0 | m, cr0, "setting FIXED1-zero", b), n++;
        if (c->cr4_fixed0 & m)
            try_cr(4, cr4 & ~m, cr4, "clearing FIXED0", b), n++;
        if (!(c->cr4_fixed1 & m))
            try_cr(4, cr4 | m, cr4, "setting FIXED1-zero", b), n++;
    }
    note("%u MOV to CR0/CR4 tried", n);
}

/* ---- launch states and the VMLAUNCH/VMRESUME errors ------------------------------------- */

static bool run_vmfail(struct vmx_vcpu *v, int launched, uint32_t err, const char *what)
{
    v->launched = (uint64_t)launched;
    uint32_t r = vmx_run(v);
    return check(r == VMX_RUN_VMFAIL && vmx_res_is(v->entry, VMX_FAIL_VALID, err),
                 "%s: want VMfailValid(%u: %s), got %s", what, err, vmx_error_name(err),
                 vmx_exit_str(v));
}

static bool run_exit(struct vmx_vcpu *v, int launched, const char *what)
{
    v->launched = (uint64_t)launched;
    if (!vmx_run_expect(v, EXIT_VMCALL, what))
        return false;
    vmx_skip_insn(v);
    return true;
}

static void check_current(uint64_t want, const char *after)
{
    uint64_t cur = 0;
    if (check_vmx("VMPTRST", vmptrst(&cur), VMX_SUCCEED, 0))
        check(cur == want, "current-VMCS pointer after %s: got %#llx, want %#llx", after,
              (unsigned long long)cur, (unsigned long long)want);
}

PROBE(vmx_insn_two_vmcs, "vmx.root.two_vmcs", "VMX",
      "Two VMCSs A and B: after VMLAUNCH of A, VMPTRLD of B makes B (only) current; VMLAUNCH of "
      "the clear B exits while A stays launched: after VMPTRLD of A, VMRESUME of A exits and "
      "VMLAUNCH of A gives VMfailValid(4); back on B, VMLAUNCH gives VMfailValid(4) and VMRESUME "
      "exits",
      "Intel SDM Vol. 3C 25.1, 25.11.3, 31.3 (VMPTRLD, VMLAUNCH/VMRESUME)", "sdm.25.1.launch-state")
{
    vmx_on();
    struct vmx_vcpu *a = vmx_vcpu_new(vmx_ir_loop_guest);
    if (!run_exit(a, 0, "VMLAUNCH of A"))
        return;
    struct vmx_vcpu *b = vmx_vcpu_new(vmx_ir_loop_guest);
    check_current(b->vmcs_pa, "VMPTRLD of B");
    if (!run_exit(b, 0, "VMLAUNCH of the clear B while A is launched"))
        return;
    if (!check_vmx("VMPTRLD of A", vmptrld(a->vmcs_pa), VMX_SUCCEED, 0))
        return;
    check_current(a->vmcs_pa, "VMPTRLD of A");
    run_exit(a, 1, "VMRESUME of A after B ran");
    run_vmfail(a, 0, VMXERR_VMLAUNCH_NOT_CLEAR, "VMLAUNCH of the launched A");
    if (!check_vmx("VMPTRLD of B", vmptrld(b->vmcs_pa), VMX_SUCCEED, 0))
        return;
    run_vmfail(b, 0, VMXERR_VMLAUNCH_NOT_CLEAR, "VMLAUNCH of the launched B");
    run_exit(b, 1, "VMRESUME of B");
}

/* RFLAGS after MOV SS then VMLAUNCH (the VMCS must not be enterable) */
static uint64_t movss_vmlaunch(void)
{
    uint64_t rf;
    __asm__ volatile("mov %%ss, %%ax\n\tmov %%ax, %%ss\n\tvmlaunch\n\tpushfq\n\tpop %0"
                     : "=r"(rf)
                     :
                     : "rax", "cc", "memory");
    return rf;
}

PROBE(vmx_insn_vmlaunch_errors, "vmx.root.vmlaunch_errors", "VMX",
      "With a pin-based control set that the pin-based capability MSR does not allow to be 1: "
      "VMLAUNCH of the launched VMCS gives VMfailValid(4), VMRESUME of it after VMCLEAR "
      "VMfailValid(5), VMLAUNCH "
      "VMfailValid(7), and VMLAUNCH right after MOV SS VMfailValid(26) (the basic checks come "
      "first); with valid controls and a non-canonical host GDTR base, VMfailValid(8); restored, "
      "VMLAUNCH exits",
      "Intel SDM Vol. 3C 27.1, 27.2, 31.3 (VMLAUNCH/VMRESUME), 31.4", "sdm.31.3.vmlaunch-errors")
{
    const struct vmx_caps *c = vmx_caps();
    uint32_t res = ~c->ctl[VMX_CTL_PIN].may1;
    if (!res)
        fail("%s allows every pin-based control bit: no reserved bit", vmx_ctl_name(VMX_CTL_PIN));
    uint32_t bad = res & -res;
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ir_loop_guest);
    if (!run_exit(v, 0, "VMLAUNCH"))
        return;
    uint64_t pin = vmcs_read(VMCS_PIN_CTLS);
    vmcs_write(VMCS_PIN_CTLS, pin | bad);
    note("pin-based controls %#llx with the reserved bit %#x", (unsigned long long)pin, bad);
    run_vmfail(v, 0, VMXERR_VMLAUNCH_NOT_CLEAR, "VMLAUNCH of a launched VMCS with a bad control");
    if (!check_vmx("VMCLEAR", vmclear(v->vmcs_pa), VMX_SUCCEED, 0) ||
        !check_vmx("VMPTRLD", vmptrld(v->vmcs_pa), VMX_SUCCEED, 0))
        return;
    run_vmfail(v, 1, VMXERR_VMRESUME_NOT_LAUNCHED, "VMRESUME of a clear VMCS with a bad control");
    if (run_vmfail(v, 0, VMXERR_ENTRY_BAD_CTRL, "VMLAUNCH of a clear VMCS with a bad control")) {
        uint64_t rf = movss_vmlaunch();
        if (check((rf & ARITH_FLAGS) == FLAG_ZF,
                  "VMLAUNCH after MOV SS with a bad control: got %s, want VMfailValid",
                  flags_str(rf)))
            check_eq("VM-instruction error after MOV SS + VMLAUNCH", insn_error(),
                     VMXERR_ENTRY_MOVSS_BLOCKING);
    }
    vmcs_write(VMCS_PIN_CTLS, pin);
    struct vc_case hc = {"VMLAUNCH with a non-canonical host GDTR base",
                         VC_HOST,
                         0,
                         1,
                         {{VMCS_HOST_GDTR_BASE, 0x8000000000000000ull}}};
    vc_run(v, &hc);
    run_exit(v, 0, "VMLAUNCH with everything restored");
}

/* ---- INVEPT and INVVPID where the controls cannot be set ----------------------------------- */

static void do_invept(void *p)
{
    uint64_t desc[2] = {0, 0};
    (void)p;
    __asm__ volatile("invept %0, %1" ::"m"(desc), "r"((uint64_t)INVEPT_ALL) : "cc", "memory");
}

static void do_invvpid(void *p)
{
    uint64_t desc[2] = {0, 0};
    (void)p;
    __asm__ volatile("invvpid %0, %1" ::"m"(desc), "r"((uint64_t)INVVPID_ALL) : "cc", "memory");
}

PROBE(vmx_insn_invept_ud, "vmx.root.invept_ud", "EPT",
      "Where IA32_VMX_PROCBASED_CTLS2 does not allow enable EPT (bit 1), INVEPT (all-context) in "
      "VMX root operation raises #UD",
      "Intel SDM Vol. 3C 31.3 (INVEPT)", "sdm.31.3.invept-ud")
{
    if (vmx_ctl_can_set(VMX_CTL_PROC2, PROC2_EPT))
        skip("IA32_VMX_PROCBASED_CTLS2 bit 33 (enable EPT may be 1) set: INVEPT is supported");
    vmx_on();
    struct fault f;
    int vec = catch_fault(do_invept, NULL, &f);
    check(vec == UD_VECTOR, "INVEPT without enable EPT: got %s, want #UD", fault_str(&f));
}

PROBE(vmx_insn_invvpid_ud, "vmx.root.invvpid_ud", "VPID",
      "Where IA32_VMX_PROCBASED_CTLS2 does not allow enable VPID (bit 5), INVVPID (all-context) "
      "in VMX root operation raises #UD",
      "Intel SDM Vol. 3C 31.3 (INVVPID)", "sdm.31.3.invvpid-ud")
{
    if (vmx_ctl_can_set(VMX_CTL_PROC2, PROC2_VPID))
        skip("IA32_VMX_PROCBASED_CTLS2 bit 37 (enable VPID may be 1) set: INVVPID is supported");
    vmx_on();
    struct fault f;
    int vec = catch_fault(do_invvpid, NULL, &f);
    check(vec == UD_VECTOR, "INVVPID without enable VPID: got %s, want #UD", fault_str(&f));
}

/* ---- the capability MSRs against what the instructions do (Appendix A) ------------------- */

PROBE(vmx_insn_vmcs_enum, "vmx.msr.vmcs_enum", "VMX",
      "With a current VMCS, VMREAD of every full encoding (4 widths x 4 types) with an index up "
      "to IA32_VMX_VMCS_ENUM[9:1] + 8 and of the high access of every 64-bit one gives VMsucceed "
      "or VMfailValid(12); none with an index above the reported highest succeeds, some with that "
      "index does, bits 0 and 63:10 of the MSR are 0, and a 64-bit field's high access exists "
      "exactly when its full access does",
      "Intel SDM Vol. 3C A.9, 25.11.2, 31.3 (VMREAD)", "sdm.A.9.vmcs-enum")
{
    const struct vmx_caps *c = vmx_caps();
    unsigned max = VMX_VMCS_ENUM_MAX_INDEX(c->vmcs_enum);
    note("IA32_VMX_VMCS_ENUM=%#llx: highest index %u", (unsigned long long)c->vmcs_enum, max);
    check(!(c->vmcs_enum & ~0x3feull), "IA32_VMX_VMCS_ENUM bits 0, 63:10 (reserved) = %#llx",
          (unsigned long long)(c->vmcs_enum & ~0x3feull));
    vmx_on();
    uint64_t vpa = (uint64_t)(uintptr_t)vmx_alloc_vmcs();
    if (!check_vmx("VMCLEAR", vmclear(vpa), VMX_SUCCEED, 0) ||
        !check_vmx("VMPTRLD", vmptrld(vpa), VMX_SUCCEED, 0))
        return;
    unsigned at_max = 0, supported = 0, bad = 0, top = 0;
    for (unsigned w = 0; w < 4; w++)
        for (unsigned t = 0; t < 4; t++)
            for (unsigned idx = 0; idx <= max + 8 && idx < 512; idx++) {
                uint64_t enc = (w << 13) | (t << 10) | (idx << 1), out = 0;
                struct vmx_res r = vmread(enc, &out);
                bool ok = vmx_ok(r);
                if (!ok && !vmx_res_is(r, VMX_FAIL_VALID, VMXERR_UNSUPPORTED_FIELD) && bad++ < 8)
                    check(false, "VMREAD of %#llx: got %s, want VMsucceed or VMfailValid(12)",
                          (unsigned long long)enc, vmx_res_str(r));
                if (ok && idx > max && bad++ < 8)
                    check(false, "VMREAD of %#llx (index %u) succeeds, above the highest index %u",
                          (unsigned long long)enc, idx, max);
                supported += ok;
                if (ok && idx > top)
                    top = idx;
                at_max += ok && idx == max;
                if (w != VMCS_WIDTH_64)
                    continue;
                struct vmx_res rh = vmread(enc | 1, &out);
                if (vmx_ok(rh) != ok && bad++ < 8)
                    check(false, "VMREAD of %#llx gives %s but of its high access %#llx %s",
                          (unsigned long long)enc, vmx_res_str(r), (unsigned long long)enc | 1,
                          vmx_res_str(rh));
            }
    note("%u supported full encodings, %u with index %u; the highest index in use %u", supported,
         at_max, max, top);
    check(at_max > 0, "no VMCS field has the index %u that IA32_VMX_VMCS_ENUM reports", max);
    check(bad == 0, "%u inconsistent encodings (the first 8 reported)", bad);
}

/* guest: HLT, then VMCALL (the interrupt handler VMCALLs first) */
GUEST(vmx_ir_hlt_guest, "hlt", "vmcall", "ud2");

PROBE(vmx_insn_misc, "vmx.msr.misc", "VMX",
      "IA32_VMX_MISC against VM entry: the CR3-target count it reports (24:16) launches, and if "
      "it is 4 a count of 5 gives VMfailValid(7); each activity state it does not report "
      "(HLT 6, shutdown 7, wait-for-SIPI 8) fails VM entry with exit reason 33; if HLT is "
      "reported, entry in the HLT state with an external interrupt injected runs the guest's "
      "handler",
      "Intel SDM Vol. 3C A.6, 27.2.1.1, 27.3.1.5, 27.6.5", "sdm.A.6.misc")
{
    const struct vmx_caps *c = vmx_caps();
    unsigned n3 = VMX_MISC_CR3_TARGETS(c->misc);
    note("IA32_VMX_MISC=%#llx: timer ratio %u, LMA storing %d, activity HLT/shutdown/SIPI "
         "%d/%d/%d, CR3 targets %u, MSR lists %u, VMWRITE any %d, zero-length injection %d",
         (unsigned long long)c->misc, VMX_MISC_TIMER_RATIO(c->misc),
         !!(c->misc & VMX_MISC_EXIT_SAVES_LMA), !!(c->misc & VMX_MISC_ACT_HLT),
         !!(c->misc & VMX_MISC_ACT_SHUTDOWN), !!(c->misc & VMX_MISC_ACT_WAIT_SIPI), n3,
         VMX_MISC_MSR_LIST_MAX(c->misc), !!(c->misc & VMX_MISC_VMWRITE_ANY),
         !!(c->misc & VMX_MISC_INJECT_ZERO_LEN));
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ir_loop_guest);
    struct vc_case cs[5];
    unsigned n = 0;
    cs[n++] = (struct vc_case){"CR3-target count as IA32_VMX_MISC reports",
                               VC_LAUNCH,
                               0,
                               1,
                               {{VMCS_CR3_TARGET_COUNT, n3}}};
    if (n3 == 4)
        cs[n++] =
            (struct vc_case){"CR3-target count 5", VC_CTL, 0, 1, {{VMCS_CR3_TARGET_COUNT, 5}}};
    static const struct {
        uint64_t bit;
        unsigned state;
        const char *what;
    } act[] = {{VMX_MISC_ACT_HLT, ACTIVITY_HLT, "activity state HLT, not reported"},
               {VMX_MISC_ACT_SHUTDOWN, ACTIVITY_SHUTDOWN, "activity state shutdown, not reported"},
               {VMX_MISC_ACT_WAIT_SIPI, ACTIVITY_WAIT_SIPI,
                "activity state wait-for-SIPI, not reported"}};
    for (unsigned i = 0; i < ARRAY_SIZE(act); i++)
        if (!(c->misc & act[i].bit))
            cs[n++] = (struct vc_case){act[i].what,
                                       VC_GUEST,
                                       0,
                                       1,
                                       {{VMCS_GUEST_ACTIVITY_STATE, act[i].state}}};
    v->watchdog = "the VMCALL or VM-entry failure";
    vc_run_all(v, cs, n);
    v->watchdog = NULL;
    if (!(c->misc & VMX_MISC_ACT_HLT))
        return;
    vmx_setup_vmcs(v, vmx_ir_hlt_guest);
    vmx_guest_idt(v);
    vmcs_write(VMCS_GUEST_ACTIVITY_STATE, ACTIVITY_HLT);
    vmcs_write(VMCS_GUEST_RFLAGS, 0x202);
    vmcs_write(VMCS_ENTRY_INTR_INFO, INTR_INFO_VALID | (INTR_TYPE_EXT_INTR << 8) | 0x30);
    v->launched = 0;
    v->watchdog = "the handler's VMCALL for the injected interrupt";
    if (vmx_run_expect(v, EXIT_VMCALL, "VM entry in the HLT state with an interrupt injected")) {
        check_eq("guest RAX (the handler's VMCALL)", v->gpr[VMX_GPR_RAX], VMX_GUEST_EVENT);
        check_eq("vector the handler saw", v->gpr[VMX_GPR_RBX], 0x30);
    }
    v->watchdog = NULL;
}

static const char *const proc2_bit_name[32] =
    {"secondary control bit 0",  "secondary control bit 1",  "secondary control bit 2",
     "secondary control bit 3",  "secondary control bit 4",  "secondary control bit 5",
     "secondary control bit 6",  "secondary control bit 7",  "secondary control bit 8",
     "secondary control bit 9",  "secondary control bit 10", "secondary control bit 11",
     "secondary control bit 12", "secondary control bit 13", "secondary control bit 14",
     "secondary control bit 15", "secondary control bit 16", "secondary control bit 17",
     "secondary control bit 18", "secondary control bit 19", "secondary control bit 20",
     "secondary control bit 21", "secondary control bit 22", "secondary control bit 23",
     "secondary control bit 24", "secondary control bit 25", "secondary control bit 26",
     "secondary control bit 27", "secondary control bit 28", "secondary control bit 29",
     "secondary control bit 30", "secondary control bit 31"};

PROBE(vmx_insn_procbased2, "vmx.msr.procbased2", "VMX",
      "IA32_VMX_PROCBASED_CTLS2 (present as activate secondary controls may be 1) reads without "
      "fault; with activate secondary controls and the secondary controls at its allowed-0 "
      "setting (bits 31:0) VMLAUNCH exits; with each secondary control whose allowed-1 bit "
      "(63:32) is 0 set, or each one bits 31:0 require cleared, it gives VMfailValid(7)",
      "Intel SDM Vol. 3C A.3.3, 27.2.1.1", "sdm.A.3.3.procbased2")
{
    const struct vmx_caps *c = vmx_caps();
    if (!c->has_proc2)
        skip("%s bit 63 (activate secondary controls may be 1) clear: no "
             "IA32_VMX_PROCBASED_CTLS2",
             vmx_ctl_name(VMX_CTL_PROC));
    uint64_t raw = 0;
    if (!check(rdmsr_safe(MSR_IA32_VMX_PROCBASED_CTLS2, &raw) == NO_FAULT,
               "RDMSR IA32_VMX_PROCBASED_CTLS2 faulted"))
        return;
    uint32_t must1 = (uint32_t)raw, may1 = (uint32_t)(raw >> 32);
    note("IA32_VMX_PROCBASED_CTLS2=%#llx", (unsigned long long)raw);
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ir_loop_guest);
    vmcs_set_bits(VMCS_PROC_CTLS, PROC_SECONDARY_CTLS);
    vmcs_write(VMCS_PROC_CTLS2, must1);
    struct vc_case cs[32];
    unsigned n = 0, n0 = 0;
    for (unsigned b = 0; b < 32; b++) {
        uint32_t m = 1u << b;
        if (!(may1 & m)) {
            cs[n++] =
                (struct vc_case){proc2_bit_name[b], VC_CTL, 0, 1, {{VMCS_PROC_CTLS2, must1 | m}}};
        } else if (must1 & m) {
            cs[n++] =
                (struct vc_case){proc2_bit_name[b], VC_CTL, 0, 1, {{VMCS_PROC_CTLS2, must1 & ~m}}};
            n0++;
        }
    }
    note("%u secondary controls not allowed 1, %u not allowed 0", n - n0, n0);
    vc_run_all(v, cs, n);
}

PROBE(vmx_insn_vmfunc_msr, "vmx.msr.vmfunc", "VMFUNC",
      "With enable VM functions, IA32_VMX_VMFUNC reads without fault; VMLAUNCH with VM-function "
      "controls 0 exits, with each VM-function control bit the MSR does not report gives "
      "VMfailValid(7), and with EPTP switching (bit 0) where reported, EPT and a valid EPTP list "
      "exits",
      "Intel SDM Vol. 3C A.11, 25.6.14, 27.2.1.1", "sdm.A.11.vmfunc")
{
    vmx_require_ctl(VMX_CTL_PROC2, PROC2_VMFUNC, "enable VM functions");
    uint64_t raw = 0;
    if (!check(rdmsr_safe(MSR_IA32_VMX_VMFUNC, &raw) == NO_FAULT,
               "RDMSR IA32_VMX_VMFUNC faulted with enable VM functions allowed"))
        return;
    note("IA32_VMX_VMFUNC=%#llx", (unsigned long long)raw);
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ir_loop_guest);
    vmcs_set_bits(VMCS_PROC_CTLS, PROC_SECONDARY_CTLS);
    vmcs_set_bits(VMCS_PROC_CTLS2, PROC2_VMFUNC);
    vmcs_write(VMCS_VMFUNC_CTRL, 0);
    static const char *const names[8] =
        {"VM-function control bit 1",  "VM-function control bit 2",  "VM-function control bit 3",
         "VM-function control bit 7",  "VM-function control bit 15", "VM-function control bit 31",
         "VM-function control bit 32", "VM-function control bit 63"};
    static const unsigned bits[8] = {1, 2, 3, 7, 15, 31, 32, 63};
    struct vc_case cs[8];
    unsigned n = 0;
    for (unsigned i = 0; i < 8; i++)
        if (!(raw & (1ull << bits[i])))
            cs[n++] =
                (struct vc_case){names[i], VC_CTL, 0, 1, {{VMCS_VMFUNC_CTRL, 1ull << bits[i]}}};
    vc_run_all(v, cs, n);
    if (!(raw & 1) || !vmx_ctl_can_set(VMX_CTL_PROC2, PROC2_EPT))
        return;
    uint64_t eptp = vmx_ept_identity();
    uint64_t *list = alloc_page();
    list[0] = eptp;
    vmx_use_ept(v, eptp);
    vmcs_write(VMCS_EPTP_LIST_ADDR, (uintptr_t)list);
    struct vc_case ok = {"EPTP switching with EPT and an EPTP list",
                         VC_LAUNCH,
                         0,
                         1,
                         {{VMCS_VMFUNC_CTRL, 1}}};
    vc_run(v, &ok);
}

PROBE(vmx_insn_ept_vpid_cap, "vmx.msr.ept_vpid_cap", "EPT",
      "IA32_VMX_EPT_VPID_CAP against VM entry with enable EPT: an EPTP with memory type UC (bit "
      "8) or WB (bit 14) launches exactly when reported, else VMfailValid(7); a 5-level walk not "
      "reported (bit 7) gives VMfailValid(7); memory types 1, 2, 3, 4, 5, 7 and walk lengths 1, 2, "
      "3 "
      "give VMfailValid(7); EPTP bit 6 (A/D flags) launches exactly when bit 21 is reported",
      "Intel SDM Vol. 3C A.10, 25.6.11, 27.2.1.1", "sdm.A.10.ept-vpid-cap")
{
    vmx_require_ctl(VMX_CTL_PROC2, PROC2_EPT, "enable EPT");
    const struct vmx_caps *c = vmx_caps();
    uint64_t cap = c->ept_vpid;
    note("IA32_VMX_EPT_VPID_CAP=%#llx", (unsigned long long)cap);
    vmx_on();
    uint64_t eptp = vmx_ept_identity();
    uint64_t base = eptp & ~0xfffull;
    unsigned mt = (cap & VMX_EPT_MT_WB) ? VMX_MEMTYPE_WB : VMX_MEMTYPE_UC;
    unsigned pwl = (cap & VMX_EPT_PWL4) ? 4 : 5;
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_ir_loop_guest);
    vmx_use_ept(v, eptp);
#define EPTP_CASE(what, want, val)      \
    (struct vc_case)                    \
    {                                   \
        what, want, 0, 1,               \
        {                               \
            {                           \
                VMCS_EPTP, base | (val) \
            }                           \
        }                               \
    }
    struct vc_case cs[16];
    unsigned n = 0;
    cs[n++] = EPTP_CASE("EPTP memory type UC", (cap & VMX_EPT_MT_UC) ? VC_LAUNCH : VC_CTL,
                        EPTP_MT(0) | EPTP_PWL(pwl));
    cs[n++] = EPTP_CASE("EPTP memory type WB", (cap & VMX_EPT_MT_WB) ? VC_LAUNCH : VC_CTL,
                        EPTP_MT(6) | EPTP_PWL(pwl));
    static const unsigned badmt[] = {1, 2, 3, 4, 5, 7};
    static const char *const badmt_name[] = {"EPTP memory type 1", "EPTP memory type 2",
                                             "EPTP memory type 3", "EPTP memory type 4",
                                             "EPTP memory type 5", "EPTP memory type 7"};
    for (unsigned i = 0; i < ARRAY_SIZE(badmt); i++)
        cs[n++] = EPTP_CASE(badmt_name[i], VC_CTL, EPTP_MT(badmt[i]) | EPTP_PWL(pwl));
    /* a 5-level walk of these 4-level tables would not run the guest: only the failure */
    if (pwl == 4 && !(cap & VMX_EPT_PWL5))
        cs[n++] = EPTP_CASE("EPTP 5-level walk, not reported", VC_CTL, EPTP_MT(mt) | EPTP_PWL(5));
    cs[n++] = EPTP_CASE("EPTP walk length 1", VC_CTL, EPTP_MT(mt) | EPTP_PWL(1));
    cs[n++] = EPTP_CASE("EPTP walk length 2", VC_CTL, EPTP_MT(mt) | EPTP_PWL(2));
    cs[n++] = EPTP_CASE("EPTP walk length 3", VC_CTL, EPTP_MT(mt) | EPTP_PWL(3));
    cs[n++] = EPTP_CASE("EPTP with A/D flags (bit 6)", (cap & VMX_EPT_AD) ? VC_LAUNCH : VC_CTL,
                        EPTP_MT(mt) | EPTP_PWL(pwl) | EPTP_AD);
#undef EPTP_CASE
    vc_run_all(v, cs, n);
}
