"""The DS client over real HTTP (CPython transport) against the fake DS server."""

from __future__ import annotations

import asyncio
import socket
from concurrent.futures import ThreadPoolExecutor

import pytest

from demo.fake_ds import FakeDSServer, FakeDSStore, sample_procedure
from py_core import errors
from py_core.ds_client import EPOCH, DSClient
from py_core.transport import UrllibTransport

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


def client(url, token=TOKEN):
    return DSClient(url, token, UrllibTransport(timeout=10))


async def collect(pages):
    return [page async for page in pages]


def test_structure_reads_descriptors_and_count(ds, store):
    structure = run(client(ds.url).structure(111))
    assert structure.number == 111 and structure.dossiers_count == 250
    assert [d.id for d in structure.revision.champ_descriptors] == [
        d["id"] for d in store.procedure(111).active_revision["champDescriptors"]]


def test_all_dossiers_in_pages_of_100_without_gaps_or_repeats(ds, store):
    ds_client = client(ds.url)
    pages = run(collect(ds_client.dossier_pages(111, None)))
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


def test_rate_limit_answer_is_explained(ds):
    import time

    ds.rate_limit_next(int(time.time()) + 30)
    with pytest.raises(errors.DSError) as caught:
        run(client(ds.url).structure(111))
    assert caught.value.code == "rate_limited" and "secondes" in caught.value.message_fr


def test_the_token_is_never_in_the_client_repr(ds):
    assert TOKEN not in repr(client(ds.url))
