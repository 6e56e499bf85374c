"""Every path of the target layout, spelled once.

The specification fixes the public part (datasets/, checksums/, logs/ and their file names).
Everything the tool needs for itself (staging, hash cache, run lock, temp files) lives under
`.persian-data/` at the root: on the same filesystem, so a finished file reaches its final path
by an atomic rename, and outside `datasets/`, so counts and checksums cover data only.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import UsageError
from .source import CHAT_BUCKET, Source

DATASETS = "datasets"
CHECKSUMS_FILE = "checksums/datasets.sha256.txt"
LOCK_FILE = "checksums/persian-data.lock.json"
SOURCES_JSON = "logs/dataset_sources.json"
DOWNLOAD_LOG = "logs/dataset_download.log"
STATE_DIR = ".persian-data"
SOURCE_README = "README.source.md"
CHAT_STATS = "combined.stats.json"
SPEECH_STATS = "stats.json"
ONNX_RECORD = "onnx/export.json"
# The specification's chat corpus lives at datasets/text/persian_conversation (its entry,
# corpora/persian_conversation.py, takes its folder from here); the chat paths point there when no
# chat corpus is named.
SPEC_CHAT_FOLDER = "persian_conversation"


@dataclass(frozen=True)
class Layout:
    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root).absolute())

    # -- public records --------------------------------------------------------------------
    @property
    def datasets(self) -> Path:
        return self.root / DATASETS

    @property
    def checksums_file(self) -> Path:
        return self.root / CHECKSUMS_FILE

    @property
    def lock_file(self) -> Path:
        return self.root / LOCK_FILE

    @property
    def sources_json(self) -> Path:
        return self.root / SOURCES_JSON

    @property
    def download_log(self) -> Path:
        return self.root / DOWNLOAD_LOG

    # -- per source ------------------------------------------------------------------------
    def bucket_root(self, source: Source) -> Path:
        """datasets/<bucket>/<folder>, e.g. datasets/speech/fleurs_fa."""
        return self.datasets / source.bucket / source.folder

    def content_dir(self, source: Source) -> Path:
        """Where the repo's files land: datasets/.../data or datasets/.../model."""
        return self.bucket_root(source) / source.content_dir

    def source_readme(self, source: Source) -> Path:
        return self.bucket_root(source) / SOURCE_README

    # -- chat corpus outputs (`source`: a chat corpus; default: the specification's) ------------
    def chat_dir(self, source: Source | None = None) -> Path:
        return self.bucket_root(source) if source is not None else self.datasets / CHAT_BUCKET / SPEC_CHAT_FOLDER

    def chat_combined(self, source: Source | None = None) -> Path:
        return self.chat_dir(source) / "combined.jsonl"

    def chat_split(self, name: str, source: Source | None = None) -> Path:
        """train.jsonl / valid.jsonl beside combined.jsonl."""
        return self.chat_dir(source) / f"{name}.jsonl"

    def chat_stats(self, source: Source | None = None) -> Path:
        return self.chat_dir(source) / CHAT_STATS

    def chat_rejects(self, source: Source | None = None) -> Path:
        return self.chat_dir(source) / "combined.rejects.jsonl"

    # -- speech outputs --------------------------------------------------------------------
    def manifests_dir(self, source: Source) -> Path:
        return self.bucket_root(source) / "manifests"

    def manifest(self, source: Source, split: str) -> Path:
        return self.manifests_dir(source) / f"{split}.jsonl"

    def audio_dir(self, source: Source, split: str) -> Path:
        return self.bucket_root(source) / "audio" / split

    def speech_exports_dir(self, source: Source) -> Path:
        return self.bucket_root(source) / "exports"

    def speech_stats(self, source: Source) -> Path:
        return self.manifests_dir(source) / SPEECH_STATS

    # -- what the stages record about their outputs (provenance) -----------------------------
    def derived_records(self, source: Source) -> list[Path]:
        """Where a stage may have recorded what it made of `source` and from which inputs: the
        chat stats, the speech stats, the ONNX export's record (those that exist are read)."""
        root = self.bucket_root(source)
        return [root / CHAT_STATS, self.speech_stats(source), root / ONNX_RECORD]

    def speech_rejects(self, source: Source) -> Path:
        return self.manifests_dir(source) / "rejects.jsonl"

    # -- the tool's own state (never counted, never checksummed) ---------------------------
    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    @property
    def staging_dir(self) -> Path:
        return self.state_dir / "staging"

    @property
    def tmp_dir(self) -> Path:
        return self.state_dir / "tmp"

    @property
    def hash_cache(self) -> Path:
        return self.state_dir / "hashcache.sqlite"

    @property
    def run_lock(self) -> Path:
        return self.state_dir / "run.lock"

    def relative(self, path: Path) -> str:
        """Root-relative POSIX path, as the checksum file and manifests write it."""
        text = os.fspath(path)
        prefix = self._prefix
        if text.startswith(prefix) and "/./" not in text and "/../" not in text:
            return text[len(prefix):]  # the common case (an absolute path under the root): no Path objects
        return Path(path).absolute().relative_to(self.root).as_posix()

    @functools.cached_property
    def _prefix(self) -> str:  # root never changes (frozen); asked once per file by relative()
        return os.fspath(self.root).rstrip("/") + "/"


def require_root(layout: Layout) -> None:
    """Every command but fetch, run and demo works on a root that exists; it never makes one."""
    if not layout.root.is_dir():
        raise UsageError(f"{layout.root}: no such folder; give the root that holds datasets/ with --root "
                         "(only `fetch`, `run` and `demo` create one)")
