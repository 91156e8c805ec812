"""What a copy did, for the agent (the end message) and the history (its line and notes), in French."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..plan.diff import Repair
from .history import HistoryLine


@dataclass
class SyncResult:
    number: int
    title: str
    total: int = 0
    added: int = 0
    updated: int = 0
    deleted: int = 0
    deleted_numbers: list[int] = field(default_factory=list)
    fetched: int = 0
    ds_requests: int = 0
    added_numbers: set[int] = field(default_factory=set)  # one dossier changed is one « mis à jour »
    updated_numbers: set[int] = field(default_factory=set)
    incremental: bool = False
    resumed: bool = False
    scheduled: bool = False  # `otp sync`, not an agent: a note in the history
    cursor: str | None = None
    unknown_types: list[str] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)  # dossiers DS could not answer in full
    problems: list[str] = field(default_factory=list)
    binned: list[int] = field(default_factory=list)
    restored: list[int] = field(default_factory=list)
    filtered_out: list[int] = field(default_factory=list)  # left the agent's filter
    recreated: list[str] = field(default_factory=list)  # OTP's tables/columns an agent deleted, made again
    released: list[str] = field(default_factory=list)  # OTP's columns an agent turned into formulas
    repairs: Repair = field(default_factory=Repair)
    reattached: int = 0  # rows that got their dossier back
    waited_s: float = 0.0  # how long the copy waited for DS's pages of dossiers (a benchmark's figure)

    def count(self, added: set[int], updated: set[int]) -> None:
        self.added_numbers |= added
        self.updated_numbers |= updated
        self.added = len(self.added_numbers)
        self.updated = len(self.updated_numbers - self.added_numbers)

    @property
    def message(self) -> str:
        text = (
            f"Synchronisation terminée : {self.total} dossiers "
            f"({self.added} ajoutés, {self.updated} mis à jour"
            + (f", {self.deleted} supprimés" if self.deleted else "")
            + ")"
        )
        if self.filtered_out:
            text += f". {len(self.filtered_out)} dossiers sortis du filtre"
        if self.binned or self.restored:
            text += f". Corbeille DS : {len(self.binned)} dossiers mis, {len(self.restored)} restaurés"
        if self.skipped:
            text += (f". Attention : {len(self.skipped)} dossiers n'ont pas pu être lus en entier "
                     f"(n° {', '.join(map(str, self.skipped[:10]))}) ; ils seront repris à la prochaine synchronisation")
        if self.unknown_types:
            text += f". Types de champ non reconnus, copiés en texte : {', '.join(self.unknown_types)}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "title": self.title,
            "total": self.total,
            "added": self.added,
            "updated": self.updated,
            "deleted": self.deleted,
            "fetched": self.fetched,
            "ds_requests": self.ds_requests,
            "waited_s": round(self.waited_s, 2),
            "incremental": self.incremental,
            "resumed": self.resumed,
            "scheduled": self.scheduled,
            "skipped": self.skipped,
            "binned": self.binned,
            "restored": self.restored,
            "cursor": self.cursor,
            "unknown_types": self.unknown_types,
            "message": self.message,
        }


def _structure_notes(result: SyncResult) -> list[str]:
    """What agents did to OTP's tables, and what OTP did about it, in their words."""
    notes, repairs = [], result.repairs
    if result.recreated:
        notes.append("Tables ou colonnes d'OTP supprimées dans le document, recréées et remplies de nouveau "
                     "(synchronisation complète) : " + ", ".join(result.recreated))
    if result.released:
        notes.append("Colonnes d'OTP transformées en formule : elles sont désormais les vôtres, OTP n'y écrit plus "
                     "(une colonne dont OTP a besoin pour s'y retrouver est recréée à côté) : " + ", ".join(result.released))
    if result.reattached:
        notes.append(f"{result.reattached} lignes rattachées de nouveau à leur dossier (une ligne de dossier supprimée "
                     "à la main, ou une colonne clé recréée), avec vos saisies.")
    if repairs.merged:
        notes.append(f"{repairs.merged} lignes en double réunies (même numéro de dossier) ; vos saisies y ont été "
                     "reportées sur la ligne gardée.")
    if repairs.removed_loose:
        notes.append(f"{repairs.removed_loose} lignes sans dossier retirées (sans aucune saisie d'agent ; DS a "
                     "redonné leur contenu).")
    if repairs.kept:
        notes.append("Lignes sans dossier, ou en double, conservées parce qu'elles portent des saisies d'agents "
                     "(à vérifier, puis à supprimer à la main) : " + ", ".join(repairs.kept[:20]))
    return notes


def history_line(result: SyncResult, started: float, ended: float, status: str, message: str | None = None) -> HistoryLine:
    kind = "Reprise" if result.resumed else ("Incrémentale" if result.incremental else "Complète")
    return HistoryLine(result.number, kind, status, started, ended, message or result.message, _notes(result),
                       received=result.fetched, added=result.added, updated=result.updated, deleted=result.deleted,
                       ds_requests=result.ds_requests)


SCHEDULED_NOTE = "Synchronisation planifiée (commande otp sync, sans agent à l'écran)."


def _notes(result: SyncResult) -> list[str]:
    notes = [SCHEDULED_NOTE] if result.scheduled else []
    if result.resumed:
        notes.append("Reprise d'une synchronisation interrompue, à partir de son dernier point de reprise.")
    if result.unknown_types:
        notes.append("Types de champ inconnus d'OTP, copiés en texte (stringValue) : " + ", ".join(result.unknown_types))
    for numbers, what in ((result.deleted_numbers, "Dossiers supprimés dans DS"),
                          (result.filtered_out, "Dossiers sortis du filtre de la démarche"),
                          (result.binned, "Dossiers mis à la corbeille DS (conservés, restaurables)"),
                          (result.restored, "Dossiers restaurés depuis la corbeille DS")):
        if numbers:
            notes.append(f"{what} : " + ", ".join(f"n° {n}" for n in numbers))
    if result.skipped:
        notes.append("Dossiers que DS n'a pas pu donner en entier (non écrits, repris à la prochaine synchronisation) : "
                     + ", ".join(f"n° {n}" for n in result.skipped) + (". Erreurs DS : " + " ; ".join(result.problems) if result.problems else ""))
    return notes + _structure_notes(result)
