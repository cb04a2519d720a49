"""Faults on purpose, on real boots: the hidden selftest probes misbehave
(triple fault, hang, garbage on the console, an exception in the middle of
a record, a double fault) and each costs exactly its own probe; a killed
harness leaves no hypervisor behind and a valid run record."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import PROFILES, ROOT, need, run_profile

pytestmark = pytest.mark.boot

# Every selftest and the verdict its description promises.
SELFTESTS = {
    "selftest.alloc": "PASS",
    "selftest.catch": "PASS",
    "selftest.double_fault": "CRASH",
    "selftest.error": "ERROR",
    "selftest.fault": "FAIL",
    "selftest.garbage": "ERROR",
    "selftest.hang": "TIMEOUT",
    "selftest.limits": "FAIL",
    "selftest.pass": "PASS",
    "selftest.record_fault": "ERROR",
    "selftest.triple_fault": "CRASH",
    "selftest.worst_wins": "FAIL",
}


def test_each_misbehaving_probe_costs_only_itself(tmp_path):
    need("qemu-system-x86_64", "qemu-system-x86")
    proc, record = run_profile(tmp_path, "qemu-tcg", "--probes", "selftest.*", "--timeout", "3")
    got = {r["probe"]: r for r in record["results"] if r["level"] == 1}
    assert {p: r["verdict"] for p, r in got.items()} == SELFTESTS
    # The crashes and the hang each ended a boot; the run went on after them.
    assert record["levels"][0]["boots"] == 4
    assert "corrupted record (CRC mismatch" in got["selftest.garbage"]["detail"]
    assert "probe reported FAIL: unexpected #UD" in got["selftest.record_fault"]["detail"]
    assert got["selftest.hang"]["detail"] == "selftest.hang ran for 3 s without a result"
    assert record["status"] == "complete"
    assert proc.returncode == 1


def test_bochs_crash_hang_and_garbage(tmp_path):
    need("bochs", "bochs")
    probes = "selftest.garbage,selftest.hang,selftest.pass,selftest.triple_fault"
    proc, record = run_profile(tmp_path, "bochs-ryzen", "--probes", probes, "--timeout", "5")
    got = {r["probe"]: r["verdict"] for r in record["results"]}
    assert got == {k: SELFTESTS[k] for k in probes.split(",")}


def _processes_in(folder: Path) -> list[int]:
    """Processes whose working directory is inside `folder` (the boots'
    private folders are; so is every hypervisor started in one)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if str(folder) in os.readlink(entry / "cwd"):
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def test_eight_parallel_boots_on_two_cores_give_the_sequential_verdicts(tmp_path):
    """--jobs 8: eight boots of the level at once, sharing nothing (private
    folders, no fixed ports, no shared console files)."""
    need("qemu-system-x86_64", "qemu-system-x86")
    runs = {}
    for jobs in ("1", "8"):
        folder = tmp_path / f"jobs{jobs}"
        folder.mkdir()
        _, record = run_profile(folder, "qemu-tcg", "--jobs", jobs)
        runs[jobs] = record
    one, eight = ({(r["probe"], r["level"]): r["verdict"] for r in runs[j]["results"]} for j in ("1", "8"))
    assert len(one) > 100 and one == eight
    assert runs["8"]["levels"][0]["boots"] >= 8


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_sigterm_stops_every_hypervisor_and_keeps_a_valid_record(tmp_path, jobs):
    need("qemu-system-x86_64", "qemu-system-x86")
    work = tmp_path / "tmp"
    work.mkdir()
    out = tmp_path / "r.json"
    child = subprocess.Popen(
        [sys.executable, "-m", "conformance", "run", "--profile", str(PROFILES / "qemu-tcg.yaml"),
         "--probes", "selftest.catch,selftest.hang,selftest.worst_wins", "--timeout", "120", "-o", str(out),
         "--jobs", jobs],
        cwd=ROOT, env={**os.environ, "TMPDIR": str(work)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # until the hang is under way: one result in, a hypervisor running
        if out.exists() and json.loads(out.read_text())["results"] and _processes_in(work):
            break
        time.sleep(0.1)
    else:
        child.kill()
        pytest.fail("the run never reached the hanging probe")
    child.send_signal(signal.SIGTERM)
    stdout, stderr = child.communicate(timeout=30)
    assert child.returncode == 130, stderr
    record = json.loads(out.read_text())
    assert record["status"] == "interrupted" and record["finished"]
    measured = [r["probe"] for r in record["results"]]
    assert "selftest.catch" in measured and "selftest.hang" not in measured  # measured before the kill, kept
    assert {n["probe"] for n in record["not_run"]} == {"selftest.catch", "selftest.hang", "selftest.worst_wins"} - set(
        measured
    )
    assert record["levels"] and record["levels"][0]["level"] == 1
    assert _processes_in(work) == []
    assert list(work.iterdir()) == []  # every private boot folder removed
    assert "Traceback" not in stderr
