"""Each DS champ type → Grist columns and cell values. One table drives it all.

A descriptor kind (`TextChampDescriptor` → `Text`) maps to a list of `Part`s: one Grist column
each, keyed `<descriptor id>` for the main part and `<descriptor id>/<suffix>` for the others. A
part's `read` takes the champ dict as DS sent it (see `queries/champ_fields.graphql` for aliases)
and returns the Grist cell. Unknown kinds fall back to `stringValue` in a Text column.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..grist.values import choice_list_cell, date_cell, datetime_cell, float_cell, int_cell, text_cell
from ..ds.models import Descriptor

Champ = dict[str, Any]
DATETIME = "DateTime"  # completed with the document's time zone by the schema builder

# French formats (Grist's widget options; "DD/MM/YYYY" is not one of Grist's presets, hence custom)
DATE_FORMAT: dict[str, Any] = {"dateFormat": "DD/MM/YYYY", "isCustomDateFormat": True}
DATETIME_FORMAT: dict[str, Any] = {**DATE_FORMAT, "timeFormat": "HH:mm", "isCustomTimeFormat": False}


@dataclass(frozen=True)
class Part:
    suffix: str  # "" for the main column
    label: str  # added to the descriptor's label, e.g. " – code postal"
    type: str  # Grist column type (Choice options come from the descriptor)
    read: Callable[[Champ], Any]
    choices: Callable[[Descriptor], list[str]] | None = None
    widget: dict[str, Any] = field(default_factory=dict)


def _get(champ: Champ, *path: str) -> Any:
    value: Any = champ
    for name in path:
        if not isinstance(value, dict):
            return None
        value = value.get(name)
    return value


def _first(champ: Champ, *names: str) -> Any:
    for name in names:
        if champ.get(name) is not None:
            return champ[name]
    return None


def _string(champ: Champ) -> str | None:
    return text_cell(champ.get("stringValue"))


def _text(champ: Champ) -> str | None:
    return text_cell(_first(champ, "textValue", "dropDownValue", "stringValue"))


def _bool(champ: Champ) -> bool | None:
    value = _first(champ, "yesNoValue", "checkboxValue")
    if value is None:
        raw = (champ.get("stringValue") or "").strip().lower()
        return {"true": True, "oui": True, "false": False, "non": False}.get(raw)
    return bool(value)


def _linked_primaries(descriptor: Descriptor) -> list[str]:
    """DS writes linked drop-down options flat: `--Primary--` then its secondary values."""
    return [o[2:-2] for o in descriptor.options or [] if o.startswith("--") and o.endswith("--") and len(o) > 4]


def _options(descriptor: Descriptor) -> list[str]:
    return [o for o in descriptor.options or [] if o]


def _geojson(champ: Champ) -> str | None:
    areas = champ.get("geoAreas") or []
    if not areas:
        return None
    features = [
        {
            "type": "Feature",
            "geometry": area.get("geometry"),
            "properties": {"source": area.get("source"), "description": area.get("description")},
        }
        for area in areas
    ]
    return json.dumps({"type": "FeatureCollection", "features": features}, ensure_ascii=False)


def _files_text(champ: Champ) -> str | None:
    names = [f.get("filename") for f in champ.get("files") or [] if f.get("filename")]
    return "\n".join(names) or None


def _dossier_number(champ: Champ) -> int | None:
    return int_cell(champ.get("stringValue"))


def _name_code(obj: str, label: str = "") -> list[Part]:
    return [
        Part("", label, "Text", lambda c: text_cell(_get(c, obj, "name")) or _string(c)),
        Part("code", " – code", "Text", lambda c: text_cell(_get(c, obj, "code"))),
    ]


TEXT = [Part("", "", "Text", _text)]

KINDS: dict[str, list[Part]] = {
    "Text": TEXT,
    "Textarea": TEXT,
    "Email": TEXT,
    "Phone": TEXT,
    "Iban": TEXT,
    "Formatted": TEXT,
    "Number": TEXT,
    "PreRempli": TEXT,
    "Referentiel": TEXT,
    "AnnuaireEducation": TEXT,
    "COJO": TEXT,
    "AAH": TEXT,
    "AEEH": TEXT,
    "ARS": TEXT,
    "EtudiantBoursier": TEXT,
    "QuotientFamilial": TEXT,
    "IntegerNumber": [Part("", "", "Int", lambda c: int_cell(_first(c, "integerValue", "stringValue")))],
    "DecimalNumber": [Part("", "", "Numeric", lambda c: float_cell(_first(c, "decimalValue", "stringValue")))],
    "Checkbox": [Part("", "", "Bool", _bool)],
    "YesNo": [Part("", "", "Bool", _bool)],
    "Date": [Part("", "", "Date", lambda c: date_cell(c.get("date")), widget=DATE_FORMAT)],
    "Datetime": [Part("", "", DATETIME, lambda c: datetime_cell(_first(c, "datetime", "date")), widget=DATETIME_FORMAT)],
    "DropDownList": [Part("", "", "Choice", _text, choices=_options)],
    "MultipleDropDownList": [Part("", "", "ChoiceList", lambda c: choice_list_cell(c.get("values")), choices=_options)],
    "LinkedDropDownList": [
        Part("", "", "Choice", lambda c: text_cell(c.get("primaryValue")), choices=_linked_primaries),
        Part("secondaire", " – second choix", "Text", lambda c: text_cell(c.get("secondaryValue"))),
    ],
    "Civilite": [Part("", "", "Choice", lambda c: text_cell(_first(c, "civiliteValue", "stringValue")), choices=lambda d: ["M", "Mme"])],
    "Address": [
        Part("", "", "Text", lambda c: text_cell(_get(c, "address", "label")) or _string(c)),
        Part("code_postal", " – code postal", "Text", lambda c: text_cell(_get(c, "address", "postalCode") or _get(c, "commune", "postalCode"))),
        Part("commune", " – commune", "Text", lambda c: text_cell(_get(c, "address", "cityName") or _get(c, "commune", "name"))),
        Part("code_insee", " – code INSEE", "Text", lambda c: text_cell(_get(c, "address", "cityCode") or _get(c, "commune", "code"))),
        Part("departement", " – département", "Text", lambda c: text_cell(_get(c, "address", "departmentName") or _get(c, "departement", "name"))),
        Part("code_departement", " – code département", "Text", lambda c: text_cell(_get(c, "address", "departmentCode") or _get(c, "departement", "code"))),
    ],
    "Commune": [
        Part("", "", "Text", lambda c: text_cell(_get(c, "commune", "name")) or _string(c)),
        Part("code_insee", " – code INSEE", "Text", lambda c: text_cell(_get(c, "commune", "code"))),
        Part("code_postal", " – code postal", "Text", lambda c: text_cell(_get(c, "commune", "postalCode"))),
        Part("departement", " – département", "Text", lambda c: text_cell(_get(c, "departement", "name"))),
    ],
    "Departement": _name_code("departement"),
    "Region": _name_code("region"),
    "Pays": _name_code("pays"),
    "Epci": _name_code("epci"),
    "Siret": [
        Part("", "", "Text", lambda c: text_cell(_get(c, "etablissement", "siret")) or _string(c)),
        Part("raison_sociale", " – raison sociale", "Text", lambda c: text_cell(_get(c, "etablissement", "entreprise", "raisonSociale"))),
    ],
    "RNA": [
        Part("", "", "Text", lambda c: text_cell(_get(c, "rna", "id")) or _string(c)),
        Part("titre", " – titre", "Text", lambda c: text_cell(_get(c, "rna", "title"))),
    ],
    "RNF": [
        Part("", "", "Text", lambda c: text_cell(_get(c, "rnf", "id")) or _string(c)),
        Part("titre", " – titre", "Text", lambda c: text_cell(_get(c, "rnf", "title"))),
    ],
    "EngagementJuridique": [
        Part("", "", "Text", _string),
        Part("montant_engage", " – montant engagé", "Text", lambda c: text_cell(_get(c, "engagementJuridique", "montantEngage"))),
        Part("montant_paye", " – montant payé", "Text", lambda c: text_cell(_get(c, "engagementJuridique", "montantPaye"))),
    ],
    "DossierLink": [Part("", "", "Int", _dossier_number)],
    "PieceJustificative": [Part("", "", "Text", _files_text)],
    "Carte": [Part("", "", "Text", _geojson)],
    "TitreIdentite": [Part("", "", "Bool", lambda c: bool(c.get("filled")) if c.get("filled") is not None else None)],
    "HeaderSection": [],
    "Explication": [],
    "Repetition": [],  # a child table, built by `schema`
}

FALLBACK = [Part("", "", "Text", _string)]


NUMERIC_KINDS = {"IntegerNumber", "DecimalNumber", "Number"}


def _any_number(champ: Champ) -> float | str | None:
    """A number whatever the revision's type (integer, decimal, free number); a text that is no
    number is kept as it is (Grist shows it in the Numeric column, nothing lost)."""
    value = _first(champ, "decimalValue", "integerValue", "stringValue")
    number = float_cell(value)
    return number if number is not None else text_cell(value)


def mixed_parts(kinds: set[str]) -> list[Part]:
    """A champ whose type differs between revisions: one column that holds every dossier's
    value — Numeric for numbers of any kind, else the text DS gives for any type."""
    return [Part("", "", "Numeric", _any_number)] if kinds <= NUMERIC_KINDS else FALLBACK


def parts_for(kind: str) -> tuple[list[Part], bool]:
    """The parts of a descriptor kind, and whether the kind is known."""
    if kind in KINDS:
        return KINDS[kind], True
    return FALLBACK, False


def column_key(descriptor_id: str, part: Part) -> str:
    return f"{descriptor_id}/{part.suffix}" if part.suffix else descriptor_id
