"""The relay's second door (DS's public prefill API) in a real nginx, in front of the fake DS:
only POST and GET of /api/public/v1/demarches/<digits>/dossiers, Content-Type exactly
application/json, only a prefill_token parameter, no Authorization upstream, the same header
allow list, limits and logging rules as the first door."""
from __future__ import annotations

import json
import time

import pytest

from tests.relay_nginx import raw_request
from tests.test_relay import (NUMBER, TOKEN, fake, post, pytestmark, recorder, recorder_relay, relay,  # noqa: F401
                              split_answer, widget_dir)

PATH = f"/api/public/v1/demarches/{NUMBER}/dossiers"
BODY = json.dumps({"champ_Q2hhbXAtMQ": "Durand"}).encode()


def send(relay, method="POST", path=PATH, *, body=BODY, content_type="application/json", origin="same",
         extra_headers=(), token=None):
    """A raw request as the widget's worker sends it (POST: Origin; GET: Sec-Fetch-Site, no body)."""
    headers = [f"Host: 127.0.0.1:{relay.port}"]
    if origin == "same" and method != "GET":
        headers.append(f"Origin: {relay.url}")
    elif origin == "same":
        headers.append("Sec-Fetch-Site: same-origin")
    elif origin:
        headers.append(f"Origin: {origin}")
    if token:
        headers.append(f"Authorization: Bearer {token}")
    if method != "GET":
        headers += [f"Content-Length: {len(body)}"] + ([f"Content-Type: {content_type}"] if content_type else [])
    headers += ["Connection: close", *extra_headers]
    data = ("\r\n".join([f"{method} {path} HTTP/1.1", *headers]) + "\r\n\r\n").encode() + (body if method != "GET" else b"")
    return raw_request(relay.port, data)


def test_creating_and_following_through_the_relay_reach_ds(relay, fake):
    status, answer = send(relay)
    assert status == 201, answer[:300]
    created = json.loads(split_answer(answer)[1])
    assert created["state"] == "prefilled"
    status, answer = send(relay, "GET", f"{PATH}?prefill_token={created['dossier_prefill_token']},inconnu")
    assert status == 200, answer[:300]
    assert [a["dossier_number"] for a in json.loads(split_answer(answer)[1])] == [created["dossier_number"]]


def test_upstream_gets_the_allow_list_and_never_an_authorization(recorder_relay, recorder):
    _, seen = recorder
    before = len(seen)
    status, _ = send(recorder_relay, token=TOKEN, extra_headers=["Cookie: a=b", "X-Forwarded-For: 1.2.3.4"])
    assert status == 200
    sent = seen[before]
    assert sent["path"] == PATH and sent["body"] == BODY
    assert set(sent["names"]) <= {"host", "content-type", "accept", "user-agent", "content-length"}, sent["names"]
    assert sent["headers"]["content-type"] == "application/json"
    status, _ = send(recorder_relay, "GET", f"{PATH}?prefill_token=abc,def", token=TOKEN)
    assert status == 200 and seen[-1]["path"] == f"{PATH}?prefill_token=abc,def"
    assert "authorization" not in seen[-1]["names"] and "content-length" not in seen[-1]["names"]


REFUSED = [
    ("charset-suffix", {"content_type": "application/json; charset=utf-8"}, 400),
    ("text-plain", {"content_type": "text/plain"}, 400),
    ("no-content-type", {"content_type": None}, 400),
    ("post-query-string", {"path": f"{PATH}?prefill_token=x"}, 400),
    ("put", {"method": "PUT"}, 405),
    ("delete", {"method": "DELETE"}, 405),
    ("letters-in-number", {"path": "/api/public/v1/demarches/12a/dossiers"}, 405),
    ("other-public-path", {"path": f"/api/public/v1/demarches/{NUMBER}/dossiers/1"}, 405),
    ("trailing-slash", {"path": f"{PATH}/"}, 405),
    ("other-site", {"origin": "https://evil.example"}, 403),
    ("no-origin", {"origin": None}, 403),
    ("get-other-parameter", {"method": "GET", "path": f"{PATH}?state=prefilled"}, 400),
    ("get-extra-parameter", {"method": "GET", "path": f"{PATH}?prefill_token=a&x=1"}, 400),
    ("get-without-parameter", {"method": "GET", "path": PATH}, 400),
    ("get-cross-site", {"method": "GET", "path": f"{PATH}?prefill_token=a", "origin": None,
                        "extra_headers": ["Sec-Fetch-Site: cross-site"]}, 403),
    ("get-other-site", {"method": "GET", "path": f"{PATH}?prefill_token=a", "origin": "https://evil.example"}, 403),
    ("too-big", {"body": b"{" + b" " * (64 * 1024 + 10) + b"}"}, 413),
]


@pytest.mark.parametrize("options,expected", [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_refused_requests_never_reach_ds(relay, fake, options, expected):
    before = len(fake.requests)
    status, answer = send(relay, **options)
    headers, _ = split_answer(answer)
    assert status == expected, answer[:300]
    assert headers.get("x-content-type-options") == "nosniff" and headers.get("referrer-policy") == "no-referrer"
    time.sleep(0.05)
    assert len(fake.requests) == before, fake.requests[before:]


def test_prefill_tokens_and_bodies_are_never_logged(relay, fake):
    status, answer = send(relay)
    token = json.loads(split_answer(answer)[1])["dossier_prefill_token"]
    send(relay, "GET", f"{PATH}?prefill_token={token}")
    send(relay, "GET", f"{PATH}?prefill_token={token}&x=1")  # refused, logged
    logs = relay.logs()
    assert logs.count(PATH) >= 3 and token not in logs and "Durand" not in logs


def test_the_content_security_policy_lets_the_widget_call_its_relay(relay):
    status, answer = post(relay, line="GET /index.html HTTP/1.1", token=None, body=b"")
    policy = split_answer(answer)[0]["content-security-policy"]
    connect = next(d for d in policy.split(";") if d.strip().startswith("connect-src")).split()
    assert status == 200 and "'self'" in connect
