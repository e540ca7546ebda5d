"""PAMR, pixel-adaptive mask refinement (Araslanov & Roth, CVPR 2020), as NACLIP's and SCLIP's code apply it.

Used by the segmentor as an optional post-processing step (:mod:`clip_surgery_seg.segmentors.postprocess`)
and inside ResCLIP's provisional segmentation (:mod:`.methods.resclip`); it lives here, below both,
so that a method can call it.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F

# the eight neighbours in the order of the released PAMR kernels (row-major, centre left out)
_NEIGHBOURS: Tuple[Tuple[int, int], ...] = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))


def _shifted(x: torch.Tensor, dilation: int, offsets: Sequence[Tuple[int, int]]) -> List[torch.Tensor]:
    """For each offset (dy, dx): ``x`` read at (y + dy*dilation, x + dx*dilation), coordinates clamped
    to the border (replicate padding). x (B, C, H, W) -> list of (B, C, H, W)."""
    h, w = x.shape[-2:]
    d = dilation
    padded = F.pad(x, [d, d, d, d], mode="replicate")
    return [padded[:, :, d + dy * d:d + dy * d + h, d + dx * d:d + dx * d + w] for dy, dx in offsets]


def pamr_affinity(image: torch.Tensor, dilations: Sequence[int] = (8, 16)) -> torch.Tensor:
    """PAMR's pixel-adaptive affinities between every pixel and its dilated neighbours.

    For each dilation ``d`` the neighbours are the 8 pixels at offsets ``d * (dy, dx)``,
    ``dy, dx in {-1, 0, 1}``, clamped to the border. Per image channel ``c``, with ``sigma_c`` the
    (unbiased) standard deviation of the 9 values around each pixel over all dilations (the centre
    counted once per dilation), the affinity logit is ``-|I_c(p) - I_c(n)| / (1e-8 + 0.1 sigma_c(p))``;
    the logits are averaged over channels and soft-maxed over the neighbours.

    Args:
        image: (B, C, H, W) the (normalised) image.
        dilations: neighbourhood dilations.

    Returns:
        (B, 1, P, H, W) weights summing to 1 over the P = 8 * len(dilations) neighbours.
    """
    if not dilations or any(int(d) < 1 for d in dilations):
        raise ValueError(f"PAMR dilations must be positive integers, got {tuple(dilations)}")
    image = image.float()
    around = torch.stack([v for d in dilations for v in _shifted(image, d, ((0, 0),) + _NEIGHBOURS)], dim=2)
    sigma = around.std(dim=2, keepdim=True)  # (B, C, 1, H, W)
    neighbours = torch.stack([v for d in dilations for v in _shifted(image, d, _NEIGHBOURS)], dim=2)
    logits = -(image[:, :, None] - neighbours).abs() / (1e-8 + 0.1 * sigma)
    return logits.mean(dim=1, keepdim=True).softmax(dim=2)


def pamr(image: torch.Tensor, masks: torch.Tensor, num_iter: int = 10,
         dilations: Sequence[int] = (8, 16)) -> torch.Tensor:
    """Pixel-adaptive mask refinement (Araslanov & Roth, CVPR 2020) as NACLIP's and SCLIP's code
    apply it to the class logits.

    ``masks`` is resized to the image (bilinear, ``align_corners=True``); then, ``num_iter`` times,
    every pixel's scores become the affinity-weighted sum of its neighbours' scores
    (:func:`pamr_affinity`; the pixel itself is not one of its neighbours). Those codes call it on
    the logits at the original image size, with the normalised image resized (bilinear) to that size,
    before the softmax; NACLIP by default with 10 iterations and dilations (8, 16).

    Args:
        image: (B, C, H, W) the normalised image guiding the refinement.
        masks: (B, K, h, w) class scores (any resolution).
        num_iter: refinement steps (0 only resizes).
        dilations: neighbourhood dilations.

    Returns:
        (B, K, H, W) float32 refined scores.
    """
    if image.dim() != 4 or masks.dim() != 4 or image.shape[0] != masks.shape[0]:
        raise ValueError(f"expected image (B, C, H, W) and masks (B, K, h, w), got {tuple(image.shape)} "
                         f"and {tuple(masks.shape)}")
    if num_iter < 0:
        raise ValueError(f"PAMR num_iter must be >= 0, got {num_iter}")
    weights = pamr_affinity(image, dilations)[:, 0]  # (B, P, H, W)
    masks = F.interpolate(masks.float(), size=image.shape[-2:], mode="bilinear", align_corners=True)
    for _ in range(num_iter):
        # one neighbour at a time: (B, K, H, W) memory instead of the released code's (B, K, P, H, W)
        shifted = (v for d in dilations for v in _shifted(masks, d, _NEIGHBOURS))
        out = torch.zeros_like(masks)
        for p, neighbour in enumerate(shifted):
            out.addcmul_(neighbour, weights[:, p:p + 1])
        masks = out
    return masks
