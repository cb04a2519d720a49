"""The Hyper-V backend: the PowerShell it sends (each cmdlet and parameter),
its pre-flight facts, its clean-up on every path, and that no secret leaks.
All but the last test run against FAKES (tests/fakes/hyperv.py), which
stand in for pypsrp and a Windows host; the live test runs only when
NVCT_HYPERV_HOST names a real host."""

from __future__ import annotations

import json
import os
import re
import threading
import traceback

import pytest
from conftest import ROOT, nvct
from fakes import PROBES, payload, probe_kernel_output, run
from fakes.hyperv import FakeHypervHost

from conformance.backends import BACKENDS, BackendUnavailable, BootFailed, remote
from conformance.backends import hyperv as hv
from conformance.backends.hyperv import HypervBackend, HypervSettings, create_script, nesting_problems
from conformance.backends.transports import ConsoleTimeout
from conformance.core.profile import ProfileError, load_profile
from conformance.core.verdicts import Verdict

ENV = {"NVCT_HYPERV_USER": "LAB\\nvct", "NVCT_HYPERV_PASSWORD": "fake-password"}


def pieces(lines: list[bytes], size: int = 41) -> list[bytes]:
    data = b"".join(lines)
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.fixture(autouse=True)
def fake_iso(monkeypatch):
    """A stand-in for media.make_iso's ISO (that is tested with QEMU and Bochs)."""

    def make(kernel, cmdline, dest, firmware):
        dest.write_bytes(f"FAKE {firmware} ISO {cmdline}".encode())
        return dest

    monkeypatch.setattr(remote, "make_boot_iso", make)  # RemoteVmBackend.boot_payload makes it


def backend(host: FakeHypervHost, env: dict | None = None, **settings) -> HypervBackend:
    s = HypervSettings(host="hv1.example.test", **{"poll_interval": 0.01, **settings})
    b = HypervBackend(s, 0, api=host, environ=ENV if env is None else env)
    b.preflight()
    return b


def params_declared(script: str) -> set[str]:
    match = re.search(r"^param\((.*?)\)\s*$", script, re.MULTILINE | re.DOTALL)
    return set(re.findall(r"\$(\w+)", match.group(1))) if match else set()


def line_with(script: str, cmdlet: str) -> str:
    found = [line.strip() for line in script.splitlines() if re.search(rf"(^|[\s{{(=]){re.escape(cmdlet)}\s", line)]
    assert len(found) == 1, (cmdlet, found)
    return found[0]


# ---- the PowerShell ---------------------------------------------------------------------------------


@pytest.mark.parametrize("generation", [1, 2])
def test_create_script_cmdlets_and_parameters(generation):
    script = create_script(HypervSettings(host="h", generation=generation))
    assert params_declared(script) == {"Name", "Dir", "Generation", "MemoryMB", "Cpus", "Version", "Iso", "PipePath"}
    assert line_with(script, "New-VM") == (
        "$null = New-VM -Name $Name -Generation $Generation -MemoryStartupBytes ($MemoryMB * 1MB) -NoVHD -Path $Dir"
    )
    assert line_with(script, "Set-VMMemory") == (
        "Set-VMMemory -VMName $Name -DynamicMemoryEnabled $false -StartupBytes ($MemoryMB * 1MB)"
    )
    assert line_with(script, "Set-VMProcessor") == (
        "Set-VMProcessor -VMName $Name -Count $Cpus -ExposeVirtualizationExtensions $true"
    )
    assert line_with(script, "Set-VMComPort") == "Set-VMComPort -VMName $Name -Number 1 -Path $PipePath"
    assert "-Path $Iso" in line_with(script, "Set-VMDvdDrive")
    assert line_with(script, "Add-VMDvdDrive").endswith("Add-VMDvdDrive -VMName $Name -Path $Iso }")
    assert "-CheckpointType Disabled" in line_with(script, "Set-VM")
    if generation == 2:
        assert line_with(script, "Set-VMFirmware") == (
            "Set-VMFirmware -VMName $Name -EnableSecureBoot Off -FirstBootDevice $dvd"
        )
        assert "Set-VMBios" not in script
    else:
        assert line_with(script, "Set-VMBios").startswith("Set-VMBios -VMName $Name -StartupOrder @('CD',")
        assert "Set-VMFirmware" not in script
    assert "-Version" not in script and "Start-VM" not in script  # nesting is set while the VM is off


def test_create_script_with_configuration_version():
    script = create_script(HypervSettings(host="h", vm_version="9.0"))
    assert line_with(script, "New-VM").endswith("-NoVHD -Path $Dir -Version $Version")


def test_cleanup_and_reader_scripts():
    cleanup = hv.CLEANUP
    assert params_declared(cleanup) == {"Name", "Dir", "JobId"}
    order = [cleanup.index(c) for c in ("Stop-VM -Name $Name -TurnOff -Force", "Remove-VM -Name $Name -Force",
                                        "Stop-Job -Id $JobId", "Remove-Job -Id $JobId -Force",
                                        "Remove-Item -LiteralPath $Dir -Recurse -Force")]  # fmt: skip
    assert order == sorted(order)
    reader = hv.START_READER
    assert "Start-Job" in reader
    assert "NamedPipeClientStream('.', $PipeName, [System.IO.Pipes.PipeDirection]::In)" in reader
    assert "[System.IO.FileShare]::ReadWrite" in reader and "$file.Flush()" in reader
    assert "Start-VM -Name $Name" in hv.START and "Test-Path -LiteralPath $Out" in hv.START
    poll = hv.POLL
    assert poll.index("Get-VM -Name $Name") < poll.index("[System.IO.File]::Open")  # state, then bytes
    assert "ConvertTo-Json" in poll and "ToBase64String" in poll


def test_every_script_gets_exactly_its_parameters(tmp_path):
    host = FakeHypervHost(guest_output=pieces(probe_kernel_output(PROBES)))
    b = backend(host, generation=1, memory=512, cpus=2, work_dir="D:\\nvct work")
    run(b, tmp_path)
    steps = [s.step for s in host.sent]
    assert steps[:7] == ["preflight", "mkdir", "create", "inspect", "start-reader", "start", "poll"]
    assert steps[-1] == "cleanup"
    for sent in host.sent:
        assert params_declared(sent.script) == set(sent.parameters), sent.step
    create = host.scripts("create")[0].parameters
    name = create["Name"]
    assert re.fullmatch(r"nvct-[0-9a-f]{8}", name)
    assert create == {"Name": name, "Dir": f"D:\\nvct work\\{name}", "Generation": 1, "MemoryMB": 512, "Cpus": 2,
                      "Version": "", "Iso": f"D:\\nvct work\\{name}\\nvct.iso",
                      "PipePath": f"\\\\.\\pipe\\{name}"}  # fmt: skip
    assert host.scripts("start-reader")[0].parameters == {"PipeName": name, "Out": f"D:\\nvct work\\{name}\\com1.log"}
    # No value is spliced into a script: the texts hold none of them.
    for sent in host.sent:
        assert name not in sent.script and "nvct work" not in sent.script


# ---- settings and profiles ----------------------------------------------------------------------------


def test_registered_and_template_loads():
    assert BACKENDS["hyperv"] is HypervBackend
    profile = load_profile(ROOT / "profiles" / "hyperv.yaml")
    (spec,) = profile.stack
    assert spec.backend == "hyperv" and spec.settings.generation == 1


@pytest.mark.parametrize("key,value", [("generation", 3), ("memory", 255), ("auth", "basic"),
                                       ("work_dir", "nvct"), ("vm_version", "ten"),
                                       ("password_env", "pa ss")])  # fmt: skip
def test_bad_settings_name_the_key(tmp_path, key, value):
    path = tmp_path / "p.yaml"
    path.write_text(f"stack:\n  - backend: hyperv\n    host: hv1\n    {key}: {json.dumps(value)}\n")
    with pytest.raises(ProfileError) as err:
        load_profile(path)
    assert f"stack[0].{key}" in str(err.value) and ":4:" in str(err.value)
    if key == "password_env":
        assert "pa ss" not in str(err.value)


# ---- pre-flight: the Hyper-V docs' prerequisites for nesting --------------------------------------------


def test_preflight_facts():
    host = FakeHypervHost()
    b = backend(host)
    facts = b.describe()["preflight"]
    assert facts["hyperv.cpu_manufacturer"] == "GenuineIntel"
    assert facts["hyperv.supported_versions"] == ["8.0", "9.0", "10.0"]
    assert facts["hyperv.nesting_ok"] is True
    assert b.version().startswith("FAKE Microsoft Windows Server")
    assert host.leftovers() == {}


@pytest.mark.parametrize("info,vm_version,problem", [
    ({"cpu_manufacturer": "GenuineIntel", "os_build": 20348, "supported_versions": ["8.0", "10.0"],
      "default_version": "10.0"}, "", None),
    ({"cpu_manufacturer": "GenuineIntel", "os_build": 14393, "supported_versions": ["5.0", "8.0"],
      "default_version": "8.0"}, "", None),
    ({"cpu_manufacturer": "GenuineIntel", "os_build": 20348, "supported_versions": ["8.0", "10.0"],
      "default_version": "10.0"}, "7.0", "version 8.0 or later, not 7.0"),
    ({"cpu_manufacturer": "GenuineIntel", "os_build": 9600, "supported_versions": ["5.0"],
      "default_version": "5.0"}, "", "Windows Server 2016"),
    ({"cpu_manufacturer": "AuthenticAMD", "os_build": 19045, "supported_versions": ["8.0", "9.0", "9.3"],
      "default_version": "9.0"}, "", "Windows Server 2022 / Windows 11"),
    ({"cpu_manufacturer": "AuthenticAMD", "os_build": 22631, "supported_versions": ["9.0", "10.0", "11.0"],
      "default_version": "11.0"}, "", None),
    ({"cpu_manufacturer": "AuthenticAMD", "os_build": 22631, "supported_versions": ["9.0", "10.0", "11.0"],
      "default_version": "11.0"}, "9.0", "version 10.0 or later"),
    ({"cpu_manufacturer": "CentaurHauls", "os_build": 22631}, "", "Intel VT-x with EPT and AMD EPYC/Ryzen only"),
])  # fmt: skip
def test_nesting_prerequisites(info, vm_version, problem):
    problems = nesting_problems(info, vm_version)
    if problem is None:
        assert problems == []
    else:
        assert any(problem in p for p in problems), problems


def test_host_that_cannot_nest_skips_the_level(tmp_path):
    host = FakeHypervHost(cpu="AuthenticAMD", build=17763, versions=("8.0", "9.0"), default="9.0")
    b = backend(host)
    assert b.facts["hyperv.nesting_ok"] is False
    outcome = run(b, tmp_path)
    assert {r.verdict for r in outcome.results} == {Verdict.SKIP}
    assert "Windows Server 2022" in outcome.results[0].detail
    assert not host.scripts("create")


def test_generation_2_needs_the_hybrid_iso(monkeypatch):
    monkeypatch.setattr(hv, "iso_supports", lambda firmware: firmware == "bios")
    with pytest.raises(BackendUnavailable, match="generation 2 boots only UEFI"):
        backend(FakeHypervHost(), generation=2)
    monkeypatch.setattr(hv, "iso_supports", lambda firmware: True)
    backend(FakeHypervHost(), generation=2)


def test_generation_2_boot(monkeypatch, tmp_path):
    monkeypatch.setattr(hv, "iso_supports", lambda firmware: True)
    host = FakeHypervHost(guest_output=pieces(probe_kernel_output(PROBES)))
    b = backend(host, generation=2)
    outcome = run(b, tmp_path)
    assert [r.verdict for r in outcome.results] == [Verdict.PASS] * 3
    assert outcome.info.hypervisor["runtime"]["hyperv.vm_secure_boot"] == "Off"
    assert "Set-VMFirmware -VMName $Name -EnableSecureBoot Off" in host.scripts("create")[0].script
    assert host.leftovers() == {}


def test_without_pypsrp_says_how_to_install(monkeypatch):
    with pytest.raises(BackendUnavailable, match=r"pip install nvct\[hyperv\]"):
        backend(FakeHypervHost(loaded=False))
    import builtins

    real_import = builtins.__import__

    def no_pypsrp(name, *args, **kwargs):
        if name.startswith("pypsrp"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pypsrp)
    with pytest.raises(BackendUnavailable, match=r"pip install nvct\[hyperv\]"):
        HypervBackend(HypervSettings(host="h"), 0).preflight()


def test_missing_credentials_name_the_variable():
    with pytest.raises(BackendUnavailable, match="NVCT_HYPERV_PASSWORD"):
        backend(FakeHypervHost(), env={"NVCT_HYPERV_USER": "LAB\\nvct"})


def test_keyring_holds_the_password(monkeypatch):
    import sys
    import types

    fake_keyring = types.ModuleType("keyring")  # a fake keyring module: service, user -> password
    stored = {("nvct-hv", "LAB\\nvct"): "fake-password"}
    fake_keyring.get_password = lambda service, user: stored.get((service, user))
    monkeypatch.setitem(sys.modules, "keyring", fake_keyring)
    b = backend(FakeHypervHost(), env={"NVCT_HYPERV_USER": "LAB\\nvct"}, keyring_service="nvct-hv")
    assert b.facts["hyperv.nesting_ok"] is True
    with pytest.raises(BackendUnavailable, match="holds no password"):
        backend(FakeHypervHost(), env={"NVCT_HYPERV_USER": "LAB\\nvct"}, keyring_service="other")


# ---- boots and the clean-up on every path -----------------------------------------------------------------


def test_run_to_end_then_clean_up(tmp_path):
    host = FakeHypervHost(guest_output=pieces(probe_kernel_output(PROBES)))
    b = backend(host)
    outcome = run(b, tmp_path)
    assert [(r.probe, r.verdict) for r in outcome.results] == [(p, Verdict.PASS) for p in PROBES]
    runtime = outcome.info.hypervisor["runtime"]
    assert runtime["hyperv.vm_expose_virtualization_extensions"] is True
    assert runtime["hyperv.vm_dynamic_memory"] is False
    assert host.leftovers() == {}
    assert [line.split()[0] for line in host.log if not line.startswith("run poll")][-2:] == ["run", "close"]


def test_vm_that_turns_off_ends_the_console(tmp_path):
    host = FakeHypervHost(guest_output=pieces(probe_kernel_output(PROBES[:1])[:3]), power_off_at_end=True)
    b = backend(host)
    with b.boot_payload(payload(tmp_path), tmp_path) as console:
        lines = []
        while (line := console.readline(2.0)) is not None:
            lines.append(line)
        assert "is Off" in console.describe_end()
    assert lines[0] == "GRUB loading." and any("HELLO" in line for line in lines)
    assert host.leftovers() == {}


def test_timeout_cleans_up(tmp_path):
    host = FakeHypervHost(guest_output=pieces(probe_kernel_output(PROBES, hang_in=PROBES[-1])))
    outcome = run(backend(host), tmp_path, probe_timeout=1.0)
    assert [r.verdict for r in outcome.results] == [Verdict.PASS, Verdict.PASS, Verdict.TIMEOUT]
    assert host.leftovers() == {}


def test_readline_timeout_raises(tmp_path):
    host = FakeHypervHost()
    b = backend(host)
    with pytest.raises(ConsoleTimeout):
        with b.boot_payload(payload(tmp_path), tmp_path) as console:
            console.readline(0.05)
    assert host.leftovers() == {}


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_exception_or_interrupt_cleans_up(tmp_path, error):
    host = FakeHypervHost(guest_output=pieces(probe_kernel_output(PROBES)))
    b = backend(host)
    with pytest.raises(error):
        with b.boot_payload(payload(tmp_path), tmp_path) as console:
            console.readline(1.0)
            assert host.vms["nvct-" + host.scripts("create")[0].parameters["Name"][5:]].state == "Running"
            raise error()
    assert host.leftovers() == {}
    assert host.scripts("cleanup")


@pytest.mark.parametrize("step", ["mkdir", "copy", "create", "inspect", "start-reader", "start"])
def test_failed_step_is_bootfailed_and_cleans_up(tmp_path, step):
    host = FakeHypervHost(guest_output=pieces(probe_kernel_output(PROBES)))
    b = backend(host)
    host.fail[step] = f"fake error in {step}"
    with pytest.raises(BootFailed, match=f"fake error in {step}"):
        with b.boot_payload(payload(tmp_path), tmp_path):
            pytest.fail("the boot should not have come up")
    assert host.leftovers() == {}
    assert host.scripts("cleanup")


def test_vm_not_as_created_is_bootfailed(tmp_path):
    host = FakeHypervHost(apply_settings=False)
    b = backend(host)
    with pytest.raises(BootFailed, match="virtualization extensions are not exposed; dynamic memory is on"):
        with b.boot_payload(payload(tmp_path), tmp_path):
            pass
    assert host.leftovers() == {}


def test_failed_removal_says_what_is_left(tmp_path, caplog):
    host = FakeHypervHost(guest_output=pieces(probe_kernel_output(PROBES)))
    b = backend(host)
    host.fail["Remove-VM"] = "fake: the VM is locked"
    with b.boot_payload(payload(tmp_path), tmp_path) as console:
        console.readline(1.0)
    (name,) = host.vms
    assert f"remove the VM {name}" in caplog.text and "Remove-VM: fake: the VM is locked" in caplog.text
    assert host.sessions_open == 0 and not host.dirs


def test_kill_from_another_thread_stops_reading(tmp_path):
    host = FakeHypervHost()
    b = backend(host, poll_interval=0.05)
    with b.boot_payload(payload(tmp_path), tmp_path) as console:
        threading.Timer(0.2, console.kill).start()
        assert console.readline(30.0) is None
    assert host.leftovers() == {}


def test_poll_failures_end_the_console(tmp_path):
    host = FakeHypervHost()
    b = backend(host)
    with b.boot_payload(payload(tmp_path), tmp_path) as console:
        host.fail["poll"] = "fake: WinRM timed out"
        assert console.readline(5.0) is None
        assert "lost contact" in console.describe_end()
        assert any("WinRM timed out" in line for line in console.tail())
        del host.fail["poll"]
    assert host.leftovers() == {}


# ---- secrets ------------------------------------------------------------------------------------------------


def test_secret_never_shown(tmp_path, caplog):
    secret = "S3cr3t-planted-%s" % os.getpid()
    env = {"NVCT_HYPERV_USER": "LAB\\nvct", "NVCT_HYPERV_PASSWORD": secret}
    host = FakeHypervHost(password=secret)
    host.fail["open"] = "connection refused; password was {password}"  # a careless library
    with pytest.raises(BackendUnavailable) as err:
        backend(host, env=env)
    shown = [str(err.value), "".join(traceback.format_exception(err.value))]
    host = FakeHypervHost(password=secret, guest_output=pieces(probe_kernel_output(PROBES)))
    b = backend(host, env=env)
    host.fail["create"] = f"New-VM failed (the session of {secret})"
    with pytest.raises(BootFailed) as err2:
        with b.boot_payload(payload(tmp_path), tmp_path):
            pass
    shown += [
        str(err2.value),
        "".join(traceback.format_exception(err2.value)),
        caplog.text,
        *host.log,
        *(json.dumps(s.parameters) + s.script for s in host.sent),
        json.dumps(b.describe(), default=str),
    ]
    for text in shown:
        assert secret not in text
    assert "***" in str(err.value) and "***" in str(err2.value)


# ---- live ---------------------------------------------------------------------------------------------------


@pytest.mark.skipif(not os.environ.get("NVCT_HYPERV_HOST"),
                    reason="live test: set NVCT_HYPERV_HOST (and NVCT_HYPERV_USER, NVCT_HYPERV_PASSWORD) "
                           "to a real Hyper-V host")  # fmt: skip
def test_live_hyperv(tmp_path):
    """Boots the probe kernel on a real Hyper-V host: `nvct run` with a
    profile made from the environment (docs/backends/hyperv.md)."""
    host = json.dumps(os.environ["NVCT_HYPERV_HOST"])
    lines = ["name: hyperv-live", "stack:", "  - backend: hyperv", f"    host: {host}"]
    for key, var, kind in (
        ("port", "NVCT_HYPERV_PORT", int),
        ("auth", "NVCT_HYPERV_AUTH", str),
        ("generation", "NVCT_HYPERV_GENERATION", int),
        ("work_dir", "NVCT_HYPERV_WORK_DIR", str),
    ):
        if os.environ.get(var):
            value = kind(os.environ[var])
            lines.append(f"    {key}: {json.dumps(value)}")
    if os.environ.get("NVCT_HYPERV_INSECURE") == "1":
        lines.append("    verify_tls: false")
    if os.environ.get("NVCT_HYPERV_HTTP") == "1":
        lines.append("    ssl: false")
    lines += ["timeouts:", "  boot: 300", "  probe: 60"]
    profile = tmp_path / "hyperv-live.yaml"
    profile.write_text("\n".join(lines) + "\n")
    record_path = tmp_path / "run.json"
    proc = nvct("run", "--profile", str(profile), "--probes", "cpu.*,vmx.basic*,svm.basic*", "-o",
                str(record_path), timeout=3600)  # fmt: skip
    assert record_path.exists(), proc.stderr
    record = json.loads(record_path.read_text())
    assert record["status"] == "complete", proc.stderr
    level = record["levels"][0]
    assert level["hypervisor"]["backend"] == "hyperv"
    assert "hyperv.nesting_ok" in level["hypervisor"]["preflight"]
    assert level["kernel"].get("build"), f"the probe kernel never said HELLO: {level['problems']}"
    assert record["results"] and not any(r["verdict"] == "CRASH" for r in record["results"])


def test_real_pypsrp_calls(monkeypatch):
    """PsrpSession against pypsrp's real classes, with only the network cut
    out: the WSMan arguments are ones pypsrp takes, the script goes in with
    add_script and its values with add_parameters."""
    powershell = pytest.importorskip("pypsrp.powershell", reason="pypsrp not installed (pip install nvct[hyperv])")
    from conformance.backends.secrets import Credentials, Secret

    opened, invoked = [], []

    def open_pool(self):  # what the server would have said: its protocol version
        self.protocol_version = "2.3"
        opened.append(self)

    monkeypatch.setattr(powershell.RunspacePool, "open", open_pool)
    monkeypatch.setattr(powershell.RunspacePool, "close", lambda self: None)

    def invoke(self, *args, **kwargs):
        invoked.append([(c.cmd, c.is_script, [(a.name, a.value) for a in c.args]) for c in self.commands])
        self.output = ["5"]
        return self.output

    monkeypatch.setattr(powershell.PowerShell, "invoke", invoke)
    s = HypervSettings(host="hv1.example.test", auth="ntlm", ca_file="/nonexistent/ca.pem")
    session = hv.PsrpSession(s, Credentials("LAB\\nvct", Secret("fake-password"), "test"))
    assert opened and opened[0].connection.transport.server == "hv1.example.test"
    assert session.run(hv.START_READER, {"PipeName": "nvct-1", "Out": "C:\\x\\com1.log"}) == ["5"]
    ((cmd, is_script, args),) = invoked[0]
    assert cmd == hv.START_READER and is_script and args == [("PipeName", "nvct-1"), ("Out", "C:\\x\\com1.log")]
    session.close()
