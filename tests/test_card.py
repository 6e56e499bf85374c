"""`persian-data card`: figures equal the records, plots valid and linked, identical on regeneration,
partial roots, and the HTML in headless Chromium (no console errors, not blank)."""

from __future__ import annotations

import json
import re
import shutil
import statistics
import struct
import subprocess
from pathlib import Path

import orjson
import pytest
import yaml

from persian_data.catalog import CATALOG
from persian_data.cli import main
from persian_data.layout import Layout

STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


@pytest.fixture(scope="module")
def carded(tmp_path_factory, hub):
    """A root after `run` (which writes a card without loading voices), then `persian-data card`."""
    root = tmp_path_factory.mktemp("card-root")
    assert main(["run", "--root", str(root), "--endpoint", hub.endpoint]) == 0
    assert (root / "card/CARD.md").is_file()  # the run wrote one
    assert main(["card", "--root", str(root)]) == 0
    return root


def front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("\n---\n", 1)[0][4:])


def tables(text: str) -> dict[str, list[dict[str, str]]]:
    """Every table of CARD.md by the heading just before it: a list of rows {header: cell}."""
    found, heading, lines = {}, None, text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        elif line.startswith("| ") and i + 1 < len(lines) and lines[i + 1].startswith("|---"):
            headers = [c.strip() for c in line.strip("|").split(" | ")]
            rows, i = [], i + 2
            while i < len(lines) and lines[i].startswith("| "):
                rows.append(dict(zip(headers, (c.strip() for c in lines[i].strip()[2:-2].split(" | ")))))
                i += 1
            found[heading] = rows
            continue
        i += 1
    return found


def number(cell: str) -> float | None:
    return None if cell == "—" else float(cell)


def manifest_rows(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def test_front_matter_and_sources_equal_the_lock_and_counts(carded):
    text = (carded / "card/CARD.md").read_text("utf-8")
    meta = front_matter(text)
    lock = orjson.loads((carded / "checksums/persian-data.lock.json").read_bytes())["sources"]
    counts = orjson.loads((carded / "logs/dataset_sources.json").read_bytes())
    assert meta["language"] == ["fa"]
    assert set(meta["task_categories"]) == {"text-generation", "automatic-speech-recognition", "text-to-speech"}
    assert meta["license"] == sorted({s.license.split()[0] for s in CATALOG})
    for source in CATALOG:
        entry = meta["sources"][source.key]
        assert entry["revision"] == lock[source.key]["revision"]
        assert entry["files"] == len(lock[source.key]["files"])
        assert entry["bytes"] == sum(f["size"] for f in lock[source.key]["files"].values())
        assert entry["count"] == counts[source.count_key]
        assert entry["present"] is True
    rows = {r["source"]: r for r in tables(text)["sources"]}
    checksum_lines = (carded / "checksums/datasets.sha256.txt").read_text().splitlines()
    for source in CATALOG:
        folder = Layout(carded).relative(Layout(carded).bucket_root(source)) + "/"
        assert rows[source.key]["commit"] == f"`{lock[source.key]['revision']}`"
        assert int(rows[source.key]["counted files"]) == counts[source.count_key]
        assert int(rows[source.key]["checksum lines"]) == sum(1 for line in checksum_lines if folder in line)
    records = {r["record"]: r["value"] for r in tables(text)["records"]}
    assert int(records["checksum lines"]) == len(checksum_lines)
    assert records["last line"] == f"`{checksum_lines[-1]}`"


def test_speech_tables_equal_stats_and_manifests(carded):
    text = (carded / "card/CARD.md").read_text("utf-8")
    found = tables(text)
    for source in (s for s in CATALOG if s.bucket == "speech"):
        layout = Layout(carded)
        stats = orjson.loads(layout.speech_stats(source).read_bytes())
        splits = {r["split"]: r for r in found[f"{source.key}: splits"]}
        for split, figures in [*stats["splits"].items(), ("total", stats["total"])]:
            for column in ("source_rows", "clips", "hours", "seconds", "speakers", "rejected_rows"):
                expected = figures[column]
                assert number(splits[split][column]) == (None if expected is None else pytest.approx(expected)), (
                    source.key, split, column)
            gender = {r["split"]: r for r in found[f"{source.key}: gender"]}[split]
            for label, count in figures["gender"].items():
                assert int(gender[label]) == count
        reasons = stats["rejects_by_reason"]
        assert reasons, "the replicas carry broken clips: rejects must show"
        rejects = {r["split"]: r for r in found[f"{source.key}: rejects by reason"]}
        for reason, count in reasons.items():
            assert int(rejects["total"][reason]) == count
        durations = {r["split"]: r for r in found[f"{source.key}: clip duration (seconds, from the manifests)"]}
        words = {r["split"]: r for r in found[f"{source.key}: words per transcript (from the manifests)"]}
        for split in stats["splits"]:
            rows = manifest_rows(layout.manifest(source, split))
            values = [r["duration"] for r in rows]
            assert int(durations[split]["clips"]) == len(rows) == stats["splits"][split]["clips"]
            assert number(durations[split]["max"]) == pytest.approx(max(values))
            assert number(durations[split]["median"]) == pytest.approx(round(statistics.median(values), 3))
            counts = [len(r["text_normalized"].split()) for r in rows]
            assert number(words[split]["mean"]) == pytest.approx(round(sum(counts) / len(counts), 3))
            if source.key == "commonvoice":
                speakers = {r["split"]: r for r in found["commonvoice: clips per speaker (from the manifests)"]}
                assert int(speakers[split]["speakers"]) == len({r["client_id"] for r in rows}) \
                    == stats["splits"][split]["speakers"]
                ages = {r["split"]: r for r in found["commonvoice: age (from the manifests)"]}[split]
                for age in {r["age"] for r in rows if r["age"]}:
                    assert int(ages[age]) == sum(1 for r in rows if r["age"] == age)


def test_chat_tables_hold_every_counter_of_the_stats(carded):
    text = (carded / "card/CARD.md").read_text("utf-8")
    found = tables(text)
    stats = orjson.loads(Layout(carded).chat_stats().read_bytes())
    totals = {r["figure"]: r["value"] for r in found["text: totals"]}
    for key, value in stats.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            assert number(totals[key]) == value
    assert stats["skipped"], "the replica has malformed rows"
    for name in ("skipped", "characters"):
        rows = {r["key"]: int(r["count"]) for r in found[f"text: {name}"]}
        assert rows == stats[name]
    turns = {r["role"]: r for r in found["text: turn lengths (characters, from combined.jsonl)"]}
    conversations = manifest_rows(Layout(carded).chat_combined())
    users = [len(m["content"]) for c in conversations for m in c["messages"] if m["role"] == "user"]
    assert int(turns["user"]["turns"]) == len(users) == stats["written"]
    assert number(turns["user"]["max"]) == max(users)
    assert stats["options"]["system_prompt"] in text


def test_plots_exist_are_valid_pngs_and_are_linked(carded):
    card = carded / "card"
    text = (card / "CARD.md").read_text("utf-8")
    html = (card / "card.html").read_text("utf-8")
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", text)
    pngs = sorted(p.name for p in card.glob("*.png"))
    assert sorted(set(linked)) == pngs
    for expected in ("speech-commonvoice-splits.png", "speech-commonvoice-durations.png",
                     "speech-commonvoice-speakers.png", "speech-commonvoice-age.png", "speech-fleurs-gender.png",
                     "speech-fleurs-words.png", "speech-fleurs-rejects.png", "text-outcomes.png",
                     "text-turn-lengths.png"):
        assert expected in pngs
    import base64

    for name in pngs:
        data = (card / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", name
        width, height = struct.unpack(">II", data[16:24])
        assert 300 <= width <= 3000 and 200 <= height <= 3000, (name, width, height)
        assert base64.b64encode(data).decode() in html  # embedded, self-contained
    assert "<img src=\"data:image/png;base64," in html and "src=\"http" not in html
    assert 'dir="rtl" lang="fa"' in html


def test_spectrograms_when_the_tts_extra_is_installed(carded, voice_assets):
    text = (carded / "card/CARD.md").read_text("utf-8")
    tts = {r["voice"]: r for key in ("tts-female", "tts-male") for r in tables(text)[f"{key}: voice"]}
    for voice in ("female", "male"):
        config = json.loads((carded / f"datasets/tts/kamtera_vits_{voice}/model/config.json").read_text())
        assert int(tts[voice]["sample rate"]) == config["audio"]["sample_rate"]
        assert int(tts[voice]["symbols (model_args.num_chars)"]) == config["model_args"]["num_chars"]
    if voice_assets is None:
        assert "Spectrogram skipped" in text
    else:
        assert (carded / "card/tts-female-spectrogram.png").is_file()
        assert (carded / "card/tts-male-spectrogram.png").is_file()


def test_regenerates_identically_except_the_timestamp(carded):
    card = carded / "card"
    before = {p.name: p.read_bytes() for p in card.iterdir()}
    assert main(["card", "--root", str(carded)]) == 0
    after = {p.name: p.read_bytes() for p in card.iterdir()}
    assert sorted(before) == sorted(after)
    for name in before:
        a, b = before[name], after[name]
        if name.endswith((".md", ".html")):
            a, b = STAMP.sub("T", a.decode()), STAMP.sub("T", b.decode())
        assert a == b, name
    # the card is outside datasets/: counts and checksums are those of the data only
    assert "card/" not in (carded / "checksums/datasets.sha256.txt").read_text()


def test_partial_root_marks_absent_buckets(tmp_path, hub):
    root = tmp_path / "root"
    assert main(["run", "--root", str(root), "--endpoint", hub.endpoint, "--only", "text"]) == 0
    assert main(["card", "--root", str(root), "--no-synth"]) == 0
    text = (root / "card/CARD.md").read_text("utf-8")
    meta = front_matter(text)
    assert meta["sources"]["text"]["present"] is True
    for key in ("commonvoice", "fleurs", "tts-female", "tts-male"):
        assert meta["sources"][key]["present"] is False
        assert {r["source"]: r for r in tables(text)["sources"]}[key]["state"] == "absent"
    assert text.count("**absent**") >= 4
    assert meta["task_categories"] == ["text-generation"]
    assert not list((root / "card").glob("speech-*.png")) and (root / "card/text-outcomes.png").is_file()
    # nothing at all: a folder that is not a root yet still gets a card saying so
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["card", "--root", str(empty), "--no-synth"]) == 0
    assert all(not s["present"] for s in front_matter((empty / "card/CARD.md").read_text("utf-8"))["sources"].values())


def test_a_card_failure_is_logged_and_does_not_change_the_verdict(carded, hub, monkeypatch, capsys):
    import persian_data.card.build as build

    def broken(root, *sources):
        raise RuntimeError("plot backend exploded")

    monkeypatch.setattr(build, "collect", broken)
    assert main(["run", "--root", str(carded), "--endpoint", hub.endpoint]) == 0
    err = capsys.readouterr().err
    assert "card: not written (RuntimeError: plot backend exploded)" in err
    log = (carded / "logs/dataset_download.log").read_text("utf-8")
    assert log.rstrip().endswith("===== end of summary =====")


def test_a_broken_stats_file_is_a_clear_error(tmp_path, capsys):
    stats = tmp_path / "datasets/text/persian_conversation/combined.stats.json"
    stats.parent.mkdir(parents=True)
    stats.write_text("{not json")
    assert main(["card", "--root", str(tmp_path), "--no-synth"]) == 1
    assert "combined.stats.json is not valid JSON" in capsys.readouterr().err


# -- the HTML in a real browser ------------------------------------------------------------------

def chromium(html: Path, screenshot: Path, tmp: Path) -> str:
    binary = shutil.which("chromium") or "/usr/bin/chromium"
    assert Path(binary).exists(), "Chromium is missing (.ci/run installs Debian's chromium)"
    done = subprocess.run(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp}", "--enable-logging=stderr", "--v=0", "--window-size=1200,2400",
         f"--screenshot={screenshot}", html.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stderr


def console_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


def test_html_opens_in_headless_chromium_without_console_errors(carded, tmp_path):
    shot = tmp_path / "card.png"
    stderr = chromium(carded / "card/card.html", shot, tmp_path / "profile")
    assert console_lines(stderr) == []
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[0] >= 1000 and pixels.shape[1] >= 1000
    ink = (pixels[..., :3].mean(axis=2) < 0.9).mean()  # share of non-white pixels
    assert ink > 0.02, ink
    # the check itself can see a console error (a page that logs one)
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><body><p>x</p><script>console.error("broken card")</script></body></html>')
    assert any("broken card" in line for line in console_lines(chromium(bad, tmp_path / "bad.png",
                                                                       tmp_path / "profile2")))


def test_unknown_and_missing_stats_keys_are_shown_generically(tmp_path):
    """Stats of a newer chat stage (PII, drops by reason, normalizer rules) and an older one
    without most keys: every counter appears by name; nothing crashes."""
    chat = Layout(tmp_path).chat_dir()
    chat.mkdir(parents=True)
    stats = {"written": 40, "pii": {"found": {"PHONE": 3, "EMAIL": 1}, "masked": {"PHONE": 3}},
             "dropped": {"non_answer": 2, "near_duplicate": 5, "not_persian": 1},
             "normalizer": {"arabic_yeh": 7, "zwnj": 2}, "near_duplicates": {"examples": [["a", "b"]]},
             "files": [{"file": "x.json"}], "options": {"pii": "mask"}}
    Layout(tmp_path).chat_stats().write_text(json.dumps(stats))
    assert main(["card", "--root", str(tmp_path), "--no-synth"]) == 0
    text = (tmp_path / "card/CARD.md").read_text("utf-8")
    found = tables(text)
    assert {r["key"]: int(r["count"]) for r in found["text: pii.found"]} == {"PHONE": 3, "EMAIL": 1}
    assert {r["key"]: int(r["count"]) for r in found["text: pii.masked"]} == {"PHONE": 3}
    assert {r["key"]: int(r["count"]) for r in found["text: dropped"]} == stats["dropped"]
    assert {r["key"]: int(r["count"]) for r in found["text: normalizer"]} == stats["normalizer"]
    assert (tmp_path / "card/text-normalizer.png").is_file() and "(text-normalizer.png)" in text
    assert "**absent**: `datasets/text/persian_conversation/combined.jsonl` is missing" in text
