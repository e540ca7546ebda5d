"""The command-line tools: ``css-eval`` (``tools/eval.py``), ``css-reproduce``, ``css-report``,
``css-compare``, ``css-history``, ``css-prepare-data``, ``css-check-data``, ``css-make-synthetic-data``.

Every tool's ``main(argv) -> int`` goes through :func:`run`: a :class:`~clip_surgery_seg.errors.UserError`
becomes one ``error: ...`` line and the tool's usage exit code; any other exception is a bug and keeps
its traceback. ``--debug`` (or ``CLIP_SURGERY_SEG_DEBUG=1``) shows the traceback of every error. A bad
command line is one ``error: ...`` line too (:class:`ToolParser`), not argparse's usage dump.

Tools name themselves, and any other tool they mention, as the user runs them: ``python tools/eval.py``
in a checkout, ``css-eval`` once installed (:func:`invoked_as`, :func:`command_for`). The lower floors
cannot know which; their hints say the checkout's ``python tools/<tool>.py``, and :func:`as_invoked`
rewrites that for an installed command wherever a tool prints text (error lines, log lines, hints).
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import re
import shlex
import sys
import traceback
import warnings
from pathlib import Path
from typing import Callable, Iterator, List, Optional

from .. import errors
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

    return printable(errors.one_line(err))


def report_error(err: BaseException, debug: bool) -> None:
    if debug:
        traceback.print_exception(type(err), err, err.__traceback__, file=sys.stderr)
    print(f"error: {as_invoked(one_line(err))}", file=sys.stderr)


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
    console.setFormatter(_InvokedFormatter("%(message)s"))
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


class _InvokedFormatter(logging.Formatter):
    """The harness's notes with the checkout's tool commands as the user runs them (:func:`as_invoked`)."""

    def format(self, record: logging.LogRecord) -> str:
        return as_invoked(super().format(record))


# every checkout script and its installed command (setup.cfg's console_scripts)
COMMANDS = {
    "tools/eval.py": "css-eval",
    "tools/demo.py": "css-demo",
    "tools/reproduce.py": "css-reproduce",
    "tools/report.py": "css-report",
    "tools/compare.py": "css-compare",
    "tools/history.py": "css-history",
    "tools/prepare_data.py": "css-prepare-data",
    "tools/check_data.py": "css-check-data",
    "tools/make_synthetic_data.py": "css-make-synthetic-data",
}


def running_installed() -> bool:
    """True when this process is an installed command (``css-eval``, ...), not a checkout's script."""
    argv0 = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    return argv0 is not None and argv0.suffix != ".py" and argv0.name.startswith("css-")


def invoked_as(script: str) -> str:
    """How the user ran this tool, for usage lines and hints: ``python tools/eval.py`` from a
    checkout's script, else the installed command's name (``css-eval``), which works from any folder."""
    argv0 = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path(script)
    if argv0.suffix == ".py" and argv0.name == Path(script).name:
        return f"python {argv0.as_posix() if not argv0.is_absolute() else script}"
    if running_installed():
        return argv0.name
    return f"python {script}"


def command_line(prog: str, argv: List[str]) -> str:
    """The command ``prog argv...`` as a shell would take it back (each argument quoted as needed)."""
    return " ".join([prog] + [shlex.quote(a) for a in argv])


def command_for(script: str) -> str:
    """How to run another tool (``tools/check_data.py``) the way this one was run."""
    return COMMANDS[script] if running_installed() else f"python {script}"


def as_invoked(text: str) -> str:
    """``text`` with the checkout's commands (``python tools/prepare_data.py``, ``tools/check_data.py``,
    ``torchrun ... tools/eval.py``) as the installed commands when this process is one; else as it is."""
    if not running_installed():
        return text
    # torchrun runs a Python file; an installed command is run with --no-python
    text = re.sub(r"torchrun ((?:--nproc-per-node|--nproc_per_node)[ =]\S+ )tools/(eval|reproduce)\.py",
                  lambda m: f"torchrun {m.group(1)}--no-python {COMMANDS[f'tools/{m.group(2)}.py']}", text)
    for script, command in COMMANDS.items():
        text = text.replace(f"python {script}", command).replace(script, command)
    return text


class ToolParser(argparse.ArgumentParser):
    """argparse with a bad command line as one ``error: ...`` line (exit 2) instead of the usage and
    the error; an unknown option gets the closest known one. ``habits`` (an option name -> the answer)
    answers the options of other harnesses (mmseg's ``--out``, ``--tta``, ...) before parsing;
    ``intermixed``: positional arguments may come after options (``CONFIG --quiet CHECKPOINT``)."""

    def __init__(self, *args, habits: Optional[dict] = None, intermixed: bool = False, **kwargs) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)
        self.habits = dict(habits or {})
        self.intermixed = intermixed

    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        args = list(sys.argv[1:] if args is None else args)
        for i, arg in enumerate(args):
            if arg == "--":
                break
            if not arg.startswith("--"):
                continue
            name, eq, value = arg.partition("=")
            if not eq and i + 1 < len(args):
                value = args[i + 1]
            answer = self.habits.get(f"{name} {value}", self.habits.get(name))
            if answer is not None:
                self.fail(answer)
        if self.intermixed:
            return super().parse_intermixed_args(args, namespace)
        return super().parse_args(args, namespace)

    def error(self, message: str):  # type: ignore[override]
        from ..errors import suggest

        unknown = re.match(r"unrecognized arguments: (-\S+)", message)
        known = [o for action in self._actions for o in action.option_strings if o.startswith("--")]
        hint = suggest(unknown.group(1).partition("=")[0], known) if unknown else ""
        self.fail(f"{message}{hint or f' (see {self.prog} --help)'}")

    def fail(self, message: str):
        """One ``error:`` line and the usage exit code."""
        print(f"error: {as_invoked(' '.join(message.split()))}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def device_name(text: str) -> str:
    """argparse type of ``--device``: ``cpu``, ``cuda`` or ``cuda:N`` (one GPU, as torch names it)."""
    if text in ("cpu", "cuda") or re.fullmatch(r"cuda:\d+", text):
        return text
    raise argparse.ArgumentTypeError(f"expected cpu, cuda or cuda:N (e.g. cuda:0), got {text!r}")


def add_device_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", type=device_name, metavar="cpu|cuda|cuda:N",
                        help="default: cuda when available; cuda:N for one GPU of several")


def add_resize_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--resize", choices=("mmseg", "device"),
                        help="how images reach the test scale: mmseg (the protocols' default: mmcv's resize of "
                        "the decoded image, the peer harnesses' pixels) or device (bilinear on the GPU, faster; "
                        "recorded as an overridden protocol setting)")


def add_cfg_options_flag(parser: argparse.ArgumentParser, help: str) -> None:
    """``--cfg-options KEY=VALUE ...``; given twice, both lists count (mmengine's habit)."""
    parser.add_argument("--cfg-options", nargs="+", action="extend", default=[], metavar="KEY=VALUE", help=help)


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
