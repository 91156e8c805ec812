"""Faults in the browser (grist-static, the built widget): DS errors retried without the agent,
a partial answer never written over good cells, agents' renames kept."""

from __future__ import annotations

import pytest

from harness import TOKEN

NUMBER = 24680


@pytest.fixture
def ds(fake_ds):
    return fake_ds(number=NUMBER, dossiers=15, seed=21)


def test_server_errors_are_retried_and_a_partial_answer_is_taken_again(open_host, ds, store):
    host = open_host(demarche=NUMBER, endpoint=ds.url, token=TOKEN)
    ds.fail_next(502, "<html>Bad gateway</html>", "text/html", match=lambda r: r.operation_name == "otpDossiers")
    first = host.sync()
    assert first["state"] == "done", first
    assert [r.status for r in ds.requests if r.operation_name == "otpDossiers"][:2] == [502, 200]

    table = f"D{NUMBER}_Dossiers"
    number = sorted(store.procedure(NUMBER).dossiers)[0]
    row = next(r for r in host.records(table) if r["Numero"] == number)
    champs_before = next(r for r in host.records(f"D{NUMBER}_Champs") if r["Dossier"] == row["id"])
    host.apply_user_actions([["ModifyColumn", table, "Motivation", {"label": "Motif retenu"}]])  # an agent's rename
    store.update_dossier(number, motivation="Dossier complet")  # the last node of the next page
    ds.partial_next(node=-1, count=5, match=lambda r: r.operation_name == "otpDossiers")
    partial = host.sync()
    assert partial["state"] == "done", partial
    assert f"n° {number}" in partial["text"] and "repris à la prochaine synchronisation" in partial["text"]
    assert next(r for r in host.records(f"D{NUMBER}_Champs") if r["Dossier"] == row["id"]) == champs_before
    notes = host.records("OTP_Historique")[-1]["Notes"]
    assert f"n° {number}" in notes and "Internal error" in notes

    ds._faults.clear()
    again = host.sync()
    assert again["state"] == "done" and "Attention" not in again["text"], again
    columns = {c["label"]: c["colId"] for c in host.columns(table)}
    assert "Motif retenu" in columns and "Motivation" not in columns, "the agent's label stays"
    row = next(r for r in host.records(table) if r["Numero"] == number)
    assert row[columns["Motif retenu"]] == "Dossier complet"


def test_hostile_text_from_ds_is_shown_as_text_and_copied_exactly(open_host, ds, store):
    hostile = '<img src=x onerror="window.otpPwned=1">=SUM(A1)\x07'
    store.procedure(NUMBER).title = hostile
    number = sorted(store.procedure(NUMBER).dossiers)[0]
    store.update_dossier(number, motivation=hostile)
    host = open_host(demarche=NUMBER, endpoint=ds.url, token=TOKEN)
    assert host.sync()["state"] == "done"
    frame = host.widget
    frame.click("#check")  # « Tester la connexion » shows the procedure's title
    frame.wait_for_function("() => document.getElementById('status').textContent.includes('Connexion réussie')")
    assert hostile in frame.evaluate("document.getElementById('status').textContent")
    assert frame.evaluate("!window.otpPwned && !document.querySelector('main img[src=x]')"), "nothing executes"
    assert host.records("OTP_Demarches")[0]["Titre"] == hostile
    row = next(r for r in host.records(f"D{NUMBER}_Dossiers") if r["Numero"] == number)
    assert row["Motivation"] == hostile


def test_champs_of_older_revisions_deletions_while_paging_and_an_empty_cursor(open_host, ds, store):
    procedure = store.procedure(NUMBER)
    active = procedure.active_revision
    removed = next(d for d in active["champDescriptors"] if d["__typename"] == "TextChampDescriptor")
    store.publish_revision([d for d in active["champDescriptors"] if d["id"] != removed["id"]],
                           active["annotationDescriptors"])
    for _ in range(120 - len(procedure.dossiers)):
        store.add_dossier(procedure_number=NUMBER)
    victim = sorted(procedure.dossiers)[2]

    def delete_during_paging(request):  # DS deletes a dossier while the sync reads its pages
        if request.operation_name == "otpDossiers" and (request.variables or {}).get("after") and victim in procedure.dossiers:
            store.delete_dossier(victim)
        return False

    ds.fail_next(500, match=delete_during_paging)
    host = open_host(demarche=NUMBER, endpoint=ds.url, token=TOKEN)
    assert host.sync()["state"] == "done"
    # the champ left the form before the first sync: its column exists, its values are copied
    registry = next(r for r in host.records("OTP_Colonnes") if r["Cle"] == removed["id"])
    assert registry["Dans_le_formulaire"] is False
    column = next(c for c in host.columns(f"D{NUMBER}_Champs") if c["label"] == removed["label"])
    holders = [d for d in procedure.dossiers.values() if any(c["champDescriptorId"] == removed["id"] for c in d["champs"])]
    assert holders and any(r[column["colId"]] for r in host.records(f"D{NUMBER}_Champs"))
    # the dossier deleted during the first sync's paging goes at the next sync
    assert host.sync()["state"] == "done"
    assert victim not in {r["Numero"] for r in host.records(f"D{NUMBER}_Dossiers")}
    # a full sync (the cursor emptied) into a document that holds the dossiers removes those gone
    gone = sorted(procedure.dossiers)[5]
    store.delete_dossier(gone)
    demarche = host.records("OTP_Demarches")[0]
    host.apply_user_actions([["UpdateRecord", "OTP_Demarches", demarche["id"], {"Curseur": ""}]])
    full = host.sync()
    assert full["state"] == "done" and "1 supprimés" in full["text"], full
    numbers = [r["Numero"] for r in host.records(f"D{NUMBER}_Dossiers")]
    assert sorted(numbers) == sorted(procedure.dossiers) and len(numbers) == len(set(numbers))


def test_a_filter_chosen_in_the_widget_keeps_only_those_dossiers_and_is_remembered(open_host, ds, store):
    procedure = store.procedure(NUMBER)
    state = sorted({d["state"] for d in procedure.dossiers.values()})[0]
    wanted = sorted(n for n, d in procedure.dossiers.items() if d["state"] == state)
    host = open_host(demarche=NUMBER, endpoint=ds.url, token=TOKEN)
    frame = host.widget
    frame.evaluate("document.getElementById('filters').open = true")
    frame.check(f"#f-{state}", force=True)  # DSFR draws the box on the label
    result = host.sync()
    assert result["state"] == "done", result
    assert sorted(r["Numero"] for r in host.records(f"D{NUMBER}_Dossiers")) == wanted
    assert state in host.records("OTP_Demarches")[0]["Filtres"]
    frame = host.reload_widget()
    frame.wait_for_function(f"() => document.getElementById('f-{state}').checked")
    assert frame.evaluate("document.getElementById('filters').open")
    frame.uncheck(f"#f-{state}", force=True)  # widened: a full sync brings the others
    again = host.sync()
    assert again["state"] == "done" and not again["result"]["incremental"], again
    assert sorted(r["Numero"] for r in host.records(f"D{NUMBER}_Dossiers")) == sorted(procedure.dossiers)
