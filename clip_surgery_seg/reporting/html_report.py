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
Every string from the results (class names, paths, config values) is HTML-escaped.

The page is written last: a ``report.html`` that exists has all its images.

``write_run_index(run_dir)`` (``tools/reproduce.py``) writes ``<run_dir>/report.html``: a table of
every ``*/metrics.json`` and ``*/*/metrics.json`` below it, each linking to its own report.
"""
from __future__ import annotations

import html
import io
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, List, Mapping, Optional, Sequence, Tuple, Union
from urllib.parse import quote

import numpy as np

from ..results import CONFUSION_FILE, EXAMPLES_DIR, RESULTS_FILE, load_results, read_examples
from ..errors import ReportingError, ResultsFileError
from ..fileio import atomic_write_bytes, atomic_write_text
from ..visualization.palettes import palette_for
from ..datasets.catalog import label as dataset_label
from ..datasets.catalog import paper_rank

REPORT_FILE = "report.html"
ASSETS_DIR = "report_files"
INDEX_FILE = REPORT_FILE  # a run folder's page has the same name as a work dir's
TOP_CONFUSIONS = 20
# row-normalised shares below this are drawn as "none" in the confusion heat map (log scale floor)
CONFUSION_FLOOR = 1e-4


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


# --- small helpers --------------------------------------------------------------------------------

def _e(value: Any) -> str:
    """Text for HTML: every ``& < > " '`` escaped."""
    return html.escape(str(value), quote=True)


def _href(target: Path, base: Path) -> str:
    """A relative URL from folder ``base`` to ``target``, percent-encoded, then escaped for an attribute."""
    relative = Path(os.path.relpath(target, base)).as_posix()
    return _e(quote(relative))


def _num(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:.{digits}f}"
    return _e(value)


def _pct(part: float, whole: float) -> str:
    return "n/a" if not whole else f"{100 * part / whole:.2f}%"


def _mpl(text: Any) -> str:
    """A class name as matplotlib text: a ``$`` would start mathtext (and fail on a stray one)."""
    return str(text).replace("$", r"\$")


def _hex(rgb: Sequence[int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(int(c) for c in rgb[:3]))


class _Html(str):
    """Markup built here from escaped parts: put in a table as it is."""


def _value(value: Any) -> str:
    if isinstance(value, _Html):
        return value
    if isinstance(value, (dict, list, tuple)):
        return _e(json.dumps(value, default=str))
    if value is None:
        return "<span class=muted>none</span>"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return _e(value)


def _kv_table(rows: Iterable[Tuple[str, Any]], css: str = "kv") -> str:
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_value(v)}</td></tr>" for k, v in rows)
    return f"<table class={css}>{body}</table>"


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1200px;
padding:0 16px 40px;color:#1a1a1a}
h1{font-size:24px;margin:20px 0 4px}h2{font-size:19px;margin:30px 0 8px;border-bottom:1px solid #ddd}
h3{font-size:15px;margin:18px 0 6px}
nav a{margin-right:14px}table{border-collapse:collapse;margin:6px 0}
th,td{padding:2px 10px 2px 0;text-align:left;vertical-align:top}td.n,th.n{text-align:right}
table.grid td,table.grid th{border-bottom:1px solid #eee;padding:2px 8px}
table.kv th{font-weight:600;color:#444;white-space:nowrap}table.kv td{word-break:break-all}
.badge{display:inline-block;padding:1px 8px;border-radius:9px;font-size:12px;font-weight:600;margin-left:6px}
.warn{background:#ffe1a8;color:#6b4000}.ok{background:#d5f0d5;color:#1d5c1d}.muted{color:#888}
.sw{display:inline-block;width:11px;height:11px;border:1px solid #555;margin-right:6px;vertical-align:-1px}
.big{font-size:22px;font-weight:600}
img.fig{max-width:100%;height:auto;border:1px solid #eee}figure{margin:0}
.row{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}.row img.fig{max-width:540px}table.grid.small{font-size:13px}
.examples{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:14px}
figcaption{font-size:13px;color:#333;margin-bottom:4px}pre{background:#f6f6f6;padding:8px;overflow:auto;
max-height:420px;font-size:12px}
"""


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
            f"<meta name=viewport content=\"width=device-width, initial-scale=1\">"
            f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>\n{body}\n</body></html>\n")


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


# --- sections --------------------------------------------------------------------------------------

def _sort_key(row: Mapping[str, Any]) -> Tuple[int, float]:
    iou = row.get("IoU")
    absent = iou is None or (isinstance(iou, float) and math.isnan(iou))
    return (1, 0.0) if absent else (0, float(iou))


def _summary_section(results: Mapping[str, Any]) -> str:
    s, d = results["summary"], results["dataset"]
    images = d.get("num_images")
    expected = d.get("expected_images")
    image_text = _num(images, 0) if images is not None else "n/a"
    if expected is not None and images is not None and images != expected:
        image_text += f" <span class='badge warn'>of {int(expected)} expected</span>"
    flags = []
    if results.get("partial"):
        count = len(results.get("skipped") or [])
        flags.append(f"<span class='badge warn'>PARTIAL: {count} file{'s' if count != 1 else ''} skipped</span>")
    if d.get("limit"):
        flags.append(f"<span class='badge warn'>limited to {_e(d['limit'])} images</span>")
    if results.get("complete") is False:
        flags.append("<span class='badge warn'>INCOMPLETE run</span>")
    if not flags:
        flags.append("<span class='badge ok'>complete, no file skipped</span>")
    rows = "".join(f"<td class=n><div class=big>{_num(s.get(key))}</div>{key}</td>" for key in ("mIoU", "mAcc", "aAcc"))
    facts = _kv_table([
        ("dataset", f"{d.get('name')} ({d.get('type')})"),
        ("images", _Html(image_text)),
        ("classes", d.get("num_classes", len(results["per_class"]))),
        ("data root", d.get("data_root")),
        ("created", results.get("created")),
    ])
    return (f"<section id=summary><h2>Summary</h2><table><tr>{rows}</tr></table>"
            f"<p>{' '.join(flags)}</p>{facts}</section>")


def _class_section(results: Mapping[str, Any], matrix: np.ndarray, palette: np.ndarray) -> str:
    per_class = results["per_class"]
    label_total = float(matrix.sum())
    pred_area = matrix[:, : matrix.shape[0]].sum(axis=0)
    order = sorted(range(len(per_class)), key=lambda i: (_sort_key(per_class[i]), i))
    lines = []
    for rank, i in enumerate(order, start=1):
        row = per_class[i]
        iou = row.get("IoU")
        lines.append(
            f"<tr><td class=n>{rank}</td><td><span class=sw style=\"background:{_hex(palette[i])}\"></span>"
            f"{_e(row.get('class'))}</td><td class=n>{_num(iou)}</td>"
            f"<td class=n>{_num(row.get('Acc'))}</td><td class=n>{_pct(matrix[i].sum(), label_total)}</td>"
            f"<td class=n>{_pct(pred_area[i], label_total)}</td></tr>")
    head = ("<tr><th class=n>#</th><th>class</th><th class=n>IoU</th><th class=n>Acc</th>"
            "<th class=n>labelled</th><th class=n>predicted</th></tr>")
    return (f"<section id=classes><h2>Per-class IoU</h2>"
            f"<p>Worst first; a class with no labelled and no predicted pixel has no IoU (n/a, last) and "
            f"is left out of the mIoU. Labelled / predicted: the class's share of all labelled pixels "
            f"in the label maps / in the predictions (on labelled pixels).</p>"
            f"<div class=row><a href=\"{ASSETS_DIR}/iou_per_class.png\"><img class=fig "
            f"src=\"{ASSETS_DIR}/iou_per_class.png\" alt=\"IoU per class bar chart\"></a>"
            f"<table class=\"grid small\">{head}{''.join(lines)}</table></div></section>")


def _confusion_section(matrix: np.ndarray, names: Sequence[str], top_k: int) -> str:
    total = float(matrix.sum())
    row_totals = matrix.sum(axis=1)
    names_out = list(names) + [f"(outside [0, {len(names)}))"]
    lines = [f"<tr><td class=n>{n}</td><td>{_e(names_out[i])}</td><td>&rarr;</td><td>{_e(names_out[j])}</td>"
             f"<td class=n>{pixels:,}</td><td class=n>{_pct(pixels, row_totals[i])}</td>"
             f"<td class=n>{_pct(pixels, total)}</td></tr>"
             for n, (i, j, pixels) in enumerate(top_confusions(matrix, top_k), start=1)]
    head = ("<tr><th class=n>#</th><th>label</th><th></th><th>predicted as</th><th class=n>pixels</th>"
            "<th class=n>of the label class</th><th class=n>of all labelled</th></tr>")
    table = (f"<table class=grid>{head}{''.join(lines)}</table>" if lines
             else "<p class=muted>No confusion: every labelled pixel was predicted right.</p>")
    return (
        "<section id=confusion><h2>Confusions</h2>"
        "<p>Row <i>i</i> is the label class, column <i>j</i> the predicted class; each row is divided by "
        "its label pixels, so a rare class's row is as readable as a frequent one's (mIoU weighs them "
        "alike). The colour scale is <b>logarithmic</b> (from 0.01% to 100%): the diagonal holds most "
        "of each row, and the confusions that cost IoU are 0.1&ndash;10% shares that a linear scale "
        "would draw in the same colour as zero. White: no pixel (or under 0.01%).</p>"
        f"<a href=\"{ASSETS_DIR}/confusion.png\"><img class=fig src=\"{ASSETS_DIR}/confusion.png\" "
        "alt=\"row-normalised confusion matrix\"></a>"
        f"<p>Raw counts: <a href=\"{ASSETS_DIR}/confusion.csv\">confusion.csv</a>.</p>"
        f"<h3>The {top_k} largest confusions (by pixels)</h3>{table}</section>")


def _examples_section(groups: List[Tuple[str, List[Tuple[ReportExample, str]]]]) -> str:
    if not any(items for _, items in groups):
        return ""
    parts = ["<section id=examples><h2>Examples</h2><p>image | ground truth / prediction | errors "
             "(red: wrong pixels, grey: ignored); mIoU of the image alone. Click a panel for its full size.</p>"]
    for heading, items in groups:
        if not items:
            continue
        parts.append(f"<h3>{_e(heading)}</h3><div class=examples>")
        for example, file_name in items:
            url = f"{ASSETS_DIR}/{_e(quote(file_name))}"
            parts.append(f"<figure><figcaption>{_e(example.name)} &mdash; mIoU {_num(example.miou)}</figcaption>"
                         f"<a href=\"{url}\"><img class=fig src=\"{url}\" alt=\"{_e(example.name)}\"></a></figure>")
        parts.append("</div>")
    parts.append("</section>")
    return "".join(parts)


def _skipped_section(results: Mapping[str, Any]) -> str:
    skipped = results.get("skipped") or []
    if not skipped:
        return ""
    rows = "".join(f"<tr><td>{_e(s.get('image'))}</td><td>{_e(s.get('reason'))}</td></tr>" for s in skipped[:200])
    more = f"<p class=muted>and {len(skipped) - 200} more (see metrics.json)</p>" if len(skipped) > 200 else ""
    return (f"<section id=skipped><h2>Skipped files ({len(skipped)})</h2>"
            f"<table class=grid><tr><th>image</th><th>reason</th></tr>{rows}</table>{more}</section>")


def _provenance_section(results: Mapping[str, Any]) -> str:
    model = results.get("model") or {}
    code = results.get("code") or {}
    env = dict(results.get("environment") or {})
    packages = env.pop("packages", None) or {}
    run = [("config file", results.get("config_file")), ("config hash", results.get("config_hash")),
           ("created", results.get("created")), ("schema", results.get("schema"))]
    weights = [("model", model.get("name")), ("pretrained", model.get("pretrained") or "none (random weights)"),
               ("weights sha256", model.get("sha256")), ("seed", model.get("seed")),
               ("quick_gelu", model.get("quick_gelu"))]
    code_rows = [("version", code.get("version")), ("git commit", code.get("git_commit")),
                 ("uncommitted changes", code.get("git_dirty"))]
    parts = ["<section id=provenance><h2>Provenance</h2>",
             "<h3>Run</h3>", _kv_table(run), "<h3>Weights</h3>", _kv_table(weights),
             "<h3>Protocol</h3>", _kv_table((results.get("protocol") or {}).items()),
             "<h3>Code</h3>", _kv_table(code_rows),
             "<h3>Environment</h3>", _kv_table(env.items())]
    if packages:
        parts += ["<h3>Packages</h3>", _kv_table(sorted(packages.items()))]
    if results.get("timing"):
        parts += ["<h3>Timing (seconds)</h3>", _kv_table(results["timing"].items())]
    if results.get("config") is not None:
        config = json.dumps(results["config"], indent=2, sort_keys=True, default=str)
        parts.append(f"<details><summary>The full config</summary><pre>{_e(config)}</pre></details>")
    parts.append("</section>")
    return "".join(parts)


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

    name = dataset.get("name") or "run"
    title = f"{dataset_label(str(name))}: mIoU {_num(miou)}"
    protocol = (results.get("protocol") or {}).get("name")
    model = results.get("model") or {}
    subtitle = " &middot; ".join(_e(x) for x in (f"protocol {protocol}" if protocol else None, model.get("name"),
                                                  model.get("pretrained")) if x)
    nav = "".join(f"<a href=\"#{anchor}\">{text}</a>" for anchor, text in (
        ("summary", "summary"), ("classes", "per class"), ("confusion", "confusions"),
        ("examples", "examples"), ("provenance", "provenance")))
    body = "".join([
        f"<h1>{_e(title)}</h1><p class=muted>{subtitle}</p><nav>{nav}</nav>",
        _summary_section(results),
        _class_section(results, matrix, palette),
        _confusion_section(matrix, names, top_k),
        _examples_section(groups),
        _skipped_section(results),
        _provenance_section(results),
    ])
    page = out_dir / REPORT_FILE
    atomic_write_text(page, _page(f"{title} - clip-surgery-seg report", body), fsync=False)
    return page


def write_index_report(out_dir: Union[str, Path], runs: Sequence[IndexEntry], title: str = "clip-surgery-seg run") -> Path:
    """Write ``out_dir/report.html``: a table of the datasets' mIoU, each linking to its report.

    The datasets are listed in the paper's order; an entry's ``name`` may be a dataset name or a
    folder path below ``out_dir`` that starts with one (``ade20k/maskclip``). A dataset without a
    report shows its status (e.g. "missing data"). The mean is over the entries with a result, and
    says how many.

    Raises:
        ReportingError: an entry's ``report`` that does not exist.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, mious = [], []
    for entry in sorted(runs, key=lambda e: (paper_rank(_dataset_of(e.name)), e.name)):
        results = entry.results or {}
        summary, dataset = results.get("summary") or {}, results.get("dataset") or {}
        if entry.report is not None:
            if not Path(entry.report).is_file():
                raise ReportingError(f"report {entry.report} of {entry.name} does not exist; write it first "
                                     "(write_run_report) or leave the entry's report out")
            link = f"<a href=\"{_href(Path(entry.report), out_dir)}\">report</a>"
        else:
            link = f"<span class=muted>{_e(entry.status or 'no report')}</span>"
        miou = summary.get("mIoU")
        if isinstance(miou, (int, float)) and not math.isnan(miou):
            mious.append(float(miou))
        flags = " <span class='badge warn'>partial</span>" if results.get("partial") else ""
        if dataset.get("limit"):
            flags += f" <span class='badge warn'>limit {_e(dataset['limit'])}</span>"
        protocol = (results.get("protocol") or {}).get("name")
        rows.append(f"<tr><td>{_e(_entry_label(entry.name))}{flags}</td><td class=n>{_num(miou)}</td>"
                    f"<td class=n>{_num(summary.get('mAcc'))}</td><td class=n>{_num(summary.get('aAcc'))}</td>"
                    f"<td class=n>{_num(dataset.get('num_images'), 0)}</td><td>{_e(protocol or '')}</td>"
                    f"<td>{link}</td></tr>")
    head = ("<tr><th>dataset</th><th class=n>mIoU</th><th class=n>mAcc</th><th class=n>aAcc</th>"
            "<th class=n>images</th><th>protocol</th><th></th></tr>")
    mean = (f"<p>Mean mIoU over {len(mious)} dataset{'s' if len(mious) != 1 else ''}: "
            f"<b>{sum(mious) / len(mious):.2f}</b></p>" if mious else "")
    body = f"<h1>{_e(title)}</h1><table class=grid>{head}{''.join(rows)}</table>{mean}"
    page = out_dir / INDEX_FILE
    atomic_write_text(page, _page(title, body), fsync=False)
    return page


def _entry_name(parts: Sequence[str], results: Mapping[str, Any]) -> str:
    """``<dataset>`` or ``<dataset>/<other level>`` whichever way the folders nest
    (``<dataset>/<method>`` or ``tools/reproduce.py``'s ``<method>/<dataset>``)."""
    dataset = str((results.get("dataset") or {}).get("name") or parts[-1])
    others = [p for p in parts if p != dataset]
    return "/".join([dataset, *others])


def _dataset_of(name: str) -> str:
    return name.split("/", 1)[0]


def _entry_label(name: str) -> str:
    """``ade20k`` -> ``ADE20K-150``; ``ade20k/maskclip`` -> ``ADE20K-150 / maskclip``."""
    from ..models.methods import METHODS

    dataset, _, rest = name.partition("/")
    rest = METHODS[rest].label if rest in METHODS else rest
    return dataset_label(dataset) + (f" / {rest}" if rest else "")


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
    """``<run_dir>/report.html`` for a folder of runs (``tools/reproduce.py``): every
    ``*/metrics.json`` and ``*/*/metrics.json`` below it, each with its own report (written here
    where it is missing or older than its results). A run whose report cannot be written is listed
    with the reason instead of a link."""
    run_dir = Path(run_dir)
    entries = []
    for results_file in sorted(list(run_dir.glob(f"*/{RESULTS_FILE}")) + list(run_dir.glob(f"*/*/{RESULTS_FILE}"))):
        folder = results_file.parent
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
    return write_index_report(run_dir, entries, title=title or f"clip-surgery-seg run {run_dir.name}")
