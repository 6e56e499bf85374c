"""The root on a shared filesystem: proof that a Ray node sees the driver's root and runs its code.

Speech units read the sources and write clips under the root, and every unit's output must be
what the driver's code would make. So before the driver sends any unit it writes a marker under
the root's ``.persian-data/engine/`` holding a random token and a fingerprint of its own
persian_data sources; every task reads the marker back before it works. A node that mounts
nothing (or another filesystem) at the root's path finds no marker or another token; a node with
another persian-data finds another fingerprint. Either way the run stops with one line
(`ClusterRootError`, exit 2) before anything is placed.

Runs on the Ray workers: no Ray import here.
"""

from __future__ import annotations

import functools
import hashlib
import os
import secrets
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import ClusterRootError
from ..layout import Layout

MARKER_DIR = "engine"
# An NFS client may answer from its cache for a moment after another client created a file.
LOOK_AGAIN_SECONDS = 2.0
SEE = "README 'Scaling out'"


@dataclass(frozen=True)
class RootMarker:
    root: str  # the root, absolute, as the driver sees it
    path: str  # the marker file
    token: str
    code: str  # fingerprint of the driver's persian_data sources


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """sha256 over the persian_data package's Python sources (relative path and bytes, in order):
    equal on two machines when both run the same code."""
    package = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def write_marker(layout: Layout) -> RootMarker:
    folder = layout.state_dir / MARKER_DIR
    folder.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(16)
    path = folder / f"ray-{token}.marker"
    with open(path, "x", encoding="ascii") as handle:
        handle.write(token)
        handle.flush()
        os.fsync(handle.fileno())
    return RootMarker(str(layout.root.resolve()), str(path), token, code_fingerprint())


def remove_marker(marker: RootMarker) -> None:
    Path(marker.path).unlink(missing_ok=True)


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as handle:
            return handle.read()
    except (FileNotFoundError, NotADirectoryError, UnicodeDecodeError):
        return None


def node_name() -> str:
    """This node as a user can find it: host name and, on a Ray worker, the node's IP."""
    host = socket.gethostname()
    try:
        import ray

        return f"{host} ({ray.util.get_node_ip_address()})"
    except Exception:  # noqa: BLE001 - outside Ray, or Ray without a node: the host name says enough
        return host


def check_marker(marker: RootMarker) -> None:
    """Raise `ClusterRootError` unless this process sees the driver's marker and runs its code."""
    found = _read(marker.path)
    deadline = time.monotonic() + LOOK_AGAIN_SECONDS
    while found != marker.token and time.monotonic() < deadline:
        time.sleep(0.25)
        found = _read(marker.path)
    if found != marker.token:
        what = "is missing" if found is None else "holds another run's token"
        raise ClusterRootError(
            f"Ray node {node_name()} cannot see the root {marker.root}: {marker.path} {what} there. Every "
            f"node must mount the root at this same path (a shared filesystem: NFS, CephFS, Lustre...); see {SEE}")
    ours = code_fingerprint()
    if ours != marker.code:
        from .. import __version__

        raise ClusterRootError(
            f"Ray node {node_name()} runs other persian-data code (persian-data {__version__}, sources {ours[:12]}) "
            f"than the driver (sources {marker.code[:12]}): install the same persian-data on every node "
            f"(pip install 'persian-data[scale]'); see {SEE}")
