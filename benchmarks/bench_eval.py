#!/usr/bin/env python
"""Benchmark 5: a whole evaluation (tools/eval.py) on synthetic data: where the wall time goes.

Writes synthetic ADE20K-sized data (512x683 JPEG/PNG pairs, clip_surgery_seg.datasets.synthetic),
then runs ``tools/eval.py configs/ade20k.py --model ViT-B-16 --pretrained none --save-preds ...`` in a
fresh process for each setting and reads the ``timing`` block of its metrics.json: the share of the
wall time spent waiting for data, in the model, in the metric and writing predictions (target:
data + metric + writing <= 10 % on CPU, with decoding in DataLoader workers overlapping the model).

The text embeddings use one template (``--templates 1``) so that the text tower, which is
benchmark 4's subject, does not dominate a short run; its time is still reported (text %).

``--show-dir``: every setting runs twice, without and with ``--show-dir`` (a panel per image,
rendered and encoded on the background writer's threads), and a second table gives the added wall
time per image next to the render and PNG-encode time of one panel of the same images (measured
here, in one thread, on panels of the run's own predictions), and the added time for 5,000 images.

    python benchmarks/bench_eval.py                                   # 16 images, workers 0 and 2
    python benchmarks/bench_eval.py --device cuda --images 500 --batch-sizes 16 --precision bf16
    python benchmarks/bench_eval.py --show-dir --images 200 --model tests/assets/tiny-vit.json --workers 2
    python benchmarks/bench_eval.py --resize mmseg device            # the faithful resize against the device's

``--resize``: each setting runs with each resize of the protocol (``mmseg``: mmcv's resize of the
decoded uint8 image in the data preprocessor, the default; ``device``: bilinear on the normalised
float image on the device), taking turns, and a last line gives the images/s ratio.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _common as C  # noqa: E402

TINY_VIT = str(C.REPO / "tests" / "assets" / "tiny-vit.json")


def write_config(folder: Path, dataset: str, templates: str) -> Path:
    """A config inheriting configs/<dataset>.py; ``templates``: a template-set name or '1' (one template)."""
    value = "['a photo of a {}.']" if templates == "1" else repr(templates)
    path = folder / f"bench_{dataset}.py"
    path.write_text(f"_base_ = [{str(C.REPO / 'configs' / f'{dataset}.py')!r}]\nmodel = dict(templates={value})\n")
    return path


def run_eval(config: Path, data_root: Path, work: Path, cache: Path, args, workers: int, batch: int,
             show: bool = False, resize: str = "mmseg") -> dict:
    cmd = [sys.executable, str(C.REPO / "tools" / "eval.py"), str(config), "--data-root", str(data_root),
           "--work-dir", str(work), "--model", args.model, "--pretrained", "none", "--quiet",
           "--device", args.device.split(":")[0], "--save-preds", str(work / "preds"),
           *(["--show-dir", str(work / "show")] if show else []), "--resize", resize,
           "--cfg-options", f"test_dataloader.num_workers={workers}", f"test_dataloader.batch_size={batch}",
           f"model.precision={args.precision}", *args.cfg_options]
    env = dict(os.environ, CLIP_SURGERY_SEG_CACHE=str(cache), PYTHONPATH=str(C.REPO))
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    start, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run(cmd, cwd=C.REPO, env=env, capture_output=True, text=True, timeout=args.timeout)
    process_s = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise RuntimeError(f"tools/eval.py failed ({result.returncode}):\n{result.stderr[-3000:]}")
    metrics = json.loads((work / "metrics.json").read_text())
    timing = dict(metrics["timing"])
    timing["process_s"] = process_s
    timing["work_dir"] = str(work)
    # CPU seconds of the whole process (all threads): less sensitive than wall time to a busy machine
    timing["process_cpu_s"] = (after.ru_utime - cpu.ru_utime) + (after.ru_stime - cpu.ru_stime)
    timing["num_images"] = metrics["dataset"]["num_images"]
    timing["saved"] = len(list((work / "preds").rglob("*.png")))
    timing["panels"] = len(list((work / "show").glob("*.png"))) if show else 0
    return timing


def panel_costs(data_root: Path, dataset: str, preds: Path, samples: int, device) -> dict:
    """ms to render one panel and to encode it (zlib 1, what ``--show-dir`` writes), one thread,
    fastest of three, averaged over ``samples`` of the run's images with their saved predictions."""
    import numpy as np
    from PIL import Image

    from clip_surgery_seg.datasets import catalog
    from clip_surgery_seg.datasets.transforms import encode_label, read_image_rgb, read_label
    from clip_surgery_seg.visualization import encode_png, palette_for, render_panel

    info = catalog.CATALOG[dataset]
    layout = info.layout(data_root)
    names = [f"class {k}" for k in range(info.num_classes)]
    palette = palette_for(info.num_classes, info.dataset_type)
    render_ms, encode_ms, kib = [], [], []
    for pred_file in sorted(preds.rglob("*.png"))[:samples]:
        key = pred_file.relative_to(preds).with_suffix("").as_posix()  # --save-preds names files by image key
        image = read_image_rgb(str(layout.image_path(key)))
        label = encode_label(read_label(str(layout.label_path(key))), layout.reduce_zero_label)
        pred = np.asarray(Image.open(pred_file))
        panel = render_panel(image, label, pred, palette, names, title=f"{key}   mIoU 12.34")
        render, encode = C.time_interleaved([lambda: render_panel(image, label, pred, palette, names, title="x"),
                                             lambda: encode_png(panel)], device, 1, 3)
        render_ms.append(1000 * render)
        encode_ms.append(1000 * encode)
        kib.append(len(encode_png(panel)) / 1024)
    return {"render_ms": sum(render_ms) / len(render_ms), "encode_ms": sum(encode_ms) / len(encode_ms),
            "panel_kib": sum(kib) / len(kib)}


def show_dir_cost(config: Path, data_root: Path, root: Path, cache: Path, args, workers: int, batch: int,
                  first: dict, device) -> list:
    """Runs without and with ``--show-dir`` taking turns (``--repeats`` each, the first run without is
    ``first``); the fastest of each. Updates ``first`` with the figures; returns the table row."""
    plain, shown = [first], []
    for r in range(max(1, args.repeats)):
        if r:
            plain.append(run_eval(config, data_root, root / f"work_w{workers}_b{batch}_r{r}", cache, args, workers,
                                  batch))
        shown.append(run_eval(config, data_root, root / f"work_w{workers}_b{batch}_show{r}", cache, args, workers,
                              batch, show=True))
    # without the text embeddings: the first run of the benchmark encodes them, the others read the cache
    without = min(t["wall_s"] - t["text_s"] for t in plain)
    best = min(shown, key=lambda t: t["wall_s"] - t["text_s"])
    with_ = best["wall_s"] - best["text_s"]
    n = first["num_images"]
    added = (with_ - without) / n
    waited = (best["write_s"] - min(t["write_s"] for t in plain)) / n
    cpu = (min(t["process_cpu_s"] for t in shown) - min(t["process_cpu_s"] for t in plain)) / n
    costs = panel_costs(data_root, args.dataset, Path(first["work_dir"]) / "preds", 2 if args.quick else 8, device)
    first.update(plain_walls_s=[t["wall_s"] - t["text_s"] for t in plain],
                 show_walls_s=[t["wall_s"] - t["text_s"] for t in shown],
                 plain_cpu_s=[t["process_cpu_s"] for t in plain], show_cpu_s=[t["process_cpu_s"] for t in shown])
    first.update(show_wall_s=with_, plain_wall_s=without, show_write_s=best["write_s"], panels=best["panels"],
                 added_ms_per_image=1000 * added, loop_wait_ms_per_image=1000 * waited,
                 added_cpu_ms_per_image=1000 * cpu,
                 **{f"panel_{k}": v for k, v in costs.items()})
    return [workers, batch, n, len(plain), without, with_, 1000 * added, 1000 * waited, 1000 * cpu,
            costs["render_ms"], costs["encode_ms"], 1000 * added <= costs["render_ms"] + costs["encode_ms"],
            5000 * added / 60,
            best["panels"]]


def main(argv=None) -> int:
    p = C.parser(__doc__.splitlines()[1])
    p.add_argument("--model", default=None, help="open_clip name or config JSON (default ViT-B-16; quick: tiny)")
    p.add_argument("--dataset", default="ade20k", choices=("ade20k", "coco_stuff171", "cityscapes",
                                                           "pascal_context59"))
    p.add_argument("--images", type=int, default=None, help="synthetic images (default 16; quick 4)")
    p.add_argument("--image-size", type=int, nargs=2, default=None, help="default: the dataset's typical size")
    p.add_argument("--workers", type=int, nargs="+", default=None, help="DataLoader workers per run (default 0 2)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1], help="images per predict() call")
    p.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "bf16"))
    p.add_argument("--templates", default="1", help="'1' (one template) or a template-set name")
    p.add_argument("--cfg-options", nargs="*", default=[], help="more tools/eval.py --cfg-options")
    p.add_argument("--work-root", help="keep data and work dirs here (default: a temporary folder)")
    p.add_argument("--timeout", type=float, default=1800)
    p.add_argument("--show-dir", action="store_true", help="also run each setting with --show-dir and report its cost")
    p.add_argument("--resize", nargs="+", default=["mmseg"], choices=("mmseg", "device"),
                   help="the protocol's resize; several: each setting with each, and their images/s ratio")
    args = p.parse_args(argv)
    device = C.setup(args)
    from clip_surgery_seg.datasets.synthetic import write_synthetic

    q = args.quick
    args.model = args.model or (TINY_VIT if q else "ViT-B-16")
    images = args.images or (4 if q else 16)
    workers = args.workers if args.workers is not None else ([0, 1] if q else [0, 2])
    size = tuple(args.image_size) if args.image_size else ((96, 128) if q else None)
    if q:
        args.cfg_options = ["protocol.short_side=64", "protocol.crop_size=32", "protocol.stride=16", *args.cfg_options]
    C.header(f"Whole evaluation: tools/eval.py on {images} synthetic {args.dataset} images "
             f"({Path(args.model).name}, random weights, {args.precision})", device)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.work_root or tmp)
        root.mkdir(parents=True, exist_ok=True)
        data_root = root / "data"
        write_synthetic(args.dataset, data_root, num_images=images, image_size=size)
        config = write_config(root, args.dataset, args.templates)
        cache = root / "cache"
        rows, data, show_rows = [], [], []
        speed = {}
        for batch in args.batch_sizes:
            for w in workers:
                for resize in args.resize:
                    runs = [run_eval(config, data_root, root / f"work_w{w}_b{batch}_{resize}_{i}", cache, args, w,
                                     batch, resize=resize) for i in range(1 if q else max(1, args.repeats))]
                    t = max(runs, key=lambda r: r["images_per_s"])
                    speed[(w, batch, resize)] = t["images_per_s"]
                    if args.show_dir:
                        show_rows.append(show_dir_cost(config, data_root, root, cache, args, w, batch, t, device))
                    wall = t["wall_s"]
                    share = {k: 100 * t[k] / wall for k in ("data_s", "model_s", "metric_s", "write_s", "text_s")}
                    other = 100 - sum(share.values())
                    overhead = share["data_s"] + share["metric_s"] + share["write_s"]
                    row = {"workers": w, "batch_size": batch, "resize": resize, **t,
                           **{f"{k[:-2]}_pct": v for k, v in share.items()},
                           "other_pct": other, "data_metric_write_pct": overhead}
                    data.append(row)
                    rows.append([w, batch, resize, t["num_images"], wall, t["images_per_s"], share["data_s"],
                                 share["model_s"], share["metric_s"], share["write_s"], share["text_s"], other,
                                 overhead, overhead <= 10])
    print(C.table(["workers", "images/call", "resize", "images", "wall s", "images/s", "data %", "model %", "metric %",
                   "write %", "text %", "other %", "data+metric+write %", "<= 10 %"], rows, digits=2))
    print("\nshares of metrics.json timing.wall_s (evaluate() from start to results): data = waiting for the "
          "DataLoader, model = preprocess + predict, metric = confusion matrices, write = queueing the "
          "prediction PNGs and waiting for the writer at the end, text = class embeddings (first run: "
          "encoded), other = config, data check, model build, loop overheads. The first run encodes the "
          "text embeddings, later runs read them from the cache.")
    if len(args.resize) == 2:
        for (w, batch, resize), value in speed.items():
            if resize == "mmseg":
                device_speed = speed[(w, batch, "device")]
                print(f"\nresize mmseg / device, workers {w}, images/call {batch}: {value:.3f} / {device_speed:.3f} "
                      f"images/s = {value / device_speed:.3f}")
    if show_rows:
        print("\n### --show-dir: added wall time against one panel's render and encode\n")
        print(C.table(["workers", "images/call", "images", "runs each", "wall s without", "wall s with",
                       "added ms/image", "loop waited ms/image", "added CPU ms/image", "render ms/panel",
                       "encode ms/panel (zlib 1)",
                       "added <= render + encode", "added min per 5,000 images", "panels written"], show_rows,
                      digits=1))
        print("\nwall = metrics.json timing.wall_s - text_s (the text embeddings: encoded by the first run, read "
              "from the cache by the others), the fastest of the runs each way, taking turns; added = (wall with - "
              "wall without) / images; loop waited = the loop's own time in the observers (timing.write_s: "
              "submitting, waiting while 16 panels are queued, the final wait), with - without, per image; added CPU: "
              "the process's CPU time (all threads, user + system), fastest with - fastest without, per image; render "
              "and encode: one panel, one thread, measured here on the run's own images. Panels are rendered and "
              "encoded on the PngWriter's 2 threads.")
    C.write_json(args.json, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
