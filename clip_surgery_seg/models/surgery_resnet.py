"""Architecture surgery for open_clip's ModifiedResNet attention pool (docs/method.md §2)."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn


def resnet_surgery_tokens(visual: nn.Module, images: torch.Tensor, surgery: bool,
                          pos_embed: Callable[[int, int, torch.dtype, torch.device], torch.Tensor],
                          resnet_norm: bool = False) -> torch.Tensor:
    """Image tokens of a ResNet CLIP.

    With ``surgery``, both paths of the attention pool use the value projection for queries, keys
    and values (the authors' code); the CLS token comes from the original path, the spatial tokens
    from the new path. ``resnet_norm`` is the paper's variant for the new path: ``v`` L2-normalised
    per head for queries and keys, attention scale multiplied by 8. Without ``surgery`` the pool's
    ordinary attention is applied to every token (vanilla CLIP tokens).

    Args:
        visual: ``clip.visual`` (open_clip ``ModifiedResNet``); images: (B, 3, H, W), H and W
            multiples of 32.

    Returns:
        (B, 1 + h*w, D) tokens after ``c_proj``, CLS first, spatial tokens row-major.
    """
    x = visual.stem(images)
    x = visual.layer4(visual.layer3(visual.layer2(visual.layer1(x))))  # (B, C, h, w)
    b, c, h, w = x.shape
    pool = visual.attnpool
    x = x.flatten(2).transpose(1, 2)  # (B, h*w, C)
    x = torch.cat([x.mean(dim=1, keepdim=True), x], dim=1) + pos_embed(h, w, x.dtype, x.device)
    heads = pool.num_heads

    def split(t: torch.Tensor) -> torch.Tensor:
        return t.view(b, 1 + h * w, heads, c // heads).transpose(1, 2)  # (B, heads, N, d)

    v = split(pool.v_proj(x))
    if surgery:
        orig = F.scaled_dot_product_attention(v, v, v)
        if resnet_norm:
            v_unit = v / (v.norm(dim=-1, keepdim=True) + 1e-6)
            new = F.scaled_dot_product_attention(v_unit, v_unit, v, scale=8 * v.shape[-1] ** -0.5)
        else:
            new = orig
        out = torch.cat([orig[:, :, :1], new[:, :, 1:]], dim=2)
    else:
        out = F.scaled_dot_product_attention(split(pool.q_proj(x)), split(pool.k_proj(x)), v)
    return pool.c_proj(out.transpose(1, 2).reshape(b, 1 + h * w, c))
