"""`nvct host`: can this machine run nested virtualization, and how?

A pre-flight check in the manner of virt-host-validate, about nesting:
the CPU's virtualization extensions, /dev/kvm, the nesting parameters of
kvm_intel/kvm_amd, whether this machine is itself a guest (and of which
hypervisor), and the emulators nvct uses. One line per check with PASS,
WARN or FAIL and a hint; FAIL means the default conformance run cannot
work here.
"""

from __future__ import annotations

import ctypes
import enum
import errno
import fcntl
import mmap
import os
import platform
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

from .backends.bochs import bochs_version
from .backends.qemu import qemu_version


class Status(enum.Enum):
    PASS = "PASS"
    WARN = "WARN"
    FAIL = "FAIL"
    INFO = "INFO"


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    message: str
    hint: str = ""


# ---- CPUID from user space ------------------------------------------------------
# push rbx; mov r8, rdx; mov eax, edi; mov ecx, esi; cpuid;
# mov [r8], eax; mov [r8+4], ebx; mov [r8+8], ecx; mov [r8+12], edx; pop rbx; ret
_CPUID_CODE = bytes.fromhex("534989d089f889f10fa2418900418958044189480841895 00c5bc3".replace(" ", ""))


def cpuid(leaf: int, subleaf: int = 0) -> tuple[int, int, int, int] | None:
    """CPUID in this process (x86-64 Linux), or None where it cannot run
    (another architecture, or executable mappings are forbidden)."""
    if platform.machine() not in ("x86_64", "AMD64"):
        return None
    try:
        page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    except (OSError, ValueError):
        return None
    try:
        page.write(_CPUID_CODE)
        address = ctypes.addressof(ctypes.c_char.from_buffer(page))
        function = ctypes.CFUNCTYPE(None, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_void_p)(address)
        out = (ctypes.c_uint32 * 4)()
        function(leaf, subleaf, ctypes.addressof(out))
        result = tuple(out)
        del function
        return result  # type: ignore[return-value]
    finally:
        try:
            page.close()
        except BufferError:  # a view is still alive; the page goes with the process
            pass


def hypervisor_signature() -> str | None:
    """CPUID 0x40000000's signature if CPUID.1:ECX.HV is set."""
    leaf1 = cpuid(1)
    if leaf1 is None or not leaf1[2] & (1 << 31):
        return None
    regs = cpuid(0x40000000)
    if regs is None:
        return None
    raw = struct.pack("<III", regs[1], regs[2], regs[3])
    return raw.rstrip(b"\0").decode("ascii", "replace")


# ---- the checks -----------------------------------------------------------------


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def _param(module: str, name: str) -> str | None:
    try:
        return Path(f"/sys/module/{module}/parameters/{name}").read_text().strip()
    except OSError:
        return None


def check_cpu(flags: set[str]) -> Check:
    if "svm" in flags:
        return Check("cpu.extensions", Status.PASS, "the CPU offers AMD SVM to this machine")
    if "vmx" in flags:
        return Check("cpu.extensions", Status.PASS, "the CPU offers Intel VMX to this machine")
    return Check(
        "cpu.extensions", Status.WARN, "neither VMX nor SVM in /proc/cpuinfo: no hardware nesting here",
        "the emulated stacks (qemu-tcg, bochs-*, tcg-kvm-l2) still run; for KVM stacks, enable nested "
        "virtualization for this machine in the hypervisor below it",
    )  # fmt: skip


def check_guest(flags: set[str]) -> Check:
    signature = hypervisor_signature()
    if "hypervisor" not in flags and not signature:
        return Check("host.virtualized", Status.INFO, "this machine is not a guest: it runs on bare metal")
    known = {
        "KVMKVMKVM": "KVM", "Microsoft Hv": "Hyper-V", "VMwareVMware": "VMware", "XenVMMXenVMM": "Xen",
        "TCGTCGTCGTCG": "QEMU TCG", "VBoxVBoxVBox": "VirtualBox", "ACRNACRNACRN": "ACRN", "bhyve bhyve ": "bhyve",
    }  # fmt: skip
    name = known.get(signature or "", "an unknown hypervisor")
    what = f"{name} (CPUID 0x40000000 {signature!r})" if signature else "a hypervisor (CPUID.1:ECX.HV=1)"
    return Check("host.virtualized", Status.INFO, f"this machine is a guest of {what}: nvct's L0 here is its L1")


def check_kvm_device() -> Check:
    path = "/dev/kvm"
    if not os.path.exists(path):
        return Check("kvm.device", Status.WARN, "/dev/kvm does not exist",
                     "load kvm_intel or kvm_amd; without it only emulated stacks run")  # fmt: skip
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        hint = "add your user to the kvm group" if exc.errno in (errno.EACCES, errno.EPERM) else ""
        return Check("kvm.device", Status.WARN, f"/dev/kvm cannot be opened: {exc.strerror}", hint)
    try:
        version = fcntl.ioctl(fd, 0xAE00)  # KVM_GET_API_VERSION
    except OSError as exc:
        return Check("kvm.device", Status.WARN, f"/dev/kvm opens but KVM_GET_API_VERSION fails: {exc.strerror}")
    finally:
        os.close(fd)
    return Check("kvm.device", Status.PASS, f"/dev/kvm opens read-write (KVM API version {version})")


def check_kvm_nesting(flags: set[str]) -> list[Check]:
    checks = []
    for module, paging in (("kvm_intel", "ept"), ("kvm_amd", "npt")):
        if not Path(f"/sys/module/{module}").exists():
            continue
        nested = _param(module, "nested")
        tdp = _param(module, paging)
        on = nested in ("1", "Y", "y")
        detail = f"{module} nested={nested} {paging}={tdp}"
        if on:
            checks.append(Check(f"kvm.{module}.nested", Status.PASS, f"{detail}: guests can run hypervisors"))
        else:
            checks.append(Check(
                f"kvm.{module}.nested", Status.WARN, f"{detail}: nested virtualization is off",
                f"modprobe -r {module} && modprobe {module} nested=1 (or options {module} nested=1 in /etc/modprobe.d)",
            ))  # fmt: skip
        if tdp not in (None, "1", "Y", "y"):
            checks.append(Check(f"kvm.{module}.{paging}", Status.WARN, f"{detail}: nested guests run on shadow paging",
                                f"load {module} with {paging}=1"))  # fmt: skip
    if not checks:
        loaded = sorted(p.name for p in Path("/sys/module").glob("kvm*")) if Path("/sys/module").exists() else []
        if loaded:
            checks.append(Check(
                "kvm.module", Status.WARN,
                f"KVM modules loaded: {', '.join(loaded)}; neither kvm_intel nor kvm_amd, so no nested VMX or SVM",
                "a KVM without kvm_intel/kvm_amd (for example a para-virtual one) cannot expose VMX or SVM to guests",
            ))  # fmt: skip
        elif "vmx" in flags or "svm" in flags:
            module = "kvm_amd" if "svm" in flags else "kvm_intel"
            checks.append(Check("kvm.module", Status.WARN, f"{module} is not loaded", f"modprobe {module} nested=1"))
    return checks


def check_tools() -> list[Check]:
    checks = []
    qemu = shutil.which("qemu-system-x86_64")
    if qemu:
        checks.append(Check("tool.qemu", Status.PASS, f"QEMU {qemu_version(qemu)}: the qemu-tcg stack runs here"))
    else:
        checks.append(Check("tool.qemu", Status.FAIL, "qemu-system-x86_64 not found: the default profile cannot run",
                            "apt-get install qemu-system-x86 (./setup does it)"))  # fmt: skip
    bochs = shutil.which("bochs")
    grub = shutil.which("grub-mkrescue") and Path("/usr/lib/grub/i386-pc").is_dir()
    if bochs and grub:
        checks.append(
            Check("tool.bochs", Status.PASS, f"Bochs {bochs_version(bochs)} and GRUB: the bochs-* stacks run here")
        )
    else:
        missing = [n for n, ok in (("bochs", bochs), ("grub-mkrescue with grub-pc-bin", grub)) if not ok]
        checks.append(
            Check(
                "tool.bochs",
                Status.WARN,
                f"{' and '.join(missing)} not found: no bochs-* stacks",
                "apt-get install bochs bochs-term bochsbios vgabios grub-pc-bin grub-common xorriso mtools",
            )
        )
    apt = shutil.which("apt-get") and shutil.which("dpkg-deb")
    if apt:
        checks.append(
            Check("tool.appliance", Status.PASS, "apt-get and dpkg-deb found: the Linux/KVM appliance builds")
        )
    else:
        checks.append(Check("tool.appliance", Status.WARN, "apt-get or dpkg-deb missing: no multi-level stacks",
                            "the appliance is built from Debian packages"))  # fmt: skip
    return checks


def run_checks() -> list[Check]:
    flags = _cpu_flags()
    return [check_cpu(flags), check_guest(flags), check_kvm_device(), *check_kvm_nesting(flags), *check_tools()]


def render(checks: list[Check], colour: bool = False) -> str:
    paint = {Status.PASS: "32", Status.WARN: "33;1", Status.FAIL: "31;1", Status.INFO: "36"}
    width = max(len(c.name) for c in checks)
    lines = []
    for check in checks:
        tag = check.status.value.ljust(4)
        if colour:
            tag = f"\x1b[{paint[check.status]}m{tag}\x1b[0m"
        lines.append(f"{tag}  {check.name:<{width}}  {check.message}")
        if check.hint:
            lines.append(f"      {'':<{width}}  hint: {check.hint}")
    return "\n".join(lines) + "\n"
