"""``css-eval`` / ``tools/eval.py``: evaluate training-free segmentation on a dataset from a config file."""
from __future__ import annotations

import argparse
import logging
import os
import shlex
import signal
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import List, Optional

from . import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, add_debug_flag, add_log_file, console_logging, debugging, run

logger = logging.getLogger("clip_surgery_seg")

USAGE_EXAMPLES = """examples:
  python tools/eval.py configs/ade20k.py
  python tools/eval.py configs/cityscapes.py --data-root /datasets --device cuda
  python tools/eval.py configs/ade20k.py --protocol clearclip --precision fp32
  python tools/eval.py configs/ade20k.py --method sclip          (= configs/sclip/ade20k.py)
  python tools/eval.py configs/ade20k.py --model ViT-L-14 --pretrained openai --cfg-options model.method.depth=8
  torchrun --nproc-per-node 8 tools/eval.py configs/coco_stuff171.py --launcher pytorch
"""


def build_parser(prog: str = "tools/eval.py") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="Training-free segmentation with a frozen CLIP: evaluate mIoU on a dataset and "
        "write <work-dir>/metrics.json.", epilog=USAGE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", nargs="?", help="experiment config, e.g. configs/ade20k.py (or a name: ade20k)")
    parser.add_argument("--config", dest="config_option", metavar="CONFIG", help="the same, as an option")
    parser.add_argument("--data-root", help="folder holding the datasets (default: data/)")
    parser.add_argument("--work-dir", help="where metrics.json, progress and logs go (default: work_dirs/<config>)")
    parser.add_argument("--model", help="open_clip model name or model-config JSON (overrides the config)")
    parser.add_argument("--pretrained", help="open_clip tag (openai, ...), weights file, or none for random weights")
    parser.add_argument("--protocol", help="evaluation protocol: sclip (the configs' default) or clearclip")
    parser.add_argument("--method", help="replace the config's method by this one, with its defaults: vanilla, "
                        "maskclip, sclip, clearclip, naclip, clip_surgery (then --cfg-options model.method.KEY=...)")
    parser.add_argument("--limit", type=int, help="evaluate only the first N images (sorted), for smoke runs")
    parser.add_argument("--save-preds", metavar="DIR", help="write each prediction as DIR/<image stem>.png")
    parser.add_argument("--show-dir", metavar="DIR", help="write a panel per image as DIR/<image stem>.png: image | "
                        "ground truth / prediction | errors, in the dataset's palette")
    parser.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available")
    parser.add_argument("--precision", choices=("fp32", "fp16", "bf16", "auto"),
                        help="image-encoder autocast (default: the config's; auto = fp16 on GPU, fp32 on CPU)")
    parser.add_argument("--launcher", choices=("none", "pytorch"), default="none",
                        help="pytorch: one process per GPU under torchrun; images are sharded")
    parser.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE",
                        help="override config settings, e.g. model.feature_surgery=weighted model.method.depth=4 protocol.short_side=448 "
                             "'model.templates=[\"a photo of a {}.\"]'")
    parser.add_argument("--resume", action="store_true",
                        help="continue the interrupted run in the work dir (same config, model and data)")
    parser.add_argument("--skip-bad", action="store_true",
                        help="leave unreadable or unpaired files out, list them, and mark the results partial")
    parser.add_argument("--history", metavar="CSV", help="also record the result in this history file "
                        "(e.g. results/history.csv) if it measured the full split with real weights")
    parser.add_argument("--record-any-run", action="store_true",
                        help="with --history: record even a run with random weights or fewer images than the split")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or per-class table")
    add_debug_flag(parser)
    return parser


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _resume_command(argv: List[str]) -> str:
    args = list(argv) + ([] if "--resume" in argv else ["--resume"])
    return " ".join(["python", "tools/eval.py"] + [shlex.quote(a) for a in args])


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if bool(args.config) == bool(args.config_option):
        parser.error("give the config once: CONFIG or --config CONFIG")
    with console_logging(args.quiet):
        return run(lambda: _evaluate(args, argv), args, EXIT_FAILED)


def _evaluate(args: argparse.Namespace, argv: List[str]) -> int:
    from ..engine.config import parse_cfg_options
    from ..errors import ConfigError
    from ..fileio import check_writable
    from ..engine.results import format_results
    from ..engine.runner import EvalOptions, EvaluationInterrupted, default_work_dir, evaluate

    if args.limit is not None and args.limit < 1:
        raise ConfigError("--limit must be a positive number of images")
    config = args.config or args.config_option
    opts = EvalOptions(config=config, data_root=args.data_root, work_dir=args.work_dir, model=args.model,
                       protocol=args.protocol, method=args.method, limit=args.limit, save_preds=args.save_preds,
                       show_dir=args.show_dir, device=args.device,
                       precision=args.precision, launcher=args.launcher,
                       cfg_options=parse_cfg_options(args.cfg_options), resume=args.resume,
                       skip_bad=args.skip_bad, progress=not args.quiet)
    if args.pretrained is not None:
        opts.pretrained = args.pretrained
    work_dir = Path(opts.work_dir) if opts.work_dir else default_work_dir(config)
    check_writable(work_dir, "--work-dir")
    if args.history:  # before the run, not after it
        check_writable(Path(args.history).parent, "--history folder")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    rank = os.environ.get("RANK", "0") if args.launcher == "pytorch" else "0"
    log = add_log_file(work_dir / "logs" / f"{stamp}{'' if rank == '0' else f'.rank{rank}'}.log")
    logger.info("%s", " ".join(["tools/eval.py"] + [shlex.quote(a) for a in argv]))
    previous_sigterm = signal.signal(signal.SIGTERM, _raise_interrupt)  # `kill` stops as cleanly as Ctrl-C
    try:
        results = evaluate(opts)
    except EvaluationInterrupted as stop:
        print(f"\n{stop}; resume with:\n  {_resume_command(argv)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print("\ninterrupted before any image was evaluated; nothing to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)
        logging.getLogger("clip_surgery_seg").removeHandler(log)
        log.close()
    if "schema" in results:  # rank 0
        print(format_results(results, per_class=not args.quiet))
        _write_report(work_dir, args)
        if args.history:
            from ..reporting.history import append_history

            append_history(args.history, results, any_run=args.record_any_run)
    return EXIT_OK


def _write_report(work_dir: Path, args: argparse.Namespace) -> None:
    """``<work-dir>/report.html``, after metrics.json: a report that cannot be written is said in one
    line (with its traceback when it is a bug), and the run still succeeds: its numbers are saved."""
    from ..errors import UserError
    from ..reporting.html_report import write_work_dir_report

    try:
        page = write_work_dir_report(work_dir)
    except Exception as err:  # noqa: BLE001 - metrics.json is written; the page must not fail the run
        logger.warning("warning: report not written (%s: %s); %s is complete", type(err).__name__,
                       " ".join(str(err).split()), work_dir / "metrics.json",
                       exc_info=debugging(args) or not isinstance(err, (UserError, OSError)))
    else:
        print(f"report: {page}")


if __name__ == "__main__":
    sys.exit(main())
