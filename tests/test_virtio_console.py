"""The probe kernel's virtio serial port (guests/lib/virtcon.c): real boots
under QEMU TCG. It carries a whole run as the 16550 does, loses nothing
when the line below it is slow (QEMU throttles a `virtserialport`), and
the kernel falls back to the 16550 when there is no port to use."""

import fcntl
import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from conftest import PROFILES, need, nvct, run_profile, verdicts

from conformance.backends.base import Payload
from conformance.backends.linux_kvm import LinuxKvmBackend, LinuxKvmSettings
from conformance.backends.qemu import QemuBackend, QemuSettings
from conformance.core.kernel import GuestImage
from conformance.core.profile import ProfileError, load_profile
from conformance.core.protocol import parse_line

pytestmark = pytest.mark.boot

ROOT = Path(__file__).resolve().parent.parent
IMAGE = ROOT / "guests" / "build" / "nvct.elf"


def _profile(tmp_path: Path, name: str, extra: str) -> Path:
    """qemu-tcg's profile (its expectations too) with more settings for its level."""
    text = (PROFILES / "qemu-tcg.yaml").read_text()
    assert "\n    memory: 128\n" in text
    text = text.replace("name: qemu-tcg\n", f"name: {name}\n").replace(
        "\n    memory: 128\n", f"\n    memory: 128\n{extra}"
    )
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


def _run(tmp_path: Path, profile: Path, *extra: str) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path / f"{profile.stem}.json"
    proc = nvct("run", "--profile", str(profile), "--json", str(out), *extra)
    assert out.exists(), f"no run record; stderr:\n{proc.stderr}"
    return proc, json.loads(out.read_text())


def test_the_port_carries_a_whole_run_with_the_16550s_verdicts(tmp_path):
    """The whole catalogue through the port and through COM1: the same
    verdicts, the gate holds, and every record arrived (a lost or damaged
    record would be a problem of the level and a CRASH or ERROR)."""
    need("qemu-system-x86_64", "qemu-system-x86")
    serial_proc, serial = run_profile(tmp_path, "qemu-tcg")
    virtio_proc, virtio = _run(tmp_path, _profile(tmp_path, "qemu-tcg-virtio", "    console: virtio\n"))
    assert serial["levels"][0]["kernel"]["console"] == "com1"
    assert virtio["levels"][0]["kernel"]["console"] == "virtio"
    assert virtio["levels"][0]["hypervisor"]["settings"]["console"] == "virtio"
    assert verdicts(virtio) == verdicts(serial)
    assert len(verdicts(virtio)) > 200
    assert virtio["levels"][0]["problems"] == serial["levels"][0]["problems"] == []
    assert virtio["gate"]["holds"], virtio["gate"]["failures"]
    assert (serial_proc.returncode, virtio_proc.returncode) == (0, 0)


def test_without_a_port_the_kernel_prints_through_the_16550(tmp_path):
    """A virtio-serial device with no port 1 (only the device, then only a
    console at port 0): the handshake finds no port it may use, and the
    kernel falls back to COM1 with nothing lost."""
    need("qemu-system-x86_64", "qemu-system-x86")
    for name, args in (
        ("device-only", ["-device", "virtio-serial-pci"]),
        ("console-port", ["-device", "virtio-serial-pci", "-chardev", "null,id=n", "-device", "virtconsole,chardev=n"]),
    ):
        extra = "    args: [" + ", ".join(json.dumps(a) for a in args) + "]\n"
        proc, record = _run(tmp_path, _profile(tmp_path, name, extra), "--probes", "cpu.*,svm.vmrun.*")
        assert record["levels"][0]["kernel"]["console"] == "com1", name
        assert verdicts(record) == {
            "cpu.cpuid.basic": "PASS",
            "cpu.hypervisor.signature": "PASS",
            "svm.vmrun.vmmcall": "PASS",
        }, name
        assert record["levels"][0]["problems"] == [], name
        assert proc.returncode == 0, name


def _boot_into_a_slow_pipe(probes: str) -> bytes:
    """Boot the probe kernel with QEMU's stdout on a one-page, non-blocking
    pipe that is first left unread for 3 s, then read 256 bytes at a time:
    the line below the guest is much slower than the guest."""
    s = QemuSettings(console="virtio")
    argv = QemuBackend(s, 0).argv(Payload.probe_kernel(GuestImage(IMAGE), f"probes={probes}"))
    r, w = os.pipe()
    fcntl.fcntl(w, 1031, 4096)  # F_SETPIPE_SZ: one page
    fcntl.fcntl(w, fcntl.F_SETFL, fcntl.fcntl(w, fcntl.F_GETFL) | os.O_NONBLOCK)
    # Its input a pipe that stays open: at the end of its input QEMU's stdio
    # chardev closes, and a port whose chardev is closed drops what it gets.
    keys_r, keys_w = os.pipe()
    child = subprocess.Popen(argv, stdin=keys_r, stdout=w, stderr=subprocess.DEVNULL)
    os.close(w)
    os.close(keys_r)
    data = bytearray()
    try:
        time.sleep(3)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            chunk = os.read(r, 256)
            if not chunk:
                break
            data += chunk
            time.sleep(0.002)
    finally:
        child.kill()
        child.wait()
        os.close(r)
        os.close(keys_w)
    return bytes(data)


def test_a_slow_line_loses_no_record():
    """What the virtio console lacked (QEMU's virtconsole drops what its
    chardev does not take at once): with QEMU's stdout full most of the
    time, every record arrives, in sequence, with its CRC right. (Through
    COM1 this same boot lost bytes here: QEMU's 16550 gives up on a byte
    after a few retries.)"""
    need("qemu-system-x86_64", "qemu-system-x86")
    data = _boot_into_a_slow_pipe("cpu.*,svm.basic.*,svm.intercept.*,vmx.*")
    assert len(data) > 4 * 4096  # many times what the pipe holds
    records = [r for r in map(parse_line, data.decode("ascii", "replace").splitlines()) if r is not None]
    assert [r.seq for r in records] == list(range(len(records)))
    assert records[0].kind == "HELLO" and records[0].fields["console"] == "virtio"
    assert records[-1].kind == "END"
    starts = sum(r.kind == "START" for r in records)
    assert starts == sum(r.kind == "RESULT" for r in records) == int(records[-1].fields["run"]) > 40


@pytest.mark.parametrize("backend", ["qemu", "linux-kvm"])
def test_a_bad_console_setting_is_named(tmp_path, backend):
    text = "name: t\nstack:\n  - backend: qemu\n"
    line = 4
    if backend == "linux-kvm":
        text += "  - backend: linux-kvm\n"
        line = 5
    path = tmp_path / "p.yaml"
    path.write_text(text + "    console: hvc\n")
    with pytest.raises(ProfileError) as exc:
        load_profile(path)
    index = 0 if backend == "qemu" else 1
    assert (exc.value.line, exc.value.key) == (line, f"stack[{index}].console")
    assert "not 'hvc'" in exc.value.message


def test_the_port_is_offered_where_it_is_asked_for():
    probe = Payload.probe_kernel(GuestImage(Path("/k.elf")), "probes=a.*")
    serial = QemuBackend(QemuSettings(), 0).argv(probe)
    assert "-serial" in serial and serial[serial.index("-serial") + 1] == "stdio"
    assert not any("virtserialport" in a for a in serial)
    virtio = QemuBackend(QemuSettings(console="virtio"), 0).argv(probe)
    assert "virtserialport,chardev=con,nr=1" in virtio and "chardev:con" in virtio
    kvm = LinuxKvmBackend(LinuxKvmSettings(console="virtio"), 1)
    assert "virtserialport,chardev=con,nr=1" in kvm.qemu_argv(probe, "/k", None)
    appliance = Payload(kernel=Path("/vmlinux"), append="console=ttyS0", initrds=(), probe=False)
    assert not any("virtserialport" in a for a in kvm.qemu_argv(appliance, "/vmlinux", None))
    plain = LinuxKvmBackend(LinuxKvmSettings(), 1)  # the default: COM1 only
    assert not any("virtserialport" in a for a in plain.qemu_argv(probe, "/k", None))
