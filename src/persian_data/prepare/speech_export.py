"""Exports of the speech manifests for NeMo, lhotse and Hugging Face `datasets`.

- NeMo: `exports/nemo/<split>.json`, one JSON object per line with audio_filepath, duration and
  text (= text_normalized). audio_filepath is relative to the manifest file's folder
  (`../../audio/<split>/<file>`), which NeMo resolves against the manifest's folder, so the root can
  move.
- lhotse: `exports/lhotse/<folder>_recordings_<split>.jsonl.gz` and `..._supervisions_...`, as
  lhotse's own `to_file` writes them; recording sources are absolute paths (lhotse resolves
  relative paths against the working folder), rewritten on the next prepare if the root moves.
  Supervision text is text_normalized; the original is in `custom.text_original`.
- datasets: `load_hf_dataset(root, corpus, split)` builds a `datasets.Dataset` on demand (nothing is
  written into the layout), with every manifest column and an `audio` column of type `Audio`.

Export files are written only when their bytes change (gzip mtime 0), so reruns leave them alone.
"""

from __future__ import annotations

import gzip
import io
import os
from pathlib import Path

import orjson

from ..atomic import OnPlaced, write_if_changed
from ..catalog import BY_KEY, Source
from ..errors import ExtraMissingError, PersianDataError
from ..layout import Layout
from .speech_clips import SPEECH_KEYS, published_split
from .speech_manifests import iter_manifest, iter_referenced, manifest_lines

LANGUAGE = "fa"


def nemo_path(layout: Layout, source: Source, split: str) -> Path:
    return layout.speech_exports_dir(source) / "nemo" / f"{split}.json"


def lhotse_paths(layout: Layout, source: Source, split: str) -> tuple[Path, Path]:
    folder = layout.speech_exports_dir(source) / "lhotse"
    return (folder / f"{source.folder}_recordings_{split}.jsonl.gz",
            folder / f"{source.folder}_supervisions_{split}.jsonl.gz")


def _dumps(obj) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE)


class _Nemo:
    def __init__(self, layout: Layout, source: Source, split: str) -> None:
        self.layout, self.base = layout, nemo_path(layout, source, split).parent
        self.folders: dict[str, str] = {}  # audio folder -> the same folder relative to the NeMo manifest
        self.out: list[bytes] = []

    def add(self, line: dict) -> None:
        folder, _, name = line["audio_path"].rpartition("/")
        rel = self.folders.get(folder)
        if rel is None:
            rel = self.folders[folder] = os.path.relpath(self.layout.root / folder, self.base)
        self.out.append(_dumps({"audio_filepath": f"{rel}/{name}", "duration": line["duration"],
                                "text": line["text_normalized"]}))

    def data(self) -> bytes:
        return b"".join(self.out)


class _Gzip:
    """Deterministic gzip (mtime 0), compressed as it goes so only the compressed bytes are held."""

    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self.file = gzip.GzipFile(fileobj=self.buf, mode="wb", compresslevel=6, mtime=0)

    def write(self, data: bytes) -> None:
        self.file.write(data)

    def data(self) -> bytes:
        self.file.close()
        return self.buf.getvalue()


class _Lhotse:
    def __init__(self, layout: Layout) -> None:
        self.root = str(layout.root)
        self.recordings, self.supervisions = _Gzip(), _Gzip()

    def add(self, line: dict) -> None:
        channels = list(range(line["channels"]))
        duration = line["frames"] / line["sample_rate"]
        self.recordings.write(_dumps({
            "id": line["id"],
            "sources": [{"type": "file", "channels": channels, "source": f"{self.root}/{line['audio_path']}"}],
            "sampling_rate": line["sample_rate"], "num_samples": line["frames"], "duration": duration,
            "channel_ids": channels,
        }))
        sup = {"id": line["id"], "recording_id": line["id"], "start": 0.0, "duration": duration,
               "channel": 0 if len(channels) == 1 else channels, "text": line["text_normalized"],
               "language": LANGUAGE}
        if line.get("client_id"):
            sup["speaker"] = line["client_id"]
        gender = (line.get("gender") or "").strip().lower()
        if gender:
            sup["gender"] = gender
        sup["custom"] = {"text_original": line["text"], "split": line["split"]}
        self.supervisions.write(_dumps(sup))


def write_exports(layout: Layout, source: Source, splits: list[str], formats: tuple[str, ...],
                  on_placed: OnPlaced | None = None) -> list[Path]:
    """Write the exports of every split in one pass over its manifest; unchanged files are not touched.
    `on_placed` hears of every export file with the sha256 of its bytes (the run's hash cache)."""
    written = []
    for split in splits:
        nemo = _Nemo(layout, source, split) if "nemo" in formats else None
        lhotse = _Lhotse(layout) if "lhotse" in formats else None
        for line in iter_manifest(layout.manifest(source, split)):
            if nemo:
                nemo.add(line)
            if lhotse:
                lhotse.add(line)
        if nemo:
            path = nemo_path(layout, source, split)
            write_if_changed(path, nemo.data(), layout.tmp_dir, on_placed)
            written.append(path)
        if lhotse:
            rec_path, sup_path = lhotse_paths(layout, source, split)
            write_if_changed(rec_path, lhotse.recordings.data(), layout.tmp_dir, on_placed)
            write_if_changed(sup_path, lhotse.supervisions.data(), layout.tmp_dir, on_placed)
            written += [rec_path, sup_path]
    keep = set(written)
    exports = layout.speech_exports_dir(source)
    for path in sorted(exports.rglob("*")) if exports.is_dir() else []:
        if path.is_file() and path not in keep:
            path.unlink()  # a split or format no longer produced
    return written


def remove_exports(layout: Layout, source: Source) -> bool:
    exports = layout.speech_exports_dir(source)
    files = [p for p in exports.rglob("*") if p.is_file()] if exports.is_dir() else []
    for path in files:
        path.unlink()
    return bool(files)


# -- datasets ----------------------------------------------------------------------------------

def _resolve(corpus: str) -> Source:
    for key in SPEECH_KEYS:
        source = BY_KEY[key]
        if corpus in (source.key, source.folder, source.repo_id):
            return source
    raise ValueError(f"unknown speech corpus {corpus!r}; use one of {list(SPEECH_KEYS)}")


def load_hf_dataset(root, corpus: str, split: str):
    """A `datasets.Dataset` for one prepared split: every manifest column plus `audio` (datasets.Audio).

    `root` is the layout root (or a Layout); `corpus` is "commonvoice" or "fleurs" (or the folder
    name); `split` is train / validation / test (`dev` is accepted for FLEURS' validation).
    With extracted audio the Audio column holds file paths; with --no-extract it holds the bytes,
    read from the parquet rows / tar members (written to an Arrow cache under .persian-data/).
    Decoding a sample needs what `datasets` needs for audio (torchcodec and FFmpeg in datasets 4+).
    """
    try:
        import datasets
    except ImportError:
        raise ExtraMissingError("load_hf_dataset needs the `datasets` library: "
                                "pip install 'persian-data[speech]'") from None
    layout = root if isinstance(root, Layout) else Layout(Path(root))
    source = _resolve(corpus)
    split = published_split(split)
    manifest = layout.manifest(source, split)
    if not manifest.exists():
        raise PersianDataError(f"{layout.relative(manifest)} is missing; run `persian-data prepare speech`")
    lines = manifest_lines(manifest)
    if not any(line.get("audio_ref") for line in lines):
        rows = []
        for line in lines:
            row = {k: v for k, v in line.items() if k != "audio_path"}
            row["audio"] = str(layout.root / line["audio_path"])
            rows.append(row)
        ds = datasets.Dataset.from_list(rows) if rows else datasets.Dataset.from_dict({"audio": []})
        return ds.cast_column("audio", datasets.Audio())
    cache = layout.state_dir / "hf_datasets"
    st = manifest.stat()  # part of the cache key: a new manifest never reuses an old Arrow cache
    kwargs = {"root": str(layout.root), "manifest": str(manifest), "stamp": f"{st.st_size}-{st.st_mtime_ns}"}
    ds = datasets.Dataset.from_generator(_referenced_rows, gen_kwargs=kwargs, cache_dir=str(cache))
    return ds.cast_column("audio", datasets.Audio())


def _referenced_rows(root: str, manifest: str, stamp: str):
    layout = Layout(Path(root))
    lines = manifest_lines(Path(manifest))
    for line, data in iter_referenced(layout, lines):
        if data is None:
            raise PersianDataError(f"{line['audio_path']} {line['audio_ref']}: referenced audio is missing")
        row = {k: v for k, v in line.items() if k not in ("audio_path", "audio_ref")}
        name = line["audio_ref"].get("member") or line.get("path") or line["id"]
        row["audio"] = {"bytes": data, "path": name.replace("\\", "/").rsplit("/", 1)[-1]}
        yield row
