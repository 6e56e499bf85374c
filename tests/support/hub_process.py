"""The local hub in a process of its own, for benchmarks (so its CPU and memory are not the client's).

    python tests/support/hub_process.py --hub DIR [--port 0] [--port-file F] [--rate B/s]

serves a hub folder (a `HubStore` root) until SIGINT/SIGTERM; prints the endpoint URL once it accepts
connections and writes the port to --port-file (atomically). --rate limits all file bodies together
(a slow mirror). `HubProcess` starts one and waits for its port.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

if __name__ == "__main__" and not __package__:  # run by path: the tests folder and src hold what it imports
    sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[2] / "src")]

import uvicorn  # noqa: E402

from persian_data.localhub.app import create_app  # noqa: E402
from persian_data.localhub.server import uvicorn_config  # noqa: E402
from persian_data.localhub.store import HubStore  # noqa: E402

from support.hub import HubLayer  # noqa: E402
from support.hub_throttle import Throttle  # noqa: E402


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hub_process.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--hub", required=True, type=Path, help="hub folder (a HubStore root)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--port-file", type=Path, help="write the chosen port here once listening")
    parser.add_argument("--rate", type=float, help="bytes per second for all file bodies together")
    parser.add_argument("--tree-page-size", type=int, default=1000)
    parser.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"])
    return parser


def serve(args: argparse.Namespace) -> int:
    if not (args.hub / "repos").is_dir():
        print(f"error: {args.hub} is not a hub folder (no repos/ inside)", file=sys.stderr)
        return 2
    app = create_app(HubStore(args.hub), tree_page_size=args.tree_page_size)
    if args.rate:
        app = HubLayer(app, throttle=Throttle(args.rate))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(128)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn_config(app, host=args.host, port=port, log_config=uvicorn.config.LOGGING_CONFIG,
                                           log_level=args.log_level, access_log=args.log_level in ("info", "debug")))

    async def main() -> None:
        task = asyncio.ensure_future(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        if server.started:
            if args.port_file:
                tmp = args.port_file.with_name(args.port_file.name + f".{os.getpid()}.tmp")
                tmp.write_text(f"{port}\n")
                os.replace(tmp, args.port_file)
            print(f"http://{args.host}:{port}", flush=True)
        await task

    try:
        asyncio.run(main())
    finally:
        sock.close()
    return 0 if server.started else 1


class HubProcess:
    """A hub folder served by `hub_process.py` in a child process; `endpoint` once it listens. Output
    goes to `<workdir>/<name>.log`."""

    def __init__(self, hub_dir: Path, workdir: Path, name: str = "hub", *, rate: float | None = None) -> None:
        self.name = name
        self.port_file = workdir / f"{name}.port"
        self.port_file.unlink(missing_ok=True)
        self.log = workdir / f"{name}.log"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--hub", str(hub_dir), "--port-file", str(self.port_file)]
        if rate:
            cmd += ["--rate", str(rate)]
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not self.port_file.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"the local hub {name} did not start; see {self.log}:\n{self.log.read_text()[-2000:]}")
            time.sleep(0.05)
        self.endpoint = f"http://127.0.0.1:{int(self.port_file.read_text())}"

    def peak_rss_kb(self) -> int:
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        except OSError:
            pass
        return 0

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


if __name__ == "__main__":
    sys.exit(serve(_parser().parse_args()))
