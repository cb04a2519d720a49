"""The house style: what .ci/run checks before the tests, also checked
here so that the README's test command fails on it too."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUFF = Path(sys.executable).parent / "ruff"


def ruff(*args: str) -> subprocess.CompletedProcess:
    binary = str(RUFF) if RUFF.exists() else shutil.which("ruff")
    if binary is None:
        pytest.skip("ruff not found (it comes with the test extra: pip install -e '.[test]')")
    return subprocess.run([binary, *args, "conformance", "tests", "bench"], cwd=ROOT, capture_output=True,
                          text=True, check=False)  # fmt: skip


def test_python_is_formatted():
    proc = ruff("format", "--check")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_python_passes_the_lint():
    proc = ruff("check", "--output-format", "concise")
    assert proc.returncode == 0, proc.stdout + proc.stderr
