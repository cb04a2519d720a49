"""JUnit XML from run records: a testsuite per profile and level, a testcase
per probe, valid against the JUnit schema Jenkins' xUnit plugin uses
(junit-10.xsd; tests/data/junit-10.xsd).

The elements follow the gate, so that a CI engine that reads JUnit fails
exactly where the gate does:

- PASS: a plain testcase;
- SKIP (expected, or no expect: section), XFAIL (a known failure that
  failed), XCRASH and XTIMEOUT (a known crash or timeout that came again):
  <skipped>, the message saying which;
- FAIL, XPASS, and a SKIP where PASS was expected: <failure> whose type is
  the outcome;
- ERROR, TIMEOUT, CRASH: <error> whose type is the verdict.

The element's text holds the detail, the probe's notes and its console
excerpt; <system-out> holds the console lines too. The testcase classname is
`nvct.<profile>.L<level>.<group>` (group: the probe id without its last part).

Every attribute and every text of the tree goes through `clean` when the
tree is serialised: characters XML 1.0 forbids (control characters, lone
surrogates, U+FFFE/U+FFFF) are written as `\\xNN`; ElementTree escapes the
rest (`<`, `&`, quotes, newlines in attributes).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from ..core.runrecord import RunRecord
from ..gate.features import feature_view
from .common import KNOWN, NOUN, columns, expected_text, nesting_settings, outcome, why

# XML 1.0 allows tab, newline, carriage return and U+0020 up; console lines can
# hold other control bytes (escape sequences, a crashing guest's garbage), and
# a record anything (a profile name with an escape sequence).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def clean(text: object) -> str:
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))


def _clean_tree(root: ET.Element) -> None:
    for el in root.iter():
        el.attrib = {clean(k): clean(v) for k, v in el.attrib.items()}
        if el.text is not None:
            el.text = clean(el.text)
        if el.tail is not None:
            el.tail = clean(el.tail)


def _seconds(value: float | None) -> str:
    return f"{value or 0:.6f}"


def _body(result, extra: str = "") -> str:
    parts = [extra] if extra else []
    if result.detail:
        parts.append(f"detail: {result.detail}")
    if result.notes:
        parts.append("notes:\n" + "\n".join(f"  {n}" for n in result.notes))
    if result.console:
        parts.append("console:\n" + "\n".join(f"  {line}" for line in result.console))
    return "\n".join(parts)


def _testcase(record: RunRecord, result, classname: str) -> ET.Element:
    case = ET.Element("testcase", name=result.probe, classname=classname, time=_seconds(result.duration_s))
    shown = outcome(record, result)
    bad = why(record, result)
    expected = expected_text(record, result)
    kind = None
    if shown in ("ERROR", "TIMEOUT", "CRASH"):
        kind = "error"
    elif bad:
        kind = "failure"
    if kind:
        message = bad or result.detail
        el = ET.SubElement(case, kind, type=shown, message=clean(message))
        el.text = clean(_body(result, expected))
    elif shown == "SKIP" or shown in KNOWN:
        if shown in KNOWN:
            message = f"known {NOUN[shown]} ({shown}): {result.detail}" + (f"; {expected}" if expected else "")
        else:
            message = result.detail or "skipped"
        el = ET.SubElement(case, "skipped", message=clean(message))
        el.text = clean(_body(result))
    if result.console:
        ET.SubElement(case, "system-out").text = clean("\n".join(result.console))
    return case


def render_runs(runs: list[RunRecord]) -> str:
    root = ET.Element("testsuites", name="nvct")
    totals = {"tests": 0, "failures": 0, "errors": 0}
    total_time = 0.0
    for index, col in enumerate(columns(runs)):
        record, info = col.run, col.info
        profile = record.label
        results = [r for r in record.results if r.level == col.level]
        cases = [
            _testcase(record, r, f"nvct.{profile}.L{col.level}.{r.probe.rpartition('.')[0] or r.probe}")
            for r in results
        ]
        counts = {
            "failures": sum(c.find("failure") is not None for c in cases),
            "errors": sum(c.find("error") is not None for c in cases),
            "skipped": sum(c.find("skipped") is not None for c in cases),
        }
        seconds = sum(r.duration_s or 0 for r in results)
        suite = ET.SubElement(
            root,
            "testsuite",
            name=f"nvct.{col.label}.L{col.level}",
            tests=str(len(cases)),
            failures=str(counts["failures"]),
            errors=str(counts["errors"]),
            skipped=str(counts["skipped"]),
            time=_seconds(seconds),
            timestamp=record.started,
            hostname=record.host or "unknown",
            id=str(index),
            package=f"nvct.{profile}",
        )
        props = ET.SubElement(suite, "properties")

        def prop(name: str, value: object, props: ET.Element = props) -> None:
            ET.SubElement(props, "property", name=name, value=clean(value))

        prop("profile", profile)
        prop("profile.path", record.profile.get("path", ""))
        prop("level", col.level)
        prop("status", record.status)
        if record.gate is not None:
            prop("gate", "holds" if record.gate.holds else "fails")
        if info is not None:
            prop("hypervisor", f"{info.hypervisor.get('backend', '')} {info.hypervisor.get('version', '')}".strip())
            if nesting_settings(info.hypervisor):
                prop("hypervisor.nesting", nesting_settings(info.hypervisor))
            for key, value in info.facts.items():
                prop(f"fact.{key}", value)
        for status in feature_view(record):
            if status.level == col.level:
                prop(f"feature.{status.feature}", status.text())
        suite.extend(cases)
        totals["tests"] += len(cases)
        totals["failures"] += counts["failures"]
        totals["errors"] += counts["errors"]
        total_time += seconds
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", _seconds(total_time))
    _clean_tree(root)
    ET.indent(root, space=" ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def render(record: RunRecord) -> str:
    return render_runs([record])
