"""The results file (``metrics.json``): what was measured, and everything that produced it.

Schema ``clip-surgery-seg/metrics/v1``::

    schema, created (UTC ISO time), complete (bool), partial (bool: --skip-bad skipped files)
    dataset:   name, type, data_root, num_images, expected_images, num_classes, limit
    summary:   aAcc, mIoU, mAcc (percent, two decimals)
    per_class: [{class, IoU, Acc, intersect, union, pred_area, label_area}, ...]
    protocol:  name, short_side, max_long_side, crop_size, stride, templates, feature_surgery,
               method (its dict: type and parameters), similarity_normalize, precision
    model:     name, pretrained, sha256, seed, quick_gelu
    config:    the full config; config_file; config_hash (sha256 of what determines the numbers)
    code:      version, git_commit, git_dirty
    environment: python, platform, packages, device, world_size
    timing:    wall_s, images_per_s, text_s, data_s, model_s, metric_s, write_s, resumed_images
    skipped:   [{image, reason}, ...]
"""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any, Dict, List, Union
from ..errors import ResultsFileError

SCHEMA = "clip-surgery-seg/metrics/v1"
RESULTS_FILE = "metrics.json"

# model keys that change speed or caching, not the numbers
RUNTIME_MODEL_KEYS = ("window_batch_size", "text_cache_dir")



def result_config(cfg: dict) -> Dict[str, Any]:
    """The part of a config that determines the numbers (not where data lives, not speed knobs)."""
    model = {k: v for k, v in cfg["model"].items() if k not in RUNTIME_MODEL_KEYS}
    dataset = {k: v for k, v in cfg["test_dataloader"]["dataset"].items() if k != "data_root"}
    return {"model": model, "dataset": dataset, "evaluator": cfg.get("test_evaluator")}


def config_hash(cfg: dict) -> str:
    payload = json.dumps(result_config(cfg), sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def protocol_of(cfg: dict) -> Dict[str, Any]:
    model = cfg["model"]
    keys = ("short_side", "max_long_side", "crop_size", "stride", "templates", "feature_surgery", "method",
            "similarity_normalize", "precision")
    protocol = {"name": cfg.get("protocol", "custom")}
    protocol.update({k: model.get(k) for k in keys})
    if protocol["method"] is not None:  # every default filled in: the record says exactly what ran
        from ..models.methods import build_method

        protocol["method"] = build_method(protocol["method"]).config()
    return protocol


def load_results(path: Union[str, Path]) -> Dict[str, Any]:
    """Read and check a results file; a run folder means its ``metrics.json``."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_FILE
    try:
        results = json.loads(path.read_text())
    except FileNotFoundError:
        raise ResultsFileError(f"results file {path} does not exist") from None
    except (OSError, json.JSONDecodeError) as err:
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
        rows = results["per_class"]
        width = max([len("class")] + [len(r["class"]) for r in rows])
        lines.append(f"{'class':<{width}}  {'IoU':>6}  {'Acc':>6}")
        lines.append("-" * (width + 16))
        lines += [f"{r['class']:<{width}}  {_fmt(r['IoU']):>6}  {_fmt(r['Acc']):>6}" for r in rows]
        lines.append("")
    s, d, p, t = results["summary"], results["dataset"], results["protocol"], results["timing"]
    flag = "  (PARTIAL: files skipped)" if results.get("partial") else ""
    lines.append(f"{d['name']}: mIoU {_fmt(s['mIoU'])}  mAcc {_fmt(s['mAcc'])}  aAcc {_fmt(s['aAcc'])}  "
                 f"[{d['num_images']} images, {d['num_classes']} classes, protocol {p['name']}, "
                 f"{results['model']['name']} / {results['model']['pretrained'] or 'random weights'}]{flag}")
    lines.append(f"wall {t['wall_s']:.1f} s, {t['images_per_s']:.2f} images/s")
    return "\n".join(lines)
