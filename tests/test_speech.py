"""Speech preparation: manifests, byte-identical audio, checks, rejects, stats, gates, resumability.

The corpora are built here, small, in the real formats: Common Voice parquet shards with real MP3
bytes at 48 kHz in `audio.bytes`, FLEURS headerless TSVs with tar.gz archives of 16 kHz WAVs,
including the bad cases the stage must catch.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import logging
import os
import subprocess
import sys
import tarfile
from functools import lru_cache
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from persian_data.catalog import BY_KEY
from persian_data.gates import GateContext
from persian_data.layout import Layout
from persian_data.normalize import normalize
from persian_data.corpora import speech_parquet, speech_tsv_tar
from persian_data.prepare import speech
from persian_data.prepare.speech import SpeechOptions, SpeechPrepareError, prepare_speech, speech_gates

CV = BY_KEY["commonvoice"]
FL = BY_KEY["fleurs"]
ONE = SpeechOptions(workers=1)


# -- building small corpora -----------------------------------------------------------------------

def _tone(seconds: float, sr: int, freq: float):
    import numpy as np

    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype("float32")


@lru_cache(maxsize=None)
def mp3(seconds: float, freq: float = 220.0) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, _tone(seconds, 48_000, freq), 48_000, format="MP3")
    return buf.getvalue()


@lru_cache(maxsize=None)
def wav(seconds: float, freq: float = 330.0) -> tuple[bytes, int]:
    x = _tone(seconds, 16_000, freq)
    buf = io.BytesIO()
    sf.write(buf, x, 16_000, format="WAV", subtype="PCM_16")
    return buf.getvalue(), len(x)


CV_SCHEMA = pa.schema([("client_id", pa.string()), ("path", pa.string()),
                       ("audio", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
                       ("sentence", pa.string()), ("up_votes", pa.int64()), ("down_votes", pa.int64()),
                       ("age", pa.string()), ("gender", pa.string()), ("accent", pa.string()),
                       ("locale", pa.string()), ("segment", pa.string()), ("variant", pa.string())])
SENTENCES = ["سلام، حال شما چطور است؟", "ما مي خواهيم كتاب ها را بخوانيم", "امروز هوا خیلی سرد است.",
             "این \"نقل قول\" و یک خط\tتب است"]


def cv_rows(start: int, n: int, **overrides) -> list[dict]:
    rows = []
    for i in range(start, start + n):
        name = f"common_voice_fa_{1000 + i}.mp3"
        rows.append({"client_id": f"speaker{i % 3}", "path": name,
                     "audio": {"bytes": mp3(0.4 + 0.1 * (i % 3), 200.0 + 40 * (i % 5)), "path": name},
                     "sentence": SENTENCES[i % len(SENTENCES)], "up_votes": 2 + i % 3, "down_votes": i % 2,
                     "age": ["", "twenties", "thirties"][i % 3], "gender": ["male", "female", ""][i % 3],
                     "accent": "", "locale": "fa", "segment": "", "variant": ""})
    for index, changes in overrides.items():
        rows[int(index)].update(changes)
    return rows


def write_shard(path: Path, rows: list[dict], row_group_size: int = 2) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=CV_SCHEMA), path, row_group_size=row_group_size)


def build_cv(layout: Layout, *, bad: bool = True) -> Path:
    data = layout.content_dir(CV) / "data"
    write_shard(data / "train-00000-of-00002.parquet", cv_rows(0, 5))
    write_shard(data / "train-00001-of-00002.parquet", cv_rows(5, 4))
    overrides = {}
    if bad:
        overrides = {"1": {"audio": {"bytes": b"not audio at all" * 40, "path": "x"}},  # corrupt clip
                     "2": {"path": "common_voice_fa_1020.mp3"}}  # same id as row 0: duplicate
    write_shard(data / "validation-00000-of-00001.parquet", cv_rows(20, 4, **overrides))
    write_shard(data / "test-00000-of-00001.parquet", cv_rows(40, 3))
    (layout.content_dir(CV) / "README.md").write_text("---\n---\n")
    return data


def _add(tar: tarfile.TarFile, name: str, data: bytes = b"", **kw) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime = len(data), 1_700_000_000
    for k, v in kw.items():
        setattr(info, k, v)
    tar.addfile(info, io.BytesIO(data) if data else None)


@contextlib.contextmanager
def _targz(path: Path):
    """A .tar.gz whose gzip header holds no time: two roots built a second apart have the same
    bytes (their sha256 is recorded as an input in the outputs' provenance)."""
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w") as tar:
        yield tar


ABSOLUTE = "/tmp/persian-data-test-absolute-member.wav"


def fleurs_line(fid: int, name: str, text: str, frames: int, gender: str) -> str:
    return "\t".join([str(fid), name, text, text.rstrip(".؟"), "|".join(text.split()), str(frames), gender])


def build_fleurs(layout: Layout, *, bad: bool = True) -> Path:
    base = layout.content_dir(FL) / "data" / "fa_ir"
    (base / "audio").mkdir(parents=True)
    w1, n1 = wav(0.5, 300)
    w2, n2 = wav(0.7, 350)
    # train: a repeated FLEURS id (one per speaker), a row whose wav is missing, a wav with no
    # row, a num_samples mismatch and a corrupt wav.
    train = [fleurs_line(7, "1001.wav", "سلام دنيا.", n1, "MALE"),
             fleurs_line(7, "1002.wav", "سلام دنیا.", n2, "FEMALE"),
             fleurs_line(8, "1003.wav", "کتاب ها خوب است.", n1, "OTHER")]
    with _targz(base / "audio" / "train.tar.gz") as tar:
        _add(tar, "train", type=tarfile.DIRTYPE)
        _add(tar, "train/1001.wav", w1)
        _add(tar, "train/1002.wav", w2)
        _add(tar, "train/1003.wav", w1)
        if bad:
            _add(tar, "train/1005.wav", w1)  # orphan
            _add(tar, "train/1006.wav", w1)  # num_samples mismatch
            _add(tar, "train/1007.wav", b"RIFF....WAVEfmt garbage" * 10)  # corrupt
    if bad:
        train += [fleurs_line(9, "1004.wav", "بدون فایل", n1, "MALE"),  # missing wav
                  fleurs_line(10, "1006.wav", "اندازه غلط", n1 + 5, "MALE"),
                  fleurs_line(11, "1007.wav", "خراب", n1, "FEMALE")]
    (base / "train.tsv").write_text("\n".join(train) + "\n", "utf-8")
    # dev (published as validation): members trying to leave the corpus folder.
    dev = [fleurs_line(20, "2001.wav", "روز خوب.", n1, "FEMALE"), fleurs_line(21, "2002.wav", "شب خوب.", n2, "MALE")]
    with _targz(base / "audio" / "dev.tar.gz") as tar:
        _add(tar, "dev/2001.wav", w1)
        if bad:
            _add(tar, "../escape.wav", w1)
            _add(tar, "dev/../../escape2.wav", w1)
            _add(tar, ABSOLUTE, w1)
            _add(tar, "dev/2002.wav", type=tarfile.SYMTYPE, linkname="/etc/passwd")
            _add(tar, "dev/hard.wav", type=tarfile.LNKTYPE, linkname="dev/2001.wav")
            _add(tar, "dev/dev0.wav", type=tarfile.CHRTYPE, devmajor=1, devminor=3)
            _add(tar, "dev/fifo.wav", type=tarfile.FIFOTYPE)
            _add(tar, "dev/sub/2003.wav", w1)
            _add(tar, "train/2004.wav", w1)
            _add(tar, "dev/2001.wav", w2)  # repeated member
        else:
            _add(tar, "dev/2002.wav", w2)
    (base / "dev.tsv").write_text("\n".join(dev) + "\n", "utf-8")
    test = [fleurs_line(30, "3001.wav", "آزمون.", n2, "MALE")]
    with _targz(base / "audio" / "test.tar.gz") as tar:
        _add(tar, "test/3001.wav", w2)
    (base / "test.tsv").write_text("\n".join(test) + "\n", "utf-8")
    return base


@pytest.fixture
def layout(tmp_path) -> Layout:
    layout = Layout(tmp_path / "root")
    build_cv(layout)
    build_fleurs(layout)
    return layout


def tree(root: Path, under: str = "datasets") -> dict[str, str]:
    """Root-relative path -> sha256 of every file (and link) under `under`."""
    out = {}
    for path in sorted((root / under).rglob("*")):
        if path.is_symlink():
            out[path.relative_to(root).as_posix()] = "link"
        elif path.is_file():
            out[path.relative_to(root).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def lines(path: Path) -> list[dict]:
    return [orjson.loads(x) for x in path.read_bytes().splitlines() if x.strip()]


def source_bytes(layout: Layout) -> dict[str, bytes]:
    """Clip file name -> bytes, straight from the parquet shards and tars."""
    out = {}
    for path in layout.content_dir(CV).rglob("*.parquet"):
        for row in pq.read_table(path).to_pylist():
            out.setdefault(row["path"], row["audio"]["bytes"])
    for path in layout.content_dir(FL).rglob("*.tar.gz"):
        with tarfile.open(path) as tar:
            for m in tar.getmembers():
                if m.isreg() and m.name.count("/") == 1 and ".." not in m.name:
                    out.setdefault(m.name.split("/")[1], tar.extractfile(m).read())
    return out


# -- tests ------------------------------------------------------------------------------------------

def test_manifests_audio_byte_identical_and_sources_untouched(layout):
    before = tree(layout.root)
    originals = source_bytes(layout)
    stats = prepare_speech(layout, options=ONE)
    after = tree(layout.root)
    for path, digest in before.items():  # parquet, TSV and tar files exactly as they were
        assert after[path] == digest
    assert set(stats) == {"commonvoice", "fleurs"}
    for source in (CV, FL):
        assert sorted(p.name for p in layout.manifests_dir(source).glob("*.jsonl")) == \
            ["rejects.jsonl", "test.jsonl", "train.jsonl", "validation.jsonl"]
        for split in ("train", "validation", "test"):
            for line in lines(layout.manifest(source, split)):
                audio = layout.root / line["audio_path"]
                assert audio.parent == layout.audio_dir(source, split)
                data = audio.read_bytes()
                assert data == originals[audio.name]
                assert hashlib.sha256(data).hexdigest() == line["sha256"]
                info = sf.info(str(audio))
                assert line["frames"] == info.frames and line["sample_rate"] == info.samplerate
                assert line["channels"] == 1 and line["duration"] == round(info.frames / info.samplerate, 6) > 0
                assert line["text_normalized"] == normalize(line["text"])
    assert not layout.audio_dir(FL, "dev").exists()  # dev is published as validation


def test_manifest_line_format(layout):
    prepare_speech(layout, options=ONE)
    raw = layout.manifest(CV, "train").read_bytes()
    assert "سلام".encode() in raw and b"\\u06" not in raw  # UTF-8, unescaped
    first = lines(layout.manifest(CV, "train"))[0]
    assert list(first) == ["id", "split", "audio_path", "duration", "frames", "sample_rate", "channels", "sha256",
                           "text", "text_normalized", "client_id", "path", "up_votes", "down_votes", "age",
                           "gender", "accent", "locale", "segment", "variant"]
    assert first["id"] == "common_voice_fa_1000" and first["split"] == "train"
    assert first["audio_path"] == "datasets/speech/commonvoice_fa/audio/train/common_voice_fa_1000.mp3"
    assert first["sample_rate"] == 48_000 and first["text"] == SENTENCES[0] and first["up_votes"] == 2
    train = lines(layout.manifest(CV, "train"))
    assert [ln["id"] for ln in train] == [f"common_voice_fa_{1000 + i}" for i in range(9)]  # source order
    fl = lines(layout.manifest(FL, "train"))
    assert list(fl[0]) == ["id", "split", "audio_path", "duration", "frames", "sample_rate", "channels", "sha256",
                           "text", "text_normalized", "fleurs_id", "path", "raw_transcription", "transcription",
                           "num_samples", "gender"]
    # the same FLEURS id twice (one recording per speaker) gives two clips
    assert [(ln["fleurs_id"], ln["id"]) for ln in fl] == [(7, "1001"), (7, "1002"), (8, "1003")]
    assert fl[0]["text"] == "سلام دنيا." and fl[0]["text_normalized"] == normalize("سلام دنيا.")
    assert fl[0]["num_samples"] == fl[0]["frames"] and fl[0]["sample_rate"] == 16_000
    assert {ln["split"] for ln in lines(layout.manifest(FL, "validation"))} == {"validation"}


def test_rejects_and_hostile_members_never_written(layout):
    prepare_speech(layout, options=ONE)
    cv = lines(layout.speech_rejects(CV))
    assert [(r["split"], r["reason"], r["row"]) for r in cv] == [("validation", "unreadable", 1),
                                                                 ("validation", "duplicate_id", 2)]
    assert cv[0]["source"] == "datasets/speech/commonvoice_fa/data/data/validation-00000-of-00001.parquet"
    fl = lines(layout.speech_rejects(FL))
    by_reason = {}
    for r in fl:
        by_reason.setdefault(r["reason"], []).append(r.get("member") or r["id"])
    assert by_reason["missing_wav"] == ["1004", "2002"]
    assert by_reason["orphan_wav"] == ["train/1005.wav"]
    assert by_reason["num_samples_mismatch"] == ["train/1006.wav"]
    assert by_reason["unreadable"] == ["train/1007.wav"]
    assert sorted(by_reason["unsafe_member"]) == sorted(["../escape.wav", "dev/../../escape2.wav", ABSOLUTE])
    assert sorted(by_reason["link_member"]) == ["dev/2002.wav", "dev/hard.wav"]
    assert sorted(by_reason["device_member"]) == ["dev/dev0.wav", "dev/fifo.wav"]
    assert sorted(by_reason["unexpected_member"]) == ["dev/sub/2003.wav", "train/2004.wav"]
    assert by_reason["duplicate_member"] == ["dev/2001.wav"]
    # the symlink's TSV row has no regular wav, so that row is rejected too
    assert {r["id"] for r in fl if r["reason"] == "missing_wav" and r["split"] == "validation"} == {"2002"}
    kinds = {r["reason"]: r["kind"] for r in fl}
    assert kinds["orphan_wav"] == "member" and kinds["missing_wav"] == "row" and kinds["unreadable"] == "row"
    # nothing escaped: no file outside the expected places, no links, nothing next to the root
    assert not Path(ABSOLUTE).exists() and not (layout.root.parent / "escape.wav").exists()
    assert not (layout.root / "datasets" / "speech" / "escape.wav").exists()
    files = tree(layout.root)
    assert "link" not in files.values()
    assert sorted(Path(p).name for p in files if "/fleurs_fa/audio/" in p) == \
        ["1001.wav", "1002.wav", "1003.wav", "2001.wav", "3001.wav"]
    valid = lines(layout.manifest(FL, "validation"))
    assert [ln["id"] for ln in valid] == ["2001"]
    assert (layout.audio_dir(FL, "validation") / "2001.wav").read_bytes() == wav(0.5, 300)[0]  # first member wins


def test_stats_json_and_log(layout, caplog):
    caplog.set_level(logging.INFO, logger="persian_data.prepare.speech")
    stats = prepare_speech(layout, options=ONE)
    on_disk = json.loads(layout.speech_stats(CV).read_text("utf-8"))
    assert on_disk == stats["commonvoice"].to_json()
    train = on_disk["splits"]["train"]
    assert train["clips"] == 9 and train["source_rows"] == 9 and train["speakers"] == 3
    assert train["gender"] == {"female": 3, "male": 3, "unknown": 3}
    assert train["hours"] == round(train["seconds"] / 3600, 4) and train["seconds"] > 0
    assert on_disk["splits"]["validation"]["rejects"] == {"duplicate_id": 1, "unreadable": 1}
    assert on_disk["total"]["clips"] == 9 + 2 + 3 and on_disk["total"]["speakers"] == 3
    assert on_disk["rejects_by_reason"] == {"duplicate_id": 1, "unreadable": 1}
    fl = json.loads(layout.speech_stats(FL).read_text("utf-8"))
    assert fl["split_names"] == {"dev": "validation"} and fl["splits"]["train"]["speakers"] is None
    assert fl["splits"]["train"]["gender"] == {"female": 1, "male": 1, "other": 1}
    assert fl["splits"]["validation"]["rejected_rows"] == 1
    assert fl["rejects_by_reason"]["unsafe_member"] == 3
    text = caplog.text
    assert "commonvoice_fa/train: 9 clip(s)" in text and "commonvoice_fa total: 14 clip(s)" in text
    assert "fleurs_fa total: 5 clip(s)" in text and "unsafe_member" in text


def test_gates_pass_then_catch_tampering(layout):
    prepare_speech(layout, options=ONE)
    assert speech_gates(layout) == []
    assert speech_gates(GateContext(layout, [CV, FL], None, thorough=True)) == []
    victim = layout.audio_dir(CV, "train") / "common_voice_fa_1003.mp3"
    victim.write_bytes(victim.read_bytes()[:-1] + b"\x00")
    gone = layout.audio_dir(FL, "test") / "3001.wav"
    gone.unlink()
    stray = layout.audio_dir(CV, "test") / "extra.mp3"
    stray.write_bytes(b"x")
    failures = [str(f) for f in speech_gates(layout)]
    assert any("common_voice_fa_1003.mp3" in f and "sha256" in f for f in failures)
    assert any("3001.wav" in f and "missing" in f for f in failures)
    assert any("extra.mp3" in f for f in failures)
    assert len(failures) == 3
    # a manifest line dropped: the count no longer adds up
    manifest = layout.manifest(CV, "validation")
    manifest.write_bytes(b"".join(manifest.read_bytes().splitlines(keepends=True)[1:]))
    failures = [str(f) for f in speech_gates(GateContext(layout, [CV], None, thorough=True))]
    assert any("validation.jsonl" in f and "expected" in f for f in failures)


def test_gates_only_for_present_corpora(tmp_path):
    layout = Layout(tmp_path / "root")
    assert speech_gates(layout) == []
    build_cv(layout)
    notes = speech_gates(layout)  # fetched but not prepared: a note, not a failure (`fetch` alone is fine)
    assert [type(n).__name__ for n in notes] == ["GateNote"] and "prepare speech" in notes[0].message
    prepare_speech(layout, options=ONE)
    layout.manifest(CV, "test").unlink()  # prepared, then a manifest lost: a failure
    failures = speech_gates(layout)
    assert len(failures) == 1 and "test.jsonl" in failures[0].path and "prepare speech" in failures[0].reason


def test_gate_uses_hash_cache_unless_thorough(layout):
    from persian_data.integrity import HashCache

    prepare_speech(layout, options=ONE)
    cache = HashCache(layout.hash_cache, layout.root)
    assert speech_gates(GateContext(layout, [CV], cache, thorough=False)) == []
    victim = layout.audio_dir(CV, "test") / "common_voice_fa_1040.mp3"
    st = victim.stat()
    data = bytearray(victim.read_bytes())
    data[-1] ^= 1
    victim.write_bytes(bytes(data))
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size and mtime
    thorough = speech_gates(GateContext(layout, [CV], cache, thorough=True))
    assert len(thorough) == 1 and "sha256" in thorough[0].reason


def test_nemo_and_lhotse_exports(layout):
    lhotse = pytest.importorskip("lhotse")
    from lhotse.qa import validate_recordings_and_supervisions

    prepare_speech(layout, options=ONE)
    exports = layout.speech_exports_dir(CV)
    nemo = exports / "nemo" / "train.json"
    entries = [json.loads(x) for x in nemo.read_text("utf-8").splitlines()]
    manifest = lines(layout.manifest(CV, "train"))
    assert len(entries) == len(manifest)
    for entry, line in zip(entries, manifest):
        assert set(entry) == {"audio_filepath", "duration", "text"}
        assert not os.path.isabs(entry["audio_filepath"])
        assert (nemo.parent / entry["audio_filepath"]).resolve() == (layout.root / line["audio_path"]).resolve()
        assert entry["duration"] == line["duration"] and entry["text"] == line["text_normalized"]
    for source in (CV, FL):
        for split in ("train", "validation", "test"):
            folder = layout.speech_exports_dir(source) / "lhotse"
            recs = lhotse.load_manifest(folder / f"{source.folder}_recordings_{split}.jsonl.gz")
            sups = lhotse.load_manifest(folder / f"{source.folder}_supervisions_{split}.jsonl.gz")
            assert isinstance(recs, lhotse.RecordingSet) and isinstance(sups, lhotse.SupervisionSet)
            validate_recordings_and_supervisions(recs, sups)
            assert len(recs) == len(lines(layout.manifest(source, split)))
    recs = lhotse.load_manifest(layout.speech_exports_dir(FL) / "lhotse" / "fleurs_fa_recordings_train.jsonl.gz")
    rec = recs["1001"]
    assert rec.sampling_rate == 16_000 and rec.num_samples == wav(0.5, 300)[1]
    audio = rec.load_audio()
    assert audio.shape == (1, rec.num_samples)
    sups = lhotse.load_manifest(layout.speech_exports_dir(CV) / "lhotse" / "commonvoice_fa_supervisions_train.jsonl.gz")
    sup = sups["common_voice_fa_1001"]
    assert sup.speaker == "speaker1" and sup.gender == "female" and sup.language == "fa"
    assert sup.custom["text_original"] == SENTENCES[1] and sup.text == normalize(SENTENCES[1])
    # gzip output is deterministic (mtime 0): a rerun does not rewrite it
    gz = layout.speech_exports_dir(CV) / "lhotse" / "commonvoice_fa_recordings_train.jsonl.gz"
    assert gzip.decompress(gz.read_bytes())
    mtime = gz.stat().st_mtime_ns
    prepare_speech(layout, options=ONE)
    assert gz.stat().st_mtime_ns == mtime


def test_exports_streamed_by_workers_equal_those_rebuilt_from_the_manifest(layout):
    """The parent streams each split's exports from the workers' lines (compressing as units come
    back); a kept split's are rebuilt from its manifest. Both give the same bytes, so redoing a
    split with unchanged content leaves its export files (and their mtimes) alone."""
    from persian_data.prepare import speech_export

    prepare_speech(layout, [CV], options=SpeechOptions(workers=2))
    nemo = speech_export.nemo_path(layout, CV, "train")
    rec, sup = speech_export.lhotse_paths(layout, CV, "train")
    lines = speech_export.export_lines(layout, CV, "train", ("nemo", "lhotse"))
    assert nemo.read_bytes() == lines.nemo and lines.nemo.count(b"\n") > 1
    assert rec.read_bytes() == speech_export._gzip(lines.recordings)
    assert sup.read_bytes() == speech_export._gzip(lines.supervisions)
    before = {p: p.stat().st_mtime_ns for p in (nemo, rec, sup)}
    speech._marker_path(layout, CV, "train").unlink()  # the split is prepared again
    prepare_speech(layout, [CV], options=SpeechOptions(workers=2))
    assert speech._marker_path(layout, CV, "train").exists()
    assert {p: p.stat().st_mtime_ns for p in (nemo, rec, sup)} == before
    assert not any((layout.staging_dir / "speech").rglob("*.gz"))  # nothing staged is left behind


def test_load_hf_dataset(layout, monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    prepare_speech(layout, options=ONE)
    ds = speech.load_hf_dataset(layout.root, "fleurs", "dev")  # dev is accepted for validation
    assert isinstance(ds, datasets.Dataset) and isinstance(ds.features["audio"], datasets.Audio)
    assert list(ds["id"]) == ["2001"] and list(ds["fleurs_id"]) == [20]
    cv = speech.load_hf_dataset(layout, "commonvoice", "train")
    assert cv.num_rows == 9 and isinstance(cv.features["audio"], datasets.Audio)
    assert list(cv["id"]) == [f"common_voice_fa_{1000 + i}" for i in range(9)]
    assert "client_id" in cv.column_names and "text_normalized" in cv.column_names
    raw = cv.cast_column("audio", datasets.Audio(decode=False))
    for row in raw:
        audio = row["audio"]
        data = audio["bytes"] or Path(audio["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row["sha256"]
    # datasets 4+ decodes with torchcodec, which needs FFmpeg (CI installs it): a failure is a failure
    sample = cv[0]["audio"]
    if isinstance(sample, dict):  # datasets < 4: a numpy array
        samples, rate = sample["array"].shape[-1], sample["sampling_rate"]
    else:
        decoded = sample.get_all_samples()
        samples, rate = decoded.data.shape[-1], decoded.sample_rate
    assert (samples, rate) == (cv[0]["frames"], cv[0]["sample_rate"])  # the clip, whole, at its own rate


def test_load_hf_dataset_needs_the_extra(layout, monkeypatch):
    from persian_data.errors import ExtraMissingError

    prepare_speech(layout, [FL], ONE)
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(ExtraMissingError, match="speech"):
        speech.load_hf_dataset(layout.root, "fleurs", "test")


def test_no_extract_keeps_references(layout, monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    extracted = Layout(layout.root.parent / "extracted")
    build_cv(extracted)
    build_fleurs(extracted)
    prepare_speech(extracted, options=ONE)
    prepare_speech(layout, options=SpeechOptions(extract=False, workers=1))
    originals = source_bytes(layout)
    for source in (CV, FL):
        assert not (layout.bucket_root(source) / "audio").exists()
        assert not layout.speech_exports_dir(source).exists()
        for split in ("train", "validation", "test"):
            refs = lines(layout.manifest(source, split))
            full = lines(extracted.manifest(source, split))
            assert [r["sha256"] for r in refs] == [f["sha256"] for f in full]
            assert [r["duration"] for r in refs] == [f["duration"] for f in full]
            for r in refs:
                assert (layout.root / r["audio_path"]).is_file()
                assert r["audio_path"].endswith((".parquet", ".tar.gz"))
                assert set(r["audio_ref"]) == ({"row"} if source is CV else {"member"})
    ref = lines(layout.manifest(FL, "validation"))[0]
    assert ref["audio_path"].endswith("fa_ir/audio/dev.tar.gz") and ref["audio_ref"] == {"member": "dev/2001.wav"}
    assert speech_gates(layout) == []
    ds = speech.load_hf_dataset(layout.root, "commonvoice", "validation")
    raw = ds.cast_column("audio", datasets.Audio(decode=False))
    for row in raw:
        assert row["audio"]["bytes"] == originals[row["path"]]
    # switching back to extraction re-does every split and writes the audio
    prepare_speech(layout, options=ONE)
    assert tree(layout.root, "datasets/speech/commonvoice_fa/audio") == \
        tree(extracted.root, "datasets/speech/commonvoice_fa/audio")
    assert speech_gates(layout) == []


def test_deep_decodes_every_frame(tmp_path):
    layout = Layout(tmp_path / "root")
    build_cv(layout, bad=False)
    good = mp3(1.0, 250)
    truncated = good[: len(good) // 2]  # the header still announces every frame
    data = layout.content_dir(CV) / "data"
    write_shard(data / "test-00000-of-00001.parquet",
                cv_rows(40, 3, **{"1": {"audio": {"bytes": truncated, "path": "t"}}}))
    prepare_speech(layout, [CV], ONE)
    assert len(lines(layout.manifest(CV, "test"))) == 3  # the header check cannot see it
    prepare_speech(layout, [CV], SpeechOptions(deep=True, workers=1))
    assert [ln["id"] for ln in lines(layout.manifest(CV, "test"))] == ["common_voice_fa_1040", "common_voice_fa_1042"]
    rejects = lines(layout.speech_rejects(CV))
    assert [(r["reason"], r["id"]) for r in rejects] == [("short_decode", "common_voice_fa_1041")]
    assert speech_gates(layout) == []
    # a deep result also satisfies a later default run: nothing is redone
    marker = speech._marker_path(layout, CV, "test").read_bytes()
    prepare_speech(layout, [CV], ONE)
    assert speech._marker_path(layout, CV, "test").read_bytes() == marker


def test_probe_reasons():
    with pytest.raises(speech.Reject) as info:
        speech.probe(b"\x00" * 100)
    assert info.value.reason == "unreadable"
    data, frames = wav(0.25)
    empty = io.BytesIO()
    sf.write(empty, _tone(0.0, 16_000, 100), 16_000, format="WAV", subtype="PCM_16")
    with pytest.raises(speech.Reject) as info:
        speech.probe(empty.getvalue())
    assert info.value.reason == "zero_duration"
    assert speech.probe(data) == speech.Probe(frames, 16_000, 1)
    assert speech.probe(data, deep=True) == speech.Probe(frames, 16_000, 1)
    assert speech.probe(mp3(0.5)).sample_rate == 48_000


def test_rerun_skips_finished_splits(layout, monkeypatch):
    prepare_speech(layout, options=ONE)
    first = tree(layout.root)
    mtimes = {p: (layout.root / p).stat().st_mtime_ns for p in first}

    def boom(*a, **k):
        raise AssertionError("a finished split was redone")

    monkeypatch.setattr(speech_parquet, "run_unit", boom)
    monkeypatch.setattr(speech_tsv_tar, "run_unit", boom)
    prepare_speech(layout, options=ONE)
    assert tree(layout.root) == first
    assert {p: (layout.root / p).stat().st_mtime_ns for p in first} == mtimes  # not even rewritten


def test_changed_source_redoes_only_its_split(layout, monkeypatch):
    prepare_speech(layout, options=ONE)
    shard = layout.content_dir(CV) / "data" / "test-00000-of-00001.parquet"
    write_shard(shard, cv_rows(40, 2))
    calls = []
    real = speech_parquet.run_unit
    monkeypatch.setattr(speech_parquet, "run_unit", lambda args, ctx: calls.append(ctx.split) or real(args, ctx))
    prepare_speech(layout, [CV], ONE)
    assert set(calls) == {"test"}
    assert len(lines(layout.manifest(CV, "test"))) == 2
    assert sorted(p.name for p in layout.audio_dir(CV, "test").iterdir()) == \
        ["common_voice_fa_1040.mp3", "common_voice_fa_1041.mp3"]
    assert speech_gates(layout) == []


def test_interrupted_run_resumes_and_matches_a_clean_run(layout, tmp_path, monkeypatch):
    clean = Layout(tmp_path / "clean")
    build_cv(clean)
    build_fleurs(clean)
    prepare_speech(clean, options=ONE)

    real = speech.Collector.clip
    seen = {"n": 0}

    def dying(self, **kw):
        if self.ctx.split == "validation" and self.ctx.corpus == "commonvoice_fa":
            seen["n"] += 1
            if seen["n"] == 2:
                raise KeyboardInterrupt  # halfway through a split, after a clip was written
        return real(self, **kw)

    monkeypatch.setattr(speech.Collector, "clip", dying)
    with pytest.raises(KeyboardInterrupt):
        prepare_speech(layout, options=ONE)
    # train was published whole; validation left nothing behind in the layout
    assert len(lines(layout.manifest(CV, "train"))) == 9
    assert not layout.manifest(CV, "validation").exists()
    assert not layout.audio_dir(CV, "validation").exists()
    monkeypatch.setattr(speech.Collector, "clip", real)
    calls = []
    real_unit = speech_parquet.run_unit
    monkeypatch.setattr(speech_parquet, "run_unit", lambda args, ctx: calls.append(ctx.split) or real_unit(args, ctx))
    prepare_speech(layout, options=ONE)
    assert "train" not in calls and "validation" in calls
    assert_same_outputs(layout, clean)
    assert speech_gates(layout) == []
    assert not (layout.staging_dir / "speech").exists()
    assert not layout.tmp_dir.exists() or not list(layout.tmp_dir.iterdir())


KILL_SCRIPT = """
import os, signal, sys
from persian_data.layout import Layout
from persian_data.prepare import speech
from persian_data.prepare.speech import SpeechOptions, prepare_speech
real = speech.Collector.clip
def dying(self, **kw):
    if self.ctx.split == "test":
        os.kill(os.getpid(), signal.SIGKILL)
    return real(self, **kw)
speech.Collector.clip = dying
prepare_speech(Layout(sys.argv[1]), options=SpeechOptions(workers=1))
"""


def test_killed_run_leaves_no_partial_file(layout, tmp_path):
    clean = Layout(tmp_path / "clean")
    build_cv(clean)
    build_fleurs(clean)
    prepare_speech(clean, options=ONE)
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(layout.root)], capture_output=True)
    assert proc.returncode == -9
    partial = tree(layout.root)
    outputs = {p: d for p, d in partial.items() if "/data/" not in p}
    assert outputs  # train and validation were published before the kill
    for path, digest in outputs.items():  # whatever is in the layout is complete and final
        assert clean_tree_has(clean, path, digest, layout), path
    assert not layout.manifest(CV, "test").exists() and not layout.audio_dir(CV, "test").exists()
    assert (layout.staging_dir / "speech").exists()  # the killed split's staging, outside datasets/
    prepare_speech(layout, options=ONE)
    assert_same_outputs(layout, clean)
    assert not (layout.staging_dir / "speech").exists()
    assert speech_gates(layout) == []


def assert_same_outputs(a: Layout, b: Layout) -> None:
    """Same files with the same bytes (lhotse exports hold absolute paths, so only their names)."""
    ta = {k: v for k, v in tree(a.root).items() if "/data/" not in k}  # sources: gzip headers differ
    tb = {k: v for k, v in tree(b.root).items() if "/data/" not in k}
    assert sorted(ta) == sorted(tb)
    assert {k: v for k, v in ta.items() if "/exports/lhotse/" not in k} == \
        {k: v for k, v in tb.items() if "/exports/lhotse/" not in k}


def clean_tree_has(clean: Layout, path: str, digest: str, partial: Layout | None = None) -> bool:
    """The clean run has this file with these bytes (lhotse exports: the same lines but for the root)."""
    other = clean.root / path
    if not other.exists():
        return False
    if partial is not None and "/exports/lhotse/" in path:
        mine = gzip.decompress((partial.root / path).read_bytes()).replace(str(partial.root).encode(), b"ROOT")
        return mine == gzip.decompress(other.read_bytes()).replace(str(clean.root).encode(), b"ROOT")
    return hashlib.sha256(other.read_bytes()).hexdigest() == digest


def test_parallel_equals_sequential(layout, tmp_path):
    other = Layout(tmp_path / "other")
    build_cv(other)
    build_fleurs(other)
    commonvoice_rows = speech_parquet.ROWS_PER_UNIT
    try:
        speech_parquet.ROWS_PER_UNIT = 2  # several units per shard, so the pool really splits the work
        prepare_speech(layout, options=SpeechOptions(workers=2))
    finally:
        speech_parquet.ROWS_PER_UNIT = commonvoice_rows
    prepare_speech(other, options=ONE)
    assert_same_outputs(layout, other)


def test_fleurs_tsv_without_tar_is_an_error(tmp_path):
    layout = Layout(tmp_path / "root")
    base = build_fleurs(layout, bad=False)
    (base / "audio" / "test.tar.gz").unlink()
    with pytest.raises(SpeechPrepareError, match="test.tar.gz"):
        prepare_speech(layout, [FL], ONE)


def test_missing_sources(tmp_path):
    layout = Layout(tmp_path / "root")
    assert prepare_speech(layout) == {}  # nothing fetched: nothing to do
    with pytest.raises(SpeechPrepareError, match="fetch it first"):
        prepare_speech(layout, [CV])
    with pytest.raises(ValueError, match="unknown speech export"):
        prepare_speech(layout, options=SpeechOptions(exports=("kaldi",)))


def test_on_the_replicas(tmp_path):
    from persian_data.corpora import commonvoice
    from support.replicas import TINY, fleurs_repo

    layout = Layout(tmp_path / "root")
    for source, files in ((CV, commonvoice.commonvoice_repo(TINY)), (FL, fleurs_repo(TINY))):
        for rel, data in files.items():
            target = layout.content_dir(source) / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    stats = prepare_speech(layout, options=ONE)
    assert stats["commonvoice"].total["clips"] > 0 and stats["fleurs"].total["clips"] > 0
    assert speech_gates(layout) == []
    # nothing temporary left anywhere (the stage's temp folders are in .persian-data/, not root/tmp)
    temporary = (layout.relative(layout.tmp_dir) + "/", layout.relative(layout.staging_dir) + "/")
    assert [p for p in tree(layout.root, ".") if p.startswith(temporary) or p.endswith((".tmp", ".part"))] == []
    assert sorted(p.name for p in layout.root.iterdir()) == [".persian-data", "datasets"]
    for path in tree(layout.root):
        assert path.startswith(("datasets/speech/commonvoice_fa/", "datasets/speech/fleurs_fa/"))


def test_rerun_repairs_a_split_whose_audio_folder_changed(layout):
    prepare_speech(layout, [CV], ONE)
    victim = layout.audio_dir(CV, "test") / "common_voice_fa_1041.mp3"
    victim.unlink()
    assert any("missing" in f.reason for f in speech_gates(GateContext(layout, [CV])))
    prepare_speech(layout, [CV], ONE)  # the marker no longer matches the folder: the split is redone
    assert victim.exists() and speech_gates(GateContext(layout, [CV])) == []


def test_gate_refuses_audio_paths_outside_the_split_folder(layout):
    prepare_speech(layout, [CV], ONE)
    manifest = layout.manifest(CV, "test")
    rows = lines(manifest)
    rows[0]["audio_path"] = "datasets/speech/commonvoice_fa/data/README.md"
    manifest.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    failures = speech_gates(GateContext(layout, [CV]))
    assert any("is not in datasets/speech/commonvoice_fa/audio/test/" in f.reason for f in failures)


def test_damaged_shard_fails_cleanly_in_the_pool(layout):
    shard = layout.content_dir(CV) / "data" / "test-00000-of-00001.parquet"
    audio = pq.ParquetFile(shard).metadata.row_group(1).column(2)  # plan-time reads survive (path column)
    data = bytearray(shard.read_bytes())
    data[audio.data_page_offset: audio.data_page_offset + 64] = b"\xff" * 64
    shard.write_bytes(bytes(data))
    with pytest.raises(SpeechPrepareError, match="test-00000-of-00001.parquet: cannot read row groups.*fetch it again"):
        prepare_speech(layout, [CV], SpeechOptions(workers=2))
    assert not layout.manifest(CV, "test").exists() and not layout.audio_dir(CV, "test").exists()
    assert not (layout.staging_dir / "speech").exists()
    assert not list((layout.root / "datasets").rglob("*.tmp"))
    data[8:2008] = os.urandom(2000)  # now the plan cannot read it either
    shard.write_bytes(bytes(data))
    with pytest.raises(SpeechPrepareError, match="test-00000-of-00001.parquet.*fetch it again"):
        prepare_speech(layout, [CV], SpeechOptions(workers=2))


def test_truncated_fleurs_tar_fails_cleanly(layout):
    tar = layout.content_dir(FL) / "data" / "fa_ir" / "audio" / "train.tar.gz"
    tar.write_bytes(tar.read_bytes()[: tar.stat().st_size // 2])
    with pytest.raises(SpeechPrepareError, match="train.tar.gz.*fetch it again"):
        prepare_speech(layout, [FL], ONE)
    assert not layout.manifest(FL, "train").exists() and not layout.audio_dir(FL, "train").exists()
    assert not (layout.staging_dir / "speech").exists()
