"""The Hub-compatible app over a `HubStore`: the subset of the Hugging Face Hub protocol that
`huggingface_hub` (2.x, and 0.x) uses to download repos, so `hf_hub_download`, `snapshot_download`,
`HfApi.repo_info`/`list_repo_tree` and the `hf download` CLI work against it (with `endpoint=` or
`HF_ENDPOINT`):

    GET      /api/{datasets|models}/{org}/{name}[/revision/{rev}]        repo info (`?blobs=true`)
    GET      /api/{datasets|models}/{org}/{name}/tree/{rev}[/{path}]     tree (`?recursive=`, paginated)
    HEAD/GET /[datasets/]{org}/{name}/resolve/{rev}/{path}               file (Range, 206, 416)

Revisions are branch names or full commit shas. A revision with a `/` (`refs/convert/parquet`) may be
percent-encoded (as `huggingface_hub` does) or not. Refs are read from the store on every request, so a
repo may be re-published between calls.

Errors are answered like the Hub: 404 with `X-Error-Code: RepoNotFound | RevisionNotFound |
EntryNotFound` and a JSON `{"error": ...}` body. Files are answered with a direct 200/206 (the Hub
redirects LFS files to a CDN; `huggingface_hub` does not need that). No Xet header is ever sent.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode

from fastapi import FastAPI, Request
from starlette.responses import Response

from .files import FileResponse, Unsatisfiable, parse_range
from .store import HubStore, RepoNotFound, RevisionNotFound, StoredFile
from .trees import Tree, TreeCache

__all__ = ["HubError", "create_app", "json_bytes"]

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class HubError(Exception):
    def __init__(self, code: str | None, message: str, status: int = 404, commit: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.status, self.commit = code, message, status, commit

    def response(self) -> Response:
        headers = {}
        if self.code:
            headers["X-Error-Code"] = self.code
            headers["X-Error-Message"] = self.message
        if self.commit:
            headers["X-Repo-Commit"] = self.commit
        return Response(json_bytes({"error": self.message}), self.status, headers, "application/json")


@dataclass
class HubState:
    store: HubStore
    tree_page_size: int
    trees: TreeCache = field(init=False)

    def __post_init__(self) -> None:
        self.trees = TreeCache(self.store)


def _check_repo(repo_type: str, org: str, name: str) -> str:
    if not (_NAME_RE.match(org) and _NAME_RE.match(name)) or ".." in org or ".." in name:
        raise HubError("RepoNotFound", "Repository not found")
    return f"{org}/{name}"


def _resolve(hub: HubState, repo_type: str, repo_id: str, revision: str) -> str:
    if not (hub.store.repo_dir(repo_type, repo_id) / "refs.json").exists():
        raise HubError("RepoNotFound", "Repository not found")
    if not revision or ".." in revision or revision.startswith("/") or "\\" in revision or "\0" in revision:
        raise HubError("RevisionNotFound", f"Invalid rev id: {revision}")
    try:
        return hub.store.resolve(repo_type, repo_id, revision)
    except RepoNotFound:
        raise HubError("RepoNotFound", "Repository not found") from None
    except RevisionNotFound:
        raise HubError("RevisionNotFound", f"Invalid rev id: {revision}") from None


def _split_rev(hub: HubState, repo_type: str, repo_id: str, segs: list[str]) -> tuple[str, str, list[str]]:
    """Find the revision at the head of `segs` (decoded segments). A percent-encoded revision is one
    segment; an unencoded one with slashes (`refs/convert/parquet`) spans several: try the shortest first."""
    first_error = None
    for k in range(1, len(segs) + 1):
        try:
            return "/".join(segs[:k]), _resolve(hub, repo_type, repo_id, "/".join(segs[:k])), segs[k:]
        except HubError as e:
            if e.code == "RepoNotFound":
                raise
            first_error = first_error or e
    raise first_error or HubError("RevisionNotFound", "Invalid rev id: ")


def _base_url(request: Request) -> str:
    host = request.headers.get("host")
    if not host:
        server = request.scope.get("server") or ("127.0.0.1", 80)
        host = f"{server[0]}:{server[1]}"
    return f"{request.scope.get('scheme', 'http')}://{host}"


def _truthy(params: dict[str, list[str]], key: str) -> bool:
    return (params.get(key) or ["false"])[-1].lower() in ("1", "true", "yes")


def _repo_info(hub: HubState, repo_type: str, repo_id: str, revision: str, params: dict) -> Response:
    sha = _resolve(hub, repo_type, repo_id, revision)
    tree = hub.trees.get(repo_type, repo_id, sha)
    commit_file = hub.store.repo_dir(repo_type, repo_id) / "commits" / f"{sha}.json"
    modified = _iso(commit_file.stat().st_mtime)
    blobs = _truthy(params, "blobs")
    siblings = []
    for f in tree.files.values():
        sib: dict[str, Any] = {"rfilename": f.path}
        if blobs:
            sib.update(size=f.size, blobId=f.oid)
            if f.lfs:
                sib["lfs"] = {"sha256": f.lfs["sha256"], "size": f.lfs["size"], "pointerSize": f.lfs["pointerSize"]}
        siblings.append(sib)
    info: dict[str, Any] = {
        "_id": hashlib.sha1(f"{repo_type}/{repo_id}".encode()).hexdigest()[:24],
        "id": repo_id,
        "author": repo_id.split("/")[0],
        "sha": sha,
        "lastModified": modified,
        "createdAt": modified,
        "private": False,
        "disabled": False,
        "gated": False,
        "downloads": 0,
        "likes": 0,
        "tags": [],
        "siblings": siblings,
        "usedStorage": sum(f.size for f in tree.files.values()),
    }
    if repo_type == "model":
        info["modelId"] = repo_id
    return Response(json_bytes(info), 200, {"X-Repo-Commit": sha}, "application/json")


def _tree_entry(path: str, f: StoredFile | None, tree: Tree) -> dict[str, Any]:
    if f is None:
        return {"type": "directory", "oid": tree.dir_oids[path], "size": 0, "path": path}
    entry: dict[str, Any] = {"type": "file", "oid": f.oid, "size": f.size, "path": path}
    if f.lfs:
        entry["lfs"] = {"oid": f.lfs["sha256"], "size": f.lfs["size"], "pointerSize": f.lfs["pointerSize"]}
    return entry


def _list_tree(hub: HubState, request: Request, repo_type: str, repo_id: str, segs: list[str]) -> Response:
    if not segs:
        raise HubError("RevisionNotFound", "Invalid rev id: ")
    _, sha, rest = _split_rev(hub, repo_type, repo_id, segs)
    base = "/".join(s for s in rest if s).strip("/")
    tree = hub.trees.get(repo_type, repo_id, sha)
    params = parse_qs(request.scope.get("query_string", b"").decode("latin-1"))
    recursive = _truthy(params, "recursive")
    if base:
        if base in tree.files or base not in tree.dir_oids:
            raise HubError("EntryNotFound", f"Entry not found: {base}", commit=sha)
        prefix = base + "/"
    else:
        prefix = ""
    selected = [
        (p, f)
        for p, f in tree.entries
        if p.startswith(prefix) and (recursive or "/" not in p[len(prefix) :])
    ]
    try:
        offset = int((params.get("cursor") or ["0"])[-1])
        if offset < 0:
            raise ValueError
    except ValueError:
        raise HubError(None, "Invalid cursor", status=400) from None
    page = selected[offset : offset + hub.tree_page_size]
    headers = {"X-Repo-Commit": sha}
    if offset + hub.tree_page_size < len(selected):
        # Next page is pinned to the commit sha, so a branch moving in between cannot mix two commits.
        query = {k: v[-1] for k, v in params.items() if k != "cursor"}
        query["cursor"] = str(offset + hub.tree_page_size)
        path_part = "/" + quote(base, safe="") if base else ""
        url = f"{_base_url(request)}/api/{repo_type}s/{repo_id}/tree/{sha}{path_part}?{urlencode(query)}"
        headers["Link"] = f'<{url}>; rel="next"'
    body = json_bytes([_tree_entry(p, f, tree) for p, f in page])
    return Response(body, 200, headers, "application/json")


def _resolve_file(hub: HubState, request: Request, repo_type: str, repo_id: str, segs: list[str]) -> Response:
    if not segs:
        raise HubError("RevisionNotFound", "Invalid rev id: ")
    _, sha, rest = _split_rev(hub, repo_type, repo_id, segs)
    path = "/".join(rest)
    tree = hub.trees.get(repo_type, repo_id, sha)
    f = tree.files.get(path)
    if f is None:
        raise HubError("EntryNotFound", f"Entry not found: {path}", commit=sha)
    obj = hub.store.object_path(f.object)
    if not obj.exists():
        raise HubError(None, f"Store object missing for {path}", status=500, commit=sha)
    name = path.rsplit("/", 1)[-1]
    headers = {
        "X-Repo-Commit": sha,
        "ETag": f'"{f.etag}"',
        "Accept-Ranges": "bytes",
        "Content-Type": "application/octet-stream",
        "Content-Disposition": f"inline; filename*=UTF-8''{quote(name)}; filename=\"{quote(name)}\"",
    }
    if f.lfs:
        # What the Hub sends beside its redirect for LFS files; huggingface_hub prefers them when present.
        headers["X-Linked-ETag"] = f'"{f.lfs["sha256"]}"'
        headers["X-Linked-Size"] = str(f.size)
    start, length, status = 0, f.size, 200
    range_header = request.headers.get("range")
    if_range = request.headers.get("if-range")
    if range_header and (if_range is None or if_range.strip() in (f'"{f.etag}"', f.etag)):
        try:
            rng = parse_range(range_header, f.size)
        except Unsatisfiable:
            headers["Content-Range"] = f"bytes */{f.size}"
            headers.pop("Content-Type")
            return Response(json_bytes({"error": "Range Not Satisfiable"}), 416, headers, "application/json")
        if rng is not None:
            start, length, status = rng[0], rng[1] - rng[0] + 1, 206
            headers["Content-Range"] = f"bytes {rng[0]}-{rng[1]}/{f.size}"
    headers["Content-Length"] = str(length)
    return FileResponse(obj, start, length, status, headers)


async def _dispatch(request: Request) -> Response:
    hub: HubState = request.app.state.hub
    raw = request.scope.get("raw_path") or request.scope["path"].encode()
    segs = [unquote(s) for s in raw.decode("latin-1").split("/")[1:]]
    params = parse_qs(request.scope.get("query_string", b"").decode("latin-1"))
    try:
        if len(segs) >= 4 and segs[0] == "api" and segs[1] in ("datasets", "models"):
            repo_type = segs[1][:-1]
            repo_id = _check_repo(repo_type, segs[2], segs[3])
            rest = segs[4:]
            if rest in ([], [""]):
                return _repo_info(hub, repo_type, repo_id, "main", params)
            if rest[0] == "revision" and len(rest) >= 2:
                return _repo_info(hub, repo_type, repo_id, "/".join(rest[1:]), params)
            if rest[0] == "tree":
                return _list_tree(hub, request, repo_type, repo_id, rest[1:])
        else:
            repo_type = "model"
            if segs and segs[0] == "datasets":
                repo_type, segs = "dataset", segs[1:]
            if len(segs) >= 4 and segs[2] == "resolve":
                repo_id = _check_repo(repo_type, segs[0], segs[1])
                return _resolve_file(hub, request, repo_type, repo_id, segs[3:])
        raise HubError(None, "Not Found")
    except HubError as e:
        return e.response()


def create_app(store: HubStore, *, tree_page_size: int = 1000) -> FastAPI:
    """The Hub-compatible FastAPI app over `store` (`app.state.hub` holds the store and tree cache)."""
    if tree_page_size < 1:
        raise ValueError("tree_page_size must be >= 1")
    app = FastAPI(title="persian-data local hub", openapi_url=None, docs_url=None, redoc_url=None)
    app.state.hub = HubState(store=store, tree_page_size=tree_page_size)
    app.state.store = store
    app.add_api_route("/{full_path:path}", _dispatch, methods=["GET", "HEAD"], include_in_schema=False)
    return app
