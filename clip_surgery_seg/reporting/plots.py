"""Charts (matplotlib, Agg backend: no display needed): ours vs paper, and mIoU over time."""
from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Union

from ..fileio import atomic_write_bytes


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; works without a display (CI, servers)
    import matplotlib.pyplot as plt

    return plt


def _save(figure, path: Union[str, Path]) -> None:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    atomic_write_bytes(path, buffer.getvalue())


def plot_paper_table(table, path: Union[str, Path], title: str = "CLIP Surgery, mIoU: ours vs paper") -> None:
    """Grouped bars per dataset: our mIoU and the paper's (a missing one is left out)."""
    plt = _pyplot()
    rows = table.drop_duplicates("dataset")  # the newest result per dataset comes first
    labels = list(rows["dataset"])
    positions = range(len(labels))
    width = 0.38
    figure, axes = plt.subplots(figsize=(max(5.0, 1.6 * len(labels)), 3.6))
    try:
        for offset, column, colour in ((-width / 2, "ours mIoU", "#1f77b4"), (width / 2, "paper mIoU", "#bbbbbb")):
            values = [float(v) for v in rows[column]]
            bars = axes.bar([p + offset for p in positions], [0 if math.isnan(v) else v for v in values], width,
                            label=column.replace(" mIoU", ""), color=colour)
            for bar, value in zip(bars, values):
                text = "n/a" if math.isnan(value) else f"{value:.1f}"
                axes.annotate(text, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center",
                              va="bottom", fontsize=8, xytext=(0, 2), textcoords="offset points")
        axes.set_xticks(list(positions), labels)
        axes.set_ylabel("mIoU (%)")
        axes.set_title(title)
        axes.legend(frameon=False)
        axes.spines[["top", "right"]].set_visible(False)
        figure.tight_layout()
        _save(figure, path)
    finally:
        plt.close(figure)


def plot_history(frame, path: Union[str, Path], title: str = "mIoU over time") -> None:
    """One line per dataset and protocol: mIoU of each recorded run against its time."""
    plt = _pyplot()
    from ..datasets.catalog import label

    figure, axes = plt.subplots(figsize=(7.0, 3.8))
    try:
        for (dataset, protocol), group in frame.groupby(["dataset", "protocol"], sort=True):
            group = group.sort_values("time")
            axes.plot(group["time"], group["mIoU"], marker="o", label=f"{label(dataset)} ({protocol})")
        axes.set_ylabel("mIoU (%)")
        axes.set_title(title)
        axes.legend(frameon=False, fontsize=8)
        axes.spines[["top", "right"]].set_visible(False)
        figure.autofmt_xdate()
        figure.tight_layout()
        _save(figure, path)
    finally:
        plt.close(figure)
