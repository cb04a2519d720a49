"""The profile loader: every shipped profile loads, and every mistake is
named by file, line and key."""

from pathlib import Path

import pytest

from conformance.core.profile import ProfileError, load_profile

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("path", sorted((ROOT / "profiles").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_profiles_load(path):
    profile = load_profile(path)
    assert profile.name == path.stem
    assert profile.probe_levels == list(range(1, len(profile.stack) + 1))
    from conformance.backends import BACKENDS

    for spec in profile.stack:  # L0 runs on this machine or a remote host; the others above it
        assert BACKENDS[spec.backend].placement_error(spec.settings, spec.level) is None


def test_default_profile_is_qemu_tcg():
    profile = load_profile(ROOT / "profiles" / "qemu-tcg.yaml")
    (spec,) = profile.stack
    assert (spec.backend, spec.settings.accel, spec.settings.cpu) == ("qemu", "tcg", "max")


def write(tmp_path, text):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return path


GOOD = """\
name: t
stack:
  - backend: qemu
    cpu: max
"""


@pytest.mark.parametrize(
    "text, line, key, message",
    [
        (GOOD + "colour: red\n", 5, "colour", "unknown key"),
        (GOOD + "    memmory: 64\n", 5, "stack[0].memmory", "unknown key (known: accel, args,"),
        (GOOD + "    memory: lots\n", 5, "stack[0].memory", "must be a whole number, not a string"),
        (GOOD + "    memory: 8\n", 5, "stack[0].memory", "must be 16 to 65536"),
        (GOOD + "    accel: hvf\n", 5, "stack[0].accel", "must be tcg or kvm"),
        (GOOD + "    args: -smp 2\n", 5, "stack[0].args", "must be a list, not a string"),
        (GOOD + "    args: [1, [2]]\n", 5, "stack[0].args[1]", "must be a string, not a list"),
        ("name: t\nstack:\n  - backend: vbox\n", 3, "stack[0].backend", "unknown backend 'vbox' (known: bochs, "),
        ("name: t\nstack:\n  - backend: linux-kvm\n", 3, "stack[0].backend", "runs above another level, not as L0"),
        (
            GOOD + "  - backend: linux-kvm\n    module: kvm_arm\n",
            6,
            "stack[1].module",
            "must be auto, kvm_amd or kvm_intel",
        ),
        ("name: t\nstack:\n  - cpu: max\n", 3, "stack[0]", "missing key: backend"),
        ("name: t\nstack:\n  - backend: []\n", 3, "stack[0].backend", "must be a backend name, not a list"),
        ("name: t\nstack: []\n", 2, "stack", "must be a non-empty list"),
        ("name: t\n", 1, None, "missing key: stack"),
        ("name: t\nstack:\n  - backend: qemu\n  - backend: qemu\n", 4, "stack[1].backend", "runs only as L0"),
        (GOOD + "probes: 'svm.*,'\n", 5, "probes", "bad probe selection 'svm.*,': an empty glob"),
        (GOOD + "timeouts: {boot: 0}\n", 5, "timeouts.boot", "more than 0"),
        (GOOD + "timeouts: {probe: 1, hang: 2}\n", 5, "timeouts.hang", "unknown key"),
        (GOOD + "name: again\n", 5, "name", "key given twice"),
        ("name: t\nstack:\n  - backend: qemu\n    cpu: [max\n", 5, None, "not valid YAML"),
        ("- just\n- a list\n", 1, None, "a profile is a mapping, not a list"),
        (
            "name: !!python/name:os.system x\nstack: []\n",
            1,
            "name",
            "not a valid value: could not determine a constructor",
        ),
        ("name: 2001-02-30\nstack: []\n", 1, "name", "not a valid value: day is out of range for month"),
        ("", None, None, "empty profile"),
        (
            "name: t\nstack:\n  - backend: bochs\n    cpu_model: 'skylake; rm -rf'\n",
            4,
            "stack[0].cpu_model",
            "not a Bochs CPU model",
        ),
    ],
)
def test_errors_name_file_line_and_key(tmp_path, text, line, key, message):
    path = write(tmp_path, text)
    with pytest.raises(ProfileError) as exc:
        load_profile(path)
    err = exc.value
    assert (err.path, err.line, err.key) == (str(path), line, key)
    assert message in err.message
    where = f"{path}:{line}: " if line else f"{path}: "
    assert str(err).startswith(where + (f"{key}: " if key else ""))


def test_missing_file(tmp_path):
    with pytest.raises(ProfileError, match="no such profile file"):
        load_profile(tmp_path / "nope.yaml")


def test_values_arrive_as_single_argv_elements(tmp_path):
    from conformance.backends.base import Payload
    from conformance.backends.qemu import QemuBackend
    from conformance.core.kernel import GuestImage

    path = write(tmp_path, GOOD + "    args: ['-name', 'a b; echo $(id) \"q\"']\n")
    profile = load_profile(path)
    backend = QemuBackend(profile.stack[0].settings, 0)
    argv = backend.argv(Payload.probe_kernel(GuestImage(Path("/k.elf")), "probes=a.*"))
    assert argv[-2:] == ["-name", 'a b; echo $(id) "q"']
    assert argv[argv.index("-append") + 1] == "probes=a.*"


def test_include_starts_from_another_profile_and_its_rules_come_first(tmp_path):
    (tmp_path / "base.yaml").write_text(
        "name: base\ndescription: the base\nstack:\n  - backend: qemu\n    cpu: max\n"
        "timeouts: {boot: 5, probe: 7}\n"
        "expect:\n  - probes: 'vmx.*'\n    verdict: skip\n    reason: no VMX\n"
    )
    (tmp_path / "child.yaml").write_text(
        "include: base.yaml\nname: child\nexpect:\n  - probes: 'vmx.cpuid.*'\n    verdict: pass\n"
    )
    profile = load_profile(tmp_path / "child.yaml")
    assert profile.name == "child" and profile.description == "the base"
    assert profile.stack[0].settings.cpu == "max" and profile.timeouts.probe == 7
    assert [r.probes for r in profile.expect] == ["vmx.*", "vmx.cpuid.*"]


def test_a_profile_that_includes_itself_is_a_one_line_error(tmp_path):
    path = write(tmp_path, GOOD + "include: p.yaml\n")
    with pytest.raises(ProfileError) as exc:
        load_profile(path)
    assert str(exc.value) == f"{path}:5: include: profiles include each other in a loop: p.yaml -> p.yaml"


def test_an_include_loop_through_two_files_names_the_loop(tmp_path):
    (tmp_path / "a.yaml").write_text(GOOD + "include: b.yaml\n")
    (tmp_path / "b.yaml").write_text(GOOD + "include: a.yaml\n")
    with pytest.raises(ProfileError, match=r"b.yaml:5: include: profiles include each other in a loop: "
                                           r"a.yaml -> b.yaml -> a.yaml"):  # fmt: skip
        load_profile(tmp_path / "a.yaml")


def test_include_of_a_missing_file(tmp_path):
    path = write(tmp_path, GOOD + "include: nope.yaml\n")
    with pytest.raises(ProfileError, match=r"p.yaml:5: include: no such profile file: .*nope.yaml"):
        load_profile(path)
