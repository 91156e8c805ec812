"""What the document gets once DS answered a dossier's sends (pure): the journal's rows, and the
bases, cells and state that make the copy equal DS for what was sent — in one bundle per
dossier, so an interruption never leaves a value sent but still pending (it would be sent
again: `plan.outbox` would see it differ from its base).

A decision applied clears « Décision à envoyer » and « Motivation à envoyer » and writes the
new state; the other columns DS changed with it (dates, motivation) come with the next copy,
which fetches the dossier again (its modification date moved): OTP never writes a date it
did not read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import constants
from .outbox import DECISIONS, KEEP, Document, Item, display
from .pending import Base
from .registry import Action
from .schema import BASE, DECISION, LABELS, MOTIVATION

SENT, REFUSED, CONFLICT, CANCELLED = "Envoyé", "Refusé", "Conflit", "Annulé"


@dataclass(frozen=True)
class Outcome:
    item: Item
    result: str  # SENT, REFUSED, CONFLICT, CANCELLED
    message: str = ""  # DS's refusal, or OTP's reason


def journal(number: int, outcomes: list[Outcome], now: float) -> list[Action]:
    """`OTP_Envois`: one row per value sent, refused, in conflict or cancelled."""
    if not outcomes:
        return []
    rows = [{"Demarche": number, "Dossier": o.item.number, "Quoi": _what(o.item), "Valeur_envoyee": _sent_text(o.item),
             "Valeur_DS_avant": display(o.item.current, o.item.ds_kind) if o.item.kind != "label" else "",
             "Resultat": o.result, "Message_DS": o.message, "Date": now} for o in outcomes]
    return [["BulkAddRecord", "OTP_Envois", [None] * len(rows), {k: [r[k] for r in rows] for k in rows[0]}]]


def _what(item: Item) -> str:
    if item.kind == "label":
        return "label ajouté" if item.payload.get("add") else "label retiré"
    return "décision" if item.kind == "decision" else item.what


def _sent_text(item: Item) -> str:
    return str(item.cell) if item.kind in ("label", "decision") else display(item.cell, item.ds_kind)


def plan_sent(doc: Document, outcomes: list[Outcome]) -> list[Action]:
    """The rows' updates after a dossier's sends (see the module's docstring)."""
    by_row: dict[tuple[str, int], list[Outcome]] = {}
    for outcome in outcomes:
        kept = outcome.item.outcome == KEEP
        if outcome.result == SENT or (kept and outcome.result == CONFLICT):
            by_row.setdefault((_table(outcome.item), outcome.item.row_id), []).append(outcome)
    actions: list[Action] = []
    rows = {key: {r["id"]: r for r in doc.rows(key)} for key in {k for k, _ in by_row}}
    for (key, row_id), done in sorted(by_row.items()):
        table_map, row = doc.maps[key], rows[key].get(row_id)
        if row is None:
            continue
        stored = Base.read(row.get(table_map.col_ids.get(BASE, "")))
        base, ds, cells = dict(stored.base), dict(stored.ds), {}
        for outcome in done:
            _apply(outcome.item, base, ds, cells, table_map.col_ids)
        if BASE in table_map.col_ids:
            cells[table_map.col_ids[BASE]] = Base(base, ds).cell()
        actions.append(["UpdateRecord", table_map.table_id, row_id, cells])
    return actions


def _table(item: Item) -> str:
    return item.ref.split("/")[1]


def _apply(item: Item, base: dict[str, Any], ds: dict[str, Any], cells: dict[str, Any], col_ids: dict[str, str]) -> None:
    if item.kind == "annotation":
        value = item.current if item.outcome == KEEP else item.cell
        base[item.col_key] = value
        ds.pop(item.col_key, None)
        if item.outcome == KEEP and item.col_key in col_ids:  # the agent chose DS's value (not for a formula)
            cells[col_ids[item.col_key]] = value
    elif item.kind == "label":
        for held in (base, ds):
            if LABELS in held:
                names = set(_names(held[LABELS])) | {item.cell} if item.payload.get("add") else set(_names(held[LABELS])) - {item.cell}
                held[LABELS] = ["L", *sorted(names)] if names else None
    else:
        target = DECISIONS[item.cell][2]
        for key, cell in ((DECISION, None), (MOTIVATION, ""), ("etat", constants.STATE_LABELS.get(target, target))):
            if key in col_ids:
                cells[col_ids[key]] = cell


def _names(cell: Any) -> list[str]:
    return [str(v) for v in cell[1:]] if isinstance(cell, list) and cell[:1] == ["L"] else []
