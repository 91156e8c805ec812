"""Where a copy stands, kept in the document with the data it describes (`OTP_Etat.Reprise`).

Built, stored and parsed here only. A full copy records the pages it wrote (`since`, `after`);
every copy the newest modification date it copied (`newest`), whether it is a full one, and
the dossiers DS could not answer in full (`skipped`). A copy that stops keeps it; the next one
resumes from there (see `jobs.copy.kind`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class Checkpoint:
    since: str | None = None  # `updatedSince` of the pages (a full copy: the epoch)
    after: str | None = None  # DS's cursor after the last page written
    newest: str | None = None  # newest `dateDerniereModification` copied
    full: bool = False
    skipped: tuple[int, ...] = ()
    # columns of tables that existed, made at the start of a full copy that fills them (table key
    # → column keys): a resumed copy still takes them as fresh (`plan.diff.TableIndex`)
    fresh: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def to_json(self) -> str:
        return json.dumps({"since": self.since, "after": self.after, "newest": self.newest, "full": self.full,
                           "skipped": list(self.skipped), "fresh": {k: list(v) for k, v in self.fresh}})

    @classmethod
    def from_json(cls, text: str | None) -> Checkpoint | None:
        """The stored checkpoint of an interrupted copy; None when there is none to resume."""
        try:
            value: Any = json.loads(text or "")
        except ValueError:
            return None
        if not isinstance(value, dict) or not value.get("since"):
            return None
        skipped = tuple(int(n) for n in value.get("skipped") or [] if str(n).isdigit())
        fresh = value.get("fresh") if isinstance(value.get("fresh"), dict) else {}
        return cls(value.get("since"), value.get("after"), value.get("newest"), bool(value.get("full")), skipped,
                   tuple((str(k), tuple(map(str, v))) for k, v in fresh.items() if isinstance(v, list)))

    def moved(self, **changes: Any) -> Checkpoint:
        return replace(self, **changes)
