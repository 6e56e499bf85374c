"""Every figure the card shows, read from the root's own records into one plain dict.

Sources: the lock (commits, files, sizes), the checksum file, logs/dataset_sources.json, the
speech `manifests/stats.json`, manifests and `rejects.jsonl`, the chat `combined.stats.json` and
`combined.jsonl`, and each voice's config.json. The stats files are read as data: every counter
they hold is carried over by name, so keys added by newer stages show up without a change here,
and missing keys are simply absent. Nothing is recomputed that a record already states: the
tables print the records' own numbers; the manifests add only distributions the stats do not
hold (durations, ages, clips per speaker, words, turn lengths).
"""

from __future__ import annotations

import hashlib
import json
import logging
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from ..catalog import CHAT_BUCKET, SPEECH_BUCKET, VOICE_BUCKET, Source, root_sources
from ..errors import PersianDataError
from ..layout import Layout
from ..progress import progress

log = logging.getLogger("persian_data.card")

SPEECH_SPLITS = ("train", "validation", "test")
TOP_WORDS = 20
# Common Voice's age buckets in life order (its own spelling, "fourties"); others after, then unknown.
AGE_ORDER = ("teens", "twenties", "thirties", "fourties", "forties", "fifties", "sixties", "seventies", "eighties",
             "nineties")
_PUNCTUATION = ".,:;!?\"'()[]{}«»،؛؟…-–—"


class CardInputError(PersianDataError):
    """A record the card reads is there but unreadable (not JSON, wrong shape)."""


def _read_json(path: Path, *, lenient: bool = False) -> Any | None:
    """The parsed file, None when absent; a clear error when it is there but broken.
    `lenient`: Python's json, which takes the NaN/Infinity that coqui's configs hold."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        return json.loads(data) if lenient else orjson.loads(data)
    except (orjson.JSONDecodeError, ValueError) as exc:
        raise CardInputError(f"card: {path} is not valid JSON ({exc}); rerun the stage that writes it") from None


def _iter_jsonl(path: Path):
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                yield orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise CardInputError(f"card: {path} line {number} is not valid JSON ({exc})") from None


def age_order(ages) -> list[str]:
    """Age buckets youngest first (not alphabetically: "fourties" before "teens"), unknown last."""
    rank = {age: i for i, age in enumerate(AGE_ORDER)}
    return sorted(ages, key=lambda a: (a == "unknown", rank.get(a, len(rank)), a))


def summary(values: list[float]) -> dict[str, float] | None:
    """min / median / mean / p95 / max, rounded to 3 places (the manifests' own precision)."""
    if not values:
        return None
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return {"min": round(ordered[0], 3), "median": round(statistics.median(ordered), 3),
            "mean": round(sum(ordered) / len(ordered), 3), "p95": round(p95, 3), "max": round(ordered[-1], 3)}


# -- records ----------------------------------------------------------------------------------

def _records(layout: Layout) -> tuple[dict, dict]:
    lock = _read_json(layout.lock_file)
    counts = _read_json(layout.sources_json)
    checksum_lines: list[str] = []
    checksum_sha = None
    try:
        raw = layout.checksums_file.read_bytes()
        checksum_lines = raw.decode("utf-8").splitlines()
        checksum_sha = hashlib.sha256(raw).hexdigest()
    except FileNotFoundError:
        pass
    except UnicodeDecodeError as exc:
        raise CardInputError(f"card: {layout.checksums_file} is not UTF-8 ({exc}); `persian-data prepare` or "
                             "`fetch` writes it again") from None
    records = {
        "lock": layout.relative(layout.lock_file) if lock is not None else None,
        "lock_generator": (lock or {}).get("generator"),
        "checksums": {"path": layout.relative(layout.checksums_file), "lines": len(checksum_lines),
                      "sha256": checksum_sha,
                      "first": checksum_lines[0] if checksum_lines else None,
                      "last": checksum_lines[-1] if checksum_lines else None} if checksum_sha else None,
        "counts": counts,
    }
    per_folder = Counter()
    for line in checksum_lines:
        path = line.partition("  ")[2]
        parts = path.split("/")
        if len(parts) >= 3:
            per_folder["/".join(parts[:3])] += 1
    return records, {"lock": (lock or {}).get("sources", {}), "per_folder": per_folder}


def _source_entry(layout: Layout, source: Source, lock_sources: dict, counts: dict | None,
                  per_folder: Counter) -> dict:
    locked = lock_sources.get(source.key)
    content = layout.content_dir(source)
    present = locked is not None and content.is_dir() and any(content.iterdir())
    entry = {
        "key": source.key, "repo_id": source.repo_id, "repo_type": source.repo_type, "url": source.url,
        "license": source.license, "title": source.title, "bucket": source.bucket, "folder": source.folder,
        "path": layout.relative(layout.bucket_root(source)), "present": present,
        "card_title": list(source.card_title), "declared_in": source.declared_in,
    }
    if locked is not None:
        files = locked.get("files", {})
        entry.update(revision=locked.get("revision"), requested_revision=locked.get("requested_revision"),
                     lock_files=len(files), lock_bytes=sum(int(f.get("size", 0)) for f in files.values()))
    if counts is not None and source.count_key in counts:
        entry["count_key"] = source.count_key
        entry["count"] = counts[source.count_key]
    entry["checksum_lines"] = per_folder.get(layout.relative(layout.bucket_root(source)), 0)
    return entry


# -- speech -----------------------------------------------------------------------------------

def _speech(layout: Layout, source: Source) -> dict:
    """The stats and the manifests' distributions; the corpus's SpeechPolicy says which manifest
    columns are the gender, the age and the speaker."""
    policy = source.speech
    stats = _read_json(layout.speech_stats(source))
    out: dict[str, Any] = {"present": stats is not None, "stats": stats,
                           "stats_path": layout.relative(layout.speech_stats(source))}
    if stats is None:
        return out
    splits = [s for s in SPEECH_SPLITS if layout.manifest(source, s).is_file()]
    splits += sorted(s for s in (stats.get("splits") or {}) if s not in splits and layout.manifest(source, s).is_file())
    manifests = {}
    for split in splits:
        path = layout.manifest(source, split)
        durations: list[float] = []
        words: list[int] = []
        gender, age, speakers, vocabulary = Counter(), Counter(), Counter(), Counter()
        with progress(None, f"card {source.folder}/{split}", "clip", logger=log) as bar:
            for row in _iter_jsonl(path):
                durations.append(float(row.get("duration") or 0.0))
                text = row.get("text_normalized") or row.get("text") or ""
                words.append(len(text.split()))
                tokens = [t for t in (w.strip(_PUNCTUATION) for w in text.split()) if t]
                vocabulary.update(tokens)
                gender[str((row.get(policy.gender) if policy.gender else None) or "unknown").lower()] += 1
                if policy.age and policy.age in row:
                    age[str(row.get(policy.age) or "unknown")] += 1
                if policy.speaker and row.get(policy.speaker):
                    speakers[str(row[policy.speaker])] += 1
                bar.update(1)
        manifests[split] = {
            "path": layout.relative(path), "clips": len(durations), "seconds": round(sum(durations), 3),
            "durations": durations, "duration": summary(durations), "words": words, "word": summary(words),
            "gender": dict(sorted(gender.items())), "age": {a: age[a] for a in age_order(age)} if age else None,
            "speaker_clips": sorted(speakers.values(), reverse=True) if speakers else None,
            "speakers": len(speakers) if speakers else None,
            "top_words": vocabulary.most_common(TOP_WORDS),
        }
    out["manifests"] = manifests
    rejects = layout.speech_rejects(source)
    if rejects.is_file():
        by_split = Counter()
        for row in _iter_jsonl(rejects):
            by_split[(row.get("split") or "?", row.get("reason") or "?")] += 1
        out["rejects_file"] = {"path": layout.relative(rejects), "lines": sum(by_split.values()),
                               "by_split_reason": {f"{s}/{r}": n for (s, r), n in sorted(by_split.items())}}
    return out


# -- chat -------------------------------------------------------------------------------------

def counters(stats: dict, skip: tuple[str, ...] = ("files", "options", "examples")) -> dict[str, dict[str, float]]:
    """Every flat counter (a dict of numbers) in `stats`, nested ones named by their dotted path."""
    found: dict[str, dict[str, float]] = {}

    def walk(value: Any, name: str) -> None:
        if not isinstance(value, dict):
            return
        numbers = {k: v for k, v in value.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if numbers and name:
            found[name] = numbers
        for key, sub in value.items():
            if isinstance(sub, dict) and key not in skip:
                walk(sub, f"{name}.{key}" if name else key)

    walk(stats, "")
    return found


def scalars(stats: dict) -> dict[str, float]:
    return {k: v for k, v in stats.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def chat_outcomes(stats: dict) -> dict:
    """What became of every row read and of every conversation made from them, from the stage's own
    counters: a row is skipped (by reason) or makes conversations (one per row with answers=first,
    one per usable answer with answers=all); a conversation is written, or removed as an exact or a
    near duplicate. Rows the counters do not account for are shown as such, never hidden."""
    rows_read = int(stats.get("rows_read") or 0)
    skipped = {reason: int(n) for reason, n in sorted((stats.get("skipped") or {}).items()) if n}
    files = stats.get("files") or []
    if files and all(isinstance(f, dict) and "rows_converted" in f for f in files):
        converted = sum(int(f["rows_converted"] or 0) for f in files)
    else:  # stats without per-file figures: every row not skipped made conversations
        converted = rows_read - sum(skipped.values())
    rows = {"made conversations": converted, **{f"skipped: {reason}": n for reason, n in skipped.items()}}
    near = (stats.get("rules") or {}).get("near_duplicates") or stats.get("near_duplicates") or {}
    conversations = {"written to combined.jsonl": int(stats.get("written") or 0),
                     "exact duplicate (removed)": int(stats.get("duplicates") or 0),
                     "near duplicate (removed)": int(near.get("conversations_removed") or 0)}
    return {"rows_read": rows_read, "rows": rows, "rows_unaccounted": rows_read - sum(rows.values()),
            "conversations_made": sum(conversations.values()), "conversations": conversations,
            "answers": (stats.get("options") or {}).get("answers")}


def _chat(layout: Layout, source: Source) -> dict:
    stats = _read_json(layout.chat_stats(source))
    out: dict[str, Any] = {"present": stats is not None, "stats": stats,
                           "stats_path": layout.relative(layout.chat_stats(source))}
    if stats is None:
        return out
    out["outcomes"] = chat_outcomes(stats)
    combined = layout.chat_combined(source)
    lengths: dict[str, list[int]] = {"user": [], "assistant": []}
    conversations = 0
    if combined.is_file():
        with progress(None, f"card {source.key}", "conversation", logger=log) as bar:
            for row in _iter_jsonl(combined):
                conversations += 1
                for message in row.get("messages") or []:
                    role = message.get("role")
                    if role in lengths:
                        lengths[role].append(len(message.get("content") or ""))
                bar.update(1)
    out["combined"] = {"path": layout.relative(combined), "present": combined.is_file(),
                       "conversations": conversations, "lengths": lengths,
                       "length": {role: summary(values) for role, values in lengths.items()}}
    return out


# -- tts --------------------------------------------------------------------------------------

def _voice(layout: Layout, source: Source, lock_sources: dict) -> dict:
    model = layout.content_dir(source)
    config = None
    try:
        config = _read_json(model / "config.json", lenient=True)
    except CardInputError as exc:
        return {"present": True, "error": str(exc)}
    if config is None:
        return {"present": False}
    files = (lock_sources.get(source.key) or {}).get("files", {})
    checkpoints = {name: int(f.get("size", 0)) for name, f in files.items() if name.endswith(".pth")}
    characters = config.get("characters") or {}
    audio = config.get("audio") or {}
    onnx_record = _read_json(layout.bucket_root(source) / "onnx" / "export.json") if (
        layout.bucket_root(source) / "onnx" / "export.json").is_file() else None
    return {
        "present": True, "voice": source.voice or source.key,
        "config": layout.relative(model / "config.json"),
        "model": config.get("model"),
        "sample_rate": audio.get("sample_rate"),
        "num_chars": (config.get("model_args") or {}).get("num_chars"),
        "characters": len(characters.get("characters") or ""),
        "punctuations": len(characters.get("punctuations") or ""),
        "use_phonemes": config.get("use_phonemes"),
        "phonemizer": config.get("phonemizer"),
        "phoneme_language": config.get("phoneme_language"),
        "checkpoints": checkpoints,
        # what a spectrogram depends on: the voice's bytes, as the lock records them
        "fingerprint": hashlib.sha256(json.dumps(
            {name: f.get("sha256") for name, f in sorted(files.items())}).encode()).hexdigest(),
        "onnx": bool(onnx_record),
    }


# -- all --------------------------------------------------------------------------------------

def collect(root: Path | str, sources: tuple[Source, ...] | list[Source] | None = None) -> dict:
    """The card's data for the root at `root`: one plain dict (JSON-able apart from nothing).
    `sources`: every source the root knows (default: the five and those its persian-data.toml
    declares); each gets its section, chat and speech corpora by key."""
    from .. import __version__

    layout = Layout(Path(root))
    if not layout.root.is_dir():
        raise CardInputError(f"card: {layout.root} is not a folder (pass the root a run wrote, --root R)")
    sources = root_sources(layout.root) if sources is None else sources
    records, index = _records(layout)
    data: dict[str, Any] = {"tool": {"name": "persian-data", "version": __version__}, "records": records}
    data["sources"] = {s.key: _source_entry(layout, s, index["lock"], records["counts"], index["per_folder"])
                       for s in sources}
    data["speech"] = {s.key: _speech(layout, s) for s in sources if s.bucket == SPEECH_BUCKET}
    data["chat"] = {s.key: _chat(layout, s) for s in sources if s.bucket == CHAT_BUCKET}
    data["tts"] = {s.key: _voice(layout, s, index["lock"]) for s in sources if s.bucket == VOICE_BUCKET}
    return data


def dumps(data: dict) -> str:
    return json.dumps(data, ensure_ascii=False, indent=1, default=str)
