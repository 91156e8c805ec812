"""Grist identifiers derived from DS labels: valid, unique, stable and readable in formulas.

Grist ids are ASCII letters, digits and `_`, start with a letter, are compared without regard to
case, and exclude Python keywords and Grist's reserved names. Ids are chosen once; after that the
column registry keeps them, so a label change never renames a column.
"""

from __future__ import annotations

import keyword
import re
import unicodedata

MAX_ID_LENGTH = 40
_RESERVED = {"id", "manualsort"}
_NON_IDENT = re.compile(r"[^0-9A-Za-z]+")


def ascii_words(label: str) -> str:
    """« Coût total (€) du projet » → `Cout_total_du_projet`."""
    decomposed = unicodedata.normalize("NFKD", label.replace("œ", "oe").replace("Œ", "Oe").replace("æ", "ae"))
    plain = decomposed.encode("ascii", "ignore").decode("ascii")
    return _NON_IDENT.sub("_", plain).strip("_")


def _shorten(ident: str, limit: int) -> str:
    if len(ident) <= limit:
        return ident
    cut = ident[:limit]
    if "_" in cut[limit // 2 :]:
        cut = cut[: cut.rindex("_")]
    return cut.rstrip("_")


def column_id(label: str, taken: set[str], *, fallback: str = "Champ") -> str:
    """A new column id for `label`, unique against `taken` (lower-cased ids; updated in place)."""
    base = _shorten(ascii_words(label), MAX_ID_LENGTH) or fallback
    if base[0].isdigit():
        base = "c" + base
    if keyword.iskeyword(base) or base.lower() in _RESERVED or base.startswith("gristHelper"):
        base = base + "_"
    return _unique(base, taken)


def table_id(name: str, taken: set[str]) -> str:
    """A new table id: like a column id, starting with a capital letter."""
    base = _shorten(ascii_words(name), MAX_ID_LENGTH) or "Table"
    if not base[0].isalpha():
        base = "T" + base
    base = base[0].upper() + base[1:]
    return _unique(base, taken)


def _unique(base: str, taken: set[str]) -> str:
    candidate, n = base, 1
    while candidate.lower() in taken:
        n += 1
        candidate = f"{base}_{n}"
    taken.add(candidate.lower())
    return candidate
