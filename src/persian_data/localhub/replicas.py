"""Deterministic, small replicas of the five source repos, for tests and the offline demo.

The Hub cannot be reached from here, so tests serve these replicas from the local hub
(`HubStore`). Each replica mirrors the real repo as described in `SOURCES.md`: the same file
names, formats and Git LFS split, with the content shrunk and generated, plus deliberate
adversarial content that the real data has (or could have) and the pipeline must survive.

Everything is a pure function of its arguments: the same arguments give byte-identical files,
and so identical commit shas in a fresh store. Audio is synthesized with integer arithmetic and
encoded by libsndfile (WAV, and MP3 through LAME), so it is identical on every machine with the
same libsndfile; gzip output (FLEURS tarballs) depends on the zlib build. With
`ReplicaScale(audio="espeak")` clips are spoken Persian from espeak-ng when it is installed
(deterministic for one espeak-ng version), and synthesized otherwise.

What the replicas hold, and every deliberate defect, is listed in the manifests below
(`TEXT_ADVERSARIAL`, `text_manifest`, `CV_CORRUPT`, `cv_manifest`, `FLEURS_ADVERSARIAL`,
`fleurs_manifest`) so that other tests can assert exact numbers.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import shutil
import struct
import subprocess
import tarfile
import zipfile
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import soundfile as sf

from ..catalog import CATALOG
from .store import HubStore, lfs_patterns, matches_lfs

__all__ = [
    "ReplicaScale",
    "TINY",
    "DEMO",
    "BENCH",
    "REPLICA_REPOS",
    "text_repo",
    "commonvoice_repo",
    "fleurs_repo",
    "tts_repo",
    "build_replicas",
    "replica_files",
    "TEXT_FILES",
    "TEXT_LFS_FILES",
    "TEXT_HOSTILE_FILES",
    "TEXT_ADVERSARIAL",
    "TEXT_ADVERSARIAL_COUNTS",
    "TEXT_HOSTILE",
    "text_manifest",
    "text_adversarial_rows",
    "CV_FILES",
    "CV_COLUMNS",
    "CV_CORRUPT",
    "cv_manifest",
    "FLEURS_SPLITS",
    "FLEURS_ADVERSARIAL",
    "FLEURS_HOSTILE_MEMBERS",
    "fleurs_manifest",
    "TTS_FILES",
    "TTS_INFERENCE",
]


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

    def scaled(self, factor: float, *, name: str | None = None) -> ReplicaScale:
        """Every count and the checkpoint size multiplied by `factor` (for benchmarks)."""
        return replace(
            self,
            name=name or f"{self.name}x{factor:g}",
            text_rows=max(2, round(self.text_rows * factor)),
            cv_clips_per_shard=max(2, round(self.cv_clips_per_shard * factor)),
            fleurs_clips_per_split=max(2, round(self.fleurs_clips_per_split * factor)),
            checkpoint_bytes=max(64, round(self.checkpoint_bytes * factor)),
        )


TINY = ReplicaScale("tiny", text_rows=6, cv_clips_per_shard=3, fleurs_clips_per_split=3, checkpoint_bytes=4096)
DEMO = ReplicaScale(
    "demo",
    text_rows=120,
    cv_clips_per_shard=12,
    fleurs_clips_per_split=8,
    checkpoint_bytes=256 * 1024,
    clip_ms=(500, 2000),
)
BENCH = ReplicaScale(
    "bench",
    text_rows=20_000,
    cv_clips_per_shard=200,
    fleurs_clips_per_split=100,
    checkpoint_bytes=32 * 1024 * 1024,
    clip_ms=(500, 2000),
)

# Source key -> (repo_type, repo_id); taken from the catalog so the two cannot disagree.
REPLICA_REPOS: dict[str, tuple[str, str]] = {s.key: (s.repo_type, s.repo_id) for s in CATALOG}


# ---------------------------------------------------------------------------------------------
# Small deterministic helpers
# ---------------------------------------------------------------------------------------------
def _seed(*parts: object) -> int:
    """A stable 64-bit seed from any printable parts (never Python's salted hash())."""
    text = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def _rng(*parts: object) -> random.Random:
    return random.Random(_seed(*parts))


def _pseudo_bytes(n: int, *parts: object) -> bytes:
    """n deterministic pseudo-random bytes (PCG64 raw output is stable across numpy versions)."""
    words = np.random.PCG64(_seed(*parts)).random_raw((n + 7) // 8).astype("<u8")
    return words.tobytes()[:n]


_FA_DIGITS = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")


def _fa(n: int | str) -> str:
    return str(n).translate(_FA_DIGITS)


# Hugging Face's default .gitattributes templates (new model repo / new dataset repo).
_GITATTRIBUTES_MODEL = """\
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

_GITATTRIBUTES_DATASET = _GITATTRIBUTES_MODEL + """\
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


def _lfs_line(path: str) -> str:
    # What huggingface_hub appends when it uploads a file over 10 MB that no pattern covers.
    return f"{path} filter=lfs diff=lfs merge=lfs -text\n"


# ---------------------------------------------------------------------------------------------
# Audio
# ---------------------------------------------------------------------------------------------
def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def _synth_int16(n: int, *seed_parts: object) -> np.ndarray:
    """A voiced, syllable-like int16 signal made with integer arithmetic only (bit-exact)."""
    r = _rng("synth", *seed_parts)
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
    noise = (np.random.PCG64(_seed("noise", *seed_parts)).random_raw(n) >> np.uint64(55)).astype(np.int64) - 256
    return np.clip(voiced * env // 1024 + noise, -32768, 32767).astype(np.int16)


def _espeak_int16(text: str, sr: int, n_max: int) -> np.ndarray | None:
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


def _clip(scale: ReplicaScale, sr: int, text: str, *seed_parts: object) -> np.ndarray:
    lo, hi = scale.clip_ms
    n = sr * _rng("dur", *seed_parts).randint(lo, hi) // 1000
    if scale.audio == "espeak" and espeak_available():
        # Spoken clips run to the end of the sentence (so the transcript matches), at most 10 s.
        spoken = _espeak_int16(text, sr, sr * 10)
        if spoken is not None:
            if spoken.size < sr * lo // 1000:
                spoken = np.concatenate([spoken, np.zeros(sr * lo // 1000 - spoken.size, np.int16)])
            return spoken
    return _synth_int16(n, *seed_parts)


def _encode(samples: np.ndarray, sr: int, fmt: str) -> bytes:
    buf = io.BytesIO()
    if fmt == "MP3":
        sf.write(buf, samples, sr, format="MP3", subtype="MPEG_LAYER_III")
    else:
        sf.write(buf, samples, sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# A. Text: Kamtera/Persian-conversational-dataset
# ---------------------------------------------------------------------------------------------
TEXT_FILES = (
    "dadrah_dataset.json",
    "dadrah_dataset1-1000_10000.json",
    "dadrah_dataset1-10000_100000.json",
    "dadrah_dataset1-100000_276342.json",
)
TEXT_LFS_FILES = TEXT_FILES[1:]  # dadrah_dataset.json is a plain git blob on the Hub
TEXT_HOSTILE_FILES = (
    "dadrah_dataset_extra_invalid_utf8.json",  # not LFS; invalid UTF-8 inside two strings
    "dadrah_dataset_extra_truncated.json",  # LFS; the JSON array is cut inside a string
)

ZWNJ = "\u200c"

# kind -> where it is and what it is. Counts do not depend on the scale. "well_formed" means the
# strict schema holds: a 4-item list [str, str, list[str], list[str]] (content may still be odd).
TEXT_ADVERSARIAL: dict[str, dict[str, Any]] = {
    "arabic_letters": {"file": TEXT_FILES[0], "count": 1, "well_formed": True,
                       "what": "Arabic ي ى ك ة and ۀ instead of Persian ی ک ه"},
    "zwnj": {"file": TEXT_FILES[0], "count": 1, "well_formed": True,
             "what": "ZWNJ at start/end of strings, doubled, beside spaces, inside words (می‌خواهم), alone"},
    "diacritics": {"file": TEXT_FILES[0], "count": 1, "well_formed": True,
                   "what": "Arabic harakat: fatha, kasra, damma, shadda, sukun, tanwin, superscript alef"},
    "tatweel": {"file": TEXT_FILES[0], "count": 1, "well_formed": True, "what": "kashida U+0640, single and runs"},
    "digits": {"file": TEXT_FILES[0], "count": 1, "well_formed": True,
               "what": "Arabic-Indic ٠-٩, Persian ۰-۹ and ASCII digits mixed"},
    "odd_spaces": {"file": TEXT_FILES[0], "count": 1, "well_formed": True,
                   "what": "NBSP, U+200F RLM, U+200E LRM, U+2009, U+202F, U+3000, BOM U+FEFF, tab, CR/LF, U+2028"},
    "control_chars": {"file": TEXT_FILES[0], "count": 1, "well_formed": True,
                      "what": "U+0000, U+0001, U+0007, U+0008, U+001B, U+007F, U+0085"},
    "multi_answers": {"file": TEXT_FILES[0], "count": 1, "well_formed": True, "what": "4 answers"},
    "empty_answers": {"file": TEXT_FILES[1], "count": 1, "well_formed": True, "what": "answers == []"},
    "empty_question": {"file": TEXT_FILES[1], "count": 1, "well_formed": True, "what": 'question == ""'},
    "three_items": {"file": TEXT_FILES[1], "count": 1, "well_formed": False,
                    "what": "[title, question, answers] (no keywords)"},
    "five_items": {"file": TEXT_FILES[1], "count": 1, "well_formed": False,
                   "what": "[title, question, answers, keywords, extra string]"},
    "answers_null": {"file": TEXT_FILES[1], "count": 1, "well_formed": False, "what": "answers is null"},
    "answers_string": {"file": TEXT_FILES[1], "count": 1, "well_formed": False,
                       "what": "answers is one string, not a list"},
    "title_number": {"file": TEXT_FILES[1], "count": 1, "well_formed": False,
                     "what": "title is the JSON number 12345; the rest is valid"},
    "duplicate_across_files": {"file": TEXT_FILES[1], "count": 1, "well_formed": True,
                               "what": "exact copy of the first normal row of dadrah_dataset.json"},
    "duplicate_in_file": {"file": TEXT_FILES[2], "count": 1, "well_formed": True,
                          "what": "exact copy of the first normal row of the same file"},
}
TEXT_ADVERSARIAL_COUNTS: dict[str, int] = {k: v["count"] for k, v in TEXT_ADVERSARIAL.items()}

# The two extra files written with hostile=True.
TEXT_HOSTILE: dict[str, dict[str, Any]] = {
    "dadrah_dataset_extra_invalid_utf8.json": {
        "lfs": False,
        "rows": 4,  # rows json.loads finds after bytes.decode("utf-8", "replace")
        "invalid_rows": 2,  # rows whose question holds the bad bytes (they decode to U+FFFD)
        "error": "UnicodeDecodeError",  # from a strict UTF-8 decode / json.loads(bytes)
    },
    "dadrah_dataset_extra_truncated.json": {
        "lfs": True,
        "complete_rows": 3,  # whole rows before the cut (an incremental parser can keep them)
        "error": "json.JSONDecodeError",
    },
}

_TOPICS = (
    "مهریه", "طلاق توافقی", "اجاره‌نامه", "چک برگشتی", "تقسیم ارث", "حضانت فرزند",
    "قرارداد کار", "سند رسمی ملک", "دیه تصادف", "نفقه", "ضمانت وام", "شکایت کیفری",
    "وصیت‌نامه", "بیمه تأمین اجتماعی", "اخراج از کار", "قولنامه خودرو", "ملک مشاع",
    "کلاهبرداری", "خلع ید", "تخلیه ملک", "سفته", "جهیزیه", "اعسار", "ودیعه مسکن",
)
_TITLE_FORMS = ("{t}", "سوال در مورد {t}", "مشکل {t}", "{t} و {u}", "راهنمایی درباره {t}")
_CONTEXTS = (
    "من {n} سال پیش ازدواج کردم و اکنون همسرم {x}.",
    "حدود {n} ماه پیش یک واحد آپارتمان با {m} میلیون تومان ودیعه اجاره کردم و مالک {y}.",
    "چکی به مبلغ {m} میلیون تومان از یکی از آشنایان گرفتم که برگشت خورده است.",
    "پدرم {n} ماه پیش فوت کرده و {k} وارث دارد.",
    "در یک شرکت خصوصی {n} سال سابقه کار دارم و کارفرما {z}.",
    "خودرویی را با قولنامه به مبلغ {m} میلیون تومان خریدم اما فروشنده {w}.",
    "برادرم {m} میلیون تومان از من قرض گرفته و بعد از {n} ماه هنوز پس نداده است.",
)
_FILL = {
    "x": ("خانه را ترک کرده است", "نفقه پرداخت نمی‌کند", "درخواست طلاق دارد"),
    "y": ("ودیعه را پس نمی‌دهد", "می‌خواهد پیش از پایان قرارداد مرا بیرون کند"),
    "z": ("بدون اطلاع قبلی مرا اخراج کرده است", "حق بیمه مرا پرداخت نکرده است"),
    "w": ("سند را منتقل نمی‌کند", "از تحویل خودرو خودداری می‌کند"),
}
_ASKS = (
    "آیا می‌توانم شکایت کنم؟", "تکلیف من چیست؟", "لطفا راهنمایی کنید.", "چه مدارکی لازم است؟",
    "هزینه دادرسی چقدر است؟", "آیا نیاز به وکیل دارم؟", "رسیدگی چه مدت طول می‌کشد؟",
)
_OPENERS = ("با سلام.", "سلام علیکم.", "با سلام و احترام.")
_CODES = (
    "مدنی", "کار", "مجازات اسلامی", "صدور چک", "حمایت خانواده", "آیین دادرسی مدنی",
    "روابط موجر و مستأجر", "ثبت اسناد و املاک",
)
_ADVICE = (
    "شما می‌توانید با مراجعه به دفاتر خدمات الکترونیک قضایی دادخواست خود را ثبت کنید.",
    "بهتر است ابتدا یک اظهارنامه رسمی برای طرف مقابل ارسال کنید.",
    "حتما مدارک و رسیدهای پرداخت را نزد خود نگه دارید.",
    "مهلت اعتراض به رأی {d} روز از تاریخ ابلاغ است.",
    "در این خصوص پیشنهاد می‌شود با یک وکیل پایه یک دادگستری مشورت کنید.",
    "رسیدگی به این دعوا در صلاحیت شورای حل اختلاف است.",
    "امکان درخواست تأمین خواسته نیز وجود دارد.",
    "هزینه دادرسی بر اساس مبلغ خواسته محاسبه می‌شود.",
)


def _text_row(r: random.Random) -> list:
    t, u = r.sample(_TOPICS, 2)
    title = r.choice(_TITLE_FORMS).format(t=t, u=u)
    ctx = r.choice(_CONTEXTS).format(
        n=_fa(r.randint(1, 12)), m=_fa(r.randint(5, 900)), k=_fa(r.randint(2, 7)),
        **{key: r.choice(vals) for key, vals in _FILL.items()},
    )
    question = " ".join(["سلام.", ctx, *r.sample(_ASKS, r.randint(1, 2))])
    answers = []
    for _ in range(r.choice((1, 1, 1, 2, 2, 3))):
        law = f"{r.choice(('طبق', 'بر اساس'))} ماده {_fa(r.randint(1, 1300))} قانون {r.choice(_CODES)}،"
        advice = [a.format(d=_fa(r.choice((10, 20, 30)))) for a in r.sample(_ADVICE, 2)]
        answers.append(" ".join([r.choice(_OPENERS), law, *advice]))
    keywords = [t, *(r.sample(_TOPICS, r.randint(0, 2)))]
    return [title, question, answers, list(dict.fromkeys(keywords))]


def text_adversarial_rows() -> list[tuple[str, str, Any]]:
    """(kind, file, row) for every adversarial row whose content is fixed (not the duplicates)."""
    q = "سلام. همسرم مهریه‌اش را به اجرا گذاشته است. آیا می‌توانم تقسیط بخواهم؟"
    a = "با سلام. طبق ماده ۱۰۸۲ قانون مدنی، می‌توانید دادخواست اعسار و تقسیط بدهید."
    kw = ["مهریه", "اعسار"]
    z = ZWNJ
    rows = [
        ("arabic_letters", [
            "سوال درباره چك و مهريه",
            "سلام. آيا مي\u200cتوانم براي چك برگشتي شكايت كنم؟ نامه از طرف شركة بيمه رسيد. خانۀ ما در رهن است. مبلغ ديه چقدر است؟ مصطفى گفت فتوى دارد.",
            ["با سلام. بله، مي\u200cتوانيد شكايت كيفري مطرح كنيد. ماده ۲ قانون صدور چك را ببينيد؛ نامۀ شركة معتبر است."],
            ["چك", "مهريه", "شكايت"],
        ]),
        ("zwnj", [
            z + "سوال درباره ارث" + z,
            "سلام." + z + " من می" + z + "خواهم " + z + "خانه" + z + z + "ای را بفروشم " + z + " که ارث پدرم است" + z + z
            + " و برادرم نمی" + z + "گذارد. کتاب" + z + "ها و " + z,
            [z + "با سلام. شما می" + z + "توانید دعوای تقسیم ترکه را مطرح کنید." + z, z],
            ["ارث" + z, z + "تقسیم" + z + z + "ترکه"],
        ]),
        ("diacritics", [
            "حَقِّ حَضانَت",
            "سَلامٌ. آیا مادَر پَس اَز طَلاق حَقِّ حَضانَتِ فَرزَندِ هَفت ساله را دارَد؟ مُتَشَکِّرَم، اِنْشاءَاللّٰه جَوابْ بِدَهید.",
            ["با سَلام. طِبقِ ماده ۱۱۶۹ قانونِ مَدَنی، حَضانَت تا هَفت سالِگی با مادَر اَست. ضَمناً اَوَّلاً و ثانیاً مَدارِک لازِم اَست."],
            ["حَضانَت", "طَلاق"],
        ]),
        ("tatweel", [
            "ســــوال درباره اجـاره",
            "سلــام. مالک ودیعـــه را پس نمی\u200cدهـد. چـــه کنم؟",
            ["بـا سلام. دادخواسـت استرداد ودیعـه را ثبت کنیـد."],
            ["اجـاره", "ودیعـــه"],
        ]),
        ("digits", [
            "چک ۱۲ میلیونی",
            "سلام. چکی به مبلغ ١٢٠،٠٠٠،٠٠٠ ریال (120000000) در تاریخ ۱۴۰۲/۰۵/۱۷ برگشت خورد. شماره پرونده ٩٣٤٥٦78۹ است.",
            ["با سلام. طبق ماده ٧ قانون صدور چک و ماده 13، ظرف ۶ ماه شکایت کنید. تلفن: ۰۲۱-٨٨٧٧٦٦٥٥"],
            ["چک", "١٤٠٢"],
        ]),
        ("odd_spaces", [
            "سوال\u00a0درباره\u200fنفقه",
            "\ufeffسلام.\u00a0همسرم\u2009نفقه\u202fنمی\u200cدهد.\u200f\u200e آیا\u3000می\u200cتوانم\tشکایت کنم؟\r\nممنون\u2028از شما  ",
            ["\u00a0با سلام.\u00a0بله، می\u200cتوانید.\u200f "],
            ["نفقه\u00a0", "\u200fشکایت"],
        ]),
        ("control_chars", [
            "سوال\x00درباره\x01سفته",
            "سلام.\x07 سفته\x08ای که امضا کرده\x1bام گم شده\x7f است.\x85 چه کنم؟",
            ["با سلام.\x00 اعلام مفقودی کنید.\x1b"],
            ["سفته\x00", "مفقودی"],
        ]),
        ("multi_answers", [
            "تقسیم ترکه", q, [a, "سلام. بله امکان\u200cپذیر است.", "با سلام و احترام. به وکیل مراجعه کنید.", "سلام. دادگاه تصمیم می\u200cگیرد."], kw,
        ]),
        ("empty_answers", ["اعسار از پرداخت مهریه", q, [], kw]),
        ("empty_question", ["مهریه", "", [a], kw]),
        ("three_items", ["مهریه و اعسار", q, [a]]),
        ("five_items", ["مهریه و اعسار", q, [a], kw, "extra"]),
        ("answers_null", ["مهریه و اعسار", q, None, kw]),
        ("answers_string", ["مهریه و اعسار", q, a, kw]),
        ("title_number", [12345, q, [a], kw]),
    ]
    return [(kind, TEXT_ADVERSARIAL[kind]["file"], row) for kind, row in rows]


def _text_rows(scale: ReplicaScale) -> dict[str, list[tuple[str, Any]]]:
    """file -> [(kind, row)], kind "normal" or an adversarial kind; in file order."""
    seen: set[str] = set()
    normal: dict[str, list] = {}
    for name in TEXT_FILES:
        r = _rng("text", name)
        rows = []
        while len(rows) < scale.text_rows:
            row = _text_row(r)
            key = json.dumps(row)
            if key not in seen:  # normal rows are all distinct, across files too
                seen.add(key)
                rows.append(row)
        normal[name] = rows
    extra: dict[str, list[tuple[str, Any]]] = {name: [] for name in TEXT_FILES}
    for kind, name, row in text_adversarial_rows():
        extra[name].append((kind, row))
    extra[TEXT_FILES[1]].append(("duplicate_across_files", list(normal[TEXT_FILES[0]][0])))
    out: dict[str, list[tuple[str, Any]]] = {}
    for name in TEXT_FILES:
        if name == TEXT_FILES[2]:
            extra[name].append(("duplicate_in_file", list(normal[name][0])))
        # Spread the adversarial rows through the file, never before the first normal row.
        adds, n = extra[name], len(normal[name])
        slots = [1 + (j + 1) * (n - 1) // (len(adds) + 1) for j in range(len(adds))]
        rows: list[tuple[str, Any]] = []
        for i, row in enumerate(normal[name]):
            rows.extend(item for item, slot in zip(adds, slots) if slot == i)
            rows.append(("normal", row))
        rows.extend(item for item, slot in zip(adds, slots) if slot >= n)
        out[name] = rows
    return out


def _well_formed(row: Any) -> bool:
    return (
        isinstance(row, list)
        and len(row) == 4
        and isinstance(row[0], str)
        and isinstance(row[1], str)
        and isinstance(row[2], list)
        and all(isinstance(a, str) for a in row[2])
        and isinstance(row[3], list)
        and all(isinstance(k, str) for k in row[3])
    )


def _dump(rows: list) -> bytes:
    # Like the real files: json.dump defaults, so one line, ensure_ascii=True (\uXXXX escapes).
    return json.dumps(rows).encode("ascii")


def text_manifest(scale: ReplicaScale, *, hostile: bool = False) -> dict[str, dict[str, Any]]:
    """Exact contents per json file: elements, normal rows, adversarial kinds, well-formed rows,
    answers in well-formed rows, and the number of distinct elements."""
    out: dict[str, dict[str, Any]] = {}
    for name, rows in _text_rows(scale).items():
        kinds: dict[str, int] = {}
        for kind, _ in rows:
            if kind != "normal":
                kinds[kind] = kinds.get(kind, 0) + 1
        wf = [row for _, row in rows if _well_formed(row)]
        out[name] = {
            "elements": len(rows),
            "normal": sum(1 for kind, _ in rows if kind == "normal"),
            "adversarial": kinds,
            "well_formed": len(wf),
            "answers": sum(len(row[2]) for row in wf),
            "distinct": len({json.dumps(row) for _, row in rows}),
            "lfs": name in TEXT_LFS_FILES,
        }
    if hostile:
        for name, info in TEXT_HOSTILE.items():
            out[name] = dict(info)
    return out


_LOADING_SCRIPT = '''\
# dadrah_dataset.json
# persian-conversational-dataset
"""Persian conversational dataset: legal questions and answers from dadrah."""

import json

import datasets

_DESCRIPTION = """\\
persian-conversational-dataset
"""

_URL = "https://huggingface.co/datasets/Kamtera/Persian-conversational-dataset/resolve/main/"
_URLS = {
    "train": [
        _URL + "dadrah_dataset1-1000_10000.json",
        _URL + "dadrah_dataset1-10000_100000.json",
        _URL + "dadrah_dataset1-100000_276342.json",
    ],
    "test": [_URL + "dadrah_dataset.json"],
}


class persianConversation(datasets.GeneratorBasedBuilder):
    VERSION = datasets.Version("0.1.0")

    def _info(self):
        return datasets.DatasetInfo(
            description=_DESCRIPTION,
            features=datasets.Features(
                {
                    "title": datasets.Value("string"),
                    "question": datasets.Value("string"),
                    "answers": datasets.Sequence(datasets.Value("string")),
                    "keywords": datasets.Sequence(datasets.Value("string")),
                }
            ),
            supervised_keys=None,
            homepage="https://huggingface.co/datasets/Kamtera/Persian-conversational-dataset",
        )

    def _split_generators(self, dl_manager):
        files = dl_manager.download(_URLS)
        return [
            datasets.SplitGenerator(name=datasets.Split.TRAIN, gen_kwargs={"files": files["train"]}),
            datasets.SplitGenerator(name=datasets.Split.TEST, gen_kwargs={"files": files["test"]}),
        ]

    def _generate_examples(self, files):
        key = 0
        for path in files:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
            for row in data:
                title, question, answers, keywords = row
                yield key, {
                    "title": title,
                    "question": question,
                    "answers": answers,
                    "keywords": keywords,
                }
                key += 1
'''

# The real README.md: front matter plus the one word body, 147 bytes, no final newline.
_TEXT_README = (
    "---\nlicense: apache-2.0\ntask_categories:\n- conversational\n- text-generation\n"
    "language:\n- fa\npretty_name: persianConversation\n---\npersianConversation"
)


def text_repo(scale: ReplicaScale = TINY, *, hostile: bool = False) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for name, rows in _text_rows(scale).items():
        files[name] = _dump([row for _, row in rows])
    lfs = list(TEXT_LFS_FILES)
    if hostile:
        r = _rng("text-hostile")
        good = [_text_row(r) for _ in range(4)]
        raw = json.dumps(good, ensure_ascii=False).encode("utf-8")
        # Row 0: a lone 0xff byte; row 2: a UTF-8 lead byte (0xd9) followed by ASCII.
        for idx, bad in ((0, b"\xff"), (2, b"\xd9 ")):
            marker = json.dumps(good[idx][1], ensure_ascii=False).encode("utf-8")
            at = raw.index(marker) + 1 + len("سلام.".encode())
            raw = raw[:at] + bad + raw[at:]
        files[TEXT_HOSTILE_FILES[0]] = raw
        rows = [_text_row(r) for _ in range(4)]
        # Cut halfway through the 4th row: 3 complete rows, then a broken one, no closing "]".
        cut = len(_dump(rows[:3])) - 1 + len(", ") + len(_dump(rows[3:])) // 2
        files[TEXT_HOSTILE_FILES[1]] = _dump(rows)[:cut]
        lfs.append(TEXT_HOSTILE_FILES[1])
    files[".gitattributes"] = (_GITATTRIBUTES_DATASET + "".join(_lfs_line(p) for p in lfs)).encode()
    files["Persian-conversational-dataset.py"] = _LOADING_SCRIPT.encode()
    files["README.md"] = _TEXT_README.encode()
    return files


# ---------------------------------------------------------------------------------------------
# B. Speech: hezarai/common-voice-13-fa
# ---------------------------------------------------------------------------------------------
CV_FILES = {
    "train": ("data/train-00000-of-00002.parquet", "data/train-00001-of-00002.parquet"),
    "validation": ("data/validation-00000-of-00001.parquet",),
    "test": ("data/test-00000-of-00001.parquet",),
}
# Column order of a Hugging Face Common Voice export (mozilla's common_voice script order).
CV_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("client_id", pa.string()),
    ("path", pa.string()),
    ("audio", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
    ("sentence", pa.string()),
    ("up_votes", pa.int64()),
    ("down_votes", pa.int64()),
    ("age", pa.string()),
    ("gender", pa.string()),
    ("accent", pa.string()),
    ("locale", pa.string()),
    ("segment", pa.string()),
    ("variant", pa.string()),
)
CV_SAMPLE_RATE = 48_000
# The one clip whose audio bytes are not audio (an HTML error page, as from a bad mirror).
CV_CORRUPT = {
    "split": "validation",
    "file": "data/validation-00000-of-00001.parquet",
    "row": 1,
    "path": "common_voice_fa_18402761.mp3",
    "bytes": b"<!DOCTYPE html><html><head><title>503 Service Unavailable</title></head>"
    b"<body><h1>503 Service Unavailable</h1></body></html>\n",
}

_CV_TIMES = ("امروز", "دیروز", "شب گذشته", "صبح زود", "هفته پیش", "عصر دیروز")
_CV_PLACES = ("در کتابخانه", "در بازار", "کنار دریا", "در دانشگاه", "در خیابان اصلی")
_CV_EVENTS = (
    "جلسه مهمی برگزار شد", "باران شدیدی بارید", "دوستانم را دیدم",
    "یک کتاب تازه خریدم", "همه منتظر اتوبوس بودند",
)
_CV_META = {
    "age": ("twenties", "thirties", "fourties", "teens", ""),
    "gender": ("male", "female", ""),
}


def cv_manifest(scale: ReplicaScale) -> dict[str, dict[str, Any]]:
    """Rows per split and per file; the corrupt clip is CV_CORRUPT."""
    n = scale.cv_clips_per_shard
    return {
        split: {"rows": n * len(paths), "files": {p: n for p in paths}, "corrupt": int(split == CV_CORRUPT["split"])}
        for split, paths in CV_FILES.items()
    }


def _cv_features_json() -> str:
    feats: dict[str, Any] = {}
    for name, typ in CV_COLUMNS:
        if name == "audio":
            feats[name] = {"sampling_rate": CV_SAMPLE_RATE, "_type": "Audio"}
        else:
            feats[name] = {"dtype": "string" if typ == pa.string() else "int64", "_type": "Value"}
    return json.dumps({"info": {"features": feats}})


def _cv_schema() -> pa.Schema:
    return pa.schema(list(CV_COLUMNS), metadata={"huggingface": _cv_features_json()})


def _cv_table(scale: ReplicaScale, split: str, shard: int) -> pa.Table:
    r = _rng("cv", split, shard)
    n = scale.cv_clips_per_shard
    base = {"train": 17_000_000, "validation": 17_400_000, "test": 17_700_000}[split] + shard * 100_000
    numbers = sorted(r.sample(range(base, base + 99_000), n))
    cols: dict[str, list] = {name: [] for name, _ in CV_COLUMNS}
    for i, num in enumerate(numbers):
        sentence = f"{r.choice(_CV_TIMES)} {r.choice(_CV_PLACES)} {r.choice(_CV_EVENTS)}."
        corrupt = split == CV_CORRUPT["split"] and i == CV_CORRUPT["row"]
        path = CV_CORRUPT["path"] if corrupt else f"common_voice_fa_{num}.mp3"
        if corrupt:
            audio = CV_CORRUPT["bytes"]
        else:
            audio = _encode(_clip(scale, CV_SAMPLE_RATE, sentence, "cv", path), CV_SAMPLE_RATE, "MP3")
        cols["client_id"].append(hashlib.sha512(f"speaker-{r.randint(0, 40)}".encode()).hexdigest())
        cols["path"].append(path)
        cols["audio"].append({"bytes": audio, "path": path})
        cols["sentence"].append(sentence)
        cols["up_votes"].append(r.randint(2, 6))
        cols["down_votes"].append(r.choice((0, 0, 0, 1)))
        cols["age"].append(r.choice(_CV_META["age"]))
        cols["gender"].append(r.choice(_CV_META["gender"]))
        cols["accent"].append("")
        cols["locale"].append("fa")
        cols["segment"].append("")
        cols["variant"].append("")
    return pa.table(cols, schema=_cv_schema())


def _parquet_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=100)  # datasets writes audio in 100-row groups
    return buf.getvalue()


def commonvoice_repo(scale: ReplicaScale = TINY) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    split_bytes: dict[str, int] = {}
    for split, paths in CV_FILES.items():
        split_bytes[split] = 0
        for shard, path in enumerate(paths):
            table = _cv_table(scale, split, shard)
            split_bytes[split] += table.nbytes
            files[path] = _parquet_bytes(table)
    rows = {split: info["rows"] for split, info in cv_manifest(scale).items()}
    total = sum(rows.values())
    size_cat = "n<1K" if total < 1000 else ("1K<n<10K" if total < 10_000 else "10K<n<100K")
    lines = ["---", "language:", "- fa", "license: cc0-1.0", "task_categories:", "- automatic-speech-recognition",
             "tags:", "- hezar", "pretty_name: CommonVoice 13 (Persian)", "size_categories:", f"- {size_cat}",
             "dataset_info:", "  features:"]
    for name, typ in CV_COLUMNS:
        lines.append(f"  - name: {name}")
        if name == "audio":
            lines += ["    dtype:", "      audio:", f"        sampling_rate: {CV_SAMPLE_RATE}"]
        else:
            lines.append(f"    dtype: {'string' if typ == pa.string() else 'int64'}")
    lines.append("  splits:")
    for split in CV_FILES:
        lines += [f"  - name: {split}", f"    num_bytes: {split_bytes[split]}", f"    num_examples: {rows[split]}"]
    download = sum(len(files[p]) for paths in CV_FILES.values() for p in paths)
    lines += [f"  download_size: {download}", f"  dataset_size: {sum(split_bytes.values())}",
              "configs:", "- config_name: default", "  data_files:"]
    for split in CV_FILES:
        lines += [f"  - split: {split}", f"    path: data/{split}-*"]
    lines += [
        "---",
        "The Persian portion of the original CommonVoice 13 dataset at "
        "https://huggingface.co/datasets/mozilla-foundation/common_voice_13_0",
        "",
        "#### Load",
        "```python",
        "# Using HF Datasets",
        "from datasets import load_dataset",
        "",
        'dataset = load_dataset("hezarai/common-voice-13-fa", split="train")',
        "",
        "# Using Hezar",
        "from hezar.data import Dataset",
        "",
        'dataset = Dataset.load("hezarai/common-voice-13-fa", split="train")',
        "```",
        "",
        "<!-- persian-data replica: generated audio and text for offline tests, not the real data -->",
        "",
    ]
    files["README.md"] = "\n".join(lines).encode()
    files["dataset_config.yaml"] = (
        "name: speech_recognition\n"
        "config_type: dataset\n"
        "task: speech_recognition\n"
        "path: hezarai/common-voice-13-fa\n"
        "feature_extractor_path: hezarai/whisper-small\n"
        "tokenizer_path: hezarai/whisper-small\n"
        "sampling_rate: 16000\n"
        "audio_file_path_column: path\n"
        "audio_column: audio\n"
        "audio_array_column: array\n"
        "transcript_column: sentence\n"
    ).encode()
    files[".gitattributes"] = _GITATTRIBUTES_DATASET.encode()
    return files


# ---------------------------------------------------------------------------------------------
# C. Speech: google/fleurs (fa_ir plus decoy languages)
# ---------------------------------------------------------------------------------------------
FLEURS_SPLITS = ("train", "dev", "test")
FLEURS_SAMPLE_RATE = 16_000
FLEURS_MTIME = 1_654_041_600  # 2022-06-01, fixed in every tar header

# Every deliberate defect in data/fa_ir (decoy languages have none). Names do not depend on scale.
FLEURS_ADVERSARIAL: dict[str, dict[str, Any]] = {
    "missing_wav": {"split": "train", "wav": "17811245311098341999.wav",
                    "what": "TSV row whose wav is not in train.tar.gz"},
    "orphan_wav": {"split": "train", "member": "train/12000355550017723456.wav",
                   "what": "valid wav in the tar with no TSV row"},
    "wrong_num_samples": {"split": "train", "wav": "16661029384756102938.wav", "tsv_extra": 4000,
                          "what": "TSV num_samples = real frames + 4000"},
    "path_traversal": {"split": "dev", "member": "../evil.wav", "what": "member escapes the extraction dir"},
    "absolute_path": {"split": "dev", "member": "/tmp/persian_data_evil.wav", "what": "absolute member name"},
    "symlink": {"split": "dev", "member": "dev/evil_link.wav", "target": "../../../../../../etc/passwd",
                "what": "symlink member pointing out of the tree (no TSV row names it)"},
}
# Tar members that must never be extracted as they are (all in fa_ir dev.tar.gz).
FLEURS_HOSTILE_MEMBERS = ("../evil.wav", "/tmp/persian_data_evil.wav", "dev/evil_link.wav")

_FA_SENTENCES = (
    "دانشمندان در طول سال‌ها تغییرات زیادی را در این منطقه ثبت کرده‌اند.",
    "این شهر هر سال میزبان هزاران گردشگر از سراسر جهان است.",
    "رودخانه از میان دره‌ای سرسبز عبور می‌کند و به دریا می‌ریزد.",
    "بسیاری از ساکنان روستا در زمینه کشاورزی فعالیت می‌کنند.",
    "این کتاب در سال ۱۹۶۳ برای نخستین بار منتشر شد.",
    "پژوهشگران می‌گویند که دمای هوا در دهه اخیر افزایش یافته است.",
    "بازار قدیمی شهر پر از مغازه‌های کوچک و رنگارنگ است.",
    "مسابقه به دلیل باران شدید چند ساعت به تعویق افتاد.",
    "در زمستان جاده‌های کوهستانی اغلب بسته می‌شوند.",
    "موزه ملی مجموعه‌ای از آثار تاریخی ارزشمند را نگهداری می‌کند.",
)
_EN_SENTENCES = (
    "The river runs through a green valley before it reaches the sea.",
    "Many of the villagers work in farming and fishing.",
    "The book was first published in 1963.",
    "Researchers say the average temperature has risen over the last decade.",
    "The old market is full of small and colourful shops.",
    "The race was delayed by several hours because of heavy rain.",
)
_AR_SENTENCES = (
    "يمر النهر عبر واد أخضر قبل أن يصل إلى البحر.",
    "يعمل كثير من سكان القرية في الزراعة وصيد الأسماك.",
    "نشر الكتاب لأول مرة عام 1963.",
    "يقول الباحثون إن متوسط درجة الحرارة ارتفع خلال العقد الأخير.",
    "السوق القديم مليء بالمحلات الصغيرة والملونة.",
)


def _fleurs_sentences(lang: str) -> tuple[str, ...]:
    if lang.startswith("fa"):
        return _FA_SENTENCES
    if lang.startswith("ar"):
        return _AR_SENTENCES
    return _EN_SENTENCES


def _fleurs_normalize(text: str) -> str:
    kept = "".join(c if (c.isalnum() or c in " \u200c") else " " for c in text.lower())
    return " ".join(kept.split())


def _fleurs_chars(normalized: str) -> str:
    return "".join(" ".join(word) + " | " for word in normalized.split()).rstrip()


def _wav_name(r: random.Random) -> str:
    return f"{r.randint(10**19, 2 * 10**19 - 1)}.wav"


def _tar_gz(members: list[tuple[str, bytes | None, str | None]]) -> bytes:
    """Deterministic tar.gz: (name, data, symlink target); data None + no target = directory."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data, target in members:
            info = tarfile.TarInfo(name)
            info.mtime = FLEURS_MTIME
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if target is not None:
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, target, 0o777
                tar.addfile(info)
            elif data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=6) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def _fleurs_lang(scale: ReplicaScale, lang: str, adversarial: bool) -> tuple[dict[str, bytes], dict[str, Any]]:
    files: dict[str, bytes] = {}
    manifest: dict[str, Any] = {}
    sentences = _fleurs_sentences(lang)
    for split in FLEURS_SPLITS:
        r = _rng("fleurs", lang, split)
        ids = sorted(_rng("fleurs-ids", split).sample(range(1, 2010), scale.fleurs_clips_per_split))
        # (id, sentence index); the first two ids are recorded twice, by different speakers.
        takes = [(i, k) for k, i in enumerate(ids)]
        takes += [takes[0], takes[1]]
        rows, members = [], [(split, None, None)]
        genders = ("FEMALE", "MALE")
        for j, (fid, k) in enumerate(takes):
            raw = sentences[(fid + k) % len(sentences)]
            name = _wav_name(r)
            samples = _clip(scale, FLEURS_SAMPLE_RATE, raw, "fleurs", lang, split, name)
            gender = "OTHER" if (adversarial and j == 2) else genders[(fid + j) % 2]
            rows.append((fid, name, raw, samples.size, gender))
            members.append((f"{split}/{name}", _encode(samples, FLEURS_SAMPLE_RATE, "WAV"), None))
        info: dict[str, Any] = {"repeated_ids": 2, "hostile_members": []}
        if adversarial and split == "train":
            raw = sentences[0]
            rows.append((ids[0] + 1, FLEURS_ADVERSARIAL["missing_wav"]["wav"], raw, 16_000, "FEMALE"))
            bad = FLEURS_ADVERSARIAL["wrong_num_samples"]
            samples = _clip(scale, FLEURS_SAMPLE_RATE, raw, "fleurs-bad", lang)
            rows.append((ids[-1] + 1, bad["wav"], raw, samples.size + bad["tsv_extra"], "MALE"))
            members.append((f"{split}/{bad['wav']}", _encode(samples, FLEURS_SAMPLE_RATE, "WAV"), None))
            orphan = _clip(scale, FLEURS_SAMPLE_RATE, raw, "fleurs-orphan", lang)
            members.append((FLEURS_ADVERSARIAL["orphan_wav"]["member"], _encode(orphan, FLEURS_SAMPLE_RATE, "WAV"), None))
        if adversarial and split == "dev":
            evil = _encode(_synth_int16(1600, "evil"), FLEURS_SAMPLE_RATE, "WAV")
            members.append(("../evil.wav", evil, None))
            members.append(("/tmp/persian_data_evil.wav", evil, None))
            members.append(("dev/evil_link.wav", None, FLEURS_ADVERSARIAL["symlink"]["target"]))
            info["hostile_members"] = list(FLEURS_HOSTILE_MEMBERS)
        lines = []
        for fid, name, raw, num, gender in rows:
            norm = _fleurs_normalize(raw)
            lines.append(f"{fid}\t{name}\t{raw}\t{norm}\t{_fleurs_chars(norm)}\t{num}\t{gender}\n")
        files[f"data/{lang}/{split}.tsv"] = "".join(lines).encode()
        files[f"data/{lang}/audio/{split}.tar.gz"] = _tar_gz(members)
        wavs = [m for m, data, target in members if data is not None and target is None and m.startswith(f"{split}/")]
        names_in_tar = {m.rsplit("/", 1)[1] for m in wavs}
        info.update(
            tsv_rows=len(rows),
            wav_members=len(wavs),
            # rows with their wav present and num_samples right: what a careful reader keeps
            good_rows=sum(
                1 for fid, name, raw, num, g in rows
                if name in names_in_tar and not (adversarial and name == FLEURS_ADVERSARIAL["wrong_num_samples"]["wav"])
            ),
            distinct_ids=len({row[0] for row in rows}),
        )
        manifest[split] = info
    return files, manifest


def fleurs_manifest(scale: ReplicaScale, lang: str = "fa_ir") -> dict[str, dict[str, Any]]:
    """Per split: tsv_rows, wav_members (regular `<split>/*.wav`), good_rows, distinct_ids,
    repeated_ids, hostile_members. Only fa_ir has the FLEURS_ADVERSARIAL defects."""
    return _fleurs_lang(scale, lang, lang == "fa_ir")[1]


_FLEURS_SCRIPT = '''\
"""FLEURS: Few-shot Learning Evaluation of Universal Representations of Speech."""

import os

import datasets

_CITATION = """\\
@article{fleurs2022arxiv,
  title = {FLEURS: Few-shot Learning Evaluation of Universal Representations of Speech},
  author = {Conneau, Alexis and Ma, Min and Khanuja, Simran and Zhang, Yu and Axelrod, Vera and Dalmia, Siddharth and Riesa, Jason and Rivera, Clara and Bapna, Ankur},
  journal={arXiv preprint arXiv:2205.12446},
  url = {https://arxiv.org/abs/2205.12446},
  year = {2022},
}
"""

_FLEURS_LANG = sorted(LANGS)
_BASE_URL = "https://huggingface.co/datasets/google/fleurs/resolve/main/data/{}/"
_DATA_URL = _BASE_URL + "audio/{}.tar.gz"
_META_URL = _BASE_URL + "{}.tsv"


class FleursConfig(datasets.BuilderConfig):
    def __init__(self, name, **kwargs):
        super().__init__(name=name, version=datasets.Version("2.0.0", ""), **kwargs)


class Fleurs(datasets.GeneratorBasedBuilder):
    BUILDER_CONFIGS = [FleursConfig(name=lang) for lang in _FLEURS_LANG]

    def _info(self):
        return datasets.DatasetInfo(
            features=datasets.Features(
                {
                    "id": datasets.Value("int32"),
                    "num_samples": datasets.Value("int32"),
                    "path": datasets.Value("string"),
                    "audio": datasets.Audio(sampling_rate=16_000),
                    "transcription": datasets.Value("string"),
                    "raw_transcription": datasets.Value("string"),
                    "gender": datasets.ClassLabel(names=["male", "female", "other"]),
                    "lang_id": datasets.ClassLabel(names=_FLEURS_LANG),
                    "language": datasets.Value("string"),
                }
            ),
            citation=_CITATION,
        )

    def _split_generators(self, dl_manager):
        splits = ["train", "dev", "test"]
        archives = dl_manager.download({s: _DATA_URL.format(self.config.name, s) for s in splits})
        metas = dl_manager.download({s: _META_URL.format(self.config.name, s) for s in splits})
        names = {"train": datasets.Split.TRAIN, "dev": datasets.Split.VALIDATION, "test": datasets.Split.TEST}
        return [
            datasets.SplitGenerator(
                name=names[s],
                gen_kwargs={"archive": dl_manager.iter_archive(archives[s]), "metadata_path": metas[s]},
            )
            for s in splits
        ]

    def _generate_examples(self, archive, metadata_path):
        gender_to_id = {"MALE": 0, "FEMALE": 1, "OTHER": 2}
        data = {}
        with open(metadata_path, encoding="utf-8") as f:
            for line in f:
                _id, file_name, raw, transcription, _, num_samples, gender = line.strip().split("\\t")
                data[file_name] = {
                    "id": int(_id),
                    "raw_transcription": raw,
                    "transcription": transcription,
                    "num_samples": int(num_samples),
                    "gender": gender_to_id[gender],
                    "lang_id": _FLEURS_LANG.index(self.config.name),
                    "language": self.config.name,
                }
        for key, (path, f) in enumerate(archive):
            name = os.path.basename(path)
            if name in data:
                yield key, dict(data[name], path=path, audio={"path": path, "bytes": f.read()})
'''


def fleurs_repo(scale: ReplicaScale = TINY, *, decoys: tuple[str, ...] = ("en_us", "ar_eg")) -> dict[str, bytes]:
    langs = ["fa_ir", *[d for d in decoys if d != "fa_ir"]]
    files: dict[str, bytes] = {}
    for lang in langs:
        files.update(_fleurs_lang(scale, lang, lang == "fa_ir")[0])
    listed = "\n".join(f"- {lang}" for lang in sorted(langs))
    files["README.md"] = (
        "---\n"
        "annotations_creators:\n- expert-generated\n- crowdsourced\n- machine-generated\n"
        "language_creators:\n- crowdsourced\n- expert-generated\n"
        f"language:\n{listed}\n"
        "license:\n- cc-by-4.0\n"
        "multilinguality:\n- multilingual\n"
        "size_categories:\n- 10K<n<100K\n"
        "task_categories:\n- automatic-speech-recognition\n"
        "pretty_name: 'The Cross-lingual TRansfer Evaluation of Multilingual Encoders for Speech (XTREME-S) benchmark'\n"
        "tags:\n- speech-recognition\n"
        "---\n\n"
        "# FLEURS\n\n"
        "Fleurs is the speech version of the FLoRes machine translation benchmark: n-way parallel\n"
        "speech in 102 languages, about 12 hours of supervision per language.\n\n"
        "Each language lives in `data/<lang>/`: `train.tsv`, `dev.tsv`, `test.tsv` (no header; id,\n"
        "file name, raw transcription, transcription, characters, num_samples, gender) and\n"
        "`audio/<split>.tar.gz` with `<split>/<file>.wav`, mono 16 kHz.\n\n"
        "<!-- persian-data replica: generated audio and text for offline tests, not the real data -->\n"
    ).encode()
    files["fleurs.py"] = _FLEURS_SCRIPT.replace("sorted(LANGS)", f"sorted({sorted(langs)!r})").encode()
    files[".gitattributes"] = _GITATTRIBUTES_DATASET.encode()
    return files


# ---------------------------------------------------------------------------------------------
# D. TTS: Kamtera/persian-tts-{female,male}-vits
# ---------------------------------------------------------------------------------------------
TTS_FILES: dict[str, tuple[str, ...]] = {
    "female": (
        ".gitattributes", "README.md", "config.json", "config-0.json", "config-1.json", "config-2.json",
        "best_model_1725.pth", "best_model_3796.pth", "best_model_23604.pth", "best_model_30824.pth",
        "checkpoint_5000.pth", "checkpoint_26000.pth", "checkpoint_48000.pth",
        "phoneme_cache.zip", "events.out.tfevents.1673758534.8f6deb5c5186", "train_vits.py",
    ),
    "male": (
        ".gitattributes", "README.md", "config.json", "config-0.json",
        "best_model_65633.pth", "best_model_91323.pth",
        "checkpoint_49000.pth", "checkpoint_77000.pth", "checkpoint_105000.pth",
        "phoneme_cache.zip", "events.out.tfevents.1674024033.2ba09f99fefc", "train_vits.py",
    ),
}
# voice -> (config, checkpoint) that synthesis needs (what the catalog fetches by default).
TTS_INFERENCE = {"female": ("config.json", "best_model_30824.pth"), "male": ("config.json", "best_model_91323.pth")}

_TTS_CHARACTERS = "ءابتثجحخدذرزسشصضطظعغفقلمنهويِپچژکگیآأؤإئًَُّ"
_TTS_PUNCTUATIONS = "!(),-.:;? ̠،؛؟‌<>"
_TTS_PHONEMES = (
    "ˈˌːˑpbtdʈɖcɟkɡqɢʔɴŋɲɳnɱmʙrʀⱱɾɽɸβfvθðszʃʒʂʐçʝxɣχʁħʕhɦɬɮʋɹɻjɰlɭʎʟaegiouwyɪʊ̩æɑɔəɚɛɝɨ̃ʉʌʍ"
    "0123456789\"#$%*+/=ABCDEFGHIJKLMNOPRSTUVWXYZ[]^_{}"
)
_TTS_TEST_SENTENCES = (
    "زندگی فقط یک بار است؛ از آن به خوبی استفاده کن",
    "این یک نمونه از صدای تولید شده است",
    "سلام، حال شما چطور است؟",
)


def _vits_config(voice: str, variant: int = -1) -> dict[str, Any]:
    """A Coqui TTS VitsConfig as written by the trainer (`config.json` / `config-N.json`)."""
    run = f"vits-{voice}-persian"
    batch = (14, 16, 12, 8)[variant + 1]
    dataset_path = "/kaggle/input/persian-tts-dataset-famale" if voice == "female" else "/kaggle/input/persian-tts-dataset-male"
    vocab = 4 + len(_TTS_PHONEMES) + len(_TTS_PUNCTUATIONS)  # pad, eos, bos, blank + phonemes + punctuation
    return {
        "output_path": "/kaggle/working/",
        "logger_uri": None,
        "run_name": run,
        "project_name": None,
        "run_description": "\U0001f438Coqui trainer run.",
        "print_step": 25,
        "plot_step": 100,
        "model_param_stats": False,
        "wandb_entity": None,
        "dashboard_logger": "tensorboard",
        "log_model_step": None,
        "save_step": 1000,
        "save_n_checkpoints": 5,
        "save_checkpoints": True,
        "save_all_best": False,
        "save_best_after": 10000,
        "target_loss": None,
        "print_eval": True,
        "test_delay_epochs": -1,
        "run_eval": True,
        "run_eval_steps": None,
        "distributed_backend": "nccl",
        "distributed_url": "tcp://localhost:54321",
        "mixed_precision": False,
        "epochs": 1000,
        "batch_size": batch,
        "eval_batch_size": batch // 2,
        "grad_clip": [1000, 1000],
        "scheduler_after_epoch": True,
        "lr": 0.001,
        "optimizer": "AdamW",
        "optimizer_params": {"betas": [0.8, 0.99], "eps": 1e-09, "weight_decay": 0.01},
        "lr_scheduler": None,
        "lr_scheduler_params": {},
        "use_grad_scaler": False,
        "cudnn_enable": True,
        "cudnn_deterministic": False,
        "cudnn_benchmark": False,
        "training_seed": 54321,
        "model": "vits",
        "num_loader_workers": 0,
        "num_eval_loader_workers": 2,
        "use_noise_augment": False,
        "audio": {
            "fft_size": 1024,
            "sample_rate": 24000,
            "win_length": 1024,
            "hop_length": 256,
            "num_mels": 80,
            "mel_fmin": 0,
            "mel_fmax": None,
        },
        "use_phonemes": True,
        "phonemizer": "espeak",
        "phoneme_language": "fa",
        "compute_input_seq_cache": True,
        "text_cleaner": "basic_cleaners",
        "enable_eos_bos_chars": False,
        "test_sentences_file": "",
        "phoneme_cache_path": "/kaggle/working/phoneme_cache",
        "characters": {
            "characters_class": "TTS.tts.utils.text.characters.IPAPhonemes",
            "vocab_dict": None,
            "pad": "<PAD>",
            "eos": "<EOS>",
            "bos": "<BOS>",
            "blank": "<BLNK>",
            "characters": _TTS_CHARACTERS,
            "punctuations": _TTS_PUNCTUATIONS,
            "phonemes": _TTS_PHONEMES,
            "is_unique": True,
            "is_sorted": True,
        },
        "add_blank": True,
        "batch_group_size": 5,
        "loss_masking": None,
        "min_audio_len": 1,
        "max_audio_len": float("inf"),  # written as Infinity, as coqpit does (not strict JSON)
        "min_text_len": 1,
        "max_text_len": float("inf"),
        "compute_f0": False,
        "compute_linear_spec": True,
        "precompute_num_workers": 0,
        "start_by_longest": False,
        "shuffle": False,
        "drop_last": False,
        "datasets": [
            {
                "formatter": "mozilla",
                "dataset_name": "",
                "path": dataset_path,
                "meta_file_train": "metadata.csv",
                "ignored_speakers": None,
                "language": "",
                "phonemizer": "",
                "meta_file_val": "",
                "meta_file_attn_mask": "",
            }
        ],
        "test_sentences": [[s] for s in _TTS_TEST_SENTENCES],
        "eval_split_max_size": None,
        "eval_split_size": 0.01,
        "use_speaker_weighted_sampler": False,
        "speaker_weighted_sampler_alpha": 1.0,
        "use_language_weighted_sampler": False,
        "language_weighted_sampler_alpha": 1.0,
        "use_length_weighted_sampler": False,
        "length_weighted_sampler_alpha": 1.0,
        "model_args": {
            "num_chars": vocab,
            "out_channels": 513,
            "spec_segment_size": 32,
            "hidden_channels": 192,
            "hidden_channels_ffn_text_encoder": 768,
            "num_heads_text_encoder": 2,
            "num_layers_text_encoder": 6,
            "kernel_size_text_encoder": 3,
            "dropout_p_text_encoder": 0.1,
            "dropout_p_duration_predictor": 0.5,
            "kernel_size_posterior_encoder": 5,
            "dilation_rate_posterior_encoder": 1,
            "num_layers_posterior_encoder": 16,
            "kernel_size_flow": 5,
            "dilation_rate_flow": 1,
            "num_layers_flow": 4,
            "resblock_type_decoder": "1",
            "resblock_kernel_sizes_decoder": [3, 7, 11],
            "resblock_dilation_sizes_decoder": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
            "upsample_rates_decoder": [8, 8, 2, 2],
            "upsample_initial_channel_decoder": 512,
            "upsample_kernel_sizes_decoder": [16, 16, 4, 4],
            "periods_multi_period_discriminator": [2, 3, 5, 7, 11],
            "use_sdp": True,
            "noise_scale": 1.0,
            "inference_noise_scale": 0.667,
            "length_scale": 1,
            "noise_scale_dp": 1.0,
            "inference_noise_scale_dp": 1.0,
            "max_inference_len": None,
            "init_discriminator": True,
            "use_spectral_norm_disriminator": False,
            "use_speaker_embedding": False,
            "num_speakers": 0,
            "speakers_file": None,
            "d_vector_file": None,
            "speaker_embedding_channels": 256,
            "use_d_vector_file": False,
            "d_vector_dim": 0,
            "detach_dp_input": True,
            "use_language_embedding": False,
            "embedded_language_dim": 4,
            "num_languages": 0,
            "language_ids_file": None,
            "use_speaker_encoder_as_loss": False,
            "speaker_encoder_config_path": "",
            "speaker_encoder_model_path": "",
            "condition_dp_on_speaker": True,
            "freeze_encoder": False,
            "freeze_DP": False,
            "freeze_PE": False,
            "freeze_flow_decoder": False,
            "freeze_waveform_decoder": False,
            "encoder_sample_rate": None,
            "interpolate_z": True,
            "reinit_DP": False,
            "reinit_text_encoder": False,
        },
        "lr_gen": 0.0002,
        "lr_disc": 0.0002,
        "lr_scheduler_gen": "ExponentialLR",
        "lr_scheduler_gen_params": {"gamma": 0.999875, "last_epoch": -1},
        "lr_scheduler_disc": "ExponentialLR",
        "lr_scheduler_disc_params": {"gamma": 0.999875, "last_epoch": -1},
        "kl_loss_alpha": 1.0,
        "disc_loss_alpha": 1.0,
        "gen_loss_alpha": 1.0,
        "feat_loss_alpha": 1.0,
        "mel_loss_alpha": 45.0,
        "dur_loss_alpha": 1.0,
        "speaker_encoder_loss_alpha": 1.0,
        "return_wav": True,
        "use_weighted_sampler": False,
        "weighted_sampler_attrs": {},
        "weighted_sampler_multipliers": {},
        "r": 1,
        "num_speakers": 0,
        "use_speaker_embedding": False,
        "speakers_file": None,
        "speaker_embedding_channels": 256,
        "language_ids_file": None,
        "use_language_embedding": False,
        "use_d_vector_file": False,
        "d_vector_file": None,
        "d_vector_dim": 0,
    }


def _config_bytes(voice: str, variant: int = -1) -> bytes:
    return json.dumps(_vits_config(voice, variant), indent=4, ensure_ascii=False).encode("utf-8")


def _placeholder(size: int, repo_id: str, path: str) -> bytes:
    head = f"persian-data replica placeholder, not a model: {repo_id}/{path}\n".encode()
    return (head + _pseudo_bytes(max(0, size - len(head)), "ckpt", repo_id, path))[:size]


def _crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


def _masked_crc(data: bytes) -> int:
    crc = _crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _tfevents(voice: str, start: int) -> bytes:
    """A small, valid TensorBoard event file: file_version, then scalar summaries."""

    def event(wall: float, step: int, payload: bytes) -> bytes:
        body = b"\x09" + struct.pack("<d", wall) + b"\x10" + _varint(step) + payload
        head = struct.pack("<Q", len(body))
        return head + struct.pack("<I", _masked_crc(head)) + body + struct.pack("<I", _masked_crc(body))

    def scalar(tag: str, value: float) -> bytes:
        t = tag.encode()
        val = b"\x0a" + _varint(len(t)) + t + b"\x15" + struct.pack("<f", value)
        summary = b"\x0a" + _varint(len(val)) + val
        return b"\x2a" + _varint(len(summary)) + summary

    version = b"brain.Event:2"
    out = [event(float(start), 0, b"\x1a" + _varint(len(version)) + version)]
    for i in range(1, 21):
        step = i * 250
        out.append(event(start + 60.0 * i, step, scalar("TrainIterStats/loss_gen", 40.0 / (1 + i / 4))))
        out.append(event(start + 60.0 * i + 1, step, scalar("TrainIterStats/loss_mel", 30.0 / (1 + i / 8))))
    return b"".join(out)


def _phoneme_cache_zip(voice: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        r = _rng("phoneme-cache", voice)
        for _ in range(6):
            ids = np.array([r.randint(0, 120) for _ in range(r.randint(10, 40))], dtype="<i4")
            npy = io.BytesIO()
            np.save(npy, ids, allow_pickle=False)
            info = zipfile.ZipInfo(f"phoneme_cache/{r.randint(10**8, 10**9 - 1)}_phoneme.npy", (2023, 1, 15, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, npy.getvalue())
    return buf.getvalue()


_TRAIN_SCRIPT = '''\
import os

from trainer import Trainer, TrainerArgs

from TTS.config.shared_configs import BaseAudioConfig
from TTS.tts.configs.shared_configs import BaseDatasetConfig, CharactersConfig
from TTS.tts.configs.vits_config import VitsConfig
from TTS.tts.datasets import load_tts_samples
from TTS.tts.models.vits import Vits
from TTS.tts.utils.text.tokenizer import TTSTokenizer
from TTS.utils.audio import AudioProcessor

output_path = "/kaggle/working/"

dataset_config = BaseDatasetConfig(
    formatter="mozilla", meta_file_train="metadata.csv", path="DATASET_PATH"
)

audio_config = BaseAudioConfig(
    sample_rate=24000,
    do_trim_silence=True,
    resample=False,
    mel_fmin=0,
    mel_fmax=None,
)

character_config = CharactersConfig(
    characters=CHARACTERS,
    punctuations=PUNCTUATIONS,
    phonemes=PHONEMES,
    pad="<PAD>",
    eos="<EOS>",
    bos="<BOS>",
    blank="<BLNK>",
    characters_class="TTS.tts.utils.text.characters.IPAPhonemes",
)

config = VitsConfig(
    audio=audio_config,
    run_name="RUN_NAME",
    batch_size=14,
    eval_batch_size=7,
    batch_group_size=5,
    num_loader_workers=0,
    num_eval_loader_workers=2,
    run_eval=True,
    test_delay_epochs=-1,
    epochs=1000,
    save_step=1000,
    text_cleaner="basic_cleaners",
    use_phonemes=True,
    phoneme_language="fa",
    characters=character_config,
    phoneme_cache_path=os.path.join(output_path, "phoneme_cache"),
    compute_input_seq_cache=True,
    print_step=25,
    print_eval=True,
    mixed_precision=False,
    test_sentences=TEST_SENTENCES,
    output_path=output_path,
    datasets=[dataset_config],
)

# Audio processor: feature extraction and audio I/O.
ap = AudioProcessor.init_from_config(config)

# Tokenizer: text to character/phoneme ids.
tokenizer, config = TTSTokenizer.init_from_config(config)

train_samples, eval_samples = load_tts_samples(
    dataset_config,
    eval_split=True,
    eval_split_max_size=config.eval_split_max_size,
    eval_split_size=config.eval_split_size,
)

model = Vits(config, ap, tokenizer, speaker_manager=None)

trainer = Trainer(
    TrainerArgs(restore_path=RESTORE_PATH),
    config,
    output_path,
    model=model,
    train_samples=train_samples,
    eval_samples=eval_samples,
)
trainer.fit()
'''


def _train_script(voice: str) -> bytes:
    cfg = _vits_config(voice)
    restore = "None" if voice == "female" else '"/kaggle/input/persian-tts-female-vits/best_model_30824.pth"'
    text = (
        _TRAIN_SCRIPT.replace("DATASET_PATH", cfg["datasets"][0]["path"])
        .replace("RUN_NAME", cfg["run_name"])
        .replace("CHARACTERS", json.dumps(_TTS_CHARACTERS, ensure_ascii=False))
        .replace("PUNCTUATIONS", json.dumps(_TTS_PUNCTUATIONS, ensure_ascii=False))
        .replace("PHONEMES", json.dumps(_TTS_PHONEMES, ensure_ascii=False))
        .replace("TEST_SENTENCES", json.dumps([[s] for s in _TTS_TEST_SENTENCES], ensure_ascii=False))
        .replace("RESTORE_PATH", restore)
    )
    return text.encode("utf-8")


def _tts_readme(voice: str, repo_id: str) -> bytes:
    ckpt = TTS_INFERENCE[voice][1]
    dataset = "Kamtera/persian-tts-dataset" if voice == "female" else "Kamtera/persian-tts-dataset-male"
    origin = "" if voice == "female" else "- finetuned persian-tts-female-vits model on persian-tts-dataset-male dataset\n"
    return (
        "---\n"
        "license: openrail\n"
        "datasets:\n"
        f"- {dataset}\n"
        "language:\n- fa\n"
        "tags:\n- text-to-speech\n- TTS\n- Persian\n- Farsi\n- Coqui\n- CoquiTTS\n- audio\n"
        "pipeline_tag: text-to-speech\n"
        "library_name: TTS\n"
        "---\n\n"
        f"# {repo_id.split('/')[1]}\n\n"
        f"- persian-tts-{voice} vits model for text to speech purposes.\n"
        "- Persian فارسی\n"
        f"- Single-speaker {voice} voice\n"
        f"{origin}\n"
        "## Uses\n\n"
        "Install dependencies:\n\n"
        "```\npip install TTS\nsudo apt-get -y install espeak-ng\n```\n\n"
        "Generate audio from text using the cli:\n\n"
        "```\n"
        'tts --text "زندگی فقط یک بار است؛ از آن به خوبی استفاده کن" \\\n'
        f'    --model_path "{ckpt}" \\\n'
        '    --config_path "config.json" \\\n'
        '    --out_path "speech1.wav"\n'
        "```\n\n"
        "- Cloud Provider: kaggle\n\n"
        "<!-- persian-data replica: placeholder checkpoints for offline tests, not the real model -->\n"
    ).encode("utf-8")


def tts_repo(
    voice: str,
    scale: ReplicaScale = TINY,
    *,
    voice_assets: tuple[bytes, bytes] | None = None,
) -> dict[str, bytes]:
    """`voice` is "female" or "male". `voice_assets` = (config.json bytes, checkpoint bytes) for
    the inference pair (female best_model_30824.pth, male best_model_91323.pth)."""
    if voice not in TTS_FILES:
        raise ValueError(f"voice must be 'female' or 'male', not {voice!r}")
    repo_id = REPLICA_REPOS[f"tts-{voice}"][1]
    cfg_name, ckpt_name = TTS_INFERENCE[voice]
    files: dict[str, bytes] = {}
    for path in TTS_FILES[voice]:
        if path.endswith(".pth"):
            files[path] = _placeholder(scale.checkpoint_bytes, repo_id, path)
        elif path.startswith("config-"):
            files[path] = _config_bytes(voice, int(path[len("config-") : -len(".json")]))
    files[cfg_name] = _config_bytes(voice)
    if voice_assets is not None:
        files[cfg_name], files[ckpt_name] = bytes(voice_assets[0]), bytes(voice_assets[1])
    tfevents = next(p for p in TTS_FILES[voice] if p.startswith("events.out.tfevents."))
    files[tfevents] = _tfevents(voice, int(tfevents.split(".")[3]))
    files["phoneme_cache.zip"] = _phoneme_cache_zip(voice)
    files["train_vits.py"] = _train_script(voice)
    files["README.md"] = _tts_readme(voice, repo_id)
    files[".gitattributes"] = _GITATTRIBUTES_MODEL.encode()
    return dict(sorted(files.items()))


# ---------------------------------------------------------------------------------------------
# All five
# ---------------------------------------------------------------------------------------------
def replica_files(
    key: str,
    scale: ReplicaScale = TINY,
    *,
    hostile: bool = False,
    voice_assets: dict[str, tuple[bytes, bytes]] | None = None,
) -> dict[str, bytes]:
    """The files of one replica, by source key."""
    if key == "text":
        return text_repo(scale, hostile=hostile)
    if key == "commonvoice":
        return commonvoice_repo(scale)
    if key == "fleurs":
        return fleurs_repo(scale)
    if key in ("tts-female", "tts-male"):
        voice = key.split("-", 1)[1]
        assets = (voice_assets or {}).get(voice) or (voice_assets or {}).get(key)
        return tts_repo(voice, scale, voice_assets=assets)
    raise KeyError(f"no replica for source {key!r}")


def _same_as_head(store: HubStore, repo_type: str, repo_id: str, files: dict[str, bytes]) -> str | None:
    """The head commit if it already holds exactly `files` (same bytes, same LFS split)."""
    try:
        head = store.resolve(repo_type, repo_id, "main")
        stored = store.files(repo_type, repo_id, head)
    except KeyError:
        return None
    patterns = lfs_patterns(files.get(".gitattributes", b""))
    want = {p: (hashlib.sha256(d).hexdigest(), matches_lfs(p, patterns)) for p, d in files.items()}
    have = {f.path: (f.object, f.lfs is not None) for f in stored}
    return head if want == have else None


def build_replicas(
    store: HubStore,
    scale: ReplicaScale = TINY,
    *,
    hostile: bool = False,
    voice_assets: dict[str, tuple[bytes, bytes]] | None = None,
    only: tuple[str, ...] | list[str] | None = None,
) -> dict[str, str]:
    """Publish the replicas into `store`; return source key -> commit sha.

    `voice_assets` maps "female"/"male" (or "tts-female"/"tts-male") to (config.json bytes,
    checkpoint bytes). Publishing content identical to a repo's head makes no new commit, so
    calling this twice on one store gives the same shas.
    """
    shas: dict[str, str] = {}
    for key, (repo_type, repo_id) in REPLICA_REPOS.items():
        if only is not None and key not in only:
            continue
        files = replica_files(key, scale, hostile=hostile, voice_assets=voice_assets)
        sha = _same_as_head(store, repo_type, repo_id, files)
        if sha is None:
            sha = store.publish(repo_type, repo_id, files, message=f"persian-data replica ({scale.name})")
        shas[key] = sha
    return shas
