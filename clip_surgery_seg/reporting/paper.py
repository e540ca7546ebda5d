"""The methods x datasets table: our mIoU beside the published one, per method and dataset.

Rows are methods (the registry's order: vanilla, MaskCLIP, SCLIP, ClearCLIP, NACLIP, CLIP Surgery),
one per method, protocol, post-processing and model found in the results; columns are the
catalogue's datasets in its order (any other dataset after them), then the average. A cell holds our
newest result and the published number that fits it (:func:`published_for`):

* **same settings**: a row of ``results/paper.csv`` for this method, dataset and model under the
  row's protocol and post-processing; verified numbers first, then the file's order (each method's
  own code or paper before third parties' reports of it);
* otherwise **published elsewhere**: the first such row under any settings, marked ``*`` -- e.g.
  CLIP Surgery's numbers, whose settings the authors never published, or NACLIP's README numbers
  (with PAMR) beside a run without post-processing.

The average is over the datasets the row has our number for, and the published average over the
same datasets (n/a unless each has one); it says "k of N" when the row lacks some datasets.
"""
from __future__ import annotations

import math
import string
from decimal import ROUND_HALF_UP, Decimal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

from .. import resources
from ..datasets.catalog import DATASETS, label, paper_rank
from ..errors import ReportingError
from ..tables import markdown_table
from .records import ResultRecord

PAPER_COLUMNS = ("dataset", "method", "model", "weights", "mIoU", "protocol", "postprocess", "source", "table",
                 "settings", "verified", "note")
PAPER_MODEL = "ViT-B/16"  # every published number is for OpenAI's ViT-B/16
MISSING = "n/a"
ELSEWHERE = "*"


def load_paper(path: Union[str, Path, None] = None):
    """The published numbers (``results/paper.csv``) as a DataFrame, checked; ``mIoU`` as floats and
    ``mIoU text`` as written."""
    import pandas as pd

    path = Path(path) if path else resources.paper_csv()
    if not path.is_file():
        raise ReportingError(f"paper numbers file {path} does not exist")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as err:
        raise ReportingError(f"paper numbers file {path} cannot be read ({err})") from err
    missing = [c for c in PAPER_COLUMNS if c not in frame.columns]
    if missing:
        raise ReportingError(f"{path} lacks the column(s) {', '.join(missing)} (needs {', '.join(PAPER_COLUMNS)})")
    numbers = pd.to_numeric(frame["mIoU"], errors="coerce")
    bad = frame.index[numbers.isna()].tolist()
    if bad:
        raise ReportingError(f"{path} line {bad[0] + 2}: mIoU {frame['mIoU'][bad[0]]!r} is not a number")
    frame["mIoU text"] = frame["mIoU"].str.strip()  # as the source prints it (33.0, 59.63)
    frame["mIoU"] = numbers.astype("float64")
    return frame


@dataclass(frozen=True)
class Published:
    """One published number and where it comes from (a row of ``results/paper.csv``)."""

    mIoU: float
    method: str
    dataset: str
    protocol: str
    postprocess: str  # none | pamr
    source: str
    table: str
    settings: str
    verified: bool
    note: str = ""
    text: str = ""  # the number as the source prints it


    @property
    def reference(self) -> Tuple[str, str, str, bool]:
        """What a footnote names: the source, its table, the protocol, whether it was checked."""
        return (self.source, self.table, self.protocol, self.verified)


def _published(row) -> Published:
    return Published(mIoU=float(row["mIoU"]), method=row["method"], dataset=row["dataset"],
                     protocol=row["protocol"], postprocess=row["postprocess"] or "none", source=row["source"],
                     table=row["table"], settings=row["settings"], verified=row["verified"] == "yes",
                     note=row["note"], text=row["mIoU text"])


def published_for(paper, method: str, dataset: str, protocol: Optional[str] = None,
                  postprocess: Optional[str] = None) -> Tuple[Optional[Published], bool]:
    """The published number to show beside ours, and whether it was obtained under the same settings.

    Same settings means the same protocol and post-processing (``None`` and ``"none"``: none).
    Verified numbers come first, then the file's order. Without a number under the same settings,
    the closest under other settings is returned with ``False`` -- the same post-processing first
    (a run without PAMR beside a number without PAMR), then verified, then the file's order;
    ``(None, False)`` when there is none.
    """
    rows = paper[(paper["method"] == method) & (paper["dataset"] == dataset) & (paper["model"] == PAPER_MODEL)]
    if rows.empty:
        return None, False
    step = postprocess or "none"
    candidates = [_published(row) for _, row in rows.iterrows()]
    candidates.sort(key=lambda p: not p.verified)  # stable: the file's order within each group
    for candidate in candidates:
        if candidate.protocol == protocol and candidate.postprocess == step:
            return candidate, True
    candidates.sort(key=lambda p: p.postprocess != step)
    return candidates[0], False


# --- the table -----------------------------------------------------------------------------------

@dataclass
class Cell:
    """One method on one dataset: our newest result (if any) and the published number beside it."""

    record: Optional[ResultRecord] = None
    published: Optional[Published] = None
    same_settings: bool = False
    notes: List[str] = field(default_factory=list)

    @property
    def ours(self) -> float:
        return self.record.mIoU if self.record is not None else math.nan


@dataclass
class Row:
    """One method under one protocol, post-processing and model."""

    method: str
    protocol: str
    postprocess: Optional[str]
    model: str
    cells: Dict[str, Cell] = field(default_factory=dict)

    @property
    def label(self) -> str:
        from ..models.methods import METHODS

        name = METHODS[self.method].label if self.method in METHODS else self.method
        return name + (f" + {self.postprocess.upper()}" if self.postprocess else "")

    def average(self, datasets: Sequence[str]) -> Tuple[float, float, int]:
        """(our mean, the published mean over the same datasets or NaN, how many datasets)."""
        have = [d for d in datasets if d in self.cells and not math.isnan(self.cells[d].ours)]
        if not have:
            return math.nan, math.nan, 0
        ours = sum(self.cells[d].ours for d in have) / len(have)
        published = [self.cells[d].published for d in have]
        paper = published_mean(published) if all(published) else math.nan
        return ours, paper, len(have)


def published_mean(numbers: Sequence["Published"]) -> float:
    """The mean of published numbers as their papers compute it: exact on the printed decimals,
    rounded half up to two (NACLIP's eight README numbers average 42.455, printed 42.46)."""
    exact = sum(Decimal(p.text or repr(p.mIoU)) for p in numbers) / len(numbers)
    return float(exact.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


@dataclass
class MethodsTable:
    """The methods x datasets table (see the module docstring)."""

    datasets: List[str]
    rows: List[Row]

    @property
    def protocols(self) -> List[str]:
        return sorted({row.protocol for row in self.rows})


def _row_order(key: Tuple[str, str, Optional[str], str]) -> tuple:
    from ..models.methods import METHODS

    methods = list(METHODS)
    method, protocol, postprocess, model = key
    return (methods.index(method) if method in methods else len(methods), method, protocol, postprocess or "", model)


def methods_table(records: Sequence[ResultRecord], paper) -> MethodsTable:
    """The table of ``records`` (newest result per method, protocol, post-processing, model and
    dataset) beside ``paper`` (:func:`load_paper`)."""
    groups: Dict[Tuple[str, str, Optional[str], str], Dict[str, List[ResultRecord]]] = {}
    for record in records:
        key = (record.method, record.protocol, record.postprocess, record.model_label)
        groups.setdefault(key, {}).setdefault(record.dataset, []).append(record)
    datasets = sorted(set(DATASETS) | {r.dataset for r in records}, key=lambda n: (paper_rank(n), n))
    rows = []
    for key in sorted(groups, key=_row_order):
        method, protocol, postprocess, model = key
        row = Row(method, protocol, postprocess, model)
        for dataset in datasets:
            found = sorted(groups[key].get(dataset, []), key=lambda r: r.created or "", reverse=True)
            published, same = published_for(paper, method, dataset, protocol, postprocess)
            cell = Cell(found[0] if found else None, published, same)
            if found:
                cell.notes = found[0].comparability_notes()
                if len(found) > 1:
                    cell.notes.append(f"newest of {len(found)} results")
            row.cells[dataset] = cell
        rows.append(row)
    return MethodsTable(datasets, rows)


# --- Markdown and CSV ------------------------------------------------------------------------------

def _num(value: float, digits: int) -> str:
    return MISSING if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _footnote_keys(table: MethodsTable) -> Dict[tuple, str]:
    """A letter for each published source the table uses, in order of first use."""
    keys: Dict[tuple, str] = {}
    for row in table.rows:
        for dataset in table.datasets:
            published = row.cells[dataset].published
            if published is not None and published.reference not in keys:
                index = len(keys)
                keys[published.reference] = string.ascii_lowercase[index % 26] * (1 + index // 26)
    return keys


def to_markdown(table: MethodsTable) -> str:
    """The table as GitHub Markdown, cells ``ours / published [source]``, then the footnotes."""
    keys = _footnote_keys(table)
    notes: List[str] = []
    header = ["method", "protocol", "model"] + [label(d) for d in table.datasets] + ["average"]
    lines = []
    for row in table.rows:
        cells = [row.label, row.protocol, row.model]
        for dataset in table.datasets:
            cell = row.cells[dataset]
            ours = _num(cell.ours, 2)
            if cell.notes:
                notes.append(f"{row.label} ({row.protocol}), {label(dataset)}: {'; '.join(cell.notes)}")
                ours += f" ({len(notes)})"
            paper = MISSING
            if cell.published is not None:
                paper = (f"{cell.published.text}{'' if cell.same_settings else ELSEWHERE} "
                         f"[{keys[cell.published.reference]}]")
            cells.append(f"{ours} / {paper}")
        ours, paper, count = row.average(table.datasets)
        partial = f" ({count} of {len(table.datasets)})" if 0 < count < len(table.datasets) else ""
        cells.append(f"{_num(ours, 2)} / {_num(paper, 2)}{partial}")
        lines.append(cells)
    text = markdown_table(header, lines, numeric=header[3:])
    text += (f"\nCells: ours / published [source], mIoU (%). `{ELSEWHERE}`: published under other settings "
             "than the row's (another protocol or post-processing, or settings the authors did not "
             "publish). Average: over the datasets the row has, the published one over the same datasets.\n")
    if keys:
        text += "\nPublished numbers (results/paper.csv):\n"
        for (source, table_name, protocol, verified), key in keys.items():
            text += (f"- [{key}] {source}{f', {table_name}' if table_name else ''}; protocol {protocol}; "
                     f"{'verified' if verified else 'unverified'}\n")
    if notes:
        text += "\nNotes:\n" + "".join(f"- ({i}) {note}\n" for i, note in enumerate(notes, start=1))
    return text


def to_csv(table: MethodsTable) -> str:
    """One line per row: ``<dataset>`` (ours), ``<dataset> published`` and ``<dataset> published
    same settings`` for each dataset, then the averages; numbers with two decimals, empty where unknown."""
    import pandas as pd

    columns = ["method", "protocol", "postprocess", "model"]
    for dataset in table.datasets:
        columns += [dataset, f"{dataset} published", f"{dataset} published same settings"]
    columns += ["average", "average published", "average datasets"]
    lines = []
    for row in table.rows:
        line = {"method": row.method, "protocol": row.protocol, "postprocess": row.postprocess or "none",
                "model": row.model}
        for dataset in table.datasets:
            cell = row.cells[dataset]
            line[dataset] = cell.ours
            line[f"{dataset} published"] = cell.published.mIoU if cell.published is not None else math.nan
            line[f"{dataset} published same settings"] = cell.same_settings if cell.published is not None else None
        ours, paper, count = row.average(table.datasets)
        line.update({"average": ours, "average published": paper, "average datasets": count})
        lines.append(line)
    return pd.DataFrame(lines, columns=columns).to_csv(index=False, float_format="%.2f", lineterminator="\n")
