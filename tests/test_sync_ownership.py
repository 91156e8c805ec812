"""Who owns what, when an agent deletes a table of OTP's (see README « Qui possède quoi »):
OTP makes it again, fills it at the same sync, and the rows that hung on it find it again
with the agents' cells. Grist's engine and the fake DS (tests/lab.py)."""

from __future__ import annotations

import pytest

from tests.grist_engine import engine_missing
from tests.lab import Lab

pytestmark = pytest.mark.skipif(engine_missing() is not None, reason=str(engine_missing()))


def champ_content(row: dict) -> tuple:
    return tuple(sorted((k, str(v)) for k, v in row.items() if k not in ("id", "manualSort", "Dossier", "Avis_agent")))


def test_the_dossiers_table_deleted_by_an_agent_comes_back_and_its_children_find_their_dossier():
    with Lab(dossiers=20) as lab:
        lab.sync()
        champs = lab.table("champs")
        lab.sink.apply_now([["AddColumn", champs, "Avis_agent", {"type": "Text", "isFormula": False}]])
        numbers = {r["id"]: r["Numero"] for r in lab.rows("dossiers")}
        notes = {}
        for row in lab.rows("champs"):
            text = f"avis sur {numbers[row['Dossier']]}"
            lab.sink.apply_now([["UpdateRecord", champs, row["id"], {"Avis_agent": text}]])
            notes[champ_content(row)] = text
        lab.sink.apply_now([["RemoveTable", lab.table("dossiers")]])

        result = lab.sync()

        assert not result.incremental, "a full sync fills the table made again"
        assert lab.dossier_numbers() == lab.ds_numbers()
        numbers = {r["id"]: r["Numero"] for r in lab.rows("dossiers")}
        rows = lab.rows("champs")
        assert len(rows) == 20 and all(r["Dossier"] in numbers for r in rows), "no orphan, no duplicate"
        for row in rows:
            assert row["Avis_agent"] == f"avis sur {numbers[row['Dossier']]}", "the agent's cell on its own dossier"
        lab.assert_copy_exact()
        assert "recréées" in lab.history()[-1]["Notes"]
        assert lab.sync().updated == 0, "and settled"
