"""Vanilla CLIP: the image tower's own tokens, nothing changed."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import (ImageTokenMethod, PosEmbed, attnpool_out, resnet_stream, split_heads, vit_project,
                   vit_stream)
from .registry import register_method


def resnet_vanilla_tokens(visual: nn.Module, images: torch.Tensor, pos_embed: PosEmbed) -> torch.Tensor:
    """A ResNet CLIP's attention pool applied to every token (its q-k attention for each query).

    Returns:
        (B, 1 + h*w, D) after ``c_proj``; the CLS token is the ordinary CLIP image embedding.
    """
    pool = visual.attnpool
    _, x, _ = resnet_stream(visual, images, pos_embed)
    heads = pool.num_heads
    q, k, v = (split_heads(proj(x), heads) for proj in (pool.q_proj, pool.k_proj, pool.v_proj))
    return attnpool_out(pool, F.scaled_dot_product_attention(q, k, v))


@register_method
class Vanilla(ImageTokenMethod):
    """Plain CLIP tokens: every block unchanged, ``ln_post`` and the projection on every token.

    ResNets: the attention pool's q-k attention with every token as a query. The default
    ``bicubic_offset`` resizing is what the SCLIP, ClearCLIP and NACLIP code bases use when they
    evaluate vanilla CLIP (where the published vanilla numbers of the field come from).
    """

    name = "vanilla"
    label = "CLIP"
    arxiv = "2103.00020"
    native_protocol = "sclip"
    default_templates = "imagenet_80"
    supports_resnet = True

    def vit_tokens(self, visual: nn.Module, images: torch.Tensor, pos_embed: PosEmbed) -> torch.Tensor:
        x, _ = vit_stream(visual, images, pos_embed, skip_last=0)
        return vit_project(visual, x)

    def resnet_tokens(self, visual: nn.Module, images: torch.Tensor, pos_embed: PosEmbed) -> torch.Tensor:
        return resnet_vanilla_tokens(visual, images, pos_embed)
