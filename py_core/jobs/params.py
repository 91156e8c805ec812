"""What the agent asks of a job, validated (French errors for bad input)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .. import constants, errors
from ..plan.filters import Filters, parse_filters


@dataclass(frozen=True)
class SyncParams:
    number: int
    token: str
    endpoint: str
    keep_deleted: bool = False  # flag dossiers deleted in DS instead of removing them
    ds_site: str = ""  # the DS site links point at (scheme://host); default: the API's origin
    holder: str = ""  # who holds the lease: "<browser id>/<tab id>"
    filters: Filters = field(default_factory=Filters)  # which dossiers the agent wants
    scheduled: bool = False  # run by `otp sync` (no agent at the screen): said in the history

    def __repr__(self) -> str:  # never show the token
        return f"SyncParams(number={self.number}, endpoint={self.endpoint!r})"


def parse_params(raw: dict[str, Any]) -> SyncParams:
    """Validate what the agent typed; raise an `InputError` with a French message."""
    number_text = str(raw.get("demarche") or "").strip()
    if not number_text.isdigit() or int(number_text) <= 0 or len(number_text) > constants.DEMARCHE_MAX_DIGITS:
        raise errors.invalid_number(number_text)
    token = str(raw.get("token") or "").strip()
    if not token:
        raise errors.empty_token()
    endpoint = str(raw.get("endpoint") or "").strip()
    parts = urlsplit(endpoint)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise errors.invalid_endpoint()
    site = str(raw.get("ds_site") or "").strip().rstrip("/")
    if site and (urlsplit(site).scheme not in ("https", "http") or not urlsplit(site).netloc):
        raise errors.invalid_endpoint()
    holder = str(raw.get("holder") or "").strip()[:80] or f"{secrets.token_hex(6)}/{secrets.token_hex(4)}"
    return SyncParams(int(number_text), token, endpoint, keep_deleted=bool(raw.get("keep_deleted")),
                      ds_site=ds_base_url(site) if site else "", holder=holder,
                      filters=parse_filters(raw.get("filters")), scheduled=bool(raw.get("scheduled")))


def ds_base_url(endpoint: str) -> str:
    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc}"


@dataclass(frozen=True)
class SendParams:
    """« Envoyer vers DS »: the procedure and token (as for a copy), who sends, and what the agent
    saw and chose in the preview."""

    sync: SyncParams
    instructeur: str = ""  # the instructeur's e-mail (DS records the change as theirs)
    notify: bool = True  # False: « Ne pas notifier l'usager » ticked
    approved: dict[str, str] = field(default_factory=dict)  # item ref → its values as previewed (`Item.seen`)
    choices: dict[str, str] = field(default_factory=dict)  # conflict ref → "send" | "keep"

    def __repr__(self) -> str:  # never show the token
        return f"SendParams(number={self.sync.number}, instructeur={self.instructeur!r})"


def parse_send_params(raw: dict[str, Any]) -> SendParams:
    approved, choices = raw.get("approved") or {}, raw.get("choices") or {}
    if not isinstance(approved, dict) or not isinstance(choices, dict):
        raise errors.invalid_filters("aperçu de l'envoi illisible")
    return SendParams(parse_params(raw), str(raw.get("instructeur") or "").strip(), notify=not raw.get("no_notification"),
                      approved={str(k): str(v) for k, v in approved.items()},
                      choices={str(k): str(v) for k, v in choices.items() if v in ("send", "keep")})
