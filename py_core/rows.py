"""DS dossiers → table rows keyed by column key (pure).

A row is a dict {column key: Grist cell}. The `dossier` column holds the dossier *number*; the
planner turns it into the Grist row id of that dossier (a Ref).
"""

from __future__ import annotations

from typing import Any

from .models import Dossier
from .schema import DOSSIER_REF, POSITION, ROW_KEY, Schema, TableSpec

Row = dict[str, Any]


def dossier_rows(dossier: Dossier, schema: Schema) -> dict[str, list[Row]]:
    """All rows one dossier gives, by table key (child tables may get none)."""
    out: dict[str, list[Row]] = {}
    dossiers = schema.table("dossiers")
    out["dossiers"] = [{c.key: c.read(dossier) for c in dossiers.columns}]
    by_descriptor = {c.get("champDescriptorId"): c for c in dossier.champs + dossier.annotations}
    for key in ("champs", "annotations"):
        out[key] = [_champ_row(schema.table(key), by_descriptor, dossier.number)]
    avis = schema.table("avis")
    out["avis"] = [
        {DOSSIER_REF: dossier.number, **{c.key: c.read(item) for c in avis.columns if c.read is not None}}
        for item in dossier.raw("avis") or []
    ]
    for table in schema.tables:
        if table.key.startswith("bloc:"):
            block = by_descriptor.get(table.key.removeprefix("bloc:")) or {}
            out[table.key] = [
                {
                    **_champ_row(table, {c.get("champDescriptorId"): c for c in row.get("champs") or []}, dossier.number),
                    ROW_KEY: row.get("id"),
                    POSITION: position,
                }
                for position, row in enumerate(block.get("rows") or [], start=1)
            ]
    return out


def _champ_row(table: TableSpec, by_descriptor: dict[str, Any], number: int) -> Row:
    row: Row = {DOSSIER_REF: number}
    for column in table.columns:
        if column.read is None:
            continue
        descriptor_id = column.key.split("/", 1)[0]
        champ = by_descriptor.get(descriptor_id)
        # A champ the dossier's conditions hide is absent: an empty cell, never a shifted one.
        row[column.key] = column.read(champ) if champ is not None else None
    return row
