"""Pictures: palettes, the authors' heat maps, overlays and panels, the background PNG writer."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import REPO
from clip_surgery_seg.errors import UserError
from clip_surgery_seg.datasets.catalog import CATALOG
from clip_surgery_seg.visualization import (ERROR_COLOR, IGNORE_COLOR, ImageWriteError, PngWriter,
                                            colorize, dataset_palette, duplicate_colors, encode_png,
                                            explanation_maps, fallback_palette, jet_colors, normalize_maps,
                                            palette_for, render_explanations, render_overlay, render_panel)
from clip_surgery_seg.visualization.drawing import blend, classes_present, fitted_size
from clip_surgery_seg.visualization.writer import BACKGROUND_NICENESS

# a hand-made palette of saturated colours: no text antialiasing (greys) produces them
PALETTE = np.array([[230, 25, 75], [60, 180, 75], [0, 130, 200], [245, 130, 48]], dtype=np.uint8)
NAMES = ["road", "tree", "sky", "car"]


# --- palettes -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(CATALOG))
def test_every_catalogue_dataset_draws_in_its_types_palette(name):
    """The palette comes from the dataset's config type (the catalogue), not from a table of names:
    its mmseg METAINFO colours where they are one per scored class, else the fallback."""
    import clip_surgery_seg.registry  # noqa: F401  (the harness's own dataset types)
    from mmseg.registry import DATASETS

    info = CATALOG[name]
    meta = DATASETS.get(info.dataset_type).METAINFO
    palette = palette_for(info.num_classes, info.dataset_type)
    assert palette.shape == (info.num_classes, 3) and palette.dtype == np.uint8
    if len(meta["palette"]) == info.num_classes:
        assert palette is dataset_palette(info.dataset_type)
        assert palette.tolist() == [list(c) for c in meta["palette"]]
        assert len(meta["classes"]) == len(palette)
    else:
        assert np.array_equal(palette, fallback_palette(info.num_classes))
    assert IGNORE_COLOR not in {tuple(c) for c in palette.tolist()}  # the ignore grey is no class's colour
    assert not palette.flags.writeable  # shared and cached: no caller can repaint another's classes


def test_any_registered_type_has_its_palette_and_others_fall_back():
    import clip_surgery_seg.registry  # noqa: F401

    # a dataset mmseg knows but the catalogue does not (a newcomer's LoveDA): its own colours
    assert palette_for(7, "LoveDADataset") is dataset_palette("LoveDADataset")
    # a class count that does not match the named dataset (a custom class file): the fallback
    assert np.array_equal(palette_for(150, "CityscapesDataset"), fallback_palette(150))
    assert np.array_equal(palette_for(7), fallback_palette(7))
    with pytest.raises(KeyError):
        dataset_palette("NoSuchDataset")


def test_mmseg_duplicates_are_reported():
    assert duplicate_colors(dataset_palette("CityscapesDataset")) == {}
    dups = duplicate_colors(dataset_palette("COCOStuffDataset"))
    assert dups and all(len(classes) >= 2 for classes in dups.values())


@pytest.mark.parametrize("k", [1, 2, 7, 19, 100, 256, 1000, 3000])
def test_fallback_palette_is_distinct_deterministic_and_never_grey(k):
    palette = fallback_palette(k)
    colours = [tuple(c) for c in palette.tolist()]
    assert palette.shape == (k, 3)
    assert len(set(colours)) == k
    assert not any(r == g == b for r, g, b in colours)
    fallback_palette.cache_clear()
    assert np.array_equal(fallback_palette(k), palette)


def test_colorize_maps_classes_and_greys_everything_else():
    labels = np.array([[0, 1, 2, 3], [255, 4, 200, 0]], dtype=np.uint8)
    expected = np.array([[PALETTE[0], PALETTE[1], PALETTE[2], PALETTE[3]],
                         [IGNORE_COLOR, IGNORE_COLOR, IGNORE_COLOR, PALETTE[0]]], dtype=np.uint8)
    assert np.array_equal(colorize(labels, PALETTE), expected)
    wide = labels.astype(np.int64)
    wide[1, 1] = -3
    wide[1, 2] = 70000
    assert np.array_equal(colorize(wide, PALETTE), expected)
    # more than 255 classes: 255 is a class, not the ignore value
    big = fallback_palette(300)
    assert np.array_equal(colorize(np.array([[255, 299, 300]]), big)[0], [big[255], big[299], IGNORE_COLOR])


# --- heat maps ------------------------------------------------------------------------------------

def _similarity(rng) -> np.ndarray:
    sim = rng.normal(size=(4, 9, 13)).astype(np.float32)
    sim[1] = sim[1] * 40 + 7  # another scale and offset: normalised per class
    sim[2] = 0.25  # constant: no contrast
    sim[3, 4, 6] = 9.0  # one hot spot
    return sim


def test_heatmap_is_min_max_normalised_per_class():
    sim = _similarity(np.random.default_rng(0))
    norm = normalize_maps(sim)
    s64 = sim.astype(np.float64)
    for k in (0, 1, 3):  # computed here independently
        expected = (s64[k] - s64[k].min()) / (s64[k].max() - s64[k].min())
        np.testing.assert_allclose(norm[k], expected, rtol=0, atol=1e-6)
        assert norm[k].min() == 0.0 and norm[k].max() == 1.0
    assert np.all(norm[2] == 0.0)  # a constant map shows nothing
    assert norm[3].argmax() == 4 * 13 + 6
    with pytest.raises(ValueError):
        normalize_maps(np.full((1, 2, 2), np.nan))


def test_heatmap_colours_are_matplotlibs_jet():
    from matplotlib import colormaps

    sim = _similarity(np.random.default_rng(1))
    norm = normalize_maps(sim)
    for values in (norm[0], norm[1], norm[3], np.array([[0.0, 1 / 256, 0.5, 255 / 256, 1.0]]),
                   np.linspace(0, 1, 1001).reshape(7, 143)):
        assert np.array_equal(jet_colors(values), colormaps["jet"](values, bytes=True)[..., :3])
    assert np.array_equal(jet_colors(norm), colormaps["jet"](norm, bytes=True)[..., :3])  # 3-D too


def test_explanation_maps_blend_jet_on_the_image():
    from matplotlib import colormaps

    rng = np.random.default_rng(2)
    sim = _similarity(rng)
    image = rng.integers(0, 256, (9, 13, 3), dtype=np.uint8)
    maps = explanation_maps(image, sim, classes=[3, 0], alpha=0.6)
    assert maps.shape == (2, 9, 13, 3)
    norm = normalize_maps(sim)
    w = round(0.6 * 256)
    for out, k in zip(maps, (3, 0)):
        jet = colormaps["jet"](norm[k], bytes=True)[..., :3].astype(np.int64)
        expected = (image.astype(np.int64) * (256 - w) + jet * w + 128) >> 8
        assert np.array_equal(out, expected)
    # a patch-grid map is upsampled to the image: the hot spot stays where it was
    big = rng.integers(0, 256, (90, 130, 3), dtype=np.uint8)
    up = explanation_maps(big, sim, classes=[3])[0]
    assert up.shape == (90, 130, 3)
    red = up[..., 0].astype(int) - up[..., 2].astype(int)
    y, x = np.unravel_index(red.argmax(), red.shape)
    assert abs(y - 45) <= 6 and abs(x - 65) <= 6


def test_render_explanations_tiles():
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    sim = rng.normal(size=(4, 5, 6))
    panel = render_explanations(image, sim, NAMES, classes=[2, 0], columns=3, max_side=None, title="where?")
    assert set(panel.boxes) == {"title", "image", "sky", "road", "colour bar"}
    assert np.array_equal(panel.boxes["image"].of(panel.pixels), image)
    assert np.array_equal(panel.boxes["sky"].of(panel.pixels), explanation_maps(image, sim, [2])[0])


def jet_bar_rows(pixels: np.ndarray, min_length: int = 64):
    """Rows of ``pixels`` holding a colour bar: a run of pure jet colours, ``min_length`` or more of
    them different, whose levels rise from jet's first colour (level 0) to its last (level 255),
    left to right. Yields ``(row, first column, last column)``."""
    from clip_surgery_seg.visualization.heatmap import jet_lut

    lut = jet_lut().astype(np.int64)
    codes = {}
    for level, (r, g, b) in enumerate(lut.tolist()):
        codes.setdefault(r << 16 | g << 8 | b, level)  # jet's levels 29-32 are one colour: the first level
    first, last = (int(lut[i, 0]) << 16 | int(lut[i, 1]) << 8 | int(lut[i, 2]) for i in (0, 255))
    packed = pixels.astype(np.int64)
    packed = packed[..., 0] << 16 | packed[..., 1] << 8 | packed[..., 2]
    for y, row in enumerate(packed.tolist()):
        start = 0
        while start < len(row):
            end = start
            while (end + 1 < len(row) and row[end] in codes and row[end + 1] in codes
                   and codes[row[end + 1]] >= codes[row[end]]):
                end += 1
            if row[start] == first and row[end] == last and len(set(row[start:end + 1])) >= min_length:
                yield y, start, end
            start = end + 1


def test_heat_maps_have_a_labelled_colour_bar():
    from clip_surgery_seg.visualization.drawing import line_height, text_strip
    from clip_surgery_seg.visualization.heatmap import range_caption

    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (60, 90, 3), dtype=np.uint8)
    sim = rng.normal(size=(4, 5, 6)) * np.array([1.0, 2.0, 0.5, 3.0])[:, None, None]
    panel = render_explanations(image, sim, NAMES, classes=[2, 0, 3], columns=4, max_side=None)
    bar = panel.boxes["colour bar"]
    assert bar.top >= panel.boxes["road"].top + panel.boxes["road"].height  # under the tiles
    strip = bar.of(panel.pixels)
    rows = list(jet_bar_rows(strip))
    assert len(rows) >= 8  # a bar, several pixels high: jet from level 0 (low) to 255 (high), left to right
    _, first, last = rows[0]
    ink = strip.min(axis=2) < 128  # dark text
    assert ink[:, :first].any(), "no 'low' left of the bar"
    assert ink[:, last + 1:last + 60].any(), "no 'high' right of the bar"
    # each class's caption gives the similarities the bar's ends stand for, its map's min and max
    for k in (2, 0, 3):
        tile = panel.boxes[NAMES[k]]
        caption = panel.pixels[tile.top - line_height():tile.top, tile.left:tile.left + tile.width]
        assert range_caption(NAMES[k], sim[k]) == f"{NAMES[k]}  ({sim[k].min():.3g} to {sim[k].max():.3g})"
        assert np.array_equal(caption, text_strip(range_caption(NAMES[k], sim[k]), tile.width))
    plain = render_explanations(image, sim, NAMES, classes=[2], max_side=None, show_colorbar=False)
    assert "colour bar" not in plain.boxes and not list(jet_bar_rows(plain.pixels))


def test_blend_rounds_in_256ths():
    a = np.array([[[0, 100, 255]]], dtype=np.uint8)
    b = np.array([[[255, 0, 255]]], dtype=np.uint8)
    assert blend(a, b, 0.0).tolist() == a.tolist() and blend(a, b, 1.0).tolist() == b.tolist()
    assert blend(a, b, 0.5).tolist() == [[[128, 50, 255]]]
    with pytest.raises(ValueError):
        blend(a, b, 1.5)


# --- panels ---------------------------------------------------------------------------------------

def _hand_made():
    """8 x 10: a label map with all four classes and an ignored block, a prediction with mistakes."""
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, (8, 10, 3), dtype=np.uint8)
    label = np.zeros((8, 10), dtype=np.uint8)
    label[:, 5:] = 1
    label[4:, :5] = 2
    label[4:, 5:] = 3
    label[0:2, 0:2] = 255  # ignored
    pred = label.copy()
    pred[0:2, 0:2] = 3  # on ignored pixels: not an error
    pred[2, :] = 2  # a wrong row (its labels are 0 and 1)
    pred[6, 6] = 9  # outside [0, K): wrong, drawn grey in the prediction
    return image, label, pred


def _luma(image: np.ndarray) -> np.ndarray:
    rgb = image.astype(np.int64)
    return (19595 * rgb[..., 0] + 38470 * rgb[..., 1] + 7471 * rgb[..., 2] + 32768) >> 16


def test_panel_quadrants_have_exact_colours():
    image, label, pred = _hand_made()
    panel = render_panel(image, label, pred, PALETTE, NAMES, title="img <1>")
    px = panel.pixels
    assert px.dtype == np.uint8 and px.ndim == 3
    tiles = {name: panel.boxes[name].of(px) for name in ("image", "ground truth", "prediction", "errors")}
    # top-left / top-right / bottom-left / bottom-right
    boxes = panel.boxes
    assert boxes["image"].top == boxes["ground truth"].top < boxes["prediction"].top == boxes["errors"].top
    assert boxes["image"].left == boxes["prediction"].left < boxes["ground truth"].left == boxes["errors"].left
    assert all(t.shape == (8, 10, 3) for t in tiles.values())

    assert np.array_equal(tiles["image"], image)
    for r in range(8):
        for c in range(10):
            gt, pr = int(label[r, c]), int(pred[r, c])
            assert tuple(tiles["ground truth"][r, c]) == (IGNORE_COLOR if gt == 255 else tuple(PALETTE[gt]))
            assert tuple(tiles["prediction"][r, c]) == (IGNORE_COLOR if pr >= 4 else tuple(PALETTE[pr]))
            dimmed = int(_luma(image[r, c]) * 2 // 5)
            if gt == 255:
                want = IGNORE_COLOR
            elif pr != gt:
                want = ERROR_COLOR
            else:
                want = (dimmed,) * 3
            assert tuple(tiles["errors"][r, c]) == want, (r, c)
    errors = tiles["errors"]
    assert (errors == ERROR_COLOR).all(axis=2).sum() == 10 + 1  # row 2 and the out-of-range pixel
    assert (errors == IGNORE_COLOR).all(axis=2).sum() == 4


def test_panel_legend_lists_the_classes_present():
    image, label, pred = _hand_made()
    label[label == 3] = 1  # no "car" anywhere now
    pred[pred == 3] = 1
    pred[6, 6] = 1
    panel = render_panel(image, label, pred, PALETTE, NAMES)
    legend = panel.boxes["legend"].of(panel.pixels).reshape(-1, 3)
    colours = {tuple(c) for c in np.unique(legend, axis=0).tolist()}
    for k in (0, 1, 2):
        assert tuple(PALETTE[k]) in colours
    assert tuple(PALETTE[3]) not in colours
    assert IGNORE_COLOR in colours  # the ignored block of the ground truth
    no_ignore = render_panel(image, np.where(label == 255, 0, label).astype(np.uint8), pred, PALETTE, NAMES)
    legend = no_ignore.boxes["legend"].of(no_ignore.pixels).reshape(-1, 3)
    assert IGNORE_COLOR not in {tuple(c) for c in np.unique(legend, axis=0).tolist()}


def test_panel_in_a_dataset_palette_and_shrunk():
    palette = palette_for(150)
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, (300, 500, 3), dtype=np.uint8)
    label = np.repeat(np.arange(0, 150, 3, dtype=np.uint8)[:, None], 500, axis=1).repeat(6, axis=0)
    pred = label.copy()
    panel = render_panel(image, label, pred, palette, max_side=None)
    assert np.array_equal(panel.boxes["prediction"].of(panel.pixels), palette[pred])
    small = render_panel(image, label, pred, palette, max_side=100)
    assert small.boxes["ground truth"][2:] == (60, 100)
    colours = small.boxes["ground truth"].of(small.pixels).reshape(-1, 3)
    assert {tuple(c) for c in colours.tolist()} <= {tuple(c) for c in palette.tolist()}  # nearest: no new colour
    assert fitted_size(1024, 2048, 1024) == (512, 1024) and fitted_size(512, 683, 1024) == (512, 683)


def _edges(labels: np.ndarray) -> np.ndarray:
    """Pixels with a 4-neighbour of another label or on the image edge, computed here."""
    h, w = labels.shape
    edge = np.zeros((h, w), dtype=bool)
    for r in range(h):
        for c in range(w):
            neighbours = [(r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)]
            edge[r, c] = any(not (0 <= y < h and 0 <= x < w) or labels[y, x] != labels[r, c] for y, x in neighbours)
    return edge


def test_overlay_blends_the_prediction_and_outlines_regions_in_pure_colours():
    image, _, pred = _hand_made()
    pred[4:6, 1:4] = 1  # a region inside another: outlined all round
    panel = render_overlay(image, pred, PALETTE, NAMES, alpha=0.5)
    out = panel.boxes["overlay"].of(panel.pixels).astype(np.int64)
    colours = colorize(pred, PALETTE).astype(np.int64)
    blended = (image.astype(np.int64) * 128 + colours * 128 + 128) >> 8
    edges = _edges(pred)
    assert edges.any() and not edges.all()
    assert np.array_equal(out[~edges], blended[~edges])  # inside a region: half colour, half image
    assert np.array_equal(out[edges], colours[edges])  # its outline: the class colour itself
    assert panel.boxes["legend"].height > 0
    assert not any(name.startswith("overlay/label/") for name in panel.boxes)  # 8 x 10: no room for a name


def _legend_colours(panel) -> set:
    """The swatch colours of a panel's legend: its pixels that are not grey (text, outlines, background)."""
    pixels = panel.boxes["legend"].of(panel.pixels).reshape(-1, 3)
    return {tuple(c) for c in np.unique(pixels, axis=0).tolist() if not c[0] == c[1] == c[2]}


@pytest.mark.parametrize("size", [(8, 10), (90, 140), (700, 900)])
def test_every_legend_colour_is_in_the_overlay(size):
    rng = np.random.default_rng(11)
    h, w = size
    # channels in 90-170: every palette colour has one outside, and so has its blend with the image
    image = rng.integers(90, 171, (h, w, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    pred = ((yy * 2 // h) * 2 + xx * 2 // w).astype(np.uint8)  # four quadrants, all four classes
    pred[h // 3, w // 3] = 9  # a value outside the classes: grey, with an "ignored" entry
    panel = render_overlay(image, pred, PALETTE, NAMES)
    overlay = {tuple(c) for c in np.unique(panel.boxes["overlay"].of(panel.pixels).reshape(-1, 3), axis=0).tolist()}
    swatches = _legend_colours(panel)
    assert swatches == {tuple(c) for c in PALETTE.tolist()}
    for colour in swatches | {IGNORE_COLOR}:  # the ignore swatch is grey: checked by name
        assert colour in overlay, colour
    # the blend alone has none of them (the colours come from the outlines and the name boxes)
    blended = {tuple(c) for c in blend(image, colorize(pred, PALETTE), 0.5).reshape(-1, 3).tolist()}
    assert not blended & swatches


def test_class_names_are_written_on_their_largest_region():
    from clip_surgery_seg.visualization.regions import text_color_on

    rng = np.random.default_rng(12)
    image = rng.integers(0, 256, (120, 300, 3), dtype=np.uint8)
    pred = np.zeros((120, 300), dtype=np.uint8)
    pred[:, 100:] = 1
    pred[105:, 285:] = 0  # a second, smaller region of road in the tree's corner
    pred[110:116, 5:11] = 2  # sky: 6 x 6 pixels, too small for its name
    overlay = render_overlay(image, pred, PALETTE, NAMES)
    panel = render_panel(image, pred, pred, PALETTE, NAMES)
    for picture, tile in ((overlay, "overlay"), (panel, "prediction")):
        labels = {int(name.rsplit("/", 1)[1]): box for name, box in picture.boxes.items()
                  if name.startswith(f"{tile}/label/")}
        assert sorted(labels) == [0, 1]  # no sky (too small), no car (absent)
        origin = picture.boxes[tile]
        for k, box in labels.items():
            top, left = box.top - origin.top, box.left - origin.left
            assert (pred[top:top + box.height, left:left + box.width] == k).all()  # inside its region
            # centred on the farthest point from the border of the largest region (the left or right half)
            centre = (top + box.height / 2, left + box.width / 2)
            assert abs(centre[0] - 60) <= 2 and abs(centre[1] - (50 if k == 0 else 200)) <= 2, (k, centre)
            # a box in the class colour, outlined, with the name in black or white
            pixels = box.of(picture.pixels)
            ink = text_color_on(PALETTE[k])
            assert (pixels[0] == ink).all() and (pixels[-1] == ink).all()
            inner = pixels[1:-1, 1:-1].reshape(-1, 3)
            fill = (inner == PALETTE[k]).all(axis=1).mean()
            assert 0.5 < fill < 0.95  # mostly the class colour, and text on it
            assert (inner == ink).all(axis=1).sum() >= 10
        # nothing else changed: outside the boxes the prediction tile is the plain palette
        if tile == "prediction":
            plain = render_panel(image, pred, pred, PALETTE, NAMES, labels=False)
            assert not any("/label/" in name for name in plain.boxes)
            tile_pixels = picture.boxes[tile].of(picture.pixels).copy()
            expected = plain.boxes[tile].of(plain.pixels).copy()
            for box in labels.values():
                for array in (tile_pixels, expected):
                    array[box.top - origin.top:box.top - origin.top + box.height,
                          box.left - origin.left:box.left - origin.left + box.width] = 0
            assert np.array_equal(tile_pixels, expected)
            assert np.array_equal(expected[pred != 0][:5], np.repeat(PALETTE[1][None], 5, axis=0))


def test_label_places_on_a_large_map_are_checked_at_full_size():
    from clip_surgery_seg.visualization.regions import PLACE_GRID, place_labels

    # a 700 x 900 map (searched on a coarser grid): an L-shaped road, a tree block, a thin car strip
    pred = np.full((700, 900), 1, dtype=np.uint8)
    pred[:, :300] = 0
    pred[500:, :] = 0
    pred[100:104, 400:800] = 3  # 4 pixels high: no name fits, however long
    assert min(pred.shape) // PLACE_GRID > 1
    placed = {label.class_id: label for label in place_labels(pred, 4, NAMES)}
    assert sorted(placed) == [0, 1]
    for k, label in placed.items():
        top, left, height, width = label.box
        assert (pred[top:top + height, left:left + width] == k).all()
    tree = placed[1].box
    # the tree block (0-499 x 300-899), split by the car strip: its larger part is below the strip
    centre = (tree.top + tree.height / 2, tree.left + tree.width / 2)
    assert 104 < centre[0] < 500 and abs(centre[0] - 302) <= 6 and abs(centre[1] - 600) <= 6, centre


def test_text_draws_accented_latin_with_glyphs_not_boxes():
    from clip_surgery_seg.visualization.drawing import text_strip

    boxes = [text_strip(code, 40) for code in ("\U0010FFFF", "\uE000")]  # no font has these: the box
    strips = {char: text_strip(char, 40) for char in "\u00e9\u00fc\u00df\u00f1\u03a9\u0416"}  # é ü ß ñ Ω Ж
    for char, strip in strips.items():
        assert all(not np.array_equal(strip, box) for box in boxes), f"{char!r} is drawn as a box"
        assert (strip < 128).any(), char
    distinct = {strip.tobytes() for strip in strips.values()}
    assert len(distinct) == len(strips)  # six glyphs, not six copies of one box
    # a whole legend line: its accents are drawn (not the plain letters' pixels)
    assert not np.array_equal(text_strip("Caf\u00e9 M\u00fcll", 200), text_strip("Cafe Mull", 200))


def test_cjk_text_is_drawn_with_a_cjk_font():
    import shutil
    import subprocess

    from PIL import ImageDraw, ImageFont

    from clip_surgery_seg.visualization import fonts
    from clip_surgery_seg.visualization.drawing import text_strip

    if not fonts.has_cjk_font():
        listed = ""
        if shutil.which("fc-list"):
            listed = subprocess.run(["fc-list", ":lang=zh", "file"], capture_output=True, text=True).stdout.strip()
        assert not listed, f"fontconfig lists CJK fonts ({listed.splitlines()[0]}) but none is used"
        pytest.skip("no font with CJK characters on this machine (Debian: apt-get install fonts-wqy-zenhei)")
    chars = "\u732b\u65e5\u672c\u8a9e"  # 猫 日 本 語
    box = text_strip("\U0010FFFF", 40)
    strips = {char: text_strip(char, 40) for char in chars}
    for char, strip in strips.items():
        face = fonts.face_for(char)
        assert face is not None and face != fonts.primary_face() and ord(char) in fonts.charset(face)
        # not DejaVu's box, nor the box of the font that draws it
        own_box = Image.new("RGB", (40, 19), (255, 255, 255))
        ImageDraw.Draw(own_box).text((2, 2), "\U0010FFFF", fill=(20, 20, 20),
                                     font=ImageFont.truetype(face[0], 13, index=face[1]))
        assert not np.array_equal(strip, box) and not np.array_equal(strip, np.asarray(own_box)), char
        assert (strip < 128).sum() >= 10, char
    assert len({strip.tobytes() for strip in strips.values()}) == len(chars)
    # mixed text: Latin from DejaVu Sans, the rest from the CJK font, on one line
    runs = fonts.runs("cat \u732b dog")
    assert [part for _, part in runs] == ["cat ", "\u732b ", "dog"]
    assert runs[0][0] == runs[2][0] == fonts.primary_face() != runs[1][0]


def test_text_is_the_same_every_time():
    from clip_surgery_seg.visualization import fonts
    from clip_surgery_seg.visualization.drawing import text_strip

    text = "Stra\u00dfe Ni\u00f1o \u732b \u65e5\u672c\u8a9e mIoU 45.12%"
    first = text_strip(text, 300)
    fonts.clear_caches()  # fonts found and loaded again
    assert np.array_equal(text_strip(text, 300), first)


def test_bad_inputs_are_refused():
    image, label, pred = _hand_made()
    with pytest.raises(ValueError, match="label"):
        render_panel(image, label[:4], pred, PALETTE)
    with pytest.raises(ValueError, match="integer"):
        render_panel(image, label.astype(np.float32), pred, PALETTE)
    with pytest.raises(TypeError):
        render_panel(image.astype(np.float32), label, pred, PALETTE)


def test_classes_present():
    assert classes_present(np.array([[0, 3, 255, 3]], dtype=np.uint8), 4).tolist() == [0, 3]
    assert classes_present(np.array([[-1, 2, 7]]), 4).tolist() == [2]


# --- the background writer ------------------------------------------------------------------------

def test_writer_writes_every_file_exactly(tmp_path):
    rng = np.random.default_rng(6)
    arrays = {f"sub/{i:03d}.png": rng.integers(0, 256, (17, 23, 3), dtype=np.uint8) for i in range(40)}
    arrays.update({f"index/{i}.png": rng.integers(0, 150, (31, 29), dtype=np.uint8) for i in range(10)})
    with PngWriter(workers=3, max_pending=2) as writer:  # a small queue: submit must wait, not drop
        for name, array in arrays.items():
            writer.submit(tmp_path / name, array, compress_level=6 if name.startswith("index") else None)
    assert writer.written == len(arrays) and writer.failures == []
    for name, array in arrays.items():
        assert np.array_equal(np.asarray(Image.open(tmp_path / name)), array)  # PNG is lossless
    assert not list(tmp_path.rglob("*.tmp"))  # no temporary file left behind


def test_writer_keeps_indices_in_palette_pngs(tmp_path):
    pred = np.array([[0, 1], [2, 3]], dtype=np.uint8)
    with PngWriter() as writer:
        writer.submit(tmp_path / "p.png", pred, palette=PALETTE)
    image = Image.open(tmp_path / "p.png")
    assert image.mode == "P" and np.array_equal(np.asarray(image), pred)
    assert np.array_equal(np.asarray(image.convert("RGB")), PALETTE[pred])
    assert encode_png(pred).startswith(b"\x89PNG")


def test_writer_renders_submitted_functions_on_its_threads(tmp_path):
    import threading

    rng = np.random.default_rng(7)
    image, label = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8), rng.integers(0, 4, (12, 16), dtype=np.uint8)
    threads = []

    def render():
        threads.append((threading.current_thread().name, os.getpriority(os.PRIO_PROCESS, threading.get_native_id())))
        return render_panel(image, label, label, PALETTE, title="t")

    with PngWriter() as writer:
        writer.submit(tmp_path / "panel.png", render)
    name, niceness = threads[0]
    assert name.startswith("png-writer")  # drawn off the caller's thread
    if sys.platform.startswith("linux"):  # per-thread priorities
        assert niceness == BACKGROUND_NICENESS  # background work: the lowest CPU priority
    expected = render_panel(image, label, label, PALETTE, title="t").pixels
    assert np.array_equal(np.asarray(Image.open(tmp_path / "panel.png")), expected)
    # a function that fails (a bug) or returns what cannot be a PNG: raised as it is at close()
    writer = PngWriter()
    writer.submit(tmp_path / "bad.png", lambda: np.zeros((2, 2), np.float32))
    with pytest.raises(TypeError):
        writer.close()
    assert not (tmp_path / "bad.png").exists()


def test_writer_reports_an_unwritable_folder_at_close(tmp_path):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the folder should be")  # fails even for root, unlike chmod
    writer = PngWriter()
    writer.submit(tmp_path / "ok" / "fine.png", np.zeros((4, 4), np.uint8))
    for i in range(3):
        writer.submit(blocker / f"{i}.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(ImageWriteError) as info:
        writer.close()
    message = str(info.value)
    assert isinstance(info.value, UserError) and "\n" not in message
    assert "not_a_folder" in message and "3 of 4" in message
    assert (tmp_path / "ok" / "fine.png").is_file()  # the others are still written
    assert writer.written == 1 and len(writer.failures) == 3


def test_writer_refuses_misuse(tmp_path):
    writer = PngWriter()
    writer.submit(tmp_path / "a.png", np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError, match="already written"):
        writer.submit(tmp_path / "a.png", np.zeros((2, 2), np.uint8))
    with pytest.raises(TypeError):
        writer.submit(tmp_path / "b.png", np.zeros((2, 2), np.float32))
    writer.close()
    writer.close()  # twice is fine
    with pytest.raises(RuntimeError):
        writer.submit(tmp_path / "c.png", np.zeros((2, 2), np.uint8))


def test_writer_does_not_hide_the_loops_own_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(KeyError):
        with PngWriter() as writer:
            writer.submit(blocker / "x.png", np.zeros((2, 2), np.uint8))
            raise KeyError("the evaluation loop failed")
    assert len(writer.failures) == 1  # still recorded


# --- the benchmark --------------------------------------------------------------------------------

@pytest.mark.slow
def test_benchmark_quick(tmp_path):
    out = tmp_path / "bench.json"
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, "benchmarks/bench_visualization.py", "--quick", "--repeats", "1",
                             "--json", str(out)], cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("## ") and "| render panel ms" in result.stdout
    data = json.loads(out.read_text())
    rows = data["pictures"]
    assert len(rows) == 2
    for row in rows:
        assert row["render_panel_ms"] > 0 and row["encode_panel_l1_ms"] > 0
        assert row["writer_written"] == row["writer_batch"]
    loop = data["beside_a_model"]
    assert [r["mode"] for r in loop][0] == "model alone" and len(loop) == 3 and all(r["wall_s"] > 0 for r in loop)
