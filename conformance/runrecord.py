"""The JSON run record: the stable interface every report and tool reads.

Schema "nvct-run/1": see docs/run-record.md. The record is rewritten
atomically after every result, so a run that is killed leaves a valid file
holding everything measured up to then (`status` says how it ended).
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import __version__
from .session import ProbeResult
from .verdicts import Verdict

SCHEMA = "nvct-run/1"


class RunRecordError(Exception):
    pass


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def host_environment() -> dict[str, Any]:
    uname = platform.uname()
    return {
        "host": uname.node,
        "kernel": f"{uname.system} {uname.release}",
        "machine": uname.machine,
        "python": platform.python_version(),
    }


@dataclass
class LevelInfo:
    level: int  # the level the probe kernel ran at
    hypervisor: dict[str, Any]  # the hypervisor below it: backend, version, settings
    facts: dict[str, str] = field(default_factory=dict)  # what the probe kernel saw
    kernel: dict[str, str] = field(default_factory=dict)  # build id, console
    boots: int = 0
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "hypervisor": self.hypervisor,
            "facts": self.facts,
            "kernel": self.kernel,
            "boots": self.boots,
            "problems": self.problems,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LevelInfo:
        return cls(
            level=int(data["level"]),
            hypervisor=dict(data.get("hypervisor", {})),
            facts=dict(data.get("facts", {})),
            kernel=dict(data.get("kernel", {})),
            boots=int(data.get("boots", 0)),
            problems=list(data.get("problems", [])),
        )


@dataclass
class RunRecord:
    profile: dict[str, str]  # name, path, description
    started: str = field(default_factory=now)
    finished: str | None = None
    status: str = "running"  # running, complete, interrupted
    selection: list[str] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=host_environment)
    catalog: list[dict[str, Any]] = field(default_factory=list)
    levels: list[LevelInfo] = field(default_factory=list)
    results: list[ProbeResult] = field(default_factory=list)
    nvct_version: str = __version__

    def level(self, number: int) -> LevelInfo | None:
        return next((lv for lv in self.levels if lv.level == number), None)

    def counts(self, level: int | None = None) -> dict[Verdict, int]:
        counts = {v: 0 for v in Verdict}
        for result in self.results:
            if level is None or result.level == level:
                counts[result.verdict] += 1
        return counts

    @property
    def bad(self) -> bool:
        return any(r.verdict.is_bad for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "nvct_version": self.nvct_version,
            "profile": self.profile,
            "started": self.started,
            "finished": self.finished,
            "status": self.status,
            "selection": self.selection,
            "environment": self.environment,
            "levels": [lv.to_dict() for lv in self.levels],
            "catalog": self.catalog,
            "results": [r.to_dict() for r in self.results],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        if data.get("schema") != SCHEMA:
            raise RunRecordError(f"not an nvct run record (schema {data.get('schema')!r}, want {SCHEMA!r})")
        try:
            return cls(
                profile=dict(data["profile"]),
                started=data["started"],
                finished=data.get("finished"),
                status=data.get("status", "complete"),
                selection=list(data.get("selection", [])),
                environment=dict(data.get("environment", {})),
                catalog=list(data.get("catalog", [])),
                levels=[LevelInfo.from_dict(lv) for lv in data.get("levels", [])],
                results=[ProbeResult.from_dict(r) for r in data.get("results", [])],
                nvct_version=data.get("nvct_version", "unknown"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise RunRecordError(f"malformed run record: {exc}") from None

    def write(self, path: Path) -> None:
        """Replace the file atomically: readers never see half a record."""
        path = Path(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or ".")
        with os.fdopen(fd, "w") as out:
            json.dump(self.to_dict(), out, indent=1)
            out.write("\n")
        os.replace(tmp, path)

    @classmethod
    def read(cls, path: Path) -> RunRecord:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise RunRecordError(f"{path}: {exc}") from None
        try:
            return cls.from_dict(data)
        except RunRecordError as exc:
            raise RunRecordError(f"{path}: {exc}") from None
