"""The local hub's replicas of the five source repos, for the offline demo (and the tests, which add
hostile files of their own: tests/support).

Each replica mirrors the real repo as described in `SOURCES.md` (the same file names, formats and
Git LFS split, with the content shrunk and generated, and the defects real data has) and is built by
its corpus module (`registry.REPLICAS`); this module publishes them into a `HubStore`.
"""

from __future__ import annotations

from ..localhub.replica_kit import DEMO, TINY, ReplicaScale
from ..localhub.replicas import publish_replica
from ..localhub.store import HubStore
from .registry import BUILTIN, REPLICAS

__all__ = ["ReplicaScale", "TINY", "DEMO", "REPLICA_REPOS", "build_replicas", "replica_files"]

# Source key -> (repo_type, repo_id); taken from the catalog entries so the two cannot disagree.
REPLICA_REPOS: dict[str, tuple[str, str]] = {s.key: (s.repo_type, s.repo_id) for s in BUILTIN}


def replica_files(
    key: str,
    scale: ReplicaScale = TINY,
    *,
    voice_assets: dict[str, tuple[bytes, bytes]] | None = None,
) -> dict[str, bytes]:
    """The files of one replica, by source key."""
    if key not in REPLICAS:
        raise KeyError(f"no replica for source {key!r}")
    return REPLICAS[key](scale, key=key, voice_assets=voice_assets)


def build_replicas(
    store: HubStore,
    scale: ReplicaScale = TINY,
    *,
    voice_assets: dict[str, tuple[bytes, bytes]] | None = None,
    only: tuple[str, ...] | list[str] | None = None,
) -> dict[str, str]:
    """Publish the replicas into `store`; return source key -> commit sha.

    `voice_assets` maps "female"/"male" (or "tts-female"/"tts-male") to (config.json bytes,
    checkpoint bytes). Publishing content identical to a repo's head makes no new commit, so
    calling this twice on one store gives the same shas.
    """
    shas: dict[str, str] = {}
    for key, (repo_type, repo_id) in REPLICA_REPOS.items():
        if only is not None and key not in only:
            continue
        files = replica_files(key, scale, voice_assets=voice_assets)
        shas[key] = publish_replica(store, repo_type, repo_id, files, f"persian-data replica ({scale.name})")
    return shas
