"""``css-eval`` / ``tools/eval.py``: evaluate training-free segmentation on a dataset from a config file."""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

from . import (EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, ToolParser, add_cfg_options_flag, add_debug_flag,
               add_device_flag, add_resize_flag, as_invoked, command_line, console_logging, invoked_as, run)
from .habits import eval_habits, looks_like_weights

USAGE_EXAMPLES = """examples:
  {prog} configs/ade20k.py
  {prog} configs/cityscapes.py --data-root /datasets --device cuda:0
  {prog} configs/ade20k.py --protocol clearclip --precision fp32
  {prog} configs/ade20k.py --method sclip          (= configs/sclip/ade20k.py)
  {prog} configs/ade20k.py --model ViT-L-14 --pretrained openai --cfg-options model.method.depth=8
  {torchrun} configs/coco_stuff171.py --launcher pytorch
"""


def build_parser(prog: str = "python tools/eval.py") -> ToolParser:
    torchrun = as_invoked("torchrun --nproc-per-node 8 tools/eval.py")
    parser = ToolParser(
        prog=prog, description="Training-free segmentation with a frozen CLIP: evaluate mIoU on a dataset and "
        "write <work-dir>/metrics.json.", epilog=USAGE_EXAMPLES.format(prog=prog, torchrun=torchrun),
        habits=eval_habits(prog), intermixed=True)
    parser.add_argument("config", nargs="?", help="experiment config, e.g. configs/ade20k.py (or a name: ade20k)")
    # mmseg's tools/test.py CONFIG CHECKPOINT: answered in main(), not listed
    parser.add_argument("checkpoint", nargs="?", help=argparse.SUPPRESS)
    parser.add_argument("--config", dest="config_option", metavar="CONFIG", help="the same, as an option")
    parser.add_argument("--data-root", help="folder holding the datasets (default: data/)")
    parser.add_argument("--work-dir", help="where metrics.json, progress and logs go (default: work_dirs/<config>)")
    parser.add_argument("--model", help="open_clip model name or model-config JSON (overrides the config)")
    parser.add_argument("--pretrained", help="open_clip tag (openai, ...), weights file, or none for random weights")
    parser.add_argument("--protocol", help=f"evaluation protocol: {_choices('protocols')} (the configs' default: "
                        "sclip)")
    parser.add_argument("--method", help=f"replace the config's method by this one, with its defaults: "
                        f"{_choices('methods')} (then --cfg-options model.method.KEY=...)")
    parser.add_argument("--limit", type=int, help="evaluate only the first N images (sorted), for smoke runs")
    parser.add_argument("--save-preds", metavar="DIR", help="write each prediction as DIR/<image key>.png (the "
                        "image's path below the image folder, subfolders kept); not in the data or the work dir's "
                        "own folders, e.g. <work-dir>/preds")
    parser.add_argument("--show-dir", metavar="DIR", help="write a panel per image as DIR/<image key>.png: image | "
                        "ground truth / prediction | errors, in the dataset's palette; apart from --save-preds")
    add_device_flag(parser)
    add_resize_flag(parser)
    parser.add_argument("--precision", choices=("fp32", "fp16", "bf16", "auto"),
                        help="image-encoder autocast (default: the config's; auto = fp16 on GPU, fp32 on CPU)")
    parser.add_argument("--launcher", choices=("none", "pytorch"), default="none",
                        help="pytorch: one process per GPU under torchrun; images are sharded")
    # torch.distributed.launch passes it; torchrun's LOCAL_RANK says the same (engine/distributed.py reads that)
    parser.add_argument("--local_rank", "--local-rank", dest="local_rank", type=int, help=argparse.SUPPRESS)
    add_cfg_options_flag(parser, "override config settings, e.g. model.feature_surgery=weighted model.method.depth=4 "
                         "protocol.short_side=448 'model.templates=[\"a photo of a {}.\"]' (given twice: both count)")
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


def _choices(what: str) -> str:
    """The registered methods or the protocol files, for the help text."""
    if what == "methods":
        from ..models.methods import METHODS

        return ", ".join(METHODS)
    from .. import protocols

    return ", ".join(protocols.available())


def _resume_command(prog: str, argv: List[str]) -> str:
    return command_line(prog, list(argv) + ([] if "--resume" in argv else ["--resume"]))


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(invoked_as("tools/eval.py"))
    args = parser.parse_args(argv)
    if args.config_option and args.config and not args.checkpoint and looks_like_weights(args.config):
        args.config, args.checkpoint = None, args.config  # --config CONFIG CHECKPOINT
    if args.checkpoint is not None:
        config = args.config or args.config_option
        if not looks_like_weights(args.checkpoint):
            parser.fail(f"unexpected argument {args.checkpoint!r} after the config {config}: one config per run "
                        "(a weights file goes in --pretrained)")
        parser.fail(f"{args.checkpoint}: a weights file after the config (mmseg's CHECKPOINT) goes in --pretrained: "
                    f"{parser.prog} {config} --pretrained {args.checkpoint}")
    if bool(args.config) == bool(args.config_option):
        parser.error("give the config once: CONFIG or --config CONFIG")
    if args.local_rank is not None and args.launcher == "pytorch":
        os.environ.setdefault("LOCAL_RANK", str(args.local_rank))
    with console_logging(args.quiet):
        return run(lambda: _evaluate(args, argv, parser.prog), args, EXIT_FAILED)


def mmseg_test_main(argv: Optional[List[str]] = None) -> int:
    """``tools/test.py CONFIG CHECKPOINT [options]``, mmseg's command: said to be ``tools/eval.py`` and run
    as it, with CHECKPOINT as ``--pretrained``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) >= 2 and not argv[0].startswith("-") and not argv[1].startswith("-") \
            and not any(a.partition("=")[0] == "--pretrained" for a in argv):
        argv = [argv[0], "--pretrained", argv[1], *argv[2:]]
    if argv and argv[0] not in ("-h", "--help"):
        print(f"note: tools/test.py is mmseg's name; here it is tools/eval.py: "
              f"{command_line('python tools/eval.py', argv)}", file=sys.stderr)
    return main(argv)


def _evaluate(args: argparse.Namespace, argv: List[str], prog: str) -> int:
    from ..engine.config import parse_cfg_options
    from ..engine.runner import EvalOptions
    from ..engine.session import RunInterrupted, run_session
    from ..errors import ConfigError
    from ..results import format_results

    if args.limit is not None and args.limit < 1:
        raise ConfigError("--limit must be a positive number of images")
    config = args.config or args.config_option
    opts = EvalOptions(config=config, data_root=args.data_root, work_dir=args.work_dir, model=args.model,
                       protocol=args.protocol, method=args.method, limit=args.limit, save_preds=args.save_preds,
                       show_dir=args.show_dir, device=args.device,
                       precision=args.precision, launcher=args.launcher, resize=args.resize,
                       cfg_options=parse_cfg_options(args.cfg_options), resume=args.resume,
                       skip_bad=args.skip_bad, progress=not args.quiet)
    if args.pretrained is not None:
        opts.pretrained = args.pretrained
    command = command_line(prog, argv)
    try:
        outcome = run_session(opts, command=command, resume_command=_resume_command(prog, argv),
                              history=args.history, record_any_run=args.record_any_run)
    except RunInterrupted as stop:
        print(f"\n{stop}; resume with:\n  {stop.resume}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print("\ninterrupted before any image was evaluated; nothing to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    if outcome.is_main:
        print(format_results(outcome.results, per_class=not args.quiet))
        if outcome.report is not None:
            print(f"report: {outcome.report}")
        if outcome.history_error is not None:
            raise outcome.history_error
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
