"""The command-line tools: ``css-eval`` (``tools/eval.py``), ``css-reproduce``, ``css-report``,
``css-compare``, ``css-history``, ``css-prepare-data``, ``css-check-data``, ``css-make-synthetic-data``.

Every tool's ``main(argv) -> int`` goes through :func:`run`: a :class:`~clip_surgery_seg.errors.UserError`
becomes one ``error: ...`` line and the tool's usage exit code; any other exception is a bug and keeps
its traceback. ``--debug`` (or ``CLIP_SURGERY_SEG_DEBUG=1``) shows the traceback of every error.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import sys
import traceback
import warnings
from pathlib import Path
from typing import Callable, Iterator, Optional

from ..errors import UserError

EXIT_OK = 0
EXIT_FAILED = 1  # eval, data tools: bad input; compare: a regression; reproduce: a dataset failed
EXIT_USAGE = 2  # reporting tools: bad input (missing or invalid file, unknown name, mismatch)
EXIT_MISSING_DATA = 3  # reproduce: some datasets had no data; the others ran
EXIT_INTERRUPTED = 130

DEBUG_ENV = "CLIP_SURGERY_SEG_DEBUG"


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true",
                        help=f"show the traceback of every error (or set {DEBUG_ENV}=1)")


def debugging(args: Optional[argparse.Namespace] = None) -> bool:
    return bool(getattr(args, "debug", False)) or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def one_line(err: BaseException) -> str:
    """The message on one line, printable whatever file names it holds."""
    from ..fileio import printable

    return printable(" ".join(str(err).split()) or type(err).__name__)


def report_error(err: BaseException, debug: bool) -> None:
    if debug:
        traceback.print_exception(type(err), err, err.__traceback__, file=sys.stderr)
    print(f"error: {one_line(err)}", file=sys.stderr)


def run(body: Callable[[], int], args: Optional[argparse.Namespace], usage_exit: int) -> int:
    """``body()``, with a user error printed as one line and turned into ``usage_exit``."""
    try:
        return body()
    except UserError as err:
        report_error(err, debugging(args))
        return usage_exit


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (tests and tools redirect it)."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


@contextlib.contextmanager
def console_logging(quiet: bool) -> Iterator[None]:
    """While a tool runs: the harness's notes on stderr (warnings only with ``quiet``). Removed
    afterwards, so that a tool called as a function leaves no handler behind."""
    logger = logging.getLogger("clip_surgery_seg")
    console = _StderrHandler()
    console.setFormatter(logging.Formatter("%(message)s"))
    console.setLevel(logging.WARNING if quiet else logging.INFO)
    level, propagate = logger.level, logger.propagate
    logger.setLevel(logging.INFO)
    logger.addHandler(console)
    # libraries that log through the root logger (open_clip does) give it a handler of its own: the
    # harness's lines would be printed twice
    logger.propagate = False
    warnings.filterwarnings("ignore", module="mmengine")
    try:
        yield
    finally:
        logger.removeHandler(console)
        logger.setLevel(level)
        logger.propagate = propagate


def invoked_as(script: str) -> str:
    """How the user ran this tool, for usage lines and hints: ``python tools/eval.py`` from a
    checkout's script, else the installed command's name (``css-eval``), which works from any folder."""
    argv0 = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path(script)
    if argv0.suffix == ".py" and argv0.name == Path(script).name:
        return f"python {argv0.as_posix() if not argv0.is_absolute() else script}"
    if argv0.suffix != ".py" and argv0.name.startswith("css-"):
        return argv0.name
    return f"python {script}"


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def tolerance(text: str) -> float:
    """argparse type: a finite number >= 0 (a NaN tolerance would let every drop pass: no number is
    "more than" NaN below the baseline; an infinite one would too)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of points >= 0, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number of points >= 0, got {text!r}")
    return value


def write_or_print(text: str, out: Optional[str]) -> None:
    """``text`` to the file ``out`` (atomically; a failed write is one error line), or to stdout."""
    if out:
        from ..fileio import atomic_write_text

        atomic_write_text(out, text)
        print(f"wrote {out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
