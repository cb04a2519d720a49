"""Bochs, the reference model for VMX (and a second one for SVM).

Bochs boots only through its BIOS, so the kernel goes on a GRUB ISO. Its
COM1 writes to a FIFO that the harness reads; the debugger build Debian
ships needs `-rc` with `c` to start running, and the `term` display needs
a pseudo-terminal, which pexpect gives it.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pexpect

from ..guest import BuildError, GuestImage, make_iso
from .base import Backend, BackendUnavailable, BootFailed, Payload, require_binary
from .console import Console

BIOS = "/usr/share/bochs/BIOS-bochs-latest"
VGABIOS = "/usr/share/vgabios/vgabios.bin"
PLUGINS = "/usr/lib/x86_64-linux-gnu/bochs/plugins"


@dataclass(frozen=True)
class BochsSettings:
    cpu_model: str = "corei7_skylake_x"  # `cpu: model=`; `bochs -help cpu` lists them
    memory: int = 128  # MiB
    ips: int = 50_000_000  # instructions per emulated second
    binary: str = "bochs"
    bios: str = BIOS
    vgabios: str = VGABIOS
    options: tuple[str, ...] = ()  # extra bochsrc lines

    def validate(self) -> tuple[str, str] | None:
        if not re.fullmatch(r"[a-z0-9_]+", self.cpu_model):
            return "cpu_model", f"not a Bochs CPU model name: {self.cpu_model!r}"
        if not 16 <= self.memory <= 2048:
            return "memory", "must be 16 to 2048 (MiB)"
        if not 1_000_000 <= self.ips <= 4_000_000_000:
            return "ips", "must be 1000000 to 4000000000"
        for key in ("bios", "vgabios"):
            # A bochsrc value ends at a comma or white space, and Bochs has no escape for either.
            bad = [c for c in getattr(self, key) if c.isspace() or c in ',"#' or not c.isprintable()]
            if bad:
                return key, f"{bad[0]!r} cannot be written in a bochsrc file name"
        for line in self.options:
            if not line.isprintable():
                return "options", "one bochsrc line per list item, printable text only"
        return None


@functools.lru_cache(maxsize=4)
def bochs_version(binary: str) -> str:
    try:
        out = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unknown ({exc})"
    match = re.search(r"Bochs x86 Emulator (\S+)", out.stdout + out.stderr)
    return match.group(1) if match else "unknown"


class BochsBackend(Backend):
    name = "bochs"
    Settings = BochsSettings

    def preflight(self) -> None:
        require_binary(self.settings.binary, "bochs")
        for path, package in ((self.settings.bios, "bochsbios"), (self.settings.vgabios, "vgabios")):
            if not os.path.isfile(path):
                raise BackendUnavailable(f"{path} not found (Debian package {package})")
        if os.path.isdir(PLUGINS) and not any(n.startswith("libbx_term") for n in os.listdir(PLUGINS)):
            raise BackendUnavailable("Bochs's terminal display is missing (Debian package bochs-term)")

    def version(self) -> str:
        return bochs_version(self.settings.binary)

    def bochsrc(self, iso: Path, serial: Path, log: Path) -> str:
        """The configuration; the boot's own files are named relative to its
        folder (Bochs runs there), so a TMPDIR with a space or a comma in it,
        which Bochs would split the option at, never reaches the file."""
        s = self.settings
        lines = [
            f"megs: {s.memory}",
            f"cpu: model={s.cpu_model}, count=1, ips={s.ips}, reset_on_triple_fault=0",
            f"romimage: file={s.bios}",
            f"vgaromimage: file={s.vgabios}",
            f"ata0-master: type=cdrom, path={iso}, status=inserted",
            "boot: cdrom",
            f"com1: enabled=1, mode=file, dev={serial}",
            "clock: sync=none, time0=local",
            "display_library: term",
            f"log: {log}",
            "panic: action=fatal",
            "error: action=report",
            "mouse: enabled=0",
            "speaker: enabled=0",
            "sound: waveoutdrv=dummy, waveindrv=dummy, midioutdrv=dummy",
            *s.options,
        ]
        return "\n".join(lines) + "\n"

    @contextmanager
    def boot_payload(self, payload: Payload, workdir: Path) -> Iterator[Console]:
        if not payload.probe:
            raise BackendUnavailable("bochs boots only the probe kernel, not an appliance (its COM1 takes no input)")
        try:
            iso = make_iso(GuestImage(payload.kernel), payload.append, workdir / "nvct.iso")
        except BuildError as exc:
            raise BootFailed(str(exc)) from None
        serial = workdir / "com1.fifo"
        os.mkfifo(serial)
        rc = workdir / "bochsrc"
        rc.write_text(self.bochsrc(Path(iso.name), Path(serial.name), Path("bochs.log")))
        commands = workdir / "debugger.rc"
        commands.write_text("c\n")
        # Open our end first, non-blocking, so Bochs's open of the FIFO succeeds.
        fd = os.open(serial, os.O_RDONLY | os.O_NONBLOCK)
        try:
            argv = [self.settings.binary, "-q", "-f", rc.name, "-rc", commands.name]
            child = pexpect.spawn(argv[0], argv[1:], cwd=str(workdir), echo=False, dimensions=(25, 80))
        except (pexpect.ExceptionPexpect, OSError) as exc:
            os.close(fd)
            raise BackendUnavailable(f"cannot start bochs: {exc}") from None
        log = workdir / "bochs.log"
        console = Console(
            child, serial_fd=fd, label="bochs", diagnostics=lambda: _log_excerpt(log), last_words=lambda: _panic(log)
        )
        try:
            yield console
        finally:
            console.close(grace=3.0)


def _log_excerpt(log: Path, count: int = 8) -> list[str]:
    """Bochs says why it stopped (PANIC, triple fault, a failed VM entry) in
    its log: the last lines that matter, for crash excerpts."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return []
    keep = [
        f"[bochs.log] {line.strip()}"
        for line in text.splitlines()[-400:]
        if re.search(r"PANIC|>>|triple fault|shutdown|\be\[", line, re.IGNORECASE)
    ]
    return keep[-count:]


def _panic(log: Path) -> str | None:
    """The last PANIC Bochs logged (a triple fault, an invalid state it
    refuses to emulate), which is why it exited."""
    lines = [ln for ln in _log_excerpt(log, count=50) if ">>PANIC<<" in ln]
    return lines[-1].split(">>PANIC<<", 1)[1].strip() if lines else None
