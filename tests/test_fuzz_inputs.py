"""Fuzzing the profile loader with hostile input (issue 13): profiles built
from aliases, nested deep, large, with control characters and non-finite
or absurd numbers. Loading any of them either succeeds or raises
ProfileError, whose text the CLI prints as one line with exit 2; never
another exception, and within bounded time and memory.

bench/fuzz.py runs these with many more examples (NVCT_FUZZ_EXAMPLES)."""

from __future__ import annotations

import os
import tracemalloc

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conformance.core.profile import ProfileError, load_profile

LONG = int(os.environ.get("NVCT_FUZZ_EXAMPLES", "0"))


def examples(n: int) -> int:
    return LONG or n


SETTINGS = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]}
MAX_PEAK = 256 << 20  # bytes Python allocates at most while loading one profile


def load_bounded(path, text: str | bytes) -> None:
    """The property: ProfileError or success, one printable line, bounded in
    memory (time is bench/fuzz.py's to measure, never a test's to assert)."""
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
    tracemalloc.start()
    try:
        load_profile(path)
    except ProfileError as exc:
        message = str(exc)
        assert message.startswith(str(path)), message
        assert message.isprintable(), repr(message)  # one line, nothing for a terminal to act on
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < MAX_PEAK, f"{peak >> 20} MiB"


STACK = "stack:\n  - backend: qemu\n"
KEYS = ["name", "description", "probes", "include", "x", "stack", "timeouts", "expect"]


@st.composite
def alias_profiles(draw) -> str:
    """Anchors and aliases, fanned out level by level (the "billion laughs"
    shape), used under a known or an unknown key, in a list or a mapping."""
    levels = draw(st.integers(1, 12))
    fan = draw(st.integers(1, 40))
    leaf = draw(st.sampled_from(['"lol"', "1", ".nan", "x" * draw(st.integers(1, 3000)), "[a, b]", "{a: 1}"]))
    lines = [f"l0: &l0 [{', '.join([leaf] * fan)}]"]
    for n in range(1, levels):
        if draw(st.booleans()):
            lines.append(f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * fan)}]")
        else:
            lines.append(f"l{n}: &l{n} {{{', '.join(f'k{i}: *l{n - 1}' for i in range(fan))}}}")
    top = f"*l{levels - 1}"
    where = draw(st.sampled_from(["top", "args", "description", "timeouts", "expect", "probes"]))
    if where == "args":
        lines.append(f"stack: [{{backend: qemu, args: {top}}}]")
    elif where == "top":
        lines.append(STACK.rstrip())
    else:
        lines.append(STACK.rstrip())
        lines.append(f"{where}: {top}")
    if draw(st.booleans()):
        lines = [f"x:\n  {line}" if i == 0 else f"  {line}" for i, line in enumerate(lines[:-1])] + lines[-1:]
    return "\n".join(lines) + "\n"


@settings(max_examples=examples(25), **SETTINGS)
@given(alias_profiles())
def test_profiles_built_from_aliases(tmp_path, text):
    load_bounded(tmp_path / "fuzz.yaml", text)


@st.composite
def deep_profiles(draw) -> str:
    """Lists and mappings nested in each other, flow or block style."""
    depth = draw(st.integers(0, 3000))
    kinds = draw(st.lists(st.sampled_from("[{"), min_size=1, max_size=4))
    opening = "".join(("[" if kinds[i % len(kinds)] == "[" else "{a: ") for i in range(depth))
    closing = "".join(("]" if kinds[i % len(kinds)] == "[" else "}") for i in reversed(range(depth)))
    key = draw(st.sampled_from(["x", "stack", "timeouts", "expect", "description"]))
    if draw(st.booleans()):
        block = "".join("  " * i + "- \n" for i in range(min(depth, 400))) + "  " * min(depth, 400) + "1\n"
        return f"{STACK}{key}:\n{block}"
    return f"{STACK if key != 'stack' else ''}{key}: {opening}1{closing}\n"


@settings(max_examples=examples(20), **SETTINGS)
@given(deep_profiles())
def test_deeply_nested_profiles(tmp_path, text):
    load_bounded(tmp_path / "fuzz.yaml", text)


@st.composite
def large_profiles(draw) -> str:
    """Long lists, long strings, many keys: at and past the bounds."""
    items = draw(st.sampled_from([0, 1, 4095, 4096, 4097, 20000]))
    length = draw(st.sampled_from([1, 16384, 16385, 200000]))
    what = draw(st.sampled_from(["args", "cpu", "description", "expect", "keys", "probes"]))
    if what == "args":
        return "stack: [{backend: qemu, args: [" + ",".join(["-S"] * items) + "]}]\n"
    if what == "cpu":
        return STACK + "    cpu: " + "m" * length + "\n"
    if what == "description":
        return STACK + "description: " + "d" * length + "\n"
    if what == "expect":
        return STACK + "expect:\n" + "  - {probes: 'cpu.*', verdict: pass}\n" * min(items, 6000)
    if what == "keys":
        return STACK + "x: {" + ", ".join(f"k{i}: 1" for i in range(items)) + "}\n"
    return STACK + "probes: [" + ",".join(["cpu.cpuid.basic"] * items) + "]\n"


@settings(max_examples=examples(10), **SETTINGS)
@given(large_profiles())
def test_large_profiles(tmp_path, text):
    load_bounded(tmp_path / "fuzz.yaml", text)


CONTROL = st.characters(codec="utf-8", categories=["Cc", "Cf", "Zl", "Zp"])
hostile_text = st.text(st.characters(codec="utf-8") | CONTROL, max_size=30)


def yaml_double_quoted(text: str) -> str:
    """`text` as a YAML double-quoted scalar (escapes for every control character)."""
    out = []
    for c in text:
        if c in '"\\':
            out.append("\\" + c)
        elif ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 or c in "\u2028\u2029\ufeff" or 0xD800 <= ord(c) < 0xE000:
            out.append(f"\\u{ord(c):04x}" if ord(c) <= 0xFFFF else f"\\U{ord(c):08x}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


@settings(max_examples=examples(150), **SETTINGS)
@given(
    st.sampled_from(
        [
            "name",
            "description",
            "probes",
            "include",
            "stack.cpu",
            "stack.args",
            "stack.binary",
            "stack.bios",
            "stack.options",
            "key",
            "expect.reason",
        ]
    ),
    hostile_text,
    st.booleans(),
)
def test_control_characters_anywhere(tmp_path, where, value, raw):
    quoted = yaml_double_quoted(value)
    if raw and "\n" not in value and "\r" not in value:
        quoted = value  # as written in the file, not escaped: bytes the YAML reader itself must cope with
    if where.startswith("stack."):
        backend = "bochs" if where in ("stack.bios", "stack.options") else "qemu"
        key = where.split(".")[1]
        item = f"[{quoted}]" if key in ("args", "options") else quoted
        text = f"stack:\n  - backend: {backend}\n    {key}: {item}\n"
    elif where == "key":
        text = f"{STACK}{quoted}: 1\n"
    elif where == "expect.reason":
        text = f"{STACK}expect:\n  - probes: 'cpu.*'\n    verdict: skip\n    reason: {quoted}\n"
    else:
        text = f"{STACK}{where}: {quoted}\n"
    load_bounded(tmp_path / "fuzz.yaml", text)


NUMBERS = st.sampled_from(
    [
        ".nan",
        ".NaN",
        ".inf",
        "-.inf",
        "+.inf",
        "0",
        "-1",
        "-0.0",
        "1e-300",
        "0.5",
        "86400",
        "86401",
        "1.0e308",
        "1.0e309",
        "9007199254740993",
        "-9007199254740993",
        "1" + "0" * 30,
        "0x7fffffffffffffffffff",
        "0o777",
        "1_000",
        "1" * 5000,
        "30",
    ]
)


@settings(max_examples=examples(150), **SETTINGS)
@given(st.sampled_from(["timeouts.boot", "timeouts.probe", "qemu.memory", "qemu.smp", "bochs.ips", "bochs.memory",
                        "linux-kvm.ready_timeout", "esxi.poll_interval", "esxi.port", "expect.level", "qemu.cpu"]),
       NUMBERS)  # fmt: skip
def test_non_finite_and_absurd_numbers(tmp_path, where, number):
    head, key = where.split(".")
    if head == "timeouts":
        text = f"{STACK}timeouts: {{{key}: {number}}}\n"
    elif head == "expect":
        text = f"{STACK}expect:\n  - {{probes: 'cpu.*', verdict: pass, level: {number}}}\n"
    elif head == "linux-kvm":
        text = f"stack:\n  - backend: qemu\n    accel: kvm\n  - backend: linux-kvm\n    {key}: {number}\n"
    elif head == "esxi":
        text = f"stack:\n  - backend: esxi\n    host: esxi.example\n    {key}: {number}\n"
    else:
        text = f"stack:\n  - backend: {head}\n    {key}: {number}\n"
    load_bounded(tmp_path / "fuzz.yaml", text)
    try:
        profile = load_profile(tmp_path / "fuzz.yaml")
    except ProfileError:
        return
    for value in (profile.timeouts.boot, profile.timeouts.probe):
        assert value is None or 0 < value <= 86400  # what the watchdog is given is always finite and positive
