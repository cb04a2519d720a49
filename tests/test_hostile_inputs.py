"""Hostile and careless input (issue 13, the input side): each defect found
by trying nvct the way a careless or hostile user would, with its input.

Bad input is one line on stderr naming the file, line and key (or the
option), exit 2, before anything boots, and never a traceback. Real boots
where the boot is the point (qemu-tcg boots take a fraction of a second).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import PROFILES, FakeImage, ScriptedConsole, need, nvct, run_profile, verdicts

from conformance.core.catalog import Probe
from conformance.core.protocol import format_record
from conformance.run.runner import CMDLINE_BUDGET, RunOptions, boot_cmdline, run_level, selection_map
from conformance.run.stack import Level

QEMU = "stack:\n  - backend: qemu\n"


def one_error_line(proc: subprocess.CompletedProcess, *words: str) -> str:
    """Exit 2 and one `nvct: error:` line holding every word; no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr[-2000:]
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def usage_error(proc: subprocess.CompletedProcess, *words: str) -> str:
    """An option argparse refused: exit 2, usage, then one error line."""
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    for word in words:
        assert word in last, (word, last)
    return last


def write(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# ---- 1. the probe selection -------------------------------------------------------


@pytest.mark.boot
def test_a_long_selection_with_a_crash_resumes_after_it_and_ends(tmp_path):
    """It made 507 boots in 150 s until killed: the resumed boot's `after=`
    was cut off the command line, so it started from the first probe."""
    need("qemu-system-x86_64", "qemu-system-x86")
    fill = ",".join(["svm.basic.cr2"] * 75)
    proc, record = run_profile(tmp_path, "qemu-tcg", "--probes",
                               f"cpu.cpuid.basic,selftest.triple_fault,svm.basic.gprs,{fill}")  # fmt: skip
    assert "Traceback" not in proc.stderr
    assert verdicts(record) == {"cpu.cpuid.basic": "PASS", "selftest.triple_fault": "CRASH",
                                "svm.basic.cr2": "PASS", "svm.basic.gprs": "PASS"}  # fmt: skip
    assert record["levels"][0]["boots"] == 2 and len(record["results"]) == 4


@pytest.mark.boot
def test_every_probe_id_named_gives_the_verdicts_of_star(tmp_path):
    """Listing every id in --probes (5,000 bytes) gave 190 spurious ERRORs."""
    need("qemu-system-x86_64", "qemu-system-x86")
    listed = nvct("list")
    ids = [line.split()[0] for line in listed.stdout.splitlines()]
    assert len(ids) > 200
    (tmp_path / "ids").mkdir()
    (tmp_path / "star").mkdir()
    _, by_id = run_profile(tmp_path / "ids", "qemu-tcg", "--probes", ",".join(ids))
    _, star = run_profile(tmp_path / "star", "qemu-tcg", "--probes", "*")
    assert verdicts(by_id) == verdicts(star)
    assert "ERROR" not in verdicts(by_id).values()


@pytest.mark.boot
def test_duplicate_ids_are_harmless(tmp_path):
    need("qemu-system-x86_64", "qemu-system-x86")
    proc, record = run_profile(tmp_path, "qemu-tcg", "--probes", "cpu.cpuid.basic," * 300 + "cpu.cpuid.basic")
    assert proc.returncode == 0, proc.stderr
    assert [r["probe"] for r in record["results"]] == ["cpu.cpuid.basic"]


@pytest.mark.boot
def test_the_kernel_refuses_a_command_line_it_would_cut(image, tmp_path):
    """1023 bytes are kept: a longer line selects nothing and says why,
    rather than run what the cut line happens to select."""
    need("qemu-system-x86_64", "qemu-system-x86")
    from conformance.backends.qemu import QemuBackend, QemuSettings
    from conformance.core.protocol import parse_line

    cmdline = "probes=" + ",".join(["cpu.cpuid.basic"] * 80) + " after=cpu.cpuid.basic"
    assert len(cmdline) > 1100
    records = []
    with QemuBackend(QemuSettings(), 0).boot(image, cmdline, tmp_path) as console:
        while (line := console.readline(60)) is not None:
            record = parse_line(line)
            if record is not None:
                records.append(record)
    hello = next(r for r in records if r.kind == "HELLO")
    assert hello.get("selected") == "0" and "longer than" in hello.get("error")
    assert [r.kind for r in records if r.kind in ("START", "END")] == ["END"]


def catalogue(count: int) -> list[Probe]:
    return [Probe(f"p.{i:03d}", "CPU", "d", "r") for i in range(count)]


def test_the_selection_map_has_one_bit_per_probe_in_id_order():
    probes = catalogue(10)
    assert selection_map(probes, []) == "000"
    assert selection_map(probes, ["p.000", "p.005", "p.009", "p.009"]) == "122"
    image = FakeImage(probes)
    assert boot_cmdline(image, ("p.*",), ["p.001"], "p.000", (0, 2)) == "shard=0/2 after=p.000 probes=p.*"
    long_globs = tuple(p.id for p in catalogue(200))
    assert len(",".join(long_globs)) > CMDLINE_BUDGET
    assert boot_cmdline(FakeImage(catalogue(200)), long_globs, ["p.003"], None, None) == "sel=8" + "0" * 49
    # An id from the console that would split the command line is never written into it.
    assert boot_cmdline(image, ("p.*",), ["p.002"], "p.001 probes=*", None) == "sel=400"


class StubbornBackend:
    """A kernel that ignores its selection: it runs `p.000` and dies there, every boot."""

    boots = 0

    def describe(self) -> dict:
        return {"backend": "fake"}

    @contextlib.contextmanager
    def boot(self, image, cmdline, workdir):
        StubbornBackend.boots += 1
        yield ScriptedConsole([
            format_record(0, "HELLO", {"proto": "1", "build": "0" * 16, "total": "3", "selected": "1"}),
            format_record(1, "START", {"probe": "p.000"}),
        ])  # fmt: skip


def test_a_boot_that_runs_none_of_its_probes_is_not_booted_again(tmp_path):
    """The loop behind the 507 boots, from the harness's side: a kernel that
    does not honour the selection costs one boot, not an endless run."""
    probes = catalogue(3)
    outcome = run_level(Level(1, StubbornBackend()), FakeImage(probes), probes[1:],
                        RunOptions(globs=("p.001", "p.002"), workroot=tmp_path))  # fmt: skip
    assert StubbornBackend.boots == 1
    assert {r.probe: r.verdict.value for r in outcome.results} == {"p.000": "ERROR", "p.001": "ERROR", "p.002": "ERROR"}
    assert "not booted again" in outcome.results[-1].detail
    assert list(tmp_path.iterdir()) == []


def test_an_empty_selection_is_an_error_not_the_default_one():
    one_error_line(nvct("run", "--probes", ""), "empty glob")
    one_error_line(nvct("run", "--probes", ",,"), "empty glob")
    one_error_line(nvct("run", "--probes", "no.such.probe"), "no probe matches")
    one_error_line(nvct("run", "--probes=-*"), "no probe matches")


# ---- 3. profiles that exhaust memory or hang -----------------------------------------


def alias_bomb() -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    previous = "a"
    for name in "bcdefghi":
        lines.append(f"{name}: &{name} [{','.join(['*' + previous] * 9)}]")
        previous = name
    return "\n".join(lines) + "\n"


HOSTILE_PROFILES = {
    "alias bomb under unknown keys": (alias_bomb() + QEMU, ["p.yaml:", "aliases"]),
    "alias bomb in args": (
        "x: &x " + "A" * 10000 + "\nstack: [{backend: qemu, args: [" + ",".join(["*x"] * 200) + "]}]\n",
        ["p.yaml:", "stack[0].args[", "aliases"],
    ),
    "5000 nested lists": ("x: " + "[" * 5000 + "]" * 5000 + "\n" + QEMU, ["p.yaml:1:", "nested more than"]),
    "1500 nested mappings": ("x: " + "{a: " * 1500 + "1" + "}" * 1500 + "\n" + QEMU, ["p.yaml:1:", "nested"]),
    "300000 args": (
        "stack: [{backend: qemu, args: [" + ",".join(["-S"] * 300000) + "]}]\n",
        ["p.yaml:1:", "more than 4096 items"],
    ),
    "a string of 100000 characters": (QEMU + "    cpu: " + "x" * 100000 + "\n", ["p.yaml:3:", "stack[0].cpu"]),
    "more than 1 MiB": (QEMU + "description: |\n" + ("  " + "x" * 70 + "\n") * 16000, ["p.yaml:", "at most 1048576"]),
    "not UTF-8": (None, ["p.yaml:2:", "not UTF-8"]),
}


@pytest.mark.parametrize("case", list(HOSTILE_PROFILES))
def test_a_hostile_profile_is_one_line_and_exit_2(tmp_path, case):
    text, words = HOSTILE_PROFILES[case]
    path = tmp_path / "p.yaml"
    if text is None:
        path.write_bytes(b"name: x\ndescription: caf\xe9\n" + QEMU.encode())
    else:
        path.write_text(text)
    one_error_line(nvct("run", "-p", str(path), timeout=30), *words)


@pytest.mark.parametrize("what", ["fifo", "/dev/zero", "directory"])
def test_a_profile_that_is_not_a_regular_file_is_refused_unread(tmp_path, what):
    if what == "fifo":
        path = tmp_path / "p.yaml"
        os.mkfifo(path)
        kind = "a FIFO"
    elif what == "directory":
        path = tmp_path / "p.yaml"
        path.mkdir()
        kind = "a directory"
    else:
        path, kind = Path("/dev/zero"), "a character device"
    one_error_line(nvct("run", "-p", str(path), timeout=30), str(path), "not a regular file", kind)
    # The same through include:, with the including file's line and key.
    main = write(tmp_path, f"include: {path}\n", "main.yaml") if what != "/dev/zero" else None
    if main is not None:
        one_error_line(nvct("run", "-p", str(main), timeout=30), "not a regular file")


def test_include_never_shows_a_line_of_a_file_that_is_not_a_profile(tmp_path):
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$SECRETHASH:19000:0:99999:7:::\n")
    (tmp_path / "shadow.yaml").symlink_to(secret)
    for target in ("shadow", "shadow.yaml", "../" * 8 + "etc/shadow"):
        main = write(tmp_path, f"{QEMU}include: {target}\n", "main.yaml")
        line = one_error_line(nvct("run", "-p", str(main), timeout=30), "main.yaml:3:", "include")
        assert "SECRETHASH" not in line and "root:$" not in line
    # Named with -p, such a file is refused without quoting it either.
    line = one_error_line(nvct("run", "-p", str(secret), timeout=30), str(secret))
    assert "SECRETHASH" not in line and "root:$" not in line


# ---- 7. numbers ------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e400", "-1", "0", "1e9"])
@pytest.mark.parametrize("option", ["--timeout", "--boot-timeout"])
def test_a_timeout_option_must_be_finite_and_in_range(option, value):
    usage_error(nvct("run", f"{option}={value}", "--probes", "cpu.cpuid.basic", timeout=30), option)


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf", "-1", "0", "100000", ".NaN"])
def test_a_profile_timeout_must_be_finite_and_in_range(tmp_path, value):
    path = write(tmp_path, f"{QEMU}timeouts: {{boot: 5, probe: {value}}}\n")
    one_error_line(nvct("run", "-p", str(path), timeout=30), "p.yaml:3:", "timeouts.probe")


@pytest.mark.parametrize("key, value", [("memory", "1.0e999"), ("smp", "100000000000000000000"),
                                        ("cpu", ".nan")])  # fmt: skip
def test_a_backend_number_must_be_finite_and_in_range(tmp_path, key, value):
    path = write(tmp_path, f"{QEMU}    {key}: {value}\n")
    one_error_line(nvct("run", "-p", str(path), timeout=30), "p.yaml:3:", f"stack[0].{key}")


def test_a_nested_backend_timeout_cannot_be_infinite(tmp_path):
    path = write(
        tmp_path, "stack:\n  - backend: qemu\n    accel: kvm\n  - backend: linux-kvm\n    ready_timeout: .inf\n"
    )
    one_error_line(nvct("run", "-p", str(path), timeout=30), "p.yaml:5:", "stack[1].ready_timeout", "finite")


# ---- 8. strings where they go; TMPDIR ----------------------------------------------------


@pytest.mark.parametrize("key, value", [("args", '["-S\\0"]'), ("cpu", '"max\\n-S"'), ("cpu", '"max\\e[2J"')])
def test_a_control_character_in_a_setting_is_refused(tmp_path, key, value):
    path = write(tmp_path, f"{QEMU}    {key}: {value}\n")
    one_error_line(nvct("run", "-p", str(path), timeout=30), "p.yaml:3:", f"stack[0].{key}", "control character")


@pytest.mark.parametrize("key, value", [("bios", "/usr/share/bochs/a,b"), ("vgabios", "'/tmp/a b'"),
                                        ("options", '["cpuid: x\\rmegs: 9"]')])  # fmt: skip
def test_a_bochsrc_value_that_would_split_is_refused(tmp_path, key, value):
    path = write(tmp_path, f"stack:\n  - backend: bochs\n    {key}: {value}\n")
    one_error_line(nvct("run", "-p", str(path), timeout=30), "p.yaml:3:", f"stack[0].{key}")


@pytest.mark.boot
def test_bochs_boots_from_a_tmpdir_with_a_space_and_a_comma(tmp_path):
    """Every Bochs probe CRASHed without saying why: bochsrc split the path."""
    need("bochs", "bochs")
    need("grub-mkrescue", "grub-common")
    odd = tmp_path / "a b,c"
    odd.mkdir()
    out = tmp_path / "run.json"
    proc = nvct("run", "-p", str(PROFILES / "bochs-skylake.yaml"), "--probes", "cpu.cpuid.basic", "-o", str(out),
                env={"TMPDIR": str(odd)})  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert verdicts(json.loads(out.read_text())) == {"cpu.cpuid.basic": "PASS"}
    assert list(odd.iterdir()) == []


@pytest.fixture
def full_tmpfs(tmp_path):
    """A 4 MiB tmpfs, filled up (needs root to mount)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    where = tmp_path / "full"
    where.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "nvct-test", str(where)], check=False).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        with open(where / "fill", "wb", buffering=0) as out, contextlib.suppress(OSError):
            while True:
                out.write(bytes(1 << 16))
                out.flush()
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=False)


def test_a_full_tmpdir_is_one_line_and_leaves_nothing(full_tmpfs):
    for profile in ("qemu-tcg", "bochs-skylake"):
        proc = nvct("run", "-p", str(PROFILES / f"{profile}.yaml"), "--probes", "cpu.cpuid.basic",
                    env={"TMPDIR": str(full_tmpfs)}, timeout=60)  # fmt: skip
        one_error_line(proc, "TMPDIR", str(full_tmpfs))
        assert [p.name for p in full_tmpfs.iterdir()] == ["fill"]


def test_a_missing_tmpdir_is_one_line(tmp_path):
    proc = nvct("run", "--probes", "cpu.cpuid.basic", env={"TMPDIR": str(tmp_path / "nowhere")}, timeout=60)
    one_error_line(proc, "TMPDIR", "nowhere")


@pytest.mark.parametrize(
    "args, env",
    [
        (["run", "\x1b[31mX"], {}),  # argparse's own error line
        (["run", "-p", "nosuch"], {"XDG_CONFIG_HOME": "/tmp/\x1b]0;owned\x07"}),  # a path from the environment
        (["list", "\x1b[2J*"], {}),  # a probe glob
    ],
    ids=["argument", "environment", "glob"],
)
def test_an_error_line_shows_control_characters_escaped(args, env):
    """What the user or the environment gave is shown, never obeyed: no
    escape sequence reaches the terminal from an error line."""
    proc = nvct(*args, env=env)
    assert proc.returncode == 2, proc.stderr
    assert "\x1b" not in proc.stderr and "\x07" not in proc.stderr, proc.stderr
    assert "\\x1b" in proc.stderr, proc.stderr
    assert proc.stderr.count("\n") <= 3 and "Traceback" not in proc.stderr
