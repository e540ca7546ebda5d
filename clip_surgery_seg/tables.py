"""Tables for the terminal and for Markdown, drawn by prettytable: one place for every table the
tools print (per-class results, comparisons, the paper's table, the history)."""
from __future__ import annotations

from typing import Iterable, Sequence

from prettytable import PrettyTable, TableStyle


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], numeric: Iterable[str]) -> PrettyTable:
    table = PrettyTable([str(h) for h in header])
    table.add_rows([[str(cell) for cell in row] for row in rows])
    numeric = set(numeric)
    for column in table.field_names:
        table.align[column] = "r" if column in numeric else "l"
    return table


def text_table(header: Sequence[str], rows: Iterable[Sequence[str]], numeric: Iterable[str] = (),
               rule: bool = True) -> str:
    """Plain columns (with a rule under the header); ``numeric`` columns right-aligned."""
    table = _table(header, rows, numeric)
    table.border = False
    table.preserve_internal_border = False
    table.header = True
    table.padding_width = 1
    table.left_padding_width = 0
    text = table.get_string()
    lines = [line.rstrip() for line in text.splitlines()]
    width = max(len(line) for line in lines)
    return "\n".join([lines[0]] + (["-" * width] if rule else []) + lines[1:])


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]], numeric: Iterable[str] = ()) -> str:
    """A GitHub Markdown table; ``numeric`` columns right-aligned. Ends with a newline."""
    numeric = set(numeric)
    table = _table(header, rows, numeric)
    table.set_style(TableStyle.MARKDOWN)
    lines = table.get_string().splitlines()
    # the plain GitHub delimiter row, '|---|---:|', rather than prettytable's ':---' variant
    cells = lines[0].split("|")[1:-1]
    lines[1] = "|" + "|".join("-" * (len(c) - 1) + ":" if name in numeric else "-" * len(c)
                              for c, name in zip(cells, table.field_names)) + "|"
    return "\n".join(lines) + "\n"
