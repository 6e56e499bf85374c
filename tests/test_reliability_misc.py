"""Issue 7: two runs on one root, Ctrl-C, hostile remote names, a full disk, secrets."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from persian_data.catalog import select
from persian_data.cli import main
from persian_data.layout import Layout
from persian_data.localhub.store import HubStore
from persian_data.pipeline import Run

from support.replicas import TINY, build_replicas
from support.hub import ScriptedHub

@pytest.fixture(scope="module")
def small_hub(tmp_path_factory):
    store = HubStore(tmp_path_factory.mktemp("hub"))
    build_replicas(store, TINY, only=("text", "commonvoice"))
    with ScriptedHub(store) as hub:
        yield hub


@pytest.fixture(autouse=True)
def clean(small_hub):
    small_hub.faults.clear()
    small_hub.requests.clear()
    yield
    small_hub.faults.clear()


def test_second_run_on_the_same_root_refuses_clearly(small_hub, tmp_path, capsys):
    layout = Layout(tmp_path)
    with Run(layout):
        code = main(["fetch", "--root", str(tmp_path), "--endpoint", small_hub.endpoint, "--only", "text"])
        assert code != 0
        err = capsys.readouterr().err
        assert "in use by another persian-data run" in err and f"pid {os.getpid()}" in err
        assert not (tmp_path / "datasets").exists()
    # released: the next run works, and leaves no lock file behind
    assert main(["fetch", "--root", str(tmp_path), "--endpoint", small_hub.endpoint, "--only", "text"]) == 0
    assert not layout.run_lock.exists()


def test_two_processes_never_interleave(small_hub, tmp_path):
    small_hub.faults.stall("*/resolve/*", seconds=1.5, times=1)
    cmd = [sys.executable, "-m", "persian_data.cli", "fetch", "--root", str(tmp_path), "--endpoint",
           small_hub.endpoint, "--only", "text,commonvoice"]
    first = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    time.sleep(0.8)
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    out_first = first.communicate(timeout=60)[1]
    assert first.returncode == 0, out_first
    assert second.returncode != 0 and "in use by another persian-data run" in second.stderr


def stored(hub, repo_type: str, repo_id: str) -> dict:
    return {f.path: f for f in hub.store.files(repo_type, repo_id, "main")}


def placed_files_are_whole(hub, root) -> set[tuple[str, str]]:
    """Asserts every file placed in the text and commonvoice folders is the Hub's file, byte for
    byte; returns them as (repo, path in the repo)."""
    placed = set()
    for source, repo_id in (("text", "Kamtera/Persian-conversational-dataset"),
                            ("commonvoice", "hezarai/common-voice-13-fa")):
        content = Layout(root).content_dir(select(source)[0])
        want = stored(hub, "dataset", repo_id)
        for path in (p for p in content.rglob("*") if p.is_file()):
            rel = path.relative_to(content).as_posix()
            assert hashlib.sha256(path.read_bytes()).hexdigest() == want[rel].object, rel
            placed.add((repo_id, rel))
    return placed


def downloads(hub) -> set[tuple[str, str]]:
    """(repo, path in the repo) of every file download the hub served since its log was cleared."""
    found = (re.fullmatch(r"/datasets/([^/]+/[^/]+)/resolve/[^/]+/(.+)", e.path) for e in hub.requests.entries("GET"))
    return {m.groups() for m in found if m}


def test_ctrl_c_stops_cleanly_and_a_rerun_resumes(small_hub, tmp_path):
    shard = stored(small_hub, "dataset", "hezarai/common-voice-13-fa")["data/train-00000-of-00002.parquet"]
    part = Layout(tmp_path).staging_dir / f"{shard.etag}.part"  # staging is keyed by the Hub's hash
    small_hub.faults.stall(f"*/resolve/*/{shard.path}", seconds=20, after_bytes=shard.size * 2 // 3)
    cmd = [sys.executable, "-m", "persian_data.cli", "fetch", "--root", str(tmp_path), "--endpoint",
           small_hub.endpoint, "--only", "text,commonvoice", "--timeout", "30"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while not (part.exists() and part.stat().st_size) and time.monotonic() < deadline:
        time.sleep(0.05)  # the first bytes of the stalled file are on disk
    assert small_hub.faults.fired() == 1
    time.sleep(0.3)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=15)[1]
    assert time.monotonic() - started < 10
    assert proc.returncode == 130
    assert "run the same command again to resume" in err
    assert not Layout(tmp_path).run_lock.exists()
    placed = placed_files_are_whole(small_hub, tmp_path)  # nothing partial in the layout
    assert ("hezarai/common-voice-13-fa", shard.path) not in placed
    kept = part.stat().st_size
    assert 0 < kept < shard.size  # what arrived before Ctrl-C stays in staging
    small_hub.faults.clear()
    small_hub.requests.clear()
    assert main(["fetch", "--root", str(tmp_path), "--endpoint", small_hub.endpoint, "--only", "text,commonvoice"]) == 0
    # the rerun asked only for the rest of the stalled file, and not again for the files in place
    [again] = [e for e in small_hub.requests.entries("GET", prefix="/datasets/") if e.path.endswith(shard.path)]
    assert (again.range, again.status, again.bytes_sent) == (f"bytes={kept}-", 206, shard.size - kept)
    assert ("hezarai/common-voice-13-fa", shard.path) in downloads(small_hub)
    assert placed and not placed & downloads(small_hub)
    placed = Layout(tmp_path).content_dir(select("commonvoice")[0]) / shard.path
    assert hashlib.sha256(placed.read_bytes()).hexdigest() == shard.object


@pytest.mark.parametrize("name", ["../evil.txt", "/abs/evil.txt", "sub\\evil.txt", "a/../../evil.txt"])
def test_hostile_remote_names_are_refused_and_nothing_escapes(tmp_path, name, capsys):
    store = HubStore(tmp_path / "hub")
    store.publish("dataset", "Kamtera/Persian-conversational-dataset",
                  {"README.md": b"fine readme", name: b"payload that must not land anywhere"})
    build_replicas(store, TINY, only=("commonvoice",))
    root = tmp_path / "root"
    with ScriptedHub(store) as hub:
        code = main(["fetch", "--root", str(root), "--endpoint", hub.endpoint, "--only", "text,commonvoice"])
    err = capsys.readouterr().err
    assert code != 0
    assert "refusing remote file" in err and "text" in err
    for path in tmp_path.rglob("*"):
        if path.is_file() and not str(path).startswith(str(tmp_path / "hub")):
            assert b"payload that must not land anywhere" not in path.read_bytes(), path
    # the other source still completed
    assert (Layout(root).content_dir(select("commonvoice")[0]) / "README.md").exists()


@pytest.fixture
def tiny_fs(tmp_path):
    mount = tmp_path / "fs"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=72m", "tmpfs", str(mount)], capture_output=True)
    if result.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs (CI runs as root): {result.stderr.decode()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_disk_full_fails_clearly_leaves_nothing_partial_and_resumes(small_hub, tiny_fs, capsys):
    root = tiny_fs / "root"
    filler = tiny_fs / "filler"
    # Pass the plan's space check, then fill the disk while the first download is held up.
    small_hub.faults.stall("*/resolve/*/data/test-00000-of-00001.parquet", seconds=1.0, times=1)

    import threading

    def fill():
        time.sleep(0.4)
        try:
            with open(filler, "wb") as handle:
                while True:
                    handle.write(b"\0" * 65536)
                    handle.flush()
        except OSError:
            pass  # the disk is full: that is the point

    filling = threading.Thread(target=fill)
    filling.start()
    args = ["fetch", "--root", str(root), "--endpoint", small_hub.endpoint, "--only", "text,commonvoice"]
    assert main(args) != 0
    filling.join()
    assert "No space left on device" in capsys.readouterr().err
    layout = Layout(root)
    placed = placed_files_are_whole(small_hub, root)
    temporary = [p for p in root.rglob("*") if p.is_file() and (
        layout.tmp_dir in p.parents or p.suffix in (".tmp", ".copy")
        or (p.suffix == ".part" and p.parent != layout.staging_dir))]  # only staging keeps parts, to resume
    assert temporary == []
    filler.unlink()
    small_hub.requests.clear()
    assert main(args) == 0
    assert downloads(small_hub) and not placed & downloads(small_hub)  # what was in place is not fetched again


def test_early_writeback_flushes_as_the_file_grows_and_keeps_the_bytes(tmp_path):
    from persian_data import atomic

    data = os.urandom(3 * 4096 + 100)
    path = tmp_path / "part"
    calls = []
    real = atomic._SYNC_FILE_RANGE
    if real is not None:
        def spy(fd, offset, length, flags):
            calls.append((offset, length, flags))
            return real(fd, offset, length, flags)
        atomic._SYNC_FILE_RANGE, saved = spy, real
    try:
        with open(path, "wb") as out:
            writeback = atomic.EarlyWriteback(out.fileno(), step=4096)
            for i in range(0, len(data), 1000):
                out.write(data[i:i + 1000])
                writeback.wrote(len(data[i:i + 1000]), out.flush)
    finally:
        if real is not None:
            atomic._SYNC_FILE_RANGE = saved
    assert path.read_bytes() == data
    if sys.platform.startswith("linux"):
        assert real is not None and writeback.enabled
        # contiguous ranges from 0, each at least one step (the writes are 1000 bytes), WRITE only
        assert calls == [(0, 5000, 2), (5000, 5000, 2)]
        assert writeback.flushed == 10000 and writeback.written == len(data)


def test_early_writeback_that_fails_falls_back_quietly():
    from persian_data import atomic

    if atomic._SYNC_FILE_RANGE is None:
        pytest.skip("sync_file_range is Linux-only")
    read_end, write_end = os.pipe()
    try:
        writeback = atomic.EarlyWriteback(write_end, step=1)
        writeback.wrote(10, lambda: None)  # ESPIPE on a pipe: disabled, no exception
        assert not writeback.enabled
        writeback.wrote(10, lambda: None)
    finally:
        os.close(read_end)
        os.close(write_end)


def test_second_ctrl_c_exits_at_once_even_while_cleanup_hangs(tmp_path):
    """The first Ctrl-C starts a clean stop; if that stop hangs (a read stuck on a dead mirror),
    a second Ctrl-C must end the process at once with 130."""
    script = tmp_path / "hang.py"
    script.write_text(
        "import sys, time\n"
        "from persian_data.cli import _install_sigint\n"
        "_install_sigint()\n"
        "try:\n"
        "    print('ready', flush=True)\n"
        "    time.sleep(60)\n"
        "except KeyboardInterrupt:\n"
        "    print('cleaning up', flush=True)\n"
        "    time.sleep(60)  # a cleanup that hangs\n"
        "    print('cleanup finished', flush=True)\n",
        encoding="utf-8")
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGINT)
    assert proc.stdout.readline().strip() == "cleaning up"
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=10) == 130
    assert time.monotonic() - started < 5
    assert "cleanup finished" not in proc.stdout.read()
