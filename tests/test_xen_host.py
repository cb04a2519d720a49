"""The Xen backend on a real host's dom0 (`dom0: local` or `ssh://...`):
the address, the ssh argv, where the backend may stand in a stack, and the
script that reads the domain's lines from `xl dmesg`.

The script is run by the real `sh` and `awk` against FakeXl, a stand-in for
`xl` (named as the fake it is) that replays console-ring windows; the SSH
path against a dom0 for real is in test_xen_ssh.py."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from conformance.backends.dom0 import Dom0, Dom0Error
from conformance.backends.xen import HOST_WAIT_SCRIPT, XenSettings
from conformance.profile import ProfileError, load_profile

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
    dom0 = Dom0.parse(text)
    assert (dom0.kind, dom0.user, dom0.host, dom0.port) == (kind, user, host, port)


@pytest.mark.parametrize("text", ["", "xenhost", "ssh://", "ssh://a b", "ssh://root@host:99999",
                                  "ssh://-oProxyCommand=x", "http://host", "ssh://host:port"])  # fmt: skip
def test_bad_dom0_addresses(text):
    with pytest.raises(Dom0Error):
        Dom0.parse(text)


def test_ssh_argv_is_batch_mode_with_the_identity_and_port(monkeypatch):
    monkeypatch.delenv("NVCT_XEN_SSH_IDENTITY", raising=False)
    dom0 = Dom0.parse("ssh://root@xen-01:2222", identity="/keys/ci", options=("StrictHostKeyChecking=accept-new",))
    argv = dom0.argv("xl info")
    assert argv[0] == "ssh" and "-T" in argv
    assert argv[argv.index("BatchMode=yes") - 1] == "-o"  # never a password prompt
    assert argv[argv.index("-i") + 1] == "/keys/ci"
    assert argv[argv.index("-p") + 1] == "2222"
    assert "StrictHostKeyChecking=accept-new" in argv
    assert argv[-3:] == ["root@xen-01", "--", "xl info"]  # the host cannot be taken for an option


def test_identity_from_the_environment(monkeypatch):
    monkeypatch.setenv("NVCT_XEN_SSH_IDENTITY", "/env/key")
    argv = Dom0.parse("ssh://xen-01").argv("true")
    assert argv[argv.index("-i") + 1] == "/env/key"


def test_sudo_wraps_the_command():
    assert Dom0.parse("local", sudo=True).argv("xl list") == ["sh", "-c", "sudo -n sh -c 'xl list'"]
    assert Dom0.parse("ssh://h", sudo=True).argv("xl list")[-1] == "sudo -n sh -c 'xl list'"


def test_put_copies_a_file_through_the_dom0_command(tmp_path):
    source = tmp_path / "kernel"
    source.write_bytes(bytes(range(256)) * 64)
    Dom0.parse("local").put(source, str(tmp_path / "copy"), 0o755)
    assert (tmp_path / "copy").read_bytes() == source.read_bytes()
    assert (tmp_path / "copy").stat().st_mode & 0o777 == 0o755


def test_put_names_the_path_it_could_not_write(tmp_path):
    source = tmp_path / "kernel"
    source.write_bytes(b"x")
    with pytest.raises(Dom0Error, match="cannot write /nonexistent/dir/kernel"):
        Dom0.parse("local").put(source, "/nonexistent/dir/kernel")


# ---- settings and placement ----------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"dom0": "xenhost"}, "dom0"),
        ({"dom0": "ssh://h", "ssh_options": ("-oFoo",)}, "ssh_options"),
        ({"dom0": "ssh://h", "options": ("smap=0",)}, "options"),
        ({"dom0": "ssh://h", "poll": 0.0}, "poll"),
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


# ---- reading the domain's lines from `xl dmesg` -------------------------------------

# FakeXl: `xl dmesg` prints the next window of a console ring from a list
# prepared by the test (the last one again once they are used up);
# `xl list NAME` says the domain runs until the windows are used up, then
# that it is gone; `xl unpause` succeeds.
FAKE_XL = r"""#!/bin/sh
dir=$(dirname "$0")
case $1 in
unpause) echo unpaused >> "$dir/log" ;;
list)
    n=$(cat "$dir/n")
    if [ -e "$dir/window.$n" ]; then echo "Name ID Mem VCPUs State Time(s)"; echo "$2 5 128 1 -b---- 0.1"; fi ;;
dmesg)
    n=$(cat "$dir/n")
    if [ -e "$dir/window.$n" ]; then cat "$dir/window.$n"; echo $((n + 1)) > "$dir/n"
    else cat "$dir/window.$((n - 1))"; fi ;;
*) exit 2 ;;
esac
"""


def run_wait_script(tmp_path: Path, windows: list[list[str]]) -> list[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "xl").write_text(FAKE_XL)
    (bin_dir / "xl").chmod(0o755)
    (bin_dir / "n").write_text("0\n")
    for i, window in enumerate(windows):
        (bin_dir / f"window.{i}").write_text("".join(line + "\n" for line in window))
    script = tmp_path / "wait"
    script.write_text(HOST_WAIT_SCRIPT)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    out = subprocess.run(["sh", str(script), "nvct-l1-x", "5", "0.01"], env=env, capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert (bin_dir / "log").read_text() == "unpaused\n"
    return out.stdout.splitlines()


def test_each_line_once_though_every_window_repeats_the_last(tmp_path):
    windows = [
        ["(XEN) boot", "(d5) @NVCT1 0 HELLO a"],
        ["(XEN) boot", "(d5) @NVCT1 0 HELLO a", "(d4) another domain", "(d5) @NVCT1 1 RESULT b"],
        ["(d5) @NVCT1 0 HELLO a", "(d4) another domain", "(d5) @NVCT1 1 RESULT b", "(d5) @NVCT1 2 END"],
    ]
    assert run_wait_script(tmp_path, windows) == ["(d5) @NVCT1 0 HELLO a", "(d5) @NVCT1 1 RESULT b",
                                                  "(d5) @NVCT1 2 END"]  # fmt: skip


def test_identical_lines_are_all_kept(tmp_path):
    # Two equal lines (a long record's empty continuation piece, say) are two
    # lines; the next window repeats both and adds a third.
    windows = [["(d5) x", "(d5) "], ["(d5) x", "(d5) ", "(d5) y", "(d5) "]]
    assert run_wait_script(tmp_path, windows) == ["(d5) x", "(d5) ", "(d5) y", "(d5) "]


def test_a_timestamp_before_the_domain_tag_is_dropped(tmp_path):
    windows = [["[2026-11-24 22:01:02.123] (d5) @NVCT1 0 HELLO a", "(d55) not ours", "(d50) nor this"]]
    assert run_wait_script(tmp_path, windows) == ["(d5) @NVCT1 0 HELLO a"]


def test_lines_that_left_the_ring_are_not_printed_twice(tmp_path):
    # The ring wrapped: the oldest line is gone from the second window.
    windows = [["(d5) a", "(d5) b"], ["(d5) b", "(d5) c"]]
    assert run_wait_script(tmp_path, windows) == ["(d5) a", "(d5) b", "(d5) c"]
