#!/usr/bin/env python
"""Benchmark 4: text embeddings: first run (encode + write the cache) against the cached second run.

COCO-Stuff's 171 classes x the 85 CLIP Surgery templates (14 535 prompts) through the text tower of
a random ViT-B/16 CLIP, with an empty cache directory, then again from the cache, then once more
from the segmentor's in-memory copy. The cached embeddings must equal the computed ones exactly.
Optionally (``--full-context-classes N``) the truncated-context fast path of ``encode_text`` is
compared with the full 77-token context on the first N classes.

    python benchmarks/bench_text.py
    python benchmarks/bench_text.py --device cuda --full-context-classes 171
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks import _common as C  # noqa: E402

TINY_VIT = str(C.REPO / "tests" / "assets" / "tiny-vit.json")


def main(argv=None) -> int:
    p = C.parser(__doc__.splitlines()[1])
    p.add_argument("--model", default=None, help="open_clip name or config JSON (default ViT-B-16; quick: tiny)")
    p.add_argument("--dataset", default="coco_stuff171", help="class-name file in configs/classnames")
    p.add_argument("--classes", type=int, default=None, help="first N classes only (default all; quick 6)")
    p.add_argument("--templates", default="clip_surgery_85", help="template set")
    p.add_argument("--max-templates", type=int, default=None, help="first N templates only (quick 4)")
    p.add_argument("--full-context-classes", type=int, default=None,
                   help="also time the full 77-token context on the first N classes (default 4; quick 2; 0: off)")
    args = p.parse_args(argv)
    device = C.setup(args)
    from clip_surgery_seg.datasets.classnames import load_classnames
    from clip_surgery_seg.models import SurgeryCLIP, build_clip, resolve_templates, weights_identity
    from clip_surgery_seg.segmentors.text_embeddings import cached_text_embeddings

    model_name = args.model or (TINY_VIT if args.quick else "ViT-B-16")
    rows_all = list(load_classnames(str(C.REPO / "configs" / "classnames" / f"{args.dataset}.txt")).rows)
    rows = rows_all[: args.classes or (6 if args.quick else None)]
    templates = list(resolve_templates(args.templates))[: args.max_templates or (4 if args.quick else None)]
    full_n = args.full_context_classes if args.full_context_classes is not None else (2 if args.quick else 4)
    clip, tokenizer = build_clip(model_name, pretrained=None, device=device)
    surgery = SurgeryCLIP(clip, tokenizer)
    key = weights_identity(model_name, None).key()
    C.header(f"Text embeddings: {len(rows)} classes x {len(templates)} templates = {len(rows) * len(templates)} "
             f"prompts ({Path(model_name).name}, random weights)", device)

    table, data = [], []
    with tempfile.TemporaryDirectory() as cache:
        C.sync(device)
        start = time.perf_counter()
        first = cached_text_embeddings(surgery, rows, templates, key, cache)
        C.sync(device)
        t_first = time.perf_counter() - start
        start = time.perf_counter()
        second = cached_text_embeddings(surgery, rows, templates, key, cache)
        C.sync(device)
        t_second = time.perf_counter() - start
        files = list(Path(cache).glob("*.pt"))
        size = sum(f.stat().st_size for f in files)
    same = bool(torch.equal(first.cpu(), second.cpu()))
    prompts = len(rows) * len(templates)
    data.append({"run": "first (encode + write cache)", "seconds": t_first, "prompts_per_s": prompts / t_first})
    data.append({"run": "second (read cache)", "seconds": t_second, "speedup": t_first / t_second,
                 "cache_bytes": size, "identical": same})
    table.append(["first: encode + write cache", t_first, prompts / t_first, 1.0, "", ""])
    table.append(["second: read cache", t_second, None, t_first / t_second, same, f"{size / C.MiB:.2f}"])

    if full_n:
        sub = rows[:full_n]
        n = len(sub) * len(templates)
        fast = lambda: surgery.encode_text(sub, templates)  # noqa: E731
        t_fast = C.time_fn(fast, device, args.warmup, args.repeats)
        saved = surgery._encode_tokens
        surgery._encode_tokens = lambda tokens: surgery.clip.encode_text(tokens)  # open_clip's, context 77
        try:
            t_full = C.time_fn(lambda: surgery.encode_text(sub, templates), device, args.warmup, args.repeats)
            full_emb = surgery.encode_text(sub, templates)
        finally:
            surgery._encode_tokens = saved
        diff = float((fast() - full_emb).abs().max())
        data.append({"run": "truncated context", "classes": len(sub), "prompts_per_s": n / t_fast})
        data.append({"run": "full 77-token context", "classes": len(sub), "prompts_per_s": n / t_full,
                     "max_abs_diff": diff})
        table.append([f"encode, truncated context ({len(sub)} classes)", t_fast, n / t_fast, None, "", ""])
        table.append([f"encode, full 77 context ({len(sub)} classes)", t_full, n / t_full, None,
                      f"max abs diff {diff:.1e}", ""])
    print(C.table(["run", "seconds", "prompts/s", "speed-up vs first", "identical", "cache MiB"], table))
    print("\nfirst/second: clip_surgery_seg.segmentors.text_embeddings.cached_text_embeddings with an empty "
          "cache folder, then the same call again (it reads the cache file from disk, as a second evaluation run does).")
    C.write_json(args.json, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
