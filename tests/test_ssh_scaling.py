"""The plugin's chunks spread over hosts through pytest-xdist's execnet ssh
gateways (docs/scaling.md), shown with a real OpenSSH server that the test
starts on a free loopback port, with keys made in a temporary folder. The
two "hosts" are this machine twice, over ssh: the remote workers run this
checkout with this Python. Nothing leaves 127.0.0.1."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import need
from test_plugin import PROBES, TCG, chunks, outcomes, pytest_run

pytestmark = pytest.mark.boot

SSHD = "/usr/sbin/sshd"
HOST = "nvct-loopback"  # an alias, defined in the client's config only


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def sshd(tmp_path):
    """An sshd on 127.0.0.1:PORT for the current user, and a client config naming it HOST."""
    if not os.path.exists(SSHD):
        pytest.skip(f"{SSHD} not installed (Debian package openssh-server; ./setup --test-tools installs it)")
    need("ssh", "openssh-client")
    need("ssh-keygen", "openssh-client")
    pytest.importorskip("execnet", reason="execnet not installed (pip install -e '.[test]')")
    privsep = Path("/run/sshd")  # sshd refuses to start without its privilege separation folder
    if not privsep.is_dir():
        if os.geteuid() != 0:
            pytest.skip("/run/sshd is missing and only root may make it")
        privsep.mkdir(mode=0o755)
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    for name in ("host_key", "id_user"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / name)], check=True)
    shutil.copy(keys / "id_user.pub", keys / "authorized_keys")
    port = free_port()
    log = keys / "sshd.log"
    server = keys / "sshd_config"
    server.write_text(f"""\
ListenAddress 127.0.0.1
Port {port}
HostKey {keys / "host_key"}
PidFile {keys / "sshd.pid"}
AuthorizedKeysFile {keys / "authorized_keys"}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin yes
StrictModes no
UsePAM no
LogLevel INFO
""")
    client = keys / "ssh_config"
    client.write_text(f"""\
Host {HOST}
  HostName 127.0.0.1
  Port {port}
  User {getpass.getuser()}
  IdentityFile {keys / "id_user"}
  IdentitiesOnly yes
  BatchMode yes
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
  LogLevel ERROR
""")
    proc = subprocess.Popen([SSHD, "-D", "-f", str(server), "-E", str(log)], stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            if proc.poll() is not None:
                pytest.fail(f"sshd exited with status {proc.returncode}: {log.read_text() if log.exists() else ''}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"sshd did not listen on 127.0.0.1:{port} within 10 s")
                time.sleep(0.05)
        check = subprocess.run(["ssh", "-F", str(client), HOST, "true"], capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, f"ssh to the loopback sshd failed: {check.stderr}\n{log.read_text()}"
        yield client, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_chunks_spread_over_ssh_gateways_give_the_local_verdicts(tmp_path, sshd):
    """As with a pool of hosts that each have nvct installed at the same
    path: each remote worker starts in a scratch folder of its own (chdir),
    and reads the profile by its absolute path. The `--opt=value` forms
    keep xdist from rewriting those paths as paths under an rsync root."""
    need("qemu-system-x86_64", "qemu-system-x86")
    client, log = sshd
    junit = tmp_path / "ssh.xml"
    tx = []
    for n in range(2):
        tx += ["--tx", f"ssh={HOST}//ssh_config={client}//python={sys.executable}//chdir={tmp_path / f'remote{n}'}"]
    proc = pytest_run(
        tmp_path / "pool",
        f"--nvct-profile={TCG}",
        "--nvct-probes",
        PROBES,
        *tx,
        f"--junitxml={junit}",
        "-o",
        "junit_family=xunit1",
    )  # the nvct.* properties (docs/scaling.md)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "11 passed, 1 skipped, 2 xfailed in" in proc.stdout, proc.stdout
    # Two workers came in over ssh (after the fixture's check), and each
    # ran a chunk of its own: one boot each.
    assert log.read_text().count("Accepted publickey") == 3, log.read_text()
    assert sorted(len(workers) for workers in chunks(junit).values()) == [1, 1]
    assert {w for workers in chunks(junit).values() for w in workers} == {"gw0", "gw1"}

    local = tmp_path / "local.xml"
    proc = pytest_run(
        tmp_path / "local",
        "--nvct-profile",
        TCG,
        "--nvct-probes",
        PROBES,
        f"--junitxml={local}",
        "-o",
        "junit_family=xunit1",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert outcomes(junit) == outcomes(local)
