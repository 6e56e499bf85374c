"""/metrics of the TTS server in the Prometheus text format, with the official client library.

One registry per app (not the process-wide default), so two apps in one process (tests) keep
their own counts. prometheus_client is in the `serve` and `tts` extras; without it /metrics
answers 501 and the server still runs.
"""

from __future__ import annotations

from typing import Callable

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
RTF_BUCKETS = (0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.35, 0.5, 0.75, 1.0, 2.0)


class Metrics:
    def __init__(self, *, runtimes: dict[str, str], queue_length: Callable[[], float],
                 running: Callable[[], float]) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = registry = CollectorRegistry()
        self.requests = Counter("tts_requests", "/api/tts requests by voice and HTTP status.",
                                ["voice", "status"], registry=registry)
        self.latency = Histogram("tts_request_duration_seconds",
                                 "Time from admission to the whole answer, requests answered with audio.",
                                 ["voice"], buckets=LATENCY_BUCKETS, registry=registry)
        self.rtf = Histogram("tts_real_time_factor", "Synthesis seconds per second of audio, per request.",
                             ["voice"], buckets=RTF_BUCKETS, registry=registry)
        self.audio = Counter("tts_audio_seconds", "Seconds of audio produced.", ["voice"], registry=registry)
        self.pieces = Counter("tts_pieces_synthesized", "Sentences (pieces) synthesized, streamed or not.",
                              ["voice"], registry=registry)
        Gauge("tts_queue_length", "Admitted requests waiting for a synthesis worker.",
              registry=registry).set_function(queue_length)
        Gauge("tts_in_progress", "Syntheses running right now.", registry=registry).set_function(running)
        voices = Gauge("tts_voice_info", "Loaded voices and the runtime that serves each (value 1).",
                       ["voice", "runtime"], registry=registry)
        for voice, runtime in runtimes.items():
            voices.labels(voice=voice, runtime=runtime).set(1)

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def make_metrics(**kwargs) -> Metrics | None:
    try:
        return Metrics(**kwargs)
    except ImportError:
        return None
