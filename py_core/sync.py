"""The sync loop: DS pages in, Grist bulk actions out, progress events along the way.

Order of work, chosen so that a sync can be interrupted and run again safely:
1. validate the input and read the procedure's structure (errors here change nothing);
2. create/adjust tables and columns, record them in the registry;
3. for each page of dossiers (ordered by last update): diff against the document, write;
4. apply deletions and label changes;
5. only then move the incremental cursor (`OTP_Demarches.Curseur`).
Every write is an idempotent diff, so re-running after a failure converges to DS's state.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from . import errors
from .docstate import DocState, load_state, meta_table_actions
from .ds_client import DSClient
from .grist_values import choice_list_cell, datetime_cell, same_cell
from .models import Dossier
from .planner import (
    RowPlan,
    TableIndex,
    TableMap,
    plan_int_widening,
    plan_ref_display,
    plan_registry,
    plan_rows,
    plan_schema,
    refresh_maps,
    record_written,
    resolve_refs,
)
from .rows import dossier_rows, file_rows
from .schema import DOSSIER_REF, Schema, build_schema
from .sink import GristSink

Emit = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class SyncParams:
    number: int
    token: str
    endpoint: str
    keep_deleted: bool = False  # flag dossiers deleted in DS instead of removing them

    def __repr__(self) -> str:  # never show the token
        return f"SyncParams(number={self.number}, endpoint={self.endpoint!r})"


def parse_params(raw: dict[str, Any]) -> SyncParams:
    """Validate what the agent typed; raise an `InputError` with a French message."""
    number_text = str(raw.get("demarche") or "").strip()
    if not number_text.isdigit() or int(number_text) <= 0 or len(number_text) > 9:
        raise errors.invalid_number(number_text)
    token = str(raw.get("token") or "").strip()
    if not token:
        raise errors.empty_token()
    endpoint = str(raw.get("endpoint") or "").strip()
    parts = urlsplit(endpoint)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise errors.invalid_endpoint()
    return SyncParams(int(number_text), token, endpoint, keep_deleted=bool(raw.get("keep_deleted")))


@dataclass
class SyncResult:
    number: int
    title: str
    total: int = 0
    added: int = 0
    updated: int = 0
    deleted: int = 0
    deleted_numbers: list[int] = field(default_factory=list)
    fetched: int = 0
    ds_requests: int = 0
    incremental: bool = False
    cursor: str | None = None
    unknown_types: list[str] = field(default_factory=list)

    @property
    def message(self) -> str:
        text = (
            f"Synchronisation terminée : {self.total} dossiers "
            f"({self.added} ajoutés, {self.updated} mis à jour"
            + (f", {self.deleted} supprimés" if self.deleted else "")
            + ")"
        )
        if self.unknown_types:
            text += f". Types de champ non reconnus, copiés en texte : {', '.join(self.unknown_types)}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "title": self.title,
            "total": self.total,
            "added": self.added,
            "updated": self.updated,
            "deleted": self.deleted,
            "fetched": self.fetched,
            "ds_requests": self.ds_requests,
            "incremental": self.incremental,
            "cursor": self.cursor,
            "unknown_types": self.unknown_types,
            "message": self.message,
        }


def ds_base_url(endpoint: str) -> str:
    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc}"


async def synchronise(params: SyncParams, ds: DSClient, sink: GristSink, emit: Emit) -> SyncResult:
    number = params.number
    started = time.time()
    emit({"kind": "phase", "message": f"Lecture de la structure de la démarche n° {number}…"})
    structure = await ds.structure(number)

    state = await load_state(sink)
    if meta := meta_table_actions(state):
        await sink.apply(meta)
        state = await load_state(sink)
    schema = build_schema(structure, timezone=state.timezone, ds_base=ds_base_url(params.endpoint))
    emit({"kind": "phase", "message": "Préparation des tables…"})
    plan = plan_schema(state, schema)
    await sink.apply(plan.actions)
    maps = plan.maps
    if plan.actions:
        state = await load_state(sink)
        maps = refresh_maps(state, schema, maps)
    await sink.apply(plan_registry(state, schema, maps) + plan_ref_display(state, maps))

    procedure = state.procedure(number)
    cursor = (procedure or {}).get("Curseur") or None
    result = SyncResult(number, structure.title, incremental=bool(cursor), unknown_types=schema.unknown_kinds)
    writer = _Writer(sink, maps, {
        key: {c.col_id: c.type for c in state.table_columns(state.table_ref(m.table_id))} for key, m in maps.items()
    })
    await writer.load()

    if cursor:
        emit({"kind": "phase", "message": "Recherche des dossiers supprimés…"})
        deleted = await ds.deleted_since(number, cursor)
        result.deleted_numbers = sorted({d.number for d in deleted} & set(writer.dossier_ids))
        if params.keep_deleted:
            result.deleted = await writer.flag_deleted(deleted)
        else:
            result.deleted = await writer.remove_dossiers([d.number for d in deleted])

    total = None if cursor else structure.dossiers_count
    newest = cursor
    emit(_progress(0, total))
    async for page in ds.dossier_pages(number, cursor):
        added, updated = await writer.write_page(page.nodes, schema)
        result.added += added
        result.updated += updated
        result.fetched += len(page.nodes)
        for dossier in page.nodes:
            if newest is None or _later(dossier.date_derniere_modification, newest):
                newest = dossier.date_derniere_modification
        emit(_progress(result.fetched, total))

    if cursor:
        emit({"kind": "phase", "message": "Mise à jour des labels et des liens des fichiers…"})
        async for nodes in ds.refresh_pages(number):
            result.updated += await writer.refresh(nodes, schema)

    result.total = len(writer.dossier_ids)
    result.cursor = newest
    result.ds_requests = ds.request_count
    await sink.apply([
        _procedure_action(state, number, structure.title, newest, result.total),
        _history_action(result, started),
    ])
    return result


def _progress(done: int, total: int | None) -> dict[str, Any]:
    message = f"{done} / {total} dossiers" if total is not None else f"{done} dossiers modifiés reçus"
    return {"kind": "progress", "done": done, "total": total, "message": message}


def _later(a: str, b: str) -> bool:
    return (datetime_cell(a) or 0) > (datetime_cell(b) or 0)


def _history_action(result: SyncResult, started: float) -> list[Any]:
    notes = []
    if result.unknown_types:
        notes.append("Types de champ inconnus d'OTP, copiés en texte (stringValue) : " + ", ".join(result.unknown_types))
    if result.deleted_numbers:
        notes.append("Dossiers supprimés dans DS : " + ", ".join(f"n° {n}" for n in result.deleted_numbers))
    return ["AddRecord", "OTP_Historique", None, {
        "Demarche": result.number,
        "Debut": started,
        "Fin": time.time(),
        "Type": "Incrémentale" if result.incremental else "Complète",
        "Dossiers_recus": result.fetched,
        "Ajoutes": result.added,
        "Mis_a_jour": result.updated,
        "Supprimes": result.deleted,
        "Requetes_DS": result.ds_requests,
        "Message": result.message,
        "Notes": "\n".join(notes),
    }]


def _procedure_action(state: DocState, number: int, title: str, cursor: str | None, count: int) -> list[Any]:
    record = {"Titre": title, "Curseur": cursor or "", "Derniere_synchro": time.time(), "Nb_dossiers": count}
    row = state.procedure(number)
    if row is None:
        return ["AddRecord", "OTP_Demarches", None, {"Numero": number, **record}]
    return ["UpdateRecord", "OTP_Demarches", row["id"], record]


class _Writer:
    """Holds the document's rows for the procedure's tables and writes pages as diffs."""

    def __init__(self, sink: GristSink, maps: dict[str, TableMap], types: dict[str, dict[str, str]]):
        self.sink = sink
        self.maps = maps
        self.types = types  # per table key: col id → Grist type
        self.indexes: dict[str, TableIndex] = {}
        self.dossier_ids: dict[int, int] = {}

    async def load(self) -> None:
        for key, table_map in self.maps.items():
            self.indexes[key] = TableIndex.from_columns(await self.sink.fetch_table(table_map.table_id), table_map)
        self.dossier_ids = {key[0]: row_id for key, (row_id, _) in self.indexes["dossiers"].rows.items()}

    async def write_page(self, dossiers: list[Dossier], schema: Schema) -> tuple[int, int]:
        by_table: dict[str, list[dict[str, Any]]] = {key: [] for key in self.maps}
        for dossier in dossiers:
            for key, rows in dossier_rows(dossier, schema).items():
                by_table[key].extend(rows)

        widen = [a for key, rows in by_table.items() for a in plan_int_widening(self.maps[key], rows, self.types[key])]
        await self.sink.apply(widen)
        dossier_plan = plan_rows(self.maps["dossiers"], self.indexes["dossiers"], by_table["dossiers"])
        await self._apply([dossier_plan], ["dossiers"])
        for key in dossier_plan.add_keys:
            self.dossier_ids[key[0]] = self.indexes["dossiers"].rows[key][0]
        added = {key[0] for key in dossier_plan.add_keys}
        changed = {key[0] for key in dossier_plan.update_keys}

        # child tables: every row key starts with the dossier's row id
        number_of = {self.dossier_ids[d.number]: d.number for d in dossiers}
        child_keys = [key for key in self.maps if key != "dossiers"]
        child_plans = [
            plan_rows(self.maps[key], self.indexes[key], resolve_refs(by_table[key], self.dossier_ids),
                      owners=set(number_of) if key not in ("champs", "annotations") else None)
            for key in child_keys
        ]
        for plan in child_plans:
            changed.update(number_of[key[0]] for key in plan.touched_keys())
        await self._apply(child_plans, child_keys)
        return len(added), len(changed - added)

    async def _apply(self, plans: list[RowPlan], keys: list[str]) -> None:
        actions, slots = [], []
        for plan in plans:
            plan_actions = plan.actions()
            slots.append(len(actions) if plan.add_keys else None)
            actions.extend(plan_actions)
        if not actions:
            return
        results = await self.sink.apply(actions)
        for plan, key, slot in zip(plans, keys, slots):
            new_ids = list(results[slot]) if slot is not None else []
            record_written(self.indexes[key], plan, new_ids)

    async def remove_dossiers(self, numbers: list[int]) -> int:
        """Remove deleted dossiers and every row that depends on them."""
        gone = {self.dossier_ids[n] for n in set(numbers) if n in self.dossier_ids}
        if not gone:
            return 0
        plans, keys = [], []
        for key, table_map in self.maps.items():
            # a dossier row is its own owner; a child row's key starts with its dossier's row id
            ids = [rid for k, (rid, _) in self.indexes[key].rows.items() if (rid if key == "dossiers" else k[0]) in gone]
            if ids:
                plans.append(RowPlan(table_map.table_id, [], {}, [], {}, ids))
                keys.append(key)
        # children first, so no Ref ever points at a removed dossier
        order = sorted(range(len(plans)), key=lambda i: keys[i] == "dossiers")
        await self._apply([plans[i] for i in order], [keys[i] for i in order])
        self.dossier_ids = {n: rid for n, rid in self.dossier_ids.items() if rid not in gone}
        return len(gone)

    async def flag_deleted(self, deleted: list[Any]) -> int:
        """Keep deleted dossiers, marked with their deletion date (the agent's choice)."""
        table_map = self.maps["dossiers"]
        col = table_map.col_ids["date_suppression_ds"]
        index = self.indexes["dossiers"]
        ids, cells = [], []
        for item in deleted:
            current = index.rows.get((item.number,))
            when = datetime_cell(item.date_supression)
            if current is not None and not same_cell(current[1].get(col), when):
                ids.append(current[0])
                cells.append(when)
        if ids:
            await self._apply([RowPlan(table_map.table_id, [], {}, ids, {col: cells}, [])], ["dossiers"])
        return len(ids)

    async def refresh(self, nodes: list[dict[str, Any]], schema: Schema) -> int:
        """Labels and file links change without touching the modification date: compare and
        update them. Returns how many dossiers' labels changed (new file URLs are routine)."""
        table_map = self.maps["dossiers"]
        col = table_map.col_ids["labels"]
        index = self.indexes["dossiers"]
        ids, cells, files = [], [], []
        for node in nodes:
            current = index.rows.get((node["number"],))
            if current is None:
                continue
            wanted = choice_list_cell(sorted(l["name"] for l in node.get("labels") or []))
            if not same_cell(current[1].get(col), wanted):
                ids.append(current[0])
                cells.append(wanted)
            files += file_rows(node["number"], (node.get("champs") or []) + (node.get("annotations") or []), schema.table("fichiers"))
        owners = {self.dossier_ids[n["number"]] for n in nodes if n["number"] in self.dossier_ids}
        plans = [
            RowPlan(table_map.table_id, [], {}, ids, {col: cells}, []),
            plan_rows(self.maps["fichiers"], self.indexes["fichiers"], resolve_refs(
                [f for f in files if f[DOSSIER_REF] in self.dossier_ids], self.dossier_ids), owners=owners),
        ]
        await self._apply(plans, ["dossiers", "fichiers"])
        return len(ids)
