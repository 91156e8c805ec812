"""Plans: schema changes and row diffs as Grist user actions."""

import json

from py_core.grist.meta import DocState, GristColumn
from py_core.ds.models import Structure
from py_core.plan.diff import TableIndex, plan_rows, record_written
from py_core.plan.registry import bulk_updates, plan_schema
from py_core.plan.schema import build_schema


def structure(champs, annotations=(), labels=()):
    return Structure.model_validate({
        "number": 42, "title": "Démarche test", "dossiers_count": 3,
        "labels": [{"name": n} for n in labels],
        "revision": {"id": "r1", "champDescriptors": list(champs), "annotationDescriptors": list(annotations)},
    })


def desc(id_, label, typename="TextChampDescriptor", **extra):
    return {"__typename": typename, "id": id_, "label": label, **extra}


def schema_of(*champs, **kw):
    return build_schema(structure(champs, **kw), timezone="Europe/Paris", ds_base="https://ds.example")


def empty_state():
    return DocState(tables={}, columns={}, timezone="Europe/Paris")


def test_first_plan_creates_one_table_per_part_with_typed_columns():
    schema = schema_of(
        desc("A", "Nom"), desc("B", "Nom"), desc("C", "Montant", "DecimalNumberChampDescriptor"),
        desc("H", "Section", "HeaderSectionChampDescriptor"),
        desc("R", "Dépenses", "RepetitionChampDescriptor", champDescriptors=[desc("R1", "Poste"), desc("R2", "Coût", "IntegerNumberChampDescriptor")]),
    )
    plan = plan_schema(empty_state(), schema)
    tables = {a[1]: a[2] for a in plan.actions if a[0] == "AddTable"}
    assert list(tables) == ["D42_Dossiers", "D42_Champs", "D42_Annotations", "D42_Avis", "D42_Fichiers", "D42_Bloc_Depenses"]
    champs = {c["id"]: (c["type"], c["label"]) for c in tables["D42_Champs"]}
    assert champs == {"Dossier": ("Ref:D42_Dossiers", "Dossier"), "Nom": ("Text", "Nom"), "Nom_2": ("Text", "Nom"),
                      "Montant": ("Numeric", "Montant")}
    bloc = {c["id"]: c["type"] for c in tables["D42_Bloc_Depenses"]}
    assert bloc == {"Dossier": "Ref:D42_Dossiers", "Ligne": "Text", "Position": "Int", "Poste": "Text", "Cout": "Int"}
    dossiers = {c["id"]: c["type"] for c in tables["D42_Dossiers"]}
    assert dossiers["Numero"] == "Int" and dossiers["Date_depot"] == "DateTime:Europe/Paris" and dossiers["Labels"] == "ChoiceList"
    assert all(c["untieColIdFromLabel"] for cols in tables.values() for c in cols)


def state_after_first_sync(schema):
    """The document as it stands once `schema` was created: the plan's one bundle applied as
    Grist would (tables, columns, and the registry rows written with them, by id)."""
    plan = plan_schema(empty_state(), schema)
    tables, columns, meta = {}, {}, {"OTP_Tables": [], "OTP_Colonnes": []}
    ref = 100
    for action in plan.actions:
        if action[0] == "AddTable":
            table_ref = len(tables) + 1
            tables[table_ref] = action[1]
            for col in action[2]:
                ref += 1
                options = json.loads(col.get("widgetOptions") or "{}")
                columns[ref] = GristColumn(ref, table_ref, col["id"], col["type"], col["label"], options, False)
        elif action[0] == "AddRecord":
            meta[action[1]].append({"id": len(meta[action[1]]) + 1, **action[3]})
        elif action[0] == "BulkAddRecord":
            names = list(action[3])
            for i in range(len(action[2])):
                meta[action[1]].append({"id": len(meta[action[1]]) + 1, **{n: action[3][n][i] for n in names}})
    return DocState(tables, columns, "Europe/Paris", meta)


def test_the_first_plan_registers_what_it_creates_in_the_same_bundle():
    schema = schema_of(desc("A", "Nom"), desc("B", "Nom"))
    plan = plan_schema(empty_state(), schema)
    created = {(a[1], c["id"]) for a in plan.actions if a[0] == "AddTable" for c in a[2]}
    registered = next(a[3] for a in plan.actions if a[0] == "BulkAddRecord" and a[1] == "OTP_Colonnes")
    assert set(zip(registered["Table_id"], registered["Col_id"])) == created
    state = state_after_first_sync(schema)
    by_key = {(r["Table_ref"], r["Cle"]): r["Col_ref"] for r in state.registered_columns(42)}
    champs_ref = next(r for r, t in state.tables.items() if t == "D42_Champs")
    assert state.columns[by_key[(champs_ref, "B")]].col_id == "Nom_2", "resolved by id until its ref is written"


def test_schema_evolution_renames_labels_adds_columns_and_keeps_the_rest():
    before = schema_of(desc("A", "Nom"), desc("B", "Ancien champ"))
    state = state_after_first_sync(before)
    # a column the user added to the champs table (a formula): never touched
    champs_ref = next(r for r, t in state.tables.items() if t == "D42_Champs")
    state.columns[999] = GristColumn(999, champs_ref, "Total", "Any", "Total", {}, True)
    after = schema_of(desc("A", "Nom de famille"), desc("N", "Nouveau"))
    plan = plan_schema(state, after)
    champs_actions = [a for a in plan.actions if a[1] == "D42_Champs"]
    assert ["ModifyColumn", "D42_Champs", "Nom", {"label": "Nom de famille", "untieColIdFromLabel": True}] in champs_actions
    assert ["AddColumn", "D42_Champs", "Nouveau", {"type": "Text", "label": "Nouveau", "isFormula": False, "untieColIdFromLabel": True}] in champs_actions
    assert not any(a[0] in ("RemoveColumn", "RenameColumn") or (len(a) > 2 and a[2] in ("Total", "Ancien_champ")) for a in plan.actions)


def test_agents_edits_to_otp_columns_win_until_ds_changes_that_champ():
    schema = schema_of(desc("A", "Nom"), desc("C", "Choix", "DropDownListChampDescriptor", options=["a", "b"]))
    state = state_after_first_sync(schema)
    champs_ref = next(r for r, t in state.tables.items() if t == "D42_Champs")
    nom = next(c for c in state.columns.values() if c.table_ref == champs_ref and c.col_id == "Nom")
    choix = next(c for c in state.columns.values() if c.table_ref == champs_ref and c.col_id == "Choix")
    nom.label, nom.type = "Nom (vérifié)", "Choice"  # an agent's rename and retype
    choix.widget_options = {"choices": ["a", "b", "c"], "alignment": "center"}  # an agent's choice and format
    assert plan_schema(state, schema).actions == [], "OTP puts nothing of its own back"
    changed = schema_of(desc("A", "Nom de naissance"), desc("C", "Choix", "DropDownListChampDescriptor", options=["a", "b", "d"]))
    actions = [a for a in plan_schema(state, changed).actions if a[1] == "D42_Champs"]
    assert ["ModifyColumn", "D42_Champs", "Nom", {"label": "Nom de naissance", "untieColIdFromLabel": True}] in actions
    modify_choix = next(a[3] for a in actions if a[2] == "Choix")
    assert json.loads(modify_choix["widgetOptions"]) == {"choices": ["a", "b", "d"], "alignment": "center"}
    assert not any("type" in a[3] for a in actions), "the agent's type stays"


def test_a_table_or_column_nobody_registered_is_an_agents_never_adopted():
    schema = schema_of(desc("A", "Nom"))
    state = state_after_first_sync(schema)
    state.meta = {}  # tables named as OTP would name them, that OTP's registry does not hold
    plan = plan_schema(state, schema)
    created = {a[1] for a in plan.actions if a[0] == "AddTable"}
    assert "D42_Champs_2" in created and plan.maps["champs"].table_id == "D42_Champs_2"
    assert plan.maps["champs"].col_ids["A"] == "Nom"


def test_a_deleted_otp_column_is_made_again_and_asks_for_a_refill():
    schema = schema_of(desc("A", "Nom"))
    state = state_after_first_sync(schema)
    nom = next(c for c in state.columns.values() if c.col_id == "Nom")
    del state.columns[nom.ref]
    plan = plan_schema(state, schema)
    assert plan.refill and plan.recreated and plan.fresh == {"champs": {"A"}}
    assert any(a[:3] == ["AddColumn", "D42_Champs", "Nom"] for a in plan.actions)


def test_an_otp_column_turned_into_a_formula_is_the_agents():
    schema = schema_of(desc("A", "Nom"))
    state = state_after_first_sync(schema)
    nom = next(c for c in state.columns.values() if c.col_id == "Nom")
    nom.is_formula = True
    plan = plan_schema(state, schema)
    assert "A" not in plan.maps["champs"].col_ids and plan.released and not plan.refill
    assert not any(a[0] in ("AddColumn", "ModifyColumn") for a in plan.actions)
    dossier_ref = next(c for c in state.columns.values() if c.col_id == "Dossier" and state.tables[c.table_ref] == "D42_Champs")
    dossier_ref.is_formula = True  # a key: OTP makes its own again
    plan = plan_schema(state, schema)
    assert plan.maps["champs"].col_ids["dossier"] == "Dossier_2" and plan.refill


def test_an_unchanged_schema_plans_nothing():
    schema = schema_of(desc("A", "Nom"), desc("C", "Choix", "DropDownListChampDescriptor", options=["a", "b"]))
    state = state_after_first_sync(schema)
    assert any(c.widget_options == {"choices": ["a", "b"]} for c in state.columns.values())
    assert plan_schema(state, schema).actions == []


def test_row_diff_adds_updates_and_removes_block_rows():
    schema = schema_of(desc("R", "Bloc", "RepetitionChampDescriptor", champDescriptors=[desc("R1", "Poste")]))
    plan = plan_schema(empty_state(), schema)
    bloc = plan.maps["bloc:R"]
    columns = {"id": [1, 2, 3], "Dossier": [7, 7, 8], "Ligne": ["a", "b", "c"], "Position": [1, 2, 1], "Poste": ["x", "y", "z"]}
    index = TableIndex.from_columns(columns, bloc)
    rows = [
        {"dossier": 7, "ligne": "a", "position": 1, "R1": "x"},      # unchanged
        {"dossier": 7, "ligne": "d", "position": 2, "R1": "nouveau"},  # new (b was removed in DS)
    ]
    diff = plan_rows(bloc, index, rows, owners={7})
    assert diff.add == {"Dossier": [7], "Ligne": ["d"], "Position": [2], "Poste": ["nouveau"]}
    assert diff.update_ids == [] and diff.remove_ids == [2]  # row c belongs to dossier 8: untouched
    record_written(index, diff, [4])
    assert plan_rows(bloc, index, rows, owners={7}).actions() == []


def test_row_diff_treats_blank_text_and_none_alike_and_updates_real_changes():
    schema = schema_of(desc("A", "Nom"))
    champs = plan_schema(empty_state(), schema).maps["champs"]
    index = TableIndex.from_columns({"id": [5], "Dossier": [1], "Nom": [""]}, champs)
    assert plan_rows(champs, index, [{"dossier": 1, "A": None}]).actions() == []
    changed = plan_rows(champs, index, [{"dossier": 1, "A": "Zoé"}])
    assert changed.actions() == [["BulkUpdateRecord", "D42_Champs", [5], {"Dossier": [1], "Nom": ["Zoé"]}]]


def test_an_unknown_future_champ_type_becomes_a_text_column_with_a_note():
    from py_core.jobs.copy_result import SyncResult

    schema = schema_of(desc("F", "Champ du futur", "HologrammeChampDescriptor"))
    champs = {c["id"]: c["type"] for c in next(a for a in plan_schema(empty_state(), schema).actions if a[1] == "D42_Champs")[2]}
    assert champs["Champ_du_futur"] == "Text"
    assert schema.unknown_kinds == ["Hologramme"]
    result = SyncResult(42, "t", total=1, added=1, unknown_types=schema.unknown_kinds)
    assert "Hologramme" in result.message


def test_a_type_change_converts_the_column_in_place():
    before = schema_of(desc("A", "Montant"))
    state = state_after_first_sync(before)
    after = schema_of(desc("A", "Montant", "DecimalNumberChampDescriptor"))
    actions = [a for a in plan_schema(state, after).actions if a[1] == "D42_Champs"]
    assert actions == [["ModifyColumn", "D42_Champs", "Montant", {"type": "Numeric"}]]


def test_integers_beyond_32_bits_widen_the_column_to_numeric_once():
    from py_core.plan.diff import plan_int_widening

    schema = schema_of(desc("N", "Population", "IntegerNumberChampDescriptor"))
    champs = plan_schema(empty_state(), schema).maps["champs"]
    types = {"Population": "Int"}
    assert plan_int_widening(champs, [{"dossier": 1, "N": 2**31 - 1}], types) == ([], types)
    actions, types = plan_int_widening(champs, [{"dossier": 1, "N": 3_000_000_000}], types)
    assert actions == [["ModifyColumn", "D42_Champs", "Population", {"type": "Numeric", "widgetOptions": '{"decimals": 0}'}]]
    assert plan_int_widening(champs, [{"dossier": 2, "N": 2**40}], types)[0] == []
    actions, types = plan_int_widening(champs, [{"dossier": 3, "N": 12345678901234567891}], types)
    assert actions == [["ModifyColumn", "D42_Champs", "Population", {"type": "Text"}]], "beyond 2**53: its digits"
    state = state_after_first_sync(schema)
    next(c for c in state.columns.values() if c.col_id == "Population").type = "Numeric"
    assert [a for a in plan_schema(state, schema).actions if a[1] == "D42_Champs"] == [], "never narrowed back"


def test_a_files_champ_is_named_by_the_form_not_by_the_dossier():
    """DS is not asked a label per champ (a quarter of a page): a file's « Champ » is its
    descriptor's label from the structure, and « Bloc › sous-champ » in a block."""
    from py_core.ds.models import Dossier
    from py_core.plan.rows import dossier_rows

    schema = schema_of(
        desc("pj", "Justificatif", "PieceJustificativeChampDescriptor"),
        desc("b", "Travaux", "RepetitionChampDescriptor",
             champDescriptors=[desc("devis", "Devis", "PieceJustificativeChampDescriptor")]))
    file = {"filename": "a.pdf", "url": "https://ds.example/f", "byteSizeBigInt": "3", "contentType": "application/pdf",
            "checksum": "x"}
    dossier = Dossier.model_validate({
        "number": 7, "state": "en_construction", "dateDerniereModification": "2026-01-01T00:00:00Z",
        "champs": [{"__typename": "PieceJustificativeChamp", "champDescriptorId": "pj", "files": [file, file]},
                   {"__typename": "RepetitionChamp", "champDescriptorId": "b", "rows": [
                       {"id": "r1", "champs": [{"__typename": "PieceJustificativeChamp", "champDescriptorId": "devis",
                                                "files": [file]}]}]}]})
    rows = dossier_rows(dossier, schema)["fichiers"]
    assert [(r["champ_cle"], r["numero_fichier"], r["champ"]) for r in rows] == [
        ("pj", 1, "Justificatif"), ("pj", 2, "Justificatif"), ("devis|r1", 1, "Travaux › Devis")]


def test_row_updates_go_as_one_bulk_action_per_table_and_columns():
    """A column's registration after its table was made updates 150 rows: one action for Grist."""
    updates = [("OTP_Colonnes", 3, {"Col_ref": 30, "Col_id": "A"}), ("OTP_Tables", 1, {"Table_ref": 7}),
               ("OTP_Colonnes", 5, {"Col_ref": 50, "Col_id": "B"}), ("OTP_Colonnes", 9, {"Dans_le_formulaire": False}),
               ("OTP_Colonnes", 4, {"Col_ref": 40, "Col_id": "C"})]
    assert bulk_updates(updates) == [
        ["BulkUpdateRecord", "OTP_Colonnes", [3, 5, 4], {"Col_ref": [30, 50, 40], "Col_id": ["A", "B", "C"]}],
        ["BulkUpdateRecord", "OTP_Tables", [1], {"Table_ref": [7]}],
        ["BulkUpdateRecord", "OTP_Colonnes", [9], {"Dans_le_formulaire": [False]}],
    ]
    assert bulk_updates([]) == []
