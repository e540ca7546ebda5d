"""Reproduce the paper's table: evaluate every dataset under one protocol into one run folder.

Run folder (default ``work_dirs/reproduce/<UTC time>_<protocol>/``)::

    <dataset>/metrics.json   each dataset that ran (its work dir: progress, metrics, logs)
    summary.json             which datasets ran, were missing data (with the reason) or failed
    table.md, table.csv      the paper's table from this run (``tools/report.py`` rebuilds it)
    table.png                ours vs paper, per dataset
    report.html              links each dataset's report (<dataset>/report.html, written with it)

A dataset whose data is missing or unusable (``DataLayoutError``) is reported with the reason and
skipped; the others still run. Each complete, full result is also recorded in the history
(``results/history.csv`` unless told otherwise).
"""
from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional

from ..datasets.catalog import DATASETS, paper_rank
from ..engine.config import available_protocols, suggest
from ..engine.results import RESULTS_FILE, utc_now
from ..engine.runner import EvalOptions, EvaluationInterrupted, evaluate
from ..errors import ConfigError, DataLayoutError, UserError
from ..fileio import atomic_write_json, atomic_write_text
from .history import DEFAULT_HISTORY, append_history

logger = logging.getLogger("clip_surgery_seg")

SUMMARY_FILE = "summary.json"
DEFAULT_PROTOCOL = "sclip"
RAN, MISSING, FAILED = "ran", "missing_data", "failed"


@dataclass
class ReproduceOptions:
    """What ``tools/reproduce.py`` takes: the datasets, the protocol, where results go, and the
    evaluation options every dataset shares (``evaluation.config`` is set per dataset)."""

    evaluation: EvalOptions = field(default_factory=lambda: EvalOptions(config=""))
    datasets: List[str] = field(default_factory=lambda: list(DATASETS))
    protocol: str = DEFAULT_PROTOCOL
    out: Optional[str] = None
    history: Optional[str] = DEFAULT_HISTORY  # None: do not record


def check_protocol(protocol: str) -> str:
    protocols = available_protocols()
    if protocol not in protocols:
        raise ConfigError(f"unknown protocol {protocol!r}{suggest(protocol, protocols)} "
                          f"(protocols: {', '.join(protocols)})")
    return protocol


def dataset_config(name: str) -> str:
    """The experiment config of a dataset: ``configs/<name>.py`` of the shipped configs."""
    return f"configs/{name}.py"


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
    raise ConfigError(f"cannot create a new run folder under {base}")


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def run_reproduction(opts: ReproduceOptions) -> Dict[str, Any]:
    """Evaluate each chosen dataset; returns the summary (also written to ``summary.json``)."""
    protocol = check_protocol(opts.protocol)
    run_dir = Path(opts.out) if opts.out else new_run_dir(protocol)
    run_dir.mkdir(parents=True, exist_ok=True)
    summary: Dict[str, Any] = {"run_dir": str(run_dir), "protocol": protocol, "started": utc_now(),
                               "finished": None, "history": opts.history, "datasets": {}}
    write_summary(run_dir, summary)
    for name in sorted(opts.datasets, key=lambda n: (paper_rank(n), n)):
        entry: Dict[str, Any] = {"config": dataset_config(name), "status": None, "reason": None}
        summary["datasets"][name] = entry
        try:
            _evaluate_one(opts, protocol, run_dir, name, entry)
        except EvaluationInterrupted as stop:
            entry.update(status=FAILED, reason=_one_line(stop))
            summary["interrupted"] = True
            write_summary(run_dir, summary)
            raise
        write_summary(run_dir, summary)
    summary["finished"] = utc_now()
    summary["status"] = overall_status(summary)
    write_summary(run_dir, summary)
    write_tables(run_dir)
    write_index(run_dir)
    return summary


def write_index(run_dir: Path) -> None:
    """``<run_dir>/report.html`` linking each result's report (``html_report.write_run_index``); a
    page that cannot be written is logged, the run's results and tables stand."""
    from .html_report import write_run_index

    try:
        logger.info("report: %s", write_run_index(run_dir))
    except Exception as err:  # noqa: BLE001 - the results are written; the page must not fail the run
        logger.warning("warning: %s/report.html not written (%s: %s)", run_dir, type(err).__name__,
                       _one_line(err), exc_info=not isinstance(err, (UserError, OSError)))


def _evaluate_one(opts: ReproduceOptions, protocol: str, run_dir: Path, name: str, entry: Dict[str, Any]) -> None:
    """One dataset: its status in ``entry``; a failure is recorded, not raised (the others still run)."""
    evaluation = dataclasses.replace(opts.evaluation, config=entry["config"], work_dir=str(run_dir / name),
                                     protocol=protocol, cfg_options=dict(opts.evaluation.cfg_options))
    try:
        results = evaluate(evaluation)
    except DataLayoutError as err:
        entry.update(status=MISSING, reason=_one_line(err))
        logger.info("%s: data missing, skipped: %s", name, entry["reason"])
    except EvaluationInterrupted:
        raise
    except Exception as err:  # noqa: BLE001 - one dataset's failure must not cost the others
        entry.update(status=FAILED, reason=f"{type(err).__name__}: {_one_line(err)}")
        logger.error("%s: failed: %s", name, entry["reason"], exc_info=not isinstance(err, UserError))
    else:
        entry.update(status=RAN, metrics=str(run_dir / name / RESULTS_FILE), mIoU=results["summary"]["mIoU"],
                     num_images=results["dataset"]["num_images"], wall_s=results["timing"]["wall_s"])
        entry["recorded"] = _record(opts.history, results, entry)


def _record(history: Optional[str], results: Dict[str, Any], entry: Dict[str, Any]) -> bool:
    """Append to the history; a history that cannot be written is noted, not fatal to the run."""
    if not history:
        return False
    try:
        return append_history(history, results)
    except (OSError, UserError) as err:
        entry["history_error"] = _one_line(err)
        logger.error("%s: not recorded in the history %s: %s", results["dataset"]["name"], history, _one_line(err))
        return False


def overall_status(summary: Dict[str, Any]) -> str:
    """``failed`` if a dataset failed, else ``missing_data`` if one had no data, else ``ran``."""
    statuses = [e["status"] for e in summary["datasets"].values()]
    for status in (FAILED, MISSING):
        if status in statuses:
            return status
    return RAN


def write_summary(run_dir: Path, summary: Dict[str, Any]) -> None:
    atomic_write_json(run_dir / SUMMARY_FILE, summary)


def write_tables(run_dir: Path) -> Optional[str]:
    """``table.md``, ``table.csv`` and ``table.png`` from the run's results; returns the Markdown."""
    from .paper import load_paper, paper_table, sources_note, to_csv, to_markdown
    from .plots import plot_paper_table
    from .records import load_path

    summary = json.loads((run_dir / SUMMARY_FILE).read_text())
    records = []
    for name, entry in summary["datasets"].items():
        if entry["status"] == RAN:
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
