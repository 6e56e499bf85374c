"""One clip from its file to float32 mono samples at the model's rate: decoded once by soundfile
(libsndfile: WAV, FLAC, and Common Voice's MP3 through mpg123; ~4 ms for 5 s of 48 kHz MP3 here,
torchcodec took ~7.5 ms with its resampling), mixed down, resampled by soxr (the resampler librosa
uses; ~1.4 ms for the same clip at its default HQ quality)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


class ClipDecodeError(Exception):
    """A clip that cannot be decoded (its path and soundfile's reason)."""


def load_clip(path: Path, target_sr: int) -> np.ndarray:
    import soundfile as sf
    import soxr

    try:
        x, sr = sf.read(path, dtype="float32")  # mono comes back 1-D: no copy to drop a channel axis
    except (OSError, RuntimeError, sf.LibsndfileError) as exc:
        raise ClipDecodeError(f"{path}: cannot decode ({exc})") from None
    if x.ndim > 1:
        x = x.mean(axis=1, dtype=np.float32)
    if sr != target_sr and len(x):
        x = soxr.resample(x, sr, target_sr)
    return np.ascontiguousarray(x, dtype=np.float32)
