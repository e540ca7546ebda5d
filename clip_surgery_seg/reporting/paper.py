"""The methods x datasets table: our mIoU beside the published one, per method and dataset.

Rows are methods (the registry's order: vanilla, MaskCLIP, SCLIP, ClearCLIP, NACLIP, CLIP Surgery),
one per method, protocol (with the settings a run overrode), post-processing and model with its
weights found in the results; columns are the catalogue's datasets in its order (any other dataset
after them), then the average. A cell holds our newest result and the published number that fits
it (:func:`published_for`):

* **same settings**: a row of ``results/paper.csv`` for this method and dataset under the row's
  protocol with none of its settings overridden, the row's post-processing, and the row's model and
  weights (``ViT-B/16`` is open_clip's ``ViT-B-16``; a file of OpenAI's released weights is
  ``openai``); verified numbers first, then the file's order (each method's own code or paper before
  third parties' reports of it);
* otherwise **published elsewhere**: the nearest such row, marked ``*`` -- e.g. CLIP Surgery's
  numbers, whose settings the authors never published, NACLIP's README numbers (with PAMR) beside a
  run without post-processing, any number beside a run with ``protocol.short_side`` overridden, or
  the ViT-B/16 numbers beside an RN50 run. The row's protocol column and a note say why.

Settings a result did not record (a v1 ``metrics.json`` or an older history row says nothing of
overridden settings) count as not overridden: unknown, not different.

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
from .records import TAG, ResultRecord, canonical_model, protocol_label, settings_text, weights_text

PAPER_COLUMNS = ("dataset", "method", "model", "weights", "mIoU", "protocol", "postprocess", "source", "table",
                 "settings", "verified", "note")
PAPER_MODEL = "ViT-B/16"  # every published number is for OpenAI's ViT-B/16 (so far)
PAPER_WEIGHTS = "openai"
MISSING = "n/a"
ELSEWHERE = "*"


def method_label(method: str, postprocess: Optional[str] = None) -> str:
    """What tables and pages call a method: the registry's label (``NACLIP``), with its
    post-processing (``NACLIP + PAMR``); an unknown name as it is."""
    from ..models.methods import METHODS

    name = METHODS[method].label if method in METHODS else method
    return name + (f" + {postprocess.upper()}" if postprocess else "")


def method_rank(method: str) -> int:
    """A method's place in the registry's (the field's publication) order; an unknown name after all."""
    from ..models.methods import METHODS

    methods = list(METHODS)
    return methods.index(method) if method in methods else len(methods)


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
    model: str = PAPER_MODEL  # as paper.csv spells it (ViT-B/16)
    weights: str = PAPER_WEIGHTS

    @property
    def reference(self) -> Tuple[str, str, str, bool]:
        """What a footnote names: the source, its table, the protocol, whether it was checked."""
        return (self.source, self.table, self.protocol, self.verified)


def _published(row) -> Published:
    return Published(mIoU=float(row["mIoU"]), method=row["method"], dataset=row["dataset"],
                     protocol=row["protocol"], postprocess=row["postprocess"] or "none", source=row["source"],
                     table=row["table"], settings=row["settings"], verified=row["verified"] == "yes",
                     note=row["note"], text=row["mIoU text"], model=row["model"], weights=row["weights"])


def published_for(paper, method: str, dataset: str, protocol: Optional[str] = None,
                  postprocess: Optional[str] = None, overridden: Sequence[str] = (),
                  model: str = PAPER_MODEL, weights: Optional[Tuple[str, Optional[str]]] = (TAG, PAPER_WEIGHTS)
                  ) -> Tuple[Optional[Published], bool]:
    """The published number to show beside ours, and whether it was obtained under the same settings.

    Same settings means the same protocol with no setting ``overridden``, the same post-processing
    (``None`` and ``"none"``: none), and the same model (compared in open_clip's spelling:
    ``ViT-B/16`` is ``ViT-B-16``) and weights (``ResultRecord.weights``: ``("tag", "openai")``; None
    unknown, which agrees). The defaults are a default run's: OpenAI's ViT-B/16.

    The number shown: of the same protocol and post-processing and model, else of the same model,
    else of the same protocol and post-processing, else any; among equals the same post-processing
    first (a run without PAMR beside a number without PAMR), then verified numbers, then the file's
    order. ``(None, False)`` when the method has no number for the dataset.
    """
    rows = paper[(paper["method"] == method) & (paper["dataset"] == dataset)]
    if rows.empty:
        return None, False
    step = postprocess or "none"
    candidates = [_published(row) for _, row in rows.iterrows()]

    def rank(candidate: Published) -> tuple:
        settings = candidate.protocol == protocol and candidate.postprocess == step
        same_model = _same_model(candidate, model, weights)
        return (not (settings and same_model), not same_model, not settings, candidate.postprocess != step,
                not candidate.verified)

    best = min(candidates, key=rank)  # min is stable: the file's order among equals
    same = not any(rank(best)[:3]) and not overridden
    return best, same


def _same_model(published: Published, model: str, weights: Optional[Tuple[str, Optional[str]]]) -> bool:
    if canonical_model(published.model) != canonical_model(model):
        return False
    return weights is None or tuple(weights) == (TAG, published.weights)


#: the reasons that hold for a whole row of the table, not one cell's published number
ROW_REASONS = ("overridden", "model")


def settings_differences(published: Published, record: ResultRecord) -> Dict[str, str]:
    """Why ``published`` is not a number of ``record``'s settings (empty: it is), as ``{aspect:
    phrase}`` for the aspects ``protocol``, ``overridden``, ``postprocess`` and ``model`` (with weights)."""
    reasons = {}
    if published.protocol != record.protocol:
        reasons["protocol"] = ("settings not published" if published.protocol in ("unpublished", "not stated") else
                               f"published under protocol {published.protocol}")
    if record.overridden:
        reasons["overridden"] = f"protocol {record.protocol_label}"
    if published.postprocess != (record.postprocess or "none"):
        reasons["postprocess"] = f"published with post-processing {published.postprocess}"
    if not _same_model(published, record.model or PAPER_MODEL, record.weights):
        reasons["model"] = (f"model {record.model} / {weights_text(record.weights)}, published for "
                            f"{published.model} / {published.weights}")
    return reasons


# --- the table -----------------------------------------------------------------------------------

@dataclass
class Cell:
    """One method on one dataset: our newest result (if any) and the published number beside it."""

    record: Optional[ResultRecord] = None
    published: Optional[Published] = None
    same_settings: bool = False
    notes: List[str] = field(default_factory=list)
    differences: Dict[str, str] = field(default_factory=dict)  # why it is marked *: settings_differences

    @property
    def ours(self) -> float:
        return self.record.mIoU if self.record is not None else math.nan

    @property
    def mark(self) -> str:
        """:data:`ELSEWHERE` after a published number of other settings than the row's; empty otherwise."""
        return ELSEWHERE if self.published is not None and not self.same_settings else ""


@dataclass
class Row:
    """One method under one protocol (and the settings its runs overrode), post-processing and model."""

    method: str
    protocol: str
    postprocess: Optional[str]
    model: str
    cells: Dict[str, Cell] = field(default_factory=dict)
    overridden: Tuple[Tuple[str, str], ...] = ()  # ((setting, value as JSON), ...)

    @property
    def label(self) -> str:
        return method_label(self.method, self.postprocess)

    @property
    def protocol_label(self) -> str:
        """``sclip``, or ``sclip (short_side=448 overridden)``: such a row is not that protocol's."""
        return protocol_label(self.protocol, self.overridden)

    @property
    def heading(self) -> str:
        """``NACLIP (sclip, ViT-B-16 / openai)``: what a note about the whole row names."""
        return f"{self.label} ({self.protocol_label}, {self.model})"

    @property
    def differences(self) -> List[str]:
        """Why every published number of the row is marked ``*`` for the row's own sake: protocol
        settings its runs overrode, another model or weights (:data:`ROW_REASONS`)."""
        reasons: List[str] = []
        for cell in self.cells.values():
            for aspect in ROW_REASONS:
                phrase = cell.differences.get(aspect)
                if phrase and phrase not in reasons:
                    reasons.append(phrase)
        return reasons

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


RowKey = Tuple[str, str, Tuple[Tuple[str, str], ...], Optional[str], str]


def _row_order(key: RowKey) -> tuple:
    method, protocol, overridden, postprocess, model = key
    return method_rank(method), method, protocol, overridden, postprocess or "", model


def methods_table(records: Sequence[ResultRecord], paper) -> MethodsTable:
    """The table of ``records`` (newest result per method, protocol and overridden settings,
    post-processing, model and dataset) beside ``paper`` (:func:`load_paper`)."""
    groups: Dict[RowKey, Dict[str, List[ResultRecord]]] = {}
    for record in records:
        # a run with overridden settings is not the protocol's: a row of its own (not recorded: plain)
        key = (record.method, record.protocol, record.overridden_settings or (), record.postprocess, record.model_label)
        groups.setdefault(key, {}).setdefault(record.dataset, []).append(record)
    datasets = sorted(set(DATASETS) | {r.dataset for r in records}, key=lambda n: (paper_rank(n), n))
    rows = []
    for key in sorted(groups, key=_row_order):
        method, protocol, overridden, postprocess, model = key
        row = Row(method, protocol, postprocess, model, overridden=overridden)
        any_record = next(iter(groups[key].values()))[0]  # the row's model and weights are all its records'
        for dataset in datasets:
            found = sorted(groups[key].get(dataset, []), key=lambda r: r.created or "", reverse=True)
            record = found[0] if found else any_record
            published, same = published_for(paper, method, dataset, protocol, postprocess,
                                             overridden=[name for name, _ in overridden],
                                             model=record.model or PAPER_MODEL, weights=record.weights)
            cell = Cell(found[0] if found else None, published, same)
            if published is not None and not same:
                cell.differences = settings_differences(published, record)
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


def footnote_keys(table: MethodsTable) -> Dict[tuple, str]:
    """A letter for each published source the table uses, in order of first use."""
    keys: Dict[tuple, str] = {}
    for row in table.rows:
        for dataset in table.datasets:
            published = row.cells[dataset].published
            if published is not None and published.reference not in keys:
                index = len(keys)
                keys[published.reference] = string.ascii_lowercase[index % 26] * (1 + index // 26)
    return keys


def verified_text(verified: bool) -> str:
    """How a footnote says whether a published number was checked against its source."""
    return "verified" if verified else "unverified"


def datasets_count(count: int, total: int) -> str:
    """``3 of 8``: how many of the table's datasets a row's average is over, where it is not all of
    them (and not none); empty otherwise."""
    return f"{count} of {total}" if 0 < count < total else ""


def to_markdown(table: MethodsTable) -> str:
    """The table as GitHub Markdown, cells ``ours / published [source]``, then the footnotes."""
    keys = footnote_keys(table)
    notes: List[str] = []
    header = ["method", "protocol", "model"] + [label(d) for d in table.datasets] + ["average"]
    lines = []
    for row in table.rows:
        cells = [row.label, row.protocol_label, row.model]
        if row.differences:  # overridden settings, another model: why every published number is marked
            notes.append(f"{row.heading}: published numbers marked `{ELSEWHERE}`: {'; '.join(row.differences)}")
        for dataset in table.datasets:
            cell = row.cells[dataset]
            ours = _num(cell.ours, 2)
            if cell.notes:
                notes.append(f"{row.label} ({row.protocol_label}), {label(dataset)}: {'; '.join(cell.notes)}")
                ours += f" ({len(notes)})"
            paper = MISSING
            if cell.published is not None:
                paper = f"{cell.published.text}{cell.mark} [{keys[cell.published.reference]}]"
            cells.append(f"{ours} / {paper}")
        ours, paper, count = row.average(table.datasets)
        of = datasets_count(count, len(table.datasets))
        cells.append(f"{_num(ours, 2)} / {_num(paper, 2)}{f' ({of})' if of else ''}")
        lines.append(cells)
    text = markdown_table(header, lines, numeric=header[3:])
    text += (f"\nCells: ours / published [source], mIoU (%). `{ELSEWHERE}`: published under other settings "
             "than the row's (another protocol or post-processing, protocol settings the row's runs "
             "overrode, another model or weights, or settings the authors did not publish). Average: over "
             "the datasets the row has, the published one over the same datasets.\n")
    if keys:
        text += "\nPublished numbers (results/paper.csv):\n"
        for (source, table_name, protocol, verified), key in keys.items():
            text += (f"- [{key}] {source}{f', {table_name}' if table_name else ''}; protocol {protocol}; "
                     f"{verified_text(verified)}\n")
    if notes:
        text += "\nNotes:\n" + "".join(f"- ({i}) {note}\n" for i, note in enumerate(notes, start=1))
    return text


def to_csv(table: MethodsTable) -> str:
    """One line per row (``overridden``: the protocol settings its runs overrode, ``short_side=448``;
    empty: none): ``<dataset>`` (ours), ``<dataset> published`` and ``<dataset> published
    same settings`` for each dataset, then the averages; numbers with two decimals, empty where unknown."""
    import pandas as pd

    columns = ["method", "protocol", "overridden", "postprocess", "model"]
    for dataset in table.datasets:
        columns += [dataset, f"{dataset} published", f"{dataset} published same settings"]
    columns += ["average", "average published", "average datasets"]
    lines = []
    for row in table.rows:
        line = {"method": row.method, "protocol": row.protocol,
                "overridden": settings_text(row.overridden, " "),
                "postprocess": row.postprocess or "none", "model": row.model}
        for dataset in table.datasets:
            cell = row.cells[dataset]
            line[dataset] = cell.ours
            line[f"{dataset} published"] = cell.published.mIoU if cell.published is not None else math.nan
            line[f"{dataset} published same settings"] = cell.same_settings if cell.published is not None else None
        ours, paper, count = row.average(table.datasets)
        line.update({"average": ours, "average published": paper, "average datasets": count})
        lines.append(line)
    return pd.DataFrame(lines, columns=columns).to_csv(index=False, float_format="%.2f", lineterminator="\n")
