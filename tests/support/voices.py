"""A tiny (or real-sized) random VITS voice written into a folder, as a fetched voice repo holds it:
config.json, the checkpoint and a model card. Built by `persian_data.tts.tiny`."""

from __future__ import annotations

import re
from pathlib import Path

from persian_data.atomic import atomic_write_bytes
from persian_data.tts.tiny import build_vits

MODEL_CARD = """---
library_name: TTS
license: openrail
language: fa
---
# {title}

Random weights, built by `persian_data.tts.tiny` for tests: it loads and speaks noise.
Usage: `tts --text "..." --model_path {checkpoint} --config_path config.json --out_path speech.wav`
"""


def write_vits(
    model_dir: Path,
    *,
    checkpoint_name: str = "best_model_30824.pth",
    readme: bool = True,
    tmp_dir: Path | None = None,
    **kwargs,
) -> Path:
    """Write config.json, the checkpoint (and a README.md) into `model_dir`; return model_dir.

    kwargs go to `build_vits`; the step defaults to the number in `checkpoint_name`.
    """
    model_dir = Path(model_dir)
    match = re.search(r"_(\d+)\.pth$", checkpoint_name)
    if match and "step" not in kwargs:
        kwargs["step"] = int(match.group(1))
    config_bytes, ckpt_bytes = build_vits(**kwargs)
    tmp = Path(tmp_dir) if tmp_dir else model_dir
    model_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(model_dir / "config.json", config_bytes, tmp)
    atomic_write_bytes(model_dir / checkpoint_name, ckpt_bytes, tmp)
    if readme:
        card = MODEL_CARD.format(title=model_dir.name, checkpoint=checkpoint_name)
        atomic_write_bytes(model_dir / "README.md", card.encode("utf-8"), tmp)
    return model_dir
