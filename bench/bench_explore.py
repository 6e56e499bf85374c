"""Benchmark of `persian-data explore` on a root of the real sizes: 48,904 clips, 281k conversations.

    python bench/bench_explore.py                      # real size (generates ~0.5 GB once into --workdir)
    python bench/bench_explore.py --scale 0.05         # smoke run
    python bench/bench_explore.py --workdir W --requests 50

What it does, in one run:
1. Generates (once per --workdir and --scale) a root shaped as `prepare` and `eval-stt` leave it:
   Common Voice manifests (train 28,024 / validation 10,440 / test 10,440 lines, every field
   `prepare speech` writes, text through the shared normalizer; each clip a hard link to one of 24
   real MP3s), `manifests/rejects.jsonl`, a `combined.jsonl` of 281,000 conversations (questions
   and answers from bench_chat.py's generators, normalized as `prepare text` does, ~4 % with a
   masked [PHONE]) with its stats and review file, and two eval runs over the test split made by
   the real `persian-data eval-stt --hypotheses` (perturbed references).
2. Builds the index from scratch in a child process: wall time and peak RSS.
3. Starts the server as a user does (`persian-data explore --root R --port P`, its own process,
   index already built), samples its memory every 50 ms, and times every page over HTTP
   (keep-alive client; `--requests` varied requests per page after one warm-up): p50 and p95.
4. The baseline, in another process: a naive server whose pages read and filter the JSONL per
   request (json.loads every line, the shared normalizer on the query, substring match, sort,
   slice); a few requests per page (each is a full scan). Prints the ratio per page.
The targets (issue 25): every page <= 300 ms, peak memory <= 400 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
sys.path.insert(0, str(SRC))
sys.path.insert(0, str(HERE))

from fastapi import Request  # noqa: E402  (the naive server's handlers, resolved at module level)

import bench_chat  # noqa: E402  (question/answer text generators)
import bench_speech  # noqa: E402  (MP3 clips, sentences, split sizes, /proc sampling)

CONVERSATIONS = 281_000
SYSTEM = ("شما یک دستیار حقوقی فارسی‌زبان هستید. به پرسش‌های حقوقی کاربران، دقیق، روشن و محترمانه به زبان "
          "فارسی پاسخ دهید.")
ARABIC = str.maketrans({"ی": "ي", "ک": "ك"})
CV = "commonvoice_fa"  # the folders the root's corpora live in
CHAT = "persian_conversation"
CV_KEY = "commonvoice"  # the key explore (and every command) names the corpus by


# -- the root ------------------------------------------------------------------------------------

def _write_lines(path: Path, lines) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        chunk = []
        for line in lines:
            chunk.append(line)
            if len(chunk) >= 5000:
                f.write(b"".join(chunk))
                chunk = []
        f.write(b"".join(chunk))


def generate_speech(root: Path, scale: float) -> dict[str, int]:
    import orjson

    from persian_data.normalize import normalize_many

    rng = random.Random(11)
    counts = bench_speech.scaled(bench_speech.CV_SPLITS, max(30, int(bench_speech.CV_TOTAL * scale)))
    corpus = root / "datasets/speech" / CV
    pool_dir = corpus / "audio/_pool"
    pool_dir.mkdir(parents=True, exist_ok=True)
    pool = []
    for seed in range(24):
        seconds = rng.uniform(1.5, 7.0)
        path = pool_dir / f"{seed}.mp3"
        path.write_bytes(bench_speech._mp3(seconds, seed))
        pool.append((path, seconds))
    speakers = [f"{rng.getrandbits(256):064x}" * 2 for _ in range(max(10, sum(counts.values()) // 15))]
    serial = 17_000_000
    rejects = []
    for split, n in counts.items():
        audio = corpus / "audio" / split
        audio.mkdir(parents=True, exist_ok=True)
        sentences = [bench_speech._sentence(rng) for _ in range(n)]
        normalized = normalize_many(sentences)
        lines = []
        for text, norm in zip(sentences, normalized):
            clip_id = f"common_voice_fa_{serial}"
            serial += 1
            src, seconds = pool[rng.randrange(len(pool))]
            rel = f"datasets/speech/{CV}/audio/{split}/{clip_id}.mp3"
            os.link(src, root / rel)
            lines.append(orjson.dumps({
                "id": clip_id, "split": split, "audio_path": rel, "duration": round(seconds, 3),
                "frames": int(seconds * 48000), "sample_rate": 48000, "channels": 1, "sha256": "0" * 64,
                "text": text, "text_normalized": norm, "client_id": rng.choice(speakers), "path": f"{clip_id}.mp3",
                "up_votes": rng.randint(2, 9), "down_votes": rng.randint(0, 2),
                "age": rng.choice(["", "twenties", "thirties", "fourties"]),
                "gender": rng.choice(["", "male", "female", "male"]), "accent": "", "locale": "fa", "segment": "",
                "variant": ""}) + b"\n")
            if rng.random() < 0.005:
                rejects.append(orjson.dumps({"corpus": CV, "split": split, "id": f"common_voice_fa_{serial + 10**6}",
                                             "reason": rng.choice(["unreadable", "empty_audio", "too_short"]),
                                             "detail": "Error opening clip: Format not recognised.", "kind": "row",
                                             "source": f"datasets/speech/{CV}/data/data/{split}-00000.parquet",
                                             "row": serial}) + b"\n")
        _write_lines(corpus / "manifests" / f"{split}.jsonl", lines)
    _write_lines(corpus / "manifests/rejects.jsonl", rejects)
    return counts


def generate_chat(root: Path, scale: float) -> int:
    import dataclasses

    import orjson

    from persian_data.normalize import DEFAULT, normalize_many

    rng = random.Random(3)
    n = max(200, int(CONVERSATIONS * scale))
    folder = root / "datasets/text" / CHAT
    folder.mkdir(parents=True, exist_ok=True)
    answers = normalize_many([bench_chat._text(rng, rng.randint(150, 450)) for _ in range(3000)])
    placeholders = 0

    def conversations():
        nonlocal placeholders
        previous = ""
        for start in range(0, n, 2000):
            users, outs = [], []
            for k in range(start, min(n, start + 2000)):
                question = bench_chat._question(rng, k, 560, previous)
                previous = question
                title = " ".join(rng.choice(bench_chat._WORDS) for _ in range(rng.randint(2, 6)))
                users.append(title + "\n\n" + question)
                answer = answers[rng.randrange(len(answers))]
                if rng.random() < 0.04:
                    answer += " تلفن: [PHONE]"
                    placeholders += 1
                outs.append(answer)
            for user, answer in zip(normalize_many(users), outs):
                yield orjson.dumps({"messages": [{"role": "system", "content": SYSTEM},
                                                 {"role": "user", "content": user},
                                                 {"role": "assistant", "content": answer}]}) + b"\n"

    _write_lines(folder / "combined.jsonl", conversations())
    examples = [{"similar_to": "سلام. پرونده ۱۲ قانون اجاره؟", "jaccard": 0.83,
                 "dropped": "با سلام و احترام سلام. پرونده ۱۲ قانون اجاره؟"}]
    stats = {"version": 1, "written": n, "rows_read": n, "options": {"normalize": True,
                                                                      "normalizer": dataclasses.asdict(DEFAULT)},
             "rules": {"pii": {"mode": "mask", "found": {"PHONE": placeholders}, "masked": {"PHONE": placeholders}},
                       "near_duplicates": {"rows_collapsed": 1, "conversations_removed": 1, "lsh_candidate_pairs": 9,
                                           "examples": examples}}}
    (folder / "combined.stats.json").write_text(json.dumps(stats, ensure_ascii=False, indent=1), encoding="utf-8")
    review = ["# Chat corpus: review sample", "", "| rule | fired |", "|---|---|",
              f"| `pii_mask` — personal data masked (typed placeholders) | {placeholders} |", "",
              f"## `pii_mask`: personal data masked (typed placeholders) ({placeholders})", "", "**Example 1**", "",
              "before:", "", "> با سلام. تلفن: **[PHONE]**", "", "after:", "", "> با سلام. تلفن: [PHONE]", ""]
    (folder / "combined.review.md").write_text("\n".join(review), encoding="utf-8")
    return n


def generate_evals(root: Path) -> list[str]:
    import orjson

    rng = random.Random(5)
    manifest = root / "datasets/speech" / CV / "manifests/test.jsonl"
    refs = [orjson.loads(line) for line in manifest.read_bytes().splitlines()]
    names = []
    for name, rate in (("bench-a", 0.08), ("bench-b", 0.15)):
        hyp = root.parent / f"hyp-{name}.jsonl"
        lines = []
        for ref in refs:
            words = ref["text"].split()
            out = []
            for w in words:
                x = rng.random()
                if x < rate / 2:
                    out.append(rng.choice(bench_speech.WORDS))
                elif x < rate * 0.75:
                    continue
                else:
                    out.append(w)
                if rng.random() < rate / 4:
                    out.append(rng.choice(bench_speech.WORDS))
            lines.append(orjson.dumps({"id": ref["id"], "text": " ".join(out)}) + b"\n")
        _write_lines(hyp, lines)
        done = subprocess.run([sys.executable, "-m", "persian_data.cli", "eval-stt", "--root", str(root),
                               "--corpus", CV_KEY, "--split", "test", "--hypotheses", str(hyp), "--name", name,
                               "--bootstrap", "200"], env=_env(), capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"eval-stt failed: {done.stderr[-2000:]}")
        names.append(f"commonvoice-test-{name}")
    return names


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH")) if p)}


def build_root(workdir: Path, scale: float) -> Path:
    root = workdir / f"root-{scale:g}"
    stamp = root / ".bench-complete"
    if stamp.exists():
        print(f"root: reusing {root}")
        return root
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    began = time.perf_counter()
    counts = generate_speech(root, scale)
    conversations = generate_chat(root, scale)
    runs = generate_evals(root)
    stamp.write_text(json.dumps({"clips": counts, "conversations": conversations, "runs": runs}))
    print(f"root: generated {root} in {time.perf_counter() - began:.0f}s: {sum(counts.values()):,} clips, "
          f"{conversations:,} conversations, eval runs {', '.join(runs)}")
    return root


# -- measuring -----------------------------------------------------------------------------------

class TreeMemory:
    """Peak RSS of a process and its children, sampled every 50 ms in a thread."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak = pid, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            todo, total = [self.pid], 0
            while todo:
                p = todo.pop()
                total += bench_speech._rss(p)
                todo += bench_speech._children(p)
            self.peak = max(self.peak, total)
            time.sleep(0.05)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def build_index(root: Path) -> dict:
    index_dir = root / ".persian-data/explore"
    shutil.rmtree(index_dir, ignore_errors=True)
    code = ("import json, time; from pathlib import Path; from persian_data.explore.index import Index; "
            f"t = time.perf_counter(); ix = Index(Path({str(root)!r})); ix.refresh(); "
            "print(json.dumps({'seconds': time.perf_counter() - t, 'inputs': {r['name']: r['seconds'] "
            "for r in ix.source_rows().values()}, 'bytes': ix.path.stat().st_size}))")
    proc, out, sample = bench_speech.run_process([sys.executable, "-c", code], env=_env())
    if proc.returncode != 0:
        raise SystemExit("index build failed")
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_rss"] = sample["peak_rss_sum"]
    result["cpu"] = sample["cpu"]
    return result


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(argv: list[str], port: int, log: Path) -> tuple[subprocess.Popen, TreeMemory, float]:
    import httpx

    began = time.perf_counter()
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, env=_env(), stdout=out, stderr=subprocess.STDOUT)
    memory = TreeMemory(proc.pid)
    deadline = time.monotonic() + 600
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"{argv[:4]} exited {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200:
                return proc, memory, time.perf_counter() - began
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit("server did not start")
        time.sleep(0.1)


def pages(root: Path, runs: list[str], rng: random.Random) -> dict[str, callable]:
    """Page name -> a function giving one varied URL of that page."""
    counts = json.loads((root / ".bench-complete").read_text())["clips"]
    n_conv = json.loads((root / ".bench-complete").read_text())["conversations"]
    words = [w for w in bench_speech.WORDS if " " not in w and len(w) > 2]
    chat_words = list(bench_chat._WORDS)
    a, b = runs
    per_train = max(1, counts["train"] // 50)
    return {
        "overview /": lambda: "/",
        "clips page": lambda: f"/clips?corpus={CV_KEY}&split=train&page={rng.randint(1, per_train)}",
        "clips filter+sort": lambda: (f"/clips?corpus={CV_KEY}&split=train&gender={rng.choice(['male', 'female'])}"
                                      f"&min=2&max=5&sort=-duration&page={rng.randint(1, 20)}"),
        "clips search (Arabic ي/ك)": lambda: f"/clips?corpus={CV_KEY}&split=train&q={rng.choice(words).translate(ARABIC)}",
        "clips rejects": lambda: f"/clips/rejects?corpus={CV_KEY}",
        "conversations page": lambda: f"/conversations?page={rng.randint(1, max(1, n_conv // 20))}",
        "conversations search common": lambda: f"/conversations?q={rng.choice(chat_words).translate(ARABIC)}",
        "conversations search 2 words": lambda: f"/conversations?q={rng.choice(chat_words)}+{rng.choice(chat_words)}",
        "conversations search rare": lambda: f"/conversations?q=پرونده+{rng.randint(0, n_conv)}",
        "conversations search ZWNJ": lambda: "/conversations?q=" + rng.choice(["می\u200cخواهم", "نمی دانم", "میشود"]),
        "conversations masked only": lambda: f"/conversations?pii=1&page={rng.randint(1, 50)}",
        "conversations review": lambda: "/conversations/review",
        "conversations near-dups": lambda: "/conversations/near-duplicates",
        "evals list": lambda: "/evals",
        "eval run by WER": lambda: f"/evals/run/{a}?page={rng.randint(1, max(1, counts['test'] // 25))}",
        "eval compare": lambda: f"/evals/compare?a={a}&b={b}&page={rng.randint(1, 20)}",
        "voices": lambda: "/voices",
        "audio (Range)": lambda: f"/media/datasets/speech/{CV}/audio/test/common_voice_fa_{17_000_000 + counts['train'] + counts['validation'] + rng.randrange(counts['test'])}.mp3",  # noqa: E501
    }


NAIVE_PAGES = {"clips search (Arabic ي/ك)", "clips filter+sort", "clips page", "conversations page",
               "conversations search common", "conversations search rare", "eval run by WER"}


def time_pages(base: str, urls: dict, requests: int, only: set[str] | None = None,
               server_pid: int | None = None) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Client-side seconds per request, and the server process's CPU seconds per request (load-independent)."""
    import httpx

    out: dict[str, list[float]] = {}
    cpu: dict[str, float] = {}
    with httpx.Client(base_url=base, timeout=600) as client:
        for name, make in urls.items():
            if only is not None and name not in only:
                continue
            headers = {"Range": "bytes=0-65535"} if name.startswith("audio") else {}
            client.get(make(), headers=headers)  # warm-up
            times = []
            cpu_before = bench_speech._cpu(server_pid) if server_pid else 0.0
            for _ in range(requests):
                url = make()
                began = time.perf_counter()
                response = client.get(url, headers=headers)
                times.append(time.perf_counter() - began)
                if response.status_code not in (200, 206):
                    raise SystemExit(f"{url}: HTTP {response.status_code}")
            out[name] = times
            if server_pid:
                cpu[name] = (bench_speech._cpu(server_pid) - cpu_before) / requests
    return out, cpu


def _pct(times: list[float], q: float) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


# -- the naive baseline -----------------------------------------------------------------------------

def naive_server(root: Path, port: int) -> None:
    """Pages that read and filter the JSONL per request (what a quick script would do)."""
    import orjson
    import uvicorn
    from fastapi import FastAPI

    from persian_data.normalize import normalize

    app = FastAPI()
    manifests = root / "datasets/speech" / CV / "manifests"
    combined = root / "datasets/text" / CHAT / "combined.jsonl"

    def lines(path: Path):
        with open(path, "rb") as f:
            for line in f:
                yield orjson.loads(line)

    @app.get("/")
    def home():
        return {"ok": True}

    @app.get("/clips")
    def clips(request: Request):
        p = request.query_params
        q = normalize(p.get("q", ""))
        rows = []
        for o in lines(manifests / f"{p.get('split', 'train')}.jsonl"):
            if q and q not in o["text_normalized"]:
                continue
            if p.get("gender") and o.get("gender") != p["gender"]:
                continue
            if p.get("min") and o["duration"] < float(p["min"]) or p.get("max") and o["duration"] > float(p["max"]):
                continue
            rows.append(o)
        if p.get("sort"):
            rows.sort(key=lambda o: o["duration"], reverse=p["sort"].startswith("-"))
        page = int(p.get("page", 1))
        return {"total": len(rows), "rows": rows[(page - 1) * 50: page * 50]}

    @app.get("/conversations")
    def conversations(request: Request):
        p = request.query_params
        words = normalize(p.get("q", "")).split()
        found = []
        for o in lines(combined):
            text = " ".join(m["content"] for m in o["messages"] if m["role"] != "system")
            if all(w in text for w in words):
                found.append(o)
        page = int(p.get("page", 1))
        return {"total": len(found), "rows": found[(page - 1) * 20: page * 20]}

    @app.get("/evals/run/{name}")
    def run(name: str, request: Request):
        rows = list(lines(root / "evals" / name / "utterances.jsonl"))
        for r in rows:
            c = r["normalized"]["words"]
            r["_wer"] = (c[1] + c[2] + c[3]) / max(c[4], 1)
        rows.sort(key=lambda r: -r["_wer"])
        page = int(request.query_params.get("page", 1))
        return {"total": len(rows), "rows": rows[(page - 1) * 25: page * 25]}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


# -- main -----------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench-explore"))
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--requests", type=int, default=30, help="timed requests per page (ours)")
    parser.add_argument("--naive-requests", type=int, default=3, help="timed requests per page (baseline)")
    parser.add_argument("--naive-server", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    from installed import as_installed  # (bench/installed.py)

    as_installed()  # the commands read our modules from bytecode, as after pip install
    if args.naive_server is not None:
        naive_server(args.naive_server, args.port)
        return

    load = os.getloadavg()
    root = build_root(args.workdir, args.scale)
    runs = json.loads((root / ".bench-complete").read_text())["runs"]
    built = build_index(root)
    print(f"\nindex build (from scratch, one process): {built['seconds']:.1f} s wall, {built['cpu']:.1f} s CPU, "
          f"peak RSS "
          f"{built['peak_rss'] / 2**20:.0f} MB, index {built['bytes'] / 2**20:.0f} MB")
    for name, seconds in sorted(built["inputs"].items(), key=lambda x: -x[1])[:6]:
        print(f"  {name:<40} {seconds:6.1f} s")

    port = _free_port()
    proc, memory, ready = start([sys.executable, "-m", "persian_data.cli", "explore", "--root", str(root),
                                 "--port", str(port)], port, args.workdir / "explore.log")
    try:
        print(f"\n`persian-data explore` on the built index: first page {ready:.1f} s after the command started")
        ours, ours_cpu = time_pages(f"http://127.0.0.1:{port}", pages(root, runs, random.Random(1)), args.requests,
                                    server_pid=proc.pid)
    finally:
        proc.terminate()
        proc.wait(30)
    peak = memory.stop()
    for name, times in ours.items():
        print(f"  {name:<34} p50 {_pct(times, 0.5) * 1000:7.1f} ms  p95 {_pct(times, 0.95) * 1000:7.1f} ms  "
              f"server CPU {ours_cpu[name] * 1000:6.1f} ms/request")
    print(f"  peak RSS of the explore process tree {peak / 2**20:.0f} MB; load now "
          + " ".join(f"{x:.1f}" for x in os.getloadavg()), flush=True)

    naive_port = _free_port()
    naive, naive_memory, _ = start([sys.executable, __file__, "--naive-server", str(root), "--port", str(naive_port)],
                                   naive_port, args.workdir / "naive.log")
    try:
        theirs, theirs_cpu = time_pages(f"http://127.0.0.1:{naive_port}", pages(root, runs, random.Random(1)),
                                        args.naive_requests, only=NAIVE_PAGES, server_pid=naive.pid)
    finally:
        naive.terminate()
        naive.wait(30)
    naive_peak = naive_memory.stop()

    print(f"\n{'page':<34} {'p50 ms':>8} {'p95 ms':>8} {'CPU ms':>7}   {'naive p50':>10} {'CPU ms':>8} {'ratio':>7}"
          f"   target <= 300 ms")
    worst = 0.0
    for name, times in ours.items():
        p50, p95 = _pct(times, 0.5) * 1000, _pct(times, 0.95) * 1000
        worst = max(worst, p95)
        line = f"{name:<34} {p50:8.1f} {p95:8.1f} {ours_cpu[name] * 1000:7.1f}"
        if name in theirs:
            n50 = _pct(theirs[name], 0.5) * 1000
            line += f"   {n50:10.0f} {theirs_cpu[name] * 1000:8.0f} {n50 / max(p50, 1e-9):6.0f}x"
        else:
            line += " " * 30
        print(line + ("   OK" if p95 <= 300 else "   OVER"))
    print(f"\nworst p95 {worst:.0f} ms; peak RSS of the explore process tree {peak / 2**20:.0f} MB (target <= 400 MB); "
          f"naive server peak {naive_peak / 2**20:.0f} MB")
    print(f"machine load (1/5/15 min) at start {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}, at end "
          + " ".join(f"{x:.1f}" for x in os.getloadavg()) + f"; {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
