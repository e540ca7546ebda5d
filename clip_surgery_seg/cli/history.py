"""``css-history`` / ``tools/history.py``: the evaluation history as a table, and mIoU over time."""
from __future__ import annotations

import sys
from typing import List, Optional

from ..errors import ConfigError
from . import EXIT_OK, EXIT_USAGE, ToolParser, add_debug_flag, console_logging, invoked_as, positive_int, run

HISTORY_VIEW = ("time", "dataset", "method", "protocol", "postprocess", "mIoU", "aAcc", "mAcc", "num_images", "model", "pretrained",
                "code_version", "config_hash", "wall_s")


def build_parser(prog: str = "python tools/history.py") -> ToolParser:
    from ..reporting.history import DEFAULT_HISTORY

    parser = ToolParser(
        prog=prog, description="The evaluation history as a table, and mIoU over time.",
        epilog=f"examples:\n  {prog} --dataset ade20k --method sclip clip_surgery --plot miou.png\n"
               f"  {prog} --protocol clearclip --last 10 --format md")
    parser.add_argument("--history", default=DEFAULT_HISTORY, metavar="CSV",
                        help=f"history file (default {DEFAULT_HISTORY})")
    parser.add_argument("--dataset", nargs="+", metavar="NAME", help="only these datasets")
    parser.add_argument("--method", nargs="+", metavar="NAME", help="only these methods (rows from before "
                        "methods were recorded are clip_surgery's)")
    parser.add_argument("--protocol", help="only this protocol")
    parser.add_argument("--last", type=positive_int, metavar="N", help="only the newest N rows (after filtering)")
    parser.add_argument("--format", choices=("text", "md", "csv"), default="text")
    parser.add_argument("--plot", metavar="FILE.png", help="also plot mIoU over time, one line per dataset, method, "
                        "post-processing, protocol (with overridden settings), model and weights")
    add_debug_flag(parser)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser(invoked_as("tools/history.py")).parse_args(argv)

    def body() -> int:
        from ..datasets.catalog import PAPER_ORDER, resolve_many
        from ..reporting.history import read_history
        from ..tables import markdown_table, text_table

        frame = read_history(args.history)
        if args.dataset:
            known = sorted(set(PAPER_ORDER) | set(frame["dataset"]))
            frame = frame[frame["dataset"].isin(resolve_many(args.dataset, known))]
        if args.method:
            unknown = sorted(set(args.method) - set(frame["method"]))
            if unknown:
                raise ConfigError(f"no rows of method {', '.join(map(repr, unknown))} (methods: "
                                  f"{', '.join(sorted(set(frame['method'])) or ['none'])})")
            frame = frame[frame["method"].isin(args.method)]
        if args.protocol:
            if args.protocol not in set(frame["protocol"]):
                raise ConfigError(f"no rows of protocol {args.protocol!r} (protocols: "
                                  f"{', '.join(sorted(set(frame['protocol'])) or ['none'])})")
            frame = frame[frame["protocol"] == args.protocol]
        if args.last:
            frame = frame.tail(args.last)
        if frame.empty:
            print(f"no rows in {args.history} match", file=sys.stderr)
            return EXIT_OK
        if args.format == "csv":
            sys.stdout.write(frame.drop(columns=["per_class_iou"], errors="ignore").to_csv(index=False,
                                                                                         lineterminator="\n"))
        else:
            view = frame[[c for c in HISTORY_VIEW if c in frame.columns]].copy()
            view["time"] = view["time"].dt.strftime("%Y-%m-%d %H:%M")
            view["config_hash"] = view["config_hash"].astype("str").str[:8]
            view = view.rename(columns={"num_images": "images", "code_version": "code", "config_hash": "config"})
            numeric = [c for c in view.columns if str(view[c].dtype).startswith(("float", "int"))]
            rows = [[_cell(v) for v in row] for row in view.itertuples(index=False)]
            if args.format == "md":
                sys.stdout.write(markdown_table(list(view.columns), rows, numeric))
            else:
                sys.stdout.write(text_table(list(view.columns), rows, numeric, rule=False) + "\n")
        if args.plot:
            from ..reporting.plots import plot_history

            plot_history(frame, args.plot)
            print(f"wrote {args.plot}", file=sys.stderr)
        return EXIT_OK

    with console_logging(quiet=True):  # warnings (e.g. damaged history rows) on stderr
        return run(body, args, EXIT_USAGE)


def _cell(value) -> str:
    if isinstance(value, float):
        return "nan" if value != value else f"{value:.2f}"
    return "" if value is None else str(value)


if __name__ == "__main__":
    sys.exit(main())
