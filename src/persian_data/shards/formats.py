"""The three shard formats: the files of one shard (what each sample becomes: documents.py).

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

from ..compiled import SPEEDUPS
from . import gz, tarwrite
from .samples import Sample

FORMATS = ("webdataset", "shar", "nemo")
WRITER_VERSION = 1  # part of every file's plan digest: bump when the bytes written for a plan change


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
    head = f"{WRITER_VERSION}\0{fmt}\0{planned.name}\0".encode()
    samples = planned.samples
    if SPEEDUPS is not None:
        h = hashlib.sha256(head)
        if SPEEDUPS.digest_records(h.update, samples):
            return h.hexdigest()
    h = hashlib.sha256(head)
    for at in range(0, len(samples), _DIGEST_RUN):
        h.update(digest_records(samples[at:at + _DIGEST_RUN]))
    return h.hexdigest()


_DIGEST_RUN = 512  # samples hashed per update: few calls, and no copy of a whole shard's JSON (~25 MB)


def digest_records(samples: list[Sample]) -> bytes:
    """What a tar's plan digest hashes for these samples: each member's name and size, then the
    audio's sha256 (its bytes are checked against it while writing) or the JSON member's bytes.
    The Python form of _speedups.digest_records (~10x slower)."""
    parts: list[bytes] = []
    add = parts.append
    for sample in samples:
        for name, data in sample.members:
            if data is None:
                add(f"{name}\0{sample.size}\0{sample.sha256}\n".encode())
            else:
                add(f"{name}\0{len(data)}\0".encode())
                add(data)
    return b"".join(parts)


def digest_lines(fmt: str, planned: PlannedFile) -> str:
    h = hashlib.sha256(f"{WRITER_VERSION}\0{fmt}\0{planned.name}\0".encode())
    if planned.name.endswith(".gz"):
        h.update(f"{gz.COMPRESSOR}\0".encode())
    lines = planned.lines or []
    for at in range(0, len(lines), _DIGEST_RUN):  # a few calls, not one per line (28k for NeMo's train)
        h.update(b"".join(lines[at:at + _DIGEST_RUN]))
    return h.hexdigest()


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
        shard_id = b',"shard_id":%d}\n' % number  # closes each entry (documents: `extra` is left open)
        out.append(PlannedFile(f"{folder}sharded_manifests/manifest_{number}.json",
                               lines=[s.extra + shard_id for s in samples]))
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
