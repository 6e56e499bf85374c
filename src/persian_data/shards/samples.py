"""The samples of one prepared split, read from its manifest, with what the shard writers need.

A sample is one manifest line: its id, the audio file (root-relative `audio_path`, stat'ed here:
shards are cut by the exact bytes they will hold), the audio's sha256 as the manifest records it,
and the metadata every format carries. Each clip's bytes are checked against that sha256 when they
are copied into a shard: the hash cache vouches for a file unchanged since it was hashed (a stat),
the others are hashed in memory on the way.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Callable

import orjson

from ..integrity import HashCache
from ..layout import Layout
from .corpus import CorpusSplit
from .errors import ShardsDataError, ShardsInputError

# Manifest keys every prepared split has, in order (see prepare/speech.py); the rest are source columns.
COMMON_KEYS = ("id", "split", "audio_path", "audio_ref", "duration", "frames", "sample_rate", "channels", "sha256",
               "text", "text_normalized")
REQUIRED_KEYS = ("id", "audio_path", "duration", "frames", "sample_rate", "sha256", "text", "text_normalized")


@dataclass(slots=True)
class Sample:
    id: str
    path: str  # absolute path of the audio file
    ext: str  # its extension, lower case (mp3, wav): the member's extension in every format
    sha256: str  # as the manifest records it
    duration: float
    line: int  # manifest line number, for messages
    size: int
    stat: tuple[int, int, int]  # (size, mtime_ns, inode) when planned: a changed file is not trusted
    trusted: bool = False  # the hash cache knows this file by that sha256, with this stat
    # Set by the format's describer, once, from the manifest line:
    members: tuple = ()  # the sample's tar members: (name, bytes, or None for the audio)
    extra: bytes = b""  # its line in the shard's sidecar (a Shar cut, a NeMo entry), if the format has one
    tar_bytes: int = 0  # what its members take in a tar


Describe = Callable[[Sample, dict], None]
"""Sets a sample's members, extra and tar_bytes from its manifest line (documents.describer)."""


FromBytes = Callable[[bytes, int], "Sample | None"]
FromLine = Callable[[dict, int], "Sample | None"]
Planner = Callable[[str, set], "tuple[FromBytes, FromLine] | None"]
"""(root with a trailing slash, the ids seen) -> the compiled loop body from a line's bytes and from its
dict (documents.line_planner), or None."""


def read_samples(layout: Layout, corpus: CorpusSplit, cache: HashCache | None, describe: Describe,
                 planner: Planner | None = None) -> list[Sample]:
    """Every line of the split's manifest as a Sample, in manifest order. The lines live only until
    `describe` has turned them into bytes: 49k dicts would cost ~150 MB. A clip the
    hash cache knows by the manifest's sha256 is planned by the size and stat recorded there, with
    no stat (the writer's fstat compares them: a changed clip is hashed, or refused); the others
    are stat'ed here. `planner` gives the same loop body in C, for every line it can take: from the
    line's bytes, else from its dict."""
    samples: list[Sample] = []
    seen: set[str] = set()
    root = os.fspath(layout.root) + "/"
    from_bytes, from_line = (planner(root, seen) if planner is not None else None) or (None, None)
    recorded = cache.recorded if cache is not None else _unknown
    loads, required, append = orjson.loads, _REQUIRED, samples.append
    with open(corpus.manifest, "rb") as handle:
        for number, raw in enumerate(handle, 1):
            if from_bytes is not None:
                sample = from_bytes(raw, number)
                if sample is not None:
                    append(sample)
                    continue
            try:
                line = loads(raw)
            except orjson.JSONDecodeError:
                line = None
            if from_line is not None:
                sample = from_line(line, number)
                if sample is not None:
                    append(sample)
                    continue
            if type(line) is not dict or not line.keys() >= required or line.get("audio_ref") is not None:
                if not raw.strip():
                    continue
                line = _parse(corpus, number, raw)  # says what is wrong with the line
            _check_values(corpus, number, line)
            ident, audio, sha256 = line["id"], line["audio_path"], line["sha256"]
            if ident in seen:
                raise ShardsDataError(f"{corpus.manifest}:{number}: id {ident!r} appears twice in the manifest; "
                                      f"run `persian-data prepare speech --only {corpus.key}` again")
            seen.add(ident)
            path = root + audio
            known = recorded(path)
            trusted = known is not None and known[0] == sha256
            stat = tuple(known[1]) if trusted else _stat(path, corpus, number, audio)
            name = audio.rpartition("/")[2]
            sample = Sample(ident, path, name.rpartition(".")[2].lower() if "." in name else "bin", sha256,
                            float(line["duration"]), number, stat[0], stat, trusted)
            describe(sample, line)
            append(sample)
    return samples


def _unknown(path: str) -> None:
    return None


def _stat(path: str, corpus: CorpusSplit, number: int, audio: str) -> tuple[int, int, int]:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ShardsDataError(f"{audio} ({corpus.manifest.name}:{number}) is missing; run `persian-data verify --only "
                              f"{corpus.key}` to see what else is, then `persian-data prepare speech --only "
                              f"{corpus.key}`") from None
    return st.st_size, st.st_mtime_ns, st.st_ino


_REQUIRED = frozenset(REQUIRED_KEYS)


def _parse(corpus: CorpusSplit, number: int, raw: bytes) -> dict:
    try:
        line = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ShardsDataError(f"{corpus.manifest}:{number}: not a JSON line ({exc}); run `persian-data prepare "
                              f"speech --only {corpus.key}` again") from None
    if not isinstance(line, dict) or not line.keys() >= _REQUIRED:
        missing = [k for k in REQUIRED_KEYS if not isinstance(line, dict) or k not in line]
        raise ShardsDataError(f"{corpus.manifest}:{number}: not a manifest line (no {', '.join(missing)}); run "
                              f"`persian-data prepare speech --only {corpus.key}` again")
    if line.get("audio_ref") is not None:
        raise ShardsInputError(f"{corpus.manifest}: prepared with --no-extract (audio left inside the source "
                               f"files); shards copy audio files: run `persian-data prepare speech --only "
                               f"{corpus.key}` without --no-extract first")
    return line


def _check_values(corpus: CorpusSplit, number: int, line: dict) -> None:
    """The values a sample is planned from have the types prepare writes: a hand-edited line that
    does not gets one line naming the field (not a traceback from deep inside a format)."""
    problem = _value_problem(line)
    if problem:
        raise ShardsDataError(f"{corpus.manifest}:{number}: {problem}; run `persian-data prepare speech --only "
                              f"{corpus.key}` again")


def _value_problem(line: dict) -> str | None:
    """What is wrong with a line's values, or None. Texts are named by type only: their words stay
    out of the log."""
    for key in ("id", "audio_path", "sha256", "text", "text_normalized"):
        value = line[key]
        if type(value) is not str:
            return f"{key} is a {type(value).__name__}, not a string"
        if not value and key in ("id", "audio_path", "sha256"):
            return f"{key} is empty"
    duration, frames, rate = line["duration"], line["frames"], line["sample_rate"]
    if type(duration) not in (int, float) or not _finite(duration) or duration < 0:
        return f"duration is {_shown(duration)}, not a number of seconds"
    if type(frames) is not int or frames < 0:
        return f"frames is {_shown(frames)}, not a count of samples"
    if type(rate) is not int or rate <= 0:
        return f"sample_rate is {_shown(rate)}, not a rate in Hz"
    return None


def _finite(value: int | float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int past the largest float
        return False


def _shown(value) -> str:
    """A number as it is; anything else by its type (a string could hold anything)."""
    return repr(value) if type(value) in (int, float) and len(repr(value)) <= 24 else f"a {type(value).__name__}"


def metadata_of(corpus: CorpusSplit) -> Callable[[dict], dict]:
    """line -> what every format carries: id, corpus, split, duration, frames, sample_rate, channels,
    sha256, text, text_normalized, speaker, gender (lower case; None when unknown), then the source
    columns under their own names (a name already taken keeps the common value). What does not
    change from line to line is looked up once per split."""
    key, split, speaker_column, gender_column, taken = (corpus.key, corpus.split, corpus.speaker_column,
                                                        corpus.gender_column, TAKEN)

    def meta_of(line: dict) -> dict:
        speaker = line.get(speaker_column) if speaker_column else None
        gender = line.get(gender_column) if gender_column else None
        if isinstance(gender, str):
            gender = gender.strip().lower()
        get = line.get
        meta = {"id": line["id"], "corpus": key, "split": split, "duration": line["duration"],
                "frames": line["frames"], "sample_rate": line["sample_rate"], "channels": get("channels", 1),
                "sha256": line["sha256"], "text": line["text"], "text_normalized": line["text_normalized"],
                "speaker": speaker or None, "gender": gender or None}
        for name, value in line.items():
            if name not in taken:
                meta[name] = value
        return meta

    return meta_of


TAKEN = frozenset(COMMON_KEYS) | {"corpus", "speaker", "gender"}  # the keys `metadata_of` sets itself
