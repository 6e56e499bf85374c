"""train-stt end to end: tiny random Whisper and CTC models fine-tuned on the local hub's Common Voice
and FLEURS replicas (fetched and prepared once), and on a speech corpus declared in persian-data.toml,
on CPU, through the CLI.

Kept lean: one Whisper run and one CTC run of 40 steps serve most checks; the kill test reuses the
CTC run as its uninterrupted twin; the selection checks are dry runs or in-process calls.
"""

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
pytest.importorskip("accelerate")
pytest.importorskip("soxr")

from persian_data.evaluate.textnorm import normalize_for_scoring  # noqa: E402
from support.tiny_asr import build_tiny_ctc, build_tiny_whisper  # noqa: E402

CORPUS_DIRS = {"commonvoice": "commonvoice_fa", "fleurs": "fleurs_fa"}
# Common Voice replica clips last 0.5-1.0 s: this cut leaves some out as too long.
MAX_DURATION = 0.85
STEPS = ["--max-steps", "40", "--logging-steps", "2", "--batch-size", "4", "--workers", "1"]
CTC_ARGS = ["--corpus", "commonvoice,fleurs", "--allow-leakage", "--eval-steps", "10", "--learning-rate", "3e-3", *STEPS]


@pytest.fixture(scope="session")
def stt_root(hub, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("stt") / "root"
    assert main(["fetch", "--root", str(root), "--endpoint", hub.endpoint, "--only", "speech"]) == 0
    assert main(["prepare", "speech", "--root", str(root)]) == 0
    return root


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("stt-models")
    # 56 new tokens (64 label positions) hold the replicas' sentences; "short" (20 positions) does not.
    # A 2 s window (100 encoder positions, not 1,500): the replicas' clips last at most 1 s.
    return {"whisper": build_tiny_whisper(base / "whisper", d_model=16, max_new_tokens=56, chunk_length=2),
            "short": build_tiny_whisper(base / "short", d_model=16, max_new_tokens=12, chunk_length=2),
            "ctc": build_tiny_ctc(base / "ctc")}


def manifest(root: Path, corpus: str, split: str) -> list[dict]:
    path = root / "datasets/speech" / CORPUS_DIRS[corpus] / "manifests" / f"{split}.jsonl"
    return [json.loads(x) for x in path.read_text("utf-8").splitlines() if x.strip()]


def record(run: Path) -> dict:
    return json.loads((run / "train.json").read_text("utf-8"))


def loss_falls(rec: dict) -> tuple[float, float]:
    losses = [p["loss"] for p in rec["training"]["train_loss_curve"]]
    assert len(losses) >= 10, losses
    return sum(losses[-5:]) / 5, sum(losses[:5]) / 5


def last_error(capsys) -> list[str]:
    return [x for x in capsys.readouterr().err.strip().splitlines() if x.startswith("error:")]


@pytest.fixture(scope="session")
def ctc_run(stt_root, tiny, tmp_path_factory) -> tuple[Path, Path]:
    """The uninterrupted CTC run (the kill test's twin): Common Voice + FLEURS, leakage allowed."""
    root = tmp_path_factory.mktemp("ctc-run") / "root"
    copy_tree(stt_root, root)
    run = root / "runs/stt/ctc"
    assert main(["train-stt", "--root", str(root), "--model", str(tiny["ctc"]), "--output", str(run), *CTC_ARGS]) == 0
    return root, run


def test_whisper_learns_leaves_out_leaked_and_long_clips_and_is_scored_by_eval_stt(stt_root, tiny, tmp_path):
    root = tmp_path / "root"
    copy_tree(stt_root, root)
    assert main(["train-stt", "--root", str(root), "--model", str(tiny["whisper"]), "--corpus", "commonvoice,fleurs",
                 "--eval-steps", "20", "--max-duration", str(MAX_DURATION), "--learning-rate", "1e-2", *STEPS]) == 0
    run = root / "runs/stt/whisper"
    rec = record(run)
    assert rec["status"] == "finished" and rec["model"]["family"] == "whisper"
    last, first = loss_falls(rec)
    assert last < 0.8 * first

    # what had to be left out, worked out here from the manifests
    held = {k for c in ("commonvoice", "fleurs") for s in ("validation", "test")
            for k in normalize_for_scoring([r["text"] for r in manifest(root, c, s)]).texts}
    speakers = {r["client_id"] for s in ("validation", "test") for r in manifest(root, "commonvoice", s)}
    train = [(c, r) for c in ("commonvoice", "fleurs") for r in manifest(root, c, "train")]
    keys = normalize_for_scoring([r["text"] for _, r in train]).texts
    leaked = {r["id"] for (c, r), k in zip(train, keys) if k in held or r.get("client_id") in speakers}
    too_long = {r["id"] for _, r in train if r["id"] not in leaked and r["duration"] > MAX_DURATION}
    assert leaked and too_long  # the replicas have both (FLEURS train sentences recur in its validation split)
    excluded = rec["data"]["train"]["excluded"]
    assert excluded.get("sentence_in_eval_or_test", 0) + excluded.get("speaker_in_eval_or_test", 0) == len(leaked)
    assert excluded["longer_than_max_duration"] == len(too_long)
    assert rec["data"]["train"]["clips"] == len(train) - len(leaked) - len(too_long)
    rows = [json.loads(x) for x in (run / "clips.jsonl").read_text("utf-8").splitlines()]
    left_out = {r["id"]: r["reason"] for r in rows if r["role"] == "train" and not r["used"]}
    assert set(left_out) == leaked | too_long
    assert {left_out[i] for i in too_long} == {"longer_than_max_duration"}
    assert rec["data"]["leakage"]["excluded"] is True and rec["data"]["leakage"]["leaked_clips_trained_on"] == 0

    # the eval during training: normalized WER/CER at steps 20 and 40, per corpus too; the best is kept
    curve = rec["training"]["eval_curve"]
    assert [p["step"] for p in curve] == [20, 40]
    assert all(0 <= p["wer"] and 0 <= p["cer"] and "wer_fleurs" in p for p in curve)
    best = rec["training"]["best"]
    assert best["step"] in (20, 40) and best["wer"] == min(p["wer"] for p in curve)
    assert (run / "model.safetensors").is_file()  # and its processor: eval-stt below loads the folder as a pipeline

    # the final eval is eval-stt's own run, on each corpus's test split, in evals/
    for corpus in ("commonvoice", "fleurs"):
        out = root / "evals" / f"{corpus}-test-whisper"
        res = json.loads((out / "results.json").read_text("utf-8"))
        assert res["run"]["model"] == str(run) and res["run"]["trained_by"]["leakage_excluded"] is True
        assert res["utterances"]["manifest"] == len(manifest(root, corpus, "test"))
        assert rec["test"][corpus]["wer"] == res["wer"]
        assert (out / "hypotheses.jsonl").is_file() and (out / "report.md").is_file()

    # the card: the Hub's format, its model-index holding those test results
    from huggingface_hub import ModelCard

    card = ModelCard.load(run / "README.md")
    assert card.data.language == "fa" and card.data.base_model is None  # a local folder is not a Hub id
    assert str(tiny["whisper"]) in card.text  # the body names it
    results = {(r.dataset_type, r.metric_name): r.metric_value for r in card.data.eval_results}
    assert results[("hezarai/common-voice-13-fa", "Test WER (normalized)")] == round(100 * rec["test"]["commonvoice"]["wer"], 2)
    assert ("google/fleurs", "Test CER (normalized)") in results
    assert {r.dataset_config for r in card.data.eval_results if r.dataset_type == "google/fleurs"} == {"fa_ir"}
    sources = rec["sources"]
    assert len(sources["commonvoice"]["revision"]) == 40
    assert set(rec["data"]["manifests"]) >= {"datasets/speech/commonvoice_fa/manifests/train.jsonl",
                                            "datasets/speech/fleurs_fa/manifests/test.jsonl"}


def test_ctc_builds_its_vocabulary_learns_and_says_it_trained_on_leaked_clips(ctc_run, capsys):
    root, run = ctc_run
    rec = record(run)
    assert rec["status"] == "finished" and rec["model"]["family"] == "ctc"
    last, first = loss_falls(rec)
    assert last < 0.8 * first
    vocab = json.loads((run / "vocab.json").read_text("utf-8"))
    used = {c for c in ("commonvoice", "fleurs") for r in manifest(root, c, "train")}
    targets = "".join(normalize_for_scoring([r["text"] for c in used for r in manifest(root, c, "train")]).texts)
    assert set(targets) - {" "} <= set(vocab) and "|" in vocab and vocab["[PAD]"] == 0
    assert not (set(vocab) - set(targets) - {"[PAD]", "[UNK]", "|", "<s>", "</s>"})  # nothing but what it trains on
    leak = rec["data"]["leakage"]
    assert leak["excluded"] is False and leak["leaked_clips_trained_on"] > 0
    assert "Leakage allowed" in (run / "README.md").read_text("utf-8")
    res = json.loads((root / "evals/fleurs-test-ctc/results.json").read_text("utf-8"))
    assert res["run"]["trained_by"]["leakage_excluded"] is False
    assert [p["step"] for p in rec["training"]["eval_curve"]] == [10, 20, 30, 40]

    # a finished run is not redone; the same folder with other options is refused
    before = (run / "train.json").read_bytes()
    capsys.readouterr()
    assert main(["train-stt", "--root", str(root), "--model", str(run.parent.parent.parent / "x"), "--output", str(run),
                 *CTC_ARGS]) == 2  # another model: a clear error, nothing touched
    assert main(["train-stt", "--root", str(root), "--model", rec["model"]["base"], "--output", str(run),
                 *CTC_ARGS]) == 0
    assert (run / "train.json").read_bytes() == before
    assert main(["train-stt", "--root", str(root), "--model", rec["model"]["base"], "--output", str(run),
                 *CTC_ARGS, "--seed", "1"]) == 2
    err = last_error(capsys)[-1]
    assert "other options" in err and "seed" in err and "--output" in err
    assert (run / "train.json").read_bytes() == before


def test_killed_run_resumes_from_its_last_checkpoint_with_the_same_batches(ctc_run, stt_root, tiny, tmp_path):
    root = tmp_path / "root"
    copy_tree(stt_root, root)
    run = root / "runs/stt/ctc"
    cmd = [sys.executable, "-m", "persian_data.cli", "train-stt", "--root", str(root), "--model", str(tiny["ctc"]),
           "--output", str(run), *CTC_ARGS]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    state = run / "checkpoints/checkpoint-10/trainer_state.json"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if state.exists():
            time.sleep(0.2)  # well inside the next ten steps
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    assert record(run)["status"] == "training"

    assert main(["train-stt", "--root", str(root), "--model", str(tiny["ctc"]), "--output", str(run), *CTC_ARGS]) == 0
    rec = record(run)
    first, second = rec["sessions"]
    assert second["from_step"] >= 10 and second["from_step"] % 10 == 0  # a checkpoint, not step 0
    assert rec["training"]["global_step"] == 40 and rec["status"] == "finished"
    steps = [p["step"] for p in rec["training"]["train_loss_curve"]]
    assert steps == list(range(2, 41, 2))  # each step logged once: nothing redone before the checkpoint
    # the steps after the checkpoint saw the batches (and dropout) of the uninterrupted run
    twin = {p["step"]: p["loss"] for p in record(ctc_run[1])["training"]["train_loss_curve"]}
    for p in rec["training"]["train_loss_curve"]:
        assert p["loss"] == pytest.approx(twin[p["step"]], rel=1e-4), p["step"]


def test_minutes_picks_the_same_balanced_clips_for_the_same_seed(stt_root, tiny, capsys):
    def plan(seed: int) -> dict:
        capsys.readouterr()
        assert main(["train-stt", "--root", str(stt_root), "--model", str(tiny["ctc"]), "--corpus",
                     "commonvoice,fleurs", "--allow-leakage", "--minutes", "0.08", "--seed", str(seed),
                     "--dry-run"]) == 0
        return json.loads(capsys.readouterr().out)["data"]

    a, b = plan(3), plan(3)
    assert a["train"]["digest"] == b["train"]["digest"] and a["minutes"] == b["minutes"]
    m = a["minutes"]
    assert 0.08 <= m["selected"] <= 0.08 + 1.0 / 60 and m["selected"] < m["available"]
    assert a["train"]["excluded"]["outside_minutes_subset"] > 0
    assert sum(m["genders"].values()) == a["train"]["clips"]
    assert not (stt_root / "runs").exists()  # a dry run writes nothing


def test_speaker_of_a_test_clip_is_kept_out_of_training(stt_root, tiny, tmp_path, capsys):
    root = tmp_path / "root"
    copy_tree(stt_root, root)
    train = manifest(root, "commonvoice", "train")
    speaker = train[0]["client_id"]
    path = root / "datasets/speech/commonvoice_fa/manifests/test.jsonl"
    rows = manifest(root, "commonvoice", "test")
    rows[0]["client_id"] = speaker  # that speaker now also records a test clip
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    capsys.readouterr()
    assert main(["train-stt", "--root", str(root), "--model", str(tiny["ctc"]), "--dry-run"]) == 0
    data = json.loads(capsys.readouterr().out)["data"]
    by_speaker = sum(1 for r in train if r["client_id"] == speaker)
    assert data["train"]["excluded"]["speaker_in_eval_or_test"] == by_speaker
    assert data["train"]["clips"] == len(train) - by_speaker


def test_labels_longer_than_whisper_positions_are_left_out_and_counted(stt_root, tiny):
    from transformers import AutoTokenizer

    from persian_data.catalog import BY_KEY
    from persian_data.layout import Layout
    from persian_data.train import models
    from persian_data.train.command import prepare_data
    from persian_data.train.errors import TrainInputError
    from persian_data.train.options import TrainOptions

    options = TrainOptions(model=str(tiny["short"]), output=stt_root / "runs/x", corpora=["commonvoice"])
    spec = models.inspect(options.model, None)
    options.with_family_defaults(spec.family, models.window_seconds(spec))
    with pytest.raises(TrainInputError) as info:  # every Common Voice sentence is longer than 20 positions
        prepare_data(Layout(stt_root), options, spec, [BY_KEY["commonvoice"]])
    assert "no training clip is left" in str(info.value) and "label_too_long" in str(info.value)
    tok = AutoTokenizer.from_pretrained(tiny["short"])
    texts = normalize_for_scoring([r["text"] for r in manifest(stt_root, "commonvoice", "train")]).texts
    assert all(len(spec.prompt) + len(tok(t, add_special_tokens=False).input_ids) > 20 for t in texts)


@pytest.mark.parametrize("case", ["model", "not_prepared", "empty", "eval_in_train", "inside_datasets", "foreign_output",
                                  "no_gpu"])
def test_bad_input_is_one_line_and_exit_2(stt_root, tiny, tmp_path, capsys, case):
    root = stt_root
    args = ["--model", str(tiny["ctc"])]
    if case == "model":
        (tmp_path / "notamodel").mkdir()
        args = ["--model", str(tmp_path / "notamodel")]
        expect = "cannot load it"
    elif case == "not_prepared":
        root = tmp_path / "root"
        copy_tree(stt_root, root)
        (root / "datasets/speech/fleurs_fa/manifests/validation.jsonl").unlink()
        args += ["--corpus", "commonvoice,fleurs"]
        expect = "prepare speech"
    elif case == "empty":
        args += ["--max-duration", "0.2"]
        expect = "no training clip is left"
    elif case == "eval_in_train":
        args += ["--train-splits", "train,validation"]
        expect = "--eval-split validation is also in --train-splits"
    elif case == "inside_datasets":
        args += ["--output", str(stt_root / "datasets/runs/x")]
        expect = "inside"
    elif case == "foreign_output":
        (tmp_path / "mine").mkdir()
        (tmp_path / "mine" / "notes.txt").write_text("keep me")
        args += ["--output", str(tmp_path / "mine")]
        expect = "not a train-stt run"
    else:
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has a GPU")
        args += ["--device", "cuda"]
        expect = "no CUDA device"
    capsys.readouterr()
    assert main(["train-stt", "--root", str(root), *args, "--max-steps", "1"]) == 2
    errors = last_error(capsys)
    assert len(errors) == 1 and expect in errors[0]
    assert not (root / "runs").exists() and not (stt_root / "datasets/runs").exists()
    if case == "foreign_output":
        assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]


def test_without_the_extra_it_says_how_to_install_it(stt_root, tiny, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "accelerate", None)  # as if the train-stt extra were not installed
    assert main(["train-stt", "--root", str(stt_root), "--model", str(tiny["ctc"])]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "pip install 'persian-data[train-stt]'" in err and "accelerate" in err


# A speech-parquet corpus declared in persian-data.toml (examples/sources/speech-parquet.toml's
# declaration: its own column names utt_id, transcript, speaker_id, sex; `dev` published as
# validation). Train clip 0 says a test sentence; spkC speaks in train and in test.
DECLARED, DECLARED_REPO = "read_speech", "example-org/persian-read-speech"
DECLARED_ROWS = {
    "train": [("spkA", "female", "امروز هوا بسیار خوب است"), ("spkA", "female", "کتاب را روی میز گذاشتم"),
              ("spkA", "female", "فردا به کتابخانه می‌روم"), ("spkB", "male", "این شهر تاریخ طولانی دارد"),
              ("spkB", "male", "لطفا در را ببندید"), ("spkC", "male", "باران از صبح می‌بارد")],
    "dev": [("spkD", "female", "نان تازه خریدم"), ("spkE", "male", "قطار دیر رسید")],
    "test": [("spkF", "female", "امروز هوا بسیار خوب است."), ("spkC", "male", "درخت‌ها سبز شدند"),
             ("spkG", "female", "صدای موسیقی می‌آید")],
}


def declared_repo() -> dict[str, bytes]:
    import pyarrow as pa

    from persian_data.localhub import replica_kit as kit

    files = {".gitattributes": kit.GITATTRIBUTES_DATASET.encode(), "README.md": b"---\nlicense: cc-by-4.0\n---\n"}
    for split, rows in DECLARED_ROWS.items():
        cols: dict[str, list] = {"utt_id": [], "transcript": [], "speaker_id": [], "sex": [], "audio": []}
        for i, (speaker, sex, text) in enumerate(rows):
            utt = f"{split}_{i:03d}"
            for key, value in zip(cols, (utt, text, speaker, sex, f"clips/{utt}.wav")):
                cols[key].append(value)
            files[f"clips/{utt}.wav"] = kit.encode(kit.synth_int16(8000 + 1000 * i, DECLARED, utt), 16000, "WAV")
        files[f"data/{split}-00000-of-00001.parquet"] = kit.parquet_bytes(pa.table(cols))
    return files


MODEL_REPO = "example-org/tiny-ctc-fa"


@pytest.fixture(scope="module")
def declared(tmp_path_factory, tiny):
    """A root whose persian-data.toml declares the corpus, fetched and prepared, and the hub that
    served it, which also serves the tiny CTC model as a model repo."""
    from persian_data.localhub.store import HubStore
    from support.hub import ScriptedHub  # the hub with a request log: which token reached it

    store = HubStore(tmp_path_factory.mktemp("declared-hub"))
    store.publish("dataset", DECLARED_REPO, declared_repo())
    store.publish("model", MODEL_REPO, {p.relative_to(tiny["ctc"]).as_posix(): p.read_bytes()
                                        for p in tiny["ctc"].rglob("*") if p.is_file()})
    root = tmp_path_factory.mktemp("declared-stt") / "root"
    root.mkdir()
    example = Path(__file__).resolve().parents[1] / "examples/sources/speech-parquet.toml"
    (root / "persian-data.toml").write_text(example.read_text("utf-8"), "utf-8")
    with ScriptedHub(store) as hub:
        assert main(["fetch", "--root", str(root), "--endpoint", hub.endpoint, "--only", DECLARED]) == 0
        assert main(["prepare", "speech", "--root", str(root), "--only", DECLARED, "--prepare-workers", "1"]) == 0
        yield root, hub


def test_a_declared_corpus_trains_with_its_own_columns_and_split_names(declared, tiny, capsys):
    root = declared[0]
    base = ["train-stt", "--root", str(root), "--model", str(tiny["ctc"]), "--corpus", DECLARED]
    capsys.readouterr()
    assert main([*base, "--allow-leakage", "--minutes", "0.05", "--dry-run"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert set(plan["data"]["minutes"]["genders"]) == {"female", "male"}  # its `sex` column, as its policy names
    assert main([*base, "--corpus", "nope", "--dry-run"]) == 2
    assert DECLARED in last_error(capsys)[0]  # the known corpora include the declared one

    run = root / "runs/stt/declared"
    assert main([*base, "--eval-split", "dev", "--output", str(run), "--max-steps", "2", "--eval-steps", "2",
                 "--batch-size", "2", "--workers", "0"]) == 0
    rec = record(run)
    assert rec["status"] == "finished" and rec["training"]["global_step"] == 2
    assert rec["options"]["corpora"] == [DECLARED] and rec["options"]["eval_split"] == "validation"  # dev, renamed
    train = rec["data"]["train"]
    assert train["excluded"] == {"sentence_in_eval_or_test": 1, "speaker_in_eval_or_test": 1}  # spkA's, spkC's
    assert train["clips"] == 4 and train["speakers"] == 2 and rec["data"]["eval"]["clips"] == 2
    from persian_data.integrity import read_lock

    source = rec["sources"][DECLARED]
    assert source["repo_id"] == DECLARED_REPO and source["license"] == "cc-by-4.0"
    assert source["revision"] == read_lock(root / "checksums/persian-data.lock.json")[DECLARED].revision
    res = json.loads((root / f"evals/{DECLARED}-test-declared/results.json").read_text("utf-8"))
    assert res["utterances"]["manifest"] == 3 and rec["test"][DECLARED]["wer"] == res["wer"]
    from huggingface_hub import ModelCard

    card = ModelCard.load(run / "README.md")
    assert {r.dataset_type for r in card.data.eval_results} == {DECLARED_REPO} and card.data.datasets == [DECLARED_REPO]


def test_a_hub_model_is_loaded_through_hf_endpoint_with_the_token(declared, tmp_path):
    """As a user names one: `--model owner/name`, the endpoint from HF_ENDPOINT (read when
    huggingface_hub is imported: a process of its own), the token sent and never printed."""
    root, hub = declared
    token = "hf_trainsttsecret0123456789"
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN")}
    env.update(HF_ENDPOINT=hub.endpoint, HF_HOME=str(tmp_path / "hf-home"))
    hub.requests.clear()
    proc = subprocess.run([sys.executable, "-m", "persian_data.cli", "train-stt", "--root", str(root), "--model",
                           MODEL_REPO, "--corpus", DECLARED, "--token", token, "--dry-run"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    plan = json.loads(proc.stdout)
    assert plan["family"] == "ctc" and plan["model"] == MODEL_REPO and plan["data"]["train"]["clips"] == 4
    asked = hub.requests.entries(prefix=f"/{MODEL_REPO}/")
    assert asked and {e.authorization for e in asked} == {f"Bearer {token}"}
    assert token not in proc.stdout + proc.stderr

