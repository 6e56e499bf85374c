"""Benchmark of `prepare speech` on a generated set the size of Common Voice 13 fa.

    python bench/bench_speech.py               # 48,904 clips in 4 shards + FLEURS-like tars
    python bench/bench_speech.py --clips 2000  # quick smoke run
    python bench/bench_speech.py --workdir W --rounds 3 --skip-deep --skip-fleurs   # medians of 3

The clips are 49k new files: on a VM disk whose directory happens to sit in a crowded ext4 block
group, creating a file can cost 700 us of kernel time instead of 20 us (seen here: /var/tmp vs
/work on the same disk). Check with `strace -c` or a loop of os.open if the CPU-time rates and
the wall clock disagree wildly, and put --workdir where creating files is cheap.

What it does:
1. Generates, once, into --workdir: four parquet shards shaped like hezarai/common-voice-13-fa
   (train 2 shards, validation, test; 100-row row groups as `datasets.push_to_hub` writes them)
   whose `audio.bytes` are real 48 kHz MP3s (a few distinct clips encoded once, reused with
   varied metadata and a per-clip ID3 tag, so every clip's bytes differ and the shards have their
   real size), and FLEURS-like `data/fa_ir/{train,dev,test}.tsv` + `audio/*.tar.gz` of 16 kHz WAVs
   with the real clip counts.
2. Runs each measured step in its own child process, on a fresh root laid out as `persian-data
   fetch --only <corpus>` leaves it: `data/` files hard-linked to the generated ones, the lock
   entry, README.source.md, and the hash cache holding the digests taken while downloading. Every
   0.1 s it samples the child's whole process tree (workers and forkserver included): memory as
   the sum of PSS (pages shared with the forkserver count once) and the sum of RSS; CPU time of
   every process seen. Steps, in one run:
   - the whole command a user runs, `persian-data prepare speech --only commonvoice --root R`,
     timed from process start to exit (imports, the stage, records, gates, summary);
   - the stage alone: `prepare_speech()` called in a process, timed around the call;
   - the speech gate re-hashing every clip (what `verify` does for the clips);
   - the same stage with --deep, and on FLEURS (--skip-deep, --skip-fleurs);
   - the baseline: one process, pandas.read_parquet of each shard, then per row a soundfile
     header check, a file write, sha256, the normalizer and a JSON line.
3. Prints wall-clock clips/s, CPU time (and the rate the CPU time allows on idle CPUs, which is
   what a shared, busy machine hides), peak memory, the ratios (whole command / stage, whole
   command / baseline) against the issue's targets, and where the whole command's time goes
   (the gaps between its log lines).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

CV_SPLITS = {"train": 28_024, "validation": 10_440, "test": 10_440}
CV_TOTAL = sum(CV_SPLITS.values())
FLEURS_SPLITS = {"train": 3_101, "dev": 369, "test": 871}
WORDS = ("سلام", "کتاب", "خانه", "امروز", "فردا", "دانشگاه", "شهر", "تهران", "باران", "درخت", "می‌خواهم", "نمي كنم",
         "آب", "زندگی", "کار", "دوست", "مدرسه", "خیابان", "ماشین", "۱۲۳", "هوا", "سرد", "گرم", "بسیار")


# -- generation --------------------------------------------------------------------------------

def _tone(seconds: float, sr: int, seed: int):
    import numpy as np

    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f = rng.uniform(120, 300)
    x = 0.25 * np.sin(2 * np.pi * f * t) * (0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(1, 4) * t))
    x += 0.02 * rng.standard_normal(len(t))
    return x.astype("float32")


def _mp3(seconds: float, seed: int) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, _tone(seconds, 48_000, seed), 48_000, format="MP3", bitrate_mode="CONSTANT", compression_level=0.9)
    return buf.getvalue()


def _id3(text: str) -> bytes:
    """An ID3v2.3 tag with one title frame: makes every clip's bytes (and sha256) unique, as real clips
    are, so parquet cannot dictionary-encode the audio column and the shards have their real size."""
    body = b"\x00" + text.encode("latin-1")
    frame = b"TIT2" + struct.pack(">I", len(body)) + b"\x00\x00" + body
    n = len(frame)
    return b"ID3\x03\x00\x00" + bytes([(n >> 21) & 127, (n >> 14) & 127, (n >> 7) & 127, n & 127]) + frame


def _wav(seconds: float, seed: int) -> tuple[bytes, int]:
    import soundfile as sf

    x = _tone(seconds, 16_000, seed)
    buf = io.BytesIO()
    sf.write(buf, x, 16_000, format="WAV", subtype="PCM_16")
    return buf.getvalue(), len(x)


def _sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12))) + "."


def scaled(counts: dict[str, int], total: int) -> dict[str, int]:
    full = sum(counts.values())
    return {k: max(1, round(v * total / full)) for k, v in counts.items()}


def generate_cv(out: Path, clips: int, distinct: int = 24) -> dict[str, int]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(13)
    pool = [_mp3(rng.uniform(1.5, 7.0), seed) for seed in range(distinct)]
    speakers = [hashlib.sha512(str(i).encode()).hexdigest() for i in range(max(10, clips // 15))]
    schema = pa.schema([("client_id", pa.string()), ("path", pa.string()),
                        ("audio", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
                        ("sentence", pa.string()), ("up_votes", pa.int64()), ("down_votes", pa.int64()),
                        ("age", pa.string()), ("gender", pa.string()), ("accent", pa.string()),
                        ("locale", pa.string()), ("segment", pa.string()), ("variant", pa.string())])
    counts = scaled(CV_SPLITS, clips)
    shards = {"train": 2, "validation": 1, "test": 1}
    out.mkdir(parents=True, exist_ok=True)
    serial = 17_000_000
    total_bytes = 0
    for split, n in counts.items():
        per = [n // shards[split] + (1 if i < n % shards[split] else 0) for i in range(shards[split])]
        for shard, rows in enumerate(per):
            path = out / f"{split}-{shard:05d}-of-{shards[split]:05d}.parquet"
            with pq.ParquetWriter(path, schema) as writer:
                for start in range(0, rows, 1000):
                    m = min(1000, rows - start)
                    names = [f"common_voice_fa_{serial + i}.mp3" for i in range(m)]
                    serial += m
                    audio = [_id3(name) + pool[rng.randrange(distinct)] for name in names]
                    total_bytes += sum(map(len, audio))
                    table = pa.table({
                        "client_id": [rng.choice(speakers) for _ in range(m)], "path": names,
                        "audio": pa.StructArray.from_arrays([pa.array(audio, pa.binary()), pa.array(names)],
                                                            names=["bytes", "path"]),
                        "sentence": [_sentence(rng) for _ in range(m)],
                        "up_votes": [rng.randint(2, 9) for _ in range(m)],
                        "down_votes": [rng.randint(0, 2) for _ in range(m)],
                        "age": [rng.choice(["", "twenties", "thirties", "fourties"]) for _ in range(m)],
                        "gender": [rng.choice(["", "male", "female", "male"]) for _ in range(m)],
                        "accent": [""] * m, "locale": ["fa"] * m, "segment": [""] * m, "variant": [""] * m,
                    }, schema=schema)
                    writer.write_table(table, row_group_size=100)
    return {"clips": sum(counts.values()), "audio_bytes": total_bytes}


def generate_fleurs(out: Path, scale: float, distinct: int = 12) -> dict[str, int]:
    rng = random.Random(7)
    pool = [_wav(rng.uniform(2.0, 5.0), 100 + seed) for seed in range(distinct)]
    (out / "audio").mkdir(parents=True, exist_ok=True)
    total = 0
    for split, full in FLEURS_SPLITS.items():
        n = max(2, round(full * scale))
        lines = []
        with tarfile.open(out / "audio" / f"{split}.tar.gz", "w:gz", compresslevel=1) as tar:
            for i in range(n):
                data, frames = pool[rng.randrange(distinct)]
                name = f"{rng.getrandbits(63)}.wav"
                info = tarfile.TarInfo(f"{split}/{name}")
                info.size, info.mtime = len(data), 1_700_000_000
                tar.addfile(info, io.BytesIO(data))
                raw = _sentence(rng)
                lines.append("\t".join([str(1000 + i // 2), name, raw, raw.rstrip("."), "|".join(raw.split()),
                                        str(frames), rng.choice(["MALE", "FEMALE", "OTHER"])]))
        (out / f"{split}.tsv").write_text("\n".join(lines) + "\n", "utf-8")
        total += n
    return {"clips": total}


def source_digests(work: Path, corpus: str) -> dict[str, dict]:
    """sha256 and size of each generated source file (hashed once, kept beside the data)."""
    from persian_data.integrity import hash_file

    record = work / "gen" / f"{corpus}.digests.json"
    if record.exists():
        return json.loads(record.read_text())
    src = work / "gen" / corpus
    out = {path.relative_to(src).as_posix(): {"sha256": hash_file(path).sha256, "size": path.stat().st_size}
           for path in sorted(src.rglob("*")) if path.is_file()}
    record.write_text(json.dumps(out))
    return out


def fresh_root(work: Path, name: str, corpus: str) -> Path:
    """A root as `persian-data fetch --only <corpus>` leaves it: data/ files (hard links to the
    generated ones: no copy, never modified), the lock entry, README.source.md and the hash cache
    holding the digests taken while downloading. So the whole command is timed as a user meets it."""
    from persian_data.catalog import BY_KEY
    from persian_data.integrity import Digests, HashCache, LockedFile, LockedSource, write_lock
    from persian_data.layout import Layout
    from persian_data.records import write_readmes

    root = work / "roots" / name
    shutil.rmtree(root, ignore_errors=True)
    layout = Layout(root)
    source = BY_KEY[corpus]
    content = layout.content_dir(source)
    src = work / "gen" / corpus
    digests = source_digests(work, corpus)
    cache = HashCache(layout.hash_cache, layout.root)
    for rel, entry in digests.items():
        target = content / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(src / rel, target)
        cache.put(target, Digests(entry["sha256"]))
    files = {rel: LockedFile(rel, e["size"], True, e["sha256"], e["sha256"]) for rel, e in digests.items()}
    lock = {corpus: LockedSource(corpus, source.repo_id, source.repo_type, "main", "0" * 40, None, files)}
    write_lock(layout.lock_file, lock, layout.tmp_dir)
    write_readmes(layout, lock, [source])
    cache.save(layout.tmp_dir)
    return root


def file_create_cost(folder: Path, files: int = 500, size: int = 34_000) -> float:
    """Kernel + user microseconds to create and write one clip-sized file in `folder` now: what the
    disk charges for each of the 49k clips (20-40 us on a healthy ext4; far more while it is
    busy discarding the blocks of files just deleted)."""
    probe = folder / f".create-probe-{os.getpid()}"
    shutil.rmtree(probe, ignore_errors=True)
    probe.mkdir(parents=True)
    data = os.urandom(size)
    before = os.times()
    for i in range(files):
        fd = os.open(probe / f"{i:05d}.mp3", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, data)
        os.close(fd)
    after = os.times()
    shutil.rmtree(probe, ignore_errors=True)
    return 1e6 * ((after.user - before.user) + (after.system - before.system)) / files


def warm_page_cache(gen: Path) -> None:
    """Read the generated sources once, so every step finds them in the page cache as `fetch`
    leaves them (otherwise the first step alone would pay for the disk)."""
    for path in sorted(gen.rglob("*")):
        if path.is_file():
            with open(path, "rb", buffering=0) as handle:
                while handle.read(8 << 20):
                    pass


# -- measured steps (each in its own process) --------------------------------------------------

def step_prepare(root: Path, corpus: str, deep: bool, workers: int | None) -> dict:
    import logging

    from persian_data.catalog import BY_KEY
    from persian_data.layout import Layout
    from persian_data.prepare.speech import SpeechOptions, prepare_speech

    logging.basicConfig(level=logging.WARNING)
    layout = Layout(root)
    started = time.perf_counter()
    stats = prepare_speech(layout, [BY_KEY[corpus]], SpeechOptions(deep=deep, workers=workers))
    elapsed = time.perf_counter() - started
    total = stats[corpus].total
    return {"seconds": elapsed, "clips": total["clips"], "rows": total["source_rows"], "rejects": total["rejects"]}


def step_gate(root: Path) -> dict:
    from persian_data.catalog import BY_KEY
    from persian_data.gates import GateContext
    from persian_data.layout import Layout
    from persian_data.prepare.speech import speech_gates

    started = time.perf_counter()
    failures = speech_gates(GateContext(Layout(root), [BY_KEY["commonvoice"]], None, thorough=True))
    elapsed = time.perf_counter() - started
    if failures:
        raise SystemExit(f"gate failed: {failures[:3]}")
    rows = sum(1 for p in (root / "datasets").rglob("manifests/*.jsonl") if p.name != "rejects.jsonl"
               for _ in open(p, "rb"))
    return {"seconds": elapsed, "clips": rows, "rows": rows, "rejects": {}}


def step_baseline(root: Path) -> dict:
    """The straightforward way: pandas, one row at a time, one process."""
    import pandas as pd
    import soundfile as sf

    from persian_data.catalog import BY_KEY
    from persian_data.layout import Layout
    from persian_data.normalize import normalize

    layout = Layout(root)
    source = BY_KEY["commonvoice"]
    started = time.perf_counter()
    clips = 0
    for path in sorted(layout.content_dir(source).rglob("*.parquet")):
        split = path.name.split("-")[0]
        df = pd.read_parquet(path)
        audio_dir = layout.audio_dir(source, split)
        audio_dir.mkdir(parents=True, exist_ok=True)
        manifest = layout.manifest(source, split)
        manifest.parent.mkdir(parents=True, exist_ok=True)
        with open(manifest, "a", encoding="utf-8") as out:
            for row in df.itertuples(index=False):
                data = row.audio["bytes"]
                info = sf.info(io.BytesIO(data))
                if info.frames <= 0:
                    continue
                target = audio_dir / row.path
                with open(target, "wb") as handle:
                    handle.write(data)
                line = {"id": target.stem, "split": split, "audio_path": layout.relative(target),
                        "duration": info.frames / info.samplerate, "sample_rate": info.samplerate,
                        "channels": info.channels, "sha256": hashlib.sha256(data).hexdigest(),
                        "text": row.sentence, "text_normalized": normalize(row.sentence),
                        "client_id": row.client_id, "path": row.path, "up_votes": int(row.up_votes),
                        "down_votes": int(row.down_votes), "age": row.age, "gender": row.gender,
                        "accent": row.accent, "locale": row.locale, "segment": row.segment, "variant": row.variant}
                out.write(json.dumps(line, ensure_ascii=False) + "\n")
                clips += 1
        del df
    return {"seconds": time.perf_counter() - started, "clips": clips, "rows": clips, "rejects": {}}


# -- process-tree RSS sampling -----------------------------------------------------------------

def _children(pid: int) -> list[int]:
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                out += [int(x) for x in handle.read().split()]
    except OSError:
        pass
    return out


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def _pss(pid: int) -> int:
    """Proportional set size: pages shared between processes (the forkserver's imports) count once."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return _rss(pid)


def _cpu(pid: int) -> float:
    """utime + stime of one process (not its children), in seconds."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def tree_sample(pid: int, cpu: dict[int, float], pss: bool = True) -> tuple[int, int, int]:
    """(sum of PSS over the tree, or of RSS without `pss`; sum of RSS over the tree; largest single
    process RSS); records each process's CPU time."""
    todo, total, rss_sum, largest = [pid], 0, 0, 0
    while todo:
        p = todo.pop()
        rss = _rss(p)
        total += _pss(p) if pss else rss
        rss_sum += rss
        largest = max(largest, rss)
        cpu[p] = max(cpu.get(p, 0.0), _cpu(p))
        todo += _children(p)
    return total, rss_sum, largest


SAMPLE_EVERY = 0.1  # seconds; reading smaps_rollup is not free, and the sampler must not steal the CPUs


def run_process(argv: list[str], *, pss: bool = True, **popen) -> tuple[subprocess.Popen, str, dict]:
    """Run a command from process start to exit, sampling its whole process tree (workers
    included) every 0.1 s from a thread: peak memory, and CPU time summed over every process seen
    (or, when larger, the kernel's count for the command and every descendant it waited for).
    The wall time ends when the kernel reports the exit, not at the sampler's next tick.

    pss=False reads RSS only: smaps_rollup walks every mapping of every process under the
    process's own mmap lock (~17 ms a sample for the 4-6 shard writers, 0.2 s of CPU over a 3 s
    run on 2 cores), which slows the command it measures; a benchmark then measures PSS in a run
    of its own."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, **popen)
    peaks = [0, 0, 0]  # tree (PSS or RSS), RSS sum, largest process
    cpu: dict[int, float] = {}

    def tick() -> None:
        for i, value in enumerate(tree_sample(proc.pid, cpu, pss)):
            peaks[i] = max(peaks[i], value)

    out, wall, usage = watch(proc, proc.stdout, tick, started)
    tree_cpu = max(sum(cpu.values()), usage.ru_utime + usage.ru_stime)
    return proc, out, {"wall": wall, "peak_tree_rss": peaks[0], "peak_rss_sum": peaks[1],
                       "peak_process_rss": peaks[2], "cpu": tree_cpu}


def watch(proc: subprocess.Popen, stream, tick, started: float):
    """`tick()` every SAMPLE_EVERY from a thread while `proc` runs; `stream` (its pipe) read to
    the end. Returns (what the pipe gave, wall seconds from `started` to the kernel's report of the
    exit, its rusage: the process and every descendant it waited for); sets `proc.returncode`."""
    done = threading.Event()

    def sampler() -> None:
        while not done.is_set():
            tick()
            done.wait(SAMPLE_EVERY)

    thread = threading.Thread(target=sampler, daemon=True)
    thread.start()
    out = stream.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    done.set()
    thread.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return out, wall, usage


def run_step(args: list[str]) -> dict:
    """Run one step in a child process (timed inside it, around the measured call)."""
    proc, out, sample = run_process([sys.executable, __file__, "--step", *args])
    if proc.returncode != 0:
        raise SystemExit(f"step {args} failed ({proc.returncode})")
    result = json.loads(out.strip().splitlines()[-1])
    result.update(sample)
    return result


STAGE_LINE = re.compile(r"speech: (\d+) source row\(s\) prepared in ([0-9.]+)s")


def run_command(root: Path, corpus: str, workers: str) -> dict:
    """The whole command a user runs, timed from process start to exit: prepare, records, gates."""
    argv = [str(Path(sys.executable).with_name("persian-data")), "prepare", "speech", "--only", corpus,
            "--root", str(root)]
    if workers != "auto":
        argv += ["--prepare-workers", workers]
    started = time.time()
    proc, out, sample = run_process(argv, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{out[-3000:]}")
    log_text = (root / "logs" / "dataset_download.log").read_text("utf-8")
    match = STAGE_LINE.search(log_text)
    rows = int(match[1]) if match else 0
    sample.update(seconds=sample["wall"], rows=rows, clips=rows, stage_in_command=float(match[2]) if match else 0.0,
                  steps=[(started, "process start")] + _log_steps(log_text) + [(started + sample["wall"], "exit")])
    return sample


def _log_steps(text: str) -> list[tuple[float, str]]:
    """(time stamp, line) of each line the run logged: where the whole command's time goes."""
    import datetime

    out = []
    for line in text.splitlines():
        try:
            stamp = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
        except ValueError:
            continue
        out.append((stamp.timestamp(), line[24:140]))
    return out


def _mb(n: int) -> str:
    return f"{n / 2**20:,.0f} MB"


def report(name: str, r: dict, cpus: int) -> None:
    """`cpus`: how many CPUs the step can use; the CPU-bound rate is what it would reach owning them."""
    rate = r["rows"] / r["seconds"]
    print(f"{name:<32} {r['rows']:>7,} rows {r['seconds']:7.2f} s {rate:7,.0f} clips/s | "
          f"CPU {r['cpu']:6.1f} s = {r['rows'] / max(r['cpu'], 1e-9) * cpus:6,.0f} clips/s on {cpus} idle CPU(s) | "
          f"peak memory {_mb(r['peak_tree_rss'])} PSS / {_mb(r['peak_rss_sum'])} RSS, all processes "
          f"(largest RSS {_mb(r['peak_process_rss'])})",
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=CV_TOTAL, help="Common Voice clips (default 48,904)")
    parser.add_argument("--fleurs-scale", type=float, default=1.0, help="FLEURS size, 1.0 = real clip counts")
    parser.add_argument("--workdir", type=Path, default=None, help="keep generated data here (reused if present)")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--skip-deep", action="store_true")
    parser.add_argument("--skip-fleurs", action="store_true")
    parser.add_argument("--rounds", type=int, default=1,
                        help="interleaved rounds of whole command / stage alone / baseline; medians are compared")
    parser.add_argument("--delete-between", action="store_true",
                        help="delete each root right after its step (for a tmpfs --workdir, where deleting is free "
                             "and RAM is short; on a disk, deleting 49k files slows the next steps' file creation)")
    parser.add_argument("--step", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    from installed import as_installed  # (bench/installed.py)

    as_installed()  # the commands read our modules from bytecode, as after pip install

    if args.step:
        kind, root = args.step[0], Path(args.step[1])
        if kind == "baseline":
            result = step_baseline(root)
        elif kind == "gate":
            result = step_gate(root)
        else:
            workers = int(args.step[3]) if len(args.step) > 3 and args.step[3] != "auto" else None
            result = step_prepare(root, kind, args.step[2] == "deep", workers)
        print(json.dumps(result))
        return

    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_speech_"))
    gen = work / "gen"
    stamp = gen / f"done-v2-{args.clips}-{args.fleurs_scale}"
    if not stamp.exists():
        shutil.rmtree(gen, ignore_errors=True)
        started = time.perf_counter()
        cv = generate_cv(gen / "commonvoice" / "data", args.clips)
        fl = generate_fleurs(gen / "fleurs" / "data" / "fa_ir", args.fleurs_scale)
        stamp.touch()
        print(f"generated {cv['clips']:,} CV clips ({cv['audio_bytes'] / 2**20:,.0f} MB of MP3) and "
              f"{fl['clips']:,} FLEURS clips in {time.perf_counter() - started:.1f}s under {gen}", flush=True)
    workers = str(args.workers) if args.workers else "auto"
    pool = args.workers or os.cpu_count() or 1
    print(f"machine: {os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.1f} "
          f"(other processes compete for the CPUs: compare the CPU-time rates); workers {workers}")
    warm_page_cache(gen)
    print(f"creating a clip-sized file under {work} costs {file_create_cost(work):.0f} us of CPU now", flush=True)
    results = {}
    rounds: dict[str, list[dict]] = {"command": [], "cv": [], "baseline": []}

    def settled(root: Path) -> Path:
        # every step starts with the previous one's writes on disk (not dirty in the page cache,
        # where the kernel would flush them during this step). Roots are deleted only at the end:
        # on a disk mounted with online discard, creating files where 49k were just deleted can
        # cost 25x more kernel time for minutes (measured here: 530 vs 20 us per file)
        os.sync()
        return root

    for number in range(args.rounds):
        label = f" [round {number + 1}/{args.rounds}]" if args.rounds > 1 else ""
        rounds["command"].append(run_command(settled(fresh_root(work, f"command{number}", "commonvoice")),
                                             "commonvoice", workers))
        report("whole command (process start-exit)" + label, rounds["command"][-1], pool)
        if args.delete_between:
            shutil.rmtree(work / "roots" / f"command{number}", ignore_errors=True)
            shutil.rmtree(work / "roots" / f"cv{number - 1}", ignore_errors=True)
        cv_root = settled(fresh_root(work, f"cv{number}", "commonvoice"))
        rounds["cv"].append(run_step(["commonvoice", str(cv_root), "default", workers]))
        report("stage alone: prepare_speech()" + label, rounds["cv"][-1], pool)
        if not args.skip_baseline:
            rounds["baseline"].append(run_step(["baseline", str(settled(fresh_root(work, f"baseline{number}",
                                                                                   "commonvoice")))]))
            report("baseline (pandas, per row)" + label, rounds["baseline"][-1], 1)
            if args.delete_between:
                shutil.rmtree(work / "roots" / f"baseline{number}", ignore_errors=True)
    for key, runs in rounds.items():
        if runs:
            results[key] = sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]  # the median run
    if args.rounds > 1:
        print(f"medians of {args.rounds} rounds:")
        report("whole command (process start-exit)", results["command"], pool)
        report("stage alone: prepare_speech()", results["cv"], pool)
        if "baseline" in results:
            report("baseline (pandas, per row)", results["baseline"], 1)
    results["gate"] = run_step(["gate", str(settled(cv_root))])
    report("speech gate, thorough (re-hash all)", results["gate"], pool)
    if not args.skip_deep:
        results["deep"] = run_step(["commonvoice", str(settled(fresh_root(work, "cv_deep", "commonvoice"))), "deep",
                                    workers])
        report("stage alone, --deep", results["deep"], pool)
    if not args.skip_fleurs:
        results["fleurs"] = run_step(["fleurs", str(settled(fresh_root(work, "fleurs", "fleurs"))), "default", workers])
        report("stage alone, FLEURS", results["fleurs"], pool)
    command, stage = results["command"], results["cv"]
    print(f"creating a clip-sized file under {work} costs {file_create_cost(work):.0f} us of CPU now", flush=True)
    print("where the whole command's time goes (seconds since the previous log line):")
    steps = command["steps"]
    for (previous, _), (stamp, line) in zip(steps, steps[1:]):
        seconds = stamp - previous
        if seconds >= 0.2:
            print(f"  {seconds:6.2f} s  {line}")
    rate = command["rows"] / command["seconds"]
    over = command["seconds"] / stage["seconds"] - 1
    print(f"whole command {command['seconds']:.2f} s vs stage alone {stage['seconds']:.2f} s "
          f"(stage inside the command: {command['stage_in_command']:.2f} s): {over:+.1%}; "
          f"target within 15 %: {'met' if over <= 0.15 else 'NOT met'}")
    print(f"whole command >= 4,000 clips/s: {'met' if rate >= 4000 else 'NOT met'} ({rate:,.0f}/s wall clock; "
          f"{command['rows'] / command['cpu'] * pool:,.0f}/s by CPU time on {pool} idle CPU(s))")
    if "baseline" in results:
        base = results["baseline"]
        ratio = rate / (base["rows"] / base["seconds"])
        cpu_ratio = (base["cpu"] / base["rows"]) / (command["cpu"] / command["rows"])
        print(f"whole command vs baseline: {ratio:.2f}x wall clock (target >= 2x: {'met' if ratio >= 2 else 'NOT met'}); "
              f"{cpu_ratio:.2f}x less CPU per clip")
    peak = max(command["peak_rss_sum"], stage["peak_rss_sum"])
    print(f"peak RSS summed over all processes <= 500 MB: {'met' if peak <= 500 * 2**20 else 'NOT met'} "
          f"({_mb(command['peak_rss_sum'])} whole command, {_mb(stage['peak_rss_sum'])} stage alone; "
          f"PSS {_mb(command['peak_tree_rss'])} / {_mb(stage['peak_tree_rss'])})")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    else:
        shutil.rmtree(work / "roots", ignore_errors=True)


if __name__ == "__main__":
    main()
