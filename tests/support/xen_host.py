"""An emulated Xen host reachable over SSH, for testing the xen backend's
SSH mode on a machine without Xen.

QEMU TCG boots the Xen stack of profiles/tcg-xen-l2.yaml (Debian's Xen
4.17, a PV dom0) with an e1000 NIC on QEMU user networking whose port 22
is forwarded to 127.0.0.1:PORT here. Dom0 is the sshd variant of the Xen
appliance (`sshd_appliance()`: the layer of xen_sshd.py appended) with
one more archive appended: root's authorized_keys, holding a key pair made
for this boot only. Root logs in by that key; `xl` is on the login PATH.

    with emulated_xen_host() as host:
        subprocess.run(host.ssh("xl", "info"))

By hand: `python -m support.xen_host [--port N]` (in tests/) boots one, prints the
ssh command line, and keeps it up until Ctrl-C.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from conformance.appliances import xen as xen_appliance
from conformance.appliances.linux import READY, _download, _kernel_package, cache_root
from conformance.backends.qemu import QemuBackend, concatenate
from conformance.backends.transports import Console, ConsoleTimeout
from conformance.backends.xen import XenBackend, xen_cmdline
from conformance.core.profile import load_profile

from . import xen_sshd

PROFILE = Path(__file__).resolve().parents[2] / "profiles" / "tcg-xen-l2.yaml"
USER = "root"


class XenHostError(Exception):
    def __init__(self, message: str, excerpt: list[str] | None = None):
        super().__init__(message + ("\n  " + "\n  ".join(excerpt) if excerpt else ""))
        self.excerpt = excerpt or []


class ConsoleLog:
    """Xen's serial console, read by a thread so that QEMU never blocks on
    a full terminal: every line kept, waiting for one possible."""

    def __init__(self, console: Console):
        self.console = console
        self.lines: list[str] = []
        self.ended = False
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._pump, name="xen-host-console", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        while not self._stop.is_set():
            try:
                line = self.console.readline(0.5)
            except ConsoleTimeout:
                continue
            with self._cond:
                if line is None:
                    self.ended = True
                    self._cond.notify_all()
                    return
                self.lines.append(line)
                self._cond.notify_all()

    def wait_for(self, text: str, timeout: float) -> str:
        """The first line containing `text`; XenHostError if QEMU ended or
        `timeout` seconds passed first."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for line in self.lines[seen:]:
                    if text in line:
                        return line
                seen = len(self.lines)
                if self.ended:
                    raise XenHostError(f"QEMU ended before {text!r} ({self.console.describe_end()})", self.tail())
                left = deadline - time.monotonic()
                if left <= 0:
                    raise XenHostError(f"no {text!r} on Xen's console within {timeout:g} s", self.tail())
                self._cond.wait(min(left, 1.0))

    def tail(self, count: int = 30) -> list[str]:
        with self._cond:
            return self.lines[-count:] if self.lines else self.console.tail(count)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


@dataclass(frozen=True)
class XenHost:
    """What the xen backend's SSH mode needs to reach the host."""

    host: str
    port: int
    user: str
    identity: Path  # the private key; its .pub is in root's authorized_keys
    known_hosts: Path  # dom0's host key for [host]:port (StrictHostKeyChecking yes works)
    xen_cmdline: str  # the command line Xen was booted with
    console: ConsoleLog = field(repr=False, compare=False)
    timings: dict[str, float] = field(default_factory=dict, compare=False)  # s from QEMU's start

    def ssh_options(self) -> list[str]:
        return [
            "-i", str(self.identity), "-p", str(self.port),
            "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
            "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "StrictHostKeyChecking=yes",
            "-o", "ConnectTimeout=20",
        ]  # fmt: skip

    def ssh(self, *command: str, tty: bool = False) -> list[str]:
        """An argv for the system ssh client; the command as one remote shell
        line (each word quoted)."""
        argv = ["ssh", *self.ssh_options(), "-t" if tty else "-T", f"{self.user}@{self.host}"]
        return argv + ([shlex.join(command)] if command else [])

    def run(self, *command: str, input: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(self.ssh(*command), input=input, capture_output=True, text=True, timeout=timeout)

    def scp_to(self, source: Path, dest: str, timeout: float = 120) -> None:
        opts = [o if o != "-p" else "-P" for o in self.ssh_options()]
        subprocess.run(["scp", "-q", *opts, str(source), f"{self.user}@{self.host}:{dest}"],
                       check=True, capture_output=True, timeout=timeout)  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(folder: Path) -> Path:
    """The key pair in `folder`: the one already there (a --dir used before,
    so that the printed ssh command stays the same), else a fresh one."""
    key = folder / "id_ed25519"
    if key.is_file() and key.with_suffix(".pub").is_file():
        return key
    proc = subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "nvct-xen-host", "-f", str(key)],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    if proc.returncode != 0:
        raise XenHostError(f"ssh-keygen -f {key} failed: {(proc.stderr or proc.stdout).strip()}", [])
    return key


def sshd_appliance(progress: Callable[[str], None], device_model: bool = False) -> xen_appliance.XenAppliance:
    """The Xen appliance with the SSH layer of xen_sshd.py appended to its
    initramfs: dom0 runs sshd when it has a NIC."""
    app = xen_appliance.build(progress, device_model=device_model)
    kernel_package = _kernel_package()
    kernel_deb = _download([kernel_package], cache_root() / "debs")[kernel_package]  # in the cache: build fetched it
    return xen_sshd.variant(app, kernel_deb, xl=f"/{xen_appliance.XEN_BIN}/xl")


@contextmanager
def emulated_xen_host(
    workdir: Path | None = None,
    *,
    port: int | None = None,
    profile: Path = PROFILE,
    ready_timeout: float = 300.0,
    progress: Callable[[str], None] = lambda _: None,
) -> Iterator[XenHost]:
    """Boot the emulated Xen host and yield it once dom0 answers over SSH;
    QEMU is killed on exit. `workdir`: a folder for the key pair, the
    initramfs and QEMU's files (a temporary one by default); `port`: the
    port on 127.0.0.1 (a free one by default)."""
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="nvct-xen-host-") as tmp:
            with emulated_xen_host(Path(tmp), port=port, profile=profile, ready_timeout=ready_timeout,
                                   progress=progress) as host:  # fmt: skip
                yield host
        return
    stack = load_profile(profile).stack
    qemu_settings, xen_settings = stack[0].settings, stack[1].settings
    # The profile's domU type says whether dom0 needs the device model (HVM).
    app = sshd_appliance(progress, device_model=xen_settings.type == "hvm")
    key = _keygen(workdir)
    keys = xen_sshd.authorized_keys_cpio([key.with_suffix(".pub").read_text()], workdir / "authorized_keys.cpio")
    initrd = concatenate((app.initramfs, keys), workdir / "dom0-sshd.cpio")
    for attempt in range(3):
        chosen = port or free_port()
        net = ("-netdev", f"user,id=n0,hostfwd=tcp:127.0.0.1:{chosen}-:22", "-device", "e1000,netdev=n0")
        below = QemuBackend(dataclasses.replace(qemu_settings, args=(*qemu_settings.args, *net)), 0)
        below.preflight()
        xen = XenBackend(xen_settings, 1, below=below)
        known_hosts = workdir / "known_hosts"
        known_hosts.write_text(f"[127.0.0.1]:{chosen} {app.manifest['sshd']['host_key']}\n")
        start = time.monotonic()
        progress(f"booting the emulated Xen host, ssh on 127.0.0.1:{chosen}")
        with xen._boot_xen(initrd, workdir) as console:
            log = ConsoleLog(console)
            host = XenHost("127.0.0.1", chosen, USER, key, known_hosts, xen_cmdline(xen_settings), log)
            try:
                try:
                    log.wait_for(xen_sshd.SSHD_READY, ready_timeout)
                except XenHostError:
                    taken = any("host forwarding" in line for line in log.tail())
                    if port is None and attempt < 2 and taken:
                        continue  # the port was taken meanwhile: another one
                    raise
                host.timings["sshd_started"] = time.monotonic() - start
                log.wait_for(READY, ready_timeout)
                host.timings["dom0_ready"] = time.monotonic() - start
                _wait_ssh(host, log, start + ready_timeout)
                host.timings["ssh_ready"] = time.monotonic() - start
                yield host
            finally:
                log.stop()
                console.kill()  # no grace: nothing in dom0 needs a clean shutdown
        return


def _wait_ssh(host: XenHost, log: ConsoleLog, deadline: float) -> None:
    """Until `ssh true` works: QEMU accepts the connection at once and sshd
    may still be busy, so a reset connection is tried again."""
    while True:
        try:
            proc = subprocess.run(host.ssh("true"), capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            proc = None
        if proc is not None and proc.returncode == 0:
            return
        if log.ended or time.monotonic() > deadline:
            why = proc.stderr.strip()[-300:] if proc is not None else "ssh timed out"
            raise XenHostError(f"dom0's sshd does not answer on port {host.port}: {why}", log.tail())
        time.sleep(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m support.xen_host", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, help="port on 127.0.0.1 for dom0's sshd (default: a free one)")
    parser.add_argument("--dir", type=Path, help="keep the key pair and files here (default: a temporary folder)")
    parser.add_argument("--profile", type=Path, default=PROFILE,
                        help="the emulated stack: L0 QEMU and the xen level (default: %(default)s; a profile "
                             "with type: hvm gives dom0 the device model)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.dir:
        args.dir.mkdir(parents=True, exist_ok=True)
    try:
        with emulated_xen_host(args.dir, port=args.port, profile=args.profile,
                               progress=lambda m: print(m, file=sys.stderr)) as host:  # fmt: skip
            print(f"Xen command line: {host.xen_cmdline}")
            print(f"ready after {host.timings['ssh_ready']:.1f} s; try:")
            print("  " + shlex.join(host.ssh("xl", "list")))
            print("Ctrl-C stops it.", flush=True)
            try:
                while not host.console.ended:
                    time.sleep(1)
            except KeyboardInterrupt:
                pass
    except XenHostError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
