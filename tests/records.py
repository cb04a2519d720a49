"""Run records built in code: inputs to the gate, the reports and the
comparisons (pure functions of a run record), not fakes of a hypervisor."""

from __future__ import annotations

from conformance.core.profile import ExpectRule
from conformance.core.results import ProbeResult
from conformance.core.runrecord import LevelInfo, RunRecord
from conformance.core.verdicts import Verdict
from conformance.gate.expect import Expectations, apply

FEATURES = {"svm": "SVM", "svm.npt": "NPT", "svm.nrips": "NRIPS", "vmx": "VMX", "vmx.ept": "EPT", "cpu": "CPUID"}

TCG_FACTS = {
    "cpu.vendor": "AuthenticAMD",
    "cpu.family": "0xf",
    "cpu.model": "0x6b",
    "cpu.stepping": "0x1",
    "cpu.brand": "QEMU TCG CPU version 2.5+",
    "hv.present": "1",
    "hv.signature": "TCGTCGTCGTCG",
    "svm": "1",
    "svm.revision": "0x1",
    "svm.asids": "16",
    "svm.features": "0x10010001",
    "vmx": "0",
}


def feature_of(probe: str) -> str:
    parts = probe.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in FEATURES:
            return FEATURES[".".join(parts[:n])]
    return parts[0].upper()


def make_run(
    results, profile="tcg", host="hostA", facts=None, levels=(1,), rules=None, status="complete", console=None
) -> RunRecord:
    """results: (probe, verdict) or (probe, verdict, detail) or (probe, level, verdict, detail)."""
    rows = []
    for item in results:
        if len(item) == 2:
            probe, verdict, level, detail = item[0], item[1], levels[0], ""
        elif len(item) == 3:
            probe, verdict, detail, level = item[0], item[1], item[2], levels[0]
        else:
            probe, level, verdict, detail = item
        if verdict != "PASS" and not detail:
            detail = f"{verdict.lower()} detail of {probe}"
        rows.append(
            ProbeResult(
                probe,
                level,
                Verdict(verdict),
                detail,
                duration_s=0.001,
                notes=[f"note {probe}"],
                console=console if console is not None else [f"@NVCT1 3 START probe={probe} #0"],
                boot=1,
            )
        )
    ids = sorted({r.probe for r in rows}, key=str.encode)
    record = RunRecord(
        profile={"name": profile, "path": f"profiles/{profile}.yaml", "description": ""},
        environment={"host": host, "kernel": "Linux 6.1", "machine": "x86_64", "python": "3.11"},
        catalog=[
            {
                "id": p,
                "group": p.rpartition(".")[0],
                "feature": feature_of(p),
                "description": f"checks {p}",
                "reference": "APM",
                "hidden": False,
            }
            for p in ids
        ],
        levels=[
            LevelInfo(
                level=lv,
                hypervisor={"backend": "qemu", "version": "7.2", "settings": {"accel": "tcg"}},
                facts=dict(TCG_FACTS if facts is None else facts),
                kernel={"build": "abc"},
                boots=1,
            )
            for lv in levels
        ],
        results=rows,
        status=status,
        started="2026-11-24T20:00:00+00:00",
        finished="2026-11-24T20:00:01+00:00",
    )
    expectations = None
    if rules is not None:
        expectations = Expectations(
            "profiles/x.yaml",
            tuple(ExpectRule(**{"file": "profiles/x.yaml", "line": 10 + i, **r}) for i, r in enumerate(rules)),
            line=9,
        )
    apply(record, expectations)
    return record
