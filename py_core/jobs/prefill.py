"""Prefilling: DS dossiers created already filled in from the rows of `D<n>_Preremplissage`,
then followed. Named phases over the copy's shared job parts (`lease`, `history`, `params`):

1. `open_job`: the procedure's structure (the active form), OTP's tables, the procedure's
   lease (`lease.acquire`: a prefill and a copy of one procedure never run at once; a
   checkpoint an interrupted copy left is carried over untouched).
2. `tables`: `D<n>_Preremplissage` and its block tables made or adjusted from the active
   form, each column registered (`registry.plan_schema`): agents' columns, formulas, rows stay.
3. `read_rows` + `check`: every value checked by DS's prefill rules (`plan.prefill`); the
   problems written in « Problèmes ».
4. `send`: one POST per ready row through `PublicAPI` (paced at 15 per 15 s, 429 waited out).
   **A row never gets two dossiers**: the row is marked as being sent (« Envoi commencé le »)
   in a bundle committed before its request leaves; link, prefill token, number and state come
   back in one bundle. A row still marked at the start of a job (an interruption between the
   two) is not sent again unless the agent ticks « Renvoyer malgré l'interruption ». No request
   is retried once it may have reached DS (no answer, 5xx): the job stops there.
   The rows themselves are the job's checkpoint: a cancelled or failed job resumes with the
   rows that have no link.
5. `finish`: the history line (Type « Préremplissage ») and the lease given back.

Following (`follow`): the states of the prefilled dossiers by their tokens (batched GETs):
« État DS », « Déposé le », and « Dossier » linked to the copied dossier once submitted. Run by
« Mettre à jour le suivi » and at the end of every copy (`follow_after_copy`).
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from .. import errors
from ..ds.client import DSClient, rate_limit_wait
from ..ds.models import Structure
from ..ds.transport import NetworkError, Transport
from ..grist.document import ensure_meta_tables, load_state
from ..grist.meta import DocState
from ..grist.sink import GristSink, records
from ..grist.values import datetime_cell
from ..plan import prefill as plan
from ..plan.registry import TableMap, plan_ref_display, plan_registry, plan_schema, refresh_maps
from ..plan.schema import DOSSIER_KEY, build_schema
from .history import HistoryLine, status_of
from .lease import FencedSink, acquire
from .params import SyncParams, ds_base_url

KIND = "Préremplissage"
LIMIT, WINDOW_S = 15, 15.0  # DS: 15 POST per 15 s per address (all agents of a relay together)
TRACK_BATCH = 40  # prefill tokens per tracking GET (its URL stays short)
RATE_WAIT_S = 15.0  # a 429 without a reset header: one window
MAX_RATE_WAITS = 40

Cancel = Callable[[], bool]


@dataclass
class _Carried:
    """The checkpoint an interrupted copy left in the lease: kept as it is."""

    text: str

    def to_json(self) -> str:
        return self.text


@dataclass
class PrefillResult:
    number: int
    created: int = 0
    problems: list[int] = field(default_factory=list)  # row ids not sent (problems to correct)
    interrupted: list[int] = field(default_factory=list)  # row ids marked by an earlier interruption
    empty: int = 0
    posts: int = 0
    followed: int = 0
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"number": self.number, "created": self.created, "problems": self.problems, "interrupted": self.interrupted,
                "empty": self.empty, "posts": self.posts, "followed": self.followed, "message": self.message}


class PublicAPI:
    """DS's public prefill API (no token): POST paced under DS's limit, tracking GETs."""

    def __init__(self, endpoint: str, transport: Transport, ds: DSClient, should_cancel: Cancel):
        self.base = ds_base_url(endpoint)
        self.transport, self.progress, self.clock = transport, ds.progress, ds.clock
        self.should_cancel = should_cancel
        self.sent: deque[float] = deque()
        self.posts = 0

    def url(self, number: int) -> str:
        return f"{self.base}/api/public/v1/demarches/{number}/dossiers"

    async def create(self, number: int, body: dict[str, Any], row_id: int, created: int) -> dict[str, Any]:
        """One prefilled dossier, its turn already taken (`pace`, before the row was marked);
        raises `prefill_refused` (not created) or `prefill_uncertain` (maybe created: never retried)."""
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        for attempt in range(MAX_RATE_WAITS):
            if attempt:
                await self.pace(cancellable=False)  # the row is marked: its request goes, whatever
            self.posts += 1
            try:
                answer = await self.transport.post(self.url(number), headers, data)
            except NetworkError as error:
                if error.cors:  # a JSON POST is preflighted: refused there, it never left
                    raise errors.prefill_refused(number, 0, "CORS") from None
                raise errors.prefill_uncertain(row_id, created, "délai dépassé" if error.timeout else "réseau") from None
            if answer.status == 429:  # refused before anything was created: the same request again
                await self._wait(rate_limit_wait(answer.header("ratelimit-reset"), answer.header("retry-after"), self.clock.now(), default=RATE_WAIT_S),
                                 "DS limite les créations (15 par 15 s, pour tous les agents du relais) : reprise", cancellable=False)
                continue
            if answer.status == 201:
                value = _json(answer.body)
                if not isinstance(value, dict) or not value.get("dossier_prefill_token") or not value.get("dossier_url"):
                    raise errors.prefill_uncertain(row_id, created, "réponse 201 illisible")  # created, but where?
                return value
            if answer.status in (400, 403, 404, 422):
                raise errors.prefill_refused(number, answer.status, answer.body.decode("utf-8", "replace"))
            raise errors.prefill_uncertain(row_id, created, f"réponse {answer.status}")
        raise errors.rate_limited(int(RATE_WAIT_S))

    async def track(self, number: int, tokens: list[str]) -> list[dict[str, Any]] | None:
        """DS's answer for these tokens (unknown ones left out); None when DS did not answer."""
        get = getattr(self.transport, "get", None)
        if get is None:
            return None
        url = f"{self.url(number)}?prefill_token={quote(','.join(tokens), safe=',')}"
        try:
            answer = await get(url, {"Accept": "application/json"})
        except NetworkError:
            return None
        value = _json(answer.body) if answer.status == 200 else None
        return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else None

    async def pace(self, *, cancellable: bool = True) -> None:
        """Wait for a turn: at most `LIMIT` requests in any `WINDOW_S` seconds."""
        now = self.clock.monotonic()
        while self.sent and self.sent[0] <= now - WINDOW_S:
            self.sent.popleft()
        if len(self.sent) >= LIMIT:
            await self._wait(self.sent[0] + WINDOW_S - now, "Limite de DS (15 dossiers par 15 s) : prochain envoi",
                             cancellable=cancellable)
            return await self.pace(cancellable=cancellable)
        self.sent.append(now)

    async def _wait(self, seconds: float, why: str, *, cancellable: bool = True) -> None:
        """A countdown every second (the lease renewed first); « Annuler » is heard during it."""
        await self.progress.before_wait()
        remaining = seconds
        while remaining > 0:
            if cancellable and self.should_cancel():
                raise errors.cancelled()
            self.progress.waiting(max(1, round(remaining)), why)
            step = min(1.0, remaining)
            await self.clock.sleep(step)
            remaining -= step


def _json(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None


# -- the job's parts -------------------------------------------------------------------------
@dataclass
class Tables:
    maps: dict[str, TableMap]
    structure: Structure
    remade: list[str] = field(default_factory=list)  # OTP columns of the prefill table an agent deleted, made again

    def ids(self, key: str = plan.TABLE_KEY) -> dict[str, str]:
        return self.maps[key].col_ids

    def col_ids(self) -> dict[str, dict[str, str]]:
        return {k: m.col_ids for k, m in self.maps.items()}


async def open_job(params: SyncParams, ds: DSClient, sink: GristSink) -> tuple[Structure, DocState, FencedSink]:
    """The active form (errors here change nothing), OTP's tables, the procedure's lease."""
    structure = await ds.structure(params.number)
    doc = await ensure_meta_tables(sink, await load_state(sink))
    lease = await acquire(sink, params.number, params.holder, ds.clock.now())
    fenced = FencedSink(sink, lease, ds.clock.now)
    ds.progress.on_wait = fenced.renew
    return structure, doc, fenced


async def tables(params: SyncParams, structure: Structure, doc: DocState, sink: FencedSink) -> Tables:
    """`D<n>_Preremplissage` and its block tables made or adjusted, registered like the copy's."""
    ds_base = params.ds_site or ds_base_url(params.endpoint)
    dossiers = build_schema(structure, timezone=doc.timezone, ds_base=ds_base).table("dossiers")
    schema = plan.build_prefill_schema(structure, dossiers, timezone=doc.timezone)
    planned = plan_schema(doc, schema)
    await sink.apply(planned.actions)
    doc = await load_state(sink)
    maps = refresh_maps(doc, schema, planned.maps)
    actions = plan_registry(doc, schema, maps, planned.typed) + plan_ref_display(doc, maps)
    if plan.TABLE_KEY in planned.created:
        table_id = maps[plan.TABLE_KEY].table_id
        refs = {doc.column_ref(table_id, maps[plan.TABLE_KEY].col_ids[k]) for k in plan.HIDDEN}
        actions += plan.hide_fields(records(await sink.fetch_table("_grist_Views_section")),
                                    records(await sink.fetch_table("_grist_Views_section_field")), doc.table_ref(table_id), refs)
    await sink.apply(actions)
    remade = [] if plan.TABLE_KEY in planned.created else sorted(planned.fresh.get(plan.TABLE_KEY, set()) & {*plan.SENT, plan.SENDING})
    return Tables(maps, structure, [schema.table(plan.TABLE_KEY).column(k).label for k in remade])


async def read_rows(sink: GristSink, found: Tables) -> tuple[list[dict[str, Any]], dict[int, dict[str, list]]]:
    """The prefill rows, and per row id each block's rows (block descriptor id → rows)."""
    rows = records(await sink.fetch_table(found.maps[plan.TABLE_KEY].table_id))
    blocks: dict[int, dict[str, list]] = {}
    for key, table_map in found.maps.items():
        if not key.startswith(plan.BLOCK_PREFIX):
            continue
        parent = table_map.col_ids[plan.PARENT]
        for line in records(await sink.fetch_table(table_map.table_id)):
            blocks.setdefault(line.get(parent) or 0, {}).setdefault(key.removeprefix(plan.BLOCK_PREFIX), []).append(line)
    return rows, blocks


def _history(result: PrefillResult, started: float, ended: float, status: str, message: str) -> HistoryLine:
    notes = []
    if result.problems:
        notes.append("Lignes non envoyées (problèmes) : " + " ".join(map(str, result.problems)))
    if result.interrupted:
        notes.append("Lignes interrompues pendant un envoi, non renvoyées : " + " ".join(map(str, result.interrupted)))
    return HistoryLine(result.number, KIND, status, started, ended, message, notes, received=result.created + len(result.problems),
                       added=result.created, updated=result.followed, ds_requests=result.posts)


def end_message(result: PrefillResult) -> str:
    parts = [f"Préremplissage terminé : {result.created} dossier{'s' if result.created > 1 else ''} créé{'s' if result.created > 1 else ''}."]
    if result.problems:
        parts.append(f"{len(result.problems)} ligne(s) non envoyée(s) à cause de problèmes : voir la colonne « Problèmes », "
                     "corrigez-les ou cochez « Envoyer sans les valeurs en erreur ».")
    if result.interrupted:
        parts.append(f"{len(result.interrupted)} ligne(s) interrompue(s) pendant un envoi précédent, non renvoyée(s) : le dossier "
                     "a peut-être été créé ; vérifiez, puis cochez « Renvoyer malgré l'interruption » pour la renvoyer.")
    if result.empty:
        parts.append(f"{result.empty} ligne(s) vide(s) ignorée(s).")
    return " ".join(parts)


async def _close(sink: FencedSink, line: HistoryLine) -> None:
    """The history line, then the lease given back with the checkpoint it carried (a copy's)."""
    carried = _Carried(sink.lease.checkpoint)
    await sink.apply([line.action()], carried)
    await sink.release(carried)


async def _stopped(sink: FencedSink, result: PrefillResult, started: float, now: float, error: BaseException) -> None:
    status, message = status_of(error)
    try:
        await sink.sink.apply([_history(result, started, now, status, message).action()])
    except Exception:  # noqa: BLE001 - Grist itself refuses: nothing more to record
        pass
    await sink.release(_Carried(sink.lease.checkpoint))


# -- the entries -----------------------------------------------------------------------------
async def prepare(params: SyncParams, ds: DSClient, sink: GristSink) -> dict[str, Any]:
    """« Préparer le préremplissage »: the tables, made or adjusted to the active form."""
    ds.progress.phase(f"Préparation du préremplissage de la démarche n° {params.number}…")
    structure, doc, fenced = await open_job(params, ds, sink)
    started, result = ds.clock.now(), PrefillResult(params.number)
    try:
        found = await tables(params, structure, doc, fenced)
    except BaseException as error:
        await _stopped(fenced, result, started, ds.clock.now(), error)
        raise
    table_id = found.maps[plan.TABLE_KEY].table_id
    blocks = [m.table_id for k, m in found.maps.items() if k.startswith(plan.BLOCK_PREFIX)]
    message = (f"Table {table_id} prête : remplissez une ligne par dossier à créer (à la main, par import ou par des "
               "formules), puis cliquez sur « Créer les dossiers préremplis »."
               + (f" Lignes des blocs répétables : {', '.join(blocks)} (liées à leur ligne)." if blocks else ""))
    await _close(fenced, HistoryLine(params.number, KIND, "Terminée", started, ds.clock.now(), message))
    return {"table": table_id, "blocks": blocks, "message": message}


async def check(sink: FencedSink, found: Tables, result: PrefillResult) -> list[tuple[int, plan.Checked, bool]]:
    """Every row checked; problems and « À créer » written in one bundle; the rows to send."""
    rows, blocks = await read_rows(sink, found)
    ids, table_id = found.ids(), found.maps[plan.TABLE_KEY].table_id
    queue, updates = [], []
    for row in rows:
        checked = plan.check_row(found.structure, found.col_ids(), row, blocks.get(row["id"], {}))
        status = plan.row_status(row, ids, checked)
        result.empty += status == "empty"
        if status in ("done", "empty"):
            continue
        wanted = {ids[plan.PROBLEMS]: plan.problems_text(checked, status == "ready")}
        wanted[ids[plan.STATE]] = row.get(ids[plan.STATE]) or plan.TO_CREATE
        if status == "interrupted":
            wanted.pop(ids[plan.PROBLEMS])
            result.interrupted.append(row["id"])
        result.problems += [row["id"]] if status == "problems" else []
        queue += [(row["id"], checked, bool(checked.problems))] if status == "ready" else []
        changes = {k: v for k, v in wanted.items() if row.get(k) != v}
        updates += [["UpdateRecord", table_id, row["id"], changes]] if changes else []
    await sink.apply(updates)
    return queue


async def send(api: PublicAPI, sink: FencedSink, found: Tables, queue: list[tuple[int, plan.Checked, bool]],
               result: PrefillResult, should_cancel: Cancel) -> None:
    """One dossier per ready row: marked (committed) before its request, link + token + number
    in one bundle after. A refused request (nothing created) clears the mark and stops the job."""
    ids, table_id, number = found.ids(), found.maps[plan.TABLE_KEY].table_id, result.number
    api.progress.phase(f"Création des dossiers préremplis ({len(queue)} lignes prêtes)…")
    for done, (row_id, checked, without) in enumerate(queue):
        if should_cancel():
            raise errors.cancelled()
        await api.pace()
        await sink.apply([["UpdateRecord", table_id, row_id, plan.marked(ids, api.clock.now())]])
        try:
            answer = await api.create(number, checked.body, row_id, result.created)
        except errors.OTPError as error:
            if error.code == "prefill_refused":
                await sink.apply([["UpdateRecord", table_id, row_id, {ids[plan.SENDING]: None, ids[plan.PROBLEMS]: error.message_fr}]])
            raise
        await sink.apply([["UpdateRecord", table_id, row_id, plan.created(ids, answer, plan.problems_text(checked, without))]])
        result.created += 1
        api.progress.count(done + 1, len(queue), unit="dossiers préremplis créés")


async def create_prefilled(params: SyncParams, ds: DSClient, sink: GristSink, transport: Transport, *,
                           should_cancel: Cancel | None = None) -> PrefillResult:
    """« Créer les dossiers préremplis »: one dossier per ready row without a link."""
    cancel = should_cancel or (lambda: False)
    ds.progress.phase(f"Préremplissage de la démarche n° {params.number} : lecture du formulaire…")
    structure, doc, fenced = await open_job(params, ds, sink)
    started, result = ds.clock.now(), PrefillResult(params.number)
    api = PublicAPI(params.endpoint, transport, ds, cancel)
    try:
        found = await tables(params, structure, doc, fenced)
        if found.remade:  # which rows already have a dossier is no longer known: the agent checks first
            raise errors.prefill_columns_remade(found.remade)
        ds.progress.phase("Vérification des valeurs selon les règles de DS…")
        queue = await check(fenced, found, result)
        await send(api, fenced, found, queue, result, cancel)
    except BaseException as error:
        result.posts = api.posts
        stopped = errors.prefill_cancelled(result.created) if getattr(error, "code", "") == "cancelled" else error
        await _stopped(fenced, result, started, ds.clock.now(), stopped)
        if stopped is error:
            raise
        raise stopped from None
    result.posts, result.message = api.posts, end_message(result)
    await _close(fenced, _history(result, started, ds.clock.now(), "Terminée", result.message))
    return result


# -- following -------------------------------------------------------------------------------
def _registered(doc: DocState, number: int) -> dict[str, TableMap]:
    """The prefill tables and the dossiers table as the registry knows them (no planning)."""
    tables = doc.registered_tables(number)
    maps: dict[str, TableMap] = {}
    for row in doc.registered_columns(number):
        key = next((k for k, ref in tables.items() if ref == row["Table_ref"]), None)
        column = doc.columns.get(row["Col_ref"])
        if key is None or column is None or row["Table_ref"] not in doc.tables:
            continue
        maps.setdefault(key, TableMap(None, doc.tables[row["Table_ref"]], {})).col_ids[row["Cle"]] = column.col_id  # type: ignore[arg-type]
    return maps


async def track(api: PublicAPI, sink: GristSink | FencedSink, maps: dict[str, TableMap], number: int) -> int:
    """« État DS », « Déposé le », « Dossier » of every prefilled row, from DS's answers to its
    tokens (batched); the rows changed. A batch DS did not answer changes nothing."""
    ids, table_id = maps[plan.TABLE_KEY].col_ids, maps[plan.TABLE_KEY].table_id
    rows = [r for r in records(await sink.fetch_table(table_id)) if r.get(ids.get(plan.TOKEN, ""))]
    dossier_rows = {}
    if rows and "dossiers" in maps and DOSSIER_KEY in maps["dossiers"].col_ids:
        key = maps["dossiers"].col_ids[DOSSIER_KEY]
        dossier_rows = {r.get(key): r["id"] for r in records(await sink.fetch_table(maps["dossiers"].table_id))}
    updates = []
    for start in range(0, len(rows), TRACK_BATCH):
        batch = rows[start:start + TRACK_BATCH]
        answer = await api.track(number, [str(r[ids[plan.TOKEN]]) for r in batch])
        if answer is None:
            continue
        by_token = {str(a.get("dossier_prefill_token")): a for a in answer}
        for row in batch:
            item = by_token.get(str(row[ids[plan.TOKEN]]))
            submitted = item is not None and item.get("state") not in ("prefilled", "brouillon")
            changes = plan.followed(ids, row, item, dossier_rows.get(int(item.get("dossier_number") or 0)) if submitted else None,
                                    datetime_cell(item.get("submitted_at")) if item else None)
            updates += [["UpdateRecord", table_id, row["id"], changes]] if changes else []
    await sink.apply(updates)
    return len(updates)


async def follow(params: SyncParams, ds: DSClient, sink: GristSink, transport: Transport) -> PrefillResult:
    """« Mettre à jour le suivi »: the prefilled dossiers' states asked of DS now."""
    ds.progress.phase(f"Suivi des dossiers préremplis de la démarche n° {params.number}…")
    structure, doc, fenced = await open_job(params, ds, sink)
    started, result = ds.clock.now(), PrefillResult(params.number)
    api = PublicAPI(params.endpoint, transport, ds, lambda: False)
    try:
        found = await tables(params, structure, doc, fenced)
        result.followed = await track(api, fenced, found.maps, params.number)
    except BaseException as error:
        await _stopped(fenced, result, started, ds.clock.now(), error)
        raise
    result.message = f"Suivi mis à jour : {result.followed} ligne(s) de préremplissage changée(s)."
    await _close(fenced, _history(result, started, ds.clock.now(), "Terminée", result.message))
    return result


async def follow_after_copy(sink: FencedSink, ds: DSClient, params: SyncParams) -> int:
    """The end of every copy: the prefilled dossiers followed, the ones just copied linked. One
    read when the procedure has no prefill table; never fails the copy (it is asked again at the
    next one)."""
    try:
        if not any(r.get("Demarche") == params.number and r.get("Cle") == plan.TABLE_KEY
                   for r in records(await sink.fetch_table("OTP_Tables"))):
            return 0
        maps = _registered(await load_state(sink), params.number)
        if plan.TABLE_KEY not in maps:
            return 0
        return await track(PublicAPI(params.endpoint, ds.transport, ds, lambda: False), sink, maps, params.number)
    except (errors.OTPError, NetworkError, KeyError, ValueError):
        return 0
