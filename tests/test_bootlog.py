"""BootLog: records to results, with loss, duplication, corruption, crashes
and hangs each attributed to the probe they belong to."""

from conformance.core.bootlog import BootLog
from conformance.core.protocol import format_record
from conformance.core.verdicts import Verdict

PROBES = ["a.one", "a.two", "a.three"]


class Kernel:
    """Writes the records a probe kernel would, numbering them."""

    def __init__(self):
        self.seq = 0

    def rec(self, kind, **fields):
        line = format_record(self.seq, kind, fields)
        self.seq += 1
        return line

    def hello(self, selected=3):
        return [
            self.rec("HELLO", proto="1", build="00112233aabbccdd", total="9", selected=str(selected), console="com1"),
            self.rec("FACT", **{"cpu.vendor": "AuthenticAMD", "tsc.hz": "1000000000"}),
        ]

    def probe(self, pid, verdict="PASS", detail="", ticks="2000000"):
        out = [self.rec("START", probe=pid, index="0")]
        fields = {"probe": pid, "verdict": verdict, "ticks": ticks}
        if detail:
            fields["detail"] = detail
        return out + [self.rec("RESULT", **fields)]

    def end(self, run=3):
        return [self.rec("END", run=str(run), **{"pass": "3", "fail": "0", "skip": "0", "error": "0"})]


def feed(lines, expected=PROBES):
    seen = []
    log = BootLog(level=1, expected=expected, on_result=seen.append)
    for line in lines:
        log.feed(line)
    return log, seen


def verdicts(log):
    return {p: (r.verdict, r.detail) for p, r in log.results.items()}


def test_clean_boot():
    k = Kernel()
    lines = [
        "SeaBIOS noise",
        *k.hello(),
        *k.probe("a.one"),
        "noise",
        *k.probe("a.three", "SKIP", "CPUID says no"),
        *k.probe("a.two", "FAIL", "exit 0x7f"),
    ]
    log, seen = feed(lines + k.end())
    assert log.ended and not log.problems
    assert [r.probe for r in seen] == ["a.one", "a.three", "a.two"]  # delivered as they arrive
    assert verdicts(log) == {
        "a.one": (Verdict.PASS, ""),
        "a.three": (Verdict.SKIP, "CPUID says no"),
        "a.two": (Verdict.FAIL, "exit 0x7f"),
    }
    assert log.facts["cpu.vendor"] == "AuthenticAMD"
    assert abs(log.results["a.one"].duration_s - 0.002) < 1e-9  # ticks / tsc.hz


def test_lost_start_is_an_error_for_the_probe_whose_result_arrives():
    k = Kernel()
    hello = k.hello()
    one, two = k.probe("a.one"), k.probe("a.two")
    lines = [*hello, *one, two[1]]  # START of a.two lost
    log, _ = feed(lines)
    assert log.results["a.one"].verdict is Verdict.PASS
    result = log.results["a.two"]
    assert result.verdict is Verdict.ERROR
    assert "records lost" in result.detail and "RESULT without START" in result.detail
    assert "probe reported PASS" in result.detail


def test_lost_result_is_an_error_for_the_probe_in_flight():
    k = Kernel()
    hello = k.hello()
    one, two = k.probe("a.one"), k.probe("a.two")
    log, _ = feed([*hello, one[0], *two, *k.end(run=1)])  # RESULT of a.one lost
    assert log.results["a.one"].verdict is Verdict.ERROR
    assert "records lost (sequence 3 missing before START)" in log.results["a.one"].detail
    assert "no RESULT before the START of a.two" in log.results["a.one"].detail
    assert "probe reported" not in log.results["a.one"].detail  # the harness's verdict, not the kernel's
    assert log.results["a.two"].verdict is Verdict.PASS


def test_corrupted_result_is_an_error_for_its_probe():
    k = Kernel()
    hello = k.hello()
    start, result = k.probe("a.one")
    log, _ = feed([*hello, start, result.replace("PASS", "PA5S"), *k.probe("a.two")])
    assert log.results["a.one"].verdict is Verdict.ERROR
    assert "corrupted record (CRC mismatch" in log.results["a.one"].detail
    assert log.results["a.two"].verdict is Verdict.PASS


def test_duplicated_record_taints_the_probe_it_names():
    k = Kernel()
    hello = k.hello()
    one = k.probe("a.one")
    log, _ = feed([*hello, *one, one[1], *k.probe("a.two")])
    assert log.results["a.one"].verdict is Verdict.ERROR
    assert "out of order or repeated" in log.results["a.one"].detail
    assert log.results["a.two"].verdict is Verdict.PASS


def test_crash_gives_the_probe_in_flight_crash_with_the_excerpt():
    k = Kernel()
    hello, one = k.hello(), k.probe("a.one")
    two = k.probe("a.two")
    log, _ = feed([*hello, *one, two[0], "qemu: triple fault"])
    assert log.in_flight == "a.two" and log.last_probe == "a.two"
    log.finish("eof", "the console ended before END", ["qemu: triple fault", "[qemu] exit 0"])
    result = log.results["a.two"]
    assert result.verdict is Verdict.CRASH
    assert result.detail == "the console ended before END"
    assert "[qemu] exit 0" in result.console


def test_hang_gives_timeout():
    k = Kernel()
    log, _ = feed([*k.hello(), k.probe("a.one")[0]])
    log.finish("timeout", "a.one ran for 30 s without a result", [])
    assert log.results["a.one"].verdict is Verdict.TIMEOUT


def test_second_hello_means_a_reset():
    k = Kernel()
    lines = [*k.hello(), k.probe("a.one")[0]]
    again = Kernel().hello()
    log, _ = feed(lines + again)
    assert log.reset and log.in_flight == "a.one"


def test_a_probe_the_harness_did_not_select_is_an_error():
    k = Kernel()
    log, _ = feed([*k.hello(), *k.probe("z.other")])
    assert log.results["z.other"].verdict is Verdict.ERROR
    assert "did not select" in log.results["z.other"].detail


def test_skip_without_reason_and_unknown_verdict_are_errors():
    k = Kernel()
    log, _ = feed([*k.hello(), *k.probe("a.one", "SKIP"), *k.probe("a.two", "MAYBE", "x")])
    assert log.results["a.one"].verdict is Verdict.ERROR and "SKIP without a reason" in log.results["a.one"].detail
    assert log.results["a.two"].verdict is Verdict.ERROR and "verdict 'MAYBE'" in log.results["a.two"].detail


def test_selection_mismatch_and_end_count_are_boot_problems():
    k = Kernel()
    log, _ = feed([*k.hello(selected=2), *k.probe("a.one"), *k.end(run=5)])
    assert any("selected 2 probes" in p for p in log.problems)
    assert any("END says 5 probes ran" in p for p in log.problems)


def test_corrupted_fact_is_a_boot_problem_not_a_probe_error():
    k = Kernel()
    hello, fact = k.hello()
    log, _ = feed([hello, fact.replace("Authentic", "Authentik"), *k.probe("a.one")])
    assert any("corrupted record" in p for p in log.problems)
    assert log.results["a.one"].verdict is Verdict.PASS


def test_a_record_cut_short_runs_into_the_next_and_only_it_is_lost():
    k = Kernel()
    hello = k.hello()
    start, result = k.probe("a.one", "FAIL", "unexpected #UD")
    half = "@NVCT1 99 NOTE probe=a.one msg=half"  # the kernel faulted while writing it
    log, _ = feed([*hello, start, half + result, *k.probe("a.two")])
    one = log.results["a.one"]
    assert one.verdict is Verdict.ERROR
    assert "corrupted record (no CRC" in one.detail and "probe reported FAIL: unexpected #UD" in one.detail
    assert log.results["a.two"].verdict is Verdict.PASS
