"""The terminal report: the stack, the feature view, then the probe view
(grouped by feature, a row per probe, a column per level), a summary line
per level and the gate. Reads only the run record.

Every string from the record goes through `one_line` (reports/common.py)
before it reaches the terminal: escape sequences, bells and carriage
returns in a detail or a profile name are shown, not obeyed, and a newline
cannot start a line of its own. `paint` adds the only escape sequences."""

from __future__ import annotations

from ..core.printable import one_line
from ..core.runrecord import LevelInfo, RunRecord
from ..core.verdicts import Verdict
from ..gate.features import feature_view
from .common import failure_lines, gate_summary, groups, nesting_settings, outcome

_COLOURS = {
    "PASS": "32",  # green
    "SKIP": "36",  # cyan
    "XFAIL": "33",  # yellow
    "XCRASH": "33",
    "XTIMEOUT": "33",
    "XPASS": "33;1;7",  # bold yellow, reversed
    "FAIL": "31;1",  # bold red
    "ERROR": "35;1",  # bold magenta
    "TIMEOUT": "33;1",  # bold yellow
    "CRASH": "41;37;1",  # white on red
}


def paint(text: str, verdict: Verdict | str, colour: bool) -> str:
    """`text` in the colour of a verdict or an outcome (only when colour is on)."""
    key = verdict.value if isinstance(verdict, Verdict) else verdict
    text = one_line(text)
    return f"\x1b[{_COLOURS.get(key, '0')}m{text}\x1b[0m" if colour else text


def _settings(hypervisor: dict) -> str:
    settings = hypervisor.get("settings", {})
    parts = []
    for key, value in settings.items():
        if key in ("binary", "bios", "vgabios") or value in ((), [], None, ""):
            continue
        if isinstance(value, (list, tuple)):
            value = " ".join(map(str, value))
        parts.append(f"{key}={value}")
    return " ".join(parts)


def describe_facts(facts: dict[str, str]) -> str:
    """What the probe kernel saw, in one line."""
    if not facts:
        return "no facts (the kernel did not report)"
    cpu = facts.get("cpu.vendor", "?")
    if "cpu.family" in facts:
        cpu += (f" family {facts['cpu.family']} model {facts.get('cpu.model', '?')} "
                f"stepping {facts.get('cpu.stepping', '?')}")  # fmt: skip
    hv = facts.get("hv.signature") if facts.get("hv.present") == "1" else None
    parts = [cpu, f"hypervisor {hv!r}" if hv else "no hypervisor bit"]
    if facts.get("svm") == "1":
        parts.append(
            f"SVM rev {facts.get('svm.revision', '?')} ({facts.get('svm.asids', '?')} ASIDs, "
            f"0x8000000A EDX {facts.get('svm.features', '?')})"
        )
    else:
        parts.append("SVM not exposed")
    if facts.get("vmx") == "1":
        parts.append(f"VMX (IA32_VMX_BASIC {facts.get('vmx.basic', '?')})")
    else:
        parts.append("VMX not exposed")
    return ", ".join(parts)


def stack_lines(record: RunRecord) -> list[str]:
    lines = []
    for info in record.levels:
        hv = info.hypervisor
        line = one_line(f"  L{info.level - 1}  {hv.get('backend', '?')} {hv.get('version', '')}: {_settings(hv)}")
        line = line.rstrip()
        runtime = one_line(nesting_settings(hv))
        if runtime:
            line += f"\n        measured: {runtime}"
        lines.append(line)
    for info in record.levels:
        build = info.kernel.get("build", "?")
        lines.append(one_line(f"  L{info.level}  probe kernel {build}: {describe_facts(info.facts)}"))
    return lines


def summary_line(record: RunRecord, info: LevelInfo) -> str:
    counts = record.counts(info.level)
    total = sum(counts.values())
    seconds = sum(r.duration_s or 0 for r in record.results if r.level == info.level)
    text = ", ".join(f"{counts[v]} {v.value}" for v in Verdict)
    boots = f"{info.boots} boot{'s' if info.boots != 1 else ''}"
    line = f"L{info.level}: {total} probes: {text} ({boots}, {seconds:.2f} s in probes)"
    assessed = [a for (_, level), a in record.assessments.items() if level == info.level]
    if record.expectations is not None and assessed:
        against = sum(not a.ok for a in assessed)
        known = sum(a.outcome.value == "XFAIL" for a in assessed)
        xpass = sum(a.outcome.value == "XPASS" for a in assessed)
        # XCRASH and XTIMEOUT are named only where there are some.
        more = "".join(f", {n} {o}" for o in ("XCRASH", "XTIMEOUT")
                       if (n := sum(a.outcome.value == o for a in assessed)))  # fmt: skip
        line += f"; {known} XFAIL{more}, {xpass} XPASS, {against} against the gate"
    return line


_STATE_COLOUR = {"conformant": "PASS", "not exposed": "SKIP", "untested": "SKIP", "failures": "FAIL"}


def feature_lines(record: RunRecord, colour: bool = False, width: int | None = None) -> list[str]:
    """The feature view: per feature and level, what the stack offers and how it behaves."""
    view = feature_view(record)
    if not view:
        return []
    name_width = max(len(one_line(s.feature)) for s in view)
    out = ["FEATURES"]
    for status in view:
        text = one_line(status.text())
        if width is not None and len(text) > width - name_width - 8:
            text = text[: max(width - name_width - 11, 30)] + "..."
        painted = paint(text, _STATE_COLOUR[status.state], colour)
        out.append(f"  {one_line(status.feature):<{name_width}}  L{status.level}  {painted}")
    return out


def _probe_rows(record: RunRecord, levels: list[int], colour: bool, width: int | None) -> list[str]:
    by_probe: dict[str, dict[int, object]] = {}
    for result in record.results:
        by_probe.setdefault(result.probe, {})[result.level] = result
    name_width = max([len("PROBE")] + [len(one_line(p)) for p in by_probe])
    w = max([7] + [len(outcome(record, r)) for r in record.results])  # 8 where an XTIMEOUT is shown
    out = ["PROBE".ljust(name_width) + "".join(f"  {'L' + str(lv):<{w}}" for lv in levels) + "  DETAIL"]
    for feature, family, ids in groups([record]):
        ids = [p for p in ids if p in by_probe]
        if not ids:
            continue
        heading = f"# {feature} ({family})" if feature.lower() != family.lower() else f"# {feature}"
        out.append(one_line(heading))
        for probe in ids:
            row = by_probe[probe]
            cells = []
            details = []
            for lv in levels:
                result = row.get(lv)
                if result is None:
                    cells.append("  " + "-".ljust(w))
                    continue
                shown = outcome(record, result)
                cells.append("  " + paint(shown.ljust(w), shown, colour))
                a = record.assessments.get((result.probe, result.level))
                text = a.why if a is not None and a.why and shown in ("XPASS", "SKIP") else result.detail
                if text and shown != "PASS":
                    details.append(one_line(text) if len(levels) == 1 else f"L{lv}: {one_line(text)}")
            detail = "; ".join(details)
            if width is not None:
                room = max(width - name_width - (w + 2) * len(levels) - 2, 30)
                if len(detail) > room:
                    detail = detail[: room - 3] + "..."
            out.append((one_line(probe).ljust(name_width) + "".join(cells) + "  " + detail).rstrip())
    return out


def render(record: RunRecord, colour: bool = False, width: int | None = None) -> str:
    """The report; details are cut to `width` columns if one is given (a
    terminal's), never in a log."""
    levels = [info.level for info in record.levels] or sorted({r.level for r in record.results})
    out = [one_line(f"nvct {record.nvct_version}: profile {record.profile.get('name')} ({record.profile.get('path')})")]
    out += stack_lines(record)
    out.append("")
    features = feature_lines(record, colour, width)
    if features:
        out += features + [""]
    out += _probe_rows(record, levels, colour, width)
    out.append("")
    for info in record.levels:
        out.append(summary_line(record, info))
        for problem in info.problems:
            out.append(f"  warning: L{info.level}: {one_line(problem)}")
    if record.status != "complete":
        out.append(f"run {one_line(record.status)}: the results above are what was measured before it stopped")
    if record.gate is not None:
        holds = record.gate.holds
        out.append(paint(gate_summary(record), "PASS" if holds else "FAIL", colour))
        out += [one_line(line) for line in failure_lines(record)]
    return "\n".join(out) + "\n"


def render_runs(runs: list[RunRecord], colour: bool = False, width: int | None = None) -> str:
    """Several runs (a merged set): each one's report, then the gate over all."""
    if len(runs) == 1:
        return render(runs[0], colour, width)
    parts = [render(run, colour, width) for run in runs]
    held = sum(1 for run in runs if run.gate is not None and run.gate.holds)
    parts.append(f"{len(runs)} runs: the gate holds for {held}, fails for {len(runs) - held}\n")
    return "\n".join(parts)
