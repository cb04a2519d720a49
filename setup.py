"""The wheel's build step beyond setuptools' own (pyproject.toml has the rest).

A wheel of nvct is the whole tool: besides the package it carries the
shipped profiles and the probe kernel, built here with `make -C guests`,
in conformance/shipped/ (docs/install.md says why an image and not the
sources). An editable install (./setup) gets neither: it reads guests/ and
profiles/ of the checkout, as before.
"""

import fcntl
import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildPy(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        shipped = Path(self.build_lib) / "conformance" / "shipped"
        shutil.rmtree(shipped, ignore_errors=True)  # nothing left from an earlier build in the same folder
        (shipped / "profiles").mkdir(parents=True)
        for profile in sorted((ROOT / "profiles").glob("*.yaml")):
            shutil.copyfile(profile, shipped / "profiles" / profile.name)
        (shipped / "requirements").mkdir()  # the requirement map, for `nvct coverage`
        for chapter in sorted((ROOT / "requirements").glob("*.yaml")):
            shutil.copyfile(chapter, shipped / "requirements" / chapter.name)
        guests = ROOT / "guests"
        (guests / "build").mkdir(exist_ok=True)
        with open(guests / "build" / ".lock", "w") as lock:  # the lock `nvct build` takes
            fcntl.flock(lock, fcntl.LOCK_EX)
            subprocess.run(["make", "-s", "-C", str(guests)], check=True)
        shutil.copyfile(guests / "build" / "nvct.elf", shipped / "nvct.elf")


setup(cmdclass={"build_py": BuildPy})
