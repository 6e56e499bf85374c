"""The voice check in a child process, started while the voice is still downloading.

Importing torch and coqui-tts costs about 4 s of one core, and the check itself needs them. On a
`fetch` that downloads a voice, the download loop keeps one core busy and the other is nearly
idle, so a child process started as soon as the plan is known spends those 4 s there, and the
gate at the end only sends it the paths. A thread cannot do this: the imports hold the GIL the
download loop needs (measured: downloads ~6 s slower).

The child is a `multiprocessing` spawn process (not fork: the parent runs download threads), at a
lower CPU priority so that it only takes what the downloads leave. It is a head start, never a
dependency: if it cannot start, dies, or the extra is missing, the gate checks in-process.
"""

from __future__ import annotations

import importlib.util
import logging
import multiprocessing
import os
import signal
import sys
from pathlib import Path
from typing import Any

from ..catalog import Source
from ..layout import Layout

log = logging.getLogger("persian_data.tts")

VOICE_KEYS = ("tts-female", "tts-male")
NICENESS = 10
STOP_TIMEOUT = 2.0


def _child_main(conn: Any) -> None:
    # The parent handles Ctrl-C (and terminates us); a second traceback from here would only
    # confuse the user.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        os.nice(NICENESS)
    except OSError:
        pass
    from .check import check_voice, quiet_coqui, require_tts_extra

    try:
        require_tts_extra()
        with quiet_coqui():
            # what check_voice needs besides the bare imports: the config classes and characters
            import TTS.tts.configs.vits_config  # noqa: F401
            import TTS.tts.utils.text.characters  # noqa: F401
    except Exception:  # noqa: BLE001 - check_voice reports a missing extra itself, as a note
        pass
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return  # the parent went away
        model_dir, checkpoint, structural, layout = request
        try:
            results = check_voice(model_dir, checkpoint=checkpoint, structural=structural,
                                  display=layout.relative if layout is not None else None)
            conn.send(("ok", results))
        except BaseException as exc:  # noqa: BLE001 - reported to the parent, which checks in-process
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


class CheckWorker:
    """A child process that has imported torch + coqui-tts and runs `check_voice` on request."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child_conn = context.Pipe()
        self._process = context.Process(target=_child_main, args=(child_conn,), daemon=True,
                                        name="persian-data voice check")
        self._process.start()
        child_conn.close()

    def check(self, model_dir: Path, *, checkpoint: str | None, structural: bool,
              layout: Layout | None) -> list | None:
        """check_voice's result from the child; None when the child could not answer."""
        try:
            self._conn.send((Path(model_dir), checkpoint, structural, layout))
            status, payload = self._conn.recv()
        except (EOFError, OSError, BrokenPipeError) as exc:
            log.warning("voice check: the child process stopped (%s, exit code %s); checking here instead",
                        type(exc).__name__, self._process.exitcode)
            return None
        if status != "ok":
            log.warning("voice check: the child process failed (%s); checking here instead", payload)
            return None
        return payload

    def close(self) -> None:
        try:
            self._conn.close()
        finally:
            if self._process.is_alive():
                self._process.terminate()
            self._process.join(STOP_TIMEOUT)
            if self._process.is_alive():
                self._process.kill()
                self._process.join(STOP_TIMEOUT)


def start_check_worker(layout: Layout, sources: list[Source]) -> CheckWorker | None:
    """Warm-up of the `tts` gate: start the child when a voice is about to download and the
    import would cost this process seconds; otherwise None (the gate checks in-process)."""
    if not any(source.key in VOICE_KEYS for source in sources):
        return None
    if "TTS" in sys.modules and "torch" in sys.modules:
        return None  # already paid for in this process: checking here is quicker
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("TTS") is None:
        return None  # the in-process check says how to install the extra
    log.info("voice check: importing torch and coqui-tts in a child process while the voice downloads")
    return CheckWorker()
