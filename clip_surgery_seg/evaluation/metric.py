"""Exact mIoU from a confusion matrix, accumulated on the device and summed across ranks (SPEC §6)."""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.distributed as dist
from mmengine.evaluator import BaseMetric
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
    """SPEC §6 from a (K, K + 1) confusion matrix.

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


@METRICS.register_module()
class SegConfusionMetric(BaseMetric):
    """aAcc / mIoU / mAcc / per-class IoU and Acc from one confusion matrix.

    torchmetrics-style: :meth:`update` per batch (on the predictions' device), :meth:`compute`
    once -- the matrix is summed over all ranks when torch.distributed is initialised. Also an
    mmengine metric (``process`` / ``evaluate``), so it works in an mmengine ``Evaluator``.

    Args:
        num_classes: K; None takes it from ``dataset_meta['classes']``.
        ignore_index: label value left out of the metric.
    """

    default_prefix: Optional[str] = ""  # summary keys stay aAcc / mIoU / mAcc

    def __init__(self, num_classes: Optional[int] = None, ignore_index: int = 255,
                 class_names: Optional[Sequence[str]] = None, collect_device: str = "cpu",
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self._num_classes = num_classes
        self.ignore_index = ignore_index
        self._class_names = list(class_names) if class_names is not None else None
        self.matrix: Optional[torch.Tensor] = None

    @property
    def num_classes(self) -> int:
        if self._num_classes is None:
            if not self.dataset_meta or "classes" not in self.dataset_meta:
                raise ValueError("SegConfusionMetric needs num_classes or dataset_meta['classes']")
            self._num_classes = len(self.dataset_meta["classes"])
        return self._num_classes

    @property
    def class_names(self) -> List[str]:
        if self._class_names is not None:
            return self._class_names
        if self.dataset_meta and "classes" in self.dataset_meta:
            return list(self.dataset_meta["classes"])
        return [str(i) for i in range(self.num_classes)]

    def image_confusion(self, pred: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return confusion_matrix(pred, label, self.num_classes, self.ignore_index)

    def add(self, matrix: torch.Tensor) -> None:
        """Add a (K, K + 1) count matrix (one image's, or restored ones)."""
        if self.matrix is None:
            self.matrix = torch.zeros_like(matrix, dtype=torch.int64)
        self.matrix += matrix.to(self.matrix.device)

    def update(self, preds: Sequence[torch.Tensor], labels: Sequence[torch.Tensor]) -> None:
        for pred, label in zip(preds, labels):
            self.add(self.image_confusion(pred, label))

    def compute(self) -> Dict:
        if self.matrix is None:
            self.matrix = torch.zeros(self.num_classes, self.num_classes + 1, dtype=torch.int64)
        total = self.matrix.clone()
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return metrics_from_confusion(total, self.class_names)

    def reset(self) -> None:
        self.matrix = None
        self.results.clear()

    # mmengine's Metric API
    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            pred = sample["pred_sem_seg"]["data"].squeeze()
            self.update([pred], [sample["gt_sem_seg"]["data"].squeeze().to(pred.device)])

    def compute_metrics(self, results: list) -> Dict[str, float]:
        return self.compute()["summary"]

    def evaluate(self, size: int) -> Dict[str, float]:
        """mmengine entry point: the summary over all ranks (no per-sample results are gathered)."""
        metrics = self.compute()["summary"]
        self.reset()
        return metrics
