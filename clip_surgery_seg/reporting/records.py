"""One result, whichever way it was stored: a ``metrics.json``, a run folder, or a history row.

``load_records(spec)`` turns what a user types into records:

* a ``metrics.json`` file, or a work dir holding one (``tools/eval.py --work-dir``);
* a reproduce run folder: every ``<method>/<dataset>/metrics.json`` (or ``<dataset>/metrics.json``) in it;
* a history selection ``PATH.csv[:FILTER,...][@REF]`` (see ``clip_surgery_seg.reporting.history``).

Each record has a :class:`Kind`: what a number is a number *of* (dataset, method, protocol and its
overridden settings, post-processing, model, model config content, weights). Two results are
compared, or a published number counts as "same settings", only when their kinds agree. A part
that a record does not hold (a history row or a results file written before it was recorded) is
*unknown*, and an unknown part agrees with anything: older files keep working, and only what both
sides recorded can make them differ.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from .history import (LEGACY_METHOD, HistoryError, HistorySelection, filter_rows, history_row,
                      looks_like_selection, parse_selection, per_class_iou, pick_rows, protocol_settings,
                      read_history, select_rows)
from ..results import RESULTS_FILE, ResultsFileError, load_results
from ..errors import ReportingError
from ..named import open_clip_spelling

#: sha256 of OpenAI's released CLIP files (the hash is in their download URLs, and OpenAI's loader
#: checks it): such a file holds the weights the tag ``openai`` downloads, so it is the same weights
OPENAI_FILES = {
    "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af": "ViT-B-32",
    "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f": "ViT-B-16",
    "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836": "ViT-L-14",
}
RANDOM, TAG, FILE = "random", "tag", "file"


def canonical_model(name: str) -> str:
    """One spelling per model: open_clip's (``ViT-B/16`` is ``ViT-B-16``, ``ViT-L/14@336px`` is
    ``ViT-L-14-336``: :func:`~clip_surgery_seg.named.open_clip_spelling`); a model-config file by
    its file name (its content is compared by sha256)."""
    name = str(name)
    if name.endswith(".json"):
        return Path(name).name
    return open_clip_spelling(name)


def settings_text(overridden: Sequence[Tuple[str, str]], sep: str = ", ") -> str:
    """``short_side=448, stride=100``: overridden protocol settings (``((setting, value), ...)``)."""
    return sep.join(f"{k}={v}" for k, v in overridden)


def protocol_label(protocol: str, overridden: Optional[Sequence[Tuple[str, str]]]) -> str:
    """``sclip``, or ``sclip (short_side=448 overridden)`` for a run not under the protocol's values."""
    if not overridden:
        return protocol
    return f"{protocol} ({settings_text(overridden)} overridden)"


#: the parts of a kind, in the order messages name them, and what messages call them
ASPECTS = {"dataset": "dataset", "method": "method", "protocol": "protocol",
           "overridden": "overridden protocol settings", "postprocess": "postprocess", "model": "model",
           "model_config": "model config", "weights": "weights"}


@dataclass(frozen=True)
class Difference:
    """One part in which two kinds differ: its name (a key of :data:`ASPECTS`) and the two values."""

    aspect: str
    mine: str
    other: str

    @property
    def name(self) -> str:
        return ASPECTS[self.aspect]


@dataclass(frozen=True)
class Kind:
    """What a result is a result of (see the module docstring). ``None`` is unknown: not recorded.

    Attributes:
        overridden: ``((setting, value as JSON), ...)`` sorted, the protocol settings that differ from
            the named protocol's values; ``()`` none.
        model: :func:`canonical_model`; None where the record names no model.
        model_config: sha256 of the model-config file's content; None for an open_clip name or not
            recorded.
        weights: ``("tag", "openai")``, ``("file", sha256)`` or ``("random", seed)`` (seed None:
            not recorded); None unknown. A file of OpenAI's released weights is the tag ``openai``.
    """

    dataset: str
    method: str
    protocol: str
    overridden: Optional[Tuple[Tuple[str, str], ...]]
    postprocess: Optional[str]
    model: Optional[str]
    model_config: Optional[str]
    weights: Optional[Tuple[str, Optional[str]]]

    def text(self, aspect: str) -> str:
        """One part as messages show it."""
        if aspect == "overridden":
            return "?" if self.overridden is None else settings_text(self.overridden) or "none"
        if aspect == "postprocess":
            return self.postprocess or "none"
        if aspect == "model_config":
            return self.model_config[:12] if self.model_config else "?"
        if aspect == "weights":
            return weights_text(self.weights)
        value = getattr(self, aspect)
        return "?" if value is None else str(value)

    def differences(self, other: "Kind") -> List[Difference]:
        """The parts that differ, where both kinds know them (an unknown part agrees with anything)."""
        found = [aspect for aspect in ("dataset", "method", "protocol")
                 if getattr(self, aspect) != getattr(other, aspect)]
        if self.overridden is not None and other.overridden is not None and self.overridden != other.overridden:
            found.append("overridden")
        if (self.postprocess or None) != (other.postprocess or None):
            found.append("postprocess")
        if self.model_config and other.model_config:  # both files' contents known: they decide
            if self.model_config != other.model_config:
                found.append("model_config" if self.model == other.model else "model")
        elif self.model is not None and other.model is not None and self.model != other.model:
            found.append("model")
        if self.weights is not None and other.weights is not None:
            (mine, mine_value), (theirs, their_value) = self.weights, other.weights
            if mine != theirs or (mine_value is not None and their_value is not None and mine_value != their_value):
                found.append("weights")
        return [Difference(a, self.text(a), other.text(a)) for a in found]

    @property
    def label(self) -> str:
        """``ade20k/naclip+pamr/sclip/ViT-B-16/openai``; overridden settings after the protocol
        (``sclip[short_side=448]``); unknown parts left out (or ``?`` for the model and weights)."""
        method = self.method + (f"+{self.postprocess}" if self.postprocess else "")
        protocol = self.protocol + (f"[{self.text('overridden')}]" if self.overridden else "")
        model = self.model or "?"
        if self.model_config:
            model += f"#{self.model_config[:8]}"
        return f"{self.dataset}/{method}/{protocol}/{model}/{weights_text(self.weights)}"


def weights_text(weights: Optional[Tuple[str, Optional[str]]]) -> str:
    """``openai``, ``file sha256 5806e77cd80f``, ``random (seed 0)``, ``?`` (unknown)."""
    if weights is None:
        return "?"
    what, value = weights
    if what == RANDOM:
        return "random" + (f" (seed {value})" if value is not None else "")
    if what == FILE:
        return f"file sha256 {value[:12]}" if value else "file"
    return str(value)


def describe_differences(differences: Sequence[Difference], mine: str = "NEW", other: str = "BASELINE") -> str:
    """``postprocess (NEW pamr, BASELINE none), weights (NEW openai, BASELINE random)``."""
    return ", ".join(f"{d.name} ({mine} {d.mine}, {other} {d.other})" for d in differences)


@dataclass
class ResultRecord:
    """What the report and the comparison need of one evaluation of one dataset."""

    dataset: str
    protocol: str
    mIoU: float
    aAcc: float
    mAcc: float
    per_class: Dict[str, float]
    model: str
    pretrained: Optional[str]
    weights_sha256: Optional[str] = None
    created: Optional[str] = None
    code_version: Optional[str] = None
    config_hash: Optional[str] = None
    num_images: Optional[int] = None
    expected_images: Optional[int] = None
    limit: Optional[int] = None
    skipped: int = 0
    wall_s: Optional[float] = None
    source: str = ""
    history_key: Dict[str, Any] = field(default_factory=dict)
    method: str = LEGACY_METHOD
    postprocess: Optional[str] = None  # the post-processing step's name, None for none
    # the protocol's settings (name aside) and the names of those overridden; None: not recorded
    # (a history row from before the protocol_settings column, a metrics.json of version 1)
    protocol_settings: Optional[Dict[str, Any]] = None
    overridden: Optional[Tuple[str, ...]] = None
    seed: Optional[int] = None  # of random weights
    model_config_sha256: Optional[str] = None  # a model-config file's content; None: a name, or not recorded

    @property
    def name(self) -> str:
        """What comparisons call this result: the dataset, with the method unless it is CLIP Surgery."""
        return self.dataset if self.method == LEGACY_METHOD else f"{self.dataset} ({self.method})"

    @property
    def model_label(self) -> str:
        """``ViT-B-16 / openai``; a model-config file by its file name; random weights as such."""
        name = Path(self.model).name if self.model.endswith(".json") else self.model
        weights = self.pretrained
        if weights and os.sep in weights:
            weights = Path(weights).name
        return f"{name} / {weights or 'random weights'}"

    @property
    def overridden_settings(self) -> Optional[Tuple[Tuple[str, str], ...]]:
        """``((setting, value as JSON), ...)`` of the overridden protocol settings; None: not recorded."""
        if self.overridden is None:
            return None
        settings = self.protocol_settings or {}
        return tuple(sorted((name, json.dumps(settings.get(name), sort_keys=True)) for name in self.overridden))

    @property
    def protocol_label(self) -> str:
        """``sclip``, or ``sclip (short_side=448 overridden)`` for a run not under the protocol's values."""
        return protocol_label(self.protocol, self.overridden_settings)

    @property
    def weights(self) -> Optional[Tuple[str, Optional[str]]]:
        """The weights' identity (:attr:`Kind.weights`); None when the record names no model."""
        if not self.model:
            return None
        if not self.pretrained:
            return (RANDOM, None if self.seed is None else str(self.seed))
        if self.weights_sha256:
            if OPENAI_FILES.get(self.weights_sha256) == canonical_model(self.model):
                return (TAG, "openai")
            return (FILE, self.weights_sha256)
        return (TAG, self.pretrained)

    @property
    def kind(self) -> Kind:
        """What this is a result of (see :class:`Kind`)."""
        return Kind(dataset=self.dataset, method=self.method, protocol=self.protocol,
                    overridden=self.overridden_settings, postprocess=self.postprocess or None,
                    model=canonical_model(self.model) if self.model else None,
                    model_config=self.model_config_sha256 or None, weights=self.weights)

    @property
    def date(self) -> str:
        return (self.created or "")[:10]

    def comparability_notes(self) -> List[str]:
        """Why this number is not comparable to a published one over the full split, if it is not."""
        notes = []
        if self.limit is not None:
            notes.append(f"--limit {self.limit}")
        if self.skipped:
            notes.append(f"partial: {self.skipped} files skipped")
        if self.expected_images and self.num_images is not None and self.num_images != self.expected_images:
            notes.append(f"{self.num_images} of {self.expected_images} images")
        return notes

    @classmethod
    def from_results(cls, results: Mapping[str, Any], source: str) -> "ResultRecord":
        row = history_row(results)
        summary, dataset = results["summary"], results["dataset"]
        protocol = dict(results.get("protocol") or {})
        overridden = protocol.pop("overridden", None)
        protocol.pop("name", None)
        return cls(dataset=dataset["name"], protocol=row["protocol"] or "custom", mIoU=_num(summary["mIoU"]),
                   aAcc=_num(summary.get("aAcc")), mAcc=_num(summary.get("mAcc")),
                   per_class={r["class"]: _num(r.get("IoU")) for r in results.get("per_class") or []},
                   model=str(row["model"]), pretrained=row["pretrained"], weights_sha256=row["weights_sha256"],
                   created=row["time"], code_version=row["code_version"], config_hash=row["config_hash"],
                   num_images=dataset.get("num_images"), expected_images=dataset.get("expected_images"),
                   limit=dataset.get("limit"), skipped=len(results.get("skipped") or []),
                   wall_s=row["wall_s"], source=source, method=row["method"], postprocess=row["postprocess"],
                   protocol_settings=protocol, overridden=None if overridden is None else tuple(overridden),
                   seed=row["seed"], model_config_sha256=row["model_config_sha256"],
                   history_key={"time": row["time"], "dataset": row["dataset"], "config_hash": row["config_hash"]})

    @classmethod
    def from_history_row(cls, row: Mapping[str, Any], source: str) -> "ResultRecord":
        time = row["time"]
        created = time.isoformat() if hasattr(time, "isoformat") and not _missing(time) else None
        settings = protocol_settings(row)  # None: a row from before the column
        overridden = None if settings is None else settings.pop("overridden", None)
        return cls(dataset=str(row["dataset"]), protocol=str(row["protocol"]), mIoU=_num(row["mIoU"]),
                   aAcc=_num(row.get("aAcc")), mAcc=_num(row.get("mAcc")), per_class=per_class_iou(row),
                   model=str(row.get("model") or ""), pretrained=_text(row.get("pretrained")),
                   weights_sha256=_text(row.get("weights_sha256")), created=created,
                   code_version=_text(row.get("code_version")), config_hash=_text(row.get("config_hash")),
                   num_images=_int(row.get("num_images")), expected_images=_int(row.get("expected_images")),
                   wall_s=_num(row.get("wall_s")), source=source,
                   method=_text(row.get("method")) or LEGACY_METHOD, postprocess=_text(row.get("postprocess")),
                   protocol_settings=settings, overridden=None if overridden is None else tuple(overridden),
                   seed=_int(row.get("seed")), model_config_sha256=_text(row.get("model_config_sha256")),
                   history_key={"time": created, "dataset": str(row["dataset"]),
                                "config_hash": _text(row.get("config_hash"))})

    @property
    def identity(self) -> tuple:
        """Same for a run's ``metrics.json`` and its history row: dataset, method, config hash, time."""
        return (self.dataset, self.method, self.config_hash, (self.created or "")[:19])


def _missing(value: Any) -> bool:
    try:
        import pandas as pd

        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _num(value: Any) -> float:
    if value is None or _missing(value):
        return math.nan
    return float(value)


def _int(value: Any) -> Optional[int]:
    return None if value is None or _missing(value) else int(value)


def _text(value: Any) -> Optional[str]:
    return None if value is None or _missing(value) or value == "" else str(value)


def _from_results_file(path: Path) -> ResultRecord:
    try:
        return ResultRecord.from_results(load_results(path), str(path))
    except ResultsFileError as err:
        raise ReportingError(str(err)) from None
    except (KeyError, TypeError) as err:
        raise ReportingError(f"{path} is a damaged results file (missing {err})") from None


def load_path(path: Path) -> List[ResultRecord]:
    """Records from a results file, a work dir, or a reproduce run folder."""
    if path.is_file():
        return [_from_results_file(path)]
    if path.is_dir():
        if (path / RESULTS_FILE).is_file():
            return [_from_results_file(path / RESULTS_FILE)]
        # a reproduce run: <method>/<dataset>/, or <backbone>/<method>/<dataset>/ with several backbones
        found = [p for depth in ("*", "*/*", "*/*/*") for p in sorted(path.glob(f"{depth}/{RESULTS_FILE}"))]
        if not found:
            raise ReportingError(f"{path} holds no {RESULTS_FILE} (nor */{RESULTS_FILE}, */*/{RESULTS_FILE}, "
                                 f"*/*/*/{RESULTS_FILE})")
        return [_from_results_file(p) for p in found]
    raise ReportingError(f"{path} does not exist")


#: history columns a selection may filter on, and the part of a kind each one fixes: a part the user
#: chose is not matched to NEW's (a baseline that then differs is refused, see compare.pair_records)
FILTER_ASPECTS = {"method": "method", "protocol": "protocol", "protocol_settings": "overridden",
                  "postprocess": "postprocess", "model": "model", "model_config_sha256": "model_config",
                  "pretrained": "weights", "weights_sha256": "weights", "seed": "weights"}


def load_selection(spec: str, like: Sequence[ResultRecord] = (), force: bool = False,
                   notes: Optional[List[str]] = None) -> List[ResultRecord]:
    """Records from a history selection, one per dataset and method.

    With ``like`` (the results being checked), it picks for each of their datasets (those the
    selection names, when it names any) the row its reference names (newest, ``-N``, commit) among
    the rows of the same kind (:class:`Kind`: dataset, method, protocol and overridden settings,
    post-processing, model, model config, weights; a part a filter names is the user's choice), and
    never one of them itself. A result with no such row is refused, naming what the nearest row
    differs in; with ``force`` it is left out (said in ``notes``) while others have a baseline.
    """
    try:
        selection = parse_selection(spec)
        frame = read_history(selection.path)
    except HistoryError as err:
        raise ReportingError(str(err)) from None
    exclude = [r.history_key for r in like if r.history_key]
    if not like:
        chosen = select_rows(frame, selection, exclude)
        if not chosen:
            raise ReportingError(f"no history row matches {selection.describe()}")
        return _selected(history_records(chosen), selection)
    chosen, problems, seen = [], [], set()
    for record in like:
        if selection.datasets and record.dataset not in selection.datasets:
            continue
        rows, problem = _like_rows(frame, selection, record, exclude)
        if problem:
            problems.append(problem)
        for row, found in rows:
            key = (str(row["time"]), row["dataset"], row["method"], row["config_hash"])
            if key not in seen:  # a row the user chose for several results (method=...) counts once
                seen.add(key)
                chosen.append(found)
    if problems and (not force or not chosen):
        raise ReportingError("; ".join(problems))
    if notes is not None:
        notes += [f"forced: left out: {problem}" for problem in problems]
    if not chosen:
        raise ReportingError(f"no history row matches {selection.describe()} for "
                             f"{', '.join(sorted({r.name for r in like}))} (other than NEW itself)")
    return _selected(chosen, selection)


def _like_rows(frame, selection: HistorySelection, record: ResultRecord,
               exclude: Sequence[Mapping[str, Any]]) -> Tuple[List[Tuple[Any, ResultRecord]], Optional[str]]:
    """The baseline row(s) of ``record`` (see :func:`load_selection`), each with its record, or why
    there is none."""
    narrowed = HistorySelection(selection.path, [record.dataset], dict(selection.filters), selection.ref)
    rows = filter_rows(frame, narrowed, exclude)
    if rows.empty:
        return [], f"no history row matches {narrowed.describe()} for {record.name} (other than NEW itself)"
    chosen_by_user = {FILTER_ASPECTS[key] for key in selection.filters if key in FILTER_ASPECTS}
    mine = record.kind
    records = history_records(row for _, row in rows.iterrows())
    kinds = [r.kind for r in records]
    differences = [[d for d in mine.differences(kind) if d.aspect not in chosen_by_user] for kind in kinds]
    like = rows[[not found for found in differences]]
    if like.empty:
        # the nearest: fewest differences, then the newest (rows are oldest first)
        nearest = min(range(len(rows)), key=lambda i: (len(differences[i]), -i))
        when = rows.iloc[nearest]["time"]
        return [], (f"no history row of {mine.label} in {selection.path} (other than NEW itself); the nearest "
                    f"({when.strftime('%Y-%m-%d') if hasattr(when, 'strftime') else when}, {kinds[nearest].label}) "
                    f"differs in {describe_differences(differences[nearest], 'NEW', 'nearest')}")
    picked = pick_rows(like, selection.ref)
    if not picked:
        return [], (f"no history row matches {narrowed.describe()} for {record.name} (other than NEW itself; "
                    f"{len(like)} of its kind, {mine.label})")
    by_label = dict(zip(rows.index, records))  # the frame's index labels are unique (read_history's)
    return [(row, by_label[row.name]) for row in picked], None


def history_records(rows: Iterable[Any]) -> List[ResultRecord]:
    """A record of each history row (``read_history``'s rows, as pandas Series), no source named."""
    return [ResultRecord.from_history_row(row, "") for row in rows]


def _selected(records: List[ResultRecord], selection: HistorySelection) -> List[ResultRecord]:
    """The records of a history selection, each naming it as its source."""
    for record in records:
        record.source = f"{selection.describe()} [{record.name}]"
    return records


def load_records(spec: str, like: Sequence[ResultRecord] = (), force: bool = False,
                 notes: Optional[List[str]] = None) -> List[ResultRecord]:
    """Records from anything a user may name (see the module docstring); ``like``, ``force`` and
    ``notes``: as for :func:`load_selection` (a history selection as a baseline)."""
    if looks_like_selection(spec):
        return load_selection(spec, like, force, notes)
    return load_path(Path(spec))


def load_many(specs: Sequence[str]) -> List[ResultRecord]:
    """Records of several specs; a result named twice (its file and its history row) counts once."""
    records: Dict[tuple, ResultRecord] = {}
    for spec in specs:
        for record in load_records(spec):
            records.setdefault(record.identity, record)
    return list(records.values())
