"""One verdict for one probe at one level: what a boot produces, what a
run record holds and every report reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .verdicts import Verdict


@dataclass
class ProbeResult:
    probe: str
    level: int
    verdict: Verdict
    detail: str = ""
    duration_s: float | None = None
    notes: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)  # the probe's console lines
    boot: int = 0  # which boot of the level produced it

    def to_dict(self) -> dict[str, Any]:
        return {
            "probe": self.probe,
            "level": self.level,
            "verdict": self.verdict.value,
            "detail": self.detail,
            "duration_s": None if self.duration_s is None else round(self.duration_s, 6),
            "notes": self.notes,
            "console": self.console,
            "boot": self.boot,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProbeResult:
        return cls(
            probe=data["probe"],
            level=int(data["level"]),
            verdict=Verdict.parse(data["verdict"]),
            detail=data.get("detail", ""),
            duration_s=data.get("duration_s"),
            notes=list(data.get("notes", [])),
            console=list(data.get("console", [])),
            boot=int(data.get("boot", 0)),
        )
