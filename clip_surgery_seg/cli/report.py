"""``css-report`` / ``tools/report.py``: the methods x datasets table rebuilt from results."""
from __future__ import annotations

import sys
from typing import List, Optional

from . import EXIT_OK, EXIT_USAGE, ToolParser, add_debug_flag, console_logging, invoked_as, run, write_or_print

SELECTION_HELP = ("a metrics.json, a work dir holding one, a reproduce run folder, or a history selection "
                  "PATH.csv[:DATASET,KEY=VALUE...][@latest|@-N|@COMMIT], e.g. results/history.csv:ade20k@-2")


def build_parser(prog: str = "python tools/report.py") -> ToolParser:
    parser = ToolParser(
        prog=prog,
        description="The methods x datasets table rebuilt from results: per method (and protocol,\n"
                    "post-processing, model) and dataset, our mIoU beside the published one, and the\n"
                    "average. With several results for a cell the newest is used (its note says so).",
        epilog=f"examples:\n  {prog} work_dirs/reproduce/20250101T120000Z_sclip\n"
               f"  {prog} results/history.csv:protocol=sclip --format csv\n"
               f"  {prog} results/history.csv:method=sclip --plot sclip.png\n"
               f"  {prog} work_dirs/ade20k work_dirs/sclip/ade20k --out table.md")
    parser.add_argument("results", nargs="+", metavar="RUN_DIR_OR_METRICS", help=SELECTION_HELP)
    parser.add_argument("--format", choices=("md", "csv"), default="md", help="table format (default md)")
    parser.add_argument("--plot", metavar="FILE.png", help="also draw ours vs published as bars")
    parser.add_argument("--out", metavar="FILE", help="write the table here instead of printing it")
    parser.add_argument("--paper", metavar="CSV", help="published numbers (default results/paper.csv)")
    add_debug_flag(parser)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser(invoked_as("tools/report.py")).parse_args(argv)

    def body() -> int:
        from ..reporting.paper import load_paper, methods_table, to_csv, to_markdown
        from ..reporting.records import load_many

        records = load_many(args.results)
        table = methods_table(records, load_paper(args.paper))
        write_or_print(to_csv(table) if args.format == "csv" else to_markdown(table), args.out)
        if args.plot:
            from ..reporting.plots import plot_methods_table

            plot_methods_table(table, args.plot)
            print(f"wrote {args.plot}", file=sys.stderr)
        return EXIT_OK

    with console_logging(quiet=True):  # warnings (e.g. damaged history rows) on stderr
        return run(body, args, EXIT_USAGE)


if __name__ == "__main__":
    sys.exit(main())
