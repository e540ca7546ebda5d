"""SurgeryCLIP: a frozen open_clip CLIP with a training-free method's inference path (docs/method.md §1-3, docs/methods.md)."""
from __future__ import annotations

import sys
from typing import Callable, Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from .methods import ImageTokenMethod, MethodSpec, TextContext, build_method
from .methods.base import is_resnet
from .pos_embed import resize_pos_embed
from .templates import resolve_templates


class SurgeryCLIP(nn.Module):
    """A wrapped open_clip CLIP whose image tokens come from a training-free method; inference only.

    The wrapped model's weights are shared, never changed, and its own ``encode_image`` keeps giving
    the ordinary CLIP embedding.

    Args:
        clip_model: an open_clip ``CLIP`` with an OpenAI-style ViT or ModifiedResNet image tower.
        tokenizer: its tokenizer (list of strings -> (n, context) token ids).
        method: the image-token method: a name (``"sclip"``), a dict ``{"type": name, **params}``
            or a method object (:mod:`clip_surgery_seg.models.methods`); default CLIP Surgery at
            depth 6.
        text_batch_size: prompts encoded per forward pass.
    """

    def __init__(self, clip_model: nn.Module, tokenizer: Callable,
                 method: MethodSpec = "clip_surgery", text_batch_size: int = 1024) -> None:
        super().__init__()
        from open_clip.transformer import VisionTransformer

        visual = clip_model.visual
        if not isinstance(visual, VisionTransformer) and not is_resnet(visual):
            raise NotImplementedError(f"these methods support open_clip ViT and ModifiedResNet image "
                                      f"towers, not {type(visual).__name__}")
        self.method: ImageTokenMethod = build_method(method)
        self.method.check(visual)
        if is_resnet(visual):
            self.arch = "resnet"
            self.patch_size: Tuple[int, int] = (32, 32)
            side = round((visual.attnpool.positional_embedding.shape[0] - 1) ** 0.5)
            self._pretrain_grid = (side, side)
        else:
            self.arch = "vit"
            self.patch_size = tuple(visual.patch_size)
            self._pretrain_grid = tuple(visual.grid_size)
        self.clip = clip_model
        self.tokenizer = tokenizer
        self.text_batch_size = text_batch_size
        self._pos_cache: Dict[tuple, torch.Tensor] = {}
        self.eval()

    @property
    def embed_dim(self) -> int:
        return int(self.clip.visual.output_dim)

    def _pos_embed(self, h: int, w: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """(1 + h*w, C) positional embedding for an h x w grid; cached per grid, never stored back."""
        visual = self.clip.visual
        param = visual.positional_embedding if self.arch == "vit" else visual.attnpool.positional_embedding
        mode = self.method.pos_interp
        key = (h, w, dtype, device, param.data_ptr(), mode)
        if key not in self._pos_cache:
            # interpolated as the method's released code does (docs/method.md §1, docs/methods.md)
            pos = resize_pos_embed(param.detach().float(), self._pretrain_grid, (h, w), mode)
            self._pos_cache[key] = pos.to(device=device, dtype=dtype)
        return self._pos_cache[key]

    @torch.inference_mode()
    def encode_image_tokens(self, images: torch.Tensor, text: Optional[TextContext] = None) -> torch.Tensor:
        """(B, 3, H, W) normalised images -> (B, 1 + h*w, D) tokens (not L2-normalised).

        H and W must be multiples of the patch size (32 for ResNets); they need not be equal.
        ``text``: the class texts, for a method that reads them (``method.needs_text``, e.g.
        ResCLIP; required there); the other methods ignore it.
        """
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images (B, 3, H, W), got {tuple(images.shape)}")
        ph, pw = self.patch_size
        if images.shape[-2] % ph or images.shape[-1] % pw:
            raise ValueError(f"image size {tuple(images.shape[-2:])} is not a multiple of the patch "
                             f"size {self.patch_size}; pad it first")
        return self.method(self.clip.visual, images, self._pos_embed, text=text)

    @torch.inference_mode()
    def encode_prompts(self, prompts: Sequence[str], progress: Union[bool, str] = False) -> torch.Tensor:
        """(P,) strings -> (P, D) L2-normalised text embeddings, in batches of ``text_batch_size``.

        ``progress``: a bar on stderr, prompt by prompt (a string: its label); the text tower on a CPU
        takes minutes for a dataset's classes times a template set.
        """
        from tqdm import tqdm

        device = next(self.clip.parameters()).device
        tokens = self.tokenizer(list(prompts)).to(device)
        label = progress if isinstance(progress, str) else "encoding text"
        chunks = []
        with tqdm(total=len(tokens), desc=label, unit="prompts", dynamic_ncols=True, file=sys.stderr,
                  disable=not progress) as bar:
            for i in range(0, len(tokens), self.text_batch_size):
                chunks.append(self._encode_tokens(tokens[i:i + self.text_batch_size]))
                bar.update(len(chunks[-1]))
        return F.normalize(torch.cat(chunks).float(), dim=-1)

    def _encode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """CLIP's text tower on (P, context) tokens.

        For CLIP's causal, EOT-pooled text transformer the positions after the longest prompt's
        end-of-text token cannot change any pooled feature, so they are cut off: same numbers,
        several times faster for short prompts.
        """
        from open_clip.model import CLIP

        clip = self.clip
        if not (isinstance(clip, CLIP) and clip.text_pool_type == "argmax" and clip.attn_mask is not None):
            return clip.encode_text(tokens)
        length = int(tokens.argmax(dim=-1).max()) + 1
        tokens = tokens[:, :length]
        cast_dtype = clip.transformer.get_cast_dtype()
        x = clip.token_embedding(tokens).to(cast_dtype) + clip.positional_embedding[:length].to(cast_dtype)
        x = clip.transformer(x, attn_mask=clip.attn_mask[:length, :length])
        x = clip.ln_final(x)
        x = x[torch.arange(x.shape[0], device=x.device), tokens.argmax(dim=-1)]
        return clip.text_projection(x) if isinstance(clip.text_projection, nn.Linear) else x @ clip.text_projection

    @torch.inference_mode()
    def encode_text(self, classnames: Sequence[str],
                    templates: Union[str, Sequence[str]] = "clip_surgery_85", progress: bool = False) -> torch.Tensor:
        """Prompt-ensembled class embeddings (docs/method.md §3).

        Every template is formatted with every class name and encoded in batches; each prompt
        embedding is L2-normalised, averaged over templates, and the average L2-normalised.
        ``encode_text([""])`` gives the redundant feature ``r``. ``progress``: a bar on stderr.

        Returns:
            (K, D) float32.
        """
        templates = resolve_templates(templates)
        classnames = list(classnames)
        prompts = [template.format(name) for name in classnames for template in templates]
        label = f"encoding text ({len(classnames)} names x {len(templates)} templates)"
        emb = self.encode_prompts(prompts, label if progress else False).view(len(classnames), len(templates), -1)
        return F.normalize(emb.mean(dim=1), dim=-1)

    def forward(self, images: torch.Tensor, text: Optional[TextContext] = None) -> torch.Tensor:
        return self.encode_image_tokens(images, text)
