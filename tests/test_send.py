"""Issue 19: from Grist back to DS. Whole sends under CPython: Grist's engine as the document,
the fake DS over real HTTP executing the real schema and DS's mutations, the real core between.

Each test reads as the behaviour it specifies: three-way (never a silent overwrite), see before
sending, who sends, nothing twice, the copy equal to DS after, a journal of everything.
"""

from __future__ import annotations

import pytest

from py_core import errors
from tests.grist_engine import engine_missing
from tests.lab import Lab

pytestmark = pytest.mark.skipif(engine_missing() is not None, reason=str(engine_missing()))


@pytest.fixture
def lab():
    with Lab(dossiers=40) as lab:
        lab.sync()
        yield lab


def annotation_id(lab, typename, label=None):
    return lab.descriptor(typename, label, annotation=True)["id"]


def ds_annotation(lab, number, descriptor_id):
    champ = next((c for c in lab.store.dossier(number)["annotations"] if c["champDescriptorId"] == descriptor_id), None)
    return None if champ is None else champ.get("stringValue")


def in_state(lab, state, i=0):
    """The i-th dossier in `state` filed on the active form (older ones lack some annotations)."""
    procedure = lab.store.procedure(lab.number)
    active = procedure.active_revision["id"]
    return sorted(n for n, d in procedure.dossiers.items() if d["state"] == state and d["_revisionId"] == active)[i]


def note_and_name(lab):
    return annotation_id(lab, "IntegerNumberChampDescriptor"), annotation_id(lab, "TextChampDescriptor", "Nom")


def journal_by(lab, result):
    return sorted((r["Dossier"], r["Quoi"], r["Valeur_envoyee"]) for r in lab.journal() if r["Resultat"] == result)


# ---- see before sending; then send, once -------------------------------------------------------
def test_a_preview_lists_by_dossier_what_would_leave_and_sends_nothing(lab):
    note, name = note_and_name(lab)
    a, b = in_state(lab, "en_instruction"), in_state(lab, "en_construction")
    lab.set_cell("annotations", a, note, 15)
    lab.set_cell("annotations", a, name, "Mme <script>alert(1)</script> O'Brien")
    before = {n: (ds_annotation(lab, n, note), ds_annotation(lab, n, name)) for n in (a, b)}
    shown = lab.preview()
    lines = {d["number"]: [i["line"] for i in d["items"]] for d in shown["dossiers"]}
    assert any(line.startswith("Note : ") and line.endswith("→ 15") for line in lines[a])
    assert shown["counts"]["send"] == 2 and shown["counts"]["dossiers"] == 1
    assert SENDER_IN(shown)
    assert {n: (ds_annotation(lab, n, note), ds_annotation(lab, n, name)) for n in (a, b)} == before
    assert lab.journal() == []


def SENDER_IN(shown):
    return "instructeur2@exemple.gouv.fr" in shown["instructeurs"]


def test_confirmed_values_reach_ds_exactly_once_and_the_copy_then_equals_ds(lab):
    note, name = note_and_name(lab)
    a = in_state(lab, "en_instruction")
    hostile = "Mme <script>alert(1)</script> O'Brien ; DROP TABLE"
    lab.set_cell("annotations", a, note, 15)
    lab.set_cell("annotations", a, name, hostile)
    result = lab.send()
    assert (result.sent, result.refused, result.conflicts) == (2, 0, 0)
    assert result.message.startswith("Envoi terminé : 2 modifications envoyées")
    assert ds_annotation(lab, a, note) == "15" and ds_annotation(lab, a, name) == hostile
    assert journal_by(lab, "Envoyé") == sorted([(a, "Note", "15"), (a, "Nom", hostile)])
    assert "Envois vers DS" in [v["name"] for v in lab.sink.records("_grist_Views")]  # the journal's page
    sends = [h for h in lab.history() if h["Type"] == "Envoi vers DS"]
    assert [(h["Statut"], h["Mis_a_jour"]) for h in sends] == [("Terminée", 2)]
    after = lab.sync()
    assert (after.added, after.updated) == (0, 0)  # the copy equals DS for what was sent
    again = lab.send()
    assert again.sent == 0 and len(journal_by(lab, "Envoyé")) == 2  # nothing twice


def test_labels_and_a_decision_go_after_the_annotations_and_the_decision_is_cleared(lab):
    a = in_state(lab, "en_instruction")
    labels = [l["name"] for l in lab.store.procedure(lab.number).labels]
    held = [l["name"] for l in lab.store.dossier(a).get("labels") or []]
    new = next(n for n in labels if n not in held)
    lab.set_cell("dossiers", a, "labels", ["L", *sorted(held + [new])])
    lab.set_cell("dossiers", a, "decision_a_envoyer", "Accepter")
    shown = lab.preview()
    assert shown["notify_warning"] is True
    result = lab.send(shown)
    assert result.sent == 2
    dossier = lab.store.dossier(a)
    assert new in [l["name"] for l in dossier["labels"]] and dossier["state"] == "accepte"
    assert [n["dossier"] for n in lab.store.notifications] == [a]
    row = lab.row_in("dossiers", a)
    assert not row[lab.col_id("dossiers", "decision_a_envoyer")]
    assert row[lab.col_id("dossiers", "etat")] == "Accepté"
    assert lab.send().sent == 0 and len(lab.store.notifications) == 1


def test_no_notification_when_the_agent_ticks_it(lab):
    a = in_state(lab, "en_instruction")
    lab.set_cell("dossiers", a, "decision_a_envoyer", "Accepter")
    shown = lab.preview(no_notification=True)
    assert shown["notify_warning"] is False
    lab.send(shown, no_notification=True)
    assert lab.store.dossier(a)["state"] == "accepte" and lab.store.notifications == []


# ---- three-way: never a silent overwrite -----------------------------------------------------
def test_a_sync_keeps_a_pending_edit_and_marks_a_conflict_when_ds_changed_it_too(lab):
    note, _ = note_and_name(lab)
    a, b = in_state(lab, "en_instruction"), in_state(lab, "en_instruction", 1)
    lab.set_cell("annotations", a, note, 15)
    lab.set_cell("annotations", b, note, 16)
    lab.store.update_champ(b, note, 99)  # an instructeur in DS, meanwhile
    lab.store.update_champ(a, annotation_id(lab, "TextChampDescriptor", "Nom"), "Autre")  # a's other annotation
    lab.sync()
    cells = {n: lab.row_in("annotations", n)[lab.col_id("annotations", note)] for n in (a, b)}
    assert cells == {a: 15, b: 16}  # neither pending edit lost
    shown = lab.preview()
    outcomes = {(d["number"], i["outcome"]) for d in shown["dossiers"] for i in d["items"]}
    assert (a, "send") in outcomes and (b, "conflict") in outcomes
    conflict = next(i for d in shown["dossiers"] if d["number"] == b for i in d["items"])
    assert (conflict["mine"], conflict["ds"]) == ("16", "99")
    result = lab.send(shown)  # no choice made: the conflict waits
    assert result.conflicts == 1 and ds_annotation(lab, b, note) == "99" and ds_annotation(lab, a, note) == "15"
    assert [(r[0], r[1]) for r in journal_by(lab, "Conflit")] == [(b, "Note")]


@pytest.mark.parametrize("choice, ds_value, cell", [("send", "16", 16), ("keep", "99", 99)])
def test_the_agent_chooses_for_a_conflict(lab, choice, ds_value, cell):
    note, _ = note_and_name(lab)
    b = in_state(lab, "en_instruction", 1)
    lab.set_cell("annotations", b, note, 16)
    lab.store.update_champ(b, note, 99)
    shown = lab.preview()
    ref = next(i["ref"] for d in shown["dossiers"] for i in d["items"] if i["outcome"] == "conflict")
    lab.send(shown, choices={ref: choice})
    assert ds_annotation(lab, b, note) == ds_value
    lab.sync()
    assert lab.row_in("annotations", b)[lab.col_id("annotations", note)] == cell
    assert lab.preview()["counts"] == {"send": 0, "refused": 0, "conflicts": 0, "dossiers": 0}


def test_a_value_changed_after_the_preview_waits_for_the_next_one(lab):
    note, _ = note_and_name(lab)
    a = in_state(lab, "en_instruction")
    lab.set_cell("annotations", a, note, 15)
    shown = lab.preview()
    lab.set_cell("annotations", a, note, 17)  # after the agent saw 15
    result = lab.send(shown)
    assert result.sent == 0 and result.unseen == 1 and ds_annotation(lab, a, note) != "17"


# ---- computed values, bad input ------------------------------------------------------------
def test_a_computed_annotation_sends_its_results_and_a_formula_error_is_not_sent(lab):
    note, _ = note_and_name(lab)
    a, b = in_state(lab, "en_instruction"), in_state(lab, "en_instruction", 1)
    table, col = lab.table("annotations"), lab.col_id("annotations", note)
    numero = f"${lab.col_id('annotations', 'dossier')}.{lab.col_id('dossiers', 'numero')}"
    lab.sink.apply_now([["ModifyColumn", table, col, {"isFormula": True,
                                                       "formula": f"1 / 0 if {numero} == {b} else {numero} % 1000"}]])
    lab.sync()  # the column is the agent's now; its base stays
    shown = lab.preview()
    items = {d["number"]: d["items"] for d in shown["dossiers"]}
    assert [i["outcome"] for i in items[b]] == ["refused"] and "formule" in items[b][0]["problem"]
    lab.send(shown)
    assert ds_annotation(lab, a, note) == str(a % 1000)
    assert ds_annotation(lab, b, note) != "#erreur"


@pytest.mark.parametrize("typename, label, cell, problem", [
    ("IntegerNumberChampDescriptor", None, "douze", "n'est pas un nombre entier"),
    ("DropDownListChampDescriptor", "Priorité", "Urgentissime", "n'est pas une des options"),
    ("DateChampDescriptor", "Date du comité", "demain", "n'est pas une date"),
])
def test_a_value_that_does_not_fit_ds_is_flagged_and_not_sent(lab, typename, label, cell, problem):
    key = annotation_id(lab, typename, label)
    a = in_state(lab, "en_instruction")
    before = ds_annotation(lab, a, key)
    lab.set_cell("annotations", a, key, cell)
    shown = lab.preview()
    item = next(i for d in shown["dossiers"] for i in d["items"])
    assert item["outcome"] == "refused" and problem in item["problem"]
    lab.send(shown)
    assert ds_annotation(lab, a, key) == before
    assert [r[:2] for r in journal_by(lab, "Refusé")] == [(a, item["what"])]


def test_refuser_without_motivation_is_flagged_and_an_impossible_decision_too(lab):
    a, c = in_state(lab, "en_instruction"), in_state(lab, "en_construction")
    lab.set_cell("dossiers", a, "decision_a_envoyer", "Refuser")
    lab.set_cell("dossiers", c, "decision_a_envoyer", "Accepter")
    shown = lab.preview()
    problems = {d["number"]: d["items"][0]["problem"] for d in shown["dossiers"]}
    assert "motivation" in problems[a] and "impossible" in problems[c]
    lab.set_cell("dossiers", a, "motivation_a_envoyer", "Pièces manquantes")
    lab.send()
    assert lab.store.dossier(a)["state"] == "refuse" and lab.store.dossier(a)["motivation"] == "Pièces manquantes"
    assert lab.store.dossier(c)["state"] == "en_construction"


# ---- who sends -------------------------------------------------------------------------------
def test_a_read_only_token_is_told_before_anything_is_sent(lab):
    note, _ = note_and_name(lab)
    a = in_state(lab, "en_instruction")
    lab.set_cell("annotations", a, note, 15)
    lab.server.read_only_tokens = {*getattr(lab.server, "read_only_tokens", set()), "jeton-du-labo"}
    with pytest.raises(errors.OTPError) as raised:
        lab.preview()
    assert raised.value.code == "read_only_token" and "que la lecture" in raised.value.message_fr
    assert ds_annotation(lab, a, note) != "15"


def test_an_instructeur_outside_the_dossiers_groupe_is_flagged_per_dossier(lab):
    note, _ = note_and_name(lab)
    procedure = lab.store.procedure(lab.number)
    outside = [n for n, d in procedure.dossiers.items()
               if d["groupeInstructeur"]["label"] != "défaut" and d["state"] == "en_instruction"]
    if not outside:
        pytest.skip("no dossier of the second groupe in this sample")
    lab.set_cell("annotations", outside[0], note, 15)
    shown = lab.preview(instructeur="instructeur1@exemple.gouv.fr")  # in « défaut » only
    item = next(i for d in shown["dossiers"] for i in d["items"])
    assert item["outcome"] == "refused" and "groupe" in item["problem"]


def test_an_unknown_instructeur_gets_a_french_message(lab):
    a = in_state(lab, "en_instruction")
    lab.set_cell("dossiers", a, "decision_a_envoyer", "Accepter")
    with pytest.raises(errors.OTPError) as raised:
        lab.send(instructeur="personne@exemple.gouv.fr")
    assert raised.value.code == "unknown_instructeur"
    assert lab.store.dossier(a)["state"] == "en_instruction"
