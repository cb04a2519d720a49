"""The pytest plugin (conformance/pytest_plugin.py), driven as a vendor would:
`python -m pytest --nvct-profile ...` in a folder of its own, with the
plugin loaded from the installed package's pytest11 entry point. Real boots
of QEMU TCG, kept few and small with --nvct-probes."""

from __future__ import annotations

import collections
import importlib.metadata
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from conftest import PROFILES, need, nvct

pytestmark = pytest.mark.boot

TCG = str(PROFILES / "qemu-tcg.yaml")
# The 11 first NPT probes (9 PASS, 2 known failures under TCG; named, so
# that the group can grow), a VMX probe that SKIPs, 2 CPU probes that PASS:
# every outcome but a failure, in a second of boot.
NPT = ",".join(
    f"svm.npt.{n}"
    for n in (
        "ad_bits",
        "basic",
        "gpat",
        "guest_walk",
        "not_present",
        "nx",
        "page_1g",
        "page_2m",
        "rsvd",
        "tlb_flush",
        "write",
    )
)
PROBES = NPT + ",vmx.vmxon.*,cpu.*"


def pytest_run(folder: Path, *args: str, timeout: float = 300, ini: str = "", cache: bool = False):
    """pytest in a child process, in an empty folder (no tests of its own;
    an ini file of its own, holding `ini`, and without `cache` no cache)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pytest.ini").write_text("[pytest]\n" + ini)  # not this repository's pyproject.toml
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "NVCT_"))}
    return subprocess.run(
        [sys.executable, "-m", "pytest", f"--config-file={folder / 'pytest.ini'}",
         *(() if cache else ("-p", "no:cacheprovider")), "-p", "no:hypothesispytest", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )  # fmt: skip


def collected(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in proc.stdout.splitlines() if line.startswith("nvct::")]


def outcomes(junit: Path) -> dict[str, tuple[str, str]]:
    """name -> (pytest outcome, nvct outcome) from a JUnit file."""
    result = {}
    for case in ET.parse(junit).iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        if case.find("failure") is not None or case.find("error") is not None:
            got = "failed"
        elif (skipped := case.find("skipped")) is not None:
            got = "xfailed" if skipped.get("type") == "pytest.xfail" else "skipped"
        else:
            got = "passed"
        result[case.get("name")] = (got, props.get("nvct.outcome", ""))
    return result


def chunks(junit: Path) -> dict[str, set[str]]:
    """chunk -> the workers that ran its items."""
    seen = collections.defaultdict(set)
    for case in ET.parse(junit).iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        seen[props["nvct.chunk"]].add(props["nvct.worker"])
    return seen


@pytest.fixture(scope="module")
def catalog():
    from conformance.core.catalog import select, split_globs
    from conformance.core.kernel import build
    from conformance.core.profile import load_profile

    probes = build().catalog()
    return lambda globs=None: select(probes, split_globs(globs) if globs else list(load_profile(TCG).probes))


def test_the_plugin_is_installed_as_a_pytest11_entry_point():
    points = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="pytest11")}
    assert points.get("nvct") == "conformance.pytest_plugin", "reinstall the package: ./setup"


def test_without_a_profile_the_plugin_does_nothing(tmp_path):
    (tmp_path / "test_plain.py").write_text("def test_one():\n    assert True\n")
    proc = pytest_run(tmp_path, "-q", "-n", "2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout and "nvct" not in proc.stdout
    assert "--nvct-profile" in pytest_run(tmp_path, "--help").stdout


def test_one_item_per_probe_and_level_with_stable_ids(tmp_path, catalog):
    proc = pytest_run(tmp_path, "--nvct-profile", TCG, "--collect-only", "-q")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ids = collected(proc)
    assert ids == [f"nvct::{p.id}[L1]" for p in catalog()]
    assert len(ids) > 200 and "nvct::svm.npt.nx[L1]" in ids
    # The same ids whatever the number of workers (the chunks are not in them).
    again = pytest_run(tmp_path, "--nvct-profile", TCG, "--collect-only", "-q", "--nvct-chunks", "3")
    assert collected(again) == ids


def test_markers_and_keywords_select(tmp_path, catalog):
    def ids(*args: str) -> list[str]:
        proc = pytest_run(tmp_path, "--nvct-profile", TCG, "--collect-only", "-q", "--strict-markers", *args)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return collected(proc)

    svm = [f"nvct::{p.id}[L1]" for p in catalog() if p.id.startswith("svm.")]
    assert ids("-m", "svm") == svm
    assert ids("-m", "svm.npt") == [i for i in svm if i.startswith("nvct::svm.npt.")]
    # -k matches the id and the feature (NPT), case-insensitively.
    npt = [f"nvct::{p.id}[L1]" for p in catalog() if "npt" in f"{p.id} {p.feature}".lower() and "gpat" not in p.id]
    assert ids("-k", "npt and not gpat") == npt and "nvct::svm.npt.nx[L1]" in npt
    assert ids("--nvct-probes", "vmx.ept.*", "-k", "L1") == [f"nvct::{p.id}[L1]" for p in catalog("vmx.ept.*")]


def test_verdicts_junit_and_xdist_agree_with_nvct_run(tmp_path):
    """One boot without xdist; with -n 2 one boot per chunk, each chunk on one
    worker; the outcomes are the gate's, the same as `nvct run --jobs 1` and
    `--jobs 2`."""
    need("qemu-system-x86_64", "qemu-system-x86")
    runs = {}
    for name, extra in (("sequential", ()), ("xdist", ("-n", "2"))):
        junit = tmp_path / f"{name}.xml"
        # xunit1: the family with per-testcase <properties> (the default, xunit2, has none).
        proc = pytest_run(tmp_path / name, "--nvct-profile", TCG, "--nvct-probes", PROBES,
                          f"--junitxml={junit}", "-o", "junit_family=xunit1", "-rA", *extra)  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "11 passed, 1 skipped, 2 xfailed in" in proc.stdout, proc.stdout
        runs[name] = outcomes(junit)
        assert len(runs[name]) == 14
        # Each chunk ran on one worker: one boot per chunk.
        assert all(len(workers) == 1 for workers in chunks(junit).values())
        assert len(chunks(junit)) == (2 if extra else 1)
    assert runs["sequential"] == runs["xdist"]
    assert runs["sequential"]["svm.npt.gpat[L1]"] == ("xfailed", "XFAIL")
    assert runs["sequential"]["vmx.vmxon.basic[L1]"] == ("skipped", "SKIP")
    assert runs["sequential"]["svm.npt.nx[L1]"] == ("passed", "PASS")
    # The skip reason is the kernel's; the xfail reason is the profile's rule.
    assert "SKIPPED" in proc.stdout and "CPUID.1:ECX.VMX" in proc.stdout
    assert "G_PAT" in proc.stdout

    for jobs in ("1", "2"):
        record = tmp_path / f"jobs{jobs}.json"
        done = nvct("run", "--profile", TCG, "--probes", PROBES, "--jobs", jobs, "-o", str(record))
        assert done.returncode == 0, done.stderr
        data = json.loads(record.read_text())
        got = {f"{r['probe']}[L{r['level']}]": r["outcome"] for r in data["results"]}
        assert got == {name: outcome for name, (_, outcome) in runs["sequential"].items()}, jobs


@pytest.mark.parametrize("extra", [(), ("-n", "2")], ids=["sequential", "xdist"])
def test_nvct_json_writes_the_run_record_nvct_run_would(tmp_path, extra):
    """--nvct-json: the run record, from the workers' reports under xdist;
    its results, outcomes, levels and gate as `nvct run -o` has them,
    and `nvct report` reads it. The JUnit file stays free of it."""
    need("qemu-system-x86_64", "qemu-system-x86")
    probes = f"{PROBES},svm.vm_cr.*"  # two of them isolated: a boot each
    record, junit = tmp_path / "plugin.json", tmp_path / "r.xml"
    proc = pytest_run(tmp_path / "run", "--nvct-profile", TCG, "--nvct-probes", probes, "--nvct-json", str(record),
                      f"--junitxml={junit}", *extra)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(record.read_text())
    reference = tmp_path / "nvct.json"
    assert nvct("run", "--profile", TCG, "--probes", probes, "-o", str(reference)).returncode == 0
    ref = json.loads(reference.read_text())
    assert data["schema"] == ref["schema"] and data["status"] == "complete" and data["not_run"] == []
    got = {(r["probe"], r["level"]): (r["verdict"], r["outcome"]) for r in data["results"]}
    assert got == {(r["probe"], r["level"]): (r["verdict"], r["outcome"]) for r in ref["results"]}
    assert data["gate"]["holds"] and [p["id"] for p in data["catalog"]] == [p["id"] for p in ref["catalog"]]
    (level,) = data["levels"]
    assert level["boots"] == ref["levels"][0]["boots"] + (1 if extra else 0)  # two chunks share out the probes
    assert level["facts"]["hv.signature"] == "TCGTCGTCGTCG" and level["hypervisor"]["backend"] == "qemu"
    assert "svm.npt.gpat" in nvct("report", str(record)).stdout
    assert "nvct_result" not in junit.read_text() and "HELLO" not in junit.read_text()


@pytest.mark.parametrize("extra", [(), ("-n", "2")], ids=["sequential", "xdist"])
def test_nvct_json_after_k_is_complete_with_what_k_chose(tmp_path, extra):
    """-k (like -m and --deselect) narrows what is asked for: the record is
    complete, with the chosen results and nothing in not_run."""
    need("qemu-system-x86_64", "qemu-system-x86")
    record = tmp_path / "plugin.json"
    proc = pytest_run(tmp_path / "run", "--nvct-profile", TCG, "--nvct-probes", NPT, "-k", "gpat",
                      "--nvct-json", str(record), *extra)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(record.read_text())
    assert data["status"] == "complete" and data["not_run"] == []
    assert {r["probe"] for r in data["results"]} == {"svm.npt.gpat"}


def test_failures_say_why_and_x_stops_at_the_first(tmp_path):
    """A profile whose expectations are wrong: a known failure that passes
    (XPASS, strict) and PASS expected of the two probes that fail."""
    need("qemu-system-x86_64", "qemu-system-x86")
    profile = yaml.safe_load(Path(TCG).read_text())
    profile["expect"] = [
        {"probes": "svm.npt.basic", "verdict": "fail", "reason": "pretend it is broken"},
        {"probes": "svm.npt.gpat", "verdict": "pass"},
    ]
    path = tmp_path / "wrong.yaml"
    path.write_text(yaml.safe_dump(profile))
    proc = pytest_run(tmp_path / "all", "--nvct-profile", str(path), "--nvct-probes", NPT)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "3 failed, 8 passed" in proc.stdout, proc.stdout
    assert "XPASS: a known failure now passes" in proc.stdout and "pretend it is broken" in proc.stdout
    assert "svm.npt.gpat at L1: FAIL where PASS was expected" in proc.stdout
    assert "guest RDMSR PAT" in proc.stdout  # the probe's own detail

    first = pytest_run(tmp_path / "x", "--nvct-profile", str(path), "--nvct-probes", NPT, "-x", "-q")
    assert first.returncode == 1
    assert "1 failed, 1 passed" in first.stdout, first.stdout  # ad_bits passes, basic fails, then it stops


def test_a_missing_hypervisor_is_an_error_that_says_so(tmp_path):
    profile = yaml.safe_load(Path(TCG).read_text())
    profile["stack"][0]["binary"] = "qemu-system-nonesuch"
    path = tmp_path / "missing.yaml"
    path.write_text(yaml.safe_dump(profile))
    proc = pytest_run(tmp_path / "run", "--nvct-profile", str(path), "--nvct-probes", NPT, "-q")
    assert proc.returncode == 1
    assert "11 errors" in proc.stdout, proc.stdout
    assert "qemu-system-nonesuch not found on PATH" in proc.stdout


def test_a_bad_profile_or_selection_is_a_usage_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nstack: []\n")
    proc = pytest_run(tmp_path / "a", "--nvct-profile", str(bad))
    assert proc.returncode == 4 and "--nvct-profile" in proc.stderr, proc.stderr
    proc = pytest_run(tmp_path / "b", "--nvct-profile", TCG, "--nvct-probes", "svm.[")
    assert proc.returncode == 4 and "--nvct-probes" in proc.stderr, proc.stderr


def test_node_ids_run_back_one_probe_with_lf_and_deselect(tmp_path):
    """The node ids pytest prints are ones it takes back: on the command line
    (one item; under xdist too), in its cache (--lf) and in --deselect."""
    need("qemu-system-x86_64", "qemu-system-x86")
    proc = pytest_run(tmp_path / "one", "--nvct-profile", "qemu-tcg", "nvct::cpu.cpuid.basic[L1]", "-v")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [line.split()[:2] for line in collected(proc)] == [["nvct::cpu.cpuid.basic[L1]", "PASSED"]], proc.stdout
    assert "1 passed in" in proc.stdout
    # Without the level: the probe at every level; several ids; under xdist.
    proc = pytest_run(tmp_path / "two", "--nvct-profile", TCG, "nvct::cpu.cpuid.basic", "nvct::svm.npt.gpat[L1]",
                      "-n", "2", "-q")  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed, 1 xfailed in" in proc.stdout, proc.stdout
    # Without a profile the id is explained, not a missing file.
    proc = pytest_run(tmp_path / "bare", "nvct::cpu.cpuid.basic[L1]")
    assert (
        proc.returncode == 4 and "nvct::cpu.cpuid.basic[L1] is an nvct probe item: give --nvct-profile" in proc.stderr
    )
    # One that names nothing is pytest's own usage error, naming it.
    proc = pytest_run(tmp_path / "none", "--nvct-profile", TCG, "--nvct-probes", "cpu.*", "nvct::svm.npt.nx[L1]")
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "not found: nvct::svm.npt.nx[L1]" in proc.stderr and "cpu.*" in proc.stderr

    # --lf: a profile that expects svm.npt.nx to fail (it passes: XPASS fails).
    profile = yaml.safe_load(Path(TCG).read_text())
    profile["expect"].append({"probes": "svm.npt.nx", "verdict": "fail", "reason": "pretend it is broken"})
    path = tmp_path / "wrong.yaml"
    path.write_text(yaml.safe_dump(profile))
    folder = tmp_path / "lf"
    args = ("--nvct-profile", str(path), "--nvct-probes", NPT, "-q")  # the 11 named NPT probes
    first = pytest_run(folder, *args, cache=True)
    assert first.returncode == 1 and "1 failed, 8 passed, 2 xfailed" in first.stdout, first.stdout
    again = pytest_run(folder, *args, "--lf", cache=True)
    assert again.returncode == 1 and "1 failed, 10 deselected" in again.stdout, again.stdout
    proc = pytest_run(folder, *args, "--deselect", "nvct::svm.npt.nx[L1]", cache=True)
    assert proc.returncode == 0 and "8 passed, 1 deselected, 2 xfailed" in proc.stdout, proc.stdout


def test_junit_is_valid_for_the_family_chosen(tmp_path):
    """pytest's default JUnit family, xunit2, is valid against junit-10.xsd
    (tests/data; the schema Jenkins' xUnit plugin and pytest's own tests
    use), which has no per-testcase <properties>: the plugin adds its
    nvct.* properties only under junit_family=xunit1 (or legacy), where
    everything else stays valid."""
    need("qemu-system-x86_64", "qemu-system-x86")
    xmlschema = pytest.importorskip("xmlschema", reason="xmlschema is in the test extra")
    schema = xmlschema.XMLSchema(str(Path(__file__).parent / "data" / "junit-10.xsd"))
    probes = "cpu.*,vmx.vmxon.basic,svm.npt.gpat"  # PASS, SKIP, XFAIL
    xunit2, xunit1 = tmp_path / "xunit2.xml", tmp_path / "xunit1.xml"
    proc = pytest_run(tmp_path / "2", "--nvct-profile", TCG, "--nvct-probes", probes, f"--junitxml={xunit2}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    schema.validate(str(xunit2))
    tree = ET.parse(xunit2)
    assert tree.getroot().find("testsuite").get("tests") == "4"
    assert not [case for case in tree.iter("testcase") if case.find("properties") is not None]

    proc = pytest_run(tmp_path / "1", "--nvct-profile", TCG, "--nvct-probes", probes, f"--junitxml={xunit1}",
                      "-o", "junit_family=xunit1")  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert outcomes(xunit1) == {
        "cpu.cpuid.basic[L1]": ("passed", "PASS"),
        "cpu.hypervisor.signature[L1]": ("passed", "PASS"),
        "vmx.vmxon.basic[L1]": ("skipped", "SKIP"),
        "svm.npt.gpat[L1]": ("xfailed", "XFAIL"),
    }
    # xunit1 is pytest's legacy family, with no schema of its own: junit-10.xsd
    # less per-testcase <properties> and pytest's `file` and `line` attributes.
    tree = ET.parse(xunit1)
    for case in tree.iter("testcase"):
        case.remove(case.find("properties"))
        case.attrib.pop("file", None)
        case.attrib.pop("line", None)
    schema.validate(tree)


def test_markers_are_registered_and_listed(tmp_path):
    proc = pytest_run(tmp_path, "--markers")
    assert proc.returncode == 0 and "@pytest.mark.nvct:" in proc.stdout, proc.stdout
    proc = pytest_run(tmp_path, "--markers", "--nvct-profile", TCG)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for marker in ("nvct", "svm", "svm.npt", "vmx.ept", "cpu"):
        assert f"@pytest.mark.{marker}: " in proc.stdout, marker


def test_ini_options_beside_the_command_line(tmp_path, catalog):
    """nvct_profile (a name, or a path relative to the ini file), nvct_probes,
    nvct_timeout, nvct_boot_timeout, nvct_chunks; the command line wins."""
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "mine.yaml").write_text(Path(TCG).read_text())
    ini = "nvct_profile = profiles/mine.yaml\nnvct_probes = vmx.ept.*\nnvct_timeout = 30\nnvct_boot_timeout = 60\n"
    proc = pytest_run(tmp_path, "--collect-only", "-q", ini=ini)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert collected(proc) == [f"nvct::{p.id}[L1]" for p in catalog("vmx.ept.*")]
    assert "nvct: profile qemu-tcg" in pytest_run(tmp_path, "--collect-only", ini=ini).stdout
    proc = pytest_run(tmp_path, "--collect-only", "-q", "--nvct-probes", "cpu.*", ini=ini)
    assert collected(proc) == [f"nvct::{p.id}[L1]" for p in catalog("cpu.*")]
    proc = pytest_run(tmp_path, "--collect-only", "-q", ini="nvct_profile = qemu-tcg\nnvct_probes = cpu.*\n")
    assert collected(proc) == [f"nvct::{p.id}[L1]" for p in catalog("cpu.*")]
    for bad, message in (("nvct_timeout = nan", "nvct_timeout: must be more than 0 seconds"),
                         ("nvct_boot_timeout = soon", "nvct_boot_timeout: not a number of seconds: 'soon'"),
                         ("nvct_chunks = 0", "nvct_chunks: must be a whole number, at least 1")):  # fmt: skip
        proc = pytest_run(tmp_path, "--collect-only", ini=f"nvct_profile = qemu-tcg\n{bad}\n")
        assert proc.returncode == 4 and f"pytest.ini: {message}" in proc.stderr, proc.stderr
    proc = pytest_run(tmp_path / "cli", "--nvct-profile", TCG, "--nvct-timeout", "inf")
    assert proc.returncode == 4 and "--nvct-timeout: must be more than 0 seconds" in proc.stderr, proc.stderr
