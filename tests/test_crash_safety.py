"""Issue 7, crash safety: `run` (fetch + prepare + records) killed with SIGKILL at 20+ points, in
every phase; each time a rerun must reach exactly the state of a clean run, with no temp file,
staging folder or lock file left behind."""

from __future__ import annotations

import gzip
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from persian_data.layout import Layout
from persian_data.localhub.store import HubStore

from support.replicas import TINY, build_replicas
from support.hub import ScriptedHub

SOURCES = "text,commonvoice,fleurs"
# Log lines that mark each phase; a kill is aimed just after one of them.
PHASES = {
    "download": "persian_data.fetch: plan (",
    "hashing": "records: hashing data files",
    "chat": "persian_data.prepare.chat",
    "speech": "persian_data.prepare.speech",
    "records": "records: ",
    "start": "",
}
KILL_POINTS = 30


def run_cmd(root: Path, endpoint: str) -> list[str]:
    return [sys.executable, "-m", "persian_data.cli", "run", "--root", str(root), "--endpoint", endpoint,
            "--only", SOURCES, "--workers", "2"]


def state(root: Path) -> dict[str, bytes]:
    """Everything that must equal a clean run: records, chat and speech outputs."""
    out = {}
    for rel in ("checksums/datasets.sha256.txt", "logs/dataset_sources.json"):
        out[rel] = (root / rel).read_bytes()
    # lhotse manifests carry absolute audio paths, so their hashes differ between two roots;
    # their content is compared root-relative below.
    out["checksums/datasets.sha256.txt"] = b"".join(
        line for line in out["checksums/datasets.sha256.txt"].splitlines(keepends=True) if b"/exports/lhotse/" not in line)
    for path in sorted((root / "datasets").rglob("*")):
        if path.is_file() and (path.suffix in (".jsonl", ".json", ".gz") and "data" not in path.relative_to(root).parts[3:4]):
            data = path.read_bytes()
            if path.suffix == ".gz":  # lhotse manifests hold absolute paths: compare them root-relative
                data = gzip.decompress(data).replace(str(root).encode(), b"<ROOT>")
            out[path.relative_to(root).as_posix()] = data
    return out


def leftovers(root: Path) -> list[str]:
    layout = Layout(root)
    found = [p for p in (root / "datasets").rglob("*") if p.name.endswith((".tmp", ".part", ".partial", ".copy"))]
    for folder in (layout.tmp_dir, layout.staging_dir):
        if folder.exists() and any(folder.iterdir()):
            found.append(folder)
    if layout.run_lock.exists():
        found.append(layout.run_lock)
    return [str(p) for p in found]


@pytest.fixture(scope="module")
def slow_hub(tmp_path_factory):
    store = HubStore(tmp_path_factory.mktemp("hub"))
    build_replicas(store, TINY, only=("text", "commonvoice", "fleurs"))
    with ScriptedHub(store) as hub:
        yield hub


@pytest.fixture(scope="module")
def clean_state(slow_hub, tmp_path_factory):
    root = tmp_path_factory.mktemp("clean")
    done = subprocess.run(run_cmd(root, slow_hub.endpoint), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert leftovers(root) == []
    return state(root)


def _identity(pid: int) -> tuple[int, bytes] | None:
    """(pid, start time): names one process even if its pid is reused later."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return pid, handle.read().rsplit(b")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def descendants(pid: int) -> set[tuple[int, bytes]]:
    """Every process below `pid` (workers, a forkserver and its workers), by identity."""
    found: set[tuple[int, bytes]] = set()
    todo = [pid]
    while todo:
        current = todo.pop()
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            for child in children:
                ident = _identity(child)
                if ident and ident not in found:
                    found.add(ident)
                    todo.append(child)
    return found


def _state(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return b"X"


def still_alive(processes: set[tuple[int, bytes]]) -> list[str]:
    """Those still running. A zombie has exited: reaping it is its new parent's job (pid 1 here)."""
    alive = []
    for pid, start in sorted(processes):
        if _identity(pid) == (pid, start) and _state(pid) not in (b"Z", b"X"):
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:150]
            except OSError:
                continue
            alive.append(f"{pid}: {command}")
    return alive


def wait_for(log: Path, marker: str, proc: subprocess.Popen, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if not marker or (log.exists() and marker in log.read_text("utf-8", "replace")):
            return True
        time.sleep(0.01)
    return False


def test_sigkill_anywhere_then_rerun_equals_a_clean_run(slow_hub, clean_state, tmp_path):
    rng = random.Random(7)
    phases = list(PHASES)
    killed_in: dict[str, int] = {}
    worker_kills = 0  # kills that landed while the run had worker processes
    for point in range(KILL_POINTS):
        root = tmp_path / f"k{point}"
        phase = phases[point % len(phases)]
        # Slow downloads a little so the download phase has a window to be killed in.
        slow_hub.faults.clear()
        slow_hub.faults.stall("*/resolve/*", seconds=0.05 if phase == "download" else 0.0, after_bytes=0)
        proc = subprocess.Popen(run_cmd(root, slow_hub.endpoint), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        reached = wait_for(root / "logs/dataset_download.log", PHASES[phase], proc)
        time.sleep(rng.uniform(0.0, 0.25))
        orphans: set[tuple[int, bytes]] = set()
        if proc.poll() is None:
            orphans = descendants(proc.pid)
            os.kill(proc.pid, signal.SIGKILL)
            killed_in[phase] = killed_in.get(phase, 0) + 1 if reached else killed_in.get(phase, 0)
            worker_kills += bool(orphans)
        proc.wait(timeout=60)
        slow_hub.faults.clear()
        rerun = subprocess.run(run_cmd(root, slow_hub.endpoint), capture_output=True, text=True, timeout=300)
        assert rerun.returncode == 0, f"kill point {point} ({phase}): {rerun.stderr[-3000:]}"
        assert leftovers(root) == [], f"kill point {point} ({phase})"
        assert state(root) == clean_state, f"kill point {point} ({phase}) differs from a clean run"
        # the killed run's worker processes (chat pool, speech forkserver + pool) did not outlive it
        assert still_alive(orphans) == [], f"kill point {point} ({phase}): workers left running"
    # the kills really landed in every phase (a kill after the run ended would prove nothing)
    assert sum(killed_in.values()) >= 20, killed_in
    assert worker_kills >= 3, worker_kills
    assert all(killed_in.get(p, 0) >= 1 for p in ("download", "chat", "speech", "records")), killed_in
