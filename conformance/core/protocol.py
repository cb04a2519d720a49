"""The syntax of the probe kernel's records (docs/protocol.md).

Only syntax lives here: finding a record in a console line, checking its
CRC and splitting it into fields. What the records mean for the results
is `bootlog.py`'s job.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field

PREFIX = "@NVCT1"
KINDS = frozenset({"HELLO", "FACT", "START", "NOTE", "RESULT", "END"})
MAX_RECORD = 1024

_KEY = re.compile(r"[A-Za-z0-9_.-]+\Z")
_CRC = re.compile(r"[0-9a-f]{8}\Z")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")

# Fields each kind must carry (more are allowed: newer kernels may add some).
REQUIRED = {
    "HELLO": ("proto", "build", "total", "selected"),
    "FACT": (),
    "START": ("probe",),
    "NOTE": ("probe", "msg"),
    "RESULT": ("probe", "verdict"),
    "END": ("run",),
}


class RecordError(ValueError):
    """A line holds the record prefix but not a well-formed record."""

    def __init__(self, reason: str, text: str):
        super().__init__(f"{reason}: {text[:120]!r}")
        self.reason = reason
        self.text = text


@dataclass(frozen=True)
class Record:
    seq: int
    kind: str
    fields: dict[str, str] = field(default_factory=dict)
    raw: str = ""

    @property
    def probe(self) -> str | None:
        return self.fields.get("probe")

    def get(self, key: str, default: str = "") -> str:
        return self.fields.get(key, default)


def escape(value: str) -> str:
    """Encode a value: bytes outside 0x21..0x7e, '%' and '#' as %XX."""
    out = []
    for byte in value.encode("utf-8", "replace"):
        if byte <= 0x20 or byte >= 0x7F or byte in (0x25, 0x23):
            out.append(f"%{byte:02X}")
        else:
            out.append(chr(byte))
    return "".join(out)


def unescape(value: str) -> str:
    raw = _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), value)
    # Escapes stand for bytes: re-read them as UTF-8 (the kernel writes ASCII).
    return raw.encode("latin-1", "replace").decode("utf-8", "replace")


def crc(body: str) -> str:
    return f"{zlib.crc32(body.encode('latin-1', 'replace')):08x}"


def format_record(seq: int, kind: str, fields: dict[str, str] | None = None) -> str:
    """The text of one record, as the probe kernel writes it (no newline)."""
    parts = [PREFIX, str(seq), kind]
    for key, value in (fields or {}).items():
        if not _KEY.match(key):
            raise ValueError(f"bad field key {key!r}")
        parts.append(f"{key}={escape(str(value))}")
    body = " ".join(parts)
    return f"{body} #{crc(body)}"


def parse_line(line: str) -> Record | None:
    """The record in one console line; None if the line holds none.

    Text before the prefix (an outer layer's line prefix, firmware noise
    without a newline) is ignored. Raises RecordError if the prefix is
    there but the record is truncated, corrupted or malformed.
    """
    start = line.find(PREFIX + " ")
    if start < 0:
        return None
    text = line[start:].rstrip("\r\n")
    if len(text) > MAX_RECORD:
        raise RecordError("record longer than 1024 bytes", text)
    body, sep, tail = text.rpartition(" #")
    if not sep or not _CRC.match(tail):
        raise RecordError("no CRC (truncated record?)", text)
    if crc(body) != tail:
        raise RecordError(f"CRC mismatch (want {crc(body)}, record says {tail})", text)
    words = body.split(" ")
    if len(words) < 3:
        raise RecordError("record without kind", text)
    _, seq_text, kind, *pairs = words
    if not seq_text.isdigit():
        raise RecordError(f"bad sequence number {seq_text!r}", text)
    if kind not in KINDS:
        raise RecordError(f"unknown record kind {kind!r}", text)
    fields: dict[str, str] = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not _KEY.match(key):
            raise RecordError(f"bad field {pair[:40]!r}", text)
        fields[key] = unescape(value)
    missing = [k for k in REQUIRED[kind] if k not in fields]
    if missing:
        raise RecordError(f"{kind} record without {', '.join(missing)}", text)
    return Record(seq=int(seq_text), kind=kind, fields=fields, raw=text)
