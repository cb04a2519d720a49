"""Profiles: a YAML file describing a stack of hypervisors and a run.

    name: qemu-tcg
    description: QEMU TCG as L0, the probe kernel at L1.
    stack:                 # the hypervisors, outermost (L0) first
      - backend: qemu
        accel: tcg
        cpu: max
    probes: "*"            # optional default selection
    timeouts: {boot: 60, probe: 30}
    expect:                # optional: what the gate expects (docs/gate.md)
      - probes: "vmx.*"
        verdict: skip
        reason: no VMX under TCG

`stack[i]` is the hypervisor at level i; it runs the probe kernel at level
i + 1. Every error names the file, the line and the key.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import stat
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .catalog import SelectionError, split_globs

KeyPath = tuple[str | int, ...]


class ProfileError(Exception):
    """A profile that cannot be used; str() is 'FILE:LINE: KEY: message'."""

    def __init__(self, path: Path | str, line: int | None, key: str | None, message: str):
        self.path, self.line, self.key, self.message = str(path), line, key, message
        where = (self.path if self.path.isprintable() else repr(self.path)) + (f":{line}" if line else "")
        super().__init__(f"{where}: {key}: {message}" if key else f"{where}: {message}")


@dataclass(frozen=True)
class Source:
    """Where a profile came from, to point errors at file, line and key."""

    path: Path
    lines: dict[KeyPath, int]

    def line(self, keys: KeyPath) -> int | None:
        while keys:
            if keys in self.lines:
                return self.lines[keys]
            keys = keys[:-1]
        return self.lines.get((), None)

    def error(self, keys: KeyPath, message: str) -> ProfileError:
        return ProfileError(self.path, self.line(keys), _dotted(keys) or None, message)


def _dotted(keys: KeyPath) -> str:
    text = ""
    for key in keys:
        if isinstance(key, str) and not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", key):
            key = "<not a name>"  # shown by its line only: it may be a line of a file that is not a profile
        text += f"[{key}]" if isinstance(key, int) else (f".{key}" if text else key)
    return text


@dataclass(frozen=True)
class Timeouts:
    boot: float = 60.0  # from start until the kernel's HELLO
    # From one record of a probe to the next; None: the level's pace decides
    # (runner.Pace: ten times its longest wait between records, 15 s at least).
    probe: float | None = None


@dataclass(frozen=True)
class _RuleSpec:
    """A rule of `expect:` as written (the keys a profile may use)."""

    probes: str  # globs, comma-separated, over probe ids
    verdict: str  # pass, skip, fail (a known failure), crash or timeout (a known crash or hang)
    level: int | None = None  # the probe kernel's level; None: every level
    reason: str | None = None  # required for all but pass
    link: str | None = None  # a bug, an erratum

    def validate(self) -> tuple[str, str] | None:
        if self.verdict not in ("pass", "skip", "fail", "crash", "timeout"):
            return "verdict", f"must be pass, skip, fail, crash or timeout, not {self.verdict!r}"
        if self.verdict != "pass" and not (self.reason or "").strip():
            return "", f"missing key: reason (a rule with verdict {self.verdict} must say why)"
        if self.level is not None and self.level < 1:
            return "level", "must be 1 or more (the level the probe kernel runs at)"
        return None


@dataclass(frozen=True)
class ExpectRule:
    """One rule of a profile's `expect:` section, with where it was written
    (conformance/gate/expect.py applies the rules)."""

    probes: str
    verdict: str
    level: int | None = None
    reason: str | None = None
    link: str | None = None
    file: str = ""
    line: int | None = None

    @property
    def globs(self) -> list[str]:
        return split_globs(self.probes)

    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"probes": self.probes, "verdict": self.verdict}
        for key in ("level", "reason", "link"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        out["file"], out["line"] = self.file, self.line
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExpectRule:
        return cls(**{k: data.get(k) for k in ("probes", "verdict", "level", "reason", "link", "line")},
                   file=data.get("file", ""))  # fmt: skip


@dataclass(frozen=True)
class LevelSpec:
    """One hypervisor of the stack, with its backend's own settings."""

    level: int  # the level this hypervisor runs at (0 = the host)
    backend: str
    settings: Any  # the backend's Settings dataclass
    keys: KeyPath = ()


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    path: Path
    stack: tuple[LevelSpec, ...]
    probes: tuple[str, ...] = ()
    timeouts: Timeouts = field(default_factory=Timeouts)
    source: Source | None = None
    expect: tuple[ExpectRule, ...] | None = None  # None: no `expect:` section

    @property
    def probe_levels(self) -> list[int]:
        """The levels the probe kernel runs at."""
        return [spec.level + 1 for spec in self.stack]


# ---- reading YAML with line numbers ------------------------------------------

# Bounds on what a profile may be (docs/robustness.md, "Hostile input"). A
# profile is a small hand-written file; these are far above any real one
# and far below what would cost nvct noticeable time or memory.
MAX_BYTES = 1 << 20  # the file, and every file it includes
MAX_DEPTH = 32  # lists and mappings nested in each other
MAX_VALUES = 100_000  # values once aliases are expanded (an alias counts what it stands for)
MAX_TEXT = 1 << 20  # characters of all strings once aliases are expanded
MAX_ITEMS = 4096  # items of one list, keys of one mapping
MAX_STRING = 16384  # characters of one string
MAX_SECONDS = 86400.0  # a timeout or an interval: more than 0, at most a day
MAX_NUMBER = 1 << 53  # any other number, either sign


def _read(path: Path) -> str:
    """The text of a profile file: a regular file of at most MAX_BYTES, in
    UTF-8. Never opens anything else (a FIFO would block, a device may never
    end), and says nothing of the contents of a file it refuses."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ProfileError(path, None, None, "no such profile file") from None
    except OSError as exc:
        raise ProfileError(path, None, None, f"cannot read: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise ProfileError(
            path, None, None, f"not a regular file ({_file_kind(info.st_mode)}): a profile is a YAML file"
        )
    if info.st_size > MAX_BYTES:
        raise ProfileError(path, None, None, f"{info.st_size} bytes: a profile may have at most {MAX_BYTES}")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise ProfileError(path, None, None, f"cannot read: {exc.strerror or exc}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # replaced since the stat above
            raise ProfileError(path, None, None, "not a regular file: a profile is a YAML file")
        chunks, size = [], 0
        while size <= MAX_BYTES:
            chunk = os.read(fd, MAX_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise ProfileError(path, None, None, f"cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if size > MAX_BYTES:
        raise ProfileError(path, None, None, f"more than {MAX_BYTES} bytes: a profile may have at most {MAX_BYTES}")
    data = b"".join(chunks)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ProfileError(path, line, None, "not UTF-8 text") from None


def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):  # fmt: skip
        if test(mode):
            return name
    return "not a plain file"


class _Limit(Exception):
    def __init__(self, line: int, message: str):
        self.line, self.message = line, message


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader with bounds on nesting (its composer recurses
    once per level: without one, a few thousand `[` raise RecursionError)
    and on the length of a list or mapping, checked as it is read."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self._depth >= MAX_DEPTH:
            raise _Limit(self.peek_event().start_mark.line + 1, f"lists and mappings nested more than {MAX_DEPTH} deep")
        if parent is not None and len(parent.value) >= MAX_ITEMS and (isinstance(index, int) or index is None):
            what = "items" if isinstance(parent, yaml.SequenceNode) else "keys"
            raise _Limit(parent.start_mark.line + 1, f"more than {MAX_ITEMS} {what} in one list or mapping")
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _compose(path: Path) -> tuple[Any, dict[KeyPath, int]]:
    text = _read(path)
    loader = None
    try:
        loader = _Loader(text)  # its reader refuses some characters (C0 controls) at once
        node = loader.get_single_node()
    except _Limit as exc:
        raise ProfileError(path, exc.line, None, exc.message) from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow in a file, as it is written
        line = text.count("\n", 0, exc.position) + 1
        raise ProfileError(
            path, line, None, f"not valid YAML: character U+{exc.character:04X} is not allowed"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = " ".join((getattr(exc, "problem", None) or str(exc)).split())  # one line
        raise ProfileError(path, mark.line + 1 if mark else None, None, f"not valid YAML: {problem}") from None
    finally:
        if loader is not None:
            loader.dispose()
    lines: dict[KeyPath, int] = {}
    scalars = yaml.SafeLoader("")  # builds scalar values (ints, bools, ...) from nodes
    budget = {"values": MAX_VALUES, "text": MAX_TEXT}

    def spend(node: yaml.Node, keys: KeyPath) -> None:
        """Count a value against the bounds: an alias is counted again at
        every use, so that a few lines of aliases cannot stand for millions
        of values (an "alias bomb")."""
        budget["values"] -= 1
        if isinstance(node, yaml.ScalarNode):
            if len(node.value) > MAX_STRING:
                raise ProfileError(path, node.start_mark.line + 1, _dotted(keys) or None,
                                   f"a string of {len(node.value)} characters (at most {MAX_STRING})")  # fmt: skip
            budget["text"] -= len(node.value)
        elif len(node.value) > MAX_ITEMS:
            what = "items" if isinstance(node, yaml.SequenceNode) else "keys"
            raise ProfileError(path, node.start_mark.line + 1, _dotted(keys) or None,
                               f"{len(node.value)} {what} (at most {MAX_ITEMS})")  # fmt: skip
        if budget["values"] < 0 or budget["text"] < 0:
            raise ProfileError(path, node.start_mark.line + 1, _dotted(keys) or None,
                               f"the profile expands to more than {MAX_VALUES} values or {MAX_TEXT} characters "
                               "(aliases count each time they are used)")  # fmt: skip

    def convert(node: yaml.Node, keys: KeyPath) -> Any:
        spend(node, keys)
        lines[keys] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = key_node.value
                if not isinstance(key_node, yaml.ScalarNode) or not isinstance(key, str):
                    raise ProfileError(path, key_node.start_mark.line + 1, _dotted(keys) or None, "keys must be names")
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise ProfileError(path, key_node.start_mark.line + 1, _dotted(keys) or None,
                                       "merge keys (<<) are not supported")  # fmt: skip
                spend(key_node, keys)
                if key in out:
                    raise ProfileError(path, key_node.start_mark.line + 1, _dotted(keys + (key,)), "key given twice")
                out[key] = convert(value_node, keys + (key,))
                lines[keys + (key,)] = key_node.start_mark.line + 1
            return out
        if isinstance(node, yaml.SequenceNode):
            return [convert(item, keys + (i,)) for i, item in enumerate(node.value)]
        try:
            return scalars.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:  # an unknown tag, 2001-02-30
            problem = getattr(exc, "problem", None) or str(exc)
            raise ProfileError(
                path, node.start_mark.line + 1, _dotted(keys) or None, f"not a valid value: {problem}"
            ) from None

    if node is None:
        raise ProfileError(path, None, None, "empty profile")
    return convert(node, ()), lines


# ---- typed settings -----------------------------------------------------------


def _check_type(value: Any, hint: Any, keys: KeyPath, source: Source) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        hint = next(o for o in options if o is not type(None))
        origin = typing.get_origin(hint)
    if origin is tuple:
        if not isinstance(value, list):
            raise source.error(keys, f"must be a list, not {_kind(value)}")
        (item,) = typing.get_args(hint)[:1]
        return tuple(_check_type(v, item, keys + (i,), source) for i, v in enumerate(value))
    if hint is bool:
        if not isinstance(value, bool):
            raise source.error(keys, f"must be true or false, not {_kind(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise source.error(keys, f"must be a whole number, not {_kind(value)}")
        return _check_number(value, keys, source)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise source.error(keys, f"must be a number, not {_kind(value)}")
        return float(_check_number(value, keys, source))
    if hint is str:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise source.error(keys, f"must be a string, not {_kind(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise source.error(keys, f"must be a string, not {value}")
        text = str(value)
        if keys[:1] == ("stack",) and any(_is_control(c) for c in text):
            # A hypervisor's setting ends up in a command line, a bochsrc line, a
            # config file: a control character (a newline, NUL, ESC) would cut
            # or bend it there.
            bad = next(c for c in text if _is_control(c))
            raise source.error(keys, f"control character {bad!r} in a setting (one line of printable text)")
        return text
    raise TypeError(f"unsupported settings type {hint!r}")


def _is_control(c: str) -> bool:
    return ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 or c in "\u2028\u2029"


def _check_number(value: float, keys: KeyPath, source: Source) -> float:
    """Finite and in range: NaN compares false with every bound, and
    infinity would switch a watchdog off."""
    if isinstance(value, float) and not math.isfinite(value):
        raise source.error(keys, f"must be a finite number, not {value}")
    name = keys[-1] if keys and isinstance(keys[-1], str) else ""
    if keys[:1] == ("timeouts",) or name.endswith(("timeout", "interval")):
        if not 0 < value <= MAX_SECONDS:
            raise source.error(keys, f"must be more than 0 and at most {MAX_SECONDS:g} seconds, not {value:g}")
    elif abs(value) > MAX_NUMBER:
        raise source.error(keys, f"out of range: {value:.6g} (at most {MAX_NUMBER} either way)")
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", bool: "a boolean", str: "a string"}.get(
        type(value), type(value).__name__
    )


def build_dataclass(cls: type, data: Any, keys: KeyPath, source: Source, skip: frozenset[str] = frozenset()) -> Any:
    """An instance of a dataclass from a YAML mapping, or a ProfileError."""
    if not isinstance(data, dict):
        raise source.error(keys, f"must be a mapping, not {_kind(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for key, value in data.items():
        if key in skip:
            continue
        if key not in fields:
            known = ", ".join(sorted(set(fields) | skip))
            raise source.error(keys + (key,), f"unknown key (known: {known})")
        values[key] = _check_type(value, hints[key], keys + (key,), source)
    missing = [
        name
        for name, f in fields.items()
        if name not in values and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise source.error(keys, f"missing key: {', '.join(missing)}")
    instance = cls(**values)
    validate = getattr(instance, "validate", None)
    if validate:
        problem = validate()
        if problem:
            key, message = problem
            raise source.error(keys + ((key,) if key else ()), message)
    return instance


# ---- the profile ----------------------------------------------------------------

TOP_KEYS = {"include", "name", "description", "stack", "probes", "timeouts", "expect"}


def _load_expect(data: Any, source: Source, levels: list[int]) -> tuple[ExpectRule, ...]:
    if data is None:
        return ()
    if not isinstance(data, list):
        raise source.error(("expect",), f"must be a list of rules, not {_kind(data)}")
    rules = []
    for index, entry in enumerate(data):
        keys: KeyPath = ("expect", index)
        if isinstance(entry, dict) and isinstance(entry.get("verdict"), str):
            entry = {**entry, "verdict": entry["verdict"].lower()}
        spec = build_dataclass(_RuleSpec, entry, keys, source)
        try:
            globs = split_globs(spec.probes)
        except SelectionError as exc:
            raise source.error(keys + ("probes",), str(exc)) from None
        if any(g.startswith("-") for g in globs):
            raise source.error(keys + ("probes",), "a rule's globs cannot exclude ('-'): write a later rule instead")
        if spec.level is not None and spec.level not in levels:
            have = ", ".join(f"L{lv}" for lv in levels)
            raise source.error(keys + ("level",), f"level {spec.level}: this stack runs the probe kernel at {have}")
        rules.append(ExpectRule(**dataclasses.asdict(spec), file=str(source.path), line=source.line(keys)))
    return tuple(rules)


def _include(data: dict, source: Source, chain: tuple[Path, ...]) -> Profile | None:
    if "include" not in data:
        return None
    target = data["include"]
    if not isinstance(target, str) or not target:
        raise source.error(("include",), f"must be a profile file name, not {_kind(target)}")
    if not target.isprintable():
        raise source.error(("include",), f"a character that cannot be printed in the file name {target!r}")
    try:
        path = (source.path.parent / target).resolve()
    except (OSError, RuntimeError) as exc:  # a loop of symbolic links, a name too long
        raise source.error(("include",), f"cannot follow {target!r}: {getattr(exc, 'strerror', None) or exc}") from None
    # A bare file name not beside the profile, or naming the profile itself
    # (a user's qemu-tcg.yaml that extends the shipped one), is a shipped profile.
    bare = os.sep not in target and "/" not in target
    if bare and (not path.exists() or path == chain[-1]) and (profiles_dir() / target).is_file():
        path = (profiles_dir() / target).resolve()
    if path in chain:
        names = " -> ".join(p.name for p in (*chain, path))
        raise source.error(("include",), f"profiles include each other in a loop: {names}")
    if path.suffix not in (".yaml", ".yml"):
        # Only a profile is read: an error about any other file could show a line of it.
        raise source.error(("include",), f"must name a profile (a .yaml or .yml file), not {path}")
    if not path.exists():
        raise source.error(("include",), f"no such profile file: {path}")
    return load_profile(path, chain)


DEFAULT_PROFILE = "qemu-tcg"  # what `nvct run` and the pytest plugin run without a profile

# Where a profile came from (`nvct profiles`): one of the profiles that come
# with nvct, one in the user's folder, or a file named by its path.
SHIPPED, USER, PATH = "shipped", "user", "path"
SUFFIXES = (".yaml", ".yml")


def profiles_dir() -> Path:
    """The profiles that come with nvct: inside the package when it was
    installed from the wheel (the build puts them in conformance/shipped/),
    else profiles/ of this checkout (a clone, an editable install)."""
    package = Path(__file__).resolve().parents[1]
    shipped = package / "shipped" / "profiles"
    return shipped if shipped.is_dir() else package.parent / "profiles"


def user_profiles_dir() -> tuple[Path | None, str | None]:
    """The user's profiles: $XDG_CONFIG_HOME/nvct/profiles, by default
    ~/.config/nvct/profiles, and a note when $XDG_CONFIG_HOME was ignored
    (the XDG Base Directory specification: a relative path is invalid and
    is ignored). (None, note) when there is no home folder either."""
    note = None
    config = os.environ.get("XDG_CONFIG_HOME", "")
    if config and not os.path.isabs(config):
        shown = config if config.isprintable() else repr(config)
        note = f"XDG_CONFIG_HOME={shown} is not an absolute path: ignored, as the XDG Base Directory specification says"
        config = ""
    if not config:
        try:
            home = Path.home()
        except (RuntimeError, KeyError):  # no HOME and no passwd entry
            return None, note
        if not home.is_absolute():
            return None, note
        config = str(home / ".config")
    return Path(config) / "nvct" / "profiles", note


def _present(path: Path) -> bool:
    """Whether a profile file is there; a folder on the way that cannot be
    searched (not a folder, no permission) is an error naming the file."""
    try:
        os.stat(path)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise ProfileError(path, None, None, f"cannot look for a profile there: {exc.strerror or exc}") from None
    return True


def _named(folder: Path, name: str) -> Path | None:
    for suffix in SUFFIXES:
        if _present(folder / f"{name}{suffix}"):
            return folder / f"{name}{suffix}"
    return None


def find_profile(name: str | None) -> tuple[Path, str]:
    """A profile as `nvct run --profile` and `pytest --nvct-profile` take it:
    (its file, SHIPPED, USER or PATH). A path (it has a '/', or is a file
    here) is used as it is; a name (with or without .yaml) is looked up in
    the user's folder first, so that a user profile of a shipped profile's
    name shadows it, then among the shipped ones. Raises ProfileError."""
    name = name or DEFAULT_PROFILE
    if not name.isprintable():
        raise ProfileError(name, None, None, "not a profile name or file")
    path = Path(name)
    if os.sep in name or "/" in name or _present(path):
        return path, PATH
    stem = path.stem if path.suffix in SUFFIXES else name
    if stem in ("", ".", ".."):
        raise ProfileError(name, None, None, "not a profile name or file")
    user, note = user_profiles_dir()
    found = _named(user, stem) if user else None
    if found:
        return found, USER
    found = _named(profiles_dir(), stem)
    if found:
        return found, SHIPPED
    where = f" or in {user}" if user else ""
    why = f" ({note})" if note else ""
    raise ProfileError(name, None, None, f"no such profile file, and no profile of that name shipped{where}{why} "
                                         f"(`nvct profiles` lists them)")  # fmt: skip


def resolve_profile(name: str | None) -> Path:
    """The file of a profile name or path (find_profile without where it came from)."""
    return find_profile(name)[0]


def _listing(folder: Path) -> list[Path]:
    """The profile files of a folder (none when it does not exist); raises
    ProfileError naming the folder when it cannot be read."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise ProfileError(folder, None, None, f"cannot list the profiles there: {exc.strerror or exc}") from None
    return sorted((folder / n for n in names if Path(n).suffix in SUFFIXES and not n.startswith(".")),
                  key=lambda p: (p.stem, p.suffix))  # fmt: skip


@dataclass(frozen=True)
class ProfileEntry:
    """One line of `nvct profiles`."""

    name: str  # what --profile takes
    origin: str  # SHIPPED, USER or PATH
    path: Path
    description: str | None  # None when the profile does not load
    error: str | None = None  # why it does not load
    shadowed_by: Path | None = None  # a shipped profile a user profile of the same name hides
    shadows: Path | None = None  # the shipped profile this user profile hides

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "origin": self.origin,
            "path": str(self.path),
            "description": self.description,
            "error": self.error,
            "shadowed_by": str(self.shadowed_by) if self.shadowed_by else None,
            "shadows": str(self.shadows) if self.shadows else None,
        }


def _entry(path: Path, origin: str, **extra: Any) -> ProfileEntry:
    try:
        description: str | None = load_profile(path).description
        error = None
    except ProfileError as exc:
        description, error = None, str(exc)
    return ProfileEntry(path.stem, origin, path, description, error, **extra)


def list_profiles(names: list[str] | None = None) -> tuple[list[ProfileEntry], list[str]]:
    """Every shipped and user profile (or the ones named), each loaded to
    get its description or the error that stops it, and notes on folders
    that could not be read. A broken profile is an entry, not an exception;
    a name that is not found raises ProfileError."""
    if names:
        return [_entry(*find_profile(name)) for name in names], []
    notes: list[str] = []
    user, note = user_profiles_dir()
    if note:
        notes.append(note)
    users: list[Path] = []
    if user is not None:
        try:
            users = _listing(user)
        except ProfileError as exc:
            notes.append(str(exc))
    shipped = _listing(profiles_dir())
    by_name = {p.stem: p for p in users}
    shipped_names = {p.stem: p for p in shipped}
    entries = [_entry(p, SHIPPED, shadowed_by=by_name.get(p.stem)) for p in shipped]
    entries += [_entry(p, USER, shadows=shipped_names.get(p.stem)) for p in users]
    return entries, notes


def load_profile(path: Path | str, _including: tuple[Path, ...] = ()) -> Profile:
    """Read and validate a profile; raises ProfileError.

    `include: FILE` (relative to the profile) starts from another complete
    profile: every key given here replaces the included one's, except
    `expect:`, whose rules follow the included profile's (so they win).
    """
    from ..backends import BACKENDS  # the registry knows each backend's settings

    path = Path(path)
    data, lines = _compose(path)
    source = Source(path, lines)
    if not isinstance(data, dict):
        raise source.error((), f"a profile is a mapping, not {_kind(data)}")
    for key in data:
        if key not in TOP_KEYS:
            raise source.error((key,), f"unknown key (known: {', '.join(sorted(TOP_KEYS))})")
    base = _include(data, source, _including + (path.resolve(),))
    name = _check_type(data.get("name", path.stem), str, ("name",), source)
    description = _check_type(data.get("description", base.description if base else ""), str, ("description",), source)

    stack_data = data.get("stack")
    if stack_data is None and base is None:
        raise source.error((), "missing key: stack")
    if stack_data is not None and (not isinstance(stack_data, list) or not stack_data):
        raise source.error(("stack",), "must be a non-empty list of hypervisors, outermost (L0) first")
    stack: list[LevelSpec] = list(base.stack) if stack_data is None and base is not None else []
    for index, entry in enumerate(stack_data or []):
        keys: KeyPath = ("stack", index)
        if not isinstance(entry, dict):
            raise source.error(keys, f"must be a mapping, not {_kind(entry)}")
        backend_name = entry.get("backend")
        if backend_name is None:
            raise source.error(keys, "missing key: backend")
        if not isinstance(backend_name, str):
            raise source.error(keys + ("backend",), f"must be a backend name, not {_kind(backend_name)}")
        if backend_name not in BACKENDS:
            raise source.error(
                keys + ("backend",), f"unknown backend {backend_name!r} (known: {', '.join(sorted(BACKENDS))})"
            )
        backend = BACKENDS[backend_name]
        settings = build_dataclass(backend.Settings, entry, keys, source, skip=frozenset({"backend"}))
        misplaced = backend.placement_error(settings, index)
        if misplaced:
            raise source.error(keys + ("backend",), f"backend {backend_name!r} {misplaced}")
        stack.append(LevelSpec(level=index, backend=backend_name, settings=settings, keys=keys))

    probes: tuple[str, ...] = base.probes if base else ()
    if "probes" in data:
        raw = data["probes"]
        if not isinstance(raw, (str, list)) or (isinstance(raw, list) and not all(isinstance(g, str) for g in raw)):
            raise source.error(("probes",), "must be a glob string or a list of globs")
        try:
            probes = tuple(split_globs(raw))
        except SelectionError as exc:
            raise source.error(("probes",), str(exc)) from None

    timeouts = base.timeouts if base else Timeouts()
    if "timeouts" in data:
        timeouts = build_dataclass(Timeouts, data["timeouts"], ("timeouts",), source)  # in range: _check_number

    expect = base.expect if base else None
    if "expect" in data:
        own = _load_expect(data["expect"], source, [spec.level + 1 for spec in stack])
        expect = (tuple(expect) if expect else ()) + tuple(own)
    elif expect is not None:
        levels = {spec.level + 1 for spec in stack}
        for rule in expect:
            if rule.level is not None and rule.level not in levels:
                raise source.error(("include",), f"included rule {rule.where()} names level {rule.level}, "
                                                 f"which this stack does not have")  # fmt: skip

    return Profile(
        name=name,
        description=description,
        path=path,
        stack=tuple(stack),
        probes=probes,
        timeouts=timeouts,
        source=source,
        expect=expect,
    )
