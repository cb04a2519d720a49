"""A console read by polling a remote file (or stream) that only grows.

The ESXi and Hyper-V backends cannot hold a pipe to the guest's serial
port: the serial output lands in a file on the remote host, and the
harness asks "what is there after byte N?" every `interval` seconds. This
module turns that question into the Console interface the runner reads:
`readline(timeout)`, `tail()`, `close()`, `describe_end()`, `facts`.

The backend supplies `fetch(offset) -> PolledChunk`: the bytes after `offset`
(possibly none), and whether the source has ended (the VM is off, or the
host asked a question that stops it), with a reason. A fetch that fails for
a reason that may pass (a network hiccup) raises `FetchError`; after
`max_errors` of those in a row the console ends, saying why.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import ConsoleTimeout


class FetchError(Exception):
    """A fetch failed in a way that may pass; the console tries again."""


@dataclass(frozen=True)
class PolledChunk:
    data: bytes = b""
    ended: bool = False  # nothing more will come (the VM is off)
    why: str | None = None  # how it ended, in the hypervisor's words


class PolledConsole:
    def __init__(
        self,
        fetch: Callable[[int], PolledChunk],
        label: str,
        interval: float = 1.0,
        max_errors: int = 5,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        say: Callable[[str], str] = lambda text: text,
    ):
        self._fetch = fetch
        self._say = say  # the backend's scrubbing, for its messages (never for the guest's output)
        self.label = label
        self.interval = interval
        self.max_errors = max_errors
        self._clock, self._sleep = clock, sleep
        self.offset = 0  # bytes of the remote file read so far
        self._partial = bytearray()
        self._lines: collections.deque[str] = collections.deque()
        self._tail: collections.deque[str] = collections.deque(maxlen=60)
        self._notes: list[str] = []  # the backend's own messages, for excerpts
        self._errors = 0
        self._ended = False
        self._closed = False
        self._killed = False
        self._why: str | None = None
        self.facts: dict[str, Any] = {}

    # -- reading ----------------------------------------------------------------

    def _take(self, data: bytes, final: bool = False) -> None:
        self._partial += data
        while True:
            cut = self._partial.find(b"\n")
            if cut < 0:
                break
            self._emit(bytes(self._partial[:cut]))
            del self._partial[: cut + 1]
        if final and self._partial:
            self._emit(bytes(self._partial))
            self._partial.clear()

    def _emit(self, raw: bytes) -> None:
        line = raw.decode("latin-1").rstrip("\r")
        self._lines.append(line)
        self._tail.append(line)

    def note(self, text: str) -> None:
        """A message of the backend's own (not serial output), for excerpts."""
        self._tail.append(self._say(f"[{self.label}] {text}"))

    def _poll(self) -> None:
        try:
            chunk = self._fetch(self.offset)
        except FetchError as exc:
            self._errors += 1
            self.note(f"fetching the serial output failed ({self._errors}/{self.max_errors}): {exc}")
            if self._errors >= self.max_errors:
                self._end(f"{self.label}: lost contact with the host ({exc})")
            return
        self._errors = 0
        if chunk.data:
            self.offset += len(chunk.data)
            self._take(chunk.data)
        if chunk.ended:
            self._end(chunk.why or f"{self.label}: the VM stopped")

    def _end(self, why: str) -> None:
        self._take(b"", final=True)
        self._ended = True
        self._why = self._say(why)

    def readline(self, timeout: float) -> str | None:
        """The next serial line; None once the source has ended and every
        line is read. Raises ConsoleTimeout after `timeout` seconds."""
        deadline = self._clock() + max(timeout, 0.0)
        while not self._lines:
            if self._ended or self._closed or self._killed:
                return None
            self._poll()
            if self._lines or self._ended:
                continue
            left = deadline - self._clock()
            if left <= 0:
                raise ConsoleTimeout()
            self._sleep(min(self.interval, left))
        return self._lines.popleft()

    def send(self, text: str) -> None:
        raise NotImplementedError(f"{self.label}: this console is read from a file and cannot be written to")

    # -- excerpts and the end ---------------------------------------------------------

    def tail(self, count: int = 30) -> list[str]:
        return list(self._tail)[-count:]

    def close(self, grace: float = 5.0) -> None:
        """Stop reading, after one last fetch for the excerpt. The VM halts
        after END and never stops by itself: waiting `grace` seconds would
        only cost time, so the backend's context manager powers it off."""
        if not self._ended and not self._closed:
            self._poll()
            self._take(b"", final=True)
        self._closed = True

    def kill(self) -> None:
        """Stop reading now, from any thread (an interrupted run): readline
        returns None within one poll interval. The VM itself goes when the
        backend's context exits."""
        self._killed = True
        self._why = self._why or f"{self.label}: reading stopped (interrupted)"

    @property
    def ended(self) -> bool:
        return self._ended

    def describe_end(self) -> str:
        if self._why is not None:
            return self._why
        return f"{self.label} still running" if not self._closed else f"{self.label}: reading stopped"
