"""Real boots of the probe kernel under QEMU (TCG, and the host's KVM)."""

import json
import os
import xml.etree.ElementTree as ET

import pytest
from conftest import need, nvct, run_profile, verdicts

pytestmark = pytest.mark.boot


@pytest.fixture(scope="module")
def tcg_run(tmp_path_factory):
    need("qemu-system-x86_64", "qemu-system-x86")
    tmp = tmp_path_factory.mktemp("tcg")
    junit = tmp / "r.xml"
    proc, record = run_profile(tmp, "qemu-tcg", "--junit", str(junit))
    return proc, record, junit


def test_default_run_passes_svm_and_skips_vmx(tcg_run):
    proc, record, _ = tcg_run
    got = verdicts(record)
    assert got["svm.vmrun.vmmcall"] == "PASS"
    assert got["svm.cpuid.exposed"] == "PASS"
    assert got["cpu.cpuid.basic"] == "PASS"
    vmx = {p: v for p, v in got.items() if p.startswith("vmx.")}
    assert vmx and set(vmx.values()) == {"SKIP"}
    for result in record["results"]:
        if result["probe"].startswith("vmx."):  # what CPUID says is missing: VMX, before anything else
            assert "CPUID.1:ECX.VMX" in result["detail"], result
    # qemu-tcg's expect: records what TCG does not expose and its known deviations: the gate holds.
    assert record["gate"]["holds"], record["gate"]["failures"]
    assert proc.returncode == 0
    # The one CRASH is the known one (Q11: QEMU 7.2 aborts itself), in a boot of its own.
    bad = {r["probe"]: (r["verdict"], r["outcome"]) for r in record["results"]
           if r["verdict"] in ("ERROR", "CRASH", "TIMEOUT")}  # fmt: skip
    assert bad == {"svm.event.v_tpr_unmask": ("CRASH", "XCRASH")}


def test_run_record_has_the_documented_shape(tcg_run):
    _, record, _ = tcg_run
    assert record["schema"] == "nvct-run/1"
    assert record["status"] == "complete"
    assert record["profile"]["name"] == "qemu-tcg"
    assert record["started"] and record["finished"]
    assert record["environment"]["kernel"].startswith("Linux")
    (level,) = record["levels"]
    assert level["level"] == 1
    assert level["hypervisor"]["backend"] == "qemu"
    assert level["hypervisor"]["settings"]["accel"] == "tcg"
    facts = level["facts"]
    assert facts["hv.signature"] == "TCGTCGTCGTCG"
    assert facts["svm"] == "1" and facts["vmx"] == "0"
    assert facts["svm.features"] == "0x10010001"
    for result in record["results"]:
        assert set(result) >= {"probe", "level", "verdict", "detail", "duration_s"}
        assert result["verdict"] in ("PASS", "FAIL", "SKIP", "ERROR", "TIMEOUT", "CRASH")


def test_text_report_has_the_stack_a_table_and_a_summary(tcg_run):
    proc, record, _ = tcg_run
    out = proc.stdout
    assert "L0  qemu" in out and "accel=tcg" in out
    assert "hypervisor 'TCGTCGTCGTCG'" in out
    assert "\x1b[" not in out  # not a terminal: no colour
    row = next(line for line in out.splitlines() if line.startswith("svm.vmrun.vmmcall "))
    assert row.split()[1] == "PASS"
    assert f"L1: {len(record['results'])} probes:" in out


def test_junit_has_one_testcase_per_probe(tcg_run):
    _, record, junit = tcg_run
    root = ET.parse(junit).getroot()
    cases = root.findall(".//testcase")
    assert len(cases) == len(record["results"])
    case = next(c for c in cases if c.get("name") == "vmx.vmlaunch.vmcall")
    assert case.get("classname") == "nvct.qemu-tcg.L1.vmx.vmlaunch"
    assert case.find("skipped") is not None


def test_selection_and_colour(tmp_path):
    need("qemu-system-x86_64", "qemu-system-x86")
    proc, record = run_profile(tmp_path, "qemu-tcg", "--probes", "svm.vmrun.*", "--color", "always")
    assert verdicts(record) == {"svm.vmrun.vmmcall": "PASS"}
    assert "\x1b[32mPASS" in proc.stdout


def test_unexpected_exception_in_a_probe_is_its_fail_and_the_run_goes_on(tmp_path):
    need("qemu-system-x86_64", "qemu-system-x86")
    proc, record = run_profile(tmp_path, "qemu-tcg", "--probes", "selftest.*")
    got = {r["probe"]: r for r in record["results"]}
    assert got["selftest.fault"]["verdict"] == "FAIL"
    assert "unexpected #UD" in got["selftest.fault"]["detail"]
    assert got["selftest.pass"]["verdict"] == "PASS"
    assert proc.returncode == 1


def test_without_svm_every_svm_probe_skips(tmp_path):
    need("qemu-system-x86_64", "qemu-system-x86")
    prof = tmp_path / "nosvm.yaml"
    prof.write_text("name: nosvm\nstack:\n  - backend: qemu\n    cpu: max,-svm\n")
    out = tmp_path / "r.json"
    proc = nvct("run", "--profile", str(prof), "--probes", "svm.*", "-o", str(out))
    import json

    record = json.loads(out.read_text())
    assert record["results"] and {r["verdict"] for r in record["results"]} == {"SKIP"}
    assert proc.returncode == 0


def test_host_kvm_without_nesting_skips_never_errors(tmp_path):
    need("qemu-system-x86_64", "qemu-system-x86")
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        pytest.skip("no usable /dev/kvm on this machine")
    proc, record = run_profile(tmp_path, "qemu-kvm", "--probes", "cpu.*,svm.*,vmx.*")
    facts = record["levels"][0]["facts"]
    assert facts.get("hv.signature") == "KVMKVMKVM"
    got = verdicts(record)
    assert not {v for v in got.values()} & {"ERROR", "CRASH", "TIMEOUT"}, got
    if facts["svm"] == "0":
        assert {v for p, v in got.items() if p.startswith("svm.")} == {"SKIP"}
    if facts["vmx"] == "0":
        assert {v for p, v in got.items() if p.startswith("vmx.")} == {"SKIP"}


def test_crash_and_hang_cost_one_probe_each(tmp_path):
    """A triple fault and a hang, each with a probe in flight: that probe
    gets CRASH or TIMEOUT, the others still run, in a second boot."""
    need("qemu-system-x86_64", "qemu-system-x86")
    proc, record = run_profile(
        tmp_path,
        "qemu-tcg",
        "--probes",
        "selftest.pass,selftest.triple_fault,selftest.hang,selftest.fault",
        "--timeout",
        "3",
    )
    got = {r["probe"]: r for r in record["results"]}
    assert {p: r["verdict"] for p, r in got.items()} == {
        "selftest.fault": "FAIL",
        "selftest.hang": "TIMEOUT",
        "selftest.pass": "PASS",
        "selftest.triple_fault": "CRASH",
    }
    assert got["selftest.hang"]["detail"] == "selftest.hang ran for 3 s without a result"
    assert got["selftest.triple_fault"]["detail"].startswith("qemu exited with status 0")
    assert record["levels"][0]["boots"] == 2
    assert got["selftest.pass"]["boot"] == 2
    assert proc.returncode == 1


def test_hypervisor_that_cannot_start_is_a_crash_with_its_message(tmp_path):
    need("qemu-system-x86_64", "qemu-system-x86")
    prof = tmp_path / "badcpu.yaml"
    prof.write_text("name: badcpu\nstack:\n  - backend: qemu\n    cpu: no-such-cpu\n")
    out = tmp_path / "r.json"
    proc = nvct("run", "--profile", str(prof), "--probes", "cpu.*", "-o", str(out))
    import json

    results = json.loads(out.read_text())["results"]
    assert results and {r["verdict"] for r in results} == {"CRASH"}
    assert "unable to find CPU model 'no-such-cpu'" in results[0]["detail"]
    assert proc.returncode == 1


def test_a_kvm_internal_error_ends_the_boot_at_once_with_qemus_words():
    """QEMU keeps a VM paused after "KVM internal error" (this machine's KVM
    says it for a Linux guest's LOCK CMPXCHG16B with -cpu host). The console
    must not wait for the boot timeout. A shell script stands in for QEMU
    here: it prints what QEMU 7.2 printed, then waits as the paused QEMU
    does."""
    import re
    import time

    import pexpect

    from conformance.backends.qemu import QEMU_FATAL
    from conformance.backends.transports.pty import PtyConsole

    stand_in = ("echo 'Linux version 6.1.0'; echo 'KVM internal error. Suberror: 1'; "
                "echo 'extra data[0]: 0x0000000000000001'; "
                "echo 'RIP=ffffffff8132ae50 RFL=00000006 [-----P-] CPL=0 II=0 A20=1 SMM=0 HLT=0'; exec sleep 600")  # fmt: skip
    console = PtyConsole(pexpect.spawn("sh", ["-c", stand_in], echo=False), label="qemu", fatal=QEMU_FATAL)
    start = time.monotonic()
    lines = []
    while (line := console.readline(30)) is not None:
        lines.append(line)
    assert time.monotonic() - start < 10
    assert lines[0] == "Linux version 6.1.0"
    assert console.fatal_line == "KVM internal error. Suberror: 1"
    assert re.fullmatch(r"qemu said 'KVM internal error\. Suberror: 1' at RIP=ffffffff8132ae50; nvct killed it .*",
                        console.describe_end())  # fmt: skip
    console.close(grace=0)


def test_without_a_timeout_the_level_pace_sets_one(tmp_path):
    """No `timeouts: probe` and no --timeout: a level that measures in
    milliseconds gives up on a hang after the pace floor (15 s), not after
    a fixed minute, and says where the limit came from."""
    need("qemu-system-x86_64", "qemu-system-x86")
    prof = tmp_path / "paced.yaml"
    prof.write_text("name: paced\nstack:\n  - backend: qemu\n    accel: tcg\n    cpu: max\n")
    out = tmp_path / "r.json"
    nvct("run", "--profile", str(prof), "--probes", "selftest.pass,selftest.hang", "-o", str(out))
    got = {r["probe"]: r for r in json.loads(out.read_text())["results"]}
    assert got["selftest.pass"]["verdict"] == "PASS"
    assert got["selftest.hang"]["verdict"] == "TIMEOUT"
    assert got["selftest.hang"]["detail"] == (
        "selftest.hang ran for 15 s without a result (the limit this level's pace sets: no timeout was given)"
    )
