"""MaskCLIP: dense tokens from the last block's value path (Zhou et al., ECCV 2022)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import (ImageTokenMethod, PosEmbed, attention_out, attnpool_out, block_cls_token, block_qkv, mlp_residual,
                   resnet_stream, split_heads, vit_project, vit_stream)
from .registry import register_method


@register_method
class MaskCLIP(ImageTokenMethod):
    """MaskCLIP as its released code computes it (no key smoothing, no prompt denoising).

    ViT: in the last block every patch token takes the value path instead of attention,
    ``z = x + P(v)`` with ``v`` from ``ln_1(x)``, and keeps the residual and the MLP:
    ``z + MLP(ln_2(z))``. The CLS token is the ordinary CLIP CLS token (the code's
    ``output_cls_token`` takes it from the unchanged forward).

    ResNet: the spatial tokens are ``c_proj(v_proj(f))`` of the layer-4 features ``f`` -- no
    positional embedding, no attention (the code's 1x1-convolution head); the CLS token is the
    ordinary attention-pool embedding.

    Args:
        pos_interp: default ``bicubic`` (to the target size), as the code's mmseg ``resize``.
    """

    name = "maskclip"
    label = "MaskCLIP"
    arxiv = "2112.01071"
    native_protocol = "sclip"
    default_templates = "clip_surgery_85"  # MaskCLIP's 85 templates, which CLIP Surgery took over
    supports_resnet = True
    default_pos_interp = "bicubic"

    def vit_tokens(self, visual: nn.Module, images: torch.Tensor, pos_embed: PosEmbed) -> torch.Tensor:
        x, _ = vit_stream(visual, images, pos_embed, skip_last=1)
        block = visual.transformer.resblocks[-1]
        q, k, v = block_qkv(block, x)
        dense = mlp_residual(block, x + attention_out(block, v))
        cls = block_cls_token(block, x, (q, k, v))
        return vit_project(visual, torch.cat([cls, dense[:, 1:]], dim=1))

    def resnet_tokens(self, visual: nn.Module, images: torch.Tensor, pos_embed: PosEmbed) -> torch.Tensor:
        pool = visual.attnpool
        feats, x, _ = resnet_stream(visual, images, pos_embed)
        heads = pool.num_heads
        q, k, v = (split_heads(proj(x), heads) for proj in (pool.q_proj, pool.k_proj, pool.v_proj))
        cls = attnpool_out(pool, F.scaled_dot_product_attention(q[:, :, :1], k, v))
        dense = pool.c_proj(pool.v_proj(feats))
        return torch.cat([cls, dense], dim=1)
