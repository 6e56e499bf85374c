"""On-disk store of the local Hub: repos, commits and content-addressed objects.

Layout of a hub folder:

    objects/<sha256[:2]>/<sha256>                       file contents, stored once
    repos/<datasets|models>/<org>/<name>/refs.json       {"main": "<commit sha>", ...}
    repos/<datasets|models>/<org>/<name>/commits/<sha>.json
        {"parent": sha|null, "message": str,
         "files": [{"path", "size", "oid", "object", "lfs": {"sha256","size","pointerSize"}|null}]}

`oid` is what the Hub reports as a file's blob id: the git blob sha1 of the content for regular
files and of the LFS pointer for LFS files. The commit sha is a sha1 over parent and entries,
so it changes whenever content changes, as the Hub's does.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

REPO_TYPE_DIRS = {"dataset": "datasets", "model": "models"}


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def lfs_patterns(gitattributes: bytes) -> list[str]:
    """Patterns marked `filter=lfs` in a .gitattributes file."""
    patterns = []
    for line in gitattributes.decode("utf-8", "replace").splitlines():
        parts = line.split()
        if len(parts) >= 2 and not parts[0].startswith("#") and "filter=lfs" in parts[1:]:
            patterns.append(parts[0])
    return patterns


def matches_lfs(path: str, patterns: list[str]) -> bool:
    name = path.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(path, p) or fnmatch.fnmatchcase(name, p) for p in patterns)


@dataclass(frozen=True)
class StoredFile:
    path: str
    size: int
    oid: str  # git blob sha1 (of the pointer, for LFS)
    object: str  # sha256 of the content: key into objects/
    lfs: dict | None  # {"sha256", "size", "pointerSize"} for LFS files

    @property
    def etag(self) -> str:
        """What the Hub sends as ETag: sha256 for LFS files, the git blob sha1 otherwise."""
        return self.lfs["sha256"] if self.lfs else self.oid


class RepoNotFound(KeyError):
    pass


class RevisionNotFound(KeyError):
    pass


class HubStore:
    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    # -- writing ---------------------------------------------------------------------------
    def put_object(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        path = self.object_path(digest)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        return digest

    def publish(
        self,
        repo_type: str,
        repo_id: str,
        files: dict[str, bytes],
        *,
        branch: str = "main",
        message: str = "replica",
        lfs_paths: set[str] | None = None,
    ) -> str:
        """Commit `files` (path -> bytes) as the new head of `branch`; return the commit sha.

        LFS files are those in `lfs_paths`, or else those matching the `filter=lfs` patterns of
        the repo's own `.gitattributes`, as on the Hub.
        """
        patterns = lfs_patterns(files.get(".gitattributes", b""))
        entries = []
        for path in sorted(files):
            data = files[path]
            digest = self.put_object(data)
            is_lfs = path in lfs_paths if lfs_paths is not None else matches_lfs(path, patterns)
            if is_lfs:
                pointer = lfs_pointer(digest, len(data))
                lfs = {"sha256": digest, "size": len(data), "pointerSize": len(pointer)}
                oid = git_blob_sha1(pointer)
            else:
                lfs, oid = None, git_blob_sha1(data)
            entries.append({"path": path, "size": len(data), "oid": oid, "object": digest, "lfs": lfs})
        repo_dir = self.repo_dir(repo_type, repo_id)
        refs = self._read_refs(repo_dir)
        parent = refs.get(branch)
        body = json.dumps({"parent": parent, "files": entries}, sort_keys=True).encode()
        sha = hashlib.sha1(body).hexdigest()
        commit = {"parent": parent, "message": message, "files": entries}
        (repo_dir / "commits").mkdir(parents=True, exist_ok=True)
        (repo_dir / "commits" / f"{sha}.json").write_text(json.dumps(commit, indent=1))
        refs[branch] = sha
        (repo_dir / "refs.json").write_text(json.dumps(refs, indent=1))
        return sha

    # -- reading ---------------------------------------------------------------------------
    def object_path(self, sha256: str) -> Path:
        return self.root / "objects" / sha256[:2] / sha256

    def repo_dir(self, repo_type: str, repo_id: str) -> Path:
        return self.root / "repos" / REPO_TYPE_DIRS[repo_type] / repo_id

    def repos(self) -> list[tuple[str, str]]:
        found = []
        for repo_type, folder in REPO_TYPE_DIRS.items():
            base = self.root / "repos" / folder
            for refs in sorted(base.glob("*/*/refs.json")):
                found.append((repo_type, refs.parent.relative_to(base).as_posix()))
        return found

    def resolve(self, repo_type: str, repo_id: str, revision: str) -> str:
        """Commit sha for a branch name or a full commit sha."""
        repo_dir = self.repo_dir(repo_type, repo_id)
        if not (repo_dir / "refs.json").exists():
            raise RepoNotFound(repo_id)
        refs = self._read_refs(repo_dir)
        if revision in refs:
            return refs[revision]
        if (repo_dir / "commits" / f"{revision}.json").exists():
            return revision
        raise RevisionNotFound(revision)

    def files(self, repo_type: str, repo_id: str, revision: str) -> list[StoredFile]:
        sha = self.resolve(repo_type, repo_id, revision)
        commit = json.loads((self.repo_dir(repo_type, repo_id) / "commits" / f"{sha}.json").read_text())
        return [StoredFile(**entry) for entry in commit["files"]]

    @staticmethod
    def _read_refs(repo_dir: Path) -> dict[str, str]:
        refs = repo_dir / "refs.json"
        return json.loads(refs.read_text()) if refs.exists() else {}
