"""The requirement map (requirements/*.yaml): its schema, the ids the probes
name, and `nvct coverage` on the real catalogue."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import nvct

from conformance.core.catalog import CatalogError, parse_catalog
from conformance.core.requirements import RequirementError, coverage, load_map, requirement_verdicts, section_of
from conformance.core.results import ProbeResult
from conformance.core.verdicts import Verdict
from conformance.gate.features import FEATURES

GOOD = """\
manual: sdm
document: "Intel SDM Vol. 3C, test"
chapter: "27"
title: VM Entries
feature: VMX
sections:
  "27.2.2": Checks on Host Control Registers
requirements:
  - {id: sdm.27.2.2.host-cr0-fixed, text: "Host CR0 fixed bits."}
  - {id: sdm.27.2.2.host-smm, text: "Something in SMM.", testable: false, why: "SMM"}
"""


def write(tmp_path: Path, text: str, name: str = "sdm-27.yaml") -> Path:
    (tmp_path / name).write_text(text)
    return tmp_path


def test_the_shipped_map_loads_and_is_well_formed():
    rmap = load_map()
    reqs = rmap.requirements
    assert len(reqs) > 300
    assert len({r.id for r in reqs}) == len(reqs)
    for chapter in rmap.chapters:
        assert chapter.document and chapter.requirements, chapter.key
        for req in chapter.requirements:
            assert req.section in chapter.sections, req.id
            assert req.testable or req.why, req.id
    # both manuals, and the VM-entry checks are more than a hundred
    assert {c.manual for c in rmap.chapters} == {"sdm", "apm"}
    assert sum(r.section.startswith(("27.1", "27.2", "27.3.1")) for r in reqs) > 100


def test_every_requirement_names_a_feature_of_the_feature_view_or_a_new_one_on_purpose():
    known = {f.name for f in FEATURES}
    extra = {r.feature for r in load_map().requirements} - known
    # features the map names that the feature view has no fact test for (yet)
    assert extra <= {"GMET", "vNMI"}, extra


def test_every_requirement_a_probe_names_is_in_the_map(image):
    cov = coverage(load_map(), image.catalog())
    assert cov.problems == []
    named = {rid for p in image.catalog() for rid in p.requirements}
    assert named, "no probe names a requirement"


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda t: t.replace("manual: sdm", "manual: xyz"), "line 1: manual: want sdm or apm"),
        (lambda t: t.replace("host-cr0-fixed,", "host-cr0-fixed, colour: red,"), "line 9: unknown key 'colour'"),
        (lambda t: t.replace("sdm.27.2.2.host-cr0-fixed", "sdm.27.2.3.host-cr0-fixed"), "section 27.2.3 is not in"),
        (lambda t: t.replace("sdm.27.2.2.host-cr0-fixed", "apm.27.2.2.host-cr0-fixed"), "this file is of the sdm"),
        (lambda t: t.replace("sdm.27.2.2.host-cr0-fixed", "sdm.27.2.2.Host_CR0"), "want <sdm|apm>.<section>"),
        (lambda t: t.replace(', why: "SMM"', ""), "line 10: why: missing"),
        (lambda t: t.replace("testable: false", "testable: maybe"), "line 10: testable: want true or false"),
        (lambda t: t.replace("host-smm", "host-cr0-fixed"), "sdm.27.2.2.host-cr0-fixed"),
        (lambda t: t.replace("requirements:", "requirements: 3\nx:"), "unknown key 'x'"),
        (lambda t: t + "  - [\n", "not valid YAML"),
        (lambda t: "", "empty"),
    ],
)
def test_bad_map_files_get_one_line_naming_file_line_and_key(tmp_path, edit, message):
    write(tmp_path, edit(GOOD))
    with pytest.raises(RequirementError) as info:
        load_map(tmp_path)
    text = str(info.value)
    assert "\n" not in text and "sdm-27.yaml" in text and message in text, text


def test_an_id_in_two_files_is_refused(tmp_path):
    write(tmp_path, GOOD)
    write(tmp_path, GOOD, "sdm-27b.yaml")
    with pytest.raises(RequirementError, match="also in"):
        load_map(tmp_path)


def test_ids_in_the_catalogue_line_and_their_syntax():
    (probe,) = parse_catalog("vmx.a.b\tVMX\t-\td\tr\t sdm.27.2.2.host-cr0-fixed sdm.C.reason-10-cpuid")
    assert probe.requirements == ("sdm.27.2.2.host-cr0-fixed", "sdm.C.reason-10-cpuid")
    assert section_of("sdm.C.reason-10-cpuid") == "C"
    with pytest.raises(CatalogError, match="bad requirement id 'sdm.x'"):
        parse_catalog("vmx.a.b\tVMX\t-\td\tr\tsdm.x")


def test_coverage_counts_and_problems(tmp_path):
    rmap = load_map(write(tmp_path, GOOD))
    probes = parse_catalog(
        "vmx.a.one\tVMX\t-\td\tr\tsdm.27.2.2.host-cr0-fixed\n"
        "vmx.a.two\tVMX\t-\td\tr\tsdm.27.2.2.host-smm sdm.27.9.nowhere"
    )
    cov = coverage(rmap, probes)
    tally = cov.by_chapter()["sdm-27"]
    assert (tally.total, tally.probed, tally.untestable, tally.uncovered) == (2, 2, 0, 0)
    assert cov.problems == [
        "probe vmx.a.two names sdm.27.9.nowhere, not in the requirement map (renamed ids: docs/requirements.md)",
        "requirement sdm.27.2.2.host-smm is marked untestable, but a probe names it",
    ]
    cov = coverage(rmap, [])
    assert [r.id for r in cov.uncovered()] == ["sdm.27.2.2.host-cr0-fixed"]
    assert cov.by_feature()["VMX"].percent == 0.0


def test_a_requirement_passes_at_a_level_when_every_probe_naming_it_passed():
    catalog = [{"id": "p.a", "requirements": ["r.1", "r.2"]}, {"id": "p.b", "requirements": ["r.2", "r.3"]},
               {"id": "p.c", "requirements": ["r.3"]}]  # fmt: skip
    results = [ProbeResult("p.a", 1, Verdict.PASS), ProbeResult("p.b", 1, Verdict.FAIL),
               ProbeResult("p.c", 1, Verdict.SKIP), ProbeResult("p.a", 2, Verdict.SKIP)]  # fmt: skip
    assert requirement_verdicts(catalog, results) == {
        1: {"r.1": "PASS", "r.2": "FAIL", "r.3": "FAIL"},
        2: {"r.1": "SKIP", "r.2": "SKIP"},
    }


def test_nvct_coverage_on_the_real_catalogue(image):
    proc = nvct("coverage", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["schema"] == "nvct-coverage/1"
    assert set(data["manuals"]) == {"sdm", "apm"}
    assert data["problems"] == []
    proc = nvct("coverage")
    assert proc.returncode == 0 and "UNCOVERED (" in proc.stdout
    proc = nvct("coverage", "--markdown")
    assert proc.returncode == 0 and proc.stdout.startswith("# Requirement coverage")


def test_nvct_coverage_with_a_bad_map_exits_2(tmp_path):
    write(tmp_path, GOOD.replace("manual: sdm", "manual: xyz"))
    proc = nvct("coverage", "--requirements", str(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "manual: want sdm or apm" in proc.stderr


def test_the_html_report_shows_the_requirements_a_recorded_run_passed():
    from conformance.core.runrecord import read_runs
    from conformance.reports import html

    runs = read_runs(Path(__file__).resolve().parent.parent / "docs" / "probes" / "runs" / "bochs-skylake.json")
    page = html.render_runs(runs)
    assert '<table id="requirements">' in page
    states = requirement_verdicts(runs[0].catalog, runs[0].results)[1]
    passed = sum(v == "PASS" for v in states.values())
    assert passed > 100 and f"<td>{passed}</td>" in page
    failed = sorted(r for r, v in states.items() if v == "FAIL")
    assert failed and all(f"<li><code>{r}</code></li>" in page for r in failed)
