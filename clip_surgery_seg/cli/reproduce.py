"""``css-reproduce`` / ``tools/reproduce.py``: the field's table, every method on every dataset under one protocol."""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import List, Optional

from . import (EXIT_FAILED, EXIT_INTERRUPTED, EXIT_MISSING_DATA, EXIT_OK, EXIT_USAGE, ToolParser, add_cfg_options_flag,
               add_debug_flag, add_device_flag, add_resize_flag, as_invoked, command_line, console_logging, invoked_as,
               run)

EXIT_CODES = {"ran": EXIT_OK, "missing_data": EXIT_MISSING_DATA, "failed": EXIT_FAILED}


def build_parser(prog: str = "python tools/reproduce.py") -> ToolParser:
    from .. import protocols
    from ..reporting.history import DEFAULT_HISTORY

    parser = ToolParser(
        prog=prog,
        description="Reproduce the field's table: evaluate each method on each dataset under one protocol\n"
                    "into one run folder (<method>/<dataset>/metrics.json, summary.json, and the methods x\n"
                    "datasets table, ours beside the published numbers: table.md, table.csv, table.png).\n"
                    "The CLIP is loaded once per dataset for all methods. Exit 0: everything chosen ran;\n"
                    "3: some datasets had missing or unusable data (the rest ran); 1: some runs failed;\n"
                    "2: bad arguments.",
        epilog=f"examples:\n  {prog}\n"
               f"  {prog} --methods sclip clip_surgery --datasets ade20k cityscapes --device cuda\n"
               f"  {prog} --protocol clearclip --data-root /datasets --history none\n"
               f"  {prog} --out work_dirs/reproduce/RUN --resume     (continue an interrupted run)")
    parser.add_argument("--methods", nargs="+", metavar="NAME",
                        help=f"default: all ({' '.join(_methods())}), run in that order")
    parser.add_argument("--datasets", nargs="+", metavar="NAME",
                        help=f"default: all, in the tables' order ({' '.join(_datasets())})")
    parser.add_argument("--protocol", default=protocols.DEFAULT_PROTOCOL,
                        help=f"one of {', '.join(protocols.available())} (default {protocols.DEFAULT_PROTOCOL}), or "
                        "native: each method under the protocol of its own published numbers, with the "
                        "post-processing its code applies (NACLIP: naclip + PAMR), so that each cell compares "
                        "like with like")
    parser.add_argument("--data-root", help="folder holding the datasets (default: data/)")
    parser.add_argument("--out", "--work-dir", dest="out", metavar="DIR",
                        help="run folder (default: work_dirs/reproduce/<UTC time>_<protocol>)")
    add_device_flag(parser)
    add_resize_flag(parser)
    parser.add_argument("--precision", choices=("fp32", "fp16", "bf16", "auto"),
                        help="image-encoder autocast (default: the configs')")
    parser.add_argument("--model", help="open_clip model name or model-config JSON (overrides the configs)")
    parser.add_argument("--models", nargs="+", metavar="MODEL",
                        help="several backbones, e.g. ViT-B-16 ViT-L-14: each method on each dataset with each, "
                        "one model load per backbone, one table block per backbone")
    parser.add_argument("--pretrained", help="open_clip tag, weights file, or none for random weights")
    add_cfg_options_flag(parser, "override settings of every config, e.g. test_dataloader.num_workers=8 (given twice: "
                         "both count)")
    parser.add_argument("--limit", type=int, help="only the first N images per dataset (smoke run; "
                        "such results are not recorded in the history)")
    parser.add_argument("--history", default=DEFAULT_HISTORY, metavar="CSV",
                        help=f"record results here (default {DEFAULT_HISTORY}); none: do not record")
    parser.add_argument("--record-any-run", action="store_true",
                        help="record even runs with random weights or fewer images than the split")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out: keep what it finished, continue the rest")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_debug_flag(parser)
    return parser


def _models(args: argparse.Namespace) -> list:
    from ..errors import ConfigError

    if args.models and args.model:
        raise ConfigError("give --model or --models, not both")
    return list(args.models) if args.models else [None]


def _methods() -> List[str]:
    from ..models.methods import METHODS

    return list(METHODS)


def _datasets() -> List[str]:
    from ..datasets.catalog import DATASETS

    return list(DATASETS)


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(invoked_as("tools/reproduce.py"))
    args = parser.parse_args(argv)
    command = command_line(parser.prog, argv)
    with console_logging(args.quiet):
        return run(lambda: _reproduce(args, command), args, EXIT_USAGE)


def _reproduce(args: argparse.Namespace, command: str) -> int:
    from ..datasets.catalog import DATASETS, resolve_many
    from ..engine.config import parse_cfg_options
    from ..engine.reproduce import ReproduceOptions, run_reproduction, write_summary
    from ..engine.runner import EvalOptions, EvaluationInterrupted
    from ..errors import ConfigError

    if args.limit is not None and args.limit < 1:
        raise ConfigError("--limit must be a positive number of images")
    evaluation = EvalOptions(config="", data_root=args.data_root, model=args.model, device=args.device,
                             precision=args.precision, cfg_options=parse_cfg_options(args.cfg_options),
                             resize=args.resize,
                             limit=args.limit, progress=not args.quiet)
    if args.pretrained is not None:
        evaluation.pretrained = args.pretrained
    opts = ReproduceOptions(evaluation=evaluation, protocol=args.protocol, methods=args.methods or _methods(),
                            datasets=resolve_many(args.datasets) if args.datasets else list(DATASETS), out=args.out,
                            history=None if str(args.history).lower() == "none" else args.history,
                            record_any_run=args.record_any_run, resume=args.resume, command=command,
                            models=_models(args))
    try:
        summary = run_reproduction(opts)
    except (EvaluationInterrupted, KeyboardInterrupt) as stop:
        where = f" --out {shlex.quote(opts.out)}" if opts.out and not args.out else ""
        resume = command if "--resume" in command.split() else f"{command}{where} --resume"
        print(f"\ninterrupted{': ' + str(stop) if str(stop) else ''}; continue with:\n  {resume}", file=sys.stderr)
        return EXIT_INTERRUPTED
    run_dir = Path(summary["run_dir"])
    code = EXIT_CODES[summary["status"]]
    summary["exit_code"] = code
    write_summary(run_dir, summary)
    for name, entry in summary["datasets"].items():
        if entry["status"] == "missing_data":
            print(f"{name}: MISSING DATA: {as_invoked(entry['reason'])}")
        for method, outcome in entry["methods"].items():
            if outcome["status"] == "ran":
                recorded = " (recorded in the history)" if outcome.get("recorded") else ""
                print(f"{name}, {method}: mIoU {outcome['mIoU']:.2f} on {outcome['num_images']} images{recorded}")
            else:
                status = outcome["status"].replace("_", " ").upper()
                print(f"{name}, {method}: {status}: {as_invoked(outcome['reason'])}")
    table = run_dir / "table.md"
    if table.is_file():
        print()
        print(table.read_text(), end="")
    print(f"\nrun folder: {run_dir}")
    return code


if __name__ == "__main__":
    sys.exit(main())
