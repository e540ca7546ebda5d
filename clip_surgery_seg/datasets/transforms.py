"""Strict image and label loading: a broken file is an error naming it, never a silent guess.

mmseg's ``LoadAnnotations`` casts any label map to uint8 (a 16-bit map wraps around silently) and
cv2 decodes a truncated JPEG into a partly grey image without an error; these transforms refuse both.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS
from PIL import Image
from ..errors import BadSampleError
from .encodings import encode_label



def read_image_rgb(path: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB, the pixels mmseg's ``LoadImageFromFile`` decodes (OpenCV), checked.

    The pixels are OpenCV's (``mmcv.imfrombytes``, as the peer harnesses read images), in RGB order:
    palette, grey and 16-bit images expanded as it does (16-bit keeps its high byte). One deliberate
    difference: an EXIF orientation tag is not applied (``color_ignore_orientation``), so pixels stay
    as stored, as the label maps are -- the peers' ``color`` rotates such a JPEG away from its label
    (a prediction scored against a rotated label, or for 90 degrees a shape mismatch that stops
    their evaluation). The file is also decoded by Pillow, strictly: a truncated file, 32-bit integer
    or float pixels (no 8-bit range to read them by) and images over Pillow's decompression-bomb
    limit are refused instead of being read partly. A format OpenCV cannot read is read by Pillow.
    """
    checked = _read_image_pil(path)
    import mmcv

    try:
        # BGR, as the peers decode: mmcv converts to RGB only for its plain "color" flag
        decoded = mmcv.imfrombytes(Path(path).read_bytes(), flag="color_ignore_orientation", backend="cv2")
    except (OSError, ValueError) as err:
        raise BadSampleError(f"{path}: unreadable or truncated image ({err}); re-extract or re-download it") from err
    if decoded is None or decoded.shape != checked.shape:
        return checked
    return np.ascontiguousarray(decoded[..., ::-1])


def _read_image_pil(path: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB decoded by Pillow, every failure a :class:`BadSampleError` naming the file."""
    try:
        with Image.open(path) as image:
            image.load()
            return _rgb_array(image, path)
    except FileNotFoundError:
        raise BadSampleError(f"{path}: image file is missing") from None
    except Image.DecompressionBombError as err:
        raise BadSampleError(_bomb_message(path, "image", err)) from None
    except (OSError, ValueError, SyntaxError) as err:
        raise BadSampleError(f"{path}: unreadable or truncated image ({err}); re-extract or "
                             "re-download it") from err


def _rgb_array(image: Image.Image, path: str) -> np.ndarray:
    if image.mode.startswith("I;16"):
        grey = (np.asarray(image).astype(np.uint16) >> 8).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=-1)
    if image.mode in ("I", "F"):
        kind = "integer" if image.mode == "I" else "float"
        raise BadSampleError(f"{path}: image mode {image.mode} (32-bit {kind} pixels) has no 8-bit range; "
                             "save it as an 8-bit RGB image")
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.array(image)  # a writable copy: torch refuses read-only arrays


def _bomb_message(path: str, what: str, err: Exception) -> str:
    """Pillow refuses to decode an image this large: a decompression bomb, or not a dataset file."""
    pixels = re.search(r"\((\d+) pixels\)", str(err))
    limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)
    return (f"{path}: {what} of {pixels.group(1) if pixels else 'more'} pixels is over Pillow's "
            f"decompression-bomb limit ({limit} pixels); no image of this dataset is that large: "
            "re-extract or re-download it")


def read_label(path: str) -> np.ndarray:
    """(H, W) uint8 label map from an 8-bit single-channel (L or P) PNG; P read as indices."""
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            if mode in ("L", "P"):
                return np.array(image)
    except FileNotFoundError:
        raise BadSampleError(f"{path}: label file is missing") from None
    except Image.DecompressionBombError as err:
        raise BadSampleError(_bomb_message(path, "label map", err)) from None
    except (OSError, ValueError, SyntaxError) as err:
        raise BadSampleError(f"{path}: unreadable or truncated label map ({err}); re-extract or "
                             "re-convert it") from err
    raise BadSampleError(f"{path}: label map has image mode {mode}, expected an 8-bit single-channel "
                         "PNG (mode L or P) of class indices; was the wrong file converted?")


@TRANSFORMS.register_module()
class LoadImageStrict(BaseTransform):
    """Load ``img_path`` as RGB uint8; sets ``img``, ``img_shape``, ``ori_shape``."""

    def transform(self, results: dict) -> dict:
        img = read_image_rgb(results["img_path"])
        results["img"] = img
        results["img_shape"] = results["ori_shape"] = img.shape[:2]
        return results


@TRANSFORMS.register_module()
class LoadLabelStrict(BaseTransform):
    """Load ``seg_map_path`` (8-bit only), apply the dataset's label encoding; sets ``gt_seg_map``.

    Args:
        reduce_zero_label: None takes the dataset's setting from ``results``.
    """

    def __init__(self, reduce_zero_label: Optional[bool] = None, ignore_index: int = 255) -> None:
        self.reduce_zero_label = reduce_zero_label
        self.ignore_index = ignore_index

    def transform(self, results: dict) -> dict:
        reduce = self.reduce_zero_label
        if reduce is None:
            reduce = bool(results.get("reduce_zero_label", False))
        label = encode_label(read_label(results["seg_map_path"]), reduce, self.ignore_index)
        results["gt_seg_map"] = label
        results.setdefault("seg_fields", []).append("gt_seg_map")
        return results


def validate_sample(img_path: str, seg_path: str, image_shape, label: np.ndarray, num_classes: int,
                    ignore_index: int = 255) -> None:
    """Raise BadSampleError if the label size differs from the image or holds a value outside
    ``[0, K) ∪ {ignore}`` after the dataset's encoding. ``label``: (H, W) uint8."""
    if tuple(label.shape[-2:]) != tuple(image_shape[:2]):
        raise BadSampleError(f"{seg_path}: label size {label.shape[-1]}x{label.shape[-2]} differs from "
                             f"its image {img_path} ({image_shape[1]}x{image_shape[0]}); re-extract the pair")
    counts = np.bincount(np.asarray(label, dtype=np.uint8).ravel(), minlength=256)
    counts[ignore_index] = 0
    bad = np.flatnonzero(counts[num_classes:])
    if bad.size:
        values = ", ".join(str(v + num_classes) for v in bad[:5])
        raise BadSampleError(f"{seg_path}: label values {values} are outside [0, {num_classes}) and not "
                             f"the ignore index {ignore_index} (after the dataset's encoding); is this the "
                             "converted label map of this dataset?")
