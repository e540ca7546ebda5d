"""Test-scale resize and sliding-window inference with windows batched across images (SPEC §5)."""
from __future__ import annotations

import logging
from collections import defaultdict
from typing import Callable, Dict, Iterator, List, Sequence, Tuple

import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)

Window = Tuple[int, int, int, int]  # y1, y2, x1, x2


def keep_ratio_size(height: int, width: int, short_side: int, max_long_side: int = 2048) -> Tuple[int, int]:
    """Short side to ``short_side``, long side at most ``max_long_side`` (mmcv's rounding)."""
    scale = min(max_long_side / max(height, width), short_side / min(height, width))
    return int(height * scale + 0.5), int(width * scale + 0.5)


def window_grid(height: int, width: int, crop: int, stride: int) -> List[Window]:
    """Windows covering the image, last row/column aligned to the border (mmseg's slide rule).

    An image smaller than the crop along a side gets one window along it, as large as the image.
    """
    rows = max(height - crop + stride - 1, 0) // stride + 1
    cols = max(width - crop + stride - 1, 0) // stride + 1
    windows = []
    for r in range(rows):
        for c in range(cols):
            y2, x2 = min(r * stride + crop, height), min(c * stride + crop, width)
            windows.append((max(y2 - crop, 0), y2, max(x2 - crop, 0), x2))
    return windows


def _pad_to_multiple(crop: torch.Tensor, multiple: Tuple[int, int]) -> torch.Tensor:
    """Zero-pad (C, h, w) at the bottom/right to multiples of the patch size."""
    h, w = crop.shape[-2:]
    ph, pw = -h % multiple[0], -w % multiple[1]
    return F.pad(crop, (0, pw, 0, ph)) if ph or pw else crop


class WindowBatcher:
    """Runs window batches, halving the batch on CUDA out-of-memory (said once, not silently).

    Only a single window that does not fit is an error.
    """

    def __init__(self, batch_size: int) -> None:
        if batch_size < 1:
            raise ValueError(f"window_batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self._warned = False

    def run(self, windows: torch.Tensor,
            fn: Callable[[torch.Tensor], torch.Tensor]) -> Iterator[Tuple[int, torch.Tensor]]:
        """Yield ``(start, fn(windows[start:start + n]))`` until every window is done."""
        start = 0
        while start < len(windows):
            chunk = windows[start:start + self.batch_size]
            try:
                output = fn(chunk)
            except torch.cuda.OutOfMemoryError:
                if self.batch_size == 1:
                    raise RuntimeError("one window does not fit in GPU memory; use a smaller "
                                       "crop_size or a larger GPU") from None
                torch.cuda.empty_cache()
                self.batch_size = max(1, self.batch_size // 2)
                if not self._warned:
                    logger.warning("GPU out of memory on a window batch; retrying with batches of %d "
                                   "(set model.window_batch_size to avoid this)", self.batch_size)
                    self._warned = True
                continue
            yield start, output
            start += len(chunk)


def slide_logits(images: Sequence[torch.Tensor], window_logits: Callable[[torch.Tensor], torch.Tensor],
                 crop: int, stride: int, batcher: WindowBatcher,
                 pad_multiple: Tuple[int, int]) -> List[torch.Tensor]:
    """Sliding-window logits for several images at once.

    Args:
        images: (3, h, w) normalised images, sizes may differ.
        window_logits: (B, 3, ph, pw) padded windows -> (B, K, ph, pw) logits at window resolution.
        crop, stride: window size and step.
        batcher: encodes windows of the same padded size, from all images, in batches.
        pad_multiple: windows are zero-padded to multiples of this (the patch size).

    Returns:
        Per image (1, K, h, w), channels-last: the sum of the window logits covering each pixel
        divided by their number.
    """
    groups: Dict[Tuple[int, int], List[Tuple[int, Window]]] = defaultdict(list)
    for index, image in enumerate(images):
        for window in window_grid(image.shape[-2], image.shape[-1], crop, stride):
            y1, y2, x1, x2 = window
            padded = (y2 - y1 + -(y2 - y1) % pad_multiple[0], x2 - x1 + -(x2 - x1) % pad_multiple[1])
            groups[padded].append((index, window))
    canvases: List = [None] * len(images)
    counts = [torch.zeros(im.shape[-2:], device=im.device) for im in images]
    for entries in groups.values():
        crops = torch.stack([_pad_to_multiple(images[i][:, y1:y2, x1:x2], pad_multiple)
                             for i, (y1, y2, x1, x2) in entries])
        for start, logits in batcher.run(crops, window_logits):
            for (index, (y1, y2, x1, x2)), window in zip(entries[start:start + len(logits)], logits):
                if canvases[index] is None:  # channels-last like the windows (K innermost)
                    canvases[index] = torch.empty((1, window.shape[0], *images[index].shape[-2:]),
                                                  dtype=window.dtype, device=window.device,
                                                  memory_format=torch.channels_last).zero_()
                canvases[index][0, :, y1:y2, x1:x2] += window[:, : y2 - y1, : x2 - x1]
                counts[index][y1:y2, x1:x2] += 1
    return [canvas.div_(count) for canvas, count in zip(canvases, counts)]
