"""GEM: a self-self attention path beside the original one over the last blocks (Bousselham et al., CVPR 2024)."""
from __future__ import annotations

from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError
from ...named import is_int, is_number
from .base import ImageTokenMethod, PosEmbed, attention_out, project_qkv, vit_hidden_states, vit_project
from .registry import register_method


def self_self_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                        inv_temp: Union[float, torch.Tensor], iterations: int = 1) -> torch.Tensor:
    """GEM's ensemble of q-q, k-k and v-v self-self attention, per head.

    For each path ``p`` in (q, k, v): ``iterations`` times ``z <- softmax(τ n(z) n(z)ᵀ) n(z)``
    (``n`` = L2 normalisation per token, starting from ``z = p``: the normalised vectors are
    smoothed, a clustering step), then the assignment ``softmax(τ n(z) n(z)ᵀ) v`` applied to the raw
    values; the three outputs are averaged.

    Args:
        q, k, v: (B, heads, N, d), with the in-projection bias.
        inv_temp: ``τ``, the inverse temperature multiplying the cosine logits: a number, or a
            (B, 1, 1, 1) tensor (one value per image).
        iterations: smoothing steps before the assignment (0: the assignment alone).

    Returns:
        (B, heads, N, d).
    """
    b = q.shape[0]
    paths = torch.cat([v, k, q])  # (3B, heads, N, d): the three paths as one batch
    scale = inv_temp.repeat(3, 1, 1, 1) if torch.is_tensor(inv_temp) else inv_temp
    values = v.repeat(3, 1, 1, 1)
    z = paths
    for _ in range(iterations):
        z = F.normalize(z, dim=-1)
        # τ folded into the queries: the attention's own scale must be a number, τ is per image
        z = F.scaled_dot_product_attention(z * scale, z, z, scale=1.0)
    z = F.normalize(z, dim=-1)
    out = F.scaled_dot_product_attention(z * scale, z, values, scale=1.0)
    return out.view(3, b, *out.shape[1:]).mean(dim=0)


def gem_inverse_temperature(u: torch.Tensor, head_dim: int) -> torch.Tensor:
    """GEM's default inverse temperature: the mean over all tokens (CLS included) of the L2 norm of
    the block's ``ln_1`` output, times ``head_dim^-1/2``; u (B, N, C) -> (B, 1, 1, 1)."""
    return (u.float().norm(dim=-1).mean(dim=-1) * head_dim ** -0.5).view(-1, 1, 1, 1).to(u.dtype)


@register_method
class GEM(ImageTokenMethod):
    """GEM (Bousselham et al., "Grounding Everything: Emerging Localization Properties in
    Vision-Language Transformers", CVPR 2024) as its released library computes it.

    The last ``depth - 1`` blocks run a second, GEM path ``g`` beside the unchanged CLIP stream
    ``x``. ``g`` starts as the stream entering the first of them (CLS included) and at each of them
    adds ``P(ssa(ln_1(x)))`` -- the self-self attention of :func:`self_self_attention` on the q, k, v
    of the *original* stream's ``ln_1``, through the out-projection -- with no MLP. The tokens are
    ``ln_post(g) @ proj`` for every token, CLS included.

    Args:
        depth: the code's ``gem_depth``: the GEM path covers the last ``depth - 1`` blocks (default
            7: six blocks, for ViT-B/16 and ViT-L/14 alike -- a count, not a share of the depth).
        ss_attn_iter: smoothing iterations before the assignment (default 1).
        ss_attn_temp: the inverse temperature of the self-self attention; None (default): computed
            per image and block by :func:`gem_inverse_temperature`.
        ignore_residual: ClearCLIP's variant of GEM (its harness sets it True): each GEM block
            replaces ``g`` by its attention output instead of adding it, so only the last block's
            ``P(ssa(ln_1(x)))`` is left -- no residual, no MLP. False (default), as GEM's own code.
        pos_interp: default ``bicubic_antialias``, as the code resizes.
    """

    name = "gem"
    label = "GEM"
    arxiv = "2312.00878"
    default_templates = "a_photo_of_a"  # GEMWrapper.encode_text: 'a photo of a {}.', no ensemble
    default_pos_interp = "bicubic_antialias"
    # the library's forward min-max normalises each class map over the image (normalize=True); a
    # segmentor setting here (similarity_normalize), not a registered post-processing step
    default_postprocess = None

    def __init__(self, depth: int = 7, ss_attn_iter: int = 1, ss_attn_temp: Optional[float] = None,
                 ignore_residual: bool = False, pos_interp: Optional[str] = None) -> None:
        super().__init__(pos_interp)
        if not is_int(depth) or depth < 2:
            raise ConfigError(f"gem depth must be an int >= 2 (the GEM path covers the last depth - 1 blocks), "
                              f"got {depth!r}")
        if not is_int(ss_attn_iter) or ss_attn_iter < 0:
            raise ConfigError(f"gem ss_attn_iter must be an int >= 0, got {ss_attn_iter!r}")
        if ss_attn_temp is not None and (not is_number(ss_attn_temp) or not ss_attn_temp > 0):
            raise ConfigError(f"gem ss_attn_temp must be a number > 0 or None (computed per image), "
                              f"got {ss_attn_temp!r}")
        if not isinstance(ignore_residual, bool):
            raise ConfigError(f"gem ignore_residual must be true or false, got {ignore_residual!r}")
        self.depth = depth
        self.ss_attn_iter = ss_attn_iter
        self.ss_attn_temp = None if ss_attn_temp is None else float(ss_attn_temp)
        self.ignore_residual = ignore_residual

    def params(self) -> dict:
        return {"depth": self.depth, "ss_attn_iter": self.ss_attn_iter, "ss_attn_temp": self.ss_attn_temp,
                "ignore_residual": self.ignore_residual, **super().params()}

    def check(self, visual: nn.Module) -> None:
        super().check(visual)
        n_blocks = len(visual.transformer.resblocks)
        if self.depth > n_blocks + 1:
            raise ConfigError(f"gem depth must be in [2, {n_blocks + 1}] for this model ({n_blocks} blocks; "
                              f"the GEM path covers the last depth - 1), got {self.depth}")

    def vit_tokens(self, visual: nn.Module, images: torch.Tensor, pos_embed: PosEmbed) -> torch.Tensor:
        blocks = visual.transformer.resblocks
        first = len(blocks) - (self.depth - 1)
        # the original stream entering each GEM block is plain CLIP's: its blocks are unchanged
        states, _ = vit_hidden_states(visual, images, pos_embed, keep=range(first, len(blocks)), skip_last=1)
        gem = states[first]
        for index in range(first, len(blocks)):
            block = blocks[index]
            u = block.ln_1(states.pop(index))
            q, k, v = project_qkv(block, u)
            inv_temp = (gem_inverse_temperature(u, q.shape[-1]) if self.ss_attn_temp is None
                        else self.ss_attn_temp)
            out = attention_out(block, self_self_attention(q, k, v, inv_temp, self.ss_attn_iter))
            gem = out if self.ignore_residual else gem + out
        return vit_project(visual, gem)
