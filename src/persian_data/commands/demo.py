"""demo: the whole job, offline, against replicas served by the built-in local hub."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import add_verbose


def add_parsers(sub) -> None:
    p = sub.add_parser("demo", help="serve small replicas from a built-in local hub and run the whole job on them")
    p.add_argument("--root", type=Path, default=None,
                   help="where to put the demo layout (default: a new folder under the system's temp folder)")
    add_verbose(p)
    p.set_defaults(run=run_demo)


def run_demo(args: argparse.Namespace, layout, catalog, sources) -> int:
    from ..demo import run_demo as demo

    return demo(args.root, verbose=args.verbose)
