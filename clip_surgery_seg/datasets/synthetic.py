"""Small synthetic datasets written in the exact on-disk layout and file naming of the real ones.

For tests, benchmarks and offline smoke runs: random images with blocky label maps that use every
encoding detail of each dataset (ADE's 0 = other, Context's 0 = background, 255 = ignore, ...).
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple, Union

import numpy as np
from PIL import Image

from ..data_prep.convert import CITYSCAPES_ID_TO_TRAINID  # official labelId -> trainId (255 = ignore)


@dataclass(frozen=True)
class SyntheticSpec:
    subdir: str  # under the data root, as data_subdir in the config
    num_classes: int
    image_size: Tuple[int, int]  # (H, W) default
    name_fn: Callable[[int], str]  # index -> stem (may contain a subfolder)
    img_rel: str
    seg_rel: str
    img_suffix: str
    seg_suffix: str
    raw_values: Callable[[np.random.Generator, Tuple[int, int]], np.ndarray]


def _blocks(rng: np.random.Generator, shape: Tuple[int, int], values: np.ndarray, cells: int = 6) -> np.ndarray:
    """A label map of rectangular regions, each a value drawn from ``values``."""
    h, w = shape
    grid = rng.choice(values, size=(cells, cells))
    ys = np.minimum(np.arange(h) * cells // h, cells - 1)
    xs = np.minimum(np.arange(w) * cells // w, cells - 1)
    return grid[ys][:, xs].astype(np.uint8)


def _with_ignore(values: np.ndarray) -> np.ndarray:
    return np.concatenate([values, [255]])


SPECS: Dict[str, SyntheticSpec] = {
    "ade20k": SyntheticSpec(
        "ADEChallengeData2016", 150, (512, 683), lambda i: f"ADE_val_{i + 1:08d}",
        "images/validation", "annotations/validation", ".jpg", ".png",
        lambda rng, s: _blocks(rng, s, np.arange(0, 151))),  # 0 = other
    "coco_stuff171": SyntheticSpec(
        "coco_stuff164k", 171, (480, 640), lambda i: f"{139 + 146 * i:012d}",
        "images/val2017", "annotations/val2017", ".jpg", "_labelTrainIds.png",
        lambda rng, s: _blocks(rng, s, _with_ignore(np.arange(171)))),
    "cityscapes": SyntheticSpec(
        "cityscapes", 19, (512, 1024),
        lambda i: f"{('frankfurt', 'lindau', 'munster')[i % 3]}/{('frankfurt', 'lindau', 'munster')[i % 3]}_{i:06d}_000019",
        "leftImg8bit/val", "gtFine/val", "_leftImg8bit.png", "_gtFine_labelTrainIds.png",
        lambda rng, s: _blocks(rng, s, _with_ignore(np.arange(19)))),
    "pascal_context59": SyntheticSpec(
        "VOCdevkit/VOC2010", 59, (375, 500), lambda i: f"2008_{2 + 3 * i:06d}",
        "JPEGImages", "SegmentationClassContext", ".jpg", ".png",
        lambda rng, s: _blocks(rng, s, np.arange(0, 60))),  # 0 = background
}


def _image(rng: np.random.Generator, shape: Tuple[int, int], label: np.ndarray) -> np.ndarray:
    """An RGB image whose colour follows the label map, plus noise (so a model has something to see)."""
    palette = rng.integers(0, 256, size=(256, 3))
    noise = rng.integers(-20, 21, size=(*shape, 3))
    return np.clip(palette[label] + noise, 0, 255).astype(np.uint8)


def write_synthetic(dataset: str, data_root: Union[str, Path], num_images: int = 4,
                    image_size: Optional[Tuple[int, int]] = None, seed: int = 0,
                    cityscapes_frame: Optional[Path] = None) -> Path:
    """Write ``num_images`` image/label pairs of ``dataset`` under ``data_root``.

    Args:
        dataset: ``ade20k``, ``coco_stuff171``, ``cityscapes`` or ``pascal_context59``.
        data_root: the folder that ``--data-root`` points at.
        image_size: (H, W); None for the dataset's typical size.
        cityscapes_frame: the ``pseudo_cityscapes_dataset`` folder of the shared fixtures; its real
            frame (image, labelIds, trainIds) becomes one of the Cityscapes images.

    Returns:
        The dataset folder (``data_root / subdir``). Cityscapes also gets ``_gtFine_labelIds.png``
        maps consistent with the trainIds; Context gets ``ImageSets/SegmentationContext/val.txt``.
    """
    spec = SPECS[dataset]
    rng = np.random.default_rng(seed)
    root = Path(data_root) / spec.subdir
    shape = tuple(image_size or spec.image_size)
    train_to_id = {t: i for i, t in CITYSCAPES_ID_TO_TRAINID.items()}
    stems: List[str] = []
    for index in range(num_images):
        stem = spec.name_fn(index)
        stems.append(stem)
        label = spec.raw_values(rng, shape)
        img_path = root / spec.img_rel / f"{stem}{spec.img_suffix}"
        seg_path = root / spec.seg_rel / f"{stem}{spec.seg_suffix}"
        img_path.parent.mkdir(parents=True, exist_ok=True)
        seg_path.parent.mkdir(parents=True, exist_ok=True)
        image = Image.fromarray(_image(rng, shape, label))
        image.save(img_path, quality=92) if spec.img_suffix == ".jpg" else image.save(img_path)
        Image.fromarray(label, mode="L").save(seg_path)
        if dataset == "cityscapes":
            ids = np.zeros_like(label)  # 0 = unlabeled, mapped to 255
            for train_id, label_id in train_to_id.items():
                ids[label == train_id] = label_id
            Image.fromarray(ids, mode="L").save(str(seg_path).replace("_labelTrainIds", "_labelIds"))
    if dataset == "cityscapes" and cityscapes_frame is not None:
        frame = Path(cityscapes_frame)
        for src in frame.rglob("*.png"):
            dst = root / src.relative_to(frame)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
    if dataset == "pascal_context59":
        split = root / "ImageSets" / "SegmentationContext" / "val.txt"
        split.parent.mkdir(parents=True, exist_ok=True)
        split.write_text("\n".join(stems) + "\n")
    return root
