"""A sync as a sequence of small phases over its state, kept in the document.

1. `structure`: validate the input, read the procedure (every revision). Errors here change
   nothing in the document.
2. `lease`: take the procedure's lease in `OTP_Etat` (see `lease.py`); a second sync of the same
   procedure says « Une synchronisation est déjà en cours ». From here every write is fenced by
   the lease, and a sync that stops for any reason writes its line in `OTP_Historique`.
3. `tables`: create/adjust tables and columns, record them in the registry; index the copy (the
   dossiers table; the others when a write needs them).
4. Then, by kind of sync:
   - full (first sync, or the filter changed): every dossier by pages of 100 ordered by last
     modification (`updatedSince` = the epoch), each written as a diff; the checkpoint
     (`since`, `after`) is stored with the page's last bundle, so an interrupted full sync
     resumes where it stopped, fetching again at most the page it was on. From a far DS, one
     stream per state (`Streams`). Those pages are the listing.
   - incremental: the listing first (light pages: number, modification date, labels, what
     filters look at; read ahead while step 3 runs), then only the dossiers that are new or
     whose modification date differs from the copy's, fetched by pages `updatedSince` the
     oldest such date (one by one when they are fewer than those pages). Nothing to fetch
     when nothing changed: 2 + ⌈N/100⌉ requests. The copy's date is written last (with the
     child rows), so a page interrupted between its two bundles is fetched again.
5. `membership`: DS's bin, read after the listing: dossiers in it are flagged, restored ones
   unflagged (same row: agents' cells intact). A dossier the document holds that the listing
   did not show and DS's lists do not name is asked for by number (restored, or moved between
   streams, while the listing passed): only one DS does not have is removed (or flagged).
6. `finish`: cursor, history line and the lease given back, in one bundle.

Why dates rather than a cursor: `Curseur` is the newest `dateDerniereModification` copied. DS
stamps `updated_at` before its transaction commits, so a dossier may become visible with a date
older than one already copied (and its servers' clocks differ slightly): a cursor would need a
margin (a `lag`) and would still skip a late enough commit. Comparing each dossier's date with
its copy's catches any modification, whatever its date; the cursor only bounds the confirmed
deletions asked for (`LAG_S` before it). A dossier modified after the listing passed it is
caught by the next sync (its date differs then). Labels do not move the date: the listing
brings them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

from .. import errors
from ..grist.meta import DocState, meta_race_repairs, meta_table_actions
from ..grist.document import load_state
from ..ds.client import EPOCH, PAGE_SIZE, DSClient
from ..grist.values import datetime_cell
from .lease import FencedSink, Lease, acquire
from ..grist.values import epoch_of
from ..plan.diff import Repair
from ..plan.registry import TableMap, plan_ref_display, plan_registry, plan_schema, refresh_maps
from ..plan.membership import changed_dossiers, plan_membership
from ..plan.filters import Filters, parse_filters
from ..grist.layout import lay_out
from ..plan.schema import BIN_DATE, DATE_MODIFIED, DELETED_DATE, OUT_OF_FILTER, build_schema
from ..grist.sink import GristSink
from ..grist.writer import Writer

LAG_S = 300  # margin before the cursor for confirmed deletions and the streams' closing pass
SETTLE_S = 10  # DS dates have whole seconds, and are stamped before their commit: see `reread_since`

Emit = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class SyncParams:
    number: int
    token: str
    endpoint: str
    keep_deleted: bool = False  # flag dossiers deleted in DS instead of removing them
    ds_site: str = ""  # the DS site links point at (scheme://host); default: the API's origin
    holder: str = ""  # who holds the lease: "<browser id>/<tab id>"
    filters: Filters = field(default_factory=Filters)  # which dossiers the agent wants

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
    site = str(raw.get("ds_site") or "").strip().rstrip("/")
    if site and (urlsplit(site).scheme not in ("https", "http") or not urlsplit(site).netloc):
        raise errors.invalid_endpoint()
    holder = str(raw.get("holder") or "").strip()[:80] or f"{secrets.token_hex(6)}/{secrets.token_hex(4)}"
    return SyncParams(int(number_text), token, endpoint, keep_deleted=bool(raw.get("keep_deleted")),
                      ds_site=ds_base_url(site) if site else "", holder=holder,
                      filters=parse_filters(raw.get("filters")))


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
    added_numbers: set[int] = field(default_factory=set)  # one dossier changed is one « mis à jour »
    updated_numbers: set[int] = field(default_factory=set)
    incremental: bool = False
    resumed: bool = False
    cursor: str | None = None
    unknown_types: list[str] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)  # dossiers DS could not answer in full
    problems: list[str] = field(default_factory=list)
    binned: list[int] = field(default_factory=list)
    restored: list[int] = field(default_factory=list)
    filtered_out: list[int] = field(default_factory=list)  # left the agent's filter
    recreated: list[str] = field(default_factory=list)  # OTP's tables/columns an agent deleted, made again
    released: list[str] = field(default_factory=list)  # OTP's columns an agent turned into formulas
    repairs: Repair = field(default_factory=Repair)
    reattached: int = 0  # rows that got their dossier back

    def count(self, added: set[int], updated: set[int]) -> None:
        self.added_numbers |= added
        self.updated_numbers |= updated
        self.added = len(self.added_numbers)
        self.updated = len(self.updated_numbers - self.added_numbers)

    @property
    def message(self) -> str:
        text = (
            f"Synchronisation terminée : {self.total} dossiers "
            f"({self.added} ajoutés, {self.updated} mis à jour"
            + (f", {self.deleted} supprimés" if self.deleted else "")
            + ")"
        )
        if self.filtered_out:
            text += f". {len(self.filtered_out)} dossiers sortis du filtre"
        if self.binned or self.restored:
            text += f". Corbeille DS : {len(self.binned)} dossiers mis, {len(self.restored)} restaurés"
        if self.skipped:
            text += (f". Attention : {len(self.skipped)} dossiers n'ont pas pu être lus en entier "
                     f"(n° {', '.join(map(str, self.skipped[:10]))}) ; ils seront repris à la prochaine synchronisation")
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
            "resumed": self.resumed,
            "skipped": self.skipped,
            "binned": self.binned,
            "restored": self.restored,
            "cursor": self.cursor,
            "unknown_types": self.unknown_types,
            "message": self.message,
        }


def ds_base_url(endpoint: str) -> str:
    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc}"


Cancel = Callable[[], bool]


async def synchronise(params: SyncParams, ds: DSClient, sink: GristSink, emit: Emit, *,
                      should_cancel: Cancel | None = None, clock: Callable[[], float] = time.time) -> SyncResult:
    number = params.number
    ds.emit = emit
    emit({"kind": "phase", "message": f"Lecture de la structure de la démarche n° {number}…"})
    state = await load_state(sink)
    # An incremental sync starts with the listing: its light pages are read from the start (at
    # most `READ_AHEAD` wait in memory), while the structure is read, the tables prepared and
    # the copy read. Reading changes nothing: a structure error still leaves the document as is.
    procedure = state.procedure(number) or {}
    ahead = Streams([ds.refresh_pages(number)], depth=READ_AHEAD) if _incremental(procedure, params.filters) else None
    async with ahead or contextlib.nullcontext():
        structure = await ds.structure(number)
        check_instance(state.procedure(number), structure, params.endpoint)
        state = await _ensure_meta_tables(sink, state)
        lease = await acquire(sink, number, params.holder, clock())
        run = _Run(params, ds, FencedSink(sink, lease, clock), emit, should_cancel or (lambda: False), clock, lease)
        ds.on_wait = run.sink.renew
        try:
            return await run.execute(structure, state, ahead)
        except BaseException as error:
            await run.stopped(error)
            raise


def check_instance(procedure: dict[str, Any] | None, structure, endpoint: str) -> None:
    """One copy, one DS: a procedure copied from a DS instance is never merged with the
    procedure of the same number on another one. Told apart by what DS reports of it (its id
    and creation date), not by the address typed: a relay in front of the same DS is the same."""
    recorded = (procedure or {}).get("Instance_DS") or ""
    if recorded and recorded != structure.instance:
        first = ds_base_url(procedure.get("Adresse_API") or "") if procedure.get("Adresse_API") else "?"
        raise errors.other_instance(structure.number, first, ds_base_url(endpoint))


def _incremental(procedure: dict[str, Any], filters: Filters) -> bool:
    """A sync that lists first: the procedure was copied before, with the same filter."""
    return bool(procedure.get("Curseur")) and filters.key() == (procedure.get("Filtres") or "")


async def _ensure_meta_tables(sink: GristSink, state: DocState) -> DocState:
    actions = meta_table_actions(state)
    if actions:
        repairs = meta_race_repairs(actions, await sink.apply(actions))
        if repairs:
            await sink.apply(repairs)
        state = await load_state(sink)
    return state


class _Run:
    """One sync, from the lease to the end; its fields are the sync's state (see `checkpoint`)."""

    def __init__(self, params: SyncParams, ds: DSClient, sink: FencedSink, emit: Emit, should_cancel: Cancel,
                 clock: Callable[[], float], lease: Lease):
        self.params, self.ds, self.sink, self.emit, self.should_cancel, self.clock = params, ds, sink, emit, should_cancel, clock
        self.started = clock()
        carried = lease.checkpoint if lease.checkpoint.get("since") else {}
        self.carried = carried
        self.since: str | None = carried.get("since")
        self.after: str | None = carried.get("after")
        self.newest: str | None = carried.get("newest")
        self.full: bool = bool(carried.get("full"))
        self.result = SyncResult(params.number, "", resumed=bool(carried))  # counts: this run's own
        self.result.skipped = [int(n) for n in carried.get("skipped") or []]
        self.excluded: set[int] = set()  # dossiers DS has, outside the agent's filter
        self.gone: set[int] = set()  # dossiers DS answered `not_found` for, asked by number
        self.writer: Writer | None = None

    def checkpoint(self) -> dict[str, Any]:
        r = self.result
        return {"since": self.since, "after": self.after, "newest": self.newest, "full": self.full,
                "skipped": r.skipped}

    def _check_cancel(self) -> None:
        if self.should_cancel():
            raise errors.cancelled()

    async def execute(self, structure, state: DocState, ahead: Streams | None = None) -> SyncResult:
        """`ahead`: the light listing, already being read (an incremental sync's first step)."""
        params, result = self.params, self.result
        procedure = state.procedure(params.number) or {}
        cursor = procedure.get("Curseur") or None
        schema = build_schema(structure, timezone=state.timezone, ds_base=params.ds_site or ds_base_url(params.endpoint))
        plan = plan_schema(state, schema)
        if not self.full:  # a new sync, or an interrupted incremental one: its listing sees what was written
            self.full = not cursor
            self.since, self.after, self.newest = (EPOCH if self.full else None), None, cursor
        if cursor and (not _incremental(procedure, params.filters) or plan.refill):
            # the agent changed the filter (a widened one lets dossiers in), or deleted a table or
            # column of OTP's, made again now: a full sync, to fill it
            self.since, self.after, self.full, self.newest = EPOCH, None, True, None
        result.incremental = not self.full
        # a full sync's first page is asked for now: it comes while the tables are prepared
        first = Prefetch(self.ds.dossier_pages(params.number, self.since, self.after)) if self.full else None
        async with first or contextlib.nullcontext():
            if first is not None:
                first.start()
            return await self._execute(structure, schema, plan, state, cursor, ahead, first)

    async def _execute(self, structure, schema, plan, state: DocState, cursor: str | None, ahead: Streams | None,
                       first: Prefetch | None) -> SyncResult:
        params, ds, result = self.params, self.ds, self.result
        number = params.number
        result.title = structure.title
        result.unknown_types = schema.unknown_kinds
        result.recreated, result.released = plan.recreated, plan.released

        self.emit({"kind": "phase", "message": "Préparation des tables…"})
        await self.sink.apply(plan.actions)
        state = await load_state(self.sink)
        maps = refresh_maps(state, schema, plan.maps)
        await self.sink.apply(plan_registry(state, schema, maps) + plan_ref_display(state, maps))
        state = await lay_out(self.sink, state, number, maps, title=structure.title)  # once per procedure
        self.emit({"kind": "phase", "message": "Lecture de la copie dans le document…"})
        writer = self.writer = Writer(self.sink, maps, _types(state, maps), _agent_columns(state, maps), plan.fresh)
        await writer.load()
        procedure = state.procedure(number) or {}

        binned_at_start = {n: writer.cell(n, BIN_DATE) for n in writer.dossier_ids}  # a write clears a restored one
        listed: set[int] = set()
        retry = sorted(set(_numbers(procedure.get("A_reprendre"))) | set(result.skipped))
        result.skipped = []
        for dossier_number in retry:  # DS could not answer them in full last time
            await self._take_one(dossier_number, schema, writer, listed)

        total = structure.dossiers_count if self.full else None
        self.emit(_progress(result.fetched, total))

        async def take(pages: AsyncIterator[Any], *, checkpointed: bool, may_stream: bool = False) -> bool:
            """Write the pages; True when the sequential stream should give way to streams."""
            async for page in pages:
                self._check_cancel()
                # the checkpoint moves past this page in the bundle that writes it, never before
                after = (page.page_info.end_cursor or self.after) if checkpointed else self.after
                await self._write(page.nodes, page.skipped, schema, writer, after=after)
                self.after = after
                result.problems += [p for p in page.problems if p not in result.problems]
                listed.update(d.number for d in page.nodes)
                listed.update(page.skipped)
                self.emit(_progress(min(result.fetched, total) if total is not None else result.fetched, total))
                if may_stream and page.page_info.has_next_page and ds.fastest_s.get("dossiers", 0) >= PARALLEL_LATENCY_S:
                    return True
            return False

        streams = False
        if self.full:
            # A fresh full sync of many dossiers from a DS far away (its first page was slow) goes
            # on with one stream per state (see `Streams`); the first page keeps its checkpoint.
            may_stream = not result.resumed and not self.after and (total or 0) >= PARALLEL_FROM
            self.emit({"kind": "phase", "message": "Lecture des dossiers…"})
            async with first as pages:  # asked for before the tables (see `execute`)
                streams = await take(pages, checkpointed=True, may_stream=may_stream)  # page k+1 comes while k is written
            if streams:  # no checkpoint of their own: a resume goes on sequentially after the first page
                newest = asyncio.ensure_future(ds.newest_modification(number))  # alongside the streams' first pages
                try:
                    async with Streams([ds.dossier_pages(number, EPOCH, state=s) for s in STATES]) as pages:
                        await take(pages, checkpointed=False)
                except BaseException:
                    newest.cancel()
                    raise
                newest_at_start = await newest
                if newest_at_start:  # a dossier that moved from one stream to another meanwhile;
                    # one stream per state again (many dossiers may share the window: a bulk action)
                    since = _shift(newest_at_start, -LAG_S)
                    async with Streams([ds.dossier_pages(number, since, state=s) for s in STATES]) as pages:
                        await take(pages, checkpointed=False)

        self._check_cancel()
        # An incremental sync lists every dossier first and fetches those whose date moved; so
        # does a resumed full one after its pages (dossiers modified meanwhile), and a streamed one
        # when the document held dossiers the streams did not list.
        if not self.full or result.resumed or (streams and any(n not in listed for n in writer.dossier_ids)):
            changed, dates = await self._listing(writer, listed, ahead, streamed=(structure.dossiers_count or 0) >= PARALLEL_FROM,
                                                 reread=epoch_of(procedure.get("Relire_depuis")))
            if changed:
                self.emit({"kind": "phase", "message": f"Lecture des {len(changed)} dossiers nouveaux ou modifiés…"})
                since = min((datetime_cell(c) or 0 for c in changed.values()), default=0)
                pages = -(-sum(1 for d in dates if d >= since) // PAGE_SIZE)  # from `since` on
                if len(changed) < pages:  # a few, among many modified since (one with an old date)
                    for dossier_number in sorted(changed):
                        self._check_cancel()
                        await self._take_one(dossier_number, schema, writer, listed)
                else:
                    async with Prefetch(ds.dossier_pages(number, _shift_epoch(since))) as pages:
                        await take(pages, checkpointed=False)
        else:
            listed.update(result.skipped)

        self.emit({"kind": "phase", "message": "Dossiers mis à la corbeille ou supprimés dans DS…"})
        pending, deleted = await self._membership_lists(cursor, listed, writer, schema)
        held = {n: (binned_at_start.get(n), writer.cell(n, DELETED_DATE)) for n in writer.dossier_ids}
        membership = plan_membership(
            held, listed, pending, deleted, keep_deleted=params.keep_deleted, now=self.clock(),
            excluded=self.excluded, keep_excluded=params.filters.keep_out,
            out_cells={n: writer.cell(n, OUT_OF_FILTER) for n in writer.dossier_ids})
        await writer.set_flags({BIN_DATE: membership.bin_dates, DELETED_DATE: membership.deleted_dates,
                                OUT_OF_FILTER: membership.out_of_filter})
        result.filtered_out = sorted(membership.filtered_out)
        await writer.remove_dossiers(membership.remove)
        await writer.sweep()
        result.binned, result.restored = sorted(membership.binned), sorted(membership.restored)
        result.deleted_numbers = sorted(membership.deleted)
        result.deleted = len(membership.deleted)

        result.total = len(writer.dossier_ids)
        result.repairs, result.reattached = writer.repairs, writer.reattached
        result.cursor = self.newest
        result.ds_requests = ds.request_count
        now = self.clock()
        record = {"Titre": structure.title, "Curseur": self.newest or "", "Derniere_synchro": now,
                  "Nb_dossiers": result.total, "Adresse_API": params.endpoint, "A_reprendre": " ".join(map(str, result.skipped)),
                  "Filtres": params.filters.key(), "Instance_DS": structure.instance,
                  "Relire_depuis": reread_since(self.newest, cursor, self.started, now, procedure.get("Derniere_synchro"),
                                                procedure.get("Relire_depuis"))}
        await self.sink.finish([_procedure_action(state, number, record), _history_action(result, self.started, "Terminée", now=now)])
        return result

    async def _write(self, dossiers, skipped: list[int], schema, writer: Writer, *, after: str | None = None) -> None:
        for dossier in dossiers:
            if self.newest is None or _later(dossier.date_derniere_modification, self.newest):
                self.newest = dossier.date_derniere_modification
        result = self.result
        result.fetched += len(dossiers)
        inside = {d.number: self.params.filters.matches(_node(d)) for d in dossiers}
        self.excluded.update(n for n, ok in inside.items() if not ok)
        self.excluded.difference_update(n for n, ok in inside.items() if ok)
        dossiers = [d for d in dossiers if inside[d.number]]
        result.skipped += [n for n in skipped if n not in result.skipped]

        checkpoint = {**self.checkpoint(), "after": after or self.after}
        added, updated = await writer.write_page(dossiers, schema, lambda: checkpoint)
        result.count(added, updated)

    async def _take_one(self, dossier_number: int, schema, writer: Writer, listed: set[int]) -> bool:
        """Fetch one dossier and write it; False when DS no longer has it. One DS cannot answer
        in full is kept as it is and taken again at the next sync."""
        try:
            dossier = await self.ds.dossier(self.params.number, dossier_number)
        except errors.DSQueryError as error:
            self.result.skipped.append(dossier_number)
            self.result.problems.append(error.detail[:200])
            listed.add(dossier_number)
            return True
        if dossier is None:
            self.gone.add(dossier_number)
            return False
        await self._write([dossier], [], schema, writer)
        listed.add(dossier.number)
        return True

    async def _listing(self, writer: Writer, listed: set[int], ahead: Streams | None, *,
                       streamed: bool, reread: float | None = None) -> tuple[dict[int, str], list[float]]:
        """List every dossier DS has, light (the pages `ahead` already read, if any); refresh
        labels; return the dossiers to fetch (new ones, or whose modification date differs from
        the copy's: number → DS's date) and every listed dossier's date. From a far DS (its first light page was slow), a large
        procedure is listed one stream per state."""
        self.emit({"kind": "phase", "message": "Liste des dossiers et de leurs labels…"})
        number, filters, ds = self.params.number, self.params.filters, self.ds
        copied = {n: epoch_of(writer.cell(n, DATE_MODIFIED)) for n in writer.dossier_ids}
        changed: dict[int, str] = {}
        dates: list[float] = []  # every listed dossier's modification date

        async def take(pages, *, may_stream: bool = False) -> bool:
            seen = 0
            async for nodes in pages:
                seen += 1
                more = len(nodes) == PAGE_SIZE
                listed.update(n["number"] for n in nodes)  # outside the filter too: DS has them
                self.excluded.update(n["number"] for n in nodes if not filters.matches(n))
                self.excluded.difference_update(n["number"] for n in nodes if filters.matches(n))
                nodes = [n for n in nodes if n["number"] not in self.excluded]
                self.result.count(set(), await writer.refresh_labels(nodes))
                changed.update(changed_dossiers(copied, nodes, reread=reread))
                dates.extend(datetime_cell(n.get("dateDerniereModification")) or 0 for n in nodes)
                await self.sink.keep()
                if changed:
                    writer.read_ahead()  # writing them needs the other tables: read while listing
                self._check_cancel()
                # two answers at least: the first one may have waited while the copy was read
                if may_stream and more and seen >= 2 and ds.fastest_s.get("refresh", 0) >= PARALLEL_LATENCY_S:
                    return True
            return False

        async with ahead or Prefetch(ds.refresh_pages(number)) as pages:
            far = await take(pages, may_stream=streamed)
        if far:  # a dossier changing state meanwhile may escape every stream: see `_membership_lists`
            async with Streams([ds.refresh_pages(number, state=s) for s in STATES]) as pages:
                await take(pages)
        return {n: d for n, d in changed.items() if n in listed}, dates

    async def _membership_lists(self, cursor: str | None, listed: set[int], writer: Writer, schema) -> tuple[dict, dict]:
        """DS's bin (number → date), and the confirmed deletions (number → date) when the
        document holds dossiers the listing did not show. Those in neither list are asked for
        one by one: a dossier restored from the bin, or moved between streams, while the listing
        passed is alive (taken again); only one DS does not have is deleted."""
        number, ds = self.params.number, self.ds
        unlisted = [n for n in writer.dossier_ids if n not in listed and not writer.cell(n, DELETED_DATE)]
        deleted, pending = await ds.deletions(number, _shift(cursor, -LAG_S) if cursor else None, confirmed=bool(unlisted))
        pending_dates, deleted_dates = _dates(pending), _dates(deleted)
        gone = False
        for n in unlisted:
            if n not in pending_dates and n not in deleted_dates and n not in self.gone:
                self._check_cancel()
                gone = not await self._take_one(n, schema, writer, listed) or gone
                await self.sink.keep()
        if gone:  # one may have gone into the bin since the bin was read
            _, pending = await ds.deletions(number, None, confirmed=False)
            pending_dates = _dates(pending)
        return pending_dates, deleted_dates

    async def stopped(self, error: BaseException) -> None:
        """A sync that stops early: its history line, and the lease freed with its checkpoint."""
        if self.writer is not None:
            self.writer.stop_reading()
        status = "Annulée" if getattr(error, "code", "") == "cancelled" else "Échec"
        message = getattr(error, "message_fr", None) or f"Erreur inattendue : {type(error).__name__}"
        self.result.ds_requests = self.ds.request_count
        try:
            await self.sink.sink.apply([_history_action(self.result, self.started, status, message)])
        except Exception:  # noqa: BLE001 - Grist itself refuses: nothing more to record
            pass
        await self.sink.release(self.checkpoint())


STATES = ("en_construction", "en_instruction", "accepte", "refuse", "sans_suite")  # DS's DossierState
READ_AHEAD = 50  # light pages (100 dossiers each) an incremental sync may read before it uses them
PARALLEL_FROM = 1000  # dossiers: from there a full sync pages one stream per state at once,
PARALLEL_LATENCY_S = 1.0  # when DS is that far (its fastest answer to the query so far)


class Streams:
    """Several DS page streams at once (one per dossier state), merged into one sequence of
    pages for the caller, who writes them one at a time. DS's cursor makes one stream strictly
    sequential; five streams cut a full sync's round trips by five (`DSClient` keeps them under
    DS's rate limit). At most one page per stream waits in memory (or `depth` pages: one stream
    read ahead while the sync does something else). Only worth it when DS is far
    (`PARALLEL_LATENCY_S`, seen on the first page, paged alone): a DS that answers at once is
    CPU-bound, and so is the widget.

    A dossier that changes state while the streams run may leave a stream before it got there
    and enter one that is already past it: the sync closes with `updatedSince` passes (one per
    state, at once) from the newest modification DS had when the streams started (minus the
    lag), which bring every dossier modified since. The streams record no checkpoint (five cursors): an interrupted
    full sync resumes as one sequential stream after the first page (paged alone, before the
    streams), whose diff writes only what is missing."""

    def __init__(self, streams: list[AsyncIterator[Any]], *, depth: int = 0):
        self.streams = streams
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=depth or len(streams))  # pages read ahead
        self.tasks: list[asyncio.Future] = []
        self.active = len(streams)

    async def _pump(self, stream: AsyncIterator[Any]) -> None:
        try:
            async for page in stream:
                await self.queue.put(("page", page))
            await self.queue.put(("end", None))
        except Exception as error:  # noqa: BLE001 - raised to the caller, in order
            await self.queue.put(("error", error))

    async def __aenter__(self) -> Streams:  # entered again by whoever reads it: started once
        if not self.tasks:
            self.tasks = [asyncio.ensure_future(self._pump(s)) for s in self.streams]
        return self

    def __aiter__(self) -> Streams:
        return self

    async def __anext__(self) -> Any:
        while self.active:
            kind, value = await self.queue.get()
            if kind == "page":
                return value
            self.active -= 1
            if kind == "error":
                self.active = 0
                raise value
        raise StopAsyncIteration

    async def __aexit__(self, *_exc) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            try:
                await task
            except BaseException:  # noqa: BLE001 - cancelled, not wanted any more
                pass
        for stream in self.streams:
            try:
                await stream.aclose()
            except Exception:  # noqa: BLE001
                pass


class Prefetch:
    """Iterate DS's pages one ahead: while the caller works on page k (rows, diff, Grist), the
    request for page k+1 is already out (an asyncio task). Pages still come in order and one
    at a time, so what the caller records (the checkpoint's `after`) only ever moves with the
    pages it has written. Leaving the block (end, cancel, error) cancels the request in flight
    and closes the generator; an error of page k+1 surfaces when page k+1 is asked for, after
    page k was written, as without prefetching."""

    def __init__(self, pages: AsyncIterator[Any]):
        self.pages = pages
        self.pending: asyncio.Future | None = None

    def start(self) -> None:
        """Ask for the first page now (it is taken when the caller gets there)."""
        if self.pending is None:
            self.pending = asyncio.ensure_future(self.pages.__anext__())

    async def __aenter__(self) -> Prefetch:
        return self

    def __aiter__(self) -> Prefetch:
        return self

    async def __anext__(self) -> Any:
        pending = self.pending or asyncio.ensure_future(self.pages.__anext__())
        self.pending = None
        page = await pending  # StopAsyncIteration ends the loop
        self.pending = asyncio.ensure_future(self.pages.__anext__())
        return page

    async def __aexit__(self, *_exc) -> None:
        pending, self.pending = self.pending, None
        if pending is not None:
            if not pending.done():
                pending.cancel()
            try:
                await pending
            except (asyncio.CancelledError, StopAsyncIteration, Exception):  # noqa: BLE001 - not wanted any more
                pass
        closing = getattr(self.pages, "aclose", None)
        if closing is not None:
            try:
                await closing()
            except Exception:  # noqa: BLE001
                pass


def _types(state: DocState, maps: dict[str, TableMap]) -> dict[str, dict[str, str]]:
    return {key: {c.col_id: c.type for c in state.table_columns(state.table_ref(m.table_id))} for key, m in maps.items()}


def _agent_columns(state: DocState, maps: dict[str, TableMap]) -> dict[str, list[str]]:
    """The columns of OTP's tables that are the agents' own (data columns OTP does not fill)."""
    out = {}
    for key, table_map in maps.items():
        ours = set(table_map.col_ids.values())
        out[key] = [c.col_id for c in state.table_columns(state.table_ref(table_map.table_id))
                    if c.col_id not in ours and not c.is_formula and c.col_id != "manualSort"
                    and not c.col_id.startswith("gristHelper_")]
    return out


def _node(dossier) -> dict[str, Any]:
    """What the filter looks at, as DS names it."""
    return {"state": dossier.state, "dateDepot": dossier.raw("dateDepot"), "archived": dossier.raw("archived"),
            "groupeInstructeur": dossier.raw("groupeInstructeur")}


def _numbers(text: Any) -> list[int]:
    return [int(n) for n in str(text or "").replace(",", " ").split() if n.isdigit()]


def _dates(items) -> dict[int, float | None]:
    return {item.number: datetime_cell(item.date_supression) for item in items}


def _shift(iso: str, seconds: float) -> str:
    return _shift_epoch((datetime_cell(iso) or 0) + seconds)


def _shift_epoch(seconds: float) -> str:
    """An `ISO8601DateTime` for DS, to the second below."""
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _progress(done: int, total: int | None) -> dict[str, Any]:
    message = f"{done} / {total} dossiers" if total is not None else f"{done} dossiers modifiés reçus"
    return {"kind": "progress", "done": done, "total": total, "message": message}


def _later(a: str, b: str) -> bool:
    return (datetime_cell(a) or 0) > (datetime_cell(b) or 0)


def _structure_notes(result: SyncResult) -> list[str]:
    """What agents did to OTP's tables, and what OTP did about it, in their words."""
    notes, repairs = [], result.repairs
    if result.recreated:
        notes.append("Tables ou colonnes d'OTP supprimées dans le document, recréées et remplies de nouveau "
                     "(synchronisation complète) : " + ", ".join(result.recreated))
    if result.released:
        notes.append("Colonnes d'OTP transformées en formule : elles sont désormais les vôtres, OTP n'y écrit plus "
                     "(une colonne dont OTP a besoin pour s'y retrouver est recréée à côté) : " + ", ".join(result.released))
    if result.reattached:
        notes.append(f"{result.reattached} lignes rattachées de nouveau à leur dossier (une ligne de dossier supprimée "
                     "à la main, ou une colonne clé recréée), avec vos saisies.")
    if repairs.merged:
        notes.append(f"{repairs.merged} lignes en double réunies (même numéro de dossier) ; vos saisies y ont été "
                     "reportées sur la ligne gardée.")
    if repairs.removed_loose:
        notes.append(f"{repairs.removed_loose} lignes sans dossier retirées (sans aucune saisie d'agent ; DS a "
                     "redonné leur contenu).")
    if repairs.kept:
        notes.append("Lignes sans dossier, ou en double, conservées parce qu'elles portent des saisies d'agents "
                     "(à vérifier, puis à supprimer à la main) : " + ", ".join(repairs.kept[:20]))
    return notes


def _history_action(result: SyncResult, started: float, status: str, message: str | None = None, *,
                    now: float | None = None) -> list[Any]:
    notes = []
    if result.resumed:
        notes.append("Reprise d'une synchronisation interrompue, à partir de son dernier point de reprise.")
    if result.unknown_types:
        notes.append("Types de champ inconnus d'OTP, copiés en texte (stringValue) : " + ", ".join(result.unknown_types))
    if result.deleted_numbers:
        notes.append("Dossiers supprimés dans DS : " + ", ".join(f"n° {n}" for n in result.deleted_numbers))
    if result.filtered_out:
        notes.append("Dossiers sortis du filtre de la démarche : " + ", ".join(f"n° {n}" for n in result.filtered_out))
    if result.binned:
        notes.append("Dossiers mis à la corbeille DS (conservés, restaurables) : " + ", ".join(f"n° {n}" for n in result.binned))
    if result.restored:
        notes.append("Dossiers restaurés depuis la corbeille DS : " + ", ".join(f"n° {n}" for n in result.restored))
    if result.skipped:
        notes.append("Dossiers que DS n'a pas pu donner en entier (non écrits, repris à la prochaine synchronisation) : "
                     + ", ".join(f"n° {n}" for n in result.skipped) + (". Erreurs DS : " + " ; ".join(result.problems) if result.problems else ""))
    notes += _structure_notes(result)
    kind = "Reprise" if result.resumed else ("Incrémentale" if result.incremental else "Complète")
    return ["AddRecord", "OTP_Historique", None, {
        "Demarche": result.number,
        "Debut": started,
        "Fin": now if now is not None else time.time(),
        "Type": kind,
        "Statut": status,
        "Dossiers_recus": result.fetched,
        "Ajoutes": result.added,
        "Mis_a_jour": result.updated,
        "Supprimes": result.deleted,
        "Requetes_DS": result.ds_requests,
        "Message": message or result.message,
        "Notes": "\n".join(notes),
    }]


def _procedure_action(state: DocState, number: int, record: dict[str, Any]) -> list[Any]:
    row = state.procedure(number)
    if row is None:
        return ["AddRecord", "OTP_Demarches", None, {"Numero": number, **record}]
    return ["UpdateRecord", "OTP_Demarches", row["id"], record]


def reread_since(newest: str | None, previous_newest: str | None, started: float, now: float,
                 previous_end: float | None, previous_window: str | None) -> str:
    """From which modification date the next sync fetches the copied dossiers again.

    DS's dates have whole seconds and are stamped before their transaction commits: a dossier
    copied within SETTLE_S of its date may change again with the same date (a second change in
    that second, or one committed late), which comparing dates cannot see. Such a copy was made
    during this sync, so its date is after `newest − (sync's duration) − SETTLE_S` (DS's clock
    had reached `newest` by the end): the next sync fetches the dossiers dated from there again.
    When this sync started SETTLE_S or more after the previous one ended, its fetches of the
    previous window saw every change of those seconds: the window then starts after the
    previous newest date, and a sync that changed nothing leaves nothing to fetch again."""
    if not newest:
        return ""
    window = (datetime_cell(newest) or 0) - (now - started) - SETTLE_S
    settled = previous_end is not None and started - previous_end >= SETTLE_S
    if settled and previous_newest:
        window = max(window, (datetime_cell(previous_newest) or 0) + 1)
    elif not settled and previous_window:
        window = min(window, epoch_of(previous_window) or window)
    return _shift_epoch(window)
