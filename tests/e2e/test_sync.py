"""End to end: the widget syncs a DS procedure (fake DS over HTTP) into a real Grist document.

Expected values are read straight from the fake DS's store (the dossiers as DS holds them),
never computed with py_core.
"""

from __future__ import annotations

from datetime import date, datetime

import pytest

from harness import NUMBER, TOKEN

# ds, store: conftest's fake DS with its defaults (procedure NUMBER, 30 dossiers, seed 7)


@pytest.fixture
def synced(open_grist, ds):
    """A first sync, on grist-static and on grist-core (open_grist is parametrized)."""
    host = open_grist(demarche=NUMBER, endpoint=ds.url, token=TOKEN)
    first = host.sync()
    assert first["state"] == "done", first
    return host, first


def blank(value):
    return None if value in ("", None) else value


def champ(dossier, descriptor_id, key="champs"):
    return next((c for c in dossier[key] if c["champDescriptorId"] == descriptor_id), None)


def column(host, table, label):
    matches = [c for c in host.columns(table) if c["label"] == label]
    assert len(matches) == 1, (label, [c["label"] for c in host.columns(table)])
    return matches[0]


def descriptor(store, label, key="champDescriptors"):
    revision = store.procedure(NUMBER).active_revision
    return next(d for d in revision[key] if d["label"] == label)


def by_dossier(host, table):
    dossiers = host.fetch_table(f"D{NUMBER}_Dossiers")
    number_of = dict(zip(dossiers["id"], dossiers["Numero"]))
    return {number_of[r["Dossier"]]: r for r in host.records(table)}


def served(ds, url):
    """The fake DS stores file paths and serves them as absolute URLs (DS sends absolute URLs)."""
    return ds.base_url + url if url.startswith("/") else url


def int_type(store, label, part="champs"):
    """Grist's Int holds 32-bit integers: a larger DS integer makes the column Numeric."""
    wanted = descriptor(store, label, "champDescriptors" if part == "champs" else "annotationDescriptors")["id"]
    values = [int(c["value"]) for d in store.procedure(NUMBER).dossiers.values()
              if (c := champ(d, wanted, part)) and c["value"] is not None]
    return "Int" if all(-(2**31) <= v < 2**31 for v in values) else "Numeric"


def epoch_date(iso_day):
    return (date.fromisoformat(iso_day) - date(1970, 1, 1)).days * 86400


def test_first_sync_copies_every_dossier_typed_and_linked(synced, store, ds):
    host, result = synced
    dossiers = store.procedure(NUMBER).dossiers
    assert result["text"] == f"Synchronisation terminée : {len(dossiers)} dossiers ({len(dossiers)} ajoutés, 0 mis à jour)"
    assert not result["error"]

    tables = host.table_ids()
    for table in ("Dossiers", "Champs", "Annotations", "Bloc_Membres_de_l_equipe", "Bloc_Versements"):
        assert f"D{NUMBER}_{table}" in tables
    assert {"OTP_Demarches", "OTP_Tables", "OTP_Colonnes"} <= set(tables)

    # Dossiers: one row each, exact state labels and dates
    rows = {r["Numero"]: r for r in host.records(f"D{NUMBER}_Dossiers")}
    assert sorted(rows) == sorted(dossiers)
    labels = {"en_construction": "En construction", "en_instruction": "En instruction", "accepte": "Accepté",
              "refuse": "Refusé", "sans_suite": "Classé sans suite"}
    for number, dossier in dossiers.items():
        row = rows[number]
        assert row["Etat"] == labels[dossier["state"]]
        assert row["Date_depot"] == datetime.fromisoformat(dossier["dateDepot"]).timestamp()
        assert sorted(row["Labels"][1:] if row["Labels"] else []) == sorted(l["name"] for l in dossier["labels"])
        demandeur = dossier["demandeur"]
        if demandeur["__typename"] == "PersonnePhysique":
            assert (row["Demandeur_nom"], row["Demandeur_prenom"]) == (demandeur["nom"], demandeur["prenom"])
        else:
            assert row["Demandeur_SIRET"] == demandeur["siret"]
        assert row["Lien_DS"].endswith(f"/procedures/{NUMBER}/dossiers/{number}")
    types = {c["colId"]: c["type"] for c in host.columns(f"D{NUMBER}_Dossiers")}
    assert types["Numero"] == "Int" and types["Etat"] == "Choice" and types["Labels"] == "ChoiceList"
    assert types["Date_depot"].startswith("DateTime:")

    # Champs: one typed column per descriptor, values exactly as DS holds them
    table = f"D{NUMBER}_Champs"
    champs = by_dossier(host, table)
    assert sorted(champs) == sorted(dossiers)
    cases = [  # label, Grist type, DS value → cell
        ("Prénom", "Text", lambda c: blank(c["value"])),
        ("Nombre de bénéficiaires", int_type(store, "Nombre de bénéficiaires"), lambda c: int(c["value"]) if c["value"] is not None else None),
        ("Montant demandé (€)", "Numeric", lambda c: c["value"]),
        ("Le projet a-t-il déjà commencé ?", "Bool", lambda c: c["value"]),
        ("Date de naissance du porteur", "Date", lambda c: epoch_date(c["date"]) if c["date"] else None),
        ("Département du projet", "Choice", lambda c: blank(c["value"])),
        ("Thématiques", "ChoiceList", lambda c: ["L", *c["values"]] if c["values"] else None),
    ]
    for label, grist_type, expected in cases:
        col = column(host, table, label)
        assert col["type"] == grist_type, label
        wanted_descriptor = descriptor(store, label)
        for number, dossier in dossiers.items():
            value = champ(dossier, wanted_descriptor["id"])
            want = expected(value) if value is not None else None
            got = champs[number][col["colId"]]
            if grist_type == "Bool":
                got, want = bool(got), bool(want)
            assert blank(got) == want, (label, number, got, want)
    # the same label twice gives two columns
    assert [c["colId"] for c in host.columns(table) if c["label"] == "Nom"] == ["Nom", "Nom_2"]
    assert column(host, table, "Dossier")["type"] == f"Ref:D{NUMBER}_Dossiers"
    assert int_type(store, "Nombre de bénéficiaires") == "Numeric", "the sample has integers beyond 32 bits"
    # references show the dossier's number
    meta = host.widget.evaluate("grist.docApi.fetchTable('_grist_Tables_column')")
    cols = [dict(zip(meta, values)) for values in zip(*meta.values())]
    tables = host.widget.evaluate("grist.docApi.fetchTable('_grist_Tables')")
    ref_of = dict(zip(tables["tableId"], tables["id"]))
    numero = next(c for c in cols if c["parentId"] == ref_of[f"D{NUMBER}_Dossiers"] and c["colId"] == "Numero")
    ref_col = next(c for c in cols if c["parentId"] == ref_of[table] and c["colId"] == "Dossier")
    display = next(c for c in cols if c["id"] == ref_col["displayCol"])
    assert ref_col["visibleCol"] == numero["id"] and display["formula"] == "$Dossier.Numero"

    # Repeatable block: one row per block row, linked to its dossier, in order
    block = descriptor(store, "Membres de l'équipe")
    rows = host.records(f"D{NUMBER}_Bloc_Membres_de_l_equipe")
    dossier_ids = dict(zip(*[host.fetch_table(f"D{NUMBER}_Dossiers")[k] for k in ("Numero", "id")]))
    expected_rows = sorted(
        (dossier_ids[n], position, row["id"])
        for n, d in dossiers.items() if (c := champ(d, block["id"]))
        for position, row in enumerate(c["rows"], start=1)
    )
    assert sorted((r["Dossier"], r["Position"], r["Ligne"]) for r in rows) == expected_rows
    assert expected_rows, "the sample should have block rows"

    # Files: one row per file, a link that opens (Grist HyperLink: "label url")
    expected_files = sorted(
        (dossier_ids[n], f["filename"], f"{f['filename']} {served(ds, f['url'])}")
        for n, d in dossiers.items() for c in d["champs"] + d["annotations"]
        for f in ([*(c.get("files") or [])] + [f for row in c.get("rows") or [] for sc in row["champs"] for f in sc.get("files") or []])
    )
    assert expected_files, "the sample should have files"
    files = [(r["Dossier"], r["Nom"], r["Lien"].split("?")[0]) for r in host.records(f"D{NUMBER}_Fichiers")]  # signed
    assert sorted(files) == expected_files
    assert column(host, f"D{NUMBER}_Fichiers", "Nom du fichier")["type"] == "Text"

    # Avis: their own table, linked to the dossier
    expected_avis = sorted((dossier_ids[n], a["id"], a["question"]) for n, d in dossiers.items() for a in d["avis"])
    assert expected_avis, "the sample should have avis"
    assert sorted((r["Dossier"], r["Avis_id"], r["Question"]) for r in host.records(f"D{NUMBER}_Avis")) == expected_avis


def test_second_sync_is_incremental_and_duplicates_nothing(synced, store, ds):
    host, _ = synced
    before = host.snapshot()
    pages_before = len([r for r in ds.requests if r.operation_name == "otpDossiers"])
    requests_before = len(ds.requests)
    again = host.sync()
    assert again["state"] == "done", again
    total = len(store.procedure(NUMBER).dossiers)
    assert again["text"] == f"Synchronisation terminée : {total} dossiers (0 ajoutés, 0 mis à jour)"
    after = host.snapshot()
    for table, content in before.items():
        if table not in ("OTP_Demarches", "OTP_Historique", "OTP_Etat"):  # last-sync time, history, lease
            assert after[table] == content, table
    # nothing changed: the light listing (dates equal to the copy's) and no dossier page at all
    page_requests = [r for r in ds.requests if r.operation_name == "otpDossiers"][pages_before:]
    listing = [r for r in ds.requests[requests_before:] if r.operation_name == "otpRefresh"]
    assert page_requests == [] and len(listing) == -(-total // 100)
    history = host.records("OTP_Historique")
    assert [(h["Type"], h["Ajoutes"], h["Mis_a_jour"], h["Dossiers_recus"]) for h in history] == [
        ("Complète", total, 0, total), ("Incrémentale", 0, 0, 0)]


def test_a_changed_dossier_is_updated_in_place(synced, store, ds):
    host, _ = synced
    number = sorted(store.procedure(NUMBER).dossiers)[3]
    first_name = descriptor(store, "Prénom")
    rows_before = {r["Numero"]: r["id"] for r in host.records(f"D{NUMBER}_Dossiers")}
    store.update_champ(number, first_name["id"], "Zoé 🚀 <b>")
    store.update_dossier(number, state="accepte")
    result = host.sync()
    total = len(store.procedure(NUMBER).dossiers)
    assert result["text"] == f"Synchronisation terminée : {total} dossiers (0 ajoutés, 1 mis à jour)"
    rows_after = {r["Numero"]: r for r in host.records(f"D{NUMBER}_Dossiers")}
    assert {n: r["id"] for n, r in rows_after.items()} == rows_before
    assert rows_after[number]["Etat"] == "Accepté"
    prenom = column(host, f"D{NUMBER}_Champs", "Prénom")["colId"]
    assert by_dossier(host, f"D{NUMBER}_Champs")[number][prenom] == "Zoé 🚀 <b>"
    assert len(host.records(f"D{NUMBER}_Champs")) == total


def test_a_new_dossier_is_added(synced, store, ds):
    host, _ = synced
    new = store.add_dossier()
    result = host.sync()
    total = len(store.procedure(NUMBER).dossiers)
    assert result["text"] == f"Synchronisation terminée : {total} dossiers (1 ajoutés, 0 mis à jour)"
    assert new["number"] in {r["Numero"] for r in host.records(f"D{NUMBER}_Dossiers")}
    assert len(host.records(f"D{NUMBER}_Champs")) == total


def test_progress_is_shown_while_syncing(open_host, ds, store):
    host = open_host(demarche=NUMBER, endpoint=ds.url, token=TOKEN)
    host.widget.evaluate("""() => {
        window.__seen = [];
        const status = document.getElementById('status'), bar = document.getElementById('progress');
        new MutationObserver(() => window.__seen.push([status.textContent, bar.value, bar.max]))
            .observe(status, {childList: true, characterData: true, subtree: true});
    }""")
    result = host.sync()
    assert result["state"] == "done"
    seen = host.widget.evaluate("window.__seen")
    total = len(store.procedure(NUMBER).dossiers)
    texts = [text for text, _, _ in seen]
    assert f"Lecture de la structure de la démarche n° {NUMBER}…" in texts
    assert f"0 / {total} dossiers" in texts and f"{total} / {total} dossiers" in texts
    assert [value for text, value, _ in seen if text == f"{total} / {total} dossiers"] == [total]
    assert texts[-1].startswith("Synchronisation terminée")
    assert host.widget.evaluate("document.getElementById('status').getAttribute('aria-live')") == "polite"


def _t(value):
    return None if value is None or str(value).strip() == "" else value


def _get(obj, *path):
    for name in path:
        obj = obj.get(name) if isinstance(obj, dict) else None
    return obj


def _ts(iso):
    return datetime.fromisoformat(iso).timestamp() if iso else None


TEXT = [("", "Text", lambda c: _t(c.get("value")))]
NAME_CODE = lambda obj: [("", "Text", lambda c: _t(_get(c, obj, "name"))), (" – code", "Text", lambda c: _t(_get(c, obj, "code")))]  # noqa: E731

# The documented mapping (README), written out independently of py_core:
# descriptor kind → [(label suffix, Grist type, DS champ → cell)]
EXPECTED = {
    **{k: TEXT for k in ("Text", "Textarea", "Email", "Phone", "Iban", "Formatted", "Number", "PreRempli", "Referentiel",
                         "AnnuaireEducation", "COJO", "AAH", "AEEH", "ARS", "EtudiantBoursier", "QuotientFamilial")},
    "DecimalNumber": [("", "Numeric", lambda c: c.get("value"))],
    "Checkbox": [("", "Bool", lambda c: bool(c.get("value")))],
    "YesNo": [("", "Bool", lambda c: bool(c.get("value")))],
    "Date": [("", "Date", lambda c: epoch_date(c["date"]) if c.get("date") else None)],
    "Datetime": [("", "DateTime", lambda c: _ts(c.get("datetime")))],  # + the document's time zone
    "DropDownList": [("", "Choice", lambda c: _t(c.get("value")))],
    "MultipleDropDownList": [("", "ChoiceList", lambda c: ["L", *c["values"]] if c.get("values") else None)],
    "LinkedDropDownList": [("", "Choice", lambda c: _t(c.get("primaryValue"))), (" – second choix", "Text", lambda c: _t(c.get("secondaryValue")))],
    "Civilite": [("", "Choice", lambda c: _t(c.get("value")))],
    "Address": [
        ("", "Text", lambda c: _t(_get(c, "address", "label")) or _t(c.get("stringValue"))),
        (" – code postal", "Text", lambda c: _t(_get(c, "address", "postalCode"))),
        (" – commune", "Text", lambda c: _t(_get(c, "address", "cityName"))),
        (" – code INSEE", "Text", lambda c: _t(_get(c, "address", "cityCode"))),
        (" – département", "Text", lambda c: _t(_get(c, "address", "departmentName"))),
        (" – code département", "Text", lambda c: _t(_get(c, "address", "departmentCode"))),
    ],
    "Commune": [
        ("", "Text", lambda c: _t(_get(c, "commune", "name"))),
        (" – code INSEE", "Text", lambda c: _t(_get(c, "commune", "code"))),
        (" – code postal", "Text", lambda c: _t(_get(c, "commune", "postalCode"))),
        (" – département", "Text", lambda c: _t(_get(c, "departement", "name"))),
    ],
    "Departement": NAME_CODE("departement"), "Region": NAME_CODE("region"), "Pays": NAME_CODE("pays"), "Epci": NAME_CODE("epci"),
    "Siret": [("", "Text", lambda c: _t(_get(c, "etablissement", "siret"))),
              (" – raison sociale", "Text", lambda c: _t(_get(c, "etablissement", "entreprise", "raisonSociale")))],
    "RNA": [("", "Text", lambda c: _t(_get(c, "rna", "id"))), (" – titre", "Text", lambda c: _t(_get(c, "rna", "title")))],
    "RNF": [("", "Text", lambda c: _t(_get(c, "rnf", "id"))), (" – titre", "Text", lambda c: _t(_get(c, "rnf", "title")))],
    "EngagementJuridique": [("", "Text", lambda c: _t(c.get("stringValue"))),
                            (" – montant engagé", "Text", lambda c: _t(_get(c, "engagementJuridique", "montantEngage"))),
                            (" – montant payé", "Text", lambda c: _t(_get(c, "engagementJuridique", "montantPaye")))],
    "DossierLink": [("", "Int", lambda c: int(c["stringValue"]) if _t(c.get("stringValue")) else None)],
    "PieceJustificative": [("", "Text", lambda c: "\n".join(f["filename"] for f in c.get("files") or []) or None)],
    "TitreIdentite": [("", "Bool", lambda c: bool(c.get("filled")))],
    "Carte": [("", "Text", lambda c: len(c.get("geoAreas") or []) or None)],  # compared by feature count
    "HeaderSection": [], "Explication": [],
}


@pytest.mark.parametrize("part", ["champs", "annotations"])
def test_every_champ_type_lands_typed_with_its_value(synced, store, part):
    import json

    host, _ = synced
    table = f"D{NUMBER}_{part.capitalize()}"
    columns = host.columns(table)
    rows = by_dossier(host, table)
    revision = store.procedure(NUMBER).active_revision
    descriptors = revision["champDescriptors" if part == "champs" else "annotationDescriptors"]
    checked = set()
    timezone = host.widget.evaluate("grist.docApi.fetchTable('_grist_DocInfo')")["timezone"][0]
    for position, desc in enumerate(descriptors):
        kind = desc["__typename"].removesuffix("ChampDescriptor")
        if kind == "Repetition":
            continue
        labels = [c["label"] for c in columns]
        # the same label twice (« Nom ») gives distinct columns, in form order
        nth = sum(1 for d in descriptors[:position] if d["label"] == desc["label"])
        for suffix, grist_type, expected in EXPECTED[kind] if kind != "IntegerNumber" else [("", int_type(store, desc["label"], part), lambda c: int(c["value"]) if c.get("value") is not None else None)]:
            matching = [c for c in columns if c["label"] == desc["label"] + suffix]
            assert len(matching) > nth, (desc["label"] + suffix, labels)
            col = matching[nth]
            if grist_type == "DateTime":
                grist_type = f"DateTime:{timezone}"
            assert col["type"] == grist_type, (kind, desc["label"], col["type"])
            for number, dossier in store.procedure(NUMBER).dossiers.items():
                value = champ(dossier, desc["id"], part)
                got = rows[number][col["colId"]]
                if value is None:
                    assert got in (None, "", False, 0, []), (kind, number, got)  # hidden by a condition: empty
                    continue
                want = expected(value)
                if kind == "Carte":
                    got = len(json.loads(got)["features"]) if got else None
                if grist_type == "Bool":
                    got = bool(got)
                assert blank(got) == want, (kind, desc["label"] + suffix, number, got, want)
        checked.add(kind)
    if part == "champs":
        assert checked >= set(EXPECTED) - {"Repetition"} - {"IntegerNumber"}, set(EXPECTED) - checked


def test_datetimes_follow_the_document_time_zone(open_host, ds):
    host = open_host(demarche=NUMBER, endpoint=ds.url, token=TOKEN)
    host.apply_user_actions([["UpdateRecord", "_grist_DocInfo", 1, {"timezone": "Europe/Paris"}]])
    assert host.sync()["state"] == "done"
    types = {c["label"]: c["type"] for c in host.columns(f"D{NUMBER}_Dossiers")}
    assert types["Date de dépôt"] == "DateTime:Europe/Paris"
    assert {c["label"]: c["type"] for c in host.columns(f"D{NUMBER}_Champs")}["Date et heure du rendez-vous"] == "DateTime:Europe/Paris"
