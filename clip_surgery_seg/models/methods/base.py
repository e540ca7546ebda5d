"""The seam shared by every training-free method: the image-token strategy and its ViT building blocks."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Dict, Iterable, Iterator, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError
from ..pos_embed import check_pos_interp

#: ``(h, w, dtype, device) -> (1 + h*w, C)``: the image tower's positional embedding for an h x w grid.
PosEmbed = Callable[[int, int, torch.dtype, torch.device], torch.Tensor]


@dataclass(frozen=True)
class TextContext:
    """The class texts, for a method that reads them while it computes the image tokens.

    Most methods never see the text. A method whose :attr:`ImageTokenMethod.needs_text` is true
    (ResCLIP: a provisional segmentation steers its last block) receives one with every call;
    the segmentor builds it from the same rows and scale it scores and thresholds with, so it
    adds no setting of its own: the results already record everything it is made of (the
    templates, the class-name rows, the protocol's ``logit_scale`` or the CLIP weights' own).

    Attributes:
        text: (R, D) L2-normalised embeddings of every class-name row (each synonym a row of its
            own), in the segmentor's row order; row 0 is the first synonym of class 0.
        logit_scale: the scale of the softmax over those rows (the protocol's ``logit_scale``,
            else the CLIP's own).
    """

    text: torch.Tensor
    logit_scale: float


class ImageTokenMethod:
    """How a frozen CLIP image tower turns images into dense tokens.

    A method is called as ``method(visual, images, pos_embed)`` with ``visual`` an open_clip
    ``VisionTransformer`` (or ``ModifiedResNet`` where :attr:`supports_resnet`), ``images``
    (B, 3, H, W) normalised, H and W multiples of the patch size (not necessarily equal), and
    ``pos_embed`` the positional embedding resized the way :attr:`pos_interp` says. It returns
    (B, 1 + h*w, D): the CLS token first, then the patch tokens row-major, after ``ln_post`` and the
    projection, not L2-normalised. It never changes the wrapped weights.

    Subclasses set :attr:`name` (the registry key), :attr:`label` (as papers print it), :attr:`arxiv`
    (the method's paper: tables list methods in its order, i.e. by publication),
    :attr:`default_templates` (the prompt templates the method's released code uses: what the
    segmentor uses unless the config or the protocol fixes a set), :attr:`default_postprocess`
    (post-processing its code applies by default, or None; for the record only: the harness applies
    none unless the config asks) and :attr:`supports_resnet`, and implement :meth:`vit_tokens` (and
    :meth:`resnet_tokens` where the method's code supports ResNet CLIPs).

    A method that needs the class texts to compute its tokens sets :attr:`needs_text` (a class
    attribute, or a property where it depends on the parameters). It is then called as
    ``method(visual, images, pos_embed, text=TextContext(...))`` and its :meth:`vit_tokens` takes
    that ``text`` keyword; calling it without one is an error. Every other method is called, and
    implemented, without it (``text`` given to them is ignored), so a method that does not read
    the text never changes. The segmentor passes the context to the methods that ask
    (``CLIPSurgerySegmentor.text_context``); :meth:`SurgeryCLIP.encode_image_tokens` forwards it.

    Args:
        pos_interp: how the positional embedding is resized for grids other than the pretraining
            one (:data:`~clip_surgery_seg.models.pos_embed.POS_INTERPOLATIONS`); each method
            defaults to what its released code does.
    """

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    arxiv: ClassVar[str] = ""  # e.g. "2304.05653"
    # the protocol its published numbers were made under (``tools/reproduce.py --protocol native``),
    # with :attr:`default_postprocess`; None: not published (the harness's default protocol)
    native_protocol: ClassVar[Optional[str]] = None
    default_templates: ClassVar[str] = "imagenet_80"
    default_postprocess: ClassVar[Optional[Dict[str, Any]]] = None
    supports_resnet: ClassVar[bool] = False
    default_pos_interp: ClassVar[str] = "bicubic_offset"
    #: True: :meth:`vit_tokens` takes ``text`` (a :class:`TextContext`), and the method cannot run without it
    needs_text: ClassVar[bool] = False

    def __init__(self, pos_interp: Optional[str] = None) -> None:
        self.pos_interp = check_pos_interp(pos_interp or self.default_pos_interp)

    def params(self) -> Dict[str, Any]:
        """The method's parameters, as its config dict takes them (without ``type``)."""
        return {"pos_interp": self.pos_interp}

    def config(self) -> Dict[str, Any]:
        """``{"type": name, **params}``: builds an equal method, and is what results record."""
        return {"type": self.name, **self.params()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"

    def check(self, visual: nn.Module) -> None:
        """Raise :class:`ConfigError` if the method cannot run on this image tower."""
        if is_resnet(visual):
            if not self.supports_resnet:
                raise ConfigError(f"method {self.name!r} supports ViT CLIPs only (its released code has no "
                                  "ResNet path); use a ViT model or method vanilla, maskclip or clip_surgery")
            return
        check_vit_supported(visual)

    def __call__(self, visual: nn.Module, images: torch.Tensor, pos_embed: PosEmbed,
                 text: Optional[TextContext] = None) -> torch.Tensor:
        """(B, 3, H, W) normalised images -> (B, 1 + h*w, D) tokens, CLS first (see the class doc).

        ``text``: the class texts, passed on to a method that :attr:`needs_text` (and required by
        it); ignored by the others.
        """
        if is_resnet(visual):
            return self.resnet_tokens(visual, images, pos_embed)
        if self.needs_text:
            if text is None:
                raise ValueError(f"method {self.name!r} reads the class texts: call it with "
                                 "text=TextContext(rows, logit_scale) (the segmentor does)")
            return self.vit_tokens(visual, images, pos_embed, text=text)
        return self.vit_tokens(visual, images, pos_embed)

    def vit_tokens(self, visual: nn.Module, images: torch.Tensor, pos_embed: PosEmbed) -> torch.Tensor:
        """(B, 3, H, W) -> (B, 1 + h*w, D) for an open_clip ``VisionTransformer``."""
        raise NotImplementedError

    def resnet_tokens(self, visual: nn.Module, images: torch.Tensor, pos_embed: PosEmbed) -> torch.Tensor:
        """(B, 3, H, W) -> (B, 1 + h*w, D) for an open_clip ``ModifiedResNet`` (H, W multiples of 32)."""
        raise ConfigError(f"method {self.name!r} does not support ResNet CLIPs")


# --- ViT building blocks ------------------------------------------------------------------------

def is_resnet(visual: nn.Module) -> bool:
    from open_clip.modified_resnet import ModifiedResNet

    return isinstance(visual, ModifiedResNet)


def attention_weights(attn: nn.Module) -> Tuple[torch.Tensor, torch.Tensor, nn.Linear, int]:
    """(packed in-proj weight (3C, C), its bias (3C,), out-proj, heads) of a CLIP attention layer."""
    from open_clip.transformer import Attention

    if isinstance(attn, nn.MultiheadAttention):
        if not attn._qkv_same_embed_dim or attn.bias_k is not None:
            raise NotImplementedError("these methods need an attention with one packed q/k/v projection")
        return attn.in_proj_weight, attn.in_proj_bias, attn.out_proj, attn.num_heads
    if isinstance(attn, Attention):
        plain = (attn.logit_scale is None and attn.head_scale is None
                 and all(isinstance(m, nn.Identity) for m in (attn.ln_q, attn.ln_k, attn.ln_inner)))
        if not plain:
            raise NotImplementedError("these methods support plain softmax attention only (no qk-norm, "
                                      "scaled-cosine, head-scale or inner-norm attention)")
        return attn.in_proj_weight, attn.in_proj_bias, attn.out_proj, attn.num_heads
    raise NotImplementedError(f"unsupported attention layer {type(attn).__name__}")


def check_vit_supported(visual: nn.Module) -> None:
    """Raise NotImplementedError naming the feature if ``visual`` is not an OpenAI-style ViT."""
    if getattr(visual, "attn_pool", None) is not None:
        raise NotImplementedError("these methods do not support ViTs with an attentional pooler")
    if getattr(visual, "pool_type", "tok") != "tok":
        raise NotImplementedError(f"these methods need CLS-token pooling, not pool_type={visual.pool_type!r}")
    for block in visual.transformer.resblocks:
        attention_weights(block.attn)
        if not isinstance(getattr(block, "ln_attn", nn.Identity()), nn.Identity):
            raise NotImplementedError("these methods do not support a norm after attention (scale_attn)")


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, N, C) -> (B, heads, N, C // heads)."""
    b, n, c = x.shape
    return x.view(b, n, heads, c // heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, heads, N, d) -> (B, N, heads * d)."""
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)


def project_qkv(block: nn.Module, u: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-head ``q, k, v`` of an already layer-normed input through a block's packed in-projection
    (bias included).

    Args:
        block: an open_clip residual attention block; u: (B, N, C), e.g. ``block.ln_1(x)``.

    Returns:
        ``(q, k, v)``, each (B, heads, N, C // heads).
    """
    in_w, in_b, _, heads = attention_weights(block.attn)
    q, k, v = F.linear(u, in_w, in_b).chunk(3, dim=-1)
    return split_heads(q, heads), split_heads(k, heads), split_heads(v, heads)


def block_qkv(block: nn.Module, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-head ``q, k, v`` of ``ln_1(x)`` through a block's packed in-projection.

    Args:
        block: an open_clip residual attention block; x: (B, N, C) residual stream entering it.

    Returns:
        ``(q, k, v)``, each (B, heads, N, C // heads).
    """
    return project_qkv(block, block.ln_1(x))


def attention_out(block: nn.Module, heads_out: torch.Tensor) -> torch.Tensor:
    """(B, heads, N, d) per-head attention outputs -> (B, N, C) after the out-projection (and the
    block's layer scale, an identity for OpenAI weights)."""
    out_proj = attention_weights(block.attn)[2]
    return block.ls_1(out_proj(merge_heads(heads_out)))


def mlp_residual(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``x + MLP(ln_2(x))``: the second half of a block; x (B, N, C)."""
    return x + block.ls_2(block.mlp(block.ln_2(x)))


def vit_embed(visual: nn.Module, images: torch.Tensor, pos_embed: PosEmbed) -> Tuple[torch.Tensor, Tuple[int, int]]:
    """Patch embedding, CLS token, positional embedding and ``ln_pre``: the stream entering block 0.

    Args:
        visual: open_clip ``VisionTransformer``; images: (B, 3, H, W), H and W multiples of the patch size.

    Returns:
        ``(x, (h, w))``: x (B, 1 + h*w, C), CLS first, patches row-major; ``(h, w)`` the patch grid.
    """
    x = visual.conv1(images)  # (B, width, h, w)
    b, width, h, w = x.shape
    x = x.flatten(2).transpose(1, 2)  # (B, h*w, width)
    cls = visual.class_embedding.to(x.dtype).view(1, 1, width).expand(b, 1, width)
    x = torch.cat([cls, x], dim=1) + pos_embed(h, w, x.dtype, x.device)
    return visual.ln_pre(x), (h, w)


def _run_blocks(visual: nn.Module, x: torch.Tensor, count: int) -> Iterator[torch.Tensor]:
    """Run the first ``count`` blocks unchanged on x (B, N, C); yields the (B, N, C) stream after each.

    The blocks are called in the transformer's own layout (open_clip before 2.24 is sequence-first),
    the yielded streams are batch-first.
    """
    transformer = visual.transformer
    batch_first = getattr(transformer, "batch_first", True)
    if not batch_first:
        x = x.transpose(0, 1)
    for block in transformer.resblocks[:count]:
        x = block(x)
        yield x if batch_first else x.transpose(0, 1)


def vit_stream(visual: nn.Module, images: torch.Tensor, pos_embed: PosEmbed,
               skip_last: int) -> Tuple[torch.Tensor, Tuple[int, int]]:
    """Embed ``images`` and run all blocks but the last ``skip_last`` unchanged.

    Args:
        visual: open_clip ``VisionTransformer``; images: (B, 3, H, W).
        skip_last: number of final blocks left for the method (0: run them all).

    Returns:
        ``(x, (h, w))``: x (B, 1 + h*w, C) the residual stream entering block ``L - skip_last``,
        CLS first, patches row-major; ``(h, w)`` the patch grid.
    """
    x, grid = vit_embed(visual, images, pos_embed)
    for x in _run_blocks(visual, x, len(visual.transformer.resblocks) - skip_last):  # noqa: B007
        pass  # x ends as the last stream (the embedding itself when no block runs)
    return x, grid


def vit_hidden_states(visual: nn.Module, images: torch.Tensor, pos_embed: PosEmbed,
                      keep: Iterable[int], skip_last: int = 0) -> Tuple[Dict[int, torch.Tensor], Tuple[int, int]]:
    """The residual streams of an unchanged forward at the depths ``keep``, for methods that read
    intermediate layers.

    State ``i`` is the stream *entering* block ``i``: state 0 is the ``ln_pre`` output, state ``i``
    the output of block ``i - 1`` (0-based), state ``L`` the output of the last block. Only the
    blocks up to the deepest kept state (and at most ``L - skip_last`` of them) are run, and only
    the kept states are held in memory.

    Args:
        visual: open_clip ``VisionTransformer``; images: (B, 3, H, W).
        keep: state indices in ``[0, L - skip_last]``.
        skip_last: final blocks never run (their states cannot be kept).

    Returns:
        ``(states, (h, w))``: ``{i: (B, 1 + h*w, C)}`` for every ``i`` in ``keep``; the patch grid.

    Raises:
        ValueError: a state index outside ``[0, L - skip_last]``.
    """
    keep = set(keep)
    limit = len(visual.transformer.resblocks) - skip_last
    bad = sorted(i for i in keep if not 0 <= i <= limit)
    if bad:
        raise ValueError(f"hidden states {bad} are outside [0, {limit}] (the blocks run)")
    x, grid = vit_embed(visual, images, pos_embed)
    states = {0: x} if 0 in keep else {}
    if keep:
        for i, x in enumerate(_run_blocks(visual, x, max(keep)), start=1):
            if i in keep:
                states[i] = x
    return states, grid


def vit_project(visual: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(B, N, C) final stream -> (B, N, D): ``ln_post`` then the projection, for every token."""
    x = visual.ln_post(x)
    return x @ visual.proj if visual.proj is not None else x


def block_cls_token(block: nn.Module, x: torch.Tensor,
                    qkv: Optional[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = None) -> torch.Tensor:
    """The CLS output of an unchanged block: ordinary q-k attention for the CLS query, the residual
    and the MLP. x: (B, N, C) the stream entering the block (CLS first) -> (B, 1, C); ``qkv``: the
    block's :func:`block_qkv` of ``x`` if the caller has it already."""
    q, k, v = qkv if qkv is not None else block_qkv(block, x)
    cls = x[:, :1] + attention_out(block, F.scaled_dot_product_attention(q[:, :, :1], k, v))
    return mlp_residual(block, cls)


# --- token-graph building blocks (affinities between patch tokens on their grid) -----------------

def cosine_affinity(tokens: torch.Tensor) -> torch.Tensor:
    """(B, N, C) -> (B, N, N) float32 cosine similarities between every two tokens of an image.

    In float32 whatever the input, also under autocast: methods threshold these values (a
    reduced-precision diagonal below an off-diagonal entry would change which entries pass).
    """
    with torch.autocast(device_type=tokens.device.type, enabled=False):
        unit = F.normalize(tokens.float(), dim=-1)
        return unit @ unit.transpose(1, 2)


def propagate(tokens: torch.Tensor, weights: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Every token replaced by the weighted mean of the tokens, row ``i`` of ``weights`` giving the
    weights of token ``i``: ``(W / (W.sum(-1) + eps)) @ tokens``.

    Args:
        tokens: (B, N, C); weights: (B, N, N) non-negative; eps: keeps an all-zero row finite (its
            token becomes 0).

    Returns:
        (B, N, C) in the tokens' dtype.
    """
    weights = weights / (weights.sum(dim=-1, keepdim=True) + eps)
    return weights.to(tokens.dtype) @ tokens


def top_norm_mask(tokens: torch.Tensor, count: int) -> torch.Tensor:
    """(B, N, C) -> (B, N) bool: per image the ``count`` tokens of largest L2 norm (all of them when
    ``count >= N``, none when 0)."""
    b, n, _ = tokens.shape
    mask = torch.zeros(b, n, dtype=torch.bool, device=tokens.device)
    count = min(count, n)
    if count > 0:
        mask.scatter_(1, tokens.float().norm(dim=-1).topk(count, dim=1).indices, True)
    return mask


def fill_from_neighbours(tokens: torch.Tensor, grid: Tuple[int, int], mask: torch.Tensor) -> torch.Tensor:
    """Masked tokens replaced by the mean of their unmasked 3 x 3 grid neighbours.

    A token's neighbours are the (up to) 8 tokens around it on the patch grid (none beyond the
    border); masked neighbours do not count. A masked token without an unmasked neighbour keeps its
    value; unmasked tokens are unchanged.

    Args:
        tokens: (B, h*w, C) patch tokens, row-major on the grid; grid: ``(h, w)``;
            mask: (B, h*w) bool, the tokens to replace.

    Returns:
        (B, h*w, C).
    """
    b, n, c = tokens.shape
    h, w = grid
    if n != h * w:
        raise ValueError(f"{n} tokens do not fill a {h} x {w} grid")
    keep = (~mask).to(tokens.dtype).view(b, 1, h, w)
    values = F.pad(tokens.transpose(1, 2).reshape(b, c, h, w) * keep, (1, 1, 1, 1))
    counts = F.pad(keep, (1, 1, 1, 1))
    total = torch.zeros(b, c, h, w, dtype=tokens.dtype, device=tokens.device)
    valid = torch.zeros(b, 1, h, w, dtype=tokens.dtype, device=tokens.device)
    for dy in range(3):
        for dx in range(3):
            if dy == dx == 1:
                continue
            total = total + values[:, :, dy:dy + h, dx:dx + w]
            valid = valid + counts[:, :, dy:dy + h, dx:dx + w]
    mean = (total / valid.clamp_min(1)).reshape(b, c, n).transpose(1, 2)
    replace = (mask & (valid.view(b, n) > 0)).unsqueeze(-1)
    return torch.where(replace, mean, tokens)


# --- ResNet building blocks ---------------------------------------------------------------------

def resnet_stream(visual: nn.Module, images: torch.Tensor,
                  pos_embed: PosEmbed) -> Tuple[torch.Tensor, torch.Tensor, Tuple[int, int]]:
    """The attention pool's input of a ``ModifiedResNet``.

    Returns:
        ``(feats, x, (h, w))``: feats (B, h*w, C) the layer-4 features row-major; x (B, 1 + h*w, C)
        their mean prepended and the positional embedding added (what the pool attends over).
    """
    x = visual.stem(images)
    x = visual.layer4(visual.layer3(visual.layer2(visual.layer1(x))))  # (B, C, h, w)
    b, c, h, w = x.shape
    feats = x.flatten(2).transpose(1, 2)  # (B, h*w, C)
    x = torch.cat([feats.mean(dim=1, keepdim=True), feats], dim=1) + pos_embed(h, w, feats.dtype, feats.device)
    return feats, x, (h, w)


def attnpool_out(pool: nn.Module, heads_out: torch.Tensor) -> torch.Tensor:
    """(B, heads, N, d) -> (B, N, D) through the pool's ``c_proj``."""
    return pool.c_proj(merge_heads(heads_out))
