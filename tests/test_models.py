"""The surgery model against the naive reference of docs/method.md §1-4."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

import reference as ref
from clip_surgery_seg.errors import ConfigError
from clip_surgery_seg.models import (SurgeryCLIP, build_clip, feature_surgery,
                                     resolve_templates)
from clip_surgery_seg.models.templates import CLIP_SURGERY_85, IMAGENET_80

SIZES = [(224, 224), (448, 448), (224, 352)]


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("batch", [1, 3])
def test_vit_tokens_match_reference(tiny_vit, size, batch):
    clip, tok = tiny_vit
    model = SurgeryCLIP(clip, tok, method=dict(type="clip_surgery", depth=2))
    images = torch.randn(batch, 3, *size)
    out = model.encode_image_tokens(images)
    h, w = size[0] // 16, size[1] // 16
    assert out.shape == (batch, 1 + h * w, 32)
    with torch.no_grad():
        expected = torch.stack([ref.vit_tokens(clip, im, depth=2) for im in images])
    assert (out - expected).abs().max() < 1e-4


@pytest.mark.parametrize("depth", [0, 1, 3])
@pytest.mark.parametrize("new_path", ["vv", "identity"])
def test_vit_depths_and_variants(tiny_vit, depth, new_path):
    clip, tok = tiny_vit
    model = SurgeryCLIP(clip, tok, method=dict(type="clip_surgery", depth=depth, new_path_attention=new_path))
    images = torch.randn(2, 3, 96, 64)
    with torch.no_grad():
        expected = torch.stack([ref.vit_tokens(clip, im, depth=depth, new_path=new_path) for im in images])
    assert (model.encode_image_tokens(images) - expected).abs().max() < 1e-4


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("resnet_norm", [False, True])
def test_resnet_tokens_match_reference(tiny_rn, size, batch, resnet_norm):
    clip, tok = tiny_rn
    model = SurgeryCLIP(clip, tok, method=dict(type="clip_surgery", resnet_norm=resnet_norm))
    images = torch.randn(batch, 3, *size)
    out = model.encode_image_tokens(images)
    assert out.shape == (batch, 1 + (size[0] // 32) * (size[1] // 32), 32)
    with torch.no_grad():
        expected = torch.stack([ref.resnet_tokens(clip, im, resnet_norm=resnet_norm) for im in images])
    assert (out - expected).abs().max() < 1e-4


def test_vanilla_is_plain_clip(tiny_vit, tiny_rn):
    images = torch.randn(2, 3, 64, 64)  # the models' pretraining size: no position resizing
    for clip, tok in (tiny_vit, tiny_rn):
        tokens = SurgeryCLIP(clip, tok, method="vanilla").encode_image_tokens(images)
        with torch.no_grad():
            assert torch.allclose(tokens[:, 0], clip.encode_image(images), atol=1e-5)
    clip, tok = tiny_vit
    with torch.no_grad():
        vanilla = clip.visual.forward_intermediates(images, indices=1, normalize_intermediates=True,
                                                    output_fmt="NLC")["image_intermediates"][-1]
    tokens = SurgeryCLIP(clip, tok, method="vanilla").encode_image_tokens(images)
    assert torch.allclose(tokens[:, 1:], vanilla @ clip.visual.proj, atol=1e-5)
    clip, tok = tiny_rn
    tokens = SurgeryCLIP(clip, tok, method="vanilla").encode_image_tokens(images)
    with torch.no_grad():
        expected = torch.stack([ref.resnet_tokens(clip, im, surgery=False) for im in images])
    assert torch.allclose(tokens, expected, atol=1e-5)


def test_wrapped_clip_is_unchanged(tiny_vit):
    clip, tok = tiny_vit
    before = _state(clip)
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        embedding = clip.encode_image(images)
    model = SurgeryCLIP(clip, tok, method=dict(type="clip_surgery", depth=3))
    model.encode_image_tokens(torch.randn(2, 3, 128, 96))  # resized positions are cached, not stored
    model.encode_text(["cat"])
    after = clip.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert clip.visual.positional_embedding.shape[0] == 1 + 4 * 4
    with torch.no_grad():
        assert torch.equal(clip.encode_image(images), embedding)
    assert not list(model._parameters) and not list(model._buffers)


def test_real_vit_b16_shape():
    clip, tok = build_clip("ViT-B-16")
    model = SurgeryCLIP(clip, tok)
    images = torch.randn(2, 3, 224, 256)
    out = model.encode_image_tokens(images)
    assert out.shape == (2, 1 + 14 * 16, 512)
    with torch.no_grad():
        expected = torch.stack([ref.vit_tokens(clip, im, depth=6) for im in images])
    assert (out - expected).abs().max() < 1e-3
    # QuickGELU off for a plain ViT-B-16 config without OpenAI weights
    assert type(clip.visual.transformer.resblocks[0].mlp.gelu).__name__ == "GELU"


def test_bad_input_size(tiny_vit):
    model = SurgeryCLIP(*tiny_vit)
    with pytest.raises(ValueError, match="multiple of the patch size"):
        model.encode_image_tokens(torch.randn(1, 3, 100, 64))
    with pytest.raises(ConfigError, match="surgery depth"):
        SurgeryCLIP(*tiny_vit, method=dict(type="clip_surgery", depth=8))


def test_pos_embed_keeps_cls_and_matches_reference(tiny_vit):
    model = SurgeryCLIP(*tiny_vit)
    param = model.clip.visual.positional_embedding.detach()
    grid = tuple(model.clip.visual.grid_size)
    same = model._pos_embed(*grid, torch.float32, torch.device("cpu"))
    assert torch.equal(same, param)
    for size in ((grid[0] * 2, grid[1] + 3), (3, 5)):
        out = model._pos_embed(*size, torch.float32, torch.device("cpu"))
        assert out.shape == (1 + size[0] * size[1], param.shape[-1]) and torch.equal(out[0], param[0])
        assert torch.allclose(out, ref.resize_pos(param, grid, size), atol=1e-6)
    assert torch.equal(model.clip.visual.positional_embedding, param)  # never stored back


# --- text ---------------------------------------------------------------------------------------

def test_template_sets():
    assert len(IMAGENET_80) == 80 and len(set(IMAGENET_80)) == 80
    assert len(CLIP_SURGERY_85) == 85 and CLIP_SURGERY_85[:80] == IMAGENET_80
    assert IMAGENET_80[0] == "a bad photo of a {}." and CLIP_SURGERY_85[-1] == "this is one {} in the scene."
    assert resolve_templates(["a {} here."]) == ("a {} here.",)
    with pytest.raises(ValueError, match="did you mean clip_surgery_85"):
        resolve_templates("clip_surgery_58")
    with pytest.raises(ValueError, match="exactly one"):
        resolve_templates(["no placeholder"])


@pytest.mark.parametrize("templates", [["a photo of a {}.", "the {} in the scene.", "{}"], "imagenet_80"])
def test_encode_text_matches_reference(tiny_vit, templates):
    clip, tok = tiny_vit
    model = SurgeryCLIP(clip, tok, text_batch_size=7)  # several batches, one partial
    names = ["cat", "traffic light", "sky", ""]
    out = model.encode_text(names, templates)
    with torch.no_grad():
        expected = ref.text_embeddings(clip, tok, names, resolve_templates(templates))
    assert out.shape == (4, 32)
    assert torch.allclose(out.norm(dim=-1), torch.ones(4))
    assert (out - expected).abs().max() < 1e-5


def test_encode_text_is_batched(tiny_vit, monkeypatch):
    clip, tok = tiny_vit
    model = SurgeryCLIP(clip, tok, text_batch_size=1000)
    calls = []
    original = model._encode_tokens
    monkeypatch.setattr(model, "_encode_tokens", lambda t: calls.append(len(t)) or original(t))
    model.encode_text(["a", "b", "c"], "clip_surgery_85")
    assert calls == [255]


# --- feature surgery ----------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["none", "redundant", "weighted"])
@pytest.mark.parametrize("shape", [(1, 5, 3, 8), (3, 17, 7, 16), (2, 50, 12, 32)])
def test_feature_surgery_matches_elementwise(mode, shape):
    b, n, k, d = shape
    image = torch.randn(b, n, d, dtype=torch.float64)
    text = F.normalize(torch.randn(k, d, dtype=torch.float64), dim=-1)
    redundant = F.normalize(torch.randn(d, dtype=torch.float64), dim=-1)
    out = feature_surgery(image, text, mode, redundant=redundant)
    expected = ref.feature_surgery(image, text, mode, redundant=redundant)
    assert out.shape == (b, n, k)
    assert (out - expected).abs().max() < 1e-10


def test_feature_surgery_weights_are_per_image():
    image = torch.randn(3, 9, 8, dtype=torch.float64)
    text = F.normalize(torch.randn(5, 8, dtype=torch.float64), dim=-1)
    batched = feature_surgery(image, text, "weighted")
    one_by_one = torch.cat([feature_surgery(image[i:i + 1], text, "weighted") for i in range(3)])
    assert torch.allclose(batched, one_by_one)


def test_feature_surgery_errors():
    image, text = torch.randn(1, 4, 8), torch.randn(3, 8)
    with pytest.raises(ValueError, match="redundant feature"):
        feature_surgery(image, text, "redundant")
    with pytest.raises(ValueError, match="unknown feature-surgery mode"):
        feature_surgery(image, text, "bogus")
    with pytest.raises(ValueError, match="expected image_feats"):
        feature_surgery(image, torch.randn(3, 7))


def test_surgery_clip_does_not_copy_weights(tiny_vit):
    clip, tok = tiny_vit
    model = SurgeryCLIP(clip, tok)
    assert model.clip is clip
    clone = copy.deepcopy(clip)
    assert sum(p.numel() for p in SurgeryCLIP(clone, tok).parameters()) == sum(p.numel() for p in clip.parameters())
