"""Plans: (document state, wanted schema, wanted rows) → Grist user actions (pure).

Schema: tables and columns are created from the descriptors, labels and types follow DS, and
nothing a user added (columns, formulas) is touched. Rows: the diff against what the document
holds, sent as bulk actions (per-row upserts are ~12× slower in Grist).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from . import naming
from .docstate import DocState
from .grist_values import datetime_cell, same_cell
from .schema import BIN_DATE, DATE_MODIFIED, DELETED_DATE, DOSSIER_KEY, DOSSIER_REF, OUT_OF_FILTER, ColumnSpec, Schema, TableSpec

Action = list[Any]


@dataclass
class TableMap:
    """Where a table of the schema lives in the document."""

    spec: TableSpec
    table_id: str
    col_ids: dict[str, str]  # column key → Grist col id (only columns in the current form)


@dataclass
class SchemaPlan:
    """One bundle: the tables and columns to create, each with its registry row (so a column
    exists only if OTP registered it: nothing is ever adopted by its name), then the changes."""

    actions: list[Action]
    maps: dict[str, TableMap]
    recreated: list[str] = field(default_factory=list)  # OTP tables/columns an agent deleted, made again
    released: list[str] = field(default_factory=list)  # OTP columns an agent just turned into formulas
    fresh: dict[str, set[str]] = field(default_factory=dict)  # table key → column keys created now
    refill: bool = False  # an OTP table or column was made again: every dossier is fetched to fill it


# Columns the copy cannot do without (besides each table's row key): an agent who turns one into
# a formula keeps it, and OTP makes a column of its own again.
ESSENTIAL = frozenset({DOSSIER_REF, DATE_MODIFIED, BIN_DATE, DELETED_DATE, OUT_OF_FILTER})


def _grist_type(column: ColumnSpec, table_ids: dict[str, str]) -> str:
    if column.type.startswith("Ref:@"):
        return "Ref:" + table_ids[column.type.removeprefix("Ref:@")]
    return column.type


def _column_info(column: ColumnSpec, col_id: str, table_ids: dict[str, str]) -> dict[str, Any]:
    info = {
        "type": _grist_type(column, table_ids),
        "label": column.label,
        "isFormula": False,
        "untieColIdFromLabel": True,
    }
    if column.widget_options:
        info["widgetOptions"] = json.dumps(column.widget_options, ensure_ascii=False)
    return {"id": col_id, **info} if col_id else info


def _registry_record(column: ColumnSpec, table_ids: dict[str, str]) -> dict[str, Any]:
    """What the column registry records of a column: what DS and OTP's mapping chose for it."""
    return {
        "Libelle_DS": column.label,
        "Type_DS": column.ds_type,
        "Dans_le_formulaire": column.in_form,
        "Type_Grist": _grist_type(column, table_ids),
        "Options_DS": json.dumps(column.widget_options, ensure_ascii=False, sort_keys=True),
    }


def plan_schema(state: DocState, schema: Schema) -> SchemaPlan:
    """Tables and columns to create or change (see `SchemaPlan`). Ownership: OTP writes only
    into the tables and columns its registry holds; an agent's column, whatever its id, is
    never adopted (a new champ whose id is taken gets the next free one)."""
    number = schema.number
    registered = state.registered_tables(number)
    table_rows = {r["Cle"]: r for r in state.meta.get("OTP_Tables", []) if r.get("Demarche") == number}
    by_key = {(r["Table_ref"], r["Cle"]): r for r in state.registered_columns(number)}
    taken_tables = {tid.lower() for tid in state.tables.values()}
    table_ids: dict[str, str] = {}
    plan = SchemaPlan([], {})
    column_adds: list[dict[str, Any]] = []
    stale = sorted(r["id"] for r in by_key.values() if r["Table_ref"] not in state.tables)
    if stale:  # the registry of a table an agent deleted
        plan.actions.append(["BulkRemoveRecord", "OTP_Colonnes", stale])
    for spec in schema.tables:  # `dossiers` first: the others' Ref columns point at it
        table_ref = registered.get(spec.key)
        if table_ref in state.tables:
            table_ids[spec.key] = state.tables[table_ref]
            plan.maps[spec.key] = _plan_existing_table(state, spec, table_ref, by_key, table_ids, plan, column_adds, number)
            if "dossiers" in plan.fresh and spec.key != "dossiers":
                # the dossiers table was made again: the Refs these rows hold point at nothing
                plan.fresh.setdefault(spec.key, set()).add(DOSSIER_REF)
            continue
        table_id = table_ids[spec.key] = naming.table_id(spec.name, taken_tables)
        taken_columns = {"id", "manualsort"}
        col_ids = {c.key: naming.column_id(c.id_hint, taken_columns) for c in spec.columns}
        plan.actions.append(["AddTable", table_id, [_column_info(c, col_ids[c.key], table_ids) for c in spec.columns]])
        row = table_rows.get(spec.key)
        if row is None:
            plan.actions.append(["AddRecord", "OTP_Tables", None, {"Demarche": number, "Cle": spec.key, "Table_ref": 0, "Table_id": table_id}])
        else:  # an agent deleted it: made again, filled by a full sync
            plan.actions.append(["UpdateRecord", "OTP_Tables", row["id"], {"Table_ref": 0, "Table_id": table_id}])
            plan.recreated.append(f"table {table_id}")
            plan.refill = True
        column_adds += [{"Demarche": number, "Cle": c.key, "Table_ref": 0, "Table_id": table_id, "Col_ref": 0,
                         "Col_id": col_ids[c.key], "Rendue": False, **_registry_record(c, table_ids)} for c in spec.columns]
        plan.fresh[spec.key] = set(col_ids)
        plan.maps[spec.key] = TableMap(spec, table_id, col_ids)
    if column_adds:
        names = list(column_adds[0])
        plan.actions.append(["BulkAddRecord", "OTP_Colonnes", [None] * len(column_adds),
                             {n: [a[n] for a in column_adds] for n in names}])
    return plan


def _plan_existing_table(state: DocState, spec: TableSpec, table_ref: int, by_key: dict, table_ids: dict[str, str],
                         plan: SchemaPlan, column_adds: list[dict[str, Any]], number: int) -> TableMap:
    table_id = table_ids[spec.key]
    existing = {c.ref: c for c in state.table_columns(table_ref)}
    taken = {c.col_id.lower() for c in existing.values()} | {"id", "manualsort"}
    essential = ESSENTIAL | set(spec.row_key)
    col_ids: dict[str, str] = {}
    for column in spec.columns:
        entry = by_key.get((table_ref, column.key))
        current = existing.get(entry["Col_ref"]) if entry else None
        if current is not None and current.is_formula:  # an agent made it a formula: theirs now
            if not entry.get("Rendue"):
                plan.released.append(f"{current.label or current.col_id} ({table_id}.{current.col_id})")
                if column.key not in essential:
                    plan.actions.append(["UpdateRecord", "OTP_Colonnes", entry["id"], {"Rendue": True}])
            if column.key not in essential:
                continue
            current = None
        if current is None:  # a new champ, or an OTP column an agent deleted (or made a formula)
            col_id = naming.column_id(column.id_hint, taken)
            plan.actions.append(["AddColumn", table_id, col_id, _column_info(column, "", table_ids)])
            record = {"Table_ref": table_ref, "Table_id": table_id, "Col_ref": 0, "Col_id": col_id, "Rendue": False,
                      **_registry_record(column, table_ids)}
            if entry is None:
                column_adds.append({"Demarche": number, "Cle": column.key, **record})
            else:
                plan.actions.append(["UpdateRecord", "OTP_Colonnes", entry["id"], record])
                if existing.get(entry["Col_ref"]) is None:
                    plan.recreated.append(f"{column.label} ({table_id})")
                plan.refill = True
            plan.fresh.setdefault(spec.key, set()).add(column.key)
        else:
            col_id = current.col_id
            changes = _column_changes(current, column, table_ids, entry)
            if changes:
                plan.actions.append(["ModifyColumn", table_id, col_id, changes])
        col_ids[column.key] = col_id
    return TableMap(spec, table_id, col_ids)


def _column_changes(current, column: ColumnSpec, table_ids: dict[str, str], recorded: dict[str, Any]) -> dict[str, Any]:
    """What OTP changes on a column it registered: only what DS (or OTP's mapping) changed since
    the last sync, compared with what the registry recorded, and only where the column is still
    as OTP left it — never what an agent changed on the column itself (a label, a type, a time
    zone, a format: theirs)."""
    changes: dict[str, Any] = {}
    if recorded.get("Libelle_DS", column.label) != column.label and current.label != column.label:
        changes["label"] = column.label
        changes["untieColIdFromLabel"] = True  # the column id stays what formulas use
    wanted_type = _grist_type(column, table_ids)
    recorded_type = recorded.get("Type_Grist") or wanted_type
    retargeted = recorded_type.startswith("Ref:") and wanted_type.startswith("Ref:")  # its table made again
    if recorded_type != wanted_type and current.type != wanted_type and (retargeted or _as_otp_left_it(current.type, recorded_type)):
        changes["type"] = wanted_type  # Grist converts the cells and keeps what it cannot convert
    recorded_options = _options_of(recorded.get("Options_DS"), column.widget_options)
    if column.widget_options and recorded_options != column.widget_options:
        merged = {**current.widget_options, **column.widget_options}
        if merged != current.widget_options:
            changes["widgetOptions"] = json.dumps(merged, ensure_ascii=False)
    return changes


def _as_otp_left_it(current: str, recorded: str) -> bool:
    """The column's type is the one OTP gave it, or OTP's own widening of an integer column
    (see `plan_int_widening`); any other type is an agent's choice."""
    return current == recorded or (recorded == "Int" and current in ("Numeric", "Text"))


def _options_of(recorded: Any, default: dict[str, Any]) -> dict[str, Any]:
    try:
        value = json.loads(recorded) if recorded else default
    except ValueError:
        return default
    return value if isinstance(value, dict) else default


def refresh_maps(state: DocState, schema: Schema, maps: dict[str, TableMap]) -> dict[str, TableMap]:
    """Re-read where registered columns live (by their stable ref) once the schema is applied:
    Grist may have renamed a column id (a user's rename, or a label tied to its id)."""
    registered = {(r["Table_ref"], r["Cle"]): r["Col_ref"] for r in state.registered_columns(schema.number)}
    fresh = {}
    for key, table_map in maps.items():
        table_ref = state.table_ref(table_map.table_id)
        col_ids = {}
        for col_key, col_id in table_map.col_ids.items():
            column = state.columns.get(registered.get((table_ref, col_key), -1))
            if column is not None and column.table_ref == table_ref and state.column_ref(table_map.table_id, col_id) is None:
                col_id = column.col_id
            col_ids[col_key] = col_id
        fresh[key] = TableMap(table_map.spec, table_map.table_id, col_ids)
    return fresh


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


def plan_ref_display(state: DocState, maps: dict[str, TableMap]) -> list[Action]:
    """Show dossier references by the dossier's number rather than a row id."""
    dossiers = maps["dossiers"]
    number_ref = state.column_ref(dossiers.table_id, dossiers.col_ids[DOSSIER_KEY])
    actions: list[Action] = []
    for table_map in maps.values():
        col_id = table_map.col_ids.get(DOSSIER_REF)
        col_ref = state.column_ref(table_map.table_id, col_id) if col_id else None
        column = state.columns.get(col_ref) if col_ref else None
        if column is None or not column.type.startswith("Ref:") or column.visible_col or not number_ref:
            continue
        actions.append(["ModifyColumn", table_map.table_id, col_id, {"visibleCol": number_ref}])
        actions.append(["SetDisplayFormula", table_map.table_id, None, col_ref, f"${col_id}.{dossiers.col_ids[DOSSIER_KEY]}"])
    return actions


def plan_registry(state: DocState, schema: Schema, maps: dict[str, TableMap]) -> list[Action]:
    """Record (after the schema actions applied and `state` was reloaded) where everything lives:
    the refs of what was just created (registered by id in its own bundle), ids renamed since."""
    number = schema.number
    actions: list[Action] = []
    table_rows = {r["Cle"]: r for r in state.meta.get("OTP_Tables", []) if r.get("Demarche") == number}
    table_ids = {k: m.table_id for k, m in maps.items()}
    for key, table_map in maps.items():
        record = {"Table_ref": state.table_ref(table_map.table_id), "Table_id": table_map.table_id}
        row = table_rows.get(key)
        if row is None:
            actions.append(["AddRecord", "OTP_Tables", None, {"Demarche": number, "Cle": key, **record}])
        elif any(row.get(k) != v for k, v in record.items()):
            actions.append(["UpdateRecord", "OTP_Tables", row["id"], record])
    raw = {r["id"]: r for r in state.meta.get("OTP_Colonnes", [])}
    registered = {(r["Table_ref"], r["Cle"]): r for r in state.registered_columns(number)}
    adds: list[dict[str, Any]] = []
    wanted_keys = set()
    for key, table_map in maps.items():
        table_ref = state.table_ref(table_map.table_id)
        for column in table_map.spec.columns:
            wanted_keys.add((table_ref, column.key))
            col_id = table_map.col_ids.get(column.key)
            if col_id is None:
                continue  # an agent's formula now (`SchemaPlan.released`)
            record = {"Table_ref": table_ref, "Table_id": table_map.table_id,
                      "Col_ref": state.column_ref(table_map.table_id, col_id), "Col_id": col_id, "Rendue": False,
                      **_registry_record(column, table_ids)}
            row = registered.get((table_ref, column.key))
            if row is None:
                adds.append({"Demarche": number, "Cle": column.key, **record})
            elif any(raw[row["id"]].get(k) != v for k, v in record.items()):
                actions.append(["UpdateRecord", "OTP_Colonnes", row["id"], record])
    for (table_ref, col_key), row in registered.items():
        if (table_ref, col_key) not in wanted_keys and row.get("Dans_le_formulaire"):
            actions.append(["UpdateRecord", "OTP_Colonnes", row["id"], {"Dans_le_formulaire": False}])
    if adds:
        names = list(adds[0])
        actions.append(["BulkAddRecord", "OTP_Colonnes", [None] * len(adds), {n: [a[n] for a in adds] for n in names}])
    return actions


# ---- rows -----------------------------------------------------------------------------------

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
    _signatures: dict[tuple, dict[tuple, int | None]] = field(default_factory=dict)  # see `loose_match`

    @classmethod
    def from_columns(cls, columns: dict[str, list[Any]], table_map: TableMap, fresh: frozenset[str] | set[str] = frozenset()) -> TableIndex:
        """`fresh`: column keys created at this sync: a key column among them (deleted by an
        agent, made again; a Ref whose dossiers table was made again) makes every row loose."""
        if any(k in fresh for k in table_map.spec.row_key):
            columns = {**columns, **{table_map.col_ids[k]: [None] * len(columns.get("id") or []) for k in table_map.spec.row_key if k in fresh}}
        key_ids = [table_map.col_ids[k] for k in table_map.spec.row_key]
        ids = columns.get("id") or []
        names = [n for n in columns if n != "id"]
        ref_col = table_map.col_ids.get(DOSSIER_REF)
        index = cls({}, ref_col)
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
        return index

    def put(self, key: Key, row_id: int, values: dict[str, Any]) -> None:
        self.rows[key] = (row_id, values)
        if self.ref_col is not None:
            self.owned.setdefault(values.get(self.ref_col), set()).add(key)

    def drop(self, key: Key) -> None:
        row = self.rows.pop(key, None)
        if row is not None and self.ref_col is not None:
            self.owned.get(row[1].get(self.ref_col), set()).discard(key)

    def loose_match(self, columns: tuple[str, ...], signature: tuple) -> int | None:
        """The loose row whose cells in `columns` are `signature`, when exactly one is (rows of
        the same content, e.g. empty annotations, are left alone: which dossier they were is
        unknowable)."""
        by_signature = self._signatures.get(columns)
        if by_signature is None:
            by_signature = self._signatures[columns] = {}
            for row_id, values in self.loose.items():
                sig = _signature(values, columns)
                by_signature[sig] = None if sig in by_signature else row_id
        return by_signature.get(signature)

    def attach(self, row_id: int, key: Key, cells: dict[str, Any]) -> None:
        """A loose row got its key back."""
        values = self.loose.pop(row_id)
        self._signatures.clear()
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
    if value in ("", None):
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return round(float(value), 6)
    if isinstance(value, list):
        return tuple(value)
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

    def touched_keys(self) -> list[Key]:
        """Keys of every row this plan adds, changes or removes."""
        return [*self.add_keys, *self.update_keys, *self.remove_keys]

    def actions(self) -> list[Action]:
        out: list[Action] = []
        if self.add_keys:
            out.append(["BulkAddRecord", self.table_id, [None] * len(self.add_keys), self.add])
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
    fresh: frozenset[str] | set[str] = frozenset(),
) -> RowPlan:
    """Diff `rows` (by column key, refs resolved) against `index`.

    `owners`: for a child table, the dossier row ids the rows cover; rows of those dossiers that
    DS no longer has are removed (a block row deleted in DS disappears in Grist).
    `volatile`: column keys whose change alone is no change (DS re-signs file URLs at every
    request): written with a real change of the row, never on their own.
    `fresh`: column keys created at this sync (empty in the rows the document holds): a row
    DS gives that the index lacks takes back the loose row of the same content (the other
    columns), if exactly one has it — with the agents' cells on it.
    """
    col_ids = table_map.col_ids
    names = [col_ids[k] for k in col_ids]
    key_keys = table_map.spec.row_key
    plan = RowPlan(table_map.table_id, add={n: [] for n in names}, update={n: [] for n in names})
    adds = [(k, plan.add[n]) for k, n in col_ids.items()]  # (column key, its cells): no dict per row
    updates = [(k, plan.update[n]) for k, n in col_ids.items()]
    compared = [(k, n) for k, n in col_ids.items() if k not in volatile]
    matched = [(k, n) for k, n in compared if k != DOSSIER_REF and k not in fresh]
    signature_cols = tuple(n for _, n in matched)
    seen: set[Key] = set()
    for row in rows:
        key = tuple(key_cell(row[k]) for k in key_keys)
        if key in seen:
            continue
        seen.add(key)
        current = index.rows.get(key)
        if current is None and index.loose:
            signature = tuple(_signature_cell(row.get(k)) for k, _ in matched)
            row_id = index.loose_match(signature_cols, signature) if any(v not in (None, False) for v in signature) else None
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


@dataclass
class Membership:
    """What becomes of the dossiers the document holds, once DS's lists were read."""

    bin_dates: dict[int, Any] = field(default_factory=dict)  # number → « Dans la corbeille » cell
    deleted_dates: dict[int, Any] = field(default_factory=dict)  # number → « Supprimé dans DS le »
    remove: set[int] = field(default_factory=set)
    out_of_filter: dict[int, bool] = field(default_factory=dict)  # number → « Hors du filtre » cell
    filtered_out: list[int] = field(default_factory=list)  # newly outside the agent's filter
    binned: list[int] = field(default_factory=list)  # newly in the bin
    restored: list[int] = field(default_factory=list)  # out of the bin again
    deleted: list[int] = field(default_factory=list)  # newly deleted (removed or flagged)


def plan_membership(held: dict[int, tuple[Any, Any]], listed: set[int], pending: dict[int, float],
                    deleted: dict[int, float], *, keep_deleted: bool,
                    now: float, excluded: frozenset[int] | set[int] = frozenset(), keep_excluded: bool = False,
                    out_cells: dict[int, Any] | None = None) -> Membership:
    """`held`: number → (bin cell, deleted cell) as the document has them; `listed`: every dossier
    DS has now (its listing, completed by asking DS for each dossier it did not list); `pending`:
    DS's bin, read after that listing; confirmed deletions (number → date) for their dates.

    A dossier DS lists is alive (a restored one leaves the bin: same row, agents' cells intact —
    DS may not even change its modification date). One in the bin is kept and flagged. One in
    neither is deleted: removed, or flagged if the agent keeps them. One DS lists but outside the
    agent's filter (`excluded`) is removed, or kept and marked."""
    out = Membership()
    out_cells = out_cells or {}
    for number, (bin_cell, deleted_cell) in held.items():
        if deleted_cell and number not in listed:
            continue  # deleted earlier and kept: stays as it is
        if number in listed and number not in pending:
            if number in excluded:
                if not out_cells.get(number):
                    out.filtered_out.append(number)
                if keep_excluded:
                    out.out_of_filter[number] = True
                else:
                    out.remove.add(number)
                    continue
            else:
                out.out_of_filter[number] = False
        if number in pending:
            out.bin_dates[number] = bin_cell or pending[number]
            if not bin_cell:
                out.binned.append(number)
        elif number in listed:
            out.bin_dates[number] = None
            if bin_cell:
                out.restored.append(number)
            if deleted_cell:
                out.deleted_dates[number] = None
        else:
            out.deleted.append(number)
            if keep_deleted:
                out.deleted_dates[number] = deleted.get(number) or now
                out.bin_dates[number] = None
            else:
                out.remove.add(number)
    return out


def changed_dossiers(copied: dict[int, float | None], nodes: list[dict[str, Any]], *,
                     reread: float | None = None) -> dict[int, str]:
    """The listed dossiers (light nodes) that the copy does not hold as DS has them: new ones,
    those whose modification date moved since they were copied (`copied`: number → the copy's
    « Date de dernière modification », in seconds), and those dated from `reread` on (copied in
    the second of their date: see `sync.reread_since`). Returns number → DS's date."""
    out = {}
    for node in nodes:
        number, date = node["number"], node.get("dateDerniereModification")
        seconds = datetime_cell(date)
        if number not in copied or (seconds is not None and (seconds != copied[number] or (reread is not None and seconds >= reread))):
            out[number] = date
    return out
