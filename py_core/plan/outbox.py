"""What a send would do (pure): the document's sendable cells, three ways, → per dossier what
leaves for DS, what DS would refuse, and the conflicts waiting for the agent's choice.

The copy keeps each sendable cell's base and DS's value since (`plan.pending`); a value to send
is a cell that differs from its base. Nothing leaves that the agent has not seen: every item has
a `ref` (which cell) and a `seen` (its values as previewed); the send takes only the items the
agent confirmed with the same `seen` (`approved`), so a value that changed after the preview
waits for the next one.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .. import constants
from ..ds.models import Descriptor, Staff, Structure
from ..grist.values import same_cell
from .diff import key_cell
from .pending import Base, sendable_cols
from .registry import TableMap
from .schema import BASE, DECISION, DOSSIER_KEY, DOSSIER_REF, LABELS, MOTIVATION, ROW_KEY
from .send import annotation_value, three_way

# « Décision à envoyer » → (DS's mutation, the states it starts from, the state it leads to)
DECISIONS = {
    "Passer en instruction": ("dossierPasserEnInstruction", {"en_construction"}, "en_instruction"),
    "Accepter": ("dossierAccepter", {"en_instruction"}, "accepte"),
    "Refuser": ("dossierRefuser", {"en_instruction"}, "refuse"),
    "Classer sans suite": ("dossierClasserSansSuite", {"en_instruction"}, "sans_suite"),
    "Repasser en instruction": ("dossierRepasserEnInstruction", {"accepte", "refuse", "sans_suite"}, "en_instruction"),
    "Repasser en construction": ("dossierRepasserEnConstruction", {"en_instruction"}, "en_construction"),
}
NEEDS_MOTIVATION = {"Refuser", "Classer sans suite"}
STATE_OF_LABEL = {label: state for state, label in constants.STATE_LABELS.items()}

SEND, CONFLICT, REFUSED, KEEP = "send", "conflict", "refused", "keep"
ALREADY = "already"  # a decision DS already applied: nothing is sent, the input is cleared


@dataclass(frozen=True)
class Item:
    """One value to send (an annotation, a label added or removed, a decision)."""

    ref: str  # which cell: "<number>/<table key>/<row key>/<column key>" (labels: "/+<name>", "/-<name>")
    number: int
    kind: str  # "annotation" | "label" | "decision"
    what: str  # for the agent: the annotation's label, « label », « décision »
    cell: Any  # the agent's value (the cell, or the decision)
    base: Any = None
    current: Any = None  # DS's value as the copy last saw it
    outcome: str = SEND
    problem: str = ""  # French: why OTP will not send it (`REFUSED`)
    payload: dict[str, Any] = field(default_factory=dict)  # annotations: {id, value}; labels: {labelId}; decision: input
    row_id: int = 0  # the row of the cell
    col_id: str = ""  # the column of the cell ("" for labels and decisions)
    col_key: str = ""
    ds_kind: str = ""  # the annotation's type (how its cells read: dates)

    @property
    def seen(self) -> str:
        """The item's values as previewed (the send takes it only if they are still the same)."""
        text = json.dumps([self.cell, self.base, self.current, self.problem], sort_keys=True, default=str)
        return hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


@dataclass
class Outbox:
    items: list[Item]
    notify: bool = False  # a decision would e-mail the usager (unless the agent ticks « Ne pas notifier »)

    def by_dossier(self) -> dict[int, list[Item]]:
        out: dict[int, list[Item]] = {}
        for item in self.items:
            out.setdefault(item.number, []).append(item)
        return dict(sorted(out.items()))

    def count(self, outcome: str) -> int:
        return sum(1 for i in self.items if i.outcome == outcome)


@dataclass(frozen=True)
class Document:
    """The sendable tables as the document holds them: per table key, {col id: cells} (Grist's columns)."""

    maps: dict[str, TableMap]
    tables: dict[str, dict[str, list[Any]]]

    def rows(self, key: str) -> list[dict[str, Any]]:
        columns = self.tables.get(key) or {}
        names = list(columns)
        return [dict(zip(names, values)) for values in zip(*(columns[n] for n in names))] if names else []


def dossier_typed_id(number: int) -> str:
    return base64.b64encode(f"Dossier-{number}".encode()).decode()


def row_champ_id(descriptor_id: str, row_id: str) -> str:
    """The typed id of a block row's champ: `Champ-<stable id>|<row id>` (see DS's README)."""
    stable = base64.b64decode(descriptor_id).decode().partition("-")[2]
    row = base64.b64decode(row_id).decode().partition("-")[2]
    return base64.b64encode(f"Champ-{stable}|{row}".encode()).decode()


def plan_outbox(doc: Document, structure: Structure, staff: Staff, email: str, *, choices: dict[str, str] | None = None,
                notify: bool = True) -> Outbox:
    """Every value the document would send, by dossier (see the module's docstring). `choices`:
    ref → "send" (« Envoyer ma valeur ») or "keep" (« Garder la valeur de DS ») for conflicts."""
    choices = choices or {}
    dossiers = {r["id"]: r for r in doc.rows("dossiers")}
    dossier_map = doc.maps["dossiers"]
    numbers = {row_id: key_cell(r.get(dossier_map.col_ids[DOSSIER_KEY])) for row_id, r in dossiers.items()}
    descriptors = _annotation_descriptors(structure)
    items: list[Item] = []
    for key, table_map in doc.maps.items():
        if key == "dossiers" or not table_map.spec.sendable:
            continue
        for row in doc.rows(key):
            number = numbers.get(row.get(table_map.col_ids.get(DOSSIER_REF)))
            if number is not None:
                items += _annotation_items(number, key, table_map, row, descriptors)
    for row_id, row in dossiers.items():
        if numbers.get(row_id) is not None:
            items += _label_items(numbers[row_id], dossier_map, row, staff)
            items += _decision_items(numbers[row_id], dossier_map, row, notify)
    items = [_chosen(item, choices.get(item.ref)) for item in items]
    groupes = staff.groupes_of(email) if email else None  # no instructeur chosen yet: told when sending
    groupe_col = dossier_map.col_ids.get("groupe_instructeur", "")
    groupe_of = {n: dossiers[r].get(groupe_col) for r, n in numbers.items() if n is not None}
    items = [_rights(i, groupe_of.get(i.number), groupes) for i in items]
    return Outbox(sorted(items, key=lambda i: (i.number, i.kind != "annotation", i.kind == "decision", i.ref)),
                  notify=notify and any(i.kind == "decision" and i.outcome == SEND for i in items))


def _annotation_descriptors(structure: Structure) -> dict[str, Descriptor]:
    out: dict[str, Descriptor] = {}
    for descriptor in structure.annotation_descriptors:
        out[descriptor.id] = descriptor
        out.update({child.id: child for child in descriptor.children})
    return out


def _annotation_items(number: int, key: str, table_map: TableMap, row: dict[str, Any],
                      descriptors: dict[str, Descriptor]) -> list[Item]:
    stored = Base.read(row.get(table_map.col_ids.get(BASE, "")))
    row_key = row.get(table_map.col_ids[ROW_KEY]) if ROW_KEY in table_map.col_ids else ""
    items = []
    for col_key, col_id in sendable_cols(table_map).items():
        if col_key not in stored.base:
            continue  # no base yet: nothing pending (see `plan.pending`)
        change = three_way(stored.base[col_key], row.get(col_id), stored.current(col_key), same_cell)
        if change.outcome in ("unchanged", "already"):
            continue
        descriptor = descriptors.get(col_key.split("/", 1)[0])
        if descriptor is None:
            continue
        value = annotation_value(descriptor.kind, change.cell, options=[o for o in descriptor.options or [] if o],
                                 other_option=bool(descriptor.other_option))
        champ_id = row_champ_id(descriptor.id, row_key) if row_key else descriptor.id
        outcome = REFUSED if value.problem else (CONFLICT if change.outcome == "conflict" else SEND)
        items.append(Item(f"{number}/{key}/{row_key}/{col_key}", number, "annotation", descriptor.label, change.cell,
                          change.base, change.current, outcome, value.problem,
                          {"id": champ_id, "value": value.input} if value.input is not None else {},
                          row["id"], col_id, col_key, descriptor.kind))
    return items


def _label_items(number: int, table_map: TableMap, row: dict[str, Any], staff: Staff) -> list[Item]:
    stored = Base.read(row.get(table_map.col_ids.get(BASE, "")))
    col_id = table_map.col_ids.get(LABELS)
    if LABELS not in stored.base or col_id is None:
        return []
    base, cell, current = (set(_names(v)) for v in (stored.base[LABELS], row.get(col_id), stored.current(LABELS)))
    ids = {label.name: label.id for label in staff.labels}
    items = []
    for name in sorted(cell ^ base):
        add = name in cell
        if (name in current) == add:
            continue  # DS has it so already
        problem = "" if name in ids else f"le label « {name} » n'existe pas dans DS (l'API ne permet pas d'en créer)"
        items.append(Item(f"{number}/dossiers/{'+' if add else '-'}{name}", number, "label", "label", name,
                          outcome=REFUSED if problem else SEND, problem=problem,
                          payload={"labelId": ids.get(name, ""), "add": add}, row_id=row["id"], col_key=LABELS))
    return items


def _names(cell: Any) -> list[str]:
    if isinstance(cell, list) and cell[:1] == ["L"]:
        return [str(v) for v in cell[1:]]
    return [part.strip() for part in str(cell).split(",") if part.strip()] if cell not in (None, "") else []


def _decision_items(number: int, table_map: TableMap, row: dict[str, Any], notify: bool) -> list[Item]:
    col_id = table_map.col_ids.get(DECISION)
    decision = row.get(col_id) if col_id else None
    if decision in (None, ""):
        return []
    motivation = str(row.get(table_map.col_ids.get(MOTIVATION, "")) or "").strip()
    state = STATE_OF_LABEL.get(row.get(table_map.col_ids.get("etat", "")) or "", "")
    ref = f"{number}/dossiers/decision"
    if decision not in DECISIONS:
        return [Item(ref, number, "decision", "décision", decision, outcome=REFUSED, row_id=row["id"], col_id=col_id,
                     problem=f"« {decision} » n'est pas une décision que DS connaît")]
    mutation, starts, target = DECISIONS[decision]
    problem = ""
    if state == target:
        return [Item(ref, number, "decision", "décision", decision, current=constants.STATE_LABELS.get(state, state),
                     outcome=ALREADY, problem="déjà appliquée dans DS", row_id=row["id"], col_id=col_id, col_key=DECISION)]
    if state not in starts:
        problem = f"impossible : le dossier est {constants.STATE_LABELS.get(state, state or 'inconnu').lower()} dans DS"
    elif decision in NEEDS_MOTIVATION and not motivation:
        problem = "DS exige une motivation : remplissez « Motivation à envoyer »"
    payload = {"mutation": mutation, "disableNotification": not notify, **({"motivation": motivation} if motivation else {})}
    return [Item(ref, number, "decision", "décision", decision, current=constants.STATE_LABELS.get(state, state),
                 outcome=REFUSED if problem else SEND, problem=problem, payload=payload, row_id=row["id"],
                 col_id=col_id, col_key=DECISION)]


def _chosen(item: Item, choice: str | None) -> Item:
    if item.outcome != CONFLICT or choice not in (SEND, KEEP):
        return item
    return Item(**{**item.__dict__, "outcome": choice})


def _rights(item: Item, groupe: Any, groupes: set[str] | None) -> Item:
    """Annotations and decisions need an instructeur of the dossier's groupe (labels do not)."""
    if item.kind == "label" or item.outcome not in (SEND, CONFLICT, KEEP):
        return item
    if groupe and groupes is not None and groupe not in groupes:
        return Item(**{**item.__dict__, "outcome": REFUSED,
                       "problem": f"l'instructeur choisi n'est pas dans le groupe « {groupe} » de ce dossier"})
    return item


def display(cell: Any, kind: str = "") -> str:
    """A cell as the agent reads it in the preview and the journal (`kind`: the annotation's type)."""
    if isinstance(cell, (int, float)) and not isinstance(cell, bool) and kind in ("Date", "Datetime"):
        moment = datetime.fromtimestamp(cell, tz=timezone.utc)
        return moment.strftime("%d/%m/%Y") if kind == "Date" else moment.strftime("%d/%m/%Y %H:%M UTC")
    if cell is None or cell == "" or cell == ["L"]:
        return "(vide)"
    if isinstance(cell, bool):
        return "oui" if cell else "non"
    if isinstance(cell, list) and cell[:1] == ["L"]:
        return ", ".join(map(str, cell[1:]))
    if isinstance(cell, list) and cell[:1] == ["E"]:
        return "#erreur"
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    return str(cell)
