"""What the Grist document holds: its tables and columns, and OTP's registry tables.

OTP keeps small tables in the document (visible, filterable like any other):
- `OTP_Demarches`: one row per procedure: number, title, incremental cursor, last sync, the API
  address last used (widget options may stay an unsaved draft in Grist), dossiers to take again,
  whether OTP laid out the procedure's pages (`Pages_creees`, see `layout.py`: done once) and
  the dashboard page still waiting for its charts (`Graphiques_a_faire`, made after the copy).
- `OTP_Historique`: one row per sync that ended (done, failed, cancelled; counts, DS requests,
  notes such as champ types OTP does not know yet).
- `OTP_Envois`: the journal of what was sent to DS (one row per value sent, refused, in
  conflict or cancelled; who sent it by Grist's own user).
- `OTP_Etat`: the state of the syncs running now: one row per sync holding the procedure's
  lease (holder, expiry) with its checkpoint (see `lease.py`).
- `OTP_Tables`: which Grist table holds which part of a procedure (by table *ref*, stable across
  renames in Grist).
- `OTP_Colonnes`: which Grist column holds which DS champ (by column ref), with the DS label and
  type and whether the champ is still in the form.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


META_TABLES: dict[str, list[tuple[str, str, str]]] = {
    "OTP_Demarches": [
        ("Numero", "Int", "Numéro de démarche"),
        ("Titre", "Text", "Titre"),
        ("Curseur", "Text", "Modifiés depuis (reprise incrémentale)"),
        ("Derniere_synchro", "DateTime:UTC", "Dernière synchronisation"),
        ("Nb_dossiers", "Int", "Nombre de dossiers"),
        ("Adresse_API", "Text", "Adresse de l'API"),
        ("A_reprendre", "Text", "Dossiers à reprendre (réponse incomplète de DS)"),
        ("Filtres", "Text", "Filtre des dossiers de la dernière synchronisation"),
        ("Pages_creees", "Bool", "Pages créées par OTP"),  # see layout.py: laid out once
        ("Graphiques_a_faire", "Int", "Tableau de bord en attente de ses graphiques"),  # layout.make_charts
        ("Instance_DS", "Text", "Instance DS d'origine"),  # see `instance.py`: one copy, one DS
        ("Relire_depuis", "Text", "Relire les dossiers modifiés depuis (même seconde)"),  # see `recent.py`
    ],
    "OTP_Historique": [
        ("Demarche", "Int", "Démarche"),
        ("Debut", "DateTime:UTC", "Début"),
        ("Fin", "DateTime:UTC", "Fin"),
        ("Type", "Choice", "Type de synchronisation"),
        ("Statut", "Choice", "Statut"),
        ("Dossiers_recus", "Int", "Dossiers reçus de DS"),
        ("Ajoutes", "Int", "Ajoutés"),
        ("Mis_a_jour", "Int", "Mis à jour"),
        ("Supprimes", "Int", "Supprimés"),
        ("Requetes_DS", "Int", "Requêtes DS"),
        ("Message", "Text", "Message"),
        ("Notes", "Text", "Notes"),
    ],
    "OTP_Tables": [
        ("Demarche", "Int", "Démarche"),
        ("Cle", "Text", "Clé OTP"),
        ("Table_ref", "Int", "Référence de la table"),
        ("Table_id", "Text", "Identifiant de la table"),
    ],
    "OTP_Colonnes": [
        ("Demarche", "Int", "Démarche"),
        ("Table_ref", "Int", "Référence de la table"),
        ("Cle", "Text", "Clé OTP"),
        ("Col_ref", "Int", "Référence de la colonne"),
        ("Libelle_DS", "Text", "Libellé dans DS"),
        ("Type_DS", "Text", "Type DS"),
        ("Dans_le_formulaire", "Bool", "Dans le formulaire actuel"),
        ("Type_Grist", "Text", "Type Grist choisi par OTP"),
        ("Options_DS", "Text", "Options choisies par OTP"),
        ("Table_id", "Text", "Identifiant de la table"),
        ("Col_id", "Text", "Identifiant de la colonne"),
        ("Rendue", "Bool", "Rendue aux agents (devenue une formule)"),
    ],
    "OTP_Envois": [
        ("Demarche", "Int", "Démarche"),
        ("Dossier", "Int", "Dossier"),
        ("Quoi", "Text", "Quoi"),
        ("Valeur_envoyee", "Text", "Valeur envoyée"),
        ("Valeur_DS_avant", "Text", "Valeur dans DS avant"),
        ("Resultat", "Choice", "Résultat"),
        ("Message_DS", "Text", "Message"),
        ("Date", "DateTime:UTC", "Date"),
        ("Par", "Text", "Par"),  # a trigger formula: Grist's user (the widget cannot know who)
    ],
    "OTP_Etat": [
        ("Demarche", "Int", "Démarche"),
        ("Detenteur", "Text", "Synchronisation (navigateur)"),
        ("Debut", "DateTime:UTC", "Début"),
        ("Expire", "DateTime:UTC", "Bail valable jusqu'à"),
        ("Reprise", "Text", "Point de reprise"),
    ],
}

JOURNALS = {"OTP_Historique", "OTP_Envois"}  # written, never read by a job
SYNC_KINDS = ["Complète", "Incrémentale", "Reprise", "Envoi vers DS", "Préremplissage"]
SEND_RESULTS = ["Envoyé", "Refusé", "Conflit", "Annulé"]
# trigger formulas (computed once, when the row is added)
META_TRIGGERS = {("OTP_Envois", "Par"): "user.Email if user else ''"}
SYNC_STATUSES = ["Terminée", "Échec", "Annulée"]
META_OPTIONS = {
    ("OTP_Historique", "Type"): {"choices": SYNC_KINDS},
    ("OTP_Envois", "Resultat"): {"choices": SEND_RESULTS, "choiceOptions": {
        "Envoyé": {"fillColor": "#B8F4B5"}, "Refusé": {"fillColor": "#FFC9C9"}, "Conflit": {"fillColor": "#FFE8A1"}}},
    ("OTP_Historique", "Statut"): {"choices": SYNC_STATUSES, "choiceOptions": {
        "Terminée": {"fillColor": "#B8F4B5"}, "Échec": {"fillColor": "#FFC9C9"}, "Annulée": {"fillColor": "#FFE8A1"}}},
    **{(table, col): {"dateFormat": "DD/MM/YYYY", "isCustomDateFormat": True, "timeFormat": "HH:mm:ss", "isCustomTimeFormat": False}
       for table, col in [("OTP_Demarches", "Derniere_synchro"), ("OTP_Historique", "Debut"), ("OTP_Historique", "Fin"),
                          ("OTP_Etat", "Debut"), ("OTP_Etat", "Expire"), ("OTP_Envois", "Date")]},
}


@dataclass
class GristColumn:
    ref: int
    table_ref: int
    col_id: str
    type: str
    label: str
    widget_options: dict[str, Any]
    is_formula: bool
    visible_col: int = 0


@dataclass
class DocState:
    tables: dict[int, str]  # table ref → table id
    columns: dict[int, GristColumn]  # col ref → column
    timezone: str
    meta: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # OTP_* rows

    def table_ref(self, table_id: str) -> int | None:
        return next((ref for ref, tid in self.tables.items() if tid == table_id), None)

    def table_columns(self, table_ref: int) -> list[GristColumn]:
        return [c for c in self.columns.values() if c.table_ref == table_ref]

    def column_ref(self, table_id: str, col_id: str) -> int | None:
        table_ref = self.table_ref(table_id)
        return next((c.ref for c in self.columns.values() if c.table_ref == table_ref and c.col_id == col_id), None)

    def procedure(self, number: int) -> dict[str, Any] | None:
        return next((r for r in self.meta.get("OTP_Demarches", []) if r.get("Numero") == number), None)

    def registered_tables(self, number: int) -> dict[str, int]:
        """Table key → table ref. A table is registered in the bundle that creates it, by its id
        (its ref is only known after): such a row is resolved by that id."""
        return {r["Cle"]: self._table_ref_of(r) for r in self.meta.get("OTP_Tables", []) if r.get("Demarche") == number}

    def registered_columns(self, number: int) -> list[dict[str, Any]]:
        """The procedure's column registry, refs resolved (see `registered_tables`): each row as
        stored, with `Table_ref` and `Col_ref` filled from `Table_id`/`Col_id` where they are 0."""
        out = []
        for row in self.meta.get("OTP_Colonnes", []):
            if row.get("Demarche") != number:
                continue
            table_ref = self._table_ref_of(row)
            col_ref = row.get("Col_ref") or 0
            if not col_ref and row.get("Col_id") and table_ref:
                col_ref = next((c.ref for c in self.columns.values()
                                if c.table_ref == table_ref and c.col_id == row["Col_id"]), 0)
            out.append({**row, "Table_ref": table_ref, "Col_ref": col_ref})
        return out

    def _table_ref_of(self, row: dict[str, Any]) -> int:
        ref = row.get("Table_ref") or 0
        if not ref and row.get("Table_id"):
            ref = self.table_ref(row["Table_id"]) or 0
        return ref


def _meta_column(name: str, col_id: str, type_: str, label: str) -> dict[str, Any]:
    info = {"type": type_, "label": label, "isFormula": False, "untieColIdFromLabel": True}
    if (name, col_id) in META_OPTIONS:
        info["widgetOptions"] = json.dumps(META_OPTIONS[(name, col_id)], ensure_ascii=False)
    if (name, col_id) in META_TRIGGERS:
        info.update({"formula": META_TRIGGERS[(name, col_id)], "recalcWhen": 0, "recalcDeps": None})
    return info


SEND_JOURNAL = "OTP_Envois"  # made by the first send only (a document that never sends has no journal)
JOURNAL_PAGE = "Envois vers DS"


def meta_table_actions(state: DocState, names: tuple[str, ...] | None = None) -> list[list[Any]]:
    """Create OTP's own tables (`names`; by default those every copy needs), or the columns
    they lack (a document of an earlier version)."""
    actions = []
    wanted = names if names is not None else tuple(n for n in META_TABLES if n != SEND_JOURNAL)
    for name, columns in ((n, META_TABLES[n]) for n in wanted):
        table_ref = state.table_ref(name)
        if table_ref is None:
            actions.append(["AddTable", name, [{"id": c, **_meta_column(name, c, t, l)} for c, t, l in columns]])
            continue
        have = {c.col_id for c in state.table_columns(table_ref)}
        actions += [["AddColumn", name, c, _meta_column(name, c, t, l)] for c, t, l in columns if c not in have]
        if name == "OTP_Demarches" and "Pages_creees" not in have:
            # Procedures synced by an earlier version keep the pages their agents arranged.
            synced = sorted(r["id"] for r in state.meta.get(name, []) if r.get("Derniere_synchro"))
            if synced:
                actions.append(["BulkUpdateRecord", name, synced, {"Pages_creees": [True] * len(synced)}])
    return actions


def meta_race_repairs(actions: list[list[Any]], results: list[Any]) -> list[list[Any]]:
    """Two syncs creating OTP's tables at once: Grist renames the second `OTP_Etat` to
    `OTP_Etat2`. The one whose tables came out renamed removes them and uses the first ones."""
    repairs = []
    for action, result in zip(actions, results):
        if action[0] == "AddTable" and isinstance(result, dict) and result.get("table_id") != action[1]:
            repairs.append(["RemoveTable", result["table_id"]])
    return repairs


def parse_options(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
