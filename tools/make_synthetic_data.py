#!/usr/bin/env python
"""Write small synthetic datasets in the real layouts: python tools/make_synthetic_data.py ade20k"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's package, installed or not

from clip_surgery_seg.cli.make_synthetic import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
