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
from .grist_values import same_cell
from .schema import DOSSIER_KEY, DOSSIER_REF, ColumnSpec, Schema, TableSpec

Action = list[Any]


@dataclass
class TableMap:
    """Where a table of the schema lives in the document."""

    spec: TableSpec
    table_id: str
    col_ids: dict[str, str]  # column key → Grist col id (only columns in the current form)


@dataclass
class SchemaPlan:
    actions: list[Action]
    maps: dict[str, TableMap]
    new_tables: dict[str, str] = field(default_factory=dict)  # table key → table id created
    new_columns: list[tuple[str, str, str]] = field(default_factory=list)  # (table key, col key, col id)


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


def plan_schema(state: DocState, schema: Schema) -> SchemaPlan:
    registered = state.registered_tables(schema.number)
    by_key = {(r["Table_ref"], r["Cle"]): r for r in state.registered_columns(schema.number)}
    taken_tables = {tid.lower() for tid in state.tables.values()}
    table_ids: dict[str, str] = {}
    plan = SchemaPlan([], {})
    for spec in schema.tables:  # `dossiers` first: the others' Ref columns point at it
        table_ref = registered.get(spec.key)
        if table_ref in state.tables:
            table_id = state.tables[table_ref]
            table_ids[spec.key] = table_id
            plan.maps[spec.key] = _plan_existing_table(state, spec, table_ref, table_id, by_key, table_ids, plan)
        else:
            table_id = naming.table_id(spec.name, taken_tables)
            table_ids[spec.key] = table_id
            taken_columns = {"id", "manualsort"}
            col_ids = {c.key: naming.column_id(c.id_hint, taken_columns) for c in spec.columns}
            plan.actions.append(
                ["AddTable", table_id, [_column_info(c, col_ids[c.key], table_ids) for c in spec.columns]]
            )
            plan.new_tables[spec.key] = table_id
            plan.new_columns += [(spec.key, key, col_id) for key, col_id in col_ids.items()]
            plan.maps[spec.key] = TableMap(spec, table_id, col_ids)
    return plan


def _plan_existing_table(state, spec, table_ref, table_id, by_key, table_ids, plan) -> TableMap:
    existing = {c.ref: c for c in state.table_columns(table_ref)}
    taken = {c.col_id.lower() for c in existing.values()} | {"id", "manualsort"}
    col_ids: dict[str, str] = {}
    for column in spec.columns:
        entry = by_key.get((table_ref, column.key))
        current = existing.get(entry["Col_ref"]) if entry else None
        if current is None:  # new champ in the form, or a column the user deleted
            col_id = naming.column_id(column.id_hint, taken)
            plan.actions.append(["AddColumn", table_id, col_id, _column_info(column, "", table_ids)])
            plan.new_columns.append((spec.key, column.key, col_id))
        else:
            col_id = current.col_id
            changes = _column_changes(current, column, table_ids)
            if changes:
                plan.actions.append(["ModifyColumn", table_id, col_id, changes])
        col_ids[column.key] = col_id
    return TableMap(spec, table_id, col_ids)


def _column_changes(current, column: ColumnSpec, table_ids: dict[str, str]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if current.label != column.label:
        changes["label"] = column.label
        changes["untieColIdFromLabel"] = True  # the column id stays what formulas use
    wanted_type = _grist_type(column, table_ids)
    widened = wanted_type == "Int" and current.type == "Numeric"  # see sync: big integers
    if current.type != wanted_type and not widened:
        changes["type"] = wanted_type  # Grist converts the cells and keeps what it cannot convert
    if column.widget_options:
        merged = {**current.widget_options, **column.widget_options}
        if merged != current.widget_options:
            changes["widgetOptions"] = json.dumps(merged, ensure_ascii=False)
    return changes


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


def plan_int_widening(table_map: TableMap, rows: list[dict[str, Any]], current_types: dict[str, str]) -> list[Action]:
    """Grist's Int holds 32-bit values; a DS integer beyond that turns its column into a Numeric
    with no decimals (exact up to 2**53) rather than an error cell. Never narrowed back."""
    actions: list[Action] = []
    for column in table_map.spec.columns:
        col_id = table_map.col_ids[column.key]
        if column.type != "Int" or column.ds_type == "otp" or current_types.get(col_id) == "Numeric":
            continue
        if any(isinstance(v := row.get(column.key), int) and v not in INT32 for row in rows):
            actions.append(["ModifyColumn", table_map.table_id, col_id, {"type": "Numeric", "widgetOptions": json.dumps({"decimals": 0})}])
            current_types[col_id] = "Numeric"
    return actions


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
    """Record (after the schema actions applied and `state` was reloaded) where everything lives."""
    number = schema.number
    actions: list[Action] = []
    registered_tables = {r["Cle"]: r for r in state.meta.get("OTP_Tables", []) if r.get("Demarche") == number}
    add_tables = []
    for key, table_map in maps.items():
        ref = state.table_ref(table_map.table_id)
        row = registered_tables.get(key)
        if row is None:
            add_tables.append((key, ref))
        elif row["Table_ref"] != ref:
            actions.append(["UpdateRecord", "OTP_Tables", row["id"], {"Table_ref": ref}])
    if add_tables:
        actions.append(["BulkAddRecord", "OTP_Tables", [None] * len(add_tables), {
            "Demarche": [number] * len(add_tables),
            "Cle": [k for k, _ in add_tables],
            "Table_ref": [r for _, r in add_tables],
        }])
    registered = {(r["Table_ref"], r["Cle"]): r for r in state.registered_columns(number)}
    adds: list[dict[str, Any]] = []
    updates: list[tuple[int, dict[str, Any]]] = []
    wanted_keys = set()
    for key, table_map in maps.items():
        table_ref = state.table_ref(table_map.table_id)
        for column in table_map.spec.columns:
            wanted_keys.add((table_ref, column.key))
            record = {
                "Col_ref": state.column_ref(table_map.table_id, table_map.col_ids[column.key]),
                "Libelle_DS": column.label,
                "Type_DS": column.ds_type,
                "Dans_le_formulaire": True,
            }
            row = registered.get((table_ref, column.key))
            if row is None:
                adds.append({"Demarche": number, "Table_ref": table_ref, "Cle": column.key, **record})
            elif any(row.get(k) != v for k, v in record.items()):
                updates.append((row["id"], record))
    for (table_ref, col_key), row in registered.items():
        if (table_ref, col_key) not in wanted_keys and row.get("Dans_le_formulaire"):
            updates.append((row["id"], {"Dans_le_formulaire": False}))
    if adds:
        names = list(adds[0])
        actions.append(["BulkAddRecord", "OTP_Colonnes", [None] * len(adds), {n: [a[n] for a in adds] for n in names}])
    for row_id, record in updates:
        actions.append(["UpdateRecord", "OTP_Colonnes", row_id, record])
    return actions


# ---- rows -----------------------------------------------------------------------------------

Key = tuple[Any, ...]


@dataclass
class TableIndex:
    """The rows of one OTP table as the document holds them, by row key."""

    rows: dict[Key, tuple[int, dict[str, Any]]]  # key → (row id, {col id: cell})

    @classmethod
    def from_columns(cls, columns: dict[str, list[Any]], table_map: TableMap) -> TableIndex:
        key_ids = [table_map.col_ids[k] for k in table_map.spec.row_key]
        ids = columns.get("id") or []
        names = [n for n in columns if n != "id"]
        rows: dict[Key, tuple[int, dict[str, Any]]] = {}
        for i, row_id in enumerate(ids):
            values = {n: columns[n][i] for n in names}
            key = tuple(values.get(k) for k in key_ids)
            rows.setdefault(key, (row_id, values))  # a duplicate key is left as it is
        return cls(rows)


@dataclass
class RowPlan:
    table_id: str
    add_keys: list[Key]
    add: dict[str, list[Any]]  # col id → cells, in add_keys order
    update_ids: list[int]
    update: dict[str, list[Any]]
    remove_ids: list[int]
    update_keys: list[Key] = field(default_factory=list)  # row keys, in update_ids order
    remove_keys: list[Key] = field(default_factory=list)

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
) -> RowPlan:
    """Diff `rows` (by column key, refs resolved) against `index`.

    `owners`: for a child table, the dossier row ids the rows cover; rows of those dossiers that
    DS no longer has are removed (a block row deleted in DS disappears in Grist).
    """
    col_ids = table_map.col_ids
    names = [col_ids[k] for k in col_ids]
    key_keys = table_map.spec.row_key
    add_keys: list[Key] = []
    add: dict[str, list[Any]] = {n: [] for n in names}
    update_ids: list[int] = []
    update_keys: list[Key] = []
    update: dict[str, list[Any]] = {n: [] for n in names}
    seen: set[Key] = set()
    for row in rows:
        key = tuple(row[k] for k in key_keys)
        if key in seen:
            continue
        seen.add(key)
        cells = {col_ids[k]: row.get(k) for k in col_ids}
        current = index.rows.get(key)
        if current is None:
            add_keys.append(key)
            for n in names:
                add[n].append(cells[n])
        elif any(not same_cell(current[1].get(n), cells[n]) for n in names):
            update_ids.append(current[0])
            update_keys.append(key)
            for n in names:
                update[n].append(cells[n])
    remove_ids: list[int] = []
    remove_keys: list[Key] = []
    if owners is not None:
        ref_id = col_ids[DOSSIER_REF]
        for key, (row_id, values) in index.rows.items():
            if values.get(ref_id) in owners and key not in seen:
                remove_ids.append(row_id)
                remove_keys.append(key)
    return RowPlan(table_map.table_id, add_keys, add, update_ids, update, remove_ids, update_keys, remove_keys)


def record_written(index: TableIndex, plan: RowPlan, new_ids: list[int]) -> None:
    """Bring the index up to date with what a plan wrote (no need to fetch the table again)."""
    for i, key in enumerate(plan.add_keys):
        index.rows[key] = (new_ids[i], {n: plan.add[n][i] for n in plan.add})
    if not (plan.update_ids or plan.remove_ids):
        return
    key_of = {row_id: key for key, (row_id, _) in index.rows.items()}
    for i, row_id in enumerate(plan.update_ids):
        key = key_of[row_id]
        index.rows[key] = (row_id, {**index.rows[key][1], **{n: plan.update[n][i] for n in plan.update}})
    for row_id in plan.remove_ids:
        index.rows.pop(key_of[row_id], None)
