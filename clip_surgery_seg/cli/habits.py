"""What users of mmsegmentation's ``tools/test.py`` type out of habit, answered in one line each.

What maps onto this harness is accepted where the tool parses it (``--device cuda:0``,
``--local_rank N``, ``tools/test.py CONFIG CHECKPOINT``); the options below have no equivalent and
get one line naming what to do instead. SCLIP's and mmseg's config keys (``model.slide_crop``, ...)
are answered where ``--cfg-options`` are checked (:data:`clip_surgery_seg.engine.config.FOREIGN_KEYS`).
"""
from __future__ import annotations

from typing import Dict

from . import as_invoked

WEIGHTS_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors", ".ckpt")


def eval_habits(prog: str) -> Dict[str, str]:
    """Option (or ``"option value"``) -> the answer, for ``tools/eval.py`` run as ``prog``."""
    no_tta = ("{}: no test-time augmentation in this harness; the protocol fixes one scale and the sliding "
              "windows (--cfg-options protocol.short_side=... protocol.crop_size=... protocol.stride=...)")
    show = ("{} opens a window in mmseg; here --show-dir DIR writes a panel per image (image, ground truth, "
            "prediction, errors)")
    gpu = "{} is mmseg 0.x's; pass --device cuda:N (or cuda for the first GPU)"
    torchrun = as_invoked("torchrun --nproc-per-node N tools/eval.py")
    launcher = ("--launcher {} is not supported; start one process per GPU with torchrun (under a scheduler too): "
                f"{torchrun} CONFIG --launcher pytorch")
    answers = {
        "--out": ("--out is mmseg's file of raw results; here metrics are written to <work-dir>/metrics.json "
                  "(default work_dirs/<config>/): use --work-dir DIR, and --save-preds DIR for the label maps"),
        "--tta": no_tta.format("--tta"),
        "--aug-test": no_tta.format("--aug-test"),
        "--show": show.format("--show"),
        "--wait-time": show.format("--wait-time (with --show)"),
        "--eval": ("--eval is mmseg 0.x's metric choice; mIoU, mAcc and aAcc are always computed "
                   "(<work-dir>/metrics.json)"),
        "--gpu-id": gpu.format("--gpu-id"),
        "--gpu-ids": gpu.format("--gpu-ids"),
        "--gpu-collect": "--gpu-collect is not needed: a --launcher pytorch run sums its processes' counts itself",
        "--tmpdir": "--tmpdir is not needed: a --launcher pytorch run sums its processes' counts itself",
    }
    for name in ("slurm", "mpi"):
        answers[f"--launcher {name}"] = launcher.format(name)
    return answers


def looks_like_weights(path: str) -> bool:
    """A file name of a checkpoint, as mmseg's ``tools/test.py CONFIG CHECKPOINT`` takes it."""
    return str(path).lower().endswith(WEIGHTS_SUFFIXES)
