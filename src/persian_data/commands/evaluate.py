"""eval-stt: WER/CER of a model or a transcript file on a prepared speech split."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..catalog import DEFAULT_SPEECH_SOURCE
from .common import add_root, add_sources, add_verbose, speech_corpus_help


def add_parsers(sub) -> None:
    p = sub.add_parser("eval-stt", help="WER/CER of a model or a transcript file on a Common Voice / FLEURS split")
    add_root(p)
    p.add_argument("--corpus", default=DEFAULT_SPEECH_SOURCE.key, help=speech_corpus_help("which prepared speech corpus"))
    add_sources(p)
    p.add_argument("--split", choices=["test", "validation"], default="test", help="which of its splits")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--hypotheses", type=Path, help="score this file: JSONL {id,text}, NeMo (pred_text) or TSV id<TAB>text")
    mode.add_argument("--model", help="transcribe with this transformers ASR model (Hub name or local folder), then score")
    mode.add_argument("--leakage", action="store_true", help="only report train/test sentence and speaker overlap")
    p.add_argument("--name", default=None, help="output folder evals/<corpus>-<split>-<name> (default: file or model name)")
    p.add_argument("--exclude-leaked", action="store_true", help="score without clips whose sentence or speaker is in train")
    p.add_argument("--allow-unknown-ids", action="store_true", help="report and skip ids the manifest does not have")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap rounds for the 95%% intervals (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--limit", type=int, default=None, help="only the first N clips of the split")
    p.add_argument("--device", default="cpu", help="run mode: cpu, cuda or cuda:N")
    p.add_argument("--batch-size", type=int, default=8, help="run mode: clips per batch (default 8)")
    p.add_argument("--token", default=None, help="run mode: Hub token (default: $HF_TOKEN); never logged")
    add_verbose(p)
    p.set_defaults(run=run_eval_stt)


def run_eval_stt(args: argparse.Namespace, layout, catalog, sources) -> int:
    from ..evaluate.command import eval_stt

    return eval_stt(layout, args, catalog)
