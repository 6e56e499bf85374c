"""The three shard formats: what each sample becomes, and the files of one shard.

WebDataset (the Hub's webdataset docs): `<split>-NNNNNN.tar`; per sample `<key>.json` (the
metadata) then `<key>.<ext>` (the audio bytes as they are in datasets/). A key must not hold a
dot (webdataset, the Hub's loader and NeMo's reader split a member name at its first dot), so
`key` is the id with `%`, `.` and `/` percent-escaped (`id` is in the JSON as it is).

lhotse Shar (lhotse.shar): `cuts.NNNNNN.jsonl.gz` (one MonoCut per line, its recording a Shar
placeholder) and `recording.NNNNNN.tar` (`<cut id>.<ext>` then `<cut id>.json`, the recording
manifest, as lhotse's AudioTarWriter orders them). lhotse's own SharWriter cannot write these:
it decodes every cut and encodes it again (`save_audio`), even with format "original" (which also
names the member `.original`); so the same files are written here with the audio bytes untouched,
and read back by `CutSet.from_shar` in the tests.

NeMo tarred audio (scripts/speech_recognition/convert_to_tarred_audio_dataset.py):
`audio_N.tar` holding `<key>.<ext>`, `sharded_manifests/manifest_N.json` (its entries, with
`audio_filepath` = the member name and `shard_id` = N) and `tarred_audio_manifest.json` (all
entries); with --buckets, one such set per `bucketK/` folder. NeMo's text is the normalized text
(as in exports/nemo); the original text is `text_original`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Callable

import orjson

from . import tarwrite
from .samples import Sample

FORMATS = ("webdataset", "shar", "nemo")
LANGUAGE = "fa"
WRITER_VERSION = 1  # part of every file's plan digest: bump when the bytes written for a plan change


def member_key(sample_id: str) -> str:
    """A sample id as a tar member stem without dots or slashes (reversible; most ids are unchanged)."""
    return sample_id.replace("%", "%25").replace(".", "%2E").replace("/", "%2F")


def _dumps(obj) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE)


def _kept(data: bytes) -> bytes:
    """A copy of exactly its size: orjson's result holds an 8 KB allocation whatever its length
    (measured with tracemalloc), and a split keeps one or two per sample until it is written."""
    return memoryview(data).tobytes()


@dataclass
class PlannedFile:
    """One file of the output: a tar (the `members` of its `samples`, in order: (name, bytes, or
    None for the sample's audio)) or a JSON-lines file (`lines`), gzip-compressed when its name
    ends in .gz."""

    name: str  # relative to the split folder
    samples: list[Sample] = field(default_factory=list)
    lines: list[bytes] | None = None
    size: int | None = None  # a tar's exact length, known before it is written
    digest: str = ""  # names everything its bytes depend on: equal digests, equal bytes


def digest_tar(fmt: str, planned: PlannedFile) -> str:
    parts = [f"{WRITER_VERSION}\0{fmt}\0{planned.name}\0".encode()]
    add = parts.append
    for sample in planned.samples:
        for name, data in sample.members:
            if data is None:  # the audio: its bytes are the manifest's sha256 (checked while writing)
                add(f"{name}\0{sample.size}\0{sample.sha256}\n".encode())
            else:
                add(f"{name}\0{len(data)}\0".encode())
                add(data)
    return hashlib.sha256(b"".join(parts)).hexdigest()  # one update: the same digest, fewer calls


def digest_lines(fmt: str, planned: PlannedFile) -> str:
    h = hashlib.sha256(f"{WRITER_VERSION}\0{fmt}\0{planned.name}\0".encode())
    for line in planned.lines or ():
        h.update(line)
    return h.hexdigest()


# -- what one sample becomes --------------------------------------------------------------------

def describer(fmt: str) -> Callable[[Sample, dict], None]:
    """(sample, metadata) -> the sample's members, sidecar line and size in a tar, set once while
    the manifest is read (no metadata dict is kept). The sidecar line is the Shar cut, or the NeMo
    entry without its shard_id (which comes last, as NeMo's script writes it)."""
    if fmt not in FORMATS:
        raise ValueError(fmt)

    def describe(sample: Sample, meta: dict) -> None:
        key = member_key(sample.id)
        audio = f"{key}.{sample.ext}"
        if fmt == "webdataset":
            sample.members = ((f"{key}.json", _kept(_dumps(meta))), (audio, None))
        elif fmt == "shar":
            recording = _recording(meta)
            sample.members = ((f"{sample.id}.{sample.ext}", None), (f"{sample.id}.json", _kept(_dumps(recording))))
            sample.extra = _kept(_dumps(_cut(meta, recording)))
        else:
            sample.members = ((audio, None),)
            sample.extra = orjson.dumps(nemo_entry(meta, audio))[:-1]
        sample.tar_bytes = sum(tarwrite.member_size(name, sample.size if data is None else len(data))
                               for name, data in sample.members)

    return describe


def _channels(meta: dict) -> list[int]:
    return list(range(int(meta.get("channels") or 1)))


def _seconds(meta: dict) -> float:
    return meta["frames"] / meta["sample_rate"]


def _recording(meta: dict) -> dict:
    channels = _channels(meta)
    return {"id": meta["id"], "sources": [{"type": "shar", "channels": channels, "source": ""}],
            "sampling_rate": meta["sample_rate"], "num_samples": meta["frames"],
            "duration": _seconds(meta), "channel_ids": channels}


def _cut(meta: dict, recording: dict) -> dict:
    """A lhotse MonoCut (as `MonoCut.to_dict()` writes it) spanning the whole clip."""
    channels = recording["channel_ids"]
    channel = channels[0] if len(channels) == 1 else channels
    supervision = {"id": meta["id"], "recording_id": meta["id"], "start": 0.0, "duration": recording["duration"],
                   "channel": channel, "text": meta["text_normalized"], "language": LANGUAGE}
    if meta.get("speaker"):
        supervision["speaker"] = meta["speaker"]
    if meta.get("gender"):
        supervision["gender"] = meta["gender"]
    supervision["custom"] = {"text_original": meta["text"], "split": meta["split"]}
    custom = {k: v for k, v in meta.items() if k not in ("id", "duration", "text", "text_normalized", "speaker",
                                                            "gender")}
    return {"id": meta["id"], "start": 0, "duration": recording["duration"], "channel": channel,
            "supervisions": [supervision], "recording": recording, "custom": custom, "type": "MonoCut"}


def nemo_entry(meta: dict, member: str) -> dict:
    """A NeMo manifest entry (shard_id is added after it, last)."""
    entry = {"audio_filepath": member, "duration": meta["duration"], "text": meta["text_normalized"],
             "id": meta["id"], "text_original": meta["text"]}
    for key, value in meta.items():
        if key not in entry and key not in ("text_normalized", "text"):
            entry[key] = value
    return entry


def _nemo_line(sample: Sample, shard_id: int) -> bytes:
    return sample.extra + b',"shard_id":%d}\n' % shard_id


# -- the files of one shard ---------------------------------------------------------------------

def shard_files(fmt: str, split: str, folder: str, number: int, samples: list[Sample]) -> list[PlannedFile]:
    """The files of shard `number` (of its bucket `folder`, "" without buckets); the tar first.
    Each sample's `tar_bytes` is already known (the planner cut the shards by them)."""
    tar = PlannedFile(_tar_name(fmt, split, folder, number), samples)
    tar.size = tarwrite.archive_size(sum([s.tar_bytes for s in samples]))
    tar.digest = digest_tar(fmt, tar)
    out = [tar]
    if fmt == "shar":
        out.append(PlannedFile(f"{folder}cuts.{number:06d}.jsonl.gz", lines=[s.extra for s in samples]))
    elif fmt == "nemo":
        out.append(PlannedFile(f"{folder}sharded_manifests/manifest_{number}.json",
                               lines=[_nemo_line(s, number) for s in samples]))
    for planned in out[1:]:
        planned.digest = digest_lines(fmt, planned)
    return out
def _tar_name(fmt: str, split: str, folder: str, number: int) -> str:
    if fmt == "webdataset":
        return f"{folder}{split}-{number:06d}.tar"
    if fmt == "shar":
        return f"{folder}recording.{number:06d}.tar"
    return f"{folder}audio_{number}.tar"


def bucket_files(fmt: str, folder: str, shards: list[list[PlannedFile]]) -> list[PlannedFile]:
    """Files that cover a whole bucket: NeMo's tarred_audio_manifest.json (every shard's entries)."""
    if fmt != "nemo" or not shards:
        return []
    planned = PlannedFile(f"{folder}tarred_audio_manifest.json",
                          lines=[line for files in shards for line in files[1].lines])
    planned.digest = digest_lines(fmt, planned)
    return [planned]


def shard_pattern(fmt: str, split: str, count: int) -> dict[str, str]:
    """How each format's tools name a bucket's shards at once (brace / NeMo _OP_.._CL_ notation)."""
    last = count - 1
    if fmt == "webdataset":
        return {"urls": f"{split}-{{000000..{last:06d}}}.tar"}
    if fmt == "shar":
        return {"cuts": f"cuts.{{000000..{last:06d}}}.jsonl.gz", "recording": f"recording.{{000000..{last:06d}}}.tar"}
    return {"tarred_audio_filepaths": f"audio__OP_0..{last}_CL_.tar",
            "manifest_filepath": f"sharded_manifests/manifest__OP_0..{last}_CL_.json"}
