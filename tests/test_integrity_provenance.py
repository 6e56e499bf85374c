"""Issue 21 items 1 and 2: a damaged download is never re-blessed, a stage never publishes outputs
made from it, and every derived output knows the inputs it was made from (stale when they change)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from persian_data.catalog import BY_KEY
from persian_data.cli import main
from persian_data.integrity import read_lock
from persian_data.layout import Layout
from persian_data.localhub.server import LocalHub
from persian_data.localhub.store import HubStore

from support.replicas import REPLICA_REPOS, TINY, build_replicas

RAW = "datasets/text/persian_conversation/data/dadrah_dataset.json"


def sha256sum_check(root: Path) -> subprocess.CompletedProcess:
    """The specification's own check, as a user runs it."""
    return subprocess.run(["sha256sum", "-c", "--quiet", "checksums/datasets.sha256.txt"], cwd=root,
                          capture_output=True, text=True)


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, hub) -> Path:
    root = tmp_path_factory.mktemp("prepared")
    assert main(["fetch", "--root", str(root), "--endpoint", hub.endpoint, "--only", "text,speech"]) == 0
    assert main(["prepare", "all", "--root", str(root)]) == 0
    return root


def test_a_truncated_download_is_never_reblessed(prepared, tmp_path, capsys):
    """Item 1: `prepare speech` and `prepare text` on a root whose raw chat file was truncated."""
    root = tmp_path / "root"
    shutil.copytree(prepared, root)
    outputs = tree(root / "datasets/text/persian_conversation")
    locked = read_lock(Layout(root).lock_file)["text"].files["dadrah_dataset.json"].sha256
    raw = root / RAW
    os.truncate(raw, raw.stat().st_size // 2)
    assert sha256sum_check(root).returncode != 0
    for stage in ("speech", "text"):
        capsys.readouterr()
        assert main(["prepare", stage, "--root", str(root)]) == 1, stage
        err = capsys.readouterr().err
        assert RAW in err and "persian-data fetch --only text" in err and "repair" in err, (stage, err)
        check = sha256sum_check(root)
        assert check.returncode != 0 and f"{RAW}: FAILED" in check.stdout, (stage, check.stdout)
        lines = dict(reversed(line.split("  ", 1)) for line in
                     Layout(root).checksums_file.read_text("utf-8").splitlines())
        assert lines[RAW] == locked, stage  # the lock's hash, never the damaged file's
    # the chat stage did not run on the damaged copy: every output is byte for byte the last good one
    assert tree(root / "datasets/text/persian_conversation") == {**outputs, "data/dadrah_dataset.json":
                                                                   raw.read_bytes()}
    assert "text was not prepared, its previous outputs are kept" in err


def test_a_damaged_shard_stops_only_its_corpus(prepared, tmp_path, capsys):
    root = tmp_path / "root"
    shutil.copytree(prepared, root)
    cv = Layout(root).bucket_root(BY_KEY["commonvoice"])
    before = tree(cv / "manifests")
    shard = sorted((cv / "data").rglob("train-*.parquet"))[0]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other bytes
    shard.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["prepare", "speech", "--root", str(root)]) == 1
    err = capsys.readouterr().err
    assert "commonvoice was not prepared, its previous outputs are kept" in err and shard.name in err
    assert tree(cv / "manifests") == before


def _text_hub(tmp_path: Path) -> tuple[HubStore, LocalHub]:
    store = HubStore(tmp_path / "hub")
    build_replicas(store, TINY, only=("text",))
    return store, LocalHub(store)


def _publish_with_one_row_less(store: HubStore) -> None:
    """The Hub moves on: a new commit whose raw chat file lost its last row."""
    repo_type, repo_id = REPLICA_REPOS["text"]
    files = {f.path: store.object_path(f.object).read_bytes() for f in store.files(repo_type, repo_id, "main")}
    rows = json.loads(files["dadrah_dataset.json"])
    files["dadrah_dataset.json"] = json.dumps(rows[:-1], ensure_ascii=False).encode()
    store.publish(repo_type, repo_id, files)


def _status(root: Path, capsys) -> tuple[int, dict]:
    capsys.readouterr()
    code = main(["status", "--root", str(root), "--only", "text", "--json"])
    [row] = json.loads(capsys.readouterr().out)
    return code, {o["path"]: o for o in row["outputs"]}


def test_outputs_know_their_inputs_and_say_when_they_are_stale(tmp_path, capsys):
    """Item 2, the issue's own scenario: a damaged copy, then `fetch` repairs it, then the Hub
    moves on; status and verify never call a stale output current, a re-prepare makes it current."""
    store, hub = _text_hub(tmp_path)
    root = tmp_path / "root"
    combined = Layout(root).chat_combined()
    rel = Layout(root).relative(combined)
    with hub:
        fetch = ["fetch", "--root", str(root), "--endpoint", hub.endpoint, "--only", "text"]
        assert main(fetch) == 0
        assert main(["prepare", "text", "--root", str(root)]) == 0
        good = combined.read_bytes()
        stats = json.loads(Layout(root).chat_stats().read_bytes())
        lock = read_lock(Layout(root).lock_file)["text"]
        assert stats["inputs"] and all(stats["inputs"][f"datasets/text/persian_conversation/data/{name}"]
                                       == lock.files[name].sha256 for name in ("dadrah_dataset.json",))
        # a damaged copy: the stage fails and keeps the last good output
        raw = root / RAW
        os.truncate(raw, raw.stat().st_size // 3)
        assert main(["prepare", "text", "--root", str(root)]) == 1
        assert combined.read_bytes() == good
        # fetch repairs it; the output was never replaced, so it is current
        assert main(fetch) == 0
        assert _status(root, capsys)[1][rel]["state"] == "current"
        assert main(["verify", "--root", str(root), "--only", "text"]) == 0
        # the Hub moves on: fetch brings the new file and says the output is stale (its job is the fetch)
        _publish_with_one_row_less(store)
        capsys.readouterr()
        assert main(fetch) == 0
        assert f"{rel}: stale: made from {RAW}" in capsys.readouterr().err
    assert combined.read_bytes() == good
    code, outputs = _status(root, capsys)
    assert code == 1 and outputs[rel]["state"] == "stale" and outputs[rel]["changed"] == [RAW]
    assert main(["status", "--root", str(root), "--only", "text"]) == 1
    assert "stale" in capsys.readouterr().out
    assert main(["verify", "--root", str(root), "--only", "text"]) == 1
    err = capsys.readouterr().err
    assert f"FAIL [provenance] {rel}: stale" in err and "persian-data prepare text" in err
    assert main(["prepare", "text", "--root", str(root)]) == 0
    assert combined.read_bytes() != good
    code, outputs = _status(root, capsys)
    assert code == 0 and outputs[rel]["state"] == "current"
    assert main(["verify", "--root", str(root), "--only", "text"]) == 0


def test_speech_outputs_record_their_inputs(prepared):
    layout = Layout(prepared)
    lock = read_lock(layout.lock_file)
    for key in ("commonvoice", "fleurs"):
        source = BY_KEY[key]
        inputs = json.loads(layout.speech_stats(source).read_bytes())["inputs"]
        prefix = layout.relative(layout.content_dir(source)) + "/"
        assert inputs, key
        for rel, sha in inputs.items():
            assert lock[key].files[rel.removeprefix(prefix)].sha256 == sha, rel
