"""What each page reads from the index (and, for long texts, from the file at the indexed offset).

Every query is bounded: a page of rows by an index (`LIMIT ... OFFSET`), counts capped where an
FTS match could be very wide, long texts read back only for the rows shown. That is what keeps
every page within a few milliseconds of SQLite work at 48,904 clips and 281k conversations.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from .builders import chat_fts_table, clips_fts_table

if TYPE_CHECKING:
    from .index import Index
    from .sources import SpeechCorpus
from .search import parse_query

COUNT_CAP = 10_000  # "10,000+" beyond this: exact counts of wide matches cost more than the page
# Ties in duration fall in file order: rowid follows the line order within a split, and it is the last
# column of every index on clips, so these orders are read straight off an index (no sort, LIMIT stops early).
SORTS = {"": "c.n", "duration": "c.duration, c.rowid", "-duration": "c.duration DESC, c.rowid DESC"}


@dataclass
class Page:
    rows: list[dict[str, Any]]
    total: int
    capped: bool
    page: int
    per_page: int
    words: list[str] = field(default_factory=list)  # normalized query words, for highlighting

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def _count(db: sqlite3.Connection, sql: str, args: list[Any], cap: int | None = COUNT_CAP) -> tuple[int, bool]:
    if cap is None:
        return db.execute(f"SELECT count(*) {sql}", args).fetchone()[0], False
    n = db.execute(f"SELECT count(*) FROM (SELECT 1 {sql} LIMIT {cap + 1})", args).fetchone()[0]
    return min(n, cap), n > cap


def _has_table(db: sqlite3.Connection, name: str) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (name,)).fetchone() is not None


def _window(ordinal: str | None, page: int, per_page: int) -> tuple[str, list[Any], int]:
    """(extra WHERE, its args, OFFSET). An unfiltered page in file order is a range of the ordinal
    column (an index seek, whatever the page: `ordinal` names it); anything else is LIMIT/OFFSET."""
    if ordinal is not None:
        return f" AND {ordinal} > ?", [(page - 1) * per_page], 0
    return "", [], (page - 1) * per_page


@dataclass(frozen=True)
class ClipFilter:
    corpus: str
    split: str
    q: str = ""
    gender: str = ""
    speaker: str = ""
    min_duration: float | None = None
    max_duration: float | None = None
    sort: str = ""


CLIP_COLUMNS = "c.rowid, c.id, c.duration, c.speaker, c.gender, c.age, c.accent, c.text, c.text_normalized, " \
               "c.audio_path, c.sample_rate"


def clips(db: sqlite3.Connection, f: ClipFilter, page: int, per_page: int = 50) -> Page:
    q = f.q.strip()
    if q and " " not in q:  # a clip id, typed or pasted as it is
        row = db.execute(f"SELECT {CLIP_COLUMNS} FROM clips c WHERE c.corpus = ? AND c.split = ? AND c.id = ?",
                         (f.corpus, f.split, q)).fetchone()
        if row is not None:
            return Page([dict(row)], 1, False, 1, per_page, [])
    where = ["c.corpus = ?", "c.split = ?"]
    args: list[Any] = [f.corpus, f.split]
    for column, value in (("c.gender_key = ?", f.gender.lower()), ("c.speaker = ?", f.speaker),
                          ("c.duration >= ?", f.min_duration), ("c.duration <= ?", f.max_duration)):
        if value not in (None, ""):
            where.append(column)
            args.append(value)
    match, words = parse_query(q)
    if q and match is None:
        return Page([], 0, False, page, per_page, [])
    order = SORTS.get(f.sort, SORTS[""])
    if match is not None:
        # FTS first (CROSS JOIN keeps it the outer loop); the table holds this split only, in file order
        fts = clips_fts_table(f.corpus, f.split)
        if not _has_table(db, fts):  # the split could not be indexed (the page says why)
            return Page([], 0, False, page, per_page, words)
        sql = f'FROM "{fts}" f CROSS JOIN clips c ON c.rowid = f.rowid WHERE "{fts}" MATCH ? AND ' + " AND ".join(where)
        args = [match, *args]
        order = "f.rowid" if order == SORTS[""] else order
        if len(where) == 2:  # no other filter: the count needs the FTS index only
            total, capped = _count(db, f'FROM "{fts}" WHERE "{fts}" MATCH ?', [match], cap=None)
        else:
            total, capped = _count(db, sql, args, cap=None)
    else:
        sql = f"FROM clips c WHERE {' AND '.join(where)}"
        total, capped = _count(db, sql, args, cap=None)  # at most one split's clips: exact counts are cheap
    extra, extra_args, offset = _window("c.n" if order == "c.n" and len(where) == 2 else None, page, per_page)
    rows = [dict(r) for r in db.execute(f"SELECT {CLIP_COLUMNS} {sql}{extra} ORDER BY {order} LIMIT ? OFFSET ?",
                                        [*args, *extra_args, per_page, offset])]
    return Page(rows, total, capped, page, per_page, words)


def split_summary(index: "Index", corpus: "SpeechCorpus") -> dict[str, dict[str, Any]]:
    """split -> clips, hours, shortest, longest, speakers (counted when the split was indexed)."""
    return {split: index.summary(f"clips:{corpus.key}:{split}") for split in corpus.manifests}


def genders(db: sqlite3.Connection, corpus: str, split: str) -> list[tuple[str, int]]:
    return [(r[0], r[1]) for r in db.execute(
        "SELECT gender_key, count(*) FROM clips WHERE corpus = ? AND split = ? AND gender_key != '' "
        "GROUP BY gender_key ORDER BY 2 DESC", (corpus, split))]


def clips_by_ids(db: sqlite3.Connection, corpus: str, ids: list[str]) -> dict[str, dict[str, Any]]:
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    return {r["id"]: dict(r) for r in db.execute(
        f"SELECT id, duration, audio_path FROM clips WHERE corpus = ? AND id IN ({marks})", [corpus, *ids])}


def reject_reasons(index: "Index", corpus: str) -> list[tuple[str, int]]:
    return [tuple(r) for r in index.summary(f"rejects:{corpus}").get("reasons", [])]


def rejects(db: sqlite3.Connection, corpus: str, reason: str, page: int, per_page: int = 50) -> Page:
    where, args = "corpus = ?", [corpus]
    if reason:
        where += " AND reason = ?"
        args.append(reason)
    total = db.execute(f"SELECT count(*) FROM rejects WHERE {where}", args).fetchone()[0]
    rows = [dict(r) for r in db.execute(f"SELECT * FROM rejects WHERE {where} ORDER BY rowid LIMIT ? OFFSET ?",
                                        [*args, per_page, (page - 1) * per_page])]
    return Page(rows, total, False, page, per_page)


def _read_lines(path: Path, spans: list[tuple[int, int]]) -> list[dict]:
    out = []
    with open(path, "rb") as f:
        for offset, length in spans:
            f.seek(offset)
            try:
                obj = orjson.loads(f.read(length))
            except orjson.JSONDecodeError:  # the file changed under the index: the next refresh rebuilds it
                obj = {}
            out.append(obj if isinstance(obj, dict) else {})
    return out


def conversations(db: sqlite3.Connection, corpus: str, path: Path, q: str, placeholders_only: bool, page: int,
                  per_page: int = 20) -> Page:
    match, words = parse_query(q)
    if q.strip() and match is None:
        return Page([], 0, False, page, per_page, [])
    args: list[Any] = [corpus]
    where = "c.corpus = ?"
    if placeholders_only:
        where += " AND (c.placeholders > 0) = 1"  # the expression of the conversations_masked index
    if match is not None:
        # FTS first: CROSS JOIN keeps the FTS table the outer loop, and its rowid order is the page order.
        # (Left to itself the planner may walk the conversations and probe the index per row.)
        fts = chat_fts_table(corpus)
        if not _has_table(db, fts):
            return Page([], 0, False, page, per_page, words)
        source = f'FROM "{fts}" f CROSS JOIN conversations c ON c.rowid = f.rowid WHERE "{fts}" MATCH ? AND {where}'
        args = [match, *args]
        order = "f.rowid"
    else:
        source = f"FROM conversations c WHERE {where}"
        order = "c.n"
    total, capped = _count(db, source, args)
    unfiltered = match is None and not placeholders_only
    extra, extra_args, offset = _window("c.n" if unfiltered else None, page, per_page)
    found = [dict(r) for r in db.execute(
        f"SELECT c.rowid, c.line, c.offset, c.length, c.placeholders {source}{extra} ORDER BY {order} LIMIT ? OFFSET ?",
        [*args, *extra_args, per_page, offset])]
    for row, obj in zip(found, _read_lines(path, [(r["offset"], r["length"]) for r in found])):
        row["conversation"] = obj
    return Page(found, total, capped, page, per_page, words)


def conversation_counts(index: "Index", corpus: str) -> dict[str, int]:
    found = index.summary(f"chat:{corpus}")
    return {key: int(found.get(key, 0)) for key in ("conversations", "with_placeholders", "placeholders")}


EVAL_SORTS = {"wer": "wer DESC, errors DESC, rowid", "errors": "errors DESC, wer DESC, rowid", "id": "id",
              "best": "wer, rowid"}


def eval_utterances(db: sqlite3.Connection, run: str, path: Path, sort: str, errors_only: bool, page: int,
                    per_page: int = 25) -> Page:
    where, args = "run = ?", [run]
    if errors_only:
        where += " AND errors > 0"
    total = db.execute(f"SELECT count(*) FROM eval_utterances WHERE {where}", args).fetchone()[0]
    rows = [dict(r) for r in db.execute(
        f"SELECT * FROM eval_utterances WHERE {where} ORDER BY {EVAL_SORTS.get(sort, EVAL_SORTS['wer'])} "
        f"LIMIT ? OFFSET ?", [*args, per_page, (page - 1) * per_page])]
    for row, obj in zip(rows, _read_lines(path, [(r["offset"], r["length"]) for r in rows])):
        row["utterance"] = obj
    return Page(rows, total, False, page, per_page)


_COMPARED: "OrderedDict[tuple, list[tuple]]" = OrderedDict()  # (a, b, their digests) -> rows, largest change first
_COMPARED_LOCK = threading.Lock()


def _compared_order(db: sqlite3.Connection, a: str, b: str, key: tuple) -> list[tuple]:
    """Every utterance scored in both runs, where they differ most first; sorted once per pair of files
    (10k utterances: ~50 ms), then every page of the comparison is a slice."""
    with _COMPARED_LOCK:
        if key in _COMPARED:
            _COMPARED.move_to_end(key)
            return _COMPARED[key]
    rows = db.execute(
        "SELECT x.id, x.wer, y.wer, x.offset, x.length, y.offset, y.length FROM eval_utterances x "
        "JOIN eval_utterances y ON y.run = ? AND y.id = x.id WHERE x.run = ? "
        "ORDER BY abs(y.wer - x.wer) DESC, x.wer DESC, x.rowid", (b, a)).fetchall()
    rows = [tuple(r) for r in rows]
    with _COMPARED_LOCK:
        _COMPARED[key] = rows
        while len(_COMPARED) > 4:
            _COMPARED.popitem(last=False)
    return rows


def compared_utterances(db: sqlite3.Connection, a: str, a_path: Path, b: str, b_path: Path, page: int,
                        per_page: int = 20, *, digests: tuple[str, str] = ("", "")) -> Page:
    """Utterances scored in both runs, where they differ most first."""
    ordered = _compared_order(db, a, b, (a, b, *digests))
    window = ordered[(page - 1) * per_page: page * per_page]
    a_objs = _read_lines(a_path, [(r[3], r[4]) for r in window])
    b_objs = _read_lines(b_path, [(r[5], r[6]) for r in window])
    rows = [{"id": r[0], "wer_a": r[1], "wer_b": r[2], "a": ua, "b": ub} for r, ua, ub in zip(window, a_objs, b_objs)]
    return Page(rows, len(ordered), False, page, per_page)


def eval_summary(index: "Index", run: str) -> dict[str, Any]:
    return index.summary(f"eval:{run}")
