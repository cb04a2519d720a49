"""Boot media: the probe kernel (or an appliance) on a GRUB ISO, for a
level that boots through firmware (Bochs's BIOS, ESXi and Hyper-V VMs).
Every ISO is hybrid: it boots from legacy BIOS and from UEFI."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..core.kernel import BuildError, GuestImage
from .base import BootFailed

# One menu entry for both firmware paths: GRUB's `multiboot` loads the ELF32
# Multiboot 1 image on i386-pc and on x86_64-efi alike (on EFI it exits boot
# services and hands over the firmware memory map, converted to E820 types).
# GRUB writes to COM1 (its ns8250 unit 0) on both; the kernel finds COM1
# itself. Under EFI GRUB says "no suitable video mode found" and "no console
# will be available to OS": the kernel needs no video, so that is harmless.
# Every ISO's grub.cfg starts so: no menu, GRUB's console on COM1 both ways.
GRUB_HEAD = """\
set timeout=0
set default=0
serial --unit=0 --speed=115200
terminal_input serial
terminal_output serial
"""

GRUB_CFG = (
    GRUB_HEAD
    + """\
menuentry "nvct probe kernel" {{
    multiboot /boot/nvct.elf {cmdline}
    boot
}}
"""
)

# The GRUB platforms a hybrid ISO carries, with the Debian package of each.
GRUB_PLATFORMS = (
    ("i386-pc", "grub-pc-bin", "legacy BIOS"),
    ("x86_64-efi", "grub-efi-amd64-bin", "UEFI"),
)
GRUB_LIB = Path("/usr/lib/grub")


def check_iso_tools() -> None:
    """Raise BuildError, naming the Debian package, if make_iso cannot work here."""
    for tool, package in (("grub-mkrescue", "grub-common"), ("xorriso", "xorriso"), ("mformat", "mtools")):
        if shutil.which(tool) is None:
            raise BuildError(f"making the boot ISO needs {tool} (Debian package {package})")
    for platform, package, what in GRUB_PLATFORMS:
        if not (GRUB_LIB / platform / "moddep.lst").is_file():
            raise BuildError(f"making the boot ISO needs GRUB's {what} modules, {GRUB_LIB / platform} "
                             f"(Debian package {package})")  # fmt: skip


def make_iso(image: GuestImage, cmdline: str, dest: Path) -> Path:
    """A hybrid GRUB ISO that boots the kernel with this command line, from
    legacy BIOS (El Torito, i386-pc) and from UEFI (the EFI system partition
    image, x86_64-efi), through the same grub.cfg."""
    check_iso_tools()
    _check_cmdline(cmdline, "kernel command line")
    return _grub_iso([(image.elf, "nvct.elf")], GRUB_CFG.format(cmdline=cmdline), dest)


# A Linux appliance from the same kind of ISO, for a level that boots only
# through its BIOS (Bochs): GRUB's `linux` and `initrd` (several initrds are
# concatenated, each may be compressed). The console is COM1 both ways.
# GRUB says when it has read everything (LOADED), which splits the time of
# its reading through the BIOS from the kernel's own (bench/nested.py).
LOADED = "nvct: GRUB has loaded the files"
LINUX_GRUB_CFG = (
    GRUB_HEAD
    + """\
menuentry "nvct appliance" {{
    linux /boot/vmlinuz {cmdline}
    initrd {initrds}
    echo "%s"
    boot
}}
"""
    % LOADED
)


def make_linux_iso(bzimage: Path, cmdline: str, initrds: tuple[Path, ...], dest: Path) -> Path:
    """A GRUB ISO that boots a Linux bzImage with these initrds (BIOS and UEFI)."""
    check_iso_tools()
    _check_cmdline(cmdline, "kernel command line")
    files = [(initrd, f"initrd{number}{''.join(initrd.suffixes[-1:])}") for number, initrd in enumerate(initrds)]
    cfg = LINUX_GRUB_CFG.format(cmdline=cmdline, initrds=" ".join(f"/boot/{name}" for _, name in files))
    return _grub_iso([*files, (bzimage, "vmlinuz")], cfg, dest)


# A multiboot kernel with modules (Xen with dom0's kernel and initramfs)
# from the same kind of ISO: `multiboot2` and `module2`, the way Debian's
# own GRUB scripts boot Xen (Xen carries both Multiboot headers; GRUB 2
# puts no image name in front of a command line, and Xen knows that from
# the boot loader's name). GRUB unpacks a gzip'd module itself unless told
# `--nounzip`: then the module's consumer gets the gzip stream (Xen takes a
# gzip'd dom0 kernel, Linux a gzip'd initramfs). Xen's Multiboot 2 header
# accepts a framebuffer, so `multiboot2` sets gfxpayload=auto and `boot`
# would switch to a VBE graphics mode, which Bochs's `term` display cannot
# show (Bochs exits: "32 bpp graphics mode not supported"): gfxpayload=text
# after `multiboot2` keeps the text mode (Xen gets no framebuffer).
MULTIBOOT_GRUB_CFG = (
    GRUB_HEAD
    + """\
menuentry "nvct multiboot" {{
    multiboot2 /boot/kernel {cmdline}
{modules}    set gfxpayload=text
    echo "%s"
    boot
}}
"""
    % LOADED
)


@dataclass(frozen=True)
class BootModule:
    path: Path
    args: str = ""
    nounzip: bool = False  # hand the file over as it is (GRUB would gunzip it)


def _check_cmdline(text: str, what: str) -> None:
    if any(c in text for c in '\n"{};$\\') or not text.isprintable():
        raise BuildError(f"{what} not allowed in grub.cfg: {text!r}")


def multiboot_grub_cfg(cmdline: str, modules: tuple[BootModule, ...]) -> tuple[str, list[str]]:
    """The grub.cfg of make_multiboot_iso, and the ISO's file name for each
    module (/boot/module0, ... with the source's last suffix kept)."""
    _check_cmdline(cmdline, "kernel command line")
    names, lines = [], []
    for number, module in enumerate(modules):
        _check_cmdline(module.args, f"module {number}'s arguments")
        name = f"module{number}{''.join(module.path.suffixes[-1:])}"
        names.append(name)
        flag = "--nounzip " if module.nounzip else ""
        lines.append(f"    module2 {flag}/boot/{name} {module.args}".rstrip() + "\n")
    return MULTIBOOT_GRUB_CFG.format(cmdline=cmdline, modules="".join(lines)), names


def make_multiboot_iso(kernel: Path, cmdline: str, modules: tuple[BootModule, ...], dest: Path) -> Path:
    """A GRUB ISO that boots a Multiboot 2 kernel with these modules."""
    check_iso_tools()
    cfg, names = multiboot_grub_cfg(cmdline, modules)
    files = [(module.path, name) for module, name in zip(modules, names)] + [(kernel, "kernel")]
    return _grub_iso(files, cfg, dest)


def _grub_iso(files: list[tuple[Path, str]], cfg: str, dest: Path) -> Path:
    """grub-mkrescue of /boot/NAME for each (source, NAME) and this grub.cfg
    (files hard-linked where the file system allows: an appliance is large).
    No fonts, translations or themes: the menu is never shown. GRUB's own
    temporary folders go next to `dest`, not in TMPDIR, so that they go when
    this does, even when it fails (a full disk)."""
    root = dest.parent / (dest.stem + ".isodir")
    scratch = dest.parent / (dest.stem + ".tmp")
    try:
        (root / "boot" / "grub").mkdir(parents=True, exist_ok=True)
        scratch.mkdir(exist_ok=True)
        for source, name in files:
            _link_or_copy(source, root / "boot" / name)
        (root / "boot" / "grub" / "grub.cfg").write_text(cfg)
        argv = ["grub-mkrescue", "--fonts=", "--locales=", "--themes=", "-o", str(dest), str(root)]
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env={**os.environ, "TMPDIR": str(scratch)}, check=False)  # fmt: skip
    except OSError as exc:  # a full or read-only file system
        raise BuildError(f"cannot make the boot ISO in {dest.parent}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)
    if proc.returncode != 0 or not dest.is_file():
        raise BuildError(f"grub-mkrescue failed (status {proc.returncode}): {proc.stdout[-800:]}")
    return dest


def _link_or_copy(source: Path, dest: Path) -> None:
    try:
        os.link(source, dest)
    except OSError:
        shutil.copyfile(source, dest)


def iso_supports(firmware: str) -> bool:
    """Whether make_iso makes an ISO that this firmware boots: every ISO
    boots BIOS; UEFI needs GRUB's x86_64-efi platform among GRUB_PLATFORMS
    (it is: every ISO is hybrid)."""
    return firmware == "bios" or any(entry[0] == "x86_64-efi" for entry in GRUB_PLATFORMS)


def make_boot_iso(kernel: Path, cmdline: str, dest: Path, firmware: str) -> Path:
    """The probe kernel on an ISO for `firmware` (bios or efi): make_iso's
    hybrid ISO boots both, so `firmware` changes nothing (the backends check
    it with iso_supports() before they boot)."""
    try:
        return make_iso(GuestImage(kernel), cmdline, dest)
    except BuildError as exc:
        raise BootFailed(f"cannot make the boot ISO: {exc}") from None
