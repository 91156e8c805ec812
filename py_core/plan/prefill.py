"""Prefilling DS dossiers from Grist rows (« Dites-le-nous une fois »): the tables, the checks
and the request bodies (pure).

`D<n>_Preremplissage` holds one row per dossier to create: one typed column per prefillable
champ of the active form (identity columns for a procedure for individuals), one child table
per repeatable block, and OTP's own columns (link, state in DS, Ref to the copied dossier,
deposit date, problems, and what following needs: the prefill token, the dossier number, the
« being sent » mark). Tables and columns are registered like the copy's (`registry.plan_schema`):
an agent's columns, formulas and rows are never touched; a champ removed from the form keeps its
column, marked out of the form in `OTP_Colonnes`.

Every value is checked by DS's prefill rules for its type before sending (DS drops an invalid
value without a word); each problem is written in French in « Problèmes ». The body carries the
values; the URL only the procedure's number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ..ds.models import Descriptor, Structure
from .champ_types import DATETIME, DATETIME_FORMAT
from .schema import DOSSIER_REF, ColumnSpec, Schema, TableSpec

TABLE_KEY = "preremplissage"
BLOCK_PREFIX = "preremplissage_bloc:"
PARENT = "ligne_preremplissage"  # a block row's Ref to its prefill row
LINK, STATE, DEPOSITED, PROBLEMS = "lien", "etat_ds", "depose_le", "problemes"
TOKEN, NUMBER, SENDING = "jeton", "numero_ds", "envoi_commence"
WITHOUT_INVALID, RESEND = "envoyer_sans_erreurs", "renvoyer"
OWN = (LINK, STATE, DOSSIER_REF, DEPOSITED, PROBLEMS, WITHOUT_INVALID, RESEND, TOKEN, NUMBER, SENDING)
SENT = (LINK, TOKEN, NUMBER)  # a row holding any of them has its dossier
IDENTITY = (("identite_genre", "Civilité", "Choice"), ("identite_prenom", "Prénom", "Text"), ("identite_nom", "Nom", "Text"))
GENRES = ["M.", "Mme"]
YES_NO = ["Oui", "Non"]

TO_CREATE, PREFILLED = "À créer", "Prérempli"
DS_STATES = {"prefilled": PREFILLED, "brouillon": "Brouillon", "en_construction": "En construction",
             "en_instruction": "En instruction", "accepte": "Accepté", "refuse": "Refusé", "sans_suite": "Classé sans suite"}
UNKNOWN = "Introuvable dans DS"  # a token DS no longer knows (an unclaimed dossier goes after 5 days)
STATE_CHOICES = [TO_CREATE, *dict.fromkeys(DS_STATES.values()), UNKNOWN]
STATE_COLOURS = {"À créer": {"fillColor": "#FFF4D6"}, PREFILLED: {"fillColor": "#E3E3FD"}, "Brouillon": {"fillColor": "#E8EDFF"},
                 "Accepté": {"fillColor": "#B8FEC9"}, "Refusé": {"fillColor": "#FFE9E9"}, UNKNOWN: {"fillColor": "#EEEEEE"}}

# descriptor kind → the column parts a value is typed in: (part key, label suffix, Grist type)
TEXT = (("", "", "Text"),)
KINDS: dict[str, tuple[tuple[str, str, str], ...]] = {
    **{k: TEXT for k in ("Text", "Textarea", "Formatted", "Email", "Phone", "Iban", "Address", "Siret", "DropDownList")},
    "DecimalNumber": (("", "", "Numeric"),), "IntegerNumber": (("", "", "Int"),), "DossierLink": (("", "", "Int"),),
    "Civilite": (("", "", "Choice"),), "YesNo": (("", "", "Choice"),), "Checkbox": (("", "", "Bool"),),
    "Date": (("", "", "Date"),), "Datetime": (("", "", DATETIME),), "MultipleDropDownList": (("", "", "ChoiceList"),),
    "Pays": (("", " – code pays (ISO)", "Text"),), "Region": (("", " – code région", "Text"),),
    "Departement": (("", " – code département", "Text"),),
    "Commune": (("/code_postal", " – code postal", "Text"), ("/code_insee", " – code INSEE", "Text")),
    "Epci": (("/code_departement", " – code département", "Text"), ("/code_epci", " – code EPCI (SIREN)", "Text")),
}


def prefillable(descriptor: Descriptor) -> bool:
    return descriptor.kind in KINDS or descriptor.kind == "Repetition"


def ds_key(descriptor_id: str) -> str:
    """DS's key of a champ in a prefill body: `champ_` + its typed id without '=' padding."""
    return "champ_" + descriptor_id.rstrip("=")


def block_key(descriptor_id: str) -> str:
    return BLOCK_PREFIX + descriptor_id


# -- the tables ------------------------------------------------------------------------------
def _champ_columns(descriptor: Descriptor, timezone_: str) -> list[ColumnSpec]:
    out = []
    for part, suffix, type_ in KINDS[descriptor.kind]:
        options: dict[str, Any] = {}
        if descriptor.kind in ("DropDownList", "MultipleDropDownList") and descriptor.options and not (
                descriptor.kind == "DropDownList" and descriptor.other_option):
            type_ = "Choice" if descriptor.kind == "DropDownList" else type_
            options["choices"] = list(descriptor.options)
        elif descriptor.kind == "Civilite":
            options["choices"] = GENRES
        elif descriptor.kind == "YesNo":
            options["choices"] = YES_NO
        elif type_ == "Date":
            options = {"dateFormat": "DD/MM/YYYY", "isCustomDateFormat": True}
        elif type_ == DATETIME:
            type_, options = f"{DATETIME}:{timezone_}", dict(DATETIME_FORMAT)
        out.append(ColumnSpec(descriptor.id + part, descriptor.label + suffix, type_, descriptor.label + suffix,
                              options, descriptor.kind))
    return out


def _otp_columns(timezone_: str) -> list[ColumnSpec]:
    def col(key: str, label: str, type_: str, id_hint: str, **options: Any) -> ColumnSpec:
        return ColumnSpec(key, label, type_, id_hint, options, "otp")

    return [
        col(LINK, "Lien du dossier prérempli", "Text", "Lien_du_dossier_prerempli", widget="HyperLink"),
        col(STATE, "État DS", "Choice", "Etat_DS", choices=STATE_CHOICES, choiceOptions=STATE_COLOURS),
        ColumnSpec(DOSSIER_REF, "Dossier", "Ref:@dossiers", "Dossier", {}, "otp"),
        col(DEPOSITED, "Déposé le", f"{DATETIME}:{timezone_}", "Depose_le", **DATETIME_FORMAT),
        col(PROBLEMS, "Problèmes", "Text", "Problemes", wrap=True),
        col(WITHOUT_INVALID, "Envoyer sans les valeurs en erreur", "Bool", "Envoyer_sans_les_valeurs_en_erreur"),
        col(RESEND, "Renvoyer malgré l'interruption", "Bool", "Renvoyer_malgre_interruption"),
        col(TOKEN, "Jeton de préremplissage (suivi ; secret)", "Text", "Jeton_preremplissage"),
        col(NUMBER, "Numéro du dossier prérempli", "Int", "Numero_dossier_prerempli"),
        col(SENDING, "Envoi commencé le", f"{DATETIME}:{timezone_}", "Envoi_commence_le", **DATETIME_FORMAT),
    ]


def build_prefill_schema(structure: Structure, dossiers: TableSpec, *, timezone: str) -> Schema:
    """The copy's dossiers table (the Ref's target, planned as the copy plans it), the prefill
    table from the active revision, and one child table per repeatable block."""
    number = structure.number
    champs = [d for d in structure.revision.champ_descriptors if prefillable(d)]
    identity = [ColumnSpec(k, label, t, label, {"choices": GENRES} if t == "Choice" else {}, "identite")
                for k, label, t in IDENTITY] if structure.for_individual else []
    columns = [*identity, *(c for d in champs if d.kind != "Repetition" for c in _champ_columns(d, timezone)), *_otp_columns(timezone)]
    # every OTP column is one the job cannot do without: one an agent turns into a formula is made
    # again beside it (`registry.plan_schema` treats a table's `row_key` columns so)
    tables = [dossiers, TableSpec(TABLE_KEY, f"D{number}_Preremplissage", OWN, columns)]
    for block in (d for d in champs if d.kind == "Repetition"):
        subs = [c for d in block.children if d.kind in KINDS for c in _champ_columns(d, timezone)]
        parent = ColumnSpec(PARENT, "Ligne de préremplissage", f"Ref:@{TABLE_KEY}", "Ligne_preremplissage", {}, "otp")
        tables.append(TableSpec(block_key(block.id), f"D{number}_Preremplissage_{block.label}", (PARENT,), [parent, *subs]))
    return Schema(number, tables, [])


# -- checking values -------------------------------------------------------------------------
@dataclass
class Checked:
    """A row's body (what DS will keep) and its problems, in French."""

    body: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.body and not self.problems


EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
PHONE = re.compile(r"^(?:0[1-9]\d{8}|\+\d{8,15})$")
DEPARTEMENT = re.compile(r"^(?:0[1-9]|[1-8]\d|9[0-5]|2A|2B|97[1-6])$")


def _blank(cell: Any) -> bool:
    return cell is None or cell == "" or (isinstance(cell, list) and cell in (["L"], []))


def _text(cell: Any) -> str:
    return str(cell).strip()


def _number(cell: Any) -> float | None:
    return float(cell) if isinstance(cell, (int, float)) and not isinstance(cell, bool) else None


def check_cell(descriptor: Descriptor, part: str, cell: Any) -> tuple[Any, str | None]:
    """(DS's value, None) or (None, the problem in French) of one cell; (None, None) when blank.
    Numbers: 0 counts as blank (Grist gives 0 to every new row)."""
    kind = descriptor.kind
    if _blank(cell) or (kind in ("DecimalNumber", "IntegerNumber", "DossierLink") and cell == 0) or (kind == "Checkbox" and cell is False):
        return None, None
    if isinstance(cell, list) and cell[:1] == ["E"]:
        return None, "la formule de la cellule est en erreur"
    checker = _CHECKS.get(kind, _check_text)
    return checker(descriptor, part, cell)


def _check_text(_d: Descriptor, _part: str, cell: Any) -> tuple[Any, str | None]:
    return _text(cell), None


def _check_integer(_d: Descriptor, _part: str, cell: Any) -> tuple[Any, str | None]:
    value = _number(cell)
    if value is None or not value.is_integer():
        return None, f"« {cell} » n'est pas un nombre entier"
    return str(int(value)), None


def _check_decimal(_d: Descriptor, _part: str, cell: Any) -> tuple[Any, str | None]:
    value = _number(cell)
    return (str(value), None) if value is not None else (None, f"« {cell} » n'est pas un nombre")


def _check_date(_d: Descriptor, _part: str, cell: Any) -> tuple[Any, str | None]:
    if isinstance(cell, (int, float)) and not isinstance(cell, bool):
        return datetime.fromtimestamp(cell, timezone.utc).date().isoformat(), None
    return None, f"« {cell} » n'est pas une date (attendu : une date, par exemple 31/12/2025)"


def _check_datetime(_d: Descriptor, _part: str, cell: Any) -> tuple[Any, str | None]:
    if isinstance(cell, (int, float)) and not isinstance(cell, bool):
        return datetime.fromtimestamp(cell, timezone.utc).isoformat(timespec="seconds"), None
    return None, f"« {cell} » n'est pas une date avec heure"


def _check_choice(allowed: list[str], to_ds: dict[str, str] | None = None, what: str = "une des options"):
    def check(_d: Descriptor, _part: str, cell: Any) -> tuple[Any, str | None]:
        text = _text(cell)
        if text in allowed:
            return (to_ds or {}).get(text, text), None
        return None, f"« {text} » n'est pas {what} ({', '.join(allowed[:6])}{'…' if len(allowed) > 6 else ''})"
    return check


def _check_drop_down(descriptor: Descriptor, part: str, cell: Any) -> tuple[Any, str | None]:
    if descriptor.other_option or not descriptor.options:
        return _text(cell), None
    return _check_choice(list(descriptor.options))(descriptor, part, cell)


def _check_multiple(descriptor: Descriptor, _part: str, cell: Any) -> tuple[Any, str | None]:
    values = [str(v) for v in cell[1:]] if isinstance(cell, list) and cell[:1] == ["L"] else [v.strip() for v in str(cell).split(",")]
    wrong = [v for v in values if v not in (descriptor.options or [])]
    if wrong:
        return None, f"« {', '.join(wrong)} » ne fait pas partie des options"
    return values, None


def _check_pattern(pattern: str, what: str):
    def check(_d: Descriptor, _part: str, cell: Any) -> tuple[Any, str | None]:
        text = _text(cell).upper() if "A-Z" in pattern else _text(cell).replace(" ", "")
        return (text, None) if re.fullmatch(pattern, text) else (None, f"« {_text(cell)} » n'est pas {what}")
    return check


def _check_email(_d: Descriptor, _part: str, cell: Any) -> tuple[Any, str | None]:
    text = _text(cell)
    return (text, None) if EMAIL.match(text) else (None, f"« {text} » n'est pas une adresse électronique")


def _check_phone(_d: Descriptor, _part: str, cell: Any) -> tuple[Any, str | None]:
    text = re.sub(r"[\s.\-]", "", _text(cell))
    return (text, None) if PHONE.match(text) else (None, f"« {_text(cell)} » n'est pas un numéro de téléphone")


def _check_iban(_d: Descriptor, _part: str, cell: Any) -> tuple[Any, str | None]:
    text = re.sub(r"\s", "", _text(cell)).upper()
    digits = "".join(str(int(c, 36)) for c in text[4:] + text[:4]) if re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{10,30}", text) else ""
    return (text, None) if digits and int(digits) % 97 == 1 else (None, f"« {_text(cell)} » n'est pas un IBAN valide")


def _check_siret(_d: Descriptor, _part: str, cell: Any) -> tuple[Any, str | None]:
    text = re.sub(r"\s", "", _text(cell))
    ok = re.fullmatch(r"\d{14}", text) and sum(sum(divmod(int(c) * (2 - i % 2), 10)) for i, c in enumerate(text)) % 10 == 0
    return (text, None) if ok else (None, f"« {_text(cell)} » n'est pas un numéro SIRET (14 chiffres valides)")


def _check_part(patterns: dict[str, tuple[str, str]]):
    def check(descriptor: Descriptor, part: str, cell: Any) -> tuple[Any, str | None]:
        pattern, what = patterns[part]
        return _check_pattern(pattern, what)(descriptor, part, cell)
    return check


_CHECKS = {
    "IntegerNumber": _check_integer, "DossierLink": _check_integer, "DecimalNumber": _check_decimal,
    "Date": _check_date, "Datetime": _check_datetime, "Civilite": _check_choice(GENRES, what="une civilité"),
    "YesNo": _check_choice(YES_NO, {"Oui": "true", "Non": "false"}, "Oui ou Non"),
    "Checkbox": lambda _d, _p, cell: ("true", None) if cell is True else (None, f"« {cell} » n'est pas une case cochée"),
    "DropDownList": _check_drop_down, "MultipleDropDownList": _check_multiple,
    "Email": _check_email, "Phone": _check_phone, "Iban": _check_iban, "Siret": _check_siret,
    "Pays": _check_pattern(r"[A-Z]{2}", "un code pays ISO à deux lettres (FR, BE…)"),
    "Region": _check_pattern(r"\d{2}", "un code région à deux chiffres (28 pour la Normandie…)"),
    "Departement": _check_pattern(DEPARTEMENT.pattern[1:-1], "un code département (14, 2A, 971…)"),
    "Commune": _check_part({"/code_postal": (r"\d{5}", "un code postal (5 chiffres)"),
                            "/code_insee": (r"(?:\d{5}|2[AB]\d{3})", "un code INSEE de commune (5 caractères)")}),
    "Epci": _check_part({"/code_departement": (DEPARTEMENT.pattern[1:-1], "un code département (14, 2A, 971…)"),
                         "/code_epci": (r"\d{9}", "un code EPCI (SIREN à 9 chiffres)")}),
}


# -- rows ------------------------------------------------------------------------------------
def _parts(descriptor: Descriptor, col_ids: dict[str, str], row: dict[str, Any]) -> tuple[Any, list[str]]:
    """One champ's value from its column(s) of `row`, and its problems."""
    values, problems = [], []
    for part, suffix, _ in KINDS[descriptor.kind]:
        col_id = col_ids.get(descriptor.id + part)
        value, problem = check_cell(descriptor, part, row.get(col_id)) if col_id else (None, None)
        values.append(value)
        problems += [f"{descriptor.label}{suffix} : {problem}"] if problem else []
    if len(values) == 1 or problems:
        return values[0], problems
    if any(v is None for v in values) and any(v is not None for v in values):
        labels = " et ".join(s.removeprefix(" – ") for _, s, _ in KINDS[descriptor.kind])
        return None, [f"{descriptor.label} : il faut à la fois le {labels}"]
    return (values if values[0] is not None else None), []


def _champ_values(descriptors: list[Descriptor], col_ids: dict[str, str], row: dict[str, Any], where: str = "") -> Checked:
    checked = Checked()
    for descriptor in descriptors:
        if descriptor.kind not in KINDS:
            continue
        value, problems = _parts(descriptor, col_ids, row)
        checked.problems += [where + p for p in problems]
        if value is not None:
            checked.body[ds_key(descriptor.id)] = value
    return checked


def check_row(structure: Structure, col_ids: dict[str, dict[str, str]], row: dict[str, Any],
              block_rows: dict[str, list[dict[str, Any]]]) -> Checked:
    """A prefill row as DS's body (valid values only) and its problems. `col_ids`: table key →
    column key → col id; `block_rows`: block descriptor id → this row's rows of that block."""
    ids = col_ids[TABLE_KEY]
    descriptors = [d for d in structure.revision.champ_descriptors if prefillable(d)]
    checked = _champ_values(descriptors, ids, row)
    if structure.for_individual:
        for key, label, _ in IDENTITY:
            cell = row.get(ids.get(key, ""))
            if _blank(cell):
                continue
            if key == "identite_genre" and _text(cell) not in GENRES:
                checked.problems.append(f"{label} : « {_text(cell)} » n'est pas une civilité (M. ou Mme)")
            else:
                checked.body[key] = _text(cell)
    for block in (d for d in descriptors if d.kind == "Repetition"):
        lines = []
        for index, line in enumerate(block_rows.get(block.id, []), start=1):
            part = _champ_values(block.children, col_ids.get(block_key(block.id), {}), line, f"{block.label}, ligne {index} – ")
            checked.problems += part.problems
            lines += [part.body] if part.body else []
        if lines:
            checked.body[ds_key(block.id)] = lines
    return checked


def row_status(row: dict[str, Any], ids: dict[str, str], checked: Checked) -> str:
    """`done` (it has its dossier), `interrupted` (marked as being sent, no answer recorded: not
    sent again without the agent's confirmation), `empty`, `problems` (not sent unless the agent
    chose to send it without those values), or `ready`."""
    if any(row.get(ids[k]) for k in SENT):
        return "done"
    if row.get(ids[SENDING]) and not row.get(ids[RESEND]):
        return "interrupted"
    if checked.empty:
        return "empty"
    if checked.problems and not row.get(ids[WITHOUT_INVALID]):
        return "problems"
    return "ready" if checked.body else "problems"


def problems_text(checked: Checked, sent_without: bool = False) -> str:
    if not checked.problems:
        return ""
    head = "Envoyé sans ces valeurs : " if sent_without else "À corriger avant l'envoi (ou cochez « Envoyer sans les valeurs en erreur ») : "
    return head + " ; ".join(checked.problems)


# -- what each step writes -------------------------------------------------------------------
def marked(ids: dict[str, str], now: float) -> dict[str, Any]:
    """The row as being sent: written (and committed) before its request leaves."""
    return {ids[SENDING]: now, ids[RESEND]: False}


def created(ids: dict[str, str], answer: dict[str, Any], problems: str) -> dict[str, Any]:
    """Link, token, number and state in one bundle, the mark cleared."""
    return {ids[LINK]: str(answer.get("dossier_url") or ""), ids[TOKEN]: str(answer.get("dossier_prefill_token") or ""),
            ids[NUMBER]: int(answer.get("dossier_number") or 0), ids[STATE]: PREFILLED, ids[SENDING]: None,
            ids[PROBLEMS]: problems}


def followed(ids: dict[str, str], row: dict[str, Any], item: dict[str, Any] | None, dossier_row: int | None,
             submitted: float | None) -> dict[str, Any]:
    """What following changes on a row (only what differs): its state, deposit date, dossier."""
    state = DS_STATES.get(str(item.get("state")), str(item.get("state"))) if item else UNKNOWN
    wanted = {ids[STATE]: state, ids[DEPOSITED]: submitted}
    if dossier_row:
        wanted[ids[DOSSIER_REF]] = dossier_row
    if item is None:
        wanted.pop(ids[DEPOSITED])
    return {k: v for k, v in wanted.items() if row.get(k) != v}


HIDDEN = (TOKEN, NUMBER, SENDING)  # what following needs, not the agents: off the page (still in the table)


def hide_fields(sections: list[dict[str, Any]], fields: list[dict[str, Any]], table_ref: int, col_refs: set[int]) -> list[list[Any]]:
    """Remove the technical columns' fields from the page sections of the new prefill table (raw
    data keeps them all; an agent can show them again: done once, when the table is made)."""
    on_pages = {s["id"] for s in sections if s.get("tableRef") == table_ref and s.get("parentId")}
    gone = sorted(f["id"] for f in fields if f.get("parentId") in on_pages and f.get("colRef") in col_refs)
    return [["BulkRemoveRecord", "_grist_Views_section_field", gone]] if gone else []
