"""The ONNX export of a voice on disk: `datasets/tts/<voice>/onnx/{model.onnx,export.json}`.

The folder sits beside `model/` (never inside it, so the specification's counts of `model/` do
not change) and is counted in `checksums/datasets.sha256.txt` like everything under `datasets/`.
`export.json` records what the ONNX file was made from and how:

    {"format": 1, "voice": "female",
     "source": {"config": {"file", "sha256", "bytes"}, "checkpoint": {"file", "sha256", "bytes"}},
     "onnx": {"file": "model.onnx", "sha256", "bytes"},
     "exporter": {...}, "opset": 18, "front_end": {...}, "audio": {...}, "scales": [...],
     "check": {...},
     "int8": {"file": "model.int8.onnx", "sha256", "bytes", "quantized", "method", "check", ...}}

`int8` is present only after `tts-export --int8` (quantize.py): the decoder quantized to int8,
checked against torch. Its file is checked like model.onnx; a model.int8.onnx the record does not
name is a stray file.

This module reads the record and compares it with the bytes: the ONNX file's sha256 with the
record's, and the source files' with the record's (a voice fetched again at another revision
makes an old export stale). No third-party imports: the torch-free server and the `tts` gate
both use it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from ..atomic import sha256_of
from ..errors import PersianDataError
from ..integrity import HashCache, LockFileError, read_lock
from ..layout import Layout

ONNX_DIR = "onnx"
MODEL_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
RECORD_FILE = "export.json"
FORMAT = 1
EXPORT_FILES = frozenset({MODEL_FILE, RECORD_FILE})  # always; INT8_FILE when the record has `int8`
PRECISIONS = ("fp32", "int8")
MODEL_ENTRY = {"fp32": "onnx", "int8": "int8"}  # precision -> the record's entry for its file

Sha256 = Callable[[Path], str]


class OnnxExportError(PersianDataError):
    """An ONNX export is missing, unreadable, tampered with or stale; the message says which."""


def file_entry(path: Path, sha256: Sha256 = sha256_of) -> dict[str, Any]:
    return {"file": path.name, "sha256": sha256(path), "bytes": path.stat().st_size}


def read_record(folder: Path) -> dict[str, Any]:
    """The parsed export.json of `folder`; OnnxExportError when missing or malformed."""
    path = Path(folder) / RECORD_FILE
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise OnnxExportError(f"{path}: missing (every ONNX export carries its record)") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise OnnxExportError(f"{path}: not readable JSON ({exc})") from exc
    try:
        if record["format"] != FORMAT:
            raise OnnxExportError(f"{path}: record format {record['format']!r}, this version reads {FORMAT}")
        for key in ("config", "checkpoint"):
            _entry(record["source"][key])
        _entry(record["onnx"])
        if "int8" in record:
            _entry(record["int8"])
        for key in ("front_end", "audio", "scales", "exporter", "opset"):
            record[key]  # noqa: B018 - presence check
    except (KeyError, TypeError) as exc:
        raise OnnxExportError(f"{path}: incomplete record ({type(exc).__name__}: {exc})") from exc
    return record


def _entry(entry: Any) -> None:
    if not (isinstance(entry, dict) and isinstance(entry.get("file"), str) and isinstance(entry.get("sha256"), str)
            and len(entry["sha256"]) == 64 and isinstance(entry.get("bytes"), int)):
        raise TypeError(f"bad file entry {entry!r}")


def export_problems(folder: Path, model_dir: Path | None, record: dict[str, Any], *,
                    sha256: Sha256 = sha256_of, source_sha256: dict[str, str] | None = None,
                    precisions: tuple[str, ...] = PRECISIONS) -> list[tuple[Path, str]]:
    """(path, reason) for every way the export in `folder` disagrees with its record.

    The ONNX files (model.onnx, and model.int8.onnx when recorded; only those of `precisions`, e.g.
    just the one a server is about to run): present, same size, same sha256 (a tampered or
    truncated file is refused). Files the record does not name are refused too. The source (when
    `model_dir` holds it): config and checkpoint still the bytes the export was made from.
    `source_sha256` (file name -> sha256, e.g. from the lock file) saves hashing a 1 GB checkpoint
    when its hash is already known and checked elsewhere.
    """
    folder = Path(folder)
    problems: list[tuple[Path, str]] = []
    named = {MODEL_ENTRY[p]: record[MODEL_ENTRY[p]] for p in PRECISIONS if MODEL_ENTRY[p] in record}
    for key, entry in named.items():
        if key not in {MODEL_ENTRY[p] for p in precisions}:
            continue
        path = folder / entry["file"]
        if not path.is_file():
            problems.append((path, "missing: the ONNX model its record names"))
            continue
        size = path.stat().st_size
        got = sha256(path) if size == entry["bytes"] else None
        if size != entry["bytes"] or got != entry["sha256"]:
            what = f"size {size}, recorded {entry['bytes']}" if got is None else f"sha256 {got}"
            again = "`persian-data tts-export --int8`" if key == "int8" else "`persian-data tts-export`"
            problems.append((path, f"does not match its record {folder / RECORD_FILE} ({what}, recorded "
                                   f"sha256 {entry['sha256']}): changed since export; refused. Run "
                                   f"{again} again."))
    belongs = EXPORT_FILES | {entry["file"] for entry in named.values()}
    for extra in sorted(p for p in folder.iterdir() if p.name not in belongs):
        problems.append((extra, f"not part of the export (only {', '.join(sorted(belongs))} belong here: "
                                "what its record names)"))
    if model_dir is not None and Path(model_dir).is_dir():
        known = source_sha256 or {}
        for key in ("config", "checkpoint"):
            entry = record["source"][key]
            source = Path(model_dir) / entry["file"]
            if not source.is_file():
                problems.append((source, f"the export was made from this {key}, which is no longer there: "
                                         f"stale export; run `persian-data tts-export` again"))
                continue
            size = source.stat().st_size
            got = known.get(entry["file"]) if size == entry["bytes"] else None
            if size == entry["bytes"] and got is None:
                got = sha256(source)
            if size != entry["bytes"] or got != entry["sha256"]:
                problems.append((source, f"differs from the {key} the ONNX export was made from (recorded "
                                         f"sha256 {entry['sha256']}): stale export; run `persian-data "
                                         f"tts-export` again"))
    return problems


def checked_record(folder: Path, model_dir: Path | None, *, sha256: Sha256 = sha256_of,
                   source_sha256: dict[str, str] | None = None,
                   precisions: tuple[str, ...] = PRECISIONS) -> dict[str, Any]:
    """read_record + export_problems; raises OnnxExportError listing every problem."""
    record = read_record(folder)
    problems = export_problems(folder, model_dir, record, sha256=sha256, source_sha256=source_sha256,
                               precisions=precisions)
    if problems:
        raise OnnxExportError("; ".join(f"{path}: {reason}" for path, reason in problems))
    return record


def locked_sha256(layout: Layout, source) -> dict[str, str]:
    """file name -> sha256 of the voice's files as the lock records them ({} without a lock)."""
    try:
        locked = read_lock(layout.lock_file).get(source.key)
    except (LockFileError, OSError):
        return {}
    if locked is None:
        return {}
    return {path: entry.sha256 for path, entry in locked.files.items() if "/" not in path}


def known_source_sha256(layout: Layout, source) -> dict[str, str]:
    """file name -> sha256 of the voice's model files, known without reading them: the lock's
    record, overridden by the hash cache's entry for a file unchanged since it was hashed (same
    size, mtime, inode). Read-only: a server start never writes the cache."""
    known = locked_sha256(layout, source)
    model_dir = layout.content_dir(source)
    if layout.hash_cache.is_file() and model_dir.is_dir():
        cache = HashCache(layout.hash_cache, layout.root)
        for path in model_dir.iterdir():
            try:
                digests = cache.lookup(path)
            except ValueError:  # outside the root (a symlinked folder): not the cache's
                digests = None
            if digests is not None:
                known[path.name] = digests.sha256
    return known
