"""Text embeddings cached on disk, keyed by everything they depend on."""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import time
from pathlib import Path
from typing import Optional, Sequence, Union

import torch

from ..fileio import atomic_write_bytes
from ..models import SurgeryCLIP
from ..models.templates import resolve_templates

logger = logging.getLogger(__name__)
CACHE_FORMAT = 2  # 2: entries carry the sha256 of their embeddings


def embeddings_digest(embeddings: torch.Tensor) -> str:
    """sha256 of a tensor's dtype, shape and bytes (what a cache entry must give back exactly)."""
    tensor = embeddings.detach().cpu().contiguous()
    digest = hashlib.sha256(f"{tensor.dtype}:{tuple(tensor.shape)}:".encode())
    digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def default_cache_dir() -> Path:
    base = os.environ.get("CLIP_SURGERY_SEG_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "clip_surgery_seg")
    return Path(base) / "text_embeddings"


def cache_key(weights_key: str, templates: Sequence[str], rows: Sequence[str]) -> str:
    """sha256 of the weights identity, the template strings and the text rows, in order."""
    payload = json.dumps({"format": CACHE_FORMAT, "weights": weights_key, "templates": list(templates),
                          "rows": list(rows)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def cached_text_embeddings(model: SurgeryCLIP, rows: Sequence[str], templates: Union[str, Sequence[str]],
                           weights_key: str, cache_dir: Optional[Union[str, Path]] = None,
                           progress: bool = False) -> torch.Tensor:
    """``model.encode_text(rows, templates)`` (R, D), from the disk cache when it holds them.

    ``progress``: while encoding (not when read from the cache), a bar on stderr.

    ``weights_key`` must change whenever the text tower's weights may change (model, weights file
    hash or tag, QuickGELU). A cache entry is written atomically with the sha256 of its embeddings;
    on reading, an entry that cannot be read, is for other inputs, or whose embeddings no longer match
    their digest (bytes changed on disk) is recomputed with a warning naming the file.
    """
    templates = resolve_templates(templates)
    key = cache_key(weights_key, templates, rows)
    path = Path(cache_dir or default_cache_dir()) / f"{key[:40]}.pt"
    device = next(model.clip.parameters()).device
    if path.is_file():
        try:
            entry = torch.load(path, map_location="cpu", weights_only=True)
            embeddings = entry["embeddings"]
            if entry.get("key") != key or embeddings.shape != (len(rows), model.embed_dim):
                logger.warning("text-embedding cache entry %s holds other embeddings; recomputing", path)
            elif entry.get("sha256") != embeddings_digest(embeddings):
                logger.warning("text-embedding cache entry %s is damaged (its digest does not match); "
                               "recomputing", path)
            else:
                logger.info("text embeddings: %d rows x %d templates from cache %s", len(rows),
                            len(templates), path)
                return embeddings.to(device)
        except Exception as err:  # noqa: BLE001 - any damage means: recompute
            logger.warning("text-embedding cache entry %s is unreadable (%s); recomputing", path, err)
    start = time.perf_counter()
    embeddings = model.encode_text(rows, templates, progress=progress)
    logger.info("text embeddings: %d rows x %d templates encoded in %.1f s", len(rows), len(templates),
                time.perf_counter() - start)
    try:
        buffer = io.BytesIO()
        torch.save({"key": key, "embeddings": embeddings.cpu(), "sha256": embeddings_digest(embeddings),
                    "weights": weights_key,
                    "rows": list(rows), "templates": list(templates)}, buffer)
        atomic_write_bytes(path, buffer.getvalue())
    except OSError as err:
        logger.warning("could not write the text-embedding cache %s (%s); continuing without it", path, err)
    return embeddings
