"""The README's two set-up commands: the first installs and runs the main job on a fresh Debian
machine as root without sudo (a container) and for a user with sudo; the second is what CI runs.

The first command is run for real by bash, with stand-ins for `apt-get`, `sudo` and `python3` on
PATH that record how they were called (nothing is installed): what is checked is the shell logic
that reaches `apt-get` with or without sudo and goes on to create the venv.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text("utf-8")
    block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert block, "README.md has no ```bash block"
    lines = [line for line in block.group(1).splitlines() if line.strip()]
    assert len(lines) == 2, f"README.md must start with exactly two commands, found {lines}"
    return lines


def _stub(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)


@pytest.fixture
def sandbox(tmp_path):
    """A PATH with only a shell, a few basics and the stand-ins: no real sudo, apt-get or python3."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sh", "bash", "env", "cat", "dirname"):
        real = shutil.which(tool)
        assert real, tool
        (bin_dir / tool).symlink_to(real)
    calls = tmp_path / "calls.log"
    _stub(bin_dir, "apt-get", f'echo "apt-get $*" >> {calls}\n')
    # python3 stands in for the venv step and stops the chain there (exit 3): far enough to know
    # that the install part succeeded and the command moved on.
    _stub(bin_dir, "python3", f'echo "python3 $*" >> {calls}\nexit 3\n')
    work = tmp_path / "checkout"
    work.mkdir()
    return bin_dir, calls, work


def _run_first(bin_dir: Path, work: Path) -> subprocess.CompletedProcess:
    first = readme_commands()[0]
    return subprocess.run([str(bin_dir / "bash"), "-c", first], cwd=work, capture_output=True, text=True,
                          env={"PATH": str(bin_dir), "HOME": str(work)}, timeout=30)


def _install_calls(calls: Path) -> list[str]:
    return [line for line in calls.read_text().splitlines() if line.startswith("apt-get install")]


def test_first_command_works_as_root_without_sudo(sandbox):
    bin_dir, calls, work = sandbox
    done = _run_first(bin_dir, work)
    assert "sudo: command not found" not in done.stderr
    assert "not found" not in done.stderr, done.stderr
    log = calls.read_text().splitlines()
    assert log[0].startswith("apt-get update"), log
    install = _install_calls(calls)
    assert len(install) == 1
    for package in ("espeak-ng", "ffmpeg", "python3-venv", "python3-dev", "gcc"):
        assert package in install[0].split(), install
    assert "python3 -m venv .venv" in log, log  # the chain went on past the install
    assert done.returncode == 3  # our python3 stand-in stopped it there


def test_first_command_uses_sudo_where_there_is_one(sandbox):
    bin_dir, calls, work = sandbox
    _stub(bin_dir, "sudo", f'echo "sudo $*" >> {calls}\nexec "$@"\n')
    done = _run_first(bin_dir, work)
    log = calls.read_text().splitlines()
    assert log[0].startswith("sudo sh -c "), log
    assert any(line.startswith("apt-get update") for line in log)
    assert len(_install_calls(calls)) == 1
    assert "python3 -m venv .venv" in log
    assert done.returncode == 3


def test_first_command_stops_when_the_install_fails(sandbox):
    bin_dir, calls, work = sandbox
    _stub(bin_dir, "apt-get", f'echo "apt-get $*" >> {calls}\nexit 100\n')
    done = _run_first(bin_dir, work)
    assert done.returncode != 0
    assert not any(line.startswith("python3") for line in calls.read_text().splitlines())


def test_first_command_installs_everything_and_runs_the_main_job():
    import tomllib

    first = readme_commands()[0]
    assert '.venv/bin/pip install -e ".[all]"' in first
    assert first.rstrip().endswith(".venv/bin/persian-data run --root .")
    assert "|| true" not in first
    # "all" is everything: every requirement of every other extra comes with it
    extras = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))["project"]["optional-dependencies"]
    listed = re.fullmatch(r"persian-data\[([\w,-]+)\]", "".join(extras["all"]))
    assert listed, extras["all"]
    with_all = {req for name in listed.group(1).split(",") for req in extras[name]}
    for name, requirements in extras.items():
        assert name == "all" or set(requirements) <= with_all, (name, set(requirements) - with_all)
    # `run` is the main job: the command the CLI describes as fetching and preparing everything
    run_help = subprocess.run([sys.executable, "-m", "persian_data.cli", "run", "--help"], capture_output=True,
                              text=True, timeout=60)
    assert run_help.returncode == 0 and "usage: persian-data run" in run_help.stdout, run_help.stderr


def test_ci_runs_the_readme_test_command():
    second = readme_commands()[1]
    ci = (REPO / ".ci" / "run").read_text("utf-8")
    assert second in ci.splitlines(), f".ci/run must run {second!r}"
    assert "|| true" not in ci
    assert os.access(REPO / ".ci" / "run", os.X_OK)  # CI calls it by its path
    assert ci.startswith("#!/usr/bin/env bash\n") and "set -euo pipefail" in ci  # a failing step fails CI
