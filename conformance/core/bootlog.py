"""One boot's console lines in, one result per probe out.

`BootLog` checks the records of a boot (sequence, CRC, order) and turns
them into `ProbeResult`s as they arrive. A record that is lost, repeated,
out of order or corrupted makes the probe it belongs to an ERROR with what
was seen; noise between records is ignored; a probe that started and never
finished gets CRASH or TIMEOUT when the boot ends.
"""

from __future__ import annotations

import collections
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from .protocol import PREFIX, Record, RecordError, parse_line
from .results import ProbeResult
from .verdicts import KERNEL_VERDICTS, Verdict

Ending = Literal["end", "eof", "timeout", "reset"]

MAX_PROBE_LINES = 40  # console lines kept per probe, for reports


@dataclass
class _InFlight:
    probe: str
    started: float  # monotonic, when START arrived
    lines: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


class BootLog:
    """Reads one boot and produces results for the probes it was meant to run."""

    def __init__(
        self,
        level: int,
        expected: list[str],
        on_result: Callable[[ProbeResult], None] | None = None,
        boot: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.level = level
        self.expected = list(expected)
        self.boot = boot
        self._deliver = on_result
        self._clock = clock
        self.hello: Record | None = None
        self.end: Record | None = None
        self.facts: dict[str, str] = {}
        self.results: dict[str, ProbeResult] = {}
        self.problems: list[str] = []  # boot-wide trouble, not tied to a probe
        self.reset = False  # the kernel started again (a CPU reset)
        self.last_probe: str | None = None  # the last probe started or reported
        self.progress = 0  # counts HELLO, START and RESULT records: for watchdogs
        self.ending: Ending | None = None  # how the boot ended, once finish() is called
        self.why = ""
        self._next_seq = 0
        self._current: _InFlight | None = None
        self._pending: list[str] = []  # trouble seen between probes, for the next one
        self._recent: collections.deque[str] = collections.deque(maxlen=MAX_PROBE_LINES)

    # -- input ----------------------------------------------------------------

    @property
    def ended(self) -> bool:
        return self.end is not None

    @property
    def in_flight(self) -> str | None:
        return self._current.probe if self._current else None

    def feed(self, line: str) -> None:
        """One console line (without its newline).

        A line may hold more than one record: a record cut short (the
        kernel died or faulted while writing it) runs into the next one.
        Each piece that starts with the prefix is read on its own."""
        if self.ended or self.reset:
            return
        self._recent.append(line)
        if self._current is not None and len(self._current.lines) < MAX_PROBE_LINES:
            self._current.lines.append(line)
        starts = [m.start() for m in re.finditer(re.escape(PREFIX) + " ", line)]
        if len(starts) <= 1:
            self._feed_piece(line)
            return
        for begin, end in zip(starts, starts[1:] + [len(line)]):
            self._feed_piece(line[begin:end].rstrip(" "))

    def _feed_piece(self, line: str) -> None:
        if self.ended or self.reset:
            return
        try:
            record = parse_line(line)
        except RecordError as exc:
            seq, kind, probe = _guess(exc.text)
            if seq == self._next_seq:
                self._next_seq += 1  # damaged, but not lost: no second complaint
            what = f"corrupted record ({exc.reason}): {exc.text[:160]!r}"
            if kind in ("HELLO", "FACT", "END"):
                self.problems.append(what)
            else:
                self._trouble(what, probe)
            return
        if record is None:
            return
        if record.kind == "HELLO" and self.hello is not None:
            # The kernel is starting over: the virtual CPU was reset.
            self.reset = True
            return
        if self.hello is None and record.kind != "HELLO":
            self._trouble(f"{record.kind} record before HELLO (seq {record.seq})")
            self._next_seq = record.seq + 1
        elif record.seq > self._next_seq:
            lost = f"{self._next_seq}" if record.seq == self._next_seq + 1 else f"{self._next_seq}..{record.seq - 1}"
            # Lost while a probe ran: that probe's records. Else the next one's.
            owner = None if self._current is not None else record.probe
            self._trouble(f"records lost (sequence {lost} missing before {record.kind})", owner)
            self._next_seq = record.seq + 1
        elif record.seq < self._next_seq:
            self._trouble(
                f"record out of order or repeated (seq {record.seq}, expected {self._next_seq}): {record.raw[:160]!r}",
                record.probe,
            )
            return
        else:
            self._next_seq += 1
        getattr(self, "_record_" + record.kind.lower())(record)

    def _trouble(self, what: str, probe: str | None = None) -> None:
        """Attach a problem to the probe it belongs to: the one in flight, or
        the one the damaged record names, or the next one to start."""
        if self._current is not None and (probe is None or probe == self._current.probe):
            self._current.problems.append(what)
        elif probe is not None and probe in self.results:
            self._taint_reported(probe, what)
        elif self.hello is None:
            self.problems.append(what)
        else:
            self._pending.append(what)

    def _taint_reported(self, probe: str, what: str) -> None:
        result = self.results[probe]
        if result.verdict.rank < Verdict.ERROR.rank:
            result.detail = f"{what} (probe had reported {result.verdict.value}: {result.detail})".rstrip(": )") + ")"
            result.verdict = Verdict.ERROR

    # -- records --------------------------------------------------------------

    def _record_hello(self, record: Record) -> None:
        self.hello = record
        self.progress += 1
        if record.get("error"):
            self.problems.append(f"the kernel refused its command line: {record.get('error')}")
        selected = record.get("selected")
        if selected.isdigit() and int(selected) != len(self.expected):
            self.problems.append(f"kernel selected {selected} probes, the harness expected {len(self.expected)}")

    def _record_fact(self, record: Record) -> None:
        self.facts.update(record.fields)

    def _record_start(self, record: Record) -> None:
        self.progress += 1
        probe = record.get("probe")
        if self._current is not None:
            self._close_current(Verdict.ERROR, f"no RESULT before the START of {probe}")
        self._current = _InFlight(probe, self._clock(), lines=[record.raw], problems=self._pending)
        self._pending = []
        self.last_probe = probe

    def _record_note(self, record: Record) -> None:
        probe = record.get("probe")
        if self._current is None or probe != self._current.probe:
            self._trouble(f"NOTE for {probe}, which is not running")
            return
        self._current.notes.append(record.get("msg"))

    def _record_result(self, record: Record) -> None:
        self.progress += 1
        probe = record.get("probe")
        if self._current is None or probe != self._current.probe:
            # Its START was lost or it never started: keep what it says, as an ERROR.
            self._current = _InFlight(probe, self._clock(), lines=[record.raw], problems=self._pending)
            self._pending = []
            self._current.problems.append("RESULT without START")
        self.last_probe = probe
        text = record.get("verdict")
        detail = record.get("detail")
        try:
            verdict = Verdict.parse(text)
        except ValueError:
            verdict = None
        if verdict is None or verdict not in KERNEL_VERDICTS:
            self._current.problems.append(f"kernel reported verdict {text!r}")
            verdict = Verdict.ERROR
        elif verdict is not Verdict.PASS and not detail:
            self._current.problems.append(f"{verdict.value} without a reason")
        ticks = record.get("ticks")
        hz = self.facts.get("tsc.hz", "0")
        duration = None
        if ticks.isdigit() and hz.isdigit() and int(hz) > 0:
            duration = int(ticks) / int(hz)
        self._close_current(verdict, detail, duration, reported=True)

    def _record_end(self, record: Record) -> None:
        if self._current is not None:
            self._close_current(Verdict.ERROR, "END while the probe was running")
        self.end = record
        run = record.get("run")
        if run.isdigit() and int(run) != len(self.results):
            self.problems.append(f"END says {run} probes ran, the harness saw {len(self.results)} results")
        for what in self._pending:
            self.problems.append(what)
        self._pending = []

    def _close_current(
        self, verdict: Verdict, detail: str, duration: float | None = None, reported: bool = False
    ) -> None:
        """End the probe in flight. `reported`: the verdict is the kernel's
        own (a RESULT record), not one the harness gives."""
        current = self._current
        assert current is not None
        self._current = None
        if duration is None:
            duration = self._clock() - current.started
        if current.problems:
            if reported:
                seen = f" (probe reported {verdict.value}{': ' + detail if detail else ''})"
            else:
                seen = f"; {detail}" if detail else ""
            if verdict.rank < Verdict.ERROR.rank:
                verdict = Verdict.ERROR
            detail = "; ".join(current.problems) + seen
        if current.probe not in self.expected:
            detail = f"the kernel ran {current.probe}, which the harness did not select ({verdict.value}: {detail})"
            verdict = Verdict.ERROR
        if current.probe in self.results:
            self._taint_reported(current.probe, "reported twice")
            return
        result = ProbeResult(
            probe=current.probe,
            level=self.level,
            verdict=verdict,
            detail=detail,
            duration_s=duration,
            notes=current.notes,
            console=current.lines,
            boot=self.boot,
        )
        self.results[current.probe] = result
        if self._deliver is not None:
            self._deliver(result)

    # -- the end of the boot ------------------------------------------------------

    def finish(self, ending: Ending, why: str, excerpt: list[str]) -> None:
        """The console ended (`eof`), went silent (`timeout`), the CPU was
        reset (`reset`) or END arrived (`end`). Gives the probe in flight its
        CRASH or TIMEOUT, with `why` and the excerpt in its detail."""
        self.ending, self.why = ending, why
        if self._current is None:
            return
        verdict = Verdict.TIMEOUT if ending == "timeout" else Verdict.CRASH
        current = self._current
        current.lines = (current.lines + [ln for ln in excerpt if ln not in current.lines])[-MAX_PROBE_LINES:]
        problems = current.problems
        current.problems = []
        detail = why + (f"; also: {'; '.join(problems)}" if problems else "")
        if current.notes:  # where the probe got to: what it said last
            detail += f"; its last note: {current.notes[-1]}"
        self._close_current(verdict, detail)

    def recent(self) -> list[str]:
        return list(self._recent)


def _guess(text: str) -> tuple[int | None, str | None, str | None]:
    """The sequence number, kind and probe of a damaged record, where readable."""
    words = text.split(" ")
    seq = int(words[1]) if len(words) > 1 and words[1].isdigit() else None
    kind = words[2] if len(words) > 2 else None
    probe = next((w[6:] for w in words if w.startswith("probe=")), None)
    return seq, kind, probe
