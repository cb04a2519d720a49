/* SPDX-License-Identifier: MIT */
/*
 * SVM decode assists (AMD APM Vol. 2 15.8): CR/DR access information in
 * EXITINFO1, the INVLPG linear address, and the guest instruction bytes
 * for #PF/#NPF. Each probe is gated on CPUID 0x8000000A EDX.DecodeAssists.
 */
#include "nvct.h"
#include "svm.h"

GUEST(svm_d_movcr0, "mov %rbx, %cr0", "vmmcall", "ud2"); /* GPR 3 */
GUEST(svm_d_movcr3, "mov %cr3, %r13", "vmmcall", "ud2"); /* GPR 13 */
GUEST(svm_d_lmsw, "lmsw %dx", "vmmcall", "ud2");
GUEST(svm_d_movdr7, "mov %rsi, %db7", "vmmcall", "ud2"); /* GPR 6 */
GUEST(svm_d_invlpg, "invlpg 0x10(%rbx)", "vmmcall", "ud2");
GUEST(svm_d_pf, "movq %rax, 0x18(%rbx)", "vmmcall", "ud2"); /* 48 89 43 18 */

static void require_decode(void)
{
    svm_require();
    if (!svm_has(SVM_FEAT_DECODE_ASSISTS))
        skip("CPUID 0x8000000A EDX.DecodeAssists[7]=0");
}

static bool run_to(struct svm_vcpu *v, void (*site)(void), uint64_t exit, const char *what)
{
    svm_vcpu_set_entry(v, (svm_guest_fn)(uintptr_t)site, 0);
    uint64_t code = svm_run(v);
    if (!svm_check_exit(v, code, exit, what))
        return false;
    return check(v->vmcb->save.rip == A(site), "%s: VMCB RIP %#llx, want %#llx", what,
                 (unsigned long long)v->vmcb->save.rip, (unsigned long long)A(site));
}

PROBE(svm_decode_crdr, "svm.exitinfo.decode_crdr", "decode assists",
      "With CPUID 0x8000000A EDX.DecodeAssists[7]=1: intercepted MOV RBX->CR0 gives EXITINFO1 = "
      "bit 63 | 3 (MOV CRx, GPR 3); MOV CR3->R13 gives bit 63 | 13; LMSW gives bit 63 clear (no "
      "GPR information); MOV RSI->DR7 gives EXITINFO1 = 6",
      "AMD APM Vol. 2 15.8.1", "apm.15.8.1.decode-crdr")
{
    require_decode();
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_d_movcr0, 0);
    v.vmcb->control.intercept_cr = SVM_INTERCEPT_CR_WRITE(0) | SVM_INTERCEPT_CR_READ(3);
    v.vmcb->control.intercept_dr = SVM_INTERCEPT_DR_WRITE(7);
    v.regs.rbx = v.vmcb->save.cr0;
    v.regs.rdx = v.vmcb->save.cr0 & 0xffff;
    v.regs.rsi = 0x400;
    if (run_to(&v, svm_d_movcr0, SVM_EXIT_CR_WRITE(0), "MOV RBX to CR0"))
        check_eq("MOV RBX to CR0: EXITINFO1", v.vmcb->control.exit_info_1, BIT(63) | 3);
    if (run_to(&v, svm_d_movcr3, SVM_EXIT_CR_READ(3), "MOV CR3 to R13"))
        check_eq("MOV CR3 to R13: EXITINFO1", v.vmcb->control.exit_info_1, BIT(63) | 13);
    if (run_to(&v, svm_d_lmsw, SVM_EXIT_CR_WRITE(0), "LMSW"))
        check_eq("LMSW: EXITINFO1 bit 63", v.vmcb->control.exit_info_1 & BIT(63), 0);
    if (run_to(&v, svm_d_movdr7, SVM_EXIT_DR_WRITE(7), "MOV RSI to DR7"))
        check_eq("MOV RSI to DR7: EXITINFO1", v.vmcb->control.exit_info_1, 6);
}

PROBE(svm_decode_invlpg, "svm.exitinfo.decode_invlpg", "decode assists",
      "With CPUID 0x8000000A EDX.DecodeAssists[7]=1: intercepted INVLPG 0x10(%rbx) gives EXITINFO1 "
      "= the linear address RBX+0x10",
      "AMD APM Vol. 2 15.8.3", "apm.15.8.3.decode-invlpg")
{
    require_decode();
    struct svm_vcpu v;
    void *page = alloc_page();
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_d_invlpg, 0);
    v.vmcb->control.intercept_misc1 |= SVM_INTERCEPT_INVLPG;
    v.regs.rbx = A(page);
    if (run_to(&v, svm_d_invlpg, SVM_EXIT_INVLPG, "INVLPG"))
        check_eq("INVLPG: EXITINFO1 (linear address)", v.vmcb->control.exit_info_1, A(page) + 0x10);
}

PROBE(svm_decode_insn_bytes, "svm.exitinfo.decode_insn_bytes", "decode assists",
      "With CPUID 0x8000000A EDX.DecodeAssists[7]=1: an intercepted data #PF (MOV RAX to "
      "0x18(RBX), RBX unmapped) records the guest instruction bytes: VMCB byte 0xD0 = 15 (bytes "
      "fetched, no fault while fetching) and bytes 0xD1.. = the 4 bytes of the MOV (48 89 43 18) "
      "followed by the next ones",
      "AMD APM Vol. 2 15.8.4", "apm.15.8.4.decode-insn-bytes")
{
    require_decode();
    struct svm_vcpu v;
    svm_vcpu_init(&v, (svm_guest_fn)(uintptr_t)svm_d_pf, 0);
    v.regs.rbx = svm_unmapped_address();
    if (!run_to(&v, svm_d_pf, SVM_EXIT_EXCP(PF_VECTOR), "data #PF"))
        return;
    check_eq("#PF: number of bytes fetched", v.vmcb->control.insn_len & 0xf, 15);
    check(memcmp(v.vmcb->control.insn_bytes, (const void *)svm_d_pf, 15) == 0,
          "#PF: guest instruction bytes %02x %02x %02x %02x ... differ from the code at RIP",
          v.vmcb->control.insn_bytes[0], v.vmcb->control.insn_bytes[1],
          v.vmcb->control.insn_bytes[2], v.vmcb->control.insn_bytes[3]);
}
