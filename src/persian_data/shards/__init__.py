"""Training shards from a prepared speech split: WebDataset, lhotse Shar, NeMo tarred audio.

`persian-data shards --root R --corpus KEY [--split train] --format webdataset|shar|nemo
[--shard-size 500MB] [--buckets N] [--seed S]` writes `shards/<corpus>/<format>/<split>/` and
`shards/<corpus>/<format>/<split>.index.json` (outside datasets/: the specification's counts and
checksums do not change). The audio bytes are those of datasets/ (never re-encoded), each checked
against the manifest's sha256 on the way; the metadata comes from the manifest.

Modules: corpus (the one corpus lookup), samples (manifest -> samples), plan (shuffle, buckets,
sizes), formats (what each format writes), tarwrite (tar files), write (files and the run
journal), index (paths, index, the check), command (the command), gate (the `shards` gate that
`verify` runs), readers (open a set with webdataset / lhotse / NeMo; the `scale` extra). The
command's flags: `persian_data.commands.shards`.
"""

__all__ = ["ShardOptions", "parse_size", "run_shards"]


def __getattr__(name: str):
    # Imported on first use: the writers' imports are paid by `persian-data shards` only.
    if name in __all__:
        from . import command

        return getattr(command, name)
    raise AttributeError(name)
