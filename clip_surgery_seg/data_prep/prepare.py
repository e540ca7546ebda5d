"""Get each dataset's validation split into the layout of docs/datasets.md: fetch, extract, convert.

Only the members the validation split needs are extracted. Every step can be interrupted and run
again: downloads resume, extracted and converted files are written atomically and skipped when they
are already in place, and a split list (VOC, Context, COCO) is written last, once every file it
lists is in place.

Datasets read from the same files share them: ``voc20`` is ``voc21``'s files, ``pascal_context60``
Context-59's, and ``coco_object`` is converted from the COCO-Stuff maps that ``coco_stuff171`` also
uses; an archive is fetched once, and not at all when what it provides is already extracted.
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional

from ..fileio import atomic_write_text
from .archives import ExtractStats, extract, read_member
from ..datasets.catalog import ARCHIVES, Archive, get
from ..datasets.encodings import CONTEXT59_CLASSES
from .convert import (check_context_label_names, convert_cityscapes_file, convert_coco_object_file,
                      convert_coco_stuff_file, convert_context_file, convert_many, label_pairs)
from .download import RETRIES, download, verify_checksums
from .. import resources
from ..errors import ConversionError, DataPrepError, MissingArchiveError

DEFAULT_DOWNLOADS = "downloads"  # under the data root, unless --from-archives names a folder


@dataclass
class Fetcher:
    """Finds an archive in ``directory`` or downloads it there, verifying published checksums, and
    extracts from it.

    With ``allow_download`` False (``--from-archives``), a missing archive is an error that says
    where to get it. With ``force`` (``--force``), extraction and conversion rewrite the files already
    in place.
    """

    directory: Path
    sources: Mapping[str, Archive]
    allow_download: bool = True
    verify: bool = True
    progress: bool = True
    retries: int = RETRIES
    backoff_s: float = 2.0
    force: bool = False

    def get(self, filename: str) -> Path:
        source = self.sources[filename]
        path = self.directory / filename
        checksums = source.checksums if self.verify else ()
        if path.is_file():
            if checksums and self.progress:
                print(f"verifying {path} ...", flush=True)
            verify_checksums(path, checksums, "delete it and re-run to download it again, or put a good "
                                              "copy there")
            return path
        if source.url is None:
            raise MissingArchiveError(f"{path} not found: log in at {source.homepage}, download {filename} "
                                      f"({source.size}) into a folder and pass --from-archives FOLDER")
        if not self.allow_download:
            raise MissingArchiveError(f"{path} not found: put it from {source.url} there, or leave out "
                                      "--from-archives to download it")
        if self.progress:
            print(f"downloading {source.url} ({source.size}) to {path}", flush=True)
        return download(source.url, path, checksums, retries=self.retries, backoff_s=self.backoff_s,
                        progress=self.progress)

    def extract(self, archive: Path, dest: Path, select: Callable[[str], Optional[str]],
                desc: Optional[str] = None) -> ExtractStats:
        """The members ``select`` keeps, under ``dest`` (see ``archives.extract``)."""
        return extract(archive, dest, select, progress=self.progress, desc=desc, overwrite=self.force)


def write_split_list(path: Path, ids: List[str]) -> None:
    """The list of a split's ids, written atomically -- and not rewritten when it is already there."""
    text = "\n".join(ids) + "\n"
    if not (path.is_file() and path.read_text() == text):
        atomic_write_text(path, text)


def _matcher(pattern: str, output: Callable[[re.Match], str]) -> Callable[[str], Optional[str]]:
    compiled = re.compile(pattern)

    def select(name: str) -> Optional[str]:
        match = compiled.fullmatch(name)
        return output(match) if match else None

    return select


def prepare_ade20k(root: Path, fetch: Fetcher, workers: Optional[int] = None) -> Path:
    """ADEChallengeData2016.zip: validation images and annotations (already in the target encoding)."""
    archive = fetch.get("ADEChallengeData2016.zip")
    keep = _matcher(r"ADEChallengeData2016/(?:(?:images|annotations)/validation/[^/]+\.(?:jpg|png)"
                    r"|[^/]+\.txt)", lambda m: m.group(0))
    fetch.extract(archive, root, keep)
    return root / "ADEChallengeData2016"


COCO_SPLIT_LIST = "val2017.txt"  # under coco_stuff164k/: the ids whose image and map are extracted
COCO_MAP_STEM = r"\d+"  # stuffthingmaps are <image id>.png; what is made from them has a suffix


def coco_stuff_sources(root: Path, fetch: Fetcher) -> Path:
    """The val2017 images and stuffthingmaps under ``root/coco_stuff164k``, fetched only if needed.

    The id list ``coco_stuff164k/val2017.txt`` is written once both are in place, so a later
    preparation (``coco_stuff171`` or ``coco_object``) neither fetches nor opens the archives again.
    """
    out = root / "coco_stuff164k"
    images, maps = out / "images" / "val2017", out / "annotations" / "val2017"
    split = out / COCO_SPLIT_LIST

    def complete(ids: List[str]) -> bool:
        return bool(ids) and all((images / f"{i}.jpg").is_file() and (maps / f"{i}.png").is_file() for i in ids)

    if fetch.force:
        pass  # --force: extract everything again
    elif split.is_file():
        if complete(split.read_text().split()):
            return out
    else:  # extracted before the list was written (an older version): a full split counts
        found = sorted(p.stem for p in images.glob("*.jpg")) if images.is_dir() else []
        if len(found) == get("coco_stuff171").expected_images and complete(found):
            write_split_list(split, found)
            return out
    fetch.extract(fetch.get("val2017.zip"), root,
                  _matcher(r"val2017/[^/]+\.jpg", lambda m: f"coco_stuff164k/images/{m.group(0)}"))
    fetch.extract(fetch.get("stuffthingmaps_trainval2017.zip"), root,
                  _matcher(r"val2017/(\d+)\.png", lambda m: f"coco_stuff164k/annotations/{m.group(0)}"))
    ids = sorted(p.stem for p in images.glob("*.jpg"))
    if not ids:
        raise ConversionError("val2017.zip holds no val2017/*.jpg image; is it COCO's val2017.zip?")
    missing = [i for i in ids if not (maps / f"{i}.png").is_file()]
    if missing:
        raise ConversionError(f"stuffthingmaps_trainval2017.zip has no val2017 map for {len(missing)} of the "
                              f"{len(ids)} val2017 images (first: {', '.join(missing[:5])}); is it the "
                              "COCO-Stuff stuffthingmaps archive?")
    write_split_list(split, ids)
    return out


def prepare_coco_stuff171(root: Path, fetch: Fetcher, workers: Optional[int] = None) -> Path:
    """val2017 images + val2017 stuffthingmaps, converted to ``*_labelTrainIds.png`` (171 classes)."""
    out = coco_stuff_sources(root, fetch)
    pairs = label_pairs(out / "annotations" / "val2017", ".png", "_labelTrainIds.png", COCO_MAP_STEM)
    convert_many(convert_coco_stuff_file, pairs, workers=workers, progress=fetch.progress, force=fetch.force,
                 desc="stuffthingmaps -> labelTrainIds")
    return out


def prepare_coco_object(root: Path, fetch: Fetcher, workers: Optional[int] = None) -> Path:
    """The same images and stuffthingmaps, converted to ``*_instanceTrainIds.png`` (80 things + background)."""
    out = coco_stuff_sources(root, fetch)
    pairs = label_pairs(out / "annotations" / "val2017", ".png", "_instanceTrainIds.png", COCO_MAP_STEM)
    convert_many(convert_coco_object_file, pairs, workers=workers, progress=fetch.progress, force=fetch.force,
                 desc="stuffthingmaps -> COCO-Object")
    return out


def prepare_cityscapes(root: Path, fetch: Fetcher, workers: Optional[int] = None) -> Path:
    """The user's two Cityscapes zips: val images and labelIds, converted to labelTrainIds."""
    out = root / "cityscapes"
    images = fetch.get("leftImg8bit_trainvaltest.zip")
    fetch.extract(images, out, _matcher(r"leftImg8bit/val/[^/]+/[^/]+_leftImg8bit\.png", lambda m: m.group(0)))
    labels = fetch.get("gtFine_trainvaltest.zip")
    fetch.extract(labels, out, _matcher(r"gtFine/val/[^/]+/[^/]+_gtFine_labelIds\.png", lambda m: m.group(0)))
    pairs = label_pairs(out / "gtFine" / "val", "_gtFine_labelIds.png", "_gtFine_labelTrainIds.png")
    convert_many(convert_cityscapes_file, pairs, workers=workers, progress=fetch.progress, force=fetch.force,
                 desc="labelIds -> labelTrainIds")
    return out


CONTEXT_FULL_DIR = "Context459"  # the official 459-class .mat files, under VOCdevkit/VOC2010


def prepare_pascal_context59(root: Path, fetch: Fetcher, workers: Optional[int] = None) -> Path:
    """VOC2010 val images + the official 459-class Context annotations, reduced to 59 classes.

    The split is VOC2010's ``ImageSets/Main/val.txt`` (5105 images): PASCAL Context annotates all of
    VOC2010 trainval and keeps VOC's own train/val division.
    """
    voc = root / "VOCdevkit" / "VOC2010"
    tar = fetch.get("VOCtrainval_03-May-2010.tar")
    fetch.extract(tar, root, _matcher(r"VOCdevkit/VOC2010/ImageSets/Main/(?:train|val|trainval)\.txt",
                                      lambda m: m.group(0)))
    main_val = voc / "ImageSets" / "Main" / "val.txt"
    if not main_val.is_file():
        raise MissingArchiveError(f"{tar} has no VOCdevkit/VOC2010/ImageSets/Main/val.txt; is it the "
                                  "VOC2010 trainval archive?")
    val_ids = sorted({line.split()[0] for line in main_val.read_text(errors="replace").splitlines()
                      if line.strip()})
    wanted = set(val_ids)
    fetch.extract(tar, root, _matcher(r"VOCdevkit/VOC2010/JPEGImages/([^/]+)\.jpg",
                                      lambda m: m.group(0) if m.group(1) in wanted else None),
                  desc="extracting val images")

    annotations = fetch.get("trainval.tar.gz")
    full_dir = voc / CONTEXT_FULL_DIR

    def keep_annotation(name: str) -> Optional[str]:
        base = name.rsplit("/", 1)[-1]
        if base == "labels.txt":
            return "labels.txt"
        match = re.fullmatch(r"(?:.*/)?trainval/([^/]+)\.mat", name)
        return f"trainval/{match.group(1)}.mat" if match and match.group(1) in wanted else None

    fetch.extract(annotations, full_dir, keep_annotation, desc="extracting annotations")
    if (full_dir / "labels.txt").is_file():
        check_context_label_names(full_dir / "labels.txt")
    else:
        print(f"note: {annotations} has no labels.txt, so the 59 class ids were not cross-checked "
              "against the release's class names", file=sys.stderr)
    missing = [i for i in val_ids if not (full_dir / "trainval" / f"{i}.mat").is_file()]
    if missing:
        raise ConversionError(f"{annotations}: {len(missing)} of the {len(val_ids)} val images have no "
                              f"annotation (first: {', '.join(missing[:5])}); is it the PASCAL Context "
                              "trainval.tar.gz?")
    pairs = [(full_dir / "trainval" / f"{i}.mat", voc / "SegmentationClassContext" / f"{i}.png")
             for i in val_ids]
    convert_many(convert_context_file, pairs, workers=workers, progress=fetch.progress, force=fetch.force,
                 desc=f"459 -> {len(CONTEXT59_CLASSES)} classes")
    # Written last: its presence means every label map of the split is in place.
    write_split_list(voc / "ImageSets" / "SegmentationContext" / "val.txt", val_ids)
    return voc


VOC2012_SPLIT = "VOCdevkit/VOC2012/ImageSets/Segmentation/val.txt"


def prepare_voc2012(root: Path, fetch: Fetcher, workers: Optional[int] = None) -> Path:
    """VOC2012's segmentation val split (1449 images): JPEGs and the label PNGs as released.

    The labels are palette PNGs whose index is the class (0 background, 1..20, 255 boundary), read as
    they are: no conversion. ``voc21`` and ``voc20`` read the same files.
    """
    voc = root / "VOCdevkit" / "VOC2012"
    tar = fetch.get("VOCtrainval_11-May-2012.tar")
    released = read_member(tar, VOC2012_SPLIT)
    val_ids = [line.split()[0] for line in released.decode("utf-8", "replace").splitlines() if line.strip()]
    wanted = set(val_ids)
    fetch.extract(tar, root, _matcher(r"VOCdevkit/VOC2012/(?:JPEGImages/([^/]+)\.jpg|SegmentationClass/([^/]+)\.png)",
                                      lambda m: m.group(0) if (m.group(1) or m.group(2)) in wanted else None),
                  desc="extracting val images and labels")
    missing = [i for i in val_ids if not ((voc / "JPEGImages" / f"{i}.jpg").is_file()
                                          and (voc / "SegmentationClass" / f"{i}.png").is_file())]
    if missing:
        raise ConversionError(f"{tar}: {len(missing)} of the {len(val_ids)} images of {VOC2012_SPLIT} have no "
                              f"image or label (first: {', '.join(missing[:5])}); is it the VOC2012 trainval "
                              "archive?")
    # Written last: its presence means every image and label of the split is in place.
    write_split_list(root / VOC2012_SPLIT, val_ids)
    return voc


#: the recipes the catalogue's entries name (``DatasetInfo.recipe``); datasets that read the same
#: files (voc21/voc20, pascal_context60/59) name the same one
RECIPES: Dict[str, Callable[[Path, Fetcher, Optional[int]], Path]] = {
    "voc2012": prepare_voc2012,
    "pascal_context": prepare_pascal_context59,
    "coco_object": prepare_coco_object,
    "coco_stuff": prepare_coco_stuff171,
    "cityscapes": prepare_cityscapes,
    "ade20k": prepare_ade20k,
}


def prepare(name: str, root: Path, archives: Optional[Path] = None, *,
            sources: Mapping[str, Archive] = ARCHIVES, verify: bool = True, progress: bool = True,
            workers: Optional[int] = None, retries: int = RETRIES, backoff_s: float = 2.0,
            force: bool = False) -> Path:
    """Prepare dataset ``name`` under ``root``; returns its folder (``root / data_subdir``).

    Args:
        archives: a folder holding the archives already (``--from-archives``: nothing is downloaded);
            None downloads what is missing into ``root/downloads``.
        sources: file name -> Archive; the default is the catalogue's official list.
        verify: check published checksums (turn off only for a file you verified yourself).
        force: rewrite every extracted and converted file, even one already in place (``--force``).
    """
    info = get(name)
    recipe = RECIPES.get(info.recipe) if info.recipe else None
    if recipe is None:
        how = f"its recipe {info.recipe!r} is not in data_prep/prepare.py" if info.recipe else "it names no recipe"
        raise DataPrepError(f"{info.name} cannot be prepared automatically ({how}): put its files in the layout of "
                            f"{resources.display_path(info.config)} under {root} and check them with "
                            f"python tools/check_data.py {info.name} --root {root}")
    missing = [filename for filename in info.archives if filename not in sources]
    if missing:
        raise DataPrepError(f"{info.name} is prepared from {', '.join(missing)}, which the catalogue's ARCHIVES do "
                            "not list: add its download address and checksum there")
    root = Path(root)
    fetch = Fetcher(Path(archives) if archives else root / DEFAULT_DOWNLOADS, sources,
                    allow_download=archives is None, verify=verify, progress=progress,
                    retries=retries, backoff_s=backoff_s, force=force)
    return recipe(root, fetch, workers)
