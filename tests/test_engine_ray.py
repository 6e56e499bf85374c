"""`prepare --engine ray` on a real Ray cluster started here: a head and a second node on this
machine, one CPU each (tests/ray_cluster.py). The outputs must be the local engine's, byte for byte;
a node that dies mid-run must not change them; a node that cannot see the root is refused.

One cluster for the module (starting nodes is the slow part); the test that kills the second
node runs last.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from persian_data.cli import main
from persian_data.localhub.replica_kit import TINY
from persian_data.localhub.server import LocalHub
from persian_data.localhub.store import HubStore

from support.replicas import build_replicas

from conftest import copy_tree
from ray_cluster import LocalCluster, node_env

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    cluster = LocalCluster(tmp_path_factory.mktemp("rc"))  # Ray's own sockets: a short folder under /tmp
    try:
        cluster.start_head()
        cluster.add_node("127.0.0.3")
        cluster.wait_nodes(2)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def fetched(tmp_path_factory, hub) -> Path:
    root = tmp_path_factory.mktemp("fetched") / "root"
    assert main(["fetch", "--root", str(root), "--endpoint", hub.endpoint, "--only", "text,speech"]) == 0
    return root


def prepare(root: Path, what: str, *extra: str, **popen) -> subprocess.Popen:
    """The whole command, in its own process (the driver): Ray keeps state per process."""
    argv = [sys.executable, "-m", "persian_data.cli", "prepare", what, "--root", str(root), *extra]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=node_env(), **popen)


def finished(process: subprocess.Popen, timeout: float = 600) -> tuple[int, str]:
    _, err = process.communicate(timeout=timeout)
    return process.returncode, err


def digests(root: Path) -> dict[str, str]:
    """sha256 of every file a prepare run places or records (the sources' too)."""
    out = {}
    for top in ("datasets", "checksums"):
        for path in sorted((root / top).rglob("*")):
            if path.is_file():
                out[path.relative_to(root).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def log_of(root: Path) -> str:
    return (root / "logs" / "dataset_download.log").read_text(encoding="utf-8")


def test_prepare_all_on_ray_is_the_local_engines_bytes(cluster, fetched, tmp_path):
    # one path for both runs: lhotse's recordings name the audio by absolute path
    root = tmp_path / "root"
    copy_tree(fetched, root)
    code, err = finished(prepare(root, "all", "--valid-fraction", "0.2"))
    assert code == 0, err
    local_files = digests(root)
    shutil.rmtree(root)
    copy_tree(fetched, root)
    code, err = finished(prepare(root, "all", "--engine", "ray", "--ray-address", cluster.address,
                                 "--valid-fraction", "0.2"))
    assert code == 0, err
    ray_files = digests(root)
    prepared = [name for name in local_files if name.endswith(("combined.jsonl", "train.jsonl", "valid.jsonl",
                                                               "combined.stats.json", "/manifests/train.jsonl",
                                                               "/manifests/stats.json", ".json.gz", ".jsonl.gz"))]
    assert len(prepared) >= 8, prepared  # chat outputs, both speech corpora's manifests, stats and exports
    assert ray_files == local_files
    log = log_of(root)
    assert "ray: connected to 127.0.0.2" in log and "2 node(s), 2 CPU(s)" in log
    assert not list((root / ".persian-data" / "engine").glob("*.marker"))  # the run took its marker away
    # Again, nothing to do: the connection begun in the background at the start is closed cleanly.
    code, err = finished(prepare(root, "all", "--engine", "ray", "--ray-address", cluster.address,
                                 "--valid-fraction", "0.2"))
    assert code == 0, err
    assert digests(root) == local_files
    assert "already prepared (source unchanged); kept" in log_of(root)
    assert not list((root / ".persian-data" / "engine").glob("*.marker"))


def test_a_node_that_cannot_see_the_root_is_refused_in_one_line(cluster, fetched, tmp_path):
    # The driver works on a root inside a tmpfs only its own mount namespace has: no node sees it.
    hidden = tmp_path / "private"
    hidden.mkdir()
    root = hidden / "root"
    combined = root / "datasets" / "text" / "persian_conversation" / "combined.jsonl"
    cli = " ".join([sys.executable, "-m", "persian_data.cli", "prepare", "text", "--root", str(root),
                    "--engine", "ray", "--ray-address", cluster.address])
    script = (f"mount -t tmpfs tmpfs {hidden} && cp -a {fetched} {root} && {{ {cli}; code=$?; }}; "
              f"test -e {combined} && echo 'combined.jsonl was placed'; exit $code")
    done = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                          capture_output=True, text=True, env=node_env(), timeout=600)
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "cannot see the root" in errors[0] and "Scaling out" in errors[0], done.stderr
    assert str(root) in errors[0] and "127.0.0." in errors[0]
    assert "placed" not in done.stdout


@pytest.fixture(scope="module")
def bigger_text(tmp_path_factory) -> Path:
    """A chat corpus of 12 pieces (3 per file), so that a run lasts long enough to lose a node."""
    store = HubStore(tmp_path_factory.mktemp("hub-big"))
    build_replicas(store, replace(TINY, name="pieces", text_rows=6000), only=("text",))
    root = tmp_path_factory.mktemp("big") / "root"
    with LocalHub(store) as server:
        assert main(["fetch", "--root", str(root), "--endpoint", server.endpoint, "--only", "text"]) == 0
    return root


def test_losing_a_node_mid_run_changes_nothing(cluster, bigger_text, tmp_path):
    """Runs last: it kills the second node. (Near-duplicates off: this replica's templated questions
    make millions of candidate pairs, the run would be all confirmation; the first test covers it.)"""
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    copy_tree(bigger_text, local)
    copy_tree(bigger_text, on_ray)
    second = cluster.nodes[1]
    running = prepare(on_ray, "text", "--no-near-dup", "--engine", "ray", "--ray-address", cluster.address)
    deadline = time.monotonic() + 300
    busy: list[int] = []
    while running.poll() is None and time.monotonic() < deadline and not busy:
        busy = second.busy_workers()
        if not busy:
            time.sleep(0.02)
    assert busy, "the second node never ran a unit of the run"
    second.kill(busy + second.pids())  # the worker running a unit first: that unit must run again elsewhere
    assert running.poll() is None  # the run was still going when the node died
    code, err = finished(running)
    assert code == 0, err
    code, err = finished(prepare(local, "text", "--no-near-dup", "--prepare-workers", "2"))
    assert code == 0, err
    files = digests(on_ray)
    assert files == digests(local)
    assert any(name.endswith("combined.jsonl") for name in files)
