"""The fake DS as a transport, without a socket: the same answers as over HTTP (the real
schema, faults, latency), its waits slept on the client's clock — so tests of the DS client
run in no wall-clock time (httpx's `MockTransport` is the model)."""

from __future__ import annotations

import email.utils
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from py_core.ds.transport import REQUEST_TIMEOUT_S, NetworkError, Response

from .server import FakeDSServer


class FakeDSTransport:
    def __init__(self, server: FakeDSServer, sleep: Callable[[float], Awaitable[None]], *,
                 timeout: float = REQUEST_TIMEOUT_S):
        self.server = server
        self.sleep = sleep
        self.timeout = timeout

    async def get(self, url: str, headers: dict[str, str]) -> Response:
        return self._public("GET", url, headers, b"")

    def _public(self, method: str, url: str, headers: dict[str, str], body: bytes) -> Response:
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        answer = self.server.answer_public(method, path, headers.get("Content-Type"), body)
        return Response(answer.status, answer.body, {"content-type": answer.content_type})

    async def post(self, url: str, headers: dict[str, str], body: bytes) -> Response:
        if self.server.prefill.handles(urlsplit(url).path):
            return self._public("POST", url, headers, body)
        delay, respond = self.server.answer(urlsplit(url).path, headers.get("Authorization"), body)
        if delay >= self.timeout:
            await self.sleep(self.timeout)
            raise NetworkError(f"no answer within {self.timeout:.0f} s", timeout=True)
        if delay:
            await self.sleep(delay)
        answer = respond()
        names = {"content-type": answer.content_type, "date": email.utils.formatdate(self.server.store.wall(), usegmt=True),
                 **{k.lower(): v for k, v in answer.headers.items()}}
        return Response(answer.status, answer.body, names)
