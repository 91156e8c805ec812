"""What the widget's worker calls (`py_core.widget_entry.run`), under CPython: the same path as
in Pyodide but the transport (urllib instead of the browser's fetch) and the Grist bridge (an
async function over Grist's engine instead of the main thread's plugin API)."""

from __future__ import annotations

import json

import pytest

from py_core import widget_entry
from py_core.ds.transport import UrllibTransport
from tests.grist_engine import engine_missing
from tests.lab import TOKEN, Lab, run

pytestmark = pytest.mark.skipif(engine_missing() is not None, reason=str(engine_missing()))


def bridge(sink):
    """`grist_call(method, args_json)` as the worker gives it: JSON text in, JSON text out."""
    async def grist_call(method: str, args_json: str) -> str:
        args = json.loads(args_json)
        if method == "fetchTable":
            return json.dumps(await sink.fetch_table(*args))
        if method == "applyUserActions":
            return json.dumps({"retValues": await sink.apply(*args)})
        raise RuntimeError(f"méthode inconnue {method}")
    return grist_call


def call(lab: Lab, name: str, params: dict, events: list | None = None) -> dict:
    envelope = run(widget_entry.run(name, json.dumps(params), bridge(lab.sink), (events if events is not None else []).append,
                                    lambda: False, transport=UrllibTransport(timeout=5)))
    return json.loads(envelope)


@pytest.fixture
def lab():
    with Lab(dossiers=5) as lab:
        yield lab


def params(lab: Lab, **extra) -> dict:
    return {"demarche": str(lab.number), "token": TOKEN, "endpoint": lab.server.url, "holder": "onglet/1", **extra}


def test_a_sync_through_the_workers_entry_returns_its_result_and_emits_progress(lab):
    events: list[str] = []
    envelope = call(lab, "sync_from_widget", params(lab), events)
    assert envelope["ok"], envelope
    result = json.loads(envelope["result"])
    assert result["total"] == 5 and result["message"].startswith("Synchronisation terminée : 5 dossiers")
    assert any(json.loads(e)["kind"] == "phase" for e in events)
    assert lab.dossier_numbers() == lab.ds_numbers()


def test_a_connection_test_reads_the_structure_and_writes_nothing(lab):
    before = lab.snapshot()
    envelope = call(lab, "check_from_widget", params(lab))
    assert envelope["ok"] and json.loads(envelope["result"])["message"].startswith("Connexion réussie")
    assert lab.snapshot() == before


@pytest.mark.parametrize("bad, code, words", [
    ({"demarche": "douze"}, "demarche_invalid", "n'est pas un numéro de démarche"),
    ({"token": ""}, "token_empty", "Le jeton d'API est vide"),
    ({"endpoint": "ftp://ds"}, "endpoint_invalid", "L'adresse de l'API n'est pas valide"),
])
def test_bad_input_comes_back_in_french_with_its_code(lab, bad, code, words):
    envelope = call(lab, "check_from_widget", params(lab, **bad))
    assert not envelope["ok"] and envelope["code"] == code and words in envelope["message"]


def test_no_message_ever_shows_the_token(lab):
    secret = "jeton-tres-secret-0123"  # pasted in the number field too
    envelope = call(lab, "sync_from_widget", {**params(lab), "token": secret, "demarche": secret})
    assert not envelope["ok"] and envelope["code"] == "demarche_invalid" and "***" in envelope["message"]
    assert secret not in json.dumps(envelope)
    unknown = call(lab, "no_such_entry", {**params(lab), "token": secret})
    assert not unknown["ok"] and unknown["message"].startswith("Erreur inattendue") and secret not in json.dumps(unknown)


def test_redact_masks_only_a_real_token():
    assert widget_entry.redact("a jeton-123 b", "jeton-123") == "a *** b"
    assert widget_entry.redact("abc", "ab") == "abc", "too short to be a token: words stay"
