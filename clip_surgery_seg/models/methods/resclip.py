"""ResCLIP: residual cross-correlation attention and semantic feedback refinement (Yang et al., CVPR 2025).

The method as its released code computes it (repository ``yvhangyang/ResCLIP``, ``clip/model.py`` and
``resclip_segmentor.py``), on NACLIP's last block by default; docs/methods.md has the formulas, the
code's quirks kept here and the per-dataset settings (:data:`DATASET_SETTINGS`, :data:`DATASET_PROTOCOL`).
"""
from __future__ import annotations

import math
from typing import Any, Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError
from ...named import is_int, is_number
from ..feature_surgery import feature_surgery
from ..pamr import pamr
from .base import (ImageTokenMethod, PosEmbed, TextContext, attention_out, block_qkv, mlp_residual, vit_project,
                   vit_stream)
from .naclip import gaussian_neighbourhood
from .registry import register_method

#: base method -> whether its last block keeps the residual and the MLP (the code's ``arch``:
#: ``w_resi`` for CLIP and SCLIP, ``wo_resi`` for NACLIP and ClearCLIP)
BASES: Dict[str, bool] = {"naclip": False, "sclip": True, "clearclip": False, "vanilla": True}

# RCS: the code averages the attention of blocks 5..8 (0-based) whatever the backbone; those are
# blocks 5/12 <= b/L < 9/12 of ViT-B/16's L = 12, the depth they were chosen for. Other depths get
# the same share of the network (ViT-L/14: blocks 10..17) unless rcs_layers names the blocks.
RCS_DEPTH_SHARE: Tuple[int, int, int] = (5, 9, 12)  # (first, end, of depth): blocks [5/12 L, 9/12 L)

# SFR's provisional segmentation refines with PAMR, fixed in the code: 10 steps, dilations 8 and 16
SFR_PAMR_STEPS = 10
SFR_PAMR_DILATIONS = (8, 16)

# the path check's sample points are looked up in chunks of about this many (memory, not numbers)
_PATH_CHUNK = 1 << 22

#: ResCLIP's per-dataset method settings (its ``configs/cfg_<dataset>.py``), by this harness's dataset
#: names; the constructor's defaults are ADE20K's. ``dict(type="resclip", **DATASET_SETTINGS[name])``
#: is ResCLIP as its authors ran it on that dataset (with :data:`DATASET_PROTOCOL`'s evaluation).
DATASET_SETTINGS: Dict[str, Dict[str, Any]] = {
    "voc21": dict(temp_thd=0.50, rcs_weights=(2.0, 0.3), sfr_weights=(2.2, 0.7)),
    "voc20": dict(temp_thd=0.10, rcs_weights=(2.0, 0.6), sfr_weights=(2.1, 0.6)),
    "pascal_context60": dict(temp_thd=0.30, rcs_weights=(2.0, 0.3), sfr_weights=(1.8, 0.7)),
    "pascal_context59": dict(temp_thd=0.25, rcs_weights=(2.0, 0.4), sfr_weights=(1.8, 0.7)),
    "coco_object": dict(temp_thd=0.11, rcs_weights=(2.0, 0.4), sfr_weights=(1.8, 0.7)),
    "coco_stuff171": dict(temp_thd=0.11, rcs_weights=(2.0, 0.4), sfr_weights=(1.8, 0.7)),
    "cityscapes": dict(temp_thd=0.10, rcs_weights=(2.0, 0.2), sfr_weights=(2.1, 0.6)),
    "ade20k": dict(temp_thd=0.25, rcs_weights=(2.0, 0.3), sfr_weights=(2.1, 0.7)),
}

#: ResCLIP's evaluation settings per dataset, as :class:`~clip_surgery_seg.protocols.ProtocolSettings`
#: keys (what a ``configs/_base_/protocols/resclip.py`` would hold): short side 336 (Cityscapes 560),
#: long side at most 2048, windows 224 / stride 112, logit scale 40, ``prob_thd`` 0.1 where a
#: dataset scores a background (0, i.e. none, elsewhere). VOC21 and VOC20 run on the whole image
#: (``slide_crop=0``): a window of 2048 covers every image the resize gives, which is what the
#: harness's slide rule makes of a window larger than the image. Templates: ``imagenet_80``.
DATASET_PROTOCOL: Dict[str, Dict[str, Any]] = {
    name: dict(short_side=560 if name == "cityscapes" else 336, max_long_side=2048,
               crop_size=2048 if name in ("voc21", "voc20") else 224,
               stride=2048 if name in ("voc21", "voc20") else 112,
               prob_threshold=0.1 if name in ("voc21", "pascal_context60", "coco_object") else None,
               logit_scale=40.0)
    for name in DATASET_SETTINGS
}


# --- RCS ------------------------------------------------------------------------------------------

def rcs_blocks(depth: int) -> Tuple[int, ...]:
    """The blocks whose attention RCS averages by default, for a ViT of ``depth`` blocks.

    ``b`` with ``5/12 <= b / depth < 9/12``, the last block left out: 5..8 for 12 blocks (the
    code's, which it also uses for ViT-L/14), 10..17 for 24, 3..5 for 7.
    """
    first, end, of = RCS_DEPTH_SHARE
    return tuple(b for b in range(depth - 1) if first * depth <= of * b < end * depth)


def stream_with_rcs(visual: nn.Module, images: torch.Tensor, pos_embed: PosEmbed,
                    blocks: Sequence[int]) -> Tuple[torch.Tensor, Tuple[int, int], torch.Tensor]:
    """All blocks but the last, unchanged, keeping the mean post-softmax attention of ``blocks``.

    Args:
        visual: open_clip ``VisionTransformer``; images: (B, 3, H, W).
        blocks: 0-based block indices, all below the last block.

    Returns:
        ``(x, (h, w), a_rcs)``: x (B, 1 + h*w, C) the stream entering the last block; a_rcs
        (B, heads, 1 + h*w, 1 + h*w) the mean over ``blocks`` of ``softmax(s q kᵀ)`` per head,
        CLS row and column included.
    """
    resblocks = visual.transformer.resblocks
    depth = len(resblocks)
    keep = set(blocks)
    first = min(keep)
    x, grid = vit_stream(visual, images, pos_embed, skip_last=depth - first)
    total: Optional[torch.Tensor] = None
    for index in range(first, depth - 1):
        block = resblocks[index]
        q, k, v = block_qkv(block, x)
        if index in keep:
            # the weights themselves are needed, so not the fused kernel
            attn = torch.softmax((q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1), dim=-1)
            total = attn if total is None else total + attn
            out = attn @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v)
        x = mlp_residual(block, x + attention_out(block, out))
    return x, grid, total / len(keep)


# --- the last block ---------------------------------------------------------------------------------

def last_block_attention(q: torch.Tensor, k: torch.Tensor, base: str, omega: Optional[torch.Tensor] = None,
                         a_rcs: Optional[torch.Tensor] = None, a_sfr: Optional[torch.Tensor] = None,
                         rcs_weights: Tuple[float, float] = (2.0, 0.3),
                         sfr_weights: Tuple[float, float] = (2.1, 0.7)) -> torch.Tensor:
    """The last block's attention weights, the code's ``custom_attn`` for each base method.

    ``S`` the base's scaled logits (``s k kᵀ`` naclip, ``s q qᵀ`` clearclip and sclip's first
    term, ``s q kᵀ`` vanilla, ``s k kᵀ`` sclip's second term). SFR blends before the softmax,
    ``S <- τ_sfr ((1 - λ_sfr) S + λ_sfr A_sfr)``; naclip then adds ``Ω``; the softmax (sclip: the
    sum of its two softmaxes); RCS blends after it, ``A <- τ_rcs ((1 - λ_rcs) A + λ_rcs A_rcs)``,
    so the rows sum to ``τ_rcs`` (``2 τ_rcs`` for sclip), as in the code.

    Args:
        q, k: (B, heads, N, d). omega: (N, N), naclip's neighbourhood term (needed for naclip).
        a_rcs: (B, heads, N, N) or None. a_sfr: (B, 1, N, N) or None (max-normalised).

    Returns:
        (B, heads, N, N).
    """
    scale = q.shape[-1] ** -0.5

    def blend(logits: torch.Tensor) -> torch.Tensor:
        if a_sfr is None:
            return logits
        tau, lam = sfr_weights
        return tau * ((1 - lam) * logits + lam * a_sfr)

    if base == "naclip":
        attn = torch.softmax(blend((k @ k.transpose(-2, -1)) * scale) + omega, dim=-1)
    elif base == "clearclip":
        attn = torch.softmax(blend((q @ q.transpose(-2, -1)) * scale), dim=-1)
    elif base == "vanilla":
        attn = torch.softmax(blend((q * scale) @ k.transpose(-2, -1)), dim=-1)
    elif base == "sclip":
        attn = (torch.softmax(blend((q @ q.transpose(-2, -1)) * scale), dim=-1)
                + torch.softmax(blend((k @ k.transpose(-2, -1)) * scale), dim=-1))
    else:
        raise ValueError(f"unknown ResCLIP base {base!r}; choose one of {', '.join(BASES)}")
    if a_rcs is not None:
        tau, lam = rcs_weights
        attn = tau * ((1 - lam) * attn + lam * a_rcs)
    return attn


# --- SFR ------------------------------------------------------------------------------------------

def patch_mode(labels: torch.Tensor, patch: Tuple[int, int], num_labels: int) -> torch.Tensor:
    """The most frequent label of each patch: (B, H, W) int64 pixel labels -> (B, H // ph, W // pw).

    A tie goes to the smallest label (what ``torch.mode``, the code's choice, returns on a CPU).
    """
    b, height, width = labels.shape
    ph, pw = patch
    h, w = height // ph, width // pw
    cells = labels[:, :h * ph, :w * pw].reshape(b, h, ph, w, pw).permute(0, 1, 3, 2, 4).reshape(b, h, w, ph * pw)
    counts = torch.zeros(b, h, w, num_labels, dtype=torch.int64, device=labels.device)
    counts.scatter_add_(-1, cells, torch.ones_like(cells))
    return counts.argmax(dim=-1)  # the first of equal counts


def same_entity_paths(grids: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, int]:
    """The code's "same entity" check between every pair of patches of each label grid.

    For patches ``i, j`` at Chebyshev distance ``c`` on the grid, with ``c_max`` the largest
    distance on the grid and ``t_m`` = ``linspace(0, 1, c_max + 1)``, the cells
    ``round(p_i (1 - t_m) + p_j t_m)`` for ``m = 0..c`` (float32, rounding half to even) must all
    carry ``i``'s label. The step is ``1 / c_max``, not ``1 / c``: for a short pair only the first
    ``c / c_max`` of the segment from ``i`` towards ``j`` is checked -- the code's, kept.

    Args:
        grids: (B, h, w) int64 labels.

    Returns:
        ``(valid, cheb, c_max)``: valid (B, N, N) bool, row ``i`` column ``j`` (N = h*w, row-major);
        cheb (N, N) int64 the Chebyshev distances; c_max their maximum.
    """
    b, h, w = grids.shape
    n = h * w
    device = grids.device
    index = torch.arange(n, device=device)
    rows, cols = index // w, index % w
    cheb = torch.maximum((rows[:, None] - rows[None]).abs(), (cols[:, None] - cols[None]).abs())
    c_max = int(cheb.max())
    t = torch.linspace(0, 1, c_max + 1, device=device)  # float32, the code's sample positions

    def samples(length: int) -> torch.Tensor:
        """(length, length, T): the rounded coordinate of sample m from a to b, one axis at a time
        (the same float32 expression as the code's, so that the rounding at .5 agrees)."""
        at = torch.arange(length, device=device).float()
        return (at[:, None, None] * (1 - t) + at[None, :, None] * t).round().long()

    row_samples, col_samples = samples(h), samples(w)
    step = torch.arange(c_max + 1, device=device)
    flat = grids.reshape(b, n)
    valid = torch.empty(b, n, n, dtype=torch.bool, device=device)
    chunk = max(1, _PATH_CHUNK // (n * w * (c_max + 1)))  # grid rows of start patches at a time
    for top in range(0, h, chunk):
        i = slice(top * w, min(top + chunk, h) * w)
        # cell index of sample m from (ri, ci) to (rj, cj): row_samples[ri, rj, m] * w + col_samples[ci, cj, m]
        cells = (row_samples[top:top + chunk, None, :, None] * w + col_samples[None, :, None, :]).reshape(-1, n, c_max + 1)
        beyond = step > cheb[i, :, None]  # samples past j's own distance are not checked
        for image in range(b):
            on_path = flat[image][cells] == flat[image, i, None, None]
            valid[image, i] = (on_path | beyond).all(dim=-1)
    return valid, cheb, c_max


def sfr_attention(grids: torch.Tensor, gaussian_std: float = 5.0, path_decay: bool = True) -> torch.Tensor:
    """SFR's attention prior from label grids, the code's ``generate_attention_sfr``.

    ``M[i, j] = 1`` where patches ``i`` and ``j`` share a label (the diagonal included), else 0;
    with ``path_decay`` (the code's ``delete_same_entity``, on in every config) a same-label pair
    that fails :func:`same_entity_paths` is multiplied by ``exp(-c / c_max)``. Each row is then
    smoothed with a 1-D Gaussian (``gaussian_std``, length ``min(N, int(6 std + 1))`` made odd, sum 1,
    zero padding) along the row-major patch index -- not in 2-D -- and normalised to sum 1
    (``+ 1e-8``). The CLS row and column are 0.

    Args:
        grids: (B, h, w) int64 labels.

    Returns:
        (B, 1 + h*w, 1 + h*w) float32.
    """
    b, h, w = grids.shape
    n = h * w
    flat = grids.reshape(b, n)
    same = (flat[:, :, None] == flat[:, None, :]).float()
    if path_decay:
        valid, cheb, c_max = same_entity_paths(grids)
        decay = torch.exp(-cheb / c_max)  # c_max = 0 (one patch): only the always valid diagonal
        same = torch.where(valid, same, same * decay)
    size = min(n, int(6 * gaussian_std + 1))
    size += 1 - size % 2
    offsets = torch.arange(size, device=grids.device) - size // 2
    kernel = torch.exp(-(offsets ** 2) / (2 * gaussian_std ** 2))
    kernel = kernel / kernel.sum()
    smooth = F.conv1d(same.reshape(b * n, 1, n), kernel.view(1, 1, -1), padding=size // 2).view(b, n, n)
    smooth = smooth.relu()
    out = torch.zeros(b, n + 1, n + 1, device=grids.device)
    out[:, 1:, 1:] = smooth / (smooth.sum(dim=-1, keepdim=True) + 1e-8)
    return out


def provisional_grid(features: torch.Tensor, grid: Tuple[int, int], images: torch.Tensor, text: TextContext,
                     temp_thd: float, logit_scale: float) -> torch.Tensor:
    """SFR's provisional segmentation of each window, as a label per patch.

    The code's ``create_logit_temp`` and ``create_patch_matrix``: cosine similarity of every
    patch to every text row, bilinear to the window size, PAMR (10 steps, dilations 8 and 16)
    guided by the normalised window, ``softmax(logit_scale x .)`` over the rows, argmax; pixels
    whose top probability is below ``temp_thd`` get row 0; each patch the most frequent label.
    Always float32 (the code: PAMR in float32, the rest in its fp16).

    Args:
        features: (B, h*w, D) patch tokens after ``ln_post`` and the projection.
        grid: (h, w); images: (B, 3, H, W) normalised, H = h * ph, W = w * pw.

    Returns:
        (B, h, w) int64 row indices.
    """
    b = features.shape[0]
    h, w = grid
    with torch.autocast(device_type=images.device.type, enabled=False):
        sims = feature_surgery(features.float(), text.text, "none").transpose(1, 2).reshape(b, -1, h, w)
        sims = F.interpolate(sims, size=tuple(images.shape[-2:]), mode="bilinear", align_corners=False)
        sims = pamr(images.float(), sims, num_iter=SFR_PAMR_STEPS, dilations=SFR_PAMR_DILATIONS)
        prob = torch.softmax(sims * logit_scale, dim=1)
        labels = prob.argmax(dim=1)
        labels[prob.amax(dim=1) < temp_thd] = 0
    patch = (images.shape[-2] // h, images.shape[-1] // w)
    return patch_mode(labels, patch, sims.shape[1])


# --- the method -------------------------------------------------------------------------------------

def _weights(name: str, value: Any) -> Tuple[float, float]:
    ok = (isinstance(value, (list, tuple)) and len(value) == 2
          and all(is_number(v) and math.isfinite(v) for v in value))
    if not ok:
        raise ConfigError(f"resclip {name} must be a pair [tau, lambda] of numbers, e.g. [2.0, 0.3], got {value!r}")
    return float(value[0]), float(value[1])


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"resclip {name} must be true or false, got {value!r}")
    return value


@register_method
class ResCLIP(ImageTokenMethod):
    """ResCLIP as its released code computes it (``arch='wo_resi'``, ``attn_strategy='resclip'``).

    Its default base is NACLIP's last block (the code's ``'resclip'`` strategy is the same code as
    ``'naclip'``): per head ``softmax(s k kᵀ + Ω) v``, no residual, no MLP. ResCLIP changes that
    attention in two ways (:func:`last_block_attention`):

    * **RCS**: the mean post-softmax q-k attention of intermediate blocks (:func:`rcs_blocks`)
      blended in after the softmax, ``τ_rcs ((1 - λ_rcs) A + λ_rcs A_rcs)``;
    * **SFR**: a first pass of the last block (with RCS) gives a provisional segmentation of the
      window (:func:`provisional_grid`, needs the class texts), from which a same-label patch
      affinity is built (:func:`sfr_attention`), divided by its maximum and blended into the
      logits before the softmax, ``τ_sfr ((1 - λ_sfr) S + λ_sfr A_sfr)``; then the final pass.

    Args:
        base: the last block ResCLIP modifies: ``naclip`` (default), ``sclip``, ``clearclip`` or
            ``vanilla``; naclip and clearclip drop the residual and the MLP, sclip and vanilla keep
            them (the code's ``arch`` each implies).
        temp_thd: SFR's provisional pixels whose top probability is below it get row 0.
        rcs_weights, sfr_weights: ``(τ, λ)`` of each blend. Defaults: ADE20K's config
            (:data:`DATASET_SETTINGS` has every dataset's).
        use_rcs, use_sfr: switch either part off (ablations; the code's flags are always on).
        rcs_layers: the 0-based blocks RCS averages; None: :func:`rcs_blocks` of the depth (the
            code's 5..8 on a 12-block ViT). ``[5, 6, 7, 8]`` is what the code runs on ViT-L/14 too.
        path_decay: SFR's distance decay of same-label pairs not joined on the grid (the code's
            ``delete_same_entity``, on in all its configs).
        gaussian_std: NACLIP's neighbourhood and SFR's smoothing, in patches (5, the code's).
        sfr_logit_scale: the scale of the provisional softmax; None: the segmentor's (the code uses
            its one ``logit_scale``, 40, for both).
        pos_interp: default ``bicubic_offset``, as the code resizes.
    """

    name = "resclip"
    label = "ResCLIP"
    arxiv = "2411.15851"
    default_templates = "imagenet_80"
    default_pos_interp = "bicubic_offset"
    # the code's segmentor has PAMR for the final logits but off (pamr_steps=0); SFR's own PAMR
    # on the provisional segmentation is part of the method
    default_postprocess = None

    def __init__(self, base: str = "naclip", temp_thd: float = 0.25,
                 rcs_weights: Sequence[float] = (2.0, 0.3), sfr_weights: Sequence[float] = (2.1, 0.7),
                 use_rcs: bool = True, use_sfr: bool = True, rcs_layers: Optional[Sequence[int]] = None,
                 path_decay: bool = True, gaussian_std: float = 5.0, sfr_logit_scale: Optional[float] = None,
                 pos_interp: Optional[str] = None) -> None:
        super().__init__(pos_interp)
        if base not in BASES:
            raise ConfigError(f"resclip base must be one of {', '.join(BASES)}, got {base!r}")
        if not is_number(temp_thd) or not 0 <= temp_thd <= 1:
            raise ConfigError(f"resclip temp_thd must be a probability in [0, 1], got {temp_thd!r}")
        if not is_number(gaussian_std) or not gaussian_std > 0:
            raise ConfigError(f"resclip gaussian_std must be a number > 0 (patches), got {gaussian_std!r}")
        if sfr_logit_scale is not None and (not is_number(sfr_logit_scale) or not sfr_logit_scale > 0):
            raise ConfigError(f"resclip sfr_logit_scale must be a number > 0 or None, got {sfr_logit_scale!r}")
        if rcs_layers is not None:
            if (isinstance(rcs_layers, (str, bytes)) or not isinstance(rcs_layers, Sequence) or not rcs_layers
                    or any(not is_int(b) or b < 0 for b in rcs_layers)
                    or len(set(rcs_layers)) != len(rcs_layers)):
                raise ConfigError(f"resclip rcs_layers must be None or a list of distinct 0-based block indices, "
                                  f"e.g. [5, 6, 7, 8], got {rcs_layers!r}")
            rcs_layers = tuple(rcs_layers)
        self.base = base
        self.temp_thd = float(temp_thd)
        self.rcs_weights = _weights("rcs_weights", rcs_weights)
        self.sfr_weights = _weights("sfr_weights", sfr_weights)
        self.use_rcs = _flag("use_rcs", use_rcs)
        self.use_sfr = _flag("use_sfr", use_sfr)
        self.rcs_layers = rcs_layers
        self.path_decay = _flag("path_decay", path_decay)
        self.gaussian_std = float(gaussian_std)
        self.sfr_logit_scale = None if sfr_logit_scale is None else float(sfr_logit_scale)

    @property
    def needs_text(self) -> bool:  # type: ignore[override]
        """SFR's provisional segmentation reads the class texts; without SFR nothing does."""
        return self.use_sfr

    @property
    def residual(self) -> bool:
        """Whether the last block keeps its residual and MLP (the code's ``arch`` for :attr:`base`)."""
        return BASES[self.base]

    def params(self) -> Dict[str, Any]:
        return {"base": self.base, "temp_thd": self.temp_thd, "rcs_weights": self.rcs_weights,
                "sfr_weights": self.sfr_weights, "use_rcs": self.use_rcs, "use_sfr": self.use_sfr,
                "rcs_layers": self.rcs_layers, "path_decay": self.path_decay, "gaussian_std": self.gaussian_std,
                "sfr_logit_scale": self.sfr_logit_scale, **super().params()}

    def blocks_for(self, depth: int) -> Tuple[int, ...]:
        """The blocks RCS averages on a ViT of ``depth`` blocks (:attr:`rcs_layers` or the rule)."""
        return self.rcs_layers if self.rcs_layers is not None else rcs_blocks(depth)

    def check(self, visual: nn.Module) -> None:
        super().check(visual)
        if not self.use_rcs:
            return
        depth = len(visual.transformer.resblocks)
        blocks = self.blocks_for(depth)
        if not blocks:
            raise ConfigError(f"resclip: a ViT of {depth} blocks has no intermediate block for RCS by the default "
                              f"rule; set rcs_layers to blocks in [0, {depth - 2}]")
        if max(blocks) > depth - 2:
            raise ConfigError(f"resclip rcs_layers must be blocks before the last, in [0, {depth - 2}] for this "
                              f"model, got {list(blocks)}")

    def vit_tokens(self, visual: nn.Module, images: torch.Tensor, pos_embed: PosEmbed,
                   text: Optional[TextContext] = None) -> torch.Tensor:
        depth = len(visual.transformer.resblocks)
        if self.use_rcs:
            x, grid, a_rcs = stream_with_rcs(visual, images, pos_embed, self.blocks_for(depth))
        else:
            (x, grid), a_rcs = vit_stream(visual, images, pos_embed, skip_last=1), None
        block = visual.transformer.resblocks[-1]
        q, k, v = block_qkv(block, x)
        omega = gaussian_neighbourhood(grid, self.gaussian_std, k.device, k.dtype) if self.base == "naclip" else None

        def last_block(a_sfr: Optional[torch.Tensor]) -> torch.Tensor:
            attn = last_block_attention(q, k, self.base, omega, a_rcs, a_sfr, self.rcs_weights, self.sfr_weights)
            out = attention_out(block, attn @ v)
            return vit_project(visual, mlp_residual(block, x + out) if self.residual else out)

        a_sfr = None
        if self.use_sfr:
            scale = self.sfr_logit_scale if self.sfr_logit_scale is not None else text.logit_scale
            labels = provisional_grid(last_block(None)[:, 1:], grid, images, text, self.temp_thd, scale)
            prior = sfr_attention(labels, self.gaussian_std, self.path_decay)
            # the code divides by the maximum, then casts to fp16; kept in float32 here
            a_sfr = (prior / prior.amax(dim=(-2, -1), keepdim=True))[:, None]
        return last_block(a_sfr)
