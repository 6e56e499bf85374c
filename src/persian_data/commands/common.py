"""Flags several commands share (argparse only), and the report of a run's outcome."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..catalog import ALIASES, CATALOG

if TYPE_CHECKING:  # imported where used: serve-tts and synth start without the Hub client
    from ..fetch import FetchOptions


def int_at_least(low: int):
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
        if number < low:
            raise argparse.ArgumentTypeError(f"must be {low} or more, not {number}")
        return number

    return parse


def positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {value}")
    return number


def add_root(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", type=Path, default=Path("."),
                   help="the folder that holds datasets/, checksums/ and logs/ (default: the current folder)")


def add_sources(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sources", type=Path, default=None, metavar="FILE",
                   help="corpora declared beside the five (default: ROOT/persian-data.toml when it exists)")


def add_verbose(p: argparse.ArgumentParser) -> None:
    p.add_argument("-v", "--verbose", action="store_true", help="more detail in the log")


def add_selection(p: argparse.ArgumentParser) -> None:
    """--root, --only, --sources, --verbose: the flags of the commands that work on sources."""
    add_root(p)
    groups = "; ".join(f"{name} = {','.join(keys)}" for name, keys in ALIASES.items())
    p.add_argument("--only", default=None, metavar="SOURCES",
                   help="comma separated sources: " + ", ".join(s.key for s in CATALOG)
                        + f", a corpus the root declares, or groups ({groups}) (default: all)")
    add_sources(p)
    add_verbose(p)


def add_endpoint_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--endpoint", action="append", default=None, metavar="URL",
                   help="Hub endpoint or mirror URL; repeat for several (the first that answers is the source of "
                        "truth, the fastest serves the bytes). Default: $PERSIAN_DATA_ENDPOINTS, $HF_ENDPOINT, the Hub")
    p.add_argument("--token", default=None, help="Hub token for every endpoint (default: $HF_TOKEN); never logged")
    p.add_argument("--endpoint-token", action="append", default=None, metavar="URL=TOKEN",
                   help="token for one endpoint only (instead of --token there); URL= sends none")


def fetch_options(args: argparse.Namespace) -> FetchOptions:
    """fetch and run: the endpoint, download and retry flags."""
    from ..fetch import FetchOptions

    return FetchOptions(endpoints=tuple(args.endpoint or ()), token=args.token, endpoint_tokens=_endpoint_tokens(args),
                        full=args.full, locked=args.locked, dry_run=args.dry_run, workers=args.workers,
                        max_tries=args.retries, timeout=args.timeout)


def remote_options(args: argparse.Namespace) -> FetchOptions:
    """`status --remote`: only the endpoint settings."""
    from ..fetch import FetchOptions

    return FetchOptions(endpoints=tuple(args.endpoint or ()), token=args.token, endpoint_tokens=_endpoint_tokens(args))


def _endpoint_tokens(args: argparse.Namespace) -> tuple[tuple[str, str], ...]:
    from ..endpoints import parse_endpoint_token

    return tuple(parse_endpoint_token(value) for value in (getattr(args, "endpoint_token", None) or ()))


def speech_corpus_help(what: str) -> str:
    """The help of a --corpus flag: the built-in speech corpora's keys (CLI help text), or a declared one."""
    from ..source import SPEECH_BUCKET

    return f"{what}: " + ", ".join(s.key for s in CATALOG if s.bucket == SPEECH_BUCKET) + ", or one the root declares"


def report(outcome) -> int:
    """A run's verdict on stderr: OK, or each problem on a line; the exit code."""
    if outcome.ok:
        print("OK: every gate passed", file=sys.stderr)
        return 0
    print(f"FAILED: {len(outcome.failures)} problem(s):", file=sys.stderr)
    for line in outcome.failures:
        print(f"  - {line}", file=sys.stderr)
    return 1
