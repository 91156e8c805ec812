"""Keeping the copy exact over time: labels, deletions, block rows, new revisions, user columns,
several procedures in one document."""

from __future__ import annotations

import copy

import pytest

from demo.fake_ds import make_descriptor
from harness import NUMBER, TOKEN

OTHER = 67890


@pytest.fixture
def ds(fake_ds):
    return fake_ds(dossiers=12, seed=11, others=[dict(number=OTHER, dossiers=4, seed=12, title="Autre démarche")])


@pytest.fixture
def host(open_host, ds):
    host = open_host(demarche=NUMBER, endpoint=ds.url, token=TOKEN)
    assert host.sync()["state"] == "done"
    return host


def dossiers(store, number=NUMBER):
    return store.procedure(number).dossiers


def grist_rows(host, suffix, number=NUMBER):
    return host.records(f"D{number}_{suffix}")


def col_id(host, table, label):
    return next(c["colId"] for c in host.columns(table) if c["label"] == label)


def test_labels_changed_without_modification_date_are_refreshed(host, store):
    number = sorted(dossiers(store))[0]
    date_before = dossiers(store)[number]["dateDerniereModification"]
    store.set_labels(number, ["Urgent", "Pièce manquante 📎"])
    assert dossiers(store)[number]["dateDerniereModification"] == date_before
    result = host.sync()
    assert result["state"] == "done", result
    row = next(r for r in grist_rows(host, "Dossiers") if r["Numero"] == number)
    assert sorted(row["Labels"][1:]) == ["Pièce manquante 📎", "Urgent"]
    assert result["result"]["updated"] == 1


def test_deleted_dossiers_disappear_with_their_rows_binned_ones_stay_flagged(host, store):
    block = next(d for d in store.procedure(NUMBER).active_revision["champDescriptors"] if d["label"] == "Membres de l'équipe")
    with_rows = [n for n, d in dossiers(store).items()
                 if any(c["champDescriptorId"] == block["id"] and c["rows"] for c in d["champs"])]
    gone, binned = with_rows[0], sorted(set(dossiers(store)) - {with_rows[0]})[0]
    gone_id = next(r["id"] for r in grist_rows(host, "Dossiers") if r["Numero"] == gone)
    store.delete_dossier(gone, "user_request")
    store.delete_dossier(binned, "expired", pending=True)
    result = host.sync()
    assert result["state"] == "done", result
    assert "1 supprimés" in result["text"] and "Corbeille DS : 1 dossiers mis" in result["text"]
    last = host.records("OTP_Historique")[-1]
    assert last["Supprimes"] == 1 and f"n° {gone}" in last["Notes"] and last["Statut"] == "Terminée"
    rows = {r["Numero"]: r for r in grist_rows(host, "Dossiers")}
    assert gone not in rows and set(rows) == set(dossiers(store)) | {binned}
    assert rows[binned]["Dans_la_corbeille_DS_depuis"], "kept, flagged: it may be restored"
    for suffix in ("Champs", "Annotations", "Bloc_Membres_de_l_equipe"):
        assert gone_id not in {r["Dossier"] for r in grist_rows(host, suffix)}
        assert 0 not in {r["Dossier"] for r in grist_rows(host, suffix)}, "no dangling reference"


def test_a_dossier_restored_from_the_bin_is_the_same_row_with_the_agents_cells(host, store):
    number = sorted(dossiers(store))[3]
    table = f"D{NUMBER}_Dossiers"
    row_id = next(r["id"] for r in grist_rows(host, "Dossiers") if r["Numero"] == number)
    host.apply_user_actions([["AddColumn", table, "Suivi", {"type": "Text", "isFormula": False}],
                             ["UpdateRecord", table, row_id, {"Suivi": "Appeler le porteur lundi"}]])
    store.delete_dossier(number, pending=True)
    assert host.sync()["state"] == "done"
    store.restore_dossier(number)  # DS keeps its modification date
    result = host.sync()
    assert result["state"] == "done" and "1 restaurés" in result["text"], result
    row = next(r for r in grist_rows(host, "Dossiers") if r["Numero"] == number)
    assert row["id"] == row_id and row["Suivi"] == "Appeler le porteur lundi"
    assert not row["Dans_la_corbeille_DS_depuis"]
    assert row_id in {r["Dossier"] for r in grist_rows(host, "Champs")}


def test_cancel_stops_between_pages_and_the_next_sync_resumes(open_host, ds, store):
    for _ in range(250 - len(dossiers(store))):
        store.add_dossier(procedure_number=NUMBER)
    host = open_host(demarche=NUMBER, endpoint=ds.url, token=TOKEN)
    ds.delay_next(8.0, match=lambda r: r.operation_name == "otpDossiers" and bool((r.variables or {}).get("after")))
    frame = host.wait_widget_ready()
    frame.click("#sync")
    frame.wait_for_selector("#cancel:not([hidden])")
    frame.wait_for_function("() => /^[1-9][0-9]* \\/ 250 dossiers/.test(document.getElementById('status').textContent)")
    frame.click("#cancel")
    from harness import wait_widget_state
    assert wait_widget_state(frame, ("done", "error", "cancelled"), 60) == "cancelled"
    status = host.status()
    assert "Synchronisation annulée" in status["text"] and not status["error"], status   # neutral, not red
    copied = len(grist_rows(host, "Dossiers"))  # the next page may be prefetched: 100 or 200
    assert copied in (100, 200), "stopped between two pages, before the end"
    last = host.records("OTP_Historique")[-1]
    assert last["Statut"] == "Annulée"
    again = host.sync()
    assert again["state"] == "done" and again["result"]["resumed"], again
    numbers = [r["Numero"] for r in grist_rows(host, "Dossiers")]
    assert sorted(numbers) == sorted(dossiers(store)) and len(numbers) == len(set(numbers))
    assert host.records("OTP_Historique")[-1]["Type"] == "Reprise"


def test_block_rows_removed_in_ds_disappear_and_positions_follow(host, store):
    block = next(d for d in store.procedure(NUMBER).active_revision["champDescriptors"] if d["label"] == "Membres de l'équipe")
    number, champ = next((n, c) for n, d in dossiers(store).items() for c in d["champs"]
                         if c["champDescriptorId"] == block["id"] and len(c["rows"]) >= 2)
    kept = copy.deepcopy(champ)
    kept["rows"] = kept["rows"][1:]
    store.update_champ(number, block["id"], kept)
    assert host.sync()["state"] == "done"
    dossier_id = next(r["id"] for r in grist_rows(host, "Dossiers") if r["Numero"] == number)
    rows = sorted((r["Position"], r["Ligne"]) for r in grist_rows(host, "Bloc_Membres_de_l_equipe") if r["Dossier"] == dossier_id)
    assert rows == [(i, row["id"]) for i, row in enumerate(kept["rows"], start=1)]


def test_a_user_formula_column_survives_syncs(host, store):
    table = f"D{NUMBER}_Dossiers"
    host.apply_user_actions([["AddColumn", table, "Numero_double", {"type": "Any", "isFormula": True, "formula": "$Numero * 2"}],
                             ["AddColumn", table, "Note_agent", {"type": "Text", "isFormula": False}]])
    first = sorted(dossiers(store))[0]
    row_id = next(r["id"] for r in grist_rows(host, "Dossiers") if r["Numero"] == first)
    host.apply_user_actions([["UpdateRecord", table, row_id, {"Note_agent": "à rappeler"}]])
    store.update_dossier(first, state="refuse")
    assert host.sync()["state"] == "done"
    columns = {c["colId"]: c for c in host.columns(table)}
    assert columns["Numero_double"]["isFormula"] and columns["Numero_double"]["formula"] == "$Numero * 2"
    rows = {r["Numero"]: r for r in grist_rows(host, "Dossiers")}
    assert all(r["Numero_double"] == n * 2 for n, r in rows.items())
    assert rows[first]["Note_agent"] == "à rappeler" and rows[first]["Etat"] == "Refusé"


def test_two_procedures_live_side_by_side(host, store):
    result = host.sync(demarche=OTHER)
    assert result["state"] == "done", result
    assert result["text"].startswith(f"Synchronisation terminée : {len(dossiers(store, OTHER))} dossiers")
    assert {r["Numero"] for r in grist_rows(host, "Dossiers", OTHER)} == set(dossiers(store, OTHER))
    assert {r["Numero"] for r in grist_rows(host, "Dossiers")} == set(dossiers(store))
    procedures = {r["Numero"]: r for r in host.records("OTP_Demarches")}
    assert set(procedures) == {NUMBER, OTHER} and procedures[OTHER]["Titre"] == "Autre démarche"
    again = host.sync(demarche=NUMBER)
    assert again["text"] == f"Synchronisation terminée : {len(dossiers(store))} dossiers (0 ajoutés, 0 mis à jour)"


def test_a_new_revision_adds_renames_and_keeps_removed_champs(host, store):
    table = f"D{NUMBER}_Champs"
    revision = store.procedure(NUMBER).active_revision
    descriptors = copy.deepcopy(revision["champDescriptors"])
    removed = next(d for d in descriptors if d["label"] == "Téléphone")
    renamed = next(d for d in descriptors if d["label"] == "Prénom")
    removed_col = col_id(host, table, "Téléphone")
    values_before = {r["Dossier"]: r[removed_col] for r in host.records(table)}
    prenom_col = col_id(host, table, "Prénom")
    descriptors.remove(removed)
    renamed["label"] = "Prénom usuel du porteur"
    retyped = next(d for d in descriptors if d["label"] == "Surface (m²)")  # a free number becomes a decimal
    retyped["__typename"] = "DecimalNumberChampDescriptor"
    surface_col = col_id(host, table, "Surface (m²)")
    surfaces_before = {r["Dossier"]: r[surface_col] for r in host.records(table)}
    descriptors.append(make_descriptor("IntegerNumberChampDescriptor", 999001, "Nombre d'emplois créés"))
    store.publish_revision(descriptors, revision["annotationDescriptors"])
    new = store.add_dossier()
    store.update_champ(new["number"], descriptors[-1]["id"], 42)

    result = host.sync()
    assert result["state"] == "done", result
    columns = {c["colId"]: c for c in host.columns(table)}
    assert columns[prenom_col]["label"] == "Prénom usuel du porteur", "a label change renames nothing"
    assert columns[removed_col]["label"] == "Téléphone", "a removed champ keeps its column"
    assert {r["Dossier"]: r[removed_col] for r in host.records(table) if r["Dossier"] in values_before} == values_before
    assert columns[surface_col]["type"] == "Numeric", "a type change converts the column in place"
    surfaces = {r["Dossier"]: r[surface_col] for r in host.records(table) if r["Dossier"] in surfaces_before}
    assert surfaces == {k: (float(v) if v not in (None, "") else None) for k, v in surfaces_before.items()}, "no value lost"
    added = col_id(host, table, "Nombre d'emplois créés")
    assert columns[added]["type"] == "Int"
    new_id = next(r["id"] for r in grist_rows(host, "Dossiers") if r["Numero"] == new["number"])
    assert next(r for r in host.records(table) if r["Dossier"] == new_id)[added] == 42
    registry = {r["Libelle_DS"]: r for r in host.records("OTP_Colonnes") if r["Demarche"] == NUMBER}
    assert registry["Téléphone"]["Dans_le_formulaire"] is False
    assert registry["Nombre d'emplois créés"]["Dans_le_formulaire"] is True


def test_deleted_dossiers_can_be_kept_flagged(host, store):
    number = sorted(dossiers(store))[1]
    deleted = store.delete_dossier(number, "instructeur_request")
    frame = host.widget
    frame.evaluate("document.getElementById('advanced').open = true")
    frame.check("#keep-deleted", force=True)  # DSFR draws the box on the label
    result = host.sync()
    assert result["state"] == "done" and "1 supprimés" in result["text"], result
    rows = {r["Numero"]: r for r in grist_rows(host, "Dossiers")}
    assert number in rows, "kept"
    from datetime import datetime
    assert rows[number]["Supprime_dans_DS_le"] == datetime.fromisoformat(deleted["dateSupression"]).timestamp()
    assert all(r["Supprime_dans_DS_le"] in (None, 0) for n, r in rows.items() if n != number)


def test_file_links_follow_their_dossier_and_a_new_signature_alone_is_no_change(host, store, ds):
    number, champ = next((n, c) for n, d in dossiers(store).items() for c in d["champs"] if c.get("files"))
    links = {r["id"]: r["Lien"] for r in grist_rows(host, "Fichiers")}
    assert all("signature=" in link for link in links.values()), "DS signs every URL"
    result = host.sync()  # DS signs every URL anew: nothing to write, nothing « mis à jour »
    assert result["state"] == "done" and result["text"].endswith("(0 ajoutés, 0 mis à jour)"), result
    assert {r["id"]: r["Lien"] for r in grist_rows(host, "Fichiers")} == links
    with store.lock:  # the file is replaced: a real change, with a fresh signed link
        champ["files"][0]["filename"] = "piece-remplacee.pdf"
    store.update_dossier(number, motivation="Pièce remplacée")
    result = host.sync()
    assert result["state"] == "done" and "1 mis à jour" in result["text"], result
    fresh = [r["Lien"] for r in grist_rows(host, "Fichiers") if r["Nom"] == "piece-remplacee.pdf"]
    assert len(fresh) == 1 and fresh[0].startswith("piece-remplacee.pdf ") and fresh[0] not in links.values()


def test_an_interrupted_sync_can_be_run_again_without_loss_or_duplicates(open_host, ds, store):
    # 250 dossiers: 3 pages; DS fails on the second page of the first sync
    for _ in range(250 - len(dossiers(store))):
        store.add_dossier(procedure_number=NUMBER)
    host = open_host(demarche=NUMBER, endpoint=ds.url, token=TOKEN)
    # beyond the retries (1 + 2 + 4 + 8 s of backoff, the agent seeing « nouvel essai »)
    ds.fail_next(500, count=5, match=lambda r: r.operation_name == "otpDossiers" and bool((r.variables or {}).get("after")))
    failed = host.sync()
    assert failed["state"] == "error" and "DS a répondu par une erreur (code 500)" in failed["text"], failed
    partial = {r["Numero"] for r in grist_rows(host, "Dossiers")}
    assert len(partial) == 100, "the first page was written"
    assert not any(r["Curseur"] for r in host.records("OTP_Demarches")), "the cursor did not move"

    again = host.sync()
    assert again["state"] == "done", again
    assert again["text"] == "Synchronisation terminée : 250 dossiers (150 ajoutés, 0 mis à jour)"
    numbers = [r["Numero"] for r in grist_rows(host, "Dossiers")]
    assert sorted(numbers) == sorted(dossiers(store)) and len(numbers) == len(set(numbers))
    champs = [r["Dossier"] for r in grist_rows(host, "Champs")]
    assert len(champs) == 250 == len(set(champs))
