"""Each DS champ type → Grist cells: a table of realistic champs as DS sends them."""

import json

import pytest

from py_core.plan.champ_types import KINDS, parts_for
from py_core.ds.models import Descriptor


def cells(kind, champ):
    parts, _ = parts_for(kind)
    return {part.suffix: part.read(champ) for part in parts}


BASE = {"id": "Q2hhbXAtMQ==", "champDescriptorId": "Q2hhbXAtMQ==", "label": "x"}

CASES = [
    # kind, champ as DS sends it (aliases of champ_fields.graphql), expected cells by part suffix
    ("Text", {"__typename": "TextChamp", "textValue": "Café <b>crème</b> 🚀", "stringValue": "Café <b>crème</b> 🚀"}, {"": "Café <b>crème</b> 🚀"}),
    ("Text", {"__typename": "TextChamp", "textValue": None, "stringValue": ""}, {"": None}),
    ("Text", {"__typename": "TextChamp", "textValue": "   ", "stringValue": "   "}, {"": "   "}),  # exactly as DS has it
    ("Textarea", {"__typename": "TextChamp", "textValue": "ligne 1\nligne 2\n" + "é" * 100_000, "stringValue": "…"}, {"": "ligne 1\nligne 2\n" + "é" * 100_000}),
    ("Email", {"__typename": "TextChamp", "textValue": "agent@exemple.gouv.fr"}, {"": "agent@exemple.gouv.fr"}),
    ("Phone", {"__typename": "TextChamp", "textValue": "01 23 45 67 89"}, {"": "01 23 45 67 89"}),
    ("Iban", {"__typename": "TextChamp", "textValue": "FR76 3000 6000 0112 3456 7890 189"}, {"": "FR76 3000 6000 0112 3456 7890 189"}),
    ("IntegerNumber", {"__typename": "IntegerNumberChamp", "integerValue": "9007199254740993", "stringValue": "9007199254740993"}, {"": 9007199254740993}),
    ("IntegerNumber", {"__typename": "IntegerNumberChamp", "integerValue": None, "stringValue": ""}, {"": None}),
    ("IntegerNumber", {"__typename": "IntegerNumberChamp", "integerValue": "-42"}, {"": -42}),
    ("DecimalNumber", {"__typename": "DecimalNumberChamp", "decimalValue": 1234.56}, {"": 1234.56}),
    ("DecimalNumber", {"__typename": "DecimalNumberChamp", "decimalValue": None, "stringValue": ""}, {"": None}),
    ("Checkbox", {"__typename": "CheckboxChamp", "checkboxValue": True}, {"": True}),
    ("Checkbox", {"__typename": "CheckboxChamp", "checkboxValue": False}, {"": False}),
    ("YesNo", {"__typename": "YesNoChamp", "yesNoValue": False}, {"": False}),
    ("YesNo", {"__typename": "YesNoChamp", "yesNoValue": None, "stringValue": ""}, {"": None}),
    ("YesNo", {"__typename": "CheckboxChamp", "checkboxValue": True}, {"": True}),  # without the YesNo fragment
    ("Date", {"__typename": "DateChamp", "date": "2026-03-01"}, {"": 1772323200}),
    ("Date", {"__typename": "DateChamp", "date": None}, {"": None}),
    ("Datetime", {"__typename": "DatetimeChamp", "datetime": "2026-03-01T14:30:00+01:00"}, {"": 1772371800.0}),
    ("Datetime", {"__typename": "DateChamp", "date": "2026-03-01"}, {"": 1772323200.0}),
    ("DropDownList", {"__typename": "DropDownListChamp", "dropDownValue": "Île-de-France"}, {"": "Île-de-France"}),
    ("DropDownList", {"__typename": "TextChamp", "textValue": "Autre : précisé"}, {"": "Autre : précisé"}),
    ("MultipleDropDownList", {"__typename": "MultipleDropDownListChamp", "values": ["Vélo", "Bus"]}, {"": ["L", "Vélo", "Bus"]}),
    ("MultipleDropDownList", {"__typename": "MultipleDropDownListChamp", "values": []}, {"": None}),
    ("LinkedDropDownList", {"__typename": "LinkedDropDownListChamp", "primaryValue": "Fruits", "secondaryValue": "Pomme"}, {"": "Fruits", "secondaire": "Pomme"}),
    ("Civilite", {"__typename": "CiviliteChamp", "civiliteValue": "Mme"}, {"": "Mme"}),
    ("Address", {"__typename": "AddressChamp", "stringValue": "20 avenue de Ségur 75007 Paris", "address": {
        "label": "20 avenue de Ségur 75007 Paris", "postalCode": "75007", "cityName": "Paris", "cityCode": "75107",
        "departmentCode": "75", "departmentName": "Paris"}},
     {"": "20 avenue de Ségur 75007 Paris", "code_postal": "75007", "commune": "Paris", "code_insee": "75107", "departement": "Paris", "code_departement": "75"}),
    ("Address", {"__typename": "AddressChamp", "stringValue": "", "address": None},
     {"": None, "code_postal": None, "commune": None, "code_insee": None, "departement": None, "code_departement": None}),
    ("Commune", {"__typename": "CommuneChamp", "commune": {"name": "Saint-Étienne", "code": "42218", "postalCode": "42000"}, "departement": {"name": "Loire", "code": "42"}},
     {"": "Saint-Étienne", "code_insee": "42218", "code_postal": "42000", "departement": "Loire"}),
    ("Departement", {"__typename": "DepartementChamp", "departement": {"name": "Corse-du-Sud", "code": "2A"}}, {"": "Corse-du-Sud", "code": "2A"}),
    ("Region", {"__typename": "RegionChamp", "region": {"name": "Bretagne", "code": "53"}}, {"": "Bretagne", "code": "53"}),
    ("Pays", {"__typename": "PaysChamp", "pays": {"name": "Côte d'Ivoire", "code": "CI"}}, {"": "Côte d'Ivoire", "code": "CI"}),
    ("Pays", {"__typename": "TextChamp", "stringValue": "France", "textValue": "France"}, {"": "France", "code": None}),
    ("Epci", {"__typename": "EpciChamp", "epci": {"name": "Métropole de Lyon", "code": "200046977"}}, {"": "Métropole de Lyon", "code": "200046977"}),
    ("Siret", {"__typename": "SiretChamp", "stringValue": "13002526500013", "etablissement": {"siret": "13002526500013", "entreprise": {"raisonSociale": "DINUM"}}},
     {"": "13002526500013", "raison_sociale": "DINUM"}),
    ("RNA", {"__typename": "RNAChamp", "rna": {"id": "W751234567", "title": "Les Amis du Vélo"}}, {"": "W751234567", "titre": "Les Amis du Vélo"}),
    ("RNF", {"__typename": "RNFChamp", "rnf": {"id": "075-FDD-00003-01", "title": "Fondation X"}}, {"": "075-FDD-00003-01", "titre": "Fondation X"}),
    ("EngagementJuridique", {"__typename": "EngagementJuridiqueChamp", "stringValue": "EJ-1", "engagementJuridique": {"montantEngage": "1000", "montantPaye": "500"}},
     {"": "EJ-1", "montant_engage": "1000", "montant_paye": "500"}),
    ("DossierLink", {"__typename": "DossierLinkChamp", "stringValue": "4242"}, {"": 4242}),
    ("DossierLink", {"__typename": "DossierLinkChamp", "stringValue": ""}, {"": None}),
    ("PieceJustificative", {"__typename": "PieceJustificativeChamp", "files": [
        {"filename": "devis.pdf", "url": "https://x/1"}, {"filename": "photo été.jpg", "url": "https://x/2"}]}, {"": "devis.pdf\nphoto été.jpg"}),
    ("TitreIdentite", {"__typename": "TitreIdentiteChamp", "filled": True}, {"": True}),
    ("HeaderSection", {"__typename": "HeaderSectionChamp", "level": 1}, {}),
    ("Explication", {"__typename": "ExplicationChamp"}, {}),
    ("UnJourPeutEtre", {"__typename": "TextChamp", "stringValue": "valeur future"}, {"": "valeur future"}),
]


@pytest.mark.parametrize("kind,champ,expected", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_champ_cells(kind, champ, expected):
    assert cells(kind, {**BASE, **champ}) == expected


def test_carte_is_geojson_feature_collection():
    champ = {**BASE, "__typename": "CarteChamp", "geoAreas": [
        {"id": "1", "source": "selection_utilisateur", "description": "Parcelle « nord »",
         "geometry": {"type": "Point", "coordinates": [2.35, 48.85]}}]}
    value = json.loads(cells("Carte", champ)[""])
    assert value["type"] == "FeatureCollection"
    assert value["features"][0]["geometry"] == {"type": "Point", "coordinates": [2.35, 48.85]}
    assert value["features"][0]["properties"]["description"] == "Parcelle « nord »"
    assert cells("Carte", {**BASE, "__typename": "CarteChamp", "geoAreas": []}) == {"": None}


def test_unknown_kind_falls_back_to_string_value():
    parts, known = parts_for("Hologramme")
    assert not known and [p.type for p in parts] == ["Text"]
    assert parts_for("Text")[1]


def test_choice_options_come_from_the_descriptor():
    linked = Descriptor.model_validate({"__typename": "LinkedDropDownListChampDescriptor", "id": "d", "label": "L",
                                        "options": ["--Fruits--", "Pomme", "Poire", "--Légumes--", "Poireau"]})
    primary = KINDS["LinkedDropDownList"][0]
    assert primary.choices(linked) == ["Fruits", "Légumes"]
    drop = Descriptor.model_validate({"__typename": "DropDownListChampDescriptor", "id": "d", "label": "L", "options": ["A", "", "B"]})
    assert KINDS["DropDownList"][0].choices(drop) == ["A", "B"]
