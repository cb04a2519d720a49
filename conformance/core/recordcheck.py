"""The shape of a run record, checked before anything reads it.

Run records come from other hosts and from pull requests. `nvct report`,
`diff`, `merge` and `baseline` read every field below; each is checked for
its JSON type (and, where it matters, its range) so that a damaged or
hostile record ends in one line naming the field, never in a traceback
further down. Keys nvct does not read are allowed, but the whole document is
bounded in depth and every string (keys too) must be text: a lone surrogate
(`"\\ud800"` in the JSON) cannot be written out as UTF-8 by any report.
"""

from __future__ import annotations

import math
import re
from typing import Any

from .catalog import SelectionError, split_globs

MAX_DEPTH = 32  # a real record nests 5 deep
MAX_LEVEL = 1000


class ShapeError(Exception):
    """`where`: the field, as `results[3].level`."""

    def __init__(self, where: str, message: str):
        super().__init__(f"{where}: {message}" if where else message)


def _type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _want(where: str, what: str, value: Any) -> ShapeError:
    return ShapeError(where, f"want {what}, not {_type(value)}")


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_.-]+")


def _join(where: str, key: str | int) -> str:
    """`where.key`, `where[3]`; a key that is not plain is quoted (repr:
    control characters escaped), so that a message stays one line."""
    if isinstance(key, int):
        return f"{where}[{key}]"
    if not _PLAIN_KEY.fullmatch(key):
        key = repr(key)
    return f"{where}.{key}" if where else key


def check_text(data: Any, where: str = "") -> None:
    """Depth and encoding of a whole document, without recursion (a record
    nested 100,000 deep must not exhaust the stack here either)."""
    stack: list[tuple[Any, str, int]] = [(data, where, 0)]
    while stack:
        value, at, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ShapeError(at, f"nested more than {MAX_DEPTH} deep")
        if isinstance(value, str):
            _no_surrogate(value, at)
        elif isinstance(value, float) and not math.isfinite(value):
            raise ShapeError(at, f"want a finite number, not {value}")
        elif isinstance(value, dict):
            for key, item in value.items():
                _no_surrogate(key, at)
                stack.append((item, _join(at, key), depth + 1))
        elif isinstance(value, list):
            stack.extend((item, _join(at, i), depth + 1) for i, item in enumerate(value))


def _no_surrogate(text: str, where: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ShapeError(where, f"a lone surrogate (U+{ord(text[exc.start]):04X}) is not text") from None


# ---- the fields nvct reads -------------------------------------------------------------


def _given(data: dict, at: str, key: str, required: bool, null: bool) -> bool:
    """Whether `key` holds a value to check: absent (an error when required)
    or null (where null is allowed) is nothing to check."""
    if key not in data:
        if required:
            raise ShapeError(at, "missing")
        return False
    return not (data[key] is None and null)


def _str(data: dict, key: str, where: str, required: bool = False, null: bool = False) -> None:
    at = _join(where, key)
    if not _given(data, at, key, required, null):
        return
    if not isinstance(data[key], str):
        raise _want(at, "a string" + (" or null" if null else ""), data[key])


def _int(data: dict, key: str, where: str, lo: int, hi: int, required: bool = False, null: bool = False) -> None:
    at = _join(where, key)
    if not _given(data, at, key, required, null):
        return
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise _want(at, "a whole number" + (" or null" if null else ""), value)
    if not lo <= value <= hi:
        raise ShapeError(at, f"want a whole number from {lo} to {hi}")


def _obj(data: dict, key: str, where: str, required: bool = False, null: bool = False) -> dict | None:
    at = _join(where, key)
    if not _given(data, at, key, required, null):
        return None
    value = data[key]
    if not isinstance(value, dict):
        raise _want(at, "an object", value)
    return value


def _list(data: dict, key: str, where: str) -> list:
    at = _join(where, key)
    value = data.get(key, [])
    if not isinstance(value, list):
        raise _want(at, "an array", value)
    return value


def _strings(data: dict, key: str, where: str) -> None:
    for i, item in enumerate(_list(data, key, where)):
        if not isinstance(item, str):
            raise _want(f"{_join(where, key)}[{i}]", "a string", item)


def _str_values(data: dict, key: str, where: str) -> None:
    """An object of strings (facts, the probe kernel's build)."""
    obj = _obj(data, key, where)
    for name, value in (obj or {}).items():
        if not isinstance(value, str):
            raise _want(_join(_join(where, key), name), "a string", value)


def _scalar_values(data: dict, key: str, where: str, lists: bool = False) -> None:
    """An object of strings, numbers, booleans, nulls (and, with `lists`, arrays of them)."""
    obj = _obj(data, key, where)
    for name, value in (obj or {}).items():
        at = _join(_join(where, key), name)
        items = value if lists and isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, (dict, list)):
                raise _want(at, "a string, number or boolean", item)


def _objects(data: dict, key: str, where: str) -> list[tuple[str, dict]]:
    out = []
    for i, item in enumerate(_list(data, key, where)):
        at = f"{_join(where, key)}[{i}]"
        if not isinstance(item, dict):
            raise _want(at, "an object", item)
        out.append((at, item))
    return out


VERDICTS = ("PASS", "SKIP", "FAIL", "ERROR", "TIMEOUT", "CRASH")
EXPECTED = ("pass", "skip", "fail", "crash", "timeout")


def check_run(data: Any, where: str = "") -> None:
    """One run (schema nvct-run/1): the fields the reports and comparisons read."""
    if not isinstance(data, dict):
        raise _want(where, "an object", data)
    for key in ("profile", "environment"):
        obj = _obj(data, key, where, required=key == "profile")
        for name in ("name", "path", "description") if key == "profile" else ("host", "kernel", "machine", "python"):
            if obj is not None:
                _str(obj, name, _join(where, key), null=name == "description")
    _str(data, "started", where, required=True)
    _str(data, "finished", where, null=True)
    _str(data, "status", where)
    _str(data, "nvct_version", where)
    _strings(data, "selection", where)
    for at, entry in _objects(data, "catalog", where):
        for name in ("id", "group", "feature", "description", "reference"):
            _str(entry, name, at)
        _strings(entry, "requirements", at)
    for at, level in _objects(data, "levels", where):
        _int(level, "level", at, 0, MAX_LEVEL, required=True)
        _int(level, "boots", at, 0, 2**31)
        hv = _obj(level, "hypervisor", at)
        if hv is not None:
            hat = _join(at, "hypervisor")
            for name in ("backend", "version"):
                _str(hv, name, hat)
            _scalar_values(hv, "settings", hat, lists=True)
            _scalar_values(hv, "runtime", hat)
        _str_values(level, "facts", at)
        _str_values(level, "kernel", at)
        _strings(level, "problems", at)
    for at, result in _objects(data, "results", where):
        _str(result, "probe", at, required=True)
        _int(result, "level", at, 0, MAX_LEVEL, required=True)
        _str(result, "verdict", at, required=True)
        if result["verdict"].upper() not in VERDICTS:
            raise ShapeError(_join(at, "verdict"), f"want one of {', '.join(VERDICTS)}, not {result['verdict']!r}")
        _str(result, "detail", at)
        duration = result.get("duration_s")
        if duration is not None and (isinstance(duration, bool) or not isinstance(duration, (int, float))):
            raise _want(_join(at, "duration_s"), "a number or null", duration)
        _strings(result, "notes", at)
        _strings(result, "console", at)
        _int(result, "boot", at, 0, 2**31)
    for at, item in _objects(data, "not_run", where):
        _str(item, "probe", at)
        _int(item, "level", at, 0, MAX_LEVEL)
    expect = _obj(data, "expect", where, null=True)
    if expect:
        eat = _join(where, "expect")
        _str(expect, "profile", eat)
        _int(expect, "line", eat, 0, 2**31, null=True)
        for at, rule in _objects(expect, "rules", eat):
            _str(rule, "probes", at, required=True)
            try:
                split_globs(rule["probes"])
            except SelectionError as exc:
                raise ShapeError(_join(at, "probes"), str(exc)) from None
            _str(rule, "verdict", at, required=True)
            if rule["verdict"] not in EXPECTED:
                raise ShapeError(_join(at, "verdict"), f"want one of {', '.join(EXPECTED)}, not {rule['verdict']!r}")
            _int(rule, "level", at, 0, MAX_LEVEL, null=True)
            for name in ("reason", "link"):
                _str(rule, name, at, null=True)
            _str(rule, "file", at)
            _int(rule, "line", at, 0, 2**31, null=True)
