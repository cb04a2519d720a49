"""The run record's writer (run/coalesce.py): kicks while the job runs
make it run once more, never once per kick; the caller never waits; the
job's error comes back from close()."""

import threading
import time

import pytest

from conformance.run.coalesce import Coalescer


def test_kicks_during_a_run_coalesce_into_one_more_run_and_the_caller_never_waits():
    started, release = threading.Event(), threading.Event()
    runs = []

    def job():
        runs.append(len(runs))
        started.set()
        release.wait(10)

    writer = Coalescer(job)
    writer.kick()
    assert started.wait(10)
    t0 = time.monotonic()
    for _ in range(1000):
        writer.kick()  # the job is blocked: these must not wait for it
    kicking = time.monotonic() - t0
    release.set()
    deadline = time.monotonic() + 10
    while len(runs) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    writer.close()
    assert runs == [0, 1]
    assert kicking < 5  # a bound on a hang, not a timing


def test_close_raises_what_the_job_raised_once():
    def job():
        raise OSError("disk gone")

    writer = Coalescer(job)
    writer.kick()
    with pytest.raises(OSError, match="disk gone"):
        deadline = time.monotonic() + 10
        while writer._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        writer.close()
    writer.close()  # the error was handed over; a second close is quiet


def test_close_without_a_kick_never_runs_the_job():
    runs = []
    writer = Coalescer(lambda: runs.append(1))
    writer.close()
    assert runs == []
