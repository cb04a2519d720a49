"""Where a profile named on the command line comes from: a path, the user's
folder ($XDG_CONFIG_HOME/nvct/profiles, default ~/.config/nvct/profiles),
the shipped profiles; `nvct profiles`; and the hostile cases of each."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import PROFILES, nvct

from conformance.core.profile import (
    PATH,
    SHIPPED,
    USER,
    ProfileError,
    find_profile,
    list_profiles,
    load_profile,
    user_profiles_dir,
)

SHIPPED_NAMES = sorted(p.stem for p in PROFILES.glob("*.yaml"))


@pytest.fixture
def config(tmp_path, monkeypatch):
    """An XDG_CONFIG_HOME of the test's own, and its (empty) profiles folder."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    folder = tmp_path / "config" / "nvct" / "profiles"
    folder.mkdir(parents=True)
    return folder


def _env(folder: Path) -> dict[str, str]:
    return {"XDG_CONFIG_HOME": str(folder.parent.parent)}


def _one_error_line(proc, *needles: str) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    for needle in needles:
        assert needle in line, line
    return line


def test_a_name_is_shipped_a_path_is_a_path(config, tmp_path, monkeypatch):
    assert find_profile(None) == (PROFILES / "qemu-tcg.yaml", SHIPPED)
    assert find_profile("bochs-skylake") == (PROFILES / "bochs-skylake.yaml", SHIPPED)
    monkeypatch.chdir(tmp_path)  # no qemu-tcg.yaml here: the name with its suffix is the shipped one
    assert find_profile("qemu-tcg.yaml") == (PROFILES / "qemu-tcg.yaml", SHIPPED)
    assert find_profile(str(PROFILES / "qemu-tcg.yaml")) == (PROFILES / "qemu-tcg.yaml", PATH)
    (tmp_path / "qemu-tcg.yaml").write_text("stack: [{backend: qemu}]\n")
    assert find_profile("qemu-tcg.yaml") == (Path("qemu-tcg.yaml"), PATH)  # a file here wins
    assert find_profile("./x.yaml") == (Path("./x.yaml"), PATH)  # loading it says it is missing


def test_the_default_folder_is_under_home(monkeypatch, tmp_path):
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert user_profiles_dir() == (tmp_path / ".config" / "nvct" / "profiles", None)
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/cfg")  # the XDG spec: invalid, ignored
    folder, note = user_profiles_dir()
    assert folder == tmp_path / ".config" / "nvct" / "profiles"
    assert "XDG_CONFIG_HOME=relative/cfg is not an absolute path" in note


def test_a_user_profile_shadows_the_shipped_one_and_can_extend_it(config):
    (config / "qemu-tcg.yaml").write_text("include: qemu-tcg.yaml\ndescription: ours, with our QEMU\n")
    (config / "mine.yml").write_text("include: qemu-tcg.yaml\nprobes: cpu.*\n")
    path, origin = find_profile("qemu-tcg")
    assert (path, origin) == (config / "qemu-tcg.yaml", USER)
    ours = load_profile(path)
    shipped = load_profile(PROFILES / "qemu-tcg.yaml")
    assert ours.description == "ours, with our QEMU"
    assert ours.stack == shipped.stack and ours.expect == shipped.expect  # the include named the shipped one
    mine = load_profile(find_profile("mine")[0])  # beside it: the user's qemu-tcg, which is the shipped one
    assert mine.description == "ours, with our QEMU" and mine.probes == ("cpu.*",)

    entries, notes = list_profiles()
    assert notes == []
    by = {(e.name, e.origin): e for e in entries}
    assert by[("qemu-tcg", SHIPPED)].shadowed_by == config / "qemu-tcg.yaml"
    assert by[("qemu-tcg", USER)].shadows == PROFILES / "qemu-tcg.yaml"
    assert by[("mine", USER)].shadows is None
    assert [e.name for e in entries if e.origin == SHIPPED] == SHIPPED_NAMES


def test_nvct_profiles_lists_each_with_its_description_and_origin(config):
    (config / "qemu-tcg.yaml").write_text("include: qemu-tcg.yaml\ndescription: ours\n")
    proc = nvct("profiles", env=_env(config))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == len(SHIPPED_NAMES) + 1
    shipped = next(line for line in lines if line.startswith("qemu-tcg ") and "shipped" in line)
    assert "(shadowed by the user's)" in shipped and "QEMU TCG" in shipped
    assert lines[-1].split()[:2] == ["qemu-tcg", "user"] and lines[-1].endswith("  ours")
    assert "(shadows the shipped one)" in lines[-1]
    assert f"user:    {config}" in proc.stderr
    data = json.loads(nvct("profiles", "--json", env=_env(config)).stdout)
    assert [(e["name"], e["origin"]) for e in data][-1] == ("qemu-tcg", "user")
    assert all(e["description"] and e["error"] is None for e in data)
    one = nvct("profiles", "--json", str(PROFILES / "esxi.yaml"), "qemu-tcg", env=_env(config))
    assert [(e["origin"], e["path"]) for e in json.loads(one.stdout)] == [
        ("path", str(PROFILES / "esxi.yaml")),
        ("user", str(config / "qemu-tcg.yaml")),
    ]


@pytest.mark.boot
def test_nvct_run_takes_a_user_profile_by_name(config, tmp_path):
    (config / "mine.yaml").write_text("include: qemu-tcg.yaml\ndescription: mine\nprobes: cpu.cpuid.basic\n")
    out = tmp_path / "r.json"
    proc = nvct("run", "-p", "mine", "--json", str(out), env=_env(config))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    record = json.loads(out.read_text())
    assert record["profile"]["path"] == str(config / "mine.yaml")
    assert [(r["probe"], r["verdict"]) for r in record["results"]] == [("cpu.cpuid.basic", "PASS")]


def test_a_broken_user_profile_is_named_and_the_others_listed(config):
    (config / "broken.yaml").write_text("stack: [\n")
    (config / "nostack.yaml").write_text("description: no stack\n")
    os.mkfifo(config / "fifo.yaml")  # never opened: listing must not block on it
    (config / "dir.yaml").mkdir()
    proc = nvct("profiles", env=_env(config), timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    rows = {line.split()[0]: line for line in proc.stdout.splitlines()}
    assert set(SHIPPED_NAMES) <= set(rows)
    assert f"error: {config / 'broken.yaml'}:2: not valid YAML" in rows["broken"]
    assert f"error: {config / 'nostack.yaml'}:1: missing key: stack" in rows["nostack"]
    assert "not a regular file (a FIFO)" in rows["fifo"] and "not a regular file (a directory)" in rows["dir"]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("nvct: error: ")]
    assert len(errors) == 4
    line = _one_error_line(nvct("run", "-p", "broken", env=_env(config)), f"{config / 'broken.yaml'}:2: not valid YAML")
    assert line.startswith("nvct: error: ")
    _one_error_line(nvct("run", "-p", "fifo", env=_env(config), timeout=120), "fifo.yaml", "a FIFO")


def _as_a_user(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """nvct as a user to whom file modes apply: this one, or nobody when
    the tests run as root (setpriv, util-linux), since root reads any file."""
    prefix = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("root reads any file, and setpriv (Debian package util-linux) is not there to drop that")
        prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    return subprocess.run([*prefix, sys.executable, "-m", "conformance", *args], capture_output=True, text=True,
                          timeout=600, cwd="/", env={**os.environ, **env})  # fmt: skip


def test_an_unreadable_user_profile_and_folder():
    top = Path(tempfile.mkdtemp(prefix="nvct-modes-"))  # not under pytest's folder: nobody may not enter that
    try:
        top.chmod(0o755)
        folder = top / "nvct" / "profiles"
        folder.mkdir(parents=True)
        (folder / "secret.yaml").write_text("stack: [{backend: qemu}]\n")
        (folder / "secret.yaml").chmod(0)
        env = {"XDG_CONFIG_HOME": str(top)}
        _one_error_line(
            _as_a_user("run", "-p", "secret", env=env), f"{folder / 'secret.yaml'}: cannot read: Permission denied"
        )
        rows = _as_a_user("profiles", env=env)
        assert rows.returncode == 1, rows.stdout + rows.stderr
        row = next(line.split(None, 2) for line in rows.stdout.splitlines() if line.startswith("secret "))
        assert row == ["secret", "user", f"error: {folder / 'secret.yaml'}: cannot read: Permission denied"]
        folder.chmod(0o700)  # the folder itself: it cannot be searched
        _one_error_line(_as_a_user("run", "-p", "qemu-tcg", env=env),
                        f"{folder / 'qemu-tcg.yaml'}: cannot look for a profile there: Permission denied")  # fmt: skip
        rows = _as_a_user("profiles", env=env)
        assert rows.returncode == 0 and len(rows.stdout.splitlines()) == len(SHIPPED_NAMES)
        assert f"nvct: warning: {folder}: cannot list the profiles there: Permission denied" in rows.stderr
    finally:
        shutil.rmtree(top)


def test_a_bad_xdg_config_home(tmp_path):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    env = {"XDG_CONFIG_HOME": str(not_a_folder)}
    _one_error_line(nvct("run", "-p", "qemu-tcg", env=env), f"{not_a_folder}/nvct/profiles/qemu-tcg.yaml",
                    "Not a directory")  # fmt: skip
    listing = nvct("profiles", env=env)
    assert listing.returncode == 0, listing.stderr  # the shipped ones, and a warning naming the folder
    assert len(listing.stdout.splitlines()) == len(SHIPPED_NAMES)
    assert f"nvct: warning: {not_a_folder}/nvct/profiles: cannot list the profiles there: Not a directory" in (
        listing.stderr
    )
    relative = nvct("profiles", env={"XDG_CONFIG_HOME": "cfg", "HOME": str(tmp_path)})
    assert relative.returncode == 0 and "XDG_CONFIG_HOME=cfg is not an absolute path: ignored" in relative.stderr
    assert f"user:    {tmp_path}/.config/nvct/profiles" in relative.stderr


def test_no_such_profile(config):
    line = _one_error_line(nvct("run", "-p", "nosuch", env=_env(config)), "nosuch: no such profile file")
    assert str(config) in line and "`nvct profiles` lists them" in line
    _one_error_line(nvct("profiles", "nosuch", env=_env(config)), "nosuch: no such profile file")
    with pytest.raises(ProfileError, match="not a profile name or file"):
        find_profile("\x1b[31m")
