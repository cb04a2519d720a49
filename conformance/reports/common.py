"""What every report needs from a run record: per result its outcome under
the gate, the columns of a matrix of runs and levels, and the rows."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.results import ProbeResult
from ..core.runrecord import LevelInfo, RunRecord, labels
from ..gate.features import _order, feature_order

BAD = ("FAIL", "ERROR", "TIMEOUT", "CRASH", "XPASS")
# Known results that came again (a rule's verdict fail, crash, timeout): they hold the gate.
KNOWN = ("XFAIL", "XCRASH", "XTIMEOUT")
NOUN = {"XFAIL": "failure", "XCRASH": "crash", "XTIMEOUT": "timeout"}


def nesting_settings(hypervisor: dict) -> str:
    """What a hypervisor level reported when it came up (the run record's
    `hypervisor.runtime`: for KVM the module and its nesting parameters), as
    `kvm_amd nested=1 npt=Y ...`; empty for a level that reports nothing.
    Its timings (`seconds.*`) are for benchmarks, not for this line."""
    runtime = hypervisor.get("runtime") or {}
    parts = [str(runtime["module"])] if "module" in runtime else []
    for key, value in runtime.items():
        if key in ("module", "kernel") or key.startswith("seconds."):
            continue
        parts.append(f"{key.split('.', 1)[-1]}={value}")
    return " ".join(parts)


def outcome(record: RunRecord, result: ProbeResult) -> str:
    """The result under the gate: PASS, SKIP, XFAIL, XCRASH, XTIMEOUT, XPASS, FAIL, ERROR, TIMEOUT, CRASH."""
    a = record.assessments.get((result.probe, result.level))
    return a.outcome.value if a is not None else result.verdict.value


def why(record: RunRecord, result: ProbeResult) -> str:
    """Why the result fails the gate; empty when it does not."""
    a = record.assessments.get((result.probe, result.level))
    if a is not None:
        return a.why
    return result.detail if result.verdict.is_bad else ""


def expected_text(record: RunRecord, result: ProbeResult) -> str:
    a = record.assessments.get((result.probe, result.level))
    if a is None or a.expected is None or a.expected.get("default"):
        return ""
    e = a.expected
    text = f"expected {e['verdict'].upper()}"
    if e.get("reason"):
        text += f": {e['reason']}"
    if e.get("link"):
        text += f" ({e['link']})"
    return text


@dataclass(frozen=True)
class Column:
    run: RunRecord
    label: str  # the run's name in the matrix
    level: int

    @property
    def info(self) -> LevelInfo | None:
        return self.run.level(self.level)

    @property
    def title(self) -> str:
        return f"{self.label} L{self.level}"


def levels_of(record: RunRecord) -> list[int]:
    return [lv.level for lv in record.levels] or sorted({r.level for r in record.results})


def columns(runs: list[RunRecord]) -> list[Column]:
    return [Column(run, name, level) for run, name in zip(runs, labels(runs)) for level in levels_of(run)]


def lookup(runs: list[RunRecord]) -> dict[tuple[int, str, int], ProbeResult]:
    """(run index, probe, level) -> result."""
    return {(i, r.probe, r.level): r for i, run in enumerate(runs) for r in run.results}


def groups(runs: list[RunRecord]) -> list[tuple[str, str, list[str]]]:
    """(feature, family, probe ids) across runs, in report order."""
    merged: dict[str, tuple[str, set[str]]] = {}
    order: list[str] = []
    for run in runs:
        for name, family, ids in feature_order(run):
            if name not in merged:
                merged[name] = (family, set())
                order.append(name)
            merged[name][1].update(ids)
    # a probe that moved features between runs stays under the first one
    seen: set[str] = set()
    out = []
    for name in order:
        family, ids = merged[name]
        mine = sorted((i for i in ids if i not in seen), key=str.encode)
        seen.update(mine)
        if mine:
            out.append((name, family, mine))
    return sorted(out, key=lambda row: _order(row[0], row[1]))


def gate_summary(record: RunRecord) -> str:
    gate = record.gate
    if gate is None:
        return "gate: not evaluated"
    counts = ", ".join(f"{n} {o}" for o, n in gate.counts.items() if n)
    how = (f"expectations of {record.expectations.profile}" if record.expectations is not None
           else "no expect: section, so FAIL, ERROR, TIMEOUT and CRASH fail it")  # fmt: skip
    if gate.holds:
        return f"gate: holds ({how}; {counts or 'no results'})"
    n = len(gate.failures)
    return f"gate: FAILS: {n} result{'s' if n != 1 else ''} against it ({how}; {counts or 'no results'})"


def failure_lines(record: RunRecord) -> list[str]:
    out = []
    for f in record.gate.failures if record.gate else []:
        if f["probe"] is None:
            out.append(f"  {f['why']}")
        else:
            out.append(f"  L{f['level']} {f['probe']}: {f['why']}")
    return out
