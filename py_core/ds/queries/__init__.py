"""The GraphQL documents OTP sends, kept in `.graphql` files beside this module."""

from __future__ import annotations

from functools import cache
from importlib import resources

FRAGMENT_FILES = {"DossierFields": "dossier_fields.graphql", "ChampFields": "champ_fields.graphql"}
QUERY_FILES = ("structure", "dossiers", "dossier", "deleted_dossiers", "refresh", "newest", "instructeurs")
# the mutations of the send (`jobs.send`), by the field each one calls
MUTATION_FILES = {
    "dossierModifierAnnotations": "modifier_annotations", "dossierAjouterLabel": "ajouter_label",
    "dossierSupprimerLabel": "supprimer_label", "dossierPasserEnInstruction": "passer_en_instruction",
    "dossierAccepter": "accepter", "dossierRefuser": "refuser", "dossierClasserSansSuite": "classer_sans_suite",
    "dossierRepasserEnInstruction": "repasser_en_instruction", "dossierRepasserEnConstruction": "repasser_en_construction",
}


def _read(filename: str) -> str:
    return resources.files(__package__).joinpath(filename).read_text(encoding="utf-8")


@cache
def document(name: str) -> str:
    """The full document for query `name`, with the shared fragments it spreads appended."""
    text = _read(f"{name}.graphql")
    for fragment, filename in FRAGMENT_FILES.items():  # in dependency order
        if f"...{fragment}" in text:
            text += "\n" + _read(filename)
    return text
