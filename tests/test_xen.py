"""The Xen backend: the xl configuration it writes (every key, odd
characters quoted), its settings, the joining of Xen's cut console lines,
and real boots of QEMU TCG -> Xen 4.17 -> the probe kernel as a PVH domU."""

from __future__ import annotations

import re
import shutil

import pytest
from conftest import PROFILES, need, run_profile, verdicts

from conformance.backends.base import BootFailed
from conformance.backends.qemu import multiboot_modules
from conformance.backends.transports.shell import GuestConsole
from conformance.backends.xen import (
    PBUF_CHUNK,
    DomainConsole,
    XenSettings,
    domu_config,
    parse_xl_info,
    xen_cmdline,
    xl_string,
)
from conformance.core.profile import ProfileError, load_profile

# ---- an xl configuration reader, written from libxlu's lexer and dequoting
# (tools/libs/util/libxlu_cfg_l.l, libxlu_cfg.c), independent of the writer --

_SIMPLE = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


def _dequote(token: str) -> str:
    body, out, i = token[1:-1], [], 0
    while i < len(body):
        c = body[i]
        i += 1
        if c != "\\":
            out.append(c)
            continue
        nc = body[i]
        i += 1
        if nc in "\"'\\":
            out.append(nc)
        elif nc in _SIMPLE:
            out.append(_SIMPLE[nc])
        elif nc == "x":
            out.append(chr(int(body[i : i + 2], 16)))
            i += 2
        else:
            raise AssertionError(f"escape \\{nc} in {token!r}")
    return "".join(out)


_STRING = r'"(?:[^"\\\n]|\\.)*"'
_LINE = re.compile(rf"""([a-z][_0-9a-z]*) = ({_STRING}|\[ {_STRING}(?:, {_STRING})* \]|[0-9][0-9a-fx]*)\n""")


def read_xl(text: str) -> dict[str, str | int | list[str]]:
    """Settings of one `key = value` per line (a value: a string, a number or
    a list of strings); a line that is not one fails."""
    settings: dict[str, str | int | list[str]] = {}
    pos = 0
    while pos < len(text):
        match = _LINE.match(text, pos)
        assert match, f"not an xl setting line: {text[pos:].splitlines()[0]!r}"
        key, value = match.groups()
        if value.startswith("["):
            settings[key] = [_dequote(item) for item in re.findall(_STRING, value)]
        else:
            settings[key] = _dequote(value) if value.startswith('"') else int(value, 0)
        pos = match.end()
    return settings


# ---- the xl configuration --------------------------------------------------------


def test_domu_config_sets_every_key():
    text = domu_config(XenSettings(memory=96, vcpus=2), "nvct-l2", "/nvct/guest/kernel", "probes=cpu.*,svm.*")
    assert read_xl(text) == {
        "name": "nvct-l2",
        "type": "pvh",
        "kernel": "/nvct/guest/kernel",
        "cmdline": "probes=cpu.*,svm.*",
        "memory": 96,
        "vcpus": 2,
        "nestedhvm": 1,
        "hap": 1,
        "on_poweroff": "destroy",
        "on_reboot": "destroy",
        "on_crash": "destroy",
    }


def test_domu_config_nestedhvm_and_hap_off():
    cfg = read_xl(domu_config(XenSettings(nestedhvm=False, hap=False), "n", "/k", ""))
    assert (cfg["nestedhvm"], cfg["hap"], cfg["cmdline"]) == (0, 0, "")


def test_hvm_domu_config_boots_the_iso_from_a_cdrom_with_com1_to_a_file():
    text = domu_config(XenSettings(type="hvm", memory=96), "nvct-l2", "/nvct/guest/nvct.iso", "probes=cpu.*")
    assert read_xl(text) == {
        "name": "nvct-l2",
        "type": "hvm",
        "disk": ["format=raw,vdev=hdc,access=ro,devtype=cdrom,backendtype=qdisk,target=/nvct/guest/nvct.iso"],
        "boot": "d",
        "serial": "file:/tmp/nvct-com1",
        "device_model_version": "qemu-xen",
        "vga": "none",
        "vnc": 0,
        "sdl": 0,
        "nographic": 1,
        "memory": 96,
        "vcpus": 1,
        "nestedhvm": 1,
        "hap": 1,
        "on_poweroff": "destroy",
        "on_reboot": "destroy",
        "on_crash": "destroy",
    }  # no kernel, no cmdline: the command line is in the ISO's grub.cfg


def test_hvm_config_items_come_after_the_backends_own():
    cfg = read_xl(domu_config(XenSettings(type="hvm", config=("viridian=0", "acpi=1")), "n", "/i.iso", ""))
    assert (cfg["viridian"], cfg["acpi"], cfg["serial"]) == (0, 1, "file:/tmp/nvct-com1")


def test_payload_files_pvh_unchanged(tmp_path):
    from conformance.backends.base import Payload
    from conformance.backends.xen import payload_files, wait_command

    kernel = tmp_path / "nvct.elf"
    kernel.write_bytes(b"\x7fELF")
    files = payload_files(XenSettings(), "nvct-l2", Payload(kernel=kernel, append="probes=x"), tmp_path)
    assert sorted(files) == ["nvct/guest/domu.cfg", "nvct/guest/kernel", "nvct/guest/pvconsole", "nvct/guest/wait"]
    assert files["nvct/guest/kernel"] == kernel
    assert read_xl(files["nvct/guest/domu.cfg"].decode())["cmdline"] == "probes=x"
    assert wait_command(XenSettings(), "nvct-l2") == ["sh", "/nvct/guest/wait", "nvct-l2"]


def test_payload_files_in_a_folder_of_a_real_host(tmp_path):
    """The same files in the fresh folder of a real host's dom0; the wait
    command copies the domain's Xen console (PVH) or its COM1 file (HVM)."""
    from conformance.backends.base import Payload
    from conformance.backends.xen import payload_files, wait_command

    kernel = tmp_path / "nvct.elf"
    kernel.write_bytes(b"\x7fELF")
    folder = "/tmp/nvct.k3Xz9"
    files = payload_files(XenSettings(), "nvct-l1-ab", Payload(kernel=kernel, append="console=xen"), tmp_path, folder)
    assert all(path.startswith("tmp/nvct.k3Xz9/") for path in files)
    assert read_xl(files["tmp/nvct.k3Xz9/domu.cfg"].decode())["kernel"] == f"{folder}/kernel"
    assert wait_command(XenSettings(), "nvct-l1-ab", folder, domid=7) == [
        "sh",
        f"{folder}/pvconsole",
        "7",
        "nvct-l1-ab",
    ]
    hvm = XenSettings(type="hvm")
    assert wait_command(hvm, "n", folder, f"{folder}/com1", 7) == ["sh", f"{folder}/follow", f"{folder}/com1", "n"]
    assert read_xl(domu_config(hvm, "n", f"{folder}/nvct.iso", "", f"{folder}/com1"))["serial"] == f"file:{folder}/com1"


def test_payload_files_hvm_carry_the_boot_iso_with_the_cmdline(tmp_path, image):
    from conformance.backends.base import Payload
    from conformance.backends.media import check_iso_tools
    from conformance.backends.xen import payload_files, wait_command
    from conformance.core.kernel import BuildError

    try:
        check_iso_tools()
    except BuildError as exc:
        pytest.skip(str(exc))
    settings = XenSettings(type="hvm")
    files = payload_files(settings, "nvct-l2", Payload(kernel=image.elf, append="probes=cpu.*"), tmp_path)
    assert sorted(files) == ["nvct/guest/domu.cfg", "nvct/guest/follow", "nvct/guest/nvct.iso", "nvct/guest/wait"]
    iso = files["nvct/guest/nvct.iso"].read_bytes()
    assert iso[0x8001:0x8006] == b"CD001"  # an ISO 9660 volume
    assert b"multiboot /boot/nvct.elf probes=cpu.*" in iso  # grub.cfg, stored uncompressed
    cfg = read_xl(files["nvct/guest/domu.cfg"].decode())
    assert cfg["disk"][0].endswith(",target=/nvct/guest/nvct.iso")
    assert wait_command(settings, "nvct-l2") == ["sh", "/nvct/guest/follow", "/tmp/nvct-com1", "nvct-l2"]


def test_follow_script_copies_com1_to_the_end(tmp_path):
    """The follow script, run with a fake `xl`: every byte the domain wrote
    to COM1 before it was gone comes out, a line cut in two whole, and what
    the wait says after it on lines of their own; the wait's status is
    kept; an `xl list` that dies of SIGSEGV (Xen 4.17's sometimes does) is
    asked again instead of taken for a domain that is gone."""
    import os
    import subprocess

    from conformance.backends.xen import FOLLOW_SCRIPT, WAIT_SCRIPT

    if shutil.which("tail") is None:
        pytest.skip("no tail")
    com1 = tmp_path / "com1"
    com1.write_text("")
    (tmp_path / "wait").write_text(WAIT_SCRIPT)
    (tmp_path / "follow").write_text(FOLLOW_SCRIPT)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # `xl unpause` writes the first line; the first `xl list` dies of
    # SIGSEGV; the second finds the domain running; the third finds it
    # shut down while the last line is half in the file (and tail has
    # copied that half), the rest coming half a second later.
    xl = bin_dir / "xl"
    xl.write_text(f"""#!/bin/sh
case $1 in
unpause) echo "@NVCT1 0 HELLO" >> {com1} ;;
list) echo x >> {tmp_path}/listed
      case $(wc -l < {tmp_path}/listed) in
      1) kill -SEGV $$ ;;
      2) echo header; echo "nvct-l2 1 128 1 r----- 0.1" ;;
      3) printf "@NVCT1 1 E" >> {com1}; (sleep 2; echo "ND" >> {com1}) >/dev/null & sleep 1.5
         echo header; echo "nvct-l2 1 128 1 ---s-- 0.1" ;;
      esac ;;
esac
""")
    xl.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    proc = subprocess.run(["sh", str(tmp_path / "follow"), str(com1), "nvct-l2"], env=env,
                          capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[:2] == ["@NVCT1 0 HELLO", "@NVCT1 1 END"], lines
    assert lines[-1] == "nvct: domain nvct-l2 is ---s--"  # after the shell's word on the SIGSEGV, if any
    assert (tmp_path / "listed").read_text().count("x") == 3


ODD = [
    'probes="cpu.*"',
    "a'b",
    "back\\slash\\",
    "$(reboot); `id` && rm -rf / # not a comment",
    "new\nline",
    "tab\there",
    "bell\a and \x7f and \xe9",
    '\\"',
    "=,[];",
]


@pytest.mark.parametrize("value", ODD)
def test_odd_values_round_trip_through_xl_quoting(value):
    text = domu_config(XenSettings(config=(f"extra_key={value}",)), value, value, value)
    assert len(text.splitlines()) == 12  # one line per setting: no raw newline inside a string
    cfg = read_xl(text)
    assert cfg["name"] == cfg["kernel"] == cfg["cmdline"] == value
    assert cfg["extra_key"] == value.strip()  # a config item's value, as the profile wrote it, trimmed


def test_xl_string_is_quoted_printable_ascii():
    assert xl_string('say "hi"\\') == '"say \\"hi\\"\\\\"'
    assert xl_string("\n\t\x01") == '"\\n\\t\\x01"'
    for value in ODD:
        quoted = xl_string(value)
        assert all(" " <= c <= "~" for c in quoted), quoted
    with pytest.raises(ValueError):
        xl_string("snowman \u2603")


def test_config_items_numbers_and_strings():
    text = domu_config(XenSettings(config=("shadow_memory=8", "cpuid=host,svm=1", "viridian = 0x1")), "n", "/k", "")
    cfg = read_xl(text)
    assert cfg["shadow_memory"] == 8
    assert cfg["cpuid"] == "host,svm=1"
    assert cfg["viridian"] == "0x1"  # only decimal digits are written as a number


# ---- settings and the Xen command line -------------------------------------------


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"type": "pv"}, "type"),
        ({"type": "HVM"}, "type"),
        ({"memory": 8}, "memory"),
        ({"vcpus": 0}, "vcpus"),
        ({"dom0_memory": 64}, "dom0_memory"),
        ({"options": ("smap=0 noreboot",)}, "options"),
        ({"options": ("",)}, "options"),
        ({"options": ("a\x00b",)}, "options"),
        ({"config": ("no equals sign",)}, "config"),
        ({"config": ("Bad-Key=1",)}, "config"),
        ({"config": ("nestedhvm=0",)}, "config"),
        ({"config": ("on_crash=restart",)}, "config"),
        ({"type": "hvm", "config": ("serial=pty",)}, "config"),
        ({"type": "hvm", "config": ("boot=c",)}, "config"),
        ({"type": "hvm", "config": ("disk=x",)}, "config"),
        ({"type": "hvm", "config": ("vnc=1",)}, "config"),
    ],
)
def test_settings_validation(kwargs, key):
    problem = XenSettings(**kwargs).validate()
    assert problem is not None and problem[0] == key, problem


def test_default_settings_are_valid():
    assert XenSettings().validate() is None
    assert XenSettings(type="hvm").validate() is None


def test_xen_cmdline():
    line = xen_cmdline(XenSettings(options=("smap=0", "loglvl=all"), dom0_memory=768))
    words = line.split()
    assert words[:4] == ["console=com1", "com1=115200,8n1", "guest_loglvl=all", "dom0_max_vcpus=1"]
    assert "dom0_mem=768M,max:768M" in words
    assert words[-2:] == ["smap=0", "loglvl=all"]


def test_multiboot_modules_double_commas(tmp_path):
    kernel, initrd = tmp_path / "vmlinux", tmp_path / "a,b.cpio"
    text = multiboot_modules(((kernel, "console=hvc0 x=1,2"), (initrd, "")))
    assert text == f"{kernel} console=hvc0 x=1,,2,{tmp_path}/a,,b.cpio"
    with pytest.raises(BootFailed):
        multiboot_modules(((tmp_path / "with space", ""),))


@pytest.mark.parametrize("name, type_", [("tcg-xen-l2", "pvh"), ("tcg-xen-hvm-l2", "hvm")])
def test_profile_loads_with_xen_settings(name, type_):
    profile = load_profile(PROFILES / f"{name}.yaml")
    qemu, xen = profile.stack
    assert (qemu.backend, xen.backend) == ("qemu", "xen")
    assert (xen.settings.type, xen.settings.nestedhvm) == (type_, True)
    assert "smap=0" in xen.settings.options


def test_profile_rejects_a_bad_xen_option(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("name: p\nstack:\n  - backend: qemu\n  - backend: xen\n    options: ['smap=0 x']\n")
    with pytest.raises(ProfileError, match="options"):
        load_profile(path)


def test_parse_xl_info():
    info = parse_xl_info(
        [
            "(XEN) HVM d1v0 save: CPU",
            "virt_caps              : pv hvm hap gnttab-v1 gnttab-v2",
            "xen_version            : 4.17.7",
            "xen_changeset          : ",
        ]
    )
    assert info == {"virt_caps": "pv hvm hap gnttab-v1 gnttab-v2", "xen_version": "4.17.7", "xen_changeset": ""}


# ---- joining the lines Xen cuts ----------------------------------------------------


class FakeOuter:
    """A console of the level below that replays lines (a fake, named so)."""

    def __init__(self, lines):
        self.lines = list(lines)

    def readline(self, timeout):
        return self.lines.pop(0) if self.lines else None

    def tail(self, count=30):
        return []

    def describe_end(self):
        return "fake ended"


def domain_lines(lines):
    console = DomainConsole(GuestConsole(FakeOuter(lines), "NVCT-EXIT-x", "fake"), domid=3)
    out = []
    while (line := console.readline(1.0)) is not None:
        out.append(line)
    return out


def cut(text, domid=3):
    """What Xen 4.17 prints for one line a domain writes to port 0xE9."""
    pieces = [text[i : i + PBUF_CHUNK] for i in range(0, len(text), PBUF_CHUNK)]
    if len(text) % PBUF_CHUNK == 0:
        pieces.append("")
    return [f"(d{domid}) {piece}" for piece in pieces]


@pytest.mark.parametrize("length", [0, 1, 198, 199, 200, 398, 450, 1024])
def test_cut_lines_are_joined(length):
    text = ("@NVCT1 1 FACT k=" + "v" * 2000)[:length]
    assert domain_lines(cut(text)) == [f"(d3) {text}"]


def test_other_lines_pass_through_while_a_line_is_cut():
    long = "x " * 150
    lines = cut(long)
    lines.insert(1, "(XEN) d3v0 something")
    lines.insert(2, "(d4) another domain " + "y" * 300)
    assert domain_lines(["(XEN) before", *lines, "(d3) short", "NVCT-EXIT-x 0"]) == [
        "(XEN) before",
        "(XEN) d3v0 something",
        "(d4) another domain " + "y" * 300,
        f"(d3) {long}",
        "(d3) short",
    ]


def test_a_piece_left_at_the_end_is_not_lost():
    assert domain_lines(["(d3) " + "z" * PBUF_CHUNK]) == ["(d3) " + "z" * PBUF_CHUNK]


def test_a_xen_panic_is_named_at_the_end():
    lines = [
        "(d3) @NVCT1 5 START probe=svm.x index=0 #00000000",
        "(XEN) ----[ Xen-4.17.7  x86_64  debug=n  Not tainted ]----",
        "(XEN) RIP:    e008:[<ffff82d0402952ff>] nestedsvm_check_intercepts+0xf/0x100",
        "(XEN) ****************************************",
        "(XEN) Panic on CPU 0:",
        "(XEN) FATAL PAGE FAULT",
        "(XEN) [error_code=0000]",
        "(XEN) ****************************************",
        "(XEN) Reboot in five seconds...",
    ]
    console = DomainConsole(GuestConsole(FakeOuter(lines), "NVCT-EXIT-x", "fake"), domid=3)
    while console.readline(1.0) is not None:
        pass
    assert console.panic == ["FATAL PAGE FAULT", "[error_code=0000]"]
    assert console.describe_end().startswith(
        "Xen panicked in nestedsvm_check_intercepts+0xf/0x100: FATAL PAGE FAULT; [error_code=0000] (fake died"
    )


# ---- pre-flight in dom0, against a fake shell ------------------------------------


class FakeShell:
    """Answers commands from a table (a fake of dom0's command loop)."""

    def __init__(self, answers):
        self.answers = answers
        self.sent = []
        self.console = FakeOuter([])

    def run(self, argv, timeout=60.0):
        from conformance.backends.transports.shell import CommandResult

        self.sent.append(argv)
        status, output = self.answers[argv[0] if isinstance(argv, str) else " ".join(argv[:2])]
        return CommandResult(status, output)


XL_INFO = [
    "xen_version            : 4.17.7",
    "xen_caps               : xen-3.0-x86_64 hvm-3.0-x86_64",
    "xen_scheduler          : credit2",
    "xen_commandline        : console=com1 smap=0",
]


def backend():
    from conformance.backends.xen import XenBackend

    return XenBackend(XenSettings(), 1, below=None)


def test_facts_from_xl_info():
    shell = FakeShell({"xl info": (0, [*XL_INFO, "virt_caps              : pv hvm hap gnttab-v1"])})
    facts = backend()._facts(shell)
    assert facts["xen.version"] == "4.17.7"
    assert facts["xen.virt_caps"] == "pv hvm hap gnttab-v1"
    assert facts["xen.commandline"] == "console=com1 smap=0"
    assert shell.sent == [["xl", "info"]]  # an argv list: Shell quotes it


@pytest.mark.parametrize("caps, words", [("pv", "no HVM guests"), ("pv hvm", "no hardware-assisted paging")])
def test_no_hvm_or_no_hap_makes_the_level_unavailable(caps, words):
    from conformance.backends.base import LevelUnavailable

    shell = FakeShell({"xl info": (0, [*XL_INFO, f"virt_caps              : {caps}"])})
    with pytest.raises(LevelUnavailable, match=words):
        backend()._facts(shell)


def test_a_refused_domain_makes_the_level_unavailable_with_xls_words():
    from conformance.backends.base import LevelUnavailable

    shell = FakeShell(
        {
            "xl create": (
                3,
                [
                    "Parsing config from /nvct/guest/domu.cfg",
                    "libxl: error: libxl_x86.c:12:f: nested HVM: Operation not supported",
                ],
            )
        }  # fmt: skip
    )
    with pytest.raises(LevelUnavailable, match="nested HVM: Operation not supported"):
        backend()._create(shell, "nvct-l2", "/nvct/guest/domu.cfg")
    assert shell.sent == [["xl", "create", "-p", "/nvct/guest/domu.cfg"]]


def test_domain_facts_from_xl_list_long():
    answer = ['[', '    {', '        "domid": 1,', '        "config": {', '            "c_info": {"type": "pvh"},',
              '            "b_info": {"max_vcpus": 1, "max_memkb": 131072, "nested_hvm": "True"}', '        }',
              '    }', ']']  # fmt: skip
    shell = FakeShell({"xl list": (0, answer[:3] + ["(XEN) a line of Xen's own"] + answer[3:])})
    facts = backend()._domain_facts(shell, "nvct-l2")
    assert facts == {"domu.type": "pvh", "domu.nested_hvm": "True", "domu.memory_kb": 131072, "domu.vcpus": 1}


# ---- real boots --------------------------------------------------------------------


@pytest.fixture
def tools():
    need("qemu-system-x86_64", "qemu-system-x86")
    for tool in ("apt-get", "apt-cache", "dpkg-deb"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not found: the Xen appliance is built from Debian packages")


@pytest.mark.boot
def test_l2_under_xen_in_tcg(tmp_path, tools):
    proc, record = run_profile(tmp_path, "tcg-xen-l2", "--probes", "cpu.*,svm.cpuid.*,svm.vmrun.*")
    assert [lv["level"] for lv in record["levels"]] == [1, 2], proc.stdout
    l1, l2 = verdicts(record, 1), verdicts(record, 2)
    assert l1["svm.vmrun.vmmcall"] == "PASS"
    assert l2["svm.vmrun.vmmcall"] == "PASS", proc.stdout
    assert l2["svm.cpuid.exposed"] == "PASS"
    level2 = record["levels"][1]
    assert level2["facts"]["hv.signature"] == "XenVMMXenVMM"
    assert level2["kernel"]["console"] == "e9"
    hv = level2["hypervisor"]
    assert hv["backend"] == "xen"
    runtime = hv["runtime"]
    assert runtime["xen.version"].startswith("4.17")
    assert {"hvm", "hap"} <= set(runtime["xen.virt_caps"].split())
    assert runtime["domu.type"] == "pvh"
    assert runtime["domu.nested_hvm"] == "True"
    assert "smap=0" in runtime["xen.commandline"].split()
    assert runtime["dom0.kernel"]
    assert proc.returncode == 0, proc.stdout


@pytest.mark.boot
def test_l2_as_an_hvm_domu_under_xen_in_tcg(tmp_path, tools):
    """hvmloader, SeaBIOS, GRUB from the ISO on the emulated CD-ROM, the
    probe kernel on the COM1 that QEMU in dom0 emulates."""
    from conformance.backends.media import check_iso_tools
    from conformance.core.kernel import BuildError

    try:
        check_iso_tools()
    except BuildError as exc:
        pytest.skip(str(exc))
    proc, record = run_profile(tmp_path, "tcg-xen-hvm-l2", "--probes", "cpu.*,svm.cpuid.*,svm.vmrun.*")
    assert [lv["level"] for lv in record["levels"]] == [1, 2], proc.stdout
    l2 = verdicts(record, 2)
    assert l2["svm.vmrun.vmmcall"] == "PASS", proc.stdout
    assert l2["svm.cpuid.exposed"] == "PASS"
    level2 = record["levels"][1]
    assert level2["kernel"]["console"] == "com1"  # not e9: the emulated UART
    assert level2["facts"]["hv.signature"] == "XenVMMXenVMM"
    assert level2["facts"]["boot"] == "multiboot"  # GRUB's multiboot, not the PVH entry
    assert int(level2["facts"]["tsc.hz"]) > 0  # an HVM domU has a PIT to calibrate against
    runtime = level2["hypervisor"]["runtime"]
    assert runtime["domu.type"] == "hvm"
    assert runtime["domu.nested_hvm"] == "True"
    assert "qemu-system-xen" in level2["hypervisor"]["appliance"]["packages"]
    assert proc.returncode == 0, proc.stdout


@pytest.mark.boot
def test_odd_cmdline_reaches_the_domu_intact(tmp_path, tools, image):
    """The command line passes the xl configuration, libxl and Xen's PVH
    start info unchanged: the probe kernel's HELLO says what it received."""
    from conformance.backends.qemu import QemuBackend, QemuSettings
    from conformance.backends.xen import XenBackend
    from conformance.core.protocol import parse_line

    odd = 'probes=cpu.cpuid.basic nvct.q="a\'b" $(reboot);`id`\\ #h%'
    below = QemuBackend(QemuSettings(accel="tcg", cpu="max", memory=2048), 0)
    xen = XenBackend(XenSettings(options=("smap=0",)), 1, below=below)
    xen.preflight()
    with xen.boot(image, odd, tmp_path) as console:
        hello = None
        while hello is None:
            line = console.readline(300)
            assert line is not None, console.tail()
            record = parse_line(line)
            if record is not None and record.kind == "HELLO":
                hello = record
        assert console.facts["domu.nested_hvm"] == "True"
    assert hello.get("console") == "e9"
    assert hello.get("cmdline") == odd
