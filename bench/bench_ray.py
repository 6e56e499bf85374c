"""Benchmark: `prepare speech` and `prepare text` with `--engine ray` on a local 2-node cluster,
against the local engine, in one run.

    python bench/bench_ray.py --workdir /tmp/bench_ray                          # real size
    python bench/bench_ray.py --workdir /tmp/bench_ray --clips 3000 --text-scale 0.03   # smoke run

On one machine Ray can only add overhead (the same units, plus scheduling, the object store and
its own processes): the goal is Ray's whole command <= 1.25x the local engine's time.

1. Generates once into --workdir (kept, reused): the Common Voice set of bench_speech.py (48,904
   real 48 kHz MP3 clips in four parquet shards, `--clips`) and the 845 MB chat corpus of
   bench_chat.py (`--text-scale`). Each run gets a fresh root at the same path (lhotse's
   recordings name the audio by absolute path), laid out as `fetch` leaves it (hard links, lock,
   README.source.md, hash cache); the previous run's root is renamed aside, not deleted (deleting
   49k files slows the next run's file creation on this disk), and all are deleted at the end
   (~1.4 GB of clips each for speech).
2. Starts a Ray cluster on this machine with tests/ray_cluster.py: a head and a second node, one
   CPU each (the local engine's default here is 2 worker processes), loopback addresses only.
3. Per round and workload, interleaved: the whole command `persian-data prepare speech|text
   --root R [--engine ray --ray-address A]`, process start to the kernel's report of its exit,
   `os.sync()` before each. Every 0.1 s a thread samples the command's process tree and, for Ray,
   every process of both nodes (GCS, raylets, agents, workers): the sum of RSS and the CPU seconds
   of every process during the run (Ray's included). After the rounds, one run per workload and
   engine for peak memory as the sum of PSS (shared pages, the object store's included, count
   once): reading PSS takes each process's memory lock (~12 processes, the object store mapped
   in each), which would slow the timed runs, Ray's more than the local engine's. The outputs of the two engines must be the same bytes: the sha256 of
   `checksums/datasets.sha256.txt` (every file under datasets/) and of each output are compared.
4. Prints wall, CPU seconds, peak memory, the ratio ray/local against the goal, the load average,
   and the per-unit costs the README's "Scaling out" section works from.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

import bench_chat  # noqa: E402
import bench_speech as speech  # noqa: E402
from ray_cluster import LocalCluster, node_env  # noqa: E402

GOAL = 1.25
MB = 1_000_000
CLI = str(Path(sys.executable).with_name("persian-data"))
OUTPUTS = {"speech": "datasets/speech/commonvoice_fa", "text": "datasets/text/persian_conversation"}


def generate(work: Path, clips: int, text_scale: float) -> dict:
    gen = work / "gen"
    info_file = gen / f"info-{clips}-{text_scale}.json"
    if info_file.exists():
        return json.loads(info_file.read_text())
    t0 = time.perf_counter()
    shutil.rmtree(gen, ignore_errors=True)
    cv = speech.generate_cv(gen / "commonvoice" / "data", clips)
    scratch = work / "text-scratch"
    shutil.rmtree(scratch, ignore_errors=True)
    paths = bench_chat.generate(scratch, text_scale, utf8=False)
    (gen / "text").mkdir(parents=True)
    for path in paths:
        os.rename(path, gen / "text" / path.name)
    shutil.rmtree(scratch)
    info = {"clips": cv["clips"], "audio_bytes": cv["audio_bytes"],
            "text_bytes": sum((gen / "text" / p.name).stat().st_size for p in paths)}
    for corpus in ("commonvoice", "text"):
        speech.source_digests(work, corpus)
    info_file.write_text(json.dumps(info))
    print(f"generated in {time.perf_counter() - t0:.0f} s: {info}", flush=True)
    return info


def cluster_pids(cluster: LocalCluster) -> list[int]:
    return [pid for node in cluster.nodes for pid in node.pids()]


def sample(pids: list[int], cpu: dict[int, float], pss: bool = True) -> tuple[int, int]:
    """(sum of PSS, or of RSS without `pss`; sum of RSS) over `pids` and their descendants; records
    each one's CPU time."""
    seen, todo, pss_sum, rss_sum = set(), list(pids), 0, 0
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        rss = speech._rss(pid)
        pss_sum += speech._pss(pid) if pss else rss
        rss_sum += rss
        cpu[pid] = max(cpu.get(pid, 0.0), speech._cpu(pid))
        todo += speech._children(pid)
    return pss_sum, rss_sum


OLD = ".old-"  # roots of earlier runs, set aside under roots/ and deleted when the benchmark ends


def on_tmpfs(path: Path) -> bool:
    """Whether `path` is on a tmpfs (the mount with the longest prefix of it, from mountinfo)."""
    best, kind = "", ""
    target = os.path.realpath(path)
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            fields = line.split()
            mount, fstype = fields[4], fields[fields.index("-") + 1]
            if (target == mount or target.startswith(mount.rstrip("/") + "/")) and len(mount) >= len(best):
                best, kind = mount, fstype
    return kind == "tmpfs"


def set_aside(work: Path, name: str) -> None:
    """Move the previous run's root out of the way in one rename instead of deleting it: on a disk
    mounted with online discard (this one), creating files where 49k were just deleted costs many
    times the kernel time for minutes (bench_speech.py measured 530 against 20 us a file), and
    that cost would land on whichever engine runs next. On a tmpfs (no discard; the roots would
    fill memory) it is deleted now."""
    root = work / "roots" / name
    if not root.exists():
        return
    if on_tmpfs(root):
        shutil.rmtree(root)
    else:
        os.rename(root, work / "roots" / f"{OLD}{name}-{time.time_ns()}")


def delete_set_aside(work: Path) -> None:
    for old in (work / "roots").glob(f"{OLD}*"):
        shutil.rmtree(old, ignore_errors=True)


def run(work: Path, what: str, engine: str, cluster: LocalCluster, pss: bool = False) -> dict:
    """The whole command, from process start to the kernel's report of its exit, with its process
    tree and (for Ray) the cluster's processes sampled every 0.1 s from a thread. `pss`: peak
    memory as PSS; reading it (smaps_rollup, under each process's memory lock, ~12 processes with
    the object store mapped) slows what it measures, so timed runs read RSS and CPU only, and
    PSS is measured in runs of its own."""
    corpus = "commonvoice" if what == "speech" else "text"
    set_aside(work, what)
    root = speech.fresh_root(work, what, corpus)  # the same path for both engines
    argv = [CLI, "prepare", what, "--root", str(root)]
    if engine == "ray":
        argv += ["--engine", "ray", "--ray-address", cluster.address]
    os.sync()
    ray_pids = cluster_pids(cluster)
    cpu0: dict[int, float] = {}
    sample(ray_pids, cpu0, pss=False)  # the cluster's CPU before the run: only what it spends during the run counts
    load = os.getloadavg()[0]
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=node_env())
    cpu: dict[int, float] = {}
    cluster_cpu: dict[int, float] = {}
    peaks = [0, 0]

    def tick() -> None:
        mem, rss = sample([proc.pid], cpu, pss)
        c_mem, c_rss = sample(cluster_pids(cluster), cluster_cpu, pss)
        if engine == "ray":  # the local engine's run does not count the idle cluster beside it
            mem, rss = mem + c_mem, rss + c_rss
        peaks[0], peaks[1] = max(peaks[0], mem), max(peaks[1], rss)

    err, wall, usage = speech.watch(proc, proc.stderr, tick, started)
    sample(cluster_pids(cluster), cluster_cpu, pss=False)  # the cluster's CPU up to the end
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{err[-3000:]}")
    ray_cpu = sum(v - cpu0.get(pid, 0.0) for pid, v in cluster_cpu.items())
    command_cpu = max(sum(cpu.values()), usage.ru_utime + usage.ru_stime)  # the command and what it waited for
    log = (root / "logs" / "dataset_download.log").read_text("utf-8")
    outputs = {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
               for p in sorted((root / OUTPUTS[what]).rglob("*"))
               if p.is_file() and "/data/" not in p.as_posix() and "/audio/" not in p.as_posix()}
    checksums = hashlib.sha256((root / "checksums" / "datasets.sha256.txt").read_bytes()).hexdigest()
    return {"wall": wall, "cpu": command_cpu + (ray_cpu if engine == "ray" else 0.0), "ray_cpu": ray_cpu,
            "driver_cpu": cpu.get(proc.pid, 0.0),  # the command's own process: the part that does not scale out
            **({"peak_pss": peaks[0]} if pss else {}),  # without it peaks[0] is the RSS sum again
            "peak_rss": peaks[1], "load": load, "log": log, "outputs": outputs, "checksums": checksums}


def _near_dup_seconds(log: str) -> float | None:
    m = re.search(r"chat: near-duplicates: .* in ([0-9.]+) s", log)
    return float(m[1]) if m else None


def _stage_seconds(log: str, what: str) -> float | None:
    pattern = (r"speech: \d+ source row\(s\) prepared in ([0-9.]+)s" if what == "speech"
               else r"chat: \d+ conversations written .* in ([0-9.]+) s")
    m = re.search(pattern, log)
    return float(m[1]) if m else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/bench_ray"))
    ap.add_argument("--clips", type=int, default=speech.CV_TOTAL, help="Common Voice clips (default 48,904)")
    ap.add_argument("--text-scale", type=float, default=1.0, help="fraction of the 845 MB chat corpus")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--only", choices=("speech", "text"), default=None)
    ap.add_argument("--object-store-mb", type=int, default=1000, help="per node")
    args = ap.parse_args()
    from installed import as_installed  # (bench/installed.py)

    as_installed()  # the commands read our modules from bytecode, as after pip install
    work = args.workdir
    info = generate(work, args.clips, args.text_scale)
    speech.warm_page_cache(work / "gen")
    workloads = [args.only] if args.only else ["speech", "text"]
    cluster = LocalCluster(work / "cluster", object_store_mb=args.object_store_mb)
    shutil.rmtree(cluster.folder, ignore_errors=True)
    cluster.folder.mkdir(parents=True)
    results: dict[tuple[str, str], list[dict]] = {}
    try:
        t0 = time.perf_counter()
        cluster.start_head()
        cluster.add_node("127.0.0.3")
        cluster.wait_nodes(2)
        idle: dict[int, float] = {}
        idle_pss, idle_rss = sample(cluster_pids(cluster), idle)
        print(f"cluster: 2 nodes x 1 CPU up in {time.perf_counter() - t0:.0f} s; idle: {idle_pss / 2**20:.0f} MB PSS "
              f"/ {idle_rss / 2**20:.0f} MB RSS over {len(idle)} processes", flush=True)
        for rnd in range(args.rounds):
            for what in workloads:
                order = ("local", "ray") if rnd % 2 == 0 else ("ray", "local")
                for engine in order:
                    r = run(work, what, engine, cluster)
                    results.setdefault((what, engine), []).append(r)
                    of_ray = (f" (Ray's processes {r['ray_cpu']:.1f} s)" if engine == "ray" else
                              f" (the idle cluster beside it: {r['ray_cpu']:.1f} s, not counted)")
                    near = _near_dup_seconds(r["log"]) if what == "text" else None
                    of_ray += f", near-dup {near:.1f} s" if near is not None else ""
                    of_ray = f" (driver {r['driver_cpu']:.1f} s)" + of_ray
                    print(f"round {rnd + 1} {what:<6} {engine:<5} wall {r['wall']:7.1f} s  CPU {r['cpu']:7.1f} s{of_ray}  "
                          f"peak {r['peak_rss'] / 2**20:6.0f} MB RSS, all processes  load {r['load']:.1f}", flush=True)
                local, ray = results[(what, "local")][-1], results[(what, "ray")][-1]
                same = local["checksums"] == ray["checksums"] and local["outputs"] == ray["outputs"]
                print(f"  outputs identical (checksums file and {len(ray['outputs'])} outputs): {same}", flush=True)
                if not same:
                    raise SystemExit("the engines' outputs differ")
        memory: dict[tuple[str, str], dict] = {}
        for what in workloads:
            for engine in ("local", "ray"):
                memory[(what, engine)] = r = run(work, what, engine, cluster, pss=True)
                print(f"memory {what:<6} {engine:<5} peak {r['peak_pss'] / 2**20:6.0f} MB PSS / "
                      f"{r['peak_rss'] / 2**20:6.0f} MB RSS, all processes (a run of its own, sampling PSS; its "
                      f"wall time {r['wall']:.1f} s is not compared)", flush=True)
    finally:
        cluster.stop()
        delete_set_aside(work)  # after the last run: their deletion slows nothing timed here
    print()
    for what in workloads:
        loc, ray = results[(what, "local")], results[(what, "ray")]
        lw, rw = statistics.median(r["wall"] for r in loc), statistics.median(r["wall"] for r in ray)
        lc, rc = statistics.median(r["cpu"] for r in loc), statistics.median(r["cpu"] for r in ray)
        units = (info["clips"], "clip") if what == "speech" else (info["text_bytes"] / MB, "MB")
        print(f"{what}: local {lw:.1f} s, ray {rw:.1f} s: ray/local x{rw / lw:.2f} (goal <= {GOAL}) | CPU local "
              f"{lc:.1f} s, ray {rc:.1f} s (x{rc / lc:.2f}) | peak memory local "
              f"{memory[(what, 'local')]['peak_pss'] / 2**20:.0f} MB, ray {memory[(what, 'ray')]['peak_pss'] / 2**20:.0f} "
              f"MB PSS (all processes, Ray's included)")
        rd = statistics.median(r["driver_cpu"] for r in ray)
        print(f"  per unit of input: local {1000 * lc / units[0]:.2f} ms CPU per {units[1]}, ray "
              f"{1000 * rc / units[0]:.2f} ms, of which the driver {1000 * rd / units[0]:.2f} ms and the units plus "
              f"Ray's own processes {1000 * (rc - rd) / units[0]:.2f} ms; stage in the log: local "
              f"{_stage_seconds(loc[-1]['log'], what)} s, ray "
              f"{_stage_seconds(ray[-1]['log'], what)} s; loads {[round(r['load'], 1) for r in loc + ray]}")
    print(f"load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (others share the machine above that)")


if __name__ == "__main__":
    main()
