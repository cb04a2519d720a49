"""Fuzzing the output side with hypothesis (issue 13): a run record damaged
anywhere (wrong types, deep nesting, lone surrogates, non-finite numbers)
is read by report, diff, merge and baseline or refused with RunRecordError
(the CLI's one line and exit 2); any string in a record gives valid JUnit
XML, no TAP line of its own, and no element or handler in the HTML; an
output path of any kind is written or refused, never replaced."""

import json
import os
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from records import make_run

from conformance.core.outputs import OutputError, write_text
from conformance.core.runrecord import RunRecordError, read_runs, write_runs
from conformance.gate import compare
from conformance.reports import html as html_report
from conformance.reports import junit, markdown, tap, text

# bench/fuzz.py sets this for a long run; the test suite keeps to a few hundred.
LONG = int(os.environ.get("NVCT_FUZZ_EXAMPLES", "0"))


def examples(n: int) -> int:
    return LONG or n


SLOW = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large]

# Strings a record can hold: anything, lone surrogates included (JSON "\ud800").
any_char = st.characters(codec=None) | st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
strings = st.text(any_char, max_size=30) | st.sampled_from(["<img src=x onerror=alert(1)>", "\nBail out!", "\x1b[2J"])
scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True), strings)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(strings, inner, max_size=3),
                      max_leaves=8)  # fmt: skip
# Nesting too deep to build in Python: a marker, made into brackets in the JSON text.
deep = st.integers(20, 100_000).map(lambda n: f"\x00DEEP{n}")
DEEP = re.compile(r'"\\u0000DEEP(\d+)"')


def base_record() -> dict:
    run = make_run([("cpu.basic", "PASS"), ("svm.vmrun.basic", "FAIL", "x"), ("svm.npt.nx", "SKIP", "no NPT")],
                   rules=[{"probes": "svm.npt.*", "verdict": "skip", "reason": "r"}])  # fmt: skip
    return run.to_dict()


def paths(data, at=()):
    """Every place in a JSON document: (path of keys and indexes)."""
    yield at
    if isinstance(data, dict):
        for key, value in data.items():
            yield from paths(value, (*at, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from paths(value, (*at, i))


def damage(doc, data):
    for _ in range(data.draw(st.integers(1, 3))):
        where = data.draw(st.sampled_from(list(paths(doc))))
        if not where:
            continue
        parent = doc
        for key in where[:-1]:
            parent = parent[key]
        if data.draw(st.booleans()) and isinstance(parent, dict):
            del parent[where[-1]]
        else:
            parent[where[-1]] = data.draw(values | deep)
    return doc


def every_output(runs, tmp: Path) -> None:
    """What report, diff, merge and baseline do with runs that were read."""
    for render in (junit.render_runs, tap.render_runs, markdown.render_runs, html_report.render_runs):
        render(runs).encode("utf-8")
    text.render_runs(runs, colour=True, width=80).encode("utf-8")
    compare.render_diff(compare.diff(runs, runs), "a", "b").encode("utf-8")
    json.dumps(compare.diff(runs, runs).to_dict())
    if len(runs) == 1:
        compare.render_baseline(runs[0], "r.json").encode("utf-8")
    write_runs(runs, tmp / "merged.json")
    read_runs(tmp / "merged.json")  # what merge writes, the next command reads


@settings(max_examples=examples(200), deadline=None, suppress_health_check=SLOW)
@given(st.data())
def test_a_damaged_run_record_is_read_or_refused_cleanly(tmp_path, data):
    doc = damage(base_record(), data)
    if data.draw(st.booleans()):
        doc = {"schema": "nvct-runs/1", "runs": [doc, base_record()]}
    path = tmp_path / "r.json"
    content = DEEP.sub(lambda m: "[" * int(m.group(1)) + "]" * int(m.group(1)), json.dumps(doc))
    path.write_text(content, encoding="utf-8")  # ensure_ascii: a lone surrogate as \udXXX
    try:
        runs = read_runs(path)
    except RunRecordError as exc:
        message = str(exc)
        assert message.startswith(f"{path}: ") and "\n" not in message
        return
    every_output(runs, tmp_path)


def page_tags(page: str) -> tuple[set[str], list[str]]:
    class Tags(HTMLParser):
        def __init__(self):
            super().__init__()
            self.tags, self.handlers = set(), []

        def handle_starttag(self, tag, attrs):
            self.tags.add(tag)
            self.handlers += [name for name, _ in attrs if name.startswith("on")]

    parser = Tags()
    parser.feed(page)
    return parser.tags, parser.handlers


HTML_TAGS = set(page_tags(html_report.render(make_run([("a.b", "FAIL", "x"), ("a.c", "SKIP", "y")])))[0])
TAP_LINE = re.compile(r"TAP version 13|1\.\.\d+|(not )?ok \d+ - .*|# .*|  .*")


@settings(max_examples=examples(200), deadline=None, suppress_health_check=SLOW)
@given(strings, strings.filter(lambda s: s.isprintable() or not any("\ud800" <= c <= "\udfff" for c in s)), strings)
def test_any_string_in_a_record_stays_inside_its_field(name, probe, detail):
    # (Probe ids come from the probe kernel or a checked record: never a lone surrogate.)
    def record(name, probe, detail):
        run = make_run([("a.b", "PASS"), (f"a.{probe}", "FAIL", detail or "x"), ("a.c", "SKIP", detail or "y")],
                       profile=name, host=detail, facts={"cpu.vendor": name, detail: probe})  # fmt: skip
        run.levels[0].problems = [detail]
        return run

    run = record(name, probe, detail)
    ET.fromstring(junit.render(run).encode("utf-8"))  # valid XML 1.0, whatever the strings
    for line in tap.render(run).splitlines():
        assert TAP_LINE.fullmatch(line), repr(line)
    page = html_report.render(run)
    page.encode("utf-8")
    tags, handlers = page_tags(page)
    assert tags <= HTML_TAGS and handlers == []
    # Every '<' from the record is escaped: the page has as many as with none in the strings.
    plain = html_report.render(record(*(s.replace("<", "x") for s in (name, probe, detail))))
    assert page.count("<") == plain.count("<")
    out = text.render(run, colour=False)
    assert not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]", out)
    md = markdown.render(run)
    assert not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f]", md)


KINDS = ["missing", "file", "link-to-file", "dangling-link", "link-to-null", "null", "directory", "missing-dir"]


@settings(max_examples=examples(100), deadline=None, suppress_health_check=SLOW)
@given(st.sampled_from(KINDS), st.text(max_size=50))
def test_an_output_path_is_written_or_refused_never_replaced(tmp_path, kind, content):
    folder = tmp_path / kind
    folder.mkdir(exist_ok=True)
    path = folder / "out"
    for p in (path, folder / "target"):
        if p.is_symlink() or p.is_file():
            p.unlink()
    if kind == "file":
        path.write_text("old")
    elif kind == "link-to-file":
        (folder / "target").write_text("old")
        path.symlink_to("target")
    elif kind == "dangling-link":
        path.symlink_to("target")
    elif kind == "link-to-null":
        path.symlink_to("/dev/null")
    elif kind == "null":
        path = Path("/dev/null")
    elif kind == "directory":
        path = folder
    elif kind == "missing-dir":
        path = folder / "no" / "out"
    before = os.lstat(path) if os.path.lexists(path) else None
    try:
        write_text(path, content)
    except OutputError as exc:
        assert kind in ("directory", "missing-dir") and "\n" not in str(exc)
        return
    assert kind not in ("directory", "missing-dir")
    if before is not None:
        after = os.lstat(path)
        assert (after.st_mode & 0o170000) == (before.st_mode & 0o170000)  # a link stays a link, a device a device
    if kind in ("missing", "file", "link-to-file", "dangling-link"):
        assert path.read_bytes() == content.encode("utf-8", "replace")
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]
