#!/usr/bin/env python3
"""Where the time of a multi-level run goes.

    python bench/nested.py [--profiles bochs-kvm-l2] [--out bench/nested.json] [--no-appliance]
    python bench/nested.py --profiles tcg-kvm-l2,tcg-kvm-kvm-l3 --no-appliance --out bench/nested-tcg.json

For each profile, one `nvct run --progress -o FILE` of its whole selection,
timed from outside: the time stamp of every progress line on stderr gives
each level's span (from "booting the probe kernel at Ln" to its last
result) and, for a level whose hypervisor is the Linux/KVM appliance, the
split of its first boot:

- the level below up to the appliance's READY line, and `modprobe` of KVM
  (the `seconds.*` the linux-kvm backend records in the run record);
- the L1 VMM's start: QEMU/KVM in the appliance up to the first result;
- the probes: first result to last.

With Bochs as L0 it also boots the appliance alone, under the same Bochs
settings, with `earlyprintk` on its command line, and splits that boot at
GRUB's "has loaded the files" line and at "Linux version": Bochs's BIOS
and GRUB reading the ISO, the kernel's decompression (and the start of
its setup), Linux's boot to READY.

A run that does not exit 0 leaves its run record in bench/failed-runs/
(--keep), so that what went wrong can be read.

Not a test: nothing here asserts a time. docs/performance.md keeps the
latest figures. Figures are wall seconds on whatever else the machine is
doing (the load average is recorded).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from conformance.appliances import linux as appliance
from conformance.backends.base import Payload
from conformance.backends.bochs import BochsBackend
from conformance.backends.linux_kvm import APPEND
from conformance.backends.transports import ConsoleTimeout
from conformance.core.profile import load_profile, resolve_profile

BOOTING = re.compile(r"booting the probe kernel at L(\d+)")
RESULT = re.compile(r"^\[\d+/\d+\] L(\d+) \S+ \S+")


def run_split(profile: Path, work: Path, keep: Path | None = None) -> dict:
    record = work / f"{profile.stem}.json"
    argv = [sys.executable, "-m", "conformance", "run", "--profile", str(profile), "--progress",
            "-o", str(record), "--color", "never"]  # fmt: skip
    start = time.perf_counter()
    child = subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert child.stderr is not None
    booted: dict[int, float] = {}
    first: dict[int, float] = {}
    last: dict[int, float] = {}
    for line in child.stderr:
        now = time.perf_counter() - start
        if m := BOOTING.search(line):
            booted.setdefault(int(m.group(1)), now)
        elif m := RESULT.match(line):
            level = int(m.group(1))
            first.setdefault(level, now)
            last[level] = now
    code = child.wait()
    wall = time.perf_counter() - start
    if code != 0 and keep is not None:  # a run that went wrong: its record, to see why
        keep.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(record, keep / f"{profile.stem}-exit{code}-{int(time.time())}.json")
    data = json.loads(record.read_text())
    levels = []
    for lv in data["levels"]:
        n = lv["level"]
        runtime = lv["hypervisor"].get("runtime") or {}
        entry = {"level": n, "boots": lv.get("boots"), "span_s": round(last.get(n, wall) - booted.get(n, 0.0), 1)}
        stalls = [p for p in lv.get("problems", []) if p.startswith("stalled ")]
        if stalls:  # stalls that console input ended (docs/nesting.md, "Stalls")
            entry["stalls"] = stalls
        if "appliance_boot" in runtime:  # guests the level's last appliance ran (the rest: appliances booted again)
            entry["guests_on_last_appliance"] = runtime["appliance_boot"]
        if n in booted and n in first:
            to_first = first[n] - booted[n]
            entry["boot_to_first_result_s"] = round(to_first, 1)
            entry["probes_s"] = round(last[n] - first[n], 1)
            if "seconds.appliance_ready" in runtime:
                ready, kvm = runtime["seconds.appliance_ready"], runtime.get("seconds.kvm_loaded", 0.0)
                entry["appliance_ready_s"] = ready
                entry["kvm_loaded_s"] = kvm
                entry["vmm_start_s"] = round(to_first - ready - kvm, 1)
        levels.append(entry)
    return {"profile": _shown(profile), "exit": code, "wall_s": round(wall, 1), "levels": levels,
            "loadavg_after": [round(x, 2) for x in os.getloadavg()]}  # fmt: skip


def _shown(profile: Path) -> str:
    """The profile as the results file names it: relative to the checkout."""
    try:
        return str(profile.resolve().relative_to(ROOT))
    except ValueError:
        return str(profile)


def appliance_split(profile: Path, work: Path) -> dict | None:
    """The Bochs level's boot of the appliance alone, split by earlyprintk."""
    prof = load_profile(profile)
    spec = prof.stack[0]
    if spec.backend != "bochs":
        return None
    app = appliance.build()
    backend = BochsBackend(spec.settings, 0)
    append = APPEND.replace("quiet loglevel=1", "loglevel=6") + " earlyprintk=serial,ttyS0,115200"
    payload = Payload(kernel=app.kernel, append=append,
                      initrds=(app.initramfs,), probe=False, bzimage=app.bzimage)  # fmt: skip
    marks: dict[str, float] = {}
    start = time.perf_counter()
    with backend.boot_payload(payload, work) as console:
        while time.perf_counter() - start < 900:
            try:
                line = console.readline(10)
            except ConsoleTimeout:
                continue
            if line is None:
                break
            now = round(time.perf_counter() - start, 1)
            if "Booting" in line:
                marks.setdefault("grub_menu_s", now)
            elif "GRUB has loaded" in line:
                marks.setdefault("grub_loaded_s", now)
            elif "Decompressing" in line or "KASLR" in line:
                marks.setdefault("decompressor_s", now)
            elif "Linux version" in line:
                marks.setdefault("linux_version_s", now)
            elif appliance.READY in line:
                marks["ready_s"] = now
                break
    if {"grub_loaded_s", "linux_version_s", "ready_s"} <= marks.keys():
        marks["bios_grub_s"] = marks["grub_loaded_s"]
        marks["decompress_s"] = round(marks["linux_version_s"] - marks["grub_loaded_s"], 1)
        marks["linux_boot_s"] = round(marks["ready_s"] - marks["linux_version_s"], 1)
    return marks


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profiles", default="bochs-kvm-l2", help="comma-separated profile names or files")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "nested.json")
    ap.add_argument("--no-appliance", action="store_true", help="leave out the appliance-alone boot")
    ap.add_argument("--appliance-only", action="store_true", help="only the appliance-alone boot")
    ap.add_argument("--keep", type=Path, default=ROOT / "bench" / "failed-runs",
                    help="where the run record of a run that did not exit 0 is copied")  # fmt: skip
    args = ap.parse_args(argv)
    report = {"loadavg_before": [round(x, 2) for x in os.getloadavg()], "runs": []}
    for name in args.profiles.split(","):
        profile = Path(resolve_profile(name))
        with tempfile.TemporaryDirectory(prefix="nvct-bench-") as tmp:
            entry = {"profile": _shown(profile)} if args.appliance_only else run_split(profile, Path(tmp), args.keep)
            if not args.no_appliance:
                entry["appliance_alone"] = appliance_split(profile, Path(tmp))
        report["runs"].append(entry)
        print(json.dumps(entry, indent=1))
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
