"""Which clips a run trains and evaluates on, read from the speech manifests (never the raw
parquet/tar files), and why every other clip was left out.

Order of the checks (a clip is counted under the first it fails):
  empty_transcript          nothing left to learn once the target is made
  sentence_in_eval_or_test  its normalized sentence is that of a clip in an evaluation or test split
                            of a corpus used (same normalizer as eval-stt's leakage report)
  speaker_in_eval_or_test   its speaker speaks in such a split of its corpus (the speaker column
                            its SpeechPolicy names: Common Voice's client_id; FLEURS has none)
  shorter_than_min_duration / longer_than_max_duration   (manifest durations: nothing is decoded)
  label_too_long            more label tokens than the model can take (Whisper: its 448 positions;
                            CTC: more labels than output frames), see `models.label_limit`
  outside_minutes_subset    not picked by --minutes
The two leakage checks are skipped with --allow-leakage; the clips they would have removed are
still counted, and train.json and the model card say that they were trained on.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from ..atomic import sha256_of
from ..evaluate.leakage import build_index
from ..evaluate.references import References, load_references
from ..evaluate.textnorm import normalize_for_scoring
from ..layout import Layout
from ..source import Source
from . import corpora
from .errors import TrainInputError
from .fewshot import balanced_subset
from .options import TrainOptions

EXAMPLES = 5
LEAKAGE_REASONS = ("sentence_in_eval_or_test", "speaker_in_eval_or_test")
REASONS = ("empty_transcript", *LEAKAGE_REASONS, "shorter_than_min_duration", "longer_than_max_duration",
           "label_too_long", "outside_minutes_subset")  # eval clips: also outside_max_eval_clips


@dataclass(slots=True)
class Clip:
    corpus: str
    split: str
    id: str
    audio_path: str  # root-relative, as in the manifest
    duration: float
    text: str  # as in the manifest: what eval-stt scores against
    target: str  # what the model learns to write (--targets)
    speaker: str
    gender: str

    @property
    def key(self) -> str:
        return f"{self.corpus}/{self.split}/{self.id}"


@dataclass
class Selection:
    train: list[Clip]
    eval: list[Clip]
    excluded: dict[str, Counter] = field(default_factory=lambda: {"train": Counter(), "eval": Counter()})
    examples: dict[str, list[str]] = field(default_factory=dict)
    dropped: dict[str, dict[str, str]] = field(default_factory=lambda: {"train": {}, "eval": {}})  # key -> reason
    manifests: dict[str, dict] = field(default_factory=dict)
    held_out: list[str] = field(default_factory=list)
    leaked_kept: Counter = field(default_factory=Counter)  # --allow-leakage: leaked clips trained on, by reason
    minutes: dict | None = None

    def drop(self, role: str, clip: Clip, reason: str) -> None:
        self.excluded[role][reason] += 1
        self.dropped[role][clip.key] = reason
        if role == "train":
            ex = self.examples.setdefault(reason, [])
            if len(ex) < EXAMPLES:
                ex.append(clip.key)

    def keep_where(self, role: str, keep: Callable[[Clip], bool], reason: str) -> None:
        kept = []
        for clip in getattr(self, role):
            if keep(clip):
                kept.append(clip)
            else:
                self.drop(role, clip, reason)
        setattr(self, role, kept)


def make_targets(texts: list[str], mode: str) -> tuple[list[str], list[str]]:
    """(targets, scoring keys). "normalized": eval-stt's scoring normalizer, so the model learns to
    write exactly what is scored; "raw": the manifest text, spaces collapsed."""
    keys = normalize_for_scoring(texts).texts
    if mode == "normalized":
        return keys, keys
    return [" ".join(t.split()) for t in texts], keys


def _clips(refs: References, source: Source, targets: list[str]) -> list[Clip]:
    """The clips of one manifest, with the speaker and gender its corpus's SpeechPolicy names."""
    blank = [""] * len(refs)
    speaker_col, gender_col = corpora.speaker_column(source), corpora.gender_column(source)
    speakers = refs.columns.get(speaker_col, blank) if speaker_col else blank
    genders = refs.columns.get(gender_col, blank) if gender_col else blank
    return [Clip(refs.corpus, refs.split, refs.ids[k], refs.audio_paths[k], float(refs.durations[k]), refs.texts[k],
                 targets[k], speakers[k] or "", genders[k] or "") for k in range(len(refs))]


class _Manifests:
    """Each (corpus, split) manifest read once, with its sha256 recorded."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.loaded: dict[tuple[str, str], References] = {}
        self.record: dict[str, dict] = {}

    def get(self, source: Source, split: str, required: bool = True) -> References | None:
        if (source.key, split) not in self.loaded:
            path = self.layout.manifest(source, split)
            if not path.is_file():
                if not required:
                    return None
                raise TrainInputError(self._missing(source, split, path))
            refs = load_references(self.layout, source, split)
            if any(ref is not None for ref in refs.audio_refs):
                raise TrainInputError(f"{refs.manifest}: clips were prepared with --no-extract (audio inside the "
                                      f"source files); training reads audio files: run `persian-data prepare speech "
                                      f"--root {self.layout.root} --only {source.key}` without --no-extract")
            self.loaded[(source.key, split)] = refs
            self.record[self.layout.relative(refs.manifest)] = {"sha256": sha256_of(refs.manifest), "clips": len(refs)}
        return self.loaded[(source.key, split)]

    def _missing(self, source: Source, split: str, path) -> str:
        run = f"`persian-data prepare speech --root {self.layout.root} --only {source.key}`"
        have = [s for s in corpora.SPLITS if self.layout.manifest(source, s).is_file()]
        if not have:
            return f"{path}: {source.key} is not prepared (no manifest); run {run} first"
        return (f"{path}: no {source.key} {split} manifest (it has {', '.join(have)}); run {run} if it was not "
                f"prepared whole, or leave {source.key} out of --corpus or pick another split")


def held_out_splits(options: TrainOptions) -> list[str]:
    return [s for s in corpora.HELD_OUT_SPLITS if s not in options.train_splits]


def select(layout: Layout, options: TrainOptions, sources: list[Source]) -> Selection:
    """Train and eval clips of the corpora `sources` (options.corpora's) after the data checks (the
    model's label check comes later). Every corpus needs its train splits, the eval split and the
    test split (the final eval-stt run); a held-out split it does not have holds no leak."""
    manifests = _Manifests(layout)
    held = held_out_splits(options)
    train: list[Clip] = []
    keys: list[str] = []
    for source in sources:
        for split in options.train_splits:
            refs = manifests.get(source, split)
            targets, norm = make_targets(refs.texts, options.targets)
            train += _clips(refs, source, targets)
            keys += norm
    eval_clips: list[Clip] = []
    for source in sources:
        refs = manifests.get(source, options.eval_split)
        eval_clips += _clips(refs, source, make_targets(refs.texts, options.targets)[0])
    held_sentences: set[str] = set()
    held_out: list[str] = []
    for source in sources:
        for split in held:
            refs = manifests.get(source, split, required=split in (options.eval_split, corpora.TEST_SPLIT))
            if refs is not None:
                held_sentences.update(normalize_for_scoring(refs.texts).texts)
                held_out.append(f"{source.key}/{split}")
    held_sentences.discard("")
    sel = Selection(train, eval_clips, manifests=manifests.record, held_out=held_out)
    _check_audio(layout, sel)
    key_of = dict(zip((c.key for c in train), keys))
    sel.keep_where("train", lambda c: bool(c.target.strip()), "empty_transcript")
    sel.keep_where("eval", lambda c: bool(c.target.strip()), "empty_transcript")
    _leakage(layout, options, sources, sel, key_of, held_sentences, held)
    lo, hi = options.min_duration, options.max_duration
    for role in ("train", "eval"):
        sel.keep_where(role, lambda c: c.duration >= lo, "shorter_than_min_duration")
        sel.keep_where(role, lambda c: c.duration <= hi, "longer_than_max_duration")
    return sel


def _check_audio(layout: Layout, sel: Selection) -> None:
    for clip in sel.train + sel.eval:
        path = layout.root / clip.audio_path
        if not path.is_file():
            raise TrainInputError(f"{path}: audio of clip {clip.id} ({clip.corpus} {clip.split}) is missing; run "
                                  f"`persian-data prepare speech --root {layout.root} --only {clip.corpus}` again")


def _leakage(layout: Layout, options: TrainOptions, sources: list[Source], sel: Selection, key_of: dict[str, str],
             held_sentences: set[str], held: list[str]) -> None:
    """Sentences: the scoring normalizer's keys, as eval-stt's leakage report compares them. Speakers:
    eval-stt's leakage index (every split of its corpus a speaker speaks in), for the corpora whose
    SpeechPolicy names a speaker column."""
    with_speakers = [s for s in sources if corpora.speaker_column(s)]
    speaker_splits = build_index(layout, with_speakers).speaker_splits if with_speakers else {}
    held_set = set(held)
    nobody: dict[str, set[str]] = {}

    def reason(clip: Clip) -> str | None:
        if key_of[clip.key] in held_sentences:
            return LEAKAGE_REASONS[0]
        if clip.speaker and held_set & speaker_splits.get(clip.corpus, nobody).get(clip.speaker, set()):
            return LEAKAGE_REASONS[1]
        return None

    kept = []
    for clip in sel.train:
        why = reason(clip)
        if why is None:
            kept.append(clip)
        elif options.allow_leakage:
            sel.leaked_kept[why] += 1
            kept.append(clip)
        else:
            sel.drop("train", clip, why)
    sel.train = kept


def apply_label_limit(sel: Selection, fits: Callable[[Clip], bool]) -> None:
    """Drop clips whose labels the model cannot take (counted as label_too_long)."""
    for role in ("train", "eval"):
        sel.keep_where(role, fits, "label_too_long")


def apply_minutes(sel: Selection, minutes: float, seed: int) -> None:
    clips = sel.train
    picked = {clips[k].key for k in balanced_subset([c.key for c in clips], [c.duration for c in clips],
                                                    [c.speaker for c in clips], [c.gender for c in clips], minutes, seed)}
    available = sum(c.duration for c in clips) / 60
    sel.keep_where("train", lambda c: c.key in picked, "outside_minutes_subset")
    chosen = sum(c.duration for c in sel.train) / 60
    sel.minutes = {"requested": minutes, "selected": chosen, "available": available, "seed": seed,
                   "speakers": len({c.speaker or c.key for c in sel.train}),
                   "genders": dict(Counter((c.gender or "unknown").lower() for c in sel.train))}


def limit_eval(sel: Selection, max_clips: int | None, seed: int) -> None:
    """--max-eval-clips: a seeded sample of the eval clips; then longest first (a batch that does not
    fit in memory shows at the first evaluation, and batches pad little)."""
    import random

    if max_clips is not None and len(sel.eval) > max_clips:
        keep = {c.key for c in random.Random(seed).sample(sel.eval, max_clips)}
        sel.keep_where("eval", lambda c: c.key in keep, "outside_max_eval_clips")
    sel.eval.sort(key=lambda c: (-c.duration, c.key))


def check_not_empty(layout: Layout, sel: Selection, options: TrainOptions) -> None:
    if not sel.train:
        why = ", ".join(f"{n} {r}" for r, n in sel.excluded["train"].most_common()) or "the manifests hold no clips"
        raise TrainInputError(f"{layout.root}: no training clip is left in {','.join(options.corpora)} "
                              f"{','.join(options.train_splits)} after the filters ({why}); loosen --min-duration/"
                              f"--max-duration, use --allow-leakage, or add a corpus")
    if not sel.eval:
        why = ", ".join(f"{n} {r}" for r, n in sel.excluded["eval"].most_common()) or "the manifests hold no clips"
        raise TrainInputError(f"{layout.root}: no evaluation clip is left in {','.join(options.corpora)} "
                              f"{options.eval_split} after the filters ({why})")


def summary(sel: Selection, options: TrainOptions) -> dict:
    """The data section of train.json."""
    def hours(clips):
        return round(sum(c.duration for c in clips) / 3600, 4)

    per_corpus = Counter(c.corpus for c in sel.train)
    return {
        "train": {"clips": len(sel.train), "hours": hours(sel.train), "by_corpus": dict(per_corpus),
                  "speakers": len({c.speaker for c in sel.train if c.speaker}),
                  "excluded": dict(sel.excluded["train"]), "excluded_examples": sel.examples,
                  "digest": _digest(sel.train)},
        "eval": {"clips": len(sel.eval), "hours": hours(sel.eval), "split": options.eval_split,
                 "excluded": dict(sel.excluded["eval"])},
        "targets": options.targets,
        "leakage": {"excluded": not options.allow_leakage, "held_out_splits": sel.held_out,
                    "checked": list(LEAKAGE_REASONS),
                    "leaked_clips_trained_on": sum(sel.leaked_kept.values()),
                    "leaked_clips_trained_on_by_reason": dict(sel.leaked_kept)},
        "minutes": sel.minutes,
        "manifests": sel.manifests,
    }


def _digest(clips: list[Clip]) -> str:
    """sha256 of the sorted clip keys: two runs trained on the same clips have the same digest."""
    import hashlib

    h = hashlib.sha256()
    for key in sorted(c.key for c in clips):
        h.update(key.encode() + b"\n")
    return h.hexdigest()


def clip_rows(sel: Selection):
    """clips.jsonl: every candidate clip, used or not, with the reason."""
    for role in ("train", "eval"):
        for clip in getattr(sel, role):
            yield {"role": role, "corpus": clip.corpus, "split": clip.split, "id": clip.id, "used": True}
        for key, reason in sel.dropped[role].items():
            corpus, split, cid = key.split("/", 2)
            yield {"role": role, "corpus": corpus, "split": split, "id": cid, "used": False, "reason": reason}
