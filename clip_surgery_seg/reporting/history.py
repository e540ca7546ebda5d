"""The evaluation history: one CSV row per dataset per complete run, for regression tracking.

Format (``results/history.csv`` by default; see ``results/README.md``): a plain CSV with the header
``HISTORY_COLUMNS``. ``per_class_iou`` holds a JSON object ``{class: IoU}`` (``null`` where the IoU
is undefined), so that per-class comparisons work from the history alone. ``method`` is the
image-token method (rows of files written before that column existed are CLIP Surgery's, the only
method then), ``postprocess`` the post-processing step's name (empty: none).

Appending is safe with several evaluations finishing at once: each append takes an exclusive
``flock`` on ``<history>.lock``, reads the file, and atomically replaces it with the old content
plus the new rows (temporary file + fsync + rename). A crash leaves the old file or the new one,
and no writer can lose another's row. Readers need no lock: they always see a whole file.

Only complete, full runs are recorded: a partial run (``--skip-bad`` left files out) or a
``--limit`` smoke run is refused with a logged reason (``append_history`` returns False).

Selections (what ``tools/compare.py`` accepts besides results files)::

    PATH[:FILTER[,FILTER...]][@REF]

    FILTER  a dataset name (ade20k, coco_stuff171, cityscapes, pascal_context59) or COLUMN=VALUE
            (method=sclip, protocol=clearclip, model=ViT-B-16, pretrained=openai, config_hash=<prefix>, ...)
    REF     latest (default): the newest matching row, per dataset and method;
            -N: the N-th newest (-1 = latest, -2 = the one before);
            a git commit prefix (4+ hex digits): the newest row of that commit.

e.g. ``results/history.csv:ade20k@-2``, ``results/history.csv:protocol=clearclip@3f2a9c1``,
``results/history.csv:method=sclip``.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Union

from ..fileio import atomic_write_bytes
from ..engine.results import SCHEMA
from ..errors import HistoryError

logger = logging.getLogger("clip_surgery_seg")

DEFAULT_HISTORY = "results/history.csv"

HISTORY_COLUMNS = (
    "time", "dataset", "method", "protocol", "postprocess", "mIoU", "aAcc", "mAcc", "num_images", "expected_images", "wall_s",
    "model", "pretrained", "weights_sha256", "seed", "config_file", "config_hash", "code_version",
    "git_commit", "git_dirty", "device", "per_class_iou",
)
NUMERIC_COLUMNS = ("mIoU", "aAcc", "mAcc", "num_images", "expected_images", "wall_s", "seed")

PathLike = Union[str, Path]
# the method of results and history rows from before methods were recorded: the only one there was
LEGACY_METHOD = "clip_surgery"



# --- writing ------------------------------------------------------------------------------------

def refusal_reason(results: Mapping[str, Any]) -> Optional[str]:
    """Why a results dict must not enter the history, or None when it may."""
    if results.get("schema") != SCHEMA:
        raise HistoryError(f"not a clip-surgery-seg results dict (schema {SCHEMA})")
    if not results.get("complete"):
        return "the run did not complete"
    if results.get("partial"):
        return f"the run is partial ({len(results.get('skipped') or [])} files skipped)"
    limit = (results.get("dataset") or {}).get("limit")
    if limit is not None:
        return f"it is a --limit {limit} smoke run"
    return None


def history_row(results: Mapping[str, Any]) -> Dict[str, Any]:
    """The history row of one results dict (``metrics.json`` content)."""
    dataset, model, summary = results["dataset"], results["model"], results["summary"]
    code = results.get("code") or {}
    commit = code.get("git_commit")
    if commit:
        version = f"{str(commit)[:12]}{'+dirty' if code.get('git_dirty') else ''}"
    elif code.get("version"):
        version = f"v{code['version']}"
    else:
        version = None
    per_class = {r["class"]: _finite_or_none(r.get("IoU")) for r in results.get("per_class") or []}
    protocol = results.get("protocol") or {}
    return {
        "time": results.get("created"),
        "dataset": dataset["name"],
        "method": method_of(protocol),
        "protocol": protocol.get("name"),
        "postprocess": postprocess_of(protocol),
        "mIoU": summary.get("mIoU"),
        "aAcc": summary.get("aAcc"),
        "mAcc": summary.get("mAcc"),
        "num_images": dataset.get("num_images"),
        "expected_images": dataset.get("expected_images"),
        "wall_s": (results.get("timing") or {}).get("wall_s"),
        "model": model.get("name"),
        "pretrained": model.get("pretrained"),
        "weights_sha256": model.get("sha256"),
        "seed": model.get("seed"),
        "config_file": results.get("config_file"),
        "config_hash": results.get("config_hash"),
        "code_version": version,
        "git_commit": commit,
        "git_dirty": code.get("git_dirty"),
        "device": (results.get("environment") or {}).get("device"),
        "per_class_iou": json.dumps(per_class, separators=(",", ":")),
    }


def method_of(protocol: Mapping[str, Any]) -> str:
    """The method name of a results file's ``protocol`` section (CLIP Surgery for files from before)."""
    method = protocol.get("method")
    if isinstance(method, Mapping):
        method = method.get("type")
    return str(method) if method else LEGACY_METHOD


def postprocess_of(protocol: Mapping[str, Any]) -> Optional[str]:
    """The post-processing step's name of a results file's ``protocol`` section, or None."""
    step = protocol.get("postprocess")
    if isinstance(step, Mapping):
        step = step.get("type")
    return str(step) if step else None


def _finite_or_none(value: Any) -> Optional[float]:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def _csv_text(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], header: bool) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n", extrasaction="ignore")
    if header:
        writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
    return buffer.getvalue()


@contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``<path>.lock`` (other writers wait)."""
    try:
        import fcntl
    except ImportError as err:  # pragma: no cover - Windows
        raise HistoryError("appending to the history needs fcntl (Linux or macOS)") from err
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.with_name(path.name + ".lock")
    with open(lock_path, "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def append_rows(path: PathLike, rows: Sequence[Mapping[str, Any]]) -> None:
    """Append history rows atomically, under the history's lock."""
    path = Path(path)
    if not rows:
        return
    with _exclusive_lock(path):
        old = path.read_bytes() if path.exists() else b""
        first_line = old.split(b"\n", 1)[0].decode("utf-8", "replace").strip()
        if not old.strip():
            data = _csv_text(rows, HISTORY_COLUMNS, header=True).encode()
        elif first_line == ",".join(HISTORY_COLUMNS):
            data = old + (b"" if old.endswith(b"\n") else b"\n") + _csv_text(rows, HISTORY_COLUMNS, False).encode()
        else:
            data = _merge_other_header(path, old, rows)
        atomic_write_bytes(path, data)


def _merge_other_header(path: Path, old: bytes, rows: Sequence[Mapping[str, Any]]) -> bytes:
    """Rows onto a history written with other columns (an older or newer version): keep them all."""
    existing = list(csv.DictReader(io.StringIO(old.decode("utf-8"))))
    old_columns = next(csv.reader(io.StringIO(old.decode("utf-8"))), [])
    if not set(HISTORY_COLUMNS) & set(old_columns) or "dataset" not in old_columns:
        raise HistoryError(f"{path} is not a clip-surgery-seg history file (header: {','.join(old_columns)[:80]})")
    columns = list(HISTORY_COLUMNS) + [c for c in old_columns if c not in HISTORY_COLUMNS]
    return _csv_text(existing + list(rows), columns, header=True).encode()


def append_history(path: PathLike, results: Mapping[str, Any]) -> bool:
    """Record one complete evaluation in the history; False (and a logged reason) when refused."""
    reason = refusal_reason(results)
    name = (results.get("dataset") or {}).get("name", "?")
    if reason is not None:
        logger.warning("not recorded in the history %s: %s", path, reason)
        return False
    append_rows(path, [history_row(results)])
    logger.info("%s: recorded in the history %s", name, path)
    return True


# --- reading ------------------------------------------------------------------------------------

def read_history(path: PathLike):
    """The history as a pandas DataFrame, oldest first; ``time`` as UTC timestamps."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise HistoryError(f"history file {path} does not exist")
    text_columns = [c for c in HISTORY_COLUMNS if c not in NUMERIC_COLUMNS]
    try:
        frame = pd.read_csv(path, dtype={c: "str" for c in text_columns}, keep_default_na=False,
                            na_values={c: [""] for c in NUMERIC_COLUMNS})
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as err:
        raise HistoryError(f"history file {path} cannot be read ({err})") from err
    missing = [c for c in ("time", "dataset", "protocol", "mIoU") if c not in frame.columns]
    if missing:
        raise HistoryError(f"{path} is not a clip-surgery-seg history file (no {', '.join(missing)} column)")
    # files from before the method column: their rows are CLIP Surgery's, without post-processing
    frame["method"] = frame["method"].replace("", LEGACY_METHOD) if "method" in frame.columns else LEGACY_METHOD
    if "postprocess" not in frame.columns:
        frame["postprocess"] = ""
    frame["time"] = pd.to_datetime(frame["time"], utc=True, errors="coerce", format="ISO8601")
    for column in NUMERIC_COLUMNS:
        if column in frame.columns:
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
    frame = frame.sort_values("time", kind="stable").reset_index(drop=True)
    return frame


def per_class_iou(row: Mapping[str, Any]) -> Dict[str, float]:
    """The per-class IoU of a history row (NaN where undefined)."""
    text = row.get("per_class_iou")
    if not isinstance(text, str) or not text:
        return {}
    return {k: (math.nan if v is None else float(v)) for k, v in json.loads(text).items()}


# --- selections ---------------------------------------------------------------------------------

_REF = re.compile(r"^(latest|-\d+|[0-9a-fA-F]{4,40})$")


@dataclass
class HistorySelection:
    """A parsed ``PATH[:FILTER,...][@REF]``."""

    path: Path
    datasets: List[str] = field(default_factory=list)
    filters: Dict[str, str] = field(default_factory=dict)
    ref: str = "latest"

    def describe(self) -> str:
        parts = self.datasets + [f"{k}={v}" for k, v in self.filters.items()]
        return f"{self.path}{':' + ','.join(parts) if parts else ''}@{self.ref}"


def looks_like_selection(spec: str) -> bool:
    """Whether ``spec`` names a history selection rather than a results file or folder."""
    if os.path.exists(spec) and not spec.endswith(".csv"):
        return False
    return bool(re.match(r"^.+\.csv(:[^@]*)?(@[^@]+)?$", spec))


def parse_selection(spec: str) -> HistorySelection:
    """Parse ``PATH[:FILTER[,FILTER...]][@REF]`` (see the module docstring)."""
    match = re.match(r"^(?P<path>.+?\.csv)(?::(?P<filters>[^@]*))?(?:@(?P<ref>[^@]+))?$", spec)
    if not match:
        raise HistoryError(f"{spec!r} is not a history selection (PATH.csv[:DATASET,KEY=VALUE][@latest|@-N|@COMMIT])")
    ref = match.group("ref") or "latest"
    if not _REF.match(ref):
        raise HistoryError(f"history reference @{ref} must be latest, -N (e.g. -2) or a git commit prefix "
                           "of 4+ hex digits")
    if ref.startswith("-") and int(ref) == 0:
        raise HistoryError("history reference @-0 does not exist; @-1 is the latest row")
    selection = HistorySelection(Path(match.group("path")), ref=ref)
    for part in filter(None, (p.strip() for p in (match.group("filters") or "").split(","))):
        if "=" in part:
            key, value = (s.strip() for s in part.split("=", 1))
            if key not in HISTORY_COLUMNS:
                raise HistoryError(f"unknown history column {key!r} in {spec!r}; columns: "
                                   f"{', '.join(c for c in HISTORY_COLUMNS if c != 'per_class_iou')}")
            selection.filters[key] = value
        else:
            selection.datasets.append(part)
    return selection


def select_rows(frame, selection: HistorySelection, exclude: Sequence[Mapping[str, Any]] = ()):
    """The selected rows, one per dataset and method (the frame must come from ``read_history``).

    ``exclude`` holds rows to skip (matched on time, dataset and config hash): a comparison never
    picks the run it is checking as its own baseline.
    """
    rows = frame
    if selection.datasets:
        rows = rows[rows["dataset"].isin(selection.datasets)]
    for key, value in selection.filters.items():
        column = rows[key].astype("str")
        # hashes and commits are matched on their prefix, everything else exactly
        rows = rows[column.str.startswith(value)] if key in ("config_hash", "weights_sha256", "git_commit") \
            else rows[column == value]
    for other in exclude:
        same = ((rows["dataset"] == other.get("dataset")) & (rows["config_hash"] == other.get("config_hash"))
                & (rows["time"] == _as_timestamp(other.get("time"))))
        rows = rows[~same]
    chosen = []
    for _, group in rows.groupby(["dataset", "method"], sort=False):
        group = group.sort_values("time", kind="stable")
        if selection.ref == "latest":
            chosen.append(group.iloc[-1])
        elif selection.ref.startswith("-"):
            back = -int(selection.ref)
            if back <= len(group):
                chosen.append(group.iloc[-back])
        else:
            matching = group[group["git_commit"].astype("str").str.lower().str.startswith(selection.ref.lower())]
            if len(matching):
                chosen.append(matching.iloc[-1])
    return chosen


def _as_timestamp(value: Any):
    import pandas as pd

    return pd.to_datetime(value, utc=True, errors="coerce")


__all__ = ["DEFAULT_HISTORY", "HISTORY_COLUMNS", "LEGACY_METHOD", "HistoryError", "HistorySelection", "append_history",
           "append_rows", "history_row", "method_of", "postprocess_of", "looks_like_selection", "parse_selection", "per_class_iou",
           "read_history", "refusal_reason", "select_rows"]
