"""What each derived output was made from, and whether it still is.

A stage that derives files from fetched ones records, in the file it already writes beside its
outputs, the sha256 of every input it read (`"inputs": {root-relative path: sha256}`):

- the chat corpus: `combined.stats.json` (combined.jsonl, train/valid.jsonl, rejects, review);
- each speech corpus: `manifests/stats.json` (manifests, audio/, exports/);
- each voice's ONNX export: `onnx/export.json` (its `source` entries: config and checkpoint).

An output is **stale** when an input it was made from now holds other bytes, or is gone, while
the lock has moved on too (`fetch` brought another revision): `status` shows it, `verify` fails
on it, a plain `fetch` notes it. An input that differs from the lock is not a reason to call the
output stale: the output was made from what was downloaded, and the damaged copy is what
`fetch` must repair (the checksums and lock gates name it).

Before a stage runs, its inputs are compared with the lock (`damaged_inputs`): a copy that is not
what was downloaded (truncated, edited, missing) stops the stage, so its last good outputs stay.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import orjson

from .catalog import CATALOG, Source
from .errors import LockFileError
from .integrity import HashCache, LockedFile, LockedSource, hash_file, read_lock
from .layout import Layout

Sha256 = Callable[[Path], str]

@dataclass(frozen=True)
class RecordKind:
    what: str  # what the outputs are
    output: str  # the output the user knows them by, beside the record ("": the record's folder)
    remedy: str  # the command that makes them again
    # what a stage gate already judges of this record (the provenance gate does not say it twice)
    parsed_by_stage_gate: bool = False
    staleness_by_stage_gate: bool = False


RECORDS = {  # by the record's file name (Layout.derived_records)
    "combined.stats.json": RecordKind("chat corpus", "combined.jsonl", "persian-data prepare text",
                                      parsed_by_stage_gate=True),
    "stats.json": RecordKind("speech manifests and exports", "", "persian-data prepare speech"),
    "export.json": RecordKind("ONNX export", "", "persian-data tts-export", parsed_by_stage_gate=True,
                              staleness_by_stage_gate=True),
}


def cached_sha256(cache: HashCache | None) -> Sha256:
    """sha256 of a file: the hash cache's when the file is unchanged since it was hashed (a stat),
    else read now (and remembered)."""
    if cache is None:
        return lambda path: hash_file(path).sha256
    return lambda path: cache.digests(path).sha256


def input_record(layout: Layout, paths: Iterable[Path], cache: HashCache | None) -> dict[str, str]:
    """The `inputs` a stage writes into its record: root-relative path -> sha256, sorted."""
    sha256 = cached_sha256(cache)
    return {_where(layout, path): sha256(path) for path in sorted(paths)}


def _where(layout: Layout, path: Path) -> str:
    try:
        return layout.relative(path)
    except ValueError:  # outside the root (a content folder linked from elsewhere): the absolute path
        return str(Path(path).absolute())


# -- inputs against the lock ---------------------------------------------------------------------

def locked_files(layout: Layout, lock: dict[str, LockedSource],
                 sources: Iterable[Source] = CATALOG) -> dict[str, tuple[str, LockedFile]]:
    """Root-relative path -> (source key, lock entry) of every locked file of `sources`."""
    out: dict[str, tuple[str, LockedFile]] = {}
    for source in sources:
        locked = lock.get(source.key)
        if locked is None:
            continue
        prefix = layout.relative(layout.content_dir(source)) + "/"
        for path, entry in locked.files.items():
            out[prefix + path] = (source.key, entry)
    return out


def lock_mismatch(entry: LockedFile, size: int | None, sha256: str | None) -> str | None:
    """Why a file is not the one the lock records (None: it is). `size` None: the file is missing."""
    if size is None:
        return "missing"
    if size != entry.size:
        return f"{size} bytes, the lock says {entry.size}"
    if sha256 is not None and sha256 != entry.sha256:
        return f"sha256 {sha256}, the lock says {entry.sha256}"
    return None


def repair_hint(key: str) -> str:
    return f"run `persian-data fetch --only {key}` to repair it"


def damaged_inputs(layout: Layout, sources: Iterable[Source], lock: dict[str, LockedSource],
                   sha256: Sha256) -> list[str]:
    """One line per locked file of `sources` that is missing or holds other bytes than the lock
    records. A stat per file; a file is read only when its stat is not the one it was hashed at."""
    out = []
    for rel, (key, entry) in sorted(locked_files(layout, lock, sources).items()):
        path = layout.root / rel
        try:
            size = os.stat(path).st_size
        except FileNotFoundError:
            size = None
        why = lock_mismatch(entry, size, None)
        if why is None:
            why = lock_mismatch(entry, size, sha256(path))
        if why is not None:
            out.append(f"{rel}: {why}: not the file that was downloaded; {repair_hint(key)}")
    return out


# -- derived outputs -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Derived:
    """One stage record: what it vouches for and the inputs it says the outputs were made from."""

    source: str  # key of the source the outputs were derived from
    record: Path
    kind: RecordKind
    inputs: dict[str, str] | None  # None: written before inputs were recorded
    problem: str | None = None  # the record cannot be read

    def label(self, layout: Layout) -> str:
        return layout.relative(self.record.parent / self.kind.output if self.kind.output else self.record.parent)


def derived_outputs(layout: Layout, sources: Iterable[Source] = CATALOG) -> list[Derived]:
    """The stage records present for `sources` (a source never prepared has none)."""
    out = []
    for source in sources:
        for path in layout.derived_records(source):
            kind = RECORDS[path.name]
            try:
                data = orjson.loads(path.read_bytes())
            except FileNotFoundError:
                continue
            except (orjson.JSONDecodeError, OSError) as exc:
                out.append(Derived(source.key, path, kind, None, f"{layout.relative(path)} is unreadable ({exc}); "
                                                                 f"run `{kind.remedy}`"))
                continue
            if not isinstance(data, dict):
                out.append(Derived(source.key, path, kind, None, f"{layout.relative(path)} is not a JSON object; "
                                                                 f"run `{kind.remedy}`"))
                continue
            inputs = data.get("inputs")
            if inputs is None and path.name == "export.json" and isinstance(data.get("source"), dict):
                model_dir = layout.content_dir(source)  # the ONNX record names its sources by file name
                inputs = {layout.relative(model_dir / e["file"]): e["sha256"] for e in data["source"].values()
                          if isinstance(e, dict) and isinstance(e.get("file"), str) and "sha256" in e}
            if inputs is not None and not (isinstance(inputs, dict)
                                           and all(isinstance(v, str) for v in inputs.values())):
                out.append(Derived(source.key, path, kind, None, f"{layout.relative(path)}: malformed 'inputs'; "
                                                                 f"run `{kind.remedy}`"))
                continue
            out.append(Derived(source.key, path, kind, inputs))
    return out


def stale_inputs(layout: Layout, derived: Derived, sha256: Sha256,
                 locked: dict[str, tuple[str, LockedFile]] | None) -> list[str]:
    """The inputs of `derived` that changed since its outputs were made ("path (gone)" for a
    missing one). An input whose recorded bytes are still what the lock records is left out: a
    damaged copy of it is for `fetch` to repair, and the outputs are not stale."""
    changed = []
    for rel, recorded in sorted((derived.inputs or {}).items()):
        entry = locked.get(rel) if locked is not None else None
        if entry is not None and entry[1].sha256 == recorded:
            continue  # made from the downloaded bytes; if the copy differs now, the lock gates say so
        path = layout.root / rel
        try:
            current = sha256(path)
        except (FileNotFoundError, NotADirectoryError):
            changed.append(f"{rel} (gone)")
            continue
        if current != recorded:
            changed.append(rel)
    return changed


def read_lock_quietly(layout: Layout) -> dict[str, LockedSource] | None:
    try:
        return read_lock(layout.lock_file)
    except LockFileError:
        return None  # the lock gate says why


@dataclass(frozen=True)
class OutputState:
    path: str  # root-relative: the output the user knows (combined.jsonl, a manifests or onnx folder)
    kind: RecordKind
    state: str  # current, stale, unrecorded, unreadable
    changed: tuple[str, ...] = ()
    problem: str = ""

    def to_json(self) -> dict:
        out = {"path": self.path, "what": self.kind.what, "state": self.state, "changed": list(self.changed)}
        return {**out, "problem": self.problem} if self.problem else out

    def message(self) -> str:
        if self.state == "stale":
            return (f"stale: made from {', '.join(self.changed)}, which changed since; run `{self.kind.remedy}` "
                    "to make it again")
        if self.state == "unrecorded":
            return (f"made by an older version that did not record its inputs; run `{self.kind.remedy}` "
                    "to record them")
        return self.problem


def output_states(layout: Layout, sources: Iterable[Source], sha256: Sha256,
                  lock: dict[str, LockedSource] | None) -> dict[str, list[OutputState]]:
    """Per source key: the state of each derived output (for `status` and the gate)."""
    locked = locked_files(layout, lock) if lock is not None else None
    out: dict[str, list[OutputState]] = {}
    for d in derived_outputs(layout, sources):
        where = d.label(layout)
        if d.problem is not None:
            state = OutputState(where, d.kind, "unreadable", problem=d.problem)
        elif d.inputs is None:
            state = OutputState(where, d.kind, "unrecorded")
        else:
            changed = stale_inputs(layout, d, sha256, locked)
            state = OutputState(where, d.kind, "stale" if changed else "current", tuple(changed))
        out.setdefault(d.source, []).append(state)
    return out
