#!/usr/bin/env python3
"""nvct benchmarks: what the harness costs, and how a run scales.

    python bench/bench.py [--profiles qemu-tcg,bochs-skylake] [--repeat 3] [--jobs 1,2,4] [--out bench/results.json]

Measures, in one run, side by side (every figure the median of --repeat
runs, wall time from time.perf_counter around a child process):

- overhead: `nvct run` of a profile against the same probe kernel, with the
  same command line, booted by the bare hypervisor command line the backend
  builds (QemuBackend.argv), read to its END record and its exit. The ratio
  of the two wall times; the goal is 1.10 or less. `nvct run` is timed as a
  user sees it (interpreter start, imports, the `make` check of the kernel,
  the boot, the reports); the in-process time of run_level alone is given
  too. Backends without a single command line (Bochs needs a bochsrc, an
  ISO and a FIFO) have no bare baseline.
- where the overhead goes: the fixed costs of a run, each timed alone
  (the interpreter with nvct's imports, the `make` that finds the kernel
  up to date, `qemu --version`), and `nvct run -o FILE` (the run record), which rewrites the
  whole run record after every result, next to `nvct run` without it.
- per profile: the wall time of the profile's whole selection, the number
  of probes, wall time per probe, the sum of the kernel's own per-probe
  times (duration_s in the run record) and the slowest probes.
- scaling: `nvct run --jobs N` for each N of --jobs, and the speedup over
  --jobs 1; the pytest plugin without and with `-n 2`.
- memory: the peak resident set of the harness process itself
  (getrusage(RUSAGE_SELF).ru_maxrss, read inside the `nvct run` process as
  it exits: the hypervisors are other processes and not in it), and the
  largest hypervisor child (getrusage(RUSAGE_CHILDREN).ru_maxrss there).

Writes a JSON file and prints a short table. Not a test: nothing here
asserts a time. docs/performance.md keeps the latest figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from conformance.backends.base import Payload  # noqa: E402
from conformance.backends.qemu import QemuBackend  # noqa: E402
from conformance.core.catalog import select  # noqa: E402
from conformance.core.kernel import build  # noqa: E402
from conformance.core.profile import (
    load_profile,  # noqa: E402
    resolve_profile,  # noqa: E402
)
from conformance.core.protocol import PREFIX  # noqa: E402
from conformance.run.runner import RunOptions, kernel_cmdline, run_level  # noqa: E402
from conformance.run.stack import build_stack  # noqa: E402

# `nvct run` in a child, reporting its own peak RSS (and its children's) on the way out.
HARNESS = """\
import resource, sys
from conformance.cli import main
try:
    code = main(sys.argv[1:])
finally:
    print("NVCT_BENCH_RSS", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
          resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr, flush=True)
sys.exit(code)
"""


def machine() -> dict:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        mem = Path("/proc/meminfo").read_text().splitlines()[0].split(":", 1)[1].strip()
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "memory": mem,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "kvm": os.path.exists("/dev/kvm"),
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],  # other work on the machine skews every figure
    }


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def timed(argv: list[str], cwd: Path = ROOT, timeout: float = 1800) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    return time.perf_counter() - start, proc


def bare(argv: list[str], timeout: float = 600) -> tuple[float, float]:
    """The hypervisor alone: (seconds to the END record, seconds to its exit)."""
    with tempfile.TemporaryDirectory(prefix="nvct-bench-") as tmp:
        start = time.perf_counter()
        child = subprocess.Popen(argv, cwd=tmp, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL)  # fmt: skip
        end = None
        assert child.stdout is not None
        for raw in child.stdout:
            if PREFIX.encode() in raw and b" END " in raw:
                end = time.perf_counter() - start
                break
        if end is None:
            child.kill()
            raise RuntimeError(f"no END from {' '.join(argv)}")
        child.stdout.read()  # drain to EOF, as the harness does
        child.wait(timeout=timeout)
        return end, time.perf_counter() - start


def nvct_run(profile: Path, jobs: int, record: Path | None) -> tuple[float, dict | None, int, int]:
    """One `nvct run`: wall seconds, the run record (with `record`), peak RSS (KiB) of the harness and of its
    largest child."""
    argv = [sys.executable, "-c", HARNESS, "run", "--profile", str(profile), "--jobs", str(jobs), "--no-progress",
            "--color", "never"]  # fmt: skip
    if record is not None:
        argv += ["-o", str(record)]
    wall, proc = timed(argv)
    rss = [line.split() for line in proc.stderr.splitlines() if line.startswith("NVCT_BENCH_RSS")]
    if not rss or (record is not None and not record.exists()):
        raise RuntimeError(f"nvct run --profile {profile} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return wall, json.loads(record.read_text()) if record else None, int(rss[0][1]), int(rss[0][2])


def in_process(profile_path: Path) -> float:
    """run_level alone, in this process: the harness without interpreter start, imports or reports."""
    profile = load_profile(profile_path)
    image = build()
    selected = select(image.catalog(), list(profile.probes))
    options = RunOptions(globs=profile.probes, boot_timeout=profile.timeouts.boot, probe_timeout=profile.timeouts.probe)
    start = time.perf_counter()
    for level in build_stack(profile):
        run_level(level, image, selected, options)
    return time.perf_counter() - start


def fixed_costs(repeat: int) -> dict:
    """What every `nvct run` pays before its first boot, each part alone."""
    from conformance.core.kernel import guests_dir

    parts = {
        "python_and_imports_s": [sys.executable, "-c", "import conformance.cli"],
        "make_up_to_date_s": ["make", "-s", "-C", str(guests_dir())],
        "qemu_version_s": ["qemu-system-x86_64", "--version"],
    }
    out = {}
    for name, argv in parts.items():
        try:
            out[name] = round(median([timed(argv)[0] for _ in range(repeat)]), 3)
        except OSError:
            out[name] = None
    return out


def bench_profile(name: str, repeat: int, jobs: list[int], pytest_too: bool, work: Path) -> dict:
    path = resolve_profile(name)
    profile = load_profile(path)
    image = build()
    levels = build_stack(profile)
    selected = select(image.catalog(), list(profile.probes))
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    out: dict = {"profile": profile.name, "path": str(shown), "levels": len(levels), "probes": len(selected),
                 "hypervisor": levels[0].backend.describe()}  # fmt: skip
    print(f"{profile.name}: {len(selected)} probes x {len(levels)} level(s), {repeat} runs each", file=sys.stderr)

    # nvct run --jobs N (jobs 1 is also the per-profile figure), without a record;
    # then --jobs 1 with -o FILE, which rewrites the record after every result.
    runs: dict[int, list[float]] = {}
    rss_self, rss_child = [], []
    for n in jobs:
        runs[n] = []
        for _ in range(repeat):
            wall, _, mine, child = nvct_run(path, n, None)
            runs[n].append(wall)
            rss_self.append(mine)
            rss_child.append(child)
        print(f"  nvct run --jobs {n}: {median(runs[n]):.2f} s", file=sys.stderr)
    with_json, record = [], None
    for i in range(repeat):
        wall, record, mine, child = nvct_run(path, jobs[0], work / f"{profile.name}-{i}.json")
        with_json.append(wall)
        rss_self.append(mine)
        rss_child.append(child)
    print(f"  nvct run --jobs {jobs[0]} -o FILE: {median(with_json):.2f} s", file=sys.stderr)
    base = median(runs[jobs[0]])
    out["scaling"] = [{"jobs": n, "wall_s": round(median(v), 3), "runs_s": [round(x, 3) for x in v],
                       "speedup": round(base / median(v), 2)} for n, v in runs.items()]  # fmt: skip
    assert record is not None
    durations = sorted(((r.get("duration_s") or 0.0, f"{r['probe']}[L{r['level']}]") for r in record["results"]),
                       reverse=True)  # fmt: skip
    results = len(record["results"])
    out["catalogue"] = {
        "wall_s": round(base, 3),
        "wall_with_json_s": round(median(with_json), 3),
        "results": results,
        "wall_per_result_ms": round(1000 * base / max(1, results), 2),
        "kernel_probe_time_s": round(sum(d for d, _ in durations), 4),
        "slowest": [{"probe": p, "duration_s": round(d, 4)} for d, p in durations[:5]],
        "boots": sum(level.get("boots", 0) for level in record.get("levels", [])),
    }
    out["memory"] = {
        "harness_peak_rss_kib": max(rss_self),
        "largest_child_peak_rss_kib": max(rss_child),
        "source": "getrusage(RUSAGE_SELF / RUSAGE_CHILDREN).ru_maxrss inside the nvct run process",
    }

    # The bare hypervisor: the same kernel, the same command line, no harness.
    backend = levels[0].backend
    if len(levels) == 1 and isinstance(backend, QemuBackend) and backend.settings.boot_from == "kernel":
        argv = backend.argv(Payload.probe_kernel(image, kernel_cmdline(profile.probes, None)))
        ends, exits = [], []
        for _ in range(repeat):
            end, exit_ = bare(argv)
            ends.append(end)
            exits.append(exit_)
        inproc = [in_process(path) for _ in range(repeat)]
        out["overhead"] = {
            "bare_argv": argv,
            "bare_to_end_s": round(median(ends), 3),
            "bare_to_exit_s": round(median(exits), 3),
            "nvct_run_s": round(base, 3),
            "ratio": round(base / median(exits), 2),
            "run_level_in_process_s": round(median(inproc), 3),
            "ratio_in_process": round(median(inproc) / median(exits), 2),
        }
        print(f"  bare hypervisor: {median(exits):.2f} s; nvct run / bare = {base / median(exits):.2f}; "
              f"run_level in process / bare = {median(inproc) / median(exits):.2f}", file=sys.stderr)  # fmt: skip
    else:
        why = f"no single bare command line for {backend.name} ({len(levels)} level(s))"
        out["overhead"] = {"nvct_run_s": round(base, 3), "ratio": None, "why": why}

    if pytest_too:
        plugin = {}
        for label, extra in (("pytest", []), ("pytest -n 2", ["-n", "2"])):
            walls = []
            for i in range(repeat):
                folder = work / f"pytest-{profile.name}-{len(extra)}-{i}"
                folder.mkdir()
                (folder / "pytest.ini").write_text("[pytest]\n")
                argv = [sys.executable, "-m", "pytest", f"--config-file={folder / 'pytest.ini'}", "-q",
                        "-p", "no:cacheprovider", "--nvct-profile", str(path), *extra]  # fmt: skip
                wall, proc = timed(argv, cwd=folder)
                if proc.returncode not in (0, 1):
                    raise RuntimeError(f"pytest --nvct-profile {path} failed:\n{proc.stdout[-2000:]}")
                walls.append(wall)
            plugin[label] = {"wall_s": round(median(walls), 3), "runs_s": [round(x, 3) for x in walls]}
            print(f"  {label}: {median(walls):.2f} s", file=sys.stderr)
        out["pytest_plugin"] = plugin
    return out


def table(report: dict) -> str:
    lines = [f"nvct benchmark, {report['taken']} on {report['machine']['nproc']} x {report['machine']['cpu']}, "
             f"Linux {report['machine']['kernel']} (median of {report['repeat']}; load average "
             f"{report['machine']['loadavg_before'][0]:.2f} before, {report['machine']['loadavg_after'][0]:.2f} after)",
             ""]  # fmt: skip
    lines.append(f"{'profile':<16} {'probes':>6} {'nvct run':>9} {'-o FILE':>8} {'per probe':>10} {'bare':>7} "
                 f"{'ratio':>6} {'run_level':>9} {'harness RSS':>12}")  # fmt: skip
    for p in report["profiles"]:
        o, c = p["overhead"], p["catalogue"]
        bare_s = f"{o['bare_to_exit_s']:.2f} s" if o.get("ratio") else "-"
        ratio = f"{o['ratio']:.2f}" if o.get("ratio") else "-"
        inproc = f"{o['run_level_in_process_s']:.2f} s" if o.get("ratio") else "-"
        lines.append(f"{p['profile']:<16} {c['results']:>6} {c['wall_s']:>7.2f} s {c['wall_with_json_s']:>6.2f} s "
                     f"{c['wall_per_result_ms']:>7.1f} ms "
                     f"{bare_s:>7} {ratio:>6} {inproc:>9} "
                     f"{p['memory']['harness_peak_rss_kib'] / 1024:>8.1f} MiB")  # fmt: skip
    heads = [f"{'--jobs ' + str(s['jobs']):>16}" for s in report["profiles"][0]["scaling"]]
    lines += ["", f"{'profile':<16} " + " ".join(heads)]
    for p in report["profiles"]:
        cells = [f"{s['wall_s']:>6.2f} s (x{s['speedup']:.2f})" for s in p["scaling"]]
        lines.append(f"{p['profile']:<16} " + " ".join(f"{c:>16}" for c in cells))
    fixed = report.get("fixed_costs", {})
    lines += ["", "fixed costs of a run: " + ", ".join(f"{k[:-2].replace('_', ' ')} {v:.2f} s"
                                                    for k, v in fixed.items() if v is not None)]  # fmt: skip
    if any("pytest_plugin" in p for p in report["profiles"]):
        lines += ["", f"{'profile':<16} {'pytest':>9} {'pytest -n 2':>12}"]
        for p in report["profiles"]:
            if "pytest_plugin" in p:
                pp = p["pytest_plugin"]
                one, two = pp["pytest"]["wall_s"], pp["pytest -n 2"]["wall_s"]
                lines.append(f"{p['profile']:<16} {one:>7.2f} s {two:>10.2f} s")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profiles", default="qemu-tcg,bochs-skylake", help="comma-separated profile names or files")
    ap.add_argument("--repeat", type=int, default=3, help="runs per figure; the median is kept (default 3)")
    ap.add_argument("--jobs", default="1,2,4", help="the --jobs values to compare (default 1,2,4)")
    ap.add_argument("--no-pytest", action="store_true", help="leave out the pytest plugin timings")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results.json")
    args = ap.parse_args(argv)
    jobs = [int(j) for j in args.jobs.split(",")]
    build()  # once, before anything is timed
    report = {"schema": "nvct-bench/1", "taken": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "machine": machine(), "repeat": args.repeat, "profiles": []}  # fmt: skip
    report["fixed_costs"] = fixed_costs(max(3, args.repeat))
    with tempfile.TemporaryDirectory(prefix="nvct-bench-") as tmp:
        for name in args.profiles.split(","):
            report["profiles"].append(bench_profile(name, args.repeat, jobs, not args.no_pytest, Path(tmp)))
    report["machine"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    sys.stdout.write(table(report))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
