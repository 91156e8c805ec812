"""The send: what agents decided in the document, back to DS — previewed, confirmed, journaled.

Two entries, each a sequence of named phases over shared parts (the copy, the lease, the
history, the progress, French errors):

1. `preview`: `refresh` (an incremental copy: DS's values now, each sendable cell's base and
   DS's changes since marked as conflicts, see `plan.pending`), `outbox` (what would leave, by
   dossier: `plan.outbox`), `probe` (one empty annotations call: a read-only token or an
   instructeur DS refuses is told before anything is sent). Nothing is written to DS.
2. `send` (« Confirmer l'envoi »): `refresh` again (DS may have changed since the preview),
   `outbox` with the agent's choices for conflicts, then under the procedure's lease, dossier by
   dossier: its annotations in one call, its labels, its decision (not when DS refused one of
   its annotations); then in one bundle the journal's rows (`OTP_Envois`) and the bases, cells
   and state (`plan.sent`). « Annuler » stops between two dossiers. `finish`: the history line,
   the lease given back; then a last incremental copy brings what DS changed with the sends
   (dates, motivation) so the copy equals DS.

Only what the agent saw is sent: an item whose values changed since the preview waits for the
next one (`Item.seen`). Interrupted, a send run again sends only what still differs from DS:
the refresh sees DS's new values equal to the cells, so they are no longer pending; a label DS
already has, or a decision DS already applied, is taken as sent.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

from .. import errors
from ..ds.client import DSClient
from ..ds.models import Staff, Structure
from ..grist.document import load_state
from ..grist.meta import JOURNAL_PAGE, SEND_JOURNAL, meta_table_actions
from ..grist.sink import GristSink, records
from ..plan.outbox import ALREADY, CONFLICT, DECISIONS, KEEP, REFUSED, SEND, Document, Item, Outbox, display, \
    dossier_typed_id, plan_outbox
from ..plan.registry import plan_schema, refresh_maps
from ..plan.schema import build_schema
from ..plan.sent import CANCELLED, Outcome, SENT, journal, plan_sent
from ..plan.sent import CONFLICT as JOURNAL_CONFLICT
from ..plan.sent import REFUSED as JOURNAL_REFUSED
from .copy import synchronise
from .history import HistoryLine, status_of
from .lease import FencedSink, acquire
from .params import SendParams, ds_base_url

READ_ONLY = "seulement en lecture"  # DS's payload error for a read-only token
ALREADY_WORDS = ("déjà associé", "n’est pas associé", "n'est pas associé")  # a label DS already has (or not)

SENDERS = 3  # dossiers sent at once: DS's answer time is hidden, its limit (the client's pacing) kept

Cancel = Callable[[], bool]


@dataclass
class SendResult:
    number: int
    sent: int = 0
    refused: int = 0
    conflicts: int = 0
    cancelled: int = 0
    unseen: int = 0  # changed since the preview: not sent
    dossiers: int = 0
    ds_requests: int = 0
    refusals: list[str] = field(default_factory=list)  # « n° 1234 : … », for the agent

    @property
    def message(self) -> str:
        text = f"Envoi terminé : {self.sent} modifications envoyées"
        parts = [f"{self.refused} refusées" if self.refused else "",
                 f"{self.conflicts} conflits en attente de votre choix" if self.conflicts else "",
                 f"{self.unseen} modifiées depuis l'aperçu, non envoyées (relancez l'aperçu)" if self.unseen else ""]
        return text + "".join(f", {p}" for p in parts if p) + "."

    def to_dict(self) -> dict[str, Any]:
        return {"number": self.number, "sent": self.sent, "refused": self.refused, "conflicts": self.conflicts,
                "cancelled": self.cancelled, "unseen": self.unseen, "dossiers": self.dossiers,
                "ds_requests": self.ds_requests, "refusals": self.refusals[:50], "message": self.message}


@dataclass
class Ready:
    """What a send works from: the procedure, who may send, the document's sendable tables."""

    structure: Structure
    staff: Staff
    doc: Document
    outbox: Outbox


# -- the phases -------------------------------------------------------------------------------
async def refresh(params: SendParams, ds: DSClient, sink: GristSink, should_cancel: Cancel | None = None) -> None:
    """An incremental copy: DS's values now in the document, conflicts marked."""
    await synchronise(params.sync, ds, sink, should_cancel=should_cancel)


async def outbox(params: SendParams, ds: DSClient, sink: GristSink) -> Ready:
    number = params.sync.number
    ds.progress.phase("Préparation de l'envoi…")
    structure, staff = await ds.structure(number), await ds.instructeurs(number)
    state = await load_state(sink)
    schema = build_schema(structure, timezone=state.timezone, ds_base=params.sync.ds_site or ds_base_url(params.sync.endpoint))
    maps = refresh_maps(state, schema, plan_schema(state, schema).maps)
    maps = {k: m for k, m in maps.items() if k == "dossiers" or m.spec.sendable}
    tables = {k: await sink.fetch_table(m.table_id) for k, m in maps.items() if state.table_ref(m.table_id) is not None}
    doc = Document(maps, tables)
    return Ready(structure, staff, doc, plan_outbox(doc, structure, staff, params.instructeur, choices=params.choices,
                                                   notify=params.notify))


async def probe(params: SendParams, ds: DSClient, ready: Ready) -> str:
    """One call that changes nothing (no annotation): DS says whether the token may write and
    the instructeur may act on a dossier to send. Returns DS's refusal, "" if none."""
    first = next((i for i in ready.outbox.items if i.outcome in (SEND, CONFLICT) and i.kind != "label"), None)
    if first is None:
        return ""
    _payload, refusals = await ds.mutate("dossierModifierAnnotations", {
        "dossierId": dossier_typed_id(first.number), "instructeurId": _instructeur(params, ready.staff), "annotations": []},
        number=params.sync.number)
    if any(READ_ONLY in r for r in refusals):
        raise errors.read_only_token()
    return f"n° {first.number} : {refusals[0]}" if refusals else ""


def _instructeur(params: SendParams, staff: Staff) -> str:
    found = staff.instructeur(params.instructeur)
    if found is None:
        raise errors.unknown_instructeur(params.instructeur)
    return found.id


# -- the entries ------------------------------------------------------------------------------
async def preview(params: SendParams, ds: DSClient, sink: GristSink, *, should_cancel: Cancel | None = None) -> dict[str, Any]:
    """« Envoyer vers DS »: what would be sent, by dossier, with conflicts and refusals."""
    await refresh(params, ds, sink, should_cancel)
    ready = await outbox(params, ds, sink)
    warning = await probe(params, ds, ready) if params.instructeur else ""
    return preview_dict(ready, warning)


def preview_dict(ready: Ready, warning: str = "") -> dict[str, Any]:
    box = ready.outbox
    dossiers = [{"number": n, "items": [_item_dict(i) for i in items]} for n, items in box.by_dossier().items()]
    counts = {"send": box.count(SEND), "refused": box.count(REFUSED) + box.count(ALREADY), "conflicts": box.count(CONFLICT),
              "dossiers": len({i.number for i in box.items if i.outcome == SEND})}
    return {"dossiers": dossiers, "counts": counts, "notify_warning": box.notify, "warning": warning,
            "instructeurs": ready.staff.emails(),
            "approved": {i.ref: i.seen for i in box.items},
            "message": _preview_message(counts)}


def _preview_message(counts: dict[str, int]) -> str:
    if not counts["send"] and not counts["conflicts"] and not counts["refused"]:
        return "Rien à envoyer : les valeurs du document sont celles de DS."
    return (f"{counts['send']} modifications à envoyer pour {counts['dossiers']} dossiers"
            + (f", {counts['conflicts']} conflits" if counts["conflicts"] else "")
            + (f", {counts['refused']} valeurs que DS refuserait" if counts["refused"] else "") + ".")


def _item_dict(item: Item) -> dict[str, Any]:
    if item.kind == "label":
        line = f"label {'+' if item.payload.get('add') else '−'} {item.cell}"
    elif item.kind == "decision":
        line = f"décision : {item.cell}"
    else:
        line = f"{item.what} : {display(item.base, item.ds_kind)} → {display(item.cell, item.ds_kind)}"
    return {"ref": item.ref, "kind": item.kind, "what": item.what, "line": line, "outcome": item.outcome,
            "problem": item.problem, "mine": display(item.cell, item.ds_kind), "ds": display(item.current, item.ds_kind)}


async def send(params: SendParams, ds: DSClient, sink: GristSink, *, should_cancel: Cancel | None = None) -> SendResult:
    """« Confirmer l'envoi »: the approved items, dossier by dossier (see the module's docstring)."""
    cancel = should_cancel or (lambda: False)
    await refresh(params, ds, sink, cancel)
    ready = await outbox(params, ds, sink)
    instructeur = _instructeur(params, ready.staff)
    await _ensure_journal(sink)
    job = Send(params, ds, cancel, ready, instructeur)
    lease = await acquire(sink, params.sync.number, params.sync.holder, ds.clock.now())
    job.sink = FencedSink(sink, lease, ds.clock.now)
    ds.progress.on_wait = job.sink.renew
    try:
        await job.run()
    except BaseException as error:
        await job.stopped(error)
        raise
    await job.finish()
    await refresh(params, ds, sink)  # what DS changed with the sends (dates, motivation)
    job.result.ds_requests = ds.request_count
    return job.result


class Send:
    """One send under the lease (see the module's docstring)."""

    def __init__(self, params: SendParams, ds: DSClient, should_cancel: Cancel, ready: Ready, instructeur: str):
        self.params, self.ds, self.should_cancel, self.ready, self.instructeur = params, ds, should_cancel, ready, instructeur
        self.started = ds.clock.now()
        self.result = SendResult(params.sync.number)
        self.sink: FencedSink | None = None
        self.queue = self._approved()
        self.inflight: dict[int, list[Item]] = {}  # dossiers being sent now

    def _approved(self) -> OrderedDict[int, list[Item]]:
        """The items the agent saw as they are now; those that changed wait for the next preview."""
        approved, out = self.params.approved, OrderedDict()
        for number, items in self.ready.outbox.by_dossier().items():
            seen = [i for i in items if approved.get(i.ref) == i.seen]
            self.result.unseen += sum(1 for i in items if approved.get(i.ref) != i.seen and i.outcome in (SEND, KEEP))
            if seen:
                out[number] = seen
        return out

    async def run(self) -> None:
        """The dossiers, `SENDERS` at a time (DS answers each in its own time; its limit of 400
        requests a minute is kept by the client for all of them)."""
        total = sum(1 for items in self.queue.values() for i in items if i.outcome in (SEND, ALREADY, KEEP))
        self.ds.progress.phase("Envoi vers DS…")
        progress = {"done": 0}

        async def sender() -> None:
            while self.queue:
                if self.should_cancel():
                    raise errors.cancelled()
                number, items = self.queue.popitem(last=False)
                self.inflight[number] = items
                await self.record(await self.dossier(number, items))
                del self.inflight[number]
                progress["done"] += sum(1 for i in items if i.outcome in (SEND, ALREADY, KEEP))
                self.ds.progress.count(progress["done"], total, unit="modifications")

        tasks = [asyncio.ensure_future(sender()) for _ in range(min(SENDERS, len(self.queue)))]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def dossier(self, number: int, items: list[Item]) -> list[Outcome]:
        """One dossier: its annotations in one call, its labels, its decision."""
        procedure, dossier_id = self.params.sync.number, dossier_typed_id(number)
        outcomes = [_unsent(i) for i in items if i.outcome not in (SEND, ALREADY)]
        annotations = [i for i in items if i.kind == "annotation" and i.outcome == SEND]
        if annotations:
            payload, refusals = await self.ds.mutate("dossierModifierAnnotations", {
                "dossierId": dossier_id, "instructeurId": self.instructeur,
                "annotations": [i.payload for i in annotations]}, number=procedure)
            if any(READ_ONLY in r for r in refusals):
                raise errors.read_only_token()
            saved = {a.get("id") for a in payload.get("annotations") or []}
            outcomes += [Outcome(i, SENT) if i.payload["id"] in saved else Outcome(i, JOURNAL_REFUSED, _about(i, refusals))
                         for i in annotations]
        for item in (i for i in items if i.kind == "label" and i.outcome == SEND):
            mutation = "dossierAjouterLabel" if item.payload["add"] else "dossierSupprimerLabel"
            _payload, refusals = await self.ds.mutate(mutation, {"dossierId": dossier_id, "labelId": item.payload["labelId"]},
                                                      number=procedure)
            done = not refusals or any(w in r for r in refusals for w in ALREADY_WORDS)
            outcomes.append(Outcome(item, SENT) if done else Outcome(item, JOURNAL_REFUSED, "; ".join(refusals)))
        for item in (i for i in items if i.kind == "decision" and i.outcome in (SEND, ALREADY)):
            outcomes.append(await self.decision(item, dossier_id, outcomes))
        return outcomes

    async def decision(self, item: Item, dossier_id: str, before: list[Outcome]) -> Outcome:
        if item.outcome == ALREADY:
            return Outcome(item, SENT, "déjà appliquée dans DS : rien n'a été envoyé")
        if any(o.result == JOURNAL_REFUSED and o.item.kind == "annotation" and o.item.outcome == SEND for o in before):
            return Outcome(item, JOURNAL_REFUSED, "non envoyée : DS a refusé une annotation de ce dossier")
        payload = {k: v for k, v in item.payload.items() if k != "mutation"}
        _payload, refusals = await self.ds.mutate(item.payload["mutation"], {
            "dossierId": dossier_id, "instructeurId": self.instructeur, **payload}, number=self.params.sync.number)
        target = DECISIONS[item.cell][2]
        done = not refusals or any("déjà" in r and _state_word(target) in r for r in refusals)
        return Outcome(item, SENT) if done else Outcome(item, JOURNAL_REFUSED, "; ".join(refusals))

    async def record(self, outcomes: list[Outcome]) -> None:
        """The journal and the copy brought to what DS now has, in one bundle."""
        now = self.ds.clock.now()
        await self.sink.apply(journal(self.params.sync.number, outcomes, now) + plan_sent(self.ready.doc, outcomes))
        for outcome in outcomes:
            self._count(outcome)
        self.result.dossiers += any(o.result == SENT for o in outcomes)

    def _count(self, outcome: Outcome) -> None:
        result = self.result
        if outcome.result == SENT:
            result.sent += 1
        elif outcome.result == JOURNAL_REFUSED:
            result.refused += 1
            result.refusals.append(f"n° {outcome.item.number} ({outcome.item.what}) : {outcome.message}")
        elif outcome.result == JOURNAL_CONFLICT and outcome.item.outcome == CONFLICT:
            result.conflicts += 1
        elif outcome.result == CANCELLED:
            result.cancelled += 1

    async def finish(self) -> None:
        self.result.ds_requests = self.ds.request_count
        await self.sink.finish([self._history("Terminée", self.result.message).action()])
        await self.sink.release(_Carried(self.sink.lease.checkpoint))

    async def stopped(self, error: BaseException) -> None:
        """Cancelled or failed: the items left are journaled « Annulé », the history line, the lease freed."""
        if self.sink is None:
            return
        left = [Outcome(i, CANCELLED, "envoi interrompu avant ce dossier") for items in self.queue.values() for i in items
                if i.outcome in (SEND, ALREADY)]
        left += [Outcome(i, CANCELLED, "envoi interrompu pendant ce dossier : DS a pu l'appliquer, l'envoi suivant le dira")
                 for items in self.inflight.values() for i in items if i.outcome in (SEND, ALREADY)]
        status, message = status_of(error)
        self.result.ds_requests = self.ds.request_count
        try:
            await self.sink.sink.apply(journal(self.params.sync.number, left, self.ds.clock.now())
                                       + [self._history(status, message).action()])
        except Exception:  # noqa: BLE001 - Grist itself refuses: nothing more to record
            pass
        self.result.cancelled += len(left)
        await self.sink.release(_Carried(self.sink.lease.checkpoint))

    def _history(self, status: str, message: str) -> HistoryLine:
        result = self.result
        notes = result.refusals[:20] + ([f"{result.unseen} modifiées depuis l'aperçu : non envoyées"] if result.unseen else [])
        return HistoryLine(result.number, "Envoi vers DS", status, self.started, self.ds.clock.now(), message, notes,
                           updated=result.sent, ds_requests=result.ds_requests)


async def _ensure_journal(sink: GristSink) -> None:
    """The journal `OTP_Envois`, made by the first send, its page named « Envois vers DS »."""
    state = await load_state(sink)
    actions = meta_table_actions(state, (SEND_JOURNAL,))
    if not actions:
        return
    results = await sink.apply(actions)
    made = [r for a, r in zip(actions, results) if a[0] == "AddTable"]
    if made and made[0].get("table_id") == SEND_JOURNAL:
        tables = records(await sink.fetch_table("_grist_Tables"))
        view = next((t.get("primaryViewId") for t in tables if t.get("tableId") == SEND_JOURNAL), None)
        if view:
            await sink.apply([["UpdateRecord", "_grist_Views", view, {"name": JOURNAL_PAGE}]])


@dataclass(frozen=True)
class _Carried:
    """The copy's checkpoint the send found in the lease: given back as it was."""

    text: str

    def to_json(self) -> str:
        return self.text


def _unsent(item: Item) -> Outcome:
    if item.outcome == KEEP:
        return Outcome(item, JOURNAL_CONFLICT, "valeur de DS gardée (votre choix)")
    if item.outcome == CONFLICT:
        return Outcome(item, JOURNAL_CONFLICT, f"DS a maintenant « {display(item.current, item.ds_kind)} » : en attente de votre choix")
    return Outcome(item, JOURNAL_REFUSED, item.problem)


def _about(item: Item, refusals: list[str]) -> str:
    """DS's refusals that name this annotation (its label or id), or all of them."""
    mine = [r for r in refusals if item.what in r or item.payload.get("id", "") in r]
    return "; ".join(mine or refusals) or "DS n'a pas enregistré cette valeur"


def _state_word(state: str) -> str:
    return {"en_construction": "en construction", "en_instruction": "en instruction", "accepte": "accepté",
            "refuse": "refusé", "sans_suite": "classé sans suite"}.get(state, state)
