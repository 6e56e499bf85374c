"""What one sample becomes in each shard format: its tar members, its sidecar line, its size.

- WebDataset: `<key>.json` (the metadata every format carries, samples.metadata_of) then
  `<key>.<ext>` (the audio);
- lhotse Shar: `<id>.<ext>` then `<id>.json` (the Recording), and the MonoCut line of cuts.jsonl.gz;
- NeMo: `<key>.<ext>`, and the manifest entry (without its shard_id and closing brace: the
  planner adds `"shard_id":N}` once it knows the shard).

Each document is orjson's text of a dict built from the manifest line (the Python form, the
reference). For 49k lines that costs more than reading them, so where the C extension is built
each split compiles the documents into templates once: the JSON between the values (key names,
the corpus, the split, the constants) as fixed fragments, and `_speedups.render` writes each
line's values between them exactly as orjson would. A line `render` cannot write that way (a
float orjson writes in exponent notation, an int beyond 64 bits, a lone surrogate) goes to the
Python form, which writes the same bytes or raises orjson's own error; a hypothesis test holds
the two forms to the same bytes on any line.
"""

from __future__ import annotations

from typing import Callable

import orjson

from ..compiled import SPEEDUPS
from . import tarwrite
from .corpus import CorpusSplit
from .samples import TAKEN, Sample, metadata_of

LANGUAGE = "fa"
_NEMO_SKIP = TAKEN | {"audio_filepath", "text_original"}  # NeMo's own keys, ahead of the source columns
_SHAR_CUT_SKIP = frozenset({"id", "duration", "text", "text_normalized", "speaker", "gender"})
_NONE: frozenset = frozenset()
_EMPTY: dict = {}


def member_key(sample_id: str) -> str:
    """A sample id as a tar member stem without dots or slashes (reversible; most ids are unchanged)."""
    return sample_id.replace("%", "%25").replace(".", "%2E").replace("/", "%2F")


def describer(fmt: str, corpus: CorpusSplit, *, compiled: bool = True) -> Callable[[Sample, dict], None]:
    """(sample, manifest line) -> the sample's members, sidecar line and size in a tar, set once
    while the manifest is read (no dict is kept). `compiled=False`: the Python form only."""
    python = _python_form(fmt, corpus)
    if SPEEDUPS is None or not compiled:
        return python
    return {"webdataset": _webdataset, "shar": _shar, "nemo": _nemo}[fmt](corpus, python)


# -- the Python form: the reference ------------------------------------------------------------

def _python_form(fmt: str, corpus: CorpusSplit) -> Callable[[Sample, dict], None]:
    if fmt not in ("webdataset", "shar", "nemo"):
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


# -- the compiled form: the same documents from templates --------------------------------------

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


def _who(corpus: CorpusSplit) -> Callable[[dict], tuple]:
    """line -> (speaker, gender) as metadata_of sets them."""
    speaker_column, gender_column = corpus.speaker_column, corpus.gender_column

    def who(line: dict) -> tuple:
        speaker = line.get(speaker_column) if speaker_column else None
        gender = line.get(gender_column) if gender_column else None
        if isinstance(gender, str):
            gender = gender.strip().lower()
        return speaker or None, gender or None

    return who


def _common(corpus: CorpusSplit) -> bytes:
    return b',"corpus":' + orjson.dumps(corpus.key) + b',"split":' + orjson.dumps(corpus.split)


def _webdataset(corpus: CorpusSplit, python: Callable[[Sample, dict], None]) -> Callable[[Sample, dict], None]:
    V, render, who, skip = _VALUE, SPEEDUPS.render, _who(corpus), TAKEN
    meta = _template(b'{"id":', V, _common(corpus) + b',"duration":', V, b',"frames":', V, b',"sample_rate":', V,
                     b',"channels":', V, b',"sha256":', V, b',"text":', V, b',"text_normalized":', V,
                     b',"speaker":', V, b',"gender":', V, b"}\n")

    def describe(sample: Sample, line: dict) -> None:
        speaker, gender = who(line)
        get = line.get
        doc = render(meta, (line["id"], line["duration"], line["frames"], line["sample_rate"], get("channels", 1),
                            line["sha256"], line["text"], line["text_normalized"], speaker, gender), skip, line)
        if doc is None:
            return python(sample, line)
        key = member_key(sample.id)
        sample.members = ((key + ".json", doc), (f"{key}.{sample.ext}", None))
        _sized(sample)

    return describe


def _shar(corpus: CorpusSplit, python: Callable[[Sample, dict], None]) -> Callable[[Sample, dict], None]:
    V, render, who, skip = _VALUE, SPEEDUPS.render, _who(corpus), TAKEN
    recording = _template(b'{"id":', V, b',"sources":[{"type":"shar","channels":', V,
                          b',"source":""}],"sampling_rate":', V, b',"num_samples":', V, b',"duration":', V,
                          b',"channel_ids":', V, b"}")
    split = orjson.dumps(corpus.split)
    cut = _template(b'{"id":', V, b',"start":0,"duration":', V, b',"channel":', V, b',"supervisions":[{"id":', V,
                    b',"recording_id":', V, b',"start":0.0,"duration":', V, b',"channel":', V, b',"text":', V,
                    b',"language":' + orjson.dumps(LANGUAGE), V, V, b',"custom":{"text_original":', V,
                    b',"split":' + split + b'}}],"recording":', V, b',"custom":{' + _common(corpus)[1:] + b',"frames":',
                    V, b',"sample_rate":', V, b',"channels":', V, b',"sha256":', V, b'},"type":"MonoCut"}\n')
    speaker_of, gender_of = (b',"speaker":', b""), (b',"gender":', b"")

    def describe(sample: Sample, line: dict) -> None:
        speaker, gender = who(line)
        ident, frames, rate, channels = line["id"], line["frames"], line["sample_rate"], line.get("channels", 1)
        ids = list(range(int(channels or 1)))
        seconds = frames / rate
        body = render(recording, (ident, ids, rate, frames, seconds, ids), _NONE, _EMPTY)
        said = [render(speaker_of, (speaker,), _NONE, _EMPTY) if speaker else b"",
                render(gender_of, (gender,), _NONE, _EMPTY) if gender else b""]
        line_of_cut = None if body is None or None in said else render(
            cut, (ident, seconds, ids[0] if len(ids) == 1 else ids, ident, ident, seconds,
                  ids[0] if len(ids) == 1 else ids, line["text_normalized"], said[0], said[1], line["text"], body,
                  frames, rate, channels, line["sha256"]), skip, line)
        if line_of_cut is None:
            return python(sample, line)
        sample.members = ((f"{ident}.{sample.ext}", None), (f"{ident}.json", body + b"\n"))
        sample.extra = line_of_cut
        _sized(sample)

    return describe


def _nemo(corpus: CorpusSplit, python: Callable[[Sample, dict], None]) -> Callable[[Sample, dict], None]:
    V, render, who, skip = _VALUE, SPEEDUPS.render, _who(corpus), _NEMO_SKIP
    entry = _template(b'{"audio_filepath":', V, b',"duration":', V, b',"text":', V, b',"id":', V,
                      b',"text_original":', V, _common(corpus) + b',"frames":', V, b',"sample_rate":', V,
                      b',"channels":', V, b',"sha256":', V, b',"speaker":', V, b',"gender":', V, b"")

    def describe(sample: Sample, line: dict) -> None:
        speaker, gender = who(line)
        audio = f"{member_key(sample.id)}.{sample.ext}"
        doc = render(entry, (audio, line["duration"], line["text_normalized"], line["id"], line["text"],
                             line["frames"], line["sample_rate"], line.get("channels", 1), line["sha256"], speaker,
                             gender), skip, line)
        if doc is None:
            return python(sample, line)
        sample.members = ((audio, None),)
        sample.extra = doc
        _sized(sample)

    return describe
