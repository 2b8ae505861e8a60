"""Primary and complementary cell suppression for one two-way table with its margins.

A table is voivodeship (rows) by age band x sex (columns) of one service and month, published with
its row totals, column totals and grand total. Primary suppression hides every cell and total that
covers fewer than k patients. A hidden value may still be *derived*: a row total minus the row's
published cells gives the one hidden cell of that row, and longer chains of totals can do the same
(two hidden cells joined by a "bridge" to a third). So the published totals are treated as linear
equations over the hidden values, and a hidden value is derivable exactly when its unit vector lies
in the row space of those equations (Gauss-Jordan elimination in exact fractions). While any hidden
value is derivable, the smallest published cell on its row or column (else a total) is hidden too
(complementary suppression). Each round hides one more value, so it ends.

The additive quantity is the number of appointments (totals are sums of cells); patient counts are
distinct counts, not sums, and are published only where the appointments are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

Row = str
Col = tuple[str, str]
Unknown = tuple[Any, ...]  # ("cell", row, col) | ("row", row) | ("col", col) | ("grand",)


@dataclass
class Table:
    k: int
    grand: dict[str, Any]
    cells: dict[tuple[Row, Col], dict[str, Any]] = field(default_factory=dict)
    row_totals: dict[Row, dict[str, Any]] = field(default_factory=dict)
    col_totals: dict[Col, dict[str, Any]] = field(default_factory=dict)

    def value(self, unknown: Unknown) -> int:
        kind = unknown[0]
        if kind == "cell":
            return self.cells[(unknown[1], unknown[2])]["appointments"]
        if kind == "row":
            return self.row_totals[unknown[1]]["appointments"]
        if kind == "col":
            return self.col_totals[unknown[1]]["appointments"]
        return self.grand["appointments"]

    def equations(self) -> list[list[Unknown]]:
        """Each published relation as the list of its terms: the first is the total (=) and the
        rest are the parts it sums."""
        eqs: list[list[Unknown]] = []
        for row in self.row_totals:
            eqs.append([("row", row)] + [("cell", r, c) for (r, c) in self.cells if r == row])
        for col in self.col_totals:
            eqs.append([("col", col)] + [("cell", r, c) for (r, c) in self.cells if c == col])
        eqs.append([("grand",)] + [("row", r) for r in self.row_totals])
        eqs.append([("grand",)] + [("col", c) for c in self.col_totals])
        return eqs


def primary(table: Table) -> set[Unknown]:
    hidden: set[Unknown] = set()
    for (row, col), cell in table.cells.items():
        if cell["patients"] < table.k:
            hidden.add(("cell", row, col))
    for row, total in table.row_totals.items():
        if total["patients"] < table.k:
            hidden.add(("row", row))
    for col, total in table.col_totals.items():
        if total["patients"] < table.k:
            hidden.add(("col", col))
    if table.grand["patients"] < table.k:
        hidden.add(("grand",))
    return hidden


def derivable(table: Table, hidden: set[Unknown]) -> list[Unknown]:
    """The hidden values the published ones determine, in a stable order."""
    order = sorted(hidden, key=repr)
    index = {u: i for i, u in enumerate(order)}
    matrix: list[list[Fraction]] = []
    for terms in table.equations():
        coeffs = [Fraction(0)] * len(order)
        touched = False
        for position, term in enumerate(terms):
            if term in index:
                coeffs[index[term]] += 1 if position == 0 else -1
                touched = True
        if touched:
            matrix.append(coeffs)
    # Gauss-Jordan: a hidden value is determined iff some reduced row is its unit vector.
    pivot_row = 0
    for col in range(len(order)):
        found = next((r for r in range(pivot_row, len(matrix)) if matrix[r][col] != 0), None)
        if found is None:
            continue
        matrix[pivot_row], matrix[found] = matrix[found], matrix[pivot_row]
        lead = matrix[pivot_row][col]
        matrix[pivot_row] = [v / lead for v in matrix[pivot_row]]
        for r in range(len(matrix)):
            if r != pivot_row and matrix[r][col] != 0:
                factor = matrix[r][col]
                matrix[r] = [a - factor * b for a, b in zip(matrix[r], matrix[pivot_row], strict=True)]
        pivot_row += 1
    out = []
    for row in matrix[:pivot_row]:
        nonzero = [i for i, v in enumerate(row) if v != 0]
        if len(nonzero) == 1:
            out.append(order[nonzero[0]])
    return out


def _complement(table: Table, hidden: set[Unknown], exposed: Unknown) -> Unknown:
    """The value to hide next so that `exposed` stops being derivable: the smallest published cell
    sharing its row or column; for a total, the smallest other published total of its kind."""
    kind = exposed[0]
    candidates: list[Unknown] = []
    if kind == "cell":
        row, col = exposed[1], exposed[2]
        candidates = [("cell", r, c) for (r, c) in table.cells if (r == row or c == col)]
        candidates = [u for u in candidates if u not in hidden]
        if not candidates:
            candidates = [u for u in (("row", row), ("col", col)) if u not in hidden]
    elif kind in ("row", "col"):
        pool = table.row_totals if kind == "row" else table.col_totals
        candidates = [(kind, key) for key in pool if (kind, key) not in hidden]
        if not candidates:
            candidates = [("grand",)] if ("grand",) not in hidden else []
    if not candidates:  # everything around it is hidden: hide the whole table
        everything: set[Unknown] = {("grand",)}
        everything |= {("row", r) for r in table.row_totals}
        everything |= {("col", c) for c in table.col_totals}
        everything |= {("cell", r, c) for (r, c) in table.cells}
        remaining = sorted(everything - hidden, key=repr)
        return remaining[0]
    return min(candidates, key=lambda u: (table.value(u), repr(u)))


def suppress(table: Table) -> set[Unknown]:
    hidden = primary(table)
    while True:
        exposed = derivable(table, hidden)
        if not exposed:
            return hidden
        hidden.add(_complement(table, hidden, exposed[0]))
