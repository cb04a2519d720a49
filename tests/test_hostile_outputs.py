"""Issue 13, the output side: reports of hostile records are valid and inert
in every format; outputs go where the user pointed (through symlinks, to
FIFOs and devices as streams) and never replace what is not a regular file;
write failures and damaged run records end in one line and exit 2."""

import ast
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from contextlib import contextmanager
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import PROFILES, ROOT, need, nvct
from records import make_run
from test_reports import chromium, validate_junit

from conformance.core import outputs
from conformance.reports import html as html_report
from conformance.reports import junit, markdown, tap, text

# Markup, an escape sequence, a bell, quotes, an ampersand, and a newline that
# would start a TAP line of its own.
HOSTILE = "<img src=x onerror=\"document.title='pwned'\">\x1b[31m\x07\"&'\nBail out! # TODO"
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def hostile_run(surrogate=True, **kw):
    run = make_run(
        [("cpu.basic", "PASS"), ("svm.vmrun.basic", "FAIL", HOSTILE), ("svm.npt.nx", "SKIP", HOSTILE),
         (f"svm.{HOSTILE}", "ERROR", HOSTILE)],
        profile=kw.pop("profile", HOSTILE), host=HOSTILE, console=[HOSTILE, "\x00\ud800 lone" if surrogate else "\x00"],
        facts={"cpu.vendor": HOSTILE, "hv.present": "1", "hv.signature": HOSTILE, HOSTILE: HOSTILE},
        rules=[{"probes": "svm.npt.*", "verdict": "skip", "reason": HOSTILE, "link": HOSTILE}], **kw,
    )  # fmt: skip
    run.levels[0].problems = [HOSTILE]
    run.levels[0].hypervisor = {"backend": HOSTILE, "version": HOSTILE, "settings": {HOSTILE: HOSTILE},
                                "runtime": {"module": HOSTILE, HOSTILE: HOSTILE}}  # fmt: skip
    run.status = HOSTILE  # the gate fails: a line naming the status in every report
    from conformance.gate.expect import apply

    apply(run, run.expectations)
    return run


def runs():
    return [hostile_run(), hostile_run(profile="plain")]


# ---- item 2: every format escaped ---------------------------------------------------------


def test_junit_of_a_hostile_record_is_valid_xml():
    page = junit.render_runs(runs())
    root = ET.fromstring(page.encode("utf-8"))  # raises on any character XML 1.0 forbids
    names = [s.get("name") for s in root.iter("testsuite")]
    assert names[0].startswith("nvct.<img src=x") and "\\x1b[31m\\x07" in names[0] and "\n" in names[0]
    assert not CONTROL.search(page.replace("\n", ""))
    validate_junit(page)


TAP_LINE = re.compile(r"TAP version 13|1\.\.\d+|(not )?ok \d+ - .*|# .*|  .*")


def test_tap_of_a_hostile_record_has_no_line_of_its_own():
    page = tap.render_runs(runs())
    for line in page.splitlines():  # splitlines: every line break any reader knows
        assert TAP_LINE.fullmatch(line), repr(line)
        assert not line.startswith("Bail out!")
    tests = [line for line in page.splitlines() if re.match(r"(not )?ok \d+", line)]
    assert len(tests) == 8
    # The '#' in a probe id is escaped: it adds no TODO directive to a failing test.
    error = next(line for line in tests if "ERROR" not in line and "svm.<img" in line)
    assert error.startswith("not ok") and "\\# TODO" in error and " # TODO" not in error
    assert not CONTROL.search(page)


def test_markdown_of_a_hostile_record_passes_no_html_or_markup():
    page = markdown.render_runs(runs())
    own = re.compile(r"<(/?sub|/?details|/?summary)>")
    assert not unescaped("<", own.sub("", page)), "a '<' from the record reached the Markdown"
    assert "\\<img src=x onerror=" in page
    assert not CONTROL.search(page)
    assert "\nBail out!" not in page
    # Every row of the probe matrix is still one table row of the right width.
    rows = [line for line in page.splitlines() if line.startswith("| ")]
    widths = {len(unescaped("|", row)) for row in rows}
    assert widths == {4}, widths  # probe + 2 columns: 4 unescaped pipes


def unescaped(char: str, text: str) -> list[int]:
    """Where `char` stands in Markdown source without a backslash escaping it
    (an odd number of backslashes before it escapes it)."""
    out = []
    for m in re.finditer(re.escape(char), text):
        slashes = len(text[: m.start()]) - len(text[: m.start()].rstrip("\\"))
        if slashes % 2 == 0:
            out.append(m.start())
    return out


@pytest.mark.parametrize("colour", [False, True])
def test_text_report_sends_no_escape_sequence_from_a_record(colour):
    page = text.render_runs(runs(), colour=colour)
    own = re.compile("\x1b\\[[0-9;]+m")  # paint()'s colours, the only escapes allowed
    assert not CONTROL.search(own.sub("", page).replace("\n", "")), "a control character reached the terminal"
    assert "\\x1b[31m\\x07" in page
    assert not any(line.startswith("Bail out!") for line in page.splitlines())


def test_diff_and_baseline_text_keep_record_strings_on_their_line():
    from conformance.gate import compare

    a, b = hostile_run(), hostile_run()
    b.results[0].verdict = b.results[0].verdict.__class__("CRASH")
    b.results[0].detail = HOSTILE
    out = compare.render_diff(compare.diff([a], [b]), "a", "b")
    assert not CONTROL.search(out.replace("\n", "")) and "\nBail out!" not in out
    base = compare.render_baseline(a, HOSTILE)
    assert all(line.startswith(("#", "expect:", "-", " ")) for line in base.splitlines()), base


class Elements(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[str] = []
        self.handlers: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.handlers += [name for name, _ in attrs if name.startswith("on")]


def test_html_of_a_hostile_record_has_only_its_own_elements():
    page = html_report.render_runs(runs())
    parser = Elements()
    parser.feed(page)
    assert "img" not in parser.tags and parser.handlers == []
    assert parser.tags.count("script") == 2  # the page's own script and its JSON digest
    assert not CONTROL.search(page.replace("\n", ""))
    assert "&lt;img src=x onerror=" in page


def test_every_interpolation_of_the_html_report_goes_through_e():
    """One escaping function for everything: in render_runs, every `{...}`
    of an f-string that writes HTML (a tag in its text, or a line of the
    page) is a call of `e`. Text built first and escaped later is free."""
    tree = ast.parse(Path(html_report.__file__).read_text())
    render = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "render_runs")
    page_lines = set()
    for node in ast.walk(render):  # out.append(...), out += [...], out = [...]
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "append":
            page_lines.update(id(a) for a in node.args)
        assigned = isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign))
        if assigned and isinstance(node.value, (ast.List, ast.ListComp)):
            items = node.value.elts if isinstance(node.value, ast.List) else [node.value.elt]
            page_lines.update(id(a) for a in items)
    bad, checked = [], 0
    for node in ast.walk(render):
        if not isinstance(node, ast.JoinedStr):
            continue
        literal = "".join(v.value for v in node.values if isinstance(v, ast.Constant))
        if "<" not in literal and id(node) not in page_lines:
            continue
        checked += 1
        for value in node.values:
            if isinstance(value, ast.FormattedValue):
                v = value.value
                if not (isinstance(v, ast.Call) and isinstance(v.func, ast.Name) and v.func.id == "e"):
                    bad.append(f"line {value.lineno}: {{{ast.unparse(v)}}}")
    assert checked > 20 and bad == []


def test_html_of_a_hostile_record_is_inert_in_chromium(tmp_path):
    page = tmp_path / "r.html"
    page.write_text(html_report.render_runs(runs()), encoding="utf-8")
    dom = chromium(tmp_path, "--dump-dom", page.as_uri()).stdout
    title = re.search(r"<title>(.*?)</title>", dom, re.S).group(1)
    assert title.startswith("nvct: &lt;img src=x onerror=")  # not 'pwned': the handler never ran
    assert "<img" not in dom  # the profile name is text, not an element
    assert 'class="js' in dom  # the page's own script ran, and nothing else did
    assert "&lt;img src=x onerror=" in dom


def test_report_of_a_merged_foreign_record_is_escaped(tmp_path):
    one, two = tmp_path / "a.json", tmp_path / "b.json"
    hostile_run(surrogate=False).write(one)  # a record with a lone surrogate is refused (below)
    hostile_run(surrogate=False, profile="other").write(two)
    merged = tmp_path / "all.json"
    assert nvct("merge", str(one), str(two), "-o", str(merged)).returncode == 0
    proc = nvct("report", str(merged), "-f", "html")
    assert proc.returncode == 1, proc.stderr
    parser = Elements()
    parser.feed(proc.stdout)
    assert "img" not in parser.tags and parser.handlers == []
    proc = nvct("report", str(merged), "-f", "junit")
    ET.fromstring(proc.stdout.encode())
    proc = nvct("report", str(merged), "--color", "always")
    assert not CONTROL.search(re.sub("\x1b\\[[0-9;]+m", "", proc.stdout).replace("\n", ""))


# ---- item 8: run records that are not what they claim ----------------------------------------


def _record(**change):
    data = make_run([("a.b", "PASS"), ("a.c", "FAIL", "x")]).to_dict()
    data.update(change)
    return json.dumps(data)


BAD_RECORDS = {
    "level-a-string": (_record(results=[{"probe": "a.b", "level": "1", "verdict": "PASS"}]),
                       "results[0].level: want a whole number, not a string"),
    "facts-a-list": (_record(levels=[{"level": 1, "facts": []}]), "levels[0].facts: want an object, not an array"),
    "profile-a-list": (_record(profile=["x"]), "profile: want an object, not an array"),
    "name-a-number": (_record(profile={"name": 7}), "profile.name: want a string, not a number"),
    "verdict-unknown": (_record(results=[{"probe": "a.b", "level": 1, "verdict": "MAYBE"}]),
                        "results[0].verdict: want one of PASS"),
    "detail-an-object": (_record(results=[{"probe": "a.b", "level": 1, "verdict": "PASS", "detail": {}}]),
                         "results[0].detail: want a string, not an object"),
    "runtime-nested": (_record(levels=[{"level": 1, "hypervisor": {"runtime": {"k": {}}}}]),
                       "levels[0].hypervisor.runtime.k: want a string, number or boolean"),
    "rule-bad-glob": (_record(expect={"profile": "p", "rules": [{"probes": "a b", "verdict": "skip"}]}),
                      "expect.rules[0].probes: bad probe selection"),
    "deep": ("[" * 100_000 + "]" * 100_000, "nested more than 32 deep"),
    "deep-inside": (_record(extra=json.loads("[" * 40 + "]" * 40)), "nested more than 32 deep"),
    "lone-surrogate": (_record(profile={"name": "\ud800"}), "profile.name: a lone surrogate (U+D800) is not text"),
    "huge-number": ('{"schema": "nvct-run/1", "level": ' + "9" * 5000 + "}", "a number with thousands of digits"),
    "nan-duration": (_record(results=[{"probe": "a.b", "level": 1, "verdict": "PASS", "duration_s": float("nan")}]),
                     "want a finite number"),
    "merged-bad-run": (json.dumps({"schema": "nvct-runs/1", "runs": [json.loads(_record(started=5))]}),
                       "runs[0].started: want a string, not a number"),
}  # fmt: skip


@pytest.mark.parametrize("command", ["report", "diff", "merge", "baseline"])
@pytest.mark.parametrize("case", sorted(BAD_RECORDS) + ["not-utf8", "a-directory"])
def test_a_damaged_run_record_is_one_line_and_exit_2(tmp_path, command, case):
    path = tmp_path / "r.json"
    if case == "not-utf8":
        path.write_bytes(_record(profile={"name": "x"}).replace('"x"', '"\xff"').encode("latin-1"))
        want = "not UTF-8 (byte 0xff"
    elif case == "a-directory":
        path.mkdir()
        want = "is a directory"
    else:
        content, want = BAD_RECORDS[case]
        path.write_text(content, encoding="utf-8", errors="surrogatepass")
    args = {"report": [str(path)], "diff": [str(path), str(path)], "baseline": [str(path)],
            "merge": [str(path), "-o", str(tmp_path / "out.json")]}[command]  # fmt: skip
    proc = nvct(command, *args)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"nvct: error: {path}: ") and want in proc.stderr, proc.stderr


# ---- items 4 and 5: where outputs go, and when writing fails -------------------------------------


@pytest.fixture
def record(tmp_path):
    path = tmp_path / "r.json"
    make_run([("a.b", "PASS"), ("a.c", "FAIL", "x")]).write(path)
    return path


def test_a_symlink_is_followed_and_kept(tmp_path, record):
    target = tmp_path / "target.xml"
    target.write_text("old")
    link = tmp_path / "link.xml"
    link.symlink_to(target.name)
    assert nvct("report", str(record), "-f", "junit", "-o", str(link)).returncode == 1
    assert link.is_symlink() and os.readlink(link) == target.name
    ET.parse(target)
    dangling = tmp_path / "dangling.tap"
    dangling.symlink_to("made.tap")
    assert nvct("report", str(record), "-f", "tap", "-o", str(dangling)).returncode == 1
    assert dangling.is_symlink() and (tmp_path / "made.tap").read_text().startswith("TAP version 13")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dangling.tap", "link.xml", "made.tap", "r.json",
                                                          "target.xml"]  # fmt: skip


def test_devices_and_fifos_are_written_as_streams(tmp_path, record):
    before = os.stat("/dev/null")
    assert nvct("report", str(record), "-f", "html", "-o", "/dev/null").returncode == 1
    link = tmp_path / "null"
    link.symlink_to("/dev/null")
    assert nvct("baseline", str(record), "-o", str(link)).returncode == 0
    after = os.stat("/dev/null")
    assert (after.st_ino, after.st_rdev, after.st_mode) == (before.st_ino, before.st_rdev, before.st_mode)
    assert link.is_symlink()
    # /dev/stdout: the report arrives on standard output (here a pipe), nothing is created.
    proc = nvct("report", str(record), "-f", "tap", "-o", "/dev/stdout")
    assert proc.returncode == 1 and proc.stdout.startswith("TAP version 13")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()))
    reader.start()
    assert nvct("report", str(record), "-f", "junit", "-o", str(fifo)).returncode == 1
    reader.join(10)
    assert got and got[0].startswith("<?xml") and fifo.is_fifo()


def test_output_that_cannot_be_written_is_one_line_and_exit_2(tmp_path, record):
    cases = [
        (["report", str(record), "-o", str(tmp_path)], f"--output {tmp_path}: is a directory"),
        (["baseline", str(record), "-o", str(tmp_path)], f"--output {tmp_path}: is a directory"),
        (["merge", str(record), "-o", str(tmp_path)], f"{tmp_path}: is a directory"),
        (["report", str(record), "-o", "/dev/full"], "--output /dev/full: cannot write: No space left on device"),
        (["baseline", str(record), "-o", str(tmp_path / "no" / "b.yaml")], "no such directory"),
    ]
    for args, want in cases:
        proc = nvct(*args)
        assert proc.returncode == 2 and want in proc.stderr, (args, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    # Standard output on a full disk.
    proc = subprocess.run([sys.executable, "-m", "conformance", "report", str(record)], cwd=ROOT,
                          stdout=open("/dev/full", "w"), stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr == "nvct: error: cannot write standard output: No space left on device\n"


@contextmanager
def small_tmpfs(tmp_path, size="64k"):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)])


def fill(mnt: Path) -> None:
    fd = os.open(mnt / "fill", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        while True:
            os.write(fd, b"x" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)


def test_full_and_read_only_file_systems(tmp_path, record):
    with small_tmpfs(tmp_path) as mnt:
        (mnt / "kept.json").write_text("the old one")
        fill(mnt)
        for args in (["report", str(record), "-f", "html", "-o", str(mnt / "r.html")],
                     ["merge", str(record), "-o", str(mnt / "kept.json")]):  # fmt: skip
            proc = nvct(*args)
            assert proc.returncode == 2 and "cannot write: No space left on device" in proc.stderr, proc.stderr
            assert len(proc.stderr.strip().splitlines()) == 1
        assert sorted(p.name for p in mnt.iterdir()) == ["fill", "kept.json"]  # no temporary file left
        assert (mnt / "kept.json").read_text() == "the old one"
        (mnt / "fill").unlink()
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        for args in (["report", str(record), "-o", str(mnt / "r.txt")],
                     ["baseline", str(record), "-o", str(mnt / "kept.json")],
                     ["merge", str(record), "-o", str(mnt / "m.json")],
                     ["run", "--probes", "cpu.cpuid.basic", "-o", str(mnt / "r.json")]):  # fmt: skip
            proc = nvct(*args)
            assert proc.returncode == 2 and "read-only file system" in proc.stderr, (args, proc.stderr)
            assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_a_file_written_again_keeps_its_mode_and_a_new_one_follows_the_umask(tmp_path, record):
    kept = tmp_path / "kept.html"
    kept.write_text("x")
    kept.chmod(0o640)
    outputs.write_text(kept, "new")
    assert kept.stat().st_mode & 0o777 == 0o640 and kept.read_text() == "new"
    old = os.umask(0o027)
    try:
        outputs.write_text(tmp_path / "new.json", "{}")
        make_run([("a.b", "PASS")]).write(tmp_path / "rec.json")
    finally:
        os.umask(old)
    assert (tmp_path / "new.json").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "rec.json").stat().st_mode & 0o777 == 0o640


# ---- on real runs (qemu-tcg, one probe: a fraction of a second a boot) ----------------------------


def run_cli(*args, tmp_path, timeout=120, **kw):
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    return subprocess.run([sys.executable, "-m", "conformance", "run", "--probes", "cpu.cpuid.basic",
                           "--color", "never", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env, **kw)  # fmt: skip


def test_one_path_for_two_outputs_is_refused_before_the_run(tmp_path):
    same = tmp_path / "x"
    link = tmp_path / "link"
    link.symlink_to("x")
    for args in (["-o", str(same), "--junit", str(same)],
                 ["-o", str(same), "--html", str(link)],
                 ["--tap", "/dev/null", "--markdown", "/dev/null"]):  # fmt: skip
        proc = run_cli(*args, "--progress", tmp_path=tmp_path)
        assert proc.returncode == 2 and "give each output its own file" in proc.stderr, proc.stderr
        assert "booting" not in proc.stderr and not same.exists()  # refused before the first boot
    proc = run_cli("-o", str(tmp_path), tmp_path=tmp_path)
    assert proc.returncode == 2 and f"--output {tmp_path}: is a directory" in proc.stderr


@pytest.mark.boot
def test_run_outputs_through_links_and_devices(tmp_path):
    need("qemu-system-x86_64", "qemu-system-x86")
    target = tmp_path / "target.xml"
    link = tmp_path / "junit.xml"
    link.symlink_to(target)
    proc = run_cli("-o", str(tmp_path / "r.json"), "--junit", str(link), "--tap", "/dev/stdout",
                   "--html", "/dev/null", tmp_path=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert link.is_symlink() and ET.parse(target).getroot().get("tests") == "1"
    assert "TAP version 13" in proc.stdout and "gate: holds" in proc.stdout
    assert os.path.exists("/dev/null") and Path("/dev/null").is_char_device()
    mode = (tmp_path / "r.json").stat().st_mode & 0o777
    assert mode == 0o666 & ~_umask(), oct(mode)  # like every report, not 0600


def _umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old


@pytest.mark.boot
def test_when_only_the_final_write_fails_the_summary_and_the_data_survive(tmp_path):
    need("qemu-system-x86_64", "qemu-system-x86")
    # The record on /dev/full: a stream, written once at the end, and that write fails.
    proc = run_cli("-o", "/dev/full", tmp_path=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "gate: holds" in proc.stdout and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[0] == "nvct: error: --output /dev/full: cannot write: No space left on device"
    rescued = Path(re.search(r"the run record is in (\S+);", lines[1]).group(1))
    assert rescued.parent == tmp_path
    data = json.loads(rescued.read_text())
    assert data["status"] == "complete" and [r["probe"] for r in data["results"]] == ["cpu.cpuid.basic"]
    # A report on a full disk: the record elsewhere holds everything, and says so.
    with small_tmpfs(tmp_path) as mnt:
        fill(mnt)
        proc = run_cli("-o", str(tmp_path / "r.json"), "--html", str(mnt / "r.html"), tmp_path=tmp_path)
        assert proc.returncode == 2 and "gate: holds" in proc.stdout, proc.stderr
        assert f"--html {mnt / 'r.html'}: cannot write: No space left on device" in proc.stderr
        assert f"the run record {tmp_path / 'r.json'} holds every result" in proc.stderr
        assert json.loads((tmp_path / "r.json").read_text())["status"] == "complete"


@pytest.mark.boot
def test_a_profile_file_name_that_is_not_utf8_still_gives_an_html_report(tmp_path):
    need("qemu-system-x86_64", "qemu-system-x86")
    odd = os.fsdecode(bytes(tmp_path / "p") + b"\xff\xfe.yaml")
    Path(odd).write_bytes((PROFILES / "qemu-tcg.yaml").read_bytes())
    proc = run_cli("--profile", odd, "-o", str(tmp_path / "r.json"), "--html", str(tmp_path / "r.html"),
                   "--markdown", str(tmp_path / "r.md"), tmp_path=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "p\ufffd\ufffd.yaml" in page
    assert nvct("report", str(tmp_path / "r.json"), "-f", "html").returncode == 0


@pytest.mark.boot
def test_sigkill_before_the_first_result_leaves_a_record(tmp_path):
    need("qemu-system-x86_64", "qemu-system-x86")
    work = tmp_path / "work"
    work.mkdir()
    out = tmp_path / "r.json"
    child = subprocess.Popen(
        [sys.executable, "-m", "conformance", "run", "--probes", "selftest.hang", "--timeout", "60",
         "-o", str(out)],
        cwd=ROOT, env={**os.environ, "TMPDIR": str(work)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not out.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
        # The hypervisor it started is orphaned by SIGKILL: stop it, by its id.
        time.sleep(0.5)
        for pid in _processes_in(work):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    data = json.loads(out.read_text())
    assert data["status"] == "running" and data["results"] == [] and data["selection"] == ["selftest.hang"]
    assert nvct("report", str(out)).returncode == 1  # a run that did not complete fails the gate


def _processes_in(folder: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if str(folder) in os.readlink(entry / "cwd"):
                    found.append(int(entry.name))
            except OSError:
                pass
    return found
