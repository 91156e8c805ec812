"""The production path: the widget served by the relay (real nginx, relay/nginx/default.conf.template)
in grist-static, the fake DS without CORS behind the relay; and where the token may go.

The host page (grist-static) is served by the e2e static server; the widget's URL in the document
is the relay's, so the widget, its otp-config.json and the API share the relay's origin.
nginx missing: skipped with the reason, unless CI=true (then the tests fail).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from demo.fake_ds import FakeDSServer, FakeDSStore, sample_procedure
from harness import Host, wait_widget_state

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from tests.relay_nginx import IN_CI, NginxRelay, missing_nginx  # noqa: E402

TOKEN = "jeton-e2e-relais-5b7d93"
NUMBER = 24680
DOSSIERS = 25

_missing = missing_nginx()
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(bool(_missing) and not IN_CI, reason=f"relay tests skipped: {_missing}")]


@pytest.fixture(scope="module")
def store():
    return FakeDSStore([sample_procedure(number=NUMBER, dossier_count=DOSSIERS, seed=5)])


@pytest.fixture(scope="module")
def ds(store):
    with FakeDSServer(store, tokens={TOKEN: "all"}, cors=False) as server:
        yield server


@pytest.fixture(scope="module")
def relay(otp_manifest, ds):
    if _missing:
        pytest.fail(f"CI=true and {_missing}")
    with NginxRelay(ROOT / "widget" / "dist", ds.base_url) as server:
        yield server


@pytest.fixture(scope="module")
def other_ds():
    """Another host (a DS-like API that would accept the token, CORS included)."""
    store = FakeDSStore([sample_procedure(number=NUMBER, dossier_count=3, seed=9)])
    with FakeDSServer(store, tokens={TOKEN: "all"}, cors=True) as server:
        yield server


@pytest.fixture
def open_relay_host(page, otp_server, relay, request):
    def _open(**query) -> Host:
        host = Host(page, otp_server.url, widget_path=relay.url + "/")
        request.node._otp_host = host
        host.open(widget=f"{relay.url}/index.html", **query)
        frame = host.wait_widget_ready()
        frame.evaluate("otpWidget.configReady.then(() => true)")
        return host
    return _open


def destination(frame) -> str:
    return frame.evaluate("document.getElementById('token-destination').textContent.trim()")


def click_sync(frame, states=("done", "error", "confirm")) -> str:
    frame.evaluate("document.body.dataset.state = 'submitting'")
    frame.click("#sync")
    return wait_widget_state(frame, states, 120)


def assert_no_token_anywhere(host, relay, frame):
    found = {
        "document": json.dumps(host.snapshot(), ensure_ascii=False),
        "options (draft)": json.dumps(host.widget_options(), ensure_ascii=False),
        "options (saved)": json.dumps(host.widget_options(saved=True), ensure_ascii=False),
        "section": json.dumps(host.page.evaluate("otpHost.widgetSectionOptions()"), ensure_ascii=False),
        "console": "\n".join(host.console),
        "widget URL": frame.url,
        # The one place the token may be: this browser's memory of it (« Oublier le jeton »).
        "localStorage": frame.evaluate("JSON.stringify(Object.entries(localStorage)"
                                       ".filter(([k]) => !k.startsWith('otp.demarche:')))"),
        "nginx logs": relay.logs(),
    }
    assert [where for where, text in found.items() if TOKEN in text] == []


def test_full_sync_and_resync_through_the_relay(open_relay_host, relay, ds, store):
    # A token in the widget's URL (only the local demo reads one): not the real one, which the
    # scan at the end must find nowhere.
    host = open_relay_host(demarche=NUMBER, token="jeton-dans-l-url")
    frame = host.widget
    # Served by the relay: the API address is the relay's own, and the URL's token is ignored.
    assert frame.input_value("#endpoint") == relay.endpoint
    assert destination(frame) == f"Le jeton sera envoyé à : 127.0.0.1:{relay.port}"
    assert frame.input_value("#token") == ""

    before = len(ds.requests)
    first = host.sync(token=TOKEN)
    assert first["state"] == "done", first
    assert first["text"].startswith("Synchronisation terminée"), first
    assert first["result"]["added"] == DOSSIERS
    calls = ds.requests[before:]
    assert calls and all(r.method == "POST" and r.authenticated for r in calls)

    dossiers = host.fetch_table(f"D{NUMBER}_Dossiers")
    assert sorted(dossiers["Numero"]) == sorted(store.procedure(NUMBER).dossiers)
    # Links point at DS's site, never at the relay.
    for number, link in zip(dossiers["Numero"], dossiers["Lien_DS"]):
        assert link.endswith(f" {ds.base_url}/procedures/{NUMBER}/dossiers/{number}"), link
        assert relay.url not in link

    changed = sorted(store.procedure(NUMBER).dossiers)[3]
    store.advance(60)
    store.update_dossier(changed, motivation="Vu au relais")
    second = host.sync()
    assert second["state"] == "done", second
    assert second["result"]["added"] == 0 and second["result"]["updated"] >= 1, second["result"]
    dossiers = host.fetch_table(f"D{NUMBER}_Dossiers")
    assert dossiers["Motivation"][dossiers["Numero"].index(changed)] == "Vu au relais"
    assert len(dossiers["Numero"]) == DOSSIERS
    assert "POST /api/v2/graphql" in relay.access_log()
    assert_no_token_anywhere(host, relay, frame)


def set_document_options(host, options: dict) -> None:
    """Write the widget's options into the document, as anyone who can edit it could."""
    host.page.evaluate("""async ([ref, options]) => {
        const o = otpHost.widgetSectionOptions();
        const custom = o.customView;
        custom.widgetOptions = options;
        o.customView = JSON.stringify(custom);
        await otpHost.applyUserActions([['UpdateRecord', '_grist_Views_section', ref, {options: JSON.stringify(o)}]]);
    }""", [host.boot["sectionRef"], options])


def test_an_address_from_the_document_gets_no_token_without_confirmation(open_relay_host, relay, other_ds):
    host = open_relay_host()
    set_document_options(host, {"demarche": str(NUMBER), "endpoint": other_ds.url})
    frame = host.reload_widget()
    frame.wait_for_function("(url) => document.getElementById('endpoint').value === url", arg=other_ds.url)
    other_host = f"127.0.0.1:{other_ds.port}"
    assert destination(frame) == f"Le jeton sera envoyé à : {other_host}"

    frame.fill("#token", TOKEN)
    assert click_sync(frame) == "confirm"
    assert frame.is_visible("#confirm")
    assert frame.text_content("#confirm-host") == other_host
    assert "vient du document" in frame.text_content("#confirm")
    assert other_ds.requests == []

    frame.click("#confirm-no")
    assert frame.is_hidden("#confirm")
    assert host.status()["text"] == "Synchronisation annulée : le jeton n'a pas été envoyé."
    frame.wait_for_timeout(300)
    assert other_ds.requests == []

    assert click_sync(frame) == "confirm"
    frame.evaluate("document.body.dataset.state = 'submitting'")
    frame.click("#confirm-yes")
    assert wait_widget_state(frame, ("done", "error"), 120) == "done", host.status()
    posts = [r for r in other_ds.requests if r.method == "POST"]   # after CORS preflights
    assert posts and all(r.authenticated for r in posts)

    # Remembered in this browser: after a reload the token goes there without asking again.
    frame = host.reload_widget()
    frame.wait_for_function("(url) => document.getElementById('endpoint').value === url", arg=other_ds.url)
    frame.fill("#token", TOKEN)
    assert click_sync(frame) == "done", host.status()
    assert_no_token_anywhere(host, relay, frame)


@pytest.fixture(scope="module")
def ds_on_another_machine():
    """An API over plain http at an address that is not this machine's loopback name."""
    store = FakeDSStore([sample_procedure(number=NUMBER, dossier_count=1, seed=2)])
    with FakeDSServer(store, tokens={TOKEN: "all"}, cors=True, host="127.0.0.2") as server:
        yield server


def test_plain_http_to_another_host_is_refused(open_relay_host, ds_on_another_machine):
    url = ds_on_another_machine.url
    host = open_relay_host(demarche=NUMBER, endpoint=url)
    frame = host.widget
    assert frame.input_value("#endpoint") == url
    before = host.snapshot()
    for typed in (None, url):   # from the widget URL (the document), then typed by the agent
        result = host.sync(token=TOKEN, endpoint=typed)
        assert result["state"] == "error", result
        assert "Le jeton ne peut être envoyé qu'en https" in result["text"], result
        assert "127.0.0.2" in result["text"] and TOKEN not in result["text"]
    assert ds_on_another_machine.requests == []
    assert host.snapshot() == before


def test_a_widget_on_a_plain_static_host_never_reads_a_token_from_its_url(page, otp_server, request):
    """Deployed on any static host (no otp-config.json), or on the relay (tested above), the
    widget leaves ?token= alone: only the local demo's server enables it."""
    from harness import StaticServer
    with StaticServer(files={}) as plain:   # the same files, without the demo's otp-config.json
        host = Host(page, otp_server.url, widget_path=plain.url + "/widget/")
        request.node._otp_host = host
        host.open(widget=f"{plain.url}/widget/index.html", demarche=NUMBER, token="jeton-dans-l-url")
        frame = host.widget   # no need to wait for Python: the form is filled before
        frame.wait_for_function("() => window.otpWidget && otpWidget.configReady")
        frame.evaluate("otpWidget.configReady.then(() => true)")
        assert frame.input_value("#token") == ""
        assert frame.input_value("#endpoint") == "https://demarche.numerique.gouv.fr/api/v2/graphql"
        assert destination(frame) == "Le jeton sera envoyé à : demarche.numerique.gouv.fr"
