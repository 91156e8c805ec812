"""A real HTTP server on 127.0.0.1 that answers like DS's ``/api/v2/graphql``.

Usage::

    with FakeDSServer(store, tokens={"secret": "all"}) as server:
        post(server.url, ...)

Authentication, error codes and HTTP statuses follow the DS facts in
``../shared/ds/README.md`` (read in DS's controllers and schema class).
"""

from __future__ import annotations

import email.utils
import json
import mimetypes
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import unquote, urlsplit

from graphql import DocumentNode, GraphQLError, GraphQLSyntaxError, execute, parse, specified_rules, validate

from .prefill import PrefillDesk
from .schema import make_context, make_schema
from .store import FakeDSStore

GRAPHQL_PATH = "/api/v2/graphql"
FILES_PREFIX = "/files/"
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Headers": "authorization, content-type",
    "Access-Control-Allow-Methods": "POST, GET, OPTIONS",
    "Access-Control-Expose-Headers": "RateLimit-Remaining, RateLimit-Reset, Date",
    "Access-Control-Max-Age": "600",
}


@dataclass
class _Fault:
    status: int | None  # None: answer normally (after ``delay``)
    body: str
    content_type: str
    headers: dict[str, str]
    remaining: int
    match: "Callable[[RecordedRequest], bool] | None" = None  # only requests it accepts
    delay: float = 0.0  # seconds to wait before answering
    partial: "Callable[[dict], dict] | None" = None  # rewrites a normal answer (status None)


@dataclass
class Answer:
    status: int
    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class RecordedRequest:
    """One request the server received (the token itself is never recorded)."""

    method: str
    path: str
    operation_name: str | None = None
    variables: dict | None = None
    status: int = 0
    authenticated: bool = False
    error_codes: list[str] = field(default_factory=list)
    seconds: float = 0.0  # the time the fake took to answer (its injected latency excluded)
    received: float = field(default_factory=time.monotonic)  # when it came (`time.monotonic`)
    answered: float = 0.0  # when its answer was ready (latency included)

    # dict-style access for convenience in tests: request["status"]
    def __getitem__(self, key: str) -> Any:
        aliases = {"operationName": "operation_name"}
        return getattr(self, aliases.get(key, key))


def graphql_error_body(message: str, code: str) -> dict:
    return {"errors": [{"message": message, "extensions": {"code": code}}], "data": None}


class FakeDSServer:
    """Fake DS GraphQL endpoint.

    ``tokens`` maps a bearer token to the procedure numbers it may read
    (an iterable of ints) or ``"all"``. ``expired_tokens`` answer HTTP 401;
    ``read_only_tokens`` read, and are refused every mutation in its payload.
    ``latency``: seconds every GraphQL request waits before its answer (a DS far away; the
    wait holds no lock, so concurrent requests overlap as on the real API).
    """

    def __init__(self, store: FakeDSStore, tokens: Mapping[str, Iterable[int] | str] | None = None,
                 expired_tokens: Iterable[str] = (), read_only_tokens: Iterable[str] = (), cors: bool = True, port: int = 0,
                 host: str = "127.0.0.1", latency: float = 0.0):
        self.store = store
        self.latency = latency  # seconds every GraphQL answer waits (a distant DS); settable
        self.tokens = {t: (v if v == "all" else frozenset(v)) for t, v in (tokens or {}).items()}
        self.expired_tokens = set(expired_tokens)
        self.read_only_tokens = set(read_only_tokens)
        self.cors = cors
        self.host = host
        self.requested_port = port
        self.requests: list[RecordedRequest] = []
        self.schema = make_schema()
        self._faults: list[_Fault] = []
        self._documents: dict[str, tuple[DocumentNode, list[GraphQLError]]] = {}
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.prefill = PrefillDesk(store)  # DS's public prefill API (`prefill.py`)

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> "FakeDSServer":
        handler = type("Handler", (_Handler,), {"fake": self})
        self._httpd = _Server((self.host, self.requested_port), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="fake-ds", daemon=True)
        self._thread.start()
        self.prefill.base_url = self.base_url
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "FakeDSServer":
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("server not started")
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The GraphQL endpoint, e.g. http://127.0.0.1:PORT/api/v2/graphql."""
        return self.base_url + GRAPHQL_PATH

    # -- fault switches ------------------------------------------------------
    def fail_next(self, status: int = 500, body: str | None = None,
                  content_type: str = "application/json", count: int = 1,
                  headers: Mapping[str, str] | None = None,
                  match: Callable[[RecordedRequest], bool] | None = None) -> None:
        """Make the next ``count`` GraphQL requests answer this HTTP error; with ``match``,
        only requests it accepts (e.g. ``lambda r: r.variables.get("after")``: a later page)."""
        if body is None:
            body = json.dumps(graphql_error_body("Internal Server Error", "internal_server_error"))
        with self._lock:
            self._faults.append(_Fault(status, body, content_type, dict(headers or {}), count, match))

    def delay_next(self, seconds: float, count: int = 1,
                   match: Callable[[RecordedRequest], bool] | None = None) -> None:
        """Make the next ``count`` GraphQL requests (those ``match`` accepts) wait ``seconds``
        before being answered normally: a slow DS, or time to act in the middle of a sync."""
        with self._lock:
            self._faults.append(_Fault(None, "", "", {}, count, match, seconds))

    def partial_next(self, node: int = 0, code: str = "internal_server_error", count: int = 1,
                     match: Callable[[RecordedRequest], bool] | None = None) -> None:
        """The next ``count`` matching dossier pages come back as DS sends a resolver failure:
        HTTP 200, the champs of node ``node`` (-1: the last) null, and an error with its ``path``."""
        def corrupt(body: dict) -> dict:
            nodes = (((body.get("data") or {}).get("demarche") or {}).get("dossiers") or {}).get("nodes") or []
            index = node % len(nodes) if nodes else 0  # -1: the last one
            if index < len(nodes) and isinstance(nodes[index], dict):
                nodes[index]["champs"] = None
            body.setdefault("errors", []).append({
                "message": "Internal error while resolving champs", "extensions": {"code": code},
                "path": ["demarche", "dossiers", "nodes", index, "champs"]})
            return body
        with self._lock:
            self._faults.append(_Fault(None, "", "", {}, count, match, partial=corrupt))

    def rate_limit_next(self, reset_epoch: int, count: int = 1) -> None:
        """Next requests get DS's 429: plain-text body, RateLimit-* headers, no Retry-After."""
        self.fail_next(429, "Retry later\n", "text/plain", count,
                       {"RateLimit-Remaining": "0", "RateLimit-Reset": str(reset_epoch)})

    def _take_fault(self, record: RecordedRequest) -> _Fault | None:
        with self._lock:
            fault = next((f for f in self._faults if f.match is None or f.match(record)), None)
            if fault is None:
                return None
            fault.remaining -= 1
            if fault.remaining <= 0:
                self._faults.remove(fault)
            return fault

    # -- GraphQL -------------------------------------------------------------
    def _checked(self, query: str) -> tuple[DocumentNode, list[GraphQLError]]:
        """The parsed query and its validation errors, kept per query text (a client sends the
        same few queries again and again; parsing and validating them is a third of a light page)."""
        known = self._documents.get(query)
        if known is None:
            document = parse(query)
            known = document, [e for e in validate(self.schema, document, specified_rules) if not _ds_accepts(e)]
            with self._lock:
                if len(self._documents) > 64:
                    self._documents.clear()
                self._documents[query] = known
        return known

    def answer(self, path: str, authorization: str | None, body: bytes) -> tuple[float, Callable[[], Answer]]:
        """How long the server waits before answering a POST, and what it answers then (the
        query runs after the wait, on the data as it is then; recorded in `requests`): the one
        path of the HTTP handler and of `FakeDSTransport` (no socket)."""
        record = RecordedRequest("POST", path)
        if urlsplit(path).path != GRAPHQL_PATH:
            record.status = 404
            self.requests.append(record)
            return 0.0, lambda: Answer(404, b"Not Found\n", "text/plain")
        _fill_operation(record, body)
        fault = self._take_fault(record)
        delay = self.latency + (fault.delay if fault is not None else 0.0)
        return delay, lambda: self._respond(record, fault, authorization, body)

    def answer_public(self, method: str, path: str, content_type: str | None, body: bytes,
                      address: str = "127.0.0.1") -> Answer:
        """DS's public prefill API (`prefill.PrefillDesk`), recorded in `requests` (no body)."""
        reply = self.prefill.answer(method, path, content_type, body, address)
        self.requests.append(RecordedRequest(method, path, status=reply.status))
        return Answer(reply.status, reply.body(), reply.content_type)

    def _respond(self, record: RecordedRequest, fault: _Fault | None, authorization: str | None, body: bytes) -> Answer:
        if fault is not None and fault.status is not None:
            record.status = fault.status
            self.requests.append(record)
            return Answer(fault.status, fault.body.encode(), fault.content_type, dict(fault.headers))
        started = time.perf_counter()
        try:
            status, payload = self.handle_graphql(_bearer_token(authorization), body, record)
            if fault is not None and fault.partial is not None and status == 200:
                payload = fault.partial(payload)
        except Exception as exc:  # noqa: BLE001 - report like DS does in production
            status, payload = 500, graphql_error_body(f"Internal Server Error: {exc}", "internal_server_error")
        record.status = status
        record.error_codes = [e.get("extensions", {}).get("code") for e in payload.get("errors", [])]
        data = json.dumps(payload, ensure_ascii=False).encode()
        record.seconds = time.perf_counter() - started
        record.answered = time.monotonic()
        self.requests.append(record)
        return Answer(status, data, "application/json; charset=utf-8")

    def handle_graphql(self, token: str | None, raw_body: bytes, record: RecordedRequest) -> tuple[int, dict]:
        """Answer one POST: (HTTP status, JSON body)."""
        try:
            payload = json.loads(raw_body or b"{}")
            if not isinstance(payload, dict):
                raise ValueError("body is not a JSON object")
        except ValueError as exc:
            return 400, graphql_error_body(str(exc), "graphql_parse_failed")
        record.operation_name = payload.get("operationName")
        variables = payload.get("variables") or {}
        if isinstance(variables, str):
            variables = json.loads(variables) if variables.strip() else {}
        record.variables = variables

        if token in self.expired_tokens:
            return 401, graphql_error_body("Token expired", "unauthorized")
        allowed = self.tokens.get(token) if token else None
        if allowed is None:
            return 403, graphql_error_body("Without a token, only persisted queries are allowed", "forbidden")
        record.authenticated = True

        query = payload.get("query")
        if not isinstance(query, str) or not query.strip():
            return 200, {"errors": [{"message": "No query string was present"}]}
        try:
            document, errors = self._checked(query)
        except GraphQLSyntaxError as exc:
            return 400, graphql_error_body(exc.message, "graphql_parse_failed")
        if errors:
            return 200, {"errors": [e.formatted for e in errors]}

        context = make_context(self.store, allowed, document, self.base_url, writable=token not in self.read_only_tokens)
        with self.store.lock:  # one consistent snapshot per query
            result = execute(self.schema, document, variable_values=variables, operation_name=record.operation_name,
                             context_value=context, is_awaitable=_never)
        body: dict[str, Any] = {}
        if result.errors:
            body["errors"] = [_format_error(e) for e in result.errors]
        body["data"] = result.data
        return 200, body


def _never(_value: Any) -> bool:
    """The fake's resolvers are all synchronous: graphql-core need not ask of every value
    whether it is awaitable (an eighth of the fake's time on a page of dossiers)."""
    return False


def _ds_accepts(error: GraphQLError) -> bool:
    """graphql-ruby (DS) accepts fields of different types under different
    concrete types (e.g. ``value`` in two inline fragments); graphql-core's
    OverlappingFieldsCanBeMerged rejects them. Follow DS."""
    return "they return conflicting types" in error.message


def _format_error(error: GraphQLError) -> dict:
    formatted = error.formatted
    if error.original_error is not None and not isinstance(error.original_error, GraphQLError):
        # An unexpected exception: DS answers it as a GraphQL error too.
        formatted.setdefault("extensions", {"code": "internal_server_error"})
    return formatted


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        """A client that went away (a request it cancelled: a page it no longer wanted) is no
        error of the server's; anything else is printed as usual."""
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    fake: FakeDSServer
    protocol_version = "HTTP/1.1"
    server_version = "FakeDS/1.0"
    # headers and body leave in two writes: without TCP_NODELAY, Nagle's algorithm holds the body
    # until the client's delayed ACK (40 ms on Linux) on every keep-alive answer
    disable_nagle_algorithm = True

    def log_message(self, *_args) -> None:  # keep test output quiet
        pass

    def date_time_string(self, timestamp=None) -> str:  # the `Date` header: the fake's clock, as DS's is its own
        return email.utils.formatdate(self.fake.store.wall(), usegmt=True)

    def _send(self, status: int, body: bytes, content_type: str, headers: Mapping[str, str] = ()) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in dict(headers).items():
            self.send_header(name, value)
        if self.fake.cors:
            for name, value in CORS_HEADERS.items():
                self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, status: int, payload: dict) -> None:
        self._send(status, json.dumps(payload, ensure_ascii=False).encode(), "application/json; charset=utf-8")

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_OPTIONS(self) -> None:  # noqa: N802 - http.server naming
        record = RecordedRequest("OPTIONS", self.path)
        status = 204 if self.fake.cors else 404
        record.status = status
        self.fake.requests.append(record)
        self._send(status, b"", "text/plain")

    def _public(self) -> bool:
        if not self.fake.prefill.handles(self.path):
            return False
        body = self._read_body() if self.command == "POST" else b""
        answer = self.fake.answer_public(self.command, self.path, self.headers.get("Content-Type"), body,
                                         self.client_address[0])
        self._send(answer.status, answer.body, answer.content_type)
        return True

    def do_GET(self) -> None:  # noqa: N802
        if self._public():
            return
        path = urlsplit(self.path).path
        if path.startswith(FILES_PREFIX):
            parts = path[len(FILES_PREFIX):].split("/", 1)
            filename = unquote(parts[1]) if len(parts) == 2 else "file"
            body = f"Fake DS file {parts[0]}: {filename}\n".encode()
            content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
            self._send(200, body, content_type)
            return
        if path == "/":
            self._send(200, b"Fake DS server. POST GraphQL queries to /api/v2/graphql\n", "text/plain")
            return
        self._send(404, b"Not Found\n", "text/plain")

    def do_POST(self) -> None:  # noqa: N802
        if self._public():
            return
        delay, respond = self.fake.answer(self.path, self.headers.get("Authorization"), self._read_body())
        if delay:
            time.sleep(delay)
        answer = respond()
        self._send(answer.status, answer.body, answer.content_type, answer.headers)


def _bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


def _fill_operation(record: RecordedRequest, body: bytes) -> None:
    try:
        payload = json.loads(body or b"{}")
        record.operation_name = payload.get("operationName")
        record.variables = payload.get("variables")
    except (ValueError, AttributeError):
        pass
