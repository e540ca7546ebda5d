"""The results file (``metrics.json``): what was measured, and everything that produced it.

Schema ``clip-surgery-seg/metrics/v1``::

    schema, created (UTC ISO time), complete (bool), partial (bool: --skip-bad skipped files)
    dataset:   name, type, data_root, num_images, expected_images, num_classes, limit
    summary:   aAcc, mIoU, mAcc (percent, two decimals)
    per_class: [{class, IoU, Acc, intersect, union, pred_area, label_area}, ...]
    protocol:  name, short_side, max_long_side, crop_size, stride, prob_threshold, logit_scale, and
               the model settings that change the numbers: method (its dict, every default filled
               in), templates (the set used: its name, or the list), postprocess (its dict, or null),
               feature_surgery, similarity_normalize, precision, background_index
    model:     name, pretrained, sha256, seed, quick_gelu
    config:    the full config; config_file; config_hash (sha256 of what determines the numbers)
    code:      version, git_commit, git_dirty
    environment: python, platform, packages, device, world_size, window_batch_size, ...
    timing:    wall_s, images_per_s, text_s, data_s, model_s, metric_s, write_s, resumed_images
    skipped:   [{image, reason}, ...]
"""
from __future__ import annotations

import hashlib
import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Union

from ..errors import ResultsFileError
from ..fileio import atomic_write_bytes, atomic_write_json
from ..tables import text_table

SCHEMA = "clip-surgery-seg/metrics/v1"
RESULTS_FILE = "metrics.json"
CONFUSION_FILE = "confusion.npy"  # the run's (K, K + 1) int64 confusion matrix, beside metrics.json
PREVIOUS_RESULTS_FILE = "previous_metrics.json"

# model keys that change speed or caching, not the numbers
RUNTIME_MODEL_KEYS = ("window_batch_size", "text_cache_dir")
# model keys recorded as part of the protocol: they change the numbers
PROTOCOL_MODEL_KEYS = ("method", "templates", "postprocess", "feature_surgery", "similarity_normalize", "precision",
                       "background_index")


def jsonable(obj: Any) -> Any:
    """Config values as plain JSON types (tuples become lists)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def result_config(cfg: dict) -> Dict[str, Any]:
    """The part of a config that determines the numbers (not where data lives, not speed knobs)."""
    model = {k: v for k, v in cfg["model"].items() if k not in RUNTIME_MODEL_KEYS}
    dataset = {k: v for k, v in cfg["test_dataloader"]["dataset"].items() if k != "data_root"}
    return {"model": model, "protocol": cfg.get("protocol"), "dataset": dataset,
            "evaluator": cfg.get("test_evaluator")}


def config_hash(cfg: dict) -> str:
    payload = json.dumps(result_config(cfg), sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def protocol_of(cfg: dict) -> Dict[str, Any]:
    """The protocol's settings and the model settings that change the numbers, as the segmentor
    resolves them: the method with every default filled in, the template set actually used (the
    protocol's, else the model's, else the method's own) and the post-processing step."""
    from ..models.methods import build_method
    from ..segmentors.postprocess import build_postprocess

    protocol = {"name": "custom", **dict(cfg.get("protocol") or {})}
    model = cfg["model"]
    # a model setting left at None is not set: the protocol's value (if any) is the one used
    protocol.update({k: model[k] for k in PROTOCOL_MODEL_KEYS if k in model and (model[k] is not None or k not in protocol)})
    method = build_method(protocol.get("method") or "clip_surgery")
    protocol["method"] = method.config()
    if protocol.get("templates") is None:
        protocol["templates"] = method.default_templates
    step = build_postprocess(protocol.get("postprocess"))
    protocol["postprocess"] = step.config() if step is not None else None
    return jsonable(protocol)


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


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
    """Read and check a results file; a run folder means its ``metrics.json``."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_FILE
    try:
        results = json.loads(path.read_text())
    except FileNotFoundError:
        raise ResultsFileError(f"results file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ResultsFileError(f"results file {path} is not readable JSON ({err})") from err
    if not isinstance(results, dict) or results.get("schema") != SCHEMA:
        raise ResultsFileError(f"{path} is not a clip-surgery-seg results file (schema {SCHEMA})")
    if not results.get("complete"):
        raise ResultsFileError(f"{path} is from a run that did not complete")
    return results


def _fmt(value: float) -> str:
    return "nan" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.2f}"


def format_results(results: Dict[str, Any], per_class: bool = True) -> str:
    """The per-class table and the summary, for the terminal."""
    lines: List[str] = []
    if per_class:
        rows = [[r["class"], _fmt(r["IoU"]), _fmt(r["Acc"])] for r in results["per_class"]]
        lines += [text_table(["class", "IoU", "Acc"], rows, numeric=["IoU", "Acc"]), ""]
    s, d, p, t = results["summary"], results["dataset"], results["protocol"], results["timing"]
    flag = "  (PARTIAL: files skipped)" if results.get("partial") else ""
    lines.append(f"{d['name']}: mIoU {_fmt(s['mIoU'])}  mAcc {_fmt(s['mAcc'])}  aAcc {_fmt(s['aAcc'])}  "
                 f"[{d['num_images']} images, {d['num_classes']} classes, protocol {p['name']}, "
                 f"{results['model']['name']} / {results['model']['pretrained'] or 'random weights'}]{flag}")
    lines.append(f"wall {t['wall_s']:.1f} s, {t['images_per_s']:.2f} images/s")
    return "\n".join(lines)
