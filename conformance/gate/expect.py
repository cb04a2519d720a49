"""The gate: a run's measured verdicts against a profile's expectations.

A profile's `expect:` section is a list of rules (conformance/core/profile.py
reads them); for each result the last rule that matches its probe and level
gives the expected verdict. The measured verdict stays what it is; the gate
adds, next to it, the expectation that applied and the outcome:

    measured   expected pass   expected skip   expected fail   no expect: section
    PASS       PASS            PASS            XPASS (bad)     PASS
    SKIP       SKIP (bad)      SKIP            SKIP (bad)      SKIP
    FAIL       FAIL (bad)      FAIL (bad)      XFAIL           FAIL (bad)
    ERROR, TIMEOUT, CRASH: always bad, whatever was expected, except:

A rule with `strict: false` (pytest's non-strict xfail) names a known
result that does not always come: PASS is then XPASS and holds the gate,
and under a known crash or timeout so does a FAIL (XFAIL: the probe saw
the known bug itself, before it could take the level down).

A rule may also expect `crash` or `timeout` (a model that can only crash
or hang on a probe). Then CRASH (TIMEOUT) is XCRASH (XTIMEOUT), which holds
the gate; PASS is XPASS; every other verdict is bad under its own name
(a FAIL instead of the known crash too: the rule no longer says what
happens).

Where a profile has an `expect:` section, a probe no rule matches is
expected to PASS. A run that did not complete fails the gate too.
See docs/gate.md.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import re
from dataclasses import dataclass, field
from typing import Any

from ..core.profile import ExpectRule
from ..core.verdicts import Verdict


class Outcome(enum.Enum):
    """A result under the gate (docs/verdicts.md)."""

    PASS = "PASS"
    SKIP = "SKIP"
    XFAIL = "XFAIL"  # a known failure that failed: fine
    XPASS = "XPASS"  # a known failure (crash, timeout) that passed: update the baseline
    XCRASH = "XCRASH"  # a known crash that crashed: fine
    XTIMEOUT = "XTIMEOUT"  # a known timeout that timed out: fine
    FAIL = "FAIL"
    ERROR = "ERROR"
    TIMEOUT = "TIMEOUT"
    CRASH = "CRASH"


# The rules' verdicts that expect a bad verdict, what each is called, and the
# outcome when that verdict comes again.
KNOWN = {"fail": "failure", "crash": "crash", "timeout": "timeout"}
_AGAIN = {Verdict.FAIL: Outcome.XFAIL, Verdict.CRASH: Outcome.XCRASH, Verdict.TIMEOUT: Outcome.XTIMEOUT}


@dataclass(frozen=True)
class Assessment:
    """One result's expectation and outcome."""

    expected: dict[str, Any] | None  # the rule that applied (None: the profile has no expect: section)
    outcome: Outcome
    why: str = ""  # empty when the result meets its expectation

    @property
    def ok(self) -> bool:
        return not self.why


@dataclass
class Expectations:
    """The rules a run was gated with, and where they came from."""

    profile: str  # the profile file
    rules: tuple[ExpectRule, ...] = ()
    line: int | None = None  # the line of `expect:` (where the default 'pass' comes from)
    cache: dict[tuple[str, int], ExpectRule | None] = field(default_factory=dict, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"profile": self.profile, "line": self.line, "rules": [r.as_dict() for r in self.rules]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Expectations:
        return cls(
            profile=str(data.get("profile", "")),
            rules=tuple(ExpectRule.from_dict(r) for r in data.get("rules", [])),
            line=data.get("line"),
        )

    @classmethod
    def of_profile(cls, profile: Any) -> Expectations | None:
        """From a loaded Profile; None when it has no `expect:` section."""
        if profile.expect is None:
            return None
        line = profile.source.line(("expect",)) if profile.source else None
        return cls(profile=str(profile.path), rules=profile.expect, line=line)


@dataclass
class Gate:
    holds: bool
    mode: str  # "expect" (the profile's expect: section) or "default" (bad verdicts fail)
    counts: dict[str, int] = field(default_factory=dict)  # results per outcome
    failures: list[dict[str, Any]] = field(default_factory=list)  # probe, level, verdict, outcome, why

    def to_dict(self) -> dict[str, Any]:
        return {"holds": self.holds, "mode": self.mode, "counts": self.counts, "failures": self.failures}


# ---- matching ---------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _regex(glob: str) -> re.Pattern[str]:
    # The selection's glob syntax (docs/protocol.md): '*' any run, '?' one character.
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in glob) + r"\Z")


def matches(rule: ExpectRule, probe: str, level: int | None = None) -> bool:
    if rule.level is not None and level is not None and rule.level != level:
        return False
    return any(_regex(glob).match(probe) for glob in rule.globs)


def rule_for(rules: tuple[ExpectRule, ...], probe: str, level: int) -> ExpectRule | None:
    """The last rule matching the probe at that level (later rules override earlier ones)."""
    for rule in reversed(rules):
        if matches(rule, probe, level):
            return rule
    return None


def known_to_break(probes: list[Any], expectations: Expectations | None, level: int) -> list[Any]:
    """The probes (catalogue entries) with those that a rule expects to CRASH
    or TIME OUT at this level marked isolated: the runner gives each a boot
    of its own after the shared boots, which then never wait for the crash
    or the hang, and skips that boot where the level's facts say the feature
    is not offered (docs/gate.md). They come last, after the probes that are
    isolated for their own reasons: a crash that takes the levels below with
    it then costs no appliance that a later boot would have used."""
    if expectations is None:
        return probes
    keep, last = [], []
    for probe in probes:
        rule = rule_for(expectations.rules, probe.id, level)
        if rule is not None and rule.verdict in ("crash", "timeout"):
            last.append(probe if probe.isolated else dataclasses.replace(probe, isolated=True))
        else:
            keep.append(probe)
    return keep + last


def unmatched(rules: tuple[ExpectRule, ...], probe_ids: list[str]) -> list[ExpectRule]:
    """Rules whose globs match no probe of a catalogue (a warning: catalogues grow)."""
    return [r for r in rules if not any(matches(r, p) for p in probe_ids)]


# ---- assessing --------------------------------------------------------------------


def _expected(expectations: Expectations, probe: str, level: int) -> dict[str, Any]:
    # `nvct run` gates the record again after every result: remember each probe's rule.
    key = (probe, level)
    if key not in expectations.cache:
        expectations.cache[key] = rule_for(expectations.rules, probe, level)
    rule = expectations.cache[key]
    if rule is None:
        return {"verdict": "pass", "default": True, "file": expectations.profile, "line": expectations.line}
    return rule.as_dict()


def _cite(expected: dict[str, Any]) -> str:
    where = expected.get("file", "")
    if expected.get("line"):
        where += f":{expected['line']}"
    if expected.get("default"):
        return f"no rule matches it, so PASS is expected ({where})"
    text = f"rule {where}"
    if expected.get("reason"):
        text += f": {expected['reason']}"
    if expected.get("link"):
        text += f" [{expected['link']}]"
    return text


def assess(verdict: Verdict, detail: str, expected: dict[str, Any] | None) -> Assessment:
    """The outcome of one measured verdict under one expectation (None: no expect: section)."""
    said = f": {detail}" if detail else ""
    if expected and expected["verdict"] in KNOWN and expected["verdict"] == verdict.value.lower():
        return Assessment(expected, _AGAIN[verdict])  # XFAIL, XCRASH, XTIMEOUT
    if verdict in (Verdict.ERROR, Verdict.TIMEOUT, Verdict.CRASH):
        why = f"{verdict.value}{said}"
        if expected and expected["verdict"] in KNOWN:
            want = expected["verdict"]
            why += f" (a known {KNOWN[want]} must {want.upper()}, not {verdict.value}; {_cite(expected)})"
        return Assessment(expected, Outcome(verdict.value), why)
    if expected is None:
        if verdict is Verdict.FAIL:
            return Assessment(None, Outcome.FAIL, f"FAIL{said}")
        return Assessment(None, Outcome(verdict.value))
    want = expected["verdict"]
    if verdict is Verdict.PASS:
        if want in KNOWN and expected.get("strict") is False:
            return Assessment(expected, Outcome.XPASS)  # a known result that does not always come
        if want in KNOWN:
            why = f"XPASS: a known {KNOWN[want]} now passes; update the baseline ({_cite(expected)})"
            return Assessment(expected, Outcome.XPASS, why)
        return Assessment(expected, Outcome.PASS)
    if verdict is Verdict.SKIP:
        if want == "skip":
            return Assessment(expected, Outcome.SKIP)
        what = "PASS" if want == "pass" else f"a known {want.upper()}"
        why = f"SKIP where {what} was expected: the feature disappeared{said} ({_cite(expected)})"
        return Assessment(expected, Outcome.SKIP, why)
    # FAIL (where FAIL was expected: XFAIL, above)
    if want in ("crash", "timeout") and expected.get("strict") is False:
        return Assessment(expected, Outcome.XFAIL)  # the probe saw the known bug itself this time
    if want in ("crash", "timeout"):
        why = (f"FAIL where {want.upper()} was expected{said}: the known {KNOWN[want]} is gone; "
               f"update the baseline ({_cite(expected)})")  # fmt: skip
        return Assessment(expected, Outcome.FAIL, why)
    return Assessment(expected, Outcome.FAIL, f"FAIL where {want.upper()} was expected{said}")


def evaluate(record: Any, expectations: Expectations | None) -> tuple[dict[tuple[str, int], Assessment], Gate]:
    """Every result of a run record under the expectations (None: the default rule)."""
    assessments: dict[tuple[str, int], Assessment] = {}
    counts = {o.value: 0 for o in Outcome}
    failures: list[dict[str, Any]] = []
    for result in record.results:
        expected = _expected(expectations, result.probe, result.level) if expectations else None
        a = assess(result.verdict, result.detail, expected)
        assessments[(result.probe, result.level)] = a
        counts[a.outcome.value] += 1
        if not a.ok:
            failures.append({"probe": result.probe, "level": result.level, "verdict": result.verdict.value,
                             "outcome": a.outcome.value, "why": a.why})  # fmt: skip
    if record.status != "complete":
        failures.append({"probe": None, "level": None, "verdict": None, "outcome": None,
                         "why": f"the run did not complete (status {record.status})"})  # fmt: skip
    gate = Gate(holds=not failures, mode="expect" if expectations else "default", counts=counts, failures=failures)
    return assessments, gate


def apply(record: Any, expectations: Expectations | None) -> Gate:
    """Gate a run record in place: its results gain `expected` and `outcome`, the record a `gate`."""
    record.expectations = expectations
    record.assessments, record.gate = evaluate(record, expectations)
    return record.gate
