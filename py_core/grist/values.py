"""Grist cell encodings (what `BulkAddRecord` takes and `fetchTable` gives back)."""

from __future__ import annotations

import math
from datetime import date, datetime, timezone
from typing import Any

_EPOCH_DATE = date(1970, 1, 1)


def date_cell(iso: str | None) -> int | None:
    """Grist Date: seconds since the epoch at midnight UTC."""
    if not iso:
        return None
    try:
        return (date.fromisoformat(iso[:10]) - _EPOCH_DATE).days * 86400
    except ValueError:
        return None


def datetime_cell(iso: str | None) -> float | None:
    """Grist DateTime: seconds since the epoch (the column's time zone is only for display)."""
    if not iso:
        return None
    try:
        moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def choice_list_cell(values: list[str] | None) -> list[Any] | None:
    return ["L", *values] if values else None


def text_cell(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text if text != "" else None  # DS sends "" for blank; any other text is kept exactly


def int_cell(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(str(value).strip().replace(" ", "").replace("\u202f", ""))
    except ValueError:
        return None


def float_cell(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(str(value).replace(",", ".").replace(" ", ""))
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def same_cell(old: Any, new: Any) -> bool:
    """Equality as Grist stores it: blank text is None, numbers compare by value, lists by items."""
    if type(old) is type(new) and old == new:  # the common case, first
        return True
    if old in ("", None) and new in ("", None):
        return True
    if isinstance(old, bool) or isinstance(new, bool):
        return old is new  # False is an answer, None is none (rows give Bool columns False)
    if isinstance(old, (int, float)) and isinstance(new, (int, float)):
        return math.isclose(old, new, rel_tol=0, abs_tol=1e-6)
    if isinstance(old, str) and isinstance(new, (int, float)):
        # an integer beyond 32 bits kept as its text, or a column an agent retyped to Text
        # (Grist writes a number there as its text): the same number is no change
        return old == str(new) or _same_number(old, new)
    if isinstance(old, list) and isinstance(new, list):
        return old == new
    if isinstance(old, str) and isinstance(new, list) and new[:1] == ["L"]:
        # a ChoiceList written into a column an agent retyped to Text: Grist keeps its text
        items = new[1:]
        return old in (repr(items), repr(tuple(items)), ", ".join(map(str, items)), ",".join(map(str, items)))
    return old == new


def _same_number(text: str, number: float) -> bool:
    try:
        value = float(text.strip().replace(",", "."))
    except ValueError:
        return False
    return math.isclose(value, number, rel_tol=0, abs_tol=1e-6)


def epoch_of(cell: Any) -> float | None:
    """A DateTime cell as seconds since the epoch, whatever the column became: a number, or
    its text (a column an agent retyped to Text holds the number's text, or an ISO date)."""
    if isinstance(cell, bool) or cell is None:
        return None
    if isinstance(cell, (int, float)):
        return float(cell)
    if isinstance(cell, str):
        try:
            return float(cell.strip())
        except ValueError:
            return datetime_cell(cell.strip())
    return None
