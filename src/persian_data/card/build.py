"""Assembles the card: blocks (headings, paragraphs, tables, plots) and front matter from the
collected figures, then writes card/CARD.md, card/card.html and card/*.png atomically.

Tables print the records' own numbers (stats files, lock, counts, checksum file); the manifests
give the distributions the stats do not hold. Every counter in a stats file is shown by name, so
new keys from newer stages need no change here.
"""

from __future__ import annotations

import hashlib
import logging
import re
import sys
import time
from pathlib import Path
from typing import Any

from ..atomic import write_if_changed
from ..catalog import CHAT_BUCKET, SPEECH_BUCKET, VOICE_BUCKET, Source
from ..layout import Layout
from . import plots
from .collect import age_order, collect, counters, scalars
from .render import html_page, markdown

log = logging.getLogger("persian_data.card")

CARD_DIR = "card"
SENTENCE = "سلام، این یک جملهٔ کوتاه برای آزمایش صداست."
SPECTROGRAM_SECONDS = 3.0
GENERATED_PREFIX = "Generated"

TASKS = {CHAT_BUCKET: "text-generation", SPEECH_BUCKET: "automatic-speech-recognition", VOICE_BUCKET: "text-to-speech"}
KEPT, REMOVED, UNACCOUNTED = "#55a868", "#c44e52", "#999999"


def size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                        (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M")):
        if n < limit:
            return name
    return "10M<n<100M"


def _fmt(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:g}" if abs(value) >= 1e-4 or value == 0 else repr(value)
    return value


class Card:
    def __init__(self, data: dict, generated: str) -> None:
        self.data = data
        self.generated = generated
        self.blocks: list[tuple] = []
        self.images: dict[str, bytes] = {}

    def h(self, level: int, text: str) -> None:
        self.blocks.append(("h", level, text))

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def table(self, title: str, headers: list[str], rows: list[list]) -> None:
        self.h(4, title)
        self.blocks.append(("table", headers, [[_fmt(v) for v in row] for row in rows]))

    def plot(self, name: str, alt: str, draw) -> None:
        try:
            self.images[name] = draw()
        except Exception as exc:  # one bad plot must not lose the card; it says why instead
            log.warning("card: plot %s failed: %s", name, exc)
            self.p(f"Plot `{name}` could not be drawn: {exc}")
            return
        self.blocks.append(("img", name, alt))

    # -- sections ---------------------------------------------------------------------------
    def source_intro(self, key: str) -> dict:
        source = self.data["sources"][key]
        english, persian = source["card_title"]  # each corpus's own (its module, or its declaration)
        self.h(2, f"{english} (`{key}`)")
        if persian:
            self.p(persian)
        self.p(f"{source['title']}. Lives in `{source['path']}/`. Source: [{source['url']}]({source['url']}); "
               f"license {source['license']}.")
        if source["present"]:
            self.table(f"{key}: source", ["commit", "lock files", "lock bytes", "counted files", "checksum lines"],
                       [[f"`{source.get('revision')}`", source.get("lock_files"), source.get("lock_bytes"),
                         source.get("count"), source.get("checksum_lines")]])
        else:
            self.p(f"**absent**: `{key}` is not in this root (not fetched, or not in the lock).")
        return source

    def header(self) -> None:
        data = self.data
        records = data["records"]
        self.h(1, "persian-data card")
        self.p(f"{GENERATED_PREFIX} {self.generated} by {data['tool']['name']} {data['tool']['version']}.")
        self.p("Every figure below is read from this root's records: the lock, the checksum file, "
               "`logs/dataset_sources.json`, the speech `manifests/` (stats.json, the manifests, rejects.jsonl), "
               "the chat `combined.stats.json` and `combined.jsonl`, and each voice's `config.json`.")
        checks = records.get("checksums")
        rows = [["lock", records.get("lock") or "absent"],
                ["checksum file", checks["path"] if checks else "absent"]]
        if checks:
            rows += [["checksum lines", checks["lines"]], ["checksum file sha256", f"`{checks['sha256']}`"],
                     ["first line", f"`{checks['first']}`"], ["last line", f"`{checks['last']}`"]]
        rows.append(["counts file", "logs/dataset_sources.json" if records.get("counts") is not None else "absent"])
        self.table("records", ["record", "value"], rows)
        self.table("sources", ["source", "repo", "state", "commit", "lock files", "lock bytes", "counted files",
                               "checksum lines", "license"],
                   [[s["key"], s["repo_id"], "present" if s["present"] else "absent",
                     f"`{s['revision']}`" if s.get("revision") else None, s.get("lock_files"), s.get("lock_bytes"),
                     s.get("count"), s.get("checksum_lines"), s["license"]] for s in data["sources"].values()])

    def chat(self, key: str) -> None:
        self.source_intro(key)
        chat = self.data["chat"][key]
        if not chat["present"]:
            self.p(f"**absent**: no chat stats (`{chat['stats_path']}`); `persian-data prepare text` writes them.")
            return
        stats = chat["stats"]
        self.table(f"{key}: totals", ["figure", "value"], [[k, v] for k, v in scalars(stats).items()])
        found = counters(stats)
        for name, counter in found.items():
            self.table(f"{key}: {name}", ["key", "count"], [[k, v] for k, v in counter.items()])
        prompt = (stats.get("options") or {}).get("system_prompt")
        if prompt:
            self.p("System prompt:")
            self.p(prompt)
        self.plot(f"{key}-outcomes.png", "what became of each row read and each conversation made",
                  lambda: plots.outcome_panels(_outcome_panels(chat["outcomes"]), title="Chat: outcome of every "
                                               "row read and every conversation made",
                                               persian="سرنوشت ردیف‌ها و گفتگوها"))
        normalizer = {name: c for name, c in found.items() if "normaliz" in name.lower()}
        if normalizer:
            for name, counter in normalizer.items():
                self.plot(f"{key}-{_slug(name)}.png", f"normalizer: {name}",
                          lambda c=counter, n=name: plots.bars(list(c), list(c.values()), horizontal=True,
                                                               title=f"Chat: what the normalizer changed ({n})",
                                                               persian="تغییرات یکسان‌سازی", ylabel="count"))
        else:
            self.p("The chat stats record no per-rule normalizer counts (no `normalizer` counter in "
                   f"`{chat['stats_path']}`).")
        combined = chat.get("combined") or {}
        if combined.get("present"):
            self.table(f"{key}: turn lengths (characters, from combined.jsonl)",
                       ["role", "turns", "min", "median", "mean", "p95", "max"],
                       [[role, len(combined["lengths"][role]), *(s or {}).values()]
                        for role, s in combined["length"].items()])
            self.plot(f"{key}-turn-lengths.png", "user and assistant turn lengths",
                      lambda: plots.histogram(combined["lengths"], title="Chat: turn length (characters, log scale)",
                                              persian="طول پیام‌ها", xlabel="characters", log_x=True))
        else:
            self.p(f"**absent**: `{combined.get('path')}` is missing.")

    def speech(self, key: str) -> None:
        self.source_intro(key)
        speech = self.data["speech"][key]
        if not speech["present"]:
            self.p(f"**absent**: no speech stats (`{speech['stats_path']}`); `persian-data prepare speech` writes them.")
            return
        stats = speech["stats"]
        reasons = self._speech_stats_tables(key, stats)
        rejects_file = speech.get("rejects_file")
        if rejects_file:
            self.p(f"`{rejects_file['path']}` holds {rejects_file['lines']} line(s).")
        manifests = speech.get("manifests") or {}
        if not manifests:
            self.p("**absent**: no manifests.")
            return
        self._speech_manifest_tables(key, manifests)
        self._speech_plots(key, stats, manifests, reasons)

    def _speech_stats_tables(self, key: str, stats: dict) -> list[str]:
        """Splits, gender and rejects, from the stage's stats; the reject reasons."""
        split_stats = stats.get("splits") or {}
        total = stats.get("total") or {}
        columns = ["source_rows", "clips", "hours", "seconds", "speakers", "rejected_rows", "reported_members"]
        self.table(f"{key}: splits", ["split", *columns],
                   [[split, *(s.get(c) for c in columns)] for split, s in split_stats.items()]
                   + [["total", *(total.get(c) for c in columns)]])
        genders = sorted({g for s in [*split_stats.values(), total] for g in (s.get("gender") or {})})
        self.table(f"{key}: gender", ["split", *genders],
                   [[split, *((s.get("gender") or {}).get(g, 0) for g in genders)]
                    for split, s in [*split_stats.items(), ("total", total)]])
        reasons = sorted({r for s in [*split_stats.values(), total] for r in (s.get("rejects") or {})}
                         | set(stats.get("rejects_by_reason") or {}))
        if reasons:
            self.table(f"{key}: rejects by reason", ["split", *reasons],
                       [[split, *((s.get("rejects") or {}).get(r, 0) for r in reasons)]
                        for split, s in [*split_stats.items(), ("total", total)]])
        else:
            self.p("No clip was rejected.")
        return reasons

    def _speech_manifest_tables(self, key: str, manifests: dict) -> None:
        """Durations, words, ages, speakers and top words, from the manifests."""
        stat_keys = ["min", "median", "mean", "p95", "max"]
        self.table(f"{key}: clip duration (seconds, from the manifests)", ["split", "clips", *stat_keys],
                   [[split, m["clips"], *((m["duration"] or {}).get(k) for k in stat_keys)]
                    for split, m in manifests.items()])
        self.table(f"{key}: words per transcript (from the manifests)", ["split", *stat_keys],
                   [[split, *((m["word"] or {}).get(k) for k in stat_keys)] for split, m in manifests.items()])
        ages = _ages(manifests)
        if ages:
            self.table(f"{key}: age (from the manifests)", ["split", *ages],
                       [[split, *((m.get("age") or {}).get(a, 0) for a in ages)] for split, m in manifests.items()])
        if _has_speakers(manifests):
            self.table(f"{key}: clips per speaker (from the manifests)",
                       ["split", "speakers", "most clips by one speaker", "median clips per speaker"],
                       [[split, m["speakers"], (m["speaker_clips"] or [None])[0],
                         _median(m["speaker_clips"])] for split, m in manifests.items()])
        first = next(iter(manifests))
        self.table(f"{key}: top words ({first})", ["word", "count"], [[w, n] for w, n in manifests[first]["top_words"]])

    def _speech_plots(self, key: str, stats: dict, manifests: dict, reasons: list[str]) -> None:
        split_stats = stats.get("splits") or {}
        total = stats.get("total") or {}
        splits = list(split_stats)
        self.plot(f"speech-{key}-splits.png", "hours and clips per split",
                  lambda: plots.grouped_bars(splits, {"hours": [split_stats[s].get("hours", 0) for s in splits],
                                                      "clips": [split_stats[s].get("clips", 0) for s in splits]},
                                             title=f"{key}: hours and clips per split", persian="ساعت و تعداد کلیپ"))
        self.plot(f"speech-{key}-durations.png", "clip duration histogram",
                  lambda: plots.histogram({s: m["durations"] for s, m in manifests.items()}, bin_width=0.5,
                                          title=f"{key}: clip duration", persian="مدت کلیپ‌ها", xlabel="seconds"))
        gender_total = total.get("gender") or {}
        self.plot(f"speech-{key}-gender.png", "gender", lambda: plots.bars(
            list(gender_total), list(gender_total.values()), title=f"{key}: gender (all splits)",
            persian="جنسیت گویندگان", ylabel="clips"))
        ages = _ages(manifests)
        if ages:
            age_total = {a: sum((m.get("age") or {}).get(a, 0) for m in manifests.values()) for a in ages}
            self.plot(f"speech-{key}-age.png", "age", lambda: plots.bars(
                list(age_total), list(age_total.values()), title=f"{key}: age (all splits)",
                persian="سن گویندگان", ylabel="clips"))
        if _has_speakers(manifests):
            per_split = {s: m["speaker_clips"] for s, m in manifests.items() if m.get("speaker_clips")}
            self.plot(f"speech-{key}-speakers.png", "clips per speaker, long tail, one curve per split",
                      lambda: plots.long_tail(per_split, title=f"{key}: clips per speaker (one curve per split, "
                                                                "speakers ranked; log-log)",
                                              persian="تعداد کلیپ هر گوینده"))
        self.plot(f"speech-{key}-words.png", "transcript length in words", lambda: plots.histogram(
            {s: m["words"] for s, m in manifests.items()}, bin_width=1, title=f"{key}: transcript length",
            persian="طول متن (واژه)", xlabel="words"))
        first = next(iter(manifests))
        top = manifests[first]["top_words"]
        self.plot(f"speech-{key}-top-words.png", "top words", lambda: plots.bars(
            [w for w, _ in top], [n for _, n in top], horizontal=True, title=f"{key}: top words ({first})",
            persian="واژه‌های پرکاربرد", ylabel="occurrences"))
        if reasons:
            by_reason = stats.get("rejects_by_reason") or total.get("rejects") or {}
            self.plot(f"speech-{key}-rejects.png", "rejects by reason", lambda: plots.bars(
                list(by_reason), list(by_reason.values()), title=f"{key}: rejects by reason",
                persian="کلیپ‌های ردشده", ylabel="clips", colors=["#c44e52"] * len(by_reason)))

    def voice(self, key: str, root: Path, synthesize: bool) -> None:
        self.source_intro(key)
        voice = self.data["tts"][key]
        if not voice.get("present"):
            self.p("**absent**: no voice config.")
            return
        if voice.get("error"):
            self.p(voice["error"])
            return
        # one field a row: ten fields side by side would not fit the page
        checkpoints = voice["checkpoints"] or {}
        self.table(f"{key}: voice", ["field", "value"], [
            ["voice", voice["voice"]], ["model", voice["model"]], ["sample rate", voice["sample_rate"]],
            ["symbols (model_args.num_chars)", voice["num_chars"]], ["characters", voice["characters"]],
            ["punctuations", voice["punctuations"]],
            ["phonemizer", f"{voice['phonemizer']} ({voice['phoneme_language']})" if voice["use_phonemes"] else "none"],
            *([["checkpoint", f"`{name}` ({size:,} bytes)"] for name, size in checkpoints.items()]
              or [["checkpoint", None]]),
            ["ONNX export", "yes" if voice["onnx"] else "no"]])
        name = f"tts-{voice['voice']}-spectrogram.png"
        # Drawn once per voice version: loading a voice costs seconds (torch), so the PNG is kept
        # in the tool's state, keyed by the voice's hashes in the lock, the sentence and this code.
        digest = hashlib.sha256(f"{voice['fingerprint']}|{SENTENCE}|{SPECTROGRAM_SECONDS}|{_code_version()}"
                                .encode()).hexdigest()[:16]
        cached = Layout(root).state_dir / "card" / f"{voice['voice']}-{digest}.png"
        if cached.is_file():
            self.images[name] = cached.read_bytes()
        elif not synthesize:
            self.p("Spectrogram not drawn here (it loads the voice, seconds with torch); "
                   "`persian-data card --root R` draws it once and later cards reuse it.")
            return
        else:
            samples, rate, why = _synthesize(root, voice["voice"])
            if samples is None:
                self.p(f"Spectrogram skipped: {why}")
                return
            self.plot(name, "spectrogram", lambda: plots.spectrogram(
                samples, rate, title=f"{key}: spectrogram of a synthesized sentence", persian=SENTENCE))
            if name not in self.images:
                return
            for old in cached.parent.glob(f"{voice['voice']}-*.png"):
                old.unlink()
            write_if_changed(cached, self.images[name], Layout(root).tmp_dir)
            self.blocks.pop()
        self.p(f"Spectrogram of the first {SPECTROGRAM_SECONDS:g} s of: {SENTENCE}")
        self.blocks.append(("img", name, "spectrogram"))

    def front_matter(self) -> dict:
        data = self.data
        present = [s for s in data["sources"].values() if s["present"]]
        licenses = sorted({s["license"].split()[0] for s in present})
        sizes = set()
        for chat in data["chat"].values():
            if chat.get("present"):
                sizes.add(size_category(int(chat["stats"].get("written") or 0)))
        for speech in data["speech"].values():
            if speech.get("present"):
                sizes.add(size_category(int((speech["stats"].get("total") or {}).get("clips") or 0)))
        return {
            "language": ["fa"],
            "pretty_name": "persian-data root: Persian chat, speech and TTS sources",
            "license": licenses,
            "task_categories": sorted({TASKS[s["bucket"]] for s in present}),
            "size_categories": sorted(sizes),
            "source_datasets": [s["repo_id"] for s in present],
            "sources": {s["key"]: {"repo": s["repo_id"], "url": s["url"], "revision": s.get("revision"),
                                   "license": s["license"], "present": s["present"], "files": s.get("lock_files"),
                                   "bytes": s.get("lock_bytes"), "count": s.get("count")}
                        for s in data["sources"].values()},
            "persian_data": {"version": data["tool"]["version"], "generated": self.generated},
        }


def _outcome_panels(outcomes: dict) -> list[dict]:
    """Two panels, one unit each: rows (made conversations or skipped) and conversations (written
    or removed). Counts of other things (items masked, candidate pairs) stay in the tables."""
    rows = [(label, n, KEPT if label == "made conversations" else REMOVED) for label, n in outcomes["rows"].items()]
    if outcomes["rows_unaccounted"]:
        rows.append(("not accounted for by the counters", outcomes["rows_unaccounted"], UNACCOUNTED))
    per_row = {"first": "one per row, answers=first", "all": "one per usable answer, answers=all"}.get(
        outcomes.get("answers"), "")
    conversations = [(label, n, KEPT if label.startswith("written") else REMOVED)
                     for label, n in outcomes["conversations"].items()]
    return [{"title": f"{outcomes['rows_read']:,} rows read from the raw files", "unit": "rows", "bars": rows},
            {"title": f"{outcomes['conversations_made']:,} conversations made from them"
                      + (f" ({per_row})" if per_row else ""), "unit": "conversations", "bars": conversations}]


def _ages(manifests: dict) -> list[str]:
    return age_order({a for m in manifests.values() for a in (m.get("age") or {})})


def _has_speakers(manifests: dict) -> bool:
    return any(m.get("speaker_clips") for m in manifests.values())


def _median(values: list[int] | None):
    if not values:
        return None
    import statistics

    return statistics.median(values)


def _code_version() -> str:
    """The plotting code's own hash: a changed plot style redraws the cached spectrograms."""
    return hashlib.sha256(Path(plots.__file__).read_bytes()).hexdigest()[:12]


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _synthesize(root: Path, voice: str):
    """(samples padded/cut to 3 s, rate, None) or (None, None, why) — through the tts public API."""
    try:
        from ..tts.runtime import load_voice

        loaded = load_voice(Layout(root), voice)
    except ImportError as exc:
        return None, None, f"the `tts` extra is not installed ({exc.name}); `pip install \"persian-data[tts]\"`."
    except Exception as exc:
        return None, None, f"the voice could not be loaded ({type(exc).__name__}: {exc})."
    import numpy as np

    np.random.seed(0)
    torch = sys.modules.get("torch")
    if torch is not None:  # VITS samples noise: a fixed seed makes the card the same on every run
        torch.manual_seed(0)
    try:
        samples = np.asarray(loaded.synthesize(SENTENCE), dtype=np.float32)
    except Exception as exc:
        return None, None, f"synthesis failed ({type(exc).__name__}: {exc})."
    rate = int(loaded.sample_rate)
    wanted = int(SPECTROGRAM_SECONDS * rate)
    samples = np.pad(samples[:wanted], (0, max(0, wanted - len(samples[:wanted]))))
    return samples, rate, None


def make_card(root: Path | str, *, synthesize: bool = True, now: float | None = None,
              sources: tuple[Source, ...] | list[Source] | None = None) -> Path:
    """Write card/CARD.md, card/card.html and card/*.png for the root; return card/CARD.md.
    `synthesize=False`: voices are not loaded; spectrograms drawn earlier are reused. `sources`:
    every source the root knows (default: the five and those its persian-data.toml declares)."""
    layout = Layout(Path(root))
    started = time.monotonic()
    data = collect(layout.root, sources)
    generated = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    card = Card(data, generated)
    card.header()
    for key in data["chat"]:
        card.chat(key)
    for key in data["speech"]:
        card.speech(key)
    for key in data["tts"]:
        card.voice(key, layout.root, synthesize)
    card.h(2, "Plots")
    shows = {block[1]: block[2] for block in card.blocks if block[0] == "img"}
    card.table("plots", ["file", "shows"], [[f"[{name}]({name})", shows.get(name)] for name in card.images])
    front = card.front_matter()
    folder = layout.root / CARD_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for name, png in card.images.items():
        write_if_changed(folder / name, png, layout.tmp_dir)
    for stale in folder.glob("*.png"):  # plots of a bucket no longer there
        if stale.name not in card.images:
            stale.unlink()
    write_if_changed(folder / "card.html", html_page("persian-data card", front, card.blocks, card.images),
                     layout.tmp_dir)
    write_if_changed(folder / "CARD.md", markdown(front, card.blocks), layout.tmp_dir)
    log.info("card: %s and %d plot(s) written in %.1fs", layout.relative(folder / "CARD.md"), len(card.images),
             time.monotonic() - started)
    return folder / "CARD.md"
