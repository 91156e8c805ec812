"""« Envoyer vers DS » at scale (issue 19): N annotation changes in N dossiers, previewed then sent.

    python3 -m tests.bench.send [--dossiers 1000] [--latency 0.0,0.2]

Grist's engine as the document (CPython), the fake DS in-process (`FakeDSTransport`: the real
schema and mutations, its latency really slept, so that dossiers sent at once overlap), the
client's waits for DS's limit of 400 requests a minute really waited: a run of 1,000 takes
minutes. Prints, per latency: the DS
requests of each step (preview, send), the time the send takes against DS's clock (the floor:
N requests at 400 a minute), and the CPU time OTP spends (the engine's included). Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

from demo.fake_ds import FakeDSServer, FakeDSStore, sample_procedure
from demo.fake_ds.transport import FakeDSTransport
from py_core.ds.client import DSClient
from py_core.jobs import send as send_job
from py_core.jobs.copy import synchronise
from py_core.jobs.params import parse_params, parse_send_params
from py_core.progress import Progress
from tests.grist_engine import EngineSink

TOKEN, NUMBER, SENDER = "jeton-banc", 4242, "instructeur2@exemple.gouv.fr"
RATE_PER_MIN = 400


def _client(server: FakeDSServer) -> DSClient:
    return DSClient("http://fake.invalid/api/v2/graphql", TOKEN, FakeDSTransport(server, asyncio.sleep), progress=Progress())


def _raw(**extra) -> dict:
    return {"demarche": str(NUMBER), "token": TOKEN, "endpoint": "http://fake.invalid/api/v2/graphql",
            "holder": "banc/onglet", "instructeur": SENDER, **extra}


def _annotation_edits(sink: EngineSink, store: FakeDSStore) -> int:
    """The « Note » annotation of every dossier set to a new value, by hand (one bundle)."""
    registry = {(r["Cle"]): r for r in sink.records("OTP_Tables") if r["Demarche"] == NUMBER}
    table = registry["annotations"]["Table_id"]
    note = next(d["id"] for d in store.procedure(NUMBER).active_revision["annotationDescriptors"]
                if d["__typename"] == "IntegerNumberChampDescriptor")
    col = next(r["Col_id"] for r in sink.records("OTP_Colonnes") if r["Demarche"] == NUMBER and r["Table_id"] == table
               and r["Cle"] == note)
    rows = sink.records(table)
    sink.apply_now([["BulkUpdateRecord", table, [r["id"] for r in rows], {col: [1000 + i for i in range(len(rows))]}]])
    return len(rows)


async def _run(dossiers: int, latency: float) -> dict:
    store = FakeDSStore([sample_procedure(number=NUMBER, dossier_count=dossiers, seed=5)])
    with FakeDSServer(store, tokens={TOKEN: "all"}, latency=latency) as server:  # its links need an address
        return await _measure(store, server)


async def _measure(store: FakeDSStore, server: FakeDSServer) -> dict:
    sink = EngineSink("Europe/Paris")
    await synchronise(parse_params(_raw()), _client(server), sink)
    changes = _annotation_edits(sink, store)
    ds = _client(server)
    cpu, start = time.process_time(), time.perf_counter()
    shown = await send_job.preview(parse_send_params(_raw()), ds, sink)
    preview = {"requests": ds.request_count, "ds_s": time.perf_counter() - start, "cpu_s": time.process_time() - cpu}
    ds = _client(server)
    cpu, start = time.process_time(), time.perf_counter()
    result = await send_job.send(parse_send_params(_raw(approved=shown["approved"])), ds, sink)
    return {"changes": changes, "preview": preview, "sent": result.sent, "refused": result.refused,
            "send": {"requests": ds.request_count, "ds_s": time.perf_counter() - start, "cpu_s": time.process_time() - cpu}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dossiers", type=int, default=1000)
    parser.add_argument("--latency", default="0.0,0.2", help="DS's answer time per request, seconds (comma-separated)")
    args = parser.parse_args()
    print(f"load {os.getloadavg()[0]:.1f}; {args.dossiers} dossiers, one annotation changed in each")
    print("latency | preview: requests, s, CPU s | send: requests, sent, s (floor), CPU s")
    for latency in (float(x) for x in args.latency.split(",")):
        r = asyncio.run(_run(args.dossiers, latency))
        floor = r["changes"] / RATE_PER_MIN * 60
        p, s = r["preview"], r["send"]
        print(f"{latency:.1f} s | {p['requests']}, {p['ds_s']:.0f} s, {p['cpu_s']:.1f} s | {s['requests']}, {r['sent']}"
              f" (refused {r['refused']}), {s['ds_s']:.0f} s ({floor:.0f} s: {s['ds_s'] / floor:.2f}×), {s['cpu_s']:.1f} s")


if __name__ == "__main__":
    main()
