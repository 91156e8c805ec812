"""Deterministic sample procedures with realistic French data.

``sample_procedure()`` builds a procedure whose active revision has at least
one descriptor of every ChampDescriptor type of the DS schema, conditional
champs (a dossier carries only the champs its conditions show), duplicate
labels, a very long label, a 100+ option drop-down, linked drop-downs in DS's
flat ``--Primary--`` format, repetition blocks in champs and annotations, and
dossiers in every state with physical and moral-person demandeurs.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from .store import (
    FakeDSStore,
    Procedure,
    build_champ,
    encode_id,
    fake_ulid,
    iso,
    make_descriptor,
    make_revision,
    parse_iso,
    stable_hash,
    stable_id_of,
)

DOSSIER_STATES = ["en_construction", "en_instruction", "accepte", "refuse", "sans_suite"]

DEPARTEMENTS = [
    ("01", "Ain"), ("02", "Aisne"), ("03", "Allier"), ("04", "Alpes-de-Haute-Provence"),
    ("05", "Hautes-Alpes"), ("06", "Alpes-Maritimes"), ("07", "Ardèche"), ("08", "Ardennes"),
    ("09", "Ariège"), ("10", "Aube"), ("11", "Aude"), ("12", "Aveyron"), ("13", "Bouches-du-Rhône"),
    ("14", "Calvados"), ("15", "Cantal"), ("16", "Charente"), ("17", "Charente-Maritime"),
    ("18", "Cher"), ("19", "Corrèze"), ("2A", "Corse-du-Sud"), ("2B", "Haute-Corse"),
    ("21", "Côte-d'Or"), ("22", "Côtes-d'Armor"), ("23", "Creuse"), ("24", "Dordogne"),
    ("25", "Doubs"), ("26", "Drôme"), ("27", "Eure"), ("28", "Eure-et-Loir"), ("29", "Finistère"),
    ("30", "Gard"), ("31", "Haute-Garonne"), ("32", "Gers"), ("33", "Gironde"), ("34", "Hérault"),
    ("35", "Ille-et-Vilaine"), ("36", "Indre"), ("37", "Indre-et-Loire"), ("38", "Isère"),
    ("39", "Jura"), ("40", "Landes"), ("41", "Loir-et-Cher"), ("42", "Loire"),
    ("43", "Haute-Loire"), ("44", "Loire-Atlantique"), ("45", "Loiret"), ("46", "Lot"),
    ("47", "Lot-et-Garonne"), ("48", "Lozère"), ("49", "Maine-et-Loire"), ("50", "Manche"),
    ("51", "Marne"), ("52", "Haute-Marne"), ("53", "Mayenne"), ("54", "Meurthe-et-Moselle"),
    ("55", "Meuse"), ("56", "Morbihan"), ("57", "Moselle"), ("58", "Nièvre"), ("59", "Nord"),
    ("60", "Oise"), ("61", "Orne"), ("62", "Pas-de-Calais"), ("63", "Puy-de-Dôme"),
    ("64", "Pyrénées-Atlantiques"), ("65", "Hautes-Pyrénées"), ("66", "Pyrénées-Orientales"),
    ("67", "Bas-Rhin"), ("68", "Haut-Rhin"), ("69", "Rhône"), ("70", "Haute-Saône"),
    ("71", "Saône-et-Loire"), ("72", "Sarthe"), ("73", "Savoie"), ("74", "Haute-Savoie"),
    ("75", "Paris"), ("76", "Seine-Maritime"), ("77", "Seine-et-Marne"), ("78", "Yvelines"),
    ("79", "Deux-Sèvres"), ("80", "Somme"), ("81", "Tarn"), ("82", "Tarn-et-Garonne"),
    ("83", "Var"), ("84", "Vaucluse"), ("85", "Vendée"), ("86", "Vienne"), ("87", "Haute-Vienne"),
    ("88", "Vosges"), ("89", "Yonne"), ("90", "Territoire de Belfort"), ("91", "Essonne"),
    ("92", "Hauts-de-Seine"), ("93", "Seine-Saint-Denis"), ("94", "Val-de-Marne"),
    ("95", "Val-d'Oise"), ("971", "Guadeloupe"), ("972", "Martinique"), ("973", "Guyane"),
    ("974", "La Réunion"), ("976", "Mayotte"),
]
REGIONS = [("84", "Auvergne-Rhône-Alpes"), ("27", "Bourgogne-Franche-Comté"), ("53", "Bretagne"),
           ("24", "Centre-Val de Loire"), ("94", "Corse"), ("44", "Grand Est"),
           ("32", "Hauts-de-France"), ("11", "Île-de-France"), ("28", "Normandie"),
           ("75", "Nouvelle-Aquitaine"), ("76", "Occitanie"), ("52", "Pays de la Loire"),
           ("93", "Provence-Alpes-Côte d'Azur")]
PAYS = [("FR", "France"), ("BE", "Belgique"), ("CH", "Suisse"), ("DE", "Allemagne"),
        ("ES", "Espagne"), ("IT", "Italie"), ("MA", "Maroc"), ("SN", "Sénégal")]
COMMUNES = [  # (name, INSEE code, postal code, département code)
    ("Paris", "75056", "75001", "75"), ("Lyon", "69123", "69001", "69"),
    ("Marseille", "13055", "13001", "13"), ("Caen", "14118", "14000", "14"),
    ("Bayeux", "14047", "14400", "14"), ("Saint-Étienne", "42218", "42000", "42"),
    ("Besançon", "25056", "25000", "25"), ("Aix-en-Provence", "13001", "13090", "13"),
    ("L'Haÿ-les-Roses", "94038", "94240", "94"), ("Nîmes", "30189", "30000", "30"),
]
EPCIS = [("200054781", "Métropole du Grand Paris"), ("200046977", "Métropole de Lyon"),
         ("200065597", "Caen la Mer"), ("241400415", "Bayeux Intercom")]
PRENOMS = ["Élodie", "François", "Zoé", "Jean-Baptiste", "Maëlle", "Noël", "Chloé", "Anaïs",
           "Hélène", "Loïc", "Amélie", "Jérôme", "Inès", "Benoît", "Léa", "Karim", "Aïcha", "Thomas"]
NOMS = ["Dupont", "Lefèvre", "Martin", "Bézier", "O'Connor", "Nguyễn", "Durand-Môrel",
        "Moreau", "Girard", "Benali", "Leroy", "Faure", "Da Silva", "Müller", "Lemaître"]
STRUCTURES = ["Association Les Amis du Vieux Caen", "Mairie de Bayeux", "SARL Boulangerie Pâtisserie",
              "Comité des fêtes de Saint-Étienne", "Collège Jean-Moulin", "SCOP L'Écluse & Cie"]
THEMES = ["Culture", "Sport", "Éducation", "Environnement", "Santé", "Numérique", "Solidarité"]
CATEGORIES = {
    "Culture": ["Musique", "Théâtre", "Arts plastiques", "Patrimoine"],
    "Sport": ["Football", "Natation", "Cyclisme"],
    "Éducation": ["Primaire", "Secondaire", "Supérieur"],
    "Environnement": ["Biodiversité", "Énergie", "Déchets"],
}
LONG_LABEL = (
    "Veuillez indiquer, de manière précise et détaillée, l'ensemble des cofinancements publics "
    "et privés sollicités ou obtenus pour ce projet (montants, financeurs, dates de décision)"
)
LONG_TEXT = (
    "Notre projet « Jardins partagés » vise à créer des espaces verts en cœur de ville. "
    * 40
).strip()
DESCRIPTIONS = [
    "Rénovation énergétique de la salle des fêtes 🎉",
    "Ligne 1\nLigne 2 avec accents : é à ç ù\nLigne 3",
    "<b>Projet</b> d'école &amp; <script>alert('x')</script> du quartier",
    "Achat de matériel 🚲🚲 pour l'atelier vélo solidaire",
    "",
    "Tab\tséparé ; point-virgule, \"guillemets\" et 'apostrophes' — tiret cadratin",
    LONG_TEXT,
]
LABELS = [("Urgent", "pink_macaron"), ("À relancer", "yellow_tournesol"),
          ("Dossier complet", "green_bourgeon"), ("Comité de mars", "blue_ecume"),
          ("Pièce manquante 📎", "brown_cafe_creme")]


# ---------------------------------------------------------------------------
# Descriptors.


class _Ids:
    """Hands out stable ids (DS's type de champ ``stable_id``)."""

    def __init__(self, start: int):
        self.next = start

    def __call__(self) -> int:
        self.next += 1
        return self.next


def _condition(stable_id: int, value: Any) -> dict:
    return {"term": "Logic::Eq",
            "left": {"term": "Logic::ChampValue", "stable_id": stable_id},
            "right": {"term": "Logic::Constant", "value": value}}


def _linked_options() -> list[str]:
    options = []
    for primary, secondaries in CATEGORIES.items():
        options.append(f"--{primary}--")
        options.extend(secondaries)
    return options


def build_descriptors(base: int = 1000) -> tuple[list[dict], list[dict]]:
    """Champ and annotation descriptors covering every descriptor type.

    A descriptor's private ``_show_if`` = (stable id, value) makes it
    conditional: dossiers carry it only when that champ has that value (keys
    starting with ``_`` are never served: the schema has no such field).
    """
    sid = _Ids(base)
    d = make_descriptor
    yes_no = sid()
    dept_choice = sid()
    champs = [
        d("HeaderSectionChampDescriptor", sid(), "Identité du porteur de projet", level=1),
        d("ExplicationChampDescriptor", sid(), "Informations",
          description="Merci de remplir <strong>tous</strong> les champs obligatoires.",
          collapsibleExplanationEnabled=True, collapsibleExplanationText="Détails 📄"),
        d("CiviliteChampDescriptor", sid(), "Civilité"),
        d("TextChampDescriptor", sid(), "Nom", required=True),
        d("TextChampDescriptor", sid(), "Prénom", required=True),
        d("TextChampDescriptor", sid(), "Nom", description="Nom du représentant légal"),
        d("EmailChampDescriptor", sid(), "Adresse électronique"),
        d("PhoneChampDescriptor", sid(), "Téléphone"),
        d("HeaderSectionChampDescriptor", sid(), "Le projet", level=1),
        d("TextareaChampDescriptor", sid(), "Description du projet", required=True),
        d("TextChampDescriptor", sid(), LONG_LABEL),
        d("IntegerNumberChampDescriptor", sid(), "Nombre de bénéficiaires"),
        d("NumberChampDescriptor", sid(), "Surface (m²)"),
        d("DecimalNumberChampDescriptor", sid(), "Montant demandé (€)"),
        d("CheckboxChampDescriptor", sid(), "J'atteste sur l'honneur l'exactitude des informations"),
        d("YesNoChampDescriptor", yes_no, "Le projet a-t-il déjà commencé ?"),
        d("DateChampDescriptor", sid(), "Date de démarrage effectif", birthdate=False,
          condition=_condition(yes_no, True), conditionExpression="Le projet a-t-il déjà commencé ? est Oui",
          _show_if=(yes_no, True)),
        d("DateChampDescriptor", sid(), "Date de naissance du porteur", birthdate=True),
        d("DatetimeChampDescriptor", sid(), "Date et heure du rendez-vous"),
        d("DropDownListChampDescriptor", dept_choice, "Département du projet",
          options=[f"{code} – {name}" for code, name in DEPARTEMENTS], otherOption=False),
        d("DropDownListChampDescriptor", sid(), "Commune du Calvados",
          options=["Caen", "Bayeux", "Lisieux", "Honfleur", "Vire Normandie"], otherOption=True,
          condition=_condition(dept_choice, "14 – Calvados"),
          conditionExpression="Département du projet est 14 – Calvados",
          _show_if=(dept_choice, "14 – Calvados")),
        d("DropDownListChampDescriptor", sid(), "Arrondissement de Paris",
          options=[f"Paris {i}e" for i in range(2, 21)] + ["Paris 1er"],
          _show_if=(dept_choice, "75 – Paris"), condition=_condition(dept_choice, "75 – Paris"),
          conditionExpression="Département du projet est 75 – Paris"),
        d("MultipleDropDownListChampDescriptor", sid(), "Thématiques", options=THEMES),
        d("LinkedDropDownListChampDescriptor", sid(), "Catégorie et sous-catégorie",
          options=_linked_options()),
        d("AddressChampDescriptor", sid(), "Adresse du projet"),
        d("CommuneChampDescriptor", sid(), "Commune de résidence"),
        d("DepartementChampDescriptor", sid(), "Département de résidence",
          options=[{"code": c, "name": n} for c, n in DEPARTEMENTS]),
        d("RegionChampDescriptor", sid(), "Région", options=[{"code": c, "name": n} for c, n in REGIONS]),
        d("PaysChampDescriptor", sid(), "Pays de naissance", options=[{"code": c, "name": n} for c, n in PAYS]),
        d("EpciChampDescriptor", sid(), "EPCI"),
        d("SiretChampDescriptor", sid(), "SIRET de la structure"),
        d("RNAChampDescriptor", sid(), "Numéro RNA de l'association"),
        d("RNFChampDescriptor", sid(), "Numéro RNF de la fondation"),
        d("CarteChampDescriptor", sid(), "Localisation du projet"),
        d("PieceJustificativeChampDescriptor", sid(), "Devis", fileTemplate=None),
        d("TitreIdentiteChampDescriptor", sid(), "Pièce d'identité"),
        d("DossierLinkChampDescriptor", sid(), "Dossier lié"),
        d("IbanChampDescriptor", sid(), "IBAN"),
        d("FormattedChampDescriptor", sid(), "Numéro fiscal"),
        d("AnnuaireEducationChampDescriptor", sid(), "Établissement scolaire (UAI)"),
        d("AAHChampDescriptor", sid(), "Allocation adulte handicapé"),
        d("AEEHChampDescriptor", sid(), "Allocation d'éducation de l'enfant handicapé"),
        d("ARSChampDescriptor", sid(), "Allocation de rentrée scolaire"),
        d("COJOChampDescriptor", sid(), "Accréditation COJO"),
        d("EtudiantBoursierChampDescriptor", sid(), "Statut étudiant boursier"),
        d("PreRempliChampDescriptor", sid(), "Numéro de dossier CAF (pré-rempli)"),
        d("QuotientFamilialChampDescriptor", sid(), "Quotient familial"),
        d("ReferentielChampDescriptor", sid(), "Code du référentiel"),
        d("EngagementJuridiqueChampDescriptor", sid(), "Engagement juridique"),
    ]
    team = d("RepetitionChampDescriptor", sid(), "Membres de l'équipe")
    team["champDescriptors"] = [
        d("TextChampDescriptor", sid(), "Nom"),
        d("TextChampDescriptor", sid(), "Prénom"),
        d("DateChampDescriptor", sid(), "Date d'arrivée", birthdate=False),
        d("DropDownListChampDescriptor", sid(), "Rôle", options=["Bénévole", "Salarié", "Stagiaire"],
          otherOption=False),
    ]
    champs.append(team)

    favorable = sid()
    annotations = [
        d("HeaderSectionChampDescriptor", sid(), "Instruction", level=1),
        d("CheckboxChampDescriptor", sid(), "Dossier complet"),
        d("YesNoChampDescriptor", favorable, "Avis favorable"),
        d("TextareaChampDescriptor", sid(), "Commentaire de l'instructeur"),
        d("DecimalNumberChampDescriptor", sid(), "Montant accordé (€)",
          condition=_condition(favorable, True), conditionExpression="Avis favorable est Oui",
          _show_if=(favorable, True)),
        d("IntegerNumberChampDescriptor", sid(), "Note"),
        d("DateChampDescriptor", sid(), "Date du comité", birthdate=False),
        d("DatetimeChampDescriptor", sid(), "Date de la visite sur place"),
        d("DropDownListChampDescriptor", sid(), "Priorité", options=["Haute", "Moyenne", "Basse"],
          otherOption=False),
        d("TextChampDescriptor", sid(), "Nom", description="Nom de l'instructeur référent"),
    ]
    payments = d("RepetitionChampDescriptor", sid(), "Versements")
    payments["champDescriptors"] = [
        d("DateChampDescriptor", sid(), "Date du versement", birthdate=False),
        d("DecimalNumberChampDescriptor", sid(), "Montant (€)"),
        d("TextChampDescriptor", sid(), "Référence"),
    ]
    annotations.append(payments)
    return champs, annotations


# ---------------------------------------------------------------------------
# Values.


class _Values:
    """Random realistic values for one dossier."""

    def __init__(self, rng: random.Random, number: int, base_url_path: str = "/files"):
        self.rng = rng
        self.number = number
        self.files = base_url_path

    def pick(self, seq):
        return self.rng.choice(seq)

    def maybe(self, value, blank_rate: float = 0.12):
        """Leave some champs blank, as users do."""
        return None if self.rng.random() < blank_rate else value

    def file(self, filename: str, content_type: str, created: str) -> dict:
        file_id = f"{self.number}-{self.rng.randrange(10**6):06d}"
        size = self.rng.randrange(2_000, 3_000_000)
        return {
            "__typename": "File",
            "filename": filename,
            "contentType": content_type,
            "byteSize": size,
            "byteSizeBigInt": str(size),
            "checksum": f"{stable_hash(file_id) % 10**22:022d}==",
            "createdAt": created,
            "url": f"{self.files}/{file_id}/{filename}",
            "virusScanResult": "safe",
        }

    def address(self) -> dict:
        name, insee, postal, dept = self.pick(COMMUNES)
        number = self.rng.randrange(1, 120)
        street = self.pick(["rue de la Paix", "avenue Victor-Hugo", "place de l'Église",
                            "chemin des Écoliers", "boulevard Saint-Michel"])
        dept_name = dict(DEPARTEMENTS)[dept]
        label = f"{number} {street} {postal} {name}"
        return {
            "address": {
                "label": label, "type": "housenumber", "streetAddress": f"{number} {street}",
                "streetNumber": str(number), "streetName": street, "postalCode": postal,
                "cityName": name, "cityCode": insee, "departmentName": dept_name,
                "departmentCode": dept, "regionName": "Normandie" if dept == "14" else None,
                "regionCode": "28" if dept == "14" else None, "countryCode": "FR",
                "countryName": "France",
                "geometry": {"type": "Point", "coordinates": [round(self.rng.uniform(-1, 6), 5),
                                                              round(self.rng.uniform(43, 50), 5)]},
            },
            "commune": {"name": name, "code": insee, "postalCode": postal},
            "departement": {"code": dept, "name": dept_name},
            "label": label,
        }

    def entreprise(self) -> dict:
        siren = f"{self.rng.randrange(10**8, 10**9)}"
        siret = siren + f"{self.rng.randrange(10**4, 10**5)}"
        raison = self.pick(STRUCTURES)
        address = self.address()["address"]
        return {
            "__typename": "PersonneMorale",
            "id": encode_id("Etablissement", self.rng.randrange(10**6)),
            "siret": siret, "siegeSocial": True, "naf": "9499Z",
            "libelleNaf": "Autres organisations fonctionnant par adhésion volontaire",
            "naf2025": None, "libelleNaf2025": None,
            "adresse": address["label"], "address": address,
            "numeroVoie": address["streetNumber"], "typeVoie": None, "nomVoie": address["streetName"],
            "complementAdresse": None, "codePostal": address["postalCode"],
            "localite": address["cityName"], "codeInseeLocalite": address["cityCode"],
            "entreprise": {
                "siren": siren, "siretSiegeSocial": siret, "raisonSociale": raison,
                "nomCommercial": raison, "formeJuridique": "Association déclarée",
                "formeJuridiqueCode": "9220", "capitalSocial": None, "codeEffectifEntreprise": "03",
                "dateCreation": "2004-05-12", "etatAdministratif": "Actif", "enseigne": None,
                "numeroTvaIntracommunautaire": None, "inlineAdresse": address["label"],
                "nom": None, "prenom": None, "effectifMensuel": None, "effectifAnnuel": None,
                "attestationFiscaleAttachment": None, "attestationSocialeAttachment": None,
            },
            "association": {"rna": f"W{self.rng.randrange(10**8, 10**9)}", "titre": raison,
                            "objet": "Animation culturelle & sportive du quartier",
                            "dateCreation": "2004-05-12", "dateDeclaration": "2019-03-01",
                            "datePublication": "2004-06-05"},
        }

    def geo_areas(self) -> list[dict]:
        x, y = round(self.rng.uniform(-0.5, 0.5), 5), round(self.rng.uniform(49, 49.3), 5)
        polygon = [[[x, y], [x + 0.001, y], [x + 0.001, y + 0.001], [x, y]]]
        return [{
            "__typename": "SelectionUtilisateur", "id": encode_id("GeoArea", self.rng.randrange(10**6)),
            "source": "selection_utilisateur", "description": "Zone du projet",
            "geometry": {"type": "Polygon", "coordinates": polygon},
        }, {
            "__typename": "ParcelleCadastrale", "id": encode_id("GeoArea", self.rng.randrange(10**6)),
            "source": "cadastre", "description": None,
            "geometry": {"type": "Polygon", "coordinates": polygon},
            "commune": "14118", "prefixe": "000", "section": "AB", "numero": str(self.rng.randrange(1, 400)),
            "surface": "1234", "codeArr": "000", "codeCom": "118", "codeDep": "14", "nomCom": "Caen",
            "feuille": 1, "surfaceIntersection": 1234.0, "surfaceParcelle": 1234.0,
        }]

    def value_for(self, descriptor: dict, created: str, other_numbers: list[int]) -> Any:
        """A plain value for :func:`build_champ` (None = left blank)."""
        kind = descriptor["type"]
        label = descriptor["label"]
        rng = self.rng
        if kind in ("header_section", "explication"):
            return None
        if kind == "civilite":
            return self.maybe(self.pick(["M", "Mme"]))
        if kind == "text":
            if label == "Prénom":
                return self.pick(PRENOMS)
            if label == "Nom":
                return self.maybe(self.pick(NOMS), 0.05)
            if label == "Référence":
                return f"VIR-{rng.randrange(10**5):05d}"
            return self.maybe(self.pick(["Département (50 %), Région (30 %)", "Aucun cofinancement",
                                          "CAF : 1 200 €\nMairie : 800 €", ""]))
        if kind == "textarea":
            return self.maybe(self.pick(DESCRIPTIONS), 0.05)
        if kind == "email":
            return self.maybe(f"{self.pick(PRENOMS).lower()}.{rng.randrange(100)}@exemple.fr"
                              .replace("é", "e").replace("ë", "e").replace("ï", "i").replace("ç", "c"))
        if kind == "phone":
            return self.maybe(f"06 {rng.randrange(10, 99)} {rng.randrange(10, 99)} {rng.randrange(10, 99)} {rng.randrange(10, 99)}")
        if kind in ("integer_number", "number"):
            return self.maybe(self.pick([0, 1, 12, 250, 3_000_000_000, -4]))
        if kind == "decimal_number":
            return self.maybe(round(rng.uniform(0, 150_000), 2))
        if kind == "checkbox":
            return rng.random() < 0.7
        if kind == "yes_no":
            return self.maybe(rng.random() < 0.5, 0.1)
        if kind == "date":
            day = parse_iso(created) - timedelta(days=rng.randrange(0, 4000 if descriptor.get("birthdate") else 90))
            return self.maybe(day.date().isoformat())
        if kind == "datetime":
            moment = parse_iso(created) + timedelta(days=rng.randrange(1, 60), hours=rng.randrange(0, 10))
            return self.maybe(iso(moment.replace(minute=rng.choice([0, 15, 30, 45]), second=0)))
        if kind == "drop_down_list":
            options = descriptor["options"]
            if descriptor.get("otherOption") and rng.random() < 0.15:
                return "Autre commune : Ouistreham"
            return self.maybe(self.pick(options), 0.05)
        if kind == "multiple_drop_down_list":
            return rng.sample(descriptor["options"], rng.randrange(0, 4))
        if kind == "linked_drop_down_list":
            primary = self.pick(list(CATEGORIES))
            return self.maybe((primary, self.maybe(self.pick(CATEGORIES[primary]), 0.2)))
        if kind == "address":
            return self.maybe(self.address())
        if kind == "communes":
            address = self.address()
            return self.maybe({"commune": address["commune"], "departement": address["departement"]})
        if kind == "departements":
            code, name = self.pick(DEPARTEMENTS)
            return self.maybe({"code": code, "name": name})
        if kind == "regions":
            code, name = self.pick(REGIONS)
            return self.maybe({"code": code, "name": name})
        if kind == "pays":
            code, name = self.pick(PAYS)
            return self.maybe({"code": code, "name": name})
        if kind == "epci":
            code, name = self.pick(EPCIS)
            return self.maybe({"epci": {"code": code, "name": name}, "departement": {"code": "14", "name": "Calvados"}})
        if kind == "siret":
            return self.maybe(self.entreprise(), 0.3)
        if kind in ("rna", "rnf"):
            ident = f"W{rng.randrange(10**8, 10**9)}" if kind == "rna" else f"075-FDD-{rng.randrange(10**5):05d}-01"
            address = self.address()
            return self.maybe({kind: {"id": ident, "title": self.pick(STRUCTURES), "address": address["address"]},
                               "commune": address["commune"], "departement": address["departement"]}, 0.4)
        if kind == "carte":
            return self.geo_areas() if rng.random() < 0.5 else []
        if kind == "piece_justificative":
            count = rng.randrange(0, 3)
            names = ["devis_2026.pdf", "Devis n°42 — signé.pdf", "photo chantier.jpg", "budget prévisionnel.xlsx"]
            types = {"pdf": "application/pdf", "jpg": "image/jpeg",
                     "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
            return [self.file(n, types[n.rsplit(".", 1)[1]], created)
                    for n in rng.sample(names, count)]
        if kind == "titre_identite":
            return rng.random() < 0.6
        if kind == "dossier_link":
            return self.maybe(self.pick(other_numbers), 0.5) if other_numbers else None
        if kind == "iban":
            return self.maybe(f"FR76 3000 6000 01{rng.randrange(10**2):02d} 2345 6789 {rng.randrange(10**3):03d}", 0.3)
        if kind == "engagement_juridique":
            return self.maybe({"montantEngage": f"{rng.randrange(1000, 90000)}.00",
                               "montantPaye": f"{rng.randrange(0, 1000)}.00"}, 0.5)
        if kind == "repetition":
            rows = []
            for _ in range(rng.randrange(0, 4)):
                row = [self.value_for(sub, created, other_numbers) for sub in descriptor["champDescriptors"]]
                rows.append(row)
            return rows
        # aah, aeeh, ars, annuaire_education, cojo, etudiant_boursier, formatted,
        # pre_rempli, quotient_familial, referentiel: answered as TextChamp
        return self.maybe(f"{kind.upper()}-{rng.randrange(10**6):06d}", 0.4)


def _champs_for(descriptors: list[dict], values: _Values, created: str, stamp: str,
                others: list[int], number: int) -> list[dict]:
    """Champs of a dossier: only those whose conditions show them."""
    chosen: dict[int, Any] = {}
    champs = []
    for descriptor in descriptors:
        show_if = descriptor.get("_show_if")
        if show_if and chosen.get(show_if[0]) != show_if[1]:
            continue  # hidden by its condition: the dossier does not carry it
        value = values.value_for(descriptor, created, others)
        chosen[stable_id_of(descriptor["id"])] = value
        row_ids = None
        if descriptor["type"] == "repetition":
            row_ids = [fake_ulid(stable_hash(number, descriptor["id"], i)) for i in range(len(value))]
        champs.append(build_champ(descriptor, value, stamp, row_ids=row_ids))
    return champs


def _profile(kind: str, email: str) -> dict:
    return {"id": encode_id(kind, stable_hash(email) % 10**6), "email": email}


def generate_dossier(procedure: Procedure, number: int, seed: int, deposited: str,
                     state: str | None = None, revision: dict | None = None,
                     now: str | None = None) -> dict:
    """One dossier of ``procedure`` deposited at ``deposited``."""
    rng = random.Random(seed)
    values = _Values(rng, number)
    revision = revision or procedure.active_revision
    state = state or rng.choice(DOSSIER_STATES)
    deposit = parse_iso(deposited)
    end = parse_iso(now) if now else deposit

    def later(start: datetime, max_days: int) -> datetime:
        candidate = start + timedelta(days=rng.randrange(0, max_days), minutes=rng.randrange(1, 600))
        return min(candidate, max(end, start))

    en_instruction = later(deposit, 20) if state != "en_construction" else None
    processed = later(en_instruction, 30) if state in ("accepte", "refuse", "sans_suite") else None
    last_step = processed or en_instruction or deposit
    champs_modified = later(deposit, 5) if state == "en_construction" else deposit
    annotations_modified = later(last_step, 10) if state != "en_construction" else deposit
    modified = max(last_step, champs_modified, annotations_modified)
    others = [n for n in procedure.dossiers if n != number][:50]
    stamp_champs, stamp_annotations = iso(champs_modified), iso(annotations_modified)

    prenom, nom = rng.choice(PRENOMS), rng.choice(NOMS)
    email = f"usager{number}@exemple.fr"
    if rng.random() < 0.6:
        demandeur = {"__typename": "PersonnePhysique", "id": encode_id("Individual", number),
                     "civilite": rng.choice(["M", "Mme"]), "nom": nom, "prenom": prenom,
                     "email": rng.choice([email, None]),
                     "dateDeNaissance": rng.choice([None, f"19{rng.randrange(50, 99)}-0{rng.randrange(1, 9)}-1{rng.randrange(0, 9)}"])}
    else:
        demandeur = values.entreprise()
    groupe = rng.choice(procedure.groupe_instructeurs) if procedure.groupe_instructeurs else {
        "id": encode_id("GroupeInstructeur", 1), "number": 1, "label": "défaut", "closed": False,
        "instructeurs": []}
    instructeurs = groupe["instructeurs"][: rng.randrange(0, len(groupe["instructeurs"]) + 1)]
    labels = [l for l in procedure.labels if rng.random() < 0.25]
    avis = []
    if state != "en_construction" and rng.random() < 0.4:
        asked = later(en_instruction, 5)
        answered = rng.random() < 0.6
        avis.append({
            "id": encode_id("Avis", number * 10), "question": "Pouvez-vous donner votre avis sur la faisabilité ?",
            "reponse": "Avis favorable, sous réserve du devis définitif. ✅" if answered else None,
            "dateQuestion": iso(asked), "dateReponse": iso(later(asked, 5)) if answered else None,
            "questionLabel": None, "questionAnswer": None,
            "claimant": _profile("Instructeur", "instructeur1@exemple.gouv.fr"),
            "instructeur": _profile("Instructeur", "instructeur1@exemple.gouv.fr"),
            "expert": _profile("Expert", "expert.dreal@exemple.gouv.fr"),
            "attachments": [],
        })
    motivation = None
    if processed:
        motivation = rng.choice([None, "Dossier conforme au règlement d'intervention.",
                                 "Projet hors périmètre : « Action 3 » non éligible.\nVoir l'article 4."])
    return {
        "__typename": "Dossier",
        "_revisionId": revision["id"],
        "id": encode_id("Dossier", number),
        "number": number,
        "state": state,
        "archived": state in ("refuse", "sans_suite") and rng.random() < 0.3,
        "prefilled": False,
        "connectionUsager": rng.choice(["password", "password", "france_connect"]),
        "dateDepot": iso(deposit),
        "datePassageEnConstruction": iso(deposit),
        "datePassageEnInstruction": iso(en_instruction),
        "dateTraitement": iso(processed),
        "dateDerniereModification": iso(modified),
        "dateDerniereModificationChamps": stamp_champs,
        "dateDerniereModificationAnnotations": stamp_annotations,
        "dateDerniereModificationChampsParInstructeur": None,
        "dateExpiration": None,
        "dateSuppressionParUsager": None,
        "dateSuppressionParAdministration": None,
        "dateDerniereCorrectionEnAttente": None,
        "dateAccuseLectureAgreement": None,
        "datePrevisionnelleDecisionSVASVR": None,
        "dateTraitementSVASVR": None,
        "motivation": motivation,
        "motivationAttachment": None,
        "attestation": None,
        "pdf": values.file(f"dossier-{number}.pdf", "application/pdf", iso(modified)),
        "geojson": None,
        "deposeParUnTiers": rng.random() < 0.1,
        "nomMandataire": None,
        "prenomMandataire": None,
        "demandeur": demandeur,
        "usager": {"id": encode_id("User", number), "email": email},
        "groupeInstructeur": groupe,
        "instructeurs": instructeurs,
        "labels": labels,
        "avis": avis,
        "messages": [],
        "traitements": [],
        "assignments": [],
        "champs": _champs_for(revision["champDescriptors"], values, iso(deposit), stamp_champs, others, number),
        "annotations": (_champs_for(revision["annotationDescriptors"], values, iso(deposit),
                                    stamp_annotations, others, number)
                        if state != "en_construction" else []),
    }


def sample_procedure(number: int = 12345, dossier_count: int = 30, seed: int = 1,
                     title: str = "Subvention « Projets associatifs » 2026 — démo",
                     start: str = "2025-09-01T08:30:00+02:00",
                     now: str = "2026-03-02T09:00:00+01:00",
                     first_dossier_number: int | None = None, created: str | None = None) -> Procedure:
    """A procedure with two revisions and ``dossier_count`` dossiers.

    ``created``: the procedure's ``dateCreation`` (another DS instance may have a procedure
    of the same number, created at another date).

    Dossier numbers start at ``first_dossier_number`` (default ``number * 10``);
    deposit dates spread between ``start`` and ``now``; every modification
    date is before ``now`` (the store's initial clock).
    """
    rng = random.Random(seed)
    champ_descriptors, annotation_descriptors = build_descriptors(base=number % 1000 * 1000)
    # Revision 1 lacked the last champs; revision 2 (active) added them.
    old = make_revision(number * 10 + 1, "2025-06-02T10:00:00+02:00",
                        champ_descriptors[:-12], annotation_descriptors[:-3])
    active = make_revision(number * 10 + 2, "2025-10-15T14:00:00+02:00",
                           champ_descriptors, annotation_descriptors)
    instructeurs = [_profile("Instructeur", f"instructeur{i}@exemple.gouv.fr") for i in (1, 2, 3)]
    procedure = Procedure(
        number=number, title=title, revisions=[old, active],
        description="Démarche de démonstration générée par le faux serveur DS.",
        labels=[{"id": encode_id("Label", number * 10 + i), "name": n, "color": c}
                for i, (n, c) in enumerate(LABELS)],
        groupe_instructeurs=[
            {"id": encode_id("GroupeInstructeur", number * 10 + 1), "number": number * 10 + 1,
             "label": "défaut", "closed": False, "instructeurs": instructeurs[:2]},
            {"id": encode_id("GroupeInstructeur", number * 10 + 2), "number": number * 10 + 2,
             "label": "Calvados (14)", "closed": False, "instructeurs": instructeurs[1:]},
        ],
        administrateurs=[_profile("Administrateur", "admin@exemple.gouv.fr")],
        service={"id": encode_id("Service", number), "nom": "Direction de la vie associative",
                 "organisme": "Préfecture du Calvados", "typeOrganisme": "service_deconcentre_de_l_etat",
                 "siret": "17140001400015", "departement": "14"},
    )
    if created is not None:
        procedure.date_creation = iso(parse_iso(created))
    t0, t1 = parse_iso(start), parse_iso(now) - timedelta(hours=2)
    span = (t1 - t0).total_seconds()
    first = first_dossier_number or number * 10
    moments = sorted(t0 + timedelta(seconds=rng.uniform(0, span)) for _ in range(dossier_count))
    for index, moment in enumerate(moments):
        dossier_number = first + index
        revision = old if parse_iso(active["dateCreation"]) > moment else active
        state = DOSSIER_STATES[index % len(DOSSIER_STATES)] if index < 10 else None
        dossier = generate_dossier(procedure, dossier_number, seed=seed * 1_000_003 + index,
                                   deposited=iso(moment.replace(microsecond=0)), state=state,
                                   revision=revision, now=iso(t1))
        procedure.dossiers[dossier_number] = dossier
    # A few deletions, confirmed and pending.
    deleted_at = parse_iso(now) - timedelta(days=3)
    procedure.deleted_dossiers = [
        {"id": encode_id("DeletedDossier", number * 100 + i), "number": first + dossier_count + i,
         "state": state, "reason": reason, "dateSupression": iso(deleted_at + timedelta(hours=i))}
        for i, (state, reason) in enumerate([("en_construction", "user_request"), ("refuse", "expired"),
                                             ("accepte", "instructeur_request")])
    ]
    procedure.pending_deleted_dossiers = [
        {"id": encode_id("DeletedDossier", first + dossier_count + 10), "number": first + dossier_count + 10,
         "state": "sans_suite", "reason": "instructeur_request",
         "dateSupression": iso(deleted_at + timedelta(hours=5))}
    ]
    return procedure


def demo_procedures() -> list[Procedure]:
    """Procedures of the local demo: 12345 has 120 dossiers (two pages)."""
    return [
        sample_procedure(number=12345, dossier_count=120, seed=12345),
        sample_procedure(number=67890, dossier_count=8, seed=67890,
                         title="Déclaration de manifestation sportive 🏃", first_dossier_number=900000),
    ]


def demo_store() -> FakeDSStore:
    return FakeDSStore(demo_procedures())


__all__ = ["sample_procedure", "demo_procedures", "demo_store", "generate_dossier",
           "build_descriptors", "DOSSIER_STATES", "LONG_LABEL"]
