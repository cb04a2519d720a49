"""Both firmware paths of the hybrid GRUB ISO: the default catalogue booted
from the same image through SeaBIOS (qemu-tcg-bios-iso) and through OVMF
(qemu-tcg-uefi) gives the same verdict for every probe, and the kernel
finds COM1 under both. Also the ISO itself, and the QEMU backend's
firmware/boot settings (validation and command line)."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import need, run_profile, verdicts

from conformance.backends.base import BootFailed, Payload
from conformance.backends.media import check_iso_tools, make_iso
from conformance.backends.qemu import OVMF_CODE, OVMF_VARS, QemuBackend, QemuSettings
from conformance.core.kernel import BuildError, GuestImage
from conformance.core.profile import ProfileError, load_profile
from conformance.core.protocol import parse_line

pytestmark = pytest.mark.boot


def need_iso_tools() -> None:
    try:
        check_iso_tools()
    except BuildError as exc:
        pytest.skip(str(exc))


def need_ovmf() -> None:
    for path in (OVMF_CODE, OVMF_VARS):
        if not os.path.isfile(path):
            pytest.skip(f"OVMF not installed: no {path} (Debian package ovmf)")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One run of the default catalogue per boot path: -kernel, SeaBIOS+ISO, OVMF+ISO."""
    need("qemu-system-x86_64", "qemu-system-x86")
    need_iso_tools()
    need_ovmf()
    tmp = tmp_path_factory.mktemp("firmware")
    return {name: run_profile(tmp, name) for name in ("qemu-tcg-bios-iso", "qemu-tcg-uefi", "qemu-tcg")}


@pytest.fixture(scope="module")
def records(runs):
    return {name: record for name, (_, record) in runs.items()}


def same_kernel(*records: dict) -> None:
    builds = {r["levels"][0]["kernel"].get("build") for r in records}
    assert len(builds) == 1, f"the probe kernel was rebuilt between the runs ({builds}): compare nothing"


def test_seabios_and_ovmf_give_equal_verdicts(records):
    same_kernel(records["qemu-tcg-bios-iso"], records["qemu-tcg-uefi"])
    bios, efi = verdicts(records["qemu-tcg-bios-iso"]), verdicts(records["qemu-tcg-uefi"])
    catalogue = [p["id"] for p in records["qemu-tcg-uefi"]["catalog"]]
    assert sorted(bios) == sorted(efi) == sorted(catalogue)
    assert len(catalogue) > 100  # the whole default catalogue, not a few probes
    differ = {p: (bios[p], efi[p]) for p in catalogue if bios[p] != efi[p]}
    assert not differ, f"SeaBIOS vs OVMF: {differ}"
    assert efi["cpu.cpuid.basic"] == "PASS" and efi["svm.vmrun.vmmcall"] == "PASS"


def test_the_iso_gives_what_kernel_boots_give(records):
    same_kernel(records["qemu-tcg-bios-iso"], records["qemu-tcg"])
    assert verdicts(records["qemu-tcg-bios-iso"]) == verdicts(records["qemu-tcg"])


def test_the_gate_holds_alike(runs):
    # The firmware profiles include qemu-tcg: the same selection and expect: rules.
    status = {name: proc.returncode for name, (proc, _) in runs.items()}
    assert status == dict.fromkeys(runs, status["qemu-tcg"])
    assert runs["qemu-tcg-uefi"][1]["selection"] == runs["qemu-tcg"][1]["selection"]


def test_hello_says_com1_under_both(records):
    for name in ("qemu-tcg-bios-iso", "qemu-tcg-uefi"):
        (level,) = records[name]["levels"]
        assert level["kernel"]["console"] == "com1", name
        assert level["facts"]["boot"] == "multiboot", name  # GRUB's multiboot under BIOS and UEFI
        assert int(level["facts"]["mem.free"]) > 64 << 20, name  # the RAM map arrived


def test_the_record_says_which_firmware(records):
    settings = {name: run["levels"][0]["hypervisor"]["settings"] for name, run in records.items()}
    assert (settings["qemu-tcg"]["firmware"], settings["qemu-tcg"]["boot"]) == ("bios", "kernel")
    assert (settings["qemu-tcg-bios-iso"]["firmware"], settings["qemu-tcg-bios-iso"]["boot"]) == ("bios", "iso")
    assert (settings["qemu-tcg-uefi"]["firmware"], settings["qemu-tcg-uefi"]["boot"]) == ("efi", "iso")
    assert settings["qemu-tcg-uefi"]["ovmf_code"] == OVMF_CODE
    assert "ovmf_code" not in settings["qemu-tcg"]


def test_the_iso_is_hybrid(image, tmp_path):
    need_iso_tools()
    iso = make_iso(image, "probes=cpu.*", tmp_path / "nvct.iso")
    report = subprocess.run(
        ["xorriso", "-indev", str(iso), "-report_el_torito", "plain"], capture_output=True, text=True, check=True
    ).stdout
    platforms = {line.split()[6] for line in report.splitlines() if line.startswith("El Torito boot img :")}
    assert platforms == {"BIOS", "UEFI"}, report
    assert [p.name for p in tmp_path.iterdir()] == ["nvct.iso"]  # the staging folder is gone


def test_make_iso_names_the_missing_package(image, tmp_path, monkeypatch):
    from conformance.backends import media

    need_iso_tools()
    monkeypatch.setattr(media, "GRUB_LIB", tmp_path / "nogrub")
    with pytest.raises(BuildError, match=r"grub-pc-bin"):
        make_iso(image, "", tmp_path / "x.iso")
    (tmp_path / "nogrub" / "i386-pc").mkdir(parents=True)
    shutil.copyfile("/usr/lib/grub/i386-pc/moddep.lst", tmp_path / "nogrub" / "i386-pc" / "moddep.lst")
    with pytest.raises(BuildError, match=r"UEFI modules.*grub-efi-amd64-bin"):
        make_iso(image, "", tmp_path / "x.iso")


# ---- the kernel's entries and console detection, booted by hand -------------

MB1_MAGIC = (0x1BADB002).to_bytes(4, "little")


def without_multiboot(image: GuestImage, dest: Path) -> Path:
    """A copy of the image whose Multiboot 1 header is broken, so that QEMU's
    -kernel takes the PVH note (QEMU tries multiboot first), as Xen does."""
    data = bytearray(image.elf.read_bytes())
    at = data.find(MB1_MAGIC)
    assert 0 <= at < 8192, "no multiboot header in the first 8 KiB"
    data[at : at + 4] = bytes(4)
    dest.write_bytes(data)
    return dest


def boot_by_hand(elf: Path, devices: list[str]) -> dict[str, dict[str, str]]:
    argv = ["qemu-system-x86_64", "-accel", "tcg", "-cpu", "max", "-m", "128", "-nodefaults", "-display", "none",
            "-no-reboot", "-device", "isa-debug-exit,iobase=0xf4,iosize=4", *devices,
            "-kernel", str(elf), "-append", "probes=cpu.cpuid.basic"]  # fmt: skip
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace", timeout=60)
    assert proc.returncode == 0x63, f"status {proc.returncode}: {proc.stderr[-500:]}"  # isa-debug-exit after END
    records = [r for r in map(parse_line, proc.stdout.splitlines()) if r is not None]  # a bad CRC raises
    return {r.kind: r.fields for r in records}


SERIAL_COM2 = ["-chardev", "stdio,id=c0", "-device", "isa-serial,iobase=0x2f8,irq=3,chardev=c0"]


@pytest.mark.parametrize(
    "entry, devices, console",
    [
        ("multiboot", ["-serial", "stdio"], "com1"),
        ("multiboot", SERIAL_COM2, "com2"),  # no COM1: the second UART
        ("multiboot", ["-debugcon", "stdio"], "e9"),  # no UART at all: the debug port
        ("pvh", ["-serial", "stdio"], "com1"),
        ("pvh", ["-debugcon", "stdio"], "e9"),  # what a Xen PVH guest without a UART does
    ],
)
def test_entry_and_console_detection(image, tmp_path, entry, devices, console):
    need("qemu-system-x86_64", "qemu-system-x86")
    elf = image.elf if entry == "multiboot" else without_multiboot(image, tmp_path / "pvh.elf")
    got = boot_by_hand(elf, devices)
    assert got["HELLO"]["console"] == console
    assert got["FACT"]["boot"] == entry
    assert got["END"]["run"] == "1" and got["END"]["pass"] == "1"


# ---- settings and the command line (no boot) ------------------------------------

PROFILE = "name: t\nstack:\n  - backend: qemu\n"


@pytest.mark.parametrize(
    "extra, line, key, message",
    [
        ("    firmware: uefi\n", 4, "stack[0].firmware", "must be bios or efi, not 'uefi'"),
        ("    boot: cdrom\n", 4, "stack[0].boot", "must be kernel or iso, not 'cdrom'"),
        ("    firmware: efi\n    boot: kernel\n", 5, "stack[0].boot", "OVMF has no multiboot loader"),
    ],
)
def test_bad_firmware_settings_are_named(tmp_path, extra, line, key, message):
    path = tmp_path / "p.yaml"
    path.write_text(PROFILE + extra)
    with pytest.raises(ProfileError) as exc:
        load_profile(path)
    assert (exc.value.line, exc.value.key) == (line, key)
    assert message in exc.value.message


def test_default_boot_is_unchanged():
    argv = QemuBackend(QemuSettings(), 0).argv(Payload.probe_kernel(GuestImage(Path("/k.elf")), "probes=a.*"))
    assert argv[argv.index("-kernel") + 1] == "/k.elf"
    assert not any("pflash" in a or "media=cdrom" in a for a in argv)


def test_efi_boots_the_iso_with_a_private_variable_store():
    settings = QemuSettings(firmware="efi", ovmf_code="/fw/CODE,4M.fd")
    assert settings.boot_from == "iso"
    payload = Payload.probe_kernel(GuestImage(Path("/k.elf")), "probes=a.*")
    argv = QemuBackend(settings, 0).argv(payload, iso=Path("/w/nvct.iso"), ovmf_vars=Path("/w/VARS.fd"))
    assert "-kernel" not in argv and "-append" not in argv
    drives = [argv[i + 1] for i, a in enumerate(argv) if a == "-drive"]
    assert drives == [
        "if=pflash,format=raw,unit=0,readonly=on,file=/fw/CODE,,4M.fd",  # a comma doubled: QEMU's escape
        "if=pflash,format=raw,unit=1,file=/w/VARS.fd",
        "if=ide,index=2,media=cdrom,format=raw,readonly=on,file=/w/nvct.iso",
    ]


def test_the_appliance_is_not_booted_from_an_iso(tmp_path):
    backend = QemuBackend(QemuSettings(boot="iso"), 0)
    with pytest.raises(BootFailed, match="probe kernel only"):
        with backend.boot_payload(Payload(kernel=Path("/vmlinux"), append="", probe=False), tmp_path):
            pass
