"""The probe kernel's source layout (guests/): every probe file stands on
lib/ and include/ alone, every source file opens with the one SPDX line,
and the C sources are in the house style of .clang-format."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GUESTS = ROOT / "guests"
BUILD = GUESTS / "build"

# The one SPDX line, in each kind of file's comment syntax. Make has no
# block comments; Markdown files (README.md) carry no licence line, like
# the rest of the repository's documentation.
SPDX_C = "/* SPDX-License-Identifier: MIT */"
SPDX_FIRST_LINE = {
    ".c": SPDX_C,
    ".h": SPDX_C,
    ".S": SPDX_C,
    ".ld": SPDX_C,
    "Makefile": "# SPDX-License-Identifier: MIT",
}
NO_SPDX = {".md"}


def source_files() -> list[Path]:
    """Every file under guests/ except the build directory."""
    return sorted(p for p in GUESTS.rglob("*") if p.is_file() and BUILD not in p.parents)


@pytest.fixture(scope="module")
def probe_objects() -> list[Path]:
    """The probe objects, built (or brought up to date) by the kernel's own Makefile."""
    if shutil.which("make") is None or shutil.which("gcc") is None or shutil.which("nm") is None:
        pytest.skip("make, gcc and nm (Debian packages make, gcc, binutils) are needed to build the probes")
    proc = subprocess.run(["make", "-C", str(GUESTS)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"make -C guests failed:\n{proc.stdout}\n{proc.stderr}"
    sources = sorted((GUESTS / "probes").glob("*.c"))
    objects = [BUILD / "probes" / f"{src.name}.o" for src in sources]
    missing = [str(o.relative_to(ROOT)) for o in objects if not o.exists()]
    assert not missing, f"not built: {missing}"
    return objects


def nm(obj: Path, *flags: str) -> set[str]:
    proc = subprocess.run(["nm", *flags, str(obj)], capture_output=True, text=True, check=True)
    return {line.split()[-1] for line in proc.stdout.splitlines() if line.strip()}


def test_probe_files_do_not_use_each_other(probe_objects):
    """A symbol a probe object needs comes from lib/, never from another
    probe file: shared guest code and helpers belong in lib/ with a header
    in include/."""
    defined = {obj: nm(obj, "--defined-only", "--extern-only") for obj in probe_objects}
    offenders = []
    for obj in probe_objects:
        for sym in sorted(nm(obj, "--undefined-only")):
            owners = [o.name for o, syms in defined.items() if o != obj and sym in syms]
            if owners:
                offenders.append(f"{obj.name} uses {sym}, defined in {', '.join(owners)}")
    assert not offenders, "probe files that link to another probe file:\n" + "\n".join(offenders)


def test_every_source_file_opens_with_the_spdx_line():
    wrong = []
    for path in source_files():
        rel = path.relative_to(ROOT)
        if path.suffix in NO_SPDX:
            continue
        want = SPDX_FIRST_LINE.get(path.name) or SPDX_FIRST_LINE.get(path.suffix)
        if want is None:
            wrong.append(f"{rel}: a kind of file this test does not know (add its SPDX form)")
            continue
        first = path.read_text(errors="replace").split("\n", 1)[0]
        if first != want:
            wrong.append(f"{rel}: first line {first!r}, want {want!r}")
    assert not wrong, "\n".join(wrong)


def test_guests_are_clang_formatted():
    """The check CI runs: clang-format --dry-run --Werror on guests/ (*.c, *.h)."""
    exe = shutil.which("clang-format")
    if exe is None:
        pytest.skip("clang-format not installed (Debian package clang-format)")
    files = [str(p) for p in source_files() if p.suffix in (".c", ".h")]
    proc = subprocess.run([exe, "--dry-run", "--Werror", *files], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, f"clang-format would change guests/:\n{proc.stderr[:4000]}"
