"""The command line's HTTP client, on httpx: DS's transport (`Transport`) and Grist's REST calls.

httpx is imported here only, lazily (the `[cli]` extra): the widget never imports this module.
"""

from __future__ import annotations

from typing import Any

from ..ds.transport import REQUEST_TIMEOUT_S, NetworkError, Response

GRIST_TIMEOUT_S = 300.0  # a large bundle (a page of 100 dossiers and their child rows) may take long


class HttpxTransport:
    """One connection pool for the run (keep-alive to DS and to Grist). Use as `async with`."""

    def __init__(self, timeout: float = REQUEST_TIMEOUT_S, *, transport: Any = None):
        import httpx

        self._httpx = httpx
        self.timeout = timeout
        self.client = httpx.AsyncClient(timeout=timeout, transport=transport, follow_redirects=False)

    async def __aenter__(self) -> HttpxTransport:
        return self

    async def __aexit__(self, *_exc: Any) -> None:
        await self.client.aclose()

    async def post(self, url: str, headers: dict[str, str], body: bytes) -> Response:
        """DS's transport: `NetworkError` when no HTTP answer came (the client retries)."""
        return await self.request("POST", url, headers, body)

    async def get(self, url: str, headers: dict[str, str]) -> Response:
        """DS's public prefill API: tracking by prefill tokens."""
        return await self.request("GET", url, headers)

    async def request(self, method: str, url: str, headers: dict[str, str], body: bytes | None = None,
                      timeout: float | None = None) -> Response:
        httpx = self._httpx
        try:
            answer = await self.client.request(method, url, headers=headers, content=body,
                                               timeout=timeout or self.timeout)
        except httpx.TimeoutException as error:
            raise NetworkError(f"no answer within {timeout or self.timeout:.0f} s ({type(error).__name__})",
                               timeout=True) from None
        except httpx.HTTPError as error:
            raise NetworkError(f"{type(error).__name__}: {error}") from None
        return Response(answer.status_code, answer.content, {k.lower(): v for k, v in answer.headers.items()})
