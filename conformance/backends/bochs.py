"""Bochs, the reference model for VMX (and a second one for SVM).

Bochs boots only through its BIOS, so the kernel goes on a GRUB ISO. Its
COM1 writes to a FIFO that the harness reads; the debugger build Debian
ships needs `-rc` with `c` to start running, and the `term` display needs
a pseudo-terminal, which pexpect gives it.

With the debugger on that terminal, the `term` display draws the VGA
screen into a second pseudo-terminal that Bochs opens itself ("Bochs
connected to screen /dev/pts/N"). Nothing reads it unless we do: after
about 21 KB of screen and cursor updates its buffer is full, Bochs blocks
in write() inside its VGA timer, and the whole emulated machine stops
(every level above it, with their watchdogs). `ScreenDrain` reads and
drops that output for as long as Bochs runs. It finds the terminal through
/proc (the `tty-index` of Bochs's /dev/ptmx descriptor) or, on a kernel
that does not show that, through the line Bochs prints when it opens it.
"""

from __future__ import annotations

import functools
import os
import re
import socket
import subprocess
import termios
import threading
import time
import tty
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pexpect

from ..appliances.linux import compressed
from ..core.kernel import BuildError, GuestImage
from .base import Backend, BackendUnavailable, BootFailed, Payload, require_binary
from .media import BootModule, make_iso, make_linux_iso, make_multiboot_iso
from .transports.pty import PtyConsole

BIOS = "/usr/share/bochs/BIOS-bochs-latest"
VGABIOS = "/usr/share/vgabios/vgabios.bin"
PLUGINS = "/usr/lib/x86_64-linux-gnu/bochs/plugins"


def screen_pty(pid: int) -> str | None:
    """The slave of the pseudo-terminal Bochs's display opened (its fd on
    /dev/ptmx, whose tty-index fdinfo gives), or None while there is none."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") != "/dev/ptmx":
                continue
            with open(f"/proc/{pid}/fdinfo/{fd}") as info:
                for line in info:
                    if line.startswith("tty-index:"):
                        return f"/dev/pts/{int(line.split()[1])}"
        except (OSError, ValueError):
            continue
    return None


class ScreenDrain(threading.Thread):
    """Reads and drops what Bochs's `term` display writes, so that Bochs never
    blocks on a full screen (the module's docstring). Ends when Bochs closes
    the screen (EIO) or exits."""

    FIND_FOR = 120.0  # seconds to wait for the display to open its terminal
    SAID = re.compile(r'Bochs connected to screen "(/dev/pts/\d+)"')

    def __init__(self, pid: int) -> None:
        super().__init__(name=f"bochs-screen-{pid}", daemon=True)
        self.pid = pid
        self.path: str | None = None
        self.dropped = 0  # bytes read and dropped
        self._said: str | None = None  # the terminal Bochs named on its own output

    def heard(self, line: str) -> None:
        """A line of Bochs's own output (PtyConsole's `on_output`): the
        fallback for a kernel whose fdinfo has no tty-index."""
        found = self.SAID.search(line)
        if found and self._said is None:
            self._said = found.group(1)

    def _alive(self) -> bool:
        return os.path.exists(f"/proc/{self.pid}")

    def run(self) -> None:
        deadline = time.monotonic() + self.FIND_FOR
        while self.path is None and time.monotonic() < deadline and self._alive():
            self.path = screen_pty(self.pid) or self._said
            if self.path is None:
                time.sleep(0.05)
        if self.path is None:
            return
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOCTTY)
        except OSError:
            return
        try:
            tty.setraw(fd)  # no line discipline: no echo back to Bochs, no waiting for a newline
            # Found late, the terminal already holds a full line buffer with no
            # newline in it, which raw mode alone does not release (the writer
            # stays blocked); discarding the input does.
            termios.tcflush(fd, termios.TCIFLUSH)
        except (OSError, termios.error):
            pass
        try:
            while True:
                try:
                    data = os.read(fd, 65536)
                except InterruptedError:
                    continue
                except OSError:  # EIO: Bochs closed the screen or exited
                    return
                if not data:
                    return
                self.dropped += len(data)
        finally:
            os.close(fd)


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
    levels_side_by_side = False  # each stack is a CPU-bound emulator: one level at a time

    def preflight(self) -> None:
        require_binary(self.settings.binary, "bochs")
        for path, package in ((self.settings.bios, "bochsbios"), (self.settings.vgabios, "vgabios")):
            if not os.path.isfile(path):
                raise BackendUnavailable(f"{path} not found (Debian package {package})")
        if os.path.isdir(PLUGINS) and not any(n.startswith("libbx_term") for n in os.listdir(PLUGINS)):
            raise BackendUnavailable("Bochs's terminal display is missing (Debian package bochs-term)")

    def version(self) -> str:
        return bochs_version(self.settings.binary)

    def bochsrc(self, iso: Path, serial: Path | str, log: Path) -> str:
        """The configuration. `serial` is a FIFO (COM1's output only) or
        `HOST:PORT`, where the harness listens and Bochs connects (COM1 both
        ways). The boot's own files are named relative to its folder (Bochs
        runs there), so a TMPDIR with a space or a comma in it, which Bochs
        would split the option at, never reaches the file."""
        s = self.settings
        com1 = f"mode=socket-client, dev={serial}" if isinstance(serial, str) else f"mode=file, dev={serial}"
        lines = [
            f"megs: {s.memory}",
            f"cpu: model={s.cpu_model}, count=1, ips={s.ips}, reset_on_triple_fault=0",
            f"romimage: file={s.bios}",
            f"vgaromimage: file={s.vgabios}",
            f"ata0-master: type=cdrom, path={iso}, status=inserted",
            "boot: cdrom",
            f"com1: enabled=1, {com1}",
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
    def boot_payload(self, payload: Payload, workdir: Path) -> Iterator[PtyConsole]:
        if not payload.probe:
            with self._boot_linux(payload, workdir) as console:
                yield console
            return
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
        drain = ScreenDrain(child.pid)
        drain.start()
        log = workdir / "bochs.log"
        console = PtyConsole(
            child, serial_fd=fd, label="bochs", diagnostics=lambda: _log_excerpt(log), last_words=lambda: _panic(log),
            on_output=drain.heard,
        )  # fmt: skip
        try:
            yield console
        finally:
            console.close(grace=3.0)

    def _appliance_iso(self, payload: Payload, workdir: Path) -> Path:
        """The GRUB ISO of an appliance: Linux with its initrds, or a
        multiboot kernel (Xen) with its modules. Files above GZIP_ABOVE go
        gzip'd; a gzip'd module is handed over as it is (`--nounzip`): its
        consumers (Xen for dom0's kernel, Linux for an initramfs) unpack it
        faster than GRUB reads the bytes saved."""
        if payload.modules:
            modules = []
            for path, args in payload.modules:
                big = path.stat().st_size > GZIP_ABOVE
                modules.append(BootModule(compressed(path) if big else path, args, nounzip=big))
            return make_multiboot_iso(payload.kernel, payload.append, tuple(modules), workdir / "multiboot.iso")
        initrds = tuple(compressed(i) if i.stat().st_size > GZIP_ABOVE else i for i in payload.initrds)
        return make_linux_iso(payload.bzimage or payload.kernel, payload.append, initrds, workdir / "linux.iso")

    @contextmanager
    def _boot_linux(self, payload: Payload, workdir: Path) -> Iterator[PtyConsole]:
        """An appliance (Linux, or Xen with its dom0, the hypervisor of the
        next level) from a GRUB ISO. COM1 is a TCP connection to the
        harness, so that the appliance's command loop can be typed into.
        Every byte GRUB reads goes through the emulated BIOS (6 to 8 MB/s
        here), so large initrds travel gzip-compressed."""
        try:
            iso = self._appliance_iso(payload, workdir)
        except BuildError as exc:
            raise BootFailed(f"cannot make the appliance ISO: {exc}") from None
        except OSError as exc:  # compressing an initrd or a module: a full disk
            raise BootFailed(f"cannot make the appliance ISO in {workdir}: {exc.strerror or exc}") from None
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(1)
            host, port = listener.getsockname()
            rc = workdir / "bochsrc"
            rc.write_text(self.bochsrc(Path(iso.name), f"{host}:{port}", Path("bochs.log")))
            (workdir / "debugger.rc").write_text("c\n")
            argv = [self.settings.binary, "-q", "-f", rc.name, "-rc", "debugger.rc"]
            try:
                child = pexpect.spawn(argv[0], argv[1:], cwd=str(workdir), echo=False, dimensions=(25, 80))
            except (pexpect.ExceptionPexpect, OSError) as exc:
                raise BackendUnavailable(f"cannot start bochs: {exc}") from None
            drain = ScreenDrain(child.pid)
            drain.start()
            # Bochs connects while it sets up its devices, before the BIOS runs.
            listener.settimeout(CONNECT_TIMEOUT)
            try:
                conn, _ = listener.accept()
            except OSError:
                log = workdir / "bochs.log"
                child.close(force=True)
                raise BootFailed(f"bochs did not connect its COM1 to {host}:{port} within {CONNECT_TIMEOUT:g} s",
                                 _log_excerpt(log)) from None  # fmt: skip
        conn.setblocking(False)
        log = workdir / "bochs.log"
        console = PtyConsole(child, serial_fd=conn.detach(), label="bochs", diagnostics=lambda: _log_excerpt(log),
                          last_words=lambda: _panic(log), serial_writable=True, on_output=drain.heard)  # fmt: skip
        try:
            yield console
        finally:
            console.close(grace=3.0)


# Initrds larger than this travel gzip-compressed (the appliance's 54 MiB
# initramfs becomes 19 MiB, some 5 s less of GRUB reading through the BIOS).
GZIP_ABOVE = 4 << 20
CONNECT_TIMEOUT = 30.0


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
