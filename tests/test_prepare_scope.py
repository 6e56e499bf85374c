"""`prepare` works on what is there and judges only what it touched; stages hand their hashes to
the records and gates (one pass over the bytes), and a file changed behind the tool's back is
still caught."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from persian_data import integrity
from persian_data.cli import main
from persian_data.layout import Layout


def _fetch(root: Path, hub, only: str) -> None:
    assert main(["fetch", "--root", str(root), "--endpoint", hub.endpoint, "--only", only]) == 0


def _summary_gate_line(root: Path) -> str:
    log = (root / "logs" / "dataset_download.log").read_text("utf-8")
    block = log.rsplit("===== persian-data summary", 1)[1]
    return [line.strip() for line in block.splitlines() if "gates" in line and ("PASS" in line or "FAIL" in line)][-1]


def test_prepare_speech_on_a_root_with_only_common_voice(tmp_path, hub, capsys):
    root = tmp_path / "cv-only"
    _fetch(root, hub, "commonvoice")
    capsys.readouterr()
    assert main(["prepare", "speech", "--root", str(root)]) == 0
    err = capsys.readouterr().err
    assert "fleurs is not fetched" in err
    layout = Layout(root)
    assert (root / "datasets/speech/commonvoice_fa/manifests/test.jsonl").is_file()
    assert not (root / "datasets/speech/fleurs_fa/manifests").exists()
    line = _summary_gate_line(root)
    assert line.startswith("PASS") and "for commonvoice " in line
    assert "not checked" in line and "fleurs" in line.split("not checked")[0]
    assert "FAIL" not in layout.download_log.read_text("utf-8").rsplit("summary", 1)[1]


def test_prepare_speech_naming_a_missing_source_fails_clearly(tmp_path, hub, capsys):
    root = tmp_path / "cv-only-named"
    _fetch(root, hub, "commonvoice")
    capsys.readouterr()
    code = main(["prepare", "speech", "--root", str(root), "--only", "fleurs"])
    err = capsys.readouterr().err
    assert code != 0
    assert "fleurs" in err and "fetch" in err


def test_prepare_text_on_a_root_with_only_the_text(tmp_path, hub, capsys):
    root = tmp_path / "text-only"
    _fetch(root, hub, "text")
    capsys.readouterr()
    assert main(["prepare", "text", "--root", str(root)]) == 0
    err = capsys.readouterr().err
    assert "FAIL" not in err, err
    line = _summary_gate_line(root)
    assert line.startswith("PASS: gates") and "for text " in line
    for other in ("commonvoice", "fleurs", "tts-female", "tts-male"):
        assert other in line.split("partial run:")[1]
    assert "tts" not in line.split(" for ")[0]  # the voice gate was not run


def test_stage_outputs_are_not_read_again_by_records_and_gates(tmp_path, hub, monkeypatch):
    """After `prepare`, every file a stage wrote is known to the hash cache by the hash taken while
    it was written: records and gates hash none of them."""
    root = tmp_path / "once"
    assert main(["fetch", "--root", str(root), "--endpoint", hub.endpoint, "--only", "text,speech"]) == 0
    hashed: list[str] = []
    real = integrity.hash_file

    def counting(path, *args, **kwargs):
        hashed.append(Path(path).as_posix())
        return real(path, *args, **kwargs)

    monkeypatch.setattr(integrity, "hash_file", counting)
    monkeypatch.setattr("persian_data.gates.hash_file", counting)
    assert main(["prepare", "all", "--root", str(root)]) == 0
    written_by_stages = [p for p in hashed if "/data/" not in p and "/model/" not in p]
    assert written_by_stages == [], written_by_stages[:5]
    log = Layout(root).download_log.read_text("utf-8")
    assert ", 0 hashed now" in log


def test_a_clip_changed_behind_the_tools_back_is_caught(tmp_path, hub, capsys):
    root = tmp_path / "tamper"
    assert main(["fetch", "--root", str(root), "--endpoint", hub.endpoint, "--only", "commonvoice"]) == 0
    assert main(["prepare", "speech", "--root", str(root)]) == 0
    clip = sorted((root / "datasets/speech/commonvoice_fa/audio/test").iterdir())[0]
    data = bytearray(clip.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, different bytes
    st = clip.stat()
    clip.write_bytes(bytes(data))
    os.utime(clip, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    capsys.readouterr()
    assert main(["verify", "--root", str(root), "--only", "commonvoice", "--quick"]) == 1
    err = capsys.readouterr().err
    assert clip.name in err and "sha256" in err


def test_verify_rehashes_everything(tmp_path, hub, monkeypatch):
    root = tmp_path / "verify"
    assert main(["fetch", "--root", str(root), "--endpoint", hub.endpoint, "--only", "text"]) == 0
    assert main(["prepare", "text", "--root", str(root)]) == 0
    hashed: set[str] = set()
    real = integrity.hash_file

    def counting(path, *args, **kwargs):
        hashed.add(Layout(root).relative(Path(path)))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(integrity, "hash_file", counting)
    monkeypatch.setattr("persian_data.gates.hash_file", counting)
    assert main(["verify", "--root", str(root), "--only", "text"]) == 0
    listed = {line.split("  ", 1)[1] for line in
              (root / "checksums/datasets.sha256.txt").read_text("utf-8").splitlines()}
    assert listed and listed <= hashed


def test_combined_jsonl_changed_behind_the_tools_back_is_caught(tmp_path, hub, capsys):
    """The chat gate trusts the hash the stage took while writing only while the file is unchanged."""
    root = tmp_path / "tamper-chat"
    assert main(["fetch", "--root", str(root), "--endpoint", hub.endpoint, "--only", "text"]) == 0
    assert main(["prepare", "text", "--root", str(root)]) == 0
    combined = Layout(root).chat_combined()
    data = combined.read_bytes()
    swapped = data.replace("ی".encode(), "ک".encode(), 1)  # same size, different bytes, still valid JSON
    assert swapped != data and len(swapped) == len(data)
    st = combined.stat()
    combined.write_bytes(swapped)
    os.utime(combined, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    capsys.readouterr()
    assert main(["verify", "--root", str(root), "--only", "text", "--quick"]) == 1
    err = capsys.readouterr().err
    assert "combined.jsonl" in err and "changed since" in err
