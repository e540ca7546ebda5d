"""Class-name files: one class per line, label order; comma-separated synonyms (docs/method.md §3)."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import List, Tuple, Union
from ..errors import ClassNamesError

logger = logging.getLogger("clip_surgery_seg")



@dataclass(frozen=True)
class ClassNames:
    """The classes of a dataset and the text rows that stand for them.

    ``rows`` holds every name to encode (synonyms are separate rows); ``row_class[i]`` is the class
    index of row ``i``. A class's score is the maximum over its rows.
    """

    classes: Tuple[str, ...]  # the first name of each class, in label order
    rows: Tuple[str, ...]
    row_class: Tuple[int, ...]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def has_synonyms(self) -> bool:
        return len(self.rows) != len(self.classes)

    @classmethod
    def from_lines(cls, lines: List[str], source: str = "<list>") -> "ClassNames":
        classes, rows, row_class, seen, repeats = [], [], [], {}, []
        for number, line in enumerate(lines, start=1):
            names = [name.strip() for name in line.strip().split(",")]
            if not line.strip() or not all(names):
                raise ClassNamesError(f"{source} line {number}: empty class name; write one class per "
                                      "line, synonyms separated by commas, no blank lines")
            for name in names:
                if seen.get(name.lower()) == number:
                    raise ClassNamesError(f"{source} line {number}: {name!r} appears twice on the line; list each "
                                          "synonym once")
                if name.lower() in seen:
                    # SCLIP's COCO-Object file has "bed" as a background synonym and as a class: kept,
                    # as its harness scores it (ties go to the earlier class), and said
                    repeats.append(f"{name!r} (lines {seen[name.lower()]} and {number})")
                seen.setdefault(name.lower(), number)
                rows.append(name)
                row_class.append(len(classes))
            classes.append(names[0])
        if not classes:
            raise ClassNamesError(f"{source} has no classes; write one class per line")
        if repeats:
            logger.warning("%s names %s in two classes: the two rows score the same and ties go to the earlier "
                           "class, so the later one is never predicted where that name wins", source,
                           ", ".join(repeats))
        return cls(tuple(classes), tuple(rows), tuple(row_class))


def load_classnames(path: Union[str, Path]) -> ClassNames:
    """Read a class-name file; a clear error names the file and line of any problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark (Windows editors) is not a name
    except FileNotFoundError:
        raise ClassNamesError(f"class-name file {path} does not exist; set model.classnames to a "
                              "file with one class per line (see configs/classnames/)") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ClassNamesError(f"class-name file {path} cannot be read ({err})") from err
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines = lines[:-1]  # the final newline
    return ClassNames.from_lines(lines, str(path))
