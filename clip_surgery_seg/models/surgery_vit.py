"""Architecture surgery for open_clip's VisionTransformer (docs/method.md §1)."""
from __future__ import annotations

from typing import Callable, Tuple

import torch
import torch.nn.functional as F
from torch import nn

NEW_PATH_ATTENTIONS = ("vv", "identity")


def attention_weights(attn: nn.Module) -> Tuple[torch.Tensor, torch.Tensor, nn.Linear, int]:
    """(packed in-proj weight (3C, C), its bias (3C,), out-proj, heads) of a CLIP attention layer."""
    from open_clip.transformer import Attention

    if isinstance(attn, nn.MultiheadAttention):
        if not attn._qkv_same_embed_dim or attn.bias_k is not None:
            raise NotImplementedError("surgery needs an attention with one packed q/k/v projection")
        return attn.in_proj_weight, attn.in_proj_bias, attn.out_proj, attn.num_heads
    if isinstance(attn, Attention):
        plain = (attn.logit_scale is None and attn.head_scale is None
                 and all(isinstance(m, nn.Identity) for m in (attn.ln_q, attn.ln_k, attn.ln_inner)))
        if not plain:
            raise NotImplementedError("surgery supports plain softmax attention only (no qk-norm, "
                                      "scaled-cosine, head-scale or inner-norm attention)")
        return attn.in_proj_weight, attn.in_proj_bias, attn.out_proj, attn.num_heads
    raise NotImplementedError(f"unsupported attention layer {type(attn).__name__}")


def check_vit_supported(visual: nn.Module) -> None:
    """Raise NotImplementedError naming the feature if ``visual`` is not an OpenAI-style ViT."""
    if getattr(visual, "attn_pool", None) is not None:
        raise NotImplementedError("surgery does not support ViTs with an attentional pooler")
    if getattr(visual, "pool_type", "tok") != "tok":
        raise NotImplementedError(f"surgery needs CLS-token pooling, not pool_type={visual.pool_type!r}")
    for block in visual.transformer.resblocks:
        attention_weights(block.attn)
        if not isinstance(getattr(block, "ln_attn", nn.Identity()), nn.Identity):
            raise NotImplementedError("surgery does not support a norm after attention (scale_attn)")


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, N, C) -> (B, heads, N, C // heads)."""
    b, n, c = x.shape
    return x.view(b, n, heads, c // heads).transpose(1, 2)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, heads, N, d) -> (B, N, heads * d)."""
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)


def surgery_block(block: nn.Module, orig: torch.Tensor, new: torch.Tensor, new_path: str = "vv",
                  cls_only: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
    """One block of the two-path forward.

    Args:
        block: an open_clip residual attention block (weights shared by both paths).
        orig: (B, N, C) original path ``o``; new: (B, N, C) new path ``n``.
        new_path: ``vv`` (value-value attention) or ``identity`` (``P(v)``, MaskCLIP-style).
        cls_only: compute only the CLS token of the original path (enough after the last block).

    Returns:
        ``(orig, new)``: (B, N or 1, C) and (B, N, C).
    """
    in_w, in_b, out_proj, heads = attention_weights(block.attn)
    q, k, v = F.linear(block.ln_1(orig), in_w, in_b).chunk(3, dim=-1)
    q, k, v = (_split_heads(t, heads) for t in (q, k, v))
    if new_path == "vv":
        new_attn = F.scaled_dot_product_attention(v, v, v)
    elif new_path == "identity":
        new_attn = v
    else:
        raise ValueError(f"unknown new_path_attention {new_path!r}; choose one of {NEW_PATH_ATTENTIONS}")
    if cls_only:
        q, orig = q[:, :, :1], orig[:, :1]
    orig_attn = F.scaled_dot_product_attention(q, k, v)
    new = new + block.ls_1(out_proj(_merge_heads(new_attn)))
    orig = orig + block.ls_1(out_proj(_merge_heads(orig_attn)))
    orig = orig + block.ls_2(block.mlp(block.ln_2(orig)))
    return orig, new


def vit_surgery_tokens(visual: nn.Module, images: torch.Tensor, depth: int,
                       pos_embed: Callable[[int, int, torch.dtype, torch.device], torch.Tensor],
                       new_path: str = "vv") -> torch.Tensor:
    """Image tokens of open_clip's VisionTransformer with surgery on the last ``depth`` blocks.

    Args:
        visual: ``clip.visual``; images: (B, 3, H, W), H and W multiples of the patch size.
        pos_embed: ``(h, w, dtype, device) -> (1 + h*w, width)`` positional embedding for the grid.

    Returns:
        (B, 1 + h*w, D): CLS (from the original path) then patch tokens row-major, after
        ``ln_post`` and the projection.
    """
    x = visual.conv1(images)  # (B, width, h, w)
    b, width, h, w = x.shape
    x = x.flatten(2).transpose(1, 2)  # (B, h*w, width)
    cls = visual.class_embedding.to(x.dtype).view(1, 1, width).expand(b, 1, width)
    x = torch.cat([cls, x], dim=1) + pos_embed(h, w, x.dtype, x.device)
    x = visual.ln_pre(x)

    transformer = visual.transformer
    blocks = transformer.resblocks
    fork = len(blocks) - depth
    batch_first = getattr(transformer, "batch_first", True)
    if not batch_first:
        x = x.transpose(0, 1)
    for block in blocks[:fork]:
        x = block(x)
    if not batch_first:
        x = x.transpose(0, 1)

    if depth > 0:
        orig = new = x
        for i, block in enumerate(blocks[fork:]):
            orig, new = surgery_block(block, orig, new, new_path, cls_only=i == depth - 1)
        x = torch.cat([orig[:, :1], new[:, 1:]], dim=1)
    x = visual.ln_post(x)
    return x @ visual.proj if visual.proj is not None else x
