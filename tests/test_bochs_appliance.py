"""The pieces that let Bochs be L0 of a nested stack, each on its own:
the appliance's GRUB ISO, the gzip'd initramfs cache, COM1 on a socket
both ways, the linux-kvm kernel_args setting. The whole stack boots in
test_bochs_nested.py."""

import gzip
import os
import shutil
import socket
import sys
from pathlib import Path

import pexpect
import pytest

from conformance.appliances.linux import compressed
from conformance.backends.bochs import BochsBackend, BochsSettings
from conformance.backends.linux_kvm import LinuxKvmSettings
from conformance.backends.media import LINUX_GRUB_CFG, make_linux_iso
from conformance.backends.transports.pty import PtyConsole


def test_compressed_initramfs_is_made_once_and_again_when_stale(tmp_path):
    src = tmp_path / "initramfs.cpio"
    src.write_bytes(b"070701" + os.urandom(4096) + b"\0" * 100_000)
    gz = compressed(src)
    assert gz == tmp_path / "initramfs.cpio.gz"
    assert gzip.decompress(gz.read_bytes()) == src.read_bytes()
    first = gz.stat().st_mtime_ns
    assert compressed(src).stat().st_mtime_ns == first  # cached
    src.write_bytes(b"070701 changed")
    os.utime(src, ns=(first + 10**9, first + 10**9))
    assert gzip.decompress(compressed(src).read_bytes()) == b"070701 changed"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".gz-")] == []


def test_the_appliance_grub_configuration_loads_the_bzimage_and_every_initrd():
    cfg = LINUX_GRUB_CFG.format(cmdline="console=ttyS0 quiet", initrds="/boot/initrd0.gz /boot/initrd1")
    assert "linux /boot/vmlinuz console=ttyS0 quiet" in cfg
    assert "initrd /boot/initrd0.gz /boot/initrd1" in cfg
    assert "terminal_input serial" in cfg


def test_make_linux_iso_refuses_a_command_line_grub_would_read_as_syntax(tmp_path):
    if shutil.which("grub-mkrescue") is None:
        pytest.skip("grub-mkrescue not installed (Debian package grub-common)")
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(b"x")
    with pytest.raises(Exception, match="not allowed in grub.cfg"):
        make_linux_iso(kernel, 'console=ttyS0"; reboot', (), tmp_path / "l.iso")


def test_bochsrc_com1_is_a_file_for_the_probe_kernel_and_a_socket_for_the_appliance():
    backend = BochsBackend(BochsSettings(), 0)
    probe = backend.bochsrc(Path("nvct.iso"), Path("com1.fifo"), Path("bochs.log"))
    assert "com1: enabled=1, mode=file, dev=com1.fifo" in probe
    appliance = backend.bochsrc(Path("linux.iso"), "127.0.0.1:4321", Path("bochs.log"))
    assert "com1: enabled=1, mode=socket-client, dev=127.0.0.1:4321" in appliance


def test_a_writable_serial_console_carries_both_ways():
    """The PtyConsole over a TCP connection, as Bochs's socket-client COM1
    makes it: lines the guest writes are read, and what the harness sends
    reaches the guest (here a child that echoes in upper case)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        echo = (
            f"import socket\ns=socket.create_connection(('127.0.0.1',{port}))\n"
            "while (d:=s.recv(100)):\n s.sendall(d.upper())\n"
        )
        child = pexpect.spawn(sys.executable, ["-c", echo])
        listener.settimeout(20)
        conn, _ = listener.accept()
    conn.setblocking(False)
    console = PtyConsole(child, serial_fd=conn.detach(), label="echo", serial_writable=True)
    try:
        console.send("ready\n")
        assert console.readline(10) == "READY"
    finally:
        console.close(grace=0.1)


def test_a_read_only_serial_console_still_refuses_to_be_written():
    child = pexpect.spawn("sleep", ["5"])
    r, w = os.pipe()
    os.close(w)
    console = PtyConsole(child, serial_fd=r, label="fifo")
    try:
        with pytest.raises(NotImplementedError):
            console.send("x\n")
    finally:
        console.close(grace=0.1)


@pytest.mark.parametrize("word", ["a b", 'x"', "{", "$HOME", "", "tab\t"])
def test_kernel_args_are_single_words_grub_takes_literally(word):
    assert LinuxKvmSettings(kernel_args=(word,)).validate()[0] == "kernel_args"


def test_kernel_args_pass_plain_words():
    assert LinuxKvmSettings(kernel_args=("ibt=off", "lapic=notscdeadline")).validate() is None
