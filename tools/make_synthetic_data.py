#!/usr/bin/env python
"""Write small synthetic datasets in the exact layout of the real ones (offline smoke runs, benchmarks).

  python tools/make_synthetic_data.py ade20k --root data_synthetic --num-images 20 --size 512 683
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from clip_surgery_seg.datasets.synthetic import SPECS, write_synthetic  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("datasets", nargs="+", choices=sorted(SPECS), help="which layouts to write")
    parser.add_argument("--root", default="data_synthetic", help="folder to pass as --data-root later")
    parser.add_argument("--num-images", type=int, default=8)
    parser.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), help="image size (default: typical)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for name in args.datasets:
        folder = write_synthetic(name, args.root, args.num_images, tuple(args.size) if args.size else None, args.seed)
        print(f"{name}: {args.num_images} synthetic images in {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
