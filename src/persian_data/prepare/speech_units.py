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

Lines. A unit's manifest and export lines (~2 MB per 1,000 clips) are written into that folder as
one file (`LINES`); the task returns only its tallies and the file's name (`PartResult`), and the
driver reads the lines back from the root (`load_lines`), which every node sees anyway. Through
Ray's object store the same bytes were serialized into a node's store, pulled across to the
driver's node by the raylets, and deserialized: more CPU on a machine the workers already fill.
A result lost with its node makes Ray run the unit again, into a folder of its own: the lines of
the run whose result the driver got are the ones it reads.
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from pathlib import Path
from typing import Any, Callable

from ..corpora.speech_clips import UnitContext, UnitResult

ATTEMPTS = ".attempts"  # beside staging/<split>/audio, never inside it (that folder is renamed into place)
LINES = "lines.bin"  # a finished run's manifest and export lines, in its own folder
_FIELDS = ("lines", "nemo", "recordings", "supervisions")  # UnitResult's byte fields, in file order


@dataclasses.dataclass
class PartResult(UnitResult):
    """A unit's result without its lines: those wait in `part` (a file), `sizes` bytes per field."""

    part: str = ""
    sizes: tuple[int, ...] = ()


def run_unit_rerunnable(fn: Callable[[Any, UnitContext], UnitResult], args: Any, ctx: UnitContext) -> UnitResult:
    if ctx.staging_audio is None:  # --no-extract: nothing written, nothing to replace
        return fn(args, ctx)
    audio = Path(ctx.staging_audio)
    own = audio.parent / ATTEMPTS / uuid.uuid4().hex
    own.mkdir(parents=True)
    result = fn(args, dataclasses.replace(ctx, staging_audio=str(own)))
    for name, *_ in result.written:
        os.replace(own / name, audio / name)
    return _set_lines_aside(result, own / LINES)


def _set_lines_aside(result: UnitResult, path: Path) -> PartResult:
    blobs = [getattr(result, name) for name in _FIELDS]
    with open(path, "wb") as handle:  # not fsynced: the driver reads it back before anything is placed
        for blob in blobs:
            handle.write(blob)
    tallies = {f.name: getattr(result, f.name) for f in dataclasses.fields(UnitResult) if f.name not in _FIELDS}
    return PartResult(**tallies, part=str(path), sizes=tuple(len(blob) for blob in blobs))


def load_lines(result: UnitResult) -> UnitResult:
    """The unit's result with its lines, read back (and the file and its folder removed) when a
    unit set them aside; any other result as it is."""
    if not isinstance(result, PartResult):
        return result
    path = Path(result.part)
    with open(path, "rb") as handle:
        data = memoryview(handle.read())
    at = 0
    for name, size in zip(_FIELDS, result.sizes):
        setattr(result, name, data[at:at + size])
        at += size
    if at != len(data):
        raise OSError(f"{path}: {len(data)} bytes, the unit wrote {at}: changed under the run")
    path.unlink()
    path.parent.rmdir()
    return result
