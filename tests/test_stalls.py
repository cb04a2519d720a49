"""A level whose stack stalls (docs/nesting.md, "Stalls"): the runner's
side, with scripted consoles named as fakes. A boot that never says HELLO
after earlier boots of the same level did is booted once more, not taken
as a kernel that cannot start, and the appliance it ran on is not kept
for that boot."""

from __future__ import annotations

import contextlib
import time

from conftest import FakeImage, ScriptedConsole

from conformance.backends.transports import ConsoleTimeout
from conformance.backends.transports.shell import GuestConsole
from conformance.core.catalog import Probe
from conformance.core.protocol import format_record
from conformance.run import runner
from conformance.run.runner import HELLO_FLOOR, Pace, RunOptions, run_level
from conformance.run.stack import Level

HANG = object()  # the scripted console goes silent here


class FakeConsole(ScriptedConsole):
    """A scripted console that goes silent at HANG (ConsoleTimeout)."""

    def __init__(self, lines: list):
        super().__init__(lines)
        self.gave_up_on = False

    def readline(self, timeout: float):
        if self.lines and self.lines[0] is HANG:
            raise ConsoleTimeout()
        return super().readline(timeout)

    def gave_up(self) -> None:
        self.gave_up_on = True


def hello(seq: int = 0) -> str:
    return format_record(seq, "HELLO", {"proto": "1", "build": "0" * 16, "total": "3", "selected": "3"})


def passed(seq: int, probe: str) -> list[str]:
    return [
        format_record(seq, "START", {"probe": probe}),
        format_record(seq + 1, "RESULT", {"probe": probe, "verdict": "PASS"}),
    ]


class FakeStalls:
    """Boot 1 stalls in p.001; boot 2 stays silent (the stack below stalled
    while the kernel booted); boot 3 runs the rest."""

    def __init__(self, boots: list[list]):
        self.scripts = boots
        self.consoles: list[FakeConsole] = []

    def describe(self) -> dict:
        return {"backend": "fake"}

    @contextlib.contextmanager
    def boot(self, image, cmdline, workdir):
        console = FakeConsole(self.scripts[len(self.consoles)])
        self.consoles.append(console)
        yield console


PROBES = [Probe(f"p.{i:03d}", "CPU", "d", "r") for i in range(3)]
OPTIONS = dict(globs=("p.*",), boot_timeout=0.2, probe_timeout=0.2)


def test_a_silent_boot_after_a_started_one_is_booted_again(tmp_path):
    backend = FakeStalls([
        [hello(), *passed(1, "p.000"), format_record(3, "START", {"probe": "p.001"}), HANG],
        [HANG],
        [hello(), *passed(1, "p.002"), format_record(3, "END", {"run": "1"})],
    ])  # fmt: skip
    outcome = run_level(Level(1, backend), FakeImage(PROBES), PROBES, RunOptions(workroot=tmp_path, **OPTIONS))
    verdicts = {r.probe: r.verdict.value for r in outcome.results}
    assert verdicts == {"p.000": "PASS", "p.001": "TIMEOUT", "p.002": "PASS"}
    assert len(backend.consoles) == 3
    assert [c.gave_up_on for c in backend.consoles] == [False, True, False]  # only the silent boot
    assert any("never said HELLO" in p and "booted again" in p for p in outcome.info.problems)


def test_a_level_that_never_started_is_not_booted_again(tmp_path):
    """The first boot of a level stays silent: that is the kernel (or the
    level) not starting, as before: every probe TIMEOUT, one boot."""
    backend = FakeStalls([[HANG], [hello()]])
    outcome = run_level(Level(1, backend), FakeImage(PROBES), PROBES, RunOptions(workroot=tmp_path, **OPTIONS))
    assert {r.verdict.value for r in outcome.results} == {"TIMEOUT"}
    assert len(backend.consoles) == 1


def test_a_second_silent_boot_ends_the_level(tmp_path):
    backend = FakeStalls([
        [hello(), *passed(1, "p.000"), format_record(3, "START", {"probe": "p.001"}), HANG],
        [HANG],
        [HANG],
        [hello()],
    ])  # fmt: skip
    outcome = run_level(Level(1, backend), FakeImage(PROBES), PROBES, RunOptions(workroot=tmp_path, **OPTIONS))
    assert {r.probe: r.verdict.value for r in outcome.results} == {"p.000": "PASS", "p.001": "TIMEOUT",
                                                                  "p.002": "TIMEOUT"}  # fmt: skip
    assert len(backend.consoles) == 3


def test_the_appliance_console_remembers_that_the_runner_gave_up():
    outer = FakeConsole([])
    guest = GuestConsole(outer, "NVCT-EXIT-0", "qemu in L2", muxed=True)
    assert not guest.silent
    guest.gave_up()
    assert guest.silent


def test_a_later_boot_waits_for_hello_as_long_as_the_level_has_needed():
    pace = Pace(None)
    assert pace.hello_budget(600) == 600  # the level's first boot: the boot timeout
    pace.observe_hello(2.5)
    assert pace.hello_budget(600) == HELLO_FLOOR  # ten times 2.5 s is below the floor
    pace.observe_hello(20.0)
    assert pace.hello_budget(600) == 10 * 20.0
    assert pace.hello_budget(90) == 90  # never more than the boot timeout
    assert Pace(30.0).hello_budget(600) == 600  # a fixed probe timeout does not change the boot's


class NudgeableConsole(FakeConsole):
    """Silent at HANG until nudged when `wakes`; a nudge otherwise changes nothing."""

    def __init__(self, lines: list, wakes: bool):
        super().__init__(lines)
        self.wakes = wakes
        self.nudges = 0

    def readline(self, timeout: float):
        if self.lines and self.lines[0] is HANG:
            time.sleep(max(0.0, min(timeout, 5.0)))  # silent for as long as the reader waits
            raise ConsoleTimeout()
        return super().readline(timeout)

    def nudge(self) -> None:
        self.nudges += 1
        if self.wakes and self.lines and self.lines[0] is HANG:
            self.lines.pop(0)


class FakeNudged(FakeStalls):
    def __init__(self, boots: list[list], wakes: bool):
        super().__init__(boots)
        self.wakes = wakes

    @contextlib.contextmanager
    def boot(self, image, cmdline, workdir):
        console = NudgeableConsole(self.scripts[len(self.consoles)], self.wakes)
        self.consoles.append(console)
        yield console


def stalled_run(tmp_path, wakes: bool):
    script = [hello(), *passed(1, "p.000"), format_record(3, "START", {"probe": "p.001"}), HANG,
              format_record(4, "RESULT", {"probe": "p.001", "verdict": "PASS"}), *passed(5, "p.002"),
              format_record(7, "END", {"run": "3"})]  # fmt: skip
    backend = FakeNudged([script, [hello(), *passed(1, "p.002"), format_record(3, "END", {"run": "1"})]], wakes)
    outcome = run_level(Level(2, backend), FakeImage(PROBES), PROBES, RunOptions(workroot=tmp_path, **OPTIONS))
    return backend, outcome


def test_a_stall_that_console_input_ends_costs_no_verdict(tmp_path):
    """A nested level that missed a wakeup goes on at the first interrupt:
    the harness types a carriage return before it gives up, and the probe
    keeps the verdict of its own records; the stall is the level's problem."""
    backend, outcome = stalled_run(tmp_path, wakes=True)
    assert {r.probe: r.verdict.value for r in outcome.results} == {"p.000": "PASS", "p.001": "PASS", "p.002": "PASS"}
    assert len(backend.consoles) == 1 and backend.consoles[0].nudges == 1
    assert any(p.startswith("stalled ") and "in p.001" in p and "console input" in p for p in outcome.info.problems)


def test_a_hang_that_input_does_not_end_is_still_a_timeout(tmp_path):
    backend, outcome = stalled_run(tmp_path, wakes=False)
    verdicts = {r.probe: r.verdict.value for r in outcome.results}
    assert verdicts == {"p.000": "PASS", "p.001": "TIMEOUT", "p.002": "PASS"}
    assert backend.consoles[0].nudges == 1  # once per wait, then the verdict
    timeout = next(r for r in outcome.results if r.probe == "p.001")
    assert "(nor after console input)" in timeout.detail
    assert not any(p.startswith("stalled ") for p in outcome.info.problems)


def test_a_quiet_nested_level_is_nudged_long_before_its_timeout(tmp_path, monkeypatch):
    """The nudge comes after twice the level's longest wait between records
    (at least NUDGE_AFTER), not at the end of the probe's timeout: a stall
    costs seconds."""
    monkeypatch.setattr(runner, "NUDGE_AFTER", 0.2)
    script = [hello(), *passed(1, "p.000"), format_record(3, "START", {"probe": "p.001"}), HANG,
              format_record(4, "RESULT", {"probe": "p.001", "verdict": "PASS"}), *passed(5, "p.002"),
              format_record(7, "END", {"run": "3"})]  # fmt: skip
    backend = FakeNudged([script], wakes=True)
    options = RunOptions(workroot=tmp_path, globs=("p.*",), boot_timeout=0.2, probe_timeout=30.0)
    start = time.monotonic()
    outcome = run_level(Level(2, backend), FakeImage(PROBES), PROBES, options)
    assert time.monotonic() - start < 10
    assert {r.verdict.value for r in outcome.results} == {"PASS"}
    assert backend.consoles[0].nudges == 1
