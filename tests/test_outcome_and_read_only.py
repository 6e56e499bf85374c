"""Issue 21 items 3 and 4: every run's outcome, failures included, ends logs/dataset_download.log;
read-only commands never write (a root that does not exist is an error, a read-only root works)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import persian_data

from persian_data.cli import main
from persian_data.errors import RunLockedError
from persian_data.layout import Layout
from persian_data.localhub.server import LocalHub
from persian_data.localhub.store import HubStore
from persian_data.pipeline import Run

from support.replicas import REPLICA_REPOS, TINY, build_replicas

SRC = Path(persian_data.__file__).resolve().parents[1]  # the package under test, for child processes


def last_block(root: Path) -> str:
    """The log's last word: everything after its last summary header."""
    log = Layout(root).download_log.read_text("utf-8")
    return log.rsplit("===== persian-data summary", 1)[1]


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under the root with its type, bytes and mtime: what a write would change."""
    out = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        out[path.relative_to(root).as_posix()] = (st.st_mode, st.st_mtime_ns,
                                                  path.read_bytes() if path.is_file() else None)
    return out


@pytest.fixture(scope="module")
def fetched(tmp_path_factory, hub) -> Path:
    root = tmp_path_factory.mktemp("fetched")
    assert main(["fetch", "--root", str(root), "--endpoint", hub.endpoint, "--only", "text,commonvoice"]) == 0
    assert main(["prepare", "all", "--root", str(root)]) == 0
    assert last_block(root).splitlines()[1] == "status: COMPLETE"
    return root


def copy_of(fetched: Path, tmp_path: Path) -> Path:
    root = tmp_path / "root"
    shutil.copytree(fetched, root)
    return root


def closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


# -- item 3: the outcome of every run ends the log -------------------------------------------------

def test_an_unreachable_endpoint_ends_the_log(fetched, tmp_path, capsys):
    root = copy_of(fetched, tmp_path)
    url = closed_port()
    code = main(["fetch", "--root", str(root), "--endpoint", url, "--only", "text", "--retries", "1"])
    assert code == 1
    block = last_block(root)
    assert "status: NOT COMPLETE (fetch stopped on an error)" in block
    assert "FAIL: fetch stopped: no endpoint could be reached" in block and url in block
    assert "PASS" not in block


def test_an_interrupt_ends_the_log(fetched, tmp_path, monkeypatch):
    root = copy_of(fetched, tmp_path)
    import persian_data.prepare.chat as chat

    def ctrl_c(*args, **kwargs):  # the user presses Ctrl-C while the chat stage runs
        signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(chat, "prepare_chat", ctrl_c)  # (a copied root's outputs have new inodes: no memo hit)
    assert main(["prepare", "text", "--root", str(root)]) == 130
    signal.signal(signal.SIGINT, signal.default_int_handler)
    block = last_block(root)
    assert "FAIL: prepare text stopped: interrupted (Ctrl-C)" in block and "PASS" not in block


def test_a_damaged_lock_ends_the_log(fetched, tmp_path, capsys):
    root = copy_of(fetched, tmp_path)
    lock = Layout(root).lock_file
    lock.write_bytes(lock.read_bytes()[:64])
    assert main(["prepare", "speech", "--root", str(root)]) == 1
    assert capsys.readouterr().err.count("error:") == 1
    assert "FAIL: prepare speech stopped: " in last_block(root) and "not valid JSON" in last_block(root)


def test_an_unreadable_parquet_from_the_hub_ends_the_log(tmp_path, capsys):
    """A shard that is broken on the Hub itself (the lock agrees with it): the reader stops the stage."""
    store = HubStore(tmp_path / "hub")
    build_replicas(store, TINY, only=("commonvoice",))
    repo_type, repo_id = REPLICA_REPOS["commonvoice"]
    files = {f.path: store.object_path(f.object).read_bytes() for f in store.files(repo_type, repo_id, "main")}
    shard = next(p for p in sorted(files) if p.endswith(".parquet") and "/test-" in p)
    files[shard] = files[shard][: len(files[shard]) // 2]
    store.publish(repo_type, repo_id, files)
    root = tmp_path / "root"
    with LocalHub(store) as hub:
        assert main(["fetch", "--root", str(root), "--endpoint", hub.endpoint, "--only", "commonvoice"]) == 0
    capsys.readouterr()
    assert main(["prepare", "speech", "--root", str(root)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and shard.rsplit("/", 1)[1] in err
    block = last_block(root)
    assert "FAIL: prepare speech stopped: " in block and shard.rsplit("/", 1)[1] in block and "PASS" not in block


def test_log_lines_are_for_people(fetched):
    """Item 9: no Python dict reprs, no byte counts without units."""
    import re

    log = Layout(fetched).download_log.read_text("utf-8")
    assert "{'" not in log and "': " not in log
    assert re.search(r"fetch: \d+ file\(s\) downloaded \(\d+(\.\d)? [KMG]?B\)", log)
    assert re.search(r"gender: (female|male|unknown) \d+", log)


def test_progress_lines_give_bytes_in_units(caplog, monkeypatch):
    import logging

    from persian_data import progress

    monkeypatch.setattr(progress, "is_interactive", lambda: False)  # a pipe: plain lines, not a bar
    with caplog.at_level(logging.INFO, logger="persian_data.test"):
        with progress.progress(3_000_000, "download", "B", logger=logging.getLogger("persian_data.test"),
                               log_every=0) as bar:
            bar.update(1_500_000)
    assert caplog.messages == ["download: 1.5 MB of 3.0 MB"]


# -- item 4: read-only commands never write ---------------------------------------------------------

@pytest.mark.parametrize("argv", [["verify"], ["status"], ["prepare", "text"], ["prepare", "all"], ["card"],
                                  ["eval-stt", "--leakage"], ["synth", "--list-voices"], ["tts-export"]])
def test_a_root_that_does_not_exist_is_an_error_and_is_not_made(tmp_path, capsys, argv):
    typo = tmp_path / "typo"
    assert main(argv + ["--root", str(typo)]) == 2
    err = capsys.readouterr().err
    assert f"{typo}: no such folder" in err and err.count("\n") == 1
    assert not typo.exists()


def test_prepare_where_nothing_is_fetched_writes_nothing(tmp_path, capsys):
    assert main(["prepare", "all", "--root", str(tmp_path)]) == 1
    assert "nothing to prepare" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # no empty checksum file, no zero counts, no log


def test_verify_and_status_share_the_root_and_never_meet_a_writer(fetched, tmp_path, capsys):
    root = copy_of(fetched, tmp_path)
    with Run(Layout(root), read_only=True):  # another verify is running
        assert main(["verify", "--root", str(root), "--only", "text,commonvoice", "--quick"]) == 0
        assert main(["status", "--root", str(root), "--only", "text,commonvoice"]) == 0
        assert main(["prepare", "text", "--root", str(root)]) == 1
        assert "in use by another persian-data run" in capsys.readouterr().err
    with Run(Layout(root)):  # a run that writes
        assert main(["verify", "--root", str(root), "--only", "text,commonvoice"]) == 1
        assert "in use by another persian-data run" in capsys.readouterr().err
    with pytest.raises(RunLockedError):
        with Run(Layout(root), read_only=True), Run(Layout(root)):
            pass
    assert not Layout(root).run_lock.exists()  # the last one out removes the lock file


def _as_a_user_who_may_not_write(argv: list[str], root: Path) -> subprocess.CompletedProcess:
    """Run the CLI where the root is not writable. As root, chmod does not stop writes, so the
    command runs as `nobody` (setpriv); as any other user, the root's write bits are taken away."""
    env = {**os.environ, "PYTHONPATH": str(SRC), "PYTHONDONTWRITEBYTECODE": "1", "HOME": "/nonexistent"}
    cmd = [sys.executable, "-m", "persian_data.cli", *argv, "--root", str(root)]
    if os.geteuid() == 0:
        cmd = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *cmd]
    else:
        subprocess.run(["chmod", "-R", "a-w", str(root)], check=True)
    try:
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(root)], check=True)


def test_verify_and_status_work_on_a_read_only_root_and_write_nothing(fetched):
    shared = Path(tempfile.mkdtemp(prefix="persian-data-ro-"))  # outside pytest's private (0700) folders
    try:
        os.chmod(shared, 0o755)
        root = shared / "root"
        shutil.copytree(fetched, root)
        subprocess.run(["chmod", "-R", "go+rX,go-w", str(root)], check=True)
        before = snapshot(root)
        done = _as_a_user_who_may_not_write(["verify", "--only", "text,commonvoice"], root)
        assert done.returncode == 0, done.stderr
        assert "OK: every gate passed" in done.stderr and "writes nothing" in done.stderr
        done = _as_a_user_who_may_not_write(["status", "--only", "text,commonvoice", "--json"], root)
        assert done.returncode == 0, done.stderr
        assert '"state": "present"' in done.stdout and '"state": "current"' in done.stdout
        assert snapshot(root) == before  # not a byte, not a folder, not a lock file, not an mtime
    finally:
        shutil.rmtree(shared, ignore_errors=True)
