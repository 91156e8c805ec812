"""Which dossiers of a procedure the agent wants in the document (pure).

Saved per procedure (widget options, and `OTP_Demarches.Filtres` so a change is seen): states,
deposited from a date, groupes instructeurs, archived or not. DS takes one `state` per query
and ignores `createdSince` when `updatedSince` is sent, so the incremental path keeps asking
every modified dossier and the filter is applied here, on the pages and on the light listing
(which carries the fields it needs). A dossier that leaves the filter (its state changed, or the
agent narrowed the filter) is removed, or kept and marked « Hors du filtre » if the agent
prefers; when the filter changes, the next sync is a full one, so that widening it brings the
dossiers it now lets in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .. import constants, errors

STATES = constants.DOSSIER_STATES
ARCHIVED = constants.ARCHIVED_CHOICES
DOCUMENT_KEYS = constants.FILTER_DOCUMENT_KEYS


@dataclass(frozen=True)
class Filters:
    states: tuple[str, ...] = ()  # empty: every state
    deposited_since: str = ""  # "YYYY-MM-DD", inclusive
    groupes: tuple[str, ...] = ()  # groupe instructeur labels (or numbers as text); empty: all
    archived: str = "all"  # "all" | "exclude" | "only"
    keep_out: bool = False  # keep dossiers outside the filter, marked, instead of removing them
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def active(self) -> bool:
        return bool(self.states or self.deposited_since or self.groupes or self.archived != "all")

    def key(self) -> str:
        """What decides which dossiers are in: stored to see a change."""
        if not self.active:
            return ""
        values = {"states": list(self.states), "deposited_since": self.deposited_since,
                  "groupes": list(self.groupes), "archived": self.archived}
        return json.dumps({DOCUMENT_KEYS[k]: v for k, v in values.items()}, ensure_ascii=False, sort_keys=True)

    def matches(self, node: dict[str, Any]) -> bool:
        """`node`: a dossier as DS sends it (page node or light listing node)."""
        if self.states and node.get("state") not in self.states:
            return False
        if self.deposited_since and (node.get("dateDepot") or "")[:10] < self.deposited_since:
            return False
        if self.groupes:
            groupe = node.get("groupeInstructeur") or {}
            if str(groupe.get("label")) not in self.groupes and str(groupe.get("number")) not in self.groupes:
                return False
        if self.archived == "exclude" and node.get("archived"):
            return False
        if self.archived == "only" and not node.get("archived"):
            return False
        return True


def parse_filters(raw: Any) -> Filters:
    """From the widget's params (`filters`): a dict; French errors for what makes no sense."""
    if not raw:
        return Filters()
    if not isinstance(raw, dict):
        raise errors.invalid_filters("format inattendu")
    states = tuple(s for s in raw.get("states") or [] if s)
    unknown = [s for s in states if s not in STATES]
    if unknown:
        raise errors.invalid_filters(f"état inconnu : {', '.join(map(str, unknown))}")
    since = str(raw.get("deposited_since") or "").strip()
    if since and not (len(since) == 10 and since[4] == "-" and since[7] == "-" and since.replace("-", "").isdigit()):
        raise errors.invalid_filters(f"date de dépôt « {since[:20]} » (attendu : AAAA-MM-JJ)")
    archived = str(raw.get("archived") or "all")
    if archived not in ARCHIVED:
        raise errors.invalid_filters(f"choix des dossiers archivés « {archived[:20]} »")
    groupes = tuple(str(g).strip() for g in raw.get("groupes") or [] if str(g).strip())
    return Filters(states, since, groupes, archived, bool(raw.get("keep_out")))
