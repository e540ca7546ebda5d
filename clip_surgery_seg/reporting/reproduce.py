"""Reproduce the field's table: every chosen method on every chosen dataset, under one protocol.

Run folder (default ``work_dirs/reproduce/<UTC time>_<protocol>/``)::

    <method>/<dataset>/metrics.json   each evaluation that ran (its work dir: progress, metrics, logs,
                                      report.html)
    summary.json                      per dataset and method: ran, missing data (with the reason) or failed
    table.md, table.csv               the methods x datasets table, ours beside the published numbers
    table.png                         the same as bars (``tools/report.py`` rebuilds all three)
    report.html                       the same table, linking every evaluation's report

Each method's experiment is its own config, ``configs/<method>/<dataset>.py``. For each dataset the
CLIP is loaded once and shared by every method (a :class:`~clip_surgery_seg.models.SharedCLIP` passed
to each evaluation), and the text embeddings come from the cache after the first method of a
template set. A dataset whose data is missing or unusable (``DataLayoutError``) is reported once
with the reason and skipped; the others still run. Each complete, full result is also recorded in
the history (``results/history.csv`` unless told otherwise).
"""
from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional

from .. import resources
from ..datasets.catalog import DATASETS, paper_rank
from ..engine.config import available_protocols
from ..engine.results import RESULTS_FILE, utc_now
from ..engine.runner import EvalOptions, EvaluationInterrupted, evaluate
from ..errors import ConfigError, DataLayoutError, UserError, suggest
from ..fileio import atomic_write_json, atomic_write_text, check_writable
from ..models import METHODS, SharedCLIP
from .history import DEFAULT_HISTORY, append_history

logger = logging.getLogger("clip_surgery_seg")

SUMMARY_FILE = "summary.json"
DEFAULT_PROTOCOL = "sclip"
RAN, MISSING, FAILED = "ran", "missing_data", "failed"


@dataclass
class ReproduceOptions:
    """What ``tools/reproduce.py`` takes: the methods, the datasets, the protocol, where results go,
    and the evaluation options every run shares (``evaluation.config`` is set per run)."""

    evaluation: EvalOptions = field(default_factory=lambda: EvalOptions(config=""))
    datasets: List[str] = field(default_factory=lambda: list(DATASETS))
    methods: List[str] = field(default_factory=lambda: list(METHODS))
    protocol: str = DEFAULT_PROTOCOL
    out: Optional[str] = None
    history: Optional[str] = DEFAULT_HISTORY  # None: do not record
    record_any_run: bool = False  # also record random-weight or incomplete-split runs


def check_protocol(protocol: str) -> str:
    protocols = available_protocols()
    if protocol not in protocols:
        raise ConfigError(f"unknown protocol {protocol!r}{suggest(protocol, protocols)} "
                          f"(protocols: {', '.join(protocols)})")
    return protocol


def check_methods(methods: List[str]) -> List[str]:
    """Known method names, duplicates dropped, in the registry's order (the field's)."""
    for name in methods:
        if name not in METHODS:
            raise ConfigError(f"unknown method {name!r}{suggest(name, METHODS)} (methods: {', '.join(METHODS)})")
    return [name for name in METHODS if name in methods]


def method_config(method: str, dataset: str) -> str:
    """The experiment config of a method on a dataset: ``configs/<method>/<dataset>.py``."""
    return f"configs/{method}/{dataset}.py"


def check_configs(methods: List[str], datasets: List[str]) -> None:
    """Every (method, dataset) config exists, before anything runs."""
    missing = [method_config(m, d) for d in datasets for m in methods
               if not (resources.configs_dir() / m / f"{d}.py").is_file()]
    if missing:
        raise ConfigError(f"no config {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}: each method "
                          "needs configs/<method>/<dataset>.py (one line inheriting configs/<dataset>.py)")


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
        except OSError as err:
            raise ConfigError(f"cannot create a run folder under {base} ({err.strerror or err}); pass --out DIR "
                              "or fix its permissions") from None
    raise ConfigError(f"cannot create a new run folder under {base}")


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def run_reproduction(opts: ReproduceOptions) -> Dict[str, Any]:
    """Evaluate each chosen method on each chosen dataset; returns the summary (also ``summary.json``)."""
    protocol = check_protocol(opts.protocol)
    methods = check_methods(opts.methods)
    datasets = sorted(opts.datasets, key=lambda n: (paper_rank(n), n))
    check_configs(methods, datasets)
    if opts.history:  # before the run, not after it
        check_writable(Path(opts.history).parent, "--history folder")
    run_dir = Path(opts.out) if opts.out else new_run_dir(protocol)
    check_writable(run_dir, "--out folder")
    summary: Dict[str, Any] = {"run_dir": str(run_dir), "protocol": protocol, "methods": methods,
                               "started": utc_now(), "finished": None, "history": opts.history, "datasets": {}}
    write_summary(run_dir, summary)
    for name in datasets:
        entry: Dict[str, Any] = {"status": None, "reason": None, "model_loads": 0, "methods": {}}
        summary["datasets"][name] = entry
        shared = SharedCLIP()  # one CLIP for every method on this dataset, released after it
        try:
            for method in methods:
                run = {"config": method_config(method, name), "status": None, "reason": None}
                entry["methods"][method] = run
                _evaluate_one(opts, protocol, run_dir, name, method, run, shared)
                entry["model_loads"] = shared.loads
                if run["status"] == MISSING:  # the data, not the method: reported once for the dataset
                    del entry["methods"][method]
                    entry.update(status=MISSING, reason=run["reason"])
                    logger.info("%s: data missing, skipped: %s", name, entry["reason"])
                    break
                write_summary(run_dir, summary)
        except EvaluationInterrupted as stop:
            entry["methods"][method].update(status=FAILED, reason=_one_line(stop))
            entry["status"] = FAILED
            summary["interrupted"] = True
            write_summary(run_dir, summary)
            raise
        if entry["status"] is None:
            entry["status"] = FAILED if any(r["status"] == FAILED for r in entry["methods"].values()) else RAN
        write_summary(run_dir, summary)
    summary["finished"] = utc_now()
    summary["status"] = overall_status(summary)
    write_summary(run_dir, summary)
    write_tables(run_dir)
    write_index(run_dir)
    return summary


def write_index(run_dir: Path) -> None:
    """``<run_dir>/report.html``: the methods table, linking each result's report
    (``html_report.write_run_index``); a page that cannot be written is logged, the run's results
    and tables stand."""
    from .html_report import write_run_index

    try:
        logger.info("report: %s", write_run_index(run_dir))
    except Exception as err:  # noqa: BLE001 - the results are written; the page must not fail the run
        logger.warning("warning: %s/report.html not written (%s: %s)", run_dir, type(err).__name__,
                       _one_line(err), exc_info=not isinstance(err, (UserError, OSError)))


def _evaluate_one(opts: ReproduceOptions, protocol: str, run_dir: Path, name: str, method: str,
                  run: Dict[str, Any], shared: SharedCLIP) -> None:
    """One method on one dataset: its status in ``run``; a failure is recorded, not raised."""
    work_dir = run_dir / method / name
    evaluation = dataclasses.replace(opts.evaluation, config=run["config"], work_dir=str(work_dir),
                                     protocol=protocol, cfg_options=dict(opts.evaluation.cfg_options))
    try:
        results = evaluate(evaluation, shared_clip=shared)
    except DataLayoutError as err:
        run.update(status=MISSING, reason=_one_line(err))
    except EvaluationInterrupted:
        raise
    except Exception as err:  # noqa: BLE001 - one run's failure must not cost the others
        run.update(status=FAILED, reason=f"{type(err).__name__}: {_one_line(err)}")
        logger.error("%s, %s: failed: %s", name, method, run["reason"], exc_info=not isinstance(err, UserError))
    else:
        run.update(status=RAN, metrics=str(work_dir / RESULTS_FILE), mIoU=results["summary"]["mIoU"],
                   num_images=results["dataset"]["num_images"], wall_s=results["timing"]["wall_s"])
        run["recorded"] = _record(opts, results, run)


def _record(opts: ReproduceOptions, results: Dict[str, Any], entry: Dict[str, Any]) -> bool:
    """Append to the history; a history that cannot be written is noted, not fatal to the run."""
    history = opts.history
    if not history:
        return False
    try:
        return append_history(history, results, any_run=opts.record_any_run)
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
    from .paper import load_paper, methods_table, to_csv, to_markdown
    from .plots import plot_methods_table
    from .records import load_path

    summary = json.loads((run_dir / SUMMARY_FILE).read_text())
    records = []
    for name, entry in summary["datasets"].items():
        for method, run in entry["methods"].items():
            if run["status"] == RAN:
                records += load_path(run_dir / method / name / RESULTS_FILE)
    table = methods_table(records, load_paper())
    skipped = [f"- {n}: {e['status'].replace('_', ' ')}: {e['reason']}" for n, e in summary["datasets"].items()
               if e["status"] == MISSING]
    skipped += [f"- {n}, {m}: failed: {r['reason']}" for n, e in summary["datasets"].items()
                for m, r in e["methods"].items() if r["status"] == FAILED]
    markdown = (f"mIoU (%) of each method on each dataset, protocol `{summary['protocol']}` (run `{run_dir}`)\n\n"
                + to_markdown(table) + ("\nNot run:\n" + "\n".join(skipped) + "\n" if skipped else ""))
    atomic_write_text(run_dir / "table.md", markdown)
    atomic_write_text(run_dir / "table.csv", to_csv(table))
    if records:
        plot_methods_table(table, run_dir / "table.png", title=f"mIoU, protocol {summary['protocol']}: ours vs published")
    return markdown
