"""Charts (matplotlib, Agg backend: no display needed): the methods table (ours vs published), and
mIoU over time."""
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


def plot_methods_table(table, path: Union[str, Path], title: str = "mIoU: ours vs published") -> None:
    """Grouped bars: per dataset (and the average), one bar per row of the methods table (ours), with
    the published number as a black tick over it -- filled when published under the row's settings,
    hollow when elsewhere. A missing number is left out."""
    from ..datasets.catalog import label

    plt = _pyplot()
    groups = list(table.datasets) + ["average"]
    rows = table.rows
    width = 0.8 / max(1, len(rows))
    figure, axes = plt.subplots(figsize=(max(6.0, 1.1 * len(groups) * max(1, len(rows)) ** 0.5), 4.0))
    try:
        colours = plt.get_cmap("tab10")
        for index, row in enumerate(rows):
            ours, published, same = [], [], []
            for dataset in table.datasets:
                cell = row.cells[dataset]
                ours.append(cell.ours)
                published.append(cell.published.mIoU if cell.published is not None else math.nan)
                same.append(cell.same_settings)
            average = row.average(table.datasets)
            ours.append(average[0])
            published.append(average[1])
            same.append(all(row.cells[d].same_settings for d in table.datasets if not math.isnan(row.cells[d].ours)))
            xs = [g + (index - (len(rows) - 1) / 2) * width for g in range(len(groups))]
            axes.bar(xs, [0 if math.isnan(v) else v for v in ours], width * 0.9, color=colours(index % 10),
                     label=f"{row.label} ({row.protocol})")
            for x, value, filled in zip(xs, published, same):
                if not math.isnan(value):
                    axes.plot([x], [value], marker="_", markersize=max(4.0, 40 * width), mew=2,
                              color="black" if filled else "#888888")
        axes.set_xticks(range(len(groups)), [label(g) if g != "average" else "average" for g in groups],
                        rotation=30, ha="right")
        axes.set_ylabel("mIoU (%)")
        axes.set_title(title + " (ticks: published; grey: under other settings)", fontsize=10)
        axes.legend(frameon=False, fontsize=7, ncol=2)
        axes.spines[["top", "right"]].set_visible(False)
        figure.tight_layout()
        _save(figure, path)
    finally:
        plt.close(figure)


def plot_history(frame, path: Union[str, Path], title: str = "mIoU over time") -> None:
    """One line per dataset, method and protocol: mIoU of each recorded run against its time."""
    plt = _pyplot()
    from ..datasets.catalog import label

    figure, axes = plt.subplots(figsize=(7.0, 3.8))
    try:
        methods = frame["method"] if "method" in frame.columns else "clip_surgery"
        for (dataset, method, protocol), group in frame.assign(method=methods).groupby(
                ["dataset", "method", "protocol"], sort=True):
            group = group.sort_values("time")
            axes.plot(group["time"], group["mIoU"], marker="o", label=f"{label(dataset)}, {method} ({protocol})")
        axes.set_ylabel("mIoU (%)")
        axes.set_title(title)
        axes.legend(frameon=False, fontsize=8)
        axes.spines[["top", "right"]].set_visible(False)
        figure.autofmt_xdate()
        figure.tight_layout()
        _save(figure, path)
    finally:
        plt.close(figure)
