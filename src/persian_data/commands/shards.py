"""shards: training shards of a prepared speech split (WebDataset, lhotse Shar, NeMo tarred audio)."""

from __future__ import annotations

import argparse

from .common import add_root, add_sources, add_verbose, report, speech_corpus_help


def add_parsers(sub) -> None:
    p = sub.add_parser("shards", help="training shards of a prepared speech split: WebDataset, lhotse Shar or NeMo "
                                      "tarred audio, under shards/<corpus>/<format>/<split>/")
    add_root(p)
    p.add_argument("--corpus", required=True, metavar="KEY", help=speech_corpus_help("a prepared speech corpus"))
    add_sources(p)
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
    p.add_argument("--workers", type=int, default=None, help="writer processes (default: one per CPU, at most 4), shared among the splits by size, "
                        "at least one each; 1 writes everything in this process")
    add_verbose(p)
    p.set_defaults(run=run_shards)


def run_shards(args: argparse.Namespace, layout, catalog, sources) -> int:
    from ..shards.command import ShardOptions, parse_size, run_shards as shards

    options = ShardOptions(corpus=args.corpus, fmt=args.shard_format, split=args.split,
                           shard_size=parse_size(args.shard_size), buckets=args.buckets, seed=args.seed,
                           workers=args.workers, catalog=tuple(catalog))
    return report(shards(layout, options, verbose=args.verbose))
