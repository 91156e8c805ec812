"""From Grist back to DS (pure): what an annotation's cell becomes in DS's `AnnotationValueInput`.

DS takes exactly one key per value, named after the annotation's type (`@oneOf`), and refuses
a value that does not fit it; OTP checks every cell before anything leaves, so that the agent
sees in the preview, in French, what would not be sent and why. A cell a formula computes is
sent as its result; a formula in error is not sent. See `../shared/ds/README.md`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

INT32 = range(-(2**31), 2**31)

# descriptor kind → the key of AnnotationValueInput (text-like kinds take their text)
TEXT_KEYS = {"Text": "text", "Textarea": "textarea", "Email": "email", "Phone": "phone", "Iban": "iban",
             "Formatted": "formatted"}
SENDABLE = {*TEXT_KEYS, "Checkbox", "YesNo", "Date", "Datetime", "IntegerNumber", "DecimalNumber", "DropDownList",
            "MultipleDropDownList", "Civilite"}


@dataclass(frozen=True)
class Value:
    """An annotation's value for DS, or why it cannot be sent (`problem`, French)."""

    input: dict[str, Any] | None = None
    problem: str = ""


def annotation_value(kind: str, cell: Any, *, options: list[str] | None = None, other_option: bool = False) -> Value:
    """`kind`: the annotation's descriptor kind (`Text`, `IntegerNumber`…); `cell`: the Grist cell
    (a Date as seconds at midnight UTC, a DateTime as seconds, a ChoiceList as ["L", …])."""
    if isinstance(cell, list) and cell[:1] == ["E"]:
        return Value(problem="la formule de cette cellule est en erreur : rien n'est envoyé")
    if kind not in SENDABLE:
        return Value(problem="DS ne permet pas d'écrire ce type d'annotation par l'API")
    if kind in TEXT_KEYS:
        return Value({TEXT_KEYS[kind]: "" if cell is None else str(cell)})
    if kind in ("Checkbox", "YesNo"):
        return _boolean("checkbox" if kind == "Checkbox" else "yesNo", cell)
    if cell in (None, "") or cell == ["L"]:
        return Value(problem="une annotation de ce type ne peut pas être vidée par l'API de DS")
    return _typed(kind, cell, options or [], other_option)


def _boolean(key: str, cell: Any) -> Value:
    if isinstance(cell, bool) or cell is None:
        return Value({key: bool(cell)})
    text = str(cell).strip().lower()
    if text in ("oui", "true", "vrai", "1"):
        return Value({key: True})
    if text in ("non", "false", "faux", "0", ""):
        return Value({key: False})
    return Value(problem=f"« {cell} » n'est ni oui ni non")


def _typed(kind: str, cell: Any, options: list[str], other_option: bool) -> Value:
    if kind == "IntegerNumber":
        number = _number(cell)
        if number is None or not float(number).is_integer():
            return Value(problem=f"« {cell} » n'est pas un nombre entier")
        if int(number) not in INT32:
            return Value(problem=f"{int(number)} est trop grand pour DS (entier sur 32 bits)")
        return Value({"integerNumber": int(number)})
    if kind == "DecimalNumber":
        number = _number(cell)
        return Value({"decimalNumber": float(number)}) if number is not None else Value(problem=f"« {cell} » n'est pas un nombre")
    if kind in ("Date", "Datetime"):
        moment = _moment(cell)
        if moment is None:
            return Value(problem=f"« {cell} » n'est pas une date")
        return Value({"date": moment.date().isoformat()} if kind == "Date" else {"datetime": moment.isoformat()})
    if kind == "Civilite":
        return Value({"civilite": cell}) if cell in ("M", "Mme") else Value(problem=f"« {cell} » : la civilité est M ou Mme")
    if kind == "DropDownList":
        if options and cell not in options and not other_option:
            return Value(problem=f"« {cell} » n'est pas une des options de DS")
        return Value({"dropDownList": str(cell)})
    values = [str(v) for v in (cell[1:] if isinstance(cell, list) and cell[:1] == ["L"] else [cell])]
    unknown = [v for v in values if options and v not in options]
    if unknown:
        return Value(problem=f"« {unknown[0]} » n'est pas une des options de DS")
    return Value({"multipleDropDownList": values})


def _number(cell: Any) -> float | None:
    if isinstance(cell, bool):
        return None
    if isinstance(cell, (int, float)):
        return float(cell) if math.isfinite(cell) else None
    try:
        number = float(str(cell).strip().replace("\u202f", "").replace(" ", "").replace(",", "."))
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _moment(cell: Any) -> datetime | None:
    if isinstance(cell, bool):
        return None
    if isinstance(cell, (int, float)):
        return datetime.fromtimestamp(cell, tz=timezone.utc)
    try:
        moment = datetime.fromisoformat(str(cell).strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class Change:
    """One sendable value, three ways: what DS had at the last copy (`base`), the agent's cell,
    and what DS has now (read again just before sending)."""

    outcome: str  # "unchanged" | "send" | "conflict" | "already" (DS has the agent's value)
    base: Any = None
    cell: Any = None
    current: Any = None


def three_way(base: Any, cell: Any, current: Any, same=lambda a, b: a == b) -> Change:
    """Never a silent overwrite: a value is sent only when the agent changed it (`cell` ≠ `base`)
    and DS did not (`current` = `base`); when both changed it is a conflict, unless DS already
    has the agent's value. `same` compares cells as Grist stores them."""
    if same(cell, base):
        return Change("unchanged", base, cell, current)
    if same(current, base):
        return Change("send", base, cell, current)
    if same(current, cell):
        return Change("already", base, cell, current)
    return Change("conflict", base, cell, current)
