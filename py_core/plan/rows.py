"""DS dossiers → table rows keyed by column key (pure).

A row is a dict {column key: Grist cell}. The `dossier` column holds the dossier *number*; the
`diff.resolve_refs` turns it into the Grist row id of that dossier (a Ref).
"""

from __future__ import annotations

from typing import Any

from ..ds.models import Dossier
from .schema import DOSSIER_REF, FILE_CHAMP, FILE_POSITION, POSITION, ROW_KEY, Schema, TableSpec

Row = dict[str, Any]


def dossier_rows(dossier: Dossier, schema: Schema) -> dict[str, list[Row]]:
    """All rows one dossier gives, by table key (child tables may get none)."""
    out: dict[str, list[Row]] = {}
    dossiers = schema.table("dossiers")
    out["dossiers"] = [{c.key: c.read(dossier) for c in dossiers.columns if c.read is not None}]
    by_descriptor = {c.get("champDescriptorId"): c for c in dossier.champs + dossier.annotations}
    for key in ("champs", "annotations"):
        out[key] = [_champ_row(schema.table(key), by_descriptor, dossier.number)]
    avis = schema.table("avis")
    out["avis"] = [
        {DOSSIER_REF: dossier.number, **{c.key: c.read(item) for c in avis.columns if c.read is not None}}
        for item in dossier.raw("avis") or []
    ]
    out["fichiers"] = file_rows(dossier.number, dossier.champs + dossier.annotations, schema.table("fichiers"), schema.labels)
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


_READERS: dict[int, tuple[TableSpec, list[tuple[str, str, Any, bool]]]] = {}


def _readers(table: TableSpec) -> list[tuple[str, str, Any, bool]]:
    """(column key, descriptor id, reader, is Bool) of a champ table, worked out once per table."""
    cached = _READERS.get(id(table))
    if cached is None or cached[0] is not table:
        readers = [(c.key, c.key.split("/", 1)[0], c.read, c.type == "Bool") for c in table.columns if c.read is not None]
        if len(_READERS) > 64:
            _READERS.clear()
        cached = _READERS[id(table)] = (table, readers)
    return cached[1]


def _champ_row(table: TableSpec, by_descriptor: dict[str, Any], number: int) -> Row:
    row: Row = {DOSSIER_REF: number}
    for key, descriptor_id, read, is_bool in _readers(table):
        champ = by_descriptor.get(descriptor_id)
        # A champ the dossier's conditions hide is absent: an empty cell, never a shifted one.
        value = read(champ) if champ is not None else None
        row[key] = bool(value) if is_bool else value  # Grist's Bool has no empty
    return row


def file_rows(number: int, champs: list[dict[str, Any]], table: TableSpec, labels: dict[str, str]) -> list[Row]:
    """One row per file of every file champ, top-level or in a block row; `labels`: the
    champs' labels by descriptor id (`Schema.labels`: the form's, not asked of DS per dossier)."""
    readers = [c for c in table.columns if c.read is not None and c.key != DOSSIER_REF]
    out: list[Row] = []
    for champ in champs:
        if champ.get("files"):
            where = champ.get("champDescriptorId") or ""
            out += _files(number, champ, where, labels.get(where, ""), readers)
        for row in champ.get("rows") or []:
            for sub in row.get("champs") or []:
                if sub.get("files"):
                    out += _files(number, sub, f"{sub.get('champDescriptorId')}|{row.get('id')}",
                                  labels.get(sub.get("champDescriptorId") or "", ""), readers)
    return out


def _files(number: int, champ: dict[str, Any], where: str, label: str, readers: list) -> list[Row]:
    return [{DOSSIER_REF: number, FILE_CHAMP: where, FILE_POSITION: position, "champ": label,
             **{c.key: c.read(item) for c in readers}}
            for position, item in enumerate(champ.get("files") or [], start=1)]
