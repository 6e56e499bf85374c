"""The replicas as the tests build them: the real builders (`persian_data.corpora`) plus the hostile
files of `support.hostile` (FLEURS' escaping tar members always, the damaged chat files with
`hostile=True`), and what each replica declares it holds, so tests can assert exact numbers.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from persian_data.corpora import fleurs as fleurs_corpus
from persian_data.corpora import persian_conversation as text_corpus
from persian_data.corpora.replicas import REPLICA_REPOS
from persian_data.corpora.replicas import replica_files as demo_replica_files
from persian_data.localhub.replica_kit import DEMO, TINY, ReplicaScale
from persian_data.localhub.replicas import publish_replica
from persian_data.localhub.store import HubStore

from .hostile import FLEURS_HOSTILE, FLEURS_HOSTILE_MEMBERS, TEXT_HOSTILE, TEXT_HOSTILE_FILES, \
    with_damaged_text_files, with_escaping_members

__all__ = ["DEMO", "FLEURS_HOSTILE", "FLEURS_HOSTILE_MEMBERS", "REPLICA_REPOS", "ReplicaScale", "TEXT_ADVERSARIAL_COUNTS",
           "TEXT_HOSTILE", "TEXT_HOSTILE_FILES", "TINY", "build_replicas", "fleurs_manifest", "fleurs_repo",
           "replica_files", "scaled", "text_manifest", "text_repo"]

TEXT_ADVERSARIAL_COUNTS: dict[str, int] = {k: v["count"] for k, v in text_corpus.TEXT_ADVERSARIAL.items()}


def scaled(scale: ReplicaScale, factor: float, *, name: str | None = None) -> ReplicaScale:
    """Every count and the checkpoint size multiplied by `factor`."""
    return replace(
        scale,
        name=name or f"{scale.name}x{factor:g}",
        text_rows=max(2, round(scale.text_rows * factor)),
        cv_clips_per_shard=max(2, round(scale.cv_clips_per_shard * factor)),
        fleurs_clips_per_split=max(2, round(scale.fleurs_clips_per_split * factor)),
        checkpoint_bytes=max(64, round(scale.checkpoint_bytes * factor)),
    )


# -- building ----------------------------------------------------------------------------------
def text_repo(scale: ReplicaScale = TINY, *, hostile: bool = False) -> dict[str, bytes]:
    files = text_corpus.text_repo(scale)
    return with_damaged_text_files(files) if hostile else files


def fleurs_repo(scale: ReplicaScale = TINY, *, decoys: tuple[str, ...] = ("en_us", "ar_eg")) -> dict[str, bytes]:
    return with_escaping_members(fleurs_corpus.fleurs_repo(scale, decoys=decoys))


def replica_files(
    key: str,
    scale: ReplicaScale = TINY,
    *,
    hostile: bool = False,
    voice_assets: dict[str, tuple[bytes, bytes]] | None = None,
) -> dict[str, bytes]:
    """The files of one replica, by source key, with the tests' hostile files."""
    files = demo_replica_files(key, scale, voice_assets=voice_assets)
    if key == fleurs_corpus.SOURCE.key:
        files = with_escaping_members(files)
    if key == text_corpus.SOURCE.key and hostile:
        files = with_damaged_text_files(files)
    return files


def build_replicas(
    store: HubStore,
    scale: ReplicaScale = TINY,
    *,
    hostile: bool = False,
    voice_assets: dict[str, tuple[bytes, bytes]] | None = None,
    only: tuple[str, ...] | list[str] | None = None,
) -> dict[str, str]:
    """Publish the tests' replicas into `store`; source key -> commit sha (the same shas on every call
    with the same arguments)."""
    shas: dict[str, str] = {}
    for key, (repo_type, repo_id) in REPLICA_REPOS.items():
        if only is None or key in only:
            files = replica_files(key, scale, hostile=hostile, voice_assets=voice_assets)
            shas[key] = publish_replica(store, repo_type, repo_id, files, f"persian-data replica ({scale.name})")
    return shas


# -- what the replicas hold --------------------------------------------------------------------
def _well_formed(row: Any) -> bool:
    """The strict schema: a 4-item list [str, str, list[str], list[str]] (content may still be odd)."""
    return (
        isinstance(row, list)
        and len(row) == 4
        and isinstance(row[0], str)
        and isinstance(row[1], str)
        and isinstance(row[2], list)
        and all(isinstance(a, str) for a in row[2])
        and isinstance(row[3], list)
        and all(isinstance(k, str) for k in row[3])
    )


def text_manifest(scale: ReplicaScale, *, hostile: bool = False) -> dict[str, dict[str, Any]]:
    """Exact contents per json file: elements, normal rows, adversarial kinds, well-formed rows,
    answers in well-formed rows, and the number of distinct elements."""
    out: dict[str, dict[str, Any]] = {}
    for name, rows in text_corpus.text_rows(scale).items():
        kinds: dict[str, int] = {}
        for kind, _ in rows:
            if kind != "normal":
                kinds[kind] = kinds.get(kind, 0) + 1
        wf = [row for _, row in rows if _well_formed(row)]
        out[name] = {
            "elements": len(rows),
            "normal": sum(1 for kind, _ in rows if kind == "normal"),
            "adversarial": kinds,
            "well_formed": len(wf),
            "answers": sum(len(row[2]) for row in wf),
            "distinct": len({json.dumps(row) for _, row in rows}),
            "lfs": name in text_corpus.TEXT_LFS_FILES,
        }
    if hostile:
        for name, info in TEXT_HOSTILE.items():
            out[name] = dict(info)
    return out


def fleurs_manifest(scale: ReplicaScale, lang: str = fleurs_corpus.LANG) -> dict[str, dict[str, Any]]:
    """Per split, from the builder's rows and members: tsv_rows, wav_members (regular `<split>/*.wav`),
    good_rows (wav present, num_samples right: what a careful reader keeps), distinct_ids,
    repeated_ids, hostile_members (the escaping members the tests add)."""
    wrong = fleurs_corpus.FLEURS_ADVERSARIAL["wrong_num_samples"]["wav"] if lang == fleurs_corpus.LANG else None
    out: dict[str, dict[str, Any]] = {}
    for split in fleurs_corpus.FLEURS_SPLITS:
        rows, members = fleurs_corpus.fleurs_split(scale, lang, split)
        wavs = [m for m, data, target in members if data is not None and target is None and m.startswith(f"{split}/")]
        names_in_tar = {m.rsplit("/", 1)[1] for m in wavs}
        hostile = [h["member"] for h in FLEURS_HOSTILE.values() if lang == fleurs_corpus.LANG and h["split"] == split]
        out[split] = {
            "repeated_ids": 2,
            "hostile_members": hostile,
            "tsv_rows": len(rows),
            "wav_members": len(wavs),
            "good_rows": sum(1 for _, name, _, _, _ in rows if name in names_in_tar and name != wrong),
            "distinct_ids": len({row[0] for row in rows}),
        }
    return out
