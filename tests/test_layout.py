"""The pages OTP lays out once per procedure (py_core/layout.py), in Grist's own engine.

Until the sync calls `lay_out` itself, each test calls it after `lab.sync()` the way the sync's
hook does (state loaded after the schema, the maps); once hooked, those calls are no-ops and
the tests hold as they are.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from py_core.grist.document import load_state
from py_core.grist.meta import JOURNALS, META_TABLES, meta_table_actions
from py_core import errors
from py_core.grist.layout import CHARTS_PENDING, DASHBOARD_PAGE, DOSSIERS_PAGE, HISTORY_PAGE, lay_out, load_layout
from py_core.plan.registry import plan_schema, refresh_maps
from py_core.plan.schema import build_schema
from tests.grist_engine import engine_missing
from tests.lab import Lab, run

pytestmark = pytest.mark.skipif(engine_missing() is not None, reason=engine_missing() or "")


def lay_out_now(lab: Lab):
    async def go():
        structure = await lab.client().structure(lab.number)
        state = await load_state(lab.sink)
        schema = build_schema(structure, timezone=state.timezone, ds_base=lab.server.url)
        plan = plan_schema(state, schema)
        await lab.sink.apply(plan.actions)
        state = await load_state(lab.sink)
        maps = refresh_maps(state, schema, plan.maps)
        return await lay_out(lab.sink, state, lab.number, maps, title=structure.title)

    return run(go())


def pages(sink) -> list[str]:
    views = {v["id"]: v["name"] for v in sink.records("_grist_Views")}
    return [views[p["viewRef"]] for p in sorted(sink.records("_grist_Pages"), key=lambda p: p["pagePos"])]


def sections(sink, page: str) -> list[dict]:
    view = next(v["id"] for v in sink.records("_grist_Views") if v["name"] == page)
    return [s for s in sink.records("_grist_Views_section") if s["parentId"] == view]


def layout_snapshot(sink) -> str:
    return json.dumps({t: sink.table(t) for t in ("_grist_Views", "_grist_Views_section", "_grist_Pages",
                                                   "_grist_Views_section_field", "_grist_Filters")}, sort_keys=True)


def test_first_sync_lays_out_dossiers_dashboard_and_history():
    with Lab(dossiers=25) as lab:
        lab.sync()
        lay_out_now(lab)
        sink = lab.sink
        assert pages(sink) == [DOSSIERS_PAGE, DASHBOARD_PAGE, HISTORY_PAGE]
        assert sink.records("OTP_Demarches")[0]["Pages_creees"] is True

        tables = {t["id"]: t["tableId"] for t in sink.records("_grist_Tables")}
        on_dossiers = sections(sink, DOSSIERS_PAGE)
        titles = [s["title"] for s in on_dossiers]
        assert titles[:6] == ["Dossiers", "Dossier sélectionné", "Champs", "Annotations",
                              "Fichiers", "Avis d'experts"]
        assert any(t.startswith("Bloc : ") for t in titles)
        listing = on_dossiers[0]
        assert tables[listing["tableRef"]] == lab.table("dossiers") and listing["parentKey"] == "record"
        columns = {c["id"]: c for c in sink.records("_grist_Tables_column")}
        for section in on_dossiers[1:]:  # every other widget follows the selected dossier
            assert section["linkSrcSectionRef"] == listing["id"]
            if section["title"] != "Dossier sélectionné":
                assert columns[section["linkTargetColRef"]]["colId"] == "Dossier"
        layout = json.loads(next(v for v in sink.records("_grist_Views") if v["name"] == DOSSIERS_PAGE)["layoutSpec"])
        def leaves_of(box):
            return [box["leaf"]] if "leaf" in box else [leaf for child in box["children"] for leaf in leaves_of(child)]

        leaves = leaves_of(layout)
        assert sorted(leaves) == sorted(s["id"] for s in on_dossiers)

        # the list shows a few columns, with widths
        fields = [f for f in sink.records("_grist_Views_section_field") if f["parentId"] == listing["id"]]
        shown = [columns[f["colRef"]]["colId"] for f in sorted(fields, key=lambda f: f["parentPos"])]
        assert shown[:3] == ["Numero", "Etat", "Date_depot"] and "Lien_DS" in shown and len(shown) <= 10
        assert all(f["width"] for f in fields)

        charts = sections(sink, DASHBOARD_PAGE)
        assert [(s["title"], s["chartType"]) for s in charts] == [
            ("Dossiers par état", "pie"), ("Dépôts par mois", "bar"),
            ("Délai entre dépôt et décision", "bar"), ("Dossiers par groupe instructeur", "bar")]
        summaries = {tables[s["tableRef"]] for s in charts}
        assert summaries == {f"{lab.table('dossiers')}_summary_{c}" for c in
                             ("Etat", "Mois_de_depot", "Tranche_delai", "Groupe_instructeur")}
        for chart in charts:  # x: the group, y: the count (not Grist's sums of every number)
            chart_fields = sorted((f for f in sink.records("_grist_Views_section_field") if f["parentId"] == chart["id"]),
                                  key=lambda f: f["parentPos"])
            assert [columns[f["colRef"]]["colId"] for f in chart_fields][1:] == ["count"]
            assert columns[chart_fields[1]["colRef"]]["label"] == "Nombre de dossiers"
        by_state = sink.records(f"{lab.table('dossiers')}_summary_Etat")
        assert sum(r["count"] for r in by_state) == 25

        history = sections(sink, HISTORY_PAGE)[0]
        assert history["title"] == "Synchronisations" and json.loads(history["sortColRefs"])[0] < 0  # newest first

        # registry tables and the procedure's raw tables have no page of their own, but stay
        assert {"OTP_Tables", "OTP_Colonnes", "OTP_Etat", "OTP_Demarches", lab.table("champs")} <= set(sink.table_ids())
        for name in ("OTP_Tables", "OTP_Colonnes", "OTP_Etat", "OTP_Demarches", lab.table("dossiers"), lab.table("avis")):
            assert name not in pages(sink)


def bundles_of(sink) -> list[list[tuple[str, str]]]:
    """Every bundle the sink applies from now on: (action, its table or section kind)."""
    seen: list[list[tuple[str, str]]] = []
    apply = sink.apply

    async def recorded(actions, *rest, **options):
        seen.append([(a[0], a[3] if a[0] == "CreateViewSection" else str(a[1])) for a in actions])
        return await apply(actions, *rest, **options)

    sink.apply = recorded
    return seen


def chart_sections(sink) -> list[dict]:
    return [s for s in sink.records("_grist_Views_section") if s["parentKey"] == "chart"]


def test_the_charts_come_once_the_dossiers_are_written():
    """A summary table recomputes its groups on every page written: the first copy writes its
    250 dossiers into a dashboard without charts, then makes them on the full table."""
    with Lab(dossiers=250) as lab:
        bundles = bundles_of(lab.sink)
        lab.sync()
        writes = [i for i, b in enumerate(bundles) if ("BulkAddRecord", lab.table("dossiers")) in b]
        charts = [i for i, b in enumerate(bundles) if ("CreateViewSection", "chart") in b]
        assert len(writes) >= 3 and len(charts) == 1 and charts[0] > writes[-1]
        assert len(chart_sections(lab.sink)) == 4 and lab.sink.records("OTP_Demarches")[0][CHARTS_PENDING] == 0
        assert sum(r["count"] for r in lab.sink.records(f"{lab.table('dossiers')}_summary_Etat")) == 250
        assert pages(lab.sink) == [DOSSIERS_PAGE, DASHBOARD_PAGE, HISTORY_PAGE]


def test_ds_s_bin_is_asked_for_while_the_charts_are_made():
    """The charts cost Grist a second or two: DS's bin, the next thing the copy needs, is
    asked for before they are made, and a far DS answers meanwhile; the copy is as exact."""
    with Lab(dossiers=250) as lab:
        lab.server.latency = 0.3  # a far DS
        apply, received = lab.sink.apply, lab.server.answer
        bin_answered, charts_began = [], []  # were the charts begun with DS's answer for its bin in?

        def noted(path, authorization, body):
            delay, respond = received(path, authorization, body)
            if b"otpDeletedDossiers" not in body:
                return delay, respond
            return delay, lambda: (respond(), bin_answered.append(True))[0]

        async def noting(actions, *rest, **options):
            charts_began.extend([bool(bin_answered)] if any(a[0] == "CreateViewSection" and a[3] == "chart"
                                                             for a in actions) else [])
            return await apply(actions, *rest, **options)

        lab.server.answer, lab.sink.apply = noted, noting
        lab.sync()
        assert charts_began == [False] and bin_answered == [True], "the charts made while DS answers for its bin"
        assert len(chart_sections(lab.sink)) == 4
        lab.assert_copy_exact()


def cancel_after(pages_: int):
    calls = {"n": 0}

    def cancel() -> bool:
        calls["n"] += 1
        return calls["n"] > pages_

    return cancel


@pytest.mark.parametrize("agent", ["leaves it", "removes the dashboard", "puts a page of theirs in its place"])
def test_an_interrupted_first_copy_gets_its_charts_once_from_the_copy_that_ends(agent):
    with Lab(dossiers=250) as lab:
        with pytest.raises(errors.OTPError):
            lab.sync(should_cancel=cancel_after(1))
        dashboard = next(v["id"] for v in lab.sink.records("_grist_Views") if v["name"] == DASHBOARD_PAGE)
        assert chart_sections(lab.sink) == [] and lab.sink.records("OTP_Demarches")[0][CHARTS_PENDING] == dashboard
        if agent != "leaves it":
            lab.sink.apply_now([["RemoveRecord", "_grist_Views", dashboard]])
        if agent == "puts a page of theirs in its place":  # Grist gives it the removed page's id
            tables = {t["tableId"]: t["id"] for t in lab.sink.records("_grist_Tables")}
            lab.sink.apply_now([["CreateViewSection", tables[lab.table("dossiers")], 0, "record", None, None]])
            assert max(v["id"] for v in lab.sink.records("_grist_Views")) == dashboard
        theirs = layout_snapshot(lab.sink)
        assert lab.sync().resumed
        lab.sync()
        lab.assert_copy_exact()
        assert lab.sink.records("OTP_Demarches")[0][CHARTS_PENDING] == 0
        if agent != "leaves it":  # their pages: no chart comes, nowhere
            assert chart_sections(lab.sink) == [] and DASHBOARD_PAGE not in pages(lab.sink)
            assert layout_snapshot(lab.sink) == theirs
        else:
            assert [s["parentId"] for s in chart_sections(lab.sink)] == [dashboard] * 4
            titles = [s["title"] for s in sections(lab.sink, DASHBOARD_PAGE)]
            assert titles == ["Dossiers par état", "Dépôts par mois", "Délai entre dépôt et décision",
                              "Dossiers par groupe instructeur"]


def test_helper_columns_compute_month_and_delay():
    with Lab(dossiers=30) as lab:
        lab.sync()
        lay_out_now(lab)
        rows = lab.rows("dossiers")
        decided = [r for r in rows if r["Date_traitement"]]
        assert decided and all(r["Delai_decision_jours"] == round((r["Date_traitement"] - r["Date_depot"]) / 86400)
                               for r in decided)
        assert all(r["Tranche_delai"] == "Sans décision" for r in rows if r["Date_depot"] and not r["Date_traitement"])
        assert {r["Tranche_delai"] for r in decided} <= {"0–30 jours", "31–60 jours", "61–90 jours", "91–180 jours", "> 180 jours"}
        assert all(len(r["Mois_de_depot"]) == 7 for r in rows if r["Date_depot"])
        table_ref = next(t["id"] for t in lab.sink.records("_grist_Tables") if t["tableId"] == lab.table("dossiers"))
        columns = {c["colId"]: c for c in lab.sink.records("_grist_Tables_column") if c["parentId"] == table_ref}
        assert columns["Mois_de_depot"]["isFormula"] and columns["Tranche_delai"]["isFormula"]


def test_laid_out_once_and_agents_arrangement_left_alone():
    with Lab(dossiers=10) as lab:
        lab.sync()
        lay_out_now(lab)
        before = layout_snapshot(lab.sink)
        lab.sync()
        lay_out_now(lab)
        assert layout_snapshot(lab.sink) == before

        # the agent removes the dashboard, renames « Dossiers », adds a raw page back
        views = {v["name"]: v["id"] for v in lab.sink.records("_grist_Views")}
        lab.sink.apply_now([["RemoveRecord", "_grist_Views", views[DASHBOARD_PAGE]],
                            ["UpdateRecord", "_grist_Views", views[DOSSIERS_PAGE], {"name": "Mes dossiers"}]])
        tables = {t["tableId"]: t["id"] for t in lab.sink.records("_grist_Tables")}
        lab.sink.apply_now([["CreateViewSection", tables["OTP_Colonnes"], 0, "record", None, None]])
        arranged = layout_snapshot(lab.sink)
        lab.sync()
        lay_out_now(lab)
        assert layout_snapshot(lab.sink) == arranged
        assert DASHBOARD_PAGE not in pages(lab.sink) and "Mes dossiers" in pages(lab.sink)


def test_layout_before_the_first_data_keeps_one_procedure_row():
    """As the sync's hook does it (after the tables phase): the procedure's row is made by the
    layout, the sync then fills it in; the first sync is a full one."""
    with Lab(dossiers=12) as lab:
        async def tables_only():
            state = await load_state(lab.sink)
            await lab.sink.apply(meta_table_actions(state))

        run(tables_only())
        lay_out_now(lab)
        assert [r["Numero"] for r in lab.sink.records("OTP_Demarches")] == [lab.number]
        result = lab.sync()
        assert not result.incremental and result.added == 12
        rows = lab.sink.records("OTP_Demarches")
        assert len(rows) == 1 and rows[0]["Pages_creees"] is True and rows[0]["Nb_dossiers"] == 12
        assert pages(lab.sink) == [DOSSIERS_PAGE, DASHBOARD_PAGE, HISTORY_PAGE]
        lab.assert_copy_exact()


def test_procedure_synced_by_an_earlier_version_keeps_its_pages():
    with Lab(dossiers=5) as lab:
        lab.sync()
        lab.sink.apply_now([["RemoveColumn", "OTP_Demarches", "Pages_creees"],  # an earlier version's document
                            ["RemoveColumn", "OTP_Demarches", CHARTS_PENDING]])
        before = pages(lab.sink)
        lab.sync()  # adds the columns, flagged for the procedure already synced, no chart pending
        lay_out_now(lab)
        assert pages(lab.sink) == before and len(chart_sections(lab.sink)) == 4
        assert lab.sink.records("OTP_Demarches")[0]["Pages_creees"] is True


def test_columns_read_well():
    with Lab(dossiers=3) as lab:
        lab.sync()
        columns = {(c["parentId"], c["colId"]): c for c in lab.sink.records("_grist_Tables_column")}
        tables = {t["tableId"]: t["id"] for t in lab.sink.records("_grist_Tables")}
        dossiers = tables[lab.table("dossiers")]
        depot = json.loads(columns[(dossiers, "Date_depot")]["widgetOptions"])
        assert depot["dateFormat"] == "DD/MM/YYYY" and depot["timeFormat"] == "HH:mm"
        etat = json.loads(columns[(dossiers, "Etat")]["widgetOptions"])
        assert set(etat["choiceOptions"]) == set(etat["choices"])
        assert etat["choiceOptions"]["Accepté"]["fillColor"] and etat["choiceOptions"]["Refusé"]["textColor"]
        dated = [c for c in columns.values() if c["type"].startswith(("Date:", "Date")) and c["parentId"] in
                 {tables[lab.table(k)] for k in ["dossiers", "champs", "annotations", "avis"]} and not c["isFormula"]]
        assert dated and all(json.loads(c["widgetOptions"] or "{}").get("dateFormat") == "DD/MM/YYYY" for c in dated)


def test_a_second_procedure_gets_its_own_pages():
    from demo.fake_ds import sample_procedure

    with Lab(dossiers=6) as lab:
        lab.sync()
        lay_out_now(lab)
        other = 8642
        procedure = sample_procedure(number=other, dossier_count=4, seed=5)
        lab.store.add_procedure(procedure)
        lab.number = other
        lab.sync()
        lay_out_now(lab)
        assert pages(lab.sink) == [DOSSIERS_PAGE, DASHBOARD_PAGE, HISTORY_PAGE,
                                   f"{DOSSIERS_PAGE} – n° {other}", f"{DASHBOARD_PAGE} – n° {other}"]
        listing = sections(lab.sink, f"{DOSSIERS_PAGE} – n° {other}")[0]
        tables = {t["id"]: t["tableId"] for t in lab.sink.records("_grist_Tables")}
        assert tables[listing["tableRef"]] == f"D{other}_Dossiers"


def test_a_copy_stopped_between_the_charts_and_their_arrangement_never_makes_them_twice(monkeypatch):
    from py_core.grist import layout

    with Lab(dossiers=30) as lab:
        def stopped(*_args):
            raise errors.cancelled()
        monkeypatch.setattr(layout, "plan_chart_arrangement", stopped)
        with pytest.raises(errors.OTPError):
            lab.sync()
        assert len(chart_sections(lab.sink)) == 4 and lab.sink.records("OTP_Demarches")[0][CHARTS_PENDING] == 0
        monkeypatch.undo()
        lab.sync()
        lab.sync()
        assert len(chart_sections(lab.sink)) == 4, "made once: untitled, never twice"
        lab.assert_copy_exact()


class CountingReads:
    """The lab's document, its reads counted while they are out (each lets the others run, as a
    read through the widget's bridge does)."""

    def __init__(self, sink):
        self.sink, self.out, self.most, self.reads = sink, 0, 0, 0

    async def fetch_table(self, table_id: str):
        self.out += 1
        self.reads += 1
        self.most = max(self.most, self.out)
        try:
            await asyncio.sleep(0)
            return await self.sink.fetch_table(table_id)
        finally:
            self.out -= 1


def test_the_document_s_state_and_pages_are_read_in_one_round_trip_each():
    """In the widget a read crosses the worker's bridge and back: a copy reads the document's
    state and pages several times, each time every table at once (Grist's own, then OTP's)."""
    own = [name for name in META_TABLES if name not in JOURNALS]  # OTP's tables a job reads
    with Lab(dossiers=3) as lab:
        lab.sync()
        for load, reads_, at_once in ((load_state, 3 + len(own), max(3, len(own))), (load_layout, 5, 5)):
            reads = CountingReads(lab.sink)
            run(load(reads))
            assert (reads.reads, reads.most) == (reads_, at_once), load.__name__
