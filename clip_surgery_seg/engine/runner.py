"""One evaluation run: config -> data check -> model -> resumable loop -> metrics.json."""
from __future__ import annotations

import logging
import os
import signal
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.distributed as dist
from mmengine.config import Config
from PIL import Image

from .. import registry  # noqa: F401  (components registered)
from ..datasets.check import check_layout
from ..datasets.classnames import load_classnames
from ..datasets.layout import DataLayoutError, DatasetLayout
from ..datasets.transforms import BadSampleError, validate_sample
from ..evaluation.metric import SegConfusionMetric
from ..fileio import atomic_write_bytes, atomic_write_json
from .config import ConfigError, apply_cfg_options, check_component, load_config
from .progress import ProgressJournal, ResumeError, clear_progress, decode_counts, fingerprint_diff, read_progress
from .provenance import code_version, environment
from .results import RESULTS_FILE, SCHEMA, config_hash, format_results, protocol_of, result_config

logger = logging.getLogger("clip_surgery_seg")
_UNSET = object()


@dataclass
class EvalOptions:
    """What ``tools/eval.py`` takes (see its ``--help``)."""

    config: str
    data_root: Optional[str] = None
    work_dir: Optional[str] = None
    model: Optional[str] = None
    pretrained: Any = _UNSET  # tag, path, "none", or unset (the config's)
    limit: Optional[int] = None
    save_preds: Optional[str] = None
    device: Optional[str] = None
    precision: Optional[str] = None  # fp32 | fp16 | bf16 | auto; None keeps the config's
    launcher: str = "none"
    cfg_options: Dict[str, Any] = field(default_factory=dict)
    resume: bool = False
    skip_bad: bool = False
    history: Optional[str] = None
    progress: bool = True


class EvaluationInterrupted(RuntimeError):
    """Ctrl-C during the loop; progress so far is saved in the work dir."""

    def __init__(self, done: int, total: int, work_dir: Path) -> None:
        super().__init__(f"interrupted: {done} of {total} images done, progress saved in {work_dir}")
        self.done, self.total, self.work_dir = done, total, work_dir


# --- configuration ------------------------------------------------------------------------------

def default_work_dir(config_path: str) -> Path:
    path = Path(config_path).resolve()
    parts = path.with_suffix("").parts
    if "configs" in parts:
        parts = parts[len(parts) - parts[::-1].index("configs"):]
    else:
        parts = (path.stem,)
    return Path("work_dirs").joinpath(*parts)


def prepare_config(opts: EvalOptions) -> Config:
    """The config with command-line overrides applied and checked."""
    from mmseg.registry import DATASETS, METRICS, MODELS

    cfg = load_config(opts.config)
    source = opts.config
    for key in ("model", "test_dataloader", "dataset_name"):
        if key not in cfg:
            raise ConfigError(f"config {source} has no {key!r}; start from one of the dataset configs in configs/")
    apply_cfg_options(cfg, dict(opts.cfg_options))
    if opts.model is not None:
        cfg.model.clip.name = opts.model
    if opts.precision is not None:
        cfg.model.precision = opts.precision
    if opts.pretrained is not _UNSET:
        cfg.model.clip.pretrained = None if str(opts.pretrained).lower() == "none" else opts.pretrained
    dataset = cfg.test_dataloader.dataset
    if opts.data_root is not None:
        dataset.data_root = os.path.join(opts.data_root, cfg.get("data_subdir", ""))
    dataset.data_root = os.path.abspath(dataset.data_root)
    check_component(cfg.model, MODELS, "model", source)
    check_component(dataset, DATASETS, "dataset", source)
    check_component(cfg.get("test_evaluator", dict(type="SegConfusionMetric")), METRICS, "evaluator", source)
    return cfg


# --- distributed --------------------------------------------------------------------------------

def _init_distributed(launcher: str, device: Optional[str]) -> tuple:
    if launcher == "none":
        return 0, 1, torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if launcher != "pytorch":
        raise ConfigError(f"--launcher must be none or pytorch, got {launcher!r}")
    if "RANK" not in os.environ:
        raise ConfigError("--launcher pytorch needs torchrun: torchrun --nproc-per-node N tools/eval.py ...")
    use_cuda = (device or ("cuda" if torch.cuda.is_available() else "cpu")) == "cuda"
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return dist.get_rank(), dist.get_world_size(), torch.device(f"cuda:{local_rank}" if use_cuda else "cpu")


def _barrier(world: int) -> None:
    if world > 1:
        dist.barrier()


def _gather(obj: Any, world: int) -> List[Any]:
    if world == 1:
        return [obj]
    out: List[Any] = [None] * world
    dist.all_gather_object(out, obj)
    return out


# --- data ---------------------------------------------------------------------------------------

class _CheckedSamples(torch.utils.data.Dataset):
    """Dataset items by position, each checked; a bad one becomes ``{"key", "error"}``, not a crash."""

    def __init__(self, dataset, indices: Sequence[int], keys: Sequence[str], num_classes: int,
                 ignore_index: int) -> None:
        self.dataset, self.indices, self.keys = dataset, list(indices), list(keys)
        self.num_classes, self.ignore_index = num_classes, ignore_index

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict:
        key = self.keys[i]
        info = self.dataset.get_data_info(self.indices[i])
        try:
            item = self.dataset[self.indices[i]]
            sample = item["data_samples"]
            validate_sample(info["img_path"], info["seg_map_path"], sample.metainfo["ori_shape"],
                            sample.gt_sem_seg.data[0].numpy(), self.num_classes, self.ignore_index)
        except BadSampleError as err:
            return {"key": key, "error": str(err)}
        except Exception as err:  # noqa: BLE001 - any failure of one sample is reported with its file
            return {"key": key, "error": f"{info['img_path']}: {type(err).__name__}: {err}"}
        return {"key": key, "inputs": item["inputs"], "data_samples": sample}


def _keep_list(batch: list) -> list:
    return batch


def _write_png(path: Path, label: np.ndarray) -> None:
    import io

    buffer = io.BytesIO()
    Image.fromarray(label, mode="L").save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())


# --- the run ------------------------------------------------------------------------------------

@dataclass
class _ImagePlan:
    dataset: Any  # the mmseg dataset
    layout: DatasetLayout
    positions: Dict[str, int]  # image key -> dataset index
    keys: List[str]  # what this run evaluates, sorted (all ranks)
    layout_skipped: List[Dict[str, str]]  # unpaired files left out with --skip-bad


def _plan_images(cfg: Config, opts: EvalOptions, rank: int) -> _ImagePlan:
    """Cheap data check (no model yet), then the sorted image keys this run evaluates."""
    from mmseg.registry import DATASETS

    name = cfg.dataset_name
    dataset_cfg = cfg.test_dataloader.dataset
    layout = DatasetLayout.from_config(dataset_cfg.to_dict())
    expected = cfg.get("expected_images")
    report = check_layout(name, layout, expected)
    unpaired = report.unpaired()
    if unpaired and not opts.skip_bad:
        first = unpaired[0].message
        raise DataLayoutError(f"{len(unpaired)} unpaired files in the {name} data, first: {first}; fix the "
                              f"data (python tools/check_data.py {name}) or pass --skip-bad to leave them out")
    found = len(report.pairs) + len(unpaired)
    if rank == 0 and expected and found != expected and opts.limit is None:
        logger.warning("%s: found %d images, the split has %d; numbers are not comparable to published ones",
                       name, found, expected)
    try:
        dataset = DATASETS.build(dataset_cfg)
    except (AssertionError, FileNotFoundError, TypeError, ValueError) as err:
        raise DataLayoutError(f"the {name} dataset in {layout.data_root} could not be listed ({err})") from err
    paired = set(report.pairs)
    positions: Dict[str, int] = {}
    for index in range(len(dataset)):
        key = os.path.relpath(dataset.get_data_info(index)["img_path"], layout.img_dir)[: -len(layout.img_suffix)]
        if key in paired:
            positions[key] = index
    keys = sorted(positions)[: opts.limit]
    if not keys:
        raise DataLayoutError(f"no image/label pairs to evaluate in {layout.data_root}")
    skipped = [{"image": p.stem, "reason": p.message} for p in unpaired]
    return _ImagePlan(dataset, layout, positions, keys, skipped)


def _open_progress(work_dir: Path, fingerprint: dict, resume: bool, rank: int, world: int):
    """This rank's journal and what an earlier run of the same experiment completed (None if fresh).

    A fresh run never silently replaces an unfinished one, and moves an earlier run's results file
    aside so that no stale metrics.json sits beside a run in progress.
    """
    progress_dir = work_dir / "progress"
    previous = read_progress(progress_dir) if progress_dir.is_dir() else None
    if previous is not None and previous.count and previous.fingerprint is not None:
        if resume:
            diff = fingerprint_diff(previous.fingerprint, fingerprint)
            if diff:
                raise ResumeError(f"cannot resume the run in {work_dir}: it differs in {'; '.join(diff[:3])}"
                                  f"{' ...' if len(diff) > 3 else ''}; rerun without --resume and with a new "
                                  "--work-dir to start over")
        elif not previous.finished:
            raise ResumeError(f"{work_dir} holds an unfinished run ({len(previous.done)} images done); "
                              "continue it with --resume, or pass another --work-dir")
    if not resume or previous is None or previous.fingerprint is None:
        previous = None
        if rank == 0:
            if progress_dir.is_dir():
                clear_progress(progress_dir)
            if (work_dir / RESULTS_FILE).is_file():
                os.replace(work_dir / RESULTS_FILE, work_dir / f"previous_{RESULTS_FILE}")
    elif rank == 0 and resume:
        logger.info("resuming the run in %s: %d images done", work_dir, len(previous.done))
    _barrier(world)
    return ProgressJournal(progress_dir, rank, fingerprint), previous


def _ignore_sigint(_: int) -> None:
    """DataLoader workers leave Ctrl-C to the main process, which stops them cleanly."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def evaluate(opts: EvalOptions) -> Dict[str, Any]:
    """Run one evaluation; returns the results dict (also written to ``<work_dir>/metrics.json``)."""
    from mmseg.registry import MODELS

    from ..models import weights_identity

    start_wall = time.perf_counter()
    cfg = prepare_config(opts)
    rank, world, device = _init_distributed(opts.launcher, opts.device)
    classes = load_classnames(cfg.model.classnames)
    num_classes = classes.num_classes
    work_dir = Path(opts.work_dir) if opts.work_dir else default_work_dir(opts.config)
    plan = _plan_images(cfg, opts, rank)
    my_keys = plan.keys[rank::world]

    clip_cfg = cfg.model.clip
    identity = weights_identity(clip_cfg.name, clip_cfg.get("pretrained"), clip_cfg.get("seed", 0))
    fingerprint = _jsonable({"config": result_config(cfg.to_dict()), "weights": identity.as_dict(),
                             "data_root": str(plan.layout.data_root), "device_type": device.type})
    journal, previous = _open_progress(work_dir, fingerprint, opts.resume, rank, world)

    metric = SegConfusionMetric(num_classes=num_classes, ignore_index=plan.layout.ignore_index,
                                class_names=classes.classes)
    shape = (num_classes, num_classes + 1)
    restored = 0
    todo: List[str] = []
    for key in my_keys:
        if previous is not None and key in previous.done:
            counts = decode_counts(*previous.done[key], shape)
            metric.add(torch.from_numpy(counts).to(device))
            journal.record(key, counts)  # this rank's file holds all it counted, whatever the old sharding
            restored += 1
        else:
            todo.append(key)

    model = MODELS.build(cfg.model.to_dict()).to(device).eval()
    if getattr(model, "num_classes", num_classes) != num_classes:
        raise ConfigError(f"model has {model.num_classes} classes, the class-name file {num_classes}")
    t0 = time.perf_counter()
    if hasattr(model, "text_features"):
        model.text_features()  # once, before the loop (or from the cache)
    text_s = time.perf_counter() - t0

    loader_cfg = cfg.test_dataloader
    num_workers = min(int(loader_cfg.get("num_workers", 2)), len(todo))
    samples = _CheckedSamples(plan.dataset, [plan.positions[k] for k in todo], todo, num_classes,
                              plan.layout.ignore_index)
    loader = torch.utils.data.DataLoader(
        samples, batch_size=int(loader_cfg.get("batch_size", 1)), num_workers=num_workers,
        collate_fn=_keep_list, pin_memory=device.type == "cuda", worker_init_fn=_ignore_sigint,
        prefetch_factor=4 if num_workers else None)
    save_dir = Path(opts.save_preds) if opts.save_preds else None
    writer = ThreadPoolExecutor(max_workers=2) if save_dir else None
    pending: List[Future] = []
    timing = {"data_s": 0.0, "model_s": 0.0, "metric_s": 0.0, "write_s": 0.0}
    skipped: List[Dict[str, str]] = []  # samples this rank could not read (--skip-bad)
    evaluated = 0

    from tqdm import tqdm

    bar = tqdm(total=len(my_keys), initial=restored, unit="img", dynamic_ncols=True,
               desc=cfg.dataset_name + (f" [rank 0 of {world}]" if world > 1 else ""),
               disable=not opts.progress or rank != 0)
    try:
        clock = time.perf_counter()
        for batch in loader:
            now = time.perf_counter()
            timing["data_s"] += now - clock
            good = []
            for item in batch:
                if "error" not in item:
                    good.append(item)
                elif opts.skip_bad:
                    skipped.append({"image": item["key"], "reason": item["error"]})
                    journal.record_skipped(item["key"], item["error"])
                else:
                    raise BadSampleError(f"{item['error']} (or pass --skip-bad to leave bad files out)")
            if good:
                data = model.data_preprocessor({"inputs": [i["inputs"] for i in good],
                                                "data_samples": [i["data_samples"] for i in good]})
                predictions = model.predict(**data)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                t_model = time.perf_counter()
                timing["model_s"] += t_model - now
                preds = []
                for item, sample in zip(good, predictions):
                    pred = sample.pred_sem_seg.data[0]
                    matrix = metric.image_confusion(pred, sample.gt_sem_seg.data[0].to(pred.device))
                    metric.add(matrix)
                    journal.record(item["key"], matrix.cpu().numpy())
                    preds.append((sample.metainfo["img_path"], pred))
                evaluated += len(good)
                t_metric = time.perf_counter()
                timing["metric_s"] += t_metric - t_model
                if writer is not None:
                    for img_path, pred in preds:
                        pending.append(writer.submit(_write_png, save_dir / f"{Path(img_path).stem}.png",
                                                     pred.to("cpu", torch.uint8).numpy()))
                    timing["write_s"] += time.perf_counter() - t_metric
            bar.update(len(batch))
            clock = time.perf_counter()
    except KeyboardInterrupt:
        done = restored + evaluated + len(skipped)
        raise EvaluationInterrupted(done * world, len(plan.keys), work_dir) from None
    finally:
        bar.close()
        journal.close()
        if writer is not None:
            t_wait = time.perf_counter()
            writer.shutdown(wait=True)
            timing["write_s"] += time.perf_counter() - t_wait
    for future in pending:
        future.result()  # a failed prediction write is an error, not a silent gap

    # all ranks: sum the confusion matrices, gather what was skipped and the timings
    _barrier(world)
    computed = metric.compute()
    gathered = _gather({"skipped": skipped, "timing": timing, "evaluated": evaluated, "restored": restored}, world)
    if rank != 0:
        _barrier(world)
        return computed
    sample_skipped = [s for g in gathered for s in g["skipped"]]
    all_skipped = sorted(plan.layout_skipped + sample_skipped, key=lambda s: s["image"])
    evaluated = sum(g["evaluated"] for g in gathered)
    wall = time.perf_counter() - start_wall
    expected = cfg.get("expected_images")
    results = {
        "schema": SCHEMA,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "complete": True,
        "partial": bool(all_skipped),
        "dataset": {"name": cfg.dataset_name, "type": cfg.test_dataloader.dataset.type,
                    "data_root": str(plan.layout.data_root), "num_images": len(plan.keys) - len(sample_skipped),
                    "expected_images": expected, "num_classes": num_classes, "limit": opts.limit},
        "summary": computed["summary"],
        "per_class": computed["per_class"],
        "protocol": {**protocol_of(cfg.to_dict()), "precision": _resolved_precision(model, cfg, device)},
        "model": {**identity.as_dict(), "quick_gelu": clip_cfg.get("quick_gelu")},
        "config": _jsonable(cfg.to_dict()),
        "config_file": os.path.relpath(os.path.abspath(opts.config)),
        "config_hash": config_hash(cfg.to_dict()),
        "code": code_version(),
        "environment": {**environment(device), "world_size": world,
                        "window_batch_size": getattr(getattr(model, "batcher", None), "batch_size", None),
                        "images_per_batch": int(loader_cfg.get("batch_size", 1)), "num_workers": num_workers},
        "timing": {"wall_s": round(wall, 3), "images_per_s": round(evaluated / wall, 3) if wall > 0 else None,
                   "text_s": round(text_s, 3),
                   **{k: round(max(g["timing"][k] for g in gathered), 3) for k in timing},
                   "resumed_images": sum(g["restored"] for g in gathered)},
        "skipped": all_skipped,
    }
    atomic_write_json(work_dir / RESULTS_FILE, results)
    finished = ProgressJournal(work_dir / "progress", rank, fingerprint)
    finished.mark_finished(results["created"])
    finished.close()
    if opts.history:
        from .history import append_history

        append_history(opts.history, results)
    _barrier(world)
    return results


def _resolved_precision(model, cfg: Config, device: torch.device) -> Optional[str]:
    """What ``precision='auto'`` became on this device."""
    if hasattr(model, "compute_precision"):
        return model.compute_precision(device)
    return cfg.model.get("precision")


def _jsonable(obj: Any) -> Any:
    """Config values as plain JSON types (tuples become lists)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


__all__ = ["EvalOptions", "EvaluationInterrupted", "evaluate", "prepare_config", "default_work_dir",
           "format_results"]
