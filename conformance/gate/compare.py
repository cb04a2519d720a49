"""Comparing and combining runs: `nvct diff`, `nvct merge`, `nvct baseline`.

All three read run records only (conformance/core/runrecord.py). Their text
shows a record's strings on one line, control characters escaped
(core/printable.py `one_line`): a detail cannot move the terminal's cursor,
and a profile name cannot end a comment of the baseline and add YAML of its own.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import yaml

from ..core.printable import one_line
from ..core.results import ProbeResult
from ..core.runrecord import RunRecord, labels
from ..core.verdicts import Verdict

# ---- diff ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    run: str  # the run's name (its profile; with the host in merged sets)
    probe: str
    level: int
    before: str | None  # verdict in BASE (None: the probe was not there)
    after: str | None  # verdict in NEW
    detail: str = ""  # NEW's detail (BASE's for a vanished probe)

    def line(self) -> str:
        arrow = f"{self.before or '-'} -> {self.after or '-'}"
        prefix = f"{self.run} " if self.run else ""
        text = f"{prefix}L{self.level} {self.probe}: {arrow}"
        return one_line(text + (f" ({self.detail})" if self.detail else ""))


@dataclass
class Diff:
    regressions: list[Change] = field(default_factory=list)  # worse: PASS to SKIP/FAIL/..., SKIP to FAIL, ...
    fixes: list[Change] = field(default_factory=list)  # to PASS from anything else
    changes: list[Change] = field(default_factory=list)  # other changes for the better (CRASH to FAIL, FAIL to SKIP)
    new: list[Change] = field(default_factory=list)  # probes (or levels) only in NEW
    vanished: list[Change] = field(default_factory=list)  # only in BASE
    unchanged: int = 0
    runs_added: list[str] = field(default_factory=list)  # runs of NEW with no counterpart in BASE
    runs_removed: list[str] = field(default_factory=list)

    @property
    def regressed(self) -> bool:
        return bool(self.regressions)

    def to_dict(self) -> dict:
        def rows(changes: list[Change]) -> list[dict]:
            return [c.__dict__.copy() for c in changes]

        return {
            "regressed": self.regressed,
            "regressions": rows(self.regressions),
            "fixes": rows(self.fixes),
            "changes": rows(self.changes),
            "new": rows(self.new),
            "vanished": rows(self.vanished),
            "unchanged": self.unchanged,
            "runs_added": self.runs_added,
            "runs_removed": self.runs_removed,
        }


def _pair(
    base: list[RunRecord], new: list[RunRecord]
) -> tuple[list[tuple[str, RunRecord, RunRecord]], list[str], list[str]]:
    """Which run of BASE to compare with which of NEW: a single run with a
    single run whatever its profile; otherwise by name (profile, with the
    host where a file holds one profile more than once)."""
    if len(base) == 1 and len(new) == 1:
        return [("", base[0], new[0])], [], []
    b = dict(zip(labels(base), base))
    n = dict(zip(labels(new), new))
    pairs = [(name, b[name], n[name]) for name in n if name in b]
    return pairs, [name for name in n if name not in b], [name for name in b if name not in n]


def diff(base: list[RunRecord], new: list[RunRecord]) -> Diff:
    out = Diff()
    pairs, out.runs_added, out.runs_removed = _pair(base, new)
    for name, before_run, after_run in pairs:
        before = {(r.probe, r.level): r for r in before_run.results}
        after = {(r.probe, r.level): r for r in after_run.results}
        for key in sorted(set(before) | set(after), key=lambda k: (k[1], k[0].encode())):
            probe, level = key
            b, a = before.get(key), after.get(key)
            if b is None:
                out.new.append(Change(name, probe, level, None, a.verdict.value, a.detail))
            elif a is None:
                out.vanished.append(Change(name, probe, level, b.verdict.value, None, b.detail))
            elif a.verdict is b.verdict:
                out.unchanged += 1
            else:
                change = Change(name, probe, level, b.verdict.value, a.verdict.value, a.detail)
                if a.verdict.rank > b.verdict.rank:
                    out.regressions.append(change)
                elif a.verdict is Verdict.PASS:
                    out.fixes.append(change)
                else:
                    out.changes.append(change)
    return out


def render_diff(d: Diff, base_name: str, new_name: str) -> str:
    out = [one_line(f"nvct diff {base_name} {new_name}")]
    sections = [
        ("regressions", d.regressions, "worse than before: PASS to SKIP, FAIL, ERROR, TIMEOUT or CRASH, and so on"),
        ("fixes", d.fixes, "PASS now"),
        ("other changes", d.changes, "better, not PASS"),
        ("new", d.new, "probes or levels only in the new run"),
        ("vanished", d.vanished, "probes or levels only in the base run"),
    ]
    for title, changes, what in sections:
        if changes:
            out.append(f"{title} ({len(changes)}: {what}):")
            out += [f"  {c.line()}" for c in changes]
    for name in d.runs_added:
        out.append(one_line(f"run only in {new_name}: {name}"))
    for name in d.runs_removed:
        out.append(one_line(f"run only in {base_name}: {name}"))
    out.append(
        f"{len(d.regressions)} regressed, {len(d.fixes)} fixed, {len(d.changes)} changed otherwise, "
        f"{len(d.new)} new, {len(d.vanished)} vanished, {d.unchanged} unchanged"
    )
    return "\n".join(out) + "\n"


# ---- baseline ------------------------------------------------------------------------


def _common(texts: list[str]) -> str:
    return Counter(texts).most_common(1)[0][0] if texts else ""


def baseline_rules(record: RunRecord) -> tuple[list[dict], list[str]]:
    """The `expect:` rules this run satisfies, and the results it does not
    baseline (ERROR, TIMEOUT, CRASH: fix them, leave the probe out, or, for a
    crash or hang the stack always gives, write a crash or timeout rule with
    its evidence by hand).

    A group of probes (`vmx.*`, `svm.intercept.*`) that all SKIP becomes one
    rule, so that probes added to the catalogue later are expected to SKIP
    too; known failures are listed one by one."""
    levels = sorted({r.level for r in record.results})
    verdicts: dict[str, dict[int, ProbeResult]] = {}
    for r in record.results:
        verdicts.setdefault(r.probe, {})[r.level] = r
    problems: list[str] = []
    # What to expect per probe: (level or None, verdict, reason)
    wanted: list[tuple[str, int | None, str, str]] = []
    for probe in sorted(verdicts, key=str.encode):
        by_level = verdicts[probe]
        kinds = {lv: r.verdict for lv, r in by_level.items()}
        for lv, r in by_level.items():
            if r.verdict in (Verdict.ERROR, Verdict.TIMEOUT, Verdict.CRASH):
                problems.append(f"L{lv} {probe}: {r.verdict.value}: {r.detail}")
        same = len(set(kinds.values())) == 1 and set(by_level) == set(levels)
        for lv, r in sorted(by_level.items()):
            if r.verdict not in (Verdict.SKIP, Verdict.FAIL):
                continue
            wanted.append((probe, None if same else lv, r.verdict.value.lower(), r.detail))
            if same:
                break
    # Fold whole groups that SKIP alike into one glob.
    rules: list[dict] = []
    done: set[tuple[str, int | None]] = set()
    skips = {(p, lv): reason for p, lv, v, reason in wanted if v == "skip"}
    for prefix in _prefixes(verdicts):
        members = [p for p in verdicts if p == prefix or p.startswith(prefix + ".")]
        for lv in [None] + levels:
            if all((p, lv) in skips and (p, lv) not in done for p in members) and len(members) > 1:
                reason = _common([skips[(p, lv)] for p in members])
                rules.append(_rule(prefix + ".*", lv, "skip", reason))
                done.update((p, lv) for p in members)
    for probe, lv, verdict, reason in wanted:
        if (probe, lv) in done:
            continue
        if verdict == "fail":
            reason = f"known failure, measured {record.started[:10]}: {reason}"
        rules.append(_rule(probe, lv, verdict, reason))
    return rules, problems


def _prefixes(probes: dict) -> list[str]:
    """Candidate globs, widest first: 'vmx', then 'vmx.root', ..."""
    out: set[str] = set()
    for probe in probes:
        parts = probe.split(".")
        for n in range(1, len(parts)):
            out.add(".".join(parts[:n]))
    return sorted(out, key=lambda p: (p.count("."), p))


def _rule(probes: str, level: int | None, verdict: str, reason: str) -> dict:
    rule: dict = {"probes": probes}
    if level is not None:
        rule["level"] = level
    rule["verdict"] = verdict
    rule["reason"] = reason or f"measured {verdict.upper()}"
    return rule


def render_baseline(record: RunRecord, source: str) -> str:
    rules, problems = baseline_rules(record)
    out = [
        one_line(f"# The expectations that the run {source} satisfies"),
        one_line(f"# (profile {record.profile.get('name')}, host {record.host}, {record.started})."),
        "# Paste into the profile; give each known failure a `link:` to its bug.",
    ]
    for problem in problems:
        why = "not from one run: fix it or deselect it, or expect a crash or timeout the stack always gives by hand"
        out.append(one_line(f"# NOT BASELINED ({why}): {problem}"))
    body = yaml.safe_dump({"expect": rules}, sort_keys=False, width=1000, allow_unicode=True, default_flow_style=False)
    return "\n".join(out) + "\n" + body
