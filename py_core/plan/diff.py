"""Row diffs: (the rows the document holds, the rows DS gives) → Grist user actions (pure).

Rows are diffed by their key and sent as bulk actions (per-row upserts are ~12× slower in
Grist). See README « Who owns what » for the rows without a key and the duplicates.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..grist.values import same_cell
from .registry import Action, TableMap
from .schema import BASE, DOSSIER_REF

Key = tuple[Any, ...]


@dataclass
class TableIndex:
    """The rows of one OTP table as the document holds them, by row key; for child tables, the
    keys of each dossier's rows (`owned`), so a page's work is proportional to the page.

    Keys are compared normalised (`key_cell`), whatever type an agent gave the key columns. A
    row whose key is blank, 0 or unreadable is *loose* (a child whose dossier row an agent
    deleted: Grist empties its Ref; a key column deleted and made again): never a duplicate of
    another; it gets its key back when DS gives a row of the same content (`plan_rows`)."""

    rows: dict[Key, tuple[int, dict[str, Any]]]  # key → (row id, {col id: cell})
    ref_col: str | None = None  # col id of the Ref to the dossier (child tables)
    owned: dict[Any, set[Key]] = field(default_factory=dict)  # dossier row id → keys
    duplicates: list[tuple[Key, int, dict[str, Any]]] = field(default_factory=list)  # extra rows of a key
    loose: dict[int, dict[str, Any]] = field(default_factory=dict)  # row id → cells, rows without a key
    signature: tuple[tuple[str, str], ...] = ()  # (column key, col id) a loose row is matched on
    loose_by_signature: dict[tuple, int | None] = field(default_factory=dict)  # None: several rows have it
    fresh: frozenset[str] = frozenset()  # column keys created at this sync: their cells are no one's yet
    stale: list[int] = field(default_factory=list)  # row ids holding a value in a fresh key column (`from_columns`)

    @classmethod
    def from_columns(cls, columns: dict[str, list[Any]], table_map: TableMap, fresh: frozenset[str] | set[str] = frozenset(),
                     volatile: frozenset[str] = frozenset()) -> TableIndex:
        """`fresh`: column keys created at this sync (empty in the rows held): a key column among
        them (deleted by an agent, made again; a Ref whose dossiers table was made again) makes
        every row loose. Loose rows are matched on the other columns, but `volatile` ones.
        The rows that hold a value there anyway (a Ref to the dossiers table made again keeps
        the old table's row ids) are `stale`: the copy blanks them in the document before it
        writes any key there (`Writer.clear_stale_keys`), so a key found there later is one
        this copy wrote — a resumed copy trusts it."""
        ids = columns.get("id") or []
        blanked = [table_map.col_ids[k] for k in table_map.spec.row_key if k in fresh]
        stale = [row_id for row_id, *cells in zip(ids, *(columns.get(c) or [None] * len(ids) for c in blanked))
                 if any(key_cell(c) is not None for c in cells)] if blanked else []
        if blanked:
            columns = {**columns, **{c: [None] * len(ids) for c in blanked}}
        key_ids = [table_map.col_ids[k] for k in table_map.spec.row_key]
        names = [n for n in columns if n != "id"]
        ref_col = table_map.col_ids.get(DOSSIER_REF)
        signature = tuple((k, n) for k, n in table_map.written().items()
                          if k not in (DOSSIER_REF, BASE) and k not in fresh and k not in volatile)
        index = cls({}, ref_col, signature=signature, fresh=frozenset(fresh), stale=stale)
        missing = [None] * len(ids)
        key_columns = [columns.get(k, missing) for k in key_ids]
        # one row at a time from the columns, by zip (the copy of a large table is read at every sync)
        rows = zip(*(columns[n] for n in names)) if names else [()] * len(ids)
        for row_id, row, raw_key in zip(ids, rows, zip(*key_columns)):
            values = dict(zip(names, row))
            key = tuple(map(key_cell, raw_key))
            if None in key:
                index.loose[row_id] = values
            elif key in index.rows:  # two syncs at once in an earlier version, a row duplicated by hand
                index.duplicates.append((key, row_id, values))
            else:
                index.put(key, row_id, values)
        index._sign_loose()
        return index

    def _sign_loose(self) -> None:
        """Each loose row by its content (None where several rows share it)."""
        columns = tuple(n for _, n in self.signature)
        self.loose_by_signature = {}
        for row_id, values in self.loose.items():
            sig = _signature(values, columns)
            self.loose_by_signature[sig] = None if sig in self.loose_by_signature else row_id

    def put(self, key: Key, row_id: int, values: dict[str, Any]) -> None:
        self.rows[key] = (row_id, values)
        if self.ref_col is not None:
            self.owned.setdefault(values.get(self.ref_col), set()).add(key)

    def drop(self, key: Key) -> None:
        row = self.rows.pop(key, None)
        if row is not None and self.ref_col is not None:
            self.owned.get(row[1].get(self.ref_col), set()).discard(key)

    def loosen(self, live: set[int]) -> None:
        """Rows whose Ref names no dossier row of the document (`live`) are loose too: a Ref column
        an agent retyped to Int keeps a deleted dossier row's id (Grist empties only real Refs)."""
        stray = [key for key, (_, values) in self.rows.items() if values.get(self.ref_col) not in live]
        for key in stray:
            row_id, values = self.rows[key]
            self.drop(key)
            self.loose[row_id] = values
        if stray:
            self._sign_loose()

    def loose_match(self, row: dict[str, Any]) -> int | None:
        """The loose row with the content of `row` (a row DS gives, by column key), when exactly
        one has it (rows of the same content, e.g. empty annotations, are left alone: which
        dossier they were is unknowable), and the content is not empty."""
        signature = tuple(_signature_cell(row.get(k)) for k, _ in self.signature)
        if all(v in (None, False) for v in signature):
            return None
        return self.loose_by_signature.get(signature)

    def attach(self, row_id: int, key: Key, cells: dict[str, Any]) -> None:
        """A loose row got its key back."""
        values = self.loose.pop(row_id)
        self.loose_by_signature = {s: r for s, r in self.loose_by_signature.items() if r != row_id}
        self.put(key, row_id, {**values, **cells})


def key_cell(value: Any) -> Any:
    """A row key part as OTP compares it, whatever the key column's type became (an agent may
    retype « Numéro » to Text): integers by value, text trimmed; None when blank, 0 or
    unreadable (an error cell)."""
    if isinstance(value, bool) or value is None or isinstance(value, list):
        return None
    if isinstance(value, float):
        return (int(value) or None) if value.is_integer() else value
    if isinstance(value, str):
        text = value.strip()
        digits = text[1:] if text.startswith("-") else text
        if digits.isdigit():
            return int(text) or None
        return text or None
    return value or None


def _signature_cell(value: Any) -> Any:
    """A cell as content is compared: as Grist stores it, whatever the column's type (a number
    in a column an agent retyped to Text is its text)."""
    if value in ("", None):
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return round(float(value), 6)
    if isinstance(value, list):
        return tuple(value)
    if isinstance(value, str):
        try:
            return round(float(value.strip().replace(",", ".")), 6)
        except ValueError:
            return value
    return value


def _signature(values: dict[str, Any], columns: tuple[str, ...]) -> tuple:
    return tuple(_signature_cell(values.get(n)) for n in columns)


def _blank(value: Any) -> bool:
    return value in (None, "", False, 0) or value == ["L"]


@dataclass
class RowPlan:
    table_id: str
    add_keys: list[Key] = field(default_factory=list)
    add: dict[str, list[Any]] = field(default_factory=dict)  # col id → cells, in add_keys order
    update_ids: list[int] = field(default_factory=list)
    update: dict[str, list[Any]] = field(default_factory=dict)
    remove_ids: list[int] = field(default_factory=list)
    update_keys: list[Key] = field(default_factory=list)  # row keys, in update_ids order
    remove_keys: list[Key] = field(default_factory=list)
    attached: set[int] = field(default_factory=set)  # loose rows among the updates, getting their key back
    add_ids: list[int] | None = None  # Grist's temporary (negative) ids of the rows added, when others refer to them

    def touched_keys(self) -> list[Key]:
        """Keys of every row this plan adds, changes or removes."""
        return [*self.add_keys, *self.update_keys, *self.remove_keys]

    def actions(self) -> list[Action]:
        out: list[Action] = []
        if self.add_keys:
            out.append(["BulkAddRecord", self.table_id, self.add_ids or [None] * len(self.add_keys), self.add])
        if self.update_ids:
            out.append(["BulkUpdateRecord", self.table_id, self.update_ids, self.update])
        if self.remove_ids:
            out.append(["BulkRemoveRecord", self.table_id, self.remove_ids])
        return out


def resolve_refs(rows: list[dict[str, Any]], dossier_ids: dict[int, int]) -> list[dict[str, Any]]:
    """Replace the dossier number in the `dossier` column by the dossier's Grist row id."""
    return [{**row, DOSSIER_REF: dossier_ids[row[DOSSIER_REF]]} if DOSSIER_REF in row else row for row in rows]


def plan_rows(
    table_map: TableMap,
    index: TableIndex,
    rows: list[dict[str, Any]],
    *,
    owners: set[Any] | None = None,
    volatile: frozenset[str] = frozenset(),
) -> RowPlan:
    """Diff `rows` (by column key, refs resolved) against `index`.

    `owners`: for a child table, the dossier row ids the rows cover; rows of those dossiers that
    DS no longer has are removed (a block row deleted in DS disappears in Grist).
    `volatile`: column keys whose change alone is no change (DS re-signs file URLs at every
    request): written with a real change of the row, never on their own.
    A row DS gives that the index lacks takes back the loose row of the same content, if
    exactly one has it (`TableIndex.loose_match`) — with the agents' cells on it.
    """
    col_ids = table_map.written()
    names = [col_ids[k] for k in col_ids]
    key_keys = table_map.spec.row_key
    plan = RowPlan(table_map.table_id, add={n: [] for n in names}, update={n: [] for n in names})
    adds = [(k, plan.add[n]) for k, n in col_ids.items()]  # (column key, its cells): no dict per row
    updates = [(k, plan.update[n]) for k, n in col_ids.items()]
    compared = [(k, n) for k, n in col_ids.items() if k not in volatile]
    seen: set[Key] = set()
    for row in rows:
        key = tuple(key_cell(row[k]) for k in key_keys)
        if key in seen:
            continue
        seen.add(key)
        current = index.rows.get(key)
        if current is None and index.loose:
            row_id = index.loose_match(row)
            if row_id is not None and row_id not in plan.attached:
                plan.attached.add(row_id)
                plan.update_ids.append(row_id)
                plan.update_keys.append(key)
                for k, cells in updates:
                    cells.append(row.get(k))
                continue
        if current is None:
            plan.add_keys.append(key)
            for k, cells in adds:
                cells.append(row.get(k))
        elif any(not same_cell(current[1].get(n), row.get(k)) for k, n in compared):
            plan.update_ids.append(current[0])
            plan.update_keys.append(key)
            for k, cells in updates:
                cells.append(row.get(k))
    for owner in owners or ():
        for key in sorted(index.owned.get(owner, set()) - seen, key=repr):
            plan.remove_ids.append(index.rows[key][0])
            plan.remove_keys.append(key)
    return plan


def record_written(index: TableIndex, plan: RowPlan, new_ids: list[int]) -> None:
    """Bring the index up to date with what a plan wrote (no need to fetch the table again)."""
    for i, key in enumerate(plan.add_keys):
        index.put(key, new_ids[i], {n: plan.add[n][i] for n in plan.add})
    for i, key in enumerate(plan.update_keys):
        cells = {n: plan.update[n][i] for n in plan.update}
        if plan.update_ids[i] in plan.attached:
            index.attach(plan.update_ids[i], key, cells)
            continue
        row_id, values = index.rows[key]
        index.drop(key)
        index.put(key, row_id, {**values, **cells})
    for key in plan.remove_keys:
        index.drop(key)


def plan_cells(table_map: TableMap, index: TableIndex, col_key: str, wanted: dict[Key, Any]) -> RowPlan:
    """Set one OTP column on the rows of `wanted` (key → cell) where it differs."""
    col = table_map.col_ids.get(col_key)
    plan = RowPlan(table_map.table_id, update={col: []} if col else {})
    if col is None:  # an agent's formula now: OTP does not write it
        return plan
    for key, cell in wanted.items():
        current = index.rows.get(key)
        if current is not None and not same_cell(current[1].get(col), cell):
            plan.update_ids.append(current[0])
            plan.update_keys.append(key)
            plan.update[col].append(cell)
    return plan


def plan_removal(maps: dict[str, TableMap], indexes: dict[str, TableIndex], dossier_row_ids: set[int]) -> list[tuple[str, RowPlan]]:
    """Remove dossiers and every row that depends on them, children first (no Ref ever points
    at a removed dossier)."""
    plans = []
    for key, table_map in maps.items():
        if key == "dossiers":
            continue
        index = indexes[key]
        keys = sorted({k for owner in dossier_row_ids for k in index.owned.get(owner, ())}, key=repr)
        if keys:
            plans.append((key, RowPlan(table_map.table_id, remove_ids=[index.rows[k][0] for k in keys], remove_keys=keys)))
    dossiers = indexes["dossiers"]
    keys = sorted((k for k, (rid, _) in dossiers.rows.items() if rid in dossier_row_ids), key=repr)
    if keys:
        plans.append(("dossiers", RowPlan(maps["dossiers"].table_id, remove_ids=[dossiers.rows[k][0] for k in keys], remove_keys=keys)))
    return plans


@dataclass
class Repair:
    """What a repair of the rows did, for the history."""

    actions: list[Action] = field(default_factory=list)
    merged: int = 0  # duplicate rows removed, their agents' cells moved to the row kept
    kept: list[str] = field(default_factory=list)  # « table : row id » left in place (agents' cells)
    removed_loose: int = 0  # rows without a dossier and without any agent's cell, removed


def plan_dedupe(maps: dict[str, TableMap], indexes: dict[str, TableIndex], agent_columns: dict[str, list[str]]) -> Repair:
    """Repair duplicate rows of a key (two syncs at once in an earlier version, a row an agent
    duplicated): keep the first row, move into it what agents wrote only on a duplicate, remove
    the duplicate. A duplicate whose agents' cells differ from the kept row's stays, reported:
    a repair never removes an agent's cell. The child rows of a removed dossier row move to the
    kept one, or go when the kept one has the same child and theirs hold no agent's cell."""
    repair = Repair()
    for key, table_map in maps.items():
        index = indexes[key]
        fills: dict[int, dict[str, Any]] = {}
        removed: list[int] = []
        for row_key, dup_id, values in index.duplicates:
            kept_id, kept = index.rows[row_key]
            moved = fills.setdefault(kept_id, {})
            cells = {}
            for col in agent_columns.get(key, []):
                mine, theirs = moved.get(col, kept.get(col)), values.get(col)
                if _blank(theirs) or same_cell(mine, theirs):
                    continue
                if not _blank(mine):
                    break
                cells[col] = theirs
            else:
                moved.update(cells)
                removed.append(dup_id)
                continue
            repair.kept.append(f"{table_map.table_id} : ligne {dup_id}")
        repair.actions += [["UpdateRecord", table_map.table_id, rid, cells] for rid, cells in fills.items() if cells]
        if key == "dossiers" and removed:
            kept_of = {dup_id: index.rows[row_key][0] for row_key, dup_id, _ in index.duplicates}
            for child, child_map in maps.items():
                if child != "dossiers":
                    repair.actions += _move_children(child_map, indexes[child], {d: kept_of[d] for d in removed},
                                                     agent_columns.get(child, []))
        if removed:
            repair.actions.append(["BulkRemoveRecord", table_map.table_id, sorted(removed)])
            repair.merged += len(removed)
    return repair


def _move_children(table_map: TableMap, index: TableIndex, kept_of: dict[int, int], agent_cols: list[str]) -> list[Action]:
    ref_col = table_map.col_ids[DOSSIER_REF]
    moves, removals = [], []
    for old, new in kept_of.items():
        for key in index.owned.get(old, ()):
            row_id, values = index.rows[key]
            if (new, *key[1:]) not in index.rows:
                moves.append(row_id)
            elif all(_blank(values.get(c)) for c in agent_cols):
                removals.append(row_id)
            # else: left on the removed dossier, then loose: kept and reported (`plan_sweep`)
    actions: list[Action] = []
    if moves:
        targets = {index.rows[k][0]: kept_of[o] for o in kept_of for k in index.owned.get(o, ())}
        actions.append(["BulkUpdateRecord", table_map.table_id, moves, {ref_col: [targets[m] for m in moves]}])
    if removals:
        actions.append(["BulkRemoveRecord", table_map.table_id, sorted(removals)])
    return actions


def plan_sweep(maps: dict[str, TableMap], indexes: dict[str, TableIndex], agent_columns: dict[str, list[str]]) -> Repair:
    """After a sync: the rows of the tables it read that belong to no dossier (loose, or whose
    Ref points at no dossier row) and that DS gave no row for. Those without any agent's cell
    are removed (DS's content, in the document again where it belongs); those with one stay,
    reported — never an agent's cell lost."""
    repair = Repair()
    live = {row_id for row_id, _ in indexes["dossiers"].rows.values()} if "dossiers" in indexes else None
    for key, table_map in maps.items():
        index = indexes.get(key)
        if index is None or (key != "dossiers" and live is None):
            continue
        stray = dict(index.loose)
        if key != "dossiers":
            stray.update({rid: v for rid, v in index.rows.values() if v.get(index.ref_col) not in live})
        agent_cols = agent_columns.get(key, [])
        gone = sorted(rid for rid, v in stray.items() if all(_blank(v.get(c)) for c in agent_cols))
        repair.kept += [f"{table_map.table_id} : ligne {rid}" for rid in sorted(set(stray) - set(gone))]
        if gone:
            repair.actions.append(["BulkRemoveRecord", table_map.table_id, gone])
            repair.removed_loose += len(gone)
    return repair


INT32 = range(-(2**31), 2**31)
EXACT_IN_FLOAT = 2**53


def plan_int_widening(table_map: TableMap, rows: list[dict[str, Any]], current_types: dict[str, str]) -> tuple[list[Action], dict[str, str]]:
    """Grist's Int holds 32-bit values: a DS integer beyond that turns its column into a Numeric
    with no decimals (exact up to 2**53), one beyond 2**53 into a Text (its digits kept exactly,
    see `exact_integers`), rather than an error cell or a rounded number. Never narrowed back;
    a type an agent chose is left alone. Returns the actions and the column types after them."""
    types = dict(current_types)
    actions: list[Action] = []
    for column in table_map.spec.columns:
        col_id = table_map.col_ids.get(column.key)
        if col_id is None or column.type != "Int" or column.ds_type == "otp" or types.get(col_id) not in ("Int", "Numeric"):
            continue
        values = [v for row in rows if isinstance(v := row.get(column.key), int) and not isinstance(v, bool)]
        if any(abs(v) > EXACT_IN_FLOAT for v in values):
            actions.append(["ModifyColumn", table_map.table_id, col_id, {"type": "Text"}])
            types[col_id] = "Text"
        elif types[col_id] == "Int" and any(v not in INT32 for v in values):
            actions.append(["ModifyColumn", table_map.table_id, col_id, {"type": "Numeric", "widgetOptions": json.dumps({"decimals": 0})}])
            types[col_id] = "Numeric"
    return actions, types


def exact_integers(table_map: TableMap, rows: list[dict[str, Any]], types: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Integers beyond 2**53 as their digits: no float (Grist's Numeric, JavaScript's numbers
    on the way to Grist) rounds them."""
    keys = [c.key for c in table_map.spec.columns if c.type == "Int" and c.key in table_map.col_ids]
    if not keys:
        return rows
    out = []
    for row in rows:
        big = {k: str(v) for k in keys if isinstance(v := row.get(k), int) and not isinstance(v, bool) and abs(v) > EXACT_IN_FLOAT}
        out.append({**row, **big} if big else row)
    return out
