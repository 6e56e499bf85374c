"""The run folder (`runs/stt/NAME/`, outside `datasets/`) and train.json.

    config.json, model.safetensors, ...   the best checkpoint's model and its processor (tokenizer,
                                          feature extractor; vocab.json for CTC): load it like any
                                          transformers model, or `eval-stt --model runs/stt/NAME`
    train.json                            what was trained on and how, and what came of it
    clips.jsonl                           every candidate clip: used, or left out and why
    README.md                             the model card (Hub format, model-index with the test scores)
    checkpoints/checkpoint-N/             the Trainer's checkpoints (the best and the last are kept)

train.json's `status` says how far the run got: "training" (resumable from the last checkpoint),
"trained" (the model is saved; the final evaluation is left), "finished". Writes are atomic (temp
file in the folder, then a rename); a lock keeps a second run out of the same folder.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import orjson

from ..atomic import atomic_write_bytes, atomic_writer
from ..layout import Layout
from .errors import TrainInputError

RECORD_VERSION = 1
TRAINING, TRAINED, FINISHED = "training", "trained", "finished"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def default_output(layout: Layout, model: str) -> Path:
    name = Path(model.rstrip("/")).name or "model"
    return layout.root / "runs" / "stt" / name


def fingerprint_digest(fingerprint: dict) -> str:
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True, default=str).encode()).hexdigest()


class RunFolder:
    def __init__(self, path: Path, layout: Layout) -> None:
        self.path = Path(path).absolute()
        if self.path == layout.datasets or self.path.is_relative_to(layout.datasets):
            raise TrainInputError(f"--output {path}: inside {layout.datasets}, which holds the sources and what is "
                                  f"checksummed; put runs elsewhere (default: {layout.root}/runs/stt/NAME)")
        self._lock_fd: int | None = None

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def record_path(self) -> Path:
        return self.path / "train.json"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def tmp(self) -> Path:
        return self.path / ".tmp"

    def lock(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            # a POSIX record lock, not flock(): the data loader's forked workers must not inherit it (after
            # a kill -9 they live on for a few seconds and would keep the rerun out)
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise TrainInputError(f"{self.path}: another train-stt run is using this folder") from None
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def read_record(self) -> dict | None:
        try:
            data = orjson.loads(self.record_path.read_bytes())
        except FileNotFoundError:
            return None
        except orjson.JSONDecodeError as exc:
            raise TrainInputError(f"{self.record_path}: not valid JSON ({exc}); move the folder away or pass "
                                  f"another --output") from None
        if not isinstance(data, dict) or data.get("version") != RECORD_VERSION:
            raise TrainInputError(f"{self.record_path}: not a train-stt record; pass another --output")
        return data

    def write_record(self, record: dict) -> None:
        record["version"] = RECORD_VERSION
        atomic_write_bytes(self.record_path, orjson.dumps(record, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE
                                                          | orjson.OPT_NON_STR_KEYS), self.tmp)

    def write_clips(self, rows) -> None:
        with atomic_writer(self.path / "clips.jsonl", self.tmp) as f:
            for row in rows:
                f.write(orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE))

    def write_text(self, name: str, text: str) -> None:
        atomic_write_bytes(self.path / name, text.encode("utf-8"), self.tmp)

    def foreign_files(self) -> list[str]:
        """What the folder holds besides this module's lock and temp folder."""
        if not self.path.is_dir():
            return []
        return sorted(p.name for p in self.path.iterdir() if p.name not in (".lock", ".tmp"))

    def last_checkpoint(self) -> Path | None:
        """The newest complete checkpoint. The Trainer writes trainer_state.json last, so a checkpoint
        without a readable one was cut short by a kill: it is removed (its step is redone)."""
        if not self.checkpoints.is_dir():
            return None
        found = sorted(((int(m[1]), p) for p in self.checkpoints.iterdir()
                        if p.is_dir() and (m := _CHECKPOINT.match(p.name))), reverse=True)
        for step, path in found:
            try:
                state = json.loads((path / "trainer_state.json").read_text("utf-8"))
            except (OSError, ValueError):
                shutil.rmtree(path, ignore_errors=True)
                continue
            if state.get("global_step") == step:
                return path
            shutil.rmtree(path, ignore_errors=True)
        return None

    def clear_checkpoints(self) -> None:
        shutil.rmtree(self.checkpoints, ignore_errors=True)
