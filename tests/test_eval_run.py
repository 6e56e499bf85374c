"""eval-stt run mode: tiny randomly initialised Whisper and CTC models over the test hub's Common Voice
and FLEURS replicas, end to end through the CLI, and a killed run that resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import copy_tree
from persian_data.cli import main

pytest.importorskip("transformers")
pytest.importorskip("soxr")

from support.tiny_asr import build_tiny_ctc, build_tiny_whisper  # noqa: E402


@pytest.fixture(scope="session")
def eval_root(hub, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("evalrun") / "root"
    assert main(["run", "--root", str(root), "--endpoint", hub.endpoint, "--only", "speech"]) == 0
    return root


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("models")
    return {"whisper": build_tiny_whisper(base / "whisper"), "ctc": build_tiny_ctc(base / "ctc"),
            # slower per clip (more tokens, wider), so a kill lands mid-run
            "slow": build_tiny_whisper(base / "slow", d_model=64, layers=2, max_new_tokens=64)}


def ids(root: Path, corpus_dir: str) -> list[str]:
    lines = (root / f"datasets/speech/{corpus_dir}/manifests/test.jsonl").read_text("utf-8").splitlines()
    return [json.loads(x)["id"] for x in lines if x.strip()]


@pytest.mark.parametrize("model,corpus,folder", [("whisper", "commonvoice", "commonvoice_fa"),
                                                 ("ctc", "fleurs", "fleurs_fa"),
                                                 ("whisper", "fleurs", "fleurs_fa")])
def test_run_mode_transcribes_every_clip_and_scores(eval_root, tiny_models, tmp_path, model, corpus, folder):
    root = tmp_path / "root"
    copy_tree(eval_root, root)
    rc = main(["eval-stt", "--root", str(root), "--corpus", corpus, "--model", str(tiny_models[model]),
               "--batch-size", "2", "--name", model, "--bootstrap", "200"])
    assert rc == 0
    out = root / "evals" / f"{corpus}-test-{model}"
    hyps = [json.loads(x) for x in (out / "hypotheses.jsonl").read_text("utf-8").splitlines()]
    assert [h["id"] for h in hyps] == ids(root, folder)
    assert any(h["text"] for h in hyps)
    assert all(set(h["text"].replace("<unk>", "")) <= set("آابپتثجچحخدذرزژسشصضطظعغفقکگلمنوهی ") for h in hyps)
    res = json.loads((out / "results.json").read_text("utf-8"))
    assert res["utterances"]["missing_hypotheses"] == 0
    assert res["normalized"]["words"]["utterances"] == len(hyps) and res["normalized"]["words"]["error_rate"] > 0
    run = res["run"]
    assert run["clips"] == run["transcribed_now"] == len(hyps) and run["resumed"] == 0
    assert run["rtfx"] > 0 and run["audio_seconds"] > 0
    assert "RTFx" in (out / "report.md").read_text("utf-8")
    # a second run finds everything done and transcribes nothing
    assert main(["eval-stt", "--root", str(root), "--corpus", corpus, "--model", str(tiny_models[model]),
                 "--name", model, "--bootstrap", "200"]) == 0
    again = json.loads((out / "results.json").read_text("utf-8"))["run"]
    assert again["transcribed_now"] == 0 and again["resumed"] == len(hyps)


def test_killed_run_resumes_without_redoing_finished_clips(eval_root, tiny_models, tmp_path):
    root = tmp_path / "root"
    copy_tree(eval_root, root)
    all_ids = ids(root, "fleurs_fa")
    partial = root / ".persian-data/eval/fleurs-test-slow/hypotheses.partial.jsonl"
    cmd = [sys.executable, "-m", "persian_data.cli", "eval-stt", "--root", str(root), "--corpus", "fleurs",
           "--model", str(tiny_models["slow"]), "--batch-size", "1", "--name", "slow"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if partial.exists() and partial.read_bytes().count(b"\n") >= 1:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    first = [json.loads(x) for x in partial.read_bytes().split(b"\n") if x.strip() and x.endswith(b"}")]
    assert 1 <= len(first) < len(all_ids)
    assert not (root / "evals/fleurs-test-slow").exists()  # nothing final before the run completes
    first_session = {r["session"] for r in first}
    assert len(first_session) == 1

    assert main(["eval-stt", "--root", str(root), "--corpus", "fleurs", "--model", str(tiny_models["slow"]),
                 "--batch-size", "4", "--name", "slow", "--bootstrap", "100"]) == 0
    rows = [json.loads(x) for x in partial.read_text("utf-8").splitlines()]
    assert sorted(r["id"] for r in rows) == sorted(all_ids)  # each clip once: finished ones were not redone
    by_id = {r["id"]: r for r in rows}
    for r in first:
        assert by_id[r["id"]] == r  # same line, same session: not re-transcribed
    run = json.loads((root / "evals/fleurs-test-slow/results.json").read_text("utf-8"))["run"]
    assert run["resumed"] == len(first) and run["transcribed_now"] == len(all_ids) - len(first)
    assert len(run["sessions"]) == 2 and first_session < set(run["sessions"])
    hyps = [json.loads(x) for x in (root / "evals/fleurs-test-slow/hypotheses.jsonl").read_text("utf-8").splitlines()]
    assert [h["id"] for h in hyps] == all_ids


def test_run_mode_bad_model_is_a_one_line_error(eval_root, tmp_path, capsys):
    root = tmp_path / "root"
    copy_tree(eval_root, root)
    (tmp_path / "notamodel").mkdir()
    assert main(["eval-stt", "--root", str(root), "--model", str(tmp_path / "notamodel")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: --model") and "cannot load" in err
    assert not (root / "evals").exists()


def test_run_mode_without_the_eval_extra_says_how_to_install_it(eval_root, tmp_path, monkeypatch, capsys):
    root = tmp_path / "root"
    copy_tree(eval_root, root)
    monkeypatch.setitem(sys.modules, "transformers", None)  # as if the extra were not installed
    assert main(["eval-stt", "--root", str(root), "--model", "openai/whisper-tiny"]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "pip install 'persian-data[eval]'" in err and "transformers" in err
    assert not (root / "evals").exists()
