"""Tables and columns: (document state, wanted schema) → Grist user actions and the registry (pure).

Tables and columns are created from the descriptors, each registered in the bundle that creates
it; labels, types and options follow DS where the column is still as OTP left it; nothing an
agent added or chose is touched (README « Who owns what »).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from . import naming
from ..grist.meta import DocState
from ..grist.values import datetime_cell, same_cell
from .schema import BIN_DATE, DATE_MODIFIED, DELETED_DATE, DOSSIER_KEY, DOSSIER_REF, OUT_OF_FILTER, ColumnSpec, Schema, TableSpec

Action = list[Any]


@dataclass
class TableMap:
    """Where a table of the schema lives in the document."""

    spec: TableSpec
    table_id: str
    col_ids: dict[str, str]  # column key → Grist col id (only columns in the current form)
    released: dict[str, str] = field(default_factory=dict)  # column key → col id of an OTP column an agent made a formula

    def written(self) -> dict[str, str]:
        """The columns the copy writes (not the agents' inputs OTP made, see `ColumnSpec.written`)."""
        unwritten = {c.key for c in self.spec.columns if not c.written}
        return {k: n for k, n in self.col_ids.items() if k not in unwritten} if unwritten else self.col_ids


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
    created: set[str] = field(default_factory=set)  # tables created now (all their columns fresh)
    typed: set[tuple[str, str]] = field(default_factory=set)  # (table key, column key) whose type OTP sets now


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
    by_key = {(r["Table_ref"], r["Cle"]): r for r in state.registered_columns(number)}
    stale = sorted(r["id"] for r in by_key.values() if r["Table_ref"] not in state.tables)
    plan = SchemaPlan([["BulkRemoveRecord", "OTP_Colonnes", stale]] if stale else [], {})  # a deleted table's registry
    table_ids: dict[str, str] = {}
    taken_tables = {tid.lower() for tid in state.tables.values()}
    column_adds: list[dict[str, Any]] = []
    remade: set[str] = set()
    for spec in schema.tables:  # `dossiers` first: the others' Ref columns point at it
        table_ref = registered.get(spec.key)
        if table_ref in state.tables:
            table_ids[spec.key] = state.tables[table_ref]
            part = _plan_existing_table(state, spec, table_ref, by_key, table_ids, number)
            if "dossiers" in remade:  # the Refs these rows hold point at a table that is no more
                part.fresh.add(DOSSIER_REF)
        else:
            table_ids[spec.key] = naming.table_id(spec.name, taken_tables)
            part = _plan_new_table(state, spec, table_ids, number)
            remade |= {spec.key} if part.refill else set()
        plan.maps[spec.key] = part.table_map
        plan.created |= {spec.key} if table_ref not in state.tables else set()
        plan.typed |= {(spec.key, k) for k in part.typed}
        plan.actions += part.actions
        column_adds += part.column_adds
        plan.recreated += part.recreated
        plan.released += part.released
        if part.fresh:
            plan.fresh[spec.key] = part.fresh
        plan.refill = plan.refill or part.refill
    if column_adds:
        names = list(column_adds[0])
        plan.actions.append(["BulkAddRecord", "OTP_Colonnes", [None] * len(column_adds),
                             {n: [a[n] for a in column_adds] for n in names}])
    return plan


@dataclass
class _TablePlan:
    """What planning one table gives (`plan_schema` puts them together)."""

    table_map: TableMap
    actions: list[Action] = field(default_factory=list)
    column_adds: list[dict[str, Any]] = field(default_factory=list)  # OTP_Colonnes rows, added in the last action
    recreated: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    fresh: set[str] = field(default_factory=set)
    refill: bool = False
    typed: set[str] = field(default_factory=set)  # column keys whose type OTP sets now


def _plan_new_table(state: DocState, spec: TableSpec, table_ids: dict[str, str], number: int) -> _TablePlan:
    table_id = table_ids[spec.key]
    taken_columns = {"id", "manualsort"}
    col_ids = {c.key: naming.column_id(c.id_hint, taken_columns) for c in spec.columns}
    part = _TablePlan(TableMap(spec, table_id, col_ids), fresh=set(col_ids), typed=set(col_ids))
    part.actions.append(["AddTable", table_id, [_column_info(c, col_ids[c.key], table_ids) for c in spec.columns]])
    row = next((r for r in state.meta.get("OTP_Tables", []) if r.get("Demarche") == number and r.get("Cle") == spec.key), None)
    if row is None:
        part.actions.append(["AddRecord", "OTP_Tables", None, {"Demarche": number, "Cle": spec.key, "Table_ref": 0, "Table_id": table_id}])
    else:  # an agent deleted it: made again, filled by a full sync
        part.actions.append(["UpdateRecord", "OTP_Tables", row["id"], {"Table_ref": 0, "Table_id": table_id}])
        part.recreated.append(f"table {table_id}")
        part.refill = True
    part.column_adds = [{"Demarche": number, "Cle": c.key, "Table_ref": 0, "Table_id": table_id, "Col_ref": 0,
                         "Col_id": col_ids[c.key], "Rendue": False, **_registry_record(c, table_ids)} for c in spec.columns]
    return part


def _plan_existing_table(state: DocState, spec: TableSpec, table_ref: int, by_key: dict, table_ids: dict[str, str],
                         number: int) -> _TablePlan:
    table_id = table_ids[spec.key]
    existing = {c.ref: c for c in state.table_columns(table_ref)}
    taken = {c.col_id.lower() for c in existing.values()} | {"id", "manualsort"}
    essential = ESSENTIAL | set(spec.row_key)
    part = _TablePlan(TableMap(spec, table_id, {}))
    for column in spec.columns:
        entry = by_key.get((table_ref, column.key))
        current = existing.get(entry["Col_ref"]) if entry else None
        if current is not None and current.is_formula:  # an agent made it a formula: theirs now
            part.table_map.released[column.key] = current.col_id
            if not entry.get("Rendue"):
                part.released.append(f"{current.label or current.col_id} ({table_id}.{current.col_id})")
                if column.key not in essential:
                    part.actions.append(["UpdateRecord", "OTP_Colonnes", entry["id"], {"Rendue": True}])
            if column.key not in essential:
                continue
            current = None
        if current is None:  # a new champ, or an OTP column an agent deleted (or made a formula)
            col_id = naming.column_id(column.id_hint, taken)
            part.actions.append(["AddColumn", table_id, col_id, _column_info(column, "", table_ids)])
            record = {"Table_ref": table_ref, "Table_id": table_id, "Col_ref": 0, "Col_id": col_id, "Rendue": False,
                      **_registry_record(column, table_ids)}
            if entry is None:
                part.column_adds.append({"Demarche": number, "Cle": column.key, **record})
            else:
                part.actions.append(["UpdateRecord", "OTP_Colonnes", entry["id"], record])
                part.recreated += [f"{column.label} ({table_id})"] if existing.get(entry["Col_ref"]) is None else []
                part.refill = True
            part.fresh.add(column.key)
            part.typed.add(column.key)
        else:
            col_id = current.col_id
            changes = _column_changes(current, column, table_ids, entry)
            part.actions += [["ModifyColumn", table_id, col_id, changes]] if changes else []
            part.typed |= {column.key} if "type" in changes else set()
        part.table_map.col_ids[column.key] = col_id
    return part


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
        fresh[key] = TableMap(table_map.spec, table_map.table_id, col_ids, table_map.released)
    return fresh


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


def plan_registry(state: DocState, schema: Schema, maps: dict[str, TableMap],
                  typed: set[tuple[str, str]] = frozenset()) -> list[Action]:
    """Record (after the schema actions applied and `state` was reloaded) where everything lives:
    the refs of what was just created (registered by id in its own bundle), ids renamed since.
    `Type_Grist` is the type OTP gave a column: it changes only where OTP set the type now
    (`typed`); a type an agent chose, even one that happens to be OTP's wish, stays theirs."""
    number = schema.number
    actions: list[Action] = []
    updates: list[tuple[str, int, dict[str, Any]]] = []
    table_rows = {r["Cle"]: r for r in state.meta.get("OTP_Tables", []) if r.get("Demarche") == number}
    table_ids = {k: m.table_id for k, m in maps.items()}
    for key, table_map in maps.items():
        record = {"Table_ref": state.table_ref(table_map.table_id), "Table_id": table_map.table_id}
        row = table_rows.get(key)
        if row is None:
            actions.append(["AddRecord", "OTP_Tables", None, {"Demarche": number, "Cle": key, **record}])
        elif any(row.get(k) != v for k, v in record.items()):
            updates.append(("OTP_Tables", row["id"], record))
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
            if row is not None and (key, column.key) not in typed and raw[row["id"]].get("Type_Grist"):
                record["Type_Grist"] = raw[row["id"]]["Type_Grist"]
            if row is None:
                adds.append({"Demarche": number, "Cle": column.key, **record})
            elif any(raw[row["id"]].get(k) != v for k, v in record.items()):
                updates.append(("OTP_Colonnes", row["id"], record))
    planned = {ref for ref, _ in wanted_keys}  # the copy and the prefill table each mark only their own tables
    for (table_ref, col_key), row in registered.items():
        if table_ref in planned and (table_ref, col_key) not in wanted_keys and row.get("Dans_le_formulaire"):
            updates.append(("OTP_Colonnes", row["id"], {"Dans_le_formulaire": False}))
    actions += bulk_updates(updates)
    if adds:
        names = list(adds[0])
        actions.append(["BulkAddRecord", "OTP_Colonnes", [None] * len(adds), {n: [a[n] for a in adds] for n in names}])
    return actions


def bulk_updates(updates: list[tuple[str, int, dict[str, Any]]]) -> list[Action]:
    """Row updates `(table id, row id, record)` as one `BulkUpdateRecord` per table and set of
    columns, in the order first met (Grist handles a bundle's actions one by one: a column's
    registration after a table's creation is 150 updates otherwise)."""
    groups: dict[tuple[str, tuple[str, ...]], list[tuple[int, dict[str, Any]]]] = {}
    for table_id, row_id, record in updates:
        groups.setdefault((table_id, tuple(record)), []).append((row_id, record))
    return [["BulkUpdateRecord", table_id, [row_id for row_id, _ in rows], {c: [r[c] for _, r in rows] for c in cols}]
            for (table_id, cols), rows in groups.items()]


def column_types(state: DocState, maps: dict[str, TableMap]) -> dict[str, dict[str, str]]:
    """Per table key: col id → the column's Grist type now."""
    return {key: {c.col_id: c.type for c in state.table_columns(state.table_ref(m.table_id))} for key, m in maps.items()}


def agent_columns(state: DocState, maps: dict[str, TableMap]) -> dict[str, list[str]]:
    """The columns of OTP's tables that are the agents' own (data columns OTP does not fill)."""
    out = {}
    for key, table_map in maps.items():
        ours = set(table_map.written().values())
        out[key] = [c.col_id for c in state.table_columns(state.table_ref(table_map.table_id))
                    if c.col_id not in ours and not c.is_formula and c.col_id != "manualSort"
                    and not c.col_id.startswith("gristHelper_")]
    return out
