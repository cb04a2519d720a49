"""Microsoft Hyper-V as L0, driven over PowerShell Remoting (pypsrp).

One PSRP runspace pool is held open for each boot. In it: make a folder
on the host, copy the probe kernel's ISO there, create a generation 1 or 2
VM (static memory, `Set-VMProcessor -ExposeVirtualizationExtensions $true`,
Secure Boot off on generation 2, the ISO on a DVD drive, COM1 on a named
pipe), start a background job on the host that connects to the COM1 pipe
and copies its bytes into a file, start the VM, and poll that file from an
offset until END or a timeout. Leaving the context turns the VM off,
removes it, stops the job and deletes the folder, whatever happened.

Why a job and a file (docs/backends/hyperv.md): PSRP runs commands, it
cannot hand us the host's named pipe. The job lives in our runspace, so it
dies with the session if nvct dies; the file keeps everything the guest
wrote, and reading it "from byte N" makes each poll exact and idempotent.

Every value reaches PowerShell as a bound parameter of a fixed script,
never spliced into script text. pypsrp is imported only here and only when
used (`pip install nvct[hyperv]`).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .base import BackendUnavailable, BootFailed
from .media import iso_supports
from .remote import RemoteVmBackend
from .secrets import ENV_NAME, Credentials, CredentialsMissing, env_name_problem, resolve_credentials
from .transports.polled import FetchError, PolledChunk, PolledConsole

log = logging.getLogger("nvct.hyperv")

INSTALL = "pip install nvct[hyperv]"
CHUNK = 256 * 1024  # bytes of serial output per poll, at most

# The Hyper-V documentation's prerequisites for nested virtualization
# ("Run Hyper-V in a Virtual Machine with Nested Virtualization"):
#   Intel VT-x with EPT: host Windows Server 2016 / Windows 10 or later, VM configuration version 8.0 or later;
#   AMD EPYC / Ryzen: host Windows Server 2022 / Windows 11 or later, VM configuration version 10.0 or later
#   (an earlier revision of the page said 9.3).
MIN_VERSION = {"GenuineIntel": (8, 0), "AuthenticAMD": (10, 0)}
MIN_BUILD = {"GenuineIntel": 14393, "AuthenticAMD": 20348}  # Server 2016 / Windows 10 1607; Server 2022


class RemoteError(Exception):
    """A PowerShell script failed on the host (its error records), or the
    connection did."""


@dataclass(frozen=True)
class HypervSettings:
    host: str  # the Hyper-V host (name or address) with WinRM listening
    port: int = 0  # 0: 5986 with ssl, 5985 without
    ssl: bool = True  # WinRM over HTTPS
    auth: str = "negotiate"  # negotiate, ntlm, kerberos or credssp
    verify_tls: bool = True
    ca_file: str = ""  # a PEM bundle to check the host's certificate against
    user_env: str = "NVCT_HYPERV_USER"  # the NAME of the environment variable holding the user (DOMAIN\user)
    password_env: str = "NVCT_HYPERV_PASSWORD"  # the NAME of the environment variable holding the password
    keyring_service: str = ""  # else: the keyring service holding the password for that user
    generation: int = 1  # 1: BIOS; 2: UEFI only (needs the hybrid BIOS+UEFI ISO)
    memory: int = 256  # MiB, static
    cpus: int = 1
    vm_version: str = ""  # New-VM -Version (configuration version); default: the host's default
    work_dir: str = r"C:\ProgramData\nvct"  # on the host: each boot gets a folder in it
    poll_interval: float = 1.0  # seconds between reads of the serial file
    reader_timeout: int = 60  # seconds the pipe reader may take to start on the host

    def validate(self) -> tuple[str, str] | None:
        if not self.host.strip() or any(c in self.host for c in "/ @?#"):
            return "host", "a host name or address (no scheme, path or user)"
        if not 0 <= self.port <= 65535:
            return "port", "must be 0 (the WinRM default) to 65535"
        if self.auth not in ("negotiate", "ntlm", "kerberos", "credssp"):
            return "auth", f"must be negotiate, ntlm, kerberos or credssp, not {self.auth!r}"
        for key in ("user_env", "password_env"):
            if not re.fullmatch(ENV_NAME, getattr(self, key)):
                return key, env_name_problem(key, getattr(type(self), key))
        if self.generation not in (1, 2):
            return "generation", "must be 1 (BIOS) or 2 (UEFI)"
        if not 32 <= self.memory <= 65536 or self.memory % 2:
            return "memory", "must be an even number of MiB from 32 to 65536 (Hyper-V allocates 2 MiB units)"
        if not 1 <= self.cpus <= 64:
            return "cpus", "must be 1 to 64"
        if self.vm_version and not re.fullmatch(r"\d+\.\d+", self.vm_version):
            return "vm_version", f"a configuration version like 10.0, not {self.vm_version!r}"
        if not re.fullmatch(r"[A-Za-z]:\\[^\"'`$;\r\n]*", self.work_dir):
            return "work_dir", "an absolute Windows path like C:\\ProgramData\\nvct"
        if self.poll_interval <= 0 or self.reader_timeout <= 0:
            return "poll_interval" if self.poll_interval <= 0 else "reader_timeout", "must be more than 0 seconds"
        return None

    @property
    def firmware(self) -> str:
        return "bios" if self.generation == 1 else "efi"


# ---- the PowerShell sent to the host -----------------------------------------------------
# Each script starts with `# nvct:<step>` and takes its values as parameters.

PREFLIGHT = r"""# nvct:preflight
$ErrorActionPreference = 'Stop'
$os = Get-CimInstance -ClassName Win32_OperatingSystem
$cpu = @(Get-CimInstance -ClassName Win32_Processor)[0]
$vmhost = Get-VMHost
$supported = @(Get-VMHostSupportedVersion | ForEach-Object { $_.Version.ToString() })
$default = (Get-VMHostSupportedVersion -Default).Version.ToString()
[pscustomobject]@{
    os = [string]$os.Caption; os_version = [string]$os.Version; os_build = [int]$os.BuildNumber
    cpu_manufacturer = [string]$cpu.Manufacturer; cpu_name = [string]$cpu.Name
    computer = [string]$vmhost.ComputerName
    supported_versions = $supported; default_version = $default
} | ConvertTo-Json -Compress
"""

MKDIR = r"""# nvct:mkdir
param([string]$Dir)
$ErrorActionPreference = 'Stop'
$null = New-Item -ItemType Directory -Path $Dir -Force
"""


def create_script(s: HypervSettings) -> str:
    """The VM, as the Hyper-V docs want it for nesting: static memory,
    virtualization extensions exposed; the ISO on a DVD drive that boots
    first; COM1 on a named pipe; Secure Boot off on generation 2."""
    new_vm = "New-VM -Name $Name -Generation $Generation -MemoryStartupBytes ($MemoryMB * 1MB) -NoVHD -Path $Dir"
    if s.vm_version:
        new_vm += " -Version $Version"
    lines = [
        "# nvct:create",
        "param([string]$Name, [string]$Dir, [int]$Generation, [long]$MemoryMB, [int]$Cpus, [string]$Version,"
        " [string]$Iso, [string]$PipePath)",
        "$ErrorActionPreference = 'Stop'",
        f"$null = {new_vm}",
        "Set-VM -Name $Name -CheckpointType Disabled -AutomaticStopAction TurnOff"
        " -Notes 'nvct conformance run: a disposable VM; delete it if nvct left it behind'",
        "Set-VMMemory -VMName $Name -DynamicMemoryEnabled $false -StartupBytes ($MemoryMB * 1MB)",
        "Set-VMProcessor -VMName $Name -Count $Cpus -ExposeVirtualizationExtensions $true",
        "$dvd = Get-VMDvdDrive -VMName $Name | Select-Object -First 1",
        "if ($dvd) { Set-VMDvdDrive -VMName $Name -ControllerNumber $dvd.ControllerNumber"
        " -ControllerLocation $dvd.ControllerLocation -Path $Iso }",
        "else { $null = Add-VMDvdDrive -VMName $Name -Path $Iso }",
        "$dvd = Get-VMDvdDrive -VMName $Name | Select-Object -First 1",
        "Set-VMComPort -VMName $Name -Number 1 -Path $PipePath",
    ]
    if s.generation == 1:
        lines.append("Set-VMBios -VMName $Name -StartupOrder @('CD', 'IDE', 'LegacyNetworkAdapter', 'Floppy')")
    else:
        lines.append("Set-VMFirmware -VMName $Name -EnableSecureBoot Off -FirstBootDevice $dvd")
    return "\n".join(lines) + "\n"


INSPECT = r"""# nvct:inspect
param([string]$Name)
$ErrorActionPreference = 'Stop'
$vm = Get-VM -Name $Name
$memory = Get-VMMemory -VMName $Name
$processor = Get-VMProcessor -VMName $Name
$r = [ordered]@{
    generation = [int]$vm.Generation; version = [string]$vm.Version
    dynamic_memory = [bool]$memory.DynamicMemoryEnabled; memory_bytes = [long]$memory.Startup
    expose_virtualization_extensions = [bool]$processor.ExposeVirtualizationExtensions
    com1 = [string](Get-VMComPort -VMName $Name -Number 1).Path
    dvd = [string](Get-VMDvdDrive -VMName $Name | Select-Object -First 1).Path
}
if ($vm.Generation -eq 2) { $r.secure_boot = [string](Get-VMFirmware -VMName $Name).SecureBoot }
[pscustomobject]$r | ConvertTo-Json -Compress
"""

# A background job in our runspace: connect to the VM's COM1 pipe (waiting
# for Hyper-V to create it when the VM starts) and copy every byte into
# $Out, which it creates first so that the caller knows it is ready.
START_READER = r"""# nvct:start-reader
param([string]$PipeName, [string]$Out)
$ErrorActionPreference = 'Stop'
$job = Start-Job -ArgumentList $PipeName, $Out -ScriptBlock {
    param($PipeName, $Out)
    $file = [System.IO.File]::Open($Out, [System.IO.FileMode]::Create, [System.IO.FileAccess]::Write,
                                   [System.IO.FileShare]::ReadWrite)
    try {
        $pipe = New-Object System.IO.Pipes.NamedPipeClientStream('.', $PipeName, [System.IO.Pipes.PipeDirection]::In)
        $pipe.Connect(600000)
        $buffer = New-Object byte[] 4096
        while (($n = $pipe.Read($buffer, 0, $buffer.Length)) -gt 0) { $file.Write($buffer, 0, $n); $file.Flush() }
        $pipe.Dispose()
    } finally { $file.Dispose() }
}
$job.Id
"""

START = r"""# nvct:start
param([string]$Name, [string]$Out, [int]$WaitSeconds)
$ErrorActionPreference = 'Stop'
$deadline = (Get-Date).AddSeconds($WaitSeconds)
while (-not (Test-Path -LiteralPath $Out)) {
    if ((Get-Date) -gt $deadline) { throw "the COM1 pipe reader did not start within $WaitSeconds s" }
    Start-Sleep -Milliseconds 200
}
Start-VM -Name $Name
"""

# The VM's state first, then the bytes: a VM found off has written all it will.
POLL = r"""# nvct:poll
param([string]$Name, [string]$Out, [long]$Offset, [int]$Max, [int]$JobId)
$ErrorActionPreference = 'Stop'
$state = [string](Get-VM -Name $Name).State
$data = ''
if (Test-Path -LiteralPath $Out) {
    $file = [System.IO.File]::Open($Out, [System.IO.FileMode]::Open, [System.IO.FileAccess]::Read,
                                   [System.IO.FileShare]::ReadWrite)
    try {
        if ($file.Length -gt $Offset) {
            $null = $file.Seek($Offset, [System.IO.SeekOrigin]::Begin)
            $buffer = New-Object byte[] ([Math]::Min([long]$Max, $file.Length - $Offset))
            $n = $file.Read($buffer, 0, $buffer.Length)
            $data = [Convert]::ToBase64String($buffer, 0, $n)
        }
    } finally { $file.Dispose() }
}
$job = Get-Job -Id $JobId -ErrorAction SilentlyContinue
$reader = if ($job) { [string]$job.State } else { 'Missing' }
$why = ''
if ($job -and $job.State -eq 'Failed') { $why = [string]$job.ChildJobs[0].JobStateInfo.Reason.Message }
[pscustomobject]@{ state = $state; data = $data; reader = $reader; reader_error = $why } | ConvertTo-Json -Compress
"""

# Idempotent: whatever exists of this boot goes, each step whatever the last did.
CLEANUP = r"""# nvct:cleanup
param([string]$Name, [string]$Dir, [int]$JobId)
$problems = @()
$vm = Get-VM -Name $Name -ErrorAction SilentlyContinue
if ($vm) {
    if ($vm.State -ne 'Off') {
        try { Stop-VM -Name $Name -TurnOff -Force -ErrorAction Stop }
        catch { $problems += "Stop-VM: $($_.Exception.Message)" }
    }
    try { Remove-VM -Name $Name -Force -ErrorAction Stop } catch { $problems += "Remove-VM: $($_.Exception.Message)" }
}
if ($JobId -ge 0) {
    Stop-Job -Id $JobId -ErrorAction SilentlyContinue
    Remove-Job -Id $JobId -Force -ErrorAction SilentlyContinue
}
if (Test-Path -LiteralPath $Dir) {
    try { Remove-Item -LiteralPath $Dir -Recurse -Force -ErrorAction Stop }
    catch { $problems += "Remove-Item: $($_.Exception.Message)" }
}
ConvertTo-Json -Compress -InputObject @($problems)
"""


# ---- the connection ---------------------------------------------------------------------------


class PsrpApi:
    """pypsrp itself, imported when first used; tests pass a fake instead."""

    def load(self) -> None:
        try:
            from pypsrp import powershell  # type: ignore[import-not-found]
        except ImportError:
            raise BackendUnavailable(f"the hyperv backend needs pypsrp: {INSTALL}") from None
        self.module = powershell

    def open(self, s: HypervSettings, creds: Credentials) -> PsrpSession:
        return PsrpSession(s, creds)


class PsrpSession:
    """One runspace pool with one runspace: the reader job started in it
    lives until the pool is closed."""

    def __init__(self, s: HypervSettings, creds: Credentials):
        from pypsrp.powershell import RunspacePool  # type: ignore[import-not-found]
        from pypsrp.wsman import WSMan  # type: ignore[import-not-found]

        self._args = dict(
            server=s.host, port=s.port or None, username=creds.user, password=creds.password.reveal(), ssl=s.ssl,
            auth=s.auth, cert_validation=s.ca_file or s.verify_tls,
        )  # fmt: skip
        self.pool = RunspacePool(WSMan(**self._args))
        self.pool.open()

    def run(self, script: str, parameters: dict[str, Any]) -> list[str]:
        from pypsrp.powershell import PowerShell  # type: ignore[import-not-found]

        ps = PowerShell(self.pool)
        ps.add_script(script).add_parameters(parameters)
        output = ps.invoke()
        if ps.had_errors:
            raise RemoteError("; ".join(str(e) for e in ps.streams.error) or "the script reported an error")
        return [str(o) for o in output]

    def copy(self, local: Path, remote: str) -> None:
        from pypsrp.client import Client  # type: ignore[import-not-found]

        with Client(**self._args) as client:
            client.copy(str(local), remote)

    def close(self) -> None:
        self.pool.close()


def _json(lines: list[str]) -> Any:
    text = "".join(lines).strip()
    try:
        return json.loads(text) if text else None
    except json.JSONDecodeError:
        raise RemoteError(f"unexpected output: {text[:200]!r}") from None


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:2])


def nesting_problems(info: dict[str, Any], vm_version: str) -> list[str]:
    """The documented prerequisites this host does not meet."""
    vendor = str(info.get("cpu_manufacturer", ""))
    if vendor not in MIN_VERSION:
        return [f"the host's CPU is {vendor or 'unknown'}: Hyper-V documents nesting for Intel VT-x with EPT "
                "and AMD EPYC/Ryzen only"]  # fmt: skip
    problems = []
    need, build = MIN_VERSION[vendor], int(info.get("os_build") or 0)
    name = "Intel" if vendor == "GenuineIntel" else "AMD"
    if build < MIN_BUILD[vendor]:
        host = "Windows Server 2016 / Windows 10" if name == "Intel" else "Windows Server 2022 / Windows 11"
        problems.append(f"nesting on {name} needs a host of {host} or later; this one is build {build}")
    supported = [_version(v) for v in info.get("supported_versions") or []]
    chosen = _version(vm_version or str(info.get("default_version", "")))
    want = ".".join(map(str, need))
    if not any(v >= need for v in supported):
        problems.append(f"nesting on {name} needs VM configuration version {want} or later; the host supports "
                        f"{', '.join(info.get('supported_versions') or []) or 'none'}")  # fmt: skip
    elif chosen < need:
        problems.append(f"nesting on {name} needs VM configuration version {want} or later, not "
                        f"{'.'.join(map(str, chosen))} (vm_version)")  # fmt: skip
    return problems


class HypervBackend(RemoteVmBackend):
    name = "hyperv"
    Settings = HypervSettings

    def __init__(self, settings: HypervSettings, level: int, api: Any = None, environ: dict[str, str] | None = None):
        super().__init__(settings, level)
        self.api = api if api is not None else PsrpApi()
        self.environ = environ
        self.facts: dict[str, Any] = {}
        self.problems: list[str] = []
        self._credentials: Credentials | None = None

    def _open(self) -> Any:
        s = self.settings
        if self._credentials is None:
            try:
                self._credentials = resolve_credentials(s.user_env, s.password_env, s.keyring_service, self.environ,
                                                        self._default("password_env"))  # fmt: skip
            except CredentialsMissing as exc:
                raise BackendUnavailable(f"hyperv {s.host}: no credentials: {exc}") from None
        creds = self._credentials
        try:
            return self.api.open(s, creds)
        except Exception as exc:  # pypsrp's transport and authentication errors alike
            raise BackendUnavailable(self._say(
                f"hyperv: cannot open a PowerShell session on {s.host} as {creds.user} (password from "
                f"{creds.source}): {type(exc).__name__}: {exc}"
            )) from None  # fmt: skip

    def _preflight(self) -> None:
        s = self.settings
        self.api.load()
        if not iso_supports(s.firmware):
            raise BackendUnavailable("generation 2 boots only UEFI, which needs the hybrid BIOS+UEFI boot ISO; "
                                     "this nvct's make_iso makes a BIOS-only ISO: use generation: 1")  # fmt: skip
        session = self._open()
        try:
            info = _json(session.run(PREFLIGHT, {}))
        except Exception as exc:
            raise BackendUnavailable(self._say(f"hyperv {s.host}: the pre-flight check failed: "
                                               f"{type(exc).__name__}: {exc}")) from None  # fmt: skip
        finally:
            _close(session)
        if not isinstance(info, dict):
            raise BackendUnavailable(f"hyperv {s.host}: the pre-flight check returned nothing")
        self.problems = nesting_problems(info, s.vm_version)
        self.facts = {f"hyperv.{key}": value for key, value in info.items()}
        self.facts["hyperv.nesting_ok"] = not self.problems
        if self.problems:
            self.facts["hyperv.nesting_problems"] = list(self.problems)

    def version(self) -> str:
        os_name = self.facts.get("hyperv.os")
        return f"{os_name} ({self.facts.get('hyperv.os_version')})" if os_name else "unknown (not connected)"

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info["preflight"] = dict(self.facts)
        return info

    def _new_boot(self, name: str) -> _Boot:
        return _Boot(self, name)


def _close(session: Any) -> None:
    try:
        session.close()
    except Exception as exc:
        log.warning("hyperv: closing the PowerShell session failed: %s", type(exc).__name__)


class _Boot:
    def __init__(self, backend: HypervBackend, name: str):
        self.b = backend
        self.name = name
        s = backend.settings
        self.dir = s.work_dir.rstrip("\\") + "\\" + name
        self.iso = self.dir + "\\nvct.iso"
        self.out = self.dir + "\\com1.log"
        self.pipe = name
        self.step = "opening a PowerShell session"
        self.session: Any = None
        self.job = -1
        self.dir_made = False

    def start(self, iso: Path) -> PolledConsole:
        s = self.b.settings
        self.session = self.b._open()
        self.step = f"making {self.dir}"
        self.dir_made = True  # even a failed New-Item may have made it: the clean-up checks
        self.session.run(MKDIR, {"Dir": self.dir})
        self.step = f"copying the boot ISO to {self.iso}"
        self.session.copy(iso, self.iso)
        self.step = f"creating the VM {self.name}"
        self.session.run(create_script(s), {
            "Name": self.name, "Dir": self.dir, "Generation": s.generation, "MemoryMB": s.memory, "Cpus": s.cpus,
            "Version": s.vm_version, "Iso": self.iso, "PipePath": f"\\\\.\\pipe\\{self.pipe}",
        })  # fmt: skip
        self.step = f"checking the VM {self.name}"
        vm = _json(self.session.run(INSPECT, {"Name": self.name})) or {}
        facts = {"hyperv.vm": self.name, **{f"hyperv.vm_{k}": v for k, v in vm.items()}}
        wrong = []
        if vm.get("expose_virtualization_extensions") is not True:
            wrong.append("virtualization extensions are not exposed")
        if vm.get("dynamic_memory") is not False:
            wrong.append("dynamic memory is on")
        if s.generation == 2 and vm.get("secure_boot") != "Off":
            wrong.append(f"Secure Boot is {vm.get('secure_boot')}")
        if wrong:
            raise BootFailed(f"hyperv: the VM {self.name} is not as created: {'; '.join(wrong)}")
        self.step = "starting the COM1 pipe reader"
        self.job = int(_json(self.session.run(START_READER, {"PipeName": self.pipe, "Out": self.out})))
        self.step = f"starting the VM {self.name}"
        self.session.run(START, {"Name": self.name, "Out": self.out, "WaitSeconds": s.reader_timeout})
        self.step = "reading the serial output"
        console = PolledConsole(self.fetch, label=f"hyperv VM {self.name}", interval=s.poll_interval, say=self.b._say)
        console.facts.update(self.b.facts)
        console.facts.update(facts)
        return console

    def fetch(self, offset: int) -> PolledChunk:
        try:
            reply = _json(self.session.run(POLL, {"Name": self.name, "Out": self.out, "Offset": offset,
                                                  "Max": CHUNK, "JobId": self.job}))  # fmt: skip
        except Exception as exc:
            raise FetchError(self.b._say(f"{type(exc).__name__}: {exc}")) from None
        if not isinstance(reply, dict):
            raise FetchError("the poll returned nothing")
        try:
            data = base64.b64decode(reply.get("data") or "", validate=True)
        except (binascii.Error, ValueError):
            raise FetchError("the poll returned data that is not base64") from None
        state, reader = str(reply.get("state", "")), str(reply.get("reader", ""))
        more = len(data) >= CHUNK  # the file holds more than one poll returns
        if state != "Running" and not more:
            return PolledChunk(data, True, f"hyperv VM {self.name} is {state or 'gone'}")
        if reader == "Failed" and not more:
            return PolledChunk(
                data, True, f"the COM1 pipe reader on the host failed: {reply.get('reader_error') or '?'}"
            )
        if reader in ("Completed", "Stopped", "Missing") and not more:
            return PolledChunk(data, True, f"the COM1 pipe of hyperv VM {self.name} closed (reader {reader})")
        return PolledChunk(data)

    def clean_up(self) -> None:
        if self.session is None:
            return
        if self.dir_made:
            try:
                left = _json(self.session.run(CLEANUP, {"Name": self.name, "Dir": self.dir, "JobId": self.job}))
            except Exception as exc:
                left = [f"{type(exc).__name__}: {exc}"]
            if left and not isinstance(left, list):
                left = [left]
            if left:
                log.warning("%s", self.b._say(
                    f"hyperv: clean-up of {self.name} on {self.b.settings.host} left something behind "
                    f"({'; '.join(map(str, left))}); remove the VM {self.name} and {self.dir} by hand"
                ))  # fmt: skip
        _close(self.session)
        self.session = None
