"""The tables a procedure needs, derived from its descriptors (pure).

Table keys: `dossiers`, `champs`, `annotations`, `bloc:<descriptor id>` (one per repeatable
block). Column keys: fixed names for OTP's own columns, `<descriptor id>[/<part>]` for champs.
A Ref type is written `Ref:@<table key>` and resolved to the real table id by `registry`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .champ_types import DATETIME, DATETIME_FORMAT, Part, column_key, mixed_parts, parts_for
from ..grist.values import choice_list_cell, datetime_cell, int_cell, text_cell
from ..ds.models import Descriptor, Dossier, Structure
from .. import constants
from .send import SENDABLE as SENDABLE_KINDS

STATE_LABELS = constants.STATE_LABELS

# The states in DS's own colours (DSFR badges: grey-blue, blue, green, red, grey)
STATE_COLOURS = {
    "En construction": {"fillColor": "#E3E3FD", "textColor": "#000091"},
    "En instruction": {"fillColor": "#E8EDFF", "textColor": "#0063CB"},
    "Accepté": {"fillColor": "#B8FEC9", "textColor": "#18753C"},
    "Refusé": {"fillColor": "#FFE9E9", "textColor": "#CE0500"},
    "Classé sans suite": {"fillColor": "#EEEEEE", "textColor": "#3A3A3A"},
}

DOSSIER_KEY = "numero"
DATE_MODIFIED = "date_modification"  # DS's last modification date as copied (see `changed_dossiers`)
BIN_DATE = "date_corbeille"  # set while the dossier is in DS's bin (restorable)
DELETED_DATE = "date_suppression_ds"  # set when a deleted dossier is kept (the agent's choice)
OUT_OF_FILTER = "hors_filtre"  # kept although outside the agent's filter (the agent's choice)
DOSSIER_REF = "dossier"
ROW_KEY = "ligne"
POSITION = "position"
BASE = "base_ds"  # what DS had at the last copy of each sendable cell (JSON): see `plan.pending`
DECISION = "decision_a_envoyer"  # the agents' input: a decision to send (see `plan.send`)
MOTIVATION = "motivation_a_envoyer"
LABELS = "labels"
DECISIONS = ["Passer en instruction", "Accepter", "Refuser", "Classer sans suite", "Repasser en instruction",
             "Repasser en construction"]


@dataclass(frozen=True)
class ColumnSpec:
    key: str
    label: str  # the full DS label (column label in Grist)
    type: str
    id_hint: str  # what the column id is derived from
    widget_options: dict[str, Any] = field(default_factory=dict)
    ds_type: str = ""  # descriptor kind, or "otp" for OTP's own columns
    read: Callable[[Any], Any] | None = None
    in_form: bool = True  # False: the champ is only in older revisions of the form
    written: bool = True  # False: an input of the agents' that OTP made, never written by the copy


@dataclass(frozen=True)
class TableSpec:
    key: str
    name: str  # table id hint
    row_key: tuple[str, ...]  # the column keys that identify a row
    columns: list[ColumnSpec]
    sendable: tuple[str, ...] = ()  # column keys whose cells agents may send back to DS (`BASE` holds their base)

    def column(self, key: str) -> ColumnSpec:
        return next(c for c in self.columns if c.key == key)


@dataclass(frozen=True)
class Schema:
    number: int
    tables: list[TableSpec]
    unknown_kinds: list[str]
    labels: dict[str, str] = field(default_factory=dict)  # descriptor id → its label (a file's champ)

    def table(self, key: str) -> TableSpec:
        return next(t for t in self.tables if t.key == key)


def _dossier_columns(labels: list[str], timezone: str, ds_base: str, number: int) -> list[ColumnSpec]:
    dt = f"{DATETIME}:{timezone}"

    def col(key: str, label: str, type_: str, read, id_hint: str, **options) -> ColumnSpec:
        if type_.startswith(DATETIME):
            options = {**DATETIME_FORMAT, **options}
        return ColumnSpec(key, label, type_, id_hint, options, "otp", read)

    def when(name: str):
        return lambda d: datetime_cell(d.raw(name))

    def demandeur(*path: str):
        def read(d: Dossier):
            value: Any = d.raw("demandeur")
            for name in path:
                value = value.get(name) if isinstance(value, dict) else None
            return text_cell(value)

        return read

    def link(d: Dossier) -> str:
        return f"Dossier {d.number} {ds_base}/procedures/{number}/dossiers/{d.number}"

    return [
        col(DOSSIER_KEY, "Numéro", "Int", lambda d: d.number, "Numero"),
        col("etat", "État", "Choice", lambda d: STATE_LABELS.get(d.state, d.state), "Etat",
            choices=list(STATE_LABELS.values()), choiceOptions=STATE_COLOURS),
        col("date_depot", "Date de dépôt", dt, when("dateDepot"), "Date_depot"),
        col("date_construction", "Date de passage en construction", dt, when("datePassageEnConstruction"), "Date_passage_en_construction"),
        col("date_instruction", "Date de passage en instruction", dt, when("datePassageEnInstruction"), "Date_passage_en_instruction"),
        col("date_traitement", "Date de traitement", dt, when("dateTraitement"), "Date_traitement"),
        col(DATE_MODIFIED, "Date de dernière modification", dt, when("dateDerniereModification"), "Date_derniere_modification"),
        col("date_expiration", "Date d'expiration", dt, when("dateExpiration"), "Date_expiration"),
        col("date_suppression_usager", "Date de suppression par l'usager", dt, when("dateSuppressionParUsager"), "Date_suppression_usager"),
        col("date_suppression_administration", "Date de suppression par l'administration", dt, when("dateSuppressionParAdministration"), "Date_suppression_administration"),
        col("demandeur_type", "Type de demandeur", "Choice", _demandeur_kind, "Demandeur_type", choices=["Personne physique", "Personne morale"]),
        col("demandeur_civilite", "Civilité du demandeur", "Choice", demandeur("civilite"), "Demandeur_civilite", choices=["M", "Mme"]),
        col("demandeur_nom", "Nom du demandeur", "Text", demandeur("nom"), "Demandeur_nom"),
        col("demandeur_prenom", "Prénom du demandeur", "Text", demandeur("prenom"), "Demandeur_prenom"),
        col("demandeur_email", "E-mail du demandeur", "Text", demandeur("email"), "Demandeur_email"),
        col("demandeur_siret", "SIRET du demandeur", "Text", demandeur("siret"), "Demandeur_SIRET"),
        col("demandeur_raison_sociale", "Raison sociale", "Text", demandeur("entreprise", "raisonSociale"), "Demandeur_raison_sociale"),
        col("demandeur_forme_juridique", "Forme juridique", "Text", demandeur("entreprise", "formeJuridique"), "Demandeur_forme_juridique"),
        col("demandeur_adresse", "Adresse du demandeur", "Text", demandeur("address", "label"), "Demandeur_adresse"),
        col("usager_email", "E-mail de l'usager", "Text", lambda d: text_cell((d.raw("usager") or {}).get("email")), "Usager_email"),
        col("depose_par_un_tiers", "Déposé par un tiers", "Bool", lambda d: bool(d.raw("deposeParUnTiers")), "Depose_par_un_tiers"),
        col("groupe_instructeur", "Groupe instructeur", "Text", lambda d: text_cell((d.raw("groupeInstructeur") or {}).get("label")), "Groupe_instructeur"),
        col("instructeurs", "Instructeurs", "Text", lambda d: text_cell(", ".join(i.get("email", "") for i in d.raw("instructeurs") or [])), "Instructeurs"),
        col("labels", "Labels", "ChoiceList", lambda d: choice_list_cell(sorted(l["name"] for l in d.raw("labels") or [])), "Labels", choices=labels),
        col("motivation", "Motivation", "Text", lambda d: text_cell(d.raw("motivation")), "Motivation"),
        col("archive", "Archivé", "Bool", lambda d: bool(d.raw("archived")), "Archive"),
        col("date_suppression_ds", "Supprimé dans DS le", dt, lambda d: None, "Supprime_dans_DS_le"),
        col(BIN_DATE, "Dans la corbeille DS depuis le", dt, lambda d: None, "Dans_la_corbeille_DS_depuis"),
        col(OUT_OF_FILTER, "Hors du filtre", "Bool", lambda d: False, "Hors_du_filtre"),
        col("lien", "Lien vers le dossier", "Text", link, "Lien_DS", widget="HyperLink"),
        _base_column(),
        ColumnSpec(DECISION, "Décision à envoyer", "Choice", "Decision_a_envoyer", {"choices": DECISIONS}, "otp", written=False),
        ColumnSpec(MOTIVATION, "Motivation à envoyer", "Text", "Motivation_a_envoyer", {}, "otp", written=False),
    ]


def _base_column() -> ColumnSpec:
    return ColumnSpec(BASE, "Valeurs DS de la dernière copie (OTP)", "Text", "Base_DS", {}, "otp")


def _demandeur_kind(d: Dossier) -> str | None:
    kind = (d.raw("demandeur") or {}).get("__typename", "")
    return {"PersonnePhysique": "Personne physique"}.get(kind, "Personne morale" if kind.startswith("PersonneMorale") else None)


def _champ_columns(descriptors: list[Descriptor], timezone: str, unknown: list[str]) -> list[ColumnSpec]:
    columns = []
    for descriptor in descriptors:
        # a champ whose type changed between revisions: its text, the one reading every type's value
        parts, known = (mixed_parts({descriptor.kind, *descriptor.older_kinds}), True) if descriptor.mixed else parts_for(descriptor.kind)
        if not known and descriptor.kind not in unknown:
            unknown.append(descriptor.kind)
        for part in parts:
            columns.append(_part_column(descriptor, part, timezone))
    return columns


def _part_column(descriptor: Descriptor, part: Part, timezone: str) -> ColumnSpec:
    options: dict[str, Any] = dict(part.widget)
    if part.choices:
        options["choices"] = part.choices(descriptor)
    type_ = f"{DATETIME}:{timezone}" if part.type == DATETIME else part.type
    read = part.read
    return ColumnSpec(
        key=column_key(descriptor.id, part),
        label=descriptor.label + part.label,
        type=type_,
        id_hint=descriptor.label + part.label,
        widget_options=options,
        ds_type=descriptor.kind,
        read=read,
        in_form=descriptor.in_form,
    )


def _ref_column(label: str = "Dossier") -> ColumnSpec:
    return ColumnSpec(DOSSIER_REF, label, "Ref:@dossiers", "Dossier", {}, "otp")


AVIS_KEY = "avis_id"
FILE_CHAMP = "champ_cle"
FILE_POSITION = "numero_fichier"


def _file_columns() -> list[ColumnSpec]:
    def col(key, label, type_, read, id_hint, **options):
        return ColumnSpec(key, label, type_, id_hint, options, "otp", read)

    def link(f):
        return f"{f.get('filename') or 'fichier'} {f['url']}" if f.get("url") else None

    return [
        _ref_column(),
        col(FILE_CHAMP, "Champ (identifiant DS)", "Text", None, "Champ_id"),
        col(FILE_POSITION, "N° du fichier dans le champ", "Int", None, "Numero_fichier"),
        col("champ", "Champ", "Text", None, "Champ"),
        col("nom", "Nom du fichier", "Text", lambda f: text_cell(f.get("filename")), "Nom"),
        col("lien", "Lien (signé par DS : expire environ une heure après la copie du dossier)", "Text", link, "Lien", widget="HyperLink"),
        col("taille", "Taille (octets)", "Int", lambda f: int_cell(f.get("byteSizeBigInt")), "Taille"),
        col("type", "Type", "Text", lambda f: text_cell(f.get("contentType")), "Type"),
        # a file replaced by one of the same name, size and type: only its checksum tells (and
        # the link, re-signed at every request, is no change on its own: `page.VOLATILE`)
        col("empreinte", "Empreinte (MD5, base64)", "Text", lambda f: text_cell(f.get("checksum")), "Empreinte"),
    ]


def _avis_columns(timezone: str) -> list[ColumnSpec]:
    dt = f"{DATETIME}:{timezone}"

    def col(key, label, type_, read, id_hint):
        return ColumnSpec(key, label, type_, id_hint, dict(DATETIME_FORMAT) if type_.startswith(DATETIME) else {}, "otp", read)

    def email(role):
        return lambda a: text_cell((a.get(role) or {}).get("email"))

    return [
        _ref_column(),
        col(AVIS_KEY, "Avis (identifiant DS)", "Text", lambda a: a.get("id"), "Avis_id"),
        col("question", "Question", "Text", lambda a: text_cell(a.get("question")), "Question"),
        col("reponse", "Réponse", "Text", lambda a: text_cell(a.get("reponse")), "Reponse"),
        col("question_oui_non", "Question oui/non", "Text", lambda a: text_cell(a.get("questionLabel")), "Question_oui_non"),
        col("reponse_oui_non", "Réponse oui/non", "Bool", lambda a: bool(a.get("questionAnswer")), "Reponse_oui_non"),
        col("date_question", "Date de la demande", dt, lambda a: datetime_cell(a.get("dateQuestion")), "Date_demande"),
        col("date_reponse", "Date de la réponse", dt, lambda a: datetime_cell(a.get("dateReponse")), "Date_reponse"),
        col("demandeur", "Demandé par", "Text", email("claimant"), "Demande_par"),
        col("expert", "Expert", "Text", email("expert"), "Expert"),
    ]


def build_schema(structure: Structure, *, timezone: str, ds_base: str) -> Schema:
    number = structure.number
    champ_descriptors, annotation_descriptors = structure.champ_descriptors, structure.annotation_descriptors
    unknown: list[str] = []
    labels = sorted(l.name for l in structure.labels)
    tables = [
        TableSpec("dossiers", f"D{number}_Dossiers", (DOSSIER_KEY,), _dossier_columns(labels, timezone, ds_base, number)),
        TableSpec("champs", f"D{number}_Champs", (DOSSIER_REF,),
                  [_ref_column(), *_champ_columns(champ_descriptors, timezone, unknown)]),
        TableSpec("annotations", f"D{number}_Annotations", (DOSSIER_REF,),
                  [_ref_column(), *_champ_columns(annotation_descriptors, timezone, unknown), _base_column()],
                  _sendable(annotation_descriptors)),
    ]
    tables[0] = TableSpec("dossiers", tables[0].name, tables[0].row_key, tables[0].columns, (LABELS,))
    tables.append(TableSpec("avis", f"D{number}_Avis", (DOSSIER_REF, AVIS_KEY), _avis_columns(timezone)))
    tables.append(TableSpec("fichiers", f"D{number}_Fichiers", (DOSSIER_REF, FILE_CHAMP, FILE_POSITION), _file_columns()))
    private = {b.id for b in blocks(annotation_descriptors)}
    for block in blocks(champ_descriptors + annotation_descriptors):
        columns = [
            _ref_column(),
            ColumnSpec(ROW_KEY, "Ligne (identifiant DS)", "Text", "Ligne", {}, "otp"),
            ColumnSpec(POSITION, "Position", "Int", "Position", {}, "otp"),
            *_champ_columns(block.children, timezone, unknown),
            *([_base_column()] if block.id in private else []),
        ]
        tables.append(TableSpec(f"bloc:{block.id}", f"D{number}_Bloc_{block.label}", (DOSSIER_REF, ROW_KEY), columns,
                                _sendable(block.children) if block.id in private else ()))
    labels = {d.id: d.label for d in champ_descriptors + annotation_descriptors}
    labels |= {c.id: f"{b.label} › {c.label}" for b in blocks(champ_descriptors + annotation_descriptors) for c in b.children}
    return Schema(number, tables, unknown, labels)


def _sendable(descriptors: list[Descriptor]) -> tuple[str, ...]:
    """The annotations DS lets the API write (one column each; a type that changed between
    revisions is not sent: its column mixes them)."""
    return tuple(column_key(d.id, parts_for(d.kind)[0][0]) for d in descriptors
                 if d.kind in SENDABLE_KINDS and d.in_form and not d.mixed and len(parts_for(d.kind)[0]) == 1)


def blocks(descriptors: list[Descriptor]) -> list[Descriptor]:
    return [d for d in descriptors if d.kind == "Repetition"]
