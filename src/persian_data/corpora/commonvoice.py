"""Common Voice 13 Persian: hezarai/common-voice-13-fa (key `commonvoice`).

Parquet shards `data/<split>-NNNNN-of-NNNNN.parquet` (shape `speech-parquet`) with columns
client_id, path, sentence, audio {bytes, path} (the original MP3 bytes at 48 kHz), up_votes,
down_votes, age, gender, accent, locale, segment, variant. The transcript is `sentence`; a clip's
file name is the basename of `path`; its speaker is `client_id` (a pseudonymous hash). `eval-stt`
breaks scores down by gender, age and accent, and counts a clip whose speaker is in train as
leaked. The catalog entry is `SOURCE`; `replica_files` builds the local hub's replica.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from ..localhub import replica_kit as kit
from ..source import SPEECH_BUCKET, Source, SpeechPolicy
from .speech_parquet import ParquetReader

if TYPE_CHECKING:
    import pyarrow as pa

SOURCE = Source(
    key="commonvoice",
    repo_id="hezarai/common-voice-13-fa",
    repo_type="dataset",
    bucket=SPEECH_BUCKET,
    folder="commonvoice_fa",
    content_dir="data",
    count_key="speech_commonvoice_fa_files",
    license="cc0-1.0 (Common Voice 13)",
    title="hezarai/common-voice-13-fa (Hugging Face mirror of Common Voice 13 Persian)",
    shape="speech-parquet",
    reader=ParquetReader(text="sentence", audio="audio", name="path",
                         first_columns=("client_id", "path", "up_votes", "down_votes", "age", "gender", "accent",
                                        "locale", "segment", "variant")),
    speech=SpeechPolicy(speaker="client_id", gender="gender", age="age", accent="accent"),
    card_title=("Speech: Common Voice 13 fa", "گفتار: کامن ویس فارسی"),
    aliases=("cv",),
)


# ---------------------------------------------------------------------------------------------
# The local hub's replica
# ---------------------------------------------------------------------------------------------
CV_FILES = {
    "train": ("data/train-00000-of-00002.parquet", "data/train-00001-of-00002.parquet"),
    "validation": ("data/validation-00000-of-00001.parquet",),
    "test": ("data/test-00000-of-00001.parquet",),
}
# Column order of a Hugging Face Common Voice export (mozilla's common_voice script order).
# (name, dtype as the dataset card writes it; "audio" is the {bytes, path} struct)
CV_COLUMNS: tuple[tuple[str, str], ...] = (
    ("client_id", "string"),
    ("path", "string"),
    ("audio", "audio"),
    ("sentence", "string"),
    ("up_votes", "int64"),
    ("down_votes", "int64"),
    ("age", "string"),
    ("gender", "string"),
    ("accent", "string"),
    ("locale", "string"),
    ("segment", "string"),
    ("variant", "string"),
)
CV_SAMPLE_RATE = 48_000
# The one clip whose audio bytes are not audio (an HTML error page, as from a bad mirror).
CV_CORRUPT = {
    "split": "validation",
    "file": "data/validation-00000-of-00001.parquet",
    "row": 1,
    "path": "common_voice_fa_18402761.mp3",
    "bytes": b"<!DOCTYPE html><html><head><title>503 Service Unavailable</title></head>"
    b"<body><h1>503 Service Unavailable</h1></body></html>\n",
}

_CV_TIMES = ("امروز", "دیروز", "شب گذشته", "صبح زود", "هفته پیش", "عصر دیروز")
_CV_PLACES = ("در کتابخانه", "در بازار", "کنار دریا", "در دانشگاه", "در خیابان اصلی")
_CV_EVENTS = (
    "جلسه مهمی برگزار شد", "باران شدیدی بارید", "دوستانم را دیدم",
    "یک کتاب تازه خریدم", "همه منتظر اتوبوس بودند",
)
_CV_META = {
    "age": ("twenties", "thirties", "fourties", "teens", ""),
    "gender": ("male", "female", ""),
}


def cv_manifest(scale: kit.ReplicaScale) -> dict[str, dict[str, Any]]:
    """Rows per split and per file; the corrupt clip is CV_CORRUPT."""
    n = scale.cv_clips_per_shard
    return {
        split: {"rows": n * len(paths), "files": {p: n for p in paths}, "corrupt": int(split == CV_CORRUPT["split"])}
        for split, paths in CV_FILES.items()
    }


def _cv_features_json() -> str:
    feats: dict[str, Any] = {}
    for name, typ in CV_COLUMNS:
        if name == "audio":
            feats[name] = {"sampling_rate": CV_SAMPLE_RATE, "_type": "Audio"}
        else:
            feats[name] = {"dtype": typ, "_type": "Value"}
    return json.dumps({"info": {"features": feats}})


def _cv_schema() -> pa.Schema:
    import pyarrow as pa

    types = {"string": pa.string(), "int64": pa.int64(), "audio": pa.struct([("bytes", pa.binary()), ("path", pa.string())])}
    return pa.schema([(name, types[typ]) for name, typ in CV_COLUMNS], metadata={"huggingface": _cv_features_json()})


def _cv_table(scale: kit.ReplicaScale, split: str, shard: int) -> pa.Table:
    import pyarrow as pa

    r = kit.rng("cv", split, shard)
    n = scale.cv_clips_per_shard
    base = {"train": 17_000_000, "validation": 17_400_000, "test": 17_700_000}[split] + shard * 100_000
    numbers = sorted(r.sample(range(base, base + 99_000), n))
    cols: dict[str, list] = {name: [] for name, _ in CV_COLUMNS}
    for i, num in enumerate(numbers):
        sentence = f"{r.choice(_CV_TIMES)} {r.choice(_CV_PLACES)} {r.choice(_CV_EVENTS)}."
        corrupt = split == CV_CORRUPT["split"] and i == CV_CORRUPT["row"]
        path = CV_CORRUPT["path"] if corrupt else f"common_voice_fa_{num}.mp3"
        if corrupt:
            audio = CV_CORRUPT["bytes"]
        else:
            audio = kit.encode(kit.clip(scale, CV_SAMPLE_RATE, sentence, "cv", path), CV_SAMPLE_RATE, "MP3")
        cols["client_id"].append(hashlib.sha512(f"speaker-{r.randint(0, 40)}".encode()).hexdigest())
        cols["path"].append(path)
        cols["audio"].append({"bytes": audio, "path": path})
        cols["sentence"].append(sentence)
        cols["up_votes"].append(r.randint(2, 6))
        cols["down_votes"].append(r.choice((0, 0, 0, 1)))
        cols["age"].append(r.choice(_CV_META["age"]))
        cols["gender"].append(r.choice(_CV_META["gender"]))
        cols["accent"].append("")
        cols["locale"].append("fa")
        cols["segment"].append("")
        cols["variant"].append("")
    return pa.table(cols, schema=_cv_schema())


def commonvoice_repo(scale: kit.ReplicaScale = kit.TINY) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    split_bytes: dict[str, int] = {}
    for split, paths in CV_FILES.items():
        split_bytes[split] = 0
        for shard, path in enumerate(paths):
            table = _cv_table(scale, split, shard)
            split_bytes[split] += table.nbytes
            files[path] = kit.parquet_bytes(table)
    rows = {split: info["rows"] for split, info in cv_manifest(scale).items()}
    total = sum(rows.values())
    size_cat = "n<1K" if total < 1000 else ("1K<n<10K" if total < 10_000 else "10K<n<100K")
    lines = ["---", "language:", "- fa", "license: cc0-1.0", "task_categories:", "- automatic-speech-recognition",
             "tags:", "- hezar", "pretty_name: CommonVoice 13 (Persian)", "size_categories:", f"- {size_cat}",
             "dataset_info:", "  features:"]
    for name, typ in CV_COLUMNS:
        lines.append(f"  - name: {name}")
        if name == "audio":
            lines += ["    dtype:", "      audio:", f"        sampling_rate: {CV_SAMPLE_RATE}"]
        else:
            lines.append(f"    dtype: {typ}")
    lines.append("  splits:")
    for split in CV_FILES:
        lines += [f"  - name: {split}", f"    num_bytes: {split_bytes[split]}", f"    num_examples: {rows[split]}"]
    download = sum(len(files[p]) for paths in CV_FILES.values() for p in paths)
    lines += [f"  download_size: {download}", f"  dataset_size: {sum(split_bytes.values())}",
              "configs:", "- config_name: default", "  data_files:"]
    for split in CV_FILES:
        lines += [f"  - split: {split}", f"    path: data/{split}-*"]
    lines += [
        "---",
        "The Persian portion of the original CommonVoice 13 dataset at "
        "https://huggingface.co/datasets/mozilla-foundation/common_voice_13_0",
        "",
        "#### Load",
        "```python",
        "# Using HF Datasets",
        "from datasets import load_dataset",
        "",
        'dataset = load_dataset("hezarai/common-voice-13-fa", split="train")',
        "",
        "# Using Hezar",
        "from hezar.data import Dataset",
        "",
        'dataset = Dataset.load("hezarai/common-voice-13-fa", split="train")',
        "```",
        "",
        "<!-- persian-data replica: generated audio and text for offline tests, not the real data -->",
        "",
    ]
    files["README.md"] = "\n".join(lines).encode()
    files["dataset_config.yaml"] = (
        "name: speech_recognition\n"
        "config_type: dataset\n"
        "task: speech_recognition\n"
        "path: hezarai/common-voice-13-fa\n"
        "feature_extractor_path: hezarai/whisper-small\n"
        "tokenizer_path: hezarai/whisper-small\n"
        "sampling_rate: 16000\n"
        "audio_file_path_column: path\n"
        "audio_column: audio\n"
        "audio_array_column: array\n"
        "transcript_column: sentence\n"
    ).encode()
    files[".gitattributes"] = kit.GITATTRIBUTES_DATASET.encode()
    return files


def replica_files(scale: kit.ReplicaScale = kit.TINY, **_: Any) -> dict[str, bytes]:
    return commonvoice_repo(scale)
