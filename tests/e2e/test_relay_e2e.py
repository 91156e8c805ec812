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

from harness import TOKEN, Host, wait_widget_state

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from tests.relay_nginx import IN_CI, NginxRelay, missing_nginx  # noqa: E402

NUMBER = 24680
DOSSIERS = 25

_missing = missing_nginx()
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(bool(_missing) and not IN_CI, reason=f"relay tests skipped: {_missing}")]


@pytest.fixture(scope="module")
def ds(module_fake_ds):
    return module_fake_ds(number=NUMBER, dossiers=DOSSIERS, seed=5, cors=False)


@pytest.fixture(scope="module")
def relay(otp_manifest, otp_server, ds):
    """The relay, declaring the tests' grist-static (otp_server) as the Grist that frames it."""
    if _missing:
        pytest.fail(f"CI=true and {_missing}")
    with NginxRelay(ROOT / "widget" / "dist", ds.base_url, grist_origins=otp_server.url) as server:
        yield server


@pytest.fixture(scope="module")
def other_ds(module_fake_ds):
    """Another host (a DS-like API that would accept the token, CORS included)."""
    return module_fake_ds(number=NUMBER, dossiers=3, seed=9)


# Every violation of a content security policy, in every frame of the page.
RECORD_VIOLATIONS = """window.__violations = [];
document.addEventListener('securitypolicyviolation', (e) => window.__violations.push(
    {directive: e.violatedDirective, source: e.sourceFile, blocked: e.blockedURI}));"""


def policy_violations(frame) -> list[dict]:
    """The widget's violations of its policy, but the one it expects: grist-plugin-api.js writes
    Grist's theme variables into a <style> element, which style-src 'self' refuses (the widget
    takes its theme from DSFR, data-fr-theme, and does not use them)."""
    return [v for v in frame.evaluate("window.__violations || []")
            if not (v["directive"] == "style-src-elem" and v["source"].endswith("/grist-plugin-api.js"))]


@pytest.fixture
def open_relay_host(page, otp_server, relay, request):
    page.add_init_script(RECORD_VIOLATIONS)

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
    # The whole sync ran under the relay's policy (Python, the worker, the fonts) without a breach.
    assert frame.evaluate("otpWidget.frame") == {"trusted": True, "reason": "ok", "parent": host.base_url,
                                                 "foreign": []}
    assert policy_violations(frame) == []


def set_document_options(host, options: dict) -> None:
    """Write the widget's options into the document, as anyone who can edit it could."""
    host.page.evaluate("""async ([ref, options]) => {
        const o = otpHost.widgetSectionOptions();
        const custom = o.customView;
        custom.widgetOptions = options;
        o.customView = JSON.stringify(custom);
        await otpHost.applyUserActions([['UpdateRecord', '_grist_Views_section', ref, {options: JSON.stringify(o)}]]);
    }""", [host.boot["sectionRef"], options])


def ask_for(host, frame, endpoint: str) -> str:
    """Put `endpoint` in the document's options, reload the widget, click « Synchroniser » with
    the token typed: the widget's state afterwards ('confirm' when it asks)."""
    set_document_options(host, {"demarche": str(NUMBER), "endpoint": endpoint})
    frame = host.reload_widget()
    frame.wait_for_function("(url) => document.getElementById('endpoint').value === url", arg=endpoint)
    frame.fill("#token", TOKEN)
    return click_sync(frame)


# Addresses from the document that get the token only after the agent confirms: another path of
# the relay's own origin (not its endpoint), another host. id, address (relay, other_ds), host shown
OTHER_ADDRESSES = [
    ("another-path-of-the-relay", lambda relay, other: relay.url + "/api/v2/autre", lambda relay, other: f"127.0.0.1:{relay.port}"),
    ("another-host", lambda relay, other: other.url, lambda relay, other: f"127.0.0.1:{other.port}"),
]


@pytest.mark.parametrize("address,shown", [c[1:] for c in OTHER_ADDRESSES], ids=[c[0] for c in OTHER_ADDRESSES])
def test_an_address_from_the_document_gets_no_token_without_confirmation(open_relay_host, relay, other_ds,
                                                                         address, shown):
    host = open_relay_host()
    endpoint, expected_host = address(relay, other_ds), shown(relay, other_ds)
    access_log = len(relay.access_log())
    assert ask_for(host, host.widget, endpoint) == "confirm"
    frame = host.widget
    assert destination(frame) == f"Le jeton sera envoyé à : {expected_host}"
    assert frame.text_content("#confirm-host") == expected_host
    assert frame.text_content("#confirm-url") == endpoint
    assert "vient du document" in frame.text_content("#confirm")
    frame.click("#confirm-no")
    assert frame.is_hidden("#confirm")
    assert host.status()["text"] == "Synchronisation annulée : le jeton n'a pas été envoyé."
    frame.wait_for_timeout(300)
    assert other_ds.requests == []
    assert "/api/v2/autre" not in relay.access_log()[access_log:]
    assert_no_token_anywhere(host, relay, frame)


def test_the_relays_policy_keeps_a_confirmed_address_elsewhere_out_of_reach(open_relay_host, relay, other_ds):
    """Even confirmed by the agent, another host is out of the widget's reach under the relay's
    policy (connect-src: the relay and DS only): the token never leaves."""
    host = open_relay_host()
    assert ask_for(host, host.widget, other_ds.url) == "confirm"
    frame = host.widget
    frame.evaluate("document.body.dataset.state = 'submitting'")
    frame.click("#confirm-yes")
    assert wait_widget_state(frame, ("done", "error"), 120) == "error", host.status()
    assert other_ds.requests == []
    assert "Impossible de joindre l'API" in host.status()["text"]


def test_a_confirmed_address_is_asked_once(page, otp_server, other_ds, request):
    """On a plain static host (only index.html's <meta> policy, which lets the widget reach this
    computer): after the agent confirms an address from the document, the token goes there; after
    a reload, without asking again. Another path of the same host asks again."""
    from harness import StaticServer
    with StaticServer(config={}, grist_origins=[otp_server.url], policy_header=False) as plain:
        host = Host(page, otp_server.url, widget_path=plain.url + "/widget/")
        request.node._otp_host = host
        host.open(widget=f"{plain.url}/widget/index.html")
        host.wait_widget_ready()
        assert ask_for(host, host.widget, other_ds.url) == "confirm"
        frame = host.widget
        frame.evaluate("document.body.dataset.state = 'submitting'")
        frame.click("#confirm-yes")
        assert wait_widget_state(frame, ("done", "error"), 120) == "done", host.status()
        posts = [r for r in other_ds.requests if r.method == "POST"]   # after CORS preflights
        assert posts and all(r.authenticated for r in posts)
        # Remembered in this browser: after a reload the token goes there without asking again.
        assert ask_for(host, frame, other_ds.url) == "done", host.status()
        # The same host, another path: asked again.
        assert ask_for(host, host.widget, other_ds.url + "/autre") == "confirm"


@pytest.fixture(scope="module")
def ds_on_another_machine(module_fake_ds):
    """An API over plain http at an address that is not this machine's loopback name."""
    return module_fake_ds(number=NUMBER, dossiers=1, seed=2, host="127.0.0.2")


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
    # The same files, with an otp-config.json that declares the Grist but is not the demo's.
    with StaticServer(config={}, grist_origins=[otp_server.url], policy_header=False) as plain:
        host = Host(page, otp_server.url, widget_path=plain.url + "/widget/")
        request.node._otp_host = host
        host.open(widget=f"{plain.url}/widget/index.html", demarche=NUMBER, token="jeton-dans-l-url")
        frame = host.widget   # no need to wait for Python: the form is filled before
        frame.wait_for_function("() => window.otpWidget && otpWidget.configReady")
        frame.evaluate("otpWidget.configReady.then(() => true)")
        assert frame.input_value("#token") == ""
        assert frame.input_value("#endpoint") == "https://demarche.numerique.gouv.fr/api/v2/graphql"
        assert destination(frame) == "Le jeton sera envoyé à : demarche.numerique.gouv.fr"


def test_a_relay_error_logs_no_referer_of_the_widget(page, otp_server, request):
    """The widget's pages and worker send no Referer (Referrer-Policy: no-referrer): when DS is
    unreachable, nginx's error line about the widget's call has no « referrer: » (the page's URL
    carries Grist's query string)."""
    import time

    from tests.relay_nginx import free_port
    with NginxRelay(ROOT / "widget" / "dist", f"http://127.0.0.1:{free_port()}", grist_origins=otp_server.url) as broken:
        host = Host(page, otp_server.url, widget_path=broken.url + "/")
        request.node._otp_host = host
        host.open(widget=f"{broken.url}/index.html", demarche=NUMBER)
        frame = host.wait_widget_ready()
        frame.fill("#token", TOKEN)
        frame.click("#check")
        deadline = time.monotonic() + 30
        while "connect() failed" not in broken.error_log() and time.monotonic() < deadline:
            time.sleep(0.1)
        error_log = broken.error_log()
    lines = [line for line in error_log.splitlines() if "connect() failed" in line]
    assert lines and all('request: "POST /api/v2/graphql HTTP/1.1"' in line for line in lines), error_log[-1500:]
    assert all("referrer" not in line for line in lines), lines
    assert TOKEN not in error_log
