"""The probe kernel image: building it and packing it for firmware boots."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .catalog import Probe, load_catalog


class BuildError(Exception):
    pass


def guests_dir() -> Path:
    """The probe kernel's sources: $NVCT_GUESTS, else guests/ of this checkout."""
    env = os.environ.get("NVCT_GUESTS")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "guests"


@dataclass(frozen=True)
class GuestImage:
    elf: Path  # a Multiboot 1 ELF32 with a PVH note

    def catalog(self) -> list[Probe]:
        return load_catalog(self.elf)


def build(source: Path | None = None) -> GuestImage:
    """Run `make` in the guests folder (it rebuilds only what is stale).

    Concurrent harnesses (pytest-xdist workers, parallel CI jobs) share the
    build folder, so the build holds a lock.
    """
    source = source or guests_dir()
    if not (source / "Makefile").is_file():
        raise BuildError(f"{source}: no Makefile (set NVCT_GUESTS to the probe kernel's sources)")
    for tool, package in (("make", "make"), ("gcc", "gcc"), ("ld", "binutils"), ("objcopy", "binutils")):
        if shutil.which(tool) is None:
            raise BuildError(f"building the probe kernel needs {tool} (Debian package {package})")
    build_dir = source / "build"
    build_dir.mkdir(exist_ok=True)
    with open(build_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        proc = subprocess.run(
            ["make", "-s", "-C", str(source)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-25:])
        raise BuildError(f"make -C {source} failed (status {proc.returncode}):\n{tail}")
    elf = build_dir / "nvct.elf"
    if not elf.is_file():
        raise BuildError(f"make -C {source} did not produce {elf}")
    return GuestImage(elf)


GRUB_CFG = """\
set timeout=0
set default=0
serial --unit=0 --speed=115200
terminal_input serial
terminal_output serial
menuentry "nvct probe kernel" {{
    multiboot /boot/nvct.elf {cmdline}
    boot
}}
"""


def make_iso(image: GuestImage, cmdline: str, dest: Path) -> Path:
    """A GRUB ISO (BIOS boot) that boots the kernel with this command line."""
    for tool, package in (("grub-mkrescue", "grub-common"), ("xorriso", "xorriso"), ("mformat", "mtools")):
        if shutil.which(tool) is None:
            raise BuildError(f"making the boot ISO needs {tool} (Debian package {package})")
    if not Path("/usr/lib/grub/i386-pc").is_dir():
        raise BuildError("making the boot ISO needs GRUB's BIOS modules (Debian package grub-pc-bin)")
    if any(c in cmdline for c in '\n"{};$\\'):
        raise BuildError(f"kernel command line not allowed in grub.cfg: {cmdline!r}")
    root = dest.parent / (dest.stem + ".isodir")
    (root / "boot" / "grub").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(image.elf, root / "boot" / "nvct.elf")
    (root / "boot" / "grub" / "grub.cfg").write_text(GRUB_CFG.format(cmdline=cmdline))
    proc = subprocess.run(
        ["grub-mkrescue", "-o", str(dest), str(root)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    if proc.returncode != 0 or not dest.is_file():
        raise BuildError(f"grub-mkrescue failed (status {proc.returncode}): {proc.stdout[-800:]}")
    shutil.rmtree(root, ignore_errors=True)
    return dest
