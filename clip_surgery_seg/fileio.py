"""Files that are never seen half-written, and locks that keep two writers apart.

Atomic writes: a reader sees the old file or the new one, never a half-written one. Locks: an
exclusive ``flock`` on a lock file beside what it protects (Linux and macOS; on a network file
system check that it supports ``flock``).
"""
from __future__ import annotations

import json
import os
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Iterator, Optional, Union

from .errors import ConfigError, OutputError


def _fsync_dir(directory: Path) -> None:
    with suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def temp_path_for(final: Path) -> Path:
    """A hidden name beside ``final`` (same filesystem, so the rename is atomic) that no dataset
    scan matches: it ends in ``.tmp``, not in an image or label suffix."""
    return final.with_name(f".{final.name}.{os.getpid()}.tmp")


@contextmanager
def atomic_path(final: Union[str, Path], fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``final``, on any error it is removed.

    A killed process leaves ``final`` as it was. ``fsync`` also makes the new file survive a power
    cut (worth it for results, not for thousands of extracted images).
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(final)
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, final)
    except BaseException:
        with suppress(FileNotFoundError):
            tmp.unlink()
        raise
    if fsync:
        _fsync_dir(final.parent)


def atomic_write_bytes(path: Union[str, Path], data: bytes, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` atomically; a write that fails (a full disk, no permission) is an
    :class:`OutputError` naming the file, and leaves the old file (or none) in place."""
    try:
        with atomic_path(path, fsync=fsync) as tmp:
            tmp.write_bytes(data)
    except OutputError:
        raise
    except OSError as err:
        raise write_error(path, err) from err


def write_error(path: Union[str, Path], err: Union[BaseException, str], what: str = "",
                then: str = "or write elsewhere") -> OutputError:
    """The one-line error for a file that cannot be written.

    ``err``: the failure (an ``OSError``'s ``strerror`` is used, else its text); ``what`` names the
    file's role (``"the progress journal"``); ``then``: what to do once space is freed.
    """
    folder = Path(path).parent
    reason = getattr(err, "strerror", None) or err
    return OutputError(f"cannot write {what + ' ' if what else ''}{printable(str(path))} ({reason}); free disk "
                       f"space or fix the permissions of {printable(str(folder))}, {then}")


def human_size(n: float) -> str:
    """A byte count for people: ``512 bytes``, ``60.0 KiB``, ``1.5 GiB``."""
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} bytes" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError  # pragma: no cover


def space_note(folder: Union[str, Path]) -> str:
    """Why writing in ``folder`` may fail, for an error whose own text does not say it (SQLite's
    ``disk I/O error``): the process's file-size limit (``ulimit -f``) when it has one, else the
    free space on the folder's disk. Empty when neither can be read."""
    import resource
    import shutil

    with suppress(OSError, ValueError):
        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if limit != resource.RLIM_INFINITY:
            return f"the file-size limit is {human_size(limit)}"
    with suppress(OSError):
        return f"{human_size(shutil.disk_usage(folder).free)} free on that disk"
    return ""


def atomic_write_text(path: Union[str, Path], text: str, fsync: bool = True) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), fsync=fsync)


def atomic_write_json(path: Union[str, Path], obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, allow_nan=True) + "\n")


def printable(text: str) -> str:
    """``text`` (a path or a message naming one) that can always be printed: bytes of a file name
    that are not UTF-8, which Python keeps as surrogate escapes, are shown as ``\\xNN``."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that no file name decodes to
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def is_utf8_name(name: str) -> bool:
    """Whether text decoded with ``surrogateescape`` (a name from ``os.listdir``/``os.walk``, a file
    read that way) was valid UTF-8."""
    return not any("\udc80" <= ch <= "\udcff" for ch in name)


def check_writable(folder: Union[str, Path], what: str) -> None:
    """Create ``folder`` if needed and check that a file can be written in it (before long work).

    ``what`` names the option in the message, e.g. ``--work-dir``."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = temp_path_for(folder / ".write-check")
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise ConfigError(f"{what} {folder} is not writable ({err.strerror or err}); choose another folder "
                          "or fix its permissions") from None


class LockHeld(Exception):
    """:func:`file_lock` with ``wait=False`` found the lock taken; ``holder`` is what its holder wrote."""

    def __init__(self, path: Path, holder: str) -> None:
        super().__init__(f"{path} is held by {holder or 'another process'}")
        self.path, self.holder = path, holder


@contextmanager
def file_lock(path: Union[str, Path], wait: bool = True, holder: Optional[str] = None) -> Iterator[Path]:
    """Hold an exclusive ``flock`` on the file ``path`` (created if needed) for the ``with`` block.

    ``wait=False`` raises :class:`LockHeld` at once when another process holds it; ``holder`` (who
    holds the lock: pid, command, time) is written into the file for that message. The lock goes
    with the process: a killed holder never leaves a stale lock.
    """
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            handle.seek(0)
            raise LockHeld(path, handle.read().strip()) from None
        try:
            if holder is not None:
                handle.seek(0)
                handle.truncate()
                handle.write(holder)
                handle.flush()
            yield path
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
