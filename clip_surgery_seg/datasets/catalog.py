"""The dataset catalogue: every fact about a benchmark dataset that is not its on-disk layout.

One :class:`DatasetInfo` per dataset -- its name and the paper's label for it, the split and its
image count, the class-name file, the archives it is prepared from (with their published
checksums), and how its synthetic stand-in looks. The layout (folders, suffixes, label encoding) is
in the dataset's config, ``configs/<name>.py``, as mmsegmentation configs hold it;
:meth:`DatasetInfo.layout` reads it from there. Every other part of the harness (data preparation
and checks, evaluation, synthetic data, palettes, reports) reads this catalogue.

A dataset is one entry here, its class-name file ``configs/classnames/<name>.txt`` and its config
``configs/<name>.py`` (docs/datasets.md, "Adding a dataset").
"""
from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Dict, Iterable, List, Optional, Tuple, Union

import numpy as np

from .. import resources
from ..errors import ConfigError
from .encodings import voc_palette

if TYPE_CHECKING:  # pragma: no cover
    from .layout import DatasetLayout


# --- archives -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Checksum:
    """A published digest of a file; ``published`` says where the value was published."""

    algorithm: str  # a hashlib name: md5, sha1, sha256
    value: str
    published: str = ""

    def __post_init__(self) -> None:
        hashlib.new(self.algorithm)  # unknown algorithm: fail at definition, not after a download


@dataclass(frozen=True)
class Archive:
    """One archive a dataset is prepared from: where to get it and its published checksums.

    Only checksums found published by a third party are recorded, each with where it was published;
    archives without one are still checked by the CRCs of the zip/gzip format while extracted.
    """

    filename: str
    url: Optional[str]  # None: behind a login, the user downloads it and passes --from-archives
    checksums: Tuple[Checksum, ...]
    size: str  # as published by the provider, for the user's planning
    homepage: str

    def with_url(self, url: str, checksums: Tuple[Checksum, ...] = ()) -> "Archive":
        """The same archive served from elsewhere (a mirror, or a local server in the tests)."""
        return Archive(self.filename, url, checksums, self.size, self.homepage)


_GLUONCV = "dmlc/gluon-cv"
ARCHIVES: Dict[str, Archive] = {a.filename: a for a in (
    Archive(
        "ADEChallengeData2016.zip",
        "http://data.csail.mit.edu/places/ADEchallenge/ADEChallengeData2016.zip",
        (Checksum("sha1", "219e1696abb36c8ba3a3afe7fb2f4b4606a897c7",
                  f"{_GLUONCV} scripts/datasets/ade20k.py, _AUG_DOWNLOAD_URLS"),),
        "about 0.9 GB", "http://sceneparsing.csail.mit.edu/"),
    Archive(
        "val2017.zip",
        "http://images.cocodataset.org/zips/val2017.zip",
        (Checksum("md5", "442b8da7639aecaf257c1dceb8ba8c80",
                  "intel/neural-compressor examples/pytorch/fx/object_detection/maskrcnn/"
                  "download_dataset.sh (md5sum list)"),
         Checksum("sha1", "4950dc9d00dbe1c933ee0170f5797584351d2a41",
                  f"{_GLUONCV} scripts/datasets/mscoco.py, _DOWNLOAD_URLS")),
        "about 1 GB", "https://cocodataset.org/#download"),
    Archive(
        "stuffthingmaps_trainval2017.zip",
        "http://calvin.inf.ed.ac.uk/wp-content/uploads/data/cocostuffdataset/"
        "stuffthingmaps_trainval2017.zip",
        (),  # no published checksum found; the zip's CRC-32s are checked on extraction
        "659 MB", "https://github.com/nightrome/cocostuff#downloads"),
    Archive(
        "leftImg8bit_trainvaltest.zip", None, (),  # account needed; the user brings the file
        "11 GB", "https://www.cityscapes-dataset.com/downloads/"),
    Archive(
        "gtFine_trainvaltest.zip", None, (),
        "241 MB", "https://www.cityscapes-dataset.com/downloads/"),
    Archive(
        "VOCtrainval_03-May-2010.tar",
        "http://host.robots.ox.ac.uk/pascal/VOC/voc2010/VOCtrainval_03-May-2010.tar",
        (Checksum("md5", "da459979d0c395079b5c75ee67908abb",
                  "pytorch/vision torchvision/datasets/voc.py, DATASET_YEAR_DICT['2010']"),
         Checksum("sha1", "bf9985e9f2b064752bf6bd654d89f017c76c395a",
                  f"{_GLUONCV} scripts/datasets/pascal_context.py, _Context_DOWNLOAD_URLS")),
        "1.3 GB", "http://host.robots.ox.ac.uk/pascal/VOC/voc2010/"),
    Archive(
        "VOCtrainval_11-May-2012.tar",
        "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar",
        (Checksum("md5", "6cd6e144f989b92b3379bac3b3de84fd",
                  "pytorch/vision torchvision/datasets/voc.py, DATASET_YEAR_DICT['2012']"),
         Checksum("sha1", "4e443f8a2eca6b1dac8a6c57641b67dd40621a49",
                  f"{_GLUONCV} scripts/datasets/pascal_voc.py, download_voc"),
         Checksum("sha256", "e14f763270cf193d0b5f74b169f44157a4b0c6efa708f4dd0ff78ee691763bcb",
                  "tensorflow/datasets tensorflow_datasets/url_checksums/voc.txt (the same file on the "
                  "pjreddie.com mirror)")),
        "2.0 GB (1,999,639,040 bytes)", "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/"),
    Archive(
        "trainval.tar.gz",
        "https://cs.stanford.edu/~roozbeh/pascal-context/trainval.tar.gz",
        (),  # no published checksum found; gzip's CRC-32 is checked on extraction
        "31 MB", "https://cs.stanford.edu/~roozbeh/pascal-context/"),
)}


# --- synthetic stand-ins ------------------------------------------------------------------------

LabelSampler = Callable[[np.random.Generator, Tuple[int, int]], np.ndarray]


def blocks(values: Iterable[int], cells: int = 6) -> LabelSampler:
    """Label maps of ``cells x cells`` rectangles, each a stored value drawn from ``values``."""
    choices = np.asarray(list(values))

    def sample(rng: np.random.Generator, shape: Tuple[int, int]) -> np.ndarray:
        h, w = shape
        grid = rng.choice(choices, size=(cells, cells))
        ys = np.minimum(np.arange(h) * cells // h, cells - 1)
        xs = np.minimum(np.arange(w) * cells // w, cells - 1)
        return grid[ys][:, xs].astype(np.uint8)

    return sample


@dataclass(frozen=True)
class SyntheticSpec:
    """How the synthetic stand-in of a dataset looks (its folders come from the dataset's config)."""

    image_size: Tuple[int, int]  # (H, W), typical of the dataset
    stem: Callable[[int], str]  # image index -> file stem, may include a subfolder
    stored_labels: LabelSampler  # label values as stored on disk, before the dataset's encoding
    palette: Optional[np.ndarray] = None  # (256, 3): labels are palette PNGs with it, as released (VOC)


# --- the datasets -------------------------------------------------------------------------------

@dataclass(frozen=True)
class DatasetInfo:
    """One benchmark dataset (its validation split).

    Datasets may share files (``voc21``/``voc20``, ``pascal_context60``/``pascal_context59``,
    ``coco_object``/``coco_stuff171``): the same archives and images, read with another encoding.
    """

    name: str  # as configs, results and the history spell it
    label: str  # as papers print it
    split: str
    expected_images: int  # the published size of the split
    archives: Tuple[str, ...]  # keys of ARCHIVES, in the order preparation uses them
    num_classes: int  # classes scored; the class-name file must have exactly this many lines
    synthetic: SyntheticSpec
    aliases: Tuple[str, ...] = ()
    # how tools/prepare_data.py gets it: the name of a recipe in data_prep/prepare.py (datasets that
    # share files share one); None: prepared by hand into the config's layout
    recipe: Optional[str] = None

    @property
    def config(self) -> Path:
        """The dataset's config: its layout and label encoding (and the default experiment on it)."""
        return resources.configs_dir() / f"{self.name}.py"

    @property
    def classnames(self) -> Path:
        return resources.classnames_file(self.name)

    def dataset_config(self) -> dict:
        """``test_dataloader.dataset`` of the base config, and its ``data_subdir``."""
        from mmengine.config import Config

        cfg = Config.fromfile(str(self.config))
        dataset = cfg.test_dataloader.dataset.to_dict()
        dataset["data_subdir"] = cfg.data_subdir
        return dataset

    @property
    def dataset_type(self) -> str:
        """Its mmseg dataset type (the config's ``type``): what its palette and mmseg's tools go by."""
        return str(self.dataset_config()["type"])

    def layout(self, data_root: Union[str, Path]) -> "DatasetLayout":
        """The split's layout under the data root ``data_root`` (what ``--data-root`` names)."""
        from .layout import DatasetLayout

        dataset = self.dataset_config()
        dataset["data_root"] = str(Path(data_root) / dataset.pop("data_subdir"))
        return DatasetLayout.from_config(dataset)


def _cityscapes_stem(i: int) -> str:
    city = ("frankfurt", "lindau", "munster")[i % 3]
    return f"{city}/{city}_{i:06d}_000019"


def _with_ignore(values: Iterable[int]) -> List[int]:
    return list(values) + [255]


def _voc_stem(i: int) -> str:
    return f"{2007 + i % 5}_{33 + 7 * i:06d}"


_VOC_LABELS = blocks(_with_ignore(range(21)))  # 0 = background, 255 = boundaries and difficult objects
_VOC = dict(image_size=(375, 500), stem=_voc_stem, stored_labels=_VOC_LABELS, palette=voc_palette())
_CONTEXT = dict(image_size=(375, 500), stem=lambda i: f"2008_{2 + 3 * i:06d}",
                stored_labels=blocks(range(0, 60)))  # 0 = background
_COCO = dict(image_size=(480, 640), stem=lambda i: f"{139 + 146 * i:012d}")

#: The datasets in the field's usual table order: the four with a background class scored, then
#: VOC20, Context-59, COCO-Stuff, Cityscapes, ADE20K (ClearCLIP's and the later papers' order).
CATALOG: Dict[str, DatasetInfo] = {d.name: d for d in (
    DatasetInfo("voc21", "PASCAL VOC21", "val", 1449, ("VOCtrainval_11-May-2012.tar",), 21,
                SyntheticSpec(**_VOC),
                aliases=("voc", "voc2012", "pascal_voc", "pascal_voc21", "pascalvoc"), recipe="voc2012"),
    DatasetInfo("pascal_context60", "PASCAL Context-60", "val", 5105,
                ("VOCtrainval_03-May-2010.tar", "trainval.tar.gz"), 60,
                SyntheticSpec(**_CONTEXT),
                aliases=("context60", "pc60", "pascalcontext60"), recipe="pascal_context"),
    DatasetInfo("coco_object", "COCO-Object", "val2017", 5000,
                ("val2017.zip", "stuffthingmaps_trainval2017.zip"), 81,
                SyntheticSpec(**_COCO, stored_labels=blocks(range(81))),  # 0 = background, no ignore
                aliases=("object", "cocoobject", "coco_obj"), recipe="coco_object"),
    DatasetInfo("voc20", "PASCAL VOC20", "val", 1449, ("VOCtrainval_11-May-2012.tar",), 20,
                SyntheticSpec(**_VOC),
                aliases=("pascal_voc20", "pascalvoc20"), recipe="voc2012"),
    DatasetInfo("pascal_context59", "PASCAL Context-59", "val", 5105,
                ("VOCtrainval_03-May-2010.tar", "trainval.tar.gz"), 59,
                SyntheticSpec(**_CONTEXT),
                aliases=("context", "context59", "pascal_context", "pc59", "pascalcontext59"), recipe="pascal_context"),
    DatasetInfo("coco_stuff171", "COCO-Stuff-171", "val2017", 5000,
                ("val2017.zip", "stuffthingmaps_trainval2017.zip"), 171,
                SyntheticSpec(**_COCO, stored_labels=blocks(_with_ignore(range(171)))),
                aliases=("coco_stuff", "cocostuff", "coco", "cocostuff171"), recipe="coco_stuff"),
    DatasetInfo("cityscapes", "Cityscapes", "val", 500,
                ("leftImg8bit_trainvaltest.zip", "gtFine_trainvaltest.zip"), 19,
                SyntheticSpec((512, 1024), _cityscapes_stem, blocks(_with_ignore(range(19)))),
                aliases=("city",), recipe="cityscapes"),
    DatasetInfo("ade20k", "ADE20K-150", "validation", 2000,
                ("ADEChallengeData2016.zip",), 150,
                SyntheticSpec((512, 683), lambda i: f"ADE_val_{i + 1:08d}", blocks(range(0, 151))),  # 0 = other
                aliases=("ade", "ade150", "ade20k150"), recipe="ade20k"),
)}

DATASETS: Tuple[str, ...] = tuple(CATALOG)
PAPER_ORDER = DATASETS


def label(name: str) -> str:
    """The paper's name for a dataset (the name itself for one outside the catalogue)."""
    return CATALOG[name].label if name in CATALOG else name


def paper_rank(name: str) -> int:
    """Sort key: the catalogue's datasets in its order, then any others."""
    return DATASETS.index(name) if name in CATALOG else len(DATASETS)


def resolve(name: str, known: Optional[Iterable[str]] = None) -> str:
    """A dataset name as the configs spell it (aliases accepted); an unknown one raises with a hint."""
    known = list(known) if known is not None else list(DATASETS)
    key = name.strip().lower().replace("-", "_")
    if key in known:
        return key
    aliases = {a: d.name for d in CATALOG.values() for a in d.aliases if d.name in known}
    for candidate in (key, key.replace("_", "")):
        if candidate in known:  # "VOC-20" -> voc20
            return candidate
        if candidate in aliases:
            return aliases[candidate]
    close = difflib.get_close_matches(key, known + list(aliases), n=1, cutoff=0.5)
    hint = f"; did you mean {aliases.get(close[0], close[0])}?" if close else ""
    raise ConfigError(f"unknown dataset {name!r}{hint} (datasets: {', '.join(known)})")


def resolve_many(names: Iterable[str], known: Optional[Iterable[str]] = None) -> List[str]:
    """Several names resolved, duplicates dropped, in the catalogue's order."""
    resolved = {resolve(n, known) for n in names}
    return sorted(resolved, key=lambda n: (paper_rank(n), n))


def get(name: str) -> DatasetInfo:
    """The catalogue entry of ``name`` (aliases accepted)."""
    return CATALOG[resolve(name)]
