"""Hard gates: the specification's four, the lock's hashes, and those each stage registers.

A gate is a function `(layout) -> list[GateFailure]`. Stages register theirs with `@gate(...)`;
`run_gates` runs every registered gate and never stops at the first failure, so the user sees
the whole list at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .layout import Layout


@dataclass(frozen=True)
class GateFailure:
    gate: str  # which gate
    path: str  # root-relative path of what failed (or "" for a global failure)
    reason: str  # why, in words a user can act on

    def __str__(self) -> str:
        where = f" {self.path}:" if self.path else ""
        return f"[{self.gate}]{where} {self.reason}"


@dataclass(frozen=True)
class GateNote:
    """Not a failure: something a gate could not check, said out loud (e.g. a missing extra)."""

    gate: str
    message: str


GateFn = Callable[[Layout], "list[GateFailure | GateNote]"]
_REGISTRY: dict[str, GateFn] = {}


def gate(name: str) -> Callable[[GateFn], GateFn]:
    def register(fn: GateFn) -> GateFn:
        _REGISTRY[name] = fn
        return fn

    return register


def registered() -> dict[str, GateFn]:
    return dict(_REGISTRY)
