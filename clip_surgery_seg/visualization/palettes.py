"""Class colours: the datasets' usual palettes (mmseg's ``METAINFO['palette']``), a deterministic
fallback for any other class count, and the fixed colours for ignored pixels.

A palette is a ``(K, 3)`` uint8 array: row ``k`` is the RGB colour of class ``k``.
"""
from __future__ import annotations

import colorsys
import functools
from typing import Dict, Optional, Tuple

import numpy as np
from PIL import Image

#: Ignored pixels (label 255) and label values outside ``[0, K)``. A grey that is in none of the
#: dataset palettes below (they hold 0, 64, 70, 120, 128, 140, 153, 192, 220 and 230 greys).
IGNORE_COLOR: Tuple[int, int, int] = (200, 200, 200)

def _frozen(array: np.ndarray) -> np.ndarray:
    # palettes are cached and shared: read-only, so no caller can change another caller's colours
    array.setflags(write=False)
    return array


def dataset_palette(dataset_type: str) -> np.ndarray:
    """``(K, 3)`` uint8 (read-only): the ``METAINFO['palette']`` of a registered mmseg dataset type
    (mmseg's own, and this harness's ``PascalVOC20Dataset``, ``COCOObjectDataset``).

    mmseg's palettes are used as they are, duplicates included: ADE20K, Pascal Context and
    COCO-Stuff give a few classes the same colour (see :func:`duplicate_colors`).

    Raises:
        KeyError: a type no registry knows, or one without a palette.
    """
    palette = _registered_palette(dataset_type)
    if palette is None:
        raise KeyError(f"no palette for dataset type {dataset_type!r}: not a registered mmseg dataset with a "
                       "METAINFO palette")
    return palette


@functools.lru_cache(maxsize=None)
def _registered_palette(dataset_type: str) -> Optional[np.ndarray]:
    from mmseg.registry import DATASETS  # imported here: the registry is heavy, and most callers pass a palette

    cls = DATASETS.get(dataset_type)
    colours = getattr(cls, "METAINFO", {}).get("palette") if cls is not None else None
    if not colours:
        return None
    return _frozen(np.asarray(colours, dtype=np.uint8).reshape(-1, 3))


def _bit_color(index: int) -> Tuple[int, int, int]:
    """The Pascal VOC colour of ``index``: the index's bits spread over R, G and B (a bijection on
    ``[0, 2**24)``), used to break ties in the fallback palette."""
    r = g = b = 0
    for shift in range(8):
        r |= ((index >> (3 * shift)) & 1) << (7 - shift)
        g |= ((index >> (3 * shift + 1)) & 1) << (7 - shift)
        b |= ((index >> (3 * shift + 2)) & 1) << (7 - shift)
    return r, g, b


@functools.lru_cache(maxsize=32)
def fallback_palette(num_classes: int) -> np.ndarray:
    """``(num_classes, 3)`` uint8 (read-only): distinct, saturated colours for any class count, the same every time.

    Hues step by the golden ratio (neighbouring classes get far-apart hues); saturation and value
    cycle through three levels each so that large K stays distinguishable. No colour repeats and
    none is a grey (so none is :data:`IGNORE_COLOR`); a rare clash after rounding to 8 bits is
    replaced by the next unused Pascal-VOC bit colour.
    """
    if num_classes < 0:
        raise ValueError(f"num_classes must be >= 0, not {num_classes}")
    colors = np.zeros((num_classes, 3), dtype=np.uint8)
    used = {IGNORE_COLOR}
    spare = 1
    for k in range(num_classes):
        hue = (0.6180339887498949 * k) % 1.0
        saturation = (0.85, 0.6, 1.0)[k % 3]
        value = (0.95, 0.75, 0.55)[(k // 3) % 3]
        rgb = tuple(int(round(255 * c)) for c in colorsys.hsv_to_rgb(hue, saturation, value))
        while rgb in used or rgb[0] == rgb[1] == rgb[2]:
            rgb, spare = _bit_color(spare), spare + 1
        used.add(rgb)
        colors[k] = rgb
    return _frozen(colors)


def palette_for(num_classes: int, dataset_type: Optional[str] = None) -> np.ndarray:
    """``(num_classes, 3)`` uint8: the palette to draw ``num_classes`` classes with.

    The palette of the registered mmseg dataset type ``dataset_type`` (a dataset config's ``type``)
    when it has ``num_classes`` colours; otherwise (no type, an unknown one, a custom class list)
    :func:`fallback_palette`.
    """
    palette = _registered_palette(dataset_type) if dataset_type else None
    if palette is not None and len(palette) == num_classes:
        return palette
    return fallback_palette(num_classes)


def duplicate_colors(palette: np.ndarray) -> Dict[Tuple[int, int, int], Tuple[int, ...]]:
    """Colours given to more than one class: ``{rgb: (class, class, ...)}`` (legends name them all)."""
    seen: Dict[Tuple[int, int, int], list] = {}
    for k, rgb in enumerate(np.asarray(palette).tolist()):
        seen.setdefault(tuple(rgb), []).append(k)
    return {rgb: tuple(ks) for rgb, ks in seen.items() if len(ks) > 1}


def color_lut(palette: np.ndarray, ignore_color: Tuple[int, int, int] = IGNORE_COLOR) -> np.ndarray:
    """``(max(256, K + 1), 3)`` uint8: row ``v`` is the colour of label value ``v``.

    Rows ``[0, K)`` are the palette; every other row (255 = ignore, and values a model should never
    produce) is ``ignore_color``. The last row also stands for any value beyond the table.
    """
    palette = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
    lut = np.empty((max(256, len(palette) + 1), 3), dtype=np.uint8)
    lut[:] = ignore_color
    lut[: len(palette)] = palette
    return lut


def indexed_to_rgb(index: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """``(H, W)`` uint8 indices -> ``(H, W, 3)`` uint8 ``lut[index]`` for a ``(256, 3)`` uint8 table.

    Done by PIL's palette conversion, about 4x faster than numpy's gather for 3-byte rows. The
    result is read-only (it is PIL's buffer): copy it to draw on it.
    """
    index = np.ascontiguousarray(index, dtype=np.uint8)
    lut = np.ascontiguousarray(lut, dtype=np.uint8)
    if lut.shape != (256, 3):
        raise ValueError(f"the colour table must be (256, 3), not {lut.shape}")
    if index.ndim != 2 or index.size == 0:
        return lut[index]
    image = Image.frombuffer("P", (index.shape[1], index.shape[0]), index, "raw", "P", 0, 1)
    image.putpalette(lut.tobytes(), "RGB")
    return np.asarray(image.convert("RGB"))


def colorize(labels: np.ndarray, palette: np.ndarray,
             ignore_color: Tuple[int, int, int] = IGNORE_COLOR) -> np.ndarray:
    """``(H, W)`` integer labels -> ``(H, W, 3)`` uint8 colours (read-only).

    Label ``k`` in ``[0, K)`` gets ``palette[k]``; anything else (the ignore value 255, negative or
    too-large values) gets ``ignore_color``.
    """
    lut = color_lut(palette, ignore_color)
    labels = np.asarray(labels)
    if labels.dtype != np.uint8:
        index = labels.astype(np.int64, copy=False)
        outside = (index < 0) | (index >= len(lut))
        if len(lut) > 256:  # more than 255 classes: no uint8 index, numpy's gather
            return lut[np.where(outside, len(lut) - 1, index)]
        labels = np.where(outside, 255, index).astype(np.uint8)  # row 255 is the ignore colour here
    return indexed_to_rgb(labels, lut)
