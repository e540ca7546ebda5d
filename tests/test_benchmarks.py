"""Smoke test: every benchmark script runs in --quick mode (tiny model, tiny shapes) and its table
says what it must: equal numbers where the fast path claims equality."""
from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys

import pytest

from conftest import REPO


def _run(script, tmp_path, *extra, timeout=240):
    out = tmp_path / f"{script}.json"
    env = dict(os.environ, PYTHONPATH=str(REPO), CLIP_SURGERY_SEG_CACHE=str(tmp_path / "cache"),
               OMP_NUM_THREADS="1")
    # one thread: the tiny shapes are dominated by per-op overheads, which other threads only add to
    result = subprocess.run([sys.executable, f"benchmarks/{script}.py", "--quick", "--threads", "1",
                             "--repeats", "1", "--json", str(out), *extra], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("## ") and "| " in result.stdout  # a title and a Markdown table
    return result.stdout, json.loads(out.read_text())


def _columns(stdout, title):
    """The header cells of the first Markdown table after a line starting with ``title``."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    header = next(line for line in lines[start:] if line.startswith("| "))
    return [c.strip() for c in header.strip("|").split("|")]


@pytest.mark.slow
def test_bench_feature_surgery(tmp_path):
    stdout, rows = _run("bench_feature_surgery", tmp_path, "--shapes", "1x50x12x32", "2x17x9x16")
    assert "max abs diff" in _columns(stdout, "## Feature surgery")
    assert len(rows) == 2
    for row in rows:
        assert row["max_abs_diff"] < 1e-4 and row["max_abs_diff_vs_fp64"] < 1e-4
        assert row["matmul_ms"] > 0 and row["elementwise_ms"] > 0


@pytest.mark.slow
def test_bench_encoder(tmp_path):
    stdout, data = _run("bench_encoder", tmp_path)
    assert "surgery extra %" in _columns(stdout, "## Image encoder")
    rows = data["rows"]
    assert [r["size"] for r in rows] == [64, 128]
    for r in rows:
        assert r["surgery_windows_per_s"] > 0 and r["ceiling_windows_per_s"] > 0
        # the analytic FLOPs: the surgery forward costs about what the vanilla one does
        assert 0.8 < r["gflops_per_window_surgery"] / r["gflops_per_window_vanilla"] < 1.3
        assert r["vanilla_cls_vs_depth0_max_abs_diff"] < 1e-4  # the vanilla forward is the same model


def test_bench_encoder_flops_formula_matches_counted():
    """The FLOPs formula against torch's FlopCounterMode on the decomposed (unfused) forward."""
    sys.path.insert(0, str(REPO))
    from benchmarks.bench_encoder import counted_reference_flops, vit_flops, vit_shapes
    from clip_surgery_seg.models import SurgeryCLIP, build_clip
    from conftest import TINY_VIT

    clip, tok = build_clip(str(TINY_VIT))
    for depth in (0, 3, 6):
        surgery = SurgeryCLIP(clip, tok, method=dict(type="clip_surgery", depth=depth))
        formula = vit_flops(vit_shapes(clip.visual), 64, 96, depth)["surgery"]
        counted = counted_reference_flops(surgery, 64, 96)
        assert formula == counted, (depth, formula, counted)


@pytest.mark.slow
def test_bench_segmentor(tmp_path):
    stdout, data = _run("bench_segmentor", tmp_path, "--precisions", "bf16", timeout=300)
    assert "pixels identical to 1-at-a-time %" in _columns(stdout, "### Throughput")
    assert "pixels agreeing with fp32 %" in _columns(stdout, "### Precision")
    rows = data["throughput"]
    assert rows[0]["window_batch_size"] == 1 and len(rows) >= 3
    for row in rows:  # batched windows: the same predictions as one window at a time
        assert row["pixels_identical_pct"] == 100.0 and row["max_abs_logit_diff"] < 1e-4
        assert row["windows_per_s"] > 0
    auto = [r for r in rows if r["window_batch_size"] == "auto"]
    assert auto and isinstance(auto[0]["resolved_batch"], int) and auto[0]["resolved_batch"] >= 1
    assert all(r["same_labels"] for r in data["layout"])
    assert {r["layout"] for r in data["layout"]} == {"NCHW", "channels-last", "library"}
    assert [r["window_batch_size"] for r in data["memory"]][:1] == [1]
    precision = {r["precision"]: r for r in data["precision"]}
    assert precision["fp32"]["agreement_pct"] == 100.0 and 0 < precision["bf16"]["agreement_pct"] <= 100


@pytest.mark.slow
def test_bench_text(tmp_path):
    stdout, rows = _run("bench_text", tmp_path)
    assert "second: read cache" in stdout
    second = next(r for r in rows if r["run"].startswith("second"))
    assert second["identical"] is True and second["cache_bytes"] > 0
    full = next(r for r in rows if r["run"].startswith("full"))
    assert full["max_abs_diff"] < 1e-5  # the truncated context gives the same embeddings


@pytest.mark.slow
def test_bench_eval(tmp_path):
    # one run, with a worker process (the quick default compares 0 and 1 workers)
    stdout, rows = _run("bench_eval", tmp_path, "--images", "3", "--workers", "1", "--show-dir", timeout=300)
    assert "data+metric+write %" in _columns(stdout, "## Whole evaluation")
    assert "added ms/image" in _columns(stdout, "### --show-dir")
    assert [r["workers"] for r in rows] == [1]
    for row in rows:
        assert row["num_images"] == 3 and row["saved"] == 3 and row["panels"] == 3
        assert row["panel_render_ms"] > 0 and row["panel_encode_ms"] > 0
        assert all(math.isfinite(row[k]) for k in ("added_ms_per_image", "loop_wait_ms_per_image"))
        shares = [row[k] for k in ("data_pct", "model_pct", "metric_pct", "write_pct", "text_pct")]
        assert all(0 <= s <= 100 for s in shares) and sum(shares) <= 100.5
        assert re.match(r"^\d", str(row["images_per_s"]))


@pytest.mark.slow
def test_bench_methods(tmp_path):
    # two methods: one reproduce.py process and two tools/eval.py processes
    stdout, rows = _run("bench_methods", tmp_path, "--methods", "sclip", "clip_surgery", timeout=600)
    assert "CLIP loads" in _columns(stdout, "## Switching methods")
    together, apart = rows
    assert together["clip_loads"] == 1 and apart["clip_loads"] == 2 and together["processes"] == 1
    assert together["same_numbers"] is True and together["wall_s"] > 0 and apart["wall_s"] > 0


# --- the fast paths the benchmarks measure -------------------------------------------------------

def _tiny_segmentor(tmp_path, **kwargs):
    import clip_surgery_seg.registry  # noqa: F401
    from mmseg.registry import MODELS

    from conftest import TINY_VIT

    return MODELS.build(dict(type="CLIPSurgerySegmentor", clip=dict(name=str(TINY_VIT)),
                             classnames=["sky", "road, street", "car", "tree"], templates=["a {}."],
                             text_cache_dir=str(tmp_path / "cache"),
                             protocol=dict(short_side=64, crop_size=32, stride=16,
                                           **{k: kwargs.pop(k) for k in ("prob_threshold", "logit_scale")
                                              if k in kwargs}),
                             **kwargs))


@pytest.mark.parametrize("window_batch_size, background", [(1, {}), (5, {}), ("auto", {}),
                                                         (5, dict(prob_threshold=0.26, background_index=0,
                                                                  logit_scale=40.0))])
def test_seg_labels_equal_argmax_of_seg_logits(tmp_path, window_batch_size, background):
    """predict()'s path (per-window upsampling, reused buffers) gives labels_from_logits(row_logits),
    which is the argmax of seg_logits (the class logits) without a threshold."""
    import torch

    seg = _tiny_segmentor(tmp_path, window_batch_size=window_batch_size, **background)
    torch.manual_seed(0)
    calls = [[torch.randn(3, 70, 90), torch.randn(3, 40, 33)], [torch.randn(3, 50, 120)],
             [torch.randn(3, 70, 90)]]  # sizes change between calls: buffers are re-viewed, not stale
    for inputs in calls:
        shapes = [im.shape[-2:] for im in inputs]
        expected = [seg.labels_from_logits(logits) for logits in seg.row_logits(inputs, shapes)]
        if not background:
            assert all(torch.equal(e, c.argmax(dim=0)) for e, c in zip(expected, seg.seg_logits(inputs, shapes)))
        got = seg.seg_labels(inputs, shapes)
        assert all(torch.equal(a, b) for a, b in zip(got, expected))
        samples = seg.predict(inputs)
        assert all(torch.equal(s.pred_sem_seg.data[0], e) for s, e in zip(samples, expected))


def test_window_logits_is_upsampled_window_maps(tmp_path):
    import torch
    import torch.nn.functional as F

    seg = _tiny_segmentor(tmp_path)
    windows = torch.randn(3, 3, 32, 48)
    maps = seg.window_maps(windows)
    assert maps.shape == (3, 5, 2, 3)  # 5 text rows (road, street), 2x3 patches
    expected = F.interpolate(maps, size=(32, 48), mode="bilinear", align_corners=False)
    assert torch.equal(seg.window_logits(windows), expected)


def test_window_batch_size_auto():
    import torch

    from clip_surgery_seg.segmentors import sliding

    batcher = sliding.WindowBatcher("auto")
    sizes = []
    list(batcher.run(torch.zeros(20, 3, 8, 8), lambda b: sizes.append(len(b)) or b))
    assert batcher.batch_size == sliding.CPU_AUTO_BATCH and sizes[0] == min(20, sliding.CPU_AUTO_BATCH)
    for bad in (0, -1, "big", 2.5, True):
        with pytest.raises(ValueError, match="window_batch_size"):
            sliding.WindowBatcher(bad)


def test_auto_batch_size_on_a_gpu_follows_free_memory(monkeypatch):
    import torch

    from clip_surgery_seg.segmentors import sliding

    class FakeWindows:
        device = torch.device("cuda")

    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (8 * 2 ** 30, 16 * 2 ** 30))
    per_window = 2 ** 27  # 128 MiB: half of 8 GiB holds 32
    assert sliding.auto_batch_size(FakeWindows(), lambda w: per_window) == 32
    assert sliding.auto_batch_size(FakeWindows(), lambda w: 1) == sliding.MAX_AUTO_BATCH
    assert sliding.auto_batch_size(FakeWindows(), lambda w: 2 ** 40) == 1


def test_precision_auto(tmp_path):
    import torch

    seg = _tiny_segmentor(tmp_path, precision="auto")
    assert seg.compute_precision(torch.device("cpu")) == "fp32"
    assert seg.compute_precision(torch.device("cuda")) == "fp16"
    assert _tiny_segmentor(tmp_path, precision="bf16").compute_precision(torch.device("cuda")) == "bf16"
    with pytest.raises(ValueError, match="precision"):
        _tiny_segmentor(tmp_path, precision="int8")


def test_scratch_buffers_are_reused_and_resize_into_them_is_exact():
    import torch
    import torch.nn.functional as F

    from clip_surgery_seg.segmentors.sliding import ScratchBuffers, resize_bilinear

    scratch = ScratchBuffers()
    big = scratch.get("a", (1, 5, 40, 30), torch.float32, "cpu", channels_last=True)
    assert big.is_contiguous(memory_format=torch.channels_last)
    small = scratch.get("a", (1, 5, 20, 30), torch.float32, "cpu", channels_last=True)
    assert small.data_ptr() == big.data_ptr() and small.is_contiguous(memory_format=torch.channels_last)
    assert scratch.get("b", (4, 6), torch.float32, "cpu").is_contiguous()
    x = torch.randn(1, 5, 7, 9).contiguous(memory_format=torch.channels_last)
    out = scratch.get("c", (1, 5, 20, 30), torch.float32, "cpu", channels_last=True)
    got = resize_bilinear(x, (20, 30), out)
    assert got.data_ptr() == out.data_ptr()
    assert torch.equal(got, F.interpolate(x, size=(20, 30), mode="bilinear", align_corners=False))
