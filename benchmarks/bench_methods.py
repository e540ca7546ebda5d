#!/usr/bin/env python
"""Benchmark 7: switching methods -- N methods x 1 dataset in one tools/reproduce.py run vs N tools/eval.py runs.

Writes synthetic data for one dataset, then evaluates every chosen method on it twice, each way in
fresh processes and with its own empty text-embedding cache:

* ``reproduce``: ``tools/reproduce.py --methods ...`` -- one process, one CLIP load shared by every
  method, the text embeddings of each template set encoded once and then read from the cache;
* ``separate``: one ``tools/eval.py configs/<method>/<dataset>.py`` process per method -- a Python
  start, imports and a CLIP load each; the text cache persists on disk between them too.

It reports each way's wall time (process start to exit), the CLIP loads, the time the text
embeddings took, and checks that both ways give the same per-class numbers for every method.

    python benchmarks/bench_methods.py                        # 6 methods, 8 Cityscapes-like images, random ViT-B/16
    python benchmarks/bench_methods.py --device cuda --images 50 --dataset ade20k
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _common as C  # noqa: E402

TINY_VIT = str(C.REPO / "tests" / "assets" / "tiny-vit.json")


def _env(cache: Path, threads) -> dict:
    env = dict(os.environ, CLIP_SURGERY_SEG_CACHE=str(cache), PYTHONPATH=str(C.REPO))
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def _run(cmd, cache: Path, args) -> float:
    """Run ``cmd`` in the repository; its wall time from process start to exit."""
    start = time.perf_counter()
    result = subprocess.run([sys.executable, *cmd], cwd=C.REPO, env=_env(cache, args.threads), capture_output=True,
                            text=True, timeout=args.timeout)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return wall


def _metrics(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())


def main(argv=None) -> int:
    p = C.parser(__doc__.splitlines()[1])
    p.add_argument("--model", default=None, help="open_clip name or config JSON (default ViT-B-16; quick: tiny)")
    p.add_argument("--methods", nargs="+", default=None, help="default: all, in the registry's order")
    p.add_argument("--dataset", default="cityscapes", help="a catalogue dataset (default cityscapes: 19 classes)")
    p.add_argument("--images", type=int, default=None, help="synthetic images (default 8; quick 2)")
    p.add_argument("--image-size", type=int, nargs=2, default=None, help="default 256 512 (quick 64 96)")
    p.add_argument("--cfg-options", nargs="*", default=None,
                   help="--cfg-options of every run (default protocol.short_side=224: three windows per image)")
    p.add_argument("--timeout", type=float, default=3600)
    args = p.parse_args(argv)
    device = C.setup(args)
    from clip_surgery_seg.datasets.synthetic import write_synthetic
    from clip_surgery_seg.models.methods import METHODS

    q = args.quick
    model = args.model or (TINY_VIT if q else "ViT-B-16")
    methods = [m for m in METHODS if m in (args.methods or list(METHODS))]
    images = args.images or (2 if q else 8)
    size = tuple(args.image_size) if args.image_size else ((64, 96) if q else (256, 512))
    options = args.cfg_options if args.cfg_options is not None else (
        ["protocol.short_side=64", "protocol.crop_size=32", "protocol.stride=16"] if q else ["protocol.short_side=224"])
    common = ["--data-root", None, "--model", model, "--pretrained", "none", "--quiet",
              "--device", args.device.split(":")[0], "--cfg-options", "test_dataloader.num_workers=0", *options]
    C.header(f"Switching methods: {len(methods)} methods x 1 dataset ({images} synthetic {args.dataset} images "
             f"{size[0]}x{size[1]}, {Path(model).name}, random weights)", device)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_synthetic(args.dataset, root / "data", num_images=images, image_size=size)
        common[1] = str(root / "data")

        run_dir = root / "reproduce"
        together = _run([str(C.REPO / "tools" / "reproduce.py"), "--methods", *methods, "--datasets", args.dataset,
                         "--out", str(run_dir), "--history", "none", *common], root / "cache-reproduce", args)
        summary = json.loads((run_dir / "summary.json").read_text())
        loads = summary["datasets"][args.dataset]["model_loads"]
        shared = {m: _metrics(run_dir / m / args.dataset) for m in methods}

        apart, alone = 0.0, {}
        for method in methods:
            work = root / "separate" / method
            apart += _run([str(C.REPO / "tools" / "eval.py"), f"configs/{method}/{args.dataset}.py", "--work-dir",
                           str(work), *common], root / "cache-separate", args)
            alone[method] = _metrics(work)

    same = all(shared[m]["per_class"] == alone[m]["per_class"] for m in methods)
    text = {"reproduce": sum(r["timing"]["text_s"] for r in shared.values()),
            "separate": sum(r["timing"]["text_s"] for r in alone.values())}
    evaluated = {"reproduce": sum(r["timing"]["wall_s"] for r in shared.values()),
                 "separate": sum(r["timing"]["wall_s"] for r in alone.values())}
    rows = [{"way": "reproduce.py --methods", "processes": 1, "clip_loads": loads, "wall_s": together,
             "evaluate_s": evaluated["reproduce"], "text_s": text["reproduce"]},
            {"way": f"{len(methods)} x eval.py", "processes": len(methods), "clip_loads": len(methods), "wall_s": apart,
             "evaluate_s": evaluated["separate"], "text_s": text["separate"]}]
    print(C.table(["way", "processes", "CLIP loads", "wall s", "in evaluate() s", "text s", "per method s"],
                  [[r["way"], r["processes"], r["clip_loads"], r["wall_s"], r["evaluate_s"], r["text_s"],
                    r["wall_s"] / len(methods)] for r in rows], digits=2))
    print(f"\nspeed-up {apart / together:.2f}x; same per-class numbers for every method: {C.fmt(same)}. "
          "wall = process start to exit (all processes); in evaluate() = the sum of the runs' metrics.json "
          "timing.wall_s (model build, text, data, loop); text = the class embeddings' share of it (each "
          "template set encoded once per way, then read from the cache).")
    for row in rows:
        row["same_numbers"] = same
    C.write_json(args.json, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
