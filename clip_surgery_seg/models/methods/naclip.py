"""NACLIP: neighbourhood-aware key-key attention in the last block (Hajimiri et al., WACV 2025)."""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError
from ...named import is_number
from .base import ImageTokenMethod, PosEmbed, attention_out, block_qkv, vit_project, vit_stream
from .registry import register_method


def gaussian_neighbourhood(grid: Tuple[int, int], std: float, device: Optional[torch.device] = None,
                           dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """NACLIP's additive attention term for an h x w patch grid.

    ``G[i, j] = exp(-|p_i - p_j|² / (2 std²))`` between patch positions (row, column) -- peak 1,
    not normalised -- with a zero row and column for the CLS token in front.

    Returns:
        (1 + h*w, 1 + h*w) tensor.
    """
    h, w = grid
    rows = torch.arange(h, dtype=torch.float32, device=device).repeat_interleave(w)
    cols = torch.arange(w, dtype=torch.float32, device=device).repeat(h)
    dist2 = (rows[:, None] - rows[None]) ** 2 + (cols[:, None] - cols[None]) ** 2
    out = torch.zeros(1 + h * w, 1 + h * w, device=device)
    out[1:, 1:] = torch.exp(-dist2 / (2 * std ** 2))
    return out.to(dtype)


@register_method
class NACLIP(ImageTokenMethod):
    """NACLIP as its released code computes it (``arch='reduced'``, ``attn_strategy='naclip'``).

    In the last block, per head, ``softmax(k kᵀ s + G) v`` with ``s = head_dim^-1/2`` and ``G`` the
    Gaussian neighbourhood term of :func:`gaussian_neighbourhood` (added to the scaled key-key
    logits; zero on the CLS row and column, so the CLS token attends by key similarity alone).
    The block's output is this attention branch alone: no residual, no MLP.

    Args:
        gaussian_std: standard deviation of the neighbourhood in patches (default 5, the code's).
        pos_interp: default ``bicubic_offset``, as the code resizes.
    """

    name = "naclip"
    label = "NACLIP"
    arxiv = "2404.08181"
    native_protocol = "naclip"
    default_templates = "imagenet_80"
    # the code's segmentor refines the final logits with PAMR unless it is turned off
    default_postprocess = {"type": "pamr", "num_iter": 10, "dilations": (8, 16)}

    def __init__(self, gaussian_std: float = 5.0, pos_interp: Optional[str] = None) -> None:
        super().__init__(pos_interp)
        if not is_number(gaussian_std) or not gaussian_std > 0:
            raise ConfigError(f"naclip gaussian_std must be a number > 0 (patches), got {gaussian_std!r}")
        self.gaussian_std = float(gaussian_std)

    def params(self) -> dict:
        return {"gaussian_std": self.gaussian_std, **super().params()}

    def vit_tokens(self, visual: nn.Module, images: torch.Tensor, pos_embed: PosEmbed) -> torch.Tensor:
        x, grid = vit_stream(visual, images, pos_embed, skip_last=1)
        block = visual.transformer.resblocks[-1]
        _, k, v = block_qkv(block, x)
        bias = gaussian_neighbourhood(grid, self.gaussian_std, k.device, k.dtype)
        return vit_project(visual, attention_out(block, F.scaled_dot_product_attention(k, k, v, attn_mask=bias)))
