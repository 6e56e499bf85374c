"""Benchmark of `persian-data eval-stt`: score mode on 100,000 utterances, and run-mode RTFx.

    python bench/bench_eval.py                    # 100,000 utterances, 2 rounds, RTFx on 40 clips
    python bench/bench_eval.py --utterances 20000 --rounds 1 --clips 10   # quick

1. Generates into --workdir a root whose Common Voice `test` manifest has N clips of 4-14 Persian
   words (with gender/age/accent/client_id/duration columns), a 28,024-line `train` manifest (so the
   leakage check reads a real-sized train split), and a hypotheses JSONL with ~15 % word errors and
   the usual spelling variants (ZWNJ as space, Arabic yeh/kaf, Latin digits, punctuation).
2. Times, each as a whole process from start to exit (`/usr/bin/time` for peak RSS), interleaved:
   - baseline: a Python process that reads the same two files (orjson), pairs them by id and calls
     `jiwer.process_words(refs, hyps)` and `jiwer.process_characters(refs, hyps)`: raw text, no
     normalization, no interval, no outputs;
   - ours: `persian-data eval-stt --root W --hypotheses H` (both normalizations, raw and normalized
     WER/CER, 1,000-round bootstrap, breakdowns, leakage, results.json/utterances.jsonl/report.md).
   Target: ours >= 2x the baseline's utterances/s, peak RSS <= 500 MB.
3. Run mode: tiny randomly initialised Whisper and CTC models (tests/support/tiny_asr.py) over
   --clips generated 48 kHz MP3 clips of 2-8 s; prints the RTFx eval-stt reports (audio seconds /
   processing seconds, model loading excluded) and the whole command's wall time.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS = ("سلام", "کتاب", "خانه", "امروز", "فردا", "دانشگاه", "شهر", "تهران", "باران", "درخت", "می‌خواهم", "نمی‌کنم",
         "آب", "زندگی", "کار", "دوست", "مدرسه", "خیابان", "ماشین", "۱۲۳", "هوا", "سرد", "گرم", "بسیار", "کتاب‌ها",
         "بزرگ‌ترین", "رفته‌ام", "پنجره", "کوچک", "همیشه", "دریا", "کوه", "ایستگاه", "قطار", "اتوبوس", "بازار")
VOCAB_SIZE = 6000

BASELINE = r"""
import sys, orjson, jiwer
man, hyp = sys.argv[1], sys.argv[2]
refs = {}
for line in open(man, 'rb'):
    r = orjson.loads(line); refs[r['id']] = r['text']
h = {}
for line in open(hyp, 'rb'):
    r = orjson.loads(line); h[r['id']] = r['text']
ids = list(refs)
R = [refs[i] for i in ids]; H = [h.get(i, '') for i in ids]
w = jiwer.process_words(R, H); c = jiwer.process_characters(R, H)
print(f'WER {w.wer:.4f} CER {c.cer:.4f}')
"""


def _vocab(r: random.Random) -> list[str]:
    letters = "ابپتثجچحخدذرزژسشصضطظعغفقکگلمنوهی"
    extra = ["".join(r.choice(letters) for _ in range(r.randint(2, 8))) for _ in range(VOCAB_SIZE)]
    return list(WORDS) + extra


def _variant(word: str, r: random.Random) -> str:
    x = r.random()
    if x < 0.3:
        return word.replace("\u200c", " " if r.random() < 0.5 else "")
    if x < 0.5:
        return word.replace("ی", "ي").replace("ک", "ك")
    if x < 0.55:
        return word.translate(str.maketrans("۰۱۲۳۴۵۶۷۸۹", "0123456789"))
    return word


def generate(work: Path, n: int) -> tuple[Path, Path]:
    root = work / "root"
    man_dir = root / "datasets/speech/commonvoice_fa/manifests"
    hyp_path = work / f"hyps-{n}.jsonl"
    if (man_dir / "test.jsonl").exists() and hyp_path.exists():
        return root, hyp_path
    man_dir.mkdir(parents=True, exist_ok=True)
    r = random.Random(0)
    vocab = _vocab(r)
    speakers = [f"{r.getrandbits(128):032x}" * 4 for _ in range(3000)]

    def row(i: int, split: str, words: list[str]) -> bytes:
        text = " ".join(words) + r.choice((".", "", "؟", "!"))
        d = {"id": f"common_voice_fa_{split}_{i}", "split": split,
             "audio_path": f"datasets/speech/commonvoice_fa/audio/{split}/common_voice_fa_{split}_{i}.mp3",
             "duration": round(0.4 * len(words) + r.random() * 2, 3), "frames": 0, "sample_rate": 48000, "channels": 1,
             "sha256": f"{r.getrandbits(256):064x}", "text": text, "text_normalized": text,
             "client_id": r.choice(speakers), "path": f"common_voice_fa_{split}_{i}.mp3", "up_votes": 2,
             "down_votes": 0, "age": r.choice(("", "twenties", "thirties", "fourties")),
             "gender": r.choice(("", "male", "female")), "accent": r.choice(("", "تهرانی", "اصفهانی", "مشهدی")),
             "locale": "fa", "segment": "", "variant": ""}
        return json.dumps(d, ensure_ascii=False).encode() + b"\n"

    with open(man_dir / "train.jsonl", "wb") as f:
        for i in range(28_024):
            f.write(row(i, "train", [r.choice(vocab) for _ in range(r.randint(4, 14))]))
    with open(man_dir / "test.jsonl", "wb") as man, open(hyp_path, "wb") as hyp:
        for i in range(n):
            words = [r.choice(vocab) for _ in range(r.randint(4, 14))]
            man.write(row(i, "test", words))
            out = []
            for w in words:
                x = r.random()
                if x < 0.05:
                    continue
                out.append(r.choice(vocab) if x < 0.13 else _variant(w, r))
                if x > 0.97:
                    out.append(r.choice(vocab))
            hyp.write(json.dumps({"id": f"common_voice_fa_test_{i}", "text": " ".join(out)}, ensure_ascii=False).encode()
                      + b"\n")
    return root, hyp_path


def timed(cmd: list[str], env: dict | None = None) -> tuple[float, int, str, float]:
    """Wall seconds, peak RSS (KB, /usr/bin/time), stdout and CPU seconds (user + system) of a
    whole command. On a shared machine the CPU time moves much less than the wall time."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        t0 = time.perf_counter()
        p = subprocess.run(["/usr/bin/time", "-f", "%M %U %S", "-o", tf.name, *cmd], capture_output=True, text=True,
                           env=env)
        wall = time.perf_counter() - t0
        if p.returncode != 0:
            raise SystemExit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr[-3000:]}")
        rss, user, system = Path(tf.name).read_text().split()[-3:]
    return wall, int(rss), p.stdout.strip(), float(user) + float(system)


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def score_bench(work: Path, n: int, rounds: int) -> None:
    root, hyp = generate(work, n)
    man = root / "datasets/speech/commonvoice_fa/manifests/test.jsonl"
    py = sys.executable
    print(f"score mode: {n:,} utterances; load average {loadavg()}")
    base_t, ours_t, base_cpu, ours_cpu = [], [], [], []
    for k in range(rounds):
        t, rss, out, cpu = timed([py, "-c", BASELINE, str(man), str(hyp)])
        base_t.append(t)
        base_cpu.append(cpu)
        print(f"  baseline jiwer process_words + process_characters: {t:6.2f} s  {n / t:8,.0f} utt/s  CPU {cpu:6.2f} s  "
              f"peak RSS {rss / 1024:6.0f} MB  ({out})")
        t, rss, out, cpu = timed([py, "-m", "persian_data.cli", "eval-stt", "--root", str(root), "--hypotheses",
                                  str(hyp), "--name", "bench"])
        ours_t.append(t)
        ours_cpu.append(cpu)
        print(f"  eval-stt --hypotheses (whole command):             {t:6.2f} s  {n / t:8,.0f} utt/s  CPU {cpu:6.2f} s  "
              f"peak RSS {rss / 1024:6.0f} MB  ({out[:120]})")
        ours_rss = rss
    b, o = min(base_t), min(ours_t)
    pairs = ", ".join(f"{x / y:.2f}x" for x, y in zip(base_t, ours_t))
    print(f"  best of {rounds}: baseline {n / b:,.0f} utt/s, eval-stt {n / o:,.0f} utt/s, ratio {b / o:.2f}x "
          f"(target >= 2x; per round {pairs}); CPU time ratio {min(base_cpu) / min(ours_cpu):.2f}x "
          f"({min(base_cpu):.2f} s vs {min(ours_cpu):.2f} s); eval-stt peak RSS {ours_rss / 1024:.0f} MB "
          f"(target <= 500 MB); load average {loadavg()}")
    res = json.loads((root / "evals/commonvoice-test-bench/results.json").read_text("utf-8"))
    print(f"  check: raw WER {res['raw']['words']['error_rate']:.4f} CER {res['raw']['chars']['error_rate']:.4f} "
          f"(the baseline's line above must match)")


def _mp3(seconds: float, seed: int) -> bytes:
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 48_000)) / 48_000
    x = 0.2 * np.sin(2 * np.pi * rng.uniform(120, 300) * t) + 0.02 * rng.standard_normal(len(t))
    buf = io.BytesIO()
    sf.write(buf, x.astype("float32"), 48_000, format="MP3")
    return buf.getvalue()


def rtfx_bench(work: Path, clips: int) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the tests' tiny models
    from support.tiny_asr import build_tiny_ctc, build_tiny_whisper

    root = work / "runroot"
    shutil.rmtree(root, ignore_errors=True)
    rel_audio = "datasets/speech/commonvoice_fa/audio/test"
    (root / rel_audio).mkdir(parents=True)
    man = root / "datasets/speech/commonvoice_fa/manifests/test.jsonl"
    man.parent.mkdir(parents=True)
    r = random.Random(1)
    vocab = _vocab(r)
    with open(man, "w", encoding="utf-8") as f:
        for i in range(clips):
            sec = 2 + 6 * r.random()
            (root / rel_audio / f"c{i}.mp3").write_bytes(_mp3(sec, i))
            f.write(json.dumps({"id": f"c{i}", "split": "test", "audio_path": f"{rel_audio}/c{i}.mp3",
                                "duration": round(sec, 3), "text": " ".join(r.choice(vocab) for _ in range(8)),
                                "gender": "", "age": "", "accent": "", "client_id": "x"}, ensure_ascii=False) + "\n")
    models = {"whisper": build_tiny_whisper(work / "m-whisper"), "ctc": build_tiny_ctc(work / "m-ctc")}
    print(f"run mode: {clips} MP3 clips at 48 kHz (resampled to 16 kHz); load average {loadavg()}")
    for name, folder in models.items():
        t, rss, _, _ = timed([sys.executable, "-m", "persian_data.cli", "eval-stt", "--root", str(root), "--model",
                           str(folder), "--batch-size", "8", "--name", name])
        run = json.loads((root / f"evals/commonvoice-test-{name}/results.json").read_text("utf-8"))["run"]
        print(f"  tiny {name:8s}: RTFx {run['rtfx']:7.1f} ({run['audio_seconds']:.1f} s audio in "
              f"{run['processing_seconds']:.2f} s; model load {run['model_load_seconds']:.2f} s); whole command "
              f"{t:.1f} s, peak RSS {rss / 1024:.0f} MB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--utterances", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--clips", type=int, default=40)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    from installed import as_installed  # (bench/installed.py)

    as_installed()  # the commands read our modules from bytecode, as after pip install
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_eval."))
    work.mkdir(parents=True, exist_ok=True)
    try:
        score_bench(work, args.utterances, args.rounds)
        if args.clips:
            rtfx_bench(work, args.clips)
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
