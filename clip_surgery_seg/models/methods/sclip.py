"""SCLIP: correlative self-attention in the last block (Wang et al., ECCV 2024)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import (ImageTokenMethod, PosEmbed, attention_out, block_qkv, mlp_residual, vit_project,
                   vit_stream)
from .registry import register_method


@register_method
class SCLIP(ImageTokenMethod):
    """SCLIP as its released code computes it.

    In the last block, per head, the attention is the *sum* of two softmaxes,
    ``(softmax(q qᵀ s) + softmax(k kᵀ s)) v`` with ``s = head_dim^-1/2``, for every token (CLS
    included); the residual and the MLP are kept. Earlier blocks are unchanged.

    Args:
        pos_interp: default ``bicubic_offset``, as the code resizes.
    """

    name = "sclip"
    label = "SCLIP"
    arxiv = "2312.01597"
    native_protocol = "sclip"
    default_templates = "imagenet_80"
    # PAMR is in the code but off by default (pamr_steps=0); dilations (8, 16) when turned on
    default_postprocess = None

    def vit_tokens(self, visual: nn.Module, images: torch.Tensor, pos_embed: PosEmbed) -> torch.Tensor:
        x, _ = vit_stream(visual, images, pos_embed, skip_last=1)
        block = visual.transformer.resblocks[-1]
        q, k, v = block_qkv(block, x)
        attn = F.scaled_dot_product_attention(q, q, v) + F.scaled_dot_product_attention(k, k, v)
        return vit_project(visual, mlp_residual(block, x + attention_out(block, attn)))
