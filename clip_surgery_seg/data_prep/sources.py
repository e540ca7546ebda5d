"""Where each dataset's archives come from, and the published checksums used to verify them.

Only checksums found published by a third party are recorded, each with where it was published.
Archives without one (COCO-Stuff's stuffthingmaps, PASCAL Context's annotations, Cityscapes) are
still checked for integrity by the CRCs inside the zip/gzip format while they are extracted.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Tuple

from .download import Checksum


@dataclass(frozen=True)
class Source:
    """One archive: its file name, where to get it, its published checksums."""

    filename: str
    url: Optional[str]  # None: behind a login, the user downloads it and passes --from-archives
    checksums: Tuple[Checksum, ...]
    size: str  # as published by the provider, for the user's planning
    homepage: str

    def with_url(self, url: str, checksums: Tuple[Checksum, ...] = ()) -> "Source":
        """The same archive served from elsewhere (a mirror, or a local server in the tests)."""
        return Source(self.filename, url, checksums, self.size, self.homepage)


_GLUONCV = "dmlc/gluon-cv"
SOURCES: Dict[str, Source] = {s.filename: s for s in (
    Source(
        "ADEChallengeData2016.zip",
        "http://data.csail.mit.edu/places/ADEchallenge/ADEChallengeData2016.zip",
        (Checksum("sha1", "219e1696abb36c8ba3a3afe7fb2f4b4606a897c7",
                  f"{_GLUONCV} scripts/datasets/ade20k.py, _AUG_DOWNLOAD_URLS"),),
        "about 0.9 GB", "http://sceneparsing.csail.mit.edu/"),
    Source(
        "val2017.zip",
        "http://images.cocodataset.org/zips/val2017.zip",
        (Checksum("md5", "442b8da7639aecaf257c1dceb8ba8c80",
                  "intel/neural-compressor examples/pytorch/fx/object_detection/maskrcnn/"
                  "download_dataset.sh (md5sum list)"),
         Checksum("sha1", "4950dc9d00dbe1c933ee0170f5797584351d2a41",
                  f"{_GLUONCV} scripts/datasets/mscoco.py, _DOWNLOAD_URLS")),
        "about 1 GB", "https://cocodataset.org/#download"),
    Source(
        "stuffthingmaps_trainval2017.zip",
        "http://calvin.inf.ed.ac.uk/wp-content/uploads/data/cocostuffdataset/"
        "stuffthingmaps_trainval2017.zip",
        (),  # no published checksum found; the zip's CRC-32s are checked on extraction
        "659 MB", "https://github.com/nightrome/cocostuff#downloads"),
    Source(
        "leftImg8bit_trainvaltest.zip", None, (),  # account needed; the user brings the file
        "11 GB", "https://www.cityscapes-dataset.com/downloads/"),
    Source(
        "gtFine_trainvaltest.zip", None, (),
        "241 MB", "https://www.cityscapes-dataset.com/downloads/"),
    Source(
        "VOCtrainval_03-May-2010.tar",
        "http://host.robots.ox.ac.uk/pascal/VOC/voc2010/VOCtrainval_03-May-2010.tar",
        (Checksum("md5", "da459979d0c395079b5c75ee67908abb",
                  "pytorch/vision torchvision/datasets/voc.py, DATASET_YEAR_DICT['2010']"),
         Checksum("sha1", "bf9985e9f2b064752bf6bd654d89f017c76c395a",
                  f"{_GLUONCV} scripts/datasets/pascal_context.py, _Context_DOWNLOAD_URLS")),
        "1.3 GB", "http://host.robots.ox.ac.uk/pascal/VOC/voc2010/"),
    Source(
        "trainval.tar.gz",
        "https://cs.stanford.edu/~roozbeh/pascal-context/trainval.tar.gz",
        (),  # no published checksum found; gzip's CRC-32 is checked on extraction
        "31 MB", "https://cs.stanford.edu/~roozbeh/pascal-context/"),
)}

# The archives each dataset needs, in the order they are used.
DATASET_ARCHIVES: Mapping[str, Tuple[str, ...]] = {
    "ade20k": ("ADEChallengeData2016.zip",),
    "coco_stuff171": ("val2017.zip", "stuffthingmaps_trainval2017.zip"),
    "cityscapes": ("leftImg8bit_trainvaltest.zip", "gtFine_trainvaltest.zip"),
    "pascal_context59": ("VOCtrainval_03-May-2010.tar", "trainval.tar.gz"),
}
