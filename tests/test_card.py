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


DRAWN: dict = {}  # what `persian-data card` drew in `carded`: figures by title, warnings, log records


def figure_facts(fig) -> dict:
    """What a drawn figure shows, read back from matplotlib just after savefig laid it out."""
    renderer = fig.canvas.get_renderer()
    axes = []
    for ax in fig.axes:
        ticks = [t for t in (*ax.get_xticklabels(which="both"), *ax.get_yticklabels(which="both"))
                 if t.get_text() and t.get_window_extent(renderer).overlaps(fig.bbox)]  # the ones drawn
        axes.append({
            "title": ax.get_title(), "title_left": ax.get_title(loc="left"), "scales": (ax.get_xscale(), ax.get_yscale()),
            "xlabel": ax.get_xlabel(), "ylabel": ax.get_ylabel(),
            "ticks": [t.get_text() for t in ticks],
            "lines": [line.get_label() for line in ax.get_lines()],
            "bars": [(p.get_width(), p.get_height()) for p in ax.patches],
            "area": ax.get_window_extent(renderer),
            "labels": [t.get_window_extent(renderer) for t in (ax.xaxis.label, ax.yaxis.label, *ticks)],
        })
    legends = [leg.get_window_extent(renderer) for leg in (*fig.legends, *(a.get_legend() for a in fig.axes)) if leg]
    title = fig.get_suptitle() or fig.axes[0].get_title()
    return {"title": title.split("\n")[0], "axes": axes, "legends": legends}


@pytest.fixture(scope="module")
def carded(tmp_path_factory, hub):
    """A root after `run` (which writes a card without loading voices), then `persian-data card`,
    whose figures, warnings and log records are kept in DRAWN."""
    import logging
    import warnings

    import persian_data.card.plots as plots

    root = tmp_path_factory.mktemp("card-root")
    assert main(["run", "--root", str(root), "--endpoint", hub.endpoint]) == 0
    assert (root / "card/CARD.md").is_file()  # the run wrote one
    close, figures, records = plots.plt.close, {}, []

    def keep(fig):  # plots close each figure right after saving it: read it back then
        facts = figure_facts(fig)
        figures[facts["title"]] = facts
        close(fig)

    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logging.getLogger("matplotlib").addHandler(handler)
    try:
        with pytest.MonkeyPatch.context() as patch, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            patch.setattr(plots.plt, "close", keep)
            assert main(["card", "--root", str(root)]) == 0
    finally:
        logging.getLogger("matplotlib").removeHandler(handler)
    DRAWN.update(figures=figures, warnings=[str(w.message) for w in caught],
                 log=[r.getMessage() for r in records])
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
    tts = {}
    for key in ("tts-female", "tts-male"):
        fields = {r["field"]: r["value"] for r in tables(text)[f"{key}: voice"]}
        tts[fields["voice"]] = fields
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


# -- what the page and the plots show ------------------------------------------------------------

def test_html_shows_links_not_markdown(carded):
    html = (carded / "card/card.html").read_text("utf-8")
    body = html.split("</details>", 1)[1]  # after the front matter's <pre>
    assert "](" not in body and "**" not in body and "`" not in body
    pngs = sorted(p.name for p in (carded / "card").glob("*.png"))
    assert pngs
    for name in pngs:  # the plots table links every file beside the page
        assert f'<td><a href="{name}">{name}</a></td>' in body


PROBE = """<script>
function rect(root, needle) {  // where `needle` is drawn: [left, right] of its first occurrence
  const walk = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  for (let node = walk.nextNode(); node; node = walk.nextNode()) {
    const at = node.data.indexOf(needle);
    if (at >= 0) {
      const range = document.createRange();
      range.setStart(node, at);
      range.setEnd(node, at + needle.length);
      const box = range.getBoundingClientRect();
      return [box.left, box.right];
    }
  }
  return null;
}
const captions = [...document.querySelectorAll("p")].filter(p => p.textContent.startsWith("Spectrogram of the"));
document.body.setAttribute("data-probe", JSON.stringify({
  width: innerWidth, page: document.documentElement.scrollWidth,
  tables: [...document.querySelectorAll("table")].map(t => ({
    title: t.previousElementSibling ? t.previousElementSibling.textContent : "",
    scroll: t.scrollWidth, client: t.clientWidth, right: t.getBoundingClientRect().right})),
  captions: captions.map(p => ({direction: getComputedStyle(p).direction, english: rect(p, "Spectrogram"),
                                first: rect(p, "سلام"), last: rect(p, "صداست")}))}));
</script>"""


def test_page_at_1280_px_tables_fit_and_captions_read_in_order(carded, voice_assets, tmp_path):
    """In Chromium, 1280 px wide: no table is wider than its box or the window, and the
    spectrogram caption reads English left to right, then the Persian sentence right to left."""
    import html as htmllib

    page = tmp_path / "card.html"
    page.write_text((carded / "card/card.html").read_text("utf-8").replace("</body>", PROBE + "</body>"), "utf-8")
    binary = shutil.which("chromium") or "/usr/bin/chromium"
    done = subprocess.run(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
         "--window-size=1280,4000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    probe = json.loads(htmllib.unescape(re.search(r'data-probe="([^"]*)"', done.stdout).group(1)))
    assert probe["width"] == 1280
    assert probe["page"] <= 1280
    assert len(probe["tables"]) > 20
    for table in probe["tables"]:
        assert table["scroll"] <= table["client"] + 1 and table["right"] <= 1280, table
    assert len(probe["captions"]) == (0 if voice_assets is None else 2)
    for caption in probe["captions"]:
        assert caption["direction"] == "ltr", caption
        english, first, last = caption["english"], caption["first"], caption["last"]
        assert english[1] < first[0] and english[1] < last[0], caption  # English, then the Persian
        assert first[0] > last[1], caption  # the Persian's first word is drawn rightmost


def test_plot_labels_are_plain_text_in_the_chosen_fonts(carded):
    """No missing glyph: every tick label (log axes included) is plain text whose characters the
    card's fonts have; matplotlib reported no glyph it had to substitute."""
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    from persian_data.card.persian_text import font_families

    troubles = [m for m in DRAWN["log"] + DRAWN["warnings"] if "glyph" in m.lower()]
    assert troubles == []
    have = set()
    for family in font_families():
        have |= set(FT2Font(font_manager.findfont(family, fallback_to_default=False)).get_charmap())
    figures = DRAWN["figures"]
    logs = [(t, i) for t, f in figures.items() for ax in f["axes"] for i, scale in enumerate(ax["scales"])
            if scale == "log"]
    assert len(logs) >= 3, logs  # turn lengths' x and both axes of the speakers chart
    for title, facts in figures.items():
        for ax in facts["axes"]:
            for label in ax["ticks"]:
                assert "$" not in label, (title, label)  # no mathtext: it draws in one font, no fallback
                assert all(ord(c) in have for c in label), (title, label)


def test_no_legend_covers_the_data_or_the_labels(carded):
    with_legend = {t: f for t, f in DRAWN["figures"].items() if f["legends"]}
    assert any(t.startswith("fleurs: hours and clips per split") for t in with_legend)
    for title, facts in with_legend.items():
        for legend in facts["legends"]:
            for ax in facts["axes"]:
                assert not legend.overlaps(ax["area"]), title
                assert not any(legend.overlaps(box) for box in ax["labels"]), title


def test_speakers_chart_draws_one_curve_per_split(carded):
    layout = Layout(carded)
    source = next(s for s in CATALOG if s.key == "commonvoice")
    stats = orjson.loads(layout.speech_stats(source).read_bytes())
    expected = []
    for split in stats["splits"]:
        rows = manifest_rows(layout.manifest(source, split))
        speakers = len({r["client_id"] for r in rows})
        expected.append(f"{split} ({speakers} speaker{'' if speakers == 1 else 's'})")
    assert len(expected) == 3
    facts = next(f for t, f in DRAWN["figures"].items() if t.startswith("commonvoice: clips per speaker"))
    assert facts["axes"][0]["lines"] == expected


COMMON_VOICE_AGES = ["teens", "twenties", "thirties", "fourties", "fifties", "sixties", "seventies", "eighties",
                     "nineties"]


def test_ages_are_in_age_order(carded):
    from persian_data.card.collect import collect

    def in_order(ages):
        return [a for a in COMMON_VOICE_AGES if a in ages] + (["unknown"] if "unknown" in ages else [])

    manifests = collect(carded)["speech"]["commonvoice"]["manifests"]
    every = set()
    for split, figures in manifests.items():
        assert list(figures["age"]) == in_order(figures["age"]), split
        every |= set(figures["age"])
    assert len(every) >= 4
    text = (carded / "card/CARD.md").read_text("utf-8")
    header = list(tables(text)["commonvoice: age (from the manifests)"][0])
    assert header == ["split", *in_order(every)]
    facts = next(f for t, f in DRAWN["figures"].items() if t.startswith("commonvoice: age"))
    assert [t for t in facts["axes"][0]["ticks"] if not t.isdigit()] == in_order(every)


def test_chat_outcomes_account_for_every_row_read(carded):
    """Every raw row is either skipped (by reason, as the rejects file says) or made a conversation;
    every conversation is written or removed as a duplicate; the chart shows those two units only."""
    from persian_data.card.collect import collect

    layout = Layout(carded)
    text = next(s for s in CATALOG if s.key == "text")
    raw_rows = sum(len(json.loads(p.read_bytes())) for p in layout.content_dir(text).glob("*.json"))
    rejects = [orjson.loads(line) for line in layout.chat_rejects().read_bytes().splitlines() if line.strip()]
    outcomes = collect(carded)["chat"][text.key]["outcomes"]
    assert sum(outcomes["rows"].values()) == raw_rows == orjson.loads(layout.chat_stats().read_bytes())["rows_read"]
    assert outcomes["rows_unaccounted"] == 0
    skipped = {k.removeprefix("skipped: "): n for k, n in outcomes["rows"].items() if k.startswith("skipped: ")}
    assert skipped and skipped == {r: sum(1 for x in rejects if x["reason"] == r) for r in skipped}
    conversations = outcomes["conversations"]
    assert conversations["written to combined.jsonl"] == len(manifest_rows(layout.chat_combined()))
    assert conversations["exact duplicate (removed)"] > 0  # the replica repeats rows
    assert outcomes["conversations_made"] == outcomes["rows"]["made conversations"]  # answers=first
    chart = [f for t, f in DRAWN["figures"].items() if t.startswith("Chat:") and "turn length" not in t]
    assert len(chart) == 1
    rows_axis, conversations_axis = chart[0]["axes"]
    assert (rows_axis["xlabel"], conversations_axis["xlabel"]) == ("rows", "conversations")
    assert sum(w for w, _ in rows_axis["bars"]) == raw_rows
    assert sum(w for w, _ in conversations_axis["bars"]) == outcomes["conversations_made"]
    labels = " ".join(rows_axis["ticks"] + conversations_axis["ticks"]).lower()
    assert "mask" not in labels and "lsh" not in labels and "pii" not in labels
