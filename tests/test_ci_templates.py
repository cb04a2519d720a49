"""The CI templates in ci/: they parse, every nvct command they run is one
the CLI accepts, and they publish the reports that command writes."""

import os
import re
import shlex
from pathlib import Path

import pytest
import yaml

from conformance.cli import parser

ROOT = Path(__file__).resolve().parent.parent
CI = ROOT / "ci"


def nvct_commands(lines):
    """The nvct invocations among shell command lines, as argv lists without the program."""
    found = []
    for line in lines:
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


def test_gitlab_template():
    data = yaml.safe_load((CI / "gitlab-ci.yml").read_text())
    job = data["nvct"]
    lines = job["before_script"] + job["script"]
    assert "./setup" in lines
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
    steps = job["steps"]
    assert all(("run" in s) != ("uses" in s) for s in steps)
    lines = [s["run"] for s in steps if "run" in s]
    assert "./setup" in lines
    commands = nvct_commands(lines)
    check_commands(commands)
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload["if"] == "always()"
    assert written(commands) <= set(upload["with"]["path"].split())
    assert "nvct-junit.xml" in written(commands)


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
    scripts = re.findall(r"""(?:sh\s+|script:\s*)'([^']*)'""", text)
    assert "./setup" in scripts
    commands = nvct_commands(scripts)
    check_commands(commands)
    junit = re.search(r"junit testResults: '([^']+)'", text).group(1)
    archived = re.search(r"archiveArtifacts artifacts: '([^']+)'", text).group(1)
    assert junit in written(commands)
    assert written(commands) <= {f.strip() for f in archived.split(",")}
    assert "returnStatus: true" in text and "currentBuild.result = 'FAILURE'" in text
