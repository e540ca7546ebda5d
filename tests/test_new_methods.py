"""GEM and SC-CLIP (docs/methods.md) against naive per-head re-statements of their released code; every
method on a patch-14 ViT of another depth and width, through the segmentor's sliding windows."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import reference as ref
from clip_surgery_seg.errors import ConfigError
from clip_surgery_seg.models import SurgeryCLIP, build_clip
from clip_surgery_seg.models.methods import METHODS, build_method
from clip_surgery_seg.models.methods.base import fill_from_neighbours, top_norm_mask
from clip_surgery_seg.models.methods.gem import GEM
from clip_surgery_seg.models.methods.sc_clip import SCCLIP, sc_clip_layers
from clip_surgery_seg.models.pos_embed import resize_pos_embed
from conftest import ASSETS

# 448 x 448 (785 tokens) takes 10-30 s on a loaded 2-core CPU, most of it the naive reference
SIZES = [(224, 224), pytest.param((448, 448), marks=pytest.mark.slow), (224, 352)]
TINY_VIT_P14 = ASSETS / "tiny-vit-p14.json"

# SC-CLIP's layers for the 7-block tiny ViT, worked out by hand from the rule (12-block set x 7/12,
# rounded half up: 8 -> 4.67 -> 5, 3 -> 1.75 -> 2, 10 -> 5.83 -> 6) -- not read from the module
SC_CLIP_7 = dict(pre=5, post=2, start=2, end=6, res_cls=0.3)
SC_CLIP_8 = dict(pre=5, post=2, start=2, end=7, res_cls=0.3)  # 8 x 8/12 = 5.33, 2, 2, 6.67


def _reference(fn, clip, images):
    with torch.no_grad():
        return torch.stack([fn(clip, image) for image in images])


@pytest.fixture(scope="module")
def tiny_vit_p14():
    return build_clip(str(TINY_VIT_P14))


# --- GEM -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("size", SIZES)
def test_gem_matches_naive_reference(tiny_vit, size):
    clip, tok = tiny_vit
    images = torch.randn(2, 3, *size)
    out = SurgeryCLIP(clip, tok, method="gem").encode_image_tokens(images)
    assert out.shape == (2, 1 + (size[0] // 16) * (size[1] // 16), 32)
    assert (out - _reference(ref.gem_tokens, clip, images)).abs().max() < 1e-4


@pytest.mark.parametrize("params", [dict(ignore_residual=True), dict(ss_attn_temp=3.0), dict(ss_attn_iter=0),
                                    dict(ss_attn_iter=3), dict(depth=3), dict(depth=8),
                                    dict(pos_interp="bicubic_offset")])
def test_gem_parameters_match_naive_reference(tiny_vit, params):
    clip, tok = tiny_vit
    images = torch.randn(2, 3, 96, 128)
    out = SurgeryCLIP(clip, tok, method=dict(type="gem", **params)).encode_image_tokens(images)
    naive = dict(depth=params.get("depth", 7), iters=params.get("ss_attn_iter", 1), temp=params.get("ss_attn_temp"),
                 ignore_residual=params.get("ignore_residual", False),
                 pos_mode=params.get("pos_interp", "bicubic_antialias"))
    assert (out - _reference(lambda c, im: ref.gem_tokens(c, im, **naive), clip, images)).abs().max() < 1e-4
    default = SurgeryCLIP(clip, tok, method="gem").encode_image_tokens(images)
    assert (out - default).abs().max() > 1e-3  # each parameter changes the tokens


def test_gem_defaults_are_the_codes():
    gem = build_method("gem")
    assert gem.config() == {"type": "gem", "depth": 7, "ss_attn_iter": 1, "ss_attn_temp": None,
                            "ignore_residual": False, "pos_interp": "bicubic_antialias"}
    assert (GEM.label, GEM.arxiv, GEM.default_templates, GEM.supports_resnet) == ("GEM", "2312.00878", "a_photo_of_a",
                                                                                  False)


def test_gem_depth_is_checked_against_the_model(tiny_vit):
    with pytest.raises(ConfigError, match=r"gem depth must be in \[2, 8\] for this model \(7 blocks"):
        SurgeryCLIP(*tiny_vit, method=dict(type="gem", depth=9))
    SurgeryCLIP(*tiny_vit, method=dict(type="gem", depth=8))  # every block on the GEM path


# --- SC-CLIP ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("size", SIZES)
def test_sc_clip_matches_naive_reference(tiny_vit, size):
    clip, tok = tiny_vit
    images = torch.randn(2, 3, *size)
    out = SurgeryCLIP(clip, tok, method="sc_clip").encode_image_tokens(images)
    assert out.shape == (2, 1 + (size[0] // 16) * (size[1] // 16), 32)
    assert (out - _reference(lambda c, im: ref.sc_clip_tokens(c, im, **SC_CLIP_7), clip, images)).abs().max() < 1e-4


@pytest.mark.parametrize("params", [dict(num_anomalies=0), dict(num_anomalies=30), dict(beta=0.1),
                                    dict(res_cls=1.0),
                                    dict(pre_adjust_idx=1, post_adjust_idx=5, multi_start_idx=0, multi_end_idx=3)])
def test_sc_clip_parameters_match_naive_reference(tiny_vit, params):
    clip, tok = tiny_vit
    images = torch.randn(2, 3, 96, 144)
    out = SurgeryCLIP(clip, tok, method=dict(type="sc_clip", **params)).encode_image_tokens(images)
    naive = dict(SC_CLIP_7, beta=params.get("beta", 0.4), num_anomalies=params.get("num_anomalies", 10))
    naive["res_cls"] = params.get("res_cls", naive["res_cls"])
    for key, name in (("pre", "pre_adjust_idx"), ("post", "post_adjust_idx"), ("start", "multi_start_idx"),
                      ("end", "multi_end_idx")):
        naive[key] = params.get(name, naive[key])
    assert (out - _reference(lambda c, im: ref.sc_clip_tokens(c, im, **naive), clip, images)).abs().max() < 1e-4
    default = SurgeryCLIP(clip, tok, method="sc_clip").encode_image_tokens(images)
    assert (out[:, 1:] - default[:, 1:]).abs().max() > 1e-3


@pytest.mark.parametrize("name", ["sc_clip", "gem"])
def test_a_batch_gives_what_each_image_gives_alone(tiny_vit, name):
    """The code runs one image at a time (SC-CLIP's even mixes images in a batch); here each image of a
    batch gets its own anomalies, affinity means and temperatures."""
    model = SurgeryCLIP(*tiny_vit, method=name)
    images = torch.randn(3, 3, 80, 112)
    images[1] *= 4  # images of very different statistics
    batch = model.encode_image_tokens(images)
    alone = torch.cat([model.encode_image_tokens(images[i:i + 1]) for i in range(3)])
    assert (batch - alone).abs().max() < 1e-5


def test_sc_clip_layer_sets():
    # the code's ViT-B/16 (12 blocks) and ViT-L/14 (24 blocks) sets
    assert sc_clip_layers(12) == dict(pre_adjust_idx=8, post_adjust_idx=3, multi_start_idx=3, multi_end_idx=10,
                                      res_cls=0.3)
    assert sc_clip_layers(24) == dict(pre_adjust_idx=16, post_adjust_idx=6, multi_start_idx=8, multi_end_idx=19,
                                      res_cls=0.1)
    assert SCCLIP().layers(7) == tuple(SC_CLIP_7.values()) and SCCLIP().layers(8) == tuple(SC_CLIP_8.values())
    assert SCCLIP(res_cls=0.5, pre_adjust_idx=2).layers(12) == (2, 3, 3, 10, 0.5)
    with pytest.raises(ConfigError, match="sc_clip layers do not fit a 4-block ViT"):
        SCCLIP().layers(4)
    assert build_method("sc_clip").config() == {
        "type": "sc_clip", "pre_adjust_idx": None, "post_adjust_idx": None, "multi_start_idx": None,
        "multi_end_idx": None, "res_cls": None, "beta": 0.4, "num_anomalies": 10, "pos_interp": "bicubic_offset"}
    assert (SCCLIP.label, SCCLIP.arxiv, SCCLIP.default_templates, SCCLIP.supports_resnet) == (
        "SC-CLIP", "2411.15869", "imagenet_80", False)


def test_sc_clip_layers_are_checked_against_the_model(tiny_vit):
    with pytest.raises(ConfigError, match=r"7-block ViT.*pre_adjust_idx=6.*blocks 0\.\.5 can be read"):
        SurgeryCLIP(*tiny_vit, method=dict(type="sc_clip", pre_adjust_idx=6))
    with pytest.raises(ConfigError, match=r"multi_start_idx=4, multi_end_idx=4"):
        SurgeryCLIP(*tiny_vit, method=dict(type="sc_clip", multi_start_idx=4, multi_end_idx=4))
    SurgeryCLIP(*tiny_vit, method=dict(type="sc_clip", pre_adjust_idx=5, multi_end_idx=6))


def test_hidden_states_are_the_plain_forwards(tiny_vit):
    """State i is the stream entering block i: state 0 the embedding, state L - 1 what the last block gets."""
    from clip_surgery_seg.models.methods.base import vit_hidden_states, vit_stream

    clip, tok = tiny_vit
    pos = SurgeryCLIP(clip, tok, method="vanilla")._pos_embed
    images = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        states, grid = vit_hidden_states(clip.visual, images, pos, keep=[0, 3, 6], skip_last=1)
        assert sorted(states) == [0, 3, 6] and grid == (4, 6)
        for i in (0, 3, 6):
            assert torch.equal(states[i], vit_stream(clip.visual, images, pos, skip_last=7 - i)[0])
        with pytest.raises(ValueError, match=r"hidden states \[7\] are outside \[0, 6\]"):
            vit_hidden_states(clip.visual, images, pos, keep=[7], skip_last=1)


def test_fill_from_neighbours_matches_naive():
    """Anomalies at a corner, on an edge, next to each other, and one whose neighbours are all anomalous."""
    h, w, c = 4, 5, 6
    tokens = torch.randn(2, h * w, c)
    cells = [{(0, 0), (0, 1), (2, 2), (3, 4)},
             {(1, 1), (0, 0), (0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1), (2, 2)}]  # (1, 1) surrounded
    mask = torch.zeros(2, h * w, dtype=torch.bool)
    for b, cell in enumerate(cells):
        for r, col in cell:
            mask[b, r * w + col] = True
    out = fill_from_neighbours(tokens, (h, w), mask)
    for b, cell in enumerate(cells):
        assert torch.allclose(out[b], ref._repair(tokens[b], (h, w), cell), atol=1e-6)
    assert torch.equal(out[1, 1 * w + 1], tokens[1, 1 * w + 1])  # no valid neighbour: kept
    assert torch.equal(out[~mask], tokens[~mask])


def test_top_norm_mask():
    tokens = torch.randn(2, 12, 4)
    tokens[0, 3] *= 50
    tokens[1, 7] *= 50
    tokens[1, 2] *= 40
    assert top_norm_mask(tokens, 1)[0].nonzero().flatten().tolist() == [3]
    assert top_norm_mask(tokens, 2)[1].nonzero().flatten().tolist() == [2, 7]
    assert top_norm_mask(tokens, 99).all() and not top_norm_mask(tokens, 0).any()


@pytest.mark.parametrize("spec,message", [
    (dict(type="gem", depth=1), "gem depth must be an int >= 2"),
    (dict(type="gem", ss_attn_iter=-1), "gem ss_attn_iter must be an int >= 0"),
    (dict(type="gem", ss_attn_temp=0), "gem ss_attn_temp must be a number > 0 or None"),
    (dict(type="gem", ignore_residual="yes"), "gem ignore_residual must be true or false"),
    (dict(type="gem", dept=4), "method 'gem' has no parameter 'dept'; did you mean depth"),
    (dict(type="sc_clip", pre_adjust_idx=-1), "sc_clip pre_adjust_idx must be an int >= 0"),
    (dict(type="sc_clip", res_cls="high"), "sc_clip res_cls must be a number"),
    (dict(type="sc_clip", beta=None), "sc_clip beta must be a number"),
    (dict(type="sc_clip", num_anomalies=2.5), "sc_clip num_anomalies must be an int >= 0"),
    (dict(type="sc_clip", pos_interp="nearest"), "pos_interp='nearest' is not a positional-embedding"),
])
def test_bad_parameters_are_config_errors(spec, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")) as err:
        build_method(spec)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("name", ["gem", "sc_clip"])
def test_new_methods_refuse_resnets(tiny_rn, name):
    with pytest.raises(ConfigError, match=f"method '{name}' supports ViT CLIPs only"):
        SurgeryCLIP(*tiny_rn, method=name)


def test_bicubic_antialias_differs_from_bicubic_when_enlarging():
    """GEM's resize is torch's antialiased bicubic (PIL's kernel), not the plain one, even when enlarging."""
    pos = torch.randn(1 + 16, 8)
    antialias = resize_pos_embed(pos, (4, 4), (14, 14), "bicubic_antialias")
    assert (antialias - ref.resize_pos_antialias(pos, (4, 4), (14, 14))).abs().max() < 1e-5
    assert (antialias - resize_pos_embed(pos, (4, 4), (14, 14), "bicubic")).abs().max() > 1e-3


# --- every method on a patch-14 ViT of another depth and width --------------------------------------

@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_runs_on_a_patch14_vit(tiny_vit_p14, name):
    clip, tok = tiny_vit_p14
    images = torch.randn(2, 3, 84, 126)  # a 6 x 9 grid of 14-pixel patches
    surgery = SurgeryCLIP(clip, tok, method=name)
    text = None
    if surgery.method.needs_text:  # a method that reads the class texts (ResCLIP's feedback) gets some
        from clip_surgery_seg.models.methods.base import TextContext

        text = TextContext(F.normalize(torch.randn(5, 24), dim=-1), 40.0)
    out = surgery.encode_image_tokens(images, text=text)
    assert out.shape == (2, 1 + 6 * 9, 24) and torch.isfinite(out).all()


@pytest.mark.slow
def test_every_method_runs_on_open_clips_vit_l14_architecture():
    """ViT-L/14 itself (24 blocks, width 1024, 16 heads, patch 14; random weights: the OpenAI ones
    cannot be downloaded here): each method's last-block path and layer choices fit its depth."""
    clip, tok = build_clip("ViT-L-14", pretrained=None)
    images = torch.randn(2, 3, 224, 308)  # a 16 x 22 grid of 14-pixel patches
    for name in METHODS:
        surgery = SurgeryCLIP(clip, tok, method=name)
        text = None
        if surgery.method.needs_text:
            from clip_surgery_seg.models.methods.base import TextContext

            text = TextContext(F.normalize(torch.randn(5, 768), dim=-1), 40.0)
        with torch.no_grad():
            out = surgery.encode_image_tokens(images, text=text)
        assert out.shape == (2, 1 + 16 * 22, 768) and torch.isfinite(out).all(), name


@pytest.mark.parametrize("name,naive", [
    ("gem", ref.gem_tokens),
    ("sc_clip", lambda c, im: ref.sc_clip_tokens(c, im, **SC_CLIP_8)),
])
def test_new_methods_match_naive_reference_on_a_patch14_vit(tiny_vit_p14, name, naive):
    clip, tok = tiny_vit_p14
    images = torch.randn(2, 3, 70, 112)
    out = SurgeryCLIP(clip, tok, method=name).encode_image_tokens(images)
    assert (out - _reference(naive, clip, images)).abs().max() < 1e-4


@pytest.mark.parametrize("name", list(METHODS))
def test_patch14_vit_through_the_segmentors_sliding_windows(tmp_path, name):
    """Nothing in the models or the segmentor assumes 16-pixel patches or 12 blocks: a patch-14, 8-block ViT
    runs end to end with windows of 70 pixels (5 patches; not a multiple of 16), and windows of 64 pixels (an
    image whose short side is below the window) zero-padded to 70."""
    import clip_surgery_seg.registry  # noqa: F401
    from clip_surgery_seg.segmentors.segmentor import CLIPSurgerySegmentor

    seg = CLIPSurgerySegmentor(clip=dict(name=str(TINY_VIT_P14), pretrained=None), classnames=["sky", "tree", "road"],
                               method=dict(type=name), text_cache_dir=str(tmp_path),
                               protocol=dict(short_side=64, crop_size=70, stride=42))
    assert seg.surgery.patch_size == (14, 14)
    maps = seg.window_maps(torch.randn(2, 3, 70, 84))
    assert maps.shape == (2, 3, 5, 6)
    image = torch.randn(3, 93, 131)  # resized to 64 x 90: windows 64 x 70, padded to 70 x 70
    labels = seg.seg_labels([image], [(93, 131)])
    assert labels[0].shape == (93, 131) and set(labels[0].unique().tolist()) <= {0, 1, 2}
