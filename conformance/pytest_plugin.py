"""nvct as a pytest plugin: one test item per probe and level.

Installed with the package (the `pytest11` entry point `nvct`); it does
nothing unless `--nvct-profile` is given. Then:

    pytest --nvct-profile profiles/qemu-tcg.yaml [-m svm] [-k npt] [-x] [--junitxml r.xml] [-n 2]

collects `nvct::<probe>[L<level>]` for every probe the profile selects
(`--nvct-probes` narrows it as `nvct run --probes` does) at every level of
its stack, without booting anything (the catalogue is read, and the
markers registered, in pytest_configure). pytest takes those node ids back: on the command
line (`pytest --nvct-profile qemu-tcg 'nvct::svm.npt.nx[L1]'` boots for
that item alone), in --lf and --deselect. The options have ini keys
(nvct_profile, nvct_probes, nvct_chunks, nvct_timeout, nvct_boot_timeout).
A level's selection is cut into shards, the kernel's own `shard=K/N`; the first item of a shard that runs
boots the probe kernel once for the whole shard, and every item of the
shard reports its verdict from that boot. Without pytest-xdist a level is
one shard (one boot, as `nvct run`). Under xdist there is one shard per
worker and level, and the plugin's own scheduler (`--dist loadgroup`, which
it picks when `-n` or `--tx` comes without `--dist`) sends each shard to
one worker whole, so each shard boots exactly once. Other `--dist` modes
work too, with the same verdicts, but a shard may then boot on more than
one worker.

The profile's `expect:` section decides, as the gate does: PASS passes, an
expected SKIP skips with the kernel's reason, a known failure (or a known
crash or timeout) is an xfail, and everything the gate rejects (FAIL,
XPASS, a SKIP where PASS was expected, ERROR, TIMEOUT, CRASH) fails with
the gate's reason. See docs/scaling.md.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from .backends import BackendUnavailable
from .core.catalog import CatalogError, Probe, SelectionError, select, split_globs
from .core.kernel import BuildError, GuestImage, build
from .core.profile import (
    MAX_SECONDS,
    ProfileError,
    load_profile,
    resolve_profile,
)  # the same profile names as `nvct run`
from .core.results import ProbeResult
from .gate.expect import Assessment, Expectations, Outcome, evaluate
from .run.runner import RunOptions, run_level, shard_of
from .run.stack import Level, build_stack, release_stack

ROOT_NAME = "nvct"


def _usage(message: str) -> pytest.UsageError:
    """pytest's usage error, with what the user gave shown safely (a value
    may hold escape sequences)."""
    from .core.printable import one_line

    return pytest.UsageError(one_line(message))


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("nvct", "nvct: nested virtualization conformance probes as test items")
    group.addoption("--nvct-profile", metavar="PROFILE", default=None,
                    help="collect one item per probe and level of this nvct profile (a file, or a name "
                         "`nvct profiles` lists); without it (or the ini key nvct_profile) the plugin does "
                         "nothing")  # fmt: skip
    group.addoption("--nvct-probes", metavar="GLOBS", default=None,
                    help="probe globs, comma-separated, '-GLOB' excludes (as nvct run --probes; "
                         "default: the profile's)")  # fmt: skip
    group.addoption("--nvct-chunks", metavar="N", default=None,
                    help="boots per level, each running every N-th probe (default: 1, or the number of "
                         "xdist workers)")  # fmt: skip
    group.addoption("--nvct-timeout", metavar="S", default=None,
                    help="seconds one probe may run (default: the profile's)")  # fmt: skip
    group.addoption("--nvct-boot-timeout", metavar="S", default=None,
                    help="seconds until the probe kernel says HELLO (default: the profile's)")  # fmt: skip
    group.addoption("--nvct-json", metavar="FILE", type=Path, default=None,
                    help="write the nvct run record (docs/run-record.md), updated as results arrive; "
                         "nvct report, diff and merge read it")  # fmt: skip
    # The same settings in an ini file ([pytest] / [tool.pytest.ini_options]);
    # the command line wins. A relative profile path is relative to the ini file.
    for name, what in INI.items():
        parser.addini(name, what, default=None)


INI = {
    "nvct_profile": "nvct profile (a file relative to the ini file, or a name `nvct profiles` lists): as --nvct-profile",
    "nvct_probes": "nvct probe globs: as --nvct-probes",
    "nvct_chunks": "boots per level: as --nvct-chunks",
    "nvct_timeout": "seconds one probe may run: as --nvct-timeout",
    "nvct_boot_timeout": "seconds until the probe kernel says HELLO: as --nvct-boot-timeout",
}


def _setting(config: pytest.Config, name: str) -> str | None:
    """A setting from the command line (`--nvct-x`), else from the ini file (`nvct_x`)."""
    value = config.getoption(name, None)
    if value is None and name in INI:
        value = config.getini(name)
        if name == "nvct_profile" and value and config.inipath is not None:
            beside = config.inipath.parent / value
            if not Path(value).is_absolute() and beside.exists():
                value = str(beside)
    return value or None


def _where(name: str, config: pytest.Config) -> str:
    """How the user spelled a setting: the option, or the ini key and its file."""
    if config.getoption(name, None) is not None:
        return "--" + name.replace("_", "-")
    return f"{config.inipath or 'ini'}: {name}"


def _seconds(config: pytest.Config, name: str) -> float | None:
    text = _setting(config, name)
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise _usage(f"{_where(name, config)}: not a number of seconds: {text!r}") from None
    if not math.isfinite(value) or not 0 < value <= MAX_SECONDS:
        raise _usage(f"{_where(name, config)}: must be more than 0 seconds and at most {MAX_SECONDS:g}, not {text!r}")
    return value


def _enabled(config: pytest.Config) -> bool:
    return bool(_setting(config, "nvct_profile"))


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    """Under xdist, default to --dist loadgroup: the plugin's scheduler, one worker per shard."""
    if not _enabled(config) or not hasattr(config.option, "dist") or hasattr(config, "workerinput"):
        return  # not asked for, no xdist, or an xdist worker (which must not distribute again)
    if config.option.dist == "no" and (config.option.numprocesses or config.option.tx):
        config.option.dist = "loadgroup"


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """--dist loadgroup or loadscope with --nvct-profile: each shard goes to one worker whole.

    xdist's own loadgroup learns a test's group from a suffix it appends
    to the node id on the worker, which pytest 9.2 no longer lets it do
    (pytest-xdist issue 1386); and the probes' node ids stay free of
    shard names, so that they do not change with the number of workers.
    The shard of a probe item is worked out here from the catalogue, as the
    workers do; other items are scheduled as loadgroup does."""
    nvct = config.stash.get(_KEY, None)
    if nvct is None or config.getvalue("dist") not in ("loadgroup", "loadscope"):
        return None
    from xdist.scheduler import LoadGroupScheduling

    class NvctScheduling(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return nvct.scope(nodeid, self.numnodes) or super()._split_scope(nodeid)

    return NvctScheduling(config, log)


def pytest_configure(config: pytest.Config) -> None:
    # The marker of every probe item, registered whether or not a profile is
    # given (`pytest --markers` lists it); the families' and groups' markers
    # come from the catalogue, below.
    config.addinivalue_line("markers", "nvct: an nvct conformance probe at one level (the nvct pytest plugin)")
    if not _enabled(config):
        named = [arg for arg in config.args if _is_nodeid(config, arg)]
        if named:  # rather than pytest's "file or directory not found"
            raise _usage(f"{named[0]} is an nvct probe item: give --nvct-profile PROFILE "
                                    f"(or nvct_profile in the ini file) to collect it")  # fmt: skip
        return
    try:
        path = resolve_profile(_setting(config, "nvct_profile"))
        profile = load_profile(path)
    except ProfileError as exc:
        raise _usage(f"{_where('nvct_profile', config)}: {exc}") from None
    spec = _setting(config, "nvct_probes")
    try:
        globs = tuple(split_globs(spec)) if spec else profile.probes
    except SelectionError as exc:
        raise _usage(f"{_where('nvct_probes', config)}: {exc}") from None
    chunks = _setting(config, "nvct_chunks")
    if chunks is not None and (not str(chunks).isdigit() or int(chunks) < 1):
        raise _usage(f"{_where('nvct_chunks', config)}: must be a whole number, at least 1, not {chunks!r}")
    nvct = NvctRun(config, path, profile, globs, int(chunks) if chunks is not None else None)
    nvct.probe_timeout = _seconds(config, "nvct_timeout")
    nvct.boot_timeout = _seconds(config, "nvct_boot_timeout")
    # Node ids on the command line (`nvct::svm.npt.nx[L1]`, `nvct::svm.npt.nx`,
    # `nvct`) name probe items, not files: taken out of the paths pytest
    # collects, and kept to choose the items (xdist's workers parse the same
    # command line and choose the same).
    nvct.nodeids = [arg for arg in config.args if _is_nodeid(config, arg)]
    if nvct.nodeids:
        config.args = [arg for arg in config.args if arg not in nvct.nodeids]
    nvct.load()
    config.stash[_KEY] = nvct
    for name in sorted({p.id.split(".")[0] for p in nvct.selected} | {p.group for p in nvct.selected}):
        config.addinivalue_line("markers", f"{name}: nvct probes of {name}")
    target = config.getoption("nvct_json")
    if target is not None and not hasattr(config, "workerinput"):  # written where the reports meet
        config.pluginmanager.register(RecordWriter(nvct, target), "nvct-record-writer")
    if config.args_source is not pytest.Config.ArgsSource.ARGS:
        # No paths on the command line: collect the probes only, not the
        # ini file's testpaths or the current folder. Name paths to add them.
        config.args = []


def _is_nodeid(config: pytest.Config, arg: str) -> bool:
    """`nvct` or `nvct::...`, unless a file or folder of that name is there."""
    if arg != ROOT_NAME and not arg.startswith(ROOT_NAME + "::"):
        return False
    return not (config.invocation_params.dir / ROOT_NAME).exists()


def _junit_properties(config: pytest.Config) -> bool:
    """Per-testcase <properties> only where the JUnit family allows them:
    pytest's default family, xunit2 (Jenkins' junit-10.xsd), has none."""
    if getattr(config.option, "xmlpath", None) is None:
        return True  # no JUnit file: other reporters may read the properties
    return config.getini("junit_family") in ("xunit1", "legacy")


_KEY = pytest.StashKey["NvctRun"]()


@dataclass
class Shard:
    """One shard of one level's selection (the kernel's `shard=K/N`): booted
    once, by its first item to run. Under xdist a whole shard goes to one worker."""

    run: NvctRun
    level: Level
    selected: list[Probe]  # the level's whole selection (the shard is cut from it)
    index: int
    count: int
    results: dict[str, ProbeResult] | None = None
    failure: BaseException | None = None
    boots: list[str] = field(default_factory=list)
    info: dict[str, Any] | None = None  # the level as the shard's boots saw it (LevelInfo), sent once

    @property
    def group(self) -> str:
        return f"nvct-L{self.level.number}-{self.index + 1}of{self.count}"

    def ensure(self) -> None:
        if self.results is not None:
            return
        if self.failure is not None:
            raise self.failure
        try:
            self.results = self.run.boot(self)
        except BaseException as exc:
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            self.failure = exc
            raise


class NvctError(Exception):
    """The harness could not run a shard (the hypervisor is missing, ...)."""


class NvctRun:
    """The profile, the kernel and the shards of one pytest process."""

    def __init__(self, config, path: Path, profile, globs: tuple[str, ...], shards: int | None):
        self.config = config
        self.path = path
        self.profile = profile
        self.globs = globs
        self.shards_wanted = shards  # --nvct-chunks
        self.expectations: Expectations | None = Expectations.of_profile(profile)
        self.image: GuestImage | None = None
        self.selected: list[Probe] = []
        self._shard_index: dict[int, dict[str, int]] = {}
        self.levels: list[Level] = []
        self.preflight_error: str | None = None
        self.probe_timeout: float | None = None  # --nvct-timeout / nvct_timeout
        self.boot_timeout: float | None = None
        self.nodeids: list[str] = []  # node ids given on the command line
        self.wanted: set[tuple[str, int]] | None = None  # (probe, level) they name; None: every one

    def shard_count(self, workers: int = 1) -> int:
        """Shards per level: --nvct-chunks, else one per xdist worker; never more than probes."""
        return max(1, min(self.shards_wanted or workers, len(self.selected)))

    def workers(self) -> int:
        workerinput = getattr(self.config, "workerinput", None)
        return int(workerinput.get("workercount", 1)) if workerinput is not None else 1

    def scope(self, nodeid: str, workers: int) -> str | None:
        """The shard of an item, from its node id: what the xdist scheduler keeps together."""
        if not nodeid.startswith(ROOT_NAME + "::") or not nodeid.endswith("]"):
            return None
        probe, _, level = nodeid[len(ROOT_NAME) + 2 : -1].rpartition("[L")
        count = self.shard_count(workers)
        index = self.shard_index(count).get(probe)
        if index is None or not level.isdigit():
            return None
        return f"nvct-L{level}-{index + 1}of{count}"

    def shard_index(self, count: int) -> dict[str, int]:
        """Probe id -> the shard that runs it (the runner's own dealing)."""
        if count not in self._shard_index:
            self._shard_index[count] = shard_of(self.selected, count)
        return self._shard_index[count]

    def load(self) -> None:
        try:
            self.image = build()
            catalog = self.image.catalog()
        except (BuildError, CatalogError) as exc:
            raise _usage(f"nvct: cannot build the probe kernel: {exc}") from None
        self.selected = select(catalog, list(self.globs))
        if not self.selected:
            raise _usage(f"nvct: no probe matches {','.join(self.globs)!r}")
        self.levels = build_stack(self.profile)
        if self.nodeids:
            self.wanted = self._named(self.nodeids)
            names = {probe for probe, _ in self.wanted}
            self.selected = [p for p in self.selected if p.id in names]  # boot only what was named
            self.globs = tuple(p.id for p in self.selected)  # the kernel's selection, which its shard=K/N cuts

    def _named(self, nodeids: list[str]) -> set[tuple[str, int]]:
        """The (probe, level) pairs that node ids name; a UsageError, as
        pytest's own "not found", for one that names no item."""
        every = {(p.id, level.number) for level in self.levels for p in self.selected}
        wanted: set[tuple[str, int]] = set()
        for nodeid in nodeids:
            name = nodeid[len(ROOT_NAME) + 2 :]
            if not name:
                found = every
            elif name.endswith("]") and "[L" in name:
                probe, _, level = name[:-1].rpartition("[L")
                found = {(probe, int(level))} & every if level.isdigit() else set()
            else:
                found = {pair for pair in every if pair[0] == name}
            if not found:
                raise _usage(
                    f"not found: {nodeid} (no such probe and level in profile {self.profile.name}'s selection "
                    f"{','.join(self.globs) or '(all)'} at levels "
                    f"{', '.join(f'L{level.number}' for level in self.levels)}; `nvct list` shows the probe ids)"
                )
            wanted |= found
        return wanted

    def boot(self, shard: Shard) -> dict[str, ProbeResult]:
        """Run one shard: the kernel's `shard=K/N` (index K-1, count N) of the level."""
        level = shard.level
        try:
            level.backend.preflight()
        except BackendUnavailable as exc:
            raise NvctError(f"{self.path}: stack L{level.number - 1} ({level.backend.name}): {exc}") from None
        timeouts = self.profile.timeouts
        options = RunOptions(
            globs=self.globs,
            boot_timeout=self.boot_timeout or timeouts.boot,
            probe_timeout=self.probe_timeout or timeouts.probe,
        )
        assert self.image is not None
        part = (shard.index, shard.count) if shard.count > 1 else None
        try:
            outcome = run_level(level, self.image, shard.selected, options,
                                on_boot=lambda number, cmdline: shard.boots.append(cmdline), shard=part)  # fmt: skip
        finally:
            release_stack(self.levels)  # a shard's boots may share an appliance; the next shard boots its own
        shard.info = outcome.info.to_dict()
        return {r.probe: r for r in outcome.results}

    def assess(self, result: ProbeResult) -> Assessment:
        record = SimpleNamespace(results=[result], status="complete")
        assessments, _ = evaluate(record, self.expectations)
        return assessments[(result.probe, result.level)]


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Put the probes in front of whatever else was collected (before -k and -m deselect)."""
    nvct = config.stash.get(_KEY, None)
    if nvct is None:
        return
    root = NvctCollector.from_parent(session, name=ROOT_NAME, nodeid=ROOT_NAME)
    properties = _junit_properties(config)
    probes: list[pytest.Item] = []
    for level in nvct.levels:
        count = nvct.shard_count(nvct.workers())
        shards = [Shard(nvct, level, nvct.selected, k, count) for k in range(count)]
        index = nvct.shard_index(count)
        for probe in nvct.selected:
            if nvct.wanted is not None and (probe.id, level.number) not in nvct.wanted:
                continue
            shard = shards[index[probe.id]]
            name = f"{probe.id}[L{level.number}]"
            # The node id given whole, so that pytest parses it as it parses
            # one from the command line or its cache (--lf): probe, [level].
            item = ProbeItem.from_parent(root, name=name, nodeid=f"{ROOT_NAME}::{name}", probe=probe, shard=shard)
            item.junit_properties = properties
            item.add_marker(pytest.mark.nvct)
            item.add_marker(getattr(pytest.mark, probe.id.split(".")[0]))
            item.add_marker(getattr(pytest.mark, probe.group))
            item.extra_keyword_matches.update({probe.feature, f"L{level.number}"})
            probes.append(item)
    # Report the collector's items as pytest does for its own collectors:
    # the terminal counts them ("collected N items"), and plugins see them.
    config.hook.pytest_collectreport(report=pytest.CollectReport(root.nodeid, "passed", None, probes))
    items[:0] = probes


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    nvct = config.stash.get(_KEY, None)
    if nvct is None:
        return None
    what = f"nvct: profile {nvct.profile.name} ({nvct.path})"
    if nvct.globs:
        what += f", probes {','.join(nvct.globs)}"
    return [what]


class NvctCollector(pytest.Collector):
    """The parent of every probe item (node id `nvct`); it collects nothing itself."""

    def collect(self):  # pragma: no cover - the items are made by pytest_collection_modifyitems
        return []


class ProbeFailed(Exception):
    def __init__(self, text: str):
        super().__init__(text)
        self.text = text


class ProbeItem(pytest.Item):
    """One probe at one level; its verdict comes from its shard's boot."""

    def __init__(self, *, probe: Probe, shard: Shard, **kwargs: Any):
        super().__init__(**kwargs)
        self.probe = probe
        self.shard = shard
        self.nvct_result: dict[str, Any] | None = None
        self.nvct_level_info: dict[str, Any] | None = None
        self.junit_properties = True

    @property
    def level(self) -> int:
        return self.shard.level.number

    def setup(self) -> None:
        self.shard.ensure()  # the shard's one boot, the first time

    def runtest(self) -> None:
        assert self.shard.results is not None
        result = self.shard.results.get(self.probe.id)
        if result is None:  # the runner gives every selected probe a result: a harness bug
            raise ProbeFailed(f"{self.probe.id} at L{self.level}: no result from the boot of {self.shard.group}")
        assessment = self.shard.run.assess(result)
        if self.junit_properties:
            self.user_properties += [
                ("nvct.verdict", result.verdict.value),
                ("nvct.outcome", assessment.outcome.value),
                ("nvct.level", str(self.level)),
                ("nvct.feature", self.probe.feature),
                ("nvct.reference", self.probe.reference),
                ("nvct.chunk", self.shard.group),  # the boot that measured it
                ("nvct.worker", os.environ.get("PYTEST_XDIST_WORKER", "main")),
            ]
        # For --nvct-json, wherever the report is read (xdist carries a
        # report's attributes to the controller): the result, and once per
        # shard the level as its boots saw it.
        self.nvct_result = result.to_dict()
        self.nvct_level_info, self.shard.info = self.shard.info, None
        if not assessment.ok:
            raise ProbeFailed(self._explain(result, assessment))
        if assessment.outcome is Outcome.SKIP:
            pytest.skip(result.detail or "not exposed at this level")
        if assessment.outcome in (Outcome.XFAIL, Outcome.XCRASH, Outcome.XTIMEOUT):
            expected = assessment.expected or {}
            reason = expected.get("reason") or f"a known {expected.get('verdict', 'fail')}"
            if expected.get("link"):
                reason += f" [{expected['link']}]"
            pytest.xfail(f"{reason}: {result.detail}" if result.detail else reason)

    def _explain(self, result: ProbeResult, assessment: Assessment) -> str:
        lines = [f"{self.probe.id} at L{self.level}: {assessment.why}"]
        if assessment.outcome.value != result.verdict.value:
            lines.append(f"measured {result.verdict.value}, outcome {assessment.outcome.value}")
        lines += [f"note: {note}" for note in result.notes if note != result.detail]
        lines.append(f"{self.probe.description} [{self.probe.reference}]")
        if result.console and result.verdict.value in ("ERROR", "TIMEOUT", "CRASH"):
            lines.append("console:")
            lines += [f"  {line}" for line in result.console[-20:]]
        return "\n".join(lines)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, (ProbeFailed, NvctError, pytest.xfail.Exception)):
            return str(excinfo.value)  # no traceback: it would be the plugin's, and slow to format
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.path, None, f"nvct {self.probe.id} [L{self.level}]"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    report = yield
    if isinstance(item, ProbeItem) and call.when == "call" and item.nvct_result is not None:
        report.nvct_result = item.nvct_result
        if item.nvct_level_info is not None:
            report.nvct_level_info = item.nvct_level_info
    return report


class RecordWriter:
    """--nvct-json: the run record, from the reports of the probe items
    (the worker that ran a shard puts each probe's result, and once the
    level as its boots saw it, on the item's report), rewritten
    after every result and once more at the end of the session, gated by
    the profile's expectations as `nvct run -o FILE` is."""

    def __init__(self, nvct: NvctRun, path: Path):
        from .core.runrecord import RunRecord

        self.nvct = nvct
        self.path = path
        self.record = RunRecord(
            profile={"name": nvct.profile.name, "path": str(nvct.path), "description": nvct.profile.description},
            selection=list(nvct.globs),
        )
        self.levels: dict[int, Any] = {}
        # (probe, level) of the items left after -k, -m and --deselect: what
        # did not run among them was not measured; the others were not asked for.
        self.collected: set[tuple[str, int]] | None = None

    def _collected(self, nodeids: list[str]) -> None:
        pairs = set()
        for nodeid in nodeids:
            if not nodeid.startswith(ROOT_NAME + "::") or not nodeid.endswith("]") or "[L" not in nodeid:
                continue
            probe, _, level = nodeid[len(ROOT_NAME) + 2 : -1].rpartition("[L")
            if level.isdigit():
                pairs.add((probe, int(level)))
        self.collected = (self.collected or set()) | pairs

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self._collected([item.nodeid for item in session.items])

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        self._collected(list(ids))  # under xdist the workers collect, and deselect

    def _level(self, data: dict[str, Any]) -> None:
        """Shards of one level are boots of the same level: one entry, their
        boots added up, the facts of the first shard that reported any."""
        from .core.runrecord import LevelInfo

        info = LevelInfo.from_dict(data)
        known = self.levels.get(info.level)
        if known is None:
            self.levels[info.level] = info
            self.record.levels = [self.levels[n] for n in sorted(self.levels)]
            return
        known.boots += info.boots
        known.facts = known.facts or info.facts
        known.kernel = known.kernel or info.kernel
        known.problems += [p for p in info.problems if p not in known.problems]

    def _save(self, final: bool = False) -> None:
        from .gate.expect import apply

        if not self.record.catalog and self.nvct.selected:
            self.record.catalog = [p.as_dict() for p in self.nvct.selected]
        apply(self.record, self.nvct.expectations)
        self.record.write(self.path, pretty=final)

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        result = getattr(report, "nvct_result", None)
        if report.when != "call" or result is None:
            return
        info = getattr(report, "nvct_level_info", None)
        if info is not None:
            self._level(info)
        self.record.results.append(ProbeResult.from_dict(result))
        self._save()

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        from .core.runrecord import now

        done = {(r.probe, r.level) for r in self.record.results}
        levels = [level.number for level in self.nvct.levels]
        wanted = self.nvct.wanted if self.collected is None else self.collected
        self.record.not_run = [{"probe": p.id, "level": n} for n in levels for p in self.nvct.selected
                               if (p.id, n) not in done and (wanted is None or (p.id, n) in wanted)]  # fmt: skip
        interrupted = exitstatus == pytest.ExitCode.INTERRUPTED or session.shouldstop
        self.record.status = "interrupted" if interrupted or self.record.not_run else "complete"
        self.record.finished = now()
        self._save(final=True)
