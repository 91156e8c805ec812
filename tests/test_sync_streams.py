"""A full sync paged by several streams at once (windows of deposit date, `plan/windows.py`),
under Grist's engine (tests/lab.py): the copy is exact, a dossier modified while the windows
are paged is caught by the closing `updatedSince` pass, an interrupted one resumes
sequentially, a DS that answers two requests no faster than one gets no third stream, an
incremental sync's listing goes on by windows too, and the client never sends more than DS's
400 requests a minute."""

from __future__ import annotations


import asyncio
import contextlib
import json
import time

import pytest

from py_core import errors
from py_core.jobs import copy as sync, streams
from py_core.clock import Clock
from py_core.ds.client import DSClient
from py_core.ds.transport import Response
from py_core.plan import windows as plan_windows
from tests.grist_engine import engine_missing
from tests.lab import Lab, run

pytestmark = pytest.mark.skipif(bool(engine_missing()), reason=engine_missing() or "")


@pytest.fixture(autouse=True)
def streams_from_small_procedures(monkeypatch):
    monkeypatch.setattr(sync, "PARALLEL_FROM", 200)
    monkeypatch.setattr(plan_windows, "MIN_SPLIT", 100)


def far(lab, seconds=0.3):
    """Every DS answer waits `seconds` (the wait holds no lock: answers overlap, as a far DS's)."""
    lab.server.latency = seconds


@pytest.fixture
def near(monkeypatch):
    """DS's answers never say it is far (`FAR_S` out of reach), whatever the machine's load."""
    monkeypatch.setattr(sync, "FAR_S", 5.0)


@pytest.fixture
def one_stream(monkeypatch):
    """One sequential stream whatever the machine's load (`PARALLEL_FROM` out of reach)."""
    monkeypatch.setattr(sync, "PARALLEL_FROM", 10_000)


@pytest.fixture
def evidence(monkeypatch):
    """The evidence the copy decides on, set by the test rather than measured (timings of a
    shared machine are not): the copy always waited for its pages, DS took 1 s for the
    structure and `page_alone` s for a page alone (a far DS), and answered with several
    requests out in `value` times what it takes alone."""
    monkeypatch.setattr(sync, "WAITED_S", 0.0)
    monkeypatch.setattr(plan_windows, "WAITED_S", 0.0)
    ratio = {"value": 1.0, "page_alone": 1.0}

    def round_trip(self, query_name, *, out=1):
        alone = ratio["page_alone"] if query_name == "dossiers" else 1.0
        return alone if out == 1 else alone * ratio["value"]
    monkeypatch.setattr(DSClient, "round_trip", round_trip)
    return ratio


def dossier_requests(lab):
    return [r for r in lab.server.requests if r.operation_name == "otpDossiers"]


def closing_pass_noted(lab) -> list[bool]:
    """Filled when DS receives the closing pass's request (its answer comes `far` later)."""
    asked, answer = [], lab.server.answer

    def noted(path, authorization, body):
        since = (json.loads(body).get("variables") or {}).get("updatedSince")
        asked.extend([True] if since not in (None, "1970-01-01T00:00:00Z") else [])
        return answer(path, authorization, body)

    lab.server.answer = noted
    return asked


def slow_dossier_writes(lab, seconds: float, before=lambda: None):
    """Grist takes `seconds` to write each bundle adding dossiers, in its own thread as the
    widget's (the copy's tasks run meanwhile): pages read ahead wait in the queue. `before()`
    is called first. Returns the sink's own `apply`, to put back."""
    apply = lab.sink.apply

    async def slow_apply(actions):
        if any(a[0] == "BulkAddRecord" and a[1] == f"D{lab.number}_Dossiers" for a in actions):
            before()
            await asyncio.sleep(seconds)
        return await apply(actions)

    lab.sink.apply = slow_apply
    return apply


def windowed(lab):
    return [r for r in dossier_requests(lab) if (r.variables or {}).get("updatedSince") is None]


def test_a_page_s_rows_are_built_while_grist_writes_the_page_before(monkeypatch, one_stream):
    """Grist's work and OTP's run at once: the rows of page k+1 are built while the bundle of
    page k is applied (in Grist's own thread in the widget), not once it is written."""
    from py_core.grist.writer import Writer
    events: list[str] = []
    prepare = Writer.prepare

    def noted(self, dossiers, schema):
        events.append("rows")
        return prepare(self, dossiers, schema)

    monkeypatch.setattr(Writer, "prepare", noted)
    with Lab(dossiers=300) as lab:
        apply = lab.sink.apply

        async def slow_apply(actions):
            adds = any(a[0] == "BulkAddRecord" and a[1] == f"D{lab.number}_Dossiers" for a in actions)
            if adds:
                await asyncio.sleep(0.5)
            result = await apply(actions)
            events.extend(["written"] if adds else [])
            return result

        lab.sink.apply = slow_apply
        lab.sync()
        lab.assert_copy_exact()
    written = [i for i, kind in enumerate(events) if kind == "written"]
    assert len(written) == 3, events
    for page, at in enumerate(written[:-1]):  # page k+1's rows before page k's bundle was written
        assert events[:at].count("rows") == page + 2, events


def test_a_column_widened_by_one_page_is_not_widened_again_by_the_next_built_meanwhile(near):
    """Page k+1's rows are built while page k is written: when page k widens a column (an
    integer beyond 2**53: a Text), page k+1 is planned against the widened type, not the one
    it was built with — one `ModifyColumn` to Text, the copy exact."""
    with Lab(dossiers=201) as lab:
        count = lab.descriptor("IntegerNumberChampDescriptor", "Nombre de bénéficiaires")
        for number in lab.ds_numbers()[:2]:  # modified last: the last of page 2, the one of page 3
            lab.store.update_champ(number, count["id"], "12345678901234567891")
        modified, apply = [], lab.sink.apply

        async def slow_apply(actions):
            modified.extend(a for a in actions if a[0] == "ModifyColumn" and a[1] == f"D{lab.number}_Champs" and a[3].get("type") == "Text")
            if any(a[0] == "BulkAddRecord" and a[1] == f"D{lab.number}_Dossiers" for a in actions):
                await asyncio.sleep(0.5)  # Grist writing: page 3's rows are built meanwhile
            return await apply(actions)

        lab.sink.apply = slow_apply
        lab.sync()
        lab.assert_copy_exact()
        assert len(modified) == 1, modified
        assert lab.column("champs", lab.col_id("champs", count["id"]))["type"] == "Text"


def test_a_copy_slower_than_ds_is_paged_by_one_stream(near):
    with Lab(dossiers=320) as lab:
        # Grist takes longer to write a page than DS to answer one (0.3–0.4 s on a busy machine)
        lab.sink.before_apply = lambda actions: time.sleep(1.0) if any(a[0] == "BulkAddRecord" for a in actions) else None
        lab.sync()
        assert not windowed(lab), "the copy never waited for its pages: no window"
        assert len(dossier_requests(lab)) == 4
        lab.assert_copy_exact()


def test_a_far_ds_is_paged_by_windows_of_deposit_date_and_copied_exactly(evidence):
    with Lab(dossiers=900) as lab:
        far(lab)
        result = lab.sync()
        requests = dossier_requests(lab)
        assert requests[0].variables["updatedSince"] == "1970-01-01T00:00:00Z", "the first pages alone, checkpointed"
        starts = {(r.variables or {}).get("createdSince") for r in windowed(lab)}
        assert len(starts) >= 3, f"two windows, then more on evidence: {starts}"
        assert not any((r.variables or {}).get("state") for r in requests)
        # every dossier once, a few pages again (those paged before the windows, a page per cut)
        assert len(requests) <= 9 + 3 + len(starts) + 1, len(requests)
        assert result.added == 900 and not result.resumed
        lab.assert_copy_exact()
        again = lab.sync()  # incremental: one sequential stream
        assert again.added == 0 and again.updated == 0
        lab.assert_copy_exact()


@pytest.fixture
def most_streams(monkeypatch):
    """The most window streams that ran at once, per sync."""
    seen = []
    exit_ = streams.WindowStreams.__aexit__

    async def recorded(self, *exc):
        seen.extend([] if self.closed else [self.most])
        return await exit_(self, *exc)
    monkeypatch.setattr(streams.WindowStreams, "__aexit__", recorded)
    return seen


def test_a_ds_slower_with_two_requests_out_gets_no_third_stream(most_streams, evidence):
    evidence["value"] = 2.0  # a DS whose pages cost CPU time: two at once take twice as long
    evidence["page_alone"] = 1.8  # far too (1 s for the structure): 0.8 s of work a page
    with Lab(dossiers=900) as lab:
        result = lab.sync()
        assert most_streams == [2], "the probe (two windows), no third"
        assert len(dossier_requests(lab)) <= 9 + 2 + 2 + 1, "not three times the requests"
        assert result.added == 900
        lab.assert_copy_exact()


def slow_pages(lab, seconds: float) -> list[str]:
    """DS takes `seconds` more for each page of dossiers (its CPU: the structure comes quickly).
    Returns the pages' kinds in the order DS receives them ("window": by deposit date)."""
    received, answer = [], lab.server.answer

    def slower(path, authorization, body):
        delay, respond = answer(path, authorization, body)
        if b"otpDossiers" not in body:
            return delay, respond
        variables = json.loads(body).get("variables") or {}
        received.append("window" if variables.get("updatedSince") is None else "sequential")
        return delay + seconds, respond

    lab.server.answer = slower
    return received


def slow_tables(lab, seconds: float) -> list[float]:
    """Making the procedure's tables takes `seconds` (Grist's time: the copy's tasks run
    meanwhile). Returns when the first page of dossiers was written, once it was."""
    apply, written = lab.sink.apply, []

    async def slower(actions):
        if any(a[0] == "AddTable" and a[1] == f"D{lab.number}_Dossiers" for a in actions):
            await asyncio.sleep(seconds)
        if not written and any(a[0] == "BulkAddRecord" and a[1] == f"D{lab.number}_Dossiers" for a in actions):
            written.append(time.monotonic())
        return await apply(actions)

    lab.sink.apply = slower
    return written


def test_a_first_page_read_while_the_tables_are_made_counts_as_waited_for_when_ds_was_slower(near):
    """DS answers the structure quickly but takes its time for each page (not far: busy). The
    first page comes while the copy makes its tables: it did not wait for it, but DS took
    longer to answer than the copy to write it, as it will for the next: two pages, not three,
    before the windows."""
    with Lab(dossiers=900) as lab:
        received = slow_pages(lab, 0.6)
        slow_tables(lab, 1.0)
        lab.sync()
        # two pages, then the windows (page 3 may have been asked as page 2 was taken: not wanted)
        assert received[:2] == ["sequential"] * 2 and received.index("window") in (2, 3), received
        lab.assert_copy_exact()


def test_a_far_ds_s_windows_start_once_its_first_page_came_while_the_tables_are_made(monkeypatch):
    """DS took long for the structure and for the first page, asked beside it: two answers
    that say it is far, and the page took it no longer than the structure: its time is
    distance. Four windows start as soon as that page came, while the tables are made, not
    once pages were written; no second page is asked for in order of modification."""
    monkeypatch.setattr(plan_windows, "PAGE_WORK", 10.0)  # the fake's CPU for a page, whatever the load, is not work here
    with Lab(dossiers=900) as lab:
        far(lab, 0.8)  # 4 round trips of 0.8 s a second stay under 90 % of DS's rate
        received = slow_pages(lab, 0.0)
        written = slow_tables(lab, 1.5)
        requests = lab.server.requests
        lab.sync()
        lab.assert_copy_exact()
        pages = [r for r in requests if r.operation_name == "otpDossiers"]
        assert received[:5] == ["sequential"] + ["window"] * 4, received
        assert received.count("sequential") == 2, "the first page, and the closing pass"
        assert all(r.received < written[0] for r in pages[1:5]), "the four windows asked before any write"
        assert len({r.variables.get("createdSince") for r in pages[1:5]}) == 4, "four windows, not two paged twice"


def test_a_copy_that_waits_only_after_its_first_pages_is_not_probed(monkeypatch, evidence):
    monkeypatch.setattr(sync, "FAR_S", 2.0)  # the structure came quickly: DS is not far
    # its waits count from the 4th page: paging again what was written would cost more than windows save
    monkeypatch.setattr(sync, "WAITS_TO_PROBE", sync.PROBE_WITHIN + 1)
    with Lab(dossiers=900) as lab:
        lab.sync()
        assert not windowed(lab) and len(dossier_requests(lab)) == 9
        lab.assert_copy_exact()


def test_a_ds_as_fast_with_several_requests_out_gets_more_streams(most_streams, evidence):
    with Lab(dossiers=900) as lab:
        lab.sync()
        assert most_streams and most_streams[0] >= 3
        lab.assert_copy_exact()


class _Server:
    """A DS 50 ms away that serves its requests side by side, or one at a time (`serial`: a
    DS whose pages cost CPU time)."""

    def __init__(self, serial: bool):
        self.serial = serial
        self.lock = None

    async def post(self, url, headers, body):
        self.lock = self.lock or asyncio.Lock()
        async with self.lock if self.serial else contextlib.nullcontext():
            await asyncio.sleep(0.05)
        return Response(200, b'{"data": {"demarche": {"number": 1}}}', {})


@pytest.mark.parametrize("serial, paid", [(False, True), (True, False)])
@pytest.mark.parametrize("one_alone", [True, False], ids=["one alone", "never alone"])
def test_whether_a_second_request_out_paid_is_measured(serial, paid, one_alone):
    """Never alone: the listing's first light pages go out beside the structure (its answer
    arrived but not taken yet when the next page goes): the fastest answer stands for alone."""
    client = DSClient("http://x/api/v2/graphql", "jeton", _Server(serial))

    async def measure():
        if one_alone:
            await client.execute("structure", {"number": 1}, number=1)
        for _ in range(3):
            await asyncio.gather(*(client.execute("structure", {"number": 1}, number=1) for _ in range(2)))
        return client.round_trip("structure"), client.round_trip("structure", out=2)

    alone, together = run(measure())
    assert alone == pytest.approx(0.05, abs=0.04)
    # the second request out paid: twice the pages a second, or the same (`wanted_streams`)
    assert (2 / together >= plan_windows.GAIN / alone) == paid, (alone, together)


def test_a_dossier_modified_after_its_window_passed_is_caught_by_the_closing_pass(evidence):
    with Lab(dossiers=600) as lab:
        far(lab)
        procedure = lab.store.procedure(lab.number)
        oldest = min(procedure.dossiers.values(), key=lambda d: d["dateDepot"])["number"]
        moved = {"done": False}

        def before_apply(_actions):
            passed = [r for r in windowed(lab) if r.variables.get("createdSince") is None and r.status == 200]
            if not moved["done"] and len(passed) >= 2:  # the first window went past its oldest dossier
                lab.store.update_dossier(oldest, state="accepte", motivation="accepté pendant la synchro")
                moved["done"] = True

        lab.sink.before_apply = before_apply
        lab.sync()
        assert moved["done"]
        closing = [r for r in dossier_requests(lab) if r.variables.get("updatedSince") not in (None, "1970-01-01T00:00:00Z")]
        assert len(closing) == 1, "one closing page: only what changed meanwhile"
        row = next(r for r in lab.rows("dossiers") if r["Numero"] == oldest)
        assert row["Motivation"] == "accepté pendant la synchro"
        lab.assert_copy_exact()


def test_the_closing_pass_is_asked_while_the_last_windows_pages_are_written(evidence):
    """A far DS's closing pass costs no round trip of its own: it is asked as soon as every
    window was paged, while the copy still writes the pages read ahead."""
    with Lab(dossiers=900) as lab:
        far(lab)
        closing_asked, writes_after = closing_pass_noted(lab), []  # per bundle adding dossiers: was it asked?
        slow_dossier_writes(lab, 0.3, before=lambda: writes_after.append(bool(closing_asked)))
        lab.sync()
        assert windowed(lab)
        assert writes_after.count(True) >= 1, f"dossiers written after the closing pass was asked: {writes_after}"
        lab.assert_copy_exact()


def test_a_first_copy_s_bin_and_charts_come_while_ds_answers_its_closing_pass(evidence):
    """A first copy (no dossier in the document before it) has no listing to wait for: DS's
    bin is asked for and the dashboard's charts made once the windows' pages are written,
    while DS answers the closing pass, whose dossiers are written after them."""
    with Lab(dossiers=600) as lab:
        far(lab)
        procedure = lab.store.procedure(lab.number)
        oldest = min(procedure.dossiers.values(), key=lambda d: d["dateDepot"])["number"]
        events: list[str] = []

        def before_apply(actions):
            passed = [r for r in windowed(lab) if r.variables.get("createdSince") is None and r.status == 200]
            if "modified" not in events and len(passed) >= 2:  # caught by the closing pass only
                lab.store.update_dossier(oldest, state="accepte", motivation="accepté pendant la synchro")
                events.append("modified")
            if any(a[0] == "CreateViewSection" and a[3] == "chart" for a in actions):
                events.append("charts")
            if any(a[1] == f"D{lab.number}_Dossiers" and "pendant la synchro" in json.dumps(a, default=str) for a in actions):
                events.append("closing")

        client = lab.client()
        post = client.transport.post

        async def noted_post(url, headers, body):
            events.extend(["bin"] if b"otpDeletedDossiers" in body else [])
            return await post(url, headers, body)

        client.transport.post = noted_post
        lab.sink.before_apply = before_apply
        lab.sync(client=client)
        row = next(r for r in lab.rows("dossiers") if r["Numero"] == oldest)
        assert row["Motivation"] == "accepté pendant la synchro"
        lab.assert_copy_exact()
        assert events.index("bin") < events.index("closing") and events.index("charts") < events.index("closing"), events


def test_an_interrupted_window_sync_resumes_as_one_sequential_stream(evidence):
    with Lab(dossiers=600) as lab:
        far(lab)
        calls = {"n": 0}

        def cancel_in_the_windows():
            calls["n"] += 1
            return calls["n"] > 5

        with pytest.raises(errors.OTPError) as caught:
            lab.sync(should_cancel=cancel_in_the_windows)
        assert caught.value.code == "cancelled"
        assert windowed(lab), "it was interrupted while the windows were paged"
        before = len(dossier_requests(lab))
        result = lab.sync()
        assert result.resumed
        assert all((r.variables or {}).get("updatedSince") for r in dossier_requests(lab)[before:])
        lab.assert_copy_exact()
        assert lab.sync().added == 0


def test_a_copy_interrupted_once_its_closing_pass_was_asked_stops_cleanly_and_resumes(evidence):
    """Interrupted after the closing pass was asked, with window pages still to write: the
    closing pass's request is dropped with the rest, and the next copy is exact."""
    with Lab(dossiers=900) as lab:
        far(lab)
        closing_asked = closing_pass_noted(lab)
        apply = slow_dossier_writes(lab, 0.3)
        with pytest.raises(errors.OTPError) as caught:
            lab.sync(should_cancel=lambda: bool(closing_asked))
        assert caught.value.code == "cancelled" and closing_asked
        lab.sink.apply = apply
        assert lab.sync().resumed
        lab.assert_copy_exact()


def listing_requests(lab, since: int = 0):
    return [r for r in lab.server.requests[since:] if r.operation_name == "otpRefresh"]


def test_a_far_ds_s_listing_goes_on_by_windows_of_deposit_date(most_streams, evidence):
    with Lab(dossiers=900) as lab:
        lab.sync()
        lab.sync()  # the dossiers copied in the second of their date fetched again: settled
        far(lab)
        procedure = lab.store.procedure(lab.number)
        by_deposit = sorted(procedure.dossiers.values(), key=lambda d: d["dateDepot"])
        changed = [d["number"] for d in by_deposit[::150]]  # from the first deposit to the last
        for number in changed:
            lab.store.advance(1)
            lab.store.update_dossier(number, state="accepte", motivation="accepté depuis la copie")
            lab.agent_edit(number, f"suivi {number}")
        before, most_streams[:] = len(lab.server.requests), []
        result = lab.sync()
        listing = listing_requests(lab, before)
        starts = [r.variables.get("createdSince") for r in listing]
        assert starts[:2] == [None, None], "the first light pages alone, in deposit order"
        assert len(set(starts)) >= 4 and most_streams[0] >= 3, "windows from the last deposit listed, more on evidence"
        # every light page once, a page again where each window starts
        assert len(listing) <= 9 + len(set(starts)), len(listing)
        assert result.updated == len(changed) and result.deleted == 0 and result.added == 0
        for number in changed:
            row = next(r for r in lab.rows("dossiers") if r["Numero"] == number)
            assert row["Motivation"] == "accepté depuis la copie"
        assert lab.agent_cells() == {n: f"suivi {n}" for n in changed}, "the agents' cells kept"
        lab.assert_copy_exact()


def test_a_listing_interrupted_in_its_windows_lists_again_and_loses_nothing(evidence):
    with Lab(dossiers=900) as lab:
        lab.sync()
        lab.sync()
        far(lab)
        numbers = lab.dossier_numbers()
        changed = numbers[::200]
        for number in changed:
            lab.store.advance(1)
            lab.store.update_dossier(number, state="refuse", motivation="refusé depuis la copie")
            lab.agent_edit(number, f"suivi {number}")
        before = len(lab.server.requests)

        def cancel_in_the_windows():
            return any(r.variables.get("createdSince") and r.status == 200 for r in listing_requests(lab, before))

        with pytest.raises(errors.OTPError) as caught:
            lab.sync(should_cancel=cancel_in_the_windows)
        assert caught.value.code == "cancelled"
        result = lab.sync()
        assert result.updated == len(changed) and result.deleted == 0 and result.added == 0
        assert sorted(lab.dossier_numbers()) == sorted(numbers), "no dossier lost or twice"
        assert lab.agent_cells() == {n: f"suivi {n}" for n in changed}
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


def test_a_full_copy_asks_for_its_first_pages_alongside_the_structure_and_dates_itself_before_them(one_stream):
    """A far DS's round trips are not paid one after the other: the first page goes out with
    the structure, the second as soon as the first came (while the tables are prepared). The
    copy is dated by DS's clock before either left (`Relire_depuis`: the next copy reads again
    from there, less SETTLE_S), though the structure's answer came after them."""
    from py_core.ds.dates import iso_second
    from py_core.grist.values import datetime_cell
    from py_core.jobs.copy_kind import SETTLE_S
    with Lab(dossiers=300) as lab:
        far(lab, 0.3)
        written: list[float] = []
        apply = lab.sink.apply

        async def noted(actions):  # when the first page was written
            result = await apply(actions)
            if not written and any(a[0] == "BulkAddRecord" and a[1] == f"D{lab.number}_Dossiers" for a in actions):
                written.append(time.monotonic())
            return result

        lab.sink.apply = noted
        lab.sync()
        lab.assert_copy_exact()
        structure = next(r for r in lab.server.requests if r.operation_name == "otpStructure")
        first, second = dossier_requests(lab)[:2]
        assert first.received < structure.answered, "the first page waits for the structure's answer"
        assert second.received < written[0], "the second page waits for the first to be written"
        ds_clock_then = lab.store.wall() - (time.monotonic() - first.received)
        reread = datetime_cell(lab.sink.records("OTP_Demarches")[0]["Relire_depuis"])
        assert reread <= ds_clock_then - SETTLE_S, (iso_second(reread), iso_second(ds_clock_then))


def test_a_copy_that_resumes_asks_for_no_first_page_beside_the_structure(near):
    """The lease carries an interrupted copy's checkpoint: no first page is asked for beside
    the structure; the copy goes on after the pages it wrote before."""
    with Lab(dossiers=300) as lab:
        calls = {"n": 0}

        def cancel_after_two_pages():
            calls["n"] += 1
            return calls["n"] > 2
        with pytest.raises(errors.OTPError):
            lab.sync(should_cancel=cancel_after_two_pages)
        assert 0 < len(lab.rows("dossiers")) < 300
        lab.server.requests.clear()
        lab.sync()
        lab.assert_copy_exact()
        resumed = [r for r in dossier_requests(lab) if (r.variables or {}).get("updatedSince") == "1970-01-01T00:00:00Z"]
        assert resumed and all(r.variables.get("after") for r in resumed), "after the pages written before"


def test_a_copy_that_fails_while_its_probe_s_windows_are_out_stops_them_and_is_copied_next_time(monkeypatch):
    """Grist refuses the tables while the four windows of a far DS are out: the copy stops
    with its French message, its windows are stopped by the copy itself (in the widget the
    loop goes on: nothing else would stop them), and the next copy is exact."""
    started = []
    enter = streams.WindowStreams.__aenter__

    async def noted(self):
        started.append(self)
        return await enter(self)
    monkeypatch.setattr(streams.WindowStreams, "__aenter__", noted)
    with Lab(dossiers=900) as lab:
        far(lab, 0.8)
        apply = lab.sink.apply

        async def refusing(actions):
            if any(a[0] == "AddTable" and a[1] == f"D{lab.number}_Dossiers" for a in actions):
                await asyncio.sleep(1.2)  # the windows went out meanwhile
                raise errors.grist_write_failed("Grist refuse", [f"D{lab.number}_Dossiers"])  # as the widget's bridge does
            return await apply(actions)

        lab.sink.apply = refusing
        with pytest.raises(errors.OTPError) as caught:
            lab.sync()
        assert "Grist" in caught.value.message_fr
        assert len(windowed(lab)) >= 4, "the probe's windows were out"
        assert started and all(w.closed for w in started), "every window stream stopped by the copy"
        lab.sink.apply = apply
        lab.sync()
        lab.assert_copy_exact()
