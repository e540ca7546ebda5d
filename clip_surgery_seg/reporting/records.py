"""One result, whichever way it was stored: a ``metrics.json``, a run folder, or a history row.

``load_records(spec)`` turns what a user types into records:

* a ``metrics.json`` file, or a work dir holding one (``tools/eval.py --work-dir``);
* a reproduce run folder: every ``<method>/<dataset>/metrics.json`` (or ``<dataset>/metrics.json``) in it;
* a history selection ``PATH.csv[:FILTER,...][@REF]`` (see ``clip_surgery_seg.reporting.history``).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

from .history import (LEGACY_METHOD, HistoryError, history_row, looks_like_selection, parse_selection,
                      per_class_iou, read_history, select_rows)
from ..results import RESULTS_FILE, ResultsFileError, load_results
from ..errors import ReportingError


@dataclass
class ResultRecord:
    """What the report and the comparison need of one evaluation of one dataset."""

    dataset: str
    protocol: str
    mIoU: float
    aAcc: float
    mAcc: float
    per_class: Dict[str, float]
    model: str
    pretrained: Optional[str]
    weights_sha256: Optional[str] = None
    created: Optional[str] = None
    code_version: Optional[str] = None
    config_hash: Optional[str] = None
    num_images: Optional[int] = None
    expected_images: Optional[int] = None
    limit: Optional[int] = None
    skipped: int = 0
    wall_s: Optional[float] = None
    source: str = ""
    history_key: Dict[str, Any] = field(default_factory=dict)
    method: str = LEGACY_METHOD
    postprocess: Optional[str] = None  # the post-processing step's name, None for none

    @property
    def name(self) -> str:
        """What comparisons call this result: the dataset, with the method unless it is CLIP Surgery."""
        return self.dataset if self.method == LEGACY_METHOD else f"{self.dataset} ({self.method})"

    @property
    def model_label(self) -> str:
        """``ViT-B-16 / openai``; a model-config file by its file name; random weights as such."""
        name = Path(self.model).name if self.model.endswith(".json") else self.model
        weights = self.pretrained
        if weights and os.sep in weights:
            weights = Path(weights).name
        return f"{name} / {weights or 'random weights'}"

    @property
    def date(self) -> str:
        return (self.created or "")[:10]

    def comparability_notes(self) -> List[str]:
        """Why this number is not comparable to a published one over the full split, if it is not."""
        notes = []
        if self.limit is not None:
            notes.append(f"--limit {self.limit}")
        if self.skipped:
            notes.append(f"partial: {self.skipped} files skipped")
        if self.expected_images and self.num_images is not None and self.num_images != self.expected_images:
            notes.append(f"{self.num_images} of {self.expected_images} images")
        return notes

    @classmethod
    def from_results(cls, results: Mapping[str, Any], source: str) -> "ResultRecord":
        row = history_row(results)
        summary, dataset = results["summary"], results["dataset"]
        return cls(dataset=dataset["name"], protocol=row["protocol"] or "custom", mIoU=_num(summary["mIoU"]),
                   aAcc=_num(summary.get("aAcc")), mAcc=_num(summary.get("mAcc")),
                   per_class={r["class"]: _num(r.get("IoU")) for r in results.get("per_class") or []},
                   model=str(row["model"]), pretrained=row["pretrained"], weights_sha256=row["weights_sha256"],
                   created=row["time"], code_version=row["code_version"], config_hash=row["config_hash"],
                   num_images=dataset.get("num_images"), expected_images=dataset.get("expected_images"),
                   limit=dataset.get("limit"), skipped=len(results.get("skipped") or []),
                   wall_s=row["wall_s"], source=source, method=row["method"], postprocess=row["postprocess"],
                   history_key={"time": row["time"], "dataset": row["dataset"], "config_hash": row["config_hash"]})

    @classmethod
    def from_history_row(cls, row: Mapping[str, Any], source: str) -> "ResultRecord":
        time = row["time"]
        created = time.isoformat() if hasattr(time, "isoformat") and not _missing(time) else None
        return cls(dataset=str(row["dataset"]), protocol=str(row["protocol"]), mIoU=_num(row["mIoU"]),
                   aAcc=_num(row.get("aAcc")), mAcc=_num(row.get("mAcc")), per_class=per_class_iou(row),
                   model=str(row.get("model") or ""), pretrained=_text(row.get("pretrained")),
                   weights_sha256=_text(row.get("weights_sha256")), created=created,
                   code_version=_text(row.get("code_version")), config_hash=_text(row.get("config_hash")),
                   num_images=_int(row.get("num_images")), expected_images=_int(row.get("expected_images")),
                   wall_s=_num(row.get("wall_s")), source=source,
                   method=_text(row.get("method")) or LEGACY_METHOD, postprocess=_text(row.get("postprocess")),
                   history_key={"time": created, "dataset": str(row["dataset"]),
                                "config_hash": _text(row.get("config_hash"))})

    @property
    def identity(self) -> tuple:
        """Same for a run's ``metrics.json`` and its history row: dataset, method, config hash, time."""
        return (self.dataset, self.method, self.config_hash, (self.created or "")[:19])


def _missing(value: Any) -> bool:
    try:
        import pandas as pd

        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _num(value: Any) -> float:
    if value is None or _missing(value):
        return math.nan
    return float(value)


def _int(value: Any) -> Optional[int]:
    return None if value is None or _missing(value) else int(value)


def _text(value: Any) -> Optional[str]:
    return None if value is None or _missing(value) or value == "" else str(value)


def _from_results_file(path: Path) -> ResultRecord:
    try:
        return ResultRecord.from_results(load_results(path), str(path))
    except ResultsFileError as err:
        raise ReportingError(str(err)) from None
    except (KeyError, TypeError) as err:
        raise ReportingError(f"{path} is a damaged results file (missing {err})") from None


def load_path(path: Path) -> List[ResultRecord]:
    """Records from a results file, a work dir, or a reproduce run folder."""
    if path.is_file():
        return [_from_results_file(path)]
    if path.is_dir():
        if (path / RESULTS_FILE).is_file():
            return [_from_results_file(path / RESULTS_FILE)]
        # a reproduce run: <method>/<dataset>/, or <backbone>/<method>/<dataset>/ with several backbones
        found = [p for depth in ("*", "*/*", "*/*/*") for p in sorted(path.glob(f"{depth}/{RESULTS_FILE}"))]
        if not found:
            raise ReportingError(f"{path} holds no {RESULTS_FILE} (nor */{RESULTS_FILE}, */*/{RESULTS_FILE}, "
                                 f"*/*/*/{RESULTS_FILE})")
        return [_from_results_file(p) for p in found]
    raise ReportingError(f"{path} does not exist")


def load_selection(spec: str, like: Sequence[ResultRecord] = ()) -> List[ResultRecord]:
    """Records from a history selection, one per dataset and method.

    With ``like`` (the results being checked), it picks a row for each of their datasets (those the
    selection names, when it names any), of the same method and protocol unless ``method=`` or
    ``protocol=`` is given, and never one of them itself.
    """
    try:
        selection = parse_selection(spec)
        frame = read_history(selection.path)
    except HistoryError as err:
        raise ReportingError(str(err)) from None
    exclude = [r.history_key for r in like if r.history_key]
    if like:
        chosen = []
        for record in like:
            if selection.datasets and record.dataset not in selection.datasets:
                continue
            narrowed = parse_selection(spec)
            narrowed.datasets = [record.dataset]
            narrowed.filters.setdefault("protocol", record.protocol)
            narrowed.filters.setdefault("method", record.method)
            chosen += select_rows(frame, narrowed, exclude)
    else:
        chosen = select_rows(frame, selection, exclude)
    if not chosen:
        raise ReportingError(f"no history row matches {selection.describe()}"
                             + (f" for {', '.join(sorted({r.name for r in like}))} (other than NEW itself)"
                                if like else ""))
    records = [ResultRecord.from_history_row(row, "") for row in chosen]
    for record in records:
        record.source = f"{selection.describe()} [{record.name}]"
    return records


def load_records(spec: str, like: Sequence[ResultRecord] = ()) -> List[ResultRecord]:
    """Records from anything a user may name (see the module docstring)."""
    if looks_like_selection(spec):
        return load_selection(spec, like)
    return load_path(Path(spec))


def load_many(specs: Sequence[str]) -> List[ResultRecord]:
    """Records of several specs; a result named twice (its file and its history row) counts once."""
    records: Dict[tuple, ResultRecord] = {}
    for spec in specs:
        for record in load_records(spec):
            records.setdefault(record.identity, record)
    return list(records.values())
