"""tools/demo.py: the explanation maps it writes are the segmentor's own similarity maps, min-max
normalised per class, and bad input is one error line."""
from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Optional

import numpy as np
import pytest
import torch
from PIL import Image

from clip_surgery_seg.cli.demo import main as demo_main
from conftest import REPO, TINY_VIT

CLASSES = ["cat", "dog", "grass"]
FAST = ["--model", str(TINY_VIT), "--pretrained", "none", "--device", "cpu", "--quiet",
        "--cfg-options", "protocol.short_side=96", "protocol.crop_size=64", "protocol.stride=32"]


@pytest.fixture
def in_repo(monkeypatch, tmp_path):
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("CLIP_SURGERY_SEG_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def photo(tmp_path) -> Path:
    """A 72 x 120 picture with structure (gradients, a disc) and noise."""
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:72, 0:120]
    image = np.stack([xx * 2.0, yy * 3.0, 255.0 * ((yy - 36) ** 2 + (xx - 80) ** 2 < 400)], -1)
    image = np.clip(image + rng.normal(0, 10, image.shape), 0, 255).astype(np.uint8)
    path = tmp_path / "photo.png"
    Image.fromarray(image).save(path)
    return path


def _demo(args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = demo_main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def _similarity(image: np.ndarray, mode: str, method: Optional[str] = None) -> np.ndarray:
    """The segmentor's (K, H, W) similarity maps for ``image``, computed here: the same model from
    the same config (with ``method``'s defaults in place of its method), the image normalised by hand."""
    from mmengine.config import Config
    from mmseg.registry import MODELS

    import clip_surgery_seg.registry  # noqa: F401

    cfg = Config.fromfile(str(REPO / "configs" / "_base_" / "models" / "clip_surgery_vit_b16.py")).model.to_dict()
    cfg.update(clip=dict(name=str(TINY_VIT), pretrained=None), classnames=CLASSES, feature_surgery=mode,
               protocol=dict(short_side=96, crop_size=64, stride=32))
    if method is not None:
        from clip_surgery_seg.models import METHODS

        cfg.update(method=METHODS[method]().config())
    model = MODELS.build(cfg).eval()
    # the protocol's resize (mmcv's, on the uint8 image) happens in the data preprocessor, as in a run
    x = model.data_preprocessor({"inputs": [torch.from_numpy(image).permute(2, 0, 1).contiguous()]})["inputs"][0]
    return model.seg_logits([x], [image.shape[:2]])[0].numpy()


def _heatmap(image: np.ndarray, similarity: np.ndarray) -> np.ndarray:
    """Min-max normalised on its own, matplotlib's jet, 0.6 of the colour over the image in 256ths."""
    from matplotlib import colormaps

    s = similarity.astype(np.float32)
    normalised = (s - s.min()) / (s.max() - s.min())
    colour = colormaps["jet"](normalised, bytes=True)[..., :3].astype(np.int64)
    w = round(0.6 * 256)
    return ((image.astype(np.int64) * (256 - w) + colour * w + 128) >> 8).astype(np.uint8)


def test_heat_maps_are_the_segmentors_similarity_min_max_normalised(in_repo, photo, tmp_path):
    out = tmp_path / "out"
    # one model for every mode: the redundant mode's extra embedding is fetched when it is switched to
    code, stdout, err = _demo([photo, "--classes", ",".join(CLASSES), "--feature-surgery", "none", "redundant",
                               "weighted", "--out", out, *FAST])
    assert code == 0, err
    image = np.array(Image.open(photo).convert("RGB"))
    maps = {}
    for mode in ("none", "redundant", "weighted"):
        similarity = _similarity(image, mode)
        for k, name in enumerate(CLASSES):
            written = np.asarray(Image.open(out / mode / "heatmaps" / f"{k:03d}_{name}.png"))
            assert written.shape == image.shape
            assert np.array_equal(written, _heatmap(image, similarity[k])), (mode, name)
            maps[mode, name] = written
        # the overlay: the arg-max of the same maps, in the legend
        assert (out / mode / "overlay.png").is_file() and (out / mode / "heatmaps.png").is_file()
    # feature surgery changes the maps, and both are shown side by side
    for mode in ("redundant", "weighted"):
        assert any(not np.array_equal(maps["none", n], maps[mode, n]) for n in CLASSES)
    compare = Image.open(out / "compare.png")
    assert compare.width > 2 * 72 and f"{out / 'compare.png'}" in stdout


def test_heat_map_pictures_have_a_colour_bar(in_repo, photo, tmp_path):
    from test_visualization import jet_bar_rows

    out = tmp_path / "out"
    code, _, err = _demo([photo, "--classes", ",".join(CLASSES), "--feature-surgery", "none", "weighted",
                          "--out", out, *FAST])
    assert code == 0, err
    for picture in (out / "none" / "heatmaps.png", out / "weighted" / "heatmaps.png", out / "compare.png"):
        pixels = np.asarray(Image.open(picture).convert("RGB"))
        rows = list(jet_bar_rows(pixels))
        assert len(rows) >= 8, picture  # jet from its lowest to its highest colour, left to right
        row, first, last = rows[0]
        assert (pixels[row - 6:row + 8, :first].min(axis=2) < 128).any(), "no 'low' at the bar's left end"
        assert (pixels[row - 6:row + 8, last + 1:].min(axis=2) < 128).any(), "no 'high' at the bar's right end"
    # the single heat maps stay the maps themselves (checked exactly above): no bar in them
    assert not list(jet_bar_rows(np.asarray(Image.open(out / "none" / "heatmaps" / "000_cat.png"))))


def test_methods_side_by_side_on_one_clip(in_repo, photo, tmp_path, monkeypatch):
    import clip_surgery_seg.models.clip_loader as clip_loader
    import clip_surgery_seg.segmentors.segmentor as segmentor

    builds = []
    real = clip_loader.build_clip

    def counting(*args, **kwargs):
        builds.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(clip_loader, "build_clip", counting)
    monkeypatch.setattr(segmentor, "build_clip", counting)
    out = tmp_path / "out"
    code, stdout, err = _demo([photo, "--classes", ",".join(CLASSES), "--method", "vanilla", "clip_surgery",
                               "--out", out, *FAST])
    assert code == 0, err
    assert len(builds) == 1  # one CLIP for both methods
    image = np.array(Image.open(photo).convert("RGB"))
    maps = {}
    for method in ("vanilla", "clip_surgery"):
        similarity = _similarity(image, "none", method)
        for k, name in enumerate(CLASSES):
            written = np.asarray(Image.open(out / method / "none" / "heatmaps" / f"{k:03d}_{name}.png"))
            assert np.array_equal(written, _heatmap(image, similarity[k])), (method, name)
            maps[method, name] = written
        assert (out / method / "none" / "overlay.png").is_file() and (out / method / "none" / "heatmaps.png").is_file()
    assert any(not np.array_equal(maps["vanilla", n], maps["clip_surgery", n]) for n in CLASSES)
    # compare.png: one column per method, the image's own size (72 x 120) under 4-pixel gaps
    compare = Image.open(out / "compare.png")
    assert compare.width == 2 * 120 + 3 * 4 and f"{out / 'compare.png'}" in stdout
    pixels = np.asarray(compare.convert("RGB"))
    left = pixels[:, 4:124].reshape(-1, 3)
    right = pixels[:, 128:248].reshape(-1, 3)
    assert not np.array_equal(left, right)
    # two methods and two modes: a column for each pair, each in its own folder
    out2 = tmp_path / "out2"
    code, _, err = _demo([photo, "--classes", ",".join(CLASSES), "--method", "vanilla", "clip_surgery",
                          "--feature-surgery", "none", "weighted", "--out", out2, *FAST])
    assert code == 0, err
    assert Image.open(out2 / "compare.png").width == 4 * 120 + 5 * 4
    for method in ("vanilla", "clip_surgery"):
        for mode in ("none", "weighted"):
            assert (out2 / method / mode / "overlay.png").is_file()


def test_classes_from_a_file_or_a_dataset(in_repo, photo, tmp_path):
    names = tmp_path / "classes.txt"
    names.write_text("cat, kitty\ndog\n")
    code, _, err = _demo([photo, "--classes", names, "--out", tmp_path / "a", *FAST])
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "a" / "none" / "heatmaps").iterdir()) == ["000_cat.png", "001_dog.png"]
    code, _, err = _demo([photo, "--dataset", "ade", "--show-classes", "sky", "Tree", "--out", tmp_path / "b", *FAST])
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "b" / "none" / "heatmaps").iterdir()) == ["002_sky.png", "004_tree.png"]


@pytest.mark.parametrize("args,message", [
    (["missing.jpg", "--classes", "cat"], "image missing.jpg does not exist"),
    (["{photo}", "--dataset", "ade21k"], "unknown dataset 'ade21k'; did you mean ade20k?"),
    (["{photo}", "--classes", ""], "--classes is empty"),
    (["{photo}", "--classes", " , "], "--classes is empty"),
    (["{photo}", "--classes", "cat,,dog"], "empty name between commas"),
    (["{photo}", "--classes", "nope.txt"], "class-name file nope.txt does not exist"),
    (["{photo}"], "no classes: pass --classes"),
    (["{photo}", "--classes", "cat,dog", "--show-classes", "cow"], "--show-classes 'cow' is not one of the classes"),
    (["{photo}", "--classes", "cat", "--method", "clip_surgery", "sclipp"],
     "--method 'sclipp' is not a method; did you mean sclip"),
])
def test_bad_input_is_one_error_line(in_repo, photo, tmp_path, args, message):
    out = tmp_path / "out"
    code, stdout, err = _demo([a.replace("{photo}", str(photo)) for a in args] + ["--out", out, *FAST])
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert not any(out.rglob("*.png"))


def test_own_classes_on_a_dataset_config_do_not_get_its_background_rule(in_repo, photo, tmp_path):
    """--config <a VOC21 config> --classes ...: VOC's rule (pixels below a class probability become class 0)
    is about VOC's background class; the user's first class is no background, so no pixel is forced to it.
    VOC21 under the clearclip protocol (threshold 0.5), where the rule bites with random weights."""
    from clip_surgery_seg.cli.demo import build_parser, build_segmentor, class_names_option, read_image
    from clip_surgery_seg.cli.demo import similarity_and_labels

    config = tmp_path / "voc21_clearclip.py"
    config.write_text(f"_base_ = [{str(REPO / 'configs' / 'voc21.py')!r}]\nprotocol = dict(name='clearclip')\n")
    names = [f"thing {k}" for k in range(21)]  # as many classes as VOC21
    args = build_parser().parse_args([str(photo), "--config", str(config), "--classes", ",".join(names),
                                      *map(str, FAST)])
    image = read_image(str(photo))
    classnames, _ = class_names_option(args.classes, None)
    model, _ = build_segmentor(args, classnames)
    assert model.background_index is None and model.prob_threshold is None
    similarity, labels = similarity_and_labels(model, image)
    assert similarity.shape == (21, *image.shape[:2])
    assert np.array_equal(labels, similarity.argmax(axis=0))  # every pixel: its best class, never forced
    voc, _ = build_segmentor(args, None)  # VOC's own classes keep their rule
    assert voc.background_index == 0 and voc.prob_threshold == 0.5 and voc.logit_scale == model.logit_scale == 50
    # the rule, had it been kept, would have moved pixels of other classes to class 0 on this image
    top = torch.from_numpy(similarity * model.logit_scale).softmax(dim=0).amax(dim=0).numpy()
    assert ((top < voc.prob_threshold) & (labels != 0)).sum() > 0
