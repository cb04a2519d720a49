"""The command line: listing, usage errors (exit 2, one clear line), colour."""

import json

import pytest

from conftest import nvct


def test_list_shows_ids_features_descriptions_and_references():
    proc = nvct("list")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    ids = [line.split()[0] for line in lines]
    for probe in ("cpu.cpuid.basic", "svm.vmrun.vmmcall", "vmx.intercept.vmcall", "vmx.cpuid.exposed"):
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
    assert set(probes[0]) == {"id", "group", "feature", "description", "reference", "hidden"}
    hidden = json.loads(nvct("list", "--json", "selftest.*").stdout)
    assert {p["id"] for p in hidden} >= {"selftest.pass", "selftest.fault"}


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "--profile", "no-such-profile"], "no-such-profile.yaml: no such profile file"),
        (["run", "--probes", "svm.*,"], "bad probe selection 'svm.*,': an empty glob"),
        (["run", "--probes", "nothing.here"], "no probe matches 'nothing.here'"),
        (["run", "--timeout", "-1"], "must be more than 0 seconds"),
        (["run", "--frobnicate"], "unrecognized arguments: --frobnicate"),
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
