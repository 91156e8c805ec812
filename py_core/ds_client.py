"""The DS GraphQL client: one request = one call; errors become French `DSError`s.

Pagination helpers are async generators so the sync loop can write a page while the next one
is on its way (later), and count requests for the figures.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from . import errors
from .models import DeletedDossier, Dossier, DossierPage, Structure
from .queries import document
from .transport import NetworkError, Transport

DEFAULT_ENDPOINT = "https://demarche.numerique.gouv.fr/api/v2/graphql"
PAGE_SIZE = 100  # DS silently caps `first` at 100
EPOCH = "1970-01-01T00:00:00Z"


class DSClient:
    def __init__(self, endpoint: str, token: str, transport: Transport):
        self.endpoint = endpoint
        self._token = token
        self.transport = transport
        self.request_count = 0

    def __repr__(self) -> str:  # never show the token
        return f"DSClient({self.endpoint!r})"

    async def execute(self, query_name: str, variables: dict[str, Any], *, number: int) -> dict[str, Any]:
        body = json.dumps(
            {"query": document(query_name), "variables": variables, "operationName": _operation(query_name)}
        ).encode("utf-8")
        headers = {
            "Authorization": f"Bearer {self._token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        self.request_count += 1
        try:
            response = await self.transport.post(self.endpoint, headers, body)
        except NetworkError as error:
            raise errors.ds_unreachable(self.endpoint, cors=error.cors) from None
        return interpret(response.status, response.body, response.header("ratelimit-reset"), number)

    async def structure(self, number: int) -> Structure:
        data = await self.execute("structure", {"number": number}, number=number)
        return Structure.from_response(data)

    async def dossier_pages(self, number: int, updated_since: str | None) -> AsyncIterator[DossierPage]:
        after = None
        while True:
            variables = {"number": number, "first": PAGE_SIZE, "after": after, "updatedSince": updated_since or EPOCH}
            data = await self.execute("dossiers", variables, number=number)
            page = DossierPage.model_validate(data["demarche"]["dossiers"])
            yield page
            if not page.page_info.has_next_page or not page.page_info.end_cursor:
                return
            after = page.page_info.end_cursor

    async def refresh_pages(self, number: int) -> AsyncIterator[list[dict[str, Any]]]:
        """Every dossier's labels and file URLs (light), page by page."""
        after = None
        while True:
            data = await self.execute("refresh", {"number": number, "first": PAGE_SIZE, "after": after}, number=number)
            connection = data["demarche"]["dossiers"]
            yield connection["nodes"]
            info = connection["pageInfo"]
            if not info["hasNextPage"] or not info["endCursor"]:
                return
            after = info["endCursor"]

    async def deleted_since(self, number: int, since: str) -> list[DeletedDossier]:
        """Deleted and pending-deletion dossiers since `since`, all pages of both connections."""
        found: list[DeletedDossier] = []
        cursors: dict[str, str | None] = {"deletedDossiers": None, "pendingDeletedDossiers": None}
        active = {"deletedDossiers": True, "pendingDeletedDossiers": True}
        while any(active.values()):
            variables = {
                "number": number,
                "deletedSince": since,
                "after": cursors["deletedDossiers"],
                "pendingAfter": cursors["pendingDeletedDossiers"],
                "withDeleted": active["deletedDossiers"],
                "withPending": active["pendingDeletedDossiers"],
            }
            data = await self.execute("deleted_dossiers", variables, number=number)
            for name in list(cursors):
                if not active[name]:
                    continue
                connection = data["demarche"][name]
                found.extend(DeletedDossier.model_validate(node) for node in connection["nodes"])
                info = connection["pageInfo"]
                cursors[name] = info["endCursor"]
                active[name] = bool(info["hasNextPage"] and info["endCursor"])
        return found


def _operation(query_name: str) -> str:
    return "otp" + "".join(part.capitalize() for part in query_name.split("_"))


def interpret(status: int, body: bytes, rate_reset: str | None, number: int) -> dict[str, Any]:
    """Turn an HTTP answer of DS into `data`, or raise the matching French error (pure)."""
    if status == 429:
        raise errors.rate_limited(_seconds_until(rate_reset))
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        if status >= 500:
            raise errors.ds_server_error(status) from None
        raise errors.ds_bad_response(f"HTTP {status}") from None
    if not isinstance(payload, dict):
        raise errors.ds_bad_response(f"HTTP {status}")
    problems = payload.get("errors") or []
    first = problems[0] if problems and isinstance(problems[0], dict) else {}
    message = str(first.get("message", ""))
    code = str((first.get("extensions") or {}).get("code", ""))
    if status == 401:
        raise errors.token_expired()
    if status == 403:
        if "forbidden network" in message.lower():
            raise errors.forbidden_network(message)
        raise errors.token_rejected()
    if status >= 500:
        raise errors.ds_server_error(status, message)
    if problems:
        if code == "not_found" or "not found" in message.lower():
            raise errors.demarche_not_found(number)
        if code == "unauthorized" and "hidden due to permissions" in message:
            raise errors.demarche_not_accessible(number)
        if payload.get("data") is None or code == "timeout":
            raise errors.ds_query_error(message, code)
    data = payload.get("data")
    if not isinstance(data, dict):
        raise errors.ds_bad_response(f"HTTP {status} sans données")
    return data


def _seconds_until(reset: str | None) -> int | None:
    import time

    try:
        return max(1, int(float(reset or "") - time.time()))
    except ValueError:
        return None
