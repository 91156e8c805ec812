"""An incremental sync lists every dossier first (light pages: number, modification date,
labels) and fetches only those whose date moved since they were copied; a dossier the listing
did not show is asked for by number before anything is removed. Under Grist's engine with the
fake DS over HTTP (tests/lab.py)."""

from __future__ import annotations

import math

import pytest

from py_core import errors
from tests.grist_engine import engine_missing
from tests.lab import Lab

pytestmark = pytest.mark.skipif(bool(engine_missing()), reason=engine_missing() or "")

N = 250


def operations(lab, since: int) -> list[str]:
    return [r.operation_name for r in lab.server.requests[since:]]


def side_effect(lab, when, action) -> None:
    """Run `action` once, just before DS answers the first request `when` accepts."""
    state = {"done": False}

    def match(request):
        if not state["done"] and when(request):
            state["done"] = True
            action()
        return False

    lab.server.fail_next(500, match=match)


@pytest.fixture
def lab():
    with Lab(dossiers=N) as lab:
        lab.sync()
        lab.sync()  # fetches again the dossiers copied in the second of their date: then settled
        yield lab


def test_a_re_sync_with_nothing_changed_reads_the_structure_the_light_pages_and_the_bin(lab):
    before, bundles = len(lab.server.requests), []
    lab.sink.before_apply = bundles.append
    result = lab.sync()
    assert sorted(operations(lab, before)) == sorted(["otpStructure", *["otpRefresh"] * math.ceil(N / 100), "otpDeletedDossiers"])
    assert (result.fetched, result.added, result.updated, result.deleted) == (0, 0, 0, 0)
    assert len(bundles) == 2, "the lease taken, then the history line with the lease given back"
    assert not [a for bundle in bundles for a in bundle if not a[1].startswith("OTP_")], "no data written"
    lab.assert_copy_exact()


def test_only_the_dossiers_whose_date_moved_are_fetched(lab):
    numbers = lab.dossier_numbers()
    lab.store.update_dossier(numbers[3], motivation="modifié")
    lab.store.update_dossier(numbers[200], motivation="modifié aussi")
    lab.store.add_dossier()
    before = len(lab.server.requests)
    result = lab.sync()
    assert (result.fetched, result.added, result.updated) == (3, 1, 2)
    assert operations(lab, before).count("otpDossiers") == 1
    lab.assert_copy_exact()


def test_a_dossier_whose_copy_is_older_than_ds_is_fetched_even_behind_the_cursor(lab):
    """The cursor plays no part: a modification DS stamped with an older date (its clocks, a
    late commit) is caught by comparing dates, whatever the last sync's cursor."""
    victim = lab.dossier_numbers()[10]
    row = next(r for r in lab.rows("dossiers") if r["Numero"] == victim)
    lab.sink.apply_now([["UpdateRecord", lab.table("dossiers"), row["id"], {"Date_derniere_modification": 0.0, "Motivation": "périmé"}]])
    before = len(lab.server.requests)
    result = lab.sync()
    assert result.updated >= 1
    fresh = next(r for r in lab.rows("dossiers") if r["Numero"] == victim)
    assert fresh["Motivation"] != "périmé"
    # one dossier among many modified since its date: asked for by number, not by pages
    assert "otpDossier" in operations(lab, before) and "otpDossiers" not in operations(lab, before)
    lab.assert_copy_exact()


def test_a_page_interrupted_between_its_two_bundles_is_fetched_again(lab):
    """The dossier rows go first, their child rows (and the copy's modification date) second:
    a sync stopped in between leaves dates that differ from DS's, so the next one takes them."""
    victim = lab.dossier_numbers()[5]
    text = next(d for d in lab.store.procedure(lab.number).active_revision["champDescriptors"]
                if d["__typename"] == "TextChampDescriptor")
    lab.store.update_champ(victim, text["id"], "valeur nouvelle")
    new = lab.store.add_dossier()["number"]
    champs = lab.table("champs")
    lab.sink.fail_when.append((lambda actions: any(a[1] == champs for a in actions),
                               errors.grist_write_failed("onglet fermé", [champs])))
    with pytest.raises(errors.GristWriteError):
        lab.sync()
    result = lab.sync()
    assert result.fetched >= 2
    rows = {r["Numero"]: r["id"] for r in lab.rows("dossiers")}
    assert any("valeur nouvelle" in r.values() for r in lab.rows("champs") if r["Dossier"] == rows[victim])
    assert any(r["Dossier"] == rows[new] for r in lab.rows("champs"))
    lab.assert_copy_exact()


def test_dossiers_kept_outside_the_filter_cost_no_request_when_nothing_changed(lab):
    procedure = lab.store.procedure(lab.number)
    kept = [n for n, d in procedure.dossiers.items() if d["state"] != "accepte"]
    lab.sync(filters={"states": ["en_construction", "en_instruction", "refuse", "sans_suite"], "keep_out": True})
    assert len(lab.dossier_numbers()) == N and kept
    before = len(lab.server.requests)
    result = lab.sync(filters={"states": ["en_construction", "en_instruction", "refuse", "sans_suite"], "keep_out": True})
    assert sorted(operations(lab, before)) == sorted(["otpStructure", *["otpRefresh"] * math.ceil(N / 100), "otpDeletedDossiers"])
    assert result.fetched == 0 and result.deleted == 0


def test_the_light_pages_ask_for_what_the_filter_looks_at_only_when_there_is_one(lab):
    """Without a filter, DS is not asked for the state, archiving and groupe of every dossier;
    with one, the listing has them: a dossier archived without its date moving leaves it."""
    def light_nodes(since):
        return [r.variables["filtered"] for r in lab.server.requests[since:] if r.operation_name == "otpRefresh"]

    before = len(lab.server.requests)
    lab.sync()
    assert light_nodes(before) == [False] * math.ceil(N / 100)
    filters = {"archived": "exclude", "keep_out": True}
    lab.sync(filters=filters)  # a full copy: the filter changed
    victim = lab.dossier_numbers()[7]
    _, dossier = lab.store.find_dossier(victim)
    dossier["archived"] = True  # its dates stay: only the light listing can see it
    before = len(lab.server.requests)
    result = lab.sync(filters=filters)
    assert light_nodes(before) == [True] * math.ceil(N / 100) and result.fetched == 0
    row = next(r for r in lab.rows("dossiers") if r["Numero"] == victim)
    assert row["Hors_du_filtre"] is True


def test_a_long_listing_keeps_its_lease(lab):
    """A listing writes nothing; the lease is renewed when half of it went by."""
    now = {"t": 1_000_000.0}

    def clock():
        now["t"] += 20.0  # every look at the clock: 20 s later
        return now["t"]

    renewals = []
    lab.sink.before_apply = lambda actions: renewals.append(actions) if all(a[1] == "OTP_Etat" for a in actions) else None
    lab.sync(clock=clock)
    assert len(renewals) >= 2, "the lease taken, then renewed while listing"


def test_a_dossier_restored_while_the_listing_passed_it_is_kept_as_the_same_row(lab):
    victim = lab.dossier_numbers()[42]
    lab.agent_edit(victim, "à relancer")
    lab.store.delete_dossier(victim, pending=True)
    assert lab.sync().binned == [victim]
    # Next sync: the listing does not show it (in the bin), then it is restored before the bin
    # is read: it is in neither list, so OTP asks DS for it instead of removing it.
    side_effect(lab, lambda r: r.operation_name == "otpDeletedDossiers", lambda: lab.store.restore_dossier(victim))
    before = len(lab.server.requests)
    result = lab.sync()
    assert result.deleted == 0 and result.restored == [victim]
    assert "otpDossier" in operations(lab, before)
    assert lab.agent_cells()[victim] == "à relancer"
    lab.assert_copy_exact()


def test_a_dossier_deleted_outright_is_removed_after_ds_confirms_it(lab):
    victim = lab.dossier_numbers()[7]
    lab.agent_edit(victim, "note")
    lab.store.delete_dossier(victim)
    result = lab.sync()
    assert result.deleted_numbers == [victim]
    assert victim not in lab.dossier_numbers()
    lab.assert_copy_exact()
