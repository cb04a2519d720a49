"""A console read by polling a remote file (or stream) that only grows.

The ESXi and Hyper-V backends cannot hold a pipe to the guest's serial
port: the serial output lands in a file on the remote host, and the
harness asks "what is there after byte N?" every `interval` seconds. This
module turns that question into the Console interface the runner reads:
`readline(timeout)`, `tail()`, `close()`, `describe_end()`, `facts`.

The backend supplies `fetch(offset) -> Chunk`: the bytes after `offset`
(possibly none), and whether the source has ended (the VM is off, or the
host asked a question that stops it), with a reason. A fetch that fails for
a reason that may pass (a network hiccup) raises `FetchError`; after
`max_errors` of those in a row the console ends, saying why.
"""

from __future__ import annotations

import collections
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .base import Backend, BackendUnavailable, BootFailed, LevelUnavailable, Payload
from .console import ConsoleTimeout


class FetchError(Exception):
    """A fetch failed in a way that may pass; the console tries again."""


@dataclass(frozen=True)
class Chunk:
    data: bytes = b""
    ended: bool = False  # nothing more will come (the VM is off)
    why: str | None = None  # how it ended, in the hypervisor's words


class PolledConsole:
    def __init__(
        self,
        fetch: Callable[[int], Chunk],
        label: str,
        interval: float = 1.0,
        max_errors: int = 5,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self._fetch = fetch
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
        self._tail.append(f"[{self.label}] {text}")

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
        self._why = why

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


# ---- remote hosts: credentials, and keeping them out of messages ---------------------

ENV_NAME = r"[A-Za-z_][A-Za-z0-9_]*"


class Secret:
    """A password or session token: never shown by str() or repr()."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass(frozen=True)
class Credentials:
    user: str
    password: Secret
    source: str  # where the password came from: "environment variable X", "keyring service Y"


class CredentialsMissing(Exception):
    pass


def resolve_credentials(
    user_env: str, password_env: str, keyring_service: str, environ: dict[str, str] | None = None
) -> Credentials:
    """The user from the environment variable `user_env`; the password from
    `password_env`, or else from the keyring service `keyring_service` (the
    `keyring` package) under that user. Never from a profile."""
    import os

    env = os.environ if environ is None else environ
    user = env.get(user_env, "")
    if not user:
        raise CredentialsMissing(f"set the environment variable {user_env} to the user name")
    password = env.get(password_env, "")
    if password:
        return Credentials(user, Secret(password), f"environment variable {password_env}")
    if keyring_service:
        try:
            import keyring  # type: ignore[import-not-found]
        except ImportError:
            raise CredentialsMissing(
                f"{password_env} is not set and keyring_service {keyring_service!r} needs the keyring package "
                "(pip install nvct[keyring])"
            ) from None
        try:
            stored = keyring.get_password(keyring_service, user)
        except Exception as exc:  # a keyring backend's own failure (locked, absent)
            raise CredentialsMissing(f"keyring service {keyring_service!r}: {type(exc).__name__}") from None
        if stored:
            return Credentials(user, Secret(stored), f"keyring service {keyring_service}")
        raise CredentialsMissing(f"{password_env} is not set and the keyring service {keyring_service!r} "
                                 f"holds no password for {user}")  # fmt: skip
    raise CredentialsMissing(f"set the environment variable {password_env} to the password "
                             "(or name a keyring_service in the profile)")  # fmt: skip


def scrub(text: str, secrets: list[Secret | str | None]) -> str:
    """`text` with every secret replaced by ***."""
    for secret in secrets:
        value = secret.reveal() if isinstance(secret, Secret) else secret
        if value:
            text = text.replace(value, "***")
    return text


# ---- the boot ISO, for backends that boot firmware from a CD/DVD ------------------------


def iso_supports(firmware: str) -> bool:
    """Whether guest.make_iso makes an ISO that this firmware boots: every
    ISO boots BIOS; UEFI needs the hybrid BIOS+UEFI ISO (GRUB's x86_64-efi
    platform among guest.GRUB_PLATFORMS, or a `firmware` argument)."""
    import inspect

    from .. import guest

    if firmware == "bios" or "firmware" in inspect.signature(guest.make_iso).parameters:
        return True
    return any(entry[0] == "x86_64-efi" for entry in getattr(guest, "GRUB_PLATFORMS", ()))


def make_boot_iso(kernel, cmdline: str, dest, firmware: str):
    """The probe kernel on an ISO for `firmware` (bios or efi)."""
    from ..guest import BuildError, GuestImage, make_iso
    from .base import BootFailed

    import inspect

    kwargs = {"firmware": firmware} if "firmware" in inspect.signature(make_iso).parameters else {}
    try:
        return make_iso(GuestImage(kernel), cmdline, dest, **kwargs)
    except BuildError as exc:
        raise BootFailed(f"cannot make the boot ISO: {exc}") from None


class RemoteVmBackend(Backend):
    """A hypervisor on another machine that boots the probe kernel from an
    ISO in a VM it creates for the boot (ESXi, Hyper-V). A subclass gives
    `_new_boot(name)`: an object with `step` (what it is doing, for
    messages), `start(iso)` (create and power on the VM; its console) and
    `clean_up()` (undo whatever was done, every time); `_say()` (scrub
    secrets from a message) and, optionally, `_fault_text()`."""

    problems: list[str]  # pre-flight findings that make the level unable to nest

    def _new_boot(self, name: str) -> Any:
        raise NotImplementedError

    def _say(self, text: str) -> str:
        raise NotImplementedError

    def _fault_text(self, exc: BaseException) -> str:
        return str(exc)

    @contextmanager
    def boot_payload(self, payload: Payload, workdir: Path) -> Iterator[PolledConsole]:
        if not payload.probe:
            raise BackendUnavailable(f"{self.name} boots only the probe kernel, not an appliance")
        if self.problems:
            raise LevelUnavailable("; ".join(self.problems))
        iso = make_boot_iso(payload.kernel, payload.append, workdir / "nvct.iso", self.settings.firmware)
        boot = self._new_boot(f"nvct-{secrets.token_hex(4)}")
        where = f"{self.name} {self.settings.host}"
        try:
            try:
                console = boot.start(iso)
            except (LevelUnavailable, BootFailed):
                raise
            except BackendUnavailable as exc:  # the host went away between the pre-flight check and now
                raise BootFailed(f"{where}: {boot.step}: {exc}") from None
            except Exception as exc:
                raise BootFailed(self._say(f"{where}: {boot.step} failed: "
                                           f"{type(exc).__name__}: {self._fault_text(exc)}")) from None  # fmt: skip
            yield console
        finally:
            boot.clean_up()
