"""Evaluation protocols: the settings published numbers depend on, one file per protocol.

A protocol is ``configs/_base_/protocols/<name>.py``, named by its file, holding

* ``defaults``: the values for every dataset;
* ``datasets``: per dataset (the catalogue's names), the values that differ from the defaults.

Adding a protocol is adding its file; ``--protocol NAME`` and ``tools/reproduce.py --protocol NAME``
find it. A dataset a protocol does not list gets its defaults. :class:`ProtocolSettings` is what the
segmentor takes; every key and value is checked, so a typo or a value out of range is one line.
"""
from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from . import resources
from .errors import ConfigError, suggest
from .named import is_int, is_number

PROTOCOLS_DIR = ("_base_", "protocols")
RESIZE_MODES = ("mmseg", "device")
PADDINGS = ("bottom_right", "centre", "stretch")
#: the protocol of the shipped configs
DEFAULT_PROTOCOL = "sclip"

Templates = Union[None, str, Sequence[str]]


@dataclass(frozen=True)
class ProtocolSettings:
    """The evaluation settings of one protocol on one dataset (docs/protocol.md).

    Attributes:
        name: the protocol's name (``custom`` when not from a protocol file).
        short_side, max_long_side: keep-ratio test scale.
        resize: ``mmseg``: mmcv's resize of the decoded uint8 image, as mmseg's ``Resize`` transform
            in the peer harnesses; ``device``: bilinear on the normalised float image on the device
            (faster on a GPU, not the peers' pixels).
        crop_size, stride: sliding window; ``crop_size=None``: the whole image in one window.
        padding: a window whose sides are not multiples of the patch size is ``bottom_right``
            zero-padded (this harness's own rule), ``centre`` zero-padded (ClearCLIP's), or run on
            its whole patches only and its maps ``stretch``-ed back over it (SCLIP's and NACLIP's:
            their patch embedding drops the remainder).
        prob_threshold: pixels whose top class probability is below it become the background
            class (datasets with one); None: no threshold.
        area_threshold: SCLIP's ``area_thd``: per image, a class predicted on at most this share of
            the pixels predicted as any non-background class is suppressed before the threshold;
            None: none.
        logit_scale: the scale of the logits in that softmax; None: the CLIP's own.
        classnames: the folder of the protocol's class-name files,
            ``configs/classnames/<classnames>/<dataset>.txt`` (its harness's words and synonyms);
            None: the dataset's own, ``configs/classnames/<dataset>.txt``.
        templates: a template set for every method (None: each method's own).
    """

    name: str = "custom"
    short_side: int = 336
    max_long_side: int = 2048
    resize: str = "mmseg"
    crop_size: Optional[int] = 224
    stride: int = 112
    padding: str = "bottom_right"
    prob_threshold: Optional[float] = None
    area_threshold: Optional[float] = None
    logit_scale: Optional[float] = None
    classnames: Optional[str] = None
    templates: Templates = None

    @classmethod
    def keys(cls) -> List[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "protocol") -> "ProtocolSettings":
        """Checked settings; an unknown key or a value out of range is a :class:`ConfigError`."""
        known = cls.keys()
        for key in values:
            if key not in known:
                raise ConfigError(f"{source}: unknown protocol setting {key!r}{suggest(key, known)} "
                                  f"(settings: {', '.join(known)})")
        settings = cls(**dict(values))
        settings.check(source)
        return settings

    def check(self, source: str = "protocol") -> None:
        def integer(name: str, low: int) -> None:
            value = getattr(self, name)
            if not is_int(value) or value < low:
                raise ConfigError(f"{source}: {name} must be an integer >= {low}, got {value!r}")

        for name in ("short_side", "max_long_side", "stride"):
            integer(name, 1)
        if self.crop_size is not None:
            integer("crop_size", 1)
        for name, choices in (("resize", RESIZE_MODES), ("padding", PADDINGS)):
            if getattr(self, name) not in choices:
                raise ConfigError(f"{source}: {name} must be one of {', '.join(choices)}, got {getattr(self, name)!r}")
        if self.crop_size is not None and self.stride > self.crop_size:
            raise ConfigError(f"{source}: need stride <= crop_size, got crop_size={self.crop_size}, "
                              f"stride={self.stride}")
        if self.prob_threshold is not None and not (is_number(self.prob_threshold) and 0 <= self.prob_threshold <= 1):
            raise ConfigError(f"{source}: prob_threshold={self.prob_threshold!r} is not a probability in [0, 1]")
        if self.area_threshold is not None and not (is_number(self.area_threshold) and 0 <= self.area_threshold < 1):
            raise ConfigError(f"{source}: area_threshold={self.area_threshold!r} is not a share in [0, 1)")
        if self.classnames is not None and (not isinstance(self.classnames, str) or "/" in self.classnames):
            raise ConfigError(f"{source}: classnames={self.classnames!r} must name a folder of configs/classnames/")
        if self.logit_scale is not None and not (is_number(self.logit_scale) and self.logit_scale > 0):
            raise ConfigError(f"{source}: logit_scale={self.logit_scale!r} must be a number > 0 (or None: the "
                              "CLIP's own); at 0 every probability is equal and every pixel would become background")

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)


# --- the protocol files ---------------------------------------------------------------------------

def protocols_dir() -> Path:
    return resources.configs_dir().joinpath(*PROTOCOLS_DIR)


def available() -> List[str]:
    """The protocol names: the files of ``configs/_base_/protocols/``."""
    folder = protocols_dir()
    return sorted(p.stem for p in folder.glob("*.py") if not p.name.startswith("_")) if folder.is_dir() else []


def check_name(name: str) -> str:
    names = available()
    if name not in names:
        raise ConfigError(f"unknown protocol {name!r}{suggest(name, names)} (protocols: {', '.join(names)})")
    return name


@functools.lru_cache(maxsize=None)
def _read(path: str) -> Dict[str, Any]:
    from mmengine.config import Config

    try:
        cfg = Config.fromfile(path)
    except Exception as err:  # noqa: BLE001 - mmengine raises many kinds; all mean "bad protocol file"
        raise ConfigError(f"protocol file {path} cannot be loaded: {type(err).__name__}: {err}") from err
    defaults, datasets = cfg.get("defaults"), cfg.get("datasets", {})
    if not isinstance(defaults, Mapping) or not isinstance(datasets, Mapping):
        raise ConfigError(f"protocol file {path} needs `defaults = dict(...)` and `datasets = dict(name=dict(...))`")
    return {"defaults": dict(defaults), "datasets": {k: dict(v) for k, v in datasets.items()}}


def values(name: str, dataset: str) -> Dict[str, Any]:
    """Protocol ``name``'s settings for ``dataset``: ``{"name": name, **every setting}``, checked."""
    path = protocols_dir() / f"{check_name(name)}.py"
    content = _read(str(path))
    merged = {**ProtocolSettings(name=name).as_dict(), **content["defaults"], **content["datasets"].get(dataset, {})}
    return ProtocolSettings.from_dict(merged, f"protocol file {path} ({dataset})").as_dict()


def listed_datasets(name: str) -> List[str]:
    """The datasets protocol ``name`` sets values for (the others get its defaults)."""
    return list(_read(str(protocols_dir() / f"{check_name(name)}.py"))["datasets"])


def classnames_file(folder: Optional[str], dataset: str) -> Optional[Path]:
    """``configs/classnames/<folder>/<dataset>.txt``, a protocol's class-name file for ``dataset``;
    None when the protocol names no folder or the folder has no file for the dataset."""
    if folder is None:
        return None
    path = resources.configs_dir() / "classnames" / folder / f"{dataset}.txt"
    return path if path.is_file() else None
