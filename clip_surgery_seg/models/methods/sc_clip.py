"""SC-CLIP: anomaly-token repair, intermediate-layer affinities and multi-level fusion in the last block (Bai et al., 2024)."""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError
from ...named import is_int, is_number
from .base import (ImageTokenMethod, PosEmbed, attention_out, block_cls_token, block_qkv, cosine_affinity,
                   fill_from_neighbours, propagate, top_norm_mask, vit_hidden_states, vit_project)
from .registry import register_method

LAYER_KEYS = ("pre_adjust_idx", "post_adjust_idx", "multi_start_idx", "multi_end_idx")

#: The code's settings per number of blocks: ViT-B/16 (configs/base_config.py) and ViT-L/14 (the
#: commented block beside it). Indices are 0-based blocks whose *output* is read.
LAYER_SETS: Dict[int, Dict[str, float]] = {
    12: dict(pre_adjust_idx=8, post_adjust_idx=3, multi_start_idx=3, multi_end_idx=10, res_cls=0.3),
    24: dict(pre_adjust_idx=16, post_adjust_idx=6, multi_start_idx=8, multi_end_idx=19, res_cls=0.1),
}
#: Other depths (our generalisation, not the authors'): the 12-block set scaled by L / 12.
SCALED_FROM = 12

#: the factor of the mean-centred affinity prior in the last block's attention (hard-coded in the code)
PRIOR_SHARPNESS = 3.0


def sc_clip_layers(n_blocks: int) -> Dict[str, float]:
    """The code's layer set and ``res_cls`` for a ViT of ``n_blocks`` blocks.

    12 and 24 blocks: the code's ViT-B/16 and ViT-L/14 sets. Other depths: the 12-block indices
    scaled by ``n_blocks / 12`` and rounded half up, ``res_cls`` 0.3 (the code has no set for them).
    """
    if n_blocks in LAYER_SETS:
        return dict(LAYER_SETS[n_blocks])
    base = LAYER_SETS[SCALED_FROM]
    scaled = {key: int(base[key] * n_blocks / SCALED_FROM + 0.5) for key in LAYER_KEYS}
    return {**scaled, "res_cls": base["res_cls"]}


def affinity_prior(similarity: torch.Tensor) -> torch.Tensor:
    """SC-CLIP's attention prior from a (B, N, N) cosine affinity: ``softmax(3 (S - mean(S)))`` per
    row, entries below the image's mean excluded (the mean over all N² entries of that image).

    Returns:
        (B, 1, N, N) float32, to broadcast over heads. A row always keeps its diagonal (cosine 1 >=
        the mean), so no row is empty.
    """
    centred = PRIOR_SHARPNESS * (similarity - similarity.mean(dim=(1, 2), keepdim=True))
    return torch.softmax(centred.masked_fill(centred < 0, float("-inf")), dim=-1).unsqueeze(1)


def self_adjusting_attention(block: nn.Module, tokens: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
    """The last block's attention in SC-CLIP, its output alone (no residual, no MLP).

    Per head ``((prior + softmax(k kᵀ s)) / 2) v`` on the q, k, v of ``ln_1(tokens)``, ``s =
    head_dim^-1/2``; the queries are not used.

    Args:
        block: the last block; tokens: (B, N, C) patch tokens (no CLS); prior: (B, 1, N, N).

    Returns:
        (B, N, C) after the out-projection.
    """
    _, k, v = block_qkv(block, tokens)
    mixed = (prior.to(v.dtype) @ v + F.scaled_dot_product_attention(k, k, v)) / 2
    return attention_out(block, mixed)


@register_method
class SCCLIP(ImageTokenMethod):
    """SC-CLIP (Bai et al., "Self-Calibrated CLIP for Training-Free Open-Vocabulary Segmentation",
    arXiv 2411.15869) as its newest released code computes it (anomalies by L2 norm).

    With ``X_i`` the output of block ``i`` (0-based, CLS first) of an unchanged forward through
    all blocks but the last, and the patch tokens of ``X_{L-2}``:

    1. anomalies: the ``num_anomalies`` patch tokens of largest L2 norm; each is replaced by the mean
       of its non-anomalous 3 x 3 neighbours (:func:`~.base.fill_from_neighbours`);
    2. ``S_mid``: cosine affinity of ``X_pre``'s patches, repaired at the same places; the repaired
       tokens are propagated over ``S_mid`` with entries below ``beta`` zeroed, rows normalised;
    3. the last block's self-adjusting attention (:func:`self_adjusting_attention` with
       :func:`affinity_prior` of ``S_mid``) on them, plus ``res_cls`` x the CLS token of
       ``X_{L-2}``; propagated over ``S_post``, the thresholded affinity of ``X_post``'s patches
       (not repaired);
    4. multi-level fusion: ``R = X_start + ... + X_{end-1}`` (a sum) through the same attention, plus
       ``res_cls`` x ``R``'s CLS, propagated over ``S_post``, added.

    The patch tokens are ``ln_post(.) @ proj`` of the result. The code outputs no CLS token; the CLS
    returned here is plain CLIP's (the last block unchanged), as MaskCLIP's.

    Args:
        pre_adjust_idx, post_adjust_idx, multi_start_idx, multi_end_idx: blocks whose output is
            read (``multi_end_idx`` exclusive); None (default): from the model's depth,
            :func:`sc_clip_layers` (12 blocks: 8, 3, 3, 10; 24 blocks: 16, 6, 8, 19).
        res_cls: weight of the CLS term; None (default): 0.3 for 12 blocks, 0.1 for 24, 0.3 otherwise.
        beta: affinity threshold of the propagations (default 0.4).
        num_anomalies: anomalous tokens per image (default 10; 0: no repair).
        pos_interp: default ``bicubic_offset``, as the code resizes.
    """

    name = "sc_clip"
    label = "SC-CLIP"
    arxiv = "2411.15869"
    default_templates = "imagenet_80"
    # PAMR is in the code's segmentor, off by default (pamr_steps=0)
    default_postprocess = None

    def __init__(self, pre_adjust_idx: Optional[int] = None, post_adjust_idx: Optional[int] = None,
                 multi_start_idx: Optional[int] = None, multi_end_idx: Optional[int] = None,
                 res_cls: Optional[float] = None, beta: float = 0.4, num_anomalies: int = 10,
                 pos_interp: Optional[str] = None) -> None:
        super().__init__(pos_interp)
        for key, value in zip(LAYER_KEYS, (pre_adjust_idx, post_adjust_idx, multi_start_idx, multi_end_idx)):
            if value is not None and (not is_int(value) or value < 0):
                raise ConfigError(f"sc_clip {key} must be an int >= 0 (a 0-based block) or None (from the model's "
                                  f"depth), got {value!r}")
        for key, value in (("res_cls", res_cls), ("beta", beta)):
            if value is not None and not is_number(value):
                raise ConfigError(f"sc_clip {key} must be a number, got {value!r}")
        if beta is None:
            raise ConfigError("sc_clip beta must be a number (the affinity threshold, 0.4 in the code), got None")
        if not is_int(num_anomalies) or num_anomalies < 0:
            raise ConfigError(f"sc_clip num_anomalies must be an int >= 0, got {num_anomalies!r}")
        self.pre_adjust_idx = pre_adjust_idx
        self.post_adjust_idx = post_adjust_idx
        self.multi_start_idx = multi_start_idx
        self.multi_end_idx = multi_end_idx
        self.res_cls = None if res_cls is None else float(res_cls)
        self.beta = float(beta)
        self.num_anomalies = num_anomalies

    def params(self) -> dict:
        return {"pre_adjust_idx": self.pre_adjust_idx, "post_adjust_idx": self.post_adjust_idx,
                "multi_start_idx": self.multi_start_idx, "multi_end_idx": self.multi_end_idx,
                "res_cls": self.res_cls, "beta": self.beta, "num_anomalies": self.num_anomalies,
                **super().params()}

    def layers(self, n_blocks: int) -> Tuple[int, int, int, int, float]:
        """``(pre, post, multi_start, multi_end, res_cls)`` for a ViT of ``n_blocks`` blocks: the
        configured values, the depth's set (:func:`sc_clip_layers`) for those left None.

        Raises:
            ConfigError: an index the model does not have (outputs of blocks 0 .. L-2 are read;
                ``multi_start < multi_end <= L-1``).
        """
        derived = sc_clip_layers(n_blocks)
        given = dict(zip(LAYER_KEYS, (self.pre_adjust_idx, self.post_adjust_idx, self.multi_start_idx,
                                      self.multi_end_idx)))
        values = {key: derived[key] if given[key] is None else given[key] for key in LAYER_KEYS}
        res_cls = derived["res_cls"] if self.res_cls is None else self.res_cls
        last = n_blocks - 2  # the last block is never run as is: outputs of blocks 0 .. L-2
        problems = [f"{key}={values[key]}" for key in ("pre_adjust_idx", "post_adjust_idx") if values[key] > last]
        if not values["multi_start_idx"] < values["multi_end_idx"] <= last + 1:
            problems.append(f"multi_start_idx={values['multi_start_idx']}, multi_end_idx={values['multi_end_idx']} "
                            f"(need multi_start_idx < multi_end_idx <= {last + 1})")
        if problems:
            raise ConfigError(f"sc_clip layers do not fit a {n_blocks}-block ViT (where not set, they come from its "
                              f"depth): {'; '.join(problems)}; the outputs of blocks 0..{last} can be read -- set "
                              "model.method.pre_adjust_idx, post_adjust_idx, multi_start_idx, multi_end_idx")
        return (int(values["pre_adjust_idx"]), int(values["post_adjust_idx"]), int(values["multi_start_idx"]),
                int(values["multi_end_idx"]), float(res_cls))

    def check(self, visual: nn.Module) -> None:
        super().check(visual)
        self.layers(len(visual.transformer.resblocks))

    def vit_tokens(self, visual: nn.Module, images: torch.Tensor, pos_embed: PosEmbed) -> torch.Tensor:
        blocks = visual.transformer.resblocks
        n_blocks = len(blocks)
        pre, post, start, end, res_cls = self.layers(n_blocks)
        # state i + 1 is the output of block i (the code's feats_list[i])
        penultimate = n_blocks - 1
        keep = {penultimate, pre + 1, post + 1, *range(start + 1, end + 1)}
        states, grid = vit_hidden_states(visual, images, pos_embed, keep=keep, skip_last=1)
        x = states[penultimate]
        last = blocks[-1]

        anomalies = top_norm_mask(x[:, 1:], self.num_anomalies)
        patches = fill_from_neighbours(x[:, 1:], grid, anomalies)
        mid = cosine_affinity(fill_from_neighbours(states[pre + 1][:, 1:], grid, anomalies))
        patches = propagate(patches, mid * (mid >= self.beta))
        prior = affinity_prior(mid)
        after = cosine_affinity(states[post + 1][:, 1:])
        after = after * (after >= self.beta)

        out = propagate(self_adjusting_attention(last, patches, prior) + res_cls * x[:, :1], after)
        fused = torch.stack([states[i + 1] for i in range(start, end)]).sum(dim=0)
        out = out + propagate(self_adjusting_attention(last, fused[:, 1:], prior) + res_cls * fused[:, :1], after)
        return vit_project(visual, torch.cat([block_cls_token(last, x), out], dim=1))
