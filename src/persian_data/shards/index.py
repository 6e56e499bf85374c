"""Where a shard set lives, its index, and the check of a set against its index.

    shards/<corpus>/<format>/<split>/             the format's files and nothing else
    shards/<corpus>/<format>/<split>.index.json   every file's name, sha256 and size; per shard its
                                                  samples, hours and duration range; the manifest
                                                  sha256 the set was made from

The index sits beside the split folder, not in it: lhotse's `CutSet.from_shar(in_dir=...)` (and
NeMo's `shar_path`) take every file of the folder as a Shar field, so one extra file breaks them.
The run's own state (journal of finished files, staging) is under `.persian-data/shards/`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import orjson

from ..layout import Layout
from .formats import FORMATS

INDEX_VERSION = 1
SHARDS_DIR = "shards"
INDEX_SUFFIX = ".index.json"
# Names each format writes (relative to the split folder): a file of that shape the index does not
# list is a leftover (and is removed by the next run); anything else in the folder is left alone.
OWN_NAMES = {
    "webdataset": re.compile(r"^(bucket\d+/)?[A-Za-z0-9_]+-\d{6}\.tar$"),
    "shar": re.compile(r"^(bucket\d+/)?(cuts\.\d{6}\.jsonl\.gz|recording\.\d{6}\.tar)$"),
    "nemo": re.compile(r"^(bucket\d+/)?(audio_\d+\.tar|sharded_manifests/manifest_\d+\.json"
                       r"|tarred_audio_manifest\.json)$"),
}


@dataclass(frozen=True)
class SetPaths:
    """The paths of one shard set (corpus, format, split)."""

    layout: Layout
    corpus: str
    fmt: str
    split: str

    @property
    def folder(self) -> Path:
        return self.layout.root / SHARDS_DIR / self.corpus / self.fmt / self.split

    @property
    def index(self) -> Path:
        return self.folder.parent / f"{self.split}{INDEX_SUFFIX}"

    @property
    def staging(self) -> Path:
        return self.layout.staging_dir / SHARDS_DIR / self.corpus / self.fmt / self.split

    @property
    def journal(self) -> Path:
        return self.layout.state_dir / SHARDS_DIR / self.corpus / self.fmt / f"{self.split}.journal.json"

    def command(self, options: dict | None = None) -> str:
        """The command that (re)makes this set; with the options an index recorded, those too."""
        text = (f"persian-data shards --root {self.layout.root} --corpus {self.corpus} --split {self.split} "
                f"--format {self.fmt}")
        if options:
            text += f" --shard-size {options['shard_size']} --buckets {options['buckets']} --seed {options['seed']}"
        return text


def existing_sets(layout: Layout, corpus: str) -> list[SetPaths]:
    """Every shard set of `corpus` on disk: those with an index, and split folders without one."""
    found: dict[tuple[str, str], SetPaths] = {}
    base = layout.root / SHARDS_DIR / corpus
    for fmt in FORMATS:
        folder = base / fmt
        if not folder.is_dir():
            continue
        for entry in sorted(folder.iterdir()):
            if entry.name.endswith(INDEX_SUFFIX) and entry.is_file():
                split = entry.name[:-len(INDEX_SUFFIX)]
            elif entry.is_dir():
                split = entry.name
            else:
                continue
            found[(fmt, split)] = SetPaths(layout, corpus, fmt, split)
    return list(found.values())


def read_index(path: Path) -> dict:
    data = orjson.loads(path.read_bytes())
    if not isinstance(data, dict) or data.get("version") != INDEX_VERSION:
        raise ValueError(f"not a version {INDEX_VERSION} shards index")
    return data


def listed_files(index: dict) -> list[dict]:
    """Every file the index names ({name, sha256, bytes, ...}): shard tars, their sidecars, bucket files."""
    out = []
    for shard in index.get("shards", []):
        out.append(shard)
        out.extend(shard.get("files", []))
    out.extend(index.get("files", []))
    return out


Sha256Fn = Callable[[Path, os.stat_result], str]


def check_set(paths: SetPaths, sha256: Sha256Fn) -> list[tuple[str, str]]:
    """(root-relative path, reason) for each way the set differs from its index: missing, changed or
    corrupted files, leftovers, no index (an interrupted run), a manifest that moved on (stale)."""
    layout = paths.layout
    where = layout.relative(paths.index)
    if not paths.index.is_file():
        return [(layout.relative(paths.folder), f"no {paths.index.name} beside it: a `persian-data shards` run "
                                                f"stopped before it finished; run it again with the same options "
                                                f"(`{paths.command()} ...`)")]
    try:
        index = read_index(paths.index)
    except (OSError, ValueError) as exc:
        return [(where, f"unreadable ({exc}); run `{paths.command()}` again")]
    command = paths.command(index.get("options"))
    out = _check_manifest(paths, index, sha256, command)
    listed = set()
    for entry in listed_files(index):
        listed.add(entry["name"])
        final = paths.folder / entry["name"]
        rel = layout.relative(final)
        try:
            st = os.stat(final)
        except FileNotFoundError:
            out.append((rel, f"missing (listed in {where}); run `{command}` again"))
            continue
        if st.st_size != entry["bytes"]:
            out.append((rel, f"size {st.st_size}, {where} says {entry['bytes']}; run `{command}` again"))
            continue
        got = sha256(final, st)
        if got != entry["sha256"]:
            out.append((rel, f"corrupted: sha256 {got}, {where} says {entry['sha256']}; delete it and run "
                             f"`{command}` again"))
    own = OWN_NAMES[paths.fmt]
    for name in own_files(paths.folder, own):
        if name not in listed:
            out.append((layout.relative(paths.folder / name), f"not listed in {where} (a leftover of another run); "
                                                               f"run `{command}` again"))
    return out


def _check_manifest(paths: SetPaths, index: dict, sha256: Sha256Fn, command: str) -> list[tuple[str, str]]:
    layout = paths.layout
    manifest = layout.root / index.get("manifest", "")
    where = layout.relative(paths.index)
    try:
        st = os.stat(manifest)
    except (FileNotFoundError, NotADirectoryError):
        return [(where, f"stale: made from {index.get('manifest')}, which is gone; prepare it again and run "
                        f"`{command}`")]
    now = sha256(manifest, st)
    if now != index.get("manifest_sha256"):
        was = str(index.get("manifest_sha256"))[:12]
        return [(where, f"stale: made from {index.get('manifest')} with sha256 {was}, the manifest is now "
                        f"{now[:12]}; run `{command}` again")]
    return []


def own_files(folder: Path, own: re.Pattern) -> list[str]:
    """Names (relative to `folder`) of the files in it that have the shape of this format's files."""
    out = []
    if not folder.is_dir():
        return out
    for dirpath, _, names in os.walk(folder):
        rel_dir = os.path.relpath(dirpath, folder)
        for name in names:
            rel = name if rel_dir == "." else f"{rel_dir}/{name}".replace(os.sep, "/")
            if own.match(rel):
                out.append(rel)
    return sorted(out)
