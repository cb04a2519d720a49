"""The Xen backend on a real host's dom0 (`dom0: local` or `ssh://...`):
the address, the ssh argv, where the backend may stand in a stack, and the
script that copies the domain's Xen console.

The script is run by the real `sh` against stand-ins for `xl` and
`xenstore-read` (fakes, named as such); the SSH path against a dom0 for
real is in test_xen_ssh.py."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from conformance.backends.transports.ssh import SshHost, SshHostError
from conformance.backends.xen import PV_CONSOLE_SCRIPT, WAIT_SCRIPT, XenSettings
from conformance.core.profile import ProfileError, load_profile

# ---- the address -------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, kind, user, host, port",
    [
        ("local", "local", "", "", 0),
        ("ssh://xenhost", "ssh", "", "xenhost", 0),
        ("ssh://root@10.0.0.7:2222", "ssh", "root", "10.0.0.7", 2222),
        ("ssh://ci-runner@xen-01.lab.example/", "ssh", "ci-runner", "xen-01.lab.example", 0),
        ("ssh://root@[fe80::1]:22", "ssh", "root", "fe80::1", 22),
    ],
)
def test_dom0_addresses(text, kind, user, host, port):
    dom0 = SshHost.parse(text)
    assert (dom0.kind, dom0.user, dom0.host, dom0.port) == (kind, user, host, port)


@pytest.mark.parametrize("text", ["", "xenhost", "ssh://", "ssh://a b", "ssh://root@host:99999",
                                  "ssh://-oProxyCommand=x", "http://host", "ssh://host:port"])  # fmt: skip
def test_bad_dom0_addresses(text):
    with pytest.raises(SshHostError):
        SshHost.parse(text)


def test_ssh_argv_is_batch_mode_with_the_identity_and_port(monkeypatch):
    monkeypatch.delenv("NVCT_XEN_SSH_IDENTITY", raising=False)
    dom0 = SshHost.parse("ssh://root@xen-01:2222", identity="/keys/ci", options=("StrictHostKeyChecking=accept-new",))
    argv = dom0.argv("xl info")
    assert argv[0] == "ssh" and "-T" in argv
    assert argv[argv.index("BatchMode=yes") - 1] == "-o"  # never a password prompt
    assert argv[argv.index("-i") + 1] == "/keys/ci"
    assert argv[argv.index("-p") + 1] == "2222"
    assert "StrictHostKeyChecking=accept-new" in argv
    assert argv[-3:] == ["root@xen-01", "--", "xl info"]  # the host cannot be taken for an option


def test_identity_from_the_environment(monkeypatch):
    monkeypatch.setenv("NVCT_XEN_SSH_IDENTITY", "/env/key")
    argv = SshHost.parse("ssh://xen-01").argv("true")
    assert argv[argv.index("-i") + 1] == "/env/key"


def test_sudo_wraps_the_command():
    assert SshHost.parse("local", sudo=True).argv("xl list") == ["sh", "-c", "sudo -n sh -c 'xl list'"]
    assert SshHost.parse("ssh://h", sudo=True).argv("xl list")[-1] == "sudo -n sh -c 'xl list'"


def test_put_copies_a_file_through_the_dom0_command(tmp_path):
    source = tmp_path / "kernel"
    source.write_bytes(bytes(range(256)) * 64)
    SshHost.parse("local").put(source, str(tmp_path / "copy"), 0o755)
    assert (tmp_path / "copy").read_bytes() == source.read_bytes()
    assert (tmp_path / "copy").stat().st_mode & 0o777 == 0o755


def test_put_names_the_path_it_could_not_write(tmp_path):
    source = tmp_path / "kernel"
    source.write_bytes(b"x")
    with pytest.raises(SshHostError, match="cannot write /nonexistent/dir/kernel"):
        SshHost.parse("local").put(source, "/nonexistent/dir/kernel")


# ---- settings and placement ----------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"dom0": "xenhost"}, "dom0"),
        ({"dom0": "ssh://h", "ssh_options": ("-oFoo",)}, "ssh_options"),
        ({"dom0": "ssh://h", "options": ("smap=0",)}, "options"),
        ({"identity": "/k"}, "dom0"),
        ({"sudo": True}, "dom0"),
    ],
)
def test_host_settings_validation(kwargs, key):
    problem = XenSettings(**kwargs).validate()
    assert problem is not None and problem[0] == key


def _profile(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return path


def test_a_real_host_is_l0(tmp_path):
    profile = load_profile(_profile(tmp_path, "name: h\nstack:\n  - backend: xen\n    dom0: ssh://root@xen-01\n"))
    assert profile.stack[0].backend == "xen" and profile.stack[0].settings.dom0 == "ssh://root@xen-01"


def test_a_real_host_is_never_above_another_level(tmp_path):
    text = "name: h\nstack:\n  - backend: qemu\n  - backend: xen\n    dom0: local\n"
    with pytest.raises(ProfileError, match=r"p.yaml:4: stack\[1\]\.backend.*real host's hypervisor: L0"):
        load_profile(_profile(tmp_path, text))


def test_booted_xen_still_needs_a_level_below(tmp_path):
    with pytest.raises(ProfileError, match="runs above another level"):
        load_profile(_profile(tmp_path, "name: h\nstack:\n  - backend: xen\n"))


# ---- copying the domain's Xen console ------------------------------------------------

# Stand-ins (fakes, named as such) for the two dom0 tools the script calls:
# xenstore-read answers the console's pty path (here a plain file holding
# what the domain wrote) after two misses, as xenconsoled takes a moment to
# publish it; xl unpauses and says the domain is gone at the second look.
FAKE_XENSTORE_READ = r"""#!/bin/sh
n=$(cat "$FAKE/reads" 2>/dev/null || echo 0); echo $((n + 1)) > "$FAKE/reads"
[ "$1" = "/local/domain/7/console/tty" ] || exit 1
[ "$n" -ge 2 ] || exit 1
echo "$FAKE/pty"
"""
FAKE_XL = r"""#!/bin/sh
case $1 in
unpause) echo unpaused >> "$FAKE/log" ;;
list)
    n=$(cat "$FAKE/lists" 2>/dev/null || echo 0); echo $((n + 1)) > "$FAKE/lists"
    if [ "$n" -lt 1 ]; then echo "Name ID Mem VCPUs State Time(s)"; echo "$2 7 128 1 -b---- 0.1"; fi ;;
*) exit 2 ;;
esac
"""


def run_pv_console(tmp_path: Path, domid: str = "7", pty: bytes | None = b"") -> subprocess.CompletedProcess:
    fake = tmp_path / "fake"
    fake.mkdir()
    for name, text in (("xenstore-read", FAKE_XENSTORE_READ), ("xl", FAKE_XL)):
        (fake / name).write_text(text)
        (fake / name).chmod(0o755)
    if pty is not None:
        (fake / "pty").write_bytes(pty)
    folder = tmp_path / "nvct.abc"
    folder.mkdir()
    (folder / "wait").write_text(WAIT_SCRIPT)
    (folder / "pvconsole").write_text(PV_CONSOLE_SCRIPT)
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}", "FAKE": str(fake)}
    return subprocess.run(["sh", str(folder / "pvconsole"), domid, "nvct-l1-abc"], env=env, capture_output=True,
                          text=True, timeout=60)  # fmt: skip


def test_the_console_pty_is_copied_while_the_domain_runs(tmp_path):
    records = b"@NVCT1 0 HELLO proto=1 #0\n@NVCT1 1 END #0\n"
    out = run_pv_console(tmp_path, pty=records)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["@NVCT1 0 HELLO proto=1 #0", "@NVCT1 1 END #0"]
    assert (tmp_path / "fake" / "log").read_text() == "unpaused\n"


def test_a_domain_without_a_console_pty_is_named(tmp_path):
    out = run_pv_console(tmp_path, domid="8")
    assert out.returncode == 1
    assert out.stdout.strip() == "nvct: domain nvct-l1-abc has no console pty in xenstore"


# ---- dom0: local, the whole boot, against a fake Xen toolstack ----------------------

# FakeToolstack: `xl` and `xenstore-read` as a dom0 without Xen would need
# them (fakes, named as such), logging every call; the domain's console is
# a file holding what the real probe kernel printed under QEMU TCG, so the
# records the harness reads through this path are real ones.
FAKE_TOOLSTACK_XL = r"""#!/bin/sh
echo "xl $*" >> "$FAKE/calls"
case $1 in
info) printf 'xen_version            : 4.17.7\nvirt_caps              : pv hvm hap\nxen_commandline        : placeholder\n' ;;
create) shift; [ "$1" = -p ] && cp "$2" "$FAKE/created.cfg" && echo "Parsing config from $2" ;;
domid) echo 7 ;;
list)
    if [ "$2" = -l ]; then
        echo '[{"domid": 7, "config": {"c_info": {"type": "pvh"}, "b_info": {"max_vcpus": 1, "max_memkb": 131072, "nested_hvm": "True"}}}]'
    else
        n=$(cat "$FAKE/lists" 2>/dev/null || echo 0); echo $((n + 1)) > "$FAKE/lists"
        if [ "$n" -lt 2 ]; then echo "Name ID Mem VCPUs State Time(s)"; echo "$2 7 128 1 -b---- 0.1"; fi
    fi ;;
unpause|destroy) ;;
*) exit 2 ;;
esac
"""
FAKE_TOOLSTACK_XENSTORE_READ = r"""#!/bin/sh
[ "$1" = /local/domain/7/console/tty ] && echo "$FAKE/console"
"""


def test_dom0_local_runs_a_boot_end_to_end_and_leaves_nothing(tmp_path, image, monkeypatch):
    """The local mode's shell (a pty, so the shell must not turn
    interactive), mktemp, the copies, xl create -p of a configuration in the
    new folder with console=xen, the console copied, the clean-up."""
    from conftest import need

    need("qemu-system-x86_64", "qemu-system-x86")
    from conformance.backends.qemu import QemuBackend, QemuSettings
    from conformance.backends.xen import XenBackend
    from conformance.core.catalog import select
    from conformance.run.runner import RunOptions, run_level
    from conformance.run.stack import Level

    selected = select(image.catalog(), ["cpu.cpuid.basic"])
    with QemuBackend(QemuSettings(), 0).boot(image, "probes=cpu.cpuid.basic", tmp_path) as console:
        lines = []
        while (line := console.readline(60)) is not None:
            lines.append(line)
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "console").write_text("".join(line + "\n" for line in lines if line.startswith("@NVCT1")))
    for name, text in (("xl", FAKE_TOOLSTACK_XL), ("xenstore-read", FAKE_TOOLSTACK_XENSTORE_READ)):
        (fake / name).write_text(text)
        (fake / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE", str(fake))
    before = set(Path("/tmp").glob("nvct.*"))

    xen = XenBackend(XenSettings(dom0="local"), 0)
    outcome = run_level(Level(1, xen), image, selected, RunOptions(globs=("cpu.cpuid.basic",)))

    assert [(r.probe, r.verdict.value) for r in outcome.results] == [("cpu.cpuid.basic", "PASS")]
    runtime = outcome.info.hypervisor.get("runtime", {})
    assert runtime["xen.virt_caps"] == "pv hvm hap" and runtime["domu.type"] == "pvh"
    config = (fake / "created.cfg").read_text()
    folder = re.search(r'kernel = "(/tmp/nvct\.\w+)/kernel"', config).group(1)
    assert 'cmdline = "probes=cpu.cpuid.basic console=xen"' in config
    calls = (fake / "calls").read_text().splitlines()
    name = re.search(r'name = "(nvct-l1-[0-9a-f]{8})"', config).group(1)
    assert calls[0] == "xl info" and f"xl create -p {folder}/domu.cfg" in calls
    assert f"xl unpause {name}" in calls and calls[-1] == f"xl destroy {name}"
    assert not Path(folder).exists() and set(Path("/tmp").glob("nvct.*")) == before
