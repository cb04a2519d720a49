"""The `nvct` command line."""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from . import __version__, host
from .appliances import linux as appliance
from .backends import BackendUnavailable
from .core.catalog import CatalogError, Probe, SelectionError, select, split_globs
from .core.kernel import BuildError, GuestImage, build
from .core.outputs import OutputError, write_text
from .core.outputs import check as check_outputs
from .core.printable import one_line
from .core.profile import (
    DEFAULT_PROFILE,
    MAX_SECONDS,
    ProfileError,
    list_profiles,
    load_profile,
    profiles_dir,
    resolve_profile,
    user_profiles_dir,
)
from .core.results import ProbeResult
from .core.runrecord import RunRecord, RunRecordError, now, read_runs, write_runs
from .gate import compare
from .gate.expect import Expectations, apply, known_to_break, unmatched
from .reports import html as html_report
from .reports import junit as junit_report
from .reports import markdown as markdown_report
from .reports import tap as tap_report
from .reports import text as text_report
from .run.runner import CMDLINE_BUDGET, RunOptions, run_levels, selection_map
from .run.stack import build_stack, release_stack

EXIT_OK, EXIT_BAD, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad input from the user: exit 2, nothing was run."""


def _load(path: Path | str):
    try:
        return load_profile(path)
    except ProfileError as exc:
        raise UsageError(str(exc)) from None


def _resolve(name: str | None) -> Path:
    """A profile name or path (--profile) as a file: shipped, user's, or the path."""
    try:
        return resolve_profile(name)
    except ProfileError as exc:
        raise UsageError(str(exc)) from None


def _runs(paths: list[Path]) -> list[RunRecord]:
    runs: list[RunRecord] = []
    for path in paths:
        try:
            runs += read_runs(path)
        except RunRecordError as exc:
            raise UsageError(str(exc)) from None
    return runs


def _write(path: Path, text: str, option: str | None = None) -> None:
    """A report: a file replaced atomically (a reader never sees half of
    it), a FIFO or device written as a stream (conformance/core/outputs.py)."""
    try:
        write_text(path, text, option)
    except OutputError as exc:
        raise UsageError(str(exc)) from None


def _rescue(record: RunRecord) -> str:
    """Keep a run record whose --json could not be written: in a new file
    in the temporary folder, else on standard error. Says where it went."""
    import tempfile

    text = json.dumps(record.to_dict(), indent=1) + "\n"
    try:
        fd, name = tempfile.mkstemp(prefix="nvct-run-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
        except OSError:
            os.unlink(name)
            raise
        return f"nvct: the run record is in {name}; `nvct report {name}` makes every report from it"
    except OSError:
        sys.stderr.write(text)
        return "nvct: the run record is above, on standard error"


# Report formats: name -> renderer of a list of runs (text is rendered apart: colour, width).
FORMATS = {
    "junit": junit_report.render_runs,
    "tap": tap_report.render_runs,
    "markdown": markdown_report.render_runs,
    "html": html_report.render_runs,
}


def _gate_code(runs: list[RunRecord]) -> int:
    return EXIT_OK if all(r.gate is not None and r.gate.holds for r in runs) else EXIT_BAD


def _colour(choice: str, stream) -> bool:
    if choice == "always":
        return True
    if choice == "never" or os.environ.get("NO_COLOR"):
        return False
    return stream.isatty() and os.environ.get("TERM") != "dumb"


def _image() -> GuestImage:
    try:
        return build()
    except BuildError as exc:
        raise UsageError(f"cannot build the probe kernel: {exc}") from None


def _catalog(image: GuestImage) -> list[Probe]:
    try:
        return image.catalog()
    except CatalogError as exc:
        raise UsageError(str(exc)) from None


# ---- nvct list ------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    probes = _catalog(_image())
    try:
        globs = split_globs(args.globs) if args.globs else []
    except SelectionError as exc:
        raise UsageError(str(exc)) from None
    chosen = select(probes, globs) if globs else [p for p in probes if args.all or not p.hidden]
    if args.json:
        json.dump([p.as_dict() for p in chosen], sys.stdout, indent=1)
        sys.stdout.write("\n")
        return EXIT_OK
    if not chosen:
        print(f"no probe matches {','.join(globs)}", file=sys.stderr)
        return EXIT_USAGE
    width = max(len(p.id) for p in chosen)
    fwidth = max(len(p.feature) for p in chosen)
    for p in chosen:
        print(f"{p.id:<{width}}  {p.feature:<{fwidth}}  {p.description}  [{p.reference}]")
    print(f"{len(chosen)} probes", file=sys.stderr)
    return EXIT_OK


# ---- nvct coverage ----------------------------------------------------------------


def cmd_coverage(args: argparse.Namespace) -> int:
    from .core import requirements as req

    try:
        rmap = req.load_map(args.requirements)
    except req.RequirementError as exc:
        raise UsageError(str(exc)) from None
    cov = req.coverage(rmap, _catalog(_image()))
    verdicts = {}
    for run in _runs(args.record or []):
        verdicts[run.label] = req.requirement_verdicts(run.catalog, run.results)
    if args.json:
        data = cov.as_dict()
        if verdicts:
            data["runs"] = {
                label: {f"L{lv}": states for lv, states in levels.items()} for label, levels in verdicts.items()
            }
        json.dump(data, sys.stdout, indent=1)
        sys.stdout.write("\n")
    elif args.markdown:
        sys.stdout.write(req.render_markdown(cov, verdicts))
    else:
        sys.stdout.write(req.render_text(cov, verdicts))
    for problem in cov.problems:
        print(f"nvct coverage: {problem}", file=sys.stderr)
    return EXIT_BAD if cov.problems else EXIT_OK


# ---- nvct docs -------------------------------------------------------------------------


def cmd_docs(args: argparse.Namespace) -> int:
    from .core import requirements as req
    from .reports import probedocs

    root = Path(__file__).resolve().parent.parent
    docs = args.docs or root / "docs" / "probes"
    try:
        rmap = req.load_map(args.requirements)
    except req.RequirementError as exc:
        raise UsageError(str(exc)) from None
    runs = _runs(sorted((docs / "runs").glob("*.json")))
    for arch in probedocs.ARCHES:
        for part in ("intro.md", "deviations.md"):
            if not (docs / arch / part).is_file():
                raise UsageError(f"{docs / arch / part}: missing (the hand-written part of {arch}.md)")
    pages = probedocs.render_all(_catalog(_image()), rmap, runs, docs)
    stale = [path for path, text in pages.items() if not path.is_file() or path.read_text() != text]
    if args.check:
        for path in stale:
            print(f"nvct docs: {path} is stale: run `nvct docs` and commit it", file=sys.stderr)
        return EXIT_BAD if stale else EXIT_OK
    for path in stale:
        _write(path, pages[path])
        print(f"wrote {path}", file=sys.stderr)
    return EXIT_OK


# ---- nvct profiles ------------------------------------------------------------------


def cmd_profiles(args: argparse.Namespace) -> int:
    try:
        entries, notes = list_profiles(args.profiles)
    except ProfileError as exc:
        raise UsageError(str(exc)) from None
    for note in notes:
        print(f"nvct: warning: {note}", file=sys.stderr)
    if args.json:
        json.dump([e.as_dict() for e in entries], sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        origins = [
            e.origin
            + (" (shadowed by the user's)" if e.shadowed_by else " (shadows the shipped one)" if e.shadows else "")
            for e in entries
        ]
        width = max((len(one_line(e.name)) for e in entries), default=0)
        owidth = max((len(o) for o in origins), default=0)
        for e, origin in zip(entries, origins):
            what = f"error: {e.error}" if e.error else e.description or "(no description)"
            print(f"{one_line(e.name):<{width}}  {origin:<{owidth}}  {one_line(what)}")
        if not args.profiles:
            user, _ = user_profiles_dir()
            print(f"shipped: {profiles_dir()}", file=sys.stderr)
            print(f"user:    {user if user else '(no home folder)'}", file=sys.stderr)
    for e in entries:
        if e.error:
            print(f"nvct: error: {one_line(e.error)}", file=sys.stderr)
    return EXIT_BAD if any(e.error for e in entries) else EXIT_OK


# ---- nvct build -------------------------------------------------------------------


def cmd_build(args: argparse.Namespace) -> int:
    image = _image()
    probes = _catalog(image)
    print(f"{image.elf}: {len(probes)} probes ({sum(p.hidden for p in probes)} hidden)")
    return EXIT_OK


# ---- nvct run ------------------------------------------------------------------------


class Progress:
    """One line per result on stderr, while the run goes on."""

    def __init__(self, total: int, enabled: bool, colour: bool):
        self.total, self.enabled, self.colour, self.done = total, enabled, colour, 0

    def result(self, result: ProbeResult) -> None:
        self.done += 1
        if self.enabled:
            verdict = text_report.paint(result.verdict.value, result.verdict, self.colour)
            print(f"[{self.done:>{len(str(self.total))}}/{self.total}] L{result.level} {result.probe} {verdict}",
                  file=sys.stderr, flush=True)  # fmt: skip

    def boot(self, level: int, number: int, cmdline: str) -> None:
        if number > 1:
            self.say(f"L{level}: boot {number} ({cmdline})")

    def say(self, text: str) -> None:
        if self.enabled:
            print(text, file=sys.stderr, flush=True)


WORK_SPACE = 32 << 20  # what one boot's folder may need: a GRUB ISO is about 9 MiB, GRUB's scratch as much


def _workroot() -> Path:
    """Where the boots' private folders go: $TMPDIR (not Python's silent
    fallback to /tmp when it is unusable), checked before anything boots,
    so that a full, missing or read-only one is one line and exit 2."""
    where = os.environ.get("TMPDIR") or ""
    try:
        where = where or tempfile.gettempdir()
        with tempfile.TemporaryDirectory(prefix="nvct-check-", dir=where) as tmp:
            with open(os.path.join(tmp, "space"), "wb") as out:
                out.write(bytes(1 << 20))
                out.flush()
                os.fsync(out.fileno())
            free = os.statvfs(tmp)
    except OSError as exc:
        raise UsageError(f"TMPDIR {where}: cannot make the boots' folders there: {exc.strerror or exc}") from None
    if free.f_bavail * free.f_frsize < WORK_SPACE:
        raise UsageError(f"TMPDIR {where}: {free.f_bavail * free.f_frsize >> 20} MiB free, "
                         f"a boot may need {WORK_SPACE >> 20} MiB there")  # fmt: skip
    return Path(where)


def _sigterm(signum, frame):  # pragma: no cover - exercised by the robustness tests
    raise KeyboardInterrupt


def _level_of(item) -> int:
    return item.level


def cmd_run(args: argparse.Namespace) -> int:
    path = _resolve(args.profile)
    profile = _load(path)
    expectations = Expectations.of_profile(profile)
    try:
        # `--probes ''` is a selection too (of nothing: an error), not a request for the default one.
        globs = tuple(split_globs(args.probes)) if args.probes is not None else profile.probes
    except SelectionError as exc:
        raise UsageError(str(exc)) from None
    # Every output checked before the first boot: writable, and no two the same file.
    try:
        targets = check_outputs([(f"--{o}", getattr(args, o)) for o in ("json", *FORMATS) if getattr(args, o)])
    except OutputError as exc:
        raise UsageError(str(exc)) from None
    json_stream = bool(args.json) and targets[0].stream  # written once, at the end
    image = _image()
    catalog = _catalog(image)
    selected = select(catalog, list(globs))
    if not selected:
        raise UsageError(f"no probe matches {','.join(globs)!r} (`nvct list` shows the probe ids)")
    if len("sel=" + selection_map(catalog, [])) > CMDLINE_BUDGET:  # how a long selection reaches the kernel
        raise UsageError(f"{image.elf}: {len(catalog)} probes are more than a boot's command line can select")
    for rule in unmatched(profile.expect or (), [p.id for p in catalog]):
        print(f"nvct: warning: {rule.where()}: expect: {rule.probes!r} matches no probe of the catalogue",
              file=sys.stderr)  # fmt: skip
    levels = build_stack(profile)
    for level in levels:
        try:
            level.backend.preflight()
        except BackendUnavailable as exc:
            raise UsageError(f"{path}: stack L{level.number - 1} ({level.backend.name}): {exc}") from None

    options = RunOptions(
        globs=globs,
        boot_timeout=args.boot_timeout or profile.timeouts.boot,
        probe_timeout=args.timeout or profile.timeouts.probe,
        jobs=args.jobs,
        workroot=_workroot(),
    )
    record = RunRecord(
        profile={"name": profile.name, "path": str(path), "description": profile.description},
        selection=list(globs),
        catalog=[p.as_dict() for p in selected],
    )
    colour = _colour(args.color, sys.stdout)
    progress_on = args.progress if args.progress is not None else sys.stderr.isatty()
    progress = Progress(len(selected) * len(levels), progress_on, _colour(args.color, sys.stderr))

    lost: list[OutputError] = []  # the last failed write of the record, while it fails

    def save(final: bool = False) -> None:
        apply(record, expectations)
        if not args.json or (json_stream and not final):
            return
        try:
            record.write(args.json, pretty=final, option="--json")
            lost.clear()
        except OutputError as exc:
            if not lost and not final:
                print(f"nvct: warning: {exc}; the results are kept and written at the end", file=sys.stderr)
            lost[:] = [exc]

    def on_result(result: ProbeResult) -> None:
        record.results.append(result)
        progress.result(result)
        save()

    progress.say(f"nvct {__version__}: profile {profile.name} ({path}), {len(selected)} probes")
    save()  # the record exists (status running) before the first boot: a SIGKILL leaves it
    if lost:
        raise UsageError(str(lost[0]))
    previous = signal.signal(signal.SIGTERM, _sigterm)
    try:
        for level in levels:
            progress.say(f"L{level.number - 1} {level.backend.name} {level.backend.version()}: "
                         f"booting the probe kernel at L{level.number}")  # fmt: skip
        # The levels side by side; the record ends up as a sequential run's:
        # the levels in order, each level's results in the order they came.
        run_levels(levels, image, selected, options, on_result, on_boot=progress.boot,
                   on_start=lambda info: (record.levels.append(info), record.levels.sort(key=_level_of)),
                   select_for=lambda n: known_to_break(selected, expectations, n))  # fmt: skip
        record.status = "complete"
    except KeyboardInterrupt:
        record.status = "interrupted"
        done = {(r.probe, r.level) for r in record.results}
        record.not_run = [
            {"probe": p.id, "level": level.number}
            for level in levels
            for p in selected
            if (p.id, level.number) not in done
        ]
    finally:
        release_stack(levels)
        signal.signal(signal.SIGTERM, previous)
        record.results.sort(key=_level_of)  # stable: each level's results in the order they came
        record.finished = now()
        save(final=True)
    width = shutil.get_terminal_size().columns if sys.stdout.isatty() else None
    sys.stdout.write(text_report.render(record, colour=colour, width=width))
    sys.stdout.flush()
    # The summary is out; a report that cannot be written now costs only itself.
    failed = [str(exc) for exc in lost]
    for name, render in FORMATS.items():
        target = getattr(args, name)
        if target:
            try:
                _write(target, render([record]), f"--{name}")
            except UsageError as exc:
                failed.append(str(exc))
    if failed:
        for problem in failed:
            print(f"nvct: error: {problem}", file=sys.stderr)
        if args.json and not lost:
            print(f"nvct: the run record {args.json} holds every result; `nvct report` writes the reports from it",
                  file=sys.stderr)  # fmt: skip
        else:
            print(_rescue(record), file=sys.stderr)
        return EXIT_USAGE
    if record.status == "interrupted":
        return 130
    return _gate_code([record])


# ---- nvct host, nvct appliance ---------------------------------------------------------


def cmd_host(args: argparse.Namespace) -> int:
    checks = host.run_checks()
    if args.json:
        json.dump([{"check": c.name, "status": c.status.value, "message": c.message, "hint": c.hint} for c in checks],
                  sys.stdout, indent=1)  # fmt: skip
        sys.stdout.write("\n")
    else:
        sys.stdout.write(host.render(checks, colour=_colour(args.color, sys.stdout)))
    return EXIT_BAD if any(c.status is host.Status.FAIL for c in checks) else EXIT_OK


def cmd_appliance(args: argparse.Namespace) -> int:
    try:
        built = appliance.build(progress=lambda text: print(text, file=sys.stderr, flush=True))
    except appliance.ApplianceError as exc:
        raise UsageError(f"cannot build the appliance: {exc}") from None
    m = built.manifest
    print(f"{built.root}: Linux {m['kernel_version']} ({built.kernel.name}, "
          f"{built.initramfs.stat().st_size // (1 << 20)} MiB initramfs), {m['qemu']}")  # fmt: skip
    return EXIT_OK


# ---- nvct report, diff, merge, baseline ----------------------------------------------


def cmd_report(args: argparse.Namespace) -> int:
    runs = _runs(args.records)
    if args.profile:
        profile = _load(_resolve(args.profile))
        expectations = Expectations.of_profile(profile)
        for run in runs:
            apply(run, expectations)
    if args.format == "text":
        out = args.output
        colour = _colour(args.color, sys.stdout) if out is None else args.color == "always"
        width = shutil.get_terminal_size().columns if out is None and sys.stdout.isatty() else None
        text = text_report.render_runs(runs, colour=colour, width=width)
    elif args.format == "json":
        text = json.dumps(runs[0].to_dict() if len(runs) == 1 else {"schema": "nvct-runs/1",
                          "runs": [r.to_dict() for r in runs]}, indent=1) + "\n"  # fmt: skip
    else:
        text = FORMATS[args.format](runs)
    if args.output:
        _write(args.output, text, "--output")
    else:
        sys.stdout.write(text)
    return _gate_code(runs)


def cmd_diff(args: argparse.Namespace) -> int:
    base, new = _runs([args.base]), _runs([args.new])
    result = compare.diff(base, new)
    if args.json:
        json.dump(result.to_dict(), sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(compare.render_diff(result, str(args.base), str(args.new)))
    return EXIT_BAD if result.regressed else EXIT_OK


def cmd_merge(args: argparse.Namespace) -> int:
    runs = _runs(args.records)
    try:
        write_runs(runs, args.output)
    except OutputError as exc:
        raise UsageError(str(exc)) from None
    hosts = len({r.host for r in runs})
    print(f"{args.output}: {len(runs)} runs ({len({r.label for r in runs})} profiles, {hosts} hosts)", file=sys.stderr)
    return EXIT_OK


def cmd_baseline(args: argparse.Namespace) -> int:
    runs = _runs([args.record])
    if len(runs) != 1:
        raise UsageError(f"{args.record}: holds {len(runs)} merged runs; a baseline is made from one run")
    text = compare.render_baseline(runs[0], str(args.record))
    if args.output:
        _write(args.output, text, "--output")
    else:
        sys.stdout.write(text)
    return EXIT_OK


# ---- the parser ------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="nvct",
        description="Conformance tests for nested virtualization: boots probe kernels under a "
        "hypervisor stack and reports which VMX and SVM features behave as the SDM and APM say.",
    )
    top.add_argument("--version", action="version", version=f"nvct {__version__}")
    sub = top.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("run", help="boot the probe kernel under a profile's stack and report")
    p.add_argument(
        "--profile", "-p", help=f"a profile file, or a name (`nvct profiles` lists them; default: {DEFAULT_PROFILE})"
    )
    p.add_argument("--probes", help="probe globs, comma-separated; '-GLOB' excludes (default: the profile's, else all)")
    p.add_argument("--json", type=Path, metavar="FILE", help="write the JSON run record (updated as results arrive)")
    p.add_argument("--junit", type=Path, metavar="FILE", help="write JUnit XML (at the end of the run)")
    p.add_argument("--tap", type=Path, metavar="FILE", help="write TAP version 13")
    p.add_argument("--markdown", type=Path, metavar="FILE", help="write the compatibility matrix in Markdown")
    p.add_argument("--html", type=Path, metavar="FILE", help="write the HTML report (one self-contained file)")
    p.add_argument("--timeout", type=_seconds, metavar="S", help="seconds a probe may run (default: the profile's)")
    p.add_argument("--boot-timeout", type=_seconds, metavar="S", help="seconds until the kernel says HELLO")
    p.add_argument("--color", choices=("auto", "always", "never"), default="auto")
    p.add_argument("--jobs", "-j", type=_jobs, default=1, metavar="N",
                   help="boots of each level side by side, each running every N-th probe (default 1)")  # fmt: skip
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="a line per result on stderr (default: when stderr is a terminal)")  # fmt: skip
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("report", help="a report from run records (exit 1 when the gate fails)")
    p.add_argument("records", nargs="+", type=Path, metavar="RUN.json", help="run records or merged sets")
    p.add_argument("--format", "-f", choices=("text", *FORMATS, "json"), default="text")
    p.add_argument("--output", "-o", type=Path, metavar="FILE", help="write here instead of standard output")
    p.add_argument("--profile", "-p", help="gate with this profile's expect: section instead of the recorded one")
    p.add_argument("--color", choices=("auto", "always", "never"), default="auto")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("diff", help="what changed between two runs (exit 1 when something regressed)")
    p.add_argument("base", type=Path, metavar="BASE.json")
    p.add_argument("new", type=Path, metavar="NEW.json")
    p.add_argument("--json", action="store_true", help="JSON instead of text")
    p.set_defaults(func=cmd_diff)

    p = sub.add_parser("merge", help="combine run records (hosts, stacks) into one set")
    p.add_argument("records", nargs="+", type=Path, metavar="RUN.json")
    p.add_argument("--output", "-o", type=Path, metavar="ALL.json", required=True)
    p.set_defaults(func=cmd_merge)

    p = sub.add_parser("baseline", help="the expect: section a run satisfies, to start a gate")
    p.add_argument("record", type=Path, metavar="RUN.json")
    p.add_argument("--output", "-o", type=Path, metavar="FILE", help="write here instead of standard output")
    p.set_defaults(func=cmd_baseline)

    p = sub.add_parser("list", help="list the probes compiled into the probe kernel")
    p.add_argument("globs", nargs="*", metavar="GLOB", help="select probes as --probes does")
    p.add_argument("--json", action="store_true", help="JSON instead of a table")
    p.add_argument("--all", action="store_true", help="include hidden probes (selftests)")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("coverage", help="how much of the SDM/APM requirement map the probes cover")
    form = p.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="JSON to standard output")
    form.add_argument("--markdown", action="store_true", help="Markdown to standard output")
    p.add_argument("--requirements", type=Path, metavar="DIR", help="the requirement map (default: requirements/)")
    p.add_argument("--record", type=Path, action="append", metavar="RUN.json",
                   help="also say which requirements passed at which level of this run (repeatable)")  # fmt: skip
    p.set_defaults(func=cmd_coverage)

    p = sub.add_parser("docs", help="generate docs/probes/svm.md and vmx.md (catalogue, requirements, recorded runs)")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 when a page is stale")
    p.add_argument("--docs", type=Path, metavar="DIR", help="the pages' folder (default: docs/probes)")
    p.add_argument("--requirements", type=Path, metavar="DIR", help="the requirement map (default: requirements/)")
    p.set_defaults(func=cmd_docs)

    p = sub.add_parser("host", help="check this machine for nested virtualization (virt-host-validate style)")
    p.add_argument("--color", choices=("auto", "always", "never"), default="auto")
    p.add_argument("--json", action="store_true", help="JSON instead of lines")
    p.set_defaults(func=cmd_host)

    p = sub.add_parser("appliance", help="the Linux/KVM appliance that multi-level stacks boot")
    p.add_argument("action", choices=("build", "show"), help="build it (cached by content) or show the cached one")
    p.set_defaults(func=cmd_appliance)

    p = sub.add_parser("profiles", help="list the profiles: shipped, the user's, or the ones named (exit 1: one is broken)",
                       description="The profiles --profile can name, each with its description and where it "
                       "comes from: shipped with nvct, or the user's, in $XDG_CONFIG_HOME/nvct/profiles (default "
                       "~/.config/nvct/profiles), which a name looks in first: a user profile shadows a shipped one "
                       "of its name. Exit 0; 1 when a profile listed does not load (its error is shown); 2 when a "
                       "profile named is not found.")  # fmt: skip
    p.add_argument("profiles", nargs="*", metavar="PROFILE", help="names or paths (default: every profile)")
    p.add_argument("--json", action="store_true", help="JSON instead of a table")
    p.set_defaults(func=cmd_profiles)

    p = sub.add_parser("build", help="build the probe kernel (done by run and list as needed)")
    p.set_defaults(func=cmd_build)
    return top


def _jobs(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 64:
        raise argparse.ArgumentTypeError(f"want a whole number from 1 to 64, not {text!r}")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value):  # NaN passes every comparison's test; inf would switch the watchdog off
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds, not {text!r}")
    if not 0 < value <= MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds and at most {MAX_SECONDS:g}, not {text!r}")
    return value


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command is None:
        args = parser().parse_args(["run", *(argv or [])])
    try:
        code = args.func(args)
        sys.stdout.flush()
        return code
    except (UsageError, OutputError) as exc:
        print(f"nvct: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        _drop_stdout()
        return EXIT_OK
    except OSError as exc:  # what is left: standard output failed (a full disk, a closed terminal)
        _drop_stdout()
        where = exc.filename if exc.filename is not None else "standard output"
        print(f"nvct: error: cannot write {where}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE


def _drop_stdout() -> None:
    """Point standard output at /dev/null, so that the flush when Python
    exits does not fail again (and print a traceback of its own)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
