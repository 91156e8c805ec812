"""The DS client against the fake DS: over real HTTP (CPython transport), and in process
(`FakeDSTransport`) where its waits are tested on a clock that takes no time."""

from __future__ import annotations

import asyncio
import email.utils
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from demo.fake_ds import FakeDSServer, FakeDSStore, sample_procedure
from demo.fake_ds.transport import FakeDSTransport
from py_core import errors
from py_core.clock import Clock
from py_core.progress import Progress
from py_core.ds.client import EPOCH, DSClient
from py_core.ds.transport import Response, UrllibTransport
from tests.lab import run
from tests.virtual_clock import VirtualClock

TOKEN = "jeton-client"


@pytest.fixture(scope="module")
def store():
    return FakeDSStore([sample_procedure(number=111, dossier_count=250, seed=5)])


@pytest.fixture(scope="module")
def ds(store):
    with FakeDSServer(store, tokens={TOKEN: "all"}, expired_tokens=("perime",)) as server:
        yield server


def run(coroutine):
    """Run in a thread of its own: the browser tests' Playwright keeps an event loop running."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def client(url, token=TOKEN, **options):
    return DSClient(url, token, UrllibTransport(timeout=options.pop("timeout", 10)), retry_base=0.01, **options)


async def collect(pages):
    return [page async for page in pages]


def test_structure_reads_descriptors_and_count(ds, store):
    structure = run(client(ds.url).structure(111))
    assert structure.number == 111 and structure.dossiers_count == 250
    assert [d.id for d in structure.revision.champ_descriptors] == [
        d["id"] for d in store.procedure(111).active_revision["champDescriptors"]]


def test_all_dossiers_in_pages_of_100_without_gaps_or_repeats(ds, store):
    ds_client = client(ds.url)
    pages = run(collect(ds_client.dossier_pages(111, EPOCH)))
    assert [len(p.nodes) for p in pages] == [100, 100, 50]
    numbers = [d.number for p in pages for d in p.nodes]
    assert sorted(numbers) == sorted(store.procedure(111).dossiers) and len(set(numbers)) == 250
    assert ds_client.request_count == 3
    sent = [r for r in ds.requests if r.operation_name == "otpDossiers"][-3:]
    assert all(r.variables["updatedSince"] == EPOCH and r.variables["first"] == 100 for r in sent)


def test_updated_since_returns_only_modified_dossiers(ds, store):
    since = store.advance()
    number = sorted(store.procedure(111).dossiers)[10]
    store.update_dossier(number, motivation="Pièces reçues")
    pages = run(collect(client(ds.url).dossier_pages(111, since)))
    assert [d.number for p in pages for d in p.nodes] == [number]


@pytest.mark.parametrize("token,code", [("perime", "token_expired"), ("inconnu", "token_rejected")])
def test_auth_failures_over_http(ds, token, code):
    with pytest.raises(errors.DSError) as caught:
        run(client(ds.url, token).structure(111))
    assert caught.value.code == code


def test_closed_port_is_unreachable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(errors.DSError) as caught:
        run(client(f"http://127.0.0.1:{port}/api/v2/graphql").structure(111))
    assert caught.value.code == "unreachable"


def in_process(ds, clock: VirtualClock, events=None, **options) -> DSClient:
    """The client on the fake DS without a socket, on a clock whose waits take no time."""
    transport = FakeDSTransport(ds, clock.sleep, timeout=options.pop("timeout", 10))
    return DSClient(ds.url, TOKEN, transport, progress=Progress((events if events is not None else []).append),
                    clock=clock.clock(), **options)


def test_rate_limit_waits_until_reset_with_a_countdown_then_goes_on(ds):
    clock, events = VirtualClock(time.time()), []
    ds.rate_limit_next(int(clock.now()) + 2)
    structure = run(in_process(ds, clock, events).structure(111))
    assert structure.number == 111
    countdown = [e["seconds"] for e in events if e["kind"] == "wait"]
    assert countdown and countdown == sorted(countdown, reverse=True) and countdown[-1] == 1
    assert "reprise automatique" in events[0]["message"] and 1 <= sum(clock.slept) <= 2


def test_server_errors_and_silence_are_retried_with_backoff(ds):
    ds.fail_next(502, "<html>Bad gateway</html>", "text/html")
    ds.fail_next(500)
    ds.delay_next(60)
    clock, events = VirtualClock(), []
    ds_client = in_process(ds, clock, events, timeout=40)
    assert run(ds_client.structure(111)).number == 111
    assert ds_client.request_count == 4
    waits = list(dict.fromkeys(e["message"].split(" :")[0] for e in events if e["kind"] == "wait"))
    assert waits == ["DS a répondu par une erreur 502", "DS a répondu par une erreur 500", "DS ne répond pas (délai dépassé)"]
    assert clock.slept[0] == 1.0 and 40 in clock.slept, "backoff from 1 s; a silent DS waited for 40 s"


def test_retries_are_bounded_then_the_agent_is_told(ds):
    ds.fail_next(503, count=5)
    clock = VirtualClock()
    with pytest.raises(errors.DSError) as caught:
        run(in_process(ds, clock, max_retries=2).structure(111))
    assert caught.value.code == "server_error"
    assert sum(clock.slept) == 1 + 2, "two retries, after 1 s then 2 s"
    ds._faults.clear()


def test_a_request_silent_too_long_is_aborted_and_reported(ds):
    ds.delay_next(100, count=3)
    with pytest.raises(errors.DSError) as caught:
        run(in_process(ds, VirtualClock(), max_retries=1, timeout=40).structure(111))
    assert caught.value.code == "timeout" and "ne répond plus" in caught.value.message_fr


def test_a_request_silent_too_long_over_real_http_is_aborted_too(ds):
    """The same over a socket: the CPython transport's own timeout."""
    ds.delay_next(1.0, count=3)
    with pytest.raises(errors.DSError) as caught:
        run(client(ds.url, max_retries=1, timeout=0.3).structure(111))
    assert caught.value.code == "timeout"


def test_the_token_is_never_in_the_client_repr(ds):
    assert TOKEN not in repr(client(ds.url))


class _Dated:
    """A DS whose answers carry the `Date` of its clock, `skew` seconds ahead of ours, and come
    after `seconds` of our clock (`ticks`: our monotonic clock, moved by the answers only)."""

    def __init__(self, skew: float, ticks: list[float]):
        self.skew, self.ticks, self.seconds = skew, ticks, 0.0

    async def post(self, url, headers, body):
        self.ticks[0] += self.seconds
        stamp = 1_800_000_000 + self.ticks[0] + self.skew
        return Response(200, b'{"data": {"demarche": {"number": 1}}}', {"date": email.utils.formatdate(stamp, usegmt=True)})


@pytest.mark.parametrize("round_trips, skew, moment, expected", [
    ([0.4], 0.0, 0.0, -0.4),  # came at 0.4, dated 0 (whole seconds): DS read at least -0.4 at 0
    ([0.4], 7.5, 0.0, 6.6),  # its clock 7.5 s ahead: dated 7 at 0.4
    ([0.9, 0.1], 0.0, 0.0, 0.0),  # the next answer, dated a second later, bounds it better
    ([1.0, 1.0], 0.0, 1.0, 1.0),  # at our 1.0, whichever answer says so
    ([1.0, 1.0], 0.0, 0.0, 0.0),
])
def test_ds_s_clock_when_the_copy_began_is_bounded_by_its_answers(round_trips, skew, moment, expected):
    """`DSClient.clock_at`: DS's clock at a moment of ours, at least — whether its answers
    were asked before or after it (a copy's first pages go out beside the structure)."""
    ticks = [0.0]
    server = _Dated(skew, ticks)
    client = DSClient("http://x/api/v2/graphql", TOKEN, server, clock=Clock(monotonic=lambda: ticks[0]))

    async def ask():
        for seconds in round_trips:
            server.seconds = seconds
            await client.execute("structure", {"number": 1}, number=1)
        return client.clock_at(moment)

    bound = run(ask()) - 1_800_000_000
    assert bound == pytest.approx(expected, abs=1e-3)


@pytest.mark.parametrize("answers, out, expected", [
    ([1.0], 1, 1.0),
    ([], 2, None),
    ([1.0], 2, None),  # one of the two answers out together: not yet
    ([1.0, 1.4], 2, 1.4),  # both came: the slower (a DS that serves one at a time makes the other wait)
    ([1.0, 1.0, 1.2], 4, None),
    ([1.0, 1.0, 1.2, 2.0], 4, 1.2),  # a step of four is measured when its four answers came
])
def test_a_round_trip_with_several_out_is_known_once_as_many_answers_came(answers, out, expected):
    client = DSClient("http://x/api/v2/graphql", TOKEN, _Dated(0.0, [0.0]))
    client.round_trips.extend(("dossiers", seconds, out) for seconds in answers)
    if out == 1 and not answers:
        client.round_trips.clear()
    assert client.round_trip("dossiers", out=out) == expected
