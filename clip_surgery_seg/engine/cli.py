"""``tools/eval.py``: evaluate CLIP Surgery segmentation on a dataset from a config file."""
from __future__ import annotations

import argparse
import logging
import shlex
import signal
import sys
import warnings
from typing import List, Optional

from mmengine.config import DictAction

USAGE_EXAMPLES = """examples:
  python tools/eval.py configs/ade20k.py
  python tools/eval.py configs/cityscapes.py --data-root /datasets --device cuda
  python tools/eval.py configs/ade20k.py --model ViT-L-14 --pretrained openai --cfg-options model.method.depth=8
  torchrun --nproc-per-node 8 tools/eval.py configs/coco_stuff171.py --launcher pytorch
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tools/eval.py", description="Training-free CLIP Surgery segmentation: evaluate mIoU on a "
        "dataset and write <work-dir>/metrics.json.", epilog=USAGE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="experiment config, e.g. configs/ade20k.py")
    parser.add_argument("--data-root", help="folder holding the datasets (default: data/)")
    parser.add_argument("--work-dir", help="where metrics.json and progress go (default: work_dirs/<config>)")
    parser.add_argument("--model", help="open_clip model name or model-config JSON (overrides the config)")
    parser.add_argument("--pretrained", help="open_clip tag (openai, ...), weights file, or none for random weights")
    parser.add_argument("--limit", type=int, help="evaluate only the first N images (sorted), for smoke runs")
    parser.add_argument("--save-preds", metavar="DIR", help="write each prediction as DIR/<image stem>.png")
    parser.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available")
    parser.add_argument("--precision", choices=("fp32", "fp16", "bf16", "auto"),
                        help="image-encoder autocast (default: the config's; auto = fp16 on GPU, fp32 on CPU)")
    parser.add_argument("--launcher", choices=("none", "pytorch"), default="none",
                        help="pytorch: one process per GPU under torchrun; images are sharded")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, default={}, metavar="KEY=VALUE",
                        help="override config settings, e.g. model.method.depth=4 test_dataloader.num_workers=8")
    parser.add_argument("--resume", action="store_true",
                        help="continue the interrupted run in the work dir (same config, model and data)")
    parser.add_argument("--skip-bad", action="store_true",
                        help="leave unreadable or unpaired files out, list them, and mark the results partial")
    parser.add_argument("--history", metavar="CSV", help="also append the result to this history file "
                        "(e.g. results/history.csv)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or per-class table")
    return parser


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _resume_command(argv: List[str]) -> str:
    args = list(argv) + ([] if "--resume" in argv else ["--resume"])
    return " ".join(["python", "tools/eval.py"] + [shlex.quote(a) for a in args])


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.limit is not None and args.limit < 1:
        print("error: --limit must be a positive number of images", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("clip_surgery_seg").setLevel(logging.WARNING if args.quiet else logging.INFO)
    warnings.filterwarnings("ignore", module="mmengine")

    from ..datasets.classnames import ClassNamesError
    from ..datasets.layout import DataLayoutError
    from ..datasets.transforms import BadSampleError
    from ..models.clip_loader import WeightsError
    from .config import ConfigError
    from .progress import ResumeError
    from .runner import EvalOptions, EvaluationInterrupted, evaluate, format_results

    opts = EvalOptions(config=args.config, data_root=args.data_root, work_dir=args.work_dir, model=args.model,
                       limit=args.limit, save_preds=args.save_preds, device=args.device, precision=args.precision,
                       launcher=args.launcher, cfg_options=args.cfg_options, resume=args.resume,
                       skip_bad=args.skip_bad, history=args.history, progress=not args.quiet)
    if args.pretrained is not None:
        opts.pretrained = args.pretrained
    previous_sigterm = signal.signal(signal.SIGTERM, _raise_interrupt)  # `kill` stops as cleanly as Ctrl-C
    try:
        results = evaluate(opts)
    except EvaluationInterrupted as stop:
        print(f"\n{stop}; resume with:\n  {_resume_command(argv)}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("\ninterrupted before any image was evaluated; nothing to resume", file=sys.stderr)
        return 130
    except (ConfigError, DataLayoutError, ClassNamesError, WeightsError, BadSampleError, ResumeError,
            FileNotFoundError, ValueError, NotImplementedError) as err:
        print("error: " + " ".join(str(err).split()), file=sys.stderr)  # one line
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)
    if "schema" in results:  # rank 0
        print(format_results(results, per_class=not args.quiet))
    return 0
