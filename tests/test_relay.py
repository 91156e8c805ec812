"""The relay (relay/nginx/default.conf.template) in a real nginx, in front of the fake DS.

No browser here (see tests/e2e/test_relay_e2e.py for the widget through the relay): raw HTTP
requests check what goes upstream, what never does, the file types and the logs.
nginx missing: skipped with the reason, unless CI=true (then the tests fail).
"""
from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from demo.fake_ds import FakeDSServer, FakeDSStore, sample_procedure
from tests.relay_nginx import IN_CI, NO_GRIST, ROOT, NginxRelay, free_port, missing_nginx, raw_request

TOKEN = "jeton-relais-6f1c2b9e-secret"
NUMBER = 4242
WIDGET_DIR = ROOT / "widget" / "dist"
QUERY = json.dumps({"query": f"query q {{ demarche(number: {NUMBER}) {{ id number }} }}",
                    "operationName": "q", "variables": {}}).encode()

_missing = missing_nginx()
pytestmark = pytest.mark.skipif(bool(_missing) and not IN_CI, reason=f"relay tests skipped: {_missing}")


@pytest.fixture(scope="module")
def widget_dir():
    if not (WIDGET_DIR / "manifest.json").is_file():
        from tests.e2e.harness import ensure_built
        ensure_built()
    return WIDGET_DIR


@pytest.fixture(scope="module")
def fake():
    store = FakeDSStore([sample_procedure(number=NUMBER, dossier_count=2, seed=11)])
    with FakeDSServer(store, tokens={TOKEN: "all"}, expired_tokens=("jeton-expire-relais",), cors=False) as server:
        yield server


@pytest.fixture(scope="module")
def relay(widget_dir, fake):
    if _missing:
        pytest.fail(f"CI=true and {_missing}")
    with NginxRelay(widget_dir, fake.base_url) as server:
        yield server


DEFAULT_ANSWER = (200, [("Content-Type", "application/json"), ("Set-Cookie", "_ds_session=abc; HttpOnly")],
                  b'{"data": {}}')


class _Recorder(BaseHTTPRequestHandler):
    """Stands where DS would: records what the relay sends upstream (every header, as received,
    in order) and answers ``answer`` (status, [(header, value)], body), which a test may change."""
    protocol_version = "HTTP/1.1"
    seen: list = []
    answer: list = [DEFAULT_ANSWER]

    def log_message(self, *_args):
        pass

    def do_POST(self):  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        self.seen.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                          "names": [k.lower() for k in self.headers.keys()], "body": body})
        status, headers, answer = self.answer[0]
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    do_GET = do_POST  # noqa: N815 - the second door's GET (tests/test_relay_prefill.py)


@pytest.fixture(scope="module")
def recorder():
    handler = type("Recorder", (_Recorder,), {"seen": [], "answer": [DEFAULT_ANSWER]})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.answer = handler.answer
    yield httpd, handler.seen
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def upstream_answers(recorder):
    """Set what the recorder (DS) answers for one test: upstream_answers(status, headers, body)."""
    httpd, _ = recorder

    def _set(status, headers, body=b'{"data": {}}'):
        httpd.answer[0] = (status, headers, body)
    yield _set
    httpd.answer[0] = DEFAULT_ANSWER


@pytest.fixture(scope="module")
def recorder_relay(widget_dir, recorder):
    httpd, _ = recorder
    with NginxRelay(widget_dir, f"http://127.0.0.1:{httpd.server_address[1]}") as server:
        yield server


def post(relay, *, line="POST /api/v2/graphql HTTP/1.1", host=None, origin="same", token=TOKEN,
         body=QUERY, extra_headers=()):
    """A raw request to the relay, as the widget sends it unless told otherwise."""
    host = host or f"127.0.0.1:{relay.port}"
    headers = [f"Host: {host}"]
    if origin == "same":
        headers.append(f"Origin: {relay.url}")
    elif origin:
        headers.append(f"Origin: {origin}")
    if token:
        headers.append(f"Authorization: Bearer {token}")
    headers += ["Content-Type: application/json", f"Content-Length: {len(body)}", "Connection: close",
                *extra_headers]
    return raw_request(relay.port, ("\r\n".join([line, *headers]) + "\r\n\r\n").encode() + body)


def split_answer(answer: bytes) -> tuple[dict, bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    headers = {}
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return headers, body


EXPECTED_TYPES = {
    ".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css",
    ".json": "application/json", ".wasm": "application/wasm", ".whl": "application/zip",
    ".zip": "application/zip", ".woff2": "font/woff2", ".md": "text/markdown",
}


def test_every_widget_file_is_served_with_its_type(relay, widget_dir):
    files = [p for p in widget_dir.rglob("*") if p.is_file()]
    assert any(p.suffix == ".mjs" for p in files) and any(p.suffix == ".wasm" for p in files)
    for path in files:
        rel = path.relative_to(widget_dir).as_posix()
        with urllib.request.urlopen(f"{relay.url}/{rel}") as response:
            ctype = response.headers["Content-Type"].split(";")[0]
            body = response.read()
        assert ctype == EXPECTED_TYPES.get(path.suffix, ctype), (rel, ctype)
        assert ctype != "application/octet-stream", rel
        assert body == path.read_bytes(), rel
    with urllib.request.urlopen(f"{relay.url}/pyodide/pyodide.mjs") as response:
        assert response.headers["Content-Type"].split(";")[0] == "text/javascript"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    with urllib.request.urlopen(f"{relay.url}/") as response:
        assert b'id="token"' in response.read()


def test_config_tells_the_widget_its_endpoint_and_the_ds_site(relay, fake):
    with urllib.request.urlopen(f"{relay.url}/otp-config.json") as response:
        assert response.headers["Content-Type"].split(";")[0] == "application/json"
        config = json.loads(response.read())
    assert config == {"endpoint": "/api/v2/graphql", "dsSite": fake.base_url, "gristOrigins": NO_GRIST}


def test_the_widgets_call_reaches_ds_with_its_token(relay, fake):
    before = len(fake.requests)
    status, answer = post(relay)
    headers, body = split_answer(answer)
    assert status == 200, answer
    assert json.loads(body)["data"]["demarche"]["number"] == NUMBER
    new = fake.requests[before:]
    assert [(r.method, r.path, r.authenticated, r.operation_name) for r in new] == \
        [("POST", "/api/v2/graphql", True, "q")]
    assert "access-control-allow-origin" not in headers   # same origin: no CORS needed


def test_ds_error_answers_keep_their_status_body_and_headers(relay, fake):
    reset = int(time.time()) + 42
    fake.rate_limit_next(reset)
    status, answer = post(relay)
    headers, body = split_answer(answer)
    assert status == 429
    assert headers["ratelimit-reset"] == str(reset) and headers["ratelimit-remaining"] == "0"
    assert body == b"Retry later\n"

    status, answer = post(relay, token="jeton-expire-relais")
    headers, body = split_answer(answer)
    assert status == 401
    assert json.loads(body)["errors"][0]["extensions"]["code"] == "unauthorized"


# Headers a client may send that must never reach DS: they describe the client or its address
# (Rails reads Client-IP), or ask an upstream to change the request (method, URL, credentials).
HOSTILE_HEADERS = [
    "X-Forwarded-For: 203.0.113.7", "X-Real-IP: 203.0.113.7", "Forwarded: for=203.0.113.7",
    "Client-IP: 203.0.113.7", "True-Client-IP: 203.0.113.7", "X-Client-IP: 203.0.113.7",
    "CF-Connecting-IP: 203.0.113.7", "X-Cluster-Client-IP: 203.0.113.7", "Fastly-Client-IP: 203.0.113.7",
    "X-Forwarded-Host: evil.example", "X-Forwarded-Proto: http", "X-Forwarded-Port: 81", "X-Host: evil.example",
    "Via: 1.1 evil", "X-Original-URL: /admin", "X-Rewrite-URL: /admin", "X-HTTP-Method-Override: DELETE",
    "X-HTTP-Method: DELETE", "X-Method-Override: DELETE", "Proxy-Authorization: Basic Zm9vOmJhcg==",
    "Cookie: grist_sid=s3cr3t", "Referer: https://grist.example/o/docs/abc?x=1", "X-Requested-With: XMLHttpRequest",
    "Accept-Language: fr-FR", "Sec-Fetch-Site: same-origin", "If-None-Match: \"x\"", "Range: bytes=0-1",
    "User-Agent: Mozilla/5.0 (agent)", "X-Custom: anything",
]
# Exactly what DS receives: nothing else.
UPSTREAM_HEADERS = {"host", "authorization", "content-type", "accept", "content-length", "user-agent"}


def test_upstream_gets_only_the_allowed_headers(recorder_relay, recorder):
    httpd, seen = recorder
    before = len(seen)
    status, answer = post(recorder_relay, extra_headers=["Accept: application/json", *HOSTILE_HEADERS])
    headers, _ = split_answer(answer)
    assert status == 200, answer[:300]
    assert "set-cookie" not in headers
    (sent,) = seen[before:]
    assert sent["path"] == "/api/v2/graphql"
    assert set(sent["names"]) == UPSTREAM_HEADERS, sorted(set(sent["names"]) - UPSTREAM_HEADERS)
    assert len(sent["names"]) == len(UPSTREAM_HEADERS)   # none twice
    assert sent["headers"]["host"] == f"127.0.0.1:{httpd.server_address[1]}"   # DS's, not the relay's
    assert sent["headers"]["authorization"] == f"Bearer {TOKEN}"
    assert sent["headers"]["content-type"] == "application/json"
    assert sent["headers"]["accept"] == "application/json"
    assert sent["headers"]["content-length"] == str(len(QUERY))
    assert sent["headers"]["user-agent"] == "OTP-relais (One Trick Pony)"   # the relay's, not the agent's
    assert sent["body"] == QUERY


# What DS (or whatever answers in its place) may put in an answer that must not reach the browser,
# nor be obeyed by nginx: X-Accel-* instructions, CORS, caching, cookies.
UPSTREAM_HEADERS_DROPPED = [
    ("X-Accel-Redirect", "/index.html"), ("X-Accel-Buffering", "no"), ("X-Accel-Limit-Rate", "1"),
    ("X-Accel-Expires", "3600"), ("X-Accel-Charset", "koi8-r"),
    ("Access-Control-Allow-Origin", "*"), ("Access-Control-Allow-Credentials", "true"),
    ("Access-Control-Allow-Headers", "Authorization"), ("Access-Control-Allow-Methods", "POST"),
    ("Access-Control-Expose-Headers", "X-Secret"), ("Access-Control-Max-Age", "86400"),
    ("Cache-Control", "public, max-age=3600"), ("Expires", "Thu, 01 Jan 2099 00:00:00 GMT"),
    ("Pragma", "cache"), ("Vary", "Origin"), ("ETag", '"abc"'), ("Last-Modified", "Thu, 01 Jan 2015 00:00:00 GMT"),
    ("Set-Cookie", "_ds_session=abc; HttpOnly"), ("Link", "<https://evil.example/>; rel=preload"),
    ("Refresh", "0; url=https://evil.example/"),
]


def test_ds_answers_lose_accel_cors_caching_headers_and_are_not_stored(recorder_relay, upstream_answers):
    body = b'{"data": {"demarche": null}}'
    upstream_answers(200, [("Content-Type", "application/json"), ("RateLimit-Remaining", "399"),
                           *UPSTREAM_HEADERS_DROPPED], body)
    status, answer = post(recorder_relay)
    headers, received = split_answer(answer)
    assert status == 200, answer[:500]
    assert received == body                                  # DS's body, not /index.html
    assert [name for name, _ in UPSTREAM_HEADERS_DROPPED if name.lower() in headers] == ["Cache-Control"]
    assert headers["cache-control"] == "no-store"
    assert headers["ratelimit-remaining"] == "399"           # DS's rate limit information stays
    assert headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_a_redirection_from_ds_becomes_an_error(recorder_relay, upstream_answers, code):
    upstream_answers(code, [("Location", "https://evil.example/api/v2/graphql"), ("Content-Type", "text/html")],
                     b"<a href='https://evil.example/'>moved</a>")
    status, answer = post(recorder_relay)
    headers, body = split_answer(answer)
    assert status == 502, answer[:500]
    assert "location" not in headers and b"evil.example" not in answer
    assert headers["cache-control"] == "no-store" and headers["x-content-type-options"] == "nosniff"
    assert "redirection" in json.loads(body)["errors"][0]["message"]


REFUSED = [
    # id, request line, options of post(), expected status
    ("GET", "GET /api/v2/graphql HTTP/1.1", {}, 405),
    ("OPTIONS", "OPTIONS /api/v2/graphql HTTP/1.1", {}, 405),
    ("PUT", "PUT /api/v2/graphql HTTP/1.1", {}, 405),
    ("DELETE", "DELETE /api/v2/graphql HTTP/1.1", {}, 405),
    ("other-api-path", "POST /api/v1/graphql HTTP/1.1", {}, 405),
    ("trailing-slash", "POST /api/v2/graphql/ HTTP/1.1", {}, 405),
    ("files", "GET /files/abc/x.pdf HTTP/1.1", {}, 404),
    ("other-path", "GET /api/v2/other HTTP/1.1", {}, 404),
    ("dot-dot", "GET /../../etc/passwd HTTP/1.1", {}, 400),
    ("query-string", "POST /api/v2/graphql?queryId=x HTTP/1.1", {}, 400),
    ("absolute-uri", "POST http://evil.example/api/v2/graphql HTTP/1.1", {"host": "evil.example"}, 400),
    ("absolute-uri-same-host", "POST http://127.0.0.1/api/v2/graphql HTTP/1.1", {}, 400),
    ("absolute-uri-https", "POST https://evil.example:443/api/v2/graphql HTTP/1.1", {}, 400),
    ("foreign-host", "POST /api/v2/graphql HTTP/1.1", {"host": "evil.example"}, 403),
    ("foreign-host-no-origin", "POST /api/v2/graphql HTTP/1.1", {"host": "evil.example", "origin": None}, 403),
    ("no-origin", "POST /api/v2/graphql HTTP/1.1", {"origin": None}, 403),
    ("other-site", "POST /api/v2/graphql HTTP/1.1", {"origin": "https://evil.example"}, 403),
    ("no-authorization", "POST /api/v2/graphql HTTP/1.1", {"token": None}, 401),
    ("basic-authorization", "POST /api/v2/graphql HTTP/1.1",
     {"token": None, "extra_headers": ["Authorization: Basic Zm9vOmJhcg=="]}, 401),
    ("bearer-without-token", "POST /api/v2/graphql HTTP/1.1", {"token": None, "extra_headers": ["Authorization: Bearer "]}, 401),
    ("bearer-two-words", "POST /api/v2/graphql HTTP/1.1", {"token": None, "extra_headers": ["Authorization: Bearer a b"]}, 401),
    ("token-without-bearer", "POST /api/v2/graphql HTTP/1.1", {"token": None, "extra_headers": [f"Authorization: {TOKEN}"]}, 401),
    ("too-big", "POST /api/v2/graphql HTTP/1.1", {"body": b"{" + b" " * (64 * 1024 + 10) + b"}"}, 413),
]


@pytest.mark.parametrize("line,options,expected", [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_refused_requests_get_a_4xx_and_never_reach_ds(relay, fake, line, options, expected):
    before = len(fake.requests)
    status, answer = post(relay, line=line, **options)
    headers, _ = split_answer(answer)
    assert status == expected, answer[:300]
    assert headers.get("x-content-type-options") == "nosniff", headers
    assert headers.get("referrer-policy") == "no-referrer", headers
    time.sleep(0.05)
    assert len(fake.requests) == before, fake.requests[before:]


def test_the_token_is_never_logged(widget_dir, relay, recorder_relay):
    # One more relay whose DS does not answer: nginx's error log then describes the request.
    with NginxRelay(widget_dir, f"http://127.0.0.1:{free_port()}") as broken:
        status, _ = post(broken)
        assert status == 502
        error_log = broken.error_log()
        assert "connect() failed" in error_log and "/api/v2/graphql" in error_log
        logs = [broken.logs()]
    status, _ = post(relay, line="POST /api/v2/graphql?jeton=x HTTP/1.1")   # refused, logged
    logs += [relay.logs(), recorder_relay.logs()]
    text = "\n".join(logs)
    assert text.count("POST /api/v2/graphql") >= 5, text[-2000:]
    assert TOKEN not in text
    assert "bearer" not in text.lower() and "authorization" not in text.lower()
    assert "jeton=x" not in text   # query strings stay out of the access log too


def test_the_template_names_the_authorization_header_only_to_check_and_forward_it():
    template = (ROOT / "relay" / "nginx" / "default.conf.template").read_text()
    code = "\n".join(line.split("#", 1)[0] for line in template.splitlines())
    uses = [line.strip() for line in code.splitlines() if "$http_authorization" in line.lower()]
    assert uses == ["map $http_authorization $otp_no_bearer {", "proxy_set_header Authorization $http_authorization;"]
    log_format = code[code.index("log_format"):code.index(";", code.index("log_format"))]
    for variable in ("$request ", "$request\"", "$request_uri", "$args", "$query_string", "$http_referer",
                     "$http_cookie"):
        assert variable not in log_format, variable


def test_the_template_uses_exactly_the_four_variables(fake):
    """The official image substitutes every defined environment variable: the template must not
    name any other upper-case $VARIABLE (nginx's own are lower-case), and once rendered nothing
    is left to substitute."""
    import re

    from tests.relay_nginx import TEMPLATE, render_template
    template = TEMPLATE.read_text()
    assert set(re.findall(r"\$\{?([A-Z_][A-Z0-9_]*)", template)) == {"OTP_PORT", "OTP_WIDGET_DIR", "DS_ORIGIN",
                                                                   "OTP_GRIST_ORIGINS"}
    rendered = render_template("8080", "/srv/otp/widget", "https://demarche.numerique.gouv.fr",
                               "https://grist.numerique.gouv.fr https://grist.example.fr")
    assert "${" not in rendered and "$OTP" not in rendered and "$DS_ORIGIN" not in rendered
    assert "frame-ancestors https://grist.numerique.gouv.fr https://grist.example.fr\"" in rendered
    assert '"gristOrigins": "https://grist.numerique.gouv.fr https://grist.example.fr"' in rendered
    assert "listen 8080;" in rendered and "root /srv/otp/widget;" in rendered
    assert "proxy_pass https://demarche.numerique.gouv.fr/api/v2/graphql;" in rendered
    assert '"dsSite": "https://demarche.numerique.gouv.fr"' in rendered


@pytest.fixture(scope="module")
def untrusted_tls_ds(tmp_path_factory):
    """An https "DS" on localhost with a self-signed certificate: records the TLS server names
    it is asked for, and every HTTP request that gets through."""
    import shutil
    import ssl
    import subprocess
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert_dir = tmp_path_factory.mktemp("tls")
    cert, key = cert_dir / "cert.pem", cert_dir / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    names: list = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda _sock, name, _ctx: names.append(name)
    handler = type("TLSRecorder", (_Recorder,), {"seen": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True, do_handshake_on_connect=False)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd.server_address[1], names, handler.seen
    httpd.shutdown()
    httpd.server_close()


def test_the_token_is_not_sent_to_a_ds_whose_certificate_does_not_verify(widget_dir, untrusted_tls_ds):
    port, names, seen = untrusted_tls_ds
    with NginxRelay(widget_dir, f"https://localhost:{port}") as relay_tls:
        status, _ = post(relay_tls)
        error_log = relay_tls.error_log()
    assert status == 502
    assert "localhost" in names          # TLS server name (SNI) is DS's host
    assert seen == []                    # no HTTP request, hence no token, went through
    assert "certificate verify" in error_log or "certificate" in error_log.lower(), error_log[-1500:]
    assert TOKEN not in error_log


# ---- the widget's pages: content security policy, referrer, sniffing ------------------------------

def csp_directives(value: str) -> dict[str, list[str]]:
    directives = {}
    for part in value.split(";"):
        words = part.split()
        if words:
            directives[words[0]] = words[1:]
    return directives


def test_every_widget_file_carries_the_content_security_policy(widget_dir, fake):
    origins = "https://grist.numerique.gouv.fr http://127.0.0.1:8484"
    with NginxRelay(widget_dir, fake.base_url, grist_origins=origins) as relay_csp:
        for rel in ("", "index.html", "app.js", "trust.js", "guard.js", "worker.js", "messages.js", "constants.js",
                    "pyodide/pyodide.mjs", "absent.html"):
            try:
                response = urllib.request.urlopen(f"{relay_csp.url}/{rel}")
            except urllib.error.HTTPError as error:   # absent.html: 404, same headers
                response = error
            with response:
                headers = response.headers
            policy = csp_directives(headers["Content-Security-Policy"] or "")
            assert policy["frame-ancestors"] == origins.split(), rel
            assert policy["default-src"] == ["'none'"]
            assert policy["script-src"] == ["'self'", "'wasm-unsafe-eval'"]
            assert policy["worker-src"] == ["'self'"]
            assert policy["connect-src"] == ["'self'", fake.base_url]
            assert policy["base-uri"] == ["'none'"] and policy["object-src"] == ["'none'"]
            assert headers["Referrer-Policy"] == "no-referrer", rel
            assert headers["X-Content-Type-Options"] == "nosniff", rel


def test_the_page_carries_its_policy_for_plain_static_hosts(widget_dir):
    """On a host that sends no header, index.html's <meta> gives the same policy (but
    frame-ancestors, which only a header can give: app.js checks the framer itself)."""
    import re
    html = (widget_dir / "index.html").read_text()
    (meta,) = re.findall(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', html)
    policy = csp_directives(meta)
    assert policy["script-src"] == ["'self'", "'wasm-unsafe-eval'"]
    assert policy["connect-src"][:3] == ["'self'", "https://demarche.numerique.gouv.fr",
                                         "https://www.demarches-simplifiees.fr"]
    assert all(source.startswith(("http://127.0.0.1:", "http://localhost:")) for source in policy["connect-src"][3:])
    assert policy["base-uri"] == ["'none'"] and policy["object-src"] == ["'none'"]
    assert '<meta name="referrer" content="no-referrer">' in html
    assert "frame-ancestors" not in policy   # ignored in a <meta>: the relay's header says it


# ---- per-client limits and slow bodies -------------------------------------------------------------

def test_a_client_gets_429_past_500_requests_in_a_burst_and_50_per_second(widget_dir, recorder):
    """limit_req: burst of 500, then 50 per second per client address; what is refused never
    reaches DS. (A relay of its own: its counters start at zero.)"""
    import http.client
    httpd, seen = recorder
    with NginxRelay(widget_dir, f"http://127.0.0.1:{httpd.server_address[1]}") as limited:
        before = len(seen)
        headers = {"Origin": limited.url, "Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        connection = http.client.HTTPConnection("127.0.0.1", limited.port, timeout=10)
        statuses = []
        started = time.monotonic()
        for _ in range(1500):                     # bounded: the limit answers well before
            connection.request("POST", "/api/v2/graphql", body=QUERY, headers=headers)
            response = connection.getresponse()
            response.read()
            statuses.append(response.status)
            if response.status == 429:
                assert response.getheader("X-Content-Type-Options") == "nosniff"
                break
        elapsed = time.monotonic() - started
        connection.close()
        passed = len(seen) - before
    assert statuses[-1] == 429, (len(statuses), elapsed)
    assert set(statuses[:-1]) == {200}
    assert 500 <= passed <= 500 + 50 * elapsed + 2, (passed, elapsed)
    assert passed == len(statuses) - 1


def _slow_post(port: int, relay_url: str, length: int = 100) -> "socket.socket":
    """A request whose headers arrive but whose body does not (yet)."""
    import socket
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(("POST /api/v2/graphql HTTP/1.1\r\n"
                  f"Host: 127.0.0.1:{port}\r\nOrigin: {relay_url}\r\nAuthorization: Bearer {TOKEN}\r\n"
                  f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n{{").encode())
    return sock


def test_a_client_gets_429_past_100_requests_in_progress(widget_dir, recorder):
    """limit_conn: 100 requests in progress at once per client address (here, 100 bodies that
    come one byte at a time); the 101st is refused, and served again once they are gone."""
    httpd, seen = recorder
    with NginxRelay(widget_dir, f"http://127.0.0.1:{httpd.server_address[1]}") as limited:
        before = len(seen)
        held = [_slow_post(limited.port, limited.url) for _ in range(100)]
        try:
            deadline = time.monotonic() + 5
            while True:
                for sock in held:                 # one more byte each: none stalls 2 s
                    sock.sendall(b" ")
                status, _ = raw_request(limited.port, b"GET /index.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if status == 429 or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            assert status == 429
        finally:
            for sock in held:
                sock.close()
        deadline = time.monotonic() + 5
        while True:
            status, _ = raw_request(limited.port, b"GET /index.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            if status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert status == 200
        assert len(seen) == before               # no incomplete body went to DS


def test_a_body_sent_one_byte_every_3_seconds_is_cut_and_never_reaches_ds(relay, fake):
    """client_body_timeout 2 s: the trickle of the issue (one byte every 3 s) is cut after the
    first silence; before, the timeout restarted at each byte and held the connection for ever."""
    before = len(fake.requests)
    sock = _slow_post(relay.port, relay.url)
    started = time.monotonic()
    chunks = []
    with sock:
        sock.settimeout(10)
        for _ in range(5):                        # bounded: 5 bytes, 3 s apart
            time.sleep(3)
            try:
                sock.sendall(b" ")
            except OSError:
                break
        while True:                               # what nginx answered before closing
            try:
                chunk = sock.recv(4096)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    held = time.monotonic() - started
    answer = b"".join(chunks)
    assert held < 8, held                         # cut at the first silence (2 s), not after 5 bytes (15 s)
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert len(fake.requests) == before
