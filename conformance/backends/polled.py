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

import base64
import collections
import functools
import logging
import re
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
    source: str  # where the password came from: "the environment variable X", "keyring service Y"


class CredentialsMissing(Exception):
    pass


def env_name_problem(key: str, example: str) -> str:
    """What to say of a `*_env` value that is no environment variable name.
    The value is not repeated: it may be the password itself, pasted there."""
    return (f"not a valid environment variable name (the value is not shown, in case it is the password); "
            f"give the NAME of an environment variable (like {example}), never the value itself")  # fmt: skip


def env_label(key: str, name: str, default: str, environ: Any = None) -> str:
    """How a message names the variable a `*_env` key gives: by its name
    when that is the default or is set in the environment (then it is a
    variable's name for certain), else as "the variable that `key` names",
    so that a password pasted as the value of password_env is never
    repeated."""
    import os

    env = os.environ if environ is None else environ
    if name == default or env.get(name):
        return f"the environment variable {name}"
    return f"the environment variable that {key} names"


def resolve_credentials(
    user_env: str, password_env: str, keyring_service: str, environ: dict[str, str] | None = None,
    default_password_env: str = "",
) -> Credentials:
    """The user from the environment variable `user_env`; the password from
    `password_env`, or else from the keyring service `keyring_service` (the
    `keyring` package) under that user. Never from a profile.
    `default_password_env`: the backend's default for password_env, which
    messages repeat even when it is not set (env_label)."""
    import os

    env = os.environ if environ is None else environ
    user_var = f"the environment variable {user_env}"  # a user name is no secret
    password_var = env_label("password_env", password_env, default_password_env, env)
    user = env.get(user_env, "")
    if not user:
        raise CredentialsMissing(f"set {user_var} to the user name")
    password = env.get(password_env, "")
    if password:
        return Credentials(user, Secret(password), password_var)
    if keyring_service:
        try:
            import keyring  # type: ignore[import-not-found]
        except ImportError:
            raise CredentialsMissing(
                f"{password_var} is not set and keyring_service {keyring_service!r} needs the keyring package "
                "(pip install nvct[keyring])"
            ) from None
        try:
            stored = keyring.get_password(keyring_service, user)
        except Exception as exc:  # a keyring backend's own failure (locked, absent)
            raise CredentialsMissing(f"keyring service {keyring_service!r}: {type(exc).__name__}") from None
        if stored:
            return Credentials(user, Secret(stored), f"keyring service {keyring_service}")
        raise CredentialsMissing(f"{password_var} is not set and the keyring service {keyring_service!r} "
                                 f"holds no password for {user}")  # fmt: skip
    raise CredentialsMissing(f"set {password_var} to the password (or name a keyring_service in the profile)")


# What stands for a secret in a message. A secret reaches a message raw, or
# in the form some layer put it in on its way: XML-escaped in a SOAP fault
# (&amp; &lt; &gt; &quot; &apos; or a numeric character reference),
# URL-encoded in a path or query (quote, quote_plus), JSON- or
# Python-escaped in a repr or a JSON error body, base64 in an HTTP Basic
# Authorization header (of "user:secret") or in a blob. scrub() replaces
# each of those forms, and mixtures of them, with MASK.
MASK = "***"
_XML_NAMED = {"&": "amp", "<": "lt", ">": "gt", '"': "quot", "'": "apos"}
_JSON_SHORT = {"\n": "n", "\r": "r", "\t": "t", "\b": "b", "\f": "f"}


def _hex(number: int, width: int = 0) -> str:
    """A regex for `number` in hex, either case, at least `width` digits."""
    return f"(?i:0*{number:0{width}x})" if width == 0 else f"(?i:{number:0{width}x})"


def _char_forms(c: str) -> str:
    """A regex for one character of a secret in any of its escaped forms."""
    code = ord(c)
    forms = []
    # XML/HTML: a named entity, a decimal or hex reference (also once more escaped: &amp;lt;).
    amp = "&(?:amp;)?"
    if c in _XML_NAMED:
        forms.append(f"{amp}{_XML_NAMED[c]};")
    forms.append(f"{amp}#0*{code};")
    forms.append(f"{amp}#[xX]{_hex(code)};")
    # URL: percent-encoded UTF-8 bytes; a space as + (quote_plus).
    forms.append("".join(f"%{_hex(byte, 2)}" for byte in c.encode("utf-8", "surrogatepass")))
    if c == " ":
        forms.append(r"\+")
    # JSON and Python string escapes.
    if code > 0xFFFF:
        high, low = 0xD800 + ((code - 0x10000) >> 10), 0xDC00 + ((code - 0x10000) & 0x3FF)
        forms.append(rf"\\u{_hex(high, 4)}\\u{_hex(low, 4)}")
        forms.append(rf"\\U{_hex(code, 8)}")
    else:
        forms.append(rf"\\u{_hex(code, 4)}")
        if code < 0x100:
            forms.append(rf"\\x{_hex(code, 2)}")
    if c in _JSON_SHORT:
        forms.append(rf"\\{_JSON_SHORT[c]}")
    if not c.isalnum():
        forms.append(rf"\\{re.escape(c)}")  # \" \\ \/ \'
    forms.append(re.escape(c))  # last: an escaped form that starts with the character itself wins
    return "(?:" + "|".join(forms) + ")"


def _base64_forms(data: bytes) -> set[str]:
    """`data` in base64 (standard and URL-safe, with and without padding),
    whole and as the part of a longer base64 text that it fixes whatever
    bytes come before it (at each of the three alignments)."""
    found = set()
    whole = base64.b64encode(data).decode()
    found |= {whole, whole.rstrip("=")}
    for shift in (1, 2):
        encoded = base64.b64encode(bytes(shift) + data).decode()
        start = -(-8 * shift // 6)  # the first character made only of bits of `data`
        end = 8 * (shift + len(data)) // 6
        found.add(encoded[start:end])
    found.add(whole[: 8 * len(data) // 6])
    found = {f for f in found if f == whole or len(f) >= 8}  # short fragments would mask ordinary words
    return found | {f.replace("+", "-").replace("/", "_") for f in found}


@functools.lru_cache(maxsize=64)
def _pattern(value: str, users: tuple[str, ...]) -> re.Pattern[str]:
    raw = value.encode("utf-8", "surrogatepass")
    literals = _base64_forms(raw)
    for user in users:
        whole = base64.b64encode(f"{user}:".encode("utf-8", "surrogatepass") + raw).decode()
        literals |= {whole, whole.rstrip("=")}
    alternatives = sorted(literals, key=len, reverse=True)  # the longest form first
    chars = "".join(_char_forms(c) for c in value)
    return re.compile("|".join([*(re.escape(a) for a in alternatives), chars]))


def scrub(text: str, secrets: list[Secret | str | None], users: list[str] | tuple[str, ...] = ()) -> str:
    """`text` with every secret replaced by MASK: raw, escaped or encoded
    (see above). `users` are the user names the secrets go with, for the
    base64 of "user:secret" (HTTP Basic authentication)."""
    named = tuple(u for u in users if u)
    for secret in secrets:
        value = secret.reveal() if isinstance(secret, Secret) else secret
        if value:
            text = _pattern(value, named).sub(MASK, text)
    return text


def one_line(text: str) -> str:
    """A message as one line of plain text: line breaks and runs of blanks
    become one space, other control characters a visible \\xNN."""
    text = re.sub(r"\s*[\r\n\v\f\x85\u2028\u2029]+\s*", " ", text)
    text = re.sub(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]", lambda m: f"\\x{ord(m.group()):02x}", text)
    return text.replace("\t", " ").strip()


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
    `_preflight()` (connect and look), `_new_boot(name)`: an object with
    `step` (what it is doing, for messages), `start(iso)` (create and power
    on the VM; its console) and `clean_up()` (undo whatever was done, every
    time); optionally `_secrets()` (more than the password: session
    cookies) and `_fault_text()`.

    Whatever the library under the backend raises (its faults, socket and
    HTTP errors, a bug) leaves preflight() as BackendUnavailable and a boot
    as BootFailed, with a message of one line that went through _say()."""

    problems: list[str]  # pre-flight findings that make the level unable to nest
    _credentials: Credentials | None = None
    _HIDDEN_ENV_KEYS = ("password_env",)  # user_env holds no secret: a pasted user name may be repeated

    def _new_boot(self, name: str) -> Any:
        raise NotImplementedError

    def _preflight(self) -> None:
        raise NotImplementedError

    def _fault_text(self, exc: BaseException) -> str:
        return str(exc) or type(exc).__name__

    def _default(self, key: str) -> str:
        return getattr(type(self.settings), key)

    def _hidden_env_values(self) -> list[str]:
        """The `*_env` values that messages and the run record do not repeat:
        those that are neither the default nor a variable set here."""
        import os

        env = os.environ if getattr(self, "environ", None) is None else self.environ  # type: ignore[attr-defined]
        hidden = []
        for key in self._HIDDEN_ENV_KEYS:
            value = getattr(self.settings, key)
            if value and value != self._default(key) and not env.get(value):
                hidden.append(value)
        return hidden

    def _secrets(self) -> list[Any]:
        return [self._credentials.password if self._credentials else None, *self._hidden_env_values()]

    def _say(self, text: str) -> str:
        """`text` fit to show: every secret scrubbed, in every form; one line."""
        found, users = self._secrets(), [self._credentials.user] if self._credentials else []
        return scrub(one_line(scrub(text, found, users)), found, users)

    def settings_dict(self) -> dict[str, Any]:
        settings = super().settings_dict()
        for value in self._hidden_env_values():
            for key in self._HIDDEN_ENV_KEYS:
                if settings.get(key) == value:
                    settings[key] = "(not shown: names no variable set here)"
        return settings

    def preflight(self) -> None:
        try:
            self._preflight()
            found, users = self._secrets(), [self._credentials.user] if self._credentials else []
            facts = getattr(self, "facts", {})
            for key, value in facts.items():  # the host's own strings, bound for the run record
                if isinstance(value, str):
                    facts[key] = scrub(value, found, users)
                elif isinstance(value, list):
                    facts[key] = [scrub(v, found, users) if isinstance(v, str) else v for v in value]
            self.problems = [scrub(p, found, users) for p in self.problems]
        except BackendUnavailable as exc:
            raise BackendUnavailable(self._say(str(exc))) from None
        except Exception as exc:  # the library's faults (an account without System.View), socket errors, bugs
            raise BackendUnavailable(self._say(f"{self.name} {self.settings.host}: the pre-flight check failed: "
                                               f"{type(exc).__name__}: {self._fault_text(exc)}")) from None  # fmt: skip

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
            except LevelUnavailable as exc:
                raise LevelUnavailable(self._say(str(exc))) from None
            except BootFailed as exc:
                raise BootFailed(self._say(str(exc)), [self._say(line) for line in exc.excerpt]) from None
            except BackendUnavailable as exc:  # the host went away between the pre-flight check and now
                raise BootFailed(self._say(f"{where}: {boot.step}: {exc}")) from None
            except Exception as exc:
                raise BootFailed(self._say(f"{where}: {boot.step} failed: "
                                           f"{type(exc).__name__}: {self._fault_text(exc)}")) from None  # fmt: skip
            yield console
        finally:
            try:
                boot.clean_up()
            except Exception as exc:  # clean_up says what it leaves; this is for what it did not foresee
                logging.getLogger(f"nvct.{self.name}").warning("%s", self._say(
                    f"{where}: cleaning up {boot.name} failed: {type(exc).__name__}: {self._fault_text(exc)}; "
                    "check the host for a VM or folder left behind"))  # fmt: skip
