"""Runs the selected probes at every level of a stack.

For each level: boot the probe kernel with the selection on its command
line, feed the console to a BootLog, and hand each result on as it
arrives. If a probe crashes or hangs the guest, it gets CRASH or TIMEOUT
and the level goes on in a fresh boot that starts after it (`after=` on the
kernel command line), so one bad probe costs one probe.
"""

from __future__ import annotations

import errno
import itertools
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ..backends import BootFailed, LevelUnavailable
from ..backends.transports import ConsoleTimeout
from ..core.bootlog import BootLog
from ..core.catalog import Probe, SelectionError
from ..core.kernel import GuestImage
from ..core.results import ProbeResult
from ..core.runrecord import LevelInfo
from ..core.verdicts import Verdict
from ..gate.features import feature, from_facts
from .stack import Level


@dataclass(frozen=True)
class RunOptions:
    globs: tuple[str, ...] = ()  # the selection, as given to the kernel
    boot_timeout: float = 60.0
    probe_timeout: float | None = 30.0  # None: each level's own pace decides (Pace)
    end_grace: float = 10.0  # after END, how long the hypervisor may take to exit
    workroot: Path | None = None  # where private boot folders go (default: the system's)
    jobs: int = 1  # boots of a level that run side by side, each a shard of the selection


class Pace:
    """How long a level may go without a record when no timeout was given:
    PACE_FACTOR times the longest wait between two records seen so far at
    this level, at least PACE_FLOOR and at most PACE_CEILING seconds. A
    level that measures in milliseconds gives up on a hang in seconds; a
    slow level (deep nesting, Bochs) earns itself more."""

    def __init__(self, fixed: float | None):
        self.fixed = fixed
        self.slowest = 0.0
        self.slowest_hello = 0.0  # the longest start of a boot to its HELLO; 0: none yet
        self._lock = threading.Lock()

    def observe(self, seconds: float) -> None:
        with self._lock:
            self.slowest = max(self.slowest, seconds)

    def observe_hello(self, seconds: float) -> None:
        with self._lock:
            self.slowest_hello = max(self.slowest_hello, seconds, 0.001)

    def hello_budget(self, boot_timeout: float) -> float:
        """How long a boot may take to say HELLO: the boot timeout for a
        level's first boot; once one boot of the level has said HELLO,
        PACE_FACTOR times the slowest HELLO so far, at least HELLO_FLOOR,
        never more than the boot timeout. A later boot that stays silent is
        a stall below, not a kernel taking its time (docs/verdicts.md)."""
        with self._lock:
            if not self.slowest_hello:
                return boot_timeout
            return min(boot_timeout, float(round(max(HELLO_FLOOR, PACE_FACTOR * self.slowest_hello))))

    def quiet(self, started: bool) -> float:
        """How long a nested level may stay quiet before it is nudged (the
        runner types a carriage return into its console, docs/nesting.md):
        twice its longest wait between records, or, before HELLO, twice
        its slowest HELLO; at least NUDGE_AFTER, and NUDGE_FIRST_HELLO
        before a level's first HELLO."""
        with self._lock:
            if started:
                return max(NUDGE_AFTER, 2 * self.slowest)
            return max(NUDGE_AFTER, 2 * self.slowest_hello) if self.slowest_hello else NUDGE_FIRST_HELLO

    def budget(self) -> float:
        if self.fixed is not None:
            return self.fixed
        with self._lock:
            return float(round(min(PACE_CEILING, max(PACE_FLOOR, PACE_FACTOR * self.slowest))))

    def explain(self) -> str:
        if self.fixed is not None:
            return ""
        return " (the limit this level's pace sets: no timeout was given)"


PACE_FACTOR = 10.0
PACE_FLOOR = 15.0
PACE_CEILING = 300.0
HELLO_FLOOR = 60.0
NUDGE_WAIT = 30.0  # after nudging a silent nested level, how long more to wait
NUDGE_AFTER = 5.0  # the least quiet before a nested level is nudged
NUDGE_FIRST_HELLO = 30.0  # the quiet before a level's first HELLO that earns a nudge


@dataclass
class LevelOutcome:
    info: LevelInfo
    results: list[ProbeResult] = field(default_factory=list)


# Of the probe kernel's 1023 bytes of command line, what the harness may
# use: the rest is for what loaders and backends add (QEMU's multiboot
# loader puts the kernel's path first; a Xen guest gets console=xen).
CMDLINE_BUDGET = 512

_ID = re.compile(r"[A-Za-z0-9_.-]+\Z")


def kernel_cmdline(globs: tuple[str, ...], after: str | None, shard: tuple[int, int] | None = None) -> str:
    """The selection as globs, readable. `shard=` and `after=` go first: a
    loader that cut the line would cut the globs (and the kernel, seeing
    the line cut, would refuse it), never the point to resume from."""
    words = []
    if shard is not None:
        words.append(f"shard={shard[0]}/{shard[1]}")
    if after:
        words.append(f"after={after}")
    if globs:
        words.append("probes=" + ",".join(globs))
    return " ".join(words)


def selection_map(catalog: list[Probe], ids: list[str]) -> str:
    """`sel=`'s value: one bit per probe of the kernel's catalogue (every
    probe, hidden ones too, in id order), probe i being bit i % 4 of hex
    digit i // 4. Its length depends on the catalogue alone, never on how
    many probes are chosen or how they were named."""
    chosen = set(ids)
    digits = []
    for start in range(0, len(catalog), 4):
        value = sum(1 << bit for bit, probe in enumerate(catalog[start : start + 4]) if probe.id in chosen)
        digits.append("0123456789abcdef"[value])
    return "".join(digits)


def boot_cmdline(image: GuestImage, globs: tuple[str, ...], ids: list[str], after: str | None,
                 shard: tuple[int, int] | None) -> str:  # fmt: skip
    """The command line of a boot that is to run exactly `ids`: the globs
    (with `shard=` and `after=`) when they fit in CMDLINE_BUDGET, else the
    chosen probes as a map over the catalogue (`sel=`, no `after=`)."""
    if after is None or _ID.match(after):
        text = kernel_cmdline(globs, after, shard)
        if len(text) <= CMDLINE_BUDGET:
            return text
    text = "sel=" + selection_map(image.catalog(), ids)
    if len(text) > CMDLINE_BUDGET:
        raise SelectionError(f"a catalogue of {len(image.catalog())} probes does not fit the probe kernel's "
                             f"command line ({len(text)} of {CMDLINE_BUDGET} bytes)")  # fmt: skip
    return text


def run_level(
    level: Level,
    image: GuestImage,
    selected: list[Probe],
    options: RunOptions,
    on_result: Callable[[ProbeResult], None] | None = None,
    on_boot: Callable[[int, str], None] | None = None,
    on_start: Callable[[LevelInfo], None] | None = None,
    shard: tuple[int, int] | None = None,
    live: _Live | None = None,
) -> LevelOutcome:
    """Run `selected` at one level, in as many boots as crashes require.

    With `options.jobs` > 1 the selection is split into that many shards
    (the kernel's `shard=K/N`: every N-th probe), each run by its own boots
    side by side; results arrive in whatever order the shards produce them.
    `shard=(K, N)` runs only the K-th of N shards of `selected` (the whole
    selection, as the kernel sees it): the pytest plugin gives each shard
    of a level to a worker of its own this way.
    """
    info = LevelInfo(level=level.number, hypervisor=level.backend.describe())
    outcome = LevelOutcome(info)
    if on_start is not None:
        on_start(info)  # the caller may keep it: it fills in as the level runs
    lock = threading.Lock()
    boots = itertools.count(1)

    def deliver(result: ProbeResult) -> None:
        with lock:
            outcome.results.append(result)
            if on_result is not None:
                on_result(result)

    def boot_number(cmdline: str) -> int:
        with lock:
            number = next(boots)
            info.boots = max(info.boots, number)
            if on_boot is not None:
                on_boot(number, cmdline)
            return number

    pace = Pace(options.probe_timeout)
    tasks = _plan(selected, options, shard)
    if options.jobs <= 1 or shard is not None or len(tasks) <= 1:
        for task in tasks:
            _run_task(level, image, task, options, info, lock, deliver, boot_number, live, pace)
        return outcome
    live = live or _Live()
    pool = ThreadPoolExecutor(max_workers=min(options.jobs, len(tasks)), thread_name_prefix=f"nvct-L{level.number}")
    futures = [
        pool.submit(_run_task, level, image, task, options, info, lock, deliver, boot_number, live, pace)
        for task in tasks
    ]
    try:
        for future in futures:
            future.result()  # re-raises a harness error (not a guest's: those are verdicts)
    except BaseException:
        live.stop()  # Ctrl-C, SIGTERM: kill every hypervisor the shards started, start no more
        raise
    finally:
        pool.shutdown(wait=True)
    return outcome


def run_levels(
    levels: list[Level],
    image: GuestImage,
    selected: list[Probe],
    options: RunOptions,
    on_result: Callable[[ProbeResult], None] | None = None,
    on_boot: Callable[[int, int, str], None] | None = None,
    on_start: Callable[[LevelInfo], None] | None = None,
    select_for: Callable[[int], list[Probe]] | None = None,
) -> list[LevelOutcome]:
    """Run `selected` at every level, the levels side by side: each level's
    boots need only the levels below it, which each boot starts for itself,
    so L1's probe boots run while L2's appliance boots. The outcomes come
    back in level order, each as `run_level` alone would give it.
    `on_result` and `on_start` are called under one lock, in whatever order
    the levels produce them; `on_boot` gets the level number first.
    `select_for(n)`, if given, is level n's version of `selected` (the
    probes known to crash there marked isolated)."""
    lock = threading.Lock()

    def serial(callback):
        if callback is None:
            return None

        def call(*args):
            with lock:
                callback(*args)

        return call

    report = serial(on_result)
    start = serial(on_start)
    booted = serial(on_boot)

    def mine(level: Level) -> list[Probe]:
        return select_for(level.number) if select_for is not None else selected

    # An L0 that is one busy CPU per stack (Bochs) runs its levels one after
    # another: side by side they starved each other on a 2-core machine.
    if len(levels) <= 1 or not levels[0].backend.levels_side_by_side:
        return [run_level(level, image, mine(level), options, report,
                          on_boot=(lambda n, c, lv=level.number: booted(lv, n, c)) if booted else None,
                          on_start=start) for level in levels]  # fmt: skip
    live = _Live()
    pool = ThreadPoolExecutor(max_workers=len(levels), thread_name_prefix="nvct-level")
    futures = [
        pool.submit(run_level, level, image, mine(level), options, report,
                    (lambda n, c, lv=level.number: booted(lv, n, c)) if booted else None, start, None, live)
        for level in levels
    ]  # fmt: skip
    try:
        return [future.result() for future in futures]
    except BaseException:
        live.stop()  # Ctrl-C, SIGTERM, a harness error: stop every level's boots
        raise
    finally:
        pool.shutdown(wait=True)


def shard_of(selected: list[Probe], count: int) -> dict[str, int]:
    """Which of `count` shards runs each probe: the probes that share boots
    are dealt out in turn (the kernel's `shard=K/N` over their selection),
    then the isolated ones, each of which has a boot of its own."""
    out: dict[str, int] = {}
    for group in ([p for p in selected if not p.isolated], [p for p in selected if p.isolated]):
        for position, probe in enumerate(group):
            out[probe.id] = position % count
    return out


@dataclass(frozen=True)
class Task:
    """Boots that run some probes of a level (resumed after a crash as needed)."""

    globs: tuple[str, ...]  # the kernel's probes=
    ids: list[str]  # what those boots run
    shard: tuple[int, int] | None = None  # the kernel's shard=
    isolated: Probe | None = None  # a boot of its own for this probe


def _plan(selected: list[Probe], options: RunOptions, shard: tuple[int, int] | None) -> list[Task]:
    """The boots of a level (each resumed after a crash as needed): the
    probes that share boots, in `options.jobs` shards side by side (or only
    shard `shard`), with the isolated probes left out by name; then one boot
    per isolated probe, selected by its id alone."""
    shared = [p for p in selected if not p.isolated]
    alone = [p for p in selected if p.isolated]
    globs = options.globs + tuple(f"-{p.id}" for p in alone) if shared else options.globs
    tasks: list[Task] = []
    if shard is not None:
        k, n = shard
        if not 0 <= k < n:
            raise ValueError(f"bad shard {k}/{n}")
        mine = shard_of(selected, n)
        part = [p.id for p in shared if mine[p.id] == k]
        if part:
            tasks.append(Task(globs, part, shard))
        alone = [p for p in alone if mine[p.id] == k]
    elif shared:
        jobs = max(1, min(options.jobs, len(shared)))
        tasks += [Task(globs, [p.id for p in shared[k::jobs]], (k, jobs) if jobs > 1 else None) for k in range(jobs)]
    tasks += [Task((p.id,), [p.id], None, isolated=p) for p in alone]
    return tasks


def _run_task(level: Level, image: GuestImage, task: Task, options: RunOptions, info: LevelInfo,
              lock: threading.Lock, deliver: Callable[[ProbeResult], None], boot_number: Callable[[str], int],
              live: _Live | None = None, pace: Pace | None = None) -> None:  # fmt: skip
    """Run a task's boots; an isolated probe whose feature the level's facts
    (the probe kernel's own CPUID and capability MSR readings from an earlier
    boot of this level) say is not offered is not booted for: SKIP, as its
    own check would say."""
    probe = task.isolated
    if probe is not None:
        with lock:
            facts, unavailable = dict(info.facts), info.unavailable
        if unavailable:  # an earlier boot of this level found it cannot be offered
            deliver(ProbeResult(probe.id, level.number, Verdict.SKIP, f"not exposed at this level: {unavailable}"))
            return
        status = from_facts(feature(probe.feature, [probe.id]).family, level.number, facts)
        if status is not None and status.state == "not exposed":
            why = f" ({status.reason})" if status.reason else ""
            deliver(ProbeResult(probe.id, level.number, Verdict.SKIP,
                                f"not exposed at this level: no {status.feature}{why}, as this level's facts say; "
                                "the probe's boot of its own was not started"))  # fmt: skip
            return
    _run_shard(level, image, task.ids, task.globs, options, task.shard, info, lock, deliver, boot_number, live,
               pace or Pace(options.probe_timeout))  # fmt: skip


class _Live:
    """The consoles of the boots under way, so that an interrupt can kill them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._consoles: dict[int, object] = {}  # by id(): a console need not be hashable
        self.stopped = False

    def add(self, console) -> bool:
        with self._lock:
            if self.stopped:
                return False
            self._consoles[id(console)] = console
            return True

    def remove(self, console) -> None:
        with self._lock:
            self._consoles.pop(id(console), None)

    def stop(self) -> None:
        with self._lock:
            self.stopped = True
            consoles = list(self._consoles.values())
        for console in consoles:
            console.kill()


class Interrupted(Exception):
    """The run was stopped while a shard's boot was under way."""


def _run_shard(
    level: Level,
    image: GuestImage,
    remaining: list[str],
    globs: tuple[str, ...],
    options: RunOptions,
    shard: tuple[int, int] | None,
    info: LevelInfo,
    lock: threading.Lock,
    deliver: Callable[[ProbeResult], None],
    boot_number: Callable[[str], int],
    live: _Live | None = None,
    pace: Pace | None = None,
) -> None:
    pace = pace or Pace(options.probe_timeout)
    after: str | None = None
    silent_boots = 0
    while remaining:
        if live is not None and live.stopped:
            return
        cmdline = boot_cmdline(image, globs, remaining, after, shard)
        number = boot_number(cmdline)
        log = BootLog(level.number, remaining, on_result=deliver, boot=number)
        try:
            _boot_once(level, image, cmdline, log, options, info, lock, live, pace)
        except Interrupted:
            return
        except LevelUnavailable as exc:
            for probe in remaining:
                deliver(ProbeResult(probe, level.number, Verdict.SKIP, f"not exposed at this level: {exc}",
                                    boot=number))  # fmt: skip
            with lock:
                info.unavailable = str(exc)
                if str(exc) not in info.problems:
                    info.problems.append(str(exc))
            return
        except BootFailed as exc:
            for probe in remaining:
                deliver(ProbeResult(probe, level.number, Verdict.CRASH, f"the level did not come up: {exc}",
                                    boot=number, console=exc.excerpt[-20:]))  # fmt: skip
            with lock:
                info.problems.append(str(exc))
            return
        with lock:
            started = bool(info.kernel)  # a boot of this level said HELLO before this one
            if log.hello is not None and not info.facts:
                info.facts = dict(log.facts)
                info.kernel = {k: log.hello.get(k) for k in ("build", "console", "total")}
            info.problems += log.problems
        done = set(log.results)
        if log.hello is None and log.ending == "timeout" and started and silent_boots == 0:
            # This level's kernel has started before: a boot that stays
            # silent is the stack below stalling, not the kernel. Once more.
            silent_boots += 1
            with lock:
                info.problems.append(f"boot {number} of L{level.number} never said HELLO ({log.why}); booted again")
            continue
        if log.ended or log.last_probe is None:
            # Finished, or died before any probe started: no point booting again.
            verdict, why = _unreported(log)
            for probe in remaining:
                if probe not in done:
                    deliver(ProbeResult(probe, level.number, verdict, why, boot=number, console=log.recent()[-20:]))
            return
        after = log.last_probe
        for probe in remaining:
            if probe not in done and probe.encode() <= after.encode():
                deliver(ProbeResult(probe, level.number, Verdict.ERROR,
                                    "selected but never reported (records lost?)", boot=number))  # fmt: skip
        left = [p for p in remaining if p not in done and p.encode() > after.encode()]
        if len(left) == len(remaining):
            # The kernel ran none of what it was given (it ran another probe
            # and stopped there): booting again would do the same, forever.
            for probe in left:
                deliver(ProbeResult(probe, level.number, Verdict.ERROR,
                                    f"boot {number} ran none of the probes it was given (it stopped in {after}, "
                                    "which it was not given); not booted again", boot=number))  # fmt: skip
            return
        remaining = left


def _unreported(log: BootLog) -> tuple[Verdict, str]:
    if log.ended:
        refused = log.hello.get("error") if log.hello is not None else ""
        if refused:
            return Verdict.ERROR, f"not run: the kernel refused its command line ({refused})"
        return Verdict.ERROR, "selected but never reported by the kernel"
    why = log.why
    if log.hello is None:
        return (Verdict.TIMEOUT if log.ending == "timeout" else Verdict.CRASH), f"the probe kernel did not start: {why}"
    return (
        Verdict.TIMEOUT if log.ending == "timeout" else Verdict.CRASH
    ), f"the kernel stopped before its first probe: {why}"


def _boot_once(level: Level, image: GuestImage, cmdline: str, log: BootLog, options: RunOptions,
               info: LevelInfo, lock: threading.Lock, live: _Live | None = None,
               pace: Pace | None = None) -> None:  # fmt: skip
    try:
        tmp = tempfile.mkdtemp(prefix="nvct-boot-", dir=options.workroot)
    except OSError as exc:
        raise BootFailed(f"cannot make the boot's folder in {options.workroot or tempfile.gettempdir()}: "
                         f"{exc.strerror or exc}") from None  # fmt: skip
    try:
        with level.backend.boot(image, cmdline, Path(tmp)) as console:
            if live is not None and not live.add(console):
                raise Interrupted()
            try:
                _watch(console, log, options, info, lock, live, pace)
            finally:
                if live is not None:
                    live.remove(console)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
            raise
        raise BootFailed(f"the boot's folder {tmp}: {exc.strerror}") from None  # a disk that filled during the run
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _watch(console, log: BootLog, options: RunOptions, info: LevelInfo, lock: threading.Lock,
           live: _Live | None = None, pace: Pace | None = None) -> None:  # fmt: skip
    """Read one boot to its end and give the probe in flight its verdict."""
    if console.facts:
        with lock:
            info.hypervisor.setdefault("runtime", {}).update(console.facts)
    ending, why = _read(console, log, options, pace or Pace(options.probe_timeout))
    if live is not None and live.stopped:
        raise Interrupted()  # the harness killed it: the probe in flight was not measured
    if ending == "timeout" and log.hello is None and hasattr(console, "gave_up"):
        console.gave_up()  # a guest that never started: the hypervisor below is suspect
    console.close(grace=options.end_grace if ending == "end" else 1.0)
    tail = console.tail()
    if ending == "eof":
        why = f"{console.describe_end()} before END"
    if log.hello is None and ending != "end":
        last = next((line for line in reversed(tail) if line.strip()), "")
        why += f"; last console line: {last.strip()[:200]!r}" if last else "; the console stayed empty"
    log.finish(ending, why, tail)


def _read(console, log: BootLog, options: RunOptions, pace: Pace) -> tuple[str, str]:
    seen = -1
    deadline = nudge_at = 0.0
    opened = last = time.monotonic()  # `last`: when the last record came
    since = 0.0  # when the last record (after HELLO) arrived
    budget = 0.0
    nudgeable = hasattr(console, "nudge")  # a nested level: a line through the levels below
    nudged = 0.0  # when the console was nudged in the current wait (0: not yet)
    quiet_in = ""
    while True:
        if log.progress != seen:
            seen = log.progress
            moment = time.monotonic()
            if nudged:
                # Records came again after console input: most likely a level
                # below had missed a wakeup (docs/nesting.md, "Stalls").
                log.problems.append(f"stalled {moment - last:.0f} s {quiet_in}: no record until console input, "
                                    "then it went on (docs/nesting.md)")  # fmt: skip
            if log.hello is not None:
                if since and not nudged:
                    pace.observe(moment - since)
                elif not since:
                    pace.observe_hello(moment - opened)
                since = moment
            last, nudged = moment, 0.0
            budget = pace.hello_budget(options.boot_timeout) if log.hello is None else pace.budget()
            deadline = moment + budget
            nudge_at = moment + min(budget, pace.quiet(log.hello is not None)) if nudgeable else deadline
        try:
            line = console.readline((deadline if nudged else min(deadline, nudge_at)) - time.monotonic())
        except ConsoleTimeout:
            now = time.monotonic()
            if nudgeable and not nudged:
                # A stack whose lower level missed a wakeup goes on at the
                # first interrupt, and a byte of input is one at every level
                # it passes; the probe kernel ignores it.
                console.nudge()
                nudged = now
                quiet_in = (f"in {log.in_flight}" if log.in_flight else
                            "before HELLO" if log.hello is None else "between two probes")  # fmt: skip
                deadline = max(deadline, now + min(budget, NUDGE_WAIT))
                continue
            if now < deadline:
                continue
            after = " (nor after console input)" if nudged else ""
            if log.hello is None:
                return "timeout", f"no HELLO within {budget:g} s of the start{after}"
            where = f"{log.in_flight} ran" if log.in_flight else "no record arrived"
            return "timeout", f"{where} for {budget:g} s without a result{pace.explain()}{after}"
        if line is None:
            return "eof", "the console ended"
        log.feed(line)
        if log.ended:
            return "end", "END"
        if log.reset:
            return "reset", "the virtual CPU was reset (the kernel started again)"
