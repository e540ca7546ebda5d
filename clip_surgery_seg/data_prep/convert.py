"""Label-file conversions to the datasets' encodings, written atomically and skipped when up to date.

The tables themselves live in ``clip_surgery_seg.datasets.encodings``: Cityscapes ``*_labelIds.png``
-> ``*_labelTrainIds.png``, COCO-Stuff stuffthingmaps -> ``*_labelTrainIds.png`` (171 classes) and
``*_instanceTrainIds.png`` (COCO-Object, 81 classes), PASCAL Context's 459-class ``trainval/*.mat``
-> ``SegmentationClassContext/*.png``.
"""
from __future__ import annotations

import os
import re
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from ..datasets.encodings import (CONTEXT59_CLASSES, cityscapes_train_ids, coco_object_labels, coco_stuff_train_ids,
                                  context59_from_full)
from ..errors import ConversionError
from ..fileio import atomic_path, write_error


def read_label_png(path: Path) -> np.ndarray:
    """An 8-bit single-channel (L or P) PNG as its stored indices."""
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in ("L", "P"):
                return np.asarray(image)
            mode = image.mode
    except Image.DecompressionBombError as err:
        pixels = re.search(r"\((\d+) pixels\)", str(err))
        raise ConversionError(f"{path}: label map of {pixels.group(1) if pixels else 'more'} pixels is over "
                              f"Pillow's decompression-bomb limit ({2 * (Image.MAX_IMAGE_PIXELS or 0)} pixels); "
                              "no label map of the dataset is that large: extract it again") from None
    except (OSError, ValueError, SyntaxError) as err:
        raise ConversionError(f"{path}: unreadable or truncated label map ({err}); extract it "
                              "again") from None
    raise ConversionError(f"{path}: image mode {mode}, expected an 8-bit single-channel label map; is "
                          "this the right file?")


def write_label_png(path: Path, label: np.ndarray) -> None:
    """Write a uint8 label map as an 8-bit grayscale PNG, atomically (a failed write is an OutputError)."""
    try:
        with atomic_path(path) as tmp:
            Image.fromarray(np.ascontiguousarray(label, dtype=np.uint8)).save(tmp, format="PNG")
    except OSError as err:
        raise write_error(path, err) from err


def read_context_mat(path: Path) -> np.ndarray:
    """The ``LabelMap`` of one PASCAL Context ``trainval/<id>.mat`` file."""
    try:
        from scipy.io import loadmat
    except ImportError:
        raise ConversionError("reading PASCAL Context's .mat annotations needs scipy: "
                              "pip install scipy") from None
    try:
        content = loadmat(str(path))
    except Exception as err:  # scipy raises ValueError, MatReadError, OSError, ... for a bad file
        raise ConversionError(f"{path}: unreadable .mat file ({err}); extract trainval.tar.gz "
                              "again") from None
    if "LabelMap" not in content:
        variables = sorted(k for k in content if not k.startswith("__"))
        raise ConversionError(f"{path}: no 'LabelMap' variable (has {variables}); is this a PASCAL "
                              "Context trainval annotation?")
    return np.asarray(content["LabelMap"])


def convert_cityscapes_file(src: Path, dst: Path) -> None:
    write_label_png(dst, cityscapes_train_ids(read_label_png(src), str(src)))


def convert_coco_stuff_file(src: Path, dst: Path) -> None:
    write_label_png(dst, coco_stuff_train_ids(read_label_png(src), str(src)))


def convert_coco_object_file(src: Path, dst: Path) -> None:
    write_label_png(dst, coco_object_labels(read_label_png(src), str(src)))


def convert_context_file(src: Path, dst: Path) -> None:
    write_label_png(dst, context59_from_full(read_context_mat(src), str(src)))


def check_context_label_names(labels_txt: Path) -> None:
    """Check that the release's ``labels.txt`` ('<id>: <name>' lines) names the 59 classes at the
    ids this converter uses; a different release would silently swap classes otherwise."""
    names: Dict[int, str] = {}
    for line in labels_txt.read_text(encoding="utf-8", errors="replace").splitlines():
        match = re.match(r"\s*(\d+)\s*:\s*(.+?)\s*$", line)
        if match:
            names[int(match.group(1))] = match.group(2)
    squash = lambda s: re.sub(r"[\s_]", "", s.lower())  # noqa: E731  ('potted plant' = 'pottedplant')
    wrong = [f"{full}={names.get(full)!r} (expected {name!r})" for full, name in CONTEXT59_CLASSES
             if squash(names.get(full, "")) != squash(name)]
    if wrong:
        raise ConversionError(f"{labels_txt}: the 459-class list differs from the one this converter maps "
                              f"({'; '.join(wrong[:4])}); this is not the annotation release of "
                              "https://cs.stanford.edu/~roozbeh/pascal-context/")


@dataclass
class ConvertStats:
    written: int = 0
    skipped: int = 0  # output already newer than its source


def _up_to_date(src: Path, dst: Path) -> bool:
    return dst.is_file() and dst.stat().st_mtime >= src.stat().st_mtime


def _run(job: Tuple[Callable[[Path, Path], None], Path, Path]) -> None:
    fn, src, dst = job
    fn(src, dst)


def convert_many(fn: Callable[[Path, Path], None], pairs: Sequence[Tuple[Path, Path]], *,
                 workers: Optional[int] = None, progress: bool = False, desc: str = "converting",
                 force: bool = False) -> ConvertStats:
    """Run ``fn(src, dst)`` for every pair whose output is missing or older than its source."""
    todo = [(fn, src, dst) for src, dst in pairs if force or not _up_to_date(src, dst)]
    stats = ConvertStats(written=len(todo), skipped=len(pairs) - len(todo))
    workers = workers or min(8, os.cpu_count() or 1)
    from tqdm import tqdm

    bar = tqdm(total=len(todo), desc=desc, unit="file", disable=not progress)
    try:
        if workers <= 1 or len(todo) < 64:
            for job in todo:
                _run(job)
                bar.update()
        else:
            with ProcessPoolExecutor(workers) as pool:
                for _ in pool.map(_run, todo, chunksize=32):
                    bar.update()
    finally:
        bar.close()
    return stats


def label_pairs(folder: Path, source_suffix: str, target_suffix: str,
                stem_pattern: str = r".+") -> List[Tuple[Path, Path]]:
    """(source, target) for every ``<stem><source_suffix>`` file under ``folder`` (recursively)
    whose stem matches ``stem_pattern`` (e.g. ``\d+``: the COCO maps, not what was made from them)."""
    pairs = []
    for src in sorted(folder.rglob(f"*{source_suffix}")):
        stem = src.name[: -len(source_suffix)]
        if src.name.startswith(".") or not re.fullmatch(stem_pattern, stem):
            continue
        pairs.append((src, src.with_name(stem + target_suffix)))
    return pairs
