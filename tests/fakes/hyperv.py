"""A FAKE Hyper-V host behind PowerShell Remoting: stands in for pypsrp
and a Windows host in the tests.

Nothing here runs PowerShell. FakeHypervHost plays the part of
conformance.backends.hyperv.PsrpApi, FakePsrpSession that of one runspace
pool: it records every script sent with its parameters, recognises each
script by its `# nvct:<step>` first line, and acts out what the script
would do on a host (a VM table, files, a pipe-reader job, a scripted guest
writing to COM1). How real Hyper-V behaves is checked only by the live test
(NVCT_HYPERV_HOST).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.backends.hyperv import RemoteError


@dataclass
class Sent:
    """One script sent to the fake host, with its bound parameters."""

    step: str
    script: str
    parameters: dict[str, Any]


@dataclass
class FakeVm:
    name: str
    generation: int
    memory_mb: int
    state: str = "Off"
    dynamic_memory: bool = True  # New-VM's default, until Set-VMMemory
    expose: bool = False
    secure_boot: str = "On"
    version: str = "10.0"
    com1: str = ""
    dvd: str = ""
    pending: list[bytes] = field(default_factory=list)


class FakeHypervHost:
    """A fake standing in for pypsrp in front of one Hyper-V host."""

    def __init__(self, user: str = "LAB\\nvct", password: str = "fake-password", cpu: str = "GenuineIntel",
                 build: int = 20348, versions: tuple[str, ...] = ("8.0", "9.0", "10.0"), default: str = "10.0",
                 guest_output: list[bytes] | None = None, loaded: bool = True, power_off_at_end: bool = False,
                 apply_settings: bool = True):  # fmt: skip
        self.user, self.password = user, password
        self.cpu, self.build, self.versions, self.default = cpu, build, versions, default
        self.guest_output = guest_output or []
        self.loaded = loaded
        self.power_off_at_end = power_off_at_end
        self.apply_settings = apply_settings  # False: a host that ignores Set-VMProcessor and Set-VMMemory
        self.fail: dict[str, Any] = {}  # step -> the error that step's script reports, or an exception to raise
        self.preflight_reply: dict[str, Any] | None = None  # else: what a host of the settings above says
        self.sent: list[Sent] = []
        self.log: list[str] = []
        self.vms: dict[str, FakeVm] = {}
        self.dirs: set[str] = set()
        self.files: dict[str, bytearray] = {}
        self.jobs: dict[int, dict[str, Any]] = {}
        self.sessions_open = 0

    # -- PsrpApi --------------------------------------------------------------------------------

    def load(self) -> None:
        from conformance.backends import BackendUnavailable

        if not self.loaded:
            raise BackendUnavailable("the hyperv backend needs pypsrp: pip install nvct[hyperv]")

    def open(self, settings: Any, creds: Any) -> FakePsrpSession:
        self.log.append(f"open {settings.host} user={creds.user} auth={settings.auth} ssl={settings.ssl}")
        if isinstance(self.fail.get("open"), BaseException):
            raise self.fail["open"]
        if "open" in self.fail:
            raise ConnectionError(self.fail["open"].replace("{password}", creds.password.reveal()))
        if creds.user != self.user or creds.password.reveal() != self.password:
            raise PermissionError("the server rejected the credentials (401)")
        self.sessions_open += 1
        return FakePsrpSession(self)

    def leftovers(self) -> dict[str, Any]:
        return {k: v for k, v in (("vms", list(self.vms)), ("dirs", sorted(self.dirs)), ("files", sorted(self.files)),
                                  ("jobs", list(self.jobs)), ("sessions", self.sessions_open)) if v}  # fmt: skip

    def scripts(self, step: str) -> list[Sent]:
        return [s for s in self.sent if s.step == step]


class FakePsrpSession:
    """A fake standing in for a pypsrp RunspacePool on the fake host."""

    def __init__(self, host: FakeHypervHost):
        self.host = host
        self.closed = False

    def close(self) -> None:
        assert not self.closed
        self.closed = True
        self.host.sessions_open -= 1
        self.host.log.append("close")
        self.host.jobs.clear()  # jobs die with their runspace

    def copy(self, local: Path, remote: str) -> None:
        self.host.log.append(f"copy {Path(local).name} -> {remote}")
        if "copy" in self.host.fail:
            raise RemoteError(self.host.fail["copy"])
        folder = remote.rsplit("\\", 1)[0]
        if folder not in self.host.dirs:
            raise RemoteError(f"Could not find a part of the path '{remote}'.")
        self.host.files[remote] = bytearray(Path(local).read_bytes())

    def run(self, script: str, parameters: dict[str, Any]) -> list[str]:
        first = script.splitlines()[0]
        assert first.startswith("# nvct:"), first
        step = first[len("# nvct:") :]
        h = self.host
        h.sent.append(Sent(step, script, dict(parameters)))
        h.log.append(f"run {step} {json.dumps(parameters, sort_keys=True)}")
        if isinstance(h.fail.get(step), BaseException):
            raise h.fail[step]
        if step in h.fail:
            raise RemoteError(h.fail[step])
        return getattr(self, "_" + step.replace("-", "_"))(**parameters)

    # -- what each script does on a host ---------------------------------------------------------------

    def _preflight(self) -> list[str]:
        h = self.host
        if h.preflight_reply is not None:
            return [json.dumps(h.preflight_reply)]
        return [json.dumps({"os": "FAKE Microsoft Windows Server (a fake)", "os_version": f"10.0.{h.build}",
                            "os_build": h.build, "cpu_manufacturer": h.cpu, "cpu_name": "Fake CPU",
                            "computer": "HV1", "supported_versions": list(h.versions),
                            "default_version": h.default})]  # fmt: skip

    def _mkdir(self, Dir: str) -> list[str]:
        self.host.dirs.add(Dir)
        return []

    def _create(self, Name, Dir, Generation, MemoryMB, Cpus, Version, Iso, PipePath) -> list[str]:
        h = self.host
        vm = FakeVm(Name, Generation, MemoryMB, version=Version or h.default)
        if h.apply_settings:
            vm.dynamic_memory = False
            vm.expose = True
            if Generation == 2:
                vm.secure_boot = "Off"
        vm.com1, vm.dvd = PipePath, Iso
        h.vms[Name] = vm
        return []

    def _inspect(self, Name: str) -> list[str]:
        vm = self.host.vms[Name]
        reply = {"generation": vm.generation, "version": vm.version, "dynamic_memory": vm.dynamic_memory,
                 "memory_bytes": vm.memory_mb << 20, "expose_virtualization_extensions": vm.expose,
                 "com1": vm.com1, "dvd": vm.dvd}  # fmt: skip
        if vm.generation == 2:
            reply["secure_boot"] = vm.secure_boot
        return [json.dumps(reply)]

    def _start_reader(self, PipeName: str, Out: str) -> list[str]:
        h = self.host
        job = max(h.jobs, default=0) + 1
        h.jobs[job] = {"pipe": PipeName, "out": Out, "state": "Running"}
        h.files[Out] = bytearray()
        return [str(job)]

    def _start(self, Name: str, Out: str, WaitSeconds: int) -> list[str]:
        h = self.host
        if Out not in h.files:
            raise RemoteError(f"the COM1 pipe reader did not start within {WaitSeconds} s")
        vm = h.vms[Name]
        vm.state = "Running"
        vm.pending = list(h.guest_output)
        return []

    def _poll(self, Name: str, Out: str, Offset: int, Max: int, JobId: int) -> list[str]:
        h = self.host
        vm = h.vms[Name]
        job = h.jobs.get(JobId)
        if vm.state == "Running" and vm.pending and job and job["state"] == "Running":
            h.files[Out] += vm.pending.pop(0)  # the guest writes, the job copies it into the file
            if not vm.pending and h.power_off_at_end:
                vm.state = "Off"
                job["state"] = "Completed"
        data = bytes(h.files.get(Out, b""))[Offset : Offset + Max]
        return [json.dumps({"state": vm.state, "data": base64.b64encode(data).decode(),
                            "reader": job["state"] if job else "Missing", "reader_error": ""})]  # fmt: skip

    def _cleanup(self, Name: str, Dir: str, JobId: int) -> list[str]:
        h = self.host
        vm = h.vms.get(Name)
        problems = []
        if vm is not None:
            if "Remove-VM" in h.fail:
                vm.state = "Off"
                problems.append(f"Remove-VM: {h.fail['Remove-VM']}")
            else:
                del h.vms[Name]
        h.jobs.pop(JobId, None)
        if Dir in h.dirs:
            h.dirs.discard(Dir)
            for path in [p for p in h.files if p.startswith(Dir + "\\")]:
                del h.files[path]
        return [json.dumps(problems)]
