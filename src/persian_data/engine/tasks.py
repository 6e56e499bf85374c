"""The Ray side of a unit of work: what one Ray task runs on a worker (no Ray import needed here).

Every task first checks that its node sees the driver's root and runs the driver's code
(`shared_root.check_marker`), then runs the stage's initializer once per worker process and
stage (what a local worker runs when it starts), then the unit itself.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from typing import Any, Callable

from .shared_root import RootMarker, check_marker


@dataclass(frozen=True)
class TaskSetup:
    """What every task of one executor shares (put once in Ray's object store)."""

    key: str  # unique per executor: a worker runs the initializer again when it changes
    marker: RootMarker
    initializer: Callable | None = None
    initargs: tuple = ()


_CURRENT: str | None = None  # the setup this worker process last initialized


def run_task(setup: TaskSetup, fn: Callable, *args: Any) -> Any:
    global _CURRENT
    check_marker(setup.marker)
    if _CURRENT != setup.key:
        # Ray reuses a worker for any task of the job: one stage's settings (the chat converter
        # turns the cyclic garbage collector off) must not leak into the next stage's units.
        gc.enable()
        if setup.initializer is not None:
            setup.initializer(*setup.initargs)
        _CURRENT = setup.key
    return fn(*args)
