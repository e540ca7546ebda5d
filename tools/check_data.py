#!/usr/bin/env python
"""Verify a prepared validation split: counts, image/label pairing, sizes, label values, unreadable files.

    python tools/check_data.py ade20k [--root data] [--quick]

Prints a short report naming the first problem files and exits 1 on any problem. See data/README.md.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

try:
    import clip_surgery_seg  # noqa: F401
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clip_surgery_seg.datasets import DATASETS  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", choices=DATASETS)
    parser.add_argument("--root", "--data-root", dest="root", default="data",
                        help="data root (default: data)")
    parser.add_argument("--quick", action="store_true",
                        help="only folders, pairing and counts; do not open the files")
    parser.add_argument("--expected-images", type=int, default=None, metavar="N",
                        help="the split's image count (default: the config's, e.g. 2000 for ade20k)")
    parser.add_argument("--workers", type=int, default=None, help="processes that open the files")
    parser.add_argument("--show", type=int, default=5, metavar="N", help="problem files listed per kind")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from clip_surgery_seg.data_prep.verify import check_dataset
    from clip_surgery_seg.datasets.layout import DataLayoutError

    expected = {} if args.expected_images is None else {"expected_images": args.expected_images}
    try:
        report = check_dataset(args.dataset, Path(args.root), deep=not args.quick, workers=args.workers,
                               progress=sys.stderr.isatty(), **expected)
    except DataLayoutError as err:
        print(f"check_data: {err}", file=sys.stderr)
        return 1
    print(report.format(first=args.show))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
