"""Fuzzing with hypothesis: the record parser, the boot log and the profile
loader take anything and raise nothing but their documented errors."""

import os
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conformance.core.bootlog import BootLog
from conformance.core.profile import ProfileError, load_profile
from conformance.core.protocol import PREFIX, RecordError, format_record, parse_line

# bench/fuzz.py sets this for a long run; the test suite keeps to a few hundred.
LONG = int(os.environ.get("NVCT_FUZZ_EXAMPLES", "0"))


def examples(n: int) -> int:
    return LONG or n


KINDS = ["HELLO", "FACT", "START", "NOTE", "RESULT", "END", "BOGUS"]
keys = st.text(string.ascii_letters + string.digits + "._-", min_size=1, max_size=12)
values = st.text(max_size=40)
records = st.builds(
    lambda seq, kind, fields: format_record(seq, kind, fields),
    st.integers(0, 50),
    st.sampled_from(KINDS[:-1]),
    st.dictionaries(
        st.sampled_from(["probe", "verdict", "detail", "msg", "run", "selected", "proto", "build", "total", "ticks"])
        | keys,
        values,
        max_size=6,
    ),  # fmt: skip
)


def mutate(line: str, data) -> str:
    """Damage a line the ways a serial line does: drop, flip, cut, splice."""
    chars = list(line)
    for _ in range(data.draw(st.integers(0, 3))):
        if not chars:
            break
        i = data.draw(st.integers(0, len(chars) - 1))
        op = data.draw(st.sampled_from(["drop", "flip", "cut", "dup"]))
        if op == "drop":
            del chars[i]
        elif op == "flip":
            chars[i] = chr(ord(chars[i]) ^ (1 << data.draw(st.integers(0, 6))))
        elif op == "cut":
            chars = chars[:i]
        else:
            chars.insert(i, chars[i])
    return "".join(chars)


@settings(max_examples=examples(400), suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200))
def test_parse_line_never_raises_anything_else(text):
    try:
        parse_line(text)
        parse_line(PREFIX + " " + text)
    except RecordError:
        pass


@settings(max_examples=examples(300))
@given(records)
def test_well_formed_records_round_trip(line):
    try:
        record = parse_line(line)
    except RecordError as exc:  # only for fields a kind requires and that were not drawn
        assert "record without" in exc.reason
        return
    assert record is not None and record.raw == line


@settings(max_examples=examples(200), suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(records, max_size=25), st.data())
def test_boot_log_survives_any_damage(lines, data):
    log = BootLog(level=1, expected=["a.one", "a.two"])
    for line in lines:
        log.feed(mutate(line, data) if data.draw(st.booleans()) else line)
    log.finish(data.draw(st.sampled_from(["end", "eof", "timeout", "reset"])), "fuzz", ["x"])
    for probe, result in log.results.items():
        assert result.probe == probe and result.level == 1
        assert result.detail or result.verdict.value == "PASS"


yaml_scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 70000), st.text(max_size=12),
                         st.floats(allow_nan=True))  # fmt: skip
yaml_values = st.recursive(
    yaml_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
profile_shapes = st.fixed_dictionaries(
    {},
    optional={
        "name": yaml_values,
        "stack": st.lists(
            st.fixed_dictionaries(
                {"backend": st.sampled_from(["qemu", "bochs", "linux-kvm", "x"]) | yaml_values},
                optional={
                    "cpu": yaml_values,
                    "memory": yaml_values,
                    "args": yaml_values,
                    "module": yaml_values,
                    "cpu_model": yaml_values,
                },
            ),  # fmt: skip
            max_size=3,
        )
        | yaml_values,
        "probes": yaml_values,
        "timeouts": yaml_values,
        "expect": st.lists(
            st.dictionaries(
                st.sampled_from(["probes", "verdict", "reason", "level", "link", "x"]), yaml_values, max_size=4
            ),
            max_size=3,
        )
        | yaml_values,  # fmt: skip
    },
)


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])  # fmt: skip
@given(profile_shapes)
def test_profile_loader_raises_only_profile_errors(tmp_path, shape):
    import yaml

    path = tmp_path / "fuzz.yaml"
    path.write_text(yaml.safe_dump(shape))
    try:
        load_profile(path)
    except ProfileError as exc:
        assert str(exc).startswith(str(path))


@settings(max_examples=examples(200), deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])  # fmt: skip
@given(st.text(max_size=300))
def test_profile_loader_survives_any_text(tmp_path, text):
    path = tmp_path / "fuzz.yaml"
    path.write_text(text)
    try:
        load_profile(path)
    except ProfileError:
        pass
