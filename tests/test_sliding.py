"""Test-scale resize and sliding windows against naive versions of docs/method.md §5."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from clip_surgery_seg.segmentors.sliding import WindowBatcher, keep_ratio_size, slide_logits, window_grid


@pytest.mark.parametrize("h,w,s", [(512, 683, 336), (1024, 2048, 560), (100, 5000, 448), (480, 640, 448)])
def test_keep_ratio_size_matches_mmcv(h, w, s):
    import mmcv

    new_w, new_h = mmcv.rescale_size((w, h), (2048, s))
    assert keep_ratio_size(h, w, s) == (new_h, new_w)


@pytest.mark.parametrize("h,w", [(336, 448), (250, 250), (100, 300), (224, 224), (560, 1120)])
def test_window_grid_covers_and_aligns(h, w):
    crop, stride = 224, 112
    windows = window_grid(h, w, crop, stride)
    cover = torch.zeros(h, w)
    for y1, y2, x1, x2 in windows:
        assert y2 - y1 == min(crop, h) and x2 - x1 == min(crop, w)
        cover[y1:y2, x1:x2] += 1
    assert cover.min() >= 1
    assert max(w[1] for w in windows) == h and max(w[3] for w in windows) == w


def _naive_slide(image, fn, crop, stride, patch):
    """One window at a time, docs/method.md §5.3-4 written out."""
    _, h, w = image.shape
    canvas, count = None, torch.zeros(h, w)
    rows = max(h - crop + stride - 1, 0) // stride + 1
    cols = max(w - crop + stride - 1, 0) // stride + 1
    for r in range(rows):
        for c in range(cols):
            y2, x2 = min(r * stride + crop, h), min(c * stride + crop, w)
            y1, x1 = max(y2 - crop, 0), max(x2 - crop, 0)
            window = image[:, y1:y2, x1:x2]
            ph, pw = -(y2 - y1) % patch, -(x2 - x1) % patch
            out = fn(F.pad(window, (0, pw, 0, ph))[None])[0][:, : y2 - y1, : x2 - x1]
            canvas = torch.zeros(out.shape[0], h, w) if canvas is None else canvas
            canvas[:, y1:y2, x1:x2] += out
            count[y1:y2, x1:x2] += 1
    return canvas / count


def _fake_logits(windows):
    """A position-dependent, non-linear stand-in for the model (B, 3, ph, pw) -> (B, 4, ph, pw)."""
    pooled = F.avg_pool2d(windows, 16)
    maps = torch.cat([pooled, pooled.sum(1, keepdim=True).tanh()], dim=1)
    return F.interpolate(maps, size=windows.shape[-2:], mode="bilinear", align_corners=False)


@pytest.mark.parametrize("batch_size", [1, 3, 64])
def test_slide_logits_equals_one_window_at_a_time(batch_size):
    torch.manual_seed(0)
    images = [torch.randn(3, 200, 300), torch.randn(3, 96, 130), torch.randn(3, 200, 300)]
    out = slide_logits(images, _fake_logits, 128, 64, WindowBatcher(batch_size), (16, 16))
    for image, canvas in zip(images, out):
        assert canvas.shape == (1, 4, *image.shape[-2:])
        assert torch.allclose(canvas[0], _naive_slide(image, _fake_logits, 128, 64, 16), atol=1e-5)
