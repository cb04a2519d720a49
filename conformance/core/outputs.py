"""Where nvct's outputs go: the run record and the report files.

The path a user gives is honoured as it is:

- a symlink is followed, and its target is written (the link stays);
- a FIFO or a character device (/dev/null, a terminal) is opened and
  written as a stream, never replaced; nvct's own standard output or error
  (/dev/stdout, /dev/fd/2, whatever they were sent to) is written through
  the descriptor nvct holds, after what nvct printed there;
- a regular file (or a path that does not exist yet) is written atomically:
  a temporary file in the directory the file really lives in, renamed over
  it, so that a reader never sees half a report. An existing file keeps its
  mode; a new one gets 0666 less the umask, as any file a program creates;
- anything else (a directory, a block device, a socket) is refused.

Every failure is an `OutputError` holding one line that names the path.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import sys
from dataclasses import dataclass
from pathlib import Path


class OutputError(Exception):
    """An output cannot be written: one line, naming the path."""


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


@dataclass(frozen=True)
class Target:
    """Where an output goes, found out once."""

    path: Path  # as the user gave it
    real: Path  # symlinks followed
    stream: bool  # a FIFO or character device: written in one go, at the end, never replaced
    fd: int | None = None  # the file is nvct's own standard output or error: written there

    @classmethod
    def of(cls, path: Path | str, option: str | None = None) -> Target:
        """Check `path` without writing to it: what is there may be written,
        or the directory it would be created in exists and is writable."""
        path = Path(path)
        name = f"{option} {path}" if option else str(path)
        try:
            st = os.stat(path)  # through symlinks, and through /proc/self/fd's links to pipes
        except FileNotFoundError:
            st = None
        except OSError as exc:
            raise OutputError(f"{name}: {exc.strerror or exc}") from None
        if st is not None:
            for fd in (1, 2):  # /dev/stdout, /proc/self/fd/2, or the file stdout was sent to
                try:
                    own = os.fstat(fd)
                except OSError:
                    continue
                if (own.st_dev, own.st_ino) == (st.st_dev, st.st_ino):
                    return cls(path, path, True, fd)
            if stat.S_ISFIFO(st.st_mode) or stat.S_ISCHR(st.st_mode):
                return cls(path, path, True)
            if not stat.S_ISREG(st.st_mode):
                raise OutputError(f"{name}: is {_kind(st.st_mode)}, not a file nvct can write")
        real = Path(os.path.realpath(path))  # where a new file is made, or the file renamed over
        parent = real.parent
        if not parent.is_dir():
            raise OutputError(f"{name}: no such directory {path.parent}")
        if not os.access(parent, os.W_OK | os.X_OK):
            why = "read-only file system" if _read_only(parent) else "permission denied"
            raise OutputError(f"{name}: cannot write in {path.parent}: {why}")
        if st is not None and not os.access(real, os.W_OK):
            why = "read-only file system" if _read_only(parent) else "permission denied"
            raise OutputError(f"{name}: cannot write: {why}")
        return cls(path, real, False)

    def identity(self) -> tuple:
        """What two outputs must not share: the same file (by inode when it
        exists, else by its real path), or the same path to a stream."""
        if self.fd is not None:
            return ("fd", self.fd)
        if self.stream:
            return ("stream", os.path.abspath(self.path))
        try:
            st = os.stat(self.real)
            return ("file", st.st_dev, st.st_ino)
        except OSError:
            return ("new", str(self.real))


def _read_only(directory: Path) -> bool:
    try:
        return bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def check(outputs: list[tuple[str, Path | str]]) -> list[Target]:
    """Check every (option, path) before anything runs: each can be written,
    and no two name the same file."""
    targets = [Target.of(path, option) for option, path in outputs]
    seen: dict[tuple, str] = {}
    for (option, path), target in zip(outputs, targets):
        key = target.identity()
        if key in seen:
            raise OutputError(f"{seen[key]} and {option} both name {path}: give each output its own file")
        seen[key] = f"{option}"
    return targets


def write_text(path: Path | str, text: str, option: str | None = None) -> None:
    """Write `text` (UTF-8) to `path` as the module docstring says."""
    write_bytes(path, text.encode("utf-8", errors="replace"), option)


def write_bytes(path: Path | str, data: bytes, option: str | None = None) -> None:
    target = Target.of(path, option)
    name = f"{option} {path}" if option else str(path)
    if target.fd is not None:
        try:
            (sys.stdout if target.fd == 1 else sys.stderr).flush()
            _write_all(target.fd, data)
        except OSError as exc:
            raise OutputError(f"{name}: cannot write: {exc.strerror or exc}") from None
        return
    if target.stream:
        try:
            # No O_CREAT, no O_TRUNC on what is already there: a stream is written, not replaced.
            fd = os.open(target.real, os.O_WRONLY)
        except OSError as exc:
            raise OutputError(f"{name}: cannot write: {exc.strerror or exc}") from None
        try:
            _write_all(fd, data)
        except OSError as exc:
            raise OutputError(f"{name}: cannot write: {exc.strerror or exc}") from None
        finally:
            with contextlib.suppress(OSError):
                os.close(fd)
        return
    real = target.real
    tmp = real.with_name(f".{real.name}.{secrets.token_hex(4)}.tmp")
    try:
        try:
            old = os.stat(real)
        except FileNotFoundError:
            old = None
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
        try:
            if old is not None:  # the file keeps its mode (and, for root, its owner)
                os.fchmod(fd, stat.S_IMODE(old.st_mode))
                if os.geteuid() == 0:
                    with contextlib.suppress(OSError):
                        os.fchown(fd, old.st_uid, old.st_gid)
            _write_all(fd, data)
        finally:
            os.close(fd)
        os.replace(tmp, real)
    except OSError as exc:
        _discard(tmp)
        raise OutputError(f"{name}: cannot write: {exc.strerror or exc}") from None
    except BaseException:
        _discard(tmp)
        raise


def _discard(tmp: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(tmp)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
