"""Linux with KVM as the hypervisor at a level above L0.

The level below boots the appliance (Debian's kernel, busybox, QEMU); this
backend loads kvm_amd or kvm_intel with the profile's nesting settings,
records what the module says, and starts QEMU/KVM with the payload: the
probe kernel, or the appliance again for a level further in. The payload
travels as an extra cpio archive appended to the appliance's initramfs.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..appliances import linux as appliance_mod
from ..appliances.cpio import write_cpio
from .base import Backend, BackendUnavailable, BootFailed, LevelUnavailable, Payload
from .qemu import CONSOLES, VIRTIO_PORT, concatenate
from .transports import Console
from .transports.shell import Shell, ShellError

# The appliance's kernel command line: a quiet console that is all ours.
APPEND = "console=ttyS0 quiet loglevel=1 panic=-1 nokaslr"


@dataclass(frozen=True)
class LinuxKvmSettings:
    module: str = "auto"  # kvm_amd, kvm_intel, or auto (by what the CPU offers)
    nested: bool = True  # the module's `nested` parameter
    paging: bool = True  # `npt` (kvm_amd) or `ept` (kvm_intel)
    module_params: tuple[str, ...] = ()  # more KEY=VALUE for modprobe
    cpu: str = "host"  # QEMU -cpu for the guest
    memory: int = 128  # MiB for the probe kernel
    appliance_memory: int = 1024  # MiB when the guest is itself an appliance
    args: tuple[str, ...] = ()  # more QEMU arguments
    # More words for the appliance kernel's own command line (this level's
    # Linux, not the payload's), e.g. to step around a fault of the CPU below.
    kernel_args: tuple[str, ...] = ()
    ready_timeout: float = 300.0  # seconds for the appliance to come up
    # Where the probe kernel prints: `serial`, COM1 only, or `virtio`, a
    # virtio serial port beside COM1 (a line per exit instead of a byte or a
    # burst per exit; QEMU throttles the guest when the line below is slow,
    # nothing is dropped). Not the default yet: docs/performance.md has the
    # L3 results that changed in two of three whole-catalogue runs with it.
    console: str = "serial"

    def validate(self) -> tuple[str, str] | None:
        if self.module not in ("auto", "kvm_amd", "kvm_intel"):
            return "module", f"must be auto, kvm_amd or kvm_intel, not {self.module!r}"
        if self.console not in CONSOLES:
            return "console", f"must be serial or virtio, not {self.console!r}"
        for param in self.module_params:
            if "=" not in param or any(c.isspace() for c in param):
                return "module_params", f"want KEY=VALUE without spaces, not {param!r}"
        for word in self.kernel_args:
            if not word or not word.isprintable() or any(c.isspace() or c in "\"{};$\\'" for c in word):
                return "kernel_args", f"want one word per item (no spaces, quotes, braces, ;, $ or \\), not {word!r}"
        if not 16 <= self.memory <= 65536:
            return "memory", "must be 16 to 65536 (MiB)"
        if not 256 <= self.appliance_memory <= 65536:
            return "appliance_memory", "must be 256 to 65536 (MiB)"
        return None


# Module parameters worth recording: they say what the level offers above it.
_PARAMS = {
    "kvm_amd": ("nested", "npt", "vgif", "nrips", "lbrv", "vls", "tsc_scaling", "pause_filter_count", "avic"),
    "kvm_intel": (
        "nested",
        "ept",
        "vpid",
        "unrestricted_guest",
        "enable_shadow_vmcs",
        "pml",
        "preemption_timer",
        "enable_apicv",
    ),  # fmt: skip
}


@dataclass
class _Host:
    """A booted appliance of this level with KVM loaded: the command loop on
    the console of the level below, ready to start one guest after another."""

    key: str  # what the appliance carries (the payload's files, by content)
    shell: Shell
    facts: dict[str, object]
    stack: ExitStack = field(default_factory=ExitStack)  # closing it stops the level below
    boots: int = 0  # guests started on it


class LinuxKvmBackend(Backend):
    name = "linux-kvm"
    Settings = LinuxKvmSettings
    nestable = True

    def __init__(self, settings: LinuxKvmSettings, level: int, below: Backend | None = None):
        super().__init__(settings, level)
        self.below = below
        self._appliance: appliance_mod.Appliance | None = None
        # Appliances that came back whole from their last guest, kept for the
        # next boot of the same payload: a probe that crashes or hangs its own
        # guest costs that guest, not this level's Linux (docs/nesting.md).
        self._idle: list[_Host] = []
        self._lock = threading.Lock()
        self._digests: dict[tuple[str, int, int, int], str] = {}

    def preflight(self) -> None:
        if self.below is None:
            raise BackendUnavailable("linux-kvm runs above another level, never as L0")
        self.below.preflight()
        try:
            self._appliance = appliance_mod.build()
        except appliance_mod.ApplianceError as exc:
            raise BackendUnavailable(f"cannot build the appliance: {exc}") from None

    @property
    def appliance(self) -> appliance_mod.Appliance:
        if self._appliance is None:
            self._appliance = appliance_mod.build()
        return self._appliance

    def version(self) -> str:
        return f"Linux {self.appliance.kernel_version}, {self.appliance.manifest['qemu']}"

    def describe(self) -> dict:
        info = super().describe()
        info["appliance"] = {k: self.appliance.manifest[k] for k in ("kernel_version", "packages", "qemu")}
        return info

    def qemu_argv(self, payload: Payload, kernel: str, initrd: str | None) -> list[str]:
        s = self.settings
        memory = s.memory if payload.probe else s.appliance_memory
        # The guest's console multiplexed with QEMU's monitor on stdio:
        # QUIT_KEYS (C-a x) typed into it stop a guest that hangs, and the
        # appliance lives on.
        argv = ["qemu-system-x86_64", "-accel", "kvm", "-cpu", s.cpu, "-m", str(memory), "-smp", "1",
                "-nodefaults", "-display", "none", "-no-reboot",
                "-chardev", "stdio,id=con,mux=on,signal=off", "-serial", "chardev:con", "-mon", "chardev=con",
                "-kernel", kernel, "-append", payload.append]  # fmt: skip
        if payload.probe:
            if s.console == "virtio":
                argv += VIRTIO_PORT
            argv += ["-device", "isa-debug-exit,iobase=0xf4,iosize=4"]
        if initrd is not None:
            argv += ["-initrd", initrd]
        return argv + list(s.args)

    @contextmanager
    def boot_payload(self, payload: Payload, workdir: Path) -> Iterator[Console]:
        """Start the payload in QEMU/KVM on an appliance of this level: one
        left idle by an earlier boot of the same payload if there is one,
        else a new one booted by the level below."""
        key = self._payload_key(payload)
        host = self._take(key)
        if host is None:
            host = self._start(payload, key, workdir)
        whole = False
        try:
            try:
                guest = host.shell.launch(
                    self.qemu_argv(payload, "/nvct/guest/kernel", "/nvct/guest/initrd" if payload.initrds else None),
                    label=f"qemu in L{self.level}",
                    muxed=True,
                )
            except ShellError as exc:
                raise BootFailed(str(exc), exc.excerpt) from None
            host.boots += 1
            guest.facts.update(host.facts)
            guest.facts["appliance_boot"] = host.boots  # 1: a fresh appliance; more: one kept from earlier boots
            try:
                yield guest  # type: ignore[misc]
            finally:
                # A guest that never started is stopped, and its appliance is
                # not kept: from here that looks like the appliance's KVM
                # stalling, and the boot after it would wait as long again.
                whole = guest.stop(grace=10.0) and not guest.silent
        finally:
            if whole:
                with self._lock:
                    self._idle.append(host)
            else:
                host.stack.close()

    def release(self) -> None:
        """Stop the appliances kept for later boots."""
        with self._lock:
            idle, self._idle = self._idle, []
        for host in idle:
            host.stack.close()

    def _take(self, key: str) -> _Host | None:
        with self._lock:
            for host in self._idle:
                if host.key == key:
                    self._idle.remove(host)
                    return host
        return None

    def _payload_key(self, payload: Payload) -> str:
        """What an appliance booted for `payload` carries: its files by
        content (the probe kernel, and for a deeper level that level's
        appliance), so a kept appliance is reused only for the same files."""
        digest = hashlib.sha256()
        for path in (payload.kernel, *payload.initrds):
            digest.update(self._digest(Path(path)).encode())
        return digest.hexdigest()

    def _digest(self, path: Path) -> str:
        st = path.stat()
        stamp = (str(path), st.st_size, st.st_mtime_ns, st.st_ino)
        with self._lock:
            known = self._digests.get(stamp)
        if known is None:
            h = hashlib.sha256()
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
            known = h.hexdigest()
            with self._lock:
                self._digests[stamp] = known
        return known

    def _start(self, payload: Payload, key: str, workdir: Path) -> _Host:
        """Boot an appliance of this level that carries `payload`, load KVM."""
        assert self.below is not None
        appliance = self.appliance
        stack = ExitStack()
        try:
            # The appliance outlives the boot that started it: a folder of its own.
            home = Path(tempfile.mkdtemp(prefix=f"nvct-l{self.level}-appliance-", dir=workdir.parent))
            stack.callback(shutil.rmtree, home, True)
            files: dict[str, Path] = {"nvct/guest/kernel": payload.kernel}
            if payload.initrds:
                files["nvct/guest/initrd"] = concatenate(payload.initrds, home / f"l{self.level + 1}-initrd.cpio")
            extra = write_cpio(home / f"l{self.level}-payload.cpio", files)
            append = " ".join([APPEND, *self.settings.kernel_args])
            mine = Payload(kernel=appliance.kernel, append=append, initrds=(appliance.initramfs, extra), probe=False,
                           bzimage=appliance.bzimage)  # fmt: skip
            label = f"L{self.level} {self.name}"
            start = time.monotonic()
            console = stack.enter_context(self.below.boot_payload(mine, home))
            shell = Shell(console, label)
            try:
                release = shell.wait_ready(self.settings.ready_timeout)
                ready = time.monotonic()
                facts = self._load_kvm(shell)
            except ShellError as exc:
                raise BootFailed(str(exc), exc.excerpt) from None
            facts["kernel"] = release
            # Where this level's boot went (bench/ reads them): the level
            # below up to the appliance's READY line, then loading KVM.
            facts["seconds.appliance_ready"] = round(ready - start, 2)
            facts["seconds.kvm_loaded"] = round(time.monotonic() - ready, 2)
            return _Host(key, shell, facts, stack)
        except BaseException:
            stack.close()
            raise

    def _load_kvm(self, shell: Shell) -> dict[str, object]:
        s = self.settings
        module = s.module
        if module == "auto":
            flags = shell.run("grep -m1 -o -w -E 'svm|vmx' /proc/cpuinfo", timeout=max(30.0, s.ready_timeout / 4))
            found = flags.output[0].strip() if flags.status == 0 and flags.output else ""
            if found not in ("svm", "vmx"):
                raise LevelUnavailable(
                    f"L{self.level} sees neither SVM nor VMX in /proc/cpuinfo: the level below exposes no nesting"
                )
            module = "kvm_amd" if found == "svm" else "kvm_intel"
        paging = "npt" if module == "kvm_amd" else "ept"
        params = [f"nested={int(s.nested)}", f"{paging}={int(s.paging)}", *s.module_params]
        # As long as the appliance may take to come up: under Bochs, with the
        # levels side by side, loading KVM in L2's appliance can take minutes.
        load = shell.run(["modprobe", module, *params], timeout=max(120.0, s.ready_timeout))
        if load.status != 0:
            dmesg = shell.run(
                "dmesg | grep -i -E 'kvm|svm|vmx' | tail -n 3", timeout=max(30.0, s.ready_timeout / 4)
            ).output
            why = "; ".join(line.strip() for line in load.output + dmesg if line.strip())
            raise LevelUnavailable(f"L{self.level}: modprobe {module} failed: {why}")
        values = shell.run(
            'cd /sys/module/%s/parameters && for p in %s; do [ -r $p ] && echo "$p=$(cat $p)"; done'
            % (module, " ".join(_PARAMS[module])),
            timeout=max(30.0, s.ready_timeout / 4),
        )
        facts: dict[str, object] = {"module": module}
        for line in values.output:
            key, eq, value = line.strip().partition("=")
            if eq and key in _PARAMS[module]:
                facts[f"{module}.{key}"] = value
        kvm = shell.run("ls -l /dev/kvm", timeout=max(30.0, s.ready_timeout / 4))
        if kvm.status != 0:
            raise LevelUnavailable(f"L{self.level}: {module} loaded but /dev/kvm is missing")
        return facts
