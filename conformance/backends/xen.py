"""Xen as the hypervisor at a level above L0.

The level below (QEMU, or Bochs from a GRUB ISO) boots the Xen appliance
(appliances/xen.py): Debian's Xen through its multiboot header, with a PV
dom0 (Debian's kernel and a busybox initramfs carrying the toolstack) as
multiboot modules. Xen's serial console carries everything: Xen's own
lines ("(XEN) ..."), dom0's console (hvc0, where the appliance's command
loop runs) and, with `guest_loglvl=all`, what a domU writes to the debug port 0xE9, as
"(dN) ..." lines. The probe kernel runs as a PVH domU: with no COM1 it
writes its records to port 0xE9 (`console=e9` in its HELLO), and the
records are found anywhere in a line, so Xen's prefix does no harm.
With `type: hvm` it runs as an HVM domU instead, like on a PC: hvmloader,
SeaBIOS, GRUB from the boot ISO on an emulated CD-ROM, the probe kernel on
the emulated COM1, all emulated by QEMU in dom0 (the appliance's device
model variant); COM1 goes to a file that dom0 copies to its console.

In dom0 the backend reads `xl info` (the facts of the level; no HVM or no
HAP there means the level above cannot run: LevelUnavailable), creates the
domain paused from an xl configuration written here (with `nestedhvm=1`:
if Xen refuses it, LevelUnavailable too), then unpauses it and waits until
it is gone. `on_crash` and `on_reboot` are "destroy", so a triple fault
ends the domain instead of looping.
"""

from __future__ import annotations

import dataclasses
import json
import re
import secrets
import shlex
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..appliances import xen as xen_appliance
from ..appliances.cpio import write_cpio
from ..appliances.linux import READY, ApplianceError
from ..core.kernel import BuildError, GuestImage
from .base import Backend, BackendUnavailable, BootFailed, LevelUnavailable, Payload, require_binary
from .bochs import BochsBackend
from .media import check_iso_tools, make_iso
from .qemu import QemuBackend, concatenate
from .transports import Console
from .transports.shell import GuestConsole, Shell, ShellError
from .transports.ssh import SshHost, SshHostError

# SshHost's kernel command line: its console is Xen's (hvc0), quiet.
DOM0_APPEND = "console=hvc0 quiet loglevel=1 nokaslr"
# Xen's own command line, before the profile's `options`: its console on
# COM1 (the level below's serial port), every guest message printed (the
# domU's port 0xE9 output is a guest message at debug level), dom0 small.
XEN_APPEND = ("console=com1", "com1=115200,8n1", "guest_loglvl=all", "dom0_max_vcpus=1")

GUEST_DIR = "/nvct/guest"
CONFIG = f"{GUEST_DIR}/domu.cfg"
KERNEL = f"{GUEST_DIR}/kernel"

# Xen buffers a domain's port 0xE9 output per line and prints it when a
# newline comes or the buffer is full: 199 characters (DOMAIN_PBUF_SIZE 200
# in Xen 4.17). A longer line arrives as 199-character pieces, then the rest
# (empty if the line was a multiple of 199 long): each full piece always has
# a continuation, so joining is exact.
PBUF_CHUNK = 199

# The domU's lifetime in dom0: unpause it, then wait until it is gone, or
# shut down, crashed or dying (a domain that never finishes dying must not
# hold the run: one was seen with EFER.SVME set). Xen 4.17's
# `xl list NAME` itself sometimes dies of SIGSEGV (1 in 60 calls, measured
# here while an HVM domU ran): that is no answer, ask again.
WAIT_SCRIPT = r"""name=$1
xl unpause "$name" || exit 1
while :; do
    list=$(xl list "$name" 2>/dev/null)
    if [ $? -gt 128 ]; then sleep 1; continue; fi
    state=$(echo "$list" | awk 'NR == 2 { print $5 }')
    case $state in
        "") exit 0 ;;
        *[scd]*) echo "nvct: domain $name is $state"; exit 0 ;;
    esac
    sleep 1
done
"""

# An HVM domU (type: hvm) boots like a PC: hvmloader, SeaBIOS, then GRUB
# from the probe kernel's boot ISO on an emulated CD-ROM, GRUB's multiboot
# loader, the probe kernel. QEMU in dom0 (the device model) emulates the
# CD-ROM and COM1; COM1 goes to a file in dom0 that the follow script
# copies to dom0's console (the harness's line) while the domain runs.
ISO = f"{GUEST_DIR}/nvct.iso"
COM1_FILE = "/tmp/nvct-com1"
# $1: the file QEMU writes the domU's COM1 to, $2: the domain; the wait
# script beside this one runs the domain. Busybox `tail -f` looks for new
# bytes once a second and copies what it finds, a line cut in two
# included: the last bytes are out two seconds after the domain is gone,
# and what the wait says comes after them, on a line of its own.
FOLLOW_SCRIPT = """tail -n +1 -f "$1" & follower=$!
sh "${0%/*}/wait" "$2" >"$1.wait" 2>&1; status=$?
sleep 2
kill $follower
if [ -s "$1.wait" ]; then echo; cat "$1.wait"; fi
exit $status
"""


# A PVH domU on a real host, whose Xen console is not ours to read: the
# probe kernel writes to the domain's Xen console instead (console=xen: the
# shared ring that xenconsoled drains, lossless), and this script copies
# the pty xenconsoled gives it ($1: the domid, $2: the name) to its output
# while the wait script runs the domain; what the wait says comes last.
PV_CONSOLE_SCRIPT = """dir=${0%/*} tty= i=0
while [ $i -lt 100 ]; do
    tty=$(xenstore-read "/local/domain/$1/console/tty" 2>/dev/null) && [ -n "$tty" ] && break
    i=$((i + 1)); sleep 0.1
done
if [ -z "$tty" ]; then echo "nvct: domain $2 has no console pty in xenstore"; exit 1; fi
stty -F "$tty" raw -echo 2>/dev/null
cat "$tty" & follower=$!
sh "$dir/wait" "$2" >"$dir/wait.out" 2>&1; status=$?
sleep 1
kill $follower 2>/dev/null
if [ -s "$dir/wait.out" ]; then echo; cat "$dir/wait.out"; fi
exit $status
"""

# Keys this backend writes itself; `config` cannot set them.
OWN_KEYS = ("name", "type", "kernel", "cmdline", "memory", "maxmem", "vcpus", "nestedhvm", "hap",
            "on_poweroff", "on_reboot", "on_crash", "on_watchdog",
            "disk", "boot", "serial", "firmware_override", "device_model_version", "vga", "vnc", "sdl",
            "nographic")  # fmt: skip
TYPES = ("pvh", "hvm")
_KEY = re.compile(r"[a-z][_0-9a-z]*\Z")  # an xl config key (libxlu's lexer)


@dataclass(frozen=True)
class XenSettings:
    type: str = "pvh"  # pvh: the PVH entry, console on port 0xE9; hvm: BIOS, GRUB ISO, COM1 (device model)
    nestedhvm: bool = True  # xl `nestedhvm`: SVM or VMX for the domU
    hap: bool = True  # xl `hap` (Debian's Xen has no shadow paging: HVM and PVH need HAP)
    memory: int = 128  # MiB for the domU
    vcpus: int = 1
    config: tuple[str, ...] = ()  # more xl settings, KEY=VALUE: VALUE written as a number if decimal, else a string
    options: tuple[str, ...] = ()  # more Xen command-line options (smap=0 for QEMU 7.2 TCG)
    dom0_memory: int = 512  # MiB
    ready_timeout: float = 300.0  # seconds for dom0 to come up
    # A real host: `local` (nvct runs in dom0) or ssh://[user@]host[:port].
    # Empty: nvct boots Xen itself on the level below.
    dom0: str = ""
    identity: str = ""  # the SSH identity file (else $NVCT_XEN_SSH_IDENTITY, else ssh's own)
    ssh_options: tuple[str, ...] = ()  # more `ssh -o NAME=VALUE` options
    sudo: bool = False  # run xl through `sudo -n` (a dom0 user that is not root)

    def host(self) -> SshHost | None:
        """The real host's dom0, or None when nvct boots Xen itself."""
        if not self.dom0:
            return None
        return SshHost.parse(self.dom0, self.identity, self.ssh_options, self.sudo)

    def validate(self) -> tuple[str, str] | None:
        if self.type not in TYPES:
            return "type", f"must be one of {', '.join(TYPES)}, not {self.type!r}"
        if self.dom0:
            try:
                self.host()
            except SshHostError as exc:
                return ("ssh_options" if "option" in str(exc) else "dom0"), str(exc)
            if self.options:
                return (
                    "options",
                    "Xen's command line is the host's own: options apply only when nvct boots Xen (no dom0)",
                )
        elif self.identity or self.ssh_options or self.sudo:
            return "dom0", "identity, ssh_options and sudo need a real host's dom0 (local or ssh://...)"
        if not 16 <= self.memory <= 65536:
            return "memory", "must be 16 to 65536 (MiB)"
        if not 1 <= self.vcpus <= 128:
            return "vcpus", "must be 1 to 128"
        if not 128 <= self.dom0_memory <= 65536:
            return "dom0_memory", "must be 128 to 65536 (MiB)"
        for option in self.options:
            if not option or not option.isprintable() or any(c.isspace() for c in option):
                return "options", f"want one Xen option per item, without spaces, not {option!r}"
        for item in self.config:
            key, eq, _ = item.partition("=")
            key = key.strip()
            if not eq or not _KEY.match(key):
                return "config", f"want KEY=VALUE with an xl key (a-z, 0-9, _), not {item!r}"
            if key in OWN_KEYS:
                return "config", f"{key} is set by the backend (use the profile key of that name, if any)"
        return None


def xl_string(value: str) -> str:
    """A value as an xl configuration string: double quotes, with `"`, `\\`
    and every byte outside printable ASCII escaped (libxlu's lexer takes no
    newline inside a string; its dequoting knows \\n, \\t, \\xHH)."""
    out = []
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif " " <= ch <= "~":
            out.append(ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x100:
            out.append(f"\\x{ord(ch):02x}")
        else:
            raise ValueError(f"{value!r}: xl strings are bytes; {ch!r} is not one")
    return '"' + "".join(out) + '"'


def domu_config(settings: XenSettings, name: str, kernel: str, cmdline: str, com1: str = COM1_FILE) -> str:
    """The xl configuration of the probe kernel's domain. For an HVM domU,
    `kernel` is the boot ISO and the command line is in its grub.cfg."""
    if settings.type == "hvm":
        boot = hvm_boot_items(kernel, com1)
    else:
        boot = [("kernel", xl_string(kernel)), ("cmdline", xl_string(cmdline))]
    items: list[tuple[str, str]] = [
        ("name", xl_string(name)),
        ("type", xl_string(settings.type)),
        *boot,
        ("memory", str(settings.memory)),
        ("vcpus", str(settings.vcpus)),
        ("nestedhvm", str(int(settings.nestedhvm))),
        ("hap", str(int(settings.hap))),
        # The probe kernel ends with CLI; HLT: Xen powers the domain off. A
        # triple fault or a reset must end it too, never restart it.
        ("on_poweroff", xl_string("destroy")),
        ("on_reboot", xl_string("destroy")),
        ("on_crash", xl_string("destroy")),
    ]
    for item in settings.config:
        key, _, value = item.partition("=")
        value = value.strip()
        items.append((key.strip(), value if re.fullmatch(r"[0-9]+", value) else xl_string(value)))
    return "".join(f"{key} = {value}\n" for key, value in items)


def hvm_boot_items(iso: str, com1: str = COM1_FILE) -> list[tuple[str, str]]:
    """An HVM domU's boot: the ISO on the secondary master IDE CD-ROM (QEMU
    in dom0 reads the file itself: backendtype=qdisk needs no hotplug
    scripts), booted by SeaBIOS; COM1 to a file; no display."""
    disk = f"format=raw,vdev=hdc,access=ro,devtype=cdrom,backendtype=qdisk,target={iso}"
    return [
        ("disk", f"[ {xl_string(disk)} ]"),
        ("boot", xl_string("d")),
        ("serial", xl_string(f"file:{com1}")),
        ("device_model_version", xl_string("qemu-xen")),
        ("vga", xl_string("none")),
        ("vnc", "0"),
        ("sdl", "0"),
        ("nographic", "1"),
    ]


def payload_files(settings: XenSettings, name: str, payload: Payload, workdir: Path, folder: str = GUEST_DIR,
                  com1: str = COM1_FILE) -> dict[str, bytes | Path]:  # fmt: skip
    """What dom0 needs to run the domain (its path in dom0 without the
    leading slash -> content): the xl configuration, the image, the scripts,
    all in `folder`."""
    where = folder.lstrip("/")
    files: dict[str, bytes | Path] = {f"{where}/wait": WAIT_SCRIPT.encode()}
    if settings.type == "hvm":
        iso = make_iso(GuestImage(payload.kernel), payload.append, workdir / "nvct.iso")
        files[f"{where}/nvct.iso"] = iso
        files[f"{where}/follow"] = FOLLOW_SCRIPT.encode()
        config = domu_config(settings, name, f"{folder}/nvct.iso", payload.append, com1)
    else:
        files[f"{where}/kernel"] = payload.kernel
        files[f"{where}/pvconsole"] = PV_CONSOLE_SCRIPT.encode()
        config = domu_config(settings, name, f"{folder}/kernel", payload.append)
    files[f"{where}/domu.cfg"] = config.encode()
    return files


SCRIPTS = ("wait", "follow", "pvconsole")  # the executable ones among payload_files()


def wait_command(settings: XenSettings, name: str, folder: str = GUEST_DIR, com1: str = COM1_FILE,
                 domid: int | None = None) -> list[str]:  # fmt: skip
    """The command in dom0 that runs the domain to its end; its output is
    the domain's console: for HVM its COM1, for PVH with `domid` its Xen
    console (the probe kernel booted with console=xen), else nothing (the
    port 0xE9 lines come on Xen's own console)."""
    if settings.type == "hvm":
        return ["sh", f"{folder}/follow", com1, name]
    if domid is not None:
        return ["sh", f"{folder}/pvconsole", str(domid), name]
    return ["sh", f"{folder}/wait", name]


def xen_cmdline(settings: XenSettings) -> str:
    mem = f"dom0_mem={settings.dom0_memory}M,max:{settings.dom0_memory}M"
    return " ".join((*XEN_APPEND, mem, *settings.options))


def xl_info_facts(info: dict[str, str]) -> dict[str, Any]:
    """The facts of a Xen level from `xl info`."""
    return {
        "xen.version": info["xen_version"],
        "xen.caps": info.get("xen_caps", ""),
        "xen.virt_caps": info.get("virt_caps", ""),
        "xen.scheduler": info.get("xen_scheduler", ""),
        "xen.commandline": info.get("xen_commandline", ""),
    }


def parse_xl_info(lines: list[str]) -> dict[str, str]:
    """`xl info`: `key : value` lines (Xen's own console lines skipped)."""
    info = {}
    for line in lines:
        match = re.match(r"([a-z_]+)\s+:\s?(.*)$", line.strip())
        if match:
            info[match.group(1)] = match.group(2).strip()
    return info


class XenBackend(Backend):
    name = "xen"
    Settings = XenSettings
    nestable = True

    def __init__(self, settings: XenSettings, level: int, below: Backend | None = None):
        super().__init__(settings, level)
        self.below = below
        self.host = settings.host()  # a real host's dom0, or None: Xen booted by the level below
        self._appliance: xen_appliance.XenAppliance | None = None
        self._host_info: dict[str, str] | None = None

    @classmethod
    def placement_error(cls, settings: XenSettings, index: int) -> str | None:
        if settings.dom0:  # a real host: Xen is its hypervisor, L0
            return (
                None
                if index == 0
                else f"with dom0 {settings.dom0!r} is a real host's hypervisor: L0, not level {index}"
            )
        return super().placement_error(settings, index)

    def preflight(self) -> None:
        if self.host is not None:
            self._preflight_host(self.host)
            return
        if self.below is None:
            raise BackendUnavailable("xen runs above another level, never as L0")
        if isinstance(self.below, QemuBackend):
            below = self.below.settings
            if getattr(below, "firmware", "bios") != "bios" or getattr(below, "boot_from", "kernel") != "kernel":
                raise BackendUnavailable(
                    "xen boots with QEMU's -kernel: the level below needs firmware bios, boot kernel"
                )
        elif not isinstance(self.below, BochsBackend):
            raise BackendUnavailable(
                f"xen needs QEMU or Bochs below it (they boot Xen with multiboot modules), not {self.below.name}"
            )
        self.below.preflight()
        if self.settings.type == "hvm":
            try:
                check_iso_tools()
            except BuildError as exc:
                raise BackendUnavailable(f"an HVM domU boots from a GRUB ISO: {exc}") from None
        try:
            self._appliance = xen_appliance.build(device_model=self.settings.type == "hvm")
        except ApplianceError as exc:
            raise BackendUnavailable(f"cannot build the Xen appliance: {exc}") from None

    def _preflight_host(self, host: SshHost) -> None:
        """A real host: dom0 answers and `xl info` works (and, for HVM, the
        ISO can be made here). What Xen offers (HVM, HAP) is checked at boot:
        missing, it makes the level unavailable, not the run."""
        if host.kind == "ssh":
            require_binary("ssh", "openssh-client")
        elif not Path("/proc/xen").is_dir():
            raise BackendUnavailable("dom0 local: this machine is not a Xen domain (no /proc/xen)")
        self.host_info()
        if self.settings.type == "hvm":
            try:
                check_iso_tools()
            except BuildError as exc:
                raise BackendUnavailable(f"an HVM domU boots from a GRUB ISO: {exc}") from None

    def host_info(self) -> dict[str, str]:
        """`xl info` of the real host, read once."""
        assert self.host is not None
        if self._host_info is None:
            try:
                result = self.host.run("xl info", timeout=120)
            except SshHostError as exc:
                raise BackendUnavailable(str(exc)) from None
            info = parse_xl_info(result.stdout.splitlines())
            if result.returncode != 0 or "xen_version" not in info:
                why = (result.stderr.strip() or result.stdout.strip() or f"status {result.returncode}").splitlines()
                raise BackendUnavailable(f"{self.host.where}: `xl info` failed: {why[-1]}")
            self._host_info = info
        return self._host_info

    @property
    def appliance(self) -> xen_appliance.XenAppliance:
        if self._appliance is None:
            self._appliance = xen_appliance.build(device_model=self.settings.type == "hvm")
        return self._appliance

    def version(self) -> str:
        if self.host is not None:
            try:
                return f"Xen {self.host_info()['xen_version']}"
            except BackendUnavailable as exc:
                return f"unknown ({exc})"
        return f"Xen {self.appliance.manifest['xen']}, dom0 Linux {self.appliance.kernel_version}"

    def describe(self) -> dict:
        info = super().describe()
        if self.host is not None:
            info["dom0"] = self.host.where
            if self._host_info:  # what the pre-flight's `xl info` said
                info["xen_cmdline"] = self._host_info.get("xen_commandline", "")
                info["preflight"] = xl_info_facts(self._host_info)
            return info
        info["appliance"] = {k: self.appliance.manifest[k] for k in ("xen", "kernel_version", "packages")}
        info["xen_cmdline"] = xen_cmdline(self.settings)
        return info

    def _boot_xen(self, initrd: Path, workdir: Path) -> AbstractContextManager[Console]:
        """The level below boots Xen, dom0's kernel and initramfs as modules."""
        app = self.appliance
        xen = Payload(kernel=app.xen, append=xen_cmdline(self.settings), probe=False,
                      modules=((app.kernel, DOM0_APPEND), (initrd, "")))  # fmt: skip
        assert self.below is not None
        return self.below.boot_payload(xen, workdir)

    def boot_payload(self, payload: Payload, workdir: Path) -> AbstractContextManager[DomainConsole]:
        if not payload.probe or payload.initrds:
            raise BootFailed("xen runs the probe kernel as a domU; a Linux appliance above Xen is not supported")
        if self.host is not None:
            return self._boot_on_host(self.host, payload, workdir)
        return self._boot_emulated(payload, workdir)

    @contextmanager
    def _boot_emulated(self, payload: Payload, workdir: Path) -> Iterator[DomainConsole]:
        """Boot Xen on the level below, with the domain's files in dom0's
        initramfs; drive dom0 over the serial line."""
        name = f"nvct-l{self.level + 1}"
        try:
            files = payload_files(self.settings, name, payload, workdir)
        except BuildError as exc:
            raise BootFailed(f"L{self.level}: {exc}") from None
        scripts = {f"{GUEST_DIR.lstrip('/')}/{script}": 0o755 for script in SCRIPTS}
        extra = write_cpio(workdir / f"l{self.level}-payload.cpio", files, scripts)
        initrd = concatenate((self.appliance.initramfs, extra), workdir / f"l{self.level}-dom0.cpio")
        label = f"L{self.level} {self.name}"
        with self._boot_xen(initrd, workdir) as console:
            shell = Shell(console, label)
            try:
                release = shell.wait_ready(self.settings.ready_timeout)
                facts = self._facts(shell)
                facts["dom0.kernel"] = release
                domid = self._create(shell, name, CONFIG)
                facts.update(self._domain_facts(shell, name))
                guest = shell.launch(wait_command(self.settings, name), label=f"domain {name} in L{self.level}")
            except ShellError as exc:
                raise BootFailed(str(exc), exc.excerpt) from None
            domain = DomainConsole(guest, domid)
            domain.facts.update(facts)
            yield domain

    @contextmanager
    def _boot_on_host(self, host: SshHost, payload: Payload, workdir: Path) -> Iterator[DomainConsole]:
        """A real host's dom0: a shell there (local, or over SSH) for xl, the
        domain's files in a fresh folder under /tmp, its console copied from
        the pty xenconsoled serves (PVH, `console=xen`) or from the file the
        device model writes COM1 to (HVM). The domain and the folder are
        removed on every way out, over a connection of their own (the shell
        may be busy)."""
        # A name of its own: other runs (or shards of this one) share the host.
        name = f"nvct-l{self.level + 1}-{secrets.token_hex(4)}"
        label = f"L{self.level} {self.name} ({host.where})"
        console = host.spawn_shell(workdir)
        shell = Shell(console, label)
        folder = ""
        try:
            try:
                console.send(f"echo {READY} $(uname -r)\n")
                release = shell.wait_ready(self.settings.ready_timeout)
                made = shell.run("mktemp -d /tmp/nvct.XXXXXXXX", timeout=60)
                folders = [line.strip() for line in made.output if re.fullmatch(r"/tmp/nvct\.\w+", line.strip())]
                if made.status != 0 or not folders:
                    raise BootFailed(f"{label}: mktemp failed: {'; '.join(made.output[-2:])}", console.tail())
                folder = folders[-1]
                facts = self._facts(shell)
                facts["dom0.kernel"] = release
                if self.settings.type == "pvh":  # Xen's own console is the host's: the domain's is ours
                    payload = dataclasses.replace(payload, append=f"{payload.append} console=xen".strip())
                com1 = f"{folder}/com1"
                files = payload_files(self.settings, name, payload, workdir, folder, com1)
                for path, content in files.items():
                    if isinstance(content, bytes):
                        local = workdir / path.rsplit("/", 1)[-1]
                        local.write_bytes(content)
                        content = local
                    mode = 0o755 if path.rsplit("/", 1)[-1] in SCRIPTS else 0o644
                    host.put(content, f"/{path}", mode)
                domid = self._create(shell, name, f"{folder}/domu.cfg")
                facts.update(self._domain_facts(shell, name))
                guest = shell.launch(wait_command(self.settings, name, folder, com1, domid),
                                     label=f"domain {name} on {host.where}")  # fmt: skip
            except BuildError as exc:
                raise BootFailed(f"L{self.level}: {exc}") from None
            except ShellError as exc:
                raise BootFailed(str(exc), exc.excerpt) from None
            except SshHostError as exc:
                raise BootFailed(str(exc), console.tail()) from None
            domain = DomainConsole(guest, domid)
            domain.facts.update(facts)
            yield domain
        finally:
            cleanup = f"xl destroy {shlex.quote(name)} >/dev/null 2>&1"
            if folder:
                cleanup += f"; rm -rf {shlex.quote(folder)}"
            try:
                host.run(cleanup, timeout=60)
            except SshHostError:
                pass  # the host is gone; nothing more can be done from here
            console.close(grace=1.0)

    def _facts(self, shell: Shell) -> dict[str, Any]:
        result = shell.run(["xl", "info"], timeout=120)
        info = parse_xl_info(result.output)
        if result.status != 0 or "xen_version" not in info:
            why = "; ".join(line.strip() for line in result.output[-3:])
            raise BootFailed(f"L{self.level}: `xl info` failed ({result.status}): {why}", shell.console.tail())
        facts = xl_info_facts(info)
        caps = facts["xen.virt_caps"].split()
        below = "the level below exposes" if self.host is None else "the host's CPU (or its firmware settings) offers"
        if "hvm" not in caps:
            raise LevelUnavailable(
                f"L{self.level} Xen offers no HVM guests (virt_caps: {' '.join(caps) or 'none'}): {below} no SVM or VMX"
            )
        if self.settings.hap and "hap" not in caps:
            raise LevelUnavailable(
                f"L{self.level} Xen has no hardware-assisted paging (virt_caps: {' '.join(caps)}): {below} no NPT or EPT"
            )
        return facts

    def _create(self, shell: Shell, name: str, config: str) -> int:
        """Create the domain paused; its id. Xen refusing nested HVM (or
        anything else the configuration asks) makes the level unavailable."""
        result = shell.run(["xl", "create", "-p", config], timeout=120)
        if result.status != 0:
            errors = [line.strip() for line in result.output if "error" in line.lower() or "fail" in line.lower()]
            why = "; ".join(errors[-3:] or [line.strip() for line in result.output[-3:]])
            raise LevelUnavailable(f"L{self.level} Xen refused the domain (xl create -p {config}): {why}")
        domid = shell.run(["xl", "domid", name], timeout=60)
        digits = [line.strip() for line in domid.output if line.strip().isdigit()]
        if domid.status != 0 or not digits:
            raise BootFailed(f"L{self.level}: `xl domid {name}` failed after xl create", shell.console.tail())
        return int(digits[-1])

    def _domain_facts(self, shell: Shell, name: str) -> dict[str, Any]:
        """The domain as libxl built it (`xl list -l`): type, nested HVM, HAP."""
        result = shell.run(["xl", "list", "-l", name], timeout=60)
        text = "\n".join(line for line in result.output if not line.startswith("(XEN)"))
        facts: dict[str, Any] = {}
        try:
            config = json.loads(text)[0]["config"]
        except (ValueError, LookupError, TypeError):
            return {"domu.config": "unreadable `xl list -l` output"}
        c_info, b_info = config.get("c_info", {}), config.get("b_info", {})
        facts["domu.type"] = c_info.get("type", "")
        for key in ("nested_hvm", "hap"):
            if key in b_info:
                facts[f"domu.{key}"] = b_info[key]
        if "max_memkb" in b_info:
            facts["domu.memory_kb"] = b_info["max_memkb"]
        facts["domu.vcpus"] = b_info.get("max_vcpus", "")
        return facts


@dataclass
class DomainConsole:
    """The domU's console: the lines of Xen's console up to the end of the
    wait in dom0, with the domain's port 0xE9 lines that Xen cut into
    199-character pieces joined again."""

    inner: GuestConsole
    domid: int
    facts: dict[str, Any] = field(default_factory=dict)
    panic: list[str] = field(default_factory=list)  # Xen's reason, if it panicked
    crashed: str = ""  # where Xen crashed the domain (domain_crash called from FILE:LINE)
    said: str = ""  # the last thing Xen said about one of the domain's vCPUs before that
    _pending: str | None = None
    _rip: str = ""
    _in_panic: bool = False

    def _watch(self, line: str) -> None:
        """Note a Xen panic: the RIP of the last register dump, then the
        reason lines after "Panic on CPU N:". Note too a domain that Xen
        crashed ("domain_crash called from ...", after a line on one of its
        vCPUs such as "d1v0 VMLAUNCH error: 0x7"): Xen, not the probe
        kernel, ended it."""
        if not line.startswith("(XEN) "):
            return
        text = line[6:].strip()
        if text.startswith(f"d{self.domid}v") and not self.crashed:
            self.said = text
        elif text.startswith("domain_crash called from "):
            self.crashed = text.removeprefix("domain_crash called from ").strip()
        if text.startswith("RIP:"):
            self._rip = text.split("]", 1)[-1].strip()
        elif text.startswith("Panic on CPU"):
            self._in_panic = True
            self.panic = []
        elif self._in_panic:
            if text.startswith("****"):
                self._in_panic = bool(not self.panic)  # the frame opens and closes with stars
            elif text and len(self.panic) < 4:
                self.panic.append(text)

    @property
    def prefix(self) -> str:
        return f"(d{self.domid})"

    def readline(self, timeout: float) -> str | None:
        while True:
            line = self.inner.readline(timeout)
            if line is not None:
                self._watch(line)
            if line is None:
                if self._pending is not None:
                    line, self._pending = f"{self.prefix} {self._pending}", None
                    return line
                return None
            if not line.startswith(self.prefix):
                return line
            piece = line[len(self.prefix) :]
            piece = piece[1:] if piece.startswith(" ") else piece
            whole = piece if self._pending is None else self._pending + piece
            if len(piece) == PBUF_CHUNK:
                self._pending = whole
                continue
            self._pending = None
            return f"{self.prefix} {whole}"

    def send(self, text: str) -> None:
        self.inner.send(text)

    def tail(self, count: int = 30) -> list[str]:
        return self.inner.tail(count)

    def close(self, grace: float = 5.0) -> None:
        self.inner.close(grace)

    def kill(self) -> None:
        kill = getattr(self.inner, "kill", None)
        if kill is not None:
            kill()

    def describe_end(self) -> str:
        end = self.inner.describe_end()
        if self.panic:
            where = f" in {self._rip}" if self._rip else ""
            return f"Xen panicked{where}: {'; '.join(self.panic)} ({end})"
        if self.crashed:
            said = f" after {self.said!r}" if self.said else ""
            return f"Xen crashed the domain{said} (domain_crash called from {self.crashed}); {end}"
        return end

    @property
    def exit_status(self) -> int | None:
        return self.inner.exit_status
