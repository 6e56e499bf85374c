"""The samples of one prepared split, read from its manifest, with what the shard writers need.

A sample is one manifest line: its id, the audio file (root-relative `audio_path`, stat'ed here:
shards are cut by the exact bytes they will hold), the audio's sha256 as the manifest records it,
and the metadata every format carries. Each clip's bytes are checked against that sha256 when they
are copied into a shard: the hash cache vouches for a file unchanged since it was hashed (a stat),
the others are hashed in memory on the way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

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
    size: int
    stat: tuple[int, int, int]  # (size, mtime_ns, inode) when planned: a changed file is not trusted
    sha256: str  # as the manifest records it
    trusted: bool  # the hash cache knows this very file (same stat) by that sha256
    duration: float
    meta: dict  # what the formats carry: id, corpus, split, duration, ..., speaker, gender, source columns


def read_samples(layout: Layout, corpus: CorpusSplit, cache: HashCache | None) -> list[Sample]:
    """Every line of the split's manifest as a Sample, in manifest order."""
    samples: list[Sample] = []
    where: list[str] = []
    seen: set[str] = set()
    with open(corpus.manifest, "rb") as handle:
        for number, raw in enumerate(handle, 1):
            if not raw.strip():
                continue
            line = _parse(corpus, number, raw)
            if line["id"] in seen:
                raise ShardsDataError(f"{corpus.manifest}:{number}: id {line['id']!r} appears twice in the manifest; "
                                      f"run `persian-data prepare speech --only {corpus.key}` again")
            seen.add(line["id"])
            samples.append(_sample(layout, corpus, line))
            where.append(f"{corpus.manifest.name}:{number}")
    _stat_all(layout, corpus, samples, where, cache)
    return samples


def _parse(corpus: CorpusSplit, number: int, raw: bytes) -> dict:
    try:
        line = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ShardsDataError(f"{corpus.manifest}:{number}: not a JSON line ({exc}); run `persian-data prepare "
                              f"speech --only {corpus.key}` again") from None
    if not isinstance(line, dict) or any(k not in line for k in REQUIRED_KEYS):
        missing = [k for k in REQUIRED_KEYS if not isinstance(line, dict) or k not in line]
        raise ShardsDataError(f"{corpus.manifest}:{number}: not a manifest line (no {', '.join(missing)}); run "
                              f"`persian-data prepare speech --only {corpus.key}` again")
    if line.get("audio_ref") is not None:
        raise ShardsInputError(f"{corpus.manifest}: prepared with --no-extract (audio left inside the source "
                               f"files); shards copy audio files: run `persian-data prepare speech --only "
                               f"{corpus.key}` without --no-extract first")
    return line


def _sample(layout: Layout, corpus: CorpusSplit, line: dict) -> Sample:
    speaker = line.get(corpus.speaker_column) if corpus.speaker_column else None
    gender = str(line.get(corpus.gender_column) or "").strip().lower() if corpus.gender_column else ""
    meta = {"id": line["id"], "corpus": corpus.key, "split": corpus.split, "duration": line["duration"],
            "frames": line["frames"], "sample_rate": line["sample_rate"], "channels": line.get("channels", 1),
            "sha256": line["sha256"], "text": line["text"], "text_normalized": line["text_normalized"],
            "speaker": speaker or None, "gender": gender or None}
    for key, value in line.items():  # source columns, under their own names (a common name keeps its value)
        if key not in COMMON_KEYS and key not in meta:
            meta[key] = value
    audio = line["audio_path"]
    name = audio.rpartition("/")[2]
    ext = name.rpartition(".")[2].lower() if "." in name else "bin"
    return Sample(line["id"], os.fspath(layout.root) + "/" + audio, ext, 0, (0, 0, 0), line["sha256"], False,
                  float(line["duration"]), meta)


def _stat_all(layout: Layout, corpus: CorpusSplit, samples: list[Sample], where: list[str],
              cache: HashCache | None) -> None:
    found = []
    for sample, at in zip(samples, where):
        try:
            st = os.stat(sample.path)
        except FileNotFoundError:
            raise ShardsDataError(f"{layout.relative(sample.path)} ({at}) is missing; run `persian-data verify "
                                  f"--only {corpus.key}` to see what else is, then `persian-data prepare speech "
                                  f"--only {corpus.key}`") from None
        sample.size, sample.stat = st.st_size, (st.st_size, st.st_mtime_ns, st.st_ino)
        found.append((sample.path, st))
    if cache is not None:
        for sample, known in zip(samples, cache.known_sha256(found)):
            sample.trusted = known == sample.sha256


def changed(sample: Sample, st: os.stat_result) -> bool:
    return (st.st_size, st.st_mtime_ns, st.st_ino) != sample.stat
