"""VMware's vSphere API simulator (vcsim, govmomi's `simulator` package)
for the esxi backend's tests, and a player of its VMs' hardware.

`build()` compiles tests/support/vcsim/main.go against the govmomi sources
Debian installs (golang-github-vmware-govmomi-dev, Go from golang-go) in
its system GOPATH with GO111MODULE=off, once per version of those sources
and of main.go (the binary is cached like the appliances, under
NVCT_CACHE or ~/.cache/nvct). `Simulator` runs it on 127.0.0.1 with TLS
(a certificate made for it) and one user and password; `Player` plays the
hardware of the VMs nvct creates in it: the simulator keeps an inventory
and a datastore (a local folder served over /folder) but runs no guest.

    with Simulator("vpx") as sim, Player(sim):
        ...  # nvct run against sim.host:sim.port, ca_file sim.ca_file

By hand: `python -m support.vcsim [esx|vpx]` (in tests/) starts one and
prints what a profile needs, until Ctrl-C.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import secrets
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from conformance.appliances.linux import cache_root
from conformance.backends.base import Payload
from conformance.backends.qemu import QemuBackend
from conformance.core.profile import load_profile

HERE = Path(__file__).resolve().parent
MAIN = HERE / "vcsim" / "main.go"
PROFILES = HERE.parents[1] / "profiles"
GOPATH = Path("/usr/share/gocode")  # Debian's system GOPATH
GOVMOMI = GOPATH / "src" / "github.com" / "vmware" / "govmomi"
PACKAGE = "golang-github-vmware-govmomi-dev"
USER = "nvct"


class Unavailable(Exception):
    """The simulator cannot be built or run here (the reason, naming the package)."""


def govmomi_version() -> str:
    """The version of the govmomi sources: the Debian package's, else a hash of the simulator's files."""
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", PACKAGE], capture_output=True, text=True,
                             timeout=30)  # fmt: skip
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    except OSError:
        pass
    digest = hashlib.sha256()
    for path in sorted((GOVMOMI / "simulator").glob("*.go")):
        digest.update(path.name.encode() + str(path.stat().st_size).encode())
    return "src-" + digest.hexdigest()[:16]


def build() -> Path:
    """The simulator's binary: built now, or from the cache."""
    go = shutil.which("go")
    if go is None:
        raise Unavailable("the vSphere simulator needs Go (Debian package golang-go)")
    if not (GOVMOMI / "simulator" / "simulator.go").is_file():
        raise Unavailable(f"the vSphere simulator needs govmomi's sources in {GOVMOMI} (Debian package {PACKAGE})")
    go_version = subprocess.run([go, "version"], capture_output=True, text=True, timeout=60).stdout.strip()
    key = hashlib.sha256(f"{govmomi_version()}\n{go_version}\n".encode() + MAIN.read_bytes()).hexdigest()[:16]
    base = cache_root() / "vcsim"
    base.mkdir(parents=True, exist_ok=True)
    binary = base / key / "vcsim"
    with open(base / ".lock", "w") as lock:  # pytest-xdist's workers build it once between them
        fcntl.flock(lock, fcntl.LOCK_EX)
        if binary.is_file():
            os.utime(binary.parent)  # in use: not pruned by another build
            return binary
        work = Path(tempfile.mkdtemp(prefix="build-", dir=base))
        try:
            shutil.copyfile(MAIN, work / "main.go")
            env = {**os.environ, "GOPATH": str(GOPATH), "GO111MODULE": "off", "GOFLAGS": "",
                   "GOCACHE": str(base / "gocache")}  # fmt: skip
            proc = subprocess.run([go, "build", "-o", "vcsim", "main.go"], cwd=work, env=env, capture_output=True,
                                  text=True, timeout=1800)  # fmt: skip
            if proc.returncode != 0:
                raise Unavailable(f"building the vSphere simulator failed: {(proc.stderr or proc.stdout)[-800:]}")
            binary.parent.mkdir(exist_ok=True)
            os.replace(work / "vcsim", binary)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        prune(base, keep=key)
    return binary


def prune(base: Path, keep: str, idle: float = 3600.0) -> None:
    """Remove the binaries of other main.go or Go versions (25 MB each) not
    used for `idle` seconds: each change to main.go builds a new one."""
    for old in base.iterdir():
        if old.name == keep or not re.fullmatch(r"[0-9a-f]{16}", old.name):
            continue
        try:
            if time.time() - old.stat().st_mtime > idle:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass


def pyvmomi() -> Any:
    try:
        from pyVmomi import vim  # type: ignore[import-not-found]
    except ImportError:
        raise Unavailable("pyVmomi is not installed (pip install nvct[esxi])") from None
    return vim


class Simulator:
    """One simulator process: `model` esx (a standalone ESXi host,
    datacenter ha-datacenter) or vpx (vCenter: datacenter DC0, a standalone
    host DC0_H0 and a cluster of three, datastore LocalDS_0 on all; each
    model also has its own VMs, which nvct must leave alone)."""

    def __init__(self, model: str = "vpx", nested_hv: bool = True, delay: str = ""):
        self.model = model
        self.nested_hv = nested_hv
        self.delay = delay  # a method whose calls take 3 s (PowerOnVM_Task)
        self.password = "vcsim-" + secrets.token_urlsafe(12)
        self.user = USER
        self.proc: subprocess.Popen[str] | None = None
        self.dir = Path(tempfile.mkdtemp(prefix="nvct-vcsim-"))
        self.ca_file = str(self.dir / "cert.pem")
        self.host, self.port = "127.0.0.1", 0
        self.log_path = self.dir / "vcsim.log"

    def start(self) -> Simulator:
        binary = build()
        pyvmomi()
        if shutil.which("openssl") is None:
            raise Unavailable("the vSphere simulator's certificate needs openssl (Debian package openssl)")
        key = self.dir / "key.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
                        "-days", "2", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key),
                        "-out", self.ca_file], check=True, capture_output=True, timeout=120)  # fmt: skip
        env = {**os.environ, "VCSIM_USER": self.user, "VCSIM_PASSWORD": self.password, "VCSIM_CERT": self.ca_file,
               "VCSIM_KEY": str(key), "VCSIM_NESTED_HV": "true" if self.nested_hv else "false", "VCSIM_DELAY": self.delay}  # fmt: skip
        log = open(self.log_path, "w")
        self.proc = subprocess.Popen([str(binary), self.model], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=log, text=True, env=env, start_new_session=True)  # fmt: skip
        log.close()
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.startswith("https://"):
            self.stop()
            raise Unavailable(f"the vSphere simulator did not start: {self.log_path.read_text()[-800:]}")
        self.host, port = line.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
        self.port = int(port)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()  # main.go stops, removing its datastores' folders
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- looking at it, as an administrator would ------------------------------------------

    def env(self, password: str | None = None) -> dict[str, str]:
        """The environment nvct takes the credentials from."""
        return {"NVCT_ESXI_USER": self.user, "NVCT_ESXI_PASSWORD": self.password if password is None else password}

    def connect(self) -> Any:
        from pyVim.connect import SmartConnect  # type: ignore[import-not-found]

        context = ssl.create_default_context(cafile=self.ca_file)
        return SmartConnect(host=self.host, port=self.port, user=self.user, pwd=self.password, sslContext=context)

    @contextlib.contextmanager
    def session(self) -> Iterator[Any]:
        from pyVim.connect import Disconnect  # type: ignore[import-not-found]

        si = self.connect()
        try:
            yield si
        finally:
            Disconnect(si)

    def vms(self, si: Any) -> list[Any]:
        vim = pyvmomi()
        content = si.content
        view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
        try:
            return list(view.view)
        finally:
            view.Destroy()

    def vm_names(self) -> set[str]:
        with self.session() as si:
            return {vm.name for vm in self.vms(si)}

    def datastores(self, si: Any) -> dict[str, Path]:
        """Each datastore's name and its local folder."""
        vim = pyvmomi()
        content = si.content
        view = content.viewManager.CreateContainerView(content.rootFolder, [vim.Datastore], True)
        try:
            return {ds.name: Path(ds.summary.url) for ds in view.view}
        finally:
            view.Destroy()

    def datastore_files(self) -> set[str]:
        """Every file and folder on every datastore, as `[ds] path`."""
        with self.session() as si:
            found = set()
            for name, root in self.datastores(si).items():
                for path in root.rglob("*"):
                    found.add(f"[{name}] {path.relative_to(root)}")
            return found

    def inventory(self) -> tuple[set[str], set[str], int]:
        """What a run must leave as it found: the VMs' names, the datastores'
        files, the number of sessions logged in (besides the one looking)."""
        with self.session() as si:
            sessions = len(si.content.sessionManager.sessionList) - 1
        return self.vm_names(), self.datastore_files(), sessions

    def local_path(self, si: Any, ds_path: str) -> Path:
        """The local file of a datastore path `[ds] folder/file`."""
        name, _, rest = ds_path.partition("] ")
        return self.datastores(si)[name.lstrip("[")] / rest


# The VM's hardware: QEMU TCG as the qemu-tcg-bios-iso profile runs it
# (qemu-tcg-uefi for a VM whose firmware is efi), the VM's CD-ROM and COM1.
HARDWARE = {"bios": PROFILES / "qemu-tcg-bios-iso.yaml", "efi": PROFILES / "qemu-tcg-uefi.yaml"}


def hardware_argv(firmware: str, iso: Path, com1: Path, workdir: Path) -> list[str]:
    """QEMU's command line for a VM: the profile's own (QemuBackend.argv),
    with COM1 written to the file the VM's serial port is backed by and
    without QEMU's exit device: on ESXi a write to port 0xf4 does nothing,
    the probe kernel halts after END, and the VM runs until nvct powers it
    off."""
    settings = load_profile(HARDWARE[firmware]).stack[0].settings
    ovmf_vars = None
    if firmware == "efi":
        ovmf_vars = workdir / "OVMF_VARS.fd"
        shutil.copyfile(settings.ovmf_vars, ovmf_vars)
    argv = QemuBackend(settings, 0).argv(Payload(kernel=iso, append="", probe=False), iso=iso, ovmf_vars=ovmf_vars)
    at = argv.index("-serial")
    argv[at + 1] = f"file:{com1}"
    return argv


class Player:
    """Plays the hardware of the simulator's VMs named nvct-*: when one is
    powered on, boots the ISO on its CD-ROM under QEMU (BIOS or EFI as its
    `firmware` says), COM1 into the file its serial port is backed by;
    when nvct powers it off or destroys it, stops QEMU; when QEMU ends by
    itself (the guest triple-faulted, QEMU aborted), powers the VM off, as
    ESXi does when a guest stops its VM. `on_power_on(name)` may run first.
    What it did is in `played` (name -> firmware, ISO, COM1 file, QEMU's
    exit status)."""

    def __init__(self, sim: Simulator, interval: float = 0.2):
        self.sim = sim
        self.interval = interval
        self.played: dict[str, dict[str, Any]] = {}
        self.errors: list[str] = []
        self._running: dict[str, tuple[subprocess.Popen[bytes], Any]] = {}
        self._stop = threading.Event()
        self._ready = threading.Event()  # logged in: the session counts in the inventory from now on
        self._thread = threading.Thread(target=self._loop, name="vcsim-player", daemon=True)

    def __enter__(self) -> Player:
        self._thread.start()
        self._ready.wait(120)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)
        for proc, _ in self._running.values():
            proc.kill()
            proc.wait()

    def _loop(self) -> None:
        try:
            with self.sim.session() as si:
                self._ready.set()
                while not self._stop.is_set():
                    self._step(si)
                    self._stop.wait(self.interval)
        except Exception as exc:  # shown by the test that uses the player
            self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            self._ready.set()

    def _step(self, si: Any) -> None:
        pyvmomi()
        from pyVmomi import vmodl  # type: ignore[import-not-found]

        seen = {}
        for vm in self.sim.vms(si):
            try:
                name, power = vm.name, str(vm.runtime.powerState)
            except vmodl.fault.ManagedObjectNotFound:
                continue  # destroyed meanwhile
            if name.startswith("nvct-"):
                seen[name] = (vm, power)
        for name, (proc, vm) in list(self._running.items()):
            state = seen.get(name, (None, "gone"))[1]
            if state != "poweredOn":  # nvct powered it off, or destroyed it
                proc.kill()
                proc.wait()
                del self._running[name]
            elif proc.poll() is not None:  # the guest ended it
                self.played[name]["exit"] = proc.returncode
                del self._running[name]
                with contextlib.suppress(Exception):
                    vm.PowerOffVM_Task()
        for name, (vm, power) in seen.items():
            if power == "poweredOn" and name not in self.played:
                try:
                    self._boot(si, name, vm)
                except vmodl.fault.ManagedObjectNotFound:
                    self.played.setdefault(name, {})["gone"] = True  # destroyed before it could boot

    def _boot(self, si: Any, name: str, vm: Any) -> None:
        vim = pyvmomi()
        config = vm.config
        iso = com1 = None
        for device in config.hardware.device:
            if isinstance(device, vim.vm.device.VirtualCdrom):
                iso = device.backing.fileName
            if isinstance(device, vim.vm.device.VirtualSerialPort):
                com1 = device.backing.fileName
        self.played[name] = {"firmware": config.firmware, "iso": iso, "com1": com1}
        if iso is None or com1 is None:
            self.errors.append(f"{name}: no CD-ROM or no serial port: {iso!r} {com1!r}")
            return
        local_iso, local_com1 = self.sim.local_path(si, iso), self.sim.local_path(si, com1)
        workdir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.sim.dir))
        argv = hardware_argv(str(config.firmware), local_iso, local_com1, workdir)
        self.played[name]["argv"] = argv
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=open(workdir / "qemu.log", "wb"), cwd=workdir)  # fmt: skip
        self._running[name] = (proc, vm)


class Proxy:
    """An HTTPS proxy in front of a simulator that misbehaves on request,
    the way a network or a host's file service can: `strip_range` removes
    the Range header of GETs under /folder (the server then answers 200
    with the whole file), and `drop(kind, count)` closes the connection
    without an answer for the next `count` requests of a kind ("folder":
    GETs under /folder, "soap": the API's calls; count -1: every one from
    now on). It has its own certificate (`ca_file`)."""

    def __init__(self, sim: Simulator):
        import http.server

        self.sim = sim
        self.strip_range = False
        self.dropping: dict[str, int] = {}
        self.dropped: list[str] = []
        self.ca_file = str(sim.dir / "proxy-cert.pem")
        key = sim.dir / "proxy-key.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
                        "-days", "2", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key),
                        "-out", self.ca_file], check=True, capture_output=True, timeout=120)  # fmt: skip
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self._forward()

            def do_PUT(self) -> None:
                self._forward()

            def do_POST(self) -> None:
                self._forward()

            def _forward(self) -> None:
                import http.client

                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                kind = "folder" if self.path.startswith("/folder/") else "soap"
                if kind == "folder" and self.command != "GET":
                    kind = "upload"
                left = proxy.dropping.get(kind, 0)
                if left:
                    proxy.dropping[kind] = left - 1 if left > 0 else -1
                    proxy.dropped.append(f"{self.command} {self.path.split('?')[0]}")
                    self.close_connection = True
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                if proxy.strip_range and kind == "folder":
                    headers = {k: v for k, v in headers.items() if k.lower() != "range"}
                context = ssl.create_default_context(cafile=proxy.sim.ca_file)
                conn = http.client.HTTPSConnection(proxy.sim.host, proxy.sim.port, context=context, timeout=120)
                try:
                    conn.request(self.command, self.path, body=body or None, headers=headers)
                    reply = conn.getresponse()
                    data = reply.read()
                finally:
                    conn.close()
                self.send_response(reply.status)
                for k, v in reply.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.ca_file, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.host, self.port = "127.0.0.1", self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, name="vcsim-proxy", daemon=True)

    def drop(self, kind: str, count: int) -> None:
        self.dropping[kind] = count

    def __enter__(self) -> Proxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def main() -> None:
    model = sys.argv[1] if len(sys.argv) > 1 else "vpx"
    with Simulator(model) as sim, Player(sim):
        print(f"host: {sim.host}\nport: {sim.port}\nca_file: {sim.ca_file}\n"
              f"export NVCT_ESXI_USER={sim.user} NVCT_ESXI_PASSWORD={sim.password}")  # fmt: skip
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()


if __name__ == "__main__":
    main()
