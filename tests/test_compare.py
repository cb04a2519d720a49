"""Comparing and combining runs: nvct diff, merge and baseline."""

import json

import pytest
import yaml
from conftest import PROFILES, need, nvct
from records import make_run

from conformance.core.profile import ExpectRule, load_profile
from conformance.core.runrecord import read_runs
from conformance.gate.compare import baseline_rules, diff, render_baseline
from conformance.gate.expect import Expectations, apply


def test_diff_sorts_changes_per_level():
    base = make_run([("a.pass_fail", 1, "PASS", ""), ("a.pass_skip", 1, "PASS", ""), ("a.fail_pass", 1, "FAIL", "x"),
                     ("a.crash_fail", 1, "CRASH", "x"), ("a.same", 1, "SKIP", "x"), ("a.gone", 1, "PASS", ""),
                     ("a.pass_fail", 2, "PASS", "")], levels=(1, 2))  # fmt: skip
    new = make_run([("a.pass_fail", 1, "FAIL", "broke"), ("a.pass_skip", 1, "SKIP", "gone"), ("a.fail_pass", 1, "PASS", ""),
                    ("a.crash_fail", 1, "FAIL", "y"), ("a.same", 1, "SKIP", "x"), ("a.new", 1, "PASS", ""),
                    ("a.pass_fail", 2, "TIMEOUT", "hung")], levels=(1, 2))  # fmt: skip
    d = diff([base], [new])
    assert [(c.probe, c.level, c.before, c.after) for c in d.regressions] == [
        ("a.pass_fail", 1, "PASS", "FAIL"),
        ("a.pass_skip", 1, "PASS", "SKIP"),
        ("a.pass_fail", 2, "PASS", "TIMEOUT"),
    ]
    assert [c.probe for c in d.fixes] == ["a.fail_pass"]
    assert [c.probe for c in d.changes] == ["a.crash_fail"]
    assert [(c.probe, c.after) for c in d.new] == [("a.new", "PASS")]
    assert [(c.probe, c.before) for c in d.vanished] == [("a.gone", "PASS")]
    assert d.unchanged == 1 and d.regressed
    assert not diff([base], [base]).regressed


def test_diff_pairs_merged_runs_by_profile_and_host():
    base = [make_run([("a.b", "PASS")], profile="tcg", host="h1"), make_run([("a.b", "PASS")], profile="tcg", host="h2"),
            make_run([("a.b", "PASS")], profile="old")]  # fmt: skip
    new = [make_run([("a.b", "PASS")], profile="tcg", host="h2"), make_run([("a.b", "FAIL", "x")], profile="tcg", host="h1"),
           make_run([("a.b", "PASS")], profile="ryzen")]  # fmt: skip
    d = diff(base, new)
    assert [(c.run, c.after) for c in d.regressions] == [("tcg@h1", "FAIL")]
    assert d.runs_added == ["ryzen"] and d.runs_removed == ["old"]


def test_merge_keeps_each_runs_identity_and_reports_read_it(tmp_path):
    a, b, c = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    make_run([("svm.a.b", "PASS")], profile="tcg", host="h1").write(a)
    make_run([("vmx.a.b", "PASS")], profile="skylake", host="h2", levels=(1, 2)).write(b)
    make_run([("svm.a.b", "FAIL", "x")], profile="tcg", host="h3").write(c)
    out = tmp_path / "all.json"
    proc = nvct("merge", str(a), str(b), str(c), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert data["schema"] == "nvct-runs/1"
    assert [(r["profile"]["name"], r["environment"]["host"], [lv["level"] for lv in r["levels"]]) for r in data["runs"]] == [
        ("tcg", "h1", [1]), ("skylake", "h2", [1, 2]), ("tcg", "h3", [1])]  # fmt: skip
    # a merged set merges again, and every report reads it
    again = tmp_path / "again.json"
    assert nvct("merge", str(out), str(a), "-o", str(again)).returncode == 0
    assert len(read_runs(again)) == 4
    md = nvct("report", str(out), "-f", "markdown")
    assert md.returncode == 1  # the tcg run on h3 fails its gate
    assert "| feature | tcg@h1 L1 | skylake L1 | skylake L2 | tcg@h3 L1 |" in md.stdout
    assert nvct("merge", str(a), "-o", str(tmp_path / "no" / "dir.json")).returncode == 2


def test_baseline_is_an_expect_section_the_run_satisfies():
    run = make_run([("cpu.basic", 1, "PASS", ""), ("svm.npt.nx", 1, "FAIL", "NX ignored"),
                    ("vmx.root.vmxon", 1, "SKIP", "CPUID.1:ECX.VMX[bit 5]=0"), ("vmx.root.vmptrld", 1, "SKIP", "CPUID.1:ECX.VMX[bit 5]=0"),
                    ("vmx.ept.violation", 1, "SKIP", "CPUID.1:ECX.VMX[bit 5]=0 (EPT)"),
                    ("svm.nrips.a", 1, "SKIP", "no NRIPS"), ("svm.nrips.a", 2, "PASS", ""),
                    ("cpu.basic", 2, "PASS", ""), ("svm.npt.nx", 2, "FAIL", "NX ignored"),
                    ("vmx.root.vmxon", 2, "SKIP", "x"), ("vmx.root.vmptrld", 2, "SKIP", "x"),
                    ("vmx.ept.violation", 2, "SKIP", "x")], levels=(1, 2))  # fmt: skip
    rules, problems = baseline_rules(run)
    assert problems == []
    assert rules == [
        {"probes": "vmx.*", "verdict": "skip", "reason": "CPUID.1:ECX.VMX[bit 5]=0"},
        {"probes": "svm.npt.nx", "verdict": "fail", "reason": "known failure, measured 2026-11-24: NX ignored"},
        {"probes": "svm.nrips.a", "level": 1, "verdict": "skip", "reason": "no NRIPS"},
    ]
    # The run meets these expectations (a two-level stack: rules applied directly).
    expectations = Expectations("p.yaml", tuple(ExpectRule(**r) for r in rules))
    assert apply(run, expectations).holds, run.gate.failures


def test_baseline_round_trip_gates_the_same_run(tmp_path):
    run = make_run([("cpu.basic", "PASS"), ("svm.npt.nx", "FAIL", "NX: want #PF, got nothing"),
                    ("vmx.root.vmxon", "SKIP", "no VMX"), ("vmx.root.vmptrld", "SKIP", "no VMX")])  # fmt: skip
    record = tmp_path / "r.json"
    run.write(record)
    proc = nvct("baseline", str(record))
    assert proc.returncode == 0, proc.stderr
    profile = tmp_path / "p.yaml"
    profile.write_text("name: p\nstack:\n  - backend: qemu\n" + proc.stdout)
    assert len(load_profile(profile).expect) == 2
    gated = nvct("report", "--profile", str(profile), str(record))
    assert gated.returncode == 0, gated.stdout
    assert "gate: holds" in gated.stdout and "1 XFAIL" in gated.stdout


def test_baseline_names_what_no_rule_can_accept():
    run = make_run([("svm.a.b", "CRASH", "qemu died"), ("svm.a.c", "PASS")])
    text = render_baseline(run, "r.json")
    assert (
        "# NOT BASELINED (not from one run: fix it or deselect it, or expect a crash or timeout the stack always gives "
        "by hand): L1 svm.a.b: CRASH: qemu died" in text
    )
    assert yaml.safe_load(text) == {"expect": []}


def test_diff_and_baseline_input_errors(tmp_path):
    good = tmp_path / "r.json"
    make_run([("a.b", "PASS")]).write(good)
    proc = nvct("diff", str(good), str(tmp_path / "missing.json"))
    assert proc.returncode == 2 and proc.stderr.strip() == f"nvct: error: {tmp_path / 'missing.json'}: no such file"
    other = tmp_path / "o.json"
    other.write_text(json.dumps({"schema": "something-else/2"}))
    proc = nvct("baseline", str(other))
    assert proc.returncode == 2 and "not an nvct run record (schema 'something-else/2'" in proc.stderr
    assert nvct("diff", str(good)).returncode == 2  # usage


@pytest.mark.boot
def test_real_diff_names_the_probe_that_turned_from_pass_to_fail(tmp_path):
    """The same probe on two real stacks: QEMU TCG without RDTSCP (the probe
    checks only RDTSC and passes) and with it (TCG intercepts RDTSCP under the
    RDTSC intercept: FAIL). Vendors gate a change this way: run, change, run, diff."""
    need("qemu-system-x86_64", "qemu-system-x86")
    before = tmp_path / "before.yaml"
    before.write_text((PROFILES / "qemu-tcg.yaml").read_text().replace("cpu: max", "cpu: max,-rdtscp"))
    base, new = tmp_path / "base.json", tmp_path / "new.json"
    probes = "svm.intercept.rdtsc,svm.vmrun.vmmcall"
    nvct("run", "--profile", str(before), "--probes", probes, "-o", str(base))
    nvct("run", "--profile", str(PROFILES / "qemu-tcg.yaml"), "--probes", probes, "-o", str(new))
    verdicts = {r["probe"]: r["verdict"] for r in json.loads(base.read_text())["results"]}
    after = {r["probe"]: r["verdict"] for r in json.loads(new.read_text())["results"]}
    if verdicts.get("svm.intercept.rdtsc") != "PASS" or after.get("svm.intercept.rdtsc") != "FAIL":
        pytest.skip(f"svm.intercept.rdtsc no longer turns from PASS to FAIL with RDTSCP ({verdicts} -> {after})")
    proc = nvct("diff", str(base), str(new))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "regressions (1:" in proc.stdout
    assert "  L1 svm.intercept.rdtsc: PASS -> FAIL (RDTSCP" in proc.stdout
    assert "1 regressed, 0 fixed" in proc.stdout
    assert nvct("diff", str(new), str(new)).returncode == 0


def test_diff_json_for_dashboards(tmp_path):
    base, new = tmp_path / "b.json", tmp_path / "n.json"
    make_run([("svm.npt.nx", "PASS"), ("svm.npt.gpat", "FAIL", "PAT")]).write(base)
    make_run([("svm.npt.nx", "SKIP", "CPUID 0x8000000A EDX.NP=0"), ("svm.npt.gpat", "PASS")]).write(new)
    proc = nvct("diff", "--json", str(base), str(new))
    assert proc.returncode == 1
    data = json.loads(proc.stdout)
    assert data["regressed"] is True
    assert data["regressions"] == [{"run": "", "probe": "svm.npt.nx", "level": 1, "before": "PASS", "after": "SKIP",
                                    "detail": "CPUID 0x8000000A EDX.NP=0"}]  # fmt: skip
    assert [c["probe"] for c in data["fixes"]] == ["svm.npt.gpat"]
