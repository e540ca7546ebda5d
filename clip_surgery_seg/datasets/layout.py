"""Where a dataset's images and labels live, read from its mmseg dataset config (docs/datasets.md)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ..errors import ConfigError, DataLayoutError
from ..fileio import is_utf8_name, printable

DATA_README = "data/README.md"  # where the layouts and preparation commands are documented



@dataclass(frozen=True)
class DatasetLayout:
    """The on-disk layout of one split.

    ``img_dir``/``seg_dir`` are absolute; image ``<dir>/<stem><img_suffix>`` pairs with label
    ``<seg_dir>/<stem><seg_suffix>`` (``stem`` may include subfolders, e.g. Cityscapes' cities).
    """

    dataset_type: str
    data_root: Path
    img_dir: Path
    seg_dir: Path
    img_suffix: str
    seg_suffix: str
    ann_file: Optional[Path]
    reduce_zero_label: bool
    ignore_index: int = 255

    @classmethod
    def from_config(cls, dataset_cfg: dict) -> "DatasetLayout":
        """The layout a ``test_dataloader.dataset`` config describes (its keys as mmseg names them)."""
        missing = [k for k in ("data_root", "img_suffix", "seg_map_suffix", "reduce_zero_label")
                   if k not in dataset_cfg]
        if missing:
            raise ConfigError(f"the dataset config ({dataset_cfg.get('type')}) needs {', '.join(missing)}; "
                              "state them as configs/_base_/datasets/*.py do")
        root = Path(dataset_cfg["data_root"])
        prefix = dict(dataset_cfg.get("data_prefix") or {})
        ann_file = dataset_cfg.get("ann_file") or None
        return cls(
            dataset_type=str(dataset_cfg.get("type")),
            data_root=root,
            img_dir=root / prefix.get("img_path", ""),
            seg_dir=root / prefix.get("seg_map_path", ""),
            img_suffix=str(dataset_cfg["img_suffix"]),
            seg_suffix=str(dataset_cfg["seg_map_suffix"]),
            ann_file=root / ann_file if ann_file else None,
            reduce_zero_label=bool(dataset_cfg["reduce_zero_label"]),
            ignore_index=int(dataset_cfg.get("ignore_index", 255)),
        )

    def describe(self) -> str:
        """The expected layout, one line."""
        ann = f", split list {self.ann_file}" if self.ann_file else ""
        return f"images {self.img_dir}/**/*{self.img_suffix}, labels {self.seg_dir}/**/*{self.seg_suffix}{ann}"

    def _scan(self, folder: Path, suffix: str) -> List[str]:
        """Stems of the ``*suffix`` files below ``folder``, following symlinks.

        Raises DataLayoutError for what would make the listing wrong: a folder that cannot be read
        (its files would be missing silently), a folder reached twice through symlinks (its files
        would count twice; a loop would repeat them without end), a file name that is not UTF-8.
        """
        if not folder.is_dir():
            return []
        stems: List[str] = []
        seen: Dict[Tuple[int, int], str] = {}
        for dirpath, dirnames, files in os.walk(folder, followlinks=True, onerror=_unreadable_folder):
            try:
                info = os.stat(dirpath)
            except OSError as err:
                _unreadable_folder(err)
            first = seen.setdefault((info.st_dev, info.st_ino), dirpath)
            if first != dirpath:
                raise DataLayoutError(_reached_twice(first, dirpath))
            dirnames.sort()
            rel = os.path.relpath(dirpath, folder)
            for name in files:
                if name.endswith(suffix):
                    stem = name[: -len(suffix)] if rel == "." else os.path.join(rel, name[: -len(suffix)])
                    if not is_utf8_name(stem):
                        raise DataLayoutError(
                            f"{printable(os.path.join(dirpath, name))}: the file name is not valid UTF-8 (shown "
                            "here with \\xNN for its undecodable bytes); rename it, e.g. `convmv -f latin1 -t utf8 "
                            "--notest FILE`, and run again")
                    stems.append(stem)
        return sorted(stems)

    def list_pairs(self) -> Tuple[List[str], List[str], List[str]]:
        """Scan the folders: (paired stems, images without a label, labels without an image).

        With an ``ann_file`` the stems it lists are the split; a listed stem whose image is missing
        is reported among the labels without an image, whether or not its label exists.
        """
        if self.ann_file is not None:
            wanted = [line.strip() for line in _read_split_list(self.ann_file).splitlines() if line.strip()]
            images = set(s for s in wanted if (self.img_dir / f"{s}{self.img_suffix}").is_file())
            labels = set(s for s in wanted if (self.seg_dir / f"{s}{self.seg_suffix}").is_file())
            order = sorted(set(wanted))
        else:
            images = set(self._scan(self.img_dir, self.img_suffix))
            labels = set(self._scan(self.seg_dir, self.seg_suffix))
            order = sorted(images | labels)
        pairs = [s for s in order if s in images and s in labels]
        no_label = [s for s in order if s in images and s not in labels]
        no_image = [s for s in order if s not in images]
        return pairs, no_label, no_image

    def image_path(self, stem: str) -> Path:
        return self.img_dir / f"{stem}{self.img_suffix}"

    def label_path(self, stem: str) -> Path:
        return self.seg_dir / f"{stem}{self.seg_suffix}"


def _unreadable_folder(err: OSError) -> None:
    """``os.walk``'s ``onerror``: a folder that cannot be listed would leave its files out silently."""
    raise DataLayoutError(f"cannot read the folder {printable(str(err.filename))} ({err.strerror or err}); fix "
                          "its permissions or remove it from the data folder") from None


def _reached_twice(first: str, again: str) -> str:
    """Why ``again`` (a path through symlinks) is the folder already listed as ``first``."""
    if again.startswith(first.rstrip(os.sep) + os.sep):
        # the first symlink below ``first`` on the way down leads back up
        link, parts = first, os.path.relpath(again, first).split(os.sep)
        for part in parts:
            link = os.path.join(link, part)
            if os.path.islink(link):
                break
        return (f"{printable(link)} is a symlink loop: it leads back to {printable(os.path.realpath(link))}, a "
                "folder it is in; remove that link or point it elsewhere")
    return (f"{printable(again)} is the same folder as {printable(first)} (through a symlink), so its files "
            "would be listed twice; remove one of the links")


def _read_split_list(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataLayoutError(f"{printable(str(path))}: the split list is not UTF-8 text (byte {err.start}); "
                              "restore it (tools/prepare_data.py --force writes it again)") from None
    except OSError as err:
        raise DataLayoutError(f"cannot read the split list {printable(str(path))} ({err.strerror or err}); "
                              "restore it (tools/prepare_data.py --force writes it again)") from None
