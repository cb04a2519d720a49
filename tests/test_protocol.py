"""The record syntax: escaping, CRC, and every way a record can be damaged."""

import zlib

import pytest

from conformance.core.protocol import RecordError, escape, format_record, parse_line, unescape


def test_round_trip_with_awkward_values():
    fields = {"probe": "svm.npt.nx", "verdict": "FAIL", "detail": "exit 0x400 (NPF) 100% #wrong\tta b"}
    line = format_record(7, "RESULT", fields)
    record = parse_line(line)
    assert record is not None
    assert (record.seq, record.kind, record.fields) == (7, "RESULT", fields)


def test_crc_is_zlib_crc32_of_everything_before_the_hash():
    line = format_record(0, "END", {"run": "3"})
    body, _, crc = line.rpartition(" #")
    assert body == "@NVCT1 0 END run=3"
    assert crc == f"{zlib.crc32(body.encode()):08x}"


def test_escape_is_what_the_protocol_says():
    assert escape("a b%c#d=e") == "a%20b%25c%23d=e"
    assert escape("\x01\x7f") == "%01%7F"
    assert unescape("a%20b%25c%23d") == "a b%c#d"


def test_noise_is_ignored_and_prefixes_before_a_record_are_dropped():
    assert parse_line("SeaBIOS (version 1.16)") is None
    assert parse_line("") is None
    line = format_record(3, "START", {"probe": "cpu.cpuid.basic", "index": "0"})
    record = parse_line("(d1) " + line + "\r")
    assert record is not None and record.probe == "cpu.cpuid.basic"


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda s: s[:-3], "no CRC"),
        (lambda s: s.replace("probe=cpu", "probe=cpx"), "CRC mismatch"),
        (lambda s: s[: len(s) // 2], "no CRC"),
        (lambda s: s[:-1] + ("0" if s[-1] != "0" else "1"), "CRC mismatch"),
    ],
)
def test_damaged_records_raise(damage, reason):
    line = format_record(3, "START", {"probe": "cpu.cpuid.basic", "index": "0"})
    with pytest.raises(RecordError) as exc:
        parse_line(damage(line))
    assert reason in exc.value.reason


def _sealed(body: str) -> str:
    return f"{body} #{zlib.crc32(body.encode()):08x}"


@pytest.mark.parametrize(
    "body, reason",
    [
        ("@NVCT1 x START probe=a", "bad sequence number"),
        ("@NVCT1 1 BOGUS probe=a", "unknown record kind"),
        ("@NVCT1 1 START probe", "bad field"),
        ("@NVCT1 1 START index=0", "START record without probe"),
        ("@NVCT1 1", "record without kind"),
    ],
)
def test_malformed_but_intact_records_raise(body, reason):
    with pytest.raises(RecordError) as exc:
        parse_line(_sealed(body))
    assert reason in exc.value.reason


def test_overlong_record_is_rejected():
    with pytest.raises(RecordError, match="longer than 1024"):
        parse_line(format_record(1, "NOTE", {"probe": "a", "msg": "x" * 1100}))
