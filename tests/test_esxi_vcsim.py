"""The esxi backend against VMware's vSphere API simulator (vcsim, from
govmomi's sources as Debian packages them): the backend's real code,
pyVmomi's real SOAP, the simulator's real inventory, tasks, faults and
/folder file access. The simulator runs no guest: tests/support/vcsim.py's
Player boots the ISO each VM was given under QEMU TCG, the way the
qemu-tcg-bios-iso profile does, with COM1 in the VM's serial file.

These tests skip, saying why, without Go and govmomi's sources
(`apt-get install golang-go golang-github-vmware-govmomi-dev`; .ci/run
installs them). Each pytest-xdist worker runs simulators of its own. With
NVCT_ESXI_URL set, the live test in test_esxi.py runs against a real host."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import PROFILES, ROOT, nvct, verdicts
from support.vcsim import Player, Simulator, Unavailable

# Probes from every kind of verdict qemu-tcg-bios-iso gives: PASS, SKIP,
# known FAIL, and the known CRASH (QEMU aborts), which ends a boot.
PROBES = "cpu.*,svm.basic.*,vmx.basic.*,svm.event.v_tpr_unmask"


def start(model: str, **kwargs: object) -> Simulator:
    try:
        return Simulator(model, **kwargs).start()  # type: ignore[arg-type]
    except Unavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def vpx() -> Iterator[Simulator]:
    sim = start("vpx")
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def esx() -> Iterator[Simulator]:
    sim = start("esx")
    yield sim
    sim.stop()


@pytest.fixture
def player(vpx: Simulator) -> Iterator[Player]:
    with Player(vpx) as p:
        yield p
    assert not p.errors, p.errors


def profile(tmp_path: Path, sim: Simulator, name: str = "esxi-vcsim", **settings: object) -> Path:
    """An esxi profile pointed at the simulator, with qemu-tcg's probes and
    expectations (the hardware the Player gives a VM is qemu-tcg-bios-iso's)."""
    keys: dict[str, object] = {"host": sim.host, "port": sim.port, "ca_file": sim.ca_file, "poll_interval": 0.2,
                               "memory": 128}  # fmt: skip
    if sim.model == "vpx":
        keys.update(datacenter="DC0", esxi_host="DC0_H0", datastore="LocalDS_0")
    keys.update(settings)
    lines = [f"include: {json.dumps(str(PROFILES / 'qemu-tcg.yaml'))}", f"name: {name}", "stack:", "  - backend: esxi"]
    lines += [f"    {k}: {json.dumps(v)}" for k, v in keys.items() if v is not None]
    lines += ["timeouts:", "  boot: 300"]
    path = tmp_path / f"{name}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def run(sim: Simulator, path: Path, tmp_path: Path, *extra: str, password: str | None = None,
        timeout: float = 1800) -> tuple[subprocess.CompletedProcess, dict | None]:  # fmt: skip
    record = tmp_path / f"{path.stem}.json"
    proc = nvct("run", "--profile", str(path), "--json", str(record), *extra, timeout=timeout,
                env=sim.env(password))  # fmt: skip
    return proc, json.loads(record.read_text()) if record.exists() else None


def one_line_error(proc: subprocess.CompletedProcess, sim: Simulator) -> str:
    """The backend's clear error: exit 2, one line on stderr, no traceback, no password."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nvct: error: "), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert sim.password not in proc.stderr + proc.stdout
    return lines[0]


# ---- real verdicts through the simulator ------------------------------------------------------------


def test_same_verdicts_as_qemu_tcg_bios_iso(vpx, player, tmp_path):
    """`nvct run` through the esxi backend and the simulator, against the
    qemu-tcg-bios-iso profile itself: the same verdicts, probe by probe,
    the same gate; and the simulator as it was before."""
    before = vpx.inventory()
    proc, record = run(vpx, profile(tmp_path, vpx), tmp_path, "--probes", PROBES)
    assert record is not None, proc.stderr
    ref_json = tmp_path / "ref.json"
    ref = nvct("run", "--profile", str(PROFILES / "qemu-tcg-bios-iso.yaml"), "--probes", PROBES, "--json",
               str(ref_json), timeout=1800)  # fmt: skip
    reference = json.loads(ref_json.read_text())
    got, want = verdicts(record), verdicts(reference)
    assert len(want) > 20 and set(want.values()) >= {"PASS", "SKIP", "FAIL", "CRASH"}
    assert got == want, {p: (got.get(p), want[p]) for p in want if got.get(p) != want[p]}
    assert (proc.returncode, record["status"]) == (ref.returncode, reference["status"]), proc.stderr
    assert record["gate"] == reference["gate"]
    level = record["levels"][0]
    assert level["hypervisor"]["backend"] == "esxi"
    assert level["hypervisor"]["preflight"]["esxi.product"].startswith("VMware vCenter Server")
    assert level["hypervisor"]["preflight"]["esxi.nested_hv_supported"] is True
    # One VM per boot: the CRASH ended one, the probes after it got another.
    assert len(player.played) >= 2 and all(p["firmware"] == "bios" for p in player.played.values())
    assert any(p.get("exit") is not None for p in player.played.values())  # the guest ended that VM
    assert vpx.inventory() == before


@pytest.mark.parametrize("model", ["esx", "vpx"])
def test_configspec_accepted_and_read_back(model, vpx, esx, image, tmp_path):
    """The VM as the simulator stored it, read back while it runs: nesting
    on, the firmware, Secure Boot off for EFI, the CD-ROM on the uploaded
    ISO, COM1 on the serial file, the CD-ROM first in the boot order."""
    from pyVmomi import vim

    from conformance.backends.base import Payload
    from conformance.backends.esxi import EsxiBackend, EsxiSettings

    sim = esx if model == "esx" else vpx
    before = sim.inventory()
    for firmware in ("bios", "efi"):
        names = {"datacenter": "DC0", "esxi_host": "DC0_H0", "datastore": "LocalDS_0"} if model == "vpx" else {}
        settings = EsxiSettings(host=sim.host, port=sim.port, ca_file=sim.ca_file, firmware=firmware, **names)
        b = EsxiBackend(settings, 0, environ=sim.env())
        b.preflight()
        payload = Payload(kernel=image.elf, append="probes=cpu.*")
        with b.boot_payload(payload, tmp_path) as console:
            vm_name = console.facts["esxi.vm"]
            with sim.session() as si:
                vm = next(v for v in sim.vms(si) if v.name == vm_name)
                config = vm.config
                assert config.nestedHVEnabled is True
                assert config.firmware == firmware
                if firmware == "efi":
                    assert config.bootOptions.efiSecureBootEnabled is False
                devices = config.hardware.device
                cdrom = next(d for d in devices if isinstance(d, vim.vm.device.VirtualCdrom))
                com1 = next(d for d in devices if isinstance(d, vim.vm.device.VirtualSerialPort))
                ds = "LocalDS_0"
                assert cdrom.backing.fileName == f"[{ds}] {vm_name}/nvct.iso"
                assert com1.backing.fileName == f"[{ds}] {vm_name}/com1.log"
                assert isinstance(cdrom.backing, vim.vm.device.VirtualCdrom.IsoBackingInfo)
                assert isinstance(com1.backing, vim.vm.device.VirtualSerialPort.FileBackingInfo)
                controller = next(d for d in devices if d.key == cdrom.controllerKey)
                assert isinstance(controller, vim.vm.device.VirtualAHCIController)
                assert com1.yieldOnPoll is True and com1.connectable.startConnected is True
                assert isinstance(config.bootOptions.bootOrder[0], vim.vm.BootOptions.BootableCdromDevice)
                assert str(vm.runtime.powerState) == "poweredOn"
                # The uploaded ISO is on the datastore, byte for byte.
                assert sim.local_path(si, cdrom.backing.fileName).read_bytes() == (tmp_path / "nvct.iso").read_bytes()
            assert console.facts["esxi.vm_nested_hv_enabled"] is True
            assert console.facts["esxi.vm_firmware"] == firmware
        assert sim.inventory() == before
