#!/usr/bin/env python
"""Benchmark 2: image encoder: SurgeryCLIP.encode_image_tokens against open_clip's own forward.

For each input size: windows/s of the surgery forward (all tokens) and of the vanilla open_clip
``visual(images)`` forward of the same weights at that size (its positional embedding resized the
same way), the surgery's extra cost in percent (target <= 15 %), the FLOPs per window from the
model's shapes, and the machine's measured matmul peak turned into a ceiling of windows/s:
achieved / ceiling says how much of the hardware the encoder uses.

    python benchmarks/bench_encoder.py                           # random ViT-B/16 at 224 and 448, fp32
    python benchmarks/bench_encoder.py --device cuda --precisions fp32 bf16 fp16 --batch 64 16
"""
from __future__ import annotations

import contextlib
import copy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks import _common as C  # noqa: E402

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
TINY_VIT = str(C.REPO / "tests" / "assets" / "tiny-vit.json")


def autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=DTYPES[precision])


def vit_shapes(visual) -> dict:
    blocks = visual.transformer.resblocks
    return {"width": visual.conv1.out_channels, "patch": visual.conv1.kernel_size[0], "layers": len(blocks),
            "mlp": blocks[0].mlp.c_fc.out_features, "out": visual.proj.shape[1] if visual.proj is not None else None}


def vit_flops(shapes: dict, height: int, width: int, depth: int) -> dict:
    """FLOPs (2 x multiply-adds of the matrix products) of one window, vanilla and surgery forward.

    Elementwise work (norms, softmax, GELU, residual adds) is left out: it is O(N·C), not O(N·C²).
    """
    c, p, layers, m = shapes["width"], shapes["patch"], shapes["layers"], shapes["mlp"]
    out = shapes["out"] or c
    n = (height // p) * (width // p) + 1
    embed = (n - 1) * 3 * p * p * c
    block = n * (4 * c * c + 2 * c * m) + 2 * n * n * c  # qkv + out-proj + MLP, q·kᵀ and attn·v
    vanilla = embed + layers * block + c * out  # CLS projection only
    surgery_block = n * (3 * c * c + 2 * c * c + 2 * c * m) + 4 * n * n * c  # two attentions, two out-projs
    last_block = n * 3 * c * c + 2 * n * c + 2 * n * n * c + n * c * c + c * c + 2 * c * m
    if depth == 0:
        surgery = embed + layers * block + n * c * out
    else:
        surgery = embed + (layers - depth) * block + (depth - 1) * surgery_block + last_block + n * c * out
    return {"tokens": n, "vanilla": 2 * vanilla, "surgery": 2 * surgery}


def counted_flops(fn) -> int:
    """FLOPs that torch's FlopCounterMode counts for ``fn()`` (matmuls, convolutions, attention)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def counted_reference_flops(surgery, height: int, width: int) -> int:
    """FlopCounterMode's count of one surgery window with every fused kernel decomposed.

    The fused kernels (nn.MultiheadAttention's fast path, flash attention on CPU) are invisible to
    the counter, so this runs the forward with autograd on (no fast path) and the math attention
    backend: a check of ``vit_flops``, not a timing.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel

    visual = surgery.clip.visual
    images = torch.randn(1, 3, height, width, device=visual.conv1.weight.device)
    with torch.enable_grad(), sdpa_kernel([SDPBackend.MATH]):
        return counted_flops(lambda: surgery.method(visual, images, surgery._pos_embed))


def matmul_peak(device: torch.device, precision: str, quick: bool, warmup: int = 1, repeats: int = 3) -> dict:
    """Best measured FLOP/s over a few large matrix products, in the encoder's compute dtype."""
    dtype = DTYPES[precision]
    if device.type == "cpu" and precision == "fp16":
        dtype = torch.float16
    shapes = [(256, 256, 256)] if quick else [(2048, 2048, 2048), (4096, 768, 3072), (4096, 3072, 768)]
    if device.type == "cuda" and not quick:
        shapes += [(8192, 8192, 8192), (16384, 768, 3072)]
    best = (0.0, None)
    for m, k, n in shapes:
        a = torch.randn(m, k, device=device, dtype=dtype)
        b = torch.randn(k, n, device=device, dtype=dtype)
        seconds = C.time_fn(lambda: a @ b, device, warmup, repeats)
        rate = 2 * m * k * n / seconds
        if rate > best[0]:
            best = (rate, f"{m}x{k}x{n}")
    return {"flops_per_s": best[0], "shape": best[1], "dtype": str(dtype).replace("torch.", "")}


def vanilla_visual(visual, height: int, width: int, pos_embed):
    """A copy of open_clip's VisionTransformer whose positional embedding fits ``height x width``."""
    out = copy.deepcopy(visual)
    p = visual.conv1.kernel_size[0]
    with torch.no_grad():
        pos = pos_embed(height // p, width // p, torch.float32, visual.positional_embedding.device)
        out.positional_embedding = torch.nn.Parameter(pos.clone())
    return out.eval()


def main(argv=None) -> int:
    p = C.parser(__doc__.splitlines()[1])
    p.add_argument("--model", default=None, help="open_clip name or config JSON (default ViT-B-16; quick: tiny)")
    p.add_argument("--sizes", type=int, nargs="+", help="square input sizes (default 224 448)")
    p.add_argument("--batch", type=int, nargs="+", help="windows per forward, one per size (default 8 2)")
    p.add_argument("--depth", type=int, default=6)
    p.add_argument("--precisions", nargs="+", choices=tuple(DTYPES), help="default: fp32 (CPU), fp32 fp16 (CUDA)")
    p.add_argument("--sweep-batches", type=int, nargs="*", default=None,
                   help="also: surgery windows/s at the first size for these batch sizes, taking turns "
                   "(default 1 4 8 16 32; quick 1 2; none: off)")
    args = p.parse_args(argv)
    device = C.setup(args)
    from clip_surgery_seg.models import SurgeryCLIP, build_clip

    model_name = args.model or (TINY_VIT if args.quick else "ViT-B-16")
    sizes = args.sizes or ([64, 128] if args.quick else [224, 448])
    batches = args.batch or ([2, 1] if args.quick else [8, 2])
    batches = (batches * len(sizes))[: len(sizes)] if len(batches) == 1 else batches
    precisions = args.precisions or (["fp32", "fp16"] if device.type == "cuda" else ["fp32"])
    clip, tokenizer = build_clip(model_name, pretrained=None, device=device)
    surgery = SurgeryCLIP(clip, tokenizer, method=dict(type="clip_surgery", depth=args.depth))
    shapes = vit_shapes(clip.visual)
    C.header(f"Image encoder: surgery forward vs open_clip forward ({Path(model_name).name}, random weights, "
             f"depth {args.depth})", device)

    peaks = {prec: matmul_peak(device, prec, args.quick, args.warmup, args.repeats) for prec in precisions}
    rows, data = [], []
    for size, batch in zip(sizes, batches):
        images = torch.randn(batch, 3, size, size, device=device)
        flops = vit_flops(shapes, size, size, args.depth)
        vanilla = vanilla_visual(clip.visual, size, size, surgery._pos_embed)
        depth0 = SurgeryCLIP(clip, tokenizer, method=dict(type="clip_surgery", depth=0))
        with torch.inference_mode():
            check = float((vanilla(images) - depth0.encode_image_tokens(images)[:, 0]).abs().max())
        counted = counted_reference_flops(surgery, size, size)
        for prec in precisions:
            def run_surgery():
                with autocast(device, prec):
                    return surgery.encode_image_tokens(images)

            def run_vanilla():
                with torch.inference_mode(), autocast(device, prec):
                    return vanilla(images)

            t_surgery, t_vanilla = C.time_interleaved([run_surgery, run_vanilla], device, args.warmup,
                                                      args.repeats)
            ceiling = peaks[prec]["flops_per_s"] / flops["surgery"]
            achieved = batch / t_surgery
            result = {"size": size, "batch": batch, "precision": prec, "tokens": flops["tokens"],
                      "surgery_windows_per_s": achieved, "vanilla_windows_per_s": batch / t_vanilla,
                      "overhead_pct": 100 * (t_surgery / t_vanilla - 1),
                      "gflops_per_window_surgery": flops["surgery"] / 1e9,
                      "gflops_per_window_vanilla": flops["vanilla"] / 1e9,
                      "gflops_counted_surgery": counted / 1e9,
                      "matmul_peak_gflops": peaks[prec]["flops_per_s"] / 1e9,
                      "ceiling_windows_per_s": ceiling, "achieved_over_ceiling_pct": 100 * achieved / ceiling,
                      "achieved_gflops": achieved * flops["surgery"] / 1e9,
                      "vanilla_cls_vs_depth0_max_abs_diff": check}
            data.append(result)
            rows.append([size, batch, prec, flops["tokens"], result["vanilla_windows_per_s"], achieved,
                         result["overhead_pct"], result["gflops_per_window_vanilla"],
                         result["gflops_per_window_surgery"], result["gflops_counted_surgery"],
                         result["matmul_peak_gflops"], ceiling, result["achieved_over_ceiling_pct"]])
    print(C.table(["size", "batch", "precision", "tokens", "vanilla win/s", "surgery win/s", "surgery extra %",
                   "GFLOP/win vanilla", "GFLOP/win surgery", "GFLOP/win counted", "matmul peak GFLOP/s",
                   "ceiling win/s", "achieved/ceiling %"], rows, digits=2))
    print("\nmatmul peak: best of " + "; ".join(f"{k}: {v['shape']} {v['dtype']}" for k, v in peaks.items())
          + ". GFLOP/win from the model's shapes (2 x multiply-adds of every matrix product); 'counted': "
          "torch FlopCounterMode on the surgery forward with the fused kernels decomposed (a check). ceiling = matmul peak / GFLOP per surgery window.")
    print(f"same model: max |vanilla CLS embedding - surgery depth-0 CLS| = "
          f"{max(r['vanilla_cls_vs_depth0_max_abs_diff'] for r in data):.2e}")
    sweep = args.sweep_batches if args.sweep_batches is not None else ([1, 2] if args.quick else [1, 4, 8, 16, 32])
    sweep_rows = []
    if sweep:
        size = sizes[0]
        inputs = {b: torch.randn(b, 3, size, size, device=device) for b in sweep}
        fns = [lambda x=inputs[b]: surgery.encode_image_tokens(x) for b in sweep]
        seconds = C.time_interleaved(fns, device, args.warmup, args.repeats)
        sweep_rows = [{"batch": b, "windows_per_s": b / t} for b, t in zip(sweep, seconds)]
        print(f"\n### Windows per batch: surgery forward at {size}x{size}, {precisions[0]}, batch sizes taking turns\n")
        print(C.table(["batch", "windows/s"], [[r["batch"], r["windows_per_s"]] for r in sweep_rows], digits=2))
    C.write_json(args.json, {"model": model_name, "rows": data, "matmul_peak": peaks, "batch_sweep": sweep_rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
