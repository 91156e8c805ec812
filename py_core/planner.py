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
    """Tables and columns to create or change. A table or column OTP created but did not get to
    register (an interrupted first sync) is adopted by its id, never created twice."""
    registered = state.registered_tables(schema.number)
    by_key = {(r["Table_ref"], r["Cle"]): r for r in state.registered_columns(schema.number)}
    claimed = set(registered.values())
    taken_tables = {tid.lower() for tid in state.tables.values()}
    table_ids: dict[str, str] = {}
    plan = SchemaPlan([], {})
    for spec in schema.tables:  # `dossiers` first: the others' Ref columns point at it
        table_ref = registered.get(spec.key)
        if table_ref not in state.tables:
            table_ref = _adoptable_table(state, spec, claimed)
        if table_ref in state.tables:
            claimed.add(table_ref)
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


def _adoptable_table(state: DocState, spec: TableSpec, claimed: set[int]) -> int | None:
    """The unregistered table OTP would have created for `spec` (same id, with its key columns)."""
    wanted = naming.table_id(spec.name, set())
    for ref, table_id in state.tables.items():
        if table_id.lower() == wanted.lower() and ref not in claimed:
            have = {c.col_id.lower() for c in state.table_columns(ref)}
            keys = {naming.column_id(spec.column(k).id_hint, set()).lower() for k in spec.row_key}
            if keys <= have:
                return ref
    return None


def _plan_existing_table(state, spec, table_ref, table_id, by_key, table_ids, plan) -> TableMap:
    existing = {c.ref: c for c in state.table_columns(table_ref)}
    by_id = {c.col_id.lower(): c for c in existing.values()}
    claimed = {entry["Col_ref"] for (ref, _), entry in by_key.items() if ref == table_ref}
    taken = {c.col_id.lower() for c in existing.values()} | {"id", "manualsort"}
    col_ids: dict[str, str] = {}
    for column in spec.columns:
        entry = by_key.get((table_ref, column.key))
        current = existing.get(entry["Col_ref"]) if entry else None
        if current is None and entry is None:  # created, not registered yet: adopt it
            candidate = by_id.get(naming.column_id(column.id_hint, set()).lower())
            if candidate is not None and candidate.ref not in claimed and not candidate.is_formula:
                current, entry = candidate, {}
                claimed.add(candidate.ref)
        if current is None:  # new champ in the form, or a column the user deleted
            col_id = naming.column_id(column.id_hint, taken)
            plan.actions.append(["AddColumn", table_id, col_id, _column_info(column, "", table_ids)])
            plan.new_columns.append((spec.key, column.key, col_id))
        else:
            col_id = current.col_id
            changes = _column_changes(current, column, table_ids, entry or {})
            if changes:
                plan.actions.append(["ModifyColumn", table_id, col_id, changes])
        col_ids[column.key] = col_id
    return TableMap(spec, table_id, col_ids)


def _column_changes(current, column: ColumnSpec, table_ids: dict[str, str], recorded: dict[str, Any]) -> dict[str, Any]:
    """What OTP changes on a column it registered: only what DS (or OTP's mapping) changed since
    the last sync, compared with what the registry recorded — never what an agent changed on
    the column itself (a label, a type, a format: theirs)."""
    changes: dict[str, Any] = {}
    if recorded.get("Libelle_DS", column.label) != column.label and current.label != column.label:
        changes["label"] = column.label
        changes["untieColIdFromLabel"] = True  # the column id stays what formulas use
    wanted_type = _grist_type(column, table_ids)
    recorded_type = recorded.get("Type_Grist") or wanted_type
    if recorded_type != wanted_type and current.type != wanted_type:
        if not (wanted_type == "Int" and current.type == "Numeric"):  # see sync: big integers
            changes["type"] = wanted_type  # Grist converts the cells and keeps what it cannot convert
    recorded_options = _options_of(recorded.get("Options_DS"), column.widget_options)
    if column.widget_options and recorded_options != column.widget_options:
        merged = {**current.widget_options, **column.widget_options}
        if merged != current.widget_options:
            changes["widgetOptions"] = json.dumps(merged, ensure_ascii=False)
    return changes


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
                "Dans_le_formulaire": column.in_form,
                "Type_Grist": _grist_type(column, {k: m.table_id for k, m in maps.items()}),
                "Options_DS": json.dumps(column.widget_options, ensure_ascii=False, sort_keys=True),
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
    """The rows of one OTP table as the document holds them, by row key; for child tables, the
    keys of each dossier's rows (`owned`), so a page's work is proportional to the page."""

    rows: dict[Key, tuple[int, dict[str, Any]]]  # key → (row id, {col id: cell})
    ref_col: str | None = None  # col id of the Ref to the dossier (child tables)
    owned: dict[Any, set[Key]] = field(default_factory=dict)  # dossier row id → keys
    duplicates: list[tuple[Key, int, dict[str, Any]]] = field(default_factory=list)  # extra rows of a key

    @classmethod
    def from_columns(cls, columns: dict[str, list[Any]], table_map: TableMap) -> TableIndex:
        key_ids = [table_map.col_ids[k] for k in table_map.spec.row_key]
        ids = columns.get("id") or []
        names = [n for n in columns if n != "id"]
        ref_col = table_map.col_ids.get(DOSSIER_REF)
        index = cls({}, ref_col)
        missing = [None] * len(ids)
        key_columns = [columns.get(k, missing) for k in key_ids]
        # one row at a time from the columns, by zip (the copy of a large table is read at every sync)
        rows = zip(*(columns[n] for n in names)) if names else [()] * len(ids)
        for row_id, row, key in zip(ids, rows, zip(*key_columns)):
            values = dict(zip(names, row))
            if key in index.rows:  # two syncs at once in an earlier version: repaired later
                index.duplicates.append((key, row_id, values))
                continue
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
) -> RowPlan:
    """Diff `rows` (by column key, refs resolved) against `index`.

    `owners`: for a child table, the dossier row ids the rows cover; rows of those dossiers that
    DS no longer has are removed (a block row deleted in DS disappears in Grist).
    `volatile`: column keys whose change alone is no change (DS re-signs file URLs at every
    request): written with a real change of the row, never on their own.
    """
    col_ids = table_map.col_ids
    names = [col_ids[k] for k in col_ids]
    key_keys = table_map.spec.row_key
    plan = RowPlan(table_map.table_id, add={n: [] for n in names}, update={n: [] for n in names})
    adds = [(k, plan.add[n]) for k, n in col_ids.items()]  # (column key, its cells): no dict per row
    updates = [(k, plan.update[n]) for k, n in col_ids.items()]
    compared = [(k, n) for k, n in col_ids.items() if k not in volatile]
    seen: set[Key] = set()
    for row in rows:
        key = tuple(row[k] for k in key_keys)
        if key in seen:
            continue
        seen.add(key)
        current = index.rows.get(key)
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
        row_id, values = index.rows[key]
        index.drop(key)
        index.put(key, row_id, {**values, **{n: plan.update[n][i] for n in plan.update}})
    for key in plan.remove_keys:
        index.drop(key)


def plan_cells(table_map: TableMap, index: TableIndex, col_key: str, wanted: dict[Key, Any]) -> RowPlan:
    """Set one OTP column on the rows of `wanted` (key → cell) where it differs."""
    col = table_map.col_ids[col_key]
    plan = RowPlan(table_map.table_id, update={col: []})
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


def plan_dedupe(maps: dict[str, TableMap], indexes: dict[str, TableIndex], agent_columns: dict[str, list[str]]) -> list[Action]:
    """Repair duplicate rows of a key (left by two syncs at once in an earlier version): keep the
    first row, copy into it what agents wrote only on a duplicate, remove the duplicates and,
    for dossiers, the child rows that hung on them."""
    actions: list[Action] = []
    for key, table_map in maps.items():
        index = indexes[key]
        if not index.duplicates:
            continue
        fills: dict[int, dict[str, Any]] = {}
        for row_key, _, values in index.duplicates:
            kept_id, kept = index.rows[row_key]
            for col in agent_columns.get(key, []):
                if kept.get(col) in (None, "", False, 0) and values.get(col) not in (None, "", False, 0):
                    fills.setdefault(kept_id, {}).setdefault(col, values[col])
        for row_id, cells in fills.items():
            actions.append(["UpdateRecord", table_map.table_id, row_id, cells])
        extra = sorted(row_id for _, row_id, _ in index.duplicates)
        if key == "dossiers":
            for child, child_map in maps.items():
                orphans = sorted(indexes[child].rows[k][0] for owner in extra for k in indexes[child].owned.get(owner, ()))
                if child != "dossiers" and orphans:
                    actions.append(["BulkRemoveRecord", child_map.table_id, orphans])
        actions.append(["BulkRemoveRecord", table_map.table_id, extra])
    return actions


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


def changed_dossiers(copied: dict[int, float | None], nodes: list[dict[str, Any]]) -> dict[int, str]:
    """The listed dossiers (light nodes) that the copy does not hold as DS has them: new ones,
    and those whose modification date moved since they were copied (`copied`: number → the
    copy's « Date de dernière modification »). Returns number → DS's date."""
    out = {}
    for node in nodes:
        number, date = node["number"], node.get("dateDerniereModification")
        if number not in copied or (date is not None and datetime_cell(date) != copied[number]):
            out[number] = date
    return out
