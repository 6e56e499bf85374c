"""Benchmark: the chat corpus step on a corpus of the real size, as a user runs it.

Generates four files with the real names and sizes (4.6 / 29 / 281 / 530 MB = 845 MB; `--scale`
shrinks them), then, in one run: `prepare_chat` alone in a child process (the stage), the whole
command a user runs (`persian-data prepare text --root R` as a subprocess, timed from process
start to exit: interpreter start, imports, the stage, records, checksums and gates), and the
baseline; it prints input MB/s, the ratios and peak RSS of each. Peak RSS is the largest sum over the child's whole process tree (main + workers),
sampled every 50 ms from /proc, and the largest single process (getrusage RUSAGE_CHILDREN).
The baseline, in another child, does `json.load` of each file plus the same per-row work
(normalize, title/answers rules, serialize, hash, dedup, write) in one process.

    python bench/bench_chat.py                 # real size, ensure_ascii files like the real ones
    python bench/bench_chat.py --scale 0.02    # smoke test
    python bench/bench_chat.py --utf8          # raw UTF-8 files (3x the characters per byte)

Rows are made unique by a counter in the question, so duplicates do not shrink the work.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
sys.path.insert(0, str(SRC))
sys.path.insert(0, str(HERE))

from chat_corpus import MB, REAL  # noqa: E402,F401  (the real files' names and sizes)

# "today's rules" (before issue 12): the conversion only, no cleaning rule
RULES_OFF = dict(pii="keep", answer_rules=False, script_check=False, near_dup=False)
RULES_OFF_FLAGS = ["--pii", "keep", "--no-answer-rules", "--no-script-check", "--no-near-dup"]
ZWNJ = "\u200c"

_WORDS = (
    "قانون ماده دادگاه حکم رأی دعوا دادخواست شکایت وکیل موکل قرارداد اجاره مالک مستأجر ودیعه مهریه "
    "طلاق نفقه حضانت ارث ترکه وارث سند ملک خودرو چک سفته ضامن وام بانک بیمه کارفرما کارگر حقوق "
    "دستمزد اخراج سابقه شورای حل اختلاف اجرای احکام ثبت اسناد دفترخانه اظهارنامه تأمین خواسته "
    "کارشناس دادسرا بازپرس جرم مجازات جزای نقدی حبس دیه تصادف راننده خسارت پرداخت مبلغ تومان ریال "
    "همسر پدر مادر برادر خواهر فرزند شوهر زن خانه آپارتمان زمین باغ مغازه شرکت سهام شریک"
).split()
_ZW = ("می" + ZWNJ + "خواهم", "نمی" + ZWNJ + "دانم", "می" + ZWNJ + "توانم", "کتاب" + ZWNJ + "ها",
       "خانه" + ZWNJ + "ای", "پرونده" + ZWNJ + "ها", "می" + ZWNJ + "شود", "شده" + ZWNJ + "است")
_ARABIC = str.maketrans({"ی": "ي", "ک": "ك"})


def _sentence(r: random.Random, n: int) -> str:
    words = []
    for _ in range(n):
        x = r.random()
        if x < 0.08:
            words.append(r.choice(_ZW))
        elif x < 0.11:
            words.append(str(r.randint(1, 1400)))
        else:
            words.append(r.choice(_WORDS))
    end = r.choice((".", "؟", " .", "،", "!"))
    return " ".join(words) + end


def _text(r: random.Random, chars: int) -> str:
    import chat_corpus

    return chat_corpus._text(r, chars, _sentence, longest=20)


CONTACT = "جهت مشاوره با شماره ۰۹۱۲ ۳۴۵ ۶۷۸۹ تماس بگیرید."
REFERRAL = "لطفا با یک وکیل مشورت کنید."


def _row(r: random.Random, target_chars: int) -> list:
    """About target_chars characters: question ~35 %, 1-3 answers ~30 % each (1.8 on average).
    The question is "@@Q@@", filled per row (so every row asks something else). What the cleaning
    rules act on comes at plausible rates: a contact line after the advice (8 % of rows), a
    referral-only first answer (2 %), a one-word first answer (1 %)."""
    title = " ".join(r.choice(_WORDS) for _ in range(r.randint(2, 6)))
    answers = []
    for _ in range(r.choice((1, 1, 2, 2, 3))):
        answers.append(_text(r, int(target_chars * r.uniform(0.15, 0.45))))
    x = r.random()
    if x < 0.08:
        answers[0] += " " + CONTACT
    elif x < 0.10:
        answers[0] = REFERRAL
    elif x < 0.11:
        answers[0] = "بله."
    keywords = [r.choice(_WORDS) for _ in range(r.randint(1, 4))]
    row = [title, "@@Q@@", answers, keywords]
    if r.random() < 0.15:  # some rows typed with Arabic yeh/kaf
        row = [title.translate(_ARABIC), "@@Q@@", [a.translate(_ARABIC) for a in answers], keywords]
    return row


def _question(r: random.Random, n: int, target_chars: int, previous: str) -> str:
    """A fresh question (its own random words: near-duplicates only where made on purpose):
    3 % repeat the previous question with a greeting added (near-duplicates), 4 % carry a phone
    number or an email, 0.5 % are Finglish (not Persian script)."""
    x = r.random()
    if x < 0.03 and previous:
        return "با سلام و احترام " + previous
    if x < 0.035:
        return f"salam, man {n} ta soal daram dar mored ejare va vadie, lotfan rahnamayi konid chikar konam"
    words = r.choices(_WORDS, k=max(4, int(target_chars * r.uniform(0.2, 0.5)) // 6))
    q = "سلام. پرونده " + str(n) + " " + " ".join(words) + "؟"
    if x < 0.055:
        q += " شماره من ۰۹۱۲۱۲۳۴۵۶۷ است."
    elif x < 0.075:
        q += " ایمیل من someone@example.com است."
    return q


def data_dir(out_dir: Path) -> Path:
    from persian_data.catalog import BY_KEY
    from persian_data.layout import Layout

    return Layout(out_dir).content_dir(BY_KEY["text"])


def generate(out_dir: Path, scale: float, utf8: bool, seed: int = 7, corpus: str = "realistic") -> list[Path]:
    """The four raw files under out_dir/datasets/text/persian_conversation/data: the realistic
    digit-rich corpus (`chat_corpus`), or the simple one below (few numbers, issue 12's bench)."""
    import chat_corpus

    if corpus == "realistic":
        return chat_corpus.generate(data_dir(out_dir), scale, utf8, seed)
    data = data_dir(out_dir)
    data.mkdir(parents=True, exist_ok=True)
    r = random.Random(seed)
    # ~3.2 kB per row like the real files (845 MB / ~267k rows): ~620 characters when escaped
    # (\\uXXXX, ~5 bytes a character), ~1700 in raw UTF-8 (~1.9 bytes a character)
    target_chars = 1500 if utf8 else 560
    pool = [json.dumps(_row(r, target_chars), ensure_ascii=not utf8) for _ in range(600)]
    return chat_corpus.write_files(data, scale, utf8, pool, lambda n, previous: _question(r, n, target_chars, previous))


def make_fetched(root: Path, paths: list[Path]) -> None:
    """Make the root look as `persian-data fetch --only text` leaves it: the lock entry,
    README.source.md and the hash cache holding the digests taken while downloading (hashed here,
    once, outside every timing). So the whole command is timed as a user meets it."""
    import hashlib

    from persian_data.catalog import BY_KEY
    from persian_data.integrity import Digests, HashCache, LockedFile, LockedSource, write_lock
    from persian_data.layout import Layout
    from persian_data.records import write_readmes

    layout = Layout(root)
    source = BY_KEY["text"]
    content = layout.content_dir(source)
    cache = HashCache(layout.hash_cache, layout.root)
    files = {}
    for path in paths:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(8 << 20), b""):
                digest.update(block)
        rel = path.relative_to(content).as_posix()
        files[rel] = LockedFile(rel, path.stat().st_size, True, digest.hexdigest(), digest.hexdigest())
        cache.put(path, Digests(digest.hexdigest()))
    lock = {"text": LockedSource("text", source.repo_id, source.repo_type, "main", "0" * 40, None, files)}
    write_lock(layout.lock_file, lock, layout.tmp_dir)
    write_readmes(layout, lock, [source])
    cache.save(layout.tmp_dir)


# ---------------------------------------------------------------------------------------------
# children
# ---------------------------------------------------------------------------------------------


def child_prepare(root: Path, workers: int | None, answers: str) -> dict:
    import logging

    from persian_data.layout import Layout
    from persian_data.prepare.chat import ChatOptions, prepare_chat

    logging.basicConfig(level=logging.WARNING)
    t0 = time.perf_counter()
    st = prepare_chat(Layout(root), ChatOptions(workers=workers, answers=answers, **RULES_OFF))
    return {"seconds": time.perf_counter() - t0, "written": st.written, "rows": st.rows_read, **_cpu()}


def _cpu() -> dict:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)  # the pool's workers, once joined
    return {"cpu_main": me.ru_utime + me.ru_stime, "cpu_workers": kids.ru_utime + kids.ru_stime}


def child_baseline(root: Path, answers: str) -> dict:
    """json.load each file, then the same per-row work, in one process."""
    from persian_data.layout import Layout
    from persian_data.catalog import CHAT_SOURCE
    from persian_data.prepare.chat import ChatOptions, _Converter, raw_files

    batch_rows = 1024

    layout = Layout(root)
    conv = _Converter(ChatOptions(answers=answers, **RULES_OFF))
    seen: set[bytes] = set()
    written = rows_n = 0
    t0 = time.perf_counter()
    out = layout.tmp_dir / "baseline.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as w:
        for path in raw_files(layout):
            with open(path, "rb") as fh:
                rows = json.load(fh)
            rows_n += len(rows)
            for i in range(0, len(rows), batch_rows):
                records, _ = CHAT_SOURCE.reader.records(rows[i:i + batch_rows])  # rows -> (title, question, answers)
                for res in conv.convert(records):
                    if res[0] != "ok":
                        continue
                    for line, dedup, _split, _u, _a in res[1]:
                        if dedup not in seen:
                            seen.add(dedup)
                            w.write(line)
                            written += 1
            del rows
    out.unlink()
    return {"seconds": time.perf_counter() - t0, "written": written, "rows": rows_n, **_cpu()}


# ---------------------------------------------------------------------------------------------
# measuring a child
# ---------------------------------------------------------------------------------------------


def _tree_rss(pid: int) -> int:
    """Sum of VmRSS (bytes) over pid and all its descendants."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(d))
    total = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        todo.extend(children.get(p, ()))
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            pass
    return total


def run_child(args: list[str], command: list[str] | None = None) -> dict:
    """Run this script as a child (`args`), or `command` as it is; wall time and peak RSS."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    before, cpu_before = usage.ru_maxrss, usage.ru_utime + usage.ru_stime
    proc = subprocess.Popen(command or [sys.executable, __file__, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE if command else None, text=True)
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _tree_rss(proc.pid))
            stop.wait(0.05)

    th = threading.Thread(target=sample, daemon=True)
    t0 = time.perf_counter()
    th.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    stop.set()
    th.join()
    if proc.returncode != 0:
        raise SystemExit(f"child {command or args} failed with exit code {proc.returncode}\n{err or ''}")
    res = json.loads(out.strip().splitlines()[-1]) if command is None else {"seconds": wall, "log": err}
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    after = usage.ru_maxrss
    # CPU seconds of the whole process tree (workers are waited for by their parent): what the
    # run costs whatever else shares the machine
    res["cpu_tree"] = usage.ru_utime + usage.ru_stime - cpu_before
    res["wall"] = wall
    res["peak_tree_rss"] = peak
    # ru_maxrss of children is the largest single descendant seen so far (KiB on Linux)
    res["peak_process_rss"] = max(after, before) * 1024 if after > before else None
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", type=Path, help="work folder (default: a temp folder, removed after)")
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of the real 845 MB (default 1)")
    ap.add_argument("--utf8", action="store_true", help="raw UTF-8 files instead of \\uXXXX escapes")
    ap.add_argument("--corpus", choices=("realistic", "simple"), default="realistic",
                    help="realistic: digit-rich legal text (bench/chat_corpus.py, the default); simple: issue 12's")
    ap.add_argument("--workers", type=int, default=None, help="prepare_chat workers (default: auto)")
    ap.add_argument("--answers", choices=("first", "all"), default="first")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--no-rules", action="store_true", help="skip the runs with the cleaning rules (issue 12)")
    ap.add_argument("--keep", action="store_true", help="keep the generated corpus")
    ap.add_argument("--child", choices=("prepare", "baseline"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    from installed import as_installed  # (bench/installed.py)

    as_installed()  # the commands read our modules from bytecode, as after pip install

    if args.child:
        root = args.dir
        if args.child == "prepare":
            res = child_prepare(root, args.workers, args.answers)
        else:
            res = child_baseline(root, args.answers)
        print(json.dumps(res))
        return

    tmp = None
    if args.dir is None:
        tmp = Path(tempfile.mkdtemp(prefix="bench_chat_"))
        root = tmp
    else:
        root = args.dir
        root.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        paths = generate(root, args.scale, args.utf8, corpus=args.corpus)
        total = sum(p.stat().st_size for p in paths)
        make_fetched(root, paths)
        print(f"generated {len(paths)} files, {total / MB:.1f} MB "
              f"({'raw UTF-8' if args.utf8 else 'ensure_ascii'}, {args.corpus} corpus) in {time.perf_counter() - t0:.1f} s")
        import chat_corpus

        print(chat_corpus.describe_line(chat_corpus.describe(paths, sample_rows=5000)))
        for p in paths:
            print(f"  {p.name}: {p.stat().st_size / MB:.1f} MB")
        common = ["--dir", str(root), "--answers", args.answers]
        w = ["--workers", str(args.workers)] if args.workers is not None else []
        la0 = os.getloadavg()
        res = run_child(["--child", "prepare", *common, *w])
        mbps = total / MB / res["seconds"]
        cpu = res["cpu_main"] + res["cpu_workers"]
        # what the CPU time says two idle cores would give: the busier of (all work on 2 cores)
        # and (the main process alone on one)
        ideal = total / MB / max(cpu / 2, res["cpu_main"])
        print(f"prepare_chat: {res['rows']} rows -> {res['written']} conversations in {res['seconds']:.1f} s "
              f"(wall {res['wall']:.1f} s incl. interpreter start): {mbps:.1f} MB/s; "
              f"peak RSS {res['peak_tree_rss'] / MB:.0f} MB (process tree sum), "
              f"largest process {res['peak_process_rss'] / MB if res['peak_process_rss'] else float('nan'):.0f} MB")
        print(f"  CPU: main {res['cpu_main']:.1f} s + workers {res['cpu_workers']:.1f} s = {cpu:.1f} s "
              f"({cpu * 1000 / (total / MB):.0f} ms per MB, incl. ~0.5 s of interpreter start and "
              f"imports); on 2 idle cores that is ~{ideal:.0f} MB/s")
        cli = Path(sys.executable).with_name("persian-data")

        def whole_command(label: str, flags: list[str]) -> dict:
            """`persian-data prepare text` as a user runs it, from a clean output (so the stage
            really runs, not its memo), process start to exit."""
            for p in (root / "datasets/text/persian_conversation").glob("combined*"):
                p.unlink()
            command = [str(cli), "prepare", "text", "--root", str(root), "--answers", args.answers, *flags]
            if args.workers is not None:
                command += ["--prepare-workers", str(args.workers)]
            out = run_child([], command)
            out["mbps"] = total / MB / out["wall"]
            print(f"whole command, {label} (`{' '.join(['prepare', 'text', *flags])}`, process start to "
                  f"exit): {out['wall']:.1f} s: {out['mbps']:.1f} MB/s; peak RSS {out['peak_tree_rss'] / MB:.0f} MB "
                  f"(process tree sum); CPU {out['cpu_tree']:.1f} s over all processes (on 2 idle cores: "
                  f"~{max(out['cpu_tree'] / 2, 1e-9) and total / MB / (out['cpu_tree'] / 2):.0f} MB/s at best)")
            for line in out["log"].splitlines():  # where the time beyond the stage went
                if "hashed now" in line or "near-duplicates:" in line or (
                        line.startswith("INFO chat: ") and " in " in line and "MB/s" in line):
                    print("    " + line)
            out["stats"] = json.loads((root / "datasets/text/persian_conversation/combined.stats.json").read_text())
            return out

        whole = whole_command("today's rules", RULES_OFF_FLAGS)
        wmbps = whole["mbps"]
        print(f"ratio whole command / stage alone (today's rules): time x{whole['wall'] / res['seconds']:.3f} "
              f"({(whole['wall'] / res['seconds'] - 1) * 100:+.1f} %; target within 15 %; the stage's child "
              f"wall incl. its interpreter start: {res['wall']:.1f} s)")
        if not args.no_rules:
            every = whole_command("every rule on (the default)", [])
            no_dup = whole_command("near-dup off", ["--no-near-dup"])
            print(f"  every rule (the default): {every['mbps']:.1f} MB/s (goal >= 40), peak RSS "
                  f"{every['peak_tree_rss'] / MB:.0f} MB (goal <= 600), CPU {every['cpu_tree']:.1f} s; near-dup off: "
                  f"{no_dup['mbps']:.1f} MB/s (goal >= 60), peak RSS {no_dup['peak_tree_rss'] / MB:.0f} MB "
                  f"(goal <= 300), CPU {no_dup['cpu_tree']:.1f} s")
            st = every["stats"]
            rules = st["rules"]
            print(f"  what each rule removed (every rule on): rows read {st['rows_read']}, conversations written "
                  f"{st['written']} (today's rules: {whole['stats']['written']}); rows skipped "
                  f"{ {k: v for k, v in st['skipped'].items() if k in ('pii', 'non_answer', 'not_persian')} }; "
                  f"answers dropped {rules['answers_dropped']}; answers trimmed of contact lines "
                  f"{rules['answers_trimmed']}; PII masked {rules['pii']['masked']}; near-duplicates "
                  f"{ {k: v for k, v in (rules['near_duplicates'] or {}).items() if k != 'examples'} }")
        if not args.no_baseline:
            base = run_child(["--child", "baseline", *common])
            bmbps = total / MB / base["seconds"]
            bcpu = base["cpu_main"] + base["cpu_workers"]
            print(f"baseline (json.load + same per-row work, 1 process): {base['written']} conversations in "
                  f"{base['seconds']:.1f} s: {bmbps:.1f} MB/s; peak RSS {base['peak_tree_rss'] / MB:.0f} MB; "
                  f"CPU {bcpu:.1f} s ({bcpu * 1000 / (total / MB):.0f} ms per MB)")
            print(f"ratio prepare_chat / baseline: throughput x{mbps / bmbps:.2f}, "
                  f"peak RSS x{res['peak_tree_rss'] / base['peak_tree_rss']:.2f}")
            print(f"ratio whole command / baseline: throughput x{wmbps / bmbps:.2f} (today's rules)"
                  + ("" if args.no_rules else f", x{every['mbps'] / bmbps:.2f} (every rule), "
                     f"x{no_dup['mbps'] / bmbps:.2f} (near-dup off)"))
            if base["written"] != res["written"]:
                print(f"WARNING: baseline wrote {base['written']}, prepare_chat {res['written']}")
        la = os.getloadavg()
        print(f"load average (1 min) before: {la0[0]:.1f}, after: {la[0]:.1f}, on {os.cpu_count()} CPUs "
              "(other processes share the machine when it is above the number of CPUs)")
    finally:
        if tmp is not None and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
