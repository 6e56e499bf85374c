"""The full fetch against olah, a Hub mirror we did not write (issue 7, item 10).

olah (PyPI `olah`, tested with 0.5.4, see `tests/hub/olah.py`) serves the five TINY replicas,
exported as committed git repos with LFS content in `.git/lfs/objects`, in offline mode. The
fetch must place every file byte-exact, write checksums that `sha256sum -c` accepts, and a second
fetch must download nothing. olah differs from the Hub in ways the fetch must absorb: Range
requests are answered 200 with the whole body, the tree root URL answers 307 (to a trailing
slash), ETags are unquoted, and errors are 401 RepoNotFound / 500 where the Hub says 404.

olah lives in its own venv (`$OLAH_VENV`, else `<repo>/.venv-olah`, created with pip on first use;
its pins may clash with ours). When it can't be created the test fails; it is never skipped.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from persian_data.catalog import BY_KEY, CATALOG
from persian_data.cli import main
from persian_data.integrity import read_lock, write_lock
from persian_data.layout import Layout
from persian_data.localhub.store import HubStore

from support.replicas import REPLICA_REPOS, TINY, build_replicas

from hub.olah import OlahUnavailable, ensure_olah_venv, export_git_repo, mirror_dir, olah_server

SOURCES = [s.key for s in CATALOG]  # all five: text, commonvoice, fleurs, tts-female, tts-male


@pytest.fixture(scope="session")
def olah_install():
    try:
        return ensure_olah_venv()
    except OlahUnavailable as exc:
        problem = str(exc)
    pytest.fail(f"olah is needed for this test and could not be installed: {problem}", pytrace=False)


@pytest.fixture(scope="module")
def olah_store(tmp_path_factory, voice_assets) -> HubStore:
    # Real tiny VITS checkpoints, so the model-check gate passes as it would on the real repos.
    store = HubStore(tmp_path_factory.mktemp("olah-hub"))
    build_replicas(store, TINY, only=tuple(SOURCES), voice_assets=voice_assets)
    return store


@pytest.fixture(scope="module")
def olah(olah_install, olah_store, tmp_path_factory):
    mirrors = tmp_path_factory.mktemp("olah-mirrors")
    for key in SOURCES:
        repo_type, repo_id = REPLICA_REPOS[key]
        export_git_repo(olah_store, repo_type, repo_id, mirror_dir(mirrors, repo_type, repo_id))
    with olah_server(olah_install, mirrors, tmp_path_factory.mktemp("olah-run")) as server:
        yield server


def fetch(root: Path, server) -> int:
    return main(["fetch", "--root", str(root), "--endpoint", server.endpoint, "--only", ",".join(SOURCES)])


def resolve_gets(server) -> list[str]:
    return [line for line in server.access_lines("/resolve/") if '"GET ' in line]


def expected_files(store: HubStore, root: Path) -> dict[Path, str]:
    """Absolute path -> sha256 of every file the default (non --full) fetch must place."""
    layout = Layout(root)
    out = {}
    for source in CATALOG:
        repo_type, repo_id = REPLICA_REPOS[source.key]
        patterns = source.patterns(False)
        for stored in store.files(repo_type, repo_id, "main"):
            if patterns is None or any(fnmatch.fnmatch(stored.path, p) for p in patterns):
                out[layout.content_dir(source) / stored.path] = stored.object
    return out


def tree_stats(folder: Path) -> dict[str, tuple[int, int, int]]:
    """(inode, mtime, size) of every file below `folder`: a replaced file changes inode (atomic
    rename) and a rewritten one changes mtime."""
    return {p.relative_to(folder).as_posix(): (p.stat().st_ino, p.stat().st_mtime_ns, p.stat().st_size)
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def fetched(olah, tmp_path_factory):
    root = tmp_path_factory.mktemp("olah-root")
    before = len(resolve_gets(olah))
    code = fetch(root, olah)
    if code != 0:
        ours = Layout(root).download_log
        problems = [line for line in (ours.read_text("utf-8", errors="replace") if ours.exists() else "").splitlines()
                    if "FAIL" in line or "ERROR" in line or "error" in line]
        theirs = [line for line in olah.log_text().splitlines() if '" 200 OK' not in line]
        pytest.fail(f"fetch against olah exited {code}.\nOur log's failures:\n" + "\n".join(problems[-40:])
                    + "\nolah's log (200 OK lines left out):\n" + "\n".join(theirs[-40:]), pytrace=False)
    return root, resolve_gets(olah)[before:]


def test_full_fetch_places_every_file_byte_exact(fetched, olah_store, olah_install, record_property):
    record_property("olah_version", olah_install.version)
    root, gets = fetched
    layout = Layout(root)
    want = expected_files(olah_store, root)
    on_disk = {p for source in CATALOG for p in layout.content_dir(source).rglob("*") if p.is_file()}
    assert on_disk == set(want), (sorted(map(str, set(want) - on_disk)), sorted(map(str, on_disk - set(want))))
    for path, sha256 in want.items():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == sha256, path
    # What makes this interesting: text has a non-LFS json beside LFS ones, FLEURS nests paths.
    text = layout.content_dir(BY_KEY["text"])
    assert (text / "dadrah_dataset.json") in want and (text / "dadrah_dataset1-1000_10000.json") in want
    assert layout.content_dir(BY_KEY["fleurs"]) / "data/fa_ir/audio/train.tar.gz" in want
    # olah's tree told LFS from non-LFS files exactly as the Hub does (the lock records what the
    # fetch planned and verified with): LFS by sha256, the others by git blob sha1.
    lock = read_lock(layout.lock_file)
    for source in CATALOG:
        repo_type, repo_id = REPLICA_REPOS[source.key]
        stored = {f.path: f for f in olah_store.files(repo_type, repo_id, "main")}
        assert lock[source.key].files, source.key
        for path, locked in lock[source.key].files.items():
            assert (locked.lfs, locked.hub_hash) == (bool(stored[path].lfs), stored[path].etag), (source.key, path)
    assert lock["text"].files["dadrah_dataset.json"].lfs is False
    assert lock["text"].files["dadrah_dataset1-1000_10000.json"].lfs is True
    # One GET per distinct content (files with identical bytes are copied locally, not refetched).
    assert len(gets) == len(set(want.values())), gets
    print(f"olah {olah_install.version}: {len(want)} files placed with {len(gets)} GETs")


def test_checksums_pass_sha256sum(fetched):
    root, _ = fetched
    listed = (root / "checksums/datasets.sha256.txt").read_text("utf-8").splitlines()
    assert listed
    done = subprocess.run(["sha256sum", "--strict", "-c", "checksums/datasets.sha256.txt"], cwd=root,
                          capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert done.stdout.count(": OK\n") == len(listed)
    data = {p.relative_to(root).as_posix() for p in (root / "datasets").rglob("*")
            if p.is_file() and not p.is_symlink() and p.stat().st_size > 1}
    assert {line.split("  ", 1)[1] for line in listed} == data


def test_second_fetch_is_a_no_op(fetched, olah):
    root, _ = fetched
    before_stats, before_gets = tree_stats(root / "datasets"), len(resolve_gets(olah))
    assert fetch(root, olah) == 0
    assert tree_stats(root / "datasets") == before_stats
    assert resolve_gets(olah)[before_gets:] == []


def test_resume_against_a_server_that_ignores_range(olah, olah_store, tmp_path):
    """olah answers a Range request with 200 and the whole body: a resumed download must start
    over instead of appending the body to the partial file."""
    root = tmp_path / "root"
    layout = Layout(root)
    repo_type, repo_id = REPLICA_REPOS["text"]
    target = next(f for f in olah_store.files(repo_type, repo_id, "main")
                  if f.lfs and f.path == "dadrah_dataset1-1000_10000.json")
    part = layout.staging_dir / f"{target.lfs['sha256']}.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"\0" * (target.size // 2))  # a partial download that is not even a prefix
    before = len(olah.access_lines())
    assert main(["fetch", "--root", str(root), "--endpoint", olah.endpoint, "--only", "text"]) == 0
    final = layout.content_dir(BY_KEY["text"]) / target.path
    assert hashlib.sha256(final.read_bytes()).hexdigest() == target.object
    assert not part.exists()
    gets = [line for line in olah.access_lines()[before:] if "/resolve/" in line and target.path in line]
    assert len(gets) == 1 and '" 200' in gets[0], gets  # one GET, answered 200 (not 206), no retry


def test_locked_commit_missing_on_the_mirror_fails_cleanly(olah, tmp_path, capfd):
    """A commit the mirror lacks: olah answers 500 to `/revision/<full sha>` (the Hub: 404
    RevisionNotFound); `fetch --locked` must stop with a plan error naming the commit, quickly,
    and touch nothing."""
    root = tmp_path / "root"
    layout = Layout(root)
    assert main(["fetch", "--root", str(root), "--endpoint", olah.endpoint, "--only", "text"]) == 0
    lock = read_lock(layout.lock_file)
    gone = "f" * 40
    lock["text"] = dataclasses.replace(lock["text"], revision=gone)
    write_lock(layout.lock_file, lock, layout.tmp_dir)
    content = layout.content_dir(BY_KEY["text"])
    before = tree_stats(content)
    code = main(["fetch", "--root", str(root), "--endpoint", olah.endpoint, "--only", "text", "--locked"])
    out, err = capfd.readouterr()
    assert code != 0
    assert f"cannot reproduce text at commit {gone}" in out + err, out + err
    assert tree_stats(content) == before  # the data is untouched (records may be rewritten)
