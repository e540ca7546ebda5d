"""build_clip: OpenAI and open_clip checkpoints, QuickGELU, clear errors."""
from __future__ import annotations

import warnings

import pytest
import torch

from clip_surgery_seg.errors import ConfigError, WeightsError
from clip_surgery_seg.models import build_clip, weights_identity
from conftest import TINY_RN, TINY_VIT

OPENAI_EXTRA = {"input_resolution": torch.tensor(64), "context_length": torch.tensor(77),
                "vocab_size": torch.tensor(49408)}


def _act(model):
    return type(model.visual.transformer.resblocks[0].mlp.gelu).__name__


def _same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k].float(), sb[k].float()) for k in sa)


def test_random_weights_are_seeded():
    a, _ = build_clip(str(TINY_VIT))
    b, _ = build_clip(str(TINY_VIT))
    c, _ = build_clip(str(TINY_VIT), seed=1)
    assert _same_weights(a, b) and not _same_weights(a, c)
    assert _act(a) == "GELU"


@pytest.mark.parametrize("config", [TINY_VIT, TINY_RN])
def test_openai_state_dict_round_trip(tmp_path, config):
    source, _ = build_clip(str(config), quick_gelu=True, seed=3)
    state = {k: v.half() for k, v in source.state_dict().items()}  # OpenAI files are fp16
    state.update(OPENAI_EXTRA)
    path = tmp_path / "openai.pt"
    torch.save(state, path)
    model, tokenizer = build_clip(str(config), pretrained=str(path))
    expected = source.half().float()
    assert _same_weights(model, expected)
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model.encode_image(images), expected.encode_image(images), atol=1e-5)
        tokens = tokenizer(["a photo of a cat."])
        assert torch.allclose(model.encode_text(tokens), expected.encode_text(tokens), atol=1e-5)
    if config == TINY_VIT:
        assert _act(model) == "QuickGELU"
        assert _act(build_clip(str(config), pretrained=str(path), quick_gelu=False)[0]) == "GELU"


def test_openai_torchscript_archive(tmp_path):
    source, _ = build_clip(str(TINY_VIT), quick_gelu=True, seed=5)
    source.register_buffer("input_resolution", torch.tensor(64))
    images = torch.randn(1, 3, 64, 64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace_module(source, {"encode_image": images}, check_trace=False)
    path = tmp_path / "ViT-tiny.pt"
    traced.save(str(path))
    model, _ = build_clip(str(TINY_VIT), pretrained=str(path))
    assert _act(model) == "QuickGELU"
    with torch.no_grad():
        assert torch.equal(model.encode_image(images), source.encode_image(images))


def test_open_clip_checkpoint(tmp_path):
    source, _ = build_clip(str(TINY_VIT), seed=7)
    path = tmp_path / "epoch_1.pt"
    torch.save({"epoch": 1, "state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}, path)
    model, _ = build_clip(str(TINY_VIT), pretrained=str(path))
    assert _same_weights(model, source) and _act(model) == "GELU"


def test_weights_identity(tmp_path):
    path = tmp_path / "w.pt"
    path.write_bytes(b"abc")
    ident = weights_identity("ViT-B-16", str(path))
    assert ident.sha256 == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert weights_identity("ViT-B-16", "openai").key() == "ViT-B-16:openai"
    assert weights_identity("ViT-B-16", None).seed == 0


def test_missing_and_bad_files(tmp_path):
    with pytest.raises(WeightsError, match=r"weights file .*nope\.pt does not exist"):
        build_clip(str(TINY_VIT), pretrained=str(tmp_path / "nope.pt"))
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not a checkpoint")
    with pytest.raises(WeightsError, match=r"garbage\.pt is not a readable CLIP checkpoint"):
        build_clip(str(TINY_VIT), pretrained=str(garbage))
    not_clip = tmp_path / "resnet.pt"
    torch.save({"conv.weight": torch.zeros(1)}, not_clip)
    with pytest.raises(WeightsError, match=r"resnet\.pt is not a CLIP checkpoint"):
        build_clip(str(TINY_VIT), pretrained=str(not_clip))


def test_pickled_code_is_not_executed(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"visual.x": torch.zeros(1), "payload": _Payload()}, path)
    with pytest.raises(WeightsError, match="not a readable CLIP checkpoint"):
        build_clip(str(TINY_VIT), pretrained=str(path))


class _Payload:
    def __reduce__(self):
        return (exec, ("raise SystemExit('pickled code ran')",))


def test_architecture_mismatch(tmp_path):
    source, _ = build_clip(str(TINY_VIT), quick_gelu=True)
    state = dict(source.state_dict(), **OPENAI_EXTRA)
    path = tmp_path / "vit.pt"
    torch.save(state, path)
    with pytest.raises(WeightsError, match="pass the matching model name"):
        build_clip(str(TINY_RN), pretrained=str(path))
    torch.save(source.state_dict(), path)  # open_clip format into the wrong architecture
    with pytest.raises(WeightsError, match="does not fit"):
        build_clip(str(TINY_RN), pretrained=str(path))


def test_unknown_names():
    with pytest.raises(ValueError, match="did you mean.*ViT-B-16"):
        build_clip("ViT-B-61")
    with pytest.raises(ValueError, match="unknown pretrained tag 'bogus' for ViT-B-16; known tags: openai"):
        build_clip("ViT-B-16", pretrained="bogus")
    with pytest.raises(ConfigError, match="missing.json does not exist"):
        build_clip("configs/missing.json")


def test_openai_tag_forces_quick_gelu(monkeypatch):
    import open_clip

    calls = {}

    def fake_create_model(name, pretrained=None, force_quick_gelu=False, **kw):
        calls.update(name=name, pretrained=pretrained, force_quick_gelu=force_quick_gelu)
        return torch.nn.Linear(1, 1)

    monkeypatch.setattr(open_clip, "create_model", fake_create_model)
    from clip_surgery_seg.models import clip_loader

    monkeypatch.setattr(clip_loader, "weights_source", lambda tag_cfg: None)  # no look at the network here
    build_clip("ViT-B-16", pretrained="openai")
    assert calls == {"name": "ViT-B-16", "pretrained": "openai", "force_quick_gelu": True}
    build_clip("ViT-B-16", pretrained="laion2b_s34b_b88k")
    assert calls["force_quick_gelu"] is False


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_reachability_is_one_quick_look():
    import socket
    import time

    from clip_surgery_seg.models.clip_loader import unreachable

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        assert unreachable("127.0.0.1", server.getsockname()[1]) is None
    port = _closed_port()
    start = time.monotonic()
    assert unreachable("127.0.0.1", port) == f"127.0.0.1:{port} refused the connection"
    assert time.monotonic() - start < 2


def test_weights_by_url_without_network_are_one_line(tmp_path, monkeypatch):
    import open_clip

    from clip_surgery_seg.models.clip_loader import _create_pretrained

    monkeypatch.setenv("HOME", str(tmp_path))  # open_clip's URL cache, ~/.cache/clip, is empty
    port = _closed_port()
    with pytest.raises(WeightsError) as err:
        _create_pretrained(open_clip, "ViT-B-16", "sometag", {"url": f"http://127.0.0.1:{port}/w/ViT-B-16.pt"}, True)
    assert str(err.value) == (f"cannot download the ViT-B-16 'sometag' weights (no network: 127.0.0.1:{port} refused "
                              "the connection); pass --pretrained FILE, or put the file in ~/.cache/clip")


def test_cached_hub_weights_load_without_network(tmp_path, monkeypatch):
    """Weights in the Hugging Face cache need no network: with HF_HUB_OFFLINE (or the hub unreachable)
    open_clip gets the cached file, and the model has exactly its weights; not cached is one line."""
    import shutil

    import open_clip
    from safetensors.torch import save_file

    from clip_surgery_seg.models.clip_loader import _create_pretrained, weights_source

    config = tmp_path / "css-test-cached-tiny.json"  # a model name open_clip knows, for this test only
    shutil.copy(TINY_VIT, config)
    open_clip.add_model_config(config)
    source, _ = build_clip(str(TINY_VIT), seed=9)
    repo = tmp_path / "hub" / "models--someone--tiny-clip"
    snapshot = repo / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    weights = snapshot / "open_clip_model.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(weights))
    tag_cfg = {"hf_hub": "someone/tiny-clip/"}
    assert weights_source(tag_cfg).hub_files == ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
    assert weights_source(tag_cfg).cached(str(tmp_path / "hub")) == str(snapshot / "open_clip_model.safetensors")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = _create_pretrained(open_clip, "css-test-cached-tiny", "sometag", tag_cfg, False)
    assert _same_weights(model, source)
    with pytest.raises(WeightsError, match="HF_HUB_OFFLINE is set and they are not in the HF cache"):
        _create_pretrained(open_clip, "css-test-cached-tiny", "sometag", {"hf_hub": "someone/other/"}, False)
    # not offline, the hub unreachable (our own look at it, answered here): the cached file, no download
    from clip_surgery_seg.models import clip_loader

    monkeypatch.delenv("HF_HUB_OFFLINE")
    looked = []
    monkeypatch.setattr(clip_loader, "unreachable", lambda host, port: looked.append(host) or "no route")
    model = _create_pretrained(open_clip, "css-test-cached-tiny", "sometag", tag_cfg, False)
    assert looked and _same_weights(model, source)
