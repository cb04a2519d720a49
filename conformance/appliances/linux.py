"""The appliance: a small Linux guest that is a hypervisor for the next level.

Debian's own kernel and KVM modules (fetched with `apt-get download`, never
installed), static busybox, and this machine's qemu-system-x86_64 with the
libraries and firmware it loads. Its init starts a command loop on the
serial console that the harness drives (`shell.py`). Built once, cached
by content in $NVCT_CACHE (default ~/.cache/nvct/appliance).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import lzma
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .cpio import CpioWriter

FORMAT = 4  # bump when the layout or the init changes: old caches are then rebuilt

KERNEL_META = "linux-image-amd64"
BUSYBOX = "busybox-static"
MODULES = (
    "virt/lib/irqbypass.ko",
    "arch/x86/kvm/kvm.ko",
    "arch/x86/kvm/kvm-amd.ko",
    "arch/x86/kvm/kvm-intel.ko",
    "drivers/crypto/ccp/ccp.ko",
)
QEMU = "qemu-system-x86_64"
# Firmware QEMU loads for `-kernel` boots with -nodefaults (no NIC, no VGA).
FIRMWARE = (
    "/usr/share/seabios/bios-256k.bin",
    "/usr/share/qemu/kvmvapic.bin",
    "/usr/share/qemu/linuxboot.bin",
    "/usr/share/qemu/linuxboot_dma.bin",
    "/usr/share/qemu/multiboot.bin",
    "/usr/share/qemu/multiboot_dma.bin",
    "/usr/share/qemu/pvh.bin",
)

READY = "NVCT-APPLIANCE-READY"

# The command loop: one line in, run it, then a marker with its status. No
# prompt and no echo, so that the console carries only what commands print.
INIT = f"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
echo 1 > /proc/sys/kernel/printk
stty -echo -onlcr 2>/dev/null
ln -s /proc/self/fd /dev/fd 2>/dev/null
echo "{READY} $(uname -r)"
while IFS= read -r line; do
    eval "$line"
done
echo "nvct appliance: console closed" >&2
poweroff -f
"""


class ApplianceError(Exception):
    pass


@dataclass(frozen=True)
class Appliance:
    root: Path
    kernel: Path  # an uncompressed vmlinux with a PVH entry, or the bzImage
    initramfs: Path
    manifest: dict

    @property
    def kernel_version(self) -> str:
        return self.manifest["kernel_version"]

    @property
    def bzimage(self) -> Path:
        """The same kernel as Debian ships it, for a boot loader that cannot
        load the vmlinux ELF (GRUB's `linux` under Bochs)."""
        return self.root / self.manifest.get("bzimage", self.manifest["kernel"])


def cache_root() -> Path:
    env = os.environ.get("NVCT_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "nvct"


def _run(argv: list[str], cwd: Path | None = None) -> str:
    try:
        proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=600)
    except FileNotFoundError:
        raise ApplianceError(f"{argv[0]} not found") from None
    if proc.returncode != 0:
        raise ApplianceError(
            f"{' '.join(argv)} failed ({proc.returncode}): {(proc.stderr or proc.stdout).strip()[-500:]}"
        )
    return proc.stdout


def _kernel_package() -> str:
    out = _run(["apt-cache", "depends", KERNEL_META])
    match = re.search(r"Depends: (linux-image-[0-9][^\s]*)", out)
    if not match:
        raise ApplianceError(
            f"apt knows no {KERNEL_META} (run `apt-get update` first; a Debian or Ubuntu package list is needed)"
        )
    return match.group(1)


def _download(packages: list[str], dest: Path) -> dict[str, Path]:
    dest.mkdir(parents=True, exist_ok=True)
    found: dict[str, Path] = {}
    missing = []
    for package in packages:
        version = _run(["apt-cache", "policy", package])
        cand = re.search(r"Candidate: (\S+)", version)
        if not cand or cand.group(1) == "(none)":
            raise ApplianceError(f"apt has no candidate for {package} (run `apt-get update`)")
        ver = cand.group(1).replace(":", "%3a")
        hits = list(dest.glob(f"{package}_{ver}_*.deb"))
        if hits:
            found[package] = hits[0]
        else:
            missing.append(package)
    if missing:
        _run(["apt-get", "download", *missing], cwd=dest)
        return _download(packages, dest)
    return found


def _libraries(binary: str) -> list[str]:
    """The shared objects `ldd` lists for a binary, the loader included."""
    out = _run(["ldd", binary])
    libs = []
    for line in out.splitlines():
        match = re.search(r"=>\s+(/\S+)", line) or re.match(r"\s*(/\S+)\s+\(", line)
        if match:
            libs.append(match.group(1))
        elif "not found" in line:
            raise ApplianceError(f"{binary}: {line.strip()}")
    return libs


def _modinfo_depends(module: Path) -> list[str]:
    match = re.search(rb"depends=([^\0]*)\0", module.read_bytes())
    return [d for d in match.group(1).decode().split(",") if d] if match else []


def _modules_dep(deps: list[tuple[str, list[str]]]) -> str:
    """modules.dep: each module, then every module it needs, directly or not,
    each listed before the ones it needs itself (modprobe loads the list
    from its end)."""
    by_name = {Path(rel).stem.replace("-", "_"): rel for rel, _ in deps}
    needs = {rel: [n.replace("-", "_") for n in names] for rel, names in deps}
    lines = []
    for rel, _ in deps:
        order: list[str] = []

        def visit(name: str, chain: tuple[str, ...]) -> None:  # called within this iteration only
            if name not in by_name:
                raise ApplianceError(f"{rel} needs {name}, which the appliance does not carry")  # noqa: B023
            if name in chain:
                raise ApplianceError(f"module dependency loop: {' -> '.join(chain + (name,))}")
            dep = by_name[name]
            for sub in needs[dep]:
                visit(sub, chain + (name,))
            if dep not in order:  # noqa: B023
                order.append(dep)  # noqa: B023

        for name in needs[rel]:
            visit(name, (Path(rel).stem.replace("-", "_"),))
        lines.append(f"kernel/{rel}:" + "".join(f" kernel/{dep}" for dep in reversed(order)))
    return "\n".join(lines) + "\n"


def extract_vmlinux(bzimage: Path, dest: Path) -> Path | None:
    """The uncompressed kernel ELF inside an XZ-compressed bzImage, if it has a
    PVH entry (booting it saves the decompression, several seconds under TCG)."""
    data = bzimage.read_bytes()
    start = data.find(b"\xfd7zXZ\x00")
    if start < 0:
        return None
    try:
        elf = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data[start:])
    except lzma.LZMAError:
        return None
    if elf[:4] != b"\x7fELF" or b"Xen\x00" not in elf:
        return None
    dest.write_bytes(elf)
    return dest


def _identity(packages: dict[str, Path]) -> str:
    qemu = shutil.which(QEMU)
    if qemu is None:
        raise ApplianceError(f"{QEMU} not found (Debian package qemu-system-x86)")
    digest = hashlib.sha256()
    digest.update(f"format {FORMAT}\n{INIT}\n".encode())
    for name in sorted(packages):
        digest.update(f"{name} {packages[name].name}\n".encode())
    for path in [qemu, *_libraries(qemu), *FIRMWARE]:
        st = os.stat(path)
        digest.update(f"{path} {st.st_size} {int(st.st_mtime)}\n".encode())
    return digest.hexdigest()[:16]


def build(progress: Callable[[str], None] = lambda _: None) -> Appliance:
    """The appliance for this machine, built if the cache has none that fits."""
    root = cache_root()
    packages = _download([_kernel_package(), BUSYBOX], root / "debs")
    key = _identity(packages)
    folder = root / "appliance" / key
    manifest_path = folder / "manifest.json"
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        return Appliance(folder, folder / manifest["kernel"], folder / "initramfs.cpio", manifest)
    progress(f"building the appliance in {folder}")
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=folder.parent))
    try:
        manifest = _assemble(work, packages)
        (work / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        shutil.rmtree(work / "x", ignore_errors=True)
        publish(work, folder, manifest_path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    manifest = json.loads(manifest_path.read_text())
    return Appliance(folder, folder / manifest["kernel"], folder / "initramfs.cpio", manifest)


def compressed(path: Path) -> Path:
    """`path` compressed with gzip, cached beside it (`path.gz`): for levels
    that load the initramfs through a BIOS, where every byte read costs more
    than decompressing it. Made once, atomically; a stale one (older than
    `path`) is made again."""
    dest = path.with_name(path.name + ".gz")
    try:
        if dest.stat().st_mtime >= path.stat().st_mtime:
            return dest
    except FileNotFoundError:
        pass
    fd, tmp = tempfile.mkstemp(prefix=".gz-", dir=path.parent)
    try:
        # Level 1: a third of level 6's time for 9 % more bytes.
        with os.fdopen(fd, "wb") as out, open(path, "rb") as src, \
                gzip.GzipFile(fileobj=out, mode="wb", compresslevel=1, mtime=0) as gz:  # fmt: skip
            shutil.copyfileobj(src, gz, 1 << 20)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return dest


def publish(work: Path, folder: Path, done: Path) -> None:
    """Move a finished build folder into place at once (a rename): readers
    never see half a build. A parallel build that got there first wins, and
    this one's is thrown away by the caller; `done` is the file a finished
    folder always has."""
    try:
        os.rename(work, folder)
    except OSError:
        if not done.is_file():
            raise


def write_base(
    cpio: CpioWriter, extracted: Path, version: str, init: str, modules: tuple[str, ...], dirs: tuple[str, ...]
) -> None:
    """What every appliance starts with: its folders, the init, static
    busybox, and the kernel modules it needs with their modules.dep."""
    for d in dirs:
        cpio.directory(d)
    cpio.data("init", init.encode(), 0o755)
    cpio.file("bin/busybox", extracted / "bin" / "busybox", 0o755)
    cpio.symlink("bin/sh", "busybox")
    moddir = extracted / "lib" / "modules" / version
    deps = []
    for rel in modules:
        source = moddir / "kernel" / rel
        if not source.is_file():
            raise ApplianceError(f"{version}: no module {rel}")
        cpio.file(f"lib/modules/{version}/kernel/{rel}", source, 0o644)
        deps.append((rel, _modinfo_depends(source)))
    cpio.data(f"lib/modules/{version}/modules.dep", _modules_dep(deps).encode())


def take_kernel(extracted: Path, work: Path, packages: dict[str, Path], keep_bzimage: bool = False) -> tuple[str, Path]:
    """The kernel of the extracted Debian packages, copied into `work`: its
    release, and the uncompressed vmlinux when the bzImage carries one (it
    boots faster under TCG), else the bzImage itself. With `keep_bzimage`
    the bzImage is copied to `work/vmlinuz` in either case."""
    vmlinuz = sorted((extracted / "boot").glob("vmlinuz-*"))
    if not vmlinuz:
        raise ApplianceError(f"no /boot/vmlinuz-* in {packages}")
    version = vmlinuz[-1].name.removeprefix("vmlinuz-")
    if keep_bzimage:
        shutil.copyfile(vmlinuz[-1], work / "vmlinuz")
    kernel = extract_vmlinux(vmlinuz[-1], work / "vmlinux")
    if kernel is None:
        kernel = work / "vmlinuz"
        if not keep_bzimage:
            shutil.copyfile(vmlinuz[-1], kernel)
    return version, kernel


def _assemble(work: Path, packages: dict[str, Path]) -> dict:
    extracted = work / "x"
    for deb in packages.values():
        _run(["dpkg-deb", "-x", str(deb), str(extracted)])
    version, kernel = take_kernel(extracted, work, packages, keep_bzimage=True)
    qemu = shutil.which(QEMU)
    assert qemu is not None

    with open(work / "initramfs.cpio", "wb") as out:
        cpio = CpioWriter(out)
        write_base(cpio, extracted, version, INIT, MODULES,
                   ("bin", "sbin", "dev", "proc", "sys", "tmp", "etc", "nvct", "usr/bin", "usr/sbin"))  # fmt: skip
        cpio.file("usr/bin/qemu-system-x86_64", Path(qemu), 0o755)
        for lib in _libraries(qemu):
            cpio.file(lib.lstrip("/"), Path(lib), 0o755)
        for fw in FIRMWARE:
            cpio.file(fw.lstrip("/"), Path(fw), 0o644)
        cpio.close()
    return {
        "format": FORMAT,
        "kernel": kernel.name,
        "bzimage": "vmlinuz",
        "kernel_version": version,
        "packages": {name: deb.name for name, deb in packages.items()},
        "qemu": _run([qemu, "--version"]).splitlines()[0],
        "modules": list(MODULES),
    }
