"""The training data path: clips -> samples (in the loader's worker processes) -> padded batches of
model inputs, and the order batches come in.

* `ClipDataset` decodes and resamples one clip per item (`audio.load_clip`); labels are token ids
  made once, before training, in the main process.
* The collators make the model's inputs for the whole batch at once (`features`), in the workers,
  and pad the labels with -100 (ignored by the loss), as the transformers speech examples do.
* `SeededLengthSampler` is transformers' `LengthGroupedSampler` (batches of similar durations, in
  random order) fed with the manifests' durations: the stock Trainer would otherwise measure every
  clip by decoding it before the first step. Its order depends only on the seed and the epoch, so a
  resumed run sees the batches it would have seen.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers.trainer_pt_utils import LengthGroupedSampler, get_length_grouped_indices

from .audio import ClipDecodeError, load_clip
from .features import ctc_features, whisper_features

log = logging.getLogger("persian_data.train")


class ClipDataset(torch.utils.data.Dataset):
    def __init__(self, root: Path, audio_paths: list[str], labels: list[list[int]], sampling_rate: int) -> None:
        self.root = Path(root)
        self.audio_paths = audio_paths
        self.labels = labels
        self.sampling_rate = sampling_rate

    def __len__(self) -> int:
        return len(self.audio_paths)

    def __getitem__(self, i: int) -> dict:
        path = self.root / self.audio_paths[i]
        try:
            audio = load_clip(path, self.sampling_rate)
        except ClipDecodeError as exc:
            # One bad clip must not end a long run: it is left out of its batch, and said so.
            log.warning("skipping a clip that cannot be decoded: %s", exc)
            audio = None
        return {"audio": audio, "labels": self.labels[i]}


class _HeapGuard:
    """Gives a loader process's free heap memory back to the system once it passes `limit` bytes.

    Batches allocate buffers of many sizes (clips of every length, spectra of every span); glibc keeps
    what is freed inside its heap, fragmented, and a loader process grew from 0.6 GB to 1.5 GB over a
    Common Voice pass. malloc_trim after every batch costs ~30 % more CPU (the next batch faults its
    pages in again); asking mallinfo2 how much is free and trimming only past the limit costs nothing
    measurable. No effect outside glibc."""

    def __init__(self, limit: int = 256 << 20) -> None:
        self.limit = limit
        self.libc = None
        try:
            import ctypes

            class MallInfo2(ctypes.Structure):
                _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                                                                  "usmblks", "fsmblks", "uordblks", "fordblks",
                                                                  "keepcost")]

            libc = ctypes.CDLL("libc.so.6")
            libc.mallinfo2.restype = MallInfo2
            libc.malloc_trim.argtypes = [ctypes.c_size_t]
            self.libc = libc
        except (OSError, AttributeError):
            pass

    def __call__(self) -> None:
        if self.libc is not None and self.libc.mallinfo2().fordblks > self.limit:
            self.libc.malloc_trim(0)


_heap_guard = _HeapGuard()


def _pad_labels(rows: list[list[int]]) -> torch.Tensor:
    width = max((len(r) for r in rows), default=0)
    out = np.full((len(rows), width), -100, dtype=np.int64)
    for k, r in enumerate(rows):
        out[k, :len(r)] = r
    return torch.from_numpy(out)


def _usable(items: list[dict]) -> list[dict]:
    good = [it for it in items if it["audio"] is not None]
    if not good:
        raise RuntimeError("every clip of a batch failed to decode (see the warnings above); run "
                           "`persian-data prepare speech --deep` to find and reject broken clips")
    return good


@dataclass
class WhisperCollator:
    feature_extractor: object
    decoder_start_token_id: int

    def __call__(self, items: list[dict]) -> dict:
        items = _usable(items)
        labels = [it["labels"] for it in items]
        # the tokenizer puts <|startoftranscript|> first; the model adds it back when it shifts the labels
        sot = self.decoder_start_token_id
        labels = [r[1:] if r and r[0] == sot else r for r in labels]
        batch = {"input_features": whisper_features(self.feature_extractor, [it["audio"] for it in items]),
                 "labels": _pad_labels(labels)}
        _heap_guard()
        return batch


@dataclass
class CTCCollator:
    feature_extractor: object

    def __call__(self, items: list[dict]) -> dict:
        items = _usable(items)
        batch = ctc_features(self.feature_extractor, [it["audio"] for it in items])
        if "attention_mask" in batch:
            batch["attention_mask"] = batch["attention_mask"].to(torch.long)
        batch["labels"] = _pad_labels([it["labels"] for it in items])
        _heap_guard()
        return batch


class SeededLengthSampler(LengthGroupedSampler):
    """LengthGroupedSampler whose shuffle is seeded by (seed, epoch) instead of the global RNG."""

    def __init__(self, batch_size: int, lengths: list[int], seed: int) -> None:
        super().__init__(batch_size, lengths=lengths)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:  # the Trainer (through accelerate) calls it each epoch
        self.epoch = epoch

    def __iter__(self):
        generator = torch.Generator()
        generator.manual_seed(self.seed * 100_003 + self.epoch)
        return iter(get_length_grouped_indices(self.lengths, self.batch_size, generator=generator))
