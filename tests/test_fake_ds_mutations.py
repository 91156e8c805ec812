"""The fake DS's mutations behave as DS's (`../shared/ds/README.md`, « Writing back to DS »):
payload refusals, read-only tokens, instructeur rights, state guards, `@oneOf` values,
non-atomic annotations, notifications unless disabled, modification dates. Every document sent
here validates against the real DS schema (when it is beside the repository)."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
from graphql import build_schema, parse, validate

from demo.fake_ds import FakeDSServer, FakeDSStore, sample_procedure
from demo.fake_ds.store import encode_id

TOKEN, READ_ONLY = "jeton-ecriture", "jeton-lecture"
REAL_SCHEMA = Path(__file__).resolve().parents[2] / "shared/ds/schema.graphql"

ANNOTATIONS = """mutation otpAnnotations($input: DossierModifierAnnotationsInput!) {
  dossierModifierAnnotations(input: $input) {
    annotations { id champDescriptorId stringValue }
    errors { message }
  }
}"""
LABEL = """mutation otpLabel($input: DossierAjouterLabelInput!) {
  dossierAjouterLabel(input: $input) { dossier { number labels { name } } errors { message } }
}"""
UNLABEL = """mutation otpUnlabel($input: DossierSupprimerLabelInput!) {
  dossierSupprimerLabel(input: $input) { dossier { number } errors { message } }
}"""
DECISIONS = {
    name: f"""mutation otpDecision($input: {name[0].upper()}{name[1:]}Input!) {{
  {name}(input: $input) {{ dossier {{ number state motivation dateTraitement }} errors {{ message }} }}
}}"""
    for name in ("dossierPasserEnInstruction", "dossierAccepter", "dossierRefuser", "dossierClasserSansSuite",
                 "dossierRepasserEnConstruction", "dossierRepasserEnInstruction")
}


@pytest.fixture
def ds():
    store = FakeDSStore([sample_procedure(number=4242, dossier_count=12, seed=3)])
    with FakeDSServer(store, tokens={TOKEN: "all", READ_ONLY: "all", "autre": [1]}, read_only_tokens=[READ_ONLY]) as server:
        yield server


def send(ds: FakeDSServer, document: str, input_: dict, token: str = TOKEN) -> dict:
    body = json.dumps({"query": document, "variables": {"input": input_}}).encode()
    request = urllib.request.Request(ds.url, data=body, method="POST",
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def procedure(ds):
    return ds.store.procedure(4242)


def dossier_in(ds, state: str, *, active: bool = False) -> dict:
    """A dossier in `state` (on the form's active revision: the annotations of the others'
    revisions may lack some, which DS answers « n’existe pas »)."""
    revision = procedure(ds).active_revision["id"]
    return next(d for d in procedure(ds).dossiers.values() if d["state"] == state and (not active or d["_revisionId"] == revision))


def instructeur_of(dossier: dict) -> str:
    return dossier["groupeInstructeur"]["instructeurs"][0]["id"]


def annotation(ds, label: str) -> dict:
    return next(d for d in procedure(ds).active_revision["annotationDescriptors"] if d["label"] == label)


def dossier_id(dossier: dict) -> str:
    return encode_id("Dossier", dossier["number"])


@pytest.mark.skipif(not REAL_SCHEMA.is_file(), reason="real DS schema absent (../shared)")
@pytest.mark.parametrize("document", [ANNOTATIONS, LABEL, UNLABEL, *DECISIONS.values()])
def test_every_mutation_sent_validates_against_the_real_schema(document):
    assert validate(build_schema(REAL_SCHEMA.read_text()), parse(document)) == []


@pytest.mark.parametrize("label, value, cell", [
    ("Note", {"integerNumber": 15}, "15"),
    ("Commentaire de l'instructeur", {"textarea": "<b>pas du HTML</b>\n=1+1"}, "<b>pas du HTML</b>\n=1+1"),
    ("Dossier complet", {"checkbox": True}, "true"),
    ("Avis favorable", {"yesNo": False}, "false"),
    ("Priorité", {"dropDownList": "Haute"}, "Haute"),
    ("Montant accordé (€)", {"decimalNumber": 1234.5}, None),
    ("Date du comité", {"date": "2026-03-15"}, "15 mars 2026"),
])
def test_an_annotation_of_each_type_is_saved_and_moves_the_modification_date_once(ds, label, value, cell):
    dossier = dossier_in(ds, "en_instruction", active=True)
    target = annotation(ds, label)
    ds.store.hide_champ(dossier["number"], target["id"])  # then saving it is a change
    before = dossier["dateDerniereModification"]
    annotations_date = dossier.get("dateDerniereModificationAnnotations")
    answer = send(ds, ANNOTATIONS, {"dossierId": dossier_id(dossier), "instructeurId": instructeur_of(dossier),
                                    "annotations": [{"id": target["id"], "value": value}]})["data"]["dossierModifierAnnotations"]
    assert answer["errors"] is None and [a["champDescriptorId"] for a in answer["annotations"]] == [target["id"]]
    if cell is not None:
        assert answer["annotations"][0]["stringValue"] == cell
    moved = dossier["dateDerniereModification"]
    assert moved != before and dossier.get("dateDerniereModificationAnnotations") == annotations_date
    again = send(ds, ANNOTATIONS, {"dossierId": dossier_id(dossier), "instructeurId": instructeur_of(dossier),
                                   "annotations": [{"id": target["id"], "value": value}]})
    assert again["data"]["dossierModifierAnnotations"]["errors"] is None
    assert dossier["dateDerniereModification"] == moved, "the same value again moves nothing"


def test_annotations_are_not_atomic_the_valid_ones_are_saved_the_others_listed(ds):
    dossier = dossier_in(ds, "en_instruction", active=True)
    note, priority = annotation(ds, "Note"), annotation(ds, "Priorité")
    answer = send(ds, ANNOTATIONS, {"dossierId": dossier_id(dossier), "instructeurId": instructeur_of(dossier), "annotations": [
        {"id": note["id"], "value": {"integerNumber": 12}},
        {"id": priority["id"], "value": {"text": "Haute"}},  # wrong key for a drop-down
        {"id": encode_id("Champ", 999999), "value": {"text": "x"}},  # no such annotation
        {"id": priority["id"], "value": {"dropDownList": "Très haute"}},  # not an option
    ]})["data"]["dossierModifierAnnotations"]
    assert [a["champDescriptorId"] for a in answer["annotations"]] == [note["id"]]
    messages = [e["message"] for e in answer["errors"]]
    assert "n’est pas de type attendu" in messages[0] and "n’existe pas" in messages[1] and "liste" in messages[2]


def test_a_value_with_other_than_one_key_is_refused_as_a_whole(ds):
    dossier = dossier_in(ds, "en_instruction", active=True)
    note = annotation(ds, "Note")
    for value in ({}, {"integerNumber": 1, "text": "1"}):
        answer = send(ds, ANNOTATIONS, {"dossierId": dossier_id(dossier), "instructeurId": instructeur_of(dossier),
                                        "annotations": [{"id": note["id"], "value": value}]})
        assert answer["errors"] and "exactly one key" in answer["errors"][0]["message"]


def test_repetition_adds_rows_without_moving_the_date(ds):
    dossier = dossier_in(ds, "en_instruction", active=True)
    block = annotation(ds, "Versements")
    before = dossier["dateDerniereModification"]
    rows = len(next((c for c in dossier["annotations"] if c["champDescriptorId"] == block["id"]), {}).get("rows") or [])
    answer = send(ds, ANNOTATIONS, {"dossierId": dossier_id(dossier), "instructeurId": instructeur_of(dossier),
                                    "annotations": [{"id": block["id"], "value": {"repetition": 2}}]})
    assert answer["data"]["dossierModifierAnnotations"]["errors"] is None
    after = next(c for c in dossier["annotations"] if c["champDescriptorId"] == block["id"])
    assert len(after["rows"]) == rows + 2 and dossier["dateDerniereModification"] == before


@pytest.mark.parametrize("document", ["annotations", "label", "decision"])
def test_a_read_only_token_is_told_in_the_payload_and_nothing_changes(ds, document):
    dossier = dossier_in(ds, "en_instruction")
    before = json.dumps(dossier, sort_keys=True, default=str)
    base = {"dossierId": dossier_id(dossier)}
    query, input_, field = {
        "annotations": (ANNOTATIONS, {**base, "instructeurId": instructeur_of(dossier),
                                      "annotations": [{"id": annotation(ds, "Note")["id"], "value": {"integerNumber": 3}}]},
                        "dossierModifierAnnotations"),
        "label": (LABEL, {**base, "labelId": procedure(ds).labels[0]["id"]}, "dossierAjouterLabel"),
        "decision": (DECISIONS["dossierAccepter"], {**base, "instructeurId": instructeur_of(dossier)}, "dossierAccepter"),
    }[document]
    answer = send(ds, query, input_, token=READ_ONLY)["data"][field]
    assert answer["errors"] == [{"message": "Le jeton utilisé est configuré seulement en lecture"}]
    assert json.dumps(dossier, sort_keys=True, default=str) == before and not ds.store.notifications


def test_an_instructeur_outside_the_dossiers_groupe_is_refused(ds):
    dossier = dossier_in(ds, "en_instruction")
    members = {i["id"] for i in dossier["groupeInstructeur"]["instructeurs"]}
    outsider = next(i["id"] for g in procedure(ds).groupe_instructeurs for i in g["instructeurs"] if i["id"] not in members)
    answer = send(ds, DECISIONS["dossierAccepter"], {"dossierId": dossier_id(dossier), "instructeurId": outsider})
    assert answer["data"]["dossierAccepter"]["errors"] == [{"message": "L’instructeur n’a pas les droits d’accès à ce dossier"}]
    assert dossier["state"] == "en_instruction"


def test_an_unknown_dossier_or_one_the_token_may_not_see_is_a_top_level_error(ds):
    answer = send(ds, LABEL, {"dossierId": encode_id("Dossier", 1), "labelId": "x"})
    assert answer["errors"][0]["extensions"]["code"] == "not_found"
    dossier = dossier_in(ds, "en_instruction")
    answer = send(ds, LABEL, {"dossierId": dossier_id(dossier), "labelId": "x"}, token="autre")
    assert answer["errors"][0]["extensions"]["code"] == "unauthorized"


@pytest.mark.parametrize("name, start, end, motivation, ok", [
    ("dossierPasserEnInstruction", "en_construction", "en_instruction", None, True),
    ("dossierPasserEnInstruction", "en_instruction", None, None, False),
    ("dossierAccepter", "en_instruction", "accepte", "", True),
    ("dossierAccepter", "en_construction", None, "", False),
    ("dossierRefuser", "en_instruction", "refuse", "Pièces manquantes", True),
    ("dossierRefuser", "en_instruction", None, "  ", False),
    ("dossierClasserSansSuite", "en_instruction", "sans_suite", "Doublon", True),
    ("dossierRepasserEnConstruction", "en_instruction", "en_construction", None, True),
    ("dossierRepasserEnInstruction", "accepte", "en_instruction", None, True),
    ("dossierRepasserEnInstruction", "en_construction", None, None, False),
])
def test_decisions_follow_the_states_dates_and_notify_the_usager(ds, name, start, end, motivation, ok):
    dossier = dossier_in(ds, start)
    before = dossier["dateDerniereModification"]
    input_ = {"dossierId": dossier_id(dossier), "instructeurId": instructeur_of(dossier)}
    if motivation is not None:
        input_["motivation"] = motivation
    answer = send(ds, DECISIONS[name], input_)["data"][name]
    if ok:
        assert answer["errors"] is None and answer["dossier"]["state"] == end and dossier["state"] == end
        assert dossier["dateDerniereModification"] != before
        assert ds.store.notifications[-1]["dossier"] == dossier["number"]
        if end in ("refuse", "sans_suite"):
            assert answer["dossier"]["motivation"] == motivation and answer["dossier"]["dateTraitement"]
    else:
        assert answer["errors"] and dossier["state"] == start and dossier["dateDerniereModification"] == before
        assert not ds.store.notifications


def test_disable_notification_sends_no_email(ds):
    dossier = dossier_in(ds, "en_construction")
    answer = send(ds, DECISIONS["dossierPasserEnInstruction"], {"dossierId": dossier_id(dossier), "instructeurId": instructeur_of(dossier),
                                                                "disableNotification": True})
    assert answer["data"]["dossierPasserEnInstruction"]["errors"] is None and not ds.store.notifications


def test_labels_are_added_and_removed_once_and_move_no_date(ds):
    dossier = dossier_in(ds, "en_instruction")
    dossier["labels"] = []
    before = dossier["dateDerniereModification"]
    label = procedure(ds).labels[0]
    first = send(ds, LABEL, {"dossierId": dossier_id(dossier), "labelId": label["id"]})["data"]["dossierAjouterLabel"]
    assert first["errors"] is None and [l["name"] for l in first["dossier"]["labels"]] == [label["name"]]
    twice = send(ds, LABEL, {"dossierId": dossier_id(dossier), "labelId": label["id"]})["data"]["dossierAjouterLabel"]
    assert twice["errors"] == [{"message": "Ce label est déjà associé au dossier"}]
    removed = send(ds, UNLABEL, {"dossierId": dossier_id(dossier), "labelId": label["id"]})["data"]["dossierSupprimerLabel"]
    assert removed["errors"] is None and dossier["labels"] == []
    again = send(ds, UNLABEL, {"dossierId": dossier_id(dossier), "labelId": label["id"]})["data"]["dossierSupprimerLabel"]
    assert again["errors"] == [{"message": "Ce label n’est pas associé au dossier"}]
    assert dossier["dateDerniereModification"] == before
