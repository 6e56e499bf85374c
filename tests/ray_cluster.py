"""A real Ray cluster on this machine for the engine tests: a head and more nodes, each its own
`ray start --block` process (so each node's processes are found, and stopped, by its process
group), every address on the loopback range (127.0.0.2, .3, ...: Ray would turn 127.0.0.1 into the
machine's outward address), every port picked free, everything under one temp folder.

Stopping a node: SIGTERM to its `ray start --block` (graceful: its raylet, workers and, for the
head, the GCS go), or SIGKILL to every process it started (a node that dies).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import persian_data

RAY = str(Path(sys.executable).with_name("ray"))
SRC = str(Path(persian_data.__file__).resolve().parents[1])  # the code under test, on every node
START_TIMEOUT = 180.0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def node_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([SRC, *filter(None, [env.get("PYTHONPATH")])])
    env.update(RAY_USAGE_STATS_ENABLED="0", RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S="0")
    return env


@dataclass
class Node:
    ip: str
    process: subprocess.Popen
    log: Path

    def pids(self) -> list[int]:
        """Every live process of this node: its `ray start` and all that descends from it (Ray's
        workers have process groups of their own)."""
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path(f"/proc/{entry}/stat").read_bytes()
                except OSError:
                    continue
                children.setdefault(int(stat.rsplit(b")", 1)[1].split()[1]), []).append(int(entry))
        out, todo = [], [self.process.pid]
        while todo:
            pid = todo.pop()
            out.append(pid)
            todo.extend(children.get(pid, []))
        return out

    def busy_workers(self, task: str = "run_task") -> list[int]:
        """Ray workers of this node running a task now (their title: `ray::<task>`)."""
        busy = []
        for pid in self.pids():
            try:
                title = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
            except OSError:
                continue
            if title.startswith(f"ray::{task}".encode()):
                busy.append(pid)
        return busy

    def kill(self, pids: list[int] | None = None) -> None:
        """The node dies: every one of its processes, at once."""
        for pid in self.pids() if pids is None else pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait(timeout=30)

    def stop(self) -> None:
        pids = self.pids()  # before its `ray start` exits and they are no longer its children
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        self.kill(pids)  # whatever is left of it


@dataclass
class LocalCluster:
    folder: Path
    object_store_mb: int = 100  # per node (Ray's minimum is ~75 MB)
    port: int = 0
    nodes: list[Node] = field(default_factory=list)
    # Ray's sockets live under --temp-dir and an AF_UNIX path may not pass 107 bytes: pytest's
    # temp folders (deeper still under pytest-xdist) are too long, so Ray gets a short folder of its own
    ray_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp")))

    @property
    def address(self) -> str:
        return f"127.0.0.2:{self.port}"

    def _start(self, ip: str, extra: list[str], wrap: list[str] | None = None) -> Node:
        log = self.folder / f"node-{ip}.log"
        ports = ["--node-manager-port", str(free_port()), "--object-manager-port", str(free_port()),
                 "--metrics-export-port", str(free_port()), "--runtime-env-agent-port", str(free_port()),
                 "--dashboard-agent-listen-port", str(free_port()), "--dashboard-agent-grpc-port", str(free_port())]
        argv = [RAY, "start", "--block", "--num-cpus", "1", "--node-ip-address", ip,
                "--temp-dir", str(self.ray_dir), "--object-store-memory", str(self.object_store_mb << 20),
                "--disable-usage-stats", "--include-log-monitor=false", *ports, *extra]
        with open(log, "wb") as out:
            process = subprocess.Popen((wrap or []) + argv, stdout=out, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, env=node_env(), start_new_session=True)
        node = Node(ip, process, log)
        self.nodes.append(node)
        deadline = time.monotonic() + START_TIMEOUT
        while b"Ray runtime started" not in log.read_bytes():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ray start ({ip}) failed:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)
        return node

    def start_head(self) -> Node:
        self.port = free_port()
        return self._start("127.0.0.2", ["--head", "--port", str(self.port), "--include-dashboard=false",
                                         "--dashboard-port", str(free_port()),
                                         "--ray-client-server-port", str(free_port())])

    def add_node(self, ip: str) -> Node:
        return self._start(ip, ["--address", self.address])

    def wait_nodes(self, n: int, timeout: float = 120.0) -> None:
        """Until the head's GCS counts n live nodes (asked with `ray status`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = subprocess.run([RAY, "status", "--address", self.address], capture_output=True, text=True,
                                 env=node_env(), timeout=120)
            if out.returncode == 0 and out.stdout.count("node_") >= n:
                return
            time.sleep(1)
        raise RuntimeError(f"the cluster did not reach {n} nodes:\n{out.stdout}{out.stderr}")

    def stop(self) -> None:
        for node in reversed(self.nodes):  # the head last
            node.stop()
        shutil.rmtree(self.ray_dir, ignore_errors=True)
