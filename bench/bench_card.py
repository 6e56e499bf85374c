"""Benchmark of `persian-data card` on a root holding a Common Voice set of real size.

    python bench/bench_card.py               # 48,904 clips (train 28,024, validation 10,440, test 10,440)
    python bench/bench_card.py --clips 5000  # quick smoke run

What it does:
1. Generates, once, into --workdir a root as `persian-data run --only commonvoice` leaves it, for
   the parts the card reads: `manifests/{train,validation,test}.jsonl` with every column the real
   manifests have (id, split, audio_path, duration, frames, sample rate, sha256, Persian text,
   client_id, votes, age, gender, accent, locale, ...; ~850 bytes a line), speakers on a long
   tail (a Zipf draw over 3,000 client ids), durations from a gamma law (mean ~4.7 s),
   `stats.json` computed from those rows in the stage's format, `rejects.jsonl`, the lock entry,
   the checksum file and `logs/dataset_sources.json`.
2. Runs, each in its own child process, timed from process start to exit, while sampling the
   whole process tree's RSS every 0.05 s (psutil):
   - the whole command a user runs: `persian-data card --root R --no-synth`;
   - the baseline: a bare read of the same manifests with the standard library's json (one
     `json.loads` per line, nothing else): the floor any card that reads the manifests pays,
     without importing or drawing anything.
3. Prints wall seconds, CPU seconds, peak RSS (all processes), the ratio card / baseline, and
   the issue's targets (card <= 10 s, peak RSS <= 500 MB).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import psutil

SPLITS = {"train": 28_024, "validation": 10_440, "test": 10_440}
WORDS = ("سلام", "کتاب", "خانه", "امروز", "فردا", "دانشگاه", "شهر", "تهران", "باران", "درخت", "می‌خواهم",
         "آب", "زندگی", "کار", "دوست", "مدرسه", "خیابان", "ماشین", "۱۲۳", "هوا", "سرد", "گرم", "بسیار", "در")
AGES = ("", "teens", "twenties", "thirties", "fourties", "fifties", "sixties")
GENDERS = ("", "male", "female", "other")


def generate(root: Path, total: int) -> None:
    scale = total / sum(SPLITS.values())
    splits = {name: max(1, round(n * scale)) for name, n in SPLITS.items()}
    splits["train"] += total - sum(splits.values())
    rng = random.Random(0)
    speakers = [hashlib.sha512(str(i).encode()).hexdigest() for i in range(3000)]
    weights = [1 / (rank + 1) for rank in range(len(speakers))]
    corpus = root / "datasets/speech/commonvoice_fa"
    manifests = corpus / "manifests"
    manifests.mkdir(parents=True, exist_ok=True)
    split_stats, all_speakers, total_gender, rejects = {}, set(), Counter(), []
    for split, count in splits.items():
        seconds, gender, seen = 0.0, Counter(), set()
        with open(manifests / f"{split}.jsonl", "w", encoding="utf-8") as out:
            for i in range(count):
                duration = round(min(12.0, 0.8 + rng.gammavariate(4.0, 1.0)), 3)
                text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 14))) + "."
                speaker = rng.choices(speakers, weights)[0]
                g = rng.choice(GENDERS)
                row = {"id": f"common_voice_fa_{split}_{i}", "split": split,
                       "audio_path": f"datasets/speech/commonvoice_fa/audio/{split}/common_voice_fa_{split}_{i}.mp3",
                       "duration": duration, "frames": int(duration * 48000), "sample_rate": 48000, "channels": 1,
                       "sha256": hashlib.sha256(f"{split}{i}".encode()).hexdigest(), "text": text,
                       "text_normalized": text, "client_id": speaker, "path": f"common_voice_fa_{split}_{i}.mp3",
                       "up_votes": rng.randint(2, 9), "down_votes": rng.randint(0, 2), "age": rng.choice(AGES),
                       "gender": g, "accent": "", "locale": "fa", "segment": "", "variant": ""}
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
                seconds += duration
                gender[g or "unknown"] += 1
                seen.add(speaker)
        split_rejects = [{"corpus": "commonvoice_fa", "split": split, "id": f"bad_{split}_{j}",
                          "reason": rng.choice(("unreadable", "empty_audio", "missing_audio")), "kind": "row"}
                         for j in range(max(1, count // 2000))]
        rejects += split_rejects
        split_stats[split] = {"source_rows": count + len(split_rejects), "clips": count, "seconds": round(seconds, 3),
                              "hours": round(seconds / 3600, 4), "speakers": len(seen),
                              "gender": dict(sorted(gender.items())), "rejected_rows": len(split_rejects),
                              "reported_members": 0,
                              "rejects": dict(sorted(Counter(r["reason"] for r in split_rejects).items()))}
        all_speakers |= seen
        total_gender += gender
    total_stats = {"source_rows": sum(s["source_rows"] for s in split_stats.values()),
                   "clips": sum(s["clips"] for s in split_stats.values()),
                   "seconds": round(sum(s["seconds"] for s in split_stats.values()), 3),
                   "hours": round(sum(s["seconds"] for s in split_stats.values()) / 3600, 4),
                   "speakers": len(all_speakers), "gender": dict(sorted(total_gender.items())),
                   "rejected_rows": len(rejects), "reported_members": 0,
                   "rejects": dict(sorted(Counter(r["reason"] for r in rejects).items()))}
    stats = {"corpus": "commonvoice_fa", "source": "commonvoice", "splits": split_stats, "total": total_stats,
             "rejects_by_reason": total_stats["rejects"], "options": {"extract": True, "deep": False},
             "split_names": {}}
    (manifests / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    (manifests / "rejects.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rejects))
    shards = {f"data/{s}-00000-of-00001.parquet": 300_000_000 for s in SPLITS}
    (corpus / "data/data").mkdir(parents=True, exist_ok=True)
    for name in shards:
        (corpus / "data" / name).write_bytes(b"x")  # present; the card reads sizes from the lock
    lock = {"version": 1, "generator": "bench_card", "sources": {"commonvoice": {
        "repo_id": "hezarai/common-voice-13-fa", "repo_type": "dataset", "requested_revision": "main",
        "revision": "8492a27f99a909e8ef3ad184e323a997a5803cdc", "patterns": None,
        "files": {name: {"size": size, "lfs": True, "hub_hash": "0" * 64, "sha256": "0" * 64}
                  for name, size in shards.items()}}}}
    (root / "checksums").mkdir(exist_ok=True)
    (root / "checksums/persian-data.lock.json").write_text(json.dumps(lock, indent=2))
    lines = [f"{'0' * 64}  datasets/speech/commonvoice_fa/audio/{s}/x{i}.mp3" for s, n in splits.items()
             for i in range(n)]
    (root / "checksums/datasets.sha256.txt").write_text("\n".join(sorted(lines)) + "\n")
    (root / "logs").mkdir(exist_ok=True)
    (root / "logs/dataset_sources.json").write_text(json.dumps({"speech_commonvoice_fa_files": 7}))


def measure(argv: list[str]) -> dict:
    started = time.perf_counter()
    proc = psutil.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak, cpu = 0, {}
    while proc.poll() is None:
        try:
            family = [proc, *proc.children(recursive=True)]
            rss = 0
            for p in family:
                try:
                    rss += p.memory_info().rss
                    times = p.cpu_times()
                    cpu[p.pid] = times.user + times.system
                except psutil.NoSuchProcess:
                    pass
            peak = max(peak, rss)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    wall = time.perf_counter() - started
    stderr = proc.stderr.read().decode(errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"{argv} failed ({proc.returncode}):\n{stderr[-3000:]}")
    return {"wall": wall, "cpu": sum(cpu.values()), "peak_rss_mb": peak / 2**20, "stderr": stderr}


BASELINE = """
import json, sys
from pathlib import Path
n = 0
for path in sorted(Path(sys.argv[1]).glob("*.jsonl")):
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            json.loads(line); n += 1
print(n)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=sum(SPLITS.values()))
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench_card"))
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    from installed import as_installed  # (bench/installed.py)

    as_installed()  # the commands read our modules from bytecode, as after pip install
    root = args.workdir / f"root-{args.clips}"
    if not (root / "datasets/speech/commonvoice_fa/manifests/stats.json").is_file():
        print(f"generating {args.clips} clips into {root}", flush=True)
        generate(root, args.clips)
    size = sum(p.stat().st_size for p in (root / "datasets/speech/commonvoice_fa/manifests").glob("*.jsonl"))
    exe = Path(sys.executable).with_name("persian-data")
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} on {os.cpu_count()} cores; "
          f"manifests {size / 2**20:.1f} MB, {args.clips} clips")
    runs = {"card": [], "baseline": []}
    for _ in range(args.repeats):
        runs["card"].append(measure([str(exe), "card", "--root", str(root), "--no-synth"]))
        runs["baseline"].append(measure([sys.executable, "-c", BASELINE,
                                         str(root / "datasets/speech/commonvoice_fa/manifests")]))
    best = {name: min(r, key=lambda m: m["wall"]) for name, r in runs.items()}
    for name, m in best.items():
        walls = ", ".join("%.2f" % r["wall"] for r in runs[name])
        print(f"{name:9s} wall {m['wall']:6.2f} s (runs: {walls})  "
              f"cpu {m['cpu']:6.2f} s  peak RSS {m['peak_rss_mb']:6.1f} MB")
    card = best["card"]
    print(f"ratio card / bare json read: {card['wall'] / best['baseline']['wall']:.2f}x wall")
    print(f"target: card <= 10 s -> {'OK' if card['wall'] <= 10 else 'MISSED'} ({card['wall']:.2f} s); "
          f"peak RSS <= 500 MB -> {'OK' if card['peak_rss_mb'] <= 500 else 'MISSED'} ({card['peak_rss_mb']:.1f} MB)")
    plots = len(list((root / "card").glob("*.png")))
    print(f"card: {root / 'card/CARD.md'} with {plots} plot(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
