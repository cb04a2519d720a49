"""Reaching the dom0 of a real Xen host: on this machine or over SSH.

The Xen backend runs `xl` in dom0. In emulation (xen.py's default) dom0 is
the appliance booted by the level below and the harness types into its
serial line. On a real host, dom0 is either the machine nvct runs on
(`dom0: local`) or one reached with the system ssh client
(`dom0: ssh://[user@]host[:port]`). Either way the harness gets the same
thing as in emulation: a shell that reads commands from its standard input
(`Shell` in shell.py drives it), plus two one-off operations that must work
even while that shell is busy: copying a file into dom0 and running a
clean-up command.

SSH runs in batch mode: keys or an agent, never a password prompt. The
identity file comes from the profile (`identity`, a path, not a secret) or
from $NVCT_XEN_SSH_IDENTITY.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pexpect

from .pty import PtyConsole

IDENTITY_ENV = "NVCT_XEN_SSH_IDENTITY"
# Batch mode (no password prompt: a missing key fails at once), no tty
# (commands come on standard input), keep-alives so a dead host is noticed.
SSH_OPTIONS = ("-T", "-o", "BatchMode=yes", "-o", "ConnectTimeout=20",
               "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4")  # fmt: skip

_SSH = re.compile(r"ssh://(?:(?P<user>[A-Za-z0-9._][A-Za-z0-9._-]*)@)?(?P<host>[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\])"
                  r"(?::(?P<port>[0-9]{1,5}))?/?\Z")  # fmt: skip


class SshHostError(Exception):
    pass


@dataclass(frozen=True)
class SshHost:
    """Where dom0's commands run: over SSH (`ssh://[user@]host[:port]`), or
    on this machine (`local`: the same commands without the ssh in front)."""

    kind: str  # local or ssh
    host: str = ""
    user: str = ""
    port: int = 0
    identity: str = ""  # an SSH identity file
    options: tuple[str, ...] = ()  # more `ssh -o` options, NAME=VALUE each
    sudo: bool = False  # run as root through `sudo -n`

    @classmethod
    def parse(cls, text: str, identity: str = "", options: tuple[str, ...] = (), sudo: bool = False) -> SshHost:
        """`local` or `ssh://[user@]host[:port]`; SshHostError says what is wrong."""
        if text == "local":
            return cls("local", sudo=sudo)
        match = _SSH.match(text)
        if not match:
            raise SshHostError(f"want `local` or ssh://[user@]host[:port], not {text!r}")
        port = int(match.group("port") or 0)
        if port > 65535:
            raise SshHostError(f"port {port} is not a TCP port")
        host = match.group("host").strip("[]")
        for option in options:
            name, eq, _ = option.partition("=")
            if not eq or not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", name):
                raise SshHostError(f"want ssh options as NAME=VALUE, not {option!r}")
        return cls("ssh", host, match.group("user") or "", port, identity, options, sudo)

    @property
    def where(self) -> str:
        if self.kind == "local":
            return "local dom0"
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        return f"dom0 at ssh://{user}{self.host}{port}"

    def identity_file(self) -> str:
        return self.identity or os.environ.get(IDENTITY_ENV, "")

    def argv(self, command: str) -> list[str]:
        """The argv that runs a shell command in dom0."""
        if self.sudo:
            command = f"sudo -n sh -c {shlex.quote(command)}"
        if self.kind == "local":
            return ["sh", "-c", command]
        argv = ["ssh", *SSH_OPTIONS]
        identity = self.identity_file()
        if identity:
            argv += ["-i", identity, "-o", "IdentitiesOnly=yes"]
        for option in self.options:
            argv += ["-o", option]
        if self.port:
            argv += ["-p", str(self.port)]
        argv += [f"{self.user}@{self.host}" if self.user else self.host, "--", command]
        return argv

    def spawn_shell(self, workdir: Path) -> PtyConsole:
        """A shell in dom0 that runs the commands typed into it, one per line
        (no prompt, no echo); its standard error joins its output."""
        # Over SSH the remote shell reads a pipe. Here it would read the pty
        # pexpect gives it and be interactive (a prompt before every line):
        # cat gives it a pipe too.
        argv = self.argv("exec sh 2>&1" if self.kind == "ssh" else "cat | sh 2>&1")
        child = pexpect.spawn(argv[0], argv[1:], cwd=str(workdir), echo=False, env=os.environ.copy())
        return PtyConsole(child, label="ssh" if self.kind == "ssh" else "dom0 shell")

    def run(self, command: str, timeout: float = 60.0, stdin: Path | None = None) -> subprocess.CompletedProcess:
        """Run one command in dom0 on a connection of its own."""
        try:
            with open(stdin, "rb") if stdin else open(os.devnull, "rb") as source:
                return subprocess.run(self.argv(command), stdin=source, capture_output=True, text=True,
                                      timeout=timeout, errors="replace")  # fmt: skip
        except subprocess.TimeoutExpired:
            raise SshHostError(f"{self.where}: `{command[:80]}` did not finish within {timeout:g} s") from None
        except OSError as exc:
            raise SshHostError(f"{self.where}: cannot run {self.argv(command)[0]}: {exc}") from None

    def put(self, source: Path, path: str, mode: int = 0o644, timeout: float = 120.0) -> None:
        """Copy a file of this machine to `path` in dom0."""
        command = f"cat > {shlex.quote(path)} && chmod {mode:o} {shlex.quote(path)}"
        result = self.run(command, timeout, stdin=source)
        if result.returncode != 0:
            why = (result.stderr or result.stdout).strip().splitlines()[-1:] or [f"status {result.returncode}"]
            raise SshHostError(f"{self.where}: cannot write {path}: {why[0]}")
