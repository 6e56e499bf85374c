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
from pathlib import Path

from ..atomic import OnPlaced, place_if_changed, write_if_changed
from ..catalog import SPEECH_BUCKET, Source, root_sources
from ..errors import ExtraMissingError, PersianDataError
from ..layout import Layout
from ..corpora.speech_clips import ExportLines, sniff_extension
from ..corpora.speech_formats import lhotse_recording, lhotse_supervision, nemo_audio_folder, nemo_line
from .speech_manifests import iter_manifest, iter_referenced, manifest_lines


def nemo_path(layout: Layout, source: Source, split: str) -> Path:
    return layout.speech_exports_dir(source) / "nemo" / f"{split}.json"


def lhotse_paths(layout: Layout, source: Source, split: str) -> tuple[Path, Path]:
    folder = layout.speech_exports_dir(source) / "lhotse"
    return (folder / f"{source.folder}_recordings_{split}.jsonl.gz",
            folder / f"{source.folder}_supervisions_{split}.jsonl.gz")


def _gzip(data: bytes) -> bytes:
    """Deterministic gzip (mtime 0): reruns give the same bytes, so unchanged files are not rewritten.
    Level 1: a third of level 6's time for files a few % larger (the parent compresses them alone)."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=1, mtime=0) as handle:
        handle.write(data)
    return buf.getvalue()


def export_lines(layout: Layout, source: Source, split: str, formats: tuple[str, ...]) -> ExportLines:
    """A kept split's export lines, built from its manifest (a new split's come from the workers)."""
    root = str(layout.root)
    audio = nemo_audio_folder(root, layout.relative(layout.audio_dir(source, split)),
                              layout.relative(nemo_path(layout, source, split).parent))
    nemo, recordings, supervisions = [], [], []
    for line in iter_manifest(layout.manifest(source, split)):
        if "nemo" in formats:
            nemo.append(nemo_line(line, audio))
        if "lhotse" in formats:
            recordings.append(lhotse_recording(line, root))
            supervisions.append(lhotse_supervision(line, source.speech.speaker, source.speech.gender))
    return ExportLines(b"".join(nemo), b"".join(recordings), b"".join(supervisions))


def write_split_exports(layout: Layout, source: Source, split: str, formats: tuple[str, ...],
                        on_placed: OnPlaced | None = None, lines: ExportLines | None = None) -> list[Path]:
    """Write one split's export files (unchanged files are not touched) from `lines`, the export
    lines the workers built beside the manifest, or else from its manifest. `on_placed` hears of
    every export file with the sha256 of its bytes (the run's hash cache)."""
    lines = lines or export_lines(layout, source, split, formats)
    written = []
    if "nemo" in formats:
        path = nemo_path(layout, source, split)
        write_if_changed(path, lines.nemo, layout.tmp_dir, on_placed)
        written.append(path)
    if "lhotse" in formats:
        rec_path, sup_path = lhotse_paths(layout, source, split)
        write_if_changed(rec_path, _gzip(lines.recordings), layout.tmp_dir, on_placed)
        write_if_changed(sup_path, _gzip(lines.supervisions), layout.tmp_dir, on_placed)
        written += [rec_path, sup_path]
    return written


def place_split_exports(layout: Layout, source: Source, split: str, formats: tuple[str, ...],
                        staged: dict[str, tuple[Path, str]], on_placed: OnPlaced | None = None) -> list[Path]:
    """Publish one split's export files streamed into staging while its units came back
    (`staged`: "nemo" / "recordings" / "supervisions" -> (staged file, sha256)); a final file
    that already holds the same bytes is left alone."""
    targets = []
    if "nemo" in formats:
        targets.append(("nemo", nemo_path(layout, source, split)))
    if "lhotse" in formats:
        rec_path, sup_path = lhotse_paths(layout, source, split)
        targets += [("recordings", rec_path), ("supervisions", sup_path)]
    for key, final in targets:
        path, sha256 = staged[key]
        place_if_changed(path, final, sha256, on_placed)
    return [final for _, final in targets]


def write_exports(layout: Layout, source: Source, splits: list[str], formats: tuple[str, ...],
                  on_placed: OnPlaced | None = None, done: dict[str, list[Path]] | None = None) -> list[Path]:
    """Write the exports of every split but those in `done` (written as their split was published:
    their files are given), then remove export files no split or format produces any more."""
    done = done or {}
    written = []
    for split in splits:
        written += done[split] if split in done else write_split_exports(layout, source, split, formats, on_placed)
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

def _resolve(corpus: str, sources: list[Source]) -> Source:
    speech = [source for source in sources if source.bucket == SPEECH_BUCKET]
    for source in speech:
        if corpus in (source.key, source.folder, source.repo_id):
            return source
    raise ValueError(f"unknown speech corpus {corpus!r}; use one of {[s.key for s in speech]}")


def load_hf_dataset(root, corpus: str, split: str, sources: list[Source] | None = None):
    """A `datasets.Dataset` for one prepared split: every manifest column plus `audio` (datasets.Audio).

    `root` is the layout root (or a Layout); `corpus` is a speech corpus's key (commonvoice,
    fleurs, or one the root declares in persian-data.toml; `sources` overrides the root's list),
    its folder name or repo; `split` is train / validation / test (`dev` is accepted for FLEURS'
    validation).
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
    source = _resolve(corpus, sources if sources is not None else root_sources(layout.root))
    split = source.speech.published(split)
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
    kwargs = {"root": str(layout.root), "manifest": str(manifest), "stamp": f"{st.st_size}-{st.st_mtime_ns}",
              "source": source}
    ds = datasets.Dataset.from_generator(_referenced_rows, gen_kwargs=kwargs, cache_dir=str(cache))
    return ds.cast_column("audio", datasets.Audio())


def _referenced_rows(root: str, manifest: str, stamp: str, source: Source):
    layout = Layout(Path(root))
    lines = manifest_lines(Path(manifest))
    for line, data in iter_referenced(layout, lines, source):
        if data is None:
            raise PersianDataError(f"{line['audio_path']} {line['audio_ref']}: referenced audio is missing")
        row = {k: v for k, v in line.items() if k not in ("audio_path", "audio_ref")}
        ref = line["audio_ref"]
        name = ref.get("member") or ref.get("file") or line["id"] + sniff_extension(data)
        row["audio"] = {"bytes": data, "path": name.replace("\\", "/").rsplit("/", 1)[-1]}
        yield row
