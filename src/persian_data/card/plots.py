"""The card's plots, drawn with matplotlib (Agg, no display) into PNG bytes.

Every function takes figures already read by `collect` and returns PNG bytes; nothing here reads
the root. Output is deterministic (no timestamps in the PNG metadata), so the same root gives the
same files. Persian labels go through `persian_text.shape`.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .persian_text import font_families, shape  # noqa: E402

DPI = 100
SIZE = (7.0, 3.6)


def _style() -> None:
    plt.rcParams.update({"font.family": font_families(), "font.size": 10, "axes.titlesize": 11,
                         "svg.hashsalt": "persian-data", "mathtext.fontset": "dejavusans", "axes.spines.top": False, "axes.spines.right": False})


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def _title(ax, english: str, persian: str | None = None) -> None:
    # Two lines: one direction each, so neither the bidi algorithm nor the reader has to guess.
    ax.set_title(f"{english}\n{shape(persian)}" if persian else english)


def bars(labels: list[str], values: list[float], *, title: str, persian: str | None = None, ylabel: str = "",
         log: bool = False, horizontal: bool = False, colors: list[str] | None = None) -> bytes:
    _style()
    height = max(SIZE[1], 0.28 * len(labels) + 1.2) if horizontal else SIZE[1]
    fig, ax = plt.subplots(figsize=(SIZE[0], height))
    shaped = [shape(str(label)) for label in labels]
    positions = np.arange(len(labels))
    if horizontal:
        ax.barh(positions, values, color=colors or "#4c72b0")
        ax.set_yticks(positions, shaped)
        ax.invert_yaxis()
        ax.set_xlabel(shape(ylabel))
        if log:
            ax.set_xscale("log")
    else:
        ax.bar(positions, values, color=colors or "#4c72b0")
        ax.set_xticks(positions, shaped, rotation=20 if len(labels) > 4 else 0, ha="right" if len(labels) > 4 else "center")
        ax.set_ylabel(shape(ylabel))
        if log:
            ax.set_yscale("log")
    for position, value in zip(positions, values):
        text = f"{value:g}"
        if horizontal:
            ax.annotate(text, (value, position), xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
        else:
            ax.annotate(text, (position, value), xytext=(0, 2), textcoords="offset points", ha="center", fontsize=8)
    _title(ax, title, persian)
    return _png(fig)


def grouped_bars(groups: list[str], series: dict[str, list[float]], *, title: str, persian: str | None = None,
                 ylabel: str = "") -> bytes:
    """One group per split, one bar per series (e.g. hours and clips on twin axes when two)."""
    _style()
    fig, ax = plt.subplots(figsize=SIZE)
    positions = np.arange(len(groups))
    names = list(series)
    width = 0.8 / max(1, len(names))
    axes = [ax] + ([ax.twinx()] if len(names) == 2 else [])
    colors = ["#4c72b0", "#dd8452", "#55a868", "#c44e52"]
    for i, name in enumerate(names):
        target = axes[i] if len(axes) > 1 else ax
        offset = (i - (len(names) - 1) / 2) * width
        target.bar(positions + offset, series[name], width, label=name, color=colors[i % len(colors)])
        for position, value in zip(positions + offset, series[name]):
            target.annotate(f"{value:g}", (position, value), xytext=(0, 2), textcoords="offset points",
                            ha="center", fontsize=8)
        target.set_ylabel(name)
    ax.set_xticks(positions, groups)
    if len(axes) > 1:
        axes[1].spines["right"].set_visible(True)
    handles = [h for a in axes for h in a.get_legend_handles_labels()[0]]
    ax.legend(handles, names, loc="upper right", fontsize=8)
    _title(ax, title, persian)
    return _png(fig)


def histogram(values_by_split: dict[str, list[float]], *, title: str, persian: str | None = None, xlabel: str,
              bin_width: float | None = None, log_x: bool = False, log_y: bool = False) -> bytes:
    _style()
    fig, ax = plt.subplots(figsize=SIZE)
    every = [v for values in values_by_split.values() for v in values]
    if not every:
        ax.text(0.5, 0.5, "no values", ha="center", transform=ax.transAxes)
    else:
        if log_x:
            low = max(1.0, min(every))
            bins = np.logspace(np.log10(low), np.log10(max(max(every), low * 1.01)), 40)
            ax.set_xscale("log")
        elif bin_width:
            bins = np.arange(0.0, max(every) + bin_width, bin_width)
        else:
            bins = 30
        ax.hist([np.asarray(v, dtype=float) for v in values_by_split.values()], bins=bins, stacked=True,
                label=list(values_by_split), alpha=0.85)
        ax.legend(fontsize=8)
        if log_y:
            ax.set_yscale("log")
    ax.set_xlabel(shape(xlabel))
    ax.set_ylabel("count")
    _title(ax, title, persian)
    return _png(fig)


def long_tail(counts: list[int], *, title: str, persian: str | None = None) -> bytes:
    """Clips per speaker, speakers ranked by clip count, log scale."""
    _style()
    fig, ax = plt.subplots(figsize=SIZE)
    ranks = np.arange(1, len(counts) + 1)
    ax.plot(ranks, counts, drawstyle="steps-post", color="#4c72b0")
    ax.fill_between(ranks, counts, step="post", alpha=0.3)
    ax.set_yscale("log")
    ax.set_xscale("log")
    ax.set_xlabel("speaker rank")
    ax.set_ylabel("clips")
    _title(ax, title, persian)
    return _png(fig)


def spectrogram(samples: np.ndarray, sample_rate: int, *, title: str, persian: str | None = None) -> bytes:
    _style()
    fig, ax = plt.subplots(figsize=SIZE)
    ax.specgram(samples, NFFT=1024, Fs=sample_rate, noverlap=768, cmap="magma")
    ax.set_xlim(0, len(samples) / sample_rate)
    ax.set_xlabel("seconds")
    ax.set_ylabel("Hz")
    _title(ax, title, persian)
    return _png(fig)
