"""Pictures: class palettes, the authors' explanation heat maps, prediction overlays and panels,
and a background PNG writer.

A ground-floor package: numpy, PIL, matplotlib (colour maps and its DejaVu Sans font file),
fontTools (fonts' character maps; a matplotlib dependency), scipy.ndimage (where class names go)
and mmseg's dataset palettes; nothing from the engine, the segmentors or the reporting tools.

* ``palettes``: ``palette_for(num_classes, dataset_type)``, ``colorize``, ``IGNORE_COLOR``;
* ``heatmap``: ``normalize_maps``, ``jet_colors``, ``explanation_maps``, ``render_explanations``
  (with a ``colorbar``);
* ``panels``: ``render_overlay`` (one image + legend), ``render_panel`` (image | ground truth /
  prediction | errors + legend), ``overlay_pixels``;
* ``regions``: class names on their regions (``place_labels``, ``draw_labels``) and region outlines;
* ``writer``: ``PngWriter`` (bounded background encoder, atomic writes, errors at ``close()``);
* ``drawing``: the PIL helpers underneath (text, legends, grids, ``Panel``/``Box``);
* ``fonts``: DejaVu Sans and a fallback chain for the characters it lacks (CJK, ...).
"""
from .drawing import Box, LegendEntry, Panel, classes_present, draw_legend, legend_entries
from .heatmap import (COLORBAR, HEATMAP_ALPHA, colorbar, explanation_maps, jet_colors, normalize_maps,
                      render_explanations)
from .palettes import (IGNORE_COLOR, colorize, dataset_palette, duplicate_colors,
                       fallback_palette, palette_for)
from .panels import ERROR_COLOR, OVERLAY_ALPHA, error_map, overlay_pixels, render_overlay, render_panel
from .regions import RegionLabel, draw_labels, place_labels
from .writer import DEFAULT_COMPRESS_LEVEL, ImageWriteError, PngWriter, encode_png

__all__ = [
    "Box", "COLORBAR", "DEFAULT_COMPRESS_LEVEL", "ERROR_COLOR", "HEATMAP_ALPHA",
    "IGNORE_COLOR", "ImageWriteError", "LegendEntry", "OVERLAY_ALPHA", "Panel", "PngWriter", "RegionLabel",
    "classes_present", "colorbar", "colorize", "dataset_palette", "draw_labels", "draw_legend", "duplicate_colors",
    "encode_png", "error_map", "explanation_maps", "fallback_palette", "jet_colors", "legend_entries",
    "normalize_maps", "overlay_pixels", "palette_for", "place_labels", "render_explanations", "render_overlay",
    "render_panel",
]
