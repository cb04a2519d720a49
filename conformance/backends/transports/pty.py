"""A guest's console on a pseudo-terminal, read line by line as it arrives.

The hypervisor process runs on a pseudo-terminal (pexpect), which Bochs's
terminal display needs and which gathers the hypervisor's own messages. The
guest's serial port is either that same terminal (QEMU `-serial stdio`) or
a FIFO the backend made (Bochs). Lines of the hypervisor's own output that
are not the serial console are kept for crash excerpts only.
"""

from __future__ import annotations

import collections
import os
import re
import select
import signal
import time
from collections.abc import Callable

import pexpect

from . import ConsoleTimeout


class PtyConsole:
    """A hypervisor process on a pseudo-terminal; the guest's serial line is
    that terminal or a FIFO (or socket) beside it. A `Console`."""

    def __init__(
        self,
        child: pexpect.spawn,
        serial_fd: int | None = None,
        label: str = "hypervisor",
        diagnostics: Callable[[], list[str]] | None = None,
        last_words: Callable[[], str | None] | None = None,
        fatal: re.Pattern[str] | None = None,
        serial_writable: bool = False,
        on_output: Callable[[str], None] | None = None,
    ):
        self.child = child
        # The serial line is a socket both ways (Bochs's socket-client COM1),
        # not a FIFO that only carries the guest's output.
        self._serial_writable = serial_writable
        self._diagnostics = diagnostics  # more lines for excerpts (a log file)
        self._last_words = last_words  # the hypervisor's own reason for dying
        # A line by which the hypervisor says its guest cannot go on while it
        # itself stays alive (QEMU pauses the VM after a KVM internal error):
        # the console kills it at once, and that line is the reason.
        self._fatal = fatal
        self._on_output = on_output  # sees each line of the hypervisor's own output
        self.fatal_line: str | None = None
        self.label = label
        self._serial_fd = serial_fd
        self._streams: dict[int, bytearray] = {child.child_fd: bytearray()}
        if serial_fd is not None:
            self._streams[serial_fd] = bytearray()
        self._open = set(self._streams)
        self._lines: collections.deque[str] = collections.deque()
        self._tail: collections.deque[str] = collections.deque(maxlen=60)
        self.facts: dict[str, object] = {}  # what a backend learned while booting
        self.exit_status: int | None = None
        self.signal_status: int | None = None

    # -- reading --------------------------------------------------------------

    def _is_serial(self, fd: int) -> bool:
        return fd == (self._serial_fd if self._serial_fd is not None else self.child.child_fd)

    def _take(self, fd: int, data: bytes, final: bool = False) -> None:
        buf = self._streams[fd]
        buf += data
        while True:
            cut = buf.find(b"\n")
            if cut < 0:
                break
            self._emit(fd, bytes(buf[:cut]))
            del buf[: cut + 1]
        if final and buf:
            self._emit(fd, bytes(buf))
            buf.clear()

    def _emit(self, fd: int, raw: bytes) -> None:
        line = raw.decode("latin-1").rstrip("\r")
        if self._fatal is not None and self.fatal_line is None and self._fatal.search(line):
            self.fatal_line = line.strip()
            self.kill()
        if self._is_serial(fd):
            self._lines.append(line)
            self._tail.append(line)
        elif line.strip():
            self._tail.append(f"[{self.label}] {line}")
            if self._on_output is not None:
                self._on_output(line)

    def _alive(self) -> bool:
        return self.child.child_fd in self._open

    def readline(self, timeout: float) -> str | None:
        """The next serial line; None once the hypervisor has exited and all
        its output is read. Raises ConsoleTimeout after `timeout` seconds."""
        deadline = time.monotonic() + max(timeout, 0.0)
        while not self._lines:
            if not self._alive():
                if self._serial_fd is not None and self._serial_fd in self._open:
                    self._drain(self._serial_fd)
                    self._take(self._serial_fd, b"", final=True)
                    self._open.discard(self._serial_fd)
                    continue
                self._reap()
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                raise ConsoleTimeout()
            ready, _, _ = select.select(sorted(self._open), [], [], min(left, 0.5))
            for fd in ready:
                self._read(fd)
        return self._lines.popleft()

    def _read(self, fd: int) -> None:
        try:
            data = os.read(fd, 65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # EIO: the pty's other side has gone
            data = b""
        if data:
            self._take(fd, data)
        elif fd == self.child.child_fd:
            self._take(fd, b"", final=True)
            self._open.discard(fd)
        elif not self._alive():
            self._open.discard(fd)
        else:
            # A FIFO with no writer (yet, or any more) reads as empty: wait a
            # little rather than spin; the pty says when the process is gone.
            time.sleep(0.02)

    def _drain(self, fd: int) -> None:
        while True:
            try:
                data = os.read(fd, 65536)
            except OSError:
                return
            if not data:
                return
            self._take(fd, data)

    def _reap(self) -> None:
        if self.exit_status is None and self.signal_status is None:
            try:
                self.child.wait()
            except pexpect.ExceptionPexpect:
                pass
            self.exit_status = self.child.exitstatus
            self.signal_status = self.child.signalstatus

    def send(self, text: str) -> None:
        """Type into the console (the serial line of a guest that reads it)."""
        data = text.encode("latin-1")
        if self._serial_fd is None:
            self.child.send(data)
            return
        if not self._serial_writable:
            raise NotImplementedError(f"{self.label}: this console cannot be written to")
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self._serial_fd, view) :]
            except BlockingIOError:
                select.select([], [self._serial_fd], [], 1.0)
            except OSError:  # the hypervisor has gone: reading will say so
                return

    # -- excerpts and the end -----------------------------------------------------

    def tail(self, count: int = 30) -> list[str]:
        """The last lines seen: serial lines as they are, the hypervisor's own
        output marked with its label, then the hypervisor's diagnostics."""
        lines = list(self._tail)[-count:]
        if self._diagnostics is not None:
            lines += self._diagnostics()
        return lines

    def close(self, grace: float = 5.0) -> None:
        """Let the hypervisor exit on its own for `grace` seconds, then kill it."""
        deadline = time.monotonic() + grace
        while self._alive() and time.monotonic() < deadline:
            try:
                self.readline(deadline - time.monotonic())
            except ConsoleTimeout:
                break
        if self.child.isalive():
            try:
                os.killpg(self.child.pid, signal.SIGKILL)
            except OSError:
                pass
            self.child.close(force=True)
        self._reap()
        self.child.close(force=True)
        if self._serial_fd is not None:
            try:
                os.close(self._serial_fd)
            except OSError:
                pass

    def kill(self) -> None:
        """Kill the hypervisor now, from any thread (an interrupted run)."""
        try:
            os.killpg(self.child.pid, signal.SIGKILL)
        except OSError:
            pass

    def describe_end(self) -> str:
        """How the hypervisor process ended, with its own reason if it gave one."""
        if self.signal_status is not None:
            text = f"{self.label} killed by signal {self.signal_status}"
        elif self.exit_status is not None:
            text = f"{self.label} exited with status {self.exit_status}"
        else:
            return f"{self.label} still running"
        if self.fatal_line is not None:
            rip = next((part for line in self._tail for part in line.split() if part.startswith("RIP=")), "")
            where = f" at {rip}" if rip else ""
            return f"{self.label} said {self.fatal_line!r}{where}; nvct killed it (the guest could not go on)"
        reason = self._last_words() if self._last_words is not None else None
        return f"{text} ({reason})" if reason else text
