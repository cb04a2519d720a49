"""The terminal report: the stack, then one row per probe and a column per
level, then a summary line per level. Reads only the run record."""

from __future__ import annotations

from ..runrecord import LevelInfo, RunRecord
from ..verdicts import Verdict

_COLOURS = {
    Verdict.PASS: "32",  # green
    Verdict.SKIP: "36",  # cyan
    Verdict.FAIL: "31;1",  # bold red
    Verdict.ERROR: "35;1",  # bold magenta
    Verdict.TIMEOUT: "33;1",  # bold yellow
    Verdict.CRASH: "41;37;1",  # white on red
}


def paint(text: str, verdict: Verdict, colour: bool) -> str:
    return f"\x1b[{_COLOURS[verdict]}m{text}\x1b[0m" if colour else text


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
        cpu += f" family {facts['cpu.family']} model {facts['cpu.model']} stepping {facts.get('cpu.stepping', '?')}"
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
        lines.append(f"  L{info.level - 1}  {hv.get('backend', '?')} {hv.get('version', '')}: {_settings(hv)}".rstrip())
    for info in record.levels:
        build = info.kernel.get("build", "?")
        lines.append(f"  L{info.level}  probe kernel {build}: {describe_facts(info.facts)}")
    return lines


def summary_line(record: RunRecord, info: LevelInfo) -> str:
    counts = record.counts(info.level)
    total = sum(counts.values())
    seconds = sum(r.duration_s or 0 for r in record.results if r.level == info.level)
    text = ", ".join(f"{counts[v]} {v.value}" for v in Verdict)
    boots = f"{info.boots} boot{'s' if info.boots != 1 else ''}"
    return f"L{info.level}: {total} probes: {text} ({boots}, {seconds:.2f} s in probes)"


def render(record: RunRecord, colour: bool = False, width: int | None = None) -> str:
    """The report; details are cut to `width` columns if one is given (a
    terminal's), never in a log."""
    levels = [info.level for info in record.levels] or sorted({r.level for r in record.results})
    by_probe: dict[str, dict[int, object]] = {}
    for result in record.results:
        by_probe.setdefault(result.probe, {})[result.level] = result
    name_width = max([len("PROBE")] + [len(p) for p in by_probe])
    out = [f"nvct {record.nvct_version}: profile {record.profile.get('name')} ({record.profile.get('path')})"]
    out += stack_lines(record)
    out.append("")
    header = "PROBE".ljust(name_width) + "".join(f"  {'L' + str(lv):<7}" for lv in levels) + "  DETAIL"
    out.append(header)
    for probe in sorted(by_probe, key=str.encode):
        row = by_probe[probe]
        cells = []
        details = []
        for lv in levels:
            result = row.get(lv)
            if result is None:
                cells.append("  " + "-".ljust(7))
                continue
            cells.append("  " + paint(result.verdict.value.ljust(7), result.verdict, colour))
            if result.detail and result.verdict is not Verdict.PASS:
                details.append(result.detail if len(levels) == 1 else f"L{lv}: {result.detail}")
        detail = "; ".join(details)
        if width is not None:
            room = max(width - name_width - 9 * len(levels) - 2, 30)
            if len(detail) > room:
                detail = detail[: room - 3] + "..."
        out.append(probe.ljust(name_width) + "".join(cells) + "  " + detail)
    out.append("")
    for info in record.levels:
        out.append(summary_line(record, info))
        for problem in info.problems:
            out.append(f"  warning: L{info.level}: {problem}")
    if record.status != "complete":
        out.append(f"run {record.status}: the results above are what was measured before it stopped")
    return "\n".join(out) + "\n"
