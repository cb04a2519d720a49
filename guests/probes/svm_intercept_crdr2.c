/* SPDX-License-Identifier: MIT */
/*
 * SVM CR2, DR1-DR3 and DR6 access intercepts (AMD APM Vol. 2 15.9, Table
 * 15-7; intercept vectors 0 and 1, Table B-1) and the address-size field
 * of the IOIO EXITINFO1 for a 32-bit address (15.10.2, Figure 15-2).
 * svm_intercept_crdr.c covers CR0, CR3, CR4, CR8, DR0 and DR7.
 */
#include "nvct.h"
#include "svm.h"

/* <name>_rd: MOV from the register to RAX; <name>_wr: MOV RAX to it. */
#define RWSTUB(name, reg)                                                                         \
    GUEST(name##_rd, "mov %" reg ", %rax", "vmmcall", #name "_wr:", "mov %rax, %" reg, "vmmcall", \
          "ud2");                                                                                 \
    extern char name##_wr[]

RWSTUB(svm_c2_cr2, "cr2");
RWSTUB(svm_c2_dr1, "db1");
RWSTUB(svm_c2_dr2, "db2");
RWSTUB(svm_c2_dr3, "db3");
RWSTUB(svm_c2_dr6, "db6");

/* DX = port, RSI = a buffer, RCX = 1: OUTSB with a 32-bit address */
GUEST(svm_c2_outsb32, "addr32 rep outsb", "vmmcall", "ud2");

static bool run_at(struct svm_vcpu *v, const void *site, uint64_t exit, const char *what)
{
    v->vmcb->save.rip = A(site);
    uint64_t code = svm_run(v);
    if (!svm_check_exit(v, code, exit, what))
        return false;
    return check(v->vmcb->save.rip == A(site), "%s: VMCB RIP %#llx, want %#llx (the MOV)", what,
                 (unsigned long long)v->vmcb->save.rip, (unsigned long long)A(site));
}

/* Read intercept only: MOV from exits 0x00/0x20+n; write intercept only:
 * MOV to exits 0x10/0x30+n; each at the MOV. */
static void rw_case(const char *name, void (*rd)(void), const char *wr, bool dr, unsigned n,
                    uint64_t value)
{
    struct svm_vcpu v;
    char what[64];
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)rd, 0);
    v.vmcb->save.rax = value;
    if (dr)
        v.vmcb->control.intercept_dr = SVM_INTERCEPT_DR_READ(n);
    else
        v.vmcb->control.intercept_cr = SVM_INTERCEPT_CR_READ(n);
    snprintf(what, sizeof(what), "MOV from %s (read intercept)", name);
    run_at(&v, rd, dr ? SVM_EXIT_DR_READ(n) : SVM_EXIT_CR_READ(n), what);
    if (dr)
        v.vmcb->control.intercept_dr = SVM_INTERCEPT_DR_WRITE(n);
    else
        v.vmcb->control.intercept_cr = SVM_INTERCEPT_CR_WRITE(n);
    v.vmcb->save.rax = value;
    snprintf(what, sizeof(what), "MOV to %s (write intercept)", name);
    run_at(&v, wr, dr ? SVM_EXIT_DR_WRITE(n) : SVM_EXIT_CR_WRITE(n), what);
}

PROBE(svm_c2_cr2_icpt, "svm.intercept.cr2", "SVM",
      "Intercept read of CR2 only (intercept_cr bit 2): guest MOV from CR2 exits 0x02 at the MOV; "
      "intercept write of CR2 only (bit 18): guest MOV to CR2 exits 0x12 at the MOV",
      "AMD APM Vol. 2 15.9 (Table 15-7)", "apm.15.9.cr2-read-write")
{
    svm_require();
    rw_case("CR2", svm_c2_cr2_rd, svm_c2_cr2_wr, false, 2, 0x1000);
}

PROBE(svm_c2_dr_icpt, "svm.intercept.dr1_dr6", "SVM",
      "For each of DR1, DR2, DR3 and DR6: intercept read only (intercept_dr bit n): guest MOV "
      "from DRn exits 0x20+n at the MOV; intercept write only (bit 16+n): MOV to DRn exits "
      "0x30+n at the MOV",
      "AMD APM Vol. 2 15.9 (Table 15-7)", "apm.15.9.dr0-3-read-write", "apm.15.9.dr6-read-write")
{
    svm_require();
    rw_case("DR1", svm_c2_dr1_rd, svm_c2_dr1_wr, true, 1, 0);
    rw_case("DR2", svm_c2_dr2_rd, svm_c2_dr2_wr, true, 2, 0);
    rw_case("DR3", svm_c2_dr3_rd, svm_c2_dr3_wr, true, 3, 0);
    rw_case("DR6", svm_c2_dr6_rd, svm_c2_dr6_wr, true, 6, 0xffff0ff0);
}

PROBE(svm_c2_ioio_a32, "svm.intercept.ioio_a32", "SVM",
      "IOIO_PROT set, IOPM bit for port 0x80: REP OUTSB with an address-size prefix (67h: 32-bit "
      "addresses in 64-bit mode) exits 0x7B at the instruction with the address-size field of "
      "EXITINFO1 (bits 9:7) = A32 (bit 8), along with port 0x80, SZ8, REP and STR",
      "AMD APM Vol. 2 15.10.2 (Figure 15-2)", "apm.15.10.2.io-exitinfo1")
{
    svm_require();
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_c2_outsb32, 0);
    v.vmcb->control.intercept_misc1 |= SVM_INTERCEPT_IOIO_PROT;
    svm_iopm_set(&v, 0x80, true);
    uint8_t *buf = alloc_page();
    v.regs.rdx = 0x80;
    v.regs.rsi = A(buf);
    v.regs.rcx = 1;
    if (!run_at(&v, svm_c2_outsb32, SVM_EXIT_IOIO, "ADDR32 REP OUTSB"))
        return;
    uint64_t i1 = v.vmcb->control.exit_info_1;
    check_eq("EXITINFO1 address size (bits 9:7)", i1 & (7u << 7), SVM_IOIO_A32);
    check_eq("EXITINFO1 port, size, REP, STR", i1 & 0xffff007cull,
             (0x80ull << SVM_IOIO_PORT_SHIFT) | SVM_IOIO_SZ8 | SVM_IOIO_REP | SVM_IOIO_STR);
}

GUEST(svm_c2_cr8w, "mov %rax, %cr8", "vmmcall", "ud2");

PROBE(svm_c2_cr8_v_tpr, "svm.intercept.cr8_v_tpr", "SVM",
      "V_INTR_MASKING=1, V_TPR=5, CR8 write intercept (intercept_cr bit 24) set: guest MOV RAX=2 "
      "to CR8 exits 0x18 at the MOV and leaves V_TPR at 5 (the intercepted write does not "
      "execute); the host's CR8 is unchanged",
      "AMD APM Vol. 2 15.9 (Table 15-7), 15.21.2", "apm.15.21.2.cr8-intercept",
      "apm.15.9.cr8-read-write")
{
    svm_require();
    uint64_t host_cr8 = read_cr8();
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_c2_cr8w, 0);
    v.vmcb->control.int_ctl = V_INTR_MASKING | 5;
    v.vmcb->control.intercept_cr = SVM_INTERCEPT_CR_WRITE(8);
    v.vmcb->save.rax = 2;
    bool ok = run_at(&v, svm_c2_cr8w, SVM_EXIT_CR_WRITE(8), "MOV to CR8, write intercepted");
    uint64_t cr8 = read_cr8();
    if (cr8 != host_cr8)
        write_cr8(host_cr8);
    if (ok)
        check_eq("VMCB V_TPR after the intercepted write", v.vmcb->control.int_ctl & V_TPR_MASK, 5);
    check_eq("host CR8 after the exit", cr8, host_cr8);
}
