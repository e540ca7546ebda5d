"""Images to the model's input: the test-scale resize, the device, CLIP's normalisation (docs/method.md §5.1-2)."""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.model import BaseDataPreprocessor
from mmseg.registry import MODELS

CLIP_MEAN = (122.771, 116.746, 104.094)  # RGB, 0-255 scale
CLIP_STD = (68.501, 66.632, 70.323)
from ..protocols import RESIZE_MODES  # mmseg: mmcv on the uint8 image here; device: the segmentor


def mmseg_rescale(image: np.ndarray, scale: Tuple[int, int]) -> np.ndarray:
    """``mmcv.imrescale(image, scale, interpolation='bilinear', backend='cv2')``: what mmseg's
    ``Resize(scale=scale, keep_ratio=True)`` does to an image. image (H, W, C) uint8."""
    import mmcv

    return mmcv.imrescale(image, scale, interpolation="bilinear", backend="cv2")


@MODELS.register_module()
class CLIPSegDataPreProcessor(BaseDataPreprocessor):
    """uint8 RGB (3, H, W) images of any sizes -> a list of normalised float tensors on the device.

    Images keep their own sizes (no padding or stacking). With ``resize="mmseg"`` each image is first
    rescaled to ``test_scale`` = ``(max long side, short side)`` on the CPU by mmcv itself, the pixels
    the peer harnesses feed their models; with ``"device"`` (or no ``test_scale``) it arrives at its
    original size and the segmentor resizes it.
    """

    def __init__(self, mean: Sequence[float] = CLIP_MEAN, std: Sequence[float] = CLIP_STD,
                 test_scale: Optional[Sequence[int]] = None, resize: str = "device") -> None:
        super().__init__(non_blocking=True)  # pinned host memory: copies overlap the previous batch
        if resize not in RESIZE_MODES:
            raise ValueError(f"resize must be one of {RESIZE_MODES}, got {resize!r}")
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(3, 1, 1), False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(3, 1, 1), False)
        self.test_scale = tuple(int(v) for v in test_scale) if test_scale is not None else None
        self.resize = resize

    @property
    def resizes(self) -> bool:
        """Whether images leave here at the test scale (else the segmentor resizes them)."""
        return self.resize == "mmseg" and self.test_scale is not None

    def _rescaled(self, image: torch.Tensor) -> torch.Tensor:
        array = image.permute(1, 2, 0).cpu().numpy()
        return torch.from_numpy(np.ascontiguousarray(mmseg_rescale(array, self.test_scale))).permute(2, 0, 1)

    def forward(self, data: dict, training: bool = False) -> Dict[str, object]:
        if self.resizes:
            data = {**data, "inputs": [self._rescaled(image) for image in data["inputs"]]}
        data = self.cast_data(data)  # to self.device, non-blocking where pinned
        images = [(image.float() - self.mean) / self.std for image in data["inputs"]]
        return {"inputs": images, "data_samples": data.get("data_samples")}
