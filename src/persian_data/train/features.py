"""Model input features for a batch of clips.

Whisper: the log-mel spectrogram of `WhisperFeatureExtractor`, computed over the clips' own length
instead of the 30 s window. The extractor zero-pads every clip to 30 s and runs the STFT over all
3,000 frames; a 5 s Common Voice clip is then 5/6 padding, and the STFT of that padding costs 80 %
of the data path's time (20 ms of ~27 ms per clip measured here). A frame whose window holds only
padding has zero energy, so its log-mel is exactly log10(1e-10) = -10 before the clamp to
(max - 8); the frames that touch audio see the same samples as in the extractor as long as the
STFT runs at least n_fft samples past the longest clip (the reflection at the end then mirrors
zeros only). So: STFT over the batch padded to its longest clip + n_fft, -10 for the remaining
frames, then the extractor's own clamp and scaling per clip. Same values as the extractor (tested
to 1e-5 on random clips); dithering (dither > 0, random by design) falls back to the extractor.

CTC (wav2vec2 family): the model's feature extractor as it is (per-clip normalisation and padding:
cheap next to decoding).
"""

from __future__ import annotations

import numpy as np


def whisper_features(fe, audios: list[np.ndarray]):
    """(batch, n_mels, frames) float32 tensor, as `fe(audios, sampling_rate=..., return_tensors="pt")`
    gives `input_features`."""
    import torch

    if getattr(fe, "dither", 0.0):
        return fe(audios, sampling_rate=fe.sampling_rate, return_tensors="pt").input_features
    n_samples, hop, n_fft, n_frames = fe.n_samples, fe.hop_length, fe.n_fft, fe.nb_max_frames
    longest = min(max((len(a) for a in audios), default=0), n_samples)
    # n_fft past the longest clip, rounded up to whole seconds: batches then come in a few sizes, which
    # the allocator can reuse (sizes to the hop fragmented each loader process's heap to GBs)
    span = -(-(longest + n_fft) // fe.sampling_rate) * fe.sampling_rate
    if span // hop + 1 > n_frames:  # the clips fill the window: this is the extractor's own computation
        span = n_samples
    batch = torch.zeros((len(audios), span), dtype=torch.float32)
    for row, audio in zip(batch, audios):
        n = min(len(audio), span)
        row[:n] = torch.from_numpy(audio[:n])
    stft = torch.stft(batch, n_fft, hop, window=torch.hann_window(n_fft), return_complex=True)
    del batch
    frames = min(stft.shape[-1], n_frames)  # the full window drops its 3,001st frame, as the extractor
    magnitudes = stft[..., :frames].abs().pow_(2)
    del stft  # the complex spectrum is the largest buffer: gone before the mel products
    mel_filters = torch.from_numpy(np.asarray(fe.mel_filters, dtype=np.float32))
    out = torch.full((len(audios), mel_filters.shape[1], n_frames), -10.0)  # log10(1e-10): frames of padding only
    out[:, :, :frames] = torch.matmul(mel_filters.T, magnitudes).clamp_(min=1e-10).log10_()
    del magnitudes
    max_val = out.amax(dim=(1, 2), keepdim=True)
    torch.maximum(out, max_val - 8.0, out=out)
    return out.add_(4.0).div_(4.0)


def ctc_features(fe, audios: list[np.ndarray]) -> dict:
    """input_values (or input_features) and, when the model uses one, attention_mask."""
    out = fe(audios, sampling_rate=fe.sampling_rate, padding="longest", return_tensors="pt")
    return dict(out)
