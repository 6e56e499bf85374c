"""Publishing a replica into a local hub's store, once: content identical to a repo's head makes
no new commit, so building the same replicas twice gives the same commit shas.

The replicas themselves are built by the corpus modules (`replica_files` in each module under
`persian_data.corpora`; `corpora.replicas.build_replicas` publishes the five), from the scale and
helpers in `replica_kit`.
"""

from __future__ import annotations

import hashlib

from .store import HubStore, lfs_patterns, matches_lfs


def same_as_head(store: HubStore, repo_type: str, repo_id: str, files: dict[str, bytes]) -> str | None:
    """The head commit if it already holds exactly `files` (same bytes, same LFS split)."""
    try:
        head = store.resolve(repo_type, repo_id, "main")
        stored = store.files(repo_type, repo_id, head)
    except KeyError:
        return None
    patterns = lfs_patterns(files.get(".gitattributes", b""))
    want = {p: (hashlib.sha256(d).hexdigest(), matches_lfs(p, patterns)) for p, d in files.items()}
    have = {f.path: (f.object, f.lfs is not None) for f in stored}
    return head if want == have else None


def publish_replica(store: HubStore, repo_type: str, repo_id: str, files: dict[str, bytes], message: str) -> str:
    """Publish `files` as the repo's new head unless the head holds exactly them; the head's sha."""
    sha = same_as_head(store, repo_type, repo_id, files)
    return sha if sha is not None else store.publish(repo_type, repo_id, files, message=message)
