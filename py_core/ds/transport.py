"""HTTP transports: the seam between the DS client and the network.

A transport only moves bytes: `post(url, headers, body) -> Response`. It raises
`NetworkError` when no HTTP answer arrived (connection refused, DNS, CORS block). Retries and
DS's rate limit are the client's (`client.py`); tests give it a transport of their own.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    seconds: float | None = None  # the round trip as the transport timed it (None: the client times it)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


REQUEST_TIMEOUT_S = 40.0  # DS cuts a query at 30 s: a request silent for 40 s is dead


class NetworkError(Exception):
    """No HTTP response. `cors` is True when the server answered but the browser hid it;
    `timeout` when nothing came back in time (the request was aborted)."""

    def __init__(self, message: str, *, cors: bool = False, timeout: bool = False):
        super().__init__(message)
        self.cors = cors
        self.timeout = timeout


class Transport(Protocol):
    async def post(self, url: str, headers: dict[str, str], body: bytes) -> Response: ...

    # DS's public prefill API also reads (`GET`, tracking by prefill tokens): transports have
    # `async def get(self, url, headers) -> Response`; following is skipped where one has not


class UrllibTransport:
    """CPython transport on the standard library (tests, command line)."""

    def __init__(self, timeout: float = REQUEST_TIMEOUT_S):
        self.timeout = timeout

    def _post_blocking(self, url: str, headers: dict[str, str], body: bytes | None, method: str = "POST") -> Response:
        import urllib.error
        import urllib.request

        request = urllib.request.Request(url, data=body, headers=headers, method=method)
        started = time.perf_counter()  # in the thread: the event loop's own work is not counted
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                return Response(answer.status, answer.read(), _lower(answer.headers.items()), time.perf_counter() - started)
        except urllib.error.HTTPError as error:
            return Response(error.code, error.read(), _lower(error.headers.items()))
        except TimeoutError as error:
            raise NetworkError(str(error), timeout=True) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise NetworkError(str(reason), timeout=isinstance(reason, TimeoutError)) from None

    async def post(self, url: str, headers: dict[str, str], body: bytes) -> Response:
        return await asyncio.to_thread(self._post_blocking, url, headers, body)

    async def get(self, url: str, headers: dict[str, str]) -> Response:
        return await asyncio.to_thread(self._post_blocking, url, headers, None, "GET")


class PyfetchTransport:
    """Pyodide transport on the browser's fetch. Imported lazily: CPython never loads it."""

    def __init__(self, timeout: float = REQUEST_TIMEOUT_S):
        self.timeout = timeout

    async def post(self, url: str, headers: dict[str, str], body: bytes) -> Response:
        return await self._fetch("POST", url, headers, body)

    async def get(self, url: str, headers: dict[str, str]) -> Response:
        return await self._fetch("GET", url, headers, None)

    async def _fetch(self, method: str, url: str, headers: dict[str, str], body: bytes | None) -> Response:
        import js  # type: ignore[import-not-found]
        from pyodide.http import pyfetch  # type: ignore[import-not-found]

        controller = js.AbortController.new()
        timer = js.setTimeout(controller.abort.bind(controller), int(self.timeout * 1000))
        options = {"body": body.decode("utf-8")} if body is not None else {}
        try:
            answer = await pyfetch(url, method=method, headers=headers, signal=controller.signal, **options)
            payload = await answer.bytes()
        except Exception as error:  # noqa: BLE001 - fetch rejects with a JS TypeError/AbortError
            if controller.signal.aborted:
                raise NetworkError(f"no answer within {self.timeout:.0f} s", timeout=True) from None
            raise NetworkError(str(error), cors=await _reachable_without_cors(url)) from None
        finally:
            js.clearTimeout(timer)
        answer_headers = {}
        for name in ("content-type", "ratelimit-remaining", "ratelimit-reset", "retry-after", "date"):
            value = answer.js_response.headers.get(name)
            if value is not None:
                answer_headers[name] = str(value)
        return Response(answer.status, payload, answer_headers)


async def _reachable_without_cors(url: str) -> bool:
    """A no-cors probe resolves when a server answered: then CORS, not the network, failed."""
    try:
        import js  # type: ignore[import-not-found]
        from pyodide.ffi import to_js  # type: ignore[import-not-found]

        await js.fetch(url, to_js({"mode": "no-cors", "method": "GET"}, dict_converter=js.Object.fromEntries))
        return True
    except Exception:  # noqa: BLE001
        return False


def _lower(items) -> dict[str, str]:
    return {name.lower(): value for name, value in items}
