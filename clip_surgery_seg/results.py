"""The files a run leaves in its work dir, and the results file (``metrics.json``) that every tool reads.

Schema ``clip-surgery-seg/metrics/v2``: one section per kind of setting, each word meaning one thing::

    schema, created (UTC ISO time), complete (bool), partial (bool: --skip-bad skipped files)
    dataset:   name, type, data_root, num_images, expected_images, num_classes, limit, background_index
    summary:   aAcc, mIoU, mAcc (percent, two decimals)
    per_class: [{class, IoU, Acc, intersect, union, pred_area, label_area}, ...]
    protocol:  the evaluation settings: name, short_side, max_long_side, crop_size, stride,
               prob_threshold, logit_scale, templates (a protocol-wide set, or null), and
               overridden (the settings that differ from the named protocol's own values)
    method:    name, params (every parameter, defaults filled in), feature_surgery,
               similarity_normalize, postprocess (its dict, or null)
    model:     name, pretrained, sha256, seed, quick_gelu, config_sha256 (a model-config file's
               content), precision (what the image encoder ran in)
    text:      templates (the set used: its name, or the list), classnames (the file),
               classnames_sha256 (of its rows)
    config:    the full resolved config; config_file; config_hash (sha256 of the experiment: the
               sections above that determine the numbers)
    code:      version, git_commit, git_dirty
    environment: python, platform, packages, device, world_size, window_batch_size, ...
    timing:    wall_s, images_per_s, text_s, data_s, model_s, metric_s, write_s, resumed_images
    skipped:   [{image, reason}, ...]

Files of version 1 (before the sections: the ``protocol`` section also held the method, templates,
post-processing, precision and background index) are read through :func:`upgrade`, which moves
each value to its v2 section; nothing is lost and no number changes.
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from .errors import ResultsFileError
from .fileio import atomic_write_bytes, atomic_write_json
from .tables import text_table

SCHEMA = "clip-surgery-seg/metrics/v2"
SCHEMA_V1 = "clip-surgery-seg/metrics/v1"
RESULTS_FILE = "metrics.json"
CONFUSION_FILE = "confusion.npy"  # the run's (K, K + 1) int64 confusion matrix, beside metrics.json
PREVIOUS_RESULTS_FILE = "previous_metrics.json"
LOGS_DIR = "logs"
SUMMARY_FILE = "summary.json"  # a reproduce run folder's: each evaluation's status
RAN, MISSING_DATA, FAILED = "ran", "missing_data", "failed"  # its statuses
EXAMPLES_DIR = "examples"  # the report's example panels and their list
PROGRESS_DIR = "progress"  # the per-image progress journal (one SQLite file per rank)
REPORT_ASSETS_DIR = "report_files"  # what report.html shows
#: the folders of a work dir that a run rewrites (deletes and replaces files in): no output of the
#: user's (--save-preds, --show-dir) may go there
MANAGED_DIRS = (EXAMPLES_DIR, PROGRESS_DIR, LOGS_DIR, REPORT_ASSETS_DIR)
EXAMPLES_FILE = "examples.json"

#: the method of results from before methods were recorded: the only one there was
LEGACY_METHOD = "clip_surgery"


def jsonable(obj: Any) -> Any:
    """Config values as plain JSON types (tuples become lists)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def experiment_hash(sections: Mapping[str, Any]) -> str:
    """sha256 of what determines the numbers: the experiment's sections and the dataset's encoding
    (``sections`` holds ``dataset_encoding`` plus the ``protocol``, ``method``, ``model`` and ``text``
    sections)."""
    payload = json.dumps(jsonable(dict(sections)), sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# --- older files ---------------------------------------------------------------------------------

# v1's ``protocol`` section: these keys were evaluation settings; the others moved to their sections
_V1_PROTOCOL_KEYS = ("name", "short_side", "max_long_side", "crop_size", "stride", "prob_threshold", "logit_scale")


def upgrade(results: Mapping[str, Any]) -> Dict[str, Any]:
    """A results dict in the current schema; v1 files (and v1 files from before methods were
    recorded) have each value moved to its section, ``upgraded_from`` naming the old schema."""
    if results.get("schema") == SCHEMA:
        return dict(results)
    if results.get("schema") != SCHEMA_V1:
        raise ResultsFileError(f"unknown results schema {results.get('schema')!r}")
    new = copy.deepcopy(dict(results))
    old = dict(new.pop("protocol", None) or {})
    method = old.get("method") or {"type": LEGACY_METHOD}
    if isinstance(method, str):
        method = {"type": method}
    params = {k: v for k, v in method.items() if k != "type"}
    new["protocol"] = {k: old.get(k) for k in _V1_PROTOCOL_KEYS}
    new["protocol"].update(templates=None, overridden=None)  # v1 did not record either
    new["method"] = {"name": method.get("type", LEGACY_METHOD), "params": params,
                     "feature_surgery": old.get("feature_surgery"),
                     "similarity_normalize": old.get("similarity_normalize"),
                     "postprocess": old.get("postprocess")}
    new["model"] = {**dict(new.get("model") or {}), "precision": old.get("precision")}
    classnames = ((new.get("config") or {}).get("model") or {}).get("classnames")
    new["text"] = {"templates": old.get("templates"), "classnames": classnames, "classnames_sha256": None}
    new["dataset"] = {**dict(new.get("dataset") or {}), "background_index": old.get("background_index")}
    new["schema"], new["upgraded_from"] = SCHEMA, SCHEMA_V1
    return new


# --- writing and reading -------------------------------------------------------------------------

def write_results(work_dir: Path, results: Dict[str, Any]) -> Path:
    """Write ``metrics.json`` atomically; an earlier one is kept as ``previous_metrics.json``.

    Nothing is moved before the new file is complete: the old results are copied aside first, then
    the new file replaces them in one rename.
    """
    path = Path(work_dir) / RESULTS_FILE
    if path.is_file():
        atomic_write_bytes(path.with_name(PREVIOUS_RESULTS_FILE), path.read_bytes())
    atomic_write_json(path, results)
    return path


def write_confusion(work_dir: Path, confusion) -> Path:
    """``confusion.npy``: the summed (K, K + 1) int64 matrix (row: label class, column: predicted
    class, last column: predictions outside ``[0, K)``), written atomically (``numpy.load`` reads it)."""
    import io

    import numpy as np

    matrix = np.asarray(confusion.cpu().numpy() if hasattr(confusion, "cpu") else confusion, dtype=np.int64)
    buffer = io.BytesIO()
    np.save(buffer, matrix, allow_pickle=False)
    path = Path(work_dir) / CONFUSION_FILE
    atomic_write_bytes(path, buffer.getvalue())
    return path


def load_results(path: Union[str, Path]) -> Dict[str, Any]:
    """Read and check a results file (a run folder means its ``metrics.json``), in the current schema."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_FILE
    try:
        results = json.loads(path.read_text())
    except FileNotFoundError:
        raise ResultsFileError(f"results file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ResultsFileError(f"results file {path} is not readable JSON ({err})") from err
    if not isinstance(results, dict) or results.get("schema") not in (SCHEMA, SCHEMA_V1):
        raise ResultsFileError(f"{path} is not a clip-surgery-seg results file (schema {SCHEMA})")
    if not results.get("complete"):
        raise ResultsFileError(f"{path} is from a run that did not complete")
    try:
        return upgrade(results)
    except (AttributeError, TypeError, ValueError) as err:
        raise ResultsFileError(f"{path} is a damaged results file ({err})") from None


def read_summary(run_dir: Union[str, Path]) -> Dict[str, Any]:
    """A reproduce run folder's ``summary.json`` (raises ``OSError``, ``ValueError`` as ``json`` does)."""
    return json.loads((Path(run_dir) / SUMMARY_FILE).read_text(encoding="utf-8"))


def ran_keys(summary: Mapping[str, Any]) -> List[str]:
    """``<method folder>/<dataset>``, the folder below the run folder, of every evaluation a
    reproduce run's summary says ran, in its order (a damaged summary raises ``KeyError``,
    ``TypeError`` or ``AttributeError``)."""
    return [f"{key}/{dataset}" for dataset, entry in summary["datasets"].items()
            for key, run in (entry.get("methods") or {}).items() if run.get("status") == RAN]


def not_run(summary: Mapping[str, Any]) -> List[Tuple[str, Optional[str], Any]]:
    """What a reproduce run's summary says did not run, in its order: ``(dataset, None, reason)``
    for a dataset whose data was missing, ``(dataset, method folder, reason)`` for a run that
    failed. Entries that are not dicts are passed over."""
    found: List[Tuple[str, Optional[str], Any]] = []
    for dataset, entry in dict(summary["datasets"]).items():
        if not isinstance(entry, Mapping):
            continue
        if entry.get("status") == MISSING_DATA:
            found.append((str(dataset), None, entry.get("reason")))
        for method, run in (entry.get("methods") or {}).items():
            if isinstance(run, Mapping) and run.get("status") == FAILED:
                found.append((str(dataset), method, run.get("reason")))
    return found


def read_examples(folder: Path) -> Dict[str, Any]:
    """``examples.json`` of a work dir's examples folder (``{"created", "examples": [...]}``)."""
    return json.loads((Path(folder) / EXAMPLES_FILE).read_text())


# --- what a results dict says ---------------------------------------------------------------------

def method_name(results: Mapping[str, Any]) -> str:
    """The method of a results dict (current schema)."""
    return str((results.get("method") or {}).get("name") or LEGACY_METHOD)


def postprocess_name(results: Mapping[str, Any]):
    """The post-processing step's name of a results dict, or None."""
    step = (results.get("method") or {}).get("postprocess")
    if isinstance(step, Mapping):
        step = step.get("type")
    return str(step) if step else None


def _fmt(value: float) -> str:
    return "nan" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.2f}"


def format_results(results: Dict[str, Any], per_class: bool = True) -> str:
    """The per-class table and the summary, for the terminal and the run's log."""
    lines: List[str] = []
    if per_class:
        rows = [[r["class"], _fmt(r["IoU"]), _fmt(r["Acc"])] for r in results["per_class"]]
        lines += [text_table(["class", "IoU", "Acc"], rows, numeric=["IoU", "Acc"]), ""]
    s, d, p, t = results["summary"], results["dataset"], results["protocol"], results["timing"]
    flag = "  (PARTIAL: files skipped)" if results.get("partial") else ""
    lines.append(f"{d['name']}: mIoU {_fmt(s['mIoU'])}  mAcc {_fmt(s['mAcc'])}  aAcc {_fmt(s['aAcc'])}  "
                 f"[{d['num_images']} images, {d['num_classes']} classes, method {method_name(results)}, "
                 f"protocol {p['name']}, {results['model']['name']} / "
                 f"{results['model']['pretrained'] or 'random weights'}]{flag}")
    lines.append(f"wall {t['wall_s']:.1f} s, {t['images_per_s']:.2f} images/s")
    return "\n".join(lines)
