"""A full sync paged by several streams at once (one per dossier state), under Grist's engine
(tests/lab.py): the copy is exact, a dossier that moves from one stream to another while they
run is caught by the closing `updatedSince` pass, an interrupted one resumes sequentially, and
the client never sends more than DS's 400 requests a minute."""

from __future__ import annotations


import pytest

from py_core import errors
from py_core.jobs import copy as sync
from py_core.clock import Clock
from py_core.ds.client import DSClient
from py_core.ds.transport import Response
from tests.grist_engine import engine_missing
from tests.lab import Lab, run

pytestmark = pytest.mark.skipif(bool(engine_missing()), reason=engine_missing() or "")


@pytest.fixture(autouse=True)
def streams_from_small_procedures(monkeypatch):
    monkeypatch.setattr(sync, "PARALLEL_FROM", 200)
    monkeypatch.setattr(sync, "PARALLEL_LATENCY_S", 0.0)


def test_a_ds_next_door_is_paged_by_one_stream(monkeypatch):
    monkeypatch.setattr(sync, "PARALLEL_LATENCY_S", 30.0)
    with Lab(dossiers=320) as lab:
        lab.sync()
        assert all((r.variables or {}).get("state") is None for r in dossier_requests(lab))
        lab.assert_copy_exact()


def dossier_requests(lab):
    return [r for r in lab.server.requests if r.operation_name == "otpDossiers"]


def test_a_full_sync_pages_one_stream_per_state_and_copies_exactly():
    with Lab(dossiers=320) as lab:
        result = lab.sync()
        requests = dossier_requests(lab)
        assert requests[0].variables.get("state") is None, "the first page alone, checkpointed"
        states = {(r.variables or {}).get("state") for r in requests[1:]}
        assert set(sync.STATES) <= states, states
        assert result.added == 320 and not result.resumed
        lab.assert_copy_exact()
        again = lab.sync()  # incremental: one sequential stream
        assert again.added == 0 and again.updated == 0
        lab.assert_copy_exact()


def test_a_dossier_moving_to_a_stream_already_finished_is_caught_by_the_closing_pass():
    with Lab(dossiers=320) as lab:
        procedure = lab.store.procedure(lab.number)
        moving = max((d for d in procedure.dossiers.values() if d["state"] == "en_construction"),
                     key=lambda d: d["dateDerniereModification"])["number"]
        # The en_construction stream is slow: the others finish first, then the dossier moves.
        lab.server.delay_next(1.0, count=5, match=lambda r: (r.variables or {}).get("state") == "en_construction")
        done = lambda state: any((r.variables or {}).get("state") == state and r.status == 200  # noqa: E731
                                 for r in dossier_requests(lab))
        moved = {"done": False}

        def before_apply(_actions):
            if not moved["done"] and done("accepte"):
                lab.store.update_dossier(moving, state="accepte", motivation="accepté pendant la synchro")
                moved["done"] = True

        lab.sink.before_apply = before_apply
        lab.sync()
        assert moved["done"]
        closing = [r for r in dossier_requests(lab) if r.variables["updatedSince"] != "1970-01-01T00:00:00Z"]
        assert {r.variables.get("state") for r in closing} >= set(sync.STATES), "the closing pass ran, one stream per state"
        row = next(r for r in lab.rows("dossiers") if r["Numero"] == moving)
        assert row["Motivation"] == "accepté pendant la synchro"
        lab.assert_copy_exact()


def test_an_interrupted_stream_sync_resumes_as_one_sequential_stream():
    with Lab(dossiers=320) as lab:
        calls = {"n": 0}

        def cancel_after_two_pages():
            calls["n"] += 1
            return calls["n"] > 2

        with pytest.raises(errors.OTPError) as caught:
            lab.sync(should_cancel=cancel_after_two_pages)
        assert caught.value.code == "cancelled"
        before = len(dossier_requests(lab))
        result = lab.sync()
        assert result.resumed
        assert all((r.variables or {}).get("state") is None for r in dossier_requests(lab)[before:])
        lab.assert_copy_exact()
        assert lab.sync().added == 0


def test_dossiers_a_stream_did_not_list_are_listed_before_anything_is_removed(monkeypatch):
    with Lab(dossiers=320) as lab:
        lab.sync()
        # A state no stream pages (one DS would add): the next full sync must not remove them.
        monkeypatch.setattr(sync, "STATES", tuple(s for s in sync.STATES if s != "sans_suite"))
        row = lab.sink.records("OTP_Demarches")[0]
        lab.sink.apply_now([["UpdateRecord", "OTP_Demarches", row["id"], {"Curseur": ""}]])
        before = len(lab.server.requests)
        result = lab.sync()
        assert result.deleted == 0 and not result.incremental
        assert any(r.operation_name == "otpRefresh" for r in lab.server.requests[before:])
        lab.assert_copy_exact()


class _Transport:
    def __init__(self):
        self.posts = 0

    async def post(self, url, headers, body):
        self.posts += 1
        return Response(200, b'{"data": {"demarche": {"number": 1}}}', {})


def test_the_client_never_sends_more_than_400_requests_a_minute():
    now = {"t": 1000.0}
    waited = []

    async def sleep(seconds):
        waited.append(seconds)
        now["t"] += seconds

    client = DSClient("http://x/api/v2/graphql", "jeton", _Transport(),
                      clock=Clock(now=lambda: now["t"], monotonic=lambda: now["t"], sleep=sleep))

    async def burst(n):
        for _ in range(n):
            await client.execute("structure", {"number": 1}, number=1)
            now["t"] += 0.01

    run(burst(400))  # in a thread: the browser tests leave an event loop running
    assert not waited
    run(burst(1))
    assert sum(waited) == pytest.approx(60 - 400 * 0.01, abs=0.05)
    sent = sorted(client.sent)
    assert all(sent[i + 400] - sent[i] >= 60 - 1e-6 for i in range(len(sent) - 400))
