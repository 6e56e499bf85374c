"""A speech unit that is safe to run twice (an engine that retries: a Ray node died mid-unit).

A unit writes its clips into the split's staging audio folder with `write_new`, which never
overwrites (a second clip of one name would be a bug, not something to paper over). A rerun of a
unit whose first run died halfway would meet its own earlier files there. So, on an engine that
retries, each run writes into a folder of its own beside the audio folder, then renames its clips
in, replacing whatever an earlier run of the same unit left: the same names, the same bytes. A
rename keeps a file's size, mtime and inode, so what the unit reports (`UnitResult.written`) still
names the placed files for the hash cache. A run that dies leaves only its own folder, which goes
with the split's staging.
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from pathlib import Path
from typing import Any, Callable

from ..corpora.speech_clips import UnitContext, UnitResult

ATTEMPTS = ".attempts"  # beside staging/<split>/audio, never inside it (that folder is renamed into place)


def run_unit_rerunnable(fn: Callable[[Any, UnitContext], UnitResult], args: Any, ctx: UnitContext) -> UnitResult:
    if ctx.staging_audio is None:  # --no-extract: nothing written, nothing to replace
        return fn(args, ctx)
    audio = Path(ctx.staging_audio)
    own = audio.parent / ATTEMPTS / uuid.uuid4().hex
    own.mkdir(parents=True)
    result = fn(args, dataclasses.replace(ctx, staging_audio=str(own)))
    for name, *_ in result.written:
        os.replace(own / name, audio / name)
    own.rmdir()
    return result
