"""TAP version 13 from run records: one test line per probe per level.

A test is `ok` exactly when its result meets the gate, so that a TAP
harness passes and fails where the gate does:

    ok 1 - qemu-tcg L1 svm.vmrun.vmmcall
    ok 2 - qemu-tcg L1 svm.exitinfo.next_rip # SKIP CPUID 0x8000000A EDX.NRIPS[3]=0
    not ok 3 - qemu-tcg L1 svm.intercept.iopm # TODO known failure: ...   (XFAIL; XCRASH: known crash, ...)
    not ok 4 - qemu-tcg L1 svm.basic.asid_zero                            (FAIL, XPASS, ...)
      ---
      message: ...
      severity: fail
      data: {...}
      ...

A `not ok` line is followed by a YAML block (indented two spaces, between
`---` and `...`) with the outcome, the measured verdict, the detail, the
expectation, the notes and the console excerpt.

A string from a record never starts a line of its own: names, reasons and
comments are put on one line (`one_line`: a newline, a carriage return, a
vertical tab or U+2028 is shown as an escape), and a `#` in a test's name is
escaped (`\\#`) so that a name cannot add a SKIP or TODO directive. The YAML
block is PyYAML's, each of its lines indented.
"""

from __future__ import annotations

import yaml

from ..core.printable import one_line
from ..core.runrecord import RunRecord
from .common import KNOWN, NOUN, columns, outcome, why


def _one_line(text: object) -> str:
    return one_line(" ".join(str(text).split()))


def _name(text: object) -> str:
    """A test's description: one line, `\\` and `#` escaped (TAP 13)."""
    return _one_line(text).replace("\\", "\\\\").replace("#", "\\#")


def _yaml_block(data: dict) -> list[str]:
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=False, width=1000, default_flow_style=False)
    return ["  ---"] + [f"  {line}" for line in text.rstrip("\n").splitlines()] + ["  ..."]


def render_runs(runs: list[RunRecord]) -> str:
    lines: list[str] = []
    number = 0
    for col in columns(runs):
        record = col.run
        lines.append(_one_line(f"# {col.title}: profile {record.profile.get('path', '')}, host {record.host}"))
        for result in (r for r in record.results if r.level == col.level):
            number += 1
            name = _name(f"{col.label} L{col.level} {result.probe}")
            shown = outcome(record, result)
            bad = why(record, result)
            a = record.assessments.get((result.probe, result.level))
            if not bad and shown == "SKIP":
                lines.append(f"ok {number} - {name} # SKIP {_one_line(result.detail or 'not exposed')}")
                continue
            if not bad and shown == "PASS":
                lines.append(f"ok {number} - {name}")
                continue
            if shown in KNOWN:
                reason = (a.expected or {}).get("reason", "") if a else ""
                lines.append(f"not ok {number} - {name} # TODO known {NOUN[shown]}: {_one_line(reason)}")
            else:
                lines.append(f"not ok {number} - {name}")
            data: dict = {"outcome": shown, "verdict": result.verdict.value, "level": result.level}
            if result.detail:
                data["detail"] = result.detail
            if a is not None and a.expected is not None:
                data["expected"] = {k: v for k, v in a.expected.items() if v is not None}
            if result.notes:
                data["notes"] = list(result.notes)
            if result.console:
                data["console"] = list(result.console)
            block = {"message": bad or f"{shown}: {result.detail}", "severity": "todo" if shown in KNOWN else "fail",
                     "data": data}  # fmt: skip
            lines += _yaml_block(block)
    out = ["TAP version 13", f"1..{number}"] + lines
    for record in runs:
        if record.gate is not None and not record.gate.holds:
            for f in record.gate.failures:
                if f["probe"] is None:
                    out.append(_one_line(f"# {record.label}: {f['why']}"))
    return "\n".join(out) + "\n"


def render(record: RunRecord) -> str:
    return render_runs([record])
