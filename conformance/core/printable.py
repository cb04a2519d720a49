"""Strings from a run record made safe to show: a record is input (a guest
wrote its details), so nothing in it may drive a terminal or break a
report's format. Every report, `nvct diff` and `nvct baseline` go through
these."""

from __future__ import annotations

import re

# What a record's strings must not carry into a report: C0 and C1 control
# characters (escape sequences, bells, carriage returns), DEL, the line and
# paragraph separators (line breaks to some readers), U+FFFE/U+FFFF (not XML)
# and lone surrogates (not UTF-8). Tab and newline are kept by `printable`.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ufffe\uffff\ud800-\udfff]")
_CONTROL_OR_BREAK = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ufffe\uffff\ud800-\udfff]")


def _shown(match: re.Match) -> str:
    c = match.group()
    if "\ud800" <= c <= "\udfff":
        return "\ufffd"
    if c == "\n":
        return "\\n"
    if c == "\t":
        return " "
    return f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"


def printable(text: object) -> str:
    """`text` with every control character shown as `\\xNN` (a lone surrogate
    as U+FFFD): nothing from a record moves a terminal's cursor, changes its
    colours or breaks a format. Newlines and tabs stay."""
    return _CONTROL.sub(_shown, str(text))


def one_line(text: object) -> str:
    """`text` on one line: as `printable`, newlines shown as `\\n`, tabs as spaces."""
    return _CONTROL_OR_BREAK.sub(_shown, str(text))
