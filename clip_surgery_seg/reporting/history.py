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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from ..fileio import atomic_write_bytes, file_lock, is_utf8_name, write_error
from ..errors import HistoryError, OutputError
from ..named import is_number
from ..results import LEGACY_METHOD, SCHEMA, method_name, postprocess_name

logger = logging.getLogger("clip_surgery_seg")

DEFAULT_HISTORY = "results/history.csv"

HISTORY_COLUMNS = (
    "time", "dataset", "method", "protocol", "postprocess", "mIoU", "aAcc", "mAcc", "num_images", "expected_images", "wall_s",
    "model", "pretrained", "weights_sha256", "seed", "config_file", "config_hash", "code_version",
    "git_commit", "git_dirty", "device", "per_class_iou",
    # the sections of the results file (JSON): rows of files written before them leave them empty
    "method_params", "protocol_settings", "templates", "precision", "model_config_sha256",
)
NUMERIC_COLUMNS = ("mIoU", "aAcc", "mAcc", "num_images", "expected_images", "wall_s", "seed")

PathLike = Union[str, Path]


# --- writing ------------------------------------------------------------------------------------

def refusal_reason(results: Mapping[str, Any], any_run: bool = False) -> Optional[str]:
    """Why a results dict must not enter the history, or None when it may.

    The history tracks the real benchmark: a run is recorded when it completed, skipped no file, and
    -- unless ``any_run`` -- measured the split's published image count with real (not random)
    weights. Partial and ``--limit`` runs are never recorded.
    """
    if results.get("schema") != SCHEMA:
        raise HistoryError(f"not a clip-surgery-seg results dict (schema {SCHEMA})")
    dataset = results.get("dataset") or {}
    if not results.get("complete"):
        return "the run did not complete"
    if results.get("partial"):
        return f"the run is partial ({len(results.get('skipped') or [])} files skipped)"
    if dataset.get("limit") is not None:
        return f"it is a --limit {dataset['limit']} smoke run"
    if any_run:
        return None
    if (results.get("model") or {}).get("pretrained") is None:
        return "it ran with random weights (--pretrained none); pass --record-any-run to record it anyway"
    expected, found = dataset.get("expected_images"), dataset.get("num_images")
    if not expected or found != expected:
        return (f"it covers {found} images, not the split's published {expected or 'unknown'}; pass "
                "--record-any-run to record it anyway")
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
    method = results.get("method") or {}
    text = results.get("text") or {}
    return {
        "time": results.get("created"),
        "dataset": dataset["name"],
        "method": method_name(results),
        "protocol": protocol.get("name"),
        "postprocess": postprocess_name(results),
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
        "method_params": _json({k: v for k, v in method.items() if k != "name"}),
        "protocol_settings": _json({k: v for k, v in protocol.items() if k != "name"}),
        "templates": _json(text.get("templates")),
        "precision": model.get("precision"),
        "model_config_sha256": model.get("config_sha256"),
    }


def _json(value: Any) -> Optional[str]:
    return None if value is None else json.dumps(value, separators=(",", ":"), sort_keys=True)


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


def append_rows(path: PathLike, rows: Sequence[Mapping[str, Any]]) -> None:
    """Append history rows atomically, under the history's lock."""
    path = Path(path)
    if not rows:
        return
    try:
        _append_locked(path, rows)
    except OutputError:
        raise
    except OSError as err:  # the lock file or the folder: as unwritable as the history itself
        raise write_error(path, err) from err


def _append_locked(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    with file_lock(path.with_name(path.name + ".lock")):
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
    text = old.decode("utf-8", "surrogateescape")  # damaged bytes are kept as they are (reading reports them)
    existing = list(csv.DictReader(io.StringIO(text)))
    old_columns = next(csv.reader(io.StringIO(text)), [])
    if not set(HISTORY_COLUMNS) & set(old_columns) or "dataset" not in old_columns:
        raise HistoryError(f"{path} is not a clip-surgery-seg history file (header: {','.join(old_columns)[:80]})")
    columns = list(HISTORY_COLUMNS) + [c for c in old_columns if c not in HISTORY_COLUMNS]
    return _csv_text(existing + list(rows), columns, header=True).encode("utf-8", "surrogateescape")


def append_history(path: PathLike, results: Mapping[str, Any], any_run: bool = False) -> bool:
    """Record one evaluation in the history; False (and a logged reason) when refused
    (see :func:`refusal_reason`)."""
    reason = refusal_reason(results, any_run)
    name = (results.get("dataset") or {}).get("name", "?")
    if reason is not None:
        logger.warning("not recorded in the history %s: %s", path, reason)
        return False
    append_rows(path, [history_row(results)])
    logger.info("%s: recorded in the history %s", name, path)
    return True


# --- reading ------------------------------------------------------------------------------------

def read_history(path: PathLike):
    """The history's sound rows as a pandas DataFrame, oldest first; ``time`` as UTC timestamps.

    A damaged row -- cut short or with extra fields, an unparseable time or number, no dataset or
    protocol, per-class IoU that is not a JSON object of numbers, bytes that are not UTF-8 -- is left
    out with a warning naming the file and line, so it can never become a baseline. The frame's
    ``attrs["damaged"]`` lists them as ``(line, reason)``.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise HistoryError(f"history file {path} does not exist")
    try:
        # undecodable bytes stay visible (as surrogates) so that only their row is refused
        text = path.read_bytes().decode("utf-8", "surrogateescape")
    except OSError as err:
        raise HistoryError(f"history file {path} cannot be read ({err.strerror or err})") from None
    # one record per line (the history never holds a line break inside a field): a row cut inside a
    # quoted field must not swallow the rows after it
    lines = text.lstrip("\ufeff").split("\n")
    header = _fields(lines[0]) if lines else None
    if not header or header == [""]:
        raise HistoryError(f"history file {path} is empty; delete it (the next recorded run writes a new one) "
                           "or point at another file")
    missing = [c for c in ("time", "dataset", "protocol", "mIoU") if c not in header]
    if missing:
        raise HistoryError(f"{path} is not a clip-surgery-seg history file (no {', '.join(missing)} column)")
    rows, damaged = [], []
    for number, text_line in enumerate(lines[1:], start=2):
        if not text_line.strip():
            continue
        fields = _fields(text_line)
        reason = "not a CSV row" if fields is None else _damage(fields, header)
        if reason is None:
            rows.append(fields)
        else:
            damaged.append((number, reason))
    for line, reason in damaged:
        logger.warning("%s line %d: damaged row (%s); it is ignored (never a baseline): repair or delete "
                       "the line", path, line, reason)
    frame = pd.DataFrame(rows, columns=header, dtype="str")
    for column in HISTORY_COLUMNS:
        if column not in frame.columns:  # a history written by another version
            frame[column] = pd.Series([""] * len(frame), dtype="str")
    frame["time"] = pd.to_datetime(frame["time"], utc=True, format="ISO8601")
    # files from before the method column: their rows are CLIP Surgery's, without post-processing
    frame["method"] = frame["method"].replace("", LEGACY_METHOD)
    for column in NUMERIC_COLUMNS:
        frame[column] = pd.to_numeric(frame[column].replace("", None), errors="coerce")
    frame = frame.sort_values("time", kind="stable").reset_index(drop=True)
    frame.attrs["damaged"] = damaged
    return frame


def _fields(line: str) -> Optional[List[str]]:
    """The fields of one CSV line, or None when it is not one (an unterminated quote, a NUL byte)."""
    try:
        rows = list(csv.reader([line.rstrip("\r")], strict=True))
    except csv.Error:
        return None
    return rows[0] if len(rows) == 1 else None


# Cells that may be empty in a sound row (older runs did not record them); mIoU may not.
_OPTIONAL_NUMBERS = tuple(c for c in NUMERIC_COLUMNS if c != "mIoU")


def _damage(fields: List[str], header: List[str]) -> Optional[str]:
    """Why one history row cannot be used, or None when it is sound."""
    import pandas as pd

    if len(fields) != len(header):
        return f"{len(fields)} of {len(header)} fields"
    row = dict(zip(header, fields))
    if not all(is_utf8_name(value) for value in fields):
        return "bytes that are not UTF-8 text"
    try:
        if pd.isna(pd.to_datetime(row["time"], utc=True, format="ISO8601")):
            raise ValueError
    except (ValueError, TypeError, OverflowError):
        return f"time {row['time']!r} is not an ISO 8601 time"
    for column in ("dataset", "protocol"):
        if not row[column].strip():
            return f"no {column}"
    for column in NUMERIC_COLUMNS:
        value = row.get(column)
        if value is None or (value == "" and column in _OPTIONAL_NUMBERS):
            continue
        try:
            float(value)
        except ValueError:
            return f"{column} {value!r} is not a number"
    text = row.get("per_class_iou") or ""
    if text:
        try:
            _parse_per_class(text)
        except ValueError as err:
            return f"per_class_iou is not a JSON object of numbers ({_short(err)})"
    text = row.get("protocol_settings") or ""
    if text:
        try:
            _parse_protocol_settings(text)
        except ValueError as err:
            return f"protocol_settings is not a JSON object ({_short(err)})"
    return None


def _short(err: BaseException, limit: int = 80) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _parse_per_class(text: str) -> Dict[str, float]:
    """``{class: IoU}`` from its JSON text (null is NaN); ValueError unless it is an object of numbers."""
    value = json.loads(text)  # json.JSONDecodeError is a ValueError
    if not isinstance(value, dict):
        raise ValueError(f"a JSON {type(value).__name__}, not an object")
    for name, iou in value.items():
        if iou is not None and not is_number(iou):
            raise ValueError(f"class {name!r} has {iou!r}")
    return {k: (math.nan if v is None else float(v)) for k, v in value.items()}


def _parse_protocol_settings(text: str) -> Dict[str, Any]:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError(f"a JSON {type(value).__name__}, not an object")
    overridden = value.get("overridden")
    if overridden is not None and (not isinstance(overridden, list) or not all(isinstance(v, str) for v in overridden)):
        raise ValueError(f"overridden is {overridden!r}, not a list of setting names")
    return value


def protocol_settings(row: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
    """The protocol settings of a history row (``{setting: value, "overridden": [names] or null}``),
    or None for a row written before the column existed (unknown, not "none overridden")."""
    text = row.get("protocol_settings")
    if not isinstance(text, str) or not text:
        return None
    try:
        return _parse_protocol_settings(text)
    except ValueError as err:
        raise HistoryError(f"a history row of {row.get('dataset')} has damaged protocol_settings "
                           f"({_short(err)})") from None


def per_class_iou(row: Mapping[str, Any]) -> Dict[str, float]:
    """The per-class IoU of a history row (NaN where undefined)."""
    text = row.get("per_class_iou")
    if not isinstance(text, str) or not text:
        return {}
    try:
        return _parse_per_class(text)
    except ValueError as err:
        raise HistoryError(f"a history row of {row.get('dataset')} has damaged per-class IoU ({_short(err)})") from None


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
    return pick_rows(filter_rows(frame, selection, exclude), selection.ref)


def filter_rows(frame, selection: HistorySelection, exclude: Sequence[Mapping[str, Any]] = ()):
    """The rows of the selection's datasets and filters, without the ``exclude`` rows (see
    :func:`select_rows`); its reference is not applied."""
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
    return rows


def pick_rows(rows, ref: str = "latest"):
    """One row per dataset and method of ``rows``: the one ``ref`` names (latest, -N or a commit prefix)."""
    chosen = []
    for _, group in rows.groupby(["dataset", "method"], sort=False):
        group = group.sort_values("time", kind="stable")
        if ref == "latest":
            chosen.append(group.iloc[-1])
        elif ref.startswith("-"):
            back = -int(ref)
            if back <= len(group):
                chosen.append(group.iloc[-back])
        else:
            matching = group[group["git_commit"].astype("str").str.lower().str.startswith(ref.lower())]
            if len(matching):
                chosen.append(matching.iloc[-1])
    return chosen


def _as_timestamp(value: Any):
    import pandas as pd

    return pd.to_datetime(value, utc=True, errors="coerce")


__all__ = ["DEFAULT_HISTORY", "HISTORY_COLUMNS", "LEGACY_METHOD", "HistoryError", "HistorySelection", "append_history",
           "append_rows", "filter_rows", "history_row", "looks_like_selection", "parse_selection",
           "per_class_iou", "pick_rows", "protocol_settings", "read_history", "refusal_reason", "select_rows"]
