"""Grist ids from DS labels: valid, unique, stable, readable."""

import keyword
import re

import pytest

from py_core.plan.naming import MAX_ID_LENGTH, column_id, table_id

VALID = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


@pytest.mark.parametrize("label,expected", [
    ("Nom du projet", "Nom_du_projet"),
    ("Coût total (€) du projet", "Cout_total_du_projet"),
    ("Œuvre d'art", "Oeuvre_d_art"),
    ("2e adresse", "c2e_adresse"),
    ("N° SIRET", "N_SIRET"),
    ("🚀🚀", "Champ"),
    ("", "Champ"),
    ("id", "id_"),
    ("class", "class_"),
    ("None", "None_"),
    ("manualSort", "manualSort_"),
])
def test_column_id(label, expected):
    assert column_id(label, set()) == expected


def test_duplicate_labels_get_distinct_ids_case_insensitively():
    taken = set()
    ids = [column_id(label, taken) for label in ["Nom", "Nom", "nom", "NOM"]]
    assert ids == ["Nom", "Nom_2", "nom_3", "NOM_4"]
    assert len({i.lower() for i in ids}) == 4


def test_long_labels_are_cut_at_a_word_and_stay_unique():
    label = ("Montant total des dépenses éligibles prévues pour l'opération, hors taxes, "
             "tel qu'il figure dans le plan de financement prévisionnel joint au dossier")
    taken = set()
    first, second = column_id(label, taken), column_id(label, taken)
    assert len(first) <= MAX_ID_LENGTH and VALID.match(first) and not first.endswith("_")
    assert second == first + "_2"


@pytest.mark.parametrize("label", ["é", "1", "_x", "a b", "if", "Ça va ?", "x" * 500, "—"])
def test_any_label_gives_a_valid_identifier(label):
    ident = column_id(label, set())
    assert VALID.match(ident) and not keyword.iskeyword(ident)


def test_table_ids_start_with_a_capital():
    taken = {"d12345_dossiers"}
    assert table_id("D12345_Dossiers", taken) == "D12345_Dossiers_2"
    assert table_id("bloc «Dépenses»", set()) == "Bloc_Depenses"
    assert table_id("123", set()) == "T123"
