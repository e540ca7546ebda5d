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
from clip_surgery_seg.visualization import (DATASET_CLASS_COUNTS, ERROR_COLOR, IGNORE_COLOR, ImageWriteError, PngWriter,
                                            colorize, dataset_palette, duplicate_colors, encode_png,
                                            explanation_maps, fallback_palette, jet_colors, normalize_maps,
                                            palette_for, render_explanations, render_overlay, render_panel)
from clip_surgery_seg.visualization.drawing import blend, classes_present, fitted_size
from clip_surgery_seg.visualization.writer import BACKGROUND_NICENESS

# a hand-made palette of saturated colours: no text antialiasing (greys) produces them
PALETTE = np.array([[230, 25, 75], [60, 180, 75], [0, 130, 200], [245, 130, 48]], dtype=np.uint8)
NAMES = ["road", "tree", "sky", "car"]


# --- palettes -------------------------------------------------------------------------------------

@pytest.mark.parametrize("dataset_type", sorted(DATASET_CLASS_COUNTS))
def test_dataset_palettes_have_one_colour_per_class(dataset_type):
    import mmseg.datasets

    meta = getattr(mmseg.datasets, dataset_type).METAINFO
    palette = dataset_palette(dataset_type)
    assert palette.shape == (DATASET_CLASS_COUNTS[dataset_type], 3) and palette.dtype == np.uint8
    assert len(meta["classes"]) == len(palette)
    assert palette.tolist() == [list(c) for c in meta["palette"]]
    assert IGNORE_COLOR not in {tuple(c) for c in palette.tolist()}  # the ignore grey is no class's colour
    assert not palette.flags.writeable  # shared and cached: no caller can repaint another's classes


def test_harness_datasets_palettes_match_their_class_files():
    expected = {"ade20k": 150, "coco_stuff171": 171, "cityscapes": 19, "pascal_context59": 59}
    for name, count in expected.items():
        lines = (REPO / "configs" / "classnames" / f"{name}.txt").read_text().splitlines()
        assert len([line for line in lines if line.strip()]) == count
        assert palette_for(count, name) is dataset_palette(name)
        assert len(palette_for(count, name)) == count


def test_palette_for_chooses_by_count_and_falls_back():
    assert palette_for(150) is dataset_palette("ADE20KDataset")
    assert palette_for(21) is dataset_palette("PascalVOCDataset")
    assert palette_for(60) is dataset_palette("PascalContextDataset")
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
    assert set(panel.boxes) == {"title", "image", "sky", "road"}
    assert np.array_equal(panel.boxes["image"].of(panel.pixels), image)
    assert np.array_equal(panel.boxes["sky"].of(panel.pixels), explanation_maps(image, sim, [2])[0])


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


def test_overlay_blends_the_prediction_and_has_a_legend():
    image, _, pred = _hand_made()
    panel = render_overlay(image, pred, PALETTE, NAMES, alpha=0.5)
    out = panel.boxes["overlay"].of(panel.pixels).astype(np.int64)
    colours = colorize(pred, PALETTE).astype(np.int64)
    assert np.array_equal(out, (image.astype(np.int64) * 128 + colours * 128 + 128) >> 8)
    assert panel.boxes["legend"].height > 0


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
