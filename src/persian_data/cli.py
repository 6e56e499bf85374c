"""Command line: thin. Parses flags, calls the pipeline, prints one clear line per problem."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__
from .catalog import ALIASES, CATALOG, CHAT_BUCKET, SPEECH_BUCKET, root_sources, select
from .errors import PersianDataError, UsageError
from .layout import Layout, require_root

if TYPE_CHECKING:  # imported where used: serve-tts and synth start without the Hub client
    from .fetch import FetchOptions


DESCRIPTION = """\
Get the five public Persian sources (a chat corpus, Common Voice 13, FLEURS, two VITS voices) onto
disk, verified and in one layout, and make them ready to use: chat JSONL for fine-tuning, speech
manifests and NeMo/lhotse exports for ASR, the voices for synthesis.

Start with `persian-data run --root DATA` (fetch, prepare, check, write the data card), or
`persian-data demo` to see the whole job offline in about a minute."""

EPILOG = """\
examples:
  persian-data run --root DATA                      everything: fetch, prepare, gates, card
  persian-data fetch --root DATA --only text,cv     only the chat corpus and Common Voice
  persian-data fetch --root DATA --endpoint https://hf-mirror.com   through a mirror
  persian-data verify --root DATA                   re-hash everything, re-run every gate
  persian-data status --root DATA                   what is there, what is stale
Every command but fetch, run and demo works on a root that exists. Errors are one line on stderr;
exit 0 = all well, 1 = a gate failed or a step failed, 2 = the command line asks for something
that cannot be."""


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows each option's default (when it has a meaningful one and the help does not already say)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if ("default" not in text and action.default not in (None, False, argparse.SUPPRESS)
                and action.option_strings and action.nargs != 0):
            text += " (default: %(default)s)"
        return text


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)


def _int_at_least(low: int):
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
        if number < low:
            raise argparse.ArgumentTypeError(f"must be {low} or more, not {number}")
        return number

    return parse


def _positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {value}")
    return number


def _root(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", type=Path, default=Path("."),
                   help="the folder that holds datasets/, checksums/ and logs/ (default: the current folder)")


def _common(p: argparse.ArgumentParser) -> None:
    _root(p)
    groups = "; ".join(f"{name} = {','.join(keys)}" for name, keys in ALIASES.items())
    p.add_argument("--only", default=None, metavar="SOURCES",
                   help="comma separated sources: " + ", ".join(s.key for s in CATALOG)
                        + f", a corpus the root declares, or groups ({groups}) (default: all)")
    _sources_flag(p)
    p.add_argument("-v", "--verbose", action="store_true", help="more detail in the log")


def _sources_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sources", type=Path, default=None, metavar="FILE",
                   help="corpora declared beside the five (default: ROOT/persian-data.toml when it exists)")


def _endpoint_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--endpoint", action="append", default=None, metavar="URL",
                   help="Hub endpoint or mirror URL; repeat for several (the first that answers is the source of "
                        "truth, the fastest serves the bytes). Default: $PERSIAN_DATA_ENDPOINTS, $HF_ENDPOINT, the Hub")
    p.add_argument("--token", default=None, help="Hub token for every endpoint (default: $HF_TOKEN); never logged")
    p.add_argument("--endpoint-token", action="append", default=None, metavar="URL=TOKEN",
                   help="token for one endpoint only (instead of --token there); URL= sends none")


def _hub(p: argparse.ArgumentParser) -> None:
    _endpoint_flags(p)
    p.add_argument("--full", action="store_true", help="mirror whole repos (every FLEURS language, every TTS checkpoint)")
    p.add_argument("--locked", action="store_true", help="fetch exactly the commits and files in the lock file")
    p.add_argument("--dry-run", action="store_true", help="print the plan (files, bytes, free space) and stop")
    p.add_argument("--workers", type=_int_at_least(1), default=8,
                   help="parallel downloads (default 8; halves on HTTP 429)")
    p.add_argument("--retries", type=_int_at_least(1), default=5,
                   help="tries per file for transient failures (default 5)")
    p.add_argument("--timeout", type=_positive_float, default=30.0, help="seconds without data before a read is retried")


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
    g.add_argument("--min-answer-chars", type=_int_at_least(0), default=20,
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
    p.add_argument("--prepare-workers", type=_int_at_least(0), default=None,
                   help="processes for the prepare stages (default: by input size and cores; 0 or 1: the text "
                        "stage converts in this process)")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="where the prepare stages' units of work run: worker processes here (default), or Ray "
                        "tasks on a cluster (the scale extra; every node sees the root at the same path). The "
                        "outputs are the same bytes")
    p.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="the Ray cluster for --engine ray, HOST:PORT of its head (default: $RAY_ADDRESS, a "
                        "cluster started on this machine, or a new one here)")


def _prepare_options(args, stages: tuple[str, ...]):
    """The options of the given stages (only their modules are imported: `prepare speech` starts
    without the chat stage's imports)."""
    from .pipeline import PrepareOptions

    if args.valid_fraction is not None and not 0 < args.valid_fraction < 1:
        raise UsageError(f"--valid-fraction must be between 0 and 1 (exclusive), not {args.valid_fraction}")
    chat = speech = None
    if CHAT_BUCKET in stages:
        from .prepare.chat import ChatOptions

        chat = ChatOptions(answers=args.answers, normalize=not args.no_normalize, valid_fraction=args.valid_fraction,
                           workers=args.prepare_workers, pii=args.pii, min_answer_chars=args.min_answer_chars,
                           answer_rules=not args.no_answer_rules, script_check=not args.no_script_check,
                           near_dup=args.near_dup)
        if args.system_prompt:
            chat = dataclasses.replace(chat, system_prompt=args.system_prompt)
    if SPEECH_BUCKET in stages:
        from .prepare.speech import SpeechOptions

        speech = SpeechOptions(extract=not args.no_extract, deep=args.deep, workers=args.prepare_workers)
    return PrepareOptions(chat=chat, speech=speech, engine=_engine_spec(args))


def _engine_spec(args):
    """--engine and --ray-address, checked before the run starts (Ray installed, no local-only flag)."""
    from .engine import EngineSpec

    spec = EngineSpec(args.engine, args.ray_address)
    if spec.name == "ray" and args.prepare_workers is not None:
        raise UsageError("--prepare-workers sets the local engine's processes; with --engine ray the cluster's "
                         "CPUs set how many units run at once")
    spec.check_available()
    return spec


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="persian-data", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"persian-data {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")  # subcommands are _Parsers

    p = sub.add_parser("fetch", help="download, verify, lock and record the sources")
    _common(p)
    _hub(p)

    p = sub.add_parser("run", help="the main job: fetch, then prepare text and speech, then records and gates")
    _common(p)
    _hub(p)
    _prepare_flags(p)

    p = sub.add_parser("prepare", help="turn fetched sources into training data (chat JSONL, speech manifests)")
    p.add_argument("what", choices=[CHAT_BUCKET, SPEECH_BUCKET, "all"],
                   help="text: the chat corpora -> combined.jsonl; speech: the speech corpora (Common Voice, FLEURS, "
                        "declared ones) -> manifests and exports; all: both")
    _common(p)
    _prepare_flags(p)

    p = sub.add_parser("verify", help="offline: re-check every gate (re-hashes every file); exit 0 or 1")
    _common(p)
    p.add_argument("--quick", action="store_true", help="trust the hash cache for unchanged files")

    p = sub.add_parser("status", help="per source: present / missing / incomplete / modified / stale, files, size, "
                                      "revision, and whether its prepared outputs are current")
    _common(p)
    p.add_argument("--json", action="store_true", help="one JSON list on stdout instead of the table")
    p.add_argument("--remote", action="store_true", help="also ask the Hub whether the locked commit is still the newest "
                   "(stale), and show each endpoint's reachability and resolved commit")
    _endpoint_flags(p)

    p = sub.add_parser("synth", help="speak Persian text with one of the two voices into a WAV file")
    _root(p)
    p.add_argument("--voice", choices=["female", "male"], default="female", help="which voice speaks")
    p.add_argument("--text", default=None, help="text to speak (default: read from stdin)")
    p.add_argument("--out", type=Path, default=Path("speech.wav"), help="the WAV file to write")
    p.add_argument("--list-voices", action="store_true", help="list the voices and exit")
    p.add_argument("--runtime", choices=["auto", "onnx", "torch"], default="auto",
                   help="onnx: the voice's ONNX export on onnxruntime (no torch); torch: coqui-tts; "
                        "auto (default): onnx when the voice has an export, else torch")
    p.add_argument("--precision", choices=["fp32", "int8"], default="fp32",
                   help="int8: the export's int8 voice (tts-export --int8; onnx runtime only, ~2.7x faster, "
                        "~35 dB from fp32); fp32 (default): the exact voice")
    p.add_argument("--speed", type=float, default=1.0, help="0.25 to 4.0 (default 1.0); 2.0 speaks twice as fast")
    p.add_argument("--format", default=None, choices=["wav", "mp3", "opus", "flac", "aac", "pcm"],
                   help="audio format (default: from --out's extension, else wav)")

    p = sub.add_parser("serve-tts", help="serve both voices over HTTP: the voices page at /, GET/POST /api/tts, "
                                         "OpenAI-compatible POST /v1/audio/speech, /api/voices, /health, /metrics")
    _root(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=5002, help="port to listen on")
    p.add_argument("--max-chars", type=int, default=1000, help="longer text is refused with HTTP 413")
    p.add_argument("--runtime", choices=["auto", "onnx", "torch"], default="auto",
                   help="onnx: ONNX exports on onnxruntime (no torch); torch: coqui-tts; auto (default): "
                        "onnx for voices with an export, torch for the others")
    p.add_argument("--workers", type=int, default=None,
                   help="syntheses at once (default: one per core up to 4 on onnx, 1 with a torch voice)")
    p.add_argument("--max-queue", type=int, default=8, help="requests that may wait; more get 503 + Retry-After")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per request before 504")
    p.add_argument("--threads", type=int, default=None, help="onnxruntime threads per synthesis (default: one per core)")
    p.add_argument("--precision", choices=["fp32", "int8"], default="fp32",
                   help="int8: the exports' int8 voices (tts-export --int8; onnx runtime only); fp32 (default)")

    p = sub.add_parser("explore", help="a local web app: clips with audio, conversations, eval errors, voices "
                                       "(http://127.0.0.1:8765/)")
    _root(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8765, help="port to listen on")
    p.add_argument("-v", "--verbose", action="store_true", help="more detail in the log")

    p = sub.add_parser("tts-export", help="export the voices to ONNX (datasets/tts/<voice>/onnx/), checked against torch")
    _root(p)
    p.add_argument("--voice", choices=["female", "male"], action="append", default=None,
                   help="voice to export (repeatable; default: every installed voice)")
    p.add_argument("--int8", action="store_true",
                   help="also write model.int8.onnx: the decoder quantized to int8 (onnxruntime), checked against torch")
    p.add_argument("-v", "--verbose", action="store_true", help="more detail in the log")

    p = sub.add_parser("eval-stt", help="WER/CER of a model or a transcript file on a Common Voice / FLEURS split")
    _root(p)
    p.add_argument("--corpus", default="commonvoice",
                   help="which prepared speech corpus: commonvoice, fleurs, or one the root declares")
    _sources_flag(p)
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
    p.add_argument("-v", "--verbose", action="store_true", help="more detail in the log")

    p = sub.add_parser("train-stt", help="fine-tune Whisper or a CTC model on the speech manifests; scored by eval-stt")
    _train_stt_flags(p)

    p = sub.add_parser("card", help="write card/CARD.md, card/card.html and plots: what is in the root, how it was made")
    _root(p)
    _sources_flag(p)
    p.add_argument("--no-synth", action="store_true", help="do not load the voices: spectrograms drawn by an earlier card are reused, others skipped")
    p.add_argument("-v", "--verbose", action="store_true", help="more detail in the log")

    p = sub.add_parser("demo", help="serve small replicas from a built-in local hub and run the whole job on them")
    p.add_argument("--root", type=Path, default=None,
                   help="where to put the demo layout (default: a new folder under the system's temp folder)")
    p.add_argument("-v", "--verbose", action="store_true", help="more detail in the log")

    from .shards.cli import add_parser as add_shards_parser  # argparse only

    add_shards_parser(sub)
    return parser


def _train_stt_flags(p: argparse.ArgumentParser) -> None:
    _root(p)
    p.add_argument("--model", required=True, help="Whisper or CTC (wav2vec2 family) model: Hub name or local folder")
    p.add_argument("--output", type=Path, default=None, help="run folder (default: ROOT/runs/stt/<model name>)")
    p.add_argument("--corpus", default="commonvoice",
                   help="comma separated prepared speech corpora: commonvoice, fleurs, or ones the root declares "
                        "(default commonvoice)")
    _sources_flag(p)
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
    p.add_argument("-v", "--verbose", action="store_true", help="more detail in the log")


def _install_sigint() -> None:
    """First Ctrl-C: stop cleanly with a resume hint. Second: exit at once."""
    state = {"count": 0}

    def handler(signum, frame):
        state["count"] += 1
        if state["count"] > 1:
            os._exit(130)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, handler)


def _options(args) -> FetchOptions:
    from .fetch import FetchOptions

    return FetchOptions(endpoints=tuple(args.endpoint or ()), token=args.token, endpoint_tokens=_endpoint_tokens(args),
                        full=args.full, locked=args.locked, dry_run=args.dry_run, workers=args.workers,
                        max_tries=args.retries, timeout=args.timeout)


def _endpoint_tokens(args) -> tuple[tuple[str, str], ...]:
    from .endpoints import parse_endpoint_token

    return tuple(parse_endpoint_token(value) for value in (getattr(args, "endpoint_token", None) or ()))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _install_sigint()
    # Every token the run may hold, to keep out of error messages (--endpoint-token values included).
    token = [getattr(args, "token", None) or os.environ.get("HF_TOKEN")] + [
        value.partition("=")[2] for value in (getattr(args, "endpoint_token", None) or ())]
    try:
        code = _dispatch(args)
        sys.stdout.flush()  # a reader that went away (`| head`) shows here, while it can still be handled
        return code
    except KeyboardInterrupt:
        print("\ninterrupted. Nothing partial was left in the layout; run the same command again to resume.",
              file=sys.stderr)
        return 130
    except PersianDataError as exc:
        from .run import redact

        print(f"error: {redact(str(exc), token)}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError as exc:
        if _stdout_closed():  # `status --json | head -3`: the reader has what it wanted; end quietly
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 128 + signal.SIGPIPE  # what a tool killed by SIGPIPE reports, without the noise
        return _os_error(exc, token)
    except OSError as exc:  # disk full, permissions, a vanished folder: say what and where
        return _os_error(exc, token)


def _os_error(exc: OSError, token: list) -> int:
    from .run import redact

    print(f"error: {redact(str(exc), token)}. Nothing partial was left in the layout; fix the cause "
          f"and run the same command again.", file=sys.stderr)
    return 1


def _stdout_closed() -> bool:
    """Whether stdout is a pipe whose reader has gone (poll reports an error on its write end)."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(event & (select.POLLERR | select.POLLHUP) for _, event in poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return False


def _check_before_writing(args) -> tuple:
    """What can be refused before anything is read or created: the sources (`--only`), the endpoint
    settings, a root that does not exist (every command but fetch, run and demo needs one)."""
    # the five and the corpora the root declares (persian-data.toml, or --sources FILE)
    catalog = root_sources(args.root, args.sources) if hasattr(args, "sources") else CATALOG
    sources = select(args.only, catalog) if hasattr(args, "only") else []
    if args.command in ("fetch", "run"):
        _options(args).endpoint_list()  # EndpointSettingError: exit 2, and no root made
    elif getattr(args, "remote", False):
        _remote_options(args).endpoint_list()
    if args.command not in ("fetch", "run", "demo"):
        require_root(Layout(args.root))
    return catalog, sources


def _dispatch(args) -> int:
    catalog, sources = _check_before_writing(args)
    if args.command == "demo":
        from .demo import run_demo

        return run_demo(args.root, verbose=args.verbose)
    layout = Layout(args.root)
    if args.command == "synth":
        from .tts import list_voices
        from .tts.runtime import synth_to_file

        if args.list_voices:
            print(json.dumps(list_voices(layout), indent=2, ensure_ascii=False))
            return 0
        text = args.text if args.text is not None else sys.stdin.read()
        import logging  # (a local name in this function: the card branch imports it too)

        logging.basicConfig(level=logging.INFO, format="%(message)s")  # progress lines when not on a terminal
        out = synth_to_file(layout, args.voice, text, args.out, runtime=args.runtime, precision=args.precision,
                            speed=args.speed, audio_format=args.format)
        print(f"wrote {out}", file=sys.stderr)
        return 0
    if args.command == "card":
        import logging

        from .card import make_card

        logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")
        card = make_card(layout.root, synthesize=not args.no_synth, sources=catalog)
        print(f"wrote {card}", file=sys.stderr)
        return 0
    if args.command == "eval-stt":
        from .evaluate.command import eval_stt

        return eval_stt(layout, args, catalog)
    if args.command == "shards":
        from .shards.cli import run as run_shards

        return _report(run_shards(layout, args, catalog))
    if args.command == "train-stt":
        from .train.command import train_stt

        return train_stt(layout, args, catalog)
    if args.command == "serve-tts":
        from .tts.runtime import start_loading

        # the voices load in threads while the web stack imports (cold start)
        loading = start_loading(layout, runtime=args.runtime, threads=args.threads, precision=args.precision)
        from .tts.server import serve

        serve(layout, host=args.host, port=args.port, max_chars=args.max_chars, runtime=args.runtime,
              workers=args.workers, max_queue=args.max_queue, timeout=args.timeout, threads=args.threads,
              loading=loading, precision=args.precision)
        return 0
    if args.command == "explore":
        import logging

        from .explore.serve import serve_explore

        logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
        serve_explore(args.root, host=args.host, port=args.port)
        return 0
    if args.command == "tts-export":
        from .tts.export import run_tts_export

        return _report(run_tts_export(layout, args.voice, verbose=args.verbose, int8=args.int8))
    from . import pipeline  # after the tts commands: serving starts without the fetch machinery
    if args.command in ("fetch", "run"):
        stages = (CHAT_BUCKET, SPEECH_BUCKET) if args.command == "run" else ()
        prepare_options = _prepare_options(args, stages) if stages else None
        after_gates = None
        if args.command == "run":  # the data card, after the gates (a failure is logged, the verdict stands)
            from functools import partial

            from .card import card_after_run

            after_gates = partial(card_after_run, sources=catalog)
        outcome = pipeline.run_job(layout, sources, _options(args), verbose=args.verbose, prepare=stages,
                                   prepare_options=prepare_options, after_gates=after_gates, catalog=catalog)
        if args.dry_run:
            return 0
        return _report(outcome)
    if args.command == "prepare":
        stages = (CHAT_BUCKET, SPEECH_BUCKET) if args.what == "all" else (args.what,)
        options = _prepare_options(args, stages)
        return _report(pipeline.run_prepare(layout, sources, stages, options, verbose=args.verbose,
                                            explicit=bool(args.only), catalog=catalog))
    if args.command == "verify":
        return _report(pipeline.run_verify(layout, sources, quick=args.quick, verbose=args.verbose, catalog=catalog))
    if args.command == "status":
        return _status(args, layout, sources)
    raise AssertionError(args.command)


def _remote_options(args) -> FetchOptions:
    """`status --remote`: only the endpoint settings."""
    from .fetch import FetchOptions

    return FetchOptions(endpoints=tuple(args.endpoint or ()), token=args.token, endpoint_tokens=_endpoint_tokens(args))


def _status(args, layout: Layout, sources: list) -> int:
    from .pipeline import source_status
    from .progress import human_bytes

    rows = source_status(layout, sources, _remote_options(args) if args.remote else None)
    outputs = [o for row in rows for o in row["outputs"]]
    well = all(r["state"] == "present" for r in rows) and all(o["state"] in ("current", "unrecorded")
                                                               for o in outputs)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0 if well else 1
    for row in rows:
        rev = (row["revision"] or "-")[:12]
        print(f"{row['source']:<12} {row['state']:<10} {row['files']:>6} files {human_bytes(row['bytes']):>10}  "
              f"{rev}  {row['folder']}")
        for url, answer in row.get("endpoints", {}).items():
            print(f"{'':<12} endpoint {url}: {answer[:12] if len(answer) == 40 else answer}")
        for out in row["outputs"]:
            why = {"stale": f": made from {', '.join(out['changed'])}, which changed since",
                   "unrecorded": ": made by an older version that did not record its inputs",
                   "unreadable": f": {out.get('problem')}"}.get(out["state"], "")
            print(f"{'':<12} {out['state']:<10} {out['path']} ({out['what']}){why}")
    if not well:
        sources = sum(r["state"] != "present" for r in rows)
        bad = sum(o["state"] not in ("current", "unrecorded") for o in outputs)
        print(f"status: not all is well: {sources} source(s) missing, incomplete, modified or behind the Hub; "
              f"{bad} prepared output(s) stale or unreadable. `persian-data fetch` brings the sources, "
              "`persian-data prepare` remakes the outputs", file=sys.stderr)
    return 0 if well else 1


def _report(outcome) -> int:
    if outcome.ok:
        print("OK: every gate passed", file=sys.stderr)
        return 0
    print(f"FAILED: {len(outcome.failures)} problem(s):", file=sys.stderr)
    for line in outcome.failures:
        print(f"  - {line}", file=sys.stderr)
    return 1


def entry() -> None:
    """Console script. After Ctrl-C, exit without waiting for download threads blocked in a read
    (their partial files are in staging and resume next time; the run lock is already released)."""
    code = main()
    # Skip interpreter teardown (a few hundred ms of module finalisation on a rerun that is otherwise
    # nearly free): the run has already saved its cache, closed its log and released the root.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    entry()
