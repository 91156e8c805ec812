"""Bad input and DS refusals: a French message saying what to do, and the document unchanged
(on grist-static and on grist-core: open_grist is parametrized)."""

from __future__ import annotations

import socket

import pytest

from harness import NUMBER, TOKEN


@pytest.fixture(scope="module")
def ds(module_fake_ds):
    return module_fake_ds(dossiers=5, seed=3, others=[dict(number=777, dossiers=2, seed=4)],
                          tokens={TOKEN: {NUMBER}}, expired_tokens=("jeton-expire",))


@pytest.fixture(scope="module")
def ds_without_cors(module_fake_ds, ds):
    return module_fake_ds(store=ds.store, cors=False)


def closed_port_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/api/v2/graphql"


CASES = [
    # id, form values (None = keep), expected fragments of the French message
    ("expired-token", dict(token="jeton-expire"), ["jeton d'API a expiré", "Créez un nouveau jeton"]),
    ("unknown-token", dict(token="jeton-inconnu"), ["ne reconnaît pas ce jeton", "copié le jeton en entier"]),
    ("unknown-procedure", dict(demarche="99999"), ["n° 99999 n'existe pas", "Vérifiez le numéro"]),
    ("procedure-not-accessible", dict(demarche="777"), ["n'a pas accès à la démarche n° 777", "administrateur"]),
]


@pytest.mark.parametrize("case,values,fragments", CASES, ids=[c[0] for c in CASES])
def test_ds_refusals_explain_what_to_do_and_change_nothing(open_grist, ds, case, values, fragments):
    host = open_grist(demarche=NUMBER, endpoint=ds.url, token=TOKEN)
    before = host.snapshot()
    result = host.sync(**values)
    assert result["state"] == "error" and result["error"], result
    for fragment in fragments:
        assert fragment in result["text"], (fragment, result["text"])
    assert TOKEN not in result["text"] and "jeton-expire" not in result["text"]
    assert host.snapshot() == before
    assert result["enabled"], "the button is usable again"


def test_cors_block_points_to_the_relay(open_grist, ds_without_cors):
    host = open_grist(demarche=NUMBER, endpoint=ds_without_cors.url, token=TOKEN)
    before = host.snapshot()
    result = host.sync()
    assert result["state"] == "error"
    assert "n'autorise pas les appels directs" in result["text"]
    assert "Relais vers l'API DS" in result["text"]
    assert host.snapshot() == before


def test_unreachable_api_says_so(open_host):
    url = closed_port_url()
    host = open_host(demarche=NUMBER, endpoint=url, token=TOKEN)
    before = host.snapshot()
    result = host.sync()
    assert result["state"] == "error"
    assert f"Impossible de joindre l'API à l'adresse {url}" in result["text"]
    assert host.snapshot() == before


@pytest.mark.parametrize("demarche,fragment", [("", "numéro de démarche"), ("12a", "nombre entier")])
def test_bad_procedure_number_is_refused_before_any_request(open_grist, ds, demarche, fragment):
    host = open_grist(demarche=NUMBER, endpoint=ds.url, token=TOKEN)
    before = host.snapshot()
    requests = len(ds.requests)
    result = host.sync(demarche=demarche)
    assert result["state"] == "error" and fragment in result["text"]
    assert len(ds.requests) == requests
    assert host.snapshot() == before


def test_empty_token_is_refused(open_grist, ds):
    host = open_grist(demarche=NUMBER, endpoint=ds.url, token=TOKEN)
    before = host.snapshot()
    result = host.sync(token="")
    assert result["state"] == "error" and "jeton" in result["text"].lower()
    assert host.snapshot() == before
