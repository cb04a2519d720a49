"""What every backend provides: start the probe kernel at a level and hand
back its console. A backend knows nothing of records, results or reports."""

from __future__ import annotations

import dataclasses
import shutil
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, ClassVar

from ..guest import GuestImage
from .console import Console


class BackendUnavailable(Exception):
    """The backend cannot run on this machine (a binary or device is missing)."""


class Backend(ABC):
    name: ClassVar[str]
    Settings: ClassVar[type]  # a dataclass: the profile keys of this backend
    nestable: ClassVar[bool] = False  # can run above L0, inside an appliance

    def __init__(self, settings: Any, level: int):
        self.settings = settings
        self.level = level  # the level the hypervisor runs at; the kernel runs at level + 1

    def settings_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self.settings)

    @abstractmethod
    def preflight(self) -> None:
        """Raise BackendUnavailable if this machine cannot run the backend."""

    @abstractmethod
    def version(self) -> str:
        """The hypervisor's own version string."""

    def describe(self) -> dict[str, Any]:
        """The hypervisor facts for the run record."""
        return {"backend": self.name, "version": self.version(), "settings": self.settings_dict()}

    @abstractmethod
    def boot(self, image: GuestImage, cmdline: str, workdir: Path) -> AbstractContextManager[Console]:
        """Start the kernel with this command line; the console until it ends.

        `workdir` is a private, empty folder for this boot. Leaving the
        context stops whatever the boot started.
        """


def require_binary(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BackendUnavailable(f"{name} not found on PATH (Debian package {package})")
    return path
