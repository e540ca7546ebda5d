"""The authors' explanation maps: where does CLIP see class k?

CLIP Surgery's demo (``get_similarity_map`` in the authors' ``clip.py``) min-max normalises each
class's patch similarities to [0, 1], upsamples them to the image, colours them with a jet colour
map and lays them over the image (0.4 image + 0.6 colour). This module does the same in numpy,
with matplotlib's ``jet`` (the authors use OpenCV's, which differs slightly in its ramps).
"""
from __future__ import annotations

import functools
from typing import Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw

from .drawing import (BACKGROUND, FONT_SIZE, GAP, TEXT_COLOR, Panel, as_rgb, blend, draw_text, fit_text, fitted_size,
                      grid, line_height, resize_image, text_width)
from .palettes import indexed_to_rgb

#: Weight of the colour map over the image, as in the authors' demo (``img * 0.4 + vis * 0.6``).
HEATMAP_ALPHA = 0.6


def normalize_maps(similarity: np.ndarray) -> np.ndarray:
    """``(K, H, W)`` similarities -> ``(K, H, W)`` float32 in [0, 1], each class on its own:
    ``(s - min_k) / (max_k - min_k)``. A constant map (no contrast to show) becomes all 0."""
    sim = np.asarray(similarity, dtype=np.float32)
    if sim.ndim != 3:
        raise ValueError(f"similarity must be (K, H, W), not {sim.shape}")
    if not np.isfinite(sim).all():
        raise ValueError("similarity has NaN or infinite values")
    low = sim.min(axis=(1, 2), keepdims=True)
    span = sim.max(axis=(1, 2), keepdims=True) - low
    out = sim - low
    np.divide(out, span, out=out, where=span > 0)  # a constant map is already all 0 here
    return np.clip(out, 0.0, 1.0, out=out)  # rounding can step a hair outside [0, 1]


@functools.lru_cache(maxsize=1)
def jet_lut() -> np.ndarray:
    """``(256, 3)`` uint8: matplotlib's ``jet`` at its 256 levels (``cmap(i, bytes=True)``)."""
    from matplotlib import colormaps  # colormaps only: no pyplot, no backend

    lut = np.ascontiguousarray(colormaps["jet"](np.arange(256), bytes=True)[:, :3])
    lut.setflags(write=False)
    return lut


def jet_colors(values: np.ndarray) -> np.ndarray:
    """``(...)`` floats in [0, 1] -> ``(..., 3)`` uint8, exactly ``matplotlib.colormaps['jet'](values,
    bytes=True)[..., :3]``: level ``floor(256 * v)``, 1.0 in the top level, outside values clipped."""
    levels = np.asarray(values) * 256  # a power of two: exact in float32 and float64
    index = np.clip(levels, 0, 255).astype(np.uint8)
    if index.ndim == 2:
        return indexed_to_rgb(index, jet_lut())
    return jet_lut()[index]


def _resize_map(values: np.ndarray, size: tuple) -> np.ndarray:
    # bilinear on the [0, 1] map (like the authors' F.interpolate after normalising): stays in [0, 1]
    if values.shape == tuple(size):
        return values
    resized = Image.fromarray(values, mode="F").resize((size[1], size[0]), Image.BILINEAR)
    return np.clip(np.asarray(resized), 0.0, 1.0)


def explanation_maps(image: np.ndarray, similarity: np.ndarray, classes: Optional[Sequence[int]] = None,
                     alpha: float = HEATMAP_ALPHA) -> np.ndarray:
    """The heat maps of ``classes`` (default: all) over the image.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        similarity: ``(K, h, w)`` class similarities (any scale; the patch grid or the image size).
        classes: which of the K maps to draw, in order.
        alpha: weight of the colour over the image.

    Returns:
        ``(N, H, W, 3)`` uint8, N = ``len(classes)``: ``blend(image, jet_colors(m), alpha)`` (the
        rounded ``(1 - alpha) * image + alpha * jet(m)``, see ``drawing.blend``) with ``m`` the
        class's min-max normalised map, bilinearly resized to ``(H, W)`` if needed.
    """
    image = as_rgb(image)
    sim = np.asarray(similarity)
    if classes is not None:
        sim = sim[list(classes)]
    normalized = normalize_maps(sim)
    size = image.shape[:2]
    out = np.empty((len(normalized),) + image.shape, dtype=np.uint8)
    for i, values in enumerate(normalized):
        out[i] = blend(image, jet_colors(_resize_map(values, size)), alpha)
    return out


#: The colour bar's box in a picture of heat maps.
COLORBAR = "colour bar"
COLORBAR_HEIGHT = 12
COLORBAR_NOTE = "low, high: a class's min and max similarity in this image (in its caption)"


def colorbar(width: int, size: int = FONT_SIZE) -> np.ndarray:
    """``(h, width, 3)`` uint8: ``low``, the ``jet`` colours left to right, ``high``, and
    :data:`COLORBAR_NOTE`.

    The bar is ``clamp(width // 3, 64, 256)`` pixels long; column ``i`` of ``n`` is the jet level
    ``round(255 i / (n - 1))``, so its ends are exactly the colours of a map's minimum (level 0) and
    maximum (level 255). The note is cut to the width left, or left out where under 60 pixels remain.
    """
    height = line_height(size) + 2 * GAP
    strip = Image.new("RGB", (max(1, width), height), BACKGROUND)
    draw = ImageDraw.Draw(strip)
    text_top = GAP + 2
    x = GAP + 2
    draw_text(draw, (x, text_top), "low", TEXT_COLOR, size)
    x += text_width("low", size) + 6
    length = int(np.clip(width // 3, 64, 256))
    pixels = np.array(strip)
    bar_top = GAP + (line_height(size) - COLORBAR_HEIGHT) // 2 + 1
    levels = (np.arange(length) * 255 * 2 + length - 1) // (2 * (length - 1))  # round(255 i / (n - 1))
    if x + length <= width:
        pixels[bar_top:bar_top + COLORBAR_HEIGHT, x:x + length] = jet_lut()[levels][None]
    strip = Image.fromarray(pixels)
    draw = ImageDraw.Draw(strip)
    x += length + 6
    draw_text(draw, (x, text_top), "high", TEXT_COLOR, size)
    x += text_width("high", size) + 16
    if width - x - GAP >= 60:
        draw_text(draw, (x, text_top), fit_text(COLORBAR_NOTE, width - x - GAP, size), TEXT_COLOR, size)
    return np.asarray(strip)


def range_caption(name: str, similarity: np.ndarray) -> str:
    """``"<name>  (<min> to <max>)"``: the similarities the colour bar's ends (low, high) stand for
    in this class's map (3 significant digits)."""
    sim = np.asarray(similarity)
    return f"{name}  ({float(sim.min()):.3g} to {float(sim.max()):.3g})"


def render_explanations(image: np.ndarray, similarity: np.ndarray, class_names: Sequence[str],
                        classes: Optional[Sequence[int]] = None, alpha: float = HEATMAP_ALPHA,
                        columns: int = 4, max_side: Optional[int] = 512,
                        title: Optional[str] = None, show_colorbar: bool = True) -> Panel:
    """The image and each class's heat map as captioned tiles of one picture, with a colour bar.

    ``similarity`` is ``(K, h, w)``; ``classes`` picks the maps (default: all K, which for 150
    classes is a large picture: pass the few classes of interest). Tiles are shrunk so that their
    longer side is at most ``max_side`` (None: the image's size). Each caption gives the class's
    lowest and highest similarity (:func:`range_caption`), the ends of the colour bar under the
    tiles (:func:`colorbar`, box :data:`COLORBAR`). Tile names in ``boxes`` are ``"image"`` and
    the class names.
    """
    image = as_rgb(image)
    size = fitted_size(*image.shape[:2], max_side)
    small = resize_image(image, size)
    chosen = list(range(len(similarity))) if classes is None else list(classes)
    names = {str(class_names[k]) for k in chosen}
    if len(names) != len(chosen) or names & {"image", "title", "legend", COLORBAR}:
        raise ValueError(f"the chosen classes need distinct names, none of them 'image', 'title', 'legend' "
                         f"or {COLORBAR!r}")
    maps = explanation_maps(small, similarity, chosen, alpha)
    sim = np.asarray(similarity)
    tiles = [("image", "image", small)] + [(str(class_names[k]), range_caption(str(class_names[k]), sim[k]), m)
                                           for k, m in zip(chosen, maps)]
    strips = [(COLORBAR, colorbar)] if show_colorbar else []
    return grid(tiles, columns, title=title, strips=strips)
