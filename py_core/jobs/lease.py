"""The state of a sync, kept in the document: a lease (holder, expiry) and a checkpoint.

`OTP_Etat` holds one row per sync holding a procedure's lease. Grist applies a bundle of user
actions atomically and refuses an update of a row that no longer exists; OTP builds its mutual
exclusion on exactly that:

- every write of a sync (`FencedSink.apply`) carries an update of its own row (renewing the
  expiry, and storing the checkpoint in the same bundle as the data it describes). A sync whose
  row was removed cannot write anything more: no duplicate, even if two ever run at once;
- taking the lease over from a sync that is gone (expired, or the same holder: a reloaded tab)
  is one bundle « add mine, update its row, remove it »: if another sync removed that row
  first, the bundle fails whole and this sync backs off;
- two syncs that both add a row at once compare row ids: the lowest wins, the other removes its
  row before writing anything;
- Grist gives a new row the highest id + 1, so a removed row's id could come back and let a
  stale sync write again: rows are only ever removed in a bundle that first adds a higher one,
  and a sync that ends keeps its row (expired, no checkpoint) until the next sync removes it.

The checkpoint (`Reprise`) is the job's own (for the copy: `checkpoint.Checkpoint`), stored as
text with the data it describes; a failed or cancelled job frees its lease but keeps it, and
the next job of the procedure resumes from there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from .. import errors
from ..grist.sink import Columns, GristSink, records

TABLE = "OTP_Etat"


class Stored(Protocol):
    """A job's checkpoint, as the lease stores it."""

    def to_json(self) -> str: ...

SCHEDULED_HOLDER = "otp-sync@"  # the holder of a scheduled run (`otp sync`): "otp-sync@<host>/<pid>"

LEASE_S = 120.0  # renewed at every write and before every wait (retries, rate limit)


@dataclass
class Lease:
    number: int
    row_id: int
    holder: str
    checkpoint: str = ""  # carried over from an interrupted job (its `to_json()`)


def _ago(seconds: float) -> str:
    minutes = int(max(0, seconds) // 60)
    return "à l'instant" if minutes < 1 else f"il y a {minutes} min"


async def _rows(sink: GristSink, number: int) -> list[dict[str, Any]]:
    return [r for r in records(await sink.fetch_table(TABLE)) if r.get("Demarche") == number]


async def acquire(sink: GristSink, number: int, holder: str, now: float) -> Lease:
    """Take the procedure's lease, or raise `sync_busy` (nothing written)."""
    rows = await _rows(sink, number)
    live = [r for r in rows if (r.get("Expire") or 0) > now and (r.get("Detenteur") or "") != holder]
    if live:
        raise errors.sync_busy(number, _ago(now - (live[0].get("Debut") or now)),
                               scheduled=str(live[0].get("Detenteur") or "").startswith(SCHEDULED_HOLDER))
    carried = _latest_checkpoint(rows)
    actions: list[list[Any]] = [["AddRecord", TABLE, None, {
        "Demarche": number, "Detenteur": holder, "Debut": now, "Expire": now + LEASE_S,
        "Reprise": carried,
    }]]
    for row in rows:  # take over: fails whole if another sync removed one of them first
        actions += [["UpdateRecord", TABLE, row["id"], {"Expire": row.get("Expire") or 0}], ["RemoveRecord", TABLE, row["id"]]]
    try:
        row_id = (await sink.apply(actions))[0]
    except errors.GristWriteError:
        if await _rows(sink, number) != rows:
            raise errors.sync_busy(number, _ago(0)) from None
        raise
    contenders = sorted(r["id"] for r in await _rows(sink, number) if (r.get("Expire") or 0) > now)
    if contenders and contenders[0] != row_id:
        await sink.apply([["RemoveRecord", TABLE, row_id]])
        raise errors.sync_busy(number, _ago(0))
    return Lease(number, row_id, holder, carried)


def carried_checkpoint(rows: list[dict[str, Any]], number: int) -> str:
    """The checkpoint the procedure's lease would carry over, from `OTP_Etat`'s `rows` as read
    (a job may look before it takes the lease: `acquire` reads them again)."""
    return _latest_checkpoint([r for r in rows if r.get("Demarche") == number])


def _latest_checkpoint(rows: list[dict[str, Any]]) -> str:
    for row in sorted(rows, key=lambda r: r.get("Debut") or 0, reverse=True):
        if row.get("Reprise"):
            return str(row["Reprise"])
    return ""


class FencedSink:
    """A sink whose every write renews this sync's lease in the same bundle (see above)."""

    def __init__(self, sink: GristSink, lease: Lease, clock: Callable[[], float]):
        self.sink = sink
        self.lease = lease
        self.clock = clock
        self.renewed = clock()  # the lease was just taken

    async def fetch_table(self, table_id: str) -> Columns:
        return await self.sink.fetch_table(table_id)

    def _renewal(self, checkpoint: Stored | None) -> list[Any]:
        self.renewed = self.clock()
        record: dict[str, Any] = {"Expire": self.renewed + LEASE_S}
        if checkpoint is not None:
            record["Reprise"] = checkpoint.to_json()
        return ["UpdateRecord", TABLE, self.lease.row_id, record]

    async def apply(self, actions: list[list[Any]], checkpoint: Stored | None = None) -> list[Any]:
        if not actions and checkpoint is None:
            return []
        return (await self._fenced([*actions, self._renewal(checkpoint)]))[: len(actions)]

    async def renew(self) -> None:
        await self._fenced([self._renewal(None)])

    async def keep(self) -> None:
        """Renew the lease when half of it went by without a write (a long listing writes nothing)."""
        if self.clock() - self.renewed >= LEASE_S / 2:
            await self.renew()

    async def finish(self, actions: list[list[Any]]) -> list[Any]:
        """The last bundle of a sync that ended well: its results, and the lease given back
        (the row stays, expired and without checkpoint: see the module's docstring)."""
        done = ["UpdateRecord", TABLE, self.lease.row_id, {"Expire": 0, "Reprise": ""}]
        return (await self._fenced([*actions, done]))[: len(actions)]

    async def release(self, checkpoint: Stored) -> None:
        """A job that stops early frees the lease and leaves its checkpoint for the next one."""
        try:
            await self._fenced([["UpdateRecord", TABLE, self.lease.row_id, {"Expire": 0, "Reprise": checkpoint.to_json()}]])
        except errors.OTPError:
            pass  # lease already taken over: the other sync carries on

    async def _fenced(self, actions: list[list[Any]]) -> list[Any]:
        try:
            return await self.sink.apply(actions)
        except errors.GristWriteError:
            if not any(r["id"] == self.lease.row_id for r in await _rows(self.sink, self.lease.number)):
                raise errors.lease_lost(self.lease.number) from None
            raise
