"""``css-compare`` / ``tools/compare.py``: compare results against a baseline; exit 1 on a regression."""
from __future__ import annotations

import sys
from typing import List, Optional

from ..errors import MismatchError
from . import (EXIT_FAILED, EXIT_OK, EXIT_USAGE, ToolParser, add_debug_flag, console_logging, debugging, invoked_as,
               report_error, run, tolerance)
from .report import SELECTION_HELP


def build_parser(prog: str = "python tools/compare.py") -> ToolParser:
    parser = ToolParser(
        prog=prog,
        description="Compare NEW results against BASELINE results: summary metrics and the classes that\n"
                    "moved. Exit 0: no regression; 1: mIoU dropped by more than --tolerance or a class IoU\n"
                    "by more than --per-class-tolerance; 2: bad input, no baseline of NEW's kind, or a\n"
                    "baseline of another kind (dataset, method, protocol and its overridden settings,\n"
                    "post-processing, model, model config, weights).",
        epilog="A history selection as BASELINE picks, for each result in NEW, a row of the same kind "
               "(a part named by a filter, e.g. method=sclip, is yours to choose), never NEW itself.\n\n"
               "examples:\n"
               f"  {prog} work_dirs/ade20k/metrics.json results/history.csv:ade20k@latest\n"
               f"  {prog} work_dirs/reproduce/RUN results/history.csv@-2 --tolerance 0.2\n"
               f"  {prog} results/history.csv@latest results/history.csv@3f2a9c1")
    parser.add_argument("new", metavar="NEW", help=SELECTION_HELP)
    parser.add_argument("baseline", metavar="BASELINE", help="the same kinds as NEW")
    parser.add_argument("--tolerance", type=tolerance, default=0.1,
                        help="allowed mIoU drop in points, a finite number >= 0 (default 0.1)")
    parser.add_argument("--per-class-tolerance", type=tolerance, default=1.0,
                        help="allowed drop of one class's IoU in points, a finite number >= 0 (default 1.0)")
    parser.add_argument("--force", action="store_true",
                        help="compare even a baseline of another kind (protocol, post-processing, model, "
                             "weights: with a warning) or other datasets (only the common ones)")
    add_debug_flag(parser)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser(invoked_as("tools/compare.py")).parse_args(argv)

    def body() -> int:
        from ..reporting.compare import compare_records, format_comparison, pair_records
        from ..reporting.records import load_records

        new = load_records(args.new)
        notes: List[str] = []
        baseline = load_records(args.baseline, like=new, force=args.force, notes=notes)
        try:
            pairs, paired_notes, warnings = pair_records(new, baseline, force=args.force)
        except MismatchError as err:
            report_error(MismatchError(f"refusing to compare: {err}"), debugging(args))
            return EXIT_USAGE
        results = [compare_records(n, b, args.tolerance, args.per_class_tolerance) for n, b in pairs]
        for warning in warnings:  # a forced comparison with a baseline of another kind: loud, on stderr
            print(f"warning: {warning}", file=sys.stderr)
        for note in notes + paired_notes:
            print(f"note: {note}")
        print("\n\n".join(format_comparison(r) for r in results))
        regressed = [r for r in results if r.regressions]
        print()
        if regressed:
            for r in regressed:
                print(f"REGRESSION {r.regression_message()}")
            return EXIT_FAILED
        unlike = f" (forced: {len(warnings)} baseline(s) of another kind, see the warnings)" if warnings else ""
        print(f"OK: no regression (mIoU tolerance {args.tolerance:g}, per-class tolerance "
              f"{args.per_class_tolerance:g}) on {', '.join(r.dataset for r in results)}{unlike}")
        return EXIT_OK

    with console_logging(quiet=True):  # warnings (e.g. damaged history rows) on stderr
        return run(body, args, EXIT_USAGE)


if __name__ == "__main__":
    sys.exit(main())
