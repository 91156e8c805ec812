"""Faults in the browser (grist-static, the built widget): DS errors retried without the agent,
a partial answer never written over good cells, agents' renames kept."""

from __future__ import annotations

import pytest

from demo.fake_ds import FakeDSServer, FakeDSStore, sample_procedure

TOKEN = "jeton-pannes"
NUMBER = 24680


@pytest.fixture
def store():
    return FakeDSStore([sample_procedure(number=NUMBER, dossier_count=15, seed=21)])


@pytest.fixture
def ds(store):
    with FakeDSServer(store, tokens={TOKEN: "all"}, cors=True) as server:
        yield server


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
    frame = host.widget()
    frame.click("#check")  # « Tester la connexion » shows the procedure's title
    frame.wait_for_function("document.getElementById('status').textContent.includes('Connexion réussie')")
    assert hostile in frame.evaluate("document.getElementById('status').textContent")
    assert frame.evaluate("!window.otpPwned && !document.querySelector('main img[src=x]')"), "nothing executes"
    assert host.records("OTP_Demarches")[0]["Titre"] == hostile
    row = next(r for r in host.records(f"D{NUMBER}_Dossiers") if r["Numero"] == number)
    assert row["Motivation"] == hostile
