"""Resizing a pretrained absolute positional embedding to another patch grid."""
from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F
from timm.layers import resample_abs_pos_embed

from ..errors import ConfigError

#: How a method's released code resizes the positional embedding for a grid other than the
#: pretraining one (the CLS position is always kept as it is):
#:
#: * ``bilinear`` -- to the target size, bilinear, ``align_corners=False``, no antialiasing
#:   (CLIP Surgery's code);
#: * ``bicubic`` -- to the target size, bicubic, ``align_corners=False`` (MaskCLIP's code, through
#:   mmseg's ``resize``);
#: * ``bicubic_offset`` -- bicubic with the *scale factor* ``(n + 0.1) / n0`` per side instead of a
#:   target size, as SCLIP's, ClearCLIP's and NACLIP's code does (taken from DINO). The output has
#:   ``n`` positions, but torch maps output to input coordinates with the given factor, so the
#:   numbers differ slightly from ``bicubic`` at the same size;
#: * ``bicubic_antialias`` -- to the target size with torch's antialiased bicubic (``antialias=True``:
#:   PIL's kernel, ``a = -0.5`` instead of ``-0.75``, widened when shrinking, weights renormalised
#:   at the border), as GEM's code does (timm-style ``resample_abs_pos_embed``). It differs from
#:   ``bicubic`` when enlarging too, not only when shrinking.
POS_INTERPOLATIONS = ("bilinear", "bicubic", "bicubic_offset", "bicubic_antialias")


def check_pos_interp(mode: str) -> str:
    if mode not in POS_INTERPOLATIONS:
        raise ConfigError(f"pos_interp={mode!r} is not a positional-embedding interpolation; choose one of "
                          f"{', '.join(POS_INTERPOLATIONS)}")
    return mode


def resize_pos_embed(pos: torch.Tensor, src: Tuple[int, int], dst: Tuple[int, int],
                     mode: str = "bilinear") -> torch.Tensor:
    """A ``(1 + src_h*src_w, C)`` positional embedding (CLS first) resized to the ``dst`` grid.

    Args:
        pos: (1 + src_h*src_w, C) float tensor, patch positions row-major.
        src: the pretraining grid ``(src_h, src_w)``; dst: the target grid ``(h, w)``.
        mode: one of :data:`POS_INTERPOLATIONS`.

    Returns:
        (1 + h*w, C) in ``pos``'s dtype; ``pos`` itself when the grids are equal (the released codes
        interpolate only when the grid changes; ``bicubic_offset`` would not be the identity there).
    """
    check_pos_interp(mode)
    src, dst = tuple(src), tuple(dst)
    if src == dst:
        return pos
    if mode != "bicubic_offset":
        antialias = mode == "bicubic_antialias"
        return resample_abs_pos_embed(pos[None], list(dst), list(src), num_prefix_tokens=1,
                                      interpolation="bicubic" if antialias else mode, antialias=antialias)[0]
    grid = pos[1:].float().reshape(1, src[0], src[1], -1).permute(0, 3, 1, 2)
    scale = ((dst[0] + 0.1) / src[0], (dst[1] + 0.1) / src[1])
    grid = F.interpolate(grid, scale_factor=scale, mode="bicubic", align_corners=False)
    if tuple(grid.shape[-2:]) != dst:  # floor((n + 0.1) / n0 * n0) is n; guard against rounding anyway
        raise RuntimeError(f"bicubic_offset resized the positional grid to {tuple(grid.shape[-2:])}, not {dst}")
    grid = grid.permute(0, 2, 3, 1).reshape(dst[0] * dst[1], -1).to(pos.dtype)
    return torch.cat([pos[:1], grid])
