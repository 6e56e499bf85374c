"""synth, serve-tts and tts-export: the two voices. None of them imports the Hub client."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from ..catalog import VOICE_SOURCES
from .common import add_root, add_verbose, report

VOICES = list(VOICE_SOURCES)  # female, male


def add_parsers(sub) -> None:
    p = sub.add_parser("synth", help="speak Persian text with one of the two voices into a WAV file")
    add_root(p)
    p.add_argument("--voice", choices=VOICES, default=VOICES[0], help="which voice speaks")
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
    p.set_defaults(run=run_synth)

    p = sub.add_parser("serve-tts", help="serve both voices over HTTP: the voices page at /, GET/POST /api/tts, "
                                         "OpenAI-compatible POST /v1/audio/speech, /api/voices, /health, /metrics")
    add_root(p)
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
    p.set_defaults(run=run_serve_tts)

    p = sub.add_parser("tts-export", help="export the voices to ONNX (datasets/tts/<voice>/onnx/), checked against torch")
    add_root(p)
    p.add_argument("--voice", choices=VOICES, action="append", default=None,
                   help="voice to export (repeatable; default: every installed voice)")
    p.add_argument("--int8", action="store_true",
                   help="also write model.int8.onnx: the decoder quantized to int8 (onnxruntime), checked against torch")
    add_verbose(p)
    p.set_defaults(run=run_tts_export)


def run_synth(args: argparse.Namespace, layout, catalog, sources) -> int:
    from ..tts import list_voices
    from ..tts.runtime import synth_to_file

    if args.list_voices:
        print(json.dumps(list_voices(layout), indent=2, ensure_ascii=False))
        return 0
    text = args.text if args.text is not None else sys.stdin.read()
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # progress lines when not on a terminal
    out = synth_to_file(layout, args.voice, text, args.out, runtime=args.runtime, precision=args.precision,
                        speed=args.speed, audio_format=args.format)
    print(f"wrote {out}", file=sys.stderr)
    return 0


def run_serve_tts(args: argparse.Namespace, layout, catalog, sources) -> int:
    from ..tts.runtime import start_loading

    # the voices load in threads while the web stack imports (cold start)
    loading = start_loading(layout, runtime=args.runtime, threads=args.threads, precision=args.precision)
    from ..tts.server import serve

    serve(layout, host=args.host, port=args.port, max_chars=args.max_chars, runtime=args.runtime,
          workers=args.workers, max_queue=args.max_queue, timeout=args.timeout, threads=args.threads,
          loading=loading, precision=args.precision)
    return 0


def run_tts_export(args: argparse.Namespace, layout, catalog, sources) -> int:
    from ..tts.export import run_tts_export as export

    return report(export(layout, args.voice, verbose=args.verbose, int8=args.int8))
