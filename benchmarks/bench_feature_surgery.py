#!/usr/bin/env python
"""Benchmark 1: feature surgery (weighted mode), matrix-product form against the element-wise form.

The library computes ``S = w ∘ (F Tᵀ) - mean_k(w ∘ F Tᵀ)`` with matrix products in O(B·N·K)
memory; the authors' code materialises the (B, N, K, D) element-wise product. Same numbers: the
table gives time, peak memory and the max abs difference.

    python benchmarks/bench_feature_surgery.py                     # N=785,K=171 and N=197,K=150, D=512
    python benchmarks/bench_feature_surgery.py --shapes 1x785x171x512 --device cuda
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks import _common as C  # noqa: E402

DEFAULT_SHAPES = ["1x785x171x512", "1x197x150x512", "8x197x150x512"]
QUICK_SHAPES = ["1x50x12x32", "2x17x9x16"]


def elementwise_weighted(image_feats: torch.Tensor, text_feats: torch.Tensor) -> torch.Tensor:
    """The authors' form (per-image weights): the (B, N, K, D) product, centred over K, summed over D."""
    feats = torch.nn.functional.normalize(image_feats, dim=-1)
    prob = (2 * (feats[:, :1] @ text_feats.t())).softmax(dim=-1)  # (B, 1, K)
    w = prob / prob.mean(dim=-1, keepdim=True)
    b, n, d = feats.shape
    k = text_feats.shape[0]
    prod = feats.reshape(b, n, 1, d) * text_feats.reshape(1, 1, k, d)
    prod = prod * w.reshape(b, 1, k, 1)
    prod = prod - prod.mean(dim=2, keepdim=True)
    return prod.sum(dim=-1)


def _inputs(b: int, n: int, k: int, d: int, device: str):
    g = torch.Generator().manual_seed(0)
    image = torch.randn(b, n, d, generator=g).to(device)
    text = torch.nn.functional.normalize(torch.randn(k, d, generator=g), dim=-1).to(device)
    return image, text


def make_fn(form: str, b: int, n: int, k: int, d: int, device: str = "cpu"):
    """Zero-argument call of one form on fixed inputs (also the memory probe's factory)."""
    from clip_surgery_seg.models import feature_surgery

    image, text = _inputs(b, n, k, d, device)
    if form == "matmul":
        return lambda: feature_surgery(image, text, "weighted")
    return lambda: elementwise_weighted(image, text)


def main(argv=None) -> int:
    p = C.parser(__doc__.splitlines()[1])
    p.add_argument("--shapes", nargs="+", help="BxNxKxD, e.g. 1x785x171x512")
    args = p.parse_args(argv)
    device = C.setup(args)
    shapes = args.shapes or (QUICK_SHAPES if args.quick else DEFAULT_SHAPES)
    C.header("Feature surgery, weighted mode: matrix products vs element-wise (B, N, K, D)", device)
    rows, data = [], []
    for shape in shapes:
        b, n, k, d = (int(v) for v in shape.lower().split("x"))
        image, text = _inputs(b, n, k, d, str(device))
        from clip_surgery_seg.models import feature_surgery

        with torch.inference_mode():
            diff = float((feature_surgery(image, text, "weighted").double()
                          - elementwise_weighted(image.double(), text.double())).abs().max())
            diff_fp32 = float((feature_surgery(image, text, "weighted")
                               - elementwise_weighted(image, text)).abs().max())
        result = {"B": b, "N": n, "K": k, "D": d, "max_abs_diff": diff_fp32, "max_abs_diff_vs_fp64": diff}
        forms = ("matmul", "elementwise")
        with torch.inference_mode():
            seconds = C.time_interleaved([make_fn(form, b, n, k, d, str(device)) for form in forms], device,
                                         args.warmup, args.repeats)
        for form, sec in zip(forms, seconds):
            peak = C.measure_peak(args, device, "benchmarks.bench_feature_surgery", "make_fn",
                                  dict(form=form, b=b, n=n, k=k, d=d))
            result[f"{form}_ms"] = sec * 1e3
            result[f"{form}_peak_mib"] = None if peak is None else peak / C.MiB
        rows.append([f"{b}x{n}x{k}x{d}", result["matmul_ms"], result["elementwise_ms"],
                     result["elementwise_ms"] / result["matmul_ms"], result["matmul_peak_mib"],
                     result["elementwise_peak_mib"], result["max_abs_diff"], result["max_abs_diff_vs_fp64"]])
        data.append(result)
    print(C.table(["B×N×K×D", "matmul ms", "element-wise ms", "speed-up", "matmul peak MiB",
                   "element-wise peak MiB", "max abs diff", "max abs diff (fp64 ref)"], rows))
    print("\nmax abs diff: matmul form vs element-wise form, both fp32 on the device; "
          "fp64 ref: matmul form (fp32) vs element-wise form in float64.")
    C.write_json(args.json, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
