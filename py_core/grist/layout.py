"""A procedure's pages, laid out once after its tables exist (plans are pure; `lay_out` drives).

Grist gives every table a page of its own. For a procedure OTP makes instead:
- « Dossiers »: the list of dossiers (a few columns that read well), the selected dossier's card,
  and linked to it (select-by the dossier) its champs and annotations (cards), its files, avis
  and the rows of each repeatable block (tables);
- « Tableau de bord »: charts on summary tables: dossiers by state, deposits per month, time from
  deposit to decision, dossiers per groupe instructeur. Three formula columns of OTP's own on the
  dossiers table feed them: `Mois_de_depot`, `Delai_decision_jours`, `Tranche_delai`. The charts
  come once a copy has written its dossiers (`make_charts`): a summary table recomputes its
  groups on every page written, a third of Grist's time in a first copy of 5,000
  dossiers; made on the full table, it costs one computation. Until then the page is empty and
  `OTP_Demarches.Graphiques_a_faire` holds its ref;
- the raw pages Grist made for the procedure's tables and for OTP's registry (`OTP_Demarches`,
  `OTP_Tables`, `OTP_Colonnes`, `OTP_Etat`) are removed (the tables stay, under « Données
  brutes »), `OTP_Historique`'s page becomes « Historique des synchronisations ». Only pages as
  Grist made them are removed or renamed: a page an agent renamed or added a widget to stays.

Once: `OTP_Demarches.Pages_creees` is set in the first bundle, and a procedure is laid out only
when its row is absent or without the flag (the procedures an earlier version synced get the
flag when the column is added: they keep the pages their agents arranged). Three bundles, because each needs the refs the
previous one made (formula columns → summary sections → their fields): an interruption between
them leaves fewer widgets or links, never a page twice. The charts: two bundles (the sections
with the flag cleared, then their titles and arrangement), never twice for the same reason.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from .meta import DocState
from .document import load_state
from ..plan.registry import TableMap
from ..plan.schema import AVIS_KEY, DOSSIER_KEY, DOSSIER_REF, FILE_CHAMP, FILE_POSITION, ROW_KEY
from .sink import GristSink, records

Action = list[Any]

DOSSIERS_PAGE = "Dossiers"
DASHBOARD_PAGE = "Tableau de bord"
HISTORY_PAGE = "Historique des synchronisations"
REGISTRY = ("OTP_Demarches", "OTP_Tables", "OTP_Colonnes", "OTP_Etat")
HISTORY = "OTP_Historique"
CHARTS_PENDING = "Graphiques_a_faire"  # OTP_Demarches: the dashboard's view ref while its charts wait

# OTP's formula columns on the dossiers table: (col id, label, type, formula template). The
# template's {depot} / {traitement} are the col ids of those dates (an agent may rename them).
HELPERS = [
    ("Mois_de_depot", "Mois de dépôt", "Text",
     '${depot}.strftime("%Y-%m") if ${depot} else None'),
    ("Delai_decision_jours", "Délai de décision (jours)", "Int",
     "if not ${depot}:\n  return None\nif not ${traitement}:\n  return \"Sans décision\"\n"
     "return int(round((${traitement} - ${depot}).total_seconds() / 86400))"),
    ("Tranche_delai", "Délai de décision", "Text",
     "if not ${depot}:\n  return None\nif not ${traitement}:\n  return \"Sans décision\"\n"
     "jours = ${delai}\n"
     "for limite, nom in [(30, \"0–30 jours\"), (60, \"31–60 jours\"), (90, \"61–90 jours\"), (180, \"91–180 jours\")]:\n"
     "  if jours <= limite:\n    return nom\n"
     "return \"> 180 jours\""),
]

# The dossiers list shows these (the card shows every column); widths in pixels.
LIST_COLUMNS = ["numero", "etat", "date_depot", "demandeur_nom", "demandeur_prenom", "demandeur_raison_sociale",
                "groupe_instructeur", "labels", "date_traitement", "lien"]
HIDDEN_IN_CHILDREN = {DOSSIER_REF, ROW_KEY, AVIS_KEY, FILE_CHAMP, FILE_POSITION}
WIDTHS = {"Int": 80, "Numeric": 90, "Bool": 70, "Date": 100, "DateTime": 130, "Choice": 140, "ChoiceList": 170,
          "Ref": 80, "Text": 180}
KEY_WIDTHS = {DOSSIER_KEY: 80, "lien": 150, "demandeur_raison_sociale": 200, "groupe_instructeur": 170}

# Charts: (group-by column: a dossiers column key or a helper col id, title, chart type, options)
CHARTS = [
    ("etat", "Dossiers par état", "pie", {}),
    ("Mois_de_depot", "Dépôts par mois", "bar", {}),
    ("Tranche_delai", "Délai entre dépôt et décision", "bar", {}),
    ("groupe_instructeur", "Dossiers par groupe instructeur", "bar", {"orientation": "h"}),
]


@dataclass
class Layout:
    """The document's pages as Grist's metadata holds them."""

    tables: dict[int, dict[str, Any]]
    views: dict[int, dict[str, Any]]
    sections: dict[int, dict[str, Any]]
    fields: dict[int, dict[str, Any]]
    pages: list[dict[str, Any]]


async def load_layout(sink: GristSink) -> Layout:
    async def by_id(table_id: str) -> dict[int, dict[str, Any]]:
        return {r["id"]: r for r in records(await sink.fetch_table(table_id))}

    # all asked at once (in the widget each read is a round trip through the worker's bridge)
    tables, views, sections, fields, pages = await asyncio.gather(
        by_id("_grist_Tables"), by_id("_grist_Views"), by_id("_grist_Views_section"),
        by_id("_grist_Views_section_field"), sink.fetch_table("_grist_Pages"))
    return Layout(tables, views, sections, fields, records(pages))


def wants_layout(state: DocState, number: int) -> bool:
    """Lay out a procedure's pages only once (`meta.meta_table_actions` sets the flag of the
    procedures an earlier version synced: their agents' pages stay as they are)."""
    row = state.procedure(number)
    if row is not None and row.get("Pages_creees"):
        return False
    # the procedure's row may have been removed by an agent: its pages were laid out if the
    # formula columns the charts use (made in the same bundle as the pages) are there
    table_ref = state.registered_tables(number).get("dossiers")
    have = {c.col_id for c in state.table_columns(table_ref)} if table_ref else set()
    return not any(col_id in have for col_id, *_ in HELPERS)


def _page_name(base: str, number: int, taken: set[str]) -> str:
    return base if base not in taken else f"{base} – n° {number}"


def plan_layout(state: DocState, number: int, maps: dict[str, TableMap], *, title: str = "",
                view_names: set[str] = frozenset()) -> list[Action]:
    """Bundle 1: the formula columns the charts need, the two pages (empty), the flag.
    `view_names`: the names of the document's pages (to name a second procedure's apart).
    Nothing when the procedure is laid out already (see `wants_layout`)."""
    if not wants_layout(state, number):
        return []
    dossiers = maps["dossiers"]
    table_ref = state.table_ref(dossiers.table_id)
    have = {c.col_id for c in state.table_columns(table_ref)}
    names = {"depot": dossiers.col_ids["date_depot"], "traitement": dossiers.col_ids["date_traitement"],
             "delai": "Delai_decision_jours"}
    actions: list[Action] = []
    for col_id, label, type_, formula in HELPERS:
        if col_id not in have:
            actions.append(["AddColumn", dossiers.table_id, col_id, {
                "type": type_, "isFormula": True, "formula": _formula(formula, names),
                "label": label, "untieColIdFromLabel": True}])
    for base in (DOSSIERS_PAGE, DASHBOARD_PAGE):
        actions.append(["AddView", dossiers.table_id, "empty", _page_name(base, number, set(view_names))])
    row = state.procedure(number)
    if row is None:
        actions.append(["AddRecord", "OTP_Demarches", None, {"Numero": number, "Titre": title, "Pages_creees": True}])
    else:
        actions.append(["UpdateRecord", "OTP_Demarches", row["id"], {"Pages_creees": True}])
    return actions


def _formula(template: str, names: dict[str, str]) -> str:
    text = template
    for key, col_id in names.items():
        text = text.replace("${" + key + "}", "$" + col_id)
    return text


@dataclass
class Pages:
    number: int
    dossiers_view: int
    dashboard_view: int


def plan_sections(state: DocState, maps: dict[str, TableMap], pages: Pages) -> tuple[list[Action], list[str]]:
    """Bundle 2: the widgets of « Dossiers » (`CreateViewSection`), and the dashboard's ref kept
    for its charts (`make_charts`). Returns the actions and what each section is (its role, for
    `plan_arrangement`)."""
    dossiers = maps["dossiers"]
    wanted = [("list", dossiers.table_id, "record"), ("card", dossiers.table_id, "single")]
    wanted += [(key, maps[key].table_id, "single" if key in ("champs", "annotations") else "record")
               for key in _child_keys(maps)]
    actions = [["CreateViewSection", state.table_ref(table_id), pages.dossiers_view, kind, None, None]
               for _, table_id, kind in wanted]
    row = state.procedure(pages.number)
    if row is not None:
        actions.append(["UpdateRecord", "OTP_Demarches", row["id"], {CHARTS_PENDING: pages.dashboard_view}])
    return actions, [role for role, *_ in wanted]


def plan_charts(state: DocState, dossiers: TableMap, view: int) -> tuple[list[Action], list[str]]:
    """The dashboard's charts (`CreateViewSection` of a chart: its summary table comes with it),
    with their roles."""
    wanted = []
    for group, *_ in CHARTS:
        col_ref = state.column_ref(dossiers.table_id, dossiers.col_ids.get(group, group))
        if col_ref is not None:
            wanted.append(("chart:" + group, col_ref))
    d_ref = state.table_ref(dossiers.table_id)
    if d_ref is None:
        return [], []
    return [["CreateViewSection", d_ref, view, "chart", [col_ref], None] for _, col_ref in wanted], [r for r, _ in wanted]


def _child_keys(maps: dict[str, TableMap]) -> list[str]:
    order = ["champs", "annotations", "fichiers", "avis"]
    return [k for k in order if k in maps] + sorted(k for k in maps if k.startswith("bloc:"))


COUNT_LABEL = "Nombre de dossiers"
SECTION_TITLES = {"list": "Dossiers", "card": "Dossier sélectionné", "champs": "Champs",
                  "annotations": "Annotations", "fichiers": "Fichiers", "avis": "Avis d'experts"}


@dataclass
class Arrangement:
    """What bundle 3 changes, gathered section by section."""

    sections: dict[int, dict[str, Any]]  # section ref → its update
    remove_fields: list[int]
    widths: dict[int, int]  # field ref → width
    relabel: list[Action]


def plan_arrangement(state: DocState, maps: dict[str, TableMap], layout: Layout, pages: Pages,
                     created: dict[str, int]) -> list[Action]:
    """Bundle 3 (`created`: role → section ref): titles, links to the selected dossier, the
    list's columns and widths, the page's arrangement; Grist's raw pages of the procedure's and
    the registry's tables removed, the history's renamed."""
    return _arranged(state, maps, layout, created) + _page_specs(maps, pages, created) + plan_raw_pages(state, maps, layout)


def plan_chart_arrangement(state: DocState, maps: dict[str, TableMap], layout: Layout, view: int,
                           created: dict[str, int]) -> list[Action]:
    """The charts' second bundle: titles, chart types, x the group and y the count, two by two."""
    charts = [section for role, section in created.items() if role.startswith("chart:")]
    return _arranged(state, maps, layout, created) + [
        ["UpdateRecord", "_grist_Views", view, {"layoutSpec": _spec([charts[:2], charts[2:]])}]]


def _arranged(state: DocState, maps: dict[str, TableMap], layout: Layout, created: dict[str, int]) -> list[Action]:
    """Each created section's title, links, fields and widths (a chart's: its type, x and y)."""
    done = Arrangement({}, [], {}, [])
    for role, section in created.items():
        if role.startswith("chart:"):
            _arrange_chart(state, maps["dossiers"], layout, role.removeprefix("chart:"), section, done)
        else:
            _arrange_table(state, maps, layout, role, section, created.get("list"), done)
    actions: list[Action] = [*done.relabel]
    actions += [["UpdateRecord", "_grist_Views_section", section, update] for section, update in done.sections.items()]
    if done.remove_fields:
        actions.append(["BulkRemoveRecord", "_grist_Views_section_field", sorted(done.remove_fields)])
    if done.widths:
        ids = sorted(done.widths)
        actions.append(["BulkUpdateRecord", "_grist_Views_section_field", ids, {"width": [done.widths[i] for i in ids]}])
    return actions


def _fields_of(layout: Layout, section: int) -> list[dict[str, Any]]:
    return sorted((f for f in layout.fields.values() if f["parentId"] == section), key=lambda f: f["parentPos"])


def _arrange_chart(state: DocState, dossiers: TableMap, layout: Layout, group: str, section: int, done: Arrangement) -> None:
    chart = next(c for c in CHARTS if c[0] == group)
    table_ref = layout.sections[section]["tableRef"] if section in layout.sections else 0
    group_col = next((c.ref for c in state.table_columns(table_ref) if c.col_id == dossiers.col_ids.get(group, group)), None)
    count_col = next((c for c in state.table_columns(table_ref) if c.col_id == "count"), None)
    for f in _fields_of(layout, section):  # the group and its count only (Grist adds sums)
        if f["colRef"] not in (group_col, count_col.ref if count_col else None):
            done.remove_fields.append(f["id"])
    if count_col is not None and count_col.label != COUNT_LABEL:
        done.relabel.append(["ModifyColumn", state.tables[table_ref], "count", {"label": COUNT_LABEL, "untieColIdFromLabel": True}])
    done.sections[section] = {"title": chart[1], "chartType": chart[2],
                              "options": json.dumps({"multiseries": False, **chart[3]}),
                              "sortColRefs": json.dumps([group_col] if group_col else [])}


def _arrange_table(state: DocState, maps: dict[str, TableMap], layout: Layout, role: str, section: int,
                   list_ref: int | None, done: Arrangement) -> None:
    table_map = maps["dossiers" if role in ("list", "card") else role]
    update: dict[str, Any] = {"title": SECTION_TITLES.get(role) or "Bloc : " + _block_label(table_map)}
    if role != "list" and list_ref:
        target = 0 if role == "card" else state.column_ref(table_map.table_id, table_map.col_ids[DOSSIER_REF]) or 0
        update.update({"linkSrcSectionRef": list_ref, "linkSrcColRef": 0, "linkTargetColRef": target})
    done.sections[section] = update
    keys = {col_id: k for k, col_id in table_map.col_ids.items()}
    for f in _fields_of(layout, section):
        column = state.columns.get(f["colRef"])
        col_key = keys.get(column.col_id) if column else None
        if role == "list" and col_key not in LIST_COLUMNS:
            done.remove_fields.append(f["id"])
        elif role not in ("list", "card") and col_key in HIDDEN_IN_CHILDREN:
            done.remove_fields.append(f["id"])
        elif layout.sections.get(section, {}).get("parentKey") == "record" and column is not None:
            done.widths[f["id"]] = KEY_WIDTHS.get(col_key or "", WIDTHS.get(column.type.split(":")[0], 120))


def _page_specs(maps: dict[str, TableMap], pages: Pages, created: dict[str, int]) -> list[Action]:
    """The list on the left, all its height; on the right the card, then in pairs."""
    actions: list[Action] = []
    linked = [created[k] for k in _child_keys(maps) if k in created]
    if created.get("list"):
        pairs = [linked[i:i + 2] for i in range(0, len(linked), 2)]
        right = [{"children": [{"leaf": s} for s in row]} for row in ([[created["card"]]] if "card" in created else []) + pairs]
        spec = {"children": [{"children": [{"leaf": created["list"]}, {"children": right}]}]}
        actions.append(["UpdateRecord", "_grist_Views", pages.dossiers_view, {"layoutSpec": json.dumps(spec)}])
    return actions


def _block_label(table_map: TableMap) -> str:
    return table_map.spec.name.split("_Bloc_", 1)[-1].replace("_", " ")


def _spec(rows: list[list[int]]) -> str:
    return json.dumps({"children": [{"children": [{"leaf": s} for s in row]} for row in rows if row]})


def plan_raw_pages(state: DocState, maps: dict[str, TableMap], layout: Layout) -> list[Action]:
    """Remove the pages Grist made for the procedure's and the registry's tables (as Grist made
    them: named after the table, its widgets only); rename the history's and put it last."""
    mine = {m.table_id for m in maps.values()} | set(REGISTRY)
    remove: list[int] = []
    actions: list[Action] = []
    for ref, table in layout.tables.items():
        view = layout.views.get(table.get("primaryViewId") or 0)
        if view is None or view.get("name") != table["tableId"]:
            continue
        if any(s["parentId"] == view["id"] and s["tableRef"] != ref for s in layout.sections.values()):
            continue  # an agent put another widget on it: theirs
        if table["tableId"] in mine:
            remove.append(view["id"])
        elif table["tableId"] == HISTORY:
            actions.append(["UpdateRecord", "_grist_Views", view["id"], {"name": HISTORY_PAGE}])
            actions += _history_section(state, layout, ref, view["id"])
            page = next((p for p in layout.pages if p["viewRef"] == view["id"]), None)
            if page is not None:
                last = max(p["pagePos"] for p in layout.pages) if layout.pages else 0
                actions.append(["UpdateRecord", "_grist_Pages", page["id"], {"pagePos": last + 1000}])
    if remove:
        actions.insert(0, ["BulkRemoveRecord", "_grist_Views", sorted(remove)])
    return actions


HISTORY_WIDTHS = {"Demarche": 90, "Debut": 150, "Fin": 150, "Type": 120, "Statut": 100, "Message": 420, "Notes": 320}


def _history_section(state: DocState, layout: Layout, table_ref: int, view_ref: int) -> list[Action]:
    """The history's widget: newest sync first, its columns wide enough to read."""
    actions: list[Action] = []
    start = next((c.ref for c in state.table_columns(table_ref) if c.col_id == "Debut"), None)
    for section in layout.sections.values():
        if section["parentId"] != view_ref or section["tableRef"] != table_ref or section["parentKey"] != "record":
            continue
        actions.append(["UpdateRecord", "_grist_Views_section", section["id"], {
            "title": "Synchronisations", **({"sortColRefs": json.dumps([-start])} if start else {})}])
        fields = {f["id"]: state.columns[f["colRef"]].col_id for f in layout.fields.values()
                  if f["parentId"] == section["id"] and f["colRef"] in state.columns}
        ids = sorted(i for i, col in fields.items() if col in HISTORY_WIDTHS)
        if ids:
            actions.append(["BulkUpdateRecord", "_grist_Views_section_field", ids,
                            {"width": [HISTORY_WIDTHS[fields[i]] for i in ids]}])
    return actions


async def lay_out(sink: GristSink, state: DocState, number: int, maps: dict[str, TableMap], *,
                  title: str = "") -> DocState:
    """Lay out procedure `number`'s pages if it was never done (see the module's docstring).
    `state` must hold the procedure's tables (loaded after the schema was applied); returns the
    state reloaded when anything was written (its `OTP_Demarches` row may be new), else `state`."""
    if not wants_layout(state, number):
        return state
    layout = await load_layout(sink)
    first = plan_layout(state, number, maps, title=title, view_names={v.get("name") for v in layout.views.values()})
    results = await sink.apply(first)
    views = [r["id"] for a, r in zip(first, results) if a[0] == "AddView"]
    pages = Pages(number, *views)
    state = await load_state(sink)
    second, roles = plan_sections(state, maps, pages)
    results = await sink.apply(second)
    created = {role: r["sectionRef"] for role, r in zip(roles, results)}
    state, layout = await asyncio.gather(load_state(sink), load_layout(sink))
    await sink.apply(plan_arrangement(state, maps, layout, pages, created))
    return state


async def make_charts(sink: GristSink, state: DocState, number: int, maps: dict[str, TableMap]) -> None:
    """The dashboard's charts, if its page waits for them (`CHARTS_PENDING`; called once a copy
    has written its dossiers), empty as OTP made it: a page an agent removed meanwhile gets
    none, nor one with widgets (an agent's, which may even have its id: Grist gives a removed
    page's id to the next one)."""
    row = state.procedure(number)
    view = (row or {}).get(CHARTS_PENDING) or 0
    if not view:
        return
    cleared = ["UpdateRecord", "OTP_Demarches", row["id"], {CHARTS_PENDING: 0}]
    layout = await load_layout(sink)
    empty = view in layout.views and not any(s["parentId"] == view for s in layout.sections.values())
    charts, roles = plan_charts(state, maps["dossiers"], view) if empty else ([], [])
    results = await sink.apply([*charts, cleared])
    if charts:
        created = {role: r["sectionRef"] for role, r in zip(roles, results)}
        state, layout = await asyncio.gather(load_state(sink), load_layout(sink))
        await sink.apply(plan_chart_arrangement(state, maps, layout, view, created))
