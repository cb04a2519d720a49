"""The pieces of the appliance that need no boot: cpio archives and
modules.dep."""

import io
import stat

import pytest

from conformance.appliances.cpio import CpioWriter
from conformance.appliances.linux import ApplianceError, _modules_dep


def read_newc(data: bytes):
    """A minimal reader, independent of the writer, for the test."""
    entries, pos = [], 0
    while True:
        assert data[pos : pos + 6] == b"070701"
        fields = [int(data[pos + 6 + 8 * i : pos + 14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = fields[1], fields[6], fields[11]
        name = data[pos + 110 : pos + 110 + namesize - 1].decode()
        pos = (pos + 110 + namesize + 3) & ~3
        body = data[pos : pos + size]
        pos = (pos + size + 3) & ~3
        if name == "TRAILER!!!":
            return entries
        entries.append((name, mode, body))


def test_cpio_round_trip_with_parents_once_and_alignment():
    out = io.BytesIO()
    w = CpioWriter(out)
    w.data("a/b/c.txt", b"hello", 0o600)
    w.data("a/b/d", b"12345678", 0o755)
    w.symlink("bin/sh", "busybox")
    w.close()
    entries = read_newc(out.getvalue())
    assert [e[0] for e in entries] == ["a", "a/b", "a/b/c.txt", "a/b/d", "bin", "bin/sh"]
    by = {name: (mode, body) for name, mode, body in entries}
    assert stat.S_ISDIR(by["a/b"][0])
    assert by["a/b/c.txt"] == (stat.S_IFREG | 0o600, b"hello")
    assert by["bin/sh"] == (stat.S_IFLNK | 0o777, b"busybox")
    assert len(out.getvalue()) % 4 == 0


def test_modules_dep_lists_every_dependency_in_load_order():
    text = _modules_dep(
        [
            ("virt/lib/irqbypass.ko", []),
            ("arch/x86/kvm/kvm.ko", ["irqbypass"]),
            ("arch/x86/kvm/kvm-amd.ko", ["kvm", "ccp"]),
            ("drivers/crypto/ccp/ccp.ko", []),
        ]
    )
    lines = dict(line.partition(":")[::2] for line in text.splitlines())
    assert lines["kernel/virt/lib/irqbypass.ko"] == ""
    # modprobe loads the list from its end: irqbypass, kvm, ccp, then kvm-amd.
    assert lines["kernel/arch/x86/kvm/kvm-amd.ko"].split() == [
        "kernel/drivers/crypto/ccp/ccp.ko",
        "kernel/arch/x86/kvm/kvm.ko",
        "kernel/virt/lib/irqbypass.ko",
    ]


def test_modules_dep_names_a_missing_module():
    with pytest.raises(ApplianceError, match="kvm.ko needs irqbypass"):
        _modules_dep([("arch/x86/kvm/kvm.ko", ["irqbypass"])])
