"""The confusion-matrix metric against a naive count and against mmseg's IoUMetric."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import clip_surgery_seg.registry  # noqa: F401
from clip_surgery_seg.evaluation.metric import SegConfusionMetric, confusion_matrix, metrics_from_confusion


def _random_pair(rng, k, shape, ignore_frac=0.2, bad_pred_frac=0.05):
    label = rng.integers(0, k, size=shape)
    label[rng.random(shape) < ignore_frac] = 255
    pred = rng.integers(0, k, size=shape)
    pred[rng.random(shape) < bad_pred_frac] = k + 3  # outside [0, K): always wrong
    return torch.from_numpy(pred), torch.from_numpy(label)


def _naive_confusion(pred, label, k):
    m = np.zeros((k, k + 1), dtype=np.int64)
    for p, l in zip(pred.ravel().tolist(), label.ravel().tolist()):
        if l == 255 or not 0 <= l < k:
            continue
        m[l, p if 0 <= p < k else k] += 1
    return m


@pytest.mark.parametrize("k,shape", [(3, (7, 9)), (19, (32, 40)), (60, (17, 5))])
def test_confusion_matches_naive_count(k, shape):
    rng = np.random.default_rng(k)
    pred, label = _random_pair(rng, k, shape)
    assert np.array_equal(confusion_matrix(pred, label, k).numpy(), _naive_confusion(pred.numpy(), label.numpy(), k))


def test_metrics_from_formula():
    m = torch.tensor([[5, 1, 0, 2], [0, 0, 0, 0], [3, 0, 4, 0]])  # K=3, last column: bad predictions
    out = metrics_from_confusion(m, ["a", "b", "c"])
    iou = [5 / (8 + 8 - 5), 0.0, 4 / (7 + 4 - 4)]  # b: never labelled, predicted once -> 0
    acc = [5 / 8, float("nan"), 4 / 7]
    assert out["summary"]["aAcc"] == round(9 / 15 * 100, 2)
    assert out["summary"]["mIoU"] == round(np.nanmean(iou) * 100, 2)
    assert out["summary"]["mAcc"] == round(np.nanmean(acc) * 100, 2)
    assert out["per_class"][1]["IoU"] == 0.0 and math.isnan(out["per_class"][1]["Acc"])
    assert out["per_class"][2] == {"class": "c", "IoU": round(iou[2] * 100, 2), "Acc": round(acc[2] * 100, 2),
                                   "intersect": 4, "union": 7, "pred_area": 4, "label_area": 7}


@pytest.mark.parametrize("k,n_images", [(5, 4), (19, 3), (150, 2)])
def test_equals_mmseg_iou_metric(k, n_images):
    from mmseg.evaluation import IoUMetric

    rng = np.random.default_rng(k)
    ours = SegConfusionMetric(num_classes=k, class_names=[f"c{i}" for i in range(k)])
    theirs = IoUMetric(iou_metrics=["mIoU"])
    theirs.dataset_meta = {"classes": [f"c{i}" for i in range(k)]}
    samples = []
    for i in range(n_images):
        pred, label = _random_pair(rng, min(k, 4 + 3 * i), (40 + i, 50))  # classes absent in some images
        samples.append({"pred_sem_seg": {"data": pred[None]}, "gt_sem_seg": {"data": label[None]},
                        "seg_map_path": f"img{i}.png"})
        ours.update([pred], [label])
    theirs.process(None, samples)
    expected = theirs.evaluate(n_images)
    got = ours.compute()
    # mmseg hands back the same two-decimal numbers as float32
    assert {k: np.float32(v) for k, v in got["summary"].items()} == {
        key: np.float32(expected[key]) for key in ("aAcc", "mIoU", "mAcc")}


def test_update_accumulates_and_reset():
    metric = SegConfusionMetric(num_classes=3)
    pred = torch.tensor([[0, 1], [2, 2]])
    counts = metric.update([pred, pred], [pred, torch.full_like(pred, 255)])
    assert [int(c.sum()) for c in counts] == [4, 0]  # per image: the ignored image counts nothing
    assert metric.matrix.sum() == 4 and metric.compute()["summary"]["mIoU"] == 100.0
    metric.merge_state(counts[0])
    assert torch.equal(metric.compute()["confusion"], 2 * counts[0])
    metric.reset()
    assert metric.matrix is None
