"""The engine choice without a cluster: clear refusals on the command line, and a speech unit that
is safe to run again after a run of it died halfway (what a Ray retry does). The cluster itself:
tests/test_engine_ray.py."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import pytest

from persian_data.catalog import BY_KEY
from persian_data.cli import main
from persian_data.layout import Layout
from persian_data.prepare.speech import SpeechOptions, _unit_context
from persian_data.prepare.speech_units import ATTEMPTS, SetAside, load_result, run_unit_rerunnable

CV = BY_KEY["commonvoice"]


@pytest.fixture(scope="module")
def fetched(tmp_path_factory, hub) -> Path:
    root = tmp_path_factory.mktemp("fetched") / "root"
    assert main(["fetch", "--root", str(root), "--endpoint", hub.endpoint, "--only", "text,commonvoice"]) == 0
    return root


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_engine_ray_without_ray_installed_names_the_extra(fetched, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as where it is not installed
    before = sorted(p.relative_to(fetched).as_posix() for p in fetched.rglob("*"))
    assert main(["prepare", "text", "--root", str(fetched), "--engine", "ray"]) == 1
    line = _one_error_line(capsys)
    assert line.startswith("error: ") and "Ray" in line and "pip install 'persian-data[scale]'" in line
    assert sorted(p.relative_to(fetched).as_posix() for p in fetched.rglob("*")) == before  # nothing written


@pytest.mark.parametrize("argv, flag", [
    (["--engine", "ray", "--prepare-workers", "2"], "--prepare-workers"),
    (["--ray-address", "127.0.0.2:6379"], "--ray-address needs --engine ray"),
])
def test_engine_flags_that_cannot_go_together_are_usage_errors(fetched, argv, flag, capsys):
    assert main(["prepare", "speech", "--root", str(fetched), *argv]) == 2
    assert flag in _one_error_line(capsys)


def test_a_cluster_address_nothing_answers_on_fails_in_seconds(fetched, capsys):
    import socket
    import time

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.2", 0))
        address = f"127.0.0.2:{s.getsockname()[1]}"
    started = time.monotonic()
    assert main(["prepare", "text", "--root", str(fetched), "--engine", "ray", "--ray-address", address]) == 1
    assert time.monotonic() - started < 30  # Ray alone keeps retrying for minutes
    line = _one_error_line(capsys)
    assert f"cannot reach the Ray cluster at {address}" in line and "ray start --head" in line


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_a_speech_unit_run_again_after_a_dead_run_gives_the_same_clips_and_lines(fetched, tmp_path):
    layout = Layout(fetched)
    plan = CV.reader.plan(layout, CV)[0]
    fn, args = plan.units[0]
    options = SpeechOptions()
    clean = _unit_context(layout, CV, plan, tmp_path / "clean", options)
    expected = fn(args, clean)
    assert len(expected.written) >= 2

    # What a run that died halfway leaves: one clip complete, one cut short, its own folder.
    ctx = _unit_context(layout, CV, plan, tmp_path / "again", options)
    audio = Path(ctx.staging_audio)
    first, second = expected.written[0][0], expected.written[1][0]
    (audio / first).write_bytes((Path(clean.staging_audio) / first).read_bytes())
    (audio / second).write_bytes(b"RIFF")
    dead = audio.parent / ATTEMPTS / "dead-run"
    dead.mkdir(parents=True)
    (dead / second).write_bytes(b"RIF")
    with pytest.raises(FileExistsError):  # a plain rerun meets its own earlier clips
        fn(args, ctx)

    result = run_unit_rerunnable(fn, args, ctx)
    assert isinstance(result, SetAside) and result.rows == expected.rows  # what goes back: a file name, a count
    result = load_result(result)  # the driver reads the result back from the root
    assert result.lines == expected.lines and result.rejects == expected.rejects
    assert (result.nemo, result.recordings, result.supervisions) == \
        (expected.nemo, expected.recordings, expected.supervisions)
    assert _files(audio) == _files(Path(clean.staging_audio))
    for name, sha256, size, mtime_ns, inode in result.written:  # the cache keys name the placed files
        st = os.stat(audio / name)
        assert (st.st_size, st.st_mtime_ns, st.st_ino) == (size, mtime_ns, inode)
        assert hashlib.sha256((audio / name).read_bytes()).hexdigest() == sha256
    assert [p.name for p in (audio.parent / ATTEMPTS).iterdir()] == ["dead-run"]  # its own folder is gone, once read


def test_a_speech_unit_run_once_writes_its_clips_straight_in_and_sets_its_result_aside(fetched, tmp_path):
    layout = Layout(fetched)
    plan = CV.reader.plan(layout, CV)[0]
    fn, args = plan.units[0]
    expected = fn(args, _unit_context(layout, CV, plan, tmp_path / "clean", SpeechOptions()))
    ctx = _unit_context(layout, CV, plan, tmp_path / "once", SpeechOptions())
    audio = Path(ctx.staging_audio)
    aside = run_unit_rerunnable(fn, args, ctx)
    assert isinstance(aside, SetAside) and aside.rows == expected.rows
    attempts = audio.parent / ATTEMPTS
    assert [p.name for p in attempts.iterdir()] == [Path(aside.path).name]  # the result, no folder of its own
    assert sorted(p.name for p in audio.iterdir()) == sorted(w[0] for w in expected.written)
    result = load_result(aside)
    assert (result.lines, result.rejects, result.nemo) == (expected.lines, expected.rejects, expected.nemo)
    assert [w[:3] for w in result.written] == [w[:3] for w in expected.written]
    assert not list(attempts.iterdir())
