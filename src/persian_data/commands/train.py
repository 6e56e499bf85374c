"""train-stt: fine-tune Whisper or a CTC model on prepared speech manifests (the train extra)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..catalog import DEFAULT_SPEECH_SOURCE
from .common import add_root, add_sources, add_verbose, speech_corpus_help


def add_parsers(sub) -> None:
    p = sub.add_parser("train-stt", help="fine-tune Whisper or a CTC model on the speech manifests; scored by eval-stt")
    add_root(p)
    p.add_argument("--model", required=True, help="Whisper or CTC (wav2vec2 family) model: Hub name or local folder")
    p.add_argument("--output", type=Path, default=None, help="run folder (default: ROOT/runs/stt/<model name>)")
    p.add_argument("--corpus", default=DEFAULT_SPEECH_SOURCE.key,
                   help=speech_corpus_help("comma separated prepared speech corpora"))
    add_sources(p)
    p.add_argument("--train-splits", default="train", help="comma separated (default train; train,validation allowed)")
    p.add_argument("--eval-split", default="validation",
                   help="validation or test: scored every --eval-steps; picks the best checkpoint (default validation)")
    p.add_argument("--targets", choices=["normalized", "raw"], default="normalized",
                   help="normalized (default): the transcripts as eval-stt's normalizer scores them; raw: as written")
    p.add_argument("--min-duration", type=float, default=None, help="seconds (default 0)")
    p.add_argument("--max-duration", type=float, default=None, help="seconds (default: Whisper 30, CTC 20)")
    p.add_argument("--allow-leakage", action="store_true",
                   help="keep training clips whose sentence or speaker is in an evaluation/test split (recorded)")
    p.add_argument("--minutes", type=float, default=None, help="train on a seeded subset of N minutes, balanced by "
                   "gender and speaker (few-shot)")
    p.add_argument("--seed", type=int, default=0, help="seeds the data order, the --minutes subset and the weights")
    p.add_argument("--max-steps", type=int, default=None, help="optimizer steps (default: --epochs)")
    p.add_argument("--epochs", type=float, default=3.0, help="passes over the training clips (unless --max-steps)")
    p.add_argument("--batch-size", type=int, default=16, help="clips per device and step (default 16)")
    p.add_argument("--eval-batch-size", type=int, default=None, help="clips per batch when evaluating "
                   "(default: --batch-size)")
    p.add_argument("--grad-accum", type=int, default=1, help="gradient accumulation steps (default 1)")
    p.add_argument("--learning-rate", type=float, default=None, help="default: Whisper 1e-5, CTC 3e-4")
    p.add_argument("--warmup", type=float, default=0.1, help="warmup: a fraction of the steps below 1, else steps")
    p.add_argument("--eval-steps", type=int, default=500, help="evaluate and checkpoint every N steps (default 500)")
    p.add_argument("--logging-steps", type=int, default=25, help="log the loss every N steps")
    p.add_argument("--save-total-limit", type=int, default=2, help="checkpoints kept (the best is always kept)")
    p.add_argument("--max-eval-clips", type=int, default=None, help="evaluate during training on a seeded sample")
    p.add_argument("--gradient-checkpointing", action="store_true",
                   help="recompute activations in the backward pass: less memory for one more forward pass")
    p.add_argument("--freeze-encoder", action="store_true",
                   help="Whisper: train the decoder only; CTC: the output layer only")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="auto: cuda when torch sees a GPU, else cpu")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default="auto",
                   help="auto: bf16 (else fp16) on a GPU, fp32 on a CPU")
    p.add_argument("--workers", type=int, default=None, help="audio loader processes (default: spare cores, max 8)")
    p.add_argument("--token", default=None, help="Hub token (default: $HF_TOKEN); never logged")
    p.add_argument("--dry-run", action="store_true", help="select the clips, print the plan, write nothing")
    add_verbose(p)
    p.set_defaults(run=run_train_stt)


def run_train_stt(args: argparse.Namespace, layout, catalog, sources) -> int:
    from ..train.command import train_stt

    return train_stt(layout, args, catalog)
