#!/usr/bin/env python
"""TTS benchmark on a VITS with the REAL dimensions and RANDOM weights.

Every figure is labelled "random weights, real dimensions": the compute per input symbol and
per output sample is that of the Kamtera voices (VitsArgs defaults: 192 hidden, 6 text-encoder
layers, HiFi-GAN decoder 512 channels, 24 kHz, hop 256), but a random duration predictor picks
random lengths, so compare real-time factors (seconds of compute per second of audio) rather
than raw seconds.

Measured:
1. our synth (persian_data.tts.synth.Voice): load time, real-time factor;
2. coqui's own `tts` command on the same model and text: total wall time (interpreter start,
   imports, model load, synthesis, writing), its own "Processing time", and so its load time;
   plus a probe that times coqui's import and `Synthesizer(...)` construction separately;
3. the server (persian_data.tts.server.serve, its own process, model loaded once): per-request
   time for the CLI's text from one client, and requests/s, p50/p95 latency under 4 concurrent
   clients with a short sentence.

Usage: python bench/bench_tts.py [--workdir bench/out/tts] [--runs 3] [--requests 40]
                                 [--threads N] [--rebuild]
The model (~1 GB, like the real best_model_*.pth with its optimizer states) is cached in
--workdir between runs.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

import httpx  # noqa: E402

from persian_data.catalog import BY_KEY  # noqa: E402
from persian_data.layout import Layout  # noqa: E402

LABEL = "random weights, real dimensions"
CKPT = "best_model_30824.pth"
TEXT = (
    "سلطان محمود در زمستانی سخت به طلخک گفت که با این جامه ی یک لا در این سرما چه می کنی؟ "
    "مردی نزد بقالی آمد و گفت پیاز هم ده تا دهان بدان خوشبوی سازم."
)
SHORT = "سلام، حال شما چطور است؟"
TTS_BIN = Path(sys.executable).with_name("tts")

PROBE = r"""
import json, sys, time
t0 = time.perf_counter()
from TTS.utils.synthesizer import Synthesizer
t1 = time.perf_counter()
s = Synthesizer(tts_checkpoint=sys.argv[1], tts_config_path=sys.argv[2], use_cuda=False)
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "model_load_s": t2 - t1}))
"""


def loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def wav_seconds(data: bytes | Path) -> float:
    handle = io.BytesIO(data) if isinstance(data, bytes) else open(data, "rb")
    with handle, wave.open(handle) as wav:
        return wav.getnframes() / wav.getframerate()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def build(model_dir: Path, rebuild: bool) -> dict:
    from persian_data.tts.tiny import write_vits

    marker = model_dir / "bench-build.json"
    if not rebuild and marker.is_file() and (model_dir / CKPT).is_file():
        return json.loads(marker.read_text())
    shutil.rmtree(model_dir, ignore_errors=True)
    began = time.perf_counter()
    write_vits(model_dir, checkpoint_name=CKPT, real_dims=True, with_optimizer=True, seed=0)
    info = {
        "build_s": round(time.perf_counter() - began, 2),
        "checkpoint_mb": round((model_dir / CKPT).stat().st_size / 1e6, 1),
    }
    marker.write_text(json.dumps(info))
    return info


def load_ours(model_dir: Path) -> tuple[object, dict]:
    import torch

    from persian_data.tts.check import check_voice
    from persian_data.tts.synth import Voice

    began = time.perf_counter()
    results = check_voice(model_dir)
    check_s = time.perf_counter() - began
    assert results == [], results
    voice = Voice.load(model_dir)
    params = sum(p.numel() for p in voice._synth.tts_model.parameters())
    voice.synthesize(SHORT)  # warm-up
    return voice, {
        "check_s (structural, builds the model)": round(check_s, 2),
        "load_s (check without model build + coqui Synthesizer)": round(voice.load_seconds, 2),
        "params_m": round(params / 1e6, 1),
        "torch_threads": torch.get_num_threads(),
    }


def run_ours(voice) -> dict:
    began = time.perf_counter()
    wav = voice.synthesize(TEXT)
    took = time.perf_counter() - began
    seconds = len(wav) / voice.sample_rate
    return {"s": took, "audio_s": seconds}


def run_cli(model_dir: Path, env: dict, index: int) -> dict:
    out = model_dir.parent / f"cli_{index}.wav"
    began = time.perf_counter()
    proc = subprocess.run(
        [str(TTS_BIN), "--text", TEXT, "--model_path", str(model_dir / CKPT),
         "--config_path", str(model_dir / "config.json"), "--out_path", str(out)],
        capture_output=True, text=True, env=env,
    )
    total = time.perf_counter() - began
    if proc.returncode != 0:
        raise RuntimeError(f"tts CLI failed: {proc.stderr[-2000:]}")
    match = re.search(r"Processing time: ([0-9.]+)", proc.stdout + proc.stderr)
    processing = float(match.group(1)) if match else float("nan")
    return {"total_s": total, "processing_s": processing, "load_s": total - processing,
            "audio_s": wav_seconds(out)}


def probe_cli_load(model_dir: Path, env: dict) -> dict:
    probe = subprocess.run(
        [sys.executable, "-c", PROBE, str(model_dir / CKPT), str(model_dir / "config.json")],
        capture_output=True, text=True, env=env,
    )
    if probe.returncode != 0:
        return {}
    return {k: round(v, 2) for k, v in json.loads(probe.stdout.strip().splitlines()[-1]).items()}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """persian_data.tts.server.serve() in its own process, on a layout holding the model."""

    def __init__(self, model_dir: Path, env: dict):
        root = model_dir.parent / "layout"
        target = Layout(root).content_dir(BY_KEY["tts-female"])
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            target.symlink_to(model_dir.resolve(), target_is_directory=True)
        port = free_port()
        code = (
            "import logging; logging.basicConfig(level=logging.WARNING);"
            "from persian_data.layout import Layout; from persian_data.tts.server import serve;"
            f"serve(Layout({str(root)!r}), port={port})"
        )
        began = time.perf_counter()
        self.proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        self.base = f"http://127.0.0.1:{port}"
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server died: {self.proc.stderr.read()[-2000:]}")
            try:
                if httpx.get(f"{self.base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        self.startup_s = time.perf_counter() - began
        self.client = httpx.Client(timeout=600)
        self.client.get(f"{self.base}/api/tts", params={"text": SHORT}).raise_for_status()  # warm-up

    def one(self) -> dict:
        began = time.perf_counter()
        response = self.client.get(f"{self.base}/api/tts", params={"text": TEXT})
        took = time.perf_counter() - began
        response.raise_for_status()
        return {"s": took, "audio_s": wav_seconds(response.content),
                "server_side_s": float(response.headers["x-synthesis-seconds"])}

    def load_test(self, requests: int, concurrency: int) -> dict:
        latencies: list[float] = []
        statuses: list[int] = []

        def client_loop(n: int) -> None:
            with httpx.Client(timeout=600) as client:
                for _ in range(n):
                    t = time.perf_counter()
                    response = client.get(f"{self.base}/api/tts", params={"text": SHORT})
                    latencies.append(time.perf_counter() - t)
                    statuses.append(response.status_code)

        per_client = max(1, requests // concurrency)
        began = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(client_loop, [per_client] * concurrency))
        wall = time.perf_counter() - began
        return {
            "concurrency": concurrency,
            "requests": len(latencies),
            "ok": statuses.count(200),
            "requests_per_s": round(len(latencies) / wall, 3),
            "p50_s": round(pct(latencies, 0.5), 3),
            "p95_s": round(pct(latencies, 0.95), 3),
            "served_total": self.client.get(f"{self.base}/health").json()["requests"],
        }

    def close(self) -> None:
        self.client.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def med(rows: list[dict], key: str) -> float:
    return round(statistics.median(r[key] for r in rows), 3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench" / "out" / "tts")
    parser.add_argument("--runs", type=int, default=3, help="timed runs of the long text (synth, CLI, server)")
    parser.add_argument("--requests", type=int, default=40, help="requests in the 4-client phase")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for every process measured (default: torch's default)")
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()

    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    if args.threads:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = os.environ[var] = str(args.threads)
        import torch

        torch.set_num_threads(args.threads)

    model_dir = args.workdir / "model"
    report: dict = {"label": LABEL, "cpus": os.cpu_count(), "threads": args.threads or "default",
                    "text_chars": len(TEXT), "short_chars": len(SHORT), "loadavg_start": loadavg()}
    print(f"[{LABEL}] building/reusing model in {model_dir} ...", flush=True)
    report["build"] = build(model_dir, args.rebuild)
    print(f"  {report['build']}", flush=True)

    print("starting the server (its own process) ...", flush=True)
    server = Server(model_dir, env)
    print(f"  up in {server.startup_s:.1f} s", flush=True)
    print("loading our Voice in this process ...", flush=True)
    voice, ours_info = load_ours(model_dir)
    print(f"  {ours_info}", flush=True)
    print("probing coqui's import + Synthesizer() ...", flush=True)
    probe = probe_cli_load(model_dir, env)
    print(f"  {probe}", flush=True)

    # Interleaved rounds, order rotated, so that machine load hits all three alike.
    ours, cli, srv = [], [], []
    try:
        for i in range(args.runs):
            jobs = [("ours", lambda: ours.append(run_ours(voice))),
                    ("cli", lambda i=i: cli.append(run_cli(model_dir, env, i))),
                    ("server", lambda: srv.append(server.one()))]
            jobs = jobs[i % 3:] + jobs[: i % 3]
            for name, job in jobs:
                job()
            print(f"  round {i + 1}: ours {ours[-1]}, cli {cli[-1]}, server {srv[-1]}", flush=True)
        del voice
        print(f"{args.concurrency} concurrent clients, short sentence ...", flush=True)
        load = server.load_test(args.requests, args.concurrency)
        print(f"  {load}", flush=True)
    finally:
        server.close()
    report["loadavg_end"] = loadavg()
    for rows in (ours, cli, srv):
        for row in rows:
            row["rtf"] = (row.get("processing_s") or row["s"]) / row["audio_s"]
    report.update(
        ours={**ours_info, "runs": ours, "rtf_median": med(ours, "rtf"), "s_median": med(ours, "s")},
        coqui_cli={"runs": cli, "probe": probe, "rtf_median": med(cli, "rtf"),
                   "total_median_s": med(cli, "total_s"), "load_median_s": med(cli, "load_s"),
                   "processing_median_s": med(cli, "processing_s")},
        server={"startup_s": round(server.startup_s, 2), "runs": srv, "rtf_median": med(srv, "rtf"),
                "request_median_s": med(srv, "s"), "load_test": load},
    )
    cli_minus_load = [r["total_s"] - r["load_s"] for r in cli]
    report["verdict"] = {
        "server_request_median_s": med(srv, "s"),
        "cli_total_minus_load_median_s": round(statistics.median(cli_minus_load), 3),
        "server_rtf_median": med(srv, "rtf"),
        "cli_processing_rtf_median": med(cli, "rtf"),
        "server_request_le_cli_minus_load": med(srv, "s") <= statistics.median(cli_minus_load),
        "server_rtf_le_cli_processing_rtf": med(srv, "rtf") <= med(cli, "rtf"),
    }
    out = args.workdir / "results.json"
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False))

    o, c, sv = report["ours"], report["coqui_cli"], report["server"]
    print(f"\n## TTS benchmark ({LABEL})")
    print(f"{report['cpus']} CPUs, torch threads {o['torch_threads']}, load average "
          f"{report['loadavg_start']} -> {report['loadavg_end']}; text {len(TEXT)} chars, {args.runs} interleaved rounds")
    print(f"model: {o['params_m']} M parameters, checkpoint {report['build']['checkpoint_mb']} MB; "
          f"model check (structural) {o['check_s (structural, builds the model)']} s; "
          f"our load {o['load_s (check without model build + coqui Synthesizer)']} s; server up in {sv['startup_s']} s")
    print("| measure (median) | our synth | coqui `tts` CLI | server, 1 client |")
    print("|---|---|---|---|")
    print(f"| real-time factor | {o['rtf_median']} | {c['rtf_median']} (its processing time) | {sv['rtf_median']} |")
    print(f"| seconds | {o['s_median']} | total {c['total_median_s']} = load {c['load_median_s']} + processing "
          f"{c['processing_median_s']} | {sv['request_median_s']} per request |")
    print(f"coqui load breakdown (probe): import {probe.get('import_s')} s + Synthesizer() {probe.get('model_load_s')} s")
    lt = sv["load_test"]
    print(f"server, {lt['concurrency']} concurrent clients, short sentence ({len(SHORT)} chars): "
          f"{lt['requests_per_s']} req/s, p50 {lt['p50_s']} s, p95 {lt['p95_s']} s ({lt['ok']}/{lt['requests']} OK)")
    v = report["verdict"]
    print(f"server per-request {v['server_request_median_s']} s vs CLI total - load {v['cli_total_minus_load_median_s']} s: "
          f"{'<=' if v['server_request_le_cli_minus_load'] else '>'}; per audio second {v['server_rtf_median']} vs "
          f"{v['cli_processing_rtf_median']}")
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
