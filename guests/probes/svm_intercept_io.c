/* SPDX-License-Identifier: MIT */
/*
 * SVM MSR and I/O permission maps beyond svm.intercept.msrpm/iopm: the
 * three MSRPM ranges with separate read and write bits, MSRs outside the
 * map, and the IOPM for multi-byte, string and wrapping accesses
 * (AMD APM Vol. 2 15.10, 15.11).
 *
 * The address-size bits of the IOIO EXITINFO1 (A16/A32/A64, bits 9:7) are
 * the subject of svm.intercept.iopm; here they are masked out of the
 * comparison (and shown on a mismatch) so that one deviation there does
 * not fail every I/O probe.
 */
#include "nvct.h"
#include "svm.h"
#include "guests_svm.h"

GUEST(svm_o_outb, "outb %al, %dx", "svm_o_outb_end:", "vmmcall", "ud2");
GUEST(svm_o_outw, "outw %ax, %dx", "svm_o_outw_end:", "vmmcall", "ud2");
GUEST(svm_o_outl, "outl %eax, %dx", "svm_o_outl_end:", "vmmcall", "ud2");
GUEST(svm_o_inl, "inl %dx, %eax", "svm_o_inl_end:", "vmmcall", "ud2");
GUEST(svm_o_outsb, "rep outsb", "svm_o_outsb_end:", "vmmcall", "ud2");
GUEST(svm_o_insw, "rep insw", "svm_o_insw_end:", "vmmcall", "ud2");
extern char svm_o_outb_end[], svm_o_outw_end[], svm_o_outl_end[], svm_o_inl_end[];
extern char svm_o_outsb_end[], svm_o_insw_end[];

#define IOIO_ASIZE (SVM_IOIO_A16 | SVM_IOIO_A32 | SVM_IOIO_A64)

static bool run_at(struct svm_vcpu *v, const void *site, uint64_t exit, const void *at,
                   const char *what)
{
    v->vmcb->save.rip = A(site);
    uint64_t code = svm_run(v);
    if (!svm_check_exit(v, code, exit, what))
        return false;
    return check(v->vmcb->save.rip == A(at), "%s: VMCB RIP %#llx, want %#llx", what,
                 (unsigned long long)v->vmcb->save.rip, (unsigned long long)A(at));
}

/* ---- MSRPM ------------------------------------------------------------------------ */

PROBE(svm_icpt_msrpm_ranges, "svm.intercept.msrpm_ranges", "SVM",
      "MSR_PROT set; for SYSENTER_CS (0x174, range 0), STAR (0xC0000081, range 1) and VM_HSAVE_PA "
      "(0xC0010117, range 2): read bit only -> RDMSR exits 0x7C with EXITINFO1=0; write bit only "
      "-> RDMSR runs and WRMSR (of the value read) exits 0x7C with EXITINFO1=1; both bits set for "
      "MSR m -> RDMSR of m+1 runs (ranges 0, 1); RDMSR of 0x2000, 0xC0002000 and 0xC0012000 "
      "(outside the map) exits 0x7C",
      "AMD APM Vol. 2 15.11", "apm.15.11.msrpm")
{
    svm_require();
    static const struct {
        uint32_t msr;
        bool neighbour;
    } t[] = {
        {MSR_SYSENTER_CS, true},
        {MSR_STAR, true},
        {MSR_VM_HSAVE_PA, false},
    };
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_i_msr_rd, 0);
    v.vmcb->control.intercept_misc1 |= SVM_INTERCEPT_MSR_PROT;
    char what[96];
    for (unsigned i = 0; i < ARRAY_SIZE(t); i++) {
        uint32_t m = t[i].msr;
        svm_msrpm_set(&v, m, true, false);
        v.regs.rcx = m;
        snprintf(what, sizeof(what), "RDMSR %#x, read bit set", m);
        if (!run_at(&v, svm_i_msr_rd, SVM_EXIT_MSR, svm_i_msr_rd, what))
            return;
        check(v.vmcb->control.exit_info_1 == 0, "%s: EXITINFO1 %#llx, want 0", what,
              (unsigned long long)v.vmcb->control.exit_info_1);

        svm_msrpm_set(&v, m, false, true);
        snprintf(what, sizeof(what), "RDMSR %#x, only the write bit set", m);
        if (!run_at(&v, svm_i_msr_rd, SVM_EXIT_VMMCALL, svm_i_msr_vmmcall1, what))
            return;
        snprintf(what, sizeof(what), "WRMSR %#x, write bit set", m);
        if (!run_at(&v, svm_i_msr_wr, SVM_EXIT_MSR, svm_i_msr_wr, what))
            return;
        check(v.vmcb->control.exit_info_1 == 1, "%s: EXITINFO1 %#llx, want 1", what,
              (unsigned long long)v.vmcb->control.exit_info_1);

        if (t[i].neighbour) {
            svm_msrpm_set(&v, m, true, true);
            v.regs.rcx = m + 1;
            snprintf(what, sizeof(what), "RDMSR %#x, bits set only for %#x", m + 1, m);
            if (!run_at(&v, svm_i_msr_rd, SVM_EXIT_VMMCALL, svm_i_msr_vmmcall1, what))
                return;
        }
        svm_msrpm_set(&v, m, false, false);
    }
    static const uint32_t outside[] = {0x2000, 0xc0002000, 0xc0012000};
    for (unsigned i = 0; i < ARRAY_SIZE(outside); i++) {
        v.regs.rcx = outside[i];
        snprintf(what, sizeof(what), "RDMSR %#x (outside the MSRPM)", outside[i]);
        if (!run_at(&v, svm_i_msr_rd, SVM_EXIT_MSR, svm_i_msr_rd, what))
            return;
        check(v.vmcb->control.exit_info_1 == 0, "%s: EXITINFO1 %#llx, want 0", what,
              (unsigned long long)v.vmcb->control.exit_info_1);
    }
}

/* ---- IOPM ------------------------------------------------------------------------- */

static void check_ioio(const struct svm_vcpu *v, const char *what, uint64_t want, const char *next)
{
    uint64_t got = v->vmcb->control.exit_info_1;
    check((got & ~(uint64_t)IOIO_ASIZE) == want,
          "%s: EXITINFO1 %#llx (address-size bits masked: %#llx), want %#llx", what,
          (unsigned long long)got, (unsigned long long)(got & ~(uint64_t)IOIO_ASIZE),
          (unsigned long long)want);
    check(v->vmcb->control.exit_info_2 == A(next), "%s: EXITINFO2 %#llx, want next RIP %#llx", what,
          (unsigned long long)v->vmcb->control.exit_info_2, (unsigned long long)A(next));
}

PROBE(svm_icpt_ioio_sizes, "svm.intercept.ioio_sizes", "SVM",
      "IOIO_PROT set, IOPM bit for port 0x83 only: OUT DX=0x80,AL (port 0x80 only) runs; OUT "
      "DX=0x82,AX (0x82-0x83) exits 0x7B with EXITINFO1 = 0x82<<16|SZ16; OUT DX=0x80,EAX "
      "(0x80-0x83) exits with 0x80<<16|SZ32; IN EAX,DX=0x80 exits with 0x80<<16|SZ32|TYPE; "
      "EXITINFO2 = the next RIP (address-size bits masked)",
      "AMD APM Vol. 2 15.10.1, 15.10.2", "apm.15.10.1.iopm", "apm.15.10.2.io-exitinfo1")
{
    svm_require();
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_o_outb, 0);
    v.vmcb->control.intercept_misc1 |= SVM_INTERCEPT_IOIO_PROT;
    svm_iopm_set(&v, 0x83, true);
    v.regs.rdx = 0x80;
    if (!run_at(&v, svm_o_outb, SVM_EXIT_VMMCALL, svm_o_outb_end, "OUT DX=0x80,AL (bit clear)"))
        return;
    v.regs.rdx = 0x82;
    if (!run_at(&v, svm_o_outw, SVM_EXIT_IOIO, svm_o_outw, "OUT DX=0x82,AX"))
        return;
    check_ioio(&v, "OUT DX=0x82,AX", (0x82ull << 16) | SVM_IOIO_SZ16, svm_o_outw_end);
    v.regs.rdx = 0x80;
    if (!run_at(&v, svm_o_outl, SVM_EXIT_IOIO, svm_o_outl, "OUT DX=0x80,EAX"))
        return;
    check_ioio(&v, "OUT DX=0x80,EAX", (0x80ull << 16) | SVM_IOIO_SZ32, svm_o_outl_end);
    if (!run_at(&v, svm_o_inl, SVM_EXIT_IOIO, svm_o_inl, "IN EAX,DX=0x80"))
        return;
    check_ioio(&v, "IN EAX,DX=0x80", (0x80ull << 16) | SVM_IOIO_SZ32 | SVM_IOIO_TYPE_IN,
               svm_o_inl_end);
}

PROBE(svm_icpt_ioio_string, "svm.intercept.ioio_string", "SVM",
      "IOIO_PROT set, IOPM bit for port 0x80: REP OUTSB (DX=0x80, RCX=2) exits 0x7B at the "
      "instruction before any iteration (RCX, RSI unchanged) with EXITINFO1 = "
      "0x80<<16|SZ8|REP|STR; REP INSW (DX=0x7F, RCX=2) with TYPE|SZ16|REP|STR; EXITINFO2 = the "
      "next RIP (address-size bits 9:7 and segment bits 12:10 masked: svm.intercept.iopm and "
      "svm.intercept.ioio_string_seg check those)",
      "AMD APM Vol. 2 15.10.2, 15.10.3", "apm.15.10.2.io-exitinfo1", "apm.15.10.2.io-exitinfo2")
{
    svm_require();
    struct svm_vcpu v;
    uint8_t *buf = alloc_page();
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_o_outsb, 0);
    v.vmcb->control.intercept_misc1 |= SVM_INTERCEPT_IOIO_PROT;
    svm_iopm_set(&v, 0x80, true);
    v.regs.rdx = 0x80;
    v.regs.rcx = 2;
    v.regs.rsi = A(buf);
    v.regs.rdi = A(buf);
    if (!run_at(&v, svm_o_outsb, SVM_EXIT_IOIO, svm_o_outsb, "REP OUTSB DX=0x80"))
        return;
    v.vmcb->control.exit_info_1 &= ~(7ull << SVM_IOIO_SEG_SHIFT);
    check_ioio(&v, "REP OUTSB DX=0x80",
               (0x80ull << 16) | SVM_IOIO_SZ8 | SVM_IOIO_REP | SVM_IOIO_STR, svm_o_outsb_end);
    check(v.regs.rcx == 2 && v.regs.rsi == A(buf),
          "REP OUTSB exit: RCX=%#llx RSI=%#llx, want 2, %#llx (not executed)",
          (unsigned long long)v.regs.rcx, (unsigned long long)v.regs.rsi,
          (unsigned long long)A(buf));
    v.regs.rdx = 0x7f;
    if (!run_at(&v, svm_o_insw, SVM_EXIT_IOIO, svm_o_insw, "REP INSW DX=0x7f"))
        return;
    v.vmcb->control.exit_info_1 &= ~(7ull << SVM_IOIO_SEG_SHIFT);
    check_ioio(&v, "REP INSW DX=0x7f",
               (0x7full << 16) | SVM_IOIO_SZ16 | SVM_IOIO_REP | SVM_IOIO_STR | SVM_IOIO_TYPE_IN,
               svm_o_insw_end);
    check(v.regs.rcx == 2 && v.regs.rdi == A(buf),
          "REP INSW exit: RCX=%#llx RDI=%#llx, want 2, %#llx (not executed)",
          (unsigned long long)v.regs.rcx, (unsigned long long)v.regs.rdi,
          (unsigned long long)A(buf));
}

PROBE(svm_icpt_ioio_wrap, "svm.intercept.ioio_wrap", "SVM",
      "IOIO_PROT set, only the IOPM bit for 'port 0x10000' (bit 0 of byte 0x2000, the map's third "
      "4 KiB): OUT DX=0xFFFF,AL runs; OUT DX=0xFFFF,AX (0xFFFF and the bit above it) exits 0x7B "
      "with EXITINFO1 = 0xFFFF<<16|SZ16; with only the bit for port 0 set OUT DX=0xFFFF,AX runs "
      "(the access does not wrap to port 0 in the map)",
      "AMD APM Vol. 2 15.10.1", "apm.15.10.1.iopm-wrap")
{
    svm_require();
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_o_outb, 0);
    v.vmcb->control.intercept_misc1 |= SVM_INTERCEPT_IOIO_PROT;
    v.iopm[0x2000] = 1;
    v.regs.rdx = 0xffff;
    if (!run_at(&v, svm_o_outb, SVM_EXIT_VMMCALL, svm_o_outb_end, "OUT DX=0xffff,AL"))
        return;
    if (!run_at(&v, svm_o_outw, SVM_EXIT_IOIO, svm_o_outw, "OUT DX=0xffff,AX"))
        return;
    check_ioio(&v, "OUT DX=0xffff,AX", (0xffffull << 16) | SVM_IOIO_SZ16, svm_o_outw_end);
    v.iopm[0x2000] = 0;
    v.iopm[0] = 1;
    run_at(&v, svm_o_outw, SVM_EXIT_VMMCALL, svm_o_outw_end,
           "OUT DX=0xffff,AX with only port 0's bit set");
}

PROBE(svm_icpt_ioio_string_seg, "svm.intercept.ioio_string_seg", "SVM",
      "IOIO_PROT set, IOPM bit for port 0x80: the EXITINFO1 SEG field (bits 12:10) of an "
      "intercepted string I/O instruction is its effective segment: REP OUTSB (default segment DS) "
      "gives 3, REP INSW (always ES) gives 0",
      "AMD APM Vol. 2 15.10.2 (Figure 15-2), 15.10.3", "apm.15.10.2.io-exitinfo1")
{
    svm_require();
    struct svm_vcpu v;
    uint8_t *buf = alloc_page();
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_o_outsb, 0);
    v.vmcb->control.intercept_misc1 |= SVM_INTERCEPT_IOIO_PROT;
    svm_iopm_set(&v, 0x80, true);
    v.regs.rdx = 0x80;
    v.regs.rcx = 2;
    v.regs.rsi = A(buf);
    v.regs.rdi = A(buf);
    if (run_at(&v, svm_o_outsb, SVM_EXIT_IOIO, svm_o_outsb, "REP OUTSB DX=0x80"))
        check_eq("REP OUTSB: EXITINFO1 SEG[12:10] (DS)",
                 (v.vmcb->control.exit_info_1 >> SVM_IOIO_SEG_SHIFT) & 7, 3);
    if (run_at(&v, svm_o_insw, SVM_EXIT_IOIO, svm_o_insw, "REP INSW DX=0x80"))
        check_eq("REP INSW: EXITINFO1 SEG[12:10] (ES)",
                 (v.vmcb->control.exit_info_1 >> SVM_IOIO_SEG_SHIFT) & 7, 0);
}
