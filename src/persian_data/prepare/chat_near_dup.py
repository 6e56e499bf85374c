"""Near-duplicate questions across the whole corpus, in the parent process of the chat stage.

Pass 1 (the stage's main loop) writes every conversation that survives exact dedup to a staging
file in ``.persian-data/tmp`` and tells this class, line by line, which row (candidate) it belongs
to; the workers sent each row's MinHash signature. Once every file is read, `textclean.near_dup.
collapse` picks the rows to drop (each group keeps the row with the smallest key: the smallest
digest of its conversations, so the choice does not depend on input order), and pass 2 copies the
staging file to the final outputs without them. Memory: the signatures (~0.5 kB a row) and a few
bytes a line.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import orjson

EXAMPLE_PAIRS = 5


@dataclass
class Candidates:
    """Rows that wrote at least one line in pass 1: their signatures and keys; lines -> rows."""

    sig_parts: list[Any] = field(default_factory=list)  # textclean.near_dup.Signatures, per piece
    keys: list[bytes] = field(default_factory=list)
    line_row: array = field(default_factory=lambda: array("q"))
    line_file: array = field(default_factory=lambda: array("l"))
    line_valid: bytearray = field(default_factory=bytearray)
    line_user: array = field(default_factory=lambda: array("q"))
    line_assistant: array = field(default_factory=lambda: array("q"))

    def mark(self) -> tuple[int, int, int]:
        return len(self.sig_parts), len(self.keys), len(self.line_row)

    def rollback(self, marks: tuple[int, int, int]) -> None:
        parts, keys, lines = marks
        del self.sig_parts[parts:]
        del self.keys[keys:]
        for a in (self.line_row, self.line_file, self.line_valid, self.line_user, self.line_assistant):
            del a[lines:]

    def add_piece(self, sigs, rows: list[int], keys: list[bytes]) -> None:
        """`rows`: indices into this piece's signatures of the rows that wrote a line."""
        if rows:
            self.sig_parts.append(sigs.take(rows))
            self.keys.extend(keys)

    def add_line(self, row: int, file: int, valid: bool, n_user: int, n_assistant: int) -> None:
        self.line_row.append(row)
        self.line_file.append(file)
        self.line_valid.append(1 if valid else 0)
        self.line_user.append(n_user)
        self.line_assistant.append(n_assistant)


@dataclass
class NearDupResult:
    rows_collapsed: int = 0
    lines_removed: int = 0
    candidate_pairs: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)
    removed_per_file: dict[int, int] = field(default_factory=dict)
    removed_chars: dict[str, int] = field(default_factory=lambda: {"user": 0, "assistant": 0})
    removed_splits: dict[str, int] = field(default_factory=lambda: {"train": 0, "valid": 0})


def collapse_and_copy(cands: Candidates, staged: Path, write: Callable[[bytes, bool], None],
                      map_=None) -> NearDupResult:
    """Collapse the near-duplicate rows, then copy the staged lines that stay through
    `write(line, valid)`, in their order. `map_`: where the bands and confirmations run (`collapse`)."""
    from ..textclean.near_dup import Signatures, collapse

    sigs = Signatures.concat(cands.sig_parts)
    cands.sig_parts.clear()
    outcome = collapse(sigs, cands.keys, map_=map_)
    del sigs
    drop = outcome.drop
    result = NearDupResult(rows_collapsed=len(drop), candidate_pairs=outcome.candidates)
    pairs = outcome.pairs[:EXAMPLE_PAIRS]  # (partner, dropped, jaccard): the partner may itself be dropped (a chain)
    wanted = {i for kept, dropped, _ in pairs for i in (kept, dropped)}
    users: dict[int, str] = {}
    with open(staged, "rb") as fh:
        for n, line in enumerate(fh):
            row = cands.line_row[n]
            if row in wanted and row not in users:
                users[row] = orjson.loads(line)["messages"][1]["content"]
            valid = bool(cands.line_valid[n])
            if row in drop:
                result.lines_removed += 1
                f = cands.line_file[n]
                result.removed_per_file[f] = result.removed_per_file.get(f, 0) + 1
                result.removed_chars["user"] += cands.line_user[n]
                result.removed_chars["assistant"] += cands.line_assistant[n]
                result.removed_splits["valid" if valid else "train"] += 1
                continue
            write(line, valid)
    # masked here too (idempotent): with --pii keep the staged text holds personal data
    from ..textclean.pii import mask_pii

    result.examples = [{"similar_to": mask_pii(users.get(k, ""))[0], "dropped": mask_pii(users.get(d, ""))[0],
                        "jaccard": round(float(j), 3)} for k, d, j in pairs]
    return result
