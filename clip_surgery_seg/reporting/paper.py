"""The paper's table rebuilt from results: our mIoU next to the published one, per dataset.

Rows follow the paper (Context-59, COCO-Stuff-171, Cityscapes, ADE20K-150), then any other dataset.
Every paper dataset gets a row; one without a result shows ``n/a``. When several results are given
for a dataset the newest is used and the row's notes say so (``all_results=True`` lists them all).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

from .. import resources
from ..datasets.catalog import PAPER_ORDER, label, paper_rank
from ..tables import markdown_table
from ..errors import ReportingError
from .records import ResultRecord

PAPER_COLUMNS = ("dataset", "method", "model", "weights", "mIoU", "protocol", "source")
METHOD = "CLIP Surgery"
BASELINES = ("CLIP", "MaskCLIP")
TABLE_COLUMNS = ("dataset", "ours mIoU", "paper mIoU", "difference", "protocol", "model", "date", "notes")
MISSING = "n/a"


def load_paper(path: Union[str, Path, None] = None):
    """The published numbers (``results/paper.csv``) as a DataFrame."""
    import pandas as pd

    path = Path(path) if path else resources.paper_csv()
    if not path.is_file():
        raise ReportingError(f"paper numbers file {path} does not exist")
    frame = pd.read_csv(path)
    missing = [c for c in PAPER_COLUMNS if c not in frame.columns]
    if missing:
        raise ReportingError(f"{path} lacks the column(s) {', '.join(missing)} (needs {', '.join(PAPER_COLUMNS)})")
    frame["mIoU"] = pd.to_numeric(frame["mIoU"], errors="raise")
    return frame


def paper_value(paper, dataset: str, method: str = METHOD) -> Optional[float]:
    """The published mIoU of ``method`` on ``dataset``, or None."""
    rows = paper[(paper["dataset"] == dataset) & (paper["method"] == method)]
    return float(rows["mIoU"].iloc[0]) if len(rows) else None


def _latest_first(records: Sequence[ResultRecord]) -> List[ResultRecord]:
    return sorted(records, key=lambda r: r.created or "", reverse=True)


def paper_table(records: Sequence[ResultRecord], paper, all_results: bool = False,
                baselines: bool = False):
    """The table as a DataFrame with ``TABLE_COLUMNS`` (numbers as floats, NaN where unknown).

    ``baselines`` adds the published vanilla-CLIP and MaskCLIP numbers as extra columns.
    """
    import pandas as pd

    by_dataset: Dict[str, List[ResultRecord]] = {}
    for record in records:
        by_dataset.setdefault(record.dataset, []).append(record)
    datasets = sorted(set(PAPER_ORDER) | set(by_dataset), key=lambda n: (paper_rank(n), n))
    rows = []
    for name in datasets:
        published = paper_value(paper, name)
        extra = {f"{m} (published)": paper_value(paper, name, m) for m in BASELINES} if baselines else {}
        found = _latest_first(by_dataset.get(name, []))
        if not found:
            rows.append({"dataset": label(name), "ours mIoU": math.nan, "paper mIoU": published,
                         "difference": math.nan, "protocol": "", "model": "", "date": "",
                         "notes": "not evaluated", **extra})
            continue
        for index, record in enumerate(found if all_results else found[:1]):
            notes = record.comparability_notes()
            if len(found) > 1 and not all_results:
                notes.append(f"newest of {len(found)} results")
            ours = record.mIoU
            difference = round(ours - published, 2) if published is not None and not math.isnan(ours) else math.nan
            rows.append({"dataset": label(name), "ours mIoU": ours, "paper mIoU": published,
                         "difference": difference, "protocol": record.protocol, "model": record.model_label,
                         "date": record.date, "notes": "; ".join(notes), **extra})
    extra_columns = [f"{m} (published)" for m in BASELINES] if baselines else []
    frame = pd.DataFrame(rows, columns=list(TABLE_COLUMNS) + extra_columns)
    for column in frame.columns:
        if column in ("ours mIoU", "paper mIoU", "difference") or column.endswith("(published)"):
            frame[column] = pd.to_numeric(frame[column]).astype("float64")
    return frame


def _cell(column: str, value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING if column != "notes" else ""
    if column == "difference":
        return f"{value:+.2f}"
    if column == "ours mIoU":
        return f"{value:.2f}"
    if column == "paper mIoU" or column.endswith("(published)"):
        return f"{value:.1f}"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def format_cells(frame) -> List[List[str]]:
    return [[_cell(c, v) for c, v in zip(frame.columns, row)] for row in frame.itertuples(index=False)]


def to_markdown(frame) -> str:
    """A GitHub Markdown table; numbers right-aligned."""
    columns = [str(c) for c in frame.columns]
    numeric = [c for c in columns if str(frame[c].dtype).startswith(("float", "int"))]
    return markdown_table(columns, format_cells(frame), numeric)


def to_csv(frame) -> str:
    """CSV with plain numbers (two decimals; empty where unknown)."""
    return frame.to_csv(index=False, float_format="%.2f", lineterminator="\n")


def sources_note(paper) -> str:
    """A line naming where the published numbers come from, for under the table."""
    rows = paper[paper["method"] == METHOD]
    sources = sorted(set(rows["source"].dropna()))
    return "Published numbers: " + "; ".join(sources) + " (results/paper.csv)."
