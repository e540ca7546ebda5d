"""Per-image confusion counts persisted as the run goes, so an interrupted run resumes exactly.

One SQLite file per rank in ``<work_dir>/progress/`` (WAL mode: a killed process loses at most the
image in flight, never a committed one). Every file records the run's fingerprint; a resume with a
different fingerprint is refused.

A journal that cannot be written (a full disk, a file-size limit, no permission) stops the run with
one :class:`~clip_surgery_seg.errors.OutputError` line naming the file: SQLite rolls back the
failed image's row, so the committed ones stay, and ``--resume`` once there is space gives the
numbers of an uninterrupted run.
"""
from __future__ import annotations

import json
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np

from ..errors import OutputError, ResumeError
from ..fileio import space_note, write_error

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS images (
    key TEXT PRIMARY KEY, status TEXT NOT NULL, cells BLOB, counts BLOB, message TEXT);
"""



@dataclass
class Progress:
    """What the progress files of a work dir hold."""

    fingerprint: Optional[dict] = None
    finished: bool = False
    done: Dict[str, Tuple[bytes, bytes]] = field(default_factory=dict)  # key -> (cells, counts)
    skipped: Dict[str, str] = field(default_factory=dict)  # key -> message

    @property
    def count(self) -> int:
        return len(self.done) + len(self.skipped)


def encode_counts(matrix: np.ndarray) -> Tuple[bytes, bytes]:
    flat = np.ascontiguousarray(matrix, dtype=np.int64).ravel()
    cells = np.flatnonzero(flat)
    return cells.astype(np.int32).tobytes(), flat[cells].tobytes()


def decode_counts(cells: bytes, counts: bytes, shape: Tuple[int, int]) -> np.ndarray:
    """The (K, K + 1) matrix :func:`encode_counts` stored; ValueError when the blobs cannot be it."""
    size = shape[0] * shape[1]
    if not isinstance(cells, bytes) or not isinstance(counts, bytes) or len(cells) % 4 or len(counts) % 8:
        raise ValueError("count blobs of a wrong length")
    index, values = np.frombuffer(cells, dtype=np.int32), np.frombuffer(counts, dtype=np.int64)
    if len(index) != len(values) or (len(index) and (index.min() < 0 or index.max() >= size)) or (values < 0).any():
        raise ValueError(f"counts that do not fit a {shape[0]} x {shape[1]} confusion matrix")
    flat = np.zeros(size, dtype=np.int64)
    flat[index] = values
    return flat.reshape(shape)


def _files(directory: Path) -> List[Path]:
    return sorted(directory.glob("rank*.sqlite"))


def read_progress(directory: Path) -> Progress:
    """Union of all ranks' progress files (read-only)."""
    progress = Progress()
    for path in _files(directory):
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            rows = conn.execute("SELECT key, status, cells, counts, message FROM images").fetchall()
        except sqlite3.DatabaseError as err:
            raise ResumeError(f"progress file {path} is damaged ({err}); delete {directory} to start over") from err
        finally:
            conn.close()
        if "fingerprint" in meta:
            fingerprint = json.loads(meta["fingerprint"])
            if progress.fingerprint is not None and fingerprint != progress.fingerprint:
                raise ResumeError(f"progress files in {directory} come from different runs; delete the "
                                  "folder to start over")
            progress.fingerprint = fingerprint
        progress.finished = progress.finished or "finished" in meta
        for key, status, cells, counts, message in rows:
            if status == "done":
                progress.done[key] = (cells, counts)
            else:
                progress.skipped[key] = message
    return progress


def clear_progress(directory: Path) -> None:
    for path in directory.glob("rank*.sqlite*"):
        path.unlink()


def fingerprint_diff(old: dict, new: dict, prefix: str = "") -> List[str]:
    """Dotted paths where two fingerprints differ, with the old and new values."""
    diffs = []
    for key in sorted(set(old) | set(new)):
        path = f"{prefix}{key}"
        a, b = old.get(key, "<unset>"), new.get(key, "<unset>")
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += fingerprint_diff(a, b, path + ".")
        elif a != b:
            diffs.append(f"{path}: {a!r} -> {b!r}")
    return diffs


def journal_error(path: Path, err: Exception) -> OutputError:
    """The one line for a progress file that cannot be written. SQLite says ``disk I/O error`` or
    ``database or disk is full``, not which limit was hit: the file-size limit or the free space
    is added (:func:`~clip_surgery_seg.fileio.space_note`)."""
    note = space_note(path.parent) if isinstance(err, sqlite3.Error) else ""
    reason = getattr(err, "strerror", None) or str(err)
    return write_error(path, f"{reason}; {note}" if note else reason, what="the progress journal",
                       then="then continue the run with --resume")


@contextmanager
def _writing(path: Path) -> Iterator[None]:
    """SQLite's and the file system's write failures as :func:`journal_error`. Only
    ``OperationalError`` (I/O, full, read-only, locked, cannot open) is the disk's: any other
    ``sqlite3.Error`` would be a bug here and keeps its traceback."""
    try:
        yield
    except (sqlite3.OperationalError, OSError) as err:
        if isinstance(err, OutputError):
            raise
        raise journal_error(path, err) from err


class ProgressJournal:
    """This rank's progress file; one committed row per image."""

    def __init__(self, directory: Path, rank: int, fingerprint: dict) -> None:
        self.path = directory / f"rank{rank}.sqlite"
        self._conn: Optional[sqlite3.Connection] = None
        with _writing(self.path):
            directory.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.executescript(_SCHEMA)
                conn.execute("INSERT OR REPLACE INTO meta VALUES ('fingerprint', ?)",
                             (json.dumps(fingerprint, sort_keys=True),))
            except BaseException:
                conn.close()
                raise
            self._conn = conn

    def _write(self, sql: str, params: tuple) -> None:
        """One autocommitted statement: committed when it returns, rolled back when it raises."""
        with _writing(self.path):
            self._conn.execute(sql, params)

    def record(self, key: str, matrix: np.ndarray) -> None:
        cells, counts = encode_counts(matrix)
        self._write("INSERT OR REPLACE INTO images VALUES (?, 'done', ?, ?, NULL)", (key, cells, counts))

    def record_skipped(self, key: str, message: str) -> None:
        self._write("INSERT OR REPLACE INTO images VALUES (?, 'skipped', NULL, NULL, ?)", (key, message))

    def mark_finished(self, when: str) -> None:
        self._write("INSERT OR REPLACE INTO meta VALUES ('finished', ?)", (when,))

    def close(self) -> None:
        if self._conn is not None:
            with _writing(self.path):
                self._conn.close()
