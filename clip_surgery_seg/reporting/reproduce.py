"""Reproduce the paper's table: evaluate every dataset config of a protocol into one run folder.

Run folder (default ``work_dirs/reproduce/<UTC time>_<protocol>/``)::

    <dataset>/metrics.json   each dataset that ran (its work dir: progress, metrics)
    summary.json             which datasets ran, were missing data (with the reason) or failed
    table.md, table.csv      the paper's table from this run (``tools/report.py`` rebuilds it)
    table.png                ours vs paper, per dataset

A dataset whose data is missing or unusable (``DataLayoutError``) is reported with the reason and
skipped; the others still run. Each complete,
full result is also recorded in the history (``results/history.csv`` unless told otherwise).
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional

from ..fileio import atomic_write_json, atomic_write_text
from ..engine.history import DEFAULT_HISTORY, append_history
from ..engine.results import RESULTS_FILE
from .datasets import PAPER_ORDER, paper_rank
from ..errors import ReportingError
from .errors import EXIT_MISSING_DATA, EXIT_OK, EXIT_REGRESSION

logger = logging.getLogger("clip_surgery_seg")

CONFIGS_DIR = Path(__file__).resolve().parents[2] / "configs"
NOT_PROTOCOL_DIRS = ("_base_", "classnames")
SUMMARY_FILE = "summary.json"
_UNSET = object()

RAN, MISSING, FAILED = "ran", "missing_data", "failed"


def _declared_protocol(config: Path) -> Optional[str]:
    """The ``protocol = '...'`` a config file declares (read as text: no config machinery needed)."""
    match = re.search(r"^protocol\s*=\s*['\"]([\w.-]+)['\"]", config.read_text(), re.MULTILINE)
    return match.group(1) if match else None


def available_protocols(configs_dir: Path = CONFIGS_DIR) -> Dict[str, Path]:
    """Protocol name -> the folder holding its dataset configs (``configs/`` is the default one)."""
    protocols: Dict[str, Path] = {}
    candidates = [configs_dir] + sorted(d for d in configs_dir.iterdir()
                                        if d.is_dir() and d.name not in NOT_PROTOCOL_DIRS)
    for folder in candidates:
        files = [folder / f"{d}.py" for d in PAPER_ORDER if (folder / f"{d}.py").is_file()]
        names = {_declared_protocol(f) for f in files} - {None}
        if len(names) == 1:
            protocols.setdefault(names.pop(), folder)
        elif files and folder != configs_dir:
            protocols.setdefault(folder.name, folder)  # undeclared or mixed: named after its folder
    return protocols


def default_protocol(configs_dir: Path = CONFIGS_DIR) -> str:
    for name, folder in available_protocols(configs_dir).items():
        if folder == configs_dir:
            return name
    raise ReportingError(f"no dataset configs with a `protocol = ...` line in {configs_dir}")


def protocol_configs(protocol: str, configs_dir: Path = CONFIGS_DIR) -> Dict[str, Path]:
    """Dataset name -> config file of ``protocol``."""
    import difflib

    protocols = available_protocols(configs_dir)
    if protocol not in protocols:
        close = difflib.get_close_matches(protocol, list(protocols), n=1)
        raise ReportingError(f"unknown protocol {protocol!r}{f'; did you mean {close[0]}?' if close else ''} "
                             f"(protocols: {', '.join(sorted(protocols))})")
    folder = protocols[protocol]
    return {d: folder / f"{d}.py" for d in PAPER_ORDER if (folder / f"{d}.py").is_file()}


@dataclass
class ReproduceOptions:
    """What ``tools/reproduce.py`` takes (see its ``--help``)."""

    datasets: List[str] = field(default_factory=lambda: list(PAPER_ORDER))
    protocol: Optional[str] = None  # the default protocol when None
    data_root: Optional[str] = None
    out: Optional[str] = None
    device: Optional[str] = None
    model: Optional[str] = None
    pretrained: Any = _UNSET
    cfg_options: Dict[str, Any] = field(default_factory=dict)
    limit: Optional[int] = None
    history: Optional[str] = DEFAULT_HISTORY  # None: do not record
    progress: bool = True
    configs_dir: Path = CONFIGS_DIR


def new_run_dir(protocol: str, base: Path = Path("work_dirs/reproduce")) -> Path:
    """A fresh ``<UTC time>_<protocol>`` folder (suffixed when two runs start in the same second)."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    for attempt in range(1, 1000):
        path = base / (f"{stamp}_{protocol}" + (f"-{attempt}" if attempt > 1 else ""))
        try:
            path.mkdir(parents=True, exist_ok=False)
            return path
        except FileExistsError:
            continue
    raise ReportingError(f"cannot create a new run folder under {base}")


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def run_reproduction(opts: ReproduceOptions) -> Dict[str, Any]:
    """Evaluate each chosen dataset; returns the summary (also written to ``summary.json``)."""
    from ..datasets.layout import DataLayoutError
    from ..engine.runner import EvalOptions, EvaluationInterrupted, evaluate

    protocol = opts.protocol or default_protocol(opts.configs_dir)
    configs = protocol_configs(protocol, opts.configs_dir)
    chosen = sorted(opts.datasets, key=lambda n: (paper_rank(n), n))
    absent = [d for d in chosen if d not in configs]
    if absent:
        raise ReportingError(f"protocol {protocol} has no config for {', '.join(absent)}")
    if opts.out:
        run_dir = Path(opts.out)
        run_dir.mkdir(parents=True, exist_ok=True)
    else:
        run_dir = new_run_dir(protocol)
    summary: Dict[str, Any] = {
        "run_dir": str(run_dir), "protocol": protocol,
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "finished": None,
        "history": opts.history, "datasets": {}}
    write_summary(run_dir, summary)
    for name in chosen:
        entry: Dict[str, Any] = {"config": str(configs[name]), "status": None, "reason": None}
        summary["datasets"][name] = entry
        eval_opts = EvalOptions(config=str(configs[name]), data_root=opts.data_root, work_dir=str(run_dir / name),
                                model=opts.model, device=opts.device, cfg_options=dict(opts.cfg_options),
                                limit=opts.limit, progress=opts.progress)
        if opts.pretrained is not _UNSET:
            eval_opts.pretrained = opts.pretrained
        try:
            results = evaluate(eval_opts)
        except DataLayoutError as err:
            entry.update(status=MISSING, reason=_one_line(err))
            logger.info("%s: data missing, skipped: %s", name, entry["reason"])
        except EvaluationInterrupted as stop:
            entry.update(status=FAILED, reason=_one_line(stop))
            summary["interrupted"] = True
            write_summary(run_dir, summary)
            raise
        except Exception as err:  # noqa: BLE001 - one dataset's failure must not cost the others
            entry.update(status=FAILED, reason=f"{type(err).__name__}: {_one_line(err)}")
            logger.error("%s: failed: %s", name, entry["reason"], exc_info=logger.isEnabledFor(logging.DEBUG))
        else:
            entry.update(status=RAN, metrics=str(run_dir / name / RESULTS_FILE), mIoU=results["summary"]["mIoU"],
                         num_images=results["dataset"]["num_images"], wall_s=results["timing"]["wall_s"])
            entry["recorded"] = _record(opts.history, results, entry)
        write_summary(run_dir, summary)
    summary["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    summary["exit_code"] = exit_code(summary)
    write_summary(run_dir, summary)
    write_tables(run_dir)
    return summary


def _record(history: Optional[str], results: Dict[str, Any], entry: Dict[str, Any]) -> bool:
    """Append to the history; a history that cannot be written is noted, not fatal to the run."""
    if not history:
        return False
    try:
        return append_history(history, results)
    except (OSError, ValueError) as err:
        entry["history_error"] = _one_line(err)
        logger.error("%s: not recorded in the history %s: %s", results["dataset"]["name"], history, err)
        return False


def exit_code(summary: Dict[str, Any]) -> int:
    """0: all ran; 1: some failed; 3: some had missing or unusable data (and none failed)."""
    statuses = [e["status"] for e in summary["datasets"].values()]
    if FAILED in statuses:
        return EXIT_REGRESSION
    if MISSING in statuses:
        return EXIT_MISSING_DATA
    return EXIT_OK


def write_summary(run_dir: Path, summary: Dict[str, Any]) -> None:
    atomic_write_json(run_dir / SUMMARY_FILE, summary)


def write_tables(run_dir: Path) -> Optional[str]:
    """``table.md``, ``table.csv`` and ``table.png`` from the run's results; returns the Markdown."""
    import json

    from .paper import load_paper, paper_table, sources_note, to_csv, to_markdown
    from .plots import plot_paper_table
    from .records import load_path

    summary = json.loads((run_dir / SUMMARY_FILE).read_text())
    ran = [n for n, e in summary["datasets"].items() if e["status"] == RAN]
    records = []
    for name in ran:
        records += load_path(run_dir / name / RESULTS_FILE)
    paper = load_paper()
    table = paper_table(records, paper)
    skipped = [f"- {n}: {e['status'].replace('_', ' ')}: {e['reason']}" for n, e in summary["datasets"].items()
               if e["status"] != RAN]
    markdown = (f"CLIP Surgery, mIoU (%), protocol `{summary['protocol']}` (run `{run_dir}`)\n\n"
                + to_markdown(table) + "\n" + sources_note(paper) + "\n"
                + ("\nNot run:\n" + "\n".join(skipped) + "\n" if skipped else ""))
    atomic_write_text(run_dir / "table.md", markdown)
    atomic_write_text(run_dir / "table.csv", to_csv(table))
    if records:
        plot_paper_table(table, run_dir / "table.png")
    return markdown
