"""The fake DS's public prefill API over real HTTP, against DS's facts (../shared/ds/README.md,
« Prefilling »): exact Content-Type, 404, silent drops, 201 answers, tracking by tokens, the
15-per-15-s throttle, brouillons invisible to GraphQL until the person submits them."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from demo.fake_ds import FakeDSServer, FakeDSStore, sample_procedure
from tests.virtual_clock import VirtualClock

NUMBER = 4321
TOKEN = "jeton"


@pytest.fixture
def store():
    procedure = sample_procedure(number=NUMBER, dossier_count=3, seed=5)
    procedure.for_individual = True
    closed = sample_procedure(number=999, dossier_count=0, seed=6)
    closed.state = "close"
    return FakeDSStore([procedure, closed])


@pytest.fixture
def server(store):
    with FakeDSServer(store, tokens={TOKEN: "all"}, cors=False) as fake:
        yield fake


def key(store, label, number=NUMBER):
    descriptor = next(d for d in store.procedure(number).active_revision["champDescriptors"] if d["label"] == label)
    return "champ_" + descriptor["id"].rstrip("=")


def call(server, method, path, body=None, content_type="application/json"):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(server.base_url + path, data=data, method=method)
    if content_type and data is not None:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def create(server, body, number=NUMBER, **options):
    return call(server, "POST", f"/api/public/v1/demarches/{number}/dossiers", body, **options)


def graphql_numbers(server):
    query = "query q($n: Int!) { demarche(number: $n) { dossiers { nodes { number state } } } }"
    request = urllib.request.Request(server.url, data=json.dumps({"query": query, "variables": {"n": NUMBER}}).encode(),
                                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        nodes = json.loads(answer.read())["data"]["demarche"]["dossiers"]["nodes"]
    return {n["number"]: n["state"] for n in nodes}


def test_content_type_must_be_exactly_json(server):
    status, body = create(server, {}, content_type="application/json; charset=utf-8")
    assert (status, json.loads(body)) == (400, {"error": "Content-Type should be json"})
    status, body = create(server, {}, content_type="text/plain")
    assert status == 400
    assert server.prefill.created == 0


def test_a_procedure_neither_published_nor_in_test_is_not_found(server):
    status, body = create(server, {}, number=999)
    assert (status, json.loads(body)) == (404, {"error": "procedure 999 is not found"})
    assert create(server, {}, number=123456)[0] == 404


def test_201_answer_and_a_brouillon_invisible_to_graphql_until_submitted(server, store):
    before = graphql_numbers(server)
    status, body = create(server, {key(store, "Nombre de bénéficiaires"): "12", "identite_nom": "Durand",
                                   "identite_prenom": "Léa", "identite_genre": "Mme"})
    answer = json.loads(body)
    assert status == 201
    assert set(answer) == {"dossier_url", "state", "dossier_id", "dossier_number", "dossier_prefill_token"}
    assert answer["state"] == "prefilled" and "prefill_token=" + answer["dossier_prefill_token"] in answer["dossier_url"]
    number = answer["dossier_number"]
    assert graphql_numbers(server) == before, "a brouillon is invisible to GraphQL"
    server.prefill.claim(answer["dossier_prefill_token"])
    assert number not in graphql_numbers(server), "claimed but not submitted: still a brouillon"
    server.prefill.submit(answer["dossier_prefill_token"])
    assert graphql_numbers(server)[number] == "en_construction"
    dossier = store.dossier(number)
    assert dossier["demandeur"]["nom"] == "Durand" and dossier["demandeur"]["civilite"] == "Mme"
    champ = next(c for c in dossier["champs"] if c["label"] == "Nombre de bénéficiaires")
    assert champ["value"] == "12"


@pytest.mark.parametrize("label, value, kept", [
    ("Nombre de bénéficiaires", "12", 12), ("Nombre de bénéficiaires", "12,5", None), ("Nombre de bénéficiaires", "douze", None),
    ("Montant demandé (€)", "1234.5", 1234.5), ("Montant demandé (€)", "beaucoup", None),
    ("Date de naissance du porteur", "1990-02-28", "1990-02-28"), ("Date de naissance du porteur", "28/02/1990", None),
    ("Date de naissance du porteur", "1990-02-30", None),
    ("Date et heure du rendez-vous", "2026-03-02T10:30:00+01:00", "2026-03-02T10:30:00+01:00"),
    ("Date et heure du rendez-vous", "demain", None),
    ("Le projet a-t-il déjà commencé ?", "true", "true"), ("Le projet a-t-il déjà commencé ?", "oui", None),
    ("Le projet a-t-il déjà commencé ?", True, None),
    ("J'atteste sur l'honneur l'exactitude des informations", "false", "false"),
    ("Civilité", "Mme", "Mme"), ("Civilité", "Madame", None),
    ("Thématiques", ["Culture"], ["Culture"]), ("Thématiques", ["Culture", "Inconnue"], None),
    ("Pays de naissance", "BE", "BE"), ("Pays de naissance", "XX", None),
    ("Région", "28", "28"), ("Région", "99", None),
    ("Département de résidence", "14", "14"), ("Département de résidence", "14 – Calvados", None),
    ("Commune de résidence", ["14000", "14118"], ["14000", "14118"]), ("Commune de résidence", ["14000", "99999"], None),
    ("EPCI", ["14", "200065597"], ["14", "200065597"]), ("EPCI", ["14", "123"], None),
    ("Adresse électronique", "pas-un-courriel", "pas-un-courriel"),  # stored unchecked
    ("Département du projet", "pas une option", "pas une option"),  # single drop-down: unchecked
    ("Localisation du projet", "{}", None),  # carte: not prefillable
])
def test_invalid_values_are_dropped_silently_per_type(server, store, label, value, kept):
    status, body = create(server, {key(store, label): value})
    assert status == 201
    brouillon = server.prefill.dossiers[json.loads(body)["dossier_prefill_token"]]
    descriptor_id = next(d["id"] for d in store.procedure(NUMBER).active_revision["champDescriptors"] if d["label"] == label)
    assert brouillon.values.get(descriptor_id) == kept


def test_a_dossier_link_is_kept_only_for_an_existing_dossier(server, store):
    existing = next(iter(store.procedure(NUMBER).dossiers))
    for value, kept in ((str(existing), existing), ("1", None)):
        body = json.loads(create(server, {key(store, "Dossier lié"): value})[1])
        assert server.prefill.dossiers[body["dossier_prefill_token"]].values.get(
            next(d["id"] for d in store.procedure(NUMBER).active_revision["champDescriptors"] if d["label"] == "Dossier lié")) == kept


def test_a_repeatable_block_keeps_valid_sub_values_row_by_row(server, store):
    block = next(d for d in store.procedure(NUMBER).active_revision["champDescriptors"] if d["type"] == "repetition")
    sub = {d["label"]: "champ_" + d["id"].rstrip("=") for d in block["champDescriptors"]}
    rows = [{sub["Nom"]: "Martin", sub["Date d'arrivée"]: "2025-01-15"}, {sub["Nom"]: "Petit", sub["Date d'arrivée"]: "hier"}]
    body = json.loads(create(server, {"champ_" + block["id"].rstrip("="): rows})[1])
    kept = server.prefill.dossiers[body["dossier_prefill_token"]].values[block["id"]]
    assert len(kept) == 2 and len(kept[0]) == 2 and len(kept[1]) == 1, "the invalid date alone is dropped"
    server.prefill.submit(body["dossier_prefill_token"])
    champ = next(c for c in store.dossier(body["dossier_number"])["champs"] if c["__typename"] == "RepetitionChamp")
    assert [r["champs"][0]["value"] for r in champ["rows"]] == ["Martin", "Petit"]


def test_identity_genre_is_checked(server):
    body = json.loads(create(server, {"identite_genre": "Monsieur", "identite_nom": "Roux"})[1])
    assert server.prefill.dossiers[body["dossier_prefill_token"]].values == {"identite_nom": "Roux"}


def test_tracking_by_tokens_leaves_unknown_ones_out_and_follows_the_dossier(server, store):
    tokens = [json.loads(create(server, {})[1])["dossier_prefill_token"] for _ in range(3)]
    server.prefill.submit(tokens[1])
    status, body = call(server, "GET", f"/api/public/v1/demarches/{NUMBER}/dossiers?prefill_token={tokens[0]},{tokens[1]},inconnu")
    answer = {a["dossier_prefill_token"]: a for a in json.loads(body)}
    assert status == 200 and set(answer) == {tokens[0], tokens[1]}
    assert answer[tokens[0]]["state"] == "prefilled" and answer[tokens[0]]["dossier_url"]
    submitted = answer[tokens[1]]
    assert submitted["state"] == "en_construction" and submitted["submitted_at"] and "dossier_url" not in submitted
    store.change_state(submitted["dossier_number"], "accepte")
    again = json.loads(call(server, "GET", f"/api/public/v1/demarches/{NUMBER}/dossiers?prefill_token={tokens[1]}")[1])
    assert again[0]["state"] == "accepte" and again[0]["processed_at"]


def test_fifteen_posts_per_fifteen_seconds_then_429(server):
    clock = VirtualClock()
    server.prefill.monotonic = clock.now
    statuses = [create(server, {})[0] for _ in range(16)]
    assert statuses == [201] * 15 + [429]
    assert server.prefill.created == 15
    clock.t += 14.9
    assert create(server, {})[0] == 429, "a 429 inside the window creates nothing"
    clock.t += 0.2
    assert create(server, {})[0] == 201
    assert server.prefill.created == 16


def test_the_person_edits_what_was_prefilled_before_submitting(server, store):
    label = "Nombre de bénéficiaires"
    descriptor_id = next(d["id"] for d in store.procedure(NUMBER).active_revision["champDescriptors"] if d["label"] == label)
    body = json.loads(create(server, {key(store, label): "12"})[1])
    server.prefill.claim(body["dossier_prefill_token"])
    dossier = server.prefill.submit(body["dossier_prefill_token"], edits={descriptor_id: 14})
    assert next(c for c in dossier["champs"] if c["label"] == label)["value"] == "14"
    assert dossier["prefilled"] is True and dossier["state"] == "en_construction"
