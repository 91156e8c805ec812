"""A page of dossiers → what writes it (pure): the rows, the column widenings, then one bundle.

The agents' pending edits of sendable cells stay (`pending.hold_pending`). The dossier rows
come first; the new ones get Grist's temporary ids (-1, -2…), which the child rows' Refs name
and Grist turns into the real ids within the bundle (`temporary_ids`, `settle_ids`). One
bundle a page: all of it is written, with its checkpoint, or none.

Where an agent retyped a child table's Ref (Grist translates temporary ids only in a Ref to
the dossiers table), the page is two bundles: the dossier rows first, holding back the
modification date they had, then the child rows with the dates — that date is what the next
copy compares with DS's, so a page interrupted between the two is fetched again. The writer
applies them (`grist.writer.Writer.write_page`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..ds.models import Dossier
from .diff import Action, Key, RowPlan, TableIndex, exact_integers, plan_cells, plan_int_widening, plan_rows, resolve_refs
from .pending import hold_pending
from .registry import TableMap
from .rows import Row, dossier_rows
from .schema import DATE_MODIFIED, DOSSIER_KEY, DOSSIER_REF, Schema

CHILD_KEYS_WITHOUT_REMOVAL = ("champs", "annotations")  # one row per dossier, never pruned by page
VOLATILE = {"fichiers": frozenset({"lien"})}  # DS signs file URLs anew at every request


@dataclass(frozen=True)
class PageRows:
    rows: dict[str, list[Row]]  # by table key: the page's rows, integers beyond 2**53 as text
    widen: list[Action]  # column types to widen before writing them
    types: dict[str, dict[str, str]]  # the column types after that


def page_rows(dossiers: list[Dossier], schema: Schema, maps: dict[str, TableMap],
              types: dict[str, dict[str, str]]) -> PageRows:
    by_table: dict[str, list[Row]] = {key: [] for key in maps}
    for dossier in dossiers:
        for key, rows in dossier_rows(dossier, schema).items():
            by_table[key].extend(rows)
    widen: list[Action] = []
    new_types = {}
    for key, rows in by_table.items():
        actions, new_types[key] = plan_int_widening(maps[key], rows, types[key])
        widen += actions
    return PageRows({key: exact_integers(maps[key], rows) for key, rows in by_table.items()}, widen, new_types)


def plan_dossiers(table_map: TableMap, index: TableIndex, rows: list[Row], *, hold_dates: bool) -> RowPlan:
    """The dossier rows; `hold_dates`: written apart from their child rows, each with the
    modification date the copy had (see above)."""
    if hold_dates:
        date_col = table_map.col_ids[DATE_MODIFIED]
        rows = [{**row, DATE_MODIFIED: (index.rows.get((row[DOSSIER_KEY],)) or (0, {}))[1].get(date_col)} for row in rows]
    return plan_rows(table_map, index, hold_pending(table_map, index, rows))


def temporary_ids(dossier_plan: RowPlan) -> dict[int, int]:
    """The dossiers the plan adds get Grist's temporary ids: dossier number → -1, -2…"""
    dossier_plan.add_ids = [-(i + 1) for i in range(len(dossier_plan.add_keys))]
    return {key[0]: temp for key, temp in zip(dossier_plan.add_keys, dossier_plan.add_ids)}


def settle_ids(maps: dict[str, TableMap], plans: list[tuple[str, RowPlan]], real: dict[int, int]) -> None:
    """Once Grist wrote the bundle: the temporary ids the child plans hold (their keys, their
    Ref cells), as the row ids Grist gave (`real`: temporary → row id)."""
    def settled(value: Any) -> Any:
        return real.get(value, value) if isinstance(value, int) and value < 0 else value

    for key, plan in plans:
        ref = maps[key].col_ids.get(DOSSIER_REF)
        if key == "dossiers" or ref is None:
            continue
        for cells in (plan.add.get(ref), plan.update.get(ref)):
            if cells:
                cells[:] = [settled(v) for v in cells]
        for keys in (plan.add_keys, plan.update_keys, plan.remove_keys):
            keys[:] = [(settled(k[0]), *k[1:]) for k in keys]


def plan_children(maps: dict[str, TableMap], indexes: dict[str, TableIndex], rows: dict[str, list[Row]],
                  dossier_ids: dict[int, int], numbers: list[int], *, dates: bool) -> list[tuple[str, RowPlan]]:
    """The child rows (`dossier_ids`: the dossiers' row ids, or temporary ids); `dates`: then
    the modification dates the dossier rows were written without."""
    owners = {dossier_ids[n] for n in numbers}
    plans = [(key, plan_rows(maps[key], indexes[key], hold_pending(maps[key], indexes[key], resolve_refs(rows[key], dossier_ids)),
                             owners=owners if key not in CHILD_KEYS_WITHOUT_REMOVAL else None,
                             volatile=VOLATILE.get(key, frozenset())))
             for key in maps if key != "dossiers"]
    if not dates:
        return plans
    held = {(row[DOSSIER_KEY],): row.get(DATE_MODIFIED) for row in rows["dossiers"]}
    return [*plans, ("dossiers", plan_cells(maps["dossiers"], indexes["dossiers"], DATE_MODIFIED, held))]


def page_counts(dossier_plan: RowPlan, children: list[tuple[str, RowPlan]], dossier_ids: dict[int, int]) -> tuple[set[int], set[int]]:
    """The numbers of the dossiers the page added, and of those it changed (one dossier is one
    change, whatever it touched)."""
    number_of = {row_id: number for number, row_id in dossier_ids.items()}
    added = {key[0] for key in dossier_plan.add_keys}
    changed = {key[0] for key in dossier_plan.update_keys}
    for key, plan in children:
        touched: list[Key] = plan.touched_keys()
        changed |= {k[0] for k in touched} if key == "dossiers" else {number_of[k[0]] for k in touched if k[0] in number_of}
    return added, changed - added
