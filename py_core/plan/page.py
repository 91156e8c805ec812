"""A page of dossiers → what writes it (pure): the rows, the column widenings, then two bundles.

The agents' pending edits of sendable cells stay (`pending.hold_pending`). The dossier rows go first (their new row ids are the children's Refs), the child rows second,
with the copy's modification date: that date is what the next copy compares with DS's, so it
is written last, and a page interrupted between the two bundles is fetched again (its dossiers
keep the date they had). The writer applies them in that order (`grist.writer.Writer`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..ds.models import Dossier
from .diff import Action, Key, RowPlan, TableIndex, exact_integers, plan_cells, plan_int_widening, plan_rows, resolve_refs
from .pending import hold_pending
from .registry import TableMap
from .rows import Row, dossier_rows
from .schema import DATE_MODIFIED, DOSSIER_KEY, Schema

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


def plan_dossiers(table_map: TableMap, index: TableIndex, rows: list[Row]) -> RowPlan:
    """Bundle 1: the dossier rows, each with the modification date the copy had (see above)."""
    date_col = table_map.col_ids[DATE_MODIFIED]
    held_back = [{**row, DATE_MODIFIED: (index.rows.get((row[DOSSIER_KEY],)) or (0, {}))[1].get(date_col)} for row in rows]
    return plan_rows(table_map, index, hold_pending(table_map, index, held_back))


def plan_children(maps: dict[str, TableMap], indexes: dict[str, TableIndex], rows: dict[str, list[Row]],
                  dossier_ids: dict[int, int], numbers: list[int]) -> list[tuple[str, RowPlan]]:
    """Bundle 2 (`dossier_ids` once bundle 1 is written): the child rows, then the dates."""
    owners = {dossier_ids[n] for n in numbers}
    plans = [(key, plan_rows(maps[key], indexes[key], hold_pending(maps[key], indexes[key], resolve_refs(rows[key], dossier_ids)),
                             owners=owners if key not in CHILD_KEYS_WITHOUT_REMOVAL else None,
                             volatile=VOLATILE.get(key, frozenset())))
             for key in maps if key != "dossiers"]
    dates = {(row[DOSSIER_KEY],): row.get(DATE_MODIFIED) for row in rows["dossiers"]}
    return [*plans, ("dossiers", plan_cells(maps["dossiers"], indexes["dossiers"], DATE_MODIFIED, dates))]


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
