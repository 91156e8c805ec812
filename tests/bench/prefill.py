"""Benchmark of « Dites-le-nous une fois »: 300 prefilled dossiers against DS's 15-per-15-s limit.

    python3 -m tests.bench.prefill [--rows 300] [--other-agent 5]

The real job (`py_core.jobs.prefill.create_prefilled`) writes into Grist's own engine (CPython,
`tests.grist_engine`) and posts to the fake DS over real HTTP on 127.0.0.1, whose throttle (15
POST per 15 s per address, then 429) runs on a virtual clock shared with the job: the job's waits
(its pacing, a 429's wait) move that clock instead of sleeping. So the run takes seconds, and
prints two durations:

- **DS's time**: the virtual clock at the end, i.e. the time the job waits for DS's limit. The
  floor for N rows is (⌈N / 15⌉ − 1) × 15 s (285 s for 300: « 5 minutes »): nothing can go
  faster from one address.
- **OTP's own time**: the real time of the run (checking the rows, writing each row twice in
  Grist, the HTTP round trips to the fake), which adds to DS's time in real life.

`--other-agent K`: another agent behind the same relay posted K requests just before (they count
in DS's window: the job meets a 429 and waits it out). Prints figures; asserts that every row got
exactly one dossier.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import time

from demo.fake_ds import FakeDSServer, FakeDSStore, sample_procedure
from py_core.ds.client import DSClient
from py_core.ds.transport import UrllibTransport
from py_core.jobs import prefill as job
from py_core.jobs.params import parse_params

from py_core.progress import Progress
from tests.grist_engine import EngineSink
from tests.virtual_clock import VirtualClock

NUMBER, TOKEN = 8642, "jeton-banc"


def _fill(sink: EngineSink, rows: int, store: FakeDSStore) -> str:
    registry = {r["Cle"]: r["Col_id"] for r in sink.records("OTP_Colonnes") if r["Table_id"].endswith("_Preremplissage")}
    table = f"D{NUMBER}_Preremplissage"
    montant = next(d["id"] for d in store.procedure(NUMBER).active_revision["champDescriptors"] if d["label"] == "Montant demandé (€)")
    sink.apply_now([["BulkAddRecord", table, [None] * rows, {
        registry["identite_nom"]: [f"Personne {i}" for i in range(rows)], registry["identite_genre"]: ["Mme"] * rows,
        registry[montant]: [100.0 + i for i in range(rows)]}]])
    return table


def run(rows: int, other_agent: int) -> dict:
    procedure = sample_procedure(number=NUMBER, dossier_count=2, seed=4)
    procedure.for_individual = True
    store = FakeDSStore([procedure])
    clock = VirtualClock()
    events: list[dict] = []
    with FakeDSServer(store, tokens={TOKEN: "all"}) as server:
        server.prefill.monotonic = clock.now
        sink = EngineSink("Europe/Paris")
        params = parse_params({"demarche": str(NUMBER), "token": TOKEN, "endpoint": server.url, "holder": "banc/1"})
        client = DSClient(server.url, TOKEN, UrllibTransport(timeout=10), progress=Progress(events.append), clock=clock.clock())
        asyncio.run(job.prepare(params, client, sink))
        table = _fill(sink, rows, store)
        for _ in range(other_agent):
            server.answer_public("POST", f"/api/public/v1/demarches/{NUMBER}/dossiers", "application/json", b"{}")
        started_virtual, started = clock.t, time.perf_counter()
        result = asyncio.run(job.create_prefilled(params, client, sink, UrllibTransport(timeout=10)))
        real = time.perf_counter() - started
        links = [r for r in sink.records(table) if r.get("Lien_du_dossier_prerempli")]
        assert result.created == rows == len(links) == server.prefill.created - other_agent, "every row exactly once"
        return {"rows": rows, "ds_s": clock.t - started_virtual, "real_s": real, "posts": result.posts,
                "throttled": server.prefill.throttled, "waits": sum(1 for e in events if e["kind"] == "wait"),
                "floor_s": (math.ceil((rows + other_agent) / plan_limit()) - 1) * job.WINDOW_S}


def plan_limit() -> int:
    return job.LIMIT


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300)
    parser.add_argument("--other-agent", type=int, default=0)
    args = parser.parse_args()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    figures = run(args.rows, args.other_agent)
    print(f"Préremplissage : {figures['rows']} dossiers créés (limite de DS : {job.LIMIT} par {job.WINDOW_S:.0f} s)")
    print(f"  temps imposé par DS (horloge virtuelle) : {figures['ds_s']:.0f} s ; plancher : {figures['floor_s']:.0f} s "
          f"({figures['ds_s'] / max(figures['floor_s'], 1):.2f} × le plancher)")
    print(f"  temps propre d'OTP (réel : contrôles, 2 écritures Grist par ligne, HTTP) : {figures['real_s']:.1f} s "
          f"({1000 * figures['real_s'] / figures['rows']:.0f} ms par ligne)")
    print(f"  requêtes POST : {figures['posts']} ; réponses 429 : {figures['throttled']} ; "
          f"comptes à rebours : {figures['waits']} ; charge de la machine : {load:.1f}")
    print(f"  durée réelle estimée : {(figures['ds_s'] + figures['real_s']) / 60:.1f} min")


if __name__ == "__main__":
    main()
