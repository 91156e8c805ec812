"""Agents' pending edits of sendable cells, kept through a copy (pure).

A cell an agent may send back to DS (an annotation, the labels: `TableSpec.sendable`) has a
*base*: what DS had for it at the last copy, kept apart from the cell in the row's hidden
`BASE` column (JSON `{"base": {column key: cell}, "ds": {column key: cell}}`). A cell that
differs from its base is the agent's *pending edit*: the copy never overwrites it. When DS
changed the same value meanwhile, the copy keeps the base and records DS's new value under
`ds`: a conflict, shown before anything is sent (`plan.outbox`). A cell an agent turned into a
formula is theirs (OTP never writes it) but keeps its base: its result is what is sent.

A row without a base (written before OTP kept them, or whose `BASE` column was made again)
has no pending edit: DS's value is written, as the copy always did.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..grist.values import same_cell
from .diff import TableIndex, key_cell
from .registry import TableMap
from .schema import BASE

Row = dict[str, Any]


@dataclass(frozen=True)
class Base:
    """What a row's `BASE` cell holds."""

    base: dict[str, Any] = field(default_factory=dict)  # column key → DS's value at the last copy
    ds: dict[str, Any] = field(default_factory=dict)  # column key → DS's value since, where it conflicts

    @classmethod
    def read(cls, cell: Any) -> Base:
        try:
            data = json.loads(cell) if isinstance(cell, str) and cell else {}
        except ValueError:
            return cls()
        if not isinstance(data, dict):
            return cls()
        base, ds = data.get("base"), data.get("ds")
        return cls(base if isinstance(base, dict) else {}, ds if isinstance(ds, dict) else {})

    def cell(self) -> str:
        data = {"base": self.base, **({"ds": self.ds} if self.ds else {})}
        return json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":"))

    def current(self, key: str) -> Any:
        """DS's value as the copy last saw it."""
        return self.ds[key] if key in self.ds else self.base.get(key)


def sendable_cols(table_map: TableMap) -> dict[str, str]:
    """Column key → col id of every sendable cell, an agent's formula included."""
    return {k: table_map.col_ids.get(k) or table_map.released[k] for k in table_map.spec.sendable
            if k in table_map.col_ids or k in table_map.released}


def hold_pending(table_map: TableMap, index: TableIndex, rows: list[Row]) -> list[Row]:
    """The rows DS gives (refs resolved), with the agents' pending edits in place of DS's
    values and each row's `BASE` brought up to date (see the module's docstring)."""
    if not table_map.spec.sendable or BASE not in table_map.col_ids:
        return rows
    base_col, cols = table_map.col_ids[BASE], sendable_cols(table_map)
    # a column made at this sync holds Grist's empty cells (0 in an Int column), no agent's edit
    fresh_cols = {k: (None if k in index.fresh or BASE in index.fresh else c) for k, c in cols.items()}
    written = set(table_map.written())
    key_keys = table_map.spec.row_key
    out = []
    for row in rows:
        held = index.rows.get(tuple(key_cell(row[k]) for k in key_keys))
        out.append(held_row(row, held[1] if held else None, fresh_cols, base_col, written))
    return out


def held_row(row: Row, held: dict[str, Any] | None, cols: dict[str, str], base_col: str, written: set[str]) -> Row:
    """One row (see `hold_pending`): `held` is the row the document has ({col id: cell}), if any;
    a column whose col id is None has no pending edit (made at this sync)."""
    if held is not None:  # the common case first: DS's values are the cells and their base, nothing pending
        cell = base_cell({key: row.get(key) for key in cols})
        if held.get(base_col) == cell and all(col is None or same_cell(held.get(col), row.get(key))
                                              for key, col in cols.items()):
            return {**row, BASE: cell}
    stored = Base.read(held.get(base_col)) if held else Base()
    base, ds, out = {}, {}, dict(row)
    for key, col in cols.items():
        value = row.get(key)
        if held is None or col is None or key not in stored.base or same_cell(held.get(col), stored.base[key]):
            base[key] = value  # nothing pending: DS's value, in the cell and as the base
            continue
        cell, old = held.get(col), stored.base[key]
        if key in written:
            out[key] = cell  # the agent's pending edit stays
        if same_cell(value, cell):
            base[key] = value  # DS has the agent's value now: nothing to send any more
        else:
            base[key] = old
            if not same_cell(value, old):
                ds[key] = value  # both changed it: a conflict
    out[BASE] = base_cell(base) if not ds else Base(base, ds).cell()
    return out


_CELLS: dict[tuple, str] = {}  # the `BASE` cells of the values seen last: a page's rows share few (labels)
_CELLS_KEPT = 1024


def base_cell(base: dict[str, Any]) -> str:
    """`Base(base).cell()`, kept for the values seen last (rows without a pending edit and
    with the same values, as most dossiers' labels, share their base's text)."""
    try:
        key = tuple((k, type(v), tuple(v) if isinstance(v, list) else v) for k, v in base.items())
        cell = _CELLS.get(key)
    except TypeError:  # a value that cannot be a key (a list of lists): written out
        return Base(base).cell()
    if cell is None:
        if len(_CELLS) >= _CELLS_KEPT:
            _CELLS.clear()
        cell = _CELLS[key] = Base(base).cell()
    return cell
