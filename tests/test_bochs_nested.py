"""Nested VMX through a real hypervisor: Bochs (the only L0 with VMX on
our machines) -> Debian's Linux with kvm_intel nested=1 -> the probe kernel
at L2 under QEMU/KVM, with the probe kernel also at L1 under Bochs. The
whole catalogue, as CI runs it on every change (docs/probes/vmx.md has the
L1/L2 table and the causes of every known result at L2)."""

import shutil

import pytest
from conftest import need, run_profile, verdicts

pytestmark = pytest.mark.boot


@pytest.fixture(autouse=True)
def tools():
    need("bochs", "bochs")
    need("qemu-system-x86_64", "qemu-system-x86")
    for tool in ("apt-get", "apt-cache", "dpkg-deb"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not found: the appliance is built from Debian packages")


@pytest.mark.parametrize("profile", ["bochs-kvm-l2", "bochs-tigerlake-kvm-l2"])
def test_the_vmx_catalogue_at_l1_under_bochs_and_at_l2_under_kvm(tmp_path, profile):
    # The whole catalogue at two levels, an appliance under Bochs and the
    # boots of the isolated probes: more than the default 600 s on a loaded
    # CI machine (no timing is asserted: this only bounds a hang).
    proc, record = run_profile(tmp_path, profile, timeout=2400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert record["status"] == "complete"
    assert [lv["level"] for lv in record["levels"]] == [1, 2]
    l1, l2 = verdicts(record, 1), verdicts(record, 2)
    # L1 is Bochs itself, L2 is KVM's nested VMX with what kvm_intel says of itself.
    assert record["levels"][0]["facts"]["cpu.vendor"] == "GenuineIntel"
    assert record["levels"][1]["facts"]["hv.signature"] == "KVMKVMKVM"
    runtime = record["levels"][1]["hypervisor"]["runtime"]
    assert runtime["module"] == "kvm_intel"
    assert runtime["kvm_intel.nested"] == "Y"
    assert runtime["kvm_intel.ept"] == "Y"
    assert l1["vmx.vmlaunch.vmcall"] == "PASS"
    assert l2["vmx.vmlaunch.vmcall"] == "PASS"
    # The catalogue really ran at L2: most VMX probes have a verdict there.
    measured = [p for p, v in l2.items() if p.startswith("vmx.") and v != "SKIP"]
    assert len(measured) >= 100, sorted(measured)
    assert "ERROR" not in l2.values()
