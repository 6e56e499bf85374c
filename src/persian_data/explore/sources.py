"""What there is to explore under a root: its corpora and its eval runs. Found in ONE place.

The corpora are the root's catalog (`catalog.root_sources`: the five and those its persian-data.toml
declares), each as far as `prepare` has written it, at the paths the layout gives:
- a speech corpus once its manifests folder exists: its splits are the `*.jsonl` there but
  `rejects.jsonl`; its `SpeechPolicy` says which manifest columns hold the speaker, gender, age and
  accent (a declared corpus's own column names included);
- a chat corpus once its `combined.jsonl` exists (beside it, when present, `combined.stats.json`,
  `combined.review.md`);
- an eval run is a folder `evals/<name>/` with `results.json` and `utterances.jsonl`.
Corpora are named by their keys, as every command names them (`--corpus commonvoice`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ..layout import Layout
from ..source import CHAT_BUCKET, SPEECH_BUCKET, Source, SpeechPolicy

EVALS = "evals"
SPLIT_ORDER = {"train": 0, "validation": 1, "dev": 1, "test": 2}
NO_POLICY = SpeechPolicy()


@dataclass(frozen=True)
class SpeechCorpus:
    source: Source
    folder: Path
    manifests: dict[str, Path]  # split -> manifest file, in train/validation/test order
    rejects: Path | None
    stats: Path | None

    @property
    def key(self) -> str:
        return self.source.key

    @property
    def policy(self) -> SpeechPolicy:
        """Which manifest columns hold the speaker, gender, age and accent."""
        return self.source.speech or NO_POLICY


@dataclass(frozen=True)
class ChatCorpus:
    source: Source
    folder: Path
    combined: Path
    stats: Path | None
    review: Path | None

    @property
    def key(self) -> str:
        return self.source.key


@dataclass(frozen=True)
class EvalRun:
    name: str  # folder name: <corpus>-<split>-<name>
    folder: Path
    results: Path
    utterances: Path


def _split_key(split: str) -> tuple[int, str]:
    return SPLIT_ORDER.get(split, 9), split


def _dirs(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except (FileNotFoundError, NotADirectoryError):
        return []


def _file(path: Path) -> Path | None:
    return path if path.is_file() else None


def _of(catalog: Iterable[Source], bucket: str) -> list[Source]:
    return [s for s in catalog if s.bucket == bucket]


def speech_corpora(root: Path, catalog: Iterable[Source]) -> list[SpeechCorpus]:
    """Every speech corpus of the catalog with a manifests folder (even an empty one: the page says so)."""
    layout = Layout(root)
    out = []
    for source in _of(catalog, SPEECH_BUCKET):
        manifests_dir = layout.manifests_dir(source)
        if not manifests_dir.is_dir():
            continue
        rejects = layout.speech_rejects(source)
        manifests = {p.stem: p for p in manifests_dir.glob("*.jsonl") if p != rejects and p.is_file()}
        ordered = {split: manifests[split] for split in sorted(manifests, key=_split_key)}
        out.append(SpeechCorpus(source, layout.bucket_root(source), ordered, _file(rejects),
                                _file(layout.speech_stats(source))))
    return out


def chat_corpora(root: Path, catalog: Iterable[Source]) -> list[ChatCorpus]:
    """Every chat corpus of the catalog with a combined.jsonl."""
    layout = Layout(root)
    out = []
    for source in _of(catalog, CHAT_BUCKET):
        combined = layout.chat_combined(source)
        if combined.is_file():
            out.append(ChatCorpus(source, layout.chat_dir(source), combined, _file(layout.chat_stats(source)),
                                  _file(layout.chat_dir(source) / "combined.review.md")))
    return out


def written_normalized(corpus: ChatCorpus) -> bool:
    """Whether combined.jsonl was written through today's default normalizer (its stats say so): the
    index then skips normalizing 300 MB of text again. Anything else (--no-normalize, other settings,
    no readable stats) is normalized while indexing."""
    import dataclasses
    import json

    from ..normalize import DEFAULT

    try:
        options = json.loads(corpus.stats.read_text(encoding="utf-8"))["options"] if corpus.stats else {}
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return options.get("normalize") is True and options.get("normalizer") == dataclasses.asdict(DEFAULT)


def chat_corpora_not_prepared(root: Path, catalog: Iterable[Source]) -> list[str]:
    """Chat corpora fetched (their folder exists) with no combined.jsonl yet (the page tells how to make one)."""
    layout = Layout(root)
    return [s.key for s in _of(catalog, CHAT_BUCKET)
            if layout.chat_dir(s).is_dir() and not layout.chat_combined(s).is_file()]


def speech_corpora_not_prepared(root: Path, catalog: Iterable[Source]) -> list[str]:
    """Speech corpora fetched (their folder exists) with no manifests folder yet."""
    layout = Layout(root)
    return [s.key for s in _of(catalog, SPEECH_BUCKET)
            if layout.bucket_root(s).is_dir() and not layout.manifests_dir(s).is_dir()]


def eval_runs(root: Path) -> list[EvalRun]:
    """Every folder under evals/ with results.json and utterances.jsonl (results.json is written last)."""
    out = []
    for folder in _dirs(root / EVALS):
        results, utterances = folder / "results.json", folder / "utterances.jsonl"
        if results.is_file() and utterances.is_file():
            out.append(EvalRun(folder.name, folder, results, utterances))
    return out
