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
from tests.relay_nginx import IN_CI, ROOT, NginxRelay, free_port, missing_nginx, raw_request

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


class _Recorder(BaseHTTPRequestHandler):
    """Stands where DS would: records the headers the relay sends upstream."""
    protocol_version = "HTTP/1.1"
    seen: list = []

    def log_message(self, *_args):
        pass

    def do_POST(self):  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        self.seen.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                          "body": body})
        answer = b'{"data": {}}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.send_header("Set-Cookie", "_ds_session=abc; HttpOnly")
        self.end_headers()
        self.wfile.write(answer)


@pytest.fixture(scope="module")
def recorder():
    handler = type("Recorder", (_Recorder,), {"seen": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd, handler.seen
    httpd.shutdown()
    httpd.server_close()


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
    assert config == {"endpoint": "/api/v2/graphql", "dsSite": fake.base_url}


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


def test_upstream_gets_ds_host_the_token_and_nothing_about_the_agent(recorder_relay, recorder):
    httpd, seen = recorder
    status, answer = post(recorder_relay, extra_headers=[
        "X-Forwarded-For: 203.0.113.7", "X-Real-IP: 203.0.113.7", "Forwarded: for=203.0.113.7",
        "Cookie: grist_sid=s3cr3t", "Referer: https://grist.example/o/docs/abc"])
    headers, _ = split_answer(answer)
    assert status == 200
    assert "set-cookie" not in headers
    assert len(seen) == 1
    sent = seen[0]
    assert sent["path"] == "/api/v2/graphql"
    assert sent["headers"]["host"] == f"127.0.0.1:{httpd.server_address[1]}"   # DS's, not the relay's
    assert sent["headers"]["authorization"] == f"Bearer {TOKEN}"
    assert sent["headers"]["content-type"] == "application/json"
    assert sent["body"] == QUERY
    for name in ("x-forwarded-for", "x-real-ip", "forwarded", "cookie", "origin", "referer", "x-forwarded-host"):
        assert name not in sent["headers"], name


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
    ("too-big", "POST /api/v2/graphql HTTP/1.1", {"body": b"{" + b" " * (1024 * 1024 + 10) + b"}"}, 413),
]


@pytest.mark.parametrize("line,options,expected", [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_refused_requests_get_a_4xx_and_never_reach_ds(relay, fake, line, options, expected):
    before = len(fake.requests)
    status, answer = post(relay, line=line, **options)
    assert status == expected, answer[:300]
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


def test_the_template_never_names_the_authorization_header():
    template = (ROOT / "relay" / "nginx" / "default.conf.template").read_text()
    code = "\n".join(line.split("#", 1)[0] for line in template.splitlines())
    assert "$http_authorization" not in code.lower()
    log_format = code[code.index("log_format"):code.index(";", code.index("log_format"))]
    for variable in ("$request ", "$request\"", "$request_uri", "$args", "$query_string", "$http_referer",
                     "$http_cookie"):
        assert variable not in log_format, variable


def test_the_template_uses_exactly_the_three_variables(fake):
    """The official image substitutes every defined environment variable: the template must not
    name any other upper-case $VARIABLE (nginx's own are lower-case), and once rendered nothing
    is left to substitute."""
    import re

    from tests.relay_nginx import TEMPLATE, render_template
    template = TEMPLATE.read_text()
    assert set(re.findall(r"\$\{?([A-Z_][A-Z0-9_]*)", template)) == {"OTP_PORT", "OTP_WIDGET_DIR", "DS_ORIGIN"}
    rendered = render_template("8080", "/srv/otp/widget", "https://demarche.numerique.gouv.fr")
    assert "${" not in rendered and "$OTP" not in rendered and "$DS_ORIGIN" not in rendered
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
