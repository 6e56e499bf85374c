"""Issue 3 end to end, through the CLI, against the local hub serving replicas of the five repos."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from persian_data.catalog import BY_KEY, CATALOG
from persian_data.cli import main
from persian_data.integrity import read_lock
from persian_data.layout import Layout
from persian_data.localhub.store import HubStore

from support.replicas import REPLICA_REPOS, TINY, build_replicas
from support.hub import ScriptedHub

FLEURS_DECOYS = ("en_us", "ar_eg")


def fetch(root: Path, hub, *extra: str) -> int:
    return main(["fetch", "--root", str(root), "--endpoint", hub.endpoint, *extra])


def content_gets(hub) -> list[str]:
    return [r.path for r in hub.requests.entries() if r.method == "GET" and "/resolve/" in r.path]


def spec_checksums(root: Path) -> str:
    """The specification's own command, byte order."""
    out = subprocess.run("find datasets -type f -size +1c -print0 | sort -z | xargs -0 sha256sum",
                         shell=True, cwd=root, capture_output=True, check=True, env={**os.environ, "LC_ALL": "C"})
    return out.stdout.decode()


@pytest.fixture(scope="module")
def fetched(tmp_path_factory, hub):
    root = tmp_path_factory.mktemp("root")
    hub.requests.clear()
    assert fetch(root, hub) == 0
    return root, [r for r in hub.requests.entries()]


def test_layout_matches_the_specification(fetched, replica_store):
    root, _ = fetched
    layout = Layout(root)
    for source in CATALOG:
        repo_type, repo_id = REPLICA_REPOS[source.key]
        remote = {f.path for f in replica_store.files(repo_type, repo_id, "main")}
        on_disk = {p.relative_to(layout.content_dir(source)).as_posix()
                   for p in layout.content_dir(source).rglob("*") if p.is_file()}
        if source.allow_patterns is None:
            assert on_disk == remote, source.key
        else:
            assert on_disk and on_disk < remote, source.key
        readme = layout.source_readme(source).read_text("utf-8").splitlines()
        assert f"URL: {source.url}" in readme
        assert any(line.startswith("Revision: ") and len(line.split()[-1]) == 40 for line in readme)
    # no bookkeeping of the Hub client, no staging, no temp file inside the data folders
    assert not list((root / "datasets").rglob(".cache"))
    assert not [p for p in (root / "datasets").rglob("*") if p.name.endswith((".part", ".tmp", ".incomplete"))]


def test_exact_urls_of_the_specification(fetched):
    root, _ = fetched
    expected = {
        "text": "https://huggingface.co/datasets/Kamtera/Persian-conversational-dataset",
        "commonvoice": "https://huggingface.co/datasets/hezarai/common-voice-13-fa",
        "fleurs": "https://huggingface.co/datasets/google/fleurs",
        "tts-female": "https://huggingface.co/Kamtera/persian-tts-female-vits",
        "tts-male": "https://huggingface.co/Kamtera/persian-tts-male-vits",
    }
    for key, url in expected.items():
        assert f"URL: {url}\n" in Layout(root).source_readme(BY_KEY[key]).read_text("utf-8")


def test_checksums_equal_the_specifications_command_and_pass_sha256sum(fetched):
    root, _ = fetched
    text = (root / "checksums/datasets.sha256.txt").read_text()
    assert text == spec_checksums(root)
    check = subprocess.run(["sha256sum", "-c", "--quiet", "checksums/datasets.sha256.txt"], cwd=root,
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_counts_have_exactly_the_five_keys_and_agree_with_find(fetched):
    root, _ = fetched
    meta = json.loads((root / "logs/dataset_sources.json").read_text())
    assert list(meta) == [s.count_key for s in CATALOG]
    for source in CATALOG:
        folder = Layout(root).content_dir(source).relative_to(root)
        found = subprocess.run(f"find {folder} -type f -size +1c | wc -l", shell=True, cwd=root,
                               capture_output=True, text=True, check=True)
        assert meta[source.count_key] == int(found.stdout) > 0


def test_log_has_timestamped_steps_and_the_summary_block(fetched):
    root, _ = fetched
    log = (root / "logs/dataset_download.log").read_text("utf-8")
    first = log.splitlines()[0]
    assert first[:4].isdigit() and first[4] == "-"  # "2026-11-25 ..." timestamp
    block = log[log.rindex("===== persian-data summary"):]
    assert "status: COMPLETE" in block
    for source in CATALOG:
        assert f"{source.count_key}: " in block
        assert Layout(root).bucket_root(source).relative_to(root).as_posix() in block
    checks = (root / "checksums/datasets.sha256.txt").read_text().splitlines()
    assert checks[0] in block and checks[-1] in block
    assert block.rstrip().endswith("===== end of summary =====")


def test_lock_records_commits_and_hub_hashes(fetched, replica_store):
    root, _ = fetched
    lock = read_lock(Layout(root).lock_file)
    assert set(lock) == set(BY_KEY)
    for key, locked in lock.items():
        repo_type, repo_id = REPLICA_REPOS[key]
        assert locked.revision == replica_store.resolve(repo_type, repo_id, "main")
        stored = {f.path: f for f in replica_store.files(repo_type, repo_id, locked.revision)}
        for path, entry in locked.files.items():
            assert entry.hub_hash == stored[path].etag
            assert entry.size == stored[path].size
    text = lock["text"].files
    assert text["dadrah_dataset.json"].lfs is False  # blob sha1, like the real repo
    assert text["dadrah_dataset1-100000_276342.json"].lfs is True


def test_fleurs_decoys_never_requested(fetched):
    _, requests = fetched
    paths = [r.path for r in requests]
    assert any("/data/fa_ir/" in p for p in paths)
    assert not [p for p in paths if any(f"/data/{lang}/" in p for lang in FLEURS_DECOYS)]


def test_extra_tts_checkpoints_only_with_full(fetched, hub, tmp_path):
    root, _ = fetched
    female = Layout(root).content_dir(BY_KEY["tts-female"])
    assert sorted(p.name for p in female.iterdir()) == ["README.md", "best_model_30824.pth", "config.json"]
    male = Layout(root).content_dir(BY_KEY["tts-male"])
    assert sorted(p.name for p in male.iterdir()) == ["README.md", "best_model_91323.pth", "config.json"]
    assert fetch(tmp_path, hub, "--only", "tts", "--full") == 0
    full = Layout(tmp_path).content_dir(BY_KEY["tts-female"])
    names = {p.name for p in full.iterdir()}
    assert {"checkpoint_5000.pth", "best_model_1725.pth", "phoneme_cache.zip", "config-2.json"} <= names


def test_second_fetch_downloads_nothing(fetched, hub):
    root, _ = fetched
    hub.requests.clear()
    assert fetch(root, hub) == 0
    assert content_gets(hub) == []


def test_verify_passes_then_names_a_corrupted_file(fetched, tmp_path, capsys):
    root, _ = fetched
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    assert main(["verify", "--root", str(copy)]) == 0
    victim = Layout(copy).content_dir(BY_KEY["commonvoice"]) / "data/test-00000-of-00001.parquet"
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["verify", "--root", str(copy)]) == 1
    err = capsys.readouterr().err
    assert "datasets/speech/commonvoice_fa/data/data/test-00000-of-00001.parquet" in err


def test_refetch_repairs_a_corrupted_file(fetched, hub, tmp_path):
    root, _ = fetched
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    victim = Layout(copy).content_dir(BY_KEY["text"]) / "dadrah_dataset.json"
    victim.write_bytes(b"x" * victim.stat().st_size)  # same size, wrong bytes
    hub.requests.clear()
    assert fetch(copy, hub) == 0
    assert [p for p in content_gets(hub)] == [p for p in content_gets(hub) if p.endswith("/dadrah_dataset.json")]
    assert len(content_gets(hub)) == 1
    assert main(["verify", "--root", str(copy)]) == 0


def test_missing_repo_fails_clearly(tmp_path, capsys):
    store = HubStore(tmp_path / "hub")
    build_replicas(store, TINY)
    shutil.rmtree(store.repo_dir("dataset", "google/fleurs"))
    with ScriptedHub(store) as hub:
        assert fetch(tmp_path / "root", hub, "--only", "fleurs") != 0
    err = capsys.readouterr().err
    assert "google/fleurs" in err and "not found" in err
    assert not (tmp_path / "root/datasets/speech/fleurs_fa/data").exists()


def test_locked_fetch_reproduces_commits_and_fails_when_gone(tmp_path, capsys):
    store = HubStore(tmp_path / "hub")
    build_replicas(store, TINY)
    root = tmp_path / "root"
    with ScriptedHub(store) as hub:
        assert fetch(root, hub, "--only", "text") == 0
        first = read_lock(Layout(root).lock_file)["text"].revision
        # the repo moves on: a new commit on main
        files = {f.path: store.object_path(f.object).read_bytes() for f in store.files("dataset", REPLICA_REPOS["text"][1], "main")}
        files["README.md"] = files["README.md"] + b"\n"
        store.publish("dataset", REPLICA_REPOS["text"][1], files)
        other = tmp_path / "other"
        shutil.copy2(Layout(root).lock_file, tmp_path / "lock.json")
        Layout(other).lock_file.parent.mkdir(parents=True)
        shutil.copy2(tmp_path / "lock.json", Layout(other).lock_file)
        assert fetch(other, hub, "--only", "text", "--locked") == 0
        assert read_lock(Layout(other).lock_file)["text"].revision == first
        # the Hub loses the locked commit
        (store.repo_dir("dataset", REPLICA_REPOS["text"][1]) / "commits" / f"{first}.json").unlink()
        capsys.readouterr()
        third = tmp_path / "third"
        Layout(third).lock_file.parent.mkdir(parents=True)
        shutil.copy2(tmp_path / "lock.json", Layout(third).lock_file)
        assert fetch(third, hub, "--only", "text", "--locked") != 0
    err = capsys.readouterr().err
    assert first in err and "--locked" in err


def test_dry_run_prints_plan_and_writes_no_data(tmp_path, hub, capsys):
    hub.requests.clear()
    assert fetch(tmp_path, hub, "--dry-run") == 0
    err = capsys.readouterr().err
    assert "plan" in err and "free disk" in err
    assert content_gets(hub) == []
    assert not (tmp_path / "datasets").exists()


def test_too_little_space_fails_before_any_byte(tmp_path, hub, monkeypatch, capsys):
    import shutil as shutil_module
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil_module, "disk_usage", lambda p: usage(10**6, 10**6 - 1000, 1000))
    hub.requests.clear()
    assert fetch(tmp_path, hub) != 0
    assert "not enough free space" in capsys.readouterr().err
    assert content_gets(hub) == []
    assert not (tmp_path / "datasets").exists()


@pytest.mark.parametrize("how", ["flag", "env"])
def test_token_never_written(tmp_path, hub, capsys, monkeypatch, how):
    token = "hf_SECRETtoken1234567890"
    hub.faults.status("*/resolve/*/README.md", code=503, times=1)  # an error path is logged too
    if how == "env":
        monkeypatch.setenv("HF_TOKEN", token)
        assert fetch(tmp_path, hub, "--only", "text") == 0
    else:
        assert fetch(tmp_path, hub, "--only", "text", "--token", token) == 0
    out = capsys.readouterr()
    assert token not in out.out + out.err
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert token.encode() not in path.read_bytes(), path


def test_fetch_then_model_check_then_synth_through_the_cli(fetched, tmp_path, capsys, voice_assets):
    """Issue 6 end to end: the voices come from the hub, pass the model check, and speak."""
    import numpy as np
    import soundfile as sf

    assert voice_assets is not None, "the tts extra is part of the test install"
    root, _ = fetched
    log = (root / "logs/dataset_download.log").read_text("utf-8")
    assert "[tts]" not in log.split("===== persian-data summary")[-1]  # the model check passed
    for voice in ("female", "male"):
        out = tmp_path / f"{voice}.wav"
        assert main(["synth", "--root", str(root), "--voice", voice, "--text", "سلام، حال شما چطور است؟",
                     "--out", str(out)]) == 0
        info = sf.info(out)
        assert (info.samplerate, info.channels, info.format) == (24000, 1, "WAV")
        audio, _ = sf.read(out)
        assert info.frames > 2400 and float(np.abs(audio).max()) > 0.01
    capsys.readouterr()
    assert main(["synth", "--root", str(root), "--list-voices"]) == 0
    listed = json.loads(capsys.readouterr().out)
    lock = read_lock(Layout(root).lock_file)
    assert {v["name"]: v["revision"] for v in listed} == {
        "female": lock["tts-female"].revision, "male": lock["tts-male"].revision}


def test_status_reports_present_missing_modified_and_stale(fetched, hub, tmp_path, capsys):
    root, _ = fetched
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    capsys.readouterr()
    assert main(["status", "--root", str(copy), "--json"]) == 0
    rows = {r["source"]: r for r in json.loads(capsys.readouterr().out)}
    assert {r["state"] for r in rows.values()} == {"present"}
    assert rows["text"]["files"] == 7 and rows["text"]["revision"] == read_lock(Layout(copy).lock_file)["text"].revision
    shutil.rmtree(Layout(copy).content_dir(BY_KEY["fleurs"]))
    (Layout(copy).content_dir(BY_KEY["text"]) / "README.md").write_bytes(b"changed")
    assert main(["status", "--root", str(copy), "--json"]) == 1
    rows = {r["source"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["fleurs"]["state"] == "incomplete" and rows["text"]["state"] == "modified"
    # stale: the hub moved on since the lock was written
    store = HubStore(tmp_path / "hub")
    build_replicas(store, TINY, only=("commonvoice",))
    lock = json.loads(Layout(copy).lock_file.read_text())
    with ScriptedHub(store) as moved:
        files = {f.path: store.object_path(f.object).read_bytes() for f in store.files("dataset", "hezarai/common-voice-13-fa", "main")}
        files["README.md"] += b"\n"
        store.publish("dataset", "hezarai/common-voice-13-fa", files)
        assert main(["status", "--root", str(copy), "--only", "commonvoice", "--json", "--remote",
                     "--endpoint", moved.endpoint]) == 1
    [row] = json.loads(capsys.readouterr().out)
    assert row["state"] == "stale" and row["hub_revision"] != lock["sources"]["commonvoice"]["revision"]
