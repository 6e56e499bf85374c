"""The card's plots, drawn with matplotlib (Agg, no display) into PNG bytes.

Every function takes figures already read by `collect` and returns PNG bytes; nothing here reads
the root. Output is deterministic (no timestamps in the PNG metadata), so the same root gives the
same files. Persian labels go through `persian_text.shape`.

No label is mathtext: mathtext draws in the first font family only (the Persian font, which has no
`×` and no superscript digits) and does not fall back to the next one as plain text does, so log
axes are labelled in plain numbers (1, 20, 300, 4k) and every label draws in the fonts of
`font.family`. Legends sit outside the data, so no bar can cover them.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import LogFormatter, MaxNLocator  # noqa: E402

from .persian_text import font_families, shape  # noqa: E402

DPI = 100
SIZE = (7.0, 3.6)
COLORS = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860"]
LINESTYLES = ["-", "--", ":", "-."]


def _style() -> None:
    plt.rcParams.update({"font.family": font_families(), "font.size": 10, "axes.titlesize": 11,
                         "svg.hashsalt": "persian-data", "axes.formatter.use_mathtext": False,
                         "axes.spines.top": False, "axes.spines.right": False})


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def _title(ax, english: str, persian: str | None = None) -> None:
    # Two lines: one direction each, so neither the bidi algorithm nor the reader has to guess.
    ax.set_title(f"{english}\n{shape(persian)}" if persian else english)


def compact(value: float) -> str:
    """A tick value as plain text: 1, 20, 1.5k, 3M."""
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:g}{suffix}"
    return f"{value:g}"


class PlainLogFormatter(LogFormatter):
    """matplotlib's own choice of which log ticks to label, written by `compact` (not mathtext)."""

    def __call__(self, x, pos=None):
        return compact(x) if super().__call__(x, pos) else ""


def _log(axis) -> None:
    """Call after set_[xy]scale("log"), which installs the mathtext formatters."""
    axis.set_major_formatter(PlainLogFormatter())
    axis.set_minor_formatter(PlainLogFormatter())


def _counts(axis, values) -> None:
    """Whole-number ticks on an axis of whole numbers (no "0.5 clips")."""
    if all(float(v).is_integer() for v in values):
        axis.set_major_locator(MaxNLocator(integer=True))


def _figure():
    """A figure whose legend goes under everything else (constrained layout makes room for it)."""
    return plt.subplots(figsize=SIZE, layout="constrained")


def _legend_below(fig, handles, labels) -> None:
    """The legend at the bottom of the figure, outside the axes: no bar or curve can cover it."""
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 4), fontsize=8, frameon=False)


def bars(labels: list[str], values: list[float], *, title: str, persian: str | None = None, ylabel: str = "",
         log: bool = False, horizontal: bool = False, colors: list[str] | None = None) -> bytes:
    _style()
    height = max(SIZE[1], 0.28 * len(labels) + 1.2) if horizontal else SIZE[1]
    fig, ax = plt.subplots(figsize=(SIZE[0], height))
    shaped = [shape(str(label)) for label in labels]
    positions = np.arange(len(labels))
    if horizontal:
        ax.barh(positions, values, color=colors or COLORS[0])
        ax.set_yticks(positions, shaped)
        ax.invert_yaxis()
        ax.set_xlabel(shape(ylabel))
        ax.margins(x=0.08)
        if log:
            ax.set_xscale("log")
            _log(ax.xaxis)
        else:
            _counts(ax.xaxis, values)
    else:
        ax.bar(positions, values, color=colors or COLORS[0])
        ax.set_xticks(positions, shaped, rotation=20 if len(labels) > 4 else 0, ha="right" if len(labels) > 4 else "center")
        ax.set_ylabel(shape(ylabel))
        ax.margins(y=0.1)
        if log:
            ax.set_yscale("log")
            _log(ax.yaxis)
        else:
            _counts(ax.yaxis, values)
    for position, value in zip(positions, values):
        text = f"{value:g}"
        if horizontal:
            ax.annotate(text, (value, position), xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
        else:
            ax.annotate(text, (position, value), xytext=(0, 2), textcoords="offset points", ha="center", fontsize=8)
    _title(ax, title, persian)
    return _png(fig)


def outcome_panels(panels: list[dict], *, title: str, persian: str | None = None) -> bytes:
    """Stacked panels of horizontal bars, one unit each: {"title", "unit", "bars": [(label, value,
    color)]}. Every bar is labelled with its count and its share of the panel's total."""
    _style()
    sizes = [max(1, len(p["bars"])) for p in panels]
    fig, axes = plt.subplots(len(panels), 1, figsize=(SIZE[0], 0.3 * sum(sizes) + 1.1 * len(panels) + 0.9),
                             height_ratios=sizes, squeeze=False)
    for ax, panel in zip(axes[:, 0], panels):
        labels = [shape(label) for label, _, _ in panel["bars"]]
        values = [value for _, value, _ in panel["bars"]]
        total = sum(values)
        positions = np.arange(len(values))
        ax.barh(positions, values, color=[color for _, _, color in panel["bars"]])
        ax.set_yticks(positions, labels)
        ax.invert_yaxis()
        ax.set_xlim(0, max([*values, 1]) * 1.3)
        _counts(ax.xaxis, values)
        ax.set_xlabel(shape(panel["unit"]))
        ax.set_title(shape(panel["title"]), fontsize=10, loc="left")
        for position, value in zip(positions, values):
            share = f" ({100 * value / total:.1f}%)" if total else ""
            ax.annotate(f"{value:,}{share}", (value, position), xytext=(3, 0), textcoords="offset points",
                        va="center", fontsize=8)
    fig.suptitle(f"{title}\n{shape(persian)}" if persian else title, fontsize=11)
    return _png(fig)


def grouped_bars(groups: list[str], series: dict[str, list[float]], *, title: str, persian: str | None = None,
                 ylabel: str = "") -> bytes:
    """One group per split, one bar per series (e.g. hours and clips on twin axes when two)."""
    _style()
    fig, ax = _figure()
    positions = np.arange(len(groups))
    names = list(series)
    width = 0.8 / max(1, len(names))
    axes = [ax] + ([ax.twinx()] if len(names) == 2 else [])
    for i, name in enumerate(names):
        target = axes[i] if len(axes) > 1 else ax
        offset = (i - (len(names) - 1) / 2) * width
        target.bar(positions + offset, series[name], width, label=name, color=COLORS[i % len(COLORS)])
        for position, value in zip(positions + offset, series[name]):
            target.annotate(f"{value:g}", (position, value), xytext=(0, 2), textcoords="offset points",
                            ha="center", fontsize=8)
        target.set_ylabel(name)
        target.margins(y=0.12)  # room for the value above the tallest bar
        _counts(target.yaxis, series[name])
    ax.set_xticks(positions, groups)
    if len(axes) > 1:
        axes[1].spines["right"].set_visible(True)
    handles = [h for a in axes for h in a.get_legend_handles_labels()[0]]
    _legend_below(fig, handles, names)
    _title(ax, title, persian)
    return _png(fig)


def histogram(values_by_split: dict[str, list[float]], *, title: str, persian: str | None = None, xlabel: str,
              bin_width: float | None = None, log_x: bool = False, log_y: bool = False) -> bytes:
    _style()
    fig, ax = _figure()
    every = [v for values in values_by_split.values() for v in values]
    if not every:
        ax.text(0.5, 0.5, "no values", ha="center", transform=ax.transAxes)
    else:
        if log_x:
            low = max(1.0, min(every))
            bins = np.logspace(np.log10(low), np.log10(max(max(every), low * 1.01)), 40)
            ax.set_xscale("log")
            _log(ax.xaxis)
        elif bin_width:
            bins = np.arange(0.0, max(every) + bin_width, bin_width)
        else:
            bins = 30
        ax.hist([np.asarray(v, dtype=float) for v in values_by_split.values()], bins=bins, stacked=True,
                label=list(values_by_split), alpha=0.85)
        _legend_below(fig, *ax.get_legend_handles_labels())
        if log_y:
            ax.set_yscale("log")
            _log(ax.yaxis)
        else:
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(shape(xlabel))
    ax.set_ylabel("count")
    _title(ax, title, persian)
    return _png(fig)


def long_tail(counts_by_split: dict[str, list[int]], *, title: str, persian: str | None = None) -> bytes:
    """Clips per speaker: one curve per split, its speakers ranked by clip count, log-log."""
    _style()
    fig, ax = _figure()
    for i, (split, counts) in enumerate(counts_by_split.items()):
        ranked = sorted(counts, reverse=True)
        ranks = np.arange(1, len(ranked) + 1)
        # few speakers: a marker on each, and a line style per split, so curves that coincide
        # (small splits often do) stay visible one on the other
        ax.plot(ranks, ranked, marker="o" if len(ranked) <= 50 else None, markersize=4,
                linestyle=LINESTYLES[i % len(LINESTYLES)], color=COLORS[i % len(COLORS)],
                label=f"{split} ({len(ranked):,} speaker{'' if len(ranked) == 1 else 's'})")
    ax.set_yscale("log")
    ax.set_xscale("log")
    _log(ax.xaxis)
    _log(ax.yaxis)
    ax.set_xlabel("speaker rank (1 = most clips)")
    ax.set_ylabel("clips")
    _legend_below(fig, *ax.get_legend_handles_labels())
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
