"""Train/test leakage: evaluation sentences that also occur in a train split, and shared speakers.

* Sentences: a test or validation clip leaks when its reference, after the evaluation normalizer
  (`textnorm`), equals a train sentence of any speech corpus of the root (Common Voice, FLEURS,
  declared ones: a model trained on all has seen all).
* Speakers: for each corpus with a speaker column (its SpeechPolicy: Common Voice's `client_id`;
  FLEURS publishes none), the speakers present in more than one split. A clip whose speaker is in
  its corpus's train split counts as leaked for `--exclude-leaked`.

Speaker ids are often pseudonymous hashes, still they name one person: reports show only their
first 8 characters, and the console only counts.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from ..layout import Layout
from .references import ALL_SPLITS, EVAL_SPLITS, References, load_references, speech_sources
from .textnorm import normalize_for_scoring

EXAMPLES = 5
SPEAKER_PREFIX = 8


@dataclass
class LeakageIndex:
    train_sentences: dict[str, str]  # normalized sentence -> the corpus whose train split has it
    speaker_splits: dict[str, dict[str, set[str]]]  # corpus -> speaker id -> splits it speaks in
    present: dict[str, list[str]]  # corpus -> splits whose manifest exists


def build_index(layout: Layout, sources, loaded: References | None = None) -> LeakageIndex:
    """Read every train split (sentences) and every split of a corpus with speakers (speakers) of
    the speech corpora among `sources`; `loaded` is a split already in memory, used instead of
    reading its manifest again."""
    sentences: dict[str, str] = {}
    speakers: dict[str, dict[str, set[str]]] = {}
    present: dict[str, list[str]] = {}
    for source in speech_sources(sources):
        corpus = source.key
        for split in ALL_SPLITS:
            if loaded is not None and (loaded.corpus, loaded.split) == (corpus, split) and loaded.complete:
                refs = loaded
            else:
                refs = load_references(layout, source, split, required=False)
            if refs is None:
                continue
            present.setdefault(corpus, []).append(split)
            if split == "train":
                for key in normalize_for_scoring(refs.texts).texts:
                    if key:
                        sentences.setdefault(key, corpus)
            if refs.speaker:
                by_speaker = speakers.setdefault(corpus, {})
                for cid in refs.columns[refs.speaker]:
                    if cid:
                        by_speaker.setdefault(cid, set()).add(split)
    return LeakageIndex(sentences, speakers, present)


def split_leakage(index: LeakageIndex, refs: References, normalized: list[str]) -> tuple[dict, np.ndarray]:
    """The leakage section for one evaluation split, and a mask of its leaked clips."""
    in_train = np.fromiter((bool(t) and t in index.train_sentences for t in normalized), dtype=bool,
                           count=len(normalized))
    by_corpus = Counter(index.train_sentences[t] for t, hit in zip(normalized, in_train) if hit)
    speaker = np.zeros(len(refs), dtype=bool)
    other_split = 0
    if refs.speaker:
        splits = index.speaker_splits.get(refs.corpus, {})
        for k, cid in enumerate(refs.columns[refs.speaker]):
            seen = splits.get(cid, ())
            if "train" in seen:
                speaker[k] = True
            if len(seen) > 1:
                other_split += 1
    leaked = in_train | speaker
    examples = []
    for k in np.flatnonzero(in_train)[:EXAMPLES].tolist():
        examples.append({"id": refs.ids[k], "text": refs.texts[k], "train_corpus": index.train_sentences[normalized[k]]})
    section = {
        "train_splits_checked": {c: ("train" in s) for c, s in index.present.items()},
        "sentences_in_train": int(in_train.sum()),
        "distinct_sentences_in_train": len({normalized[k] for k in np.flatnonzero(in_train).tolist()}),
        "sentences_in_train_by_corpus": dict(by_corpus),
        "sentence_examples": examples,
        "utterances_by_train_speakers": int(speaker.sum()),
        "utterances_by_speakers_in_another_split": other_split,
        "leaked_utterances": int(leaked.sum()),
        "leaked_fraction": float(leaked.mean()) if len(leaked) else 0.0,
    }
    return section, leaked


def speaker_overlap(speaker_splits: dict[str, set[str]]) -> dict:
    """One corpus's speakers present in more than one split: counts per split pair, examples."""
    multi = {cid: s for cid, s in speaker_splits.items() if len(s) > 1}
    pairs: Counter = Counter()
    for s in multi.values():
        ordered = [x for x in ALL_SPLITS if x in s]
        for i, a in enumerate(ordered):
            for b in ordered[i + 1:]:
                pairs[f"{a}+{b}"] += 1
    return {"speakers": len(speaker_splits), "in_more_than_one_split": len(multi), "by_split_pair": dict(pairs),
            "examples": [{"speaker": cid[:SPEAKER_PREFIX] + "…", "splits": [x for x in ALL_SPLITS if x in s]}
                         for cid, s in sorted(multi.items())[:EXAMPLES]]}


def overview(layout: Layout, sources, index: LeakageIndex | None = None) -> dict:
    """`eval-stt --leakage`: every evaluation split of every speech corpus among `sources`, and the
    speaker overlap of each corpus with speaker ids."""
    index = index or build_index(layout, sources)
    out: dict = {"splits": {}, "speakers": {corpus: speaker_overlap(by_speaker)
                                            for corpus, by_speaker in index.speaker_splits.items()}}
    for source in speech_sources(sources):
        for split in EVAL_SPLITS:
            refs = load_references(layout, source, split, required=False)
            if refs is None:
                continue
            section, _ = split_leakage(index, refs, normalize_for_scoring(refs.texts).texts)
            section["utterances"] = len(refs)
            out["splits"][f"{source.key}-{split}"] = section
    return out
