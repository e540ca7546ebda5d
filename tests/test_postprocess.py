"""PAMR against a naive pixel-by-pixel loop written from its definition."""
from __future__ import annotations

import math
import re

import pytest
import torch

from clip_surgery_seg.models.pamr import pamr, pamr_affinity


def _resize_align_corners(masks, height, width):
    """Bilinear with align_corners=True, one output pixel at a time."""
    b, k, h, w = masks.shape
    out = torch.empty(b, k, height, width, dtype=masks.dtype)
    for y in range(height):
        sy = y * (h - 1) / (height - 1) if height > 1 else 0.0
        y0 = math.floor(sy)
        y1, ty = min(y0 + 1, h - 1), sy - y0
        for x in range(width):
            sx = x * (w - 1) / (width - 1) if width > 1 else 0.0
            x0 = math.floor(sx)
            x1, tx = min(x0 + 1, w - 1), sx - x0
            out[:, :, y, x] = ((1 - ty) * ((1 - tx) * masks[:, :, y0, x0] + tx * masks[:, :, y0, x1])
                               + ty * ((1 - tx) * masks[:, :, y1, x0] + tx * masks[:, :, y1, x1]))
    return out


def naive_pamr(image, masks, num_iter, dilations):
    """Per pixel: affinities to the 8 dilated neighbours per dilation (border-clamped), then
    ``num_iter`` synchronous steps of the affinity-weighted sum over the neighbours."""
    image, masks = image.double(), masks.double()
    b, c, height, width = image.shape
    masks = _resize_align_corners(masks, height, width)
    steps = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    neighbours = [(d * dy, d * dx) for d in dilations for dy, dx in steps if (dy, dx) != (0, 0)]

    def at(y, x, dy, dx):
        return min(max(y + dy, 0), height - 1), min(max(x + dx, 0), width - 1)

    weights = torch.empty(b, len(neighbours), height, width, dtype=torch.float64)
    for i in range(b):
        for y in range(height):
            for x in range(width):
                around = torch.stack([image[i, :, at(y, x, d * dy, d * dx)[0], at(y, x, d * dy, d * dx)[1]]
                                      for d in dilations for dy, dx in steps])
                sigma = around.std(dim=0)  # per channel, unbiased, centre once per dilation
                logits = []
                for dy, dx in neighbours:
                    ny, nx = at(y, x, dy, dx)
                    diff = (image[i, :, y, x] - image[i, :, ny, nx]).abs()
                    logits.append((-diff / (1e-8 + 0.1 * sigma)).mean())
                weights[i, :, y, x] = torch.softmax(torch.stack(logits), dim=0)
    for _ in range(num_iter):
        new = torch.zeros_like(masks)
        for i in range(b):
            for y in range(height):
                for x in range(width):
                    for p, (dy, dx) in enumerate(neighbours):
                        ny, nx = at(y, x, dy, dx)
                        new[i, :, y, x] += weights[i, p, y, x] * masks[i, :, ny, nx]
        masks = new
    return masks, weights


CASES = [  # (batch, classes, image size, mask size, iterations, dilations)
    (2, 4, (12, 16), (12, 16), 10, (8, 16)),  # NACLIP's default on an image smaller than the dilations
    (3, 2, (9, 13), (9, 13), 3, (1, 2, 4)),
    (2, 5, (14, 7), (5, 3), 4, (1,)),  # masks at a lower resolution
    (2, 3, (11, 10), (11, 10), 0, (2, 3)),  # resize only
]


@pytest.mark.parametrize("batch,classes,size,mask_size,num_iter,dilations", CASES)
def test_pamr_matches_naive_loop(batch, classes, size, mask_size, num_iter, dilations):
    image = torch.randn(batch, 3, *size)
    masks = torch.randn(batch, classes, *mask_size)
    out = pamr(image, masks, num_iter=num_iter, dilations=dilations)
    expected, weights = naive_pamr(image, masks, num_iter, dilations)
    assert out.shape == (batch, classes, *size) and out.dtype == torch.float32
    assert (out.double() - expected).abs().max() < 5e-5  # float32 over 10 steps vs float64
    affinity = pamr_affinity(image, dilations)
    assert affinity.shape == (batch, 1, 8 * len(dilations), *size)
    assert (affinity[:, 0].double() - weights).abs().max() < 1e-6


def test_pamr_smooths_along_the_image():
    """A mask edge that the image does not have is smoothed away; one that it has is kept."""
    image = torch.zeros(1, 3, 24, 24)
    image[..., :, 12:] = 5.0
    masks = torch.zeros(1, 2, 24, 24)
    masks[0, 0, :, :12] = 1.0  # class 0 exactly on the left image half
    masks[0, 1, :12, :] = 1.0  # class 1 on the top half, which the image does not separate
    out = pamr(image, masks, num_iter=10, dilations=(1, 2))
    assert out[0, 0, :, :10].min() > 0.9 and out[0, 0, :, 14:].max() < 0.1
    assert (out[0, 1, 10, :] - out[0, 1, 13, :]).abs().max() < (masks[0, 1, 10] - masks[0, 1, 13]).abs().max()


def test_pamr_errors():
    with pytest.raises(ValueError, match="expected image"):
        pamr(torch.randn(3, 8, 8), torch.randn(1, 2, 8, 8))
    with pytest.raises(ValueError, match="dilations must be positive"):
        pamr(torch.randn(1, 3, 8, 8), torch.randn(1, 2, 8, 8), dilations=(0,))


# --- post-processing as a segmentor step ---------------------------------------------------------

def _segmentor(**kwargs):
    import clip_surgery_seg.registry  # noqa: F401  (the segmentor's data preprocessor)
    from clip_surgery_seg.segmentors.segmentor import CLIPSurgerySegmentor
    from conftest import TINY_VIT

    settings = dict(clip=dict(name=str(TINY_VIT), pretrained=None), classnames=["sky", "tree", "road, street", "car"],
                    method=dict(type="naclip"), window_batch_size=4,
                    # images are given to seg_logits directly, not through the data preprocessor
                    protocol=dict(short_side=48, crop_size=32, stride=16, resize="device"))
    return CLIPSurgerySegmentor(**{**settings, **kwargs})


def test_build_postprocess():
    from clip_surgery_seg.errors import ConfigError
    from clip_surgery_seg.segmentors.postprocess import PAMR, build_postprocess

    assert build_postprocess(None) is None
    step = build_postprocess("pamr")
    assert isinstance(step, PAMR) and step.config() == {"type": "pamr", "num_iter": 10, "dilations": (8, 16)}
    assert build_postprocess({"type": "pamr", "num_iter": 3, "dilations": [2]}).config()["dilations"] == (2,)
    for spec, message in (("pamm", "unknown postprocess 'pamm'; did you mean pamr?"),
                          ({"type": "pamr", "steps": 3}, "has no parameter 'steps'"),
                          ({"type": "pamr", "dilations": [0]}, "dilations must be a list of positive ints"),
                          ({"type": "pamr", "num_iter": -1}, "num_iter must be an int >= 0"), (3, "not int")):
        with pytest.raises(ConfigError, match=re.escape(message)):
            build_postprocess(spec)


def test_segmentor_with_pamr_equals_pamr_by_hand(tmp_path):
    """PAMR on each image's per-row logits at its original size, guided by the image resized to the test
    scale and back (bilinear) -- where NACLIP's code applies it -- before the maximum over synonyms."""
    import torch.nn.functional as F

    refined = _segmentor(text_cache_dir=str(tmp_path), postprocess=dict(type="pamr", num_iter=3, dilations=(2, 4)))
    # the same text rows with each synonym a class of its own: its logits are the rows' logits
    rows_model = _segmentor(text_cache_dir=str(tmp_path), classnames=["sky", "tree", "road", "street", "car"])
    images = [torch.randn(3, 40, 56), torch.randn(3, 37, 30)]  # batch of two, other sizes, odd sides
    shapes = [im.shape[-2:] for im in images]
    rows = rows_model.seg_logits(images, shapes)
    out = refined.seg_logits(images, shapes)
    labels = refined.seg_labels(images, shapes)
    for image, row_logits, logits, label_map in zip(images, rows, out, labels):
        h, w = image.shape[-2:]
        scale = 48 / min(h, w)
        small = F.interpolate(image[None], size=(int(h * scale + 0.5), int(w * scale + 0.5)), mode="bilinear",
                              align_corners=False)
        guide = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
        by_hand = pamr(guide, row_logits[None], num_iter=3, dilations=(2, 4))[0]
        expected = torch.stack([by_hand[0], by_hand[1], by_hand[2:4].amax(dim=0), by_hand[4]])
        assert logits.shape == (4, h, w) and (logits - expected).abs().max() < 1e-5
        assert torch.equal(label_map, logits.argmax(dim=0))
        assert not torch.allclose(by_hand, row_logits)  # it did refine


@pytest.mark.parametrize("options, expected", [
    (["model.postprocess=pamr"], {"type": "pamr", "num_iter": 10, "dilations": (8, 16)}),
    (["model.postprocess={'type': 'pamr', 'num_iter': 10, 'dilations': [8, 16]}"],
     {"type": "pamr", "num_iter": 10, "dilations": (8, 16)}),
    (["model.postprocess=pamr", "model.postprocess.num_iter=5"], {"type": "pamr", "num_iter": 5, "dilations": (8, 16)}),
    (["model.postprocess={'type': 'pamr', 'dilations': [2]}", "model.postprocess.num_iter=5"],
     {"type": "pamr", "num_iter": 5, "dilations": (2,)}),
    (["model.postprocess=pamr", "model.postprocess.dilations=[4,8]", "model.postprocess=pamr"],
     {"type": "pamr", "num_iter": 10, "dilations": (8, 16)}),  # a name starts again from the defaults
    (["model.postprocess=pamr", "model.postprocess=none"], None),
])
def test_postprocess_from_the_command_line(options, expected):
    """The README's forms: a name, a dict where the config holds None, then single parameters."""
    from clip_surgery_seg.engine.config import parse_cfg_options
    from clip_surgery_seg.engine.experiment import resolve_experiment

    experiment = resolve_experiment("configs/ade20k.py", cfg_options=parse_cfg_options(options))
    got = experiment.postprocess
    if got is not None:
        got = {**got, "dilations": tuple(got["dilations"])}
    assert got == expected
    recorded = experiment.sections()["method"]["postprocess"]  # what metrics.json says
    assert recorded == (None if expected is None else {**expected, "dilations": list(expected["dilations"])})


@pytest.mark.parametrize("options, message", [
    (["model.postprocess.num_iter=5"], "model.postprocess is None; set model.postprocess=pamr first"),
    (["model.postprocess=pamr", "model.postprocess.num_iters=5"], "did you mean num_iter"),
    (["model.postprocess=pamm"], "unknown postprocess 'pamm'; did you mean pamr?"),
    (["model.postprocess=pamr", "model.postprocess.num_iter=-1"], "num_iter must be an int >= 0"),
])
def test_postprocess_options_errors_are_one_clear_message(options, message):
    from clip_surgery_seg.engine.config import parse_cfg_options
    from clip_surgery_seg.engine.experiment import resolve_experiment
    from clip_surgery_seg.errors import ConfigError

    with pytest.raises(ConfigError, match=re.escape(message)):
        resolve_experiment("configs/ade20k.py", cfg_options=parse_cfg_options(options))
