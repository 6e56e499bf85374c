"""Chat corpora as chat-format JSONL, Persian-normalized, streaming.

Input: a chat corpus's data files, as its reader (`Source.reader`, from `persian_data.corpora`)
finds and reads them. The specification's corpus (the default): every ``*.json`` file under
``datasets/text/persian_conversation/data`` (natural order: ``dadrah_dataset.json``,
``...1-1000_10000``, ``...1-10000_100000``, ``...1-100000_276342``, then any others), each ONE
JSON array of rows ``[title, question, answers, keywords]``; a declared corpus's JSON arrays or
JSON lines (shapes ``chat-json``, ``chat-jsonl``). The reader turns each row into a neutral record
(title, question, answers) or the reason it makes no conversation; everything below works on those.
The raw files are only read, never modified.

Output, beside the corpus's ``data/`` (paths from `Layout`):
* ``combined.jsonl``: one conversation per line, exactly
  ``{"messages":[{"role":"system","content":…},{"role":"user","content":…},
  {"role":"assistant","content":…}]}``, UTF-8, no ``\\u`` escapes for non-ASCII text;
* ``train.jsonl`` / ``valid.jsonl`` when ``valid_fraction`` is set (stale ones are removed
  when it is not, so the three files always come from the same run);
* ``combined.stats.json``: rows read per file, conversations written, rows skipped by reason,
  duplicates, characters, the split sizes and the options used;
* ``combined.rejects.jsonl``: one line per skipped row ``{"file","index","reason","row"}``
  (the raw row as parsed), and one line per damaged file (``index`` null, ``byte_offset``).
Every output is written to a temp file in ``.persian-data/tmp`` and renamed into place, the stats
last: a killed run leaves the previous outputs (or none), never a half-written file.

Policies
--------
* **User turn (title rule).** The question, with the title in front (``title + "\\n\\n" +
  question``) only when the title adds something: when, ignoring spaces, newlines, ZWNJ and
  the punctuation around the title, the title is not already contained in the question. When the question
  is instead contained in the title (a one-line question that only repeats the title), the
  title alone is used. An empty title is ignored.
* **Assistant turn, ``answers="first"`` (default).** The first answer that is a non-empty string
  after normalization; empty or non-string answers before it are skipped (and counted in
  ``answers_skipped``).
* **``answers="all"``.** One conversation per usable answer, each with the same system and
  user turns. Every answer on the site is a separate lawyer's complete reply, so joining them
  would invent a multi-voice answer; separate conversations keep each one as written. (The
  split hashes the user turn, so all answers of one question land in the same split.)
* **System turn.** ``ChatOptions.system_prompt`` (default `DEFAULT_SYSTEM_PROMPT`, the legal
  assistant of the specification's corpus; a declared corpus's own ``system_prompt`` replaces that
  default), normalized like the rest when ``normalize`` is on.
* **``normalize=False``** keeps the text as it is, only trimmed (lone surrogates, which cannot
  be UTF-8, are dropped); control characters then appear as JSON escapes (``\\u0007``), the
  only ``\\u`` escapes the output can hold.
* **Rows that cannot make a conversation** are skipped, counted by reason and written to the
  rejects file: ``not_a_list``, ``wrong_item_count`` (not 3 or 4 items), ``non_string_field``
  (title or question not a string, or no answer that is a string), ``answers_not_list`` (null,
  a number, ...), ``no_answers`` (an empty list), ``empty_question`` / ``empty_answer`` (empty
  after normalization); a declared corpus's reader adds its own (``not_an_object``,
  ``missing_field``, ``not_single_turn``). ``keywords`` is not used and not checked.
* **Rows kept in a tolerated form** are counted in ``rows_accepted`` (per file and in total):
  ``answer_not_list`` (``[title, question, "answer", keywords]``: one answer as a bare string,
  as code in the wild guards for) and ``missing_keywords`` (``[title, question, answers]``).
* **Duplicates.** Conversations whose (user, assistant) pair is identical after normalization
  are written once; later copies are counted (per file and in total). Kept in memory as a set of
  16-byte blake2b digests of the two turns' JSON: ~100 bytes a conversation.
* **Damaged files** (invalid UTF-8, invalid JSON, a truncated array): the whole file is skipped
  and the run goes on. Rows of that file converted before the damage was found are taken back
  out of every output, so a file contributes all its rows or none, and the output does not
  depend on where in a file the damage happens to sit. The log names the file, the reason and
  the byte offset; the stats list it under ``files_rejected`` and count its parsed rows under
  ``skipped["file_" + reason]``; the rejects file holds one line for it.
* **Split.** ``valid_fraction=F`` puts a conversation in ``valid`` when its blake2b-64 digest of
  the user turn (the JSON ``{"role":"user","content":…}`` exactly as written in the line), read
  as a big-endian integer, is below ``F * 2**64``.
  A pure function of the text: the same on every rerun and machine (for one Unicode version
  of Python's ``unicodedata``, which the normalizer uses).

Streaming
---------
Memory does not grow with the corpus. The main process reads each file in pieces of about
4 MiB, cut right after a row separator (``]], [`` as ``json.dump`` writes it), and hands the
pieces to worker processes (two on this 2-core machine, for inputs of 48 MiB and more). A worker
decodes its piece (strict UTF-8), parses it row by row with the json C scanner
(``JSONDecoder.raw_decode``), and does the per-row work (validate, normalize, title and answers
rules, serialize, hash). The main process takes the results back in file order, drops
duplicates and writes, so the output is the same whatever the number of workers (or the engine:
with ``--engine ray`` the pieces are Ray tasks on a cluster, `persian_data.engine`). Bytes that
only look like a separator (inside a string, or in a malformed row) make a piece end inside a
row; the worker says so, and the main process parses that piece again joined with the next.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections import deque
from concurrent.futures.process import BrokenProcessPool
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import IO, Any, Iterator

import orjson

from ..atomic import atomic_write_bytes, atomic_writer
from ..catalog import CHAT_SOURCE, Source
from ..corpora.chat_json import CHUNK_BYTES, MAX_PIECE_BYTES, RawFileError, iter_raw_rows
from ..engine.local import LocalEngine
from ..errors import PersianDataError
from ..layout import Layout
from ..progress import progress
from ..provenance import input_record
from .chat_convert import (DEFAULT_SYSTEM_PROMPT, ROLES, ChatOptions, _Converter, _Local, _work_piece,  # noqa: F401
                           _worker_init, _worker_piece, check_conversation, user_turn)
from .chat_clean import mask_raw
from .chat_gates import chat_gates  # noqa: F401  (registers the gate)
from .chat_near_dup import Candidates, collapse_and_copy
from .chat_review import REVIEW_EXAMPLES, write_review

__all__ = ["DEFAULT_SYSTEM_PROMPT", "ROLES", "ChatError", "ChatOptions", "ChatSourceMissingError", "ChatStats",
           "RawFileError", "chat_gates", "check_conversation", "iter_conversations", "iter_raw_rows",
           "prepare_chat", "raw_files", "user_turn"]

LOG = logging.getLogger("persian_data.prepare.chat")
STATS_VERSION = 1
AUTO_WORKERS_MIN_BYTES = 48 << 20  # below this much input, workers cost more than they save

SKIP_REASONS = (
    "not_a_list",
    "wrong_item_count",
    "non_string_field",
    "answers_not_list",
    "no_answers",
    "empty_question",
    "empty_answer",
)
RULE_SKIP_REASONS = (  # rows the cleaning rules (chat_clean) skip
    "pii",  # --pii drop: the row holds personal data
    "non_answer",  # every answer was a non-answer
    "not_persian",  # the user turn is not mostly Persian script
)


class ChatSourceMissingError(PersianDataError):
    """The raw conversational dataset is not there (fetch the text source first)."""


class ChatError(PersianDataError):
    """The chat corpus cannot be built (e.g. every raw file is damaged)."""


@dataclass
class FileStats:
    file: str
    bytes: int = 0
    rows_read: int = 0
    rows_converted: int = 0  # rows that gave at least one conversation (before dedup)
    conversations_written: int = 0
    duplicates: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    answers_skipped: dict[str, int] = field(default_factory=dict)
    rows_accepted: dict[str, int] = field(default_factory=dict)  # rows kept in a tolerated form, by form
    status: str = "ok"  # or "rejected"
    error: dict[str, Any] | None = None


@dataclass
class ChatStats:
    options: dict[str, Any]
    files: list[FileStats] = field(default_factory=list)
    rows_read: int = 0
    written: int = 0
    duplicates: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    answers_skipped: dict[str, int] = field(default_factory=dict)
    rows_accepted: dict[str, int] = field(default_factory=dict)
    characters: dict[str, int] = field(default_factory=lambda: {"system": 0, "user": 0, "assistant": 0, "total": 0})
    splits: dict[str, int] | None = None
    files_rejected: list[str] = field(default_factory=list)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)  # file name -> lines, sha256
    # the cleaning rules (chat_clean): counts only, never the personal data itself
    pii_found: dict[str, int] = field(default_factory=dict)
    pii_masked: dict[str, int] = field(default_factory=dict)
    answers_dropped: dict[str, int] = field(default_factory=dict)
    contact_lines_removed: int = 0
    answers_trimmed: int = 0
    near_duplicates: dict[str, Any] | None = None
    examples: dict[str, list[dict[str, str]]] = field(default_factory=dict)  # for the review sample
    inputs: dict[str, str] = field(default_factory=dict)  # raw file -> sha256 (provenance: stale outputs)
    seconds: float = 0.0  # wall time; logged, not written to the stats file (reruns are identical)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATS_VERSION,
            "written": self.written,
            "rows_read": self.rows_read,
            "duplicates": self.duplicates,
            "skipped": dict(sorted(self.skipped.items())),
            "skipped_total": sum(self.skipped.values()),
            "answers_skipped": dict(sorted(self.answers_skipped.items())),
            "rows_accepted": dict(sorted(self.rows_accepted.items())),
            "characters": self.characters,
            "splits": self.splits,
            "files_rejected": self.files_rejected,
            "outputs": self.outputs,
            "rules": {
                "pii": {"mode": self.options.get("pii"), "found": dict(sorted(self.pii_found.items())),
                        "masked": dict(sorted(self.pii_masked.items())),
                        "conversations_dropped": self.skipped.get("pii", 0)},
                "answers_dropped": dict(sorted(self.answers_dropped.items())),
                "answers_trimmed": self.answers_trimmed,
                "contact_lines_removed": self.contact_lines_removed,
                "non_answer_rows_dropped": self.skipped.get("non_answer", 0),
                "not_persian_rows_dropped": self.skipped.get("not_persian", 0),
                "near_duplicates": self.near_duplicates,
            },
            "files": [
                {**asdict(f), "skipped": dict(sorted(f.skipped.items())),
                 "answers_skipped": dict(sorted(f.answers_skipped.items())),
                 "rows_accepted": dict(sorted(f.rows_accepted.items()))}
                for f in self.files
            ],
            "options": self.options,
            "inputs": self.inputs,
        }


def _dumps_reject(rec: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(rec) + b"\n"
    except (TypeError, orjson.JSONEncodeError):  # lone surrogates, huge ints: escape everything
        return json.dumps(rec, ensure_ascii=True).encode("ascii") + b"\n"


def _add(d: dict[str, int], key: str, n: int = 1) -> None:
    d[key] = d.get(key, 0) + n


def _pick_workers(options: ChatOptions, total_bytes: int) -> int:
    if options.workers is not None:
        return max(0, int(options.workers))
    if total_bytes < AUTO_WORKERS_MIN_BYTES:
        return 0
    return max(1, min(2, os.cpu_count() or 1))


class _Writers:
    """The output temp files, hashed as they are written, with positions to roll a damaged file
    back to. `digests` gets each output's sha256 once it is in place (for the stats, the gate and
    the run's hash cache: nothing is read back)."""

    def __init__(self, stack: ExitStack, layout: Layout, source: Source, split: bool, cache=None,
                 staged: bool = False) -> None:
        tmp = layout.tmp_dir
        self.digests: dict[str, str] = {}

        def placed(path: Path, sha256: str) -> None:
            self.digests[path.name] = sha256
            if cache is not None:
                cache.placed(path, sha256)

        def open_(final: Path):
            return stack.enter_context(atomic_writer(final, tmp, on_placed=placed))

        self.open_final = open_
        self.staged_path: Path | None = None
        self.rejects = open_(layout.chat_rejects(source))
        if staged:  # near-dup: pass 1 writes here; pass 2 copies what stays to the outputs
            tmp.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=tmp, prefix="chat.staged.", suffix=".tmp")
            self.staged_path = Path(name)
            stack.callback(self.staged_path.unlink, missing_ok=True)
            self.combined = stack.enter_context(os.fdopen(fd, "w+b"))
            self.train = self.valid = None
        else:
            self.combined = open_(layout.chat_combined(source))
            self.train = open_(layout.chat_split("train", source)) if split else None
            self.valid = open_(layout.chat_split("valid", source)) if split else None

    def handles(self) -> list[IO]:
        return [h for h in (self.combined, self.rejects, self.train, self.valid) if h is not None]

    def mark(self) -> list[int]:
        return [h.tell() for h in self.handles()]

    def rollback(self, marks: list[int]) -> None:
        for h, pos in zip(self.handles(), marks):
            _truncate_hashed(h, pos)


def _truncate_hashed(handle, position: int) -> None:
    """Roll an output back to `position`: a hashing writer (`atomic_writer(on_placed=...)`) also
    rebuilds its digest; a plain staging file is only truncated."""
    if hasattr(handle, "truncate_to"):
        handle.truncate_to(position)
        return
    handle.flush()
    handle.truncate(position)
    handle.seek(position)


def raw_files(layout: Layout, source: Source = CHAT_SOURCE) -> list[Path]:
    """A chat corpus's data files, in the order they are read (default: the specification's corpus)."""
    return source.reader.data_files(layout.content_dir(source))


def prepare_chat(layout: Layout, options: ChatOptions = ChatOptions(), *,
                 logger: logging.Logger | None = None, cache=None, source: Source = CHAT_SOURCE,
                 engine=None) -> ChatStats:
    """Build combined.jsonl (and train/valid, stats, rejects) from a chat corpus's raw files
    (default: the specification's corpus). `engine` (`persian_data.engine`) converts the pieces:
    worker processes here by default (none for small inputs), Ray tasks with the `ray` engine."""
    log = logger or LOG
    t0 = time.monotonic()
    options = _corpus_options(options, source)
    files = raw_files(layout, source)
    raw_dir = layout.content_dir(source)
    if not files:
        where = layout.relative(raw_dir) if raw_dir.is_relative_to(layout.root) else str(raw_dir)
        raise ChatSourceMissingError(
            f"no raw conversation files ({', '.join(source.reader.files)}) in {where}; fetch the {source.key} "
            f"source first (persian-data fetch --only {source.key})")
    sizes = [p.stat().st_size for p in files]
    total_bytes = sum(sizes)
    split = options.valid_fraction is not None
    stats = ChatStats(options=options.as_dict(), inputs=input_record(layout, files, cache))
    if split:
        stats.splits = {"train": 0, "valid": 0}
    converter = _Converter(options)  # validates the options; also used in-process
    engine = engine or LocalEngine()
    n_workers = _pick_workers(options, total_bytes) if engine.local else engine.cpus()
    log.info("chat: %s: %d raw file(s), %.1f MB; answers=%s, normalize=%s, valid_fraction=%s, workers=%d",
             source.key, len(files), total_bytes / 1e6, options.answers, options.normalize, options.valid_fraction,
             n_workers)

    with ExitStack() as stack:
        pool = _start_pool(stack, n_workers, options, source.reader, engine)
        run = _Reading(layout, source, converter, pool, n_workers,
                       _Writers(stack, layout, source, split, cache, staged=options.near_dup),
                       Candidates(tmp_dir=layout.tmp_dir) if options.near_dup else None, stats, split,
                       int(float(options.valid_fraction) * 2**64) if split else 0, log,
                       stack.enter_context(progress(total_bytes, "chat: reading", "B", logger=log, unit_scale=True)))
        for path, size in zip(files, sizes):
            run.convert_file(path, size)
        if run.cands is not None:
            _near_dup_pass(layout, source, run.out, run.cands, stats, split, len(converter.system), log, engine.map)
        stats.characters["total"] = sum(stats.characters[k] for k in ("system", "user", "assistant"))
        if stats.written == 0:
            raise ChatError(
                "no conversation could be built from " + ", ".join(f.file for f in stats.files)
                + (f" (damaged: {', '.join(stats.files_rejected)})" if stats.files_rejected else "")
                + "; nothing written")
        out = run.out
    # Leaving the stack renamed combined/train/valid/rejects into place and shut the pool down.
    if not split:
        for name in ("train", "valid"):
            layout.chat_split(name, source).unlink(missing_ok=True)
    write_review(layout, stats, on_placed=cache.placed if cache is not None else None, source=source)
    # The stats last: the gate compares their "written" with combined.jsonl, so a run killed
    # between the renames is caught by `verify`.
    # What the gate checks without reading the outputs again: each one's line count and the sha256
    # of the bytes written (every line was built from validated turns as it was produced).
    stats.outputs = {layout.chat_combined(source).name: {"lines": stats.written,
                                                         "sha256": out.digests[layout.chat_combined(source).name]}}
    if split:
        for name in ("train", "valid"):
            path = layout.chat_split(name, source)
            stats.outputs[path.name] = {"lines": stats.splits[name], "sha256": out.digests[path.name]}
    atomic_write_bytes(layout.chat_stats(source), orjson.dumps(stats.to_json(), option=orjson.OPT_INDENT_2)
                       + b"\n", layout.tmp_dir, on_placed=cache.placed if cache is not None else None)
    stats.seconds = time.monotonic() - t0
    mb = total_bytes / 1e6
    log.info("chat: %d conversations written from %d rows (%d skipped%s, %d duplicates) in %.1f s "
             "(%.1f MB/s)%s%s", stats.written, stats.rows_read, sum(stats.skipped.values()),
             _fmt(stats.skipped), stats.duplicates, stats.seconds, mb / max(stats.seconds, 1e-9),
             f"; train {stats.splits['train']}, valid {stats.splits['valid']}" if split else "",
             f"; DAMAGED, skipped whole: {', '.join(stats.files_rejected)}" if stats.files_rejected else "")
    return stats


def _corpus_options(options: ChatOptions, source: Source) -> ChatOptions:
    """A corpus's own system prompt replaces the default one (an explicit --system-prompt stays)."""
    own = source.chat.system_prompt if source.chat is not None else None
    if own and options.system_prompt == DEFAULT_SYSTEM_PROMPT:
        return replace(options, system_prompt=own)
    return options


def _start_pool(stack: ExitStack, n_workers: int, options: ChatOptions, reader, engine):
    """The engine's workers (None: everything in this process), closed when `stack` closes: forked
    worker processes started before this stage starts any thread (`engine.local`), or Ray tasks. A
    local worker that dies makes the run fail (BrokenProcessPool), never hang."""
    if not n_workers:
        return None
    pool = engine.executor(n_workers, initializer=_worker_init, initargs=(options, reader))
    stack.callback(pool.close)
    return pool


@dataclass
class _FileTally:
    """What one file has contributed so far: taken back whole if the file turns out damaged."""

    marks: list[int]  # output positions before the file
    cand_marks: Any  # near-dup candidates before the file
    index: int  # the file's place in stats.files
    tallies: list[tuple] = field(default_factory=list)  # what the rules did, merged once the file is known good
    added: list[bytes] = field(default_factory=list)  # dedup digests it added
    chars: dict[str, int] = field(default_factory=lambda: {"system": 0, "user": 0, "assistant": 0})
    splits: dict[str, int] = field(default_factory=lambda: {"train": 0, "valid": 0})
    base: int = 0  # rows of the file before the current piece


@dataclass
class _Reading:
    """One prepare_chat run while it reads: files in order, pieces converted by the workers (or here),
    lines deduplicated and written, near-duplicate candidates collected."""

    layout: Layout
    source: Source
    converter: _Converter
    pool: Any  # the engine's executor (persian_data.engine), None: in this process
    workers: int
    out: _Writers
    cands: Candidates | None
    stats: ChatStats
    split: bool
    threshold: int  # valid_fraction * 2**64: a split digest below it goes to valid
    log: logging.Logger
    bar: Any
    seen: set[bytes] = field(default_factory=set)  # dedup digests of every line written

    def convert_file(self, path: Path, size: int) -> None:
        """Read, convert and write one raw file; a damaged one is taken back out whole."""
        layout = self.layout
        name = layout.relative(path) if path.is_relative_to(layout.root) else path.name
        fs = FileStats(file=path.relative_to(layout.content_dir(self.source)).as_posix(), bytes=size)
        file = _FileTally(self.out.mark(), self.cands.mark() if self.cands is not None else None, len(self.stats.files))
        damage = None
        results = self._piece_results(path, name, file)
        try:
            for res in results:
                if res[0] == "damage":
                    damage = res
                    break
                self._take_piece(fs, file, res)
        finally:
            results.close()  # cancels the pieces still in flight
        fs.rows_read = file.base
        if damage is not None:
            self._reject_file(fs, file, damage, name)
        else:
            self._accept_file(fs, file, name)

    def _piece_results(self, path: Path, name: str, file: _FileTally) -> Iterator[tuple]:
        """Each piece's result in file order, a few pieces in flight. A piece cut inside a row
        ("bad_cut": bytes that only looked like a row separator) is parsed again joined with the
        next one, here. Stops after a "damage" result; later pieces are cancelled."""
        reader, pool = self.source.reader, self.pool
        max_pending = 2 * self.workers + 1 if pool is not None else 1
        pieces = reader.pieces(path, CHUNK_BYTES, self.bar.update)
        pending: deque = deque()

        def fill() -> None:
            while len(pending) < max_pending:
                piece = next(pieces, None)
                if piece is None:
                    return
                job = pool.submit(_worker_piece, piece) if pool is not None else _Local(self.converter, reader, piece)
                pending.append((piece, job))

        try:
            fill()
            while pending:
                piece, job = pending.popleft()
                try:
                    res = job.result()
                except BrokenProcessPool as e:
                    raise ChatError(f"a worker process died while converting {name} (out of "
                                    "memory?); nothing was written. Retry with --prepare-workers 0 "
                                    "(ChatOptions(workers=0)) to convert in this process.") from e
                while res[0] == "bad_cut":
                    # the next piece's own result started mid-row and is dropped
                    if not pending:
                        fill()
                    nxt, _ = pending.popleft()
                    piece = reader.join(piece, nxt)
                    if len(piece.data) > MAX_PIECE_BYTES and not piece.last:
                        res = reader.too_big(piece, file.base)
                    else:
                        res = _work_piece(self.converter, reader, piece)
                yield res
                if res[0] == "damage":
                    return
                fill()
        finally:
            for _, job in pending:  # results of later pieces are not needed
                if pool is not None:
                    job.cancel()
            pieces.close()

    def _take_piece(self, fs: FileStats, file: _FileTally, res: tuple) -> None:
        """One converted piece into the outputs: dedup, split, near-dup candidates, rejects."""
        _, n_rows, results, rejects, tally, sigs, accepted = res
        file.tallies.append(tally)
        for form, n in accepted.items():
            _add(fs.rows_accepted, form, n)
        cands, split, out = self.cands, self.split, self.out
        lines: list[bytes] = []
        train: list[bytes] = []
        valid: list[bytes] = []
        sig_rows: list[int] = []  # this piece's signature rows that wrote a line
        sig_keys: list[bytes] = []
        line_rows: list[int] = []  # per line written: its candidate row, split, characters (near-dup)
        line_valid: list[bool] = []
        line_user: list[int] = []
        line_asst: list[int] = []
        n_user_all = n_asst_all = 0
        ok_row = -1
        for kind, payload, ans_skipped in results:
            if ans_skipped:
                for r, k in ans_skipped.items():
                    _add(fs.answers_skipped, r, k)
            if kind == "skip":
                _add(fs.skipped, payload)
                continue
            fs.rows_converted += 1
            ok_row += 1
            row_key = None
            for line, dedup, split_digest, n_user, n_asst in payload:
                if dedup in self.seen:
                    fs.duplicates += 1
                    continue
                self.seen.add(dedup)
                file.added.append(dedup)
                lines.append(line)
                n_user_all += n_user
                n_asst_all += n_asst
                in_valid = split and int.from_bytes(split_digest, "big") < self.threshold
                if split:
                    (valid if in_valid else train).append(line)
                if cands is not None:
                    if row_key is None:
                        sig_rows.append(ok_row)
                        sig_keys.append(dedup)
                        row_key = dedup
                    elif dedup < row_key:
                        sig_keys[-1] = row_key = dedup
                    line_rows.append(len(cands.keys) + len(sig_keys) - 1)
                    line_valid.append(in_valid)
                    line_user.append(n_user)
                    line_asst.append(n_asst)
        file.chars["user"] += n_user_all
        file.chars["assistant"] += n_asst_all
        if cands is not None:
            cands.add_lines(line_rows, file.index, line_valid, line_user, line_asst)
            cands.add_piece(sigs, sig_rows, sig_keys)
        out.combined.write(b"".join(lines))
        fs.conversations_written += len(lines)
        file.chars["system"] += len(self.converter.system) * len(lines)
        if split:
            if out.train is not None:
                out.train.write(b"".join(train))
                out.valid.write(b"".join(valid))
            file.splits["train"] += len(train)
            file.splits["valid"] += len(valid)
        file_json = orjson.dumps(fs.file)
        for i, reason, raw in rejects:
            out.rejects.write(b'{"file":%s,"index":%d,"reason":"%s","row":%s}\n'
                              % (file_json, file.base + i, reason.encode(), raw))
        file.base += n_rows

    def _reject_file(self, fs: FileStats, file: _FileTally, damage: tuple, name: str) -> None:
        """A damaged file: everything it wrote is rolled back; it is named in the stats, the
        rejects file and the log."""
        _, n_before, reason, offset, detail, context = damage
        rows_before = file.base + n_before
        self.out.rollback(file.marks)
        if self.cands is not None:
            self.cands.rollback(file.cand_marks)
        for d in file.added:
            self.seen.discard(d)
        fs.rows_read = rows_before
        fs.status = "rejected"
        fs.error = {"reason": reason, "byte_offset": offset, "detail": detail, "rows_before_damage": rows_before}
        fs.skipped = {f"file_{reason}": rows_before}
        fs.answers_skipped = {}
        fs.rows_accepted = {}
        fs.rows_converted = fs.conversations_written = fs.duplicates = 0
        self.out.rejects.write(_dumps_reject({
            "file": fs.file, "index": None, "reason": f"file_{reason}", "byte_offset": offset,
            "rows_before_damage": rows_before, "detail": detail, "row": mask_raw(context)}))
        self.stats.files_rejected.append(fs.file)
        what = {"invalid_utf8": "is not valid UTF-8", "invalid_json": "is not valid JSON",
                "truncated": "is truncated (the JSON array does not end)"}[reason]
        self.log.error("chat: %s %s at byte %d (%s); the whole file is skipped, %d row(s) read "
                       "before the damage are discarded", name, what, offset, detail, rows_before)
        self.stats.files.append(fs)
        _merge(self.stats, fs)

    def _accept_file(self, fs: FileStats, file: _FileTally, name: str) -> None:
        stats = self.stats
        for k in file.chars:
            stats.characters[k] += file.chars[k]
        for tally in file.tallies:
            _merge_tally(stats, tally)
        if self.split:
            for k in file.splits:
                stats.splits[k] += file.splits[k]
        stats.files.append(fs)
        _merge(stats, fs)
        self.log.info("chat: %s: %d rows read, %d conversations written, %d skipped%s, %d duplicates%s",
                      name, fs.rows_read, fs.conversations_written, sum(fs.skipped.values()), _fmt(fs.skipped),
                      fs.duplicates, f"; kept in a tolerated form{_fmt(fs.rows_accepted)}" if fs.rows_accepted else "")


def _merge_tally(stats: ChatStats, tally: tuple) -> None:
    """One piece's rule counts and examples (`PieceTally.as_tuple`) into the run's."""
    found, masked, dropped, contact_lines, trimmed, examples = tally
    for k, v in found.items():
        _add(stats.pii_found, k, v)
    for k, v in masked.items():
        _add(stats.pii_masked, k, v)
    for k, v in dropped.items():
        _add(stats.answers_dropped, k, v)
    stats.contact_lines_removed += contact_lines
    stats.answers_trimmed += trimmed
    for rule, items in examples.items():
        got = stats.examples.setdefault(rule, [])
        got.extend(items[:max(0, REVIEW_EXAMPLES - len(got))])


def _near_dup_pass(layout: Layout, source: Source, out: _Writers, cands: Candidates, stats: ChatStats, split: bool,
                   n_sys: int, log: logging.Logger, map_=None) -> None:
    """Pass 2: collapse near-duplicate rows and copy the staged lines that stay to the outputs."""
    out.combined.flush()
    t = time.monotonic()
    # opened on the stage's stack: placed (and hashed) with the rejects when the stage ends well
    combined = out.open_final(layout.chat_combined(source))
    train = out.open_final(layout.chat_split("train", source)) if split else None
    valid = out.open_final(layout.chat_split("valid", source)) if split else None

    def write(line: bytes, in_valid: bool) -> None:
        combined.write(line)
        if split:
            (valid if in_valid else train).write(line)

    result = collapse_and_copy(cands, out.staged_path, write, map_=map_)
    stats.written -= result.lines_removed
    for f, n in result.removed_per_file.items():
        stats.files[f].conversations_written -= n
    stats.characters["user"] -= result.removed_chars["user"]
    stats.characters["assistant"] -= result.removed_chars["assistant"]
    stats.characters["system"] -= n_sys * result.lines_removed
    if split:
        for k in ("train", "valid"):
            stats.splits[k] -= result.removed_splits[k]
    stats.near_duplicates = {"rows_collapsed": result.rows_collapsed,
                             "conversations_removed": result.lines_removed,
                             "lsh_candidate_pairs": result.candidate_pairs, "examples": result.examples}
    log.info("chat: near-duplicates: %d question(s) collapsed (%d conversation(s) removed) in %.1f s",
             result.rows_collapsed, result.lines_removed, time.monotonic() - t)


def _merge(stats: ChatStats, fs: FileStats) -> None:
    stats.rows_read += fs.rows_read
    stats.written += fs.conversations_written
    stats.duplicates += fs.duplicates
    for k, v in fs.skipped.items():
        _add(stats.skipped, k, v)
    for k, v in fs.answers_skipped.items():
        _add(stats.answers_skipped, k, v)
    for k, v in fs.rows_accepted.items():
        _add(stats.rows_accepted, k, v)


def _fmt(d: dict[str, int]) -> str:
    return " (" + ", ".join(f"{k} {v}" for k, v in sorted(d.items())) + ")" if d else ""


# ----------------------------------------------------------------------------------------------
# Python API and gates
# ----------------------------------------------------------------------------------------------


def iter_conversations(root: str | Path, split: str = "combined", source: Source = CHAT_SOURCE) -> Iterator[dict]:
    """Iterate the conversations of a prepared root: split "combined", "train" or "valid" of a chat
    corpus (default: the specification's)."""
    layout = Layout(Path(root))
    if split == "combined":
        path = layout.chat_combined(source)
    elif split in ("train", "valid"):
        path = layout.chat_split(split, source)
    else:
        raise ValueError(f"split must be 'combined', 'train' or 'valid', not {split!r}")
    if not path.is_file():
        raise ChatSourceMissingError(
            f"{layout.relative(path)} does not exist; run `persian-data prepare text`"
            + (" with --valid-fraction" if split != "combined" else ""))
    with open(path, "rb") as fh:
        for line in fh:
            if line.strip():
                yield orjson.loads(line)

