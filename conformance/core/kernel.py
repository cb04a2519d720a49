"""The probe kernel image: building it (make in guests/) and its catalog.
Packing it for firmware boots is the backends' (backends/media.py)."""

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
    return Path(env) if env else Path(__file__).resolve().parents[2] / "guests"


def shipped_image() -> Path:
    """Where an install from the wheel keeps the probe kernel it was built
    with (setup.py puts it there; a checkout has none)."""
    return Path(__file__).resolve().parents[1] / "shipped" / "nvct.elf"


@dataclass(frozen=True)
class GuestImage:
    elf: Path  # a Multiboot 1 ELF32 with a PVH note

    def catalog(self) -> list[Probe]:
        return load_catalog(self.elf)


def build(source: Path | None = None) -> GuestImage:
    """The probe kernel: the image shipped in the wheel when nvct was
    installed from one (and neither `source` nor $NVCT_GUESTS names
    sources), else `make` in the guests folder (it rebuilds only what is
    stale).

    Concurrent harnesses (pytest-xdist workers, parallel CI jobs) share the
    build folder, so the build holds a lock.
    """
    if source is None and not os.environ.get("NVCT_GUESTS") and shipped_image().is_file():
        return GuestImage(shipped_image())  # installed from the wheel: the image built with it
    source = source or guests_dir()
    if not (source / "Makefile").is_file():
        raise BuildError(
            f"{source}: no Makefile, and no probe kernel shipped in {shipped_image().parent} "
            f"(set NVCT_GUESTS to the probe kernel's sources, or install nvct from its wheel)"
        )
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
