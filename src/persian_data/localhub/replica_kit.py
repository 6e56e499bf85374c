"""What every replica of the local hub is built from: its scale and small deterministic helpers.

The replicas themselves are built by the corpus modules (`persian_data.corpora.<corpus>.replica_files`,
listed in `corpora.registry.REPLICAS`); `corpora.replicas` publishes them into a `HubStore`.
Everything here is a pure function of its arguments: the same arguments give byte-identical bytes.
Audio is synthesized with integer arithmetic and encoded by libsndfile (WAV, and MP3 through LAME);
with `ReplicaScale(audio="espeak")` clips are spoken Persian from espeak-ng when it is installed.

numpy and soundfile are imported where used: the corpus modules import this one, and the catalog
imports the corpus modules, so nothing heavy may load with it.
"""

from __future__ import annotations

import hashlib
import io
import random
import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa


# ---------------------------------------------------------------------------------------------
# Scale
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReplicaScale:
    """How big the replicas are. Adversarial content is the same at every scale."""

    name: str
    text_rows: int  # normal rows per text json file (adversarial rows come on top)
    cv_clips_per_shard: int  # rows per Common Voice parquet file (train has two files)
    fleurs_clips_per_split: int  # normal recordings per FLEURS split and language
    checkpoint_bytes: int  # size of every placeholder .pth
    clip_ms: tuple[int, int] = (500, 1000)  # clip durations, inclusive range, milliseconds
    # "synth" (default): integer-math tones, identical everywhere. "espeak": the sentence spoken
    # by espeak-ng (voice fa) when installed, full length (up to 10 s); synth otherwise.
    audio: str = "synth"

    def __post_init__(self) -> None:
        if min(self.text_rows, self.cv_clips_per_shard, self.fleurs_clips_per_split) < 2:
            raise ValueError("replica scales need at least 2 rows/clips per file")
        if self.checkpoint_bytes < 64:
            raise ValueError("checkpoint_bytes must be at least 64")
        if not 100 <= self.clip_ms[0] <= self.clip_ms[1]:
            raise ValueError("clip_ms must be (min, max) with 100 <= min <= max")
        if self.audio not in ("synth", "espeak"):
            raise ValueError("audio must be 'synth' or 'espeak'")


TINY = ReplicaScale("tiny", text_rows=6, cv_clips_per_shard=3, fleurs_clips_per_split=3, checkpoint_bytes=4096)
DEMO = ReplicaScale(
    "demo",
    text_rows=120,
    cv_clips_per_shard=12,
    fleurs_clips_per_split=8,
    checkpoint_bytes=256 * 1024,
    clip_ms=(500, 2000),
)


# ---------------------------------------------------------------------------------------------
# Small deterministic helpers
# ---------------------------------------------------------------------------------------------
def seed(*parts: object) -> int:
    """A stable 64-bit seed from any printable parts (never Python's salted hash())."""
    text = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def rng(*parts: object) -> random.Random:
    return random.Random(seed(*parts))


def pseudo_bytes(n: int, *parts: object) -> bytes:
    """n deterministic pseudo-random bytes (PCG64 raw output is stable across numpy versions)."""
    import numpy as np

    words = np.random.PCG64(seed(*parts)).random_raw((n + 7) // 8).astype("<u8")
    return words.tobytes()[:n]


_FA_DIGITS = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")


def fa_digits(n: int | str) -> str:
    return str(n).translate(_FA_DIGITS)


# Hugging Face's default .gitattributes templates (new model repo / new dataset repo).
GITATTRIBUTES_MODEL = """\
*.7z filter=lfs diff=lfs merge=lfs -text
*.arrow filter=lfs diff=lfs merge=lfs -text
*.bin filter=lfs diff=lfs merge=lfs -text
*.bz2 filter=lfs diff=lfs merge=lfs -text
*.ckpt filter=lfs diff=lfs merge=lfs -text
*.ftz filter=lfs diff=lfs merge=lfs -text
*.gz filter=lfs diff=lfs merge=lfs -text
*.h5 filter=lfs diff=lfs merge=lfs -text
*.joblib filter=lfs diff=lfs merge=lfs -text
*.lfs.* filter=lfs diff=lfs merge=lfs -text
*.mlmodel filter=lfs diff=lfs merge=lfs -text
*.model filter=lfs diff=lfs merge=lfs -text
*.msgpack filter=lfs diff=lfs merge=lfs -text
*.npy filter=lfs diff=lfs merge=lfs -text
*.npz filter=lfs diff=lfs merge=lfs -text
*.onnx filter=lfs diff=lfs merge=lfs -text
*.ot filter=lfs diff=lfs merge=lfs -text
*.parquet filter=lfs diff=lfs merge=lfs -text
*.pb filter=lfs diff=lfs merge=lfs -text
*.pickle filter=lfs diff=lfs merge=lfs -text
*.pkl filter=lfs diff=lfs merge=lfs -text
*.pt filter=lfs diff=lfs merge=lfs -text
*.pth filter=lfs diff=lfs merge=lfs -text
*.rar filter=lfs diff=lfs merge=lfs -text
*.safetensors filter=lfs diff=lfs merge=lfs -text
saved_model/**/* filter=lfs diff=lfs merge=lfs -text
*.tar.* filter=lfs diff=lfs merge=lfs -text
*.tflite filter=lfs diff=lfs merge=lfs -text
*.tgz filter=lfs diff=lfs merge=lfs -text
*.wasm filter=lfs diff=lfs merge=lfs -text
*.xz filter=lfs diff=lfs merge=lfs -text
*.zip filter=lfs diff=lfs merge=lfs -text
*.zst filter=lfs diff=lfs merge=lfs -text
*tfevents* filter=lfs diff=lfs merge=lfs -text
"""

GITATTRIBUTES_DATASET = GITATTRIBUTES_MODEL + """\
# Audio files - uncompressed
*.pcm filter=lfs diff=lfs merge=lfs -text
*.sam filter=lfs diff=lfs merge=lfs -text
*.raw filter=lfs diff=lfs merge=lfs -text
# Audio files - compressed
*.aac filter=lfs diff=lfs merge=lfs -text
*.flac filter=lfs diff=lfs merge=lfs -text
*.mp3 filter=lfs diff=lfs merge=lfs -text
*.ogg filter=lfs diff=lfs merge=lfs -text
*.wav filter=lfs diff=lfs merge=lfs -text
# Image files - uncompressed
*.bmp filter=lfs diff=lfs merge=lfs -text
*.gif filter=lfs diff=lfs merge=lfs -text
*.png filter=lfs diff=lfs merge=lfs -text
*.tiff filter=lfs diff=lfs merge=lfs -text
# Image files - compressed
*.jpg filter=lfs diff=lfs merge=lfs -text
*.jpeg filter=lfs diff=lfs merge=lfs -text
*.webp filter=lfs diff=lfs merge=lfs -text
"""


def lfs_line(path: str) -> str:
    # What huggingface_hub appends when it uploads a file over 10 MB that no pattern covers.
    return f"{path} filter=lfs diff=lfs merge=lfs -text\n"


# ---------------------------------------------------------------------------------------------
# Audio
# ---------------------------------------------------------------------------------------------
def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def synth_int16(n: int, *seed_parts: object) -> np.ndarray:
    """A voiced, syllable-like int16 signal made with integer arithmetic only (bit-exact)."""
    import numpy as np

    r = rng("synth", *seed_parts)
    t = np.arange(n, dtype=np.int64)
    voiced = np.zeros(n, dtype=np.int64)
    for amp in (5000, 2500, 1200):  # a pitch and two "formant" partials: triangle waves
        period = r.randint(20, 400)  # samples per cycle
        x = (t + r.randint(0, period)) % period
        y = 4 * amp * x // period
        voiced += np.where(y < amp, y, np.where(y < 3 * amp, 2 * amp - y, y - 4 * amp))
    # Syllable envelope: bursts with linear ramps, silence between them (0..1024 fixed point).
    env = np.zeros(n, dtype=np.int64)
    pos = r.randint(0, max(1, n // 20))
    while pos < n:
        length = r.randint(max(8, n // 10), max(9, n // 3))
        ramp = max(1, length // 4)
        seg = np.arange(min(length, n - pos), dtype=np.int64)
        env[pos : pos + seg.size] = np.minimum(1024, np.minimum(seg, length - seg) * 1024 // ramp)
        pos += length + r.randint(max(1, n // 40), max(2, n // 8))
    noise = (np.random.PCG64(seed("noise", *seed_parts)).random_raw(n) >> np.uint64(55)).astype(np.int64) - 256
    return np.clip(voiced * env // 1024 + noise, -32768, 32767).astype(np.int16)


def espeak_int16(text: str, sr: int, n_max: int) -> np.ndarray | None:
    import subprocess  # here, as numpy: the CLI imports this module with every corpus

    import numpy as np
    import soundfile as sf

    try:
        wav = subprocess.run(
            ["espeak-ng", "-v", "fa", "-s", "165", "--stdout", text],
            capture_output=True,
            check=True,
            timeout=30,
        ).stdout
        data, src_sr = sf.read(io.BytesIO(wav), dtype="float64")
    except (OSError, subprocess.SubprocessError, RuntimeError, sf.LibsndfileError):
        return None
    if data.ndim > 1:
        data = data[:, 0]
    n = min(n_max, int(len(data) * sr // src_sr))
    if n <= 0:
        return None
    out = np.interp(np.arange(n) * (src_sr / sr), np.arange(len(data)), data)
    return np.clip(np.round(out * 32767.0), -32768, 32767).astype(np.int16)


def clip(scale: ReplicaScale, sr: int, text: str, *seed_parts: object) -> np.ndarray:
    import numpy as np

    lo, hi = scale.clip_ms
    n = sr * rng("dur", *seed_parts).randint(lo, hi) // 1000
    if scale.audio == "espeak" and espeak_available():
        # Spoken clips run to the end of the sentence (so the transcript matches), at most 10 s.
        spoken = espeak_int16(text, sr, sr * 10)
        if spoken is not None:
            if spoken.size < sr * lo // 1000:
                spoken = np.concatenate([spoken, np.zeros(sr * lo // 1000 - spoken.size, np.int16)])
            return spoken
    return synth_int16(n, *seed_parts)


def encode(samples: np.ndarray, sr: int, fmt: str) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    if fmt == "MP3":
        sf.write(buf, samples, sr, format="MP3", subtype="MPEG_LAYER_III")
    else:
        sf.write(buf, samples, sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def parquet_bytes(table: pa.Table) -> bytes:
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=100)  # datasets writes audio in 100-row groups
    return buf.getvalue()
