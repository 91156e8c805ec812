"""What an annotation's Grist cell becomes for DS (`py_core.plan.send.annotation_value`): one
key of `AnnotationValueInput`, named after the annotation's type, or a French reason shown in
the preview. The inputs are checked against the real DS schema (when it is beside the repo)."""

from __future__ import annotations

from pathlib import Path

import pytest
from graphql import build_schema

from py_core.plan.send import annotation_value

REAL_SCHEMA = Path(__file__).resolve().parents[2] / "shared/ds/schema.graphql"
MIDNIGHT_15_MARCH = 1773532800  # 2026-03-15 00:00 UTC, a Grist Date cell

CASES = [
    # kind, cell, options, expected input (or None), words of the problem
    ("Text", "Vu en comité", None, {"text": "Vu en comité"}, ""),
    ("Text", None, None, {"text": ""}, ""),
    ("Textarea", "<b>tel quel</b>\n=1+1", None, {"textarea": "<b>tel quel</b>\n=1+1"}, ""),
    ("Email", "a@b.fr", None, {"email": "a@b.fr"}, ""),
    ("Checkbox", True, None, {"checkbox": True}, ""),
    ("Checkbox", None, None, {"checkbox": False}, ""),
    ("YesNo", "oui", None, {"yesNo": True}, ""),
    ("YesNo", "peut-être", None, None, "ni oui ni non"),
    ("IntegerNumber", 15, None, {"integerNumber": 15}, ""),
    ("IntegerNumber", 15.0, None, {"integerNumber": 15}, ""),
    ("IntegerNumber", "1 200", None, {"integerNumber": 1200}, ""),
    ("IntegerNumber", 12.5, None, None, "pas un nombre entier"),
    ("IntegerNumber", 2**40, None, None, "trop grand"),
    ("IntegerNumber", None, None, None, "ne peut pas être vidée"),
    ("DecimalNumber", "1234,5", None, {"decimalNumber": 1234.5}, ""),
    ("DecimalNumber", "beaucoup", None, None, "pas un nombre"),
    ("Date", MIDNIGHT_15_MARCH, None, {"date": "2026-03-15"}, ""),
    ("Date", "2026-03-15", None, {"date": "2026-03-15"}, ""),
    ("Datetime", MIDNIGHT_15_MARCH + 9 * 3600, None, {"datetime": "2026-03-15T09:00:00+00:00"}, ""),
    ("Date", "demain", None, None, "pas une date"),
    ("DropDownList", "Haute", ["Haute", "Basse"], {"dropDownList": "Haute"}, ""),
    ("DropDownList", "Très haute", ["Haute", "Basse"], None, "pas une des options"),
    ("MultipleDropDownList", ["L", "A", "B"], ["A", "B", "C"], {"multipleDropDownList": ["A", "B"]}, ""),
    ("MultipleDropDownList", ["L", "Z"], ["A"], None, "pas une des options"),
    ("Civilite", "Mme", None, {"civilite": "Mme"}, ""),
    ("Text", ["E", "ZeroDivisionError"], None, None, "formule de cette cellule est en erreur"),
    ("Address", "1 rue de la Paix", None, None, "ne permet pas d'écrire ce type"),
]


@pytest.mark.parametrize("kind, cell, options, expected, problem", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_a_cell_becomes_one_typed_value_or_a_french_reason(kind, cell, options, expected, problem):
    value = annotation_value(kind, cell, options=options)
    assert value.input == expected
    assert (problem in value.problem) if problem else not value.problem


@pytest.mark.skipif(not REAL_SCHEMA.is_file(), reason="real DS schema absent (../shared)")
def test_every_key_is_one_of_ds_annotation_value_input():
    fields = build_schema(REAL_SCHEMA.read_text()).type_map["AnnotationValueInput"].fields
    keys = {key for kind, cell, options, expected, _ in CASES if expected for key in expected}
    assert keys <= set(fields), keys - set(fields)


@pytest.mark.parametrize("base, cell, current, outcome", [
    ("12", "12", "12", "unchanged"),   # nobody changed it
    ("12", "15", "12", "send"),        # the agent changed it, DS did not
    ("12", "12", "14", "unchanged"),   # only DS changed it: the next copy brings it
    ("12", "15", "14", "conflict"),    # both changed it: the agent chooses
    ("12", "15", "15", "already"),     # DS already has the agent's value: nothing to send
    (None, "", None, "unchanged"),     # blank is blank
])
def test_three_way_never_overwrites_a_change_made_in_ds(base, cell, current, outcome):
    from py_core.grist.values import same_cell
    from py_core.plan.send import three_way

    assert three_way(base, cell, current, same_cell).outcome == outcome
