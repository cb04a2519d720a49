"""The SSH layer of the Xen appliance: dom0 reachable over the network.

A second cpio archive, appended to the Xen appliance's initramfs by
`xen_host.sshd_appliance()`, that makes the emulated dom0 look like a
real Xen host's for the backend's SSH mode: the e1000 driver from Debian's
kernel package, this machine's OpenSSH server (`/usr/sbin/sshd`, Debian
openssh-server) with every library `ldd` lists, `/etc/passwd`, `group` and
`shadow` with root and the `sshd` privilege-separation user, an ed25519 host
key made when the layer is built, `xl` on sshd's default PATH
(`/usr/sbin/xl`, as on a Debian Xen host), and a hook that dom0's init
sources (`/etc/nvct/init.d/sshd`).

The hook does nothing unless the level below gave dom0 a PCI network card
(QEMU `-netdev user,...,hostfwd=tcp:127.0.0.1:PORT-:22 -device e1000,...`):
then it loads e1000, gives the card QEMU user networking's address
10.0.2.15/24 (gateway 10.0.2.2), starts sshd (root by key only, `UsePAM
no`, log in /tmp/sshd.log) and prints SSHD_READY on the console, before
the appliance's READY line. Root's `authorized_keys` is not in this layer:
whoever boots the appliance appends it (`authorized_keys_cpio()`).

Built once per Xen appliance and cached beside it, by content.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from conformance.appliances.cpio import CpioWriter, write_cpio
from conformance.appliances.linux import ApplianceError, _libraries, publish

FORMAT = 1  # bump when the layer changes: cached layers are then rebuilt

SSHD = "/usr/sbin/sshd"
NIC_MODULE = "drivers/net/ethernet/intel/e1000/e1000.ko"
ADDRESS = "10.0.2.15/24"  # QEMU user networking's guest address
GATEWAY = "10.0.2.2"
SSHD_READY = "NVCT-DOM0-SSHD-READY"  # the console line that says sshd listens
HOST_KEY = "etc/ssh/ssh_host_ed25519_key"

# Sourced by dom0's init (INIT in conformance/appliances/xen.py) after the Xen daemons, before
# READY: `fail` is the init's. A NIC is a PCI function of class 0x0200xx.
HOOK = f"""# nvct: the network and sshd, only when dom0 has a NIC
nic=
for dev in /sys/bus/pci/devices/*; do
    case $(cat "$dev/class" 2>/dev/null) in 0x0200*) nic=${{dev##*/}} ;; esac
done
if [ -n "$nic" ]; then
    insmod /lib/modules/$(uname -r)/kernel/{NIC_MODULE} || fail "insmod e1000 failed (NIC $nic)"
    ifname=
    for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
        ifname=$(ls /sys/bus/pci/devices/$nic/net 2>/dev/null | head -n 1)
        [ -n "$ifname" ] && break
        sleep 0.5
    done
    [ -n "$ifname" ] || fail "NIC $nic has no network interface after insmod e1000"
    ip link set lo up
    ip addr add {ADDRESS} dev "$ifname" && ip link set "$ifname" up && ip route add default via {GATEWAY} \\
        || fail "cannot configure $ifname"
    mkdir -p /run/sshd /var/empty
    chmod 755 /run/sshd
    /usr/sbin/sshd -E /tmp/sshd.log || fail "sshd did not start: $(tail -n 3 /tmp/sshd.log)"
    echo "{SSHD_READY} $ifname {ADDRESS} port 22"
fi
"""

SSHD_CONFIG = """# nvct: dom0 of the emulated Xen host, root by key only
Port 22
ListenAddress 0.0.0.0
HostKey /etc/ssh/ssh_host_ed25519_key
PidFile /run/sshd.pid
PermitRootLogin prohibit-password
PubkeyAuthentication yes
AuthorizedKeysFile .ssh/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
PrintMotd no
PrintLastLog no
Subsystem sftp internal-sftp
"""

ETC = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\nsshd:x:100:65534::/run/sshd:/usr/sbin/nologin\n",
    "etc/group": "root:x:0:\nnogroup:x:65534:\n",
    # "*": no password, not locked (sshd without PAM refuses a locked account even by key)
    "etc/shadow": "root:*:19000:0:99999:7:::\nsshd:*:19000:0:99999:7:::\n",
    "etc/nsswitch.conf": "passwd: files\ngroup: files\nshadow: files\nhosts: files\n",
    "etc/shells": "/bin/sh\n",
    "etc/ssh/sshd_config": SSHD_CONFIG,
}


def _identity(kernel_deb: Path, libs: list[Path]) -> str:
    digest = hashlib.sha256()
    digest.update(f"format {FORMAT}\n{HOOK}\n{ETC}\n{NIC_MODULE}\n{kernel_deb.name}\n".encode())
    for path in [Path(SSHD), *libs]:
        st = path.stat()
        digest.update(f"{path} {st.st_size} {int(st.st_mtime)}\n".encode())
    return digest.hexdigest()[:16]


def _nic_module(kernel_deb: Path) -> tuple[str, bytes]:
    """(the kernel release, e1000.ko) from the kernel package."""
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(kernel_deb)], stdout=subprocess.PIPE)
    found = None
    try:
        assert proc.stdout is not None
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            for member in tar:
                parts = member.name.lstrip("./").split("/")
                if member.isfile() and "/".join(parts[4:]) == NIC_MODULE and parts[:2] == ["lib", "modules"]:
                    extracted = tar.extractfile(member)
                    assert extracted is not None
                    found = (parts[2], extracted.read())
    finally:
        proc.wait()
    if found is None:
        raise ApplianceError(f"{kernel_deb.name} has no {NIC_MODULE}")
    return found


def build_layer(folder: Path, kernel_deb: Path, xl: str) -> Path:
    """The folder, beside the Xen appliance's files in `folder`, that holds
    the SSH layer (layer.cpio) and its manifest (the host public key).
    `xl`: where the appliance has xl, linked from /usr/sbin/xl."""
    if not os.access(SSHD, os.X_OK):
        raise ApplianceError(f"{SSHD} not found (Debian package openssh-server)")
    if shutil.which("ssh-keygen") is None:
        raise ApplianceError("ssh-keygen not found (Debian package openssh-client)")
    libs = [Path(lib) for lib in _libraries(SSHD)]
    layer_dir = folder / f"sshd-{_identity(kernel_deb, libs)}"
    layer = layer_dir / "layer.cpio"
    if layer.is_file():
        return layer_dir
    work = Path(tempfile.mkdtemp(prefix=".build-sshd-", dir=folder))
    try:
        release, module = _nic_module(kernel_deb)
        key = work / "ssh_host_ed25519_key"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "nvct-xen-dom0", "-f", str(key)],
                       check=True, capture_output=True, timeout=60)  # fmt: skip
        with open(work / "layer.cpio", "wb") as out:
            cpio = CpioWriter(out)
            cpio.directory("root", 0o700)
            cpio.directory("var/empty")
            cpio.data(f"lib/modules/{release}/kernel/{NIC_MODULE}", module, 0o644)
            cpio.file("usr/sbin/sshd", Path(SSHD), 0o755)
            for lib in libs:
                cpio.file(str(lib.relative_to("/")), lib, 0o755)
            # Where a Debian Xen host has it, on sshd's default PATH.
            cpio.symlink("usr/sbin/xl", xl)
            for name, text in ETC.items():
                cpio.data(name, text.encode(), 0o640 if name == "etc/shadow" else 0o644)
            cpio.data(HOST_KEY, key.read_bytes(), 0o600)
            cpio.data(HOST_KEY + ".pub", (work / "ssh_host_ed25519_key.pub").read_bytes(), 0o644)
            cpio.data("etc/nvct/init.d/sshd", HOOK.encode(), 0o644)
            cpio.close()
        (work / "manifest.json").write_text(json.dumps({
            "format": FORMAT, "sshd": SSHD, "nic_module": NIC_MODULE, "kernel_release": release,
            "address": ADDRESS, "host_key": (work / "ssh_host_ed25519_key.pub").read_text().strip(),
        }, indent=1) + "\n")  # fmt: skip
        key.unlink()  # it lives in the layer only
        publish(work, layer_dir, layer)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return layer_dir


def host_key(layer_dir: Path) -> str:
    """dom0's host public key, "ssh-ed25519 AAAA... nvct-xen-dom0"."""
    return json.loads((layer_dir / "manifest.json").read_text())["host_key"]


def authorized_keys_cpio(public_keys: list[str], dest: Path) -> Path:
    """A small archive with root's authorized_keys, appended after the layer."""
    text = "".join(key.strip() + "\n" for key in public_keys)
    return write_cpio(dest, {"root/.ssh/authorized_keys": text.encode()}, {"root/.ssh/authorized_keys": 0o600})


def variant(base, kernel_deb: Path, xl: str):
    """The Xen appliance `base` with the SSH layer: its initramfs is the
    base's followed by the layer (cached beside the layer), and its manifest
    says what the layer holds under "sshd"."""
    import dataclasses

    layer_dir = build_layer(base.root, kernel_deb, xl)
    initramfs = layer_dir / "initramfs.cpio"
    if not initramfs.is_file():
        partial = layer_dir / f".initramfs-{os.getpid()}"
        with open(partial, "wb") as out:
            for part in (base.initramfs, layer_dir / "layer.cpio"):
                with open(part, "rb") as src:
                    shutil.copyfileobj(src, out, 1 << 20)
        os.replace(partial, initramfs)
    manifest = {**base.manifest, "sshd": json.loads((layer_dir / "manifest.json").read_text())}
    return dataclasses.replace(base, initramfs=initramfs, manifest=manifest)
