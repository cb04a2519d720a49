"""Deeper stacks on Bochs: the GRUB configuration of a multiboot payload
(Xen with dom0's kernel and initramfs as modules), what the bochs backend
puts on the ISO of an appliance (large files gzip'd), the xen backend
accepting Bochs below it, and the profiles of these stacks. No boot here
unless marked."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from conformance.backends import bochs as bochs_mod
from conformance.backends.base import BackendUnavailable, Payload
from conformance.backends.bochs import GZIP_ABOVE, BochsBackend, BochsSettings
from conformance.backends.xen import XenBackend, XenSettings
from conformance.guest import LINUX_GRUB_CFG, LOADED, BootModule, BuildError, make_multiboot_iso, multiboot_grub_cfg
from conformance.profile import load_profile
from conftest import PROFILES


def entry(cfg: str) -> list[str]:
    """The lines of the menu entry, stripped."""
    body = cfg.split("{", 1)[1].rsplit("}", 1)[0]
    return [line.strip() for line in body.splitlines() if line.strip()]


# ---- the GRUB configuration -----------------------------------------------------


def test_multiboot_cfg_boots_the_kernel_with_module2_lines_in_order():
    cfg, names = multiboot_grub_cfg(
        "console=com1 dom0_mem=512M,max:512M",
        (BootModule(Path("/c/vmlinux.gz"), "console=hvc0 quiet", nounzip=True), BootModule(Path("/w/l1-dom0.cpio"))),
    )
    assert names == ["module0.gz", "module1.cpio"]
    assert entry(cfg) == [
        "multiboot2 /boot/kernel console=com1 dom0_mem=512M,max:512M",
        "module2 --nounzip /boot/module0.gz console=hvc0 quiet",
        "module2 /boot/module1.cpio",
        # After multiboot2, which sets it to auto for Xen's framebuffer tag:
        # no VBE mode, which Bochs's term display cannot show.
        "set gfxpayload=text",
        f'echo "{LOADED}"',
        "boot",
    ]
    # Everything on COM1, nothing waits for a key.
    head = cfg.split("menuentry", 1)[0].splitlines()
    assert head[:2] == ["set timeout=0", "set default=0"]
    assert "terminal_input serial" in head and "terminal_output serial" in head


def test_multiboot_cfg_without_modules():
    cfg, names = multiboot_grub_cfg("x=1", ())
    assert names == []
    assert entry(cfg) == ["multiboot2 /boot/kernel x=1", "set gfxpayload=text", f'echo "{LOADED}"', "boot"]


@pytest.mark.parametrize("bad", ['a"b', "a;reboot", "a{b}", "$x", "a\\b", "a\nb", "a\x01"])
def test_multiboot_cfg_refuses_what_grub_would_read_otherwise(bad):
    with pytest.raises(BuildError, match="kernel command line"):
        multiboot_grub_cfg(bad, ())
    with pytest.raises(BuildError, match="module 1's arguments"):
        multiboot_grub_cfg("ok", (BootModule(Path("/a")), BootModule(Path("/b"), bad)))


def test_linux_cfg_says_when_grub_has_read_the_files():
    lines = entry(LINUX_GRUB_CFG.format(cmdline="console=ttyS0", initrds="/boot/initrd0.gz /boot/initrd1.gz"))
    assert lines == ["linux /boot/vmlinuz console=ttyS0", "initrd /boot/initrd0.gz /boot/initrd1.gz",
                     f'echo "{LOADED}"', "boot"]  # fmt: skip


@pytest.mark.skipif(shutil.which("grub-mkrescue") is None or shutil.which("xorriso") is None,
                    reason="grub-mkrescue or xorriso not installed")  # fmt: skip
def test_multiboot_iso_carries_the_files_and_the_cfg(tmp_path):
    try:
        from conformance.guest import check_iso_tools

        check_iso_tools()
    except BuildError as exc:
        pytest.skip(str(exc))
    kernel, module = tmp_path / "xen.elf", tmp_path / "dom0.cpio"
    kernel.write_bytes(b"K" * 100)
    module.write_bytes(b"M" * 200)
    iso = make_multiboot_iso(kernel, "console=com1", (BootModule(module, "x"),), tmp_path / "mb.iso")
    out = tmp_path / "out"
    subprocess.run(["xorriso", "-osirrox", "on", "-indev", str(iso), "-extract", "/boot", str(out)],
                   check=True, capture_output=True)  # fmt: skip
    assert (out / "kernel").read_bytes() == b"K" * 100
    assert (out / "module0.cpio").read_bytes() == b"M" * 200
    assert entry((out / "grub" / "grub.cfg").read_text())[:2] == [
        "multiboot2 /boot/kernel console=com1",
        "module2 /boot/module0.cpio x",
    ]
    assert not (tmp_path / "mb.isodir").exists() and not (tmp_path / "mb.tmp").exists()


# ---- what the bochs backend puts on the ISO --------------------------------------


@pytest.fixture
def captured(monkeypatch):
    calls: dict[str, tuple] = {}

    def fake_multiboot(kernel, cmdline, modules, dest):
        calls["multiboot"] = (kernel, cmdline, modules)
        return dest

    def fake_linux(bzimage, cmdline, initrds, dest):
        calls["linux"] = (bzimage, cmdline, initrds)
        return dest

    monkeypatch.setattr(bochs_mod, "make_multiboot_iso", fake_multiboot)
    monkeypatch.setattr(bochs_mod, "make_linux_iso", fake_linux)
    return calls


def _file(path: Path, size: int) -> Path:
    path.write_bytes(b"\0" * size)
    return path


def test_large_modules_go_gzipd_and_unopened(tmp_path, captured):
    big = _file(tmp_path / "vmlinux", GZIP_ABOVE + 1)
    small = _file(tmp_path / "dom0.cpio", 1000)
    xen = _file(tmp_path / "xen.elf", 1000)
    payload = Payload(kernel=xen, append="console=com1", probe=False, modules=((big, "console=hvc0"), (small, "")))
    BochsBackend(BochsSettings(), 0)._appliance_iso(payload, tmp_path)
    kernel, cmdline, modules = captured["multiboot"]
    assert (kernel, cmdline) == (xen, "console=com1")
    assert modules == (BootModule(tmp_path / "vmlinux.gz", "console=hvc0", nounzip=True), BootModule(small, ""))
    assert (tmp_path / "vmlinux.gz").stat().st_size < GZIP_ABOVE // 100


def test_a_large_per_boot_payload_cpio_goes_gzipd(tmp_path, captured):
    """The appliance for L3 carries L2's whole appliance in its payload cpio
    (made for each boot): it reaches GRUB compressed like the initramfs."""
    base = _file(tmp_path / "initramfs.cpio", GZIP_ABOVE + 1)
    extra = _file(tmp_path / "l1-payload.cpio", GZIP_ABOVE * 2)
    small = _file(tmp_path / "small.cpio", 512)
    bz = _file(tmp_path / "vmlinuz", 100)
    payload = Payload(kernel=tmp_path / "vmlinux", append="quiet", initrds=(base, extra, small), probe=False,
                      bzimage=bz)  # fmt: skip
    BochsBackend(BochsSettings(), 0)._appliance_iso(payload, tmp_path)
    assert captured["linux"] == (bz, "quiet", (tmp_path / "initramfs.cpio.gz", tmp_path / "l1-payload.cpio.gz", small))


# ---- the xen backend over Bochs ----------------------------------------------------


def test_xen_accepts_bochs_below(monkeypatch):
    below = BochsBackend(BochsSettings(), 0)
    monkeypatch.setattr(below, "preflight", lambda: None)
    monkeypatch.setattr("conformance.xen_appliance.build", lambda device_model=False: "appliance")
    xen = XenBackend(XenSettings(), 1, below=below)
    xen.preflight()
    assert xen._appliance == "appliance"


def test_xen_refuses_a_level_below_that_boots_no_multiboot_modules():
    class Other(BochsBackend.__mro__[1]):  # a Backend that is neither QEMU nor Bochs
        name = "other"

        def preflight(self):
            pass

        def version(self):
            return "0"

        def boot_payload(self, payload, workdir):
            raise AssertionError

    with pytest.raises(BackendUnavailable, match="QEMU or Bochs below it"):
        XenBackend(XenSettings(), 1, below=Other(None, 0)).preflight()


# ---- the profiles -----------------------------------------------------------------


def test_bochs_xen_profile():
    profile = load_profile(PROFILES / "bochs-xen-l2.yaml")
    bochs, xen = profile.stack
    assert (bochs.backend, xen.backend) == ("bochs", "xen")
    assert bochs.settings.cpu_model == "corei7_skylake_x"
    assert (xen.settings.type, xen.settings.nestedhvm, xen.settings.hap) == ("pvh", True, True)


def test_bochs_kvm_kvm_profile():
    profile = load_profile(PROFILES / "bochs-kvm-kvm-l3.yaml")
    assert [entry.backend for entry in profile.stack] == ["bochs", "linux-kvm", "linux-kvm"]
    l1, l2 = profile.stack[1].settings, profile.stack[2].settings
    assert (l1.module, l1.nested, l1.paging) == ("kvm_intel", True, True)
    assert (l2.module, l2.nested, l2.paging) == ("kvm_intel", True, True)
