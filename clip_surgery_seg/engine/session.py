"""A run, from start to finish, in one place: what ``tools/eval.py`` and ``tools/reproduce.py`` both use.

:func:`run_session` resolves the experiment (a bad config fails here, before any file is written),
then for the evaluation:

* writes its log to ``<work-dir>/logs/<UTC time>.log`` (the command, the harness's notes, the final
  per-class table and summary, or the error that stopped it);
* makes ``kill`` (SIGTERM) stop it as cleanly as Ctrl-C, leaving progress to ``--resume``;
* evaluates (:func:`~.runner.evaluate`), resuming when asked;
* writes ``report.html`` after ``metrics.json`` (a report that cannot be drawn is a warning: the
  numbers are saved) and records the result in the history when asked.
"""
from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

from ..errors import UserError, one_line
from ..fileio import check_writable, printable
from ..models import SharedCLIP
from ..results import LOGS_DIR, RESULTS_FILE, format_results
from .experiment import Experiment
from .runner import EvalOptions, EvaluationInterrupted, check_output_folders, check_outputs, evaluate

logger = logging.getLogger("clip_surgery_seg")


class RunInterrupted(EvaluationInterrupted):
    """Ctrl-C or SIGTERM during a run; ``resume`` is the command that continues it."""

    def __init__(self, stop: EvaluationInterrupted, resume: Optional[str]) -> None:
        super().__init__(stop.done, stop.total, stop.work_dir)
        self.resume = resume


@dataclass
class Outcome:
    """What a run produced: its results (rank 0; other ranks get their computed metrics only), the
    report it wrote, and whether the history recorded it."""

    experiment: Experiment
    results: Dict[str, Any]
    work_dir: Path
    report: Optional[Path] = None
    recorded: bool = False
    history_error: Optional[BaseException] = None  # the history could not be written

    @property
    def is_main(self) -> bool:
        return "schema" in self.results


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """While it lasts, SIGTERM (``kill``) raises KeyboardInterrupt, as Ctrl-C does."""
    try:
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    except ValueError:  # not the main thread: signals stay as they are
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class RunLogHandler(logging.FileHandler):
    """The run's log file. The log is a copy of what the console shows: when the file cannot be
    written (a full disk), that is said once on the console and the run goes on without it,
    instead of a "Logging error" traceback per line (or, in the error path, a traceback in place
    of the run's own one-line error)."""

    failed: Optional[str] = None  # why the log stopped, once a write failed

    def emit(self, record: logging.LogRecord) -> None:
        if self.failed is None:
            super().emit(record)

    def handleError(self, record: Optional[logging.LogRecord]) -> None:  # noqa: N802 - logging's name
        err = sys.exc_info()[1]
        if self.failed is not None:
            return
        self.failed = getattr(err, "strerror", None) or str(err)
        print(f"warning: cannot write the run log {printable(self.baseFilename)} ({self.failed}); the rest of "
              "this run is not in it", file=sys.stderr)

    def close(self) -> None:
        try:
            super().close()  # flushes what a full disk did not take
        except OSError:
            self.handleError(None)


@contextlib.contextmanager
def run_log(work_dir: Path, rank: str = "0") -> Iterator[logging.FileHandler]:
    """The harness's log also goes to ``<work_dir>/logs/<UTC time>[.rankN].log`` while it lasts."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = work_dir / LOGS_DIR / f"{stamp}{'' if rank == '0' else f'.rank{rank}'}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = RunLogHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger("clip_surgery_seg")
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        handler.close()


def _to_file(handler: logging.FileHandler, text: str) -> None:
    """Text for the log file only (the terminal shows it its own way); a log that cannot be
    written is :class:`RunLogHandler`'s one warning, never an exception in the caller's way."""
    if getattr(handler, "failed", None) is not None:
        return
    handler.acquire()
    try:
        handler.stream.write(text.rstrip("\n") + "\n")
        handler.flush()
    except OSError:
        handler.handleError(None)
    finally:
        handler.release()


def run_session(opts: EvalOptions, *, command: str, resume_command: Optional[str] = None,
                experiment: Optional[Experiment] = None, history: Optional[str] = None,
                record_any_run: bool = False, shared_clip: Optional[SharedCLIP] = None,
                report: bool = True) -> Outcome:
    """One evaluation with everything around it (see the module docstring).

    Args:
        opts: the evaluation's options. command: the command line, for the log.
        resume_command: the command that continues an interrupted run (said on Ctrl-C).
        experiment: already resolved (else ``opts.resolve()``: a bad config raises before any file
            is written). history: record the result there (``append_history``'s rules).
        shared_clip: one CLIP for several runs (``tools/reproduce.py``).

    Raises:
        RunInterrupted: Ctrl-C or SIGTERM; progress is saved for ``--resume``.
        UserError, and anything else: after the error is written to the run's log.
    """
    from ..reporting.history import append_history

    experiment = experiment or opts.resolve()
    work_dir = opts.resolved_work_dir
    check_output_folders(opts, experiment)  # before the work dir (its log, its lock) is made
    check_outputs(work_dir, opts.save_preds, opts.show_dir)
    if history:  # before the run, not after it
        check_writable(Path(history).parent, "--history folder")
    rank = os.environ.get("RANK", "0") if opts.launcher == "pytorch" else "0"
    with run_log(work_dir, rank) as log, stop_on_sigterm():
        logger.info("%s", command)
        try:
            results = evaluate(opts, experiment, shared_clip)
        except EvaluationInterrupted as stop:
            _to_file(log, f"{stop}" + (f"; resume with: {resume_command}" if resume_command else ""))
            raise RunInterrupted(stop, resume_command) from None
        except KeyboardInterrupt:
            _to_file(log, "interrupted before any image was evaluated; nothing to resume")
            raise
        except BaseException as err:
            _to_file(log, f"error: {type(err).__name__}: {one_line(err)}"
                     + ("" if isinstance(err, UserError) else "\n" + "".join(traceback.format_exception(err))))
            raise
        outcome = Outcome(experiment, results, work_dir)
        if not outcome.is_main:
            return outcome
        _to_file(log, format_results(results))
        if report:
            outcome.report = _write_report(work_dir)
        if history:
            try:
                outcome.recorded = append_history(history, results, any_run=record_any_run)
            except (OSError, UserError) as err:  # the caller decides: eval fails, reproduce goes on
                outcome.history_error = err
                _to_file(log, f"error: not recorded in the history {history}: {one_line(err)}")
    return outcome


def _write_report(work_dir: Path) -> Optional[Path]:
    """``<work-dir>/report.html``, after metrics.json: a report that cannot be written is said in one
    line (with its traceback when it is a bug), and the run still succeeds: its numbers are saved."""
    from ..reporting.html_report import write_work_dir_report

    try:
        page = write_work_dir_report(work_dir)
    except Exception as err:  # noqa: BLE001 - metrics.json is written; the page must not fail the run
        logger.warning("warning: report not written (%s: %s); %s is complete", type(err).__name__,
                       one_line(err), work_dir / RESULTS_FILE,
                       exc_info=not isinstance(err, (UserError, OSError)))
        return None
    logger.info("report: %s", page)
    return page
