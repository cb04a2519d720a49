"""QEMU, with TCG (the reference model for SVM) or KVM.

The probe kernel boots with `-kernel` (QEMU's own multiboot loader, under
SeaBIOS: the fastest) by default. `firmware: efi` boots it under OVMF from
the hybrid GRUB ISO instead, and `boot: iso` boots the same ISO through
SeaBIOS, so that both firmware paths are proven on one image.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pexpect

from ..core.kernel import BuildError, GuestImage
from .base import Backend, BackendUnavailable, BootFailed, Payload, require_binary
from .media import check_iso_tools, make_iso
from .transports.pty import PtyConsole

# Debian 12's `ovmf` package: the 4 MiB flash layout, the one its QEMU's
# firmware descriptors name (OVMF_CODE.fd and OVMF_VARS.fd are the older
# 2 MiB build; .ms/.secboot/.snakeoil are Secure Boot variants). CODE is
# mapped read-only; VARS, the variable store, is copied into the boot's
# workdir because the firmware writes it.
OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd"
OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd"

# Where the probe kernel may print (QemuSettings.console).
CONSOLES = ("serial", "virtio")

# A virtio serial port at port 1 on the chardev `con` (guests/lib/virtcon.c).
# A port, not a `virtconsole`: QEMU drops what a console port's chardev
# cannot take at once, and throttles a serial port's queue instead.
VIRTIO_PORT = ("-device", "virtio-serial-pci,max_ports=2", "-device", "virtserialport,chardev=con,nr=1")


@dataclass(frozen=True)
class QemuSettings:
    accel: str = "tcg"  # tcg or kvm
    cpu: str = "max"  # -cpu MODEL[,+feature,-feature]
    memory: int = 128  # MiB
    smp: int = 1
    binary: str = "qemu-system-x86_64"
    args: tuple[str, ...] = ()  # extra arguments, one argv element each
    firmware: str = "bios"  # bios (SeaBIOS) or efi (OVMF)
    boot: str = ""  # kernel (-kernel) or iso (the hybrid GRUB ISO on a CD-ROM); "": kernel under bios, iso under efi
    ovmf_code: str = OVMF_CODE  # firmware: efi only
    ovmf_vars: str = OVMF_VARS  # the template of the variable store, copied for each boot
    # Where the probe kernel prints: `serial` (COM1: under TCG a port write
    # is cheap) or `virtio`, a virtio serial port beside COM1 on the same
    # line (guests/lib/virtcon.c; what linux-kvm offers at deeper levels).
    console: str = "serial"

    def validate(self) -> tuple[str, str] | None:
        if self.accel not in ("tcg", "kvm"):
            return "accel", f"must be tcg or kvm, not {self.accel!r}"
        if self.firmware not in ("bios", "efi"):
            return "firmware", f"must be bios or efi, not {self.firmware!r}"
        if self.boot not in ("", "kernel", "iso"):
            return "boot", f"must be kernel or iso, not {self.boot!r}"
        if self.firmware == "efi" and self.boot == "kernel":
            return "boot", "firmware efi boots the probe kernel from the ISO (boot: iso): OVMF has no multiboot loader"
        if self.console not in CONSOLES:
            return "console", f"must be serial or virtio, not {self.console!r}"
        if not 16 <= self.memory <= 65536:
            return "memory", "must be 16 to 65536 (MiB)"
        if not 1 <= self.smp <= 64:
            return "smp", "must be 1 to 64"
        return None

    @property
    def boot_from(self) -> str:
        """kernel or iso: what `boot` says, else the firmware's default."""
        return self.boot or ("iso" if self.firmware == "efi" else "kernel")


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
        if self.settings.firmware == "efi":
            for path in (self.settings.ovmf_code, self.settings.ovmf_vars):
                if not os.path.isfile(path):
                    raise BackendUnavailable(f"firmware efi needs {path} (Debian package ovmf)")
        if self.settings.boot_from == "iso":
            try:
                check_iso_tools()
            except BuildError as exc:
                raise BackendUnavailable(str(exc)) from None

    def version(self) -> str:
        return qemu_version(self.settings.binary)

    def settings_dict(self) -> dict:
        """The settings as they act: `boot` resolved, the OVMF files only under efi."""
        settings = {**super().settings_dict(), "boot": self.settings.boot_from}
        if self.settings.firmware != "efi":
            del settings["ovmf_code"], settings["ovmf_vars"]
        return settings

    def argv(self, payload: Payload, initrd: Path | None = None, iso: Path | None = None,
             ovmf_vars: Path | None = None) -> list[str]:  # fmt: skip
        """The command line; `iso` boots the probe kernel from a CD-ROM
        instead of -kernel, `ovmf_vars` (the boot's copy) selects OVMF."""
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
        ]  # fmt: skip
        if payload.probe and s.console == "virtio":
            # COM1 and the port on one line (a mux without the monitor).
            argv += ["-chardev", "stdio,id=con,mux=on,signal=off", "-serial", "chardev:con", *VIRTIO_PORT]
        else:
            argv += ["-serial", "stdio"]
        if ovmf_vars is not None:
            argv += [
                "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={_opt(s.ovmf_code)}",
                "-drive", f"if=pflash,format=raw,unit=1,file={_opt(str(ovmf_vars))}",
            ]  # fmt: skip
        if iso is not None:
            # What -cdrom does (the secondary IDE master), with the path escaped.
            argv += ["-drive", f"if=ide,index=2,media=cdrom,format=raw,readonly=on,file={_opt(str(iso))}",
                     "-boot", "order=d"]  # fmt: skip
        else:
            argv += ["-kernel", str(payload.kernel), "-append", payload.append]
        if payload.probe:
            argv += ["-device", "isa-debug-exit,iobase=0xf4,iosize=4"]
        if initrd is not None:
            argv += ["-initrd", str(initrd)]
        if payload.modules:
            argv += ["-initrd", multiboot_modules(payload.modules)]
        return argv + list(s.args)

    @contextmanager
    def boot_payload(self, payload: Payload, workdir: Path) -> Iterator[PtyConsole]:
        s = self.settings
        iso = ovmf_vars = None
        if (s.firmware, s.boot_from) != ("bios", "kernel"):
            if not payload.probe:
                raise BootFailed(f"firmware {s.firmware} with boot {s.boot_from} boots the probe kernel only; "
                                 "the appliance boots with -kernel under SeaBIOS (firmware: bios)")  # fmt: skip
            try:
                iso = make_iso(GuestImage(payload.kernel), payload.append, workdir / "nvct.iso")
            except BuildError as exc:
                raise BootFailed(str(exc)) from None
            if s.firmware == "efi":
                ovmf_vars = workdir / "OVMF_VARS.fd"
                shutil.copyfile(s.ovmf_vars, ovmf_vars)
        initrd = concatenate(payload.initrds, workdir / "initrd.cpio") if payload.initrds else None
        argv = self.argv(payload, initrd, iso, ovmf_vars)
        child = pexpect.spawn(argv[0], argv[1:], cwd=str(workdir), echo=False, env=os.environ.copy())
        console = PtyConsole(child, label="qemu", fatal=QEMU_FATAL)
        try:
            yield console
        finally:
            console.close()


# What QEMU prints when KVM cannot run the guest any more; QEMU then keeps
# the VM paused instead of exiting (seen here: this machine's KVM cannot
# emulate the LOCK CMPXCHG16B of a Linux guest with -cpu host, "KVM internal
# error. Suberror: 1", emulation failure), so the boot would only end at its
# timeout.
QEMU_FATAL = re.compile(r"^KVM internal error\.|^KVM: entry failed|^error: kvm run failed")


def multiboot_modules(modules: tuple[tuple[Path, str], ...]) -> str:
    """QEMU's -initrd for a multiboot kernel: `FILE ARGS` per module,
    comma-separated, a comma inside doubled. QEMU ends the file name at the
    first space, so a path with one cannot be a module."""
    parts = []
    for path, args in modules:
        if any(c.isspace() for c in str(path)):
            raise BootFailed(f"a multiboot module's path cannot contain white space: {path}")
        parts.append(f"{path} {args}".rstrip().replace(",", ",,"))
    return ",".join(parts)


def _opt(value: str) -> str:
    """A value inside a QEMU option list: a comma is written twice."""
    return value.replace(",", ",,")


def concatenate(parts: tuple[Path, ...], dest: Path) -> Path:
    """One initramfs from several cpio archives (Linux unpacks them in turn)."""
    if len(parts) == 1:
        return parts[0]
    with open(dest, "wb") as out:
        for part in parts:
            with open(part, "rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
    return dest
