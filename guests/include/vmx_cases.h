/* SPDX-License-Identifier: MIT */
/*
 * nvct: table-driven VM-entry check cases, for the probes of the VM-entry
 * checks (probes/vmx_entry_ctl.c, vmx_entry_host.c, vmx_entry_guest.c).
 *
 * A case writes up to four VMCS fields, executes VMLAUNCH and compares the
 * outcome with the one wanted: VMfailValid with a VM-instruction error
 * number (checks on controls and host state, SDM Vol. 3C 27.2), a VM-entry
 * failure with an exit reason and qualification (guest state and MSR
 * loading, 27.3, 27.4, 27.8), or a successful entry (the guest's VMCALL).
 * The fields are restored afterwards; an entry that succeeded by mistake
 * is undone (VMCLEAR, VMPTRLD) so that the next case launches again.
 *
 * Everything is static inline: each probe file gets its own copy.
 */
#ifndef NVCT_VMX_CASES_H
#define NVCT_VMX_CASES_H

#include "vmx.h"

/* what a case wants */
#define VC_VMFAIL(err) (err)                            /* VMfailValid(err) */
#define VC_ENTRY(r)    (EXIT_REASON_ENTRY_FAIL | (r))   /* VM-entry failure */
#define VC_GUEST       VC_ENTRY(EXIT_INVALID_GUEST)     /* 0x80000021 */
#define VC_LAUNCH      EXIT_VMCALL                      /* the guest's VMCALL */
#define VC_CTL         VC_VMFAIL(VMXERR_ENTRY_BAD_CTRL) /* VMfailValid(7) */
#define VC_HOST        VC_VMFAIL(VMXERR_ENTRY_BAD_HOST) /* VMfailValid(8) */
#define VC_MAXFIELDS   4

struct vc_field {
    uint64_t field, val;
};

struct vc_case {
    const char *what;
    uint32_t want; /* VC_* */
    uint64_t qual; /* for VC_ENTRY */
    unsigned n;
    struct vc_field f[VC_MAXFIELDS];
};

/* the guest of the entry-check probes: VMCALL forever */
static inline bool vc_is_vmfail(uint32_t want) { return want < 64 && want != VC_LAUNCH; }

/* Runs one case on v (whose VMCS is current); returns true if it passed. */
static inline bool vc_run(struct vmx_vcpu *v, const struct vc_case *c)
{
    uint64_t old[VC_MAXFIELDS];
    for (unsigned i = 0; i < c->n; i++) {
        old[i] = vmcs_read(c->f[i].field);
        vmcs_write(c->f[i].field, c->f[i].val);
    }
    v->launched = 0;
    uint32_t r = vmx_run(v);
    bool ok;
    if (c->want == VC_LAUNCH) {
        ok = check(r == EXIT_VMCALL, "%s: want the guest's VMCALL (exit 18), got %s", c->what,
                   vmx_exit_str(v));
    } else if (vc_is_vmfail(c->want)) {
        ok = check(r == VMX_RUN_VMFAIL && vmx_res_is(v->entry, VMX_FAIL_VALID, c->want),
                   "%s: want VMfailValid(%u: %s), got %s", c->what, c->want,
                   vmx_error_name(c->want), vmx_exit_str(v));
    } else {
        ok = check(r == c->want, "%s: want VM-entry failure, exit reason %#x, got %s", c->what,
                   c->want, vmx_exit_str(v));
        if (ok)
            ok = check(v->exit_qual == c->qual, "%s: exit qualification %#llx, want %#llx", c->what,
                       (unsigned long long)v->exit_qual, (unsigned long long)c->qual);
    }
    if (v->launched) {
        /* a successful entry: make the VMCS clear again for the next case */
        vmclear(v->vmcs_pa);
        vmptrld(v->vmcs_pa);
        v->launched = 0;
    }
    for (unsigned i = c->n; i-- > 0;)
        vmcs_write(c->f[i].field, old[i]);
    return ok;
}

/* Runs n cases; then the unmodified VMCS must launch. Notes the count. */
static inline void vc_run_all(struct vmx_vcpu *v, const struct vc_case *c, unsigned n)
{
    unsigned passed = 0;
    for (unsigned i = 0; i < n; i++)
        passed += vc_run(v, &c[i]);
    note("%u of %u cases as required", passed, n);
    v->launched = 0;
    vmx_run_expect(v, EXIT_VMCALL, "VMLAUNCH of the unmodified VMCS");
    if (v->launched) {
        vmclear(v->vmcs_pa);
        vmptrld(v->vmcs_pa);
        v->launched = 0;
    }
}

/* The unmodified VMCS must launch before the cases mean anything. */
static inline void vc_baseline(struct vmx_vcpu *v)
{
    v->launched = 0;
    if (!vmx_run_expect(v, EXIT_VMCALL, "VMLAUNCH of the VMCS before the cases"))
        fail("the VMCS the cases start from does not launch: %s", vmx_exit_str(v));
    vmclear(v->vmcs_pa);
    vmptrld(v->vmcs_pa);
    v->launched = 0;
}

/* 1 << MAXPHYADDR: the lowest physical address beyond it */
static inline uint64_t vc_beyond_maxphy(void) { return 1ull << cpu_phys_addr_bits(); }

/* a non-canonical address for 48-bit linear addresses */
#define VC_NONCANON 0x0000800000000000ull

/* Guest: VMCALL forever (each probe file declares its own with GUEST()). */

#endif
