"""ResCLIP (docs/methods.md) against a naive re-statement of its released code: per-head loops for the
attention, explicit per-pair, per-sample loops for SFR's path check, a per-row convolution for its
smoothing, a per-patch vote for the provisional labels."""
from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import reference as ref
from clip_surgery_seg.errors import ConfigError
from clip_surgery_seg.models import SurgeryCLIP, TextContext
from clip_surgery_seg.models.methods import METHODS, build_method
from clip_surgery_seg.models.methods.resclip import (DATASET_PROTOCOL, DATASET_SETTINGS, patch_mode, rcs_blocks,
                                                     same_entity_paths, sfr_attention)
from clip_surgery_seg.models.pamr import pamr  # has its own naive test (tests/test_postprocess.py)

TINY_BLOCKS = (3, 4, 5)  # the default rule on the tiny ViT's 7 blocks: 5/12 <= b/7 < 9/12


# --- the naive re-statement ----------------------------------------------------------------------

def naive_stream(clip, image, keep, pos_mode="bicubic_offset"):
    """ONE image through every block but the last, plain CLIP, head by head; the mean attention
    map (heads, 1+N, 1+N) of the blocks in ``keep``."""
    vis = clip.visual
    patches = F.conv2d(image[None], vis.conv1.weight, stride=vis.conv1.kernel_size[0])[0]
    c, h, w = patches.shape
    x = torch.cat([vis.class_embedding[None], patches.reshape(c, h * w).t()])
    x = ref.layer_norm(x + ref.resize_pos_as(vis.positional_embedding, tuple(vis.grid_size), (h, w), pos_mode),
                       vis.ln_pre)
    blocks = list(vis.transformer.resblocks)
    maps = {}
    for b, block in enumerate(blocks[:-1]):
        q, k, v = ref.qkv(block, x)
        heads = block.attn.num_heads
        d = c // heads
        outs, per_head = [], []
        for head in range(heads):
            cols = slice(head * d, (head + 1) * d)
            attn = torch.softmax(q[:, cols] @ k[:, cols].t() / math.sqrt(d), dim=-1)
            per_head.append(attn)
            outs.append(attn @ v[:, cols])
        maps[b] = torch.stack(per_head)
        x = x + ref.out_proj(block, torch.cat(outs, dim=-1))
        x = x + ref.mlp(block, ref.layer_norm(x, block.ln_2))
    a_rcs = sum(maps[b] for b in keep) / len(keep) if keep else None
    return x, (h, w), a_rcs


def naive_last_block(clip, x, grid, base, a_rcs, a_sfr, rcs_w, sfr_w, std):
    """The last block, head by head, as the code's custom_attn for ``base`` -> (1 + N, D) tokens."""
    block = clip.visual.transformer.resblocks[-1]
    q, k, v = ref.qkv(block, x)
    heads = block.attn.num_heads
    d = q.shape[-1] // heads
    omega = ref._neighbourhood_bias(grid[0], grid[1], std)

    def logits(a, b):
        s = a @ b.t() / math.sqrt(d)
        if a_sfr is not None:
            s = sfr_w[0] * ((1 - sfr_w[1]) * s + sfr_w[1] * a_sfr)
        return s

    outs = []
    for head in range(heads):
        cols = slice(head * d, (head + 1) * d)
        qh, kh, vh = q[:, cols], k[:, cols], v[:, cols]
        if base == "naclip":
            attn = torch.softmax(logits(kh, kh) + omega, dim=-1)
        elif base == "clearclip":
            attn = torch.softmax(logits(qh, qh), dim=-1)
        elif base == "vanilla":
            attn = torch.softmax(logits(qh, kh), dim=-1)
        else:  # sclip
            attn = torch.softmax(logits(qh, qh), dim=-1) + torch.softmax(logits(kh, kh), dim=-1)
        if a_rcs is not None:
            attn = rcs_w[0] * ((1 - rcs_w[1]) * attn + rcs_w[1] * a_rcs[head])
        outs.append(attn @ vh)
    y = ref.out_proj(block, torch.cat(outs, dim=-1))
    if base in ("sclip", "vanilla"):  # arch w_resi
        y = x + y
        y = y + ref.mlp(block, ref.layer_norm(y, block.ln_2))
    return ref.project(clip, y)


def naive_labels(tokens, grid, image, text, scale, temp_thd):
    """Provisional (h, w) labels: cosine to every row, bilinear up, PAMR(10; 8, 16), softmax,
    argmax, threshold -> row 0, then the most frequent label of each patch (ties: the smallest)."""
    h, w = grid
    feats = tokens[1:] / tokens[1:].norm(dim=-1, keepdim=True)
    sims = (feats @ text.t()).t().reshape(-1, h, w)
    up = F.interpolate(sims[None], size=tuple(image.shape[-2:]), mode="bilinear", align_corners=False)
    prob = torch.softmax(scale * pamr(image[None], up, 10, (8, 16))[0], dim=0)
    labels = prob.argmax(dim=0)
    labels[prob.max(dim=0).values < temp_thd] = 0
    ph, pw = image.shape[-2] // h, image.shape[-1] // w
    out = torch.empty(h, w, dtype=torch.long)
    for r in range(h):
        for c in range(w):
            counts = Counter(labels[r * ph:(r + 1) * ph, c * pw:(c + 1) * pw].flatten().tolist())
            top = max(counts.values())
            out[r, c] = min(label for label, n in counts.items() if n == top)
    return out


def naive_sfr(grid, std=5.0, path_decay=True):
    """generate_attention_sfr for ONE (h, w) label grid -> (1 + N, 1 + N): start patch by start patch,
    sample by sample along the segment to every end patch (numpy float32, rounding half to even)."""
    h, w = grid.shape
    n = h * w
    lab = grid.flatten().numpy()
    rows, cols = np.divmod(np.arange(n), w)
    c_max = max(h - 1, w - 1)  # the largest Chebyshev distance on an h x w grid
    t = torch.linspace(0, 1, c_max + 1).numpy()  # the code's float32 sample positions
    one = np.float32(1)
    m = np.zeros((n, n), dtype=np.float32)
    for i in range(n):
        dist = np.maximum(np.abs(rows - rows[i]), np.abs(cols - cols[i]))  # to every end patch j
        joined = np.ones(n, dtype=bool)
        if path_decay:
            for step in range(c_max + 1):
                r = np.round(np.float32(rows[i]) * (one - t[step]) + rows.astype(np.float32) * t[step]).astype(int)
                c = np.round(np.float32(cols[i]) * (one - t[step]) + cols.astype(np.float32) * t[step]).astype(int)
                checked = step <= dist  # sample m is looked at for pairs at distance >= m only
                joined &= ~checked | (lab[r * w + c] == lab[i])
        same = lab == lab[i]
        m[i] = np.where(same, np.where(joined, 1.0, np.exp(-dist / max(c_max, 1))), 0.0)
    size = min(n, int(6 * std + 1))
    size = size if size % 2 else size + 1
    kernel = np.exp(-((np.arange(size) - size // 2) ** 2) / (2 * std ** 2))
    kernel /= kernel.sum()
    out = np.zeros((n + 1, n + 1))
    for i in range(n):
        row = np.maximum(np.convolve(m[i], kernel)[size // 2:size // 2 + n], 0)  # zero-padded, centred
        out[i + 1, 1:] = row / (row.sum() + 1e-8)
    return torch.from_numpy(out).float()


def naive_resclip(clip, image, text, scale, base="naclip", temp_thd=0.25, rcs_w=(2.0, 0.3), sfr_w=(2.1, 0.7),
                  keep=TINY_BLOCKS, std=5.0, path_decay=True, use_sfr=True, sfr_scale=None, record=None):
    x, grid, a_rcs = naive_stream(clip, image, keep)
    a_sfr = None
    if use_sfr:
        first = naive_last_block(clip, x, grid, base, a_rcs, None, rcs_w, sfr_w, std)
        labels = naive_labels(first, grid, image, text, sfr_scale or scale, temp_thd)
        if record is not None:
            record.append(labels)
        prior = naive_sfr(labels, std, path_decay)
        a_sfr = prior / prior.max()
    return naive_last_block(clip, x, grid, base, a_rcs, a_sfr, rcs_w, sfr_w, std)


# --- helpers --------------------------------------------------------------------------------------

def _context(rows=3, dim=32, scale=40.0, seed=1):
    g = torch.Generator().manual_seed(seed)
    return TextContext(F.normalize(torch.randn(rows, dim, generator=g), dim=-1), scale)


def _images(size, seed=2):
    """Two images with structure (a few flat regions plus noise), so that PAMR and the labels vary."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(2, 3, 3, 4, generator=g) * 1.5
    images = F.interpolate(coarse, size=size, mode="nearest") + 0.3 * torch.randn(2, 3, *size, generator=g)
    return images


def _naive_batch(clip, images, context, **kwargs):
    with torch.no_grad():
        return torch.stack([naive_resclip(clip, im, context.text, context.logit_scale, **kwargs) for im in images])


# --- the method against the naive re-statement ------------------------------------------------------

@pytest.mark.parametrize("size", [(224, 224), pytest.param((448, 448), marks=pytest.mark.slow), (224, 352)])
def test_resclip_matches_naive_reference(tiny_vit, size):
    clip, tok = tiny_vit
    images, context = _images(size), _context()
    out = SurgeryCLIP(clip, tok, method="resclip").encode_image_tokens(images, text=context)
    h, w = size[0] // 16, size[1] // 16
    assert out.shape == (2, 1 + h * w, 32)
    labels = []
    expected = _naive_batch(clip, images, context, record=labels)
    assert (out - expected).abs().max() < 1e-4
    # SFR saw more than one label (the path check and the decay took part)
    assert any(len(torch.unique(grid)) > 1 for grid in labels)


@pytest.mark.parametrize("base", ["sclip", "clearclip", "vanilla"])
def test_other_bases_match_naive_reference(tiny_vit, base):
    clip, tok = tiny_vit
    images, context = _images((96, 128)), _context()
    out = SurgeryCLIP(clip, tok, method=dict(type="resclip", base=base)).encode_image_tokens(images, text=context)
    assert (out - _naive_batch(clip, images, context, base=base)).abs().max() < 1e-4


@pytest.mark.parametrize("params,naive,against", [
    (dict(use_rcs=False), dict(keep=()), {}),
    (dict(use_sfr=False), dict(use_sfr=False), {}),
    (dict(rcs_layers=[1, 4]), dict(keep=(1, 4)), {}),
    (dict(path_decay=False, gaussian_std=1.5), dict(path_decay=False, std=1.5), dict(gaussian_std=1.5)),
    # with 3 rows the top probability is >= 1/3: and most pixels are far above it: a high threshold shows temp_thd
    (dict(temp_thd=0.95), dict(temp_thd=0.95), {}),
    (dict(rcs_weights=[1.5, 0.5], sfr_weights=[1.8, 0.4]), dict(rcs_w=(1.5, 0.5), sfr_w=(1.8, 0.4)), {}),
    (dict(temp_thd=0.95, sfr_logit_scale=10.0), dict(temp_thd=0.95, sfr_scale=10.0), dict(temp_thd=0.95)),
])
def test_parameters_match_naive_reference(tiny_vit, params, naive, against):
    clip, tok = tiny_vit
    images, context = _images((96, 128)), _context()
    model = SurgeryCLIP(clip, tok, method=dict(type="resclip", **params))
    out = model.encode_image_tokens(images, text=context)
    assert (out - _naive_batch(clip, images, context, **naive)).abs().max() < 1e-4
    other = SurgeryCLIP(clip, tok, method=dict(type="resclip", **against)).encode_image_tokens(images, text=context)
    assert (out - other).abs().max() > 1e-4, params  # each parameter changes something


def test_text_is_required_and_reaches_the_method(tiny_vit):
    clip, tok = tiny_vit
    model = SurgeryCLIP(clip, tok, method="resclip")
    images = _images((64, 96))
    with pytest.raises(ValueError, match="reads the class texts"):
        model.encode_image_tokens(images)
    # other texts, other tokens: the context is used
    a = model.encode_image_tokens(images, text=_context(seed=1))
    b = model.encode_image_tokens(images, text=_context(seed=5))
    assert (a - b).abs().max() > 1e-4
    # without SFR nothing reads the text
    no_sfr = SurgeryCLIP(clip, tok, method=dict(type="resclip", use_sfr=False))
    assert not no_sfr.method.needs_text
    assert torch.equal(no_sfr.encode_image_tokens(images), no_sfr.encode_image_tokens(images, text=_context()))


# --- SFR's pieces on hand-made grids ---------------------------------------------------------------------

def _prior_before_smoothing(grid):
    """M of generate_attention_sfr (same label, path-checked, decayed): smoothing off by a tiny std."""
    valid, cheb, c_max = same_entity_paths(grid[None])
    flat = grid.flatten()
    same = (flat[:, None] == flat[None]).float()
    return torch.where(valid[0], same, same * torch.exp(-cheb / c_max))


def test_disconnected_same_label_pairs_decay_connected_ones_do_not():
    # one row: label 1 at both ends, 0 between
    grid = torch.tensor([[1, 1, 0, 0, 1]])
    valid, cheb, c_max = same_entity_paths(grid[None])
    assert c_max == 4 and cheb[0, 4] == 4
    assert valid[0, 0, 1] and valid[0, 1, 0]  # neighbours
    assert not valid[0, 0, 4] and not valid[0, 4, 0] and not valid[0, 1, 4]  # across the 0 gap
    m = _prior_before_smoothing(grid)
    assert m[0, 1] == 1 and m[2, 3] == 1 and m[0, 2] == 0  # different labels stay 0
    assert torch.isclose(m[0, 4], torch.tensor(math.exp(-4 / 4))) and torch.isclose(m[1, 4], torch.tensor(math.exp(-3 / 4)))
    # two regions in 2-D, joined by nothing
    grid = torch.tensor([[2, 2, 0, 0],
                         [2, 2, 0, 3],
                         [0, 0, 0, 3]])
    valid, _, _ = same_entity_paths(grid[None])
    w = 4
    assert valid[0, 0, 1 * w + 1]  # (0,0)-(1,1): inside the 2-region
    assert valid[0, 1 * w + 3, 2 * w + 3]  # the 3-region
    assert not valid[0, 0 * w + 2, 2 * w + 0]
    assert torch.all(torch.diagonal(valid[0]))


def test_path_check_samples_with_the_grid_maximum_not_the_pair_distance():
    """The code's step is 1 / c_max: a short pair checks only the first c / c_max of its segment, so
    a gap near its end goes unseen (kept as the code has it)."""
    grid = torch.tensor([[1, 1, 1, 1, 0, 1, 1, 1, 1]])  # c_max = 8
    valid, _, _ = same_entity_paths(grid[None])
    # 0 -> 5 (distance 5): samples at 5 m / 8 = 0, 0.6, 1.25, 1.9, 2.5, 3.1 -> cells 0, 1, 1, 2, 2, 3: the 0 at 4 unseen
    assert valid[0, 0, 5]
    assert not valid[0, 0, 8]  # 0 -> 8 samples every cell, the gap included
    assert not valid[0, 3, 5]  # 3 -> 5: samples 3, 3.25, 3.5 -> 3, 3, 4 (half to even): sees the gap


def test_sfr_smoothing_by_hand():
    """1 x 3 grid, labels (1, 1, 2), std 0.5: kernel length min(3, 4) -> 3 (odd), taps e^-2, 1, e^-2."""
    out = sfr_attention(torch.tensor([[[1, 1, 2]]]), gaussian_std=0.5)[0]
    k = torch.tensor([math.exp(-2), 1, math.exp(-2)])
    k = k / k.sum()
    row0 = torch.tensor([k[1] + k[2], k[0] + k[1], k[0]])  # (1, 1, 0) blurred, zero padding
    assert torch.allclose(out[1, 1:], row0 / row0.sum(), atol=1e-6)
    row2 = torch.tensor([0, k[2], k[1]])  # (0, 0, 1)
    assert torch.allclose(out[3, 1:], row2 / row2.sum(), atol=1e-6)
    assert torch.all(out[0] == 0) and torch.all(out[:, 0] == 0)


@pytest.mark.parametrize("shape", [(2, 3), (5, 7), (14, 14), (6, 11)])
def test_sfr_attention_matches_naive(shape):
    g = torch.Generator().manual_seed(sum(shape))
    coarse = torch.randint(0, 3, (2, 1, 2, 3), generator=g).float()
    grids = F.interpolate(coarse, size=shape, mode="nearest")[:, 0].long()  # regions, not noise
    grids[1] = torch.randint(0, 4, shape, generator=g)  # and noise
    for decay in (True, False):
        out = sfr_attention(grids, gaussian_std=5.0, path_decay=decay)
        assert out.shape == (2, 1 + shape[0] * shape[1], 1 + shape[0] * shape[1])
        for b in range(2):
            assert (out[b] - naive_sfr(grids[b], 5.0, decay)).abs().max() < 1e-6
        assert torch.allclose(out[:, 1:].sum(-1), torch.ones(()), atol=1e-5)


def test_patch_mode_is_torch_mode():
    labels = torch.randint(0, 4, (2, 32, 48))
    out = patch_mode(labels, (16, 16), 4)
    cells = labels.reshape(2, 2, 16, 3, 16).permute(0, 1, 3, 2, 4).reshape(2, 2, 3, 256)
    assert torch.equal(out, torch.mode(cells, dim=-1).values)  # ties: the smallest, on a CPU


# --- layers, settings, parameters --------------------------------------------------------------------------

def test_rcs_blocks_rule():
    assert rcs_blocks(12) == (5, 6, 7, 8)  # the code's, ViT-B/16
    assert rcs_blocks(24) == tuple(range(10, 18))  # ViT-L/14: the same share of the depth
    assert rcs_blocks(7) == TINY_BLOCKS
    for depth in range(4, 40):
        blocks = rcs_blocks(depth)
        assert blocks and max(blocks) <= depth - 2


def test_rcs_layers_beyond_the_model_are_refused(tiny_vit):
    with pytest.raises(ConfigError, match=r"rcs_layers must be blocks before the last, in \[0, 5\]"):
        SurgeryCLIP(*tiny_vit, method=dict(type="resclip", rcs_layers=[5, 6]))
    SurgeryCLIP(*tiny_vit, method=dict(type="resclip", rcs_layers=[0, 5]))


@pytest.mark.parametrize("spec,message", [
    (dict(type="resclip", base="maskclip"), "base must be one of naclip, sclip, clearclip, vanilla"),
    (dict(type="resclip", temp_thd=1.5), "temp_thd must be a probability"),
    (dict(type="resclip", rcs_weights=[2.0]), "rcs_weights must be a pair"),
    (dict(type="resclip", sfr_weights="2.1, 0.7"), "sfr_weights must be a pair"),
    (dict(type="resclip", use_rcs="no"), "use_rcs must be true or false"),
    (dict(type="resclip", rcs_layers=[5, 5]), "rcs_layers must be None or a list of distinct"),
    (dict(type="resclip", gaussian_std=0), "gaussian_std must be a number > 0"),
    (dict(type="resclip", sfr_logit_scale=-1), "sfr_logit_scale must be a number > 0"),
])
def test_bad_parameters_are_config_errors(spec, message):
    with pytest.raises(ConfigError, match=message):
        build_method(spec)


def test_declarations_and_dataset_settings():
    from clip_surgery_seg.datasets.catalog import DATASETS
    from clip_surgery_seg.protocols import ProtocolSettings

    cls = METHODS["resclip"]
    assert (cls.label, cls.arxiv, cls.default_templates, cls.default_pos_interp, cls.default_postprocess) == \
        ("ResCLIP", "2411.15851", "imagenet_80", "bicubic_offset", None)
    method = build_method("resclip")
    assert method.base == "naclip" and not method.residual and method.needs_text
    # the defaults are ADE20K's settings
    assert {k: method.params()[k] for k in DATASET_SETTINGS["ade20k"]} == DATASET_SETTINGS["ade20k"]
    assert set(DATASET_SETTINGS) == set(DATASET_PROTOCOL) == set(DATASETS)
    for name, settings in DATASET_SETTINGS.items():
        assert build_method(dict(type="resclip", **settings)).config()["temp_thd"] == settings["temp_thd"]
        ProtocolSettings.from_dict(DATASET_PROTOCOL[name])
    assert DATASET_PROTOCOL["voc21"]["crop_size"] >= DATASET_PROTOCOL["voc21"]["max_long_side"]  # whole image


# --- through the segmentor ------------------------------------------------------------------------------------

def test_segmentor_passes_the_text_context(tmp_path):
    import clip_surgery_seg.registry  # noqa: F401
    from clip_surgery_seg.segmentors.segmentor import CLIPSurgerySegmentor
    from conftest import TINY_VIT

    # random text rows (the tiny model's own are nearly parallel), and a temp_thd that the scale of
    # the provisional softmax decides
    def segmentor(logit_scale, method=dict(type="resclip", temp_thd=0.5)):
        seg = CLIPSurgerySegmentor(clip=dict(name=str(TINY_VIT), pretrained=None), classnames=["sky", "tree, bush"],
                                   method=method, text_cache_dir=str(tmp_path),
                                   protocol=dict(short_side=64, crop_size=64, stride=32, logit_scale=logit_scale))
        seg.text_features()
        seg._text = _context().text
        return seg

    seg = segmentor(40.0)
    context = seg.text_context()
    assert torch.equal(context.text, seg.text_features()) and context.text.shape[0] == 3  # every synonym a row
    assert context.logit_scale == 40.0
    assert segmentor(None).text_context().logit_scale == pytest.approx(float(seg.surgery.clip.logit_scale.detach().exp()))
    assert segmentor(40.0, "naclip").text_context() is None

    windows = _images((64, 96))
    maps = seg.window_maps(windows)
    tokens = seg.surgery.encode_image_tokens(windows, text=TextContext(seg.text_features(), 40.0))
    expected = F.normalize(tokens[:, 1:], dim=-1) @ seg.text_features().t()
    assert torch.allclose(maps.permute(0, 2, 3, 1).reshape(2, -1, 3), expected, atol=1e-5)
    assert (segmentor(5.0).window_maps(windows) - maps).abs().max() > 1e-4  # the scale reaches SFR
    assert torch.equal(seg.extract_feat(windows), tokens)

    image = _images((48, 80))[0]
    labels = seg.seg_labels([image], [(48, 80)])[0]
    assert labels.shape == (48, 80) and set(labels.unique().tolist()) <= {0, 1}


@pytest.mark.slow
def test_vit_b16_uses_the_codes_blocks():
    """On ViT-B/16's depth (random weights) the default rule is the code's blocks 5..8."""
    from clip_surgery_seg.models import build_clip

    clip, tok = build_clip("ViT-B-16")
    model = SurgeryCLIP(clip, tok, method="resclip")
    assert model.method.blocks_for(len(clip.visual.transformer.resblocks)) == (5, 6, 7, 8)
    images, context = _images((224, 288))[:1], _context(dim=512)
    out = model.encode_image_tokens(images, text=context)
    assert out.shape == (1, 1 + 14 * 18, 512)
    assert (out - _naive_batch(clip, images, context, keep=(5, 6, 7, 8))).abs().max() < 1e-3
