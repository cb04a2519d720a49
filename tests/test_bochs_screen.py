"""Bochs's `term` display draws into a pseudo-terminal of its own; unread,
it fills after about 21 KB and Bochs blocks in write(), stopping every
level above it (docs/robustness.md). ScreenDrain reads it. Checked with
a stand-in writer (a process that opens a pseudo-terminal and writes 256 KB
into it, as Bochs's display does); the real boots of test_boot_bochs.py and
test_bochs_nested.py run with it."""

import subprocess
import sys
import time

from conformance.backends import bochs
from conformance.backends.bochs import ScreenDrain, screen_pty

WRITER = (
    "import fcntl, os, termios\n"
    # posix_openpt() and unlockpt(), as Bochs's display does; nobody opens the slave
    "master = os.open('/dev/ptmx', os.O_RDWR | os.O_NOCTTY)\n"
    "fcntl.ioctl(master, getattr(termios, 'TIOCSPTLCK', 0x40045431), b'\\0\\0\\0\\0')\n"
    "index = fcntl.ioctl(master, getattr(termios, 'TIOCGPTN', 0x80045430), b'\\0\\0\\0\\0')\n"
    "print('Bochs connected to screen \"/dev/pts/%d\"' % int.from_bytes(index, 'little'), flush=True)\n"
    "print('ready', flush=True)\n"
    "for _ in range(256):\n"
    "    os.write(master, b'\\x1b[?25h' + b'x' * 1018)\n"
    "print('done', flush=True)\n"
)


def _writer() -> tuple[subprocess.Popen, str]:
    """The writer, and the line in which it names its terminal (as Bochs does)."""
    proc = subprocess.Popen([sys.executable, "-c", WRITER], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    said = proc.stdout.readline().rstrip("\n")
    assert proc.stdout.readline() == "ready\n"
    return proc, said


def test_an_unread_screen_blocks_its_writer():
    proc, _ = _writer()
    try:
        time.sleep(3)
        assert proc.poll() is None  # stuck in write(): the pty's buffer is full
        assert screen_pty(proc.pid) is not None
    finally:
        proc.kill()
        proc.wait()


def test_the_drain_finds_the_screen_and_the_writer_goes_on():
    proc, _ = _writer()
    drain = ScreenDrain(proc.pid)
    drain.start()
    try:
        assert proc.wait(timeout=60) == 0
        assert proc.stdout.read() == "done\n"
        drain.join(timeout=10)  # the writer closed the pty: EIO ends the drain
        assert not drain.is_alive()
        assert drain.path is not None and drain.path.startswith("/dev/pts/")
        assert drain.dropped > 0  # the rest of the 256 KB went in the tcflush when the drain found the terminal
    finally:
        proc.kill()
        proc.wait()


def test_no_screen_is_no_error():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1)"])
    ScreenDrain.FIND_FOR, old = 0.5, ScreenDrain.FIND_FOR
    try:
        drain = ScreenDrain(proc.pid)
        drain.start()
        drain.join(timeout=10)
        assert not drain.is_alive() and drain.path is None
    finally:
        ScreenDrain.FIND_FOR = old
        proc.wait()


def test_without_fdinfo_the_drain_uses_the_line_bochs_printed(monkeypatch):
    """A kernel whose /proc fdinfo has no tty-index: the drain takes the
    terminal from Bochs's own "connected to screen" line. It hears it late,
    when the writer is already blocked on a full terminal, and still frees it."""
    monkeypatch.setattr(bochs, "screen_pty", lambda pid: None)
    proc, said = _writer()
    drain = ScreenDrain(proc.pid)
    drain.start()
    try:
        time.sleep(0.3)
        assert proc.poll() is None and drain.path is None  # not found yet: the writer is stuck
        drain.heard("Next at t=0")
        drain.heard(said)
        assert proc.wait(timeout=60) == 0
        drain.join(timeout=10)
        assert drain.path == said.split('"')[1] and drain.dropped > 0
    finally:
        proc.kill()
        proc.wait()
