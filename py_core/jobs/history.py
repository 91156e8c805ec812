"""One line per job that ended in `OTP_Historique` (done, failed, cancelled): shared by every job."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class HistoryLine:
    number: int
    kind: str  # the job and how it ran: « Complète », « Incrémentale », « Reprise »…
    status: str  # « Terminée », « Échec », « Annulée »
    started: float
    ended: float
    message: str
    notes: list[str] = field(default_factory=list)
    received: int = 0
    added: int = 0
    updated: int = 0
    deleted: int = 0
    ds_requests: int = 0

    def action(self) -> list[Any]:
        return ["AddRecord", "OTP_Historique", None, {
            "Demarche": self.number, "Debut": self.started, "Fin": self.ended, "Type": self.kind,
            "Statut": self.status, "Dossiers_recus": self.received, "Ajoutes": self.added,
            "Mis_a_jour": self.updated, "Supprimes": self.deleted, "Requetes_DS": self.ds_requests,
            "Message": self.message, "Notes": "\n".join(self.notes),
        }]


def status_of(error: BaseException) -> tuple[str, str]:
    """The history's status and message of a job that stopped on `error`."""
    status = "Annulée" if getattr(error, "code", "") == "cancelled" else "Échec"
    return status, getattr(error, "message_fr", None) or f"Erreur inattendue : {type(error).__name__}"
