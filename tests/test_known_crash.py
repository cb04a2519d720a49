"""Known crashes and hangs: `verdict: crash` and `verdict: timeout` rules in
`expect:`, their outcomes (XCRASH, XTIMEOUT), how every report shows them,
the boot of its own a known crasher gets, and a real one on QEMU TCG."""

import re
import xml.etree.ElementTree as ET

import pytest
import yaml
from conftest import nvct, run_profile
from records import make_run

from conformance.core.catalog import Probe
from conformance.core.profile import ExpectRule, ProfileError, load_profile
from conformance.core.runrecord import RunRecord
from conformance.core.verdicts import Verdict
from conformance.gate.expect import Expectations, Outcome, assess, known_to_break
from conformance.gate.features import feature_view
from conformance.reports import html as html_report
from conformance.reports import junit as junit_report
from conformance.reports import markdown as markdown_report
from conformance.reports import tap as tap_report
from conformance.reports import text as text_report
from conformance.run.runner import RunOptions, _plan

STACK = "name: t\nstack:\n  - backend: qemu\n    cpu: max\n"
RULE = {"probes": "svm.x", "reason": "the model aborts", "link": "docs/probes/svm.md#q11", "file": "p.yaml", "line": 3}


# ---- the rule -----------------------------------------------------------------------------


@pytest.mark.parametrize("verdict", ["crash", "timeout", "CRASH"])
def test_crash_and_timeout_rules_load(tmp_path, verdict):
    path = tmp_path / "p.yaml"
    path.write_text(STACK + f"expect:\n  - probes: svm.x\n    verdict: {verdict}\n    reason: it aborts\n")
    (rule,) = load_profile(path).expect
    assert (rule.verdict, rule.reason, rule.link, rule.line) == (verdict.lower(), "it aborts", None, 6)


@pytest.mark.parametrize("verdict", ["crash", "timeout"])
def test_crash_and_timeout_rules_need_a_reason(tmp_path, verdict):
    path = tmp_path / "p.yaml"
    path.write_text(STACK + f"expect:\n  - probes: svm.x\n    verdict: {verdict}\n")
    with pytest.raises(ProfileError) as exc:
        load_profile(path)
    assert exc.value.line == 6 and f"a rule with verdict {verdict} must say why" in exc.value.message


# ---- outcomes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "verdict, want, outcome, ok, why",
    [
        ("CRASH", "crash", "XCRASH", True, ""),
        ("TIMEOUT", "timeout", "XTIMEOUT", True, ""),
        ("PASS", "crash", "XPASS", False, "XPASS: a known crash now passes; update the baseline"),
        ("PASS", "timeout", "XPASS", False, "XPASS: a known timeout now passes; update the baseline"),
        ("FAIL", "crash", "FAIL", False, "FAIL where CRASH was expected: d: the known crash is gone; update the"),
        ("FAIL", "timeout", "FAIL", False, "FAIL where TIMEOUT was expected: d: the known timeout is gone"),
        ("SKIP", "crash", "SKIP", False, "SKIP where a known CRASH was expected: the feature disappeared"),
        ("TIMEOUT", "crash", "TIMEOUT", False, "TIMEOUT: d (a known crash must CRASH, not TIMEOUT; rule p.yaml:3"),
        ("CRASH", "timeout", "CRASH", False, "CRASH: d (a known timeout must TIMEOUT, not CRASH"),
        ("ERROR", "crash", "ERROR", False, "ERROR: d (a known crash must CRASH, not ERROR"),
        ("CRASH", "fail", "CRASH", False, "a known failure must FAIL, not CRASH"),
        ("CRASH", "skip", "CRASH", False, "CRASH: d"),
        ("CRASH", "pass", "CRASH", False, "CRASH: d"),
    ],
)
def test_outcomes_of_known_crashes_and_timeouts(verdict, want, outcome, ok, why):
    a = assess(Verdict(verdict), "d" if verdict != "PASS" else "", {**RULE, "verdict": want})
    assert (a.outcome, a.ok) == (Outcome(outcome), ok)
    assert why in a.why
    if not ok:
        assert "p.yaml:3" in a.why or want in ("skip", "pass")


def crash_run(**extra):
    return make_run(
        [
            ("svm.vmrun.basic", "PASS"),
            ("svm.event.v_tpr_unmask", "CRASH", "qemu killed by signal 6 before END"),
            ("svm.intercept.vmmcall_clear", "TIMEOUT", "svm.intercept.vmmcall_clear ran for 60 s without a result"),
            ("svm.intercept.shutdown", "PASS"),  # a known crash that passes: XPASS
        ],
        rules=[
            {
                "probes": "svm.event.v_tpr_unmask",
                "verdict": "crash",
                "reason": "QEMU aborts",
                "link": "docs/probes/svm.md#q11",
            },
            {"probes": "svm.intercept.vmmcall_clear", "verdict": "timeout", "reason": "KVM hangs"},
            {"probes": "svm.intercept.shutdown", "verdict": "crash", "reason": "the machine resets"},
        ],  # fmt: skip
        **extra,
    )


def test_the_gate_holds_on_known_crashes_and_counts_them():
    run = crash_run()
    assert run.gate.counts["XCRASH"] == 1 and run.gate.counts["XTIMEOUT"] == 1 and run.gate.counts["XPASS"] == 1
    assert [f["probe"] for f in run.gate.failures] == ["svm.intercept.shutdown"]
    rule = {"probes": "svm.event.v_tpr_unmask", "verdict": "crash", "reason": "QEMU aborts"}
    held = make_run([("svm.event.v_tpr_unmask", "CRASH", "qemu killed by signal 6 before END")], rules=[rule])
    assert held.gate.holds and held.gate.counts["XCRASH"] == 1


def test_a_record_with_crash_rules_reads_back_and_gates_the_same(tmp_path):
    run = crash_run()
    path = tmp_path / "r.json"
    run.write(path)
    again = RunRecord.read(path)  # the shape check accepts crash and timeout rules
    assert [r.verdict for r in again.expectations.rules] == ["crash", "timeout", "crash"]
    assert again.gate.to_dict() == run.gate.to_dict()
    proc = nvct("report", str(path))
    assert proc.returncode == 1 and "1 XCRASH, 1 XTIMEOUT, 1 XPASS" in proc.stdout, proc.stdout + proc.stderr


# ---- reports ------------------------------------------------------------------------------


def test_text_report_names_known_crashes():
    out = text_report.render(crash_run())
    assert re.search(r"svm\.event\.v_tpr_unmask +XCRASH +qemu killed by signal 6", out)
    assert re.search(r"svm\.intercept\.vmmcall_clear +XTIMEOUT +svm\.intercept\.vmmcall_clear ran for 60 s", out)
    rows = [line for line in out.splitlines() if line.startswith(("PROBE ", "svm."))]
    assert len({re.match(r"\S+ +\S+ +", line).end() for line in rows if len(line.split()) > 2}) == 1  # aligned
    assert "; 0 XFAIL, 1 XCRASH, 1 XTIMEOUT, 1 XPASS, 1 against the gate" in out
    assert re.search(r"gate: FAILS: 1 result against it \(expectations of \S+; "
                     r"1 PASS, 1 XPASS, 1 XCRASH, 1 XTIMEOUT\)", out)  # fmt: skip
    svm = {s.feature: s for s in feature_view(crash_run())}["SVM"].text()
    assert "svm.event.v_tpr_unmask CRASH (known)" in svm and "svm.intercept.vmmcall_clear TIMEOUT (known)" in svm


def test_junit_skips_known_crashes_like_xfail():
    root = ET.fromstring(junit_report.render(crash_run()))
    cases = {c.get("name"): c for c in root.iter("testcase")}
    crash = cases["svm.event.v_tpr_unmask"]
    assert [c.tag for c in crash if c.tag in ("failure", "error", "skipped")] == ["skipped"]
    message = crash.find("skipped").get("message")
    assert message.startswith("known crash (XCRASH): qemu killed by signal 6")
    assert "expected CRASH: QEMU aborts" in message
    assert cases["svm.intercept.vmmcall_clear"].find("skipped").get("message").startswith("known timeout (XTIMEOUT)")
    assert cases["svm.intercept.shutdown"].find("failure").get("type") == "XPASS"
    suite = root.find("testsuite")
    assert (suite.get("failures"), suite.get("errors"), suite.get("skipped")) == ("1", "0", "2")


def test_tap_marks_known_crashes_todo():
    lines = tap_report.render(crash_run()).splitlines()
    assert "not ok 2 - tcg L1 svm.event.v_tpr_unmask # TODO known crash: QEMU aborts" in lines
    assert "not ok 3 - tcg L1 svm.intercept.vmmcall_clear # TODO known timeout: KVM hangs" in lines
    assert "not ok 4 - tcg L1 svm.intercept.shutdown" in lines
    blocks = tap_report.render(crash_run()).split("  ---\n")
    first = yaml.safe_load("\n".join(line[2:] for line in blocks[1].split("  ...")[0].splitlines()))
    assert first["severity"] == "todo" and first["message"].startswith("XCRASH: qemu killed by signal 6")
    assert first["data"]["verdict"] == "CRASH" and first["data"]["expected"]["verdict"] == "crash"


def test_markdown_and_html_show_the_outcome():
    md = markdown_report.render(crash_run())
    assert "☑️ XCRASH <sub>qemu killed by signal 6 before END</sub>" in md and "☑️ XTIMEOUT" in md
    page = html_report.render(crash_run())
    assert 'data-outcome="XCRASH" title="qemu killed by signal 6 before END | expected CRASH: QEMU aborts' in page
    assert 'class="cell v-XCRASH"' in page and "gatefail" not in page.split('data-outcome="XCRASH"')[0][-80:]
    assert '<input type="checkbox" data-outcome="XCRASH" checked>' in page
    assert '<input type="checkbox" data-outcome="XTIMEOUT" checked>' in page


# ---- a boot of its own ----------------------------------------------------------------------


def test_known_crashers_are_isolated_at_their_level_only():
    probes = [Probe(p, "SVM", "d", "r") for p in ("svm.a", "svm.b", "svm.c")] + [Probe("svm.vm_cr.x", "SVM", "d", "r",
                                                                                       isolated=True)]  # fmt: skip
    rules = (
        ExpectRule("svm.b", "crash", reason="aborts"),
        ExpectRule("svm.c", "timeout", level=2, reason="hangs"),
        ExpectRule("svm.a", "fail", reason="bug"),
    )
    expectations = Expectations(profile="p.yaml", rules=rules)
    one = known_to_break(probes, expectations, 1)
    two = known_to_break(probes, expectations, 2)
    # The probes known to break the level come last, after those isolated for their own reasons.
    assert [(p.id, p.isolated) for p in one] == [("svm.a", False), ("svm.c", False), ("svm.vm_cr.x", True),
                                                 ("svm.b", True)]  # fmt: skip
    assert [(p.id, p.isolated) for p in two] == [("svm.a", False), ("svm.vm_cr.x", True), ("svm.b", True),
                                                 ("svm.c", True)]  # fmt: skip
    assert known_to_break(probes, None, 1) is probes
    tasks = _plan(one, RunOptions(globs=("svm.*",)), None)
    assert [(t.globs, t.ids) for t in tasks] == [
        (("svm.*", "-svm.vm_cr.x", "-svm.b"), ["svm.a", "svm.c"]),
        (("svm.vm_cr.x",), ["svm.vm_cr.x"]),
        (("svm.b",), ["svm.b"]),
    ]


# ---- a real one -----------------------------------------------------------------------------


@pytest.mark.boot
def test_qemu_tcg_v_tpr_unmask_is_a_known_crash(tmp_path):
    proc, record = run_profile(tmp_path, "qemu-tcg", "--probes", "svm.event.v_tpr_unmask,svm.vmrun.vmmcall")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    got = {r["probe"]: (r["verdict"], r["outcome"]) for r in record["results"]}
    assert got == {"svm.event.v_tpr_unmask": ("CRASH", "XCRASH"), "svm.vmrun.vmmcall": ("PASS", "PASS")}
    crash = next(r for r in record["results"] if r["probe"] == "svm.event.v_tpr_unmask")
    assert "signal 6" in crash["detail"] and crash["expected"]["link"] == "docs/probes/svm.md#q11"
    boots = {r["probe"]: r["boot"] for r in record["results"]}
    assert boots["svm.event.v_tpr_unmask"] != boots["svm.vmrun.vmmcall"] and record["levels"][0]["boots"] == 2
    assert record["gate"]["holds"] and record["gate"]["counts"]["XCRASH"] == 1
    assert "gate: holds" in proc.stdout and "1 XCRASH" in proc.stdout
    report = nvct("report", str(tmp_path / "qemu-tcg.json"), "--format", "tap")
    assert report.returncode == 0, report.stderr
    todo = r"not ok \d+ - qemu-tcg L1 svm\.event\.v_tpr_unmask # TODO known crash: a guest MOV to CR8"
    assert re.search(todo, report.stdout)


# ---- the shipped profiles ---------------------------------------------------------------------


def _anchors(doc):
    """A Markdown file's link targets: `<a id>`s and GitHub's heading slugs."""
    text = doc.read_text()
    ids = set(re.findall(r'<a id="([^"]+)"></a>', text))
    for heading in re.findall(r"^#+ (.+)$", text, flags=re.M):
        ids.add(re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-"))
    return ids


def test_shipped_multi_level_profiles_have_expectations_and_their_links_resolve():
    from conftest import ROOT

    for path in sorted((ROOT / "profiles").glob("*.yaml")):
        profile = load_profile(path)
        if len(profile.stack) > 1:
            assert profile.expect, f"{path.name}: a multi-level profile without expect:"
        for rule in profile.expect or ():
            if rule.verdict in ("crash", "timeout"):
                assert rule.link, f"{rule.where()}: a known {rule.verdict} without a link"
            if rule.link and rule.link.startswith("docs/"):
                doc, _, anchor = rule.link.partition("#")
                assert (ROOT / doc).is_file(), rule.where()
                assert anchor in _anchors(ROOT / doc), f"{rule.where()}: no #{anchor} in {doc}"
