"""``css-compare`` / ``tools/compare.py``: compare results against a baseline; exit 1 on a regression."""
from __future__ import annotations

import sys
from typing import List, Optional

from ..errors import ConfigError, MismatchError
from . import (EXIT_FAILED, EXIT_OK, EXIT_USAGE, ToolParser, add_debug_flag, console_logging, debugging, invoked_as,
               report_error, run)
from .report import SELECTION_HELP


def build_parser(prog: str = "python tools/compare.py") -> ToolParser:
    parser = ToolParser(
        prog=prog,
        description="Compare NEW results against BASELINE results: summary metrics and the classes that\n"
                    "moved. Exit 0: no regression; 1: mIoU dropped by more than --tolerance or a class IoU\n"
                    "by more than --per-class-tolerance; 2: bad input, or other datasets/protocols.",
        epilog="A history selection as BASELINE without a dataset picks, for each dataset in NEW, a row of "
               "NEW's protocol, never NEW itself.\n\nexamples:\n"
               f"  {prog} work_dirs/ade20k/metrics.json results/history.csv:ade20k@latest\n"
               f"  {prog} work_dirs/reproduce/RUN results/history.csv@-2 --tolerance 0.2\n"
               f"  {prog} results/history.csv@latest results/history.csv@3f2a9c1")
    parser.add_argument("new", metavar="NEW", help=SELECTION_HELP)
    parser.add_argument("baseline", metavar="BASELINE", help="the same kinds as NEW")
    parser.add_argument("--tolerance", type=float, default=0.1, help="allowed mIoU drop in points (default 0.1)")
    parser.add_argument("--per-class-tolerance", type=float, default=1.0,
                        help="allowed drop of one class's IoU in points (default 1.0)")
    parser.add_argument("--force", action="store_true",
                        help="compare even across protocols or datasets (only the common datasets)")
    add_debug_flag(parser)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser(invoked_as("tools/compare.py")).parse_args(argv)

    def body() -> int:
        from ..reporting.compare import compare_records, format_comparison, pair_records
        from ..reporting.records import load_records

        if args.tolerance < 0 or args.per_class_tolerance < 0:
            raise ConfigError("tolerances must not be negative")
        new = load_records(args.new)
        baseline = load_records(args.baseline, like=new)
        try:
            pairs, notes = pair_records(new, baseline, force=args.force)
        except MismatchError as err:
            report_error(MismatchError(f"refusing to compare: {err}"), debugging(args))
            return EXIT_USAGE
        results = [compare_records(n, b, args.tolerance, args.per_class_tolerance) for n, b in pairs]
        for note in notes:
            print(f"note: {note}")
        print("\n\n".join(format_comparison(r) for r in results))
        regressed = [r for r in results if r.regressions]
        print()
        if regressed:
            for r in regressed:
                print(f"REGRESSION {r.regression_message()}")
            return EXIT_FAILED
        print(f"OK: no regression (mIoU tolerance {args.tolerance:g}, per-class tolerance "
              f"{args.per_class_tolerance:g}) on {', '.join(r.dataset for r in results)}")
        return EXIT_OK

    with console_logging(quiet=True):  # warnings (e.g. damaged history rows) on stderr
        return run(body, args, EXIT_USAGE)


if __name__ == "__main__":
    sys.exit(main())
