"""`persian-data demo`: the whole job, offline, in about a minute.

Builds small replicas of the five repos (the same builder the tests use), serves them from the
built-in local hub on 127.0.0.1, and runs the real pipeline against it through huggingface_hub
with an endpoint setting, exactly as against the Hub or a mirror. With the tts extra installed the
voice replicas hold tiny but real VITS checkpoints; without it they hold placeholders and the
model check says it could not run.
"""

from __future__ import annotations

import logging
import shutil
import sys
import tempfile
from pathlib import Path

from .catalog import CATALOG, CHAT_BUCKET, SPEECH_BUCKET, VOICE_SOURCES
from .fetch import FetchOptions
from .layout import Layout

log = logging.getLogger("persian_data.demo")


def _voice_assets() -> dict[str, tuple[bytes, bytes]] | None:
    try:
        from .tts.tiny import build_tiny_vits

        return {voice: build_tiny_vits(seed=2 * i) for i, voice in enumerate(VOICE_SOURCES)}  # female 0, male 2
    except ImportError as exc:  # the tts extra is missing: placeholder checkpoints
        print(f"demo: tts extra not installed ({exc.name}); voice replicas hold placeholder checkpoints",
              file=sys.stderr)
        return None


def run_demo(root: Path | None, *, verbose: bool = False) -> int:
    from .corpora.replicas import DEMO, build_replicas
    from .localhub.server import LocalHub
    from .localhub.store import HubStore
    from .card import card_after_run
    from .pipeline import run_job, run_verify

    work = Path(tempfile.mkdtemp(prefix="persian-data-demo-"))
    root = Path(root) if root else work / "root"
    hub_dir = work / "hub"
    try:
        print(f"demo: building replicas of the five repos in {hub_dir}", file=sys.stderr)
        store = HubStore(hub_dir)
        build_replicas(store, DEMO, voice_assets=_voice_assets())
        with LocalHub(store) as hub:
            print(f"demo: local hub at {hub.endpoint}; layout at {root}", file=sys.stderr)
            options = FetchOptions(endpoint=hub.endpoint)
            outcome = run_job(Layout(root), list(CATALOG), options, verbose=verbose, prepare=(CHAT_BUCKET, SPEECH_BUCKET),
                              after_gates=card_after_run)
            print("demo: second run (everything in place, nothing is downloaded)", file=sys.stderr)
            again = run_job(Layout(root), list(CATALOG), options, verbose=verbose, prepare=(CHAT_BUCKET, SPEECH_BUCKET))
    finally:  # the replicas served their purpose: only the layout stays (the whole temp folder if it is elsewhere)
        shutil.rmtree(hub_dir if root.is_relative_to(work) else work, ignore_errors=True)
    verified = run_verify(Layout(root), list(CATALOG), verbose=verbose)
    for line in outcome.failures + again.failures + verified.failures:
        print(f"  - {line}", file=sys.stderr)
    ok = outcome.ok and again.ok and verified.ok
    print(f"demo: {'OK' if ok else 'FAILED'}; look at {root} (logs/dataset_download.log ends with the summary)",
          file=sys.stderr)
    return 0 if ok else 1
