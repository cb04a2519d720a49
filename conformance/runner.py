"""Runs the selected probes at every level of a stack.

For each level: boot the probe kernel with the selection on its command
line, feed the console to a BootLog, and hand each result on as it
arrives. If a probe crashes or hangs the guest, it gets CRASH or TIMEOUT
and the level goes on in a fresh boot that starts after it (`after=` on the
kernel command line), so one bad probe costs one probe.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .backends import BootFailed, LevelUnavailable
from .backends.console import ConsoleTimeout
from .catalog import Probe
from .guest import GuestImage
from .runrecord import LevelInfo
from .session import BootLog, ProbeResult
from .stack import Level
from .verdicts import Verdict


@dataclass(frozen=True)
class RunOptions:
    globs: tuple[str, ...] = ()  # the selection, as given to the kernel
    boot_timeout: float = 60.0
    probe_timeout: float = 30.0
    end_grace: float = 10.0  # after END, how long the hypervisor may take to exit
    workroot: Path | None = None  # where private boot folders go (default: the system's)


@dataclass
class LevelOutcome:
    info: LevelInfo
    results: list[ProbeResult] = field(default_factory=list)


def kernel_cmdline(globs: tuple[str, ...], after: str | None) -> str:
    words = []
    if globs:
        words.append("probes=" + ",".join(globs))
    if after:
        words.append(f"after={after}")
    return " ".join(words)


def run_level(
    level: Level,
    image: GuestImage,
    selected: list[Probe],
    options: RunOptions,
    on_result: Callable[[ProbeResult], None] | None = None,
    on_boot: Callable[[int, str], None] | None = None,
) -> LevelOutcome:
    """Run `selected` at one level, in as many boots as crashes require."""
    info = LevelInfo(level=level.number, hypervisor=level.backend.describe())
    outcome = LevelOutcome(info)

    def deliver(result: ProbeResult) -> None:
        outcome.results.append(result)
        if on_result is not None:
            on_result(result)

    remaining = [p.id for p in selected]
    after: str | None = None
    while remaining:
        info.boots += 1
        cmdline = kernel_cmdline(options.globs, after)
        if on_boot is not None:
            on_boot(info.boots, cmdline)
        log = BootLog(level.number, remaining, on_result=deliver, boot=info.boots)
        try:
            _boot_once(level, image, cmdline, log, options, info)
        except LevelUnavailable as exc:
            for probe in remaining:
                deliver(ProbeResult(probe, level.number, Verdict.SKIP, f"not exposed at this level: {exc}",
                                    boot=info.boots))  # fmt: skip
            info.problems.append(str(exc))
            break
        except BootFailed as exc:
            for probe in remaining:
                deliver(ProbeResult(probe, level.number, Verdict.CRASH, f"the level did not come up: {exc}",
                                    boot=info.boots, console=exc.excerpt[-20:]))  # fmt: skip
            info.problems.append(str(exc))
            break
        if log.hello is not None and not info.facts:
            info.facts = dict(log.facts)
            info.kernel = {k: log.hello.get(k) for k in ("build", "console", "total")}
        info.problems += log.problems
        done = set(log.results)
        if log.ended or log.last_probe is None:
            # Finished, or died before any probe started: no point booting again.
            verdict, why = _unreported(log)
            for probe in remaining:
                if probe not in done:
                    deliver(ProbeResult(probe, level.number, verdict, why, boot=info.boots, console=log.recent()[-20:]))
            break
        after = log.last_probe
        for probe in remaining:
            if probe not in done and probe.encode() <= after.encode():
                deliver(ProbeResult(probe, level.number, Verdict.ERROR,
                                    "selected but never reported (records lost?)", boot=info.boots))  # fmt: skip
        remaining = [p for p in remaining if p not in done and p.encode() > after.encode()]
    return outcome


def _unreported(log: BootLog) -> tuple[Verdict, str]:
    if log.ended:
        return Verdict.ERROR, "selected but never reported by the kernel"
    why = log.why
    if log.hello is None:
        return (Verdict.TIMEOUT if log.ending == "timeout" else Verdict.CRASH), f"the probe kernel did not start: {why}"
    return (Verdict.TIMEOUT if log.ending == "timeout" else Verdict.CRASH), f"the kernel stopped before its first probe: {why}"


def _boot_once(level: Level, image: GuestImage, cmdline: str, log: BootLog, options: RunOptions,
               info: LevelInfo) -> None:  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="nvct-boot-", dir=options.workroot) as tmp:
        with level.backend.boot(image, cmdline, Path(tmp)) as console:
            if console.facts:
                info.hypervisor.setdefault("runtime", {}).update(console.facts)
            ending, why = _read(console, log, options)
            console.close(grace=options.end_grace if ending == "end" else 1.0)
            tail = console.tail()
            if ending == "eof":
                why = f"{console.describe_end()} before END"
            if log.hello is None and ending != "end":
                last = next((line for line in reversed(tail) if line.strip()), "")
                why += f"; last console line: {last.strip()[:200]!r}" if last else "; the console stayed empty"
            log.finish(ending, why, tail)


def _read(console, log: BootLog, options: RunOptions) -> tuple[str, str]:
    seen = -1
    deadline = 0.0
    while True:
        if log.progress != seen:
            seen = log.progress
            budget = options.boot_timeout if log.hello is None else options.probe_timeout
            deadline = time.monotonic() + budget
        try:
            line = console.readline(deadline - time.monotonic())
        except ConsoleTimeout:
            if log.hello is None:
                return "timeout", f"no HELLO within {options.boot_timeout:g} s of the start"
            where = f"{log.in_flight} ran" if log.in_flight else "no record arrived"
            return "timeout", f"{where} for {options.probe_timeout:g} s without a result"
        if line is None:
            return "eof", "the console ended"
        log.feed(line)
        if log.ended:
            return "end", "END"
        if log.reset:
            return "reset", "the virtual CPU was reset (the kernel started again)"
