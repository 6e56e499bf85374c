"""Issue 7, downloads: a bad network never leaves a corrupt or partial file in the layout, and a
rerun finishes the job. Faults are scripted per request on the local hub."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import pytest

from persian_data.catalog import BY_KEY, select
from persian_data.fetch import FetchOptions
from persian_data.integrity import hash_file, read_lock
from persian_data.layout import Layout
from persian_data.localhub.store import HubStore
from persian_data.pipeline import run_job

from support.replicas import REPLICA_REPOS, TINY, build_replicas
from support.hub import ScriptedHub

SOURCES = select("text,commonvoice,fleurs")  # the voices would add a torch load per run
FAST = dict(backoff_base=0.01, backoff_max=0.05, timeout=2.0, connect_timeout=2.0, workers=4)


def options(hub, **kw) -> FetchOptions:
    return FetchOptions(endpoint=hub.endpoint, **{**FAST, **kw})


@pytest.fixture(scope="module")
def fault_hub(tmp_path_factory):
    store = HubStore(tmp_path_factory.mktemp("hub"))
    build_replicas(store, TINY, only=("text", "commonvoice", "fleurs"))
    with ScriptedHub(store) as hub:
        yield hub


@pytest.fixture(autouse=True)
def clean(fault_hub):
    fault_hub.faults.clear()
    fault_hub.requests.clear()
    yield
    fault_hub.faults.clear()


@pytest.fixture(scope="module")
def reference(fault_hub, tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("reference")
    assert run_job(Layout(root), SOURCES, options(fault_hub)).ok
    return (root / "checksums/datasets.sha256.txt").read_text()


def hub_hashes(hub, key: str) -> dict[str, tuple[int, str]]:
    repo_type, repo_id = REPLICA_REPOS[key]
    return {f.path: (f.size, f.object) for f in hub.store.files(repo_type, repo_id, "main")}


def assert_layout_clean(root: Path, hub) -> None:
    """Every file in a content folder is complete and matches the hub; no temp file anywhere in datasets/."""
    layout = Layout(root)
    for source in SOURCES:
        expected = hub_hashes(hub, source.key)
        content = layout.content_dir(source)
        if not content.exists():
            continue
        for path in content.rglob("*"):
            if path.is_file():
                rel = path.relative_to(content).as_posix()
                assert rel in expected, f"unexpected file {rel}"
                assert hash_file(path).sha256 == expected[rel][1], f"corrupt file in layout: {rel}"
    leftovers = [p for p in (root / "datasets").rglob("*") if p.suffix in (".part", ".tmp", ".copy")] \
        if (root / "datasets").exists() else []
    assert leftovers == []


LFS_FILE = "/datasets/hezarai/common-voice-13-fa/resolve/*/data/train-00000-of-00002.parquet"


@pytest.mark.parametrize("fault", [
    dict(kind="reset", after_bytes=1000),
    dict(kind="truncate", after_bytes=500),
    dict(kind="status", status=500),
    dict(kind="status", status=502),
    dict(kind="status", status=503),
    dict(kind="drop"),
    dict(kind="stall", seconds=4.0, after_bytes=100),
])
def test_transient_fault_is_retried_and_the_file_lands_intact(fault_hub, tmp_path, reference, fault):
    rule = fault_hub.faults.add(path=LFS_FILE, times=2, **fault)
    outcome = run_job(Layout(tmp_path), SOURCES, options(fault_hub, timeout=1.0))
    assert outcome.ok, outcome.failures
    assert rule.fired == 2
    assert (tmp_path / "checksums/datasets.sha256.txt").read_text() == reference
    assert_layout_clean(tmp_path, fault_hub)


def test_resume_uses_a_range_request_after_a_reset(fault_hub, tmp_path):
    fault_hub.faults.reset(LFS_FILE, after_bytes=4096, times=1)
    assert run_job(Layout(tmp_path), SOURCES, options(fault_hub)).ok
    ranges = [r.range for r in fault_hub.requests.entries(method="GET") if r.path.endswith("train-00000-of-00002.parquet")]
    assert ranges[0] is None and ranges[1] is not None and ranges[1].startswith("bytes=")


def test_429_honours_retry_after_and_reduces_parallelism(fault_hub, tmp_path):
    rule = fault_hub.faults.rate_limit("/datasets/Kamtera/*/resolve/*", retry_after=1, times=2)
    started = time.monotonic()
    outcome = run_job(Layout(tmp_path), SOURCES, options(fault_hub, workers=4))
    assert outcome.ok, outcome.failures
    assert rule.fired == 2
    # backoff_max is 0.05 s here: only an obeyed Retry-After makes the run wait a whole second
    assert time.monotonic() - started >= 1.0
    log = (tmp_path / "logs/dataset_download.log").read_text("utf-8")
    assert "parallel downloads reduced to 2" in log, log[-3000:]
    assert log.count("HTTP 429 Too Many Requests; retry 1/4 in 1.0s") == 2, log[-3000:]


def test_retry_after_is_bounded(fault_hub, tmp_path):
    fault_hub.faults.rate_limit("/datasets/Kamtera/*/resolve/*", retry_after=3600, times=1)
    started = time.monotonic()
    assert run_job(Layout(tmp_path), SOURCES, options(fault_hub, retry_after_max=0.2)).ok
    assert time.monotonic() - started < 60
    assert "retry 1/4 in 0.2s" in (tmp_path / "logs/dataset_download.log").read_text("utf-8")


def test_wrong_bytes_are_downloaded_again_once(fault_hub, tmp_path, reference):
    rule = fault_hub.faults.corrupt(LFS_FILE, offset=10, length=4, times=1)
    assert run_job(Layout(tmp_path), SOURCES, options(fault_hub)).ok
    assert rule.fired == 1
    assert (tmp_path / "checksums/datasets.sha256.txt").read_text() == reference


def test_second_mismatch_fails_loudly_and_never_places_the_file(fault_hub, tmp_path):
    fault_hub.faults.corrupt(LFS_FILE, offset=10, length=4)
    outcome = run_job(Layout(tmp_path), SOURCES, options(fault_hub))
    assert not outcome.ok
    message = "\n".join(outcome.failures)
    assert "data/train-00000-of-00002.parquet" in message and "downloaded twice" in message
    victim = Layout(tmp_path).content_dir(BY_KEY["commonvoice"]) / "data/train-00000-of-00002.parquet"
    assert not victim.exists()
    assert_layout_clean(tmp_path, fault_hub)
    log = (tmp_path / "logs/dataset_download.log").read_text()
    assert "NOT COMPLETE" in log


def test_tries_run_out_with_one_clear_error(fault_hub, tmp_path):
    fault_hub.faults.status(LFS_FILE, code=503)
    outcome = run_job(Layout(tmp_path), SOURCES, options(fault_hub, max_tries=3))
    assert not outcome.ok
    [line] = [f for f in outcome.failures if "train-00000" in f]
    assert "gave up after 3 tries" in line and "HTTP 503" in line


def test_commit_moving_during_the_run_keeps_one_consistent_commit(tmp_path):
    store = HubStore(tmp_path / "hub")
    build_replicas(store, TINY, only=("text",))
    repo_type, repo_id = REPLICA_REPOS["text"]
    first = store.resolve(repo_type, repo_id, "main")
    with ScriptedHub(store) as hub:
        hub.faults.stall("/datasets/Kamtera/*/resolve/*/dadrah_dataset.json", seconds=1.0, times=1)
        files = {f.path: store.object_path(f.object).read_bytes() for f in store.files(repo_type, repo_id, "main")}
        files["dadrah_dataset.json"] = b"[]"

        def move():
            time.sleep(0.3)
            store.publish(repo_type, repo_id, files)

        mover = threading.Thread(target=move)
        mover.start()
        assert run_job(Layout(tmp_path / "root"), select("text"), options(hub, timeout=5.0)).ok
        mover.join()
        lock = read_lock(Layout(tmp_path / "root").lock_file)
        assert lock["text"].revision == first
        on_disk = Layout(tmp_path / "root").content_dir(BY_KEY["text"]) / "dadrah_dataset.json"
        assert on_disk.read_bytes() != b"[]"
        # the next run moves to the new commit and fetches only what changed
        hub.requests.clear()
        assert run_job(Layout(tmp_path / "root"), select("text"), options(hub)).ok
        gets = [r.path for r in hub.requests.entries(method="GET") if "/resolve/" in r.path]
        assert len(gets) == 1 and gets[0].endswith("dadrah_dataset.json")
        assert read_lock(Layout(tmp_path / "root").lock_file)["text"].revision != first


KINDS = ["reset", "truncate", "status", "rate_limit", "stall", "corrupt", "drop"]


def random_schedule(rng: random.Random, paths: list[str]) -> list[dict]:
    rules = []
    for _ in range(rng.randint(1, 4)):
        kind = rng.choice(KINDS)
        rule = dict(kind=kind, path="*" + rng.choice(paths), times=rng.randint(1, 2))
        if kind in ("reset", "truncate"):
            rule["after_bytes"] = rng.randint(0, 2000)
        elif kind == "status":
            rule["status"] = rng.choice([500, 502, 503])
        elif kind == "rate_limit":
            rule["retry_after"] = 0
        elif kind == "stall":
            rule.update(seconds=1.0, after_bytes=rng.randint(0, 100))
        elif kind == "corrupt":
            rule.update(offset=rng.randint(0, 50), length=rng.randint(1, 8), times=1)
        rules.append(rule)
    return rules


def test_randomized_fault_schedules_never_corrupt_the_layout(fault_hub, tmp_path, reference):
    """At least 100 random schedules; after each, the layout holds only verified files and a clean
    rerun gives the fault-free checksum file."""
    rng = random.Random(20261125)
    paths = []
    for key in ("text", "commonvoice", "fleurs"):
        paths += [p for p in hub_hashes(fault_hub, key)]
    schedules = 100
    deadline = time.monotonic() + 150
    ran = 0
    for number in range(schedules):
        root = tmp_path / f"s{number}"
        fault_hub.faults.clear()
        for rule in random_schedule(rng, paths):
            fault_hub.faults.add(**rule)
        run_job(Layout(root), SOURCES, options(fault_hub, timeout=0.5, max_tries=rng.randint(1, 4)))
        assert_layout_clean(root, fault_hub)
        fault_hub.faults.clear()
        assert run_job(Layout(root), SOURCES, options(fault_hub)).ok
        assert (root / "checksums/datasets.sha256.txt").read_text() == reference
        assert not (root / ".persian-data/staging").exists() or not any((root / ".persian-data/staging").iterdir())
        ran += 1
        assert time.monotonic() < deadline, f"only {ran} schedules ran in the time bound"
    assert ran == schedules


def test_downloads_take_larger_socket_reads_and_restore_the_client_default():
    import httpcore2._sync.http11 as http11

    from persian_data.fetch import SOCKET_READ, larger_socket_reads

    default = http11.HTTP11Connection.READ_NUM_BYTES
    assert default < SOCKET_READ
    with pytest.raises(RuntimeError):
        with larger_socket_reads():
            assert http11.HTTP11Connection.READ_NUM_BYTES == SOCKET_READ
            raise RuntimeError("a failing download")
    assert http11.HTTP11Connection.READ_NUM_BYTES == default
    with larger_socket_reads(nbytes=default // 2):  # never lowers it
        assert http11.HTTP11Connection.READ_NUM_BYTES == default
