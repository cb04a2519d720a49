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
from conftest import PROFILES

from conformance.backends import bochs as bochs_mod
from conformance.backends.base import BackendUnavailable, Payload
from conformance.backends.bochs import GZIP_ABOVE, BochsBackend, BochsSettings
from conformance.backends.media import LINUX_GRUB_CFG, LOADED, BootModule, make_multiboot_iso, multiboot_grub_cfg
from conformance.backends.xen import XenBackend, XenSettings
from conformance.core.kernel import BuildError
from conformance.core.profile import load_profile


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
        from conformance.backends.media import check_iso_tools

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
    monkeypatch.setattr("conformance.appliances.xen.build", lambda device_model=False: "appliance")
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


def test_a_domain_xen_crashed_is_named_at_the_end():
    """Xen 4.17's nested VMX hands a VMCS it did not check to the CPU below;
    when that VM entry fails, Xen crashes the whole domU: the CRASH says so,
    with Xen's own line on the domain's vCPU (as seen on Bochs)."""
    from test_xen import FakeOuter

    from conformance.backends.transports.shell import GuestConsole
    from conformance.backends.xen import DomainConsole

    lines = [
        "(d1) @NVCT1 22 START probe=vmx.entry.ctl_reserved index=5 #26248c19",
        "(XEN) d2v0 something about another domain",
        "(XEN) d1v0 VMLAUNCH error: 0x7",
        "(XEN) CR3 = 0x0000000000454000",
        "(XEN) domain_crash called from arch/x86/hvm/vmx/vmcs.c:1915",
        "(XEN) d1v0 after the crash",
        "(XEN) ----[ Xen-4.17.7  x86_64  debug=n  Not tainted ]----",
    ]
    console = DomainConsole(GuestConsole(FakeOuter(lines), "NVCT-EXIT-x", "fake"), domid=1)
    while console.readline(1.0) is not None:
        pass
    assert (console.said, console.crashed) == ("d1v0 VMLAUNCH error: 0x7", "arch/x86/hvm/vmx/vmcs.c:1915")
    assert console.describe_end().startswith(
        "Xen crashed the domain after 'd1v0 VMLAUNCH error: 0x7' (domain_crash called from arch/x86/hvm/vmx/vmcs.c:1915); "
    )


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


# ---- real boots ---------------------------------------------------------------------


def _need_bochs_and_grub():
    from conftest import need

    need("bochs", "bochs")
    need("grub-mkrescue", "grub-common")
    need("qemu-system-x86_64", "qemu-system-x86")


@pytest.mark.boot
def test_xen_nested_vmx_on_bochs(tmp_path):
    """Bochs -> Xen 4.17 -> the probe kernel as a PVH domU with nested VMX
    (about 80 s: Xen and dom0 from the GRUB ISO, then the domain)."""
    from conftest import run_profile, verdicts

    _need_bochs_and_grub()
    proc, record = run_profile(tmp_path, "bochs-xen-l2", "--probes", "cpu.*,vmx.cpuid.*,vmx.vmlaunch.vmcall")
    l1, l2 = verdicts(record, 1), verdicts(record, 2)
    assert l1["vmx.vmlaunch.vmcall"] == "PASS" and l1["cpu.hypervisor.signature"] == "SKIP"
    assert l2 == {"cpu.cpuid.basic": "PASS", "cpu.hypervisor.signature": "PASS", "vmx.cpuid.exposed": "PASS",
                  "vmx.vmlaunch.vmcall": "PASS"}, proc.stdout[-3000:]  # fmt: skip
    facts = record["levels"][1]["facts"]
    assert facts["hv.signature"] == "XenVMMXenVMM" and facts["vmx"] == "1"
    runtime = record["levels"][1]["hypervisor"]["runtime"]
    assert "hap" in runtime["xen.virt_caps"].split() and runtime["domu.nested_hvm"] in (True, "True")


@pytest.mark.boot
def test_vmx_at_l3_through_two_kvms_on_bochs(tmp_path):
    """Bochs -> KVM -> KVM -> the probe kernel at L3 (about 5 minutes: L1's
    appliance carries L2's whole appliance through Bochs's BIOS)."""
    import json

    from conftest import nvct, verdicts

    _need_bochs_and_grub()
    out = tmp_path / "l3.json"
    proc = nvct("run", "--profile", str(PROFILES / "bochs-kvm-kvm-l3.yaml"), "-o", str(out),
                "--probes", "cpu.hypervisor.signature,vmx.vmlaunch.vmcall", timeout=1500)  # fmt: skip
    assert out.exists(), proc.stderr[-3000:]
    record = json.loads(out.read_text())
    assert verdicts(record, 1) == {"cpu.hypervisor.signature": "SKIP", "vmx.vmlaunch.vmcall": "PASS"}
    for level in (2, 3):
        assert verdicts(record, level) == {"cpu.hypervisor.signature": "PASS", "vmx.vmlaunch.vmcall": "PASS"}, (
            proc.stdout[-3000:]
        )
        facts = record["levels"][level - 1]["facts"]
        assert facts["hv.signature"] == "KVMKVMKVM" and facts["vmx"] == "1"
    assert record["levels"][2]["hypervisor"]["runtime"]["kvm_intel.nested"] == "Y"
