"""Test-scale resize and sliding-window inference with windows batched across images (docs/method.md §5)."""
from __future__ import annotations

import logging
import math
from collections import defaultdict
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..named import is_int
from ..protocols import PADDINGS

logger = logging.getLogger(__name__)

Window = Tuple[int, int, int, int]  # y1, y2, x1, x2

# window_batch_size="auto" on a CPU: ViT-B/16's windows/s are flat from about 4 windows per batch
# on (benchmarks/bench_encoder.py), and 8 keeps the memory of small batches (bench_segmentor.py)
CPU_AUTO_BATCH = 8
# "auto" on a GPU: this share of the free memory, at most this many windows per batch
GPU_MEMORY_SHARE = 0.5
MAX_AUTO_BATCH = 512


def keep_ratio_size(height: int, width: int, short_side: int, max_long_side: int = 2048) -> Tuple[int, int]:
    """Short side to ``short_side``, long side at most ``max_long_side`` (mmcv's rounding)."""
    scale = min(max_long_side / max(height, width), short_side / min(height, width))
    return int(height * scale + 0.5), int(width * scale + 0.5)


def window_grid(height: int, width: int, crop: Optional[int], stride: int) -> List[Window]:
    """Windows covering the image, last row/column aligned to the border (mmseg's slide rule).

    An image smaller than the crop along a side gets one window along it, as large as the image;
    ``crop=None`` gives one window, the whole image.
    """
    if crop is None:
        return [(0, height, 0, width)]
    rows = max(height - crop + stride - 1, 0) // stride + 1
    cols = max(width - crop + stride - 1, 0) // stride + 1
    windows = []
    for r in range(rows):
        for c in range(cols):
            y2, x2 = min(r * stride + crop, height), min(c * stride + crop, width)
            windows.append((max(y2 - crop, 0), y2, max(x2 - crop, 0), x2))
    return windows


#: how a window whose sides are not multiples of the patch size reaches the encoder (see
#: ``protocols.ProtocolSettings.padding``)


def encoder_window(height: int, width: int, multiple: Tuple[int, int],
                   padding: str) -> Tuple[Tuple[int, int], Tuple[int, int, int, int], Tuple[int, int]]:
    """How an ``height x width`` window is fed to the encoder and its maps mapped back.

    Returns:
        ``(encoded, pad, target)``: the (h, w) the encoder sees; the zero padding (left, right, top,
        bottom) that makes it (``stretch``: none -- the window is cut to its whole patches, as a
        patch embedding without padding does); the size its maps are upsampled to before the window
        is cut out of them at offset (top, left) of ``pad`` (``stretch``: the window's own size).
    """
    ph, pw = multiple
    if padding == "stretch":
        encoded = (max(height // ph, 1) * ph, max(width // pw, 1) * pw)
        return encoded, (0, 0, 0, 0), (height, width)
    extra_h, extra_w = -height % ph, -width % pw
    if padding == "centre":
        pad = (extra_w // 2, extra_w - extra_w // 2, extra_h // 2, extra_h - extra_h // 2)
    elif padding == "bottom_right":
        pad = (0, extra_w, 0, extra_h)
    else:
        raise ConfigError(f"padding must be one of {', '.join(PADDINGS)}, got {padding!r}")
    encoded = (height + extra_h, width + extra_w)
    return encoded, pad, encoded


def auto_batch_size(windows: torch.Tensor,
                    bytes_per_window: Optional[Callable[[torch.Tensor], float]] = None) -> int:
    """Windows per batch for ``window_batch_size="auto"``.

    On a CPU a fixed :data:`CPU_AUTO_BATCH`; on a GPU :data:`GPU_MEMORY_SHARE` of the free memory
    divided by ``bytes_per_window(windows)`` (an estimate of one window's working memory), at most
    :data:`MAX_AUTO_BATCH`.
    """
    if windows.device.type != "cuda":
        return CPU_AUTO_BATCH
    free, _ = torch.cuda.mem_get_info(windows.device)
    per_window = bytes_per_window(windows) if bytes_per_window else 4096.0 * windows[0].numel()
    return int(max(1, min(MAX_AUTO_BATCH, GPU_MEMORY_SHARE * free // max(per_window, 1.0))))


class WindowBatcher:
    """Runs window batches, halving the batch on CUDA out-of-memory (said once, not silently).

    Only a single window that does not fit is an error.

    Args:
        batch_size: windows per batch, or ``"auto"``: :func:`auto_batch_size`, decided at the
            first batch (from the free GPU memory on CUDA, a fixed size on a CPU).
        bytes_per_window: for ``"auto"`` on a GPU, an estimate of one window's working memory.
    """

    def __init__(self, batch_size: Union[int, str],
                 bytes_per_window: Optional[Callable[[torch.Tensor], float]] = None) -> None:
        self.auto = batch_size == "auto"
        if not self.auto and (not is_int(batch_size) or batch_size < 1):
            raise ConfigError(f"window_batch_size must be an integer >= 1 or 'auto', got {batch_size!r}")
        self.batch_size: Optional[int] = None if self.auto else batch_size
        self.bytes_per_window = bytes_per_window
        self._warned = False

    def run(self, windows: torch.Tensor,
            fn: Callable[[torch.Tensor], torch.Tensor]) -> Iterator[Tuple[int, torch.Tensor]]:
        """Yield ``(start, fn(windows[start:start + n]))`` until every window is done."""
        if self.batch_size is None:
            self.batch_size = auto_batch_size(windows, self.bytes_per_window)
            logger.info("window_batch_size auto: %d windows per batch", self.batch_size)
        start = 0
        while start < len(windows):
            chunk = windows[start:start + self.batch_size]
            try:
                output = fn(chunk)
            except torch.cuda.OutOfMemoryError:
                if self.batch_size == 1:
                    raise ConfigError("one window does not fit in GPU memory; use a smaller "
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


class ScratchBuffers:
    """Large CPU buffers kept from one image to the next.

    A fresh 100-200 MB tensor per image (the logit canvas, the logits at the original size) costs
    more in page faults than the arithmetic done on it: the allocator hands such blocks back to the
    OS on free, and every page is faulted in again for the next image. On CUDA the caching
    allocator already reuses memory, so there ``get`` just allocates.

    A buffer handed out under a name is valid until the next ``get`` of that name.
    """

    def __init__(self) -> None:
        self._flat: Dict[str, torch.Tensor] = {}

    def get(self, name: str, shape: Sequence[int], dtype: torch.dtype, device: torch.device,
            channels_last: bool = False) -> torch.Tensor:
        """An uninitialised tensor of ``shape`` (4-d when ``channels_last``)."""
        shape = tuple(int(v) for v in shape)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        if torch.device(device).type != "cpu":
            return torch.empty(shape, dtype=dtype, device=device, memory_format=fmt)
        numel = math.prod(shape)
        flat = self._flat.get(name)
        if flat is None or flat.numel() < numel or flat.dtype != dtype:
            flat = self._flat[name] = torch.empty(numel, dtype=dtype, device=device)
        return flat.as_strided(shape, _strides(shape, channels_last))

    def clear(self) -> None:
        self._flat.clear()


def _strides(shape: Tuple[int, ...], channels_last: bool) -> Tuple[int, ...]:
    if channels_last:
        n, c, h, w = shape
        return (c * h * w, 1, w * c, c)
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= size
    return tuple(reversed(strides))


def resize_bilinear(x: torch.Tensor, size: Tuple[int, int], out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``F.interpolate(x, size, mode="bilinear", align_corners=False)``, optionally into ``out``.

    Same kernel, same numbers; ``out`` (of the result's shape and memory format) saves allocating.
    """
    if out is None:
        return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)
    return torch.ops.aten.upsample_bilinear2d.out(x, list(size), False, None, None, out=out)


def slide_logits(images: Sequence[torch.Tensor], window_logits: Callable[[torch.Tensor], torch.Tensor],
                 crop: Optional[int], stride: int, batcher: WindowBatcher,
                 pad_multiple: Tuple[int, int], scratch: Optional[ScratchBuffers] = None,
                 padding: str = "bottom_right") -> List[torch.Tensor]:
    """Sliding-window logits for several images at once.

    Args:
        images: (3, h, w) normalised images, sizes may differ.
        window_logits: (B, 3, ph, pw) windows as the encoder takes them -> (B, K, ph, pw) logits at
            that resolution, or (B, K, h', w') maps at a lower resolution: those are upsampled
            (bilinear, as ``F.interpolate``) one window at a time as they are added, so that a batch
            never holds B full-size K-channel maps.
        crop, stride: window size and step (``crop=None``: the whole image is one window).
        batcher: encodes windows of the same encoder size, from all images, in batches.
        pad_multiple: the patch size; windows reach the encoder as :func:`encoder_window` says.
        scratch: reuse these buffers for the canvases and the upsampled windows (the returned
            canvases are then valid until the next call with the same ``scratch``).
        padding: ``bottom_right`` | ``centre`` | ``stretch`` (:data:`PADDINGS`).

    Returns:
        Per image (1, K, h, w), channels-last: the sum of the window logits covering each pixel
        divided by their number.
    """
    groups: Dict[Tuple[int, int], list] = defaultdict(list)
    for index, image in enumerate(images):
        for window in window_grid(image.shape[-2], image.shape[-1], crop, stride):
            y1, y2, x1, x2 = window
            encoded, pad, target = encoder_window(y2 - y1, x2 - x1, pad_multiple, padding)
            groups[encoded].append((index, window, pad, target))
    canvases: List = [None] * len(images)
    counts = [torch.zeros(im.shape[-2:], device=im.device) for im in images]
    for encoded, entries in groups.items():
        crops = torch.stack([_encoder_input(images[i][:, y1:y2, x1:x2], encoded, pad)
                             for i, (y1, y2, x1, x2), pad, _ in entries])
        for start, logits in batcher.run(crops, window_logits):
            for (index, (y1, y2, x1, x2), pad, target), window in zip(entries[start:start + len(logits)], logits):
                if tuple(window.shape[-2:]) != target:
                    out = None if scratch is None else scratch.get(
                        "window", (1, window.shape[0], *target), window.dtype, window.device, channels_last=True)
                    window = resize_bilinear(window[None], target, out)[0]
                if canvases[index] is None:  # channels-last like the windows (K innermost)
                    shape = (1, window.shape[0], *images[index].shape[-2:])
                    canvases[index] = (torch.empty(shape, dtype=window.dtype, device=window.device,
                                                   memory_format=torch.channels_last) if scratch is None else
                                       scratch.get(f"canvas{index}", shape, window.dtype, window.device,
                                                   channels_last=True)).zero_()
                left, top = pad[0], pad[2]
                canvases[index][0, :, y1:y2, x1:x2] += window[:, top:top + y2 - y1, left:left + x2 - x1]
                counts[index][y1:y2, x1:x2] += 1
    return [canvas.div_(count) for canvas, count in zip(canvases, counts)]


def _encoder_input(window: torch.Tensor, encoded: Tuple[int, int], pad: Tuple[int, int, int, int]) -> torch.Tensor:
    """(C, h, w) window -> (C, *encoded): zero-padded by ``pad``, or cut to ``encoded`` (``stretch``)."""
    if any(pad):
        return F.pad(window, pad)
    return window[:, :encoded[0], :encoded[1]]
