"""The voice check in a child process, started while the voice is still downloading.

Importing torch and coqui-tts costs about 4 s of one core, and the check itself needs them. On a
`fetch` that downloads a voice, the download loop keeps one core busy and the other is nearly
idle, so a child process started as soon as the plan is known spends those 4 s there, and the
gate at the end only sends it the paths. A thread cannot do this: the imports hold the GIL the
download loop needs (measured: downloads ~6 s slower).

The child is `python -c "from persian_data.tts.worker import main; main()"`, a plain subprocess rather than a
`multiprocessing` spawn: spawn re-imports the caller's `__main__`, which would re-run a user's
script that calls `fetch` without an `if __name__ == "__main__"` guard. Requests and answers are
pickled over the child's stdin/stdout (our own two processes, nothing else writes there). It runs
at a lower CPU priority, in its own session (a terminal's Ctrl-C goes to the run, which stops
it), and exits when its stdin closes, so a killed run leaves nothing behind. It is a head start,
never a dependency: if it cannot start, dies, or the extra is missing, the gate checks in-process.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import BinaryIO

from ..catalog import Source
from ..layout import Layout

log = logging.getLogger("persian_data.tts")

NICENESS = 10
STOP_TIMEOUT = 2.0


def _child_env() -> dict[str, str]:
    """This environment, with this very copy of persian_data first on the child's path."""
    package_parent = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    return env


class CheckWorker:
    """A child process that has imported torch + coqui-tts and runs `check_voice` on request."""

    def __init__(self, stderr_path: Path | None = None) -> None:
        self._stderr_path = stderr_path
        stderr = open(stderr_path, "wb") if stderr_path is not None else subprocess.DEVNULL
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-c", "from persian_data.tts.worker import main; main()"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, env=_child_env(),
                start_new_session=True, close_fds=True,
            )
        finally:
            if stderr_path is not None:
                stderr.close()

    def check(self, model_dir: Path, *, checkpoint: str | None, structural: bool,
              layout: Layout | None) -> list | None:
        """check_voice's result from the child; None when the child could not answer."""
        try:
            pickle.dump((Path(model_dir), checkpoint, structural, layout), self._process.stdin)
            self._process.stdin.flush()
            status, payload = pickle.load(self._process.stdout)
        except (EOFError, OSError, pickle.UnpicklingError) as exc:
            log.warning("voice check: the child process stopped (%s, exit code %s)%s; checking here instead",
                        type(exc).__name__, self._process.poll(), self._stderr_tail())
            return None
        if status != "ok":
            log.warning("voice check: the child process failed (%s); checking here instead", payload)
            return None
        return payload

    def _stderr_tail(self) -> str:
        try:
            tail = self._stderr_path.read_text("utf-8", "replace").strip().splitlines()[-1:]  # type: ignore[union-attr]
        except (AttributeError, OSError):
            return ""
        return f": {tail[0][:300]}" if tail else ""

    def close(self) -> None:
        process = self._process
        for stream in (process.stdin, process.stdout):
            try:
                stream.close()  # the child reads end-of-file and exits
            except OSError:
                pass
        try:
            process.wait(0.2)
        except subprocess.TimeoutExpired:  # still importing torch: it holds nothing worth waiting for
            process.kill()
            process.wait(STOP_TIMEOUT)


def start_check_worker(layout: Layout, sources: list[Source]) -> CheckWorker | None:
    """Warm-up of the `tts` gate: start the child when a voice is about to download and the
    import would cost this process seconds; otherwise None (the gate checks in-process)."""
    if not any(source.voice for source in sources):
        return None
    if "TTS" in sys.modules and "torch" in sys.modules:
        return None  # already paid for in this process: checking here is quicker
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("TTS") is None:
        return None  # the in-process check says how to install the extra
    log.info("voice check: importing torch and coqui-tts in a child process while the voice downloads")
    return CheckWorker(stderr_path=layout.tmp_dir / "voice-check.stderr" if layout.tmp_dir.is_dir() else None)


def _serve(requests: BinaryIO, answers: BinaryIO) -> None:
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
            model_dir, checkpoint, structural, layout = pickle.load(requests)
        except EOFError:
            return  # the run is done (or gone)
        try:
            results = check_voice(model_dir, checkpoint=checkpoint, structural=structural,
                                  display=layout.relative if layout is not None else None)
            answer = ("ok", results)
        except Exception as exc:  # noqa: BLE001 - reported to the run, which checks in-process
            answer = ("error", f"{type(exc).__name__}: {exc}")
        pickle.dump(answer, answers)
        answers.flush()


def main() -> None:
    try:
        os.nice(NICENESS)
    except OSError:
        pass
    # Answers go out on a private copy of stdout; anything a library prints goes to stderr.
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    _serve(sys.stdin.buffer, answers)
    os._exit(0)  # every answer is flushed; skip tearing down torch (hundreds of ms)


if __name__ == "__main__":
    main()
