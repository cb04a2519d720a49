"""The gate: expect: rules in profiles, outcomes, exit codes, the feature view."""

import json

import pytest
from conftest import need, nvct
from records import make_run

from conformance.core.profile import ProfileError, load_profile
from conformance.core.runrecord import RunRecord
from conformance.core.verdicts import Verdict
from conformance.gate.expect import Outcome, assess
from conformance.gate.features import feature_view

STACK = "name: t\nstack:\n  - backend: qemu\n    cpu: max\n"


def write(tmp_path, text):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return path


# ---- the expect: section of a profile ----------------------------------------------


def test_expect_rules_load_with_file_and_line(tmp_path):
    path = write(tmp_path, STACK + "expect:\n  - probes: 'vmx.*'\n    verdict: SKIP\n    reason: no VMX\n"
                 "  - probes: svm.intercept.iopm\n    level: 1\n    verdict: fail\n    reason: size bits\n"
                 "    link: https://bugs.example/42\n")  # fmt: skip
    profile = load_profile(path)
    first, second = profile.expect
    assert (first.probes, first.verdict, first.reason, first.level, first.line) == ("vmx.*", "skip", "no VMX", None, 6)
    assert (second.level, second.link, second.line, second.file) == (1, "https://bugs.example/42", 9, str(path))


def test_profile_without_expect_has_none_and_empty_expect_is_a_section(tmp_path):
    assert load_profile(write(tmp_path, STACK)).expect is None


@pytest.mark.parametrize(
    "rules, line, key, message",
    [
        ("  - probes: 'vmx.*'\n    verdict: skip\n", 6, "expect[0]", "missing key: reason"),
        ("  - probes: svm.a\n    verdict: fail\n    reason: ''\n", 6, "expect[0]", "missing key: reason"),
        (
            "  - probes: svm.a\n    verdict: flaky\n",
            7,
            "expect[0].verdict",
            "must be pass, skip, fail, crash or timeout",
        ),
        (
            "  - probes: svm.a\n    verdict: pass\n    level: 2\n",
            8,
            "expect[0].level",
            "this stack runs the probe kernel at L1",
        ),
        ("  - probes: svm.a\n    verdict: pass\n    level: one\n", 8, "expect[0].level", "must be a whole number"),
        ("  - probes: 'svm.*,'\n    verdict: pass\n", 6, "expect[0].probes", "an empty glob"),
        ("  - probes: '-svm.*'\n    verdict: pass\n", 6, "expect[0].probes", "cannot exclude"),
        ("  - verdict: pass\n", 6, "expect[0]", "missing key: probes"),
        (
            "  - probes: svm.a\n    verdict: pass\n    bug: 1\n",
            8,
            "expect[0].bug",
            "unknown key (known: level, link, probes, reason, strict, verdict)",
        ),
        ("  - probes: svm.a\n", 6, "expect[0]", "missing key: verdict"),
        (
            "  - probes: svm.a\n    verdict: skip\n    reason: r\n    strict: false\n",
            9,
            "expect[0].strict",
            "false only goes with verdict fail, crash or timeout",
        ),
        ("  - probes: svm.a\n    verdict: fail\n    reason: r\n    strict: 'no'\n", 9, "expect[0].strict", "must be"),
        ("  probes: svm.a\n", 5, "expect", "must be a list of rules"),
        ("  - svm.a\n", 6, "expect[0]", "must be a mapping"),
    ],
)
def test_expect_errors_name_file_line_and_key(tmp_path, rules, line, key, message):
    path = write(tmp_path, STACK + "expect:\n" + rules)
    with pytest.raises(ProfileError) as exc:
        load_profile(path)
    err = exc.value
    assert (err.path, err.line, err.key) == (str(path), line, key), str(err)
    assert message in err.message


# ---- outcomes ---------------------------------------------------------------------------

RULE = {"file": "p.yaml", "line": 3, "reason": "because"}


@pytest.mark.parametrize(
    "verdict, want, outcome, ok",
    [
        ("PASS", None, "PASS", True),
        ("SKIP", None, "SKIP", True),
        ("FAIL", None, "FAIL", False),
        ("CRASH", None, "CRASH", False),
        ("PASS", "pass", "PASS", True),
        ("PASS", "skip", "PASS", True),
        ("PASS", "fail", "XPASS", False),
        ("SKIP", "pass", "SKIP", False),
        ("SKIP", "skip", "SKIP", True),
        ("SKIP", "fail", "SKIP", False),
        ("FAIL", "pass", "FAIL", False),
        ("FAIL", "skip", "FAIL", False),
        ("FAIL", "fail", "XFAIL", True),
        ("ERROR", "fail", "ERROR", False),
        ("TIMEOUT", "skip", "TIMEOUT", False),
        ("CRASH", "pass", "CRASH", False),
    ],
)
def test_outcome_table(verdict, want, outcome, ok):
    expected = {**RULE, "verdict": want} if want else None
    a = assess(Verdict(verdict), "the detail" if verdict != "PASS" else "", expected)
    assert (a.outcome, a.ok) == (Outcome(outcome), ok)
    if not ok:
        assert a.why


@pytest.mark.parametrize("verdict, outcome", [("PASS", "XPASS"), ("FAIL", "XFAIL")])
def test_a_rule_that_is_not_strict_holds_the_gate_either_way(verdict, outcome):
    a = assess(Verdict(verdict), "", {**RULE, "verdict": "fail", "strict": False})
    assert (a.outcome, a.ok) == (Outcome(outcome), True)
    assert not assess(Verdict.SKIP, "", {**RULE, "verdict": "fail", "strict": False}).ok
    caught = assess(Verdict.FAIL, "watchdog: ...", {**RULE, "verdict": "timeout", "strict": False})
    assert (caught.outcome, caught.ok) == (Outcome.XFAIL, True)
    assert not assess(Verdict.FAIL, "", {**RULE, "verdict": "timeout"}).ok


def test_why_says_what_and_where():
    xpass = assess(Verdict.PASS, "", {**RULE, "verdict": "fail", "link": "https://bugs.example/1"})
    assert "XPASS" in xpass.why and "p.yaml:3" in xpass.why and "https://bugs.example/1" in xpass.why
    assert "baseline" in xpass.why
    gone = assess(
        Verdict.SKIP, "CPUID 0x8000000A EDX.NP=0", {"verdict": "pass", "default": True, "file": "p.yaml", "line": 9}
    )
    assert gone.why.startswith("SKIP where PASS was expected: the feature disappeared: CPUID 0x8000000A EDX.NP=0")
    assert "no rule matches it" in gone.why


def test_later_rules_override_earlier_ones_and_levels_narrow():
    rules = [
        {"probes": "svm.*", "verdict": "skip", "reason": "no SVM"},
        {"probes": "svm.npt.*", "verdict": "fail", "reason": "NPT bug", "level": 2},
        {"probes": "svm.vmrun.basic", "verdict": "pass"},
    ]
    run = make_run([("svm.vmrun.basic", 1, "PASS", ""), ("svm.npt.nx", 1, "SKIP", "x"), ("svm.npt.nx", 2, "FAIL", "bad"),
                    ("svm.vmrun.basic", 2, "PASS", "")], levels=(1, 2), rules=rules)  # fmt: skip
    got = {(p, lv): (a.expected["verdict"], a.outcome.value) for (p, lv), a in run.assessments.items()}
    assert got == {
        ("svm.vmrun.basic", 1): ("pass", "PASS"),
        ("svm.vmrun.basic", 2): ("pass", "PASS"),
        ("svm.npt.nx", 1): ("skip", "SKIP"),
        ("svm.npt.nx", 2): ("fail", "XFAIL"),
    }
    assert run.gate.holds and run.gate.mode == "expect"


def test_unmatched_probe_expects_pass_when_a_profile_has_expect():
    run = make_run([("svm.npt.nx", "SKIP", "CPUID 0x8000000A EDX.NP=0"), ("cpu.basic", "PASS")], rules=[])
    (failure,) = run.gate.failures
    assert failure["probe"] == "svm.npt.nx" and failure["outcome"] == "SKIP"
    assert "the feature disappeared" in failure["why"]


def test_default_gate_is_todays_rule():
    run = make_run([("a.b", "PASS"), ("a.c", "SKIP"), ("a.d", "FAIL")])
    assert run.gate.mode == "default" and not run.gate.holds
    assert [f["probe"] for f in run.gate.failures] == ["a.d"]
    assert make_run([("a.b", "PASS"), ("a.c", "SKIP")]).gate.holds


def test_an_unfinished_run_fails_the_gate():
    run = make_run([("a.b", "PASS")], status="interrupted")
    assert not run.gate.holds
    assert "did not complete" in run.gate.failures[-1]["why"]


def test_run_record_keeps_the_measured_verdict_and_adds_the_gate(tmp_path):
    run = make_run([("svm.a", "PASS"), ("svm.b", "FAIL", "boom")],
                   rules=[{"probes": "svm.a", "verdict": "fail", "reason": "bug", "link": "L"}])  # fmt: skip
    path = tmp_path / "r.json"
    run.write(path)
    data = json.loads(path.read_text())
    a, b = data["results"]
    assert (a["verdict"], a["outcome"], a["expected"]["verdict"], a["expected"]["line"]) == (
        "PASS",
        "XPASS",
        "fail",
        10,
    )
    assert a["why"].startswith("XPASS")
    assert (b["verdict"], b["outcome"], b["expected"]["default"]) == ("FAIL", "FAIL", True)
    assert data["gate"]["holds"] is False and data["gate"]["counts"]["XPASS"] == 1
    assert [f["probe"] for f in data["gate"]["failures"]] == ["svm.a", "svm.b"]
    assert data["expect"]["rules"][0]["probes"] == "svm.a"
    again = RunRecord.read(path)  # the record alone carries what the gate needs
    assert again.gate.to_dict() == run.gate.to_dict()


# ---- the feature view ---------------------------------------------------------------------


def test_feature_view_from_facts_and_results():
    run = make_run([("cpu.basic", "PASS"), ("svm.vmrun.a", "PASS"), ("svm.vmrun.b", "FAIL", "bad exit"),
                    ("svm.npt.nx", "PASS"), ("svm.nrips.next", "SKIP", "CPUID 0x8000000A EDX.NRIPS[3]=0"),
                    ("vmx.root.vmxon", "SKIP", "CPUID.1:ECX.VMX[bit 5]=0"),
                    ("vmx.ept.violation", "SKIP", "CPUID.1:ECX.VMX[bit 5]=0")],
                   rules=[{"probes": "vmx.*", "verdict": "skip", "reason": "no VMX"},
                          {"probes": "svm.nrips.*", "verdict": "skip", "reason": "no NRIPS"},
                          {"probes": "svm.vmrun.b", "verdict": "fail", "reason": "known"}])  # fmt: skip
    view = {s.feature: s for s in feature_view(run)}
    assert list(view) == ["CPUID", "SVM", "NPT", "NRIPS", "VMX", "EPT"]
    assert view["SVM"].text() == "exposed with 1 failure: svm.vmrun.b FAIL (known)"
    assert view["NPT"].text() == "exposed and conformant (1 passed)"
    assert view["NRIPS"].text() == "not exposed (CPUID 0x8000000A EDX.NRIPS=0)"
    assert view["VMX"].state == view["EPT"].state == "not exposed"


def test_feature_exposed_by_the_facts_but_every_probe_skipped_is_untested():
    run = make_run([("svm.npt.nx", "SKIP", "needs 1 GiB pages")])
    (status,) = feature_view(run)
    assert status.state == "untested" and "needs 1 GiB pages" in status.text()


def test_feature_the_table_does_not_know_is_not_exposed_when_every_probe_skips():
    run = make_run([("xen.hypercall.a", "SKIP", "no Xen"), ("xen.hypercall.b", "SKIP", "no Xen")])
    (status,) = feature_view(run)
    assert (status.feature, status.family, status.text()) == ("XEN", "XEN", "not exposed (no Xen)")


# ---- the real thing -------------------------------------------------------------------------


@pytest.mark.boot
def test_known_failure_that_passes_makes_the_gate_exit_1_naming_xpass(tmp_path):
    need("qemu-system-x86_64", "qemu-system-x86")
    profile = tmp_path / "gate.yaml"
    profile.write_text(
        "name: gate\nstack:\n  - backend: qemu\n    cpu: max\n" + 'probes: "svm.vmrun.*,vmx.cpuid.*"\n'
        "expect:\n"
        "  - probes: 'vmx.*'\n    verdict: skip\n    reason: no VMX under TCG\n"
        "  - probes: svm.vmrun.vmmcall\n    verdict: fail\n    reason: pretend it is broken\n"
        "    link: https://bugs.example/1\n"
        "  - probes: 'svm.nosuch.*'\n    verdict: skip\n    reason: a glob that matches nothing\n"
    )
    out = tmp_path / "r.json"
    proc = nvct("run", "--profile", str(profile), "-o", str(out))
    assert proc.returncode == 1, proc.stderr
    row = next(line for line in proc.stdout.splitlines() if line.startswith("svm.vmrun.vmmcall "))
    assert row.split()[1] == "XPASS"
    assert "gate: FAILS: 1 result" in proc.stdout
    assert "L1 svm.vmrun.vmmcall: XPASS: a known failure now passes" in proc.stdout
    assert f"nvct: warning: {profile}:" in proc.stderr and "'svm.nosuch.*' matches no probe" in proc.stderr
    record = json.loads(out.read_text())
    got = {r["probe"]: (r["verdict"], r["outcome"]) for r in record["results"]}
    assert got == {"svm.vmrun.vmmcall": ("PASS", "XPASS"), "vmx.cpuid.exposed": ("SKIP", "SKIP")}
    assert record["gate"]["failures"][0]["outcome"] == "XPASS"
    # The record alone reproduces the gate; another profile's expectations re-gate it.
    assert nvct("report", str(out)).returncode == 1
    fixed = tmp_path / "fixed.yaml"
    fixed.write_text(
        profile.read_text().replace("verdict: fail\n    reason: pretend", "verdict: pass\n    reason: pretend")
    )
    again = nvct("report", "--profile", str(fixed), str(out))
    assert again.returncode == 0, again.stdout
    assert "gate: holds" in again.stdout


def test_features_from_the_facts_alone():
    from conformance.gate.features import exposed, from_facts

    skylake = {
        "vmx": "1",
        "svm": "0",
        "vmx.pinbased": "0x7f00000016",
        "vmx.procbased": "0xf7f9fffe0401e172",
        "vmx.procbased2": "0x2177fff00000000",
    }  # Bochs corei7_skylake_x
    # no MTF: Bochs's allowed-1 bit 27 of the primary controls is clear (vmx.intercept.mtf SKIPs there)
    assert exposed(skylake) == ["VMX", "EPT", "VPID", "unrestricted guest", "preemption timer",
                                "VMCS shadowing", "PML", "VMFUNC"]  # fmt: skip
    assert exposed({"svm": "1", "svm.features": "0x10010001", "vmx": "0"}) == ["SVM", "NPT", "vGIF"]
    assert from_facts("EPT", 1, skylake).text() == "exposed (no probe of it ran)"
    assert from_facts("NPT", 1, skylake).text() == "not exposed (CPUID 0x80000001 ECX.SVM=0)"
    assert (
        from_facts("NRIPS", 1, {"svm": "1", "svm.features": "0x1"}).text()
        == "not exposed (CPUID 0x8000000A EDX.NRIPS=0)"
    )
    assert from_facts("XEN", 1, skylake) is None
