"""The two VITS voices: Kamtera/persian-tts-female-vits and Kamtera/persian-tts-male-vits
(keys `tts-female`, `tts-male`; voices `female`, `male`).

Coqui TTS VITS models, single speaker, phonemes from espeak-ng (SOURCES.md D). Each repo holds
several ~1 GB training checkpoints; the default selection is the inference set (README, config,
the checkpoint coqui's catalog uses), `--full` mirrors everything. Model repos are not read by a
prepare stage: the voice check (`tts.check`) and the TTS commands use them. The catalog entries are
`FEMALE` and `MALE`; `replica_files` builds the local hub's replicas (placeholder checkpoints, or
the tiny real ones the demo or a test hands in as `voice_assets`; the training run's other files
come from `coqui_vits_run`).
"""

from __future__ import annotations

from typing import Any

from ..localhub import replica_kit as kit
from ..source import VOICE_BUCKET, Source
from . import coqui_vits_run as run

FEMALE = Source(
    key="tts-female",
    repo_id="Kamtera/persian-tts-female-vits",
    repo_type="model",
    bucket=VOICE_BUCKET,
    folder="kamtera_vits_female",
    content_dir="model",
    count_key="tts_female_files",
    license="openrail",
    title="Kamtera/persian-tts-female-vits (Hugging Face)",
    # The inference set; the repo also holds ~1 GB training checkpoints (--full takes them).
    allow_patterns=("README.md", "config.json", "best_model_30824.pth"),
    voice="female",
    card_title=("Text to speech: female voice", "صدای زن"),
)
MALE = Source(
    key="tts-male",
    repo_id="Kamtera/persian-tts-male-vits",
    repo_type="model",
    bucket=VOICE_BUCKET,
    folder="kamtera_vits_male",
    content_dir="model",
    count_key="tts_male_files",
    license="openrail",
    title="Kamtera/persian-tts-male-vits (Hugging Face)",
    allow_patterns=("README.md", "config.json", "best_model_91323.pth"),
    voice="male",
    card_title=("Text to speech: male voice", "صدای مرد"),
)
SOURCES = (FEMALE, MALE)
VOICES = {s.voice: s for s in SOURCES}


# ---------------------------------------------------------------------------------------------
# The local hub's replicas (the training run's files: coqui_vits_run.py)
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

def _placeholder(size: int, repo_id: str, path: str) -> bytes:
    head = f"persian-data replica placeholder, not a model: {repo_id}/{path}\n".encode()
    return (head + kit.pseudo_bytes(max(0, size - len(head)), "ckpt", repo_id, path))[:size]


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
    scale: kit.ReplicaScale = kit.TINY,
    *,
    voice_assets: tuple[bytes, bytes] | None = None,
) -> dict[str, bytes]:
    """`voice` is "female" or "male". `voice_assets` = (config.json bytes, checkpoint bytes) for
    the inference pair (female best_model_30824.pth, male best_model_91323.pth)."""
    if voice not in TTS_FILES:
        raise ValueError(f"voice must be 'female' or 'male', not {voice!r}")
    repo_id = VOICES[voice].repo_id
    cfg_name, ckpt_name = TTS_INFERENCE[voice]
    files: dict[str, bytes] = {}
    for path in TTS_FILES[voice]:
        if path.endswith(".pth"):
            files[path] = _placeholder(scale.checkpoint_bytes, repo_id, path)
        elif path.startswith("config-"):
            files[path] = run.config_bytes(voice, int(path[len("config-") : -len(".json")]))
    files[cfg_name] = run.config_bytes(voice)
    if voice_assets is not None:
        files[cfg_name], files[ckpt_name] = bytes(voice_assets[0]), bytes(voice_assets[1])
    tfevents = next(p for p in TTS_FILES[voice] if p.startswith("events.out.tfevents."))
    files[tfevents] = run.tfevents(voice, int(tfevents.split(".")[3]))
    files["phoneme_cache.zip"] = run.phoneme_cache_zip(voice)
    files["train_vits.py"] = run.train_script(voice)
    files["README.md"] = _tts_readme(voice, repo_id)
    files[".gitattributes"] = kit.GITATTRIBUTES_MODEL.encode()
    return dict(sorted(files.items()))


def replica_files(scale: kit.ReplicaScale = kit.TINY, *, key: str, voice_assets: dict | None = None,
                  **_: Any) -> dict[str, bytes]:
    """`voice_assets` maps "female"/"male" (or the source key) to (config.json bytes, checkpoint bytes)."""
    voice = next(s.voice for s in SOURCES if s.key == key)
    assets = (voice_assets or {}).get(voice) or (voice_assets or {}).get(key)
    return tts_repo(voice, scale, voice_assets=assets)
