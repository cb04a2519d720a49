"""VMware ESXi (directly, or through vCenter) as L0, driven with pyVmomi.

For each boot: make a folder on a datastore, upload the probe kernel's ISO
into it (HTTP PUT to the host's /folder endpoint with the session cookie),
create a VM with hardware-assisted virtualization exposed
(`nestedHVEnabled`), the ISO on a SATA CD-ROM and COM1 backed by a file in
that folder, power it on, and read the serial file (HTTP GET from an
offset) until END or a timeout. Leaving the context powers the VM off,
destroys it and deletes the folder, whatever happened: an error, a timeout
or Ctrl-C.

pyVmomi is imported only here and only when used (`pip install nvct[esxi]`).
Credentials come from environment variables or a keyring, never from the
profile; they appear in no message (docs/backends/esxi.md).
"""

from __future__ import annotations

import logging
import re
import ssl
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

from .base import BackendUnavailable, BootFailed
from .media import iso_supports
from .remote import RemoteVmBackend
from .secrets import ENV_NAME, Credentials, CredentialsMissing, env_name_problem, resolve_credentials
from .transports.polled import FetchError, PolledChunk, PolledConsole

log = logging.getLogger("nvct.esxi")

INSTALL = "pip install nvct[esxi]"
# featureCapability keys worth reporting: what the host can give a VM for nesting.
_NESTING_KEY = re.compile(r"vmx|svm|nest|\bhv\b|\.hv|ept|npt|rvi|vpid", re.IGNORECASE)


@dataclass(frozen=True)
class EsxiSettings:
    host: str  # the ESXi host or vCenter server (name or address)
    port: int = 443
    user_env: str = "NVCT_ESXI_USER"  # the NAME of the environment variable holding the user
    password_env: str = "NVCT_ESXI_PASSWORD"  # the NAME of the environment variable holding the password
    keyring_service: str = ""  # else: the keyring service holding the password for that user
    verify_tls: bool = True  # check the server's certificate
    ca_file: str = ""  # a PEM bundle to check it against (a self-signed host's certificate)
    datacenter: str = ""  # default: the only one (standalone ESXi: ha-datacenter)
    esxi_host: str = ""  # the host within vCenter; default: the only one
    datastore: str = ""  # default: the host's accessible datastore with the most free space
    firmware: str = "bios"  # bios or efi (efi needs the hybrid BIOS+UEFI ISO)
    memory: int = 256  # MiB
    cpus: int = 1
    hardware_version: str = ""  # vmx-NN; default: the host's newest
    guest_id: str = "otherGuest64"
    poll_interval: float = 1.0  # seconds between reads of the serial file
    task_timeout: float = 300.0  # seconds a vSphere task (create, power on/off, destroy), or a call, may take

    def validate(self) -> tuple[str, str] | None:
        if not self.host.strip() or any(c in self.host for c in "/ @?#"):
            return "host", "a host name or address (no scheme, path or user)"
        for key in ("user_env", "password_env"):
            if not re.fullmatch(ENV_NAME, getattr(self, key)):
                return key, env_name_problem(key, getattr(type(self), key))
        if self.firmware not in ("bios", "efi"):
            return "firmware", f"must be bios or efi, not {self.firmware!r}"
        if not 32 <= self.memory <= 65536:
            return "memory", "must be 32 to 65536 (MiB)"
        if not 1 <= self.cpus <= 64:
            return "cpus", "must be 1 to 64"
        if self.hardware_version and not re.fullmatch(r"vmx-\d+", self.hardware_version):
            return "hardware_version", f"want vmx-NN, not {self.hardware_version!r}"
        if self.poll_interval <= 0 or self.task_timeout <= 0:
            return "poll_interval" if self.poll_interval <= 0 else "task_timeout", "must be more than 0 seconds"
        return None


class VSphereApi:
    """pyVmomi itself, imported when first used; tests pass a fake instead."""

    def __init__(self) -> None:
        self.vim: Any = None

    def load(self) -> None:
        if self.vim is None:
            try:
                from pyVmomi import vim  # type: ignore[import-not-found]
            except ImportError:
                raise BackendUnavailable(f"the esxi backend needs pyVmomi: {INSTALL}") from None
            self.vim = vim

    def connect(self, host: str, port: int, user: str, password: str, context: ssl.SSLContext,
                timeout: float | None = None) -> Any:  # fmt: skip
        """A session whose every call gives up after `timeout` seconds
        without an answer (pyVmomi's default is to wait for ever)."""
        from pyVim.connect import SmartConnect  # type: ignore[import-not-found]

        return SmartConnect(host=host, port=port, user=user, pwd=password, sslContext=context,
                            httpConnectionTimeout=timeout)  # fmt: skip

    def disconnect(self, si: Any) -> None:
        from pyVim.connect import Disconnect  # type: ignore[import-not-found]

        Disconnect(si)

    def http(self, method: str, host: str, port: int, path: str, headers: dict[str, str], body: Any,
             context: ssl.SSLContext, timeout: float = 120.0) -> tuple[int, bytes]:  # fmt: skip
        import http.client

        conn = http.client.HTTPSConnection(host, port, context=context, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()


def session_cookie(si: Any) -> str:
    """The Cookie header that carries the SOAP session to the host's HTTP
    file access (/folder). pyVmomi keeps the server's Set-Cookie on the stub."""
    raw = getattr(si._stub, "cookie", "") or ""
    parsed = SimpleCookie()
    try:
        parsed.load(raw)
    except Exception:  # a cookie SimpleCookie cannot parse: send it as it came
        return raw.split(";", 1)[0]
    morsel = parsed.get("vmware_soap_session")
    return f'vmware_soap_session="{morsel.value.strip(chr(34))}"' if morsel else raw.split(";", 1)[0]


def build_config_spec(vim: Any, s: EsxiSettings, name: str, datastore: str, folder: str) -> Any:
    """The VM: nesting exposed, the boot ISO on a SATA CD-ROM, COM1 (the
    first serial port, I/O port 0x3f8) writing to a file, CD-ROM first in
    the boot order, the firmware the profile asks for."""
    iso = f"[{datastore}] {folder}/nvct.iso"
    serial = f"[{datastore}] {folder}/com1.log"
    device = vim.vm.device

    def connected() -> Any:
        return device.VirtualDevice.ConnectInfo(startConnected=True, connected=False, allowGuestControl=False)

    sata = device.VirtualAHCIController(key=-100, busNumber=0)
    cdrom = device.VirtualCdrom(
        key=-101, controllerKey=-100, unitNumber=0,
        backing=device.VirtualCdrom.IsoBackingInfo(fileName=iso), connectable=connected(),
    )  # fmt: skip
    com1 = device.VirtualSerialPort(
        key=-102, yieldOnPoll=True,
        backing=device.VirtualSerialPort.FileBackingInfo(fileName=serial), connectable=connected(),
    )  # fmt: skip
    boot = vim.vm.BootOptions(bootOrder=[vim.vm.BootOptions.BootableCdromDevice()], bootRetryEnabled=False)
    if s.firmware == "efi":
        boot.efiSecureBootEnabled = False
    spec = vim.vm.ConfigSpec(
        name=name,
        annotation="nvct conformance run: a disposable VM; delete it if nvct left it behind",
        guestId=s.guest_id,
        numCPUs=s.cpus,
        memoryMB=s.memory,
        nestedHVEnabled=True,
        firmware=s.firmware,
        bootOptions=boot,
        files=vim.vm.FileInfo(vmPathName=f"[{datastore}] {folder}/"),
        deviceChange=[device.VirtualDeviceSpec(operation="add", device=d) for d in (sata, cdrom, com1)],
    )
    if s.hardware_version:
        spec.version = s.hardware_version
    return spec


class EsxiBackend(RemoteVmBackend):
    name = "esxi"
    Settings = EsxiSettings

    def __init__(self, settings: EsxiSettings, level: int, api: Any = None,
                 environ: dict[str, str] | None = None, sleep: Callable[[float], None] = time.sleep):  # fmt: skip
        super().__init__(settings, level)
        self.api = api if api is not None else VSphereApi()
        self.environ = environ
        self.sleep = sleep
        self.facts: dict[str, Any] = {}  # what the pre-flight check found
        self.problems: list[str] = []  # why this host cannot expose nesting
        self._credentials: Credentials | None = None
        self._cookies: list[str] = []  # session cookies handed out, kept out of every message

    # -- connecting ---------------------------------------------------------------------

    def _ssl_context(self) -> ssl.SSLContext:
        s = self.settings
        if not s.verify_tls:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        return ssl.create_default_context(cafile=s.ca_file or None)

    def _secrets(self) -> list[Any]:
        return [*super()._secrets(), *self._cookies]

    def _connect(self) -> Any:
        s = self.settings
        if self._credentials is None:
            try:
                self._credentials = resolve_credentials(s.user_env, s.password_env, s.keyring_service, self.environ,
                                                        self._default("password_env"))  # fmt: skip
            except CredentialsMissing as exc:
                raise BackendUnavailable(f"esxi {s.host}: no credentials: {exc}") from None
        creds = self._credentials
        try:
            si = self.api.connect(s.host, s.port, creds.user, creds.password.reveal(), self._ssl_context(),
                                  timeout=s.task_timeout)  # fmt: skip
        except Exception as exc:  # pyVmomi raises vim faults, ssl and socket errors alike
            raise BackendUnavailable(
                self._say(
                    f"esxi: cannot log in to {s.host}:{s.port} as {creds.user} (password from "
                    f"{creds.source}): {type(exc).__name__}: {_fault_text(exc)}"
                )  # fmt: skip
            ) from None
        try:
            header = session_cookie(si)
        except Exception:  # a stub without a cookie: nothing to hide, and the upload will say what is wrong
            header = ""
        self._cookies += [c for c in (header, *re.findall(r'"([^"]+)"', header), header.partition("=")[2]) if c]
        return si

    def _disconnect(self, si: Any) -> None:
        try:
            self.api.disconnect(si)
        except Exception as exc:
            log.warning("%s", self._say(f"esxi {self.settings.host}: logging out failed: {_fault_text(exc)}"))

    # -- the pre-flight check -------------------------------------------------------------

    def _preflight(self) -> None:
        s = self.settings
        self.api.load()
        if not iso_supports(s.firmware):
            raise BackendUnavailable("firmware efi needs the hybrid BIOS+UEFI boot ISO, which this nvct's "
                                     "make_iso does not make yet; use firmware: bios")  # fmt: skip
        si = self._connect()
        try:
            place = self._place(si)
            self.facts = self._host_facts(si, place)
        finally:
            self._disconnect(si)

    def _host_facts(self, si: Any, place: Placement) -> dict[str, Any]:
        about = si.content.about
        host = place.host
        facts: dict[str, Any] = {
            "esxi.product": str(getattr(about, "fullName", "")),
            "esxi.api_version": str(getattr(about, "apiVersion", "")),
            "esxi.host": str(host.name),
            "esxi.datacenter": str(place.datacenter.name),
            "esxi.datastore": str(place.datastore.name),
            "esxi.datastore_free_mib": int(place.datastore.summary.freeSpace) // (1 << 20),
        }
        hardware = getattr(host, "hardware", None)
        packages = list(getattr(hardware, "cpuPkg", None) or [])
        if packages:
            facts["esxi.cpu_vendor"] = str(packages[0].vendor)
            facts["esxi.cpu_description"] = str(getattr(packages[0], "description", ""))
        supported = getattr(host.capability, "nestedHVSupported", None)
        facts["esxi.nested_hv_supported"] = supported
        for cap in list(getattr(host.config, "featureCapability", None) or []):
            if _NESTING_KEY.search(str(cap.key)) or _NESTING_KEY.search(str(getattr(cap, "featureName", ""))):
                facts[f"esxi.feature.{cap.key}"] = str(cap.value)
        self.problems = []
        if supported is False:
            self.problems.append(
                f"ESXi host {host.name} reports nestedHVSupported=false: it cannot expose hardware-assisted "
                "virtualization to a VM (the CPU lacks VT-x/AMD-V with EPT/RVI, or the firmware disables it)"
            )
        facts["esxi.nesting_ok"] = not self.problems
        if self.problems:
            facts["esxi.nesting_problems"] = list(self.problems)
        return facts

    def version(self) -> str:
        return self.facts.get("esxi.product") or "unknown (not connected)"

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info["preflight"] = dict(self.facts)
        return info

    # -- where the VM goes ---------------------------------------------------------------------

    def _place(self, si: Any) -> Placement:
        vim, s = self.api.vim, self.settings
        content = si.content
        dc = _pick(_view(content, content.rootFolder, vim.Datacenter), s.datacenter, "datacenter")
        host = _pick(_view(content, dc.hostFolder, vim.HostSystem), s.esxi_host, "esxi_host")
        stores = list(host.datastore)
        if s.datastore:
            ds = _pick(stores, s.datastore, "datastore")
        else:
            usable = [d for d in stores if d.summary.accessible]
            if not usable:
                raise BackendUnavailable(f"esxi host {host.name} has no accessible datastore")
            ds = max(usable, key=lambda d: d.summary.freeSpace)
        if not ds.summary.accessible:
            raise BackendUnavailable(f"datastore {ds.name} is not accessible on {host.name}")
        return Placement(datacenter=dc, host=host, datastore=ds, pool=host.parent.resourcePool, folder=dc.vmFolder)

    # -- a boot --------------------------------------------------------------------------------------

    def _new_boot(self, name: str) -> _Boot:
        return _Boot(self, name)

    def _fault_text(self, exc: BaseException) -> str:
        return _fault_text(exc)


@dataclass
class Placement:
    datacenter: Any
    host: Any
    datastore: Any
    pool: Any
    folder: Any


class _Boot:
    """One VM's life: its steps, and what has to be undone."""

    def __init__(self, backend: EsxiBackend, name: str):
        self.b = backend
        self.name = name  # the VM's name and its datastore folder's
        self.step = "connecting"
        self.si: Any = None
        self.cookie = ""
        self.place: Placement | None = None
        self.folder_made = False
        self.vm: Any = None
        self.vm_asked = False  # CreateVM_Task was started: a VM of this name may exist even if the task failed

    @property
    def ds_path(self) -> str:
        assert self.place is not None
        return f"[{self.place.datastore.name}] {self.name}"

    def _url_path(self, filename: str) -> str:
        assert self.place is not None
        query = urllib.parse.urlencode({"dcPath": self.place.datacenter.name, "dsName": self.place.datastore.name})
        return f"/folder/{urllib.parse.quote(self.name)}/{urllib.parse.quote(filename)}?{query}"

    def _http(self, method: str, filename: str, headers: dict[str, str], body: Any = None) -> tuple[int, bytes]:
        b = self.b
        s = b.settings
        headers = {"Cookie": self.cookie, **headers}
        return b.api.http(method, s.host, s.port, self._url_path(filename), headers, body, b._ssl_context())

    def _wait(self, task: Any) -> Any:
        deadline = time.monotonic() + self.b.settings.task_timeout
        while True:
            info = task.info
            if info.state == "success":
                return info.result
            if info.state == "error":
                raise BootFailed(self.b._say(f"esxi: {self.step}: {_fault_text(info.error)}"))
            if time.monotonic() > deadline:
                limit = self.b.settings.task_timeout
                raise BootFailed(f"esxi: {self.step}: the task did not finish within {limit:g} s")
            self.b.sleep(0.5)

    def start(self, iso: Path) -> PolledConsole:
        b = self.b
        vim = b.api.vim
        self.si = b._connect()
        self.cookie = session_cookie(self.si)
        self.step = "finding the host and datastore"
        self.place = place = b._place(self.si)
        file_manager = self.si.content.fileManager
        self.step = f"making the folder {self.ds_path}"
        file_manager.MakeDirectory(name=self.ds_path, datacenter=place.datacenter, createParentDirectories=True)
        self.folder_made = True
        self.step = f"uploading the boot ISO to {self.ds_path}"
        size = iso.stat().st_size
        with open(iso, "rb") as body:
            status, reply = self._http("PUT", "nvct.iso", {"Content-Type": "application/octet-stream",
                                                           "Content-Length": str(size)}, body)  # fmt: skip
        if status not in (200, 201, 204):
            raise BootFailed(b._say(f"esxi: {self.step}: HTTP {status} {reply[:200].decode('latin-1', 'replace')}"))
        self.step = f"creating the VM {self.name}"
        spec = build_config_spec(vim, b.settings, self.name, place.datastore.name, self.name)
        self.vm_asked = True
        self.vm = self._wait(place.folder.CreateVM_Task(config=spec, pool=place.pool, host=place.host))
        facts = {"esxi.vm": self.name, **self._vm_facts()}
        self.step = f"powering on the VM {self.name}"
        self._wait(self.vm.PowerOnVM_Task())
        console = PolledConsole(self.fetch, label=f"esxi VM {self.name}", interval=b.settings.poll_interval,
                                say=b._say)  # fmt: skip
        console.facts.update(b.facts)
        console.facts.update(facts)
        self.step = "reading the serial output"
        return console

    def _vm_facts(self) -> dict[str, Any]:
        facts: dict[str, Any] = {}
        try:
            config = self.vm.config
            facts["esxi.vm_nested_hv_enabled"] = getattr(config, "nestedHVEnabled", None)
            facts["esxi.vm_firmware"] = str(getattr(config, "firmware", ""))
            facts["esxi.vm_hardware_version"] = str(getattr(config, "version", ""))
            facts["esxi.vm_nested_hv_supported"] = getattr(self.vm.capability, "nestedHVSupported", None)
        except Exception as exc:  # facts are extras: a host that withholds them still runs
            facts["esxi.vm_facts_error"] = self.b._say(_fault_text(exc))
        return facts

    def fetch(self, offset: int) -> PolledChunk:
        """The serial file's bytes after `offset`, and whether the VM still runs.
        The VM's state is read first, so that a VM found stopped has written
        everything the read then returns."""
        try:
            runtime = self.vm.runtime
            power, question = str(runtime.powerState), runtime.question
        except Exception as exc:
            raise FetchError(self.b._say(f"reading the VM's state: {_fault_text(exc)}")) from None
        try:
            status, body = self._http("GET", "com1.log", {"Range": f"bytes={offset}-"})
        except Exception as exc:  # socket and TLS errors, http.client's (IncompleteRead, BadStatusLine), any other
            raise FetchError(self.b._say(f"reading com1.log: {type(exc).__name__}: {_fault_text(exc)}")) from None
        if status == 206:
            data = body
        elif status == 200:
            data = body[offset:]  # the server ignored the range
        elif status in (404, 416):
            data = b""  # not written yet, or nothing after offset
        else:
            raise FetchError(f"reading com1.log: HTTP {status}")
        if question is not None:
            text = getattr(question, "text", question)
            return PolledChunk(data, True, f"esxi VM {self.name} stopped with a question: {text}")
        if power != "poweredOn":
            return PolledChunk(data, True, f"esxi VM {self.name} is {power}")
        return PolledChunk(data)

    def _find_vm(self) -> Any:
        """The VM named as this boot's, if the host made it though its
        CreateVM_Task failed or did not finish in time."""
        b = self.b
        if self.si is None or self.place is None:
            return None
        try:
            for vm in _view(self.si.content, self.place.folder, b.api.vim.VirtualMachine):
                if vm.name == self.name:
                    return vm
        except Exception as exc:
            log.warning("%s", b._say(f"esxi: looking for the VM {self.name} failed: {_fault_text(exc)}; "
                                     f"check {b.settings.host} for it"))  # fmt: skip
        return None

    def clean_up(self) -> None:
        """Power off, destroy, delete the folder, log out: each step runs
        whatever the one before did, and says what it had to leave behind."""
        b = self.b
        if self.vm is None and self.vm_asked:
            self.vm = self._find_vm()
        if self.vm is not None:
            try:
                if str(self.vm.runtime.powerState) != "poweredOff":
                    self.step = f"powering off the VM {self.name}"
                    self._wait(self.vm.PowerOffVM_Task())
            except Exception as exc:
                log.warning("%s", b._say(f"esxi: powering off {self.name} failed: {_fault_text(exc)}"))
            try:
                self.step = f"destroying the VM {self.name}"
                self._wait(self.vm.Destroy_Task())
                self.vm = None
            except Exception as exc:
                log.warning("%s", b._say(f"esxi: VM {self.name} is left on {b.settings.host} "
                                         f"(destroying it failed: {_fault_text(exc)}); delete it by hand"))  # fmt: skip
        if self.folder_made and self.si is not None and self.place is not None:
            try:
                self.step = f"deleting {self.ds_path}"
                task = self.si.content.fileManager.DeleteDatastoreFile_Task(
                    name=self.ds_path, datacenter=self.place.datacenter
                )
                self._wait(task)
                self.folder_made = False
            except Exception as exc:
                log.warning("%s", b._say(f"esxi: {self.ds_path} is left on the datastore (deleting it failed: "
                                         f"{_fault_text(exc)}); delete it by hand"))  # fmt: skip
        if self.si is not None:
            b._disconnect(self.si)
            self.si = None


def _fault_text(exc: Any) -> str:
    """A vSphere fault's message (`msg`, or its localized form, and the
    privilege a NoPermission fault names), else str(). Never a pyVmomi
    fault's str(), which is its every field over many lines."""
    for attr in ("msg", "localizedMessage"):
        text = getattr(exc, attr, None)
        if text:
            privilege = getattr(exc, "privilegeId", None)
            return f"{text} (the privilege {privilege} is missing)" if privilege else str(text)
    try:
        return str(exc) or type(exc).__name__
    except Exception:  # an object whose str() fails
        return type(exc).__name__


def _view(content: Any, container: Any, kind: Any) -> list[Any]:
    view = content.viewManager.CreateContainerView(container, [kind], True)
    try:
        return list(view.view)
    finally:
        view.Destroy()


def _pick(items: list[Any], name: str, key: str) -> Any:
    names = [str(i.name) for i in items]
    if name:
        for item in items:
            if item.name == name:
                return item
        raise BackendUnavailable(f"no {key} named {name!r} (there are: {', '.join(names) or 'none'})")
    if len(items) == 1:
        return items[0]
    if not items:
        raise BackendUnavailable(f"found no {key}")
    raise BackendUnavailable(f"several of {key}: {', '.join(names)}; name one with `{key}:` in the profile")
