"""The feature view: does this stack support nested NPT, VPID, ...?

Each probe belongs to a feature (the catalogue's `feature`: SVM, NPT, NRIPS,
VMX, EPT, ...). Per feature and level the view says one of

- not exposed: the level's facts say the CPU does not offer it (CPUID, a
  VMX capability MSR), or, for a feature the facts do not cover, every
  probe of it SKIPped;
- exposed and conformant: its probes ran and none failed;
- exposed with N failures: naming the probes that FAILed, ERRORed, CRASHed
  or TIMED OUT (known ones, XFAIL, XCRASH or XTIMEOUT under the gate, are marked);
- exposed, not tested: the facts say it is offered but every probe SKIPped.

Reports read this; it reads only a run record.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..core.runrecord import RunRecord
from ..core.verdicts import Verdict

Facts = dict[str, str]


def _int(facts: Facts, key: str) -> int | None:
    try:
        return int(facts[key], 0)
    except (KeyError, ValueError):
        return None


def _flag(key: str) -> Callable[[Facts], bool | None]:
    return lambda facts: None if key not in facts else facts[key] == "1"


def _svm_bit(bit: int) -> Callable[[Facts], bool | None]:
    # CPUID 0x8000000A EDX
    def test(facts: Facts) -> bool | None:
        if facts.get("svm") == "0":
            return False
        value = _int(facts, "svm.features")
        return None if value is None else bool(value >> bit & 1)

    return test


def _allowed1(msr: str, bit: int, secondary: bool = False) -> Callable[[Facts], bool | None]:
    # A VMX control is available when its allowed-1 bit (the MSR's high half) is set.
    def test(facts: Facts) -> bool | None:
        if facts.get("vmx") == "0":
            return False
        if facts.get("vmx") is None:
            return None
        if secondary:
            primary = _int(facts, "vmx.procbased")
            if primary is not None and not primary >> 63 & 1:  # activate secondary controls
                return False
        value = _int(facts, msr)
        if value is None:
            return False if secondary else None
        return bool(value >> 32 >> bit & 1)

    return test


@dataclass(frozen=True)
class Feature:
    name: str
    family: str  # CPU, SVM, VMX
    test: Callable[[Facts], bool | None] | None  # from the facts: exposed? (None: the facts do not say)
    source: str = ""  # what the facts are, for "not exposed (...)"


FEATURES = [
    Feature("CPUID", "CPU", lambda facts: True),
    Feature("SVM", "SVM", _flag("svm"), "CPUID 0x80000001 ECX.SVM"),
    Feature("NPT", "SVM", _svm_bit(0), "CPUID 0x8000000A EDX.NP"),
    Feature("LBRV", "SVM", _svm_bit(1), "CPUID 0x8000000A EDX.LbrVirt"),
    Feature("NRIPS", "SVM", _svm_bit(3), "CPUID 0x8000000A EDX.NRIPS"),
    Feature("TSC rate", "SVM", _svm_bit(4), "CPUID 0x8000000A EDX.TscRateMsr"),
    Feature("VMCB clean", "SVM", _svm_bit(5), "CPUID 0x8000000A EDX.VmcbClean"),
    Feature("flush by ASID", "SVM", _svm_bit(6), "CPUID 0x8000000A EDX.FlushByAsid"),
    Feature("decode assists", "SVM", _svm_bit(7), "CPUID 0x8000000A EDX.DecodeAssists"),
    Feature("pause filter", "SVM", _svm_bit(10), "CPUID 0x8000000A EDX.PauseFilter"),
    Feature("AVIC", "SVM", _svm_bit(13), "CPUID 0x8000000A EDX.AVIC"),
    Feature("VLS", "SVM", _svm_bit(15), "CPUID 0x8000000A EDX.VMSAVEvirt"),
    Feature("vGIF", "SVM", _svm_bit(16), "CPUID 0x8000000A EDX.vGIF"),
    Feature("VMX", "VMX", _flag("vmx"), "CPUID.1:ECX.VMX"),
    Feature("EPT", "VMX", _allowed1("vmx.procbased2", 1, True), "IA32_VMX_PROCBASED_CTLS2 enable EPT"),
    Feature("VPID", "VMX", _allowed1("vmx.procbased2", 5, True), "IA32_VMX_PROCBASED_CTLS2 enable VPID"),
    Feature(
        "unrestricted guest", "VMX", _allowed1("vmx.procbased2", 7, True), "IA32_VMX_PROCBASED_CTLS2 unrestricted guest"
    ),  # fmt: skip
    Feature("preemption timer", "VMX", _allowed1("vmx.pinbased", 6), "IA32_VMX_PINBASED_CTLS VMX-preemption timer"),
    Feature("MTF", "VMX", _allowed1("vmx.procbased", 27), "IA32_VMX_PROCBASED_CTLS monitor trap flag"),
    Feature(
        "VMCS shadowing", "VMX", _allowed1("vmx.procbased2", 14, True), "IA32_VMX_PROCBASED_CTLS2 VMCS shadowing"
    ),  # fmt: skip
    Feature("PML", "VMX", _allowed1("vmx.procbased2", 17, True), "IA32_VMX_PROCBASED_CTLS2 enable PML"),
    Feature("VMFUNC", "VMX", _allowed1("vmx.procbased2", 13, True), "IA32_VMX_PROCBASED_CTLS2 enable VM functions"),
]
_BY_NAME = {f.name.lower(): f for f in FEATURES}
FAMILIES = ["CPU", "SVM", "VMX"]


def feature(name: str, probe_ids: list[str] = ()) -> Feature:
    """The feature of that name; one the table does not know takes its family
    from its probes' ids (svm.* -> SVM) and has no fact test."""
    known = _BY_NAME.get(name.lower())
    if known:
        return known
    prefix = probe_ids[0].split(".")[0].upper() if probe_ids else "OTHER"
    return Feature(name, prefix, None)


def exposed(facts: Facts) -> list[str]:
    """The features the facts of a level say are offered."""
    return [f.name for f in FEATURES if f.family != "CPU" and f.test and f.test(facts)]


@dataclass
class FeatureStatus:
    feature: str
    family: str
    level: int
    state: str  # "not exposed", "conformant", "failures", "untested"
    probes: list[str] = field(default_factory=list)
    passed: int = 0
    skipped: int = 0
    failures: list[tuple[str, str, bool]] = field(default_factory=list)  # probe, verdict, known (XFAIL, XCRASH, ...)
    reason: str = ""  # for not exposed / untested

    def text(self) -> str:
        if self.state == "not exposed":
            return "not exposed" + (f" ({self.reason})" if self.reason else "")
        if self.state == "untested":
            if not self.probes:
                return "exposed (no probe of it ran)"
            return "exposed, not tested: every probe skipped" + (f" ({self.reason})" if self.reason else "")
        if self.state == "conformant":
            skipped = f", {self.skipped} skipped" if self.skipped else ""
            return f"exposed and conformant ({self.passed} passed{skipped})"
        n = len(self.failures)
        names = ", ".join(f"{p} {v}" + (" (known)" if known else "") for p, v, known in self.failures)
        return f"exposed with {n} failure{'s' if n != 1 else ''}: {names}"


def _why_not(spec: Feature, facts: Facts) -> str:
    """What the facts say against a feature: its family's flag first (no VMX
    at all, rather than no EPT)."""
    base = _BY_NAME.get(spec.family.lower())
    if base is not None and base is not spec and base.test is not None and base.test(facts) is False:
        spec = base
    return f"{spec.source}=0" if spec.source else ""


def from_facts(name: str, level: int, facts: Facts) -> FeatureStatus | None:
    """A feature's status at a level where none of its probes ran, from the
    facts alone (None where the facts do not say)."""
    spec = _BY_NAME.get(name.lower())
    if spec is None or spec.test is None or not facts:
        return None
    said = spec.test(facts)
    if said is None:
        return None
    if said:
        return FeatureStatus(spec.name, spec.family, level, "untested")
    return FeatureStatus(spec.name, spec.family, level, "not exposed", reason=_why_not(spec, facts))


def _order(name: str, family: str) -> tuple[int, int, str]:
    fam = FAMILIES.index(family) if family in FAMILIES else len(FAMILIES)
    known = [f.name for f in FEATURES]
    return fam, known.index(name) if name in known else len(known), name.lower()


def probe_features(record: RunRecord) -> dict[str, str]:
    """Probe id -> feature, from the catalogue in the record (the family for a probe it lacks)."""
    info = record.probe_info()
    out = {}
    for result in record.results:
        entry = info.get(result.probe)
        out[result.probe] = entry["feature"] if entry and entry.get("feature") else result.probe.split(".")[0].upper()
    for pid, entry in info.items():
        out.setdefault(pid, entry.get("feature") or pid.split(".")[0].upper())
    return out


def feature_order(record: RunRecord) -> list[tuple[str, str, list[str]]]:
    """(feature, family, probe ids) in report order: CPU, SVM, VMX, others."""
    by_feature: dict[str, list[str]] = {}
    for pid, name in sorted(probe_features(record).items(), key=lambda kv: kv[0].encode()):
        by_feature.setdefault(name, []).append(pid)
    rows = [(name, feature(name, ids).family, ids) for name, ids in by_feature.items()]
    return sorted(rows, key=lambda row: _order(row[0], row[1]))


def feature_view(record: RunRecord) -> list[FeatureStatus]:
    """Per feature (in report order) and level, its status."""
    levels = [lv.level for lv in record.levels] or sorted({r.level for r in record.results})
    facts = {lv.level: lv.facts for lv in record.levels}
    view = []
    for name, family, ids in feature_order(record):
        spec = feature(name, ids)
        for level in levels:
            results = [r for r in record.results if r.level == level and r.probe in set(ids)]
            status = FeatureStatus(name, family, level, "conformant", probes=[r.probe for r in results])
            said = spec.test(facts.get(level, {})) if spec.test and facts.get(level) else None
            ran = [r for r in results if r.verdict is not Verdict.SKIP]
            status.skipped = len(results) - len(ran)
            status.passed = sum(r.verdict is Verdict.PASS for r in results)
            if not ran:
                first = next((r.detail for r in results if r.detail), "")
                if said:
                    status.state, status.reason = "untested", first
                else:
                    status.state = "not exposed"
                    status.reason = _why_not(spec, facts[level]) if said is False else first
            else:
                for r in ran:
                    if r.verdict.is_bad:
                        a = record.assessments.get((r.probe, r.level))
                        known = a is not None and a.outcome.value in ("XFAIL", "XCRASH", "XTIMEOUT")
                        status.failures.append((r.probe, r.verdict.value, known))
                status.state = "failures" if status.failures else "conformant"
            view.append(status)
    return view
