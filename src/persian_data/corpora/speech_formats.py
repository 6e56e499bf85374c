"""One manifest line as the export formats write it: a NeMo line, a lhotse recording and supervision.

Shared by the workers (`speech_clips.Collector`, which builds the export lines of a new split while
it builds its manifest, so nothing is read back) and `speech_export` (which builds them from the
manifest of a split kept from an earlier run). One function per line, so both give the same bytes.
"""

from __future__ import annotations

import os

import orjson

LANGUAGE = "fa"
EXPORT_FORMATS = ("nemo", "lhotse")


def _dumps(obj) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE)


def nemo_audio_folder(root: str, audio_folder: str, nemo_folder: str) -> str:
    """The split's audio folder relative to the NeMo manifest's folder (NeMo resolves paths there),
    from root-relative folders: `../../audio/<split>`."""
    return os.path.relpath(os.path.join(root, audio_folder), os.path.join(root, nemo_folder))


def nemo_line(line: dict, audio_folder: str) -> bytes:
    name = line["audio_path"].rpartition("/")[2]
    return _dumps({"audio_filepath": f"{audio_folder}/{name}", "duration": line["duration"],
                   "text": line["text_normalized"]})


def lhotse_recording(line: dict, root: str) -> bytes:
    channels = list(range(line["channels"]))
    return _dumps({
        "id": line["id"],
        "sources": [{"type": "file", "channels": channels, "source": f"{root}/{line['audio_path']}"}],
        "sampling_rate": line["sample_rate"], "num_samples": line["frames"],
        "duration": line["frames"] / line["sample_rate"], "channel_ids": channels,
    })


def lhotse_supervision(line: dict, speaker: str | None = None, gender: str | None = None) -> bytes:
    """`speaker`, `gender`: the manifest columns that hold them (the corpus's SpeechPolicy)."""
    channels = line["channels"]
    sup = {"id": line["id"], "recording_id": line["id"], "start": 0.0,
           "duration": line["frames"] / line["sample_rate"],
           "channel": 0 if channels == 1 else list(range(channels)), "text": line["text_normalized"],
           "language": LANGUAGE}
    if speaker and line.get(speaker):
        sup["speaker"] = line[speaker]
    value = str(line.get(gender) or "").strip().lower() if gender else ""
    if value:
        sup["gender"] = value
    sup["custom"] = {"text_original": line["text"], "split": line["split"]}
    return _dumps(sup)
