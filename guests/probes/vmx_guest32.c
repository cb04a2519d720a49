/* SPDX-License-Identifier: MIT */
/*
 * A 32-bit protected-mode guest with PAE paging (IA-32e mode guest = 0):
 * the VM-entry checks on its PDPTEs, loaded from CR3 or, with EPT, from
 * the VMCS fields (SDM Vol. 3C 27.3.1.6, exit qualification 2), and task
 * switches, which exit unconditionally (exit reason 9) with the source and
 * the TSS selector in the qualification.
 */
#include "vmx_cases.h"

#define G32_CS      0x08
#define G32_DS      0x10
#define G32_TSS_AV  0x50 /* available 32-bit TSS: target of JMP/CALL/task gate */
#define G32_TSS_BSY 0x58 /* busy 32-bit TSS: back link target of IRET */
#define G32_TR      0x60 /* the guest's current task (busy) */
#define G32_VEC     0x80 /* task gate in the guest IDT */

struct g32 {
    struct vmx_vcpu *v;
    uint64_t *pdpt;
    uint8_t *code;
    uint32_t *tr_tss;
};

static uint64_t tss_desc(uint64_t base, unsigned type)
{
    uint64_t lim = 0x67;
    return (lim & 0xffff) | ((base & 0xffffff) << 16) | ((uint64_t)type << 40) | (1ull << 47) |
           (((lim >> 16) & 0xf) << 48) | (((base >> 24) & 0xff) << 56);
}

/* guest: VMCALL; UD2 at the start of code */
static void g32_setup(struct g32 *g)
{
    vmx_require_ctl(VMX_CTL_ENTRY, ENTRY_LOAD_EFER, "load IA32_EFER (entry)");
    if (!vmx_ctl_can_clear(VMX_CTL_ENTRY, ENTRY_IA32E_GUEST))
        skip("IA-32e mode guest cannot be 0");
    vmx_on();
    g->code = alloc_page();
    static const uint8_t vmcall[] = {0x0f, 0x01, 0xc1, 0x0f, 0x0b};
    memcpy(g->code, vmcall, sizeof(vmcall));
    /* PAE paging: PDPTE 0 -> a PD of 2 MiB pages mapping the low 1 GiB */
    g->pdpt = alloc_page();
    uint64_t *pd = alloc_page();
    for (unsigned i = 0; i < 512; i++)
        pd[i] = ((uint64_t)i << 21) | 0x83;
    g->pdpt[0] = (uintptr_t)pd | 1;
    /* GDT, TSSs and an IDT with a task gate */
    uint64_t *gdt = alloc_page();
    gdt[G32_CS >> 3] = 0x00cf9b000000ffffull;
    gdt[G32_DS >> 3] = 0x00cf93000000ffffull;
    uint64_t tss_av = (uintptr_t)alloc_page(), tss_bsy = (uintptr_t)alloc_page();
    g->tr_tss = alloc_page();
    gdt[G32_TSS_AV >> 3] = tss_desc(tss_av, 9);
    gdt[G32_TSS_BSY >> 3] = tss_desc(tss_bsy, 11);
    gdt[G32_TR >> 3] = tss_desc((uintptr_t)g->tr_tss, 11);
    g->tr_tss[0] = G32_TSS_BSY; /* back link, for IRET with NT=1 */
    uint64_t *idt = alloc_page();
    idt[G32_VEC] = ((uint64_t)G32_TSS_AV << 16) | (0x85ull << 40); /* task gate, P, DPL 0 */

    g->v = vmx_vcpu_new((void (*)(void))(uintptr_t)g->code);
    vmcs_clear_bits(VMCS_ENTRY_CTLS, ENTRY_IA32E_GUEST);
    vmcs_set_bits(VMCS_ENTRY_CTLS, ENTRY_LOAD_EFER);
    vmcs_write(VMCS_GUEST_EFER, rdmsr(MSR_EFER) & ~(EFER_LME | EFER_LMA));
    vmcs_write(VMCS_GUEST_CR4, (read_cr4() | CR4_PAE) & ~(BIT(17) | BIT(12))); /* PCIDE, LA57 */
    vmcs_write(VMCS_GUEST_CR3, (uintptr_t)g->pdpt);
    for (unsigned s = 0; s < 6; s++) {
        uint32_t off = 2 * s;
        bool cs = s == 1, usable = s < 4;
        vmcs_write(VMCS_GUEST_ES_SEL + off, !usable ? 0 : cs ? G32_CS : G32_DS);
        vmcs_write(VMCS_GUEST_ES_BASE + off, 0);
        vmcs_write(VMCS_GUEST_ES_LIMIT + off, 0xffffffffu);
        vmcs_write(VMCS_GUEST_ES_AR + off, !usable ? VMX_AR_UNUSABLE
                                                   : (VMX_AR_TYPE(cs ? 11 : 3) | VMX_AR_S |
                                                      VMX_AR_P | VMX_AR_DB | VMX_AR_G));
    }
    vmcs_write(VMCS_GUEST_TR_SEL, G32_TR);
    vmcs_write(VMCS_GUEST_TR_BASE, (uintptr_t)g->tr_tss);
    vmcs_write(VMCS_GUEST_TR_LIMIT, 0x67);
    vmcs_write(VMCS_GUEST_TR_AR, VMX_AR_TYPE(11) | VMX_AR_P);
    vmcs_write(VMCS_GUEST_GDTR_BASE, (uintptr_t)gdt);
    vmcs_write(VMCS_GUEST_GDTR_LIMIT, 0xff);
    vmcs_write(VMCS_GUEST_IDTR_BASE, (uintptr_t)idt);
    vmcs_write(VMCS_GUEST_IDTR_LIMIT, 0x7ff);
    vmcs_write(VMCS_GUEST_FS_BASE, 0);
    vmcs_write(VMCS_GUEST_GS_BASE, 0);
    vmcs_write(VMCS_GUEST_SYSENTER_ESP, 0);
    vmcs_write(VMCS_GUEST_SYSENTER_EIP, 0);
    vmcs_write(VMCS_GUEST_RSP, (uintptr_t)alloc_page() + 4096);
    vmcs_write(VMCS_GUEST_RIP, (uintptr_t)g->code);
    vmcs_write(VMCS_GUEST_RFLAGS, 0x2);
}

PROBE(vmx_guest32_pdpte, "vmx.entry.guest_pdpte", "VMX",
      "A 32-bit guest with PAE paging (CR0.PG=1, CR4.PAE=1, IA-32e mode guest = 0) launches and "
      "runs its VMCALL; with enable EPT = 0 and its PDPTE 0 in memory having reserved bit 1 (or "
      "bit 5) set, VM entry fails with exit reason 0x80000021 and qualification 2 (PDPTE "
      "loading); a not-present PDPTE 1 with reserved bits does not fail. With EPT the PDPTE "
      "fields of the VMCS are checked instead: reserved bit 1 in GUEST_PDPTE0 fails with "
      "qualification 2 while the PDPTEs in memory are valid, and valid fields launch while the "
      "PDPTE in memory is bad",
      "Intel SDM Vol. 3C 27.3.1.6, 27.8, Vol. 3A 4.4.1", "sdm.27.3.1.6.pdpte-ept",
      "sdm.27.3.1.6.pdpte-cr3", "sdm.27.3.2.4.pdptr-load", "sdm.27.8.failed-entry-qualification")
{
    struct g32 g;
    g32_setup(&g);
    struct vmx_vcpu *v = g.v;
    vc_baseline(v);
    uint64_t good = g.pdpt[0];
    struct {
        uint64_t val0, val1;
        uint32_t want;
        uint64_t qual;
        const char *what;
    } mem[] = {
        {good | BIT(1), 0, VC_GUEST, ENTRY_FAIL_QUAL_PDPTE, "PDPTE 0 in memory with bit 1"},
        {good | BIT(5), 0, VC_GUEST, ENTRY_FAIL_QUAL_PDPTE, "PDPTE 0 in memory with bit 5"},
        {good, 0x26, VC_LAUNCH, 0, "not-present PDPTE 1 with bits 1, 2, 5"},
    };
    for (unsigned i = 0; i < ARRAY_SIZE(mem); i++) {
        g.pdpt[0] = mem[i].val0;
        g.pdpt[1] = mem[i].val1;
        const struct vc_case c = {mem[i].what, mem[i].want, mem[i].qual, 0, {{0, 0}}};
        vc_run(v, &c);
    }
    g.pdpt[0] = good;
    g.pdpt[1] = 0;
    if (!vmx_ctl_can_set(VMX_CTL_PROC2, PROC2_EPT)) {
        note("EPT not allowed: the PDPTE-field cases not tried");
        return;
    }
    uint64_t eptp = vmx_ept_identity();
    vmx_use_ept(v, eptp);
    vmcs_write(VMCS_GUEST_PDPTE0, good);
    vmcs_write(VMCS_GUEST_PDPTE1, 0);
    vmcs_write(VMCS_GUEST_PDPTE2, 0);
    vmcs_write(VMCS_GUEST_PDPTE3, 0);
    const struct vc_case c1 = {"EPT: GUEST_PDPTE0 with bit 1, memory valid",
                               VC_GUEST,
                               ENTRY_FAIL_QUAL_PDPTE,
                               1,
                               {{VMCS_GUEST_PDPTE0, good | BIT(1)}}};
    vc_run(v, &c1);
    g.pdpt[0] = good | BIT(1);
    const struct vc_case c2 = {"EPT: valid GUEST_PDPTE0, PDPTE in memory with bit 1",
                               VC_LAUNCH,
                               0,
                               0,
                               {{0, 0}}};
    vc_run(v, &c2);
    g.pdpt[0] = good;
}

PROBE(vmx_guest32_task_switch, "vmx.intercept.task_switch", "VMX",
      "Task switches in a 32-bit guest exit unconditionally with reason 9 at the instruction, "
      "qualification = TSS selector | source << 30: JMP FAR to an available TSS (source 2, "
      "length 7), CALL FAR to it (source 0, length 7), IRET with RFLAGS.NT=1 to the busy TSS in "
      "the back link (source 1, length 1), INT 0x80 through a task gate (source 3, IDT-vectoring "
      "information valid: software interrupt 0x80)",
      "Intel SDM Vol. 3C 26.4.2, 28.2.1 (Table 28-2), 28.2.4", "sdm.C.reason-9-task-switch",
      "sdm.26.4.2.task-switch", "sdm.28.2.1.qual-task-switch", "sdm.28.2.3.idt-vectoring")
{
    struct g32 g;
    g32_setup(&g);
    struct vmx_vcpu *v = g.v;
    static const uint8_t code[] = {
        0xea, 0,       0,    0,    0,    G32_TSS_AV, 0, /* 0: ljmp $0x50, $0 */
        0x9a, 0,       0,    0,    0,    G32_TSS_AV, 0, /* 7: lcall $0x50, $0 */
        0xcf,                                           /* 14: iret */
        0xcd, G32_VEC,                                  /* 15: int $0x80 */
        0x0f, 0x01,    0xc1, 0x0f, 0x0b,                /* 17: vmcall; ud2 */
    };
    memcpy(g.code, code, sizeof(code));
    const uint64_t base = (uintptr_t)g.code;
    static const struct {
        unsigned off, len;
        uint32_t qual;
        const char *what;
    } ts[] = {
        {0, 7, (2u << 30) | G32_TSS_AV, "JMP FAR to an available TSS"},
        {7, 7, (0u << 30) | G32_TSS_AV, "CALL FAR to an available TSS"},
        {14, 1, (1u << 30) | G32_TSS_BSY, "IRET with NT=1"},
        {15, 2, (3u << 30) | G32_TSS_AV, "INT 0x80 through a task gate"},
    };
    for (unsigned i = 0; i < ARRAY_SIZE(ts); i++) {
        vmcs_write(VMCS_GUEST_RIP, base + ts[i].off);
        vmcs_write(VMCS_GUEST_RFLAGS, ts[i].off == 14 ? 0x4002 : 0x2);
        if (!vmx_run_expect(v, EXIT_TASK_SWITCH, ts[i].what))
            continue;
        check(v->guest_rip == base + ts[i].off, "%s: guest RIP %#llx, want %#llx", ts[i].what,
              (unsigned long long)v->guest_rip, (unsigned long long)(base + ts[i].off));
        check(v->exit_qual == ts[i].qual, "%s: exit qualification %#llx, want %#x", ts[i].what,
              (unsigned long long)v->exit_qual, ts[i].qual);
        if (ts[i].off == 15) {
            uint32_t want = INTR_INFO_VALID | (INTR_TYPE_SW_INTR << 8) | G32_VEC;
            check((v->idt_info & ~INTR_INFO_NMI_UNBLOCK) == want,
                  "%s: IDT-vectoring information %#x, want %#x", ts[i].what, v->idt_info, want);
        } else {
            check(!(v->idt_info & INTR_INFO_VALID), "%s: IDT-vectoring information %#x valid",
                  ts[i].what, v->idt_info);
        }
        check(v->insn_len == ts[i].len, "%s: VM-exit instruction length %u, want %u", ts[i].what,
              v->insn_len, ts[i].len);
    }
    vmcs_write(VMCS_GUEST_RIP, base + 17);
    vmcs_write(VMCS_GUEST_RFLAGS, 0x2);
    vmx_run_expect(v, EXIT_VMCALL, "the 32-bit guest's VMCALL after the task switches");
}

#define F(field, val)  \
    {                  \
        (field), (val) \
    }

PROBE(vmx_guest32_state, "vmx.entry.guest32_state", "VMX",
      "Guest-state checks of a 32-bit guest (IA-32e mode guest = 0, PAE paging), each a VM-entry "
      "failure (0x80000021, qualification 0): CR4.PCIDE=1; EFER.LMA=1; EFER.LME=1 with CR0.PG=1; "
      "RIP bit 32 set; CS base bit 32 set; TR type 9 (available). TR type 3 (16-bit busy TSS, "
      "allowed outside IA-32e mode) launches",
      "Intel SDM Vol. 3C 27.3.1.1, 27.3.1.2, 27.3.1.4", "sdm.27.3.1.1.non-ia32e-pcide",
      "sdm.27.3.1.1.efer-lma", "sdm.27.3.1.4.rip-high", "sdm.27.3.1.2.base-high-zero",
      "sdm.27.3.1.2.tr-type")
{
    struct g32 g;
    g32_setup(&g);
    struct vmx_vcpu *v = g.v;
    vc_baseline(v);
    uint64_t cr4 = vmcs_read(VMCS_GUEST_CR4), efer = vmcs_read(VMCS_GUEST_EFER);
    uint64_t rip = vmcs_read(VMCS_GUEST_RIP);
    const struct vc_case cs[] = {
        {"CR4.PCIDE=1 outside IA-32e mode", VC_GUEST, 0, 1, {F(VMCS_GUEST_CR4, cr4 | BIT(17))}},
        {"EFER.LMA=1 with IA-32e mode guest 0",
         VC_GUEST,
         0,
         1,
         {F(VMCS_GUEST_EFER, efer | EFER_LMA)}},
        {"EFER.LME=1 with CR0.PG=1, IA-32e mode guest 0",
         VC_GUEST,
         0,
         1,
         {F(VMCS_GUEST_EFER, efer | EFER_LME)}},
        {"RIP bit 32", VC_GUEST, 0, 1, {F(VMCS_GUEST_RIP, rip | BIT(32))}},
        {"CS base bit 32", VC_GUEST, 0, 1, {F(VMCS_GUEST_CS_BASE, BIT(32))}},
        {"TR type 9 (available TSS)",
         VC_GUEST,
         0,
         1,
         {F(VMCS_GUEST_TR_AR, VMX_AR_TYPE(9) | VMX_AR_P)}},
        {"TR type 3 (16-bit busy TSS)",
         VC_LAUNCH,
         0,
         1,
         {F(VMCS_GUEST_TR_AR, VMX_AR_TYPE(3) | VMX_AR_P)}},
    };
    v->watchdog = "the VM-entry failure (0x80000021)";
    vc_run_all(v, cs, ARRAY_SIZE(cs));
    v->watchdog = NULL;
}

#define V86_CS 0x1000 /* CS base 0x10000: a guest page table maps it onto the code */
#define V86_SS 0x2000

PROBE(vmx_guest32_v8086, "vmx.entry.guest_v8086", "VMX",
      "A virtual-8086 guest (RFLAGS.VM=1 under a 32-bit protected-mode guest state) whose six "
      "segments have base = selector << 4, limit 0xffff and access rights 0xf3 enters and exits "
      "at its CPUID (reason 10, RIP 0); VM entry fails (0x80000021, qualification 0) with CS base "
      "!= selector << 4, with a DS limit of 0x1ffff, with SS access rights 0x93 (DPL 0), and with "
      "IA-32e mode guest = 1",
      "Intel SDM Vol. 3C 27.3.1.2, 27.3.1.4", "sdm.27.3.1.2.v86-base", "sdm.27.3.1.2.v86-limit",
      "sdm.27.3.1.2.v86-ar", "sdm.27.3.1.4.rflags-vm")
{
    struct g32 g;
    g32_setup(&g);
    struct vmx_vcpu *v = g.v;
    /* the low 2 MiB of the guest through a page table with U=1; linear 0x10000 -> the code */
    uint64_t *pd = (uint64_t *)(uintptr_t)(g.pdpt[0] & EPT_ADDR_MASK);
    uint64_t *pt = alloc_page();
    for (unsigned i = 0; i < 512; i++)
        pt[i] = ((uint64_t)i << 12) | 7;
    pt[V86_CS >> 8] = (uintptr_t)g.code | 7;
    uint8_t *stack = alloc_page();
    pt[V86_SS >> 8] = (uintptr_t)stack | 7;
    pd[0] = (uintptr_t)pt | 7;
    static const uint8_t code[] = {0x0f, 0xa2, 0x0f, 0x0b}; /* cpuid; ud2 */
    memcpy(g.code, code, sizeof(code));
    for (unsigned s = 0; s < 6; s++) {
        uint32_t off = 2 * s;
        uint16_t sel = s == 1 ? V86_CS : s == 2 ? V86_SS : 0;
        vmcs_write(VMCS_GUEST_ES_SEL + off, sel);
        vmcs_write(VMCS_GUEST_ES_BASE + off, (uint64_t)sel << 4);
        vmcs_write(VMCS_GUEST_ES_LIMIT + off, 0xffff);
        vmcs_write(VMCS_GUEST_ES_AR + off, 0xf3);
    }
    vmcs_write(VMCS_GUEST_RIP, 0);
    vmcs_write(VMCS_GUEST_RSP, 0xff0);
    vmcs_write(VMCS_GUEST_RFLAGS, 0x20002);
    v->launched = 0;
    if (vmx_run_expect(v, EXIT_CPUID, "the virtual-8086 guest's CPUID"))
        check_eq("guest RIP (IP) at the CPUID exit", v->guest_rip, 0);
    if (v->launched) {
        vmclear(v->vmcs_pa);
        vmptrld(v->vmcs_pa);
        v->launched = 0;
    }
    vmcs_write(VMCS_GUEST_RIP, 0);
    const struct vc_case cs[] = {
        {"v8086: CS base != selector << 4",
         VC_GUEST,
         0,
         1,
         {F(VMCS_GUEST_CS_BASE, ((uint64_t)V86_CS << 4) + 0x10)}},
        {"v8086: DS limit 0x1ffff", VC_GUEST, 0, 1, {F(VMCS_GUEST_DS_LIMIT, 0x1ffff)}},
        {"v8086: SS access rights 0x93", VC_GUEST, 0, 1, {F(VMCS_GUEST_SS_AR, 0x93)}},
        {"v8086 with IA-32e mode guest 1",
         VC_GUEST,
         0,
         1,
         {F(VMCS_ENTRY_CTLS, vmcs_read(VMCS_ENTRY_CTLS) | ENTRY_IA32E_GUEST)}},
    };
    unsigned ok = 0;
    for (unsigned i = 0; i < ARRAY_SIZE(cs); i++)
        ok += vc_run(v, &cs[i]);
    note("%u of %u cases as required", ok, (unsigned)ARRAY_SIZE(cs));
}
