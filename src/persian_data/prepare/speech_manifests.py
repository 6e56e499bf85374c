"""Reading prepared speech back: manifest lines, completion markers, and the clip bytes a
--no-extract manifest references.

Used by the gate (`prepare.speech_gates`), the exports and loaders (`prepare.speech_export`) and
the orchestrator; it reads the corpus containers through the source's reader.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import orjson

from ..catalog import Source
from ..layout import Layout


MANIFEST_VERSION = 1


def marker_path(layout: Layout, source: Source, split: str) -> Path:
    """A published split's completion marker (the stage writes it; the gate reads its tallies)."""
    return layout.state_dir / "speech" / source.folder / f"{split}.done.json"


def read_marker(path: Path) -> dict | None:
    try:
        data = orjson.loads(path.read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError, OSError):
        return None
    return data if isinstance(data, dict) and data.get("version") == MANIFEST_VERSION else None


def clips_digest(pairs) -> str:
    """sha256 over a split's (file name, sha256) pairs, sorted by name: the stage records it in the
    marker from what it wrote, the gate recomputes it from the listing the records step made."""
    import hashlib

    digest = hashlib.sha256()
    for name, sha in sorted(pairs, key=lambda pair: pair[0].encode()):
        digest.update(f"{name}\t{sha}\n".encode())
    return digest.hexdigest()


def iter_manifest(path: Path) -> Iterable[dict]:
    with open(path, "rb") as handle:
        for line in handle:
            if line.strip():
                yield orjson.loads(line)


def manifest_lines(path: Path) -> list[dict]:
    return list(iter_manifest(path))


def iter_referenced(layout: Layout, lines: list[dict], source: Source) -> Iterable[tuple[dict, bytes | None]]:
    """(line, bytes) for manifest lines that reference a parquet row, a tar member or a repo file
    (--no-extract). Each container is read once, in order, by the source's reader; bytes is None
    for a reference that is not found."""
    by_container: dict[str, list[dict]] = {}
    for line in lines:
        by_container.setdefault(line["audio_path"], []).append(line)
    for container, group in by_container.items():
        refs = [ln["audio_ref"] for ln in group if isinstance(ln.get("audio_ref"), dict)]
        found = source.reader.read_referenced(layout, source, layout.root / container, refs)
        for ln in group:
            key = _ref_key(ln.get("audio_ref"))
            yield ln, found.get(key) if key is not None else None


def _ref_key(ref) -> tuple | None:
    """("row", 12) for {"row": 12}: how readers key what they found; None for anything else."""
    if not isinstance(ref, dict) or len(ref) != 1:
        return None
    ((kind, value),) = ref.items()
    return (kind, value) if isinstance(value, (int, str)) and not isinstance(value, bool) else None
