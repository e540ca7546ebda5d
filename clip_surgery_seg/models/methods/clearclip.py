"""ClearCLIP: query-query attention without residual or MLP in the last block (Lan et al., ECCV 2024)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import ImageTokenMethod, PosEmbed, attention_out, block_qkv, vit_project, vit_stream
from .registry import register_method


@register_method
class ClearCLIP(ImageTokenMethod):
    """ClearCLIP as its released code computes it (``model_type='ClearCLIP'``, ``ignore_residual``).

    The last block's output is its attention branch alone, ``P(softmax(q qᵀ s) v)`` per head with
    ``s = head_dim^-1/2``: no residual connection, no MLP. Every token, CLS included, is computed
    this way (the code drops the CLS token afterwards).

    Args:
        pos_interp: default ``bicubic_offset``, as the code resizes.
    """

    name = "clearclip"
    label = "ClearCLIP"
    arxiv = "2407.12442"
    native_protocol = "clearclip"
    default_templates = "imagenet_80"

    def vit_tokens(self, visual: nn.Module, images: torch.Tensor, pos_embed: PosEmbed) -> torch.Tensor:
        x, _ = vit_stream(visual, images, pos_embed, skip_last=1)
        block = visual.transformer.resblocks[-1]
        q, _, v = block_qkv(block, x)
        return vit_project(visual, attention_out(block, F.scaled_dot_product_attention(q, q, v)))
