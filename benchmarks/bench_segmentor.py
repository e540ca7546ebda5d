#!/usr/bin/env python
"""Benchmark 3: the segmentor: batched windows against one window at a time, layout, memory, precision.

Sections (each a table):

1. throughput -- windows/s and images/s of ``CLIPSurgerySegmentor.predict`` on synthetic ADE-sized
   images (512x683, short side 336, window 224/112) for one window at a time, batched windows, and
   windows batched across several images per call; the split of the time into the image encoder
   and the rest (similarity, upsampling, accumulation, final resize, argmax); and whether the
   predictions are identical to one window at a time (they must be).
2. layout -- the post-processing alone (window upsampling, accumulation, final resize, argmax at
   K=150) with channels-last tensors (the library's choice) against NCHW.
3. memory -- peak memory of one Cityscapes-sized image (1024x2048 at short side 560, K=19) for
   several window batch sizes (fresh process per figure on CPU; see benchmarks/_common.py).
4. precision -- fp16 and bf16 autocast against fp32: share of pixels whose prediction agrees, and
   the time per image.

The model has random weights (``--pretrained none``) and the class embeddings are random unit
vectors, so no text tower is run here (that is benchmark 4).

    python benchmarks/bench_segmentor.py
    python benchmarks/bench_segmentor.py --device cuda --window-batches 1 32 128 auto --precisions fp16 bf16
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from benchmarks import _common as C  # noqa: E402

CLASSNAMES = C.REPO / "configs" / "classnames"
TINY_VIT = str(C.REPO / "tests" / "assets" / "tiny-vit.json")


def synthetic_images(dataset: str, count: int, size, seed: int = 0):
    """uint8 (3, H, W) images drawn like clip_surgery_seg.datasets.synthetic's."""
    from clip_surgery_seg.datasets.catalog import CATALOG
    from clip_surgery_seg.datasets.synthetic import _image

    rng = np.random.default_rng(seed)
    spec = CATALOG[dataset].synthetic
    out = []
    for _ in range(count):
        label = spec.stored_labels(rng, tuple(size))
        out.append(torch.from_numpy(_image(rng, tuple(size), label)).permute(2, 0, 1).contiguous())
    return out


def build_segmentor(model: str, dataset: str, device: str, **kwargs):
    import clip_surgery_seg.registry  # noqa: F401
    from mmseg.registry import MODELS

    protocol = {k: kwargs.pop(k) for k in ("short_side", "crop_size", "stride") if k in kwargs}
    cfg = dict(type="CLIPSurgerySegmentor", clip=dict(name=model, pretrained=None),
               classnames=str(CLASSNAMES / f"{dataset}.txt"), protocol=protocol, **kwargs)
    seg = MODELS.build(cfg).to(device).eval()
    g = torch.Generator().manual_seed(1)
    rows = len(seg.classes.rows)
    seg._text = F.normalize(torch.randn(rows, seg.surgery.embed_dim, generator=g), dim=-1).to(device)
    return seg


class EncoderClock:
    """Wraps ``surgery.encode_image_tokens`` to add up the time spent in it."""

    def __init__(self, seg, device):
        self.seconds, self.windows, self.device = 0.0, 0, device
        self._inner = seg.surgery.encode_image_tokens
        seg.surgery.encode_image_tokens = self

    def __call__(self, images, **kwargs):
        C.sync(self.device)
        start = time.perf_counter()
        out = self._inner(images, **kwargs)
        C.sync(self.device)
        self.seconds += time.perf_counter() - start
        self.windows += len(images)
        return out

    def reset(self):
        self.seconds, self.windows = 0.0, 0


def seg_labels(seg, inputs, shapes):
    """What predict() computes (also on checkouts older than ``seg_labels``, for before/after runs)."""
    if hasattr(seg, "seg_labels"):
        return seg.seg_labels(inputs, shapes)
    with torch.inference_mode():
        return [seg.labels_from_logits(logits) for logits in seg.seg_logits(inputs, shapes)]


def make_batcher(seg, window_batch_size):
    from clip_surgery_seg.segmentors.sliding import WindowBatcher

    if hasattr(seg, "_bytes_per_window"):
        return WindowBatcher(window_batch_size, seg._bytes_per_window)
    return WindowBatcher(window_batch_size)  # older checkouts


def release_scratch(seg):
    if hasattr(seg, "_scratch"):
        seg._scratch.clear()


def predict_all(seg, images, per_call: int, device):
    """Labels (H, W) of every image through the predict() path, ``per_call`` images per call."""
    labels = []
    for i in range(0, len(images), per_call):
        data = seg.data_preprocessor({"inputs": images[i:i + per_call]})
        labels.extend(seg_labels(seg, data["inputs"], [im.shape[-2:] for im in data["inputs"]]))
    C.sync(device)
    return labels


def first_logits(seg, images):
    """seg_logits of the first image (for the logit difference; not timed)."""
    data = seg.data_preprocessor({"inputs": images[:1]})
    return seg.seg_logits(data["inputs"], [data["inputs"][0].shape[-2:]])[0]


def throughput(args, device, model):
    images = synthetic_images("ade20k", args.images, args.image_size)
    configs = [(1, 1)] + [(1, b) for b in args.window_batches if b != 1] + [(args.images_per_call, args.window_batches[-1])]
    seg = build_segmentor(model, "ade20k", str(device), short_side=args.short_side, crop_size=args.crop,
                          stride=args.stride)
    clock = EncoderClock(seg, device)
    rows, data, reference = [], [], None
    batchers = [make_batcher(seg, wbs) for _, wbs in configs]
    for (per_call, _), batcher in zip(configs, batchers):  # warm-up (and "auto" resolved)
        seg.batcher = batcher
        predict_all(seg, images[:per_call], per_call, device)
    best, results = [None] * len(configs), [None] * len(configs)
    for _ in range(args.repeats):  # the settings take turns, so that a change of load hits all alike
        for i, ((per_call, _), batcher) in enumerate(zip(configs, batchers)):
            seg.batcher = batcher
            clock.reset()
            start = time.perf_counter()
            labels = predict_all(seg, images, per_call, device)
            seconds = time.perf_counter() - start
            if best[i] is None or seconds < best[i][0]:
                best[i] = (seconds, clock.seconds, clock.windows)
            results[i] = labels
    for i, ((per_call, wbs), batcher) in enumerate(zip(configs, batchers)):
        seconds, enc, windows = best[i]
        labels = results[i]
        seg.batcher = batcher
        logits = first_logits(seg, images)
        if reference is None:
            reference = (labels, logits)
        same = sum(int((a == b).sum()) for a, b in zip(labels, reference[0])) / sum(a.numel() for a in labels)
        diff = float((logits - reference[1]).abs().max())
        resolved = batcher.batch_size
        row = {"images_per_call": per_call, "window_batch_size": wbs, "resolved_batch": resolved,
               "windows_per_s": windows / seconds, "images_per_s": len(images) / seconds,
               "encoder_s_per_image": enc / len(images), "rest_s_per_image": (seconds - enc) / len(images),
               "pixels_identical_pct": 100 * same, "max_abs_logit_diff": diff}
        data.append(row)
        rows.append([per_call, f"{wbs}" + (f" (={resolved})" if str(wbs) != str(resolved) else ""),
                     row["windows_per_s"], row["images_per_s"], row["encoder_s_per_image"],
                     row["rest_s_per_image"], row["pixels_identical_pct"], diff])
    print(f"### Throughput: {len(images)} synthetic ADE images {args.image_size[0]}x{args.image_size[1]}, short "
          f"side {args.short_side}, window {args.crop}/{args.stride}, K={seg.num_classes}, "
          f"{windows // len(images)} windows per image\n")
    print(C.table(["images/call", "window batch", "windows/s", "images/s", "encoder s/img", "rest s/img",
                   "pixels identical to 1-at-a-time %", "max abs logit diff"], rows))
    print("\nbest of --repeats runs, the settings taking turns; 'rest' = everything but the image encoder: similarity, window "
          "upsampling, accumulation, final resize, argmax.\n")
    return data


def post_process(sims, windows, image_hw, out_hw, patch, crop, channels_last: bool):
    """Window similarity maps -> labels, as the segmentor does, in either memory layout."""
    b = sims.shape[0]
    h, w = crop // patch, crop // patch
    maps = sims.reshape(b, h, w, -1).permute(0, 3, 1, 2)
    if not channels_last:
        maps = maps.contiguous()
    up = F.interpolate(maps, size=(crop, crop), mode="bilinear", align_corners=False)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    canvas = torch.zeros((1, sims.shape[-1], *image_hw), device=sims.device).contiguous(memory_format=fmt)
    count = torch.zeros(image_hw, device=sims.device)
    for window, (y1, y2, x1, x2) in zip(up, windows):
        canvas[0, :, y1:y2, x1:x2] += window[:, : y2 - y1, : x2 - x1]
        count[y1:y2, x1:x2] += 1
    canvas.div_(count)
    logits = F.interpolate(canvas, size=out_hw, mode="bilinear", align_corners=False)[0]
    return logits.argmax(dim=0)


def library_post_process(sims, image_hw, out_hw, patch, crop, stride):
    """The same post-processing through the library's own code (slide_logits + seg_labels' resize)."""
    from clip_surgery_seg.segmentors.sliding import ScratchBuffers, WindowBatcher, resize_bilinear, slide_logits

    b, n, k = sims.shape
    h = w = crop // patch
    maps = sims.reshape(b, h, w, k).permute(0, 3, 1, 2)
    image = torch.zeros(3, *image_hw, device=sims.device)
    scratch, batcher = ScratchBuffers(), WindowBatcher(b)

    def window_maps(batch):  # windows arrive in order, all in one batch
        return maps[: len(batch)]

    def run():
        canvas = slide_logits([image], window_maps, crop, stride, batcher, (patch, patch), scratch=scratch)[0]
        out = scratch.get("logits", (1, k, *out_hw), canvas.dtype, canvas.device, channels_last=True)
        return resize_bilinear(canvas, out_hw, out)[0].argmax(dim=0)

    return run


def layout(args, device, patch: int = 16):
    from clip_surgery_seg.segmentors.sliding import keep_ratio_size, window_grid

    out_hw = tuple(args.image_size)
    image_hw = keep_ratio_size(*out_hw, args.short_side)
    windows = window_grid(*image_hw, args.crop, args.stride)
    n = (args.crop // patch) ** 2
    g = torch.Generator().manual_seed(0)
    sims = torch.randn(len(windows), n, 150, generator=g).to(device)
    rows, data, preds = [], [], {}
    for channels_last in (False, True):
        fn = lambda: post_process(sims, windows, image_hw, out_hw, patch, args.crop, channels_last)  # noqa: E731
        seconds = C.time_fn(fn, device, args.warmup, args.repeats)
        preds[channels_last] = fn()
        data.append({"layout": "channels-last" if channels_last else "NCHW", "seconds": seconds})
    library = library_post_process(sims, image_hw, out_hw, patch, args.crop, args.stride)
    data.append({"layout": "library", "seconds": C.time_fn(library, device, args.warmup, args.repeats)})
    preds["library"] = library()
    same = bool(torch.equal(preds[True], preds[False])) and bool(torch.equal(preds[True], preds["library"]))
    names = {"NCHW": "NCHW, batched upsample", "channels-last": "channels-last, batched upsample",
             "library": "library: channels-last, per-window upsample, reused buffers"}
    for row in data:
        row["same_labels"] = same
        rows.append([names[row["layout"]], row["seconds"], data[0]["seconds"] / row["seconds"], same])
    print(f"### Layout: post-processing of one {out_hw[0]}x{out_hw[1]} image ({len(windows)} windows, "
          f"K=150, image at {image_hw[0]}x{image_hw[1]})\n")
    print(C.table(["post-processing", "s/image", "speed-up vs NCHW", "same labels"], rows))
    print()
    return data


def memory_probe(model: str, window_batch_size, short_side: int, crop: int, stride: int, size,
                 dataset: str = "cityscapes", images: int = 1, device: str = "cpu"):
    """Factory for the memory probe: ``images`` images in one predict() call."""
    seg = build_segmentor(model, dataset, device, short_side=short_side, crop_size=crop, stride=stride)
    seg.batcher = make_batcher(seg, window_batch_size)
    data = seg.data_preprocessor({"inputs": synthetic_images(dataset, images, size)})

    def run():
        labels = seg_labels(seg, data["inputs"], [size] * images)
        release_scratch(seg)  # the reused buffers count: allocated inside the call, freed after it
        return labels

    return run


def memory(args, device, model):
    size = tuple(args.memory_image_size)
    rows, data = [], []
    for wbs in args.memory_batches:
        wbs = wbs if wbs == "auto" else int(wbs)
        peak = C.measure_peak(args, device, "benchmarks.bench_segmentor", "memory_probe",
                              dict(model=model, window_batch_size=wbs, short_side=args.memory_short_side,
                                   crop=args.crop, stride=args.stride, size=list(size),
                                   dataset=args.memory_dataset, images=args.memory_images))
        per_image = None if peak is None else peak / C.MiB / args.memory_images
        data.append({"window_batch_size": wbs, "peak_mib": per_image, "images_per_call": args.memory_images})
        rows.append([wbs, per_image])
    from clip_surgery_seg.segmentors.sliding import keep_ratio_size, window_grid

    resized = keep_ratio_size(*size, args.memory_short_side)
    print(f"### Memory: {args.memory_images} {size[0]}x{size[1]} image(s) per call at short side {args.memory_short_side} "
          f"({resized[0]}x{resized[1]}, {len(window_grid(*resized, args.crop, args.stride))} windows, "
          f"{args.memory_dataset} classes)\n")
    print(C.table(["window batch", "peak MiB per image"], rows, digits=1))
    how = ("torch.cuda.max_memory_allocated" if device.type == "cuda" else
           "peak RSS above the RSS before the call, fresh process" if (args.memory or "child") == "child"
           and not args.quick else "peak RSS above the RSS before the call, this process")
    print(f"\nmeasured as: {how}\n")
    return data


def precision(args, device, model):
    images = synthetic_images("ade20k", args.agree_images, args.image_size, seed=1)
    rows, data, reference = [], [], None
    for prec in ["fp32", *args.precisions]:
        seg = build_segmentor(model, "ade20k", str(device), short_side=args.short_side, crop_size=args.crop,
                              stride=args.stride, precision=prec)
        predict_all(seg, images[:1], 1, device)  # warm-up
        start = time.perf_counter()
        labels = predict_all(seg, images, 1, device)
        seconds = (time.perf_counter() - start) / len(images)
        if reference is None:
            reference = labels
        agree = sum(int((a == b).sum()) for a, b in zip(labels, reference)) / sum(a.numel() for a in labels)
        data.append({"precision": prec, "agreement_pct": 100 * agree, "s_per_image": seconds})
        rows.append([prec, 100 * agree, seconds, agree >= 0.995])
    print(f"### Precision: autocast against fp32 on {len(images)} synthetic ADE images (random "
          f"{Path(model).name} weights, random class embeddings)\n")
    print(C.table(["precision", "pixels agreeing with fp32 %", "s/image", ">= 99.5 %"], rows))
    print()
    return data


def main(argv=None) -> int:
    p = C.parser(__doc__.splitlines()[1])
    p.add_argument("--model", default=None, help="open_clip name or config JSON (default ViT-B-16; quick: tiny)")
    p.add_argument("--images", type=int, default=None, help="synthetic images (default 4; quick 2)")
    p.add_argument("--image-size", type=int, nargs=2, default=None, help="default 512 683 (ADE); quick 96 128")
    p.add_argument("--short-side", type=int, default=None, help="default 336; quick 64")
    p.add_argument("--crop", type=int, default=None, help="default 224; quick 32")
    p.add_argument("--stride", type=int, default=None, help="default 112; quick 16")
    p.add_argument("--window-batches", nargs="+", default=None,
                   help="window batch sizes to compare with one at a time (int or auto; default 32 auto)")
    p.add_argument("--images-per-call", type=int, default=None, help="last row: images per predict() call")
    p.add_argument("--memory-image-size", type=int, nargs=2, default=None, help="default 1024 2048")
    p.add_argument("--memory-short-side", type=int, default=None, help="default 560")
    p.add_argument("--memory-batches", nargs="+", default=None, help="default 1 32 auto")
    p.add_argument("--memory-dataset", default="cityscapes", help="whose class names (K) the memory probe uses")
    p.add_argument("--memory-images", type=int, default=1, help="images per predict() call in the memory probe")
    p.add_argument("--precisions", nargs="*", default=None, choices=("fp16", "bf16"),
                   help="compared with fp32 (default: fp16 bf16)")
    p.add_argument("--agree-images", type=int, default=None, help="images of the precision check (default 2)")
    p.add_argument("--sections", nargs="+", default=["throughput", "layout", "memory", "precision"],
                   choices=("throughput", "layout", "memory", "precision"))
    args = p.parse_args(argv)
    device = C.setup(args)
    q = args.quick
    model = args.model or (TINY_VIT if q else "ViT-B-16")
    args.images = args.images or (2 if q else 4)
    args.image_size = args.image_size or ([96, 128] if q else [512, 683])
    args.short_side = args.short_side or (64 if q else 336)
    args.crop = args.crop or (32 if q else 224)
    args.stride = args.stride or (16 if q else 112)
    args.window_batches = [b if b == "auto" else int(b) for b in (args.window_batches or [32, "auto"])]
    args.images_per_call = args.images_per_call or args.images
    args.memory_image_size = args.memory_image_size or ([128, 256] if q else [1024, 2048])
    args.memory_short_side = args.memory_short_side or (64 if q else 560)
    args.memory_batches = args.memory_batches or (["1", "auto"] if q else ["1", "32", "auto"])
    args.precisions = ["fp16", "bf16"] if args.precisions is None else args.precisions
    args.agree_images = args.agree_images or 2
    C.header(f"Segmentor ({Path(model).name}, random weights)", device)
    out = {"model": model}
    if "throughput" in args.sections:
        out["throughput"] = throughput(args, device, model)
    if "layout" in args.sections:
        out["layout"] = layout(args, device)
    if "memory" in args.sections:
        out["memory"] = memory(args, device, model)
    if "precision" in args.sections:
        out["precision"] = precision(args, device, model)
    C.write_json(args.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
