/* SPDX-License-Identifier: MIT */
/*
 * SVM VMRUN consistency checks (AMD APM Vol. 2 15.5.1, "Canonicalization
 * and Consistency Checks"): VMRUN of a VMCB holding illegal guest state
 * does not enter the guest but exits at once with EXITCODE = VMEXIT_INVALID
 * (-1).
 *
 * Every probe runs the same shape: a control VMRUN of the untouched VMCB
 * (must exit with VMMCALL, so the rest of the VMCB is known good), one
 * field made illegal (must give VMEXIT_INVALID), the field restored (must
 * run again to VMMCALL: the failed VMRUN left the VMCB usable).
 *
 * The subject here is that VMRUN refuses the state. EXITCODE[31:0] =
 * 0xffffffff with [63:32] = 0 (VMEXIT_INVALID written as a 32-bit value)
 * is accepted here with a NOTE: the width of EXITCODE is the subject of
 * svm.basic.asid_zero and svm.basic.vmrun_intercept, which stay strict, so
 * that one model deviation there does not hide whether each check below is
 * performed.
 */
#include "nvct.h"
#include "svm.h"

typedef void (*mutate_fn)(struct svm_vcpu *v);

/* After a control run: make the field illegal (VMRUN must give
 * VMEXIT_INVALID), then restore the VMCB (VMRUN must run to VMMCALL again). */
static void refused_then_runs(struct svm_vcpu *v, const char *what, mutate_fn mutate)
{
    struct vmcb saved;
    v->vmcb->save.rip = (uint64_t)(uintptr_t)guest_vmmcall;
    memcpy(&saved, v->vmcb, sizeof(saved));
    mutate(v);
    uint64_t code = svm_run(v);
    if (code == 0xffffffffull) {
        note("%s: EXITCODE = 0xffffffff, upper half 0 (see svm.basic.asid_zero)", what);
        code = SVM_EXIT_INVALID;
    }
    if (!svm_check_exit(v, code, SVM_EXIT_INVALID, what))
        return;
    memcpy(v->vmcb, &saved, sizeof(saved));
    v->vmcb->save.rip = (uint64_t)(uintptr_t)guest_vmmcall;
    code = svm_run(v);
    svm_check_exit(v, code, SVM_EXIT_VMMCALL, "VMRUN with the field restored");
}

static void consistency_case(const char *what, mutate_fn mutate)
{
    svm_require();
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)guest_vmmcall, 0);
    uint64_t code = svm_run(&v);
    if (!svm_check_exit(&v, code, SVM_EXIT_VMMCALL, "control VMRUN (unchanged VMCB)"))
        return;

    refused_then_runs(&v, what, mutate);
}

#define CASE(fn_, id_, desc_, what_, body_, ...)                        \
    static void fn_##_mut(struct svm_vcpu *v)                           \
    {                                                                   \
        struct vmcb *vm = v->vmcb;                                      \
        body_;                                                          \
    }                                                                   \
    PROBE(fn_, id_, "SVM", desc_, "AMD APM Vol. 2 15.5.1", __VA_ARGS__) \
    {                                                                   \
        consistency_case(what_, fn_##_mut);                             \
    }

CASE(svm_cons_efer_svme, "svm.consistency.efer_svme",
     "VMRUN with EFER.SVME=0 in the VMCB guest state: VMEXIT_INVALID (-1); with SVME restored the "
     "guest runs to VMMCALL",
     "VMRUN with guest EFER.SVME=0", vm->save.efer &= ~EFER_SVME, "apm.15.5.1.cons-efer-svme")

CASE(svm_cons_cr0_cd_nw, "svm.consistency.cr0_cd_nw",
     "VMRUN with guest CR0.CD=0 and CR0.NW=1: VMEXIT_INVALID (-1); restored, the guest runs to "
     "VMMCALL",
     "VMRUN with guest CR0.CD=0, NW=1", vm->save.cr0 = (vm->save.cr0 & ~CR0_CD) | CR0_NW,
     "apm.15.5.1.cons-cr0-cd-nw")

CASE(svm_cons_cr0_high, "svm.consistency.cr0_high",
     "VMRUN with guest CR0[63:32] nonzero (bit 32, MBZ): VMEXIT_INVALID (-1); restored, the guest "
     "runs to VMMCALL",
     "VMRUN with guest CR0 bit 32 set", vm->save.cr0 |= BIT(32), "apm.15.5.1.cons-cr0-high")

CASE(svm_cons_cr3_mbz, "svm.consistency.cr3_mbz",
     "VMRUN of a long-mode guest with guest CR3 bit 62 set (MBZ: above MAXPHYADDR, CR4.PCIDE=0): "
     "VMEXIT_INVALID (-1); restored, the guest runs to VMMCALL",
     "VMRUN with guest CR3 bit 62 set", vm->save.cr3 |= BIT(62), "apm.15.5.1.cons-cr3-mbz")

CASE(svm_cons_cr4_mbz, "svm.consistency.cr4_mbz",
     "VMRUN with guest CR4 bit 63 set (CR4[63:32] MBZ): VMEXIT_INVALID (-1); restored, the guest "
     "runs to VMMCALL",
     "VMRUN with guest CR4 bit 63 set", vm->save.cr4 |= BIT(63), "apm.15.5.1.cons-cr4-mbz")

CASE(svm_cons_dr6_high, "svm.consistency.dr6_high",
     "VMRUN with guest DR6[63:32] nonzero (bit 32, MBZ): VMEXIT_INVALID (-1); restored, the guest "
     "runs to VMMCALL",
     "VMRUN with guest DR6 bit 32 set", vm->save.dr6 |= BIT(32), "apm.15.5.1.cons-dr6-high")

CASE(svm_cons_dr7_high, "svm.consistency.dr7_high",
     "VMRUN with guest DR7[63:32] nonzero (bit 32, MBZ): VMEXIT_INVALID (-1); restored, the guest "
     "runs to VMMCALL",
     "VMRUN with guest DR7 bit 32 set", vm->save.dr7 |= BIT(32), "apm.15.5.1.cons-dr7-high")

CASE(svm_cons_efer_mbz, "svm.consistency.efer_mbz",
     "VMRUN with guest EFER bit 63 set (EFER[63:32] MBZ): VMEXIT_INVALID (-1); restored, the guest "
     "runs to VMMCALL",
     "VMRUN with guest EFER bit 63 set", vm->save.efer |= BIT(63), "apm.15.5.1.cons-efer-mbz")

CASE(svm_cons_lme_no_pae, "svm.consistency.lme_pg_no_pae",
     "VMRUN with guest EFER.LME=1, CR0.PG=1 and CR4.PAE=0: VMEXIT_INVALID (-1); restored, the "
     "guest runs to VMMCALL",
     "VMRUN with guest LME=1, PG=1, PAE=0", vm->save.cr4 &= ~CR4_PAE,
     "apm.15.5.1.cons-lme-pg-no-pae")

CASE(svm_cons_lme_no_pe, "svm.consistency.lme_pg_no_pe",
     "VMRUN with guest EFER.LME=1, CR0.PG=1 and CR0.PE=0: VMEXIT_INVALID (-1); restored, the guest "
     "runs to VMMCALL",
     "VMRUN with guest LME=1, PG=1, PE=0", vm->save.cr0 &= ~CR0_PE, "apm.15.5.1.cons-lme-pg-no-pe")

CASE(svm_cons_cs_l_d, "svm.consistency.cs_l_and_d",
     "VMRUN of a long-mode guest (LME=1, PG=1, PAE=1) with CS.L=1 and CS.D=1: VMEXIT_INVALID (-1); "
     "restored, the guest runs to VMMCALL",
     "VMRUN with guest CS.L=1 and CS.D=1", vm->save.cs.attrib |= SVM_SEG_ATTR_L | SVM_SEG_ATTR_DB,
     "apm.15.5.1.cons-lme-pg-cs-l-d")

CASE(svm_cons_eventinj_type, "svm.consistency.eventinj_type",
     "VMRUN with EVENTINJ.V=1 and the reserved event type 1 (vector 0x20): VMEXIT_INVALID (-1); "
     "with EVENTINJ cleared the guest runs to VMMCALL",
     "VMRUN with EVENTINJ type 1",
     vm->control.event_inj = SVM_EVTINJ_VALID | (1ull << SVM_EVTINJ_TYPE_SHIFT) | 0x20,
     "apm.15.5.1.cons-eventinj", "apm.15.20.inject-reserved")

/* Past the physical address width: the IOPM (12 KiB) and MSRPM (8 KiB) are
 * placed so that they end above 2^MAXPHYADDR - 1. */
static uint64_t last_page(void) { return (1ull << cpu_phys_addr_bits()) - 4096; }

CASE(svm_cons_iopm_addr, "svm.consistency.iopm_addr",
     "VMRUN with the IOIO intercept set and IOPM_BASE_PA = 2^MAXPHYADDR - 4 KiB (the 12 KiB map "
     "extends past the physical address width): VMEXIT_INVALID (-1); restored, the guest runs to "
     "VMMCALL",
     "VMRUN with the IOPM past MAXPHYADDR",
     (vm->control.intercept_misc1 |= SVM_INTERCEPT_IOIO_PROT,
      vm->control.iopm_base_pa = last_page()),
     "apm.15.5.1.cons-msrpm-iopm")

CASE(svm_cons_msrpm_addr, "svm.consistency.msrpm_addr",
     "VMRUN with the MSR intercept set and MSRPM_BASE_PA = 2^MAXPHYADDR - 4 KiB (the 8 KiB map "
     "extends past the physical address width): VMEXIT_INVALID (-1); restored, the guest runs to "
     "VMMCALL",
     "VMRUN with the MSRPM past MAXPHYADDR",
     (vm->control.intercept_misc1 |= SVM_INTERCEPT_MSR_PROT,
      vm->control.msrpm_base_pa = last_page()),
     "apm.15.5.1.cons-msrpm-iopm")

CASE(svm_cons_eventinj_nmi_vector, "svm.consistency.eventinj_vector2",
     "VMRUN with EVENTINJ.V=1, type 3 (exception) and vector 2 (an NMI, not an exception): "
     "VMEXIT_INVALID (-1); with EVENTINJ cleared the guest runs to VMMCALL",
     "VMRUN with EVENTINJ type 3 vector 2",
     vm->control.event_inj = SVM_EVTINJ_VALID | SVM_EVTINJ_TYPE_EXEPT | NMI_VECTOR,
     "apm.15.5.1.cons-eventinj", "apm.15.20.inject-reserved")

CASE(svm_cons_eventinj_br64, "svm.consistency.eventinj_br_64bit",
     "VMRUN of a 64-bit guest with EVENTINJ = #BR (type 3, vector 5), an exception impossible in "
     "64-bit mode: the injection fails with VMEXIT_INVALID (-1) and no guest instruction runs; "
     "with EVENTINJ cleared the guest runs to VMMCALL",
     "VMRUN injecting #BR into a 64-bit guest",
     vm->control.event_inj = SVM_EVTINJ_VALID | SVM_EVTINJ_TYPE_EXEPT | BR_VECTOR,
     "apm.15.5.1.cons-eventinj", "apm.15.20.inject-reserved")

/* Nested-paging checks (15.25.4): the same shape, with NP enabled on an
 * identity nested map in the control run. */
static void np_case(const char *what, mutate_fn mutate)
{
    svm_require();
    if (!svm_has(SVM_FEAT_NP))
        skip("CPUID 0x8000000A EDX.NP[0]=0");
    struct svm_vcpu v;
    struct npt n;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)guest_vmmcall, 0);
    npt_build(&n, false);
    svm_npt_enable(&v, &n);
    uint64_t code = svm_run(&v);
    if (!svm_check_exit(&v, code, SVM_EXIT_VMMCALL, "control VMRUN with nested paging"))
        return;
    refused_then_runs(&v, what, mutate);
}

static void gpat_mut(struct svm_vcpu *v)
{
    v->vmcb->save.g_pat = 0x0007040600070402ull; /* PA0 = 2: reserved type */
}
static void ncr3_mut(struct svm_vcpu *v) { v->vmcb->control.nested_cr3 |= BIT(62); }

PROBE(svm_cons_gpat, "svm.consistency.gpat", "NPT",
      "With CPUID 0x8000000A EDX.NP[0]=1: VMRUN with nested paging enabled and G_PAT.PA0 = 2 (a "
      "reserved memory type): VMEXIT_INVALID (-1); with G_PAT restored the guest runs to VMMCALL",
      "AMD APM Vol. 2 15.25.4", "apm.15.25.4.gpat")
{
    np_case("VMRUN with G_PAT.PA0 = 2", gpat_mut);
}

PROBE(svm_cons_ncr3, "svm.consistency.ncr3_mbz", "NPT",
      "With CPUID 0x8000000A EDX.NP[0]=1: VMRUN with nested paging enabled and nCR3 bit 62 set "
      "(MBZ, above MAXPHYADDR): VMEXIT_INVALID (-1); with nCR3 restored the guest runs to VMMCALL",
      "AMD APM Vol. 2 15.25.4", "apm.15.25.3.ncr3-mbz")
{
    np_case("VMRUN with nCR3 bit 62 set", ncr3_mut);
}
