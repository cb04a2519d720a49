"""The command line: listing, usage errors (exit 2, one clear line), colour."""

import json

import pytest
from conftest import nvct


def test_list_shows_ids_features_descriptions_and_references():
    proc = nvct("list")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    ids = [line.split()[0] for line in lines]
    for probe in ("cpu.cpuid.basic", "svm.vmrun.vmmcall", "vmx.vmlaunch.vmcall", "vmx.cpuid.exposed"):
        assert probe in ids
    assert ids == sorted(ids, key=str.encode)
    assert not any(i.startswith("selftest.") for i in ids)  # hidden unless asked for
    row = next(line for line in lines if line.startswith("svm.vmrun.vmmcall"))
    assert "SVM" in row and "AMD APM Vol. 2" in row


def test_list_json_and_globs():
    proc = nvct("list", "--json", "svm.*,-svm.basic.*")
    assert proc.returncode == 0, proc.stderr
    probes = json.loads(proc.stdout)
    assert probes and all(p["id"].startswith("svm.") and not p["id"].startswith("svm.basic.") for p in probes)
    assert set(probes[0]) == {
        "id",
        "group",
        "feature",
        "description",
        "reference",
        "hidden",
        "isolated",
        "requirements",
    }
    assert all(p["requirements"] and all(r.startswith("apm.15.") for r in p["requirements"]) for p in probes)
    hidden = json.loads(nvct("list", "--json", "selftest.*").stdout)
    assert {p["id"] for p in hidden} >= {"selftest.pass", "selftest.fault"}


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "--profile", "no-such-profile"], "no-such-profile: no such profile file"),
        (["run", "--probes", "svm.*,"], "bad probe selection 'svm.*,': an empty glob"),
        (["run", "--probes", "nothing.here"], "no probe matches 'nothing.here'"),
        (["run", "--timeout", "-1"], "must be more than 0 seconds"),
        (["run", "--frobnicate"], "unrecognized arguments: --frobnicate"),
        (["run", "--html", "/no/such/dir/r.html"], "--html /no/such/dir/r.html: no such directory /no/such/dir"),
        (["list", "a b"], "bad probe selection 'a b': bad glob 'a b'"),
    ],
)
def test_usage_errors_exit_2_with_one_clear_line(args, message):
    proc = nvct(*args)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_profile_error_names_file_line_and_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nstack:\n  - backend: qemu\n    memory: lots\n")
    proc = nvct("run", "--profile", str(bad))
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"nvct: error: {bad}:4: stack[0].memory: must be a whole number, not a string"


def test_missing_hypervisor_is_a_clear_error(tmp_path):
    prof = tmp_path / "p.yaml"
    prof.write_text("name: p\nstack:\n  - backend: qemu\n    binary: /nonexistent/qemu\n")
    proc = nvct("run", "--profile", str(prof))
    assert proc.returncode == 2
    assert "stack L0 (qemu): /nonexistent/qemu not found" in proc.stderr


def test_version():
    proc = nvct("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("nvct ")


@pytest.mark.parametrize(
    "args, message",
    [
        (["report"], "the following arguments are required: RUN.json"),
        (["report", "r.json", "--format", "pdf"], "invalid choice: 'pdf'"),
        (["merge", "a.json"], "the following arguments are required: --output/-o"),
        (["diff", "a.json"], "the following arguments are required: NEW.json"),
        (["baseline"], "the following arguments are required: RUN.json"),
        (["report", "no-such-run.json"], "nvct: error: no-such-run.json: no such file"),
    ],
)
def test_report_diff_merge_baseline_usage_errors(args, message):
    proc = nvct(*args)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_report_with_a_bad_profile_names_it(tmp_path):
    from records import make_run

    record = tmp_path / "r.json"
    make_run([("a.b", "PASS")]).write(record)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nstack:\n  - backend: qemu\nexpect:\n  - probes: a.b\n    verdict: skip\n")
    proc = nvct("report", "--profile", str(bad), str(record))
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith(f"nvct: error: {bad}:5: expect[0]: missing key: reason")


@pytest.mark.boot
def test_interrupted_run_still_writes_every_report(tmp_path):
    """SIGTERM in the middle of a run: exit 130, status interrupted, and the
    record and every report file hold what was measured."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    from conftest import ROOT, need

    need("qemu-system-x86_64", "qemu-system-x86")
    files = {k: tmp_path / f"r.{k}" for k in ("json", "xml", "tap", "md", "html")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "conformance", "run", "--probes", "selftest.alloc,selftest.hang", "--timeout", "60",
         "--json", str(files["json"]), "--junit", str(files["xml"]), "--tap", str(files["tap"]),
         "--markdown", str(files["md"]), "--html", str(files["html"])],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if files["json"].exists() and json.loads(files["json"].read_text())["results"]:
                break
            time.sleep(0.1)
        else:
            pytest.fail("no result arrived within 60 s")
        os.kill(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    record = json.loads(files["json"].read_text())
    assert record["status"] == "interrupted" and record["gate"]["holds"] is False
    assert [r["probe"] for r in record["results"]] == ["selftest.alloc"]
    assert all(f.exists() and f.stat().st_size > 0 for f in files.values())
    assert "the run did not complete (status interrupted)" in out


def test_host_prints_one_line_per_check_and_exits_by_failures():
    proc = nvct("host")
    assert proc.returncode in (0, 1)
    lines = [line for line in proc.stdout.splitlines() if not line.startswith(" ")]
    assert lines and all(line.split()[0] in ("PASS", "WARN", "FAIL", "INFO") for line in lines)
    assert proc.returncode == (1 if any(line.startswith("FAIL") for line in lines) else 0)
    checks = json.loads(nvct("host", "--json").stdout)
    assert {"cpu.extensions", "kvm.device", "tool.qemu"} <= {c["check"] for c in checks}


def test_jobs_must_be_a_small_whole_number():
    proc = nvct("run", "--jobs", "0")
    assert proc.returncode == 2 and "want a whole number from 1 to 64" in proc.stderr
