"""Probes that run in a boot of their own (PROBE_ISOLATED_, the catalogue's
`isolated` flag): how the runner deals them out, and real boots of the
`svm.vm_cr.*` probes, which are isolated because KVM cannot undo them."""

from __future__ import annotations

import pytest
from conftest import run_profile, verdicts

from conformance.core.catalog import Probe
from conformance.run.runner import RunOptions, _plan, shard_of


def probe(pid: str, isolated: bool = False) -> Probe:
    return Probe(pid, "SVM", "d", "r", isolated=isolated)


SELECTED = [probe("svm.a"), probe("svm.b"), probe("svm.c"), probe("svm.vm_cr.x", True), probe("svm.vm_cr.y", True)]


def test_isolated_probes_get_a_boot_each_and_are_left_out_of_the_shared_one_by_name():
    tasks = _plan(SELECTED, RunOptions(globs=("svm.*",)), None)
    assert [(t.globs, t.ids, t.shard) for t in tasks] == [
        (("svm.*", "-svm.vm_cr.x", "-svm.vm_cr.y"), ["svm.a", "svm.b", "svm.c"], None),
        (("svm.vm_cr.x",), ["svm.vm_cr.x"], None),
        (("svm.vm_cr.y",), ["svm.vm_cr.y"], None),
    ]
    assert [t.isolated.id if t.isolated else None for t in tasks] == [None, "svm.vm_cr.x", "svm.vm_cr.y"]


def test_every_probe_in_exactly_one_task_with_jobs_and_with_shards():
    for jobs in (1, 2, 3, 8):
        tasks = _plan(SELECTED, RunOptions(globs=(), jobs=jobs), None)
        ids = [i for t in tasks for i in t.ids]
        assert sorted(ids) == sorted(p.id for p in SELECTED)
        assert all(t.globs[-2:] == ("-svm.vm_cr.x", "-svm.vm_cr.y") for t in tasks if t.isolated is None)
    for count in (1, 2, 3):
        mine = shard_of(SELECTED, count)
        for k in range(count):
            tasks = _plan(SELECTED, RunOptions(globs=()), (k, count))
            assert sorted(i for t in tasks for i in t.ids) == sorted(p for p, s in mine.items() if s == k)


def test_no_exclusions_without_isolated_probes():
    tasks = _plan(SELECTED[:3], RunOptions(globs=("svm.*",), jobs=2), None)
    assert [(t.globs, t.ids, t.shard) for t in tasks] == [
        (("svm.*",), ["svm.a", "svm.c"], (0, 2)),
        (("svm.*",), ["svm.b"], (1, 2)),
    ]


@pytest.mark.boot
@pytest.mark.parametrize("jobs", ["1", "2"])
def test_vm_cr_probes_boot_alone_on_tcg(tmp_path, jobs):
    proc, record = run_profile(tmp_path, "qemu-tcg", "--probes", "svm.vm_cr.*,svm.vmrun.vmmcall", "--jobs", jobs)
    assert proc.returncode == 0, proc.stdout  # the gate: Q12 is a known failure
    got = verdicts(record)
    assert got == {"svm.vm_cr.svmdis": "FAIL", "svm.vm_cr.svmdis_svme": "FAIL", "svm.vmrun.vmmcall": "PASS"}
    boots = {r["probe"]: r["boot"] for r in record["results"]}
    assert len(set(boots.values())) == 3 and record["levels"][0]["boots"] == 3
    isolated = {p["id"]: p["isolated"] for p in record["catalog"]}
    assert isolated["svm.vm_cr.svmdis"] and not isolated["svm.vmrun.vmmcall"]


@pytest.mark.boot
def test_an_isolated_probe_of_a_feature_the_level_lacks_costs_no_boot(tmp_path):
    proc, record = run_profile(tmp_path, "bochs-skylake", "--probes", "svm.vm_cr.*,cpu.cpuid.basic")
    assert proc.returncode == 0, proc.stdout
    assert verdicts(record) == {"cpu.cpuid.basic": "PASS", "svm.vm_cr.svmdis": "SKIP", "svm.vm_cr.svmdis_svme": "SKIP"}
    assert record["levels"][0]["boots"] == 1
    detail = next(r["detail"] for r in record["results"] if r["probe"] == "svm.vm_cr.svmdis")
    assert "CPUID 0x80000001 ECX.SVM=0" in detail and "not started" in detail
