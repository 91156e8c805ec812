"""The fake DS server over real HTTP: auth, pagination, filters, typenames, CORS."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from demo.fake_ds import FakeDSServer, FakeDSStore, sample_procedure  # noqa: E402
from demo.fake_ds.store import decode_id  # noqa: E402

TOKEN = "good-token"
PROC = 1234
OTHER_PROC = 5678


@pytest.fixture(scope="module")
def store() -> FakeDSStore:
    return FakeDSStore([
        sample_procedure(number=PROC, dossier_count=250, seed=7),
        sample_procedure(number=OTHER_PROC, dossier_count=5, seed=8, first_dossier_number=900000),
    ])


@pytest.fixture(scope="module")
def server(store):
    with FakeDSServer(store, tokens={TOKEN: "all", "limited": {OTHER_PROC}},
                      expired_tokens={"old-token"}) as fake:
        yield fake


def post(url: str, query: str, variables: dict | None = None, token: str | None = TOKEN,
         operation_name: str | None = None):
    body = json.dumps({"query": query, "variables": variables or {}, "operationName": operation_name})
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=body.encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


DOSSIERS = """
query Dossiers($number: Int!, $first: Int, $after: String, $updatedSince: ISO8601DateTime,
               $createdSince: ISO8601DateTime, $state: DossierState) {
  demarche(number: $number) {
    dossiers(first: $first, after: $after, updatedSince: $updatedSince,
             createdSince: $createdSince, state: $state) {
      pageInfo { hasNextPage endCursor }
      nodes { number state dateDepot dateDerniereModification }
    }
  }
}"""


def all_pages(server, **variables):
    pages, after = [], None
    while True:
        status, _, body = post(server.url, DOSSIERS, {"number": PROC, "after": after, **variables})
        assert status == 200 and "errors" not in body, body
        connection = body["data"]["demarche"]["dossiers"]
        pages.append(connection["nodes"])
        if not connection["pageInfo"]["hasNextPage"]:
            return pages
        after = connection["pageInfo"]["endCursor"]


# -- authentication and authorization ---------------------------------------

def test_missing_and_unknown_token_are_forbidden(server):
    for token in (None, "unknown"):
        status, _, body = post(server.url, DOSSIERS, {"number": PROC}, token=token)
        assert status == 403
        assert body["errors"][0]["message"] == "Without a token, only persisted queries are allowed"
        assert body["errors"][0]["extensions"]["code"] == "forbidden"


def test_expired_token(server):
    status, _, body = post(server.url, DOSSIERS, {"number": PROC}, token="old-token")
    assert status == 401
    assert body == {"errors": [{"message": "Token expired", "extensions": {"code": "unauthorized"}}],
                    "data": None}


def test_token_without_access_to_procedure(server):
    status, _, body = post(server.url, DOSSIERS, {"number": PROC}, token="limited")
    assert status == 200 and body["data"] is None
    assert body["errors"][0]["message"] == "An object of type Demarche was hidden due to permissions"
    assert body["errors"][0]["extensions"]["code"] == "unauthorized"
    status, _, body = post(server.url, DOSSIERS, {"number": OTHER_PROC}, token="limited")
    assert status == 200 and len(body["data"]["demarche"]["dossiers"]["nodes"]) == 5


def test_unknown_procedure(server):
    status, _, body = post(server.url, DOSSIERS, {"number": 999})
    assert status == 200 and body["data"] is None
    assert body["errors"][0]["message"] == "Demarche not found"
    assert body["errors"][0]["extensions"]["code"] == "not_found"


def test_parse_and_validation_errors(server):
    status, _, body = post(server.url, "query { demarche(number: 1) {")
    assert status == 400 and body["errors"][0]["extensions"]["code"] == "graphql_parse_failed"
    status, _, body = post(server.url, "query { demarche(number: 1) { nope } }")
    assert status == 200 and "nope" in body["errors"][0]["message"]


def test_requests_are_logged_without_token(server):
    post(server.url, DOSSIERS, {"number": PROC, "first": 1}, operation_name="Dossiers")
    last = server.requests[-1]
    assert last.operation_name == "Dossiers" and last.status == 200
    assert last.variables["first"] == 1
    assert TOKEN not in repr(server.requests)


# -- pagination ------------------------------------------------------------------

def test_pages_of_100_without_gaps_or_duplicates(server, store):
    pages = all_pages(server)
    assert [len(p) for p in pages] == [100, 100, 50]
    numbers = [n["number"] for page in pages for n in page]
    assert sorted(numbers) == sorted(store.procedure(PROC).dossiers)
    deposits = [datetime.fromisoformat(n["dateDepot"]) for page in pages for n in page]
    assert deposits == sorted(deposits)


def test_first_is_capped_and_negative_rejected(server):
    status, _, body = post(server.url, DOSSIERS, {"number": PROC, "first": 500})
    assert len(body["data"]["demarche"]["dossiers"]["nodes"]) == 100
    status, _, body = post(server.url, DOSSIERS, {"number": PROC, "first": -1})
    assert body["errors"][0]["extensions"]["code"] == "bad_request"
    query = "query { demarche(number: %d) { dossiers(first: 1, last: 1) { nodes { number } } } }" % PROC
    _, _, body = post(server.url, query)
    assert body["errors"][0]["message"] == 'Arguments "first" and "last" are exclusive'


def test_cursors_are_opaque_and_resume(server):
    _, _, body = post(server.url, DOSSIERS, {"number": PROC, "first": 3})
    first_page = body["data"]["demarche"]["dossiers"]
    _, _, body = post(server.url, DOSSIERS, {"number": PROC, "first": 3,
                                             "after": first_page["pageInfo"]["endCursor"]})
    second = [n["number"] for n in body["data"]["demarche"]["dossiers"]["nodes"]]
    _, _, body = post(server.url, DOSSIERS, {"number": PROC, "first": 6})
    assert [n["number"] for n in first_page["nodes"]] + second == \
        [n["number"] for n in body["data"]["demarche"]["dossiers"]["nodes"]]


# -- updatedSince, mutations, labels ---------------------------------------------

def test_updated_since_after_mutation(server, store):
    procedure = store.procedure(PROC)
    since = store.advance()
    numbers = sorted(procedure.dossiers)[:3]
    descriptor = next(d for d in procedure.active_revision["champDescriptors"] if d["label"] == "Prénom")
    store.update_champ(numbers[2], descriptor["id"], "Zoé-Éléonore")
    store.update_dossier(numbers[0], state="accepte", motivation="OK 👍")
    pages = all_pages(server, updatedSince=since)
    changed = [n["number"] for page in pages for n in page]
    assert changed == [numbers[2], numbers[0]]  # ordered by last update
    # createdSince is ignored when updatedSince is given
    pages = all_pages(server, updatedSince=since, createdSince="2099-01-01T00:00:00+01:00")
    assert [n["number"] for page in pages for n in page] == changed
    # updatedSince is inclusive (DS: `updated_at: since..`)
    exact = procedure.dossiers[numbers[0]]["dateDerniereModification"]
    assert numbers[0] in [n["number"] for p in all_pages(server, updatedSince=exact) for n in p]


def test_polling_with_fixed_updated_since_resumes_from_end_cursor(server, store):
    since = store.advance()
    first, second = sorted(store.procedure(PROC).dossiers)[10:12]
    store.update_dossier(first, archived=True)
    _, _, body = post(server.url, DOSSIERS, {"number": PROC, "updatedSince": since})
    connection = body["data"]["demarche"]["dossiers"]
    assert [n["number"] for n in connection["nodes"]] == [first]
    store.update_dossier(second, archived=True)
    _, _, body = post(server.url, DOSSIERS, {"number": PROC, "updatedSince": since,
                                             "after": connection["pageInfo"]["endCursor"]})
    assert [n["number"] for n in body["data"]["demarche"]["dossiers"]["nodes"]] == [second]


def test_labels_do_not_bump_modification_date(server, store):
    number = sorted(store.procedure(PROC).dossiers)[20]
    before = store.dossier(number)["dateDerniereModification"]
    since = store.advance()
    store.set_labels(number, ["Urgent", "À relancer"])
    assert store.dossier(number)["dateDerniereModification"] == before
    assert number not in [n["number"] for p in all_pages(server, updatedSince=since) for n in p]
    query = "query($n: Int!) { dossier(number: $n) { labels { name color } } }"
    _, _, body = post(server.url, query, {"n": number})
    assert [l["name"] for l in body["data"]["dossier"]["labels"]] == ["Urgent", "À relancer"]


def test_deleted_dossiers(server, store):
    number = sorted(store.procedure(PROC).dossiers)[-1]
    since = store.advance()
    store.delete_dossier(number, "user_request")
    query = """query($n: Int!, $since: ISO8601DateTime) { demarche(number: $n) {
      deletedDossiers(deletedSince: $since) { pageInfo { hasNextPage } nodes { number state reason dateSupression } }
      pendingDeletedDossiers { nodes { number reason } } } }"""
    _, _, body = post(server.url, query, {"n": PROC, "since": since})
    deleted = body["data"]["demarche"]["deletedDossiers"]["nodes"]
    assert [d["number"] for d in deleted] == [number] and deleted[0]["reason"] == "user_request"
    _, _, body = post(server.url, query, {"n": PROC})
    assert len(body["data"]["demarche"]["deletedDossiers"]["nodes"]) == 4
    assert len(body["data"]["demarche"]["pendingDeletedDossiers"]["nodes"]) == 1
    assert number not in [n["number"] for p in all_pages(server) for n in p]


# -- champs: backward-compatible typenames, ids -------------------------------

CHAMPS = """query($n: Int!) { dossier(number: $n) { champs { __typename id champDescriptorId label
  ... on CheckboxChamp { checked: value } %s } } }"""


def _dossier_with(store, typename: str) -> int:
    for number, dossier in store.procedure(PROC).dossiers.items():
        if any(c["__typename"] == typename for c in dossier["champs"]):
            return number
    raise AssertionError(typename)


def test_typename_backward_compatibility(server, store):
    number = _dossier_with(store, "YesNoChamp")
    _, _, body = post(server.url, CHAMPS % "", {"n": number})
    types = {c["label"]: c["__typename"] for c in body["data"]["dossier"]["champs"]}
    assert types["Le projet a-t-il déjà commencé ?"] == "CheckboxChamp"
    assert types["Date et heure du rendez-vous"] == "DateChamp"
    assert types["Département du projet"] == "TextChamp"
    assert types["Identité du porteur de projet"] == "TextChamp"
    assert "YesNoChamp" not in types.values()

    with_fragment = "... on YesNoChamp { yesNo: value } ... on DatetimeChamp { datetime }"
    _, _, body = post(server.url, CHAMPS % with_fragment, {"n": number})
    champs = {c["label"]: c for c in body["data"]["dossier"]["champs"]}
    assert champs["Le projet a-t-il déjà commencé ?"]["__typename"] == "YesNoChamp"
    assert champs["Date et heure du rendez-vous"]["__typename"] == "DatetimeChamp"
    assert champs["Département du projet"]["__typename"] == "TextChamp"  # no fragment on it


def test_named_fragment_also_counts(server, store):
    number = _dossier_with(store, "YesNoChamp")
    query = """query($n: Int!) { dossier(number: $n) { champs { __typename label ...yn } } }
               fragment yn on YesNoChamp { value }"""
    _, _, body = post(server.url, query, {"n": number})
    assert "YesNoChamp" in {c["__typename"] for c in body["data"]["dossier"]["champs"]}


def test_champ_ids_and_repetition_rows(server, store):
    number = next(n for n, d in store.procedure(PROC).dossiers.items()
                  if any(c["__typename"] == "RepetitionChamp" and c["rows"] for c in d["champs"]))
    query = """query($n: Int!) { dossier(number: $n) { champs { id champDescriptorId
      ... on IntegerNumberChamp { intValue: value }
      ... on RepetitionChamp { rows { id champs { id champDescriptorId label } } } } } }"""
    _, _, body = post(server.url, query, {"n": number})
    champs = body["data"]["dossier"]["champs"]
    assert all(c["id"] == c["champDescriptorId"] for c in champs)
    for champ in champs:
        if isinstance(champ.get("intValue"), int):
            raise AssertionError("BigInt must be sent as a string")
    repetition = next(c for c in champs if c.get("rows"))
    for row in repetition["rows"]:
        row_type, row_id = decode_id(row["id"])
        assert row_type == "Row"
        for sub in row["champs"]:
            kind, value = decode_id(sub["id"])
            stable, _, sub_row = value.partition("|")
            assert kind == "Champ" and sub_row == row_id
            assert decode_id(sub["champDescriptorId"])[1] == stable


def test_file_urls_are_served(server, store):
    number = next(n for n, d in store.procedure(PROC).dossiers.items()
                  if any(c.get("files") for c in d["champs"]))
    query = """query($n: Int!) { dossier(number: $n) { champs {
      ... on PieceJustificativeChamp { files { url filename contentType } } } } }"""
    _, _, body = post(server.url, query, {"n": number})
    file = next(f for c in body["data"]["dossier"]["champs"] for f in c.get("files", []))
    assert file["url"].startswith(server.base_url + "/files/")
    with urllib.request.urlopen(file["url"], timeout=5) as response:
        assert response.status == 200 and response.read()


# -- CORS and faults -----------------------------------------------------------

def _options(url: str):
    request = urllib.request.Request(url, method="OPTIONS", headers={
        "Origin": "http://localhost:8000", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers)


def test_cors_on(server):
    status, headers = _options(server.url)
    assert status == 204 and headers["Access-Control-Allow-Origin"] == "*"
    assert "authorization" in headers["Access-Control-Allow-Headers"]
    _, headers, _ = post(server.url, DOSSIERS, {"number": PROC, "first": 1})
    assert headers["Access-Control-Allow-Origin"] == "*"
    _, headers, _ = post(server.url, DOSSIERS, {"number": PROC}, token=None)
    assert headers["Access-Control-Allow-Origin"] == "*"


def test_cors_off(store):
    with FakeDSServer(store, tokens={TOKEN: "all"}, cors=False) as fake:
        status, headers = _options(fake.url)
        assert status == 404 and "Access-Control-Allow-Origin" not in headers
        _, headers, _ = post(fake.url, DOSSIERS, {"number": PROC, "first": 1})
        assert not any(h.lower().startswith("access-control") for h in headers)


def test_fail_next_and_rate_limit(server):
    server.rate_limit_next(reset_epoch=1_900_000_000)
    request = urllib.request.Request(server.url, data=b"{}", method="POST",
                                     headers={"Authorization": f"Bearer {TOKEN}"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    assert caught.value.code == 429 and caught.value.headers["RateLimit-Reset"] == "1900000000"
    assert caught.value.headers.get_content_type() == "text/plain"
    assert "Retry-After" not in caught.value.headers
    server.fail_next(500)
    status, _, body = post(server.url, DOSSIERS, {"number": PROC, "first": 1})
    assert status == 500 and body["errors"][0]["extensions"]["code"] == "internal_server_error"
    status, _, _ = post(server.url, DOSSIERS, {"number": PROC, "first": 1})
    assert status == 200


def test_delay_next_answers_late_and_normally(server):
    import time
    server.delay_next(0.6, match=lambda r: (r.variables or {}).get("first") == 2)
    started = time.monotonic()
    status, _, _ = post(server.url, DOSSIERS, {"number": PROC, "first": 1})  # not matched: at once
    assert status == 200 and time.monotonic() - started < 0.5
    started = time.monotonic()
    status, _, body = post(server.url, DOSSIERS, {"number": PROC, "first": 2})
    assert status == 200 and len(body["data"]["demarche"]["dossiers"]["nodes"]) == 2
    assert time.monotonic() - started >= 0.6
    started = time.monotonic()
    post(server.url, DOSSIERS, {"number": PROC, "first": 2})  # used up
    assert time.monotonic() - started < 0.5


# -- sample data -----------------------------------------------------------------

def test_samples_cover_every_type_and_conditions(server, store):
    schema = server.schema
    procedure = store.procedure(PROC)
    revision = procedure.active_revision

    def walk(descriptors):
        for descriptor in descriptors:
            yield descriptor
            yield from walk(descriptor.get("champDescriptors") or [])

    descriptors = list(walk(revision["champDescriptors"] + revision["annotationDescriptors"]))
    wanted = {t.name for t in schema.get_possible_types(schema.type_map["ChampDescriptor"])}
    assert wanted <= {d["__typename"] for d in descriptors}
    assert sum(d["__typename"] == "RepetitionChampDescriptor" for d in descriptors) >= 2
    champs = [c for d in procedure.dossiers.values() for c in d["champs"] + d["annotations"]]
    wanted = {t.name for t in schema.get_possible_types(schema.type_map["Champ"])}
    assert wanted <= {c["__typename"] for c in champs}
    conditional = next(d for d in revision["champDescriptors"] if d.get("condition"))
    carriers = [d for d in procedure.dossiers.values()
                if any(c["champDescriptorId"] == conditional["id"] for c in d["champs"])]
    assert 0 < len(carriers) < len(procedure.dossiers)  # absent where the condition hides it
    assert {d["state"] for d in procedure.dossiers.values()} == {
        "en_construction", "en_instruction", "accepte", "refuse", "sans_suite"}


def test_added_dossier_is_listed_last_by_update(server, store):
    since = store.advance()
    dossier = store.add_dossier(procedure_number=OTHER_PROC)
    _, _, body = post(server.url, DOSSIERS, {"number": OTHER_PROC, "updatedSince": since})
    assert [n["number"] for n in body["data"]["demarche"]["dossiers"]["nodes"]] == [dossier["number"]]


def test_an_answer_leaves_while_another_query_runs():
    """A query holds the store's lock while it runs (one consistent snapshot); an answer
    already made must not wait for it to send its `Date`: it leaves as soon as it is ready,
    as DS's do (else several streams' answers all come at once, after the last query ran)."""
    import threading
    import time

    store = FakeDSStore([sample_procedure(number=9, dossier_count=1)])
    with FakeDSServer(store, tokens={TOKEN: "all"}) as server:
        running, done = threading.Event(), threading.Event()

        def another_query():
            with store.lock:
                running.set()
                done.wait(5)

        threading.Thread(target=another_query, daemon=True).start()
        running.wait(5)
        started = time.monotonic()
        try:
            urllib.request.urlopen(urllib.request.Request(server.base_url + "/not-graphql", data=b"{}"), timeout=10)
        except urllib.error.HTTPError as error:
            assert error.code == 404 and error.headers["Date"]
        finally:
            waited = time.monotonic() - started
            done.set()
        assert waited < 1.0, f"the answer waited {waited:.1f} s for the other query"
