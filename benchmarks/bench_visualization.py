#!/usr/bin/env python
"""Benchmark 6: the cost of pictures (``--show-dir``, ``--save-preds``): render vs PNG encode.

Per image size (ADE20K's 512 x 683 with 150 classes, Cityscapes' 1024 x 2048 with 19): the panel
(image | ground truth / prediction | errors + legend) and the overlay, rendered with numpy + PIL;
the PNG encoding of the panel and of the index map (what ``--save-preds`` writes) at zlib levels
1 and 6; and the background writer's throughput (``PngWriter``, 2 threads) on a batch of panels.

Then the cost beside a busy model, as ``--show-dir`` has it: the tiny random ViT segments ADE20K-size
images (150 classes, all CPU threads) alone, then while a ``PngWriter`` draws and encodes each
image's panel, its threads at the default lowest CPU priority or at the model's priority; the
three take turns ``--repeats`` times and the fastest of each is kept. "Added" is the loop's wall
time until the last panel is written, minus the model alone, per image.

The photo is mmseg's demo street frame (shared fixtures) resized to each size, with the shared
Cityscapes frame's ground truth resized to it; the prediction is the ground truth with shifted
bands (about 15 % wrong). Without the fixtures, a synthetic gradient with noise stands in.
Upscaling smooths a photo, so grain (Gaussian, sigma 3) is added back: encode costs of real
dataset images are of this order, a little higher for noisy ones.

    python benchmarks/bench_visualization.py
    python benchmarks/bench_visualization.py --quick           # small sizes (the smoke test)
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmarks import _common as C  # noqa: E402

SIZES = {"ADE20K 512x683": (512, 683, 150, "ADE20KDataset"),
         "Cityscapes 1024x2048": (1024, 2048, 19, "CityscapesDataset")}
QUICK_SIZES = {"small 96x128": (96, 128, 150, "ADE20KDataset"), "small 128x256": (128, 256, 19, "CityscapesDataset")}


def _fixtures() -> Path:
    """The shared real-format inputs: CSS_SHARED_FIXTURES, or ../shared/fixtures beside the checkout."""
    folder = Path(os.environ.get("CSS_SHARED_FIXTURES") or C.REPO.parent / "shared" / "fixtures")
    return folder / "mmseg_samples"


def make_inputs(height: int, width: int, num_classes: int, seed: int = 0) -> Tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """``(image (H, W, 3) uint8, label (H, W) uint8, pred (H, W) uint8, source)``."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    samples = _fixtures()
    photo = samples / "demo" / "demo.png"
    gt_file = (samples / "pseudo_cityscapes_dataset" / "gtFine" / "val" / "frankfurt"
               / "frankfurt_000000_000294_gtFine_labelTrainIds.png")
    if photo.is_file() and gt_file.is_file():
        image = np.asarray(Image.open(photo).convert("RGB").resize((width, height), Image.BILINEAR), dtype=np.float32)
        label = np.asarray(Image.open(gt_file).resize((width, height), Image.NEAREST)).copy()
        source = "mmseg demo photo + Cityscapes ground truth (shared fixtures)"
    else:
        yy, xx = np.mgrid[0:height, 0:width]
        image = np.stack([xx * 255.0 / width, yy * 255.0 / height, np.full((height, width), 120.0)], -1)
        label = ((yy // max(1, height // 4)) * 4 + xx // max(1, width // 4)).astype(np.uint8)
        source = "synthetic gradient and blocks (shared fixtures not found)"
    image = np.clip(image + rng.normal(0, 3, image.shape), 0, 255).astype(np.uint8)
    if num_classes > 19:  # spread the 19 Cityscapes ids over the dataset's classes
        label = np.where(label == 255, 255, (label.astype(np.int64) * 7) % num_classes).astype(np.uint8)
    pred = np.where(label == 255, 0, label).astype(np.uint8)
    for top in range(0, height, max(1, height // 8))[1::3]:  # shifted bands: ~15 % wrong, mostly edges
        band = slice(top, top + max(1, height // 16))
        pred[band] = np.roll(pred[band], width // 10, axis=1)
    return image, label, pred, source


def beside_a_model(image: np.ndarray, label: np.ndarray, palette: np.ndarray, names: List[str], images: int,
                   args, device) -> List[Dict]:
    """The model loop alone and with panels written in the background (see the module docstring)."""
    import torch
    from mmseg.registry import MODELS

    import clip_surgery_seg.registry  # noqa: F401
    import clip_surgery_seg.visualization.writer as writer_module
    from clip_surgery_seg.visualization import PngWriter, render_panel

    small = {"short_side": 64, "crop_size": 32, "stride": 16} if args.quick else {}
    with tempfile.TemporaryDirectory() as cache:
        tiny = str(C.REPO / "tests" / "assets" / "tiny-vit.json")
        model = MODELS.build(dict(type="CLIPSurgerySegmentor", clip=dict(name=tiny), classnames=names,
                                  templates=["a photo of a {}."], text_cache_dir=cache, protocol=small)).eval()
        model.text_features()
    x = (torch.from_numpy(image).permute(2, 0, 1).float() - 120.0) / 60.0
    default = writer_module.BACKGROUND_NICENESS
    modes = {"model alone": None, "+ panels, writer at the lowest priority (default)": default,
             "+ panels, writer at the model's priority": 0}
    runs: Dict[str, List[Tuple[float, float]]] = {m: [] for m in modes}
    try:
        for _ in range(args.warmup + max(1, args.repeats)):
            for mode, niceness in modes.items():
                with tempfile.TemporaryDirectory() as folder:
                    writer = None
                    if niceness is not None:
                        writer_module.BACKGROUND_NICENESS = niceness  # read by each new writer thread
                        writer = PngWriter(workers=2)
                    start, cpu = time.perf_counter(), time.process_time()
                    for i in range(images):
                        pred = model.seg_labels([x], [image.shape[:2]])[0].to(torch.uint8).numpy()
                        if writer is not None:
                            writer.submit(Path(folder) / f"{i}.png",
                                          lambda pred=pred: render_panel(image, label, pred, palette, names))
                    if writer is not None:
                        writer.close()
                    runs[mode].append((time.perf_counter() - start, time.process_time() - cpu))
    finally:
        writer_module.BACKGROUND_NICENESS = default
    runs = {m: r[args.warmup:] for m, r in runs.items()}
    alone = min(w for w, _ in runs["model alone"])
    alone_cpu = min(c for _, c in runs["model alone"])
    rows = []
    for mode, record in runs.items():
        wall, cpu = min(w for w, _ in record), min(c for _, c in record)
        rows.append({"mode": mode, "images": images, "wall_s": wall, "ms_per_image": 1000 * wall / images,
                     "added_ms_per_image": 1000 * (wall - alone) / images,
                     "added_cpu_ms_per_image": 1000 * (cpu - alone_cpu) / images})
    return rows


def main(argv=None) -> int:
    p = C.parser(__doc__.splitlines()[1])
    p.add_argument("--batch", type=int, default=None, help="panels written through PngWriter (default 24; quick 6)")
    p.add_argument("--loop-images", type=int, default=None,
                   help="images per run beside the model (default 12; quick 3)")
    args = p.parse_args(argv)
    device = C.setup(args)
    from clip_surgery_seg.visualization import PngWriter, encode_png, palette_for, render_overlay, render_panel

    sizes = QUICK_SIZES if args.quick else SIZES
    batch = args.batch or (6 if args.quick else 24)
    C.header("Pictures: panel render vs PNG encode (numpy + PIL, one CPU thread each)", device)
    try:  # times on a shared machine: say how busy it was
        print(f"load average at start: {Path('/proc/loadavg').read_text().split()[0]}\n")
    except OSError:
        pass
    rows: List[Dict] = []
    table = []
    source = ""
    for name, (height, width, k, dataset_type) in sizes.items():
        image, label, pred, source = make_inputs(height, width, k)
        palette = palette_for(k, dataset_type)
        names = [f"class {i}" for i in range(k)]
        panel = render_panel(image, label, pred, palette, names, title=f"{name}  mIoU 42.00%")
        full = render_panel(image, label, pred, palette, names, max_side=None)
        timings = C.time_interleaved([
            lambda: render_panel(image, label, pred, palette, names, title="x"),
            lambda: render_panel(image, label, pred, palette, names, max_side=None),
            lambda: render_overlay(image, pred, palette, names),
            lambda: encode_png(panel, compress_level=1),
            lambda: encode_png(panel, compress_level=6),
            lambda: encode_png(full, compress_level=1),
            lambda: encode_png(pred, compress_level=1),
            lambda: encode_png(pred, compress_level=6),
        ], device, args.warmup, args.repeats)
        ms = [1000 * t for t in timings]
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            with PngWriter(workers=2, max_pending=8) as writer:
                for i in range(batch):
                    writer.submit(Path(folder) / f"{i}.png", render_panel(image, label, pred, palette, names))
            wall = time.perf_counter() - start
            written = len(list(Path(folder).glob("*.png")))
        row = {"size": name, "classes": k, "panel_px": f"{panel.pixels.shape[1]}x{panel.pixels.shape[0]}",
               "render_panel_ms": ms[0], "render_panel_full_ms": ms[1], "render_overlay_ms": ms[2],
               "encode_panel_l1_ms": ms[3], "encode_panel_l6_ms": ms[4], "encode_panel_full_l1_ms": ms[5],
               "encode_index_l1_ms": ms[6], "encode_index_l6_ms": ms[7],
               "panel_kib_l1": len(encode_png(panel, compress_level=1)) / 1024,
               "panel_kib_l6": len(encode_png(panel, compress_level=6)) / 1024,
               "writer_panels_per_s": batch / wall, "writer_written": written, "writer_batch": batch}
        rows.append(row)
        table.append([name, row["panel_px"], ms[0], ms[3], ms[4], ms[1], ms[5], ms[2], ms[6], ms[7],
                      f"{row['panel_kib_l1']:.0f} / {row['panel_kib_l6']:.0f}", batch / wall])
    print(C.table(["image", "panel px", "render panel ms", "encode panel ms (zlib 1)", "encode panel ms (zlib 6)",
                   "render full-res panel ms", "encode full-res panel ms (zlib 1)", "render overlay ms",
                   "encode index PNG ms (zlib 1)", "encode index PNG ms (zlib 6)", "panel KiB (1 / 6)",
                   "PngWriter panels/s (render here + 2 threads)"], table, digits=1))
    print(f"\nInputs: {source}. Fastest of {args.repeats} runs after {args.warmup} warm-up. "
          "Panels shrink tiles to a 1024-pixel long side by default (render_panel(max_side=1024)); "
          "'full-res' keeps every pixel (max_side=None). The index PNG is the (H, W) uint8 prediction "
          "that --save-preds writes.")
    first = next(iter(sizes))
    height, width, k, dataset_type = sizes[first]
    image, label, _, _ = make_inputs(height, width, k)
    loop = beside_a_model(image, label, palette_for(k, dataset_type), [f"class {i}" for i in range(k)],
                          args.loop_images or (3 if args.quick else 12), args, device)
    print(f"\n### Beside a busy model: the tiny random ViT segmenting {first} images, {k} classes\n")
    print(C.table(["loop", "images", "wall s", "ms/image", "added ms/image", "added CPU ms/image"],
                  [[r["mode"], r["images"], r["wall_s"], r["ms_per_image"], r["added_ms_per_image"],
                    r["added_cpu_ms_per_image"]] for r in loop], digits=1))
    print(f"\nFastest of {args.repeats} runs each, taking turns; wall until the last panel is written; CPU = this "
          "process's CPU time, all threads. Compare 'added' with 'render panel ms' + 'encode panel ms (zlib 1)' "
          "above: what the pictures would cost if the loop drew them itself.")
    C.write_json(args.json, {"pictures": rows, "beside_a_model": loop})
    return 0


if __name__ == "__main__":
    sys.exit(main())
