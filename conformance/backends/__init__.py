"""Backends: one module per hypervisor. The registry maps the `backend:`
key of a profile's stack entry to the class that runs it."""

from __future__ import annotations

from .base import Backend, BackendUnavailable, BootFailed, LevelUnavailable, Payload
from .bochs import BochsBackend
from .esxi import EsxiBackend
from .hyperv import HypervBackend
from .linux_kvm import LinuxKvmBackend
from .qemu import QemuBackend
from .xen import XenBackend

BACKENDS: dict[str, type[Backend]] = {cls.name: cls for cls in (QemuBackend, BochsBackend, LinuxKvmBackend,
                                                                EsxiBackend, HypervBackend, XenBackend)}  # fmt: skip

__all__ = ["BACKENDS", "Backend", "BackendUnavailable", "BootFailed", "LevelUnavailable", "Payload"]
