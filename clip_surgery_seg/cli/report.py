"""``css-report`` / ``tools/report.py``: the paper's table rebuilt from results."""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from . import EXIT_OK, EXIT_USAGE, add_debug_flag, console_logging, run, write_or_print

SELECTION_HELP = ("a metrics.json, a work dir holding one, a reproduce run folder, or a history selection "
                  "PATH.csv[:DATASET,KEY=VALUE...][@latest|@-N|@COMMIT], e.g. results/history.csv:ade20k@-2")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tools/report.py", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="The paper's table rebuilt from results: per dataset our mIoU, the paper's, the\n"
                    "difference, protocol, model and date. With several results for a dataset the newest\n"
                    "is used (--all lists each).",
        epilog="examples:\n  python tools/report.py work_dirs/reproduce/20250101T120000Z_sclip\n"
               "  python tools/report.py results/history.csv --format csv\n"
               "  python tools/report.py work_dirs/ade20k work_dirs/cityscapes --plot table.png")
    parser.add_argument("results", nargs="+", metavar="RUN_DIR_OR_METRICS", help=SELECTION_HELP)
    parser.add_argument("--format", choices=("md", "csv"), default="md", help="table format (default md)")
    parser.add_argument("--plot", metavar="FILE.png", help="also draw ours vs paper per dataset")
    parser.add_argument("--out", metavar="FILE", help="write the table here instead of printing it")
    parser.add_argument("--all", action="store_true", help="one row per result, not just the newest per dataset")
    parser.add_argument("--baselines", action="store_true",
                        help="add the published vanilla-CLIP and MaskCLIP numbers (as reported by ClearCLIP)")
    parser.add_argument("--paper", metavar="CSV", help="published numbers (default results/paper.csv)")
    add_debug_flag(parser)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        from ..reporting.paper import load_paper, paper_table, sources_note, to_csv, to_markdown
        from ..reporting.records import load_many

        records = load_many(args.results)
        paper = load_paper(args.paper)
        table = paper_table(records, paper, all_results=args.all, baselines=args.baselines)
        text = to_csv(table) if args.format == "csv" else to_markdown(table) + "\n" + sources_note(paper) + "\n"
        write_or_print(text, args.out)
        if args.plot:
            from ..reporting.plots import plot_paper_table

            plot_paper_table(table, args.plot)
            print(f"wrote {args.plot}", file=sys.stderr)
        return EXIT_OK

    with console_logging(quiet=True):  # warnings (e.g. damaged history rows) on stderr
        return run(body, args, EXIT_USAGE)


if __name__ == "__main__":
    sys.exit(main())
