"""Small synthetic datasets written in the exact on-disk layout and file naming of the real ones.

For tests, benchmarks and offline smoke runs: random images with blocky label maps that use every
encoding detail of each dataset (ADE's 0 = other, Context's 0 = background, 255 = ignore, VOC's
palette PNGs, ...). Folders and suffixes come from the dataset's config, the rest from its catalogue
entry. Datasets that read the same files (voc21/voc20, the two Contexts, and the COCO images of
coco_stuff171/coco_object) overwrite each other's shared files: write them with the same image size.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import List, Optional, Tuple, Union

import numpy as np
from PIL import Image

from . import catalog
from .encodings import CITYSCAPES_ID_TO_TRAINID


def _image(rng: np.random.Generator, shape: Tuple[int, int], label: np.ndarray) -> np.ndarray:
    """An RGB image whose colour follows the label map, plus noise (so a model has something to see)."""
    palette = rng.integers(0, 256, size=(256, 3))
    noise = rng.integers(-20, 21, size=(*shape, 3))
    return np.clip(palette[label] + noise, 0, 255).astype(np.uint8)


def _save_image(image: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    picture = Image.fromarray(image)
    picture.save(path, quality=92) if path.suffix == ".jpg" else picture.save(path)


def _save_label(label: np.ndarray, path: Path, palette: Optional[np.ndarray] = None) -> None:
    """An 8-bit PNG of the stored values: grey, or with ``palette`` (256, 3) a palette PNG whose
    indices are the values (as VOC's label files are released)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    picture = Image.fromarray(np.ascontiguousarray(label, dtype=np.uint8))
    if palette is not None:
        picture.putpalette(np.asarray(palette, dtype=np.uint8).reshape(-1).tolist())  # L -> P, same indices
    picture.save(path)


def write_synthetic(dataset: str, data_root: Union[str, Path], num_images: int = 4,
                    image_size: Optional[Tuple[int, int]] = None, seed: int = 0,
                    cityscapes_frame: Optional[Path] = None) -> Path:
    """Write ``num_images`` image/label pairs of ``dataset`` under ``data_root``.

    Args:
        dataset: a catalogue name (``ade20k``, ``coco_stuff171``, ``cityscapes``, ...).
        data_root: the folder that ``--data-root`` points at.
        image_size: (H, W); None for the dataset's typical size.
        cityscapes_frame: the ``pseudo_cityscapes_dataset`` folder of the shared fixtures; its real
            frame (image, labelIds, trainIds) becomes one of the Cityscapes images.

    Returns:
        The dataset folder (``data_root / data_subdir``). A split list (``ann_file``) is written
        when the layout has one; Cityscapes also gets ``_gtFine_labelIds.png`` maps consistent with
        the trainIds.
    """
    info = catalog.get(dataset)
    layout = info.layout(data_root)
    spec = info.synthetic
    rng = np.random.default_rng(seed)
    shape = tuple(image_size or spec.image_size)
    train_to_id = {t: i for i, t in CITYSCAPES_ID_TO_TRAINID.items()}
    stems: List[str] = []
    for index in range(num_images):
        stem = spec.stem(index)
        stems.append(stem)
        label = spec.stored_labels(rng, shape)
        _save_image(_image(rng, shape, label), layout.image_path(stem))
        _save_label(label, layout.label_path(stem), spec.palette)
        if info.name == "cityscapes":
            ids = np.zeros_like(label)  # 0 = unlabeled, mapped to 255
            for train_id, label_id in train_to_id.items():
                ids[label == train_id] = label_id
            _save_label(ids, Path(str(layout.label_path(stem)).replace("_labelTrainIds", "_labelIds")))
    if info.name == "cityscapes" and cityscapes_frame is not None:
        frame = Path(cityscapes_frame)
        for src in frame.rglob("*.png"):
            dst = layout.data_root / src.relative_to(frame)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
    if layout.ann_file is not None:
        layout.ann_file.parent.mkdir(parents=True, exist_ok=True)
        layout.ann_file.write_text("\n".join(stems) + "\n")
    return layout.data_root
