"""Low-confidence background: the peers' probability (softmax over every text row, then the max over
a class's rows), on a hand-made map with synonyms and on random maps, against a numpy re-statement
of SCLIP's ``postprocess_result`` (also ClearCLIP's, NACLIP's and ProxyCLIP's)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import TINY_VIT

CLASSES = ["background, sky, wall", "cat", "dog, puppy"]  # rows: background sky wall cat dog puppy
ROW_CLASS = np.array([0, 0, 0, 1, 2, 2])


def _segmentor(tmp_path, classes=CLASSES, **kwargs):
    import clip_surgery_seg.registry  # noqa: F401
    from mmseg.registry import MODELS

    protocol = {k: kwargs.pop(k) for k in ("prob_threshold", "logit_scale") if k in kwargs}
    return MODELS.build(dict(type="CLIPSurgerySegmentor", clip=dict(name=str(TINY_VIT)), classnames=classes,
                             templates=["a {}."], text_cache_dir=str(tmp_path / "cache"), protocol=protocol,
                             **kwargs))


def _peers_labels(row_logits: np.ndarray, row_class: np.ndarray, scale: float, prob_thd: float,
                  background: int = 0) -> np.ndarray:
    """SCLIP's rule: p = softmax over rows of scale * logits; class score = max of p over its rows;
    argmax over classes; pixels whose top class score < prob_thd -> background (0 in their code)."""
    z = row_logits.astype(np.float64) * scale
    p = np.exp(z - z.max(axis=0))
    p /= p.sum(axis=0)
    classes = np.stack([p[row_class == k].max(axis=0) for k in range(row_class.max() + 1)])
    pred = classes.argmax(axis=0)
    pred[classes.max(axis=0) < prob_thd] = background
    return pred


def _class_softmax_labels(row_logits: np.ndarray, row_class: np.ndarray, scale: float, prob_thd: float) -> np.ndarray:
    """The rule the harness used before: max over a class's rows first, softmax over classes."""
    classes = np.stack([row_logits[row_class == k].max(axis=0) for k in range(row_class.max() + 1)]) * scale
    p = np.exp(classes - classes.max(axis=0))
    p /= p.sum(axis=0)
    pred = p.argmax(axis=0)
    pred[p.max(axis=0) < prob_thd] = 0
    return pred


# 2 x 3 pixels, rows as in CLASSES; at scale 10 (probabilities worked out in the comments)
HAND_MADE = torch.tensor([
    # (0,0) dog=puppy  (0,1) cat     (0,2) sky         (1,0) cat>puppy   (1,1) all equal  (1,2) dog alone
    [[0.00, 0.00, 0.00], [0.00, 0.00, 0.00]],   # background
    [[0.00, 0.00, 0.30], [0.00, 0.00, 0.00]],   # sky
    [[0.00, 0.00, 0.00], [0.00, 0.00, 0.00]],   # wall
    [[0.00, 0.50, 0.00], [0.30, 0.00, 0.00]],   # cat
    [[0.10, 0.00, 0.00], [0.00, 0.00, 0.12]],   # dog
    [[0.10, 0.00, 0.00], [0.25, 0.00, 0.00]],   # puppy
])


def test_the_threshold_uses_a_softmax_over_every_row_on_a_hand_made_map(tmp_path):
    model = _segmentor(tmp_path, prob_threshold=0.4, background_index=0, logit_scale=10.0)
    labels = model.labels_from_logits(HAND_MADE)
    # (0,0): rows e^(0,0,0,0,1,1): top row e/(4+2e) = 0.29 < 0.4 -> background (per class: dog 0.58)
    # (0,1): e^5/(5+e^5) = 0.97 -> cat;  (0,2): sky e^3/(5+e^3) = 0.80 -> background (its own argmax)
    # (1,0): e^3/(4+e^3+e^2.5) = 0.55 -> cat;  (1,1): 1/6 -> background
    # (1,2): e^1.2/(5+e^1.2) = 0.399 < 0.4 -> background (per class: dog 0.62)
    assert labels.dtype == torch.int64 and labels.tolist() == [[0, 1, 0], [1, 0, 0]]
    assert labels.tolist() == _peers_labels(HAND_MADE.numpy(), ROW_CLASS, 10.0, 0.4).tolist()
    # the max-then-softmax probability would have kept the two dog pixels: it is not the peers' number
    assert _class_softmax_labels(HAND_MADE.numpy(), ROW_CLASS, 10.0, 0.4).tolist() == [[2, 1, 0], [1, 0, 2]]


def test_without_threshold_the_labels_are_the_argmax_of_the_class_logits(tmp_path):
    model = _segmentor(tmp_path)
    labels = model.labels_from_logits(HAND_MADE)
    assert labels.tolist() == model.class_logits(HAND_MADE).argmax(dim=0).tolist() == [[2, 1, 0], [1, 0, 2]]
    # a threshold of 0 never changes the argmax; a larger scale sharpens the softmax and keeps more pixels
    assert _segmentor(tmp_path, prob_threshold=0.0, background_index=0, logit_scale=10.0) \
        .labels_from_logits(HAND_MADE).tolist() == labels.tolist()
    assert _segmentor(tmp_path, prob_threshold=0.4, background_index=0, logit_scale=100.0) \
        .labels_from_logits(HAND_MADE).tolist() == [[2, 1, 0], [1, 0, 2]]


@pytest.mark.parametrize("shape, threshold", [((7, 5), 0.2), ((16, 23), 0.35), ((1, 40), 0.5)])
def test_random_maps_match_the_peers_rule(tmp_path, shape, threshold):
    rng = np.random.default_rng(shape[1])
    # six classes, synonym counts 3, 1, 2, 1, 4, 1; background is class 2 this time
    lines = ["a, b, c", "d", "e, f", "g", "h, i, j, k", "l"]
    row_class = np.repeat(np.arange(6), [3, 1, 2, 1, 4, 1])
    model = _segmentor(tmp_path, classes=lines, prob_threshold=threshold, background_index=2, logit_scale=40.0)
    for _ in range(3):
        logits = rng.normal(0.2, 0.03, size=(len(row_class), *shape)).astype(np.float32)
        expected = _peers_labels(logits, row_class, 40.0, threshold, background=2)
        got = model.labels_from_logits(torch.from_numpy(logits))
        assert got.tolist() == expected.tolist()
        assert 0 < (got == 2).float().mean() < 1  # the threshold did something, not everything


def test_bad_background_settings_are_refused(tmp_path):
    from clip_surgery_seg.errors import ConfigError

    with pytest.raises(ConfigError, match="background_index"):
        _segmentor(tmp_path, prob_threshold=0.1)
    with pytest.raises(ConfigError, match="background_index=3 is not a class"):
        _segmentor(tmp_path, background_index=3)
    with pytest.raises(ConfigError, match=r"not a probability"):
        _segmentor(tmp_path, prob_threshold=1.5, background_index=0)
