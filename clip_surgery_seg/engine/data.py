"""The images of a run: listed once from the dataset's layout, then loaded, checked and batched.

The listing (:func:`list_images`) is the only one: every image it lists is either evaluated or
reported (a bad file is an error, or with ``--skip-bad`` a listed skip), so nothing is silently
left out. Loading runs the config's test pipeline on each pair, in DataLoader workers.
"""
from __future__ import annotations

import logging
import os
import signal
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.config import Config

from ..datasets import catalog
from ..datasets.check import check_layout
from ..datasets.layout import DatasetLayout
from ..datasets.transforms import validate_sample
from ..errors import BadSampleError, DataLayoutError

logger = logging.getLogger("clip_surgery_seg")


@dataclass
class ImageList:
    """What a run evaluates: the split's layout, its image keys (sorted, all ranks; the first
    ``--limit`` of ``pairs``, every image/label pair listed) and the unpaired files that
    ``--skip-bad`` leaves out."""

    name: str
    layout: DatasetLayout
    keys: List[str]
    skipped: List[Dict[str, str]]
    expected_images: Optional[int]
    pairs: List[str]


def list_images(cfg: Config, skip_bad: bool, limit: Optional[int], rank: int = 0) -> ImageList:
    """Cheap data check (no model yet, no file opened), then the sorted image keys to evaluate."""
    name = cfg.dataset_name
    layout = DatasetLayout.from_config(cfg.test_dataloader.dataset.to_dict())
    expected = catalog.CATALOG[name].expected_images if name in catalog.CATALOG else None
    report = check_layout(name, layout, expected)
    unpaired = report.unpaired()
    if unpaired and not skip_bad:
        raise DataLayoutError(f"{len(unpaired)} unpaired files in the {name} data, first: {unpaired[0].message}; "
                              f"fix the data (python tools/check_data.py {name}) or pass --skip-bad to leave "
                              "them out")
    found = len(report.pairs) + len(unpaired)
    if rank == 0 and expected and found != expected and limit is None:
        logger.warning("%s: found %d images, the split has %d; numbers are not comparable to published ones",
                       name, found, expected)
    keys = report.pairs[:limit]
    if not keys:
        raise DataLayoutError(f"no image/label pairs to evaluate in {layout.data_root}")
    skipped = [{"image": p.stem or "", "reason": p.message} for p in unpaired]
    return ImageList(name, layout, keys, skipped, expected, list(report.pairs))


class CheckedSamples(torch.utils.data.Dataset):
    """Image/label pairs through the test pipeline, each checked; a bad one becomes
    ``{"key", "error"}`` instead of a crash, so the loop can stop on it or skip it."""

    def __init__(self, layout: DatasetLayout, keys: Sequence[str], pipeline: Sequence[dict], num_classes: int,
                 ignore_index: int) -> None:
        from mmengine.dataset import Compose

        self.layout, self.keys = layout, list(keys)
        self.pipeline = Compose(list(pipeline))
        self.num_classes, self.ignore_index = num_classes, ignore_index

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, i: int) -> dict:
        key = self.keys[i]
        img_path, seg_path = str(self.layout.image_path(key)), str(self.layout.label_path(key))
        info = {"img_path": img_path, "seg_map_path": seg_path, "reduce_zero_label": self.layout.reduce_zero_label,
                "seg_fields": [], "label_map": None, "sample_idx": i}
        try:
            item = self.pipeline(info)
            sample = item["data_samples"]
            validate_sample(img_path, seg_path, sample.metainfo["ori_shape"], sample.gt_sem_seg.data[0].numpy(),
                            self.num_classes, self.ignore_index)
        except BadSampleError as err:
            return {"key": key, "error": str(err)}
        except Exception as err:  # noqa: BLE001 - any failure of one sample is reported with its file
            return {"key": key, "error": f"{img_path}: {type(err).__name__}: {err}"}
        return {"key": key, "inputs": item["inputs"], "data_samples": sample}


def _keep_list(batch: list) -> list:
    return batch


def _ignore_sigint(_: int) -> None:
    """DataLoader workers leave Ctrl-C to the main process, which stops them cleanly."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def build_loader(samples: CheckedSamples, loader_cfg: dict, device: torch.device) -> torch.utils.data.DataLoader:
    """Batches of checked samples (lists, images keep their sizes); workers at most one per CPU core."""
    num_workers = min(int(loader_cfg.get("num_workers", 2)), len(samples), os.cpu_count() or 1)
    return torch.utils.data.DataLoader(
        samples, batch_size=int(loader_cfg.get("batch_size", 1)), num_workers=num_workers,
        collate_fn=_keep_list, pin_memory=device.type == "cuda", worker_init_fn=_ignore_sigint,
        prefetch_factor=4 if num_workers else None)
