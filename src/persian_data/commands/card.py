"""card: the data card of a root (CARD.md, card.html, plots)."""

from __future__ import annotations

import argparse
import logging
import sys

from .common import add_root, add_sources, add_verbose


def add_parsers(sub) -> None:
    p = sub.add_parser("card", help="write card/CARD.md, card/card.html and plots: what is in the root, how it was made")
    add_root(p)
    add_sources(p)
    p.add_argument("--no-synth", action="store_true", help="do not load the voices: spectrograms drawn by an earlier card are reused, others skipped")
    add_verbose(p)
    p.set_defaults(run=run_card)


def run_card(args: argparse.Namespace, layout, catalog, sources) -> int:
    from ..card import make_card

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")
    card = make_card(layout.root, synthesize=not args.no_synth, sources=catalog)
    print(f"wrote {card}", file=sys.stderr)
    return 0
