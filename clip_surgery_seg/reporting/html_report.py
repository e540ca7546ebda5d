"""A one-page HTML report per run, and an index page for a multi-dataset run.

``write_work_dir_report(work_dir)`` is what ``tools/eval.py`` calls after a run: it reads the work
dir's ``metrics.json``, ``confusion.npy`` and ``examples/`` (written by the engine) and calls
``write_run_report``, which writes::

    <out_dir>/report.html             the page (inline CSS, no script, no network)
    <out_dir>/report_files/           what it shows
        iou_per_class.png             per-class IoU, worst first (matplotlib, Agg)
        confusion.png                 the row-normalised confusion matrix, log colour scale
        confusion.csv                 the raw (K, K + 1) counts, with class names
        worst_01.png, best_01.png...  copies of the example panels

Everything is linked by relative paths, so the folder can be moved, zipped or opened from disk.

The markup is in Jinja2 templates (``templates/``, shipped as package data) rendered with
autoescape on and ``StrictUndefined``: this module hands them plain data -- numbers already
formatted, hrefs already relative and percent-encoded, lists of rows -- and every string from the
results (class names, paths, config values) is escaped by Jinja2 on the way out. Nothing here or
in the templates marks data as safe markup.

The page is written last: a ``report.html`` that exists has all its images.

``write_run_index(run_dir)`` (``tools/reproduce.py``) writes ``<run_dir>/report.html``: the methods x
datasets table of the run (ours beside the published numbers, as in its ``table.md``), then every
``*/metrics.json`` and ``*/*/metrics.json`` below it, each linking to its own report.
"""
from __future__ import annotations

import functools
import io
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union
from urllib.parse import quote

import jinja2
import numpy as np

from ..results import (CONFUSION_FILE, EXAMPLES_DIR, REPORT_ASSETS_DIR, RESULTS_FILE, SCHEMA_V1, load_results,
                       method_name, not_run, postprocess_name, ran_keys, read_examples, read_summary, upgrade)
from ..errors import ReportingError, ResultsFileError
from ..fileio import atomic_write_bytes, atomic_write_text
from ..visualization.palettes import palette_for
from ..datasets.catalog import label as dataset_label
from ..datasets.catalog import paper_rank
from .paper import (ELSEWHERE, MISSING, datasets_count, footnote_keys, load_paper, method_label, method_rank,
                    methods_table, verified_text)
from .records import ResultRecord

REPORT_FILE = "report.html"
ASSETS_DIR = REPORT_ASSETS_DIR
INDEX_FILE = REPORT_FILE  # a run folder's page has the same name as a work dir's
TOP_CONFUSIONS = 20
# row-normalised shares below this are drawn as "none" in the confusion heat map (log scale floor)
CONFUSION_FLOOR = 1e-4
TEMPLATES_PACKAGE = "clip_surgery_seg.reporting"  # its templates/ folder, package data of the wheel


# --- inputs ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ReportExample:
    """One image shown in the report: its rendered panel (a PNG, e.g. from
    ``visualization.render_panel``), its name, its own mIoU (percent), and whether it is shown
    among the ``"worst"`` or the ``"best"`` images (None: by its mIoU, see ``write_run_report``)."""

    name: str
    panel: Path
    miou: float
    kind: Optional[str] = None


@dataclass(frozen=True)
class IndexEntry:
    """One dataset of a multi-dataset run, for :func:`write_index_report`.

    ``report`` is its ``report.html`` (None where it has none, e.g. its data was missing);
    ``results`` its results dict (``metrics.json``); ``status`` a short note shown without a report.
    """

    name: str
    report: Optional[Path]
    results: Optional[Mapping[str, Any]] = None
    status: str = ""


# --- templates and plain values ---------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def template_environment() -> jinja2.Environment:
    """The Jinja2 environment of the pages: the package's ``templates/``, every value escaped
    (autoescape on for every template, whatever its name), and a variable a template uses but the
    code did not pass is an error, not an empty string that would hide a missing section."""
    return jinja2.Environment(loader=jinja2.PackageLoader(TEMPLATES_PACKAGE, "templates"), autoescape=True,
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                              keep_trailing_newline=True)


def _render(template: str, **context: Any) -> str:
    return template_environment().get_template(template).render(**context)


def _href(target: Path, base: Path) -> str:
    """A relative URL from folder ``base`` to ``target``, percent-encoded (the template escapes it)."""
    return quote(Path(os.path.relpath(target, base)).as_posix())


def _num(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:.{digits}f}"
    return str(value)


def _pct(part: float, whole: float) -> str:
    return "n/a" if not whole else f"{100 * part / whole:.2f}%"


def _mpl(text: Any) -> str:
    """A class name as matplotlib text: a ``$`` would start mathtext (and fail on a stray one)."""
    return str(text).replace("$", r"\$")


def _hex(rgb: Sequence[int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(int(c) for c in rgb[:3]))


def _kv(key: str, value: Any, badge: Optional[str] = None) -> Dict[str, Any]:
    """One row of a key/value table: the value as text (nested values as compact JSON; none is
    drawn muted), and an optional warning badge after it."""
    if isinstance(value, (dict, list, tuple)):
        text = json.dumps(value, default=str)
    elif value is None:
        text = "none"
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    else:
        text = str(value)
    return {"key": key, "text": text, "muted": value is None, "badge": badge}


# --- checks ---------------------------------------------------------------------------------------

def _check_inputs(results: Mapping[str, Any], confusion: np.ndarray) -> np.ndarray:
    for key in ("summary", "per_class", "dataset"):
        if key not in results:
            raise ReportingError(f"the results have no {key!r}; pass the dict of a metrics.json "
                                 "(clip-surgery-seg/metrics/v1)")
    k = len(results["per_class"])
    matrix = np.asarray(confusion)
    if matrix.ndim != 2 or matrix.shape[0] != k or matrix.shape[1] not in (k, k + 1):
        raise ReportingError(f"the confusion matrix is {matrix.shape}, the results have {k} classes; "
                             f"pass the run's ({k}, {k + 1}) matrix")
    if not np.issubdtype(matrix.dtype, np.integer) or (matrix < 0).any():
        raise ReportingError("the confusion matrix must hold non-negative pixel counts (integers)")
    if matrix.shape[1] == k:
        matrix = np.concatenate([matrix, np.zeros((k, 1), dtype=matrix.dtype)], axis=1)
    matrix = matrix.astype(np.int64)
    # the same run? the per-class counts of metrics.json are the matrix's diagonal and row sums
    for i, row in enumerate(results["per_class"]):
        if "intersect" in row and "label_area" in row:
            if int(row["intersect"]) != int(matrix[i, i]) or int(row["label_area"]) != int(matrix[i].sum()):
                raise ReportingError(f"the confusion matrix does not match the results at class {i} "
                                     f"({row.get('class')!r}); pass the matrix of the same run")
    return matrix


# --- figures --------------------------------------------------------------------------------------

def _iou_chart(per_class: List[Mapping[str, Any]], palette: np.ndarray, miou: Optional[float], path: Path) -> None:
    """Horizontal bars, worst class at the top (like the table), in the dataset's colours."""
    from .plots import _pyplot, _save

    plt = _pyplot()
    order = sorted(range(len(per_class)), key=lambda i: _sort_key(per_class[i]))
    values = [per_class[i]["IoU"] for i in order]
    values = [0.0 if v is None or (isinstance(v, float) and math.isnan(v)) else float(v) for v in values]
    k = len(order)
    font = 8 if k <= 40 else 6 if k <= 100 else 5
    figure, axes = plt.subplots(figsize=(4.5, 1.2 + 0.15 * k))  # 540 px wide: beside the table
    try:
        positions = list(range(k))[::-1]  # the first (worst) at the top
        axes.barh(positions, values, color=[palette[i] / 255.0 for i in order], edgecolor="#333333",
                  linewidth=0.3, height=0.8)
        axes.set_yticks(positions, [_mpl(per_class[i]["class"]) for i in order], fontsize=font)
        axes.set_ylim(-0.6, k - 0.4)
        axes.set_xlim(0, 100)
        axes.set_xlabel("IoU (%)")
        if miou is not None and not math.isnan(miou):
            axes.axvline(miou, color="#c0392b", linestyle="--", linewidth=1, label=f"mIoU {miou:.2f}")
            axes.legend(frameon=False, loc="upper right", fontsize=8)  # the short bars are at the top
        axes.spines[["top", "right"]].set_visible(False)
        axes.set_title("IoU per class, worst first", fontsize=10)
        figure.tight_layout()
        _save(figure, path)
    finally:
        plt.close(figure)


def row_normalized(confusion: np.ndarray) -> np.ndarray:
    """``(K, C)`` counts -> shares of each row (label class); a row without pixels is NaN."""
    m = np.asarray(confusion, dtype=np.float64)
    totals = m.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(totals > 0, m / totals, np.nan)


def _confusion_chart(matrix: np.ndarray, names: Sequence[str], path: Path) -> None:
    """The row-normalised matrix on a log colour scale (see the report's text for why)."""
    from matplotlib.colors import LogNorm
    from matplotlib.ticker import FuncFormatter

    from .plots import _pyplot, _save

    plt = _pyplot()
    k = matrix.shape[0]
    shown = matrix if matrix[:, k:].any() else matrix[:, :k]  # the "outside" column only when used
    shares = row_normalized(shown)
    # zeros and shares under the floor are masked: drawn white, as "no confusion worth a colour"
    masked = np.ma.masked_where(~(shares >= CONFUSION_FLOOR), shares)
    side = min(13.0, 3.0 + 0.06 * k)
    figure, axes = plt.subplots(figsize=(side + 1.2, side))
    try:
        from matplotlib import colormaps

        cmap = colormaps["viridis"].with_extremes(bad="#ffffff")
        image = axes.imshow(masked, cmap=cmap, norm=LogNorm(vmin=CONFUSION_FLOOR, vmax=1.0),
                            interpolation="nearest", aspect="equal")
        step = max(1, math.ceil(k / 60))
        font = 8 if k <= 25 else 6 if k <= 60 else 5
        rows = list(range(0, k, step))
        axes.set_yticks(rows, [_mpl(names[i]) for i in rows], fontsize=font)
        cols = list(range(0, shown.shape[1], step))
        col_names = list(names) + ["(outside)"]
        axes.set_xticks(cols, [_mpl(col_names[i]) for i in cols], fontsize=font, rotation=90)
        axes.set_xlabel("predicted class")
        axes.set_ylabel("label class")
        axes.set_title("share of each label class's pixels (row-normalised), log scale", fontsize=10)
        bar = figure.colorbar(image, ax=axes, fraction=0.046, pad=0.02,
                              format=FuncFormatter(lambda v, _: f"{100 * v:g}%"))
        bar.set_label("share of the label class's pixels")
        figure.tight_layout()
        _save(figure, path)
    finally:
        plt.close(figure)


def _confusion_csv(matrix: np.ndarray, names: Sequence[str]) -> str:
    import csv

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["label \\ predicted"] + list(names) + ["(outside)"])
    for name, row in zip(names, matrix.tolist()):
        writer.writerow([name] + row)
    return buffer.getvalue()


def top_confusions(confusion: np.ndarray, k: int = TOP_CONFUSIONS) -> List[Tuple[int, int, int]]:
    """The ``k`` largest off-diagonal cells of a ``(K, K + 1)`` matrix: ``(label, predicted, pixels)``,
    most pixels first (ties: by label, then predicted); column K is "outside ``[0, K)``"."""
    m = np.asarray(confusion, dtype=np.int64)
    off = m.copy()
    n = min(m.shape)
    off[np.arange(n), np.arange(n)] = 0
    flat = np.flatnonzero(off)
    order = np.lexsort((flat, -off.ravel()[flat]))[:k]  # most pixels first, then in matrix order
    return [(int(i), int(j), int(off[i, j])) for i, j in (divmod(int(flat[o]), m.shape[1]) for o in order)]


# --- the run page's data ---------------------------------------------------------------------------

def _sort_key(row: Mapping[str, Any]) -> Tuple[int, float]:
    iou = row.get("IoU")
    absent = iou is None or (isinstance(iou, float) and math.isnan(iou))
    return (1, 0.0) if absent else (0, float(iou))


def _summary(results: Mapping[str, Any]) -> Dict[str, Any]:
    """The headline numbers, the flags that say whether they cover the whole split, and the facts."""
    s, d = results["summary"], results["dataset"]
    images = d.get("num_images")
    expected = d.get("expected_images")
    short = expected is not None and images is not None and images != expected
    flags = []
    if results.get("partial"):
        count = len(results.get("skipped") or [])
        flags.append({"text": f"PARTIAL: {count} file{'s' if count != 1 else ''} skipped", "css": "warn"})
    if d.get("limit"):
        flags.append({"text": f"limited to {d['limit']} images", "css": "warn"})
    if results.get("complete") is False:
        flags.append({"text": "INCOMPLETE run", "css": "warn"})
    if not flags:
        flags.append({"text": "complete, no file skipped", "css": "ok"})
    return {
        "numbers": [{"key": key, "text": _num(s.get(key))} for key in ("mIoU", "mAcc", "aAcc")],
        "flags": flags,
        "facts": [
            _kv("dataset", f"{d.get('name')} ({d.get('type')})"),
            _kv("images", _num(images, 0), badge=f"of {int(expected)} expected" if short else None),
            _kv("classes", d.get("num_classes", len(results["per_class"]))),
            _kv("data root", d.get("data_root")),
            _kv("created", results.get("created")),
        ],
    }


def _class_rows(results: Mapping[str, Any], matrix: np.ndarray, palette: np.ndarray) -> List[Dict[str, Any]]:
    """The per-class table, worst first (a class without IoU last)."""
    per_class = results["per_class"]
    label_total = float(matrix.sum())
    pred_area = matrix[:, : matrix.shape[0]].sum(axis=0)
    order = sorted(range(len(per_class)), key=lambda i: (_sort_key(per_class[i]), i))
    return [{"rank": rank, "colour": _hex(palette[i]), "name": str(per_class[i].get("class")),
             "iou": _num(per_class[i].get("IoU")), "acc": _num(per_class[i].get("Acc")),
             "labelled": _pct(matrix[i].sum(), label_total), "predicted": _pct(pred_area[i], label_total)}
            for rank, i in enumerate(order, start=1)]


def _confusion_rows(matrix: np.ndarray, names: Sequence[str], top_k: int) -> List[Dict[str, Any]]:
    """The ``top_k`` largest confusions, with their shares of the label class and of all pixels."""
    total = float(matrix.sum())
    row_totals = matrix.sum(axis=1)
    names_out = list(names) + [f"(outside [0, {len(names)}))"]
    return [{"rank": n, "label": names_out[i], "predicted": names_out[j], "pixels": f"{pixels:,}",
             "of_label": _pct(pixels, row_totals[i]), "of_all": _pct(pixels, total)}
            for n, (i, j, pixels) in enumerate(top_confusions(matrix, top_k), start=1)]


def _example_groups(groups: List[Tuple[str, List[Tuple[ReportExample, str]]]]) -> List[Dict[str, Any]]:
    """The worst and the best panels that exist (an empty group is left out)."""
    return [{"heading": heading,
             "figures": [{"name": example.name, "miou": _num(example.miou), "url": f"{ASSETS_DIR}/{quote(file_name)}"}
                         for example, file_name in items]}
            for heading, items in groups if items]


SKIPPED_SHOWN = 200  # the page lists this many skipped files; metrics.json has them all


def _skipped(results: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
    skipped = results.get("skipped") or []
    if not skipped:
        return None
    return {"count": len(skipped), "more": max(0, len(skipped) - SKIPPED_SHOWN),
            "rows": [{"image": str(s.get("image")), "reason": str(s.get("reason"))} for s in skipped[:SKIPPED_SHOWN]]}


# The sections of a results file shown under "Provenance", in this order, whichever exist: v1 files
# have dataset, protocol (with the method in it), model, code, environment and timing; v2 files
# also have method and text.
PROVENANCE_SECTIONS = (("dataset", "Dataset"), ("protocol", "Protocol"), ("method", "Method"),
                       ("model", "Model and weights"), ("text", "Text"), ("code", "Code"),
                       ("environment", "Environment"), ("timing", "Timing (seconds)"))
# keys whose own name would not say what they are on the page
KEY_LABELS = {("model", "sha256"): "weights sha256", ("code", "git_commit"): "git commit",
              ("code", "git_dirty"): "uncommitted changes"}


def _provenance(results: Mapping[str, Any]) -> Dict[str, Any]:
    """Key/value tables of the run and of each section of the results file, and the full config."""
    tables = [{"heading": "Run", "rows": [_kv("config file", results.get("config_file")),
                                          _kv("config hash", results.get("config_hash")),
                                          _kv("created", results.get("created")),
                                          _kv("schema", results.get("schema"))]}]
    for key, heading in PROVENANCE_SECTIONS:
        if key not in results:
            continue
        section = results[key]
        if not isinstance(section, Mapping):
            tables.append({"heading": heading, "rows": [_kv("value", section)]})
            continue
        section = dict(section)
        # the library versions: a table of their own, one package a row, rather than one JSON line
        packages = section.pop("packages", None) if key == "environment" else None
        rows = []
        for name, value in section.items():
            if key == "model" and name == "pretrained" and not value:
                value = "none (random weights)"
            rows.append(_kv(KEY_LABELS.get((key, name), str(name)), value))
        tables.append({"heading": heading, "rows": rows})
        if isinstance(packages, Mapping) and packages:
            tables.append({"heading": "Packages", "rows": [_kv(str(n), v) for n, v in sorted(packages.items())]})
    config = results.get("config")
    return {"tables": tables,
            "config": None if config is None else json.dumps(config, indent=2, sort_keys=True, default=str)}


# --- the pages -------------------------------------------------------------------------------------

def _split_examples(examples: Sequence[ReportExample]) -> Tuple[List[ReportExample], List[ReportExample]]:
    """Worst (lowest mIoU first) and best (highest first): by each example's ``kind`` when every
    one has it; otherwise, sorted by mIoU, the lower half (rounded up) is "worst", the rest "best".
    Pass e.g. the 4 worst and the 4 best images of the run."""
    ranked = sorted(examples, key=lambda e: (math.inf if math.isnan(e.miou) else e.miou, e.name))
    if ranked and all(e.kind in ("worst", "best") for e in ranked):
        return [e for e in ranked if e.kind == "worst"], [e for e in ranked if e.kind == "best"][::-1]
    half = (len(ranked) + 1) // 2
    return ranked[:half], ranked[half:][::-1]


def _copy_examples(examples: Sequence[ReportExample], assets: Path) -> List[Tuple[str, List[Tuple[ReportExample, str]]]]:
    worst, best = _split_examples(examples)
    for example in examples:
        if not Path(example.panel).is_file():
            raise ReportingError(f"example panel {example.panel} does not exist; render it before writing the report")
    groups = []
    keep = set()
    for heading, prefix, items in (("Worst images", "worst", worst), ("Best images", "best", best)):
        named = []
        for n, example in enumerate(items, start=1):
            file_name = f"{prefix}_{n:02d}.png"
            # a copy: the report folder stands alone (moved, zipped, served) without the show dir
            atomic_write_bytes(assets / file_name, Path(example.panel).read_bytes(), fsync=False)
            keep.add(file_name)
            named.append((example, file_name))
        groups.append((heading, named))
    for stale in list(assets.glob("worst_*.png")) + list(assets.glob("best_*.png")):
        if stale.name not in keep:  # from an earlier report of this folder with more examples
            stale.unlink()
    return groups


def write_run_report(out_dir: Union[str, Path], results: Mapping[str, Any], confusion: np.ndarray,
                     examples: Sequence[ReportExample] = (), top_k: int = TOP_CONFUSIONS) -> Path:
    """Write ``out_dir/report.html`` and its ``report_files/``; returns the page's path.

    Args:
        out_dir: the run's folder (created if needed).
        results: the run's results dict (``metrics.json``, schema ``clip-surgery-seg/metrics/v1``).
        confusion: the run's ``(K, K + 1)`` int64 confusion matrix (row = label class, column =
            predicted class, last column = predictions outside ``[0, K)``); ``(K, K)`` is accepted.
            It must match the results' per-class counts.
        examples: panels of chosen images (e.g. the worst and the best few), shown as "worst" or
            "best" by their ``kind``; without one, the lower half by mIoU is "worst", the rest "best".
        top_k: how many confused class pairs to list.

    Raises:
        ReportingError: results without summary/per-class/dataset, a confusion matrix of another
            shape or run, a missing panel file.
    """
    out_dir = Path(out_dir)
    results = upgrade(results) if results.get("schema") == SCHEMA_V1 else results  # a v1 dict says it its way
    matrix = _check_inputs(results, confusion)
    per_class = list(results["per_class"])
    names = [str(row.get("class", i)) for i, row in enumerate(per_class)]
    dataset = results["dataset"]
    palette = palette_for(len(per_class), dataset.get("type"))
    assets = out_dir / ASSETS_DIR
    assets.mkdir(parents=True, exist_ok=True)

    miou = results["summary"].get("mIoU")
    _iou_chart(per_class, palette, miou, assets / "iou_per_class.png")
    _confusion_chart(matrix, names, assets / "confusion.png")
    atomic_write_text(assets / "confusion.csv", _confusion_csv(matrix, names), fsync=False)
    groups = _copy_examples(examples, assets)

    heading = f"{dataset_label(str(dataset.get('name') or 'run'))}: mIoU {_num(miou)}"
    protocol = (results.get("protocol") or {}).get("name")
    model = results.get("model") or {}
    subtitle = [method_label(method_name(results), postprocess_name(results)),
                f"protocol {protocol}" if protocol else None, model.get("name"),
                model.get("pretrained") or ("random weights" if model else None)]
    skipped = _skipped(results)
    nav = [("summary", "summary"), ("classes", "per class"), ("confusion", "confusions"),
           *([("examples", "examples")] if any(items for _, items in groups) else []),
           *([("skipped", "skipped files")] if skipped else []), ("provenance", "provenance")]
    page = _render("run_report.html", title=f"{heading} - clip-surgery-seg report", heading=heading,
                   subtitle=[str(part) for part in subtitle if part], nav=nav, assets=ASSETS_DIR,
                   summary=_summary(results), classes=_class_rows(results, matrix, palette),
                   confusions={"top_k": top_k, "rows": _confusion_rows(matrix, names, top_k)},
                   examples=_example_groups(groups), skipped=skipped, provenance=_provenance(results))
    path = out_dir / REPORT_FILE
    atomic_write_text(path, page, fsync=False)
    return path


# --- the index page of a run folder ------------------------------------------------------------------

def _methods_table(entries: Sequence[IndexEntry], out_dir: Path) -> Optional[Dict[str, Any]]:
    """The methods x datasets table of the entries' results, as ``tools/reproduce.py``'s ``table.md``
    computes it (:func:`paper.methods_table`: rows, cells, published numbers, averages), as plain
    data for the template: each of our numbers with the link to its run's report and the notes that
    say it is not over the full split. None when no entry has results."""
    records, links = [], {}
    for entry in entries:
        if not entry.results:
            continue
        # the report's path names the record, so that a cell finds its link (a name may repeat)
        source = str(entry.report) if entry.report is not None else entry.name
        try:
            record = ResultRecord.from_results(entry.results, source)
        except (KeyError, TypeError, ValueError):
            continue  # a results dict without what the table needs: listed below the table only
        records.append(record)
        if entry.report is not None:
            links[source] = _href(Path(entry.report), out_dir)
    if not records:
        return None
    table = methods_table(records, load_paper())
    keys = footnote_keys(table)
    rows = []
    for row in table.rows:
        cells = []
        for dataset in table.datasets:
            cell = row.cells[dataset]
            published, record = cell.published, cell.record
            partial = record.comparability_notes() if record is not None else []
            cells.append({
                "ours": _num(cell.ours), "href": links.get(record.source) if record is not None else None,
                "published": published.text if published is not None else MISSING,
                "elsewhere": cell.mark,
                "key": keys[published.reference] if published is not None else "",
                "partial": partial, "notes": [note for note in cell.notes if note not in partial],
            })
        ours, paper, count = row.average(table.datasets)
        of = datasets_count(count, len(table.datasets))
        rows.append({
            "label": row.label, "protocol": row.protocol_label, "model": row.model, "cells": cells,
            "random": any(c.record is not None and not c.record.pretrained for c in row.cells.values()),
            "average": {"ours": _num(ours), "published": _num(paper),
                        "of": f"{of} datasets" if of else ""},
        })
    return {
        "datasets": [{"label": dataset_label(d), "muted": all(r.cells[d].record is None for r in table.rows)}
                     for d in table.datasets],
        "rows": rows, "elsewhere": ELSEWHERE, "paper": "results/paper.csv",
        # rows whose every published number is marked for the row's sake (overridden settings, model)
        "row_notes": [{"row": row.heading, "why": "; ".join(row.differences)}
                      for row in table.rows if row.differences],
        "footnotes": [{"key": key, "source": source, "table": table_name, "protocol": protocol,
                       "verified": verified_text(verified)}
                      for (source, table_name, protocol, verified), key in keys.items()],
    }


def _run_row(entry: IndexEntry, out_dir: Path) -> Dict[str, Any]:
    """One line of the list of runs: its numbers and its report, or why it has none."""
    results = entry.results or {}
    summary, dataset = results.get("summary") or {}, results.get("dataset") or {}
    if entry.report is not None and not Path(entry.report).is_file():
        raise ReportingError(f"report {entry.report} of {entry.name} does not exist; write it first "
                             "(write_run_report) or leave the entry's report out")
    flags = [{"text": "partial", "css": "warn"}] if results.get("partial") else []
    if dataset.get("limit"):
        flags.append({"text": f"limit {dataset['limit']}", "css": "warn"})
    return {"label": _entry_label(entry.name), "flags": flags, "miou": _num(summary.get("mIoU")),
            "macc": _num(summary.get("mAcc")), "aacc": _num(summary.get("aAcc")),
            "images": _num(dataset.get("num_images"), 0),
            "protocol": str((results.get("protocol") or {}).get("name") or ""),
            "href": _href(Path(entry.report), out_dir) if entry.report is not None else None,
            "status": entry.status or "no report"}


def write_index_report(out_dir: Union[str, Path], runs: Sequence[IndexEntry], title: str = "clip-surgery-seg run") -> Path:
    """Write ``out_dir/report.html``: the methods x datasets table of the runs' results (ours beside
    the published numbers, one row per method), then every run with its numbers and its report.

    Like is compared with like: each row is one method under one protocol, post-processing and
    model, each column one dataset, and the average column averages a row's datasets only -- never
    across methods. The runs are listed in the paper's order of datasets, then the field's order of
    methods; an entry's ``name`` may be a dataset name or a folder path below ``out_dir`` that starts
    with one (``ade20k/maskclip``).
    A run without a report shows its status (e.g. "missing data").

    Raises:
        ReportingError: an entry's ``report`` that does not exist; an unreadable ``results/paper.csv``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ordered = sorted(runs, key=lambda e: _entry_order(e.name))
    run_rows = [_run_row(entry, out_dir) for entry in ordered]
    page = _render("run_index.html", title=title, table=_methods_table(ordered, out_dir), runs=run_rows)
    path = out_dir / INDEX_FILE
    atomic_write_text(path, page, fsync=False)
    return path


def _entry_name(parts: Sequence[str], results: Mapping[str, Any]) -> str:
    """``<dataset>`` or ``<dataset>/<other level>`` whichever way the folders nest
    (``<dataset>/<method>`` or ``tools/reproduce.py``'s ``<method>/<dataset>``)."""
    dataset = str((results.get("dataset") or {}).get("name") or parts[-1])
    others = [p for p in parts if p != dataset]
    return "/".join([dataset, *others])


def _entry_order(name: str) -> Tuple[int, int, str]:
    """Sort key of an entry: the paper's order of datasets, then the field's order of methods (as the
    table's rows), then the name."""
    dataset, _, rest = name.partition("/")
    return paper_rank(dataset), method_rank(rest), name


def _entry_label(name: str) -> str:
    """``ade20k`` -> ``ADE20K-150``; ``ade20k/maskclip`` -> ``ADE20K-150 / MaskCLIP``; a folder that
    is not a method's name as it is (``ade20k/a`` -> ``ADE20K-150 / a``)."""
    dataset, _, rest = name.partition("/")
    return dataset_label(dataset) + (f" / {method_label(rest)}" if rest else "")


# --- from the files of a run ----------------------------------------------------------------------

def load_confusion(work_dir: Union[str, Path]) -> np.ndarray:
    """``<work_dir>/confusion.npy`` (written by the engine beside ``metrics.json``)."""
    path = Path(work_dir) / CONFUSION_FILE
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise ResultsFileError(f"{path} does not exist; it is written with metrics.json by tools/eval.py "
                               "(rerun the evaluation to get a report)") from None
    except (OSError, ValueError) as err:
        raise ResultsFileError(f"{path} is not a readable confusion matrix ({err}); rerun the evaluation") from err


def work_dir_examples(work_dir: Union[str, Path], created: Optional[str]) -> List[ReportExample]:
    """The example panels the engine wrote for the run of ``metrics.json`` created at ``created``
    (none when the examples folder is missing or from another run)."""
    folder = Path(work_dir) / EXAMPLES_DIR
    try:
        listing = read_examples(folder)
    except (OSError, ValueError):
        return []
    if listing.get("created") != created:
        return []
    return [ReportExample(name=str(e["name"]), panel=folder / e["panel"],
                          miou=float("nan") if e.get("miou") is None else float(e["miou"]), kind=e.get("kind"))
            for e in listing.get("examples", [])]


def write_work_dir_report(work_dir: Union[str, Path]) -> Path:
    """``<work_dir>/report.html`` from the run's ``metrics.json``, ``confusion.npy`` and example panels.

    Raises:
        ResultsFileError: no complete ``metrics.json`` or no ``confusion.npy``;
        ReportingError: files that do not belong together (see :func:`write_run_report`).
    """
    work_dir = Path(work_dir)
    results = load_results(work_dir / RESULTS_FILE)
    confusion = load_confusion(work_dir)
    return write_run_report(work_dir, results, confusion, work_dir_examples(work_dir, results.get("created")))


def write_run_index(run_dir: Union[str, Path], title: Optional[str] = None) -> Path:
    """``<run_dir>/report.html`` for a folder of runs (``tools/reproduce.py``): the methods x datasets
    table and every ``*/metrics.json`` and ``*/*/metrics.json`` below it, each with its own report
    (written here where it is missing or older than its results). A run whose report cannot be
    written is listed with the reason instead of a link; so are the datasets whose data was missing
    and the runs that failed, as the run's ``summary.json`` records them."""
    run_dir = Path(run_dir)
    entries = []
    summary = _read_summary(run_dir)
    ran = _ran_in_this_run(summary)
    for results_file in sorted(p for depth in ("*", "*/*", "*/*/*") for p in run_dir.glob(f"{depth}/{RESULTS_FILE}")):
        folder = results_file.parent
        if ran is not None and folder.relative_to(run_dir).as_posix() not in ran:
            continue  # an earlier run's file in a reused folder: this run did not produce it
        name = folder.relative_to(run_dir).as_posix()
        try:
            results = load_results(results_file)
            name = _entry_name(folder.relative_to(run_dir).parts, results)
        except ReportingError as err:
            entries.append(IndexEntry(name, None, None, status=f"no results: {' '.join(str(err).split())}"))
            continue
        page = folder / REPORT_FILE
        try:
            if not page.is_file() or page.stat().st_mtime < results_file.stat().st_mtime:
                write_work_dir_report(folder)
        except ReportingError as err:
            entries.append(IndexEntry(name, None, results, status=f"no report: {' '.join(str(err).split())}"))
            continue
        entries.append(IndexEntry(name, page, results))
    listed = {entry.name for entry in entries}
    entries += [entry for entry in _not_run(summary) if entry.name not in listed]
    return write_index_report(run_dir, entries, title=title or f"clip-surgery-seg run {run_dir.name}")


def _read_summary(run_dir: Path) -> Optional[Mapping[str, Any]]:
    """A reproduce run's ``summary.json``; None for a folder without one or an unreadable one."""
    try:
        return read_summary(run_dir)
    except (OSError, ValueError):
        return None


def _ran_in_this_run(summary: Optional[Mapping[str, Any]]) -> Optional[set]:
    """``<method>/<dataset>`` of every evaluation a reproduce run's ``summary.json`` says ran
    (:func:`~clip_surgery_seg.results.ran_keys`); None without one or for a damaged one (every
    results file in the folder is then listed)."""
    if summary is None:
        return None
    try:
        return set(ran_keys(summary))
    except (KeyError, TypeError, AttributeError):
        return None


def _not_run(summary: Optional[Mapping[str, Any]]) -> List[IndexEntry]:
    """The datasets whose data was missing and the runs that failed, from ``tools/reproduce.py``'s
    ``summary.json`` (none without one): they have no ``metrics.json`` to find."""
    if summary is None:
        return []  # not a reproduce run: the results files are the list
    try:
        found = not_run(summary)
    except (KeyError, TypeError, ValueError):
        return []  # a damaged summary: the results files are the list
    return [IndexEntry(dataset, None, None, status=f"missing data: {reason}") if method is None else
            IndexEntry(f"{dataset}/{method}", None, None, status=f"failed: {reason}")
            for dataset, method, reason in found]
