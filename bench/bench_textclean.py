"""Benchmark: the textclean components on synthetic text of the real corpus's size.

    python bench/bench_textclean.py              # 281k questions of ~60 words (~2-3 min)
    python bench/bench_textclean.py --n 20000    # smoke run

Not a timed test. It prints, for one process:
- near_dup: `signatures` (what each chat worker runs on its pieces) and `collapse` (the parent)
  over N user turns, with the candidate pairs checked and the groups collapsed; the baseline is
  datasketch's own objects (`MinHash.update_batch` per question, `MinHashLSH.insert` + `query`
  with the same bands/rows) on a sample, extrapolated to N; the ratio;
- mask_pii, clean_answer, persian_ratio: MB/s (UTF-8) on questions and answers carrying phones,
  IDs, cards, contact lines;
- peak RSS of this process (getrusage).
The corpus: Zipf-distributed legal vocabulary, a shared greeting on a third of the questions
(unrelated questions that share words: the candidates the banding must not explode on), 5 %
near-duplicates (one or two words edited) and 1 % questions repeated verbatim with other answers.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import time
from hashlib import blake2b
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from persian_data.textclean.answers import clean_answer  # noqa: E402
from persian_data.textclean.near_dup import bands, collapse, shingles, signatures  # noqa: E402
from persian_data.textclean.pii import mask_pii  # noqa: E402
from persian_data.textclean.script import persian_ratio  # noqa: E402

_BASE = ("قانون ماده دادگاه حکم رأی دعوا دادخواست شکایت وکیل موکل قرارداد اجاره مالک مستأجر ودیعه مهریه "
         "طلاق نفقه حضانت ارث ترکه وارث سند ملک خودرو چک سفته ضامن وام بانک بیمه کارفرما کارگر حقوق "
         "دستمزد اخراج سابقه شورای حل اختلاف اجرای احکام ثبت اسناد دفترخانه اظهارنامه تأمین خواسته "
         "کارشناس دادسرا بازپرس جرم مجازات دیه تصادف راننده خسارت پرداخت مبلغ همسر پدر مادر برادر "
         "خواهر فرزند شوهر زن خانه آپارتمان زمین باغ مغازه شرکت سهام شریک و در به از که این را با است "
         "برای آیا من یک چه می‌شود کرده بود نیز تا اگر").split()


def corpus(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    vocab = _BASE + [f"{w}{a}{b}" for a in "ابپتثجحخدذرزسشصضطظعغفقکگلمنوهی" for b in "ابتدرسکمنی"
                     for w in ("حق", "سند", "کار")]
    weights = [1 / (r + 1) for r in range(len(vocab))]
    greeting = "با سلام و احترام وقت بخیر"
    texts: list[str] = []
    while len(texts) < n:
        words = rng.choices(vocab, weights, k=max(5, int(rng.gauss(60, 20))))
        text = " ".join(words)
        if rng.random() < 0.33:
            text = greeting + " " + text + " لطفا راهنمایی کنید"
        texts.append(text)
        r = rng.random()
        if r < 0.05:  # a near-duplicate: one or two words edited
            w = text.split()
            for _ in range(rng.randint(1, 2)):
                w[rng.randrange(len(w))] = rng.choice(vocab)
            texts.append(" ".join(w))
        elif r < 0.06:
            texts.append(text)  # the same question again (other answers)
    return texts[:n]


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_near_dup(texts: list[str], sample: int) -> None:
    n = len(texts)
    mb = sum(len(t.encode()) for t in texts) / 1e6
    keys = [blake2b(t.encode() + i.to_bytes(4, "little"), digest_size=16).digest() for i, t in enumerate(texts)]
    t0 = time.perf_counter()
    sigs = [signatures(texts[i:i + 2000]) for i in range(0, n, 2000)]  # per piece, as the workers do
    t1 = time.perf_counter()
    from persian_data.textclean.near_dup import Signatures

    allsigs = Signatures.concat(sigs)
    t2 = time.perf_counter()
    res = collapse(allsigs, keys)
    t3 = time.perf_counter()
    ours = t3 - t0
    print(f"near_dup: {n:,} questions, {mb:.1f} MB, bands x rows = {bands()}")
    print(f"  signatures {t1 - t0:6.2f} s ({n / (t1 - t0):,.0f} questions/s, one process)")
    print(f"  collapse   {t3 - t2:6.2f} s ({res.candidates:,} candidate pairs checked exactly, "
          f"{len(res.drop):,} rows dropped)")
    print(f"  signature memory {allsigs.values.nbytes / 1e6 + allsigs.shingles.nbytes / 1e6:.0f} MB")

    # baseline: datasketch's objects, same shingles, same bands/rows, on a sample
    from datasketch import MinHash, MinHashLSH

    b, r = bands()
    sub = texts[:sample]
    t0 = time.perf_counter()
    lsh = MinHashLSH(num_perm=64, params=(b, r))
    hits = 0
    for i, t in enumerate(sub):
        m = MinHash(num_perm=64, seed=1, scheme="affine32", hashfunc=int)
        m.update_batch(shingles(t).tolist())
        hits += len(lsh.query(m))
        lsh.insert(i, m)
    base = (time.perf_counter() - t0) * n / sample
    print(f"  baseline (datasketch MinHash + MinHashLSH objects, {sample:,} measured, extrapolated "
          f"to {n:,}): {base:6.1f} s; ours {ours:.2f} s; ratio {base / ours:.1f}x")


def bench_rules(questions: list[str]) -> None:
    rng = random.Random(1)
    answers = []
    for q in questions:
        a = q[: len(q) // 2]
        r = rng.random()
        if r < 0.3:
            a += " جهت مشاوره با شماره ۰۹۱۲ ۱۲۳ ۴۵۶۷ تماس بگیرید."
        elif r < 0.35:
            a = "لطفا با یک وکیل مشورت کنید."
        elif r < 0.4:
            a += " کد ملی ۰۰۱۳۵۴۲۴۱۸ و ایمیل ali@example.com و ماده ۱۰ سال ۱۴۰۲ مبلغ ۵۰٬۰۰۰٬۰۰۰ تومان"
        answers.append(a)
    texts = questions + answers
    mb = sum(len(t.encode()) for t in texts) / 1e6
    t0 = time.perf_counter()
    masked = [mask_pii(t)[0] for t in texts]
    t1 = time.perf_counter()
    for a in masked[len(questions):]:
        clean_answer(a, 15)
    t2 = time.perf_counter()
    for t in masked:
        persian_ratio(t)
    t3 = time.perf_counter()
    amb = sum(len(a.encode()) for a in answers) / 1e6
    print(f"mask_pii      {t1 - t0:6.2f} s  {mb / (t1 - t0):6.1f} MB/s ({len(texts):,} turns, {mb:.0f} MB)")
    print(f"clean_answer  {t2 - t1:6.2f} s  {amb / (t2 - t1):6.1f} MB/s ({len(answers):,} answers)")
    print(f"persian_ratio {t3 - t2:6.2f} s  {mb / (t3 - t2):6.1f} MB/s")


def bench_rules_realistic(scale: float) -> None:
    """The rules as the chat stage runs them on the realistic digit-rich corpus (bench/chat_corpus):
    each plain function on its own (every one scans the whole text) against the one-pass form
    (`textclean.batch.analyze` over a batch, then each rule where it can match). Same results,
    checked here; MB/s of the UTF-8 text, one process."""
    import json
    import tempfile

    import chat_corpus
    from persian_data.normalize import normalize_many
    from persian_data.textclean.batch import analyze
    from persian_data.textclean.script import is_mostly_persian

    with tempfile.TemporaryDirectory() as tmp:
        paths = chat_corpus.generate(Path(tmp), scale)
        print(chat_corpus.describe_line(chat_corpus.describe(paths)))
        rows = [row for p in paths for row in json.loads(p.read_bytes())]
    texts = normalize_many([t for row in rows for t in (row[1], row[2][0])])
    mb = sum(len(t.encode()) for t in texts) / 1e6
    answers = texts[1::2]
    amb = sum(len(t.encode()) for t in answers) / 1e6
    timings = {}
    for label in ("plain", "one pass", "plain", "one pass"):  # interleaved, the best of two
        t0 = time.process_time()
        facts = analyze(texts, 300) if label == "one pass" else [None] * len(texts)
        t1 = time.process_time()
        masked = [mask_pii(t, "mask", f) for t, f in zip(texts, facts)]
        t2 = time.process_time()
        verdicts = [clean_answer(m[0], 20, label == "one pass") for m in masked[1::2]]
        t3 = time.process_time()
        script = [is_mostly_persian(m[0], counts=None if f is None or m[1] else (f.arabic, f.other))
                  for m, f in zip(masked, facts)]
        t4 = time.process_time()
        got = (masked, verdicts, script)
        best = timings.setdefault(label, [1e9] * 4 + [got])
        for k, v in enumerate((t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            best[k] = min(best[k], v)
    assert timings["plain"][4] == timings["one pass"][4], "the one-pass rules differ from the plain ones"
    print(f"rules on the realistic corpus ({len(texts):,} texts, {mb:.0f} MB; {len(answers):,} answers, "
          f"{amb:.0f} MB), CPU seconds, same results:")
    for k, name in enumerate(("batch pass (analyze)", "mask_pii", "clean_answer", "script check")):
        p, o = timings["plain"][k], timings["one pass"][k]
        size = amb if name == "clean_answer" else mb
        print(f"  {name:22s} plain {p:6.2f} s ({size / max(p, 1e-9):7.1f} MB/s)   one pass {o:6.2f} s "
              f"({size / max(o, 1e-9):7.1f} MB/s)")
    p, o = sum(timings["plain"][:4]), sum(timings["one pass"][:4])
    print(f"  all rules              plain {p:6.2f} s ({mb / p:7.1f} MB/s)   one pass {o:6.2f} s ({mb / o:7.1f} MB/s):"
          f" x{p / o:.1f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=281_000)
    ap.add_argument("--sample", type=int, default=5000, help="questions the baseline runs on")
    ap.add_argument("--rules-n", type=int, default=50_000, help="questions (and answers) for the rules")
    ap.add_argument("--realistic-scale", type=float, default=0.05,
                    help="share of the 845 MB realistic corpus the rules run on (0: skip)")
    args = ap.parse_args()
    from installed import as_installed  # (bench/installed.py)

    as_installed()  # the commands read our modules from bytecode, as after pip install
    texts = corpus(args.n)
    bench_near_dup(texts, min(args.sample, args.n))
    bench_rules(texts[: args.rules_n])
    if args.realistic_scale:
        bench_rules_realistic(args.realistic_scale)
    print(f"peak RSS {peak_mb():.0f} MB (this process)")


if __name__ == "__main__":
    main()
