"""docs/probes/svm.md and vmx.md are generated (`nvct docs`) from the
catalogue, the requirement map and the recorded runs: the committed pages
must be what the generator gives now."""

from __future__ import annotations

import re
import shutil

from conftest import ROOT, nvct

DOCS = ROOT / "docs" / "probes"


def test_the_committed_probe_docs_are_not_stale(image):
    proc = nvct("docs", "--check")
    assert proc.returncode == 0, proc.stderr


def test_a_stale_page_is_caught_and_rewritten(image, tmp_path):
    docs = tmp_path / "probes"
    shutil.copytree(DOCS, docs)
    page = docs / "svm.md"
    page.write_text(page.read_text().replace("| `svm.basic.cr2` |", "| `svm.basic.cr2x` |"))
    proc = nvct("docs", "--check", "--docs", str(docs))
    assert proc.returncode == 1 and "svm.md is stale" in proc.stderr and "vmx.md" not in proc.stderr
    assert nvct("docs", "--docs", str(docs)).returncode == 0
    assert page.read_text() == (DOCS / "svm.md").read_text()


def test_the_pages_keep_the_hand_written_parts_and_every_probe(image):
    for arch in ("svm", "vmx"):
        text = (DOCS / f"{arch}.md").read_text()
        for part in ("intro.md", "deviations.md"):
            assert (DOCS / arch / part).read_text().strip() in text
        for probe in image.catalog():
            if probe.id.startswith(arch + ".") and not probe.hidden:
                assert f"| `{probe.id}` |" in text, probe.id


def test_every_link_the_profiles_give_points_at_an_anchor_of_the_page():
    import re

    anchors = {}
    for arch in ("svm", "vmx"):
        text = (DOCS / f"{arch}.md").read_text()
        ids = set(re.findall(r'<a id="([^"]+)"', text))
        for heading in re.findall(r"(?m)^#+ (.+)$", text):
            slug = re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-")
            ids.add(slug)
        anchors[f"docs/probes/{arch}.md"] = ids
    links = set()
    for profile in (ROOT / "profiles").glob("*.yaml"):
        links |= set(re.findall(r"docs/probes/[a-z]+\.md#[A-Za-z0-9-]+", profile.read_text()))
    assert links
    missing = [link for link in sorted(links) if link.split("#")[1] not in anchors[link.split("#")[0]]]
    assert missing == []


def test_a_damaged_recorded_run_or_a_missing_part_is_one_line_and_exit_2(tmp_path):
    docs = tmp_path / "probes"
    shutil.copytree(DOCS, docs)
    (docs / "runs" / "qemu-tcg.json").write_text('{"schema": "nvct-run/1", "profile": ')
    proc = nvct("docs", "--check", "--docs", str(docs))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "qemu-tcg.json" in proc.stderr, proc.stderr
    shutil.copy(DOCS / "runs" / "qemu-tcg.json", docs / "runs" / "qemu-tcg.json")
    (docs / "vmx" / "deviations.md").unlink()
    proc = nvct("docs", "--docs", str(docs))
    assert proc.returncode == 2 and "deviations.md: missing" in proc.stderr, proc.stderr


def test_a_nested_runs_l1_like_a_single_level_run_is_a_line_not_a_column():
    """bochs-kvm-l2's L1 is the probe kernel on the same Bochs model as
    bochs-skylake; with the same verdicts it is named, not repeated."""
    text = (DOCS / "vmx.md").read_text()
    head = next(line for line in text.splitlines() if line.startswith("| id | feature |"))
    assert "| bochs-kvm-l2 L2 |" in head and "| bochs-skylake |" in head
    assert "| bochs-kvm-l2 |" not in head
    assert re.search(r"^- `bochs-kvm-l2` L1: the same \d+ verdicts as `bochs-skylake`$", text, re.M)
