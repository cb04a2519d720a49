/* SPDX-License-Identifier: MIT */
/*
 * Miscellaneous VMX features: VMCS shadowing.
 */
#include "vmx.h"

extern const char vmx_mi_shadow_rd[];
GUEST(vmx_mi_shadow_guest, "    mov $0x681e, %eax\n"
                           "    mov $0x5678, %ecx\n"
                           "vmx_mi_shadow_rd:\n"
                           "    vmread %rax, %rbx\n"
                           "    vmwrite %rcx, %rax\n"
                           "    vmcall\n"
                           "    ud2");

PROBE(vmx_misc_vmcs_shadowing, "vmx.misc.vmcs_shadowing", "VMCS shadowing",
      "With VMCS shadowing, a shadow VMCS (revision | bit 31) as VMCS link pointer and zeroed "
      "VMREAD/VMWRITE bitmaps, guest VMREAD of GUEST_RIP (0x681e) returns the shadow's value "
      "0xabcd "
      "and guest VMWRITE of 0x5678 lands in the shadow, both without exit; with the field's bit "
      "set "
      "in the VMREAD bitmap, guest VMREAD exits with reason 23",
      "Intel SDM Vol. 3C 25.6.15, 25.10, 26.1.3, 31.3 (VMREAD, VMWRITE)",
      "sdm.25.6.15.shadow-bitmaps", "sdm.26.1.3.vmread-vmwrite", "sdm.25.10.shadow-vmcs")
{
    vmx_require_ctl(VMX_CTL_PROC2, PROC2_VMCS_SHADOWING, "VMCS shadowing");
    vmx_on();
    uint32_t *shadow = vmx_alloc_vmcs();
    shadow[0] |= 0x80000000u;
    uint64_t spa = (uintptr_t)shadow;
    struct vmx_res r = vmclear(spa);
    if (!check_vmx("VMCLEAR of the shadow VMCS", r, VMX_SUCCEED, 0))
        return;
    r = vmptrld(spa);
    if (!check_vmx("VMPTRLD of the shadow VMCS", r, VMX_SUCCEED, 0))
        return;
    vmcs_write(VMCS_GUEST_RIP, 0xabcd);
    r = vmclear(spa);
    if (!check_vmx("VMCLEAR of the shadow VMCS", r, VMX_SUCCEED, 0))
        return;

    struct vmx_vcpu *v = vmx_vcpu_new(vmx_mi_shadow_guest);
    uint8_t *rbm = alloc_page(), *wbm = alloc_page();
    vmcs_set_bits(VMCS_PROC_CTLS, PROC_SECONDARY_CTLS);
    vmcs_set_bits(VMCS_PROC_CTLS2, PROC2_VMCS_SHADOWING);
    vmcs_write(VMCS_LINK_PTR, spa);
    vmcs_write(VMCS_VMREAD_BITMAP, (uintptr_t)rbm);
    vmcs_write(VMCS_VMWRITE_BITMAP, (uintptr_t)wbm);
    if (!vmx_run_expect(v, EXIT_VMCALL, "guest VMREAD/VMWRITE with zeroed bitmaps"))
        return;
    check_eq("guest RBX from VMREAD of the shadow's GUEST_RIP", v->gpr[VMX_GPR_RBX], 0xabcd);

    r = vmclear(v->vmcs_pa);
    check_vmx("VMCLEAR of the ordinary VMCS", r, VMX_SUCCEED, 0);
    r = vmptrld(spa);
    if (check_vmx("VMPTRLD of the shadow VMCS", r, VMX_SUCCEED, 0))
        check_eq("the shadow's GUEST_RIP after the guest's VMWRITE", vmcs_read(VMCS_GUEST_RIP),
                 0x5678);
    r = vmclear(spa);
    check_vmx("VMCLEAR of the shadow VMCS", r, VMX_SUCCEED, 0);
    r = vmptrld(v->vmcs_pa);
    if (!check_vmx("VMPTRLD of the ordinary VMCS", r, VMX_SUCCEED, 0))
        return;
    rbm[0x681e / 8] |= (uint8_t)(1u << (0x681e % 8));
    vmcs_write(VMCS_GUEST_RIP, (uintptr_t)vmx_mi_shadow_guest);
    v->launched = 0;
    if (vmx_run_expect(v, EXIT_VMREAD, "guest VMREAD with its VMREAD-bitmap bit set"))
        check_eq("guest RIP at the VMREAD exit", v->guest_rip, (uintptr_t)vmx_mi_shadow_rd);
}

/* IA32_KERNEL_GS_BASE */
GUEST(vmx_mi_msr_guest, "    mov $0xc0000102, %ecx\n"
                        "    rdmsr\n"
                        "    mov %rax, %rbx\n"
                        "    mov %rdx, %rsi\n"
                        "    mov $0x1111000, %eax\n"
                        "    xor %edx, %edx\n"
                        "    wrmsr\n"
                        "    vmcall\n"
                        "    ud2");

struct msr_entry {
    uint32_t index, reserved;
    uint64_t value;
};

PROBE(vmx_misc_msr_lists, "vmx.misc.msr_lists", "VMX",
      "VM-entry MSR-load list of two 16-byte entries {IA32_KERNEL_GS_BASE=0x5555000, "
      "IA32_KERNEL_GS_BASE=0x2222000}: the guest reads 0x2222000; the guest writes 0x1111000 (MSR "
      "bitmap zero); VM-exit MSR-store list {IA32_KERNEL_GS_BASE, IA32_KERNEL_GS_BASE}: both "
      "entries receive 0x1111000; VM-exit MSR-load list {IA32_KERNEL_GS_BASE=0x4444000, "
      "IA32_KERNEL_GS_BASE=0x3333000}: the host reads 0x3333000 after the exit",
      "Intel SDM Vol. 3C 25.7.2, 25.8.2, 27.4, 28.4, 28.6", "sdm.27.4.msr-load-order",
      "sdm.28.4.msr-store", "sdm.28.6.msr-load", "sdm.25.7.2.exit-msr-areas",
      "sdm.25.8.2.entry-msr-area")
{
    vmx_require_ctl(VMX_CTL_PROC, PROC_MSR_BITMAPS, "use MSR bitmaps");
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_mi_msr_guest);
    vmcs_write(VMCS_MSR_BITMAP, (uintptr_t)alloc_page());
    vmcs_set_bits(VMCS_PROC_CTLS, PROC_MSR_BITMAPS);
    struct msr_entry *eload = alloc_page(), *estore = alloc_page(), *xload = alloc_page();
    /* two entries each: the second, 16 bytes on, is the one that must win or be stored */
    eload[0] = (struct msr_entry){MSR_KERNEL_GS_BASE, 0, 0x5555000};
    eload[1] = (struct msr_entry){MSR_KERNEL_GS_BASE, 0, 0x2222000};
    estore[0] = (struct msr_entry){MSR_KERNEL_GS_BASE, 0, 0xdead};
    estore[1] = (struct msr_entry){MSR_KERNEL_GS_BASE, 0, 0xbeef};
    xload[0] = (struct msr_entry){MSR_KERNEL_GS_BASE, 0, 0x4444000};
    xload[1] = (struct msr_entry){MSR_KERNEL_GS_BASE, 0, 0x3333000};
    vmcs_write(VMCS_ENTRY_MSR_LOAD_ADDR, (uintptr_t)eload);
    vmcs_write(VMCS_ENTRY_MSR_LOAD_COUNT, 2);
    vmcs_write(VMCS_EXIT_MSR_STORE_ADDR, (uintptr_t)estore);
    vmcs_write(VMCS_EXIT_MSR_STORE_COUNT, 2);
    vmcs_write(VMCS_EXIT_MSR_LOAD_ADDR, (uintptr_t)xload);
    vmcs_write(VMCS_EXIT_MSR_LOAD_COUNT, 2);
    uint64_t saved = rdmsr(MSR_KERNEL_GS_BASE);
    uint32_t r = vmx_run(v);
    uint64_t after = rdmsr(MSR_KERNEL_GS_BASE);
    wrmsr(MSR_KERNEL_GS_BASE, saved);
    if (!check(r == EXIT_VMCALL, "guest with MSR lists: want exit 18 (VMCALL), got %s",
               vmx_exit_str(v)))
        return;
    check_eq("IA32_KERNEL_GS_BASE the guest read (VM-entry MSR-load)",
             (v->gpr[VMX_GPR_RSI] << 32) | (uint32_t)v->gpr[VMX_GPR_RBX], 0x2222000);
    check_eq("VM-exit MSR-store entry 0", estore[0].value, 0x1111000);
    check_eq("VM-exit MSR-store entry 1", estore[1].value, 0x1111000);
    check_eq("VM-exit MSR-store entry 1: index", estore[1].index, MSR_KERNEL_GS_BASE);
    check_eq("host IA32_KERNEL_GS_BASE after the exit (VM-exit MSR-load)", after, 0x3333000);
}

/* RDTSC into RDX:RAX; with RBX bit 0 RDMSR(IA32_TSC) into R9:R8, with bit 1 RDTSCP into
 * R11:R10 */
GUEST(vmx_mi_tsc_guest, "rdtsc", "mov %rax, %rsi", "mov %rdx, %rdi", "test $1, %bl", "jz 1f",
      "mov $0x10, %ecx", "rdmsr", "mov %rax, %r8", "mov %rdx, %r9", "1: test $2, %bl", "jz 2f",
      "rdtscp", "mov %rax, %r10", "mov %rdx, %r11", "2: mov %rsi, %rax", "mov %rdi, %rdx", "vmcall",
      "ud2");

PROBE(vmx_misc_tsc_scaling, "vmx.misc.tsc_scaling", "VMX",
      "With TSC offsetting (offset 2^40) and TSC scaling (multiplier 2.0 = 2 << 48), a guest RDTSC "
      "returns a value in [2 * host TSC before, 2 * host TSC after] + 2^40; so do RDMSR of "
      "IA32_TSC (MSR bitmap zero) and, where enable RDTSCP is offered, RDTSCP",
      "Intel SDM Vol. 3C 25.6.5, 26.3, 27.2.1.1", "sdm.25.6.5.tsc-multiplier", "sdm.26.3.rdtsc")
{
    vmx_require_ctl(VMX_CTL_PROC, PROC_TSC_OFFSETTING, "use TSC offsetting");
    vmx_require_ctl(VMX_CTL_PROC2, PROC2_TSC_SCALING, "use TSC scaling");
    vmx_on();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_mi_tsc_guest);
    vmcs_clear_bits(VMCS_PROC_CTLS, PROC_RDTSC_EXITING);
    vmcs_set_bits(VMCS_PROC_CTLS, PROC_TSC_OFFSETTING | PROC_SECONDARY_CTLS);
    vmcs_set_bits(VMCS_PROC_CTLS2, PROC2_TSC_SCALING);
    vmcs_write(VMCS_TSC_OFFSET, 1ull << 40);
    vmcs_write(VMCS_TSC_MULTIPLIER, 2ull << 48);
    bool msr = vmx_ctl_can_set(VMX_CTL_PROC, PROC_MSR_BITMAPS);
    if (msr) {
        vmcs_write(VMCS_MSR_BITMAP, (uintptr_t)alloc_page());
        vmcs_set_bits(VMCS_PROC_CTLS, PROC_MSR_BITMAPS);
    }
    bool tscp = vmx_ctl_can_set(VMX_CTL_PROC2, PROC2_RDTSCP);
    if (tscp)
        vmcs_set_bits(VMCS_PROC_CTLS2, PROC2_RDTSCP);
    v->gpr[VMX_GPR_RBX] = (msr ? 1u : 0u) | (tscp ? 2u : 0u);
    uint64_t before = rdtsc();
    if (!vmx_run_expect(v, EXIT_VMCALL, "guest RDTSC with TSC scaling"))
        return;
    uint64_t after = rdtsc();
    const struct {
        const char *what;
        unsigned hi, lo;
        bool run;
    } reads[] = {{"RDTSC", VMX_GPR_RDX, VMX_GPR_RAX, true},
                 {"RDMSR(IA32_TSC)", VMX_GPR_R9, VMX_GPR_R8, msr},
                 {"RDTSCP", VMX_GPR_R11, VMX_GPR_R10, tscp}};
    for (unsigned i = 0; i < ARRAY_SIZE(reads); i++) {
        if (!reads[i].run) {
            note("guest %s not run (control not offered)", reads[i].what);
            continue;
        }
        uint64_t g = (v->gpr[reads[i].hi] << 32) | (uint32_t)v->gpr[reads[i].lo];
        check(g >= 2 * before + (1ull << 40) && g <= 2 * after + (1ull << 40),
              "guest %s %#llx not within 2 * [%#llx, %#llx] + 2^40", reads[i].what,
              (unsigned long long)g, (unsigned long long)before, (unsigned long long)after);
    }
}

extern const char vmx_mi_rw_write[];
GUEST(vmx_mi_rw_guest, "mov (%rdi), %rax", "vmcall", "vmx_mi_rw_write:", "mov %rax, (%rdi)",
      "vmcall", "ud2");

PROBE(vmx_misc_pml, "vmx.misc.pml", "PML",
      "With EPT A/D flags and page-modification logging (PML index 511), a guest read of P logs "
      "nothing for P; a guest write of P (EPT D 0 -> 1) writes P's 4 KiB-aligned GPA into the "
      "PML buffer between index+1 and 511, and the index decreases by the number of entries "
      "logged; with the PML index then set to 0xffff (outside 0-511), a guest write of a fresh "
      "page R (EPT A = D = 0) exits with reason 62 (page-modification log full) before the access: "
      "guest RIP at the write (or at the read, if it already logged) and R's EPT D flag still 0",
      "Intel SDM Vol. 3C 29.3.6 (Page-Modification Logging), 29.3.4, 25.6.18", "sdm.29.3.6.pml-log",
      "sdm.29.3.6.pml-no-log", "sdm.C.reason-62-pml-full", "sdm.28.3.4.pml-index",
      "sdm.25.6.18.pml-address", "sdm.29.3.6.pml-full")
{
    vmx_require_ctl(VMX_CTL_PROC2, PROC2_PML, "enable PML");
    if (!(vmx_caps()->ept_vpid & VMX_EPT_AD))
        skip("IA32_VMX_EPT_VPID_CAP=%#llx: bit 21 (EPT accessed and dirty flags) clear",
             (unsigned long long)vmx_caps()->ept_vpid);
    vmx_on();
    uint64_t eptp = vmx_ept_identity() | EPTP_AD;
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_mi_rw_guest);
    uint64_t pa = (uintptr_t)alloc_page();
    vmx_ept_pte(eptp, pa);
    vmx_use_ept(v, eptp);
    uint64_t *log = alloc_page();
    vmcs_write(VMCS_PML_ADDR, (uintptr_t)log);
    vmcs_write(VMCS_GUEST_PML_INDEX, 511);
    vmcs_set_bits(VMCS_PROC_CTLS2, PROC2_PML);
    v->gpr[VMX_GPR_RDI] = pa;
    if (!vmx_run_expect(v, EXIT_VMCALL, "guest read of P"))
        return;
    uint64_t idx = vmcs_read(VMCS_GUEST_PML_INDEX);
    for (uint64_t i = idx + 1; i < 512 && idx < 511; i++)
        check(log[i] != pa, "PML entry %llu = P after a read only", (unsigned long long)i);
    vmx_skip_insn(v);
    if (!vmx_run_expect(v, EXIT_VMCALL, "guest write of P"))
        return;
    uint64_t idx2 = vmcs_read(VMCS_GUEST_PML_INDEX);
    note("PML index 511 -> %llu (read) -> %llu (write)", (unsigned long long)idx,
         (unsigned long long)idx2);
    if (!check(idx2 < idx && idx2 < 511,
               "PML index %llu did not decrease after the write (was %llu)",
               (unsigned long long)idx2, (unsigned long long)idx))
        return;
    bool found = false;
    for (uint64_t i = idx2 + 1; i <= idx; i++) {
        check((log[i] & 0xfff) == 0, "PML entry %llu = %#llx not 4 KiB aligned",
              (unsigned long long)i, (unsigned long long)log[i]);
        found |= log[i] == pa;
    }
    check(found, "P (%#llx) not among the PML entries %llu..%llu", (unsigned long long)pa,
          (unsigned long long)idx2 + 1, (unsigned long long)idx);
    /* a log-full event: with the PML index outside 0-511 the next log write exits (62) */
    uint64_t r = (uintptr_t)alloc_page();
    uint64_t *rpte = vmx_ept_pte(eptp, r);
    *rpte &= ~(EPT_A | EPT_D);
    vmx_ept_flush(eptp);
    vmcs_write(VMCS_GUEST_PML_INDEX, 0xffff);
    vmcs_write(VMCS_GUEST_RIP, (uintptr_t)vmx_mi_rw_guest);
    v->gpr[VMX_GPR_RDI] = r;
    uint32_t e = vmx_run(v);
    /* the read may already fill the log (EPT D of a guest paging-structure page): RIP the read */
    uintptr_t at = (uintptr_t)vmx_mi_rw_guest;
    if (e == EXIT_VMCALL) { /* the read logged nothing: on to the write */
        vmx_skip_insn(v);
        e = vmx_run(v);
        at = (uintptr_t)vmx_mi_rw_write;
    }
    if (!check(e == EXIT_PML_FULL,
               "guest write of a fresh page with PML index 0xffff: want exit 62 (PML full), got %s",
               vmx_exit_str(v)))
        return;
    check_eq("guest RIP at the PML-full exit (the access not done)", v->guest_rip, at);
    check(!(*rpte & EPT_D), "R's EPT entry %#llx has D set after the PML-full exit",
          (unsigned long long)*rpte);
}

extern const char vmx_mi_vmfunc_1[], vmx_mi_vmfunc_2[], vmx_mi_vmfunc_3[];
GUEST(vmx_mi_vmfunc_guest, "    mov (%rdi), %rbx\n"
                           "    xor %eax, %eax\n"
                           "    mov $1, %ecx\n"
                           "    vmfunc\n"
                           "    mov (%rdi), %rsi\n"
                           "    vmcall\n"
                           "    xor %eax, %eax\n"
                           "    mov $512, %ecx\n"
                           "vmx_mi_vmfunc_1:\n"
                           "    vmfunc\n"
                           "    mov $1, %eax\n"
                           "    xor %ecx, %ecx\n"
                           "vmx_mi_vmfunc_2:\n"
                           "    vmfunc\n"
                           "    mov $64, %eax\n"
                           "vmx_mi_vmfunc_3:\n"
                           "    vmfunc\n"
                           "    ud2");

PROBE(vmx_misc_vmfunc_eptp, "vmx.misc.vmfunc_eptp", "VMFUNC",
      "With VM functions and EPTP switching (VM-function control bit 0) and an EPTP list {A, B} "
      "where B maps page P to page Q: guest VMFUNC EAX=0 ECX=1 switches to B without exit (a read "
      "of P then returns Q's data) and the EPTP field becomes B; VMFUNC with ECX=512 exits with "
      "reason 59, length 3; so does VMFUNC with EAX=1 (VM-function control bit 1 = 0), while "
      "VMFUNC with EAX=64 (above 63) raises #UD (exit 0, vector 6, all-ones exception bitmap). "
      "Where EPT-violation #VE is offered it is on, and the switch sets the EPTP-index field to 1",
      "Intel SDM Vol. 3C 26.5.5.3 (EPTP Switching), 26.5.5.2, 25.6.14, 28.2.1",
      "sdm.26.5.5.3.eptp-switch", "sdm.26.5.5.3.eptp-switch-invalid", "sdm.C.reason-59-vmfunc",
      "sdm.26.5.5.2.vmfunc-exit", "sdm.26.5.5.3.eptp-index", "sdm.25.6.14.vmfunc-controls")
{
    vmx_require_ctl(VMX_CTL_PROC2, PROC2_VMFUNC | PROC2_EPT, "enable VM functions and EPT");
    if (!(vmx_caps()->vmfunc & 1))
        skip("IA32_VMX_VMFUNC=%#llx: bit 0 (EPTP switching) clear",
             (unsigned long long)vmx_caps()->vmfunc);
    vmx_on();
    uint64_t a = vmx_ept_identity(), b = vmx_ept_identity();
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_mi_vmfunc_guest);
    uint64_t *p = alloc_page(), *q = alloc_page();
    p[0] = 0x11, q[0] = 0x22;
    uint64_t *pte_b = vmx_ept_pte(b, (uintptr_t)p);
    *pte_b = (*pte_b & ~EPT_ADDR_MASK) | (uintptr_t)q;
    uint64_t *list = alloc_page();
    list[0] = a, list[1] = b;
    vmx_use_ept(v, a);
    vmx_ept_flush(b);
    vmcs_set_bits(VMCS_PROC_CTLS2, PROC2_VMFUNC);
    vmcs_write(VMCS_VMFUNC_CTRL, 1);
    vmcs_write(VMCS_EPTP_LIST_ADDR, (uintptr_t)list);
    bool ve = vmx_ctl_can_set(VMX_CTL_PROC2, PROC2_EPT_VE);
    if (ve) { /* EPT-violation #VE: the switch records its index (no #VE: word FFFFFFFFH) */
        uint32_t *info = alloc_page();
        info[1] = 0xffffffffu;
        vmcs_write(VMCS_VE_INFO_ADDR, (uintptr_t)info);
        vmcs_write(VMCS_EPTP_INDEX, 0);
        vmcs_set_bits(VMCS_PROC_CTLS2, PROC2_EPT_VE);
    }
    v->gpr[VMX_GPR_RDI] = (uintptr_t)p;
    if (!vmx_run_expect(v, EXIT_VMCALL, "guest VMFUNC EPTP switch to index 1"))
        return;
    check_eq("guest read of P through EPTP A", v->gpr[VMX_GPR_RBX], 0x11);
    check_eq("guest read of P through EPTP B (page Q)", v->gpr[VMX_GPR_RSI], 0x22);
    check_eq("EPTP field after the switch", vmcs_read(VMCS_EPTP), b);
    if (ve)
        check_eq("EPTP-index field after the switch (EPT-violation #VE = 1)",
                 vmcs_read(VMCS_EPTP_INDEX), 1);
    else
        note("EPT-violation #VE not offered: the EPTP-index field not checked");
    vmx_skip_insn(v);
    if (!vmx_run_expect(v, EXIT_VMFUNC, "guest VMFUNC with EPTP index 512"))
        return;
    check_eq("guest RIP at the VMFUNC exit", v->guest_rip, (uintptr_t)vmx_mi_vmfunc_1);
    check_eq("VM-exit instruction length of VMFUNC", v->insn_len, 3);
    /* a function whose VM-function control is 0 (control = 1: only bit 0), then one above 63 */
    vmx_skip_insn(v);
    if (!vmx_run_expect(v, EXIT_VMFUNC, "guest VMFUNC with EAX=1 (its VM-function control 0)"))
        return;
    check_eq("guest RIP at the EAX=1 VMFUNC exit", v->guest_rip, (uintptr_t)vmx_mi_vmfunc_2);
    vmx_skip_insn(v);
    /* EAX >= 64 is #UD, not a VM exit (SDM Vol. 3C 31.3, VMFUNC: exceptions) */
    if (vmx_run_expect(v, EXIT_EXCEPTION_NMI, "guest VMFUNC with EAX=64 (above 63)")) {
        check_eq("vector of the EAX=64 VMFUNC exception (#UD)", INTR_INFO_VECTOR(v->exit_intr_info),
                 UD_VECTOR);
        check_eq("guest RIP at the EAX=64 VMFUNC #UD", v->guest_rip, (uintptr_t)vmx_mi_vmfunc_3);
    }
}

PROBE(vmx_misc_vmcs_shadowing_vmwrite, "vmx.misc.vmcs_shadowing_vmwrite", "VMCS shadowing",
      "With VMCS shadowing and a shadow VMCS as link pointer: with GUEST_RIP's bit (0x681e) set in "
      "the VMWRITE bitmap only, guest VMREAD of it runs without exit (RBX = the shadow's 0xabcd) "
      "and guest VMWRITE exits with reason 25, length 3, RIP = the VMWRITE; the shadow's field "
      "keeps 0xabcd",
      "Intel SDM Vol. 3C 25.6.15, 25.10, 26.1.3, 31.3 (VMWRITE)", "sdm.25.6.15.shadow-bitmaps",
      "sdm.26.1.3.vmread-vmwrite", "sdm.C.reason-25-vmwrite")
{
    vmx_require_ctl(VMX_CTL_PROC2, PROC2_VMCS_SHADOWING, "VMCS shadowing");
    vmx_on();
    uint32_t *shadow = vmx_alloc_vmcs();
    shadow[0] |= 0x80000000u;
    uint64_t spa = (uintptr_t)shadow;
    if (!check_vmx("VMCLEAR of the shadow VMCS", vmclear(spa), VMX_SUCCEED, 0) ||
        !check_vmx("VMPTRLD of the shadow VMCS", vmptrld(spa), VMX_SUCCEED, 0))
        return;
    vmcs_write(VMCS_GUEST_RIP, 0xabcd);
    if (!check_vmx("VMCLEAR of the shadow VMCS", vmclear(spa), VMX_SUCCEED, 0))
        return;
    struct vmx_vcpu *v = vmx_vcpu_new(vmx_mi_shadow_guest);
    uint8_t *rbm = alloc_page(), *wbm = alloc_page();
    wbm[0x681e / 8] |= (uint8_t)(1u << (0x681e % 8));
    vmcs_set_bits(VMCS_PROC_CTLS, PROC_SECONDARY_CTLS);
    vmcs_set_bits(VMCS_PROC_CTLS2, PROC2_VMCS_SHADOWING);
    vmcs_write(VMCS_LINK_PTR, spa);
    vmcs_write(VMCS_VMREAD_BITMAP, (uintptr_t)rbm);
    vmcs_write(VMCS_VMWRITE_BITMAP, (uintptr_t)wbm);
    if (!vmx_run_expect(v, EXIT_VMWRITE, "guest VMWRITE with its VMWRITE-bitmap bit set"))
        return;
    check_eq("guest RBX from the unintercepted VMREAD", v->gpr[VMX_GPR_RBX], 0xabcd);
    check_eq("guest RIP at the VMWRITE exit", v->guest_rip, (uintptr_t)vmx_mi_shadow_rd + 3);
    check_eq("VM-exit instruction length", v->insn_len, 3);
    if (!check_vmx("VMCLEAR of the ordinary VMCS", vmclear(v->vmcs_pa), VMX_SUCCEED, 0) ||
        !check_vmx("VMPTRLD of the shadow VMCS", vmptrld(spa), VMX_SUCCEED, 0))
        return;
    check_eq("the shadow's GUEST_RIP (the exiting VMWRITE wrote nothing)",
             vmcs_read(VMCS_GUEST_RIP), 0xabcd);
    vmclear(spa);
}
