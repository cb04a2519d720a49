"""Shared fixtures. Tests that boot a hypervisor carry the `boot` marker and
skip (saying why) where the hypervisor is not installed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROFILES = ROOT / "profiles"


@pytest.fixture(scope="session", autouse=True)
def _no_user_profiles(tmp_path_factory):
    """Profile names mean the shipped profiles in every test (and in every
    nvct a test starts), whatever the user running them keeps in
    ~/.config/nvct/profiles."""
    saved = os.environ.get("XDG_CONFIG_HOME")
    os.environ["XDG_CONFIG_HOME"] = str(tmp_path_factory.mktemp("xdg-config"))
    yield
    if saved is None:
        os.environ.pop("XDG_CONFIG_HOME", None)
    else:
        os.environ["XDG_CONFIG_HOME"] = saved


@pytest.fixture(scope="session")
def image():
    from conformance.core.kernel import build

    return build()


def need(binary: str, package: str) -> None:
    if shutil.which(binary) is None:
        pytest.skip(f"{binary} not installed (Debian package {package})")


def nvct(*args: str, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the real CLI in a child process, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "conformance", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def run_profile(
    tmp_path: Path, profile: str, *extra: str, timeout: float = 600
) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path / f"{profile}.json"
    proc = nvct("run", "--profile", str(PROFILES / f"{profile}.yaml"), "-o", str(out), *extra, timeout=timeout)
    assert out.exists(), f"no run record; stderr:\n{proc.stderr}\nstdout:\n{proc.stdout}"
    return proc, json.loads(out.read_text())


def verdicts(record: dict, level: int = 1) -> dict[str, str]:
    return {r["probe"]: r["verdict"] for r in record["results"] if r["level"] == level}


class FakeImage:
    """A fake probe image: only the catalogue the runner asks for."""

    def __init__(self, probes: list):
        self.probes = probes

    def catalog(self) -> list:
        return self.probes


class ScriptedConsole:
    """A fake console that plays the lines it was given, then ends."""

    def __init__(self, lines: list):
        self.lines = list(lines)
        self.facts: dict = {}

    def readline(self, timeout: float):
        return self.lines.pop(0) if self.lines else None

    def close(self, grace: float = 0) -> None:
        pass

    def tail(self, count: int = 30) -> list[str]:
        return []

    def describe_end(self) -> str:
        return "the fake kernel stopped"

    def kill(self) -> None:
        pass
