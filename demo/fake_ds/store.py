"""In-memory data of the fake DS server.

Everything is held as plain dicts in the shape of a GraphQL response: a dossier
dict has the keys of the ``Dossier`` type (``number``, ``state``, ``champs``...)
and each champ dict carries its precise concrete type in ``__typename``
(``YesNoChamp``, ``DatetimeChamp``...). Keys starting with ``_`` are private to
the fake (never reachable through the schema).

Mutations go through :class:`FakeDSStore` methods, which hold a lock and stamp
the dossier with a fake "now" that advances at least one second per mutation,
so ``updatedSince`` filtering is deterministic in tests.
"""

from __future__ import annotations

import functools

import base64
import copy
import hashlib
import threading
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any, Iterable

# ---------------------------------------------------------------------------
# Time helpers: DS sends ISO 8601 with the Europe/Paris offset (+01:00/+02:00).

_MONTHS_FR = [
    "janvier", "février", "mars", "avril", "mai", "juin",
    "juillet", "août", "septembre", "octobre", "novembre", "décembre",
]


def _last_sunday(year: int, month: int) -> date:
    day = date(year, month, 31)
    return day - timedelta(days=(day.weekday() + 1) % 7)


def paris_offset(moment: datetime) -> timedelta:
    """UTC offset of Europe/Paris at an aware instant (EU summer-time rule)."""
    utc = moment.astimezone(timezone.utc).replace(tzinfo=None)
    start = datetime.combine(_last_sunday(utc.year, 3), datetime.min.time()) + timedelta(hours=1)
    end = datetime.combine(_last_sunday(utc.year, 10), datetime.min.time()) + timedelta(hours=1)
    return timedelta(hours=2) if start <= utc < end else timedelta(hours=1)


def to_paris(moment: datetime) -> datetime:
    return moment.astimezone(timezone(paris_offset(moment)))


def iso(moment: datetime | None) -> str | None:
    """Format an aware datetime as DS does: seconds precision, Paris offset."""
    if moment is None:
        return None
    return to_paris(moment).isoformat(timespec="seconds")


@functools.lru_cache(maxsize=1 << 16)  # every page sorts every dossier by a date: parse each once
def instant(text: str) -> float:
    """`parse_iso` as epoch seconds."""
    return parse_iso(text).timestamp()


def parse_iso(text: str) -> datetime:
    """Parse an ISO 8601 date or datetime; naive values are Paris local time."""
    value = datetime.fromisoformat(text.strip())
    if value.tzinfo is None:
        # Interpret naive values in Paris: try winter time, then fix the offset.
        guess = value.replace(tzinfo=timezone(timedelta(hours=1)))
        value = value.replace(tzinfo=timezone(paris_offset(guess)))
    return value


def paris_midnight(day: str) -> str:
    """ISO datetime of midnight (Paris) of an ISO date, like DateChamp.value."""
    return iso(parse_iso(day))


def french_date(day: str) -> str:
    parsed = date.fromisoformat(day)
    return f"{parsed.day:02d} {_MONTHS_FR[parsed.month - 1]} {parsed.year}"


def french_datetime(moment: str) -> str:
    parsed = to_paris(parse_iso(moment))
    return f"{french_date(parsed.date().isoformat())} {parsed:%H:%M}"


# ---------------------------------------------------------------------------
# Ids: graphql-ruby's UniqueWithinType (strict base64 of "Type-value").


def encode_id(type_name: str, value: Any) -> str:
    return base64.b64encode(f"{type_name}-{value}".encode()).decode()


def decode_id(global_id: str) -> tuple[str, str]:
    type_name, _, value = base64.b64decode(global_id).decode().partition("-")
    return type_name, value


def champ_descriptor_id(stable_id: int) -> str:
    return encode_id("Champ", stable_id)


def stable_id_of(descriptor_id: str) -> int:
    return int(decode_id(descriptor_id)[1].split("|")[0])


def row_champ_id(stable_id: int, row_id: str) -> str:
    return encode_id("Champ", f"{stable_id}|{row_id}")


# ---------------------------------------------------------------------------
# Descriptor type -> concrete champ type, and the TypeDeChamp enum value.

DESCRIPTOR_TYPES: dict[str, tuple[str, str]] = {
    # descriptor __typename: (TypeDeChamp value, champ __typename)
    "AAHChampDescriptor": ("aah", "TextChamp"),
    "AEEHChampDescriptor": ("aeeh", "TextChamp"),
    "ARSChampDescriptor": ("ars", "TextChamp"),
    "AddressChampDescriptor": ("address", "AddressChamp"),
    "AnnuaireEducationChampDescriptor": ("annuaire_education", "TextChamp"),
    "COJOChampDescriptor": ("cojo", "TextChamp"),
    "CarteChampDescriptor": ("carte", "CarteChamp"),
    "CheckboxChampDescriptor": ("checkbox", "CheckboxChamp"),
    "CiviliteChampDescriptor": ("civilite", "CiviliteChamp"),
    "CommuneChampDescriptor": ("communes", "CommuneChamp"),
    "DateChampDescriptor": ("date", "DateChamp"),
    "DatetimeChampDescriptor": ("datetime", "DatetimeChamp"),
    "DecimalNumberChampDescriptor": ("decimal_number", "DecimalNumberChamp"),
    "DepartementChampDescriptor": ("departements", "DepartementChamp"),
    "DossierLinkChampDescriptor": ("dossier_link", "DossierLinkChamp"),
    "DropDownListChampDescriptor": ("drop_down_list", "DropDownListChamp"),
    "EmailChampDescriptor": ("email", "TextChamp"),
    "EngagementJuridiqueChampDescriptor": ("engagement_juridique", "EngagementJuridiqueChamp"),
    "EpciChampDescriptor": ("epci", "EpciChamp"),
    "EtudiantBoursierChampDescriptor": ("etudiant_boursier", "TextChamp"),
    "ExplicationChampDescriptor": ("explication", "ExplicationChamp"),
    "FormattedChampDescriptor": ("formatted", "TextChamp"),
    "HeaderSectionChampDescriptor": ("header_section", "HeaderSectionChamp"),
    "IbanChampDescriptor": ("iban", "TextChamp"),
    "IntegerNumberChampDescriptor": ("integer_number", "IntegerNumberChamp"),
    "LinkedDropDownListChampDescriptor": ("linked_drop_down_list", "LinkedDropDownListChamp"),
    "MultipleDropDownListChampDescriptor": ("multiple_drop_down_list", "MultipleDropDownListChamp"),
    "NumberChampDescriptor": ("number", "IntegerNumberChamp"),
    "PaysChampDescriptor": ("pays", "PaysChamp"),
    "PhoneChampDescriptor": ("phone", "TextChamp"),
    "PieceJustificativeChampDescriptor": ("piece_justificative", "PieceJustificativeChamp"),
    "PreRempliChampDescriptor": ("pre_rempli", "TextChamp"),
    "QuotientFamilialChampDescriptor": ("quotient_familial", "TextChamp"),
    "RNAChampDescriptor": ("rna", "RNAChamp"),
    "RNFChampDescriptor": ("rnf", "RNFChamp"),
    "ReferentielChampDescriptor": ("referentiel", "TextChamp"),
    "RegionChampDescriptor": ("regions", "RegionChamp"),
    "RepetitionChampDescriptor": ("repetition", "RepetitionChamp"),
    "SiretChampDescriptor": ("siret", "SiretChamp"),
    "TextChampDescriptor": ("text", "TextChamp"),
    "TextareaChampDescriptor": ("textarea", "TextChamp"),
    "TitreIdentiteChampDescriptor": ("titre_identite", "TitreIdentiteChamp"),
    "YesNoChampDescriptor": ("yes_no", "YesNoChamp"),
}


def make_descriptor(typename: str, stable_id: int, label: str, *, required: bool = False,
                    description: str | None = None, condition: dict | None = None,
                    condition_expression: str | None = None, **specific: Any) -> dict:
    """A ChampDescriptor dict; ``specific`` holds type-specific fields (options...)."""
    type_de_champ, _ = DESCRIPTOR_TYPES[typename]
    descriptor = {
        "__typename": typename,
        "id": champ_descriptor_id(stable_id),
        "label": label,
        "description": description,
        "required": required,
        "type": type_de_champ,
        "condition": condition,
        "conditionExpression": condition_expression,
        "champDescriptors": None,
    }
    descriptor.update(specific)
    return descriptor


def _string_value(champ_type: str, value: Any) -> str | None:
    if value is None or value == "" or value == []:
        return None if champ_type == "PieceJustificativeChamp" else ""
    if champ_type in ("CheckboxChamp", "YesNoChamp"):
        return "true" if value else "false"
    if champ_type == "DateChamp":
        return french_date(value)
    if champ_type == "DatetimeChamp":
        return french_datetime(value)
    if champ_type == "MultipleDropDownListChamp":
        return ", ".join(value)
    if champ_type == "LinkedDropDownListChamp":
        return " / ".join(v for v in value if v)
    if champ_type == "AddressChamp":
        return value["label"]
    if champ_type == "CommuneChamp":
        commune = value["commune"]
        postal = commune.get("postalCode")
        return f"{commune['name']} ({postal})" if postal else commune["name"]
    if champ_type == "DepartementChamp":
        return f"{value['code']} – {value['name']}"
    if champ_type in ("RegionChamp", "PaysChamp"):
        return value["name"]
    if champ_type == "EpciChamp":
        return value["epci"]["name"]
    if champ_type == "SiretChamp":
        return value["siret"]
    if champ_type == "RNAChamp":
        return value["rna"]["id"]
    if champ_type == "RNFChamp":
        return value["rnf"]["id"]
    if champ_type in ("PieceJustificativeChamp", "TitreIdentiteChamp", "CarteChamp",
                      "RepetitionChamp", "EngagementJuridiqueChamp"):
        return None if champ_type == "PieceJustificativeChamp" else ""
    return str(value)


def build_champ(descriptor: dict, value: Any, updated_at: str, row_id: str | None = None,
                row_ids: Iterable[str] | None = None) -> dict:
    """Build a champ dict for ``descriptor`` from a plain Python value.

    Value per champ type: str for text-like and drop-downs, bool for
    checkbox/yes-no, ISO date str for DateChamp, ISO datetime str for
    DatetimeChamp, int / float for numbers, list[str] for multiple drop-downs,
    (primary, secondary) for linked drop-downs, list of File dicts for pieces
    justificatives, list of GeoArea dicts for cartes, a dossier number for
    dossier links, a list of rows (each a list of values, in sub-descriptor
    order, or a dict {stable id or descriptor id: value}) for repetitions, and
    for the other types a dict of their typed fields (e.g. AddressChamp:
    {"address": ..., "commune": ..., "departement": ..., "label": ...} — see
    samples.py for examples).
    """
    _, champ_type = DESCRIPTOR_TYPES[descriptor["__typename"]]
    stable_id = stable_id_of(descriptor["id"])
    champ: dict[str, Any] = {
        "__typename": champ_type,
        "id": row_champ_id(stable_id, row_id) if row_id else descriptor["id"],
        "champDescriptorId": descriptor["id"],
        "label": descriptor["label"],
        "stringValue": None,
        "updatedAt": updated_at,
        "prefilled": False,
        "prefilledValueModified": False,
        "columns": [],
    }
    string_source = value
    if champ_type == "TextChamp":
        champ["value"] = value if value != "" else None
    elif champ_type == "CheckboxChamp":
        champ["value"] = bool(value)
        string_source = bool(value)
    elif champ_type == "YesNoChamp":
        champ["value"] = value
    elif champ_type == "DateChamp":
        champ["date"] = value
    elif champ_type == "DatetimeChamp":
        champ["datetime"] = iso(parse_iso(value)) if value else None
        string_source = champ["datetime"]
    elif champ_type == "IntegerNumberChamp":
        champ["value"] = None if value in (None, "") else str(int(value))
        string_source = champ["value"]
    elif champ_type == "DecimalNumberChamp":
        champ["value"] = None if value in (None, "") else float(value)
    elif champ_type in ("DropDownListChamp", "CiviliteChamp"):
        champ["value"] = value or None
    elif champ_type == "MultipleDropDownListChamp":
        champ["values"] = list(value or [])
    elif champ_type == "LinkedDropDownListChamp":
        primary, secondary = value or (None, None)
        champ["primaryValue"], champ["secondaryValue"] = primary, secondary
        string_source = [primary, secondary] if primary or secondary else None
    elif champ_type == "PieceJustificativeChamp":
        champ["files"] = list(value or [])
        champ["nature"] = "NON_SPECIFIE"
    elif champ_type == "CarteChamp":
        champ["geoAreas"] = list(value or [])
    elif champ_type == "DossierLinkChamp":
        champ["_dossierNumber"] = int(value) if value else None
    elif champ_type == "HeaderSectionChamp":
        champ["level"] = descriptor.get("level", 1)
    elif champ_type == "RepetitionChamp":
        champ["rows"] = _build_rows(descriptor, value or [], updated_at, row_ids)
    elif champ_type in ("AddressChamp", "CommuneChamp", "DepartementChamp", "RegionChamp",
                        "PaysChamp", "EpciChamp", "SiretChamp", "RNAChamp", "RNFChamp",
                        "EngagementJuridiqueChamp", "TitreIdentiteChamp"):
        champ.update(_typed_fields(champ_type, value))
    champ["stringValue"] = _string_value(champ_type, string_source)
    if champ_type == "TitreIdentiteChamp":
        champ["stringValue"] = ""
    return champ


def _typed_fields(champ_type: str, value: Any) -> dict:
    if champ_type == "AddressChamp":
        value = value or {}
        return {"address": value.get("address"), "commune": value.get("commune"),
                "departement": value.get("departement")}
    if champ_type == "CommuneChamp":
        value = value or {}
        return {"commune": value.get("commune"), "departement": value.get("departement")}
    if champ_type == "DepartementChamp":
        return {"departement": value}
    if champ_type == "RegionChamp":
        return {"region": value}
    if champ_type == "PaysChamp":
        return {"pays": value}
    if champ_type == "EpciChamp":
        value = value or {}
        return {"epci": value.get("epci"), "departement": value.get("departement")}
    if champ_type == "SiretChamp":
        return {"etablissement": value}
    if champ_type in ("RNAChamp", "RNFChamp"):
        value = value or {}
        key = "rna" if champ_type == "RNAChamp" else "rnf"
        return {key: value.get(key), "commune": value.get("commune"),
                "departement": value.get("departement")}
    if champ_type == "EngagementJuridiqueChamp":
        return {"engagementJuridique": value}
    if champ_type == "TitreIdentiteChamp":
        return {"filled": bool(value), "grantType": "piece_justificative"}
    raise ValueError(champ_type)


def _build_rows(descriptor: dict, rows: list, updated_at: str,
                row_ids: Iterable[str] | None) -> list[dict]:
    subs = descriptor["champDescriptors"] or []
    ids = list(row_ids or [])
    built = []
    for index, row in enumerate(rows):
        row_id = ids[index] if index < len(ids) else fake_ulid(stable_hash(descriptor["id"], updated_at, index))
        if isinstance(row, dict):
            values = {}
            for key, val in row.items():
                values[key if isinstance(key, int) else stable_id_of(key)] = val
            champs = [build_champ(sub, values[stable_id_of(sub["id"])], updated_at, row_id)
                      for sub in subs if stable_id_of(sub["id"]) in values]
        else:
            champs = [build_champ(sub, val, updated_at, row_id) for sub, val in zip(subs, row)]
        built.append({"id": encode_id("Row", row_id), "champs": champs, "_rowId": row_id})
    return built


def stable_hash(*parts: Any) -> int:
    """A hash that does not change between runs (unlike ``hash`` on str)."""
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:16], "big")


_ULID_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def fake_ulid(seed: int) -> str:
    """A deterministic 26-character ULID-like row id, like DS's ``row_id``."""
    seed &= (1 << 128) - 1
    chars = []
    for _ in range(26):
        seed, digit = divmod(seed, 32)
        chars.append(_ULID_ALPHABET[digit])
    return "01" + "".join(chars)[:24]


# ---------------------------------------------------------------------------
# Procedure and store.


@dataclass
class Procedure:
    """A DS procedure (``Demarche``) and all its dossiers."""

    number: int
    title: str
    revisions: list[dict]
    dossiers: dict[int, dict] = field(default_factory=dict)
    deleted_dossiers: list[dict] = field(default_factory=list)
    pending_deleted_dossiers: list[dict] = field(default_factory=list)
    binned: dict[int, dict] = field(default_factory=dict)  # dossiers in the bin (restorable)
    labels: list[dict] = field(default_factory=list)
    groupe_instructeurs: list[dict] = field(default_factory=list)
    administrateurs: list[dict] = field(default_factory=list)
    description: str = ""
    state: str = "publiee"
    date_creation: str = "2025-01-06T09:30:00+01:00"
    date_publication: str | None = "2025-01-10T10:00:00+01:00"
    date_derniere_modification: str = "2025-09-01T10:00:00+02:00"
    service: dict | None = None
    for_individual: bool = False

    @property
    def id(self) -> str:
        return encode_id("Procedure", self.number)

    @property
    def active_revision(self) -> dict:
        return self.revisions[-1]

    def revision(self, revision_id: str) -> dict | None:
        return next((r for r in self.revisions if r["id"] == revision_id), None)

    def find_descriptor(self, descriptor_id: str, revision: dict | None = None):
        """Return (descriptor, is_annotation) in a revision (active by default)."""
        revision = revision or self.active_revision
        for key, private in (("champDescriptors", False), ("annotationDescriptors", True)):
            for descriptor in revision[key]:
                if descriptor["id"] == descriptor_id:
                    return descriptor, private
        raise KeyError(f"no champ descriptor {descriptor_id} in revision {revision['id']}")

    def label(self, name: str) -> dict:
        for label in self.labels:
            if label["name"] == name:
                return label
        raise KeyError(f"no label {name!r} in procedure {self.number}")


def make_revision(number: int, created: str, champ_descriptors: list[dict],
                  annotation_descriptors: list[dict], published: str | None = None) -> dict:
    return {
        "id": encode_id("ProcedureRevision", number),
        "dateCreation": created,
        "datePublication": published or created,
        "champDescriptors": champ_descriptors,
        "annotationDescriptors": annotation_descriptors,
    }


class FakeDSStore:
    """Procedures served by the fake, with a controllable clock and a lock."""

    def __init__(self, procedures: Iterable[Procedure] = (), now: str | datetime = "2026-03-02T09:00:00+01:00"):
        self.lock = threading.RLock()
        self.procedures: dict[int, Procedure] = {}
        self._set_clock(parse_iso(now) if isinstance(now, str) else now)  # it runs from there, like a server's
        self.notifications: list[dict] = []  # e-mails DS sent the usagers (instruction mutations)
        for procedure in procedures:
            self.add_procedure(procedure)

    # -- clock ---------------------------------------------------------------
    def now(self) -> str:
        """The current fake time (ISO string); reading it does not advance it."""
        with self.lock:
            return iso(self._now)

    def advance(self, seconds: float = 1) -> str:
        """Move the clock forward (at least one second) and return the new now."""
        with self.lock:
            self._set_clock(self._now + timedelta(seconds=max(1, seconds)))
            return iso(self._now)

    def set_now(self, moment: str | datetime) -> None:
        with self.lock:
            self._set_clock(parse_iso(moment) if isinstance(moment, str) else moment)

    def _set_clock(self, moment: datetime) -> None:
        self._now = moment
        self._wall = (moment.timestamp(), time.monotonic())  # one assignment: read without the lock

    def wall(self) -> float:
        """The server's clock (its HTTP `Date`): the fake now, running since it was last set.
        Without the lock, which a query holds while it runs: an answer leaves as soon as it is
        ready, not once the queries asked meanwhile have run (as DS's own)."""
        base, set_at = self._wall
        return base + (time.monotonic() - set_at)

    # -- lookups -------------------------------------------------------------
    def add_procedure(self, procedure: Procedure) -> Procedure:
        with self.lock:
            self.procedures[procedure.number] = procedure
            return procedure

    def procedure(self, number: int) -> Procedure:
        return self.procedures[number]

    def _procedure_or_first(self, number: int | None) -> Procedure:
        return self.procedures[number] if number is not None else next(iter(self.procedures.values()))

    def find_dossier(self, number: int) -> tuple[Procedure, dict]:
        for procedure in self.procedures.values():
            if number in procedure.dossiers:
                return procedure, procedure.dossiers[number]
        raise KeyError(f"no dossier {number}")

    def dossier(self, number: int) -> dict:
        return self.find_dossier(number)[1]

    # -- mutations -----------------------------------------------------------
    def _touch(self, dossier: dict, *, champs: bool = False, annotations: bool = False) -> str:
        stamp = self.advance()
        dossier["dateDerniereModification"] = stamp
        if champs:
            dossier["dateDerniereModificationChamps"] = stamp
        if annotations:
            dossier["dateDerniereModificationAnnotations"] = stamp
        return stamp

    def update_champ(self, number: int, descriptor_id: str, new: Any) -> dict:
        """Set a champ (or annotation) of a dossier and bump its modification date.

        ``new`` is either a complete champ dict (with ``__typename``) or a plain
        value, converted by :func:`build_champ` for the descriptor's type. A
        champ the dossier did not carry (hidden by a condition) is added.
        """
        with self.lock:
            procedure, dossier = self.find_dossier(number)
            revision = procedure.revision(dossier["_revisionId"]) or procedure.active_revision
            descriptor, private = procedure.find_descriptor(descriptor_id, revision)
            stamp = self._touch(dossier, champs=not private, annotations=private)
            if isinstance(new, dict) and "__typename" in new:
                champ = copy.deepcopy(new)
                champ.setdefault("id", descriptor_id)
                champ.setdefault("champDescriptorId", descriptor_id)
                champ["updatedAt"] = stamp
            else:
                champ = build_champ(descriptor, new, stamp)
            key = "annotations" if private else "champs"
            order = [d["id"] for d in revision["annotationDescriptors" if private else "champDescriptors"]]
            others = [c for c in dossier[key] if c["champDescriptorId"] != descriptor_id]
            dossier[key] = sorted(others + [champ], key=lambda c: order.index(c["champDescriptorId"]))
            return champ

    def hide_champ(self, number: int, descriptor_id: str) -> None:
        """Remove a champ from a dossier, as when a condition stops showing it."""
        with self.lock:
            _, dossier = self.find_dossier(number)
            for key in ("champs", "annotations"):
                kept = [c for c in dossier[key] if c["champDescriptorId"] != descriptor_id]
                if len(kept) != len(dossier[key]):
                    dossier[key] = kept
                    self._touch(dossier, champs=key == "champs", annotations=key == "annotations")

    def update_dossier(self, number: int, **fields: Any) -> dict:
        """Set top-level dossier fields (state, motivation, archived...)."""
        with self.lock:
            _, dossier = self.find_dossier(number)
            dossier.update(copy.deepcopy(fields))
            self._touch(dossier)
            return dossier

    def add_dossier(self, dossier: dict | None = None, procedure_number: int | None = None,
                    **fields: Any) -> dict:
        """Add a dossier; without ``dossier`` a sample one is generated.

        ``procedure_number`` defaults to the store's first procedure. Deposit
        and modification dates are the new fake now unless given.
        """
        with self.lock:
            procedure = self._procedure_or_first(procedure_number)
            stamp = self.advance()
            if dossier is None:
                from .samples import generate_dossier  # local import: samples imports store

                number = self.next_dossier_number()
                dossier = generate_dossier(procedure, number, seed=number, deposited=stamp)
            dossier = copy.deepcopy(dossier)
            dossier.update(copy.deepcopy(fields))
            dossier.setdefault("_revisionId", procedure.active_revision["id"])
            dossier["id"] = encode_id("Dossier", dossier["number"])
            for key in ("dateDepot", "datePassageEnConstruction", "dateDerniereModification",
                        "dateDerniereModificationChamps", "dateDerniereModificationAnnotations"):
                dossier.setdefault(key, stamp)
            procedure.dossiers[dossier["number"]] = dossier
            return dossier

    def next_dossier_number(self) -> int:
        numbers = [n for p in self.procedures.values() for n in p.dossiers]
        numbers += [d["number"] for p in self.procedures.values()
                    for d in p.deleted_dossiers + p.pending_deleted_dossiers]
        return max(numbers, default=100000) + 1

    def delete_dossier(self, number: int, reason: str = "user_request", *, pending: bool = False,
                       at: str | None = None) -> dict:
        """Delete a dossier: into ``deletedDossiers``, or with ``pending`` into the bin
        (``pendingDeletedDossiers``, restorable with :meth:`restore_dossier`). Deleting a
        dossier that is in the bin confirms its deletion. ``at``: the ``dateSupression`` DS
        records (default: the fake now, advanced), e.g. one long before a copy's cursor (a
        deletion DS committed late, or one a sync's window moved past)."""
        with self.lock:
            procedure = next((p for p in self.procedures.values() if number in p.dossiers or number in p.binned), None)
            if procedure is None:
                raise KeyError(f"no dossier {number}")
            stamp = self.advance()
            if at is not None:
                stamp = iso(parse_iso(at))
            dossier = procedure.dossiers.pop(number, None) or procedure.binned.pop(number)
            deleted = {
                "id": encode_id("DeletedDossier", number),
                "number": number,
                "state": dossier["state"],
                "reason": reason,
                "dateSupression": stamp,
            }
            procedure.pending_deleted_dossiers = [
                d for d in procedure.pending_deleted_dossiers if d["number"] != number]
            if pending:
                procedure.binned[number] = dossier
                procedure.pending_deleted_dossiers.append(deleted)
            else:
                procedure.deleted_dossiers.append(deleted)
            return deleted

    def restore_dossier(self, number: int) -> dict:
        """Take a dossier out of the bin. Like DS, this does not change its modification date."""
        with self.lock:
            procedure = next(p for p in self.procedures.values() if number in p.binned)
            dossier = procedure.binned.pop(number)
            procedure.pending_deleted_dossiers = [
                d for d in procedure.pending_deleted_dossiers if d["number"] != number]
            procedure.dossiers[number] = dossier
            return dossier

    def rebase_dossier(self, number: int, revision_id: str | None = None, *, drop_removed: bool = False) -> dict:
        """Move a dossier to a revision (default: the active one), as DS does when a dossier
        takes a new revision of the form; its champs stay as they are (add new ones with
        :meth:`update_champ`). Like DS's rebase, its modification date is not changed.
        ``drop_removed``: the champs (and annotations) that revision no longer has at their
        place (removed from the form, or moved into or out of a block) go, as in DS."""
        with self.lock:
            procedure, dossier = self.find_dossier(number)
            revision = procedure.revision(revision_id) if revision_id else procedure.active_revision
            if revision is None:
                raise KeyError(f"no revision {revision_id}")
            dossier["_revisionId"] = revision["id"]
            if drop_removed:
                for key in ("champs", "annotations"):
                    kept = {d["id"] for d in revision["annotationDescriptors" if key == "annotations" else "champDescriptors"]}
                    dossier[key] = [c for c in dossier[key] if c["champDescriptorId"] in kept]
            return dossier

    def replace_file(self, number: int, descriptor_id: str, position: int = 0, *,
                     checksum: str | None = None, url: str | None = None, **fields: Any) -> dict:
        """Replace the file at ``position`` of a file champ (PieceJustificative) by another
        upload: by default the same filename, size and content type, with another checksum
        and another URL (ActiveStorage: a new blob). ``fields`` overrides other File fields.
        Bumps the dossier's modification date (and its champs' one)."""
        with self.lock:
            _, dossier = self.find_dossier(number)
            champ = next(c for c in dossier["champs"] + dossier["annotations"]
                         if c["champDescriptorId"] == descriptor_id)
            files = champ.get("files") or []
            old = files[position]
            stamp = self._touch(dossier, champs=champ in dossier["champs"],
                                annotations=champ in dossier["annotations"])
            blob = f"{number}-{stable_hash(number, descriptor_id, position, stamp) % 10**6:06d}r"
            new = {**old, "checksum": checksum or f"{stable_hash(blob) % 10**22:022d}==",
                   "url": url or f"/files/{blob}/{old['filename']}", "createdAt": stamp, **fields}
            champ["files"] = [*files[:position], new, *files[position + 1:]]
            champ["updatedAt"] = stamp
            return new

    def touch_modified(self, dossier: dict) -> str:
        """An instructeur's change through the API: only `dateDerniereModification` moves."""
        stamp = self.advance()
        dossier["dateDerniereModification"] = stamp
        return stamp

    def change_state(self, number: int, state: str, *, motivation: str | None = None, notify: bool = True,
                     by: str | None = None) -> str:
        """An instruction mutation: the new state, its dates, the usager e-mailed unless told not to
        (recorded in `notifications`)."""
        with self.lock:
            _, dossier = self.find_dossier(number)
            stamp = self.touch_modified(dossier)
            dossier["state"] = state
            if state == "en_instruction":
                dossier["datePassageEnInstruction"] = stamp
                dossier["dateTraitement"] = None
            elif state in ("accepte", "refuse", "sans_suite"):
                dossier["dateTraitement"] = stamp
                dossier["motivation"] = motivation
            if notify:
                self.notifications.append({"dossier": number, "state": state, "by": by, "at": stamp})
            return stamp

    def set_labels(self, number: int, names: Iterable[str]) -> list[dict]:
        """Replace a dossier's labels. Like DS, this does NOT bump its modification date."""
        with self.lock:
            procedure, dossier = self.find_dossier(number)
            dossier["labels"] = [copy.deepcopy(procedure.label(name)) for name in names]
            return dossier["labels"]

    def publish_revision(self, champ_descriptors: list[dict], annotation_descriptors: list[dict],
                         procedure_number: int | None = None) -> dict:
        """Publish a new active revision (existing dossiers keep their revision).

        ``procedure_number`` defaults to the store's first procedure.
        """
        with self.lock:
            procedure = self._procedure_or_first(procedure_number)
            stamp = self.advance()
            number = max(decode_int(r["id"]) for r in procedure.revisions) + 1
            revision = make_revision(number, stamp, copy.deepcopy(champ_descriptors),
                                     copy.deepcopy(annotation_descriptors))
            procedure.revisions.append(revision)
            procedure.date_derniere_modification = stamp
            return revision


def decode_int(global_id: str) -> int:
    return int(decode_id(global_id)[1])
