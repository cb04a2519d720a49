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
    proc = nvct("list", "--json", "svm.*,-svm.basic.*")  # a flag: the word after it is a glob
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
        (["merge"], "the following arguments are required: RUN.json"),
        (["list", "--json", "--format", "text"], "--json is --format json; it cannot go with --format text"),
        (["run", "--json", "a.json", "-o", "b.json"], "--json a.json and --output b.json both name the run record"),
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
         "-o", str(files["json"]), "--junit", str(files["xml"]), "--tap", str(files["tap"]),
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


COMMANDS = ("run", "report", "diff", "merge", "baseline", "list", "host", "appliance", "build")


def test_every_help_says_what_the_command_does_and_its_exit_status():
    import argparse

    from conformance.cli import parser

    sub = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(COMMANDS) <= set(sub.choices)
    for name, command in sub.choices.items():  # every one, also a command added later
        text = command.format_help()
        assert command.description and len(command.description) > 40, name
        status = text[text.index("exit status:") :]
        assert "  0    " in status and "  2    " in status, (name, status)
        if name in ("run", "report", "diff", "host"):
            assert "  1    " in status, name  # the gate, a regression, a failed check
    proc = nvct("run", "--help")
    assert proc.returncode == 0 and "exit status:" in proc.stdout and "130  interrupted" in proc.stdout
    assert "exit status:" in nvct("--help").stdout


def test_json_means_the_same_on_every_command_and_o_writes_it(tmp_path):
    """--json: JSON on standard output instead of text, the same as --format
    json; -o FILE: the same bytes in FILE."""
    from records import make_run

    a, b = tmp_path / "a.json", tmp_path / "b.json"
    make_run([("a.b", "PASS")]).write(a)
    make_run([("a.b", "FAIL")]).write(b)
    for args in (["list", "cpu.*"], ["diff", str(a), str(b)], ["baseline", str(b)], ["report", str(a)],
                 ["build"], ["host"]):  # fmt: skip
        text = nvct(*args)
        flag, fmt = nvct(*args, "--json"), nvct(*args, "--format", "json")
        assert flag.returncode == fmt.returncode == text.returncode, (args, flag.stderr, fmt.stderr)
        assert flag.stdout == fmt.stdout and json.loads(flag.stdout) is not None, args
        assert not text.stdout.lstrip().startswith(("{", "[")), args
        out = tmp_path / "out"
        written = nvct(*args, "--json", "-o", str(out))
        assert written.returncode == flag.returncode and written.stdout == "", args
        if args[0] not in ("host", "build"):  # those measure anew each time
            assert out.read_text() == flag.stdout, args
    merged = nvct("merge", str(a), str(b))
    assert merged.returncode == 0 and [r["status"] for r in json.loads(merged.stdout)["runs"]] == ["complete"] * 2


def test_an_empty_selection_is_the_same_error_in_text_and_json():
    text, data = nvct("list", "nothing.here"), nvct("list", "--json", "nothing.here")
    assert text.returncode == data.returncode == 2
    assert text.stdout == data.stdout == ""
    assert text.stderr == data.stderr and len(text.stderr.strip().splitlines()) == 1
    assert "no probe matches 'nothing.here'" in text.stderr
    for args in (["run", "--probes", "nothing.here"], ["run", "--json", "--probes", "nothing.here"]):
        proc = nvct(*args)
        assert proc.returncode == 2 and proc.stdout == "" and len(proc.stderr.strip().splitlines()) == 1, args


@pytest.mark.boot
def test_run_json_prints_the_record_and_the_old_spelling_still_writes_it(tmp_path):
    from conftest import need

    need("qemu-system-x86_64", "qemu-system-x86")
    new, old = tmp_path / "new.json", tmp_path / "old.json"
    # --json before another option (or at the end) is the flag; -o FILE the record.
    proc = nvct("run", "--json", "--probes", "cpu.cpuid.basic", "-o", str(new))
    assert proc.returncode == 0, proc.stderr
    printed = json.loads(proc.stdout)
    assert printed["schema"] == "nvct-run/1" and [r["probe"] for r in printed["results"]] == ["cpu.cpuid.basic"]
    assert json.loads(new.read_text())["results"] == printed["results"] and "deprecated" not in proc.stderr
    # `--json FILE`, the old spelling: the record in FILE, the text report printed, one warning line.
    proc = nvct("run", "--probes", "cpu.cpuid.basic", "--json", str(old))
    assert proc.returncode == 0, proc.stderr
    assert "gate: holds" in proc.stdout and json.loads(old.read_text())["status"] == "complete"
    assert proc.stderr.splitlines() == [
        "nvct: warning: `nvct run --json FILE` is deprecated and goes in the next release: "
        "write the run record with `-o FILE` (`--json` alone prints it on standard output)"
    ]
