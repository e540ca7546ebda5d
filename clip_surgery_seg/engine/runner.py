"""One evaluation run: config -> image list -> progress journal -> model -> loop -> metrics.json.

:func:`evaluate` reads as the sequence of its stages; each stage is a function below it. The loop is
a plain loop rather than an mmengine ``Runner``/``TestLoop``: resuming per image, ``--skip-bad`` and
the per-image journal are the loop's job here, and mmengine's loop would build the dataset a second
time from its own listing.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import shlex
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
from mmengine.config import Config

from .. import registry  # noqa: F401  (components registered)
from ..datasets import catalog
from ..datasets.classnames import ClassNames
from ..errors import BadSampleError, ConfigError, NumericalError, ResumeError, one_line
from ..evaluation.metric import SegConfusionMetric
from ..datasets.layout import DatasetLayout
from ..fileio import LockHeld, check_writable, file_lock, printable
from ..models import SharedCLIP
from ..results import (EXAMPLES_DIR, EXAMPLES_FILE, MANAGED_DIRS, PROGRESS_DIR, RESULTS_FILE, SCHEMA, jsonable,
                       utc_now, write_confusion, write_results)
from .data import CheckedSamples, ImageList, build_loader, list_images
from .distributed import Processes, init_processes
from .experiment import Experiment, default_work_dir, resolve_experiment
from .observers import (REPORT_EXAMPLES, ExampleKeeper, ImageObserver, PanelWriter, gather_examples,
                        output_name, write_examples)
from .progress import ProgressJournal, clear_progress, decode_counts, fingerprint_diff, read_progress
from .provenance import code_version, environment

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
    protocol: Optional[str] = None  # None keeps the config's
    method: Optional[str] = None  # None keeps the config's; a name replaces its method dict
    limit: Optional[int] = None
    save_preds: Optional[str] = None
    show_dir: Optional[str] = None  # a panel per image (image | ground truth / prediction | errors)
    device: Optional[str] = None
    precision: Optional[str] = None  # fp32 | fp16 | bf16 | auto; None keeps the config's
    resize: Optional[str] = None  # mmseg | device; None keeps the protocol's
    launcher: str = "none"
    cfg_options: Dict[str, Any] = field(default_factory=dict)
    resume: bool = False
    skip_bad: bool = False
    progress: bool = True
    report_examples: int = REPORT_EXAMPLES  # the k worst and k best images kept for the report

    def resolve(self) -> Experiment:
        """The experiment these options name (:func:`~.experiment.resolve_experiment`)."""
        return resolve_experiment(self.config, protocol=self.protocol, method=self.method,
                                  cfg_options=self.cfg_options, model=self.model,
                                  pretrained=None if self.pretrained is _UNSET else self.pretrained,
                                  precision=self.precision, data_root=self.data_root, resize=self.resize)

    @property
    def resolved_work_dir(self) -> Path:
        return Path(self.work_dir) if self.work_dir else default_work_dir(self.config)


class EvaluationInterrupted(RuntimeError):
    """Ctrl-C during the loop; progress so far is saved in the work dir."""

    def __init__(self, done: int, total: int, work_dir: Path) -> None:
        super().__init__(f"interrupted: {done} of {total} images done, progress saved in {work_dir}")
        self.done, self.total, self.work_dir = done, total, work_dir


def evaluate(opts: EvalOptions, experiment: Optional[Experiment] = None,
             shared_clip: Optional[SharedCLIP] = None) -> Dict[str, Any]:
    """Run one evaluation; returns the results dict (also written to ``<work_dir>/metrics.json``).

    ``experiment``: what to evaluate, if already resolved (else ``opts.resolve()``).
    ``shared_clip``: take the CLIP from there (one load for several evaluations, e.g. every method
    on a dataset) instead of loading it for this run. Ranks other than 0 return only the computed
    metrics. The work dir is locked for the run. :mod:`.session` wraps this with the rest of a run
    (the output folders' checks, log file, signals, report, history).
    """
    start = time.perf_counter()
    experiment = experiment or opts.resolve()
    procs = init_processes(opts.launcher, opts.device)
    work_dir = opts.resolved_work_dir
    with lock_work_dir(work_dir, procs):
        return _evaluate(experiment, opts, procs, work_dir, start, shared_clip)


def _evaluate(experiment: Experiment, opts: EvalOptions, procs: Processes, work_dir: Path, start: float,
              shared_clip: Optional[SharedCLIP]) -> Dict[str, Any]:
    cfg = experiment.cfg
    classes = experiment.class_names()
    check_class_count(experiment, classes)
    images = list_images(cfg, opts.skip_bad, opts.limit, procs.rank)
    fingerprint = run_fingerprint(experiment, images, procs)
    journal, previous = open_progress(work_dir, fingerprint, opts.resume, procs)
    metric = build_metric(cfg, classes)
    observers = build_observers(opts, cfg, classes, images.keys)
    todo, restored = restore_counts(images, images.keys[procs.rank::procs.world], previous, metric, journal,
                                    observers, procs.device)
    model = build_model(experiment, procs.device, classes.num_classes, shared_clip)
    text_s = encode_text_once(model, progress=opts.progress and procs.rank == 0)
    samples = CheckedSamples(images.layout, todo, cfg.test_dataloader.dataset.pipeline, classes.num_classes,
                             metric.ignore_index)
    loader = build_loader(samples, cfg.test_dataloader, procs.device)
    stats = LoopStats(restored=restored)
    try:
        run_loop(model, loader, metric, journal, stats, opts, images, procs, observers)
    except KeyboardInterrupt:
        raise EvaluationInterrupted((restored + stats.evaluated + len(stats.skipped)) * procs.world,
                                    len(images.keys), work_dir) from None
    finally:
        journal.close()
    computed = checked_metrics(metric.compute(), images)
    gathered = procs.gather(stats.summary())
    worst, best = gather_examples(next((o for o in observers if isinstance(o, ExampleKeeper)), None), procs)
    if procs.rank != 0:
        procs.barrier()
        return computed
    results = assemble_results(experiment, opts, images, computed, gathered, model, procs,
                               time.perf_counter() - start, text_s, num_workers=loader.num_workers)
    write_confusion(work_dir, computed["confusion"])  # before metrics.json: a metrics.json has its matrix
    write_results(work_dir, results)
    finished = ProgressJournal(work_dir / PROGRESS_DIR, procs.rank, fingerprint)
    finished.mark_finished(results["created"])
    finished.close()
    save_examples(work_dir, results["created"], worst, best, cfg, classes, metric, model, images)
    procs.barrier()
    return results


# --- configuration ------------------------------------------------------------------------------

def check_class_count(experiment: Experiment, classes: ClassNames) -> None:
    """A catalogue dataset's class-name file must have one line per class of the dataset."""
    info = catalog.CATALOG.get(experiment.dataset)
    if info is not None and classes.num_classes != info.num_classes:
        raise ConfigError(f"class-name file {experiment.classnames} has {classes.num_classes} classes, the "
                          f"{info.name} dataset has {info.num_classes}; set model.classnames to a file with one "
                          f"line per class in label order (e.g. configs/classnames/{info.name}.txt)")


def check_outputs(work_dir: Path, save_preds: Optional[str], show_dir: Optional[str] = None) -> None:
    """Every folder the run writes to must be writable before the first image."""
    check_writable(work_dir, "--work-dir")
    if save_preds:
        check_writable(Path(save_preds), "--save-preds")
    if show_dir:
        check_writable(Path(show_dir), "--show-dir")


def check_output_folders(opts: EvalOptions, experiment: Experiment) -> None:
    """``--save-preds`` and ``--show-dir`` hold only their own files; refused (ConfigError), before
    anything is written, when one

    * is, is inside, or holds the dataset's image or label folder, or is inside the dataset's folder:
      a prediction ``<key>.png`` would replace the label ``<key>.png`` (the next run would score 100%);
    * is the work dir or holds it, or is inside a folder the run rewrites (``results.MANAGED_DIRS``:
      ``examples/`` deletes PNGs it did not list, ``progress/`` is cleared by a fresh run, ...);
    * is the other one's folder, is inside it or holds it: a panel would replace a prediction.

    Paths are compared with symlinks resolved: a link to the label folder is the label folder.
    """
    outputs = [(option, Path(folder)) for option, folder in (("--save-preds", opts.save_preds),
                                                             ("--show-dir", opts.show_dir)) if folder]
    if not outputs:
        return
    work_dir = opts.resolved_work_dir
    layout = DatasetLayout.from_config(experiment.cfg.test_dataloader.dataset.to_dict())
    for option, folder in outputs:
        fix = f"e.g. {option} {printable(str(work_dir / ('preds' if option == '--save-preds' else 'show')))}"
        where = f"{option} {printable(str(folder))}"
        clash = _data_clash(folder, layout)
        if clash:
            raise ConfigError(f"{where} {clash}: its files would mix with the dataset's and could replace them; "
                              f"choose a folder outside the data, {fix}")
        clash = _work_dir_clash(folder, work_dir)
        if clash:
            raise ConfigError(f"{where} {clash}; choose another folder, {fix}")
    if len(outputs) == 2:
        (_, preds), (_, show) = outputs
        relation = {"same": "is the same folder as", "inside": "is inside", "holds": "holds"}.get(
            _relation(show, preds) or "")
        if relation:
            raise ConfigError(f"--show-dir {printable(str(show))} {relation} --save-preds {printable(str(preds))}: "
                              "panels would replace predictions of the same name; give them two separate folders, "
                              f"e.g. --save-preds {printable(str(work_dir / 'preds'))} --show-dir "
                              f"{printable(str(work_dir / 'show'))}")


def _relation(path: Path, other: Path) -> Optional[str]:
    """``"same"``, ``"inside"`` (``path`` is below ``other``), ``"holds"`` (``other`` is below
    ``path``) or None, with symlinks resolved (folders that do not exist yet are fine)."""
    a, b = Path(os.path.realpath(path)), Path(os.path.realpath(other))
    if a == b:
        return "same"
    if b in a.parents:
        return "inside"
    if a in b.parents:
        return "holds"
    return None


def _data_clash(folder: Path, layout: DatasetLayout) -> Optional[str]:
    """How an output folder meets the dataset's files, or None."""
    named = (("image folder", layout.img_dir), ("label folder", layout.seg_dir))
    relations = [(name, path, _relation(folder, path)) for name, path in named]
    for name, path, relation in relations:
        if relation == "same":
            return f"is the dataset's {name}"
    for name, path, relation in relations:
        if relation == "inside":
            return f"is inside the dataset's {name} {printable(str(path))}"
    if _relation(folder, layout.data_root) in ("same", "inside"):
        return f"is inside the dataset's folder {printable(str(layout.data_root))}"
    for name, path, relation in relations:
        if relation == "holds":
            return f"holds the dataset's {name} {printable(str(path))}"
    return None


def _work_dir_clash(folder: Path, work_dir: Path) -> Optional[str]:
    """How an output folder meets the work dir's own files, or None (a plain subfolder is fine)."""
    relation = _relation(folder, work_dir)
    if relation == "same":
        return "is the work dir: its files would mix with the run's own"
    if relation == "holds":
        return f"holds the work dir {printable(str(work_dir))}: its files would mix with the run's own"
    for sub in MANAGED_DIRS:
        if _relation(folder, work_dir / sub) in ("same", "inside"):
            return (f"would write into {printable(str(work_dir / sub))}, which the run rewrites (it deletes and "
                    "replaces files there)")
    return None


# --- progress -----------------------------------------------------------------------------------

def open_progress(work_dir: Path, fingerprint: dict, resume: bool,
                  procs: Processes) -> Tuple[ProgressJournal, Optional[Any]]:
    """This rank's journal and what an earlier run of the same experiment completed (None if fresh).

    A fresh run never silently replaces an unfinished one; a resume of another run is refused.
    """
    progress_dir = work_dir / PROGRESS_DIR
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
        if procs.rank == 0 and progress_dir.is_dir():
            clear_progress(progress_dir)
    elif procs.rank == 0:
        logger.info("resuming the run in %s: %d images done", work_dir, len(previous.done))
    procs.barrier()
    return ProgressJournal(progress_dir, procs.rank, fingerprint), previous


@contextlib.contextmanager
def lock_work_dir(work_dir: Path, procs: Processes) -> Iterator[None]:
    """A work dir holds one run at a time: rank 0 holds ``<work_dir>/.lock`` for the whole run, and a
    second run there is refused, naming the one that holds it."""
    if procs.rank != 0:
        yield
        return
    holder = (f"pid {os.getpid()} on {socket.gethostname()}, started {utc_now()}: "
              f"{' '.join(shlex.quote(a) for a in sys.argv)}")
    try:
        with file_lock(work_dir / ".lock", wait=False, holder=holder):
            yield
    except LockHeld as held:
        raise ResumeError(f"{work_dir} is in use by another run ({held.holder}); wait for it to finish, "
                          "or pass another --work-dir") from None


def run_fingerprint(experiment: Experiment, images: ImageList, procs: Processes) -> Dict[str, Any]:
    """Everything a resume must find unchanged: the experiment (its settings, the weights' and the
    model config's content, the class names' rows), and the content of every listed image and label
    file."""
    return jsonable({"experiment": {"dataset_encoding": experiment.dataset_encoding(), **experiment.sections()},
                     "data_root": str(images.layout.data_root), "data_listing": listing_digest(images),
                     "device_type": procs.device.type})


def listing_digest(images: ImageList) -> str:
    """sha256 of every listed pair's name, sizes and modification times (a changed file changes it).

    Over the whole split, not just ``--limit``'s share: a smoke run may be resumed to the full split.
    """
    digest = hashlib.sha256()
    for key in images.pairs:
        digest.update(key.encode("utf-8", "surrogateescape"))
        for path in (images.layout.image_path(key), images.layout.label_path(key)):
            try:
                st = path.stat()
                digest.update(f"|{st.st_size}|{st.st_mtime_ns}".encode())
            except OSError:
                digest.update(b"|missing")
        digest.update(b"\n")
    return digest.hexdigest()


def restore_counts(images: ImageList, keys: Sequence[str], previous, metric: SegConfusionMetric,
                   journal: ProgressJournal, observers: Sequence[ImageObserver],
                   device: torch.device) -> Tuple[List[str], int]:
    """Add the counts an interrupted run already committed; returns (keys still to do, restored).

    An image whose output an observer lacks (a ``--save-preds`` or ``--show-dir`` file the
    interrupted run had not written yet) is evaluated again rather than restored.
    """
    shape = (metric.num_classes, metric.num_classes + 1)
    todo: List[str] = []
    restored = 0
    for key in keys:
        img_path = images.layout.image_path(key)
        if previous is None or key not in previous.done or any(o.missing(key, img_path) for o in observers):
            todo.append(key)
            continue
        try:
            counts = decode_counts(*previous.done[key], shape)
        except ValueError as err:
            raise ResumeError(f"the progress files in {journal.path.parent} are damaged (image {key}: {err}); "
                              "delete that folder to start over, or pass another --work-dir") from None
        metric.merge_state(torch.from_numpy(counts).to(device))
        journal.record(key, counts)  # this rank's file holds all it counted, whatever the old sharding
        for observer in observers:
            observer.on_restored(key, img_path, counts)
        restored += 1
    return todo, restored


# --- model and metric ---------------------------------------------------------------------------

def build_metric(cfg: Config, classes: ClassNames) -> SegConfusionMetric:
    from mmseg.registry import METRICS

    evaluator = dict(cfg.get("test_evaluator") or dict(type="SegConfusionMetric"))
    return METRICS.build(dict(evaluator, num_classes=classes.num_classes, class_names=classes.classes))


def build_model(experiment: Experiment, device: torch.device, num_classes: int,
                shared_clip: Optional[SharedCLIP] = None) -> torch.nn.Module:
    from mmseg.registry import MODELS

    settings = experiment.segmentor_config()
    if shared_clip is not None:
        settings["shared_clip"] = shared_clip
    model = MODELS.build(settings).to(device).eval()
    if getattr(model, "num_classes", num_classes) != num_classes:
        raise ConfigError(f"model has {model.num_classes} classes, the class-name file {num_classes}")
    return model


def encode_text_once(model: torch.nn.Module, progress: bool = False) -> float:
    """Class embeddings before the loop (or from the cache), with a bar on stderr while they are
    encoded when ``progress``; returns the seconds it took."""
    start = time.perf_counter()
    if hasattr(model, "text_features"):
        model.text_progress = progress
        model.text_features()
    return time.perf_counter() - start


# --- the loop -----------------------------------------------------------------------------------

@dataclass
class LoopStats:
    """What this rank's loop did."""

    restored: int = 0
    evaluated: int = 0
    skipped: List[Dict[str, str]] = field(default_factory=list)  # samples that could not be read
    timing: Dict[str, float] = field(default_factory=lambda: {"data_s": 0.0, "model_s": 0.0, "metric_s": 0.0,
                                                              "write_s": 0.0})

    def summary(self) -> Dict[str, Any]:
        return {"skipped": self.skipped, "timing": self.timing, "evaluated": self.evaluated,
                "restored": self.restored}


class PredictionWriter(ImageObserver):
    """``--save-preds``: each prediction as ``<folder>/<image key>.png`` (uint8 class indices;
    subfolders kept, :func:`~.observers.output_name`)."""

    def __init__(self, folder: Path) -> None:
        from ..visualization import PngWriter

        self.folder = folder
        self._writer = PngWriter()

    def path(self, key: str) -> Path:
        return self.folder / output_name(key)

    def on_image(self, key: str, sample: Any, counts: Any, image: torch.Tensor) -> None:
        pred = sample.pred_sem_seg.data[0].to("cpu", torch.uint8).numpy()
        self._writer.submit(self.path(key), pred, compress_level=6)

    def missing(self, key: str, img_path: Path) -> bool:
        return not self.path(key).is_file()

    def close(self) -> None:
        self._writer.close()


def build_observers(opts: EvalOptions, cfg: Config, classes: ClassNames,
                    keys: Sequence[str] = ()) -> List[ImageObserver]:
    """What the loop reports each image to, from the run's options. ``keys``: the run's images,
    checked here to have an output file name each (before the model is built)."""
    observers: List[ImageObserver] = []
    if opts.save_preds or opts.show_dir:
        for key in keys:
            output_name(key)
    if opts.save_preds:
        if classes.num_classes > 256:  # class indices 0..255 fit in a byte
            raise ConfigError(f"--save-preds writes 8-bit PNGs of class indices; {classes.num_classes} classes do "
                              "not fit in 8 bits: use --show-dir for pictures instead")
        observers.append(PredictionWriter(Path(opts.save_preds)))
    if opts.show_dir:
        observers.append(PanelWriter(Path(opts.show_dir), run_palette(cfg, classes), classes.classes))
    if opts.report_examples > 0:
        observers.append(ExampleKeeper(classes.num_classes, opts.report_examples))
    return observers


def run_palette(cfg: Config, classes: ClassNames):
    """The dataset's usual palette (its mmseg type's ``METAINFO``) when the class count is its own,
    else a fixed palette for the count (``visualization.palette_for``)."""
    from ..visualization import palette_for

    return palette_for(classes.num_classes, cfg.test_dataloader.dataset.get("type"))


def _readable_items(batch: list, skip_bad: bool, journal: ProgressJournal, stats: LoopStats) -> list:
    """The batch's good samples; a bad one stops the run, or with ``skip_bad`` is recorded and left out."""
    good = []
    for item in batch:
        if "error" not in item:
            good.append(item)
        elif skip_bad:
            stats.skipped.append({"image": item["key"], "reason": item["error"]})
            journal.record_skipped(item["key"], item["error"])
        else:
            raise BadSampleError(f"{item['error']} (or pass --skip-bad to leave bad files out)")
    return good


def _predict(model: torch.nn.Module, data: dict, items: Sequence[dict]) -> list:
    """``model.predict``; a non-finite result names the images it came from."""
    try:
        return model.predict(**data)
    except NumericalError as err:
        names = ", ".join(str(item["data_samples"].metainfo["img_path"]) for item in items)
        raise NumericalError(f"{names}: {err}") from None


def checked_metrics(computed: Dict[str, Any], images: ImageList) -> Dict[str, Any]:
    """The metrics, refused when a summary number is not finite (no labelled pixel was counted)."""
    bad = [k for k, v in computed["summary"].items() if not math.isfinite(v)]
    if bad:
        raise NumericalError(f"{', '.join(bad)} of {images.name} is not a number: no labelled pixel was counted "
                             f"in the {len(images.keys)} images under {images.layout.seg_dir} (every label is the "
                             "ignore index 255 after the dataset's encoding); check the label files and the "
                             "config's reduce_zero_label")
    return computed


def run_loop(model: torch.nn.Module, loader, metric: SegConfusionMetric, journal: ProgressJournal,
             stats: LoopStats, opts: EvalOptions, images: ImageList, procs: Processes,
             observers: Sequence[ImageObserver] = ()) -> None:
    """Predict every batch, count it, commit its counts to the journal, show it to the observers
    (closed at the end, also when the loop fails)."""
    from tqdm import tqdm

    total = len(images.keys[procs.rank::procs.world])
    bar = tqdm(total=total, initial=stats.restored, unit="img", dynamic_ncols=True,
               desc=images.name + (f" [rank 0 of {procs.world}]" if procs.world > 1 else ""),
               disable=not opts.progress or procs.rank != 0)
    timing = stats.timing
    try:
        clock = time.perf_counter()
        for batch in loader:
            now = time.perf_counter()
            timing["data_s"] += now - clock
            good = _readable_items(batch, opts.skip_bad, journal, stats)
            if good:
                data = model.data_preprocessor({"inputs": [i["inputs"] for i in good],
                                                "data_samples": [i["data_samples"] for i in good]})
                predictions = _predict(model, data, good)
                if procs.device.type == "cuda":
                    torch.cuda.synchronize(procs.device)
                t_model = time.perf_counter()
                timing["model_s"] += t_model - now
                counts = metric.update([s.pred_sem_seg.data[0] for s in predictions],
                                       [s.gt_sem_seg.data[0] for s in predictions])
                counts = [matrix.cpu().numpy() for matrix in counts]  # once, for the journal and the observers
                for item, matrix in zip(good, counts):
                    journal.record(item["key"], matrix)
                stats.evaluated += len(good)
                t_metric = time.perf_counter()
                timing["metric_s"] += t_metric - t_model
                for item, sample, matrix in zip(good, predictions, counts):
                    for observer in observers:  # item["inputs"]: the decoded image, before normalisation
                        observer.on_image(item["key"], sample, matrix, item["inputs"])
                timing["write_s"] += time.perf_counter() - t_metric
            bar.update(len(batch))
            clock = time.perf_counter()
    finally:
        bar.close()
        t_wait = time.perf_counter()
        for observer in observers:
            observer.close()
        timing["write_s"] += time.perf_counter() - t_wait


# --- the report's examples ----------------------------------------------------------------------

def save_examples(work_dir: Path, created: str, worst, best, cfg: Config, classes: ClassNames,
                  metric: SegConfusionMetric, model: torch.nn.Module, images: ImageList) -> None:
    """Panels of the run's worst and best images in ``<work_dir>/examples/`` (rank 0, after
    ``metrics.json``). A failure here costs the report its examples, never the results: it is
    logged, and the examples folder is left without an ``examples.json`` of this run."""
    folder = work_dir / EXAMPLES_DIR
    try:
        (folder / EXAMPLES_FILE).unlink(missing_ok=True)  # no stale list beside the new results
        if not worst and not best:
            return
        write_examples(folder, created, worst, best, run_palette(cfg, classes), classes.classes,
                       classes.num_classes, metric.ignore_index,
                       lambda lacking: predict_again(model, cfg, images, classes, metric, lacking))
    except Exception as err:  # noqa: BLE001 - the results are written; the pictures must not undo the run
        logger.warning("the report's example panels were not written (%s: %s); metrics.json is complete",
                       type(err).__name__, one_line(err), exc_info=not isinstance(err, OSError))


def predict_again(model: torch.nn.Module, cfg: Config, images: ImageList, classes: ClassNames,
                  metric: SegConfusionMetric, examples) -> None:
    """Label and prediction of examples a resumed run restored from its journal (one at a time)."""
    samples = CheckedSamples(images.layout, [e.key for e in examples], cfg.test_dataloader.dataset.pipeline,
                             classes.num_classes, metric.ignore_index)
    for i, example in enumerate(examples):
        item = samples[i]
        if "error" in item:
            logger.warning("report example %s left out: %s", example.key, item["error"])
            continue
        data = model.data_preprocessor({"inputs": [item["inputs"]], "data_samples": [item["data_samples"]]})
        sample = model.predict(**data)[0]
        example.label = sample.gt_sem_seg.data[0].cpu().numpy()
        example.pred = sample.pred_sem_seg.data[0].cpu().numpy()


# --- results ------------------------------------------------------------------------------------

def assemble_results(experiment: Experiment, opts: EvalOptions, images: ImageList, computed: Dict[str, Any],
                     gathered: List[Dict[str, Any]], model: torch.nn.Module, procs: Processes, wall: float,
                     text_s: float, num_workers: int) -> Dict[str, Any]:
    """The ``metrics.json`` content (schema in ``clip_surgery_seg/results.py``)."""
    cfg = experiment.cfg
    sample_skipped = [s for g in gathered for s in g["skipped"]]
    skipped = sorted(images.skipped + sample_skipped, key=lambda s: s["image"])
    evaluated = sum(g["evaluated"] for g in gathered)
    precision = model.compute_precision(procs.device) if hasattr(model, "compute_precision") else None
    timing = {k: round(max(g["timing"][k] for g in gathered), 3) for k in gathered[0]["timing"]}
    return {
        "schema": SCHEMA,
        "created": utc_now(),
        "complete": True,
        "partial": bool(skipped),
        "dataset": {"name": images.name, "type": cfg.test_dataloader.dataset.type,
                    "data_root": str(images.layout.data_root), "num_images": len(images.keys) - len(sample_skipped),
                    "expected_images": images.expected_images, "num_classes": len(computed["per_class"]),
                    "limit": opts.limit, "background_index": cfg.model.get("background_index")},
        "summary": computed["summary"],
        "per_class": computed["per_class"],
        **experiment.sections(precision),
        "config": jsonable(cfg.to_dict()),
        "config_file": os.path.relpath(experiment.config_file),
        "config_hash": experiment.config_hash(),
        "code": code_version(),
        "environment": {**environment(procs.device), "world_size": procs.world,
                        "window_batch_size": getattr(getattr(model, "batcher", None), "batch_size", None),
                        "images_per_batch": int(cfg.test_dataloader.get("batch_size", 1)),
                        "num_workers": num_workers},
        "timing": {"wall_s": round(wall, 3), "images_per_s": round(evaluated / wall, 3) if wall > 0 else None,
                   "text_s": round(text_s, 3), **timing,
                   "resumed_images": sum(g["restored"] for g in gathered)},
        "skipped": skipped,
    }


__all__ = ["EvalOptions", "EvaluationInterrupted", "evaluate", "default_work_dir", "RESULTS_FILE"]
