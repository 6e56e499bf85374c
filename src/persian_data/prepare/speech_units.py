"""A speech unit that is safe to run twice (an engine that retries: a Ray node died mid-unit), and
whose bulk goes back to the driver through the root, not through the engine.

Clips. A unit writes its clips into the split's staging audio folder with `write_new`, which
never overwrites (a second clip of one name would be a bug, not something to paper over). A rerun
of a unit whose first run died halfway would meet its own earlier files there. So, on an engine
that retries, each run writes into a folder of its own beside the audio folder, then renames its
clips in, replacing whatever an earlier run of the same unit left: the same names, the same bytes.
A rename keeps a file's size, mtime and inode, so what the unit reports (`UnitResult.written`)
still names the placed files for the hash cache. A run that dies leaves only its own folder, which
goes with the split's staging.

Results. A unit's result (manifest and export lines, ~2 MB per 1,000 clips, and the clips'
digests, ~130 KB) is written into that folder as one file (`RESULT`); the task returns only its
name and row count (`SetAside`), and the driver reads the result back from the root
(`load_result`), which every node sees anyway. Through Ray's object store the same bytes were
serialized into a node's store, pulled across to the driver's node by the raylets, and
deserialized: more CPU on machines the units already keep busy. A result lost with its node makes
Ray run the unit again, into a folder of its own: the driver reads the run whose answer it got.
The file is a pickle, as Ray's own results are, written and read by our own processes inside the
root's staging.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import uuid
from pathlib import Path
from typing import Any, Callable

from ..corpora.speech_clips import UnitContext, UnitResult

ATTEMPTS = ".attempts"  # beside staging/<split>/audio, never inside it (that folder is renamed into place)
RESULT = "result.pickle"  # a finished run's UnitResult, in its own folder


@dataclasses.dataclass(frozen=True)
class SetAside:
    """What a unit's task returns: where its result waits, and its source rows (for progress)."""

    path: str
    rows: int


def run_unit_rerunnable(fn: Callable[[Any, UnitContext], UnitResult], args: Any,
                        ctx: UnitContext) -> UnitResult | SetAside:
    if ctx.staging_audio is None:  # --no-extract: nothing written, nothing to replace
        return fn(args, ctx)
    audio = Path(ctx.staging_audio)
    own = audio.parent / ATTEMPTS / uuid.uuid4().hex
    own.mkdir(parents=True)
    result = fn(args, dataclasses.replace(ctx, staging_audio=str(own)))
    for name, *_ in result.written:
        os.replace(own / name, audio / name)
    with open(own / RESULT, "wb") as handle:  # not fsynced: the driver reads it back before anything is placed
        pickle.dump(result, handle, protocol=pickle.HIGHEST_PROTOCOL)
    return SetAside(str(own / RESULT), result.rows)


def load_result(result: UnitResult | SetAside) -> UnitResult:
    """A unit's result: read back (its file and folder then removed) when the unit set it aside."""
    if not isinstance(result, SetAside):
        return result
    path = Path(result.path)
    with open(path, "rb") as handle:
        loaded = pickle.load(handle)
    path.unlink()
    path.parent.rmdir()
    return loaded
