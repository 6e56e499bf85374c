"""Shared fixtures: a local Hub-compatible server with replicas of the five repos.

The code under test is the real code: it reaches this server through huggingface_hub with an
endpoint setting, exactly as it reaches the Hub or a mirror.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from persian_data.localhub.store import HubStore

from support.replicas import TINY, build_replicas
from support.hub import ScriptedHub


def _voice_assets(tmp_factory) -> dict | None:
    """Tiny real VITS models when the tts extra is installed, else None (placeholder checkpoints)."""
    try:
        from persian_data.tts.tiny import build_tiny_vits
    except ImportError:
        return None
    try:
        import TTS  # noqa: F401
    except ImportError:
        return None
    return {"female": build_tiny_vits(seed=0), "male": build_tiny_vits(seed=2)}


@pytest.fixture(scope="session")
def voice_assets(tmp_path_factory):
    return _voice_assets(tmp_path_factory)


@pytest.fixture(scope="session")
def replica_store(tmp_path_factory, voice_assets) -> HubStore:
    store = HubStore(tmp_path_factory.mktemp("hub"))
    build_replicas(store, TINY, voice_assets=voice_assets)
    return store


@pytest.fixture(scope="session")
def hub(replica_store):
    with ScriptedHub(replica_store) as server:
        yield server


@pytest.fixture
def fresh_hub(tmp_path, voice_assets):
    """A hub of its own, for tests that change repos or inject faults."""
    store = HubStore(tmp_path / "hub")
    build_replicas(store, TINY, voice_assets=voice_assets)
    with ScriptedHub(store) as server:
        yield server


@pytest.fixture(autouse=True)
def _clean_hub_faults(request):
    yield
    if "hub" in request.fixturenames:
        hub = request.getfixturevalue("hub")
        hub.faults.clear()


def copy_tree(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, symlinks=True)
