"""Where the prepare stages' units of work run: worker processes here, or Ray tasks on a cluster.

Both stages cut their work into the same units whatever the engine (chat: pieces of the raw JSON
files; speech: row-group runs and tar members of a split; near-duplicates: bands and chunks of
candidate pairs) and consume the results in unit order, so the outputs are byte for byte the same
on either engine. An engine gives the stages:

- `executor(workers, initializer=, initargs=, preload=)`: something to `submit(fn, *args)` units
  to (a future-like job: `result()`, `cancel()`, `add_done_callback()`), with `slots` (units that
  run at once), `close()` (after the last result) and `abort()` (stop now, on failure);
- `map(fn, items, *shared)`: `fn(item, *shared)` for each item, results in order;
- `local` (units may run in this process when that is cheaper), `retries` (a unit may run more
  than once: what it writes must be safe to write again), `warm_up(preload)`, `close()`.

`local` (`engine.local.LocalEngine`) is the default; `ray` (`engine.ray_engine.RayEngine`) needs
the `scale` extra and, for several nodes, the root on a shared filesystem (`engine.shared_root`).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from ..errors import UsageError
from ..layout import Layout
from .local import LocalEngine

ENGINES = ("local", "ray")


@dataclass(frozen=True)
class EngineSpec:
    """The engine a command asked for (`--engine`, `--ray-address`)."""

    name: str = "local"
    address: str | None = None  # ray: the cluster (None: RAY_ADDRESS, a cluster on this machine, or a new one)

    def __post_init__(self) -> None:
        if self.name not in ENGINES:
            raise UsageError(f"--engine must be one of {', '.join(ENGINES)}, not {self.name!r}")
        if self.address and self.name != "ray":
            raise UsageError("--ray-address needs --engine ray")

    def check_available(self) -> None:
        """Fail now, before a run starts, when the engine's extra is not installed (found, not
        imported: Ray is imported while connecting, in the background, `RayEngine.start`)."""
        if self.name == "ray":
            import importlib.util

            from .ray_engine import import_ray

            if importlib.util.find_spec("ray") is None:
                import_ray()  # raises the extra's error


@contextmanager
def open_engine(spec: EngineSpec | None, layout: Layout) -> Iterator:
    """The engine of `spec` (default: local) for one command; a Ray connection is begun in the
    background at once (`RayEngine.start`) and closed (its root marker removed) when the block ends."""
    if spec is None or spec.name == "local":
        yield LocalEngine()
        return
    from .ray_engine import RayEngine

    engine = RayEngine(layout, spec.address)
    try:
        engine.start()
        yield engine
    finally:
        engine.close()
