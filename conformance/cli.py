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
import threading
from collections import deque
from pathlib import Path
from typing import NoReturn

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
from .core.runrecord import SET_SCHEMA, RunRecord, RunRecordError, json_text, now, read_runs, write_runs
from .gate import compare
from .gate.expect import Expectations, apply, known_to_break, unmatched
from .reports import html as html_report
from .reports import junit as junit_report
from .reports import markdown as markdown_report
from .reports import tap as tap_report
from .reports import text as text_report
from .run.coalesce import Coalescer
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


def _format(args: argparse.Namespace, default: str) -> str:
    """What a command prints: --format, or --json (the same as --format json)."""
    chosen = getattr(args, "format", None)
    if getattr(args, "json", False) is True:
        if chosen not in (None, "json"):
            raise UsageError(f"--json is --format json; it cannot go with --format {chosen}")
        return "json"
    return chosen or default


def _json(data: object) -> str:
    """JSON as every command prints it: indented, UTF-8, a newline at the end."""
    return json_text(data)


def _emit(args: argparse.Namespace, text: str) -> None:
    """A command's output: to -o/--output FILE when given, else standard output."""
    if getattr(args, "output", None) is not None:
        _write(args.output, text, "--output")
    else:
        sys.stdout.write(text)


def _rescue(record: RunRecord) -> str:
    """Keep a run record whose -o/--output file could not be written: in a new file
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
    fmt = _format(args, "text")
    if not chosen:  # the same in every format: nothing on standard output, one line, exit 2
        raise UsageError(f"no probe matches {','.join(globs)!r} (`nvct list --all` shows every probe id)")
    if fmt == "json":
        _emit(args, _json([p.as_dict() for p in chosen]))
        return EXIT_OK
    width = max(len(p.id) for p in chosen)
    fwidth = max(len(p.feature) for p in chosen)
    _emit(args, "".join(f"{p.id:<{width}}  {p.feature:<{fwidth}}  {p.description}  [{p.reference}]\n" for p in chosen))
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
    form = (
        "markdown" if args.markdown and args.format in (None, "markdown") and not args.json else _format(args, "text")
    )
    if args.markdown and form != "markdown":
        raise UsageError(f"--markdown is --format markdown; it cannot go with --format {form}")
    if form == "json":
        data = cov.as_dict()
        if verdicts:
            data["runs"] = {
                label: {f"L{lv}": states for lv, states in levels.items()} for label, levels in verdicts.items()
            }
        _emit(args, _json(data))
    elif form == "markdown":
        _emit(args, req.render_markdown(cov, verdicts))
    else:
        _emit(args, req.render_text(cov, verdicts))
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
        print(f"nvct: warning: {one_line(note)}", file=sys.stderr)
    if _format(args, "text") == "json":
        _emit(args, _json([e.as_dict() for e in entries]))
    else:
        origins = [
            e.origin
            + (" (shadowed by the user's)" if e.shadowed_by else " (shadows the shipped one)" if e.shadows else "")
            for e in entries
        ]
        width = max((len(one_line(e.name)) for e in entries), default=0)
        owidth = max((len(o) for o in origins), default=0)
        lines = []
        for e, origin in zip(entries, origins):
            what = f"error: {e.error}" if e.error else e.description or "(no description)"
            lines.append(f"{one_line(e.name):<{width}}  {origin:<{owidth}}  {one_line(what)}\n")
        _emit(args, "".join(lines))
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
    hidden = sum(p.hidden for p in probes)
    if _format(args, "text") == "json":
        _emit(args, _json({"kernel": str(image.elf), "probes": len(probes), "hidden": hidden}))
    else:
        _emit(args, f"{image.elf}: {len(probes)} probes ({hidden} hidden)\n")
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


DEPRECATED_JSON_FILE = (
    "nvct: warning: `nvct run --json FILE` is deprecated and goes in the next release: "
    "write the run record with `-o FILE` (`--json` alone prints it on standard output)"
)


def _record_file(args: argparse.Namespace) -> tuple[Path | None, str]:
    """The run record's file and the option that named it: -o/--output, or
    the old spelling `--json FILE` (a word after --json can only be a file:
    `run` takes no positional arguments), which still works, with a warning."""
    if isinstance(args.json, str):
        if args.output is not None:
            raise UsageError(f"--json {args.json} and --output {args.output} both name the run record: "
                             f"give -o FILE alone")  # fmt: skip
        print(DEPRECATED_JSON_FILE, file=sys.stderr)
        name, args.json = args.json, False
        return Path(name), "--json"
    return args.output, "--output"


def cmd_run(args: argparse.Namespace) -> int:
    record_path, record_option = _record_file(args)
    fmt = _format(args, "text")
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
        targets = check_outputs([(record_option, record_path)] * (record_path is not None)
                                + [(f"--{o}", getattr(args, o)) for o in FORMATS if getattr(args, o)])  # fmt: skip
    except OutputError as exc:
        raise UsageError(str(exc)) from None
    json_stream = record_path is not None and targets[0].stream  # written once, at the end
    image = _image()
    catalog = _catalog(image)
    selected = select(catalog, list(globs))
    if not selected:
        raise UsageError(f"no probe matches {','.join(globs)!r} (`nvct list` shows the probe ids)")
    if len("sel=" + selection_map(catalog, [])) > CMDLINE_BUDGET:  # how a long selection reaches the kernel
        raise UsageError(f"{image.elf}: {len(catalog)} probes are more than a boot's command line can select")
    for rule in unmatched(profile.expect or (), [p.id for p in catalog]):
        print(f"nvct: warning: {one_line(rule.where())}: expect: {rule.probes!r} matches no probe of the catalogue",
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
        if record_path is None or (json_stream and not final):
            return
        try:
            record.write(record_path, pretty=final, option=record_option)
            lost.clear()
        except OutputError as exc:
            if not lost and not final:
                print(f"nvct: warning: {one_line(exc)}; the results are kept and written at the end", file=sys.stderr)
            lost[:] = [exc]

    # The console readers hand their results over and go on reading; the
    # record is judged and rewritten on a thread of its own (run/coalesce.py).
    pending: deque[ProbeResult] = deque()
    state = threading.Lock()  # the record, between the writer and the levels' threads

    def take_pending() -> None:
        while pending:
            record.results.append(pending.popleft())

    def flush() -> None:
        with state:
            take_pending()
            save()

    def on_result(result: ProbeResult) -> None:
        pending.append(result)
        progress.result(result)
        writer.kick()

    def on_start(info) -> None:
        with state:
            record.levels.append(info)
            record.levels.sort(key=_level_of)

    progress.say(f"nvct {__version__}: profile {profile.name} ({path}), {len(selected)} probes")
    save()  # the record exists (status running) before the first boot: a SIGKILL leaves it
    if lost:
        raise UsageError(str(lost[0]))
    writer = Coalescer(flush, name="nvct-record")
    previous = signal.signal(signal.SIGTERM, _sigterm)
    try:
        for level in levels:
            progress.say(f"L{level.number - 1} {level.backend.name} {level.backend.version()}: "
                         f"booting the probe kernel at L{level.number}")  # fmt: skip
        # The levels side by side; the record ends up as a sequential run's:
        # the levels in order, each level's results in the order they came.
        run_levels(levels, image, selected, options, on_result, on_boot=progress.boot,
                   on_start=on_start,
                   select_for=lambda n: known_to_break(selected, expectations, n))  # fmt: skip
        record.status = "complete"
    except KeyboardInterrupt:
        writer.close()
        take_pending()
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
        writer.close()
        take_pending()
        record.results.sort(key=_level_of)  # stable: each level's results in the order they came
        record.finished = now()
        save(final=True)
    if fmt == "text":
        width = shutil.get_terminal_size().columns if sys.stdout.isatty() else None
        sys.stdout.write(text_report.render(record, colour=colour, width=width))
    elif fmt == "json":
        sys.stdout.write(_json(record.to_dict()))
    else:
        sys.stdout.write(FORMATS[fmt]([record]))
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
            print(f"nvct: error: {one_line(problem)}", file=sys.stderr)
        if record_path is not None and not lost:
            print(f"nvct: the run record {record_path} holds every result; `nvct report` writes the reports from it",
                  file=sys.stderr)  # fmt: skip
        else:
            print(_rescue(record), file=sys.stderr)
        return EXIT_USAGE
    if record.status == "interrupted":
        return 130
    return _gate_code([record])


# ---- nvct host, nvct appliance ---------------------------------------------------------


def cmd_host(args: argparse.Namespace) -> int:
    fmt = _format(args, "text")
    checks = host.run_checks()
    if fmt == "json":
        _emit(args, _json([{"check": c.name, "status": c.status.value, "message": c.message, "hint": c.hint}
                           for c in checks]))  # fmt: skip
    else:
        colour = _colour(args.color, sys.stdout) if args.output is None else args.color == "always"
        _emit(args, host.render(checks, colour=colour))
    return EXIT_BAD if any(c.status is host.Status.FAIL for c in checks) else EXIT_OK


def cmd_appliance(args: argparse.Namespace) -> int:
    try:
        built = appliance.build(progress=lambda text: print(text, file=sys.stderr, flush=True))
    except appliance.ApplianceError as exc:
        raise UsageError(f"cannot build the appliance: {exc}") from None
    m = built.manifest
    if _format(args, "text") == "json":
        _emit(args, _json({"root": str(built.root), "kernel": str(built.kernel), "initramfs": str(built.initramfs),
                           "manifest": m}))  # fmt: skip
        return EXIT_OK
    _emit(args, f"{built.root}: Linux {m['kernel_version']} ({built.kernel.name}, "
          f"{built.initramfs.stat().st_size // (1 << 20)} MiB initramfs), {m['qemu']}\n")  # fmt: skip
    return EXIT_OK


# ---- nvct report, diff, merge, baseline ----------------------------------------------


def cmd_report(args: argparse.Namespace) -> int:
    runs = _runs(args.records)
    if args.profile:
        profile = _load(_resolve(args.profile))
        expectations = Expectations.of_profile(profile)
        for run in runs:
            apply(run, expectations)
    fmt = _format(args, "text")
    if fmt == "text":
        out = args.output
        colour = _colour(args.color, sys.stdout) if out is None else args.color == "always"
        width = shutil.get_terminal_size().columns if out is None and sys.stdout.isatty() else None
        text = text_report.render_runs(runs, colour=colour, width=width)
    elif fmt == "json":  # one shape: a set of runs (as `nvct merge` writes), even of one
        text = _json({"schema": SET_SCHEMA, "runs": [r.to_dict() for r in runs]})
    else:
        text = FORMATS[fmt](runs)
    _emit(args, text)
    return _gate_code(runs)


def cmd_diff(args: argparse.Namespace) -> int:
    base, new = _runs([args.base]), _runs([args.new])
    fmt = _format(args, "text")
    result = compare.diff(base, new)
    if fmt == "json":
        _emit(args, _json(result.to_dict()))
    else:
        _emit(args, compare.render_diff(result, str(args.base), str(args.new)))
    return EXIT_BAD if result.regressed else EXIT_OK


def cmd_merge(args: argparse.Namespace) -> int:
    runs = _runs(args.records)
    if args.output is None:
        sys.stdout.write(_json({"schema": SET_SCHEMA, "runs": [r.to_dict() for r in runs]}))
        return EXIT_OK
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
    if _format(args, "yaml") == "json":
        rules, problems = compare.baseline_rules(runs[0])
        _emit(args, _json({"expect": rules, "not_baselined": problems}))
    else:
        _emit(args, compare.render_baseline(runs[0], str(args.record)))
    return EXIT_OK


# ---- the parser ------------------------------------------------------------------------


# Every subcommand's --help ends with its exit status (docs/verdicts.md, docs/gate.md).
EXITS = {
    "run": [
        ("0", "the gate holds (known failures, crashes and timeouts included; without an expect: section: "
              "no probe FAILed, ERRORed, CRASHed or TIMED OUT)"),
        ("1", "the gate fails (the report ends with why)"),
        ("2", "a usage, profile or environment error (nothing run), or a report that could not be written "
              "(the results are kept and the line says where)"),
        ("130", "interrupted (Ctrl-C, SIGTERM): the record and the reports hold what was measured"),
    ],
    "report": [
        ("0", "the gate of every run holds"),
        ("1", "the gate of a run fails"),
        ("2", "a usage error, an unreadable or malformed run record, a bad --profile, an output that "
              "cannot be written"),
    ],
    "diff": [
        ("0", "nothing regressed"),
        ("1", "something regressed"),
        ("2", "a usage error, an unreadable or malformed run record, an output that cannot be written"),
    ],
    "merge": [("0", "merged"), ("2", "a usage error, an unreadable or malformed run record, an output that "
                                     "cannot be written")],
    "baseline": [("0", "printed or written"), ("2", "a usage error, an unreadable record, a merged set of "
                                                    "several runs, an output that cannot be written")],
    "list": [("0", "probes listed"), ("2", "a bad glob, no probe matches (in every format), the probe kernel "
                                          "cannot be built, an output that cannot be written")],
    "host": [("0", "no check FAILed"), ("1", "a check FAILed (the line says what is missing)"),
             ("2", "a usage error, an output that cannot be written")],
    "appliance": [("0", "built, or found in the cache"), ("2", "it cannot be built (the line says why)")],
    "build": [("0", "built, or up to date"), ("2", "it cannot be built (the line says why)")],
    "coverage": [("0", "counted"), ("1", "a probe names a requirement the map does not have, or one it "
                                           "calls untestable"),
                 ("2", "a malformed requirement map, the probe kernel cannot be built, an output that cannot "
                       "be written")],
    "docs": [("0", "written, or (--check) up to date"), ("1", "(--check) a page is stale"),
             ("2", "a malformed requirement map or recorded run, a hand-written part missing")],
    "profiles": [("0", "listed"), ("1", "a profile listed does not load (named, with why)"),
                 ("2", "a profile named is not found")],
    "nvct": [
        ("0", "success (run, report: the gate holds)"),
        ("1", "the gate fails (run, report), something regressed (diff), a host check failed (host)"),
        ("2", "a usage, profile, input or environment error: one line on standard error"),
    ],
}  # fmt: skip


def _exits(name: str) -> str:
    import textwrap

    lines = ["exit status:"]
    for code, what in EXITS[name]:
        lines += textwrap.wrap(what, 78, initial_indent=f"  {code:<5}", subsequent_indent=" " * 7)
    return "\n".join(lines)


GRAMMAR = (
    "Every command prints its result on standard output, as text or, with --json (the same as "
    "--format json), as JSON; -o/--output FILE writes it to FILE instead (for `run`: the JSON run record). "
    "Errors are one line on standard error."
)


def _command(sub, name: str, summary: str, description: str) -> argparse.ArgumentParser:
    return sub.add_parser(
        name,
        help=summary,
        description=description,
        epilog=_exits(name),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _outputs(p: argparse.ArgumentParser, formats: tuple[str, ...], what: str) -> None:
    """--format, --json and -o/--output, the same on every command that prints a result."""
    p.add_argument("--format", "-f", choices=formats, default=None, help=f"what is printed (default: {formats[0]})")
    p.add_argument("--json", action="store_true", help="print JSON instead of text: the same as --format json")
    p.add_argument("--output", "-o", type=Path, metavar="FILE", help=f"write {what} to FILE instead of standard output")


def _wrap(text: str) -> str:
    import textwrap

    return "\n\n".join(textwrap.fill(part, 78) for part in text.split("\n\n"))


class _Parser(argparse.ArgumentParser):
    """argparse, with what the user typed shown safely in its error line
    (an argument may hold escape sequences)."""

    def error(self, message: str) -> NoReturn:
        super().error(one_line(message))


def parser() -> argparse.ArgumentParser:
    top = _Parser(
        prog="nvct",
        description=_wrap(
            "Conformance tests for nested virtualization: boots probe kernels under a hypervisor stack and "
            "reports which VMX and SVM features behave as the SDM and APM say. Without a command: `nvct run`."
            "\n\n" + GRAMMAR
        ),
        epilog=_exits("nvct") + "\n\n`nvct COMMAND --help` says what each command does and its exit status.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    top.add_argument("--version", action="version", version=f"nvct {__version__}")
    sub = top.add_subparsers(dest="command", metavar="COMMAND")
    colour = {"choices": ("auto", "always", "never"), "default": "auto", "help": "colour (default: on a terminal)"}

    p = _command(sub, "run", "boot the probe kernel under a profile's stack and report",
                 _wrap("Boot the probe kernel at every level of a profile's stack, run the selected probes, "
                       "judge the verdicts by the profile's expect: section (the gate) and report: the text "
                       "report on standard output (--format/--json: another), the run record with -o FILE "
                       "(rewritten as results arrive), the other reports with --junit, --tap, --markdown, "
                       "--html.\n\nThe old spelling `--json FILE` (before `-o FILE`) still writes the record, "
                       "with a warning, until the next release: `run` takes no positional arguments, so a "
                       "word after --json is that file, and `--json` followed by an option (or nothing) is "
                       "the flag."))  # fmt: skip
    p.add_argument("--profile", "-p",
                   help=f"a profile file, or a name (`nvct profiles` lists them; default: {DEFAULT_PROFILE})")  # fmt: skip
    p.add_argument("--probes", help="probe globs, comma-separated; '-GLOB' excludes (default: the profile's, else all)")
    p.add_argument("--format", "-f", choices=("text", "json", *FORMATS), default=None,
                   help="what is printed at the end (default: text; json: the run record)")  # fmt: skip
    p.add_argument("--json", nargs="?", const=True, default=False, metavar="FILE",
                   help="print the run record (JSON) instead of the text report: the same as --format json "
                        "(`--json FILE`: deprecated, use -o FILE)")  # fmt: skip
    p.add_argument("--output", "-o", type=Path, metavar="FILE",
                   help="write the JSON run record (docs/run-record.md), updated as results arrive")  # fmt: skip
    p.add_argument("--junit", type=Path, metavar="FILE", help="write JUnit XML (at the end of the run)")
    p.add_argument("--tap", type=Path, metavar="FILE", help="write TAP version 13")
    p.add_argument("--markdown", type=Path, metavar="FILE", help="write the compatibility matrix in Markdown")
    p.add_argument("--html", type=Path, metavar="FILE", help="write the HTML report (one self-contained file)")
    p.add_argument("--timeout", type=_seconds, metavar="S", help="seconds a probe may run (default: the profile's)")
    p.add_argument("--boot-timeout", type=_seconds, metavar="S", help="seconds until the kernel says HELLO")
    p.add_argument("--color", **colour)
    p.add_argument("--jobs", "-j", type=_jobs, default=1, metavar="N",
                   help="boots of each level side by side, each running every N-th probe (default 1)")  # fmt: skip
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="a line per result on stderr (default: when stderr is a terminal)")  # fmt: skip
    p.set_defaults(func=cmd_run)

    p = _command(sub, "report", "a report from run records (exit 1 when the gate fails)",
                 _wrap("Make any report from run records or merged sets, later: text, JSON (always a set of "
                       "runs, {\"schema\": \"nvct-runs/1\", \"runs\": [...]}, even of one), JUnit, TAP, "
                       "Markdown or HTML, gated by the recorded expectations or by --profile's."))  # fmt: skip
    p.add_argument("records", nargs="+", type=Path, metavar="RUN.json", help="run records or merged sets")
    _outputs(p, ("text", "json", *FORMATS), "the report")
    p.add_argument("--profile", "-p", help="gate with this profile's expect: section instead of the recorded one")
    p.add_argument("--color", **colour)
    p.set_defaults(func=cmd_report)

    p = _command(sub, "diff", "what changed between two runs (exit 1 when something regressed)",
                 _wrap("Compare the measured verdicts of two runs, level by level: regressions, fixes, other "
                       "changes, probes and levels only in one of them. Needs no expectations."))  # fmt: skip
    p.add_argument("base", type=Path, metavar="BASE.json")
    p.add_argument("new", type=Path, metavar="NEW.json")
    _outputs(p, ("text", "json"), "the comparison")
    p.set_defaults(func=cmd_diff)

    p = _command(sub, "merge", "combine run records (hosts, stacks) into one set",
                 _wrap("Combine run records and merged sets into one set of runs (JSON, schema nvct-runs/1), "
                       "which report, diff and baseline read."))  # fmt: skip
    p.add_argument("records", nargs="+", type=Path, metavar="RUN.json")
    p.add_argument("--output", "-o", type=Path, metavar="FILE",
                   help="write the set to FILE instead of standard output")  # fmt: skip
    p.set_defaults(func=cmd_merge)

    p = _command(
        sub,
        "baseline",
        "the expect: section a run satisfies, to start a gate",
        _wrap(
            "Print the expect: section (YAML, to paste into the profile) that one run satisfies: "
            "what SKIPped and what FAILed; --json gives the rules and what was not baselined."
        ),
    )
    p.add_argument("record", type=Path, metavar="RUN.json")
    _outputs(p, ("yaml", "json"), "the section")
    p.set_defaults(func=cmd_baseline)

    p = _command(
        sub,
        "list",
        "list the probes compiled into the probe kernel",
        _wrap(
            "List the probes of the probe kernel's catalogue (built when needed; nothing boots): "
            "id, feature, description and spec reference, in id order."
        ),
    )
    p.add_argument("globs", nargs="*", metavar="GLOB", help="select probes as --probes does")
    _outputs(p, ("text", "json"), "the list")
    p.add_argument("--all", action="store_true", help="include hidden probes (selftests)")
    p.set_defaults(func=cmd_list)

    p = _command(
        sub,
        "coverage",
        "how much of the SDM/APM requirement map the probes cover",
        _wrap(
            "Count, per manual, chapter and feature, the requirements of the map (requirements/) that a "
            "probe names, that no probe kernel can test, and that no probe covers yet; list the uncovered "
            "ones. With --record RUN.json also which requirements passed at which level of that run."
        ),
    )
    _outputs(p, ("text", "json", "markdown"), "the coverage")
    p.add_argument("--markdown", action="store_true", help="the same as --format markdown")
    p.add_argument("--requirements", type=Path, metavar="DIR", help="the requirement map (default: requirements/)")
    p.add_argument("--record", type=Path, action="append", metavar="RUN.json",
                   help="also say which requirements passed at which level of this run (repeatable)")  # fmt: skip
    p.set_defaults(func=cmd_coverage)

    p = _command(
        sub,
        "docs",
        "generate docs/probes/svm.md and vmx.md (catalogue, requirements, recorded runs)",
        _wrap(
            "Write docs/probes/svm.md and vmx.md from the catalogue, the requirement map and the runs "
            "recorded in docs/probes/runs/, with the hand-written parts (docs/probes/ARCH/intro.md and "
            "deviations.md) included. --check writes nothing and says which page is stale."
        ),
    )
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 when a page is stale")
    p.add_argument("--docs", type=Path, metavar="DIR", help="the pages' folder (default: docs/probes)")
    p.add_argument("--requirements", type=Path, metavar="DIR", help="the requirement map (default: requirements/)")
    p.set_defaults(func=cmd_docs)

    p = _command(
        sub,
        "host",
        "check this machine for nested virtualization (virt-host-validate style)",
        _wrap(
            "Check this machine for what nested stacks need: the CPU's VMX or SVM, /dev/kvm, the "
            "kvm modules' nested= setting, what it is itself a guest of, the hypervisors' binaries."
        ),
    )
    p.add_argument("--color", **colour)
    _outputs(p, ("text", "json"), "the checks")
    p.set_defaults(func=cmd_host)

    p = _command(
        sub,
        "appliance",
        "the Linux/KVM appliance that multi-level stacks boot",
        _wrap(
            "Build (from Debian's packages, cached by content) or show the Linux/KVM appliance "
            "that the levels above L0 of multi-level stacks boot."
        ),
    )
    p.add_argument("action", choices=("build", "show"), help="build it (cached by content) or show the cached one")
    _outputs(p, ("text", "json"), "what was built")
    p.set_defaults(func=cmd_appliance)

    p = _command(sub, "profiles", "list the profiles: shipped, the user's, or the ones named (exit 1: one is broken)",
                 _wrap("The profiles --profile can name, each with its description and where it comes from: "
                       "shipped with nvct, or the user's, in $XDG_CONFIG_HOME/nvct/profiles (default "
                       "~/.config/nvct/profiles), which a name looks in first: a user profile shadows a shipped "
                       "one of its name."))  # fmt: skip
    p.add_argument("profiles", nargs="*", metavar="PROFILE", help="names or paths (default: every profile)")
    _outputs(p, ("text", "json"), "the list")
    p.set_defaults(func=cmd_profiles)

    p = _command(
        sub,
        "build",
        "build the probe kernel (done by run and list as needed)",
        _wrap("Build the probe kernel (if its sources changed) and count its catalogue."),
    )
    _outputs(p, ("text", "json"), "what was built")
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
        print(f"nvct: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        _drop_stdout()
        return EXIT_OK
    except OSError as exc:  # what is left: standard output failed (a full disk, a closed terminal)
        _drop_stdout()
        where = exc.filename if exc.filename is not None else "standard output"
        print(f"nvct: error: cannot write {one_line(where)}: {one_line(exc.strerror or exc)}", file=sys.stderr)
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
