"""Model check for the two Coqui VITS voices (run by the `tts` gate, gate.py).

What it catches, before a user hears it:

* `config.json` that is not a Coqui VITS config (or that coqui-tts refuses, e.g. the
  "duplicate characters in the character set" assertion some configs trigger);
* a checkpoint that does not load on the CPU with `torch.load(weights_only=True)` (coqui-tts
  itself loads every checkpoint that way, so a file that needs full unpickling would fail there
  too) or that is truncated;
* a config/checkpoint pair that does not belong together: the text embedding's row count must
  equal the config's symbol count, the checkpoint's embedded training config (Coqui's trainer
  stores one in every `best_model_*.pth` / `checkpoint_*.pth`) must agree with `config.json` on
  the sample rate and on the exact symbol list, and every weight must have the shape the config
  builds. A wrong pair is what gives users gibberish audio;
* espeak-ng missing while the config phonemizes with espeak.

torch and coqui-tts live in the `tts` extra. They are imported inside the functions; when they
are missing the check returns a `GateNote` saying so, never a crash.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import shutil
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from ..catalog import VOICE_SOURCES, Source  # voice name (`synth --voice`) -> its source; re-exported
from ..errors import ExtraMissingError, PersianDataError
from ..gates import GateFailure, GateNote

GATE = "tts"  # the gate's name (the gate itself is in gate.py)
CONFIG_NAME = "config.json"
INSTALL_EXTRA = "pip install 'persian-data[tts]'"
INSTALL_ESPEAK = (
    "install it: apt-get install espeak-ng (Debian/Ubuntu), dnf install espeak-ng (Fedora), "
    "brew install espeak-ng (macOS)"
)

# Config fields that change what the text front end feeds the model. If config.json and the
# checkpoint's own training config disagree on one of these, the model reads the wrong ids.
_FRONT_END_FIELDS = ("use_phonemes", "phoneme_language", "phonemizer", "text_cleaner", "add_blank")

Display = Callable[[Path], str]


class VoiceCheckError(PersianDataError):
    """A voice's config/checkpoint failed the model check (the message lists every failure)."""


# -- the optional extra --------------------------------------------------------------------------


def require_tts_extra() -> None:
    """Import torch and coqui-tts, or raise ExtraMissingError saying how to install them."""
    try:
        import torch  # noqa: F401
        import TTS  # noqa: F401  (coqui-tts; its __init__ also insists on torchaudio/torchcodec)
        from TTS.config import load_config  # noqa: F401
    except ImportError as exc:  # ModuleNotFoundError included
        raise ExtraMissingError(
            f"the tts extra is not installed ({exc}); install it with {INSTALL_EXTRA}"
        ) from exc


@contextmanager
def quiet_coqui(level: int = logging.ERROR) -> Iterator[None]:
    """Hide coqui-tts's INFO/WARNING chatter while loading (e.g. "Dataset `` has no language")."""
    loggers = [logging.getLogger(name) for name in ("TTS", "trainer")]
    saved = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(level)
        yield
    finally:
        for lg, old in zip(loggers, saved):
            lg.setLevel(old)


# -- locating files ------------------------------------------------------------------------------

_STEP = re.compile(r"^(best_model|checkpoint)_(\d+)\.pth$")


def inference_checkpoint_name(source: Source) -> str | None:
    """The checkpoint the catalog takes for this voice (e.g. best_model_30824.pth)."""
    for pattern in source.allow_patterns or ():
        if pattern.endswith(".pth") and "*" not in pattern:
            return pattern
    return None


def find_checkpoint(model_dir: Path, preferred: str | None = None) -> Path | None:
    """The checkpoint to use in `model_dir`.

    `preferred` if it exists; else the highest-step `best_model_N.pth` (for both Kamtera repos
    that is the one Coqui's own catalog uses); else the highest `checkpoint_N.pth`; else the only
    `*.pth`. None if there is none (or several unnamed ones).
    """
    model_dir = Path(model_dir)
    if preferred:
        candidate = model_dir / preferred
        return candidate if candidate.is_file() else None
    ranked: list[tuple[int, int, Path]] = []
    others: list[Path] = []
    for path in sorted(model_dir.glob("*.pth")):
        match = _STEP.match(path.name)
        if match:
            ranked.append((1 if match.group(1) == "best_model" else 0, int(match.group(2)), path))
        else:
            others.append(path)
    if ranked:
        return max(ranked)[2]
    return others[0] if len(others) == 1 else None


# -- helpers on coqui objects --------------------------------------------------------------------


def _characters(config: Any) -> Any:
    """The characters object coqui-tts builds for this config (as TTSTokenizer would)."""
    from TTS.tts.utils.text.characters import Graphemes, IPAPhonemes
    from TTS.utils.generic_utils import import_class

    cfg = copy.deepcopy(config)  # IPAPhonemes.init_from_config edits the config it gets
    if cfg.characters and cfg.characters.characters_class:
        chars, _ = import_class(cfg.characters.characters_class).init_from_config(cfg)
    elif cfg.use_phonemes:
        chars, _ = IPAPhonemes().init_from_config(cfg)
    else:
        chars, _ = Graphemes().init_from_config(cfg)
    return chars


def _config_from_dict(data: dict) -> Any:
    """A VitsConfig from a dict, the way TTS.config.load_config builds one."""
    from TTS.tts.configs.vits_config import VitsConfig

    config = VitsConfig()
    config.from_dict(copy.deepcopy(data))
    return config


def _sample_rate(audio: Any) -> Any:
    try:
        return audio["sample_rate"]
    except (KeyError, TypeError):
        return None


def _field(config: Any, name: str) -> Any:
    try:
        return config[name] if name in config else None
    except (KeyError, TypeError):
        return None


def _espeak_languages(binary: str) -> set[str] | None:
    try:
        out = subprocess.run(
            [binary, "--voices"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    langs = set()
    for line in out.splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 2:
            langs.add(cols[1])
    return langs


def espeak_binary() -> str | None:
    """espeak-ng (or the older espeak) as coqui-tts would find it: on PATH."""
    return shutil.which("espeak-ng") or shutil.which("espeak")


def _shorten(names: list[str], limit: int = 4) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" (+{len(names) - limit} more)" if len(names) > limit else "")


# -- the check -----------------------------------------------------------------------------------


class _Stop(Exception):
    """A step found what makes the next steps pointless: the check ends with `failures`."""

    def __init__(self, *failures: GateFailure) -> None:
        self.failures = list(failures)


@dataclass
class _Voice:
    """The pair being checked, and how its files are named in the messages."""

    config_path: Path
    ckpt_path: Path
    show: Display

    @property
    def cfg_name(self) -> str:
        return self.show(self.config_path)

    @property
    def ckpt_name(self) -> str:
        return self.show(self.ckpt_path)

    @property
    def pair(self) -> str:
        return f"{self.cfg_name} and {self.ckpt_name} do not belong together"

    def fail(self, path: Path | str, reason: str) -> GateFailure:
        return GateFailure(GATE, self.show(Path(path)) if not isinstance(path, str) else path, reason)


def check_voice(
    model_dir: Path,
    *,
    checkpoint: str | None = None,
    structural: bool = True,
    display: Display | None = None,
) -> list[GateFailure | GateNote]:
    """Check one voice folder (config.json + a checkpoint). An empty list means it passed.

    checkpoint: file name inside `model_dir`; default `find_checkpoint`.
    structural: also build the model the config describes (on the CPU, random init, ~2.5 s
        and ~330 MB for the real dimensions) and compare every weight's name and shape with the
        checkpoint, i.e. exactly what coqui's strict `load_state_dict` will demand.
    display: how paths are written in the messages (the gate passes root-relative paths).
    """
    model_dir = Path(model_dir)
    show: Display = display or (lambda p: str(p))
    try:
        require_tts_extra()
    except ExtraMissingError as exc:
        return [GateNote(GATE, f"could not check the voice in {show(model_dir)}: {exc}")]
    config_path = model_dir / CONFIG_NAME
    ckpt_path = find_checkpoint(model_dir, checkpoint)
    voice = _Voice(config_path, ckpt_path or model_dir, show)
    failures: list[GateFailure | GateNote] = []
    if not config_path.is_file():
        failures.append(voice.fail(config_path, "missing: a Coqui voice needs its config.json"))
    if ckpt_path is None:
        target = model_dir / checkpoint if checkpoint else model_dir
        failures.append(voice.fail(target, "no checkpoint (best_model_N.pth) found" if not checkpoint else "missing"))
    if failures:
        return failures
    try:
        config, chars = _read_config(voice)  # 1. config.json parses as a Coqui VITS config
        failures += _espeak_failures(voice, config)  # 2. espeak-ng there when the config phonemizes with it
        state = _load_checkpoint(voice, failures)  # 3. the checkpoint loads on the CPU, tensors only
    except _Stop as stop:
        return stop.failures
    weights = {k: v for k, v in state["model"].items() if "speaker_encoder" not in k}  # coqui drops these keys
    # 4. config and checkpoint agree
    failures += _embedding_failures(voice, config, chars, weights)
    saved = state.get("config")
    if isinstance(saved, dict):
        failures += _training_config_failures(voice, config, chars, saved)
    if structural and not any(isinstance(f, GateFailure) and f.path == voice.ckpt_name for f in failures):
        failures.extend(_structure(config, weights, voice.fail, ckpt_path, voice.cfg_name, voice.ckpt_name,
                                   voice.pair))
    return failures


def _read_config(voice: _Voice) -> tuple[Any, Any]:
    """The config as coqui-tts reads it, and the character set it builds."""
    config_path = voice.config_path
    try:
        text = config_path.read_text(encoding="utf-8")
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            from TTS.config import read_json_with_comments  # coqui also accepts // comments

            try:
                raw = read_json_with_comments(config_path)
            except json.JSONDecodeError:
                raise exc from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _Stop(voice.fail(config_path, f"is not valid JSON: {exc}")) from None
    if not isinstance(raw, dict) or str(raw.get("model", "")).lower() != "vits":
        kind = raw.get("model") if isinstance(raw, dict) else type(raw).__name__
        raise _Stop(voice.fail(config_path, f"is not a Coqui VITS config (model={kind!r}, expected 'vits')"))
    try:
        with quiet_coqui():
            config = _config_from_dict(raw)
    except Exception as exc:  # coqpit raises assorted errors on bad fields
        raise _Stop(voice.fail(config_path, f"coqui-tts cannot read it as a VITS config: {exc}")) from None
    try:
        return config, _characters(config)
    except AssertionError as exc:  # " [!] There are duplicate characters in the character set."
        raise _Stop(voice.fail(config_path, f"coqui-tts refuses its character set:{str(exc).rstrip()}")) from None
    except Exception as exc:
        raise _Stop(voice.fail(config_path, f"coqui-tts cannot build its character set: {exc}")) from None


def _espeak_failures(voice: _Voice, config: Any) -> list[GateFailure]:
    if not config.use_phonemes:
        return []
    phonemizer = config.phonemizer or "espeak"
    language = config.phoneme_language
    if phonemizer not in ("espeak", "espeak-ng"):
        return []
    binary = espeak_binary()
    if binary is None:
        return [voice.fail(voice.config_path, f"uses phonemes (phonemizer {phonemizer}, language {language!r}) but "
                                              f"espeak-ng is not installed (not on PATH); {INSTALL_ESPEAK}")]
    langs = _espeak_languages(binary)
    if langs is not None and language and language not in langs:
        return [voice.fail(voice.config_path, f"phoneme_language {language!r} is not a voice of {binary} "
                                              f"(`{binary} --voices` does not list it)")]
    return []


def _load_checkpoint(voice: _Voice, failures: list) -> dict:
    """The checkpoint's dict; a load failure ends the check (with the failures found so far)."""
    import torch

    ckpt_path = voice.ckpt_path
    try:
        try:
            state = torch.load(ckpt_path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise
            # legacy (pre-zip) serialization cannot be memory-mapped
            state = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - every way a load fails is reported the same way
        import pickle

        if isinstance(exc, pickle.UnpicklingError):
            why = (
                "holds objects other than tensors and plain containers, so it does not load "
                "with torch.load(weights_only=True), which coqui-tts uses too; "
                f"torch says: {str(exc).splitlines()[0]}"
            )
        else:
            why = f"does not load on the CPU (truncated or not a torch checkpoint?): {exc}"
        raise _Stop(*failures, voice.fail(ckpt_path, why)) from None
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict):
        raise _Stop(*failures, voice.fail(ckpt_path, "is not a Coqui checkpoint (expected a dict with a 'model' "
                                                     "state_dict)"))
    return state


def _embedding_failures(voice: _Voice, config: Any, chars: Any, weights: dict) -> list[GateFailure]:
    """The text embedding has a row per symbol of the config and its hidden width."""
    cfg_name, ckpt_name, pair = voice.cfg_name, voice.ckpt_name, voice.pair
    emb = weights.get("text_encoder.emb.weight")
    if emb is None or getattr(emb, "ndim", 0) != 2:
        return [voice.fail(voice.ckpt_path, "has no text embedding (text_encoder.emb.weight): not VITS")]
    out = []
    rows, dim = int(emb.shape[0]), int(emb.shape[1])
    if rows != chars.num_chars:
        out.append(voice.fail(voice.ckpt_path,
                              f"{pair}: {cfg_name} defines {chars.num_chars} symbols "
                              f"({type(chars).__name__}), but the text embedding in {ckpt_name} has "
                              f"{rows} rows. The checkpoint was trained with another character set; "
                              f"use the config.json from the same repo and revision as the checkpoint."))
    hidden = config.model_args.hidden_channels
    if dim != hidden:
        out.append(voice.fail(voice.ckpt_path, f"{pair}: {cfg_name} says hidden_channels={hidden}, the text "
                                               f"embedding in {ckpt_name} is {dim} wide."))
    return out


def _training_config_failures(voice: _Voice, config: Any, chars: Any, saved: dict) -> list[GateFailure]:
    """config.json against the training config Coqui's trainer embeds in the checkpoint: sample rate,
    the exact symbol list, the text front end."""
    cfg_name, ckpt_name, pair = voice.cfg_name, voice.ckpt_name, voice.pair
    out = []
    sample_rate, saved_rate = _sample_rate(config.audio), _sample_rate(saved.get("audio"))
    if saved_rate is not None and sample_rate is not None and saved_rate != sample_rate:
        out.append(voice.fail(voice.ckpt_path, f"{pair}: sample rate {sample_rate} Hz in {cfg_name}, but {ckpt_name} "
                                               f"was trained at {saved_rate} Hz (its embedded training config)."))
    try:
        saved_config = _config_from_dict(saved)
        saved_vocab = list(_characters(saved_config).vocab)
    except Exception:  # noqa: BLE001 - an unreadable embedded config is not our verdict
        saved_config, saved_vocab = None, None
    vocab = list(chars.vocab)
    if saved_vocab is not None and saved_vocab != vocab:
        if len(saved_vocab) == len(vocab):
            diff = [i for i, (a, b) in enumerate(zip(vocab, saved_vocab)) if a != b]
            detail = (
                f"both have {len(vocab)} symbols, but they differ at {len(diff)} "
                f"position(s), first at id {diff[0]} ({vocab[diff[0]]!r} vs "
                f"{saved_vocab[diff[0]]!r}). This pair loads without error and speaks "
                f"gibberish."
            )
        else:
            detail = f"{cfg_name} has {len(vocab)} symbols, the checkpoint's training config {len(saved_vocab)}."
        out.append(voice.fail(voice.ckpt_path, f"{pair}: the symbol list in {cfg_name} differs from the one "
                                               f"{ckpt_name} was trained with (its embedded training config): {detail}"))
    if saved_config is not None:
        for name in _FRONT_END_FIELDS:
            mine, theirs = _field(config, name), _field(saved_config, name)
            if mine != theirs:
                out.append(voice.fail(voice.ckpt_path, f"{pair}: {name} is {mine!r} in {cfg_name} but {theirs!r} in "
                                                       f"the training config embedded in {ckpt_name}."))
    return out


def _structure(config, weights, fail, ckpt_path, cfg_name, ckpt_name, pair) -> list[GateFailure]:
    """Build the model the config describes and compare names and shapes with the checkpoint."""
    import torch
    from TTS.tts.models import setup_model

    cfg = copy.deepcopy(config)
    if cfg.characters and cfg.characters.characters_class:
        # Same symbols, no phonemizer process: the structure does not depend on espeak.
        cfg.use_phonemes = False
    try:
        with torch.random.fork_rng(devices=[]), quiet_coqui():
            model = setup_model(cfg)
    except Exception as exc:  # noqa: BLE001 - e.g. upsample rates that do not match hop_length
        return [fail(Path(ckpt_path).with_name(CONFIG_NAME), f"coqui-tts cannot build the model it describes: {exc}")]
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    del model
    got = {k: tuple(getattr(v, "shape", ())) for k, v in weights.items()}
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    shapes = [
        f"{k} {got[k]} vs {expected[k]}"
        for k in sorted(set(expected) & set(got))
        if got[k] != expected[k] and k != "emb_g.weight"  # coqui resizes the speaker table
    ]
    out: list[GateFailure] = []
    if missing or unexpected or shapes:
        parts = []
        if shapes:
            parts.append(f"{len(shapes)} weight(s) of another shape ({_shorten(shapes)})")
        if missing:
            parts.append(f"{len(missing)} weight(s) the config needs are absent ({_shorten(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} weight(s) the config does not build ({_shorten(unexpected)})")
        out.append(
            fail(
                ckpt_path,
                f"{pair}: the model {cfg_name} describes does not match the weights in "
                f"{ckpt_name}: " + "; ".join(parts) + ".",
            )
        )
    return out


def check_or_raise(model_dir: Path, *, checkpoint: str | None = None, structural: bool = False) -> None:
    """Run `check_voice`; raise ExtraMissingError / VoiceCheckError instead of returning."""
    results = check_voice(model_dir, checkpoint=checkpoint, structural=structural)
    notes = [r for r in results if isinstance(r, GateNote)]
    failures = [r for r in results if isinstance(r, GateFailure)]
    if failures:
        raise VoiceCheckError("; ".join(str(f) for f in failures))
    if notes:
        raise ExtraMissingError(notes[0].message)
