"""Writing initramfs archives: the SVR4 "newc" cpio format Linux unpacks.

Linux accepts several archives one after another in one initramfs, which
is how a run adds the probe kernel to a cached appliance without
rebuilding it.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import BinaryIO

_TRAILER = "TRAILER!!!"


class CpioWriter:
    def __init__(self, out: BinaryIO):
        self._out = out
        self._ino = 1
        self._dirs: set[str] = set()

    def _header(self, name: str, mode: int, size: int, nlink: int = 1) -> None:
        encoded = name.encode() + b"\0"
        fields = [
            self._ino, mode, 0, 0, nlink, 0, size,  # ino mode uid gid nlink mtime filesize
            0, 0, 0, 0,  # devmajor devminor rdevmajor rdevminor
            len(encoded), 0,  # namesize check
        ]  # fmt: skip
        self._ino += 1
        header = b"070701" + b"".join(f"{v:08X}".encode() for v in fields)
        self._out.write(header + encoded)
        self._pad(len(header) + len(encoded))

    def _pad(self, length: int) -> None:
        self._out.write(b"\0" * (-length % 4))

    def directory(self, name: str, mode: int = 0o755) -> None:
        """A directory, and its parents, once each."""
        name = name.strip("/")
        if not name or name in self._dirs:
            return
        parent = name.rpartition("/")[0]
        if parent:
            self.directory(parent)
        self._dirs.add(name)
        self._header(name, stat.S_IFDIR | mode, 0, nlink=2)

    def data(self, name: str, content: bytes, mode: int = 0o644) -> None:
        name = name.strip("/")
        self.directory(name.rpartition("/")[0])
        self._header(name, stat.S_IFREG | mode, len(content))
        self._out.write(content)
        self._pad(len(content))

    def file(self, name: str, source: Path, mode: int | None = None) -> None:
        """A copy of a file of this machine (links followed)."""
        if mode is None:
            mode = source.stat().st_mode & 0o777
        self.data(name, source.read_bytes(), mode)

    def symlink(self, name: str, target: str) -> None:
        name = name.strip("/")
        self.directory(name.rpartition("/")[0])
        encoded = target.encode()
        self._header(name, stat.S_IFLNK | 0o777, len(encoded))
        self._out.write(encoded)
        self._pad(len(encoded))

    def close(self) -> None:
        self._header(_TRAILER, 0, 0, nlink=1)
        self._out.flush()


def write_cpio(path: Path, files: dict[str, bytes | Path], modes: dict[str, int] | None = None) -> Path:
    """A small archive of the given files (archive path -> content or file)."""
    modes = modes or {}
    with open(path, "wb") as out:
        writer = CpioWriter(out)
        for name, content in files.items():
            if isinstance(content, Path):
                writer.file(name, content, modes.get(name))
            else:
                writer.data(name, content, modes.get(name, 0o644))
        writer.close()
    return path
