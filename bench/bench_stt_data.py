"""Benchmark of train-stt's data path: what a GPU waits on, from the manifests to Whisper's input
features, on a generated set the size of Common Voice 13 fa (48,904 MP3 clips at 48 kHz).

    python bench/bench_stt_data.py                          # 48,904 clips (generation + prepare once)
    python bench/bench_stt_data.py --clips 2000             # quick run
    python bench/bench_stt_data.py --workdir W --workers 2  # keep and reuse the generated set

1. Generates the Common Voice-like parquet shards with bench_speech.py's generator (real 48 kHz MP3s,
   1.5-7 s) and runs `prepare speech` on them once (manifests + MP3 files), kept under --workdir.
2. Runs each side in its own child process, sampling the whole process tree (loader workers and
   `datasets`' map processes included) every 0.1 s: peak memory (sum of PSS, and of RSS) and CPU
   seconds of every process.
   - train-stt's path: `ClipDataset` (soundfile decode, soxr to 16 kHz) + `WhisperCollator` (log-mel
     over the clips' own length, labels padded) in a torch DataLoader with --workers processes and
     the seeded length-grouped sampler, batches of --batch-size: every clip of every split once.
   - the baseline, as the transformers speech examples do it: `datasets.Dataset` with
     `cast_column("audio", Audio(sampling_rate=16000))` (torchcodec decodes and resamples) and
     `WhisperFeatureExtractor` in `.map(num_proc=--workers)` (one torch thread per process: left at
     torch's default the map processes' threads spin against each other and cost 3-4x the CPU, which
     would flatter the ratio), then a DataLoader over the mapped set (same workers, shuffled, same
     batch size). `.map` stores 80 x 3,000 float32 per clip
     (960 KB: 47 GB for the whole set), so it runs in chunks of --baseline-chunk clips whose cache
     is deleted after the chunk is loaded; the times add up over the same clips.
   Both use whisper-small's feature extractor (80 mel bins, 30 s); labels are not part of either.
3. Prints clips/s (wall), CPU seconds and clips per CPU second (the per-core rate: the machine is
   shared, so wall times move with other processes' load, printed beside them), the ratio per core
   against the goal (>= 2x), peak memory against the goal (<= 2 GB, all processes), and on paper:
   the clips/s one H100 step of whisper-small at batch 32 consumes, and whether the measured per-core
   rate keeps up on 16 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_speech as bs  # noqa: E402  (the Common Voice generator, fresh roots, process-tree sampling)

GOAL_RATIO, GOAL_MEMORY = 2.0, 2 * 2**30


# -- the set -----------------------------------------------------------------------------------------

def prepared_root(work: Path, clips: int, workers: int | None) -> Path:
    """Generated shards, prepared once: manifests and MP3 files under work/roots/stt-data."""
    gen = work / "gen"
    stamp = gen / f"done-stt-{clips}"
    root = work / "roots" / "stt-data"
    if not stamp.exists():
        shutil.rmtree(gen, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)
        started = time.perf_counter()
        info = bs.generate_cv(gen / "commonvoice" / "data", clips)
        stamp.touch()
        print(f"generated {info['clips']:,} clips ({info['audio_bytes'] / 2**20:,.0f} MB of MP3) in "
              f"{time.perf_counter() - started:.0f} s", flush=True)
    done = root / ".bench-prepared"
    if not done.exists():
        bs.fresh_root(work, "stt-data", "commonvoice")
        started = time.perf_counter()
        result = bs.run_step(["commonvoice", str(root), "default", str(workers) if workers else "auto"])  # prepare speech
        print(f"prepared {result['clips']:,} clips in {time.perf_counter() - started:.0f} s", flush=True)
        done.touch()
    return root


def clips_of(root: Path) -> tuple[list[str], list[float]]:
    from persian_data.catalog import BY_KEY
    from persian_data.layout import Layout

    paths, durations = [], []
    for split in ("train", "validation", "test"):
        manifest = Layout(root).manifest(BY_KEY["commonvoice"], split)
        for line in manifest.read_text("utf-8").splitlines():
            row = json.loads(line)
            paths.append(row["audio_path"])
            durations.append(row["duration"])
    return paths, durations


# -- the two sides (each in its own process) ---------------------------------------------------------

def step_ours(root: Path, workers: int, batch: int) -> dict:
    import torch
    from transformers import WhisperFeatureExtractor

    from persian_data.train.data import ClipDataset, SeededLengthSampler, WhisperCollator

    paths, durations = clips_of(root)
    fe = WhisperFeatureExtractor(feature_size=80)  # whisper-small's
    started = time.perf_counter()
    labels = [[7] * 40 for _ in paths]  # labels are made once before training; 40 tokens each here
    dataset = ClipDataset(root, paths, labels, 16_000)
    sampler = SeededLengthSampler(batch, [int(d * 16_000) for d in durations], seed=0)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, sampler=sampler, num_workers=workers,
                                         collate_fn=WhisperCollator(fe, decoder_start_token_id=-1))
    clips = 0
    for item in loader:
        clips += item["input_features"].shape[0]
    return {"seconds": time.perf_counter() - started, "clips": clips}


def step_baseline(root: Path, workers: int, batch: int, chunk: int, cache: Path) -> dict:
    import torch
    from datasets import Audio, Dataset
    from datasets.utils.logging import disable_progress_bar
    from transformers import WhisperFeatureExtractor

    disable_progress_bar()
    paths, _ = clips_of(root)
    fe = WhisperFeatureExtractor(feature_size=80)

    def prepare(example):
        # one torch thread per .map process, as the DataLoader sets in its workers: with torch's default
        # (a thread per core) in every process, the threads spin against each other, 3-4x the CPU here
        if torch.get_num_threads() != 1:
            torch.set_num_threads(1)
        audio = example["audio"]
        example["input_features"] = fe(audio["array"], sampling_rate=audio["sampling_rate"]).input_features[0]
        return example

    started = time.perf_counter()
    clips, map_seconds, cache_bytes = 0, 0.0, 0
    for start in range(0, len(paths), chunk):
        shutil.rmtree(cache, ignore_errors=True)
        cache.mkdir(parents=True)
        part = Dataset.from_dict({"audio": [str(root / p) for p in paths[start:start + chunk]]})
        part = part.cast_column("audio", Audio(sampling_rate=16_000))
        t0 = time.perf_counter()
        mapped = part.map(prepare, remove_columns=["audio"], num_proc=workers or None,
                          cache_file_name=str(cache / "features.arrow"))
        map_seconds += time.perf_counter() - t0
        cache_bytes = max(cache_bytes, sum(f.stat().st_size for f in cache.iterdir()))
        loader = torch.utils.data.DataLoader(mapped.with_format("torch"), batch_size=batch, shuffle=True,
                                             num_workers=workers)
        for item in loader:
            clips += item["input_features"].shape[0]
        del loader, mapped, part
    shutil.rmtree(cache, ignore_errors=True)
    return {"seconds": time.perf_counter() - started, "clips": clips, "map_seconds": map_seconds,
            "cache_bytes_per_chunk": cache_bytes}


def step_agreement(root: Path) -> dict:
    """How close the two paths' features are on a few clips (soxr vs ffmpeg's resampler)."""
    import numpy as np
    from datasets import Audio, Dataset
    from transformers import WhisperFeatureExtractor

    from persian_data.train.audio import load_clip
    from persian_data.train.features import whisper_features

    paths, _ = clips_of(root)
    fe = WhisperFeatureExtractor(feature_size=80)
    picked = paths[:: max(1, len(paths) // 8)][:8]
    ours = whisper_features(fe, [load_clip(root / p, 16_000) for p in picked]).numpy()
    ds = Dataset.from_dict({"audio": [str(root / p) for p in picked]}).cast_column("audio", Audio(sampling_rate=16_000))
    theirs = np.stack([fe(a["array"], sampling_rate=16_000).input_features[0] for a in ds["audio"]])
    return {"clips": len(picked), "max_abs_diff": float(np.abs(ours - theirs).max()),
            "mean_abs_diff": float(np.abs(ours - theirs).mean()), "value_range": float(theirs.max() - theirs.min())}


# -- on paper ------------------------------------------------------------------------------------------

def h100_clips_per_second(batch: int = 32, mfu: float = 0.4, peak: float = 989e12, label_tokens: int = 40) -> dict:
    """Training FLOPs of one whisper-small clip (forward x 3), from its config: d_model 768, 12 encoder
    and 12 decoder layers, FFN 3,072, 1,500 encoder positions, a 51,865-token output layer; `mfu` of
    an H100 SXM's dense bf16 peak (989 TFLOP/s)."""
    d, ffn, layers, positions, vocab = 768, 3072, 12, 1500, 51_865
    conv = 2 * 80 * d * 3 * 3000 + 2 * d * d * 3 * positions
    encoder = layers * (2 * (4 * d * d + 2 * d * ffn) * positions + 4 * positions * positions * d)
    decoder = layers * (2 * (8 * d * d + 2 * d * ffn) * label_tokens + 4 * label_tokens * positions * d)
    decoder += 2 * d * vocab * label_tokens
    per_clip = 3 * (conv + encoder + decoder)
    step_seconds = batch * per_clip / (mfu * peak)
    return {"flops_per_clip": per_clip, "step_seconds": step_seconds, "clips_per_second": batch / step_seconds,
            "mfu": mfu, "batch": batch}


def run_step(args: list[str]) -> dict:
    """One side in a child process of this script, its whole process tree sampled (bench_speech's sampler)."""
    proc, out, sample = bs.run_process([sys.executable, __file__, "--step", *args])
    if proc.returncode != 0:
        raise SystemExit(f"step {args[0]} failed ({proc.returncode})")
    result = json.loads(out.strip().splitlines()[-1])
    result.update(sample)
    return result


# -- report --------------------------------------------------------------------------------------------

def show(name: str, r: dict) -> None:
    print(f"{name:<34} {r['clips']:>7,} clips {r['seconds']:8.1f} s {r['clips'] / r['seconds']:7.1f} clips/s | "
          f"CPU {r['cpu']:8.1f} s = {r['clips'] / r['cpu']:6.1f} clips per CPU second | peak memory "
          f"{bs._mb(r['peak_tree_rss'])} PSS / {bs._mb(r['peak_rss_sum'])} RSS, all processes "
          f"(largest {bs._mb(r['peak_process_rss'])})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=bs.CV_TOTAL, help="Common Voice clips (default 48,904)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the generated set here (reused if present)")
    parser.add_argument("--workers", type=int, default=None, help="loader processes, both sides (default: CPUs)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--baseline-chunk", type=int, default=4000, help="clips per .map (its cache: 960 KB a clip)")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--step", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    from installed import as_installed  # (bench/installed.py)

    as_installed()  # the commands read our modules from bytecode, as after pip install

    if args.step:
        kind, root = args.step[0], Path(args.step[1])
        if kind == "ours":
            result = step_ours(root, int(args.step[2]), int(args.step[3]))
        elif kind == "baseline":
            result = step_baseline(root, int(args.step[2]), int(args.step[3]), int(args.step[4]), Path(args.step[5]))
        else:
            result = step_agreement(root)
        print(json.dumps(result))
        return

    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_stt_data_"))
    cpus = len(os.sched_getaffinity(0))
    workers = args.workers if args.workers is not None else cpus
    root = prepared_root(work, args.clips, args.workers)
    bs.warm_page_cache(root / "datasets/speech/commonvoice_fa/audio")
    print(f"machine: {cpus} CPU(s), load average {os.getloadavg()[0]:.1f} at start (other processes compete for "
          f"the CPUs: compare the per-CPU-second rates); {workers} loader process(es), batch {args.batch_size}",
          flush=True)
    agree = run_step(["agreement", str(root)])
    print(f"features of {agree['clips']} clips, train-stt vs baseline: max |diff| {agree['max_abs_diff']:.4f}, mean "
          f"{agree['mean_abs_diff']:.5f} (values span {agree['value_range']:.2f}; soxr vs ffmpeg resampling)")
    ours = run_step(["ours", str(root), str(workers), str(args.batch_size)])
    show("train-stt loader", ours)
    base = None
    if not args.skip_baseline:
        base = run_step(["baseline", str(root), str(workers), str(args.batch_size), str(args.baseline_chunk),
                            str(work / "baseline-cache")])
        show("baseline: datasets cast_column + .map", base)
        print(f"  (.map {base['map_seconds']:.1f} s of it; cache {base['cache_bytes_per_chunk'] / 2**30:.2f} GB per "
              f"{args.baseline_chunk:,}-clip chunk, {base['cache_bytes_per_chunk'] / args.baseline_chunk * ours['clips'] / 2**30:.0f} "
              f"GB for the whole set in one .map)")
    print(f"load average at end {os.getloadavg()[0]:.1f}")
    per_core = ours["clips"] / ours["cpu"]
    if base:
        ratio = per_core / (base["clips"] / base["cpu"])
        print(f"per core (clips per CPU second): {ratio:.2f}x the baseline (goal >= {GOAL_RATIO:g}x: "
              f"{'met' if ratio >= GOAL_RATIO else 'NOT met'}); wall clock {ours['clips'] / ours['seconds']:.1f} vs "
              f"{base['clips'] / base['seconds']:.1f} clips/s = {(ours['clips'] / ours['seconds']) / (base['clips'] / base['seconds']):.2f}x")
    peak = ours["peak_tree_rss"]
    print(f"peak memory of the train-stt loader, all processes: {bs._mb(peak)} PSS ({bs._mb(ours['peak_rss_sum'])} "
          f"RSS summed) (goal <= 2 GB: {'met' if peak <= GOAL_MEMORY else 'NOT met'})")
    need = h100_clips_per_second(batch=32)
    print(f"on paper: one H100 step of whisper-small at batch 32 = {need['flops_per_clip'] * 32 / 1e12:.1f} TFLOP "
          f"(forward x 3); at {need['mfu']:.0%} of 989 TFLOP/s bf16 that is {need['step_seconds'] * 1000:.0f} ms a step, "
          f"{need['clips_per_second']:.0f} clips/s to feed (at 100 %: {need['clips_per_second'] / need['mfu']:.0f})")
    at16 = per_core * 15  # one of the 16 cores runs the training process
    print(f"16 cores (15 loader processes) x {per_core:.1f} clips per CPU second = {at16:.0f} clips/s: "
          f"{'keeps up' if at16 >= need['clips_per_second'] else 'does NOT keep up'} with {need['clips_per_second']:.0f} "
          f"({at16 / need['clips_per_second']:.1f}x); at 100 % MFU: "
          f"{'keeps up' if at16 >= need['clips_per_second'] / need['mfu'] else 'does not keep up'}")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
