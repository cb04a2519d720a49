"""The base of backends whose hypervisor runs on another machine (ESXi,
Hyper-V): the probe kernel goes there on a boot ISO, the serial output
comes back through a PolledConsole, and every message is scrubbed of the
credentials (secrets.py)."""

from __future__ import annotations

import logging
import secrets
from abc import abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .base import Backend, BackendUnavailable, BootFailed, LevelUnavailable, Payload
from .media import make_boot_iso
from .secrets import Credentials, flatten, scrub
from .transports.polled import PolledConsole


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

    @abstractmethod
    def _new_boot(self, name: str) -> Any:
        """The object that drives one boot (see the class's docstring)."""

    @abstractmethod
    def _preflight(self) -> None:
        """Connect to the host and look: fill `problems` (and `facts`), or raise BackendUnavailable."""

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
        return scrub(flatten(scrub(text, found, users)), found, users)

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
