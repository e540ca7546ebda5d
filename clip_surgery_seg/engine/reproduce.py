"""Reproduce the field's table: every chosen method on every chosen dataset, under one protocol.

Run folder (default ``work_dirs/reproduce/<UTC time>_<protocol>/``)::

    <method>/<dataset>/               each evaluation's work dir: metrics.json, confusion.npy,
                                      report.html, logs/, progress/
    summary.json                      per dataset and method: ran, missing data (with the reason) or
                                      failed, and whether the run finished
    table.md, table.csv               the methods x datasets table, ours beside the published numbers
    table.png                         the same as bars (``tools/report.py`` rebuilds all three)
    report.html                       the same table, linking every evaluation's report

Each evaluation is ``configs/<dataset>.py`` with the method (what ``configs/<method>/<dataset>.py``
names) and goes through :func:`~.session.run_session`, as ``tools/eval.py`` does. For each dataset
the CLIP is loaded once and shared by every method (a :class:`~clip_surgery_seg.models.SharedCLIP`),
and the text embeddings come from the cache after the first method of a template set. A dataset
whose data is missing or unusable (``DataLayoutError``) is reported once with the reason and
skipped; the others still run.

``--resume`` continues a run folder: evaluations it finished under the same experiment are kept
(no model load), the others continue from their own progress. Without it, a folder that holds a
run is refused: nothing of an earlier run is overwritten, and the tables only ever show this run's
results.
"""
from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional

from .. import protocols, resources
from ..datasets.catalog import DATASETS, paper_rank
from ..errors import ConfigError, DataLayoutError, ResultsFileError, ResumeError, UserError, one_line, suggest
from ..fileio import atomic_write_json, atomic_write_text, check_writable
from ..models import METHODS, SharedCLIP
from ..results import (FAILED, RAN, RESULTS_FILE, SUMMARY_FILE, load_results, not_run, ran_keys, read_summary,
                       utc_now)
from ..results import MISSING_DATA as MISSING
from .runner import EvalOptions, EvaluationInterrupted
from .session import RunInterrupted, run_session

logger = logging.getLogger("clip_surgery_seg")

#: ``--protocol native``: each method under the protocol of its own published numbers
#: (``native_protocol``), with the post-processing its code applies (``default_postprocess``); a
#: method without published settings under the default protocol
NATIVE = "native"



@dataclass
class ReproduceOptions:
    """What ``tools/reproduce.py`` takes: the methods, the datasets, the protocol, where results go,
    and the evaluation options every run shares (``evaluation.config`` is set per run)."""

    evaluation: EvalOptions = field(default_factory=lambda: EvalOptions(config=""))
    datasets: List[str] = field(default_factory=lambda: list(DATASETS))
    methods: List[str] = field(default_factory=lambda: list(METHODS))
    protocol: str = protocols.DEFAULT_PROTOCOL
    out: Optional[str] = None
    history: Optional[str] = None  # record results there
    record_any_run: bool = False  # also record random-weight or incomplete-split runs
    resume: bool = False
    command: str = "tools/reproduce.py"  # as the user typed it, for the logs and the resume hint
    models: List[Optional[str]] = field(default_factory=lambda: [None])  # None: ``evaluation.model``


def check_methods(methods: List[str]) -> List[str]:
    """Known method names, duplicates dropped, in the registry's order (publication order)."""
    for name in methods:
        if name not in METHODS:
            raise ConfigError(f"unknown method {name!r}{suggest(name, METHODS)} (methods: {', '.join(METHODS)})")
    return [name for name in METHODS if name in methods]


def dataset_config(dataset: str) -> str:
    """The experiment config of a dataset, ``configs/<dataset>.py`` (a method is applied to it)."""
    if not resources.find_config(dataset).is_file():
        raise ConfigError(f"dataset {dataset} has no config configs/{dataset}.py: a catalogue dataset needs its "
                          "base config (docs/datasets.md, 'Adding a dataset')")
    return f"configs/{dataset}.py"


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


def _previous_summary(run_dir: Path, resume: bool) -> Optional[Dict[str, Any]]:
    """What a run folder already holds: with ``resume`` its summary (None when empty); without, a
    folder holding a run is refused."""
    path = run_dir / SUMMARY_FILE
    if not path.is_file():
        if resume:
            logger.info("%s holds no run yet: starting one", run_dir)
        return None
    try:
        summary = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ResumeError(f"{path} is damaged ({one_line(err)}); pass another --out") from None
    if not resume:
        state = "a finished" if summary.get("finished") else "an unfinished"
        raise ResumeError(f"{run_dir} holds {state} reproduce run (started {summary.get('started')}); continue it "
                          "with --resume, or pass another --out")
    return summary


def run_reproduction(opts: ReproduceOptions) -> Dict[str, Any]:
    """Evaluate each chosen method on each chosen dataset; returns the summary (also ``summary.json``).

    ``opts.out`` is set to the run folder (a new one when it was None).

    Raises:
        RunInterrupted, KeyboardInterrupt: Ctrl-C or SIGTERM; the summary says so and ``--resume``
            continues.
    """
    protocol = opts.protocol if opts.protocol == NATIVE else protocols.check_name(opts.protocol)
    methods = check_methods(opts.methods)
    datasets = sorted(opts.datasets, key=lambda n: (paper_rank(n), n))
    configs = {name: dataset_config(name) for name in datasets}
    if opts.history:  # before the run, not after it
        check_writable(Path(opts.history).parent, "--history folder")
    run_dir = Path(opts.out) if opts.out else new_run_dir(protocol)
    opts.out = str(run_dir)  # the folder a resume names
    check_writable(run_dir, "--out folder")
    previous = _previous_summary(run_dir, opts.resume)
    if previous is not None and previous.get("protocol") != protocol:
        raise ResumeError(f"{run_dir} holds a run under protocol {previous.get('protocol')}, not {protocol}; pass "
                          f"--protocol {previous.get('protocol')} to continue it, or another --out")
    # each backbone named once; None: the evaluation's model (or the config's)
    models = list(dict.fromkeys(m or opts.evaluation.model for m in opts.models or [None]))
    summary: Dict[str, Any] = {"run_dir": str(run_dir), "protocol": protocol, "methods": methods,
                               "models": models, "model_loads": {},
                               "started": (previous or {}).get("started") or utc_now(), "finished": None,
                               "history": opts.history, "command": opts.command, "datasets": {}}
    write_summary(run_dir, summary)
    try:
        for model in models:
            shared = SharedCLIP()  # one CLIP per backbone for every method and dataset
            for name in datasets:
                if summary["datasets"].get(name, {}).get("status") == MISSING:
                    continue  # the data is missing whatever the model
                _reproduce_dataset(opts, protocol, run_dir, name, configs[name], methods, summary, previous,
                                   model, len(models) > 1, shared)
            summary["model_loads"][str(model)] = shared.loads
        for entry in summary["datasets"].values():
            if entry["status"] is None:
                entry["status"] = FAILED if any(r["status"] == FAILED for r in entry["methods"].values()) else RAN
    except (KeyboardInterrupt, EvaluationInterrupted):
        summary["interrupted"] = True
        summary["status"] = FAILED
        write_summary(run_dir, summary)
        raise
    summary["finished"] = utc_now()
    summary["status"] = overall_status(summary)
    write_summary(run_dir, summary)
    write_tables(run_dir)
    write_index(run_dir)
    return summary


def model_folder(model: str) -> str:
    """A backbone's folder in a run of several (``ViT-L-14``; a model-config file by its stem)."""
    return Path(model).stem if str(model).endswith(".json") else str(model).replace("/", "-")


def _reproduce_dataset(opts: ReproduceOptions, protocol: str, run_dir: Path, name: str, config: str,
                       methods: List[str], summary: Dict[str, Any], previous: Optional[Dict[str, Any]],
                       model: Optional[str], several: bool, shared: SharedCLIP) -> None:
    """Every method on one dataset with one backbone; its runs under ``<method>`` (one backbone) or
    ``<backbone>/<method>`` (several) in the dataset's summary entry."""
    entry = summary["datasets"].setdefault(name, {"status": None, "reason": None, "model_loads": 0, "methods": {}})
    before = ((previous or {}).get("datasets") or {}).get(name) or {}
    loads = shared.loads
    for method in methods:
        key = f"{model_folder(model)}/{method}" if several else method
        run: Dict[str, Any] = {"config": f"configs/{method}/{name}.py", "method": method,
                               "model": model, "status": None, "reason": None}
        entry["methods"][key] = run
        kept = (before.get("methods") or {}).get(key)
        _evaluate_one(opts, protocol, run_dir / key / name, name, config, method, model, run, shared, kept)
        entry["model_loads"] += shared.loads - loads
        loads = shared.loads
        if run["status"] == MISSING:  # the data, not the method: reported once for the dataset
            del entry["methods"][key]
            entry.update(status=MISSING, reason=run["reason"])
            logger.info("%s: data missing, skipped: %s", name, entry["reason"])
        write_summary(run_dir, summary)
        if entry["status"] == MISSING:
            break


def _evaluate_one(opts: ReproduceOptions, protocol: str, work_dir: Path, name: str, config: str, method: str,
                  model: Optional[str], run: Dict[str, Any], shared: SharedCLIP,
                  kept: Optional[Dict[str, Any]]) -> None:
    """One method on one dataset: its status in ``run``; a failure is recorded, not raised."""
    protocol, options = method_protocol(method, protocol, opts.evaluation.cfg_options)
    run["protocol"] = protocol
    evaluation = dataclasses.replace(opts.evaluation, config=config, method=method, work_dir=str(work_dir),
                                     protocol=protocol, resume=opts.resume, cfg_options=options,
                                     model=model)
    try:
        experiment = evaluation.resolve()
        results = _kept_results(work_dir, kept, experiment.config_hash()) if opts.resume else None
        if results is not None:
            logger.info("%s, %s: kept from the earlier run (mIoU %.2f)", name, method, results["summary"]["mIoU"])
            run.update(kept_from_earlier_run=True, recorded=kept.get("recorded", False))
        else:
            command = f"{opts.command}  [{name}, {method}]"
            outcome = run_session(evaluation, command=command, experiment=experiment, history=opts.history,
                                  record_any_run=opts.record_any_run, shared_clip=shared)
            results = outcome.results
            run["recorded"] = outcome.recorded
            if outcome.history_error is not None:
                run["history_error"] = one_line(outcome.history_error)
    except DataLayoutError as err:
        run.update(status=MISSING, reason=one_line(err))
    except (RunInterrupted, KeyboardInterrupt) as err:
        run.update(status=FAILED, reason="interrupted" if isinstance(err, KeyboardInterrupt) else one_line(err))
        raise
    except Exception as err:  # noqa: BLE001 - one run's failure must not cost the others
        run.update(status=FAILED, reason=f"{type(err).__name__}: {one_line(err)}")
        logger.error("%s, %s: failed: %s", name, method, run["reason"], exc_info=not isinstance(err, UserError))
    else:
        run.update(status=RAN, metrics=str(work_dir / RESULTS_FILE), mIoU=results["summary"]["mIoU"],
                   num_images=results["dataset"]["num_images"], wall_s=results["timing"]["wall_s"])


def method_protocol(method: str, protocol: str, cfg_options: Dict[str, Any]) -> "tuple[str, Dict[str, Any]]":
    """The protocol a method runs under and its ``--cfg-options``: ``protocol`` itself, or with
    :data:`NATIVE` the method's own (and its code's post-processing, unless the options set one)."""
    options = dict(cfg_options)
    if protocol != NATIVE:
        return protocol, options
    cls = METHODS[method]
    if cls.native_protocol is None:
        return protocols.DEFAULT_PROTOCOL, options
    if cls.default_postprocess is not None and "model.postprocess" not in options:
        options["model.postprocess"] = dict(cls.default_postprocess)
    return cls.native_protocol, options


def _kept_results(work_dir: Path, kept: Optional[Dict[str, Any]], config_hash: str) -> Optional[Dict[str, Any]]:
    """The earlier run's results of this evaluation, when it finished them under the same experiment."""
    if not kept or kept.get("status") != RAN:
        return None
    try:
        results = load_results(work_dir / RESULTS_FILE)
    except ResultsFileError:
        return None
    return results if results.get("config_hash") == config_hash else None


def overall_status(summary: Dict[str, Any]) -> str:
    """``failed`` if a dataset failed, else ``missing_data`` if one had no data, else ``ran``."""
    statuses = [e["status"] for e in summary["datasets"].values()]
    for status in (FAILED, MISSING):
        if status in statuses:
            return status
    return RAN


def write_summary(run_dir: Path, summary: Dict[str, Any]) -> None:
    atomic_write_json(run_dir / SUMMARY_FILE, summary)


def ran_results(run_dir: Path, summary: Optional[Dict[str, Any]] = None) -> List[Path]:
    """The ``metrics.json`` of every evaluation this run's summary (read from ``run_dir`` when not
    given) says ran (nothing of an earlier run)."""
    summary = read_summary(run_dir) if summary is None else summary
    return [run_dir / key / RESULTS_FILE for key in ran_keys(summary)]


def write_tables(run_dir: Path) -> Optional[str]:
    """``table.md``, ``table.csv`` and ``table.png`` from the run's results; returns the Markdown."""
    from ..reporting.paper import load_paper, methods_table, to_csv, to_markdown
    from ..reporting.plots import plot_methods_table
    from ..reporting.records import load_path

    summary = read_summary(run_dir)
    records = [record for path in ran_results(run_dir, summary) for record in load_path(path)]
    paper = load_paper()
    blocks = {}  # one table per backbone, as the papers print a ViT-L/14 block under the ViT-B/16 one
    for record in records:
        blocks.setdefault(record.model_label, []).append(record)
    table = methods_table(records, paper)
    missed = not_run(summary)
    skipped = [f"- {n}: missing data: {reason}" for n, m, reason in missed if m is None]
    skipped += [f"- {n}, {m}: failed: {reason}" for n, m, reason in missed if m is not None]
    title = f"mIoU (%) of each method on each dataset, protocol `{summary['protocol']}` (run `{run_dir}`)\n\n"
    if len(blocks) > 1:
        body = "".join(f"### {model}\n\n{to_markdown(methods_table(part, paper))}\n" for model, part in blocks.items())
    else:
        body = to_markdown(table)
    markdown = title + body + ("\nNot run:\n" + "\n".join(skipped) + "\n" if skipped else "")
    atomic_write_text(run_dir / "table.md", markdown)
    atomic_write_text(run_dir / "table.csv", to_csv(table))
    if records:
        plot_methods_table(table, run_dir / "table.png", title=f"mIoU, protocol {summary['protocol']}: ours vs published")
    return markdown


def write_index(run_dir: Path) -> None:
    """``<run_dir>/report.html`` (``html_report.write_run_index``); a page that cannot be written is
    logged, the run's results and tables stand."""
    from ..reporting.html_report import write_run_index

    try:
        logger.info("report: %s", write_run_index(run_dir))
    except Exception as err:  # noqa: BLE001 - the results are written; the page must not fail the run
        logger.warning("warning: %s/report.html not written (%s: %s)", run_dir, type(err).__name__,
                       one_line(err), exc_info=not isinstance(err, (UserError, OSError)))
