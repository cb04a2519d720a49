"""How a backend reaches a guest's serial line: the `Console` interface
that the runner, BootLog's feeder and the appliance shell read, and the
transports that implement it.

- pty.py: `PtyConsole`, a hypervisor process on a pseudo-terminal (QEMU,
  Bochs; dom0's shell on this machine or over ssh).
- polled.py: `PolledConsole`, a remote file that only grows, fetched every
  few seconds (ESXi, Hyper-V).
- shell.py: `Shell`, the appliance's command loop over a console, and
  `GuestConsole`, the console of a guest that a hypervisor in the appliance
  started (the same line, up to an exit marker).
- ssh.py: `SshHost`, where dom0's commands run: this machine or an SSH host.

Xen's `DomainConsole` (backends/xen.py) wraps a GuestConsole.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


class ConsoleTimeout(Exception):
    """No line arrived within the time `Console.readline` was given."""


@runtime_checkable
class Console(Protocol):
    """A guest's serial line, read one line at a time, as every backend's
    `boot()` yields it."""

    facts: dict[str, Any]
    """What the backend learned while booting (a KVM module's parameters,
    a domain's id); the runner copies it into the run record's
    `hypervisor.runtime`."""

    def readline(self, timeout: float) -> str | None:
        """The next line, without its line break; None once the console has
        ended and every line is read. Raises ConsoleTimeout when no line
        came within `timeout` seconds."""
        ...

    def send(self, text: str) -> None:
        """Type `text` into the serial line (an appliance's command loop
        reads it). A console that cannot be written to raises
        NotImplementedError."""
        ...

    def tail(self, count: int = 30) -> list[str]:
        """The last lines seen, for a crash excerpt: serial lines, and what
        the transport adds of its own (the hypervisor's messages, marked)."""
        ...

    def close(self, grace: float = 5.0) -> None:
        """End the console: let what runs behind it stop by itself for up to
        `grace` seconds, then stop it. Called once, after the last read."""
        ...

    def kill(self) -> None:
        """Stop what runs behind the console now, from any thread (an
        interrupted run); a reader then sees the end soon."""
        ...

    def describe_end(self) -> str:
        """How the console ended, in words for a CRASH or ERROR detail
        ("qemu exited with status 1", "Xen panicked ...")."""
        ...


# A console may also have `gave_up()`: the runner calls it, before close(),
# when it stopped waiting for a guest that never said HELLO. The appliance's
# GuestConsole takes it as a reason not to reuse the appliance.
