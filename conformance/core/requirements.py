"""The requirement map, and how much of it the probes cover.

`requirements/` holds one YAML file per chapter of the manuals nvct tests
(the Intel SDM's VMX chapters, the AMD APM's SVM chapter): each requirement
with a stable id `<manual>.<section>.<slug>`, one sentence, and whether a
probe kernel can test it at all (docs/requirements.md). A probe names the
ids it checks in its PROBE() entry; the catalogue carries them
(`Probe.requirements`). Coverage is the map against the catalogue; a run
record adds which requirements passed at which level.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .catalog import REQUIREMENT_ID, Probe
from .verdicts import Verdict

MANUALS = ("sdm", "apm")
FILE_KEYS = {"manual", "document", "chapter", "title", "feature", "sections", "requirements"}
REQUIREMENT_KEYS = {"id", "text", "testable", "why", "feature"}
MAX_FILE_BYTES = 4 << 20


class RequirementError(Exception):
    """A requirement file that is not what the schema says: one line, naming file, line and key."""


def default_dir() -> Path:
    """The map that comes with nvct: inside the package when it was installed
    from the wheel (conformance/shipped/requirements), else requirements/ of
    this checkout."""
    package = Path(__file__).resolve().parents[1]
    shipped = package / "shipped" / "requirements"
    return shipped if shipped.is_dir() else package.parent / "requirements"


@dataclass(frozen=True)
class Requirement:
    id: str
    section: str
    text: str
    chapter: str  # the file's key: "sdm-27"
    feature: str
    testable: bool = True
    why: str = ""  # when not testable: what a probe kernel cannot do

    @property
    def manual(self) -> str:
        return self.id.split(".", 1)[0]

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"id": self.id, "section": self.section, "chapter": self.chapter,
                                  "feature": self.feature, "text": self.text, "testable": self.testable}  # fmt: skip
        if not self.testable:
            out["why"] = self.why
        return out


@dataclass
class Chapter:
    key: str  # the file name without .yaml: "sdm-27", "apm-15"
    manual: str
    chapter: str
    title: str
    document: str
    path: Path
    sections: dict[str, str] = field(default_factory=dict)
    requirements: list[Requirement] = field(default_factory=list)


@dataclass
class RequirementMap:
    chapters: list[Chapter]

    @property
    def requirements(self) -> list[Requirement]:
        return [r for c in self.chapters for r in c.requirements]

    def by_id(self) -> dict[str, Requirement]:
        return {r.id: r for r in self.requirements}


def section_of(req_id: str) -> str:
    """'sdm.27.3.1.1.cr0-fixed-bits' -> '27.3.1.1'."""
    return ".".join(req_id.split(".")[1:-1])


# ---- loading -------------------------------------------------------------------------


class _Node:
    """A YAML value with the line it starts on."""

    def __init__(self, value: Any, line: int) -> None:
        self.value, self.line = value, line


def _plain(node: yaml.Node) -> Any:
    """A composed YAML node as _Node-wrapped dicts and lists of _Nodes."""
    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[str, _Node] = {}
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode):
                raise RequirementError(f"line {key.start_mark.line + 1}: a key must be a plain string")
            if key.value in out:
                raise RequirementError(f"line {key.start_mark.line + 1}: key {key.value!r} given twice")
            out[key.value] = _plain(value)
        return _Node(out, line)
    if isinstance(node, yaml.SequenceNode):
        return _Node([_plain(v) for v in node.value], line)
    return _Node(yaml.SafeLoader("").construct_object(node) if node.tag != "tag:yaml.org,2002:str" else node.value,
                 line)  # fmt: skip


def _load_file(path: Path) -> _Node:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise RequirementError(f"{path}: larger than {MAX_FILE_BYTES >> 20} MiB")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RequirementError(f"{path}: cannot read: {exc}") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is None:
            raise RequirementError(f"{path}: empty")
        return _plain(node)
    except RequirementError as exc:
        raise RequirementError(f"{path}: {exc}") from None
    except (yaml.YAMLError, ValueError, TypeError) as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise RequirementError(f"{path}: {where}not valid YAML ({problem})") from None


def _str(obj: _Node, key: str, where: str, required: bool = True) -> str:
    node = obj.value.get(key)
    if node is None:
        if required:
            raise RequirementError(f"{where}: line {obj.line}: {key}: missing")
        return ""
    if not isinstance(node.value, str) or not node.value.strip():
        raise RequirementError(f"{where}: line {node.line}: {key}: want a non-empty string, not {node.value!r}")
    return node.value.strip()


def _chapter(path: Path) -> Chapter:
    where = str(path)
    top = _load_file(path)
    if not isinstance(top.value, dict):
        raise RequirementError(f"{where}: line {top.line}: want a mapping ({', '.join(sorted(FILE_KEYS))})")
    for key, node in top.value.items():
        if key not in FILE_KEYS:
            raise RequirementError(
                f"{where}: line {node.line}: unknown key {key!r} (want {', '.join(sorted(FILE_KEYS))})"
            )
    manual = _str(top, "manual", where)
    if manual not in MANUALS:
        raise RequirementError(f"{where}: line {top.value['manual'].line}: manual: want sdm or apm, not {manual!r}")
    chapter = Chapter(path.stem, manual, _str(top, "chapter", where), _str(top, "title", where),
                      _str(top, "document", where), path)  # fmt: skip
    default_feature = _str(top, "feature", where)
    sections = top.value.get("sections")
    if sections is None or not isinstance(sections.value, dict) or not sections.value:
        line = sections.line if sections is not None else top.line
        raise RequirementError(f"{where}: line {line}: sections: want a mapping of section numbers to titles")
    for number, title in sections.value.items():
        if not isinstance(title.value, str) or not title.value.strip():
            raise RequirementError(f"{where}: line {title.line}: sections: {number}: want the section's title")
        if not REQUIREMENT_ID.fullmatch(f"{manual}.{number}.x"):
            raise RequirementError(f"{where}: line {title.line}: sections: {number!r} is not a section number")
        chapter.sections[str(number)] = title.value.strip()
    reqs = top.value.get("requirements")
    if reqs is None or not isinstance(reqs.value, list):
        raise RequirementError(f"{where}: line {top.line}: requirements: want a list")
    for item in reqs.value:
        if not isinstance(item.value, dict):
            raise RequirementError(f"{where}: line {item.line}: requirements: want a mapping per requirement")
        for key, node in item.value.items():
            if key not in REQUIREMENT_KEYS:
                raise RequirementError(
                    f"{where}: line {node.line}: unknown key {key!r} (want {', '.join(sorted(REQUIREMENT_KEYS))})"
                )
        rid = _str(item, "id", where)
        line = item.value["id"].line
        if not REQUIREMENT_ID.fullmatch(rid):
            raise RequirementError(f"{where}: line {line}: id {rid!r}: want <sdm|apm>.<section>.<kebab-case-slug>")
        if not rid.startswith(manual + "."):
            raise RequirementError(f"{where}: line {line}: id {rid!r}: this file is of the {manual} manual")
        section = section_of(rid)
        if section not in chapter.sections:
            raise RequirementError(
                f"{where}: line {line}: id {rid!r}: section {section} is not in this file's sections"
            )
        testable_node = item.value.get("testable")
        testable = True if testable_node is None else testable_node.value
        if not isinstance(testable, bool):
            raise RequirementError(f"{where}: line {testable_node.line}: testable: want true or false")
        why = _str(item, "why", where, required=not testable)
        if testable and why:
            raise RequirementError(f"{where}: line {item.value['why'].line}: why: only for testable: false")
        feature = _str(item, "feature", where, required=False) or default_feature
        text = _str(item, "text", where)
        chapter.requirements.append(Requirement(rid, section, text, chapter.key, feature, testable, why))
    return chapter


def load_map(directory: Path | None = None) -> RequirementMap:
    """Every requirements/*.yaml, checked: raises RequirementError with one line naming the file, line and key."""
    directory = directory or default_dir()
    files = sorted(directory.glob("*.yaml")) if directory.is_dir() else []
    if not files:
        raise RequirementError(f"{directory}: no requirement files (*.yaml)")
    chapters = [_chapter(path) for path in files]
    seen: dict[str, str] = {}
    for chapter in chapters:
        for req in chapter.requirements:
            if req.id in seen:
                raise RequirementError(f"{chapter.path}: id {req.id} is also in {seen[req.id]}")
            seen[req.id] = str(chapter.path)
    return RequirementMap(chapters)


# ---- coverage ------------------------------------------------------------------------

PROBED, UNTESTABLE, UNCOVERED = "probed", "untestable", "uncovered"


@dataclass
class Tally:
    total: int = 0
    probed: int = 0
    untestable: int = 0
    uncovered: int = 0

    def add(self, state: str) -> None:
        self.total += 1
        setattr(self, state, getattr(self, state) + 1)

    @property
    def percent(self) -> float:
        """Of the testable requirements, the share probed."""
        testable = self.total - self.untestable
        return 100.0 * self.probed / testable if testable else 100.0

    def as_dict(self) -> dict[str, object]:
        return {"total": self.total, "probed": self.probed, "untestable": self.untestable,
                "uncovered": self.uncovered, "percent": round(self.percent, 1)}  # fmt: skip


@dataclass
class Coverage:
    rmap: RequirementMap
    probes_of: dict[str, list[str]]  # requirement id -> probe ids naming it
    unknown: dict[str, list[str]]  # probe id -> ids it names that the map lacks
    contradictions: list[str]  # untestable requirements a probe names

    def state(self, req: Requirement) -> str:
        if self.probes_of.get(req.id):
            return PROBED
        return UNCOVERED if req.testable else UNTESTABLE

    def _tally(self, key) -> dict[str, Tally]:
        out: dict[str, Tally] = {}
        for req in self.rmap.requirements:
            out.setdefault(key(req), Tally()).add(self.state(req))
        return out

    def by_chapter(self) -> dict[str, Tally]:
        return self._tally(lambda r: r.chapter)

    def by_feature(self) -> dict[str, Tally]:
        return self._tally(lambda r: r.feature)

    def by_manual(self) -> dict[str, Tally]:
        return self._tally(lambda r: r.manual)

    def uncovered(self) -> list[Requirement]:
        return [r for r in self.rmap.requirements if self.state(r) == UNCOVERED]

    @property
    def problems(self) -> list[str]:
        out = [
            f"probe {pid} names {', '.join(ids)}, not in the requirement map (renamed ids: docs/requirements.md)"
            for pid, ids in self.unknown.items()
        ]
        return out + [f"requirement {rid} is marked untestable, but a probe names it" for rid in self.contradictions]

    def as_dict(self) -> dict[str, object]:
        return {
            "schema": "nvct-coverage/1",
            "manuals": {k: v.as_dict() for k, v in self.by_manual().items()},
            "chapters": [
                {
                    "chapter": c.key,
                    "manual": c.manual,
                    "number": c.chapter,
                    "title": c.title,
                    "document": c.document,
                    **self.by_chapter().get(c.key, Tally()).as_dict(),
                }  # fmt: skip
                for c in self.rmap.chapters
            ],
            "features": {k: v.as_dict() for k, v in sorted(self.by_feature().items())},
            "requirements": [
                {**r.as_dict(), "state": self.state(r), "probes": self.probes_of.get(r.id, [])}
                for r in self.rmap.requirements
            ],
            "problems": self.problems,
        }


def coverage(rmap: RequirementMap, probes: Iterable[Probe]) -> Coverage:
    known = rmap.by_id()
    probes_of: dict[str, list[str]] = {}
    unknown: dict[str, list[str]] = {}
    for probe in probes:
        for rid in probe.requirements:
            if rid in known:
                probes_of.setdefault(rid, []).append(probe.id)
            else:
                unknown.setdefault(probe.id, []).append(rid)
    contradictions = [rid for rid in probes_of if not known[rid].testable]
    return Coverage(rmap, probes_of, unknown, contradictions)


# ---- a run's requirements --------------------------------------------------------------


def requirement_verdicts(catalog: list[dict[str, Any]], results: Iterable[Any]) -> dict[int, dict[str, str]]:
    """Level -> requirement id -> PASS, FAIL, SKIP or PARTIAL, from a run
    record's catalogue and results: a requirement passes at a level when
    every probe naming it that ran there PASSed; FAIL when one of them has a
    bad verdict (FAIL, ERROR, TIMEOUT, CRASH); SKIP when each of them
    skipped; PARTIAL when some passed and the others skipped. Requirements
    that no probe of the run names are left out."""
    names = {e["id"]: e.get("requirements") or [] for e in catalog if isinstance(e, dict) and "id" in e}
    seen: dict[int, dict[str, list[Verdict]]] = {}
    for result in results:
        for rid in names.get(result.probe, []):
            seen.setdefault(result.level, {}).setdefault(rid, []).append(result.verdict)
    out: dict[int, dict[str, str]] = {}
    for level, reqs in sorted(seen.items()):
        for rid, verdicts in sorted(reqs.items()):
            if any(v.is_bad for v in verdicts):
                state = "FAIL"
            elif all(v is Verdict.PASS for v in verdicts):
                state = "PASS"
            elif all(v is Verdict.SKIP for v in verdicts):
                state = "SKIP"
            else:
                state = "PARTIAL"
            out.setdefault(level, {})[rid] = state
    return out


# ---- rendering -------------------------------------------------------------------------


def _row(name: str, t: Tally) -> list[str]:
    return [name, str(t.total), str(t.probed), str(t.untestable), str(t.uncovered), f"{t.percent:.0f}%"]


HEADER = ["", "total", "probed", "untestable", "uncovered", "covered"]


def _tables(cov: Coverage) -> list[tuple[str, list[list[str]]]]:
    chapters = cov.by_chapter()
    manuals = cov.by_manual()
    names = {"sdm": "Intel SDM (VMX)", "apm": "AMD APM (SVM)"}
    return [
        ("manual", [_row(names.get(m, m), manuals[m]) for m in MANUALS if m in manuals]),
        ("chapter", [_row(f"{c.key}: {c.title}", chapters[c.key]) for c in cov.rmap.chapters if c.key in chapters]),
        ("feature", [_row(name, t) for name, t in sorted(cov.by_feature().items(), key=lambda kv: kv[0].lower())]),
    ]


def render_text(cov: Coverage, verdicts: dict[str, dict[int, dict[str, str]]] | None = None) -> str:
    reqs = cov.rmap.requirements
    lines = [f"requirement map: {len(reqs)} requirements in {len(cov.rmap.chapters)} chapters "
             f"({', '.join(sorted({c.document for c in cov.rmap.chapters}))})", ""]  # fmt: skip
    for title, rows in _tables(cov):
        table = [[title.upper(), *[h.upper() for h in HEADER[1:]]], *rows]
        widths = [max(len(r[i]) for r in table) for i in range(len(HEADER))]
        for row in table:
            lines.append("  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(row)))
        lines.append("")
    for label, levels in (verdicts or {}).items():
        for level, states in levels.items():
            counts = {s: sum(v == s for v in states.values()) for s in ("PASS", "PARTIAL", "SKIP", "FAIL")}
            lines.append(f"run {label} L{level}: " + ", ".join(f"{n} {s}" for s, n in counts.items())
                         + f" of {len(states)} requirements its probes name")  # fmt: skip
    if verdicts:
        lines.append("")
    uncovered = cov.uncovered()
    lines.append(f"UNCOVERED ({len(uncovered)} testable requirements no probe names)")
    width = max((len(r.id) for r in uncovered), default=0)
    lines += [f"{r.id:<{width}}  {r.text}" for r in uncovered]
    for problem in cov.problems:
        lines.append(f"problem: {problem}")
    return "\n".join(lines) + "\n"


def render_markdown(cov: Coverage, verdicts: dict[str, dict[int, dict[str, str]]] | None = None) -> str:
    def esc(text: str) -> str:
        return text.replace("|", "\\|")

    out = ["# Requirement coverage", ""]
    out.append(f"{len(cov.rmap.requirements)} requirements; sources: "
               + "; ".join(sorted({c.document for c in cov.rmap.chapters})) + ".")  # fmt: skip
    for title, rows in _tables(cov):
        out += ["", f"| {title} | " + " | ".join(HEADER[1:]) + " |", "|---" + "|---:" * (len(HEADER) - 1) + "|"]
        out += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    for label, levels in (verdicts or {}).items():
        out += ["", f"## Run {esc(label)}", "", "| level | PASS | PARTIAL | SKIP | FAIL |", "|---|---:|---:|---:|---:|"]
        for level, states in levels.items():
            counts = [sum(v == s for v in states.values()) for s in ("PASS", "PARTIAL", "SKIP", "FAIL")]
            out.append(f"| L{level} | " + " | ".join(map(str, counts)) + " |")
    uncovered = cov.uncovered()
    out += ["", f"## Uncovered ({len(uncovered)})", "", "| requirement | sentence |", "|---|---|"]
    out += [f"| `{r.id}` | {esc(r.text)} |" for r in uncovered]
    if cov.problems:
        out += ["", "## Problems", ""] + [f"- {esc(p)}" for p in cov.problems]
    return "\n".join(out) + "\n"
