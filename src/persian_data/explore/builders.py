"""Rows of the explore index from each kind of input, in one streaming pass that also hashes the file.

Memory stays flat: lines are read and inserted in batches (a few thousand at a time); long texts
(conversations, eval utterances) are not copied into the database at all, only their byte offset
and length in the file, which the pages read back for the 20-50 rows they show. Clip rows keep
their (short) text, which the clips table sorts and filters on.

A line that is not a JSON object is skipped and counted (`sources.bad_lines`; the page says how
many), never fatal: one damaged line must not hide the rest of a corpus.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import orjson

from ..source import SpeechPolicy
from ..textclean.pii import PLACEHOLDERS
from .search import index_form, index_forms

BATCH = 2000
PLACEHOLDER = re.compile("|".join(re.escape(p) for p in PLACEHOLDERS.values()))

Progress = Callable[["Input", int, int], None]


@dataclass(frozen=True)
class Input:
    """One indexed file: its name in `sources`, kind (clips, rejects, chat, eval), path, corpus and split."""

    name: str
    kind: str
    path: Path
    corpus: str  # speech/chat corpus key, or the eval run's name
    split: str | None = None
    normalized: bool = False  # the text is already what the shared normalizer makes of it
    policy: SpeechPolicy | None = None  # clips: the manifest columns holding speaker, gender, age, accent


def _fts_table(prefix: str, key: str) -> str:
    safe = "".join(c if c.isascii() and (c.isalnum() or c == "_") else "_" for c in key)[:40]
    return f"{prefix}_fts_{safe}_{hashlib.sha1(key.encode()).hexdigest()[:8]}"


def chat_fts_table(key: str) -> str:
    """The FTS5 table of one chat corpus. A contentless table per input: rebuilding one is a DROP (SQLite
    before 3.43 cannot delete from a contentless table), and a search never reads rows of another."""
    return _fts_table("chat", key)


def clips_fts_table(corpus: str, split: str) -> str:
    """The FTS5 table of one split's clips: counting a word's clips in a split is an index-only query."""
    return _fts_table("clips", f"{corpus}:{split}")


def _create_fts(db: sqlite3.Connection, table: str) -> None:
    db.execute(f'CREATE VIRTUAL TABLE "{table}" USING fts5(search, content=\'\', '
               "tokenize='unicode61 remove_diacritics 0')")
    # bulk load: no merging while inserting (a third faster), one 'optimize' at the end
    db.execute(f'INSERT INTO "{table}"("{table}", rank) VALUES(\'automerge\', 0)')


def _finish_fts(db: sqlite3.Connection, table: str) -> None:
    db.execute(f'INSERT INTO "{table}"("{table}") VALUES(\'optimize\')')
    db.execute(f'INSERT INTO "{table}"("{table}", rank) VALUES(\'automerge\', 4)')


def _next_rowid(db: sqlite3.Connection, table: str) -> int:
    return (db.execute(f"SELECT coalesce(max(rowid), 0) FROM {table}").fetchone()[0] or 0) + 1


class _Reader:
    """Lines of a file with their byte offsets, hashing every byte on the way."""

    def __init__(self, item: Input, on_progress: Progress | None) -> None:
        self.item, self.on_progress = item, on_progress
        self.sha = hashlib.sha256()
        self.bad = 0
        self.total = item.path.stat().st_size

    def objects(self) -> Iterator[tuple[int, int, int, dict]]:
        """(line number from 1, byte offset, byte length, parsed object) of every JSON-object line."""
        offset = 0
        with open(self.item.path, "rb") as f:
            for number, line in enumerate(f, 1):
                self.sha.update(line)
                start, offset = offset, offset + len(line)
                if number % 5000 == 0 and self.on_progress is not None:
                    self.on_progress(self.item, offset, self.total)
                if not line.strip():
                    continue
                try:
                    obj = orjson.loads(line)
                except orjson.JSONDecodeError:
                    self.bad += 1
                    continue
                if not isinstance(obj, dict):
                    self.bad += 1
                    continue
                yield number, start, len(line.rstrip(b"\r\n")), obj
        if self.on_progress is not None:
            self.on_progress(self.item, offset, self.total)

    @property
    def digest(self) -> str:
        return self.sha.hexdigest()


def _batches(items: Iterator[Any], size: int = BATCH) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _column(obj: dict, column: str | None) -> str:
    """The value of one of the policy's columns ("" when the corpus has no such column)."""
    return _text(obj.get(column)) if column else ""


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ("" if value is None else str(value))


def _number(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def build_clips(db: sqlite3.Connection, item: Input, on_progress: Progress | None) -> tuple[str, int, int]:
    reader = _Reader(item, on_progress)
    fts = clips_fts_table(item.corpus, item.split or "")
    _create_fts(db, fts)
    rowid = _next_rowid(db, "clips")
    policy = item.policy or SpeechPolicy()
    rows = 0
    for batch in _batches(reader.objects()):
        # "text", "text_normalized", "id", ...: the manifest line's own keys (speech_clips.MANIFEST_KEYS)
        searches = index_forms([_text(o.get("text_normalized") or o.get("text")) for _, _, _, o in batch])
        values = []
        for _, _, _, o in batch:
            gender = _column(o, policy.gender).strip()
            rows += 1
            values.append((rowid + rows - 1, item.corpus, item.split, rows, _text(o.get("id")),
                           _number(o.get("duration")), _column(o, policy.speaker), gender, gender.lower(),
                           _column(o, policy.age), _column(o, policy.accent), _text(o.get("text")),
                           _text(o.get("text_normalized")), _text(o.get("audio_path")),
                           int(_number(o.get("sample_rate")) or 0)))
        db.executemany("INSERT INTO clips(rowid, corpus, split, n, id, duration, speaker, gender, gender_key, age, "
                       "accent, text, text_normalized, audio_path, sample_rate) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                       values)
        db.executemany(f'INSERT INTO "{fts}"(rowid, search) VALUES(?,?)', [(v[0], s) for v, s in zip(values, searches)])
    _finish_fts(db, fts)
    return reader.digest, rows, reader.bad


def build_rejects(db: sqlite3.Connection, item: Input, on_progress: Progress | None) -> tuple[str, int, int]:
    reader = _Reader(item, on_progress)
    rows = 0
    for batch in _batches(reader.objects()):
        db.executemany("INSERT INTO rejects VALUES(?,?,?,?,?,?,?,?,?)", [
            (item.corpus, _text(o.get("split")), _text(o.get("id")), _text(o.get("reason")) or "unknown",
             _text(o.get("detail")), _text(o.get("kind")), _text(o.get("source")), _text(o.get("member")),
             o.get("row") if isinstance(o.get("row"), int) else None) for _, _, _, o in batch])
        rows += len(batch)
    return reader.digest, rows, reader.bad


def turns(conversation: dict) -> dict[str, str]:
    """system / user / assistant text of a `messages` conversation (turns of one role joined)."""
    out: dict[str, list[str]] = {"system": [], "user": [], "assistant": []}
    messages = conversation.get("messages")
    for message in messages if isinstance(messages, list) else ():
        if isinstance(message, dict) and message.get("role") in out and isinstance(message.get("content"), str):
            out[message["role"]].append(message["content"])
    return {role: "\n\n".join(parts) for role, parts in out.items()}


def build_chat(db: sqlite3.Connection, item: Input, on_progress: Progress | None) -> tuple[str, int, int]:
    reader = _Reader(item, on_progress)
    fts = chat_fts_table(item.corpus)
    _create_fts(db, fts)
    forms = (lambda texts: [index_form(t) for t in texts]) if item.normalized else index_forms
    rowid = _next_rowid(db, "conversations")
    rows = 0
    for batch in _batches(reader.objects()):
        texts, values = [], []
        for number, offset, length, obj in batch:
            parts = turns(obj)
            both = parts["user"] + "\n" + parts["assistant"]
            texts.append(both)
            rows += 1
            values.append((rowid + rows - 1, item.corpus, rows, number, offset, length,
                           len(PLACEHOLDER.findall(both)), len(parts["user"]), len(parts["assistant"])))
        db.executemany("INSERT INTO conversations(rowid, corpus, n, line, offset, length, placeholders, user_chars, "
                       "assistant_chars) VALUES(?,?,?,?,?,?,?,?,?)", values)
        db.executemany(f'INSERT INTO "{fts}"(rowid, search) VALUES(?,?)',
                       [(v[0], s) for v, s in zip(values, forms(texts))])
    _finish_fts(db, fts)
    return reader.digest, rows, reader.bad


def build_eval(db: sqlite3.Connection, item: Input, on_progress: Progress | None) -> tuple[str, int, int]:
    reader = _Reader(item, on_progress)
    rows = 0
    for batch in _batches(reader.objects()):
        values = []
        for _, offset, length, o in batch:
            counts = (o.get("normalized") or {}).get("words") or [0, 0, 0, 0, 0]
            correct, sub, dele, ins, ref = (list(counts) + [0] * 5)[:5]
            errors = sub + dele + ins
            values.append((item.corpus, _text(o.get("id")), errors / max(ref, 1), errors, ref, sub, dele, ins,
                           1 if o.get("missing") else 0, offset, length))
        db.executemany("INSERT INTO eval_utterances VALUES(?,?,?,?,?,?,?,?,?,?,?)", values)
        rows += len(values)
    return reader.digest, rows, reader.bad


def summarize_clips(db: sqlite3.Connection, item: Input) -> dict[str, Any]:
    row = db.execute("SELECT count(*), coalesce(sum(duration), 0) / 3600.0, min(duration), max(duration), "
                     "count(DISTINCT nullif(speaker, '')) FROM clips WHERE corpus = ? AND split = ?",
                     (item.corpus, item.split)).fetchone()
    return dict(zip(("clips", "hours", "shortest", "longest", "speakers"), row))


def summarize_chat(db: sqlite3.Connection, item: Input) -> dict[str, Any]:
    row = db.execute("SELECT count(*), coalesce(sum(placeholders > 0), 0), coalesce(sum(placeholders), 0) "
                     "FROM conversations WHERE corpus = ?", (item.corpus,)).fetchone()
    return dict(zip(("conversations", "with_placeholders", "placeholders"), row))


def summarize_rejects(db: sqlite3.Connection, item: Input) -> dict[str, Any]:
    reasons = db.execute("SELECT reason, count(*) FROM rejects WHERE corpus = ? GROUP BY reason ORDER BY 2 DESC, 1",
                         (item.corpus,)).fetchall()
    return {"reasons": [list(r) for r in reasons]}


def summarize_eval(db: sqlite3.Connection, item: Input) -> dict[str, Any]:
    row = db.execute("SELECT count(*), coalesce(sum(errors > 0), 0) FROM eval_utterances WHERE run = ?",
                     (item.corpus,)).fetchone()
    return dict(zip(("utterances", "with_errors"), row))


SUMMARIES = {"clips": summarize_clips, "chat": summarize_chat, "rejects": summarize_rejects, "eval": summarize_eval}

BUILDERS: dict[str, Callable[[sqlite3.Connection, Input, Progress | None], tuple[str, int, int]]] = {
    "clips": build_clips, "rejects": build_rejects, "chat": build_chat, "eval": build_eval}
