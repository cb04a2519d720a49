"""The CI templates in ci/: they parse, every nvct command they run is one
the CLI accepts, they run on Debian 12 (GitHub Actions and Jenkins in a
debian:12 container, as root: no sudo anywhere), install nvct as a vendor
would (a clone and ./setup, or the wheel), publish JUnit and the HTML report
that command writes even when it fails, and fail the job on exit 1 and 2."""

import os
import re
import shlex
from pathlib import Path

import pytest
import yaml

from conformance.cli import parser

ROOT = Path(__file__).resolve().parent.parent
CI = ROOT / "ci"


def shell_lines(blocks):
    """The command lines of shell blocks (a YAML `run: |` holds several)."""
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def nvct_commands(lines):
    """The nvct invocations among shell command lines, as argv lists without the program."""
    found = []
    for line in shell_lines(lines):
        for command in re.split(r"&&|\|\||;", line):
            words = shlex.split(command.replace('"$NVCT_PROFILE"', "qemu-tcg").replace("$NVCT_PROFILE", "qemu-tcg"),
                                comments=True)  # fmt: skip
            if words and words[0].endswith("/nvct") or words[:1] == ["nvct"]:
                found.append(words[1:])
    return found


def check_commands(commands):
    assert commands, "the template runs no nvct command"
    for argv in commands:
        try:
            args = parser().parse_args(argv)
        except SystemExit:
            pytest.fail(f"nvct rejects: nvct {' '.join(argv)}")
        assert args.command in ("run", "report", "diff", "merge", "baseline", "list", "build")


def written(commands):
    """Files the nvct run commands write."""
    files = set()
    for argv in commands:
        for option in ("--json", "--junit", "--html", "--markdown", "--tap"):
            if option in argv:
                files.add(argv[argv.index(option) + 1])
    return files


def test_setup_the_templates_call_exists():
    assert os.access(ROOT / "setup", os.X_OK)


def check_fails_on_exit_1_and_2(lines):
    """Nothing swallows nvct run's status: a shell step fails on it."""
    for line in shell_lines(lines):
        if re.search(r"(^|/)nvct run\b", line):
            assert not re.search(r"\|\||;\s*(true|:|exit 0)\b|set \+e", line), line


def check_no_sudo(lines):
    for line in shell_lines(lines):
        assert not re.search(r"\bsudo\b", line), f"the container runs as root, no sudo: {line}"


def check_installs(lines):
    """Either a clone and ./setup (nvct from .venv), or the wheel built
    with `python -m build` and pip-installed into a virtualenv of its own."""
    lines = shell_lines(lines)
    runs = [line for line in lines if re.search(r"(^|/)nvct run\b", line)]
    assert runs and "./setup" in lines
    if all(line.startswith(".venv/bin/nvct ") for line in runs):
        return
    assert any(re.search(r"python -m build --wheel\b.* --outdir dist", line) for line in lines)
    venv = re.search(r"python3 -m venv (\S+)", " ".join(lines)).group(1)
    assert f"{venv}/bin/pip install dist/nvct-*.whl" in lines
    assert all(line.startswith(f"{venv}/bin/nvct ") for line in runs)


def test_gitlab_template():
    data = yaml.safe_load((CI / "gitlab-ci.yml").read_text())
    job = data["nvct"]
    lines = job["before_script"] + job["script"]
    assert job["image"] == "debian:12"
    check_installs(lines)
    check_fails_on_exit_1_and_2(lines)
    check_no_sudo(lines)
    assert not job.get("allow_failure")
    commands = nvct_commands(lines)
    check_commands(commands)
    run = next(a for a in commands if a[0] == "run")
    assert {"--junit", "--html", "--json"} <= set(run)
    artifacts = job["artifacts"]
    assert artifacts["when"] == "always"
    assert artifacts["reports"]["junit"] in written(commands)
    assert written(commands) <= set(artifacts["paths"])
    assert job["stage"] in data["stages"]


def test_github_actions_template():
    data = yaml.safe_load((CI / "github-actions.yml").read_text())
    assert "on" in data or True in data  # YAML 1.1 reads the key `on` as true
    (job,) = data["jobs"].values()
    container = job["container"]
    assert (container if isinstance(container, str) else container["image"]) == "debian:12"
    steps = job["steps"]
    assert all(("run" in s) != ("uses" in s) for s in steps)
    lines = [s["run"] for s in steps if "run" in s]
    check_no_sudo(lines)
    check_installs(lines)
    check_fails_on_exit_1_and_2(lines)
    commands = nvct_commands(lines)
    check_commands(commands)
    run_step = next(s for s in steps if "run" in s and nvct_commands([s["run"]]))
    assert "if" not in run_step and not run_step.get("continue-on-error") and "shell" not in run_step
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload["if"] == "always()"
    assert written(commands) <= set(upload["with"]["path"].split())
    assert {"nvct-junit.xml", "nvct.html"} <= written(commands)


def _strip_groovy_strings(text):
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r"'(?:[^'\\\n]|\\.)*'|\"(?:[^\"\\\n]|\\.)*\"", "''", text)


def test_jenkinsfile_template():
    text = (CI / "Jenkinsfile").read_text()
    bare = _strip_groovy_strings(text)
    for open_, close in ("{}", "()", "[]"):
        depth = 0
        for char in bare:
            depth += (char == open_) - (char == close)
            assert depth >= 0, f"unbalanced {open_}{close}"
        assert depth == 0, f"unbalanced {open_}{close}"
    assert bare.lstrip().startswith("pipeline {")
    for section in ("agent", "stages", "post", "always"):
        assert re.search(rf"\b{section}\b", bare)
    assert re.search(r"agent\s*\{\s*docker\s*\{\s*image\s+'debian:12'\s+args\s+'-u root(:root)?'\s*\}\s*\}", text)
    scripts = re.findall(r"""(?:sh\s+|script:\s*)'([^']*)'""", text)
    check_no_sudo(scripts)
    check_installs(scripts)
    commands = nvct_commands(scripts)
    check_commands(commands)
    junit = re.search(r"junit testResults: '([^']+)'", text).group(1)
    archived = re.search(r"archiveArtifacts artifacts: '([^']+)'", text).group(1)
    assert junit in written(commands)
    assert written(commands) <= {f.strip() for f in archived.split(",")}
    assert junit in written(commands) and "nvct.html" in written(commands)
    # The status is kept (returnStatus) so the reports are published, then 1 and anything else but 0 fail the build.
    assert "returnStatus: true" in text
    assert re.search(r"if \(env\.NVCT_STATUS == '1'\) \{\s*currentBuild\.result = 'FAILURE'", text)
    assert re.search(r"else if \(env\.NVCT_STATUS != '0'\) \{\s*currentBuild\.result = 'FAILURE'", text)
