"""Run the local hub in the foreground.

    python -m persian_data.localhub serve --hub DIR [--host 127.0.0.1] [--port 0] [--port-file F]

Prints the endpoint URL (one line, flushed) once the server accepts connections. With --port 0 a free
port is chosen; --port-file gets the port number (written atomically, after the server is listening),
so a benchmark can start the server in another process and wait for that file. Stops on SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
from pathlib import Path

import uvicorn

from .server import create_app, uvicorn_config
from .store import HubStore


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m persian_data.localhub", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve a hub folder over HTTP")
    serve.add_argument("--hub", required=True, type=Path, help="hub folder (a HubStore root)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0, help="0 picks a free port")
    serve.add_argument("--port-file", type=Path, help="write the chosen port here once listening")
    serve.add_argument("--tree-page-size", type=int, default=1000)
    serve.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"])
    return parser


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def serve(args: argparse.Namespace) -> int:
    hub = args.hub
    if not (hub / "repos").is_dir():
        print(f"error: {hub} is not a hub folder (no repos/ inside)", file=sys.stderr)
        return 2
    app = create_app(HubStore(hub), tree_page_size=args.tree_page_size)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(128)
    port = sock.getsockname()[1]
    endpoint = f"http://{args.host}:{port}"
    config = uvicorn_config(
        app,
        host=args.host,
        port=port,
        log_config=uvicorn.config.LOGGING_CONFIG,
        log_level=args.log_level,
        access_log=args.log_level in ("info", "debug"),
    )
    server = uvicorn.Server(config)

    async def main() -> None:
        task = asyncio.ensure_future(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        if server.started:
            if args.port_file:
                _write_atomic(args.port_file, f"{port}\n")
            print(endpoint, flush=True)
        await task

    try:
        asyncio.run(main())
    finally:
        sock.close()
    return 0 if server.started else 1


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return serve(args)
    return 2  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main())
