"""Plain text for terminals and logs: counted nouns and aligned tables (the CLI's output,
``doctor``'s checks, the service's log lines)."""

from __future__ import annotations

from typing import Any


def plural(count: int, noun: str) -> str:
    """``1 event``, ``3 events``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def format_table(headers: list[str], rows: list[list[Any]]) -> str:
    """A plain aligned text table; numbers right-aligned."""
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(v)) for w, v in zip(widths, row, strict=True)]
    numeric = [
        all(isinstance(row[i], int | float) for row in rows) and bool(rows)
        for i in range(len(headers))
    ]

    def line(values: list[str]) -> str:
        parts = [
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    out.extend(line(row) for row in cells)
    return "\n".join(out)
