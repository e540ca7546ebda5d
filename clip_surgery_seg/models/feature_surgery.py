"""Feature surgery: class similarities with the features shared by all classes removed (docs/method.md §4)."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from ..errors import ConfigError

FEATURE_SURGERY_MODES = ("none", "redundant", "weighted")


def feature_surgery(image_feats: torch.Tensor, text_feats: torch.Tensor, mode: str = "none",
                    redundant: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Similarity of every image token to every class.

    Args:
        image_feats: (B, N, D) image tokens, CLS first; L2-normalised along D here.
        text_feats: (K, D) class embeddings, L2-normalised (as ``SurgeryCLIP.encode_text`` gives).
        mode: ``none`` -- cosine similarity ``F Tᵀ``; ``redundant`` -- ``F (T - r)ᵀ``;
            ``weighted`` -- per image, ``w = softmax(2 f₀ Tᵀ) / mean(...)`` from the CLS token and
            ``S[i,k] = w_k F_i·T_k - mean_k' w_k' F_i·T_k'``.
        redundant: (D,) or (1, D) redundant feature ``r`` (mode ``redundant`` only).

    Returns:
        (B, N, K) similarities. Computed with matrix products in O(B·N·K) memory; the
        (B, N, K, D) element-wise tensor of the authors' code is never formed.
    """
    if image_feats.dim() != 3 or text_feats.dim() != 2 or image_feats.shape[-1] != text_feats.shape[-1]:
        raise ValueError(f"expected image_feats (B, N, D) and text_feats (K, D), got "
                         f"{tuple(image_feats.shape)} and {tuple(text_feats.shape)}")
    feats = F.normalize(image_feats, dim=-1)
    text = text_feats.to(feats.dtype)
    if mode == "none":
        return feats @ text.t()
    if mode == "redundant":
        if redundant is None:
            raise ValueError("feature_surgery mode 'redundant' needs the redundant feature r "
                             "(SurgeryCLIP.encode_text([''], templates))")
        return feats @ (text - redundant.reshape(1, -1).to(feats.dtype)).t()
    if mode == "weighted":
        sim = feats @ text.t()  # (B, N, K)
        prob = (2 * sim[:, :1, :]).softmax(dim=-1)  # (B, 1, K), from the CLS token
        weighted = sim * (prob / prob.mean(dim=-1, keepdim=True))
        return weighted - weighted.mean(dim=-1, keepdim=True)
    raise ConfigError(f"unknown feature-surgery mode {mode!r}; choose one of {', '.join(FEATURE_SURGERY_MODES)}")
