"""« Envoyer vers DS » in the browser, on grist-static and on grist-core: the built widget, the
fake DS (real schema, DS's mutations). An agent edits an annotation and a label, computes one
annotation by formula, decides one dossier; previews, sees what would leave and a conflict,
chooses, confirms; DS changed, the journal says so. A read-only token is told before anything
leaves."""

from __future__ import annotations

import pytest

from harness import TOKEN, wait_widget_state

READ_ONLY = "jeton-lecture-seule"
NUMBER = 24680
SENDER = "instructeur2@exemple.gouv.fr"  # in both groupes of the sample procedure


@pytest.fixture
def ds(fake_ds):
    return fake_ds(number=NUMBER, dossiers=8, seed=11, tokens={TOKEN: "all", READ_ONLY: "all"}, read_only_tokens=[READ_ONLY])


def active_dossiers(store, state):
    procedure = store.procedure(NUMBER)
    active = procedure.active_revision["id"]
    return sorted(n for n, d in procedure.dossiers.items() if d["state"] == state and d["_revisionId"] == active)


def descriptor(store, typename, label=None):
    revision = store.procedure(NUMBER).active_revision
    return next(d for d in revision["annotationDescriptors"] if d["__typename"] == typename
                and (label is None or d["label"] == label))


def ds_value(store, number, descriptor_id):
    champ = next((c for c in store.dossier(number)["annotations"] if c["champDescriptorId"] == descriptor_id), None)
    return None if champ is None else champ.get("stringValue")


def registry(host, key):
    """Column key → col id of OTP's table `key` of the procedure, and its table id."""
    tables = {r["Cle"]: r["Table_id"] for r in host.records("OTP_Tables") if r["Demarche"] == NUMBER}
    cols = {r["Cle"]: r["Col_id"] for r in host.records("OTP_Colonnes") if r["Demarche"] == NUMBER and r["Table_id"] == tables[key]}
    return tables[key], cols


def row_of(host, key, number):
    table, cols = registry(host, key)
    if key == "dossiers":
        return table, next(r for r in host.records(table) if r[cols["numero"]] == number)
    dossiers_table, dossier_cols = registry(host, "dossiers")
    ids = {r["id"]: r[dossier_cols["numero"]] for r in host.records(dossiers_table)}
    return table, next(r for r in host.records(table) if ids.get(r[cols["dossier"]]) == number)


def set_cell(host, key, number, col_key, value):
    table, row = row_of(host, key, number)
    host.apply_user_actions([["UpdateRecord", table, row["id"], {registry(host, key)[1][col_key]: value}]])


def preview(frame, instructeur=None):
    if instructeur is not None:
        frame.select_option("#instructeur", instructeur)
    frame.evaluate("document.getElementById('send-section').open = true; document.body.dataset.state = 'submitting'")
    frame.click("#send-preview")
    assert wait_widget_state(frame, ("previewed", "error"), 120) == "previewed", frame.text_content("#status")
    return frame.evaluate("otpWidget.lastPreview")


def test_edit_compute_decide_preview_resolve_a_conflict_and_confirm(open_grist, ds, store):
    host = open_grist(demarche=NUMBER, endpoint=ds.url)
    assert host.sync(token=TOKEN)["state"] == "done"
    frame = host.widget
    a, b = active_dossiers(store, "en_instruction")[:2]
    note = descriptor(store, "IntegerNumberChampDescriptor")["id"]
    comment = descriptor(store, "TextareaChampDescriptor")["id"]
    label = next(l["name"] for l in store.procedure(NUMBER).labels if l["name"] not in
                 [x["name"] for x in store.dossier(a).get("labels") or []])
    held = sorted(x["name"] for x in store.dossier(a).get("labels") or [])
    set_cell(host, "annotations", a, note, 17)
    set_cell(host, "annotations", b, note, 18)
    set_cell(host, "dossiers", a, "labels", ["L", *sorted(held + [label])])
    set_cell(host, "dossiers", a, "decision_a_envoyer", "Accepter")
    table, cols = registry(host, "annotations")
    dossier_col, numero = cols["dossier"], registry(host, "dossiers")[1]["numero"]
    host.apply_user_actions([["ModifyColumn", table, cols[comment], {
        "isFormula": True, "formula": f"'Vu en commission n° ' + str(${dossier_col}.{numero})"}]])
    store.update_champ(b, note, 99)  # an instructeur in DS meanwhile: a conflict for b

    shown = preview(frame)
    assert SENDER in frame.eval_on_selector_all("#instructeur option", "os => os.map(o => o.value)")
    text = frame.text_content("#send-list")
    assert f"Dossier n° {a}" in text and "→ 17" in text and f"label + {label}" in text and "décision : Accepter" in text
    assert "Vu en commission" in text
    assert frame.is_visible("#send-warning"), "a decision e-mails the usager: the agent is told"
    assert "Conflit : vous avez « 18 », DS a maintenant « 99 »" in text
    assert ds_value(store, a, note) != "17" and store.dossier(a)["state"] == "en_instruction", "a preview sends nothing"

    frame.select_option("#instructeur", SENDER)
    frame.check(f"#send-list li[data-ref^='{b}/'] input[value='send']")
    frame.click("#send-confirm")
    assert wait_widget_state(frame, ("sent", "error"), 120) == "sent", frame.text_content("#status")
    assert frame.text_content("#status").startswith("Envoi terminé : ")
    assert ds_value(store, a, note) == "17" and ds_value(store, b, note) == "18"
    assert ds_value(store, a, comment) == f"Vu en commission n° {a}"
    assert label in [x["name"] for x in store.dossier(a)["labels"]] and store.dossier(a)["state"] == "accepte"
    journal = host.records("OTP_Envois")
    assert {(r["Dossier"], r["Resultat"]) for r in journal} >= {(a, "Envoyé"), (b, "Envoyé")}
    assert shown["counts"]["conflicts"] == 1

    again = preview(frame, SENDER)
    assert again["counts"]["send"] == 0, "nothing twice"


def test_a_read_only_token_is_told_before_anything_leaves(open_host, ds, store):
    host = open_host(demarche=NUMBER, endpoint=ds.url)
    assert host.sync(token=READ_ONLY)["state"] == "done"
    frame = host.widget
    a = active_dossiers(store, "en_instruction")[0]
    note = descriptor(store, "IntegerNumberChampDescriptor")["id"]
    set_cell(host, "annotations", a, note, 17)
    frame.evaluate("document.getElementById('send-section').open = true")
    frame.click("#send-preview")
    assert wait_widget_state(frame, ("previewed", "error"), 120) == "previewed"
    frame.select_option("#instructeur", SENDER)
    frame.evaluate("document.body.dataset.state = 'submitting'")
    frame.click("#send-preview")
    assert wait_widget_state(frame, ("previewed", "error"), 120) == "error"
    assert "Ce jeton ne permet que la lecture" in frame.text_content("#status")
    assert ds_value(store, a, note) != "17"


def test_an_instructeur_outside_the_dossiers_groupe_is_told_per_dossier(open_host, ds, store):
    host = open_host(demarche=NUMBER, endpoint=ds.url)
    assert host.sync(token=TOKEN)["state"] == "done"
    frame = host.widget
    procedure = store.procedure(NUMBER)
    active = procedure.active_revision["id"]
    other = sorted(n for n, d in procedure.dossiers.items()
                   if d["groupeInstructeur"]["label"] != "défaut" and d["_revisionId"] == active and d["state"] != "brouillon")
    assert other, "the sample has dossiers of the second groupe"
    note = descriptor(store, "IntegerNumberChampDescriptor")["id"]
    set_cell(host, "annotations", other[0], note, 17)
    preview(frame)
    shown = preview(frame, "instructeur1@exemple.gouv.fr")  # in « défaut » only
    line = frame.text_content(f"#send-list li[data-ref^='{other[0]}/']")
    assert "non envoyé" in line and "n'est pas dans le groupe" in line, line
    assert shown["counts"]["send"] == 0 and frame.is_hidden("#send-confirm")
    assert ds_value(store, other[0], note) != "17"
