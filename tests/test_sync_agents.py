"""Issue 16: a document agents actually work in. Whatever an agent does to the copy (columns of
their own, rows or columns deleted, types or time zones changed, formulas) and whatever DS does
meanwhile (new annotations, new revisions, big integers, another instance, deletions, changes in
the same second, files replaced), no agent's cell is lost, no dossier's data is emptied,
duplicated or orphaned, and no sync stays stuck with a wrong message.

Whole syncs: Grist's own engine (`EngineSink`) and the fake DS over HTTP (`Lab`).

Seen failing on 3f3a02d (CPython, Grist's engine; the fake DS of this commit), each for the
reason the issue gives — every test below but the fake's own check of `dossier(number:)`:
 1 the agent's `Decision` column (Text, or Choice) is adopted for the annotation « Décision »:
   its cells become DS's « Décision DS n° … »;
 2 once the `Dossier` Ref of the champs is deleted, the duplicate repair removes 29 of the 30
   champ rows (2 left: the one kept, and the changed dossier's row added again);
 3 a Text champ become IntegerNumber in a new revision: once fetched again, the cells of the
   dossiers still on the older revision are emptied (42420: 'Maëlle' → None);
 4 12345678901234567891 becomes 1.2345678901234567e+19 (the column widened to Numeric);
 5 the same procedure number from another DS: no error, its dossiers synced over the first's;
 6 dossier rows deleted by hand: child rows with an empty Ref stay (orphans);
 7 `Numero` retyped to Text: 30 added again (60 rows), « Int cannot represent non-integer value »;
 8 interrupted first sync, two champs « Nom »: an unregistered `Nom_2` stays in the champs;
 9 a dossier deleted in DS after a partial answer, or deleted long before the cursor, is never
   removed (DS's `not_found` taken for an unreadable dossier);
10 a deleted OTP column (Motivation, a champ) or table (Avis) comes back empty;
11 an OTP column turned into a formula: GristWriteError « … règles d'accès … » at every sync;
12 a change in the same second as the copy's date is not fetched ('première' stays);
13 a file replaced by one of the same name, size and type keeps its old link;
14 « Date de dernière modification » retyped to Text: « 30 mis à jour », everything fetched;
15 labels and content of one dossier changed: « 2 mis à jour »;
16 the procedure's row removed from OTP_Demarches: 5 views instead of 3 (laid out again);
17 the document's time zone changed to UTC: the agent's `DateTime:America/Guadeloupe` reset.
"""

from __future__ import annotations

import json

import pytest

from demo.fake_ds import FakeDSServer, FakeDSStore, make_descriptor, sample_procedure
from py_core import errors
from tests.grist_engine import engine_missing
from tests.lab import TOKEN, Lab

pytestmark = pytest.mark.skipif(engine_missing() is not None, reason=str(engine_missing()))

UNREADABLE = "n'ont pas pu être lus"


@pytest.fixture
def lab():
    with Lab(dossiers=30) as lab:
        lab.sync()
        yield lab


def first(lab, i=0):
    return lab.dossier_numbers()[i]


def blank(cell):
    return cell in (None, "")


def champ_of(dossier, descriptor_id):
    return next((c for c in dossier["champs"] + dossier["annotations"] if c["champDescriptorId"] == descriptor_id), None)


def otp_contents(lab, key):
    """Each row's OTP cells other than its Ref (what DS put there), as text: row id → text."""
    cols = {k: c for k, c in lab.col_ids(key).items() if k != "dossier"}
    return {r["id"]: json.dumps({k: r.get(c) for k, c in cols.items()}, sort_keys=True, default=str) for r in lab.rows(key)}


def history_notes(lab):
    return [r["Notes"] or "" for r in lab.history()]


# ---- 1. An agent's column is never taken over ------------------------------------------------

@pytest.mark.parametrize("kind", ["Text", "Choice"])
def test_an_agents_column_is_never_taken_over_by_a_new_annotation(lab, kind):
    table = lab.table("annotations")
    numbers = lab.numbers_by_row()
    options = {"widgetOptions": json.dumps({"choices": ["à voir", "validé"]})} if kind == "Choice" else {}
    lab.agent_fill("annotations", "Decision", {r["id"]: f"avis de l'agent sur {numbers[r['Dossier']]}"
                                               for r in lab.rows("annotations")}, kind, **options)
    agent = lab.column("annotations", "Decision")
    agent_cells = {r["id"]: r["Decision"] for r in lab.rows("annotations")}
    assert len(agent_cells) == 30

    procedure = lab.store.procedure(lab.number)
    active = procedure.active_revision
    decision = make_descriptor("TextChampDescriptor", 4242999, "Décision")
    lab.store.publish_revision(active["champDescriptors"], [*active["annotationDescriptors"], decision])
    decided = [n for n, d in sorted(procedure.dossiers.items()) if d["state"] in ("accepte", "refuse")][:4]
    assert decided
    for n in decided:
        lab.store.rebase_dossier(n)
        lab.store.update_champ(n, decision["id"], f"Décision DS n° {n}")
    lab.sync()
    for n in decided:  # fetched again
        lab.store.update_dossier(n, motivation=f"motivation {n}")
    lab.sync()

    now = next(c for c in lab.columns("annotations") if c["id"] == agent["id"])
    assert (now["colId"], now["type"], now["label"]) == ("Decision", kind, agent["label"])
    assert now["widgetOptions"] == agent["widgetOptions"]
    assert {r["id"]: r["Decision"] for r in lab.rows("annotations")} == agent_cells, "the agent's cells are theirs"
    entry = lab.registry("annotations")[decision["id"]]
    assert entry["Col_ref"] != agent["id"], "OTP's annotation lives in a column of its own"
    col = lab.col_id("annotations", decision["id"])
    assert col and col != "Decision"
    numbers = lab.numbers_by_row()
    ds_values = {numbers[r["Dossier"]]: r[col] for r in lab.sink.records(table)}
    assert {n: ds_values[n] for n in decided} == {n: f"Décision DS n° {n}" for n in decided}


# ---- 2. The duplicate repair never removes rows that lost their key --------------------------

def test_champ_rows_whose_dossier_ref_the_agent_deleted_are_linked_again_not_removed(lab):
    numbers = lab.numbers_by_row()
    rows = lab.rows("champs")
    lab.agent_fill("champs", "Suivi", {r["id"]: f"suivi de {numbers[r['Dossier']]}" for r in rows})
    contents = otp_contents(lab, "champs")
    before = {contents[r["id"]]: (r["id"], numbers[r["Dossier"]]) for r in rows}
    assert len(before) == len(rows) == 30, "each dossier's champ row is unique in the sample"

    lab.sink.apply_now([["RemoveColumn", lab.table("champs"), lab.col_id("champs", "dossier")]])

    def check():
        ref_col = lab.col_id("champs", "dossier")
        assert ref_col is not None, "the Dossier column is back"
        assert lab.column("champs", ref_col)["type"] == f"Ref:{lab.table('dossiers')}"
        now = lab.rows("champs")
        assert len(now) == 30
        assert {r["id"] for r in now} == {rid for rid, _ in before.values()}, "no row removed"
        numbers, contents = lab.numbers_by_row(), otp_contents(lab, "champs")
        for row in now:
            row_id, number = before[contents[row["id"]]]
            assert row["id"] == row_id
            assert numbers.get(row[ref_col]) == number, "each row points at its own dossier"
            assert row["Suivi"] == f"suivi de {number}", "the agent's cell stays on its dossier"

    lab.store.update_dossier(first(lab), motivation="changé dans DS")  # a page to write: every table read
    lab.sync()
    check()
    lab.sync()
    check()
    assert lab.by_dossier("champs") == lab.by_dossier("champs", lab.fresh_copy())


# ---- 3. A champ's type changing between revisions empties no cell ----------------------------

def test_a_champ_become_a_number_in_a_new_revision_keeps_the_text_of_older_dossiers(lab):
    procedure = lab.store.procedure(lab.number)
    prenom = lab.descriptor("TextChampDescriptor", "Prénom")
    active = procedure.active_revision
    as_number = {**prenom, "__typename": "IntegerNumberChampDescriptor", "type": "integer_number"}
    lab.store.publish_revision([as_number if d["id"] == prenom["id"] else d for d in active["champDescriptors"]],
                               active["annotationDescriptors"])
    newcomer = lab.store.add_dossier(procedure_number=lab.number)  # on the new revision
    lab.store.update_champ(newcomer["number"], prenom["id"], 7)
    holders = [n for n, d in procedure.dossiers.items() if (champ_of(d, prenom["id"]) or {}).get("__typename") == "TextChamp"]
    assert len(holders) >= 20, "older dossiers keep their TextChamp"

    def check():
        col = lab.col_id("champs", prenom["id"])
        numbers = lab.numbers_by_row()
        cells = {numbers[r[lab.col_id("champs", "dossier")]]: r[col] for r in lab.rows("champs")}
        for n, dossier in procedure.dossiers.items():
            value = (champ_of(dossier, prenom["id"]) or {}).get("value")
            if not blank(value):
                cell = int(cells[n]) if isinstance(cells[n], float) and cells[n].is_integer() else cells[n]
                assert not blank(cell) and str(cell) == str(value), (n, value, cells[n])

    lab.sync()
    check()
    for n in holders:  # fetched again, with the new revision's reader
        lab.store.update_dossier(n, motivation=f"revu {n}")
    lab.sync()
    check()


# ---- 4. Big integers are exact ---------------------------------------------------------------

def test_an_integer_beyond_floats_is_copied_exactly_and_then_left_alone(lab):
    count = lab.descriptor("IntegerNumberChampDescriptor", "Nombre de bénéficiaires")
    n = first(lab)
    lab.store.update_champ(n, count["id"], "12345678901234567891")
    lab.sync()
    col = lab.col_id("champs", count["id"])
    row_id = lab.row_of(n)["id"]
    cell = next(r for r in lab.rows("champs") if r[lab.col_id("champs", "dossier")] == row_id)[col]
    assert cell == "12345678901234567891"
    assert lab.column("champs", col)["type"] == "Text"
    assert lab.sync().updated == 0


# ---- 5. Another DS instance is not merged in ----------------------------------------------------

def test_the_same_procedure_number_on_another_ds_instance_is_refused_and_a_relay_is_not(lab):
    numbers = lab.dossier_numbers()
    lab.agent_edit(numbers[0], "dossier suivi par Léa")
    lab.agent_edit(numbers[1], "à relancer")
    notes = lab.agent_cells()
    other_store = FakeDSStore([sample_procedure(number=lab.number, dossier_count=30, seed=77, first_dossier_number=lab.number * 10,
                                                title="Une autre démarche, sur une autre instance",
                                                created="2024-04-02T11:00:00+02:00")])
    assert other_store.procedure(lab.number).date_creation != lab.store.procedure(lab.number).date_creation
    kept = ("OTP_Historique", "OTP_Etat")
    before = lab.snapshot(exclude=kept)
    with FakeDSServer(other_store, tokens={TOKEN: "all"}) as other:
        with pytest.raises(errors.OTPError) as caught:
            lab.sync_from(other)
    assert caught.value.code == "other_instance"
    assert "autre instance" in caught.value.message_fr
    assert lab.snapshot(exclude=kept) == before, "the document is unchanged"

    with FakeDSServer(lab.store, tokens={TOKEN: "all"}) as relay:  # the same DS, another address
        lab.store.update_dossier(numbers[2], motivation="vu à travers le relais")
        result = lab.sync_from(relay, ds_site=lab.server.base_url)  # links still point at DS's site
    assert result.added == 0 and result.updated == 1
    lab.assert_copy_exact()
    assert lab.agent_cells() == notes
    assert lab.row_of(numbers[2])["Motivation"] == "vu à travers le relais"
    assert lab.sync().added == 0


# ---- 6. Dossier rows deleted by hand ------------------------------------------------------------

def test_dossier_rows_an_agent_deleted_come_back_with_their_rows_and_no_orphan(lab):
    numbers = lab.numbers_by_row()
    lab.agent_fill("champs", "Suivi", {r["id"]: f"suivi de {numbers[r['Dossier']]}" for r in lab.rows("champs")})
    gone = lab.dossier_numbers()[3:6]
    lab.sink.apply_now([["BulkRemoveRecord", lab.table("dossiers"), [lab.row_of(n)["id"] for n in gone]]])
    assert sum(1 for r in lab.rows("champs") if not r["Dossier"]) == 3, "Grist empties the Refs"

    lab.sync()
    assert lab.dossier_numbers() == lab.ds_numbers(), "the dossiers are back"
    for key in lab.child_keys():
        ref = lab.col_id(key, "dossier")
        assert all(r[ref] for r in lab.rows(key)), f"orphan rows left in {key}"
    fresh = lab.fresh_copy()
    for key in lab.child_keys():
        assert lab.by_dossier(key, skip=("lien",)) == lab.by_dossier(key, fresh, skip=("lien",)), key
    numbers = lab.numbers_by_row()
    notes = {numbers[r[lab.col_id("champs", "dossier")]]: r["Suivi"] for r in lab.rows("champs")}
    assert notes == {n: f"suivi de {n}" for n in lab.dossier_numbers()}, "the agent's cells stay on their dossiers"
    assert not any("simultanées" in n for n in history_notes(lab))
    lab.assert_copy_exact()


# ---- 7. « Numéro » retyped to Text ------------------------------------------------------------

def test_numero_retyped_to_text_adds_no_dossier_again(lab):
    lab.sink.apply_now([["ModifyColumn", lab.table("dossiers"), "Numero", {"type": "Text"}]])
    for _ in range(2):
        result = lab.sync()
        assert result.added == 0 and result.skipped == [] and UNREADABLE not in result.message
        assert len(lab.rows("dossiers")) == 30
    assert len({str(r["Numero"]) for r in lab.rows("dossiers")}) == 30


# ---- 8. An interrupted first sync leaves no stray column ----------------------------------------

def test_an_interrupted_first_sync_leaves_no_unregistered_column_for_twin_labels():
    with Lab(dossiers=30) as lab:
        labels = [d["label"] for d in lab.store.procedure(lab.number).active_revision["champDescriptors"]]
        assert labels.count("Nom") == 2
        boom = errors.grist_write_failed("connexion perdue")

        def after_the_tables(actions):
            if any(a[0] == "AddTable" and str(a[1]).startswith(f"D{lab.number}_") for a in actions):
                lab.sink.fail_at[lab.sink.calls + 1] = boom  # the call that follows that bundle
            return False

        lab.sink.fail_when.append((after_the_tables, boom))
        with pytest.raises(errors.OTPError):
            lab.sync()
        lab.sink.fail_when.clear()
        lab.sync()
        for key in ("champs", "annotations"):
            registered = {r["Col_ref"] for r in lab.registry(key).values()}
            stray = [c["colId"] for c in lab.columns(key) if c["id"] not in registered
                     and c["colId"] not in ("manualSort", "id") and not c["colId"].startswith("gristHelper_")]
            assert stray == [], f"unregistered columns in {key}"
        lab.assert_copy_exact()


# ---- 9. Dossiers deleted in DS are removed, whatever happened before ----------------------------

def test_the_fake_answers_an_unknown_dossier_number_as_ds_does(lab):
    import urllib.request

    query = "query otpDossier($number: Int!) { dossier(number: $number) { number } }"
    request = urllib.request.Request(lab.server.url, json.dumps({"query": query, "variables": {"number": 1},
                                                                "operationName": "otpDossier"}).encode(),
                                     {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    body = json.loads(urllib.request.urlopen(request).read())
    assert body["data"] is None and body["errors"][0]["extensions"]["code"] == "not_found"


def test_a_dossier_ds_answered_in_part_then_deleted_is_removed_and_not_reported(lab):
    n = first(lab)
    lab.store.update_dossier(n, motivation="nouvelle motivation")  # the last of the next page
    lab.server.partial_next(node=-1, count=5, match=lambda r: r.operation_name == "otpDossiers")
    assert lab.sync().skipped == [n]
    assert lab.sink.records("OTP_Demarches")[0]["A_reprendre"] == str(n)
    lab.server._faults.clear()
    lab.store.delete_dossier(n)  # final
    for _ in range(2):
        result = lab.sync()
        assert n not in lab.dossier_numbers()
        assert result.skipped == [] and UNREADABLE not in result.message
        assert UNREADABLE not in lab.history()[-1]["Message"]
        assert lab.sink.records("OTP_Demarches")[0]["A_reprendre"] == ""
    lab.assert_copy_exact()


def test_a_dossier_deleted_long_before_the_copys_cursor_is_removed(lab):
    n = first(lab, 4)
    lab.store.update_dossier(first(lab), motivation="le curseur avance")
    lab.sync()
    lab.store.delete_dossier(n, at="2025-11-03T10:00:00+01:00")  # outside any window of the cursor
    result = lab.sync()
    assert n not in lab.dossier_numbers()
    assert result.skipped == [] and UNREADABLE not in result.message
    lab.assert_copy_exact()


# ---- 10. A deleted OTP column or table is filled again ------------------------------------------

def test_an_otp_column_the_agent_deleted_comes_back_filled_for_every_dossier(lab):
    procedure = lab.store.procedure(lab.number)
    assert sum(1 for d in procedure.dossiers.values() if d.get("motivation")) >= 5
    lab.sink.apply_now([["RemoveColumn", lab.table("dossiers"), lab.col_id("dossiers", "motivation")]])
    lab.sync()
    col = lab.col_id("dossiers", "motivation")
    assert col is not None
    cells = {r["Numero"]: r[col] for r in lab.rows("dossiers")}
    assert {n: cells[n] or None for n in procedure.dossiers} == {n: d.get("motivation") or None for n, d in procedure.dossiers.items()}


def test_a_champ_column_the_agent_deleted_comes_back_filled_for_every_dossier(lab):
    prenom = lab.descriptor("TextChampDescriptor", "Prénom")
    lab.sink.apply_now([["RemoveColumn", lab.table("champs"), lab.col_id("champs", prenom["id"])]])
    lab.sync()
    col = lab.col_id("champs", prenom["id"])
    assert col is not None and sum(1 for r in lab.rows("champs") if r[col]) >= 20
    assert lab.by_dossier("champs") == lab.by_dossier("champs", lab.fresh_copy())


def test_an_otp_table_the_agent_deleted_comes_back_with_every_avis(lab):
    procedure = lab.store.procedure(lab.number)
    avis = sorted(a["id"] for d in procedure.dossiers.values() for a in d.get("avis") or [])
    assert avis
    lab.sink.apply_now([["RemoveTable", lab.table("avis")]])
    lab.sync()
    assert sorted(r[lab.col_id("avis", "avis_id")] for r in lab.rows("avis")) == avis
    assert lab.by_dossier("avis") == lab.by_dossier("avis", lab.fresh_copy())


# ---- 11. An OTP column turned into a formula ----------------------------------------------------

def test_an_otp_column_turned_into_a_formula_is_left_alone_and_said_once(lab):
    table = lab.table("dossiers")
    motivation = lab.col_id("dossiers", "motivation")
    lab.sink.apply_now([["ModifyColumn", table, motivation, {"isFormula": True, "formula": "\"calc\""}]])
    n, m = first(lab), first(lab, 1)
    lab.store.update_dossier(n, state="accepte", motivation="Conforme")
    lab.sync()
    lab.store.update_dossier(m, state="refuse", motivation="Hors périmètre")
    lab.sync()
    lab.sync()
    column = lab.column("dossiers", motivation)
    assert column["isFormula"] and column["formula"] == "\"calc\""
    assert {lab.row_of(n)["Etat"], lab.row_of(m)["Etat"]} == {"Accepté", "Refusé"}, "the other columns follow DS"
    assert lab.row_of(n)[motivation] == "calc"
    assert [r["Statut"] for r in lab.history()][-3:] == ["Terminée"] * 3
    assert sum(1 for notes in history_notes(lab) if "formule" in notes) == 1


# ---- 12. Two changes in the same second -----------------------------------------------------------

def test_a_change_in_the_same_second_as_the_copys_date_is_fetched(lab):
    from demo.fake_ds.store import iso, parse_iso
    from datetime import timedelta

    n = first(lab)
    copied = lab.store.update_dossier(n, motivation="première")["dateDerniereModification"]
    lab.sync()
    assert lab.row_of(n)["Motivation"] == "première"
    lab.store.set_now(iso(parse_iso(copied) - timedelta(seconds=1)))  # the fake adds a second per change
    assert lab.store.update_dossier(n, motivation="seconde")["dateDerniereModification"] == copied
    lab.sync()
    assert lab.row_of(n)["Motivation"] == "seconde"
    result = lab.sync()
    assert result.updated == 0 and lab.history()[-1]["Statut"] == "Terminée"


# ---- 13. A file replaced by one that looks the same ---------------------------------------------

def test_a_file_replaced_by_one_of_the_same_name_size_and_type_gets_its_new_link(lab):
    devis = lab.descriptor("PieceJustificativeChampDescriptor", "Devis")
    procedure = lab.store.procedure(lab.number)
    n = next(n for n, d in sorted(procedure.dossiers.items()) if (champ_of(d, devis["id"]) or {}).get("files"))
    old = champ_of(procedure.dossiers[n], devis["id"])["files"][0]
    new = lab.store.replace_file(n, devis["id"], 0, url=f"/files/remplace-{n}/{old['filename']}")
    assert (new["filename"], new["byteSizeBigInt"], new["contentType"]) == (old["filename"], old["byteSizeBigInt"], old["contentType"])
    assert new["checksum"] != old["checksum"]
    lab.sync()
    row_id = lab.row_of(n)["id"]
    link, champ, position = (lab.col_id("fichiers", k) for k in ("lien", "champ_cle", "numero_fichier"))
    row = next(r for r in lab.rows("fichiers") if r[lab.col_id("fichiers", "dossier")] == row_id
               and r[champ] == devis["id"] and r[position] == 1)
    assert f"/files/remplace-{n}/" in row[link]


# ---- 14. « Date de dernière modification » retyped to Text ---------------------------------------

def test_the_modification_date_retyped_to_text_fetches_nothing_when_nothing_changed(lab):
    # what a sync fetches when nothing changed (none, or the few of the cursor's second: see 12)
    untouched = lab.sync().fetched
    assert untouched < 5
    lab.sink.apply_now([["ModifyColumn", lab.table("dossiers"), lab.col_id("dossiers", "date_modification"), {"type": "Text"}]])
    for _ in range(2):
        result = lab.sync()
        assert result.updated == 0 and result.fetched <= untouched, result.message


# ---- 15. One dossier changed is one « mis à jour » ------------------------------------------------

def test_a_dossier_whose_labels_and_content_changed_counts_once(lab):
    n = first(lab)
    current = lab.store.dossier(n)["labels"]
    names = {l["name"] for l in current} ^ {"Urgent"}
    lab.store.set_labels(n, sorted(names))
    lab.store.update_dossier(n, motivation="pièces reçues")
    result = lab.sync()
    assert result.updated == 1, result.message


# ---- 16. The procedure's row removed from OTP_Demarches ------------------------------------------

def test_removing_the_procedures_row_does_not_lay_out_its_pages_again(lab):
    views, pages = len(lab.sink.table("_grist_Views")["id"]), len(lab.sink.table("_grist_Pages")["id"])
    row = next(r for r in lab.sink.records("OTP_Demarches") if r["Numero"] == lab.number)
    lab.sink.apply_now([["RemoveRecord", "OTP_Demarches", row["id"]]])
    lab.sync()
    assert len(lab.sink.table("_grist_Views")["id"]) == views
    assert len(lab.sink.table("_grist_Pages")["id"]) == pages
    lab.assert_copy_exact()


# ---- 17. The agent's time zone of a date column -------------------------------------------------

def test_an_agents_time_zone_on_a_date_column_survives_a_change_of_the_documents_zone(lab):
    col = lab.col_id("dossiers", "date_depot")
    lab.sink.apply_now([["ModifyColumn", lab.table("dossiers"), col, {"type": "DateTime:America/Guadeloupe"}]])
    lab.sync()
    assert lab.column("dossiers", col)["type"] == "DateTime:America/Guadeloupe"
    lab.sink.apply_now([["UpdateRecord", "_grist_DocInfo", 1, {"timezone": "UTC"}]])
    lab.sync()
    assert lab.column("dossiers", col)["type"] == "DateTime:America/Guadeloupe"
    lab.sync()
    assert lab.column("dossiers", col)["type"] == "DateTime:America/Guadeloupe"
