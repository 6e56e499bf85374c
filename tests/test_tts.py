"""TTS: the model check, the tiny-VITS builder, synthesis to WAV, and life without the extra.

The voices here are real Coqui VITS models (tiny dimensions, random weights) built once per
session by persian_data.tts.tiny; they load through coqui-tts exactly like the Kamtera ones.
"""

from __future__ import annotations

import builtins
import importlib.util
import io
import json
import shutil
import subprocess
import sys
import textwrap
import wave
from pathlib import Path

import numpy as np
import pytest

from persian_data.catalog import BY_KEY
from persian_data.errors import ExtraMissingError
from persian_data.gates import GateFailure, GateNote, registered
from persian_data.layout import Layout
from persian_data.tts.check import check_voice, find_checkpoint
from persian_data.tts.gate import tts_gates
from persian_data.tts.synth import (
    EmptyTextError,
    Voice,
    list_voices,
    split_sentences,
    synth_to_file,
    wav_bytes,
)

HAS_TTS = importlib.util.find_spec("TTS") is not None and importlib.util.find_spec("torch") is not None
needs_tts = pytest.mark.skipif(not HAS_TTS, reason="the tts extra (torch, coqui-tts) is not installed")

CKPT = "best_model_30824.pth"
TEXT = "سلام دنیا. این یک آزمایش است؟ بله، درست است!"


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    """A tiny Kamtera-shaped voice folder (config.json, best_model_30824.pth, README.md)."""
    if not HAS_TTS:
        pytest.skip("the tts extra is not installed")
    from support.voices import write_vits

    return write_vits(tmp_path_factory.mktemp("tiny_vits") / "model", checkpoint_name=CKPT, seed=0)


@pytest.fixture(scope="session")
def tiny_voice(tiny_dir) -> Voice:
    return Voice.load(tiny_dir, name="female")


@pytest.fixture
def voice_copy(tiny_dir, tmp_path) -> Path:
    """A private copy of the tiny voice, to break."""
    dst = tmp_path / "model"
    shutil.copytree(tiny_dir, dst)
    return dst


def _config(model_dir: Path) -> dict:
    return json.loads((model_dir / "config.json").read_text(encoding="utf-8"))


def _write_config(model_dir: Path, config: dict) -> None:
    (model_dir / "config.json").write_text(json.dumps(config, indent=4), encoding="utf-8")


def _failures(results) -> list[GateFailure]:
    return [r for r in results if isinstance(r, GateFailure)]


def _block_imports(monkeypatch, *names: str) -> None:
    """Make `import <name>` (and its submodules) fail, as without the extra."""
    real_import = builtins.__import__

    def fake_import(name, globals=None, locals=None, fromlist=(), level=0):
        if level == 0 and name.split(".")[0] in names:
            raise ModuleNotFoundError(f"No module named {name!r}")
        return real_import(name, globals, locals, fromlist, level)

    monkeypatch.setattr(builtins, "__import__", fake_import)


# -- sentence splitting (no torch needed) ------------------------------------------------------


def test_split_at_persian_and_latin_sentence_ends():
    assert split_sentences("سلام دنیا. حالت چطور است؟ خوبم! Hello world. OK?") == [
        "سلام دنیا.",
        "حالت چطور است؟",
        "خوبم!",
        "Hello world.",
        "OK?",
    ]


def test_split_keeps_decimals_and_punctuation_runs():
    assert split_sentences("عدد 3.14 است. واقعاً؟! بله...") == ["عدد 3.14 است.", "واقعاً؟!", "بله..."]
    assert split_sentences("سال ۱۴۰۰. سال 1400. بعد") == ["سال ۱۴۰۰.", "سال 1400.", "بعد"]


def test_split_at_clause_marks_only_when_long():
    assert split_sentences("بله، درست است؛ برو.") == ["بله، درست است؛ برو."]
    long = "این یک جملهٔ بلند است، " * 20
    pieces = split_sentences(long, clause_chars=60)
    assert len(pieces) > 5
    assert all(len(p) <= 60 for p in pieces)
    assert all(p.endswith("،") for p in pieces)
    assert " ".join(pieces) == " ".join(long.split())


def test_split_drops_empty_and_cuts_runaway_pieces():
    assert split_sentences("") == []
    assert split_sentences(" ... !? ") == []
    words = " ".join(["کلمه"] * 200)
    pieces = split_sentences(words, max_chars=100)
    assert len(pieces) >= 9 and all(len(p) <= 100 for p in pieces)
    assert " ".join(pieces) == words


def test_wav_bytes_header_and_normalisation():
    tone = 0.5 * np.sin(np.linspace(0, 200 * np.pi, 24000)).astype(np.float32)
    with wave.open(io.BytesIO(wav_bytes(tone, 24000))) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 24000)
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), "<i2")
    assert pcm.size == 24000 and np.abs(pcm).max() == 32767  # peak-normalised like coqui


def test_find_checkpoint_prefers_highest_best_model(tmp_path):
    for name in ("checkpoint_48000.pth", "best_model_1725.pth", "best_model_30824.pth", "best_model_3796.pth"):
        (tmp_path / name).write_bytes(b"x")
    assert find_checkpoint(tmp_path).name == "best_model_30824.pth"
    assert find_checkpoint(tmp_path, "best_model_1725.pth").name == "best_model_1725.pth"
    assert find_checkpoint(tmp_path, "best_model_9.pth") is None
    assert find_checkpoint(tmp_path / "nowhere") is None


# -- without the extra -------------------------------------------------------------------------


def test_package_imports_and_degrades_without_torch(tmp_path):
    """In a fresh interpreter where torch and TTS cannot be imported at all."""
    model = tmp_path / "datasets/tts/kamtera_vits_female/model"
    model.mkdir(parents=True)
    (model / "config.json").write_text('{"model": "vits", "audio": {"sample_rate": 24000}}')
    (model / CKPT).write_bytes(b"placeholder")
    script = textwrap.dedent(
        f"""
        import sys
        for name in ("torch", "torchaudio", "torchcodec", "TTS", "trainer", "coqpit"):
            sys.modules[name] = None  # import fails with ImportError
        import persian_data.tts, persian_data.tts.server, persian_data.tts.tiny
        from persian_data.gates import GateNote, registered
        from persian_data.layout import Layout
        from persian_data.errors import ExtraMissingError
        from persian_data.tts import Voice, check_voice, list_voices
        assert "tts" in registered()
        notes = registered()["tts"](Layout({str(tmp_path)!r}))
        assert len(notes) == 1 and isinstance(notes[0], GateNote), notes
        print("NOTE:", notes[0].message)
        assert list_voices(Layout({str(tmp_path)!r}))[0]["sample_rate"] == 24000
        try:
            Voice.load({str(model)!r})
        except ExtraMissingError as exc:
            print("LOAD:", exc)
        assert "torch" not in sys.modules or sys.modules["torch"] is None
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "pip install 'persian-data[tts]'" in proc.stdout
    assert "datasets/tts/kamtera_vits_female/model" in proc.stdout
    assert "LOAD:" in proc.stdout and "tts extra is not installed" in proc.stdout


def test_missing_extra_is_a_note_not_a_crash(tmp_path, monkeypatch):
    layout = Layout(tmp_path)
    model = layout.content_dir(BY_KEY["tts-male"])
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    _block_imports(monkeypatch, "torch", "TTS")
    results = check_voice(model)
    assert len(results) == 1 and isinstance(results[0], GateNote)
    assert "pip install 'persian-data[tts]'" in results[0].message
    gate_results = tts_gates(layout)
    assert [type(r) for r in gate_results] == [GateNote]
    with pytest.raises(ExtraMissingError, match=r"persian-data\[tts\]"):
        Voice.load(model)


def test_gate_is_registered_and_silent_without_voice_buckets(tmp_path):
    assert registered()["tts"] is tts_gates
    assert tts_gates(Layout(tmp_path)) == []


# -- the tiny model, the check -----------------------------------------------------------------


@needs_tts
def test_tiny_builder_has_the_real_structure(tiny_dir):
    import torch

    from persian_data.tts.tiny import build_tiny_vits

    config = _config(tiny_dir)
    assert config["model"] == "vits"
    assert config["audio"]["sample_rate"] == 24000
    assert config["use_phonemes"] is True and config["phonemizer"] == "espeak"
    assert config["phoneme_language"] == "fa" and config["text_cleaner"] == "basic_cleaners"
    assert config["characters"]["characters_class"] == "TTS.tts.utils.text.characters.IPAPhonemes"
    state = torch.load(tiny_dir / CKPT, map_location="cpu", weights_only=True)
    assert {"config", "model", "optimizer", "scheduler", "scaler", "step", "epoch", "date", "model_loss"} <= set(state)
    assert state["step"] == 30824
    assert state["model"]["text_encoder.emb.weight"].shape[0] == config["model_args"]["num_chars"]
    # deterministic: the same seed gives the same bytes; another seed other weights
    again = build_tiny_vits(seed=0)
    assert again == ((tiny_dir / "config.json").read_bytes(), (tiny_dir / CKPT).read_bytes())
    assert build_tiny_vits(seed=1)[1] != again[1]


@needs_tts
def test_tiny_model_passes_the_check(tiny_dir):
    assert check_voice(tiny_dir) == []
    assert check_voice(tiny_dir, checkpoint=CKPT, structural=False) == []


@needs_tts
def test_gate_checks_each_voice_bucket(tiny_dir, tmp_path):
    layout = Layout(tmp_path)
    shutil.copytree(tiny_dir, layout.content_dir(BY_KEY["tts-female"]))
    assert tts_gates(layout) == []
    male = layout.content_dir(BY_KEY["tts-male"])
    shutil.copytree(tiny_dir, male)
    (male / CKPT).rename(male / "best_model_91323.pth")
    cfg = _config(male)
    cfg["audio"]["sample_rate"] = 22050
    _write_config(male, cfg)
    results = tts_gates(layout)
    assert len(results) == 1 and isinstance(results[0], GateFailure)
    # root-relative paths, both files named
    assert results[0].path == "datasets/tts/kamtera_vits_male/model/best_model_91323.pth"
    assert "datasets/tts/kamtera_vits_male/model/config.json" in results[0].reason


@needs_tts
def test_symbol_count_mismatch_names_both_files(voice_copy):
    cfg = _config(voice_copy)
    cfg["characters"]["phonemes"] += "ǀǁǂ"
    cfg["characters"]["characters"] = cfg["characters"]["phonemes"]
    _write_config(voice_copy, cfg)
    failures = _failures(check_voice(voice_copy))
    assert failures, "a config with 3 more symbols must not pass"
    reason = failures[0].reason
    assert "config.json" in reason and CKPT in reason
    assert "rows" in reason and "do not belong together" in reason


@needs_tts
def test_same_count_other_symbols_is_caught(voice_copy):
    """The gibberish case: every shape fits, only the symbol order differs."""
    cfg = _config(voice_copy)
    phonemes = cfg["characters"]["phonemes"]
    swapped = phonemes.replace("p", "\0").replace("b", "p").replace("\0", "b")
    cfg["characters"]["phonemes"] = cfg["characters"]["characters"] = swapped
    cfg["characters"]["is_sorted"] = False  # keep the order as written
    _write_config(voice_copy, cfg)
    failures = _failures(check_voice(voice_copy))
    assert len(failures) == 1, failures
    reason = failures[0].reason
    assert "config.json" in reason and CKPT in reason and "gibberish" in reason


@needs_tts
def test_sample_rate_mismatch_names_both_files(voice_copy):
    cfg = _config(voice_copy)
    cfg["audio"]["sample_rate"] = 22050
    _write_config(voice_copy, cfg)
    (failure,) = _failures(check_voice(voice_copy))
    assert "22050" in failure.reason and "24000" in failure.reason
    assert "config.json" in failure.reason and CKPT in failure.reason


@needs_tts
def test_other_dimensions_are_caught_and_voice_load_refuses(voice_copy):
    from persian_data.tts.check import VoiceCheckError

    cfg = _config(voice_copy)
    cfg["model_args"]["num_layers_flow"] = 2  # one more flow layer than the weights have
    _write_config(voice_copy, cfg)
    (failure,) = _failures(check_voice(voice_copy))
    assert "flow" in failure.reason and "absent" in failure.reason
    assert "config.json" in failure.reason and CKPT in failure.reason
    with pytest.raises(VoiceCheckError, match=r"config\.json"):
        Voice.load(voice_copy)


@needs_tts
def test_duplicate_characters_config_is_refused(voice_copy):
    cfg = _config(voice_copy)
    cfg["characters"]["phonemes"] += "!"  # "!" is also a punctuation: coqui's assertion
    cfg["characters"]["characters"] = cfg["characters"]["phonemes"]
    _write_config(voice_copy, cfg)
    (failure,) = _failures(check_voice(voice_copy))
    assert failure.path.endswith("config.json") and "duplicate" in failure.reason


@needs_tts
def test_not_a_vits_config(voice_copy):
    _write_config(voice_copy, {"model": "glow_tts"})
    (failure,) = _failures(check_voice(voice_copy))
    assert "not a Coqui VITS config" in failure.reason
    (voice_copy / "config.json").write_text("{not json")
    (failure,) = _failures(check_voice(voice_copy))
    assert "not valid JSON" in failure.reason


@needs_tts
def test_truncated_checkpoint(voice_copy):
    data = (voice_copy / CKPT).read_bytes()
    (voice_copy / CKPT).write_bytes(data[: len(data) // 2])
    (failure,) = _failures(check_voice(voice_copy))
    assert failure.path.endswith(CKPT) and "does not load" in failure.reason


class _NotATensor:
    pass


@needs_tts
def test_checkpoint_needing_full_unpickling_is_refused(voice_copy):
    import torch

    state = torch.load(voice_copy / CKPT, map_location="cpu", weights_only=True)
    state["extra"] = _NotATensor()
    torch.save(state, voice_copy / CKPT)
    (failure,) = _failures(check_voice(voice_copy))
    assert "weights_only=True" in failure.reason


@needs_tts
def test_missing_espeak_says_how_to_install(tiny_dir, tmp_path, monkeypatch):
    from persian_data.tts.check import VoiceCheckError

    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    (failure,) = _failures(check_voice(tiny_dir))
    assert "espeak-ng is not installed" in failure.reason
    assert "apt-get install espeak-ng" in failure.reason
    with pytest.raises(VoiceCheckError, match="apt-get install espeak-ng"):
        Voice.load(tiny_dir)


# -- synthesis ---------------------------------------------------------------------------------


def _read_wav(path_or_bytes):
    handle = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else open(path_or_bytes, "rb")
    with handle, wave.open(handle) as wav:
        params = (wav.getnchannels(), wav.getsampwidth(), wav.getframerate())
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), "<i2")
    return params, pcm


@needs_tts
def test_synth_writes_a_24k_mono_wav_that_is_not_silent(tiny_dir, tmp_path):
    out = synth_to_file(tiny_dir, TEXT, tmp_path / "out" / "hello.wav")
    assert out == tmp_path / "out" / "hello.wav"
    (channels, width, rate), pcm = _read_wav(out)
    assert (channels, width, rate) == (1, 2, 24000)
    assert pcm.size > 0.3 * 24000
    rms = float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2)))
    assert rms > 300, f"audio is (nearly) silent: rms {rms:.1f} of 32767"
    assert not list((tmp_path / "out").glob("*.tmp"))


@needs_tts
def test_long_text_is_spoken_piece_by_piece(tiny_voice, monkeypatch):
    calls: list[str] = []
    real = tiny_voice.synthesize_piece

    def spy(piece):
        calls.append(piece)
        return real(piece)

    monkeypatch.setattr(tiny_voice, "synthesize_piece", spy)
    audio = tiny_voice.synthesize("جملهٔ اول. جملهٔ دوم؟ جملهٔ سوم!")
    assert calls == ["جملهٔ اول.", "جملهٔ دوم؟", "جملهٔ سوم!"]
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert np.abs(audio).max() > 0.05  # seed 0 speaks at ~0.2 peak
    with pytest.raises(EmptyTextError):
        tiny_voice.synthesize(" ... ")


@needs_tts
def test_list_voices_reads_the_lock(tiny_dir, tmp_path):
    layout = Layout(tmp_path)
    shutil.copytree(tiny_dir, layout.content_dir(BY_KEY["tts-female"]))
    before = {v["name"]: v for v in list_voices(layout)}
    assert before["female"]["installed"] and not before["male"]["installed"]
    assert before["female"]["revision"] is None
    assert before["female"]["repo"] == "Kamtera/persian-tts-female-vits"
    assert before["female"]["sample_rate"] == 24000 and before["female"]["checkpoint"] == CKPT
    layout.lock_file.parent.mkdir(parents=True)
    sha = "a" * 40
    layout.lock_file.write_text(json.dumps({"version": 1, "sources": {"tts-female": {
        "repo_id": "Kamtera/persian-tts-female-vits", "repo_type": "model", "revision": sha, "files": {}}}}))
    after = {v["name"]: v for v in list_voices(layout)}
    assert after["female"]["revision"] == sha and after["male"]["revision"] is None


# -- the check in a child process (started while the voice downloads) ---------------------------


@needs_tts
def test_check_worker_gives_the_in_process_verdict(tiny_dir, voice_copy):
    from persian_data.tts.worker import CheckWorker

    cfg = _config(voice_copy)
    cfg["audio"]["sample_rate"] = 22050
    _write_config(voice_copy, cfg)
    worker = CheckWorker()
    try:
        assert worker.check(tiny_dir, checkpoint=CKPT, structural=False, layout=None) == []
        in_child = worker.check(voice_copy, checkpoint=CKPT, structural=True, layout=None)
    finally:
        worker.close()
    assert in_child == check_voice(voice_copy, checkpoint=CKPT, structural=True)
    assert len(in_child) == 1 and "22050 Hz" in in_child[0].reason
    assert worker._process.poll() == 0  # it read end-of-file and exited by itself


@needs_tts
def test_check_worker_that_died_answers_none(tiny_dir):
    from persian_data.tts.worker import CheckWorker

    worker = CheckWorker()
    try:
        worker._process.kill()
        worker._process.wait(10)
        assert worker.check(tiny_dir, checkpoint=CKPT, structural=False, layout=None) is None
    finally:
        worker.close()


def test_check_worker_starts_only_for_voices_and_only_when_it_saves_time(tmp_path, monkeypatch):
    from persian_data.tts import worker as W

    started = []
    monkeypatch.setattr(W, "CheckWorker", lambda **kw: started.append(1) or "worker")
    layout = Layout(tmp_path)
    assert W.start_check_worker(layout, [BY_KEY["text"], BY_KEY["fleurs"]]) is None
    monkeypatch.setitem(sys.modules, "TTS", sys.modules.get("TTS", object()))
    monkeypatch.setitem(sys.modules, "torch", sys.modules.get("torch", object()))
    assert W.start_check_worker(layout, [BY_KEY["tts-male"]]) is None  # already imported here
    monkeypatch.delitem(sys.modules, "TTS")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    assert W.start_check_worker(layout, [BY_KEY["tts-male"]]) is None  # no extra: the gate says so
    assert started == []
    monkeypatch.undo()
    monkeypatch.setattr(W, "CheckWorker", lambda **kw: started.append(1) or "worker")
    monkeypatch.delitem(sys.modules, "TTS", raising=False)
    if HAS_TTS:
        assert W.start_check_worker(layout, [BY_KEY["text"], BY_KEY["tts-female"]]) == "worker"
        assert started == [1]


@needs_tts
def test_fetch_of_a_voice_checks_it_in_the_child_process(fresh_hub, tmp_path):
    """The real CLI in its own process: torch is not imported there before the gate, so the check
    runs in the child started at plan time, and its verdict reaches the log and the exit code."""
    from support.replicas import REPLICA_REPOS

    def fetch(root: Path) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "persian_data.cli", "fetch", "--root", str(root), "--endpoint",
               fresh_hub.endpoint, "--only", "tts-female"]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=300)

    # The good run from a user's script with no `if __name__ == "__main__"` guard: the child must
    # not re-run it (multiprocessing's spawn would).
    script = tmp_path / "unguarded.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        from persian_data.cli import main
        print("script top level ran")
        sys.exit(main(["fetch", "--root", {str(tmp_path / "good")!r}, "--endpoint", {fresh_hub.endpoint!r},
                       "--only", "tts-female"]))
    """), encoding="utf-8")
    good = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert good.stdout.count("script top level ran") == 1
    assert good.returncode == 0, good.stderr[-3000:]
    log = (tmp_path / "good/logs/dataset_download.log").read_text("utf-8")
    assert "importing torch and coqui-tts in a child process" in log
    assert "checking here instead" not in log
    assert "PASS: gates" in log and ", tts " in log.split("PASS: gates")[-1].splitlines()[0]

    # The repo publishes a config that does not belong to its checkpoint: the child's verdict fails the run.
    store = fresh_hub.store
    repo_type, repo_id = REPLICA_REPOS["tts-female"]
    files = {f.path: store.object_path(f.object).read_bytes() for f in store.files(repo_type, repo_id, "main")}
    config = json.loads(files["config.json"])
    config["audio"]["sample_rate"] = 16000
    files["config.json"] = json.dumps(config, indent=4).encode()
    store.publish(repo_type, repo_id, files)
    bad = fetch(tmp_path / "bad")
    assert bad.returncode == 1, bad.stderr[-3000:]
    log = (tmp_path / "bad/logs/dataset_download.log").read_text("utf-8")
    assert "importing torch and coqui-tts in a child process" in log and "checking here instead" not in log
    assert "FAIL [tts] datasets/tts/kamtera_vits_female/model/best_model_30824.pth" in log
    assert "16000 Hz" in log and "FAIL: gates" in log
