"""A speech unit that is safe to run twice (an engine that retries: a Ray node died mid-unit), and
whose result goes back to the driver through the root, not through the engine.

Clips. A unit writes its clips straight into the split's staging audio folder with `write_new`,
as on the local engine (the folder is renamed into place once every unit is done, so nothing
partial ever reaches the layout). `write_new` never overwrites (a second clip of one name would be
a bug, not something to paper over), so a rerun of a unit whose first run died after writing
clips fails on the first clip it writes, with FileExistsError. Then, and only then, the unit runs
again into a folder of its own beside the audio folder and renames its clips in, replacing
whatever the dead run left: the same names, the same bytes. A rename keeps a file's size, mtime
and inode, so what the unit reports (`UnitResult.written`) still names the placed files for the
hash cache. Writing every clip apart and renaming it in (what this did first: a new folder per
unit, 49k renames between two folders) cost the units 1.3x to 5x their system time on this
machine's ext4 (the local engine made to do it, same hour: 12.5 s against 9.8 s, 44 s against 9 s).

Results. A unit's result (manifest and export lines, ~2 MB per 1,000 clips, and the clips'
digests, ~130 KB) is written beside the audio folder as one file; the task returns only its name
and row count (`SetAside`), and the driver reads the result back from the root (`load_result`),
which every node sees anyway. Through Ray's object store the same bytes were serialized into a
node's store, pulled across to the driver's node, and deserialized: more CPU on machines the
units already keep busy. A result lost with its node makes Ray run the unit again: the driver
reads the file of the run whose answer it got. The file is a pickle, as Ray's own results are,
written and read by our own processes inside the root's staging.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import uuid
from pathlib import Path
from typing import Any, Callable

from ..corpora.speech_clips import UnitContext, UnitResult

ATTEMPTS = ".attempts"  # beside staging/<split>/audio, never inside it (that folder is renamed into place):
# results set aside, and the folders of units run again


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
    attempts = audio.parent / ATTEMPTS
    try:
        result = fn(args, ctx)
    except FileExistsError:  # an earlier run of this unit died after writing clips
        result = _run_apart(fn, args, ctx, attempts / uuid.uuid4().hex)
    attempts.mkdir(exist_ok=True)
    path = attempts / f"{uuid.uuid4().hex}.result"
    with open(path, "wb") as handle:  # not fsynced: the driver reads it back before anything is placed
        pickle.dump(result, handle, protocol=pickle.HIGHEST_PROTOCOL)
    return SetAside(str(path), result.rows)


def _run_apart(fn: Callable[[Any, UnitContext], UnitResult], args: Any, ctx: UnitContext, own: Path) -> UnitResult:
    """The unit again into a folder of its own, its clips then renamed over what a dead run left."""
    own.mkdir(parents=True)
    result = fn(args, dataclasses.replace(ctx, staging_audio=str(own)))
    for name, *_ in result.written:
        os.replace(own / name, Path(ctx.staging_audio) / name)
    own.rmdir()
    return result


def load_result(result: UnitResult | SetAside) -> UnitResult:
    """A unit's result: read back (and its file removed) when the unit set it aside."""
    if not isinstance(result, SetAside):
        return result
    path = Path(result.path)
    with open(path, "rb") as handle:
        loaded = pickle.load(handle)
    path.unlink()
    return loaded
