#!/usr/bin/env python
"""mmseg's habit: python tools/test.py CONFIG CHECKPOINT [options] is tools/eval.py CONFIG --pretrained CHECKPOINT."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's package, installed or not

from clip_surgery_seg.cli.eval import mmseg_test_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(mmseg_test_main())
