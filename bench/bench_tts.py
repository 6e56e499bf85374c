#!/usr/bin/env python
"""TTS benchmark on a VITS with the REAL dimensions and RANDOM weights: ONNX runtime vs torch vs coqui.

Every figure is labelled "random weights, real dimensions": the compute per input symbol and
per output sample is that of the Kamtera voices (VitsArgs defaults: 192 hidden, 6 text-encoder
layers, HiFi-GAN decoder 512 channels, 24 kHz, hop 256), but a random duration predictor picks
random lengths, so compare real-time factors (seconds of compute per second of audio) rather
than raw seconds.

All in one run, interleaved so machine load hits every path alike:
1. the export: `tts-export --int8`'s worker on the model (seconds, ONNX size, agreement in LSB,
   the int8 voice's min SNR vs torch from its record);
2. whole commands, process start to exit, with peak memory of the process tree:
   coqui's own `tts` CLI (and its "Processing time"), `persian-data synth --runtime torch`,
   `persian-data synth --runtime onnx` (from the light venv, no torch);
3. servers as users start them (`persian-data serve-tts`, their own processes): today's torch
   server (the `tts` venv), the ONNX server and the int8 ONNX server (`--precision int8`; both
   from the light `serve` venv, no torch):
   cold start until /health answers (ONNX: median of several starts), per-request real-time
   factor on the 146-character text from one client, and 4 concurrent clients with a short
   sentence (requests/s, p50/p95), peak memory;
4. in-process synthesis with our torch Voice (the old figure, for continuity);
5. installed size of the light venv and of the full (tts) venv;
6. the FLOP bound: the decoder's FLOP per output sample (torch's FlopCounterMode on the model's
   HiFi-GAN decoder), the GFLOP/s an RTF of 0.25 needs, and the machine's measured float32 GEMM
   peak (numpy matmul 2048^2 on 2 threads): why float32 cannot reach 0.25 here.

Usage: python bench/bench_tts.py [--workdir bench/out/tts] [--runs 3] [--requests 40]
                                 [--light-venv .venv-serve] [--rebuild]
The model (~1 GB, like the real best_model_*.pth with its optimizer states) and its export are
cached in --workdir between runs. The light venv is created if missing (pip install '.[serve]').
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
import threading
import time
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))  # support: a random voice written into a folder

import httpx  # noqa: E402
import psutil  # noqa: E402

from persian_data.catalog import BY_KEY  # noqa: E402
from persian_data.layout import Layout  # noqa: E402

LABEL = "random weights, real dimensions"
CKPT = "best_model_30824.pth"
TEXT = (
    "سلطان محمود در زمستانی سخت به طلخک گفت که با این جامه ی یک لا در این سرما چه می کنی؟ "
    "مردی نزد بقالی آمد و گفت پیاز هم ده تا دهان بدان خوشبوی سازم."
)
SHORT = "سلام، حال شما چطور است؟"
MAIN_BIN = Path(sys.executable).parent


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


def med(rows: list[dict], key: str) -> float:
    return round(statistics.median(r[key] for r in rows), 3)


def du_mb(path: Path) -> float | None:
    if not path.exists():
        return None
    out = subprocess.run(["du", "-sm", str(path)], capture_output=True, text=True)
    return float(out.stdout.split()[0]) if out.returncode == 0 else None


class PeakRSS:
    """Peak resident memory of a process and all its children, sampled every 50 ms."""

    def __init__(self, pid: int) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._proc = psutil.Process(pid)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                procs = [self._proc, *self._proc.children(recursive=True)]
                total = sum(p.memory_info().rss for p in procs if p.is_running())
                self.peak = max(self.peak, total)
            except psutil.Error:
                pass
            self._stop.wait(0.05)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return round(self.peak / 1e6, 1)


def run_command(cmd: list[str], env: dict) -> dict:
    """A whole user command, process start to exit: wall seconds, peak MB of its process tree."""
    began = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    peak = PeakRSS(proc.pid)
    out, err = proc.communicate()
    wall = time.perf_counter() - began
    peak_mb = peak.stop()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} failed: {err[-2000:]}")
    return {"total_s": wall, "peak_mb": peak_mb, "output": out + err}


# -- setup ------------------------------------------------------------------------------------


def build(model_dir: Path, rebuild: bool) -> dict:
    from support.voices import write_vits

    marker = model_dir / "bench-build.json"
    if not rebuild and marker.is_file() and (model_dir / CKPT).is_file():
        return json.loads(marker.read_text())
    shutil.rmtree(model_dir, ignore_errors=True)
    began = time.perf_counter()
    write_vits(model_dir, checkpoint_name=CKPT, real_dims=True, with_optimizer=True, seed=0)
    info = {"build_s": round(time.perf_counter() - began, 2),
            "checkpoint_mb": round((model_dir / CKPT).stat().st_size / 1e6, 1)}
    marker.write_text(json.dumps(info))
    return info


def make_layout(model_dir: Path) -> Layout:
    layout = Layout(model_dir.parent / "layout")
    target = layout.content_dir(BY_KEY["tts-female"])
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        target.symlink_to(model_dir.resolve(), target_is_directory=True)
    return layout


def export(layout: Layout, rebuild: bool) -> dict:
    from persian_data.tts.export import export_voice
    from persian_data.tts.onnx_record import OnnxExportError, checked_record

    folder = layout.bucket_root(BY_KEY["tts-female"]) / "onnx"
    if not rebuild and folder.exists():
        try:
            record = checked_record(folder, layout.content_dir(BY_KEY["tts-female"]))
            if "int8" in record:  # an export from before --int8 is made again, with it
                return {**record["check"], "reused": True, "onnx_mb": round(record["onnx"]["bytes"] / 1e6, 1),
                        "int8": int8_summary(record)}
        except OnnxExportError:
            pass
    from persian_data.integrity import HashCache

    layout.tmp_dir.mkdir(parents=True, exist_ok=True)
    cache = HashCache(layout.hash_cache, layout.root)  # as `tts-export` does: source hashes remembered
    began = time.perf_counter()
    record = export_voice(layout, "female", tmp_dir=layout.tmp_dir, cache=cache, int8=True)
    cache.save(layout.tmp_dir)
    return {**record["check"], "reused": False, "export_command_s": round(time.perf_counter() - began, 2),
            "onnx_mb": round(record["onnx"]["bytes"] / 1e6, 1), "int8": int8_summary(record)}


INT8 = ["--precision", "int8"]


def voice_rate(layout: Layout) -> int:
    config = json.loads((layout.content_dir(BY_KEY["tts-female"]) / "config.json").read_text(encoding="utf-8"))
    return int(config["audio"].get("output_sample_rate") or config["audio"]["sample_rate"])


def int8_summary(record: dict) -> dict:
    int8 = record["int8"]
    return {"mb": round(int8["bytes"] / 1e6, 1), "nodes": int8["quantized"]["nodes"],
            "min_snr_db": int8["check"]["min_snr_db"], "threshold_db": int8["check"]["threshold_db"],
            "quantize_s": int8.get("quantize_s")}


def decoder_flop_per_sample(model) -> dict:
    """FLOP per output sample of the VITS's HiFi-GAN decoder, counted by torch (FlopCounterMode)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    decoder = model.waveform_decoder
    frames = 200
    z = torch.zeros(1, model.args.hidden_channels, frames)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        out = decoder(z)
    samples = out.shape[-1]
    return {"frames": frames, "samples": int(samples), "flop": int(counter.get_total_flops()),
            "flop_per_sample": counter.get_total_flops() / samples}


GEMM_PROBE = """
import time, numpy as np
a = np.random.default_rng(0).standard_normal((2048, 2048), dtype=np.float32); b = a.copy()
a @ b
best = min((lambda t: (a @ b, time.perf_counter() - t)[1])(time.perf_counter()) for _ in range(10))
print(2 * 2048 ** 3 / best / 1e9)
"""


def gemm_peak_gflops(threads: int = 2) -> float:
    """float32 GEMM GFLOP/s of numpy's BLAS on `threads` threads (a fresh process, so the thread
    count is set before the BLAS starts): the machine's practical float32 peak."""
    env = {**os.environ, **{k: str(threads) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}}
    out = subprocess.run([sys.executable, "-c", GEMM_PROBE], capture_output=True, text=True, env=env, check=True)
    return float(out.stdout.strip())


def ensure_light_venv(venv: Path) -> Path:
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"creating the light venv {venv} (pip install '.[serve]') ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", f"{ROOT}[serve]"],
                       check=True)
    probe = subprocess.run([str(python), "-c", "import torch"], capture_output=True)
    if probe.returncode == 0:
        raise SystemExit(f"{venv} has torch installed: not the light venv")
    return venv / "bin"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`persian-data serve-tts` in its own process, as a user starts it."""

    def __init__(self, bin_dir: Path, layout: Layout, runtime: str, env: dict, extra: list[str] = ()):
        port = free_port()
        cmd = [str(bin_dir / "persian-data"), "serve-tts", "--root", str(layout.root), "--runtime", runtime,
               "--port", str(port), *extra]
        began = time.perf_counter()
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.peak = PeakRSS(self.proc.pid)
        self.base = f"http://127.0.0.1:{port}"
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server died: {self.proc.stderr.read()[-2000:]}")
            try:
                if httpx.get(f"{self.base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.02)
        self.startup_s = time.perf_counter() - began
        self.startup_cpu_s = self.cpu_s()  # load-independent: CPU the start cost, all threads
        self.health = httpx.get(f"{self.base}/health").json()
        self.client = httpx.Client(timeout=600)

    def cpu_s(self) -> float:
        times = psutil.Process(self.proc.pid).cpu_times()
        return times.user + times.system

    def warm(self) -> None:
        self.client.get(f"{self.base}/api/tts", params={"text": SHORT}).raise_for_status()

    def one(self) -> dict:
        cpu = self.cpu_s()
        began = time.perf_counter()
        response = self.client.get(f"{self.base}/api/tts", params={"text": TEXT})
        took = time.perf_counter() - began
        response.raise_for_status()
        audio = wav_seconds(response.content)
        return {"s": took, "audio_s": audio, "cpu_per_audio_s": (self.cpu_s() - cpu) / audio,
                "runtime": response.headers.get("x-runtime")}

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
        return {"concurrency": concurrency, "requests": len(latencies), "ok": statuses.count(200),
                "requests_per_s": round(len(latencies) / wall, 3), "p50_s": round(pct(latencies, 0.5), 3),
                "p95_s": round(pct(latencies, 0.95), 3)}

    def close(self) -> float:
        self.client.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        return self.peak.stop()


def run_ours(voice) -> dict:
    began = time.perf_counter()
    wav = voice.synthesize(TEXT)
    return {"s": time.perf_counter() - began, "audio_s": len(wav) / voice.sample_rate}


def run_cli(model_dir: Path, env: dict, index: int) -> dict:
    out = model_dir.parent / f"cli_{index}.wav"
    row = run_command([str(MAIN_BIN / "tts"), "--text", TEXT, "--model_path", str(model_dir / CKPT),
                       "--config_path", str(model_dir / "config.json"), "--out_path", str(out)], env)
    match = re.search(r"Processing time: ([0-9.]+)", row.pop("output"))
    processing = float(match.group(1)) if match else float("nan")
    return {**row, "processing_s": processing, "audio_s": wav_seconds(out)}


def run_synth(bin_dir: Path, layout: Layout, runtime: str, env: dict, index: int) -> dict:
    out = layout.root / f"synth_{runtime}_{index}.wav"
    row = run_command([str(bin_dir / "persian-data"), "synth", "--root", str(layout.root), "--runtime", runtime,
                       "--text", TEXT, "--out", str(out)], env)
    row.pop("output")
    return {**row, "audio_s": wav_seconds(out)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench" / "out" / "tts")
    parser.add_argument("--runs", type=int, default=3, help="interleaved rounds of the long text")
    parser.add_argument("--requests", type=int, default=40, help="requests in each 4-client phase")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--cold-starts", type=int, default=3, help="starts of the ONNX server for its cold start")
    parser.add_argument("--light-venv", type=Path, default=ROOT / ".venv-serve")
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()
    from installed import as_installed  # (bench/installed.py)

    as_installed()  # the commands read our modules from bytecode, as after pip install

    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")  # this checkout's code
    model_dir = args.workdir / "model"
    report: dict = {"label": LABEL, "cpus": os.cpu_count(), "text_chars": len(TEXT), "short_chars": len(SHORT),
                    "loadavg_start": loadavg()}
    print(f"[{LABEL}] building/reusing model in {model_dir} ...", flush=True)
    report["build"] = build(model_dir, args.rebuild)
    layout = make_layout(model_dir)
    print("exporting to ONNX (tts-export --int8's worker; reused when present) ...", flush=True)
    report["export"] = export(layout, args.rebuild)
    print(f"  {report['export']}", flush=True)
    light_bin = ensure_light_venv(args.light_venv)

    print("cold starts of the ONNX server (light venv) ...", flush=True)
    colds, cold_cpu = [], []
    for _ in range(args.cold_starts):
        server = Server(light_bin, layout, "onnx", env)
        colds.append(server.startup_s)
        cold_cpu.append(server.startup_cpu_s)
        server.close()
    print(f"  wall {[round(c, 2) for c in colds]}, CPU {[round(c, 2) for c in cold_cpu]}", flush=True)
    colds_int8 = []
    for _ in range(args.cold_starts):
        server = Server(light_bin, layout, "onnx", env, INT8)
        colds_int8.append(server.startup_s)
        server.close()
    print(f"  int8: wall {[round(c, 2) for c in colds_int8]}", flush=True)

    print("starting the three servers ...", flush=True)
    torch_server = Server(MAIN_BIN, layout, "torch", env)
    onnx_server = Server(light_bin, layout, "onnx", env)
    int8_server = Server(light_bin, layout, "onnx", env, INT8)
    assert int8_server.health["precision"] == "int8", int8_server.health
    for s in (torch_server, onnx_server, int8_server):
        s.warm()
    print(f"  torch up in {torch_server.startup_s:.1f} s; onnx up in {onnx_server.startup_s:.1f} s "
          f"({onnx_server.health['workers']} workers); int8 up in {int8_server.startup_s:.1f} s", flush=True)

    from persian_data.tts.synth import Voice

    voice = Voice.load(model_dir)
    voice.synthesize(SHORT)
    flops = decoder_flop_per_sample(voice._synth.tts_model)
    rows: dict[str, list[dict]] = {k: [] for k in ("ours", "cli", "torch_server", "onnx_server", "int8_server",
                                                   "synth_torch", "synth_onnx")}
    jobs = {
        "ours": lambda i: run_ours(voice),
        "cli": lambda i: run_cli(model_dir, env, i),
        "torch_server": lambda i: torch_server.one(),
        "onnx_server": lambda i: onnx_server.one(),
        "int8_server": lambda i: int8_server.one(),
        "synth_torch": lambda i: run_synth(MAIN_BIN, layout, "torch", env, i),
        "synth_onnx": lambda i: run_synth(light_bin, layout, "onnx", env, i),
    }
    names = list(jobs)
    try:
        for i in range(args.runs):
            order = names[i % len(names):] + names[: i % len(names)]
            for name in order:
                rows[name].append(jobs[name](i))
            print(f"  round {i + 1}: " + ", ".join(
                f"{n} {rows[n][-1].get('processing_s', rows[n][-1].get('s', rows[n][-1].get('total_s'))):.2f}s"
                for n in names), flush=True)
        del voice
        print(f"{args.concurrency} concurrent clients, short sentence ...", flush=True)
        load_torch = torch_server.load_test(args.requests, args.concurrency)
        print(f"  torch server: {load_torch}", flush=True)
        load_onnx = onnx_server.load_test(args.requests, args.concurrency)
        print(f"  onnx server (default, {onnx_server.health['workers']} workers): {load_onnx}", flush=True)
        load_int8 = int8_server.load_test(args.requests, args.concurrency)
        print(f"  int8 onnx server (default workers): {load_int8}", flush=True)
    finally:
        peak_torch = torch_server.close()
        peak_onnx = onnx_server.close()
        peak_int8 = int8_server.close()
    variants = {}
    for extra in (["--workers", "1"], ["--workers", "2", "--threads", "1"]):
        server = Server(light_bin, layout, "onnx", env, extra)
        try:
            server.warm()
            variants[" ".join(extra)] = server.load_test(args.requests, args.concurrency)
        finally:
            variants[" ".join(extra)]["peak_mb"] = server.close()
        print(f"  onnx server {' '.join(extra)}: {variants[' '.join(extra)]}", flush=True)
    print("FP32 GEMM peak (numpy 2048^2, 2 threads) ...", flush=True)
    gemm = gemm_peak_gflops(2)
    report["loadavg_end"] = loadavg()
    for name, items in rows.items():
        for row in items:
            row["rtf"] = (row.get("processing_s") or row.get("s") or row["total_s"]) / row["audio_s"]
    report.update(
        cold_start_onnx_s={"runs": [round(c, 3) for c in colds], "median": round(statistics.median(colds), 3),
                           "best": round(min(colds), 3), "cpu_s_median": round(statistics.median(cold_cpu), 3)},
        cold_start_int8_s={"runs": [round(c, 3) for c in colds_int8], "median": round(statistics.median(colds_int8), 3),
                           "best": round(min(colds_int8), 3)},
        flop_bound={**flops, "sample_rate": voice_rate(layout),
                    "gflops_needed_rtf_025": flops["flop_per_sample"] * voice_rate(layout) / 0.25 / 1e9,
                    "gemm_fp32_gflops_2_threads": round(gemm, 1)},
        startup_torch_cpu_s=round(torch_server.startup_cpu_s, 2),
        server_cpu_per_audio_s_median={n: med(rows[n], "cpu_per_audio_s")
                                       for n in ("torch_server", "onnx_server", "int8_server")},
        startup_torch_s=round(torch_server.startup_s, 2),
        rows=rows,
        rtf_median={name: med(items, "rtf") for name, items in rows.items()},
        # best of the rounds: on a shared machine, the round least disturbed by other processes
        rtf_best={name: round(min(r["rtf"] for r in items), 3) for name, items in rows.items()},
        command_total_median_s={n: med(rows[n], "total_s") for n in ("cli", "synth_torch", "synth_onnx")},
        command_peak_mb={n: max(r["peak_mb"] for r in rows[n]) for n in ("cli", "synth_torch", "synth_onnx")},
        load_test={"torch_server": load_torch, "onnx_server": load_onnx, "int8_server": load_int8,
                   "onnx_variants": variants},
        server_peak_mb={"torch": peak_torch, "onnx": peak_onnx, "int8": peak_int8},
        onnx_workers=onnx_server.health["workers"],
        venv_mb={"light (.venv-serve: base + serve extra)": du_mb(args.light_venv),
                 "full (.venv: tts + speech + test extras)": du_mb(ROOT / ".venv")},
    )
    out = args.workdir / "results.json"
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False))

    r, e, best = report["rtf_median"], report["export"], report["rtf_best"]
    print(f"\n## TTS benchmark ({LABEL})")
    print(f"{report['cpus']} CPUs, load average {report['loadavg_start']} -> {report['loadavg_end']}; "
          f"text {len(TEXT)} chars, {args.runs} interleaved rounds")
    print(f"model: checkpoint {report['build']['checkpoint_mb']} MB -> model.onnx {e['onnx_mb']} MB; export agrees "
          f"with torch on {len(e['sentences'])} sentences, max {e['max_lsb']} LSB (tolerance {e['tolerance_lsb']})")
    print("| per request, 146-char text: RTF | median | best round |")
    print("|---|---|---|")
    print(f"| ONNX server (light venv, {report['onnx_workers']} workers) | **{r['onnx_server']}** | **{best['onnx_server']}** |")
    print(f"| int8 ONNX server (light venv, --precision int8) | **{r['int8_server']}** | **{best['int8_server']}** |")
    print(f"| torch server (today's) | {r['torch_server']} | {best['torch_server']} |")
    print(f"| coqui `tts` CLI, its own processing time | {r['cli']} | {best['cli']} |")
    print(f"| our torch Voice in-process | {r['ours']} | {best['ours']} |")
    print(f"ONNX server RTF / coqui processing RTF = {r['onnx_server'] / r['cli']:.2f} (median), "
          f"{best['onnx_server'] / best['cli']:.2f} (best); torch server / ONNX server = "
          f"{r['torch_server'] / r['onnx_server']:.2f}x (median), {best['torch_server'] / best['onnx_server']:.2f}x (best); "
          f"fp32 ONNX / int8 ONNX = {r['onnx_server'] / r['int8_server']:.2f}x (median), "
          f"{best['onnx_server'] / best['int8_server']:.2f}x (best)")
    i8 = e["int8"]
    print(f"int8 voice: model.int8.onnx {i8['mb']} MB, {i8['nodes']} decoder Conv nodes int8; min SNR vs torch over "
          f"the check sentences {i8['min_snr_db']} dB (its check requires >= {i8['threshold_db']} dB; same length)")
    c, p = report["command_total_median_s"], report["command_peak_mb"]
    print("| whole command, process start to exit | wall s (median) | peak MB (tree) |")
    print("|---|---|---|")
    print(f"| coqui `tts` CLI | {c['cli']} | {p['cli']} |")
    print(f"| persian-data synth --runtime torch | {c['synth_torch']} | {p['synth_torch']} |")
    print(f"| persian-data synth --runtime onnx (light venv) | {c['synth_onnx']} | {p['synth_onnx']} |")
    lt, lo = load_torch, load_onnx
    print(f"{args.concurrency} clients, short sentence ({len(SHORT)} chars), {lo['requests']} requests:")
    print(f"  torch server: {lt['requests_per_s']} req/s, p50 {lt['p50_s']} s, p95 {lt['p95_s']} s ({lt['ok']} OK), "
          f"peak {peak_torch} MB")
    print(f"  ONNX server:  {lo['requests_per_s']} req/s, p50 {lo['p50_s']} s, p95 {lo['p95_s']} s ({lo['ok']} OK), "
          f"peak {peak_onnx} MB")
    li = load_int8
    print(f"  int8 ONNX server: {li['requests_per_s']} req/s, p50 {li['p50_s']} s, p95 {li['p95_s']} s ({li['ok']} OK), "
          f"peak {peak_int8} MB")
    print(f"  ratio: {lo['requests_per_s'] / lt['requests_per_s']:.2f}x req/s, p95 {lt['p95_s'] / lo['p95_s']:.2f}x lower; "
          f"int8 vs fp32 ONNX: {li['requests_per_s'] / lo['requests_per_s']:.2f}x req/s, "
          f"p95 {lo['p95_s'] / li['p95_s']:.2f}x lower")
    for name, row in variants.items():
        print(f"  ONNX server {name}: {row['requests_per_s']} req/s, p50 {row['p50_s']} s, p95 {row['p95_s']} s "
              f"({row['ok']} OK), peak {row['peak_mb']} MB")
    cs = report["cold_start_onnx_s"]
    print(f"cold start until /health OK: ONNX {cs['median']} s median, {cs['best']} s best (runs {cs['runs']}; "
          f"{cs['cpu_s_median']} CPU-s), int8 ONNX {report['cold_start_int8_s']['median']} s median, torch "
          f"{report['startup_torch_s']} s ({report['startup_torch_cpu_s']} CPU-s)")
    cpu = report["server_cpu_per_audio_s_median"]
    print(f"server CPU seconds per audio second (load-independent cross-check, all threads): ONNX "
          f"{cpu['onnx_server']:.3f}, int8 ONNX {cpu['int8_server']:.3f}, torch {cpu['torch_server']:.3f}")
    fb = report["flop_bound"]
    print(f"FLOP bound: the decoder costs {fb['flop_per_sample'] / 1e6:.2f} MFLOP per output sample (FlopCounterMode, "
          f"{fb['frames']} frames -> {fb['samples']} samples), {fb['flop_per_sample'] * fb['sample_rate'] / 1e9:.1f} "
          f"GFLOP per second of {fb['sample_rate'] // 1000} kHz audio; RTF 0.25 needs "
          f"{fb['gflops_needed_rtf_025']:.0f} GFLOP/s sustained; this machine's float32 GEMM peak (numpy 2048^2, "
          f"2 threads) is {fb['gemm_fp32_gflops_2_threads']} GFLOP/s, so float32 cannot reach 0.25 here; the fp32 ONNX "
          f"server sustains ~{fb['flop_per_sample'] * fb['sample_rate'] / 1e9 / best['onnx_server']:.0f} GFLOP/s "
          f"(best round)")
    print(f"venv size: {report['venv_mb']}")
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
