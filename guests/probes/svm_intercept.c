/* SPDX-License-Identifier: MIT */
/*
 * SVM intercepts: instruction intercepts (CPUID, HLT, RDTSC/RDTSCP,
 * VMMCALL), exception intercepts (#UD, #BP, #PF), the MSR and I/O
 * permission maps, and SHUTDOWN.
 */
#include "nvct.h"
#include "svm.h"
#include "guests_svm.h"

static void entry(struct svm_vcpu *v, const char *sym)
{
    svm_vcpu_set_entry(v, (svm_guest_fn)(uintptr_t)sym, 0);
}

/*
 * Runs the guest and expects exit `want` with the guest RIP at `site`.
 * `next` documents where the instruction ends (the nRIP an NRIPS CPU
 * saves, 0 where none is saved); next_rip itself is the subject of
 * svm.exitinfo.next_rip, so that one deviation there does not fail every
 * intercept probe.
 */
static bool expect_exit(struct svm_vcpu *v, uint64_t want, const char *site, uint64_t next,
                        const char *what)
{
    (void)next;
    uint64_t code = svm_run(v);
    if (!svm_check_exit(v, code, want, what))
        return false;
    return check(v->vmcb->save.rip == A(site), "%s: VMCB RIP %#llx, want %#llx", what,
                 (unsigned long long)v->vmcb->save.rip, (unsigned long long)A(site));
}

/* ---- instruction intercepts ------------------------------------------------ */

PROBE(svm_intercept_cpuid, "svm.intercept.cpuid", "SVM",
      "Guest CPUID with the CPUID intercept set: exit 0x72 with RIP at the CPUID, RBX/RDX "
      "unchanged (not executed); resuming at RIP+2 reaches the next VMMCALL. With the intercept "
      "clear the guest executes CPUID leaf 0 and sees the same EAX/EBX as the host",
      "AMD APM Vol. 2 15.9", "apm.15.9.cpuid", "apm.15.7.1.rip-fault-like")
{
    svm_require();
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_i_cpuid, 0);
    v.vmcb->control.intercept_misc1 |= SVM_INTERCEPT_CPUID;
    v.vmcb->save.rax = 0;
    v.regs.rcx = 0;
    v.regs.rbx = 0xb0b0b0b0;
    v.regs.rdx = 0xd0d0d0d0;
    if (!expect_exit(&v, SVM_EXIT_CPUID, svm_i_cpuid, A(svm_i_cpuid) + CPUID_LEN, "CPUID"))
        return;
    check(v.regs.rbx == 0xb0b0b0b0 && v.regs.rdx == 0xd0d0d0d0,
          "CPUID intercept: RBX=%#llx RDX=%#llx changed (instruction executed?)",
          (unsigned long long)v.regs.rbx, (unsigned long long)v.regs.rdx);
    v.vmcb->save.rip = A(svm_i_cpuid) + CPUID_LEN;
    if (!expect_exit(&v, SVM_EXIT_VMMCALL, svm_i_cpuid_vmmcall,
                     A(svm_i_cpuid_vmmcall) + VMMCALL_LEN, "VMMCALL after the resumed CPUID"))
        return;

    entry(&v, svm_i_cpuid);
    v.vmcb->control.intercept_misc1 &= ~(uint32_t)SVM_INTERCEPT_CPUID;
    v.vmcb->save.rax = 0;
    v.regs.rcx = 0;
    if (!expect_exit(&v, SVM_EXIT_VMMCALL, svm_i_cpuid_vmmcall,
                     A(svm_i_cpuid_vmmcall) + VMMCALL_LEN, "CPUID not intercepted"))
        return;
    struct cpuid h = cpuid(0, 0);
    check_eq("guest CPUID.0 EAX", v.vmcb->save.rax & 0xffffffff, h.a);
    check_eq("guest CPUID.0 EBX", v.regs.rbx & 0xffffffff, h.b);
}

PROBE(svm_intercept_hlt, "svm.intercept.hlt", "SVM",
      "Guest HLT (RFLAGS.IF=0) with the HLT intercept set: exit 0x78 with RIP at the HLT; resuming "
      "at RIP+1 reaches the next VMMCALL",
      "AMD APM Vol. 2 15.9", "apm.15.9.hlt")
{
    svm_require();
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_i_hlt, 0);
    v.vmcb->control.intercept_misc1 |= SVM_INTERCEPT_HLT;
    v.watchdog = "the HLT exit (0x78)"; /* an HLT that runs halts with IF=0 for good */
    if (!expect_exit(&v, SVM_EXIT_HLT, svm_i_hlt, A(svm_i_hlt) + HLT_LEN, "HLT"))
        return;
    v.watchdog = NULL;
    v.vmcb->save.rip = A(svm_i_hlt) + HLT_LEN;
    expect_exit(&v, SVM_EXIT_VMMCALL, svm_i_hlt_vmmcall, A(svm_i_hlt_vmmcall) + VMMCALL_LEN,
                "VMMCALL after the resumed HLT");
}

PROBE(svm_intercept_rdtsc, "svm.intercept.rdtsc", "SVM",
      "Guest RDTSC with only the RDTSC intercept set: exit 0x6E at the RDTSC. If CPUID 0x80000001 "
      "EDX.RDTSCP[27]: guest RDTSCP with only the RDTSC intercept set runs without an exit; with "
      "only the RDTSCP intercept set: exit 0x87 at the RDTSCP",
      "AMD APM Vol. 2 15.9", "apm.15.9.rdtsc", "apm.15.9.rdtscp")
{
    svm_require();
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_i_rdtsc, 0);
    v.vmcb->control.intercept_misc1 |= SVM_INTERCEPT_RDTSC;
    if (!expect_exit(&v, SVM_EXIT_RDTSC, svm_i_rdtsc, A(svm_i_rdtsc) + 2, "RDTSC"))
        return;
    v.vmcb->save.rip = A(svm_i_rdtsc) + 2;
    if (!expect_exit(&v, SVM_EXIT_VMMCALL, svm_i_rdtsc_vmmcall,
                     A(svm_i_rdtsc_vmmcall) + VMMCALL_LEN, "VMMCALL after the resumed RDTSC"))
        return;
    if (!(cpuid(0x80000001, 0).d & BIT(27))) {
        note("CPUID 0x80000001 EDX.RDTSCP[27]=0: RDTSCP not tested");
        return;
    }
    entry(&v, svm_i_rdtscp);
    expect_exit(&v, SVM_EXIT_VMMCALL, svm_i_rdtscp_vmmcall, A(svm_i_rdtscp_vmmcall) + VMMCALL_LEN,
                "RDTSCP with only the RDTSC intercept set");

    entry(&v, svm_i_rdtscp);
    v.vmcb->control.intercept_misc1 &= ~(uint32_t)SVM_INTERCEPT_RDTSC;
    v.vmcb->control.intercept_misc2 |= SVM_INTERCEPT_RDTSCP;
    if (!expect_exit(&v, SVM_EXIT_RDTSCP, svm_i_rdtscp, A(svm_i_rdtscp) + 3,
                     "RDTSCP with only the RDTSCP intercept set"))
        return;
    v.vmcb->save.rip = A(svm_i_rdtscp) + 3;
    expect_exit(&v, SVM_EXIT_VMMCALL, svm_i_rdtscp_vmmcall, A(svm_i_rdtscp_vmmcall) + VMMCALL_LEN,
                "VMMCALL after the resumed RDTSCP");
}

PROBE(svm_intercept_vmmcall_clear, "svm.intercept.vmmcall_clear", "SVM",
      "Guest VMMCALL with the VMMCALL intercept clear raises #UD in the guest: with #UD "
      "intercepted, exit 0x46 with RIP at the VMMCALL and EXITINTINFO.V=0",
      "AMD APM Vol. 2 15.9, 15.12.7", "apm.15.18.vmmcall")
{
    svm_require();
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)guest_vmmcall, 0);
    v.vmcb->control.intercept_misc2 &= ~(uint32_t)SVM_INTERCEPT_VMMCALL;
    /* An implementation that handles the VMMCALL itself and never returns
     * to the guest (K3) ends in the watchdog's INTR exit. */
    v.watchdog = "the #UD exit (0x46) of the unintercepted VMMCALL";
    if (!expect_exit(&v, SVM_EXIT_EXCP(UD_VECTOR), guest_vmmcall, 0, "VMMCALL not intercepted"))
        return;
    check(!(v.vmcb->control.exit_int_info & SVM_EVTINJ_VALID), "EXITINTINFO %#llx has V=1",
          (unsigned long long)v.vmcb->control.exit_int_info);
}

/* ---- exception intercepts ------------------------------------------------------ */

PROBE(svm_intercept_exception_ud, "svm.intercept.exception_ud", "SVM",
      "Guest UD2 with #UD intercepted: exit 0x46 with RIP at the UD2 (fault-like), EXITINTINFO.V=0",
      "AMD APM Vol. 2 15.12, 15.12.7", "apm.15.12.exception-intercept")
{
    svm_require();
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)guest_ud2, 0);
    if (!expect_exit(&v, SVM_EXIT_EXCP(UD_VECTOR), guest_ud2, 0, "UD2"))
        return;
    check(!(v.vmcb->control.exit_int_info & SVM_EVTINJ_VALID), "EXITINTINFO %#llx has V=1",
          (unsigned long long)v.vmcb->control.exit_int_info);
}

PROBE(svm_intercept_exception_bp, "svm.intercept.exception_bp", "SVM",
      "Guest INT3 with #BP intercepted: exit 0x43 with RIP = the INT3 (not the next instruction); "
      "resuming at RIP+1 reaches the next VMMCALL",
      "AMD APM Vol. 2 15.12, 15.12.4", "apm.15.12.exception-intercept", "apm.15.12.soft-exceptions")
{
    svm_require();
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_i_int3, 0);
    if (!expect_exit(&v, SVM_EXIT_EXCP(BP_VECTOR), svm_i_int3, A(svm_i_int3) + 1, "INT3"))
        return;
    v.vmcb->save.rip = A(svm_i_int3) + 1;
    expect_exit(&v, SVM_EXIT_VMMCALL, svm_i_int3_vmmcall, A(svm_i_int3_vmmcall) + VMMCALL_LEN,
                "VMMCALL after the resumed INT3");
}

/* The #PF intercept precedes the CR2 write: the VMCB CR2 must not hold the
 * faulting address. That VMRUN loaded CR2 at all is svm.basic.cr2's
 * subject: here a mismatch with the loaded value is only noted. */
static void pf_cr2(struct svm_vcpu *v, uint64_t loaded, uint64_t fault, const char *kind)
{
    uint64_t got = v->vmcb->save.cr2;
    check(got != fault,
          "%s #PF: VMCB CR2 = the faulting address %#llx: CR2 written before the intercept", kind,
          (unsigned long long)fault);
    if (got != fault && got != loaded)
        note("%s #PF: VMCB CR2 %#llx, loaded %#llx (see svm.basic.cr2)", kind,
             (unsigned long long)got, (unsigned long long)loaded);
}

PROBE(svm_intercept_exception_pf, "svm.intercept.exception_pf", "SVM",
      "Guest read and then write of a not-present address with #PF intercepted: exit 0x4E with RIP "
      "at the faulting MOV, EXITINFO1 = the #PF error code (0 for the read, W=2 for the write), "
      "EXITINFO2 = the address, VMCB CR2 not the faulting address (the intercept precedes the CR2 "
      "write)",
      "AMD APM Vol. 2 15.12.15", "apm.15.12.pf-exitinfo")
{
    svm_require();
    uint64_t addr = svm_unmapped_address();
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_i_pf_read, 0);
    v.regs.rbx = addr;
    const uint64_t cr2 = 0x5a5a5000;
    v.vmcb->save.cr2 = cr2;
    if (!expect_exit(&v, SVM_EXIT_EXCP(PF_VECTOR), svm_i_pf_read, 0, "read of an unmapped address"))
        return;
    check_eq("read #PF: EXITINFO1 (error code)", v.vmcb->control.exit_info_1, 0);
    check_eq("read #PF: EXITINFO2 (address)", v.vmcb->control.exit_info_2, addr);
    pf_cr2(&v, cr2, addr, "read");

    v.vmcb->save.rip = A(svm_i_pf_write);
    if (!expect_exit(&v, SVM_EXIT_EXCP(PF_VECTOR), svm_i_pf_write, 0,
                     "write of an unmapped address"))
        return;
    check_eq("write #PF: EXITINFO1 (error code)", v.vmcb->control.exit_info_1, 2);
    check_eq("write #PF: EXITINFO2 (address)", v.vmcb->control.exit_info_2, addr + 8);
    pf_cr2(&v, cr2, addr + 8, "write");
}

/* ---- MSR and I/O permission maps --------------------------------------------------- */

PROBE(svm_intercept_msrpm, "svm.intercept.msrpm", "SVM",
      "MSR_PROT set, MSRPM read+write bits for KERNEL_GS_BASE: guest RDMSR exits 0x7C with "
      "EXITINFO1=0, WRMSR with EXITINFO1=1, RIP at the instruction; with the bits clear both "
      "execute in the guest (RDMSR returns the VMLOADed value); RDMSR of MSR 0x40000000 (outside "
      "the map) exits 0x7C",
      "AMD APM Vol. 2 15.11", "apm.15.11.msrpm")
{
    svm_require();
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_i_msr_rd, 0);
    v.vmcb->control.intercept_misc1 |= SVM_INTERCEPT_MSR_PROT;
    if (!svm_msrpm_set(&v, MSR_KERNEL_GS_BASE, true, true))
        error("svm_msrpm_set(KERNEL_GS_BASE) failed");
    v.regs.rcx = MSR_KERNEL_GS_BASE;
    if (!expect_exit(&v, SVM_EXIT_MSR, svm_i_msr_rd, A(svm_i_msr_rd) + 2, "RDMSR KERNEL_GS_BASE"))
        return;
    check_eq("RDMSR intercept EXITINFO1", v.vmcb->control.exit_info_1, 0);
    v.vmcb->save.rip = A(svm_i_msr_rd) + 2;
    if (!expect_exit(&v, SVM_EXIT_VMMCALL, svm_i_msr_vmmcall1, A(svm_i_msr_vmmcall1) + VMMCALL_LEN,
                     "VMMCALL after the resumed RDMSR"))
        return;
    v.vmcb->save.rip = A(svm_i_msr_wr);
    if (!expect_exit(&v, SVM_EXIT_MSR, svm_i_msr_wr, A(svm_i_msr_wr) + 2, "WRMSR KERNEL_GS_BASE"))
        return;
    check_eq("WRMSR intercept EXITINFO1", v.vmcb->control.exit_info_1, 1);

    /* Not intercepted: the guest reads its (VMLOADed) KERNEL_GS_BASE and
     * writes it back unchanged. */
    svm_msrpm_set(&v, MSR_KERNEL_GS_BASE, false, false);
    entry(&v, svm_i_msr_rd);
    v.regs.rcx = MSR_KERNEL_GS_BASE;
    if (!expect_exit(&v, SVM_EXIT_VMMCALL, svm_i_msr_vmmcall1, A(svm_i_msr_vmmcall1) + VMMCALL_LEN,
                     "RDMSR with the MSRPM bit clear"))
        return;
    uint64_t kgs = v.vmcb->save.kernel_gs_base;
    uint64_t got = (v.vmcb->save.rax & 0xffffffff) | (v.regs.rdx << 32);
    check_eq("guest RDMSR KERNEL_GS_BASE", got, kgs);
    v.vmcb->save.rip = A(svm_i_msr_wr);
    if (!expect_exit(&v, SVM_EXIT_VMMCALL, svm_i_msr_vmmcall2, A(svm_i_msr_vmmcall2) + VMMCALL_LEN,
                     "WRMSR with the MSRPM bit clear"))
        return;

    entry(&v, svm_i_msr_rd);
    v.regs.rcx = 0x40000000;
    if (!expect_exit(&v, SVM_EXIT_MSR, svm_i_msr_rd, A(svm_i_msr_rd) + 2,
                     "RDMSR 0x40000000 (not covered by the MSRPM)"))
        return;
    check_eq("RDMSR 0x40000000 EXITINFO1", v.vmcb->control.exit_info_1, 0);
}

PROBE(svm_intercept_iopm, "svm.intercept.iopm", "SVM",
      "IOIO_PROT set, IOPM bit for port 0x80 only: guest OUT 0x80,AL / IN AL,0x80 / OUT DX=0x7F,AX "
      "(covers 0x7F-0x80) each exit 0x7B with RIP at the instruction and EXITINFO1 = port<<16 | "
      "size (SZ8/SZ16) | A64 | TYPE (1 for IN), EXITINFO2 = the next RIP; with the bit clear OUT "
      "0x80 runs in the guest",
      "AMD APM Vol. 2 15.10.1, 15.10.2", "apm.15.10.1.iopm", "apm.15.10.2.io-exitinfo1",
      "apm.15.10.2.io-exitinfo2")
{
    svm_require();
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_i_io_out, 0);
    v.vmcb->control.intercept_misc1 |= SVM_INTERCEPT_IOIO_PROT;
    svm_iopm_set(&v, 0x80, true);
    v.regs.rdx = 0x7f;
    static const struct {
        const char *site, *next, *what;
        uint64_t info1;
    } t[3] = {
        {svm_i_io_out, svm_i_io_vmmcall1, "OUT 0x80,AL",
         (0x80ull << SVM_IOIO_PORT_SHIFT) | SVM_IOIO_SZ8 | SVM_IOIO_A64},
        {svm_i_io_in, svm_i_io_vmmcall2, "IN AL,0x80",
         (0x80ull << SVM_IOIO_PORT_SHIFT) | SVM_IOIO_SZ8 | SVM_IOIO_A64 | SVM_IOIO_TYPE_IN},
        {svm_i_io_outw, svm_i_io_vmmcall3, "OUT DX=0x7f,AX",
         (0x7full << SVM_IOIO_PORT_SHIFT) | SVM_IOIO_SZ16 | SVM_IOIO_A64},
    };
    for (unsigned i = 0; i < 3; i++) {
        v.vmcb->save.rip = A(t[i].site);
        if (!expect_exit(&v, SVM_EXIT_IOIO, t[i].site, A(t[i].next), t[i].what))
            return;
        check(v.vmcb->control.exit_info_1 == t[i].info1, "%s: EXITINFO1 %#llx, want %#llx",
              t[i].what, (unsigned long long)v.vmcb->control.exit_info_1,
              (unsigned long long)t[i].info1);
        check(v.vmcb->control.exit_info_2 == A(t[i].next),
              "%s: EXITINFO2 %#llx, want next RIP %#llx", t[i].what,
              (unsigned long long)v.vmcb->control.exit_info_2, (unsigned long long)A(t[i].next));
    }
    svm_iopm_set(&v, 0x80, false);
    v.vmcb->save.rip = A(svm_i_io_out);
    expect_exit(&v, SVM_EXIT_VMMCALL, svm_i_io_vmmcall1, A(svm_i_io_vmmcall1) + VMMCALL_LEN,
                "OUT 0x80 with the IOPM bit clear");
}

/* ---- SHUTDOWN -------------------------------------------------------------------------- */

PROBE(svm_intercept_shutdown, "svm.intercept.shutdown", "SVM",
      "Guest with no exception intercepts and IDTR.limit=0 executes UD2: #UD, #GP and #DF cannot "
      "be delivered, the resulting shutdown is intercepted: exit 0x7F (the saved guest state is "
      "undefined and not checked)",
      "AMD APM Vol. 2 15.14.3, 15.12", "apm.15.14.3.shutdown")
{
    svm_require();
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)guest_ud2, 0);
    v.vmcb->control.intercept_exceptions = 0;
    v.vmcb->save.idtr.limit = 0;
    uint64_t code = svm_run(&v);
    svm_check_exit(&v, code, SVM_EXIT_SHUTDOWN, "triple fault in the guest");
}
