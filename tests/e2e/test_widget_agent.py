"""The agent's day in the widget (grist-static, the built widget, the fake DS): the token kept
in this browser only and forgotten when DS rejects it, « Tester la connexion » (writes nothing),
« Synchroniser à l'ouverture », progress with rate and remaining time, « Annuler », a 429 wait
with its countdown, DS server errors retried then given up."""

from __future__ import annotations

import time

import pytest

from harness import TOKEN, dossier_pages, wait_widget_state

NUMBER = 13579
BIG = 24601
KEPT = "conservé dans ce navigateur uniquement"


@pytest.fixture
def ds(fake_ds):
    return fake_ds(number=NUMBER, dossiers=6, seed=7, others=[dict(number=BIG, dossiers=350, seed=8)])


def memory(frame) -> dict:
    """The widget's items in its origin's localStorage: {key: parsed value}."""
    return frame.evaluate("""() => Object.fromEntries(Object.keys(localStorage)
        .filter((k) => k.startsWith('otp.demarche:')).map((k) => [k, JSON.parse(localStorage.getItem(k))]))""")


def watch_status(frame) -> None:
    frame.evaluate("""() => {
        window.__seen = [];
        const status = document.getElementById('status'), detail = document.getElementById('progress-detail');
        const note = () => window.__seen.push({text: status.textContent, kind: status.className,
                                              detail: detail.textContent, t: performance.now()});
        new MutationObserver(note).observe(status, {childList: true, characterData: true, subtree: true});
        new MutationObserver(note).observe(detail, {childList: true, characterData: true, subtree: true});
    }""")


def seen(frame) -> list[dict]:
    return frame.evaluate("window.__seen")


def test_token_kept_in_this_browser_only_forgotten_on_request_and_when_ds_rejects_it(open_host, ds, store):
    host = open_host(demarche=NUMBER, endpoint=ds.url)
    widget = host.widget
    assert widget.input_value("#token") == ""
    assert widget.is_hidden("#forget-token")
    assert "conservé dans ce navigateur uniquement" in widget.text_content("#token-hint")

    # « Tester la connexion »: title and count of dossiers, nothing written, the token kept.
    before = host.snapshot()
    widget.fill("#token", TOKEN)
    requests = len(ds.requests)
    widget.click("#check")
    assert wait_widget_state(widget, ("checked", "error")) == "checked", host.status()
    status = host.status()
    title = store.procedure(NUMBER).title
    assert status["text"].startswith(f"Connexion réussie : démarche n° {NUMBER} « {title} »"), status
    assert "6 dossiers" in status["text"] and "Rien n'a été écrit dans le document" in status["text"]
    assert [r.operation_name for r in ds.requests[requests:] if r.method == "POST"] == ["otpStructure"]
    assert host.snapshot() == before, "the connection test writes nothing"
    kept = memory(widget)
    print("browser memory keys:", list(kept))
    assert list(kept.values()) == [{"jeton": TOKEN}], kept
    assert list(kept)[0].endswith(f":{NUMBER}")
    assert KEPT in widget.text_content("#token-hint") and widget.is_visible("#forget-token")

    # Never in the document, its options, the widget's URL.
    host.sync()
    assert host.status()["state"] == "done"
    assert TOKEN not in repr(host.snapshot()) and TOKEN not in repr(host.widget_options())
    assert TOKEN not in widget.evaluate("location.href")

    # A fresh widget in this browser gets it back, for this document and procedure only.
    widget = host.reload_widget()
    widget.wait_for_function("(t) => document.getElementById('token').value === t", arg=TOKEN)
    widget.fill("#demarche", str(BIG))
    widget.press("#demarche", "Tab")
    # Another procedure: the token in the field stays (a DS token often covers several), but it
    # is not kept for that one until DS accepts it there.
    assert widget.input_value("#token") == TOKEN and widget.is_hidden("#forget-token")
    assert widget.text_content("#token-hint").startswith("Après une connexion réussie")
    widget.fill("#demarche", str(NUMBER))
    widget.press("#demarche", "Tab")
    assert widget.input_value("#token") == TOKEN

    # « Oublier le jeton »
    widget.click("#forget-token")
    assert widget.input_value("#token") == "" and memory(widget) == {}
    assert host.status()["text"] == "Jeton oublié : il n'est plus conservé dans ce navigateur."
    assert not host.status()["error"]

    # Kept again after a good sync; DS then says it expired: forgotten, and the agent is told.
    assert host.sync(token=TOKEN)["state"] == "done"
    assert list(memory(widget).values()) == [{"jeton": TOKEN}]
    ds.expired_tokens.add(TOKEN)
    result = host.sync()
    assert result["state"] == "error" and "jeton d'API a expiré" in result["text"], result
    assert "Le jeton conservé dans ce navigateur a été oublié : saisissez un nouveau jeton." in result["text"]
    assert memory(widget) == {} and widget.input_value("#token") == ""
    assert widget.evaluate("otpWidget.lastError.code") == "token_expired"


def test_sync_on_opening_when_the_last_one_is_older_than_the_delay(open_host, ds, store):
    host = open_host(demarche=NUMBER, endpoint=ds.url)
    widget = host.widget
    assert not widget.is_checked("#auto-sync") and widget.is_hidden("#auto-delay")   # off by default
    widget.click("label[for=auto-sync]")        # DSFR draws the box on the label
    assert widget.is_checked("#auto-sync") and widget.is_visible("#auto-delay")
    widget.select_option("#auto-delay", "6")
    assert host.sync(token=TOKEN)["state"] == "done"
    assert list(memory(widget).values()) == [{"jeton": TOKEN, "auto": True, "delai": 6}]
    assert TOKEN not in repr(host.widget_options())

    # Synced a moment ago: opening again does not sync.
    requests = len(ds.requests)
    widget = host.reload_widget()
    widget.wait_for_function("() => otpWidget.autoSync !== null", timeout=30_000)
    assert widget.evaluate("otpWidget.autoSync.started") is False
    assert widget.is_checked("#auto-sync") and widget.input_value("#auto-delay") == "6"
    assert len(ds.requests) == requests and host.status()["state"] == "ready"

    # Seven hours later (> 6 h): opening the document syncs by itself.
    row = host.records("OTP_Demarches")[0]
    host.apply_user_actions([["UpdateRecord", "OTP_Demarches", row["id"],
                              {"Derniere_synchro": time.time() - 7 * 3600}]])
    added = store.add_dossier(procedure_number=NUMBER)
    widget.evaluate("window.__otpOld = true; location.reload()")   # not reload_widget: no 'ready' wait
    widget.wait_for_function("() => !window.__otpOld && document.body", timeout=60_000)
    assert wait_widget_state(widget, ("done", "error"), timeout=120) == "done", host.status()
    assert widget.evaluate("otpWidget.autoSync.started") is True
    assert added["number"] in {r["Numero"] for r in host.records(f"D{NUMBER}_Dossiers")}


def test_progress_rate_remaining_time_and_cancel(open_host, ds, store):
    host = open_host(demarche=BIG, endpoint=ds.url, token=TOKEN)
    widget = host.widget
    watch_status(widget)
    ds.delay_next(0.6, count=10, match=dossier_pages)
    widget.click("#sync")
    widget.wait_for_function(
        "() => /dossiers\\/s/.test(document.getElementById('progress-detail').textContent)", timeout=60_000)
    assert widget.is_visible("#cancel") and widget.is_enabled("#cancel")
    widget.click("#cancel")
    assert widget.is_disabled("#cancel")
    assert host.status()["text"] == "Annulation : la synchronisation s’arrête après la page en cours…", host.status()
    assert widget.evaluate("document.getElementById('status').className") == "info"
    assert wait_widget_state(widget, ("cancelled", "done", "error"), timeout=60) == "cancelled", host.status()
    status = host.status()
    assert status["text"].startswith("Synchronisation annulée") and not status["error"]
    assert widget.evaluate("document.getElementById('status').className") == "info"
    assert widget.is_hidden("#cancel") and status["enabled"]

    texts = seen(widget)
    counts = [s["text"] for s in texts if s["text"].endswith(" / 350 dossiers")]
    assert counts and counts[0] == "0 / 350 dossiers", counts
    details = [s["detail"] for s in texts if "dossiers/s" in s["detail"]]
    assert details and details[0].startswith("Lecture des dossiers · ") and "restante" in details[0], details
    copied = len(host.records(f"D{BIG}_Dossiers"))
    assert 0 < copied < 350
    assert host.records("OTP_Historique")[-1]["Statut"] == "Annulée"

    # The next sync goes on from there.
    again = host.sync()
    assert again["state"] == "done", again
    assert len(host.records(f"D{BIG}_Dossiers")) == 350


def test_rate_limit_shows_a_countdown_then_goes_on(open_host, ds, store):
    host = open_host(demarche=NUMBER, endpoint=ds.url, token=TOKEN)
    widget = host.widget
    watch_status(widget)
    ds.rate_limit_next(int(time.time()) + 3, count=1)
    result = host.sync()
    assert result["state"] == "done", result
    waits = [s for s in seen(widget) if s["text"].startswith("DS limite le nombre de requêtes")]
    assert waits, seen(widget)
    assert all(s["kind"] == "waiting" for s in waits)
    assert "reprise automatique dans" in waits[0]["text"] and waits[0]["text"].endswith(" s…")
    shown = [int(s["text"].split("dans ")[1].split(" s")[0]) for s in waits]
    assert shown == sorted(shown, reverse=True) and shown[-1] == 1, shown   # it counts down
    assert [r.status for r in ds.requests if r.method == "POST"][:2] == [429, 200]
    assert len(host.records(f"D{NUMBER}_Dossiers")) == 6


def test_ds_server_errors_are_retried_then_the_sync_stops(open_host, ds):
    host = open_host(demarche=NUMBER, endpoint=ds.url, token=TOKEN)
    widget = host.widget
    watch_status(widget)
    before = host.snapshot()
    ds.fail_next(500, count=20)
    result = host.sync(timeout=120)
    assert result["state"] == "error", result
    assert "DS a répondu par une erreur (code 500)" in result["text"] and "Réessayez" in result["text"]
    retries = [s["text"] for s in seen(widget) if "nouvel essai" in s["text"]]
    assert any("(1/4)" in t for t in retries) and any("(4/4)" in t for t in retries), retries
    structure = [r.status for r in ds.requests if r.method == "POST" and r.operation_name == "otpStructure"]
    assert structure == [500] * 5, "asked once, then 4 times again"
    pages = [r.status for r in ds.requests if r.method == "POST" and r.operation_name == "otpDossiers"]
    assert set(pages) <= {500} and len(pages) <= 5, "the first page, asked beside it, stops with it"
    assert host.snapshot() == before
    assert list(memory(widget).values()) == [], "a token DS never accepted is not kept"


def test_token_kept_across_a_page_reload_on_grist_core(open_core_host, ds):
    """On a Grist server the widget frame is not credentialless: the token outlives the page."""
    host = open_core_host(demarche=NUMBER, endpoint=ds.url, token=TOKEN)
    assert host.sync()["state"] == "done"
    # Grist's origin, the document's id (Grist's short url id) and the number; other tests'
    # documents may have left theirs in the same browser profile
    prefix = f"otp.demarche:{host.server.url} doc:"
    (key,) = [k for k in memory(host.widget)
              if k.startswith(prefix) and host.doc_id.startswith(k.removeprefix(prefix).rsplit(":", 1)[0])]
    doc = key.removeprefix(prefix).removesuffix(f":{NUMBER}")
    assert len(doc) >= 12 and host.doc_id.startswith(doc), (key, host.doc_id)
    widget = host.reload()      # the whole Grist page
    widget.wait_for_function("(t) => document.getElementById('token').value === t", arg=TOKEN)
    assert KEPT in widget.text_content("#token-hint")
    assert TOKEN not in repr(host.snapshot()) and TOKEN not in repr(host.widget_options(saved=False))
    host.token = None           # nothing typed: the remembered token syncs
    again = host.sync()
    assert again["state"] == "done", again


def test_a_revoked_token_is_forgotten_with_the_reason(open_host, ds):
    host = open_host(demarche=NUMBER, endpoint=ds.url)
    assert host.sync(token=TOKEN)["state"] == "done"
    widget = host.widget
    assert list(memory(widget).values()) == [{"jeton": TOKEN}]
    del ds.tokens[TOKEN]                       # revoked in DS
    widget.click("#check")
    assert wait_widget_state(widget, ("checked", "error")) == "error"
    text = host.status()["text"]
    assert "ne reconnaît pas ce jeton" in text and "a été oublié" in text, text
    assert memory(widget) == {} and widget.input_value("#token") == ""
    assert widget.evaluate("otpWidget.lastError.code") == "token_rejected"
