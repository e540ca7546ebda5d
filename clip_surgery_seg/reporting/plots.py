"""Charts (matplotlib, Agg backend: no display needed): the methods table (ours vs published), and
mIoU over time."""
from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any, List, Tuple, Union

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
                     label=f"{row.label} ({row.protocol_label})")
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


def history_lines(frame) -> List[Tuple[str, Any]]:
    """The lines of :func:`plot_history`: one per kind of result (dataset, method, protocol and the
    settings a run overrode, post-processing, model, model config and weights: ``Kind.label``, e.g.
    ``ade20k/naclip+pamr/sclip/ViT-B-16/openai``), each ``(label, its rows oldest first)``, sorted by
    label. A PAMR run and a run without it, or two models, are never one line; a part an older row
    did not record is left out of its label, so it joins the line of the runs that recorded none.
    """
    from .records import history_records

    if frame.empty:
        return []
    labels = [record.kind.label for record in history_records(row for _, row in frame.iterrows())]
    grouped = frame.assign(_line=labels).groupby("_line", sort=True)
    return [(label, group.drop(columns="_line").sort_values("time", kind="stable")) for label, group in grouped]


def plot_history(frame, path: Union[str, Path], title: str = "mIoU over time") -> List[str]:
    """One line per kind of result (:func:`history_lines`): mIoU of each recorded run against its
    time. Returns the lines' labels, in the legend's order."""
    plt = _pyplot()

    lines = history_lines(frame)
    figure, axes = plt.subplots(figsize=(7.0, 3.8 + 0.15 * max(0, len(lines) - 6)))
    try:
        for label, group in lines:
            axes.plot(group["time"], group["mIoU"], marker="o", label=label)
        axes.set_ylabel("mIoU (%)")
        axes.set_title(title + " (dataset/method[+post-processing]/protocol/model/weights)", fontsize=9)
        axes.legend(frameon=False, fontsize=7)
        axes.spines[["top", "right"]].set_visible(False)
        figure.autofmt_xdate()
        figure.tight_layout()
        _save(figure, path)
    finally:
        plt.close(figure)
    return [label for label, _ in lines]
