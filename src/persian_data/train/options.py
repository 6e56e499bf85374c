"""What a train-stt run is asked to do: the options, their checks, and the defaults of each model
family (and why they are what they are)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from .errors import TrainInputError

WHISPER, CTC = "whisper", "ctc"

# Per model family: the duration window of training clips and the learning rate, when not given.
#   whisper: the encoder sees exactly 30 s (the feature extractor pads or cuts to it), so a longer
#            clip would be trained against a transcript of audio the model never saw: 30 s is a hard
#            limit, not a taste. 1e-5 is the rate of the Whisper fine-tuning recipes (HF blog,
#            SpeechBrain's CommonVoice fa hparams use 1e-5 too).
#   ctc:     wav2vec2's self-attention grows with the square of the clip length; 20 s is the HF CTC
#            example's default and covers all but a handful of Common Voice/FLEURS clips. 3e-4 is
#            the XLS-R fine-tuning rate (a new output layer learns from scratch).
#   Both: no minimum (0 s), as the HF examples; a clip too short for its CTC transcript is dropped
#   by the label check instead (frames < labels), which knows the model's frame rate.
FAMILY_DEFAULTS = {
    WHISPER: {"min_duration": 0.0, "max_duration": 30.0, "learning_rate": 1e-5},
    CTC: {"min_duration": 0.0, "max_duration": 20.0, "learning_rate": 3e-4},
}


def default_workers() -> int:
    """Loader processes: one per spare core, at most 8 (the measured loader rate per core is in the
    README); 0 (load in the training process) on a single core."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(8, cores - 1))


@dataclass
class TrainOptions:
    model: str
    output: Path
    corpora: list[str]  # speech corpus keys of the root's catalog (`corpora.parse_corpora`)
    train_splits: list[str] = field(default_factory=lambda: ["train"])
    eval_split: str = "validation"
    targets: str = "normalized"
    min_duration: float | None = None  # None: the family default
    max_duration: float | None = None
    allow_leakage: bool = False
    minutes: float | None = None
    seed: int = 0
    max_steps: int | None = None
    epochs: float = 3.0
    batch_size: int = 16
    eval_batch_size: int | None = None
    grad_accum: int = 1
    learning_rate: float | None = None
    warmup: float = 0.1
    eval_steps: int = 500
    logging_steps: int = 25
    save_total_limit: int = 2
    gradient_checkpointing: bool = False
    freeze_encoder: bool = False
    device: str = "auto"
    precision: str = "auto"
    workers: int | None = None
    max_eval_clips: int | None = None
    token: str | None = field(default=None, repr=False)

    def check(self) -> None:
        """Flag values that cannot work: one clear line each (exit 2), before anything is loaded."""
        positive = {"--batch-size": self.batch_size, "--grad-accum": self.grad_accum, "--eval-steps": self.eval_steps,
                    "--logging-steps": self.logging_steps, "--save-total-limit": self.save_total_limit}
        for flag, value in positive.items():
            if value < 1:
                raise TrainInputError(f"{flag} must be 1 or more, not {value}")
        for flag, value in {"--max-steps": self.max_steps, "--eval-batch-size": self.eval_batch_size,
                            "--max-eval-clips": self.max_eval_clips}.items():
            if value is not None and value < 1:
                raise TrainInputError(f"{flag} must be 1 or more, not {value}")
        if self.epochs <= 0:
            raise TrainInputError(f"--epochs must be more than 0, not {self.epochs}")
        if self.minutes is not None and self.minutes <= 0:
            raise TrainInputError(f"--minutes must be more than 0, not {self.minutes}")
        for flag, value in {"--min-duration": self.min_duration, "--max-duration": self.max_duration}.items():
            if value is not None and value < 0:
                raise TrainInputError(f"{flag} must be 0 or more seconds, not {value}")
        if self.min_duration is not None and self.max_duration is not None and self.min_duration >= self.max_duration:
            raise TrainInputError(f"--min-duration ({self.min_duration} s) must be below --max-duration "
                                  f"({self.max_duration} s)")
        if self.learning_rate is not None and self.learning_rate <= 0:
            raise TrainInputError(f"--learning-rate must be more than 0, not {self.learning_rate}")
        if self.warmup < 0:
            raise TrainInputError(f"--warmup must be 0 or more (a fraction of the steps below 1, else steps)")
        if self.workers is not None and self.workers < 0:
            raise TrainInputError(f"--workers must be 0 or more, not {self.workers}")
        if self.eval_split in self.train_splits:
            raise TrainInputError(f"--eval-split {self.eval_split} is also in --train-splits; a model scored on "
                                  f"clips it trained on says nothing: pick another --eval-split")
        if "test" in self.train_splits and not self.allow_leakage:
            raise TrainInputError("--train-splits test: the test split is what eval-stt scores the model on; "
                                  "training on it needs --allow-leakage (and makes the test score meaningless)")

    def with_family_defaults(self, family: str, window: float | None = None) -> "TrainOptions":
        """Fill what was not given; `window`: the model's audio window in seconds (Whisper's encoder
        positions; 30 s for every released checkpoint), which caps the default --max-duration."""
        defaults = dict(FAMILY_DEFAULTS[family])
        if window:
            defaults["max_duration"] = min(defaults["max_duration"], window)
        for key in ("min_duration", "max_duration", "learning_rate"):
            if getattr(self, key) is None:
                setattr(self, key, defaults[key])
        if self.eval_batch_size is None:
            self.eval_batch_size = self.batch_size
        if self.workers is None:
            self.workers = default_workers()
        return self

    def record(self) -> dict:
        """The options as train.json records them (the token never)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "token"}
        out["output"] = str(self.output)
        return out

    # What must match for a rerun to continue a run instead of refusing it: everything that changes
    # the data, its order or the math. Not: the device, the loader's processes, logging, eval batch.
    RESUME_IGNORES = ("output", "device", "workers", "eval_batch_size", "logging_steps", "token")

    def fingerprint(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in self.RESUME_IGNORES}
