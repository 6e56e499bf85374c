"""Speech, issue 10: every clip is hashed once, while it is written; that digest feeds the manifest,
the hash cache, the checksum file and the gates. A clip changed behind the tool's back is still
caught, and `verify` re-reads every clip whatever the cache says."""

from __future__ import annotations

import os
from pathlib import Path

import orjson

from persian_data import integrity
from persian_data.catalog import BY_KEY
from persian_data.cli import main
from persian_data.integrity import HashCache
from persian_data.layout import Layout
from persian_data.prepare.speech import SpeechOptions, prepare_speech

CV = BY_KEY["commonvoice"]


def _fetched(tmp_path: Path, hub, name: str) -> Path:
    root = tmp_path / name
    assert main(["fetch", "--root", str(root), "--endpoint", hub.endpoint, "--only", "commonvoice"]) == 0
    return root


def _manifest_lines(layout: Layout) -> list[dict]:
    return [orjson.loads(line) for path in sorted(layout.manifests_dir(CV).glob("*.jsonl"))
            if path.name != "rejects.jsonl" for line in path.read_bytes().splitlines()]


def _tamper(clip: Path, keep_mtime: bool) -> None:
    """Same size, different bytes; the mtime moved on, or put back as it was."""
    st = clip.stat()
    data = bytearray(clip.read_bytes())
    data[len(data) // 2] ^= 0xFF
    with open(clip, "r+b") as handle:  # in place: same inode
        handle.write(bytes(data))
    os.utime(clip, ns=(st.st_atime_ns, st.st_mtime_ns if keep_mtime else st.st_mtime_ns + 1_000_000))


def test_the_stage_hands_every_file_it_places_to_the_cache(tmp_path, hub, monkeypatch):
    root = _fetched(tmp_path, hub, "placed")
    layout = Layout(root)
    cache = HashCache(layout.hash_cache, layout.root)
    hashed: list[str] = []
    real = integrity.hash_file
    monkeypatch.setattr(integrity, "hash_file", lambda path, *a, **k: hashed.append(str(path)) or real(path, *a, **k))
    prepare_speech(layout, [CV], SpeechOptions(workers=1), cache=cache)
    assert hashed == []  # nothing was read back to be hashed
    lines = _manifest_lines(layout)
    assert lines
    for line in lines:  # each clip is known by the sha256 that its manifest line carries
        assert cache.lookup(root / line["audio_path"]).sha256 == line["sha256"]
    placed = [p for p in (root / "datasets/speech/commonvoice_fa").rglob("*")
              if p.is_file() and "/data/" not in p.as_posix() and p.name != "README.source.md"]
    assert any(p.suffix == ".gz" for p in placed) and any(p.name == "stats.json" for p in placed)
    for path in placed:  # manifests, rejects, stats, exports and clips, each with the digest of its bytes
        assert cache.lookup(path).sha256 == integrity.hash_file(path).sha256, path


def test_prepare_speech_command_reads_no_clip_twice(tmp_path, hub):
    root = _fetched(tmp_path, hub, "once")
    assert main(["prepare", "speech", "--root", str(root)]) == 0
    log = Layout(root).download_log.read_text("utf-8")
    assert ", 0 hashed now" in log


def test_a_clip_changed_after_the_stage_fails_the_next_prepare(tmp_path, hub, capsys):
    root = _fetched(tmp_path, hub, "changed")
    assert main(["prepare", "speech", "--root", str(root)]) == 0
    clip = sorted((root / "datasets/speech/commonvoice_fa/audio/train").iterdir())[1]
    _tamper(clip, keep_mtime=False)
    capsys.readouterr()
    assert main(["prepare", "speech", "--root", str(root)]) == 1  # the split is kept; the gates look again
    err = capsys.readouterr().err
    assert f"FAIL [speech] datasets/speech/commonvoice_fa/audio/train/{clip.name}: sha256" in err


def test_verify_rehashes_clips_the_cache_would_trust(tmp_path, hub, capsys):
    """The clip is changed with its size and mtime put back, so the cache still vouches for it:
    only a full re-read finds it, and `verify` does one."""
    root = _fetched(tmp_path, hub, "verify")
    assert main(["prepare", "speech", "--root", str(root)]) == 0
    clip = sorted((root / "datasets/speech/commonvoice_fa/audio/test").iterdir())[0]
    _tamper(clip, keep_mtime=True)
    capsys.readouterr()
    assert main(["verify", "--root", str(root), "--only", "commonvoice"]) == 1
    err = capsys.readouterr().err
    assert clip.name in err and "sha256" in err


def _gate_after_records(layout: Layout) -> list:
    """The speech and checksums gates as the end of a run calls them: after the records step, with its listing."""
    import hashlib

    from persian_data.gates import GateContext, checksums_gate
    from persian_data.prepare.speech_gates import speech_gates
    from persian_data.records import write_checksums

    cache = HashCache(layout.hash_cache, layout.root)
    known: dict[str, str] = {}
    lines = write_checksums(layout, cache, known=known)
    ctx = GateContext(layout, [CV], cache, known=known,
                      checksums_sha256=hashlib.sha256("".join(lines).encode()).hexdigest())
    return [str(f) for f in speech_gates(ctx) + checksums_gate(ctx)]


def test_gates_after_the_stage_trust_the_listing_not_a_reparse_and_still_see_changes(tmp_path, hub, monkeypatch):
    """After `prepare speech`, the speech gate proves each split from the records' listing and the
    stage's marker (no manifest parsed, no checksum line compared); a stray file, an edited
    manifest or a changed clip drops it back to the full check, which names the problem."""
    from persian_data.prepare import speech_gates as sg

    root = _fetched(tmp_path, hub, "listing")
    layout = Layout(root)
    assert main(["prepare", "speech", "--root", str(root), "--only", "commonvoice"]) == 0
    parsed: list[str] = []
    real = sg.iter_manifest
    monkeypatch.setattr(sg, "iter_manifest", lambda path: parsed.append(Path(path).name) or real(path))
    assert _gate_after_records(layout) == []
    assert parsed == []  # every split proven from the listing
    # verify parses every manifest (and re-reads every clip)
    assert main(["verify", "--root", str(root), "--only", "commonvoice"]) == 0
    assert sorted(set(parsed)) == ["test.jsonl", "train.jsonl", "validation.jsonl"]

    audio = layout.audio_dir(CV, "train")
    (audio / "stray.mp3").write_bytes(b"")  # empty: not a data file, so not in the listing
    parsed.clear()
    failures = _gate_after_records(layout)
    assert parsed == ["train.jsonl"] and any("stray.mp3" in f and "not in" in f for f in failures), failures
    (audio / "stray.mp3").unlink()

    clip = sorted(audio.iterdir())[0]
    _tamper(clip, keep_mtime=False)
    parsed.clear()
    failures = _gate_after_records(layout)
    assert parsed == ["train.jsonl"] and any(clip.name in f and "sha256" in f for f in failures), failures

    manifest = layout.manifest(CV, "test")
    data = manifest.read_bytes()
    first = orjson.loads(data.splitlines()[0])
    edited = data.replace(first["sha256"].encode(), b"0" * 64, 1)  # same size, one line's hash wrong
    manifest.write_bytes(edited)
    parsed.clear()
    failures = _gate_after_records(layout)
    assert "test.jsonl" in parsed and any(first["audio_path"] in f and "manifest says" in f for f in failures), failures


def test_checksums_gate_trusts_only_the_bytes_the_records_step_wrote(tmp_path, hub):
    import hashlib

    from persian_data.gates import GateContext, checksums_gate
    from persian_data.records import write_checksums

    root = _fetched(tmp_path, hub, "sums")
    layout = Layout(root)
    cache = HashCache(layout.hash_cache, layout.root)
    known: dict[str, str] = {}
    text = "".join(write_checksums(layout, cache, known=known))
    ctx = GateContext(layout, [CV], cache, known=known, checksums_sha256=hashlib.sha256(text.encode()).hexdigest())
    assert checksums_gate(ctx) == []
    digest, _, rel = text.splitlines()[0].partition("  ")
    layout.checksums_file.write_text(text.replace(digest, "f" * 64, 1), "utf-8")  # edited after the records step
    failures = [str(f) for f in checksums_gate(ctx)]
    assert len(failures) == 1 and rel in failures[0] and "f" * 64 in failures[0], failures
