"""Naive reference implementations of docs/method.md §1-4, written from the formulas for testing.

Deliberately slow and explicit: per-block loops, per-head attention, the element-wise (B, N, K, D)
feature-surgery tensor. Shares nothing with the library but the weights it reads.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def layer_norm(x, ln):
    return F.layer_norm(x, ln.normalized_shape, ln.weight, ln.bias, ln.eps)


def attention(q, k, v):
    """softmax(q kᵀ / √d) v for one head; q (N, d), k/v (M, d)."""
    scores = q @ k.t() / math.sqrt(q.shape[-1])
    return torch.softmax(scores, dim=-1) @ v


def multi_head(q, k, v, heads, attn_fn=attention):
    """Per-head loop; q (N, C), k/v (M, C) -> (N, C)."""
    d = q.shape[-1] // heads
    return torch.cat([attn_fn(q[:, i * d:(i + 1) * d], k[:, i * d:(i + 1) * d], v[:, i * d:(i + 1) * d])
                      for i in range(heads)], dim=-1)


def resize_pos(pos, src, dst):
    if tuple(src) == tuple(dst):
        return pos
    grid = pos[1:].reshape(src[0], src[1], -1).permute(2, 0, 1)[None]
    grid = F.interpolate(grid, size=dst, mode="bilinear", align_corners=False)[0]
    return torch.cat([pos[:1], grid.permute(1, 2, 0).reshape(dst[0] * dst[1], -1)])


def mlp(block, x):
    fc, act, proj = block.mlp.c_fc, block.mlp.gelu, block.mlp.c_proj
    return F.linear(act(F.linear(x, fc.weight, fc.bias)), proj.weight, proj.bias)


def vit_tokens(clip, image, depth, new_path="vv"):
    """docs/method.md §1 for ONE image (3, H, W) -> (1 + h*w, D), explicit per-block loop."""
    vis = clip.visual
    p = vis.conv1.kernel_size[0]
    patches = F.conv2d(image[None], vis.conv1.weight, stride=p)[0]  # (C, h, w)
    c, h, w = patches.shape
    x = torch.cat([vis.class_embedding[None], patches.reshape(c, h * w).t()])
    gh, gw = vis.grid_size
    x = x + resize_pos(vis.positional_embedding, (gh, gw), (h, w))
    x = layer_norm(x, vis.ln_pre)
    blocks = list(vis.transformer.resblocks)
    n_blocks = len(blocks)
    orig = new = None
    for b, block in enumerate(blocks):
        attn = block.attn
        heads = attn.num_heads
        W, bias, P = attn.in_proj_weight, attn.in_proj_bias, attn.out_proj
        if b < n_blocks - depth:
            hx = layer_norm(x, block.ln_1)
            q, k, v = (F.linear(hx, W[i * c:(i + 1) * c], bias[i * c:(i + 1) * c]) for i in range(3))
            x = x + F.linear(multi_head(q, k, v, heads), P.weight, P.bias)
            x = x + mlp(block, layer_norm(x, block.ln_2))
            continue
        if orig is None:
            orig, new = x.clone(), x.clone()
        hx = layer_norm(orig, block.ln_1)
        q, k, v = (F.linear(hx, W[i * c:(i + 1) * c], bias[i * c:(i + 1) * c]) for i in range(3))
        if new_path == "vv":
            new_attn = multi_head(v, v, v, heads)
        else:
            new_attn = v
        new = new + F.linear(new_attn, P.weight, P.bias)  # no MLP on the new path
        orig = orig + F.linear(multi_head(q, k, v, heads), P.weight, P.bias)
        orig = orig + mlp(block, layer_norm(orig, block.ln_2))
    if orig is not None:
        x = new.clone()
        x[0] = orig[0]
    return layer_norm(x, vis.ln_post) @ vis.proj


def resnet_tokens(clip, image, surgery=True, resnet_norm=False):
    """docs/method.md §2 for ONE image -> (1 + h*w, D)."""
    vis = clip.visual
    x = image[None]
    x = vis.stem(x)
    for layer in (vis.layer1, vis.layer2, vis.layer3, vis.layer4):
        x = layer(x)
    x = x[0]
    c, h, w = x.shape
    pool = vis.attnpool
    x = x.reshape(c, h * w).t()
    x = torch.cat([x.mean(0, keepdim=True), x])
    side = round((pool.positional_embedding.shape[0] - 1) ** 0.5)
    x = x + resize_pos(pool.positional_embedding, (side, side), (h, w))
    heads = pool.num_heads
    v = F.linear(x, pool.v_proj.weight, pool.v_proj.bias)
    if not surgery:
        q = F.linear(x, pool.q_proj.weight, pool.q_proj.bias)
        k = F.linear(x, pool.k_proj.weight, pool.k_proj.bias)
        return F.linear(multi_head(q, k, v, heads), pool.c_proj.weight, pool.c_proj.bias)
    orig = multi_head(v, v, v, heads)
    if resnet_norm:
        def norm_attn(q, k, vv):
            qn = q / (q.norm(dim=-1, keepdim=True) + 1e-6)
            scores = qn @ qn.t() * 8 / math.sqrt(q.shape[-1])
            return torch.softmax(scores, dim=-1) @ vv
        new = multi_head(v, v, v, heads, norm_attn)
    else:
        new = orig
    out = new.clone()
    out[0] = orig[0]
    return F.linear(out, pool.c_proj.weight, pool.c_proj.bias)


def text_embeddings(clip, tokenizer, classnames, templates):
    """docs/method.md §3 with one encode_text call per prompt."""
    rows = []
    for name in classnames:
        embs = [F.normalize(clip.encode_text(tokenizer([t.format(name)]))[0], dim=-1) for t in templates]
        rows.append(F.normalize(torch.stack(embs).mean(0), dim=-1))
    return torch.stack(rows)


def feature_surgery(image_feats, text_feats, mode="none", redundant=None):
    """docs/method.md §4 element-wise, as the authors compute it, with per-image weights."""
    f = image_feats / image_feats.norm(dim=-1, keepdim=True)
    b, n, d = f.shape
    k = text_feats.shape[0]
    if mode == "none":
        return (f[:, :, None, :] * text_feats[None, None]).sum(-1)
    if mode == "redundant":
        return (f[:, :, None, :] * (text_feats - redundant.reshape(1, -1))[None, None]).sum(-1)
    out = torch.empty(b, n, k, dtype=f.dtype)
    for i in range(b):
        prob = torch.softmax(2 * (f[i, 0] @ text_feats.t()), dim=-1)
        w = prob / prob.mean()
        feats = f[i][:, None, :] * text_feats[None]  # (N, K, D)
        feats = feats * w[None, :, None]
        feats = feats - feats.mean(dim=1, keepdim=True)
        out[i] = feats.sum(-1)
    return out
