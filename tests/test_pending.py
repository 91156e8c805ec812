"""An agent's pending edits through a copy (`py_core.plan.pending.held_row`), cell by cell: the
copy writes DS's value and its base when nothing is pending, keeps the agent's edit when there
is one, and records a conflict when DS changed the same value meanwhile. The `BASE` cell's text
is the same whichever way it was made (a row with nothing pending takes a shorter path)."""

from __future__ import annotations

import json

import pytest

from py_core.plan.pending import Base, base_cell, held_row
from py_core.plan.schema import BASE

COLS = {"labels": "Labels", "note": "Note"}  # column key → col id
WRITTEN = {"labels", "note"}


def stored(**base) -> str:
    return Base(base).cell()


CASES = [
    # what DS gives now, the row the document has (None: a new row), the row written
    ("nothing pending, nothing changed",
     {"labels": ["L", "a"], "note": 3},
     {"Labels": ["L", "a"], "Note": 3, "base_ds": stored(labels=["L", "a"], note=3)},
     {"labels": ["L", "a"], "note": 3, BASE: {"base": {"labels": ["L", "a"], "note": 3}}}),
    ("a new row: DS's values are its base",
     {"labels": None, "note": 1.5}, None,
     {"labels": None, "note": 1.5, BASE: {"base": {"labels": None, "note": 1.5}}}),
    ("DS changed a value nobody edited: the new one, and its base",
     {"labels": ["L", "b"], "note": 3},
     {"Labels": ["L", "a"], "Note": 3, "base_ds": stored(labels=["L", "a"], note=3)},
     {"labels": ["L", "b"], "note": 3, BASE: {"base": {"labels": ["L", "b"], "note": 3}}}),
    ("the agent's edit stays, its base with it",
     {"labels": ["L", "a"], "note": 3},
     {"Labels": ["L", "a"], "Note": 4, "base_ds": stored(labels=["L", "a"], note=3)},
     {"labels": ["L", "a"], "note": 4, BASE: {"base": {"labels": ["L", "a"], "note": 3}}}),
    ("the base's text is DS's value, the cell the agent's: still pending",
     {"labels": ["L", "a"], "note": 3},
     {"Labels": ["L"], "Note": 3, "base_ds": stored(labels=["L", "a"], note=3)},
     {"labels": ["L"], "note": 3, BASE: {"base": {"labels": ["L", "a"], "note": 3}}}),
    ("DS now has the agent's value: nothing to send any more",
     {"labels": ["L", "b"], "note": 3},
     {"Labels": ["L", "b"], "Note": 3, "base_ds": stored(labels=["L", "a"], note=3)},
     {"labels": ["L", "b"], "note": 3, BASE: {"base": {"labels": ["L", "b"], "note": 3}}}),
    ("both changed it: the agent's edit stays, DS's value is a conflict",
     {"labels": ["L", "c"], "note": 3},
     {"Labels": ["L", "b"], "Note": 3, "base_ds": stored(labels=["L", "a"], note=3)},
     {"labels": ["L", "b"], "note": 3,
      BASE: {"base": {"labels": ["L", "a"], "note": 3}, "ds": {"labels": ["L", "c"]}}}),
    ("True is not 1 in the base (same hash, other text)",
     {"labels": None, "note": True},
     {"Labels": None, "Note": True, "base_ds": stored(labels=None, note=1)},
     {"labels": None, "note": True, BASE: {"base": {"labels": None, "note": True}}}),
]


@pytest.mark.parametrize("ds, held, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_row_keeps_its_agent_s_pending_edits_and_its_base(ds, held, expected):
    for _ in range(2):  # the second time, the base's text is one seen before
        row = held_row({"number": 7, **ds}, held, COLS, "base_ds", WRITTEN)
        assert {k: v for k, v in row.items() if k not in ("number", BASE)} == {k: v for k, v in expected.items() if k != BASE}
        assert json.loads(row[BASE]) == expected[BASE]
        assert row[BASE] == Base(**{k: v for k, v in expected[BASE].items()}).cell()


@pytest.mark.parametrize("base", [{"k": 1}, {"k": True}, {"k": 1.0}, {"k": ["a", "b"]}, {"k": ("a", "b")},
                                  {"k": None}, {"k": "1"}, {"k": [["nested"]]}, {"a": 1, "b": "x"}, {"b": "x", "a": 1}])
def test_a_base_s_text_is_the_same_however_often_it_was_made(base):
    for other in ({"k": 1}, {"k": True}, {"k": 1.0}, {"k": ["a", "b"]}):
        base_cell(other)
    assert base_cell(base) == base_cell(dict(base)) == Base(base).cell()
