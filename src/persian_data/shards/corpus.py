"""Which manifest a corpus key names, and which of its columns say speaker and gender.

`corpus_split` is the ONE place `persian-data shards` looks a corpus up. When the corpora registry
(declared corpora under datasets/speech/<key>/) lands, switch this function to it; nothing else
in the package knows where manifests live or how a corpus names its speaker column.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..catalog import BY_KEY, Source
from ..layout import Layout
from .errors import ShardsInputError

# corpus key -> (speaker column, gender column) of its manifest lines (None: the corpus has none).
# FLEURS' `fleurs_id` numbers sentences, not speakers, so FLEURS has no speaker column.
_COLUMNS = {"commonvoice": ("client_id", "gender"), "fleurs": (None, "gender")}
SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class CorpusSplit:
    key: str
    split: str
    source: Source
    manifest: Path
    speaker_column: str | None
    gender_column: str | None


def corpus_split(layout: Layout, key: str, split: str) -> CorpusSplit:
    """The prepared manifest of `key`'s `split`; ShardsInputError (one line) when the corpus is
    unknown, the split is not one of ours, or `prepare speech` has not written it yet."""
    if key not in _COLUMNS:
        raise ShardsInputError(f"--corpus {key!r} is not a speech corpus; use one of {', '.join(_COLUMNS)}")
    if split == "dev":
        split = "validation"  # FLEURS' name, published as validation
    if split not in SPLITS:
        raise ShardsInputError(f"--split {split!r} is not a split; use one of {', '.join(SPLITS)}")
    source = BY_KEY[key]
    manifest = layout.manifest(source, split)
    if not manifest.is_file():
        raise ShardsInputError(f"{manifest}: no {key} {split} manifest; run `persian-data prepare speech --root "
                               f"{layout.root} --only {key}` first")
    speaker, gender = _COLUMNS[key]
    return CorpusSplit(key, split, source, manifest, speaker, gender)


def corpus_keys() -> tuple[str, ...]:
    return tuple(_COLUMNS)
