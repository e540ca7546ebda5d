"""``css-demo`` / ``tools/demo.py``: where does CLIP see each class? One image, its segmentation and
the authors' explanation maps, for one or several methods and feature-surgery modes side by side.

  python tools/demo.py photo.jpg --classes "cat,dog,grass"
  python tools/demo.py photo.jpg --classes my_classes.txt --feature-surgery none weighted
  python tools/demo.py photo.jpg --classes "cat,dog,grass" --method vanilla clip_surgery
  python tools/demo.py photo.jpg --dataset ade20k --show-classes wall sky tree --out demo/

Writes, under ``--out`` (default ``work_dirs/demo/<image stem>``), for each feature-surgery mode::

    <mode>/overlay.png               the prediction over the image, class names on their regions, a legend
    <mode>/heatmaps.png              the image and each shown class's heat map, captioned, a colour bar
    <mode>/heatmaps/NNN_<class>.png  one heat map per shown class, at the image's size
    compare.png                      (two or more modes or methods) one column per method and mode: the
                                     prediction, then each class's heat map

With two or more ``--method`` names the folders are ``<method>/<mode>/``.

A heat map is the segmentor's similarity map of the class over the whole image (sliding windows,
averaged where they overlap, max over the class's synonyms), min-max normalised on its own, coloured
with matplotlib's ``jet`` and laid over the image (0.4 image + 0.6 colour), as in the authors' demo.
CLIP is built once; each method's segmentor shares it, and each mode reuses the segmentor and
its cached text embeddings.
"""
from __future__ import annotations

import argparse
import logging
import re
import sys
import time
from pathlib import Path
from typing import Any, List, NamedTuple, Optional, Sequence, Tuple, Union

from . import (EXIT_FAILED, EXIT_OK, ToolParser, add_cfg_options_flag, add_debug_flag, add_device_flag, as_invoked,
               console_logging, invoked_as, run)

logger = logging.getLogger("clip_surgery_seg")

DEFAULT_CONFIG = "configs/_base_/models/clip_surgery_vit_b16.py"
# the scale and windows of a config without a protocol (a model config): the segmentor's defaults,
# SCLIP's ADE20K setting; --cfg-options protocol.short_side=448 ... changes them
DEFAULT_PROTOCOL = dict(name="demo", short_side=336, max_long_side=2048, crop_size=224, stride=112)


def build_parser(prog: str = "python tools/demo.py") -> ToolParser:
    from ..models import FEATURE_SURGERY_MODES, METHODS

    parser = ToolParser(prog=prog, description=as_invoked(__doc__.replace("python tools/demo.py", prog)))
    parser.add_argument("image", help="the image (JPEG, PNG, ... anything Pillow reads)")
    parser.add_argument("--classes", help='class names separated by commas ("cat,dog,grass"), or a class-name '
                        "file (one class per line, comma-separated synonyms)")
    parser.add_argument("--dataset", help="use a dataset's classes (its class-name file and palette), e.g. ade20k")
    parser.add_argument("--show-classes", nargs="+", metavar="NAME",
                        help="heat maps of these classes only (default: every class)")
    parser.add_argument("--feature-surgery", nargs="+", choices=FEATURE_SURGERY_MODES, metavar="MODE",
                        help=f"one or several of {', '.join(FEATURE_SURGERY_MODES)} (default: the config's); "
                        "several are shown side by side in compare.png")
    parser.add_argument("--method", nargs="+", metavar="NAME",
                        help=f"one or several of {', '.join(METHODS)} (default: the config's method); several are "
                        "shown side by side in compare.png, on one CLIP")
    parser.add_argument("--out", metavar="DIR", help="output folder (default: work_dirs/demo/<image stem>)")
    parser.add_argument("--config", default=DEFAULT_CONFIG,
                        help="model config, or a dataset config for its classes and protocol "
                        f"(default {DEFAULT_CONFIG})")
    parser.add_argument("--model", help="open_clip model name or model-config JSON (overrides the config)")
    parser.add_argument("--pretrained", help="open_clip tag (openai, ...), weights file, or none for random weights")
    add_device_flag(parser)
    add_cfg_options_flag(parser, "override config settings, e.g. protocol.short_side=448 model.method.depth=4 "
                         "(protocol: short_side 336, crop_size 224, stride 112 unless the config has one)")
    parser.add_argument("--quiet", action="store_true", help="only errors")
    add_debug_flag(parser)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser(invoked_as("tools/demo.py")).parse_args(argv)
    with console_logging(args.quiet):
        return run(lambda: _demo(args), args, EXIT_FAILED)


# --- inputs ---------------------------------------------------------------------------------------

def read_image(path: str):
    """``(H, W, 3)`` uint8 RGB; a missing or unreadable file is one clear error."""
    from ..datasets.transforms import read_image_rgb
    from ..errors import BadSampleError, ConfigError

    if not Path(path).is_file():
        raise ConfigError(f"image {path} does not exist; pass the path of an image file (JPEG, PNG, ...)")
    try:
        return read_image_rgb(path)
    except BadSampleError as err:
        raise ConfigError(f"{err}; pass an image file Pillow can read") from None


def class_names_option(classes: Optional[str],
                       dataset: Optional[str]) -> Tuple[Union[None, str, List[str]], Optional[str]]:
    """What ``model.classnames`` becomes (a class-name file or a list of names; None: the config's)
    and the dataset whose palette to use (None: a palette for the class count)."""
    from ..datasets import catalog
    from ..datasets.classnames import load_classnames
    from ..errors import ConfigError

    if classes is not None and dataset is not None:
        raise ConfigError("give --classes or --dataset, not both")
    if dataset is not None:
        name = catalog.resolve(dataset)
        return str(catalog.CATALOG[name].classnames), name
    if classes is None:
        return None, None
    if Path(classes).is_file() or classes.endswith(".txt"):
        load_classnames(classes)  # a missing or bad file: one error naming it, before the model is built
        return classes, None
    names = [name.strip() for name in classes.split(",")]
    if not any(names):
        raise ConfigError('--classes is empty; give class names separated by commas, e.g. --classes "cat,dog,grass", '
                          "or a class-name file")
    if not all(names):
        raise ConfigError(f"--classes {classes!r} has an empty name between commas; write e.g. \"cat,dog,grass\"")
    return names, None


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "class"


# --- the model ------------------------------------------------------------------------------------

def build_segmentor(args: argparse.Namespace, classnames: Union[None, str, List[str]],
                    method: Optional[str] = None, shared_clip=None):
    """``(segmentor on its device, dataset type or name for the palette)`` from the config and options;
    ``method`` replaces the config's (``--method``), ``shared_clip`` (a ``SharedCLIP``) builds CLIP once."""
    from mmseg.registry import MODELS

    from .. import registry, resources  # noqa: F401  (components registered)
    from ..engine.config import apply_cfg_options, load_config, parse_cfg_options
    from ..engine.experiment import apply_method
    from ..engine.distributed import init_processes
    from ..errors import ConfigError

    cfg = load_config(args.config)
    if "model" not in cfg:
        raise ConfigError(f"config {args.config} has no model; pass a model config such as {DEFAULT_CONFIG}")
    cfg.protocol = _protocol(cfg)
    if classnames is not None:  # the user's classes: a dataset config's background rule is not theirs
        cfg.model.background_index = None
        cfg.protocol.prob_threshold = None
    if method is not None:
        apply_method(cfg, method)
    apply_cfg_options(cfg, parse_cfg_options(args.cfg_options))
    if args.model is not None:
        cfg.model.clip.name = args.model
    if args.pretrained is not None:
        cfg.model.clip.pretrained = None if args.pretrained.lower() == "none" else args.pretrained
    if classnames is not None:
        cfg.model.classnames = classnames
    elif not cfg.model.get("classnames") and "dataset_name" in cfg:
        cfg.model.classnames = str(resources.classnames_file(cfg.dataset_name))
    elif not cfg.model.get("classnames"):
        raise ConfigError(f"no classes: pass --classes \"cat,dog,grass\", --classes FILE or --dataset NAME "
                          f"({args.config} names none)")
    device = init_processes("none", args.device).device
    settings = {**cfg.model.to_dict(), "protocol": cfg.protocol.to_dict()}
    if shared_clip is not None:
        settings["shared_clip"] = shared_clip
    model = MODELS.build(settings).to(device).eval()
    dataset = cfg.get("test_dataloader", {}).get("dataset", {}).get("type") if "test_dataloader" in cfg else None
    return model, dataset


def _protocol(cfg) -> dict:
    """A dataset config's protocol (its named protocol's values for the dataset, then its own
    settings); for a model config, :data:`DEFAULT_PROTOCOL`."""
    from .. import protocols

    declared = dict(cfg.get("protocol") or {})
    if not declared.get("name") or "dataset_name" not in cfg:
        settings = {**DEFAULT_PROTOCOL, **{k: v for k, v in declared.items() if k != "name"}}
    else:
        settings = {**protocols.values(declared["name"], cfg.dataset_name), **declared}
    return protocols.ProtocolSettings.from_dict(settings, "protocol").as_dict()


def similarity_and_labels(model, image) -> Tuple["object", "object"]:
    """``(K, H, W)`` float32 similarity maps at the image's size and the ``(H, W)`` labels from them
    (numpy), with the segmentor's current feature-surgery mode."""
    import torch

    tensor = torch.from_numpy(image).permute(2, 0, 1).contiguous()
    data = model.data_preprocessor({"inputs": [tensor], "data_samples": None})
    logits = model.seg_logits(data["inputs"], [image.shape[:2]])[0]
    labels = model.labels_from_logits(logits)
    return logits.float().cpu().numpy(), labels.cpu().numpy()


# --- pictures -------------------------------------------------------------------------------------

def _tile_side(count: int) -> int:
    return 512 if count <= 8 else 384 if count <= 24 else 256


class Run(NamedTuple):
    """One method and feature-surgery mode on the image: where its pictures go, how they name it,
    and its ``(K, H, W)`` similarity maps and ``(H, W)`` labels."""

    folder: str  # under --out: "<mode>", or "<method>/<mode>" with several methods
    tag: str  # in compare.png's captions: the mode, the method, or "method, mode"
    description: str  # in the pictures' titles
    similarity: Any
    labels: Any


def write_pictures(out: Path, image, runs: Sequence[Run], class_names: Sequence[str], shown: Sequence[int],
                   palette, title: str, compare_title: Optional[str] = None) -> List[Path]:
    """Render and write every picture (see the module docstring); returns their paths."""
    import numpy as np

    from ..visualization import (PngWriter, classes_present, explanation_maps, legend_entries, render_explanations,
                                 render_overlay)
    from ..visualization.drawing import fitted_size, grid, resize_image, resize_labels
    from ..visualization.heatmap import COLORBAR, colorbar, range_caption
    from ..visualization.panels import overlay_pixels

    written: List[Path] = []
    names = [str(class_names[k]) for k in shown]
    side = _tile_side(len(shown))
    with PngWriter() as writer:
        for one in runs:
            folder = out / one.folder
            overlay = render_overlay(image, one.labels, palette, class_names, title=f"{title}, {one.description}")
            sheet = render_explanations(image, one.similarity, class_names, shown,
                                        columns=4 if len(shown) <= 12 else 8, max_side=side,
                                        title=f"{title}, {one.description}")
            for path, pixels in ((folder / "overlay.png", overlay), (folder / "heatmaps.png", sheet)):
                writer.submit(path, pixels)
                written.append(path)
            for k, name in zip(shown, names):
                path = folder / "heatmaps" / f"{k:03d}_{_slug(name)}.png"
                writer.submit(path, lambda k=k, similarity=one.similarity: explanation_maps(image, similarity, [k])[0])
                written.append(path)
        if len(runs) > 1:  # one column per run: its prediction, then class by class
            size = fitted_size(*image.shape[:2], min(side, 384, max(128, 1536 // len(runs))))
            small = resize_image(image, size)
            tiles = []
            for one in runs:
                pixels, _ = overlay_pixels(small, resize_labels(one.labels, size), palette, class_names)
                tiles.append((f"{one.folder}/prediction", f"prediction [{one.tag}]", pixels))
            for k, name in zip(shown, names):
                for one in runs:
                    tiles.append((f"{one.folder}/{k}", range_caption(f"{name} [{one.tag}]", one.similarity[k]),
                                  explanation_maps(small, one.similarity, [k])[0]))
            present = np.unique(np.concatenate([classes_present(one.labels, len(palette)) for one in runs]))
            compare = grid(tiles, len(runs), title=compare_title or f"{title}: {' vs '.join(r.tag for r in runs)}",
                           legend=legend_entries(present.tolist(), palette, class_names),
                           strips=[(COLORBAR, colorbar)])
            writer.submit(out / "compare.png", compare)
            written.append(out / "compare.png")
    return written


def _demo(args: argparse.Namespace) -> int:
    from ..datasets import catalog
    from ..fileio import check_writable
    from ..models import SharedCLIP
    from ..visualization import fallback_palette, palette_for

    image = read_image(args.image)
    classnames, dataset = class_names_option(args.classes, args.dataset)
    out = Path(args.out) if args.out else Path("work_dirs") / "demo" / Path(args.image).stem
    check_writable(out, "--out")
    methods: List[Optional[str]] = list(dict.fromkeys(args.method or [None]))  # None: the config's
    _check_methods(methods)
    shared = SharedCLIP()  # one CLIP for every method
    runs: List[Run] = []
    for method in methods:
        start = time.perf_counter()
        model, dataset_type = build_segmentor(args, classnames, method, shared)
        if not runs:  # the classes, the palette and the modes: the same for every method
            class_names = list(model.classes.classes)
            shown = _shown_classes(args.show_classes, class_names)
            if dataset or dataset_type:
                palette = palette_for(len(class_names), catalog.get(dataset).dataset_type if dataset else dataset_type)
            else:
                palette = fallback_palette(len(class_names))  # a custom list: no dataset's colours
            modes = list(dict.fromkeys(args.feature_surgery or [model.feature_surgery_mode]))
        model.text_progress = not args.quiet
        model.text_features()  # once: every mode reuses the embeddings (and the cache on disk)
        logger.info("%smodel ready in %.1f s (%d classes)", f"{method}: " if method else "",
                    time.perf_counter() - start, len(class_names))
        for mode in modes:
            model.feature_surgery_mode = mode
            tick = time.perf_counter()
            similarity, labels = similarity_and_labels(model, image)
            logger.info("%sfeature surgery %s: %.2f s", f"{method}, " if method else "", mode,
                        time.perf_counter() - tick)
            runs.append(_run(method if len(methods) > 1 else None, mode, len(modes), similarity, labels))
        del model  # the next method's segmentor reuses the CLIP, not this one's buffers
    if len(methods) > 1:
        compare_title = f"{Path(args.image).name}: {' vs '.join(methods)}, feature surgery {' vs '.join(modes)}"
    else:
        compare_title = f"{Path(args.image).name}: feature surgery {' vs '.join(modes)}"
    written = write_pictures(out, image, runs, class_names, shown, palette, Path(args.image).name, compare_title)
    for path in written:
        if path.parent == out or path.name in ("overlay.png", "heatmaps.png"):
            print(path)
    print(f"{len(written)} pictures in {out}")
    return EXIT_OK


def _check_methods(methods: Sequence[Optional[str]]) -> None:
    """Every ``--method`` name is a registered method (before any model is built)."""
    from ..errors import ConfigError, suggest
    from ..models import METHODS

    for name in methods:
        if name is not None and name not in METHODS:
            raise ConfigError(f"--method {name!r} is not a method{suggest(name, METHODS)} "
                              f"(methods: {', '.join(METHODS)})")


def _shown_classes(show_classes: Optional[Sequence[str]], class_names: Sequence[str]) -> List[int]:
    """Indices of ``--show-classes`` (any case), or of every class."""
    from ..errors import ConfigError, suggest

    if not show_classes:
        return list(range(len(class_names)))
    index = {name.lower(): k for k, name in enumerate(class_names)}
    unknown = [name for name in show_classes if name.lower() not in index]
    if unknown:
        raise ConfigError(f"--show-classes {unknown[0]!r} is not one of the classes{suggest(unknown[0], class_names)}")
    return [index[name.lower()] for name in show_classes]


def _run(method: Optional[str], mode: str, num_modes: int, similarity, labels) -> Run:
    """A :class:`Run`; ``method`` is None with a single method (the folders are the modes')."""
    if method is None:
        return Run(mode, mode, f"feature surgery: {mode}", similarity, labels)
    tag = method if num_modes == 1 else f"{method}, {mode}"
    return Run(f"{method}/{mode}", tag, f"{method}, feature surgery: {mode}", similarity, labels)


if __name__ == "__main__":
    sys.exit(main())
