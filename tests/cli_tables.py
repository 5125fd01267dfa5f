"""Reading a table the CLI printed (``print_table``: columns padded, two spaces apart)."""

from __future__ import annotations

import re


def table_rows(text: str) -> list[dict[str, str]]:
    """The rows of the first table in ``text``, each by its column header.

    A column starts where its header does: headers hold single spaces at most, columns are
    two or more spaces apart, and a cell may be empty.
    """
    lines = [line for line in text.splitlines() if line.strip()]
    header, *body = lines
    starts = [match.start() for match in re.finditer(r"(?:^|(?<=  ))\S", header)]
    spans = list(zip(starts, [*starts[1:], None], strict=True))
    names = [header[start:end].strip() for start, end in spans]
    rows = []
    for line in body:
        if line.startswith("Best by "):
            break  # the sentence after the table
        rows.append(
            {name: line[start:end].strip() for name, (start, end) in zip(names, spans, strict=True)}
        )
    return rows
