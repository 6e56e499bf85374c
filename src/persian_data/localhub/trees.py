"""A commit's file tree as the Hub lists it: files, the directories they imply (with git tree ids),
in pre-order; cached by commit sha, since a commit never changes (refs do, and are never cached)."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Iterable

from .store import HubStore, StoredFile

TREE_CACHE_SIZE = 64


@dataclass
class Tree:
    """A commit's files plus derived directory entries, in pre-order (parents before children)."""

    files: dict[str, StoredFile]
    entries: list[tuple[str, StoredFile | None]]  # (path, file or None for a directory)
    dir_oids: dict[str, str]


def git_tree_oids(files: Iterable[StoredFile]) -> dict[str, str]:
    """Git tree sha1 of every directory (as git computes it: blob ids are the LFS pointers' for LFS)."""
    root: dict = {}
    for f in files:
        node = root
        *dirs, name = f.path.split("/")
        for d in dirs:
            node = node.setdefault(d, {})
        node[name] = f.oid
    oids: dict[str, str] = {}

    def walk(node: dict, prefix: str) -> bytes:
        items = []
        for name, child in node.items():
            if isinstance(child, dict):
                items.append((name + "/", b"40000 " + name.encode() + b"\0" + walk(child, prefix + name + "/")))
            else:
                items.append((name, b"100644 " + name.encode() + b"\0" + bytes.fromhex(child)))
        body = b"".join(raw for _, raw in sorted(items, key=lambda it: it[0].encode()))
        digest = hashlib.sha1(b"tree %d\0" % len(body) + body)
        if prefix:
            oids[prefix[:-1]] = digest.hexdigest()
        return digest.digest()

    walk(root, "")
    return oids


def build_tree(files: list[StoredFile]) -> Tree:
    by_path = {f.path: f for f in files}
    dirs = set()
    for p in by_path:
        parts = p.split("/")
        for i in range(1, len(parts)):
            dirs.add("/".join(parts[:i]))
    entries: list[tuple[str, StoredFile | None]] = [(d, None) for d in dirs] + list(by_path.items())
    entries.sort(key=lambda e: e[0].split("/"))
    return Tree(by_path, entries, git_tree_oids(files))


class TreeCache:
    """The trees of the last TREE_CACHE_SIZE commits asked for (thread-safe)."""

    def __init__(self, store: HubStore, size: int = TREE_CACHE_SIZE) -> None:
        self.store, self.size = store, size
        self._trees: OrderedDict[tuple[str, str, str], Tree] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, repo_type: str, repo_id: str, sha: str) -> Tree:
        key = (repo_type, repo_id, sha)
        with self._lock:
            if key in self._trees:
                self._trees.move_to_end(key)
                return self._trees[key]
        tree = build_tree(self.store.files(repo_type, repo_id, sha))
        with self._lock:
            self._trees[key] = tree
            while len(self._trees) > self.size:
                self._trees.popitem(last=False)
        return tree
