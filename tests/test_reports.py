"""Reports from run records: text, JUnit (validated against junit-10.xsd),
TAP 13, Markdown, HTML (rendered in headless Chromium); `nvct report`."""

import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from conftest import PROFILES, need, nvct
from records import make_run

from conformance.reports import html as html_report
from conformance.reports import junit, markdown, tap, text

DATA = Path(__file__).resolve().parent / "data"
XSD = DATA / "junit-10.xsd"

RULES = [
    {"probes": "vmx.*", "verdict": "skip", "reason": "no VMX under TCG"},
    {"probes": "svm.intercept.iopm", "verdict": "fail", "reason": "size bits", "link": "https://bugs.example/7"},
    {"probes": "svm.vmrun.known", "verdict": "fail", "reason": "was broken"},
]


def every_outcome():
    """A run with one result of every outcome, and a console with bytes XML 1.0 forbids."""
    return make_run(
        [
            ("cpu.basic", "PASS"),
            ("svm.vmrun.basic", "PASS"),
            ("svm.vmrun.known", "PASS"),  # XPASS
            ("svm.intercept.iopm", "FAIL", "EXITINFO1 0x800010, want 0x800210"),  # XFAIL
            ("svm.intercept.hlt", "FAIL", "want exit 0x78 <HLT>, got 0x81 & more"),
            ("svm.npt.nx", "SKIP", "CPUID 0x8000000A EDX.NP=0"),  # SKIP where PASS was expected
            ("svm.basic.err", "ERROR", "record lost"),
            ("svm.basic.hang", "TIMEOUT", "ran for 3 s without a result"),
            ("svm.basic.boom", "CRASH", "qemu exited with status 0 before END"),
            ("vmx.root.vmxon", "SKIP", "CPUID.1:ECX.VMX[bit 5]=0"),
        ],
        rules=RULES,
        console=["@NVCT1 3 START probe=x #0", "\x1b[31mred\x1b[0m \x00\x07 caf\u00e9 ]]> <tag>"],
    )


def xmlschema_or_skip():
    return pytest.importorskip("xmlschema", reason="xmlschema is in the test extra: pip install -e '.[test]'")


def validate_junit(path_or_text):
    xmlschema = xmlschema_or_skip()
    schema = xmlschema.XMLSchema(str(XSD))
    source = path_or_text if isinstance(path_or_text, Path) else path_or_text
    schema.validate(source)


# ---- JUnit ------------------------------------------------------------------------------


def test_the_schema_copy_keeps_its_licence_header():
    head = XSD.read_text()[:1500]
    assert "The MIT License (MIT)" in head and "Copyright (c) 2014, Gregory Boissinot" in head


def test_junit_validates_and_follows_the_gate(tmp_path):
    run = every_outcome()
    out = tmp_path / "r.xml"
    out.write_text(junit.render(run))
    validate_junit(out)
    root = ET.parse(out).getroot()
    (suite,) = root.findall("testsuite")
    assert suite.get("name") == "nvct.tcg.L1" and suite.get("hostname") == "hostA"
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert cases["svm.vmrun.basic"].get("classname") == "nvct.tcg.L1.svm.vmrun"

    def kind(name):
        case = cases[name]
        child = next((c for c in case if c.tag in ("failure", "error", "skipped")), None)
        return (child.tag, child.get("type")) if child is not None else None

    assert kind("cpu.basic") is None
    assert kind("svm.vmrun.known") == ("failure", "XPASS")
    assert kind("svm.intercept.iopm") == ("skipped", None)
    assert "known failure (XFAIL)" in cases["svm.intercept.iopm"].find("skipped").get("message")
    assert kind("svm.intercept.hlt") == ("failure", "FAIL")
    assert kind("svm.npt.nx") == ("failure", "SKIP")
    assert kind("svm.basic.err") == ("error", "ERROR")
    assert kind("svm.basic.hang") == ("error", "TIMEOUT")
    assert kind("svm.basic.boom") == ("error", "CRASH")
    assert kind("vmx.root.vmxon") == ("skipped", None)
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors"), suite.get("skipped")) == (
        "10",
        "3",
        "3",
        "2",
    )
    failure = cases["svm.intercept.hlt"].find("failure")
    assert "want exit 0x78 <HLT>, got 0x81 & more" in failure.get("message")
    assert "console:" in failure.text and "note svm.intercept.hlt" in failure.text
    assert "\\x1b[31mred" in cases["cpu.basic"].find("system-out").text  # control bytes escaped, not dropped
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["fact.hv.signature"] == "TCGTCGTCGTCG" and props["gate"] == "fails"
    assert props["feature.NPT"].startswith("not exposed") is False  # NPT is exposed by the facts


def test_junit_of_merged_runs_has_a_suite_per_profile_and_level():
    a = make_run([("svm.a.b", "PASS")], profile="tcg", levels=(1, 2), host="h1")
    b = make_run([("svm.a.b", "PASS")], profile="tcg", host="h2")
    xml = junit.render_runs([a, b])
    validate_junit(xml)
    names = [s.get("name") for s in ET.fromstring(xml.split("\n", 1)[1]).findall("testsuite")]
    assert names == ["nvct.tcg@h1.L1", "nvct.tcg@h1.L2", "nvct.tcg@h2.L1"]


# ---- TAP --------------------------------------------------------------------------------

TAP_LINE = re.compile(r"^(ok|not ok) (\d+) - (\S+ L\d+ \S+)( # (SKIP|TODO) .*)?$")


def test_tap13_one_line_per_probe_per_level_with_yaml_for_failures():
    run = every_outcome()
    lines = tap.render(run).splitlines()
    assert lines[0] == "TAP version 13" and lines[1] == "1..10"
    tests = [line for line in lines if line.startswith(("ok ", "not ok "))]
    assert [int(TAP_LINE.match(t).group(2)) for t in tests] == list(range(1, 11))
    by_name = {TAP_LINE.match(t).group(3).split()[-1]: t for t in tests}
    assert by_name["cpu.basic"] == "ok 1 - tcg L1 cpu.basic"
    assert by_name["vmx.root.vmxon"].endswith("# SKIP CPUID.1:ECX.VMX[bit 5]=0")
    assert (
        by_name["svm.intercept.iopm"].startswith("not ok")
        and "# TODO known failure: size bits" in by_name["svm.intercept.iopm"]
    )
    assert by_name["svm.vmrun.known"].startswith("not ok") and "#" not in by_name["svm.vmrun.known"].split(" - ")[1]
    assert by_name["svm.npt.nx"].startswith("not ok") and "# SKIP" not in by_name["svm.npt.nx"]
    # Each not-ok line is followed by a YAML block indented by two spaces.
    blocks = 0
    for i, line in enumerate(lines):
        if line.startswith("not ok"):
            assert lines[i + 1] == "  ---"
            end = lines.index("  ...", i + 1)
            data = yaml.safe_load("\n".join(x[2:] for x in lines[i + 2 : end]))
            assert data["severity"] in ("fail", "todo") and data["data"]["outcome"]
            blocks += 1
    assert blocks == 7
    xpass = lines.index(by_name["svm.vmrun.known"])
    assert "XPASS" in lines[xpass + 2]


# ---- text and Markdown ----------------------------------------------------------------------


def test_text_opens_with_features_then_probes_grouped_then_summary_and_gate():
    out = text.render(every_outcome())
    lines = out.splitlines()
    assert lines.index("FEATURES") < next(i for i, x in enumerate(lines) if x.startswith("PROBE"))
    assert "  SVM    L1  exposed with 5 failures:" in out
    assert "svm.intercept.iopm FAIL (known)" in out
    assert "# NPT (SVM)" in out
    row = next(x for x in lines if x.startswith("svm.vmrun.known "))
    assert row.split()[1] == "XPASS"
    summary = next(x for x in lines if x.startswith("L1: 10 probes:"))
    assert summary.endswith("; 1 XFAIL, 1 XPASS, 6 against the gate")
    assert "gate: FAILS: 6 results against it" in out
    assert "  L1 svm.npt.nx: SKIP where PASS was expected: the feature disappeared" in out


def test_markdown_matrix():
    a = every_outcome()
    b = make_run([("svm.vmrun.basic", "FAIL", "a | pipe")], profile="ryzen")
    md = markdown.render_runs([a, b])
    assert md.startswith("## nvct: tcg, ryzen: gate FAILS")
    assert "| feature | tcg L1 | ryzen L1 |" in md
    assert "| `svm.vmrun.basic` | ✅ PASS | ❌ **FAIL** <sub>FAIL: a \\| pipe</sub> |" in md
    assert "⚠️ **XPASS**" in md and "☑️ XFAIL" in md
    assert "exposes SVM, NPT, vGIF" in md


# ---- HTML ---------------------------------------------------------------------------------


def test_html_is_one_file_that_loads_nothing():
    page = html_report.render_runs(
        [
            every_outcome(),
            make_run([("vmx.root.vmxon", "PASS")], profile="skylake", facts={"cpu.vendor": "GenuineIntel", "vmx": "1"}),
        ]
    )
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # no network
    assert "<link" not in page and "@import" not in page and "url(" not in page
    assert "default-src 'none'" in page
    assert "<script>alert" not in html_report.render(make_run([("a.b", "FAIL", "<script>alert(1)</script>")]))


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium(tmp_path, *args):
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.skip("chromium not installed (Debian package chromium): the HTML report is not rendered")
    profile = tmp_path / "chromium-profile"
    proc = subprocess.run([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def check_rendered_dom(dom, columns, probe, outcomes="FAIL|XPASS|CRASH|ERROR|TIMEOUT"):
    assert 'class="js' in dom  # the script ran
    matrix = dom[dom.index('id="matrix"') :]
    for title in columns:
        assert f">{title}<br><small>" in matrix
    assert re.search(rf'data-probe="{re.escape(probe)}"><td[^>]*>[^<]*</td><td class="cell v-({outcomes})', matrix)
    assert re.search(r'<span class="count">\d+/\d+</span>', dom)  # filled in by the filters
    assert 'id="facts"' in dom and "hypervisor signature" in dom


def test_html_renders_in_headless_chromium(tmp_path):
    page = tmp_path / "r.html"
    page.write_text(
        html_report.render_runs([every_outcome(), make_run([("svm.vmrun.basic", "FAIL", "x")], profile="ryzen")])
    )
    dom = chromium(tmp_path, "--dump-dom", page.as_uri()).stdout
    check_rendered_dom(dom, ["tcg L1", "ryzen L1"], "svm.vmrun.known")
    assert "exposed with 5 failures" in dom
    # The filters work in the browser: a link that shows only XPASS rows, one that shows only
    # what fails the gate.
    hidden = re.compile(r'<tr class="row( hidden)?" data-probe="([^"]+)"')
    only_xpass = chromium(tmp_path, "--dump-dom", page.as_uri() + "#outcomes=XPASS").stdout
    shown = [m.group(2) for m in hidden.finditer(only_xpass) if not m.group(1)]
    assert shown == ["svm.vmrun.known"]
    gate = chromium(tmp_path, "--dump-dom", page.as_uri() + "#gate").stdout
    shown = sorted(m.group(2) for m in hidden.finditer(gate) if not m.group(1))
    assert shown == sorted([f["probe"] for f in every_outcome().gate.failures] + ["svm.vmrun.basic"])  # + ryzen FAIL
    shot = tmp_path / "shot.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1400,900", page.as_uri())
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


def test_html_tables_need_no_javascript():
    """The tables are in the page as served; the script only adds folding and
    filters, and the filter bar shows only where the script ran."""
    from html.parser import HTMLParser

    class Rows(HTMLParser):
        def __init__(self):
            super().__init__()
            self.rows, self.cells, self.in_script = 0, [], False

        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            if tag == "tr" and attrs.get("class") == "row":
                self.rows += 1
            if tag == "td" and "cell" in (attrs.get("class") or ""):
                self.cells.append(attrs["data-outcome"])

    page = html_report.render(every_outcome())
    parser = Rows()
    parser.feed(page)
    assert parser.rows == 10
    assert sorted(set(parser.cells)) == ["CRASH", "ERROR", "FAIL", "PASS", "SKIP", "TIMEOUT", "XFAIL", "XPASS"]
    assert ".filters { margin: .5em 0 1em; display: none;" in page and "html.js .filters { display: flex; }" in page


# ---- nvct report, and the reports of a real run ------------------------------------------------


def test_report_command_formats_and_errors(tmp_path):
    record = tmp_path / "r.json"
    every_outcome().write(record)
    for fmt in ("text", "junit", "tap", "markdown", "html", "json"):
        proc = nvct("report", str(record), "--format", fmt)
        assert proc.returncode == 1, proc.stderr  # the gate fails for this run
        assert proc.stdout
    # JSON is one shape, a set of runs (as nvct merge writes it), even of one; --json is -f json.
    for args in (["-f", "json"], ["--json"]):
        data = json.loads(nvct("report", str(record), *args).stdout)
        assert data["schema"] == "nvct-runs/1" and [run["gate"]["holds"] for run in data["runs"]] == [False]
    both = json.loads(nvct("report", str(record), str(record), "--json").stdout)
    assert both["schema"] == "nvct-runs/1" and len(both["runs"]) == 2
    out = tmp_path / "r.xml"
    assert nvct("report", str(record), "-f", "junit", "-o", str(out)).returncode == 1
    validate_junit(out)
    missing = nvct("report", str(tmp_path / "nope.json"))
    assert missing.returncode == 2 and missing.stderr.strip() == f"nvct: error: {tmp_path / 'nope.json'}: no such file"
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "nvct-run/1", "results": [1]}')
    proc = nvct("report", str(bad))
    assert proc.returncode == 2 and proc.stderr.startswith(f"nvct: error: {bad}: malformed run record")
    bad.write_text("{not json")
    proc = nvct("report", str(bad))
    assert proc.returncode == 2 and proc.stderr.startswith(f"nvct: error: {bad}: not JSON")
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.boot
def test_run_writes_every_report_and_they_hold_up(tmp_path):
    """The acceptance check: one `nvct run` writes JSON, JUnit, TAP, Markdown and
    HTML; the JUnit validates, the HTML renders the matrix in Chromium."""
    need("qemu-system-x86_64", "qemu-system-x86")
    files = {k: tmp_path / f"r.{k}" for k in ("json", "xml", "tap", "md", "html")}
    proc = nvct("run", "--profile", str(PROFILES / "qemu-tcg.yaml"), "-o", str(files["json"]),
                "--junit", str(files["xml"]), "--tap", str(files["tap"]), "--markdown", str(files["md"]),
                "--html", str(files["html"]))  # fmt: skip
    assert proc.returncode in (0, 1), proc.stderr
    record = json.loads(files["json"].read_text())
    assert proc.returncode == (0 if record["gate"]["holds"] else 1)
    validate_junit(files["xml"])
    n = len(record["results"])
    assert len(ET.parse(files["xml"]).getroot().findall(".//testcase")) == n
    assert files["tap"].read_text().splitlines()[1] == f"1..{n}"
    assert "| feature | qemu-tcg L1 |" in files["md"].read_text()
    assert proc.stdout.splitlines()[4] == "FEATURES"
    dom = chromium(tmp_path, "--dump-dom", files["html"].as_uri()).stdout
    first = record["results"][0]
    check_rendered_dom(dom, ["qemu-tcg L1"], first["probe"], first["outcome"])
    assert "TCGTCGTCGTCG" in dom


def test_every_report_names_the_nesting_settings_a_level_reported():
    """A nested level's hypervisor says how it came up (for KVM: the module
    and its parameters); the text, HTML, Markdown and JUnit reports show it."""
    run = make_run([("svm.vmrun.vmmcall", 2, "PASS", "")], levels=(2,))
    run.levels[0].hypervisor = {
        "backend": "linux-kvm",
        "version": "Linux 6.1.0",
        "settings": {"nested": True},
        "runtime": {"module": "kvm_amd", "kvm_amd.nested": "1", "kvm_amd.npt": "Y", "kernel": "6.1.0"},
    }
    want = "kvm_amd nested=1 npt=Y"
    assert want in text.render(run)
    assert want in html_report.render(run)
    assert want in markdown.render(run)
    assert f'name="hypervisor.nesting" value="{want}"' in junit.render(run)
