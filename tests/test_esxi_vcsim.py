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
from support.vcsim import Player, Proxy, Simulator, Unavailable

# Probes from every kind of verdict qemu-tcg-bios-iso gives: PASS, SKIP,
# known FAIL, and the known CRASH (QEMU aborts), which ends a boot.
PROBES = "cpu.*,svm.basic.*,vmx.vmlaunch.*,svm.event.v_tpr_unmask"


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


def profile(tmp_path: Path, sim: Simulator, name: str = "esxi-vcsim", via: Proxy | None = None,
            **settings: object) -> Path:  # fmt: skip
    """An esxi profile pointed at the simulator (or at a proxy in front of
    it), with qemu-tcg's probes and expectations (the hardware the Player
    gives a VM is qemu-tcg-bios-iso's)."""
    at = via or sim
    keys: dict[str, object] = {"host": at.host, "port": at.port, "ca_file": at.ca_file, "poll_interval": 0.2,
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
    proc = nvct("run", "--profile", str(path), "-o", str(record), *extra, timeout=timeout,
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


@pytest.mark.parametrize("firmware,reference", [("bios", "qemu-tcg-bios-iso"), ("efi", "qemu-tcg-uefi")])
def test_same_verdicts_as_qemu_tcg_from_the_iso(vpx, player, tmp_path, firmware, reference):
    """`nvct run` through the esxi backend and the simulator, against the
    profile whose QEMU plays the VM (qemu-tcg-bios-iso, or qemu-tcg-uefi
    for a VM with EFI firmware): the same verdicts, probe by probe, the same
    gate; and the simulator as it was before."""
    before = vpx.inventory()
    proc, record = run(vpx, profile(tmp_path, vpx, firmware=firmware), tmp_path, "--probes", PROBES)
    assert record is not None, proc.stderr
    ref_json = tmp_path / "ref.json"
    ref = nvct("run", "--profile", str(PROFILES / f"{reference}.yaml"), "--probes", PROBES, "-o",
               str(ref_json), timeout=1800)  # fmt: skip
    reference = json.loads(ref_json.read_text())
    got, want = verdicts(record), verdicts(reference)
    assert len(want) > 15 and set(want.values()) >= {"PASS", "SKIP", "FAIL", "CRASH"}
    assert got == want, {p: (got.get(p), want[p]) for p in want if got.get(p) != want[p]}
    assert (proc.returncode, record["status"]) == (ref.returncode, reference["status"]), proc.stderr
    assert record["gate"] == reference["gate"]
    level = record["levels"][0]
    assert level["hypervisor"]["backend"] == "esxi"
    assert level["hypervisor"]["preflight"]["esxi.product"].startswith("VMware vCenter Server")
    assert level["hypervisor"]["preflight"]["esxi.nested_hv_supported"] is True
    # One VM per boot: the CRASH ended one, the probes after it got another.
    assert len(player.played) >= 2 and all(p["firmware"] == firmware for p in player.played.values())
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


def test_two_boots_side_by_side_keep_apart(vpx, player, tmp_path):
    """`--jobs 2`: two VMs at once, each with its own folder, ISO and serial
    file; the same verdicts as one after the other; nothing left."""
    before = vpx.inventory()
    proc, record = run(vpx, profile(tmp_path, vpx), tmp_path, "--probes", "cpu.*,svm.basic.*", "--jobs", "2")
    assert record is not None and record["status"] == "complete", proc.stderr
    assert proc.returncode == 0, proc.stderr
    assert set(verdicts(record).values()) >= {"PASS", "FAIL"}
    vms = [p for p in player.played.values() if "iso" in p]
    assert len(vms) == 2, player.played
    folders = {p["iso"].rsplit("/", 1)[0] for p in vms} | {p["com1"].rsplit("/", 1)[0] for p in vms}
    assert len(folders) == 2  # each VM's ISO and serial file in its own folder
    assert vpx.inventory() == before


# ---- what only a server can say ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "key,value,says",
    [
        ("datastore", "NoSuchDS", "no datastore named 'NoSuchDS' (there are: LocalDS_0)"),
        ("datacenter", "DC9", "no datacenter named 'DC9' (there are: DC0)"),
        ("esxi_host", "DC0_H9", "no esxi_host named 'DC0_H9'"),
        ("esxi_host", None, "several of esxi_host"),
    ],
)  # fmt: skip
def test_wrong_name_is_one_clear_line(vpx, tmp_path, key, value, says):
    before = vpx.inventory()
    proc, _ = run(vpx, profile(tmp_path, vpx, **{key: value}), tmp_path, "--probes", "cpu.*")
    assert says in one_line_error(proc, vpx)
    assert vpx.inventory() == before


def test_wrong_password_is_one_clear_line(vpx, tmp_path):
    wrong = "Wrong-" + vpx.password[::-1]
    proc, _ = run(vpx, profile(tmp_path, vpx), tmp_path, "--probes", "cpu.*", password=wrong)
    line = one_line_error(proc, vpx)
    assert f"cannot log in to {vpx.host}:{vpx.port} as {vpx.user}" in line and "Login failure" in line
    assert wrong not in proc.stderr + proc.stdout


def test_host_that_cannot_nest_skips_without_a_vm(tmp_path):
    """A host reporting nestedHVSupported false: every probe SKIPs with the
    reason, and no VM is made."""
    sim = start("esx", nested_hv=False)
    try:
        before = sim.inventory()
        proc, record = run(sim, profile(tmp_path, sim), tmp_path, "--probes", "cpu.*,svm.basic.cr2")
        assert record is not None, proc.stderr
        assert {r["verdict"] for r in record["results"]} == {"SKIP"}
        assert all("nestedHVSupported=false" in r["detail"] for r in record["results"])
        assert record["levels"][0]["hypervisor"]["preflight"]["esxi.product"].startswith("VMware ESXi")
        assert sim.inventory() == before
    finally:
        sim.stop()


# ---- faults from the server ------------------------------------------------------------------------------


def test_task_that_fails_crashes_the_boot_and_cleans_up(tmp_path):
    """PowerOnVM_Task fails on the server: the simulator makes every
    PowerOnVM_Task call take 3 s (its DelayConfig), and meanwhile somebody
    else powers the new VM on (PowerOnMultiVM_Task on the datacenter), so
    nvct's task ends in error (InvalidPowerState). The boot CRASHes with
    the task's fault; the VM and its folder go."""
    sim = start("vpx", delay="PowerOnVM_Task")
    try:
        before = sim.inventory()
        path = profile(tmp_path, sim)
        child = subprocess.Popen([sys.executable, "-m", "conformance", "run", "--profile", str(path), "--probes",
                                  "cpu.cpuid.basic", "-o", str(tmp_path / "run.json")], cwd=ROOT,
                                 env={**os.environ, **sim.env()}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True)  # fmt: skip
        powered = False
        with sim.session() as si:
            deadline = time.monotonic() + 600
            while child.poll() is None and not powered:
                assert time.monotonic() < deadline, "no VM was created"
                for vm in sim.vms(si):
                    if vm.name.startswith("nvct-"):
                        dc = next(d for d in si.content.rootFolder.childEntity if d.name == "DC0")
                        dc.PowerOnMultiVM_Task([vm])
                        powered = True
                time.sleep(0.05)
        out, err = child.communicate(timeout=600)
        record = json.loads((tmp_path / "run.json").read_text())
        results = record["results"]
        assert powered and results and {r["verdict"] for r in results} == {"CRASH"}, err
        detail = results[0]["detail"]
        assert "powering on the VM nvct-" in detail and "InvalidPowerState" in detail, detail
        assert "Traceback" not in err and sim.password not in out + err + json.dumps(record)
        assert sim.inventory() == before
    finally:
        sim.stop()


def test_server_that_does_not_answer_in_time_is_one_line(tmp_path):
    """The simulator takes 3 s to answer Login (its DelayConfig); with
    task_timeout 1 the pre-flight check gives up after 1 s instead of
    waiting for ever: one line, exit 2, no VM and no file left. (The
    server finishes the Login after nvct gave up: that session is left
    to expire on the server, as on a real host.)"""
    sim = start("vpx", delay="Login")
    try:
        before = sim.inventory()
        proc, _ = run(sim, profile(tmp_path, sim, task_timeout=1), tmp_path, "--probes", "cpu.*")
        line = one_line_error(proc, sim)
        assert f"cannot log in to {sim.host}:{sim.port}" in line and "timed out" in line, line
        assert sim.inventory()[:2] == before[:2]
    finally:
        sim.stop()


def test_task_that_never_finishes_is_not_made_by_the_simulator():
    """The simulator (govmomi 0.24) runs every task to its end before it
    answers the call that started it: no task is ever seen running, so
    task_timeout cannot be reached here. test_esxi.py keeps that case on
    the fake (test_task_timeout_cleans_up)."""
    source = Path("/usr/share/gocode/src/github.com/vmware/govmomi/simulator/task.go")
    if not source.is_file():
        pytest.skip("govmomi's sources are not installed (Debian package golang-github-vmware-govmomi-dev)")
    text = source.read_text()
    assert "res, err := t.Execute(t)" in text and "go t.Execute" not in text


@pytest.mark.parametrize("fault", ["range ignored", "connections dropped"])
def test_server_faults_give_the_same_verdicts(vpx, player, tmp_path, fault):
    """A /folder that ignores Range (200 and the whole file), and a few
    connections dropped without an answer while the VM runs (two reads of
    the serial file, one SOAP call): the same verdicts as straight to the
    simulator, nothing left."""
    probes = "cpu.*,svm.basic.*"
    _, direct = run(vpx, profile(tmp_path, vpx, name="direct"), tmp_path, "--probes", probes)
    before, earlier = vpx.inventory(), set(player.played)
    with Proxy(vpx) as proxy:
        if fault == "range ignored":
            proxy.strip_range = True
        else:
            proxy.drop("folder", 2)
        path = profile(tmp_path, vpx, via=proxy)
        if fault == "connections dropped":
            child_env = {**os.environ, **vpx.env()}
            child = subprocess.Popen([sys.executable, "-m", "conformance", "run", "--profile", str(path), "--probes",
                                      probes, "-o", str(tmp_path / "esxi-vcsim.json")], cwd=ROOT, env=child_env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
            deadline = time.monotonic() + 600
            while not any("argv" in p for n, p in player.played.items() if n not in earlier) and child.poll() is None:
                assert time.monotonic() < deadline, "no VM was powered on"
                time.sleep(0.05)
            proxy.drop("soap", 1)
            _, err = child.communicate(timeout=1800)
            assert (tmp_path / "esxi-vcsim.json").exists(), err
            record = json.loads((tmp_path / "esxi-vcsim.json").read_text())
            assert len(proxy.dropped) == 3, proxy.dropped
        else:
            proc, record = run(vpx, path, tmp_path, "--probes", probes)
            err = proc.stderr
    assert record is not None and record["status"] == "complete", err
    assert verdicts(record) == verdicts(direct)
    assert "Traceback" not in err
    assert vpx.inventory() == before


def test_serial_file_lost_for_good_ends_the_boot_and_cleans_up(vpx, player, tmp_path):
    """Every read of the serial file fails (the connection drops each
    time): after the console's allowance of errors in a row the boot ends,
    its probes CRASH saying so, and the clean-up (SOAP, which still works)
    leaves nothing."""
    before = vpx.inventory()
    with Proxy(vpx) as proxy:
        proxy.drop("folder", -1)
        proc, record = run(vpx, profile(tmp_path, vpx, via=proxy), tmp_path, "--probes", "cpu.cpuid.basic")
    assert record is not None, proc.stderr
    results = record["results"]
    assert results and {r["verdict"] for r in results} == {"CRASH"}, results
    assert "com1.log" in results[0]["detail"], results[0]["detail"]
    assert "Traceback" not in proc.stderr and proxy.dropped
    assert vpx.inventory() == before


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_run_leaves_nothing(vpx, player, tmp_path, sig):
    """Ctrl-C or SIGTERM while a VM runs: nvct stops, powers it off,
    destroys it, deletes its folder and logs out."""
    before = vpx.inventory()
    record = tmp_path / "run.json"
    child = subprocess.Popen([sys.executable, "-m", "conformance", "run", "--profile", str(profile(tmp_path, vpx)),
                              "-o", str(record)], cwd=ROOT, env={**os.environ, **vpx.env()},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 600
    while not any("argv" in p for p in player.played.values()) and child.poll() is None:
        assert time.monotonic() < deadline, "no VM was powered on"
        time.sleep(0.1)
    child.send_signal(sig)
    out, err = child.communicate(timeout=600)
    assert "Traceback" not in err and vpx.password not in out + err
    assert json.loads(record.read_text())["status"] == "interrupted", err
    assert vpx.inventory() == before


def test_without_go_or_govmomi_the_reason_names_the_package(monkeypatch, tmp_path):
    """What a test that needs the simulator says when it cannot have it."""
    from support import vcsim

    monkeypatch.setattr(vcsim.shutil, "which", lambda name: None)
    with pytest.raises(Unavailable, match=r"needs Go \(Debian package golang-go\)"):
        vcsim.build()
    monkeypatch.undo()
    monkeypatch.setattr(vcsim, "GOVMOMI", tmp_path / "no-govmomi")
    with pytest.raises(Unavailable, match=r"Debian package golang-github-vmware-govmomi-dev"):
        vcsim.build()


def test_old_simulator_binaries_are_pruned_and_the_current_one_kept(tmp_path):
    """Each change to main.go builds a new 25 MB binary: the ones of other
    versions go once unused for an hour; the current one and a fresh one stay."""
    from support.vcsim import prune

    for name in ("0123456789abcdef", "fedcba9876543210", "aaaaaaaaaaaaaaaa"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "vcsim").write_bytes(b"x")
    (tmp_path / "gocache").mkdir()
    old = time.time() - 7200
    for name in ("0123456789abcdef", "fedcba9876543210"):
        os.utime(tmp_path / name, (old, old))
    prune(tmp_path, keep="0123456789abcdef")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0123456789abcdef", "aaaaaaaaaaaaaaaa", "gocache"]
