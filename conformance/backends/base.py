"""What every backend provides: start the probe kernel at a level and hand
back its console. A backend knows nothing of records, results or reports."""

from __future__ import annotations

import dataclasses
import shutil
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ..core.kernel import GuestImage
from .transports import Console


class BackendUnavailable(Exception):
    """The backend cannot run on this machine (a binary or device is missing)."""


class LevelUnavailable(Exception):
    """The hypervisor at this level cannot offer what the next level needs
    (KVM refuses to load: the level below exposes no VMX or SVM). The probes
    of the level above SKIP with this reason."""


class BootFailed(Exception):
    """The level could not be brought up (an appliance that did not boot, a
    command that failed). The probes of the level above CRASH with this."""

    def __init__(self, message: str, excerpt: list[str] | None = None):
        super().__init__(message)
        self.excerpt = excerpt or []


@dataclass(frozen=True)
class Payload:
    """What a hypervisor is asked to boot: the probe kernel, or a Linux
    appliance that is a hypervisor for the next level."""

    kernel: Path
    append: str
    initrds: tuple[Path, ...] = ()
    probe: bool = True  # the probe kernel (exit device, small memory) or Linux
    # Multiboot modules, (file, arguments) each: what Xen boots with (dom0's
    # kernel and initramfs). Instead of initrds, never with them.
    modules: tuple[tuple[Path, str], ...] = ()
    # The same Linux kernel as a bzImage, for a level whose boot loader cannot
    # load `kernel` (an ELF vmlinux): GRUB's `linux` command under Bochs.
    bzimage: Path | None = None

    @classmethod
    def probe_kernel(cls, image: GuestImage, cmdline: str) -> Payload:
        return cls(kernel=image.elf, append=cmdline)


class Backend(ABC):
    name: ClassVar[str]
    Settings: ClassVar[type]  # a dataclass: the profile keys of this backend
    nestable: ClassVar[bool] = False  # can run above L0, inside an appliance
    levels_side_by_side: ClassVar[bool] = True  # as L0: may the levels of a run boot at once

    def __init__(self, settings: Any, level: int):
        self.settings = settings
        self.level = level  # the level the hypervisor runs at; the kernel runs at level + 1

    @classmethod
    def placement_error(cls, settings: Any, index: int) -> str | None:
        """Why this backend with these settings cannot be the hypervisor of
        stack entry `index` (0: L0), or None."""
        if index > 0 and not cls.nestable:
            return f"runs only as L0, not at level {index}"
        if index == 0 and cls.nestable:
            return "runs above another level, not as L0"
        return None

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

    def boot(self, image: GuestImage, cmdline: str, workdir: Path) -> AbstractContextManager[Console]:
        """Start the probe kernel with this command line; its console.

        `workdir` is a private, empty folder for this boot. Leaving the
        context stops whatever the boot started.
        """
        return self.boot_payload(Payload.probe_kernel(image, cmdline), workdir)

    @abstractmethod
    def boot_payload(self, payload: Payload, workdir: Path) -> AbstractContextManager[Console]:
        """Start a payload (the probe kernel or an appliance); its console."""

    def release(self) -> None:  # noqa: B027 (a no-op unless a backend keeps something running)
        """Stop whatever this backend keeps running between boots (an
        appliance kept for the next boot); the run calls it at its end."""


def require_binary(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BackendUnavailable(f"{name} not found on PATH (Debian package {package})")
    return path
