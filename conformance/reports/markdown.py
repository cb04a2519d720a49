"""The compatibility matrix in Markdown (GitHub/GitLab flavour), for a
pull-request comment or a wiki page: the gate, the feature view (features
against stacks and levels), the probe matrix, the stacks' facts.

Every string from a record goes through `cell` (text) or `code` (an id):
no HTML and no Markdown from a record reaches the page, whatever a profile
name, a detail or a probe id holds. The only tags are the report's own."""

from __future__ import annotations

import re

from ..core.printable import one_line
from ..core.runrecord import RunRecord
from ..gate.features import exposed, feature_view, from_facts
from .common import KNOWN, columns, groups, lookup, nesting_settings, outcome, why

MARK = {
    "PASS": "✅ PASS",
    "SKIP": "➖ SKIP",
    "XFAIL": "☑️ XFAIL",
    "XCRASH": "☑️ XCRASH",
    "XTIMEOUT": "☑️ XTIMEOUT",
    "XPASS": "⚠️ **XPASS**",
    "FAIL": "❌ **FAIL**",
    "ERROR": "❗ **ERROR**",
    "TIMEOUT": "⏱️ **TIMEOUT**",
    "CRASH": "💥 **CRASH**",
}
STATE = {"conformant": "✅", "not exposed": "➖", "untested": "➖", "failures": "❌"}


# Characters that start Markdown or HTML (emphasis, links, images, code,
# tags, entities, strike-through, table cells): backslash-escaped, which
# CommonMark and GitHub render as the character itself. An underscore inside
# a word (kvm_amd) starts nothing and stays as it is.
_MARKUP = re.compile(r"([\\`*\[\]<>|~&]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")
_LEADING = re.compile(r"^(\d+)([.)])|^([-+=:#])")  # would start a list, a heading, ...
_PLAIN_ID = re.compile(r"[A-Za-z0-9._*?-]+")


def cell(text: object, limit: int | None = None) -> str:
    """Text that is safe inside a table cell or a list item: one line, no
    control characters, no markup (cut to `limit` characters before escaping)."""
    text = one_line(" ".join(str(text).split()))
    if limit is not None:
        text = text[:limit]
    text = _MARKUP.sub(r"\\\1", text)
    return _LEADING.sub(lambda m: f"{m.group(1)}\\{m.group(2)}" if m.group(1) else f"\\{m.group(3)}", text)


def code(text: object) -> str:
    """A probe id as code; an id that is not plain is shown as text."""
    text = str(text)
    return f"`{text}`" if _PLAIN_ID.fullmatch(text) else cell(text)


def render_runs(runs: list[RunRecord]) -> str:
    cols = columns(runs)
    results = lookup(runs)
    index = {id(run): i for i, run in enumerate(runs)}
    out: list[str] = []
    holds = all(r.gate is not None and r.gate.holds for r in runs)
    names = ", ".join(dict.fromkeys(c.label for c in cols))
    out.append(f"## nvct: {cell(names)}: gate {'holds ✅' if holds else 'FAILS ❌'}")
    out.append("")
    failures = [(run, f) for run in runs for f in (run.gate.failures if run.gate else [])]
    for run, f in failures:
        where = f"{cell(run.label)} L{f['level']} {code(f['probe'])}" if f["probe"] else cell(run.label)
        out.append(f"- {where}: {cell(f['why'])}")
    if failures:
        out.append("")

    header = "| " + " | ".join(cell(c.title) for c in cols) + " |"
    rule = "|---" * (len(cols) + 1) + "|"
    out += ["### Features", "", "| feature " + header, rule]
    views = {id(run): feature_view(run) for run in runs}
    features = list(dict.fromkeys(s.feature for run in runs for s in views[id(run)]))
    for name in features:
        row = []
        for c in cols:
            status = next((s for s in views[id(c.run)] if s.feature == name and s.level == c.level), None)
            if status is None and c.info is not None:
                status = from_facts(name, c.level, c.info.facts)
            row.append(f"{STATE[status.state]} {cell(status.text())}" if status else "")
        out.append(f"| {cell(name)} | " + " | ".join(row) + " |")
    out.append("")

    total = len({pid for _, _, ids in groups(runs) for pid in ids})
    out += [f"<details><summary>Probes ({total})</summary>", "", "| probe " + header, rule]
    for feature, _family, ids in groups(runs):
        out.append(f"| **{cell(feature)}** |" + " |" * len(cols))
        for pid in ids:
            row = []
            for c in cols:
                r = results.get((index[id(c.run)], pid, c.level))
                if r is None:
                    row.append("")
                    continue
                shown = outcome(c.run, r)
                text = MARK[shown]
                # Details where the gate fails or a known failure failed: a skip's reason
                # is in the feature view, and a comment must stay short.
                note = why(c.run, r) or (r.detail if shown in KNOWN else "")
                if note:
                    text += f" <sub>{cell(note, limit=160)}</sub>"
                row.append(text)
            out.append(f"| {code(pid)} | " + " | ".join(row) + " |")
    out += ["", "</details>", "", "### Stacks", ""]
    for c in cols:
        info = c.info
        if info is None:
            continue
        hv = info.hypervisor
        facts = info.facts
        cpu = f"{facts.get('cpu.vendor', '?')} {facts.get('cpu.brand', '')}".strip()
        sig = facts.get("hv.signature", "") if facts.get("hv.present") == "1" else "none"
        nesting = nesting_settings(hv)
        out.append(f"- **{cell(c.title)}** on {cell(c.run.host)}: L{c.level - 1} {cell(hv.get('backend', '?'))} "
                   f"{cell(hv.get('version', ''))}{'; ' + cell(nesting) if nesting else ''}; "
                   f"CPU {cell(cpu)}; hypervisor signature {cell(sig)}; "
                   f"exposes {cell(', '.join(exposed(facts)) or 'no SVM or VMX feature')}")  # fmt: skip
    return "\n".join(out) + "\n"


def render(record: RunRecord) -> str:
    return render_runs([record])
