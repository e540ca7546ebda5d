"""Class names on the regions of a prediction, and region outlines in the exact class colours.

As mmseg's ``SegLocalVisualizer`` (``withLabels=True``), each predicted class's name is written
inside its largest connected region (4-connected), on a small box in the class colour (outlined,
text black or white, whichever reads on that colour). The box is centred on the pixel farthest from
the region's border (``scipy.ndimage.distance_transform_edt``, the image edge counting as border)
among the pixels where the whole box fits inside the region (of several such pixels, the one nearest to
their mean); a region too small to hold the box gets no label. Boxes lie inside their own region, so two never overlap.

Outlines: the pixels next to a pixel of another class (or to the image edge) keep the pure class
colour when the prediction is blended over an image, so the legend's swatches are colours that are
in the picture.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw

from .drawing import FONT_SIZE, Box, Color, class_counts, class_name, draw_text, line_height, text_width

LABEL_PAD = 4  # pixels left and right of the name inside its box


@dataclass(frozen=True)
class RegionLabel:
    """One class name placed on a label map: class index, name, and its box (in the map's pixels)."""

    class_id: int
    name: str
    box: Box


def label_box_size(name: str, size: int = FONT_SIZE) -> Tuple[int, int]:
    """``(height, width)`` of the box that holds ``name``."""
    return line_height(size), text_width(name, size) + 2 * LABEL_PAD


def _largest_component(mask: np.ndarray) -> Tuple[np.ndarray, Tuple[int, int], int]:
    """The largest 4-connected component of ``mask``: its mask cropped to its bounding box, the
    box's top-left and its pixel count (ties: the component met first in row-major order)."""
    from scipy import ndimage

    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    top, left = int(rows[0]), int(cols[0])
    mask = mask[top:rows[-1] + 1, left:cols[-1] + 1]  # label the class's bounding box only
    components, count = ndimage.label(mask)
    if count == 1:
        return mask, (top, left), int(np.count_nonzero(mask))
    sizes = np.bincount(components.ravel())
    sizes[0] = 0
    index = int(sizes.argmax())
    found = components == index
    rows = np.flatnonzero(found.any(axis=1))
    cols = np.flatnonzero(found.any(axis=0))
    crop = found[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    return crop, (top + int(rows[0]), left + int(cols[0])), int(sizes[index])


def _place(region: np.ndarray, height: int, width: int) -> Optional[Tuple[int, int]]:
    """Top-left of the ``height x width`` box inside ``region`` whose centre is farthest from the
    region's border, or None where no such box fits."""
    from scipy import ndimage

    h, w = region.shape
    if h < height or w < width:
        return None
    # a summed-area table: the box at (t, l) fits where it covers height * width region pixels
    table = np.zeros((h + 1, w + 1), dtype=np.int64)
    np.cumsum(np.cumsum(region, axis=0, dtype=np.int64), axis=1, out=table[1:, 1:])
    inside = (table[height:, width:] - table[:-height, width:] - table[height:, :-width]
              + table[:-height, :-width]) == height * width
    if not inside.any():
        return None
    distance = ndimage.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]  # the image edge is a border
    centres = distance[height // 2:height // 2 + inside.shape[0], width // 2:width // 2 + inside.shape[1]]
    score = np.where(inside, centres, -1.0)
    # the farthest places often form a ridge (a rectangle's middle line): take its middle, the
    # farthest place nearest to their mean (ties: the first in row-major order)
    best = np.argwhere(score == score.max())
    middle = best.mean(axis=0)
    top, left = best[int(((best - middle) ** 2).sum(axis=1).argmin())]
    return int(top), int(left)


#: Label places are searched on every ``step``-th pixel, ``step = max(1, short side // PLACE_GRID)``
#: (a 512 x 683 tile: every 3rd; 10x less work, the place exact to a few pixels); the box found
#: is then checked at full resolution.
PLACE_GRID = 160


def place_labels(labels: np.ndarray, num_classes: int, class_names: Optional[Sequence[str]] = None,
                 size: int = FONT_SIZE, counts: Optional[np.ndarray] = None) -> List[RegionLabel]:
    """Where each class of ``labels`` (``(H, W)`` integers) gets its name, in class order.

    Classes outside ``[0, num_classes)`` get none; nor does a class whose largest region cannot hold
    its box (see the module docstring). ``counts``: ``class_counts(labels, num_classes)`` where the
    caller has it already (counted here otherwise).
    """
    labels = np.asarray(labels)
    if counts is None:
        counts = class_counts(labels, num_classes)
    full_h, full_w = labels.shape
    step = max(1, min(full_h, full_w) // PLACE_GRID)
    grid = labels[step // 2::step, step // 2::step] if step > 1 else labels
    placed = []
    for k in np.flatnonzero(counts).tolist():
        name = class_name(k, class_names)
        height, width = label_box_size(name, size)
        if counts[k] < height * width or height > full_h or width > full_w:
            continue  # too few pixels for the box, whatever their shape
        # the box in grid points: every grid point it covers, and one more where it can straddle
        grid_h, grid_w = (height, width) if step == 1 else (-(-height // step) + 1, -(-width // step) + 1)
        region, (top, left), points = _largest_component(grid == k)
        if points < grid_h * grid_w:
            continue
        at = _place(region, grid_h, grid_w)
        if at is None:
            continue
        if step == 1:
            box_top, box_left = top + at[0], left + at[1]
        else:  # centre the box on the centre of the grid box, then check every pixel under it
            centre_y = step // 2 + (top + at[0] + (grid_h - 1) / 2) * step
            centre_x = step // 2 + (left + at[1] + (grid_w - 1) / 2) * step
            box_top = min(max(0, int(round(centre_y - height / 2))), full_h - height)
            box_left = min(max(0, int(round(centre_x - width / 2))), full_w - width)
            if not (labels[box_top:box_top + height, box_left:box_left + width] == k).all():
                continue
        placed.append(RegionLabel(k, name, Box(box_top, box_left, height, width)))
    return placed


def text_color_on(color: Sequence[int]) -> Color:
    """Near-black or white, whichever contrasts more with ``color`` (by its luma)."""
    r, g, b = (int(c) for c in color[:3])
    return (20, 20, 20) if 299 * r + 587 * g + 114 * b >= 140_000 else (255, 255, 255)


def draw_labels(pixels: np.ndarray, placed: Sequence[RegionLabel], palette: np.ndarray,
                size: int = FONT_SIZE) -> np.ndarray:
    """A copy of ``pixels`` (``(H, W, 3)`` uint8) with each label's box in its class colour, outlined
    and with the name in black or white (:func:`text_color_on`)."""
    if not placed:
        return pixels
    image = Image.fromarray(np.ascontiguousarray(pixels))
    draw = ImageDraw.Draw(image)
    for label in placed:
        color = tuple(int(c) for c in palette[label.class_id])
        ink = text_color_on(color)
        top, left, height, width = label.box
        draw.rectangle((left, top, left + width - 1, top + height - 1), fill=color, outline=ink)
        draw_text(draw, (left + LABEL_PAD, top + 1), label.name, ink, size)
    return np.asarray(image)


def outline_width(height: int, width: int) -> int:
    """Outline width in pixels on each side of a border: ``max(1, round(long side / 512))`` (1 for
    ADE20K-sized tiles, 2 for a 1024-pixel Cityscapes tile)."""
    return max(1, round(max(height, width) / 512))


def region_edges(labels: np.ndarray, width: int = 1) -> np.ndarray:
    """``(H, W)`` bool: the pixels within ``width`` pixels (4-neighbour steps along a row or a
    column) of a pixel with another label or of the image edge."""
    labels = np.asarray(labels)
    edges = np.zeros(labels.shape, dtype=bool)
    for step in range(1, width + 1):
        down = labels[step:] != labels[:-step]
        edges[step:] |= down
        edges[:-step] |= down
        across = labels[:, step:] != labels[:, :-step]
        edges[:, step:] |= across
        edges[:, :-step] |= across
    edges[:width] = edges[-width:] = True
    edges[:, :width] = edges[:, -width:] = True
    return edges


__all__ = ["RegionLabel", "draw_labels", "label_box_size", "outline_width", "place_labels", "region_edges",
           "text_color_on"]
