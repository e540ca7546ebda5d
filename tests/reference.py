"""Naive reference implementations of docs/method.md §1-4 and docs/methods.md, written from the formulas for testing.

Deliberately slow and explicit: per-block loops, per-head attention (per query token for the
training-free methods of §9), the element-wise (B, N, K, D) feature-surgery tensor, a tap-by-tap
bicubic resize. Shares nothing with the library but the weights it reads.
"""
from __future__ import annotations

import functools
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


def resnet_tokens(clip, image, surgery=True, resnet_norm=False, pos_mode="bilinear"):
    """docs/method.md §2 for ONE image -> (1 + h*w, D); ``pos_mode`` as :func:`resize_pos_as`."""
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
    x = x + resize_pos_as(pool.positional_embedding, (side, side), (h, w), pos_mode)
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


# --- docs/methods.md: the field's other training-free methods, as their released code computes them ---------

def _cubic(t, a=-0.75):
    """The cubic convolution kernel torch's bicubic mode uses (Keys, a = -0.75)."""
    t = abs(t)
    if t <= 1:
        return ((a + 2) * t - (a + 3)) * t * t + 1
    if t < 2:
        return ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
    return 0.0


def _bicubic_1d(x, dim, out_len, in_per_out):
    """Resize ``x`` along ``dim`` tap by tap: output i reads input coordinate (i + 0.5) * in_per_out - 0.5,
    four taps around it, indices clamped to the border."""
    n = x.shape[dim]
    rows = []
    for i in range(out_len):
        src = (i + 0.5) * in_per_out - 0.5
        base = math.floor(src)
        t = src - base
        acc = 0
        for tap in range(-1, 3):
            index = min(max(base + tap, 0), n - 1)
            acc = acc + _cubic(tap - t) * x.select(dim, index)
        rows.append(acc)
    return torch.stack(rows, dim=dim)


def resize_pos_as(pos, src, dst, mode):
    """(1 + src_h*src_w, C) positional embedding -> (1 + h*w, C), CLS kept, unchanged for equal grids.

    ``bilinear``: to the size, as CLIP Surgery; ``bicubic``: to the size, bicubic (MaskCLIP, mmseg's
    resize); ``bicubic_offset``: bicubic with scale factor (n + 0.1) / n0, the factor itself (not the
    size ratio) mapping output to input coordinates (SCLIP, ClearCLIP, NACLIP).
    """
    src, dst = tuple(src), tuple(dst)
    if src == dst:
        return pos
    if mode == "bilinear":
        return resize_pos(pos, src, dst)
    if mode == "bicubic_antialias":
        return resize_pos_antialias(pos, src, dst)
    grid = pos[1:].reshape(src[0], src[1], -1).double()
    if mode == "bicubic":
        ratios = (src[0] / dst[0], src[1] / dst[1])
    elif mode == "bicubic_offset":
        ratios = (src[0] / (dst[0] + 0.1), src[1] / (dst[1] + 0.1))
    else:
        raise ValueError(mode)
    grid = _bicubic_1d(_bicubic_1d(grid, 0, dst[0], ratios[0]), 1, dst[1], ratios[1])
    return torch.cat([pos[:1], grid.reshape(dst[0] * dst[1], -1).to(pos.dtype)])


def vit_stream(clip, image, skip_last, pos_mode):
    """ONE image through patch embedding and all blocks but the last ``skip_last`` (plain CLIP).

    Returns (x (1 + h*w, C) entering the first skipped block, (h, w)).
    """
    vis = clip.visual
    p = vis.conv1.kernel_size[0]
    patches = F.conv2d(image[None], vis.conv1.weight, stride=p)[0]  # (C, h, w)
    c, h, w = patches.shape
    x = torch.cat([vis.class_embedding[None], patches.reshape(c, h * w).t()])
    x = x + resize_pos_as(vis.positional_embedding, tuple(vis.grid_size), (h, w), pos_mode)
    x = layer_norm(x, vis.ln_pre)
    blocks = list(vis.transformer.resblocks)
    for block in blocks[:len(blocks) - skip_last]:
        q, k, v = qkv(block, x)
        x = x + out_proj(block, multi_head(q, k, v, block.attn.num_heads))
        x = x + mlp(block, layer_norm(x, block.ln_2))
    return x, (h, w)


def qkv(block, x):
    """q, k, v (N, C) each, from ln_1(x) with the block's packed in-projection split in three."""
    c = x.shape[-1]
    W, bias = block.attn.in_proj_weight, block.attn.in_proj_bias
    hx = layer_norm(x, block.ln_1)
    return tuple(F.linear(hx, W[i * c:(i + 1) * c], bias[i * c:(i + 1) * c]) for i in range(3))


def out_proj(block, a):
    return F.linear(a, block.attn.out_proj.weight, block.attn.out_proj.bias)


def project(clip, x):
    return layer_norm(x, clip.visual.ln_post) @ clip.visual.proj


def per_token_attention(queries, keys, values, heads, logit_bias=None):
    """For every head and every query token t: softmax(q_t · k_j / √d + bias[t, j]) over j, times v.

    queries (N, C), keys/values (M, C), logit_bias (N, M) or None -> (N, C)."""
    n, c = queries.shape
    d = c // heads
    out = torch.empty(n, c, dtype=values.dtype)
    for head in range(heads):
        cols = slice(head * d, (head + 1) * d)
        for t in range(n):
            logits = keys[:, cols] @ queries[t, cols] / math.sqrt(d)
            if logit_bias is not None:
                logits = logits + logit_bias[t]
            weights = torch.exp(logits - logits.max())
            out[t, cols] = (weights / weights.sum()) @ values[:, cols]
    return out


def vanilla_tokens(clip, image, pos_mode="bicubic_offset"):
    """Plain CLIP: every block unchanged, ln_post and proj on every token."""
    x, _ = vit_stream(clip, image, 0, pos_mode)
    return project(clip, x)


def maskclip_tokens(clip, image, pos_mode="bicubic"):
    """MaskCLIP's code: last block, patch t -> z = x_t + P(v_t), then z + MLP(ln_2(z)); CLS from the
    unchanged block."""
    x, _ = vit_stream(clip, image, 1, pos_mode)
    block = clip.visual.transformer.resblocks[-1]
    q, k, v = qkv(block, x)
    out = torch.empty_like(x)
    for t in range(x.shape[0]):
        if t == 0:
            a = per_token_attention(q[:1], k, v, block.attn.num_heads)[0]
        else:
            a = v[t]
        z = x[t] + out_proj(block, a)
        out[t] = z + mlp(block, layer_norm(z, block.ln_2))
    return project(clip, out)


def sclip_tokens(clip, image, pos_mode="bicubic_offset"):
    """SCLIP's code: last block attention (softmax(q qᵀ s) + softmax(k kᵀ s)) v, residual and MLP kept."""
    x, _ = vit_stream(clip, image, 1, pos_mode)
    block = clip.visual.transformer.resblocks[-1]
    heads = block.attn.num_heads
    q, k, v = qkv(block, x)
    a = per_token_attention(q, q, v, heads) + per_token_attention(k, k, v, heads)
    x = x + out_proj(block, a)
    return project(clip, x + mlp(block, layer_norm(x, block.ln_2)))


def clearclip_tokens(clip, image, pos_mode="bicubic_offset"):
    """ClearCLIP's code: last block output P(softmax(q qᵀ s) v) alone."""
    x, _ = vit_stream(clip, image, 1, pos_mode)
    block = clip.visual.transformer.resblocks[-1]
    q, _, v = qkv(block, x)
    return project(clip, out_proj(block, per_token_attention(q, q, v, block.attn.num_heads)))


def naclip_tokens(clip, image, std=5.0, pos_mode="bicubic_offset"):
    """NACLIP's code: last block output P(softmax(k kᵀ s + G) v) alone; G[t, j] the Gaussian of the
    grid distance between patches t and j (peak 1), 0 where t or j is the CLS token."""
    x, (h, w) = vit_stream(clip, image, 1, pos_mode)
    block = clip.visual.transformer.resblocks[-1]
    _, k, v = qkv(block, x)
    bias = _neighbourhood_bias(h, w, std)
    return project(clip, out_proj(block, per_token_attention(k, k, v, block.attn.num_heads, bias)))


@functools.lru_cache(maxsize=8)
def _neighbourhood_bias(h, w, std):
    n = 1 + h * w
    bias = torch.zeros(n, n)
    for t in range(1, n):
        rt, ct = divmod(t - 1, w)
        for j in range(1, n):
            rj, cj = divmod(j - 1, w)
            bias[t, j] = math.exp(-((rt - rj) ** 2 + (ct - cj) ** 2) / (2 * std ** 2))
    return bias


def maskclip_resnet_tokens(clip, image, pos_mode="bicubic"):
    """MaskCLIP's ResNet head: spatial token t -> c_proj(v_proj(f_t)) of the layer-4 feature, no
    positional embedding; CLS: the attention pool's ordinary output."""
    vis = clip.visual
    x = vis.stem(image[None])
    for layer in (vis.layer1, vis.layer2, vis.layer3, vis.layer4):
        x = layer(x)
    feats = x[0].flatten(1).t()  # (h*w, C)
    pool = vis.attnpool
    cls = resnet_tokens(clip, image, surgery=False, pos_mode=pos_mode)[0]
    dense = [F.linear(F.linear(f, pool.v_proj.weight, pool.v_proj.bias), pool.c_proj.weight, pool.c_proj.bias)
             for f in feats]
    return torch.stack([cls, *dense])


# --- GEM and SC-CLIP (docs/methods.md), as their released code computes them -----------------------

def _cubic_pil(t, a=-0.5):
    """The cubic kernel of PIL's (and torch's antialiased) bicubic resampling, a = -0.5."""
    t = abs(t)
    if t < 1:
        return ((a + 2) * t - (a + 3)) * t * t + 1
    if t < 2:
        return (((t - 5) * t + 8) * t - 4) * a
    return 0.0


def _antialias_bicubic_1d(x, dim, out_len):
    """PIL-style resampling along ``dim``: output i centred at (i + 0.5) * in/out, the kernel widened by
    in/out when shrinking, taps beyond the border dropped and the weights renormalised."""
    n = x.shape[dim]
    scale = n / out_len
    support = 2.0 * max(scale, 1.0)
    stretch = 1.0 / max(scale, 1.0)
    rows = []
    for i in range(out_len):
        centre = scale * (i + 0.5)
        lo, hi = max(int(centre - support + 0.5), 0), min(int(centre + support + 0.5), n)
        weights = [_cubic_pil((j - centre + 0.5) * stretch) for j in range(lo, hi)]
        total = sum(weights)
        rows.append(sum(w / total * x.select(dim, j) for w, j in zip(weights, range(lo, hi))))
    return torch.stack(rows, dim=dim)


def resize_pos_antialias(pos, src, dst):
    """``bicubic_antialias`` (GEM's code): (1 + src_h*src_w, C) -> (1 + h*w, C), CLS kept."""
    src, dst = tuple(src), tuple(dst)
    if src == dst:
        return pos
    grid = pos[1:].reshape(src[0], src[1], -1).double()
    grid = _antialias_bicubic_1d(_antialias_bicubic_1d(grid, 0, dst[0]), 1, dst[1])
    return torch.cat([pos[:1], grid.reshape(dst[0] * dst[1], -1).to(pos.dtype)])


def _embed(clip, image, pos):
    """ONE image -> ln_pre(patch tokens + CLS + positional embedding ``pos(grid)``), and the grid."""
    vis = clip.visual
    p = vis.conv1.kernel_size[0]
    patches = F.conv2d(image[None], vis.conv1.weight, stride=p)[0]  # (C, h, w)
    c, h, w = patches.shape
    x = torch.cat([vis.class_embedding[None], patches.reshape(c, h * w).t()])
    x = x + pos((h, w))
    return layer_norm(x, vis.ln_pre), (h, w)


def _plain_block(block, x):
    q, k, v = qkv(block, x)
    x = x + out_proj(block, multi_head(q, k, v, block.attn.num_heads))
    return x + mlp(block, layer_norm(x, block.ln_2))


def block_outputs(clip, image, pos):
    """ONE image through every block but the last, plain CLIP: [output of block 0, ..., of block L-2]
    and the grid (SC-CLIP's feats_list)."""
    x, grid = _embed(clip, image, pos)
    outs = []
    for block in list(clip.visual.transformer.resblocks)[:-1]:
        x = _plain_block(block, x)
        outs.append(x)
    return outs, grid


def _unit_rows(z):
    return z / z.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def gem_tokens(clip, image, depth=7, iters=1, temp=None, ignore_residual=False, pos_mode="bicubic_antialias"):
    """GEM's code for ONE image -> (1 + h*w, D).

    The original stream runs plain CLIP blocks; over the last depth - 1 blocks a second stream g (starting as
    the original stream entering the first of them) adds, per block, out_proj of the mean over p in (v, k, q)
    of A_p v, per head: z = p; iters times z <- softmax(t z^ z^T) z^ (z^ = rows of z normalised), then
    A_p = softmax(t z^ z^T); t = mean over tokens of |ln_1(x)| / sqrt(d) unless ``temp``. No MLP on g.
    With ``ignore_residual`` (ClearCLIP's copy) g is replaced instead of added to.
    """
    vis = clip.visual
    if pos_mode == "bicubic_antialias":
        pos = lambda grid: resize_pos_antialias(vis.positional_embedding, tuple(vis.grid_size), grid)  # noqa: E731
    else:
        pos = lambda grid: resize_pos_as(vis.positional_embedding, tuple(vis.grid_size), grid, pos_mode)  # noqa: E731
    x, _ = _embed(clip, image, pos)
    blocks = list(vis.transformer.resblocks)
    first = len(blocks) - (depth - 1)
    g = None
    for index, block in enumerate(blocks):
        if index < first:
            x = _plain_block(block, x)
            continue
        if g is None:
            g = x.clone()
        heads = block.attn.num_heads
        u = layer_norm(x, block.ln_1)
        q, k, v = qkv(block, x)
        d = q.shape[-1] // heads
        t = temp if temp is not None else float(sum(u[i].norm() for i in range(u.shape[0])) / u.shape[0]) / math.sqrt(d)
        out = torch.empty_like(v)
        for head in range(heads):
            cols = slice(head * d, (head + 1) * d)
            paths = []
            for p in (v, k, q):
                z = p[:, cols]
                for _ in range(iters):
                    zn = _unit_rows(z)
                    z = torch.softmax(t * zn @ zn.t(), dim=-1) @ zn
                zn = _unit_rows(z)
                paths.append(torch.softmax(t * zn @ zn.t(), dim=-1) @ v[:, cols])
            out[:, cols] = (paths[0] + paths[1] + paths[2]) / 3
        branch = out_proj(block, out)
        g = branch if ignore_residual else g + branch
        x = _plain_block(block, x)  # the original stream, plain CLIP
    return project(clip, g)


def _repair(tokens, grid, anomalous):
    """Each anomalous (row, col) of the (h*w, C) patch tokens -> the mean of its in-grid 3x3 neighbours that
    are not anomalous; kept when it has none."""
    h, w = grid
    out = tokens.clone()
    for r, c in anomalous:
        neighbours = [tokens[rr * w + cc] for rr in range(r - 1, r + 2) for cc in range(c - 1, c + 2)
                      if (rr, cc) != (r, c) and 0 <= rr < h and 0 <= cc < w and (rr, cc) not in anomalous]
        if neighbours:
            out[r * w + c] = torch.stack(neighbours).mean(0)
    return out


def _thresholded_mean(weights, tokens, beta):
    """Row i: sum_j [W_ij >= beta] W_ij tokens_j / (sum_j [W_ij >= beta] W_ij + 1e-6)."""
    kept = torch.where(weights >= beta, weights, torch.zeros_like(weights))
    return (kept / (kept.sum(-1, keepdim=True) + 1e-6)) @ tokens


def sc_clip_tokens(clip, image, pre, post, start, end, res_cls, beta=0.4, num_anomalies=10,
                   pos_mode="bicubic_offset"):
    """SC-CLIP's newest code for ONE image -> (1 + h*w, D): CLS = plain CLIP's, then the patch tokens.

    X_i = output of block i; anomalies = the num_anomalies patches of X_{L-2} with the largest norm; P = repaired
    patches; S = cos of repaired X_pre patches; P <- thresholded-mean(S, P); per head
    A = (softmax over the row of 3 (S - mean S) with negatives masked + softmax(k k^T / sqrt d)) / 2;
    Y = thr-mean(cos X_post, out_proj(A v of ln_1(P)) + res_cls cls); Y += the same for R = sum X_start..X_{end-1}.
    """
    vis = clip.visual
    pos = lambda grid: resize_pos_as(vis.positional_embedding, tuple(vis.grid_size), grid, pos_mode)  # noqa: E731
    outs, (h, w) = block_outputs(clip, image, pos)
    last = list(vis.transformer.resblocks)[-1]
    heads = last.attn.num_heads
    x = outs[-1]
    norms = x[1:].norm(dim=-1)
    order = torch.sort(norms, descending=True).indices[:num_anomalies].tolist()
    anomalous = {(i // w, i % w) for i in order}
    patches = _repair(x[1:], (h, w), anomalous)

    fp = _unit_rows(_repair(outs[pre][1:], (h, w), anomalous))
    mid = fp @ fp.t()
    patches = _thresholded_mean(mid, patches, beta)
    centred = 3.0 * (mid - mid.mean())
    prior = torch.softmax(torch.where(centred < 0, torch.full_like(centred, float("-inf")), centred), dim=-1)

    def attend(tokens):
        _, k, v = qkv(last, tokens)
        d = k.shape[-1] // heads
        out = torch.empty_like(v)
        for head in range(heads):
            cols = slice(head * d, (head + 1) * d)
            key_key = torch.softmax(k[:, cols] @ k[:, cols].t() / math.sqrt(d), dim=-1)
            out[:, cols] = ((prior + key_key) / 2) @ v[:, cols]
        return out_proj(last, out)

    fq = _unit_rows(outs[post][1:])
    after = fq @ fq.t()
    y = _thresholded_mean(after, attend(patches) + res_cls * x[0], beta)
    fused = outs[start].clone()
    for i in range(start + 1, end):
        fused = fused + outs[i]
    y = y + _thresholded_mean(after, attend(fused[1:]) + res_cls * fused[0], beta)
    # CLS: the last block unchanged, for the CLS query
    q, k, v = qkv(last, x)
    cls = x[0] + out_proj(last, per_token_attention(q[:1], k, v, heads)[0])
    cls = cls + mlp(last, layer_norm(cls, last.ln_2))
    return project(clip, torch.cat([cls[None], y]))
