"""fetch, run, prepare and verify: the pipeline's commands."""

from __future__ import annotations

import argparse
import dataclasses

from ..catalog import CHAT_BUCKET, SPEECH_BUCKET
from ..errors import UsageError
from .common import add_endpoint_flags, add_selection, fetch_options, int_at_least, positive_float, report


def add_parsers(sub) -> None:
    p = sub.add_parser("fetch", help="download, verify, lock and record the sources")
    add_selection(p)
    _hub_flags(p)
    p.set_defaults(run=run_fetch_or_run)

    p = sub.add_parser("run", help="the main job: fetch, then prepare text and speech, then records and gates")
    add_selection(p)
    _hub_flags(p)
    _prepare_flags(p)
    p.set_defaults(run=run_fetch_or_run)

    p = sub.add_parser("prepare", help="turn fetched sources into training data (chat JSONL, speech manifests)")
    p.add_argument("what", choices=[CHAT_BUCKET, SPEECH_BUCKET, "all"],
                   help=f"{CHAT_BUCKET}: the chat corpora -> combined.jsonl; {SPEECH_BUCKET}: the speech corpora "
                        "(Common Voice, FLEURS, declared ones) -> manifests and exports; all: both")
    add_selection(p)
    _prepare_flags(p)
    p.set_defaults(run=run_prepare)

    p = sub.add_parser("verify", help="offline: re-check every gate (re-hashes every file); exit 0 or 1")
    add_selection(p)
    p.add_argument("--quick", action="store_true", help="trust the hash cache for unchanged files")
    p.set_defaults(run=run_verify)


def _hub_flags(p: argparse.ArgumentParser) -> None:
    add_endpoint_flags(p)
    p.add_argument("--full", action="store_true", help="mirror whole repos (every FLEURS language, every TTS checkpoint)")
    p.add_argument("--locked", action="store_true", help="fetch exactly the commits and files in the lock file")
    p.add_argument("--dry-run", action="store_true", help="print the plan (files, bytes, free space) and stop")
    p.add_argument("--workers", type=int_at_least(1), default=8,
                   help="parallel downloads (default 8; halves on HTTP 429)")
    p.add_argument("--retries", type=int_at_least(1), default=5,
                   help="tries per file for transient failures (default 5)")
    p.add_argument("--timeout", type=positive_float, default=30.0, help="seconds without data before a read is retried")


def _prepare_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("text (chat corpus)")
    g.add_argument("--answers", choices=["first", "all"], default="first",
                   help="rows with several answers: the first usable one (default), or one conversation each")
    g.add_argument("--valid-fraction", type=float, default=None,
                   help="also write train.jsonl/valid.jsonl, split by a stable hash of each conversation")
    g.add_argument("--system-prompt", default=None, help="the system turn (default: a Persian legal-assistant prompt)")
    g.add_argument("--no-normalize", action="store_true", help="keep the text exactly as in the corpus")
    g.add_argument("--pii", choices=["mask", "drop", "keep"], default="mask",
                   help="personal data (phones, national IDs, cards, IBANs, emails, URLs, @handles): "
                        "masked with typed placeholders (default), conversation dropped, or kept")
    g.add_argument("--min-answer-chars", type=int_at_least(0), default=20,
                   help="drop answers shorter than this once masked and stripped of contact lines (default 20)")
    g.add_argument("--no-answer-rules", action="store_true",
                   help="keep non-answers, referrals and contact lines in answers")
    g.add_argument("--no-script-check", action="store_true", help="keep conversations that are not mostly Persian")
    g.add_argument("--near-dup", action=argparse.BooleanOptionalAction, default=True,
                   help="collapse near-identical questions (default on; --no-near-dup turns it off)")
    g = p.add_argument_group("speech")
    g.add_argument("--no-extract", action="store_true",
                   help="keep references (parquet row / tar member) instead of writing audio files")
    g.add_argument("--deep", action="store_true", help="decode every frame of every clip")
    p.add_argument("--prepare-workers", type=int_at_least(0), default=None,
                   help="processes for the prepare stages (default: by input size and cores; 0 or 1: the text "
                        "stage converts in this process)")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="where the prepare stages' units of work run: worker processes here (default), or Ray "
                        "tasks on a cluster (the scale extra; every node sees the root at the same path). The "
                        "outputs are the same bytes")
    p.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="the Ray cluster for --engine ray, HOST:PORT of its head (default: $RAY_ADDRESS, a "
                        "cluster started on this machine, or a new one here)")


def prepare_options(args: argparse.Namespace, stages: tuple[str, ...]):
    """The options of the given stages (only their modules are imported: `prepare speech` starts
    without the chat stage's imports)."""
    from ..pipeline import PrepareOptions

    if args.valid_fraction is not None and not 0 < args.valid_fraction < 1:
        raise UsageError(f"--valid-fraction must be between 0 and 1 (exclusive), not {args.valid_fraction}")
    chat = speech = None
    if CHAT_BUCKET in stages:
        from ..prepare.chat import ChatOptions

        chat = ChatOptions(answers=args.answers, normalize=not args.no_normalize, valid_fraction=args.valid_fraction,
                           workers=args.prepare_workers, pii=args.pii, min_answer_chars=args.min_answer_chars,
                           answer_rules=not args.no_answer_rules, script_check=not args.no_script_check,
                           near_dup=args.near_dup)
        if args.system_prompt:
            chat = dataclasses.replace(chat, system_prompt=args.system_prompt)
    if SPEECH_BUCKET in stages:
        from ..prepare.speech import SpeechOptions

        speech = SpeechOptions(extract=not args.no_extract, deep=args.deep, workers=args.prepare_workers)
    return PrepareOptions(chat=chat, speech=speech, engine=_engine_spec(args))


def _engine_spec(args: argparse.Namespace):
    """--engine and --ray-address, checked before the run starts (Ray installed, no local-only flag)."""
    from ..engine import EngineSpec

    spec = EngineSpec(args.engine, args.ray_address)
    if spec.name == "ray" and args.prepare_workers is not None:
        raise UsageError("--prepare-workers sets the local engine's processes; with --engine ray the cluster's "
                         "CPUs set how many units run at once")
    spec.check_available()
    return spec


def run_fetch_or_run(args: argparse.Namespace, layout, catalog, sources) -> int:
    from .. import pipeline

    stages = (CHAT_BUCKET, SPEECH_BUCKET) if args.command == "run" else ()
    options = prepare_options(args, stages) if stages else None
    after_gates = None
    if args.command == "run":  # the data card, after the gates (a failure is logged, the verdict stands)
        from functools import partial

        from ..card import card_after_run

        after_gates = partial(card_after_run, sources=catalog)
    outcome = pipeline.run_job(layout, sources, fetch_options(args), verbose=args.verbose, prepare=stages,
                               prepare_options=options, after_gates=after_gates, catalog=catalog)
    return 0 if args.dry_run else report(outcome)


def run_prepare(args: argparse.Namespace, layout, catalog, sources) -> int:
    from .. import pipeline

    stages = (CHAT_BUCKET, SPEECH_BUCKET) if args.what == "all" else (args.what,)
    options = prepare_options(args, stages)
    return report(pipeline.run_prepare(layout, sources, stages, options, verbose=args.verbose,
                                       explicit=bool(args.only), catalog=catalog))


def run_verify(args: argparse.Namespace, layout, catalog, sources) -> int:
    from .. import pipeline

    return report(pipeline.run_verify(layout, sources, quick=args.quick, verbose=args.verbose, catalog=catalog))
