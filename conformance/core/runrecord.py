"""The JSON run record: the stable interface every report and tool reads.

Schema "nvct-run/1": see docs/run-record.md. The record is written when
the run starts (`status: running`, before the first boot) and rewritten
atomically after every result, so a run that is killed leaves a valid file
holding everything measured up to then (`status` says how it ended).
A record read back has its shape checked first (conformance/core/recordcheck.py).
"""

from __future__ import annotations

import json
import platform
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import __version__
from .outputs import write_text
from .recordcheck import MAX_DEPTH, ShapeError, check_run, check_text
from .results import ProbeResult
from .verdicts import Verdict

SCHEMA = "nvct-run/1"
SET_SCHEMA = "nvct-runs/1"  # several run records merged (`nvct merge`)


class RunRecordError(Exception):
    pass


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


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
    # Why the hypervisor below could not offer this level (LevelUnavailable),
    # once a boot found out; the run's own bookkeeping, not in the record
    # (the reason is in `problems`).
    unavailable: str = field(default="", compare=False)

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
    # When the run stopped before the end: the probes it did not get to, per level.
    not_run: list[dict[str, Any]] = field(default_factory=list)
    # The gate (conformance/gate/expect.py): the expectations applied, per result
    # the expectation and outcome, and the verdict. Filled in by expect.apply().
    expectations: Any = None  # expect.Expectations, or None (the profile has no expect: section)
    assessments: dict[tuple[str, int], Any] = field(default_factory=dict)
    gate: Any = None  # expect.Gate

    @property
    def label(self) -> str:
        """The run's name in a matrix of runs: its profile."""
        return str(self.profile.get("name", "run"))

    @property
    def host(self) -> str:
        return str(self.environment.get("host", ""))

    def probe_info(self) -> dict[str, dict[str, Any]]:
        """The catalogue entries by probe id."""
        return {entry["id"]: entry for entry in self.catalog if "id" in entry}

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
            "results": [self._result_dict(r) for r in self.results],
            "not_run": self.not_run,
            "expect": self.expectations.to_dict() if self.expectations is not None else None,
            "gate": self.gate.to_dict() if self.gate is not None else None,
        }

    def _result_dict(self, result: ProbeResult) -> dict[str, Any]:
        out = result.to_dict()
        assessment = self.assessments.get((result.probe, result.level))
        if assessment is not None:
            out["expected"] = assessment.expected
            out["outcome"] = assessment.outcome.value
            out["why"] = assessment.why
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        """A run record, gated again with the expectations it records."""
        from ..gate.expect import Expectations, apply

        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            schema = data.get("schema") if isinstance(data, dict) else None
            raise RunRecordError(f"not an nvct run record (schema {schema!r}, want {SCHEMA!r})")
        try:
            expect = data.get("expect")
            record = cls(
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
                not_run=list(data.get("not_run", [])),
            )
            apply(record, Expectations.from_dict(expect) if expect else None)
        except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as exc:
            raise RunRecordError(f"malformed run record: {type(exc).__name__}: {exc}") from None
        return record

    def write(self, path: Path, pretty: bool = True, option: str | None = None) -> None:
        """Replace the file atomically (a FIFO or device is written as a
        stream): readers never see half a record. Raises OutputError.

        `pretty=False` (while a run goes on, after every result) writes one
        compact line: json's C encoder, several times faster than indenting."""
        write_json(path, self.to_dict(), pretty, option)

    @classmethod
    def read(cls, path: Path) -> RunRecord:
        runs = read_runs(path)
        if len(runs) != 1:
            raise RunRecordError(f"{path}: holds {len(runs)} merged runs, not one run record")
        return runs[0]


_SURROGATE = re.compile("[\ud800-\udfff]")
MAX_BYTES = 256 << 20  # a merged set of many full runs is a few MB


def _read_json(path: Path) -> Any:
    """The document in a file: at most MAX_BYTES of UTF-8 JSON."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise RunRecordError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise RunRecordError(f"{path}: is a directory, not a run record") from None
    except OSError as exc:
        raise RunRecordError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(raw) > MAX_BYTES:
        raise RunRecordError(f"{path}: larger than {MAX_BYTES >> 20} MiB, not a run record")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RunRecordError(f"{path}: not UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise RunRecordError(f"{path}: not JSON: {exc}") from None
    except RecursionError:
        raise RunRecordError(f"{path}: not a run record: nested more than {MAX_DEPTH} deep") from None
    except ValueError:  # an integer of more than 4300 digits
        raise RunRecordError(f"{path}: not JSON nvct reads: a number with thousands of digits") from None


def read_runs(path: Path | str) -> list[RunRecord]:
    """The runs of a file: a run record (one run) or a merged set (`nvct merge`),
    its shape checked (conformance/core/recordcheck.py) before it is read."""
    data = _read_json(Path(path))
    try:
        check_text(data)
        if isinstance(data, dict) and data.get("schema") == SET_SCHEMA:
            if not isinstance(data.get("runs"), list):
                raise RunRecordError("malformed merged runs: no list of runs")
            for i, run in enumerate(data["runs"]):
                if not isinstance(run, dict) or run.get("schema") != SCHEMA:
                    RunRecord.from_dict(run)  # raises: not a run record
                check_run(run, f"runs[{i}]")
            return [RunRecord.from_dict(run) for run in data["runs"]]
        if isinstance(data, dict) and data.get("schema") == SCHEMA:
            check_run(data)
        return [RunRecord.from_dict(data)]
    except ShapeError as exc:
        raise RunRecordError(f"{path}: malformed run record: {exc}") from None
    except RunRecordError as exc:
        raise RunRecordError(f"{path}: {exc}") from None


def write_runs(runs: list[RunRecord], path: Path | str) -> None:
    """A merged set of runs (schema nvct-runs/1), written as conformance/core/outputs.py says."""
    write_json(path, {"schema": SET_SCHEMA, "runs": [r.to_dict() for r in runs]})


def write_json(path: Path | str, data: Any, pretty: bool = True, option: str | None = None) -> None:
    """JSON to `path`: atomically for a file, as a stream to a FIFO or device
    (conformance/core/outputs.py); raises OutputError."""
    write_text(path, json_text(data, pretty), option)


def json_text(data: Any, pretty: bool = True) -> str:
    """The JSON text of a record or set of records, one newline at its end."""
    if pretty:
        text = json.dumps(data, indent=1, ensure_ascii=False)
    else:  # dumps without indent is the one path that takes json's C encoder
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    # A lone surrogate (a file name that is not UTF-8, a YAML escape) is not
    # text: U+FFFD in its place, so that every reader of the record can use it.
    return _SURROGATE.sub("\ufffd", text) + "\n"


def labels(runs: list[RunRecord]) -> list[str]:
    """A distinct name per run: the profile, with the host where profiles repeat,
    and a number where both do."""
    names = [r.label for r in runs]
    out = [f"{r.label}@{r.host}" if names.count(r.label) > 1 else r.label for r in runs]
    seen: dict[str, int] = {}
    for i, name in enumerate(out):
        if out.count(name) > 1:
            seen[name] = seen.get(name, 0) + 1
            out[i] = f"{name}#{seen[name]}"
    return out
