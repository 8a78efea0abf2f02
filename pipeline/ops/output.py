"""Tables of results for the terminal: an aligned text table, JSON, or CSV.

    render(Table(("day", "messages"), rows), "table")

Values are shown as people and tools expect them: dates in ISO 8601, UUIDs
as strings, NULL as an empty cell (``null`` in JSON).
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import orjson

FORMATS = ("table", "json", "csv")


@dataclass(frozen=True, slots=True)
class Table:
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]] = field(default_factory=list)

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, map(plain, row), strict=True)) for row in self.rows]


def plain(value: Any) -> Any:
    """A value JSON and CSV can carry."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, tuple | list):
        return [plain(v) for v in value]
    return value


def render(table: Table, fmt: str) -> str:
    if fmt == "json":
        return orjson.dumps(table.records(), option=orjson.OPT_INDENT_2).decode()
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(table.columns)
        writer.writerows([_cell(v) for v in row] for row in table.rows)
        return out.getvalue().rstrip("\n")
    if fmt == "table":
        return text_table(table)
    raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def text_table(table: Table) -> str:
    cells = [[_cell(v) for v in row] for row in table.rows]
    widths = [len(c) for c in table.columns]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    numeric = [_is_numeric(table.rows, i) for i in range(len(table.columns))]
    lines = [
        _line(table.columns, widths, numeric),
        "  ".join("-" * w for w in widths),
        *(_line(row, widths, numeric) for row in cells),
    ]
    noun = "row" if len(cells) == 1 else "rows"
    lines.append(f"({len(cells)} {noun})")
    return "\n".join(line.rstrip() for line in lines)


def _line(values: Sequence[str], widths: list[int], numeric: list[bool]) -> str:
    return "  ".join(
        v.rjust(w) if right else v.ljust(w)
        for v, w, right in zip(values, widths, numeric, strict=True)
    )


def _is_numeric(rows: list[tuple[Any, ...]], index: int) -> bool:
    values = [row[index] for row in rows if row[index] is not None]
    return bool(values) and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in values
    )


def _cell(value: Any) -> str:
    value = plain(value)
    if value is None:
        return ""
    if isinstance(value, float):
        return str(round(value, 6))
    if isinstance(value, list):
        return orjson.dumps(value).decode()
    return str(value)
