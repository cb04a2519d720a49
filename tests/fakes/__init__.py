"""Fakes that stand in for remote hypervisor APIs (VMware's vSphere API as
pyVmomi presents it, PowerShell Remoting to a Hyper-V host as pypsrp
presents it). They are fakes: they check what nvct asks of them and play a
scripted guest; they say nothing about how a real ESXi or Hyper-V host
behaves. Tests against real hosts are the live tests in test_esxi.py and
test_hyperv.py."""

from __future__ import annotations

from pathlib import Path

from conformance.backends import Backend, Payload
from conformance.core.catalog import Probe
from conformance.core.kernel import GuestImage
from conformance.core.protocol import format_record
from conformance.run.runner import LevelOutcome, RunOptions, run_level
from conformance.run.stack import Level

# The probes the scripted guests of these fakes run.
PROBES = ["cpu.basic", "vmx.basic", "vmx.entry.ok"]


def payload(tmp_path: Path) -> Payload:
    """The probe kernel, as a stand-in file: the fakes never read it."""
    kernel = tmp_path / "nvct.elf"
    kernel.write_bytes(b"\x7fELF fake")
    return Payload(kernel=kernel, append="probes=*")


def run(b: Backend, tmp_path: Path, probe_timeout: float = 2.0) -> LevelOutcome:
    """A level run by the real runner against a backend talking to a fake."""
    selected = [Probe(p, p.split(".")[0], "d", "r") for p in PROBES]
    options = RunOptions(boot_timeout=5, probe_timeout=probe_timeout, end_grace=0.1, workroot=tmp_path)
    return run_level(Level(1, b), GuestImage(payload(tmp_path).kernel), selected, options)


def probe_kernel_output(probes: list[str], hang_in: str | None = None, garbage: bool = True) -> list[bytes]:
    """What a probe kernel would write on COM1: firmware noise, HELLO, a
    fact, START/RESULT per probe, END. With `hang_in`, output stops after
    that probe's START (a guest that hangs). Each item is one write."""
    out: list[bytes] = []
    if garbage:
        out.append(b"GRUB loading.\r\nWelcome to GRUB!\r\n")
    seq = 0

    def rec(kind: str, fields: dict[str, str]) -> None:
        nonlocal seq
        out.append((format_record(seq, kind, fields) + "\r\n").encode())
        seq += 1

    rec("HELLO", {"proto": "1", "build": "0123456789abcdef", "total": str(len(probes)),
                  "selected": str(len(probes)), "console": "com1", "cmdline": ""})  # fmt: skip
    rec("FACT", {"cpu.vendor": "GenuineIntel", "vmx": "1", "svm": "0", "hv.present": "1"})
    for index, probe in enumerate(probes):
        rec("START", {"probe": probe, "index": str(index)})
        if probe == hang_in:
            return out
        rec("RESULT", {"probe": probe, "verdict": "PASS", "ticks": "1000"})
    rec("END", {"run": str(len(probes)), "pass": str(len(probes)), "fail": "0", "skip": "0", "error": "0"})
    return out
