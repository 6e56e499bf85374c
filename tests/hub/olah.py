"""olah, a self-hosted Hub mirror we did not write, serving our replicas (issue 7, item 10).

olah (PyPI `olah`, MIT) in offline mode serves `<mirrors-path>/{datasets,models}/<org>/<name>`
folders that are committed git repos, with LFS content read from `.git/lfs/objects`. This module:

* `export_git_repo` turns the head of a `HubStore` repo into such a git repo;
* `ensure_olah_venv` finds or creates a virtualenv holding olah (never the project's own venv:
  olah's pins may clash with ours);
* `olah_server` runs olah offline on 127.0.0.1 and a free port and yields its endpoint URL.

Only the `git` CLI and the standard library are used here, so this works without git-lfs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from persian_data.localhub.store import REPO_TYPE_DIRS, HubStore, lfs_pointer

OLAH_VERSION = "0.5.4"  # the version this test was written against; OLAH_VERSION env overrides
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_VENV = REPO_ROOT / ".venv-olah"

# A fixed identity and date so that exports are reproducible and no user config leaks in.
_GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_AUTHOR_NAME": "persian-data tests",
    "GIT_AUTHOR_EMAIL": "tests@persian-data.invalid",
    "GIT_COMMITTER_NAME": "persian-data tests",
    "GIT_COMMITTER_EMAIL": "tests@persian-data.invalid",
    "GIT_AUTHOR_DATE": "2024-01-01T00:00:00+0000",
    "GIT_COMMITTER_DATE": "2024-01-01T00:00:00+0000",
    "GIT_TERMINAL_PROMPT": "0",
}


class OlahUnavailable(RuntimeError):
    """olah could not be installed or started; the message says why and what to do."""


# -- export ------------------------------------------------------------------------------------

def _git(repo: Path, *args: str, input: bytes | None = None) -> str:
    env = {**os.environ, **_GIT_ENV}
    env.pop("GIT_DIR", None)
    env.pop("GIT_WORK_TREE", None)
    env.pop("GIT_INDEX_FILE", None)
    done = subprocess.run(["git", "-C", str(repo), *args], input=input, capture_output=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args[:3])} failed in {repo}: {done.stderr.decode(errors='replace')}")
    return done.stdout.decode()


def mirror_dir(mirrors: Path, repo_type: str, repo_id: str) -> Path:
    """Where olah looks for a repo: `<mirrors-path>/{datasets,models}/<org>/<name>`."""
    return Path(mirrors) / REPO_TYPE_DIRS[repo_type] / repo_id


def export_git_repo(store: HubStore, repo_type: str, repo_id: str, dest: Path,
                    revision: str = "main") -> str:
    """Write `revision` of a store repo as a one-commit git repo at `dest` (branch main); return
    the git commit sha (not the store's commit sha, which is computed differently).

    LFS files are committed as LFS pointer files, their content stored under
    `.git/lfs/objects/<aa>/<bb>/<sha256>` as git-lfs keeps it; other files are committed as they
    are, `.gitattributes` included. Blobs are written with `git hash-object --no-filters` and the
    tree is built from the index directly, so neither a git-lfs installation nor any user or
    `.gitattributes` filter (eol, lfs) can change a byte; every blob id is checked against the
    store's `oid` (the Hub's blob id).
    """
    dest = Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    _git(dest, "init", "-q", "-b", "main")
    files = store.files(repo_type, repo_id, revision)
    lfs_root = dest / ".git" / "lfs" / "objects"
    for stored in files:
        content = store.object_path(stored.object).read_bytes()
        target = dest / stored.path
        target.parent.mkdir(parents=True, exist_ok=True)
        if stored.lfs:
            sha = stored.lfs["sha256"]
            obj = lfs_root / sha[:2] / sha[2:4] / sha
            obj.parent.mkdir(parents=True, exist_ok=True)
            obj.write_bytes(content)
            target.write_bytes(lfs_pointer(sha, len(content)))
        else:
            target.write_bytes(content)
    paths = [f.path for f in files]
    blob_ids = _git(dest, "hash-object", "-w", "--no-filters", "--", *paths).split()
    if len(blob_ids) != len(paths):
        raise RuntimeError(f"git hash-object returned {len(blob_ids)} ids for {len(paths)} files")
    for stored, blob in zip(files, blob_ids):
        if blob != stored.oid:
            raise RuntimeError(f"{repo_id}:{stored.path}: git blob {blob} != store oid {stored.oid}")
    index_info = b"".join(f"100644 {blob}\t{path}".encode() + b"\0" for path, blob in zip(paths, blob_ids))
    _git(dest, "update-index", "-z", "--add", "--index-info", input=index_info)
    tree = _git(dest, "write-tree").strip()
    commit = _git(dest, "commit-tree", tree, "-m", f"export of {repo_id}@{revision} from the test HubStore",
                  ).strip()
    _git(dest, "update-ref", "refs/heads/main", commit)
    _git(dest, "update-index", "-q", "--refresh")  # worktree and index agree: `git status` is clean
    return commit


# -- the olah virtualenv -----------------------------------------------------------------------

@dataclass(frozen=True)
class OlahInstall:
    venv: Path
    version: str

    @property
    def cli(self) -> Path:
        return self.venv / "bin" / "olah-cli"


def _installed_version(venv: Path) -> str | None:
    python = venv / "bin" / "python"
    if not (venv / "bin" / "olah-cli").exists() or not python.exists():
        return None
    done = subprocess.run([str(python), "-c", "import importlib.metadata as m; print(m.version('olah'))"],
                          capture_output=True, text=True)
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


def ensure_olah_venv(timeout: float = 900.0) -> OlahInstall:
    """The venv holding olah: `$OLAH_VENV` if set, else `<repo>/.venv-olah`.

    When it lacks `bin/olah-cli` (or holds another olah version than `$OLAH_VERSION`, default
    `OLAH_VERSION`), it is created with `<this python> -m venv` and `pip install olah==<version>`; that
    needs PyPI and takes a while, once. Raises `OlahUnavailable` with the pip output on failure.
    """
    venv = Path(os.environ.get("OLAH_VENV") or DEFAULT_VENV)
    wanted = os.environ.get("OLAH_VERSION") or OLAH_VERSION
    have = _installed_version(venv)
    if have == wanted:
        return OlahInstall(venv, have)
    python = sys.executable  # the interpreter running the tests: a Python the project supports
    steps = []
    if not (venv / "bin" / "python").exists():
        steps.append([python, "-m", "venv", str(venv)])
    steps.append([str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check",
                  "--no-input", f"olah=={wanted}"])
    for step in steps:
        try:
            done = subprocess.run(step, capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise OlahUnavailable(f"could not create the olah venv at {venv} ({' '.join(step)}): {exc}") from exc
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-25:])
            raise OlahUnavailable(
                f"could not create the olah venv at {venv}: `{' '.join(step)}` exited {done.returncode}.\n"
                f"This test installs olah=={wanted} from PyPI into its own venv once (network needed), or "
                f"uses an existing one named by $OLAH_VENV.\n{tail}")
    have = _installed_version(venv)
    if have != wanted:
        raise OlahUnavailable(f"{venv}: after pip install, olah is {have!r}, not {wanted!r}")
    return OlahInstall(venv, have)


# -- the server --------------------------------------------------------------------------------

@dataclass
class OlahServer:
    endpoint: str
    process: subprocess.Popen
    log_path: Path  # olah's stdout and stderr (uvicorn's access log included)
    workdir: Path

    def log_text(self) -> str:
        return self.log_path.read_text("utf-8", errors="replace") if self.log_path.exists() else ""

    def settle(self, quiet: float = 0.1, limit: float = 5.0) -> None:
        """Wait until the log has stopped growing for `quiet` seconds (lines of requests that just
        finished are written by another process)."""
        deadline, size = time.monotonic() + limit, -1
        while time.monotonic() < deadline:
            now = self.log_path.stat().st_size if self.log_path.exists() else 0
            if now == size:
                return
            size = now
            time.sleep(quiet)

    def access_lines(self, needle: str = "") -> list[str]:
        """uvicorn access-log lines (`"GET /path HTTP/1.1" 200 OK`) containing `needle`."""
        self.settle()
        return [line for line in self.log_text().splitlines() if '"' in line and "HTTP/1." in line and needle in line]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _write_config(path: Path, port: int, mirrors: list[Path], repos: Path) -> None:
    def q(value: str) -> str:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

    path.write_text(
        "[basic]\n"
        f'host = "127.0.0.1"\n'
        f"port = {port}\n"
        f"repos-path = {q(str(repos))}\n"
        f"mirrors-path = [{', '.join(q(str(m)) for m in mirrors)}]\n"
        "\n[accessibility]\n"
        "offline = true\n",
        "utf-8",
    )


def _wait_ready(url: str, process: subprocess.Popen, deadline: float) -> bool:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                resp.read()
            return True
        except urllib.error.HTTPError:
            return True  # it answered
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    return False


def _stop(process: subprocess.Popen, grace: float = 10.0) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(grace)


@contextlib.contextmanager
def olah_server(install: OlahInstall, mirrors: Path | list[Path], workdir: Path,
                start_timeout: float = 60.0, attempts: int = 3) -> Iterator[OlahServer]:
    """Run olah offline on 127.0.0.1 (it listens on IPv4 only) with `mirrors` as its mirrors path;
    yield an `OlahServer` whose `endpoint` is the base URL; stop it (TERM, then KILL) on exit."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    mirror_list = [Path(m) for m in ([mirrors] if isinstance(mirrors, (str, Path)) else mirrors)]
    last = ""
    for attempt in range(1, attempts + 1):
        port = _free_port()
        config = workdir / "olah.toml"
        _write_config(config, port, mirror_list, workdir / "repos")
        log_path = workdir / f"olah-{attempt}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
        env["PYTHONUNBUFFERED"] = "1"
        with open(log_path, "wb") as log:
            process = subprocess.Popen([str(install.cli), "--config", str(config), "--log-path",
                                        str(workdir / "logs")], cwd=workdir, env=env, stdout=log,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        endpoint = f"http://127.0.0.1:{port}"
        try:
            if _wait_ready(endpoint + "/api/whoami-v2", process, time.monotonic() + start_timeout):
                yield OlahServer(endpoint, process, log_path, workdir)
                return
            last = log_path.read_text("utf-8", errors="replace")[-3000:]
        finally:
            _stop(process)
        # Lost the race for the port, or failed to start: try another port.
    raise OlahUnavailable(f"olah {install.version} did not start after {attempts} attempts; last log:\n{last}")
