"""What the readers of the speech shapes share: split order, one clip's check, the units of work.

Below both the orchestrator (`prepare.speech`) and the readers (`corpora.speech_parquet`,
`corpora.speech_tsv_tar`), so arrows point one way: orchestrator -> readers -> this module.

A speech reader (the `reader` of a speech `Source`) answers `plan(layout, source)` (the splits,
their inputs and units of work), `source_rows(layout, source)` (rows per published split, for the
gate), `read_referenced(layout, source, container, refs)` (the bytes --no-extract manifests
point at) and `worker_imports()` (modules the worker processes load before they fork).

- `probe` checks one clip from its bytes (soundfile; header only unless `deep`).
- `Collector` turns a unit's clips into manifest lines, rejects and tallies; a worker runs it.
- `SplitPlan` is what a corpus reader plans for one split: its inputs and its units of work.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable, NamedTuple

import orjson

from ..errors import PersianDataError
from .speech_formats import lhotse_recording, lhotse_supervision, nemo_line

SPLIT_ORDER = ("train", "validation", "test")
# The manifest's own keys; a source column of the same name is written `source_<name>`.
MANIFEST_KEYS = frozenset(("id", "split", "audio_path", "audio_ref", "duration", "frames", "sample_rate", "channels",
                           "sha256", "text", "text_normalized"))


class SpeechPrepareError(PersianDataError):
    """A speech source cannot be prepared (unreadable shard, TSV without its tar, ...)."""


def split_sort_key(name: str) -> tuple[int, str]:
    return (SPLIT_ORDER.index(name) if name in SPLIT_ORDER else len(SPLIT_ORDER), name)


def manifest_key(column: str) -> str:
    """The manifest key a source column is written under."""
    return f"source_{column}" if column in MANIFEST_KEYS else column


def clip_id(name: str) -> str:
    """A clip's id from its file name: the name without its extension."""
    stem, dot, _ = name.rpartition(".")
    return stem if dot and stem else name


_MAGIC = ((b"RIFF", ".wav"), (b"fLaC", ".flac"), (b"OggS", ".ogg"), (b"ID3", ".mp3"), (b"\xff\xfb", ".mp3"),
          (b"\xff\xf3", ".mp3"), (b"\xff\xf2", ".mp3"))


def sniff_extension(data: bytes) -> str:
    """The file extension of audio bytes from their first bytes ("" when unknown)."""
    return next((ext for magic, ext in _MAGIC if data.startswith(magic)), "")


# == worker side: one clip ======================================================================

class Reject(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason, detail)
        self.reason, self.detail = reason, detail


class Probe(NamedTuple):
    frames: int
    sample_rate: int
    channels: int


_MAX_FRAMES = 1 << 40
_DEEP_BLOCK = 1 << 16


def probe(data: bytes, deep: bool = False) -> Probe:
    """Check one clip with soundfile. Header only by default; `deep` decodes every frame.

    Raises Reject(reason) with reason unreadable, unknown_format, zero_duration, decode_failed or
    short_decode (deep: fewer frames decode than the header announces).
    """
    import soundfile as sf

    try:
        handle = sf.SoundFile(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 - anything soundfile refuses is unreadable
        raise Reject("unreadable", _short(exc)) from None
    with handle:
        sr, ch, frames = handle.samplerate, handle.channels, handle.frames
        if sr <= 0 or ch <= 0:
            raise Reject("unknown_format", f"sample rate {sr}, channels {ch}")
        header_known = 0 <= frames < _MAX_FRAMES
        if deep or not header_known:
            decoded = _decode_count(handle, ch)
            if header_known and frames - decoded > max(2304, frames // 100):
                raise Reject("short_decode", f"header says {frames} frames, {decoded} decode")
            frames = decoded
    if frames <= 0:
        raise Reject("zero_duration", "0 frames")
    return Probe(int(frames), int(sr), int(ch))


def _decode_count(handle, channels: int) -> int:
    import numpy as np

    out = np.empty((_DEEP_BLOCK, channels), dtype=np.float32)
    total = 0
    try:
        while True:
            got = handle.read(_DEEP_BLOCK, dtype="float32", always_2d=True, out=out)
            total += len(got)
            if len(got) < _DEEP_BLOCK:
                return total
    except Exception as exc:  # noqa: BLE001
        raise Reject("decode_failed", f"after {total} frames: {_short(exc)}") from None


_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-f]+>")


def _short(exc: BaseException) -> str:
    """First line of an error, without object addresses (rejects must be the same run to run)."""
    text = _REPR.sub("clip", str(exc)).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def safe_name(name: str | None) -> bool:
    """A plain file name that cannot leave its folder or hide: no separators, no dot prefix."""
    return bool(name) and "/" not in name and "\\" not in name and "\x00" not in name \
        and not name.startswith(".") and len(name.encode("utf-8", "surrogatepass")) <= 255


def unsafe_member_path(name: str) -> bool:
    """Absolute, drive-letter, backslash or `..` paths (tar member names)."""
    return name.startswith("/") or "\\" in name or (len(name) > 1 and name[1] == ":") \
        or ".." in PurePosixPath(name).parts or "\x00" in name


def write_new(path: str, data: bytes) -> os.stat_result:
    """Create `path` (never overwrite, never follow a link), write all of `data`, and return the
    file's stat as the write left it: the hash cache keys the digest of these bytes to exactly
    that (size, mtime, inode), so a change made after this write is caught, not trusted."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        return os.fstat(fd)
    finally:
        os.close(fd)


@functools.lru_cache(maxsize=8192)
def normalize_text(text: str | None) -> str:
    """The shared normalizer, cached: FLEURS repeats each sentence once per speaker."""
    from ..normalize import normalize

    return normalize(text or "")


def normalizer_fingerprint() -> str:
    """Changes when the shared normalizer's code changes: finished splits are then redone."""
    from .. import normalize as module

    return hashlib.sha256(Path(module.__file__).read_bytes()).hexdigest()[:16]


@dataclass(frozen=True)
class UnitContext:
    """What a worker needs to turn source rows into manifest lines (picklable)."""

    corpus: str  # folder name, e.g. commonvoice_fa
    split: str  # published split name
    audio_prefix: str  # root-relative final audio folder, ending in "/"
    staging_audio: str | None  # where to write clips; None = --no-extract
    deep: bool
    exports: tuple[str, ...] = ()  # export formats whose lines to build beside the manifest's
    root: str = ""  # the layout root (lhotse sources are absolute paths)
    nemo_audio: str = ""  # the audio folder relative to the NeMo manifest's folder
    content: str = ""  # the corpus's content folder (root-relative): audio files a path column names
    speaker: str | None = None  # manifest column naming the speaker (the corpus's SpeechPolicy)
    gender: str | None = None  # manifest column holding the gender

    def relative(self, path: Path) -> str:
        """Root-relative POSIX path of a file under the root."""
        return Path(path).relative_to(self.root).as_posix()


class ExportLines(NamedTuple):
    """A split's export lines, uncompressed: NeMo manifest, lhotse recordings, lhotse supervisions."""

    nemo: bytes
    recordings: bytes
    supervisions: bytes


@dataclass
class UnitResult:
    lines: bytes = b""
    rows: int = 0  # source rows seen (clips + row rejects), for progress
    clips: int = 0
    seconds: float = 0.0
    speakers: set = field(default_factory=set)
    genders: Counter = field(default_factory=Counter)
    rejects: list = field(default_factory=list)
    # (file name, sha256 hex, size, mtime_ns, inode) of each clip written to staging: the parent
    # records them in the hash cache without a stat of its own (the folder is renamed, the files kept)
    written: list = field(default_factory=list)
    nemo: bytearray = field(default_factory=bytearray)  # export lines, when ctx.exports asks for them
    recordings: bytearray = field(default_factory=bytearray)
    supervisions: bytearray = field(default_factory=bytearray)


class Collector:
    """Builds a unit's manifest lines, rejects and tallies."""

    def __init__(self, ctx: UnitContext) -> None:
        self.ctx = ctx
        self.result = UnitResult()
        self._hash = hashlib.sha256

    def reject(self, reason: str, detail: str, *, source: str, clip_id: str | None = None,
               row: int | None = None, member: str | None = None) -> None:
        record: dict[str, Any] = {"split": self.ctx.split, "id": clip_id, "reason": reason, "detail": detail,
                                  "kind": "row" if row is not None else "member", "source": source}
        if row is not None:
            record["row"] = row
            self.result.rows += 1
        if member is not None:
            record["member"] = member
        self.result.rejects.append(record)

    def clip(self, *, clip_id: str, name: str, data: bytes, text: str | None, meta: dict,
             source: str, ref: dict, row: int | None, speaker: str | None, gender: str | None,
             expect_frames: int | None = None, text_normalized: str | None = None) -> bytes | None:
        """Check one clip; on success write it (or keep its reference) and return its line."""
        ctx = self.ctx
        try:
            info = probe(data, ctx.deep)
            if expect_frames is not None and info.frames != expect_frames:
                raise Reject("num_samples_mismatch", f"num_samples {expect_frames}, the audio has {info.frames}")
        except Reject as rej:
            self.reject(rej.reason, rej.detail, source=source, clip_id=clip_id, row=row, member=ref.get("member"))
            return None
        sha256 = self._hash(data).hexdigest()  # the one hash of these bytes: manifest, cache, checksums
        res = self.result
        if ctx.staging_audio is not None:
            st = write_new(os.path.join(ctx.staging_audio, name), data)
            res.written.append((name, sha256, st.st_size, st.st_mtime_ns, st.st_ino))
            head = {"id": clip_id, "split": ctx.split, "audio_path": ctx.audio_prefix + name}
        else:
            head = {"id": clip_id, "split": ctx.split, "audio_path": source, "audio_ref": ref}
        duration = info.frames / info.sample_rate
        head.update(duration=round(duration, 6), frames=info.frames, sample_rate=info.sample_rate,
                    channels=info.channels, sha256=sha256, text=text,
                    text_normalized=normalize_text(text) if text_normalized is None else text_normalized)
        head.update(meta)
        if ctx.exports:
            if "nemo" in ctx.exports:
                res.nemo += nemo_line(head, ctx.nemo_audio)
            if "lhotse" in ctx.exports:
                res.recordings += lhotse_recording(head, ctx.root)
                res.supervisions += lhotse_supervision(head, ctx.speaker, ctx.gender)
        res.rows += 1
        res.clips += 1
        res.seconds += duration
        if speaker:
            res.speakers.add(str(speaker))
        res.genders[str(gender or "").strip().lower() or "unknown"] += 1
        return orjson.dumps(head, option=orjson.OPT_APPEND_NEWLINE)


@dataclass
class SplitPlan:
    split: str  # published name
    source_split: str  # name in the source
    inputs: list[Path]  # source files; their identity keys the completion marker
    source_rows: int
    units: list[tuple[Callable[[Any, UnitContext], UnitResult], tuple]]
    identity: list[dict] = field(default_factory=list)  # taken before the work starts
