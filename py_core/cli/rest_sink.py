"""The Grist side of `otp sync`: the core's `GristSink` over Grist's REST API, with an API key.

The same two calls the widget's plugin API makes (`fetchTable`, `applyUserActions`):
`GET /api/docs/<doc>/tables/<table>/data` and `POST /api/docs/<doc>/apply`. A bundle Grist
refuses raises `grist_write_failed` (the lease relies on it); no answer, a key refused or a
document that does not exist raise `GristAccessError` (French, naming the document).
"""

from __future__ import annotations

import json
from typing import Any, Protocol
from urllib.parse import quote

from .. import errors
from ..ds.transport import NetworkError, Response
from ..grist.sink import Columns, written_tables
from .httpx_transport import GRIST_TIMEOUT_S


class Http(Protocol):
    async def request(self, method: str, url: str, headers: dict[str, str], body: bytes | None = None,
                      timeout: float | None = None) -> Response: ...


class GristAccessError(errors.OTPError):
    code = "grist_access"


class RestSink:
    def __init__(self, http: Http, server: str, doc_id: str, api_key: str):
        self.http, self.server, self.doc_id = http, server.rstrip("/"), doc_id
        self._headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json",
                         "Accept": "application/json"}
        self.calls = 0  # Grist requests, for the log and the benchmark

    def __repr__(self) -> str:  # never show the key
        return f"RestSink({self.server!r}, {self.doc_id!r})"

    @property
    def base(self) -> str:
        return f"{self.server}/api/docs/{quote(self.doc_id, safe='')}"

    async def _call(self, method: str, path: str, body: Any = None) -> Response:
        self.calls += 1
        data = json.dumps(body).encode("utf-8") if body is not None else None
        try:
            return await self.http.request(method, self.base + path, self._headers, data, GRIST_TIMEOUT_S)
        except NetworkError as error:
            raise grist_unreachable(self.server, self.doc_id, str(error)) from None

    async def describe(self) -> dict[str, Any]:
        """The document's name and this key's access (`owners`, `editors`, `viewers`): reads only."""
        answer = await self._call("GET", "")
        self._check_read(answer)
        return _json(answer) or {}

    async def fetch_table(self, table_id: str) -> Columns:
        answer = await self._call("GET", f"/tables/{quote(table_id, safe='')}/data")
        self._check_read(answer)
        data = _json(answer) or {"id": []}
        return {k: v for k, v in data.items() if k != "manualSort" and not k.startswith("gristHelper_")}

    async def apply(self, actions: list[list[Any]]) -> list[Any]:
        if not actions:
            return []
        answer = await self._call("POST", "/apply", actions)
        if answer.status != 200:
            error = errors.grist_write_failed(f"HTTP {answer.status}: {_error_text(answer)}", written_tables(actions))
            if answer.status in (401, 403):
                error.code = "grist_write_forbidden"
            raise error
        return (_json(answer) or {}).get("retValues") or []

    def _check_read(self, answer: Response) -> None:
        if answer.status == 200:
            return
        if answer.status in (401, 403):
            raise grist_key_refused(self.server, self.doc_id, answer.status)
        if answer.status == 404 and "document" in _error_text(answer).lower():
            raise grist_doc_not_found(self.server, self.doc_id)
        raise GristAccessError(f"Grist ({self.server}) a répondu HTTP {answer.status} pour le document {self.doc_id} : "
                               f"{_error_text(answer)[:200]}", code="grist_error")


def _json(answer: Response) -> Any:
    try:
        return json.loads(answer.body or b"null")
    except ValueError:
        return None


def _error_text(answer: Response) -> str:
    data = _json(answer)
    if isinstance(data, dict) and data.get("error"):
        return str(data["error"])[:300]
    return answer.body[:300].decode("utf-8", "replace")


def grist_unreachable(server: str, doc_id: str, detail: str) -> GristAccessError:
    return GristAccessError(f"Impossible de joindre le serveur Grist {server} (document {doc_id}) : {detail[:200]}. "
                            "Vérifiez l'adresse ([grist] server) et le réseau.", code="grist_unreachable")


def grist_key_refused(server: str, doc_id: str, status: int) -> GristAccessError:
    return GristAccessError(f"Le serveur Grist {server} refuse la clé d'API pour le document {doc_id} (HTTP {status}) : "
                            "clé erronée ou révoquée, ou document non partagé avec son propriétaire.",
                            code="grist_key_refused")


def grist_doc_not_found(server: str, doc_id: str) -> GristAccessError:
    return GristAccessError(f"Le document Grist {doc_id} n'existe pas sur {server} (ou la clé d'API n'y a pas accès). "
                            "Vérifiez son identifiant (dans son adresse, après /doc/ ou le nom de l'organisation).",
                            code="grist_doc_not_found")
