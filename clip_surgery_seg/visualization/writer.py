"""A background PNG writer: encode and write images off the evaluation loop, bounded, never silent.

``--show-dir`` panels and ``--save-preds`` index maps are written by a few threads (PIL's PNG
encoder and file writes release the GIL, so they overlap the model). At most ``max_pending`` images
wait at a time: a slow disk slows the loop down instead of filling memory with queued images.
Every write is atomic (a reader never sees half a PNG). A failed write is kept and raised by
:meth:`PngWriter.close`: no file is dropped silently.
"""
from __future__ import annotations

import io
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, List, Optional, Set, Tuple, Union

import numpy as np
from PIL import Image

from ..errors import UserError
from ..fileio import atomic_write_bytes
from .drawing import Panel

#: zlib level 1: 2-3x faster than PIL's default 6 on panels, files ~15-20 % larger (see the benchmark).
DEFAULT_COMPRESS_LEVEL = 1
#: The writer threads' niceness: pictures are background work, the model comes first. Where cores
#: are idle (a GPU run) it changes nothing; on a busy CPU the threads take the cycles the model
#: leaves (benchmarks/README.md: a third of the slowdown of equal-priority threads on 2 cores).
BACKGROUND_NICENESS = 19


def lower_thread_priority() -> None:
    """Run the calling thread at :data:`BACKGROUND_NICENESS` (Linux sets it per thread); a system
    without per-thread priorities leaves the thread as it is."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICENESS)
    except (AttributeError, OSError):
        pass


class ImageWriteError(UserError, OSError):
    """A picture could not be written (folder not writable, disk full, ...)."""


def to_pil(pixels: Union[np.ndarray, Panel], palette: Optional[np.ndarray] = None) -> Image.Image:
    """``(H, W)`` uint8 -> 8-bit grey ("L"), or indexed ("P") with ``palette`` ``(K, 3)`` uint8 (the
    file keeps the class indices, viewers show the colours); ``(H, W, 3)`` uint8 -> RGB."""
    if isinstance(pixels, Panel):
        pixels = pixels.pixels
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8:
        raise TypeError(f"PNG pixels must be uint8, not {pixels.dtype} (cast label maps with .astype(np.uint8))")
    if pixels.ndim == 2:
        if palette is None:
            return Image.fromarray(pixels)
        image = Image.frombytes("P", (pixels.shape[1], pixels.shape[0]), np.ascontiguousarray(pixels).tobytes())
        image.putpalette(np.asarray(palette, dtype=np.uint8).reshape(-1).tolist())
        return image
    if pixels.ndim == 3 and pixels.shape[2] == 3:
        return Image.fromarray(pixels)
    raise ValueError(f"PNG pixels must be (H, W) or (H, W, 3), not {pixels.shape}")


def encode_png(pixels: Union[np.ndarray, Panel], palette: Optional[np.ndarray] = None,
               compress_level: int = DEFAULT_COMPRESS_LEVEL) -> bytes:
    """The PNG file of ``pixels`` (see :func:`to_pil`) as bytes."""
    buffer = io.BytesIO()
    to_pil(pixels, palette).save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()


def _checked_pixels(pixels: Union[np.ndarray, Panel], palette: Optional[np.ndarray]) -> np.ndarray:
    if isinstance(pixels, Panel):
        pixels = pixels.pixels
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3):
        to_pil(pixels, palette)  # raises the precise TypeError / ValueError
    return pixels


class PngWriter:
    """Encode and atomically write PNGs on ``workers`` background threads.

    >>> with PngWriter() as writer:                                     # doctest: +SKIP
    ...     for name, panel in panels:
    ...         writer.submit(out_dir / f"{name}.png", panel.pixels)
    # leaving the block waits for every file and raises ImageWriteError if any failed

    Args:
        workers: encoding threads (at the lowest CPU priority, :data:`BACKGROUND_NICENESS`).
        max_pending: images submitted but not yet written; :meth:`submit` blocks beyond that.
        compress_level: zlib level 0-9.
        fsync: make each file durable before the next step (slow; not needed for pictures).

    The submitted array is encoded later: do not change it after :meth:`submit`.
    """

    def __init__(self, workers: int = 2, max_pending: int = 16,
                 compress_level: int = DEFAULT_COMPRESS_LEVEL, fsync: bool = False) -> None:
        if workers < 1 or max_pending < 1:
            raise ValueError("workers and max_pending must be >= 1")
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="png-writer",
                                        initializer=lower_thread_priority)
        self._slots = threading.BoundedSemaphore(max_pending)
        self._lock = threading.Lock()
        self._compress_level = compress_level
        self._fsync = fsync
        self._paths: Set[Path] = set()
        self._failures: List[Tuple[Path, BaseException]] = []
        self._written = 0
        self._bytes = 0
        self._busy_s = 0.0
        self._closed = False

    # --- submitting ------------------------------------------------------------------------------

    def submit(self, path: Union[str, Path], pixels: Union[np.ndarray, Panel, Callable[[], Union[np.ndarray, Panel]]],
               palette: Optional[np.ndarray] = None, compress_level: Optional[int] = None) -> None:
        """Queue ``pixels`` (see :func:`to_pil`) to be written to ``path``; blocks while the queue is full.

        ``pixels`` may also be a function of no arguments that returns them: it is called on a
        writer thread, so that rendering (``render_panel``) leaves the caller's thread as well.
        ``compress_level`` overrides the writer's for this file (index maps are cheap to compress
        well: level 6 costs ~2 ms on a 512 x 683 map).

        Raises ValueError if this writer already has ``path`` (two images with one name would
        leave only one file); TypeError/ValueError at once for pixels that cannot be a PNG (for a
        function, at :meth:`close`).
        """
        if self._closed:
            raise RuntimeError("PngWriter.submit after close()")
        path = Path(path)
        if not callable(pixels):
            pixels = _checked_pixels(pixels, palette)
        key = path.absolute()
        with self._lock:
            if key in self._paths:
                raise ValueError(f"{path} was already written by this writer; two images map to one file name")
            self._paths.add(key)
        self._slots.acquire()
        try:
            self._pool.submit(self._write, path, pixels, palette,
                              self._compress_level if compress_level is None else compress_level)
        except BaseException:
            self._slots.release()
            raise

    def _write(self, path: Path, pixels, palette: Optional[np.ndarray], level: int) -> None:
        start = time.perf_counter()
        try:
            if callable(pixels):
                pixels = _checked_pixels(pixels(), palette)
            data = encode_png(pixels, palette, level)
            atomic_write_bytes(path, data, fsync=self._fsync)
        except BaseException as err:  # kept for close(): a worker thread has no one to raise to
            with self._lock:
                self._failures.append((path, err))
        else:
            with self._lock:
                self._written += 1
                self._bytes += len(data)
        finally:
            with self._lock:
                self._busy_s += time.perf_counter() - start
            self._slots.release()

    # --- finishing -------------------------------------------------------------------------------

    @property
    def written(self) -> int:
        """Files written so far."""
        with self._lock:
            return self._written

    @property
    def bytes_written(self) -> int:
        with self._lock:
            return self._bytes

    @property
    def busy_s(self) -> float:
        """Seconds the worker threads spent rendering (functions), encoding and writing, summed over threads."""
        with self._lock:
            return self._busy_s

    @property
    def failures(self) -> List[Tuple[Path, BaseException]]:
        """``(path, exception)`` of every write that failed so far."""
        with self._lock:
            return list(self._failures)

    def close(self, raise_errors: bool = True) -> None:
        """Wait for every queued image; then raise if any write failed.

        An ``OSError`` (folder not writable, disk full) becomes one :class:`ImageWriteError` naming
        the first failed file and how many failed; any other exception (a bug) is re-raised as it is.
        Closing twice is fine.
        """
        if not self._closed:
            self._closed = True
            self._pool.shutdown(wait=True)
        failures = self.failures
        if not failures or not raise_errors:
            return
        path, err = failures[0]
        if not isinstance(err, OSError):
            raise err
        reason = err.strerror or str(err)
        total = len(self._paths)
        raise ImageWriteError(f"could not write {path}: {reason} ({len(failures)} of {total} images failed); "
                              f"make {path.parent} writable or write the pictures to another folder") from err

    def __enter__(self) -> "PngWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        # on an exception from the with-block, wait for the files but let that exception through
        self.close(raise_errors=exc_type is None)
