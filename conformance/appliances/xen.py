"""The Xen appliance: Xen as the hypervisor of a level, with a PV dom0.

Debian's Xen hypervisor (xen-hypervisor-4.17-amd64, gunzipped to the ELF
that QEMU's `-kernel` boots through its multiboot header), Debian's kernel
as the PV dom0 (its uncompressed vmlinux when the bzImage carries one), and
a busybox initramfs with the Xen toolstack: `xl`, xenstored, xenconsoled,
xen-init-dom0, the xenfs and privcmd modules, and every library they load.
Dom0's init starts the Xen daemons, then the same command loop as the
Linux/KVM appliance (linux.py) on hvc0, which Xen multiplexes onto its
serial console. Nothing is installed on this machine: the packages come
from `apt-get download` and `dpkg-deb -x`. Built once, cached by content in
$NVCT_CACHE/xen-appliance.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .cpio import CpioWriter
from .linux import (
    BUSYBOX,
    READY,
    ApplianceError,
    _download,
    _kernel_package,
    _run,
    cache_root,
    publish,
    take_kernel,
    write_base,
)

FORMAT = 1  # bump when the layout or the init changes: old caches are then rebuilt

XEN_VERSION = "4.17"
HYPERVISOR = f"xen-hypervisor-{XEN_VERSION}-amd64"
# The toolstack: the Debian packages that xl, xenstored and xenconsoled come from.
TOOLSTACK = (
    f"xen-utils-{XEN_VERSION}",
    "xen-utils-common",
    "xenstore-utils",
    f"libxenmisc{XEN_VERSION}",
    "libxenstore4",
    "libxentoolcore1",
    "libxengnttab1",
    "libxencall1",
    "libxenevtchn1",
    "libxenforeignmemory1",
    "libxentoollog1",
    "libxenhypfs1",
    "libxendevicemodel1",
    "libyajl2",
)
XEN_BIN = f"usr/lib/xen-{XEN_VERSION}/bin"
# Programs dom0 runs, relative to the extracted packages.
PROGRAMS = (
    f"{XEN_BIN}/xl",
    f"{XEN_BIN}/xenstored",
    f"{XEN_BIN}/xenconsoled",
    f"{XEN_BIN}/xen-init-dom0",
    "usr/bin/xenstore",
)
XENSTORE_TOOLS = ("read", "write", "ls", "list", "rm", "exists")
MODULES = (
    "drivers/xen/xen-evtchn.ko",
    "drivers/xen/xen-privcmd.ko",
    "drivers/xen/xenfs/xenfs.ko",
    "drivers/xen/xen-gntdev.ko",
    "drivers/xen/xen-gntalloc.ko",
)
# glibc loads it at run time (for pthread_cancel) without ldd listing it;
# `xl create` aborts without it.
RUNTIME_LIBS = ("libgcc_s.so.1",)
HOST_LIBDIRS = ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu")

# The HVM device model, only in the appliance build(device_model=True) gives
# (it adds about 33 MB to dom0's initramfs; PVH domUs need none of it): QEMU
# for Xen (the path libxl starts), the firmware libxl loads for an HVM domU
# (hvmloader, from xen-utils; SeaBIOS, the path Debian's libxl was built
# with), and the keymap QEMU loads at start (its default, en-us: it does so
# even with `-vnc none` and no `-k`, and refuses to start without it).
DEVICE_MODEL_PACKAGES = ("qemu-system-xen", "seabios", "qemu-system-data")
DEVICE_MODEL_PROGRAMS = ("usr/libexec/xen-qemu-system-i386",)
DEVICE_MODEL_DATA = (
    f"usr/lib/xen-{XEN_VERSION}/boot/hvmloader",
    "usr/share/seabios/bios-256k.bin",
    "usr/share/qemu/keymaps/en-us",
)

# Dom0's init: the Xen daemons, the hooks a layer appended to the initramfs
# may bring (/etc/nvct/init.d: a test's network and sshd, say), then the
# command loop of linux.py on hvc0 (no prompt, no echo). A daemon that
# does not start ends the boot with a line the harness quotes.
INIT = f"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin:/{XEN_BIN} HOME=/
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mkdir -p /run/xen /run/xenstored /var/lib/xen /var/lib/xenstored /var/log/xen /dev/shm
ln -s /run /var/run
echo 1 > /proc/sys/kernel/printk
stty -echo -onlcr 2>/dev/null
ln -s /proc/self/fd /dev/fd 2>/dev/null
fail() {{ echo "nvct xen appliance: $*"; poweroff -f; }}
for m in xen-evtchn xen-privcmd xenfs xen-gntdev xen-gntalloc; do modprobe $m || fail "modprobe $m failed"; done
mount -t xenfs xenfs /proc/xen || fail "cannot mount xenfs"
xenstored --pid-file /run/xenstored.pid || fail "xenstored did not start"
xen-init-dom0 >/tmp/xen-init-dom0.log 2>&1 || fail "xen-init-dom0 failed: $(cat /tmp/xen-init-dom0.log)"
xenconsoled --pid-file=/run/xenconsoled.pid --log=none || fail "xenconsoled did not start"
for hook in /etc/nvct/init.d/*; do [ -f "$hook" ] && . "$hook"; done
echo "{READY} $(uname -r)"
while IFS= read -r line; do
    eval "$line"
done
echo "nvct xen appliance: console closed" >&2
poweroff -f
"""


@dataclass(frozen=True)
class XenAppliance:
    root: Path
    xen: Path  # the hypervisor, an ELF with multiboot headers
    kernel: Path  # dom0's kernel: the uncompressed vmlinux, or the bzImage
    initramfs: Path
    manifest: dict

    @property
    def kernel_version(self) -> str:
        return self.manifest["kernel_version"]

    @property
    def xen_package(self) -> str:
        return self.manifest["packages"][HYPERVISOR]


def _load(folder: Path) -> XenAppliance:
    manifest = json.loads((folder / "manifest.json").read_text())
    return XenAppliance(folder, folder / "xen.elf", folder / manifest["kernel"], folder / "initramfs.cpio", manifest)


def _host_lib(name: str) -> Path:
    for libdir in HOST_LIBDIRS:
        path = Path(libdir) / name
        if path.exists():
            return path
    raise ApplianceError(f"{name} not found in {', '.join(HOST_LIBDIRS)} (Debian package libgcc-s1)")


def _identity(packages: dict[str, Path], device_model: bool = False) -> str:
    digest = hashlib.sha256()
    digest.update(f"format {FORMAT}\n{INIT}\n{MODULES}\n{PROGRAMS}\n".encode())
    if device_model:
        digest.update(f"device model {DEVICE_MODEL_PROGRAMS} {DEVICE_MODEL_DATA}\n".encode())
    for name in sorted(packages):
        digest.update(f"{name} {packages[name].name}\n".encode())
    # The libraries taken from this machine (glibc and a few more).
    for name in ("libc.so.6", "libuuid.so.1", "libz.so.1", "liblzma.so.5", "libzstd.so.1", *RUNTIME_LIBS):
        try:
            st = _host_lib(name).stat()
        except ApplianceError:
            continue
        digest.update(f"{name} {st.st_size} {int(st.st_mtime)}\n".encode())
    return digest.hexdigest()[:16]


def build(progress: Callable[[str], None] = lambda _: None, device_model: bool = False) -> XenAppliance:
    """The Xen appliance for this machine, built if the cache has none that
    fits. `device_model`: the variant that can run HVM domUs."""
    root = cache_root()
    kernel_package = _kernel_package()
    extra = DEVICE_MODEL_PACKAGES if device_model else ()
    packages = _download([kernel_package, BUSYBOX, HYPERVISOR, *TOOLSTACK, *extra], root / "debs")
    key = _identity(packages, device_model)
    folder = root / "xen-appliance" / key
    if (folder / "manifest.json").is_file():
        return _load(folder)
    progress(f"building the Xen appliance in {folder}")
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=folder.parent))
    try:
        manifest = _assemble(work, packages, device_model)
        (work / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        shutil.rmtree(work / "x", ignore_errors=True)
        publish(work, folder, folder / "manifest.json")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return _load(folder)


def _libraries(binary: Path, libdir: Path) -> list[Path]:
    """The shared objects a binary loads (ldd, with the extracted packages'
    libraries first on the search path), the loader included."""
    try:
        proc = subprocess.run(
            ["ldd", str(binary)],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "LD_LIBRARY_PATH": str(libdir)},
        )
    except FileNotFoundError:
        raise ApplianceError("ldd not found (Debian package libc-bin)") from None
    if proc.returncode != 0:
        raise ApplianceError(f"ldd {binary} failed: {(proc.stderr or proc.stdout).strip()[-300:]}")
    libs = []
    for line in proc.stdout.splitlines():
        if "not found" in line:
            raise ApplianceError(f"{binary.name}: {line.strip()}")
        match = re.search(r"=>\s+(/\S+)", line) or re.match(r"\s*(/\S+)\s+\(", line)
        if match:
            libs.append(Path(match.group(1)))
    return libs


def _assemble(work: Path, packages: dict[str, Path], device_model: bool = False) -> dict:
    extracted = work / "x"
    for deb in packages.values():
        _run(["dpkg-deb", "-x", str(deb), str(extracted)])

    xen_gz = sorted((extracted / "boot").glob(f"xen-{XEN_VERSION}-amd64.gz"))
    if not xen_gz:
        raise ApplianceError(f"no /boot/xen-{XEN_VERSION}-amd64.gz in {packages[HYPERVISOR].name}")
    with gzip.open(xen_gz[0]) as src, open(work / "xen.elf", "wb") as dst:
        shutil.copyfileobj(src, dst)
    if (work / "xen.elf").read_bytes()[:4] != b"\x7fELF":
        raise ApplianceError(f"{xen_gz[0].name} does not hold an ELF image")

    version, kernel = take_kernel(extracted, work, packages)
    libdir = extracted / "usr" / "lib" / "x86_64-linux-gnu"

    programs = (*PROGRAMS, *DEVICE_MODEL_PROGRAMS) if device_model else PROGRAMS
    libs: dict[str, Path] = {}  # path in dom0 -> file here
    for program in programs:
        for lib in _libraries(extracted / program, libdir):
            inside = lib.relative_to(extracted) if lib.is_relative_to(extracted) else lib.relative_to("/")
            libs[str(inside)] = lib
    for name in RUNTIME_LIBS:
        lib = _host_lib(name)
        libs[str(lib.relative_to("/"))] = lib

    with open(work / "initramfs.cpio", "wb") as out:
        cpio = CpioWriter(out)
        write_base(cpio, extracted, version, INIT, MODULES,
                   ("bin", "sbin", "dev", "proc", "sys", "tmp", "run", "etc/xen", "var/lib", "var/log", "nvct",
                    "usr/bin", "usr/sbin"))  # fmt: skip
        for program in programs:
            cpio.file(program, extracted / program, 0o755)
        for data in DEVICE_MODEL_DATA if device_model else ():
            cpio.file(data, extracted / data, 0o644)
        for tool in XENSTORE_TOOLS:
            cpio.symlink(f"usr/bin/xenstore-{tool}", "xenstore")
        for inside, lib in sorted(libs.items()):
            cpio.file(inside, lib, 0o755)
        xl_conf = extracted / "etc" / "xen" / "xl.conf"
        if xl_conf.is_file():
            cpio.file("etc/xen/xl.conf", xl_conf, 0o644)
        cpio.close()
    return {
        "format": FORMAT,
        "kernel": kernel.name,
        "kernel_version": version,
        "packages": {name: deb.name for name, deb in packages.items()},
        "xen": packages[HYPERVISOR].name.split("_")[1].replace("%3a", ":"),
        "modules": list(MODULES),
        "device_model": device_model,
    }
