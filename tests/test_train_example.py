"""examples/train_chat_sft.py feeds a real trainer (TRL SFTTrainer) with the chat corpus.

The corpus is made by the project's own stages (fetch from the local hub, `prepare text`); the
model is a tiny randomly initialised Qwen2 and the tokenizer a byte-level BPE trained here on
that corpus, both saved to a folder the script loads like any Hub model. No network.
"""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
import sys
from pathlib import Path

import pytest

pytest.importorskip("trl", reason="the train extra is not installed")

from persian_data.cli import main as cli_main  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "train_chat_sft.py"

# ChatML, with {% generation %} around the assistant text so TRL can mask everything else.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "<|im_start|>assistant\n{% generation %}{{ message['content'] }}<|im_end|>{% endgeneration %}\n"
    "{% else %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def _load_example():
    spec = importlib.util.spec_from_file_location("train_chat_sft", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def example():
    return _load_example()


@pytest.fixture(scope="module")
def chat_root(hub, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("train-root")
    assert cli_main(["fetch", "--root", str(root), "--endpoint", hub.endpoint, "--only", "text"]) == 0
    assert cli_main(["prepare", "text", "--root", str(root)]) == 0
    return root


def _combined(root: Path) -> Path:
    return root / "datasets/text/persian_conversation/combined.jsonl"


@pytest.fixture(scope="module")
def tiny_model_dir(chat_root, tmp_path_factory) -> Path:
    """A byte-level BPE trained on the corpus + a random 2-layer Qwen2, saved like a Hub model."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    texts = [
        m["content"]
        for line in _combined(chat_root).read_text(encoding="utf-8").splitlines()
        for m in json.loads(line)["messages"]
    ]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(
        texts,
        trainers.BpeTrainer(
            vocab_size=800, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    tokenizer.chat_template = CHAT_TEMPLATE

    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True,
    )
    folder = tmp_path_factory.mktemp("tiny-qwen2")
    Qwen2ForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_sft_on_the_prepared_corpus(example, chat_root, tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    first = json.loads(_combined(chat_root).read_text(encoding="utf-8").splitlines()[0])["messages"]
    assert [m["role"] for m in first] == ["system", "user", "assistant"]

    out = tmp_path / "run"
    steps = 15
    trainer = example.run([
        "--root", str(chat_root), "--model", str(tiny_model_dir), "--output-dir", str(out),
        "--cache-dir", str(tmp_path / "hf-cache"),
        # one batch of 4 conversations, seen again at every step: the loss must fall
        "--limit", "4", "--batch-size", "4", "--max-steps", str(steps),
        "--learning-rate", "1e-2", "--logging-steps", "1", "--max-length", "512",
        "--assistant-only-loss",
    ])

    # The chat template applied: the trainer's first example is the formatted conversation.
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(out)
    row = trainer.train_dataset[0]
    fed = tokenizer.decode(row["input_ids"])
    expected = tokenizer.apply_chat_template(first, tokenize=False)
    assert fed == expected
    for m in first:
        assert f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>" in fed
    # ... and only the assistant's answer carries the loss.
    # (TRL folds the template's assistant mask into the labels: -100 everywhere else)
    masked = [t for t, label in zip(row["input_ids"], row["labels"]) if label != -100]
    assert tokenizer.decode(masked) == first[2]["content"] + "<|im_end|>"

    # Losses: one per step, all finite, and falling on the repeated batch.
    state = json.loads((out / "trainer_state.json").read_text())
    losses = [e["loss"] for e in state["log_history"] if "loss" in e]
    assert len(losses) == steps
    assert all(math.isfinite(x) for x in losses)
    assert losses[0] > math.log(len(tokenizer)) * 0.8  # a random model starts near uniform
    head, tail = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert tail < 0.75 * head, losses
    print("losses", [round(x, 3) for x in losses])

    # The trained model and tokenizer were saved where the run said.
    assert (out / "model.safetensors").is_file()
    assert (out / "tokenizer.json").is_file()


def test_split_files_are_preferred_and_validation_is_evaluated(
    example, hub, tiny_model_dir, tmp_path, monkeypatch, capsys
):
    """Also: a tokenizer without a chat template is refused, and --chat-template supplies one."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    bare = tmp_path / "bare-model"
    shutil.copytree(tiny_model_dir, bare)
    template = tmp_path / "chatml.jinja"
    (bare / "chat_template.jinja").rename(template)
    root = tmp_path / "root"
    assert cli_main(["fetch", "--root", str(root), "--endpoint", hub.endpoint, "--only", "text"]) == 0
    assert cli_main(["prepare", "text", "--root", str(root), "--valid-fraction", "0.25"]) == 0
    chat = root / "datasets/text/persian_conversation"
    n_train, n_valid = (
        len((chat / name).read_text(encoding="utf-8").splitlines()) for name in ("train.jsonl", "valid.jsonl")
    )
    assert n_train > 0 and n_valid > 0
    argv = [
        "--root", str(root), "--model", str(bare), "--output-dir", str(tmp_path / "run"),
        "--cache-dir", str(tmp_path / "hf-cache"), "--max-steps", "2", "--batch-size", "3",
        "--logging-steps", "1", "--max-length", "256", "--no-save",
    ]
    assert example.main(argv) == 2
    assert "has no chat template" in capsys.readouterr().err

    trainer = example.run([*argv, "--chat-template", str(template)])
    assert len(trainer.train_dataset) == n_train
    assert len(trainer.eval_dataset) == n_valid
    out = capsys.readouterr().out
    assert "eval_loss" in out and "train.jsonl" in out
    assert trainer.processing_class.chat_template == template.read_text(encoding="utf-8")
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_clear_errors(example, tmp_path, monkeypatch, capsys):
    # no corpus yet
    assert example.main(["--root", str(tmp_path), "--model", "unused"]) == 2
    err = capsys.readouterr().err
    assert "combined.jsonl" in err and "persian-data prepare text" in err

    # a file of another schema
    bad = tmp_path / "other.jsonl"
    bad.write_text('{"text": "سلام"}\n', encoding="utf-8")
    assert example.main(["--data-file", str(bad), "--model", "unused", "--cache-dir", str(tmp_path / "c")]) == 2
    assert "no 'messages' column" in capsys.readouterr().err

    # the train extra missing: one line naming it, before anything is read
    monkeypatch.setitem(sys.modules, "trl", None)
    assert example.main(["--root", str(tmp_path), "--model", "unused"]) == 2
    err = capsys.readouterr().err
    assert "persian-data[train]" in err and "trl" in err
