"""The framing attack (issue 17): a hostile page frames the widget and plays Grist for it, to make
it recall the agent's remembered token and sync the procedure into the attacker's document.

The agent's Grist is grist-core (a real server: its widget frames keep their storage). Chromium
runs with third-party storage partitioning on, as a real Chrome does (Playwright turns it off).
The hostile origin is on the same site as the agent's Grist (127.0.0.1, another port), as a page
served by a shared Grist server would be, so partitioning does not keep the token from it. The
hostile page (tests/e2e/hostile/) is a real Grist too (grist-static, without credentialless
frames) that answers the widget's getAccessToken with the victim's document.

Two deployments, each attacked twice (the hostile page as a custom widget inside the agent's
Grist, and the hostile page on its own):
    relay   the widget served by the relay (real nginx): its Content-Security-Policy
            frame-ancestors lets only the declared Grist frame it;
    static  the widget on a plain static host (no header, only index.html's <meta>): the widget's
            own frame check (trust.js) is all there is.
Either way the attacker gets no DS request and no row, and the agent's Grist still syncs with the
remembered token (« Synchroniser à l'ouverture »).
"""
from __future__ import annotations

import sys
import time
import urllib.parse
from pathlib import Path

import pytest

from grist_core import CoreHost
from harness import TOKEN, StaticServer, find_widget_frame, launch_chromium_partitioned, wait_widget_state

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from tests.relay_nginx import IN_CI, NginxRelay, missing_nginx  # noqa: E402

WIDGET_DIR = ROOT / "widget" / "dist"
NUMBER = 13579
DOSSIERS = 5
UNTRUSTED = "n'est pas un serveur Grist autorisé pour ce widget"


@pytest.fixture(scope="module")
def partitioned_browser(playwright_driver):
    browser = launch_chromium_partitioned(playwright_driver)
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def ds(module_fake_ds):
    return module_fake_ds(number=NUMBER, dossiers=DOSSIERS, seed=17)


@pytest.fixture(scope="module")
def attacker(otp_manifest):
    """The hostile origin: same site as the agent's Grist (127.0.0.1), another port."""
    roots = {"/grist/": ROOT / "node_modules" / "grist-static" / "dist", "/demo-host/": ROOT / "demo" / "host",
             "/template/": ROOT / "demo" / "template", "/": Path(__file__).resolve().parent / "hostile"}
    with StaticServer(roots, config=None) as server:
        yield server


@pytest.fixture(scope="module", params=["relay", "static"])
def deployment(request, otp_manifest, grist_core, ds):
    """How the widget is served; the agent's Grist (grist-core) is the one declared Grist origin."""
    if request.param == "relay":
        missing = missing_nginx()
        if missing:
            pytest.fail(f"CI=true and {missing}") if IN_CI else pytest.skip(f"relay test skipped: {missing}")
        with NginxRelay(WIDGET_DIR, ds.base_url, grist_origins=grist_core.url) as relay:
            yield {"kind": "relay", "widget": f"{relay.url}/index.html", "path": relay.url + "/", "endpoint": None}
    else:
        with StaticServer({"/widget/": WIDGET_DIR}, config={}, grist_origins=[grist_core.url],
                          policy_header=False) as plain:
            yield {"kind": "static", "widget": f"{plain.url}/widget/index.html", "path": plain.url + "/widget/",
                   "endpoint": ds.url}


def test_partitioning_is_on_as_in_a_real_chrome(partitioned_browser, tmp_path):
    """A page of site A framed by site B gets its own storage, not A's (nor an error)."""
    (tmp_path / "probe.html").write_text("<!doctype html><title>probe</title><iframe></iframe>")
    with StaticServer({"/": tmp_path}, config=None) as a, \
            StaticServer({"/": tmp_path}, host="127.0.0.2", config=None) as b:
        context = partitioned_browser.new_context()
        page = context.new_page()
        page.goto(f"{a.url}/probe.html")
        page.evaluate("localStorage.setItem('probe', 'a')")
        page.goto(f"{b.url}/probe.html")
        page.evaluate("(url) => new Promise((ok) => { const f = document.querySelector('iframe'); "
                      "f.onload = ok; f.src = url; })", f"{a.url}/probe.html")
        framed = page.frames[1]
        assert framed.url == f"{a.url}/probe.html"
        assert framed.evaluate("localStorage.getItem('probe')") is None
        context.close()


def attacker_url(attacker, deployment, victim: str) -> str:
    """The hostile page: the attacker's Grist with the widget, the same procedure, and the
    victim's document given as its own."""
    query = {"widget": deployment["widget"], "demarche": str(NUMBER), "victim": victim}
    if deployment["endpoint"]:
        query["endpoint"] = deployment["endpoint"]
    return f"{attacker.url}/?{urllib.parse.urlencode(query)}"


def settle_widget_frame(page, parent_frame) -> dict:
    """Wait until the widget frame under `parent_frame` is settled: refused by the browser (no
    widget ran), or the widget says why it does nothing, or (the attack working) its sync ends.
    Returns {'ran': bool, 'state', 'text', 'href'}."""
    deadline = time.monotonic() + 90
    while True:
        children = [f for f in page.frames if f.parent_frame is parent_frame]
        for child in children:
            try:
                info = child.evaluate("""() => ({ran: typeof window.otpWidget === 'object',
                    state: document.body && document.body.dataset.state,
                    text: (document.getElementById('status') || {}).textContent || '',
                    href: location.href})""")
            except Exception:  # noqa: BLE001 - navigating
                continue
            if not info["ran"] and info["href"].startswith("chrome-error:"):
                return info                                      # refused by frame-ancestors
            if info["ran"] and info["state"] in ("untrusted", "done", "error"):
                return info
        if time.monotonic() > deadline:
            raise AssertionError(f"widget frame not settled: {[f.url for f in children]}")
        page.wait_for_timeout(200)


def stolen_tables(frame) -> list[str]:
    """The tables of the hostile page's document that the widget wrote."""
    return [t["tableId"] for t in frame.evaluate("otpHost.listTables()") if t["tableId"].startswith(("D", "OTP_"))]


def assert_refused(info: dict, deployment: dict, attacker) -> None:
    if deployment["kind"] == "relay":     # the browser refuses the frame (frame-ancestors)
        assert not info["ran"], info
    else:                                 # the widget refuses the framer itself, and says so
        assert info["state"] == "untrusted", info
        assert UNTRUSTED in info["text"] and attacker.url in info["text"], info


def test_a_hostile_page_gets_no_request_and_no_row(partitioned_browser, grist_core, attacker, ds, deployment):
    context = partitioned_browser.new_context(locale="fr-FR", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        # 1. The agent, in its Grist: types the token, ticks « Synchroniser à l'ouverture », syncs.
        doc = grist_core.new_doc(deployment["widget"])
        host = CoreHost(page, grist_core, doc, widget_path=deployment["path"])
        host.open(demarche=NUMBER, endpoint=deployment["endpoint"])
        frame = host.wait_widget_ready()
        assert frame.evaluate("otpWidget.frame.trusted") is True
        frame.click("label[for=auto-sync]")
        result = host.sync(token=TOKEN)
        if result["state"] == "confirm":          # static host: the address came from the document
            frame.evaluate("document.body.dataset.state = 'submitting'")
            frame.click("#confirm-yes")
            wait_widget_state(frame, ("done", "error"), 120)
            result = host.status()
        assert result["state"] == "done", result
        assert result["text"].startswith("Synchronisation terminée")
        (key,) = frame.evaluate("Object.keys(localStorage).filter((k) => k.startsWith('otp.demarche:'))")
        assert key.startswith(f"otp.demarche:{grist_core.url} doc:"), key
        victim = f"{grist_core.url}/api/docs/{key.rsplit(':', 2)[-2]}"
        # Two days later (the delay is 24 hours): the next opening of this document syncs by itself.
        row = grist_core.records(doc.doc_id, "OTP_Demarches")[0]
        grist_core.apply(doc.doc_id, [["UpdateRecord", "OTP_Demarches", row["id"],
                                       {"Derniere_synchro": time.time() - 48 * 3600}]])
        before = len(ds.requests)

        # 2. The hostile page as a custom widget inside the agent's Grist (any document).
        hostile_doc = grist_core.new_doc(attacker_url(attacker, deployment, victim))
        CoreHost(page, grist_core, hostile_doc, widget_path=attacker.url + "/").open()
        hostile = find_widget_frame(page, path=attacker.url + "/")
        hostile.wait_for_function("() => window.otpHost && window.otpHost.ready")
        hostile.evaluate("otpHost.ready.then(() => true)")
        inside = settle_widget_frame(page, hostile)
        page.wait_for_timeout(1500)               # a sync would have sent its first request by now
        assert ds.requests[before:] == []
        assert stolen_tables(hostile) == []
        assert_refused(inside, deployment, attacker)

        # 3. The hostile page on its own.
        page.goto(attacker_url(attacker, deployment, victim))
        page.evaluate("otpHost.ready.then(() => true)")
        direct = settle_widget_frame(page, page.main_frame)
        page.wait_for_timeout(1500)
        assert ds.requests[before:] == []
        assert stolen_tables(page.main_frame) == []
        assert_refused(direct, deployment, attacker)

        # 4. The agent's Grist, opened again: the remembered token syncs on opening.
        host = CoreHost(page, grist_core, doc, widget_path=deployment["path"])
        host.open(demarche=NUMBER, endpoint=deployment["endpoint"])
        frame = find_widget_frame(page, path=deployment["path"])
        frame.wait_for_function("() => window.otpWidget && otpWidget.autoSync !== null", timeout=60_000)
        assert frame.evaluate("otpWidget.autoSync.started") is True, frame.evaluate("otpWidget.autoSync")
        assert wait_widget_state(frame, ("done", "error"), 120) == "done", host.status()
        assert len(ds.requests) > before
        assert len(host.fetch_table(f"D{NUMBER}_Dossiers")["Numero"]) == DOSSIERS
    finally:
        context.close()
