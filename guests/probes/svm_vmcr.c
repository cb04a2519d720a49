/* SPDX-License-Identifier: MIT */
/*
 * VM_CR (MSR C001_0114), the SVM control register (APM Vol. 2 15.30.1):
 * with LOCK[3] clear, SVMDIS[4] is writable, and while it is set, writes
 * to EFER treat SVME as must-be-zero.
 *
 * Isolated: KVM (arch/x86/kvm/svm/svm.c, svm_set_vm_cr) refuses to change
 * SVMDIS or LOCK once SVMDIS is set, so under it this probe cannot undo
 * what it did, and every SVM probe after it in the same boot would find SVM
 * disabled. The harness gives it a boot of its own.
 */
#include "nvct.h"
#include "svm.h"

/* VM_CR, after the SKIPs of a level where SVMDIS cannot be written: no SVM,
 * LOCK set, or SVM already disabled (the firmware's choice). */
static uint64_t vm_cr_unlocked(void)
{
    if (!svm_supported())
        skip("CPUID 0x80000001 ECX.SVM[2]=0");
    uint64_t vmcr;
    int v = rdmsr_safe(MSR_VM_CR, &vmcr);
    if (v != NO_FAULT)
        fail("RDMSR VM_CR raised vector %d with SVM exposed", v);
    if (vmcr & VM_CR_LOCK)
        skip("VM_CR.LOCK[3]=1: SVMDIS is not writable at this level (VM_CR=%#llx)",
             (unsigned long long)vmcr);
    if (vmcr & VM_CR_SVMDIS)
        skip("VM_CR.SVMDIS[4]=1: SVM disabled by firmware (VM_CR=%#llx)", (unsigned long long)vmcr);
    return vmcr;
}

PROBE_ISOLATED_(svm_vm_cr_svmdis, "svm.vm_cr.svmdis", "SVM",
                "With VM_CR.LOCK[3]=0 and EFER.SVME=0: WRMSR VM_CR setting SVMDIS[4] succeeds and "
                "reads back 1; WRMSR EFER with SVME=1 then raises #GP and EFER.SVME stays 0; WRMSR "
                "VM_CR clearing SVMDIS (LOCK still 0) succeeds and reads back 0, after which WRMSR "
                "EFER with SVME=1 is accepted",
                "AMD APM Vol. 2 15.4 (Enabling SVM), 15.30.1 (VM_CR MSR)", "apm.15.4.svmdis",
                "apm.15.30.1.vm-cr")
{
    uint64_t vmcr = vm_cr_unlocked();
    int v;

    uint64_t efer = rdmsr(MSR_EFER) & ~EFER_SVME;
    wrmsr(MSR_EFER, efer);

    v = wrmsr_safe(MSR_VM_CR, vmcr | VM_CR_SVMDIS);
    if (!check(v == NO_FAULT, "WRMSR VM_CR=%#llx (SVMDIS=1, LOCK=0) raised vector %d",
               (unsigned long long)(vmcr | VM_CR_SVMDIS), v))
        return;
    uint64_t got = rdmsr(MSR_VM_CR);
    if (!check(got & VM_CR_SVMDIS, "VM_CR reads back %#llx after setting SVMDIS: SVMDIS[4]=0",
               (unsigned long long)got))
        return;

    v = wrmsr_safe(MSR_EFER, efer | EFER_SVME);
    if (v == NO_FAULT)
        check(false, "WRMSR EFER.SVME=1 with VM_CR.SVMDIS=1: want #GP, got no fault");
    else
        check(v == GP_VECTOR, "WRMSR EFER.SVME=1 with VM_CR.SVMDIS=1: want #GP, got vector %d", v);
    uint64_t now = rdmsr(MSR_EFER);
    check(!(now & EFER_SVME), "EFER reads %#llx after the refused write: SVME set",
          (unsigned long long)now);
    wrmsr(MSR_EFER, efer);

    v = wrmsr_safe(MSR_VM_CR, vmcr & ~VM_CR_SVMDIS);
    if (!check(v == NO_FAULT, "WRMSR VM_CR=%#llx (clearing SVMDIS, LOCK=0) raised vector %d",
               (unsigned long long)(vmcr & ~VM_CR_SVMDIS), v))
        return;
    got = rdmsr(MSR_VM_CR);
    if (!check(!(got & VM_CR_SVMDIS),
               "VM_CR reads back %#llx after clearing SVMDIS with LOCK=0: SVMDIS[4]=1",
               (unsigned long long)got))
        return;
    v = wrmsr_safe(MSR_EFER, efer | EFER_SVME);
    check(v == NO_FAULT, "WRMSR EFER.SVME=1 after clearing SVMDIS raised vector %d", v);
    wrmsr(MSR_EFER, efer);
}

PROBE_ISOLATED_(svm_vm_cr_svmdis_svme, "svm.vm_cr.svmdis_svme", "SVM",
                "With VM_CR.LOCK[3]=0 and EFER.SVME=1: WRMSR VM_CR setting SVMDIS[4] raises #GP "
                "and has no effect (VM_CR reads back unchanged); EFER.SVME is still 1",
                "AMD APM Vol. 2 15.30.1 (VM_CR MSR: setting SVMDIS while EFER.SVME is 1 generates "
                "a #GP fault)",
                "apm.15.30.1.svmdis-svme")
{
    uint64_t vmcr = vm_cr_unlocked();
    int v;

    uint64_t efer = rdmsr(MSR_EFER);
    v = wrmsr_safe(MSR_EFER, efer | EFER_SVME);
    if (!check(v == NO_FAULT, "WRMSR EFER.SVME=1 raised vector %d", v))
        return;
    v = wrmsr_safe(MSR_VM_CR, vmcr | VM_CR_SVMDIS);
    if (v == NO_FAULT)
        check(false, "WRMSR VM_CR.SVMDIS=1 with EFER.SVME=1: want #GP, got no fault");
    else
        check(v == GP_VECTOR, "WRMSR VM_CR.SVMDIS=1 with EFER.SVME=1: want #GP, got vector %d", v);
    uint64_t got = rdmsr(MSR_VM_CR);
    check_eq("VM_CR after the refused write", got, vmcr);
    check(rdmsr(MSR_EFER) & EFER_SVME, "EFER.SVME reads 0 after the VM_CR write");
    wrmsr(MSR_EFER, efer & ~EFER_SVME);
}
