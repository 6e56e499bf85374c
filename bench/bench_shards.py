"""Benchmark of `persian-data shards` on the 48,904 real-size Common Voice clips, against plain `tar`.

    python bench/bench_shards.py --workdir W                  # 48,904 clips (train, validation, test)
    python bench/bench_shards.py --workdir W --clips 3000     # a quick run while developing
    python bench/bench_shards.py --workdir W --rounds 3 --formats webdataset,nemo,shar

1. Generates the Common Voice set once with bench_speech's generator (real 48 kHz MP3s, every
   clip's bytes distinct) and prepares it once with `persian-data prepare speech` into
   W/prepared-<clips>; both are reused by later runs with the same --workdir and --clips.
2. Per round and format, in one run, each timed from process start to exit (the kernel's exit, not
   a sampler's tick) with the whole process tree's RSS and CPU sampled every 0.1 s from a thread
   (CPU seconds of every process; RSS summed over all processes counts the pages the writer
   processes share with the command twice):
   - the whole command a user runs: `persian-data shards --root R --corpus commonvoice --split all
     --format F` (500MB shards; the three splits' shards written by one pool), after removing the
     previous sets, their journals and staging, os.sync() and 5 s for the freed memory to settle
     (settle());
   - the baseline, plain `tar -cf OUT -T list` of the same 48,904 audio files (manifest order),
     into the same filesystem, after the same os.sync() and settling. tar does not fsync; the
     shards are fsynced before they are renamed into place, so `tar` followed by `sync` is
     printed too.
3. Then once per format a run of its own for peak memory as PSS (pages shared between processes
   counted once): reading PSS (smaps_rollup) costs ~17 ms a sample under the writers' own memory
   lock, which would slow the timed runs (and tar, one small process, not).
4. Prints MB/s (audio bytes / wall time), CPU seconds, the load average before and after each step
   (the machine is shared: compare ratios of one run, and CPU seconds), peak memory, and the ratio
   shards / tar against the goal (>= 70 %).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_speech  # noqa: E402  (generator, fetched-root builder, process-tree sampler)

SPLITS = ("train", "validation", "test")
GOAL = 0.70
SETTLE = 5.0  # seconds between deleting the last run's output and the next timed run (see settle())


def prepared_root(work: Path, clips: int) -> Path:
    """W/prepared-<clips>: Common Voice fetched (as bench_speech lays it out) and prepared, once."""
    root = work / f"prepared-{clips}"
    stamp = root / ".bench-prepared"
    if stamp.exists():
        return root
    gen = work / "gen"
    gen_stamp = gen / f"cv-{clips}"
    if not gen_stamp.exists():
        shutil.rmtree(gen, ignore_errors=True)
        started = time.perf_counter()
        made = bench_speech.generate_cv(gen / "commonvoice" / "data", clips)
        gen_stamp.touch()
        print(f"generated {made['clips']:,} clips ({made['audio_bytes'] / 1e6:,.0f} MB of MP3) in "
              f"{time.perf_counter() - started:.0f}s", flush=True)
    fetched = bench_speech.fresh_root(work, "fetched", "commonvoice")
    shutil.rmtree(root, ignore_errors=True)
    fetched.rename(root)
    started = time.perf_counter()
    subprocess.run([_console(), "prepare", "speech", "--only", "commonvoice", "--root", str(root)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(f"prepared {root} in {time.perf_counter() - started:.0f}s", flush=True)
    stamp.touch()
    return root


def _console() -> str:
    return str(Path(sys.executable).with_name("persian-data"))


def audio_files(root: Path, split: str) -> list[str]:
    manifest = root / "datasets/speech/commonvoice_fa/manifests" / f"{split}.jsonl"
    return [json.loads(line)["audio_path"] for line in manifest.read_text("utf-8").splitlines() if line.strip()]


def _load() -> str:
    return f"{os.getloadavg()[0]:.1f}"


def settle() -> None:
    """Every timed run starts from the same memory state. On this VM (virtio-balloon) freed memory
    is reported to the hypervisor within seconds; a run started right after a 1.4 GB delete reuses
    those pages for free, one started later faults them back in from the host (tar of the same
    files: 1.5 s right after deleting its last output, 1.7-1.9 s six seconds later, and up to
    3-4 s after the shards runs freed several GB). Without this, whichever step happened to follow
    a large delete looked fast: tar after tar+sync's output, or a format after its own last set."""
    os.sync()
    time.sleep(SETTLE)


def run_shards(root: Path, fmt: str, split: str, workers: int | None, pss: bool = False) -> dict:
    for leftover in (root / "shards" / "commonvoice" / fmt, root / ".persian-data" / "shards" / "commonvoice" / fmt,
                     root / ".persian-data" / "staging" / "shards"):
        shutil.rmtree(leftover, ignore_errors=True)
    settle()
    argv = [_console(), "shards", "--root", str(root), "--corpus", "commonvoice", "--split", split, "--format", fmt]
    if workers:
        argv += ["--workers", str(workers)]
    load = _load()
    proc, out, sample = bench_speech.run_process(argv, pss=pss, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{out[-3000:]}")
    sample["load"] = f"{load}->{_load()}"
    return sample


def run_tar(root: Path, files: list[str], out: Path, then_sync: bool) -> dict:
    out.unlink(missing_ok=True)
    listing = out.with_suffix(".list")
    listing.write_text("\n".join(files) + "\n")
    settle()
    argv = ["tar", "-cf", str(out), "-C", str(root), "-T", str(listing)]
    if then_sync:  # the same bytes made durable, as the shards are (fsync before rename)
        argv = ["sh", "-c", " ".join(argv) + f" && sync -d {out}"]
    load = _load()
    proc, text, sample = bench_speech.run_process(argv, pss=False, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise SystemExit(f"tar failed: {text[-2000:]}")
    sample["load"] = f"{load}->{_load()}"
    out.unlink(missing_ok=True)
    return sample


def line(name: str, r: dict, mb: float) -> str:
    return (f"{name:<34} {r['wall']:7.2f} s {mb / r['wall']:7.1f} MB/s | CPU {r['cpu']:6.2f} s | "
            f"peak {r['peak_rss_sum'] / 2**20:5.0f} MB RSS all processes | load {r['load']}")


def memory_line(name: str, r: dict) -> str:
    return (f"{name:<34} peak {r['peak_tree_rss'] / 2**20:5.0f} MB PSS, {r['peak_rss_sum'] / 2**20:5.0f} MB RSS, "
            f"all processes (a run of its own, sampling PSS; its wall time {r['wall']:.2f} s is not compared)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, required=True, help="generated and prepared data are kept here")
    parser.add_argument("--clips", type=int, default=bench_speech.CV_TOTAL)
    parser.add_argument("--formats", default="webdataset", help="comma separated: webdataset,shar,nemo")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds; medians are compared")
    parser.add_argument("--workers", type=int, default=None, help="--workers of the command (default: its own)")
    args = parser.parse_args()
    from installed import as_installed  # (bench/installed.py)

    as_installed()  # the commands read our modules from bytecode, as after pip install

    args.workdir.mkdir(parents=True, exist_ok=True)
    root = prepared_root(args.workdir, args.clips)
    files = {split: audio_files(root, split) for split in SPLITS}
    total = sum(len(f) for f in files.values())
    mb = sum((root / p).stat().st_size for f in files.values() for p in f) / 1e6
    print(f"machine: {os.cpu_count()} CPU(s), load {_load()}; {total:,} clips, {mb:,.0f} MB of audio in "
          f"{root}", flush=True)
    bench_speech.warm_page_cache(root / "datasets" / "speech" / "commonvoice_fa" / "audio")
    formats = args.formats.split(",")
    runs: dict[str, list[dict]] = {}
    tar_out = root.parent / "bench-baseline.tar"

    every = [path for split in SPLITS for path in files[split]]

    def whole(kind: str) -> dict:
        """One measurement over the three splits: one command (`--split all`), or one tar of every clip."""
        if kind == "tar":
            return run_tar(root, every, tar_out, then_sync=False)
        if kind == "tar+sync":
            return run_tar(root, every, tar_out, then_sync=True)
        return run_shards(root, kind, "all", args.workers)

    for number in range(args.rounds):
        for kind in ["tar", *formats, "tar+sync"]:
            result = whole(kind)
            runs.setdefault(kind, []).append(result)
            label = kind if kind.startswith("tar") else f"shards --format {kind}"
            print(line(label + (f" [{number + 1}/{args.rounds}]" if args.rounds > 1 else ""), result, mb),
                  flush=True)
    for fmt in formats:
        print(memory_line(f"shards --format {fmt}", run_shards(root, fmt, "all", args.workers, pss=True)), flush=True)
    median = {k: sorted(v, key=lambda r: r["wall"])[(len(v) - 1) // 2] for k, v in runs.items()}  # lower median
    if args.rounds > 1:
        print(f"medians of {args.rounds} rounds:")
        for kind, r in median.items():
            print(line(kind, r, mb))
    base, durable = median["tar"], median["tar+sync"]
    for fmt in formats:
        ratio = base["wall"] / median[fmt]["wall"]
        print(f"shards --format {fmt}: {ratio:.0%} of plain tar's MB/s (goal >= {GOAL:.0%}: "
              f"{'met' if ratio >= GOAL else 'NOT met'}); {durable['wall'] / median[fmt]['wall']:.0%} of tar + sync; "
              f"CPU {median[fmt]['cpu']:.2f} s vs tar {base['cpu']:.2f} s")
    if args.rounds > 1:
        spread = {k: statistics.pstdev([r["wall"] for r in v]) for k, v in runs.items()}
        print("wall-time spread (stdev, s): " + ", ".join(f"{k} {v:.2f}" for k, v in spread.items()))


if __name__ == "__main__":
    main()
