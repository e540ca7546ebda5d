"""Check a prepared split against its config: the cheap check (folders, pairing, counts) and the deep
one (every file opened). Used by ``tools/check_data.py``, ``tools/prepare_data.py`` and, for the cheap
part, before an evaluation loads any model."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from ..datasets import DATASETS
from ..datasets.check import CheckReport, check_files, check_layout
from ..datasets.layout import DatasetLayout

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs"
_FROM_CONFIG = object()


def dataset_config(name: str):
    """The mmengine config ``configs/<name>.py`` (dataset_name, data_subdir, expected_images, ...)."""
    from mmengine.config import Config

    if name not in DATASETS:
        raise KeyError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    path = CONFIGS / f"{name}.py"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; run the tools from a checkout of the repository")
    return Config.fromfile(str(path))


def dataset_layout(name: str, root: Union[str, Path], cfg=None) -> DatasetLayout:
    """The layout of dataset ``name`` under the data root ``root`` (the ``--root`` folder)."""
    cfg = cfg if cfg is not None else dataset_config(name)
    dataset = dict(cfg.test_dataloader.dataset)
    dataset["data_root"] = str(Path(root) / cfg.data_subdir)
    return DatasetLayout.from_config(dataset)


def num_classes(name: str) -> int:
    from ..datasets.classnames import load_classnames

    return load_classnames(CONFIGS / "classnames" / f"{name}.txt").num_classes


def check_dataset(name: str, root: Union[str, Path], *, deep: bool = True,
                  expected_images: Union[int, None, object] = _FROM_CONFIG, workers: Optional[int] = None,
                  progress: bool = False) -> CheckReport:
    """Check dataset ``name`` under ``root``.

    Args:
        deep: also open every image/label pair (sizes, label values, unreadable files).
        expected_images: the split's image count; by default the config's ``expected_images``,
            None to skip the count check.

    Raises:
        DataLayoutError: the split cannot be used at all (a folder or the split list is missing, no
            images); the message says what is expected and how to prepare it.
    """
    cfg = dataset_config(name)
    layout = dataset_layout(name, root, cfg)
    expected = cfg.get("expected_images") if expected_images is _FROM_CONFIG else expected_images
    report = check_layout(name, layout, expected)  # type: ignore[arg-type]
    if deep:
        check_files(report, num_classes(name), workers=workers, progress=progress)
    return report
