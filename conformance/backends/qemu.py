"""QEMU, with TCG (the reference model for SVM) or KVM."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pexpect

from .base import Backend, BackendUnavailable, Payload, require_binary
from .console import Console


@dataclass(frozen=True)
class QemuSettings:
    accel: str = "tcg"  # tcg or kvm
    cpu: str = "max"  # -cpu MODEL[,+feature,-feature]
    memory: int = 128  # MiB
    smp: int = 1
    binary: str = "qemu-system-x86_64"
    args: tuple[str, ...] = ()  # extra arguments, one argv element each

    def validate(self) -> tuple[str, str] | None:
        if self.accel not in ("tcg", "kvm"):
            return "accel", f"must be tcg or kvm, not {self.accel!r}"
        if not 16 <= self.memory <= 65536:
            return "memory", "must be 16 to 65536 (MiB)"
        if not 1 <= self.smp <= 64:
            return "smp", "must be 1 to 64"
        return None


@functools.lru_cache(maxsize=8)
def qemu_version(binary: str) -> str:
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unknown ({exc})"
    first = out.splitlines()[0] if out else "unknown"
    return first.replace("QEMU emulator version ", "")


class QemuBackend(Backend):
    name = "qemu"
    Settings = QemuSettings

    def preflight(self) -> None:
        require_binary(self.settings.binary, "qemu-system-x86")
        if self.settings.accel == "kvm":
            if not os.path.exists("/dev/kvm"):
                raise BackendUnavailable("accel kvm needs /dev/kvm, which this machine does not have")
            if not os.access("/dev/kvm", os.R_OK | os.W_OK):
                raise BackendUnavailable("accel kvm needs read and write access to /dev/kvm")

    def version(self) -> str:
        return qemu_version(self.settings.binary)

    def argv(self, payload: Payload, initrd: Path | None = None) -> list[str]:
        s = self.settings
        argv = [
            s.binary,
            "-accel", s.accel,
            "-cpu", s.cpu,
            "-m", str(s.memory),
            "-smp", str(s.smp),
            "-nodefaults",
            "-display", "none",
            "-no-reboot",  # a triple fault ends the boot instead of looping
            "-serial", "stdio",
            "-kernel", str(payload.kernel),
            "-append", payload.append,
        ]  # fmt: skip
        if payload.probe:
            argv += ["-device", "isa-debug-exit,iobase=0xf4,iosize=4"]
        if initrd is not None:
            argv += ["-initrd", str(initrd)]
        return argv + list(s.args)

    @contextmanager
    def boot_payload(self, payload: Payload, workdir: Path) -> Iterator[Console]:
        initrd = concatenate(payload.initrds, workdir / "initrd.cpio") if payload.initrds else None
        argv = self.argv(payload, initrd)
        child = pexpect.spawn(argv[0], argv[1:], cwd=str(workdir), echo=False, env=os.environ.copy())
        console = Console(child, label="qemu")
        try:
            yield console
        finally:
            console.close()


def concatenate(parts: tuple[Path, ...], dest: Path) -> Path:
    """One initramfs from several cpio archives (Linux unpacks them in turn)."""
    if len(parts) == 1:
        return parts[0]
    with open(dest, "wb") as out:
        for part in parts:
            with open(part, "rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
    return dest
