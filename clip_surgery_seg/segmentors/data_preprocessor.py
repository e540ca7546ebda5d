"""Move images to the device and normalise them with CLIP's statistics (docs/method.md §5.2)."""
from __future__ import annotations

from typing import Dict, Sequence

import torch
from mmengine.model import BaseDataPreprocessor
from mmseg.registry import MODELS

CLIP_MEAN = (122.771, 116.746, 104.094)  # RGB, 0-255 scale
CLIP_STD = (68.501, 66.632, 70.323)


@MODELS.register_module()
class CLIPSegDataPreProcessor(BaseDataPreprocessor):
    """uint8 RGB (3, H, W) images of any sizes -> a list of normalised float tensors on the device.

    Images keep their own sizes (no padding or stacking): the segmentor resizes and windows each.
    """

    def __init__(self, mean: Sequence[float] = CLIP_MEAN, std: Sequence[float] = CLIP_STD) -> None:
        super().__init__(non_blocking=True)  # pinned host memory: copies overlap the previous batch
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(3, 1, 1), False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(3, 1, 1), False)

    def forward(self, data: dict, training: bool = False) -> Dict[str, object]:
        data = self.cast_data(data)  # to self.device, non-blocking where pinned
        images = [(image.float() - self.mean) / self.std for image in data["inputs"]]
        return {"inputs": images, "data_samples": data.get("data_samples")}
