"""How many syntheses run at once, how many wait, and what happens to the rest.

`workers` requests synthesize at the same time (threads of one pool; an onnxruntime session is
thread-safe, a torch voice is not and gets one worker). Up to `max_queue` more are admitted and
wait for a worker; beyond that a request is refused at once (HTTP 503 with Retry-After, an
estimate from recent request times), so a burst cannot pile up unbounded latency and memory.
Each admitted request has a deadline (`timeout`): if it passes, the request is answered 504; a
request still waiting is dropped from the pool, and a running one stops before its next sentence.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable


class QueueFull(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"queue full; retry after {retry_after} s")
        self.retry_after = retry_after


class Deadline(Exception):
    """The request's time ran out."""


class Ticket:
    """One admitted request: its deadline and a flag a long synthesis checks between sentences."""

    def __init__(self, timeout: float) -> None:
        self.deadline = time.monotonic() + timeout
        self.stop = threading.Event()

    def remaining(self) -> float:
        return self.deadline - time.monotonic()


class Admission:
    def __init__(self, workers: int = 1, max_queue: int = 8, timeout: float = 60.0) -> None:
        if workers < 1 or max_queue < 0 or timeout <= 0:
            raise ValueError("workers >= 1, max_queue >= 0 and timeout > 0 are required")
        self.workers, self.max_queue, self.timeout = workers, max_queue, timeout
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="tts-synth")
        self._lock = threading.Lock()
        self.admitted = 0  # in the building: waiting or running
        self.running = 0  # inside a worker right now
        self._recent = 1.0  # moving average of request seconds, for Retry-After

    @property
    def queue_length(self) -> int:
        """Admitted requests not being synthesized right now."""
        with self._lock:
            return max(0, self.admitted - self.running)

    def retry_after(self) -> int:
        with self._lock:
            ahead = self.admitted - self.workers + 1
        return max(1, math.ceil(self._recent * max(1, ahead) / self.workers))

    def admit(self) -> Ticket:
        """Admit one request or raise QueueFull. Every admitted ticket must be `release`d."""
        with self._lock:
            full = self.admitted >= self.workers + self.max_queue
            if not full:
                self.admitted += 1
        if full:
            raise QueueFull(self.retry_after())
        return Ticket(self.timeout)

    def release(self, ticket: Ticket) -> None:
        ticket.stop.set()
        took = time.monotonic() - (ticket.deadline - self.timeout)
        with self._lock:
            self.admitted -= 1
            self._recent = 0.8 * self._recent + 0.2 * took

    async def run(self, ticket: Ticket, fn: Callable[..., Any], *args: Any) -> Any:
        """fn(*args) on a worker, within the ticket's deadline (else Deadline)."""

        def work() -> Any:
            with self._lock:
                self.running += 1
            try:
                return fn(*args)
            finally:
                with self._lock:
                    self.running -= 1

        remaining = ticket.remaining()
        if remaining <= 0:
            raise Deadline()
        future = asyncio.get_running_loop().run_in_executor(self._pool, work)
        try:
            return await asyncio.wait_for(future, remaining)  # a waiting job is cancelled with it
        except asyncio.TimeoutError:
            ticket.stop.set()
            raise Deadline() from None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
