"""Predictions as pictures: an overlay with a legend, and the four-tile comparison panel.

The panel of one image is a 2 x 2 grid, each tile under its caption, the legend below::

    image        | ground truth
    prediction   | errors

* ground truth and prediction: the labels in the dataset palette; ignored pixels (255) and values
  outside ``[0, K)`` in :data:`~.palettes.IGNORE_COLOR` grey; on the prediction, each class's name
  on its largest region where the region can hold it (:mod:`.regions`);
* errors: the image in grey, dimmed to 40 % (``luma * 2 // 5``, at most 102: never the highlight
  nor the ignore grey), the pixels whose prediction differs from their label in :data:`ERROR_COLOR`,
  ignored pixels in the ignore grey;
* legend: every class present in the ground truth or the prediction (palette colour and name),
  and the ignore grey when there are ignored pixels.

The overlay (:func:`render_overlay`) blends the prediction's colours half and half with the image,
outlines every region in its pure colour and writes the class names on boxes in the pure colours,
so that each legend swatch is a colour of the picture.

Numpy, PIL and scipy.ndimage (the names' places), no matplotlib drawing: a 512 x 683 panel renders
in about 10 ms (see ``benchmarks/bench_visualization.py``).
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from .drawing import (Box, LegendEntry, Panel, as_rgb, blend, class_counts, classes_present, fitted_size, grid,
                      legend_entries, resize_image, resize_labels)
from .palettes import IGNORE_COLOR, colorize, indexed_to_rgb
from .regions import RegionLabel, draw_labels, outline_width, place_labels, region_edges

#: Wrongly predicted pixels in the errors tile. Pure red: the dimmed image never reaches 255.
ERROR_COLOR: Tuple[int, int, int] = (255, 0, 0)
#: Weight of the prediction colours over the image in :func:`render_overlay`.
OVERLAY_ALPHA = 0.5

TILES = ("image", "ground truth", "prediction", "errors")


def _check_labels(name: str, labels: np.ndarray, shape: Tuple[int, int]) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim == 3 and labels.shape[0] == 1:
        labels = labels[0]  # (1, H, W), as mmseg's PixelData holds them
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{name} must be an (H, W) integer array, not {labels.shape} {labels.dtype}")
    if labels.shape != shape:
        raise ValueError(f"{name} is {labels.shape}, the image {shape}")
    return labels


def dimmed_gray(image: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` uint8 -> ``(H, W)`` uint8: the luma ``(19595 R + 38470 G + 7471 B + 32768) >> 16``
    (ITU-R 601, PIL's ``convert("L")``) times 2 // 5, so at most 102."""
    luma = Image.fromarray(image).convert("L")
    return np.array(luma.point(_DIM_LUT))  # a writable copy: error_map marks pixels in it


_DIM_LUT = [v * 2 // 5 for v in range(256)]
# the errors tile is drawn as indices into one colour table: 0-102 dimmed greys, then two codes
_WRONG, _IGNORED = 254, 253


def _error_lut() -> np.ndarray:
    lut = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)
    lut[_WRONG] = ERROR_COLOR
    lut[_IGNORED] = IGNORE_COLOR
    return lut


def error_map(image: np.ndarray, label: np.ndarray, pred: np.ndarray, num_classes: int) -> Tuple[np.ndarray, float]:
    """The errors tile and the share of labelled pixels that are wrong.

    Args:
        image: ``(H, W, 3)`` uint8; label, pred: ``(H, W)`` integers.

    Returns:
        ``(H, W, 3)`` uint8 (see the module docstring) and the error rate in [0, 1] (NaN with no
        labelled pixel). A label outside ``[0, num_classes)`` (255) is ignored, as in the metric; a
        prediction outside it is wrong.
    """
    valid = label < num_classes if label.dtype == np.uint8 else (label >= 0) & (label < num_classes)
    wrong = pred != label
    wrong &= valid
    codes = dimmed_gray(image)
    codes[~valid] = _IGNORED
    codes[wrong] = _WRONG
    labelled = int(np.count_nonzero(valid))
    rate = int(np.count_nonzero(wrong)) / labelled if labelled else float("nan")
    return indexed_to_rgb(codes, _error_lut()), rate


def _legend(present: np.ndarray, palette: np.ndarray, class_names: Optional[Sequence[str]],
            ignored: bool) -> List[LegendEntry]:
    entries = legend_entries(present.tolist(), palette, class_names)
    if ignored:
        entries.append(LegendEntry(IGNORE_COLOR, "ignored / no label"))
    return entries


def overlay_pixels(image: np.ndarray, pred: np.ndarray, palette: np.ndarray,
                   class_names: Optional[Sequence[str]] = None, alpha: float = OVERLAY_ALPHA,
                   outlines: bool = True, labels: bool = True,
                   counts: Optional[np.ndarray] = None) -> Tuple[np.ndarray, List[RegionLabel]]:
    """The prediction laid over the image, at the image's size: ``(H, W, 3)`` uint8 and the labels placed.

    Each pixel is ``round((1 - alpha) * image + alpha * palette[pred])``, except (``outlines``) the
    region outlines (:func:`~.regions.region_edges`, :func:`~.regions.outline_width` wide), which
    keep the pure palette colour, and (``labels``) each class's name on a box in its pure colour in
    its largest region (:func:`~.regions.place_labels`): every legend colour is in the picture.
    ``counts``: the prediction's ``class_counts`` over ``len(palette)`` classes, where the caller has them.
    """
    colours = colorize(pred, palette)
    overlay = blend(image, colours, alpha)
    if outlines:
        edges = region_edges(pred, outline_width(*pred.shape))
        overlay[edges] = colours[edges]
    placed = place_labels(pred, len(palette), class_names, counts=counts) if labels else []
    return draw_labels(overlay, placed, palette), placed


def _label_boxes(panel: Panel, tile: str, placed: Sequence[RegionLabel]) -> Panel:
    """Name each placed label's box in the panel's boxes (``"<tile>/label/<class>"``, canvas pixels)."""
    origin = panel.boxes[tile]
    for label in placed:
        top, left, height, width = label.box
        panel.boxes[f"{tile}/label/{label.class_id}"] = Box(origin.top + top, origin.left + left, height, width)
    return panel


def render_overlay(image: np.ndarray, pred: np.ndarray, palette: np.ndarray,
                   class_names: Optional[Sequence[str]] = None, alpha: float = OVERLAY_ALPHA,
                   max_side: Optional[int] = None, title: Optional[str] = None,
                   labels: bool = True) -> Panel:
    """The image with the prediction's colours laid over it, and a legend of the classes in it.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        pred: ``(H, W)`` integer class indices (values outside ``[0, K)`` drawn grey).
        palette: ``(K, 3)`` uint8, e.g. :func:`~.palettes.palette_for`.
        class_names: K names for the legend and the regions (indices where None).
        alpha: weight of the colours over the image.
        max_side: shrink so that the longer side is at most this (None: full size).
        labels: write each class's name on its largest region.

    Returns:
        A :class:`~.drawing.Panel` with boxes ``"overlay"`` (:func:`overlay_pixels`: the blend, the
        region outlines and the names in the pure palette colours), ``"legend"`` and
        ``"overlay/label/<k>"`` for each class name written on the picture.
    """
    image = as_rgb(image)
    pred = _check_labels("pred", pred, image.shape[:2])
    size = fitted_size(*image.shape[:2], max_side)
    image, pred = resize_image(image, size), resize_labels(pred, size)
    num_classes = len(palette)
    counts = class_counts(pred, num_classes)
    present = np.flatnonzero(counts)
    outside = bool(((pred < 0) | (pred >= num_classes)).any())
    overlay, placed = overlay_pixels(image, pred, palette, class_names, alpha, labels=labels, counts=counts)
    panel = grid([("overlay", "prediction", overlay)], 1, title=title,
                 legend=_legend(present, palette, class_names, outside))
    return _label_boxes(panel, "overlay", placed)


def render_panel(image: np.ndarray, label: np.ndarray, pred: np.ndarray, palette: np.ndarray,
                 class_names: Optional[Sequence[str]] = None, max_side: Optional[int] = 1024,
                 title: Optional[str] = None, labels: bool = True) -> Panel:
    """image | ground truth / prediction | errors, with the legend of the classes present.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        label: ``(H, W)`` integer ground truth (255 or anything outside ``[0, K)`` = ignored).
        pred: ``(H, W)`` integer prediction.
        palette: ``(K, 3)`` uint8; K is the class count.
        class_names: K names for the legend.
        max_side: each tile is shrunk (image bilinear, labels nearest) so that its longer side is
            at most this; the default keeps ADE/COCO/Context sizes and halves Cityscapes'
            1024 x 2048 frames (a full-size Cityscapes panel is 2048 x 4096 and slow to encode).
            None keeps every pixel.
        title: a line above the tiles (e.g. the image name and its mIoU).
        labels: write each predicted class's name on its largest region of the prediction tile
            (:func:`~.regions.place_labels`).

    Returns:
        A :class:`~.drawing.Panel`; boxes ``"image"``, ``"ground truth"``, ``"prediction"``,
        ``"errors"`` (the four tiles) and ``"legend"`` (plus ``"title"``), and
        ``"prediction/label/<k>"`` for each class name written on the prediction tile.
    """
    image = as_rgb(image)
    label = _check_labels("label", label, image.shape[:2])
    pred = _check_labels("pred", pred, image.shape[:2])
    size = fitted_size(*image.shape[:2], max_side)
    image, label, pred = resize_image(image, size), resize_labels(label, size), resize_labels(pred, size)
    num_classes = len(palette)
    errors, rate = error_map(image, label, pred, num_classes)
    counts = class_counts(pred, num_classes)
    present = np.union1d(classes_present(label, num_classes), np.flatnonzero(counts))
    ignored = bool(((label < 0) | (label >= num_classes)).any() or ((pred < 0) | (pred >= num_classes)).any())
    caption = "errors (red: wrong)" if rate != rate else f"errors (red: wrong, {100 * rate:.1f}% of labelled pixels)"
    placed = place_labels(pred, num_classes, class_names, counts=counts) if labels else []
    predicted = draw_labels(colorize(pred, palette), placed, palette)
    tiles = [("image", "image", image), ("ground truth", "ground truth", colorize(label, palette)),
             ("prediction", "prediction", predicted), ("errors", caption, errors)]
    panel = grid(tiles, 2, title=title, legend=_legend(present, palette, class_names, ignored))
    return _label_boxes(panel, "prediction", placed)
