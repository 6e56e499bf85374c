"""What there is to explore under a root: speech corpora, chat corpora, eval runs. Found in ONE place.

Discovery is by the outputs `prepare` and `eval-stt` write, not by a list of names, so any corpus
laid out the same way appears:
- a speech corpus is a folder `datasets/speech/<key>/` with `manifests/<split>.jsonl` files
  (every `*.jsonl` there but `rejects.jsonl`);
- a chat corpus is a folder `datasets/text/<key>/` with a `combined.jsonl` (beside it, when
  present, `combined.stats.json`, `combined.review.md`);
- an eval run is a folder `evals/<name>/` with `results.json` and `utterances.jsonl`.
When the corpora registry lands (`persian_data.corpora`), `speech_corpora` and `chat_corpora` are
the two functions to switch to it; nothing else in explore lists folders.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SPEECH = ("datasets", "speech")
TEXT = ("datasets", "text")
EVALS = "evals"
SPLIT_ORDER = {"train": 0, "validation": 1, "dev": 1, "test": 2}


@dataclass(frozen=True)
class SpeechCorpus:
    key: str  # folder name, e.g. commonvoice_fa
    folder: Path
    manifests: dict[str, Path]  # split -> manifest file, in train/validation/test order
    rejects: Path | None
    stats: Path | None


@dataclass(frozen=True)
class ChatCorpus:
    key: str  # folder name, e.g. persian_conversation
    folder: Path
    combined: Path
    stats: Path | None
    review: Path | None


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


def speech_corpora(root: Path) -> list[SpeechCorpus]:
    """Every folder under datasets/speech/ with a manifests/ folder (even an empty one: the page says so)."""
    out = []
    for folder in _dirs(root.joinpath(*SPEECH)):
        manifests_dir = folder / "manifests"
        if not manifests_dir.is_dir():
            continue
        manifests = {p.stem: p for p in manifests_dir.glob("*.jsonl") if p.name != "rejects.jsonl" and p.is_file()}
        ordered = {split: manifests[split] for split in sorted(manifests, key=_split_key)}
        out.append(SpeechCorpus(folder.name, folder, ordered, _file(manifests_dir / "rejects.jsonl"),
                                _file(manifests_dir / "stats.json")))
    return out


def chat_corpora(root: Path) -> list[ChatCorpus]:
    """Every folder under datasets/text/ with a combined.jsonl."""
    out = []
    for folder in _dirs(root.joinpath(*TEXT)):
        combined = folder / "combined.jsonl"
        if combined.is_file():
            out.append(ChatCorpus(folder.name, folder, combined, _file(folder / "combined.stats.json"),
                                  _file(folder / "combined.review.md")))
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


def text_folders_without_corpus(root: Path) -> list[str]:
    """Folders under datasets/text/ that have no combined.jsonl yet (the page tells how to make one)."""
    return [f.name for f in _dirs(root.joinpath(*TEXT)) if not (f / "combined.jsonl").is_file()]


def speech_folders_without_manifests(root: Path) -> list[str]:
    return [f.name for f in _dirs(root.joinpath(*SPEECH)) if not (f / "manifests").is_dir()]


def eval_runs(root: Path) -> list[EvalRun]:
    """Every folder under evals/ with results.json and utterances.jsonl (results.json is written last)."""
    out = []
    for folder in _dirs(root / EVALS):
        results, utterances = folder / "results.json", folder / "utterances.jsonl"
        if results.is_file() and utterances.is_file():
            out.append(EvalRun(folder.name, folder, results, utterances))
    return out
