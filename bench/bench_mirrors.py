"""Benchmark of `persian-data fetch` with two endpoints, the slow one listed first.

    .venv/bin/python bench/bench_mirrors.py                  # ~500 MB, fast link 50 MB/s, slow 5 MB/s
    .venv/bin/python bench/bench_mirrors.py --scale 0.05     # quick smoke run (~125 MB)

What it does:
1. Builds, under --workdir, a local hub store with text, commonvoice and fleurs: the TINY replicas,
   then one more commit per repo whose big files keep their real names and get real-ish sizes
   (bench_fetch.BIG_FILES, times --scale; pseudo-random bytes, distinct per file).
2. Serves that one store twice, each from its own process (`tests/support/hub_process.py`), with a
   bandwidth limit on all of its file bodies together (`--rate`, support.hub_throttle): the fast one at
   --fast-rate, the slow one at a tenth of it (--slow-factor).
3. Runs, interleaved, --repeats times each, `sync` before each, into a fresh root:
   - baseline: `persian-data fetch --only text,commonvoice,fleurs --endpoint FAST`;
   - mirrors:  `persian-data fetch --only text,commonvoice,fleurs --endpoint SLOW --endpoint FAST`
     (the slow endpoint listed first, so it is also the source of truth for the metadata).
   MB/s = bytes of the selected files / wall time of the whole command (process start to exit);
   peak RSS of the command from /usr/bin/time, and of each hub process from /proc (VmHWM).
   For the mirrors runs, the bytes each endpoint served come from the summary block of the log.
4. Prints the medians, the ratio mirrors/baseline against the target (>= 0.9) and the load average
   at start and end (a shared 2-CPU machine moves wall times; compare ratios from one run).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT / "src") not in sys.path:
    sys.path.insert(0, str(REPO_ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(REPO_ROOT / "tests"))  # support: the hub in a process of its own

from bench_fetch import BIG_FILES, MB, blob, cli_cmd, human, reap, say, spawn, timed  # noqa: E402

from persian_data.catalog import BY_KEY  # noqa: E402
from persian_data.corpora.replicas import REPLICA_REPOS, TINY, build_replicas, replica_files  # noqa: E402
from persian_data.localhub.store import HubStore  # noqa: E402
from support.hub_process import HubProcess  # noqa: E402

KEYS = ("text", "commonvoice", "fleurs")
STORE_MARKER = ".bench-mirrors.json"


def build_store(hub_dir: Path, scale: float) -> None:
    store = HubStore(hub_dir)
    build_replicas(store, TINY, only=KEYS)
    for key in KEYS:
        repo_type, repo_id = REPLICA_REPOS[key]
        files: dict = replica_files(key, TINY)
        for path, mb in BIG_FILES[key].items():
            files[path] = blob(max(4096, int(mb * MB * scale)), f"{repo_id}/{path}")
        store.publish(repo_type, repo_id, files, message=f"bench_mirrors scale {scale:g}")
    (hub_dir / STORE_MARKER).write_text(json.dumps({"scale": scale}))


def served_bytes(log: Path) -> dict[str, int]:
    """Endpoint -> bytes served, from the last summary block's `endpoints:` section."""
    block = log.read_text("utf-8").split("===== persian-data summary")[-1]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^  (http\S+): \d+ file\(s\), [\d.]+ [KMGT]?B served \((\d+) bytes",
                                                                block, re.M)}


def one_fetch(endpoints: list[str], root: Path) -> tuple[float, int, int, float]:
    subprocess.run(["sync"], check=False)
    cmd, rss_file = timed([*cli_cmd(), "fetch", "--root", str(root), "--only", ",".join(KEYS),
                           *[a for url in endpoints for a in ("--endpoint", url)]])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "PERSIAN_DATA_"))}
    t0 = time.perf_counter()
    proc = spawn(cmd, env=env, out=root.parent / f"{root.name}.out")
    rc, rss, cpu = reap(proc, rss_file)
    return time.perf_counter() - t0, rc, rss, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=0.2, help="times bench_fetch's real-ish sizes (0.2: ~500 MB)")
    parser.add_argument("--fast-rate", type=float, default=50.0, help="MB/s of the fast endpoint (default 50)")
    parser.add_argument("--slow-factor", type=float, default=10.0, help="the slow one gets fast-rate / this")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    from installed import as_installed  # (bench/installed.py)

    as_installed()  # the commands read our modules from bytecode, as after pip install

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_mirrors_"))
    workdir.mkdir(parents=True, exist_ok=True)
    load_start = os.getloadavg()
    hub_dir = workdir / "hub"
    try:
        marker = json.loads((hub_dir / STORE_MARKER).read_text())
    except (OSError, ValueError):
        marker = {}
    if marker.get("scale") != args.scale:
        shutil.rmtree(hub_dir, ignore_errors=True)
        say(f"building the hub store at scale {args.scale:g}")
        build_store(hub_dir, args.scale)
    store = HubStore(hub_dir)
    total = 0
    for key in KEYS:  # what the default (non --full) fetch selects at the head
        patterns = BY_KEY[key].patterns(False)
        total += sum(f.size for f in store.files(*REPLICA_REPOS[key], "main")
                     if patterns is None or any(fnmatch.fnmatch(f.path, p) for p in patterns))
    fast_rate = args.fast_rate * MB
    slow_rate = fast_rate / args.slow_factor
    say(f"{human(total)} selected; fast endpoint {human(fast_rate)}/s, slow {human(slow_rate)}/s")
    fast = HubProcess(hub_dir, workdir, "fast", rate=fast_rate)
    slow = HubProcess(hub_dir, workdir, "slow", rate=slow_rate)
    results: dict[str, list[tuple[float, int]]] = {"baseline": [], "mirrors": []}
    shares: list[float] = []
    cpus: dict[str, list[float]] = {"baseline": [], "mirrors": []}
    failures = []
    try:
        for i in range(args.repeats):
            for name, endpoints in (("baseline", [fast.endpoint]), ("mirrors", [slow.endpoint, fast.endpoint])):
                root = workdir / f"{name}-{i}"
                shutil.rmtree(root, ignore_errors=True)
                wall, rc, rss, cpu = one_fetch(endpoints, root)
                if rc != 0:
                    failures.append(f"{name} run {i} exited {rc}; see {root}.out")
                results[name].append((wall, rss))
                cpus[name].append(cpu)
                line = (f"{name:<9} run {i}: {wall:6.2f} s  {total / wall / MB:7.1f} MB/s  CPU {cpu:5.2f} s  "
                        f"peak RSS {rss / 1024:.0f} MB")
                if name == "mirrors":
                    served = served_bytes(root / "logs/dataset_download.log")
                    share = served.get(fast.endpoint, 0) / max(1, sum(served.values()))
                    shares.append(share)
                    line += f"  (fast endpoint served {share:.1%} of {human(sum(served.values()))})"
                say(line)
                if not args.keep:
                    shutil.rmtree(root, ignore_errors=True)
    finally:
        hub_rss = (fast.peak_rss_kb(), slow.peak_rss_kb())
        fast.stop()
        slow.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    load_end = os.getloadavg()
    base = statistics.median(w for w, _ in results["baseline"])
    mirr = statistics.median(w for w, _ in results["mirrors"])
    ratio = (total / mirr) / (total / base)
    print()
    print(f"bytes: {human(total)} (text, commonvoice, fleurs at scale {args.scale:g}); "
          f"fast {human(fast_rate)}/s, slow {human(slow_rate)}/s (listed first)")
    print(f"baseline  (fast only)      median {base:6.2f} s  {total / base / MB:7.1f} MB/s  "
          f"peak RSS {max(r for _, r in results['baseline']) / 1024:.0f} MB")
    print(f"mirrors   (slow, fast)     median {mirr:6.2f} s  {total / mirr / MB:7.1f} MB/s  "
          f"peak RSS {max(r for _, r in results['mirrors']) / 1024:.0f} MB; fast endpoint served "
          f"{min(shares):.1%}..{max(shares):.1%} of the bytes")
    print(f"CPU seconds of the command (median): baseline {statistics.median(cpus['baseline']):.2f}, "
          f"mirrors {statistics.median(cpus['mirrors']):.2f}")
    print(f"hub processes peak RSS: fast {hub_rss[0] / 1024:.0f} MB, slow {hub_rss[1] / 1024:.0f} MB")
    print(f"ratio mirrors/baseline throughput: {ratio:.3f}  (target >= 0.9: {'PASS' if ratio >= 0.9 else 'FAIL'})")
    print(f"load average: start {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f}, "
          f"end {load_end[0]:.2f} {load_end[1]:.2f} {load_end[2]:.2f} ({os.cpu_count()} CPUs)")
    for failure in failures:
        print(f"FAILED: {failure}")
    return 0 if ratio >= 0.9 and not failures else 1


if __name__ == "__main__":
    sys.exit(main())
