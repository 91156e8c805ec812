"""The Grist side, behind a small interface: read a table, apply user actions.

`BridgeSink` speaks to the grist-plugin API through a JS function (the widget's worker posts
to the main thread, which calls `grist.docApi`). Arguments and results cross as JSON text.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from .. import errors

Columns = dict[str, list[Any]]  # Grist's column-oriented table: {"id": [...], "Col": [...]}


class GristSink(Protocol):
    async def fetch_table(self, table_id: str) -> Columns: ...

    async def apply(self, actions: list[list[Any]]) -> list[Any]:
        """Apply user actions in one bundle; return their `retValues`."""
        ...


class BridgeSink:
    def __init__(self, call: Callable[[str, str], Awaitable[str]]):
        self._call = call
        self.calls = 0

    async def _invoke(self, method: str, args: list[Any]) -> Any:
        self.calls += 1
        text = await self._call(method, json.dumps(args))
        return json.loads(str(text)) if text not in (None, "") else None

    async def fetch_table(self, table_id: str) -> Columns:
        return await self._invoke("fetchTable", [table_id]) or {"id": []}

    async def apply(self, actions: list[list[Any]]) -> list[Any]:
        if not actions:
            return []
        try:
            result = await self._invoke("applyUserActions", [actions])
        except Exception as error:  # noqa: BLE001 - the JS side rejects with an Error
            raise errors.grist_write_failed(str(error), written_tables(actions)) from None
        return (result or {}).get("retValues") or []


def written_tables(actions: list[list[Any]]) -> list[str]:
    """The user tables a bundle writes to (OTP's own state tables last): named in Grist's refusal."""
    names = list(dict.fromkeys(a[1] for a in actions if len(a) > 1 and isinstance(a[1], str) and not a[1].startswith("_grist")))
    return sorted(names, key=lambda n: n.startswith("OTP_"))


def records(columns: Columns) -> list[dict[str, Any]]:
    """Column-oriented → list of dicts (with `id`)."""
    ids = columns.get("id") or []
    names = list(columns)
    return [{name: columns[name][i] for name in names} for i in range(len(ids))]
