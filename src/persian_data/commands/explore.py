"""explore: the local web app over a root (clips with audio, conversations, eval errors, voices)."""

from __future__ import annotations

import argparse
import logging

from .common import add_root, add_sources, add_verbose


def add_parsers(sub) -> None:
    p = sub.add_parser("explore", help="a local web app: clips with audio, conversations, eval errors, voices "
                                       "(http://127.0.0.1:8765/)")
    add_root(p)
    add_sources(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8765, help="port to listen on")
    add_verbose(p)
    p.set_defaults(run=run_explore)


def run_explore(args: argparse.Namespace, layout, catalog, sources) -> int:
    from ..explore.serve import serve_explore

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    serve_explore(args.root, host=args.host, port=args.port, catalog=catalog)
    return 0
