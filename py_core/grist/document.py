"""Read what the Grist document holds (`DocState`, see `meta.py`) through a sink."""

from __future__ import annotations

import asyncio

from .meta import JOURNALS, META_TABLES, DocState, GristColumn, meta_race_repairs, meta_table_actions, parse_options
from .sink import GristSink, records


async def load_state(sink: GristSink) -> DocState:
    """Grist's tables and columns, the document's timezone and OTP's own tables (all asked at
    once: in the widget each read is a round trip through the worker's bridge)."""
    tables, columns, info = (records(t) for t in await asyncio.gather(
        sink.fetch_table("_grist_Tables"), sink.fetch_table("_grist_Tables_column"), sink.fetch_table("_grist_DocInfo")))
    timezone = (info[0].get("timezone") if info else None) or "Europe/Paris"
    state = DocState(
        tables={t["id"]: t["tableId"] for t in tables if t.get("tableId")},
        columns={
            c["id"]: GristColumn(
                ref=c["id"],
                table_ref=c["parentId"],
                col_id=c["colId"],
                type=c.get("type") or "Any",
                label=c.get("label") or "",
                widget_options=parse_options(c.get("widgetOptions")),
                is_formula=bool(c.get("isFormula")),
                visible_col=c.get("visibleCol") or 0,
            )
            for c in columns
        },
        timezone=timezone,
    )
    names = [name for name in META_TABLES if name not in JOURNALS and state.table_ref(name) is not None]
    for name, table in zip(names, await asyncio.gather(*(sink.fetch_table(name) for name in names))):
        state.meta[name] = records(table)
    return state


async def ensure_meta_tables(sink: GristSink, doc: DocState) -> DocState:
    """OTP's own tables made (or completed), every job's first write; two jobs making them at once
    keep the first ones (`meta_race_repairs`). Returns the state, reloaded if anything was made."""
    actions = meta_table_actions(doc)
    if actions:
        repairs = meta_race_repairs(actions, await sink.apply(actions))
        if repairs:
            await sink.apply(repairs)
        doc = await load_state(sink)
    return doc
