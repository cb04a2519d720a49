"""Driving the appliance's command loop over the console of the level below.

The appliance's init reads one command per line from its serial console
and runs it (appliances/linux.py). `Shell.run()` sends a command and collects its
output up to a marker carrying its exit status; `Shell.launch()` starts a
hypervisor whose guest's console then flows over the same line, and hands
back a console that ends when that hypervisor exits.
"""

from __future__ import annotations

import re
import secrets
import shlex
import time
from dataclasses import dataclass, field
from typing import Any

from ...appliances.linux import READY
from . import Console, ConsoleTimeout

# What stops a QEMU whose serial line is `mon:stdio` (the escape C-a, then
# x); a C-a meant for a guest further in is sent twice, which the mux
# passes on as one.
QUIT_KEYS = "\x01x"


class ShellError(Exception):
    def __init__(self, message: str, excerpt: list[str]):
        super().__init__(message)
        self.excerpt = excerpt


@dataclass
class CommandResult:
    status: int
    output: list[str]


class Shell:
    def __init__(self, console: Console, label: str):
        self.console = console
        self.label = label  # "L1 linux-kvm", for messages

    def wait_ready(self, timeout: float) -> str:
        """Wait for the appliance's READY line; returns its kernel release."""
        deadline = time.monotonic() + timeout
        while True:
            line = self._readline(deadline, "the appliance did not come up", timeout)
            if READY in line:
                return line.split(READY, 1)[1].strip()

    def _readline(self, deadline: float, what: str, timeout: float) -> str:
        try:
            line = self.console.readline(deadline - time.monotonic())
        except ConsoleTimeout:
            raise ShellError(f"{self.label}: {what} within {timeout:g} s", self.console.tail()) from None
        if line is None:
            raise ShellError(f"{self.label}: {what} ({self.console.describe_end()})", self.console.tail())
        return line

    def run(self, argv: list[str] | str, timeout: float = 60.0) -> CommandResult:
        """Run a command (an argv list, quoted here; or a shell snippet)."""
        command = argv if isinstance(argv, str) else shlex.join(argv)
        marker = f"NVCT-DONE-{secrets.token_hex(4)}"
        self.console.send(f"{command} 2>&1; echo {marker} $?\n")
        deadline = time.monotonic() + timeout
        output: list[str] = []
        pattern = re.compile(re.escape(marker) + r" (\d+)")
        while True:
            line = self._readline(deadline, f"`{command[:80]}` did not finish", timeout)
            match = pattern.search(line)
            if match:
                before = line[: match.start()]
                if before.strip():
                    output.append(before)
                return CommandResult(int(match.group(1)), output)
            output.append(line)

    def launch(self, argv: list[str], label: str, muxed: bool = False) -> GuestConsole:
        """Start a hypervisor in the appliance; its console is the guest's.
        `muxed`: its serial line is `mon:stdio`, so QUIT_KEYS stop it."""
        marker = f"NVCT-EXIT-{secrets.token_hex(4)}"
        self.console.send(f"{shlex.join(argv)}; echo {marker} $?\n")
        return GuestConsole(self.console, marker, label, muxed=muxed)


@dataclass
class GuestConsole:
    """The console of a guest started by a hypervisor inside the appliance:
    the lines of the level below, up to the marker that says it exited."""

    outer: Console
    marker: str
    label: str
    muxed: bool = False  # the hypervisor's serial line is `mon:stdio` (QUIT_KEYS stop it)
    facts: dict[str, Any] = field(default_factory=dict)
    exit_status: int | None = None
    silent: bool = False  # the reader gave up waiting for the guest (`gave_up()`)
    _ended: bool = False

    def readline(self, timeout: float) -> str | None:
        if self._ended:
            return None
        line = self.outer.readline(timeout)
        if line is None:
            self._ended = True
            return None
        at = line.find(self.marker)
        if at >= 0:
            status = line[at + len(self.marker) :].split()
            self.exit_status = int(status[0]) if status and status[0].isdigit() else None
            self._ended = True
            return line[:at] or None
        return line

    def send(self, text: str) -> None:
        self.outer.send(text.replace("\x01", "\x01\x01") if self.muxed else text)

    def nudge(self) -> None:
        """Type a carriage return into the line: each level it passes takes
        a serial interrupt (a level below that missed a wakeup goes on), the
        probe kernel ignores it, and an appliance's command loop between
        guests reads an empty command."""
        try:
            self.send("\r")
        except (NotImplementedError, OSError):  # a line that cannot be typed into: nothing to nudge
            pass

    def gave_up(self) -> None:
        """The runner waited out its boot timeout on this guest, which never
        said HELLO. What stalled may be the appliance's own hypervisor (a
        guest that hangs in a probe leaves the appliance well): the backend
        does not keep that appliance for another boot."""
        self.silent = True

    def stop(self, grace: float = 10.0) -> bool:
        """End the guest's hypervisor (QUIT_KEYS if it still runs) and wait up
        to `grace` seconds for the appliance's marker. True when the
        appliance's command loop is back and can start another guest."""
        if not self._ended and self.muxed:
            self.outer.send(QUIT_KEYS)
            deadline = time.monotonic() + grace
            while not self._ended and time.monotonic() < deadline:
                try:
                    self.readline(deadline - time.monotonic())
                except ConsoleTimeout:
                    break
            # If the hypervisor exited on its own just before the keys came,
            # the appliance's command loop has them: end that line, so the
            # next command starts on a line of its own.
            self.outer.send("\n")
        return self.exit_status is not None

    def tail(self, count: int = 30) -> list[str]:
        return self.outer.tail(count)

    def close(self, grace: float = 5.0) -> None:
        """Wait up to `grace` seconds for the hypervisor to exit on its own;
        whatever still runs dies with the level below when it is closed."""
        deadline = time.monotonic() + grace
        while not self._ended and time.monotonic() < deadline:
            try:
                self.readline(deadline - time.monotonic())
            except ConsoleTimeout:
                break

    def kill(self) -> None:
        self.outer.kill()

    def describe_end(self) -> str:
        if self.exit_status is not None:
            return f"{self.label} exited with status {self.exit_status}"
        if self._ended:
            return f"{self.label} died with the level below ({self.outer.describe_end()})"
        return f"{self.label} still running"
