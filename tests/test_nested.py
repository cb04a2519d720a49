"""Real multi-level stacks: QEMU TCG as L0, the Linux/KVM appliance at L1,
the probe kernel at L1 and L2 in one run."""

import json
import shutil

import pytest
from conftest import need, nvct, run_profile, verdicts

pytestmark = pytest.mark.boot


@pytest.fixture(autouse=True)
def tools():
    need("qemu-system-x86_64", "qemu-system-x86")
    for tool in ("apt-get", "apt-cache", "dpkg-deb"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not found: the appliance is built from Debian packages")


def test_l2_under_kvm_in_tcg(tmp_path):
    proc, record = run_profile(tmp_path, "tcg-kvm-l2", "--probes", "cpu.*,svm.cpuid.*,svm.vmrun.*")
    assert [lv["level"] for lv in record["levels"]] == [1, 2]
    l1, l2 = verdicts(record, 1), verdicts(record, 2)
    assert l1["svm.vmrun.vmmcall"] == "PASS"
    assert l2["svm.vmrun.vmmcall"] == "PASS"
    assert l2["svm.cpuid.exposed"] == "PASS"
    facts1, facts2 = record["levels"][0]["facts"], record["levels"][1]["facts"]
    assert facts1["hv.signature"] == "TCGTCGTCGTCG"
    assert facts2["hv.signature"] == "KVMKVMKVM"
    hv2 = record["levels"][1]["hypervisor"]
    assert hv2["backend"] == "linux-kvm"
    assert hv2["runtime"]["module"] == "kvm_amd"
    assert hv2["runtime"]["kvm_amd.nested"] == "1"
    assert hv2["runtime"]["kvm_amd.npt"] == "Y"
    assert hv2["appliance"]["kernel_version"]
    row = next(line for line in proc.stdout.splitlines() if line.startswith("svm.vmrun.vmmcall "))
    assert row.split()[1:3] == ["PASS", "PASS"]


def test_level_without_nesting_skips_with_the_reason(tmp_path):
    """L0 hides SVM from L1: L1's KVM cannot load, so every L2 probe is SKIP
    (not exposed at that level), never ERROR or CRASH."""
    prof = tmp_path / "nosvm-l2.yaml"
    prof.write_text(
        "name: nosvm-l2\n"
        "stack:\n"
        "  - backend: qemu\n"
        "    cpu: max,-svm,-la57\n"  # -la57: busybox aborts under max,-svm alone
        "    memory: 2048\n"
        "  - backend: linux-kvm\n"
        "timeouts: {boot: 300, probe: 60}\n"
    )
    out = tmp_path / "r.json"
    proc = nvct("run", "--profile", str(prof), "--probes", "cpu.cpuid.*,svm.vmrun.*", "-o", str(out))
    record = json.loads(out.read_text())
    l2 = [r for r in record["results"] if r["level"] == 2]
    assert l2 and {r["verdict"] for r in l2} == {"SKIP"}
    assert "sees neither SVM nor VMX" in l2[0]["detail"]
    assert proc.returncode == 0, proc.stdout


def test_a_crash_or_a_hang_at_l2_costs_only_its_guest(tmp_path):
    """A probe that kills its QEMU (a triple fault) or hangs its guest costs
    that guest: the next boot starts a new QEMU in the same L1 appliance
    (the hung one is stopped with C-a x), not a new L1 Linux."""
    proc, record = run_profile(
        tmp_path, "tcg-kvm-l2", "--probes", "selftest.pass,selftest.triple_fault,selftest.hang,selftest.fault",
        "--timeout", "5",
    )  # fmt: skip
    l2 = verdicts(record, 2)
    assert l2 == {"selftest.fault": "FAIL", "selftest.hang": "TIMEOUT", "selftest.pass": "PASS",
                  "selftest.triple_fault": "CRASH"}, l2  # fmt: skip
    hang = next(r for r in record["results"] if r["level"] == 2 and r["probe"] == "selftest.hang")
    assert hang["detail"].endswith("(nor after console input)")  # the nudge wakes a stall, not a hang
    level = record["levels"][1]
    assert level["boots"] == 2  # the hang ends the first; the triple fault is the last probe
    assert level["hypervisor"]["runtime"]["appliance_boot"] == 2  # the second guest of one appliance
    # The levels ran side by side; the record is in a sequential run's order.
    assert [r["level"] for r in record["results"]] == [1] * 4 + [2] * 4
