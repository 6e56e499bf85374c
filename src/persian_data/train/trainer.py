"""The transformers Trainer, wired to our data path and our scorer.

What the Trainer does as it is: the loop, gradient accumulation, mixed precision, checkpoints and
their rotation, resuming (model, optimizer, scheduler, RNG states, the position in the epoch),
keeping the best checkpoint (`load_best_model_at_end` on `eval_wer`). What is added here:
* the train sampler (`data.SeededLengthSampler`: durations from the manifests, order from the seed);
* `compute_metrics`: eval-stt's normalized WER/CER (`metrics.score_texts`), per corpus too;
* an evaluation (and checkpoint) at the last step, so the final weights are scored and can win;
* log lines in a pipe (tqdm bars on a terminal are the Trainer's own), and a hook at each checkpoint
  so train.json follows the run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from transformers import TrainerCallback

from ..progress import is_interactive
from .data import SeededLengthSampler
from .errors import TrainInputError
from .metrics import score_texts
from .options import WHISPER, TrainOptions

log = logging.getLogger("persian_data.train")
BEST_METRIC = "wer"


@dataclass
class Runtime:
    device: str  # "cpu" or "cuda"
    precision: str  # "fp32", "bf16" or "fp16"


def resolve_runtime(options: TrainOptions) -> Runtime:
    cuda = torch.cuda.is_available()
    device = options.device if options.device != "auto" else ("cuda" if cuda else "cpu")
    if device == "cuda" and not cuda:
        raise TrainInputError("--device cuda: no CUDA device is visible to torch here; use --device cpu")
    precision = options.precision
    if precision == "auto":
        precision = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if device == "cuda" else "fp32"
    if precision == "fp16" and device == "cpu":
        raise TrainInputError("--precision fp16 needs --device cuda (on a CPU use fp32 or bf16)")
    return Runtime(device, precision)


def training_arguments(options: TrainOptions, family: str, output_dir: str, runtime: Runtime):
    from transformers import Seq2SeqTrainingArguments, TrainingArguments

    workers = options.workers or 0
    kwargs = dict(
        output_dir=output_dir, seed=options.seed, data_seed=options.seed,
        per_device_train_batch_size=options.batch_size, per_device_eval_batch_size=options.eval_batch_size,
        gradient_accumulation_steps=options.grad_accum, learning_rate=options.learning_rate,
        warmup_steps=options.warmup, max_steps=options.max_steps or -1, num_train_epochs=options.epochs,
        eval_strategy="steps", eval_steps=options.eval_steps, save_strategy="steps", save_steps=options.eval_steps,
        save_total_limit=options.save_total_limit, load_best_model_at_end=True, metric_for_best_model=BEST_METRIC,
        greater_is_better=False, logging_strategy="steps", logging_steps=options.logging_steps,
        report_to="none", disable_tqdm=not is_interactive(), remove_unused_columns=False, label_names=["labels"],
        use_cpu=runtime.device == "cpu", bf16=runtime.precision == "bf16", fp16=runtime.precision == "fp16",
        # not persistent: a loader that lives across epochs draws its workers' seed from the global RNG
        # once, a resumed run draws it again, and dropout after the resume would differ from the run
        # that was not interrupted (forking the workers again each epoch costs milliseconds)
        dataloader_num_workers=workers, dataloader_persistent_workers=False,
        dataloader_pin_memory=runtime.device == "cuda",
    )
    if family == WHISPER:
        return Seq2SeqTrainingArguments(predict_with_generate=True, generation_num_beams=1, **kwargs)
    return TrainingArguments(**kwargs)


def trainer_class(family: str):
    from transformers import Seq2SeqTrainer, Trainer

    base = Seq2SeqTrainer if family == WHISPER else Trainer

    class STTTrainer(base):
        """The stock trainer with a train sampler that knows the clips' lengths without decoding them."""

        def __init__(self, *args, train_lengths: list[int], sampler_seed: int, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.train_lengths = train_lengths
            self.sampler_seed = sampler_seed

        def _get_train_sampler(self, train_dataset=None):
            per_step = self.args.train_batch_size * self.args.gradient_accumulation_steps
            return SeededLengthSampler(per_step, self.train_lengths, self.sampler_seed)

    return STTTrainer


def compute_metrics(tokenizer, refs: list[str], groups: list[str]) -> Callable:
    """Hypotheses come back in the eval dataset's order (a sequential sampler): clip k is refs[k]."""
    pad = tokenizer.pad_token_id

    def compute(pred) -> dict:
        ids = pred.predictions[0] if isinstance(pred.predictions, tuple) else pred.predictions
        ids = np.where(np.asarray(ids) < 0, pad, ids)  # -100: padding between batches of the eval loop
        hyps = [h.strip() for h in tokenizer.batch_decode(ids, skip_special_tokens=True)]
        return score_texts(refs, hyps, groups)

    return compute


def ctc_argmax(logits, labels):
    """Only the best label per frame is kept from the eval loop (not the whole vocabulary's logits)."""
    return logits.argmax(dim=-1)


class EvaluateAtEnd(TrainerCallback):
    """The last step is always evaluated and saved, so the final weights are scored and can be the best."""

    def on_step_end(self, args, state, control, **kwargs):
        if state.max_steps and state.global_step >= state.max_steps:
            control.should_evaluate = True
            control.should_save = True
        return control


class LogLines(TrainerCallback):
    """Plain log lines for the loss (in a pipe; a terminal has the Trainer's bars) and for every
    evaluation (always)."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "eval_wer" in logs:
            per = ", ".join(f"{k[9:]} {100 * v:.2f} %" for k, v in sorted(logs.items()) if k.startswith("eval_wer_")
                            and k != "eval_wer_raw")
            line = (f"step {state.global_step}: eval WER {100 * logs['eval_wer']:.2f} %, CER "
                    f"{100 * logs.get('eval_cer', 0.0):.2f} % (normalized){'; ' + per if per else ''}")
            if is_interactive():
                from tqdm.auto import tqdm

                tqdm.write(line)  # above the bar, not through it
            else:
                log.info("%s", line)
        elif "loss" in logs and not is_interactive():
            log.info("step %d/%d: loss %.4f, learning rate %.3g", state.global_step, state.max_steps, logs["loss"],
                     logs.get("learning_rate", 0.0))


def _bar_callback():
    """The Trainer's tqdm bars, with the loss on the bar instead of a dict printed per log."""
    from transformers.trainer_callback import ProgressCallback

    class Bars(ProgressCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if self.training_bar is not None and logs and "loss" in logs:
                self.training_bar.set_postfix(loss=f"{logs['loss']:.4f}", refresh=False)

    return Bars


class OnCheckpoint(TrainerCallback):
    """Calls `hook(state)` after each checkpoint is written (train.json follows the run)."""

    def __init__(self, hook: Callable) -> None:
        self.hook = hook

    def on_save(self, args, state, control, **kwargs):
        self.hook(state)
        return control


def build(family: str, model, processor, train_ds, eval_ds, collator, train_lengths: list[int], eval_refs: list[str],
          eval_groups: list[str], options: TrainOptions, output_dir: str, runtime: Runtime, on_checkpoint: Callable):
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    args = training_arguments(options, family, output_dir, runtime)
    cls = trainer_class(family)
    trainer = cls(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds, data_collator=collator,
                  processing_class=processor, compute_metrics=compute_metrics(processor.tokenizer, eval_refs, eval_groups),
                  preprocess_logits_for_metrics=None if family == WHISPER else ctc_argmax,
                  callbacks=[EvaluateAtEnd(), LogLines(), OnCheckpoint(on_checkpoint)],
                  train_lengths=train_lengths, sampler_seed=options.seed)
    # the stock progress output prints raw dicts: LogLines says the same in words, the bar shows the loss
    trainer.remove_callback(PrinterCallback)
    if trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(_bar_callback())
    return trainer


def curves(log_history: list[dict]) -> dict:
    """The loss curve and the eval curve, from the Trainer's log history."""
    train, evals = [], []
    for entry in log_history:
        if "loss" in entry:
            train.append({"step": entry.get("step"), "loss": entry["loss"], "learning_rate": entry.get("learning_rate"),
                          "grad_norm": entry.get("grad_norm"), "epoch": entry.get("epoch")})
        elif "eval_wer" in entry:
            evals.append({"step": entry.get("step"), "epoch": entry.get("epoch"),
                          **{k[5:]: v for k, v in entry.items() if k.startswith("eval_") and isinstance(v, (int, float))
                             and not k.endswith(("_runtime", "_per_second"))}})
    return {"train_loss": train, "eval": evals}
