"""Grist's own data engine under CPython, as a `GristSink` for tests (no browser, no mock).

The grist-static npm package ships the engine (the Python code that applies every user action
in grist-core and grist-static) as a pure wheel. It is unpacked once into `.cache/` and its
`grist/` folder put on `sys.path` (its modules import each other as top-level modules).

`EngineSink` speaks exactly what the widget's bridge speaks: user actions in, `retValues` out,
`fetchTable` in Grist's column-oriented encoding; both directions cross JSON like the bridge.
A bundle that raises is reverted whole, as in Grist.
"""

from __future__ import annotations

import asyncio
import json
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from py_core import errors
from py_core.grist.sink import written_tables

ROOT = Path(__file__).resolve().parents[1]
WHEEL = ROOT / "node_modules" / "grist-static" / "dist" / "pipe" / "packages" / "grist-1.0-py3-none-any.whl"
UNPACKED = ROOT / ".cache" / "grist-engine"


def engine_missing() -> str | None:
    if not WHEEL.exists() and not (UNPACKED / "grist" / "engine.py").exists():
        return f"Grist's engine wheel not found at {WHEEL} (run `npm ci`)"
    return None


def _load_modules():
    target = UNPACKED / "grist"
    if not (target / "engine.py").exists():
        with zipfile.ZipFile(WHEEL) as wheel:
            wheel.extractall(UNPACKED)
    if str(target) not in sys.path:
        sys.path.insert(0, str(target))
    import actions  # type: ignore[import-not-found]
    import engine  # type: ignore[import-not-found]
    import useractions  # type: ignore[import-not-found]

    return engine, useractions, actions


class EngineSink:
    """A whole Grist document in memory. `fail_at` (call number → exception) injects faults."""

    def __init__(self, timezone: str = "UTC"):
        engine, self._useractions, self._actions = _load_modules()
        self.engine = engine.Engine()
        self.engine.load_empty()
        self.calls = 0
        self.applies = 0
        self.fail_at: dict[int, BaseException] = {}
        self.fail_when: list[tuple[Callable[[list[list[Any]]], bool], BaseException]] = []  # (predicate, error)
        self.before_apply: Callable[[list[list[Any]]], None] | None = None
        self.read_only = False
        self.refused_tables: set[str] = set()  # as Grist's access rules refusing updates there
        if timezone:
            self.apply_now([["AddRecord", "_grist_DocInfo", None, {"timezone": timezone}]])

    def _tick(self) -> None:
        self.calls += 1
        fault = self.fail_at.pop(self.calls, None)
        if fault is not None:
            raise fault

    async def fetch_table(self, table_id: str) -> dict[str, list[Any]]:
        self._tick()
        return self.table(table_id)

    async def apply(self, actions: list[list[Any]]) -> list[Any]:
        if not actions:
            return []
        await asyncio.sleep(0)  # a call to Grist lets the other tasks run, as the widget's does
        self._tick()
        for rule in list(self.fail_when):
            if rule[0](actions):
                self.fail_when.remove(rule)
                raise rule[1]
        if self.before_apply is not None:
            self.before_apply(actions)
        if self.read_only:
            raise errors.grist_write_failed("No write access", written_tables(actions))
        if self.refused_tables & set(written_tables(actions)):
            raise errors.grist_write_failed("Blocked by table update access rules", written_tables(actions))
        try:
            return self.apply_now(json.loads(json.dumps(actions)))
        except Exception as error:  # noqa: BLE001 - as the bridge reports a rejected bundle
            raise errors.grist_write_failed(str(error), written_tables(actions)) from None

    # -- direct access for tests (agents' edits, assertions) --------------------------------
    def apply_now(self, actions: list[list[Any]]) -> list[Any]:
        self.applies += 1
        parsed = [self._useractions.from_repr(a) for a in actions]
        return json.loads(json.dumps(self.engine.apply_user_actions(parsed).retValues))

    def table(self, table_id: str) -> dict[str, list[Any]]:
        _, _, row_ids, columns = self._actions.get_action_repr(self.engine.fetch_table(table_id))
        return json.loads(json.dumps({"id": row_ids, **columns}))

    def records(self, table_id: str) -> list[dict[str, Any]]:
        data = self.table(table_id)
        return [{name: data[name][i] for name in data} for i in range(len(data["id"]))]

    def table_ids(self) -> list[str]:
        return [t for t in self.table("_grist_Tables")["tableId"] if t]
