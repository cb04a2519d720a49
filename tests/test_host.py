"""`nvct host`: the checks read this machine as it is."""

import platform
import struct
from pathlib import Path

import pytest

from conformance import host


def cpuinfo(field):
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith(field):
            return line.split(":", 1)[1].strip()
    return ""


@pytest.mark.skipif(platform.machine() != "x86_64", reason="CPUID from user space is x86-64 only")
def test_cpuid_from_user_space_agrees_with_proc_cpuinfo():
    regs = host.cpuid(0)
    if regs is None:
        pytest.skip("executable mappings are forbidden here")
    vendor = struct.pack("<III", regs[1], regs[3], regs[2]).decode()
    assert vendor == cpuinfo("vendor_id")
    flags = cpuinfo("flags").split()
    assert (host.hypervisor_signature() is not None) == ("hypervisor" in flags)


def test_every_check_has_a_status_and_failures_have_hints():
    checks = host.run_checks()
    names = [c.name for c in checks]
    assert {"cpu.extensions", "host.virtualized", "kvm.device", "tool.qemu"} <= set(names)
    assert len(names) == len(set(names))
    for check in checks:
        assert check.message
        if check.status in (host.Status.WARN, host.Status.FAIL):
            assert check.hint or check.name == "kvm.device"


def test_cpu_check_follows_the_flags():
    assert host.check_cpu({"svm"}).status is host.Status.PASS
    assert host.check_cpu({"vmx"}).status is host.Status.PASS
    assert host.check_cpu({"fpu"}).status is host.Status.WARN


def test_render_one_line_per_check_and_colour_only_when_asked():
    checks = [host.Check("a.b", host.Status.PASS, "fine"), host.Check("c", host.Status.WARN, "meh", "do this")]
    text = host.render(checks)
    assert text.splitlines() == ["PASS  a.b  fine", "WARN  c    meh", "           hint: do this"]
    assert "\x1b[" not in text and "\x1b[33;1mWARN" in host.render(checks, colour=True)
