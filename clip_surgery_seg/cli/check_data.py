"""``css-check-data`` / ``tools/check_data.py``: verify a prepared validation split.

    python tools/check_data.py ade20k [--root data] [--quick]

Counts, image/label pairing, sizes, label values, unreadable files. Prints a short report naming the
first problem files and exits 1 on any problem. See data/README.md.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

from . import EXIT_FAILED, EXIT_OK, ToolParser, add_debug_flag, as_invoked, invoked_as, positive_int, run


def build_parser(prog: str = "python tools/check_data.py") -> ToolParser:
    from ..datasets.catalog import DATASETS

    parser = ToolParser(prog=prog, description=as_invoked(__doc__.replace("python tools/check_data.py", prog)))
    parser.add_argument("dataset", choices=DATASETS)
    parser.add_argument("--root", "--data-root", dest="root", default="data", help="data root (default: data)")
    parser.add_argument("--quick", action="store_true",
                        help="only folders, pairing and counts; do not open the files")
    parser.add_argument("--expected-images", type=positive_int, default=None, metavar="N",
                        help="the split's image count (default: the catalogue's, e.g. 2000 for ade20k)")
    parser.add_argument("--workers", type=positive_int, default=None, help="processes that open the files")
    parser.add_argument("--show", type=positive_int, default=5, metavar="N", help="problem files listed per kind")
    add_debug_flag(parser)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser(invoked_as("tools/check_data.py")).parse_args(argv)

    def body() -> int:
        from ..datasets.check import check_dataset

        expected = {} if args.expected_images is None else {"expected_images": args.expected_images}
        report = check_dataset(args.dataset, Path(args.root), deep=not args.quick, workers=args.workers,
                               progress=sys.stderr.isatty(), **expected)
        print(as_invoked(report.format(first=args.show)))
        return EXIT_OK if report.ok else EXIT_FAILED

    return run(body, args, EXIT_FAILED)


if __name__ == "__main__":
    sys.exit(main())
