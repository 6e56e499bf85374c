"""The chat stage's output files while they are written: temp files in the layout's tmp, hashed as
they are written, with positions to roll a damaged raw file's lines back to; placed when the stage
ends well (`atomic.atomic_writer`)."""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

import orjson

from ..atomic import atomic_writer
from ..catalog import Source
from ..layout import Layout


def _dumps_reject(rec: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(rec) + b"\n"
    except (TypeError, orjson.JSONEncodeError):  # lone surrogates, huge ints: escape everything
        return json.dumps(rec, ensure_ascii=True).encode("ascii") + b"\n"


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
