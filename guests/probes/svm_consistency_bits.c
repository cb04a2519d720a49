/* SPDX-License-Identifier: MIT */
/*
 * SVM VMRUN consistency checks, every bit of each register on the APM's
 * list (AMD APM Vol. 2 15.5.1, "Canonicalization and Consistency Checks"):
 * CR0[63:32], the MBZ bits of CR3, CR4 and EFER, DR6[63:32], DR7[63:32],
 * the IOPM/MSRPM base addresses, the reserved event types of EVENTINJ
 * (15.20), and the canonicalization of the segment bases VMRUN and VMLOAD
 * load.
 *
 * svm_consistency.c checks one bit of each register; here each probe
 * sweeps one register: for every bit the VMCB is restored from a copy
 * taken after a control run, that one bit is set, and VMRUN must exit
 * with VMEXIT_INVALID (-1). Each bit VMRUN accepts is its own failed
 * check naming the bit and the exit; a final run of the restored VMCB
 * must reach the guest's VMMCALL again. As in svm_consistency.c, EXITCODE
 * = 0xffffffff (VMEXIT_INVALID written as 32 bits) counts as refused here,
 * with a NOTE: its width is svm.basic.asid_zero's subject.
 */
#include "nvct.h"
#include "svm.h"

struct sweep {
    struct svm_vcpu v;
    struct vmcb good; /* the VMCB as the control run left it, RIP at the VMMCALL */
    unsigned refused, accepted;
    bool noted32;
};

static void sweep_begin(struct sweep *s)
{
    svm_require();
    memset(s, 0, sizeof(*s));
    svm_vcpu_init(&s->v, (svm_guest_fn)(uintptr_t)guest_vmmcall, 0);
    uint64_t code = svm_run(&s->v);
    if (code != SVM_EXIT_VMMCALL)
        error("control VMRUN of the unchanged VMCB: %s", svm_exit_str(&s->v));
    s->v.vmcb->save.rip = A(guest_vmmcall);
    memcpy(&s->good, s->v.vmcb, sizeof(s->good));
}

/* The VMCB as it was after the control run. */
static struct vmcb *sweep_reset(struct sweep *s)
{
    memcpy(s->v.vmcb, &s->good, sizeof(s->good));
    return s->v.vmcb;
}

/* VMRUN of the VMCB as the caller left it must give VMEXIT_INVALID. */
static bool sweep_expect_invalid(struct sweep *s, const char *what)
{
    uint64_t code = svm_run(&s->v);
    if (code == 0xffffffffull) {
        if (!s->noted32)
            note("%s: EXITCODE = 0xffffffff, upper half 0 (see svm.basic.asid_zero)", what);
        s->noted32 = true;
        code = SVM_EXIT_INVALID;
    }
    if (check(code == SVM_EXIT_INVALID, "%s: VMRUN accepted it, want VMEXIT_INVALID (-1), got %s",
              what, svm_exit_str(&s->v))) {
        s->refused++;
        return true;
    }
    s->accepted++;
    return false;
}

static void sweep_end(struct sweep *s, const char *what)
{
    sweep_reset(s);
    uint64_t code = svm_run(&s->v);
    svm_check_exit(&s->v, code, SVM_EXIT_VMMCALL, "VMRUN of the restored VMCB");
    note("%s: %u refused, %u accepted", what, s->refused, s->accepted);
}

/* Sets each bit of `mask` in turn in the 64-bit VMCB field at `off`. */
static void sweep_field(struct sweep *s, const char *name, size_t off, uint64_t mask)
{
    char what[96];
    for (unsigned b = 0; b < 64; b++) {
        if (!(mask & BIT(b)))
            continue;
        uint64_t *f = (uint64_t *)((uint8_t *)sweep_reset(s) + off);
        *f |= BIT(b);
        snprintf(what, sizeof(what), "VMRUN with guest %s bit %u set (%#llx)", name, b,
                 (unsigned long long)*f);
        sweep_expect_invalid(s, what);
    }
}

#define SAVE_OFF(field) (offsetof(struct vmcb, save) + offsetof(struct vmcb_save, field))
#define HIGH32          0xffffffff00000000ull

/* Bits MAXPHYADDR..63. */
static uint64_t above_maxphyaddr(void)
{
    unsigned bits = cpu_phys_addr_bits();
    return bits >= 64 ? 0 : ~0ull << bits;
}

PROBE(svm_cons_cr0_high_bits, "svm.consistency.cr0_high_bits", "SVM",
      "VMRUN with each of guest CR0 bits 32..63 set in turn (CR0[63:32] MBZ): every one exits "
      "VMEXIT_INVALID (-1), each accepted bit reported; the restored VMCB runs to VMMCALL",
      "AMD APM Vol. 2 15.5.1", "apm.15.5.1.cons-cr0-high")
{
    struct sweep s;
    sweep_begin(&s);
    sweep_field(&s, "CR0", SAVE_OFF(cr0), HIGH32);
    sweep_end(&s, "CR0[63:32]");
}

PROBE(svm_cons_cr3_mbz_bits, "svm.consistency.cr3_mbz_bits", "SVM",
      "VMRUN of a long-mode guest (CR4.PCIDE=0) with each guest CR3 bit from MAXPHYADDR (CPUID "
      "0x80000008 EAX[7:0]) to 63 set in turn (MBZ): every one exits VMEXIT_INVALID (-1), each "
      "accepted bit reported; the restored VMCB runs to VMMCALL",
      "AMD APM Vol. 2 15.5.1, 3.1.2", "apm.15.5.1.cons-cr3-mbz")
{
    struct sweep s;
    sweep_begin(&s);
    s.good.save.cr4 &= ~BIT(17); /* PCIDE: the kernel never sets it */
    sweep_field(&s, "CR3", SAVE_OFF(cr3), above_maxphyaddr());
    sweep_end(&s, "CR3 bits MAXPHYADDR..63");
}

PROBE(svm_cons_cr4_high_bits, "svm.consistency.cr4_high_bits", "SVM",
      "VMRUN with each of guest CR4 bits 32..63 set in turn (reserved, MBZ): every one exits "
      "VMEXIT_INVALID (-1), each accepted bit reported; the restored VMCB runs to VMMCALL",
      "AMD APM Vol. 2 15.5.1, 3.1.3", "apm.15.5.1.cons-cr4-mbz")
{
    struct sweep s;
    sweep_begin(&s);
    sweep_field(&s, "CR4", SAVE_OFF(cr4), HIGH32);
    sweep_end(&s, "CR4[63:32]");
}

/* CR4 bits whose feature CPUID reports absent: MBZ on this processor. */
static uint64_t cr4_absent_features(void)
{
    struct cpuid c1 = cpuid(1, 0), c7 = {0, 0, 0, 0};
    if (cpuid(0, 0).a >= 7)
        c7 = cpuid(7, 0);
    uint64_t m = 0;
    if (!(c1.c & BIT(5)))
        m |= BIT(13); /* VMXE: CPUID 1 ECX.VMX[5] */
    if (!(c1.c & BIT(6)))
        m |= BIT(14); /* SMXE: CPUID 1 ECX.SMX[6] */
    if (!(c7.b & BIT(0)))
        m |= BIT(16); /* FSGSBASE: CPUID 7 EBX[0] */
    if (!(c1.c & BIT(17)))
        m |= BIT(17); /* PCIDE: CPUID 1 ECX.PCID[17] */
    if (!(c1.c & BIT(26)))
        m |= BIT(18); /* OSXSAVE: CPUID 1 ECX.XSAVE[26] */
    if (!(c7.b & BIT(7)))
        m |= BIT(20); /* SMEP: CPUID 7 EBX[7] */
    if (!(c7.b & BIT(20)))
        m |= BIT(21); /* SMAP: CPUID 7 EBX[20] */
    if (!(c7.c & BIT(3)))
        m |= BIT(22); /* PKE: CPUID 7 ECX.PKU[3] */
    if (!(c7.c & BIT(7)))
        m |= BIT(23); /* CET: CPUID 7 ECX.CET_SS[7] */
    if (!(c7.c & BIT(2)))
        m |= BIT(11); /* UMIP: CPUID 7 ECX[2] */
    if (!(c7.c & BIT(16)))
        m |= BIT(12); /* LA57: CPUID 7 ECX[16] */
    if (!(c7.c & BIT(23)))
        m |= BIT(19); /* KL: CPUID 7 ECX[23] */
    if (!(c7.c & BIT(31)))
        m |= BIT(24); /* PKS: CPUID 7 ECX[31] */
    if (!(c7.d & BIT(5)))
        m |= BIT(25); /* UINTR: CPUID 7 EDX[5] */
    if (cpuid(0, 0).a < 7 || !(cpuid(7, 1).a & BIT(26)))
        m |= BIT(28); /* LAM_SUP: CPUID 7.1 EAX[26] */
    return m;
}

PROBE(svm_cons_cr4_reserved, "svm.consistency.cr4_reserved", "SVM",
      "VMRUN with each reserved guest CR4 bit below 32 set in turn: bits 15, 26, 27, 29..31 "
      "(reserved), and each feature bit whose feature CPUID reports absent (VMXE, SMXE, "
      "FSGSBASE, PCIDE, OSXSAVE, SMEP, SMAP, PKE, CET, UMIP, LA57, KL, PKS, UINTR, LAM_SUP): every "
      "one exits "
      "VMEXIT_INVALID (-1), each accepted bit reported; the restored VMCB runs to VMMCALL",
      "AMD APM Vol. 2 15.5.1, 3.1.3", "apm.15.5.1.cons-cr4-mbz")
{
    struct sweep s;
    sweep_begin(&s);
    uint64_t absent = cr4_absent_features();
    note("CR4 bits of absent features: %#llx", (unsigned long long)absent);
    sweep_field(&s, "CR4", SAVE_OFF(cr4), BIT(15) | BIT(26) | BIT(27) | 0xe0000000ull | absent);
    sweep_end(&s, "CR4 reserved bits below 32");
}

PROBE(svm_cons_dr6_high_bits, "svm.consistency.dr6_high_bits", "SVM",
      "VMRUN with each of guest DR6 bits 32..63 set in turn (DR6[63:32] MBZ): every one exits "
      "VMEXIT_INVALID (-1), each accepted bit reported; the restored VMCB runs to VMMCALL",
      "AMD APM Vol. 2 15.5.1", "apm.15.5.1.cons-dr6-high")
{
    struct sweep s;
    sweep_begin(&s);
    sweep_field(&s, "DR6", SAVE_OFF(dr6), HIGH32);
    sweep_end(&s, "DR6[63:32]");
}

PROBE(svm_cons_dr7_high_bits, "svm.consistency.dr7_high_bits", "SVM",
      "VMRUN with each of guest DR7 bits 32..63 set in turn (DR7[63:32] MBZ): every one exits "
      "VMEXIT_INVALID (-1), each accepted bit reported; the restored VMCB runs to VMMCALL",
      "AMD APM Vol. 2 15.5.1", "apm.15.5.1.cons-dr7-high")
{
    struct sweep s;
    sweep_begin(&s);
    sweep_field(&s, "DR7", SAVE_OFF(dr7), HIGH32);
    sweep_end(&s, "DR7[63:32]");
}

PROBE(svm_cons_efer_high_bits, "svm.consistency.efer_high_bits", "SVM",
      "VMRUN with each of guest EFER bits 32..63 set in turn (reserved, MBZ): every one exits "
      "VMEXIT_INVALID (-1), each accepted bit reported; the restored VMCB runs to VMMCALL",
      "AMD APM Vol. 2 15.5.1, 3.1.7", "apm.15.5.1.cons-efer-mbz")
{
    struct sweep s;
    sweep_begin(&s);
    sweep_field(&s, "EFER", SAVE_OFF(efer), HIGH32);
    sweep_end(&s, "EFER[63:32]");
}

/* EFER feature bits whose feature CPUID reports absent. */
static uint64_t efer_absent_features(void)
{
    struct cpuid e1 = cpuid(0x80000001, 0);
    uint64_t m = 0;
    if (!(e1.d & BIT(20)))
        m |= EFER_NXE; /* CPUID 0x80000001 EDX.NX[20] */
    if (!(e1.d & BIT(25)))
        m |= BIT(14); /* FFXSR: CPUID 0x80000001 EDX.FFXSR[25] */
    if (!(e1.c & BIT(17)))
        m |= BIT(15); /* TCE: CPUID 0x80000001 ECX.TCE[17] */
    return m;
}

PROBE(svm_cons_efer_reserved, "svm.consistency.efer_reserved", "SVM",
      "VMRUN with each reserved guest EFER bit below 32 set in turn: bits 1..7 and 9 (reserved in "
      "the APM's EFER), and NXE, FFXSR, TCE where CPUID 0x80000001 reports the feature absent: "
      "every one exits VMEXIT_INVALID (-1), each accepted bit reported; the restored VMCB runs to "
      "VMMCALL",
      "AMD APM Vol. 2 15.5.1, 3.1.7", "apm.15.5.1.cons-efer-mbz")
{
    struct sweep s;
    sweep_begin(&s);
    uint64_t absent = efer_absent_features();
    note("EFER bits of absent features: %#llx", (unsigned long long)absent);
    sweep_field(&s, "EFER", SAVE_OFF(efer), 0xfeull | BIT(9) | absent);
    sweep_end(&s, "EFER reserved bits below 32");
}

PROBE(svm_cons_eventinj_types, "svm.consistency.eventinj_types", "SVM",
      "VMRUN with EVENTINJ.V=1 and each reserved event type (1, 5, 6, 7; vector 0x20) in turn: "
      "every one exits VMEXIT_INVALID (-1) without delivering it, each accepted type reported; "
      "with EVENTINJ cleared the guest runs to VMMCALL",
      "AMD APM Vol. 2 15.5.1, 15.20", "apm.15.5.1.cons-eventinj", "apm.15.20.inject-reserved")
{
    struct sweep s;
    sweep_begin(&s);
    static const unsigned types[] = {1, 5, 6, 7};
    char what[80];
    for (unsigned i = 0; i < ARRAY_SIZE(types); i++) {
        struct vmcb *vm = sweep_reset(&s);
        vm->control.event_inj =
            SVM_EVTINJ_VALID | ((uint64_t)types[i] << SVM_EVTINJ_TYPE_SHIFT) | 0x20;
        snprintf(what, sizeof(what), "VMRUN with EVENTINJ type %u (%#llx)", types[i],
                 (unsigned long long)vm->control.event_inj);
        sweep_expect_invalid(&s, what);
    }
    sweep_end(&s, "EVENTINJ reserved types");
}

PROBE(svm_cons_iopm_base_high, "svm.consistency.iopm_base_high", "SVM",
      "VMRUN with the IOIO intercept set and IOPM_BASE_PA at or above 2^MAXPHYADDR (bit "
      "MAXPHYADDR, and bit 51 if MAXPHYADDR < 52): each exits VMEXIT_INVALID (-1); restored, the "
      "guest runs to VMMCALL",
      "AMD APM Vol. 2 15.5.1, 15.10.1", "apm.15.5.1.cons-msrpm-iopm")
{
    struct sweep s;
    sweep_begin(&s);
    unsigned bits = cpu_phys_addr_bits();
    if (bits >= 52)
        skip("MAXPHYADDR = 52 (CPUID 0x80000008 EAX[7:0]): no address above it");
    s.good.control.intercept_misc1 |= SVM_INTERCEPT_IOIO_PROT;
    sweep_field(&s, "IOPM_BASE_PA",
                offsetof(struct vmcb, control) + offsetof(struct vmcb_control, iopm_base_pa),
                BIT(bits) | BIT(51));
    sweep_end(&s, "IOPM_BASE_PA above MAXPHYADDR");
}

PROBE(svm_cons_msrpm_base_high, "svm.consistency.msrpm_base_high", "SVM",
      "VMRUN with the MSR intercept set and MSRPM_BASE_PA at or above 2^MAXPHYADDR (bit "
      "MAXPHYADDR, and bit 51 if MAXPHYADDR < 52): each exits VMEXIT_INVALID (-1); restored, the "
      "guest runs to VMMCALL",
      "AMD APM Vol. 2 15.5.1, 15.11", "apm.15.5.1.cons-msrpm-iopm")
{
    struct sweep s;
    sweep_begin(&s);
    unsigned bits = cpu_phys_addr_bits();
    if (bits >= 52)
        skip("MAXPHYADDR = 52 (CPUID 0x80000008 EAX[7:0]): no address above it");
    s.good.control.intercept_misc1 |= SVM_INTERCEPT_MSR_PROT;
    sweep_field(&s, "MSRPM_BASE_PA",
                offsetof(struct vmcb, control) + offsetof(struct vmcb_control, msrpm_base_pa),
                BIT(bits) | BIT(51));
    sweep_end(&s, "MSRPM_BASE_PA above MAXPHYADDR");
}

PROBE(svm_cons_lme_pg_pae_cs_l_d_32, "svm.consistency.cs_l_and_d_no_lme", "SVM",
      "Control case of the CS.L/CS.D check: VMRUN of a 32-bit protected-mode guest (EFER.LME=0, "
      "CR0.PG=0) whose VMCB CS has L=1 and D=1 is not refused by that check (it needs "
      "EFER.LME, CR0.PG and CR4.PAE set as well), while the same CS in a long-mode guest exits "
      "VMEXIT_INVALID (-1)",
      "AMD APM Vol. 2 15.5.1", "apm.15.5.1.cons-lme-pg-cs-l-d")
{
    struct sweep s;
    sweep_begin(&s);
    struct vmcb *vm = sweep_reset(&s);
    vm->save.cs.attrib |= SVM_SEG_ATTR_L | SVM_SEG_ATTR_DB;
    sweep_expect_invalid(&s, "VMRUN of a long-mode guest with CS.L=1 and CS.D=1");
    /* The same CS in a guest with EFER.LME=0 and paging off: VMRUN must
     * not refuse it for CS.L/CS.D; its first instruction (a 64-bit
     * VMMCALL, the same bytes in 32-bit code) exits VMMCALL. */
    vm = sweep_reset(&s);
    vm->save.cs.attrib |= SVM_SEG_ATTR_L | SVM_SEG_ATTR_DB;
    vm->save.efer &= ~(EFER_LME | EFER_LMA);
    vm->save.cr0 &= ~CR0_PG;
    uint64_t code = svm_run(&s.v);
    check(code == SVM_EXIT_VMMCALL,
          "VMRUN of a 32-bit guest (LME=0, PG=0) with CS.L=1 and CS.D=1: want the guest's "
          "VMMCALL (the check needs LME, PG and PAE), got %s",
          svm_exit_str(&s.v));
    sweep_end(&s, "CS.L and CS.D");
}

/* ---- canonicalization ---------------------------------------------------------------- */

/* The linear-address width: CPUID 0x80000008 EAX[15:8] (48 if absent). */
static unsigned va_bits(void)
{
    if (cpuid(0x80000000, 0).a < 0x80000008)
        return 48;
    unsigned b = (cpuid(0x80000008, 0).a >> 8) & 0xff;
    return b ? b : 48;
}

static uint64_t canonical(uint64_t a, unsigned bits)
{
    unsigned sh = 64 - bits;
    return (uint64_t)((int64_t)(a << sh) >> sh);
}

PROBE(svm_cons_canon_seg_base, "svm.consistency.canon_seg_base", "SVM",
      "VMRUN of a 64-bit guest whose VMCB ES, SS and DS bases are non-canonical (bit VA_width-1 "
      "set, bits above it clear; CPUID 0x80000008 EAX[15:8]): VMRUN is not refused and "
      "canonicalizes (sign-extends) the loaded bases: after the guest's VMMCALL the VMCB holds "
      "the sign-extended values",
      "AMD APM Vol. 2 15.5.1 (Canonicalization)", "apm.15.5.1.cons-canonical")
{
    svm_require();
    unsigned bits = va_bits();
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)guest_vmmcall, 0);
    uint64_t raw = BIT(bits - 1) | 0x1000;
    uint64_t want = canonical(raw, bits);
    v.vmcb->save.es.base = raw;
    v.vmcb->save.ss.base = raw + 0x1000;
    v.vmcb->save.ds.base = raw + 0x2000;
    uint64_t code = svm_run(&v);
    if (!svm_check_exit(&v, code, SVM_EXIT_VMMCALL, "VMRUN with non-canonical ES/SS/DS bases"))
        return;
    check_eq("ES base after #VMEXIT", v.vmcb->save.es.base, want);
    check_eq("SS base after #VMEXIT", v.vmcb->save.ss.base, want + 0x1000);
    check_eq("DS base after #VMEXIT", v.vmcb->save.ds.base, want + 0x2000);
}

PROBE(svm_cons_canon_vmload, "svm.consistency.canon_vmload", "SVM",
      "VMLOAD of a VMCB whose FS and GS bases are non-canonical (bit VA_width-1 set, bits above "
      "clear), then VMSAVE to another page: the saved FS and GS bases are the sign-extended "
      "values (VMLOAD canonicalizes the bases it loads); the host's FS/GS are restored with "
      "VMLOAD of their own VMSAVE image",
      "AMD APM Vol. 2 15.5.1 (Canonicalization), 15.5.2", "apm.15.5.1.cons-canonical")
{
    svm_require();
    unsigned bits = va_bits();
    uint8_t *host = alloc_page();
    struct vmcb *in = alloc_page(), *out = alloc_page();
    svm_vmsave(A(host));
    svm_vmsave(A(in));
    uint64_t raw = BIT(bits - 1) | 0x3000;
    in->save.fs.base = raw;
    in->save.gs.base = raw + 0x1000;
    svm_vmload(A(in));
    svm_vmsave(A(out));
    svm_vmload(A(host));
    uint64_t want = canonical(raw, bits);
    check_eq("FS base saved after VMLOAD of a non-canonical base", out->save.fs.base, want);
    check_eq("GS base saved after VMLOAD of a non-canonical base", out->save.gs.base,
             want + 0x1000);
}

/* ---- paged real mode ------------------------------------------------------------------- */

__asm__(".pushsection .text\n"
        ".code16\n"
        "svm_cb_prm_guest:\n"
        "    mov $0x1919, %ax\n"
        "    mov %cr0, %ebx\n"
        "svm_cb_prm_site:\n"
        "    vmmcall\n"
        "    ud2\n"
        "svm_cb_prm_end:\n"
        ".code64\n"
        ".popsection");
extern char svm_cb_prm_guest[], svm_cb_prm_site[], svm_cb_prm_end[];

PROBE(svm_cb_paged_real, "svm.consistency.paged_real_mode", "SVM",
      "VMRUN of a real-mode guest with CR0.PG=1 and CR0.PE=0 (paged real mode; CR4.PSE=1, CR3 = "
      "a page directory whose only 4 MiB page maps linear 2 GiB + (P mod 4 MiB) to the code page "
      "P, and CS.base = that linear address): VMRUN accepts the state and the guest's code, "
      "reachable only through its page tables, runs MOV AX,imm; MOV EBX,CR0; VMMCALL: exit 0x81 "
      "with AX as set and CR0.PG=1, PE=0 in EBX and in the VMCB",
      "AMD APM Vol. 2 15.19", "apm.15.19.paged-real-mode")
{
    svm_require();
    if (!(cpuid(1, 0).d & BIT(3)))
        skip("CPUID 1 EDX.PSE[3]=0");
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)guest_vmmcall, 0);
    uint8_t *page = alloc_page();
    memcpy(page, svm_cb_prm_guest, (size_t)(svm_cb_prm_end - svm_cb_prm_guest));
    uint32_t *pd = alloc_page();
    uint64_t lin = 0x80000000ull + (A(page) & 0x3fffffull);
    pd[lin >> 22] = (uint32_t)(A(page) & ~0x3fffffull) | 0x83; /* P, RW, PS */
    struct vmcb_save *s = &v.vmcb->save;
    s->cr0 = CR0_PG | CR0_ET;
    s->cr4 = BIT(4); /* PSE */
    s->cr3 = A(pd);
    s->efer = EFER_SVME;
    struct vmcb_seg code_seg = {.selector = 0, .attrib = 0x9b, .limit = 0xffff, .base = lin};
    struct vmcb_seg data_seg = {.selector = 0, .attrib = 0x93, .limit = 0xffff, .base = lin};
    s->cs = code_seg;
    s->ds = s->es = s->ss = s->fs = s->gs = data_seg;
    s->rip = 0;
    s->rsp = 0xff0;
    s->cpl = 0;
    uint64_t code = svm_run(&v);
    if (!svm_check_exit(&v, code, SVM_EXIT_VMMCALL, "VMRUN of a paged real-mode guest"))
        return;
    check_eq("guest IP (the VMMCALL)", s->rip, (uint64_t)(svm_cb_prm_site - svm_cb_prm_guest));
    check_eq("guest AX", s->rax & 0xffff, 0x1919);
    check_eq("guest CR0.PG and PE (MOV from CR0)", v.regs.rbx & (CR0_PG | CR0_PE), CR0_PG);
    check_eq("VMCB CR0.PG and PE after the exit", s->cr0 & (CR0_PG | CR0_PE), CR0_PG);
}
