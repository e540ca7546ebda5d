"""Exact mIoU from a confusion matrix, accumulated on the device and summed across ranks (docs/metric.md)."""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.distributed as dist
from mmseg.registry import METRICS


def confusion_matrix(pred: torch.Tensor, label: torch.Tensor, num_classes: int,
                     ignore_index: int = 255) -> torch.Tensor:
    """(K, K + 1) int64 counts: row = label class, column = predicted class.

    Pixels labelled ``ignore_index`` (or outside ``[0, K)``) are left out; a prediction outside
    ``[0, K)`` goes in the last column: wrong for its label class, a false positive for none.
    """
    k = num_classes
    label = label.reshape(-1).to(torch.int64)
    pred = pred.reshape(-1).to(device=label.device, dtype=torch.int64)
    keep = (label != ignore_index) & (label >= 0) & (label < k)
    label, pred = label[keep], pred[keep]
    pred = torch.where((pred >= 0) & (pred < k), pred, torch.full_like(pred, k))
    return torch.bincount(label * (k + 1) + pred, minlength=k * (k + 1)).view(k, k + 1)


def metrics_from_confusion(matrix: torch.Tensor, class_names: Optional[Sequence[str]] = None) -> Dict:
    """docs/metric.md from a (K, K + 1) confusion matrix.

    Returns ``{"summary": {aAcc, mIoU, mAcc}, "per_class": [...]}`` in percent, rounded to two
    decimals like mmseg's ``IoUMetric``; a class with zero union (IoU) or zero label area (Acc) is
    NaN and left out of the mean. Raw per-class pixel counts are included, so results can be
    recomputed exactly.
    """
    m = matrix.detach().to("cpu", torch.float64).numpy()
    k = m.shape[0]
    intersect = np.diag(m[:, :k])
    label_area = m.sum(axis=1)
    pred_area = m[:, :k].sum(axis=0)
    union = label_area + pred_area - intersect
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = intersect / union
        acc = intersect / label_area
        a_acc = intersect.sum() / label_area.sum()
    names = list(class_names) if class_names is not None else [str(i) for i in range(k)]

    def pct(value: float) -> float:
        return float(np.round(value * 100, 2))

    summary = {"aAcc": pct(a_acc), "mIoU": pct(np.nanmean(iou)) if not np.all(np.isnan(iou)) else float("nan"),
               "mAcc": pct(np.nanmean(acc)) if not np.all(np.isnan(acc)) else float("nan")}
    per_class: List[Dict] = [
        {"class": names[i], "IoU": pct(iou[i]), "Acc": pct(acc[i]), "intersect": int(intersect[i]),
         "union": int(union[i]), "pred_area": int(pred_area[i]), "label_area": int(label_area[i])}
        for i in range(k)]
    return {"summary": summary, "per_class": per_class}


def image_miou(confusion) -> float:
    """mIoU (percent) of one image's ``(K, K + 1)`` confusion matrix (numpy or torch), over the classes
    present in its label or its prediction (zero union: left out); NaN when it has no labelled pixel.

    Unrounded: it ranks images (the report's worst and best) and titles their panels.
    """
    m = confusion.detach().cpu().numpy() if isinstance(confusion, torch.Tensor) else np.asarray(confusion)
    m = m.astype(np.float64, copy=False)
    k = m.shape[0]
    intersect = np.diag(m[:, :k])
    union = m.sum(axis=1) + m[:, :k].sum(axis=0) - intersect
    present = union > 0
    return float(100 * np.mean(intersect[present] / union[present])) if present.any() else float("nan")


@METRICS.register_module()
class SegConfusionMetric:
    """aAcc / mIoU / mAcc / per-class IoU and Acc from one confusion matrix.

    torchmetrics-style: :meth:`update` per batch (on the predictions' device), :meth:`compute`
    once -- the matrix is summed over all ranks when torch.distributed is initialised --,
    :meth:`merge_state` to add counts kept from elsewhere (a resumed run's), :meth:`reset`.

    Args:
        num_classes: K.
        ignore_index: label value left out of the metric.
        class_names: the K names reported per class (default ``"0"``, ``"1"``, ...).
    """

    def __init__(self, num_classes: int, ignore_index: int = 255,
                 class_names: Optional[Sequence[str]] = None) -> None:
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names for {num_classes} classes")
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.class_names = list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
        self.matrix: Optional[torch.Tensor] = None

    def update(self, preds: Sequence[torch.Tensor], labels: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        """Count a batch of (H, W) predictions against their labels.

        Returns:
            Each image's (K, K + 1) counts (what was added), e.g. for a progress journal.
        """
        counts = [confusion_matrix(pred, label.to(pred.device), self.num_classes, self.ignore_index)
                  for pred, label in zip(preds, labels)]
        for matrix in counts:
            self.merge_state(matrix)
        return counts

    def merge_state(self, matrix: torch.Tensor) -> None:
        """Add a (K, K + 1) count matrix."""
        shape = (self.num_classes, self.num_classes + 1)
        if tuple(matrix.shape) != shape:
            raise ValueError(f"counts of shape {tuple(matrix.shape)}, expected {shape}")
        if self.matrix is None:
            self.matrix = torch.zeros(shape, dtype=torch.int64, device=matrix.device)
        self.matrix += matrix.to(self.matrix.device, torch.int64)

    def compute(self) -> Dict:
        """The metrics over everything counted on every rank (see :func:`metrics_from_confusion`),
        plus ``"confusion"``: the summed (K, K + 1) matrix on the CPU."""
        total = (self.matrix.clone() if self.matrix is not None
                 else torch.zeros(self.num_classes, self.num_classes + 1, dtype=torch.int64))
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return {**metrics_from_confusion(total, self.class_names), "confusion": total.cpu()}

    def reset(self) -> None:
        self.matrix = None
