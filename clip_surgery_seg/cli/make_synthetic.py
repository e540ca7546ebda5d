"""``css-make-synthetic-data`` / ``tools/make_synthetic_data.py``: small synthetic datasets in the
exact layout of the real ones (offline smoke runs, benchmarks, tests).

  python tools/make_synthetic_data.py ade20k --root data_synthetic --num-images 20 --size 512 683
"""
from __future__ import annotations

import sys
from typing import List, Optional

from . import EXIT_FAILED, EXIT_OK, ToolParser, add_debug_flag, as_invoked, invoked_as, positive_int, run


def build_parser(prog: str = "python tools/make_synthetic_data.py") -> ToolParser:
    from ..datasets.catalog import DATASETS

    parser = ToolParser(prog=prog, description=as_invoked(__doc__.replace("python tools/make_synthetic_data.py", prog)))
    parser.add_argument("datasets", nargs="+", choices=DATASETS, help="which layouts to write")
    parser.add_argument("--root", default="data_synthetic", help="folder to pass as --data-root later")
    parser.add_argument("--num-images", type=positive_int, default=8)
    parser.add_argument("--size", type=positive_int, nargs=2, metavar=("H", "W"), help="image size (default: typical)")
    parser.add_argument("--seed", type=int, default=0)
    add_debug_flag(parser)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser(invoked_as("tools/make_synthetic_data.py")).parse_args(argv)

    def body() -> int:
        from ..datasets.synthetic import write_synthetic

        for name in args.datasets:
            folder = write_synthetic(name, args.root, args.num_images, tuple(args.size) if args.size else None,
                                     args.seed)
            print(f"{name}: {args.num_images} synthetic images in {folder}")
        return EXIT_OK

    return run(body, args, EXIT_FAILED)


if __name__ == "__main__":
    sys.exit(main())
