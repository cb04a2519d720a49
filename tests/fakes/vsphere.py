"""A FAKE vSphere: stands in for pyVmomi and an ESXi host in the tests.

Nothing here talks to VMware software. FakeVSphere plays the part of
conformance.backends.esxi.VSphereApi (log in, HTTP file access), FakeVim
the part of pyVmomi's `vim` type namespace, FakeServiceInstance the part of
vim.ServiceInstance. They record what nvct asked for, keep the datastore's
files and the registered VMs in dictionaries, and play a scripted guest on
the fake VM's serial file. What a real host does is checked only by the
live test (NVCT_ESXI_URL).
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any


class FakeVim:
    """A fake standing in for pyVmomi's `vim` namespace: every dotted name
    (vim.vm.ConfigSpec) is a type; calling it makes a FakeData of that type
    with the given fields."""

    def __init__(self, path: str = "vim"):
        self._path = path

    def __getattr__(self, name: str) -> FakeVim:
        if name.startswith("__"):
            raise AttributeError(name)
        return FakeVim(f"{self._path}.{name}")

    def __call__(self, **fields: Any) -> FakeData:
        return FakeData(self._path, fields)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FakeVim) and other._path == self._path

    def __hash__(self) -> int:
        return hash(self._path)

    def __repr__(self) -> str:
        return self._path


class FakeData:
    """A fake vSphere data object: its type name and its fields."""

    def __init__(self, type_name: str, fields: dict[str, Any]):
        self._type = type_name
        self.__dict__.update(fields)

    def fields(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}

    def __repr__(self) -> str:
        return f"{self._type}({self.fields()!r})"


class FakeFault(Exception):
    """A fake vSphere fault (vmodl.MethodFault): a message in `msg`."""

    def __init__(self, msg: str):
        super().__init__(msg)
        self.msg = msg


def failure(api: FakeVSphere, key: str) -> BaseException | None:
    """What the fake's `fail[key]` makes the operation raise: a FakeFault
    with that message, or the exception itself when it is one (a real
    pyVmomi fault, a socket or http.client error)."""
    value = api.fail.get(key)
    if value is None:
        return None
    return value if isinstance(value, BaseException) else FakeFault(value)


class FakeTask:
    """A fake vim.Task, already finished (or, `running`, one that never will)."""

    def __init__(self, result: Any = None, error: str | None = None, running: bool = False):
        state = "running" if running else "error" if error else "success"
        self.info = SimpleNamespace(state=state, result=result, error=FakeFault(error) if error else None)


@dataclass
class FakeVM:
    """A fake vim.VirtualMachine made from the ConfigSpec it was created with."""

    api: FakeVSphere
    spec: FakeData
    name: str
    power: str = "poweredOff"
    question: Any = None
    serial: str = ""  # the datastore path of its COM1 file
    pending: list[bytes] = field(default_factory=list)

    @property
    def config(self) -> Any:
        return SimpleNamespace(nestedHVEnabled=self.spec.nestedHVEnabled, firmware=self.spec.firmware,
                               version=getattr(self.spec, "version", "vmx-21"))  # fmt: skip

    @property
    def capability(self) -> Any:
        return SimpleNamespace(nestedHVSupported=self.api.nested_supported)

    @property
    def runtime(self) -> Any:
        self.api.log.append(f"runtime {self.name}")
        if self.api.fail.get("runtime"):
            raise failure(self.api, "runtime")
        return SimpleNamespace(powerState=self.power, question=self.question)

    def PowerOnVM_Task(self) -> FakeTask:
        self.api.log.append(f"PowerOnVM_Task {self.name}")
        if "PowerOn" in self.api.fail:
            return FakeTask(error=self.api.fail["PowerOn"])
        self.power = "poweredOn"
        self.pending = list(self.api.guest_output)
        self.api.files.setdefault(self.serial, bytearray())
        return FakeTask()

    def PowerOffVM_Task(self) -> FakeTask:
        self.api.log.append(f"PowerOffVM_Task {self.name}")
        self.power = "poweredOff"
        return FakeTask()

    def Destroy_Task(self) -> FakeTask:
        self.api.log.append(f"Destroy_Task {self.name}")
        if "Destroy" in self.api.fail:
            return FakeTask(error=self.api.fail["Destroy"])
        if self.power != "poweredOff":
            return FakeTask(error="The attempted operation cannot be performed in the current state (Powered on).")
        self.api.vms.pop(self.name, None)
        return FakeTask()

    def guest_step(self) -> None:
        """The scripted guest writes its next piece of output."""
        if self.power == "poweredOn" and self.pending:
            self.api.files[self.serial] += self.pending.pop(0)
            if not self.pending and self.api.power_off_at_end:
                self.power = "poweredOff"


class FakeFolder:
    """A fake vim.Folder (a datacenter's vmFolder)."""

    def __init__(self, api: FakeVSphere):
        self.api = api

    def CreateVM_Task(self, config: FakeData, pool: Any, host: Any = None) -> FakeTask:
        self.api.log.append(f"CreateVM_Task {config.name} pool={pool.name} host={host.name}")
        self.api.specs.append(config)
        if "CreateVM" in self.api.fail:
            return FakeTask(error=self.api.fail["CreateVM"])
        serial = next(d.device.backing.fileName for d in config.deviceChange
                      if d.device._type == "vim.vm.device.VirtualSerialPort")  # fmt: skip
        vm = FakeVM(self.api, config, config.name, serial=serial)
        self.api.vms[config.name] = vm
        if "CreateVM-running" in self.api.fail:  # the VM is made, the task never says so
            return FakeTask(running=True)
        return FakeTask(result=vm)


class FakeFileManager:
    """A fake vim.FileManager over the fake datastore's files."""

    def __init__(self, api: FakeVSphere):
        self.api = api

    def MakeDirectory(self, name: str, datacenter: Any = None, createParentDirectories: bool = False) -> None:
        self.api.log.append(f"MakeDirectory {name} dc={datacenter.name}")
        if "MakeDirectory" in self.api.fail:
            raise FakeFault(self.api.fail["MakeDirectory"])
        self.api.folders.add(name)

    def DeleteDatastoreFile_Task(self, name: str, datacenter: Any = None) -> FakeTask:
        self.api.log.append(f"DeleteDatastoreFile_Task {name} dc={datacenter.name}")
        self.api.folders.discard(name)
        for path in [p for p in self.api.files if p.startswith(name + "/")]:
            del self.api.files[path]
        return FakeTask()


class FakeViewManager:
    """A fake vim.view.ViewManager: container views filtered by type."""

    def __init__(self, api: FakeVSphere):
        self.api = api

    def CreateContainerView(self, container: Any, type: list[Any], recursive: bool) -> Any:
        if "CreateContainerView" in self.api.fail:  # an account without System.View
            raise failure(self.api, "CreateContainerView")
        kind = repr(type[0])
        if kind == "vim.Datacenter":
            items = [self.api.datacenter]
        elif kind == "vim.HostSystem":
            items = list(self.api.hosts)
        elif kind == "vim.VirtualMachine":
            items = list(self.api.vms.values())
        else:
            items = []
        return SimpleNamespace(view=items, Destroy=lambda: None)


class FakeServiceInstance:
    """A fake standing in for pyVmomi's vim.ServiceInstance of one ESXi
    host: its content (about, root folder, view manager, file manager) and
    the session cookie pyVmomi keeps on its stub."""

    def __init__(self, api: FakeVSphere, cookie: str):
        self.content = SimpleNamespace(
            about=SimpleNamespace(fullName="FAKE VMware ESXi 8.0.3 build-0 (a fake)", apiVersion="8.0.3.0"),
            rootFolder=SimpleNamespace(name="root"),
            viewManager=FakeViewManager(api),
            fileManager=FakeFileManager(api),
        )
        self._stub = SimpleNamespace(cookie=f'vmware_soap_session="{cookie}"; Path=/; HttpOnly; Secure;')


class FakeVSphere:
    """A fake standing in for conformance.backends.esxi.VSphereApi (pyVmomi
    and the host's HTTP file access) in front of one fake ESXi host."""

    def __init__(self, user: str = "nvct", password: str = "fake-password", nested_supported: bool = True,
                 guest_output: list[bytes] | None = None, power_off_at_end: bool = False,
                 feature_capability: list[tuple[str, str, str]] | None = None, loaded: bool = True):  # fmt: skip
        self.vim = FakeVim()
        self.user, self.password = user, password
        self.nested_supported = nested_supported
        self.guest_output = guest_output or []
        self.power_off_at_end = power_off_at_end
        self.loaded = loaded
        self.fail: dict[str, Any] = {}  # operation -> the fault message it fails with, or the exception
        self.log: list[str] = []  # every call, as text: what nvct asked of the host
        self.specs: list[FakeData] = []
        self.vms: dict[str, FakeVM] = {}
        self.folders: set[str] = set()
        self.files: dict[str, bytearray] = {}
        self.sessions: list[str] = []  # cookies of the sessions logged in and not out
        self.cookies_seen: list[str] = []
        self.contexts: list[Any] = []
        ds = SimpleNamespace(name="datastore1", summary=SimpleNamespace(freeSpace=50 << 30, accessible=True))
        small = SimpleNamespace(name="small", summary=SimpleNamespace(freeSpace=1 << 30, accessible=True))
        caps = (
            feature_capability
            if feature_capability is not None
            else [("cpuid.VMX", "cpuid.VMX", "1"), ("cpuid.SSE3", "cpuid.SSE3", "1"), ("misc.hv.capable", "hv", "1")]
        )
        host = SimpleNamespace(
            name="esx1.example.test",
            capability=SimpleNamespace(nestedHVSupported=nested_supported),
            config=SimpleNamespace(
                featureCapability=[SimpleNamespace(key=k, featureName=n, value=v) for k, n, v in caps]
            ),  # fmt: skip
            hardware=SimpleNamespace(cpuPkg=[SimpleNamespace(vendor="intel", description="Fake Xeon")]),
            datastore=[small, ds],
            parent=SimpleNamespace(resourcePool=SimpleNamespace(name="Resources")),
        )
        self.hosts = [host]
        self.datacenter = SimpleNamespace(name="ha-datacenter", hostFolder=SimpleNamespace(name="host"),
                                          vmFolder=FakeFolder(self))  # fmt: skip

    # -- VSphereApi ----------------------------------------------------------------------

    def load(self) -> None:
        from conformance.backends import BackendUnavailable

        if not self.loaded:
            raise BackendUnavailable("the esxi backend needs pyVmomi: pip install nvct[esxi]")

    def connect(self, host: str, port: int, user: str, password: str, context: Any,
                timeout: float | None = None) -> FakeServiceInstance:  # fmt: skip
        # The password is checked, never logged.
        self.log.append(f"connect {host}:{port} user={user}")
        self.contexts.append(context)
        if isinstance(self.fail.get("login"), BaseException):
            raise self.fail["login"]
        if "login" in self.fail:
            raise FakeFault(self.fail["login"].replace("{password}", password))
        if user != self.user or password != self.password:
            raise FakeFault("Cannot complete login due to an incorrect user name or password.")
        cookie = f"fake-session-{len(self.cookies_seen)}"
        self.cookies_seen.append(cookie)
        self.sessions.append(cookie)
        return FakeServiceInstance(self, cookie)

    def disconnect(self, si: FakeServiceInstance) -> None:
        cookie = re.search(r'"([^"]+)"', si._stub.cookie).group(1)
        self.log.append("disconnect")
        self.sessions.remove(cookie)

    def http(self, method: str, host: str, port: int, path: str, headers: dict[str, str], body: Any,
             context: Any, timeout: float = 120.0) -> tuple[int, bytes]:  # fmt: skip
        cookie = re.search(r'"([^"]+)"', headers.get("Cookie", ""))
        authorised = cookie is not None and cookie.group(1) in self.sessions
        shown = {k: ("<session cookie>" if k == "Cookie" else v) for k, v in headers.items()}
        self.log.append(f"{method} {path} {shown}")
        if isinstance(self.fail.get(method), BaseException):  # the transport fails: socket, TLS, http.client
            raise self.fail[method]
        if not authorised:
            return 401, b"not logged in"
        parsed = urllib.parse.urlparse(path)
        query = urllib.parse.parse_qs(parsed.query)
        if query.get("dcPath") != [self.datacenter.name] or not parsed.path.startswith("/folder/"):
            return 404, b"no such datacenter"
        ds_path = f"[{query['dsName'][0]}] {urllib.parse.unquote(parsed.path[len('/folder/') :])}"
        if method == "PUT":
            if "upload" in self.fail:
                return 500, self.fail["upload"].encode()
            folder = ds_path.rsplit("/", 1)[0]
            if folder not in self.folders:
                return 404, b"no such folder"
            self.files[ds_path] = bytearray(body.read())
            return 201, b""
        if method == "GET":
            for vm in self.vms.values():
                if vm.serial == ds_path:
                    vm.guest_step()
            if ds_path not in self.files:
                return 404, b"not found"
            data = bytes(self.files[ds_path])
            match = re.fullmatch(r"bytes=(\d+)-", headers.get("Range", ""))
            if match:
                start = int(match.group(1))
                if start >= len(data):
                    return 416, b""
                return 206, data[start:]
            return 200, data
        return 405, b""

    # -- what is left on the host ---------------------------------------------------------------

    def leftovers(self) -> dict[str, Any]:
        """Whatever nvct created and did not remove: VMs, folders, files, sessions."""
        return {k: v for k, v in (("vms", list(self.vms)), ("folders", sorted(self.folders)),
                                  ("files", sorted(self.files)), ("sessions", list(self.sessions))) if v}  # fmt: skip
