"""What one sample becomes in each shard format: its tar members, its sidecar line, its size.

- WebDataset: `<key>.json` (the metadata every format carries, samples.metadata_of) then
  `<key>.<ext>` (the audio);
- lhotse Shar: `<id>.<ext>` then `<id>.json` (the Recording), and the MonoCut line of cuts.jsonl.gz;
- NeMo: `<key>.<ext>`, and the manifest entry (without its shard_id and closing brace: the
  planner adds `"shard_id":N}` once it knows the shard).

Each document is orjson's text of a dict built from the manifest line (`describer`, the Python
form, the reference). For 49k lines that costs more than reading them, so where the C extension
is built each split compiles the documents into templates once: the JSON between the values (key
names, the corpus, the split, the constants) as fixed fragments. `line_planner` then hands each
line's bytes to `_speedups.shard_raw`, which scans it and puts its values between the fragments as
they are written (a line written as orjson writes it: prepare's), or else the parsed line to
`_speedups.shard_sample`, which writes its values exactly as orjson would (jsonout.c); either
makes the Sample and checks its clip (shardplan.c). A line neither can take that way
(a float orjson writes in exponent notation, an int beyond 64 bits, a lone surrogate, an id to
escape, a missing field) goes to the Python form, which plans it the same way or says what is
wrong; hypothesis tests hold the three forms to the same samples on any manifest.
"""

from __future__ import annotations

from functools import partial
from typing import Callable

import orjson

from ..compiled import SPEEDUPS
from . import tarwrite
from .corpus import CorpusSplit
from .formats import FORMATS
from .samples import TAKEN, FromBytes, FromLine, Sample, metadata_of

LANGUAGE = "fa"
_NEMO_SKIP = TAKEN | {"audio_filepath", "text_original"}  # NeMo's own keys, ahead of the source columns
_SHAR_CUT_SKIP = frozenset({"id", "duration", "text", "text_normalized", "speaker", "gender"})


def member_key(sample_id: str) -> str:
    """A sample id as a tar member stem without dots or slashes (reversible; most ids are unchanged)."""
    return sample_id.replace("%", "%25").replace(".", "%2E").replace("/", "%2F")


# -- the Python form: the reference ------------------------------------------------------------

def describer(fmt: str, corpus: CorpusSplit) -> Callable[[Sample, dict], None]:
    """(sample, manifest line) -> the sample's members, sidecar line and size in a tar, set once
    while the manifest is read (no dict is kept)."""
    if fmt not in FORMATS:
        raise ValueError(fmt)
    meta_of = metadata_of(corpus)

    def describe(sample: Sample, line: dict) -> None:
        meta = meta_of(line)
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
        _sized(sample)

    return describe


def _sized(sample: Sample) -> None:
    sample.tar_bytes = tarwrite.members_size(sample.members, sample.size)


def _dumps(obj) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE)


def _kept(data: bytes) -> bytes:
    """A copy of exactly its size: orjson's result holds an 8 KB allocation whatever its length
    (measured with tracemalloc), and a split keeps one or two per sample until it is written."""
    return memoryview(data).tobytes()


def _channels(meta: dict) -> list[int]:
    return list(range(int(meta.get("channels") or 1)))


def _recording(meta: dict) -> dict:
    channels = _channels(meta)
    return {"id": meta["id"], "sources": [{"type": "shar", "channels": channels, "source": ""}],
            "sampling_rate": meta["sample_rate"], "num_samples": meta["frames"],
            "duration": meta["frames"] / meta["sample_rate"], "channel_ids": channels}


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
    custom = {k: v for k, v in meta.items() if k not in _SHAR_CUT_SKIP}
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


# -- the compiled form: the same samples from templates, in C ----------------------------------

_VALUE = object()  # a value's place in a template


def _template(*parts) -> tuple[bytes, ...]:
    """The fixed JSON between the values: len(values) + 1 fragments for `render`."""
    fragments, current = [], []
    for part in parts:
        if part is _VALUE:
            fragments.append(b"".join(current))
            current = []
        else:
            current.append(part)
    fragments.append(b"".join(current))
    return tuple(fragments)


def _templates(fmt: str, corpus: CorpusSplit) -> tuple:
    """(the document, the second document or None, the speaker part, the gender part): the values
    between them are filled in C (shardplan.c) in the order the Python form's dicts have them."""
    V = _VALUE
    common = b',"corpus":' + orjson.dumps(corpus.key) + b',"split":' + orjson.dumps(corpus.split)
    parts = (_template(b',"speaker":', V, b""), _template(b',"gender":', V, b""))
    if fmt == "webdataset":  # metadata_of: id, corpus, split, duration, ..., gender, then the source columns
        return (_template(b'{"id":', V, common + b',"duration":', V, b',"frames":', V, b',"sample_rate":', V,
                          b',"channels":', V, b',"sha256":', V, b',"text":', V, b',"text_normalized":', V,
                          b',"speaker":', V, b',"gender":', V, b"}\n"), None, *parts)
    if fmt == "nemo":  # nemo_entry, without its closing brace
        return (_template(b'{"audio_filepath":', V, b',"duration":', V, b',"text":', V, b',"id":', V,
                          b',"text_original":', V, common + b',"frames":', V, b',"sample_rate":', V,
                          b',"channels":', V, b',"sha256":', V, b',"speaker":', V, b',"gender":', V, b""), None, *parts)
    recording = _template(b'{"id":', V, b',"sources":[{"type":"shar","channels":', V,
                          b',"source":""}],"sampling_rate":', V, b',"num_samples":', V, b',"duration":', V,
                          b',"channel_ids":', V, b"}")  # _recording, without the newline its member ends with
    cut = _template(b'{"id":', V, b',"start":0,"duration":', V, b',"channel":', V, b',"supervisions":[{"id":', V,
                    b',"recording_id":', V, b',"start":0.0,"duration":', V, b',"channel":', V, b',"text":', V,
                    b',"language":' + orjson.dumps(LANGUAGE), V, V, b',"custom":{"text_original":', V,
                    b',"split":' + orjson.dumps(corpus.split) + b'}}],"recording":', V, b',"custom":{' + common[1:]
                    + b',"frames":', V, b',"sample_rate":', V, b',"channels":', V, b',"sha256":', V,
                    b'},"type":"MonoCut"}\n')  # _cut
    return (recording, cut, *parts)


def line_planner(fmt: str, corpus: CorpusSplit, root: str, cache, seen: set) -> tuple[FromBytes, FromLine] | None:
    """read_samples' loop body in C, in two forms: (from a line's bytes, from its parsed dict). Each
    gives the line's Sample, described (members, sidecar line, tar size) as the Python form would,
    the clip vouched for by `cache` or stat'ed, its id added to `seen`; or None when the next form
    must take the line (the bytes form takes lines written as orjson writes them: manifestline.c).
    None without the extension."""
    if SPEEDUPS is None or not hasattr(SPEEDUPS, "shard_raw"):
        return None
    prefix, entries = cache.entries_view() if cache is not None else ("", None)
    skip = _NEMO_SKIP if fmt == "nemo" else TAKEN
    ctx = (FORMATS.index(fmt), root, prefix, entries, seen, Sample,
           corpus.speaker_column, corpus.gender_column, skip, _templates(fmt, corpus))
    return partial(SPEEDUPS.shard_raw, ctx), partial(SPEEDUPS.shard_sample, ctx)
