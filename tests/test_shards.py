"""`persian-data shards`: WebDataset, lhotse Shar and NeMo tarred sets of the local hub's Common Voice
and FLEURS replicas, read back by the real libraries; reproducible, resumable, verified.

One root is fetched and prepared for the module; each format is written into it once. Tests that
damage a set work on a copy of that root.
"""

from __future__ import annotations

import hashlib
import json
import math
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from conftest import copy_tree
from hypothesis import event, given, settings
from hypothesis import strategies as st

from persian_data.cli import main
from persian_data.layout import Layout
from persian_data.shards import readers, tarwrite
from persian_data.shards.documents import member_key
from persian_data.shards.index import SetPaths, read_index
from persian_data.shards.plan import cut_by_size

CV_SIZE = "20KB"  # the replicas' clips are 9-40 KB: a few shards per split


def _manifest(root: Path, folder: str, split: str = "train") -> dict[str, dict]:
    path = root / "datasets" / "speech" / folder / "manifests" / f"{split}.jsonl"
    return {line["id"]: line for line in map(json.loads, path.read_text("utf-8").splitlines())}


def _shards(root: Path, corpus: str, fmt: str, *extra: str) -> int:
    return main(["shards", "--root", str(root), "--corpus", corpus, "--format", fmt, *extra])


def _index(root: Path, corpus: str, fmt: str, split: str = "train") -> tuple[SetPaths, dict]:
    paths = SetPaths(Layout(root), corpus, fmt, split)
    return paths, read_index(paths.index)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def root(tmp_path_factory, hub) -> Path:
    root = tmp_path_factory.mktemp("shards") / "root"
    assert main(["fetch", "--root", str(root), "--endpoint", hub.endpoint, "--only", "speech"]) == 0
    assert main(["prepare", "speech", "--root", str(root)]) == 0
    assert _shards(root, "commonvoice", "webdataset", "--shard-size", CV_SIZE) == 0
    assert _shards(root, "commonvoice", "shar", "--shard-size", CV_SIZE) == 0
    assert _shards(root, "commonvoice", "nemo", "--shard-size", CV_SIZE, "--buckets", "2") == 0
    assert _shards(root, "fleurs", "webdataset", "--shard-size", "40KB") == 0
    assert _shards(root, "fleurs", "shar", "--split", "all") == 0  # every prepared split, one run
    return root


# -- read back by the real libraries -----------------------------------------------------------

@pytest.mark.parametrize("corpus,folder,ext",
                         [("commonvoice", "commonvoice_fa", "mp3"), ("fleurs", "fleurs_fa", "wav")])
def test_webdataset_reads_back_every_clip_byte_for_byte(root, tmp_path, corpus, folder, ext):
    import datasets
    import webdataset as wds

    manifest = _manifest(root, folder)
    paths, index = _index(root, corpus, "webdataset")
    assert len(index["shards"]) >= 2 and index["samples"] == len(manifest)
    assert index["manifest_sha256"] == _sha((root / index["manifest"]).read_bytes())
    urls = [str(paths.folder / s["name"]) for s in index["shards"]]
    seen = {}
    for sample in wds.WebDataset(urls, shardshuffle=False):
        meta = json.loads(sample["json"])
        line = manifest[meta["id"]]
        assert sample["__key__"] == member_key(line["id"])
        assert _sha(sample[ext]) == line["sha256"] == meta["sha256"]
        for key in ("text", "text_normalized", "duration", "sample_rate", "frames"):
            assert meta[key] == line[key]
        assert meta["gender"] == ((line.get("gender") or "").lower() or None)
        assert meta["speaker"] == (line.get("client_id") if corpus == "commonvoice" else None)
        assert meta["corpus"] == corpus and meta["split"] == "train"
        seen[meta["id"]] = meta
    assert sorted(seen) == sorted(manifest)
    counts = [s["samples"] for s in index["shards"]]
    assert sum(counts) == len(manifest)
    # Hugging Face's own webdataset loader sees the same samples and bytes.
    ds = datasets.load_dataset("webdataset", data_files={"train": urls}, split="train",
                               cache_dir=str(tmp_path / "hf"))
    ds = ds.cast_column(ext, datasets.Audio(decode=False))
    assert sorted(_sha(row[ext]["bytes"]) for row in ds) == sorted(line["sha256"] for line in manifest.values())
    assert {row["json"]["id"] for row in ds} == set(manifest)


def test_shar_reads_back_with_lhotse_and_audio_loads(root):
    from lhotse import CutSet

    manifest = _manifest(root, "commonvoice_fa")
    paths, _ = _index(root, "commonvoice", "shar")
    cuts = list(CutSet.from_shar(in_dir=paths.folder))  # the folder holds the Shar files and nothing else
    assert sorted(c.id for c in cuts) == sorted(manifest)
    for cut in cuts:
        line = manifest[cut.id]
        assert _sha(cut.recording.sources[0].source) == line["sha256"]
        audio = cut.load_audio()
        assert audio.shape == (1, line["frames"])
        sup = cut.supervisions[0]
        assert sup.text == line["text_normalized"] and sup.custom["text_original"] == line["text"]
        assert sup.speaker == line["client_id"] and sup.gender == ((line["gender"] or "").lower() or None)
        assert cut.custom["sha256"] == line["sha256"] and cut.custom["up_votes"] == line["up_votes"]
    # FLEURS (WAV, `--split all`) through the package's loader, built from the index
    assert [p.name for p in sorted((root / "shards/fleurs/shar").glob("*.index.json"))] == \
        ["test.index.json", "train.index.json", "validation.index.json"]
    fleurs = _manifest(root, "fleurs_fa", "validation")
    loaded = {c.id: c for c in readers.load_shar(root, "fleurs", "validation")}
    assert sorted(loaded) == sorted(fleurs)
    assert all(_sha(c.recording.sources[0].source) == fleurs[c.id]["sha256"] for c in loaded.values())
    assert loaded[next(iter(fleurs))].load_audio().shape[1] == fleurs[next(iter(fleurs))]["frames"]


def test_shar_cuts_without_isal_are_zlib_and_a_rerun_with_it_rewrites_only_the_cuts(root, tmp_path):
    """The base install has no python-isal: the cuts are zlib's gzip. Its plan digest names the
    compressor, so a rerun with isal installed rewrites the cuts (igzip's bytes) and keeps every tar."""
    import gzip

    from lhotse import CutSet

    other = tmp_path / "other"
    copy_tree(root, other)
    paths, index = _index(other, "commonvoice", "shar")
    cuts = {f["name"]: gzip.decompress((paths.folder / f["name"]).read_bytes()) for s in index["shards"]
            for f in s["files"]}
    no_isal = ("import sys; sys.modules['isal'] = None; from persian_data.cli import entry; sys.argv[0] = "
               "'persian-data'; entry()")
    done = subprocess.run([sys.executable, "-c", no_isal, "shards", "--root", str(other), "--corpus", "commonvoice",
                           "--format", "shar", "--shard-size", CV_SIZE], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    _, zlib_index = _index(other, "commonvoice", "shar")
    tars = {s["name"]: s["sha256"] for s in index["shards"]}
    assert {s["name"]: s["sha256"] for s in zlib_index["shards"]} == tars
    for shard in zlib_index["shards"]:
        (name, data), = ((f["name"], (paths.folder / f["name"]).read_bytes()) for f in shard["files"])
        assert data[9] == 3 and gzip.decompress(data) == cuts[name]  # zlib's gzip says Unix; the same lines
    assert sorted(c.id for c in CutSet.from_shar(in_dir=paths.folder)) == sorted(_manifest(root, "commonvoice_fa"))

    assert _shards(other, "commonvoice", "shar", "--shard-size", CV_SIZE) == 0  # isal, as the scale extra has it
    _, isal_index = _index(other, "commonvoice", "shar")
    assert {s["name"]: s["sha256"] for s in isal_index["shards"]} == tars
    for shard in isal_index["shards"]:
        (name, data), = ((f["name"], (paths.folder / f["name"]).read_bytes()) for f in shard["files"])
        assert data[9] == 255 and gzip.decompress(data) == cuts[name]  # igzip's header: OS unknown
    assert isal_index == index  # what the module's run wrote, with isal too


def test_nemo_buckets_shards_and_manifests_agree_with_the_tars(root):
    manifest = _manifest(root, "commonvoice_fa")
    paths, index = _index(root, "commonvoice", "nemo")
    assert [b["folder"] for b in index["buckets"]] == ["bucket1", "bucket2"]
    assert sum(b["samples"] for b in index["buckets"]) == len(manifest)
    config = readers.nemo_config(root, "commonvoice")
    assert config["is_tarred"] and len(config["tarred_audio_filepaths"]) == len(index["patterns"])
    seen = []
    for bucket in index["buckets"]:
        folder = paths.folder / bucket["folder"]
        tars = sorted(folder.glob("audio_*.tar"), key=lambda p: int(p.stem.split("_")[1]))
        assert len(tars) == bucket["shards"]
        pattern = index["patterns"][bucket["folder"]]
        assert pattern["tarred_audio_filepaths"] == f"{bucket['folder']}/audio__OP_0..{len(tars) - 1}_CL_.tar"
        assert pattern["manifest_filepath"] == (f"{bucket['folder']}/sharded_manifests/"
                                                f"manifest__OP_0..{len(tars) - 1}_CL_.json")
        whole = []
        for number, tar_path in enumerate(tars):
            sharded = folder / f"sharded_manifests/manifest_{number}.json"
            entries = [json.loads(x) for x in sharded.read_text().splitlines()]
            whole += entries
            with tarfile.open(tar_path) as tar:
                members = [(m.name, tar.extractfile(m).read()) for m in tar]
            assert [e["audio_filepath"] for e in entries] == [name for name, _ in members]
            for entry, (name, data) in zip(entries, members):
                line = manifest[entry["id"]]
                assert entry["shard_id"] == number and name == f"{member_key(line['id'])}.mp3"
                assert _sha(data) == line["sha256"] and entry["text"] == line["text_normalized"]
                assert bucket["min_duration"] <= entry["duration"] <= bucket["max_duration"]
        assert [json.loads(x) for x in (folder / "tarred_audio_manifest.json").read_text().splitlines()] == whole
        seen += [e["id"] for e in whole]
    assert sorted(seen) == sorted(manifest)
    first, second = index["buckets"]
    assert first["max_duration"] <= second["min_duration"]


# -- sizes, seeds, reruns ------------------------------------------------------------------------

def test_shards_are_cut_close_to_the_requested_size(root):
    _, index = _index(root, "commonvoice", "webdataset")
    sizes = [s["bytes"] for s in index["shards"]]
    count = len(sizes)
    # The members' bytes T: the tars less their end (two zero blocks, padded to 20 blocks: 1-11 KB each).
    least, most = sum(sizes) - count * (tarwrite.RECORD + 2 * 512), sum(sizes) - count * 2 * 512
    assert math.ceil(least / 20_000) <= count <= math.ceil(most / 20_000)  # ceil(T / --shard-size) shards
    sample_max = 2 * 512 + 40_000 + 2 * 512  # a replica clip, its JSON and their headers, at most
    assert max(sizes) <= most / count + sample_max + tarwrite.RECORD  # nearly equal, none a leftover


def _set_files(paths: SetPaths) -> dict[str, tuple[int, int, str]]:
    out = {}
    for path in sorted(p for p in paths.folder.rglob("*") if p.is_file()) + [paths.index]:
        st = path.stat()
        out[str(path.relative_to(paths.folder.parent))] = (st.st_mtime_ns, st.st_ino, _sha(path.read_bytes()))
    return out


def _keys(folder: Path, index: dict) -> list[str]:
    """Sample keys in the order the set holds them."""
    out = []
    for shard in index["shards"]:
        with tarfile.open(folder / shard["name"]) as tar:
            out += [m.name.rsplit(".", 1)[0] for m in tar if m.name.endswith(".json")]
    return out


def test_same_seed_same_bytes_rerun_writes_nothing_other_seed_other_order(root, tmp_path):
    import shutil

    paths, index = _index(root, "commonvoice", "webdataset")
    before = _set_files(paths)
    journal = paths.journal.stat().st_mtime_ns
    assert _shards(root, "commonvoice", "webdataset", "--shard-size", CV_SIZE) == 0
    assert _set_files(paths) == before  # not one file rewritten: same mtimes, same inodes
    assert paths.journal.stat().st_mtime_ns == journal

    other = tmp_path / "other"
    copy_tree(root, other)
    shutil.rmtree(other / "shards")
    shutil.rmtree(other / ".persian-data" / "shards")
    assert _shards(other, "commonvoice", "webdataset", "--shard-size", CV_SIZE) == 0
    other_paths, _ = _index(other, "commonvoice", "webdataset")
    assert {k: v[2] for k, v in _set_files(other_paths).items()} == {k: v[2] for k, v in before.items()}

    assert _shards(other, "commonvoice", "webdataset", "--shard-size", "30KB", "--seed", "7") == 0
    _, seeded = _index(other, "commonvoice", "webdataset")
    first, second = _keys(paths.folder, index), _keys(other_paths.folder, seeded)
    assert sorted(first) == sorted(second) and first != second
    assert seeded["options"] == {"seed": 7, "shard_size": 30_000, "buckets": 1}
    # shards of the old plan are gone, not left beside the new ones (a glob would read both)
    assert {p.name for p in other_paths.folder.glob("*.tar")} == {s["name"] for s in seeded["shards"]}


# -- verify, damage, kill --------------------------------------------------------------------------

def test_verify_names_a_corrupted_or_missing_shard_and_a_stale_index(root, tmp_path, capsys):
    damaged = tmp_path / "damaged"
    copy_tree(root, damaged)
    assert main(["verify", "--root", str(damaged), "--only", "speech"]) == 0
    paths, index = _index(damaged, "commonvoice", "webdataset")
    victim = paths.folder / index["shards"][1]["name"]
    data = bytearray(victim.read_bytes())
    data[600] ^= 0xFF  # inside the first member's data: same size, other bytes
    victim.write_bytes(bytes(data))
    shar_paths, shar_index = _index(damaged, "commonvoice", "shar")
    (shar_paths.folder / shar_index["shards"][0]["files"][0]["name"]).unlink()
    capsys.readouterr()
    assert main(["verify", "--root", str(damaged), "--only", "speech"]) == 1
    err = capsys.readouterr().err
    assert f"shards/commonvoice/webdataset/train/{victim.name}: corrupted" in err
    assert "shards/commonvoice/shar/train/cuts.000000.jsonl.gz: missing" in err
    assert "FAIL [shards]" in err and "fleurs" not in err.split("FAIL [shards]")[1].splitlines()[0]
    # the scope: a run that does not touch Common Voice does not judge its shards
    assert main(["verify", "--root", str(damaged), "--only", "fleurs"]) == 0
    # a manifest that moved on makes its sets stale
    manifest = damaged / index["manifest"]
    manifest.write_bytes(manifest.read_bytes().replace(b'"up_votes":', b'"up_votes" :', 1))
    capsys.readouterr()
    assert main(["verify", "--root", str(damaged), "--only", "commonvoice"]) == 1
    err = capsys.readouterr().err
    assert "shards/commonvoice/nemo/train.index.json: stale: made from" in err
    # the same command rebuilds what is damaged and the set passes again
    assert _shards(damaged, "commonvoice", "webdataset", "--shard-size", CV_SIZE) == 0
    rebuilt = read_index(paths.index)
    assert rebuilt["manifest_sha256"] == _sha(manifest.read_bytes())
    assert _sha(victim.read_bytes()) == rebuilt["shards"][1]["sha256"]


@pytest.mark.parametrize("workers", ["1", "3"])
def test_a_clip_changed_after_prepare_fails_the_run_in_any_writer_and_places_nothing(root, tmp_path, capsys,
                                                                                        workers):
    """Same size, other bytes: found while copying, in this process or a writer process (the smallest
    split's files are written in a child while train is planned, train's dealt into lanes)."""
    work = tmp_path / "changed"
    copy_tree(root, work)
    import shutil

    shutil.rmtree(work / "shards" / "commonvoice" / "webdataset")
    victims = []
    for split in ("train", "test"):
        clip = work / next(iter(_manifest(work, "commonvoice_fa", split).values()))["audio_path"]
        data = bytearray(clip.read_bytes())
        data[-1] ^= 0xFF
        clip.write_bytes(bytes(data))
        victims.append(clip)
    capsys.readouterr()
    assert _shards(work, "commonvoice", "webdataset", "--split", "all", "--shard-size", CV_SIZE,
                   "--workers", workers) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert any("the clip changed after `prepare speech`" in line and any(
        str(v.relative_to(work)) in line for v in victims) for line in err)
    assert not list((work / "shards" / "commonvoice" / "webdataset").rglob("*.tar"))  # nothing placed
    assert not list((work / ".persian-data" / "tmp").glob("*.tmp"))  # no half shard left behind


KILLED_RUN = r"""
import sys, time, pathlib
from persian_data.shards import tarwrite
marker, started = pathlib.Path(sys.argv[1]), []
add = tarwrite.TarFileWriter.add
def slow_add(self, name, data):
    if self not in started:
        started.append(self)
    add(self, name, data)
    if len(started) == 2:  # the second shard has its first member written: be killed here
        self._flush()
        marker.write_text("mid-write")
        time.sleep(120)
tarwrite.TarFileWriter.add = slow_add
from persian_data.cli import main
sys.exit(main(sys.argv[2:]))
"""


def test_a_killed_run_leaves_no_partial_shard_and_the_rerun_resumes(root, tmp_path):
    work = tmp_path / "killed"
    copy_tree(root, work)
    import shutil

    shutil.rmtree(work / "shards" / "commonvoice" / "webdataset")
    marker = tmp_path / "marker"
    argv = ["shards", "--root", str(work), "--corpus", "commonvoice", "--format", "webdataset",
            "--shard-size", CV_SIZE, "--workers", "1"]
    proc = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(marker), *argv], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), "the run never reached its second shard"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    paths = SetPaths(Layout(work), "commonvoice", "webdataset", "train")
    assert not paths.index.exists() and not any(paths.folder.rglob("*.tar"))  # nothing in place
    staged = sorted(paths.staging.glob("*.tar"))
    assert [p.name for p in staged] == ["train-000000.tar"]  # the finished shard waits in staging
    with tarfile.open(staged[0]) as tar:
        assert len(tar.getmembers()) > 0
    inode = staged[0].stat().st_ino
    partial = list((work / ".persian-data" / "tmp").glob("*.tmp"))
    assert partial and partial[0].stat().st_size > 0  # the half-written shard is a temp file only

    assert _shards(work, "commonvoice", "webdataset", "--shard-size", CV_SIZE, "--workers", "1") == 0
    assert (paths.folder / "train-000000.tar").stat().st_ino == inode  # resumed: not written again
    assert not list((work / ".persian-data" / "tmp").glob("*.tmp"))
    assert not paths.staging.exists()
    assert _set_files(paths) and {k: v[2] for k, v in _set_files(paths).items()} == \
        {k: v[2] for k, v in _set_files(SetPaths(Layout(root), "commonvoice", "webdataset", "train")).items()}


STALLED_WRITERS = r"""
import os, sys, time, pathlib
from persian_data.shards import tarwrite
folder = pathlib.Path(sys.argv[1])
add = tarwrite.TarFileWriter.add
def slow_add(self, name, data):  # every writer process takes 0.5 s per sample, and notes when it added one
    add(self, name, data)
    with open(folder / str(os.getpid()), "a") as note:
        note.write(f"{time.time()}\n")
    time.sleep(0.5)
tarwrite.TarFileWriter.add = slow_add
from persian_data.cli import main
sys.exit(main(sys.argv[2:]))
"""


def test_killing_the_command_stops_its_writer_processes(root, tmp_path):
    """SIGKILL leaves the writers no one to report to: each stops at its next sample, removes its
    temp file and exits, so no orphan holds the root or writes on; the rerun writes the same set."""
    import os
    import shutil

    work = tmp_path / "orphans"
    copy_tree(root, work)
    shutil.rmtree(work / "shards" / "commonvoice" / "webdataset")
    pids = tmp_path / "pids"
    pids.mkdir()
    argv = ["shards", "--root", str(work), "--corpus", "commonvoice", "--format", "webdataset", "--split", "all",
            "--shard-size", CV_SIZE, "--workers", "2"]
    proc = subprocess.Popen([sys.executable, "-c", STALLED_WRITERS, str(pids), *argv], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(list(pids.iterdir())) < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    writers = [int(p.name) for p in pids.iterdir()]
    assert len(writers) >= 3 and proc.pid not in writers  # the splits' children and their lanes
    killed = time.time()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 5  # a writer sees it at its next sample, 0.5 s away
    while any(os.path.exists(f"/proc/{pid}") and "Z" not in open(f"/proc/{pid}/stat").read().split()[2]
              for pid in writers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in writers if os.path.exists(f"/proc/{pid}")
                and "Z" not in open(f"/proc/{pid}/stat").read().split()[2]], "a writer outlived the command"
    # none began another sample after the kill: a writer past its check when the kill landed may finish
    # the sample it is in (noted after `killed`, however loaded the machine), never a second one
    assert max(sum(float(t) > killed for t in p.read_text().split()) for p in pids.iterdir()) <= 1
    assert not list((work / ".persian-data" / "tmp").glob("*.tmp"))  # each removed its half shard
    paths = SetPaths(Layout(work), "commonvoice", "webdataset", "train")
    assert not paths.index.exists() and not any(paths.folder.rglob("*.tar"))
    assert _shards(work, "commonvoice", "webdataset", "--split", "all", "--shard-size", CV_SIZE) == 0
    assert {k: v[2] for k, v in _set_files(paths).items()} == \
        {k: v[2] for k, v in _set_files(SetPaths(Layout(root), "commonvoice", "webdataset", "train")).items()}


# -- bad input -------------------------------------------------------------------------------------

@pytest.mark.parametrize("args,expected", [
    (["--corpus", "librispeech", "--format", "webdataset"], "--corpus 'librispeech' is not a speech corpus"),
    (["--corpus", "commonvoice", "--format", "tfrecord"], "--format 'tfrecord' is not a shard format"),
    (["--corpus", "commonvoice", "--format", "nemo", "--shard-size", "12XB"], "--shard-size '12XB' is not a size"),
    (["--corpus", "commonvoice", "--format", "nemo", "--shard-size", "0"], "--shard-size '0' is not a size"),
    (["--corpus", "commonvoice", "--format", "shar", "--split", "dev2"], "--split 'dev2' is not a split"),
])
def test_bad_input_is_one_line_and_exit_2(root, capsys, args, expected):
    capsys.readouterr()
    assert main(["shards", "--root", str(root), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and expected in err[0]


def test_an_unprepared_corpus_names_prepare_speech(tmp_path, capsys):
    assert main(["shards", "--root", str(tmp_path), "--corpus", "fleurs", "--format", "webdataset"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no fleurs train manifest" in err[0]
    assert f"persian-data prepare speech --root {tmp_path} --only fleurs" in err[0]
    assert not (tmp_path / ".persian-data").exists() and not (tmp_path / "shards").exists()


def test_a_no_extract_manifest_is_refused_clearly(root, tmp_path, capsys):
    import shutil

    work = tmp_path / "refs"
    copy_tree(root, work)
    shutil.rmtree(work / "shards" / "fleurs")  # they would be stale once the manifests change (a gate failure)
    assert main(["prepare", "speech", "--root", str(work), "--only", "fleurs", "--no-extract"]) == 0
    capsys.readouterr()
    assert _shards(work, "fleurs", "nemo") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "prepared with --no-extract" in err[0] and "without --no-extract" in err[0]


@pytest.mark.parametrize("fmt", ["shar", "webdataset"])
@pytest.mark.parametrize("field,value,expected", [
    ("sample_rate", 0, "sample_rate is 0, not a rate in Hz"),
    ("frames", "123600", "frames is a str, not a count of samples"),
    ("duration", None, "duration is a NoneType, not a number of seconds"),
    ("duration", -1.5, "duration is -1.5, not a number of seconds"),
    ("text", ["شماره من ۰۹۱۲۳۴۵۶۷۸۹"], "text is a list, not a string"),
])
def test_a_hand_edited_manifest_value_is_named_in_one_line(root, tmp_path, capsys, fmt, field, value, expected):
    """What prepare never writes (a zero rate, a number as a string, no duration, a text that is not
    a string) in any line, planned in C or not: one line naming the file, the line and the field,
    exit 1, and no words of the text in it (they may be personal)."""
    work = tmp_path / "edited"
    copy_tree(root, work)
    manifest = work / "datasets" / "speech" / "commonvoice_fa" / "manifests" / "test.jsonl"
    lines = manifest.read_text("utf-8").splitlines()
    line = json.loads(lines[1])
    line[field] = value
    lines[1] = json.dumps(line, ensure_ascii=False)
    manifest.write_text("\n".join(lines) + "\n", "utf-8")
    capsys.readouterr()
    assert _shards(work, "commonvoice", fmt, "--split", "test") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"test.jsonl:2: {expected}; run `persian-data prepare speech --only commonvoice`" in err[0]
    assert "Traceback" not in err[0] and "۰۹۱۲" not in err[0]
    log = (work / "logs" / "dataset_download.log").read_text("utf-8")
    assert expected in log and "۰۹۱۲" not in log


# -- the tar headers ---------------------------------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(name=st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), min_size=1, max_size=120),
       size=st.integers(0, 8 ** 11 + 5))
def test_tar_headers_are_tarfiles_own(name, size):
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.uname, info.gname = size, tarwrite.MTIME, tarwrite.MODE, "", ""
    fits = len(name.encode()) <= 100 and size < 8 ** 11
    expected = info.tobuf(tarfile.USTAR_FORMAT if fits else tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    assert tarwrite.header(name, size) == expected
    assert tarwrite.member_size(name, size) == len(expected) + size + (-size) % 512
    # a sample's members summed at once (the planner's fast sum): the same as member by member
    members = ((name, None), (name[:3] + ".json", b"{}" * (size % 700)))
    assert tarwrite.members_size(members, size) == sum(tarwrite.member_size(n, size if d is None else len(d))
                                                       for n, d in members)


@settings(max_examples=100, deadline=None)
@given(members=st.lists(st.tuples(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"),
                                          min_size=1, max_size=110), st.binary(max_size=1500)), max_size=6),
       capacity=st.sampled_from([512, 1024, 4096, 256 << 10]))
def test_tar_writer_writes_what_tarfile_reads(members, capacity):
    """The writer's headers built in its buffer (any fill, any capacity) are `header`'s bytes."""
    import tempfile

    with tempfile.TemporaryFile() as handle:
        writer = tarwrite.TarFileWriter(handle.fileno(), capacity=capacity)
        for name, data in members:
            writer.add(name, data)
        writer.close()
        handle.seek(0)
        written = handle.read()
    expected = b"".join(tarwrite.header(n, len(d)) + d + bytes(-len(d) % 512) for n, d in members)
    assert written[:len(expected)] == expected and len(written) == tarwrite.archive_size(len(expected))
    assert writer.sha256.hexdigest() == _sha(written)


@settings(max_examples=300, deadline=None)
@given(sizes=st.lists(st.integers(1, 5000), min_size=1, max_size=60), target=st.integers(1, 20000))
def test_shards_are_contiguous_even_and_within_one_sample_of_the_size(sizes, target):
    bounds = cut_by_size(sizes, target)
    assert bounds[0][0] == 0 and bounds[-1][1] == len(sizes)
    assert all(a < b for a, b in bounds) and all(b == c for (_, b), (c, _) in zip(bounds, bounds[1:]))
    total, count = sum(sizes), math.ceil(sum(sizes) / target)
    assert len(bounds) <= count
    if max(sizes) * count <= total:  # no sample larger than a shard's share: exactly that many shards
        assert len(bounds) == count
    for a, b in bounds:
        assert sum(sizes[a:b]) <= total / count + max(sizes)


def test_member_keys_have_no_dot_and_stay_distinct():
    ids = ["a.b", "a%2Eb", "a_b", "x/y.z", "plain"]
    keys = [member_key(i) for i in ids]
    assert len(set(keys)) == len(ids) and not any("." in k or "/" in k for k in keys)
    assert member_key("common_voice_fa_1") == "common_voice_fa_1"


# -- the C loop and the Python form write the same bytes -----------------------------------------

_NAMES = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), min_size=1, max_size=110)


@settings(max_examples=60, deadline=None)
@given(samples=st.lists(st.tuples(_NAMES, st.binary(max_size=700), st.integers(0, 3000),
                                  st.sampled_from(["trusted", "untrusted", "stat changed"]), st.booleans()),
                        min_size=1, max_size=12),
       capacity=st.sampled_from([512, 1024, 4096, 256 << 10]))
def test_the_c_loop_writes_what_the_python_form_writes(samples, capacity):
    """Any names (long ones go through PAX headers), JSON sizes, clip sizes, buffer capacities, and
    clips the C loop leaves to Python (not vouched for, changed since planned): the same archive
    and sha256 with and without the extension; a clip it could not vouch for is still checked."""
    import os
    import tempfile

    from persian_data.compiled import SPEEDUPS
    from persian_data.shards import write
    from persian_data.shards.samples import Sample

    assert SPEEDUPS is not None, "the C extension was not built (see setup.py)"
    folder = Path(tempfile.mkdtemp())
    layout = Layout(folder)
    planned = []
    for number, (name, data, size, state, json_first) in enumerate(samples):
        clip = folder / f"{number}.mp3"
        clip.write_bytes(os.urandom(size))
        st_ = clip.stat()
        stat = (st_.st_size, st_.st_mtime_ns, st_.st_ino + (state == "stat changed"))
        sample = Sample(f"{number}", str(clip), "mp3", _sha(clip.read_bytes()), 1.0, number, size, stat,
                        state == "trusted")
        audio = (f"{number}-{name}", None)
        sample.members = ((f"{name}.json", data), audio) if json_first else (audio, (f"{name}.json", data))
        planned.append(sample)

    def archive(fast: bool) -> tuple[bytes, str]:
        with tempfile.TemporaryFile() as handle:
            writer = tarwrite.TarFileWriter(handle.fileno(), capacity=capacity)
            if not fast:
                writer.add_samples = lambda samples, start, stop: start  # as without the extension
            write._write_samples(layout, writer, planned, lambda: False)
            writer.close()
            handle.seek(0)
            return handle.read(), writer.sha256.hexdigest()

    fast, slow = archive(True), archive(False)
    assert fast == slow and fast[1] == _sha(fast[0])
    with tarfile.open(fileobj=__import__("io").BytesIO(fast[0])) as tar:
        assert len(tar.getmembers()) == 2 * len(samples)


def test_the_c_loop_stops_between_runs_and_leaves_a_changed_clip_to_be_named(tmp_path):
    from persian_data.shards import write
    from persian_data.shards.errors import ShardsDataError
    from persian_data.shards.lanes import Stopped
    from persian_data.shards.samples import Sample

    planned = []
    for number in range(200):
        clip = tmp_path / f"{number}.mp3"
        clip.write_bytes(b"x" * 700)
        st_ = clip.stat()
        sample = Sample(str(number), str(clip), "mp3", "", 1.0, number, 700, (700, st_.st_mtime_ns, st_.st_ino), True)
        sample.members = ((f"{number}.mp3", None),)
        planned.append(sample)
    written = []
    with open(tmp_path / "out.tar", "wb") as handle:
        writer = tarwrite.TarFileWriter(handle.fileno())
        with pytest.raises(Stopped):
            write._write_samples(Layout(tmp_path), writer, planned, lambda: written.append(1) or len(written) > 2)
    assert len(written) == 3  # checked before each run of samples, not only once
    planned[150].size = 900  # planned (and vouched for) at another size than the file has now
    planned[150].stat = (900, *planned[150].stat[1:])
    with open(tmp_path / "out2.tar", "wb") as handle:
        writer = tarwrite.TarFileWriter(handle.fileno())
        with pytest.raises(ShardsDataError, match=r"150\.mp3: 700 bytes, 900 .*the clip changed after"):
            write._write_samples(Layout(tmp_path), writer, planned, lambda: False)


# -- the plan's loops in C (plan.shuffle, cut_by_size, formats.digest_tar): the Python form's results --

@settings(max_examples=300, deadline=None)
@given(sizes=st.lists(st.one_of(st.integers(0, 5000), st.integers(0, 2**60), st.just(0)), max_size=60),
       target=st.one_of(st.integers(1, 20000), st.integers(1, 2**62)))
def test_cut_points_are_cut_by_size_python_or_left_to_it(sizes, target):
    """Any sizes (zeros, a total or target past 2**53, where float division decides the count):
    the C cut is the Python form's, or None and the Python form runs (which then may raise)."""
    from persian_data.compiled import SPEEDUPS
    from persian_data.shards.plan import cut_by_size_python

    cut = SPEEDUPS.cut_points(sizes, target)
    try:
        expected = cut_by_size_python(sizes, target)
    except ZeroDivisionError:  # every size 0: the Python form's error, the C form leaves it
        assert cut is None
        return
    assert cut is None or cut == expected
    if sizes and sum(sizes) < 2**53 and target < 2**53 and sum(sizes) > 0:
        assert cut == expected  # the range the planner meets: always in C
    assert cut_by_size(sizes, target) == expected


@settings(max_examples=200, deadline=None)
@given(length=st.integers(0, 3000), seed=st.one_of(st.integers(0, 2**70), st.text(max_size=5)))
def test_the_c_shuffle_draws_what_random_shuffle_draws(length, seed):
    import random

    from persian_data.compiled import SPEEDUPS
    from persian_data.shards.plan import _c_shuffle_agrees, shuffle

    assert _c_shuffle_agrees()
    ours, theirs = list(range(length)), list(range(length))
    SPEEDUPS.shuffle(random.Random(seed).getrandbits, ours)
    random.Random(seed).shuffle(theirs)
    assert ours == theirs
    planned = list(range(length))
    shuffle(planned, seed)
    assert planned == theirs


_MEMBERS = st.lists(st.tuples(st.text(max_size=40), st.one_of(st.none(), st.binary(max_size=400))), max_size=3)


@settings(max_examples=150, deadline=None)
@given(samples=st.lists(st.tuples(_MEMBERS, st.integers(0, 2**70), st.text(max_size=70)), max_size=40),
       big=st.booleans(), surrogate=st.booleans())
def test_the_c_plan_digest_is_the_python_forms(samples, big, surrogate):
    """Any member names (surrogates included), JSON sizes (some past the C buffer), audio sizes
    (past 64 bits too) and sha256 strings: digest_tar gives what the Python records give, and a
    sample the C form cannot take leaves the whole digest to the Python form."""
    import hashlib

    from persian_data.compiled import SPEEDUPS
    from persian_data.shards import formats
    from persian_data.shards.samples import Sample

    planned = []
    for number, (members, size, sha) in enumerate(samples):
        sample = Sample(str(number), "/x.mp3", "mp3", sha, 1.0, number, size, (size, 0, 0))
        sample.members = tuple((name, data + b"j" * (300 << 10) if big and data and number == 1 else data)
                               for name, data in members)
        planned.append(sample)
    if surrogate and planned:  # a name that does not encode (the Python form raises)
        planned[-1].members += (("\udc80.json", b"{}"),)
    tar = formats.PlannedFile("shard.tar", planned)
    head = f"{formats.WRITER_VERSION}\0webdataset\0shard.tar\0".encode()
    try:
        records = formats.digest_records(planned)
    except UnicodeEncodeError:  # a name or sha256 with surrogates: the Python form's error either way
        with pytest.raises(UnicodeEncodeError):
            formats.digest_tar("webdataset", tar)
        assert not SPEEDUPS.digest_records(hashlib.sha256().update, planned)
        event("surrogates: left to the Python form")
        return
    assert formats.digest_tar("webdataset", tar) == hashlib.sha256(head + records).hexdigest()
    fits = all(s.size < 2**63 for s in planned if any(d is None for _, d in s.members))
    h = hashlib.sha256(head)
    assert SPEEDUPS.digest_records(h.update, planned) is fits
    event(f"in C: {fits}")
    if fits:
        assert h.hexdigest() == hashlib.sha256(head + records).hexdigest()
