"""What only a real Grist server shows (grist-core): settings kept with the document across a
reload, a reload in the middle of a sync, two pages syncing the same document, a viewer; and the
production path (the widget served by the nginx relay) in a grist-core document.

Expected values come from the fake DS's store; the document is read back through grist-core's
REST API. Skipped with the reason when the grist-core kit is absent (see grist_core.py).
"""
from __future__ import annotations

import re
from collections import Counter

import pytest

from grist_core import CoreHost, GristError
from harness import ROOT, TOKEN, dossier_pages
from tests.relay_nginx import IN_CI, NginxRelay, missing_nginx

NUMBER = 24680
DEFAULT_ENDPOINT = "https://demarche.numerique.gouv.fr/api/v2/graphql"
VIEWER = "lecteur@example.com"
EDITOR = "editeur@example.com"
BUSY = re.compile(r"Une synchronisation (de la démarche n° \d+ )?est déjà en cours")


@pytest.fixture
def ds(fake_ds):
    return fake_ds(number=NUMBER, dossiers=12, seed=5)


@pytest.fixture
def big_ds(fake_ds):
    """250 dossiers: three pages of 100."""
    return fake_ds(number=NUMBER, dossiers=250, seed=6)


@pytest.fixture
def other_page(browser_context):
    page = browser_context.new_page()
    page.set_default_timeout(60_000)
    yield page
    page.close()


def later_page(request) -> bool:
    return request.operation_name == "otpDossiers" and bool((request.variables or {}).get("after"))


def assert_exact_copy(host, store):
    """Every dossier of the store exactly once, in every per-dossier table; no duplicate key
    in the child tables."""
    expected = sorted(store.procedure(NUMBER).dossiers)
    numbers = [r["Numero"] for r in host.records(f"D{NUMBER}_Dossiers")]
    duplicated = sorted(n for n, k in Counter(numbers).items() if k > 1)
    assert not duplicated, f"dossiers copied twice: {duplicated[:10]} ({len(numbers)} rows)"
    assert sorted(numbers) == expected
    for table in ("Champs", "Annotations"):
        refs = [r["Dossier"] for r in host.records(f"D{NUMBER}_{table}")]
        assert len(refs) == len(expected) == len(set(refs)), table
    keys = {"Avis": ("Dossier", "Avis_id"), "Fichiers": ("Dossier", "Champ_id", "Numero_fichier")}
    for table in host.table_ids():
        if table.startswith(f"D{NUMBER}_Bloc_"):
            keys[table.removeprefix(f"D{NUMBER}_")] = ("Dossier", "Ligne")
    for table, key in keys.items():
        rows = [tuple(r[k] for k in key) for r in host.records(f"D{NUMBER}_{table}")]
        assert len(rows) == len(set(rows)), (table, [k for k, n in Counter(rows).items() if n > 1][:5])
    demarches = [r for r in host.records("OTP_Demarches") if r["Numero"] == NUMBER]
    assert len(demarches) == 1
    assert demarches[0]["Nb_dossiers"] == len(expected)


# ---- settings kept with the document ------------------------------------------------------------

def test_api_address_and_number_come_back_after_a_reload(open_core_host, ds, grist_core):
    """grist.setOptions only makes an unsaved draft on a server: after a reload the widget
    reads the procedure and the API address of the last sync from OTP_Demarches."""
    host = open_core_host(token=TOKEN)   # nothing in the widget's URL: an agent types it all
    frame = host.wait_widget_ready()
    assert frame.input_value("#endpoint") in ("", DEFAULT_ENDPOINT)
    first = host.sync(demarche=NUMBER, endpoint=ds.url)
    assert first["state"] == "done", first
    demarche = next(r for r in host.records("OTP_Demarches") if r["Numero"] == NUMBER)
    assert "Adresse_API" in demarche, "the core records the API address of the last sync"
    assert demarche["Adresse_API"] == ds.url

    frame = host.reload()
    assert host.widget_options() is None, "grist-core kept the widget's options as an unsaved draft"
    try:   # read from the document once Grist answers (usually before Python is ready)
        frame.wait_for_function("(u) => document.getElementById('endpoint').value === u", arg=ds.url, timeout=10_000)
    except Exception:  # noqa: BLE001 - the assertion below says what is there instead
        pass
    assert frame.input_value("#demarche") == str(NUMBER)
    assert frame.input_value("#endpoint") == ds.url
    assert frame.evaluate("document.getElementById('advanced').open"), "a non-default address is shown"

    requests = len(ds.requests)
    again = host.sync()              # only the token typed again
    assert again["state"] == "done", again
    assert again["text"].startswith("Synchronisation terminée")
    assert len(ds.requests) > requests, "the sync went to the address read back"


# ---- a reload in the middle of a sync -------------------------------------------------------------

def test_a_reload_in_the_middle_of_a_sync_loses_and_duplicates_nothing(open_core_host, big_ds):
    host = open_core_host(demarche=NUMBER, endpoint=big_ds.url, token=TOKEN)
    big_ds.delay_next(6.0, match=later_page)       # the second page comes late: reload meanwhile
    host.start_sync()
    table = f"D{NUMBER}_Dossiers"
    for _ in range(300):
        try:
            if len(host.fetch_table(table)["id"]) >= 100:
                break
        except GristError:  # not created yet
            pass
        host.page.wait_for_timeout(100)
    else:
        raise AssertionError(f"the first page was not written: {host.status()}")
    assert host.status()["state"] == "syncing"
    host.reload()
    partial = len(host.fetch_table(table)["id"])
    assert 100 <= partial < 250, partial

    again = host.sync()
    assert again["state"] == "done", again["text"]
    assert again["text"].startswith("Synchronisation terminée : 250 dossiers"), again["text"]
    assert_exact_copy(host, big_ds.store)
    demarche = next(r for r in host.records("OTP_Demarches") if r["Numero"] == NUMBER)
    newest = max(d["dateDerniereModification"] for d in big_ds.store.procedure(NUMBER).dossiers.values())
    assert demarche["Curseur"] and demarche["Curseur"].startswith(newest[:19]), (demarche["Curseur"], newest)


# ---- two pages on one document ------------------------------------------------------------------------

@pytest.fixture
def colleague_page(other_browser):
    """A page in another browser: a colleague's, with its own storage."""
    context = other_browser.new_context(locale="fr-FR", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield page
    context.close()


@pytest.mark.parametrize("where", ["two-browsers", "two-tabs"])
def test_two_pages_syncing_the_same_document_duplicate_nothing(where, open_core_host, request, big_ds,
                                                               grist_core, core_doc):
    """Two agents (two browsers), or one agent with two tabs, click « Synchroniser » on the
    same document together: one copy of every dossier; the page that comes second waits or
    says a sync is already running."""
    other = request.getfixturevalue("colleague_page" if where == "two-browsers" else "other_page")
    first = open_core_host(demarche=NUMBER, endpoint=big_ds.url, token=TOKEN)
    second = CoreHost(other, grist_core, core_doc).open(demarche=NUMBER, endpoint=big_ds.url, token=TOKEN)
    second.wait_widget_ready()
    big_ds.delay_next(0.7, count=20, match=dossier_pages)   # 3 pages: each sync lasts > 2 s
    first.start_sync()
    # the first sync holds the document (it reads dossier pages) when the second one starts
    first.widget.wait_for_function("() => / \\/ 250 dossiers/.test(document.getElementById('status').textContent)",
                                   timeout=60_000, polling=50)
    second.start_sync()
    results = [first.wait_sync_end(), second.wait_sync_end()]
    print("two pages:", [(r["state"], r["text"][:90]) for r in results])
    assert results[0]["state"] == "done", f"the sync that started first completes: {results[0]['text']}"
    if results[1]["state"] == "error":
        assert BUSY.search(results[1]["text"]), results[1]["text"]
        assert results[1]["enabled"], "the refused page can sync again later"
    else:
        assert results[1]["state"] == "done", results[1]   # it waited for the first one
    assert_exact_copy(first, big_ds.store)

    # both pages can sync again now: still one copy
    for host in (second, first):
        again = host.sync()
        assert again["state"] == "done", again["text"]
    assert_exact_copy(first, big_ds.store)


# ---- a viewer --------------------------------------------------------------------------------------------

def test_a_viewer_is_told_the_document_is_read_only_and_nothing_is_written(open_core_host, other_page, ds,
                                                                           grist_core, core_doc):
    owner = open_core_host(demarche=NUMBER, endpoint=ds.url, token=TOKEN)
    assert owner.sync()["state"] == "done"
    ds.store.add_dossier(procedure_number=NUMBER)           # something new the viewer would copy
    grist_core.share(core_doc.doc_id, VIEWER, "viewers")
    before = owner.snapshot()
    requests = len(ds.requests)

    viewer = CoreHost(other_page, grist_core, core_doc, email=VIEWER).open(
        demarche=NUMBER, endpoint=ds.url, token=TOKEN)
    frame = viewer.wait_widget_ready()
    assert "readonly=true" in frame.evaluate("location.search")
    result = viewer.sync()
    assert result["state"] == "error" and result["error"], result
    assert "lecture seule" in result["text"] and "rien n'a été écrit" in result["text"], result["text"]
    assert len(ds.requests) == requests, "no call to DS for a document that cannot be written"
    assert owner.snapshot() == before


def test_an_editor_whose_access_rules_forbid_writing_is_told_why_and_nothing_is_written(
        open_core_host, other_page, ds, grist_core, core_doc):
    """Not read-only for Grist (readonly=false in the widget's URL), but the document's access
    rules refuse this editor's writes: the refusal is explained in French, nothing is written."""
    owner = open_core_host(demarche=NUMBER, endpoint=ds.url, token=TOKEN)
    assert owner.sync()["state"] == "done"
    grist_core.share(core_doc.doc_id, EDITOR, "editors")
    grist_core.apply(core_doc.doc_id, [
        ["AddRecord", "_grist_ACLResources", -1, {"tableId": "*", "colIds": "*"}],
        ["AddRecord", "_grist_ACLRules", None, {"resource": -1, "aclFormula": f"user.Email == '{EDITOR}'",
                                                 "permissionsText": "-CUD", "memo": "lecture seule"}],
    ])
    ds.store.add_dossier(procedure_number=NUMBER)
    before = owner.snapshot()

    editor = CoreHost(other_page, grist_core, core_doc, email=EDITOR).open(demarche=NUMBER, endpoint=ds.url)
    assert "readonly=false" in editor.wait_widget_ready().evaluate("location.search")
    result = editor.sync(token=TOKEN)
    assert result["state"] == "error" and result["error"], result
    assert "Grist a refusé l'écriture" in result["text"], result["text"]
    assert "vos droits sur ce document ne permettent pas cette modification" in result["text"], result["text"]
    assert "règles d'accès" in result["text"] and TOKEN not in result["text"]
    assert owner.snapshot() == before


# ---- the production path: the widget served by the relay, in grist-core ----------------------------------

def test_full_sync_and_resync_through_the_relay(grist_core, page, otp_manifest, fake_ds):
    """Widget and API on the relay's origin (real nginx, the fake DS without CORS behind it),
    the widget in a grist-core document: a first sync, then a re-sync after a change in DS."""
    missing = missing_nginx()
    if missing:
        pytest.fail(f"CI=true and {missing}") if IN_CI else pytest.skip(f"relay test skipped: {missing}")
    ds = fake_ds(number=NUMBER, dossiers=25, seed=8, cors=False)
    store = ds.store
    with NginxRelay(ROOT / "widget" / "dist", ds.base_url, grist_origins=grist_core.url) as relay:
        doc = grist_core.new_doc(f"{relay.url}/index.html")
        host = CoreHost(page, grist_core, doc, widget_path=relay.url + "/").open(demarche=NUMBER)
        frame = host.wait_widget_ready()
        frame.evaluate("otpWidget.configReady.then(() => true)")
        assert frame.input_value("#endpoint") == relay.endpoint   # the relay's own, no address to type
        first = host.sync(token=TOKEN)
        assert first["state"] == "done", first["text"]
        assert first["result"]["added"] == 25
        assert_exact_copy(host, store)
        dossiers = host.fetch_table(f"D{NUMBER}_Dossiers")
        for number, link in zip(dossiers["Numero"], dossiers["Lien_DS"]):   # DS's site, not the relay
            assert link.endswith(f" {ds.base_url}/procedures/{NUMBER}/dossiers/{number}"), link

        changed = sorted(store.procedure(NUMBER).dossiers)[2]
        store.advance(60)
        store.update_dossier(changed, motivation="Vu au relais, dans grist-core")
        added = store.add_dossier(procedure_number=NUMBER)
        second = host.sync(token=TOKEN)
        assert second["state"] == "done", second["text"]
        assert (second["result"]["added"], second["result"]["updated"]) == (1, 1), second["result"]
        assert_exact_copy(host, store)
        dossiers = host.fetch_table(f"D{NUMBER}_Dossiers")
        assert dossiers["Motivation"][dossiers["Numero"].index(changed)] == "Vu au relais, dans grist-core"
        assert added["number"] in dossiers["Numero"]
        assert TOKEN not in relay.logs()
