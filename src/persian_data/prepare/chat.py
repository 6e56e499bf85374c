"""Chat corpus: the conversational dataset as chat-format JSONL, Persian-normalized, streaming.

Input: every ``*.json`` file under ``datasets/text/persian_conversation/data`` (natural order:
``dadrah_dataset.json``, ``...1-1000_10000``, ``...1-10000_100000``, ``...1-100000_276342``,
then any others). Each file is ONE JSON array of rows ``[title, question, answers, keywords]``.
The raw files are only read, never modified.

Output, beside ``data/`` (paths from `Layout`):
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
* **System turn.** ``ChatOptions.system_prompt`` (default `DEFAULT_SYSTEM_PROMPT`), normalized
  like the rest when ``normalize`` is on.
* **``normalize=False``** keeps the text as it is, only trimmed (lone surrogates, which cannot
  be UTF-8, are dropped); control characters then appear as JSON escapes (``\\u0007``), the
  only ``\\u`` escapes the output can hold.
* **Rows that cannot make a conversation** are skipped, counted by reason and written to the
  rejects file: ``not_a_list``, ``wrong_item_count`` (not 4 items), ``non_string_field`` (title
  or question not a string, or no answer that is a string), ``answers_not_list`` (null or not a
  list), ``no_answers`` (an empty list), ``empty_question`` / ``empty_answer`` (empty after
  normalization). ``keywords`` is not used and not checked.
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
duplicates and writes, so the output is the same whatever the number of workers. Bytes that
only look like a separator (inside a string, or in a malformed row) make a piece end inside a
row; the worker says so, and the main process parses that piece again joined with the next.
"""

from __future__ import annotations

import gc
import json
import logging
import multiprocessing
import os
import re
import time
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from hashlib import blake2b
from pathlib import Path
from typing import IO, Any, Iterator, Literal

import orjson

from ..atomic import atomic_write_bytes, atomic_writer
from ..catalog import BY_KEY
from ..errors import PersianDataError
from ..gates import GateFailure, GateNote, gate
from ..layout import Layout
from ..normalize import DEFAULT, NormalizerConfig, ZWNJ, _compiled
from ..progress import progress
from ..workers import exit_with

LOG = logging.getLogger("persian_data.prepare.chat")

DEFAULT_SYSTEM_PROMPT = (
    "شما یک دستیار حقوقی فارسی‌زبان هستید. به پرسش‌های حقوقی کاربران، دقیق، روشن و محترمانه "
    "به زبان فارسی پاسخ دهید."
)
ROLES = ("system", "user", "assistant")
STATS_VERSION = 1

CHUNK_BYTES = 4 << 20  # a piece: the unit of work (parse + convert) given to a worker
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


class ChatSourceMissingError(PersianDataError):
    """The raw conversational dataset is not there (fetch the text source first)."""


class ChatError(PersianDataError):
    """The chat corpus cannot be built (e.g. every raw file is damaged)."""


@dataclass
class ChatOptions:
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    answers: Literal["first", "all"] = "first"
    normalize: bool = True
    normalizer: NormalizerConfig = DEFAULT
    valid_fraction: float | None = None
    # Worker processes for the per-row work; None: 2 (or the CPU count if lower) for inputs of
    # 48 MiB and more, none for smaller ones; 0: everything in this process.
    workers: int | None = None

    def __post_init__(self) -> None:
        if self.answers not in ("first", "all"):
            raise ValueError(f"answers must be 'first' or 'all', not {self.answers!r}")
        if self.valid_fraction is not None and not 0.0 < float(self.valid_fraction) < 1.0:
            raise ValueError(f"valid_fraction must be between 0 and 1 (exclusive), not {self.valid_fraction}")
        if not isinstance(self.system_prompt, str):
            raise ValueError("system_prompt must be a string")

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("workers")  # does not change the output
        return d


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
    characters: dict[str, int] = field(default_factory=lambda: {"system": 0, "user": 0, "assistant": 0, "total": 0})
    splits: dict[str, int] | None = None
    files_rejected: list[str] = field(default_factory=list)
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
            "characters": self.characters,
            "splits": self.splits,
            "files_rejected": self.files_rejected,
            "files": [
                {**asdict(f), "skipped": dict(sorted(f.skipped.items())),
                 "answers_skipped": dict(sorted(f.answers_skipped.items()))}
                for f in self.files
            ],
            "options": self.options,
        }


# ----------------------------------------------------------------------------------------------
# Streaming reader
# ----------------------------------------------------------------------------------------------


class RawFileError(Exception):
    """A raw file is not a valid UTF-8 JSON array. `reason`: invalid_utf8, invalid_json, truncated."""

    def __init__(self, reason: str, byte_offset: int, rows_before: int, detail: str, context: str = ""):
        super().__init__(f"{reason} at byte {byte_offset}: {detail}")
        self.reason = reason
        self.byte_offset = byte_offset
        self.rows_before = rows_before
        self.detail = detail
        self.context = context


_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder(strict=False)  # raw control characters inside strings are tolerated
# Where one row ends and the next begins, as json.dump writes it: the row's last list closes
# ("]]"), a comma, the next row opens ("["). The same bytes can occur elsewhere (inside a string,
# or in a malformed row); a cut there is detected and undone (see `_parse_piece`).
_CUT = re.compile(rb"\]\][ \t\r\n]*,[ \t\r\n]*(?=\[)")
_CUT_WINDOW = 256 << 10
# A piece that still ends inside a row at this size means rows this big, or no row separators
# at all (not an array of [title, question, answers, keywords]): the file is reported damaged
# rather than parsed whole in memory.
MAX_PIECE_BYTES = 64 << 20


@dataclass
class _Piece:
    """A byte range of a raw file, cut (we hope) between two rows."""

    offset: int  # byte offset of data[0] in the file
    data: bytes
    first: bool  # starts at the file start (expects "[")
    last: bool  # ends at the file end (expects "]")


def _pieces(path: Path, chunk_bytes: int, on_bytes=None) -> Iterator[_Piece]:
    """Cut the file into pieces of about `chunk_bytes`, each cut right after a row separator."""
    with open(path, "rb") as fh:
        buf = b""
        offset = 0
        first = True
        while True:
            chunk = fh.read(chunk_bytes)
            if on_bytes is not None and chunk:
                on_bytes(len(chunk))
            if not chunk:
                yield _Piece(offset, buf, first, True)
                return
            buf += chunk
            if len(buf) < chunk_bytes:
                continue
            cut = -1
            lo = max(0, len(buf) - _CUT_WINDOW)
            for m in _CUT.finditer(buf, lo):
                cut = m.end()
            if cut < 0 and lo:
                for m in _CUT.finditer(buf):
                    cut = m.end()
            if cut < 0:
                if len(buf) < MAX_PIECE_BYTES:
                    continue  # one very long row: read on
                cut = len(buf)
            yield _Piece(offset, buf[:cut], first, False)
            offset += cut
            buf = buf[cut:]
            first = False


@dataclass
class _Parsed:
    rows: list[Any]
    status: str  # "ok", "bad_cut" (the piece does not end between rows), or "damage"
    reason: str = ""  # damage: invalid_utf8, invalid_json or truncated
    byte_offset: int = 0
    detail: str = ""
    context: str = ""


def _parse_piece(piece: _Piece) -> _Parsed:
    """Decode and parse the rows of one piece, exactly (json's C scanner, one row at a time).

    A piece starts at the file start or at a row; it is "ok" when it ends between rows (right
    after a separator) or, for the last piece, after the closing "]". When it ends inside a row
    (a cut at bytes that only looked like a separator) it is "bad_cut", and the caller parses it
    again joined with the next piece; at the file end the same thing is a truncated file.
    """
    data = piece.data
    bad_utf8: tuple[int, str] | None = None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        text = data[: e.start].decode("utf-8")
        if not (piece.last and e.end == len(data) and "unexpected end" in e.reason):
            bad_utf8 = (piece.offset + e.start, e.reason)
        # else: the file ends inside a character: it is cut, reported as truncated below

    rows: list[Any] = []
    raw_decode = _DECODER.raw_decode
    ws = _WS.match
    n = len(text)
    pos = 0
    state = "start" if piece.first else "value"

    def result(status: str, reason: str = "", at: int = 0, detail: str = "") -> _Parsed:
        if status == "damage" and reason == "truncated" and bad_utf8 is not None:
            return _Parsed(rows, "damage", "invalid_utf8", bad_utf8[0], bad_utf8[1],
                           text[-80:])
        off = piece.offset + len(text[:at].encode("utf-8", "surrogatepass"))
        return _Parsed(rows, status, reason, off, detail, text[max(0, at - 80): at + 80])

    def ran_out(at: int, detail: str) -> _Parsed:
        if bad_utf8 is not None or piece.last:
            return result("damage", "truncated", at, detail)
        return result("bad_cut", at=at)

    while True:
        pos = ws(text, pos).end()
        if pos >= n:
            if state == "end" or (state == "value" and not piece.last and bad_utf8 is None):
                break  # the array ended, or the piece ends right after a separator
            if state == "start":
                if bad_utf8 is not None:
                    return result("damage", "truncated", pos, "")
                return result("damage", "invalid_json", pos, "empty file, expected a JSON array")
            return ran_out(pos, "the JSON array does not end")
        ch = text[pos]
        if state == "start":
            if ch == "\ufeff":
                pos += 1
                continue
            if ch != "[":
                return result("damage", "invalid_json", pos, f"expected '[' (a JSON array), found {ch!r}")
            pos += 1
            state = "first"
        elif state in ("first", "value"):
            if state == "first" and ch == "]":
                pos += 1
                state = "end"
                continue
            try:
                obj, end = raw_decode(text, pos)
            except json.JSONDecodeError as e:
                if e.pos >= n - 16 or e.msg.startswith("Unterminated string"):
                    return ran_out(e.pos, f"the text ends inside row {len(rows)} ({e.msg})")
                return result("damage", "invalid_json", e.pos, e.msg)
            if end >= n and not isinstance(obj, (list, dict, str)):
                return ran_out(end, "the text ends inside a number or literal")
            pos = end
            rows.append(obj)
            state = "sep"
        elif state == "sep":
            if ch == ",":
                pos += 1
                state = "value"
            elif ch == "]":
                pos += 1
                state = "end"
            else:
                return result("damage", "invalid_json", pos,
                              f"expected ',' or ']' after row {len(rows) - 1}, found {ch!r}")
        else:  # end: only whitespace may follow
            return result("damage", "invalid_json", pos, f"data after the end of the array: {ch!r}")
    if bad_utf8 is not None:
        return _Parsed(rows, "damage", "invalid_utf8", bad_utf8[0], bad_utf8[1], text[-80:])
    if state != "end" and piece.last:
        return ran_out(pos, "the JSON array does not end")
    return _Parsed(rows, "ok")


def _join(a: _Piece, b: _Piece) -> _Piece:
    return _Piece(a.offset, a.data + b.data, a.first, b.last)


def _too_big(piece: _Piece, rows_before: int) -> tuple:
    return ("damage", 0, "invalid_json", piece.offset,
            f"no row boundary (']], [') in {len(piece.data) >> 20} MiB from row {rows_before}: "
            "rows this large, or not an array of [title, question, answers, keywords] rows", "")


def iter_raw_rows(path: Path, on_bytes=None, chunk_bytes: int = CHUNK_BYTES) -> Iterator[Any]:
    """Yield the elements of the JSON array in `path`, in bounded memory (one piece of about
    `chunk_bytes` at a time).

    Raises `RawFileError` on invalid UTF-8, invalid JSON, or an array that does not end (the
    elements before the damage have been yielded by then). `on_bytes(n)` is called as bytes
    are read. A UTF-8 BOM at the start is accepted.
    """
    rows_before = 0
    held: _Piece | None = None
    for piece in _pieces(path, chunk_bytes, on_bytes):
        if held is not None:
            piece = _join(held, piece)
            held = None
        if len(piece.data) > MAX_PIECE_BYTES and not piece.last:
            _, _, reason, off, detail, ctx = _too_big(piece, rows_before)
            raise RawFileError(reason, off, rows_before, detail, ctx)
        parsed = _parse_piece(piece)
        if parsed.status == "bad_cut":
            held = piece
            continue
        yield from parsed.rows
        if parsed.status == "damage":
            raise RawFileError(parsed.reason, parsed.byte_offset, rows_before + len(parsed.rows),
                               parsed.detail, parsed.context)
        rows_before += len(parsed.rows)


# ----------------------------------------------------------------------------------------------
# Row conversion (runs in workers)
# ----------------------------------------------------------------------------------------------

_TITLE_STRIP = " \n.,،؛;:!?؟«»\"'()[]-–—"


def _key(s: str) -> str:
    """Loose comparison form: no spaces, newlines or ZWNJ."""
    return s.replace(" ", "").replace("\n", "").replace(ZWNJ, "")


def user_turn(title: str, question: str) -> str:
    """The title rule (see the module docstring). Both arguments already normalized."""
    t = title.strip()
    if not t or t in question:  # the common cases, without building the loose forms
        return question
    kt = _key(t.strip(_TITLE_STRIP))
    kq = _key(question)
    if not kt or kt in kq:
        return question
    if kq and kq in _key(t):
        return t
    return t + "\n\n" + question


def _plain(s: str) -> str:
    """normalize=False: text as is, trimmed; lone surrogates (not UTF-8) dropped."""
    s = s.strip()
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        s = s.encode("utf-8", "ignore").decode("utf-8")
    return s


class _Converter:
    """Per-row work: validate, normalize, apply the title and answers rules, serialize, hash."""

    def __init__(self, options: ChatOptions) -> None:
        self.first = options.answers == "first"
        if options.normalize:
            c = _compiled(options.normalizer)
            self.norm_many = c.many
            self.norm_one = c
        else:
            self.norm_many = lambda xs: [_plain(x) for x in xs]
            self.norm_one = _plain
        self.system = self.norm_one(options.system_prompt)
        if not self.system:
            raise ValueError("the system prompt is empty (after normalization)")
        self.head = orjson.dumps({"role": "system", "content": self.system})

    def convert(self, rows: list[Any]) -> list[tuple]:
        """One result per row: ("skip", reason, answers_skipped) or
        ("ok", [(line, dedup_digest, split_digest, n_user, n_assistant)], answers_skipped)."""
        results: list[tuple | None] = [None] * len(rows)
        fields: list[str] = []
        plan: list[tuple[int, int, int]] = []  # (row index, first field index, number of answers)
        for i, row in enumerate(rows):
            if not isinstance(row, list):
                results[i] = ("skip", "not_a_list", None)
                continue
            if len(row) != 4:
                results[i] = ("skip", "wrong_item_count", None)
                continue
            title, question, answers = row[0], row[1], row[2]
            if not isinstance(title, str) or not isinstance(question, str):
                results[i] = ("skip", "non_string_field", None)
                continue
            if not isinstance(answers, list):
                results[i] = ("skip", "answers_not_list", None)
                continue
            if not answers:
                results[i] = ("skip", "no_answers", None)
                continue
            take = answers[:1] if self.first else answers
            plan.append((i, len(fields), len(take)))
            fields.append(title)
            fields.append(question)
            fields.extend(a if isinstance(a, str) else "" for a in take)
        normed = self.norm_many(fields) if fields else []
        for i, at, n in plan:
            row = rows[i]
            question = normed[at + 1]
            if not question:
                results[i] = ("skip", "empty_question", None)
                continue
            user = user_turn(normed[at], question)
            answers_in = row[2]
            usable: list[str] = []
            skipped: dict[str, int] = {}
            if self.first:
                # the first usable answer; look past the first only when it is unusable
                for j, a in enumerate(answers_in):
                    if not isinstance(a, str):
                        skipped["non_string_answer"] = skipped.get("non_string_answer", 0) + 1
                        continue
                    na = normed[at + 2] if j == 0 else self.norm_one(a)
                    if na:
                        usable.append(na)
                        break
                    skipped["empty_answer"] = skipped.get("empty_answer", 0) + 1
            else:
                for j, a in enumerate(answers_in):
                    if not isinstance(a, str):
                        skipped["non_string_answer"] = skipped.get("non_string_answer", 0) + 1
                        continue
                    na = normed[at + 2 + j]
                    if na:
                        usable.append(na)
                    else:
                        skipped["empty_answer"] = skipped.get("empty_answer", 0) + 1
            if not usable:
                reason = "empty_answer" if skipped.get("empty_answer") else "non_string_field"
                results[i] = ("skip", reason, skipped or None)
                continue
            user_json = orjson.dumps({"role": "user", "content": user})
            # both digests hash the JSON of the turns (an unambiguous encoding of the text)
            split_digest = blake2b(user_json, digest_size=8).digest()
            convs = []
            for a in usable:
                asst_json = orjson.dumps({"role": "assistant", "content": a})
                h = blake2b(user_json, digest_size=16)
                h.update(asst_json)
                line = b"".join((b'{"messages":[', self.head, b",", user_json, b",", asst_json, b"]}\n"))
                convs.append((line, h.digest(), split_digest, len(user), len(a)))
            results[i] = ("ok", convs, skipped or None)
        return results  # type: ignore[return-value]


def _raw_json(row: Any) -> bytes:
    try:
        return orjson.dumps(row)
    except (TypeError, orjson.JSONEncodeError):  # lone surrogates, huge ints: escape everything
        return json.dumps(row, ensure_ascii=True).encode("ascii")


def _work_piece(conv: _Converter, piece: _Piece) -> tuple:
    """Parse and convert one piece. Returns ("ok", n_rows, results, rejects), ("bad_cut",) or
    ("damage", n_rows_before, reason, byte_offset, detail, context)."""
    parsed = _parse_piece(piece)
    if parsed.status == "bad_cut":
        return ("bad_cut",)
    if parsed.status == "damage":
        return ("damage", len(parsed.rows), parsed.reason, parsed.byte_offset, parsed.detail,
                parsed.context)
    rows = parsed.rows
    results = conv.convert(rows)
    rejects = [(i, res[1], _raw_json(rows[i])) for i, res in enumerate(results) if res[0] == "skip"]
    return ("ok", len(rows), results, rejects)


_WORKER: _Converter | None = None


def _worker_init(options: ChatOptions, run_pid: int) -> None:
    global _WORKER
    exit_with(run_pid)  # a killed run leaves no worker behind
    _WORKER = _Converter(options)
    # A worker makes no reference cycles (rows, strings, tuples; freed by reference counting),
    # and the cyclic collector walking every parsed row costs ~15 % of its time.
    gc.freeze()
    gc.disable()


def _worker_piece(piece: _Piece) -> tuple:
    assert _WORKER is not None
    return _work_piece(_WORKER, piece)


class _Local:
    """A piece to work on in this process, when its turn comes (workers=0)."""

    def __init__(self, conv: _Converter, piece: _Piece) -> None:
        self.conv, self.piece = conv, piece

    def result(self) -> tuple:
        return _work_piece(self.conv, self.piece)


# ----------------------------------------------------------------------------------------------
# The stage
# ----------------------------------------------------------------------------------------------

_NUM = re.compile(r"(\d+)")


def _natural(rel: str) -> list:
    """'dadrah_dataset1-1000_10000' < 'dadrah_dataset1-10000_100000' (numbers compare as numbers)."""
    return [int(t) if t.isdigit() else t for t in _NUM.split(rel)]


def raw_files(layout: Layout) -> list[Path]:
    """The raw *.json files of the text source, in natural name order (hidden folders skipped)."""
    root = layout.content_dir(BY_KEY["text"])
    if not root.is_dir():
        return []
    files = [p for p in root.rglob("*.json")
             if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)]
    def key(p: Path) -> tuple:
        rel = p.relative_to(root).with_suffix("").as_posix()
        return (_natural(rel), p.as_posix())

    return sorted(files, key=key)


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
    """The output temp files, with positions to roll a damaged file back to."""

    def __init__(self, stack: ExitStack, layout: Layout, split: bool) -> None:
        tmp = layout.tmp_dir
        self.combined = stack.enter_context(atomic_writer(layout.chat_combined(), tmp))
        self.rejects = stack.enter_context(atomic_writer(layout.chat_rejects(), tmp))
        self.train = stack.enter_context(atomic_writer(layout.chat_split("train"), tmp)) if split else None
        self.valid = stack.enter_context(atomic_writer(layout.chat_split("valid"), tmp)) if split else None

    def handles(self) -> list[IO]:
        return [h for h in (self.combined, self.rejects, self.train, self.valid) if h is not None]

    def mark(self) -> list[int]:
        return [h.tell() for h in self.handles()]

    def rollback(self, marks: list[int]) -> None:
        for h, pos in zip(self.handles(), marks):
            h.flush()
            h.truncate(pos)
            h.seek(pos)


def prepare_chat(layout: Layout, options: ChatOptions = ChatOptions(), *,
                 logger: logging.Logger | None = None, cache=None) -> ChatStats:
    """Build combined.jsonl (and train/valid, stats, rejects) from the raw text source."""
    log = logger or LOG
    t0 = time.monotonic()
    files = raw_files(layout)
    raw_dir = layout.content_dir(BY_KEY["text"])
    if not files:
        where = layout.relative(raw_dir) if raw_dir.is_relative_to(layout.root) else str(raw_dir)
        raise ChatSourceMissingError(
            f"no raw conversation files (*.json) in {where}; fetch the text source first "
            "(persian-data fetch --only text)")
    sizes = [p.stat().st_size for p in files]
    total_bytes = sum(sizes)
    split = options.valid_fraction is not None
    threshold = int(float(options.valid_fraction) * 2**64) if split else 0
    stats = ChatStats(options=options.as_dict())
    if split:
        stats.splits = {"train": 0, "valid": 0}
    converter = _Converter(options)  # validates the options; also used in-process
    n_sys = len(converter.system)
    n_workers = _pick_workers(options, total_bytes)
    seen: set[bytes] = set()
    log.info("chat: %d raw file(s), %.1f MB; answers=%s, normalize=%s, valid_fraction=%s, workers=%d",
             len(files), total_bytes / 1e6, options.answers, options.normalize, options.valid_fraction,
             n_workers)

    pool: ProcessPoolExecutor | None = None
    with ExitStack() as stack:
        if n_workers:
            # fork (Linux): spawn and forkserver re-import the caller's __main__ in each worker,
            # which breaks scripts without an `if __name__ == "__main__"` guard. The workers are
            # started (by the first task) before this stage starts any thread; they only compute
            # (no logging, no I/O), so locks held by other threads of the caller cannot block
            # them. A worker that dies makes the run fail (BrokenProcessPool), never hang.
            methods = multiprocessing.get_all_start_methods()
            ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
            pool = ProcessPoolExecutor(n_workers, mp_context=ctx, initializer=_worker_init,
                                       initargs=(options, os.getpid()))
            stack.callback(pool.shutdown, wait=True, cancel_futures=True)
            pool.submit(int).result()
        out = _Writers(stack, layout, split)
        bar = stack.enter_context(progress(total_bytes, "chat: reading", "B", logger=log, unit_scale=True))
        max_pending = 2 * n_workers + 1 if pool is not None else 1

        for path, size in zip(files, sizes):
            name = layout.relative(path) if path.is_relative_to(layout.root) else path.name
            fs = FileStats(file=path.relative_to(raw_dir).as_posix(), bytes=size)
            file_json = orjson.dumps(fs.file)
            marks = out.mark()
            added: list[bytes] = []
            chars = {"system": 0, "user": 0, "assistant": 0}
            splits = {"train": 0, "valid": 0}
            pieces = _pieces(path, CHUNK_BYTES, bar.update)
            pending: deque = deque()
            base = 0  # rows of this file before the current piece
            damage = None

            def fill() -> None:
                while len(pending) < max_pending:
                    piece = next(pieces, None)
                    if piece is None:
                        return
                    job = pool.submit(_worker_piece, piece) if pool is not None else _Local(converter, piece)
                    pending.append((piece, job))

            fill()
            while pending:
                piece, job = pending.popleft()
                try:
                    res = job.result()
                except BrokenProcessPool as e:
                    raise ChatError(f"a worker process died while converting {name} (out of "
                                    "memory?); nothing was written. Retry with --workers 0 to "
                                    "run in one process.") from e
                while res[0] == "bad_cut":
                    # the cut fell inside a row: join the next piece (whose own result started
                    # mid-row and is dropped) and parse the two together, here
                    if not pending:
                        fill()
                    nxt, _ = pending.popleft()
                    piece = _join(piece, nxt)
                    if len(piece.data) > MAX_PIECE_BYTES and not piece.last:
                        res = _too_big(piece, base)
                    else:
                        res = _work_piece(converter, piece)
                if res[0] == "damage":
                    damage = res
                    break
                _, n_rows, results, rejects = res
                lines: list[bytes] = []
                train: list[bytes] = []
                valid: list[bytes] = []
                for kind, payload, ans_skipped in results:
                    if ans_skipped:
                        for r, k in ans_skipped.items():
                            _add(fs.answers_skipped, r, k)
                    if kind == "skip":
                        _add(fs.skipped, payload)
                        continue
                    fs.rows_converted += 1
                    for line, dedup, split_digest, n_user, n_asst in payload:
                        if dedup in seen:
                            fs.duplicates += 1
                            continue
                        seen.add(dedup)
                        added.append(dedup)
                        lines.append(line)
                        chars["user"] += n_user
                        chars["assistant"] += n_asst
                        if split:
                            if int.from_bytes(split_digest, "big") < threshold:
                                valid.append(line)
                            else:
                                train.append(line)
                out.combined.write(b"".join(lines))
                fs.conversations_written += len(lines)
                chars["system"] += n_sys * len(lines)
                if split:
                    out.train.write(b"".join(train))
                    out.valid.write(b"".join(valid))
                    splits["train"] += len(train)
                    splits["valid"] += len(valid)
                for i, reason, raw in rejects:
                    out.rejects.write(b'{"file":%s,"index":%d,"reason":"%s","row":%s}\n'
                                      % (file_json, base + i, reason.encode(), raw))
                base += n_rows
                fill()
            pieces.close()
            fs.rows_read = base
            if damage is not None:
                _, n_before, reason, offset, detail, context = damage
                rows_before = base + n_before
                for _, job in pending:  # results of later pieces are not needed
                    if pool is not None:
                        job.cancel()
                pending.clear()
                out.rollback(marks)
                for d in added:
                    seen.discard(d)
                fs.rows_read = rows_before
                fs.status = "rejected"
                fs.error = {"reason": reason, "byte_offset": offset, "detail": detail,
                            "rows_before_damage": rows_before}
                fs.skipped = {f"file_{reason}": rows_before}
                fs.answers_skipped = {}
                fs.rows_converted = fs.conversations_written = fs.duplicates = 0
                out.rejects.write(_dumps_reject({
                    "file": fs.file, "index": None, "reason": f"file_{reason}", "byte_offset": offset,
                    "rows_before_damage": rows_before, "detail": detail, "row": context}))
                stats.files_rejected.append(fs.file)
                what = {"invalid_utf8": "is not valid UTF-8", "invalid_json": "is not valid JSON",
                        "truncated": "is truncated (the JSON array does not end)"}[reason]
                log.error("chat: %s %s at byte %d (%s); the whole file is skipped, %d row(s) read "
                          "before the damage are discarded", name, what, offset, detail, rows_before)
                stats.files.append(fs)
                _merge(stats, fs)
                continue
            for k in chars:
                stats.characters[k] += chars[k]
            if split:
                for k in splits:
                    stats.splits[k] += splits[k]
            stats.files.append(fs)
            _merge(stats, fs)
            log.info("chat: %s: %d rows read, %d conversations written, %d skipped%s, %d duplicates",
                     name, fs.rows_read, fs.conversations_written, sum(fs.skipped.values()),
                     _fmt(fs.skipped), fs.duplicates)

        stats.characters["total"] = sum(stats.characters[k] for k in ("system", "user", "assistant"))
        if stats.written == 0:
            raise ChatError(
                "no conversation could be built from " + ", ".join(f.file for f in stats.files)
                + (f" (damaged: {', '.join(stats.files_rejected)})" if stats.files_rejected else "")
                + "; nothing written")
    # Leaving the stack renamed combined/train/valid/rejects into place and shut the pool down.
    if not split:
        for name in ("train", "valid"):
            layout.chat_split(name).unlink(missing_ok=True)
    # The stats last: the gate compares their "written" with combined.jsonl, so a run killed
    # between the renames is caught by `verify`.
    atomic_write_bytes(layout.chat_stats(), orjson.dumps(stats.to_json(), option=orjson.OPT_INDENT_2)
                       + b"\n", layout.tmp_dir)
    stats.seconds = time.monotonic() - t0
    mb = total_bytes / 1e6
    log.info("chat: %d conversations written from %d rows (%d skipped%s, %d duplicates) in %.1f s "
             "(%.1f MB/s)%s%s", stats.written, stats.rows_read, sum(stats.skipped.values()),
             _fmt(stats.skipped), stats.duplicates, stats.seconds, mb / max(stats.seconds, 1e-9),
             f"; train {stats.splits['train']}, valid {stats.splits['valid']}" if split else "",
             f"; DAMAGED, skipped whole: {', '.join(stats.files_rejected)}" if stats.files_rejected else "")
    return stats


def _merge(stats: ChatStats, fs: FileStats) -> None:
    stats.rows_read += fs.rows_read
    stats.written += fs.conversations_written
    stats.duplicates += fs.duplicates
    for k, v in fs.skipped.items():
        _add(stats.skipped, k, v)
    for k, v in fs.answers_skipped.items():
        _add(stats.answers_skipped, k, v)


def _fmt(d: dict[str, int]) -> str:
    return " (" + ", ".join(f"{k} {v}" for k, v in sorted(d.items())) + ")" if d else ""


# ----------------------------------------------------------------------------------------------
# Python API and gates
# ----------------------------------------------------------------------------------------------


def iter_conversations(root: str | Path, split: str = "combined") -> Iterator[dict]:
    """Iterate the conversations of a prepared root: split "combined", "train" or "valid"."""
    layout = Layout(Path(root))
    if split == "combined":
        path = layout.chat_combined()
    elif split in ("train", "valid"):
        path = layout.chat_split(split)
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


def check_conversation(obj: Any) -> str | None:
    """None when `obj` has exactly the chat schema, else what is wrong."""
    if not isinstance(obj, dict) or list(obj) != ["messages"]:
        return "not an object with exactly one key, 'messages'"
    msgs = obj["messages"]
    if not isinstance(msgs, list) or len(msgs) != 3:
        return "'messages' is not a list of 3 messages"
    for m, role in zip(msgs, ROLES):
        if not isinstance(m, dict) or list(m) != ["role", "content"]:
            return "a message is not exactly {'role', 'content'}"
        if m["role"] != role:
            return f"roles are not system, user, assistant (found {m['role']!r} for {role})"
        if not isinstance(m["content"], str) or not m["content"].strip():
            return f"the {role} content is empty or not a string"
    return None


_MAX_LISTED = 5


def _check_jsonl(layout: Layout, path: Path, expected: int | None, what: str, parse: bool = True) -> list[GateFailure]:
    rel = layout.relative(path)
    fails: list[GateFailure] = []
    bad = 0
    n = 0
    if not parse:  # quick mode: count lines at memory speed, no JSON work
        with open(path, "rb") as fh:
            n = sum(block.count(b"\n") for block in iter(lambda: fh.read(1 << 22), b""))
        if expected is not None and n != expected:
            fails.append(GateFailure("chat", rel, f"{n} lines, but the stats say {expected} {what}"))
        return fails
    with open(path, "rb") as fh:
        for n, line in enumerate(fh, 1):
            try:
                problem = check_conversation(orjson.loads(line))
            except orjson.JSONDecodeError as e:
                problem = f"not valid JSON ({e})"
            if problem is not None:
                bad += 1
                if bad <= _MAX_LISTED:
                    fails.append(GateFailure("chat", rel, f"line {n}: {problem}"))
    if bad > _MAX_LISTED:
        fails.append(GateFailure("chat", rel, f"{bad} bad lines in all (first {_MAX_LISTED} listed)"))
    if expected is not None and n != expected:
        fails.append(GateFailure("chat", rel, f"{n} lines, but the stats say {expected} {what}"))
    return fails


@gate("chat", stage="text", markers=lambda layout: [layout.chat_combined(), layout.chat_stats()])
def chat_gates(ctx) -> list[GateFailure | GateNote]:
    """combined.jsonl exists, is non-empty, has as many lines as the stats' "written", and every
    line parses with the exact schema; the same for train/valid when the stats list a split.

    Every line is parsed by `verify` and right after `prepare text`; a plain rerun of `fetch`
    only counts lines (the file is unchanged unless prepare ran), so a rerun stays nearly free."""
    layout = ctx if isinstance(ctx, Layout) else ctx.layout
    parse = isinstance(ctx, Layout) or ctx.thorough or "text" in ctx.required_stages
    if not raw_files(layout):
        return []  # the text bucket is not there: nothing to check
    combined = layout.chat_combined()
    rel = layout.relative(combined)
    if not combined.is_file():
        return [GateFailure("chat", rel, "missing; run `persian-data prepare text`")]
    if combined.stat().st_size == 0:
        return [GateFailure("chat", rel, "empty")]
    fails: list[GateFailure | GateNote] = []
    stats_path = layout.chat_stats()
    stats: dict[str, Any] | None = None
    try:
        stats = orjson.loads(stats_path.read_bytes())
        if not isinstance(stats, dict) or not isinstance(stats.get("written"), int):
            raise ValueError("no integer 'written'")
    except FileNotFoundError:
        fails.append(GateFailure("chat", layout.relative(stats_path), "missing; rerun `persian-data prepare text`"))
        stats = None
    except (orjson.JSONDecodeError, ValueError) as e:
        fails.append(GateFailure("chat", layout.relative(stats_path), f"unreadable: {e}"))
        stats = None
    fails += _check_jsonl(layout, combined, stats["written"] if stats else None, "written", parse)
    splits = (stats or {}).get("splits")
    if isinstance(splits, dict):
        for name in ("train", "valid"):
            p = layout.chat_split(name)
            if not p.is_file():
                fails.append(GateFailure("chat", layout.relative(p), "missing, but the stats list a split"))
                continue
            fails += _check_jsonl(layout, p, splits.get(name), f"in {name}", parse)
    return fails
