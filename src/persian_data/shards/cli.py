"""The `shards` subcommand's flags (imported by cli.py to build its parser: argparse only)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("shards", help="training shards of a prepared speech split: WebDataset, lhotse Shar or NeMo "
                                      "tarred audio, under shards/<corpus>/<format>/<split>/")
    p.add_argument("--root", type=Path, default=Path("."),
                   help="the folder that holds datasets/, checksums/ and logs/ (default: the current folder)")
    p.add_argument("--corpus", required=True, metavar="KEY",
                   help="a prepared speech corpus: commonvoice, fleurs, or one the root declares")
    p.add_argument("--sources", type=Path, default=None, metavar="FILE",
                   help="corpora declared beside the five (default: ROOT/persian-data.toml when it exists)")
    p.add_argument("--split", default="train",
                   help="train (default), validation, test, several comma separated, or all (every prepared split)")
    p.add_argument("--format", required=True, metavar="FORMAT", dest="shard_format",
                   help="webdataset (key.json + key.mp3 per sample), shar (lhotse: cuts.N.jsonl.gz + recording.N.tar) "
                        "or nemo (audio_N.tar + sharded_manifests/manifest_N.json)")
    p.add_argument("--shard-size", default="500MB", help="target size of a shard (default 500MB; 1GB, 256MiB, ...)")
    p.add_argument("--buckets", type=int, default=1,
                   help="duration buckets (equal-width, as NeMo's tarred datasets), each sharded in bucketK/ "
                        "(default 1)")
    p.add_argument("--seed", type=int, default=0, help="shuffle seed (default 0): same seed, same shards")
    p.add_argument("--workers", type=int, default=None, help="shards written at once (default: one per CPU, at most 4)")
    p.add_argument("-v", "--verbose", action="store_true", help="more detail in the log")


def run(layout, args: argparse.Namespace, catalog):
    from .command import ShardOptions, parse_size, run_shards

    options = ShardOptions(corpus=args.corpus, fmt=args.shard_format, split=args.split,
                           shard_size=parse_size(args.shard_size), buckets=args.buckets, seed=args.seed,
                           workers=args.workers, catalog=tuple(catalog))
    return run_shards(layout, options, verbose=args.verbose)
