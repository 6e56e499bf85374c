"""Open a shard set with the library its format is for, from its index.

    load_webdataset(root, corpus)         -> webdataset.WebDataset over the set's tars
    load_shar(root, corpus)               -> lhotse CutSet (CutSet.from_shar, audio attached)
    nemo_config(root, corpus)             -> the tarred-dataset keys of a NeMo train_ds config

(`corpus`: a speech corpus key, e.g. commonvoice.)

webdataset and lhotse come with the `scale` extra (`pip install 'persian-data[scale]'`); writing
shards needs neither. Each call checks the set against nothing: `persian-data verify` does that.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ExtraMissingError
from ..layout import Layout
from .errors import ShardsInputError
from .index import SetPaths, read_index


def _index(root, corpus: str, fmt: str, split: str) -> tuple[SetPaths, dict]:
    layout = root if isinstance(root, Layout) else Layout(Path(root))
    paths = SetPaths(layout, corpus, fmt, split)
    try:
        return paths, read_index(paths.index)
    except FileNotFoundError:
        raise ShardsInputError(f"{paths.index}: no {fmt} shards of {corpus} {split}; run `{paths.command()}` "
                               f"first") from None


def shard_paths(root, corpus: str, fmt: str, split: str = "train", bucket: int | None = None) -> list[str]:
    """The set's shard tars in order (of one bucket when given), as paths."""
    paths, index = _index(root, corpus, fmt, split)
    return [str(paths.folder / s["name"]) for s in index["shards"] if bucket is None or s["bucket"] == bucket]


def _require(module: str, what: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ExtraMissingError(f"{what} needs {module.split('.')[0]} (the scale extra): "
                                f"pip install 'persian-data[scale]'") from None


def load_webdataset(root, corpus: str, split: str = "train", bucket: int | None = None, **kwargs):
    """A `webdataset.WebDataset` over the set's tars (samples: __key__, json, mp3|wav as bytes)."""
    wds = _require("webdataset", "load_webdataset")
    kwargs.setdefault("shardshuffle", False)
    return wds.WebDataset(shard_paths(root, corpus, "webdataset", split, bucket), **kwargs)


def load_shar(root, corpus: str, split: str = "train", bucket: int | None = None, **kwargs):
    """A lazy lhotse CutSet over the set (`cut.load_audio()` decodes the shard's bytes)."""
    lhotse = _require("lhotse", "load_shar")
    paths, index = _index(root, corpus, "shar", split)
    shards = [s for s in index["shards"] if bucket is None or s["bucket"] == bucket]
    fields = {"cuts": [str(paths.folder / s["files"][0]["name"]) for s in shards],
              "recording": [str(paths.folder / s["name"]) for s in shards]}
    return lhotse.CutSet.from_shar(fields=fields, **kwargs)


def nemo_config(root, corpus: str, split: str = "train") -> dict:
    """`manifest_filepath` and `tarred_audio_filepaths` for NeMo's tarred ASR datasets (with
    buckets: one list entry per bucket, shortest first, as NeMo's bucketing datasets take them)."""
    paths, index = _index(root, corpus, "nemo", split)
    manifests, tars = [], []
    for pattern in index["patterns"].values():  # one per bucket that has shards; names include bucketK/
        manifests.append(str(paths.folder / pattern["manifest_filepath"]))
        tars.append(str(paths.folder / pattern["tarred_audio_filepaths"]))
    bucketed = len(manifests) > 1
    return {"is_tarred": True, "shard_manifests": True, "shard_strategy": "scatter",
            "manifest_filepath": [[m] for m in manifests] if bucketed else manifests[0],
            "tarred_audio_filepaths": [[t] for t in tars] if bucketed else tars[0]}
