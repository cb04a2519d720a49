"""nvct installed as a vendor installs it: the wheel built from a copy of
this checkout (`python -m build`: the source distribution, then the wheel
from it), installed into a fresh virtualenv outside the checkout, and run
from an empty folder with no user profiles and no NVCT_GUESTS.

The fresh virtualenv gets its dependencies without a network: pip installs
with --no-index from wheels repacked from what this test's own virtualenv
(made by ./setup) has installed, so pip still resolves the wheel's declared
dependencies (a missing one would fail the import) but fetches nothing.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import PROFILES, ROOT, need

pytestmark = pytest.mark.boot

# What is never part of a source tree given to the build.
IGNORED = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
                                 ".hypothesis", ".ruff_cache", "*.pyc")  # fmt: skip


def repack(dist: importlib.metadata.Distribution, out: Path) -> Path:
    """An installed distribution back into a wheel: its files as its RECORD
    lists them (scripts left out: pip makes them again from the entry
    points), its dist-info, a new RECORD, the tag of its WHEEL file."""
    info = next(p for p in (dist.files or []) if p.parent.name.endswith(".dist-info")).parent
    from packaging.tags import sys_tags

    here = {str(t) for t in sys_tags()}
    tags = [t for t in re.findall(r"^Tag: (\S+)$", dist.read_text("WHEEL") or "", re.M) if t in here]
    assert tags, f"{dist.metadata['Name']}: no tag of its WHEEL file fits this interpreter"
    wheel = out / f"{info.name.removesuffix('.dist-info')}-{tags[0]}.whl"
    skip = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}
    record = []
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in dist.files or []:
            name = file.as_posix()
            if name.startswith("..") or "__pycache__" in file.parts or (file.parent == info and file.name in skip):
                continue
            data = Path(dist.locate_file(file)).read_bytes()
            archive.writestr(name, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{name},sha256={digest},{len(data)}")
        record.append(f"{info.as_posix()}/RECORD,,")
        archive.writestr(f"{info.as_posix()}/RECORD", "\n".join(record) + "\n")
    return wheel


def closure(names: list[str]) -> list[importlib.metadata.Distribution]:
    """The distributions `names` need, with what they need in turn (the
    markers evaluated for this interpreter; extras not followed)."""
    from packaging.requirements import Requirement

    seen: dict[str, importlib.metadata.Distribution] = {}
    todo = list(names)
    while todo:
        requirement = Requirement(todo.pop())
        key = re.sub(r"[-_.]+", "-", requirement.name).lower()
        if key in seen or (requirement.marker and not requirement.marker.evaluate({"extra": ""})):
            continue
        seen[key] = importlib.metadata.distribution(requirement.name)
        todo += seen[key].requires or []
    return list(seen.values())


def _clean_env(home: Path, venv: Path) -> dict[str, str]:
    """The environment of a new user: this machine's PATH behind the fresh
    virtualenv, an empty home (no user profiles), nothing of this checkout,
    of its virtualenv, of pip's configuration or of the pytest running us."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIP_", "PYTEST_", "NVCT_", "XDG_", "PYTHON", "VIRTUAL_ENV"))}  # fmt: skip
    path = [
        p for p in os.environ.get("PATH", "").split(os.pathsep) if p and Path(p).resolve() != Path(sys.prefix, "bin")
    ]
    env.update(HOME=str(home), PATH=os.pathsep.join([str(venv / "bin"), *path]), PIP_CONFIG_FILE=os.devnull)
    return env


class Installed:
    def __init__(self, venv: Path, empty: Path, env: dict[str, str], source: Path):
        self.venv, self.empty, self.env, self.source = venv, empty, env, source

    def run(self, *argv: str, timeout: float = 1800, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(argv, cwd=self.empty, env={**self.env, **(env or {})}, capture_output=True, text=True,
                              timeout=timeout)  # fmt: skip

    def nvct(self, *args: str, timeout: float = 1800, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return self.run(str(self.venv / "bin" / "nvct"), *args, timeout=timeout, env=env)


def install(tmp_path_factory) -> Installed:
    need("make", "make")
    need("gcc", "gcc")
    pytest.importorskip("build", reason="build is in the test extra: pip install -e '.[test]'")
    pytest.importorskip("wheel", reason="wheel is in the test extra: pip install -e '.[test]'")
    top = tmp_path_factory.mktemp("install")
    source, dist, wheels, home, empty = (top / n for n in ("source", "dist", "wheels", "home", "empty"))
    shutil.copytree(ROOT, source, ignore=IGNORED, symlinks=True)
    for folder in (wheels, home, empty):
        folder.mkdir()
    proc = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(source)],
                          capture_output=True, text=True, timeout=1800)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (wheel,) = dist.glob("nvct-*-py3-none-any.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert "conformance/shipped/nvct.elf" in names
    assert {f"conformance/shipped/profiles/{p.name}" for p in PROFILES.glob("*.yaml")} <= names
    assert {f"conformance/shipped/requirements/{p.name}" for p in (ROOT / "requirements").glob("*.yaml")} <= names
    for needed in closure(["pexpect", "pyyaml", "pytest"]):
        repack(needed, wheels)
    venv = top / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=600, env=_clean_env(home, venv))
    env = _clean_env(home, venv)
    proc = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-index", "--find-links",
                           str(wheels), str(wheel), "pytest"], capture_output=True, text=True, env=env, timeout=1800)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return Installed(venv, empty, env, source)


def _site(installed: Installed) -> Path:
    proc = installed.run(
        str(installed.venv / "bin" / "python"), "-c", "import conformance; print(conformance.__file__)"
    )
    assert proc.returncode == 0, proc.stderr
    return Path(proc.stdout.strip()).parent


def check_the_installed_nvct_is_the_wheel_not_the_checkout(installed):
    package = _site(installed)
    assert package.is_relative_to(installed.venv) and not package.is_relative_to(ROOT)
    proc = installed.nvct("build")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"{package / 'shipped' / 'nvct.elf'}: "), proc.stdout
    # NVCT_GUESTS (for people who write probes) still names sources to build, over the shipped image.
    guests = installed.source / "guests"
    proc = installed.nvct("build", env={"NVCT_GUESTS": str(guests)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"{guests / 'build' / 'nvct.elf'}: "), proc.stdout


def check_nvct_list_from_an_empty_folder(installed, image):
    proc = installed.nvct("list")
    assert proc.returncode == 0, proc.stderr
    shown = sum(not p.hidden for p in image.catalog())
    assert proc.stderr.strip().endswith(f"{shown} probes")
    assert len(proc.stdout.splitlines()) == shown


def check_nvct_profiles_lists_every_shipped_profile(installed):
    proc = installed.nvct("profiles", "--json")
    assert proc.returncode == 0, proc.stderr
    entries = json.loads(proc.stdout)
    assert [e["name"] for e in entries] == sorted(p.stem for p in PROFILES.glob("*.yaml"))
    package = _site(installed)
    for entry in entries:
        assert entry["origin"] == "shipped" and entry["error"] is None and entry["description"], entry
        assert Path(entry["path"]).parent == package / "shipped" / "profiles"
    text = installed.nvct("profiles")
    assert text.returncode == 0 and "qemu-tcg" in text.stdout and "shipped" in text.stdout


def check_nvct_coverage_reads_the_shipped_map(installed):
    proc = installed.nvct("coverage", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert set(data["manuals"]) == {"sdm", "apm"} and data["problems"] == []


def check_nvct_run_the_default_profile_gate_holds(installed):
    proc = installed.nvct("run", "--json", "r.json", "--junit", "r.xml")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "gate: holds" in proc.stdout
    record = json.loads((installed.empty / "r.json").read_text())
    assert record["profile"]["name"] == "qemu-tcg"
    assert Path(record["profile"]["path"]).is_relative_to(installed.venv)
    assert record["status"] == "complete" and record["results"]


def check_nvct_run_bochs_skylake_vmlaunch(installed):
    proc = installed.nvct("run", "-p", "bochs-skylake", "--probes", "vmx.vmlaunch.*")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "gate: holds" in proc.stdout and "vmx.vmlaunch." in proc.stdout


def check_pytest_plugin_of_the_install(installed):
    proc = installed.run(str(installed.venv / "bin" / "python"), "-m", "pytest", "--nvct-profile", "qemu-tcg", "-q",
                         "-p", "no:cacheprovider")  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    last = proc.stdout.strip().splitlines()[-1]
    assert re.search(r"\b\d+ passed", last) and not re.search(r"\b\d+ (failed|errors?|xpassed)\b", last), last


def test_the_wheel_installed_outside_the_checkout(tmp_path_factory, image):
    """One test, not one per command: under `pytest -n 2` each worker would
    build and install a wheel of its own."""
    need("qemu-system-x86_64", "qemu-system-x86")
    need("bochs", "bochs")
    installed = install(tmp_path_factory)
    check_the_installed_nvct_is_the_wheel_not_the_checkout(installed)
    check_nvct_list_from_an_empty_folder(installed, image)
    check_nvct_profiles_lists_every_shipped_profile(installed)
    check_nvct_coverage_reads_the_shipped_map(installed)
    check_nvct_run_the_default_profile_gate_holds(installed)
    check_nvct_run_bochs_skylake_vmlaunch(installed)
    check_pytest_plugin_of_the_install(installed)
