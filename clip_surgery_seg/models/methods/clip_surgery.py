"""CLIP Surgery's architecture surgery: a value-value path beside the original one (docs/method.md §1-2)."""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError
from ...named import is_int
from .base import (ImageTokenMethod, PosEmbed, attention_out, attnpool_out, block_qkv, is_resnet,
                   mlp_residual, resnet_stream, split_heads, vit_project, vit_stream)
from .registry import register_method
from .vanilla import resnet_vanilla_tokens

NEW_PATH_ATTENTIONS = ("vv", "identity")


def surgery_block(block: nn.Module, orig: torch.Tensor, new: torch.Tensor, new_path: str = "vv",
                  cls_only: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
    """One block of the two-path forward.

    Args:
        block: an open_clip residual attention block (weights shared by both paths).
        orig: (B, N, C) original path ``o``; new: (B, N, C) new path ``n``. Both paths use the
            q, k, v of ``ln_1(o)``.
        new_path: ``vv`` (value-value attention) or ``identity`` (``P(v)``, MaskCLIP-style).
        cls_only: compute only the CLS token of the original path (enough after the last block).

    Returns:
        ``(orig, new)``: (B, N or 1, C) and (B, N, C).
    """
    q, k, v = block_qkv(block, orig)
    if new_path == "vv":
        new_attn = F.scaled_dot_product_attention(v, v, v)
    elif new_path == "identity":
        new_attn = v
    else:
        raise ValueError(f"unknown new_path_attention {new_path!r}; choose one of {NEW_PATH_ATTENTIONS}")
    if cls_only:
        q, orig = q[:, :, :1], orig[:, :1]
    orig_attn = F.scaled_dot_product_attention(q, k, v)
    new = new + attention_out(block, new_attn)  # no MLP on the new path
    orig = mlp_residual(block, orig + attention_out(block, orig_attn))
    return orig, new


def vit_surgery_tokens(visual: nn.Module, images: torch.Tensor, depth: int, pos_embed: PosEmbed,
                       new_path: str = "vv") -> torch.Tensor:
    """Image tokens of open_clip's VisionTransformer with surgery on the last ``depth`` blocks.

    Args:
        visual: ``clip.visual``; images: (B, 3, H, W), H and W multiples of the patch size.
        depth: blocks on the two-path forward (0: vanilla CLIP tokens).
        pos_embed: ``(h, w, dtype, device) -> (1 + h*w, width)`` positional embedding for the grid.

    Returns:
        (B, 1 + h*w, D): CLS (from the original path) then patch tokens row-major, after
        ``ln_post`` and the projection.
    """
    x, _ = vit_stream(visual, images, pos_embed, skip_last=depth)
    if depth > 0:
        blocks = visual.transformer.resblocks
        orig = new = x
        for i, block in enumerate(blocks[len(blocks) - depth:]):
            orig, new = surgery_block(block, orig, new, new_path, cls_only=i == depth - 1)
        x = torch.cat([orig[:, :1], new[:, 1:]], dim=1)
    return vit_project(visual, x)


def resnet_surgery_tokens(visual: nn.Module, images: torch.Tensor, pos_embed: PosEmbed,
                          resnet_norm: bool = False) -> torch.Tensor:
    """Image tokens of a ResNet CLIP with the attention-pool surgery.

    Both paths of the attention pool use the value projection for queries, keys and values (the
    authors' code); the CLS token comes from the original path, the spatial tokens from the new
    path. ``resnet_norm`` is the paper's variant for the new path: ``v`` L2-normalised per head for
    queries and keys, attention scale multiplied by 8.

    Args:
        visual: ``clip.visual`` (open_clip ``ModifiedResNet``); images: (B, 3, H, W), H and W
            multiples of 32.

    Returns:
        (B, 1 + h*w, D) tokens after ``c_proj``, CLS first, spatial tokens row-major.
    """
    pool = visual.attnpool
    _, x, _ = resnet_stream(visual, images, pos_embed)
    v = split_heads(pool.v_proj(x), pool.num_heads)
    orig = F.scaled_dot_product_attention(v, v, v)
    if resnet_norm:
        v_unit = v / (v.norm(dim=-1, keepdim=True) + 1e-6)
        new = F.scaled_dot_product_attention(v_unit, v_unit, v, scale=8 * v.shape[-1] ** -0.5)
    else:
        new = orig
    return attnpool_out(pool, torch.cat([orig[:, :, :1], new[:, :, 1:]], dim=2))


@register_method
class ClipSurgery(ImageTokenMethod):
    """CLIP Surgery (Li et al., "CLIP Surgery for Better Explainability with Enhancement in
    Open-Vocabulary Tasks", arXiv 2304.05653): the last ``depth`` blocks run a second, value-value
    attention path without MLP beside the unchanged one; patch tokens from the new path, CLS from
    the original path.

    Args:
        depth: ViT blocks on the two-path forward (default 6; 0 gives vanilla CLIP tokens). For
            ResNets any depth > 0 applies the attention-pool surgery.
        new_path_attention: ``vv`` (default) or ``identity`` (the new path adds ``P(v)``).
        resnet_norm: ResNets only, the paper's variant (normalised ``v``, scale x8); off as in
            the authors' code.
        pos_interp: default ``bilinear``, as the authors' code resizes.
    """

    name = "clip_surgery"
    label = "CLIP Surgery"
    arxiv = "2304.05653"
    default_templates = "clip_surgery_85"
    supports_resnet = True
    default_pos_interp = "bilinear"

    def __init__(self, depth: int = 6, new_path_attention: str = "vv", resnet_norm: bool = False,
                 pos_interp: Optional[str] = None) -> None:
        super().__init__(pos_interp)
        if not is_int(depth) or depth < 0:
            raise ConfigError(f"clip_surgery depth must be an int >= 0 (blocks on the surgery path), got {depth!r}")
        if new_path_attention not in NEW_PATH_ATTENTIONS:
            raise ConfigError(f"new_path_attention must be one of {', '.join(NEW_PATH_ATTENTIONS)}, "
                              f"got {new_path_attention!r}")
        if not isinstance(resnet_norm, bool):
            raise ConfigError(f"resnet_norm must be true or false, got {resnet_norm!r}")
        self.depth = depth
        self.new_path_attention = new_path_attention
        self.resnet_norm = resnet_norm

    def params(self) -> dict:
        return {"depth": self.depth, "new_path_attention": self.new_path_attention,
                "resnet_norm": self.resnet_norm, **super().params()}

    def check(self, visual: nn.Module) -> None:
        super().check(visual)
        if not is_resnet(visual) and self.depth > len(visual.transformer.resblocks):
            n_blocks = len(visual.transformer.resblocks)
            raise ConfigError(f"surgery depth must be in [0, {n_blocks}] for this model, got {self.depth}")

    def vit_tokens(self, visual: nn.Module, images: torch.Tensor, pos_embed: PosEmbed) -> torch.Tensor:
        return vit_surgery_tokens(visual, images, self.depth, pos_embed, self.new_path_attention)

    def resnet_tokens(self, visual: nn.Module, images: torch.Tensor, pos_embed: PosEmbed) -> torch.Tensor:
        if self.depth == 0:
            return resnet_vanilla_tokens(visual, images, pos_embed)
        return resnet_surgery_tokens(visual, images, pos_embed, self.resnet_norm)
