"""demo/serve.py declares its Grist origins the way the relay does (OTP_GRIST_ORIGINS): the
widget's config and its Content-Security-Policy frame-ancestors, kept in step."""
from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from demo.serve import StaticServer


def get(url: str):
    try:
        response = urllib.request.urlopen(url)
    except urllib.error.HTTPError as error:
        response = error
    with response:
        return response.status, response.headers, response.read()


def frame_ancestors(headers) -> list[str]:
    policy = headers["Content-Security-Policy"] or ""
    (directive,) = [d.split() for d in policy.split(";") if d.split()[:1] == ["frame-ancestors"]]
    return directive[1:]


def test_the_demo_declares_its_own_origin_and_what_is_added(tmp_path):
    (tmp_path / "index.html").write_text("<!doctype html>")
    with StaticServer({"/widget/": tmp_path, "/": tmp_path}) as server:
        own = [server.url, f"http://localhost:{server.port}"]
        status, headers, body = get(f"{server.url}/widget/otp-config.json")
        assert status == 200 and json.loads(body) == {"demo": True, "gristOrigins": " ".join(own)}
        status, headers, _ = get(f"{server.url}/widget/index.html")
        assert frame_ancestors(headers) == own
        assert headers["Referrer-Policy"] == "no-referrer" and headers["X-Content-Type-Options"] == "nosniff"
        server.add_grist_origin("http://127.0.0.1:8484")
        assert json.loads(get(f"{server.url}/widget/otp-config.json")[2])["gristOrigins"].split() == \
            [*own, "http://127.0.0.1:8484"]
        assert frame_ancestors(get(f"{server.url}/widget/index.html")[1]) == [*own, "http://127.0.0.1:8484"]
        # The host page (Grist) is not the widget: no widget policy on it.
        assert get(f"{server.url}/index.html")[1]["Content-Security-Policy"] is None


@pytest.mark.parametrize("options,config_status,policy", [
    ({"config": None}, 404, True),                                   # no otp-config.json
    ({"config": {}, "policy_header": False}, 200, False),           # a plain static host: the <meta> only
])
def test_a_plain_static_host(tmp_path, options, config_status, policy):
    (tmp_path / "index.html").write_text("<!doctype html>")
    with StaticServer({"/widget/": tmp_path}, grist_origins=["https://grist.example.fr"], **options) as server:
        status, _, body = get(f"{server.url}/widget/otp-config.json")
        assert status == config_status
        if status == 200:
            assert json.loads(body) == {"gristOrigins": "https://grist.example.fr"}
        headers = get(f"{server.url}/widget/index.html")[1]
        assert (headers["Content-Security-Policy"] is not None) is policy
        assert headers["X-Content-Type-Options"] == "nosniff"
