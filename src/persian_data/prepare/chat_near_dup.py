"""Near-duplicate questions across the whole corpus, in the parent process of the chat stage.

Pass 1 (the stage's main loop) writes every conversation that survives exact dedup to a staging
file in ``.persian-data/tmp`` and tells this class, line by line, which row (candidate) it belongs
to; the workers sent each row's MinHash signature, streamed here to temporary files. Once every
file is read, `textclean.near_dup.collapse` picks the rows to drop (each group keeps the row with
the smallest key: the smallest digest of its conversations, so the choice does not depend on
input order), and pass 2 copies the staging file to the final outputs without them. Memory: ~30
bytes a row and a few bytes a line; the signatures (~0.5 kB a row) stay on disk, mapped back
read-only for the collapse.
"""

from __future__ import annotations

import tempfile
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import orjson

EXAMPLE_PAIRS = 5


@dataclass
class Candidates:
    """Rows that wrote at least one line in pass 1: their signatures and keys; lines -> rows.

    The signatures are streamed to two anonymous temporary files as they come (the shingle hashes
    and the MinHash values, raw uint32), with only each row's shingle offset kept in memory, and
    mapped back read-only for the collapse: memory holds ~30 bytes a row instead of the ~0.5 kB of
    its signature (and no second, concatenated copy of them all at the end)."""

    tmp_dir: Path | None = None  # where the signature files go (None: the system's temp folder)
    keys: list[bytes] = field(default_factory=list)
    line_row: array = field(default_factory=lambda: array("q"))
    line_file: array = field(default_factory=lambda: array("l"))
    line_valid: bytearray = field(default_factory=bytearray)
    line_user: array = field(default_factory=lambda: array("q"))
    line_assistant: array = field(default_factory=lambda: array("q"))
    line_bytes: array = field(default_factory=lambda: array("q"))  # each staged line's length, "\n" included
    offsets: array = field(default_factory=lambda: array("q", [0]))  # row i: shingles[offsets[i]:offsets[i+1]]
    num_perm: int = 0

    def __post_init__(self) -> None:
        self._shingles = tempfile.TemporaryFile(prefix="near_dup_shingles_", dir=self.tmp_dir)
        self._values = tempfile.TemporaryFile(prefix="near_dup_values_", dir=self.tmp_dir)

    def close(self) -> None:
        self._shingles.close()
        self._values.close()

    def mark(self) -> tuple[int, int, int]:
        return len(self.keys), len(self.line_row), len(self.offsets)

    def rollback(self, marks: tuple[int, int, int]) -> None:
        keys, lines, offsets = marks
        del self.keys[keys:]
        for a in (self.line_row, self.line_file, self.line_valid, self.line_user, self.line_assistant, self.line_bytes):
            del a[lines:]
        del self.offsets[offsets:]
        self._shingles.truncate(self.offsets[-1] * 4)
        self._shingles.seek(0, 2)
        self._values.truncate((len(self.offsets) - 1) * self.num_perm * 4)
        self._values.seek(0, 2)

    def add_piece(self, sigs, rows: list[int], keys: list[bytes]) -> None:
        """`rows`: indices into this piece's signatures of the rows that wrote a line."""
        if not rows:
            return
        self.num_perm = sigs.values.shape[1]
        picked = sigs.take(rows)
        self._shingles.write(np.ascontiguousarray(picked.shingles, dtype=np.uint32).tobytes())
        self._values.write(np.ascontiguousarray(picked.values, dtype=np.uint32).tobytes())
        base = self.offsets[-1]
        self.offsets.extend((picked.offsets[1:] + base).tolist())
        self.keys.extend(keys)

    def signatures(self):
        """Every row's signature, mapped read-only from the files (`textclean.near_dup.Signatures`)."""
        from ..textclean.near_dup import NUM_PERM, Signatures

        n = len(self.offsets) - 1
        num_perm = self.num_perm or NUM_PERM
        for f in (self._shingles, self._values):
            f.flush()
        # plain ndarray views of the maps (a memmap slice costs ~0.1 ms in numpy's wrappers)
        shingles = (np.asarray(np.memmap(self._shingles, dtype=np.uint32, mode="r", shape=(self.offsets[-1],)))
                    if self.offsets[-1] else np.zeros(0, np.uint32))
        values = (np.asarray(np.memmap(self._values, dtype=np.uint32, mode="r", shape=(n, num_perm)))
                  if n else np.zeros((0, num_perm), np.uint32))
        return Signatures(shingles, np.frombuffer(self.offsets, dtype=np.int64), values)

    def add_lines(self, rows: list[int], file: int, valid: list[bool], n_user: list[int], n_assistant: list[int],
                  n_bytes: list[int]) -> None:
        """`add_line` for each line of a piece (all of one file), at once."""
        self.line_bytes.extend(n_bytes)
        self.line_row.extend(rows)
        self.line_file.extend([file] * len(rows))
        self.line_valid.extend(bytes(valid))
        self.line_user.extend(n_user)
        self.line_assistant.extend(n_assistant)


@dataclass
class NearDupResult:
    rows_collapsed: int = 0
    lines_removed: int = 0
    candidate_pairs: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)
    removed_per_file: dict[int, int] = field(default_factory=dict)
    removed_chars: dict[str, int] = field(default_factory=lambda: {"user": 0, "assistant": 0})
    removed_splits: dict[str, int] = field(default_factory=lambda: {"train": 0, "valid": 0})


_BLOCK = 32 << 20  # bytes read at a time from the staging file


def _line_ends(staged: Path, line_bytes: array) -> np.ndarray:
    """The byte offset just past each line of the staging file, from the lengths recorded as the
    lines were written (the file is not read for them)."""
    ends = np.cumsum(np.frombuffer(line_bytes, dtype=np.int64)) if len(line_bytes) else np.zeros(0, np.int64)
    size = staged.stat().st_size
    if (int(ends[-1]) if len(ends) else 0) != size:  # cannot happen: the stage wrote one line per add_line
        raise AssertionError(f"near-dup: the staging file holds {size} bytes, {int(ends[-1]) if len(ends) else 0} recorded")
    return ends


def collapse_and_copy(cands: Candidates, staged: Path, write: Callable[[bytes, bool], None],
                      map_=None) -> NearDupResult:
    """Collapse the near-duplicate rows, then copy the staged lines that stay through
    `write(lines, valid)`, in their order: each call gets a run of whole consecutive lines of the
    same split (the file is copied in blocks around the removed lines, not line by line).
    `map_`: where the bands and confirmations run (`collapse`)."""
    from ..textclean.near_dup import collapse

    sigs = cands.signatures()
    outcome = collapse(sigs, cands.keys, map_=map_)
    del sigs
    cands.close()
    drop = outcome.drop
    result = NearDupResult(rows_collapsed=len(drop), candidate_pairs=outcome.candidates)
    rows = np.frombuffer(cands.line_row, dtype=np.int64)
    n = len(rows)
    removed = np.isin(rows, np.fromiter(drop, dtype=np.int64, count=len(drop))) if drop else np.zeros(n, bool)
    valid = np.frombuffer(bytes(cands.line_valid), dtype=np.uint8).astype(bool)
    files = np.asarray(cands.line_file, dtype=np.int64)
    result.lines_removed = int(removed.sum())
    for f, k in zip(*np.unique(files[removed], return_counts=True)):
        result.removed_per_file[int(f)] = int(k)
    result.removed_chars["user"] = int(np.asarray(cands.line_user, dtype=np.int64)[removed].sum())
    result.removed_chars["assistant"] = int(np.asarray(cands.line_assistant, dtype=np.int64)[removed].sum())
    result.removed_splits["valid"] = int((removed & valid).sum())
    result.removed_splits["train"] = result.lines_removed - result.removed_splits["valid"]
    ends = _line_ends(staged, cands.line_bytes)
    starts = np.concatenate(([0], ends[:-1])) if n else ends
    pairs = outcome.pairs[:EXAMPLE_PAIRS]  # (partner, dropped, jaccard): the partner may itself be dropped (a chain)
    wanted = {i for kept, dropped, _ in pairs for i in (kept, dropped)}
    users: dict[int, str] = {}
    with open(staged, "rb") as fh:
        for row in wanted:  # the user turn of a row, from its first line
            first = int(np.flatnonzero(rows == row)[0])
            fh.seek(int(starts[first]))
            users[row] = orjson.loads(fh.read(int(ends[first] - starts[first])))["messages"][1]["content"]
        # runs of consecutive lines alike (kept or not, train or valid): copied, or skipped, whole
        kind = removed.astype(np.uint8) * 2 + valid
        cuts = np.concatenate(([0], np.flatnonzero(kind[1:] != kind[:-1]) + 1, [n])) if n else np.zeros(1, np.int64)
        for lo, hi in zip(cuts[:-1].tolist(), cuts[1:].tolist()):
            if removed[lo]:
                continue
            fh.seek(int(starts[lo]))
            left = int(ends[hi - 1] - starts[lo])
            while left:  # whole lines, at most ~_BLOCK bytes a call
                take = left if left <= _BLOCK else int(ends[np.searchsorted(ends, fh.tell() + _BLOCK) - 1] - fh.tell()) or left
                write(fh.read(take), bool(valid[lo]))
                left -= take
    # masked here too (idempotent): with --pii keep the staged text holds personal data
    from ..textclean.pii import mask_pii

    result.examples = [{"similar_to": mask_pii(users.get(k, ""))[0], "dropped": mask_pii(users.get(d, ""))[0],
                        "jaccard": round(float(j), 3)} for k, d, j in pairs]
    return result
