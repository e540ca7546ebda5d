"""The command lines of ``tools/report.py``, ``tools/compare.py``, ``tools/history.py`` and
``tools/reproduce.py``. Each ``*_main(argv)`` returns the exit code (see ``errors``); bad input
prints one ``error: ...`` line."""
from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path
from typing import Callable, List, Optional

from ..errors import MismatchError, ReportingError
from .errors import EXIT_OK, EXIT_REGRESSION, EXIT_USAGE

SELECTION_HELP = ("a metrics.json, a work dir holding one, a reproduce run folder, or a history selection "
                  "PATH.csv[:DATASET,KEY=VALUE...][@latest|@-N|@COMMIT], e.g. results/history.csv:ade20k@-2")


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _guarded(run: Callable[[], int]) -> int:
    """Turn the tools' input errors into one line and exit code 2."""
    from ..engine.history import HistoryError

    try:
        return run()
    except (ReportingError, HistoryError) as err:
        return _error(str(err))


def _write_or_print(text: str, out: Optional[str]) -> None:
    if out:
        from ..fileio import atomic_write_text

        atomic_write_text(out, text)
        print(f"wrote {out}", file=sys.stderr)
    else:
        sys.stdout.write(text)


# --- report -------------------------------------------------------------------------------------

def report_parser() -> argparse.ArgumentParser:
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
    return parser


def report_main(argv: Optional[List[str]] = None) -> int:
    args = report_parser().parse_args(argv)

    def run() -> int:
        from .paper import load_paper, paper_table, sources_note, to_csv, to_markdown
        from .records import load_many

        records = load_many(args.results)
        paper = load_paper(args.paper)
        table = paper_table(records, paper, all_results=args.all, baselines=args.baselines)
        text = to_csv(table) if args.format == "csv" else to_markdown(table) + "\n" + sources_note(paper) + "\n"
        _write_or_print(text, args.out)
        if args.plot:
            from .plots import plot_paper_table

            plot_paper_table(table, args.plot)
            print(f"wrote {args.plot}", file=sys.stderr)
        return EXIT_OK

    return _guarded(run)


# --- compare ------------------------------------------------------------------------------------

def compare_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tools/compare.py", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Compare NEW results against BASELINE results: summary metrics and the classes that\n"
                    "moved. Exit 0: no regression; 1: mIoU dropped by more than --tolerance or a class IoU\n"
                    "by more than --per-class-tolerance; 2: bad input, or other datasets/protocols.",
        epilog="A history selection as BASELINE without a dataset picks, for each dataset in NEW, a row of "
               "NEW's protocol, never NEW itself.\n\nexamples:\n"
               "  python tools/compare.py work_dirs/ade20k/metrics.json results/history.csv:ade20k@latest\n"
               "  python tools/compare.py work_dirs/reproduce/RUN results/history.csv@-2 --tolerance 0.2\n"
               "  python tools/compare.py results/history.csv@latest results/history.csv@3f2a9c1")
    parser.add_argument("new", metavar="NEW", help=SELECTION_HELP)
    parser.add_argument("baseline", metavar="BASELINE", help="the same kinds as NEW")
    parser.add_argument("--tolerance", type=float, default=0.1, help="allowed mIoU drop in points (default 0.1)")
    parser.add_argument("--per-class-tolerance", type=float, default=1.0,
                        help="allowed drop of one class's IoU in points (default 1.0)")
    parser.add_argument("--force", action="store_true",
                        help="compare even across protocols or datasets (only the common datasets)")
    return parser


def compare_main(argv: Optional[List[str]] = None) -> int:
    args = compare_parser().parse_args(argv)
    if args.tolerance < 0 or args.per_class_tolerance < 0:
        return _error("tolerances must not be negative")

    def run() -> int:
        from .compare import compare_records, format_comparison, pair_records
        from .records import load_records

        new = load_records(args.new)
        baseline = load_records(args.baseline, like=new)
        try:
            pairs, notes = pair_records(new, baseline, force=args.force)
        except MismatchError as err:
            return _error(f"refusing to compare: {err}")
        results = [compare_records(n, b, args.tolerance, args.per_class_tolerance) for n, b in pairs]
        for note in notes:
            print(f"note: {note}")
        print("\n\n".join(format_comparison(r) for r in results))
        regressed = [r for r in results if r.regressions]
        print()
        if regressed:
            for r in regressed:
                print(f"REGRESSION {r.regression_message()}")
            return EXIT_REGRESSION
        print(f"OK: no regression (mIoU tolerance {args.tolerance:g}, per-class tolerance "
              f"{args.per_class_tolerance:g}) on {', '.join(r.dataset for r in results)}")
        return EXIT_OK

    return _guarded(run)


# --- history ------------------------------------------------------------------------------------

HISTORY_VIEW = ("time", "dataset", "protocol", "mIoU", "aAcc", "mAcc", "num_images", "model", "pretrained",
                "code_version", "config_hash", "wall_s")


def history_parser() -> argparse.ArgumentParser:
    from ..engine.history import DEFAULT_HISTORY

    parser = argparse.ArgumentParser(
        prog="tools/history.py", description="The evaluation history as a table, and mIoU over time.")
    parser.add_argument("--history", default=DEFAULT_HISTORY, metavar="CSV",
                        help=f"history file (default {DEFAULT_HISTORY})")
    parser.add_argument("--dataset", nargs="+", metavar="NAME", help="only these datasets")
    parser.add_argument("--protocol", help="only this protocol")
    parser.add_argument("--last", type=int, metavar="N", help="only the newest N rows (after filtering)")
    parser.add_argument("--format", choices=("text", "md", "csv"), default="text")
    parser.add_argument("--plot", metavar="FILE.png", help="also plot mIoU over time per dataset")
    return parser


def history_main(argv: Optional[List[str]] = None) -> int:
    args = history_parser().parse_args(argv)
    if args.last is not None and args.last < 1:
        return _error("--last must be a positive number of rows")

    def run() -> int:
        from ..engine.history import read_history
        from .datasets import PAPER_ORDER, resolve_datasets
        from .paper import to_markdown

        frame = read_history(args.history)
        if args.dataset:
            known = sorted(set(PAPER_ORDER) | set(frame["dataset"]))
            frame = frame[frame["dataset"].isin(resolve_datasets(args.dataset, known))]
        if args.protocol:
            if args.protocol not in set(frame["protocol"]):
                return _error(f"no rows of protocol {args.protocol!r} (protocols: "
                              f"{', '.join(sorted(set(frame['protocol'])) or ['none'])})")
            frame = frame[frame["protocol"] == args.protocol]
        if args.last:
            frame = frame.tail(args.last)
        if frame.empty:
            print(f"no rows in {args.history} match", file=sys.stderr)
            return EXIT_OK
        view = frame[[c for c in HISTORY_VIEW if c in frame.columns]].copy()
        view["time"] = view["time"].dt.strftime("%Y-%m-%d %H:%M")
        view["config_hash"] = view["config_hash"].astype("str").str[:8]
        view = view.rename(columns={"num_images": "images", "code_version": "code", "config_hash": "config"})
        if args.format == "csv":
            text = frame.drop(columns=["per_class_iou"], errors="ignore").to_csv(index=False, lineterminator="\n")
        elif args.format == "md":
            text = to_markdown(view)
        else:
            text = view.to_string(index=False, float_format=lambda v: f"{v:.2f}") + "\n"
        sys.stdout.write(text)
        if args.plot:
            from .plots import plot_history

            plot_history(frame, args.plot)
            print(f"wrote {args.plot}", file=sys.stderr)
        return EXIT_OK

    return _guarded(run)


# --- reproduce ----------------------------------------------------------------------------------

def reproduce_parser() -> argparse.ArgumentParser:
    from mmengine.config import DictAction

    from ..engine.history import DEFAULT_HISTORY

    parser = argparse.ArgumentParser(
        prog="tools/reproduce.py", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Reproduce the paper's table: evaluate the four dataset configs of a protocol into one\n"
                    "run folder (<dataset>/metrics.json, summary.json, table.md, table.csv, table.png).\n"
                    "Exit 0: all chosen datasets ran; 3: some had missing or unusable data (the others\n"
                    "ran); 1: some failed; 2: bad arguments.",
        epilog="examples:\n  python tools/reproduce.py\n"
               "  python tools/reproduce.py --datasets ade20k cityscapes --protocol clearclip --device cuda\n"
               "  python tools/reproduce.py --data-root /datasets --history none")
    parser.add_argument("--datasets", nargs="+", metavar="NAME",
                        help="default: all four (pascal_context59 coco_stuff171 cityscapes ade20k)")
    parser.add_argument("--protocol", help="sclip (default: configs/*.py) or clearclip (configs/clearclip/)")
    parser.add_argument("--data-root", help="folder holding the datasets (default: data/)")
    parser.add_argument("--out", "--work-dir", dest="out", metavar="DIR",
                        help="run folder (default: work_dirs/reproduce/<UTC time>_<protocol>)")
    parser.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available")
    parser.add_argument("--model", help="open_clip model name or model-config JSON (overrides the configs)")
    parser.add_argument("--pretrained", help="open_clip tag, weights file, or none for random weights")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, default={}, metavar="KEY=VALUE",
                        help="override settings of every config, e.g. test_dataloader.num_workers=8")
    parser.add_argument("--limit", type=int, help="only the first N images per dataset (smoke run; such "
                        "results are not recorded in the history)")
    parser.add_argument("--history", default=DEFAULT_HISTORY, metavar="CSV",
                        help=f"record results here (default {DEFAULT_HISTORY}); none: do not record")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def reproduce_main(argv: Optional[List[str]] = None) -> int:
    args = reproduce_parser().parse_args(argv)
    if args.limit is not None and args.limit < 1:
        return _error("--limit must be a positive number of images")
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("clip_surgery_seg").setLevel(logging.WARNING if args.quiet else logging.INFO)
    warnings.filterwarnings("ignore", module="mmengine")

    from ..engine.runner import EvaluationInterrupted
    from .datasets import PAPER_ORDER, resolve_datasets
    from .reproduce import ReproduceOptions, run_reproduction

    try:
        opts = ReproduceOptions(datasets=resolve_datasets(args.datasets) if args.datasets else list(PAPER_ORDER),
                                protocol=args.protocol, data_root=args.data_root, out=args.out,
                                device=args.device, model=args.model, cfg_options=args.cfg_options,
                                limit=args.limit, progress=not args.quiet,
                                history=None if str(args.history).lower() == "none" else args.history)
        if args.pretrained is not None:
            opts.pretrained = args.pretrained
        summary = run_reproduction(opts)
    except ReportingError as err:
        return _error(str(err))
    except EvaluationInterrupted as stop:
        print(f"\n{stop}", file=sys.stderr)
        return 130
    run_dir = Path(summary["run_dir"])
    for name, entry in summary["datasets"].items():
        if entry["status"] == "ran":
            recorded = " (recorded in the history)" if entry.get("recorded") else ""
            print(f"{name}: mIoU {entry['mIoU']:.2f} on {entry['num_images']} images{recorded}")
        else:
            print(f"{name}: {entry['status'].replace('_', ' ').upper()}: {entry['reason']}")
    table = run_dir / "table.md"
    if table.is_file():
        print()
        print(table.read_text(), end="")
    print(f"\nrun folder: {run_dir}")
    return int(summary["exit_code"])
