"""Issue 21 item 9: the small things a user meets on day one at the command line."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import persian_data

from persian_data import cli, demo
from persian_data.cli import build_parser, main
from persian_data.corpora import replicas

SRC = Path(persian_data.__file__).resolve().parents[1]  # the package under test, for child processes


def test_status_into_a_pipe_that_closed_ends_quietly(tmp_path):
    """`status --json | head -3`: the reader left before the output was written; no error, no noise."""
    read, write = os.pipe()
    os.close(read)
    done = subprocess.run([sys.executable, "-m", "persian_data.cli", "status", "--root", str(tmp_path), "--json"],
                          stdout=write, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(SRC)},
                          timeout=60)
    os.close(write)
    assert done.stderr == "" and done.returncode == 141


@pytest.mark.parametrize("command", ["fetch", "run"])
def test_a_bad_endpoint_is_a_usage_error_before_the_root_is_made(tmp_path, capsys, command):
    root = tmp_path / "new"
    assert main([command, "--root", str(root), "--endpoint", "not-a-url"]) == 2
    assert "not-a-url" in capsys.readouterr().err and not root.exists()


def test_demo_leaves_no_hub_behind_even_when_stopped(tmp_path, monkeypatch, capsys):
    """The demo builds and serves real replicas, then is stopped (Ctrl-C during the job): its hub
    folder goes either way; the layout stays for the user to look at (a --root elsewhere: the whole
    temp folder goes)."""
    mkdtemp = tempfile.mkdtemp
    monkeypatch.setattr(tempfile, "mkdtemp", lambda prefix: mkdtemp(prefix=prefix, dir=tmp_path))
    monkeypatch.setattr(replicas, "DEMO", replicas.TINY)  # small replicas, built by the demo's own code
    monkeypatch.setattr(demo, "_voice_assets", lambda: None)

    def stopped(layout, *args, **kwargs):
        layout.root.mkdir(parents=True)
        raise KeyboardInterrupt

    monkeypatch.setattr("persian_data.pipeline.run_job", stopped)
    assert main(["demo"]) == 130
    [work] = tmp_path.glob("persian-data-demo-*")
    assert sorted(p.name for p in work.iterdir()) == ["root"]
    elsewhere = tmp_path / "mine"
    assert main(["demo", "--root", str(elsewhere)]) == 130
    assert [p.name for p in tmp_path.glob("persian-data-demo-*")] == [work.name] and elsewhere.is_dir()


def test_prepare_text_only_commonvoice_says_what_is_true(tmp_path, capsys):
    assert main(["prepare", "text", "--only", "commonvoice", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--only commonvoice names none of the sources it prepares (text)" in err
    assert "not fetched" not in err and list(tmp_path.iterdir()) == []


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def test_help_is_for_users_shows_defaults_and_every_command_documents_root(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    top = capsys.readouterr().out
    assert cli.__doc__.strip() not in top and "persian-data run --root" in top and "exit 0" in top
    for name, parser in _subcommands().items():
        options = {o: a for a in parser._actions for o in a.option_strings}
        assert options["--root"].help, name
        assert not options["--root"].required, name
    assert build_parser().parse_args(["card"]).root == Path(".")
    help_of = {name: parser.format_help() for name, parser in _subcommands().items()}
    assert "(default: 30.0)" in help_of["fetch"] and "(default: cpu)" in help_of["eval-stt"]
    for group in ("cv = commonvoice", "all = text,commonvoice"):
        assert group in " ".join(help_of["fetch"].split()), group
