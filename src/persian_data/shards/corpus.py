"""Which manifest a corpus key names, and which of its columns say speaker and gender.

`corpus_split` is the ONE place `persian-data shards` looks a corpus up: in the root's catalog (the
five and the corpora it declares), whose speech policy names the speaker and gender columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..catalog import CATALOG, SPEECH_BUCKET, Source
from ..layout import Layout
from .errors import ShardsInputError

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class CorpusSplit:
    key: str
    split: str
    source: Source
    manifest: Path
    speaker_column: str | None
    gender_column: str | None


def corpus_split(layout: Layout, key: str, split: str, catalog: tuple[Source, ...] = CATALOG) -> CorpusSplit:
    """The prepared manifest of `key`'s `split`; ShardsInputError (one line) when the corpus is
    unknown, the split is not one of ours, or `prepare speech` has not written it yet."""
    speech = {s.key: s for s in catalog if s.bucket == SPEECH_BUCKET}
    if key not in speech:
        raise ShardsInputError(f"--corpus {key!r} is not a speech corpus of {layout.root}; use one of "
                               f"{', '.join(speech)}")
    source = speech[key]
    split = source.speech.published(split)  # FLEURS' `dev` is published as validation
    if split not in SPLITS:
        raise ShardsInputError(f"--split {split!r} is not a split; use one of {', '.join(SPLITS)}")
    manifest = layout.manifest(source, split)
    if not manifest.is_file():
        raise ShardsInputError(f"{manifest}: no {key} {split} manifest; run `persian-data prepare speech --root "
                               f"{layout.root} --only {key}` first")
    return CorpusSplit(key, split, source, manifest, source.speech.speaker, source.speech.gender)
