"""Reading a chat corpus's raw files: pieces converted by the engine's workers (or in this process),
taken back in file order, deduplicated and written; a damaged file taken back out whole."""

from __future__ import annotations

import logging
from collections import deque
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import orjson

from ..catalog import Source
from ..corpora.chat_pieces import CHUNK_BYTES, MAX_PIECE_BYTES
from ..errors import PersianDataError
from ..layout import Layout
from .chat_clean import mask_raw
from .chat_convert import _Converter, _Local, _work_piece, _worker_piece, taken_back
from .chat_near_dup import Candidates
from .chat_output import _dumps_reject, _Writers
from .chat_stats import ChatStats, FileStats, _add, _fmt, _merge, _merge_tally


class ChatSourceMissingError(PersianDataError):
    """The raw conversational dataset is not there (fetch the text source first)."""


class ChatError(PersianDataError):
    """The chat corpus cannot be built (e.g. every raw file is damaged)."""


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
                    res = taken_back(job.result())
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
        line_bytes: list[int] = []
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
                    line_bytes.append(len(line))
        file.chars["user"] += n_user_all
        file.chars["assistant"] += n_asst_all
        if cands is not None:
            cands.add_lines(line_rows, file.index, line_valid, line_user, line_asst, line_bytes)
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
