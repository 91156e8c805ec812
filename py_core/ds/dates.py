"""DS's dates (`ISO8601DateTime`, whole seconds) as OTP compares and asks for them (pure)."""

from __future__ import annotations

from datetime import datetime, timezone

from ..grist.values import datetime_cell

EPOCH = "1970-01-01T00:00:00Z"  # `updatedSince` of a full copy: every dossier, ordered by last modification


def iso_second(seconds: float) -> str:
    """An `ISO8601DateTime` for DS, to the second below."""
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def shift(iso: str, seconds: float) -> str:
    return iso_second((datetime_cell(iso) or 0) + seconds)


def later(a: str, b: str) -> bool:
    return (datetime_cell(a) or 0) > (datetime_cell(b) or 0)
