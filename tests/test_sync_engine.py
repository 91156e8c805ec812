"""Whole syncs against Grist's own engine and the fake DS over HTTP: the copy stays exact through
real-life events and faults, and agents' cells are never lost (issue « Nothing lost »)."""

from __future__ import annotations

import asyncio
import json

import pytest

from py_core import errors
from py_core.grist.values import same_cell
from tests.grist_engine import EngineSink, engine_missing
from tests.lab import Lab, run

pytestmark = pytest.mark.skipif(engine_missing() is not None, reason=str(engine_missing()))


@pytest.fixture
def lab():
    with Lab(dossiers=30) as lab:
        yield lab


def first(lab, i=0):
    return lab.dossier_numbers()[i]


def test_a_binned_dossier_is_kept_flagged_and_restored_as_the_same_row(lab):
    lab.sync()
    n = first(lab)
    lab.agent_edit(n, "Relancer le porteur")
    row_id = next(r["id"] for r in lab.rows("dossiers") if r["Numero"] == n)
    lab.store.update_dossier(n, motivation="modifié juste avant la corbeille")
    lab.store.delete_dossier(n, pending=True)
    result = lab.sync()
    assert result.binned == [n] and result.deleted == 0
    flagged = next(r for r in lab.rows("dossiers") if r["Numero"] == n)
    assert flagged["Dans_la_corbeille_DS_depuis"] and flagged["id"] == row_id
    lab.store.restore_dossier(n)  # DS does not change its modification date
    result = lab.sync()
    assert result.restored == [n]
    restored = next(r for r in lab.rows("dossiers") if r["Numero"] == n)
    assert restored["id"] == row_id and not restored["Dans_la_corbeille_DS_depuis"]
    assert restored["Motivation"] == "modifié juste avant la corbeille", "taken again when restored"
    assert lab.agent_cells() == {n: "Relancer le porteur"}
    assert any(r["Dossier"] == row_id for r in lab.rows("champs"))
    lab.assert_copy_exact()
    assert "restaurés" in lab.history()[-1]["Notes"]


@pytest.mark.parametrize("keep", [False, True])
def test_a_confirmed_deletion_removes_the_dossier_and_its_rows_or_flags_it(lab, keep):
    lab.sync()
    n = first(lab, 1)
    row_id = next(r["id"] for r in lab.rows("dossiers") if r["Numero"] == n)
    lab.store.delete_dossier(n, pending=True)
    lab.sync(keep_deleted=keep)
    lab.store.delete_dossier(n)  # emptied from the bin: final
    result = lab.sync(keep_deleted=keep)
    assert result.deleted_numbers == [n]
    rows = {r["Numero"]: r for r in lab.rows("dossiers")}
    if keep:
        assert rows[n]["Supprime_dans_DS_le"] and not rows[n]["Dans_la_corbeille_DS_depuis"]
    else:
        assert n not in rows
        assert not any(r["Dossier"] == row_id for key in lab.child_keys() for r in lab.rows(key))


def test_a_full_sync_into_a_document_that_holds_dossiers_removes_those_deleted_in_ds(lab):
    lab.sync()
    n = first(lab, 2)
    lab.store.delete_dossier(n)
    demarche = lab.sink.records("OTP_Demarches")[0]
    lab.sink.apply_now([["UpdateRecord", "OTP_Demarches", demarche["id"], {"Curseur": ""}]])
    result = lab.sync()
    assert not result.incremental and n not in lab.dossier_numbers()
    lab.assert_copy_exact()


def test_champs_only_in_older_revisions_get_columns_and_their_values(lab):
    procedure = lab.store.procedure(lab.number)
    active = procedure.active_revision
    removed = next(d for d in active["champDescriptors"] if d["__typename"] == "TextChampDescriptor")
    lab.store.publish_revision([d for d in active["champDescriptors"] if d["id"] != removed["id"]],
                               active["annotationDescriptors"])
    lab.sync()  # a first sync after the champ left the form
    registry = [r for r in lab.sink.records("OTP_Colonnes") if r["Cle"] == removed["id"]]
    assert registry and registry[0]["Dans_le_formulaire"] is False
    col_id = next(c for c, ref in zip(lab.sink.table("_grist_Tables_column")["colId"], lab.sink.table("_grist_Tables_column")["id"])
                  if ref == registry[0]["Col_ref"])
    holders = [d for d in procedure.dossiers.values() if any(c["champDescriptorId"] == removed["id"] for c in d["champs"])]
    assert holders, "sample dossiers on the old revision carry the champ"
    cells = [r[col_id] for r in lab.rows("champs")]
    assert sum(1 for c in cells if c not in (None, "")) >= 1


def test_a_dossier_deleted_while_the_sync_pages_is_removed_by_the_next_sync():
    with Lab(dossiers=250) as lab:
        lab.sync()
        victim = lab.dossier_numbers()[5]
        touched = lab.dossier_numbers()[7]

        def during_paging(request):
            if request.operation_name == "otpDossiers" and not getattr(during_paging, "done", False):
                during_paging.done = True
                lab.store.delete_dossier(victim)
                lab.store.update_dossier(touched, motivation="modifié après la suppression")
            return False

        lab.server.fail_next(500, match=during_paging)
        lab.store.update_dossier(lab.dossier_numbers()[0], motivation="modifié")
        lab.sync()
        lab.sync()
        assert victim not in lab.dossier_numbers()
        lab.assert_copy_exact()


def test_an_interrupted_first_sync_leaves_no_second_set_of_tables(lab):
    boom = errors.grist_write_failed("connexion perdue")
    lab.sink.fail_when.append((lambda actions: any(a[0] == "BulkAddRecord" and a[1] == "OTP_Colonnes" for a in actions), boom))
    with pytest.raises(errors.GristWriteError):
        lab.sync()
    lab.sync()
    assert not [t for t in lab.sink.table_ids() if t.endswith("_2") or t[-1].isdigit() and t.startswith("OTP")]
    assert len([t for t in lab.sink.table_ids() if t.startswith("D4242_Dossiers") and "_summary_" not in t]) == 1
    lab.assert_copy_exact()


def test_duplicates_left_by_an_earlier_version_are_repaired_with_agents_cells_kept(lab):
    lab.sync()
    n = first(lab)
    table = lab.table("dossiers")
    original = next(r for r in lab.rows("dossiers") if r["Numero"] == n)
    col = lab.agent_column()
    table_ref = lab.sink.table("_grist_Tables")["id"][lab.sink.table("_grist_Tables")["tableId"].index(table)]
    formulas = {c["colId"] for c in lab.sink.records("_grist_Tables_column") if c["parentId"] == table_ref and c["isFormula"]}
    copy = {k: v for k, v in original.items() if k not in ("id", "manualSort") and k not in formulas and not k.startswith("gristHelper")}
    lab.sink.apply_now([["AddRecord", table, None, {**copy, col: "note sur le doublon"}]])
    result = lab.sync()
    assert result.repairs.merged == 1 and not result.repairs.kept
    assert lab.agent_cells() == {n: "note sur le doublon"}
    lab.assert_copy_exact()


def test_two_syncs_at_once_write_no_duplicate_and_the_second_is_told():
    with Lab(dossiers=250) as lab:
        async def both():
            from py_core.jobs.copy import synchronise
            from py_core.jobs.params import parse_params

            def params(holder):
                return parse_params({"demarche": str(lab.number), "token": "jeton-du-labo",
                                     "endpoint": lab.server.url, "holder": holder})
            return await asyncio.gather(
                synchronise(params("navigateur-A/1"), lab.client(), lab.sink),
                synchronise(params("navigateur-B/1"), lab.client(), lab.sink),
                return_exceptions=True)

        outcomes = run(both())
        done = [o for o in outcomes if not isinstance(o, BaseException)]
        refused = [o for o in outcomes if isinstance(o, errors.OTPError)]
        assert len(done) == 1 and len(refused) == 1, outcomes
        assert refused[0].code in ("busy", "lease_lost") and "déjà en cours" in refused[0].message_fr or refused[0].code == "lease_lost"
        lab.assert_copy_exact()
        assert all(not r["Expire"] for r in lab.sink.records("OTP_Etat")), "the lease is given back"


def test_a_live_lease_of_another_browser_refuses_without_writing(lab):
    lab.sync()
    lab.sink.apply_now([["AddRecord", "OTP_Etat", None, {"Demarche": lab.number, "Detenteur": "autre/1",
                                                          "Debut": 1e10 - 60, "Expire": 1e10}]])
    before = lab.snapshot()
    with pytest.raises(errors.OTPError) as caught:
        lab.sync()
    assert caught.value.code == "busy" and "déjà en cours" in caught.value.message_fr
    assert lab.snapshot() == before


def test_a_sync_whose_lease_was_taken_over_cannot_write_any_more(lab):
    lab.sync()
    lab.store.update_dossier(first(lab), motivation="changé")

    def steal(actions):
        if any(a[0] == "BulkUpdateRecord" and a[1] == lab.table("dossiers") for a in actions):
            mine = lab.sink.records("OTP_Etat")[0]
            lab.sink.apply_now([["RemoveRecord", "OTP_Etat", mine["id"]],
                                ["AddRecord", "OTP_Etat", None, {"Demarche": lab.number, "Detenteur": "autre/2", "Expire": 1e10}]])
            lab.sink.before_apply = None

    lab.sink.before_apply = steal
    with pytest.raises(errors.OTPError) as caught:
        lab.sync()
    assert caught.value.code == "lease_lost"
    assert next(r for r in lab.rows("dossiers") if r["Numero"] == first(lab))["Motivation"] != "changé"


def test_an_interrupted_sync_resumes_from_its_checkpoint_fetching_at_most_one_page_again():
    with Lab(dossiers=450) as lab:
        pages = lambda: [r for r in lab.server.requests if r.operation_name == "otpDossiers"]  # noqa: E731
        lab.server.fail_next(502, "<html>Bad gateway</html>", "text/html", count=10,
                             match=lambda r: r.operation_name == "otpDossiers" and len(pages()) >= 3)
        with pytest.raises(errors.DSError):
            lab.sync()
        lab.server._faults.clear()
        assert lab.history()[-1]["Statut"] == "Échec"
        written = len(lab.dossier_numbers())
        assert written == 300
        before = len([p for p in pages() if p.status == 200])
        result = lab.sync()
        again = [p for p in pages() if p.status == 200][before:]
        assert result.resumed and lab.history()[-1]["Type"] == "Reprise"
        assert len(again) <= 3, "pages 4 and 5 only, plus at most the one it stopped on"
        assert again[0].variables["after"], "resumed after the last page written"
        lab.assert_copy_exact()
        assert result.added == 150, "this run's own count"


def test_cancel_stops_between_pages_and_the_next_sync_resumes():
    with Lab(dossiers=250) as lab:
        calls = {"n": 0}

        def cancel_after_first_page():
            calls["n"] += 1
            return calls["n"] > 1

        with pytest.raises(errors.OTPError) as caught:
            lab.sync(should_cancel=cancel_after_first_page)
        assert caught.value.code == "cancelled"
        assert lab.history()[-1]["Statut"] == "Annulée" and len(lab.dossier_numbers()) == 100
        result = lab.sync()
        assert result.resumed
        lab.assert_copy_exact()


def test_a_partial_answer_is_never_written_over_good_data_and_is_taken_again(lab):
    lab.sync()
    n = first(lab)
    row_id = next(r["id"] for r in lab.rows("dossiers") if r["Numero"] == n)
    lab.store.update_dossier(n, motivation="nouvelle motivation")  # now the last of the next page
    good = next(r for r in lab.rows("champs") if r["Dossier"] == row_id)
    lab.server.partial_next(node=-1, count=5, match=lambda r: r.operation_name == "otpDossiers")
    result = lab.sync()
    assert result.skipped == [n] and "n'ont pas pu être lus en entier" in result.message
    assert next(r for r in lab.rows("champs") if r["Dossier"] == row_id) == good, "no good cell emptied"
    history = lab.history()[-1]
    assert f"n° {n}" in history["Notes"] and "Internal error" in history["Notes"]
    assert lab.sink.records("OTP_Demarches")[0]["A_reprendre"] == str(n)
    lab.server._faults.clear()
    result = lab.sync()
    assert not result.skipped and lab.sink.records("OTP_Demarches")[0]["A_reprendre"] == ""
    assert next(r for r in lab.rows("dossiers") if r["Numero"] == n)["Motivation"] == "nouvelle motivation"


def test_a_ds_timeout_error_is_asked_again_with_a_smaller_page(lab):
    lab.server.partial_next(node=0, code="timeout", count=1, match=lambda r: r.operation_name == "otpDossiers")
    result = lab.sync()
    firsts = [r.variables["first"] for r in lab.server.requests if r.operation_name == "otpDossiers"]
    assert firsts[:2] == [100, 50] and not result.skipped
    lab.assert_copy_exact()


def test_rate_limit_and_server_errors_are_waited_out_without_the_agent(lab):
    import time

    lab.server.rate_limit_next(int(time.time()) + 1)
    lab.server.fail_next(500, match=lambda r: r.operation_name == "otpDossiers")
    result = lab.sync()
    assert result.total == 30
    assert any(e["kind"] == "wait" and "reprise automatique" in e["message"] for e in lab.events)
    lab.assert_copy_exact()


def test_an_agents_rename_of_an_otp_column_survives_syncs(lab):
    lab.sync()
    table = lab.table("dossiers")
    lab.sink.apply_now([["ModifyColumn", table, "Motivation", {"label": "Motif (service)"}]])  # as in Grist's UI
    lab.store.update_dossier(first(lab), motivation="Pièces reçues")
    lab.sync()
    ref = next(r["Col_ref"] for r in lab.sink.records("OTP_Colonnes") if r["Cle"] == "motivation")
    columns = lab.sink.records("_grist_Tables_column")
    column = next(c for c in columns if c["id"] == ref)
    assert column["label"] == "Motif (service)"
    assert next(r for r in lab.rows("dossiers") if r["Numero"] == first(lab))[column["colId"]] == "Pièces reçues"


def test_false_is_an_answer_and_none_is_none():
    assert not same_cell(False, None) and not same_cell(None, False)
    assert same_cell(False, False) and same_cell(None, "")


def test_a_checkbox_unticked_in_ds_is_updated(lab):
    lab.sync()
    procedure = lab.store.procedure(lab.number)
    box = next(d for d in procedure.active_revision["champDescriptors"] if d["__typename"] == "CheckboxChampDescriptor")
    n = first(lab)
    lab.store.update_champ(n, box["id"], True)
    lab.sync()
    lab.store.update_champ(n, box["id"], False)
    result = lab.sync()
    registry = next(r for r in lab.sink.records("OTP_Colonnes") if r["Cle"] == box["id"])
    col = next(c for c, ref in zip(lab.sink.table("_grist_Tables_column")["colId"], lab.sink.table("_grist_Tables_column")["id"]) if ref == registry["Col_ref"])
    row_id = next(r["id"] for r in lab.rows("dossiers") if r["Numero"] == n)
    assert next(r for r in lab.rows("champs") if r["Dossier"] == row_id)[col] is False and result.updated >= 1


HOSTILE = [
    '<img src=x onerror="alert(1)"><script>alert(2)</script>',
    "=SUM(A1:A9)",
    "tab\there\x01\x02 nul\x00 fin\u202e",
    "x" * 1_000_000,
]


@pytest.mark.parametrize("text", HOSTILE, ids=["html", "formula", "control", "1MB"])
def test_hostile_text_round_trips_exactly(lab, text):
    procedure = lab.store.procedure(lab.number)
    champ = next(d for d in procedure.active_revision["champDescriptors"] if d["__typename"] == "TextChampDescriptor")
    lab.sync()
    n = first(lab)
    lab.store.update_champ(n, champ["id"], text)
    lab.sync()
    registry = next(r for r in lab.sink.records("OTP_Colonnes") if r["Cle"] == champ["id"])
    col = next(c for c, ref in zip(lab.sink.table("_grist_Tables_column")["colId"], lab.sink.table("_grist_Tables_column")["id"]) if ref == registry["Col_ref"])
    row_id = next(r["id"] for r in lab.rows("dossiers") if r["Numero"] == n)
    assert next(r for r in lab.rows("champs") if r["Dossier"] == row_id)[col] == text
    assert lab.sync().updated == 0, "and stays as it is"


def test_500_champs_with_identical_labels_get_distinct_columns():
    from demo.fake_ds.store import FakeDSStore, Procedure, make_descriptor, make_revision, build_champ
    from demo.fake_ds import FakeDSServer

    descriptors = [make_descriptor("TextChampDescriptor", 900000 + i, "Nom" if i % 2 else "Prénom") for i in range(500)]
    procedure = Procedure(number=77, title="Très large", revisions=[make_revision(771, "2025-01-01T00:00:00+01:00", descriptors, [])])
    store = FakeDSStore([procedure])
    champs = [build_champ(d, f"valeur {i}", "2025-02-01T00:00:00+01:00") for i, d in enumerate(descriptors)]
    store.add_dossier({"number": 7701, "state": "en_construction", "champs": champs, "annotations": [], "labels": [],
                       "avis": [], "instructeurs": [], "usager": {"email": "u@x.fr"},
                       "demandeur": {"__typename": "PersonnePhysique", "civilite": "M", "nom": "Durand", "prenom": "Léa", "email": None},
                       "groupeInstructeur": {"id": "g", "number": 1, "label": "défaut", "closed": False, "instructeurs": []}, "archived": False, "deposeParUnTiers": False}, procedure_number=77)
    with FakeDSServer(store, tokens={"t": "all"}) as server:
        lab = Lab.__new__(Lab)
        lab.number, lab.store, lab.server, lab.sink, lab.timeout, lab.events, lab.holder = 77, store, server, EngineSink(), 5, [], "l/1"
        lab.elapsed = 0.0
        from tests import lab as lab_module
        lab_module_token = lab_module.TOKEN
        lab_module.TOKEN = "t"
        try:
            lab.sync()
        finally:
            lab_module.TOKEN = lab_module_token
        row = lab.rows("champs")[0]
        values = sorted(v for k, v in row.items() if isinstance(v, str) and v.startswith("valeur"))
        assert len(values) == 500 and len({k for k in row if k.startswith(("Nom", "Prenom"))}) == 500


def test_file_links_re_signed_by_ds_are_no_change_and_no_write(lab):
    lab.sync()
    links = {r["id"]: r["Lien"] for r in lab.rows("fichiers")}
    assert links and all("signature=" in l for l in links.values())
    applies = lab.sink.applies
    result = lab.sync()  # DS signs every URL anew, and the lag window fetches a few dossiers again
    assert result.updated == 0 and {r["id"]: r["Lien"] for r in lab.rows("fichiers")} == links
    data_writes = lab.sink.applies - applies
    assert data_writes <= 4, "lease, pages' checkpoints and the end: no data rewritten"


def test_a_reloaded_tab_takes_its_own_lease_over_at_once_another_tab_waits(lab):
    lab.sync()
    lab.store.update_dossier(first(lab), motivation="après le rechargement")
    row = lab.sink.records("OTP_Etat")[0]
    lab.sink.apply_now([["UpdateRecord", "OTP_Etat", row["id"], {"Expire": 1e10, "Reprise": ""}]])  # died mid-sync
    lab.holder = "labo/autre-onglet"
    with pytest.raises(errors.OTPError) as caught:
        lab.sync()
    assert caught.value.code == "busy"
    lab.holder = "labo/onglet"  # the same tab, reloaded (its id survives a reload)
    result = lab.sync()
    assert result.updated == 1
    lab.assert_copy_exact()


def test_a_filter_keeps_only_the_dossiers_wanted_and_follows_changes(lab):
    procedure = lab.store.procedure(lab.number)
    states = sorted({d["state"] for d in procedure.dossiers.values()})
    assert len(states) >= 2, "the sample has several states"
    kept_state = states[0]
    wanted = sorted(n for n, d in procedure.dossiers.items() if d["state"] == kept_state)
    lab.sync(filters={"states": [kept_state]})
    assert lab.dossier_numbers() == wanted
    # a dossier that leaves the filter (its state changes) goes; the agent's note on another stays
    lab.agent_edit(wanted[-1], "à garder")
    lab.store.update_dossier(wanted[0], state=states[1])
    result = lab.sync(filters={"states": [kept_state]})
    assert result.filtered_out == [wanted[0]] and lab.dossier_numbers() == wanted[1:]
    assert lab.agent_cells() == {wanted[-1]: "à garder"}
    # widening the filter brings the others in (a full sync); keeping those outside marks them
    result = lab.sync(filters={"states": [], "keep_out": True})
    assert not result.incremental and lab.dossier_numbers() == sorted(procedure.dossiers)
    result = lab.sync(filters={"states": [kept_state], "keep_out": True})
    marked = sorted(r["Numero"] for r in lab.rows("dossiers") if r["Hors_du_filtre"])
    assert marked == sorted(n for n, d in procedure.dossiers.items() if d["state"] != kept_state)
    assert lab.agent_cells() == {wanted[-1]: "à garder"}


@pytest.mark.parametrize("raw,detail", [
    ({"states": ["brouillon"]}, "état inconnu"),
    ({"deposited_since": "01/02/2026"}, "AAAA-MM-JJ"),
    ({"archived": "peut-être"}, "archivés"),
])
def test_a_filter_that_makes_no_sense_is_refused_in_french(raw, detail):
    from py_core.plan.filters import parse_filters
    with pytest.raises(errors.InputError) as caught:
        parse_filters(raw)
    assert caught.value.code == "filters_invalid" and detail in caught.value.message_fr


def test_a_document_grist_refuses_to_write_says_which_tables_and_loses_nothing(lab):
    lab.sync()
    lab.store.update_dossier(first(lab), motivation="à écrire")
    lab.sink.refused_tables = {lab.table("dossiers")}
    with pytest.raises(errors.GristWriteError) as caught:
        lab.sync()
    assert "(D4242_Dossiers, OTP_Etat)" in caught.value.message_fr and "règles d'accès" in caught.value.message_fr
    assert lab.history()[-1]["Statut"] == "Échec"
    lab.sink.refused_tables = set()
    lab.sync()
    assert next(r for r in lab.rows("dossiers") if r["Numero"] == first(lab))["Motivation"] == "à écrire"


def test_written_tables_names_the_users_tables_first():
    from py_core.grist.sink import written_tables
    actions = [["UpdateRecord", "OTP_Etat", 1, {}], ["BulkAddRecord", "D1_Champs", [], {}], ["AddRecord", "D1_Champs", None, {}],
               ["UpdateRecord", "_grist_Views", 1, {}]]
    assert written_tables(actions) == ["D1_Champs", "OTP_Etat"]


def _page_bundles(lab) -> list[set[str]]:
    """Each bundle of the next sync that adds or changes rows of the procedure's tables: the
    table keys it writes."""
    tables = {lab.table(k): k for k in ("dossiers", "champs", "annotations", "avis", "fichiers")}
    bundles: list[set[str]] = []
    lab.sink.before_apply = lambda actions: bundles.append(
        {tables[a[1]] for a in actions if a[0] in ("BulkAddRecord", "BulkUpdateRecord") and a[1] in tables})
    lab.sync()
    lab.sink.before_apply = None
    return [b for b in bundles if b]


@pytest.mark.parametrize("retyped", [False, True], ids=["refs", "a Ref retyped to Int"])
def test_a_page_is_one_bundle_new_dossiers_named_by_grists_temporary_ids(lab, retyped):
    """A page's dossier rows and child rows go in one bundle (the new dossiers' temporary ids
    in the children's Refs, turned into row ids by Grist). Where an agent retyped a child's
    Ref (Grist leaves -1 in an Int), two bundles: the dossier rows, then the child rows."""
    lab.sync()
    numbers = lab.dossier_numbers()[:3]
    if retyped:
        lab.sink.apply_now([["ModifyColumn", lab.table("champs"), lab.col_id("champs", "dossier"), {"type": "Int"}]])
    lab.sink.apply_now([["BulkRemoveRecord", lab.table("dossiers"), [lab.row_of(n)["id"] for n in numbers]]])
    for n in numbers:
        lab.store.update_dossier(n, motivation=f"revu {n}")  # fetched again: a page re-adds them
    bundles = _page_bundles(lab)
    children = {"champs", "annotations"}
    if retyped:  # the dossier rows alone, then the child rows with the dates
        assert len(bundles) == 2 and bundles[0] == {"dossiers"} and children <= bundles[1], bundles
    else:
        assert len(bundles) == 1 and {"dossiers", *children} <= bundles[0], bundles
    refs = {lab.numbers_by_row().get(r[lab.col_id("champs", "dossier")]) for r in lab.rows("champs")}
    assert set(numbers) <= refs and None not in refs, "every champs row on its dossier"
    assert lab.by_dossier("champs") == lab.by_dossier("champs", lab.fresh_copy())
