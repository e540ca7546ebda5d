"""What the evaluation loop shows each image to: ``--show-dir`` panels and the report's examples.

An :class:`ImageObserver` sees every image after it is counted: its key, the mmseg data sample
(prediction and ground truth), its confusion counts and the decoded image the loader produced (the
uint8 ``(3, H, W)`` RGB tensor, before normalisation: no second decode). Observers work on the
rank's own images; the engine gathers what rank 0 needs.

* :class:`PanelWriter` (``--show-dir``): one panel per image, image | ground truth / prediction |
  errors, in the dataset's palette, rendered and encoded on the ``PngWriter``'s threads.
  Files that stand for one image are named by its key (:func:`output_name`): ``a/x`` (the image
  ``<img_dir>/a/x.jpg``) is ``<folder>/a/x.png``, so images of one name in two subfolders
  (Cityscapes' cities) keep a file each.
* :class:`ExampleKeeper`: the k worst and the k best images by their own mIoU, with their label and
  prediction (two small arrays each), for the run report; :func:`gather_examples` picks the run's
  k worst and k best over every rank and :func:`write_examples` renders their panels.

A resumed run restores images from its progress journal without predicting them again. An
observer that writes one file per image says which restored images lack their file
(:meth:`ImageObserver.missing`): those are evaluated again, so a resumed run leaves the same files
as an uninterrupted one. The example keeper ranks restored images by their journal counts; a
restored image among the winners is predicted again at the end (``write_examples``).
"""
from __future__ import annotations

import bisect
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..errors import DataLayoutError
from ..evaluation.metric import confusion_matrix, image_miou
from ..fileio import atomic_write_json
from ..results import EXAMPLES_FILE

logger = logging.getLogger("clip_surgery_seg")

#: images shown in the report as the worst and as the best
REPORT_EXAMPLES = 4
#: the names :func:`write_examples` gives its panels (and the only PNGs it deletes)
_PANEL_NAME = re.compile(r"(worst|best)_\d+\.png")


class ImageObserver:
    """Sees every image the loop evaluates, after it is counted (writes pictures, keeps examples).

    ``close`` waits for any background work and raises what failed: nothing is dropped silently.
    """

    def on_image(self, key: str, sample: Any, counts: np.ndarray, image: torch.Tensor) -> None:
        """``sample``: the mmseg data sample (``pred_sem_seg``, ``gt_sem_seg``, ``metainfo``);
        ``counts``: the image's (K, K + 1) int64 confusion counts; ``image``: the decoded (3, H, W)
        uint8 RGB image (CPU)."""

    def missing(self, key: str, img_path: Path) -> bool:
        """For a resumed run: whether this restored image lacks what this observer writes for it
        (then it is evaluated again instead of restored)."""
        return False

    def on_restored(self, key: str, img_path: Path, counts: np.ndarray) -> None:
        """A resumed run's image, restored from the journal (counted, not predicted again)."""

    def close(self) -> None:
        pass


def _title(key: str, counts) -> str:
    miou = image_miou(counts)
    return f"{key}   mIoU {miou:.2f}%" if miou == miou else f"{key}   (no labelled pixel)"


def _labels(tensor: torch.Tensor, num_classes: int) -> torch.Tensor:
    """A (1, H, W) label or prediction map as a compact CPU tensor (uint8 while the classes fit)."""
    return tensor.data[0].to("cpu", torch.uint8 if num_classes < 255 else torch.int32)


def output_name(key: str) -> Path:
    """The relative file name of image ``key``'s output: ``<key>.png``, subfolders kept.

    A key is the image's path below the image folder without its suffix (``ImageList.keys``), so it
    is unique where a bare stem is not. A key that would leave the output folder (absolute, or
    with ``..``: only a split list can name one) is refused rather than written outside it.
    """
    parts = Path(key).parts
    if not parts or Path(key).is_absolute() or ".." in parts:
        raise DataLayoutError(f"image {key!r} is not a path inside the image folder, so it has no file name in "
                              "--save-preds or --show-dir; fix the split list that names it")
    return Path(f"{key}.png")


def writer_threads() -> int:
    """Threads drawing and encoding panels: 2, up to 4 where the machine has cores to spare (a
    panel costs ~80 ms of CPU at ADE20K size; a GPU run evaluates faster than 2 threads draw)."""
    return min(4, max(2, (os.cpu_count() or 2) // 4))


class PanelWriter(ImageObserver):
    """``--show-dir``: ``<folder>/<image key>.png`` per image (``visualization.render_panel``).

    The main thread only moves the prediction to the CPU; rendering and encoding run on the
    writer's threads (at most ``max_pending`` images wait, so memory stays bounded).
    """

    def __init__(self, folder: Path, palette: np.ndarray, class_names: Sequence[str], writer=None) -> None:
        from ..visualization import PngWriter

        self.folder = Path(folder)
        self.palette = palette
        self.class_names = list(class_names)
        self._writer = writer or PngWriter(workers=writer_threads())

    def path(self, key: str) -> Path:
        return self.folder / output_name(key)

    def on_image(self, key: str, sample: Any, counts: np.ndarray, image: torch.Tensor) -> None:
        from ..visualization import render_panel

        k = len(self.palette)
        label, pred = _labels(sample.gt_sem_seg, k), _labels(sample.pred_sem_seg, k)
        title = _title(key, counts)

        def render():
            return render_panel(image.permute(1, 2, 0).numpy(), label.numpy(), pred.numpy(), self.palette,
                                self.class_names, title=title)

        self._writer.submit(self.path(key), render)

    def missing(self, key: str, img_path: Path) -> bool:
        return not self.path(key).is_file()

    def close(self) -> None:
        self._writer.close()


# --- the report's examples ------------------------------------------------------------------------

@dataclass
class Example:
    """One image chosen for the report: its key, image file, mIoU, and (when this process has them)
    its label and prediction, ``(H, W)`` arrays."""

    key: str
    img_path: str
    miou: float
    label: Optional[np.ndarray] = None
    pred: Optional[np.ndarray] = None


class ExampleKeeper(ImageObserver):
    """The ``k`` worst and ``k`` best images of this rank by their own mIoU (``image_miou``).

    Worst is ascending ``(mIoU, key)``, best the exact reverse, so that the run's k worst and k best
    are disjoint whenever it has 2k images or more, and the choice does not depend on how the
    images were split between ranks. Images without a labelled pixel (no mIoU) are not ranked.
    Only the images in either list keep their arrays (uint8 while the classes fit).
    """

    def __init__(self, num_classes: int, k: int = REPORT_EXAMPLES) -> None:
        self.num_classes, self.k = num_classes, k
        self._worst: List[Tuple[float, str]] = []  # ascending (miou, key), at most k
        self._best: List[Tuple[float, "_Reversed"]] = []  # ascending (-miou, key in reverse order), at most k
        self.examples: Dict[str, Example] = {}

    def _entries(self, miou: float, key: str):
        return ((self._worst, (miou, key)), (self._best, (-miou, _Reversed(key))))

    def _wanted(self, miou: float, key: str) -> bool:
        if self.k < 1 or miou != miou:
            return False
        return any(len(ranking) < self.k or entry < ranking[-1] for ranking, entry in self._entries(miou, key))

    def _keep(self, example: Example) -> None:
        for ranking, entry in self._entries(example.miou, example.key):
            bisect.insort(ranking, entry)
            del ranking[self.k:]
        self.examples[example.key] = example
        chosen = {key for _, key in self._worst} | {r.key for _, r in self._best}
        for key in [key for key in self.examples if key not in chosen]:
            del self.examples[key]

    def on_image(self, key: str, sample: Any, counts: np.ndarray, image: torch.Tensor) -> None:
        miou = image_miou(counts)
        if self._wanted(miou, key):  # arrays only for the images that enter a list
            self._keep(Example(key, str(sample.metainfo["img_path"]), miou,
                               _labels(sample.gt_sem_seg, self.num_classes).numpy(),
                               _labels(sample.pred_sem_seg, self.num_classes).numpy()))

    def on_restored(self, key: str, img_path: Path, counts: np.ndarray) -> None:
        miou = image_miou(counts)
        if self._wanted(miou, key):
            self._keep(Example(key, str(img_path), miou))

    def candidates(self) -> List[Example]:
        """This rank's kept images, arrays included where it predicted them."""
        return list(self.examples.values())


class _Reversed:
    """A key that sorts in the reverse order of its string (the best list's tie-break)."""

    __slots__ = ("key",)

    def __init__(self, key: str) -> None:
        self.key = key

    def __lt__(self, other: "_Reversed") -> bool:
        return self.key > other.key

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Reversed) and self.key == other.key


def choose_examples(candidates: Sequence[Example], k: int) -> Tuple[List[Example], List[Example]]:
    """The ``k`` worst (lowest mIoU first) and the ``k`` best (highest first) of ``candidates``,
    disjoint: with fewer than 2k images, the best are those that are not among the worst."""
    ranked = sorted(candidates, key=lambda e: (e.miou, e.key))
    worst = ranked[:k]
    best = ranked[k:][::-1][:k]
    return worst, best


def gather_examples(keeper: Optional[ExampleKeeper], procs) -> Tuple[List[Example], List[Example]]:
    """The run's k worst and k best images with their arrays, on rank 0 (empty lists elsewhere).

    A collective: every rank calls it. First every rank's candidates without arrays (small), from
    which every rank computes the same choice; then only the chosen images' arrays go to rank 0.
    """
    k = keeper.k if keeper is not None else 0
    local = keeper.candidates() if keeper is not None else []
    scores = procs.gather([(e.key, e.img_path, e.miou) for e in local])
    everyone = [Example(key, path, miou) for part in scores for key, path, miou in part]
    worst, best = choose_examples(everyone, k)
    chosen = {e.key for e in worst + best}
    arrays = procs.gather({e.key: (e.label, e.pred) for e in local if e.key in chosen and e.label is not None})
    if procs.rank != 0:
        return [], []
    held = {key: value for part in arrays for key, value in part.items()}
    for example in worst + best:
        example.label, example.pred = held.get(example.key, (None, None))
    return worst, best


def write_examples(folder: Path, created: str, worst: Sequence[Example], best: Sequence[Example],
                   palette: np.ndarray, class_names: Sequence[str], num_classes: int, ignore_index: int,
                   predict_again: Callable[[List[Example]], None]) -> Path:
    """Render the chosen images' panels into ``folder`` and list them in ``folder/examples.json``.

    ``predict_again`` fills in ``label``/``pred`` of examples that have none (restored by a resumed
    run). Each panel's mIoU is that of the arrays it shows. ``created`` is the run's results time:
    the report uses the examples only with the ``metrics.json`` of the same run.
    """
    from ..datasets.transforms import read_image_rgb
    from ..visualization import encode_png, render_panel
    from ..fileio import atomic_write_bytes

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lacking = [e for e in list(worst) + list(best) if e.label is None]
    if lacking:
        predict_again(lacking)
    listed = []
    for kind, chosen in (("worst", worst), ("best", best)):
        for n, example in enumerate(chosen, start=1):
            if example.label is None:
                continue  # could not be read again: left out (predict_again said why)
            counts = confusion_matrix(torch.from_numpy(example.pred), torch.from_numpy(example.label), num_classes,
                                      ignore_index)
            miou = image_miou(counts)
            panel = render_panel(read_image_rgb(example.img_path), example.label, example.pred, palette, class_names,
                                 title=_title(example.key, counts))
            name = f"{kind}_{n:02d}.png"
            atomic_write_bytes(folder / name, encode_png(panel), fsync=False)
            listed.append({"kind": kind, "name": example.key, "image": example.img_path, "panel": name,
                           "miou": None if miou != miou else miou})
    for stale in folder.glob("*.png"):  # only panels it names itself: other files there are not its own
        if _PANEL_NAME.fullmatch(stale.name) and stale.name not in {e["panel"] for e in listed}:
            stale.unlink()
    atomic_write_json(folder / EXAMPLES_FILE, {"created": created, "examples": listed})
    return folder / EXAMPLES_FILE
