"""What becomes of the dossiers the document holds (pure): DS's listing, bin and deletions,
the agent's filter → flags and removals; which listed dossiers to fetch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..grist.values import datetime_cell

@dataclass
class Membership:
    """What becomes of the dossiers the document holds, once DS's lists were read."""

    bin_dates: dict[int, Any] = field(default_factory=dict)  # number → « Dans la corbeille » cell
    deleted_dates: dict[int, Any] = field(default_factory=dict)  # number → « Supprimé dans DS le »
    remove: set[int] = field(default_factory=set)
    out_of_filter: dict[int, bool] = field(default_factory=dict)  # number → « Hors du filtre » cell
    filtered_out: list[int] = field(default_factory=list)  # newly outside the agent's filter
    binned: list[int] = field(default_factory=list)  # newly in the bin
    restored: list[int] = field(default_factory=list)  # out of the bin again
    deleted: list[int] = field(default_factory=list)  # newly deleted (removed or flagged)


def plan_membership(held: dict[int, tuple[Any, Any]], listed: set[int], pending: dict[int, float],
                    deleted: dict[int, float], *, keep_deleted: bool,
                    now: float, excluded: frozenset[int] | set[int] = frozenset(), keep_excluded: bool = False,
                    out_cells: dict[int, Any] | None = None) -> Membership:
    """`held`: number → (bin cell, deleted cell) as the document has them; `listed`: every dossier
    DS has now (its listing, completed by asking DS for each dossier it did not list); `pending`:
    DS's bin, read after that listing; confirmed deletions (number → date) for their dates.

    A dossier DS lists is alive (a restored one leaves the bin: same row, agents' cells intact —
    DS may not even change its modification date). One in the bin is kept and flagged. One in
    neither is deleted: removed, or flagged if the agent keeps them. One DS lists but outside the
    agent's filter (`excluded`) is removed, or kept and marked."""
    out = Membership()
    out_cells = out_cells or {}
    for number, (bin_cell, deleted_cell) in held.items():
        if deleted_cell and number not in listed:
            continue  # deleted earlier and kept: stays as it is
        if number in listed and number not in pending:
            if number in excluded:
                if not out_cells.get(number):
                    out.filtered_out.append(number)
                if keep_excluded:
                    out.out_of_filter[number] = True
                else:
                    out.remove.add(number)
                    continue
            else:
                out.out_of_filter[number] = False
        if number in pending:
            out.bin_dates[number] = bin_cell or pending[number]
            if not bin_cell:
                out.binned.append(number)
        elif number in listed:
            out.bin_dates[number] = None
            if bin_cell:
                out.restored.append(number)
            if deleted_cell:
                out.deleted_dates[number] = None
        else:
            out.deleted.append(number)
            if keep_deleted:
                out.deleted_dates[number] = deleted.get(number) or now
                out.bin_dates[number] = None
            else:
                out.remove.add(number)
    return out


def changed_dossiers(copied: dict[int, float | None], nodes: list[dict[str, Any]], *,
                     reread: float | None = None) -> dict[int, str]:
    """The listed dossiers (light nodes) that the copy does not hold as DS has them: new ones,
    those whose modification date moved since they were copied (`copied`: number → the copy's
    « Date de dernière modification », in seconds), and those dated from `reread` on (copied in
    the second of their date: see `jobs.copy_kind.reread_since`). Returns number → DS's date."""
    out = {}
    for node in nodes:
        number, date = node["number"], node.get("dateDerniereModification")
        seconds = datetime_cell(date)
        if number not in copied or (seconds is not None and (seconds != copied[number] or (reread is not None and seconds >= reread))):
            out[number] = date
    return out
