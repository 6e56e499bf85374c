#!/usr/bin/env python3
"""Fine-tune a causal LM on the prepared Persian chat corpus with TRL's SFTTrainer.

    pip install "persian-data[train]"
    persian-data prepare text --root . --valid-fraction 0.02      # or just `persian-data run --root .`
    python examples/train_chat_sft.py --root . --model Qwen/Qwen2.5-0.5B-Instruct \
        --output-dir runs/chat-sft --max-steps 1000 --assistant-only-loss

Data: `datasets/text/persian_conversation/train.jsonl` (and `valid.jsonl`, evaluated at the end)
when `prepare text --valid-fraction` wrote them, else `combined.jsonl`; `--data-file` names any
file of the same schema. Each line is `{"messages": [{"role": "system"|"user"|"assistant",
"content": ...}, ...]}`: TRL's conversational format, so the tokenizer's own chat template turns
every conversation into the text the model sees. A tokenizer without a chat template needs
`--chat-template file.jinja`.

`--assistant-only-loss` computes the loss on the assistant turns only (the lawyers' answers, not
the questions); TRL needs a chat template that marks them with `{% generation %}`.

CPU friendly: on a machine without CUDA it trains on the CPU in float32; bf16 is used only on a
GPU that supports it. Outputs go to `--output-dir` (outside `datasets/`): the model and tokenizer
(unless `--no-save`) and `trainer_state.json`, whose `log_history` holds the loss of each
logging step.

From Python: `run(argv)` trains and returns the `SFTTrainer`; `main(argv)` is the command
(exit 0, or 2 with one line on stderr for bad input or a missing extra).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

CHAT_DIR = Path("datasets/text/persian_conversation")
TRAIN_EXTRA = ("trl", "transformers", "accelerate", "datasets", "torch")


class UsageError(Exception):
    """Bad input or a missing dependency: the command prints it as one line and exits 2."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="train_chat_sft.py",
        description="Supervised fine-tuning on the persian-data chat corpus (TRL SFTTrainer).",
    )
    p.add_argument("--root", type=Path, default=Path("."), help="persian-data root (default: .)")
    p.add_argument("--data-file", type=Path, help="a messages JSONL file instead of the root's")
    p.add_argument("--model", required=True, help="Hub name or local folder of a causal LM")
    p.add_argument("--tokenizer", help="Hub name or local folder (default: --model)")
    p.add_argument("--chat-template", type=Path, help="a .jinja chat template for a tokenizer without one")
    p.add_argument("--output-dir", type=Path, default=Path("runs/chat-sft"))
    p.add_argument("--max-steps", type=int, default=-1, help="stop after N optimizer steps (default: epochs)")
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--limit", type=int, help="train on the first N conversations only (a smoke run)")
    p.add_argument("--max-length", type=int, default=1024, help="tokens per conversation (longer are cut)")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--learning-rate", type=float, default=2e-5)
    p.add_argument("--logging-steps", type=int, default=10)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--assistant-only-loss", action="store_true",
                   help="loss on assistant turns only (needs {%% generation %%} in the chat template)")
    p.add_argument("--gradient-checkpointing", action="store_true", help="less memory, slower")
    p.add_argument("--cpu", action="store_true", help="train on the CPU even when CUDA is available")
    p.add_argument("--cache-dir", type=Path, help="datasets cache (default: the HF datasets cache)")
    p.add_argument("--no-save", action="store_true", help="do not save the model at the end")
    return p.parse_args(argv)


def import_train_extra():
    """The heavy imports, here and only here, so a missing extra is one clear message."""
    missing = []
    for name in TRAIN_EXTRA:
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise UsageError(
            f"this example needs the train extra (missing: {', '.join(missing)}): "
            'pip install "persian-data[train]"'
        )
    import datasets
    import torch
    import transformers
    import trl

    return datasets, torch, transformers, trl


def data_files(args: argparse.Namespace) -> dict[str, str]:
    """train (and validation when the split exists) as `load_dataset("json")` takes them."""
    if args.data_file is not None:
        if not args.data_file.is_file():
            raise UsageError(f"--data-file {args.data_file}: no such file")
        return {"train": str(args.data_file)}
    chat = args.root / CHAT_DIR
    if (chat / "train.jsonl").is_file():
        files = {"train": str(chat / "train.jsonl")}
        if (chat / "valid.jsonl").is_file():
            files["validation"] = str(chat / "valid.jsonl")
        return files
    if (chat / "combined.jsonl").is_file():
        return {"train": str(chat / "combined.jsonl")}
    raise UsageError(
        f"{chat}: neither train.jsonl nor combined.jsonl; "
        f"run `persian-data prepare text --root {args.root}` first"
    )


def load_conversations(datasets, files: dict[str, str], args: argparse.Namespace):
    try:
        ds = datasets.load_dataset(
            "json", data_files=files, cache_dir=str(args.cache_dir) if args.cache_dir else None
        )
    except Exception as exc:  # datasets raises several types for a bad file; say which file
        raise UsageError(f"{', '.join(files.values())}: not loadable as JSON lines ({exc})") from exc
    for split, part in ds.items():
        if "messages" not in part.column_names:
            raise UsageError(
                f"{files[split]}: no 'messages' column (columns: {part.column_names}); "
                "expected persian-data's chat JSONL"
            )
        if len(part) == 0:
            raise UsageError(f"{files[split]}: no conversations")
    if args.limit is not None:
        ds["train"] = ds["train"].select(range(min(args.limit, len(ds["train"]))))
    return ds


def load_tokenizer(transformers, args: argparse.Namespace):
    tokenizer = transformers.AutoTokenizer.from_pretrained(args.tokenizer or args.model)
    if args.chat_template is not None:
        tokenizer.chat_template = args.chat_template.read_text(encoding="utf-8")
    if not tokenizer.chat_template:
        raise UsageError(
            f"tokenizer {args.tokenizer or args.model} has no chat template; pass --chat-template file.jinja"
        )
    if tokenizer.pad_token is None:  # many causal LMs ship without one; padding is masked anyway
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def run(argv: list[str] | None = None):
    """Train, save and return the SFTTrainer (its `state.log_history` holds the losses)."""
    args = parse_args(argv)
    datasets, torch, transformers, trl = import_train_extra()
    files = data_files(args)
    ds = load_conversations(datasets, files, args)
    tokenizer = load_tokenizer(transformers, args)

    on_gpu = torch.cuda.is_available() and not args.cpu
    config = trl.SFTConfig(
        output_dir=str(args.output_dir),
        max_steps=args.max_steps,
        num_train_epochs=args.epochs,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.batch_size,
        gradient_accumulation_steps=args.grad_accum,
        learning_rate=args.learning_rate,
        logging_steps=args.logging_steps,
        seed=args.seed,
        max_length=args.max_length,
        assistant_only_loss=args.assistant_only_loss,
        activation_checkpointing=args.gradient_checkpointing,  # transformers 5's name
        # TRL defaults to bf16, which a CPU runs slowly or not at all
        bf16=on_gpu and torch.cuda.is_bf16_supported(),
        use_cpu=not on_gpu,
        optim="adamw_torch",
        save_strategy="no",  # one save at the end; checkpoints are a flag away for long runs
        report_to="none",
    )
    trainer = trl.SFTTrainer(
        model=args.model,
        args=config,
        train_dataset=ds["train"],
        eval_dataset=ds.get("validation"),
        processing_class=tokenizer,
    )
    result = trainer.train()
    if not math.isfinite(result.training_loss):
        raise UsageError(f"training loss is {result.training_loss}: check the learning rate and data")
    if "validation" in ds:
        metrics = trainer.evaluate()
        print(f"eval_loss {metrics['eval_loss']:.4f} on {len(ds['validation'])} conversations")
    trainer.save_state()  # trainer_state.json with log_history
    if not args.no_save:
        trainer.save_model()
        tokenizer.save_pretrained(str(args.output_dir))
    print(
        f"trained {trainer.state.global_step} steps on {len(ds['train'])} conversations from "
        f"{files['train']}; loss {result.training_loss:.4f}; output {args.output_dir}"
    )
    return trainer


def main(argv: list[str] | None = None) -> int:
    try:
        run(argv)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
