"""Which kind of copy runs (pure): decided once, from the document's state and the request.

- **full**: the first copy of a procedure, or the agent changed the filter (a widened one lets
  dossiers in), or a table or column of OTP's was made again (it must be filled): every
  dossier, by pages, each page's checkpoint stored with it;
- **incremental**: the procedure was copied before with the same filter: the listing first,
  then the dossiers whose date moved;
- **resumed**: an interrupted copy left its checkpoint: a full one goes on after its last page
  written (then lists, for what changed meanwhile); an incremental one starts again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..ds.dates import EPOCH, iso_second
from ..grist.values import datetime_cell, epoch_of
from ..plan.filters import Filters
from .checkpoint import Checkpoint

SETTLE_S = 10  # DS dates have whole seconds, and are stamped before their commit: see `reread_since`


@dataclass(frozen=True)
class Kind:
    checkpoint: Checkpoint  # where this copy starts
    resumed: bool

    @property
    def full(self) -> bool:
        return self.checkpoint.full


def lists_first(procedure: dict[str, Any], filters: Filters) -> bool:
    """A copy that lists first (and may read the listing from its very start): the procedure
    was copied before, with the same filter."""
    return bool(procedure.get("Curseur")) and filters.key() == (procedure.get("Filtres") or "")


def plan_kind(procedure: dict[str, Any], filters: Filters, carried: Checkpoint | None, *, refill: bool) -> Kind:
    """`procedure`: its row in OTP_Demarches ({} when never copied); `carried`: the checkpoint
    an interrupted copy left; `refill`: a table or column of OTP's was just made again."""
    cursor = procedure.get("Curseur") or None
    if carried is not None and carried.full:
        checkpoint = carried
    else:
        full = not cursor
        checkpoint = Checkpoint(EPOCH if full else None, None, cursor, full, carried.skipped if carried else ())
    if cursor and (not lists_first(procedure, filters) or refill):
        checkpoint = checkpoint.moved(since=EPOCH, after=None, newest=None, full=True)
    return Kind(checkpoint, resumed=carried is not None)


def reread_since(ds_time: float | None, newest: str | None, previous_newest: str | None, started: float, now: float,
                 previous_end: float | None, previous_window: str | None) -> str:
    """From which modification date the next copy fetches the copied dossiers again.

    DS's dates have whole seconds and are stamped before their transaction commits: a dossier
    copied within SETTLE_S of its date may change again with the same date (a second change in
    that second, or one committed late), which comparing dates cannot see. Every copy of this
    run was made after DS's clock read `ds_time` (the `Date` of its answer to the structure
    query, before any dossier was fetched): the dossiers dated from `ds_time − SETTLE_S` on are
    fetched again by the next copy — none when nothing changed in the seconds before it.

    Without DS's clock (a browser that does not see the `Date` header), `newest` stands for
    it: DS's clock had reached it by the end, so such a copy is dated after `newest − (this
    run's duration) − SETTLE_S`; once a run started SETTLE_S or more after the previous one
    ended, its fetches of the previous window saw every change of those seconds."""
    if ds_time is not None:
        return iso_second(ds_time - SETTLE_S)
    if not newest:
        return ""
    window = (datetime_cell(newest) or 0) - (now - started) - SETTLE_S
    settled = previous_end is not None and started - previous_end >= SETTLE_S
    if settled and previous_newest:
        window = max(window, (datetime_cell(previous_newest) or 0) + 1)
    elif not settled and previous_window:
        window = min(window, epoch_of(previous_window) or window)
    return iso_second(window)


def carry_fresh(fresh: dict[str, set[str]], created: set[str], carried: tuple[tuple[str, tuple[str, ...]], ...]
                ) -> tuple[dict[str, set[str]], tuple[tuple[str, tuple[str, ...]], ...]]:
    """A full copy that fills columns made in tables that existed (an agent deleted them, or the
    dossiers table the children's Refs point at) keeps them in its checkpoint, stored with the
    tables made: interrupted, the copy that resumes still takes them as fresh. Returns the
    columns fresh for this copy, and those its checkpoint keeps."""
    kept = {k: set(v) for k, v in carried}
    for key, columns in fresh.items():
        if key not in created:
            kept[key] = kept.get(key, set()) | columns
    merged = {**fresh, **{k: fresh.get(k, set()) | v for k, v in kept.items()}}
    return merged, tuple((k, tuple(sorted(v))) for k, v in sorted(kept.items()))


def without_keys(carried: tuple[tuple[str, tuple[str, ...]], ...], keys: dict[str, set[str]]
                 ) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The fresh columns a checkpoint keeps once the key columns among them were blanked in the
    document (`Writer.clear_stale_keys`): a key found there later is the copy's own, and a copy
    that resumes takes it as such."""
    kept = ((k, tuple(c for c in cols if c not in keys.get(k, ()))) for k, cols in carried)
    return tuple((k, cols) for k, cols in kept if cols)
