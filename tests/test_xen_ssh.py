"""The emulated Xen host over SSH (tests/support/xen_host.py): what the xen
backend's SSH mode relies on, driven with the system ssh client against
one boot of QEMU TCG -> Xen 4.17 with dom0's sshd on a forwarded port."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from conftest import need
from support import xen_sshd
from support.xen_sshd import SSHD_READY

from conformance.backends.xen import XenSettings, domu_config, parse_xl_info
from conformance.core.protocol import parse_line

pytestmark = pytest.mark.boot


def need_the_host_tools():
    """What the emulated Xen host needs of this machine, OpenSSH's server
    (copied into dom0) among them: without one, its tests skip and say so."""
    need("qemu-system-x86_64", "qemu-system-x86")
    for tool, package in (("ssh", "openssh-client"), ("scp", "openssh-client"), ("ssh-keygen", "openssh-client"),
                          ("apt-get", "apt"), ("dpkg-deb", "dpkg")):  # fmt: skip
        need(tool, package)
    if not os.access(xen_sshd.SSHD, os.X_OK):
        pytest.skip(f"{xen_sshd.SSHD} not installed (Debian package openssh-server; ./setup --test-tools installs it)")


@pytest.fixture(scope="module")
def xen_host(tmp_path_factory):
    need_the_host_tools()
    from support.xen_host import emulated_xen_host

    with emulated_xen_host(tmp_path_factory.mktemp("xen-host")) as host:
        yield host


def _ok(proc):
    assert proc.returncode == 0, f"status {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc.stdout


def test_dom0_says_sshd_runs_and_xl_info_works_over_ssh(xen_host):
    assert any(SSHD_READY in line for line in xen_host.console.lines)
    info = parse_xl_info(_ok(xen_host.run("xl", "info")).splitlines())
    assert info["xen_version"].startswith("4.17")
    assert {"hvm", "hap"} <= set(info["virt_caps"].split())
    assert info["xen_commandline"] == xen_host.xen_cmdline
    listing = _ok(xen_host.run("xl", "list")).splitlines()
    assert listing[1].split()[:2] == ["Domain-0", "0"]


def test_commands_on_stdin_run_one_by_one(xen_host):
    """`ssh -T HOST sh` with commands on stdin: each runs in turn, in one
    shell (one $$), and a failing one does not stop the next."""
    script = "echo one $$\nfalse; echo status $?\ncd /tmp && echo in $(pwd)\necho two $$\n"
    lines = _ok(xen_host.run("sh", input=script)).splitlines()
    assert [line.split()[0] for line in lines] == ["one", "status", "in", "two"]
    assert lines[1] == "status 1" and lines[2] == "in /tmp"
    assert lines[0].split()[1] == lines[3].split()[1]


def test_pvh_domu_created_over_ssh_prints_hello_in_xl_dmesg(xen_host, image):
    kernel, config = "/tmp/nvct.elf", "/tmp/nvct-ssh.cfg"
    xen_host.scp_to(image.elf, kernel)
    cmdline = "probes=cpu.cpuid.basic nvct.ssh=1"
    text = domu_config(XenSettings(), "nvct-ssh", kernel, cmdline)
    _ok(xen_host.run("sh", "-c", f"cat > {config}", input=text))

    _ok(xen_host.run("xl", "create", "-p", config))
    state = _ok(xen_host.run("xl", "list", "nvct-ssh")).splitlines()[1].split()
    assert "p" in state[4], state
    domid = state[1]
    _ok(xen_host.run("xl", "unpause", "nvct-ssh"))
    hello = None
    deadline = time.monotonic() + 60
    while hello is None and time.monotonic() < deadline:
        for line in _ok(xen_host.run("xl", "dmesg")).splitlines():
            # Only the HELLO: Xen cuts longer records into 199-character pieces.
            if line.startswith(f"(d{domid}) ") and " HELLO " in line:
                record = parse_line(line)
                if record is not None and record.kind == "HELLO":
                    hello = record
        time.sleep(1)
    assert hello is not None, "no HELLO of the domU in `xl dmesg`"
    assert hello.get("cmdline") == cmdline
    assert hello.get("console") == "e9"

    # A paused domain destroyed over SSH is gone.
    _ok(xen_host.run("xl", "create", "-p", config))
    _ok(xen_host.run("xl", "destroy", "nvct-ssh"))
    assert "nvct-ssh" not in _ok(xen_host.run("xl", "list"))


def test_times(xen_host):
    """Not a bound: the times, for the report (pytest -s)."""
    start = time.monotonic()
    for _ in range(3):
        _ok(xen_host.run("xl", "list"))
    per_command = (time.monotonic() - start) / 3
    print(f"\nemulated Xen host: {', '.join(f'{k} {v:.1f} s' for k, v in xen_host.timings.items())}; "
          f"ssh ... xl list {per_command:.2f} s")  # fmt: skip
    assert per_command < 30


# ---- the xen backend's SSH mode, end to end ----------------------------------------


def _host_profile(xen_host, tmp_path, probes: str, domu_type: str = "pvh") -> Path:
    profile = tmp_path / "xen-over-ssh.yaml"
    profile.write_text(
        "name: xen-over-ssh\n"
        "stack:\n"
        "  - backend: xen\n"
        f"    dom0: ssh://{xen_host.user}@{xen_host.host}:{xen_host.port}\n"
        f"    identity: {xen_host.identity}\n"
        f'    ssh_options: ["UserKnownHostsFile={xen_host.known_hosts}", "StrictHostKeyChecking=yes"]\n'
        f"    type: {domu_type}\n"
        "    memory: 128\n"
        f"probes: {probes!r}\n"
        "timeouts:\n  boot: 300\n  probe: 120\n"
    )
    return profile


def _leftovers(xen_host) -> tuple[list[str], str]:
    """Domains other than dom0, and the folders the backend makes in /tmp."""
    domains = [line.split()[0] for line in _ok(xen_host.run("xl", "list")).splitlines()[1:]]
    folders = _ok(xen_host.run("find", "/tmp", "-maxdepth", "1", "-type", "d", "-name", "nvct.*")).strip()
    return [d for d in domains if d != "Domain-0"], folders


def test_nvct_run_over_ssh_puts_the_probe_kernel_at_l1_of_the_xen_host(xen_host, tmp_path):
    """`dom0: ssh://...`: Xen is L0, the probe kernel a PVH domU at L1, its
    records read from `xl dmesg`; nothing is left on the host afterwards."""
    from conftest import nvct, verdicts

    out = tmp_path / "r.json"
    proc = nvct("run", "--profile", str(_host_profile(xen_host, tmp_path, "cpu.*,svm.vmrun.*")), "--json", str(out))
    assert out.exists(), proc.stderr
    record = json.loads(out.read_text())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    got = verdicts(record, level=1)
    assert got["svm.vmrun.vmmcall"] == "PASS" and got["cpu.cpuid.basic"] == "PASS"
    (level,) = record["levels"]
    assert level["level"] == 1 and level["facts"]["hv.signature"] == "XenVMMXenVMM"
    assert level["kernel"]["console"] == "xen"  # the domain's Xen console, copied from its pty
    hypervisor = level["hypervisor"]
    assert hypervisor["backend"] == "xen" and hypervisor["version"].startswith("Xen 4.17")
    assert hypervisor["dom0"] == f"dom0 at ssh://root@127.0.0.1:{xen_host.port}"
    assert {"hvm", "hap"} <= set(hypervisor["preflight"]["xen.virt_caps"].split())
    runtime = hypervisor["runtime"]
    assert runtime["domu.type"] == "pvh" and runtime["domu.nested_hvm"] == "True"
    assert _leftovers(xen_host) == ([], "")


def test_a_crash_over_ssh_resumes_in_a_fresh_domain_and_cleans_up(xen_host, tmp_path):
    """A probe that triple-faults the domU (on_crash=destroy): CRASH, and the
    next probe runs in a new domain; both domains and folders are gone."""
    from conftest import nvct, verdicts

    out = tmp_path / "r.json"
    profile = _host_profile(xen_host, tmp_path, "selftest.alloc,selftest.triple_fault,selftest.worst_wins")
    proc = nvct("run", "--profile", str(profile), "--json", str(out))
    record = json.loads(out.read_text())
    got = verdicts(record, level=1)
    assert got == {"selftest.alloc": "PASS", "selftest.triple_fault": "CRASH", "selftest.worst_wins": "FAIL"}, (
        proc.stdout
    )
    assert record["levels"][0]["boots"] == 2
    assert _leftovers(xen_host) == ([], "")


@pytest.fixture(scope="module")
def xen_hvm_host(tmp_path_factory):
    """The emulated Xen host whose dom0 has the device model as well."""
    need_the_host_tools()
    from support.xen_host import emulated_xen_host

    from conformance.backends.media import check_iso_tools
    from conformance.core.kernel import BuildError

    try:
        check_iso_tools()
    except BuildError as exc:
        pytest.skip(str(exc))
    from conftest import PROFILES

    with emulated_xen_host(tmp_path_factory.mktemp("xen-hvm-host"), profile=PROFILES / "tcg-xen-hvm-l2.yaml") as host:
        yield host


def test_nvct_run_over_ssh_with_an_hvm_domu(xen_hvm_host, tmp_path):
    """type: hvm on a real host: the boot ISO copied over, hvmloader,
    SeaBIOS and GRUB in the domU, COM1 to a file in the folder, followed."""
    from conftest import nvct, verdicts

    out = tmp_path / "r.json"
    profile = _host_profile(xen_hvm_host, tmp_path, "cpu.*,svm.vmrun.*", domu_type="hvm")
    proc = nvct("run", "--profile", str(profile), "--json", str(out))
    assert out.exists(), proc.stderr
    record = json.loads(out.read_text())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert verdicts(record, level=1)["svm.vmrun.vmmcall"] == "PASS"
    (level,) = record["levels"]
    assert level["kernel"]["console"] == "com1" and level["facts"]["hv.signature"] == "XenVMMXenVMM"
    assert level["hypervisor"]["runtime"]["domu.type"] == "hvm"
    assert _leftovers(xen_hvm_host) == ([], "")
