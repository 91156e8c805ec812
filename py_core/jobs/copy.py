"""The copy: a procedure's dossiers from DS into the document, as named phases over its state.

`synchronise` runs them in order; each is a method of `Copy`, over `CopyState` (the
checkpoint kept in the document, and what the copy learnt from DS):

1. `structure` (in `synchronise`): read the procedure (every revision); check it comes from the
   DS instance the document was copied from. Errors here change nothing in the document. The
   pages read first go out meanwhile: the listing's, or a full copy's first page (then, from
   a far DS, windows of deposit date at once, while the tables are made: `_probe`).
2. `lease`: take the procedure's lease in `OTP_Etat` (`lease.py`); from there every write is
   fenced by it, and a copy that stops for any reason writes its line in `OTP_Historique`.
3. `tables`: create or adjust tables and columns with their registry; lay out the pages once;
   index the copy (the dossiers table; the others when a write needs them).
4. `take_again`: the dossiers DS could not answer in full last time, one by one.
5. By kind (`copy_kind.plan_kind`): `pages` for a full copy — every dossier by pages of 100
   ordered by last modification, each page's checkpoint stored with its rows, so an
   interrupted copy resumes where it stopped; from a far DS, windows of deposit date paged at
   once (`WindowStreams`, `plan/windows.py`).
   `listing` then `fetch_changed` for an incremental one (and a resumed full one): every
   dossier light (number, date, labels, what filters look at; read ahead from the start),
   then only the dossiers that are new or whose date differs from the copy's (or copied in the
   second of their date: `copy_kind.reread_since`). Nothing changed: 2 + ⌈N/100⌉ requests;
   from a far DS the listing too goes on by windows of deposit date paged at once.
6. `charts`: the dashboard's charts, on a first copy, once its dossiers are written; DS's bin
   is asked for meanwhile (`_read_bin`, after the listing).
7. `membership`: with DS's bin: dossiers in it flagged, restored ones
   unflagged (same row: agents' cells intact); a dossier the listing did not show and DS's
   lists do not name is asked for by number: only one DS does not have is removed (or flagged).
   Rows left without a dossier are swept (`plan_sweep`).
8. `finish`: the procedure's row, the history line and the lease given back, in one bundle.

Why dates rather than a cursor: DS stamps `updated_at` before its transaction commits, so a
dossier may become visible with a date older than one already copied (and its servers' clocks
differ slightly): a cursor would need a margin and would still skip a late enough commit.
Comparing each dossier's date with its copy's catches any modification, whatever its date; the
cursor (`Curseur`, newest date copied) only bounds the confirmed deletions asked for (`LAG_S`
before it). Labels do not move the date: the listing brings them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .. import errors
from ..ds.client import PAGE_SIZE, DSClient
from ..ds.dates import EPOCH, iso_second, later, shift
from ..ds.models import Structure
from ..grist.document import ensure_meta_tables, load_state
from ..grist.layout import CHARTS_PENDING, lay_out, make_charts
from ..grist.meta import DocState
from ..grist.sink import GristSink
from ..grist.values import datetime_cell, epoch_of
from ..grist.writer import Prepared, Writer
from ..plan.membership import changed_dossiers, plan_membership
from ..plan.registry import SchemaPlan, agent_columns, column_types, plan_ref_display, plan_registry, plan_schema, refresh_maps
from ..plan.windows import WAITED_S, density_of, first_windows, probe_streams
from ..plan.schema import BIN_DATE, DATE_MODIFIED, DELETED_DATE, OUT_OF_FILTER, Schema, build_schema
from .checkpoint import Checkpoint
from .copy_kind import SETTLE_S, carry_fresh, lists_first, plan_kind, reread_since, without_keys
from .copy_result import SyncResult, history_line
from .history import status_of
from .lease import TABLE as LEASES, FencedSink, acquire, carried_checkpoint
from .params import SyncParams, ds_base_url
from .prefill import follow_after_copy
from .streams import Prefetch, Streams, WindowStreams, cancel_all

LAG_S = 300  # margin before the cursor for confirmed deletions and the streams' closing pass
READ_AHEAD = 50  # light pages (100 dossiers each) an incremental copy may read before it uses them
PARALLEL_FROM = 1000  # dossiers: from there a full copy may page windows of deposit date at once,
WAITS_TO_PROBE = 2  # when it waited for that many pages in a row (`WAITED_S` or more each),
PROBE_WITHIN = 3  # among its first pages (the windows page again what was written before);
# an incremental copy's listing of that many dossiers, once DS took `WAITED_S` for its light pages
FAR_S = 0.5  # DS took this long for the structure and for the first page each: it is far (see `_probe`)

Cancel = Callable[[], bool]


async def synchronise(params: SyncParams, ds: DSClient, sink: GristSink, *, should_cancel: Cancel | None = None) -> SyncResult:
    """Copy procedure `params.number` into the document behind `sink`. The client carries the
    job's progress and clock (given to it at construction)."""
    number = params.number
    ds.progress.phase(f"Lecture de la structure de la démarche n° {number}…")
    doc = await load_state(sink)
    procedure = doc.procedure(number) or {}
    began = ds.clock.monotonic()  # DS's clock then: the copy's date (`Copy.ds_time`)
    # An incremental copy starts with the listing: its light pages are read from the start (at
    # most `READ_AHEAD` wait in memory), while the structure is read, the tables prepared and
    # the copy read. A copy from the first dossier (none to resume) asks for its first page
    # meanwhile (`Copy.run` drops it if another job left one by the time it holds the lease;
    # `Copy._probe` asks for the next one, or for windows of deposit date, once it came).
    # Reading changes nothing: a structure error still leaves the document as is.
    ahead = Streams([ds.refresh_pages(number, filtered=params.filters.active)], depth=READ_AHEAD) \
        if lists_first(procedure, params.filters) else None
    resumes = bool(carried_checkpoint(doc.meta.get(LEASES, []), number))
    first = None if ahead or resumes else Prefetch(ds.dossier_pages(number, EPOCH, None))
    async with ahead or first or contextlib.nullcontext():
        if first is not None:
            first.start()
        structure = await ds.structure(number)
        check_instance(procedure, structure, params.endpoint)
        doc = await ensure_meta_tables(sink, doc)
        lease = await acquire(sink, number, params.holder, ds.clock.now())
        fenced = FencedSink(sink, lease, ds.clock.now)
        ds.progress.on_wait = fenced.renew
        copy = Copy(params, ds, fenced, should_cancel or (lambda: False), Checkpoint.from_json(lease.checkpoint), began)
        try:
            return await copy.run(structure, doc, ahead, first)
        except BaseException as error:
            await copy.stopped(error)
            raise


def check_instance(procedure: dict[str, Any], structure: Structure, endpoint: str) -> None:
    """One copy, one DS: a procedure copied from a DS instance is never merged with the
    procedure of the same number on another one. Told apart by what DS reports of it (its id
    and creation date), not by the address typed: a relay in front of the same DS is the same."""
    recorded = procedure.get("Instance_DS") or ""
    if recorded and recorded != structure.instance:
        first = ds_base_url(procedure["Adresse_API"]) if procedure.get("Adresse_API") else "?"
        raise errors.other_instance(structure.number, first, ds_base_url(endpoint))


@dataclass
class CopyState:
    """The copy's state: its checkpoint (stored with every page it writes) and what it learnt."""

    checkpoint: Checkpoint
    result: SyncResult
    listed: set[int] = field(default_factory=set)  # every dossier DS has (pages, listing, by number)
    excluded: set[int] = field(default_factory=set)  # those outside the agent's filter
    gone: set[int] = field(default_factory=set)  # those DS answered `not_found` for, asked by number


@dataclass
class Listing:
    """What the light listing found, page after page."""

    copied: dict[int, float | None]  # number → the copy's modification date (seconds)
    reread: float | None  # dossiers dated from there are fetched again (`reread_since`)
    changed: dict[int, str] = field(default_factory=dict)  # number → DS's date, to fetch
    dates: list[float] = field(default_factory=list)  # every listed dossier's date
    seen: set[int] = field(default_factory=set)  # the numbers listed so far


@dataclass
class BinRead:
    """DS's bin asked for (`Copy._read_bin`): the dossiers the copy did not list then, and DS's answer to come."""

    unlisted: list[int]
    answer: asyncio.Future


class Copy:
    """One copy, from the lease to the end (see the module's docstring for its phases)."""

    def __init__(self, params: SyncParams, ds: DSClient, sink: FencedSink, should_cancel: Cancel,
                 carried: Checkpoint | None, began: float):
        self.params, self.ds, self.sink, self.should_cancel = params, ds, sink, should_cancel
        self.progress, self.clock = ds.progress, ds.clock
        self.started = self.clock.now()
        self.ds_time = ds.clock_at(began)  # DS's clock before any dossier was asked for (see `reread_since`)
        self.carried = carried
        result = SyncResult(params.number, "", resumed=carried is not None, scheduled=params.scheduled)  # this run's counts
        result.skipped = list(carried.skipped) if carried else []
        self.state = CopyState(carried or Checkpoint(), result)
        self.writer: Writer | None = None
        self.deposits: list[float] = []  # deposit dates seen by the full copy's pages (first and last of each)
        self.bin_read: BinRead | None = None  # DS's bin, once asked for (`bin_and_charts`)

    # -- the phases ------------------------------------------------------------------------
    async def run(self, structure: Structure, doc: DocState, ahead: Streams | None, early: Prefetch | None) -> SyncResult:
        params, state = self.params, self.state
        schema = build_schema(structure, timezone=doc.timezone, ds_base=params.ds_site or ds_base_url(params.endpoint))
        plan = plan_schema(doc, schema)
        procedure = doc.procedure(params.number) or {}
        kind = plan_kind(procedure, params.filters, self.carried, refill=plan.refill)
        state.checkpoint, state.result.incremental = kind.checkpoint, not kind.full
        if kind.full:  # columns made at the start of a full copy stay fresh until it is done
            plan.fresh, kept = carry_fresh(plan.fresh, plan.created, kind.checkpoint.fresh)
            state.checkpoint = state.checkpoint.moved(fresh=kept)
        first = await self._first_pages(kind.checkpoint if kind.full else None, early)
        async with first or contextlib.nullcontext(), \
                self._probing(first if first is early else None, structure.dossiers_count) as probe:
            writer, doc = await self.tables(structure, schema, plan, doc)
            binned = {n: writer.cell(n, BIN_DATE) for n in writer.dossier_ids}  # a write clears a restored one
            await self.take_again(procedure, schema, writer)
            cursor = procedure.get("Curseur") or None
            # a copy that started with no dossier: every row is one its pages brought (no listing
            # follows), so DS's bin and the charts come while the closing pass comes
            meanwhile = None if binned else (lambda: self.bin_and_charts(cursor, doc, writer))
            streamed = await self.pages(first, probe, structure, schema, writer, meanwhile) if kind.full else False
            self._check_cancel()
            if not kind.full or kind.resumed or (streamed and any(n not in state.listed for n in writer.dossier_ids)):
                listing = await self.listing(writer, ahead, structure, procedure)
                await self.fetch_changed(listing, schema, writer)
            else:
                state.listed.update(state.result.skipped)
            bin_read = await self.bin_and_charts(cursor, doc, writer)
            await self.membership(bin_read, binned, schema, writer)
            return await self.finish(structure, procedure, doc.procedure(params.number), writer)

    async def tables(self, structure: Structure, schema: Schema, plan: SchemaPlan, doc: DocState) -> tuple[Writer, DocState]:
        """Tables and columns with their registry, the pages once, the copy indexed."""
        number, result = self.params.number, self.state.result
        result.title, result.unknown_types = structure.title, schema.unknown_kinds
        result.recreated, result.released = plan.recreated, plan.released
        self.progress.phase("Préparation des tables…")
        # the checkpoint goes with the tables made: a copy interrupted before it filled them
        # resumes knowing which columns are still fresh
        await self.sink.apply(plan.actions, self._checkpoint() if self.state.checkpoint.fresh else None)
        doc = await load_state(self.sink)
        maps = refresh_maps(doc, schema, plan.maps)
        await self.sink.apply(plan_registry(doc, schema, maps, plan.typed) + plan_ref_display(doc, maps))
        doc = await lay_out(self.sink, doc, number, maps, title=structure.title)  # once per procedure
        self.progress.phase("Lecture de la copie dans le document…")
        self.writer = Writer(self.sink, maps, column_types(doc, maps), agent_columns(doc, maps), plan.fresh)
        await self.writer.load()
        keys = {k: set(m.spec.row_key) & plan.fresh.get(k, set()) for k, m in maps.items()}
        if any(keys.values()):  # their stale values blanked: the keys written from now on are this copy's
            await self.writer.clear_stale_keys()
            self.state.checkpoint = self.state.checkpoint.moved(fresh=without_keys(self.state.checkpoint.fresh, keys))
        return self.writer, doc

    async def take_again(self, procedure: dict[str, Any], schema: Schema, writer: Writer) -> None:
        """The dossiers DS could not answer in full last time, one by one."""
        result = self.state.result
        retry = sorted(set(_numbers(procedure.get("A_reprendre"))) | set(result.skipped))
        result.skipped = []
        for dossier_number in retry:
            await self._take_one(dossier_number, schema, writer)

    async def pages(self, first: Prefetch, probe: asyncio.Future | None, structure: Structure, schema: Schema,
                    writer: Writer, meanwhile: Callable[[], Awaitable[Any]] | None = None) -> bool:
        """A full copy's pages; True when it went on with windows of deposit date (`_streamed_pages`:
        `meanwhile`, while DS answers their closing pass): started by `probe` from a far DS,
        else once the copy waited for its pages."""
        state, total = self.state, structure.dossiers_count
        self.progress.count(state.result.fetched, total)
        self.progress.phase("Lecture des dossiers…")
        probed = await probe if probe is not None else None
        if probed is not None:  # the first page is paged again by the first window
            await first.__aexit__(None, None, None)
            await self._streamed_pages(schema, writer, total, meanwhile, probed)
            return True
        # a fresh full copy of many dossiers whose pages come slower than it writes them goes on
        # with windows of deposit date paged at once; the pages written before keep their checkpoint
        async with first as pages:  # asked for before the tables (see `run`)
            streams = await self._write_pages(pages, schema, writer, total, checkpointed=True,
                                              may_stream=self._may_stream(total))
        if streams:  # no checkpoint of their own: a resume goes on sequentially after the first page
            await self._streamed_pages(schema, writer, total, meanwhile)
        return streams

    async def listing(self, writer: Writer, ahead: Streams | None, structure: Structure,
                      procedure: dict[str, Any]) -> Listing:
        """List every dossier DS has, light (the pages `ahead` already read, if any); refresh
        labels; find the dossiers to fetch. When DS's light pages take `WAITED_S` or more (a far
        DS: the listing waits for them), a large procedure goes on by windows of deposit date
        paged at once from the last deposit listed (the light pages come in deposit order too):
        as many streams as help, balanced whatever the states' distribution (`WindowStreams`)."""
        self.progress.phase("Liste des dossiers et de leurs labels…")
        number, total, filtered = self.params.number, structure.dossiers_count or 0, self.params.filters.active
        listing = Listing({n: epoch_of(writer.cell(n, DATE_MODIFIED)) for n in writer.dossier_ids},
                          epoch_of(procedure.get("Relire_depuis")))
        async with ahead or Prefetch(self.ds.refresh_pages(number, filtered=filtered)) as pages:
            last = await self._list_pages(pages, listing, writer, may_stream=total >= PARALLEL_FROM)
        if last is not None:
            self.progress.phase("Liste des dossiers, par plusieurs flux à la fois…")
            windows = self._windows(lambda since: self.ds.refresh_pages(number, filtered=filtered, created_since=since),
                                    "refresh", max(0, total - len(listing.seen)), start=last,
                                    deposit_of=lambda node: node.get("dateDepot"))
            async with windows as pages:
                await self._list_pages(pages, listing, writer)
        listing.changed = {n: d for n, d in listing.changed.items() if n in self.state.listed}
        return listing

    async def fetch_changed(self, listing: Listing, schema: Schema, writer: Writer) -> None:
        """The dossiers the listing found new or changed: by pages `updatedSince` the oldest of
        their dates, or one by one when they are fewer than those pages."""
        if not listing.changed:
            return
        self.progress.phase(f"Lecture des {len(listing.changed)} dossiers nouveaux ou modifiés…")
        since = min((datetime_cell(c) or 0 for c in listing.changed.values()), default=0)
        pages = -(-sum(1 for d in listing.dates if d >= since) // PAGE_SIZE)  # from `since` on
        if len(listing.changed) < pages:  # a few, among many modified since (one with an old date)
            for dossier_number in sorted(listing.changed):
                self._check_cancel()
                await self._take_one(dossier_number, schema, writer)
        else:
            async with Prefetch(self.ds.dossier_pages(self.params.number, iso_second(since))) as found:
                await self._write_pages(found, schema, writer, None, checkpointed=False)

    async def membership(self, bin_read: BinRead, binned: dict[int, Any], schema: Schema, writer: Writer) -> None:
        """DS's bin and deletions (asked for by `_read_bin`), the agent's filter: flags set,
        removals, rows swept."""
        self.progress.phase("Dossiers mis à la corbeille ou supprimés dans DS…")
        state, params = self.state, self.params
        pending, deleted = await self._membership_lists(bin_read, schema, writer)
        held = {n: (binned.get(n), writer.cell(n, DELETED_DATE)) for n in writer.dossier_ids}
        plan = plan_membership(
            held, state.listed, pending, deleted, keep_deleted=params.keep_deleted, now=self.clock.now(),
            excluded=state.excluded, keep_excluded=params.filters.keep_out,
            out_cells={n: writer.cell(n, OUT_OF_FILTER) for n in writer.dossier_ids})
        await writer.set_flags({BIN_DATE: plan.bin_dates, DELETED_DATE: plan.deleted_dates, OUT_OF_FILTER: plan.out_of_filter})
        await writer.remove_dossiers(plan.remove)
        for number in sorted(plan.restored):  # DS keeps its date: what was made meanwhile is filled now
            self._check_cancel()
            await self._take_one(number, schema, writer)
        await writer.sweep()
        result = state.result
        result.filtered_out = sorted(plan.filtered_out)
        result.binned, result.restored = sorted(plan.binned), sorted(plan.restored)
        result.deleted_numbers, result.deleted = sorted(plan.deleted), len(plan.deleted)

    async def bin_and_charts(self, cursor: str | None, doc: DocState, writer: Writer) -> BinRead:
        """DS's bin asked for (`_read_bin`), the charts made while it answers; once a copy."""
        if self.bin_read is None:
            self.bin_read = self._read_bin(cursor, writer)
            await asyncio.sleep(0)  # its request leaves before the charts are made
            await self.charts(doc, writer)
        return self.bin_read

    async def charts(self, doc: DocState, writer: Writer) -> None:
        """The dashboard's charts, once the dossiers are written (`layout.make_charts`)."""
        if (doc.procedure(self.params.number) or {}).get(CHARTS_PENDING):
            self.progress.phase("Graphiques du tableau de bord…")
            await make_charts(self.sink, await load_state(self.sink), self.params.number, writer.maps)

    async def finish(self, structure: Structure, procedure: dict[str, Any], row: dict[str, Any] | None,
                     writer: Writer) -> SyncResult:
        """The procedure's row (`procedure` as it was at the start, `row` now: the pages' layout
        may have added it), the history line and the lease given back, in one bundle."""
        params, result, newest = self.params, self.state.result, self.state.checkpoint.newest
        result.total = len(writer.dossier_ids)
        result.repairs, result.reattached = writer.repairs, writer.reattached
        result.cursor = newest
        result.ds_requests = self.ds.request_count
        now = self.clock.now()
        record = {"Titre": structure.title, "Curseur": newest or "", "Derniere_synchro": now, "Nb_dossiers": result.total,
                  "Adresse_API": params.endpoint, "A_reprendre": " ".join(map(str, result.skipped)),
                  "Filtres": params.filters.key(), "Instance_DS": structure.instance,
                  "Relire_depuis": reread_since(self.ds_time, newest, procedure.get("Curseur") or None, self.started, now,
                                                procedure.get("Derniere_synchro"), procedure.get("Relire_depuis"))}
        write = ["UpdateRecord", "OTP_Demarches", row["id"], record] if row else \
            ["AddRecord", "OTP_Demarches", None, {"Numero": params.number, **record}]
        await follow_after_copy(self.sink, self.ds, params)  # prefilled dossiers: states, links (`prefill.py`)
        await self.sink.finish([write, history_line(result, self.started, now, "Terminée").action()])
        return result

    async def stopped(self, error: BaseException) -> None:
        """A copy that stops early: its history line, and the lease freed with its checkpoint."""
        if self.writer is not None:
            self.writer.stop_reading()
        if self.bin_read is not None:  # its answer is not wanted any more
            await cancel_all([self.bin_read.answer])
        status, message = status_of(error)
        self.state.result.ds_requests = self.ds.request_count
        line = history_line(self.state.result, self.started, self.clock.now(), status, message)
        try:
            await self.sink.sink.apply([line.action()])
        except Exception:  # noqa: BLE001 - Grist itself refuses: nothing more to record
            pass
        await self.sink.release(self._checkpoint())

    # -- the steps they share ---------------------------------------------------------------
    def _may_stream(self, total: int | None) -> bool:
        """A fresh full copy of many dossiers may go on with windows of deposit date."""
        state = self.state
        return not state.result.resumed and not state.checkpoint.after and (total or 0) >= PARALLEL_FROM

    async def _probe(self, first: Prefetch, total: int | None) -> tuple[WindowStreams, float | None] | None:
        """Once the first page asked for beside the structure came: from a far DS (it took
        `FAR_S` or more for the structure and for that page: two answers, whatever the copy's
        own speed), a copy that may stream starts windows of deposit date now, while the
        tables are prepared (the probe: four when DS's time is its distance, else two,
        `probe_streams`; more once they help, `WindowStreams`), with DS's clock then (their
        closing pass); else the next page is asked for. The first page is left to the caller
        (`pages`), who meets its error if any."""
        await asyncio.wait([first.asked[0]])  # not cancelled with this task: it is the caller's
        page = None if first.asked[0].cancelled() or first.asked[0].exception() else first.asked[0].result()
        if page is None:
            return None
        ds = self.ds
        structure_s, page_s = ds.round_trip("structure") or 0.0, ds.round_trip("dossiers") or 0.0
        if min(structure_s, page_s) >= FAR_S and page.page_info.has_next_page and self._may_stream(total):
            self.deposits += [datetime_cell(d.raw("dateDepot")) or 0.0 for d in page.nodes]
            started = ds.server_time
            windows = self._streams(total, probe_streams(structure_s, page_s))
            await windows.__aenter__()
            return windows, started
        first.ahead()
        return None

    @contextlib.asynccontextmanager
    async def _probing(self, first: Prefetch | None, total: int | None) -> AsyncIterator[asyncio.Future | None]:
        """`_probe` running while the copy goes on (when its first page was asked for beside
        the structure); on the way out, stopped, and its streams with it (taken or not)."""
        probe = asyncio.ensure_future(self._probe(first, total)) if first is not None else None
        try:
            yield probe
        finally:
            if probe is not None:
                probe.cancel()
                try:
                    probed = await probe
                except BaseException:  # noqa: BLE001 - cancelled or failed: it started nothing
                    probed = None
                if probed is not None:
                    await probed[0].__aexit__(None, None, None)

    async def _first_pages(self, checkpoint: Checkpoint | None, early: Prefetch | None) -> Prefetch | None:
        """A full copy's pages from `checkpoint`: those asked for alongside the structure when
        it starts from the first dossier (else they are dropped), or asked for now: they come
        while the tables are prepared."""
        if early is not None and checkpoint is not None and checkpoint.since == EPOCH and not checkpoint.after:
            return early
        if early is not None:
            await early.__aexit__(None, None, None)
        if checkpoint is None:
            return None
        first = Prefetch(self.ds.dossier_pages(self.params.number, checkpoint.since, checkpoint.after))
        first.start()
        return first

    def _check_cancel(self) -> None:
        if self.should_cancel():
            raise errors.cancelled()

    def _checkpoint(self, after: str | None = None) -> Checkpoint:
        checkpoint = self.state.checkpoint.moved(skipped=tuple(self.state.result.skipped))
        return checkpoint.moved(after=after) if after else checkpoint

    async def _write_pages(self, pages: AsyncIterator[Any], schema: Schema, writer: Writer, total: int | None, *,
                           checkpointed: bool, may_stream: bool = False) -> bool:
        """Write the pages; True when the sequential stream should give way to windows of
        deposit date paged at once (`_streamed_pages`): the pages came slower than they were
        written (`WAITS_TO_PROBE` pages in a row the copy waited for), never on one slow answer,
        and only among the first `PROBE_WITHIN` pages (later, paging again what was written
        costs more than the windows could save). A page that was already there (the first
        pages are asked for while the structure is read and the tables made) counts as waited
        for when DS's round trip was longer than writing it by `WAITED_S`: the copy would have
        waited for the next one, asked for as this one was taken."""
        state, result = self.state, self.state.result
        waits, seen, asked = 0, 0, self.clock.monotonic()
        async with Prefetch(self._prepared(pages, schema, writer)) as prepared_pages:
            async for page, prepared, preparing_s in prepared_pages:
                seen += 1
                self._check_cancel()
                taken = self.clock.monotonic()
                waited = max(0.0, taken - asked - preparing_s)  # DS's time, not the rows'
                result.waited_s += waited
                # the checkpoint moves past this page in the bundle that writes it, never before
                after = (page.page_info.end_cursor or state.checkpoint.after) if checkpointed else state.checkpoint.after
                await self._write(page.nodes, page.skipped, schema, writer, after=after, prepared=prepared)
                state.checkpoint = state.checkpoint.moved(after=after)
                result.problems += [p for p in page.problems if p not in result.problems]
                state.listed.update(d.number for d in page.nodes)
                state.listed.update(page.skipped)
                self.deposits += [datetime_cell(d.raw("dateDepot")) or 0.0 for d in page.nodes[:1] + page.nodes[-1:]]
                self.progress.count(min(result.fetched, total) if total is not None else result.fetched, total)
                if may_stream and waited < WAITED_S:  # what the next one waits: DS's time less the write's
                    waited = self.ds.last_round_trip("dossiers") - (self.clock.monotonic() - taken)
                waits = waits + 1 if waited >= WAITED_S else 0
                if may_stream and page.page_info.has_next_page and waits >= WAITS_TO_PROBE and seen <= PROBE_WITHIN:
                    return True
                asked = self.clock.monotonic()
        return False

    async def _prepared(self, pages: AsyncIterator[Any], schema: Schema, writer: Writer) -> AsyncIterator[tuple[Any, Prepared, float]]:
        """Each page with its rows, built as soon as it came (read one ahead by `_write_pages`:
        while the page before is written, Grist's work and OTP's run at once), and the time
        that took."""
        async for page in pages:
            started = self.clock.monotonic()
            prepared = self._prepare(page.nodes, schema, writer)
            yield page, prepared, self.clock.monotonic() - started

    async def _streamed_pages(self, schema: Schema, writer: Writer, total: int | None,
                              meanwhile: Callable[[], Awaitable[Any]] | None,
                              probed: tuple[WindowStreams, float | None] | None = None) -> None:
        """Every dossier by windows of deposit date paged at once (`WindowStreams`: two, more
        while they help), then a closing `updatedSince` pass from DS's clock when they started
        (less `SETTLE_S`; without its clock, its newest modification less `LAG_S`): the
        dossiers modified or deposited while the windows were paged, usually one page, asked
        as soon as the last window was paged (its pages come after those read before), and
        written after `meanwhile`, done while DS answers it."""
        number, ds = self.params.number, self.ds
        self.progress.phase("Lecture des dossiers, par plusieurs flux à la fois…")
        windows, started = probed or (self._streams(total), ds.server_time)
        newest = None if started else asyncio.ensure_future(ds.newest_modification(number))  # alongside the streams

        async def closing_pass() -> Prefetch | None:
            """Asked as soon as every window was paged, while the last pages are written."""
            await windows.fetched.wait()
            since = iso_second(started - SETTLE_S) if started else None
            if newest is not None:
                newest_at_start = await newest
                since = shift(newest_at_start, -LAG_S) if newest_at_start else None
            if not since:
                return None
            closing = Prefetch(ds.dossier_pages(number, since))
            closing.start()
            return closing

        ahead = asyncio.ensure_future(closing_pass())
        try:
            async with windows as pages:
                await self._write_pages(pages, schema, writer, total, checkpointed=False)
            closing = await ahead
        except BaseException:
            await cancel_all([t for t in (newest, ahead) if t is not None])
            asked = None if ahead.cancelled() or ahead.exception() else ahead.result()
            if asked is not None:  # its request is not wanted any more
                await asked.__aexit__(None, None, None)
            raise
        if closing is not None:
            async with closing as pages:
                if meanwhile is not None:
                    await meanwhile()
                await self._write_pages(pages, schema, writer, total, checkpointed=False)

    def _streams(self, total: int | None, streams: int = 2) -> WindowStreams:
        """The full copy's windows (`_windows`, `streams` of them at first): every dossier, by deposit date."""
        number = self.params.number
        return self._windows(lambda since: self.ds.dossier_pages(number, None, created_since=since), "dossiers",
                             total or 0, deposit_of=lambda dossier: dossier.raw("dateDepot"), streams=streams)

    def _windows(self, pages_from: Callable[[str | None], AsyncIterator[Any]], query: str, total: int, *,
                 deposit_of: Callable[[Any], Any], start: float | None = None, streams: int = 2) -> WindowStreams:
        """Windows of deposit date from `start` (None: the first dossier) paged at once
        (`WindowStreams`), the first `streams` cut between `start` (else the earliest deposit
        the copy saw) and DS's clock; `total`: the dossiers they should bring."""
        ds = self.ds
        now = ds.server_time or self.clock.now()
        low = start if start is not None else min(self.deposits, default=now - 1)
        return WindowStreams(
            pages_from, first_windows(low, now, streams, start=start), deposit_of=deposit_of,
            round_trip=lambda out: ds.round_trip(query, out=out),
            now=lambda: ds.server_time or self.clock.now(), monotonic=self.clock.monotonic,
            total=total, density=density_of(total, low, now))

    async def _list_pages(self, pages: AsyncIterator[Any], listing: Listing, writer: Writer, *,
                          may_stream: bool = False) -> float | None:
        """Take the light pages; when the listing should go on by windows (see `listing`), the
        deposit date it stopped at (its dossiers deposited then are listed again: skipped)."""
        state, filters = self.state, self.params.filters
        seen = 0
        async for page in pages:
            seen += 1
            nodes = [n for n in page.nodes if n["number"] not in listing.seen]
            listing.seen.update(n["number"] for n in nodes)
            state.listed.update(n["number"] for n in nodes)  # outside the filter too: DS has them
            state.excluded.update(n["number"] for n in nodes if not filters.matches(n))
            state.excluded.difference_update(n["number"] for n in nodes if filters.matches(n))
            inside = [n for n in nodes if n["number"] not in state.excluded]
            state.result.count(set(), await writer.refresh_labels(inside))
            listing.changed.update(changed_dossiers(listing.copied, inside, reread=listing.reread))
            listing.dates.extend(datetime_cell(n.get("dateDerniereModification")) or 0 for n in inside)
            await self.sink.keep()
            if listing.changed:
                writer.read_ahead()  # writing them needs the other tables: read while listing
            self._check_cancel()
            # taking a light page costs next to nothing: the listing waits when DS's answers take
            # longer than that, the fastest of two or more (the first one was read ahead)
            far = seen >= WAITS_TO_PROBE and self.ds.fastest_s.get("refresh", 0.0) >= WAITED_S
            if may_stream and far and page.page_info.has_next_page and page.nodes:
                last = datetime_cell(page.nodes[-1].get("dateDepot"))
                if last is not None:
                    return last
        return None

    def _read_bin(self, cursor: str | None, writer: Writer) -> BinRead:
        """Ask DS for its bin, and for the confirmed deletions when the document holds dossiers
        the copy did not list (since `cursor` less `LAG_S`), once every dossier was listed."""
        unlisted = [n for n in writer.dossier_ids if n not in self.state.listed and not writer.cell(n, DELETED_DATE)]
        since = shift(cursor, -LAG_S) if cursor else None
        return BinRead(unlisted, asyncio.ensure_future(self.ds.deletions(self.params.number, since, confirmed=bool(unlisted))))

    async def _membership_lists(self, bin_read: BinRead, schema: Schema, writer: Writer) -> tuple[dict, dict]:
        """DS's bin (number → date), and the confirmed deletions (number → date) when the
        document holds dossiers the listing did not show. Those in neither list are asked for
        one by one: a dossier restored from the bin, or moved between streams, while the listing
        passed is alive (taken again); only one DS does not have is deleted."""
        number, state, unlisted = self.params.number, self.state, bin_read.unlisted
        deleted, pending = await bin_read.answer
        pending_dates, deleted_dates = _dates(pending), _dates(deleted)
        gone = False
        for n in unlisted:
            if n not in pending_dates and n not in deleted_dates and n not in state.gone:
                self._check_cancel()
                gone = not await self._take_one(n, schema, writer) or gone
                await self.sink.keep()
        if gone:  # one may have gone into the bin since the bin was read
            _, pending = await self.ds.deletions(number, None, confirmed=False)
            pending_dates = _dates(pending)
        return pending_dates, deleted_dates

    def _prepare(self, dossiers, schema: Schema, writer: Writer) -> Prepared:
        """The rows of the page's dossiers inside the filter (no I/O)."""
        return writer.prepare([d for d in dossiers if self.params.filters.matches(_node(d))], schema)

    async def _write(self, dossiers, skipped: list[int], schema: Schema, writer: Writer, *, after: str | None = None,
                     prepared: Prepared | None = None) -> None:
        state, result = self.state, self.state.result
        for dossier in dossiers:
            newest = state.checkpoint.newest
            if newest is None or later(dossier.date_derniere_modification, newest):
                state.checkpoint = state.checkpoint.moved(newest=dossier.date_derniere_modification)
        result.fetched += len(dossiers)
        inside = {d.number: self.params.filters.matches(_node(d)) for d in dossiers}
        state.excluded.update(n for n, ok in inside.items() if not ok)
        state.excluded.difference_update(n for n, ok in inside.items() if ok)
        result.skipped += [n for n in skipped if n not in result.skipped]
        checkpoint = self._checkpoint(after)
        added, updated = await writer.write_page(prepared or self._prepare(dossiers, schema, writer), schema, checkpoint)
        result.count(added, updated)

    async def _take_one(self, dossier_number: int, schema: Schema, writer: Writer) -> bool:
        """Fetch one dossier and write it; False when DS no longer has it. One DS cannot answer
        in full is kept as it is and taken again at the next copy."""
        state = self.state
        try:
            dossier = await self.ds.dossier(self.params.number, dossier_number)
        except errors.DSQueryError as error:
            state.result.skipped.append(dossier_number)
            state.result.problems.append(error.detail[:200])
            state.listed.add(dossier_number)
            return True
        if dossier is None:
            state.gone.add(dossier_number)
            return False
        await self._write([dossier], [], schema, writer)
        state.listed.add(dossier.number)
        return True


def _node(dossier) -> dict[str, Any]:
    """What the filter looks at, as DS names it."""
    return {"state": dossier.state, "dateDepot": dossier.raw("dateDepot"), "archived": dossier.raw("archived"),
            "groupeInstructeur": dossier.raw("groupeInstructeur")}


def _numbers(text: Any) -> list[int]:
    return [int(n) for n in str(text or "").replace(",", " ").split() if n.isdigit()]


def _dates(items) -> dict[int, float | None]:
    return {item.number: datetime_cell(item.date_supression) for item in items}
