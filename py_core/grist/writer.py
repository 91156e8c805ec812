"""The writer: holds the document's rows of a procedure's tables and applies planned diffs.

Thin on purpose: what to write is decided by the pure planners (`plan/`); the writer sends
the plans as bundles through a `FencedSink` (each write renews the sync's lease and may carry
its checkpoint) and keeps its indexes up to date with what was written.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from ..jobs.checkpoint import Checkpoint
from ..jobs.lease import FencedSink
from ..ds.models import Dossier
from ..plan.diff import Repair, RowPlan, TableIndex, plan_cells, plan_dedupe, plan_removal, plan_sweep, record_written
from ..plan.page import VOLATILE, PageRows, page_counts, page_rows, plan_children, plan_dossiers, settle_ids, temporary_ids
from ..plan.registry import TableMap
from ..plan.pending import hold_pending
from ..plan.schema import BASE, DOSSIER_KEY, DOSSIER_REF, LABELS, Schema
from .values import choice_list_cell


@dataclass(frozen=True)
class Prepared:
    """A page's rows, built for the column types the writer had then (`Writer.prepare`)."""

    dossiers: list[Dossier]
    types: dict[str, dict[str, str]]
    rows: PageRows


class Writer:
    def __init__(self, sink: FencedSink, maps: dict[str, TableMap], types: dict[str, dict[str, str]],
                 agent_columns: dict[str, list[str]], fresh: dict[str, set[str]] | None = None):
        self.sink = sink
        self.maps = maps
        self.types = types  # per table key: col id → Grist type
        self.agent_columns = agent_columns  # per table key: columns that are the agents'
        self.fresh = fresh or {}  # per table key: column keys created at this sync (see `plan_rows`)
        self.indexes: dict[str, TableIndex] = {}
        self.dossier_ids: dict[int, int] = {}  # dossier number → row id
        self.repairs = Repair()  # duplicates merged, stray rows removed or kept (for the history)
        self.reattached = 0  # rows that got their dossier back (see `TableIndex.loose`)
        self._reading: asyncio.Future | None = None  # the other tables being read (`read_ahead`)

    async def load(self) -> None:
        """Index the dossiers table; the other tables are read when a write first needs them
        (`read_ahead`): a sync in which nothing changed reads only the dossiers."""
        dossiers = await self._index("dossiers")
        if dossiers.duplicates or dossiers.loose:  # repaired with the child rows that hang on them
            self._reading = asyncio.ensure_future(self._read(list(self.maps)))
            await self._reading
        else:
            self.indexes["dossiers"] = dossiers
            self.dossier_ids = {key[0]: row_id for key, (row_id, _) in dossiers.rows.items()}

    async def _index(self, key: str) -> TableIndex:
        return TableIndex.from_columns(await self.sink.fetch_table(self.maps[key].table_id), self.maps[key],
                                       self.fresh.get(key, frozenset()), VOLATILE.get(key, frozenset()))

    def read_ahead(self) -> None:
        """Start reading the other tables now: a write will need them (the sync goes on
        listing meanwhile, waiting for DS)."""
        if self._reading is None:
            self._reading = asyncio.ensure_future(self._read([k for k in self.maps if k not in self.indexes]))
            self._reading.add_done_callback(lambda task: task.cancelled() or task.exception())

    def stop_reading(self) -> None:
        """The sync stops: a read still under way is not wanted any more."""
        if self._reading is not None and not self._reading.done():
            self._reading.cancel()

    async def _need_all(self) -> None:
        self.read_ahead()
        await self._reading

    async def _read(self, keys: list[str]) -> None:
        """Index these tables, and repair duplicate rows of a key (see `plan_dedupe`)."""
        # all asked at once: Grist prepares one table while the previous one crosses over
        for key, index in zip(keys, await asyncio.gather(*(self._index(k) for k in keys))):
            self.indexes[key] = index
        self._loosen(keys)
        loaded = {k: self.maps[k] for k in keys}
        repair = plan_dedupe(loaded, self.indexes, self.agent_columns)
        if repair.actions:
            await self.sink.apply(repair.actions)
            for key in keys:
                self.indexes[key] = await self._index(key)
            self._loosen(keys)
        self.repairs.merged += repair.merged
        self.repairs.kept += repair.kept
        if "dossiers" in keys:
            self.dossier_ids = {key[0]: row_id for key, (row_id, _) in self.indexes["dossiers"].rows.items()}

    async def clear_stale_keys(self) -> None:
        """Blank, in the document, the values that key columns made at this sync hold anyway
        (see `TableIndex.stale`): before any key is written there, so that a copy resuming
        this one takes the keys it finds as this copy's."""
        await self._need_all()
        actions = []
        for key, index in self.indexes.items():
            columns = [self.maps[key].col_ids[k] for k in self.maps[key].spec.row_key if k in index.fresh]
            if index.stale and columns:
                types = self.types.get(key, {})
                blank = {c: [_blank_of(types.get(c, ""))] * len(index.stale) for c in columns}
                actions.append(["BulkUpdateRecord", self.maps[key].table_id, index.stale, blank])
        if actions:
            await self.sink.apply(actions)

    def _loosen(self, keys: list[str]) -> None:
        """Child rows whose Ref names no dossier row are loose (see `TableIndex.loosen`)."""
        dossiers = self.indexes.get("dossiers")
        if dossiers is None:
            return
        # every dossier row there is (a loose one too: its children follow it when it gets its key back)
        live = {row_id for row_id, _ in dossiers.rows.values()} | {row_id for _, row_id, _ in dossiers.duplicates} | set(dossiers.loose)
        for key in keys:
            if key != "dossiers":
                self.indexes[key].loosen(live)

    async def apply(self, plans: list[tuple[str, RowPlan]], checkpoint: Checkpoint | None = None) -> None:
        """Write the plans in one bundle (with the checkpoint, if any) and record them."""
        self._record(plans, await self._send(plans, checkpoint))

    async def _send(self, plans: list[tuple[str, RowPlan]], checkpoint: Checkpoint | None) -> list[list[int]]:
        """One bundle; returns the row ids of the rows each plan added."""
        actions, slots = [], []
        for _, plan in plans:
            slots.append(len(actions) if plan.add_keys else None)
            actions.extend(plan.actions())
        if not actions and checkpoint is None:
            return [[] for _ in plans]
        results = await self.sink.apply(actions, checkpoint)
        return [list(results[slot]) if slot is not None else [] for slot in slots]

    def _record(self, plans: list[tuple[str, RowPlan]], added: list[list[int]]) -> None:
        """Bring the indexes up to date with what the plans wrote."""
        for (key, plan), ids in zip(plans, added):
            self.reattached += len(plan.attached)
            index = self.indexes[key]
            record_written(index, plan, ids)
            if key == "dossiers":
                self.dossier_ids.update({k[0]: index.rows[k][0] for k in plan.add_keys + plan.update_keys if k in index.rows})

    def prepare(self, dossiers: list[Dossier], schema: Schema) -> Prepared:
        """The page's rows (no I/O): built while the bundle before is applied, they are written
        as they are unless a column was widened meanwhile."""
        return Prepared(dossiers, self.types, page_rows(dossiers, schema, self.maps, self.types))

    async def write_page(self, prepared: Prepared, schema: Schema, checkpoint: Checkpoint) -> tuple[set[int], set[int]]:
        """The page in one bundle, with its checkpoint: a page is recorded as done only once all
        of it is written (two bundles where an agent retyped a child's Ref: `plan.page`).
        Returns the numbers of the dossiers added, and of those changed."""
        await self._need_all()
        dossiers = prepared.dossiers
        page = prepared.rows if prepared.types is self.types else page_rows(dossiers, schema, self.maps, self.types)
        if page.widen:
            await self.sink.apply(page.widen)
            self.types = page.types
        numbers = [d.number for d in dossiers]
        one_bundle = self._refs_translated()
        dossier_plan = plan_dossiers(self.maps["dossiers"], self.indexes["dossiers"], page.rows["dossiers"], hold_dates=not one_bundle)
        if one_bundle:
            temporary = temporary_ids(dossier_plan)
            children = plan_children(self.maps, self.indexes, page.rows, {**self.dossier_ids, **temporary}, numbers, dates=False)
            plans = [("dossiers", dossier_plan), *children]
            added = await self._send(plans, checkpoint)
            settle_ids(self.maps, children, dict(zip(dossier_plan.add_ids or [], added[0])))
            self._record(plans, added)
        else:
            await self.apply([("dossiers", dossier_plan)])
            children = plan_children(self.maps, self.indexes, page.rows, self.dossier_ids, numbers, dates=True)
            await self.apply(children, checkpoint)
        return page_counts(dossier_plan, children, self.dossier_ids)

    def _refs_translated(self) -> bool:
        """Every child table's Ref to the dossiers is a Ref (Grist turns temporary ids into row
        ids only there): not so where an agent retyped one."""
        dossiers = self.maps["dossiers"].table_id
        return all(self.types.get(key, {}).get(m.col_ids[DOSSIER_REF]) == f"Ref:{dossiers}"
                   for key, m in self.maps.items() if key != "dossiers" and DOSSIER_REF in m.col_ids)

    async def refresh_labels(self, nodes: list[dict[str, Any]]) -> set[int]:
        """Labels change without moving the modification date: compare and update them.
        Returns the numbers of the dossiers whose labels changed."""
        table_map, index = self.maps["dossiers"], self.indexes["dossiers"]
        rows = hold_pending(table_map, index, [{DOSSIER_KEY: n["number"], LABELS: choice_list_cell(sorted(l["name"] for l in n.get("labels") or []))}
                                               for n in nodes])
        label_plan = plan_cells(table_map, index, LABELS, {(r[DOSSIER_KEY],): r[LABELS] for r in rows})
        bases = plan_cells(table_map, index, BASE, {(r[DOSSIER_KEY],): r[BASE] for r in rows if BASE in r})
        await self.apply([("dossiers", label_plan), ("dossiers", bases)])
        return {key[0] for key in label_plan.update_keys}

    async def sweep(self) -> None:
        """The sync's last write: rows left without a dossier (see `plan_sweep`); the indexes
        are not used after it."""
        repair = plan_sweep(self.maps, self.indexes, self.agent_columns)
        if repair.actions:
            await self.sink.apply(repair.actions)
        self.repairs.removed_loose += repair.removed_loose
        self.repairs.kept += repair.kept

    async def set_flags(self, flags: dict[str, dict[int, Any]]) -> None:
        """Set OTP's flag columns (column key → number → cell: « Dans la corbeille DS depuis
        le », « Supprimé dans DS le », « Hors du filtre »)."""
        await self.apply([("dossiers", plan_cells(self.maps["dossiers"], self.indexes["dossiers"], col,
                                                  {(n,): v for n, v in cells.items()})) for col, cells in flags.items()])

    async def remove_dossiers(self, numbers: set[int]) -> None:
        """Remove deleted dossiers and every row that depends on them."""
        gone = {self.dossier_ids[n] for n in numbers if n in self.dossier_ids}
        if gone:
            await self._need_all()
            await self.apply(plan_removal(self.maps, self.indexes, gone))
            self.dossier_ids = {n: rid for n, rid in self.dossier_ids.items() if rid not in gone}

    def cell(self, number: int, col_key: str) -> Any:
        row = self.indexes["dossiers"].rows.get((number,))
        col = self.maps["dossiers"].col_ids.get(col_key)
        return row[1].get(col) if row and col else None


def _blank_of(grist_type: str) -> Any:
    """A blank cell of a column of this type: Grist's 0 for a Ref or a number."""
    return 0 if grist_type.startswith(("Ref:", "Int", "Numeric")) else ""
