"""The explore index: one SQLite database (FTS5 for text), built once per input file, rebuilt when it changes.

Where: `<root>/.persian-data/explore/index.sqlite`, beside the tool's other state (never counted,
never checksummed). When that folder cannot be written (a read-only root, a shared copy), under the
user's cache instead: `$XDG_CACHE_HOME` (or `~/.cache`)`/persian-data/explore/<hash of the root's
path>/`, and failing that a temporary folder. The data itself is only ever read.

When: every input (a manifest, a rejects file, `combined.jsonl`, an eval run's
`utterances.jsonl`) has a row in `sources` with its size, mtime and inode and its sha256. An
unchanged stat means an unchanged file; a changed stat re-hashes it, and only a changed sha256
rebuilds that input's rows (a `touch` costs one hash, no rebuild). Inputs that disappeared lose
their rows. The check runs at start and again, throttled, before pages that read the input, so a
`prepare` run while explore is open shows up on the next page.

Why SQLite: in the standard library, an index on disk (memory stays flat whatever the corpus
size), FTS5 for word search over 281k conversations in milliseconds, and concurrent readers
(WAL) while one writer rebuilds.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from ..atomic import sha256_of
from ..catalog import root_sources
from ..layout import STATE_DIR
from ..source import Source
from . import sources as found
from .builders import BUILDERS, SUMMARIES, Input, chat_fts_table, clips_fts_table

log = logging.getLogger("persian_data.explore")

SCHEMA_VERSION = "5"  # 5: corpora by their keys, columns by their corpus's policy
INDEX_NAME = "index.sqlite"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS sources(
    name TEXT PRIMARY KEY, kind TEXT NOT NULL, path TEXT NOT NULL, size INTEGER, mtime_ns INTEGER, ino INTEGER,
    sha256 TEXT, rows INTEGER, bad_lines INTEGER, built_at REAL, seconds REAL, summary TEXT);
CREATE TABLE IF NOT EXISTS clips(
    corpus TEXT NOT NULL, split TEXT NOT NULL, n INTEGER NOT NULL, id TEXT NOT NULL, duration REAL, speaker TEXT,
    gender TEXT, gender_key TEXT, age TEXT, accent TEXT, text TEXT, text_normalized TEXT, audio_path TEXT,
    sample_rate INTEGER);
CREATE INDEX IF NOT EXISTS clips_split_n ON clips(corpus, split, n);
CREATE INDEX IF NOT EXISTS clips_split_duration ON clips(corpus, split, duration);
CREATE INDEX IF NOT EXISTS clips_split_gender ON clips(corpus, split, gender_key, duration);
CREATE INDEX IF NOT EXISTS clips_split_speaker ON clips(corpus, split, speaker, duration);
CREATE INDEX IF NOT EXISTS clips_id ON clips(corpus, id);
CREATE TABLE IF NOT EXISTS rejects(
    corpus TEXT NOT NULL, split TEXT, id TEXT, reason TEXT, detail TEXT, kind TEXT, source TEXT, member TEXT,
    row INTEGER);
CREATE INDEX IF NOT EXISTS rejects_corpus ON rejects(corpus, reason);
CREATE TABLE IF NOT EXISTS conversations(
    corpus TEXT NOT NULL, n INTEGER NOT NULL, line INTEGER NOT NULL, offset INTEGER NOT NULL, length INTEGER NOT NULL,
    placeholders INTEGER NOT NULL, user_chars INTEGER, assistant_chars INTEGER);
CREATE INDEX IF NOT EXISTS conversations_n ON conversations(corpus, n);
CREATE INDEX IF NOT EXISTS conversations_masked ON conversations(corpus, (placeholders > 0), n);
CREATE TABLE IF NOT EXISTS eval_utterances(
    run TEXT NOT NULL, id TEXT NOT NULL, wer REAL, errors INTEGER, ref_words INTEGER, substitutions INTEGER,
    deletions INTEGER, insertions INTEGER, missing INTEGER, offset INTEGER NOT NULL, length INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS eval_run_wer ON eval_utterances(run, wer DESC, errors DESC);
CREATE INDEX IF NOT EXISTS eval_run_id ON eval_utterances(run, id);
"""


def state_dir_candidates(root: Path) -> list[Path]:
    """Where the index may live, best first (see the module's docstring)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    key = hashlib.sha256(str(root.resolve()).encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return [root / STATE_DIR / "explore", cache / "persian-data" / "explore" / key]


def _writable_dir(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-", delete=True)
        probe.close()
        return True
    except OSError:
        return False


def choose_location(root: Path) -> Path:
    for folder in state_dir_candidates(root):
        if _writable_dir(folder):
            return folder / INDEX_NAME
    folder = Path(tempfile.mkdtemp(prefix="persian-data-explore-"))
    log.warning("explore: no writable place for the index under the root or the cache; using %s (lost at exit)",
                folder)
    return folder / INDEX_NAME


class Index:
    """The database and its freshness. Readers call `reader()`; `refresh()` rebuilds what changed.

    `catalog`: the root's corpora (default: the five and those its persian-data.toml declares)."""

    def __init__(self, root: Path, path: Path | None = None, *, catalog: tuple[Source, ...] | None = None) -> None:
        self.root = Path(root).absolute()
        self.catalog = tuple(catalog) if catalog is not None else root_sources(self.root)
        self.path = path or choose_location(self.root)
        self._write_lock = threading.Lock()
        self._local = threading.local()
        self._last_check: dict[str, float] = {}
        self.problems: dict[str, str] = {}  # input name -> why it could not be indexed
        self._open_schema()

    def _open_schema(self) -> None:
        """The tables, from an empty file; an index of another schema version is deleted and rebuilt."""
        with self._writer() as db:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            version = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone() if "meta" in tables else None
        if tables and (version is None or version[0] != SCHEMA_VERSION):
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        with self._writer() as db:
            db.executescript(SCHEMA)
            db.execute("INSERT OR REPLACE INTO meta VALUES('schema', ?)", (SCHEMA_VERSION,))

    # -- connections ---------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=60, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA cache_size=-16000")  # 16 MB per connection: memory stays flat
        db.execute("PRAGMA temp_store=MEMORY")
        db.row_factory = sqlite3.Row
        return db

    @contextmanager
    def _writer(self) -> Iterator[sqlite3.Connection]:
        with self._write_lock:
            db = self._connect()
            try:
                yield db
            finally:
                db.close()

    def reader(self) -> sqlite3.Connection:
        """This thread's read connection (reused across requests on the same worker thread)."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._connect()
            db.execute("PRAGMA query_only=1")
            self._local.db = db
        return db

    # -- what is on disk -----------------------------------------------------------------------

    def inputs(self, kinds: tuple[str, ...] = ("clips", "rejects", "chat", "eval")) -> list[Input]:
        out: list[Input] = []
        if "clips" in kinds or "rejects" in kinds:
            for corpus in found.speech_corpora(self.root, self.catalog):
                if "clips" in kinds:
                    out += [Input(f"clips:{corpus.key}:{split}", "clips", path, corpus.key, split, policy=corpus.policy)
                            for split, path in corpus.manifests.items()]
                if "rejects" in kinds and corpus.rejects is not None:
                    out.append(Input(f"rejects:{corpus.key}", "rejects", corpus.rejects, corpus.key))
        if "chat" in kinds:
            out += [Input(f"chat:{c.key}", "chat", c.combined, c.key, normalized=found.written_normalized(c))
                    for c in found.chat_corpora(self.root, self.catalog)]
        if "eval" in kinds:
            out += [Input(f"eval:{r.name}", "eval", r.utterances, r.name) for r in found.eval_runs(self.root)]
        return out

    def refresh(self, kinds: tuple[str, ...] = ("clips", "rejects", "chat", "eval"), *, every: float = 0.0,
                on_progress: Callable[[Input, int, int], None] | None = None) -> list[str]:
        """Bring the rows of `kinds` up to date with the files; the names of the inputs rebuilt.

        every: skip the check when the same kinds were checked less than this many seconds ago."""
        key = ",".join(kinds)
        now = time.monotonic()
        if every and now - self._last_check.get(key, -1e9) < every:
            return []
        self._last_check[key] = now
        rebuilt: list[str] = []
        with self._writer() as db:
            known = {r["name"]: r for r in db.execute("SELECT * FROM sources WHERE kind IN (%s)"
                                                      % ",".join("?" * len(kinds)), kinds)}
            present = self.inputs(kinds)
            for item in present:
                if self._fresh(db, item, known.get(item.name)):
                    continue
                self._rebuild(db, item, on_progress)
                rebuilt.append(item.name)
            for name in set(known) - {i.name for i in present}:
                self._forget(db, known[name])
                rebuilt.append(name)
        return rebuilt

    def _fresh(self, db: sqlite3.Connection, item: Input, row: sqlite3.Row | None) -> bool:
        try:
            st = item.path.stat()
        except OSError:
            return row is None
        if row is None:
            return False
        if (row["size"], row["mtime_ns"], row["ino"]) == (st.st_size, st.st_mtime_ns, st.st_ino):
            return True
        if sha256_of(item.path) == row["sha256"]:  # touched, copied back, same bytes: no rebuild
            db.execute("UPDATE sources SET size=?, mtime_ns=?, ino=? WHERE name=?",
                       (st.st_size, st.st_mtime_ns, st.st_ino, item.name))
            return True
        return False

    def _rebuild(self, db: sqlite3.Connection, item: Input, on_progress) -> None:
        began = time.perf_counter()
        st = item.path.stat()
        builder = BUILDERS[item.kind]
        db.execute("BEGIN IMMEDIATE")
        try:
            self._drop_rows(db, item.kind, item.corpus, item.split)
            digest, rows, bad = builder(db, item, on_progress)
            summary = json.dumps(SUMMARIES[item.kind](db, item))  # what the pages show per input, counted once
            db.execute("INSERT OR REPLACE INTO sources VALUES(?,?,?,?,?,?,?,?,?,?,?,?)",
                       (item.name, item.kind, str(item.path), st.st_size, st.st_mtime_ns, st.st_ino, digest, rows,
                        bad, time.time(), time.perf_counter() - began, summary))
            db.execute("COMMIT")
            self.problems.pop(item.name, None)
        except Exception as exc:  # noqa: BLE001 - one unreadable input must not take the others down
            db.execute("ROLLBACK")
            self.problems[item.name] = f"{type(exc).__name__}: {exc}"
            log.warning("explore: could not index %s (%s)", item.path, self.problems[item.name])
            return
        log.info("explore: indexed %s: %d rows%s in %.1f s", item.name, rows,
                 f", {bad} unreadable line(s) skipped" if bad else "", time.perf_counter() - began)

    def _forget(self, db: sqlite3.Connection, row: sqlite3.Row) -> None:
        parts = row["name"].split(":")
        db.execute("BEGIN IMMEDIATE")
        self._drop_rows(db, row["kind"], parts[1], parts[2] if len(parts) > 2 else None)
        db.execute("DELETE FROM sources WHERE name=?", (row["name"],))
        db.execute("COMMIT")

    @staticmethod
    def _drop_rows(db: sqlite3.Connection, kind: str, corpus: str, split: str | None) -> None:
        if kind == "clips":
            db.execute(f'DROP TABLE IF EXISTS "{clips_fts_table(corpus, split)}"')
            db.execute("DELETE FROM clips WHERE corpus=? AND split=?", (corpus, split))
        elif kind == "rejects":
            db.execute("DELETE FROM rejects WHERE corpus=?", (corpus,))
        elif kind == "chat":
            db.execute(f'DROP TABLE IF EXISTS "{chat_fts_table(corpus)}"')
            db.execute("DELETE FROM conversations WHERE corpus=?", (corpus,))
        elif kind == "eval":
            db.execute("DELETE FROM eval_utterances WHERE run=?", (corpus,))

    # -- what the pages show about the index itself ----------------------------------------------

    def source_rows(self) -> dict[str, sqlite3.Row]:
        return {r["name"]: r for r in self.reader().execute("SELECT * FROM sources")}

    def summary(self, name: str) -> dict:
        """The counts stored for one input when it was indexed ({} when it is not indexed)."""
        row = self.reader().execute("SELECT summary FROM sources WHERE name = ?", (name,)).fetchone()
        return json.loads(row[0]) if row and row[0] else {}
