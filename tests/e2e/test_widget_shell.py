"""End-to-end tests of the widget shell: form, loading, validation, options, bridge.

They run the built widget in a real Grist (grist-static) in headless Chromium.
They do not need Démarches Simplifiées (nor the fake DS server).
"""
from __future__ import annotations

import re

import pytest

from harness import find_widget_frame, wait_widget_state

pytestmark = pytest.mark.browser

DEFAULT_ENDPOINT = "https://demarche.numerique.gouv.fr/api/v2/graphql"
BAD_NUMBER = "Le numéro de démarche doit être un nombre entier, par exemple 12345."


def label_of(frame, input_id: str) -> str:
    return frame.evaluate("(id) => document.querySelector(`label[for=${id}]`).textContent.trim()", input_id)


def test_form_is_usable_before_python_is_ready(page, open_host):
    # Hold the manifest: the worker cannot finish loading while we look at the form.
    held = []
    page.route("**/widget/manifest.json", lambda route: held.append(route), times=1)
    host = open_host(wait_ready=False)
    frame = find_widget_frame(page)
    frame.wait_for_selector("#demarche", state="visible")

    assert frame.evaluate("document.body.dataset.state") == "loading"
    assert label_of(frame, "demarche") == "Numéro de démarche"
    assert label_of(frame, "token") == "Jeton d'API"
    assert label_of(frame, "endpoint") == "Adresse de l'API"
    assert frame.get_attribute("#demarche", "inputmode") == "numeric"
    assert frame.get_attribute("#token", "type") == "password"
    assert frame.get_attribute("#token", "autocomplete") == "off"
    assert frame.input_value("#endpoint") == DEFAULT_ENDPOINT
    assert frame.evaluate("document.querySelector('#endpoint').closest('details') !== null")
    assert frame.evaluate("document.querySelector('#advanced summary').textContent.trim()") == "Paramètres avancés"
    assert frame.get_attribute("#status", "role") == "status"
    assert frame.get_attribute("#status", "aria-live") == "polite"
    assert frame.evaluate("document.getElementById('progress').tagName") == "PROGRESS"

    # The fields can be typed into while Python loads; the button says what it waits for.
    frame.fill("#demarche", "12345")
    assert frame.is_disabled("#sync")
    frame.wait_for_function("() => /Chargement/.test(document.getElementById('sync').textContent)")
    button_text = frame.text_content("#sync")
    assert button_text in ("Chargement de Python…", "Chargement des modules…"), button_text

    # Release the manifest: Python finishes loading and the button is enabled.
    page.wait_for_timeout(200)
    assert held, "the worker never asked for manifest.json"
    for route in held:
        route.continue_()
    assert wait_widget_state(frame, ("ready", "error")) == "ready", host.status()
    assert frame.is_enabled("#sync")
    assert frame.text_content("#sync") == "Synchroniser"
    assert frame.input_value("#demarche") == "12345"


def test_button_shows_loading_then_enabled(page, open_host):
    host = open_host(wait_ready=False)
    frame = find_widget_frame(page)
    frame.wait_for_selector("#sync")
    seen = frame.evaluate("""() => new Promise((resolve) => {
        const b = document.getElementById('sync');
        const texts = [b.textContent];
        const done = () => { texts.push(b.textContent); resolve({texts, disabledWhileLoading}); };
        let disabledWhileLoading = b.disabled;
        new MutationObserver(() => {
            if (!texts.includes(b.textContent)) texts.push(b.textContent);
            if (document.body.dataset.state !== 'loading') done();
        }).observe(document.body, {subtree: true, childList: true, characterData: true, attributes: true});
        if (document.body.dataset.state !== 'loading') done();
    })""")
    assert host.status()["state"] == "ready", host.status()
    # Either we caught the loading text, or Python was already ready (tested above with a held manifest).
    if seen["texts"][0] != "Synchroniser":
        assert seen["disabledWhileLoading"]
        assert any(t.startswith("Chargement") for t in seen["texts"]), seen
    assert seen["texts"][-1] == "Synchroniser"
    assert frame.is_enabled("#sync")


def test_invalid_demarche_number_is_refused_in_js(host, widget):
    before = host.snapshot()
    for demarche in ["", "abc", "12 34", "-5", "1.5", "0"]:
        widget.evaluate("document.body.dataset.state = 'ready'")
        widget.fill("#demarche", demarche)
        widget.fill("#token", "un-jeton")
        widget.click("#sync")
        assert wait_widget_state(widget, "error") == "error", demarche
        status = host.status()
        assert status["text"] == BAD_NUMBER, demarche
        assert status["error"] is True
        assert status["enabled"] is True
        assert widget.get_attribute("#demarche", "aria-invalid") == "true"
        assert widget.evaluate("document.activeElement.id") == "demarche"
    assert host.snapshot() == before


def test_empty_token_is_refused_in_js(host, widget):
    before = host.snapshot()
    widget.fill("#demarche", "12345")
    widget.fill("#token", "   ")
    widget.click("#sync")
    wait_widget_state(widget, "error")
    status = host.status()
    assert status["text"].startswith("Saisissez le jeton d'API"), status
    assert "profil" in status["text"]          # says where to get one
    assert status["error"] is True and status["enabled"] is True
    assert widget.get_attribute("#token", "aria-invalid") == "true"
    assert host.snapshot() == before
    # Fixing the field clears the invalid marker.
    widget.fill("#token", "abc")
    assert widget.get_attribute("#token", "aria-invalid") is None


def test_url_parameters_prefill_the_form_and_token_is_never_stored(open_host):
    endpoint = "http://127.0.0.1:9/graphql"
    host = open_host(demarche="321", endpoint=endpoint, token="jeton-secret-123")
    widget = host.wait_widget_ready()
    assert widget.input_value("#demarche") == "321"
    assert widget.input_value("#endpoint") == endpoint
    assert widget.input_value("#token") == "jeton-secret-123"
    assert widget.evaluate("document.getElementById('advanced').open")   # non-default endpoint shown
    # Changing the number stores number + endpoint, never the token.
    widget.fill("#demarche", "322")
    widget.press("#demarche", "Tab")
    widget.wait_for_function("() => true")
    host.page.wait_for_function("() => otpHost.widgetOptions() && otpHost.widgetOptions().demarche === '322'")
    options = host.widget_options()
    assert options == {"demarche": "322", "endpoint": endpoint}
    assert "jeton-secret-123" not in repr(options)


def test_demarche_number_is_remembered(host, widget):
    widget.fill("#demarche", "4242")
    widget.press("#demarche", "Tab")       # 'change' -> grist.setOptions
    host.page.wait_for_function("() => (otpHost.widgetOptions() || {}).demarche === '4242'")
    assert host.widget_options() == {"demarche": "4242", "endpoint": DEFAULT_ENDPOINT}

    # A fresh widget in the same document gets it back through grist.onOptions.
    widget = host.reload_widget()
    assert widget.input_value("#demarche") == "4242"
    assert widget.input_value("#token") == ""

    # Once saved in the document (the section's Save button), it is stored for good.
    assert host.save_widget_options() == {"demarche": "4242", "endpoint": DEFAULT_ENDPOINT}
    assert host.widget_options(saved=True) == {"demarche": "4242", "endpoint": DEFAULT_ENDPOINT}


def test_demarche_number_falls_back_to_otp_demarches_table(host, widget):
    # Options never saved (Grist's default): the core's OTP_Demarches table gives the number.
    host.apply_user_actions([
        ["AddTable", "OTP_Demarches", [{"id": "Numero", "type": "Int"},
                                       {"id": "Derniere_synchro", "type": "DateTime:UTC"}]],
        ["BulkAddRecord", "OTP_Demarches", [None, None],
         {"Numero": [111, 777], "Derniere_synchro": [1_600_000_000, 1_700_000_000]}],
    ])
    widget = host.reload_widget()
    widget.wait_for_function("() => document.getElementById('demarche').value !== ''")
    assert widget.input_value("#demarche") == "777"


def test_bridge_worker_main_thread_grist(host, widget):
    """Python in the worker writes a table through grist_call and reads it back."""
    result = widget.evaluate("otpWidget.selftest()")
    assert result["applied"]["table_id"] == "OtpSelfTest"
    assert "OtpSelfTest" in result["tables"]
    assert result["data"]["Nom"] == ["un", "deux"]
    assert result["data"]["Nombre"] == [1, 2]
    # ...and the real document (seen from the host page) has it.
    assert host.fetch_table("OtpSelfTest") == {"id": [1, 2], "Nom": ["un", "deux"], "Nombre": [1, 2]}
    cols = {c["colId"]: c for c in host.columns("OtpSelfTest")}
    assert cols["Nom"]["type"] == "Text" and cols["Nombre"]["type"] == "Int"
    assert host.table_ids() == ["Accueil", "OtpSelfTest"]


def test_bridge_reports_grist_errors_to_python(widget):
    """A failing docApi call rejects the Promise: Python gets an exception with the message."""
    errors = widget.evaluate("otpWidget.selftest()")["errors"]
    # grist-static rejects with an empty Error (real Grist says "KeyError ..."): the bridge
    # then names the failed operation.
    assert errors["fetchTable"] and "fetchTable" in errors["fetchTable"] or "OtpNoSuchTable" in errors["fetchTable"], errors
    assert errors["noSuchMethod"] and "Méthode Grist inconnue : noSuchMethod" in errors["noSuchMethod"], errors


def test_widget_ready_time_is_reasonable(host, widget):
    timings = widget.evaluate("otpWidget.timings")
    assert timings["ready"] < 30_000, timings
    assert re.match(r"^\d", str(timings["worker"]["pyodide"]))
