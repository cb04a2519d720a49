"""The catalogue format and probe selection (the kernel's own rules)."""

import pytest

from conformance.core.catalog import CatalogError, Probe, SelectionError, parse_catalog, select, split_globs

CATALOG = "\n".join(
    [
        "svm.npt.nx\tNPT\t-\tNX in nested page tables\tAMD APM Vol. 2 15.25",
        "cpu.cpuid.basic\tCPU\t-\tCPUID basics\tIntel SDM Vol. 2A CPUID",
        "svm.vmrun.vmmcall\tSVM\t-\tVMRUN then VMMCALL\tAMD APM Vol. 2 15.5",
        "selftest.hang\tselftest\thidden\thangs on purpose\tnone",
        "vmx.vmxon.basic\tVMX\t-\tVMXON/VMXOFF\tIntel SDM Vol. 3C 24.7",
    ]
)


@pytest.fixture
def probes():
    return parse_catalog(CATALOG)


def ids(probes):
    return [p.id for p in probes]


def test_catalog_is_sorted_by_id_and_keeps_flags(probes):
    assert ids(probes) == ["cpu.cpuid.basic", "selftest.hang", "svm.npt.nx", "svm.vmrun.vmmcall", "vmx.vmxon.basic"]
    assert probes[1].hidden and not probes[0].hidden
    assert probes[2] == Probe("svm.npt.nx", "NPT", "NX in nested page tables", "AMD APM Vol. 2 15.25")
    assert probes[2].group == "svm.npt"


def test_catalog_errors():
    with pytest.raises(CatalogError, match="line 1: want 6"):
        parse_catalog("only\tthree\tfields")
    with pytest.raises(CatalogError, match="registered twice: a.b"):
        parse_catalog("a.b\tX\t-\td\tr\na.b\tX\t-\td\tr")


@pytest.mark.parametrize(
    "globs, after, want",
    [
        ([], None, ["cpu.cpuid.basic", "svm.npt.nx", "svm.vmrun.vmmcall", "vmx.vmxon.basic"]),
        (["svm.*"], None, ["svm.npt.nx", "svm.vmrun.vmmcall"]),
        (["svm.*", "-svm.npt.*"], None, ["svm.vmrun.vmmcall"]),
        (["-svm.*"], None, ["cpu.cpuid.basic", "vmx.vmxon.basic"]),
        (["*"], None, ["cpu.cpuid.basic", "svm.npt.nx", "svm.vmrun.vmmcall", "vmx.vmxon.basic"]),
        (["s*"], None, ["svm.npt.nx", "svm.vmrun.vmmcall"]),  # '*' never reaches hidden probes
        (["selftest.*"], None, ["selftest.hang"]),
        (["cpu.*", "selftest.hang"], None, ["cpu.cpuid.basic", "selftest.hang"]),
        (["svm.vmrun.vmmcal?"], None, ["svm.vmrun.vmmcall"]),
        ([], "svm.npt.nx", ["svm.vmrun.vmmcall", "vmx.vmxon.basic"]),
        (["nothing.*"], None, []),
    ],
)
def test_select(probes, globs, after, want):
    assert ids(select(probes, globs, after)) == want


def test_split_globs():
    assert split_globs("svm.*, -svm.npt.*") == ["svm.*", "-svm.npt.*"]
    assert split_globs(["a.*", "b.c,-b.d"]) == ["a.*", "b.c", "-b.d"]
    for bad in ("svm.*,", "a b", "-", "a;rm"):
        with pytest.raises(SelectionError):
            split_globs(bad)


def test_shards_partition_the_selection_and_after_applies_within_a_shard(probes):
    chosen = select(probes, [])
    shards = [select(probes, [], shard=(k, 3)) for k in range(3)]
    assert sorted(p.id for s in shards for p in s) == [p.id for p in chosen]
    assert ids(shards[0]) == ["cpu.cpuid.basic", "vmx.vmxon.basic"]
    assert ids(select(probes, [], after="cpu.cpuid.basic", shard=(0, 3))) == ["vmx.vmxon.basic"]
    with pytest.raises(SelectionError):
        select(probes, [], shard=(3, 3))
