"""Compare a new result against a baseline: what moved, and whether it is a regression.

A regression is an mIoU drop of more than ``tolerance`` points, or a per-class IoU drop of more than
``class_tolerance`` points (both finite and >= 0: a NaN tolerance would let every drop pass). Only
results of the same kind (:class:`~clip_surgery_seg.reporting.records.Kind`: dataset, method,
protocol and its overridden settings, post-processing, model, model config, weights) are compared
unless forced; a part one side did not record agrees with anything.

An mIoU that is not a finite number is never a pass: in the new result it is a regression (whatever
the baseline holds); in the baseline (with a finite new value) there is nothing to compare against,
and the comparison is refused as bad input. A per-class IoU may be undefined (NaN: the class
is absent from the labels and from the predictions); such classes are not compared.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Sequence, Tuple

from ..datasets.catalog import paper_rank
from ..tables import text_table
from ..errors import MismatchError, ReportingError
from ..named import is_number
from .paper import method_rank
from .records import ResultRecord, describe_differences

SUMMARY_METRICS = ("mIoU", "mAcc", "aAcc")
GATED_METRIC = "mIoU"
# deltas are differences of two-decimal numbers; rounding keeps float noise from crossing a tolerance
_DIGITS = 6


@dataclass
class Delta:
    """One metric or class: its baseline and new value, and whether the drop is a regression."""

    name: str
    baseline: float
    new: float
    regression: bool = False

    @property
    def delta(self) -> float:
        return round(self.new - self.baseline, _DIGITS)

    @property
    def not_a_number(self) -> bool:
        """The new value is NaN or infinite: a broken number, never a pass."""
        return not math.isfinite(self.new)


@dataclass
class DatasetComparison:
    dataset: str
    new: ResultRecord
    baseline: ResultRecord
    tolerance: float
    class_tolerance: float
    summary: List[Delta] = field(default_factory=list)
    moved_classes: List[Delta] = field(default_factory=list)  # beyond class_tolerance; drops first
    warnings: List[str] = field(default_factory=list)

    @property
    def regressions(self) -> List[Delta]:
        return [d for d in self.summary + self.moved_classes if d.regression]

    def regression_message(self) -> str:
        parts = [f"{d.name} is {d.new} (not a number)" if d.not_a_number else f"{d.name} {d.delta:+.2f}"
                 for d in self.summary if d.regression]
        classes = [f"{d.name} ({d.delta:+.2f})" for d in self.moved_classes if d.regression]
        if classes:
            parts.append(f"class IoU dropped: {', '.join(classes)}")
        return f"{self.dataset}: " + "; ".join(parts)


def _dropped(delta: float, tolerance: float) -> bool:
    return not math.isnan(delta) and delta < -tolerance


def check_tolerance(value: float, name: str = "tolerance") -> float:
    """``value`` if it is a finite number >= 0; ValueError otherwise (no drop is "more than" NaN)."""
    if not is_number(value) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number of points >= 0, not {value!r}")
    return float(value)


def compare_records(new: ResultRecord, baseline: ResultRecord, tolerance: float = 0.1,
                    class_tolerance: float = 1.0) -> DatasetComparison:
    """Summary deltas, and the classes that moved by more than ``class_tolerance``."""
    tolerance = check_tolerance(tolerance)
    class_tolerance = check_tolerance(class_tolerance, "class_tolerance")
    result = DatasetComparison(new.name, new, baseline, tolerance, class_tolerance)
    for metric in SUMMARY_METRICS:
        delta = Delta(metric, getattr(baseline, metric), getattr(new, metric))
        if metric != GATED_METRIC:
            pass  # shown, not gated (an older history row may not hold them)
        elif delta.not_a_number:
            delta.regression = True
        elif not math.isfinite(delta.baseline):
            raise ReportingError(f"{baseline.source}: the baseline's {metric} is {delta.baseline} (not a number), "
                                 f"so {new.dataset} cannot be compared; choose another baseline (e.g. an earlier "
                                 "history row, @-2)")
        else:
            delta.regression = _dropped(delta.delta, tolerance)
        result.summary.append(delta)
    common = [c for c in new.per_class if c in baseline.per_class]
    only_one = (set(new.per_class) ^ set(baseline.per_class))
    if only_one:
        result.warnings.append(f"{len(only_one)} classes are in only one of the results (compared: {len(common)})")
    moved = []
    for name in common:
        delta = Delta(name, baseline.per_class[name], new.per_class[name])
        if math.isnan(delta.delta) or abs(delta.delta) <= class_tolerance:
            continue  # undefined IoU (class absent) or within tolerance
        delta.regression = _dropped(delta.delta, class_tolerance)
        moved.append(delta)
    result.moved_classes = sorted(moved, key=lambda d: (not d.regression, d.delta if d.regression else -d.delta))
    result.warnings += _provenance_warnings(new, baseline)
    return result


def _provenance_warnings(new: ResultRecord, baseline: ResultRecord) -> List[str]:
    """Differences that do not block a comparison but explain a moved number."""
    notes = []  # (another model or weights is not a note: pair_records refuses it unless forced)
    if new.config_hash and baseline.config_hash and new.config_hash != baseline.config_hash:
        notes.append(f"configs differ (hash {baseline.config_hash[:8]} -> {new.config_hash[:8]})")
    if new.num_images != baseline.num_images:
        notes.append(f"image counts differ: {baseline.num_images} -> {new.num_images}")
    for record, which in ((new, "new"), (baseline, "baseline")):
        flags = record.comparability_notes()
        if record.limit is not None or record.skipped:
            notes.append(f"the {which} result is not a full run ({'; '.join(flags)})")
    return notes


#: what pair_records pairs on; the other parts of a kind must agree
PAIRED_ON = ("dataset", "method")


def pair_records(new: Sequence[ResultRecord], baseline: Sequence[ResultRecord], force: bool = False
                 ) -> Tuple[List[Tuple[ResultRecord, ResultRecord]], List[str], List[str]]:
    """Match new and baseline results by dataset and method; refuse mismatches unless ``force``.

    A pair must be of one kind (protocol and its overridden settings, post-processing, model, model
    config, weights; unknown parts agree): otherwise it is refused (MismatchError naming what
    differs), or with ``force`` compared with a warning. Returns the pairs, notes on what was left
    out, and the warnings (only when forced).
    """
    notes: List[str] = []
    warnings: List[str] = []
    new_by = _one_per_key(new, "NEW")
    base_by = _one_per_key(baseline, "BASELINE")
    if force and len(new_by) == 1 and len(base_by) == 1 and set(new_by) != set(base_by):
        (n,), (b,) = new_by.values(), base_by.values()
        notes.append(f"forced: comparing {n.name} with {b.name}")
        pairs = [(n, b)]
    else:
        only_new, only_base = _names(new_by, base_by), _names(base_by, new_by)
        if only_new or only_base:
            what = "datasets" if {k[0] for k in new_by} != {k[0] for k in base_by} else "methods"
            message = f"{what} differ: " + "; ".join(
                part for part in (f"only in NEW: {', '.join(only_new)}" if only_new else "",
                                  f"only in BASELINE: {', '.join(only_base)}" if only_base else "") if part)
            if not force or not set(new_by) & set(base_by):
                raise MismatchError(message + ("" if force else " (pass --force to compare the common ones)"))
            notes.append(f"forced: {message}; comparing the common ones")
        common = sorted(set(new_by) & set(base_by), key=_order)
        pairs = [(new_by[key], base_by[key]) for key in common]
    for n, b in pairs:
        differences = [d for d in n.kind.differences(b.kind) if d.aspect not in PAIRED_ON]
        if not differences:
            continue
        if not force:
            raise MismatchError(f"the baseline of {n.name} is of another kind: {describe_differences(differences)}; "
                                "numbers of different kinds are not comparable (pass --force to compare anyway)")
        warnings.append(f"forced: {n.name} compared with a baseline of another kind: "
                        f"{describe_differences(differences)}")
    return pairs, notes, warnings


def _order(key: Tuple[str, str]) -> tuple:
    """Datasets in the catalogue's order, then methods in the registry's."""
    dataset, method = key
    return paper_rank(dataset), dataset, method_rank(method), method


def _names(by: Dict[Tuple[str, str], ResultRecord], other: Dict[Tuple[str, str], ResultRecord]) -> List[str]:
    return [by[key].name for key in sorted(set(by) - set(other), key=_order)]


def _one_per_key(records: Sequence[ResultRecord], side: str) -> Dict[Tuple[str, str], ResultRecord]:
    """The records by (dataset, method); two of the same are refused."""
    by: Dict[Tuple[str, str], ResultRecord] = {}
    for record in records:
        key = (record.dataset, record.method)
        if key in by:
            raise MismatchError(f"{side} holds two results for {record.name} ({by[key].source} and "
                                f"{record.source}); name one")
        by[key] = record
    return by


# --- text ---------------------------------------------------------------------------------------

def _fmt(value: float) -> str:
    return "nan" if math.isnan(value) else f"{value:.2f}"


def format_comparison(result: DatasetComparison) -> str:
    """The summary table, the classes that moved, and notes, for the terminal."""
    new, base = result.new, result.baseline
    method = "" if new.name == new.dataset else f"method {new.method}, "
    lines = [f"== {new.dataset} ({method}protocol {new.protocol})",
             f"   new:      {new.source}  [{new.date or '?'}, {new.code_version or '?'}]  {new.kind.label}",
             f"   baseline: {base.source}  [{base.date or '?'}, {base.code_version or '?'}]  {base.kind.label}"]
    rows = []
    for d in result.summary:
        verdict = ("" if not d.regression else "REGRESSION (not a number)" if d.not_a_number else
                   f"REGRESSION (tolerance {result.tolerance:g})")
        rows.append([d.name, _fmt(d.baseline), _fmt(d.new), "nan" if math.isnan(d.delta) else f"{d.delta:+.2f}",
                     verdict])
    lines.append(text_table(["metric", "baseline", "new", "delta", ""], rows, numeric=("baseline", "new", "delta")))
    if result.moved_classes:
        lines.append(f"classes that moved more than {result.class_tolerance:g} IoU (drops first):")
        rows = [[d.name, _fmt(d.baseline), _fmt(d.new), f"{d.delta:+.2f}", "REGRESSION" if d.regression else ""]
                for d in result.moved_classes]
        lines.append(text_table(["class", "baseline", "new", "delta", ""], rows, numeric=("baseline", "new", "delta")))
    else:
        lines.append(f"no class moved more than {result.class_tolerance:g} IoU")
    lines += [f"note: {w}" for w in result.warnings]
    return "\n".join(lines)
