"""Cheap raster drawing with PIL and numpy: text strips, legends, resizing, and tiles laid out on a
canvas. No matplotlib drawing here (only its DejaVu Sans font file, :mod:`.fonts`): these run once
per image (``--show-dir``), so they must cost less than encoding the PNG.

Images are ``(H, W, 3)`` uint8 RGB arrays throughout; label maps are ``(H, W)`` integer arrays.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw

from . import fonts

Color = Tuple[int, int, int]

BACKGROUND: Color = (255, 255, 255)
TEXT_COLOR: Color = (20, 20, 20)
GAP = 4  # pixels between tiles and around the canvas
FONT_SIZE = 13


def text_width(text: str, size: int = FONT_SIZE) -> int:
    return int(math.ceil(fonts.text_width(text, size)))


def draw_text(draw: ImageDraw.ImageDraw, xy: Tuple[float, float], text: str, fill: Color = TEXT_COLOR,
              size: int = FONT_SIZE) -> None:
    """``text`` with its line's top-left at ``xy``, every character in a font that has it."""
    fonts.draw_text(draw, xy, text, fill, size)


def fit_text(text: str, width: int, size: int = FONT_SIZE) -> str:
    """``text``, cut with "..." so that it is at most ``width`` pixels wide."""
    if text_width(text, size) <= width:
        return text
    low, high = 0, len(text)  # the longest prefix that fits with the dots
    while low < high:
        mid = (low + high + 1) // 2
        if text_width(text[:mid] + "...", size) <= width:
            low = mid
        else:
            high = mid - 1
    return text[:low] + "..."


def line_height(size: int = FONT_SIZE) -> int:
    return size + 6


def text_strip(text: str, width: int, size: int = FONT_SIZE, background: Color = BACKGROUND) -> np.ndarray:
    """``(line_height, width, 3)``: one line of text, cut to fit, on ``background``."""
    strip = Image.new("RGB", (max(1, width), line_height(size)), background)
    draw_text(ImageDraw.Draw(strip), (2, 2), fit_text(text, width - 4, size), TEXT_COLOR, size)
    return np.asarray(strip)


# --- legends -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LegendEntry:
    """One legend line: a colour swatch and what it stands for."""

    color: Color
    label: str


SWATCH = 12
MAX_LABEL_WIDTH = 170  # longer class names are cut, so that many columns still fit


def legend_entries(class_ids: Sequence[int], palette: np.ndarray,
                   class_names: Optional[Sequence[str]] = None) -> List[LegendEntry]:
    """Entries for ``class_ids`` (in the order given): the palette colour and the class name
    (the class index where ``class_names`` is None or too short)."""
    return [LegendEntry(tuple(int(c) for c in palette[k]), class_name(k, class_names)) for k in class_ids]


def class_name(class_id: int, class_names: Optional[Sequence[str]] = None) -> str:
    """The name of class ``class_id``: its entry of ``class_names``, or the index where that is None
    or too short."""
    return str(class_names[class_id]) if class_names is not None and class_id < len(class_names) else str(class_id)


def draw_legend(entries: Sequence[LegendEntry], width: int, size: int = FONT_SIZE) -> np.ndarray:
    """``(h, width, 3)``: the entries in as many columns as fit in ``width``, row by row.

    Each entry is a ``SWATCH``-pixel square (outlined, so white or pale colours still show) and its
    label; ``h`` is 0 where there are no entries.
    """
    if not entries:
        return np.zeros((0, width, 3), dtype=np.uint8)
    label_w = min(MAX_LABEL_WIDTH, max(text_width(e.label, size) for e in entries))
    cell_w = SWATCH + 6 + label_w + 24
    columns = max(1, (width - 2 * GAP) // cell_w)
    rows = math.ceil(len(entries) / columns)
    row_h = line_height(size)
    legend = Image.new("RGB", (width, rows * row_h + 2 * GAP), BACKGROUND)
    draw = ImageDraw.Draw(legend)
    for i, entry in enumerate(entries):
        x = GAP + (i % columns) * cell_w
        y = GAP + (i // columns) * row_h
        top = y + (row_h - SWATCH) // 2
        draw.rectangle((x, top, x + SWATCH - 1, top + SWATCH - 1), fill=entry.color, outline=(90, 90, 90))
        draw_text(draw, (x + SWATCH + 6, y + 2), fit_text(entry.label, label_w, size), TEXT_COLOR, size)
    return np.asarray(legend)


def class_counts(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """``counts[k]``: how many pixels of ``labels`` (any shape, integer) hold class ``k``, for each
    ``k`` in ``[0, num_classes)`` (``np.bincount``; values outside that range are not counted)."""
    flat = np.asarray(labels).ravel()
    if flat.dtype == np.uint8:
        return np.bincount(flat, minlength=256)[:num_classes]  # one pass, no range check needed
    flat = flat.astype(np.int64, copy=False)
    return np.bincount(flat[(flat >= 0) & (flat < num_classes)], minlength=num_classes)


def classes_present(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Sorted class ids in ``[0, num_classes)`` that occur in ``labels`` (any shape, integer)."""
    return np.flatnonzero(class_counts(labels, num_classes))


# --- resizing ------------------------------------------------------------------------------------

def fitted_size(height: int, width: int, max_side: Optional[int]) -> Tuple[int, int]:
    """``(h, w)`` scaled down (never up) so that the longer side is at most ``max_side``."""
    if not max_side or max(height, width) <= max_side:
        return height, width
    scale = max_side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def resize_image(image: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """``(H, W, 3)`` uint8 -> ``(h, w, 3)``: PIL's bilinear, after a box-filter ``reduce`` by the
    whole factor when shrinking (antialiased, and 5x faster than bilinear alone for 2048 -> 1024)."""
    if image.shape[:2] == tuple(size):
        return image
    resized = Image.fromarray(image).resize((size[1], size[0]), Image.BILINEAR, reducing_gap=1.0)
    return np.asarray(resized)


def resize_labels(labels: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """``(H, W)`` labels -> ``(h, w)``, nearest neighbour (pixel centres; no new label values)."""
    height, width = labels.shape
    if (height, width) == tuple(size):
        return labels
    rows = ((np.arange(size[0]) + 0.5) * height / size[0]).astype(np.int64)
    cols = ((np.arange(size[1]) + 0.5) * width / size[1]).astype(np.int64)
    return labels.take(rows, axis=0).take(cols, axis=1)  # two 1-D takes: 7x faster than a 2-D gather


def as_rgb(image: np.ndarray) -> np.ndarray:
    """``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)`` uint8 -> ``(H, W, 3)`` uint8 RGB."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise TypeError(f"images must be uint8 RGB arrays, not {image.dtype}")
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] in (1, 3, 4):
        return image[:, :, :3] if image.shape[2] >= 3 else np.repeat(image, 3, axis=2)
    raise ValueError(f"images must be (H, W, 3) arrays, not {image.shape}")


def blend_weight(alpha: float) -> int:
    """``alpha`` in 256ths, as :func:`blend` uses it."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], not {alpha}")
    return int(round(alpha * 256))


def blend(image: np.ndarray, overlay: np.ndarray, alpha: float) -> np.ndarray:
    """``(image * (256 - w) + overlay * w + 128) >> 8`` with ``w = round(256 * alpha)``: the rounded
    ``(1 - alpha) * image + alpha * overlay`` in integers (exact, and faster than floats).
    Both ``(H, W, 3)`` uint8."""
    w = blend_weight(alpha)
    mixed = image.astype(np.uint16) * np.uint16(256 - w)
    mixed += overlay.astype(np.uint16) * np.uint16(w)
    mixed += np.uint16(128)
    mixed >>= 8
    return mixed.astype(np.uint8)


# --- layout --------------------------------------------------------------------------------------

class Box(NamedTuple):
    """A rectangle of a canvas: ``canvas[top:top + height, left:left + width]``."""

    top: int
    left: int
    height: int
    width: int

    def of(self, canvas: np.ndarray) -> np.ndarray:
        """This box's pixels of ``canvas`` (a view)."""
        return canvas[self.top:self.top + self.height, self.left:self.left + self.width]


@dataclass
class Panel:
    """A rendered picture: ``pixels`` ``(H, W, 3)`` uint8 and where each part of it lies.

    ``boxes`` maps a part's name (``"image"``, ``"ground truth"``, ``"prediction"``, ``"errors"``,
    ``"legend"``, a class name for explanation maps, ...) to its :class:`Box`.
    """

    pixels: np.ndarray
    boxes: Dict[str, Box] = field(default_factory=dict)


def _blank(height: int, width: int) -> np.ndarray:
    if len(set(BACKGROUND)) == 1:
        return np.full((height, width, 3), BACKGROUND[0], dtype=np.uint8)  # a scalar fill: 50x faster
    canvas = np.empty((height, width, 3), dtype=np.uint8)
    canvas[:] = BACKGROUND
    return canvas


def grid(tiles: Sequence[Tuple[str, str, np.ndarray]], columns: int, title: Optional[str] = None,
         legend: Sequence[LegendEntry] = (), size: int = FONT_SIZE,
         strips: Sequence[Tuple[str, Callable[[int], np.ndarray]]] = ()) -> Panel:
    """Tiles (``(name, caption, (h, w, 3) pixels)``, all the same size) in a grid, each under its
    caption, an optional title line above and a legend below.

    ``strips``: ``(name, draw)`` pairs; ``draw(width)`` returns an ``(h, width, 3)`` strip laid
    under the tiles, above the legend, in its box ``name`` (e.g. a colour bar).
    """
    if not tiles:
        raise ValueError("grid needs at least one tile")
    if len({name for name, _, _ in tiles}) != len(tiles):
        raise ValueError("tile names must be distinct (they name the boxes)")
    tile_h, tile_w = tiles[0][2].shape[:2]
    columns = max(1, min(columns, len(tiles)))
    rows = math.ceil(len(tiles) / columns)
    caption_h = line_height(size)
    width = columns * tile_w + (columns + 1) * GAP
    title_h = line_height(size + 2) if title else 0
    legend_pixels = draw_legend(legend, width, size)
    extra = [(name, draw(width)) for name, draw in strips]
    cell_h = caption_h + tile_h + GAP
    height = GAP + title_h + rows * cell_h + sum(p.shape[0] for _, p in extra) + legend_pixels.shape[0]
    canvas = _blank(height, width)
    boxes: Dict[str, Box] = {}
    if title:
        boxes["title"] = Box(GAP, 0, title_h, width)
        canvas[GAP:GAP + title_h] = text_strip(title, width, size + 2)
    for i, (name, caption, pixels) in enumerate(tiles):
        if pixels.shape[:2] != (tile_h, tile_w):
            raise ValueError(f"tile {name!r} is {pixels.shape[:2]}, the others {(tile_h, tile_w)}")
        top = GAP + title_h + (i // columns) * cell_h
        left = GAP + (i % columns) * (tile_w + GAP)
        canvas[top:top + caption_h, left:left + tile_w] = text_strip(caption, tile_w, size)
        box = Box(top + caption_h, left, tile_h, tile_w)
        box.of(canvas)[:] = pixels
        boxes[name] = box
    top = GAP + title_h + rows * cell_h
    for name, pixels in extra:
        boxes[name] = Box(top, 0, pixels.shape[0], width)
        boxes[name].of(canvas)[:] = pixels
        top += pixels.shape[0]
    if legend_pixels.shape[0]:
        boxes["legend"] = Box(height - legend_pixels.shape[0], 0, legend_pixels.shape[0], width)
        boxes["legend"].of(canvas)[:] = legend_pixels
    return Panel(canvas, boxes)
