"""Verify a prepared split: layout, pairing, counts (cheap), and every file (deep).

The cheap check runs before an evaluation loads any model; ``tools/check_data.py`` runs both;
``tools/prepare_data.py`` runs the cheap one at its end.
"""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

from ..errors import BadSampleError, DataLayoutError
from ..fileio import printable
from .layout import DATA_README, DatasetLayout
from . import catalog
from .encodings import encode_label
from .transforms import read_image_rgb, read_label, validate_sample

MISSING_LABEL = "image without its label"
MISSING_IMAGE = "label without its image"
BAD_FILE = "bad file"
COUNT = "image count"


@dataclass(frozen=True)
class Problem:
    """One problem found: the image it concerns (None for the split as a whole) and a message
    naming the file."""

    stem: Optional[str]
    message: str


@dataclass
class CheckReport:
    """What a check found. ``problems`` maps a kind (MISSING_LABEL, ...) to the problems of that kind."""

    name: str
    layout: DatasetLayout
    pairs: List[str]
    expected_images: Optional[int] = None
    problems: Dict[str, List[Problem]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not any(self.problems.values())

    def add(self, kind: str, message: str, stem: Optional[str] = None) -> None:
        self.problems.setdefault(kind, []).append(Problem(stem, message))

    def unpaired(self) -> List[Problem]:
        """Images without labels and labels without images."""
        return self.problems.get(MISSING_LABEL, []) + self.problems.get(MISSING_IMAGE, [])

    def format(self, first: int = 5) -> str:
        lines = [f"{self.name}: {len(self.pairs)} image/label pairs in {self.layout.img_dir}"
                 + (f" (expected {self.expected_images})" if self.expected_images else "")]
        for kind, messages in self.problems.items():
            if not messages:
                continue
            lines.append(f"  {kind}: {len(messages)}")
            lines += [f"    {p.message}" for p in messages[:first]]
            if len(messages) > first:
                lines.append(f"    ... and {len(messages) - first} more")
        lines.append("  OK" if self.ok else f"  FAILED: see {DATA_README} for the expected layout")
        return printable("\n".join(lines))


def layout_error(name: str, layout: DatasetLayout, what: str) -> DataLayoutError:
    return DataLayoutError(
        f"{what}; the {name} data is expected as {layout.describe()} -- prepare it with "
        f"`python tools/prepare_data.py {name}` or point --data-root at it (see {DATA_README})")


def check_layout(name: str, layout: DatasetLayout, expected_images: Optional[int] = None) -> CheckReport:
    """Cheap check (no file is opened): folders exist, images found, every image paired.

    Raises DataLayoutError when the split cannot be used at all (missing folder, no images, no
    labels); pairing problems and a count different from ``expected_images`` go in the report.
    """
    root = layout.data_root
    if not root.is_dir():
        raise layout_error(name, layout, f"data folder {root} does not exist")
    if layout.ann_file is not None and not layout.ann_file.is_file():
        raise layout_error(name, layout, f"split list {layout.ann_file} does not exist")
    if not layout.img_dir.is_dir():
        raise layout_error(name, layout, f"image folder {layout.img_dir} does not exist")
    pairs, no_label, no_image = layout.list_pairs()
    if not pairs and not no_label:
        raise layout_error(name, layout, f"no images (*{layout.img_suffix}) found under {layout.img_dir}")
    if not layout.seg_dir.is_dir():
        raise layout_error(name, layout, f"label folder {layout.seg_dir} does not exist "
                                         f"({len(no_label)} images have no labels)")
    report = CheckReport(name, layout, pairs, expected_images)
    for stem in no_label:
        report.add(MISSING_LABEL, f"{layout.image_path(stem)}: no label {layout.label_path(stem)}", stem)
    for stem in no_image:
        report.add(MISSING_IMAGE, f"{layout.label_path(stem)}: no image {layout.image_path(stem)}", stem)
    found = len(pairs) + len(no_label)
    if expected_images is not None and found != expected_images:
        report.add(COUNT, f"found {found} images, the {name} split has {expected_images}: "
                          "the download or extraction is incomplete")
    return report


def _check_pair(args: Tuple[str, str, str, bool, int, int]) -> Optional[Problem]:
    stem, img_path, seg_path, reduce_zero_label, num_classes, ignore_index = args
    try:
        image = read_image_rgb(img_path)
        label = encode_label(read_label(seg_path), reduce_zero_label, ignore_index)
        validate_sample(img_path, seg_path, image.shape, label, num_classes, ignore_index)
    except BadSampleError as err:
        return Problem(stem, str(err))
    return None


def check_files(report: CheckReport, num_classes: int, workers: Optional[int] = None,
                progress: bool = False) -> CheckReport:
    """Deep check: open every pair; unreadable/truncated files, sizes and label values."""
    layout = report.layout
    jobs = [(stem, str(layout.image_path(stem)), str(layout.label_path(stem)), layout.reduce_zero_label,
             num_classes, layout.ignore_index) for stem in report.pairs]
    workers = workers or min(8, os.cpu_count() or 1)
    results: Sequence[Optional[Problem]]
    if workers <= 1 or len(jobs) < 32:
        results = [_check_pair(job) for job in jobs]
    else:
        with ProcessPoolExecutor(workers) as pool:
            iterator = pool.map(_check_pair, jobs, chunksize=16)
            if progress:
                from tqdm import tqdm

                iterator = tqdm(iterator, total=len(jobs), desc=f"checking {report.name}", unit="img")
            results = list(iterator)
    report.problems.setdefault(BAD_FILE, []).extend(p for p in results if p is not None)
    return report


_FROM_CATALOG = object()


def check_dataset(name: str, root: Union[str, Path], *, deep: bool = True,
                  expected_images: Union[int, None, object] = _FROM_CATALOG, workers: Optional[int] = None,
                  progress: bool = False) -> CheckReport:
    """Check dataset ``name`` under the data root ``root``.

    Args:
        deep: also open every image/label pair (sizes, label values, unreadable files).
        expected_images: the split's image count; by default the catalogue's, None to skip the
            count check.

    Raises:
        DataLayoutError: the split cannot be used at all (a folder or the split list is missing, no
            images); the message says what is expected and how to prepare it.
    """
    info = catalog.get(name)
    expected = info.expected_images if expected_images is _FROM_CATALOG else expected_images
    report = check_layout(info.name, info.layout(root), expected)  # type: ignore[arg-type]
    if deep:
        check_files(report, info.num_classes, workers=workers, progress=progress)
    return report
