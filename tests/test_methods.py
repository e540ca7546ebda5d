"""The image-token methods (docs/methods.md) against naive per-head, per-token re-statements of their formulas."""
from __future__ import annotations

import copy
import inspect

import pytest
import torch
import torch.nn.functional as F

import reference as ref
from clip_surgery_seg.datasets.catalog import DATASETS
from clip_surgery_seg.errors import ConfigError
from clip_surgery_seg.models import SurgeryCLIP, TextContext, build_clip, resolve_templates
from clip_surgery_seg.models.methods import METHODS, build_method
from clip_surgery_seg.models.methods.clip_surgery import ClipSurgery
from clip_surgery_seg.models.pos_embed import POS_INTERPOLATIONS, resize_pos_embed
from conftest import REPO

SIZES = [(224, 224), (448, 448), (224, 352)]

# method -> naive reference for ONE image (3, H, W) -> (1 + h*w, D)
VIT_REFERENCES = {
    "vanilla": ref.vanilla_tokens,
    "maskclip": ref.maskclip_tokens,
    "sclip": ref.sclip_tokens,
    "clearclip": ref.clearclip_tokens,
    "naclip": ref.naclip_tokens,
    "clip_surgery": lambda clip, image: ref.vit_tokens(clip, image, depth=6),
}


def _text(model):
    """Random class texts for a method that reads them (``needs_text``: ResCLIP), None for the others."""
    if not model.method.needs_text:
        return None
    g = torch.Generator().manual_seed(3)
    return TextContext(F.normalize(torch.randn(3, model.embed_dim, generator=g), dim=-1), 40.0)


def _tokens(model, images):
    return model.encode_image_tokens(images, text=_text(model))


def _reference(fn, clip, images):
    with torch.no_grad():
        return torch.stack([fn(clip, image) for image in images])


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name", list(VIT_REFERENCES))
def test_vit_methods_match_naive_reference(tiny_vit, name, size):
    clip, tok = tiny_vit
    images = torch.randn(2, 3, *size)
    out = SurgeryCLIP(clip, tok, method=name).encode_image_tokens(images)
    h, w = size[0] // 16, size[1] // 16
    assert out.shape == (2, 1 + h * w, 32)
    expected = _reference(VIT_REFERENCES[name], clip, images)
    assert (out - expected).abs().max() < 1e-4


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name", ["vanilla", "maskclip"])
def test_resnet_methods_match_naive_reference(tiny_rn, name, size):
    clip, tok = tiny_rn
    images = torch.randn(2, 3, *size)
    out = SurgeryCLIP(clip, tok, method=name).encode_image_tokens(images)
    assert out.shape == (2, 1 + (size[0] // 32) * (size[1] // 32), 32)
    naive = {"vanilla": lambda c, im: ref.resnet_tokens(c, im, surgery=False, pos_mode="bicubic_offset"),
             "maskclip": ref.maskclip_resnet_tokens}[name]
    assert (out - _reference(naive, clip, images)).abs().max() < 1e-4


@pytest.mark.parametrize("size", [(224, 224), (224, 352)])
def test_clip_surgery_resnet_matches_naive_reference(tiny_rn, size):
    clip, tok = tiny_rn
    images = torch.randn(2, 3, *size)
    out = SurgeryCLIP(clip, tok, method="clip_surgery").encode_image_tokens(images)
    assert (out - _reference(ref.resnet_tokens, clip, images)).abs().max() < 1e-4


@pytest.mark.parametrize("name", ["sclip", "naclip", "maskclip"])
def test_pos_interp_is_a_parameter(tiny_vit, name):
    """Another interpolation than the code's default is honoured (and changes the tokens)."""
    clip, tok = tiny_vit
    images = torch.randn(2, 3, 96, 160)
    default = SurgeryCLIP(clip, tok, method=name).encode_image_tokens(images)
    out = SurgeryCLIP(clip, tok, method=dict(type=name, pos_interp="bilinear")).encode_image_tokens(images)
    naive = {"sclip": ref.sclip_tokens, "naclip": ref.naclip_tokens, "maskclip": ref.maskclip_tokens}[name]
    expected = _reference(lambda c, im: naive(c, im, pos_mode="bilinear"), clip, images)
    assert (out - expected).abs().max() < 1e-4
    assert (out - default).abs().max() > 1e-3


def test_naclip_std_is_a_parameter(tiny_vit):
    clip, tok = tiny_vit
    images = torch.randn(2, 3, 96, 128)
    out = SurgeryCLIP(clip, tok, method=dict(type="naclip", gaussian_std=1.5)).encode_image_tokens(images)
    expected = _reference(lambda c, im: ref.naclip_tokens(c, im, std=1.5), clip, images)
    assert (out - expected).abs().max() < 1e-4
    assert (out - SurgeryCLIP(clip, tok, method="naclip").encode_image_tokens(images)).abs().max() > 1e-3


def test_methods_differ(tiny_vit):
    """Each method computes something of its own (a test that could not tell them apart would pass
    against any of the references above)."""
    clip, tok = tiny_vit
    images = torch.randn(2, 3, 128, 96)
    outs = {name: _tokens(SurgeryCLIP(clip, tok, method=name), images)[:, 1:] for name in METHODS}
    names = list(outs)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert (outs[a] - outs[b]).abs().max() > 1e-3, (a, b)


@pytest.mark.parametrize("name", list(METHODS))
def test_methods_run_under_autocast(tiny_vit, tiny_rn, name):
    """The segmentor's fp16/bf16 precision runs the image tower under autocast (here CPU bf16)."""
    for clip, tok in (tiny_vit, tiny_rn):
        if clip is tiny_rn[0] and not METHODS[name].supports_resnet:
            continue
        model = SurgeryCLIP(clip, tok, method=name)
        images = torch.randn(2, 3, 96, 128)
        exact = _tokens(model, images)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = _tokens(model, images).float()
        assert torch.isfinite(low).all() and (low - exact).abs().max() < 0.05 * exact.abs().max()


@pytest.fixture(scope="module")
def vit_b16():
    return build_clip("ViT-B-16")


@pytest.mark.parametrize("name", list(VIT_REFERENCES))
def test_vit_b16_shapes_and_reference(vit_b16, name):
    clip, tok = vit_b16
    images = torch.randn(2, 3, 224, 288)
    out = SurgeryCLIP(clip, tok, method=name).encode_image_tokens(images)
    assert out.shape == (2, 1 + 14 * 18, 512)
    assert (out[:1] - _reference(VIT_REFERENCES[name], clip, images[:1])).abs().max() < 1e-3


# --- positional embedding ------------------------------------------------------------------------

@pytest.mark.parametrize("mode", POS_INTERPOLATIONS)
@pytest.mark.parametrize("src,dst", [((4, 4), (14, 14)), ((4, 4), (28, 28)), ((4, 4), (14, 22)),
                                     ((14, 14), (21, 35)), ((14, 14), (7, 9)), ((3, 5), (6, 4))])
def test_resize_pos_embed_matches_naive(mode, src, dst):
    pos = torch.randn(1 + src[0] * src[1], 24)
    out = resize_pos_embed(pos, src, dst, mode)
    assert out.shape == (1 + dst[0] * dst[1], 24) and torch.equal(out[0], pos[0])
    assert (out - ref.resize_pos_as(pos, src, dst, mode)).abs().max() < 1e-5
    assert resize_pos_embed(pos, src, src, mode) is pos


def test_bicubic_offset_is_not_plain_bicubic():
    """The (n + 0.1) / n0 scale factor maps coordinates differently from a plain resize to n."""
    pos = torch.randn(1 + 16, 8)
    offset = resize_pos_embed(pos, (4, 4), (14, 14), "bicubic_offset")
    plain = resize_pos_embed(pos, (4, 4), (14, 14), "bicubic")
    assert (offset - plain).abs().max() > 1e-3


# --- the wrapped CLIP stays as it was --------------------------------------------------------------

@pytest.mark.parametrize("name", list(METHODS))
def test_methods_leave_clip_unchanged(tiny_vit, name):
    clip, tok = tiny_vit
    before = {k: v.clone() for k, v in clip.state_dict().items()}
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        embedding = clip.encode_image(images)
    model = SurgeryCLIP(clip, tok, method=name)
    _tokens(model, torch.randn(2, 3, 128, 96))
    after = clip.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    with torch.no_grad():
        assert torch.equal(clip.encode_image(images), embedding)
    assert not list(model._parameters) and not list(model._buffers)


def test_vanilla_cls_is_the_clip_embedding(tiny_vit, tiny_rn):
    images = torch.randn(2, 3, 64, 64)  # the pretraining size: no positional resizing
    for clip, tok in (tiny_vit, tiny_rn):
        for name in ("vanilla", "maskclip"):  # MaskCLIP keeps the ordinary CLS token
            tokens = SurgeryCLIP(clip, tok, method=name).encode_image_tokens(images)
            with torch.no_grad():
                assert torch.allclose(tokens[:, 0], clip.encode_image(images), atol=1e-5), name


# --- registry, parameters, errors ------------------------------------------------------------------

def test_registry_and_config_round_trip():
    assert set(METHODS) >= {"vanilla", "clip_surgery", "maskclip", "sclip", "clearclip", "naclip", "gem", "sc_clip",
                            "resclip"}
    for name in METHODS:
        method = build_method(name)
        assert method.name == name and build_method(method) is method
        assert build_method(method.config()).config() == method.config()
        assert method.config()["pos_interp"] in POS_INTERPOLATIONS
    surgery = build_method(dict(type="clip_surgery", depth=3, new_path_attention="identity"))
    assert isinstance(surgery, ClipSurgery) and surgery.depth == 3 and surgery.new_path_attention == "identity"
    assert surgery.config() == {"type": "clip_surgery", "depth": 3, "new_path_attention": "identity",
                                "resnet_norm": False, "pos_interp": "bilinear"}
    # the released codes' interpolations are the defaults
    assert {n: build_method(n).pos_interp for n in METHODS} == {
        "vanilla": "bicubic_offset", "clip_surgery": "bilinear", "maskclip": "bicubic",
        "sclip": "bicubic_offset", "clearclip": "bicubic_offset", "naclip": "bicubic_offset",
        "gem": "bicubic_antialias", "sc_clip": "bicubic_offset", "resclip": "bicubic_offset"}
    assert inspect.signature(SurgeryCLIP).parameters["method"].default == "clip_surgery"
    assert build_method("clip_surgery").depth == 6


@pytest.mark.parametrize("spec,message", [
    ("sclp", "unknown method 'sclp'; did you mean sclip"),
    (dict(type="naclipp"), "unknown method 'naclipp'; did you mean naclip"),
    (dict(depth=6), "unknown method None"),
    (dict(type="clip_surgery", dept=4), "method 'clip_surgery' has no parameter 'dept'; did you mean depth"),
    (dict(type="sclip", depth=6), "method 'sclip' has no parameter 'depth'"),
    (dict(type="naclip", gaussian_std=0), "gaussian_std must be a number > 0"),
    (dict(type="naclip", gaussian_std="wide"), "gaussian_std must be a number > 0"),
    (dict(type="clip_surgery", depth=-1), "depth must be an int >= 0"),
    (dict(type="clip_surgery", new_path_attention="qq"), "new_path_attention must be one of vv, identity"),
    (dict(type="clip_surgery", resnet_norm="yes"), "resnet_norm must be true or false"),
    (dict(type="clearclip", pos_interp="nearest"), "pos_interp='nearest' is not a positional-embedding"),
    (42, "method must be a name, a dict with 'type' or a method object"),
])
def test_bad_methods_are_config_errors(spec, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")) as err:
        build_method(spec)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("name", ["sclip", "clearclip", "naclip", "resclip"])
def test_vit_only_methods_refuse_resnets(tiny_rn, name):
    with pytest.raises(ConfigError, match=f"method '{name}' supports ViT CLIPs only"):
        SurgeryCLIP(*tiny_rn, method=name)


def test_depth_beyond_the_model_is_refused(tiny_vit):
    with pytest.raises(ConfigError, match=r"surgery depth must be in \[0, 7\] for this model, got 8"):
        SurgeryCLIP(*tiny_vit, method=dict(type="clip_surgery", depth=8))
    SurgeryCLIP(*tiny_vit, method=dict(type="clip_surgery", depth=7))


def test_every_method_declares_what_its_code_uses():
    """Each registered method has a label, a paper, template and post-processing defaults that
    resolve, and default parameters that build an equal method (properties, not a pinned list)."""
    for name, cls in METHODS.items():
        assert cls.name == name and cls.label and cls.arxiv
        assert resolve_templates(cls.default_templates)
        assert build_method(cls().config()).config() == cls().config()
        if cls.default_postprocess is not None:
            from clip_surgery_seg.segmentors.postprocess import build_postprocess

            assert build_postprocess(cls.default_postprocess) is not None
    # the ones the field's code makes a point of: CLIP Surgery and MaskCLIP share the 85 templates
    assert METHODS["clip_surgery"].default_templates == METHODS["maskclip"].default_templates == "clip_surgery_85"
    assert METHODS["naclip"].default_postprocess == {"type": "pamr", "num_iter": 10, "dilations": (8, 16)}


def test_methods_run_in_a_segmentor_config(tmp_path):
    """A config that switches method replaces the whole method dict (mmengine's _delete_)."""
    from mmengine.config import Config

    config = tmp_path / "naclip.py"
    config.write_text(f"_base_ = ['{REPO}/configs/ade20k.py']\n"
                      "model = dict(method=dict(_delete_=True, type='naclip', gaussian_std=3.0))\n")
    cfg = Config.fromfile(str(config))
    assert cfg.model.method.to_dict() == {"type": "naclip", "gaussian_std": 3.0}
    assert build_method(copy.deepcopy(cfg.model.method.to_dict())).gaussian_std == 3.0


# --- methods found, not listed; method configs resolved, not written; templates --------------------

def test_registry_lists_methods_in_publication_order():
    papers = [cls.arxiv for cls in METHODS.values()]
    assert papers == sorted(papers) and len(set(METHODS)) == len(METHODS)
    # every module of the package registered its method: nothing is imported from a list
    package = REPO / "clip_surgery_seg" / "models" / "methods"
    modules = {p.stem for p in package.glob("*.py")} - {"__init__", "base", "registry"}
    assert {cls.__module__.rsplit(".", 1)[-1] for cls in METHODS.values()} >= modules


@pytest.mark.parametrize("dataset", list(DATASETS))
def test_method_configs_are_resolved_not_written(dataset):
    """configs/<method>/<dataset>.py names configs/<dataset>.py with that method at its defaults; no such
    file is written, and --method gives the same experiment."""
    from clip_surgery_seg.engine.runner import EvalOptions

    base = EvalOptions(config=f"configs/{dataset}.py").resolve()
    for name in METHODS:
        assert not (REPO / "configs" / name / f"{dataset}.py").exists()
        named = EvalOptions(config=f"configs/{name}/{dataset}.py").resolve()
        switched = EvalOptions(config=f"configs/{dataset}.py", method=name).resolve()
        assert named.method == switched.method == METHODS[name]().config()
        assert named.config_hash() == switched.config_hash()
        assert named.protocol == switched.protocol == base.protocol
        assert named.templates == METHODS[name].default_templates and named.postprocess is None
        assert {**named.cfg.to_dict(), "model": None} == {**base.cfg.to_dict(), "model": None}


def test_method_option_replaces_the_method(tmp_path):
    from clip_surgery_seg.engine.runner import EvalOptions

    experiment = EvalOptions(config="configs/ade20k.py", method="naclip",
                             cfg_options={"model.method.gaussian_std": 3.0}).resolve()
    assert experiment.method == {"type": "naclip", "gaussian_std": 3.0, "pos_interp": "bicubic_offset"}
    with pytest.raises(ConfigError, match="unknown method 'scip'; did you mean sclip"):
        EvalOptions(config="configs/ade20k.py", method="scip").resolve()
    # the type alone leaves CLIP Surgery's parameters behind: refused, naming the fix
    with pytest.raises(ConfigError, match="has no parameter 'depth'.*use --method sclip"):
        EvalOptions(config="configs/ade20k.py", cfg_options={"model.method.type": "sclip"}).resolve()
    # a method config and another --method: ambiguous, refused
    with pytest.raises(ConfigError, match="with method sclip, and --method naclip"):
        EvalOptions(config="configs/sclip/ade20k.py", method="naclip").resolve()


def test_templates_follow_the_method_unless_fixed(tmp_path):
    from clip_surgery_seg.engine.runner import EvalOptions

    def resolved(text: str = "", **kwargs):
        path = tmp_path / "c.py"
        path.write_text(f"_base_ = ['{REPO}/configs/ade20k.py']\n{text}\n")
        return EvalOptions(config=str(path), **kwargs).resolve()

    assert resolved(method="sclip").templates == "imagenet_80"
    assert resolved().templates == "clip_surgery_85"
    # a protocol fixes one set for every method
    fixed = resolved("protocol = dict(templates='clip_surgery_85')", method="sclip")
    assert fixed.templates == "clip_surgery_85" and fixed.segmentor_config()["templates"] == "clip_surgery_85"
    assert fixed.sections()["text"]["templates"] == "clip_surgery_85"
    # a config fixes its own (a list is recorded as the list)
    own = resolved("model = dict(templates=['a photo of a {}.'])", method="sclip")
    assert own.sections()["text"]["templates"] == ["a photo of a {}."]
    with pytest.raises(ConfigError, match="templates set both in model and in protocol"):
        resolved("model = dict(templates='imagenet_80')\nprotocol = dict(templates='clip_surgery_85')")


@pytest.mark.parametrize("name", ["sclip", "maskclip"])
def test_segmentor_encodes_the_methods_templates(tmp_path, name):
    import clip_surgery_seg.registry  # noqa: F401
    from clip_surgery_seg.segmentors.segmentor import CLIPSurgerySegmentor
    from conftest import TINY_VIT

    seg = CLIPSurgerySegmentor(clip=dict(name=str(TINY_VIT), pretrained=None), classnames=["sky", "tree"],
                               method=dict(type=name), text_cache_dir=str(tmp_path))
    assert seg.templates == METHODS[name].default_templates
    expected = seg.surgery.encode_text(["sky", "tree"], resolve_templates(seg.templates))
    assert torch.equal(seg.text_features(), expected)
